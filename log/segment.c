/* log/segment.c — segment files, their sparse offset/time index and the fd cache.
 *
 * A segment is <base>.log (record batches back to back) and <base>.idx (one 16-byte entry
 * per ~index_interval_bytes of data: relative offset, byte position, running max
 * timestamp — it is the offset index and the time index at once). The index is a hint:
 * when it fails validation it is rebuilt from the data, which is the truth.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "log/internal.h"

/* ==== fd cache ==================================================================== */

void dm_fdcache_init(dm_fdcache_t *c, int max_open)
{
    pthread_mutex_init(&c->mu, NULL);
    c->head = c->tail = NULL;
    c->n_open = 0;
    c->max_open = max_open < 8 ? 8 : max_open;
}

void dm_fdcache_destroy(dm_fdcache_t *c)
{
    pthread_mutex_destroy(&c->mu);
}

static void lru_remove(dm_fdcache_t *c, dm_segment_t *s)
{
    if (!s->in_lru) return;
    if (s->lru_prev)
        s->lru_prev->lru_next = s->lru_next;
    else
        c->head = s->lru_next;
    if (s->lru_next)
        s->lru_next->lru_prev = s->lru_prev;
    else
        c->tail = s->lru_prev;
    s->lru_prev = s->lru_next = NULL;
    s->in_lru = false;
}

static void lru_push_head(dm_fdcache_t *c, dm_segment_t *s)
{
    s->lru_prev = NULL;
    s->lru_next = c->head;
    if (c->head) c->head->lru_prev = s;
    c->head = s;
    if (!c->tail) c->tail = s;
    s->in_lru = true;
}

static void prealloc_release(dm_segment_t *s);
static int cut_file(dm_segment_t *s, uint64_t size);

static void close_fds(dm_fdcache_t *c, dm_segment_t *s)
{
    if (s->fd >= 0) prealloc_release(s); /* an unpinned segment: no append is running */
    if (s->map) {
        munmap(s->map, s->map_len);
        s->map = NULL;
        s->map_len = 0;
        __atomic_store_n(&s->trimmed, 0, __ATOMIC_RELAXED); /* a new mapping starts empty */
    }
    if (s->fd >= 0) {
        close(s->fd);
        c->n_open--;
    }
    if (s->idx_fd >= 0) {
        close(s->idx_fd);
        c->n_open--;
    }
    s->fd = s->idx_fd = -1;
}

/* Closes least recently used unpinned segments until under the limit. */
static void evict(dm_fdcache_t *c, int want_free)
{
    dm_segment_t *s = c->tail;
    while (s && c->n_open + want_free > c->max_open) {
        dm_segment_t *prev = s->lru_prev;
        if (s->pins == 0) {
            close_fds(c, s);
            lru_remove(c, s);
        }
        s = prev;
    }
}

/* Maps len bytes of the file read-only at an address aligned to 2 MiB, asking for huge
 * pages: the page cache of a segment then comes in 2 MiB folios where it can (see
 * prealloc_ahead), each mapped by one page-table entry instead of 512. NULL on failure. */
