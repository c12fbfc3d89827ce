/* log/partition.c — one partition: its segments, appends, committed reads, waiting
 * readers, recovery to the journal's end offset, retention.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/fs.h"
#include "core/log.h"
#include "log/internal.h"

#define TP     "topic=%s partition=%d"
#define TPA(p) (p)->topic->name, (p)->id

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static dm_err_t push_segment(dm_partition_t *p, dm_segment_t *s)
{
    if (p->n_segs == p->cap_segs) {
        size_t ncap = p->cap_segs ? p->cap_segs * 2 : 4;
        dm_segment_t **n = realloc(p->segs, ncap * sizeof(*n));
        if (!n) return DM_ERR_NOMEM;
        p->segs = n;
        p->cap_segs = ncap;
    }
    p->segs[p->n_segs++] = s;
    return DM_OK;
}

/* ==== opening and recovery ============================================================ */

/* Completes a merge of small segments that was decided (its <first>.log.merged-<end> file
 * complete and durable, see log/compact.c) when the process stopped: the segments after
 * first and before end go, the merged file takes first's name. */
static int finish_merge(dm_partition_t *p, const char *name)
{
    long long first = strtoll(name, NULL, 10), end = strtoll(name + 32, NULL, 10);
    DIR *d = opendir(p->dir);
    if (!d) return -1;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l != 24 || (strcmp(de->d_name + 20, ".log") && strcmp(de->d_name + 20, ".idx")))
            continue;
        long long b = strtoll(de->d_name, NULL, 10);
        if (b > first && b < end) {
            char path[4096];
            snprintf(path, sizeof(path), "%s/%s", p->dir, de->d_name);
            unlink(path);
        }
    }
    closedir(d);
    char from[4096], to[4096];
    snprintf(from, sizeof(from), "%s/%s", p->dir, name);
    snprintf(to, sizeof(to), "%s/%020lld.log", p->dir, first);
    if (rename(from, to)) return -1;
    dm_fsync_dir(p->dir);
    DM_WARN("log", TP ": finished merging the segments from %lld to %lld", TPA(p), first, end);
    return 0;
}

dm_err_t dm_partition_scan(dm_log_t *log, dm_partition_t *p, dm_error_t *err)
{
    if (p->n_segs || p->crc_end >= 0) return DM_OK; /* scanned already */
    p->next = 0;
    p->crc_end = 0;
    DIR *d = opendir(p->dir);
    if (!d) {
        if (errno == ENOENT) return DM_OK;
        return dm_error_set(err, DM_ERR_IO, "opendir %s: %s", p->dir, strerror(errno));
    }
    int64_t *bases = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l == 52 && !strncmp(de->d_name + 20, ".log.merged-", 12)) {
            if (finish_merge(p, de->d_name)) {
                free(bases);
                closedir(d);
                return dm_error_set(err, DM_ERR_IO, "%s/%s: cannot finish a merge: %s", p->dir,
                                    de->d_name, strerror(errno));
            }
            rewinddir(d); /* files were removed and renamed: list again */
            n = 0;
            continue;
        }
        if (l > 8 &&
            (!strcmp(de->d_name + l - 8, ".merging") || !strcmp(de->d_name + l - 8, ".cleaned"))) {
            /* leftover of a compaction that did not finish: the original is intact */
            char path[4096];
            snprintf(path, sizeof(path), "%s/%s", p->dir, de->d_name);
            unlink(path);
            continue;
        }
        if (l != 24 || strcmp(de->d_name + 20, ".log")) continue;
        char *end;
        long long b = strtoll(de->d_name, &end, 10);
        if (end != de->d_name + 20 || b < 0) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            int64_t *nb = realloc(bases, cap * sizeof(*nb));
            if (!nb) {
                free(bases);
                closedir(d);
                return dm_error_set(err, DM_ERR_NOMEM, "segment list");
            }
            bases = nb;
        }
        bases[n++] = b;
    }
    closedir(d);
    if (n) qsort(bases, n, sizeof(*bases), cmp_i64);
    dm_err_t rc = DM_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        dm_segment_t *s = dm_segment_new(p, bases[i]);
        if (!s || push_segment(p, s)) {
            free(s);
            rc = dm_error_set(err, DM_ERR_NOMEM, "segment");
            break;
        }
        char path[4096];
        struct stat st;
        dm_segment_path(s, "log", path, sizeof(path));
        if (stat(path, &st) == 0) {
            s->size = (uint64_t)st.st_size;
            s->created_ms = (int64_t)st.st_mtime * 1000;
        }
        s->sealed = i + 1 < n;
        if (i + 1 < n) s->next_offset = bases[i + 1];
    }
    free(bases);
    if (rc) return rc;
    if (p->n_segs) {
        dm_segment_t *last = p->segs[p->n_segs - 1];
        rc = dm_fdcache_pin(&log->fdcache, last, err);
        if (rc) return dm_error_prefix(err, TP, TPA(p));
        rc = dm_segment_recover(log, last, &p->crc_end, err);
        dm_fdcache_unpin(&log->fdcache, last);
        if (rc) return dm_error_prefix(err, TP, TPA(p));
        p->next = last->next_offset;
        if (last->size == 0 && p->n_segs == 1) p->crc_end = p->next = last->base;
    }
    return DM_OK;
}

