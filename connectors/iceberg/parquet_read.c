/* connectors/iceberg/parquet_read.c — reading flat Parquet files (see
 * parquet.h), for compaction. Every length and offset is checked against the
 * file's bytes. */
#include <errno.h>
#include <snappy-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "connectors/iceberg/parquet.h"
#include "connectors/iceberg/thrift.h"
#include "core/varint.h"

/* ---- Thrift compact decoding -------------------------------------------------- */

typedef struct tr {
    const uint8_t *p, *end;
    bool bad;
    int16_t last[DM_THRIFT_MAX_DEPTH];
    int depth;
} tr_t;

static uint64_t tr_varint(tr_t *t)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (t->p >= t->end) break;
        uint8_t b = *t->p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) return v;
    }
    t->bad = true;
    return 0;
}

static int64_t tr_int(tr_t *t)
{
    return dm_zigzag_decode64(tr_varint(t));
}

static void tr_push(tr_t *t)
{
    if (t->depth + 1 >= DM_THRIFT_MAX_DEPTH)
        t->bad = true;
    else
        t->last[++t->depth] = 0;
}

/* The next field of the current struct; false at its end (stop byte). */
static bool tr_field(tr_t *t, int16_t *id, uint8_t *type)
{
    if (t->bad || t->p >= t->end) {
        t->bad = true;
        return false;
    }
    uint8_t b = *t->p++;
    if (b == 0) {
        if (t->depth > 0) t->depth--;
        return false;
    }
    *type = b & 0x0f;
    *id = (b >> 4) ? (int16_t)(t->last[t->depth] + (b >> 4)) : (int16_t)tr_int(t);
    t->last[t->depth] = *id;
    return !t->bad;
}

static void tr_list(tr_t *t, uint32_t *n, uint8_t *etype)
{
    if (t->p >= t->end) {
        t->bad = true;
        *n = 0;
        return;
    }
    uint8_t b = *t->p++;
    *etype = b & 0x0f;
    *n = (b >> 4) == 15 ? (uint32_t)tr_varint(t) : (uint32_t)(b >> 4);
    if (*n > (uint32_t)(t->end - t->p)) t->bad = true; /* every element takes a byte */
}

static void tr_binary(tr_t *t, const uint8_t **p, size_t *len)
{
    uint64_t n = tr_varint(t);
    if (n > (uint64_t)(t->end - t->p)) {
        t->bad = true;
        *p = NULL, *len = 0;
        return;
    }
    *p = t->p, *len = (size_t)n;
    t->p += n;
}

static void tr_skip(tr_t *t, uint8_t type, int level);

static void tr_skip_struct(tr_t *t, int level)
{
    int16_t id;
    uint8_t type;
    tr_push(t);
    while (tr_field(t, &id, &type))
        tr_skip(t, type, level + 1);
}

static void tr_skip(tr_t *t, uint8_t type, int level)
{
    if (level > 32) {
        t->bad = true;
        return;
    }
    const uint8_t *b;
    size_t n;
    switch (type) {
    case DM_THRIFT_TRUE:
    case DM_THRIFT_FALSE: break;
    case DM_THRIFT_BYTE: t->p < t->end ? t->p++ : (void)(t->bad = true); break;
    case DM_THRIFT_I16:
    case DM_THRIFT_I32:
    case DM_THRIFT_I64: tr_varint(t); break;
    case DM_THRIFT_DOUBLE:
        if (t->end - t->p < 8)
            t->bad = true;
        else
            t->p += 8;
        break;
    case DM_THRIFT_BINARY: tr_binary(t, &b, &n); break;
    case DM_THRIFT_LIST:
    case DM_THRIFT_SET: {
        uint32_t cnt;
        uint8_t et;
        tr_list(t, &cnt, &et);
        for (uint32_t i = 0; i < cnt && !t->bad; i++)
            tr_skip(t, et == DM_THRIFT_TRUE || et == DM_THRIFT_FALSE ? DM_THRIFT_BYTE : et,
                    level + 1);
        break;
    }
    case DM_THRIFT_MAP: {
        uint32_t cnt = (uint32_t)tr_varint(t);
        if (!cnt) break;
        if (t->p >= t->end) {
            t->bad = true;
            break;
        }
        uint8_t kv = *t->p++;
        for (uint32_t i = 0; i < cnt && !t->bad; i++) {
            tr_skip(t, kv >> 4, level + 1);
            tr_skip(t, kv & 15, level + 1);
        }
        break;
    }
    case DM_THRIFT_STRUCT: tr_skip_struct(t, level); break;
    default: t->bad = true;
    }
}

