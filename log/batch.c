/* log/batch.c — encoding and decoding of record batches (format in log/batch.h).
 *
 * The host is assumed little-endian (x86-64, aarch64), so the fixed header is
 * read and written with memcpy.
 */
#include "log/batch.h"

#include <lz4.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "core/crc32c.h"
#include "core/varint.h"

/* ---- encoding ------------------------------------------------------------------ */

static size_t record_max_size(const dm_log_record_t *r)
{
    size_t s = 4 * DM_VARINT_MAX;
    if (r->key_len > 0) s += (size_t)r->key_len;
    if (r->value_len > 0) s += (size_t)r->value_len;
    for (uint32_t i = 0; i < r->n_headers; i++) {
        s += 2 * DM_VARINT_MAX + r->headers[i].key_len;
        if (r->headers[i].value_len > 0) s += (size_t)r->headers[i].value_len;
    }
    return s;
}

static inline __attribute__((always_inline)) uint8_t *put_varint(uint8_t *w, uint64_t v)
{
    if (v < 0x80) {
        *w = (uint8_t)v;
        return w + 1;
    }
    if (v < 0x4000) {
        w[0] = (uint8_t)(v | 0x80);
        w[1] = (uint8_t)(v >> 7);
        return w + 2;
    }
    return w + dm_varint_encode_u64(v, w);
}

static inline __attribute__((always_inline)) uint8_t *put_bytes(uint8_t *w, const void *p,
                                                                int64_t len)
{
    w = put_varint(w, dm_zigzag_encode64(len < 0 ? -1 : len));
    if (len > 0) {
        memcpy(w, p, (size_t)len);
        w += len;
    }
    return w;
}

static inline int64_t rec_ts(const dm_log_record_t *r, int64_t now_ms)
{
    return r->timestamp > 0 ? r->timestamp : now_ms;
}

static inline int64_t rec_rel(const int64_t *rel, size_t i)
{
    return rel ? rel[i] : (int64_t)i;
}

static inline __attribute__((always_inline)) uint8_t *
put_record(uint8_t *w, const dm_log_record_t *r, int64_t tsd, int64_t rel)
{
    w = put_varint(w, dm_zigzag_encode64(tsd));
    w = put_varint(w, (uint64_t)rel);
    w = put_bytes(w, r->key, r->key ? r->key_len : -1);
    w = put_bytes(w, r->value, r->value ? r->value_len : -1);
    if (r->n_headers == 0) {
        *w = 0;
        return w + 1;
    }
    w = put_varint(w, r->n_headers);
    for (uint32_t j = 0; j < r->n_headers; j++) {
        const dm_log_header_t *hd = &r->headers[j];
        w = put_bytes(w, hd->key, hd->key_len);
        w = put_bytes(w, hd->value, hd->value ? hd->value_len : -1);
    }
    return w;
}

/* Writes the records section into out (appending), for compression. rel NULL = 0..n-1. */
static dm_err_t encode_records(dm_buf_t *out, const dm_log_record_t *records, size_t n,
                               int64_t now_ms, const int64_t *rel, int64_t first_ts)
{
    size_t need = 0;
    for (size_t i = 0; i < n; i++)
        need += record_max_size(&records[i]);
    if (dm_buf_reserve(out, need)) return DM_ERR_NOMEM;
    uint8_t *w = out->data + out->len;
    for (size_t i = 0; i < n; i++)
        w = put_record(w, &records[i], rec_ts(&records[i], now_ms) - first_ts, rec_rel(rel, i));
    out->len = (size_t)(w - out->data);
    return DM_OK;
}

/* Fills bytes [16, 56) of a batch header. */
static void header_tail(uint8_t *t, uint8_t attributes, size_t n, int64_t first, int64_t last,
                        uint64_t txn_id, size_t payload_len, int64_t last_rel)
{
    memset(t, 0, DM_BATCH_HEADER_SIZE - 16);
    t[0] = DM_BATCH_MAGIC;
    t[1] = attributes;
    dm_wr32(t + 4, (uint32_t)n);
    dm_wr64(t + 8, (uint64_t)first);
    dm_wr64(t + 16, (uint64_t)last);
    dm_wr64(t + 24, txn_id);
    dm_wr32(t + 32, (uint32_t)payload_len);
    dm_wr32(t + 36, (uint32_t)last_rel);
}

