/* connectors/iceberg/parquet_read.c — reading Parquet files (see parquet.h),
 * for compaction: primitives, structs, and lists and maps in the LogicalTypes
 * spec's 3-level form. Every length and offset is checked against the
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
    dm_pq_column_t *cols; /* groups included; a list's or map's repeated group is not a column */
    char **names;
    size_t n_cols;
    int *leaf_of;               /* column -> its chunk index among the leaves, -1 for groups */
    uint8_t *max_def, *max_rep; /* per column, as the writer counts them */
    size_t n_leaves;
    int64_t rows;
    chunk_t *chunks; /* n_groups * n_leaves */
    size_t n_groups;
    uint8_t **bufs; /* decompressed pages values may point into */
    size_t n_bufs;
};

static dm_err_t corrupt(const dm_pq_reader_t *r, const char *what, dm_error_t *err)
{
    return dm_error_set(err, DM_ERR_CORRUPT, "parquet: %s: %s", r->path, what);
}

/* A schema element: its column description, name, child count, repetition
 * (0 required, 1 optional, 2 repeated) and, for LIST / MAP groups (logical
 * or converted type), DM_PQ_LT_LIST or DM_PQ_LT_MAP in c->logical. */
static void parse_schema_element(tr_t *t, dm_pq_column_t *c, char **name, int32_t *children,
                                 int *repetition)
{
    int16_t id;
    uint8_t type;
    tr_push(t);
    *repetition = 0;
    while (tr_field(t, &id, &type)) {
        const uint8_t *b;
        size_t n;
        if (id == 1 && type == DM_THRIFT_I32)
            c->type = (dm_pq_type_t)tr_int(t);
        else if (id == 2 && type == DM_THRIFT_I32)
            c->fixed_len = (int32_t)tr_int(t);
        else if (id == 3 && type == DM_THRIFT_I32) {
            *repetition = (int)tr_int(t);
            c->optional = *repetition == 1;
        } else if (id == 4 && type == DM_THRIFT_BINARY) {
            tr_binary(t, &b, &n);
            free(*name);
            *name = b ? strndup((const char *)b, n) : NULL;
        } else if (id == 5 && type == DM_THRIFT_I32)
            *children = (int32_t)tr_int(t);
        else if (id == 6 && type == DM_THRIFT_I32) {
            int64_t ct = tr_int(t); /* converted_type DECIMAL 5, MAP 1, LIST 3 */
            if (ct == 5) c->logical = DM_PQ_LT_DECIMAL;
            if (ct == 1) c->logical = DM_PQ_LT_MAP;
            if (ct == 3) c->logical = DM_PQ_LT_LIST;
        } else if (id == 7 && type == DM_THRIFT_I32)
            c->scale = (int32_t)tr_int(t);
        else if (id == 8 && type == DM_THRIFT_I32)
            c->precision = (int32_t)tr_int(t);
        else if (id == 9 && type == DM_THRIFT_I32)
            c->field_id = (int32_t)tr_int(t);
        else if (id == 10 && type == DM_THRIFT_STRUCT) {
            /* LogicalType union: MAP is its field 2, LIST field 3 */
            int16_t lid;
            uint8_t lt;
            tr_push(t);
            while (tr_field(t, &lid, &lt)) {
                if (lid == 2) c->logical = DM_PQ_LT_MAP;
                if (lid == 3) c->logical = DM_PQ_LT_LIST;
                tr_skip(t, lt, 0);
            }
        } else
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
        if (n != r->n_leaves || et != DM_THRIFT_STRUCT) {
            t->bad = true;
            return;
        }
        for (uint32_t c = 0; c < n && !t->bad; c++) {
            int16_t cid;
            uint8_t ct;
            tr_push(t);
            while (tr_field(t, &cid, &ct)) {
                if (cid == 3 && ct == DM_THRIFT_STRUCT)
                    parse_column_meta(t, &r->chunks[g * r->n_leaves + c]);
                else
                    tr_skip(t, ct, 0);
            }
        }
    }
}

typedef struct element {
    dm_pq_column_t c;
    char *name;
    int32_t children;
    int repetition;
} element_t;

/* Turns schema elements from *k on (one subtree) into columns: a LIST or MAP
 * group and its repeated group become one column (children: the element,
 * or the key and value); levels are counted as the writer counts them. */
