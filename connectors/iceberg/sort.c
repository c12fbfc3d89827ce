/* connectors/iceberg/sort.c — Iceberg sort orders (see sort.h). */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "connectors/iceberg/sort.h"

void dm_ice_sort_free(dm_ice_sort_t *o)
{
    free(o->f);
    o->f = NULL;
    o->n = 0;
}

/* The next word of s (letters, digits, '_', '.', or one ','), NUL-ended into w. */
static const char *next_word(const char *s, char *w, size_t cap)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = 0;
    if (*s == ',') {
        w[n++] = *s++;
    } else {
        while (*s && *s != ',' && !isspace((unsigned char)*s)) {
            if (n + 1 < cap) w[n++] = *s;
            s++;
        }
    }
    w[n] = '\0';
    return s;
}

/* Reads the direction and null order after a column name, up to ',' or the end. */
static dm_err_t parse_modifiers(const char **sp, dm_ice_sort_field_t *f, const char *col,
                                dm_error_t *err)
{
    char w[64];
    bool nulls_set = false;
    const char *s = *sp;
    for (;;) {
        const char *after = next_word(s, w, sizeof(w));
        if (!*w || !strcmp(w, ",")) break;
        s = after;
        if (!strcasecmp(w, "asc") || !strcasecmp(w, "desc")) {
            f->desc = !strcasecmp(w, "desc");
            continue;
        }
        if (!strcasecmp(w, "nulls")) {
            s = next_word(s, w, sizeof(w));
            if (strcasecmp(w, "first") && strcasecmp(w, "last"))
                return dm_error_set(err, DM_ERR_CONFIG,
                                    "iceberg: sort_by column %s: 'nulls' must be followed by "
                                    "'first' or 'last', not '%s'",
                                    col, w);
            f->nulls_first = !strcasecmp(w, "first");
            nulls_set = true;
            continue;
        }
        return dm_error_set(err, DM_ERR_CONFIG,
                            "iceberg: sort_by column %s: unexpected '%s' (want asc, desc, "
                            "nulls first or nulls last)",
                            col, w);
    }
    if (!nulls_set) f->nulls_first = !f->desc;
    *sp = s;
    return DM_OK;
}

dm_err_t dm_ice_sort_parse(const char *text, const dm_ice_schema_t *schema, dm_ice_sort_t *out,
                           dm_error_t *err)
{
    memset(out, 0, sizeof(*out));
    const char *s = text ? text : "";
    char col[256];
    for (;;) {
        s = next_word(s, col, sizeof(col));
        if (!*col) break;
        if (!strcmp(col, ",")) {
            dm_ice_sort_free(out);
            return dm_error_set(err, DM_ERR_CONFIG, "iceberg: sort_by has an empty column");
        }
        const dm_ice_field_t *fd = dm_ice_schema_find(schema, col);
        if (!fd) {
            dm_ice_sort_free(out);
            return dm_error_set(err, DM_ERR_CONFIG,
                                "iceberg: sort_by column %s is not a column of the table", col);
        }
        if (dm_ice_type_nested(fd->type)) {
            dm_ice_sort_free(out);
            return dm_error_set(err, DM_ERR_CONFIG,
                                "iceberg: sort_by column %s is a struct, list or map; only "
                                "top-level primitive columns sort",
                                col);
        }
        dm_ice_sort_field_t *nf = realloc(out->f, (out->n + 1) * sizeof(*nf));
        if (!nf) {
            dm_ice_sort_free(out);
            return dm_error_set(err, DM_ERR_NOMEM, "iceberg: out of memory");
        }
        out->f = nf;
        dm_ice_sort_field_t *f = &out->f[out->n++];
        *f = (dm_ice_sort_field_t){
            .col = (size_t)(fd - schema->fields), .source_id = fd->id, .type = fd->type};
        dm_err_t rc = parse_modifiers(&s, f, col, err);
        if (rc) {
            dm_ice_sort_free(out);
            return rc;
        }
        s = next_word(s, col, sizeof(col)); /* the ',' or the end */
        if (!*col) break;
    }
    return DM_OK;
}

json_t *dm_ice_sort_fields_json(const dm_ice_sort_t *o)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < o->n; i++)
        json_array_append_new(a, json_pack("{s:s, s:i, s:s, s:s}", "transform", "identity",
                                           "source-id", o->f[i].source_id, "direction",
                                           o->f[i].desc ? "desc" : "asc", "null-order",
                                           o->f[i].nulls_first ? "nulls-first" : "nulls-last"));
    return a;
}

