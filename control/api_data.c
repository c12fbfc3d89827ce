/* control/api_data.c — a source's records through the API: reading them
 * (`datamesh consume`) and ingesting application events.
 *
 *   GET  /api/v1/sources/{name}/records?from=earliest|latest&positions=P:O,…
 *        &limit=N&timeout_ms=T  → {"records": [{partition, offset, timestamp,
 *        key, value}], "positions": {"P": next offset, …}}; values as plain JSON
 *   POST /api/v1/sources/{name}/events  with a JSON array of records (or one
 *        object) → handed to the source's connector when it takes requests
 *        (dm_source_ops_t.push: ingest validates them against the source's
 *        schema and writes all or none); the errors become HTTP statuses here
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/source.h"
#include "control/api.h"
#include "control/reconcile.h"
#include "core/clock.h"
#include "schema/dm_avro.h"
#include "schema/wire.h"

typedef struct data_api {
    dm_store_t *store;
    dm_runtime_t *rt;
} data_api_t;

#define MAX_LIMIT      10000
#define MAX_TIMEOUT_MS 30000

/* The catalog entry of a source (declared or derived), or NULL (reply sent). */
static json_t *find_source(data_api_t *api, const char *name, dm_http_response_t *res)
{
    json_t *found = NULL;
    dm_error_t err = {0};
    if (dm_catalog_source(api->store, name, &found, &err) && err.code != DM_ERR_NOT_FOUND) {
        dm_api_reply_error(res, &err);
        return NULL;
    }
    if (!found) dm_http_error(res, 404, 40401, "source '%s' not found", name);
    return found;
}

/* Renders a wire-format value as plain JSON (or null / a note when it is not one). */
static json_t *render(data_api_t *api, const uint8_t *p, int32_t len, dm_arena_t *arena,
                      dm_buf_t *tmp)
{
    if (len < 0) return json_null();
    uint32_t id;
    dm_error_t err = {0};
    if (dm_wire_get_header(p, (size_t)len, &id)) return json_stringn((const char *)p, (size_t)len);
    const dm_avro_schema_t *s = dm_runtime_schema(api->rt, id, &err);
    dm_avro_value_t v;
    dm_buf_reset(tmp);
    if (!s ||
        dm_avro_decode_node(s->root, p + DM_WIRE_HEADER, (size_t)len - DM_WIRE_HEADER, NULL, arena,
                            &v, &err) ||
        dm_avro_to_json(s->root, &v, DM_AVRO_JSON_PLAIN, tmp, &err))
        return json_pack("{s:s}", "undecodable", err.message);
    json_t *j = json_loadb((const char *)tmp->data, tmp->len, JSON_DECODE_ANY, NULL);
    return j ? j : json_null();
}

/* A whole-number query argument in [min, max] (def when absent); false with a
 * 400 naming it otherwise. */
static bool query_long(const dm_http_request_t *req, const char *arg, long def, long min, long max,
                       long *out, dm_http_response_t *res)
{
    const char *s = dm_http_query(req, arg);
    *out = def;
    if (!s) return true;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < min || v > max) {
        dm_http_error(res, 400, 40002, "query argument %s=%.40s: expected a whole number %ld..%ld",
                      arg, s, min, max);
        return false;
    }
    *out = v;
    return true;
}

/* positions=P:O,P:O (a previous answer's positions) into pos; false with a 400. */
static bool parse_positions(const char *given, int32_t parts, int64_t *pos, dm_http_response_t *res)
{
    for (const char *s = given; s && *s;) {
        char *end;
        errno = 0;
        long p = strtol(s, &end, 10);
        long long o = 0;
        bool ok = end != s && *end == ':' && !errno;
        if (ok) {
            const char *at = end + 1;
            o = strtoll(at, &end, 10);
            ok = end != at && !errno && (*end == ',' || !*end) && p >= 0 && p < parts && o >= 0;
        }
        if (!ok) {
            dm_http_error(res, 400, 40002,
                          "query argument positions=%.60s: expected PARTITION:OFFSET,… with "
                          "partitions 0..%d and offsets >= 0",
                          given, parts - 1);
            return false;
        }
        pos[p] = o;
        s = *end == ',' ? end + 1 : end;
    }
    return true;
}

