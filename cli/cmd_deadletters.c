/* cli/cmd_deadletters.c — `datamesh deadletters PIPELINE`: a pipeline's dead
 * letters (GET /api/v1/pipelines/{name}/deadletters), and `deadletters replay
 * PIPELINE P:O … | --reason TEXT | --all [--force]`: put them back through the
 * pipeline as it is now (POST …/deadletters/replay, docs/deadletters.md). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "cli/output.h"

/* A JSON string member's text, or what when it has none. */
static const char *text_of(const json_t *o, const char *key, const char *what)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : what;
}

#define USAGE                                                                                      \
    "usage: datamesh deadletters PIPELINE [-n N] [-o table|json] | deadletters replay PIPELINE "   \
    "(P:O ... | --reason TEXT | --all) [--force] [-o table|json]"

static int list(const char *server, const char *pipeline, long n, bool json)
{
    char path[1200], esc[1024];
    dm_client_escape(pipeline, esc, sizeof(esc));
    snprintf(path, sizeof(path), "/api/v1/pipelines/%s/deadletters?limit=%ld", esc, n);
    long status;
    json_t *resp = NULL;
    dm_error_t err = {0};
    if (dm_client_call(dm_client_server(server), "GET", path, NULL, 0, &status, &resp, &err)) {
        dm_cli_errorf("deadletters", "%s", err.message);
        return DM_EXIT_FAILED;
    }
    if (json) {
        dm_out_json(stdout, resp);
    } else {
        size_t i;
        json_t *x;
        json_array_foreach(json_object_get(resp, "items"), i, x)
        {
            const json_t *in = json_object_get(x, "input");
            char pos[48], from[400];
            snprintf(pos, sizeof(pos), "%lld:%lld",
                     (long long)json_integer_value(json_object_get(x, "partition")),
                     (long long)json_integer_value(json_object_get(x, "offset")));
            snprintf(from, sizeof(from), "%s[%lld]@%lld", text_of(in, "topic", "?"),
                     (long long)json_integer_value(json_object_get(in, "partition")),
                     (long long)json_integer_value(json_object_get(in, "offset")));
            json_object_set_new(x, "position", json_string(pos));
            json_object_set_new(x, "from", json_string(from));
            json_object_set_new(
                x, "again",
                json_string(json_is_true(json_object_get(x, "replayed")) ? "replayed" : ""));
        }
        static const dm_out_column_t cols[] = {{"POSITION", "position"},
                                               {"REASON", "reason"},
                                               {"PROCESSOR", "processor"},
                                               {"INPUT", "from"},
                                               {"REPLAYED", "again"}};
        dm_out_table(stdout, json_object_get(resp, "items"), cols, 5);
        fprintf(stderr, "%lld dead letters in %s\n",
                (long long)json_integer_value(json_object_get(resp, "total")),
                text_of(resp, "topic", "?"));
    }
    json_decref(resp);
    return DM_EXIT_OK;
}

static int replay(const char *server, const char *pipeline, json_t *body, bool json)
{
    char path[1200], esc[1024];
    dm_client_escape(pipeline, esc, sizeof(esc));
    snprintf(path, sizeof(path), "/api/v1/pipelines/%s/deadletters/replay", esc);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    long status;
    json_t *resp = NULL;
    dm_error_t err = {0};
    dm_err_t rc = text ? dm_client_call(dm_client_server(server), "POST", path, text, strlen(text),
                                        &status, &resp, &err)
                       : dm_error_set(&err, DM_ERR_NOMEM, "out of memory");
    free(text);
    if (rc) {
        dm_cli_errorf("deadletters", "%s", err.message);
        return DM_EXIT_FAILED;
    }
    if (json) {
        dm_out_json(stdout, resp);
    } else {
        printf("%lld replayed into %s\n",
               (long long)json_integer_value(json_object_get(resp, "count")),
               text_of(resp, "topic", "?"));
        size_t i;
        json_t *x;
        json_array_foreach(json_object_get(resp, "skipped"), i, x)
            printf("skipped %s: %s\n", text_of(x, "position", "?"), text_of(x, "why", ""));
    }
    json_decref(resp);
    return DM_EXIT_OK;
}

int dm_cmd_deadletters(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"output", required_argument, NULL, 'o'}, {"server", required_argument, NULL, 's'},
        {"reason", required_argument, NULL, 'r'}, {"all", no_argument, NULL, 'a'},
        {"force", no_argument, NULL, 'f'},        {NULL, 0, NULL, 0}};
    const char *server = NULL, *reason = NULL;
    bool json = false, all = false, force = false;
    long n = 100;
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, "o:n:", longopts, NULL)) != -1) {
        switch (ch) {
        case 'o':
            if (strcmp(optarg, "table") && strcmp(optarg, "json")) {
                dm_cli_errorf("deadletters", "-o %s: expected table or json", optarg);
                return DM_EXIT_USAGE;
            }
            json = !strcmp(optarg, "json");
            break;
        case 'n': {
            char *end;
            n = strtol(optarg, &end, 10);
            if (*end || n < 1 || n > 1000) {
                dm_cli_errorf("deadletters", "-n %s: expected a number 1..1000", optarg);
                return DM_EXIT_USAGE;
            }
            break;
        }
        case 's': server = optarg; break;
        case 'r': reason = optarg; break;
        case 'a': all = true; break;
        case 'f': force = true; break;
        default: return DM_EXIT_USAGE;
        }
    }
    int left = argc - optind;
    if (left == 1 && !reason && !all && !force) return list(server, argv[optind], n, json);
    if (left >= 2 && !strcmp(argv[optind], "replay")) {
        int positions = left - 2;
        if ((positions > 0) + (reason != NULL) + all != 1) {
            dm_cli_errorf("deadletters", "replay: give positions (P:O as `deadletters` lists "
                                         "them), --reason TEXT or --all: exactly one");
            return DM_EXIT_USAGE;
        }
        json_t *body = json_object();
        if (positions) {
            json_t *list = json_array();
            for (int i = optind + 2; i < argc; i++)
                json_array_append_new(list, json_string(argv[i]));
            json_object_set_new(body, "positions", list);
        }
        if (reason) json_object_set_new(body, "reason", json_string(reason));
        if (all) json_object_set_new(body, "all", json_true());
        if (force) json_object_set_new(body, "force", json_true());
        return replay(server, argv[optind + 1], body, json);
    }
    dm_cli_errorf("deadletters", USAGE);
    return DM_EXIT_USAGE;
}
