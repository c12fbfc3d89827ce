/* cli/cmd_schema_registry.c — `datamesh schema register|check|list|show`:
 * the controller's schema registry (its Confluent-compatible API) from the
 * command line. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "core/buf.h"

static const char *server_flag(int *argc, char **argv)
{
    /* --server URL anywhere among the arguments */
    for (int i = 1; i + 1 < *argc; i++)
        if (!strcmp(argv[i], "--server")) {
            const char *s = argv[i + 1];
            memmove(&argv[i], &argv[i + 2], (size_t)(*argc - i - 2) * sizeof(char *));
            *argc -= 2;
            return s;
        }
    return NULL;
}

/* {"schema": "<file contents>"} for a schema file. */
static char *schema_body(const char *path)
{
    json_error_t jerr;
    json_t *schema = json_load_file(path, JSON_DECODE_ANY, &jerr);
    if (!schema) {
        dm_cli_errorf("schema", "%s:%d:%d: %s", path, jerr.line, jerr.column, jerr.text);
        return NULL;
    }
    char *text = json_dumps(schema, JSON_COMPACT | JSON_ENCODE_ANY);
    json_t *body = json_pack("{s:s}", "schema", text);
    char *out = json_dumps(body, JSON_COMPACT);
    free(text);
    json_decref(body);
    json_decref(schema);
    return out;
}

static int call(const char *server, const char *method, const char *path, const char *body,
                json_t **out)
{
    long status;
    dm_error_t err = {0};
    if (dm_client_call(dm_client_server(server), method, path, body, body ? strlen(body) : 0,
                       &status, out, &err)) {
        dm_cli_errorf("schema", "%s", err.message);
        return DM_EXIT_FAILED;
    }
    return DM_EXIT_OK;
}

int dm_cmd_schema_registry(int argc, char **argv)
{
    const char *server = server_flag(&argc, argv);
    const char *sub = argv[1];
    char esc[512], path[1024];
    json_t *resp = NULL;
    int rc;
    if (!strcmp(sub, "list")) {
        if ((rc = call(server, "GET", "/subjects", NULL, &resp))) return rc;
        size_t i;
        json_t *s;
        json_array_foreach(resp, i, s) puts(json_string_value(s));
        json_decref(resp);
        return DM_EXIT_OK;
    }
    if (argc < 3) {
        dm_cli_errorf("schema", "usage: datamesh schema %s SUBJECT %s", sub,
                      !strcmp(sub, "show") ? "[VERSION]" : "FILE.avsc");
        return DM_EXIT_USAGE;
    }
    dm_client_escape(argv[2], esc, sizeof(esc));
    if (!strcmp(sub, "show")) {
        const char *version = argc > 3 ? argv[3] : "latest";
        char v[64];
        dm_client_escape(version, v, sizeof(v));
        snprintf(path, sizeof(path), "/subjects/%s/versions/%s", esc, v);
        if ((rc = call(server, "GET", path, NULL, &resp))) return rc;
        json_t *schema = json_loads(json_string_value(json_object_get(resp, "schema")), 0, NULL);
        printf("subject: %s\nversion: %lld\nid: %lld\n",
               json_string_value(json_object_get(resp, "subject")),
               (long long)json_integer_value(json_object_get(resp, "version")),
               (long long)json_integer_value(json_object_get(resp, "id")));
        json_dumpf(schema, stdout, JSON_INDENT(2));
        putchar('\n');
        json_decref(schema);
        json_decref(resp);
        return DM_EXIT_OK;
    }
    if (argc != 4) {
        dm_cli_errorf("schema", "usage: datamesh schema %s SUBJECT FILE.avsc", sub);
        return DM_EXIT_USAGE;
    }
    char *body = schema_body(argv[3]);
    if (!body) return DM_EXIT_USAGE;
    if (!strcmp(sub, "register")) {
        snprintf(path, sizeof(path), "/subjects/%s/versions", esc);
        rc = call(server, "POST", path, body, &resp);
        if (!rc)
            printf("registered %s: id %lld\n", argv[2],
                   (long long)json_integer_value(json_object_get(resp, "id")));
    } else {
        snprintf(path, sizeof(path), "/compatibility/subjects/%s/versions?verbose=true", esc);
        rc = call(server, "POST", path, body, &resp);
        if (!rc) {
            bool compatible = json_is_true(json_object_get(resp, "is_compatible"));
            printf("%s\n", compatible ? "compatible" : "incompatible");
            size_t i;
            json_t *m;
            json_array_foreach(json_object_get(resp, "messages"), i, m)
                printf("  %s\n", json_string_value(m));
            rc = compatible ? DM_EXIT_OK : DM_EXIT_FAILED;
        }
    }
    free(body);
    json_decref(resp);
    return rc;
}