/* Ends an uncompressed batch whose records were written from hdr_at + header up to w: the
 * header (base offset left 0 for the caller) and the CRC, while the bytes are in cache. */
static dm_err_t finish_plain(dm_buf_t *out, size_t hdr_at, const uint8_t *w, uint8_t attributes,
                             size_t n, int64_t first, int64_t last, uint64_t txn_id,
                             int64_t last_rel)
{
    size_t payload_len = (size_t)(w - out->data) - hdr_at - DM_BATCH_HEADER_SIZE;
    if (DM_BATCH_HEADER_SIZE + payload_len > DM_BATCH_MAX_BYTES) return DM_ERR_RANGE;
    uint8_t *h = out->data + hdr_at;
    dm_wr64(h, 0);
    dm_wr32(h + 8, (uint32_t)(DM_BATCH_HEADER_SIZE + payload_len));
    header_tail(h + 16, attributes, n, first, last, txn_id, payload_len, last_rel);
    dm_wr32(h + 12, dm_crc32c(0, h + 16, DM_BATCH_HEADER_SIZE - 16 + payload_len));
    out->len = hdr_at + DM_BATCH_HEADER_SIZE + payload_len;
    return DM_OK;
}

/* Encodes an uncompressed batch into space reserved once for the whole batch (need: an
 * upper bound of its size, from encode_common), then checksums it while it is still in
 * cache. */
static dm_err_t encode_plain(dm_buf_t *out, const dm_log_record_t *records, size_t n,
                             const int64_t *rel, int64_t now_ms, int64_t first, int64_t last,
                             uint8_t attributes, uint64_t txn_id, size_t need)
{
    size_t hdr_at = out->len;
    if (dm_buf_reserve(out, DM_BATCH_HEADER_SIZE + need)) return DM_ERR_NOMEM;
    uint8_t *w = out->data + hdr_at + DM_BATCH_HEADER_SIZE;
    for (size_t i = 0; i < n; i++)
        w = put_record(w, &records[i], first == last ? 0 : rec_ts(&records[i], now_ms) - first,
                       rec_rel(rel, i));
    return finish_plain(out, hdr_at, w, attributes, n, first, last, txn_id, rec_rel(rel, n - 1));
}

/* The common produce: uncompressed, offsets 0..n-1, and the first record's timestamp the
 * smallest (all "now", or ascending). One pass over the records, growing out as needed (a
 * reused buffer is large enough after the first batch): a first pass for the timestamp
 * range and the size reads the 64 KB record array from L2 once more, a tenth of the
 * encoding time. Returns DM_ERR_AGAIN, having written nothing, when a later record has an
 * earlier timestamp: the caller then takes the general path. */
static dm_err_t encode_plain_one_pass(dm_buf_t *out, const dm_log_record_t *records, size_t n,
                                      int64_t now_ms, uint8_t attributes, uint64_t txn_id)
{
    size_t hdr_at = out->len;
    if (dm_buf_reserve(out, DM_BATCH_HEADER_SIZE + n * (4 * DM_VARINT_MAX + 1)))
        return DM_ERR_NOMEM;
    int64_t first = rec_ts(&records[0], now_ms), last = first;
    uint8_t *w = out->data + hdr_at + DM_BATCH_HEADER_SIZE, *end = out->data + out->cap;
    /* the shape of the first record, which a uniform batch's records all have */
    int64_t key_len0 = records[0].key ? records[0].key_len : -1;
    int64_t value_len0 = records[0].value ? records[0].value_len : -1;
    bool uniform = true;
    for (size_t i = 0; i < n; i++) {
        const dm_log_record_t *r = &records[i];
        int64_t ts = rec_ts(r, now_ms);
        if (ts < first) return DM_ERR_AGAIN;
        if (ts > last) last = ts;
        uniform &= r->n_headers == 0 && (r->key ? r->key_len : -1) == key_len0 &&
                   (r->value ? r->value_len : -1) == value_len0;
        size_t need = r->n_headers ? record_max_size(r)
                                   : 4 * DM_VARINT_MAX + 1 +
                                         (r->key && r->key_len > 0 ? (size_t)r->key_len : 0) +
                                         (r->value && r->value_len > 0 ? (size_t)r->value_len : 0);
        if ((size_t)(end - w) < need) {
            out->len = (size_t)(w - out->data);
            if (out->len - hdr_at + need > DM_BATCH_MAX_BYTES + 4 * DM_VARINT_MAX + 1) {
                out->len = hdr_at;
                return DM_ERR_RANGE;
            }
            if (dm_buf_reserve(out, need + out->len / 2)) {
                out->len = hdr_at;
                return DM_ERR_NOMEM;
            }
            w = out->data + out->len;
            end = out->data + out->cap;
            out->len = hdr_at;
        }
        w = put_record(w, r, ts - first, (int64_t)i);
    }
    if (uniform && first == last) attributes |= DM_BATCH_ATTR_UNIFORM;
    return finish_plain(out, hdr_at, w, attributes, n, first, last, txn_id, (int64_t)n - 1);
}