/* Removes every record from offset on: whole segments starting at or past it, the tail of
 * the one holding it. Caller holds open_mu or commit_mu (and no seg_lock). */
static dm_err_t cut_from(dm_log_t *log, dm_partition_t *p, int64_t offset, dm_error_t *err)
{
    while (p->n_segs > 0 && p->segs[p->n_segs - 1]->base >= offset) {
        pthread_rwlock_wrlock(&p->seg_lock);
        dm_segment_t *s = p->segs[--p->n_segs];
        pthread_rwlock_unlock(&p->seg_lock);
        s->unlink_on_free = true;
        dm_segment_unref(log, s);
    }
    if (!p->n_segs) return DM_OK;
    dm_segment_t *s = p->segs[p->n_segs - 1];
    dm_err_t rc = dm_fdcache_pin(&log->fdcache, s, err);
    if (rc) return rc;
    pthread_rwlock_wrlock(&p->seg_lock);
    rc = dm_segment_truncate_at(log, s, offset, err);
    s->sealed = false;
    pthread_rwlock_unlock(&p->seg_lock);
    if (!rc && (fdatasync(s->fd) || fdatasync(s->idx_fd)))
        rc = dm_error_set(err, DM_ERR_IO, "fsync: %s", strerror(errno));
    dm_fdcache_unpin(&log->fdcache, s);
    return rc;
}

dm_err_t dm_partition_ensure_open(dm_log_t *log, dm_partition_t *p, dm_error_t *err)
{
    if (__atomic_load_n(&p->opened, __ATOMIC_ACQUIRE)) return DM_OK;
    pthread_mutex_lock(&p->open_mu);
    dm_err_t rc = DM_OK;
    if (p->opened) goto out;
    rc = dm_partition_scan(log, p, err);
    if (rc) goto out;
    int64_t end = p->journal_end;
    if (p->next > end) {
        uint64_t before = 0, after = 0;
        for (size_t i = 0; i < p->n_segs; i++)
            before += p->segs[i]->size;
        rc = cut_from(log, p, end, err);
        if (rc) {
            dm_error_prefix(err, TP ": cutting uncommitted data", TPA(p));
            goto out;
        }
        for (size_t i = 0; i < p->n_segs; i++)
            after += p->segs[i]->size;
        DM_WARN("log",
                TP ": recovery cut %" PRIu64 " bytes of uncommitted data (offsets %" PRId64
                   "..%" PRId64 ")",
                TPA(p), before - after, end, p->next - 1);
        p->next = end;
        if (p->crc_end > end) p->crc_end = end;
        dm_fsync_dir(p->dir);
    } else if (p->next < end) {
        DM_ERROR("log",
                 TP ": committed offsets %" PRId64 "..%" PRId64
                    " are missing from the segments; continuing from %" PRId64,
                 TPA(p), p->next, end - 1, p->next);
        end = p->next;
    }
    if (p->crc_end < end)
        DM_ERROR("log",
                 TP ": the committed batch at offset %" PRId64
                    " fails its CRC; reads of it will report the damage",
                 TPA(p), p->crc_end);
    p->journal_end = end;
    pthread_mutex_lock(&p->mu);
    p->stable = end;
    pthread_mutex_unlock(&p->mu);
    __atomic_store_n(&p->opened, true, __ATOMIC_RELEASE);
out:
    pthread_mutex_unlock(&p->open_mu);
    return rc;
}

/* ==== writing ========================================================================= */

