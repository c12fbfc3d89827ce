/* control/api_replay.c — dead letters put back into their pipeline after a fix.
 *
 *   POST /api/v1/pipelines/{name}/deadletters/replay
 *        {"positions": ["P:O" | {partition, offset}, …]}  the chosen dead letters, or
 *        {"reason": "text"}   every dead letter whose reason contains text, or
 *        {"all": true}        every dead letter;
 *        "force": true        also those replayed before
 *        → {"replayed": [{position, partition, reason}], "skipped": [{position, why}],
 *           "count", "skipped_total", "topic": "pipeline.NAME.replay", "more"}
 *        (skipped lists the first MAX_LISTED)
 *        (at most MAX_REPLAY records a request: "more": true when there are
 *        more to replay; asking again goes on, the replayed ones skipped)
 *
 * A dead letter holds the input record as the task read it (key, value with
 * its schema id, timestamp) and, in headers, the topic/partition/offset it was
 * read from. Replay appends those records to the pipeline's replay topic,
 * which the first stage of its current plan reads as one more input
 * (control/plan.h: plan->replay), so the records go through the steps as they
 * are now: a fixed filter passes them, a still-broken one dead-letters them
 * again. Replay partition = the input partition modulo the stage's tasks, the
 * task that read the record the first time.
 *
 * What was replayed is recorded in the replay topic itself: each record
 * carries header dm.replay.of = "P:O", the dead letter's position, written in
 * the same transaction as the record, so a dead letter is replayed once
 * (unless force) even across a crash or a controller restart. Requests are
 * serialized here so two cannot both see a dead letter as not replayed.
 *
 * Only records of the first stage's inputs can be put back: a dead letter of a
 * later stage (read from a re-key topic), of a join's other side or of a sink
 * is refused with why (explicit positions: 409, nothing replayed; by reason or
 * all: listed under skipped).
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/api.h"
#include "core/arena.h"
#include "engine/task.h"

#define DM_REPLAY_OF "dm.replay.of"
#define MAX_REPLAY   100000 /* records per request; "more": true says ask again */
#define MAX_LISTED   1000   /* skipped ones listed in an answer */

typedef struct replay_api {
    dm_store_t *store;
    dm_runtime_t *rt;
} replay_api_t;

static pthread_mutex_t replay_lock = PTHREAD_MUTEX_INITIALIZER;

/* A header's value (NUL-terminated into buf), or NULL when the record has none. */
static const char *header_text(const dm_record_t *r, const char *name, char *buf, size_t size)
{
    size_t n = strlen(name);
    for (uint32_t i = 0; i < r->n_headers; i++) {
        const dm_record_header_t *h = &r->headers[i];
        if (h->key_len != n || memcmp(h->key, name, n) || h->value_len < 0) continue;
        size_t len = (size_t)h->value_len < size - 1 ? (size_t)h->value_len : size - 1;
        memcpy(buf, h->value, len);
        buf[len] = '\0';
        return buf;
    }
    return NULL;
}

/* Calls fn with every record of topic (all partitions, oldest first); stops
 * at fn's non-zero answer, which it returns. */
static int each_record(dm_transport_t *t, const char *topic,
                       int (*fn)(void *ctx, int32_t partition, const dm_record_t *r), void *ctx,
                       dm_error_t *err)
{
    dm_topic_description_t d;
    if (dm_transport_describe_topic(t, topic, &d, NULL)) return 0; /* none yet: no records */
    dm_transport_batch_t b = {0};
    int stop = 0;
    for (int32_t i = 0; !stop && i < d.n_partitions; i++) {
        const dm_partition_description_t *p = &d.partitions[i];
        int64_t pos = p->start_offset;
        int wait_ms = 0;
        while (!stop && pos < p->end_offset) {
            if (dm_transport_fetch(t, topic, p->partition, pos, 1 << 20, wait_ms, &b, err)) {
                stop = -1;
                break;
            }
            if (b.next_offset <= pos && !b.n) {
                /* Kafka: what lies past a transaction's marker may not have reached the
                 * consumer yet; wait for it once before taking this as the end */
                if (wait_ms) break;
                wait_ms = 1000;
                continue;
            }
            wait_ms = 0;
            for (size_t k = 0; !stop && k < b.n; k++)
                if (b.records[k].offset >= pos) stop = fn(ctx, p->partition, &b.records[k]);
            pos = b.next_offset;
        }
    }
    dm_transport_batch_free(t, &b);
    dm_transport_description_free(&d);
    return stop;
}

static int note_replayed(void *ctx, int32_t partition, const dm_record_t *r)
{
    char of[64];
    if (header_text(r, DM_REPLAY_OF, of, sizeof(of)))
        json_object_set_new(ctx, of, json_integer(partition));
    return 0;
}