static void *map_aligned(int fd, size_t len)
{
    uint8_t *area = mmap(NULL, len + DM_HUGE_PAGE, PROT_NONE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (area == MAP_FAILED) return NULL;
    uint8_t *at = (uint8_t *)(uintptr_t)dm_huge_up((uintptr_t)area);
    void *m = mmap(at, len, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 0);
    if (m == MAP_FAILED) {
        munmap(area, len + DM_HUGE_PAGE);
        return NULL;
    }
    if (at > area) munmap(area, (size_t)(at - area));
    size_t tail = (size_t)(area + len + DM_HUGE_PAGE - (at + len));
    if (tail) munmap(at + len, tail);
#ifdef MADV_HUGEPAGE
    madvise(at, len, MADV_HUGEPAGE); /* only a preference: without it, 4 KiB pages */
#endif
    return at;
}

dm_err_t dm_fdcache_pin(dm_fdcache_t *c, dm_segment_t *s, dm_error_t *err)
{
    pthread_mutex_lock(&c->mu);
    if (s->fd < 0) {
        evict(c, 2);
        char path[4096];
        dm_segment_path(s, "log", path, sizeof(path));
        s->fd = open(path, O_RDWR | O_CLOEXEC);
        if (s->fd < 0) {
            int e = errno;
            pthread_mutex_unlock(&c->mu);
            return dm_error_set(err, e == ENOENT ? DM_ERR_NOT_FOUND : DM_ERR_IO, "open %s: %s",
                                path, strerror(e));
        }
        c->n_open++;
        dm_segment_path(s, "idx", path, sizeof(path));
        s->idx_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (s->idx_fd < 0) {
            int e = errno;
            close(s->fd);
            s->fd = -1;
            c->n_open--;
            pthread_mutex_unlock(&c->mu);
            return dm_error_set(err, DM_ERR_IO, "open %s: %s", path, strerror(e));
        }
        c->n_open++;
        /* Map as much as the segment may grow to (address space only); reads past the
         * mapping fall back to pread. */
        struct stat st;
        if (fstat(s->fd, &st) == 0) {
            size_t want = (size_t)st.st_size;
            if (!s->sealed) {
                size_t grow = (size_t)s->part->topic->conf.segment_bytes + (16u << 20);
                if (want < grow) want = grow;
            }
            want = (want + 4095) & ~(size_t)4095;
            if (want) {
                void *m = map_aligned(s->fd, want);
                if (m) {
                    s->map = m;
                    s->map_len = want;
                }
            }
        }
    }
    lru_remove(c, s);
    lru_push_head(c, s);
    s->pins++;
    pthread_mutex_unlock(&c->mu);
    return DM_OK;
}

void dm_fdcache_unpin(dm_fdcache_t *c, dm_segment_t *s)
{
    pthread_mutex_lock(&c->mu);
    s->pins--;
    if (c->n_open > c->max_open) evict(c, 0);
    pthread_mutex_unlock(&c->mu);
}

void dm_fdcache_forget(dm_fdcache_t *c, dm_segment_t *s)
{
    pthread_mutex_lock(&c->mu);
    close_fds(c, s);
    lru_remove(c, s);
    pthread_mutex_unlock(&c->mu);
}

/* ==== segment basics ================================================================ */

void dm_segment_path(const dm_segment_t *s, const char *ext, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%020" PRId64 ".%s", s->part->dir, s->base, ext);
}

dm_segment_t *dm_segment_new(dm_partition_t *part, int64_t base)
{
    dm_segment_t *s = calloc(1, sizeof(*s));
    if (!s) return NULL;
    s->part = part;
    s->base = base;
    s->next_offset = base;
    s->max_ts = INT64_MIN;
    s->fd = s->idx_fd = -1;
    s->last_base = -1;
    atomic_init(&s->refs, 1);
    pthread_mutex_init(&s->prep_mu, NULL);
    return s;
}

dm_err_t dm_segment_create_files(dm_log_t *log, dm_segment_t *s, dm_error_t *err)
{
    char path[4096];
    dm_segment_path(s, "log", path, sizeof(path));
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return dm_error_set(err, DM_ERR_IO, "create %s: %s", path, strerror(errno));
    close(fd);
    dm_segment_path(s, "idx", path, sizeof(path));
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return dm_error_set(err, DM_ERR_IO, "create %s: %s", path, strerror(errno));
    close(fd);
    s->idx_loaded = true;
    s->created_ms = dm_wall_ms();
    return DM_OK;
}

void dm_segment_ref(dm_segment_t *s)
{
    atomic_fetch_add(&s->refs, 1);
}

void dm_segment_unref(dm_log_t *log, dm_segment_t *s)
{
    if (atomic_fetch_sub(&s->refs, 1) != 1) return;
    dm_fdcache_forget(&log->fdcache, s);
    if (s->unlink_on_free) {
        char path[4096];
        dm_segment_path(s, "log", path, sizeof(path));
        unlink(path);
        dm_segment_path(s, "idx", path, sizeof(path));
        unlink(path);
    }
    pthread_mutex_destroy(&s->prep_mu);
    free(s->idx);
    free(s);
}

/* ==== batch walking =================================================================== */

/* A window over the segment file for walking batches. */
typedef struct walker {
    int fd;
    dm_buf_t buf;
    uint64_t win_pos; /* file position of buf.data[0] */
} walker_t;

/* Makes [pos, pos+need) readable in the window. Returns a pointer, or NULL at EOF/short. */
static const uint8_t *walk_get(walker_t *w, uint64_t pos, size_t need, uint64_t file_end)
{
    if (pos + need > file_end) return NULL;
    if (pos >= w->win_pos && pos + need <= w->win_pos + w->buf.len)
        return w->buf.data + (pos - w->win_pos);
    size_t want = need < (1u << 20) ? (1u << 20) : need;
    if (pos + want > file_end) want = (size_t)(file_end - pos);
    w->buf.len = 0;
    if (dm_buf_reserve(&w->buf, want)) return NULL;
    size_t got = 0;
    while (got < want) {
        ssize_t r = pread(w->fd, w->buf.data + got, want - got, (off_t)(pos + got));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    w->buf.len = got;
    w->win_pos = pos;
    return got >= need ? w->buf.data : NULL;
}

static dm_err_t idx_push(dm_segment_t *s, uint32_t rel, uint32_t pos, int64_t max_ts)
{
    if (s->n_idx == s->cap_idx) {
        uint32_t ncap = s->cap_idx ? s->cap_idx * 2 : 64;
        dm_index_entry_t *n = realloc(s->idx, ncap * sizeof(*n));
        if (!n) return DM_ERR_NOMEM;
        s->idx = n;
        s->cap_idx = ncap;
    }
    s->idx[s->n_idx++] = (dm_index_entry_t){rel, pos, max_ts};
    return DM_OK;
}

static dm_err_t idx_write_from(dm_segment_t *s, uint32_t from, dm_error_t *err)
{
    if (from >= s->n_idx) {
        s->idx_flushed = s->n_idx;
        return DM_OK;
    }
    size_t n = s->n_idx - from;
    uint8_t stack[DM_IDX_ENTRY_SIZE * 8];
    uint8_t *b = n <= 8 ? stack : malloc(n * DM_IDX_ENTRY_SIZE);
    if (!b) return dm_error_set(err, DM_ERR_NOMEM, "index");
    for (size_t i = 0; i < n; i++) {
        dm_index_entry_t *e = &s->idx[from + i];
        dm_wr32(b + i * 16, e->rel);
        dm_wr32(b + i * 16 + 4, e->pos);
        dm_wr64(b + i * 16 + 8, (uint64_t)e->max_ts);
    }
    ssize_t w = pwrite(s->idx_fd, b, n * DM_IDX_ENTRY_SIZE, (off_t)from * DM_IDX_ENTRY_SIZE);
    if (b != stack) free(b);
    if (w == (ssize_t)(n * DM_IDX_ENTRY_SIZE)) s->idx_flushed = s->n_idx;
    if (w != (ssize_t)(n * DM_IDX_ENTRY_SIZE)) {
        char path[4096];
        dm_segment_path(s, "idx", path, sizeof(path));
        return dm_error_set(err, errno == ENOSPC ? DM_ERR_NO_SPACE : DM_ERR_IO, "write %s: %s",
                            path, w < 0 ? strerror(errno) : "short write");
    }
    return DM_OK;
}

/* Walks batches of s from pos (expecting the first at base >= expect) to file_end, adding
 * index entries as an append would. Stops at the first structurally bad batch. Sets
 * s->size, next_offset, max_ts, last_pos/last_base. *crc_end = one past the last offset of
 * the CRC-valid prefix of what it walked (check_crc only). */
static dm_err_t walk_batches(dm_log_t *log, dm_segment_t *s, uint64_t pos, int64_t expect,
                             uint64_t file_end, bool check_crc, int64_t *crc_end, uint64_t *bad_pos)
{
    walker_t w = {.fd = s->fd, .buf = DM_BUF_INIT, .win_pos = 0};
    bool crc_good = true;
    uint64_t interval = (uint64_t)log->opt.index_interval_bytes;
    if (crc_end) *crc_end = expect;
    *bad_pos = UINT64_MAX;
    for (;;) {
        const uint8_t *p = walk_get(&w, pos, DM_BATCH_HEADER_SIZE, file_end);
        if (!p) break;
        dm_batch_hdr_t h;
        if (dm_batch_parse_header(p, DM_BATCH_HEADER_SIZE, &h) || h.base_offset < expect ||
            h.base_offset - s->base + (int64_t)h.last_offset_delta > UINT32_MAX)
            break;
        if (check_crc && crc_good) {
            p = walk_get(&w, pos, h.length, file_end);
            if (!p) break;
            if (!dm_batch_crc_ok(p, &h)) {
                crc_good = false;
                *bad_pos = pos;
            }
        } else if (pos + h.length > file_end) {
            break;
        }
        int64_t bmax = s->max_ts > h.last_ts ? s->max_ts : h.last_ts;
        if (s->n_idx == 0 || s->since_idx >= interval) {
            if (s->n_idx == 0 || s->idx[s->n_idx - 1].pos < pos) {
                if (idx_push(s, (uint32_t)(h.base_offset - s->base), (uint32_t)pos, bmax)) {
                    dm_buf_free(&w.buf);
                    return DM_ERR_NOMEM;
                }
            }
            s->since_idx = 0;
        }
        s->max_ts = bmax;
        s->since_idx += h.length;
        s->last_pos = pos;
        s->last_base = h.base_offset;
        pos += h.length;
        expect = h.base_offset + h.last_offset_delta + 1;
        if (crc_end && crc_good) *crc_end = expect;
    }
    s->size = pos;
    s->next_offset = expect;
    dm_buf_free(&w.buf);
    return DM_OK;
}

/* ==== index =============================================================================== */

/* The last entry must point at a batch starting at its offset. */
static bool index_valid_last(dm_segment_t *s)
{
    if (!s->n_idx) return true;
    dm_index_entry_t *e = &s->idx[s->n_idx - 1];
    uint8_t hb[DM_BATCH_HEADER_SIZE];
    dm_batch_hdr_t h;
    if (pread(s->fd, hb, sizeof(hb), e->pos) != (ssize_t)sizeof(hb)) return false;
    return dm_batch_parse_header(hb, sizeof(hb), &h) == DM_OK && h.base_offset == s->base + e->rel;
}

static bool index_valid(dm_segment_t *s, uint64_t data_size)
{
    for (uint32_t i = 0; i < s->n_idx; i++) {
        dm_index_entry_t *e = &s->idx[i];
        if (e->pos >= data_size) return false;
        if (i == 0 && e->pos != 0) return false;
        if (i > 0 && (e->pos <= s->idx[i - 1].pos || e->rel < s->idx[i - 1].rel ||
                      e->max_ts < s->idx[i - 1].max_ts))
            return false;
    }
    return index_valid_last(s);
}

static dm_err_t index_read(dm_segment_t *s, dm_error_t *err)
{
    struct stat st;
    if (fstat(s->idx_fd, &st)) return dm_error_set(err, DM_ERR_IO, "fstat: %s", strerror(errno));
    size_t n = (size_t)st.st_size / DM_IDX_ENTRY_SIZE;
    free(s->idx);
    s->idx = NULL;
    s->n_idx = s->cap_idx = 0;
    if (n == 0) return DM_OK;
    uint8_t *b = malloc(n * DM_IDX_ENTRY_SIZE);
    s->idx = malloc(n * sizeof(dm_index_entry_t));
    if (!b || !s->idx) {
        free(b);
        return dm_error_set(err, DM_ERR_NOMEM, "index of %zu entries", n);
    }
    s->cap_idx = (uint32_t)n;
    ssize_t r = pread(s->idx_fd, b, n * DM_IDX_ENTRY_SIZE, 0);
    if (r != (ssize_t)(n * DM_IDX_ENTRY_SIZE)) n = r > 0 ? (size_t)r / DM_IDX_ENTRY_SIZE : 0;
    for (size_t i = 0; i < n; i++)
        s->idx[i] = (dm_index_entry_t){dm_rd32(b + i * 16), dm_rd32(b + i * 16 + 4),
                                       (int64_t)dm_rd64(b + i * 16 + 8)};
    s->n_idx = (uint32_t)n;
    s->idx_flushed = s->n_idx;
    free(b);
    return DM_OK;
}

static dm_err_t index_rebuild(dm_log_t *log, dm_segment_t *s, uint64_t data_end, dm_error_t *err)
{
    s->n_idx = 0;
    s->since_idx = 0;
    s->max_ts = INT64_MIN;
    uint64_t bad;
    dm_err_t rc = walk_batches(log, s, 0, s->base, data_end, false, NULL, &bad);
    if (rc) return dm_error_set(err, rc, "rebuilding index");
    if (ftruncate(s->idx_fd, 0))
        return dm_error_set(err, DM_ERR_IO, "truncate index: %s", strerror(errno));
    return idx_write_from(s, 0, err);
}

dm_err_t dm_segment_load_index(dm_log_t *log, dm_segment_t *s, dm_error_t *err)
{
    if (s->idx_loaded) return DM_OK;
    dm_err_t rc = index_read(s, err);
    if (rc) return rc;
    if (!index_valid(s, s->size) || (s->n_idx == 0 && s->size > 0)) {
        if (s->size > 0)
            DM_WARN("log", "topic=%s partition=%d segment=%" PRId64 ": index damaged, rebuilding",
                    s->part->topic->name, s->part->id, s->base);
        uint64_t keep = s->size;
        int64_t keep_next = s->next_offset;
        rc = index_rebuild(log, s, s->size, err);
        if (rc) return rc;
        if (s->size != keep) {
            DM_ERROR("log",
                     "topic=%s partition=%d segment=%" PRId64
                     ": data stops parsing at byte %" PRIu64 " of %" PRIu64,
                     s->part->topic->name, s->part->id, s->base, s->size, keep);
            s->size = keep; /* readers report the damage when they reach it */
            s->next_offset = keep_next;
        }
    } else if (s->n_idx) {
        s->max_ts = s->idx[s->n_idx - 1].max_ts;
    }
    s->idx_loaded = true;
    return DM_OK;
}

/* True when bytes [from, to) of fd are all zero (or cannot be read: then not). */
static bool all_zero(int fd, uint64_t from, uint64_t to)
{
    static const uint8_t zeros[4096];
    uint8_t buf[4096];
    while (from < to) {
        size_t n = to - from < sizeof(buf) ? (size_t)(to - from) : sizeof(buf);
        ssize_t r = pread(fd, buf, n, (off_t)from);
        if (r <= 0 || memcmp(buf, zeros, (size_t)r)) return false;
        from += (uint64_t)r;
    }
    return true;
}

dm_err_t dm_segment_recover(dm_log_t *log, dm_segment_t *s, int64_t *crc_end, dm_error_t *err)
{
    struct stat st;
    if (fstat(s->fd, &st)) return dm_error_set(err, DM_ERR_IO, "fstat: %s", strerror(errno));
    uint64_t file_end = (uint64_t)st.st_size;
    dm_err_t rc = index_read(s, err);
    if (rc) return rc;
    /* Keep the longest valid prefix of the index; entries past the data are dropped. */
    uint32_t keep = s->n_idx;
    for (uint32_t i = 0; i < s->n_idx; i++) {
        dm_index_entry_t *e = &s->idx[i];
        if (e->pos >= file_end || (i == 0 && e->pos != 0) ||
            (i > 0 && (e->pos <= s->idx[i - 1].pos || e->rel < s->idx[i - 1].rel ||
                       e->max_ts < s->idx[i - 1].max_ts))) {
            keep = i;
            break;
        }
    }
    while (keep > 0) {
        s->n_idx = keep;
        if (index_valid_last(s)) break;
        keep--;
    }
    s->n_idx = keep;
    uint64_t pos = 0;
    int64_t expect = s->base;
    s->max_ts = INT64_MIN;
    if (keep) {
        dm_index_entry_t *e = &s->idx[keep - 1];
        s->n_idx = keep - 1; /* the walk re-adds the entry for the batch at e->pos */
        pos = e->pos;
        expect = s->base + e->rel;
        s->max_ts = keep > 1 ? s->idx[keep - 2].max_ts : INT64_MIN;
        s->since_idx = (uint64_t)log->opt.index_interval_bytes;
    }
    uint64_t bad;
    rc = walk_batches(log, s, pos, expect, file_end, true, crc_end, &bad);
    if (rc) return dm_error_set(err, rc, "recovering segment");
    /* zeros after the data are space reserved ahead of the writer (prealloc_ahead), not a
     * torn batch: cut without a warning */
    bool zero_tail = all_zero(s->fd, s->size, file_end);
    if (ftruncate(s->idx_fd, 0))
        return dm_error_set(err, DM_ERR_IO, "truncate index: %s", strerror(errno));
    rc = idx_write_from(s, 0, err);
    if (rc) return rc;
    if (file_end > s->size && ftruncate(s->fd, (off_t)s->size))
        return dm_error_set(err, DM_ERR_IO, "truncate torn tail: %s", strerror(errno));
    if (file_end > s->size && zero_tail)
        DM_INFO("log",
                "topic=%s partition=%d segment=%" PRId64 ": %" PRIu64
                " bytes reserved ahead of the writer released",
                s->part->topic->name, s->part->id, s->base, file_end - s->size);
    else if (file_end > s->size)
        DM_WARN("log",
                "topic=%s partition=%d segment=%" PRId64 ": %" PRIu64
                " bytes after the last whole batch (offset %" PRId64 ") are torn; cut",
                s->part->topic->name, s->part->id, s->base, file_end - s->size, s->next_offset);
    s->idx_loaded = true;
    s->created_ms = (int64_t)st.st_mtime * 1000;
    return DM_OK;
}

dm_err_t dm_segment_truncate_at(dm_log_t *log, dm_segment_t *s, int64_t offset, dm_error_t *err)
{
    /* Find the batch boundary at offset by walking headers from the index entry before it. */
    uint32_t i = s->n_idx;
    while (i > 0 && s->base + s->idx[i - 1].rel > offset)
        i--;
    uint64_t pos = i ? s->idx[i - 1].pos : 0;
    int64_t expect = i ? s->base + s->idx[i - 1].rel : s->base;
    uint64_t cut = UINT64_MAX, q = pos;
    walker_t w = {.fd = s->fd, .buf = DM_BUF_INIT, .win_pos = 0};
    while (q < s->size) {
        const uint8_t *p = walk_get(&w, q, DM_BATCH_HEADER_SIZE, s->size);
        dm_batch_hdr_t h;
        if (!p || dm_batch_parse_header(p, DM_BATCH_HEADER_SIZE, &h)) break;
        if (h.base_offset >= offset) {
            if (h.base_offset == offset) cut = q;
            break;
        }
        q += h.length;
    }
    dm_buf_free(&w.buf);
    if (cut == UINT64_MAX && q >= s->size && offset >= s->next_offset) cut = s->size;
    if (cut == UINT64_MAX)
        return dm_error_set(err, DM_ERR_LOG_CORRUPT,
                            "topic=%s partition=%d: offset %" PRId64
                            " is not at a batch boundary of segment %" PRId64,
                            s->part->topic->name, s->part->id, offset, s->base);
    /* Redo the index for [0, cut). */
    s->n_idx = i ? i - 1 : 0;
    s->max_ts = s->n_idx ? s->idx[s->n_idx - 1].max_ts : INT64_MIN;
    s->since_idx = (uint64_t)log->opt.index_interval_bytes;
    uint64_t bad;
    dm_err_t rc = walk_batches(log, s, pos, expect, cut, false, NULL, &bad);
    if (rc) return dm_error_set(err, rc, "truncating");
    if (s->n_idx == 0) s->since_idx = 0;
    if (cut_file(s, cut) || ftruncate(s->idx_fd, 0))
        return dm_error_set(err, DM_ERR_IO, "truncate segment %" PRId64 ": %s", s->base,
                            strerror(errno));
    rc = idx_write_from(s, 0, err);
    if (rc) return rc;
    s->size = cut;
    s->next_offset = offset > s->base ? offset : s->base;
    return DM_OK;
}

/* ==== append and lookup ============================================================ */

/* Space and page cache ahead of the writes of a busy segment: when a write comes within
 * 2 MiB of what was asked for, ask for up to the 2 MiB boundary past it plus
 * PREALLOC_AHEAD. The warmer (log/warm.c) extends the file over that and makes its 2 MiB
 * folios; why, and what it costs, is there. Only past PREALLOC_FROM bytes of data, so the
 * many small topics reserve nothing; sealing, closing and recovery cut the file back to
 * its data (recovery knows reserved space by its zeros). A failure (no support, no space)
 * only means the writes take the slower path, which reports a full disk itself.
 * PREALLOC_AHEAD is one folio: every populated folio counts in the process's RSS, and
 * with 4 MiB the four busy segments of a file → filter → file pipeline held 8–10 MiB
 * each (peak RSS 72 MiB; 52 MiB with one folio ahead and a 2 MiB resident window). */
#define PREALLOC_FROM  (1u << 20)
#define PREALLOC_AHEAD (2u << 20)

static void prealloc_ahead(dm_log_t *log, dm_segment_t *s, uint64_t at, uint64_t end)
{
    if (end < PREALLOC_FROM) return;
    if (end + PREALLOC_AHEAD / 2 > s->prealloc_end) {
        uint64_t from = s->prealloc_end > s->size ? s->prealloc_end : s->size;
        uint64_t limit = (uint64_t)s->part->topic->conf.segment_bytes;
        uint64_t to = dm_huge_up(end) + PREALLOC_AHEAD;
        if (to > limit) to = limit > end ? limit : end;
        if (to > from) {
            dm_warm_ahead(log, s, from, to);
            s->prealloc_end = to;
        }
    }
    /* a writer faster than the warmer faults in the pieces it is about to start itself */
    dm_warm_now(s, at, end);
}

/* Cuts the data file to size, taking back what was reserved ahead of the writer. */
static int cut_file(dm_segment_t *s, uint64_t size)
{
    pthread_mutex_lock(&s->prep_mu);
    int rc = ftruncate(s->fd, (off_t)size);
    __atomic_store_n(&s->prep_gen, s->prep_gen + 1, __ATOMIC_RELAXED);
    s->prealloc_end = 0;
    __atomic_store_n(&s->warm_end, 0, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&s->prep_mu);
    return rc;
}

/* Gives back blocks reserved past the data (a sealed or truncated segment). */
static void prealloc_release(dm_segment_t *s)
{
    /* A truncate to the current size frees blocks past the end (a hole punch does not:
     * file systems only punch inside the file's size). */
    if (s->prealloc_end > 0 && cut_file(s, s->size)) {
        /* nothing lost: recovery cuts the zeros, and the blocks go with the segment */
    }
}

dm_err_t dm_segment_append(dm_log_t *log, dm_segment_t *s, const uint8_t *data, size_t len,
                           dm_error_t *err)
{
    uint64_t at = s->size;
    prealloc_ahead(log, s, at, at + len);
    size_t done = 0;
    while (done < len) {
        ssize_t w = pwrite(s->fd, data + done, len - done, (off_t)(at + done));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            int e = w < 0 ? errno : ENOSPC;
            if (cut_file(s, at)) { /* keep going: the caller reports e */
            }
            return dm_error_set(err, e == ENOSPC || e == EFBIG ? DM_ERR_NO_SPACE : DM_ERR_IO,
                                "topic=%s partition=%d: write segment %" PRId64 " at byte %" PRIu64
                                ": %s",
                                s->part->topic->name, s->part->id, s->base, at + done, strerror(e));
        }
        done += (size_t)w;
    }
    uint32_t first_new = s->n_idx;
    uint64_t interval = (uint64_t)log->opt.index_interval_bytes;
    int64_t max_ts = s->max_ts;
    pthread_rwlock_wrlock(&s->part->seg_lock);
    for (size_t off = 0; off < len;) {
        dm_batch_hdr_t h;
        dm_batch_parse_header(data + off, len - off, &h);
        if (h.last_ts > max_ts) max_ts = h.last_ts;
        if (s->n_idx == 0 || s->since_idx >= interval) {
            if (idx_push(s, (uint32_t)(h.base_offset - s->base), (uint32_t)(at + off), max_ts)) {
                pthread_rwlock_unlock(&s->part->seg_lock);
                return dm_error_set(err, DM_ERR_NOMEM, "index");
            }
            s->since_idx = 0;
        }
        s->since_idx += h.length;
        s->last_pos = at + off;
        s->last_base = h.base_offset;
        s->next_offset = h.base_offset + h.last_offset_delta + 1;
        off += h.length;
    }
    s->max_ts = max_ts;
    s->size = at + len;
    pthread_rwlock_unlock(&s->part->seg_lock);
    /* Index entries reach the file in groups (and at seal and sync time): the index is a
     * hint that recovery completes from the data, so a lost tail costs a scan, not data. */
    (void)first_new;
    if (s->n_idx - s->idx_flushed >= 64) {
        dm_error_t ierr = {0};
        if (idx_write_from(s, s->idx_flushed, &ierr))
            DM_WARN("log", "topic=%s partition=%d: %s", s->part->topic->name, s->part->id,
                    ierr.message);
    }
    return DM_OK;
}

dm_err_t dm_segment_flush_index(dm_segment_t *s, dm_error_t *err)
{
    return idx_write_from(s, s->idx_flushed, err);
}

dm_err_t dm_segment_seal(dm_log_t *log, dm_segment_t *s, dm_error_t *err)
{
    if (s->size > 0 && s->n_idx && s->idx[s->n_idx - 1].pos != s->last_pos) {
        pthread_rwlock_wrlock(&s->part->seg_lock);
        dm_err_t rc =
            idx_push(s, (uint32_t)(s->last_base - s->base), (uint32_t)s->last_pos, s->max_ts);
        pthread_rwlock_unlock(&s->part->seg_lock);
        if (rc) return dm_error_set(err, rc, "index");
    }
    dm_err_t rc = idx_write_from(s, s->idx_flushed, err);
    if (rc) return rc;
    prealloc_release(s);
    /* No fsync here: the next sync of the partition covers it (needs_sync), so a roll
     * costs no more than the topic's fsync policy asks for. */
    s->needs_sync = true;
    s->sealed = true;
    return DM_OK;
}

uint64_t dm_segment_lookup(const dm_segment_t *s, int64_t offset)
{
    uint32_t lo = 0, hi = s->n_idx;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (s->base + s->idx[mid].rel <= offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo ? s->idx[lo - 1].pos : 0;
}

uint64_t dm_segment_lookup_time(const dm_segment_t *s, int64_t ts)
{
    /* First entry whose running max reaches ts: the record is in its batch or earlier,
     * but after the previous entry's batch. */
    uint32_t lo = 0, hi = s->n_idx;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (s->idx[mid].max_ts < ts)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo ? s->idx[lo - 1].pos : 0;
}
