/* cli/cmd_lineage.c — `datamesh lineage NODE`: what a source, field or
 * pipeline comes from and what depends on it (GET /api/v1/lineage). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "cli/output.h"

/* A DOT string literal: quotes and backslashes escaped. */
static void dot_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static const char *dot_shape(const char *kind)
{
    if (!strcmp(kind, "pipeline")) return "box";
    if (!strcmp(kind, "sink")) return "folder";
    if (!strcmp(kind, "source") || !strcmp(kind, "topic") || !strcmp(kind, "table"))
        return "cylinder";
    return "ellipse";
}

/* Graphviz: one node per id, edges labelled with their subtype, indirect ones dashed. */
static void print_dot(const json_t *g)
{
    size_t i;
    json_t *x;
    printf("digraph lineage {\n  rankdir=LR;\n");
    json_array_foreach(json_object_get(g, "nodes"), i, x)
    {
        printf("  ");
        dot_str(stdout, json_string_value(json_object_get(x, "id")));
        printf(" [shape=%s, label=", dot_shape(json_string_value(json_object_get(x, "kind"))));
        dot_str(stdout, json_string_value(json_object_get(x, "name")));
        printf("];\n");
    }
    json_array_foreach(json_object_get(g, "edges"), i, x)
    {
        const char *type = json_string_value(json_object_get(x, "type"));
        const char *pipeline = json_string_value(json_object_get(x, "pipeline"));
        char label[300];
        snprintf(label, sizeof(label), "%s%s%s", json_string_value(json_object_get(x, "subtype")),
                 pipeline ? " @" : "", pipeline ? pipeline : "");
        printf("  ");
        dot_str(stdout, json_string_value(json_object_get(x, "from")));
        printf(" -> ");
        dot_str(stdout, json_string_value(json_object_get(x, "to")));
        printf(" [label=");
        dot_str(stdout, label);
        printf("%s];\n", type && !strcmp(type, "INDIRECT") ? ", style=dashed" : "");
    }
    printf("}\n");
}

static void print_table(const json_t *g)
{
    static const dm_out_column_t ncols[] = {{"NODE", "id"}, {"KIND", "kind"}, {"TYPE", "type"}};
    static const dm_out_column_t ecols[] = {{"FROM", "from"},
                                            {"TO", "to"},
                                            {"TYPE", "type"},
                                            {"SUBTYPE", "subtype"},
                                            {"PIPELINE", "pipeline"}};
    dm_out_table(stdout, json_object_get(g, "nodes"), ncols, 3);
    fputs("\n", stdout);
    dm_out_table(stdout, json_object_get(g, "edges"), ecols, 5);
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(g, "problems"), i, p)
        fprintf(stderr, "datamesh lineage: pipeline %s is left out: %s\n",
                json_string_value(json_object_get(p, "pipeline")),
                json_string_value(json_object_get(p, "error")));
}

int dm_cmd_lineage(int argc, char **argv)
{
    static const struct option longopts[] = {{"upstream", no_argument, NULL, 'u'},
                                             {"downstream", no_argument, NULL, 'd'},
                                             {"both", no_argument, NULL, 'b'},
                                             {"depth", required_argument, NULL, 'D'},
                                             {"output", required_argument, NULL, 'o'},
                                             {"server", required_argument, NULL, 's'},
                                             {NULL, 0, NULL, 0}};
    const char *server = NULL, *dir = "both", *format = "table";
    long depth = -1;
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, "o:", longopts, NULL)) != -1) {
        switch (ch) {
        case 'u': dir = "upstream"; break;
        case 'd': dir = "downstream"; break;
        case 'b': dir = "both"; break;
        case 'D': {
            char *end;
            depth = strtol(optarg, &end, 10);
            if (*end || depth < 0) {
                dm_cli_errorf("lineage", "--depth %s: expected a number of edges, 0 or more",
                              optarg);
                return DM_EXIT_USAGE;
            }
            break;
        }
        case 'o':
            if (strcmp(optarg, "table") && strcmp(optarg, "json") && strcmp(optarg, "dot")) {
                dm_cli_errorf("lineage", "-o %s: expected table, json or dot", optarg);
                return DM_EXIT_USAGE;
            }
            format = optarg;
            break;
        case 's': server = optarg; break;
        default: return DM_EXIT_USAGE;
        }
    }
    if (argc - optind != 1) {
        dm_cli_errorf("lineage", "usage: datamesh lineage NODE [--upstream|--downstream|--both] "
                                 "[--depth N] [-o table|json|dot]");
        return DM_EXIT_USAGE;
    }
    char path[1400], esc[1024];
    dm_client_escape(argv[optind], esc, sizeof(esc));
    int n = snprintf(path, sizeof(path), "/api/v1/lineage?node=%s&direction=%s", esc, dir);
    if (depth >= 0) snprintf(path + n, sizeof(path) - (size_t)n, "&depth=%ld", depth);
    dm_error_t err = {0};
    long status;
    json_t *resp = NULL;
    if (dm_client_call(dm_client_server(server), "GET", path, NULL, 0, &status, &resp, &err)) {
        dm_cli_errorf("lineage", "%s", err.message);
        return DM_EXIT_FAILED;
    }
    if (!strcmp(format, "json"))
        dm_out_json(stdout, resp);
    else if (!strcmp(format, "dot"))
        print_dot(resp);
    else
        print_table(resp);
    json_decref(resp);
    return DM_EXIT_OK;
}
