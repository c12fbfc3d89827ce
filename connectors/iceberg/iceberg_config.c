/* connectors/iceberg/iceberg_config.c — the Iceberg sink's settings. */
#include <stddef.h>

#include "connectors/iceberg/iceberg.h"

static const char *const catalogs[] = {"file", "sqlite", NULL};
static const char *const modes[] = {"auto", "append", "upsert", NULL};
static const char *const codecs[] = {"zstd", "snappy", "none", NULL};

static const dm_config_field_t fields[] = {
    {.name = "catalog",
     .type = DM_CFG_ENUM,
     .offset = offsetof(dm_iceberg_sink_config_t, catalog),
     .def = "file",
     .enum_values = catalogs,
     .help = "file: version files (vN.metadata.json + version-hint.text); sqlite: the JDBC "
             "catalog's iceberg_tables"},
    {.name = "catalog_uri",
     .type = DM_CFG_STRING,
     .offset = offsetof(dm_iceberg_sink_config_t, catalog_uri),
     .help = "sqlite: the catalog database file (default WAREHOUSE/catalog.db)"},
    {.name = "catalog_name",
     .type = DM_CFG_STRING,
     .offset = offsetof(dm_iceberg_sink_config_t, catalog_name),
     .def = "datamesh",
     .help = "catalog_name in the SQL catalog"},
    {.name = "warehouse",
     .type = DM_CFG_STRING,
     .offset = offsetof(dm_iceberg_sink_config_t, warehouse),
     .flags = DM_CFG_REQUIRED,
     .help = "directory tables live under (WAREHOUSE/NAMESPACE/TABLE)"},
    {.name = "table",
     .type = DM_CFG_STRING,
     .offset = offsetof(dm_iceberg_sink_config_t, table),
     .flags = DM_CFG_REQUIRED,
     .help = "NAMESPACE.TABLE"},
    {.name = "partition_by",
     .type = DM_CFG_STRING,
     .offset = offsetof(dm_iceberg_sink_config_t, partition_by),
     .def = "",
     .help = "partition spec of a new table: col, year(col), month(col), day(col), hour(col), "
             "bucket(N, col), truncate(W, col), comma-separated"},
    {.name = "primary_key",
     .type = DM_CFG_STRING_LIST,
     .offset = offsetof(dm_iceberg_sink_config_t, primary_key),
     .help = "columns equality deletes match on (default: the source's key)"},
    {.name = "mode",
     .type = DM_CFG_ENUM,
     .offset = offsetof(dm_iceberg_sink_config_t, mode),
     .def = "auto",
     .enum_values = modes,
     .help = "append: every record is a row; upsert: change events (op/before/after) update by "
             "key; auto: upsert when the values are change events"},
    {.name = "target_file_size",
     .type = DM_CFG_SIZE,
     .offset = offsetof(dm_iceberg_sink_config_t, target_file_size),
     .def = "128MiB",
     .min = 65536,
     .max = 68719476736.0,
     .help = "roll a data file, and commit, past this size"},
    {.name = "row_group_size",
     .type = DM_CFG_SIZE,
     .offset = offsetof(dm_iceberg_sink_config_t, row_group_size),
     .def = "128MiB",
     .min = 65536,
     .max = 4294967296.0,
     .help = "Parquet row group size (uncompressed bytes)"},
    {.name = "commit_interval",
     .type = DM_CFG_DURATION,
     .offset = offsetof(dm_iceberg_sink_config_t, commit_interval),
     .def = "10s",
     .min = 100,
     .max = 86400000.0,
     .help = "commit (checkpoint) at least this often when there is data"},
    {.name = "compression",
     .type = DM_CFG_ENUM,
     .offset = offsetof(dm_iceberg_sink_config_t, compression),
     .def = "zstd",
     .enum_values = codecs,
     .help = "Parquet page compression"},
};

const dm_config_table_t dm_iceberg_sink_config_table = {"iceberg sink", fields,
                                                        sizeof(fields) / sizeof(fields[0])};
