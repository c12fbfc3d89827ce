/* log/log.h — the embedded durable log: topics, partitions, consumer group offsets and
 * atomic multi-partition commits, in one data directory.
 *
 * Layout of a data directory:
 *
 *   DIR/LOCK                       flock'ed by the one process that has the log open
 *   DIR/journal                    the commit journal: topic definitions, commits (partition
 *                                  end offsets + group offsets), checkpoints
 *   DIR/topics/<topic>-<p>/<base>.log   segment data (record batches, log/batch.h)
 *   DIR/topics/<topic>-<p>/<base>.idx   sparse offset + time index of that segment
 *
 * Commit protocol. Producers and transactions append batches to the partitions' active
 * segments, then one journal record names every partition's new end offset and the group
 * offsets of the commit. A commit exists when its journal record does: readers see a
 * partition only up to its last committed end (the last stable offset), and recovery cuts
 * the journal at the first record whose data is not all intact, then truncates everything
 * past the surviving end offsets (uncommitted data is invisible and its space reclaimed).
 * Durability follows the topic's fsync policy; concurrent committers share one fsync.
 *
 * Threads: every function here is thread-safe unless it says otherwise. One background
 * thread per log runs interval fsyncs, retention and compaction.
 */
#ifndef DM_LOG_LOG_H
#define DM_LOG_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/error.h"
#include "log/batch.h"

typedef struct dm_log dm_log_t;
typedef struct dm_log_txn dm_log_txn_t;

typedef enum {
    DM_LOG_FSYNC_INTERVAL = 0, /* fsync at most flush_ms after a commit (the default) */
    DM_LOG_FSYNC_ALWAYS = 1,   /* fsync before a commit returns (group commit) */
    DM_LOG_FSYNC_NEVER = 2,    /* leave it to the OS (and to checkpoints and close) */
} dm_log_fsync_t;

#define DM_LOG_TOPIC_NAME_MAX 200
#define DM_LOG_SUBJECT_MAX    255

/* Settings of one topic. Zero values mean the default noted. */
typedef struct dm_log_topic_conf {
    const char *name;            /* [A-Za-z0-9._-], 1..200 chars, not "." or ".." */
    int32_t partitions;          /* default 1 */
    int64_t retention_ms;        /* -1 = keep forever (default) */
    int64_t retention_bytes;     /* per partition; -1 = unlimited (default) */
    bool compact;                /* keep the latest record per key */
    int64_t delete_retention_ms; /* tombstones kept this long after compaction; default 1 day */
    dm_log_fsync_t fsync;        /* default DM_LOG_FSYNC_INTERVAL */
    int64_t flush_ms;            /* for INTERVAL; default 1000 */
    int64_t segment_bytes;       /* roll size; default 64 MiB */
    int64_t segment_ms;          /* roll age; default 7 days */
    dm_batch_comp_t compression; /* of produced batches; default none */
    const char *schema_subject;  /* optional Avro subject name */
} dm_log_topic_conf_t;

/* Options of dm_log_open. Zero values mean the default noted. */
typedef struct dm_log_options {
    int max_open_files;           /* fd cache size; default 256 */
    int64_t journal_max_bytes;    /* checkpoint the journal past this size; default 64 MiB */
    int64_t retention_check_ms;   /* how often retention and compaction run; default 5000 */
    int64_t index_interval_bytes; /* one index entry per this many bytes; default 4096 */
    bool no_background;           /* no background thread (tools and tests) */
} dm_log_options_t;

/* Per-partition numbers reported by describe. */
typedef struct dm_log_partition_info {
    int32_t partition;
    int64_t start_offset; /* first offset still stored */
    int64_t end_offset;   /* last stable offset: one past the last committed record */
    int64_t size_bytes;
    int32_t segments;
} dm_log_partition_info_t;

/* What describe returns. The caller frees parts with free(). */
typedef struct dm_log_topic_info {
    dm_log_topic_conf_t
        conf; /* name and schema_subject point into the log, valid until the topic is deleted */
    uint32_t id;
    int64_t created_ms;
    dm_log_partition_info_t *parts;
} dm_log_topic_info_t;

/* A fetch result, reused across fetches: records point into buffers it owns and stay valid
 * until the next dm_log_read with it or dm_log_fetch_free. One thread uses one fetch. */