static dm_err_t to_columns(dm_pq_reader_t *r, element_t *el, size_t n, size_t *k, uint8_t def,
                           uint8_t rep, int depth, dm_error_t *err)
{
    if (*k >= n || depth > 32) return corrupt(r, "schema nesting", err);
    element_t *e = &el[(*k)++];
    if (e->repetition == 2 || !e->name)
        return dm_error_set(err, DM_ERR_UNSUPPORTED,
                            "parquet: %s: repeated field %s outside a 3-level LIST or MAP group",
                            r->path, e->name ? e->name : "?");
    size_t at = r->n_cols++;
    r->cols[at] = e->c;
    r->names[at] = e->name;
    e->name = NULL;
    r->cols[at].name = r->names[at];
    def = (uint8_t)(def + (e->c.optional ? 1 : 0));
    r->max_def[at] = def, r->max_rep[at] = rep;
    r->leaf_of[at] = -1;
    if (e->children <= 0) {
        r->leaf_of[at] = (int)r->n_leaves++;
        r->cols[at].n_children = 0;
        if (e->c.logical == DM_PQ_LT_LIST || e->c.logical == DM_PQ_LT_MAP)
            return corrupt(r, "a LIST or MAP annotation on a primitive", err);
        return DM_OK;
    }
    int32_t children = e->children;
    bool container = e->c.logical == DM_PQ_LT_LIST || e->c.logical == DM_PQ_LT_MAP;
    if (container) {
        element_t *mid = *k < n ? &el[*k] : NULL;
        if (e->children != 1 || !mid || mid->repetition != 2 || mid->children <= 0 ||
            mid->children != (e->c.logical == DM_PQ_LT_LIST ? 1 : 2))
            return dm_error_set(err, DM_ERR_UNSUPPORTED,
                                "parquet: %s: %s is not a 3-level LIST or MAP group", r->path,
                                r->names[at]);
        (*k)++;
        children = mid->children;
        def++, rep++;
    } else {
        r->cols[at].logical = DM_PQ_LT_NONE;
    }
    r->cols[at].n_children = children;
    for (int32_t c = 0; c < children; c++) {
        dm_err_t rc = to_columns(r, el, n, k, def, rep, depth + 1, err);
        if (rc) return rc;
    }
    return DM_OK;
}

/* The schema list (n elements, the root first) into columns. */
static dm_err_t parse_schema(dm_pq_reader_t *r, tr_t *t, uint32_t n, dm_error_t *err)
{
    element_t *el = calloc(n, sizeof(*el));
    r->cols = calloc(n, sizeof(dm_pq_column_t));
    r->names = calloc(n, sizeof(char *));
    r->leaf_of = calloc(n, sizeof(int));
    r->max_def = calloc(n, 1);
    r->max_rep = calloc(n, 1);
    dm_err_t rc = DM_OK;
    if (!el || !r->cols || !r->names || !r->leaf_of || !r->max_def || !r->max_rep)
        rc = dm_error_set(err, DM_ERR_NOMEM, "parquet: out of memory");
    for (uint32_t i = 0; !rc && i < n && !t->bad; i++)
        parse_schema_element(t, &el[i].c, &el[i].name, &el[i].children, &el[i].repetition);
    if (!rc && t->bad) rc = corrupt(r, "footer schema", err);
    size_t k = 1;
    while (!rc && k < n)
        rc = to_columns(r, el, n, &k, 0, 0, 0, err);
    if (!rc && (size_t)el[0].children > n) rc = corrupt(r, "footer schema", err);
    for (uint32_t i = 0; el && i < n; i++)
        free(el[i].name);
    free(el);
    return rc;
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
            dm_err_t rc = parse_schema(r, &t, n, err);
            if (rc) return rc;
        } else if (id == 3 && type == DM_THRIFT_I64) {
            r->rows = tr_int(&t);
        } else if (id == 4 && type == DM_THRIFT_LIST && r->n_leaves) {
            uint32_t n;
            uint8_t et;
            tr_list(&t, &n, &et);
            r->n_groups = n;
            r->chunks = calloc((size_t)n * r->n_leaves + 1, sizeof(chunk_t));
            if (!r->chunks) return dm_error_set(err, DM_ERR_NOMEM, "parquet: out of memory");
            for (uint32_t g = 0; g < n && !t.bad; g++)
                parse_row_group(&t, r, g);
        } else {
            tr_skip(&t, type, 0);
        }
    }
    if (t.bad || !r->n_leaves) return corrupt(r, "bad footer", err);
    for (size_t i = 0; i < r->n_groups * r->n_leaves; i++) {
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
    free(r->leaf_of);
    free(r->max_def);
    free(r->max_rep);
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

uint8_t dm_pq_reader_max_def(const dm_pq_reader_t *r, size_t i)
{
    return r->max_def[i];
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
                               size_t n, dm_error_t *err)
{
    for (size_t i = 0; i < n; i++) {
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
            uint32_t len = v->u.s.len;
            if (!dm_pq_decimal_from_be(p, len, v->u.dec))
                return corrupt(r, "decimal wider than 16 bytes", err);
        }
    }
    return DM_OK;
}

static int level_width(uint8_t max)
{
    int w = 0;
    while (max >> w)
        w++;
    return w;
}

/* Reads one page's levels (4-byte length, RLE) into out (n of them), each
 * at most max; *p advances past them. */
