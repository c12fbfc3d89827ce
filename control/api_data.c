/* control/api_data.c — a source's records through the API: reading them
 * (`datamesh consume`) and ingesting application events.
 *
 *   GET  /api/v1/sources/{name}/records?from=earliest|latest&positions=P:O,…
 *        &limit=N&timeout_ms=T  → {"records": [{partition, offset, timestamp,
 *        key, value}], "positions": {"P": next offset, …}}; values as plain JSON.
 *        &format=jsonl: one record object a line instead; &format=values: one
 *        value a line; either ends with the line {"positions": {…}} — a
 *        reader streams the lines out without parsing them (`datamesh consume`)
 *   GET  /api/v1/sources/{name}/partitions → {"partitions": [{partition,
 *        start_offset, end_offset, records, size_bytes}], records, size_bytes}
 *   GET  /api/v1/pipelines/{name}/deadletters?limit=N → the newest N dead
 *        letters: {"items": [{partition, offset, timestamp, reason, processor,
 *        input: {topic, partition, offset}, key, value, replayed}], "total"}
 *        (replayed: put back by control/api_replay.c)
 *   POST /api/v1/sources/{name}/events  with a JSON array of records (or one
 *        object) → handed to the source's connector when it takes requests
 *        (dm_source_ops_t.push: ingest validates them against the source's
 *        schema and writes all or none); the errors become HTTP statuses here
 *   POST /api/v1/sources/{name}/changefeed  a CockroachDB changefeed's webhook
 *        body (dm_source_ops_t.receive of a running source): 200 once it is
 *        committed; 400 for a body that is not a changefeed payload, 503
 *        when it could not be written (the changefeed retries)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/source.h"
#include "control/api.h"
#include "control/auth.h"
#include "control/reconcile.h"
#include "core/clock.h"
#include "engine/task.h"
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

/* Appends a small jansson value's text to out (the rare paths below). */
static void put_jansson(dm_buf_t *out, json_t *j)
{
    char *text = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    dm_buf_append_str(out, text ? text : "null");
    free(text);
    json_decref(j);
}

/* Appends a wire-format value as plain JSON, written straight from the
 * decoded record (no DOM); null when there is none, the bytes as a string
 * when they are not in the wire format, a note when they cannot be decoded. */
static void render(data_api_t *api, const uint8_t *p, int32_t len, dm_arena_t *arena, dm_buf_t *out)
{
    if (len < 0) {
        dm_buf_append_str(out, "null");
        return;
    }
    uint32_t id;
    dm_error_t err = {0};
    if (dm_wire_get_header(p, (size_t)len, &id)) {
        put_jansson(out, json_stringn((const char *)p, (size_t)len));
        return;
    }
    const dm_avro_schema_t *s = dm_runtime_schema(api->rt, id, &err);
    dm_avro_value_t v;
    size_t mark = out->len;
    if (!s ||
        dm_avro_decode_node(s->root, p + DM_WIRE_HEADER, (size_t)len - DM_WIRE_HEADER, NULL, arena,
                            &v, &err) ||
        dm_avro_to_json(s->root, &v, DM_AVRO_JSON_PLAIN, out, &err)) {
        out->len = mark;
        put_jansson(out, json_pack("{s:s}", "undecodable", err.message));
    }
}

/* A record's key or value as a jansson value, for answers built with jansson
 * (dead letters); tmp is scratch. */
static json_t *render_json(data_api_t *api, const uint8_t *p, int32_t len, dm_arena_t *arena,
                           dm_buf_t *tmp)
{
    dm_buf_reset(tmp);
    render(api, p, len, arena, tmp);
    json_t *j = json_loadb((const char *)tmp->data, tmp->len, JSON_DECODE_ANY, NULL);
    return j ? j : json_null();
}

/* The topic of the request's source {name} described into d (free it with
 * dm_transport_description_free); its name, or NULL with the reply sent (404
 * for no such source, 409 when it has no topic yet). */