/* The error of a batch that could not be encoded: no memory, or over the size limit. */
static dm_err_t encode_failed(dm_err_t rc, size_t n, dm_error_t *err)
{
    if (rc == DM_ERR_NOMEM) return dm_error_set(err, rc, "encoding a batch of %zu records", n);
    return dm_error_set(err, rc, "batch of %zu records exceeds the %u byte limit", n,
                        DM_BATCH_MAX_BYTES);
}

static dm_err_t encode_common(dm_buf_t *out, dm_buf_t *scratch, int64_t base_offset,
                              const dm_log_record_t *records, size_t n, const int64_t *rel,
                              dm_batch_comp_t comp, uint64_t txn_id, int64_t now_ms,
                              dm_error_t *err)
{
    if (n == 0 || n > UINT32_MAX)
        return dm_error_set(err, DM_ERR_INVALID, "batch of %zu records", n);
    if (comp == DM_BATCH_COMP_NONE && !rel) {
        size_t at = out->len;
        dm_err_t rc =
            encode_plain_one_pass(out, records, n, now_ms, txn_id ? DM_BATCH_ATTR_TXN : 0, txn_id);
        if (rc == DM_OK) {
            dm_wr64(out->data + at, (uint64_t)base_offset);
            return DM_OK;
        }
        if (rc != DM_ERR_AGAIN) return encode_failed(rc, n, err);
    }
    /* One pass for the timestamp range and the batch's size bound: the bytes of keys, values
     * and headers, plus the most their varints can take. */
    int64_t first = INT64_MAX, last = INT64_MIN;
    uint64_t data_bytes = 0, need = 0;
    for (size_t i = 0; i < n; i++) {
        const dm_log_record_t *r = &records[i];
        int64_t ts = rec_ts(r, now_ms);
        if (ts < first) first = ts;
        if (ts > last) last = ts;
        uint64_t d = (r->key && r->key_len > 0 ? (uint64_t)r->key_len : 0) +
                     (r->value && r->value_len > 0 ? (uint64_t)r->value_len : 0);
        if (r->n_headers) {
            uint64_t m = record_max_size(r);
            need += m;
            data_bytes += m - 4 * DM_VARINT_MAX - 2 * DM_VARINT_MAX * r->n_headers;
        } else {
            data_bytes += d;
            need += d + 4 * DM_VARINT_MAX + 1;
        }
    }
    size_t hdr_at = out->len;
    if (data_bytes > DM_BATCH_MAX_BYTES) return encode_failed(DM_ERR_RANGE, n, err);
    uint8_t attributes = (uint8_t)comp | (txn_id ? DM_BATCH_ATTR_TXN : 0);
    if (comp == DM_BATCH_COMP_NONE) {
        dm_err_t rc = encode_plain(out, records, n, rel, now_ms, first, last, attributes, txn_id,
                                   (size_t)need);
        if (rc) {
            out->len = hdr_at;
            return encode_failed(rc, n, err);
        }
        dm_wr64(out->data + hdr_at, (uint64_t)base_offset);
        return DM_OK;
    }
    dm_err_t rc = dm_buf_reserve(out, DM_BATCH_HEADER_SIZE);
    if (rc) goto fail_nomem;
    memset(out->data + hdr_at, 0, DM_BATCH_HEADER_SIZE);
    out->len += DM_BATCH_HEADER_SIZE;
    dm_buf_reset(scratch);
    if (encode_records(scratch, records, n, now_ms, rel, first)) goto fail_nomem;
    size_t payload_len = scratch->len;
    size_t bound = comp == DM_BATCH_COMP_ZSTD ? ZSTD_compressBound(payload_len)
                                              : (size_t)LZ4_compressBound((int)payload_len);
    if (dm_buf_reserve(out, bound)) goto fail_nomem;
    size_t clen;
    if (comp == DM_BATCH_COMP_ZSTD) {
        clen = ZSTD_compress(out->data + out->len, bound, scratch->data, payload_len, 1);
        if (ZSTD_isError(clen)) {
            out->len = hdr_at;
            return dm_error_set(err, DM_ERR_INTERNAL, "zstd: %s", ZSTD_getErrorName(clen));
        }
    } else {
        int c = LZ4_compress_default((const char *)scratch->data, (char *)out->data + out->len,
                                     (int)payload_len, (int)bound);
        if (c <= 0) {
            out->len = hdr_at;
            return dm_error_set(err, DM_ERR_INTERNAL, "lz4 compression failed");
        }
        clen = (size_t)c;
    }
    out->len += clen;
    size_t length = out->len - hdr_at;
    if (length > DM_BATCH_MAX_BYTES) {
        out->len = hdr_at;
        return dm_error_set(err, DM_ERR_RANGE, "batch of %zu bytes exceeds the %u byte limit",
                            length, DM_BATCH_MAX_BYTES);
    }
    uint8_t *h = out->data + hdr_at;
    dm_wr64(h, (uint64_t)base_offset);
    dm_wr32(h + 8, (uint32_t)length);
    header_tail(h + 16, attributes, n, first, last, txn_id, payload_len, rec_rel(rel, n - 1));
    dm_wr32(h + 12, dm_crc32c(0, h + 16, length - 16));
    return DM_OK;
fail_nomem:
    out->len = hdr_at;
    return encode_failed(DM_ERR_NOMEM, n, err);
}

