/* log/compact.c — compaction by key: keep the latest record per key in sealed segments.
 *
 * Runs on the background thread. Pass one reads the sealed, fully committed segments and
 * maps hash(key) -> latest offset; pass two rewrites each segment that loses records into
 * <base>.log.cleaned / <base>.idx.cleaned (same base, offsets kept, so offsets get gaps)
 * and renames them over the originals. Tombstones (null values) are kept until they are
 * delete_retention_ms old, then dropped. Writers never wait: they only touch the active
 * segment, and the segment array is locked only for the pointer swap. A crash leaves either
 * the old or the new file under each name; leftover .cleaned files are removed on open.
 * Then runs of small neighbouring segments are merged into one (see "merging" below).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fs.h"
#include "core/hash.h"
#include "core/log.h"
#include "log/internal.h"

typedef struct keymap {
    uint64_t *keys; /* 0 = empty slot (a real hash of 0 is stored as 1) */
    int64_t *offs;
    size_t cap, n;
} keymap_t;

static uint64_t key_hash(const dm_log_record_t *r)
{
    uint64_t h = dm_hash64(r->key, (size_t)r->key_len);
    return h ? h : 1;
}

static int keymap_put(keymap_t *m, uint64_t k, int64_t off)
{
    if ((m->n + 1) * 2 > m->cap) {
        size_t ncap = m->cap ? m->cap * 2 : 1024;
        uint64_t *nk = calloc(ncap, sizeof(*nk));
        int64_t *no = malloc(ncap * sizeof(*no));
        if (!nk || !no) {
            free(nk);
            free(no);
            return -1;
        }
        for (size_t i = 0; i < m->cap; i++)
            if (m->keys[i]) {
                size_t j = m->keys[i] & (ncap - 1);
                while (nk[j])
                    j = (j + 1) & (ncap - 1);
                nk[j] = m->keys[i];
                no[j] = m->offs[i];
            }
        free(m->keys);
        free(m->offs);
        m->keys = nk;
        m->offs = no;
        m->cap = ncap;
    }
    size_t j = k & (m->cap - 1);
    while (m->keys[j] && m->keys[j] != k)
        j = (j + 1) & (m->cap - 1);
    if (!m->keys[j]) {
        m->keys[j] = k;
        m->n++;
    }
    m->offs[j] = off;
    return 0;
}

static int64_t keymap_get(const keymap_t *m, uint64_t k)
{
    size_t j = k & (m->cap - 1);
    while (m->keys[j]) {
        if (m->keys[j] == k) return m->offs[j];
        j = (j + 1) & (m->cap - 1);
    }
    return -1;
}

