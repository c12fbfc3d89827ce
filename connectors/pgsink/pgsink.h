/* connectors/pgsink/pgsink.h — the postgres sink: rows of a topic into a
 * table it creates from the Avro schema and evolves, upserted by key, deleted
 * on tombstones and change events with op 'd', exactly once (the consumed
 * offsets are written in the same transaction as the rows). */
#ifndef DM_CONNECTORS_PGSINK_H
#define DM_CONNECTORS_PGSINK_H

#include "connectors/sink.h"
#include "core/config.h"

typedef struct dm_pgsink_config {
    dm_sink_common_config_t common;
    char *dsn;           /* libpq connection string, without the password */
    char *password_env;  /* environment variable holding the password */
    char *password_file; /* file holding the password */
    char *table;         /* "table" or "schema.table" */
    dm_strlist_t key;    /* key columns; empty = the input source's key */
    char *offsets_table; /* where the consumed offsets live */
} dm_pgsink_config_t;

extern const dm_config_table_t dm_pgsink_config_table;
extern const dm_sink_ops_t dm_pgsink_ops;

#endif
