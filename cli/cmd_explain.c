/* cli/cmd_explain.c — `datamesh explain PIPELINE | -f SPEC`: the plan a pipeline runs
 * (GET /api/v1/pipelines/{name}/plan, POST /api/v1/plan). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "cli/output.h"

static void print_plan(const json_t *p, bool json)
{
    if (json)
        dm_out_json(stdout, json_object_get(p, "plan"));
    else
        fputs(json_string_value(json_object_get(p, "explain")), stdout);
}

int dm_cmd_explain(int argc, char **argv)
{
    static const struct option longopts[] = {{"file", required_argument, NULL, 'f'},
                                             {"output", required_argument, NULL, 'o'},
                                             {"server", required_argument, NULL, 's'},
                                             {NULL, 0, NULL, 0}};
    const char *server = NULL, *file = NULL;
    bool json = false;
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, "f:o:", longopts, NULL)) != -1) {
        switch (ch) {
        case 'f': file = optarg; break;
        case 'o':
            if (strcmp(optarg, "json") && strcmp(optarg, "text")) {
                dm_cli_errorf("explain", "-o %s: expected text or json", optarg);
                return DM_EXIT_USAGE;
            }
            json = !strcmp(optarg, "json");
            break;
        case 's': server = optarg; break;
        default: return DM_EXIT_USAGE;
        }
    }
    if ((file != NULL) == (optind < argc) || argc - optind > 1) {
        dm_cli_errorf("explain", "usage: datamesh explain PIPELINE | -f FILE|DIR [-o text|json]");
        return DM_EXIT_USAGE;
    }
    dm_error_t err = {0};
    long status;
    json_t *resp = NULL;
    dm_err_t rc;
    if (file) {
        dm_buf_t body = DM_BUF_INIT;
        size_t count = 0;
        rc = dm_cli_add_specs(file, &body, &count, NULL, &err);
        if (!rc && !count) rc = dm_error_set(&err, DM_ERR_INVALID, "%s: no spec documents", file);
        if (!rc)
            rc = dm_client_call(dm_client_server(server), "POST", "/api/v1/plan",
                                (const char *)body.data, body.len, &status, &resp, &err);
        dm_buf_free(&body);
    } else {
        char path[1024], esc[512];
        dm_client_escape(argv[optind], esc, sizeof(esc));
        snprintf(path, sizeof(path), "/api/v1/pipelines/%s/plan", esc);
        rc = dm_client_call(dm_client_server(server), "GET", path, NULL, 0, &status, &resp, &err);
    }
    if (rc) {
        dm_cli_errorf("explain", "%s", err.message);
        return DM_EXIT_FAILED;
    }
    const json_t *plans = json_object_get(resp, "plans");
    if (!plans) {
        print_plan(resp, json);
    } else {
        size_t i;
        json_t *p;
        json_array_foreach(plans, i, p)
        {
            if (i && !json) fputs("\n", stdout);
            print_plan(p, json);
        }
    }
    json_decref(resp);
    return DM_EXIT_OK;
}