static dm_err_t new_segment(dm_log_t *log, dm_partition_t *p, int64_t base, dm_error_t *err)
{
    /* Directory entries are fsynced for topics that fsync every commit; for the others a
     * lost entry after an OS crash is the data loss their policy accepts (recovery cuts the
     * commits whose data is gone, all or nothing). */
    bool sync_dirs = p->topic->conf.fsync == DM_LOG_FSYNC_ALWAYS;
    char tdir[4096];
    snprintf(tdir, sizeof(tdir), "%s/topics", log->dir);
    if (mkdir(p->dir, 0755) == 0) {
        if (sync_dirs)
            dm_fsync_dir(tdir);
        else
            p->dir_dirty = 2;
    } else if (errno != EEXIST)
        return dm_error_set(err, errno == ENOSPC ? DM_ERR_NO_SPACE : DM_ERR_IO, "mkdir %s: %s",
                            p->dir, strerror(errno));
    dm_segment_t *s = dm_segment_new(p, base);
    if (!s) return dm_error_set(err, DM_ERR_NOMEM, "segment");
    dm_err_t rc = dm_segment_create_files(log, s, err);
    if (rc) {
        free(s);
        return rc;
    }
    if (sync_dirs)
        dm_fsync_dir(p->dir);
    else if (!p->dir_dirty)
        p->dir_dirty = 1;
    pthread_rwlock_wrlock(&p->seg_lock);
    rc = push_segment(p, s);
    pthread_rwlock_unlock(&p->seg_lock);
    if (rc) {
        s->unlink_on_free = true;
        dm_segment_unref(log, s);
        return dm_error_set(err, rc, "segment list");
    }
    return DM_OK;
}

dm_err_t dm_partition_append(dm_log_t *log, dm_partition_t *p, uint8_t *data, size_t len,
                             int64_t *first, dm_error_t *err)
{
    const dm_log_topic_conf_t *c = &p->topic->conf;
    /* Assign offsets. */
    int64_t next = p->next, count = 0;
    for (size_t off = 0; off < len;) {
        dm_batch_hdr_t h;
        dm_batch_parse_header(data + off, len - off, &h);
        dm_batch_set_base_offset(data + off, next);
        next += (int64_t)h.last_offset_delta + 1;
        count += (int64_t)h.last_offset_delta + 1;
        off += h.length;
    }
    dm_segment_t *a = p->n_segs ? p->segs[p->n_segs - 1] : NULL;
    bool roll = !a || (a->size > 0 && (a->size + len > (uint64_t)c->segment_bytes ||
                                       dm_wall_ms() - a->created_ms > c->segment_ms ||
                                       next - a->base > (int64_t)(UINT32_MAX / 2)));
    dm_err_t rc;
    if (roll) {
        if (a && a->size > 0) {
            rc = dm_fdcache_pin(&log->fdcache, a, err);
            if (!rc) {
                rc = dm_segment_seal(log, a, err);
                dm_fdcache_unpin(&log->fdcache, a);
            }
            if (rc) return dm_error_prefix(err, TP, TPA(p));
            rc = new_segment(log, p, p->next, err);
        } else if (!a) {
            rc = new_segment(log, p, p->next, err);
        } else {
            rc = DM_OK;
        }
        if (rc) return dm_error_prefix(err, TP, TPA(p));
        a = p->segs[p->n_segs - 1];
    }
    rc = dm_fdcache_pin(&log->fdcache, a, err);
    if (rc) return dm_error_prefix(err, TP, TPA(p));
    rc = dm_segment_append(log, a, data, len, err);
    dm_fdcache_unpin(&log->fdcache, a);
    if (rc) return rc;
    if (first) *first = p->next;
    p->next = next;
    if (!p->dirty) {
        p->dirty = true;
        p->dirty_ns = dm_now_ns();
        p->dirty_next = log->dirty_head;
        log->dirty_head = p;
    }
    (void)count;
    return DM_OK;
}

dm_err_t dm_partition_truncate(dm_log_t *log, dm_partition_t *p, int64_t offset, dm_error_t *err)
{
    dm_err_t rc = cut_from(log, p, offset, err);
    if (!rc) p->next = offset;
    return rc;
}

/* Takes the watches that end (or, when all, every watch) wakes off the list. Lock held. */
static dm_log_watch_t *take_watches(dm_partition_t *p, int64_t end, bool all)
{
    dm_log_watch_t *due = NULL, **pp = &p->watches;
    while (*pp) {
        dm_log_watch_t *w = *pp;
        if (all || w->offset < end) {
            *pp = w->next;
            w->next = due;
            due = w;
        } else {
            pp = &w->next;
        }
    }
    return due;
}

static void run_watches(dm_log_watch_t *due)
{
    while (due) {
        dm_log_watch_t *w = due;
        due = w->next;
        w->fn(w->ctx, w->id);
        free(w);
    }
}