static void on_records(void *ctx, const dm_http_request_t *req, dm_http_response_t *res)
{
    data_api_t *api = ctx;
    const char *name = dm_http_param(req, "name");
    const char *from = dm_http_query(req, "from");
    long limit, timeout;
    if (from && strcmp(from, "earliest") && strcmp(from, "latest") && strcmp(from, "beginning")) {
        dm_http_error(res, 400, 40002, "query argument from=%.40s: expected earliest or latest",
                      from);
        return;
    }
    if (!query_long(req, "limit", 100, 1, MAX_LIMIT, &limit, res) ||
        !query_long(req, "timeout_ms", 0, 0, MAX_TIMEOUT_MS, &timeout, res))
        return;
    json_t *src = find_source(api, name, res);
    if (!src) return;
    json_decref(src);
    dm_transport_t *t = dm_runtime_transport(api->rt);
    dm_topic_description_t d;
    dm_error_t err = {0};
    if (dm_transport_describe_topic(t, name, &d, &err)) {
        dm_http_error(res, 409, 40900,
                      "source '%s' has no topic yet (its producer has not started)", name);
        return;
    }
    int32_t parts = d.n_partitions;
    dm_transport_description_free(&d);
    int64_t *pos = calloc((size_t)parts, sizeof(int64_t));
    for (int32_t p = 0; p < parts; p++) {
        int64_t start, end;
        dm_transport_offsets(t, name, p, &start, &end, &err);
        pos[p] = from && !strcmp(from, "latest") ? end : start;
    }
    /* positions=P:O,P:O continues a previous read. */
    if (!parse_positions(dm_http_query(req, "positions"), parts, pos, res)) {
        free(pos);
        return;
    }
    json_t *records = json_array();
    dm_transport_batch_t b = {0};
    dm_arena_t arena;
    dm_arena_init(&arena, 0);
    dm_buf_t tmp = DM_BUF_INIT;
    uint64_t deadline = dm_now_ns() + (uint64_t)timeout * 1000000;
    for (;;) {
        for (int32_t p = 0; p < parts && (long)json_array_size(records) < limit; p++) {
            uint64_t now = dm_now_ns();
            int wait = now < deadline ? (int)((deadline - now) / 1000000 / (uint64_t)parts) : 0;
            if (dm_transport_fetch(t, name, p, pos[p], 256 * 1024,
                                   json_array_size(records) ? 0 : wait, &b, &err))
                continue;
            for (size_t i = 0; i < b.n && (long)json_array_size(records) < limit; i++) {
                const dm_record_t *r = &b.records[i];
                dm_arena_reset(&arena);
                json_t *key = render(api, r->key, r->key_len, &arena, &tmp);
                json_t *value = render(api, r->value, r->value_len, &arena, &tmp);
                json_array_append_new(records, json_pack("{s:i, s:I, s:I, s:o, s:o}", "partition",
                                                         p, "offset", (json_int_t)r->offset,
                                                         "timestamp", (json_int_t)r->timestamp,
                                                         "key", key, "value", value));
                pos[p] = r->offset + 1;
            }
            if (b.n && (long)json_array_size(records) < limit) pos[p] = b.next_offset;
        }
        if (json_array_size(records) || dm_now_ns() >= deadline) break;
    }
    json_t *positions = json_object();
    for (int32_t p = 0; p < parts; p++) {
        char k[16];
        snprintf(k, sizeof(k), "%d", p);
        json_object_set_new(positions, k, json_integer(pos[p]));
    }
    dm_transport_batch_free(t, &b);
    dm_arena_destroy(&arena);
    dm_buf_free(&tmp);
    free(pos);
    dm_http_json(res, 200, json_pack("{s:o, s:o}", "records", records, "positions", positions));
}

