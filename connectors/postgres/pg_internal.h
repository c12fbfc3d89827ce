/* connectors/postgres/pg_internal.h — what the streaming loop (pg_source.c) and
 * the DBLog snapshots (pg_snapshot.c) share. Internal to the connector. */
#ifndef DM_CONNECTORS_PG_INTERNAL_H
#define DM_CONNECTORS_PG_INTERNAL_H

#include <jansson.h>
#include <libpq-fe.h>
#include <pthread.h>

#include "connectors/dblog.h"
#include "connectors/postgres/pg_table.h"
#include "connectors/postgres/postgres.h"
#include "connectors/unit.h"
#include "transport/transport.h"
#include "transport/txn_builder.h"

/* One encoded record of the batch (offsets into src->bytes). */
typedef struct pg_pending {
    size_t kstart, klen, vstart, vlen;
    bool has_key;
    int table;
    int32_t partition; /* -1: every partition (truncate) */
} pg_pending_t;

/* The position: what is committed, or to be committed with the batch. */
typedef struct pg_position {
    uint64_t commit_lsn;    /* end of the last transaction fully in the topics */
    uint64_t partial_final; /* a transaction partly in the topics (its commit LSN), or 0 */
    uint64_t partial_lsn;   /* ... up to and including this change */
} pg_position_t;

struct dm_pg_source {
    dm_transport_t *t;
    char *name, *state_topic, *group;
    int32_t partitions;
    const dm_postgres_config_t *conf;
    dm_source_env_t env; /* borrowed strings are not used: name is copied */
    dm_unit_status_t *status;

    pthread_mutex_t mu; /* requests and stats: shared with the API */
    json_t *requests;   /* [{table, from, to}] from the API, for the source's thread */
    json_t *stats;

    /* the source's thread only */
    PGconn *q, *repl;
    char *password;
    char db[128];
    char *signal_schema, *signal_name;
    uint32_t signal_relid;
    dm_pg_table_t *tables;
    int n_tables;
    bool warned_unknown;

    pg_position_t durable, next;
    dm_dblog_t dblog;    /* the snapshots (connectors/dblog.h) */
    PGresult *chunk_res; /* the rows of the chunk in flight */
    int chunk_table;     /* ... of this table */
    uint64_t chunk_lsn;  /* the high watermark's LSN while its rows go out */
    uint64_t last_chunk_ns;

    /* the batch */
    dm_arena_t arena;
    dm_buf_t bytes;
    dm_buf_t key; /* scratch for one event's key */
    pg_pending_t *pend;
    size_t n_pend, cap_pend;
    dm_txn_builder_t txn; /* the batch's transaction, memory reused */

    /* the transaction being decoded */
    bool in_txn, skip_txn;
    uint64_t final_lsn, skip_upto;
    uint32_t xid;
    int64_t commit_ms;

    uint64_t server_end; /* the server's WAL end, from its last message */
    uint64_t sent_flush; /* last flush LSN reported to the server */
    uint64_t last_feedback_ns, last_heartbeat_ns;
    int64_t last_commit_ms; /* commit time of the last transaction in the topics */

    /* metrics (NULL without a registry) */
    struct dm_metric *m_lag_bytes, *m_lag_ms, *m_events, *m_snapshot_rows;
};

/* pg_source.c */

dm_err_t dm_pg_exec(dm_pg_source_t *src, const char *what, PGresult **out, const char *sql, int n,
                    const char *const *params, dm_error_t *err);
int dm_pg_table_index(dm_pg_source_t *src, const char *qualified);
dm_err_t dm_pg_emit(dm_pg_source_t *src, int table, const dm_pg_event_t *ev, dm_error_t *err);

/* pg_snapshot.c: the postgres side of connectors/dblog.h */
extern const dm_dblog_ops_t dm_pg_dblog_ops;
/* Starts the next chunk when one is due. */
dm_err_t dm_pg_snapshot_step(dm_pg_source_t *src, dm_error_t *err);
/* A row of the signal table came through the log: a watermark of the chunk? */
dm_err_t dm_pg_snapshot_signal(dm_pg_source_t *src, const char *id, uint64_t lsn, dm_error_t *err);
/* A change to table (key text of one of its rows) came through the log. */
void dm_pg_snapshot_saw(dm_pg_source_t *src, int table, const dm_pgoutput_datum_t *row);
void dm_pg_snapshot_saw_truncate(dm_pg_source_t *src, int table);
void dm_pg_snapshot_abort(dm_pg_source_t *src);
dm_err_t dm_pg_snapshot_add(dm_pg_source_t *src, const char *table, const json_t *from,
                            const json_t *until, dm_error_t *err);

#endif
