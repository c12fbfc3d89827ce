/* connectors/iceberg/parquet.c — Parquet writer (see parquet.h).
 *
 * A row group is buffered column by column: definition levels (one byte per
 * row), the PLAIN encoding of the non-null values, and while it stays small a
 * dictionary with one index per value. At the cut each chunk picks dictionary
 * or PLAIN (whichever is smaller), is split into pages of about page_bytes,
 * and its statistics are folded into the file's.
 */
#include "connectors/iceberg/parquet.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <snappy-c.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "connectors/iceberg/thrift.h"
#include "core/hash.h"
#include "core/varint.h"

#define BOUND_MAX      64        /* longest min/max kept in statistics */
#define DICT_PROBE     8192      /* values seen before judging a chunk's dictionary */
#define PARALLEL_BYTES (1 << 20) /* row groups from this size compress on two threads */

enum { ENC_PLAIN = 0, ENC_RLE = 3, ENC_RLE_DICTIONARY = 8 };
enum { PAGE_DATA = 0, PAGE_DICTIONARY = 2 };

typedef struct bound {
    bool set, unbounded; /* unbounded: a value too long to keep was seen */
    uint8_t min[BOUND_MAX], max[BOUND_MAX];
    uint32_t min_len, max_len;
} bound_t;

/* What the footer needs about one written column chunk. */
typedef struct chunk_meta {
    int64_t offset, data_offset, dict_offset; /* dict_offset -1: none */
    int64_t values, uncompressed, compressed, nulls;
    bool dict;
    bound_t bound;
} chunk_meta_t;

typedef struct column {
    dm_pq_column_t def;
    bool group;      /* a struct: no values, no chunk */
    int parent;      /* enclosing group's column index, -1 at the top */
    uint8_t max_def; /* definition level of a present value */
    int width;       /* bytes of a PLAIN value; 0 for BYTE_ARRAY (length-prefixed) */
    uint8_t *levels; /* definition level per buffered row */
    size_t cap_rows;
    dm_buf_t plain;
    uint32_t *offs; /* BYTE_ARRAY: start of each value in plain */
    uint32_t *idx;  /* dictionary index of each value, while dict_on */
    size_t n_vals, cap_vals, cap_idx;
    bool dict_on, dict_allowed;
    dm_buf_t dict; /* PLAIN encoding of the dictionary's entries */
    uint32_t *dict_off, dict_n, dict_cap;
    uint32_t *slots; /* open addressing: entry + 1, 0 = empty */
    uint32_t *tags;  /* the entry's hash per slot: most misses end without touching dict */
    uint32_t n_slots;
    int64_t nulls, nans;
    bound_t bound;
    bool typed_set; /* typed bounds of numbers, folded into bound at the chunk's end */
    int64_t imin, imax;
    double dmin, dmax;
    dm_buf_t out; /* the chunk's pages, compressed, until the row group is written */
    int worker;   /* which scratch compresses it */
} column_t;

/* What compressing a chunk needs, one per worker: a row group's chunks are
 * compressed by two threads (the caller's and one more), then written in
 * column order. */
typedef struct scratch {
    struct dm_pq_writer *w;
    dm_buf_t page, packed, header;
    ZSTD_CCtx *zctx; /* reused: a context per page would cost more than small pages */
    dm_error_t err;
    dm_err_t rc;
} scratch_t;

/* Two sets of column buffers: the caller fills cols while a background
 * thread compresses and writes the previous row group from back. */
struct dm_pq_writer {
    FILE *out;
    int64_t pos; /* bytes written; advanced by the flushing thread (atomically) */
    dm_pq_options_t opts;
    column_t *cols, *back;
    char **names;
    size_t n_cols;
    size_t rows; /* buffered in the current row group */
    int64_t buffered_bytes;
    size_t back_rows; /* the row group being flushed */
    int64_t back_bytes;
    pthread_t bg;
    bool bg_running;
    dm_err_t bg_rc;
    dm_error_t bg_err;
    int64_t added_rows;
    int64_t total_rows; /* written in row groups */
    dm_pq_column_stats_t *file_stats;
    bound_t *file_bound;
    chunk_meta_t *chunks; /* n_cols per written row group */
    int64_t *group_rows, *group_offset;
    size_t n_groups, cap_groups;
    dm_buf_t header;     /* the footer */
    uint8_t *row_levels; /* per column, for the row being added */
    bool *row_present;
    scratch_t sc[2];
    char **kv; /* owned copies of opts.kv */
    dm_error_t *err;
};

/* ---- encodings ------------------------------------------------------------- */

static dm_err_t put_varint(dm_buf_t *out, uint64_t v)
{
    uint8_t tmp[DM_VARINT_MAX];
    return dm_buf_append(out, tmp, dm_varint_encode_u64(v, tmp));
}

static size_t run_length(const uint32_t *vals, size_t n, size_t i)
{
    size_t r = 1;
    while (i + r < n && vals[i + r] == vals[i])
        r++;
    return r;
}

/* Runs of 8 or more equal values become RLE runs; everything between them is
 * bit-packed in groups of 8 (the last group padded with zeros, which readers
 * ignore past the page's value count). */
dm_err_t dm_pq_rle_encode(const uint32_t *vals, size_t n, int bit_width, dm_buf_t *out)
{
    int value_bytes = (bit_width + 7) / 8;
    size_t i = 0;
    while (i < n) {
        size_t run = run_length(vals, n, i);
        if (run >= 8) {
            dm_err_t rc = put_varint(out, (uint64_t)run << 1);
            uint8_t v[4] = {(uint8_t)vals[i], (uint8_t)(vals[i] >> 8), (uint8_t)(vals[i] >> 16),
                            (uint8_t)(vals[i] >> 24)};
            if (!rc) rc = dm_buf_append(out, v, (size_t)value_bytes);
            if (rc) return rc;
            i += run;
            continue;
        }
        size_t j = i;
        do
            j += 8;
        while (j < n && run_length(vals, n, j) < 8);
        size_t groups = (j - i) / 8;
        dm_err_t rc = put_varint(out, (uint64_t)groups << 1 | 1);
        if (!rc) rc = dm_buf_reserve(out, groups * (size_t)bit_width);
        if (rc) return rc;
        uint64_t acc = 0;
        int bits = 0;
        for (size_t k = i; k < j; k++) {
            acc |= (uint64_t)(k < n ? vals[k] : 0) << bits;
            bits += bit_width;
            while (bits >= 8) {
                out->data[out->len++] = (uint8_t)acc;
                acc >>= 8;
                bits -= 8;
            }
        }
        i = j < n ? j : n;
    }
    return DM_OK;
}

static int bit_width_of(uint32_t max)
{
    int w = 1;
    while (w < 32 && (max >> w))
        w++;
    return w;
}

/* ---- decimals ---------------------------------------------------------------- */

bool dm_pq_decimal_from_be(const uint8_t *p, size_t n, uint8_t dec[16])
{
    uint8_t sign = n && (p[0] & 0x80) ? 0xff : 0;
    /* Bytes beyond 16 may only repeat the sign. */
    while (n > 16) {
        if (p[0] != sign) return false;
        p++, n--;
    }
    if (n == 16 && ((p[0] & 0x80) ? 0xff : 0) != sign) return false;
    memset(dec, sign, 16 - n);
    memcpy(dec + 16 - n, p, n);
    return true;
}

