/* connectors/ingest/ingest.c — the ingest connector: a request's records,
 * validated against the source's schema, written all or none. */
#include "connectors/ingest/ingest.h"

#include <stdlib.h>
#include <string.h>

#include "connectors/emit.h"
#include "core/arena.h"
#include "schema/dm_avro.h"

/* Validates and encodes every record of records into emit; the first that
 * fails names its index. */
static dm_err_t add_records(const dm_source_env_t *env, const json_t *records, dm_emit_t *emit,
                            dm_arena_t *arena, dm_error_t *err)
{
    char stack[4096], *text = stack;
    size_t cap = sizeof(stack);
    dm_err_t rc = DM_OK;
    for (size_t i = 0; i < json_array_size(records) && !rc; i++) {
        const json_t *r = json_array_get(records, i);
        size_t len = json_dumpb(r, text, cap, JSON_COMPACT | JSON_ENCODE_ANY);
        if (len > cap) { /* a large record: one buffer, reused for the rest */
            char *bigger = realloc(text == stack ? NULL : text, len);
            if (!bigger) {
                rc = dm_error_set(err, DM_ERR_NOMEM, "record %zu: out of memory", i);
                break;
            }
            text = bigger;
            cap = len;
            len = json_dumpb(r, text, cap, JSON_COMPACT | JSON_ENCODE_ANY);
        }
        dm_avro_value_t v;
        rc = dm_avro_from_json_text(env->value_schema->root, text, len, DM_AVRO_JSON_PLAIN, arena,
                                    &v, err);
        if (!rc) rc = dm_emit_add(emit, &v, 0, err);
        if (rc) {
            if (rc != DM_ERR_NOMEM) err->code = rc = DM_ERR_SCHEMA_MISMATCH;
            dm_error_prefix(err, "record %zu", i);
        }
    }
    if (text != stack) free(text);
    return rc;
}

dm_err_t dm_ingest_push(const dm_ingest_config_t *conf, const dm_source_env_t *env,
                        const void *body, size_t len, size_t *accepted, dm_error_t *err)
{
    dm_error_t local = {0};
    if (!err) err = &local;
    *accepted = 0;
    if ((int64_t)len > conf->max_bytes)
        return dm_error_set(err, DM_ERR_RANGE,
                            "request body larger than %lld bytes (the source's max_bytes)",
                            (long long)conf->max_bytes);
    json_error_t jerr;
    json_t *records = len ? json_loadb(body, len, 0, &jerr) : NULL;
    if (!records)
        return dm_error_set(err, DM_ERR_INVALID, "body is not JSON: line %d column %d: %s",
                            len ? jerr.line : 1, len ? jerr.column : 1,
                            len ? jerr.text : "empty body");
    if (json_is_object(records)) records = json_pack("[o]", records);
    size_t n = json_array_size(records);
    if (!json_is_array(records) || n == 0 || (int64_t)n > conf->max_records) {
        json_decref(records);
        return dm_error_set(err, DM_ERR_INVALID, "send a JSON array of 1 to %lld records",
                            (long long)conf->max_records);
    }
    if (!env->value_schema || env->partitions <= 0) {
        json_decref(records);
        return dm_error_set(err, DM_ERR_AGAIN, "source '%s' is not ready: it has no %s yet",
                            env->name, env->value_schema ? "topic" : "schema");
    }
    /* Validate and encode every record before writing any. */
    dm_arena_t arena;
    dm_arena_init(&arena, 0);
    dm_emit_t emit = {.t = env->transport,
                      .topic = env->topic,
                      .partitions = env->partitions,
                      .schema = env->value_schema,
                      .schema_id = env->value_schema_id,
                      .key_schema = env->key_schema,
                      .key_schema_id = env->key_schema_id};
    dm_emit_init(&emit);
    dm_err_t rc = add_records(env, records, &emit, &arena, err);
    if (!rc && (rc = dm_emit_commit(&emit, NULL, 0, err))) {
        dm_error_prefix(err, "writing to source '%s'", env->name);
        err->code = rc = DM_ERR_AGAIN; /* nothing was written: the client may retry */
        err->retriable = true;
    }
    if (!rc) *accepted = n;
    dm_emit_free(&emit);
    dm_arena_destroy(&arena);
    json_decref(records);
    return rc;
}

static dm_err_t ingest_push(const void *conf, const dm_source_env_t *env, const void *body,
                            size_t len, size_t *accepted, dm_error_t *err)
{
    return dm_ingest_push(conf, env, body, len, accepted, err);
}

const dm_source_ops_t dm_ingest_source_ops = {
    .def = {.name = "ingest",
            .summary = "events POSTed to /api/v1/sources/{name}/events",
            .config = &dm_ingest_config_table,
            .config_size = sizeof(dm_ingest_config_t),
            .needs_schema = true},
    .runs_thread = false, /* filled by the API */
    .push = ingest_push,
};