dm_err_t dm_batch_encode(dm_buf_t *out, dm_buf_t *scratch, const dm_log_record_t *records, size_t n,
                         dm_batch_comp_t comp, uint64_t txn_id, int64_t now_ms, dm_error_t *err)
{
    return encode_common(out, scratch, 0, records, n, NULL, comp, txn_id, now_ms, err);
}

dm_err_t dm_batch_encode_at(dm_buf_t *out, dm_buf_t *scratch, int64_t base_offset,
                            const dm_log_record_t *records, size_t n, dm_batch_comp_t comp,
                            uint64_t txn_id, dm_error_t *err)
{
    int64_t *rel = malloc((n ? n : 1) * sizeof(int64_t));
    if (!rel) return dm_error_set(err, DM_ERR_NOMEM, "batch offsets");
    for (size_t i = 0; i < n; i++)
        rel[i] = records[i].offset - base_offset;
    dm_err_t rc = encode_common(out, scratch, base_offset, records, n, rel, comp, txn_id, 1, err);
    free(rel);
    return rc;
}

/* ---- decoding ------------------------------------------------------------------ */

dm_err_t dm_batch_parse_header(const uint8_t *p, size_t avail, dm_batch_hdr_t *h)
{
    if (avail < DM_BATCH_HEADER_SIZE) return DM_ERR_TRUNCATED;
    h->base_offset = (int64_t)dm_rd64(p);
    h->length = dm_rd32(p + 8);
    h->crc = dm_rd32(p + 12);
    h->magic = p[16];
    h->attributes = p[17];
    h->count = dm_rd32(p + 20);
    h->first_ts = (int64_t)dm_rd64(p + 24);
    h->last_ts = (int64_t)dm_rd64(p + 32);
    h->txn_id = dm_rd64(p + 40);
    h->payload_len = dm_rd32(p + 48);
    h->last_offset_delta = dm_rd32(p + 52);
    if (h->magic != DM_BATCH_MAGIC || h->length < DM_BATCH_HEADER_SIZE ||
        h->length > DM_BATCH_MAX_BYTES || h->base_offset < 0 || h->count == 0 ||
        (h->attributes & DM_BATCH_COMP_MASK) > DM_BATCH_COMP_LZ4)
        return DM_ERR_CORRUPT;
    return DM_OK;
}