json_t *dm_api_replayed(dm_transport_t *t, const char *pipeline)
{
    char topic[320];
    snprintf(topic, sizeof(topic), "pipeline.%s.replay", pipeline);
    json_t *set = json_object();
    dm_error_t err = {0};
    if (set) each_record(t, topic, note_replayed, set, &err); /* none yet: an empty set */
    return set;
}

/* ---- choosing ------------------------------------------------------------------------------ */

/* What one request asks for, and what it finds while reading the dead letters. */
typedef struct choice {
    json_t *positions;      /* "P:O" → false, true once found (explicit positions) */
    const char *reason;     /* substring of the reason (NULL: any) */
    bool force;             /* replay again what was replayed */
    json_t *allowed;        /* topic → true: inputs of the plan's first stage */
    json_t *done;           /* "P:O" → replay partition: replayed before */
    int32_t partitions;     /* of the replay topic */
    dm_arena_t arena;       /* copies of the records to write */
    dm_record_t *recs;      /* to write, in dead-letter order */
    int32_t *rec_partition; /* each one's replay partition */
    size_t n, cap;
    bool more;        /* stopped at MAX_REPLAY */
    size_t n_skipped; /* all of them; the first MAX_LISTED are listed */
    json_t *replayed, *skipped, *refused;
    dm_error_t *err;
} choice_t;