void dm_pq_decimal_from_int(int64_t v, uint8_t dec[16])
{
    memset(dec, v < 0 ? 0xff : 0, 8);
    for (int i = 0; i < 8; i++)
        dec[15 - i] = (uint8_t)((uint64_t)v >> (8 * i));
}

int64_t dm_pq_decimal_to_int(const uint8_t dec[16])
{
    uint64_t v = 0;
    for (int i = 8; i < 16; i++)
        v = v << 8 | dec[i];
    return (int64_t)v;
}

uint32_t dm_pq_decimal_minimal(const uint8_t dec[16], uint8_t out[16])
{
    /* Drop leading bytes that only repeat the sign of the byte after them. */
    int i = 0;
    while (i < 15 &&
           ((dec[i] == 0 && !(dec[i + 1] & 0x80)) || (dec[i] == 0xff && (dec[i + 1] & 0x80))))
        i++;
    memcpy(out, dec + i, (size_t)(16 - i));
    return (uint32_t)(16 - i);
}

bool dm_pq_decimal_digits_ok(const uint8_t dec[16], int precision)
{
    unsigned __int128 u = 0;
    for (int i = 0; i < 16; i++)
        u = u << 8 | dec[i];
    if (dec[0] & 0x80) u = ~u + 1; /* magnitude of a negative value */
    unsigned __int128 limit = 1;
    for (int i = 0; i < precision; i++)
        limit *= 10;
    return u < limit;
}

/* ---- values and statistics -------------------------------------------------- */

/* The PLAIN bytes of a value, without BYTE_ARRAY's length prefix. */
static size_t value_bytes(const column_t *c, const dm_pq_value_t *v, uint8_t tmp[8],
                          const uint8_t **p)
{
    switch (c->def.type) {
    case DM_PQ_BOOLEAN:
        tmp[0] = v->u.b;
        *p = tmp;
        return 1;
    case DM_PQ_INT32:
        memcpy(tmp, &v->u.i32, 4);
        *p = tmp;
        return 4;
    case DM_PQ_FLOAT:
        memcpy(tmp, &v->u.f, 4);
        *p = tmp;
        return 4;
    case DM_PQ_INT64:
        memcpy(tmp, &v->u.i64, 8);
        *p = tmp;
        return 8;
    case DM_PQ_DOUBLE:
        memcpy(tmp, &v->u.d, 8);
        *p = tmp;
        return 8;
    default: *p = v->u.s.p; return v->u.s.len;
    }
}

/* Orders two PLAIN values of the column's type: signed numbers, unsigned
 * lexicographic bytes (what Parquet and Iceberg both use for strings). */
static int compare(const column_t *c, const uint8_t *a, uint32_t al, const uint8_t *b, uint32_t bl)
{
    switch (c->def.type) {
    case DM_PQ_BOOLEAN: return (int)a[0] - (int)b[0];
    case DM_PQ_INT32: {
        int32_t x, y;
        memcpy(&x, a, 4), memcpy(&y, b, 4);
        return (x > y) - (x < y);
    }
    case DM_PQ_INT64: {
        int64_t x, y;
        memcpy(&x, a, 8), memcpy(&y, b, 8);
        return (x > y) - (x < y);
    }
    case DM_PQ_FLOAT: {
        float x, y;
        memcpy(&x, a, 4), memcpy(&y, b, 4);
        return (x > y) - (x < y);
    }
    case DM_PQ_DOUBLE: {
        double x, y;
        memcpy(&x, a, 8), memcpy(&y, b, 8);
        return (x > y) - (x < y);
    }
    default: {
        /* Decimal FIXED values are signed big-endian of one width: the sign
         * byte decides first. */
        if (c->def.logical == DM_PQ_LT_DECIMAL && al && bl && (a[0] ^ b[0]) & 0x80)
            return (a[0] & 0x80) ? -1 : 1;
        int r = memcmp(a, b, al < bl ? al : bl);
        return r ? r : (al > bl) - (al < bl);
    }
    }
}

static void bound_add(const column_t *c, bound_t *bd, const uint8_t *p, uint32_t len)
{
    if (bd->unbounded) return;
    if (len > BOUND_MAX) {
        bd->unbounded = true;
        return;
    }
    if (!bd->set || compare(c, p, len, bd->min, bd->min_len) < 0) {
        memcpy(bd->min, p, len);
        bd->min_len = len;
    }
    if (!bd->set || compare(c, p, len, bd->max, bd->max_len) > 0) {
        memcpy(bd->max, p, len);
        bd->max_len = len;
    }
    bd->set = true;
}

static void bound_merge(const column_t *c, bound_t *into, const bound_t *from)
{
    if (from->unbounded) into->unbounded = true;
    if (!from->set || into->unbounded) return;
    bound_add(c, into, from->min, from->min_len);
    bound_add(c, into, from->max, from->max_len);
}

/* ---- buffering a row group ------------------------------------------------- */

static dm_err_t grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return DM_OK;
    size_t n = *cap ? *cap * 2 : 1024;
    while (n < need)
        n *= 2;
    void *q = realloc(*p, n * elem);
    if (!q) return DM_ERR_NOMEM;
    *p = q;
    *cap = n;
    return DM_OK;
}

static void dict_drop(column_t *c)
{
    c->dict_on = false;
    free(c->slots);
    free(c->tags);
    c->slots = c->tags = NULL;
    c->n_slots = 0;
}

static dm_err_t dict_rehash(column_t *c)
{
    uint32_t n = c->n_slots ? c->n_slots * 2 : 1024;
    uint32_t *s = calloc(n, sizeof(*s)), *tags = malloc(n * sizeof(*tags));
    if (!s || !tags) {
        free(s);
        free(tags);
        return DM_ERR_NOMEM;
    }
    for (uint32_t e = 0; e < c->dict_n; e++) {
        uint32_t end = e + 1 < c->dict_n ? c->dict_off[e + 1] : (uint32_t)c->dict.len;
        uint64_t h = dm_hash64(c->dict.data + c->dict_off[e], end - c->dict_off[e]);
        uint32_t k = (uint32_t)h & (n - 1);
        while (s[k])
            k = (k + 1) & (n - 1);
        s[k] = e + 1;
        tags[k] = (uint32_t)(h >> 32);
    }
    free(c->slots);
    free(c->tags);
    c->slots = s;
    c->tags = tags;
    c->n_slots = n;
    return DM_OK;
}

/* Equal bytes; fixed widths compare inline, not through a library call. */
static inline bool same_bytes(const uint8_t *a, const uint8_t *b, size_t len)
{
    if (len == 8) {
        uint64_t x, y;
        memcpy(&x, a, 8), memcpy(&y, b, 8);
        return x == y;
    }
    if (len == 4) {
        uint32_t x, y;
        memcpy(&x, a, 4), memcpy(&y, b, 4);
        return x == y;
    }
    return !memcmp(a, b, len);
}

