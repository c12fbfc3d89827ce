/* connectors/iceberg/rows.c — Avro source rows to Iceberg table rows. */
#include <stdlib.h>
#include <string.h>

#include "connectors/iceberg/rows.h"

/* The non-null node of a field type and whether it was a nullable union;
 * NULL for unions of several non-null branches. */
static const dm_avro_node_t *unwrap(const dm_avro_node_t *n, bool *nullable)
{
    *nullable = false;
    if (n->type != DM_AVRO_UNION) return n;
    const dm_avro_node_t *one = NULL;
    for (uint32_t i = 0; i < n->n_branches; i++) {
        if (n->branches[i]->type == DM_AVRO_NULL)
            *nullable = true;
        else if (one)
            return NULL;
        else
            one = n->branches[i];
    }
    return one;
}

/* The Iceberg type of an Avro type (logical types included) into f. */
static dm_err_t map_type(const dm_avro_node_t *n, dm_ice_field_t *f)
{
    f->fixed_len = f->precision = f->scale = 0;
    if (n->logical == DM_AVRO_LT_DECIMAL &&
        (n->type == DM_AVRO_BYTES || n->type == DM_AVRO_FIXED)) {
        if (n->precision < 1 || n->precision > DM_ICE_DECIMAL_MAX_PRECISION) return DM_ERR_RANGE;
        f->type = DM_ICE_DECIMAL, f->precision = n->precision, f->scale = n->scale;
        return DM_OK;
    }
    switch (n->type) {
    case DM_AVRO_BOOLEAN: f->type = DM_ICE_BOOLEAN; return DM_OK;
    case DM_AVRO_INT:
        switch (n->logical) {
        case DM_AVRO_LT_NONE: f->type = DM_ICE_INT; return DM_OK;
        case DM_AVRO_LT_DATE: f->type = DM_ICE_DATE; return DM_OK;
        case DM_AVRO_LT_TIME_MILLIS: f->type = DM_ICE_TIME; return DM_OK;
        default: return DM_ERR_UNSUPPORTED;
        }
    case DM_AVRO_LONG:
        switch (n->logical) {
        case DM_AVRO_LT_NONE: f->type = DM_ICE_LONG; return DM_OK;
        case DM_AVRO_LT_TIME_MICROS: f->type = DM_ICE_TIME; return DM_OK;
        case DM_AVRO_LT_TIMESTAMP_MILLIS:
        case DM_AVRO_LT_TIMESTAMP_MICROS: f->type = DM_ICE_TIMESTAMPTZ; return DM_OK;
        case DM_AVRO_LT_LOCAL_TIMESTAMP_MILLIS:
        case DM_AVRO_LT_LOCAL_TIMESTAMP_MICROS: f->type = DM_ICE_TIMESTAMP; return DM_OK;
        default: return DM_ERR_UNSUPPORTED;
        }
    case DM_AVRO_FLOAT: f->type = DM_ICE_FLOAT; return DM_OK;
    case DM_AVRO_DOUBLE: f->type = DM_ICE_DOUBLE; return DM_OK;
    case DM_AVRO_STRING:
        /* A uuid string becomes Iceberg's uuid (16 bytes); readers show it as
         * the same text. */
        f->type = n->logical == DM_AVRO_LT_UUID ? DM_ICE_UUID : DM_ICE_STRING;
        return DM_OK;
    case DM_AVRO_ENUM: f->type = DM_ICE_STRING; return DM_OK;
    case DM_AVRO_BYTES:
        if (n->logical != DM_AVRO_LT_NONE) return DM_ERR_UNSUPPORTED;
        f->type = DM_ICE_BINARY;
        return DM_OK;
    case DM_AVRO_FIXED:
        if (n->logical == DM_AVRO_LT_UUID && n->size == 16) {
            f->type = DM_ICE_UUID;
            return DM_OK;
        }
        if (n->logical != DM_AVRO_LT_NONE) return DM_ERR_UNSUPPORTED;
        f->type = DM_ICE_FIXED, f->fixed_len = (int32_t)n->size;
        return DM_OK;
    default: return DM_ERR_UNSUPPORTED;
    }
}

const dm_avro_node_t *dm_ice_row_node(const dm_avro_node_t *root, bool *envelope)
{
    *envelope = false;
    if (root->type != DM_AVRO_RECORD) return root;
    int op = dm_avro_field_index(root, "op"), after = dm_avro_field_index(root, "after");
    if (op < 0 || after < 0) return root;
    bool nullable;
    const dm_avro_node_t *a = unwrap(root->fields[after].type, &nullable);
    if (!a || a->type != DM_AVRO_RECORD) return root;
    *envelope = true;
    return a;
}

