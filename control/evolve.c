/* control/evolve.c — the reader schemas pipelines keep across schema
 * versions of their sources (see evolve.h). */
#include "control/evolve.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void dm_evolve_reader_subject(const char *pipeline, char *out, size_t cap)
{
    snprintf(out, cap, "pipeline.%s.input", pipeline);
}

/* The record inside a field type: the type itself, or the record branch of
 * a union ([null, record]); NULL otherwise. */
static json_t *record_in(json_t *type)
{
    if (json_is_object(type) &&
        !strcmp(json_string_value(json_object_get(type, "type")) ?: "", "record"))
        return type;
    if (!json_is_array(type)) return NULL;
    size_t i;
    json_t *b;
    json_array_foreach(type, i, b)
    {
        json_t *r = record_in(b);
        if (r) return r;
    }
    return NULL;
}

static json_t *field_named(json_t *fields, const char *name)
{
    size_t i;
    json_t *f;
    json_array_foreach(fields, i, f)
    {
        const char *n = json_string_value(json_object_get(f, "name"));
        if (n && !strcmp(n, name)) return f;
    }
    return NULL;
}

/* type made nullable with null first, so that its default can be null. */
static json_t *nullable(json_t *type)
{
    json_t *u = json_array();
    json_array_append_new(u, json_string("null"));
    if (json_is_array(type)) {
        size_t i;
        json_t *b;
        json_array_foreach(type, i,
                           b) if (!(json_is_string(b) && !strcmp(json_string_value(b), "null")))
            json_array_append(u, b);
    } else if (!(json_is_string(type) && !strcmp(json_string_value(type), "null"))) {
        json_array_append(u, type);
    }
    return u;
}

/* Adds to latest (a record, modified) the fields of older it lacks. */
static int merge_record(json_t *latest, json_t *older, int depth)
{
    json_t *fields = json_object_get(latest, "fields");
    json_t *old_fields = json_object_get(older, "fields");
    if (!json_is_array(fields) || !json_is_array(old_fields) || depth > 32) return 0;
    int added = 0;
    size_t i;
    json_t *of;
    json_array_foreach(old_fields, i, of)
    {
        const char *name = json_string_value(json_object_get(of, "name"));
        if (!name) continue;
        json_t *f = field_named(fields, name);
        if (f) {
            json_t *r = record_in(json_object_get(f, "type"));
            json_t *o = record_in(json_object_get(of, "type"));
            if (r && o) added += merge_record(r, o, depth + 1);
            continue;
        }
        json_t *kept = json_pack("{s:s, s:o, s:n}", "name", name, "type",
                                 nullable(json_object_get(of, "type")), "default");
        const json_t *doc = json_object_get(of, "doc");
        json_object_set_new(kept, "doc",
                            json_string(json_is_string(doc) ? json_string_value(doc)
                                                            : "dropped from the source; kept as "
                                                              "null (schema_change: lenient)"));
        json_array_append_new(fields, kept);
        added++;
    }
    return added;
}

dm_err_t dm_evolve_lenient_reader(const char *latest, const char *older, char **out, int *dropped,
                                  dm_error_t *err)
{
    *out = NULL;
    *dropped = 0;
    json_error_t je;
    json_t *l = json_loads(latest, JSON_DECODE_ANY, &je);
    if (!l) return dm_error_set(err, DM_ERR_INVALID, "latest schema is not JSON: %s", je.text);
    json_t *o = older ? json_loads(older, JSON_DECODE_ANY, &je) : NULL;
    if (older && !o) {
        json_decref(l);
        return dm_error_set(err, DM_ERR_INVALID, "the pipeline's reader schema is not JSON: %s",
                            je.text);
    }
    json_t *lr = record_in(l), *orr = o ? record_in(o) : NULL;
    if (!lr || lr != l) {
        json_decref(l);
        json_decref(o);
        return dm_error_set(err, DM_ERR_INVALID, "latest schema is not a record");
    }
    if (orr) *dropped = merge_record(lr, orr, 0);
    *out = json_dumps(l, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(l);
    json_decref(o);
    return *out ? DM_OK : dm_error_set(err, DM_ERR_NOMEM, "out of memory");
}
