/* cli/cmd_schema.c — `datamesh schema`: offline schema tools.
 *
 *   schema compat --level LEVEL NEW.avsc OLD.avsc [OLDER.avsc ...]
 *   schema fingerprint FILE.avsc
 *   schema plan SOURCE NEW.avsc [-o json]   (with the controller: a change's impact)
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "cli/output.h"
#include "schema/dm_schema_compat.h"

static int cmd_compat(int argc, char **argv)
{
    const char *level_name = NULL;
    static const struct option longopts[] = {{"level", required_argument, NULL, 'l'},
                                             {NULL, 0, NULL, 0}};
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (ch == 'l')
            level_name = optarg;
        else
            return DM_EXIT_USAGE;
    }
    if (!level_name || argc - optind < 2) {
        dm_cli_errorf("schema", "usage: datamesh schema compat --level LEVEL NEW.avsc OLD.avsc "
                                "[OLDER.avsc ...]");
        return DM_EXIT_USAGE;
    }
    dm_schema_compat_level_t level;
    if (dm_schema_compat_level_parse(level_name, &level)) {
        dm_cli_errorf("schema",
                      "unknown level '%s' (NONE, BACKWARD, BACKWARD_TRANSITIVE, FORWARD, "
                      "FORWARD_TRANSITIVE, FULL, FULL_TRANSITIVE)",
                      level_name);
        return DM_EXIT_USAGE;
    }
    int n = argc - optind;
    dm_avro_schema_t *schemas[n];
    memset(schemas, 0, sizeof(schemas));
    int rc = DM_EXIT_OK;
    for (int i = 0; i < n; i++) {
        dm_error_t err = {0};
        if (dm_avro_schema_parse_file(argv[optind + i], &schemas[i], &err)) {
            dm_cli_errorf("schema", "%s", err.message);
            rc = DM_EXIT_USAGE;
            goto out;
        }
    }
    dm_schema_compat_report_t report = {0};
    dm_err_t cr = dm_schema_compat_check(
        level, schemas[0], (const dm_avro_schema_t *const *)schemas + 1, (size_t)n - 1, &report);
    for (size_t i = 0; i < report.n; i++)
        printf("%s\n", report.messages[i]);
    if (cr == DM_OK) {
        printf("compatible (%s)\n", dm_schema_compat_level_name(level));
    } else {
        printf("incompatible (%s): %zu problem%s\n", dm_schema_compat_level_name(level), report.n,
               report.n == 1 ? "" : "s");
        rc = DM_EXIT_FAILED;
    }
    dm_schema_compat_report_free(&report);
out:
    for (int i = 0; i < n; i++)
        dm_avro_schema_free(schemas[i]);
    return rc;
}

static int cmd_fingerprint(int argc, char **argv)
{
    if (argc != 2) {
        dm_cli_errorf("schema", "usage: datamesh schema fingerprint FILE.avsc");
        return DM_EXIT_USAGE;
    }
    dm_avro_schema_t *s;
    dm_error_t err = {0};
    if (dm_avro_schema_parse_file(argv[1], &s, &err)) {
        dm_cli_errorf("schema", "%s", err.message);
        return DM_EXIT_USAGE;
    }
    dm_buf_t b = DM_BUF_INIT;
    dm_avro_fingerprints_t fp;
    int rc = DM_EXIT_OK;
    if (dm_avro_canonical(s->root, &b) || dm_avro_fingerprint(s->root, &fp)) {
        dm_cli_errorf("schema", "out of memory");
        rc = DM_EXIT_FAILED;
    } else {
        printf("canonical %.*s\n", (int)b.len, (const char *)b.data);
        printf("rabin     %016llx\n", (unsigned long long)fp.rabin);
        printf("md5       ");
        for (int i = 0; i < 16; i++)
            printf("%02x", fp.md5[i]);
        printf("\nsha256    ");
        for (int i = 0; i < 32; i++)
            printf("%02x", fp.sha256[i]);
        printf("\n");
    }
    dm_buf_free(&b);
    dm_avro_schema_free(s);
    return rc;
}

/* `schema plan SOURCE NEW.avsc`: what giving SOURCE the schema in NEW.avsc
 * would do (docs/schema-evolution.md), asked of the controller; changes
 * nothing. Exit 1 when the registry would refuse it. */