/* Appends an entry to out (growing it); NULL when out of memory. */
static dm_ice_field_t *push_field(dm_ice_schema_t *out, size_t *cap)
{
    if (out->n == *cap) {
        size_t ncap = *cap * 2 + 8;
        dm_ice_field_t *f = realloc(out->fields, ncap * sizeof(*f));
        if (!f) return NULL;
        out->fields = f, *cap = ncap;
    }
    dm_ice_field_t *f = &out->fields[out->n++];
    memset(f, 0, sizeof(*f));
    return f;
}

/* Appends the fields of record rec in pre-order (a nested record becomes a
 * struct followed by its fields), ids from *next_id. path names the field
 * in errors ("a.b.c"). */
static dm_err_t fields_from_avro(const dm_avro_node_t *rec, const char *path, int depth,
                                 int32_t *next_id, dm_ice_schema_t *out, size_t *cap,
                                 dm_error_t *err)
{
    for (uint32_t i = 0; i < rec->n_fields; i++) {
        char full[256];
        snprintf(full, sizeof(full), "%s%s%s", path, *path ? "." : "", rec->fields[i].name);
        bool nullable;
        const dm_avro_node_t *n = unwrap(rec->fields[i].type, &nullable);
        dm_ice_field_t *f = push_field(out, cap);
        if (!f) return dm_error_set(err, DM_ERR_NOMEM, "iceberg: out of memory");
        f->id = (*next_id)++;
        f->name = strdup(rec->fields[i].name);
        f->required = !nullable;
        if (!f->name) return dm_error_set(err, DM_ERR_NOMEM, "iceberg: out of memory");
        if (n && n->type == DM_AVRO_RECORD) {
            /* Recursive records have no end: refuse them by depth. */
            if (depth >= 16 || n->n_fields == 0)
                return dm_error_set(err, DM_ERR_UNSUPPORTED,
                                    "iceberg: field %s is a record nested too deep (or recursive, "
                                    "or empty)",
                                    full);
            size_t at = out->n - 1;
            out->fields[at].type = DM_ICE_STRUCT;
            out->fields[at].n_children = (int32_t)n->n_fields;
            dm_err_t rc = fields_from_avro(n, full, depth + 1, next_id, out, cap, err);
            if (rc) return rc;
            continue;
        }
        dm_err_t mrc = n ? map_type(n, f) : DM_ERR_UNSUPPORTED;
        if (mrc == DM_ERR_RANGE)
            return dm_error_set(err, DM_ERR_UNSUPPORTED,
                                "iceberg: field %s is a decimal of precision %d; Iceberg decimals "
                                "hold at most %d digits",
                                full, n->precision, DM_ICE_DECIMAL_MAX_PRECISION);
        if (mrc)
            return dm_error_set(err, DM_ERR_UNSUPPORTED,
                                "iceberg: field %s has a type the sink does not map to a column "
                                "(arrays, maps, durations and multi-type unions are not supported)",
                                full);
    }
    return DM_OK;
}

dm_err_t dm_ice_schema_from_avro(const dm_avro_node_t *row, int32_t next_id, dm_ice_schema_t *out,
                                 dm_error_t *err)
{
    memset(out, 0, sizeof(*out));
    if (row->type != DM_AVRO_RECORD)
        return dm_error_set(err, DM_ERR_UNSUPPORTED, "iceberg: rows must be records, not %s",
                            dm_avro_type_name(row->type));
    size_t cap = row->n_fields + 1;
    out->fields = calloc(cap, sizeof(dm_ice_field_t));
    out->key_ids = calloc(row->n_fields + 1, sizeof(int32_t));
    if (!out->fields || !out->key_ids) {
        dm_ice_schema_free(out);
        return dm_error_set(err, DM_ERR_NOMEM, "iceberg: out of memory");
    }
    dm_err_t rc = fields_from_avro(row, "", 0, &next_id, out, &cap, err);
    if (rc) dm_ice_schema_free(out);
    return rc;
}

/* Two struct subtrees with the same fields (names and types, in order). */
static bool same_struct(const dm_ice_schema_t *a, size_t i, const dm_ice_schema_t *b, size_t j)
{
    size_t ea = dm_ice_schema_skip(a, i), eb = dm_ice_schema_skip(b, j);
    if (ea - i != eb - j) return false;
    for (size_t k = 0; k < ea - i; k++) {
        const dm_ice_field_t *x = &a->fields[i + k], *y = &b->fields[j + k];
        if (strcmp(x->name, y->name) || x->type != y->type || x->n_children != y->n_children ||
            x->fixed_len != y->fixed_len || x->precision != y->precision || x->scale != y->scale)
            return false;
    }
    return true;
}