typedef struct dm_log_fetch {
    dm_log_record_t *records;
    size_t n;
    int64_t next_offset;     /* where the next read should start */
    int64_t high_watermark;  /* the partition's last stable offset when read */
    dm_batch_hdr_t *batches; /* the headers of the batches the records came from */
    size_t n_batches;
    /* internal */
    dm_buf_t buf;
    dm_arena_t arena;
    size_t cap, cap_batches;
    void *seg; /* the segment whose mapping the records point into (pinned) */
    dm_log_t *log;
} dm_log_fetch_t;

/* Opens (creating it when absent) the data directory dir and recovers it: replays the
 * journal, checks the data of commits since the last checkpoint by CRC, cuts what was not
 * committed and logs what it cut. A corrupt or missing journal in a directory that has
 * topic data is an error (DM_ERR_LOG_META), never silently reset. DM_ERR_AGAIN when another
 * process has it open. The caller frees the log with dm_log_close. opt may be NULL. */
dm_err_t dm_log_open(const char *dir, const dm_log_options_t *opt, dm_log_t **out, dm_error_t *err);

/* Stops the background thread, fsyncs everything, checkpoints the journal and frees the
 * log. No other call may run concurrently or afterwards, and every fetch must have been
 * freed before (a fetch's records point into segment mappings the log owns). */
void dm_log_close(dm_log_t *log);

/* Same as close, without the final fsync and checkpoint (tests: as if the process died
 * after the last write(2)). */
void dm_log_close_dirty(dm_log_t *log);

/* Checks a topic name: DM_ERR_LOG_BAD_NAME with a message saying what is wrong. */
dm_err_t dm_log_topic_name_check(const char *name, dm_error_t *err);

/* Creates a topic; its definition is durable when this returns. DM_ERR_LOG_TOPIC_EXISTS. */
dm_err_t dm_log_topic_create(dm_log_t *log, const dm_log_topic_conf_t *conf, dm_error_t *err);

/* Creates confs[0..n) with one fsync for all (a reconciler applying many specs, tests).
 * Checks every name first; on an error part of them may exist. */
dm_err_t dm_log_topic_create_many(dm_log_t *log, const dm_log_topic_conf_t *confs, size_t n,
                                  dm_error_t *err);

/* Creates a topic whose definition is journaled but not yet durable: a crash
 * before the next dm_log_journal_sync (or any durable commit) may lose it. For
 * callers creating many topics at once (the controller applying thousands of
 * specs), who then make them durable together. DM_ERR_LOG_TOPIC_EXISTS. */
dm_err_t dm_log_topic_create_deferred(dm_log_t *log, const dm_log_topic_conf_t *conf,
                                      dm_error_t *err);

/* Makes every journal record written so far durable (one fsync; nothing when
 * they already are). Any thread. */
dm_err_t dm_log_journal_sync(dm_log_t *log, dm_error_t *err);

/* Deletes a topic and its data. The caller makes sure no other thread uses the topic. */
dm_err_t dm_log_topic_delete(dm_log_t *log, const char *name, dm_error_t *err);

/* Fills info (opening the partitions to measure them). Free info->parts with free(). */
dm_err_t dm_log_topic_describe(dm_log_t *log, const char *name, dm_log_topic_info_t *info,
                               dm_error_t *err);

/* Calls fn for every topic, in creation order; stops when fn returns non-zero. */
void dm_log_topic_list(dm_log_t *log, int (*fn)(void *ctx, const dm_log_topic_conf_t *conf),
                       void *ctx);

/* Number of partitions of topic, or a negative error. */
int32_t dm_log_topic_partitions(dm_log_t *log, const char *name, dm_error_t *err);

/* Appends records[0..n) as one batch to topic/partition and commits it (one journal record);
 * partition -1 = by key hash (null key: partition 0). *base_offset (may be NULL) receives the
 * first offset. Durable per the topic's fsync policy when it returns. */
dm_err_t dm_log_produce(dm_log_t *log, const char *topic, int32_t partition,
                        const dm_log_record_t *records, size_t n, int64_t *base_offset,
                        dm_error_t *err);

/* Starts a transaction: batches on any partitions plus group offsets, committed all or
 * nothing. The transaction belongs to the calling thread until commit or abort frees it. */
dm_err_t dm_log_txn_begin(dm_log_t *log, dm_log_txn_t **out, dm_error_t *err);