/* Finds or adds the value (given as its PLAIN bytes, prefix included for
 * BYTE_ARRAY) in the chunk's dictionary; gives up the dictionary when it
 * grows past dict_bytes. */
static dm_err_t dict_add(dm_pq_writer_t *w, column_t *c, const uint8_t *enc, size_t len,
                         uint32_t *out)
{
    if ((c->dict_n + 1) * 2 > c->n_slots) {
        dm_err_t rc = dict_rehash(c);
        if (rc) return rc;
    }
    uint64_t h = dm_hash64(enc, len);
    uint32_t k = (uint32_t)h & (c->n_slots - 1), tag = (uint32_t)(h >> 32);
    for (; c->slots[k]; k = (k + 1) & (c->n_slots - 1)) {
        if (c->tags[k] != tag) continue;
        uint32_t e = c->slots[k] - 1;
        uint32_t end = e + 1 < c->dict_n ? c->dict_off[e + 1] : (uint32_t)c->dict.len;
        if (end - c->dict_off[e] == len && same_bytes(c->dict.data + c->dict_off[e], enc, len)) {
            *out = e;
            return DM_OK;
        }
    }
    if ((int64_t)(c->dict.len + len) > w->opts.dict_bytes) {
        dict_drop(c);
        return DM_OK;
    }
    size_t cap = c->dict_cap;
    dm_err_t rc = grow((void **)&c->dict_off, &cap, c->dict_n + 1, sizeof(uint32_t));
    c->dict_cap = (uint32_t)cap;
    if (!rc) rc = dm_buf_append(&c->dict, enc, len);
    if (rc) return rc;
    c->dict_off[c->dict_n] = (uint32_t)(c->dict.len - len);
    c->slots[k] = ++c->dict_n;
    c->tags[k] = tag;
    *out = c->dict_n - 1;
    return DM_OK;
}

static inline void typed_int(column_t *c, int64_t x)
{
    if (!c->typed_set)
        c->imin = c->imax = x, c->typed_set = true;
    else if (x < c->imin)
        c->imin = x;
    else if (x > c->imax)
        c->imax = x;
}

static inline void typed_real(column_t *c, double x)
{
    if (!c->typed_set)
        c->dmin = c->dmax = x, c->typed_set = true;
    else if (x < c->dmin)
        c->dmin = x;
    else if (x > c->dmax)
        c->dmax = x;
}

/* Typed bounds into the chunk's byte bounds. */
static void typed_to_bound(column_t *c)
{
    if (!c->typed_set) return;
    uint8_t lo[8], hi[8];
    uint32_t n = c->def.type == DM_PQ_INT64 || c->def.type == DM_PQ_DOUBLE ? 8 : 4;
    if (c->def.type == DM_PQ_INT32) {
        int32_t a = (int32_t)c->imin, b = (int32_t)c->imax;
        memcpy(lo, &a, 4), memcpy(hi, &b, 4);
    } else if (c->def.type == DM_PQ_INT64) {
        memcpy(lo, &c->imin, 8), memcpy(hi, &c->imax, 8);
    } else if (c->def.type == DM_PQ_FLOAT) {
        float a = (float)c->dmin, b = (float)c->dmax;
        memcpy(lo, &a, 4), memcpy(hi, &b, 4);
    } else {
        memcpy(lo, &c->dmin, 8), memcpy(hi, &c->dmax, 8);
    }
    bound_add(c, &c->bound, lo, n);
    bound_add(c, &c->bound, hi, n);
    c->typed_set = false;
}

/* A decimal's 16 bytes narrowed to the column's physical type: INT32, INT64
 * or the FIXED length (big-endian, the low bytes). */
static const dm_pq_value_t *narrow_decimal(const column_t *c, const dm_pq_value_t *v,
                                           dm_pq_value_t *tmp)
{
    *tmp = *v;
    if (c->def.type == DM_PQ_INT32)
        tmp->u.i32 = (int32_t)dm_pq_decimal_to_int(v->u.dec);
    else if (c->def.type == DM_PQ_INT64)
        tmp->u.i64 = dm_pq_decimal_to_int(v->u.dec);
    else
        tmp->u.s.p = v->u.dec + 16 - c->width, tmp->u.s.len = (uint32_t)c->width;
    return tmp;
}

/* Buffers a leaf's value at definition level (max_def: present; less:
 * null here or above). */
static dm_err_t add_value(dm_pq_writer_t *w, column_t *c, const dm_pq_value_t *v, uint8_t level)
{
    dm_err_t rc = grow((void **)&c->levels, &c->cap_rows, w->rows + 1, 1);
    if (rc) return rc;
    if (level < c->max_def) {
        c->levels[w->rows] = level;
        c->nulls++;
        w->buffered_bytes++;
        return DM_OK;
    }
    dm_pq_value_t narrowed;
    if (c->def.logical == DM_PQ_LT_DECIMAL) v = narrow_decimal(c, v, &narrowed);
    c->levels[w->rows] = level;
    /* Only BYTE_ARRAY values need their offsets kept; fixed widths compute them. */
    if (!c->width) rc = grow((void **)&c->offs, &c->cap_vals, c->n_vals + 1, sizeof(uint32_t));
    if (!rc && c->dict_on)
        rc = grow((void **)&c->idx, &c->cap_idx, c->n_vals + 1, sizeof(uint32_t));
    if (rc) return rc;
    uint8_t tmp[8];
    const uint8_t *p;
    size_t len = value_bytes(c, v, tmp, &p);
    size_t start = c->plain.len;
    if (c->plain.cap - c->plain.len < len + 4 && (rc = dm_buf_reserve(&c->plain, len + 4)))
        return rc;
    if (len == 8 && c->width) {
        memcpy(c->plain.data + start, p, 8); /* constant sizes: no library call */
        c->plain.len += 8;
    } else if (len == 4 && c->width) {
        memcpy(c->plain.data + start, p, 4);
        c->plain.len += 4;
    } else {
        if (c->def.type == DM_PQ_BYTE_ARRAY) {
            uint8_t l[4] = {(uint8_t)len, (uint8_t)(len >> 8), (uint8_t)(len >> 16),
                            (uint8_t)(len >> 24)};
            memcpy(c->plain.data + c->plain.len, l, 4);
            c->plain.len += 4;
        }
        if ((rc = dm_buf_append(&c->plain, p, len))) return rc;
    }
    if (c->plain.len > UINT32_MAX) return DM_ERR_RANGE;
    if (!c->width) c->offs[c->n_vals] = (uint32_t)start;
    if (c->dict_on)
        rc = dict_add(w, c, c->plain.data + start, c->plain.len - start, &c->idx[c->n_vals]);
    if (rc) return rc;
    c->n_vals++;
    /* Mostly distinct values make a dictionary that costs more than it saves:
     * give it up early for this chunk. */
    if (c->dict_on && c->n_vals == DICT_PROBE && c->dict_n > DICT_PROBE / 2) dict_drop(c);
    w->buffered_bytes += (int64_t)(c->plain.len - start) + 1;
    /* Numbers keep typed bounds (a compare per value is on the hot path);
     * they become bytes when the chunk is written. */
    switch (c->def.type) {
    case DM_PQ_INT32: typed_int(c, v->u.i32); break;
    case DM_PQ_INT64: typed_int(c, v->u.i64); break;
    case DM_PQ_DOUBLE:
        if (isnan(v->u.d))
            c->nans++;
        else
            typed_real(c, v->u.d);
        break;
    case DM_PQ_FLOAT:
        if (isnan(v->u.f))
            c->nans++;
        else
            typed_real(c, v->u.f);
        break;
    default: bound_add(c, &c->bound, p, (uint32_t)len);
    }
    return DM_OK;
}

