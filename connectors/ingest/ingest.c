/* connectors/ingest/ingest.c — the ingest connector: a request's records,
 * validated against the source's schema, written all or none. */
#include "connectors/ingest/ingest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/emit.h"
#include "core/arena.h"
#include "core/clock.h"
#include "schema/dm_avro.h"
#include "schema/wire.h"

typedef struct adding {
    const dm_ingest_config_t *conf;
    const dm_source_env_t *env;
    dm_emit_t *emit;
    dm_arena_t *arena;
    bool array; /* the body is an array (else one object) */
} adding_t;

/* One record of the body, read straight from its bytes (no DOM), validated
 * and encoded into the batch; a failure names the record's index. */
static dm_err_t add_record(void *ctx, size_t i, const char *elem, size_t len, dm_error_t *err)
{
    adding_t *a = ctx;
    if ((int64_t)i >= a->conf->max_records || (!a->array && elem[0] != '{'))
        return dm_error_set(err, DM_ERR_INVALID, "send a JSON array of 1 to %lld records",
                            (long long)a->conf->max_records);
    dm_avro_value_t v;
    dm_err_t rc = dm_avro_from_json_text(a->env->value_schema->root, elem, len, DM_AVRO_JSON_PLAIN,
                                         a->arena, &v, err);
    if (!rc) rc = dm_emit_add(a->emit, &v, 0, err);
    if (rc) {
        if (rc != DM_ERR_NOMEM) err->code = rc = DM_ERR_SCHEMA_MISMATCH;
        dm_error_prefix(err, "record %zu", i); /* line, column and byte: within the record */
    }
    return rc;
}

static uint64_t get_be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* The codec reading values of schema id (an older version of the source's
 * value schema) as the current one, in *codec (the previous one freed). */
static dm_err_t older_codec(const dm_source_env_t *env, uint32_t id, dm_avro_codec_t **codec,
                            dm_error_t *err)
{
    dm_avro_codec_free(*codec);
    *codec = NULL;
    char subject[300];
    snprintf(subject, sizeof(subject), "%s-value", env->name);
    const dm_avro_schema_t *w =
        env->schema_version ? env->schema_version(env->ctx, subject, id) : NULL;
    if (!w)
        return dm_error_set(err, DM_ERR_SCHEMA_MISMATCH,
                            "schema id %u is not source %s's current schema id %u nor one of its "
                            "versions (fetch the latest)",
                            id, env->name, env->value_schema_id);
    dm_error_t cerr = {0};
    if (dm_avro_codec_new(w, env->value_schema, NULL, 0, codec, &cerr))
        return dm_error_set(err, DM_ERR_SCHEMA_MISMATCH,
                            "schema id %u (a version of source %s) cannot be read as its current "
                            "schema id %u: %s",
                            id, env->name, env->value_schema_id, cerr.message);
    return DM_OK;
}

/* A binary batch (DM_INGEST_BATCH_MAGIC, see ingest.h): decoded against the
 * source's schema, records a producer already delivered skipped, and the
 * rest written with the producer's next sequence number, in one
 * transaction. */
