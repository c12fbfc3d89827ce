/* connectors/postgres/postgres.h — change data capture from PostgreSQL
 * (logical replication with pgoutput, DBLog snapshots). docs/postgres.md
 * describes topics, events, positions and snapshots for users. */
#ifndef DM_CONNECTORS_POSTGRES_H
#define DM_CONNECTORS_POSTGRES_H

#include <stdint.h>

#include "connectors/source.h"
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
    char *signal_table; /* "schema.table": watermarks and heartbeats */
    int64_t chunk_size; /* rows per snapshot chunk */
} dm_postgres_config_t;

extern const dm_config_table_t dm_postgres_config_table;

/* ---- the running source ---------------------------------------------------------- */

struct dm_transport;
struct dm_unit_status;
struct json_t;

typedef struct dm_pg_source dm_pg_source_t;

/* Makes a source called env->name (the catalog name: its topic when it
 * captures one table, the prefix of its topics otherwise) that produces into
 * env->transport, env->partitions partitions per topic. What the runtime lends
 * (connectors/source.h): topic creation and schema registration (subjects
 * <topic>-value / <topic>-key, compatibility-checked), called on the source's
 * thread; a callback failing with DM_ERR_AGAIN is retried. env's schemas are
 * not used (the tables' schemas come from the database). env is copied, its
 * callbacks' ctx and metrics borrowed; conf is borrowed; both must outlive
 * the source. */
dm_err_t dm_pg_source_new(const dm_source_env_t *env, const dm_postgres_config_t *conf,
                          dm_pg_source_t **out, dm_error_t *err);

/* Streams changes (and runs snapshots) until status->stop is set: each batch of
 * events is committed to the topics in one transaction together with the
 * position (LSN) and snapshot progress, and only then confirmed to the server.
 * Connection losses are retried with backoff; the reason is in status. Runs on
 * the unit's thread. */
void dm_pg_source_run(dm_pg_source_t *src, struct dm_unit_status *status);

/* Asks for a snapshot of table ("schema.table", or NULL for every captured
 * table), optionally of a key range: rows with from <= key <= to (either may
 * be NULL: open). A bound is the key's value in text form, or for a composite
 * key a JSON array of them ('[1, "a"]'). The running source starts it between
 * two batches. Any thread. DM_ERR_NOT_FOUND when table is not captured by this
 * source, DM_ERR_INVALID for a bound that is not valid JSON. */
dm_err_t dm_pg_source_request_snapshot(dm_pg_source_t *src, const char *table, const char *from,
                                       const char *to, dm_error_t *err);

/* The source's details for status (slot lag, position, snapshots), a new
 * JSON reference. Any thread. */
struct json_t *dm_pg_source_status(dm_pg_source_t *src);

/* Frees the source (after dm_pg_source_run returned). NULL is allowed. */
void dm_pg_source_free(dm_pg_source_t *src);

/* The postgres connector (registered in connectors/registry.c). */
extern const dm_source_ops_t dm_postgres_source_ops;

#endif
