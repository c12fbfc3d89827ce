/* connectors/mysql/mysql.h — change data capture from MySQL and MariaDB
 * (the row-based binlog through MariaDB Connector/C's replication API).
 * docs/mysql.md describes topics, events, positions and settings for users. */
#ifndef DM_CONNECTORS_MYSQL_H
#define DM_CONNECTORS_MYSQL_H

#include <stdint.h>

#include "connectors/source.h"
#include "core/config.h"

enum { DM_MY_SNAPSHOT_INITIAL = 0, DM_MY_SNAPSHOT_NEVER = 1, DM_MY_SNAPSHOT_ON_DEMAND = 2 };

typedef struct dm_mysql_config {
    char *host;
    int64_t port;
    char *user;
    char *password_env;  /* environment variable holding the password */
    char *password_file; /* file holding the password */
    dm_strlist_t tables; /* "db.table" or "db.*" */
    int64_t server_id;   /* this replica's id; 0: derived from the source's name */
    int snapshot;
    int64_t heartbeat_ms;
    char *signal_table; /* "db.table": snapshot watermarks */
    int64_t chunk_size; /* rows per snapshot chunk */
    int on_purged;      /* DM_MY_PURGED_FAIL or DM_MY_PURGED_SNAPSHOT */
} dm_mysql_config_t;

enum { DM_MY_PURGED_FAIL = 0, DM_MY_PURGED_SNAPSHOT = 1 };

extern const dm_config_table_t dm_mysql_config_table;

typedef struct dm_my_source dm_my_source_t;

/* Makes a source called env->name producing into env->transport (topics as
 * the postgres connector names them: NAME for one table, NAME.db.table
 * otherwise). env is copied (its callbacks' ctx and metrics borrowed), conf
 * borrowed; both outlive the source. */
dm_err_t dm_my_source_new(const dm_source_env_t *env, const dm_mysql_config_t *conf,
                          dm_my_source_t **out, dm_error_t *err);

/* Streams the binlog until status->stop: each batch of events is committed to
 * the topics in one transaction with the position (GTID state and
 * file:pos) and snapshot progress. Connection losses are retried with backoff;
 * settings and privileges that are missing fail with the statement that fixes
 * them. The unit's thread. */
void dm_my_source_run(dm_my_source_t *src, struct dm_unit_status *status);

/* Asks for a snapshot of table ("db.table", NULL: every captured table),
 * optionally of a key range (bounds as for postgres). Any thread. */
dm_err_t dm_my_source_request_snapshot(dm_my_source_t *src, const char *table, const char *from,
                                       const char *to, dm_error_t *err);

/* Position, lag and snapshots for status, a new reference. Any thread. */
json_t *dm_my_source_status(dm_my_source_t *src);

/* Frees the source (after run returned). NULL is allowed. */
void dm_my_source_free(dm_my_source_t *src);

/* The mysql connector (registered in connectors/registry.c). */
extern const dm_source_ops_t dm_mysql_source_ops;

#endif
