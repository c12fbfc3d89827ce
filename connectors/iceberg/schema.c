/* connectors/iceberg/schema.c — Iceberg schemas: metadata JSON, Parquet
 * columns, single-value serialization. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/iceberg/table.h"

static const char *const type_names[] = {[DM_ICE_BOOLEAN] = "boolean",
                                         [DM_ICE_INT] = "int",
                                         [DM_ICE_LONG] = "long",
                                         [DM_ICE_FLOAT] = "float",
                                         [DM_ICE_DOUBLE] = "double",
                                         [DM_ICE_DATE] = "date",
                                         [DM_ICE_TIMESTAMP] = "timestamp",
                                         [DM_ICE_TIMESTAMPTZ] = "timestamptz",
                                         [DM_ICE_TIME] = "time",
                                         [DM_ICE_DECIMAL] = "decimal",
                                         [DM_ICE_STRUCT] = "struct",
                                         [DM_ICE_LIST] = "list",
                                         [DM_ICE_MAP] = "map",
                                         [DM_ICE_STRING] = "string",
                                         [DM_ICE_BINARY] = "binary",
                                         [DM_ICE_UUID] = "uuid",
                                         [DM_ICE_FIXED] = "fixed"};

const char *dm_ice_type_name(const dm_ice_field_t *f, char buf[32])
{
    if (f->type == DM_ICE_FIXED)
        snprintf(buf, 32, "fixed[%d]", f->fixed_len);
    else if (f->type == DM_ICE_DECIMAL)
        snprintf(buf, 32, "decimal(%d, %d)", f->precision, f->scale);
    else
        snprintf(buf, 32, "%s", type_names[f->type]);
    return buf;
}

/* Reads a metadata type name into f (type, fixed_len, precision, scale). */
static dm_err_t parse_type(const char *s, dm_ice_field_t *f)
{
    f->fixed_len = f->precision = f->scale = 0;
    for (int i = 0; i <= DM_ICE_FIXED; i++)
        if (i != DM_ICE_FIXED && i != DM_ICE_DECIMAL && !dm_ice_type_nested((dm_ice_type_t)i) &&
            !strcmp(s, type_names[i])) {
            f->type = (dm_ice_type_t)i;
            return DM_OK;
        }
    if (sscanf(s, "fixed[%d]", &f->fixed_len) == 1 && f->fixed_len > 0) {
        f->type = DM_ICE_FIXED;
        return DM_OK;
    }
    if (sscanf(s, "decimal(%d ,%d)", &f->precision, &f->scale) == 2 && f->precision >= 1 &&
        f->precision <= DM_ICE_DECIMAL_MAX_PRECISION && f->scale >= 0 && f->scale <= f->precision) {
        f->type = DM_ICE_DECIMAL;
        return DM_OK;
    }
    return DM_ERR_UNSUPPORTED;
}

size_t dm_ice_schema_skip(const dm_ice_schema_t *s, size_t i)
{
    size_t next = i + 1;
    for (int32_t c = 0; c < s->fields[i].n_children && next < s->n; c++)
        next = dm_ice_schema_skip(s, next);
    return next;
}

static json_t *fields_to_json(const dm_ice_schema_t *s, size_t *i, size_t count);

/* The type of field *i as metadata spells it (a name, or a struct, list or
 * map object); *i ends after its subtree. */
static json_t *type_to_json(const dm_ice_schema_t *s, size_t *i)
{
    const dm_ice_field_t *f = &s->fields[(*i)++];
    char tb[32];
    if (f->type == DM_ICE_STRUCT)
        return json_pack("{s:s, s:o}", "type", "struct", "fields",
                         fields_to_json(s, i, (size_t)f->n_children));
    if (f->type == DM_ICE_LIST && *i < s->n) {
        const dm_ice_field_t *e = &s->fields[*i];
        json_t *et = type_to_json(s, i);
        return json_pack("{s:s, s:i, s:o, s:b}", "type", "list", "element-id", e->id, "element", et,
                         "element-required", e->required);
    }
    if (f->type == DM_ICE_MAP && *i + 1 < s->n) {
        const dm_ice_field_t *k = &s->fields[*i];
        json_t *kt = type_to_json(s, i);
        const dm_ice_field_t *v = &s->fields[*i];
        json_t *vt = type_to_json(s, i);
        return json_pack("{s:s, s:i, s:o, s:i, s:o, s:b}", "type", "map", "key-id", k->id, "key",
                         kt, "value-id", v->id, "value", vt, "value-required", v->required);
    }
    return json_string(dm_ice_type_name(f, tb));
}