bool dm_batch_crc_ok(const uint8_t *p, const dm_batch_hdr_t *h)
{
    return dm_crc32c(0, p + 16, h->length - 16) == h->crc;
}

void dm_batch_set_base_offset(uint8_t *p, int64_t base_offset)
{
    dm_wr64(p, (uint64_t)base_offset);
}

/* Varint with a one-byte fast path: almost every length and delta in a batch is < 128. */
static inline int rd_u64(const uint8_t **r, const uint8_t *end, uint64_t *v)
{
    const uint8_t *p = *r;
    if (p < end && p[0] < 0x80) {
        *v = p[0];
        *r = p + 1;
        return 0;
    }
    /* two bytes: lengths 64..8191 (a value of a few hundred bytes, zigzagged) */
    if (end - p >= 2 && p[1] < 0x80) {
        *v = (uint64_t)(p[0] & 0x7f) | (uint64_t)p[1] << 7;
        *r = p + 2;
        return 0;
    }
    int k = dm_varint_decode_u64(*r, end, v);
    if (k <= 0) return -1;
    *r += k;
    return 0;
}

static inline int rd_i64(const uint8_t **r, const uint8_t *end, int64_t *v)
{
    uint64_t u;
    if (rd_u64(r, end, &u)) return -1;
    *v = dm_zigzag_decode64(u);
    return 0;
}

static inline int get_bytes(const uint8_t **r, const uint8_t *end, const uint8_t **out,
                            int32_t *len)
{
    int64_t l;
    if (rd_i64(r, end, &l) || l < -1 || l > end - *r) return -1;
    *out = l < 0 ? NULL : *r;
    *len = (int32_t)l;
    if (l > 0) *r += l;
    return 0;
}

/* Makes room for count more records in *recs (from the arena). */
static dm_err_t grow_records(dm_arena_t *arena, dm_log_record_t **recs, size_t *n, size_t *cap,
                             uint32_t count, dm_error_t *err)
{
    if (*n + count <= *cap) return DM_OK;
    size_t ncap = *cap ? *cap : 1024;
    while (ncap < *n + count)
        ncap *= 2;
    dm_log_record_t *nr = dm_arena_alloc(arena, ncap * sizeof(*nr));
    if (!nr) return dm_error_set(err, DM_ERR_NOMEM, "record array");
    if (*n) memcpy(nr, *recs, *n * sizeof(*nr));
    *recs = nr;
    *cap = ncap;
    return DM_OK;
}

/* Where decoding of a batch's records stands. The cursor and the count live in this local
 * struct through the loop: through the caller's pointers the compiler would reload and
 * store them around every record it writes. */
typedef struct dec {
    const uint8_t *r, *end; /* next record, end of the records section */
    dm_log_record_t *out;
    size_t k;   /* records kept in out */
    uint32_t i; /* records decoded */
} dec_t;

enum { DEC_CORRUPT = 1, DEC_NOMEM = 2 };

/* The outcome of decoding a whole batch: every record read, the section used up exactly. */
static dm_err_t decode_end(const dec_t *d, int bad, const dm_batch_hdr_t *h, size_t *n,
                           dm_error_t *err)
{
    if (bad == DEC_NOMEM) return dm_error_set(err, DM_ERR_NOMEM, "record headers");
    if (bad || d->i != h->count || d->r != d->end)
        return dm_error_set(err, DM_ERR_CORRUPT, "offset %lld: records of the batch do not parse",
                            (long long)h->base_offset);
    *n = d->k;
    return DM_OK;
}

/* How far ahead of the record being decoded its bytes are prefetched: a check chunk. */
#define DEC_PREFETCH (16 << 10)

/* A varint of one or two bytes, the caller having made sure two bytes are there: false for
 * longer ones (the general path reads those). */
