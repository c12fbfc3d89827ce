/* connectors/postgres/postgres.h — change data capture from PostgreSQL
 * (logical replication with pgoutput, DBLog snapshots). */
#ifndef DM_CONNECTORS_POSTGRES_H
#define DM_CONNECTORS_POSTGRES_H

#include <stdint.h>

#include "core/config.h"

enum { DM_PG_SNAPSHOT_INITIAL = 0, DM_PG_SNAPSHOT_NEVER = 1, DM_PG_SNAPSHOT_ON_DEMAND = 2 };

typedef struct dm_postgres_config {
    char *dsn;           /* libpq connection string, without the password */
    char *password_env;  /* environment variable holding the password */
    char *password_file; /* file holding the password */
    dm_strlist_t tables; /* "schema.table" or "schema.*" */
    char *slot;
    char *publication;
    int snapshot;
    int64_t heartbeat_ms;
} dm_postgres_config_t;

extern const dm_config_table_t dm_postgres_config_table;

#endif