/* The fields from *i on, count of them (with their subtrees), as a metadata
 * "fields" array; *i ends after them. */
static json_t *fields_to_json(const dm_ice_schema_t *s, size_t *i, size_t count)
{
    json_t *fields = json_array();
    for (size_t k = 0; k < count && *i < s->n; k++) {
        const dm_ice_field_t *f = &s->fields[*i];
        json_t *type = type_to_json(s, i);
        json_array_append_new(fields, json_pack("{s:i, s:s, s:b, s:o}", "id", f->id, "name",
                                                f->name, "required", f->required, "type", type));
    }
    return fields;
}

json_t *dm_ice_schema_to_json(const dm_ice_schema_t *s)
{
    json_t *ids = json_array();
    size_t i = 0;
    json_t *fields = fields_to_json(s, &i, s->n);
    for (size_t k = 0; k < s->n_keys; k++)
        json_array_append_new(ids, json_integer(s->key_ids[k]));
    return json_pack("{s:s, s:i, s:o, s:o}", "type", "struct", "schema-id", s->id,
                     "identifier-field-ids", ids, "fields", fields);
}

static dm_err_t fields_from_json(const json_t *fields, dm_ice_schema_t *s, size_t *cap, int depth,
                                 dm_error_t *err);

/* Appends a field (name, id, required) whose type is read from type; a
 * struct's fields, a list's element or a map's key and value follow it. */
static dm_err_t field_from_json(const char *name, json_int_t id, bool required, const json_t *type,
                                dm_ice_schema_t *s, size_t *cap, int depth, dm_error_t *err)
{
    if (depth > 32)
        return dm_error_set(err, DM_ERR_UNSUPPORTED, "iceberg: table schema nests too deep");
    if (s->n == *cap) {
        size_t ncap = *cap * 2 + 8;
        dm_ice_field_t *nf = realloc(s->fields, ncap * sizeof(*nf));
        if (!nf) return dm_error_set(err, DM_ERR_NOMEM, "iceberg: out of memory");
        s->fields = nf, *cap = ncap;
    }
    size_t at = s->n;
    dm_ice_field_t *o = &s->fields[at];
    memset(o, 0, sizeof(*o));
    const char *kind =
        json_is_object(type) ? json_string_value(json_object_get(type, "type")) : NULL;
    dm_ice_type_t nested = !kind                     ? DM_ICE_BOOLEAN
                           : !strcmp(kind, "struct") ? DM_ICE_STRUCT
                           : !strcmp(kind, "list")   ? DM_ICE_LIST
                           : !strcmp(kind, "map")    ? DM_ICE_MAP
                                                     : DM_ICE_BOOLEAN;
    if (!name || (nested == DM_ICE_BOOLEAN &&
                  (!json_is_string(type) || parse_type(json_string_value(type), o))))
        return dm_error_set(err, DM_ERR_UNSUPPORTED,
                            "iceberg: table column %s has a type the sink does not write",
                            name ? name : "?");
    o->name = strdup(name);
    if (!o->name) return dm_error_set(err, DM_ERR_NOMEM, "iceberg: out of memory");
    o->id = (int32_t)id;
    o->required = required;
    s->n++;
    if (nested == DM_ICE_BOOLEAN) return DM_OK;
    s->fields[at].type = nested;
    if (nested == DM_ICE_STRUCT) {
        json_t *sub = json_object_get(type, "fields");
        s->fields[at].n_children = (int32_t)json_array_size(sub);
        if (!s->fields[at].n_children)
            return dm_error_set(err, DM_ERR_UNSUPPORTED,
                                "iceberg: table column %s is an empty struct", name);
        return fields_from_json(sub, s, cap, depth + 1, err);
    }
    if (nested == DM_ICE_LIST) {
        s->fields[at].n_children = 1;
        return field_from_json("element", json_integer_value(json_object_get(type, "element-id")),
                               json_is_true(json_object_get(type, "element-required")),
                               json_object_get(type, "element"), s, cap, depth + 1, err);
    }
    s->fields[at].n_children = 2;
    dm_err_t rc = field_from_json("key", json_integer_value(json_object_get(type, "key-id")), true,
                                  json_object_get(type, "key"), s, cap, depth + 1, err);
    if (rc) return rc;
    return field_from_json("value", json_integer_value(json_object_get(type, "value-id")),
                           json_is_true(json_object_get(type, "value-required")),
                           json_object_get(type, "value"), s, cap, depth + 1, err);
}

