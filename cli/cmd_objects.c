/* cli/cmd_objects.c — `datamesh get|describe|delete KIND [NAME]`. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "cli/output.h"
#include "control/spec.h"

typedef struct args {
    const char *server;
    int format;
    const char *kind;
    const char *name;
} args_t;

static int parse(const char *cmd, int argc, char **argv, args_t *a, int min_pos)
{
    static const struct option longopts[] = {{"output", required_argument, NULL, 'o'},
                                             {"server", required_argument, NULL, 's'},
                                             {NULL, 0, NULL, 0}};
    a->server = NULL;
    a->format = -1;
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, "o:", longopts, NULL)) != -1) {
        switch (ch) {
        case 'o':
            a->format = dm_out_parse(optarg);
            if (a->format < 0) {
                dm_cli_errorf(cmd, "-o %s: expected table, json or yaml", optarg);
                return DM_EXIT_USAGE;
            }
            break;
        case 's': a->server = optarg; break;
        default: return DM_EXIT_USAGE;
        }
    }
    int pos = argc - optind;
    if (pos < min_pos || pos > 2) {
        dm_cli_errorf(cmd, "usage: datamesh %s KIND%s", cmd, min_pos == 2 ? " NAME" : " [NAME]");
        return DM_EXIT_USAGE;
    }
    a->kind = argv[optind];
    a->name = pos == 2 ? argv[optind + 1] : NULL;
    if (dm_kind_parse(a->kind) < 0) {
        dm_cli_errorf(cmd, "unknown kind '%s'; kinds: sources, pipelines, processors, sinks",
                      a->kind);
        return DM_EXIT_USAGE;
    }
    return DM_EXIT_OK;
}

static int call(const char *cmd, const args_t *a, const char *method, json_t **out)
{
    char path[1024], esc[512];
    dm_kind_t k = (dm_kind_t)dm_kind_parse(a->kind);
    if (a->name) {
        dm_client_escape(a->name, esc, sizeof(esc));
        snprintf(path, sizeof(path), "/api/v1/%s/%s", dm_kind_plural(k), esc);
    } else {
        snprintf(path, sizeof(path), "/api/v1/%s", dm_kind_plural(k));
    }
    long status;
    dm_error_t err = {0};
    if (dm_client_call(dm_client_server(a->server), method, path, NULL, 0, &status, out, &err)) {
        dm_cli_errorf(cmd, "%s", err.message);
        return DM_EXIT_FAILED;
    }
    return DM_EXIT_OK;
}

static void print_table(dm_kind_t k, const json_t *items)
{
    static const dm_out_column_t sources[] = {
        {"NAME", "metadata.name"},       {"OWNER", "metadata.owner"},
        {"CONNECTOR", "spec.connector"}, {"PRODUCERS", "producers"},
        {"CONSUMERS", "consumers"},      {"DESCRIPTION", "metadata.description"}};
    static const dm_out_column_t pipelines[] = {{"NAME", "metadata.name"},
                                                {"OWNER", "metadata.owner"},
                                                {"FROM", "spec.from"},
                                                {"GENERATION", "status.generation"}};
    static const dm_out_column_t others[] = {{"NAME", "metadata.name"},
                                             {"OWNER", "metadata.owner"},
                                             {"GENERATION", "status.generation"}};
    if (k == DM_KIND_SOURCE)
        dm_out_table(stdout, items, sources, 6);
    else if (k == DM_KIND_PIPELINE)
        dm_out_table(stdout, items, pipelines, 4);
    else
        dm_out_table(stdout, items, others, 3);
}

int dm_cmd_get(int argc, char **argv)
{
    args_t a;
    int rc = parse("get", argc, argv, &a, 1);
    if (rc) return rc;
    json_t *resp;
    if ((rc = call("get", &a, "GET", &resp))) return rc;
    int fmt = a.format < 0 ? DM_OUT_TABLE : a.format;
    json_t *items = a.name ? json_pack("[O]", resp) : json_incref(json_object_get(resp, "items"));
    if (fmt == DM_OUT_TABLE)
        print_table((dm_kind_t)dm_kind_parse(a.kind), items);
    else if (fmt == DM_OUT_JSON)
        dm_out_json(stdout, a.name ? resp : items);
    else
        dm_out_yaml(stdout, a.name ? resp : items);
    json_decref(items);
    json_decref(resp);
    return DM_EXIT_OK;
}

int dm_cmd_describe(int argc, char **argv)
{
    args_t a;
    int rc = parse("describe", argc, argv, &a, 2);
    if (rc) return rc;
    json_t *resp;
    if ((rc = call("describe", &a, "GET", &resp))) return rc;
    if (a.format == DM_OUT_JSON)
        dm_out_json(stdout, resp);
    else
        dm_out_yaml(stdout, resp);
    json_decref(resp);
    return DM_EXIT_OK;
}

int dm_cmd_delete(int argc, char **argv)
{
    args_t a;
    int rc = parse("delete", argc, argv, &a, 2);
    if (rc) return rc;
    json_t *resp;
    if ((rc = call("delete", &a, "DELETE", &resp))) return rc;
    printf("deleted %s %s\n", json_string_value(json_object_get(resp, "kind")), a.name);
    json_decref(resp);
    return DM_EXIT_OK;
}