/* ---- the file ------------------------------------------------------------------- */

typedef struct chunk {
    int64_t start, len, values;
    int codec;
} chunk_t;

struct dm_pq_reader {
    char *path;
    uint8_t *data;
    size_t len;
    dm_pq_column_t *cols;
    char **names;
    size_t n_cols;
    int64_t rows;
    chunk_t *chunks; /* n_groups * n_cols */
    size_t n_groups;
    uint8_t **bufs; /* decompressed pages values may point into */
    size_t n_bufs;
};

static dm_err_t corrupt(const dm_pq_reader_t *r, const char *what, dm_error_t *err)
{
    return dm_error_set(err, DM_ERR_CORRUPT, "parquet: %s: %s", r->path, what);
}

static void parse_schema_element(tr_t *t, dm_pq_column_t *c, char **name, int32_t *children)
{
    int16_t id;
    uint8_t type;
    tr_push(t);
    while (tr_field(t, &id, &type)) {
        const uint8_t *b;
        size_t n;
        if (id == 1 && type == DM_THRIFT_I32)
            c->type = (dm_pq_type_t)tr_int(t);
        else if (id == 2 && type == DM_THRIFT_I32)
            c->fixed_len = (int32_t)tr_int(t);
        else if (id == 3 && type == DM_THRIFT_I32)
            c->optional = tr_int(t) == 1;
        else if (id == 4 && type == DM_THRIFT_BINARY) {
            tr_binary(t, &b, &n);
            free(*name);
            *name = b ? strndup((const char *)b, n) : NULL;
        } else if (id == 5 && type == DM_THRIFT_I32)
            *children = (int32_t)tr_int(t);
        else if (id == 6 && type == DM_THRIFT_I32) {
            if (tr_int(t) == 5) c->logical = DM_PQ_LT_DECIMAL; /* converted_type DECIMAL */
        } else if (id == 7 && type == DM_THRIFT_I32)
            c->scale = (int32_t)tr_int(t);
        else if (id == 8 && type == DM_THRIFT_I32)
            c->precision = (int32_t)tr_int(t);
        else if (id == 9 && type == DM_THRIFT_I32)
            c->field_id = (int32_t)tr_int(t);
        else
            tr_skip(t, type, 0);
    }
}

static void parse_column_meta(tr_t *t, chunk_t *ch)
{
    int16_t id;
    uint8_t type;
    int64_t data = -1, dict = -1;
    tr_push(t);
    while (tr_field(t, &id, &type)) {
        if (id == 4 && type == DM_THRIFT_I32)
            ch->codec = (int)tr_int(t);
        else if (id == 5 && type == DM_THRIFT_I64)
            ch->values = tr_int(t);
        else if (id == 7 && type == DM_THRIFT_I64)
            ch->len = tr_int(t);
        else if (id == 9 && type == DM_THRIFT_I64)
            data = tr_int(t);
        else if (id == 11 && type == DM_THRIFT_I64)
            dict = tr_int(t);
        else
            tr_skip(t, type, 0);
    }
    ch->start = dict > 0 && dict < data ? dict : data;
}

static void parse_row_group(tr_t *t, dm_pq_reader_t *r, size_t g)
{
    int16_t id;
    uint8_t type;
    tr_push(t);
    while (tr_field(t, &id, &type)) {
        if (id != 1 || type != DM_THRIFT_LIST) {
            tr_skip(t, type, 0);
            continue;
        }
        uint32_t n;
        uint8_t et;
        tr_list(t, &n, &et);
        if (n != r->n_cols || et != DM_THRIFT_STRUCT) {
            t->bad = true;
            return;
        }
        for (uint32_t c = 0; c < n && !t->bad; c++) {
            int16_t cid;
            uint8_t ct;
            tr_push(t);
            while (tr_field(t, &cid, &ct)) {
                if (cid == 3 && ct == DM_THRIFT_STRUCT)
                    parse_column_meta(t, &r->chunks[g * r->n_cols + c]);
                else
                    tr_skip(t, ct, 0);
            }
        }
    }
}

