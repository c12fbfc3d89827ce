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

static dm_err_t field_from_avro(const char *name, const dm_avro_node_t *type, const char *path,
                                int depth, int32_t *next_id, dm_ice_schema_t *out, size_t *cap,
                                dm_error_t *err);

/* Gives entry at the type of Avro node n (unwrapped): a record becomes a
 * struct followed by its fields, an array a list followed by its element,
 * a map a map followed by its key (a string) and value, with ids from
 * *next_id in pre-order. path names the field in errors ("a.b.c"). */
static dm_err_t type_from_avro(const dm_avro_node_t *n, size_t at, const char *path, int depth,
                               int32_t *next_id, dm_ice_schema_t *out, size_t *cap, dm_error_t *err)
{
    bool nested =
        n && (n->type == DM_AVRO_RECORD || n->type == DM_AVRO_ARRAY || n->type == DM_AVRO_MAP);
    /* Recursive types have no end: refuse them by depth. */
    if (nested && (depth >= 16 || (n->type == DM_AVRO_RECORD && n->n_fields == 0)))
        return dm_error_set(err, DM_ERR_UNSUPPORTED,
                            "iceberg: field %s is nested too deep (or recursive, or an empty "
                            "record)",
                            path);
    char sub[256];
    if (n && n->type == DM_AVRO_RECORD) {
        out->fields[at].type = DM_ICE_STRUCT;
        out->fields[at].n_children = (int32_t)n->n_fields;
        for (uint32_t i = 0; i < n->n_fields; i++) {
            snprintf(sub, sizeof(sub), "%s.%s", path, n->fields[i].name);
            dm_err_t rc = field_from_avro(n->fields[i].name, n->fields[i].type, sub, depth + 1,
                                          next_id, out, cap, err);
            if (rc) return rc;
        }
        return DM_OK;
    }
    if (n && n->type == DM_AVRO_ARRAY) {
        out->fields[at].type = DM_ICE_LIST;
        out->fields[at].n_children = 1;
        snprintf(sub, sizeof(sub), "%s.element", path);
        return field_from_avro("element", n->items, sub, depth + 1, next_id, out, cap, err);
    }
    if (n && n->type == DM_AVRO_MAP) {
        static const dm_avro_node_t key = {.type = DM_AVRO_STRING};
        out->fields[at].type = DM_ICE_MAP;
        out->fields[at].n_children = 2;
        snprintf(sub, sizeof(sub), "%s.key", path);
        dm_err_t rc = field_from_avro("key", &key, sub, depth + 1, next_id, out, cap, err);
        snprintf(sub, sizeof(sub), "%s.value", path);
        if (!rc) rc = field_from_avro("value", n->items, sub, depth + 1, next_id, out, cap, err);
        return rc;
    }
    dm_err_t mrc = n ? map_type(n, &out->fields[at]) : DM_ERR_UNSUPPORTED;
    if (mrc == DM_ERR_RANGE)
        return dm_error_set(err, DM_ERR_UNSUPPORTED,
                            "iceberg: field %s is a decimal of precision %d; Iceberg decimals "
                            "hold at most %d digits",
                            path, n->precision, DM_ICE_DECIMAL_MAX_PRECISION);
    if (mrc)
        return dm_error_set(err, DM_ERR_UNSUPPORTED,
                            "iceberg: field %s has a type the sink does not map to a column "
                            "(durations and multi-type unions are not supported)",
                            path);
    return DM_OK;
}

/* Appends a field (a nullable union makes it optional) and its type. */
static dm_err_t field_from_avro(const char *name, const dm_avro_node_t *type, const char *path,
                                int depth, int32_t *next_id, dm_ice_schema_t *out, size_t *cap,
                                dm_error_t *err)
{
    bool nullable;
    const dm_avro_node_t *n = unwrap(type, &nullable);
    dm_ice_field_t *f = push_field(out, cap);
    if (!f) return dm_error_set(err, DM_ERR_NOMEM, "iceberg: out of memory");
    f->id = (*next_id)++;
    f->name = strdup(name);
    f->required = !nullable;
    if (!f->name) return dm_error_set(err, DM_ERR_NOMEM, "iceberg: out of memory");
    return type_from_avro(n, out->n - 1, path, depth, next_id, out, cap, err);
}