static inline __attribute__((always_inline)) bool rd_short(const uint8_t **r, uint64_t *v)
{
    const uint8_t *p = *r;
    if (p[0] < 0x80) {
        *v = p[0];
        *r = p + 1;
        return true;
    }
    if (p[1] < 0x80) {
        *v = (uint64_t)(p[0] & 0x7f) | (uint64_t)p[1] << 7;
        *r = p + 2;
        return true;
    }
    return false;
}

/* Decodes the records that start before limit. 0, DEC_CORRUPT or DEC_NOMEM. */
static int decode_run(dec_t *d, const dm_batch_hdr_t *h, int64_t min_offset, dm_arena_t *arena,
                      const uint8_t *limit)
{
    const uint8_t *r = d->r, *end = d->end;
    dm_log_record_t *out = d->out;
    size_t k = d->k;
    uint32_t i = d->i;
    int bad = 0;
    size_t stride = 0; /* length of the last record (see below) */
    for (; i < h->count && r < limit; i++) {
        dm_log_record_t *rec = &out[k];
        /* Bring in the bytes a chunk ahead while this one is decoded: the CRC of the next
         * chunk then runs from cache instead of waiting on memory. */
        __builtin_prefetch(r + DEC_PREFETCH);
        __builtin_prefetch(r + DEC_PREFETCH + 64);
        if (end - r >= 16) {
            /* The common shape: varints of one or two bytes, no headers. Anything else
             * (or anything wrong) takes the general path below from the same place. */
            const uint8_t *q = r;
            uint64_t tz, od, kz, vz;
            int64_t kl, vl;
            if (!rd_short(&q, &tz) || !rd_short(&q, &od) || !rd_short(&q, &kz)) goto general;
            kl = dm_zigzag_decode64(kz);
            if (kl < -1 || kl > end - q - 3) goto general;
            rec->key = kl < 0 ? NULL : q;
            q += kl > 0 ? kl : 0;
            if (!rd_short(&q, &vz)) goto general;
            vl = dm_zigzag_decode64(vz);
            if (vl < -1 || vl >= end - q || q[vl > 0 ? vl : 0] != 0) goto general;
            rec->value = vl < 0 ? NULL : q;
            /* Where the next record starts depends on this one's lengths, read from memory:
             * a chain of loads through the batch. Records of a batch tend to have one size,
             * so step by the last size when it matches: the branch is predicted, and the
             * empty asm hides from the compiler that stride == rl there, so the next
             * record's loads do not wait for this one's. */
            size_t rl = (size_t)(q + (vl > 0 ? vl : 0) + 1 - r);
            if (__builtin_expect(rl == stride, 1)) {
                __asm__("" : "+r"(stride));
                r += stride;
            } else {
                stride = rl;
                r += rl;
            }
            rec->key_len = (int32_t)kl;
            rec->value_len = (int32_t)vl;
            rec->headers = NULL;
            rec->n_headers = 0;
            rec->offset = h->base_offset + (int64_t)od;
            rec->timestamp = h->first_ts + dm_zigzag_decode64(tz);
            k += rec->offset >= min_offset;
            continue;
        }
    general:;
        int64_t tsd;
        uint64_t od, nh;
        if (rd_i64(&r, end, &tsd) || rd_u64(&r, end, &od) ||
            get_bytes(&r, end, &rec->key, &rec->key_len) ||
            get_bytes(&r, end, &rec->value, &rec->value_len) || rd_u64(&r, end, &nh) ||
            nh > (uint64_t)(end - r)) {
            bad = DEC_CORRUPT;
            break;
        }
        rec->headers = NULL;
        rec->n_headers = (uint32_t)nh;
        if (nh) {
            dm_log_header_t *hs = dm_arena_alloc(arena, nh * sizeof(*hs));
            if (!hs) {
                bad = DEC_NOMEM;
                break;
            }
            for (uint64_t j = 0; j < nh; j++) {
                const uint8_t *kp;
                int32_t kl;
                if (get_bytes(&r, end, &kp, &kl) || kl < 0) {
                    bad = DEC_CORRUPT;
                    break;
                }
                hs[j].key = (const char *)kp;
                hs[j].key_len = (uint32_t)kl;
                if (get_bytes(&r, end, &hs[j].value, &hs[j].value_len)) {
                    bad = DEC_CORRUPT;
                    break;
                }
            }
            if (bad) break;
            rec->headers = hs;
        }
        rec->offset = h->base_offset + (int64_t)od;
        rec->timestamp = h->first_ts + tsd;
        if (rec->offset >= min_offset) k++;
    }
    d->r = r;
    d->k = k;
    d->i = i;
    return bad;
}

