/* log/internal.h — structures shared by the files of the log module (not a public API).
 *
 * Locks, outermost first:
 *   log->commit_mu     one writer at a time: appends to active segments, journal writes
 *   log->sync_mu       group-commit state (durable_lsn, who is fsyncing)
 *   part->open_mu      lazy opening and recovery of a partition
 *   part->seg_lock     (rwlock) the segment array and the active segment's index array
 *   part->mu           the published (committed) end of a partition; readers wait on part->cond
 *   log->fdcache.mu    the LRU of open file descriptors
 */
#ifndef DM_LOG_INTERNAL_H
#define DM_LOG_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "log/log.h"

#define DM_IDX_ENTRY_SIZE 16

/* One sparse index entry: the batch at byte pos starts at base + rel; max_ts is the largest
 * timestamp of every batch up to and including it. On disk: u32 rel, u32 pos, i64 max_ts. */
typedef struct dm_index_entry {
    uint32_t rel;
    uint32_t pos;
    int64_t max_ts;
} dm_index_entry_t;

typedef struct dm_partition dm_partition_t;
typedef struct dm_topic dm_topic_t;

typedef struct dm_segment {
    dm_partition_t *part;
    int64_t base;        /* offset of its first record; names the files */
    int64_t next_offset; /* one past its last offset (sealed: the next segment's base) */
    uint64_t size;       /* bytes of data */
    int64_t max_ts;      /* largest record timestamp (INT64_MIN when empty) */
    int64_t created_ms;
    dm_index_entry_t *idx; /* in memory once loaded */
    uint32_t n_idx, cap_idx;
    uint32_t idx_flushed; /* entries written to the .idx file */
    bool idx_loaded;
    uint64_t since_idx; /* data bytes appended since the last index entry */
    uint64_t last_pos;  /* position of the last batch (for the seal entry) */
    int64_t last_base;  /* base offset of the last batch */
    bool sealed;
    bool needs_sync;       /* sealed with data not yet fsynced (commit_mu) */
    uint64_t prealloc_end; /* space asked for ahead of the writer up to here (commit_mu) */
    uint64_t warm_end;     /* page cache faulted in up to here (log/warm.c; atomic, a hint) */
    /* The warmer extends the data file only under prep_mu and while prep_gen is what it
     * was when asked; every cut of the file takes prep_mu and bumps prep_gen. */
    pthread_mutex_t prep_mu;
    uint32_t prep_gen;
    uint64_t populated; /* readers filled the mapping's page tables up to here (atomic) */
    uint64_t trimmed;   /* the mapping's pages below this were let go (atomic; dm_segment_trim) */
    /* fd cache (log->fdcache.mu): open fds and a read-only mapping of the data file, so
     * reads point into the page cache without copying */
    int fd, idx_fd;
    uint8_t *map;
    size_t map_len;
    int pins;
    struct dm_segment *lru_prev, *lru_next;
    bool in_lru;
    atomic_int refs; /* the partition's array holds one; readers and compaction take more */
    bool unlink_on_free;
} dm_segment_t;

typedef struct dm_fdcache {
    pthread_mutex_t mu;
    dm_segment_t *head, *tail; /* most recently used first */
    int n_open;                /* fds open */
    int max_open;
} dm_fdcache_t;

struct dm_partition {
    dm_topic_t *topic;
    int32_t id;
    char *dir;
    pthread_mutex_t open_mu;
    bool opened;
    pthread_rwlock_t seg_lock;
    dm_segment_t **segs;
    size_t n_segs, cap_segs;
    /* published state (mu) */
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int64_t stable; /* last stable offset: one past the last committed record */
    int waiters;
    struct dm_log_watch *watches; /* one-shot wake-ups past an offset (dm_log_watch) */
    /* writer state (log->commit_mu) */
    int64_t next; /* next offset to assign */
    bool dirty;
    uint64_t dirty_ns;
    dm_partition_t *dirty_next;
    int dir_dirty; /* 1: new segment files' directory entries not synced; 2: also the topics dir */
    /* from the journal: the committed end to recover to */
    int64_t journal_end;
    int64_t crc_end; /* recovery: one past the last offset whose batches pass the CRC */
    /* compaction (background thread) */
    int64_t compacted_to; /* sealed data below this was compacted by the last pass */
    int64_t tomb_min_ts;  /* oldest tombstone the last pass kept (INT64_MAX: none) */
};

