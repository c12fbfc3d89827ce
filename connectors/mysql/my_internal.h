/* connectors/mysql/my_internal.h — what the binlog loop (my_source.c), the
 * settings checks (my_setup.c) and the snapshots share. Internal. */
#ifndef DM_CONNECTORS_MY_INTERNAL_H
#define DM_CONNECTORS_MY_INTERNAL_H

#include <jansson.h>
#include <mysql.h>

#include <mariadb_rpl.h> /* needs mysql.h first */
#include <pthread.h>

#include "connectors/dblog.h"
#include "connectors/mysql/my_table.h"
#include "connectors/mysql/mysql.h"
#include "connectors/unit.h"
#include "transport/transport.h"
#include "transport/txn_builder.h"

/* A position in the binlog: what is committed, or to be committed with the
 * batch. A transaction written in part (a large one split over batches) is
 * named with how many of its changes are in the topics. */
typedef struct my_position {
    dm_my_gtid_state_t gtid; /* MariaDB: the last GTID of each domain */
    char mysql_gtid[80];     /* MySQL: the last transaction's uuid:gno */
    char file[256];
    uint64_t pos;           /* the start of the next transaction in file */
    char partial_gtid[256]; /* the transaction partly written (its txn_id) */
    int64_t partial_rows;
} my_position_t;

typedef struct my_pending {
    size_t kstart, klen, vstart, vlen;
    bool has_key;
    int table;           /* -1: a dead letter (value: the raw row; key: the reason) */
    int32_t partition;   /* -1: every partition (truncate) */
    size_t wstart, wlen; /* a dead letter's table and position */
} my_pending_t;

typedef struct my_map {
    uint64_t table_id;
    int table; /* index in tables, -1 when not captured */
} my_map_t;

struct dm_my_source {
    dm_transport_t *t;
    char *name, *state_topic, *group;
    int32_t partitions;
    const dm_mysql_config_t *conf;
    dm_source_env_t env;
    dm_unit_status_t *status;

    pthread_mutex_t mu; /* stats and snapshot requests, shared with the API */
    json_t *stats;
    json_t *requests; /* [{table, from, to}] from the API, for the source's thread */

    /* the source's thread only */
    MYSQL *q, *repl;
    MARIADB_RPL *rpl;
    char *password;
    bool mariadb;
    uint32_t server_id;
    dm_my_table_t *tables;
    int n_tables;
    my_map_t *maps;
    int n_maps;
    bool warned_unknown;

    my_position_t durable, next;
    bool unsaved_start; /* a first start whose position is not committed yet */
    bool purged;        /* the last session found its position purged */
    char file[256];     /* the binlog file being read */

    /* snapshots (connectors/dblog.h) */
    dm_dblog_t dblog;
    char signal_sql[300]; /* `db`.`table` of the signal table */
    dm_my_table_t signal; /* its columns, from its table map */
    MYSQL_RES *chunk_res; /* the rows of the chunk in flight */
    MYSQL_ROW *chunk_rows;
    unsigned long *chunk_lens; /* chunk_n × n_cols lengths */
    int chunk_n, chunk_table;
    uint64_t last_chunk_ns;

    /* the transaction being decoded */
    bool in_txn, standalone;
    char gtid[80];
    char txn_id[256]; /* the GTID, or "@file:pos" of its start without one */
    uint64_t txn_pos;
    int32_t row;
    int64_t commit_ms, skip_rows;
    uint32_t txn_server;

    /* the batch */
    dm_arena_t arena;
    dm_buf_t bytes, key;
    my_pending_t *pend;
    size_t n_pend, cap_pend;
    dm_txn_builder_t txn;
    int64_t last_commit_ms;
    uint64_t events_total;
    uint64_t dead_total; /* rows dead-lettered since the start */
    size_t n_dead;       /* dead letters in the batch */

    struct dm_metric *m_events, *m_lag_ms;
};

/* my_setup.c */
/* Connects the query connection (and reads the password). */
dm_err_t dm_my_connect(dm_my_source_t *src, MYSQL **out, dm_error_t *err);
/* Runs sql on the query connection; *res gets the result when asked for. */
dm_err_t dm_my_query(dm_my_source_t *src, const char *what, const char *sql, MYSQL_RES **res,
                     dm_error_t *err);
/* Checks binlog settings and privileges; refuses with the statement to fix
 * what is missing. */
dm_err_t dm_my_check_settings(dm_my_source_t *src, dm_error_t *err);
/* Does db.table match the configured tables? */
bool dm_my_captured(const dm_my_source_t *src, const char *db, const char *table);
/* Checks the configured tables exist and creates their topics. */
dm_err_t dm_my_check_tables(dm_my_source_t *src, dm_error_t *err);
/* The topic of db.table. */
void dm_my_table_topic(const dm_my_source_t *src, const char *db, const char *table, char *out,
                       size_t cap);

/* my_source.c */
/* Adds an event of table to the batch. */
dm_err_t dm_my_emit(dm_my_source_t *src, int table, const dm_my_event_t *ev, dm_error_t *err);
/* Adds a dead letter to the batch: the raw bytes of a row of table that
 * could not be decoded or does not fit its schema, with the reason. Fails
 * with the reason (the source stops) when the source has no dead-letter
 * topic. */
dm_err_t dm_my_dead(dm_my_source_t *src, int table, const void *raw, size_t len, const char *reason,
                    dm_error_t *err);
/* Adds a captured table's model from information_schema, registering its
 * schemas (nothing when the table is known already). */
dm_err_t dm_my_add_table_from_schema(dm_my_source_t *src, const char *db, const char *name,
                                     dm_error_t *err);
/* The position the batch will commit, as source.position shows it. */
void dm_my_position_text(const dm_my_source_t *src, char *out, size_t cap);

/* my_snapshot.c */
extern const dm_dblog_ops_t dm_my_dblog_ops;
/* A table's model from information_schema (for a table not yet seen in a
 * table map): the same types and metadata its table map will carry. */
dm_err_t dm_my_table_from_schema(dm_my_source_t *src, const char *db, const char *table,
                                 dm_my_table_t *t, dm_error_t *err);
/* A value of the text protocol (SELECT) as a decoded binlog value; s NULL is
 * SQL NULL. Strings point into s. */
dm_err_t dm_my_value_from_text(const dm_my_col_t *c, const char *s, size_t n, dm_my_value_t *v,
                               dm_error_t *err);
/* The key of a row as text that the SELECT side and the binlog side agree on. */
bool dm_my_key_text(const dm_my_table_t *t, const dm_my_value_t *row, dm_buf_t *out);
/* Creates the signal table when missing (and sets src->signal_sql). */
dm_err_t dm_my_ensure_signal_table(dm_my_source_t *src, dm_error_t *err);

#endif