/* Bytes the offset deltas 0..n-1 take as varints. */
static uint64_t offset_delta_bytes(uint64_t n)
{
    uint64_t b = n;
    for (uint64_t from = 1u << 7; from < n && from; from <<= 7)
        b += n - from;
    return b;
}

/* Decodes a uniform batch (DM_BATCH_ATTR_UNIFORM) from its first record's shape: record i
 * starts where i alone says, so the records are filled without reading the others' lengths
 * (the walk through them is what costs in decode_run). The shape is checked against the
 * section's size, so no record can point outside it whatever the bytes claim. DEC_CORRUPT
 * when the batch is not what the bit says; the caller then decodes it the general way. */
static int decode_uniform(dec_t *d, const dm_batch_hdr_t *h, int64_t min_offset)
{
    const uint8_t *payload = d->r, *end = d->end, *r = payload;
    int64_t tsd;
    uint64_t od, nh;
    const uint8_t *key, *value;
    int32_t key_len, value_len;
    if (h->first_ts != h->last_ts || h->last_offset_delta != h->count - 1 ||
        rd_i64(&r, end, &tsd) || tsd != 0 || rd_u64(&r, end, &od) || od != 0 ||
        get_bytes(&r, end, &key, &key_len) || get_bytes(&r, end, &value, &value_len) ||
        rd_u64(&r, end, &nh) || nh != 0)
        return DEC_CORRUPT;
    /* record i: ts_delta (1 byte), offset delta i (varint), then rest bytes the same for all */
    uint64_t rest = (uint64_t)(r - payload) - 2;
    if (rest * h->count + h->count + offset_delta_bytes(h->count) != (uint64_t)(end - payload))
        return DEC_CORRUPT;
    size_t key_at = key ? (size_t)(key - payload) - 2 : 0;
    size_t value_at = value ? (size_t)(value - payload) - 2 : 0;
    uint32_t i = 0;
    if (min_offset > h->base_offset)
        i = min_offset - h->base_offset >= (int64_t)h->count
                ? h->count
                : (uint32_t)(min_offset - h->base_offset);
    const uint8_t *p = payload + (uint64_t)i * (rest + 1) + offset_delta_bytes(i);
    dm_log_record_t *out = d->out + d->k;
    for (uint32_t j = i; j < h->count; j++) {
        size_t body = 1 + (j < (1u << 7)    ? 1
                           : j < (1u << 14) ? 2
                           : j < (1u << 21) ? 3
                           : j < (1u << 28) ? 4
                                            : 5);
        *out++ = (dm_log_record_t){
            .offset = h->base_offset + j,
            .timestamp = h->first_ts,
            .key = key ? p + body + key_at : NULL,
            .key_len = key_len,
            .value = value ? p + body + value_at : NULL,
            .value_len = value_len,
        };
        p += body + rest;
    }
    d->k += h->count - i;
    d->i = h->count;
    d->r = end;
    return 0;
}

