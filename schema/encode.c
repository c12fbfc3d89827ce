/* schema/encode.c — Avro binary encoding of values (dm_avro_encode) and value
 * equality (dm_avro_value_equal). Encoding walks the schema graph alongside
 * the value: the value carries its union branches, so nothing is looked up
 * by name. Primitives of records are written inline through a local pointer
 * into room reserved up front.
 */
#include <stdio.h>
#include <string.h>

#include "core/varint.h"
#include "schema/internal.h"

/* ---- encoding ----------------------------------------------------------------------- */

typedef struct ectx {
    dm_buf_t *out;
    const char *trail[16];
    int n_trail;
    const char *msg;
    dm_err_t code;
} ectx_t;

static int efail(ectx_t *e, dm_err_t code, const char *msg)
{
    e->code = code;
    e->msg = msg;
    return -1;
}

static inline int put_long(ectx_t *e, int64_t v)
{
    dm_buf_t *b = e->out;
    if (b->cap - b->len < DM_VARINT_MAX && dm_buf_reserve(b, DM_VARINT_MAX))
        return efail(e, DM_ERR_NOMEM, "out of memory");
    b->len += dm_varint_encode_i64(v, b->data + b->len);
    return 0;
}

static inline int put_raw(ectx_t *e, const void *p, size_t n)
{
    return dm_buf_append(e->out, p, n) ? efail(e, DM_ERR_NOMEM, "out of memory") : 0;
}

static int enc(ectx_t *e, const dm_avro_node_t *n, const dm_avro_value_t *v)
{
    /* bytes a raw codec kept as they were written (union branch included) */
    if (v->type == DM_AVRO_ENCODED) return put_raw(e, v->u.p, v->len);
    if (n->type == DM_AVRO_UNION) {
        if (v->branch >= n->n_branches)
            return efail(e, DM_ERR_SCHEMA_MISMATCH, "union branch index out of range");
        if (put_long(e, v->branch)) return -1;
        n = n->branches[v->branch];
    }
    if (v->type != n->type) {
        e->code = DM_ERR_SCHEMA_MISMATCH;
        e->msg = dm_avro_type_name(n->type);
        return -2; /* the message is the expected type */
    }
    switch (n->type) {
    case DM_AVRO_NULL: return 0;
    case DM_AVRO_BOOLEAN: {
        uint8_t b = v->u.b ? 1 : 0;
        return put_raw(e, &b, 1);
    }
    case DM_AVRO_INT: return put_long(e, v->u.i);
    case DM_AVRO_LONG: return put_long(e, v->u.l);
    case DM_AVRO_FLOAT: return put_raw(e, &v->u.f, 4);
    case DM_AVRO_DOUBLE: return put_raw(e, &v->u.d, 8);
    case DM_AVRO_BYTES:
    case DM_AVRO_STRING:
        if (put_long(e, v->len)) return -1;
        return put_raw(e, v->u.p, v->len);
    case DM_AVRO_FIXED:
        if (v->len != n->size) return efail(e, DM_ERR_SCHEMA_MISMATCH, "fixed has the wrong size");
        return put_raw(e, v->u.p, v->len);
    case DM_AVRO_ENUM:
        if (v->u.i < 0 || (uint32_t)v->u.i >= n->n_symbols)
            return efail(e, DM_ERR_SCHEMA_MISMATCH, "enum symbol index out of range");
        return put_long(e, v->u.i);
    case DM_AVRO_RECORD:
        if (v->len != n->n_fields)
            return efail(e, DM_ERR_SCHEMA_MISMATCH, "record has the wrong number of fields");
        for (uint32_t i = 0; i < n->n_fields; i++) {
            const dm_avro_node_t *ft = n->fields[i].type;
            const dm_avro_value_t *fv = &v->u.v[i];
            int rc = 0;
            dm_buf_t *b = e->out;
            /* the common primitives inline, writing through a local pointer
             * into room reserved up front; the rest through enc */
            if (fv->type == DM_AVRO_ENCODED) {
                /* fields passed through as bytes: a run of them that sat
                 * side by side in the input is one copy */
                const uint8_t *from = fv->u.p;
                size_t len = fv->len;
                while (i + 1 < n->n_fields && v->u.v[i + 1].type == DM_AVRO_ENCODED &&
                       v->u.v[i + 1].u.p == from + len)
                    len += v->u.v[++i].len;
                rc = put_raw(e, from, len);
            } else if (fv->type == ft->type &&
                       (ft->type == DM_AVRO_LONG || ft->type == DM_AVRO_INT ||
                        ft->type == DM_AVRO_DOUBLE || ft->type == DM_AVRO_STRING)) {
                size_t need = DM_VARINT_MAX + (ft->type == DM_AVRO_STRING ? fv->len : 0);
                if (b->cap - b->len < need && dm_buf_reserve(b, need)) {
                    rc = efail(e, DM_ERR_NOMEM, "out of memory");
                } else {
                    uint8_t *w = b->data + b->len;
                    switch (ft->type) {
                    case DM_AVRO_LONG: w += dm_varint_encode_i64(fv->u.l, w); break;
                    case DM_AVRO_INT: w += dm_varint_encode_i64(fv->u.i, w); break;
                    case DM_AVRO_DOUBLE:
                        memcpy(w, &fv->u.d, 8);
                        w += 8;
                        break;
                    default:
                        w += dm_varint_encode_i64(fv->len, w);
                        if (fv->len) memcpy(w, fv->u.p, fv->len);
                        w += fv->len;
                        break;
                    }
                    b->len = (size_t)(w - b->data);
                }
            } else {
                rc = enc(e, ft, fv);
            }
            if (rc) {
                if (e->n_trail < 16) e->trail[e->n_trail++] = n->fields[i].name;
                return rc;
            }
        }
        return 0;
    case DM_AVRO_ARRAY:
    case DM_AVRO_MAP: {
        if (v->len) {
            if (put_long(e, v->len)) return -1;
            bool map = n->type == DM_AVRO_MAP;
            for (uint32_t i = 0; i < v->len; i++) {
                const dm_avro_value_t *it = map ? &v->u.v[2 * i] : &v->u.v[i];
                if (map) {
                    if (it->type != DM_AVRO_STRING)
                        return efail(e, DM_ERR_SCHEMA_MISMATCH, "map key is not a string");
                    if (put_long(e, it->len) || put_raw(e, it->u.p, it->len)) return -1;
                    it++;
                }
                int rc = enc(e, n->items, it);
                if (rc) return rc;
            }
        }
        return put_long(e, 0);
    }
    default: return efail(e, DM_ERR_INTERNAL, "bad schema node");
    }
}