/* Iceberg's type promotions: int -> long, float -> double, and a decimal
 * to a larger precision of the same scale. */
static bool widens(const dm_ice_field_t *from, const dm_ice_field_t *to)
{
    if (from->type == DM_ICE_DECIMAL && to->type == DM_ICE_DECIMAL)
        return from->scale == to->scale && to->precision >= from->precision;
    return from->type == to->type || (from->type == DM_ICE_INT && to->type == DM_ICE_LONG) ||
           (from->type == DM_ICE_FLOAT && to->type == DM_ICE_DOUBLE);
}

/* A type change that needs nothing: the same type, or a table column made
 * before uuid strings mapped to uuid (the text is kept). */
static bool same_type(const dm_ice_field_t *t, const dm_ice_field_t *s)
{
    if (t->type == DM_ICE_STRING && s->type == DM_ICE_UUID) return true;
    return t->type == s->type && t->fixed_len == s->fixed_len && t->precision == s->precision &&
           t->scale == s->scale;
}

dm_err_t dm_ice_schema_evolve(const dm_ice_schema_t *table, int32_t last_id,
                              const dm_ice_schema_t *source, dm_ice_schema_t *out, bool *changed,
                              dm_error_t *err)
{
    *changed = false;
    memset(out, 0, sizeof(*out));
    dm_err_t rc = dm_ice_schema_copy(table, out);
    if (rc) return dm_error_set(err, rc, "iceberg: out of memory");
    for (size_t i = 0; i < source->n; i = dm_ice_schema_skip(source, i)) {
        const dm_ice_field_t *sf = &source->fields[i];
        dm_ice_field_t *tf = (dm_ice_field_t *)dm_ice_schema_find(out, sf->name);
        if (tf && (tf->type == DM_ICE_STRUCT || sf->type == DM_ICE_STRUCT)) {
            if (tf->type == sf->type && same_struct(out, (size_t)(tf - out->fields), source, i))
                continue;
            dm_ice_schema_free(out);
            return dm_error_set(err, DM_ERR_SCHEMA_INCOMPATIBLE,
                                "iceberg: struct column %s changed in the source (the fields of "
                                "nested records cannot evolve yet)",
                                sf->name);
        }
        if (tf) {
            if (same_type(tf, sf)) continue;
            if (!widens(tf, sf)) {
                char a[32], b[32];
                dm_ice_schema_free(out);
                return dm_error_set(err, DM_ERR_SCHEMA_INCOMPATIBLE,
                                    "iceberg: column %s is %s in the table and %s in the source",
                                    sf->name, dm_ice_type_name(tf, a), dm_ice_type_name(sf, b));
            }
            tf->type = sf->type; /* promotion: int -> long, float -> double */
            tf->precision = sf->precision;
            *changed = true;
            continue;
        }
        /* A new column (a struct with its fields): fresh ids, optional at
         * the top (older rows have no value). */
        size_t end = dm_ice_schema_skip(source, i);
        dm_ice_field_t *f = realloc(out->fields, (out->n + end - i) * sizeof(*f));
        if (!f) {
            dm_ice_schema_free(out);
            return dm_error_set(err, DM_ERR_NOMEM, "iceberg: out of memory");
        }
        out->fields = f;
        for (size_t k = i; k < end; k++) {
            f[out->n] = source->fields[k];
            f[out->n].id = ++last_id;
            if (k == i) f[out->n].required = false;
            f[out->n].name = strdup(source->fields[k].name);
            out->n++;
        }
        *changed = true;
    }
    return DM_OK;
}

/* Maps count table fields from *i on (subtrees included) to the fields of
 * Avro record rec (NULL: the source lacks the struct) under parent. */
static void map_fields(dm_ice_source_t *src, const dm_ice_schema_t *table, size_t *i, size_t count,
                       const dm_avro_node_t *rec, int parent)
{
    for (size_t k = 0; k < count && *i < table->n; k++) {
        size_t at = (*i)++;
        const dm_ice_field_t *f = &table->fields[at];
        int fi = rec ? dm_avro_field_index(rec, f->name) : -1;
        src->field_of[at] = fi;
        src->parent_of[at] = parent;
        src->node_of[at] = fi >= 0 ? rec->fields[fi].type : NULL;
        if (f->type != DM_ICE_STRUCT) continue;
        bool nullable;
        const dm_avro_node_t *sub = fi >= 0 ? unwrap(rec->fields[fi].type, &nullable) : NULL;
        if (sub && sub->type != DM_AVRO_RECORD) sub = NULL;
        map_fields(src, table, i, (size_t)f->n_children, sub, (int)at);
    }
}