dm_err_t dm_batch_decode(const uint8_t *p, const dm_batch_hdr_t *h, int64_t min_offset,
                         dm_arena_t *arena, dm_log_record_t **recs, size_t *n, size_t *cap,
                         dm_error_t *err)
{
    const uint8_t *payload = p + DM_BATCH_HEADER_SIZE;
    size_t stored = h->length - DM_BATCH_HEADER_SIZE;
    int comp = h->attributes & DM_BATCH_COMP_MASK;
    if (comp != DM_BATCH_COMP_NONE) {
        uint8_t *dst = dm_arena_alloc(arena, h->payload_len ? h->payload_len : 1);
        if (!dst) return dm_error_set(err, DM_ERR_NOMEM, "decompression buffer");
        if (comp == DM_BATCH_COMP_ZSTD) {
            size_t r = ZSTD_decompress(dst, h->payload_len, payload, stored);
            if (ZSTD_isError(r) || r != h->payload_len)
                return dm_error_set(err, DM_ERR_CORRUPT,
                                    "offset %lld: zstd payload does not decompress",
                                    (long long)h->base_offset);
        } else {
            int r = LZ4_decompress_safe((const char *)payload, (char *)dst, (int)stored,
                                        (int)h->payload_len);
            if (r < 0 || (uint32_t)r != h->payload_len)
                return dm_error_set(err, DM_ERR_CORRUPT,
                                    "offset %lld: lz4 payload does not decompress",
                                    (long long)h->base_offset);
        }
        payload = dst;
        stored = h->payload_len;
    }
    dm_err_t rc = grow_records(arena, recs, n, cap, h->count, err);
    if (rc) return rc;
    dec_t d = {.r = payload, .end = payload + stored, .out = *recs, .k = *n};
    if ((h->attributes & DM_BATCH_ATTR_UNIFORM) && !decode_uniform(&d, h, min_offset))
        return decode_end(&d, 0, h, n, err);
    int bad = decode_run(&d, h, min_offset, arena, d.end);
    return decode_end(&d, bad, h, n, err);
}

/* CRC and decoding go through the batch together, a chunk at a time: the chunk the CRC
 * has just pulled in from memory is still in the first-level cache when the records in it
 * are decoded. Decoding one after the other made every record's varints an L2 (or memory)
 * access, and the records' chain of lengths made those accesses serial. */
#define CHECK_CHUNK (16u << 10)

dm_err_t dm_batch_check_decode(const uint8_t *p, const dm_batch_hdr_t *h, int64_t min_offset,
                               dm_arena_t *arena, dm_log_record_t **recs, size_t *n, size_t *cap,
                               bool *crc_bad, dm_error_t *err)
{
    *crc_bad = false;
    if ((h->attributes & DM_BATCH_COMP_MASK) != DM_BATCH_COMP_NONE ||
        (h->attributes & DM_BATCH_ATTR_UNIFORM)) {
        /* the checksum covers the compressed bytes: check them before inflating; a uniform
         * batch has no lengths to walk, so the CRC pass alone brings its bytes in */
        if (!dm_batch_crc_ok(p, h)) {
            *crc_bad = true;
            return DM_ERR_CORRUPT;
        }
        return dm_batch_decode(p, h, min_offset, arena, recs, n, cap, err);
    }
    dm_err_t rc = grow_records(arena, recs, n, cap, h->count, err);
    if (rc) return rc;
    const uint8_t *payload = p + DM_BATCH_HEADER_SIZE, *end = p + h->length;
    dec_t d = {.r = payload, .end = end, .out = *recs, .k = *n};
    uint32_t crc = dm_crc32c(0, p + 16, DM_BATCH_HEADER_SIZE - 16);
    int bad = 0;
    for (const uint8_t *c = payload; c < end;) {
        const uint8_t *ce = (size_t)(end - c) > CHECK_CHUNK ? c + CHECK_CHUNK : end;
        crc = dm_crc32c(crc, c, (size_t)(ce - c));
        if (!bad) bad = decode_run(&d, h, min_offset, arena, ce);
        c = ce;
    }
    /* A damaged batch is reported as failing its CRC whatever the decoding made of it. */
    if (crc != h->crc) {
        *crc_bad = true;
        return DM_ERR_CORRUPT;
    }
    return decode_end(&d, bad, h, n, err);
}

const char *dm_batch_comp_name(dm_batch_comp_t c)
{
    switch (c) {
    case DM_BATCH_COMP_NONE: return "none";
    case DM_BATCH_COMP_ZSTD: return "zstd";
    case DM_BATCH_COMP_LZ4: return "lz4";
    }
    return "?";
}

int dm_batch_comp_parse(const char *name)
{
    if (!strcmp(name, "none")) return DM_BATCH_COMP_NONE;
    if (!strcmp(name, "zstd")) return DM_BATCH_COMP_ZSTD;
    if (!strcmp(name, "lz4")) return DM_BATCH_COMP_LZ4;
    return -1;
}