void dm_partition_publish(dm_partition_t *p, int64_t end)
{
    dm_log_watch_t *due = NULL;
    pthread_mutex_lock(&p->mu);
    if (end > p->stable) {
        /* Readers stop at the first batch at or past stable, so later uncommitted batches
         * in the same segment stay invisible. */
        p->stable = end;
        pthread_cond_broadcast(&p->cond);
        if (p->watches) due = take_watches(p, end, false);
    }
    pthread_mutex_unlock(&p->mu);
    run_watches(due);
}

void dm_partition_wake_all(dm_partition_t *p)
{
    pthread_mutex_lock(&p->mu);
    dm_log_watch_t *due = take_watches(p, 0, true);
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->mu);
    run_watches(due);
}

dm_err_t dm_partition_watch(dm_log_t *log, dm_partition_t *p, int64_t offset, dm_log_wake_fn fn,
                            void *ctx, uint64_t id, bool *ready, dm_error_t *err)
{
    dm_err_t rc = dm_partition_ensure_open(log, p, err); /* stable is known once open */
    if (rc) return rc;
    dm_partition_unwatch(p, fn, ctx, id);
    pthread_mutex_lock(&p->mu);
    *ready = p->stable > offset;
    if (!*ready) {
        dm_log_watch_t *w = malloc(sizeof(*w));
        if (!w) {
            pthread_mutex_unlock(&p->mu);
            return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
        }
        *w = (dm_log_watch_t){fn, ctx, id, offset, p->watches};
        p->watches = w;
    }
    pthread_mutex_unlock(&p->mu);
    return DM_OK;
}

void dm_partition_unwatch(dm_partition_t *p, dm_log_wake_fn fn, void *ctx, uint64_t id)
{
    pthread_mutex_lock(&p->mu);
    for (dm_log_watch_t **pp = &p->watches; *pp; pp = &(*pp)->next) {
        dm_log_watch_t *w = *pp;
        if (w->fn == fn && w->ctx == ctx && w->id == id) {
            *pp = w->next;
            free(w);
            break;
        }
    }
    pthread_mutex_unlock(&p->mu);
}

void dm_partition_flush_index(dm_log_t *log, dm_partition_t *p)
{
    dm_segment_t *s = p->n_segs ? p->segs[p->n_segs - 1] : NULL;
    if (!s || s->idx_flushed == s->n_idx) return;
    if (dm_fdcache_pin(&log->fdcache, s, NULL)) return;
    dm_error_t err = {0};
    if (dm_segment_flush_index(s, &err)) DM_WARN("log", TP ": %s", TPA(p), err.message);
    dm_fdcache_unpin(&log->fdcache, s);
}

static dm_err_t fsync_segment(dm_log_t *log, dm_partition_t *p, dm_segment_t *s, dm_error_t *err)
{
    dm_err_t rc = dm_fdcache_pin(&log->fdcache, s, err);
    if (!rc) {
        if (fdatasync(s->fd))
            rc = dm_error_set(err, DM_ERR_IO, TP ": fsync segment %" PRId64 ": %s", TPA(p), s->base,
                              strerror(errno));
        dm_fdcache_unpin(&log->fdcache, s);
    }
    return rc;
}

dm_err_t dm_partition_fsync(dm_log_t *log, dm_partition_t *p, dm_error_t *err)
{
    /* Sealed segments that still need a sync sit just before the active one. */
    dm_segment_t *todo[8];
    size_t n = 0;
    pthread_rwlock_rdlock(&p->seg_lock);
    for (size_t i = p->n_segs; i > 0 && n < 8; i--) {
        dm_segment_t *s = p->segs[i - 1];
        if (i < p->n_segs && !__atomic_load_n(&s->needs_sync, __ATOMIC_ACQUIRE)) break;
        dm_segment_ref(s);
        todo[n++] = s;
    }
    pthread_rwlock_unlock(&p->seg_lock);
    /* New segment files (and a new partition directory) whose entries were not synced when
     * created: sync them with the data. 2 = the topics directory too. */
    int dd = __atomic_exchange_n(&p->dir_dirty, 0, __ATOMIC_ACQ_REL);
    if (dd) {
        dm_fsync_dir(p->dir);
        if (dd == 2) {
            char tdir[4096];
            snprintf(tdir, sizeof(tdir), "%s/topics", log->dir);
            dm_fsync_dir(tdir);
        }
    }
    dm_err_t rc = DM_OK;
    for (size_t i = 0; i < n; i++) {
        if (!rc) {
            bool sealed = i > 0;
            rc = fsync_segment(log, p, todo[i], err);
            if (!rc && sealed) __atomic_store_n(&todo[i]->needs_sync, false, __ATOMIC_RELEASE);
        }
        dm_segment_unref(log, todo[i]);
    }
    return rc;
}