/* ---- writing pages and chunks ------------------------------------------------ */

static dm_err_t write_out(dm_pq_writer_t *w, const void *p, size_t len, dm_error_t *err)
{
    if (len && fwrite(p, 1, len, w->out) != len)
        return dm_error_set(err, DM_ERR_IO, "parquet: write failed: %s", strerror(errno));
    __atomic_fetch_add(&w->pos, (int64_t)len, __ATOMIC_RELAXED);
    return DM_OK;
}

static dm_err_t compress(dm_pq_writer_t *w, scratch_t *sc, const dm_buf_t *in, dm_buf_t *out)
{
    dm_buf_reset(out);
    if (w->opts.codec == DM_PQ_SNAPPY) {
        size_t n = snappy_max_compressed_length(in->len);
        if (dm_buf_reserve(out, n)) return DM_ERR_NOMEM;
        if (snappy_compress((const char *)in->data, in->len, (char *)out->data, &n) != SNAPPY_OK)
            return dm_error_set(&sc->err, DM_ERR_INTERNAL, "parquet: snappy compression failed");
        out->len = n;
    } else if (w->opts.codec == DM_PQ_ZSTD) {
        size_t n = ZSTD_compressBound(in->len);
        if (dm_buf_reserve(out, n)) return DM_ERR_NOMEM;
        if (!sc->zctx && !(sc->zctx = ZSTD_createCCtx())) return DM_ERR_NOMEM;
        n = ZSTD_compressCCtx(sc->zctx, out->data, n, in->data, in->len, w->opts.zstd_level);
        if (ZSTD_isError(n))
            return dm_error_set(&sc->err, DM_ERR_INTERNAL, "parquet: zstd: %s",
                                ZSTD_getErrorName(n));
        out->len = n;
    } else {
        return dm_buf_append(out, in->data, in->len);
    }
    return DM_OK;
}

/* Appends sc->page to the chunk as one page: header, then the compressed
 * body. Offsets are relative to the chunk until the row group is written. */
static dm_err_t write_page(dm_pq_writer_t *w, scratch_t *sc, column_t *c, chunk_meta_t *m, int type,
                           int32_t num_values, int encoding)
{
    dm_err_t rc = compress(w, sc, &sc->page, &sc->packed);
    if (rc) return rc;
    if (sc->page.len > INT32_MAX || sc->packed.len > INT32_MAX)
        return dm_error_set(&sc->err, DM_ERR_RANGE, "parquet: page larger than 2 GiB");
    dm_buf_reset(&sc->header);
    dm_thrift_writer_t t;
    dm_thrift_writer_init(&t, &sc->header);
    dm_thrift_i32(&t, 1, type);
    dm_thrift_i32(&t, 2, (int32_t)sc->page.len);
    dm_thrift_i32(&t, 3, (int32_t)sc->packed.len);
    if (type == PAGE_DATA) {
        dm_thrift_struct_begin(&t, 5);
        dm_thrift_i32(&t, 1, num_values);
        dm_thrift_i32(&t, 2, encoding);
        dm_thrift_i32(&t, 3, ENC_RLE);
        dm_thrift_i32(&t, 4, ENC_RLE);
        dm_thrift_struct_end(&t);
    } else {
        dm_thrift_struct_begin(&t, 7);
        dm_thrift_i32(&t, 1, num_values);
        dm_thrift_i32(&t, 2, ENC_PLAIN);
        dm_thrift_struct_end(&t);
    }
    if ((rc = dm_thrift_writer_finish(&t))) return rc;
    if (type == PAGE_DATA && m->data_offset < 0) m->data_offset = (int64_t)c->out.len;
    if (type == PAGE_DICTIONARY) m->dict_offset = (int64_t)c->out.len;
    if ((rc = dm_buf_append(&c->out, sc->header.data, sc->header.len))) return rc;
    if ((rc = dm_buf_append(&c->out, sc->packed.data, sc->packed.len))) return rc;
    m->uncompressed += (int64_t)(sc->header.len + sc->page.len);
    m->compressed += (int64_t)(sc->header.len + sc->packed.len);
    return DM_OK;
}

static size_t value_end(const column_t *c, size_t v)
{
    return v + 1 < c->n_vals ? c->offs[v + 1] : c->plain.len;
}

/* One data page for rows [r0, r1) holding values [v0, v1). */
static dm_err_t data_page(dm_pq_writer_t *w, scratch_t *sc, column_t *c, chunk_meta_t *m, size_t r0,
                          size_t r1, size_t v0, size_t v1, int bit_width)
{
    dm_buf_t *pg = &sc->page;
    dm_buf_reset(pg);
    dm_err_t rc = DM_OK;
    if (c->max_def > 0) {
        /* v1 pages prefix the levels with their length (4 bytes, little endian). */
        uint8_t zero[4] = {0};
        if ((rc = dm_buf_append(pg, zero, 4))) return rc;
        size_t at = pg->len;
        uint32_t *lv = malloc((r1 - r0) * sizeof(uint32_t));
        if (!lv) return DM_ERR_NOMEM;
        for (size_t r = r0; r < r1; r++)
            lv[r - r0] = c->levels[r];
        rc = dm_pq_rle_encode(lv, r1 - r0, bit_width_of(c->max_def), pg);
        free(lv);
        if (rc) return rc;
        uint32_t n = (uint32_t)(pg->len - at);
        uint8_t l[4] = {(uint8_t)n, (uint8_t)(n >> 8), (uint8_t)(n >> 16), (uint8_t)(n >> 24)};
        memcpy(pg->data + at - 4, l, 4);
    }
    if (m->dict) {
        uint8_t bw = (uint8_t)bit_width;
        rc = dm_buf_append(pg, &bw, 1);
        if (!rc) rc = dm_pq_rle_encode(c->idx + v0, v1 - v0, bit_width, pg);
    } else if (c->def.type == DM_PQ_BOOLEAN) {
        size_t nb = (v1 - v0 + 7) / 8;
        if (!(rc = dm_buf_reserve(pg, nb))) {
            memset(pg->data + pg->len, 0, nb);
            for (size_t v = v0; v < v1; v++)
                if (c->plain.data[v]) pg->data[pg->len + (v - v0) / 8] |= 1 << ((v - v0) % 8);
            pg->len += nb;
        }
    } else if (v1 > v0) {
        size_t a = c->width ? v0 * (size_t)c->width : c->offs[v0];
        size_t b = c->width ? v1 * (size_t)c->width : value_end(c, v1 - 1);
        rc = dm_buf_append(pg, c->plain.data + a, b - a);
    }
    if (rc) return rc;
    return write_page(w, sc, c, m, PAGE_DATA, (int32_t)(r1 - r0),
                      m->dict ? ENC_RLE_DICTIONARY : ENC_PLAIN);
}

