/* cli/cmd_schema.c — `datamesh schema`: offline schema tools.
 *
 *   schema compat --level LEVEL NEW.avsc OLD.avsc [OLDER.avsc ...]
 *   schema fingerprint FILE.avsc
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
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

int dm_cmd_schema(int argc, char **argv)
{
    if (argc < 2) {
        dm_cli_errorf("schema",
                      "missing subcommand (compat, fingerprint, register, check, list, show)");
        return DM_EXIT_USAGE;
    }
    if (strcmp(argv[1], "compat") == 0) return cmd_compat(argc - 1, argv + 1);
    if (strcmp(argv[1], "fingerprint") == 0) return cmd_fingerprint(argc - 1, argv + 1);
    if (!strcmp(argv[1], "register") || !strcmp(argv[1], "check") || !strcmp(argv[1], "list") ||
        !strcmp(argv[1], "show"))
        return dm_cmd_schema_registry(argc, argv);
    dm_cli_errorf("schema",
                  "unknown subcommand '%s' (offline: compat, fingerprint; with the controller: "
                  "register, check, list, show)",
                  argv[1]);
    return DM_EXIT_USAGE;
}