/* ==== reading ========================================================================= */

/* Index of the last segment with base <= offset, or -1. Caller holds seg_lock. */
static long find_segment(const dm_partition_t *p, int64_t offset)
{
    long lo = 0, hi = (long)p->n_segs;
    while (lo < hi) {
        long mid = (lo + hi) / 2;
        if (p->segs[mid]->base <= offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo - 1;
}

static dm_err_t read_exact(int fd, dm_buf_t *b, size_t at, uint64_t pos, size_t len)
{
    if (dm_buf_reserve(b, at + len - b->len)) return DM_ERR_NOMEM;
    size_t got = 0;
    while (got < len) {
        ssize_t r = pread(fd, b->data + at + got, len - got, (off_t)(pos + got));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return DM_ERR_IO;
        got += (size_t)r;
    }
    if (at + len > b->len) b->len = at + len;
    return DM_OK;
}

/* A reader going through a mapped segment meets a page fault every few pages (the
 * kernel maps up to 64 KiB around a faulting page); ahead of a reader with much left to
 * read, the page tables are filled POPULATE_WINDOW at a time with one madvise instead
 * (which also lets the decoder's prefetches reach the next pages: a prefetch of an
 * unmapped page is dropped). Tailing readers, close to the end, fault as before. */
#define POPULATE_WINDOW (4u << 20)
#define POPULATE_MIN    (256u << 10)

static void populate_ahead(dm_segment_t *s, uint64_t pos, uint64_t limit)
{
#ifdef MADV_POPULATE_READ
    static int unsupported; /* kernels before 5.14 */
    if (__atomic_load_n(&unsupported, __ATOMIC_RELAXED)) return;
    uint64_t done = __atomic_load_n(&s->populated, __ATOMIC_RELAXED);
    if (done > pos + POPULATE_MIN) return; /* well ahead of this reader already */
    uint64_t from = pos & ~(uint64_t)4095;
    if (done > from) from = done;
    /* the page holding the last committed byte lies inside the file */
    uint64_t end = (limit + 4095) & ~(uint64_t)4095, to = from + POPULATE_WINDOW;
    if (to > end) to = end;
    if (to < from + POPULATE_MIN) return; /* near the end: a tailing reader */
    if (madvise(s->map + from, to - from, MADV_POPULATE_READ) == 0)
        __atomic_store_n(&s->populated, to, __ATOMIC_RELAXED);
    else if (errno == EINVAL)
        __atomic_store_n(&unsupported, 1, __ATOMIC_RELAXED);
#else
    (void)s;
    (void)pos;
    (void)limit;
#endif
}

/* Reads committed batches of segment s from the index position before offset, decoding
 * records >= offset into f. Records point into the segment's mapping (no copy at all) or,
 * when it has none, into f->buf (one pread); either way never one copy per record. Once
 * records are decoded the pread buffer is never refilled: the read stops instead.
 * *mapped = the records point into s->map. *more = the segment ended before anything was
 * decoded or the byte budget used. Caller holds seg_lock and a pin on s. */
static dm_err_t read_segment(dm_log_t *log, dm_partition_t *p, dm_segment_t *s, int64_t offset,
                             int64_t stable, uint64_t limit, size_t max_bytes, dm_log_fetch_t *f,
                             bool *more, bool *mapped, dm_error_t *err)
{
    *more = false;
    *mapped = s->map && limit <= s->map_len;
    uint64_t pos = dm_segment_lookup(s, offset);
    if (*mapped) {
        populate_ahead(s, pos, limit);
        dm_segment_trim(s, pos);
    }
    size_t used = 0;
    bool checked_entry = false;
    for (;;) {
        const uint8_t *win;
        size_t win_len;
        if (pos + DM_BATCH_HEADER_SIZE > limit) {
            *more = f->n == 0;
            return DM_OK;
        }
        if (*mapped) {
            win = s->map + pos;
            win_len = (size_t)(limit - pos);
        } else {
            size_t want = max_bytes < DM_BATCH_HEADER_SIZE ? DM_BATCH_HEADER_SIZE : max_bytes;
            if (pos + want > limit) want = (size_t)(limit - pos);
            f->buf.len = 0;
            if (read_exact(s->fd, &f->buf, 0, pos, want))
                return dm_error_set(err, DM_ERR_IO,
                                    TP ": read segment %" PRId64 " at %" PRIu64 ": %s", TPA(p),
                                    s->base, pos, strerror(errno));
            win = f->buf.data;
            win_len = f->buf.len;
        }
        size_t off = 0;
        bool restart = false;
        while (off + DM_BATCH_HEADER_SIZE <= win_len) {
            dm_batch_hdr_t h;
            if (dm_batch_parse_header(win + off, win_len - off, &h))
                return dm_error_set(err, DM_ERR_LOG_CORRUPT,
                                    TP ": segment %" PRId64 " byte %" PRIu64
                                       ": bad batch header (reading offset %" PRId64 ")",
                                    TPA(p), s->base, pos + off, offset);
            if (!checked_entry) {
                checked_entry = true;
                if (h.base_offset > offset && pos > 0) {
                    /* the index pointed past the offset: it is damaged; scan from the start */
                    DM_WARN("log", TP ": segment %" PRId64 ": index entry is wrong, scanning",
                            TPA(p), s->base);
                    pos = 0;
                    restart = true;
                    break;
                }
            }
            if (h.base_offset >= stable) return DM_OK;
            if (off + h.length > win_len) {
                if (off > 0 && !*mapped) {
                    if (f->n > 0) return DM_OK; /* budget used; the rest comes next fetch */
                    break;                      /* only skipped batches so far: refill */
                }
                if (*mapped || pos + h.length > limit)
                    return dm_error_set(err, DM_ERR_LOG_CORRUPT,
                                        TP ": batch at offset %" PRId64
                                           " runs past the end of segment %" PRId64,
                                        TPA(p), h.base_offset, s->base);
                /* one batch larger than the read: read all of it */
                if (read_exact(s->fd, &f->buf, f->buf.len, pos + f->buf.len, h.length - f->buf.len))
                    return dm_error_set(err, DM_ERR_IO, TP ": read: %s", TPA(p), strerror(errno));
                win = f->buf.data;
                win_len = f->buf.len;
                continue;
            }
            int64_t last = h.base_offset + h.last_offset_delta;
            if (last >= offset) {
                bool crc_bad;
                dm_err_t rc = dm_batch_check_decode(win + off, &h, offset, &f->arena, &f->records,
                                                    &f->n, &f->cap, &crc_bad, err);
                if (crc_bad)
                    return dm_error_set(err, DM_ERR_LOG_CORRUPT,
                                        TP ": batch at offsets %" PRId64 "..%" PRId64
                                           " (segment %" PRId64 " byte %" PRIu64 ") fails its CRC",
                                        TPA(p), h.base_offset, last, s->base, pos + off);
                if (rc) return dm_error_prefix(err, TP, TPA(p));
                if (f->n_batches == f->cap_batches) {
                    size_t ncap = f->cap_batches ? f->cap_batches * 2 : 16;
                    dm_batch_hdr_t *nb = dm_arena_alloc(&f->arena, ncap * sizeof(*nb));
                    if (!nb) return dm_error_set(err, DM_ERR_NOMEM, "fetch");
                    if (f->n_batches) memcpy(nb, f->batches, f->n_batches * sizeof(*nb));
                    f->batches = nb;
                    f->cap_batches = ncap;
                }
                f->batches[f->n_batches++] = h;
                f->next_offset = last + 1;
                used += h.length;
            }
            off += h.length;
            if (used >= max_bytes) return DM_OK;
        }
        if (restart) continue;
        if (f->n > 0) return DM_OK;
        pos += off;
        if (*mapped) {
            *more = true;
            return DM_OK;
        }
    }
}

/* Drops the segment pin a fetch holds for its records. */
static void fetch_release(dm_log_fetch_t *f)
{
    if (f->seg) {
        dm_fdcache_unpin(&f->log->fdcache, f->seg);
        dm_segment_unref(f->log, f->seg);
        f->seg = NULL;
    }
}

void dm_partition_fetch_release(dm_log_fetch_t *f)
{
    fetch_release(f);
}

dm_err_t dm_partition_read(dm_log_t *log, dm_partition_t *p, int64_t offset, size_t max_bytes,
                           int timeout_ms, dm_log_fetch_t *f, dm_error_t *err)
{
    size_t keep = f->cap; /* size the record array like the last fetch's: no regrowth */
    f->n = 0;
    f->cap = 0;
    f->records = NULL;
    f->n_batches = f->cap_batches = 0;
    f->batches = NULL;
    fetch_release(f);
    dm_arena_reset(&f->arena);
    if (keep && (f->records = dm_arena_alloc(&f->arena, keep * sizeof(*f->records)))) f->cap = keep;
    dm_err_t rc = dm_partition_ensure_open(log, p, err);
    if (rc) return rc;
    pthread_mutex_lock(&p->mu);
    if (offset == p->stable && timeout_ms != 0) {
        struct timespec dl;
        clock_gettime(CLOCK_MONOTONIC, &dl);
        if (timeout_ms > 0) {
            dl.tv_sec += timeout_ms / 1000;
            dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
            if (dl.tv_nsec >= 1000000000L) {
                dl.tv_sec++;
                dl.tv_nsec -= 1000000000L;
            }
        }
        p->waiters++;
        while (offset == p->stable && !log->stopping) {
            if (timeout_ms < 0)
                pthread_cond_wait(&p->cond, &p->mu);
            else if (pthread_cond_timedwait(&p->cond, &p->mu, &dl) == ETIMEDOUT)
                break;
        }
        p->waiters--;
    }
    int64_t stable = p->stable;
    pthread_mutex_unlock(&p->mu);
    f->high_watermark = stable;
    f->next_offset = offset;
    if (offset > stable || offset < 0)
        return dm_error_set(err, DM_ERR_LOG_OFFSET_RANGE,
                            TP ": offset %" PRId64 " is past the end (%" PRId64 ")", TPA(p), offset,
                            stable);
    if (offset == stable) return DM_OK;
    pthread_rwlock_rdlock(&p->seg_lock);
    long i = find_segment(p, offset);
    if (i < 0) {
        int64_t start = p->n_segs ? p->segs[0]->base : stable;
        pthread_rwlock_unlock(&p->seg_lock);
        return dm_error_set(err, DM_ERR_LOG_OFFSET_RANGE,
                            TP ": offset %" PRId64 " is before the start (%" PRId64 ")", TPA(p),
                            offset, start);
    }
    if (max_bytes < 1024) max_bytes = 1024;
    for (; (size_t)i < p->n_segs && f->n == 0; i++) {
        dm_segment_t *s = p->segs[i];
        if (s->base >= stable) break;
        rc = dm_fdcache_pin(&log->fdcache, s, err);
        if (rc) break;
        rc = dm_segment_load_index(log, s, err);
        bool more = false, mapped = false;
        if (!rc)
            rc =
                read_segment(log, p, s, offset, stable, s->size, max_bytes, f, &more, &mapped, err);
        if (!rc && mapped && f->n > 0) {
            /* the records point into the mapping: keep it until the next fetch */
            dm_segment_ref(s);
            f->seg = s;
            f->log = log;
        } else {
            dm_fdcache_unpin(&log->fdcache, s);
        }
        if (rc || !more) break;
        if ((size_t)i + 1 < p->n_segs && f->n == 0) offset = p->segs[i + 1]->base;
    }
    pthread_rwlock_unlock(&p->seg_lock);
    if (!rc && f->n == 0 && f->next_offset < stable) {
        /* compaction left a gap up to the end of the committed data */
        f->next_offset = offset > f->next_offset ? offset : f->next_offset;
    }
    return rc;
}

dm_err_t dm_partition_offset_for_time(dm_log_t *log, dm_partition_t *p, int64_t ts, int64_t *offset,
                                      dm_error_t *err)
{
    dm_err_t rc = dm_partition_ensure_open(log, p, err);
    if (rc) return rc;
    pthread_mutex_lock(&p->mu);
    int64_t stable = p->stable;
    pthread_mutex_unlock(&p->mu);
    *offset = stable;
    pthread_rwlock_rdlock(&p->seg_lock);
    dm_log_fetch_t f;
    dm_log_fetch_init(&f);
    for (size_t i = 0; i < p->n_segs; i++) {
        dm_segment_t *s = p->segs[i];
        if (s->base >= stable) break;
        rc = dm_fdcache_pin(&log->fdcache, s, err);
        if (rc) break;
        rc = dm_segment_load_index(log, s, err);
        if (rc || (s->sealed && s->max_ts < ts)) {
            dm_fdcache_unpin(&log->fdcache, s);
            if (rc) break;
            continue;
        }
        /* Decode from the index position before ts until a record reaches ts. */
        uint64_t pos = dm_segment_lookup_time(s, ts);
        int64_t from = s->base;
        uint8_t hb[DM_BATCH_HEADER_SIZE];
        dm_batch_hdr_t h;
        if (pread(s->fd, hb, sizeof(hb), (off_t)pos) == (ssize_t)sizeof(hb) &&
            dm_batch_parse_header(hb, sizeof(hb), &h) == DM_OK)
            from = h.base_offset;
        bool found = false;
        while (!found && from < stable) {
            bool more = false, mapped = false;
            f.n = 0;
            f.cap = 0;
            f.n_batches = f.cap_batches = 0;
            dm_arena_reset(&f.arena);
            rc = read_segment(log, p, s, from, stable, s->size, 1 << 20, &f, &more, &mapped, err);
            if (rc) break;
            for (size_t k = 0; k < f.n; k++)
                if (f.records[k].timestamp >= ts) {
                    *offset = f.records[k].offset;
                    found = true;
                    break;
                }
            if (f.n == 0) break;
            from = f.next_offset;
        }
        dm_fdcache_unpin(&log->fdcache, s);
        if (rc || found) break;
    }
    dm_log_fetch_free(&f);
    pthread_rwlock_unlock(&p->seg_lock);
    return rc;
}

/* ==== retention and info ================================================================ */

int dm_partition_retention(dm_log_t *log, dm_partition_t *p, int64_t now_ms)
{
    const dm_log_topic_conf_t *c = &p->topic->conf;
    if (c->retention_ms < 0 && c->retention_bytes < 0) return 0;
    if (dm_partition_ensure_open(log, p, NULL)) return 0;
    pthread_mutex_lock(&p->mu);
    int64_t stable = p->stable;
    pthread_mutex_unlock(&p->mu);
    int deleted = 0;
    for (;;) {
        pthread_rwlock_rdlock(&p->seg_lock);
        bool del = false;
        dm_segment_t *s = NULL;
        if (p->n_segs > 1 && p->segs[1]->base <= stable) {
            s = p->segs[0];
            uint64_t total = 0;
            for (size_t i = 0; i < p->n_segs; i++)
                total += p->segs[i]->size;
            if (c->retention_bytes >= 0 && total - s->size >= (uint64_t)c->retention_bytes)
                del = true;
            if (!del && c->retention_ms >= 0) {
                if (!s->idx_loaded && dm_fdcache_pin(&log->fdcache, s, NULL) == DM_OK) {
                    dm_segment_load_index(log, s, NULL);
                    dm_fdcache_unpin(&log->fdcache, s);
                }
                if (s->idx_loaded && s->max_ts < now_ms - c->retention_ms) del = true;
            }
        }
        pthread_rwlock_unlock(&p->seg_lock);
        if (!del) break;
        pthread_rwlock_wrlock(&p->seg_lock);
        if (p->segs[0] == s) {
            memmove(p->segs, p->segs + 1, (p->n_segs - 1) * sizeof(*p->segs));
            p->n_segs--;
            s->unlink_on_free = true;
            deleted++;
            DM_INFO("log", TP ": retention deleted segment %" PRId64 " (%" PRIu64 " bytes)", TPA(p),
                    s->base, s->size);
        } else {
            s = NULL;
        }
        pthread_rwlock_unlock(&p->seg_lock);
        if (s) dm_segment_unref(log, s);
    }
    return deleted;
}

void dm_partition_info(dm_log_t *log, dm_partition_t *p, dm_log_partition_info_t *out)
{
    memset(out, 0, sizeof(*out));
    out->partition = p->id;
    if (dm_partition_ensure_open(log, p, NULL)) return;
    pthread_mutex_lock(&p->mu);
    out->end_offset = p->stable;
    pthread_mutex_unlock(&p->mu);
    pthread_rwlock_rdlock(&p->seg_lock);
    out->start_offset = p->n_segs ? p->segs[0]->base : out->end_offset;
    if (out->start_offset > out->end_offset) out->start_offset = out->end_offset;
    out->segments = (int32_t)p->n_segs;
    for (size_t i = 0; i < p->n_segs; i++)
        out->size_bytes += (int64_t)p->segs[i]->size;
    pthread_rwlock_unlock(&p->seg_lock);
}

void dm_partition_destroy(dm_log_t *log, dm_partition_t *p)
{
    for (size_t i = 0; i < p->n_segs; i++)
        dm_segment_unref(log, p->segs[i]);
    free(p->segs);
    p->segs = NULL;
    p->n_segs = p->cap_segs = 0;
    free(p->dir);
    pthread_mutex_destroy(&p->open_mu);
    pthread_rwlock_destroy(&p->seg_lock);
    for (dm_log_watch_t *w = p->watches, *next; w; w = next) { /* the log is closing */
        next = w->next;
        free(w);
    }
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cond);
}
