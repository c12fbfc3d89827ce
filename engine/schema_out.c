/* engine/schema_out.c — Avro types as JSON, for derived output schemas. */
#include "engine/schema_out.h"

#include <stdlib.h>
#include <string.h>

static const char *logical_name(dm_avro_logical_t l)
{
    switch (l) {
    case DM_AVRO_LT_DECIMAL: return "decimal";
    case DM_AVRO_LT_UUID: return "uuid";
    case DM_AVRO_LT_DATE: return "date";
    case DM_AVRO_LT_TIME_MILLIS: return "time-millis";
    case DM_AVRO_LT_TIME_MICROS: return "time-micros";
    case DM_AVRO_LT_TIMESTAMP_MILLIS: return "timestamp-millis";
    case DM_AVRO_LT_TIMESTAMP_MICROS: return "timestamp-micros";
    case DM_AVRO_LT_LOCAL_TIMESTAMP_MILLIS: return "local-timestamp-millis";
    case DM_AVRO_LT_LOCAL_TIMESTAMP_MICROS: return "local-timestamp-micros";
    case DM_AVRO_LT_DURATION: return "duration";
    case DM_AVRO_LT_NONE: break;
    }
    return NULL;
}

static void add_logical(json_t *o, const dm_avro_node_t *n)
{
    const char *l = logical_name(n->logical);
    if (!l) return;
    json_object_set_new(o, "logicalType", json_string(l));
    if (n->logical == DM_AVRO_LT_DECIMAL) {
        json_object_set_new(o, "precision", json_integer(n->precision));
        json_object_set_new(o, "scale", json_integer(n->scale));
    }
}

static json_t *named_head(const dm_avro_node_t *n, const char *type)
{
    return json_pack("{s:s, s:s, s:s}", "type", type, "name", n->name, "namespace",
                     n->space ? n->space : "");
}

json_t *dm_schema_type_json(const dm_avro_node_t *n, json_t *seen)
{
    bool named = n->type == DM_AVRO_RECORD || n->type == DM_AVRO_ENUM || n->type == DM_AVRO_FIXED;
    if (named) {
        if (json_object_get(seen, n->fullname)) return json_string(n->fullname);
        json_object_set_new(seen, n->fullname, json_true());
    }
    switch (n->type) {
    case DM_AVRO_RECORD: {
        json_t *o = named_head(n, "record");
        json_t *fields = json_array();
        for (uint32_t i = 0; i < n->n_fields; i++) {
            const dm_avro_field_t *f = &n->fields[i];
            json_t *jf = json_pack("{s:s, s:o}", "name", f->name, "type",
                                   dm_schema_type_json(f->type, seen));
            /* Keep a null default of a union starting with null: what makes
             * adding such a field compatible. */
            if (f->has_default && f->type->type == DM_AVRO_UNION && f->type->n_branches &&
                f->type->branches[0]->type == DM_AVRO_NULL)
                json_object_set_new(jf, "default", json_null());
            json_array_append_new(fields, jf);
        }
        json_object_set_new(o, "fields", fields);
        return o;
    }
    case DM_AVRO_ENUM: {
        json_t *o = named_head(n, "enum");
        json_t *syms = json_array();
        for (uint32_t i = 0; i < n->n_symbols; i++)
            json_array_append_new(syms, json_string(n->symbols[i]));
        json_object_set_new(o, "symbols", syms);
        if (n->enum_default >= 0)
            json_object_set_new(o, "default", json_string(n->symbols[n->enum_default]));
        return o;
    }
    case DM_AVRO_FIXED: {
        json_t *o = named_head(n, "fixed");
        json_object_set_new(o, "size", json_integer(n->size));
        add_logical(o, n);
        return o;
    }
    case DM_AVRO_ARRAY:
        return json_pack("{s:s, s:o}", "type", "array", "items",
                         dm_schema_type_json(n->items, seen));
    case DM_AVRO_MAP:
        return json_pack("{s:s, s:o}", "type", "map", "values",
                         dm_schema_type_json(n->items, seen));
    case DM_AVRO_UNION: {
        json_t *a = json_array();
        for (uint32_t i = 0; i < n->n_branches; i++)
            json_array_append_new(a, dm_schema_type_json(n->branches[i], seen));
        return a;
    }
    default: break;
    }
    const char *name = dm_avro_type_name(n->type);
    if (n->logical == DM_AVRO_LT_NONE) return json_string(name);
    json_t *o = json_pack("{s:s}", "type", name);
    add_logical(o, n);
    return o;
}

json_t *dm_schema_expr_type_json(dm_expr_type_t t, bool nullable)
{
    json_t *base;
    switch (t) {
    case DM_EXPR_BOOL: base = json_string("boolean"); break;
    case DM_EXPR_LONG: base = json_string("long"); break;
    case DM_EXPR_DOUBLE: base = json_string("double"); break;
    case DM_EXPR_STRING: base = json_string("string"); break;
    case DM_EXPR_TIMESTAMP:
        base = json_pack("{s:s, s:s}", "type", "long", "logicalType", "timestamp-millis");
        break;
    case DM_EXPR_NULL:
    default: return json_string("null");
    }
    return nullable ? json_pack("[s, o]", "null", base) : base;
}

dm_err_t dm_schema_from_json(const json_t *doc, const char *what, dm_avro_schema_t **out,
                             dm_error_t *err)
{
    char *text = json_dumps(doc, JSON_COMPACT);
    if (!text) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    dm_err_t rc = dm_avro_schema_parse(text, strlen(text), out, err);
    free(text);
    if (rc) dm_error_prefix(err, "%s: derived output schema", what);
    return rc;
}