static int cmd_plan(int argc, char **argv)
{
    const char *format = "text", *server = NULL;
    static const struct option longopts[] = {{"output", required_argument, NULL, 'o'},
                                             {"server", required_argument, NULL, 's'},
                                             {NULL, 0, NULL, 0}};
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, "o:", longopts, NULL)) != -1) {
        if (ch == 'o' && (!strcmp(optarg, "json") || !strcmp(optarg, "text")))
            format = optarg;
        else if (ch == 's')
            server = optarg;
        else
            return DM_EXIT_USAGE;
    }
    if (argc - optind != 2) {
        dm_cli_errorf("schema", "usage: datamesh schema plan SOURCE NEW.avsc [-o json]");
        return DM_EXIT_USAGE;
    }
    dm_avro_schema_t *schema = NULL;
    dm_error_t err = {0};
    if (dm_avro_schema_parse_file(argv[optind + 1], &schema, &err)) {
        dm_cli_errorf("schema", "%s", err.message);
        return DM_EXIT_USAGE;
    }
    char path[600], esc[400];
    dm_client_escape(argv[optind], esc, sizeof(esc));
    snprintf(path, sizeof(path), "/api/v1/sources/%s/schema-plan", esc);
    long status = 0;
    json_t *resp = NULL;
    dm_err_t rc = dm_client_call(dm_client_server(server), "POST", path, schema->json,
                                 strlen(schema->json), &status, &resp, &err);
    dm_avro_schema_free(schema);
    if (rc) {
        dm_cli_errorf("schema", "%s", err.message);
        return DM_EXIT_FAILED;
    }
    bool ok = json_is_true(json_object_get(resp, "compatible"));
    if (!strcmp(format, "json")) {
        dm_out_json(stdout, resp);
    } else {
        printf("source %s (%s, now schema id %lld): %s\n", argv[optind],
               json_string_value(json_object_get(resp, "subject")),
               (long long)json_integer_value(json_object_get(resp, "current_id")),
               ok ? "compatible" : "REFUSED by the registry");
        size_t i;
        json_t *x;
        json_array_foreach(json_object_get(resp, "reasons"), i, x)
            printf("  %s\n", json_string_value(x));
        json_array_foreach(json_object_get(resp, "changes"), i, x)
        {
            const char *c = json_string_value(json_object_get(x, "change"));
            /* the types as their JSON text */
            const char *from = json_string_value(json_object_get(x, "from"));
            const char *to = json_string_value(json_object_get(x, "to"));
            printf("  %-8s %s %s%s%s\n", c, json_string_value(json_object_get(x, "field")),
                   from && strcmp(c, "added") ? from : "", !strcmp(c, "type") ? " -> " : "",
                   to && strcmp(c, "dropped") ? to : "");
        }
        json_array_foreach(json_object_get(resp, "pipelines"), i, x)
        {
            const char *via = json_string_value(json_object_get(x, "via"));
            printf("pipeline %s (schema_change: %s)%s%s: %s\n",
                   json_string_value(json_object_get(x, "pipeline")),
                   json_string_value(json_object_get(x, "policy")),
                   via ? ", through derived source " : "", via ? via : "",
                   json_string_value(json_object_get(x, "action")));
            size_t j;
            json_t *e;
            json_array_foreach(json_object_get(x, "effects"), j, e)
                printf("  %s\n", json_string_value(e));
        }
    }
    json_decref(resp);
    return ok ? DM_EXIT_OK : DM_EXIT_FAILED;
}

int dm_cmd_schema(int argc, char **argv)
{
    if (argc < 2) {
        dm_cli_errorf("schema",
                      "missing subcommand (compat, fingerprint, register, check, list, show)");
        return DM_EXIT_USAGE;
    }
    if (strcmp(argv[1], "compat") == 0) return cmd_compat(argc - 1, argv + 1);
    if (strcmp(argv[1], "fingerprint") == 0) return cmd_fingerprint(argc - 1, argv + 1);
    if (strcmp(argv[1], "plan") == 0) return cmd_plan(argc - 1, argv + 1);
    if (!strcmp(argv[1], "register") || !strcmp(argv[1], "check") || !strcmp(argv[1], "list") ||
        !strcmp(argv[1], "show"))
        return dm_cmd_schema_registry(argc, argv);
    dm_cli_errorf("schema",
                  "unknown subcommand '%s' (offline: compat, fingerprint; with the controller: "
                  "register, check, list, show)",
                  argv[1]);
    return DM_EXIT_USAGE;
}