static dm_err_t write_chunk(dm_pq_writer_t *w, scratch_t *sc, column_t *c, chunk_meta_t *m,
                            size_t rows, size_t col)
{
    memset(m, 0, sizeof(*m));
    dm_buf_reset(&c->out);
    m->offset = 0;
    m->data_offset = m->dict_offset = -1;
    m->values = (int64_t)rows;
    m->nulls = c->nulls;
    typed_to_bound(c);
    m->bound = c->bound;
    int bit_width = bit_width_of(c->dict_n ? c->dict_n - 1 : 0);
    m->dict = c->dict_on && c->dict_n > 0 &&
              c->dict.len + c->n_vals * (size_t)bit_width / 8 < c->plain.len;
    dm_err_t rc;
    if (m->dict) {
        dm_buf_reset(&sc->page);
        if ((rc = dm_buf_append(&sc->page, c->dict.data, c->dict.len))) return rc;
        if ((rc = write_page(w, sc, c, m, PAGE_DICTIONARY, (int32_t)c->dict_n, ENC_PLAIN)))
            return rc;
    }
    size_t r0 = 0, v0 = 0, v = 0;
    int64_t bytes = 0;
    for (size_t r = 0; r < rows; r++) {
        if (c->levels[r] == c->max_def) {
            bytes += m->dict ? 1 : c->width ? c->width : (int64_t)(value_end(c, v) - c->offs[v]);
            v++;
        }
        if (bytes >= w->opts.page_bytes || r + 1 == rows) {
            if ((rc = data_page(w, sc, c, m, r0, r + 1, v0, v, bit_width))) return rc;
            r0 = r + 1, v0 = v, bytes = 0;
        }
    }
    if (rows == 0 && (rc = data_page(w, sc, c, m, 0, 0, 0, 0, bit_width))) return rc;
    dm_pq_column_stats_t *f = &w->file_stats[col];
    f->compressed_bytes += m->compressed;
    f->values += m->values;
    f->nulls += c->nulls;
    f->nans += c->nans;
    bound_merge(c, &w->file_bound[col], &c->bound);
    return DM_OK;
}

static void column_reset(column_t *c)
{
    dm_buf_reset(&c->plain);
    dm_buf_reset(&c->dict);
    c->n_vals = 0;
    c->dict_n = 0;
    c->nulls = c->nans = 0;
    memset(&c->bound, 0, sizeof(c->bound));
    dict_drop(c);
    c->dict_on = c->dict_allowed;
}

/* Compresses the chunks of the current row group assigned to worker k. */
static void compress_columns(scratch_t *sc, int k)
{
    dm_pq_writer_t *w = sc->w;
    for (size_t i = 0; i < w->n_cols && !sc->rc; i++) {
        if (w->back[i].worker != k || w->back[i].group) continue;
        sc->rc = write_chunk(w, sc, &w->back[i], &w->chunks[w->n_groups * w->n_cols + i],
                             w->back_rows, i);
        if (sc->rc == DM_ERR_NOMEM) dm_error_set(&sc->err, sc->rc, "parquet: out of memory");
    }
}

static void *compress_worker(void *arg)
{
    compress_columns(arg, 1);
    return NULL;
}

/* Compresses and writes the row group in back (on the flushing thread, or
 * the caller's when it is the last). */
static dm_err_t flush_back(dm_pq_writer_t *w, dm_error_t *err)
{
    if (w->back_rows == 0) return DM_OK;
    size_t g = w->n_groups;
    if (g == w->cap_groups) {
        size_t cap = g ? g * 2 : 8;
        chunk_meta_t *ch = realloc(w->chunks, cap * w->n_cols * sizeof(*ch));
        if (ch) w->chunks = ch;
        int64_t *gr = realloc(w->group_rows, cap * sizeof(int64_t));
        if (gr) w->group_rows = gr;
        int64_t *go = realloc(w->group_offset, cap * sizeof(int64_t));
        if (go) w->group_offset = go;
        if (!ch || !gr || !go) return dm_error_set(err, DM_ERR_NOMEM, "parquet: out of memory");
        w->cap_groups = cap;
    }
    w->group_offset[g] = w->pos;
    w->group_rows[g] = (int64_t)w->back_rows;
    /* Balance the columns over the two workers by their bytes; small row
     * groups are not worth a thread. */
    int64_t load[2] = {0, 0};
    bool two = w->n_cols > 1 && w->back_bytes >= PARALLEL_BYTES;
    for (size_t i = 0; i < w->n_cols; i++) {
        column_t *c = &w->back[i];
        c->worker = two && load[1] < load[0] ? 1 : 0;
        load[c->worker] += (int64_t)c->plain.len + (int64_t)w->back_rows;
    }
    w->sc[0].rc = w->sc[1].rc = DM_OK;
    pthread_t th;
    bool started = two && pthread_create(&th, NULL, compress_worker, &w->sc[1]) == 0;
    if (!started)
        for (size_t i = 0; i < w->n_cols; i++)
            w->cols[i].worker = 0;
    compress_columns(&w->sc[0], 0);
    if (started) pthread_join(th, NULL);
    for (int k = 0; k < 2; k++)
        if (w->sc[k].rc) {
            if (err) *err = w->sc[k].err;
            return w->sc[k].rc;
        }
    for (size_t i = 0; i < w->n_cols; i++) {
        column_t *c = &w->back[i];
        chunk_meta_t *m = &w->chunks[g * w->n_cols + i];
        if (c->group) continue;
        m->offset += w->pos;
        m->data_offset += w->pos;
        if (m->dict_offset >= 0) m->dict_offset += w->pos;
        dm_err_t rc = write_out(w, c->out.data, c->out.len, err);
        if (rc) return rc;
        dm_buf_reset(&c->out);
        column_reset(c);
    }
    w->n_groups++;
    w->total_rows += (int64_t)w->back_rows;
    w->back_rows = 0;
    return DM_OK;
}

static void *flush_main(void *arg)
{
    dm_pq_writer_t *w = arg;
    w->bg_rc = flush_back(w, &w->bg_err);
    return NULL;
}

/* Waits for the row group being flushed; its error, if any, is the answer. */
static dm_err_t join_flush(dm_pq_writer_t *w, dm_error_t *err)
{
    if (!w->bg_running) return DM_OK;
    pthread_join(w->bg, NULL);
    w->bg_running = false;
    if (w->bg_rc && err) *err = w->bg_err;
    return w->bg_rc;
}

/* Ends the current row group: its buffers become back and are flushed, on a
 * thread of their own (background) or right here. */
static dm_err_t cut_group(dm_pq_writer_t *w, bool background, dm_error_t *err)
{
    dm_err_t rc = join_flush(w, err);
    if (rc || w->rows == 0) return rc;
    column_t *t = w->back;
    w->back = w->cols;
    w->cols = t; /* flushed and reset last time: ready to fill */
    w->back_rows = w->rows;
    w->back_bytes = w->buffered_bytes;
    w->rows = 0;
    w->buffered_bytes = 0;
    w->bg_rc = DM_OK;
    if (background && pthread_create(&w->bg, NULL, flush_main, w) == 0) {
        w->bg_running = true;
        return DM_OK;
    }
    return flush_back(w, err);
}