static dm_err_t push_binary(const dm_ingest_config_t *conf, const dm_source_env_t *env,
                            const uint8_t *b, size_t len, size_t *accepted, dm_error_t *err)
{
    size_t o = 4;
    if (len < o + 1 || b[o] == 0 || b[o] > 64 || len < o + 1 + b[o] + 12)
        return dm_error_set(err, DM_ERR_INVALID, "binary batch: truncated header");
    char producer[65], group[400];
    memcpy(producer, b + o + 1, b[o]);
    producer[b[o]] = '\0';
    for (const char *p = producer; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
            return dm_error_set(err, DM_ERR_INVALID,
                                "binary batch: producer id is not of a-z 0-9 - _");
    o += 1 + b[o];
    int64_t first = (int64_t)get_be(b + o, 8);
    uint32_t n = (uint32_t)get_be(b + o + 8, 4);
    o += 12;
    if (first < 0 || n == 0 || (int64_t)n > conf->max_records)
        return dm_error_set(err, DM_ERR_INVALID,
                            "binary batch: send 1 to %lld records from a sequence number >= 0",
                            (long long)conf->max_records);
    if (!env->value_schema || env->partitions <= 0)
        return dm_error_set(err, DM_ERR_AGAIN, "source '%s' is not ready: it has no %s yet",
                            env->name, env->value_schema ? "topic" : "schema");
    snprintf(group, sizeof(group), "producer.%s", producer);
    int64_t next = 0;
    if (dm_transport_group_offset(env->transport, group, env->topic, 0, &next, NULL)) next = 0;
    uint32_t skip = next <= first ? 0 : next - first >= n ? n : (uint32_t)(next - first);
    if (skip == n) { /* delivered before (a retry): nothing to write */
        *accepted = n;
        return DM_OK;
    }
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
    dm_err_t rc = DM_OK;
    int64_t now = dm_wall_ms(); /* one clock read for the batch */
    /* values checked in place by a codec that decodes nothing (compiled once
     * per batch: a few microseconds) */
    dm_avro_codec_t *check = NULL, *older = NULL; /* older: records of schema id older_id */
    uint32_t older_id = 0;
    if (!env->key_schema) rc = dm_avro_codec_new_check(env->value_schema, &check, err);
    for (uint32_t i = 0; i < n && !rc; i++) {
        if (len - o < 4) {
            rc = dm_error_set(err, DM_ERR_INVALID, "binary batch: record %u: truncated", i);
            break;
        }
        size_t rl = (size_t)get_be(b + o, 4);
        o += 4;
        if (rl > len - o || rl < DM_WIRE_HEADER || b[o] != DM_WIRE_MAGIC) {
            rc = dm_error_set(err, DM_ERR_INVALID,
                              "binary batch: record %u: not a Confluent-framed Avro value", i);
            break;
        }
        uint32_t id = (uint32_t)get_be(b + o + 1, 4);
        if (id != env->value_schema_id) {
            /* An older version of the source's schema (the producer had not
             * seen the new one yet): read as the current one, written with it. */
            if (id != older_id && (rc = older_codec(env, id, &older, err))) {
                dm_error_prefix(err, "record %u", i);
                break;
            }
            older_id = id;
            dm_avro_value_t v;
            size_t used = 0;
            rc = dm_avro_decode(older, b + o + DM_WIRE_HEADER, rl - DM_WIRE_HEADER, &used, &arena,
                                &v, err);
            if (!rc && used != rl - DM_WIRE_HEADER)
                rc = dm_error_set(err, DM_ERR_SCHEMA_MISMATCH, "%zu bytes after the value",
                                  rl - DM_WIRE_HEADER - used);
            if (!rc && i >= skip) rc = dm_emit_add(&emit, &v, now, err);
            dm_arena_reset(&arena);
            if (rc) {
                if (rc != DM_ERR_NOMEM) err->code = rc = DM_ERR_SCHEMA_MISMATCH;
                dm_error_prefix(err, "record %u", i);
            }
            o += rl;
            continue;
        }
        /* Checked against the schema, then the framed bytes are written as
         * they came (lent from the body): decoded only when the key must be
         * taken from them. */
        const uint8_t *val = b + o + DM_WIRE_HEADER;
        size_t vlen = rl - DM_WIRE_HEADER, used = 0;
        dm_avro_value_t v;
        rc = env->key_schema
                 ? dm_avro_decode_node(env->value_schema->root, val, vlen, &used, &arena, &v, err)
                 : dm_avro_decode(check, val, vlen, &used, &arena, &v, err);
        if (!rc && used != vlen)
            rc =
                dm_error_set(err, DM_ERR_SCHEMA_MISMATCH, "%zu bytes after the value", vlen - used);
        if (!rc && i >= skip)
            rc = dm_emit_add_encoded(&emit, env->key_schema ? &v : NULL, b + o, rl, now, err);
        dm_arena_reset(&arena);
        if (rc) {
            if (rc != DM_ERR_NOMEM) err->code = rc = DM_ERR_SCHEMA_MISMATCH;
            dm_error_prefix(err, "record %u", i);
        }
        o += rl;
    }
    if (!rc && o != len)
        rc = dm_error_set(err, DM_ERR_INVALID, "binary batch: %zu bytes after record %u", len - o,
                          n - 1);
    if (!rc && (rc = dm_emit_commit(&emit, group, first + n, err))) {
        dm_error_prefix(err, "writing to source '%s'", env->name);
        err->code = rc = DM_ERR_AGAIN;
        err->retriable = true;
    }
    if (!rc) *accepted = n;
    dm_avro_codec_free(check);
    dm_avro_codec_free(older);
    dm_emit_free(&emit);
    dm_arena_destroy(&arena);
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
    if (len >= 4 && !memcmp(body, DM_INGEST_BATCH_MAGIC, 4))
        return push_binary(conf, env, body, len, accepted, err);
    if (!len) return dm_error_set(err, DM_ERR_INVALID, "body is not JSON: empty body");
    if (!env->value_schema || env->partitions <= 0)
        return dm_error_set(err, DM_ERR_AGAIN, "source '%s' is not ready: it has no %s yet",
                            env->name, env->value_schema ? "topic" : "schema");
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
    adding_t a = {.conf = conf, .env = env, .emit = &emit, .arena = &arena};
    for (size_t i = 0; i < len; i++) {
        char c = ((const char *)body)[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') continue;
        a.array = c == '[';
        break;
    }
    size_t n = 0;
    dm_err_t rc = dm_avro_json_each(body, len, add_record, &a, &n, err);
    if (rc == DM_ERR_INVALID && strncmp(err->message, "JSON", 4) == 0)
        dm_error_prefix(err, "body is not JSON");
    if (!rc && n == 0)
        rc = dm_error_set(err, DM_ERR_INVALID, "send a JSON array of 1 to %lld records",
                          (long long)conf->max_records);
    if (!rc && (rc = dm_emit_commit(&emit, NULL, 0, err))) {
        dm_error_prefix(err, "writing to source '%s'", env->name);
        err->code = rc = DM_ERR_AGAIN; /* nothing was written: the client may retry */
        err->retriable = true;
    }
    if (!rc) *accepted = n;
    dm_emit_free(&emit);
    dm_arena_destroy(&arena);
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