static dm_err_t parse_footer(dm_pq_reader_t *r, const uint8_t *p, size_t len, dm_error_t *err)
{
    tr_t t = {.p = p, .end = p + len};
    int16_t id;
    uint8_t type;
    while (tr_field(&t, &id, &type)) {
        if (id == 2 && type == DM_THRIFT_LIST) {
            uint32_t n;
            uint8_t et;
            tr_list(&t, &n, &et);
            if (n < 2 || et != DM_THRIFT_STRUCT) return corrupt(r, "footer schema", err);
            r->n_cols = n - 1;
            r->cols = calloc(n, sizeof(dm_pq_column_t));
            r->names = calloc(n, sizeof(char *));
            if (!r->cols || !r->names)
                return dm_error_set(err, DM_ERR_NOMEM, "parquet: out of memory");
            dm_pq_column_t root = {0};
            char *root_name = NULL;
            int32_t children = 0;
            parse_schema_element(&t, &root, &root_name, &children);
            free(root_name);
            if ((uint32_t)children != n - 1)
                return dm_error_set(err, DM_ERR_UNSUPPORTED,
                                    "parquet: %s: nested schemas are not read", r->path);
            for (uint32_t i = 0; i + 1 < n && !t.bad; i++) {
                int32_t ch = 0;
                parse_schema_element(&t, &r->cols[i], &r->names[i], &ch);
                r->cols[i].name = r->names[i];
                if (ch || !r->names[i])
                    return dm_error_set(err, DM_ERR_UNSUPPORTED,
                                        "parquet: %s: nested schemas are not read", r->path);
            }
        } else if (id == 3 && type == DM_THRIFT_I64) {
            r->rows = tr_int(&t);
        } else if (id == 4 && type == DM_THRIFT_LIST && r->n_cols) {
            uint32_t n;
            uint8_t et;
            tr_list(&t, &n, &et);
            r->n_groups = n;
            r->chunks = calloc((size_t)n * r->n_cols + 1, sizeof(chunk_t));
            if (!r->chunks) return dm_error_set(err, DM_ERR_NOMEM, "parquet: out of memory");
            for (uint32_t g = 0; g < n && !t.bad; g++)
                parse_row_group(&t, r, g);
        } else {
            tr_skip(&t, type, 0);
        }
    }
    if (t.bad || !r->n_cols) return corrupt(r, "bad footer", err);
    for (size_t i = 0; i < r->n_groups * r->n_cols; i++) {
        chunk_t *c = &r->chunks[i];
        if (c->start < 4 || c->len < 0 || (uint64_t)(c->start + c->len) > r->len)
            return corrupt(r, "a column chunk lies outside the file", err);
    }
    return DM_OK;
}

dm_err_t dm_pq_reader_open(const char *path, dm_pq_reader_t **out, dm_error_t *err)
{
    *out = NULL;
    dm_pq_reader_t *r = calloc(1, sizeof(*r));
    if (!r || !(r->path = strdup(path))) {
        free(r);
        return dm_error_set(err, DM_ERR_NOMEM, "parquet: out of memory");
    }
    FILE *f = fopen(path, "rb");
    dm_err_t rc = DM_OK;
    if (!f) rc = dm_error_set(err, DM_ERR_IO, "parquet: cannot open %s: %s", path, strerror(errno));
    if (!rc && fseek(f, 0, SEEK_END) == 0) {
        long n = ftell(f);
        rewind(f);
        r->data = n > 0 ? malloc((size_t)n) : NULL;
        r->len = n > 0 ? (size_t)n : 0;
        if (!r->data || fread(r->data, 1, r->len, f) != r->len)
            rc = dm_error_set(err, DM_ERR_IO, "parquet: cannot read %s", path);
    }
    if (f) fclose(f);
    if (!rc &&
        (r->len < 12 || memcmp(r->data, "PAR1", 4) || memcmp(r->data + r->len - 4, "PAR1", 4)))
        rc = corrupt(r, "not a Parquet file", err);
    if (!rc) {
        const uint8_t *t = r->data + r->len - 8;
        uint32_t flen =
            (uint32_t)t[0] | (uint32_t)t[1] << 8 | (uint32_t)t[2] << 16 | (uint32_t)t[3] << 24;
        if (flen > r->len - 12)
            rc = corrupt(r, "footer length", err);
        else
            rc = parse_footer(r, r->data + r->len - 8 - flen, flen, err);
    }
    if (rc) {
        dm_pq_reader_free(r);
        return rc;
    }
    *out = r;
    return DM_OK;
}