/* Names of the connectors whose sources take events through the API. */
static void push_connectors(char *out, size_t cap)
{
    size_t n, o = 0;
    const dm_source_ops_t *const *list = dm_source_ops_list(&n);
    out[0] = '\0';
    for (size_t i = 0; i < n && o < cap; i++)
        if (list[i]->push)
            o += (size_t)snprintf(out + o, cap - o, "%s%s", o ? ", " : "", list[i]->def.name);
}

static void on_events(void *ctx, const dm_http_request_t *req, dm_http_response_t *res)
{
    data_api_t *api = ctx;
    const char *name = dm_http_param(req, "name");
    json_t *src = find_source(api, name, res);
    if (!src) return;
    const json_t *spec = json_object_get(src, "spec");
    const char *connector = json_string_value(json_object_get(spec, "connector"));
    const dm_source_ops_t *ops = dm_source_ops_find(connector);
    if (!ops || !ops->push) {
        char takes[128];
        push_connectors(takes, sizeof(takes));
        bool derived = !connector || !strcmp(connector, "derived");
        dm_http_error(res, 409, 40901,
                      "source '%s' is filled by its %s %s; only %s sources take events", name,
                      derived ? "pipeline" : connector, derived ? "" : "connector", takes);
        json_decref(src);
        return;
    }
    dm_error_t err = {0};
    size_t accepted = 0;
    if (dm_runtime_source_push(api->rt, name, spec, req->body, req->body_len, &accepted, &err)) {
        switch (err.code) {
        case DM_ERR_RANGE: dm_http_error(res, 413, 41300, "%s", err.message); break;
        case DM_ERR_AGAIN: dm_http_error(res, 503, 50300, "%s", err.message); break;
        case DM_ERR_NOMEM: dm_http_error(res, 500, 50000, "%s", err.message); break;
        case DM_ERR_SCHEMA_MISMATCH: dm_http_error(res, 400, 40001, "%s", err.message); break;
        default: dm_http_error(res, 400, 40000, "%s", err.message); break;
        }
    } else {
        dm_http_json(res, 200, json_pack("{s:I}", "accepted", (json_int_t)accepted));
    }
    json_decref(src);
}

/* POST /api/v1/sources/{name}/snapshot[?table=schema.table][&from=K&to=K]: a
 * snapshot of a postgres source's tables, or of a key range of one (a body
 * {"table": ..., "from": ..., "to": ...} works too). */
static void on_snapshot(void *ctx, const dm_http_request_t *req, dm_http_response_t *res)
{
    data_api_t *api = ctx;
    const char *name = dm_http_param(req, "name");
    const char *table = dm_http_query(req, "table");
    json_t *body =
        req->body_len ? json_loadb((const char *)req->body, req->body_len, 0, NULL) : NULL;
    const char *from = dm_http_query(req, "from"), *to = dm_http_query(req, "to");
    if (!table) table = json_string_value(json_object_get(body, "table"));
    if (!from) from = json_string_value(json_object_get(body, "from"));
    if (!to) to = json_string_value(json_object_get(body, "to"));
    dm_error_t err = {0};
    if (dm_runtime_source_snapshot(api->rt, name, table, from, to, &err))
        dm_api_reply_error(res, &err);
    else
        dm_http_json(res, 202,
                     json_pack("{s:s, s:s, s:s}", "source", name, "table", table ? table : "*",
                               "state", "requested"));
    json_decref(body);
}

dm_err_t dm_api_data_register(dm_http_server_t *http, dm_store_t *store, dm_runtime_t *rt)
{
    static data_api_t api;
    api = (data_api_t){store, rt};
    if (!rt) return DM_OK;
    dm_err_t rc = dm_http_route(http, "GET", "/api/v1/sources/{name}/records", on_records, &api);
    rc =
        rc ? rc : dm_http_route(http, "POST", "/api/v1/sources/{name}/snapshot", on_snapshot, &api);
    return rc ? rc : dm_http_route(http, "POST", "/api/v1/sources/{name}/events", on_events, &api);
}