static int skip(choice_t *c, json_t *to, const char *pos, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Notes a dead letter not replayed, and why (to: c->skipped or c->refused). */
static int skip(choice_t *c, json_t *to, const char *pos, const char *fmt, ...)
{
    if (to == c->skipped && c->n_skipped++ >= MAX_LISTED) return 0;
    char why[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    json_array_append_new(to, json_pack("{s:s, s:s}", "position", pos, "why", why));
    return 0;
}

/* Takes one dead letter (dlq partition, record) when the request chose it. */
static int consider(void *ctx, int32_t partition, const dm_record_t *r)
{
    choice_t *c = ctx;
    char pos[48], reason[512] = "", topic[320] = "", in_part[24] = "";
    snprintf(pos, sizeof(pos), "%d:%lld", partition, (long long)r->offset);
    if (c->positions) {
        if (!json_object_get(c->positions, pos)) return 0;
        json_object_set_new(c->positions, pos, json_true());
    }
    header_text(r, DM_DLQ_REASON, reason, sizeof(reason));
    if (c->reason && !strstr(reason, c->reason)) return 0;
    if (!header_text(r, DM_DLQ_TOPIC, topic, sizeof(topic)) ||
        !header_text(r, DM_DLQ_PARTITION, in_part, sizeof(in_part)))
        return skip(c, c->positions ? c->refused : c->skipped, pos,
                    "the dead letter names no input topic and partition");
    if (!json_object_get(c->allowed, topic))
        return skip(c, c->positions ? c->refused : c->skipped, pos,
                    "it was read from %s, which is not an input of the pipeline's first stage (a "
                    "later stage's, a join's other side's or a sink's dead letter cannot be put "
                    "back)",
                    topic);
    json_t *before = json_object_get(c->done, pos);
    if (before && !c->force)
        return skip(c, c->skipped, pos,
                    "replayed already (into partition %lld of the replay topic); force: true "
                    "replays it again",
                    (long long)json_integer_value(before));
    if (c->n == MAX_REPLAY) {
        c->more = true;
        return 1;
    }
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        dm_record_t *recs = realloc(c->recs, cap * sizeof(*recs));
        if (recs) c->recs = recs;
        int32_t *parts = recs ? realloc(c->rec_partition, cap * sizeof(*parts)) : NULL;
        if (parts) c->rec_partition = parts;
        if (!recs || !parts) return dm_error_set(c->err, DM_ERR_NOMEM, "out of memory"), -1;
        c->cap = cap;
    }
    dm_record_header_t *h = dm_arena_alloc(&c->arena, sizeof(*h));
    char *of = dm_arena_strdup(&c->arena, pos);
    uint8_t *key = r->key_len > 0 ? dm_arena_memdup(&c->arena, r->key, (size_t)r->key_len) : NULL;
    uint8_t *val =
        r->value_len > 0 ? dm_arena_memdup(&c->arena, r->value, (size_t)r->value_len) : NULL;
    if (!h || !of || (r->key_len > 0 && !key) || (r->value_len > 0 && !val))
        return dm_error_set(c->err, DM_ERR_NOMEM, "out of memory"), -1;
    *h = (dm_record_header_t){DM_REPLAY_OF, (uint32_t)strlen(DM_REPLAY_OF), (const uint8_t *)of,
                              (int32_t)strlen(of)};
    int32_t to = (int32_t)(strtol(in_part, NULL, 10) % c->partitions);
    if (to < 0) to = 0;
    c->rec_partition[c->n] = to;
    c->recs[c->n++] = (dm_record_t){.timestamp = r->timestamp,
                                    .key = key,
                                    .key_len = r->key_len,
                                    .value = val,
                                    .value_len = r->value_len,
                                    .headers = h,
                                    .n_headers = 1};
    json_array_append_new(c->replayed, json_pack("{s:s, s:i, s:s}", "position", pos, "partition",
                                                 (int)to, "reason", reason));
    return 0;
}

/* ---- the request ------------------------------------------------------------------------- */

/* Fills c->positions from the body's "positions"; false with a 400 sent. */
static bool read_positions(const json_t *list, choice_t *c, dm_http_response_t *res)
{
    if (json_array_size(list) > MAX_REPLAY) {
        dm_http_error(res, 400, 40001, "positions: at most %d per request, not %zu", MAX_REPLAY,
                      json_array_size(list));
        return false;
    }
    if (!json_is_array(list) || !json_array_size(list)) {
        dm_http_error(res, 400, 40001,
                      "positions: expected a non-empty array of \"PARTITION:OFFSET\" strings or "
                      "{partition, offset} objects (as GET …/deadletters lists them)");
        return false;
    }
    c->positions = json_object();
    size_t i;
    const json_t *v;
    json_array_foreach(list, i, v)
    {
        long long p = -1, o = -1;
        char tail = 0;
        if (json_is_string(v)) {
            if (sscanf(json_string_value(v), "%lld:%lld%c", &p, &o, &tail) != 2) p = -1;
        } else if (json_is_object(v) && json_is_integer(json_object_get(v, "partition")) &&
                   json_is_integer(json_object_get(v, "offset"))) {
            p = json_integer_value(json_object_get(v, "partition"));
            o = json_integer_value(json_object_get(v, "offset"));
        }
        if (p < 0 || o < 0 || p > INT32_MAX) {
            dm_http_error(res, 400, 40001,
                          "positions[%zu]: expected \"PARTITION:OFFSET\" (e.g. \"0:12\") or "
                          "{\"partition\": 0, \"offset\": 12}",
                          i);
            return false;
        }
        char key[48];
        snprintf(key, sizeof(key), "%lld:%lld", p, o);
        json_object_set_new(c->positions, key, json_false());
    }
    return true;
}

/* The topics the first stage of the pipeline's current plan reads; NULL with the reply sent. */
static json_t *first_stage_inputs(replay_api_t *api, const json_t *doc, const char *name,
                                  dm_http_response_t *res)
{
    dm_error_t err = {0};
    json_t *plan = dm_runtime_plan(api->rt, doc, NULL, NULL, NULL, &err);
    if (!plan) {
        dm_error_prefix(&err,
                        "pipeline %s: its plan does not compile now, so nothing can be "
                        "replayed through it",
                        name);
        dm_api_reply_error(res, &err);
        return NULL;
    }
    json_t *allowed = json_object();
    const json_t *s0 = json_array_get(json_object_get(plan, "stages"), 0);
    const char *in = json_string_value(json_object_get(json_object_get(s0, "input"), "topic"));
    if (in) json_object_set_new(allowed, in, json_true());
    size_t i;
    const json_t *m;
    json_array_foreach(json_object_get(s0, "more"), i, m)
    {
        const char *t = json_string_value(json_object_get(m, "topic"));
        if (t) json_object_set_new(allowed, t, json_true());
    }
    /* a replayed record dead-lettered again names the replay topic */
    const char *replay = json_string_value(json_object_get(plan, "replay"));
    if (replay) json_object_set_new(allowed, replay, json_true());
    json_decref(plan);
    return allowed;
}

/* Writes the chosen records, all or none. */
static dm_err_t write_all(dm_transport_t *t, const char *topic, choice_t *c, dm_error_t *err)
{
    if (!c->n) return DM_OK;
    dm_transport_txn_t *txn = NULL;
    dm_err_t rc = dm_transport_txn_begin(t, &txn, err);
    dm_record_t *part = rc ? NULL : malloc(c->n * sizeof(*part));
    if (!rc && !part) rc = dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    for (int32_t p = 0; !rc && p < c->partitions; p++) {
        size_t k = 0;
        for (size_t i = 0; i < c->n; i++)
            if (c->rec_partition[i] == p) part[k++] = c->recs[i];
        if (k) rc = dm_transport_txn_produce(txn, topic, p, part, k, err);
    }
    free(part);
    if (rc) {
        if (txn) dm_transport_txn_abort(txn);
        return rc;
    }
    return dm_transport_txn_commit(txn, err);
}

static void on_replay(void *ctx, const dm_http_request_t *req, dm_http_response_t *res)
{
    replay_api_t *api = ctx;
    const char *name = dm_http_param(req, "name");
    json_t *doc = NULL;
    dm_error_t err = {0};
    if (dm_store_get(api->store, DM_KIND_PIPELINE, name, &doc, &err)) {
        dm_api_reply_error(res, &err);
        return;
    }
    json_error_t jerr;
    json_t *body =
        req->body_len ? json_loadb((const char *)req->body, req->body_len, 0, &jerr) : NULL;
    choice_t c = {.err = &err};
    dm_arena_init(&c.arena, 0);
    c.replayed = json_array();
    c.skipped = json_array();
    c.refused = json_array();
    const json_t *force = json_object_get(body, "force");
    const json_t *all = json_object_get(body, "all"), *reason = json_object_get(body, "reason");
    const json_t *positions = json_object_get(body, "positions");
    char topic[320], dlq[320];
    snprintf(topic, sizeof(topic), "pipeline.%s.replay", name);
    snprintf(dlq, sizeof(dlq), "pipeline.%s.dlq", name);
    dm_transport_t *t = dm_runtime_transport(api->rt);
    dm_topic_description_t d;
    bool locked = false;
    if (!json_is_object(body)) {
        dm_http_error(res, 400, 40001,
                      "the body must be a JSON object: {\"positions\": [\"0:12\", …]}, "
                      "{\"reason\": \"text\"} or {\"all\": true}, with \"force\": true to "
                      "replay again%s%s",
                      req->body_len ? "; " : "", req->body_len ? jerr.text : "");
        goto done;
    }
    if ((positions != NULL) + (reason != NULL) + (all != NULL) != 1) {
        dm_http_error(res, 400, 40001,
                      "choose the dead letters with exactly one of positions, reason or all");
        goto done;
    }
    if ((force && !json_is_boolean(force)) || (all && !json_is_true(all)) ||
        (reason && (!json_is_string(reason) || !json_string_length(reason)))) {
        dm_http_error(res, 400, 40001, "%s",
                      force && !json_is_boolean(force) ? "force: expected true or false"
                      : all && !json_is_true(all)      ? "all: expected true"
                                                       : "reason: expected a non-empty text");
        goto done;
    }
    if (positions && !read_positions(positions, &c, res)) goto done;
    c.reason = reason ? json_string_value(reason) : NULL;
    c.force = json_is_true(force);
    if (!(c.allowed = first_stage_inputs(api, doc, name, res))) goto done;
    if (dm_transport_describe_topic(t, topic, &d, NULL)) {
        dm_http_error(res, 409, 40900,
                      "pipeline %s has no replay topic %s yet: it has not started (see its "
                      "status)",
                      name, topic);
        goto done;
    }
    c.partitions = d.n_partitions > 0 ? d.n_partitions : 1;
    dm_transport_description_free(&d);
    pthread_mutex_lock(&replay_lock);
    locked = true;
    c.done = dm_api_replayed(t, name);
    if (each_record(t, dlq, consider, &c, &err) < 0) {
        dm_api_reply_error(res, &err);
        goto done;
    }
    if (c.positions) {
        const char *key;
        json_t *found;
        json_object_foreach(c.positions, key, found) if (!json_is_true(found))
        {
            dm_http_error(res, 404, 40401, "pipeline %s has no dead letter at %s (of %s)", name,
                          key, dlq);
            goto done;
        }
        if (json_array_size(c.refused)) {
            const json_t *r = json_array_get(c.refused, 0);
            dm_http_error(res, 409, 40900,
                          "dead letter %s cannot be replayed: %s; nothing replayed",
                          json_string_value(json_object_get(r, "position")),
                          json_string_value(json_object_get(r, "why")));
            goto done;
        }
    }
    if (write_all(t, topic, &c, &err)) {
        dm_error_prefix(&err, "pipeline %s: writing %zu records to %s (nothing replayed)", name,
                        c.n, topic);
        dm_api_reply_error(res, &err);
        goto done;
    }
    dm_http_json(res, 200,
                 json_pack("{s:O, s:O, s:I, s:s, s:I, s:b}", "replayed", c.replayed, "skipped",
                           c.skipped, "skipped_total", (json_int_t)c.n_skipped, "topic", topic,
                           "count", (json_int_t)c.n, "more", c.more));
done:
    if (locked) pthread_mutex_unlock(&replay_lock);
    json_decref(doc);
    json_decref(body);
    json_decref(c.positions);
    json_decref(c.allowed);
    json_decref(c.done);
    json_decref(c.replayed);
    json_decref(c.skipped);
    json_decref(c.refused);
    free(c.recs);
    free(c.rec_partition);
    dm_arena_destroy(&c.arena);
}

dm_err_t dm_api_replay_register(dm_http_server_t *http, dm_store_t *store, dm_runtime_t *rt)
{
    static replay_api_t api;
    api = (replay_api_t){store, rt};
    if (!rt) return DM_OK;
    return dm_http_route(http, "POST", "/api/v1/pipelines/{name}/deadletters/replay", on_replay,
                         &api);
}