static const char *source_topic(data_api_t *api, const dm_http_request_t *req,
                                dm_http_response_t *res, dm_topic_description_t *d)
{
    const char *name = dm_http_param(req, "name");
    json_t *src = find_source(api, name, res);
    if (!src) return NULL;
    json_decref(src);
    if (dm_transport_describe_topic(dm_runtime_transport(api->rt), name, d, NULL)) {
        dm_http_error(res, 409, 40900,
                      "source '%s' has no topic yet (its producer has not started)", name);
        return NULL;
    }
    return name;
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

/* The shapes of a records answer (query argument format). */
typedef enum { FORMAT_JSON, FORMAT_JSONL, FORMAT_VALUES, FORMAT_UNKNOWN } records_format_t;

static void on_records(void *ctx, const dm_http_request_t *req, dm_http_response_t *res)
{
    data_api_t *api = ctx;
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
    const char *format = dm_http_query(req, "format");
    records_format_t fmt = !format || !strcmp(format, "json") ? FORMAT_JSON
                           : !strcmp(format, "jsonl")         ? FORMAT_JSONL
                           : !strcmp(format, "values")        ? FORMAT_VALUES
                                                              : FORMAT_UNKNOWN;
    if (fmt == FORMAT_UNKNOWN) {
        dm_http_error(res, 400, 40002,
                      "query argument format=%.40s: expected json, jsonl or values", format);
        return;
    }
    dm_topic_description_t d;
    const char *name = source_topic(api, req, res, &d);
    if (!name) return;
    dm_transport_t *t = dm_runtime_transport(api->rt);
    dm_error_t err = {0};
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
    /* The answer is written as text as it is read:
     * {"records":[{"partition":P,"offset":O,"timestamp":T,"key":K,"value":V},...],
     *  "positions":{"P":O,...}}, or as lines (format=jsonl, values) */
    dm_buf_t *out = &res->body;
    dm_buf_reset(out);
    if (fmt == FORMAT_JSON) dm_buf_append_str(out, "{\"records\":[");
    long n = 0;
    dm_transport_batch_t b = {0};
    dm_arena_t arena;
    dm_arena_init(&arena, 0);
    uint64_t deadline = dm_now_ns() + (uint64_t)timeout * 1000000;
    for (;;) {
        for (int32_t p = 0; p < parts && n < limit; p++) {
            uint64_t now = dm_now_ns();
            int wait = now < deadline ? (int)((deadline - now) / 1000000 / (uint64_t)parts) : 0;
            if (dm_transport_fetch(t, name, p, pos[p], 256 * 1024, n ? 0 : wait, &b, &err))
                continue;
            for (size_t i = 0; i < b.n && n < limit; i++) {
                const dm_record_t *r = &b.records[i];
                dm_arena_reset(&arena);
                if (fmt == FORMAT_VALUES) {
                    render(api, r->value, r->value_len, &arena, out);
                } else {
                    dm_buf_printf(out,
                                  "%s{\"partition\":%d,\"offset\":%lld,\"timestamp\":%lld,\"key\":",
                                  n && fmt == FORMAT_JSON ? "," : "", p, (long long)r->offset,
                                  (long long)r->timestamp);
                    render(api, r->key, r->key_len, &arena, out);
                    dm_buf_append_str(out, ",\"value\":");
                    render(api, r->value, r->value_len, &arena, out);
                    dm_buf_append_u8(out, '}');
                }
                if (fmt != FORMAT_JSON) dm_buf_append_u8(out, '\n');
                n++;
                pos[p] = r->offset + 1;
            }
            if (b.n && n < limit) pos[p] = b.next_offset;
        }
        if (n || dm_now_ns() >= deadline) break;
    }
    dm_buf_append_str(out, fmt == FORMAT_JSON ? "],\"positions\":{" : "{\"positions\":{");
    for (int32_t p = 0; p < parts; p++)
        dm_buf_printf(out, "%s\"%d\":%lld", p ? "," : "", p, (long long)pos[p]);
    dm_buf_append_str(out, fmt == FORMAT_JSON ? "}}" : "}}\n");
    res->status = 200;
    res->content_type = fmt == FORMAT_JSON ? "application/json" : "application/x-ndjson";
    dm_transport_batch_free(t, &b);
    dm_arena_destroy(&arena);
    free(pos);
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

static void on_changefeed(void *ctx, const dm_http_request_t *req, dm_http_response_t *res)
{
    data_api_t *api = ctx;
    const char *name = dm_http_param(req, "name");
    json_t *src = find_source(api, name, res);
    if (!src) return;
    json_decref(src);
    dm_error_t err = {0};
    size_t accepted = 0;
    if (dm_runtime_source_receive(api->rt, name, req->body, req->body_len, &accepted, &err)) {
        switch (err.code) {
        case DM_ERR_NOT_FOUND: dm_http_error(res, 409, 40902, "%s", err.message); break;
        case DM_ERR_RANGE: dm_http_error(res, 413, 41300, "%s", err.message); break;
        case DM_ERR_AGAIN: dm_http_error(res, 503, 50300, "%s", err.message); break;
        case DM_ERR_NOMEM: dm_http_error(res, 500, 50000, "%s", err.message); break;
        default: dm_http_error(res, 400, 40000, "%s", err.message); break;
        }
    } else {
        dm_http_json(res, 200, json_pack("{s:I}", "accepted", (json_int_t)accepted));
    }
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

/* GET /api/v1/sources/{name}/partitions: where each partition starts and ends. */
static void on_partitions(void *ctx, const dm_http_request_t *req, dm_http_response_t *res)
{
    data_api_t *api = ctx;
    dm_topic_description_t d;
    if (!source_topic(api, req, res, &d)) return;
    json_t *parts = json_array();
    int64_t records = 0, bytes = 0;
    for (int32_t i = 0; i < d.n_partitions; i++) {
        const dm_partition_description_t *p = &d.partitions[i];
        records += p->end_offset - p->start_offset;
        bytes += p->size_bytes;
        json_array_append_new(
            parts, json_pack("{s:i, s:I, s:I, s:I, s:I}", "partition", p->partition, "start_offset",
                             (json_int_t)p->start_offset, "end_offset", (json_int_t)p->end_offset,
                             "records", (json_int_t)(p->end_offset - p->start_offset), "size_bytes",
                             (json_int_t)p->size_bytes));
    }
    json_t *out = json_pack("{s:o, s:I, s:I, s:b, s:I}", "partitions", parts, "records",
                            (json_int_t)records, "size_bytes", (json_int_t)bytes, "compact",
                            d.config.compact, "retention_ms", (json_int_t)d.config.retention_ms);
    dm_transport_description_free(&d);
    dm_http_json(res, 200, out);
}

/* Whether the caller may see the records of every source pipeline reads: a
 * sensitive one's are for its team and admins (its dead letters are its
 * records). Replies 403 when not. */
static bool may_read_inputs(data_api_t *api, const dm_http_request_t *req, const json_t *pipeline,
                            dm_http_response_t *res)
{
    const dm_principal_t *who = req->principal;
    if (!who || who->role == DM_ROLE_ADMIN) return true;
    json_t *reads = dm_spec_pipeline_reads(pipeline);
    bool ok = true;
    size_t i;
    json_t *r;
    json_array_foreach(reads, i, r)
    {
        json_t *src = NULL;
        if (!ok || dm_catalog_source(api->store, json_string_value(r), &src, NULL)) continue;
        const json_t *md = json_object_get(src, "metadata");
        const json_t *sens = json_object_get(json_object_get(md, "labels"), "sensitive");
        const char *owner = json_string_value(json_object_get(md, "owner"));
        if ((json_is_true(sens) ||
             (json_is_string(sens) && !strcmp(json_string_value(sens), "true"))) &&
            (!owner || strcmp(owner, who->owner))) {
            dm_http_error(res, 403, 40300,
                          "the dead letters of this pipeline are records of sensitive source "
                          "'%s': for team '%s' and admins; token %s acts for team '%s'",
                          json_string_value(r), owner ? owner : "(none)", who->token, who->owner);
            ok = false;
        }
        json_decref(src);
    }
    json_decref(reads);
    return ok;
}

/* A header's value as a JSON string (null when absent). */
static json_t *header_of(const dm_record_t *r, const char *name)
{
    for (uint32_t i = 0; i < r->n_headers; i++) {
        const dm_record_header_t *h = &r->headers[i];
        if (h->key_len == strlen(name) && !memcmp(h->key, name, h->key_len))
            return h->value_len < 0 ? json_null()
                                    : json_stringn((const char *)h->value, (size_t)h->value_len);
    }
    return json_null();
}

/* GET /api/v1/pipelines/{name}/deadletters: the newest dead letters, with why. */
static void on_deadletters(void *ctx, const dm_http_request_t *req, dm_http_response_t *res)
{
    data_api_t *api = ctx;
    const char *name = dm_http_param(req, "name");
    json_t *pipeline = NULL;
    dm_error_t err = {0};
    if (dm_store_get(api->store, DM_KIND_PIPELINE, name, &pipeline, &err)) {
        dm_api_reply_error(res, &err);
        return;
    }
    bool ok = may_read_inputs(api, req, pipeline, res);
    json_decref(pipeline);
    if (!ok) return;
    const char *limit_s = dm_http_query(req, "limit");
    long limit = limit_s ? strtol(limit_s, NULL, 10) : 100;
    if (limit < 1 || limit > 1000) limit = limit < 1 ? 1 : 1000;
    char topic[320];
    snprintf(topic, sizeof(topic), "pipeline.%s.dlq", name);
    dm_transport_t *t = dm_runtime_transport(api->rt);
    dm_topic_description_t d;
    json_t *items = json_array();
    int64_t total = 0;
    if (dm_transport_describe_topic(t, topic, &d, &err)) {
        dm_http_json(
            res, 200,
            json_pack("{s:o, s:I, s:s}", "items", items, "total", (json_int_t)0, "topic", topic));
        return;
    }
    dm_transport_batch_t b = {0};
    dm_arena_t arena;
    dm_arena_init(&arena, 0);
    dm_buf_t tmp = DM_BUF_INIT;
    json_t *replayed = dm_api_replayed(t, name);
    for (int32_t i = 0; i < d.n_partitions; i++) {
        const dm_partition_description_t *p = &d.partitions[i];
        total += p->end_offset - p->start_offset;
        int64_t pos =
            p->end_offset - limit > p->start_offset ? p->end_offset - limit : p->start_offset;
        int wait_ms = 0; /* Kafka: past a transaction marker, records may come later */
        while (pos < p->end_offset) {
            if (dm_transport_fetch(t, topic, p->partition, pos, 256 * 1024, wait_ms, &b, &err))
                break;
            if (!b.n && b.next_offset <= pos) {
                if (wait_ms) break;
                wait_ms = 1000;
                continue;
            }
            wait_ms = 0;
            for (size_t k = 0; k < b.n; k++) {
                const dm_record_t *r = &b.records[k];
                dm_arena_reset(&arena);
                json_t *in_p = header_of(r, DM_DLQ_PARTITION), *in_o = header_of(r, DM_DLQ_OFFSET);
                json_t *input = json_pack(
                    "{s:o, s:I, s:I}", "topic", header_of(r, DM_DLQ_TOPIC), "partition",
                    (json_int_t)(json_is_string(in_p) ? strtoll(json_string_value(in_p), NULL, 10)
                                                      : -1),
                    "offset",
                    (json_int_t)(json_is_string(in_o) ? strtoll(json_string_value(in_o), NULL, 10)
                                                      : -1));
                json_decref(in_p);
                json_decref(in_o);
                char at[48];
                snprintf(at, sizeof(at), "%d:%lld", p->partition, (long long)r->offset);
                json_array_append_new(
                    items,
                    json_pack("{s:i, s:I, s:I, s:o, s:o, s:o, s:o, s:o, s:b}", "partition",
                              p->partition, "offset", (json_int_t)r->offset, "timestamp",
                              (json_int_t)r->timestamp, "reason", header_of(r, DM_DLQ_REASON),
                              "processor", header_of(r, DM_DLQ_PROCESSOR), "input", input, "key",
                              render_json(api, r->key, r->key_len, &arena, &tmp), "value",
                              render_json(api, r->value, r->value_len, &arena, &tmp), "replayed",
                              json_object_get(replayed, at) != NULL));
            }
            pos = b.next_offset;
        }
    }
    dm_transport_batch_free(t, &b);
    dm_transport_description_free(&d);
    json_decref(replayed);
    dm_arena_destroy(&arena);
    dm_buf_free(&tmp);
    dm_http_json(
        res, 200,
        json_pack("{s:o, s:I, s:s}", "items", items, "total", (json_int_t)total, "topic", topic));
}

dm_err_t dm_api_data_register(dm_http_server_t *http, dm_store_t *store, dm_runtime_t *rt)
{
    static data_api_t api;
    api = (data_api_t){store, rt};
    if (!rt) return DM_OK;
    dm_err_t rc = dm_http_route(http, "GET", "/api/v1/sources/{name}/records", on_records, &api);
    rc =
        rc ? rc : dm_http_route(http, "POST", "/api/v1/sources/{name}/snapshot", on_snapshot, &api);
    rc = rc ? rc : dm_http_route(http, "POST", "/api/v1/sources/{name}/events", on_events, &api);
    rc = rc ? rc
            : dm_http_route(http, "POST", "/api/v1/sources/{name}/changefeed", on_changefeed, &api);
    rc = rc ? rc
            : dm_http_route(http, "GET", "/api/v1/sources/{name}/partitions", on_partitions, &api);
    rc = rc ? rc
            : dm_http_route(http, "GET", "/api/v1/pipelines/{name}/deadletters", on_deadletters,
                            &api);
    rc = rc ? rc : dm_api_replay_register(http, store, rt);
    /* the emitter's binary batches (connectors/ingest/ingest.h); the
     * connector tells the two bodies apart */
    return rc ? rc
              : dm_http_route(http, "POST", "/api/v1/sources/{name}/events/avro", on_events, &api);
}