void dm_pq_reader_free(dm_pq_reader_t *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->n_bufs; i++)
        free(r->bufs[i]);
    free(r->bufs);
    for (size_t i = 0; r->names && i < r->n_cols; i++)
        free(r->names[i]);
    free(r->names);
    free(r->cols);
    free(r->chunks);
    free(r->data);
    free(r->path);
    free(r);
}

int64_t dm_pq_reader_rows(const dm_pq_reader_t *r)
{
    return r->rows;
}

size_t dm_pq_reader_n_columns(const dm_pq_reader_t *r)
{
    return r->n_cols;
}

const dm_pq_column_t *dm_pq_reader_column(const dm_pq_reader_t *r, size_t i)
{
    return &r->cols[i];
}

/* ---- pages ------------------------------------------------------------------------- */

static bool rle_decode(const uint8_t *p, const uint8_t *end, int bw, uint32_t *out, size_t n)
{
    size_t i = 0;
    tr_t t = {.p = p, .end = end};
    while (i < n) {
        uint64_t h = tr_varint(&t);
        if (t.bad) return false;
        if (h & 1) {
            uint64_t count = (h >> 1) * 8;
            uint64_t bytes = (h >> 1) * (uint64_t)bw;
            if (bytes > (uint64_t)(t.end - t.p)) return false;
            uint64_t acc = 0;
            int bits = 0;
            const uint8_t *q = t.p;
            for (uint64_t k = 0; k < count; k++) {
                while (bits < bw) {
                    acc |= (uint64_t)*q++ << bits;
                    bits += 8;
                }
                uint32_t v = (uint32_t)(acc & ((1ull << bw) - 1));
                acc >>= bw;
                bits -= bw;
                if (i < n) out[i++] = v;
            }
            t.p += bytes;
        } else {
            uint64_t run = h >> 1;
            int vb = (bw + 7) / 8;
            if (vb > t.end - t.p || run == 0) return false;
            uint32_t v = 0;
            for (int k = 0; k < vb; k++)
                v |= (uint32_t)t.p[k] << (8 * k);
            t.p += vb;
            for (uint64_t k = 0; k < run && i < n; k++)
                out[i++] = v;
        }
    }
    return true;
}

/* One PLAIN value at *p (advanced); false when it does not fit. */
static bool plain_value(const dm_pq_column_t *c, const uint8_t **p, const uint8_t *end, int bit,
                        dm_pq_value_t *v)
{
    size_t w;
    switch (c->type) {
    case DM_PQ_BOOLEAN:
        if (*p >= end) return false;
        v->u.b = (**p >> bit) & 1;
        if (bit == 7) (*p)++;
        return true;
    case DM_PQ_INT32: w = 4; break;
    case DM_PQ_FLOAT: w = 4; break;
    case DM_PQ_INT64: w = 8; break;
    case DM_PQ_DOUBLE: w = 8; break;
    case DM_PQ_BYTE_ARRAY: {
        if (end - *p < 4) return false;
        uint32_t n = (uint32_t)(*p)[0] | (uint32_t)(*p)[1] << 8 | (uint32_t)(*p)[2] << 16 |
                     (uint32_t)(*p)[3] << 24;
        if (n > (size_t)(end - *p) - 4) return false;
        v->u.s.p = *p + 4, v->u.s.len = n;
        *p += 4 + n;
        return true;
    }
    default:
        if (c->fixed_len <= 0 || (size_t)(end - *p) < (size_t)c->fixed_len) return false;
        v->u.s.p = *p, v->u.s.len = (uint32_t)c->fixed_len;
        *p += c->fixed_len;
        return true;
    }
    if ((size_t)(end - *p) < w) return false;
    memcpy(&v->u, *p, w);
    *p += w;
    return true;
}

static dm_err_t keep(dm_pq_reader_t *r, uint8_t *buf)
{
    uint8_t **b = realloc(r->bufs, (r->n_bufs + 1) * sizeof(*b));
    if (!b) {
        free(buf);
        return DM_ERR_NOMEM;
    }
    r->bufs = b;
    r->bufs[r->n_bufs++] = buf;
    return DM_OK;
}