static bool page_levels(const uint8_t **p, const uint8_t *end, uint8_t max, uint32_t *tmp,
                        uint8_t *out, size_t n)
{
    if (end - *p < 4) return false;
    const uint8_t *b = *p;
    uint32_t len =
        (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    if (len > (size_t)(end - b) - 4 || !rle_decode(b + 4, b + 4 + len, level_width(max), tmp, n))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (tmp[i] > max) return false;
        out[i] = (uint8_t)tmp[i];
    }
    *p = b + 4 + len;
    return true;
}

dm_err_t dm_pq_reader_read_leaf(dm_pq_reader_t *r, size_t ci, dm_pq_leaf_t *out, dm_error_t *err)
{
    memset(out, 0, sizeof(*out));
    const dm_pq_column_t *c = &r->cols[ci];
    if (r->leaf_of[ci] < 0)
        return dm_error_set(err, DM_ERR_INVALID, "parquet: %s: column %s is a group", r->path,
                            c->name);
    size_t li = (size_t)r->leaf_of[ci];
    uint8_t max_def = r->max_def[ci], max_rep = r->max_rep[ci];
    out->max_def = max_def, out->max_rep = max_rep;
    uint64_t total = 0;
    for (size_t g = 0; g < r->n_groups; g++) {
        int64_t v = r->chunks[g * r->n_leaves + li].values;
        if (v < 0 || (uint64_t)v > r->len * 8 + 8) return corrupt(r, "chunk value count", err);
        total += (uint64_t)v;
    }
    out->vals = calloc(total + 1, sizeof(dm_pq_value_t));
    out->defs = malloc(total + 1);
    out->reps = calloc(total + 1, 1);
    if (!out->vals || !out->defs || !out->reps) {
        dm_pq_leaf_free(out);
        return dm_error_set(err, DM_ERR_NOMEM, "parquet: out of memory");
    }
    size_t at = 0;
    dm_pq_value_t *dict = NULL;
    size_t n_dict = 0;
    uint32_t *scratch = NULL;
    dm_err_t rc = DM_OK;
    for (size_t g = 0; g < r->n_groups && !rc; g++) {
        const chunk_t *ch = &r->chunks[g * r->n_leaves + li];
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
            if (at + (size_t)nvals > total) {
                rc = corrupt(r, "more values than the chunk says", err);
                break;
            }
            uint32_t *lv = realloc(scratch, ((size_t)nvals + 1) * sizeof(uint32_t));
            if (!lv) {
                rc = dm_error_set(err, DM_ERR_NOMEM, "parquet: out of memory");
                break;
            }
            scratch = lv;
            uint8_t *defs = out->defs + at, *reps = out->reps + at;
            if (max_rep && !page_levels(&bp, bend, max_rep, lv, reps, (size_t)nvals)) {
                rc = corrupt(r, "repetition levels", err);
                break;
            }
            if (max_def && !page_levels(&bp, bend, max_def, lv, defs, (size_t)nvals)) {
                rc = corrupt(r, "definition levels", err);
                break;
            }
            if (!max_def) memset(defs, 0, (size_t)nvals);
            size_t present = 0;
            for (int32_t k = 0; k < nvals; k++)
                present += defs[k] == max_def;
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
                dm_pq_value_t *v = &out->vals[at + (size_t)k];
                memset(v, 0, sizeof(*v));
                if (defs[k] != max_def) {
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
            at += (size_t)nvals;
            got += nvals;
        }
    }
    free(dict);
    free(scratch);
    out->n = at;
    if (!rc && at != total) rc = corrupt(r, "a column has fewer values than its chunks say", err);
    if (!rc && c->logical == DM_PQ_LT_DECIMAL) rc = widen_decimals(r, c, out->vals, at, err);
    if (rc) dm_pq_leaf_free(out);
    return rc;
}

void dm_pq_leaf_free(dm_pq_leaf_t *l)
{
    free(l->vals);
    free(l->defs);
    free(l->reps);
    memset(l, 0, sizeof(*l));
}

dm_err_t dm_pq_reader_read_column(dm_pq_reader_t *r, size_t ci, dm_pq_value_t *out, dm_error_t *err)
{
    if (r->leaf_of[ci] < 0 || r->max_rep[ci])
        return dm_error_set(err, DM_ERR_INVALID,
                            "parquet: %s: column %s is not a column of one value per row", r->path,
                            r->cols[ci].name);
    dm_pq_leaf_t l;
    dm_err_t rc = dm_pq_reader_read_leaf(r, ci, &l, err);
    if (rc) return rc;
    if (l.n != (size_t)r->rows) {
        dm_pq_leaf_free(&l);
        return corrupt(r, "a column has fewer values than rows", err);
    }
    memcpy(out, l.vals, l.n * sizeof(*out));
    dm_pq_leaf_free(&l);
    return DM_OK;
}