struct dm_topic {
    uint32_t id;
    char *name;
    char *subject;
    dm_log_topic_conf_t conf; /* name and schema_subject point at the strings above */
    int64_t created_ms;
    dm_partition_t *parts;
    bool deleted;
    dm_topic_t *hnext; /* name hash chain */
};

typedef struct dm_group_off {
    char *group;
    uint32_t topic_id;
    int32_t partition;
    int64_t offset;
    struct dm_group_off *next;
} dm_group_off_t;

/* Page cache of busy segments comes in folios of this size where it can (prealloc_ahead). */
#define DM_HUGE_PAGE (2u << 20)

/* Keeps a segment's mapping resident only around where it is being written and
 * read: the pages more than DM_RESIDENT_WINDOW below pos are let go (the page
 * cache keeps them; a later read faults them in again). Without it every byte
 * written or read through a mapping stays in the process's RSS (RssFile)
 * until the segment is closed. Any thread; cheap when nothing is due. The window
 * is one folio: a task reads its input within a batch of the writer, so pages
 * further behind are not read again soon. */
void dm_segment_trim(dm_segment_t *s, uint64_t pos);
#define DM_RESIDENT_WINDOW (2u << 20)

/* x rounded up to a multiple of DM_HUGE_PAGE. */
static inline uint64_t dm_huge_up(uint64_t x)
{
    return (x + DM_HUGE_PAGE - 1) & ~(uint64_t)(DM_HUGE_PAGE - 1);
}

/* A thread that faults page cache in ahead of busy writers (log/warm.c). */
typedef struct dm_warm_req {
    dm_segment_t *s; /* pinned and referenced while queued */
    uint64_t from, to;
    uint32_t gen; /* s->prep_gen when asked */
} dm_warm_req_t;

#define DM_WARM_QUEUE 64

typedef struct dm_warmer {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    pthread_t thread;
    bool started, stopping;
    dm_warm_req_t q[DM_WARM_QUEUE];
    unsigned head, n;
} dm_warmer_t;

struct dm_log {
    char *dir;
    int lock_fd;
    dm_log_options_t opt;
    dm_fdcache_t fdcache;
    /* topics */
    pthread_rwlock_t topics_lock;
    dm_topic_t **by_id; /* index = id; deleted topics stay until close */
    uint32_t n_ids, cap_ids;
    dm_topic_t **buckets;
    uint32_t n_buckets, n_live;
    /* commits */
    pthread_mutex_t commit_mu;
    int journal_fd;
    uint64_t journal_size;
    uint64_t lsn;      /* journal records written */
    uint64_t next_txn; /* id of the next commit */
    dm_partition_t *dirty_head;
    dm_buf_t jbuf;
    /* group commit */
    pthread_mutex_t sync_mu;
    pthread_cond_t sync_cond;
    bool syncing;
    uint64_t durable_lsn;
    dm_err_t sync_error;
    dm_partition_t **sync_buf; /* the dirty partitions of the round in progress */
    size_t sync_cap;
    /* groups */
    pthread_mutex_t groups_mu;
    dm_group_off_t **gbuckets;
    uint32_t n_gbuckets, n_groups;
    /* background thread */
    pthread_t bg;
    bool bg_started, stopping;
    pthread_mutex_t bg_mu;
    pthread_cond_t bg_cond;
    uint32_t sweep_cursor;
    dm_warmer_t warm;
};

/* ---- page cache ahead of writers (log/warm.c) ---- */
void dm_warmer_init(dm_warmer_t *w);
/* Reserves [from, to) of s's data file (extending it) and faults the 2 MiB folios
 * starting there in through its mapping — on the warmer thread, or right here when the log
 * runs without background threads. The caller holds a pin on s; the request takes its own. */
void dm_warm_ahead(dm_log_t *log, dm_segment_t *s, uint64_t from, uint64_t to);
/* The same for the pieces starting in [from, to) not faulted in yet, on this thread. */
void dm_warm_now(dm_segment_t *s, uint64_t from, uint64_t to);
/* Stops the thread and drops what is queued. */
void dm_warmer_stop(dm_log_t *log);