dm_err_t dm_ice_source_init(dm_ice_source_t *src, uint32_t id, const dm_avro_schema_t *schema,
                            const dm_ice_schema_t *table, dm_error_t *err)
{
    memset(src, 0, sizeof(*src));
    src->id = id;
    src->schema = schema;
    src->row = dm_ice_row_node(schema->root, &src->envelope);
    if (src->row->type != DM_AVRO_RECORD)
        return dm_error_set(err, DM_ERR_UNSUPPORTED, "iceberg: source schema %u is not a record",
                            id);
    if (src->envelope) {
        src->op = dm_avro_field_index(schema->root, "op");
        src->before = dm_avro_field_index(schema->root, "before");
        src->after = dm_avro_field_index(schema->root, "after");
    }
    src->n_cols = table->n;
    src->field_of = calloc(table->n + 1, sizeof(int));
    src->parent_of = calloc(table->n + 1, sizeof(int));
    src->node_of = calloc(table->n + 1, sizeof(*src->node_of));
    src->val_of = calloc(table->n + 1, sizeof(*src->val_of));
    src->scratch = malloc(16 * (table->n + 1));
    if (!src->field_of || !src->parent_of || !src->node_of || !src->val_of || !src->scratch)
        return dm_error_set(err, DM_ERR_NOMEM, "iceberg: out of memory");
    size_t i = 0;
    map_fields(src, table, &i, table->n, src->row, -1);
    return dm_avro_codec_new(schema, NULL, NULL, 0, &src->codec, err);
}

void dm_ice_source_free(dm_ice_source_t *src)
{
    dm_avro_codec_free(src->codec);
    free(src->field_of);
    free(src->parent_of);
    free(src->node_of);
    free(src->val_of);
    free(src->scratch);
    memset(src, 0, sizeof(*src));
}

/* An Avro decimal (big-endian two's complement bytes of the unscaled value)
 * into the 16 bytes of u.dec, checked against the column's precision. */
static dm_err_t convert_decimal(const dm_ice_field_t *f, const dm_avro_node_t *n,
                                const dm_avro_value_t *v, dm_pq_value_t *out, dm_error_t *err)
{
    if (n->logical != DM_AVRO_LT_DECIMAL || n->scale != f->scale)
        return dm_error_set(err, DM_ERR_SCHEMA_MISMATCH,
                            "iceberg: column %s is decimal with scale %d; the value is not",
                            f->name, f->scale);
    if (!dm_pq_decimal_from_be(v->u.p, v->len, out->u.dec) ||
        !dm_pq_decimal_digits_ok(out->u.dec, f->precision))
        return dm_error_set(err, DM_ERR_SCHEMA_MISMATCH,
                            "iceberg: column %s: decimal value has more than %d digits", f->name,
                            f->precision);
    return DM_OK;
}

static int hex_digit(uint8_t c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* A uuid string (8-4-4-4-12 hex digits) into its 16 bytes, kept in copy or
 * else in the source's scratch for this column (valid until its next row). */
static dm_err_t convert_uuid(const dm_ice_field_t *f, const dm_avro_value_t *v, dm_arena_t *copy,
                             uint8_t *scratch, dm_pq_value_t *out, dm_error_t *err)
{
    uint8_t b[16];
    size_t k = 0;
    bool ok = v->len == 36;
    for (size_t i = 0; ok && i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            ok = v->u.p[i] == '-';
            continue;
        }
        int h = hex_digit(v->u.p[i]), l = i + 1 < 36 ? hex_digit(v->u.p[i + 1]) : -1;
        ok = h >= 0 && l >= 0;
        if (ok) b[k++] = (uint8_t)(h << 4 | l);
        i++;
    }
    if (!ok || k != 16)
        return dm_error_set(err, DM_ERR_SCHEMA_MISMATCH, "iceberg: column %s: '%.*s' is not a uuid",
                            f->name, (int)(v->len > 40 ? 40 : v->len), (const char *)v->u.p);
    uint8_t *p = copy ? dm_arena_memdup(copy, b, 16) : memcpy(scratch, b, 16);
    if (!p) return dm_error_set(err, DM_ERR_NOMEM, "iceberg: out of memory");
    out->u.s.p = p, out->u.s.len = 16;
    return DM_OK;
}