/* ---- footer ----------------------------------------------------------------- */

static void schema_element(dm_thrift_writer_t *t, const dm_pq_column_t *c)
{
    dm_thrift_elem_struct_begin(t);
    if (c->n_children > 0) { /* a group: repetition, name, children, field id */
        dm_thrift_i32(t, 3, c->optional ? 1 : 0);
        dm_thrift_string(t, 4, c->name);
        dm_thrift_i32(t, 5, c->n_children);
        dm_thrift_i32(t, 9, c->field_id);
        dm_thrift_struct_end(t);
        return;
    }
    dm_thrift_i32(t, 1, c->type);
    if (c->type == DM_PQ_FIXED) dm_thrift_i32(t, 2, c->fixed_len);
    dm_thrift_i32(t, 3, c->optional ? 1 : 0);
    dm_thrift_string(t, 4, c->name);
    /* converted_type for older readers: UTF8 0, DECIMAL 5 (with scale and
     * precision), DATE 6, TIME_MICROS 8, TIMESTAMP_MICROS 10. */
    if (c->logical == DM_PQ_LT_STRING) dm_thrift_i32(t, 6, 0);
    if (c->logical == DM_PQ_LT_DECIMAL) {
        dm_thrift_i32(t, 6, 5);
        dm_thrift_i32(t, 7, c->scale);
        dm_thrift_i32(t, 8, c->precision);
    }
    if (c->logical == DM_PQ_LT_DATE) dm_thrift_i32(t, 6, 6);
    if (c->logical == DM_PQ_LT_TIME) dm_thrift_i32(t, 6, 8);
    if (c->logical == DM_PQ_LT_TIMESTAMP_UTC) dm_thrift_i32(t, 6, 10);
    dm_thrift_i32(t, 9, c->field_id);
    if (c->logical != DM_PQ_LT_NONE) {
        dm_thrift_struct_begin(t, 10); /* LogicalType union */
        switch (c->logical) {
        case DM_PQ_LT_STRING: dm_thrift_struct_begin(t, 1); break;
        case DM_PQ_LT_DATE: dm_thrift_struct_begin(t, 6); break;
        case DM_PQ_LT_UUID: dm_thrift_struct_begin(t, 14); break;
        case DM_PQ_LT_DECIMAL: /* DECIMAL {scale, precision} */
            dm_thrift_struct_begin(t, 5);
            dm_thrift_i32(t, 1, c->scale);
            dm_thrift_i32(t, 2, c->precision);
            break;
        default: /* TIME (7) or TIMESTAMP (8) {isAdjustedToUTC, unit: MICROS} */
            dm_thrift_struct_begin(t, c->logical == DM_PQ_LT_TIME ? 7 : 8);
            dm_thrift_bool(t, 1, c->logical == DM_PQ_LT_TIMESTAMP_UTC);
            dm_thrift_struct_begin(t, 2);
            dm_thrift_struct_begin(t, 2);
            dm_thrift_struct_end(t);
            dm_thrift_struct_end(t);
            break;
        }
        dm_thrift_struct_end(t);
        dm_thrift_struct_end(t);
    }
    dm_thrift_struct_end(t);
}

static void column_chunk(dm_thrift_writer_t *t, const dm_pq_writer_t *w, const column_t *c,
                         const chunk_meta_t *m)
{
    dm_thrift_elem_struct_begin(t);
    dm_thrift_i64(t, 2, m->offset);
    dm_thrift_struct_begin(t, 3); /* ColumnMetaData */
    dm_thrift_i32(t, 1, c->def.type);
    dm_thrift_list_begin(t, 2, DM_THRIFT_I32, m->dict ? 3 : 2);
    dm_thrift_i32_elem(t, ENC_PLAIN);
    dm_thrift_i32_elem(t, ENC_RLE);
    if (m->dict) dm_thrift_i32_elem(t, ENC_RLE_DICTIONARY);
    /* path_in_schema: the names from the top group down to the leaf. */
    const column_t *path[64];
    uint32_t depth = 0;
    for (const column_t *p = c; depth < 64; p = &w->cols[p->parent]) {
        path[depth++] = p;
        if (p->parent < 0) break;
    }
    dm_thrift_list_begin(t, 3, DM_THRIFT_BINARY, depth);
    while (depth--)
        dm_thrift_binary_elem(t, path[depth]->def.name, strlen(path[depth]->def.name));
    dm_thrift_i32(t, 4, w->opts.codec);
    dm_thrift_i64(t, 5, m->values);
    dm_thrift_i64(t, 6, m->uncompressed);
    dm_thrift_i64(t, 7, m->compressed);
    dm_thrift_i64(t, 9, m->data_offset);
    if (m->dict_offset >= 0) dm_thrift_i64(t, 11, m->dict_offset);
    dm_thrift_struct_begin(t, 12); /* Statistics */
    dm_thrift_i64(t, 3, m->nulls);
    if (m->bound.set && !m->bound.unbounded) {
        dm_thrift_binary(t, 5, m->bound.max, m->bound.max_len);
        dm_thrift_binary(t, 6, m->bound.min, m->bound.min_len);
    }
    dm_thrift_struct_end(t);
    dm_thrift_struct_end(t);
    dm_thrift_struct_end(t);
}

static dm_err_t write_footer(dm_pq_writer_t *w)
{
    dm_buf_t *b = &w->header;
    dm_buf_reset(b);
    dm_thrift_writer_t t;
    dm_thrift_writer_init(&t, b);
    dm_thrift_i32(&t, 1, 1);
    dm_thrift_list_begin(&t, 2, DM_THRIFT_STRUCT, (uint32_t)w->n_cols + 1);
    int32_t top = 0, leaves = 0;
    for (size_t i = 0; i < w->n_cols; i++) {
        top += w->cols[i].parent < 0;
        leaves += !w->cols[i].group;
    }
    dm_thrift_elem_struct_begin(&t);
    dm_thrift_string(&t, 4, "schema");
    dm_thrift_i32(&t, 5, top);
    dm_thrift_struct_end(&t);
    for (size_t i = 0; i < w->n_cols; i++)
        schema_element(&t, &w->cols[i].def);
    dm_thrift_i64(&t, 3, w->total_rows);
    dm_thrift_list_begin(&t, 4, DM_THRIFT_STRUCT, (uint32_t)w->n_groups);
    for (size_t g = 0; g < w->n_groups; g++) {
        dm_thrift_elem_struct_begin(&t);
        dm_thrift_list_begin(&t, 1, DM_THRIFT_STRUCT, (uint32_t)leaves);
        int64_t unc = 0, comp = 0;
        for (size_t i = 0; i < w->n_cols; i++) {
            if (w->cols[i].group) continue;
            const chunk_meta_t *m = &w->chunks[g * w->n_cols + i];
            column_chunk(&t, w, &w->cols[i], m);
            unc += m->uncompressed;
            comp += m->compressed;
        }
        dm_thrift_i64(&t, 2, unc);
        dm_thrift_i64(&t, 3, w->group_rows[g]);
        dm_thrift_i64(&t, 5, w->group_offset[g]);
        dm_thrift_i64(&t, 6, comp);
        dm_thrift_struct_end(&t);
    }
    if (w->opts.n_kv) {
        dm_thrift_list_begin(&t, 5, DM_THRIFT_STRUCT, (uint32_t)w->opts.n_kv);
        for (size_t i = 0; i < w->opts.n_kv; i++) {
            dm_thrift_elem_struct_begin(&t);
            dm_thrift_string(&t, 1, w->opts.kv[2 * i]);
            dm_thrift_string(&t, 2, w->opts.kv[2 * i + 1]);
            dm_thrift_struct_end(&t);
        }
    }
    dm_thrift_string(&t, 6, "datamesh version " DM_VERSION);
    dm_err_t rc = dm_thrift_writer_finish(&t);
    if (rc) return rc;
    uint32_t n = (uint32_t)b->len;
    uint8_t tail[8] = {
        (uint8_t)n, (uint8_t)(n >> 8), (uint8_t)(n >> 16), (uint8_t)(n >> 24), 'P', 'A', 'R', '1'};
    if ((rc = dm_buf_append(b, tail, 8))) return rc;
    return write_out(w, b->data, b->len, w->err);
}