static dm_err_t page_body(dm_pq_reader_t *r, int codec, const uint8_t *p, size_t clen, size_t ulen,
                          const uint8_t **out, dm_error_t *err)
{
    if (codec == DM_PQ_UNCOMPRESSED) {
        *out = p;
        return clen == ulen ? DM_OK : corrupt(r, "page sizes", err);
    }
    uint8_t *buf = malloc(ulen + 1);
    if (!buf || keep(r, buf)) return dm_error_set(err, DM_ERR_NOMEM, "parquet: out of memory");
    if (codec == DM_PQ_SNAPPY) {
        size_t n = ulen;
        if (snappy_uncompress((const char *)p, clen, (char *)buf, &n) != SNAPPY_OK || n != ulen)
            return corrupt(r, "snappy page", err);
    } else if (codec == DM_PQ_ZSTD) {
        size_t n = ZSTD_decompress(buf, ulen, p, clen);
        if (ZSTD_isError(n) || n != ulen) return corrupt(r, "zstd page", err);
    } else {
        return dm_error_set(err, DM_ERR_UNSUPPORTED, "parquet: %s: codec %d", r->path, codec);
    }
    *out = buf;
    return DM_OK;
}

/* Decimal values into dm_pq_value_t's 16-byte form, from INT32, INT64 or
 * FIXED (the writer's representation). */
static dm_err_t widen_decimals(const dm_pq_reader_t *r, const dm_pq_column_t *c, dm_pq_value_t *out,
                               dm_error_t *err)
{
    for (int64_t i = 0; i < r->rows; i++) {
        dm_pq_value_t *v = &out[i];
        if (v->null) continue;
        if (c->type == DM_PQ_INT32)
            dm_pq_decimal_from_int(v->u.i32, v->u.dec);
        else if (c->type == DM_PQ_INT64)
            dm_pq_decimal_from_int(v->u.i64, v->u.dec);
        else if (c->type != DM_PQ_FIXED && c->type != DM_PQ_BYTE_ARRAY)
            return dm_error_set(err, DM_ERR_UNSUPPORTED, "parquet: %s: decimal column %s is %d",
                                r->path, c->name, c->type);
        else {
            const uint8_t *p = v->u.s.p;
            uint32_t n = v->u.s.len;
            if (!dm_pq_decimal_from_be(p, n, v->u.dec))
                return corrupt(r, "decimal wider than 16 bytes", err);
        }
    }
    return DM_OK;
}

