/* connectors/dblog.h — full-state snapshots the DBLog way (Netflix, 2020),
 * for any change-data-capture connector: no table locks, no pause of the log.
 *
 * A table is read in chunks in primary-key order. For each chunk: a low
 * watermark row is written to the source database's signal table, the chunk
 * is SELECTed, a high watermark row is written. Both rows come back through
 * the database's log (WAL, binlog). A change to a row of the chunk that the
 * log shows between the watermarks is newer than what the SELECT saw, so that
 * row is dropped from the chunk; at the high watermark the rest of the chunk
 * goes out as snapshot ('r') events, in the log's order. Memory is one chunk.
 * Progress (the key of the last row read) is committed by the connector with
 * the chunk's events (dm_dblog_json), so a crash redoes at most the chunk that
 * was in flight.
 *
 * The connector owns the rows of a chunk (a PGresult, a MYSQL_RES…) and lends
 * them through dm_dblog_ops_t; the algorithm sees a row only as the text of
 * its key (key values joined by 0x1f), which the connector must produce the
 * same way for a row of the chunk and for a row of a change in the log.
 *
 *   dm_dblog_init(&d, &ops, src, "source=orders connector=mysql", 32768);
 *   dm_dblog_add(&d, "shop.orders", n_key_columns, NULL, NULL, est_rows, &err);
 *   dm_dblog_step(&d, &err);                 // between batches: the next chunk
 *   dm_dblog_saw(&d, table, key, len);        // for each change the log shows
 *   dm_dblog_signal(&d, id, &done, &err);     // for each signal-table row
 *   json = dm_dblog_json(&d);                 // committed with the events
 *
 * Thread: the connector's thread only. */
#ifndef DM_CONNECTORS_DBLOG_H
#define DM_CONNECTORS_DBLOG_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/error.h"

/* What the connector does for the algorithm; ctx is the connector's. */
typedef struct dm_dblog_ops {
    /* The index of a captured table ("db.table" / "schema.table") and its
     * number of key columns, or -1 when it is not captured any more. */
    int (*table_index)(void *ctx, const char *table, int *n_key);
    /* Writes and commits a watermark row (id, kind: "low" / "high"). */
    dm_err_t (*write_watermark)(void *ctx, const char *id, const char *kind, dm_error_t *err);
    /* Reads up to limit rows of table in key order: keys after `after` (when
     * given, else from `from`, inclusive), up to `until` (inclusive); each is
     * a JSON array of key values as text, or NULL. Keeps the rows and sets
     * *n_rows. DM_ERR_INVALID for bounds that cannot be keys of the table
     * (the snapshot is dropped with a warning). */
    dm_err_t (*select_chunk)(void *ctx, int table, const json_t *after, const json_t *from,
                             const json_t *until, int64_t limit, int *n_rows, dm_error_t *err);
    /* Appends the key text of row r of the chunk to out; false when it has
     * none. */
    bool (*row_key)(void *ctx, int r, dm_buf_t *out);
    /* The key values of row r as a JSON array of text (a new reference). */
    json_t *(*row_key_json)(void *ctx, int r);
    /* Emits row r of the chunk as a snapshot event. */
    dm_err_t (*emit_row)(void *ctx, int table, int r, dm_error_t *err);
    /* Releases the chunk's rows. */
    void (*release_chunk)(void *ctx);
} dm_dblog_ops_t;

/* A table being snapshotted: where the next chunk starts. */
typedef struct dm_dblog_snap {
    char *table;
    json_t *after;        /* key of the last row read (array of text values), NULL at the start */
    json_t *from, *until; /* the key range asked for (inclusive bounds), NULL: open */
    int64_t rows, chunks, total;
} dm_dblog_snap_t;

typedef struct dm_dblog_slot {
    uint64_t hash; /* of the row's key text; 0 = empty */
    int row;
} dm_dblog_slot_t;

typedef struct dm_dblog {
    const dm_dblog_ops_t *ops;
    void *ctx;
    char who[200]; /* for logs: "source=orders connector=mysql" */
    char tag[64];  /* prefix of watermark ids (the slot, the server id…) */
    int64_t chunk_size;
    dm_dblog_snap_t *snaps; /* the queue; snaps[0] is under way */
    int n_snaps;
    bool dirty; /* the queue changed since dm_dblog_committed */
    /* the chunk between its watermarks */
    bool active, window_open, truncated;
    int table;
    char lw[96], hw[96];
    int n_rows, n_dropped;
    bool *dropped;
    dm_dblog_slot_t *slots;
    size_t n_slots;
    dm_buf_t keys;   /* key texts of the chunk's rows, back to back */
    size_t *key_off; /* row r's key: keys[key_off[r], key_off[r + 1]) */
} dm_dblog_t;

/* Sets d up; ops and ctx are borrowed. tag names the watermarks' owner. */
void dm_dblog_init(dm_dblog_t *d, const dm_dblog_ops_t *ops, void *ctx, const char *who,
                   const char *tag, int64_t chunk_size);
/* Frees the queue and the chunk (releasing its rows). */
void dm_dblog_destroy(dm_dblog_t *d);

/* Queues a snapshot of table (nothing when one is under way), with optional
 * key bounds (a JSON value, or an array of n_key values); total is an
 * estimate of its rows for status. DM_ERR_INVALID for a bound with the wrong
 * number of values. A table without a key is skipped with a warning. */
dm_err_t dm_dblog_add(dm_dblog_t *d, const char *table, int n_key, const json_t *from,
                      const json_t *until, int64_t total, dm_error_t *err);

/* Starts the next chunk when none is in flight: writes the low watermark,
 * reads the chunk, writes the high watermark. */
dm_err_t dm_dblog_step(dm_dblog_t *d, dm_error_t *err);

/* A row of the signal table came through the log. When it is the chunk's high
 * watermark the chunk's remaining rows are emitted (ops->emit_row) and *done
 * is set (the connector records the position with them). */
dm_err_t dm_dblog_signal(dm_dblog_t *d, const char *id, bool *done, dm_error_t *err);

/* A change to a row of table (its key text) came through the log. */
void dm_dblog_saw(dm_dblog_t *d, int table, const void *key, size_t len);
/* table was truncated in the log while its chunk was open: the chunk is void. */
void dm_dblog_saw_truncate(dm_dblog_t *d, int table);
/* Gives up the chunk in flight (a new session, or the table changed). */
void dm_dblog_abort(dm_dblog_t *d);
/* Whether table's chunk is in flight. */
bool dm_dblog_busy(const dm_dblog_t *d, int table);

/* The queue as JSON (for the state record; a new reference), and back. */
json_t *dm_dblog_json(const dm_dblog_t *d);
void dm_dblog_load(dm_dblog_t *d, const json_t *list);
/* Empties the queue. */
void dm_dblog_clear(dm_dblog_t *d);
/* The queue for status: table, rows, chunks, estimated_rows, percent, range. */
json_t *dm_dblog_status(const dm_dblog_t *d);

#endif
