/* connectors/cockroachdb/crdb_config.c — the cockroachdb connector's settings.
 * The password and the webhook's token never sit in a spec: they come from the
 * environment (or a file), so specs, the API and logs cannot leak them. */
#include <stddef.h>

#include "connectors/cockroachdb/cockroachdb.h"

static const dm_config_field_t fields[] = {
    {.name = "dsn",
     .type = DM_CFG_STRING,
     .offset = offsetof(dm_crdb_config_t, dsn),
     .flags = DM_CFG_REQUIRED,
     .help = "libpq connection string to CockroachDB (host port dbname user sslmode), without "
             "the password"},
    {.name = "password_env",
     .type = DM_CFG_STRING,
     .offset = offsetof(dm_crdb_config_t, password_env),
     .help = "environment variable holding the password"},
    {.name = "password_file",
     .type = DM_CFG_STRING,
     .offset = offsetof(dm_crdb_config_t, password_file),
     .help = "file holding the password"},
    {.name = "table",
     .type = DM_CFG_STRING,
     .offset = offsetof(dm_crdb_config_t, table),
     .flags = DM_CFG_REQUIRED,
     .help = "the watched table (its row is spec.schema, its primary key spec.key)"},
    {.name = "webhook_url",
     .type = DM_CFG_STRING,
     .offset = offsetof(dm_crdb_config_t, webhook_url),
     .help = "https://host:port of this controller as CockroachDB reaches it (required with "
             "create)"},
    {.name = "token_env",
     .type = DM_CFG_STRING,
     .offset = offsetof(dm_crdb_config_t, token_env),
     .help = "environment variable holding an API token the webhook sends (controllers with "
             "--auth)"},
    {.name = "resolved",
     .type = DM_CFG_DURATION,
     .offset = offsetof(dm_crdb_config_t, resolved_ms),
     .def = "10s",
     .min = 1000,
     .max = 3600000,
     .help = "how often the changefeed sends resolved timestamps (the source's position)"},
    {.name = "create",
     .type = DM_CFG_BOOL,
     .offset = offsetof(dm_crdb_config_t, create),
     .def = "true",
     .help = "create the changefeed (false: it exists already; datamesh only receives)"},
    {.name = "diff",
     .type = DM_CFG_BOOL,
     .offset = offsetof(dm_crdb_config_t, diff),
     .def = "true",
     .help = "ask for before images (WITH diff): exact c/u/d ops"},
    {.name = "insecure_tls_skip_verify",
     .type = DM_CFG_BOOL,
     .offset = offsetof(dm_crdb_config_t, insecure_tls_skip_verify),
     .def = "false",
     .help = "let CockroachDB skip verifying this controller's certificate (tests only)"},
    {.name = "max_bytes",
     .type = DM_CFG_INT,
     .offset = offsetof(dm_crdb_config_t, max_bytes),
     .def = "16777216",
     .min = 1024,
     .max = 268435456,
     .help = "largest webhook request body taken"},
};

const dm_config_table_t dm_crdb_config_table = {"cockroachdb connector", fields,
                                                sizeof(fields) / sizeof(fields[0])};
