/* connectors/pgsink/pgsink_config.c — the postgres sink's settings. The
 * password never sits in a spec: it comes from an environment variable or a
 * file, so specs, the API and logs cannot leak it. */
#include <stddef.h>

#include "connectors/pgsink/pgsink.h"

static const dm_config_field_t fields[] = {
    DM_SINK_COMMON_FIELDS(dm_pgsink_config_t),
    {.name = "dsn",
     .type = DM_CFG_STRING,
     .offset = offsetof(dm_pgsink_config_t, dsn),
     .flags = DM_CFG_REQUIRED,
     .help = "libpq connection string (no password)"},
    {.name = "password_env",
     .type = DM_CFG_STRING,
     .offset = offsetof(dm_pgsink_config_t, password_env),
     .help = "environment variable holding the password"},
    {.name = "password_file",
     .type = DM_CFG_STRING,
     .offset = offsetof(dm_pgsink_config_t, password_file),
     .help = "file holding the password"},
    {.name = "table",
     .type = DM_CFG_STRING,
     .offset = offsetof(dm_pgsink_config_t, table),
     .flags = DM_CFG_REQUIRED,
     .help = "target table: table or schema.table (created when missing)"},
    {.name = "key",
     .type = DM_CFG_STRING_LIST,
     .offset = offsetof(dm_pgsink_config_t, key),
     .help = "primary key columns (default: the source's key; none: rows are appended)"},
    {.name = "offsets_table",
     .type = DM_CFG_STRING,
     .offset = offsetof(dm_pgsink_config_t, offsets_table),
     .def = "datamesh_sink_offsets",
     .help = "table holding the consumed offsets (written with the rows)"},
};

const dm_config_table_t dm_pgsink_config_table = {"postgres sink", fields,
                                                  sizeof(fields) / sizeof(fields[0])};