dm_err_t dm_avro_encode(const dm_avro_node_t *node, const dm_avro_value_t *v, dm_buf_t *out,
                        dm_error_t *err)
{
    ectx_t e; /* not zeroed: the trail is only read after a failure */
    e.out = out;
    e.n_trail = 0;
    size_t start = out->len;
    int rc = enc(&e, node, v);
    if (!rc) return DM_OK;
    out->len = start;
    char path[256] = "$";
    size_t n = 1;
    for (int i = e.n_trail - 1; i >= 0 && n < sizeof(path); i--) {
        int k = snprintf(path + n, sizeof(path) - n, ".%s", e.trail[i]);
        if (k > 0) n += (size_t)k;
    }
    if (rc == -2) return dm_error_set(err, e.code, "%s: expected a value of type %s", path, e.msg);
    return dm_error_set(err, e.code, "%s: %s", path, e.msg);
}

/* ---- equality ------------------------------------------------------------------------ */

bool dm_avro_value_equal(const dm_avro_node_t *n, const dm_avro_value_t *a,
                         const dm_avro_value_t *b)
{
    if (a->type != b->type) return false;
    if (n->type == DM_AVRO_UNION) {
        if (a->branch != b->branch || a->branch >= n->n_branches) return false;
        n = n->branches[a->branch];
    }
    switch (a->type) {
    case DM_AVRO_ABSENT:
    case DM_AVRO_NULL: return true;
    case DM_AVRO_BOOLEAN: return !a->u.b == !b->u.b;
    case DM_AVRO_INT:
    case DM_AVRO_ENUM: return a->u.i == b->u.i;
    case DM_AVRO_LONG: return a->u.l == b->u.l;
    case DM_AVRO_FLOAT: return memcmp(&a->u.f, &b->u.f, 4) == 0;
    case DM_AVRO_DOUBLE: return memcmp(&a->u.d, &b->u.d, 8) == 0;
    case DM_AVRO_BYTES:
    case DM_AVRO_STRING:
    case DM_AVRO_FIXED: return a->len == b->len && (!a->len || memcmp(a->u.p, b->u.p, a->len) == 0);
    case DM_AVRO_RECORD:
        if (a->len != b->len || a->len != n->n_fields) return false;
        for (uint32_t i = 0; i < a->len; i++)
            if (!dm_avro_value_equal(n->fields[i].type, &a->u.v[i], &b->u.v[i])) return false;
        return true;
    case DM_AVRO_ARRAY:
    case DM_AVRO_MAP: {
        if (a->len != b->len) return false;
        bool map = a->type == DM_AVRO_MAP;
        for (uint32_t i = 0; i < a->len; i++) {
            if (map) {
                const dm_avro_value_t *ka = &a->u.v[2 * i], *kb = &b->u.v[2 * i];
                if (ka->len != kb->len || memcmp(ka->u.p, kb->u.p, ka->len) != 0) return false;
                if (!dm_avro_value_equal(n->items, ka + 1, kb + 1)) return false;
            } else if (!dm_avro_value_equal(n->items, &a->u.v[i], &b->u.v[i])) {
                return false;
            }
        }
        return true;
    }
    default: return false;
    }
}