dm_err_t dm_pq_reader_read_column(dm_pq_reader_t *r, size_t ci, dm_pq_value_t *out, dm_error_t *err)
{
    const dm_pq_column_t *c = &r->cols[ci];
    int64_t row = 0;
    dm_pq_value_t *dict = NULL;
    size_t n_dict = 0;
    uint32_t *scratch = NULL;
    dm_err_t rc = DM_OK;
    for (size_t g = 0; g < r->n_groups && !rc; g++) {
        const chunk_t *ch = &r->chunks[g * r->n_cols + ci];
        const uint8_t *p = r->data + ch->start, *end = p + ch->len;
        int64_t got = 0;
        free(dict);
        dict = NULL;
        n_dict = 0;
        while (!rc && got < ch->values) {
            tr_t t = {.p = p, .end = end};
            int16_t id;
            uint8_t type;
            int32_t ptype = -1, ulen = -1, clen = -1, nvals = 0, enc = 0;
            while (tr_field(&t, &id, &type)) {
                if (id == 1 && type == DM_THRIFT_I32)
                    ptype = (int32_t)tr_int(&t);
                else if (id == 2 && type == DM_THRIFT_I32)
                    ulen = (int32_t)tr_int(&t);
                else if (id == 3 && type == DM_THRIFT_I32)
                    clen = (int32_t)tr_int(&t);
                else if ((id == 5 || id == 7) && type == DM_THRIFT_STRUCT) {
                    int16_t hid;
                    uint8_t ht;
                    tr_push(&t);
                    while (tr_field(&t, &hid, &ht)) {
                        if (hid == 1 && ht == DM_THRIFT_I32)
                            nvals = (int32_t)tr_int(&t);
                        else if (hid == 2 && ht == DM_THRIFT_I32)
                            enc = (int32_t)tr_int(&t);
                        else
                            tr_skip(&t, ht, 0);
                    }
                } else
                    tr_skip(&t, type, 0);
            }
            if (t.bad || ulen < 0 || clen < 0 || clen > end - t.p || nvals < 0) {
                rc = corrupt(r, "page header", err);
                break;
            }
            const uint8_t *body = NULL;
            if ((rc = page_body(r, ch->codec, t.p, (size_t)clen, (size_t)ulen, &body, err))) break;
            p = t.p + clen;
            const uint8_t *bp = body, *bend = body + ulen;
            if (ptype == 2) { /* dictionary page: PLAIN values */
                free(dict);
                dict = calloc((size_t)nvals + 1, sizeof(*dict));
                if (!dict) {
                    rc = dm_error_set(err, DM_ERR_NOMEM, "parquet: out of memory");
                    break;
                }
                for (int32_t k = 0; k < nvals; k++)
                    if (!plain_value(c, &bp, bend, k % 8, &dict[k]))
                        rc = corrupt(r, "dictionary page", err);
                n_dict = (size_t)nvals;
                continue;
            }
            if (ptype != 0) {
                rc = dm_error_set(err, DM_ERR_UNSUPPORTED, "parquet: %s: page type %d of column %s",
                                  r->path, ptype, c->name);
                break;
            }
            if (row + nvals > r->rows) {
                rc = corrupt(r, "more values than rows", err);
                break;
            }
            uint32_t *lv = realloc(scratch, ((size_t)nvals + 1) * sizeof(uint32_t));
            if (!lv) {
                rc = dm_error_set(err, DM_ERR_NOMEM, "parquet: out of memory");
                break;
            }
            scratch = lv;
            size_t present = (size_t)nvals;
            if (c->optional) {
                if (bend - bp < 4) {
                    rc = corrupt(r, "definition levels", err);
                    break;
                }
                uint32_t dl = (uint32_t)bp[0] | (uint32_t)bp[1] << 8 | (uint32_t)bp[2] << 16 |
                              (uint32_t)bp[3] << 24;
                if (dl > (size_t)(bend - bp) - 4 ||
                    !rle_decode(bp + 4, bp + 4 + dl, 1, lv, (size_t)nvals)) {
                    rc = corrupt(r, "definition levels", err);
                    break;
                }
                bp += 4 + dl;
                present = 0;
                for (int32_t k = 0; k < nvals; k++)
                    present += lv[k] != 0;
            } else {
                for (int32_t k = 0; k < nvals; k++)
                    lv[k] = 1;
            }
            uint32_t *idx = NULL;
            if (enc == 8 || enc == 2) { /* RLE_DICTIONARY, PLAIN_DICTIONARY */
                idx = malloc((present + 1) * sizeof(uint32_t));
                if (!idx) {
                    rc = dm_error_set(err, DM_ERR_NOMEM, "parquet: out of memory");
                    break;
                }
                if (bp >= bend || *bp > 32 || !rle_decode(bp + 1, bend, *bp, idx, present)) {
                    free(idx);
                    rc = corrupt(r, "dictionary indexes", err);
                    break;
                }
            } else if (enc != 0) {
                rc = dm_error_set(err, DM_ERR_UNSUPPORTED, "parquet: %s: encoding %d of column %s",
                                  r->path, enc, c->name);
                break;
            }
            size_t vi = 0;
            for (int32_t k = 0; k < nvals && !rc; k++) {
                dm_pq_value_t *v = &out[row + k];
                memset(v, 0, sizeof(*v));
                if (!lv[k]) {
                    v->null = true;
                    continue;
                }
                if (idx) {
                    if (idx[vi] >= n_dict)
                        rc = corrupt(r, "dictionary index out of range", err);
                    else
                        *v = dict[idx[vi]];
                } else if (!plain_value(c, &bp, bend, (int)(vi % 8), v)) {
                    rc = corrupt(r, "values", err);
                }
                vi++;
            }
            free(idx);
            row += nvals;
            got += nvals;
        }
    }
    free(dict);
    free(scratch);
    if (!rc && row != r->rows) rc = corrupt(r, "a column has fewer values than rows", err);
    if (!rc && c->logical == DM_PQ_LT_DECIMAL) rc = widen_decimals(r, c, out, err);
    return rc;
}