/* Appends the fields of record rec in pre-order, ids from *next_id. */
static dm_err_t fields_from_avro(const dm_avro_node_t *rec, int32_t *next_id, dm_ice_schema_t *out,
                                 size_t *cap, dm_error_t *err)
{
    for (uint32_t i = 0; i < rec->n_fields; i++) {
        dm_err_t rc = field_from_avro(rec->fields[i].name, rec->fields[i].type, rec->fields[i].name,
                                      0, next_id, out, cap, err);
        if (rc) return rc;
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
    dm_err_t rc = fields_from_avro(row, &next_id, out, &cap, err);
    if (rc) dm_ice_schema_free(out);
    return rc;
}

/* Two nested subtrees (struct, list, map) with the same fields: names,
 * types and, below the top, whether each is required. */
static bool same_nested(const dm_ice_schema_t *a, size_t i, const dm_ice_schema_t *b, size_t j)
{
    size_t ea = dm_ice_schema_skip(a, i), eb = dm_ice_schema_skip(b, j);
    if (ea - i != eb - j) return false;
    for (size_t k = 0; k < ea - i; k++) {
        const dm_ice_field_t *x = &a->fields[i + k], *y = &b->fields[j + k];
        if (strcmp(x->name, y->name) || x->type != y->type || x->n_children != y->n_children ||
            x->fixed_len != y->fixed_len || x->precision != y->precision || x->scale != y->scale ||
            (k && x->required != y->required))
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

/* Source type s is a narrower form of table type t (a promotion the other
 * way round): its values are written widened. */
static bool narrower(const dm_ice_field_t *s, const dm_ice_field_t *t)
{
    if (s->type == DM_ICE_DECIMAL && t->type == DM_ICE_DECIMAL)
        return s->scale == t->scale && s->precision < t->precision;
    return (s->type == DM_ICE_INT && t->type == DM_ICE_LONG) ||
           (s->type == DM_ICE_FLOAT && t->type == DM_ICE_DOUBLE);
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
        if (tf && (dm_ice_type_nested(tf->type) || dm_ice_type_nested(sf->type))) {
            if (tf->type == sf->type && same_nested(out, (size_t)(tf - out->fields), source, i))
                continue;
            char a[32], b[32];
            dm_ice_type_name(tf, a), dm_ice_type_name(sf, b);
            dm_ice_schema_free(out);
            return dm_error_set(err, DM_ERR_SCHEMA_INCOMPATIBLE,
                                "iceberg: nested column %s (%s in the table, %s in the source) "
                                "changed inside (the fields of structs, lists and maps cannot "
                                "evolve yet)",
                                sf->name, a, b);
        }
        if (tf) {
            /* the same type, or an older, narrower version of the source (records
             * written before a widening, by another partition's sink): its values
             * are written widened (int as long, float as double) */
            if (same_type(tf, sf) || narrower(sf, tf)) continue;
            if (!widens(tf, sf)) {
                char a[32], b[32];
                dm_ice_type_name(tf, a), dm_ice_type_name(sf, b); /* before tf is freed */
                dm_ice_schema_free(out);
                return dm_error_set(err, DM_ERR_SCHEMA_INCOMPATIBLE,
                                    "iceberg: column %s is %s in the table and %s in the source",
                                    sf->name, a, b);
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

/* A map's keys: Avro map keys are strings. */
static const dm_avro_node_t string_node = {.type = DM_AVRO_STRING};

static void map_fields(dm_ice_source_t *src, const dm_ice_schema_t *table, size_t *i, size_t count,
                       const dm_avro_node_t *rec, int parent, int outer);

/* Maps the children of nested field at (Avro type type; NULL when the
 * source lacks it): a struct's to the record's fields by name, a list's
 * element to the array's items, a map's key and value to its keys and
 * values. Children of a list or map are "under" it (outer). */
static void map_children(dm_ice_source_t *src, const dm_ice_schema_t *table, size_t *i, size_t at,
                         const dm_avro_node_t *type, int outer)
{
    const dm_ice_field_t *f = &table->fields[at];
    if (!dm_ice_type_nested(f->type)) return;
    bool nullable;
    const dm_avro_node_t *sub = type ? unwrap(type, &nullable) : NULL;
    if (f->type == DM_ICE_STRUCT) {
        if (sub && sub->type != DM_AVRO_RECORD) sub = NULL;
        map_fields(src, table, i, (size_t)f->n_children, sub, (int)at, outer);
        return;
    }
    int in = outer >= 0 ? outer : (int)at;
    if (sub && sub->type != (f->type == DM_ICE_LIST ? DM_AVRO_ARRAY : DM_AVRO_MAP)) sub = NULL;
    for (int32_t c = 0; c < f->n_children && *i < table->n; c++) {
        size_t ch = (*i)++;
        src->field_of[ch] = -1;
        src->parent_of[ch] = (int)at;
        src->outer_of[ch] = in;
        src->node_of[ch] = !sub                              ? NULL
                           : f->type == DM_ICE_MAP && c == 0 ? &string_node
                                                             : sub->items;
        map_children(src, table, i, ch, src->node_of[ch], in);
    }
}

/* Maps count table fields from *i on (subtrees included) to the fields of
 * Avro record rec (NULL: the source lacks the struct) under parent. */
static void map_fields(dm_ice_source_t *src, const dm_ice_schema_t *table, size_t *i, size_t count,
                       const dm_avro_node_t *rec, int parent, int outer)
{
    for (size_t k = 0; k < count && *i < table->n; k++) {
        size_t at = (*i)++;
        const dm_ice_field_t *f = &table->fields[at];
        int fi = rec ? dm_avro_field_index(rec, f->name) : -1;
        src->field_of[at] = fi;
        src->parent_of[at] = parent;
        src->outer_of[at] = outer;
        src->node_of[at] = fi >= 0 ? rec->fields[fi].type : NULL;
        map_children(src, table, i, at, src->node_of[at], outer);
    }
}

/* Top-level columns whose Avro value is copied as is (the hot path of flat
 * rows): no logical type to convert, no promotion, no nesting. */
enum { FAST_NONE, FAST_I32, FAST_I64, FAST_F32, FAST_F64, FAST_BOOL, FAST_BYTES };

static uint8_t fast_kind(const dm_ice_field_t *f, const dm_avro_node_t *type)
{
    bool nullable;
    const dm_avro_node_t *n = type ? unwrap(type, &nullable) : NULL;
    if (!n) return FAST_NONE;
    bool plain = n->logical == DM_AVRO_LT_NONE;
    switch (f->type) {
    case DM_ICE_INT: return n->type == DM_AVRO_INT && plain ? FAST_I32 : FAST_NONE;
    case DM_ICE_DATE:
        return n->type == DM_AVRO_INT && n->logical == DM_AVRO_LT_DATE ? FAST_I32 : FAST_NONE;
    case DM_ICE_LONG: return n->type == DM_AVRO_LONG && plain ? FAST_I64 : FAST_NONE;
    case DM_ICE_TIMESTAMPTZ:
        return n->type == DM_AVRO_LONG && n->logical == DM_AVRO_LT_TIMESTAMP_MICROS ? FAST_I64
                                                                                    : FAST_NONE;
    case DM_ICE_TIMESTAMP:
        return n->type == DM_AVRO_LONG && n->logical == DM_AVRO_LT_LOCAL_TIMESTAMP_MICROS
                   ? FAST_I64
                   : FAST_NONE;
    case DM_ICE_FLOAT: return n->type == DM_AVRO_FLOAT ? FAST_F32 : FAST_NONE;
    case DM_ICE_DOUBLE: return n->type == DM_AVRO_DOUBLE ? FAST_F64 : FAST_NONE;
    case DM_ICE_BOOLEAN: return n->type == DM_AVRO_BOOLEAN ? FAST_BOOL : FAST_NONE;
    case DM_ICE_STRING: return n->type == DM_AVRO_STRING && plain ? FAST_BYTES : FAST_NONE;
    case DM_ICE_BINARY: return n->type == DM_AVRO_BYTES && plain ? FAST_BYTES : FAST_NONE;
    default: return FAST_NONE;
    }
}

/* The Avro type a fast column's value has when present. */
static const uint8_t fast_avro[] = {
    [FAST_I32] = DM_AVRO_INT,    [FAST_I64] = DM_AVRO_LONG,     [FAST_F32] = DM_AVRO_FLOAT,
    [FAST_F64] = DM_AVRO_DOUBLE, [FAST_BOOL] = DM_AVRO_BOOLEAN, [FAST_BYTES] = 0};

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
    src->outer_of = calloc(table->n + 1, sizeof(int));
    src->level_of = calloc(table->n + 1, 1);
    src->fast_of = calloc(table->n + 1, 1);
    src->scratch = malloc(16 * (table->n + 1));
    dm_arena_init(&src->arena, 0);
    if (!src->field_of || !src->parent_of || !src->node_of || !src->val_of || !src->outer_of ||
        !src->level_of || !src->fast_of || !src->scratch)
        return dm_error_set(err, DM_ERR_NOMEM, "iceberg: out of memory");
    size_t i = 0;
    map_fields(src, table, &i, table->n, src->row, -1, -1);
    for (size_t k = 0; k < table->n; k++)
        if (src->parent_of[k] < 0 && src->outer_of[k] < 0 && src->field_of[k] >= 0)
            src->fast_of[k] = fast_kind(&table->fields[k], src->node_of[k]);
    return dm_avro_codec_new(schema, NULL, NULL, 0, &src->codec, err);
}

void dm_ice_source_free(dm_ice_source_t *src)
{
    dm_avro_codec_free(src->codec);
    free(src->field_of);
    free(src->parent_of);
    free(src->node_of);
    free(src->val_of);
    free(src->outer_of);
    free(src->level_of);
    free(src->fast_of);
    free(src->scratch);
    free(src->entries);
    dm_arena_destroy(&src->arena);
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

/* ---- lists and maps: striping ------------------------------------------------ */

static dm_err_t push_entry(dm_ice_source_t *src, size_t col, uint8_t rep, uint8_t def,
                           const dm_pq_value_t *v, dm_error_t *err)
{
    if (src->n_entries == src->cap_entries) {
        size_t cap = src->cap_entries ? src->cap_entries * 2 : 64;
        dm_pq_entry_t *e = realloc(src->entries, cap * sizeof(*e));
        if (!e) return dm_error_set(err, DM_ERR_NOMEM, "iceberg: out of memory");
        src->entries = e, src->cap_entries = cap;
    }
    dm_pq_entry_t *e = &src->entries[src->n_entries++];
    e->col = (uint32_t)col, e->rep = rep, e->def = def;
    if (v)
        e->v = *v;
    else
        memset(&e->v, 0, sizeof(e->v)), e->v.null = true;
    return DM_OK;
}

/* One entry per leaf of fields [from, to): null or empty at level def. */
static dm_err_t push_nulls(dm_ice_source_t *src, const dm_ice_schema_t *t, size_t from, size_t to,
                           uint8_t rep, uint8_t def, dm_error_t *err)
{
    for (size_t j = from; j < to; j++)
        if (!dm_ice_type_nested(t->fields[j].type)) {
            dm_err_t rc = push_entry(src, j, rep, def, NULL, err);
            if (rc) return rc;
        }
    return DM_OK;
}

typedef struct stripe_ctx {
    dm_ice_source_t *src;
    const dm_ice_schema_t *t;
    dm_arena_t *copy;
    const char *top; /* the column being striped, for errors */
} stripe_ctx_t;

/* Stripes field i's value v (NULL: absent) into entries, Dremel's way: rep
 * is the repetition level of its first entry, def the definition level its
 * ancestors reached, depth the lists and maps around it. */
static dm_err_t stripe(const stripe_ctx_t *x, size_t i, const dm_avro_node_t *type,
                       const dm_avro_value_t *v, uint8_t rep, uint8_t def, uint8_t depth,
                       dm_error_t *err)
{
    dm_ice_source_t *src = x->src;
    const dm_ice_field_t *f = &x->t->fields[i];
    if (!v || v->type == DM_AVRO_NULL || v->type == DM_AVRO_ABSENT) {
        if (f->required)
            return dm_error_set(err, DM_ERR_SCHEMA_MISMATCH,
                                "iceberg: column %s: null for its required field %s", x->top,
                                f->name);
        return push_nulls(src, x->t, i, dm_ice_schema_skip(x->t, i), rep, def, err);
    }
    if (!f->required) def++;
    static const uint8_t want[] = {[DM_ICE_STRUCT] = DM_AVRO_RECORD,
                                   [DM_ICE_LIST] = DM_AVRO_ARRAY,
                                   [DM_ICE_MAP] = DM_AVRO_MAP};
    if (dm_ice_type_nested(f->type) && v->type != want[f->type])
        return dm_error_set(err, DM_ERR_SCHEMA_MISMATCH,
                            "iceberg: column %s: field %s is %s in the source, not a %s", x->top,
                            f->name, dm_avro_type_name(v->type),
                            dm_ice_type_name(f, (char[32]){0}));
    dm_err_t rc = DM_OK;
    if (f->type == DM_ICE_STRUCT) {
        size_t c = i + 1;
        for (int32_t k = 0; k < f->n_children && !rc; k++) {
            int fi = src->field_of[c];
            rc = stripe(x, c, src->node_of[c], fi >= 0 ? &v->u.v[fi] : NULL, rep, def, depth, err);
            c = dm_ice_schema_skip(x->t, c);
        }
        return rc;
    }
    if (f->type == DM_ICE_LIST || f->type == DM_ICE_MAP) {
        size_t first = i + 1, second = dm_ice_schema_skip(x->t, first);
        if (!v->len)
            return push_nulls(src, x->t, first, dm_ice_schema_skip(x->t, i), rep, def, err);
        for (uint32_t k = 0; k < v->len && !rc; k++) {
            uint8_t r = k ? (uint8_t)(depth + 1) : rep;
            if (f->type == DM_ICE_LIST) {
                rc = stripe(x, first, src->node_of[first], &v->u.v[k], r, (uint8_t)(def + 1),
                            (uint8_t)(depth + 1), err);
                continue;
            }
            rc = stripe(x, first, &string_node, &v->u.v[2 * k], r, (uint8_t)(def + 1),
                        (uint8_t)(depth + 1), err);
            if (!rc)
                rc = stripe(x, second, src->node_of[second], &v->u.v[2 * k + 1], r,
                            (uint8_t)(def + 1), (uint8_t)(depth + 1), err);
        }
        return rc;
    }
    /* A uuid's 16 bytes need a home of their own per entry. */
    uint8_t *scratch = f->type == DM_ICE_UUID ? dm_arena_alloc(&src->arena, 16) : NULL;
    if (f->type == DM_ICE_UUID && !scratch)
        return dm_error_set(err, DM_ERR_NOMEM, "iceberg: out of memory");
    dm_pq_value_t pv;
    rc = convert(f, type, v, x->copy, scratch, &pv, err);
    if (rc) return dm_error_prefix(err, "column %s", x->top);
    return push_entry(src, i, rep, def, &pv, err);
}

/* Points each list or map cell at its entries (appended in column order),
 * copied into copy_arena when rows are kept. */
static dm_err_t place_entries(dm_ice_source_t *src, const dm_ice_schema_t *table, dm_arena_t *copy,
                              dm_pq_value_t *out, dm_error_t *err)
{
    if (!src->n_entries) return DM_OK;
    dm_pq_entry_t *e = src->entries;
    if (copy && !(e = dm_arena_memdup(copy, src->entries, src->n_entries * sizeof(*e))))
        return dm_error_set(err, DM_ERR_NOMEM, "iceberg: out of memory");
    size_t off = 0;
    for (size_t i = 0; i < table->n && i < src->n_cols; i++) {
        dm_ice_type_t t = table->fields[i].type;
        if ((t != DM_ICE_LIST && t != DM_ICE_MAP) || src->outer_of[i] >= 0 || out[i].null) continue;
        out[i].u.rep.e = e + off;
        off += out[i].u.rep.n;
    }
    return DM_OK;
}

dm_err_t dm_ice_row_convert(dm_ice_source_t *src, const dm_ice_schema_t *table,
                            const dm_avro_value_t *row, dm_arena_t *copy_arena, dm_pq_value_t *out,
                            dm_error_t *err)
{
    src->n_entries = 0;
    dm_arena_reset(&src->arena);
    for (size_t i = 0; i < table->n; i++) {
        const dm_ice_field_t *f = &table->fields[i];
        bool in_source = i < src->n_cols;
        uint8_t fk = in_source ? src->fast_of[i] : FAST_NONE;
        if (fk && !(fk == FAST_BYTES && copy_arena)) {
            /* The value as it is; anything unexpected takes the general path. */
            const dm_avro_value_t *v = &row->u.v[src->field_of[i]];
            dm_pq_value_t *o = &out[i];
            if (v->type == DM_AVRO_NULL && !f->required) {
                *o = (dm_pq_value_t){.null = true};
                continue;
            }
            if (fk == FAST_BYTES ? v->type == DM_AVRO_STRING || v->type == DM_AVRO_BYTES
                                 : v->type == fast_avro[fk]) {
                *o = (dm_pq_value_t){0};
                switch (fk) {
                case FAST_I32: o->u.i32 = v->u.i; break;
                case FAST_I64: o->u.i64 = v->u.l; break;
                case FAST_F32: o->u.f = v->u.f; break;
                case FAST_F64: o->u.d = v->u.d; break;
                case FAST_BOOL: o->u.b = v->u.b; break;
                default: o->u.s.p = v->u.p, o->u.s.len = v->len; break;
                }
                continue;
            }
        }
        if (in_source && src->outer_of[i] >= 0) {
            /* Under a list or map: its entries carry the values. */
            memset(&out[i], 0, sizeof(out[i]));
            out[i].null = true;
            continue;
        }
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
        uint8_t base = parent < 0 ? 0 : src->level_of[parent];
        if (f->type == DM_ICE_STRUCT) {
            memset(&out[i], 0, sizeof(out[i]));
            out[i].null = v->type != DM_AVRO_RECORD;
            if (out[i].null && f->required)
                return dm_error_set(err, DM_ERR_SCHEMA_MISMATCH,
                                    "iceberg: null for required struct column %s", f->name);
            if (!out[i].null) src->val_of[i] = v;
            src->level_of[i] = (uint8_t)(base + (!out[i].null && !f->required ? 1 : 0));
            continue;
        }
        if (f->type == DM_ICE_LIST || f->type == DM_ICE_MAP) {
            memset(&out[i], 0, sizeof(out[i]));
            out[i].null = v->type == DM_AVRO_NULL || v->type == DM_AVRO_ABSENT;
            if (out[i].null && f->required)
                return dm_error_set(err, DM_ERR_SCHEMA_MISMATCH,
                                    "iceberg: null for required column %s", f->name);
            if (out[i].null) continue;
            size_t start = src->n_entries;
            stripe_ctx_t x = {.src = src, .t = table, .copy = copy_arena, .top = f->name};
            dm_err_t rc = stripe(&x, i, src->node_of[i], v, 0, base, 0, err);
            if (rc) return rc;
            out[i].u.rep.n = (uint32_t)(src->n_entries - start);
            continue;
        }
        dm_err_t rc =
            convert(f, src->node_of[i], v, copy_arena, src->scratch + 16 * i, &out[i], err);
        if (rc) return rc;
    }
    return place_entries(src, table, copy_arena, out, err);
}
