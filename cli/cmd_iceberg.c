/* cli/cmd_iceberg.c — `datamesh iceberg`: table maintenance without a
 * controller.
 *
 *   iceberg compact NAMESPACE.TABLE warehouse=DIR [catalog=sqlite] [key=value ...]
 *
 * Settings are the Iceberg sink's (docs/iceberg.md), given as key=value.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "connectors/iceberg/iceberg.h"

static int compact(int argc, char **argv)
{
    if (argc < 2 || strchr(argv[1], '=')) {
        dm_cli_errorf("iceberg", "usage: datamesh iceberg compact NAMESPACE.TABLE warehouse=DIR "
                                 "[catalog=file|sqlite] [catalog_uri=FILE] [key=value ...]");
        return DM_EXIT_USAGE;
    }
    dm_iceberg_sink_config_t conf = {0};
    dm_error_t err = {0};
    int rc = DM_EXIT_OK;
    if (dm_config_defaults(&dm_iceberg_sink_config_table, &conf, &err) ||
        dm_config_set_text(&dm_iceberg_sink_config_table, &conf, "table", argv[1], &err))
        rc = DM_EXIT_USAGE;
    for (int i = 2; i < argc && rc == DM_EXIT_OK; i++) {
        char *eq = strchr(argv[i], '=');
        if (!eq) {
            dm_error_set(&err, DM_ERR_CONFIG, "expected key=value, got '%s'", argv[i]);
            rc = DM_EXIT_USAGE;
            break;
        }
        *eq = 0;
        if (dm_config_set_text(&dm_iceberg_sink_config_table, &conf, argv[i], eq + 1, &err))
            rc = DM_EXIT_USAGE;
    }
    if (rc == DM_EXIT_OK &&
        dm_config_check_required(&dm_iceberg_sink_config_table, &conf, NULL, &err))
        rc = DM_EXIT_USAGE;
    int64_t files = 0, rows = 0;
    if (rc == DM_EXIT_OK && dm_iceberg_compact(&conf, &files, &rows, &err)) rc = DM_EXIT_FAILED;
    if (rc != DM_EXIT_OK)
        dm_cli_errorf("iceberg", "%s", err.message);
    else
        printf("compacted %s: %" PRId64 " files read, %" PRId64 " rows kept\n", conf.table, files,
               rows);
    dm_config_free(&dm_iceberg_sink_config_table, &conf);
    return rc;
}

int dm_cmd_iceberg(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "compact")) return compact(argc - 1, argv + 1);
    dm_cli_errorf("iceberg",
                  "usage: datamesh iceberg compact NAMESPACE.TABLE warehouse=DIR [key=value ...]");
    return DM_EXIT_USAGE;
}