static dm_err_t convert(const dm_ice_field_t *f, const dm_avro_node_t *type,
                        const dm_avro_value_t *v, dm_arena_t *copy, uint8_t *scratch,
                        dm_pq_value_t *out, dm_error_t *err)
{
    memset(out, 0, sizeof(*out));
    if (v->type == DM_AVRO_NULL || v->type == DM_AVRO_ABSENT) {
        out->null = true;
        if (f->required)
            return dm_error_set(err, DM_ERR_SCHEMA_MISMATCH, "iceberg: null for required column %s",
                                f->name);
        return DM_OK;
    }
    const dm_avro_node_t *n = type->type == DM_AVRO_UNION ? type->branches[v->branch] : type;
    if (f->type == DM_ICE_DECIMAL) return convert_decimal(f, n, v, out, err);
    if (f->type == DM_ICE_UUID && v->type == DM_AVRO_STRING)
        return convert_uuid(f, v, copy, scratch, out, err);
    if (f->type == DM_ICE_TIME && v->type == DM_AVRO_INT) {
        out->u.i64 = (int64_t)v->u.i * 1000; /* time-millis */
        return DM_OK;
    }
    switch (v->type) {
    case DM_AVRO_BOOLEAN: out->u.b = v->u.b; break;
    case DM_AVRO_INT:
        if (f->type == DM_ICE_LONG)
            out->u.i64 = v->u.i;
        else
            out->u.i32 = v->u.i;
        break;
    case DM_AVRO_LONG:
        out->u.i64 = v->u.l;
        if (n->logical == DM_AVRO_LT_TIMESTAMP_MILLIS ||
            n->logical == DM_AVRO_LT_LOCAL_TIMESTAMP_MILLIS)
            out->u.i64 = v->u.l * 1000;
        break;
    case DM_AVRO_FLOAT:
        if (f->type == DM_ICE_DOUBLE)
            out->u.d = v->u.f;
        else
            out->u.f = v->u.f;
        break;
    case DM_AVRO_DOUBLE: out->u.d = v->u.d; break;
    case DM_AVRO_ENUM: {
        const char *s = n->symbols[v->u.i];
        out->u.s.p = (const uint8_t *)s, out->u.s.len = (uint32_t)strlen(s);
        break;
    }
    default:
        out->u.s.p = v->u.p, out->u.s.len = v->len;
        if (copy && v->len) {
            out->u.s.p = dm_arena_memdup(copy, v->u.p, v->len);
            if (!out->u.s.p) return dm_error_set(err, DM_ERR_NOMEM, "iceberg: out of memory");
        }
        break;
    }
    return DM_OK;
}

dm_err_t dm_ice_row_convert(const dm_ice_source_t *src, const dm_ice_schema_t *table,
                            const dm_avro_value_t *row, dm_arena_t *copy_arena, dm_pq_value_t *out,
                            dm_error_t *err)
{
    for (size_t i = 0; i < table->n; i++) {
        const dm_ice_field_t *f = &table->fields[i];
        bool in_source = i < src->n_cols;
        int fi = in_source ? src->field_of[i] : -1, parent = in_source ? src->parent_of[i] : -1;
        /* The record this field is read from: the row, or its struct's value
         * (NULL when that struct is null: so is everything under it). */
        const dm_avro_value_t *rec = parent < 0 ? row : src->val_of[parent];
        if (in_source) src->val_of[i] = NULL;
        if (parent >= 0 && !rec) {
            memset(&out[i], 0, sizeof(out[i]));
            out[i].null = true;
            continue;
        }
        if (fi < 0) {
            memset(&out[i], 0, sizeof(out[i]));
            out[i].null = true;
            if (f->required)
                return dm_error_set(err, DM_ERR_SCHEMA_MISMATCH,
                                    "iceberg: the source has no value for required column %s",
                                    f->name);
            continue;
        }
        const dm_avro_value_t *v = &rec->u.v[fi];
        if (f->type == DM_ICE_STRUCT) {
            memset(&out[i], 0, sizeof(out[i]));
            out[i].null = v->type != DM_AVRO_RECORD;
            if (out[i].null && f->required)
                return dm_error_set(err, DM_ERR_SCHEMA_MISMATCH,
                                    "iceberg: null for required struct column %s", f->name);
            if (!out[i].null) src->val_of[i] = v;
            continue;
        }
        dm_err_t rc =
            convert(f, src->node_of[i], v, copy_arena, src->scratch + 16 * i, &out[i], err);
        if (rc) return rc;
    }
    return DM_OK;
}