/* Reads a whole segment into memory (compaction only touches sealed segments). */
static uint8_t *read_all(dm_log_t *log, dm_segment_t *s)
{
    if (dm_fdcache_pin(&log->fdcache, s, NULL)) return NULL;
    uint8_t *b = malloc(s->size ? s->size : 1);
    size_t got = 0;
    while (b && got < s->size) {
        ssize_t r = pread(s->fd, b + got, s->size - got, (off_t)got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    dm_fdcache_unpin(&log->fdcache, s);
    if (b && got != s->size) {
        free(b);
        return NULL;
    }
    return b;
}

/* Calls fn for every batch of data[0..size) that parses and passes its CRC. */
typedef int (*batch_fn)(void *ctx, const uint8_t *p, const dm_batch_hdr_t *h);
static int for_batches(const uint8_t *data, uint64_t size, batch_fn fn, void *ctx)
{
    for (uint64_t pos = 0; pos + DM_BATCH_HEADER_SIZE <= size;) {
        dm_batch_hdr_t h;
        if (dm_batch_parse_header(data + pos, size - pos, &h) || pos + h.length > size ||
            !dm_batch_crc_ok(data + pos, &h))
            return -1;
        if (fn(ctx, data + pos, &h)) return -1;
        pos += h.length;
    }
    return 0;
}

typedef struct pass1 {
    keymap_t *map;
    dm_arena_t arena;
} pass1_t;

static int map_batch(void *ctx, const uint8_t *p, const dm_batch_hdr_t *h)
{
    pass1_t *c = ctx;
    dm_log_record_t *recs = NULL;
    size_t n = 0, cap = 0;
    dm_arena_reset(&c->arena);
    if (dm_batch_decode(p, h, 0, &c->arena, &recs, &n, &cap, NULL)) return -1;
    for (size_t i = 0; i < n; i++)
        if (recs[i].key && keymap_put(c->map, key_hash(&recs[i]), recs[i].offset)) return -1;
    return 0;
}

typedef struct pass2 {
    const keymap_t *map;
    dm_arena_t arena;
    dm_buf_t out, scratch, idx;
    dm_batch_comp_t comp;
    int64_t tomb_cutoff;
    size_t dropped;
    uint64_t since_idx, interval;
    int64_t max_ts;
    uint32_t n_idx;
    int64_t seg_base;
    int64_t tomb_min_ts;
} pass2_t;

static int rewrite_batch(void *ctx, const uint8_t *p, const dm_batch_hdr_t *h)
{
    pass2_t *c = ctx;
    dm_log_record_t *recs = NULL;
    size_t n = 0, cap = 0, k = 0;
    dm_arena_reset(&c->arena);
    if (dm_batch_decode(p, h, 0, &c->arena, &recs, &n, &cap, NULL)) return -1;
    for (size_t i = 0; i < n; i++) {
        dm_log_record_t *r = &recs[i];
        bool keep = !r->key || keymap_get(c->map, key_hash(r)) == r->offset;
        if (keep && !r->value) {
            if (r->timestamp < c->tomb_cutoff)
                keep = false;
            else if (r->timestamp < c->tomb_min_ts)
                c->tomb_min_ts = r->timestamp;
        }
        if (keep)
            recs[k++] = *r;
        else
            c->dropped++;
    }
    if (!k) return 0;
    size_t at = c->out.len;
    if (dm_batch_encode_at(&c->out, &c->scratch, recs[0].offset, recs, k, c->comp, h->txn_id, NULL))
        return -1;
    int64_t last_ts = (int64_t)dm_rd64(c->out.data + at + 32);
    if (last_ts > c->max_ts) c->max_ts = last_ts;
    if (c->n_idx == 0 || c->since_idx >= c->interval) {
        uint8_t e[DM_IDX_ENTRY_SIZE];
        dm_wr32(e, (uint32_t)(recs[0].offset - c->seg_base));
        dm_wr32(e + 4, (uint32_t)at);
        dm_wr64(e + 8, (uint64_t)c->max_ts);
        dm_buf_append(&c->idx, e, sizeof(e));
        c->n_idx++;
        c->since_idx = 0;
    }
    c->since_idx += c->out.len - at;
    return 0;
}

static int write_file(const char *path, const uint8_t *d, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(fd, d + done, len - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        done += (size_t)w;
    }
    int rc = done == len && fdatasync(fd) == 0 ? 0 : -1;
    close(fd);
    if (rc) unlink(path);
    return rc;
}

/* Rewrites s without the records the map supersedes. Returns 1 when rewritten. */
static int rewrite_segment(dm_log_t *log, dm_partition_t *p, dm_segment_t *s, pass2_t *c)
{
    uint8_t *data = read_all(log, s);
    if (!data) return 0;
    dm_buf_reset(&c->out);
    dm_buf_reset(&c->idx);
    c->dropped = 0;
    c->since_idx = 0;
    c->n_idx = 0;
    c->max_ts = INT64_MIN;
    c->seg_base = s->base;
    int bad = for_batches(data, s->size, rewrite_batch, c);
    free(data);
    if (bad || c->dropped == 0) return 0;
    char lpath[4096], ipath[4096], lclean[4200], iclean[4200];
    dm_segment_path(s, "log", lpath, sizeof(lpath));
    dm_segment_path(s, "idx", ipath, sizeof(ipath));
    snprintf(lclean, sizeof(lclean), "%s.cleaned", lpath);
    snprintf(iclean, sizeof(iclean), "%s.cleaned", ipath);
    if (write_file(lclean, c->out.data ? c->out.data : (const uint8_t *)"", c->out.len) ||
        write_file(iclean, c->idx.data ? c->idx.data : (const uint8_t *)"", c->idx.len)) {
        unlink(lclean);
        DM_WARN("log", "topic=%s partition=%d segment=%" PRId64 ": compaction write failed: %s",
                p->topic->name, p->id, s->base, strerror(errno));
        return 0;
    }
    dm_segment_t *ns = dm_segment_new(p, s->base);
    if (!ns) {
        unlink(lclean);
        unlink(iclean);
        return 0;
    }
    ns->size = c->out.len;
    ns->next_offset = s->next_offset;
    ns->max_ts = c->max_ts;
    ns->created_ms = s->created_ms;
    ns->sealed = true;
    ns->idx_loaded = false; /* loaded (and checked) on first use */
    pthread_rwlock_wrlock(&p->seg_lock);
    size_t i = 0;
    while (i < p->n_segs && p->segs[i] != s)
        i++;
    bool found = i < p->n_segs;
    if (found) {
        if (rename(iclean, ipath) == 0 && rename(lclean, lpath) == 0) {
            p->segs[i] = ns;
        } else {
            found = false;
        }
    }
    pthread_rwlock_unlock(&p->seg_lock);
    if (!found) {
        unlink(lclean);
        unlink(iclean);
        free(ns);
        return 0;
    }
    /* The old struct's files were replaced by rename: it must not unlink them. */
    dm_segment_unref(log, s);
    DM_INFO("log",
            "topic=%s partition=%d segment=%" PRId64 ": compacted, dropped %zu records (%" PRIu64
            " bytes left)",
            p->topic->name, p->id, ns->base, c->dropped, ns->size);
    return 1;
}

/* ==== merging small neighbours ==========================================================
 *
 * After compaction by key many sealed segments hold little. Adjacent ones are merged into
 * one of up to segment_bytes: their batches are copied byte for byte (offsets are in the
 * batches, so every record keeps its offset) into a new file under the first one's base,
 * with its index rebuilt. The steps, each one leaving a state recovery completes:
 *   1. <first>.log.merging (and <first>.idx.cleaned) written and fsynced;
 *   2. renamed to <first>.log.merged-<end> (end: the base after the run): the merge is
 *      decided — from here on, recovery finishes it (dm_partition_scan);
 *   3. the later segments' files are unlinked, .merged-<end> renamed over <first>.log and
 *      the index over <first>.idx;
 *   4. the segment array swaps the run for the merged segment.
 * The segments of the run stay pinned throughout, so readers holding them (their fds and
 * mappings) read the old files undisturbed; writers only touch the active segment. */

typedef struct merge_ctx {
    dm_buf_t data, idx;
    int64_t base, max_ts;
    uint64_t since_idx, interval;
} merge_ctx_t;

static int merge_batch(void *ctx, const uint8_t *p, const dm_batch_hdr_t *h)
{
    merge_ctx_t *m = ctx;
    size_t at = m->data.len;
    if (dm_buf_append(&m->data, p, h->length)) return -1;
    if (h->last_ts > m->max_ts) m->max_ts = h->last_ts;
    if (at == 0 || m->since_idx >= m->interval) {
        uint8_t e[DM_IDX_ENTRY_SIZE];
        dm_wr32(e, (uint32_t)(h->base_offset - m->base));
        dm_wr32(e + 4, (uint32_t)at);
        dm_wr64(e + 8, (uint64_t)m->max_ts);
        if (dm_buf_append(&m->idx, e, sizeof(e))) return -1;
        m->since_idx = 0;
    }
    m->since_idx += h->length;
    return 0;
}

/* Merges run[0..n) (adjacent sealed segments, pinned and referenced by the caller). Returns
 * 1 when merged. */
static int merge_run(dm_log_t *log, dm_partition_t *p, dm_segment_t **run, size_t n)
{
    dm_segment_t *first = run[0], *last = run[n - 1];
    merge_ctx_t m = {.data = DM_BUF_INIT,
                     .idx = DM_BUF_INIT,
                     .base = first->base,
                     .max_ts = INT64_MIN,
                     .interval = (uint64_t)log->opt.index_interval_bytes};
    bool ok = true;
    for (size_t i = 0; i < n && ok; i++) {
        uint8_t *d = read_all(log, run[i]);
        ok = d && for_batches(d, run[i]->size, merge_batch, &m) == 0;
        free(d);
    }
    char lpath[4096], ipath[4096], merging[4200], merged[4300], iclean[4200];
    dm_segment_path(first, "log", lpath, sizeof(lpath));
    dm_segment_path(first, "idx", ipath, sizeof(ipath));
    snprintf(merging, sizeof(merging), "%s.merging", lpath);
    snprintf(merged, sizeof(merged), "%s.merged-%020" PRId64, lpath, last->next_offset);
    snprintf(iclean, sizeof(iclean), "%s.cleaned", ipath);
    dm_segment_t *ns = ok ? dm_segment_new(p, first->base) : NULL;
    if (!ns || write_file(merging, m.data.data ? m.data.data : (const uint8_t *)"", m.data.len) ||
        write_file(iclean, m.idx.data ? m.idx.data : (const uint8_t *)"", m.idx.len) ||
        rename(merging, merged)) {
        if (ok)
            DM_WARN("log", "topic=%s partition=%d segment=%" PRId64 ": merge not written: %s",
                    p->topic->name, p->id, first->base, strerror(errno));
        unlink(merging);
        unlink(iclean);
        free(ns);
        dm_buf_free(&m.data);
        dm_buf_free(&m.idx);
        return 0;
    }
    dm_fsync_dir(p->dir); /* step 2 is durable: recovery completes the merge from here */
    for (size_t i = 1; i < n; i++) {
        char path[4096];
        dm_segment_path(run[i], "log", path, sizeof(path));
        unlink(path);
        dm_segment_path(run[i], "idx", path, sizeof(path));
        unlink(path);
    }
    if (rename(merged, lpath)) {
        /* The old segments stay in use (pinned, their files open); the next open finishes
         * the merge from the .merged file. */
        DM_ERROR("log",
                 "topic=%s partition=%d segment=%" PRId64
                 ": finishing a merge: %s (finished at the next open)",
                 p->topic->name, p->id, first->base, strerror(errno));
        unlink(iclean);
        free(ns);
        dm_buf_free(&m.data);
        dm_buf_free(&m.idx);
        return 0;
    }
    if (rename(iclean, ipath)) /* the old index still describes a valid prefix */
        unlink(iclean);
    dm_fsync_dir(p->dir);
    ns->size = m.data.len;
    ns->next_offset = last->next_offset;
    ns->max_ts = m.max_ts;
    ns->created_ms = last->created_ms;
    ns->sealed = true;
    ns->idx_loaded = false; /* loaded (and checked) on first use */
    uint64_t bytes = m.data.len;
    dm_buf_free(&m.data);
    dm_buf_free(&m.idx);
    pthread_rwlock_wrlock(&p->seg_lock);
    size_t at = 0;
    while (at < p->n_segs && p->segs[at] != first)
        at++;
    /* the run is still in place: only this thread removes sealed segments of a compacted
     * partition, and topic delete waits for it (bg_mu) */
    p->segs[at] = ns;
    memmove(p->segs + at + 1, p->segs + at + n, (p->n_segs - at - n) * sizeof(*p->segs));
    p->n_segs -= n - 1;
    pthread_rwlock_unlock(&p->seg_lock);
    /* the array's references; the files are gone or replaced already */
    for (size_t i = 0; i < n; i++)
        dm_segment_unref(log, run[i]);
    DM_INFO("log",
            "topic=%s partition=%d: merged %zu segments from %" PRId64 " into one of %" PRIu64
            " bytes",
            p->topic->name, p->id, n, first->base, bytes);
    return 1;
}

/* Merges runs of adjacent sealed, committed, synced segments that fit in segment_bytes
 * together. Returns the segments merged away. Background thread. */
static int merge_small(dm_log_t *log, dm_partition_t *p, int64_t stable)
{
    uint64_t limit = (uint64_t)p->topic->conf.segment_bytes;
    int merged = 0;
    for (size_t from = 0;;) {
        dm_segment_t *run[64];
        size_t n = 0;
        uint64_t total = 0;
        pthread_rwlock_rdlock(&p->seg_lock);
        /* the first run at or after from */
        for (; from + 1 < p->n_segs && n < 2; from++) {
            n = 0;
            total = 0;
            for (size_t i = from; i + 1 < p->n_segs && n < 64; i++) {
                dm_segment_t *s = p->segs[i];
                if (p->segs[i + 1]->base > stable || !s->sealed ||
                    __atomic_load_n(&s->needs_sync, __ATOMIC_ACQUIRE) || total + s->size > limit)
                    break;
                run[n++] = s;
                total += s->size;
            }
            if (n >= 2) break;
        }
        for (size_t i = 0; i < n && n >= 2; i++)
            dm_segment_ref(run[i]);
        pthread_rwlock_unlock(&p->seg_lock);
        if (n < 2) break;
        size_t pinned = 0;
        while (pinned < n && dm_fdcache_pin(&log->fdcache, run[pinned], NULL) == DM_OK)
            pinned++;
        int done = pinned == n ? merge_run(log, p, run, n) : 0;
        for (size_t i = 0; i < pinned; i++)
            dm_fdcache_unpin(&log->fdcache, run[i]);
        for (size_t i = 0; i < n; i++)
            dm_segment_unref(log, run[i]);
        if (!done) break;
        merged += (int)n - 1;
        from++; /* the merged segment is full enough or last of its run */
    }
    return merged;
}

int dm_compact_partition(dm_log_t *log, dm_partition_t *p, int64_t now_ms)
{
    if (dm_partition_ensure_open(log, p, NULL)) return 0;
    pthread_mutex_lock(&p->mu);
    int64_t stable = p->stable;
    pthread_mutex_unlock(&p->mu);
    pthread_rwlock_rdlock(&p->seg_lock);
    size_t n = 0;
    dm_segment_t **segs = NULL;
    if (p->n_segs > 1) segs = malloc((p->n_segs - 1) * sizeof(*segs));
    for (size_t i = 0; segs && i + 1 < p->n_segs && p->segs[i + 1]->base <= stable; i++) {
        segs[n++] = p->segs[i];
        dm_segment_ref(p->segs[i]);
    }
    pthread_rwlock_unlock(&p->seg_lock);
    int rewritten = 0;
    /* Nothing new since the last pass and no kept tombstone due: skip. */
    int64_t sealed_to = n ? segs[n - 1]->next_offset : 0;
    int64_t tomb_due = p->tomb_min_ts == INT64_MAX
                           ? INT64_MAX
                           : p->tomb_min_ts + p->topic->conf.delete_retention_ms;
    if (n == 0 || (sealed_to <= p->compacted_to && now_ms < tomb_due)) {
        for (size_t i = 0; i < n; i++)
            dm_segment_unref(log, segs[i]);
        free(segs);
        return 0;
    }
    keymap_t map = {0};
    pass1_t c1 = {.map = &map};
    dm_arena_init(&c1.arena, 0);
    bool ok = true;
    for (size_t i = 0; i < n && ok; i++) {
        uint8_t *data = read_all(log, segs[i]);
        ok = data && for_batches(data, segs[i]->size, map_batch, &c1) == 0;
        free(data);
    }
    dm_arena_destroy(&c1.arena);
    if (ok && map.n) {
        pass2_t c2 = {.map = &map,
                      .out = DM_BUF_INIT,
                      .scratch = DM_BUF_INIT,
                      .idx = DM_BUF_INIT,
                      .comp = p->topic->conf.compression,
                      .tomb_cutoff = now_ms - p->topic->conf.delete_retention_ms,
                      .interval = (uint64_t)log->opt.index_interval_bytes,
                      .tomb_min_ts = INT64_MAX};
        dm_arena_init(&c2.arena, 0);
        for (size_t i = 0; i < n; i++)
            rewritten += rewrite_segment(log, p, segs[i], &c2);
        dm_arena_destroy(&c2.arena);
        p->compacted_to = sealed_to;
        p->tomb_min_ts = c2.tomb_min_ts;
        dm_buf_free(&c2.out);
        dm_buf_free(&c2.scratch);
        dm_buf_free(&c2.idx);
    } else if (!ok) {
        DM_WARN("log", "topic=%s partition=%d: compaction skipped: a sealed segment is unreadable",
                p->topic->name, p->id);
    }
    free(map.keys);
    free(map.offs);
    for (size_t i = 0; i < n; i++)
        dm_segment_unref(log, segs[i]);
    free(segs);
    if (ok) rewritten += merge_small(log, p, stable);
    return rewritten;
}