/* ---- public API ------------------------------------------------------------- */

static int plain_width(const dm_pq_column_t *c)
{
    switch (c->type) {
    case DM_PQ_BOOLEAN: return 1;
    case DM_PQ_INT32:
    case DM_PQ_FLOAT: return 4;
    case DM_PQ_INT64:
    case DM_PQ_DOUBLE: return 8;
    case DM_PQ_FIXED: return c->fixed_len;
    default: return 0;
    }
}

/* Finds each column's group and definition level from the pre-order list
 * (a group's n_children columns follow it, subtrees included). */
static dm_err_t nest_columns(dm_pq_writer_t *w)
{
    int stack[64];
    int32_t left[64];
    int depth = 0;
    for (size_t i = 0; i < w->n_cols; i++) {
        while (depth > 0 && left[depth - 1] == 0)
            depth--;
        int parent = depth ? stack[depth - 1] : -1;
        if (depth) left[depth - 1]--;
        const dm_pq_column_t *d = &w->cols[i].def;
        int level = (parent >= 0 ? w->cols[parent].max_def : 0) + (d->optional ? 1 : 0);
        if (level > 60) return DM_ERR_INVALID;
        for (int set = 0; set < 2; set++) {
            column_t *c = set ? &w->back[i] : &w->cols[i];
            c->group = d->n_children > 0;
            c->parent = parent;
            c->max_def = (uint8_t)level;
            if (c->group) c->dict_allowed = c->dict_on = false;
        }
        if (d->n_children > 0) {
            if (depth == 64) return DM_ERR_INVALID;
            stack[depth] = (int)i;
            left[depth++] = d->n_children;
        }
    }
    while (depth > 0 && left[depth - 1] == 0)
        depth--;
    return depth ? DM_ERR_INVALID : DM_OK;
}

/* A decimal column's physical type must hold its precision (the spec's
 * limits: INT32 up to 9 digits, INT64 up to 18, FIXED by its length). */
static bool decimal_column_ok(const dm_pq_column_t *c)
{
    if (c->logical != DM_PQ_LT_DECIMAL) return true;
    if (c->precision < 1 || c->precision > 38 || c->scale < 0 || c->scale > c->precision)
        return false;
    switch (c->type) {
    case DM_PQ_INT32: return c->precision <= 9;
    case DM_PQ_INT64: return c->precision <= 18;
    case DM_PQ_FIXED: return c->fixed_len >= 1 && c->fixed_len <= 16;
    default: return false;
    }
}

dm_err_t dm_pq_writer_new(FILE *out, const dm_pq_column_t *cols, size_t n_cols,
                          const dm_pq_options_t *opts, dm_pq_writer_t **wp, dm_error_t *err)
{
    *wp = NULL;
    if (n_cols == 0) return dm_error_set(err, DM_ERR_INVALID, "parquet: a file needs columns");
    dm_pq_writer_t *w = calloc(1, sizeof(*w));
    if (!w) return dm_error_set(err, DM_ERR_NOMEM, "parquet: out of memory");
    w->cols = calloc(n_cols, sizeof(column_t));
    w->back = calloc(n_cols, sizeof(column_t));
    w->names = calloc(n_cols, sizeof(char *));
    w->file_stats = calloc(n_cols, sizeof(dm_pq_column_stats_t));
    w->file_bound = calloc(n_cols, sizeof(bound_t));
    w->row_levels = calloc(n_cols, 1);
    w->row_present = calloc(n_cols, sizeof(bool));
    w->n_cols = n_cols;
    if (!w->cols || !w->back || !w->names || !w->file_stats || !w->file_bound || !w->row_levels ||
        !w->row_present) {
        dm_pq_writer_abort(w);
        return dm_error_set(err, DM_ERR_NOMEM, "parquet: out of memory");
    }
    w->out = out;
    w->n_cols = n_cols;
    w->sc[0].w = w->sc[1].w = w;
    w->opts = *opts;
    if (!w->opts.row_group_bytes) w->opts.row_group_bytes = 128 << 20;
    if (!w->opts.page_bytes) w->opts.page_bytes = 1 << 20;
    if (!w->opts.dict_bytes) w->opts.dict_bytes = 1 << 20;
    if (!w->opts.zstd_level) w->opts.zstd_level = 3;
    for (size_t i = 0; i < n_cols; i++) {
        w->names[i] = strdup(cols[i].name ? cols[i].name : "");
        for (int set = 0; set < 2; set++) {
            column_t *c = set ? &w->back[i] : &w->cols[i];
            c->def = cols[i];
            c->def.name = w->names[i];
            c->width = plain_width(&cols[i]);
            c->dict_allowed = !opts->no_dictionary && cols[i].type != DM_PQ_BOOLEAN;
            c->dict_on = c->dict_allowed;
        }
        if (!w->names[i] ||
            (!cols[i].n_children && cols[i].type == DM_PQ_FIXED && cols[i].fixed_len <= 0) ||
            !decimal_column_ok(&cols[i])) {
            dm_pq_writer_abort(w);
            return dm_error_set(err, DM_ERR_INVALID, "parquet: bad column %zu (%s)", i,
                                cols[i].name ? cols[i].name : "?");
        }
    }
    if (nest_columns(w)) {
        dm_pq_writer_abort(w);
        return dm_error_set(err, DM_ERR_INVALID,
                            "parquet: the groups' child counts do not match the columns");
    }
    if (opts->n_kv) {
        w->kv = calloc(2 * opts->n_kv, sizeof(char *));
        for (size_t i = 0; w->kv && i < 2 * opts->n_kv; i++)
            if (!(w->kv[i] = strdup(opts->kv[i] ? opts->kv[i] : ""))) {
                w->opts.n_kv = i / 2 + 1; /* so abort frees what was copied */
                w->opts.kv = (const char *const *)w->kv;
                dm_pq_writer_abort(w);
                return dm_error_set(err, DM_ERR_NOMEM, "parquet: out of memory");
            }
        if (!w->kv) {
            dm_pq_writer_abort(w);
            return dm_error_set(err, DM_ERR_NOMEM, "parquet: out of memory");
        }
        w->opts.kv = (const char *const *)w->kv;
    }
    w->err = err;
    dm_err_t rc = write_out(w, "PAR1", 4, err);
    if (rc) {
        dm_pq_writer_abort(w);
        return rc;
    }
    *wp = w;
    return DM_OK;
}

