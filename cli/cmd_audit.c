/* cli/cmd_audit.c — `datamesh audit`: the controller's audit log (admins). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "cli/output.h"

int dm_cmd_audit(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"since", required_argument, NULL, 'S'},   {"who", required_argument, NULL, 'w'},
        {"outcome", required_argument, NULL, 'c'}, {"output", required_argument, NULL, 'o'},
        {"server", required_argument, NULL, 's'},  {NULL, 0, NULL, 0}};
    const char *since = NULL, *who = NULL, *outcome = NULL, *server = NULL, *limit = "100";
    int format = DM_OUT_TABLE;
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, "n:o:", longopts, NULL)) != -1) {
        switch (ch) {
        case 'S': since = optarg; break;
        case 'w': who = optarg; break;
        case 'c': outcome = optarg; break;
        case 'n': limit = optarg; break;
        case 's': server = optarg; break;
        case 'o':
            if ((format = dm_out_parse(optarg)) < 0) {
                dm_cli_errorf("audit", "-o %s: expected table, json or yaml", optarg);
                return DM_EXIT_USAGE;
            }
            break;
        default: return DM_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        dm_cli_errorf("audit", "unexpected argument '%s'", argv[optind]);
        return DM_EXIT_USAGE;
    }
    char path[1024], esc[256];
    size_t n = (size_t)snprintf(path, sizeof(path), "/api/v1/audit?limit=");
    dm_client_escape(limit, esc, sizeof(esc));
    n += (size_t)snprintf(path + n, sizeof(path) - n, "%s", esc);
    const char *names[] = {"since", "who", "outcome"}, *values[] = {since, who, outcome};
    for (int i = 0; i < 3; i++) {
        if (!values[i]) continue;
        dm_client_escape(values[i], esc, sizeof(esc));
        n += (size_t)snprintf(path + n, sizeof(path) - n, "&%s=%s", names[i], esc);
    }
    long status;
    json_t *resp;
    dm_error_t err = {0};
    if (dm_client_call(dm_client_server(server), "GET", path, NULL, 0, &status, &resp, &err)) {
        dm_cli_errorf("audit", "%s", err.message);
        return DM_EXIT_FAILED;
    }
    json_t *items = json_object_get(resp, "items");
    if (format == DM_OUT_JSON)
        dm_out_json(stdout, items);
    else if (format == DM_OUT_YAML)
        dm_out_yaml(stdout, items);
    else {
        size_t i;
        json_t *it;
        json_array_foreach(items, i, it)
        {
            char when[32], status_s[16];
            dm_cli_format_ms((long long)json_integer_value(json_object_get(it, "at_ms")), when,
                             sizeof(when));
            snprintf(status_s, sizeof(status_s), "%lld",
                     (long long)json_integer_value(json_object_get(it, "status")));
            json_object_set_new(it, "when", json_string(when));
            json_object_set_new(it, "code", json_string(status_s));
            const char *detail = json_string_value(json_object_get(it, "detail"));
            const char *reason = json_string_value(json_object_get(it, "reason"));
            char what[1024];
            snprintf(what, sizeof(what), "%s%s%s", detail && *detail ? detail : "",
                     detail && *detail && reason && *reason ? ": " : "", reason ? reason : "");
            json_object_set_new(it, "what", json_string(what));
        }
        static const dm_out_column_t cols[] = {
            {"WHEN", "when"},       {"TOKEN", "token"},   {"TEAM", "owner"}, {"ROLE", "role"},
            {"FROM", "remote"},     {"METHOD", "method"}, {"PATH", "path"},  {"STATUS", "code"},
            {"OUTCOME", "outcome"}, {"DETAIL", "what"}};
        dm_out_table(stdout, items, cols, sizeof(cols) / sizeof(cols[0]));
    }
    json_decref(resp);
    return DM_EXIT_OK;
}
