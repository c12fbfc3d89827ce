/* cli/cmd_alerts.c — `datamesh alerts`: the alerts the controller evaluates
 * (GET /api/v1/alerts), its rules file (`alerts rules`: GET
 * /api/v1/alerts/rules) and a pipeline's Grafana dashboard (`alerts
 * dashboard PIPELINE`). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "cli/output.h"

static int rules(const char *server)
{
    dm_buf_t text = DM_BUF_INIT;
    dm_error_t err = {0};
    if (dm_client_get_text(dm_client_server(server), "/api/v1/alerts/rules", &text, &err)) {
        dm_buf_free(&text);
        dm_cli_errorf("alerts", "%s", err.message);
        return DM_EXIT_FAILED;
    }
    fwrite(text.data, 1, text.len, stdout);
    dm_buf_free(&text);
    return DM_EXIT_OK;
}

static int dashboard(const char *server, const char *pipeline)
{
    char path[1200], esc[1024];
    dm_client_escape(pipeline, esc, sizeof(esc));
    snprintf(path, sizeof(path), "/api/v1/pipelines/%s/dashboard", esc);
    long status;
    json_t *resp = NULL;
    dm_error_t err = {0};
    if (dm_client_call(dm_client_server(server), "GET", path, NULL, 0, &status, &resp, &err)) {
        dm_cli_errorf("alerts", "%s", err.message);
        return DM_EXIT_FAILED;
    }
    dm_out_json(stdout, resp);
    json_decref(resp);
    return DM_EXIT_OK;
}

int dm_cmd_alerts(int argc, char **argv)
{
    static const struct option longopts[] = {{"output", required_argument, NULL, 'o'},
                                             {"state", required_argument, NULL, 'S'},
                                             {"server", required_argument, NULL, 's'},
                                             {NULL, 0, NULL, 0}};
    const char *server = NULL, *format = "table", *state = NULL;
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, "o:", longopts, NULL)) != -1) {
        switch (ch) {
        case 'o':
            if (strcmp(optarg, "table") && strcmp(optarg, "json")) {
                dm_cli_errorf("alerts", "-o %s: expected table or json", optarg);
                return DM_EXIT_USAGE;
            }
            format = optarg;
            break;
        case 'S':
            if (strcmp(optarg, "pending") && strcmp(optarg, "firing") &&
                strcmp(optarg, "resolved")) {
                dm_cli_errorf("alerts", "--state %s: expected pending, firing or resolved", optarg);
                return DM_EXIT_USAGE;
            }
            state = optarg;
            break;
        case 's': server = optarg; break;
        default: return DM_EXIT_USAGE;
        }
    }
    if (optind < argc && !strcmp(argv[optind], "rules") && argc - optind == 1) return rules(server);
    if (optind < argc && !strcmp(argv[optind], "dashboard") && argc - optind == 2)
        return dashboard(server, argv[optind + 1]);
    if (optind < argc) {
        dm_cli_errorf("alerts", "usage: datamesh alerts [--state S] [-o table|json] | alerts rules "
                                "| alerts dashboard PIPELINE");
        return DM_EXIT_USAGE;
    }
    char path[128];
    snprintf(path, sizeof(path), "/api/v1/alerts%s%s", state ? "?state=" : "", state ? state : "");
    long status;
    json_t *resp = NULL;
    dm_error_t err = {0};
    if (dm_client_call(dm_client_server(server), "GET", path, NULL, 0, &status, &resp, &err)) {
        dm_cli_errorf("alerts", "%s", err.message);
        return DM_EXIT_FAILED;
    }
    if (!strcmp(format, "json")) {
        dm_out_json(stdout, resp);
    } else {
        static const dm_out_column_t cols[] = {{"ALERT", "alert"},        {"SEVERITY", "severity"},
                                               {"KIND", "kind"},          {"OBJECT", "object"},
                                               {"OWNER", "owner"},        {"STATE", "state"},
                                               {"SINCE", "active_since"}, {"SUMMARY", "summary"}};
        dm_out_table(stdout, json_object_get(resp, "alerts"), cols, 8);
    }
    json_decref(resp);
    return DM_EXIT_OK;
}
