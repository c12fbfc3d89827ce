/* connectors/postgres/postgres_config.c — the postgres connector's settings.
 * The password never sits in a spec: it comes from an environment variable or
 * a file, so specs, the API and logs cannot leak it. */
#include <stddef.h>

#include "connectors/postgres/postgres.h"

static const char *const snapshot_modes[] = {"initial", "never", "on_demand", NULL};

static const dm_config_field_t fields[] = {
    {.name = "dsn",
     .type = DM_CFG_STRING,
     .offset = offsetof(dm_postgres_config_t, dsn),
     .flags = DM_CFG_REQUIRED,
     .help = "libpq connection string (no password)"},
    {.name = "password_env",
     .type = DM_CFG_STRING,
     .offset = offsetof(dm_postgres_config_t, password_env),
     .help = "environment variable holding the password"},
    {.name = "password_file",
     .type = DM_CFG_STRING,
     .offset = offsetof(dm_postgres_config_t, password_file),
     .help = "file holding the password"},
    {.name = "tables",
     .type = DM_CFG_STRING_LIST,
     .offset = offsetof(dm_postgres_config_t, tables),
     .flags = DM_CFG_REQUIRED,
     .help = "tables to capture: schema.table or schema.*"},
    {.name = "slot",
     .type = DM_CFG_STRING,
     .offset = offsetof(dm_postgres_config_t, slot),
     .def = "datamesh",
     .help = "replication slot (created when missing)"},
    {.name = "publication",
     .type = DM_CFG_STRING,
     .offset = offsetof(dm_postgres_config_t, publication),
     .def = "datamesh",
     .help = "publication (created when missing)"},
    {.name = "snapshot",
     .type = DM_CFG_ENUM,
     .offset = offsetof(dm_postgres_config_t, snapshot),
     .def = "initial",
     .enum_values = snapshot_modes,
     .help = "initial, never or on_demand"},
    {.name = "heartbeat",
     .type = DM_CFG_DURATION,
     .offset = offsetof(dm_postgres_config_t, heartbeat_ms),
     .def = "10s",
     .min = 100,
     .max = 3600000,
     .help = "heartbeat interval, so quiet tables do not hold WAL"},
    {.name = "signal_table",
     .type = DM_CFG_STRING,
     .offset = offsetof(dm_postgres_config_t, signal_table),
     .def = "public.datamesh_signal",
     .help = "table for snapshot watermarks and heartbeats (created when missing)"},
    {.name = "chunk_size",
     .type = DM_CFG_INT,
     .offset = offsetof(dm_postgres_config_t, chunk_size),
     .def = "32768",
     .min = 1,
     .max = 1000000,
     .help = "rows per snapshot chunk (memory is bounded by one chunk)"},
};

const dm_config_table_t dm_postgres_config_table = {"postgres connector", fields,
                                                    sizeof(fields) / sizeof(fields[0])};