/* Adds one batch to the transaction (encoded now, written at commit). */
dm_err_t dm_log_txn_produce(dm_log_txn_t *txn, const char *topic, int32_t partition,
                            const dm_log_record_t *records, size_t n, dm_error_t *err);

/* Adds group's next offset to consume on topic/partition to the transaction. */
dm_err_t dm_log_txn_offset(dm_log_txn_t *txn, const char *group, const char *topic,
                           int32_t partition, int64_t next_offset, dm_error_t *err);

/* Commits: writes the batches, then one journal record; readers see the batches and the
 * offsets apply only when it succeeds. On error nothing of it is visible, now or after a
 * restart. Frees txn in every case. first_offsets (may be NULL) receives, per
 * dm_log_txn_produce call in order, the first offset assigned. */
dm_err_t dm_log_txn_commit(dm_log_txn_t *txn, int64_t *first_offsets, dm_error_t *err);

/* Drops the transaction; nothing of it was written. Frees txn. */
void dm_log_txn_abort(dm_log_txn_t *txn);

/* Commits group offsets alone (a transaction with no batches). */
dm_err_t dm_log_group_commit(dm_log_t *log, const char *group, const char *topic, int32_t partition,
                             int64_t next_offset, dm_error_t *err);

/* The committed next offset of group on topic/partition; DM_ERR_NOT_FOUND when none. */
dm_err_t dm_log_group_offset(dm_log_t *log, const char *group, const char *topic, int32_t partition,
                             int64_t *next_offset, dm_error_t *err);

/* Prepares a fetch for use; nothing is allocated until the first read. */
void dm_log_fetch_init(dm_log_fetch_t *f);

/* Releases a fetch's buffers and the segment it holds. Call it before dm_log_close. */
void dm_log_fetch_free(dm_log_fetch_t *f);

/* Reads committed records of topic/partition from offset, about max_bytes of batches (at
 * least one whole batch). When offset is the end of the partition, waits up to timeout_ms
 * (0 = return at once, -1 = forever) for a commit and returns f->n == 0 on timeout.
 * DM_ERR_LOG_OFFSET_RANGE when offset is below the start or past the end, with the valid
 * range in the message; DM_ERR_LOG_CORRUPT names the offset of a damaged batch. */
dm_err_t dm_log_read(dm_log_t *log, const char *topic, int32_t partition, int64_t offset,
                     size_t max_bytes, int timeout_ms, dm_log_fetch_t *f, dm_error_t *err);

/* First offset whose record timestamp is >= ts_ms (the end offset when none). */
dm_err_t dm_log_offset_for_time(dm_log_t *log, const char *topic, int32_t partition, int64_t ts_ms,
                                int64_t *offset, dm_error_t *err);

/* A wake-up: fn(ctx, id) runs once, on the committing thread and without log
 * locks held, when the partition's stable end passes offset (or the topic is
 * deleted). */
typedef void (*dm_log_wake_fn)(void *ctx, uint64_t id);

/* Registers a wake-up for records at offset and later. When some are already
 * committed nothing is registered and *ready is true: read them now. A second
 * watch with the same (fn, ctx, id) replaces the first. Lets one thread serve
 * many idle readers instead of a thread blocked in dm_log_read each. */
dm_err_t dm_log_watch(dm_log_t *log, const char *topic, int32_t partition, int64_t offset,
                      dm_log_wake_fn fn, void *ctx, uint64_t id, bool *ready, dm_error_t *err);

/* Removes a wake-up that has not run (nothing when there is none). */
void dm_log_unwatch(dm_log_t *log, const char *topic, int32_t partition, dm_log_wake_fn fn,
                    void *ctx, uint64_t id);

/* Start offset and last stable (end) offset of a partition. */
dm_err_t dm_log_offsets(dm_log_t *log, const char *topic, int32_t partition, int64_t *start,
                        int64_t *end, dm_error_t *err);

/* Runs retention and compaction on every partition now (normally the background thread
 * does it every retention_check_ms). Returns the segments deleted or rewritten. */
int dm_log_maintain(dm_log_t *log, int64_t now_ms);

/* Open file descriptors held by the log's segment cache (for tests and metrics). */
int dm_log_open_files(dm_log_t *log);

/* Name of a fsync policy and its parser (-1 when unknown). */
const char *dm_log_fsync_name(dm_log_fsync_t f);
int dm_log_fsync_parse(const char *name);

#endif