/* ---- fd cache (log/segment.c) ---- */
void dm_fdcache_init(dm_fdcache_t *c, int max_open);
void dm_fdcache_destroy(dm_fdcache_t *c);
/* Opens the segment's files when closed and pins them (they stay open until unpinned). */
dm_err_t dm_fdcache_pin(dm_fdcache_t *c, dm_segment_t *s, dm_error_t *err);
void dm_fdcache_unpin(dm_fdcache_t *c, dm_segment_t *s);
/* Closes the segment's fds and takes it off the LRU (it must not be pinned). */
void dm_fdcache_forget(dm_fdcache_t *c, dm_segment_t *s);

/* ---- segments (log/segment.c) ---- */
void dm_segment_path(const dm_segment_t *s, const char *ext, char *out, size_t cap);
/* A segment struct for base in part (no I/O). refs = 1. */
dm_segment_t *dm_segment_new(dm_partition_t *part, int64_t base);
/* Creates the files of a new, empty segment. */
dm_err_t dm_segment_create_files(dm_log_t *log, dm_segment_t *s, dm_error_t *err);
void dm_segment_ref(dm_segment_t *s);
/* Drops a reference; the last one closes fds, unlinks files when unlink_on_free, frees. */
void dm_segment_unref(dm_log_t *log, dm_segment_t *s);
/* Loads and validates the index (rebuilding it from the data when damaged). Caller pins. */
dm_err_t dm_segment_load_index(dm_log_t *log, dm_segment_t *s, dm_error_t *err);
/* Recovery of the last segment: loads the index, walks batches from the last good entry
 * to the end, checking CRCs. Sets size (structural end), next_offset, max_ts; *crc_end
 * receives one past the last offset of the CRC-valid prefix. Writes nothing. */
dm_err_t dm_segment_recover(dm_log_t *log, dm_segment_t *s, int64_t *crc_end, dm_error_t *err);
/* Truncates the segment to the batch starting at offset (which must begin a batch, or be
 * next_offset). Rewrites the index to match. */
dm_err_t dm_segment_truncate_at(dm_log_t *log, dm_segment_t *s, int64_t offset, dm_error_t *err);
/* Appends len bytes of whole batches (offsets already assigned) at s->size; on error the
 * segment is cut back to its old size. Adds index entries. Caller holds commit_mu, pins. */
dm_err_t dm_segment_append(dm_log_t *log, dm_segment_t *s, const uint8_t *data, size_t len,
                           dm_error_t *err);
/* Writes index entries not yet in the file. Caller holds commit_mu and a pin. */
dm_err_t dm_segment_flush_index(dm_segment_t *s, dm_error_t *err);
/* Writes the final index entry so max_ts of a sealed segment is its last entry's. */
dm_err_t dm_segment_seal(dm_log_t *log, dm_segment_t *s, dm_error_t *err);
/* Position of the index entry at or before offset (0 when none). Caller holds seg_lock. */
uint64_t dm_segment_lookup(const dm_segment_t *s, int64_t offset);
/* Position to start scanning for the first timestamp >= ts. */
uint64_t dm_segment_lookup_time(const dm_segment_t *s, int64_t ts);

/* ---- partitions (log/partition.c) ---- */
/* Opens the partition if needed: lists segments, recovers the tail, reconciles with
 * journal_end (truncating uncommitted data). */
dm_err_t dm_partition_ensure_open(dm_log_t *log, dm_partition_t *p, dm_error_t *err);
/* Recovery step 1 only (list segments + tail CRC scan), setting p->crc_end. */
dm_err_t dm_partition_scan(dm_log_t *log, dm_partition_t *p, dm_error_t *err);
/* Appends encoded batches at p->next (patching their base offsets); caller holds
 * commit_mu. *first (may be NULL) receives the first offset assigned. */
dm_err_t dm_partition_append(dm_log_t *log, dm_partition_t *p, uint8_t *data, size_t len,
                             int64_t *first, dm_error_t *err);