dm_err_t dm_pq_writer_add_row(dm_pq_writer_t *w, const dm_pq_value_t *vals, dm_error_t *err)
{
    w->err = err;
    /* Each column's definition level in this row: its parent's, plus one
     * when it is optional and present. Columns under an absent struct are
     * absent whatever their value says. */
    uint8_t *level = w->row_levels;
    bool *present = w->row_present;
    for (size_t i = 0; i < w->n_cols; i++) {
        column_t *c = &w->cols[i];
        bool up = c->parent < 0 || present[c->parent];
        uint8_t base = c->parent < 0 ? 0 : level[c->parent];
        present[i] = up && !vals[i].null;
        level[i] = (uint8_t)(base + (present[i] && c->def.optional ? 1 : 0));
        if (!up) continue;
        if (vals[i].null && !c->def.optional)
            return dm_error_set(err, DM_ERR_INVALID, "parquet: null in required column %s",
                                c->def.name);
        if (vals[i].null || c->group) continue;
        if (c->def.logical == DM_PQ_LT_DECIMAL &&
            !dm_pq_decimal_digits_ok(vals[i].u.dec, c->def.precision))
            return dm_error_set(err, DM_ERR_INVALID,
                                "parquet: column %s: decimal value has more than %d digits",
                                c->def.name, c->def.precision);
        if (c->def.type == DM_PQ_FIXED && c->def.logical != DM_PQ_LT_DECIMAL &&
            vals[i].u.s.len != (uint32_t)c->width)
            return dm_error_set(err, DM_ERR_INVALID, "parquet: column %s wants %d bytes, not %u",
                                c->def.name, c->width, vals[i].u.s.len);
    }
    /* Every column takes the value before the row counts, so a failure
     * part-way leaves the row group inconsistent: report it as fatal. */
    for (size_t i = 0; i < w->n_cols; i++) {
        if (w->cols[i].group) continue;
        dm_err_t rc = add_value(w, &w->cols[i], &vals[i], level[i]);
        if (rc)
            return dm_error_set(err, rc, "parquet: buffering column %s: %s", w->cols[i].def.name,
                                dm_err_str(rc));
    }
    w->rows++;
    w->added_rows++;
    if (w->buffered_bytes >= w->opts.row_group_bytes) return cut_group(w, true, err);
    return DM_OK;
}

int64_t dm_pq_writer_rows(const dm_pq_writer_t *w)
{
    return w->added_rows;
}

int64_t dm_pq_writer_size_estimate(const dm_pq_writer_t *w)
{
    int64_t pos = __atomic_load_n(&w->pos, __ATOMIC_RELAXED);
    return pos + (w->bg_running ? w->back_bytes : 0) + w->buffered_bytes;
}

/* A decimal bound from its Parquet form (little-endian INT32 / INT64,
 * big-endian FIXED) to Iceberg's (the fewest big-endian bytes). */
static uint32_t iceberg_decimal(const column_t *c, uint8_t *b, uint32_t len)
{
    uint8_t dec[16];
    if (c->def.type == DM_PQ_INT32) {
        int32_t x;
        memcpy(&x, b, 4);
        dm_pq_decimal_from_int(x, dec);
    } else if (c->def.type == DM_PQ_INT64) {
        int64_t x;
        memcpy(&x, b, 8);
        dm_pq_decimal_from_int(x, dec);
    } else if (!dm_pq_decimal_from_be(b, len, dec)) {
        return len;
    }
    return dm_pq_decimal_minimal(dec, b);
}

static void iceberg_decimal_bounds(const column_t *c, dm_pq_column_stats_t *s)
{
    s->min_len = iceberg_decimal(c, s->min, s->min_len);
    s->max_len = iceberg_decimal(c, s->max, s->max_len);
}

dm_err_t dm_pq_writer_close(dm_pq_writer_t *w, dm_pq_column_stats_t *stats, int64_t *file_bytes,
                            dm_error_t *err)
{
    w->err = err;
    dm_err_t rc = cut_group(w, false, err);
    if (!rc) rc = write_footer(w);
    if (!rc && fflush(w->out))
        rc = dm_error_set(err, DM_ERR_IO, "parquet: flush failed: %s", strerror(errno));
    if (!rc && stats)
        for (size_t i = 0; i < w->n_cols; i++) {
            const bound_t *b = &w->file_bound[i];
            stats[i] = w->file_stats[i];
            stats[i].has_bounds = b->set && !b->unbounded;
            stats[i].bounds_truncated = b->unbounded;
            if (stats[i].has_bounds) {
                memcpy(stats[i].min, b->min, b->min_len);
                memcpy(stats[i].max, b->max, b->max_len);
                stats[i].min_len = b->min_len;
                stats[i].max_len = b->max_len;
                if (w->cols[i].def.logical == DM_PQ_LT_DECIMAL)
                    iceberg_decimal_bounds(&w->cols[i], &stats[i]);
            }
        }
    if (!rc && file_bytes) *file_bytes = w->pos;
    if (rc == DM_ERR_NOMEM) dm_error_set(err, rc, "parquet: out of memory");
    dm_pq_writer_abort(w);
    return rc;
}

void dm_pq_writer_abort(dm_pq_writer_t *w)
{
    if (!w) return;
    join_flush(w, NULL); /* never free what the flushing thread uses */
    for (size_t i = 0; i < 2 * w->n_cols; i++) {
        column_t *c = i < w->n_cols ? (w->cols ? &w->cols[i] : NULL)
                                    : (w->back ? &w->back[i - w->n_cols] : NULL);
        if (!c) continue;
        free(c->levels);
        dm_buf_free(&c->plain);
        free(c->offs);
        free(c->idx);
        dm_buf_free(&c->dict);
        free(c->dict_off);
        free(c->slots);
        free(c->tags);
        dm_buf_free(&c->out);
    }
    free(w->cols);
    free(w->back);
    for (size_t i = 0; w->names && i < w->n_cols; i++)
        free(w->names[i]);
    free(w->names);
    free(w->file_stats);
    free(w->file_bound);
    free(w->row_levels);
    free(w->row_present);
    for (size_t i = 0; w->kv && i < 2 * w->opts.n_kv; i++)
        free(w->kv[i]);
    free(w->kv);
    for (int k = 0; k < 2; k++) {
        ZSTD_freeCCtx(w->sc[k].zctx);
        dm_buf_free(&w->sc[k].page);
        dm_buf_free(&w->sc[k].packed);
        dm_buf_free(&w->sc[k].header);
    }
    free(w->chunks);
    free(w->group_rows);
    free(w->group_offset);
    dm_buf_free(&w->header);
    free(w);
}