/* Appends a metadata "fields" array to s in pre-order. */
static dm_err_t fields_from_json(const json_t *fields, dm_ice_schema_t *s, size_t *cap, int depth,
                                 dm_error_t *err)
{
    for (size_t k = 0; k < json_array_size(fields); k++) {
        json_t *f = json_array_get(fields, k);
        dm_err_t rc = field_from_json(json_string_value(json_object_get(f, "name")),
                                      json_integer_value(json_object_get(f, "id")),
                                      json_is_true(json_object_get(f, "required")),
                                      json_object_get(f, "type"), s, cap, depth, err);
        if (rc) return rc;
    }
    return DM_OK;
}

dm_err_t dm_ice_schema_from_json(const json_t *j, dm_ice_schema_t *s, dm_error_t *err)
{
    memset(s, 0, sizeof(*s));
    json_t *fields = json_object_get(j, "fields"),
           *ids = json_object_get(j, "identifier-field-ids");
    s->id = (int32_t)json_integer_value(json_object_get(j, "schema-id"));
    size_t cap = json_array_size(fields) + 1;
    s->fields = calloc(cap, sizeof(dm_ice_field_t));
    s->key_ids = calloc(json_array_size(ids) + 1, sizeof(int32_t));
    if (!s->fields || !s->key_ids) {
        dm_ice_schema_free(s);
        return DM_ERR_NOMEM;
    }
    dm_err_t rc = fields_from_json(fields, s, &cap, 0, err);
    if (rc) {
        dm_ice_schema_free(s);
        return rc;
    }
    for (size_t i = 0; i < json_array_size(ids); i++)
        s->key_ids[s->n_keys++] = (int32_t)json_integer_value(json_array_get(ids, i));
    return DM_OK;
}

void dm_ice_schema_free(dm_ice_schema_t *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->fields[i].name);
    free(s->fields);
    free(s->key_ids);
    memset(s, 0, sizeof(*s));
}

dm_err_t dm_ice_schema_copy(const dm_ice_schema_t *from, dm_ice_schema_t *to)
{
    json_t *j = dm_ice_schema_to_json(from);
    dm_err_t rc = j ? dm_ice_schema_from_json(j, to, NULL) : DM_ERR_NOMEM;
    json_decref(j);
    return rc;
}

const dm_ice_field_t *dm_ice_schema_find(const dm_ice_schema_t *s, const char *name)
{
    for (size_t i = 0; i < s->n; i = dm_ice_schema_skip(s, i))
        if (!strcmp(s->fields[i].name, name)) return &s->fields[i];
    return NULL;
}

const dm_ice_field_t *dm_ice_schema_find_id(const dm_ice_schema_t *s, int32_t id)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->fields[i].id == id) return &s->fields[i];
    return NULL;
}

int32_t dm_ice_decimal_bytes(int32_t precision)
{
    unsigned __int128 top = 1; /* 10^precision */
    for (int i = 0; i < precision; i++)
        top *= 10;
    int32_t n = 1;
    /* n bytes hold signed values below 2^(8n-1). */
    while (n < 16 && ((unsigned __int128)1 << (8 * n - 1)) < top)
        n++;
    return n;
}