/* Cuts everything from offset on (undoing a failed commit). Caller holds commit_mu. */
dm_err_t dm_partition_truncate(dm_log_t *log, dm_partition_t *p, int64_t offset, dm_error_t *err);
/* Makes [.., end) visible and wakes readers. */
void dm_partition_publish(dm_partition_t *p, int64_t end);

/* A registered wake-up (dm_log_watch). */
typedef struct dm_log_watch {
    dm_log_wake_fn fn;
    void *ctx;
    uint64_t id;
    int64_t offset;
    struct dm_log_watch *next;
} dm_log_watch_t;

dm_err_t dm_partition_watch(dm_log_t *log, dm_partition_t *p, int64_t offset, dm_log_wake_fn fn,
                            void *ctx, uint64_t id, bool *ready, dm_error_t *err);
void dm_partition_unwatch(dm_partition_t *p, dm_log_wake_fn fn, void *ctx, uint64_t id);

/* Runs every wake-up of p (its topic is going away) and wakes blocked readers. */
void dm_partition_wake_all(dm_partition_t *p);
dm_err_t dm_partition_read(dm_log_t *log, dm_partition_t *p, int64_t offset, size_t max_bytes,
                           int timeout_ms, dm_log_fetch_t *f, dm_error_t *err);
/* Drops what a fetch holds from its last read. */
void dm_partition_fetch_release(dm_log_fetch_t *f);
dm_err_t dm_partition_offset_for_time(dm_log_t *log, dm_partition_t *p, int64_t ts, int64_t *offset,
                                      dm_error_t *err);
/* Writes the active segment's pending index entries. Caller holds commit_mu. */
void dm_partition_flush_index(dm_log_t *log, dm_partition_t *p);
/* fsyncs the data of the active segment and of sealed segments not yet synced. */
dm_err_t dm_partition_fsync(dm_log_t *log, dm_partition_t *p, dm_error_t *err);
/* Deletes segments past retention. Returns how many. Background thread. */
int dm_partition_retention(dm_log_t *log, dm_partition_t *p, int64_t now_ms);
void dm_partition_info(dm_log_t *log, dm_partition_t *p, dm_log_partition_info_t *out);
/* Frees the partition's memory (segments unref'ed, fds closed). */
void dm_partition_destroy(dm_log_t *log, dm_partition_t *p);

/* ---- compaction (log/compact.c) ---- */
/* Compacts the sealed segments of p, then merges small neighbours; returns segments
 * rewritten or merged away. Background thread. */
int dm_compact_partition(dm_log_t *log, dm_partition_t *p, int64_t now_ms);

/* ---- journal (log/journal.c) ---- */
/* Replays DIR/journal and recovers partitions (see log.h). Called by dm_log_open. */
dm_err_t dm_journal_recover(dm_log_t *log, dm_error_t *err);
/* Encodes and writes (write(2)) one record; caller holds commit_mu. Increments log->lsn. */
dm_err_t dm_journal_write(dm_log_t *log, const uint8_t *body, size_t len, dm_error_t *err);
/* Rewrites the journal as a snapshot of the current state. Caller holds commit_mu and has
 * fsynced every partition. */
dm_err_t dm_journal_checkpoint(dm_log_t *log, dm_error_t *err);
/* Record bodies. */
void dm_journal_enc_create(dm_buf_t *b, const dm_topic_t *t);
void dm_journal_enc_delete(dm_buf_t *b, uint32_t topic_id);

enum {
    DM_JREC_CREATE = 1,
    DM_JREC_DELETE = 2,
    DM_JREC_COMMIT = 3,
    DM_JREC_CHECKPOINT = 4,
};

/* ---- log.c helpers used by journal.c ---- */
dm_topic_t *dm_log_topic_add(dm_log_t *log, uint32_t id, const dm_log_topic_conf_t *conf,
                             int64_t created_ms);
void dm_log_topic_unlink(dm_log_t *log, dm_topic_t *t);
dm_topic_t *dm_log_topic_by_id(dm_log_t *log, uint32_t id);
void dm_log_group_set(dm_log_t *log, const char *group, size_t glen, uint32_t topic_id,
                      int32_t partition, int64_t offset);
/* Syncs every dirty partition and the journal (group commit). */
dm_err_t dm_log_sync_all(dm_log_t *log, dm_error_t *err);

#endif
