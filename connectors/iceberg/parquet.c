/* connectors/iceberg/parquet.c — Parquet writer, the caller's side (see
 * parquet.h; the worker thread and the footer are in parquet_pages.c).
 *
 * Each leaf column buffers its level entries (definition levels, and
 * repetition levels under lists and maps), the PLAIN encoding of its
 * values, and while it stays small a dictionary with one index per value.
 * A column without a dictionary sends a page as soon as it holds
 * page_bytes; at a row group's cut the rest is sent (dictionary or PLAIN,
 * whichever is smaller) and the chunk's statistics are folded into the
 * file's.
 */
#include "connectors/iceberg/parquet.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/iceberg/parquet_internal.h"
#include "core/hash.h"
#include "core/varint.h"

#define DICT_PROBE 8192 /* values seen before judging a chunk's dictionary */

typedef pq_bound_t bound_t;
typedef pq_column_t column_t;
#define BOUND_MAX PQ_BOUND_MAX

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

void pq_bound_add(const column_t *c, bound_t *bd, const uint8_t *p, uint32_t len)
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

void pq_bound_merge(const column_t *c, bound_t *into, const bound_t *from)
{
    if (from->unbounded) into->unbounded = true;
    if (!from->set || into->unbounded) return;
    pq_bound_add(c, into, from->min, from->min_len);
    pq_bound_add(c, into, from->max, from->max_len);
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

/* Numbers are bounded here, as they come; bytes and booleans by the worker. */
static bool typed_column(const column_t *c)
{
    return c->def.type == DM_PQ_INT32 || c->def.type == DM_PQ_INT64 || c->def.type == DM_PQ_FLOAT ||
           c->def.type == DM_PQ_DOUBLE;
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
    pq_bound_add(c, &c->bound, lo, n);
    pq_bound_add(c, &c->bound, hi, n);
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
/* Checks a present value against its column (decimal digits, fixed length). */
static dm_err_t check_value(const column_t *c, const dm_pq_value_t *v, dm_error_t *err)
{
    if (c->def.logical == DM_PQ_LT_DECIMAL && !dm_pq_decimal_digits_ok(v->u.dec, c->def.precision))
        return dm_error_set(err, DM_ERR_INVALID,
                            "parquet: column %s: decimal value has more than %d digits",
                            c->def.name, c->def.precision);
    if (c->def.type == DM_PQ_FIXED && c->def.logical != DM_PQ_LT_DECIMAL &&
        v->u.s.len != (uint32_t)c->width)
        return dm_error_set(err, DM_ERR_INVALID, "parquet: column %s wants %d bytes, not %u",
                            c->def.name, c->width, v->u.s.len);
    return DM_OK;
}

/* Buffers one level entry of a leaf: a value when def is the column's
 * maximum, else a null (here or above) or an empty list. */
static dm_err_t add_value(dm_pq_writer_t *w, column_t *c, const dm_pq_value_t *v, uint8_t def,
                          uint8_t rep)
{
    dm_err_t rc = DM_OK;
    if (c->n_lv == c->cap_lv) {
        size_t cap = c->cap_lv;
        if ((rc = grow((void **)&c->defs, &cap, c->n_lv + 1, 1))) return rc;
        if (c->max_rep && (rc = grow((void **)&c->reps, &c->cap_lv, c->n_lv + 1, 1))) return rc;
        c->cap_lv = cap;
    }
    c->defs[c->n_lv] = def;
    if (c->max_rep) c->reps[c->n_lv] = rep;
    c->n_lv++;
    c->chunk_lv++;
    if (def < c->max_def) {
        c->nulls++;
        w->group_bytes++;
        return DM_OK;
    }
    if (c->number && !c->dict_on) {
        /* A number once its chunk has no dictionary: its bytes and its bound. */
        if (c->plain.cap - c->plain.len < 8 && (rc = dm_buf_reserve(&c->plain, 8))) return rc;
        uint8_t *d = c->plain.data + c->plain.len;
        switch (c->def.type) {
        case DM_PQ_INT32: memcpy(d, &v->u.i32, 4), typed_int(c, v->u.i32); break;
        case DM_PQ_INT64: memcpy(d, &v->u.i64, 8), typed_int(c, v->u.i64); break;
        case DM_PQ_FLOAT:
            memcpy(d, &v->u.f, 4);
            if (isnan(v->u.f))
                c->nans++;
            else
                typed_real(c, v->u.f);
            break;
        default:
            memcpy(d, &v->u.d, 8);
            if (isnan(v->u.d))
                c->nans++;
            else
                typed_real(c, v->u.d);
        }
        c->plain.len += (size_t)c->width;
        c->n_vals++;
        w->group_bytes += c->width + 1;
        if ((int64_t)c->plain.len >= w->opts.page_bytes) c->page_due = w->page_due = true;
        return DM_OK;
    }
    dm_pq_value_t narrowed;
    if (c->def.logical == DM_PQ_LT_DECIMAL) v = narrow_decimal(c, v, &narrowed);
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
    w->group_bytes += (int64_t)(c->plain.len - start) + 1;
    if (!c->dict_on && (int64_t)c->plain.len >= w->opts.page_bytes)
        c->page_due = w->page_due = true;
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
    default: break; /* bytes and booleans: the worker bounds them from the pages */
    }
    return DM_OK;
}

/* ---- pages and row groups ----------------------------------------------------- */

static size_t value_end(const column_t *c, size_t v)
{
    return v + 1 < c->n_vals ? c->offs[v + 1] : c->plain.len;
}

/* Sends a data page of entries [r0, r1) holding values [v0, v1): the raw
 * parts go to the worker, which encodes and compresses them. When the page
 * takes every buffered value its bytes change hands instead of being copied. */
static dm_err_t send_page(dm_pq_writer_t *w, size_t ci, size_t r0, size_t r1, size_t v0, size_t v1,
                          bool dict, int bit_width, dm_error_t *err)
{
    column_t *c = &w->cols[ci];
    pq_job_t *j = pq_job_get(w);
    if (!j) return dm_error_set(err, DM_ERR_NOMEM, "parquet: out of memory");
    dm_err_t rc = r1 - r0 > INT32_MAX ? DM_ERR_RANGE : DM_OK;
    if (!rc && c->max_rep) rc = dm_buf_append(&j->reps, c->reps + r0, r1 - r0);
    if (!rc && c->max_def) rc = dm_buf_append(&j->defs, c->defs + r0, r1 - r0);
    if (!rc && dict) {
        rc = dm_buf_append(&j->body, c->idx + v0, (v1 - v0) * sizeof(uint32_t));
    } else if (!rc && v1 > v0) {
        size_t a = c->width ? v0 * (size_t)c->width : c->offs[v0];
        size_t b = c->width ? v1 * (size_t)c->width : value_end(c, v1 - 1);
        if (a == 0 && b == c->plain.len) {
            dm_buf_t t = j->body;
            j->body = c->plain;
            c->plain = t;
            dm_buf_reset(&c->plain);
        } else {
            rc = dm_buf_append(&j->body, c->plain.data + a, b - a);
        }
    }
    if (rc) {
        pq_job_discard(j);
        return dm_error_set(err, rc, "parquet: column %s: page: %s", c->def.name, dm_err_str(rc));
    }
    j->kind = PQ_JOB_PAGE;
    j->col = ci;
    j->page_type = PQ_PAGE_DATA;
    j->num_values = (int32_t)(r1 - r0);
    j->encoding = dict ? PQ_ENC_RLE_DICTIONARY : PQ_ENC_PLAIN;
    j->bit_width = bit_width;
    return pq_enqueue(w, j, err);
}

/* Sends the column's buffered entries as pages of about page_bytes, each
 * ending at a row boundary; final sends the rest too, else the rest stays
 * buffered (moved to the front). */
static dm_err_t send_pages(dm_pq_writer_t *w, size_t ci, bool dict, bool final, dm_error_t *err)
{
    column_t *c = &w->cols[ci];
    int bw = dict ? pq_bit_width(c->dict_n ? c->dict_n - 1 : 0) : 0;
    if (!dict && !c->max_rep && (int64_t)c->plain.len < 2 * w->opts.page_bytes) {
        /* Every entry ends a row and the buffer is about a page: one page,
         * without walking it. */
        if (!c->n_lv && c->streamed) return DM_OK;
        dm_err_t rc = send_page(w, ci, 0, c->n_lv, 0, c->n_vals, false, 0, err);
        c->streamed = true;
        c->n_lv = c->n_vals = 0;
        dm_buf_reset(&c->plain);
        return rc;
    }
    size_t r0 = 0, v0 = 0, v = 0;
    int64_t bytes = 0;
    dm_err_t rc = DM_OK;
    for (size_t r = 0; r < c->n_lv && !rc; r++) {
        if (c->defs[r] == c->max_def) {
            bytes += dict ? 1 : c->width ? c->width : (int64_t)(value_end(c, v) - c->offs[v]);
            v++;
        }
        bool row_end = r + 1 == c->n_lv || !c->max_rep || c->reps[r + 1] == 0;
        if (bytes >= w->opts.page_bytes && row_end) {
            rc = send_page(w, ci, r0, r + 1, v0, v, dict, bw, err);
            r0 = r + 1, v0 = v, bytes = 0;
            c->streamed = true;
        }
    }
    if (rc) return rc;
    if (final) {
        if (r0 < c->n_lv || !c->streamed)
            rc = send_page(w, ci, r0, c->n_lv, v0, c->n_vals, dict, bw, err);
        c->n_lv = c->n_vals = 0;
        dm_buf_reset(&c->plain);
        return rc;
    }
    /* The rest moves to the front; its value offsets shift with it. (When
     * the last page took every value its bytes went to the job: plain is
     * empty then, and so is the rest's share of it.) */
    size_t a = v0 == c->n_vals ? c->plain.len : c->width ? v0 * (size_t)c->width : c->offs[v0];
    memmove(c->defs, c->defs + r0, c->n_lv - r0);
    if (c->max_rep) memmove(c->reps, c->reps + r0, c->n_lv - r0);
    if (!c->width)
        for (size_t k = v0; k < c->n_vals; k++)
            c->offs[k - v0] = c->offs[k] - (uint32_t)a;
    if (c->plain.len > a) memmove(c->plain.data, c->plain.data + a, c->plain.len - a);
    c->plain.len -= a;
    c->n_lv -= r0;
    c->n_vals -= v0;
    return DM_OK;
}

static void column_reset(column_t *c)
{
    dm_buf_reset(&c->plain);
    dm_buf_reset(&c->dict);
    c->n_vals = c->n_lv = 0;
    c->dict_n = 0;
    c->chunk_lv = c->nulls = c->nans = 0;
    c->streamed = c->page_due = false;
    memset(&c->bound, 0, sizeof(c->bound));
    c->typed_set = false;
    dict_drop(c);
    c->dict_on = c->dict_allowed;
}

/* Sends the full pages of the columns that have one. */
static dm_err_t send_due_pages(dm_pq_writer_t *w, dm_error_t *err)
{
    w->page_due = false;
    for (size_t i = 0; i < w->n_cols; i++) {
        if (!w->cols[i].page_due) continue;
        w->cols[i].page_due = false;
        dm_err_t rc = send_pages(w, i, false, false, err);
        if (rc) return rc;
    }
    return DM_OK;
}

/* Ends the current row group: each chunk's last pages (a dictionary chunk
 * all of them), then the job that writes the group. */
static dm_err_t cut_group(dm_pq_writer_t *w, dm_error_t *err)
{
    if (w->rows == 0) return DM_OK;
    pq_job_t *g = pq_job_get(w);
    if (g) g->metas = calloc(w->n_cols, sizeof(pq_chunk_meta_t));
    if (!g || !g->metas) {
        pq_job_discard(g);
        return dm_error_set(err, DM_ERR_NOMEM, "parquet: out of memory");
    }
    dm_err_t rc = DM_OK;
    for (size_t i = 0; i < w->n_cols && !rc; i++) {
        column_t *c = &w->cols[i];
        if (c->group) continue;
        pq_chunk_meta_t *m = &g->metas[i];
        typed_to_bound(c);
        int bw = pq_bit_width(c->dict_n ? c->dict_n - 1 : 0);
        m->dict = !c->streamed && c->dict_on && c->dict_n > 0 &&
                  c->dict.len + c->n_vals * (size_t)bw / 8 < c->plain.len;
        if (m->dict) {
            pq_job_t *d = pq_job_get(w);
            if (!d || dm_buf_append(&d->body, c->dict.data, c->dict.len)) {
                pq_job_discard(d);
                rc = dm_error_set(err, DM_ERR_NOMEM, "parquet: out of memory");
                break;
            }
            d->kind = PQ_JOB_PAGE, d->col = i, d->page_type = PQ_PAGE_DICTIONARY;
            d->num_values = (int32_t)c->dict_n, d->encoding = PQ_ENC_PLAIN;
            if ((rc = pq_enqueue(w, d, err))) break;
        }
        if ((rc = send_pages(w, i, m->dict, true, err))) break;
        m->values = c->chunk_lv;
        m->nulls = c->nulls;
        m->bound = c->bound;
        dm_pq_column_stats_t *f = &w->file_stats[i];
        f->values += c->chunk_lv;
        f->nulls += c->nulls;
        f->nans += c->nans;
        if (typed_column(c)) pq_bound_merge(c, &w->file_bound[i], &c->bound);
        column_reset(c);
    }
    if (rc) {
        pq_job_discard(g);
        return rc;
    }
    g->kind = PQ_JOB_GROUP;
    g->rows = (int64_t)w->rows;
    g->bytes = w->group_bytes;
    __atomic_fetch_add(&w->inflight, w->group_bytes, __ATOMIC_RELAXED);
    w->rows = 0;
    w->group_bytes = 0;
    return pq_enqueue(w, g, err);
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

/* Finds each column's group, subtree end and levels from the pre-order list
 * (a group's n_children columns follow it, subtrees included). A list has
 * one child, a map two with a required key; both add a repeated level. */
static dm_err_t nest_columns(dm_pq_writer_t *w)
{
    int stack[64];
    int32_t left[64];
    int depth = 0;
    for (size_t i = 0; i <= w->n_cols; i++) {
        while (depth > 0 && left[depth - 1] == 0)
            w->cols[stack[--depth]].end = i;
        if (i == w->n_cols) break;
        int parent = depth ? stack[depth - 1] : -1;
        if (depth) left[depth - 1]--;
        column_t *c = &w->cols[i];
        const column_t *pc = parent >= 0 ? &w->cols[parent] : NULL;
        const dm_pq_column_t *d = &c->def;
        int def = (pc ? pc->child_def : 0) + (d->optional ? 1 : 0);
        int rep = pc ? pc->child_rep : 0;
        c->group = d->n_children > 0;
        c->container = c->group && (d->logical == DM_PQ_LT_LIST || d->logical == DM_PQ_LT_MAP);
        if (c->group && !c->container && d->logical != DM_PQ_LT_NONE) return DM_ERR_INVALID;
        if (d->logical == DM_PQ_LT_LIST && d->n_children != 1) return DM_ERR_INVALID;
        if (d->logical == DM_PQ_LT_MAP && (d->n_children != 2 || w->cols[i + 1].def.optional))
            return DM_ERR_INVALID;
        if ((!c->group && (d->logical == DM_PQ_LT_LIST || d->logical == DM_PQ_LT_MAP)) ||
            def + (c->container ? 1 : 0) > 60 || rep + 1 > 60)
            return DM_ERR_INVALID;
        c->parent = parent;
        c->outer = pc && pc->outer >= 0 ? pc->outer : c->container ? (int)i : -1;
        c->max_def = (uint8_t)def;
        c->max_rep = (uint8_t)rep;
        c->child_def = (uint8_t)(def + (c->container ? 1 : 0));
        c->child_rep = (uint8_t)(rep + (c->container ? 1 : 0));
        c->end = i + 1;
        if (c->group) c->dict_allowed = c->dict_on = false;
        if (c->group) {
            if (depth == 64) return DM_ERR_INVALID;
            stack[depth] = (int)i;
            left[depth++] = d->n_children;
        }
    }
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
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv_work, NULL);
    pthread_cond_init(&w->cv_room, NULL);
    w->cols = calloc(n_cols, sizeof(column_t));
    w->names = calloc(n_cols, sizeof(char *));
    w->file_stats = calloc(n_cols, sizeof(dm_pq_column_stats_t));
    w->file_bound = calloc(n_cols, sizeof(bound_t));
    w->row_levels = calloc(n_cols, 1);
    w->row_present = calloc(n_cols, sizeof(bool));
    w->row_seen = calloc(n_cols, sizeof(bool));
    w->n_cols = n_cols;
    if (!w->cols || !w->names || !w->file_stats || !w->file_bound || !w->row_levels ||
        !w->row_present || !w->row_seen) {
        dm_pq_writer_abort(w);
        return dm_error_set(err, DM_ERR_NOMEM, "parquet: out of memory");
    }
    w->out = out;
    w->opts = *opts;
    if (!w->opts.row_group_bytes) w->opts.row_group_bytes = 128 << 20;
    if (!w->opts.page_bytes) w->opts.page_bytes = 1 << 20;
    if (!w->opts.dict_bytes) w->opts.dict_bytes = 1 << 20;
    if (!w->opts.zstd_level) w->opts.zstd_level = 3;
    for (size_t i = 0; i < n_cols; i++) {
        w->names[i] = strdup(cols[i].name ? cols[i].name : "");
        column_t *c = &w->cols[i];
        c->def = cols[i];
        c->def.name = w->names[i];
        c->width = plain_width(&cols[i]);
        c->dict_allowed = !opts->no_dictionary && cols[i].type != DM_PQ_BOOLEAN;
        c->dict_on = c->dict_allowed;
        c->wmeta.data_offset = c->wmeta.dict_offset = -1;
        if (!w->names[i] ||
            (!cols[i].n_children && cols[i].type == DM_PQ_FIXED && cols[i].fixed_len <= 0) ||
            !decimal_column_ok(&cols[i])) {
            dm_pq_writer_abort(w);
            return dm_error_set(err, DM_ERR_INVALID, "parquet: bad column %zu (%s)", i,
                                cols[i].name ? cols[i].name : "?");
        }
    }
    w->flat = true;
    for (size_t i = 0; i < n_cols; i++) {
        column_t *c = &w->cols[i];
        c->check = c->def.logical == DM_PQ_LT_DECIMAL || c->def.type == DM_PQ_FIXED;
        c->number = !cols[i].n_children && typed_column(c) && c->def.logical != DM_PQ_LT_DECIMAL;
        if (cols[i].n_children) w->flat = false;
    }
    if (nest_columns(w)) {
        dm_pq_writer_abort(w);
        return dm_error_set(err, DM_ERR_INVALID,
                            "parquet: the groups do not match the columns (child counts, a list "
                            "with one child, a map with a required key and a value)");
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
    dm_err_t rc = pq_write_magic(w, err);
    if (rc) {
        dm_pq_writer_abort(w);
        return rc;
    }
    *wp = w;
    return DM_OK;
}

/* Checks the entries of present list or map i (which reached definition
 * level at) before anything of the row is buffered: every one names a leaf
 * under it, has levels in range, starts its column's run with repetition 0
 * and only then; a value exactly at the leaf's maximum; every leaf has one. */
static dm_err_t check_entries(dm_pq_writer_t *w, size_t i, const dm_pq_value_t *v, uint8_t at,
                              dm_error_t *err)
{
    const column_t *c = &w->cols[i];
    for (size_t j = i + 1; j < c->end; j++)
        w->row_seen[j] = false;
    for (uint32_t k = 0; k < v->u.rep.n; k++) {
        const dm_pq_entry_t *e = &v->u.rep.e[k];
        const column_t *lc = e->col > i && e->col < c->end ? &w->cols[e->col] : NULL;
        if (!lc || lc->group)
            return dm_error_set(err, DM_ERR_INVALID,
                                "parquet: %s: an entry for column %u, not a "
                                "leaf of it",
                                c->def.name, e->col);
        if (e->def > lc->max_def || e->def < at || e->rep > lc->max_rep ||
            (e->rep == 0) == w->row_seen[e->col])
            return dm_error_set(err, DM_ERR_INVALID,
                                "parquet: column %s: entry with levels rep %u def %u out of order "
                                "or range",
                                lc->def.name, e->rep, e->def);
        w->row_seen[e->col] = true;
        if (e->def == lc->max_def) {
            dm_err_t rc = check_value(lc, &e->v, err);
            if (rc) return rc;
        }
    }
    for (size_t j = i + 1; j < c->end; j++)
        if (!w->cols[j].group && !w->row_seen[j])
            return dm_error_set(err, DM_ERR_INVALID, "parquet: column %s: no entry in a row",
                                w->cols[j].def.name);
    return DM_OK;
}

/* A row is in: count it, send full pages, cut the row group when full. */
static dm_err_t row_added(dm_pq_writer_t *w, dm_error_t *err)
{
    w->rows++;
    w->added_rows++;
    dm_err_t rc = w->page_due ? send_due_pages(w, err) : DM_OK;
    if (!rc && w->group_bytes >= w->opts.row_group_bytes) rc = cut_group(w, err);
    return rc;
}

/* The short path of a schema without groups: a value is present at level 1
 * (optional) or 0 (required), a null at 0. */
static dm_err_t add_flat_row(dm_pq_writer_t *w, const dm_pq_value_t *vals, dm_error_t *err)
{
    for (size_t i = 0; i < w->n_cols; i++) {
        const column_t *c = &w->cols[i];
        if (vals[i].null && !c->def.optional)
            return dm_error_set(err, DM_ERR_INVALID, "parquet: null in required column %s",
                                c->def.name);
        dm_err_t rc = !vals[i].null && c->check ? check_value(c, &vals[i], err) : DM_OK;
        if (rc) return rc;
    }
    for (size_t i = 0; i < w->n_cols; i++) {
        column_t *c = &w->cols[i];
        dm_err_t rc = add_value(w, c, &vals[i], vals[i].null ? 0 : c->max_def, 0);
        if (rc)
            return dm_error_set(err, rc, "parquet: buffering column %s: %s", c->def.name,
                                dm_err_str(rc));
    }
    return row_added(w, err);
}

dm_err_t dm_pq_writer_add_row(dm_pq_writer_t *w, const dm_pq_value_t *vals, dm_error_t *err)
{
    w->err = err;
    if (w->flat) return add_flat_row(w, vals, err);
    /* Each column's definition level in this row: its parent's, plus one
     * when it is optional and present. Columns under an absent struct are
     * absent whatever their value says; columns under a list or map come
     * from its entries. */
    uint8_t *level = w->row_levels;
    bool *present = w->row_present;
    for (size_t i = 0; i < w->n_cols; i++) {
        column_t *c = &w->cols[i];
        if (c->outer >= 0 && c->outer != (int)i) continue;
        bool up = c->parent < 0 || present[c->parent];
        uint8_t base = c->parent < 0 ? 0 : level[c->parent];
        present[i] = up && !vals[i].null;
        level[i] = (uint8_t)(base + (present[i] && c->def.optional ? 1 : 0));
        if (!up) continue;
        if (vals[i].null && !c->def.optional)
            return dm_error_set(err, DM_ERR_INVALID, "parquet: null in required column %s",
                                c->def.name);
        if (vals[i].null) continue;
        dm_err_t rc = c->container ? check_entries(w, i, &vals[i], level[i], err)
                      : c->check   ? check_value(c, &vals[i], err)
                                   : DM_OK;
        if (rc) return rc;
    }
    /* Every column takes the value before the row counts, so a failure
     * part-way leaves the row group inconsistent: report it as fatal. */
    dm_err_t rc = DM_OK;
    size_t at = 0;
    for (size_t i = 0; i < w->n_cols && !rc; i++) {
        column_t *c = &w->cols[i];
        at = i;
        if (c->container && present[i]) {
            for (uint32_t k = 0; k < vals[i].u.rep.n && !rc; k++) {
                const dm_pq_entry_t *e = &vals[i].u.rep.e[k];
                at = e->col;
                rc = add_value(w, &w->cols[e->col], &e->v, e->def, e->rep);
            }
            i = c->end - 1;
        } else if (c->container) {
            for (size_t j = i + 1; j < c->end && !rc; j++)
                if (!w->cols[j].group) rc = add_value(w, &w->cols[at = j], NULL, level[i], 0);
            i = c->end - 1;
        } else if (!c->group) {
            rc = add_value(w, c, &vals[i], level[i], 0);
        }
    }
    if (rc)
        return dm_error_set(err, rc, "parquet: buffering column %s: %s", w->cols[at].def.name,
                            dm_err_str(rc));
    return row_added(w, err);
}

int64_t dm_pq_writer_rows(const dm_pq_writer_t *w)
{
    return w->added_rows;
}

int64_t dm_pq_writer_size_estimate(const dm_pq_writer_t *w)
{
    return __atomic_load_n(&w->pos, __ATOMIC_RELAXED) +
           __atomic_load_n(&w->inflight, __ATOMIC_RELAXED) + w->group_bytes;
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
    dm_err_t rc = cut_group(w, err);
    dm_err_t wrc = pq_worker_stop(w, rc != DM_OK, rc ? NULL : err);
    if (!rc) rc = wrc;
    if (!rc) rc = pq_write_footer(w, err);
    if (!rc && fflush(w->out))
        rc = dm_error_set(err, DM_ERR_IO, "parquet: flush failed: %s", strerror(errno));
    if (!rc && stats)
        for (size_t i = 0; i < w->n_cols; i++) {
            const bound_t *b = &w->file_bound[i];
            stats[i] = w->file_stats[i];
            /* No bounds under lists and maps: Iceberg keeps none for
             * repeated fields (a bound of all elements filters no rows). */
            stats[i].has_bounds = b->set && !b->unbounded && !w->cols[i].max_rep;
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
    dm_pq_writer_abort(w);
    return rc;
}

void dm_pq_writer_abort(dm_pq_writer_t *w)
{
    if (!w) return;
    pq_worker_stop(w, true, NULL); /* never free what the worker uses */
    pq_worker_free(w);
    for (size_t i = 0; w->cols && i < w->n_cols; i++) {
        column_t *c = &w->cols[i];
        free(c->defs);
        free(c->reps);
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
    for (size_t i = 0; w->names && i < w->n_cols; i++)
        free(w->names[i]);
    free(w->names);
    free(w->file_stats);
    free(w->file_bound);
    free(w->row_levels);
    free(w->row_present);
    free(w->row_seen);
    for (size_t i = 0; w->kv && i < 2 * w->opts.n_kv; i++)
        free(w->kv[i]);
    free(w->kv);
    free(w->chunks);
    free(w->group_rows);
    free(w->group_offset);
    dm_buf_free(&w->footer);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv_work);
    pthread_cond_destroy(&w->cv_room);
    free(w);
}