dm_pq_column_t dm_ice_parquet_column(const dm_ice_field_t *f)
{
    dm_pq_column_t c = {.name = f->name, .field_id = f->id, .optional = !f->required};
    switch (f->type) {
    case DM_ICE_STRUCT: c.n_children = f->n_children; break;
    case DM_ICE_LIST: c.n_children = 1, c.logical = DM_PQ_LT_LIST; break;
    case DM_ICE_MAP: c.n_children = 2, c.logical = DM_PQ_LT_MAP; break;
    case DM_ICE_BOOLEAN: c.type = DM_PQ_BOOLEAN; break;
    case DM_ICE_INT: c.type = DM_PQ_INT32; break;
    case DM_ICE_LONG: c.type = DM_PQ_INT64; break;
    case DM_ICE_FLOAT: c.type = DM_PQ_FLOAT; break;
    case DM_ICE_DOUBLE: c.type = DM_PQ_DOUBLE; break;
    case DM_ICE_DATE: c.type = DM_PQ_INT32, c.logical = DM_PQ_LT_DATE; break;
    case DM_ICE_TIMESTAMP: c.type = DM_PQ_INT64, c.logical = DM_PQ_LT_TIMESTAMP_LOCAL; break;
    case DM_ICE_TIMESTAMPTZ: c.type = DM_PQ_INT64, c.logical = DM_PQ_LT_TIMESTAMP_UTC; break;
    case DM_ICE_STRING: c.type = DM_PQ_BYTE_ARRAY, c.logical = DM_PQ_LT_STRING; break;
    case DM_ICE_BINARY: c.type = DM_PQ_BYTE_ARRAY; break;
    case DM_ICE_TIME: c.type = DM_PQ_INT64, c.logical = DM_PQ_LT_TIME; break;
    case DM_ICE_DECIMAL:
        /* The spec's choice: INT32 up to 9 digits, INT64 up to 18, else the
         * fewest bytes that hold every value of the precision. */
        c.logical = DM_PQ_LT_DECIMAL, c.precision = f->precision, c.scale = f->scale;
        if (f->precision <= 9)
            c.type = DM_PQ_INT32;
        else if (f->precision <= 18)
            c.type = DM_PQ_INT64;
        else
            c.type = DM_PQ_FIXED, c.fixed_len = dm_ice_decimal_bytes(f->precision);
        break;
    case DM_ICE_UUID: c.type = DM_PQ_FIXED, c.fixed_len = 16, c.logical = DM_PQ_LT_UUID; break;
    case DM_ICE_FIXED: c.type = DM_PQ_FIXED, c.fixed_len = f->fixed_len; break;
    }
    return c;
}

bool dm_ice_value_bytes(dm_ice_type_t t, const dm_pq_value_t *v, uint8_t out[64], uint32_t *len)
{
    switch (t) {
    case DM_ICE_BOOLEAN: out[0] = v->u.b, *len = 1; return true;
    case DM_ICE_INT:
    case DM_ICE_DATE: memcpy(out, &v->u.i32, 4), *len = 4; return true;
    case DM_ICE_FLOAT: memcpy(out, &v->u.f, 4), *len = 4; return true;
    case DM_ICE_LONG:
    case DM_ICE_TIME:
    case DM_ICE_TIMESTAMP:
    case DM_ICE_TIMESTAMPTZ: memcpy(out, &v->u.i64, 8), *len = 8; return true;
    case DM_ICE_DECIMAL: *len = dm_pq_decimal_minimal(v->u.dec, out); return true;
    case DM_ICE_STRUCT:
    case DM_ICE_LIST:
    case DM_ICE_MAP: return false;
    case DM_ICE_DOUBLE: memcpy(out, &v->u.d, 8), *len = 8; return true;
    default:
        if (v->u.s.len > 64) return false;
        memcpy(out, v->u.s.p, v->u.s.len);
        *len = v->u.s.len;
        return true;
    }
}