/* Floating point as Iceberg orders it: -0 before +0, NaN after everything. */
static int cmp_double(double a, double b)
{
    if (isnan(a) || isnan(b)) return isnan(a) - isnan(b);
    if (a < b) return -1;
    if (a > b) return 1;
    return signbit(b) - signbit(a);
}

static int cmp_bytes(const uint8_t *a, uint32_t la, const uint8_t *b, uint32_t lb)
{
    int c = memcmp(a, b, la < lb ? la : lb);
    if (c) return c;
    return (la > lb) - (la < lb);
}

int dm_ice_value_compare(dm_ice_type_t t, const dm_pq_value_t *a, const dm_pq_value_t *b)
{
    switch (t) {
    case DM_ICE_BOOLEAN: return (int)a->u.b - (int)b->u.b;
    case DM_ICE_INT:
    case DM_ICE_DATE: return (a->u.i32 > b->u.i32) - (a->u.i32 < b->u.i32);
    case DM_ICE_LONG:
    case DM_ICE_TIMESTAMP:
    case DM_ICE_TIMESTAMPTZ:
    case DM_ICE_TIME: return (a->u.i64 > b->u.i64) - (a->u.i64 < b->u.i64);
    case DM_ICE_FLOAT: return cmp_double(a->u.f, b->u.f);
    case DM_ICE_DOUBLE: return cmp_double(a->u.d, b->u.d);
    case DM_ICE_DECIMAL: {
        /* 16 big-endian bytes, two's complement: flip the sign bit, then bytewise. */
        uint8_t x = a->u.dec[0] ^ 0x80, y = b->u.dec[0] ^ 0x80;
        if (x != y) return x < y ? -1 : 1;
        return memcmp(a->u.dec + 1, b->u.dec + 1, 15);
    }
    default: return cmp_bytes(a->u.s.p, a->u.s.len, b->u.s.p, b->u.s.len);
    }
}

int dm_ice_sort_compare(const dm_ice_sort_t *o, const dm_pq_value_t *a, const dm_pq_value_t *b)
{
    for (size_t i = 0; i < o->n; i++) {
        const dm_ice_sort_field_t *f = &o->f[i];
        const dm_pq_value_t *x = &a[f->col], *y = &b[f->col];
        int c;
        if (x->null || y->null) {
            if (x->null && y->null) continue;
            c = x->null ? -1 : 1;
            if (!f->nulls_first) c = -c;
            return c; /* the null order holds whatever the direction */
        }
        c = dm_ice_value_compare(f->type, x, y);
        if (c) return f->desc ? -(c > 0 ? 1 : -1) : (c > 0 ? 1 : -1);
    }
    return 0;
}

/* Merges runs [lo, mid) and [mid, hi) of src into dst; ties take the left. */
static void merge(const dm_ice_sort_t *o, const dm_pq_value_t **src, const dm_pq_value_t **dst,
                  size_t lo, size_t mid, size_t hi)
{
    size_t i = lo, j = mid, k = lo;
    while (i < mid && j < hi)
        dst[k++] = dm_ice_sort_compare(o, src[j], src[i]) < 0 ? src[j++] : src[i++];
    while (i < mid)
        dst[k++] = src[i++];
    while (j < hi)
        dst[k++] = src[j++];
}

dm_err_t dm_ice_sort_rows(const dm_ice_sort_t *o, const dm_pq_value_t **rows, size_t n)
{
    if (n < 2 || !o->n) return DM_OK;
    const dm_pq_value_t **tmp = malloc(n * sizeof(*tmp));
    if (!tmp) return DM_ERR_NOMEM;
    /* Bottom-up merge sort: stable, n log n, no recursion. */
    const dm_pq_value_t **src = rows, **dst = tmp;
    for (size_t width = 1; width < n; width *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * width) {
            size_t mid = lo + width < n ? lo + width : n;
            size_t hi = lo + 2 * width < n ? lo + 2 * width : n;
            merge(o, src, dst, lo, mid, hi);
        }
        const dm_pq_value_t **t = src;
        src = dst;
        dst = t;
    }
    if (src != rows) memcpy(rows, src, n * sizeof(*rows));
    free(tmp);
    return DM_OK;
}
