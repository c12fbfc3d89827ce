/* cli/cmd_token.c — `datamesh token create|list|revoke`: API tokens (admins). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "cli/output.h"

/* Milliseconds since the epoch as "2026-12-07T17:05:31Z" ("-" for 0) into out. */
void dm_cli_format_ms(long long ms, char *out, size_t cap)
{
    if (ms <= 0) {
        snprintf(out, cap, "-");
        return;
    }
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Adds a readable time field name beside each item's name_ms. */
static void add_times(json_t *items, const char *const *fields)
{
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it)
    {
        for (int f = 0; fields[f]; f++) {
            char key[64], text[32];
            snprintf(key, sizeof(key), "%s_ms", fields[f]);
            dm_cli_format_ms((long long)json_integer_value(json_object_get(it, key)), text,
                             sizeof(text));
            json_object_set_new(it, fields[f], json_string(text));
        }
    }
}

static int token_create(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"owner", required_argument, NULL, 'O'},   {"role", required_argument, NULL, 'r'},
        {"expires", required_argument, NULL, 'e'}, {"description", required_argument, NULL, 'd'},
        {"server", required_argument, NULL, 's'},  {NULL, 0, NULL, 0}};
    const char *owner = NULL, *role = NULL, *expires = NULL, *description = NULL, *server = NULL;
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'O': owner = optarg; break;
        case 'r': role = optarg; break;
        case 'e': expires = optarg; break;
        case 'd': description = optarg; break;
        case 's': server = optarg; break;
        default: return DM_EXIT_USAGE;
        }
    }
    if (!owner || !role || optind < argc) {
        dm_cli_errorf("token", "usage: datamesh token create --owner TEAM --role "
                               "viewer|editor|admin|worker [--expires 30d] [--description TEXT]");
        return DM_EXIT_USAGE;
    }
    json_t *req = json_pack("{s:s, s:s}", "owner", owner, "role", role);
    if (expires) json_object_set_new(req, "expires", json_string(expires));
    if (description) json_object_set_new(req, "description", json_string(description));
    char *body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    long status;
    json_t *resp;
    dm_error_t err = {0};
    dm_err_t rc = dm_client_call(dm_client_server(server), "POST", "/api/v1/tokens", body,
                                 strlen(body), &status, &resp, &err);
    free(body);
    if (rc) {
        dm_cli_errorf("token", "%s", err.message);
        return DM_EXIT_FAILED;
    }
    char exp[32];
    dm_cli_format_ms((long long)json_integer_value(json_object_get(resp, "expires_ms")), exp,
                     sizeof(exp));
    printf("created token %s for team %s, role %s, expires %s\n",
           json_string_value(json_object_get(resp, "id")),
           json_string_value(json_object_get(resp, "owner")),
           json_string_value(json_object_get(resp, "role")), strcmp(exp, "-") ? exp : "never");
    printf("it is shown once; keep it secret:\n");
    /* Alone on the last line, for scripts: TOKEN=$(datamesh token create … | tail -1). */
    printf("%s\n", json_string_value(json_object_get(resp, "token")));
    json_decref(resp);
    return DM_EXIT_OK;
}

static int token_list(int argc, char **argv)
{
    static const struct option longopts[] = {{"output", required_argument, NULL, 'o'},
                                             {"server", required_argument, NULL, 's'},
                                             {NULL, 0, NULL, 0}};
    const char *server = NULL;
    int format = DM_OUT_TABLE;
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, "o:", longopts, NULL)) != -1) {
        switch (ch) {
        case 'o':
            if ((format = dm_out_parse(optarg)) < 0) {
                dm_cli_errorf("token", "-o %s: expected table, json or yaml", optarg);
                return DM_EXIT_USAGE;
            }
            break;
        case 's': server = optarg; break;
        default: return DM_EXIT_USAGE;
        }
    }
    long status;
    json_t *resp;
    dm_error_t err = {0};
    if (dm_client_call(dm_client_server(server), "GET", "/api/v1/tokens", NULL, 0, &status, &resp,
                       &err)) {
        dm_cli_errorf("token", "%s", err.message);
        return DM_EXIT_FAILED;
    }
    json_t *items = json_object_get(resp, "items");
    if (format == DM_OUT_JSON)
        dm_out_json(stdout, items);
    else if (format == DM_OUT_YAML)
        dm_out_yaml(stdout, items);
    else {
        static const char *const times[] = {"created", "expires", "last_used", NULL};
        add_times(items, times);
        static const dm_out_column_t cols[] = {{"ID", "id"},
                                               {"OWNER", "owner"},
                                               {"ROLE", "role"},
                                               {"STATE", "state"},
                                               {"CREATED", "created"},
                                               {"EXPIRES", "expires"},
                                               {"LAST USED", "last_used"},
                                               {"DESCRIPTION", "description"}};
        dm_out_table(stdout, items, cols, sizeof(cols) / sizeof(cols[0]));
    }
    json_decref(resp);
    return DM_EXIT_OK;
}

static int token_revoke(int argc, char **argv)
{
    static const struct option longopts[] = {{"server", required_argument, NULL, 's'},
                                             {NULL, 0, NULL, 0}};
    const char *server = NULL;
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (ch != 's') return DM_EXIT_USAGE;
        server = optarg;
    }
    if (optind + 1 != argc) {
        dm_cli_errorf("token", "usage: datamesh token revoke ID (the id `token list` shows)");
        return DM_EXIT_USAGE;
    }
    char path[256], esc[128];
    dm_client_escape(argv[optind], esc, sizeof(esc));
    snprintf(path, sizeof(path), "/api/v1/tokens/%s", esc);
    long status;
    json_t *resp;
    dm_error_t err = {0};
    if (dm_client_call(dm_client_server(server), "DELETE", path, NULL, 0, &status, &resp, &err)) {
        dm_cli_errorf("token", "%s", err.message);
        return DM_EXIT_FAILED;
    }
    printf("revoked token %s\n", argv[optind]);
    json_decref(resp);
    return DM_EXIT_OK;
}

int dm_cmd_token(int argc, char **argv)
{
    if (argc < 2) {
        dm_cli_errorf("token", "usage: datamesh token create|list|revoke ...");
        return DM_EXIT_USAGE;
    }
    const char *sub = argv[1];
    if (!strcmp(sub, "create")) return token_create(argc - 1, argv + 1);
    if (!strcmp(sub, "list")) return token_list(argc - 1, argv + 1);
    if (!strcmp(sub, "revoke")) return token_revoke(argc - 1, argv + 1);
    dm_cli_errorf("token", "unknown subcommand '%s'; expected create, list or revoke", sub);
    return DM_EXIT_USAGE;
}
