/* connectors/cockroachdb/crdb_source.c — a CockroachDB changefeed into a
 * source: the envelope schemas, the webhook bodies it receives (rows,
 * resolved timestamps, de-duplication, one transaction per request), and the
 * thread that creates the changefeed and watches its job. See cockroachdb.h. */
#include "connectors/cockroachdb/cockroachdb.h"

#include <inttypes.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/emit.h"
#include "connectors/unit.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/hash.h"
#include "core/log.h"
#include "core/metrics.h"
#include "engine/task.h"
#include "schema/dm_avro.h"
#include "schema/wire.h"
#include "transport/transport.h"
#include "transport/txn_builder.h"

/* ---- the keys above the resolved timestamp ------------------------------------------- */

/* A key's last change: committed (last, where it was written), and staged by
 * the request being taken (staged, when staged_req is that request's number). */
typedef struct seen_entry {
    uint8_t *key; /* the encoded key (wire header included); NULL: a free slot */
    uint32_t klen;
    bool committed;
    uint64_t hash, staged_req;
    dm_crdb_hlc_t last, staged;
    int32_t partition;
    int64_t offset;
} seen_entry_t;

typedef struct seen {
    seen_entry_t *slots; /* open addressing, linear probing; cap a power of two */
    size_t cap, used;
} seen_t;

static seen_entry_t *seen_slot(const seen_t *t, const uint8_t *k, size_t kl, uint64_t h)
{
    for (size_t i = h & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
        seen_entry_t *e = &t->slots[i];
        if (!e->key || (e->hash == h && e->klen == kl && !memcmp(e->key, k, kl))) return e;
    }
}

/* The entry of k, made (zeroed) when new; NULL when out of memory. */
static seen_entry_t *seen_put(seen_t *t, const uint8_t *k, size_t kl)
{
    if (4 * (t->used + 1) > 3 * t->cap) {
        seen_t g = {.cap = t->cap ? 2 * t->cap : 1024};
        if (!(g.slots = calloc(g.cap, sizeof(*g.slots)))) return NULL;
        for (size_t i = 0; i < t->cap; i++)
            if (t->slots[i].key) *seen_slot(&g, NULL, 0, t->slots[i].hash) = t->slots[i];
        g.used = t->used;
        free(t->slots);
        *t = g;
    }
    uint64_t h = dm_hash64(k, kl);
    seen_entry_t *e = seen_slot(t, k, kl, h);
    if (e->key) return e;
    uint8_t *copy = malloc(kl ? kl : 1);
    if (!copy) return NULL;
    memcpy(copy, k, kl);
    *e = (seen_entry_t){.key = copy, .klen = (uint32_t)kl, .hash = h};
    t->used++;
    return e;
}

static void seen_free(seen_t *t)
{
    for (size_t i = 0; i < t->cap; i++)
        free(t->slots[i].key);
    free(t->slots);
    *t = (seen_t){0};
}

static size_t seen_count(const seen_t *t)
{
    size_t n = 0;
    for (size_t i = 0; i < t->cap; i++)
        n += t->slots[i].key && t->slots[i].committed;
    return n;
}

struct dm_crdb_source {
    dm_transport_t *t;
    char *name, *state_topic, *dlq;
    int32_t partitions;
    const dm_crdb_config_t *conf;
    dm_source_env_t env;
    dm_unit_status_t *status;
    dm_avro_schema_t *value, *key;
    uint32_t value_id, key_id;
    char table_db[128], table_name[256]; /* conf->table split for source.db / table */

    pthread_mutex_t mu; /* one request at a time; what status reads */
    dm_crdb_hlc_t resolved;
    char resolved_text[48]; /* as CockroachDB wrote it: the cursor on a restart */
    char job_id[32];        /* the changefeed's job, once created */
    char job_status[64], job_error[400];
    bool ready; /* schemas registered, topics made, state read (dm_crdb_source_prepare) */
    /* encoded key → its last committed change (updated, partition, offset), for changes
     * above the resolved timestamp; window[p] is the first offset of
     * partition p that may hold one (committed in the state record, so a restart reads
     * the window back from the topic) */
    seen_t seen;
    uint64_t request_seq; /* numbers requests (seen_entry_t.staged_req) */
    int64_t *window;
    uint64_t events, dropped, dead, requests;
    dm_txn_builder_t txn;
    dm_buf_t bytes, text;       /* text: a message's key / envelope as JSON, reused */
    char *db_json, *table_json; /* table_db / table_name as JSON strings (escaped once) */
    dm_arena_t arena;
    dm_metric_t *m_events, *m_dropped, *m_resolved;
};

/* ---- HLC timestamps ------------------------------------------------------------------- */

dm_err_t dm_crdb_hlc_parse(const char *s, dm_crdb_hlc_t *out, dm_error_t *err)
{
    const char *p = s ? s : "";
    int64_t wall = 0, logical = 0;
    int digits = 0;
    bool ok = true;
    for (; *p >= '0' && *p <= '9' && ok; p++, digits++) {
        ok = wall <= (INT64_MAX - (*p - '0')) / 10; /* past 2262 in ns: not a timestamp */
        if (ok) wall = wall * 10 + (*p - '0');
    }
    ok = ok && digits > 0;
    if (ok && *p == '.') {
        p++;
        int n = 0;
        for (; *p >= '0' && *p <= '9' && n < 18; p++, n++)
            logical = logical * 10 + (*p - '0');
        ok = n > 0;
    }
    if (!ok || *p)
        return dm_error_set(err, DM_ERR_INVALID,
                            "'%.60s' is not an HLC timestamp (nanoseconds.logical, as a "
                            "changefeed writes 'updated' and 'resolved')",
                            s ? s : "");
    *out = (dm_crdb_hlc_t){wall, logical};
    return DM_OK;
}

int dm_crdb_hlc_cmp(dm_crdb_hlc_t a, dm_crdb_hlc_t b)
{
    if (a.wall != b.wall) return a.wall < b.wall ? -1 : 1;
    return a.logical < b.logical ? -1 : a.logical > b.logical;
}

/* ---- schemas -------------------------------------------------------------------------- */

/* The row's full name as a reference from the envelope (which has no namespace). */
static void row_full_name(const json_t *row, char *out, size_t cap)
{
    const char *name = json_string_value(json_object_get(row, "name"));
    const char *ns = json_string_value(json_object_get(row, "namespace"));
    if (name && !strchr(name, '.') && ns && *ns)
        snprintf(out, cap, "%s.%s", ns, name);
    else
        snprintf(out, cap, "%s", name ? name : "");
}

/* Registers NAME-value (the envelope of the declared row) and NAME-key (the
 * record of spec.key's fields, in that order), and parses both. */
static dm_err_t register_schemas(dm_crdb_source_t *src, dm_error_t *err)
{
    const char *declared = src->env.declared_schema;
    if (!declared || !*declared)
        return dm_error_set(err, DM_ERR_CONFIG,
                            "source %s: spec.schema is missing: a cockroachdb source declares its "
                            "table's row as an Avro record (the changefeed's 'after')",
                            src->name);
    json_error_t je;
    json_t *row = json_loads(declared, 0, &je);
    if (!json_is_object(row) ||
        strcmp(json_string_value(json_object_get(row, "type")) ?: "", "record")) {
        json_decref(row);
        return dm_error_set(err, DM_ERR_CONFIG, "source %s: spec.schema must be an Avro record",
                            src->name);
    }
    const dm_strlist_t *keys = src->env.key_fields;
    if (!keys || !keys->n) {
        json_decref(row);
        return dm_error_set(err, DM_ERR_CONFIG,
                            "source %s: spec.key is missing: name the table's primary-key "
                            "columns in order (the changefeed's 'key' array)",
                            src->name);
    }
    char ref[400];
    row_full_name(row, ref, sizeof(ref));
    json_t *key_fields = json_array();
    for (size_t k = 0; k < keys->n; k++) {
        json_t *found = NULL, *f;
        size_t i;
        json_array_foreach(json_object_get(row, "fields"), i, f)
        {
            const char *fname = json_string_value(json_object_get(f, "name"));
            if (fname && !strcmp(fname, keys->items[k])) found = f;
        }
        if (!found) {
            json_decref(row);
            json_decref(key_fields);
            return dm_error_set(err, DM_ERR_CONFIG,
                                "source %s: spec.key field '%s' is not a field of spec.schema",
                                src->name, keys->items[k]);
        }
        json_array_append_new(key_fields, json_pack("{s:s, s:O}", "name", keys->items[k], "type",
                                                    json_object_get(found, "type")));
    }
    json_t *source = json_pack(
        "{s:s, s:s, s:[{s:s,s:s},{s:s,s:s},{s:s,s:s},{s:s,s:s},{s:s,s:s},{s:s,s:s},{s:s,s:s}]}",
        "type", "record", "name", "CockroachSource", "fields", "name", "connector", "type",
        "string", "name", "db", "type", "string", "name", "table", "type", "string", "name",
        "position", "type", "string", "name", "resolved", "type", "string", "name", "ts_ms", "type",
        "long", "name", "snapshot", "type", "string");
    json_t *env = json_pack("{s:s, s:s, s:[{s:s, s:[s,O], s:n}, {s:s, s:[s,s], s:n}, {s:s, s:s}, "
                            "{s:s, s:o}, {s:s, s:s}]}",
                            "type", "record", "name", "CockroachEnvelope", "fields", "name",
                            "before", "type", "null", row, "default", "name", "after", "type",
                            "null", ref, "default", "name", "op", "type", "string", "name",
                            "source", "type", source, "name", "ts_ms", "type", "long");
    json_t *key = json_pack("{s:s, s:s, s:o}", "type", "record", "name", "CockroachKey", "fields",
                            key_fields);
    json_decref(row);
    char *vt = env ? json_dumps(env, JSON_COMPACT) : NULL,
         *kt = key ? json_dumps(key, JSON_COMPACT) : NULL;
    json_decref(env);
    json_decref(key);
    char subject[300];
    dm_err_t rc = vt && kt ? DM_OK : dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    if (!rc) rc = dm_avro_schema_parse(vt, strlen(vt), &src->value, err);
    if (!rc) rc = dm_avro_schema_parse(kt, strlen(kt), &src->key, err);
    if (rc) dm_error_prefix(err, "source %s: spec.schema", src->name);
    snprintf(subject, sizeof(subject), "%s-value", src->name);
    if (!rc) rc = src->env.register_schema(src->env.ctx, subject, vt, &src->value_id, err);
    snprintf(subject, sizeof(subject), "%s-key", src->name);
    if (!rc) rc = src->env.register_schema(src->env.ctx, subject, kt, &src->key_id, err);
    free(vt);
    free(kt);
    return rc;
}

/* ---- the state record ----------------------------------------------------------------- */

static json_t *state_json(const dm_crdb_source_t *src, const int64_t *window)
{
    json_t *w = json_array();
    for (int32_t p = 0; p < src->partitions; p++)
        json_array_append_new(w, json_integer(window[p]));
    return json_pack("{s:s, s:s, s:o}", "resolved", src->resolved_text, "job_id", src->job_id,
                     "window", w);
}

static dm_err_t load_state(dm_crdb_source_t *src, dm_error_t *err)
{
    int64_t start = 0, end = 0;
    dm_err_t rc = dm_transport_offsets(src->t, src->state_topic, 0, &start, &end, err);
    if (rc || end <= start) return rc;
    dm_transport_batch_t b = {0};
    rc = dm_transport_fetch(src->t, src->state_topic, 0, end - 1, 1 << 16, 0, &b, err);
    if (!rc && b.n) {
        const dm_record_t *r = &b.records[b.n - 1];
        json_t *j = json_loadb((const char *)r->value, (size_t)r->value_len, 0, NULL);
        const char *res = json_string_value(json_object_get(j, "resolved"));
        const char *job = json_string_value(json_object_get(j, "job_id"));
        if (!j)
            rc = dm_error_set(err, DM_ERR_CORRUPT, "source %s: the state record in %s is not JSON",
                              src->name, src->state_topic);
        if (!rc && res && *res && !(rc = dm_crdb_hlc_parse(res, &src->resolved, err)))
            snprintf(src->resolved_text, sizeof(src->resolved_text), "%s", res);
        if (!rc && job) snprintf(src->job_id, sizeof(src->job_id), "%s", job);
        const json_t *w = json_object_get(j, "window");
        for (int32_t p = 0; p < src->partitions && p < (int32_t)json_array_size(w); p++)
            src->window[p] = json_integer_value(json_array_get(w, p));
        json_decref(j);
    }
    dm_transport_batch_free(src->t, &b);
    return rc;
}

/* Adds the state record and commits everything added, in one transaction. */
static dm_err_t commit(dm_crdb_source_t *src, const int64_t *window, dm_error_t *err)
{
    json_t *st = state_json(src, window);
    char *text = st ? json_dumps(st, JSON_COMPACT) : NULL;
    json_decref(st);
    int topic = -1;
    dm_err_t rc = text ? DM_OK : dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    if (!rc) rc = dm_txn_builder_topic(&src->txn, src->state_topic, 1, &topic, err);
    if (!rc) {
        dm_record_t r = {.timestamp = dm_wall_ms(),
                         .key_len = -1,
                         .value = (const uint8_t *)text,
                         .value_len = (int32_t)strlen(text)};
        rc = dm_txn_builder_add(&src->txn, topic, 0, &r, err);
    }
    if (!rc)
        rc = dm_txn_builder_commit(&src->txn, err);
    else
        dm_txn_builder_clear(&src->txn);
    free(text);
    return rc;
}

/* ---- the webhook body, without a DOM ---------------------------------------------------- */

/* The body is checked to be JSON first (dm_avro_json_each, the decoder's own
 * syntax check); these then walk its bytes knowing they are well formed: the
 * wrapper's fields are found by their keys, and the rows' 'after'/'before'
 * objects and the key's values are handed to the schema decoder as the bytes
 * they are. */
typedef struct span {
    const char *p;
    size_t n;
} span_t;

static const char *sk_ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* Past the string whose '"' is at p. */
static const char *sk_string(const char *p, const char *e)
{
    for (p++; p < e; p++) {
        const char *q = memchr(p, '"', (size_t)(e - p));
        if (!q) return e;
        size_t bs = 0; /* an odd run of backslashes escapes the quote */
        while (q - bs > p && q[-1 - (ptrdiff_t)bs] == '\\')
            bs++;
        p = q;
        if (!(bs & 1)) return q + 1;
    }
    return e;
}

/* Past the value at p. */
static const char *sk_value(const char *p, const char *e)
{
    if (p >= e) return e;
    if (*p == '"') return sk_string(p, e);
    if (*p != '{' && *p != '[') {
        while (p < e && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\t' &&
               *p != '\n' && *p != '\r')
            p++;
        return p;
    }
    int depth = 0;
    while (p < e) {
        char c = *p;
        if (c == '"') {
            p = sk_string(p, e);
            continue;
        }
        if (c == '{' || c == '[') depth++;
        if ((c == '}' || c == ']') && --depth == 0) return p + 1;
        p++;
    }
    return e;
}

/* The next member of the object being walked (*pp: inside it, after '{' or a
 * member): its key's raw bytes (between the quotes) and its value's bytes.
 * false at the closing '}'. */
static bool next_member(const char **pp, const char *e, span_t *key, span_t *val)
{
    const char *p = sk_ws(*pp, e);
    if (p < e && *p == ',') p = sk_ws(p + 1, e);
    if (p >= e || *p != '"') return false;
    const char *k = p;
    p = sk_string(p, e);
    *key = (span_t){k + 1, (size_t)(p - k - 2)};
    p = sk_ws(p, e);
    p = sk_ws(p + 1, e); /* ':' */
    const char *v = p;
    p = sk_value(p, e);
    *val = (span_t){v, (size_t)(p - v)};
    *pp = p;
    return true;
}

/* The next element of the array being walked (*pp: inside it). */
static bool next_element(const char **pp, const char *e, span_t *val)
{
    const char *p = sk_ws(*pp, e);
    if (p < e && *p == ',') p = sk_ws(p + 1, e);
    if (p >= e || *p == ']') return false;
    const char *v = p;
    p = sk_value(p, e);
    *val = (span_t){v, (size_t)(p - v)};
    *pp = p;
    return true;
}

/* A JSON string's text (s: its raw bytes, between the quotes) into out as a C
 * string, escapes resolved; truncated to cap - 1 bytes. */
static void string_text(span_t s, char *out, size_t cap)
{
    if (!memchr(s.p, '\\', s.n)) {
        size_t n = s.n < cap - 1 ? s.n : cap - 1;
        memcpy(out, s.p, n);
        out[n] = '\0';
        return;
    }
    json_t *j = json_loadb(s.p - 1, s.n + 2, JSON_DECODE_ANY, NULL); /* rare: escapes */
    snprintf(out, cap, "%s", json_string_value(j) ? json_string_value(j) : "");
    json_decref(j);
}

/* The key k (raw) is name: compared as text (escapes resolved). */
static bool key_is(span_t k, const char *name)
{
    size_t n = strlen(name);
    if (k.n == n && !memcmp(k.p, name, n)) return true;
    if (!memchr(k.p, '\\', k.n)) return false;
    char text[64];
    string_text(k, text, sizeof(text));
    return !strcmp(text, name);
}

static bool is_string(span_t v)
{
    return v.p && v.n >= 2 && v.p[0] == '"';
}

static bool is_null(span_t v)
{
    return v.p && v.n == 4 && !memcmp(v.p, "null", 4);
}

/* One message of 'payload': its fields (p NULL when absent). */
typedef struct message {
    span_t all, after, before, key, topic, updated, resolved;
} message_t;

/* The message object at start (its '{'; e: the end of the body's bytes); out->all
 * gets its bytes. */
static dm_err_t scan_message(const char *start, const char *e, size_t i, message_t *out,
                             dm_error_t *err)
{
    memset(out, 0, sizeof(*out));
    const char *p = start + 1;
    span_t k, v;
    static const char *const names[] = {"after", "before", "key", "topic", "updated", "resolved"};
    span_t *slots[] = {&out->after, &out->before,  &out->key,
                       &out->topic, &out->updated, &out->resolved};
    while (next_member(&p, e, &k, &v)) {
        for (size_t f = 0; f < 6; f++) {
            if (!key_is(k, names[f])) continue;
            if (slots[f]->p)
                return dm_error_set(err, DM_ERR_INVALID,
                                    "body is not JSON: payload[%zu]: duplicate object key '%s'", i,
                                    names[f]);
            *slots[f] = v;
            break;
        }
    }
    p = sk_ws(p, e);
    out->all = (span_t){start, (size_t)(p < e ? p + 1 - start : e - start)}; /* past its '}' */
    return DM_OK;
}

/* ---- receiving ------------------------------------------------------------------------ */

typedef struct pending {
    size_t kstart, klen, vstart, vlen, rstart, rlen, wstart, wlen;
    int64_t ts;
    bool dead;
    dm_crdb_hlc_t hlc;
    int32_t partition;
    int64_t offset; /* where the commit puts it (the source is its topic's one writer) */
} pending_t;

typedef struct request {
    pending_t *items;
    size_t n, cap;
    uint64_t seq; /* the request's number: seen entries it staged carry it */
    dm_crdb_hlc_t resolved;
    char resolved_text[48];
    size_t events, dropped, dead;
    int64_t now_ms; /* the envelopes' ts_ms */
} request_t;

static pending_t *add_pending(request_t *q, dm_error_t *err)
{
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 64;
        pending_t *p = realloc(q->items, cap * sizeof(*p));
        if (!p) return dm_error_set(err, DM_ERR_NOMEM, "out of memory"), NULL;
        q->items = p;
        q->cap = cap;
    }
    pending_t *p = &q->items[q->n++];
    memset(p, 0, sizeof(*p));
    return p;
}

/* A message the source cannot turn into its schema: the message's JSON as
 * received as the value, the reason and where it came from as headers. */
static dm_err_t add_dead(dm_crdb_source_t *src, request_t *q, span_t msg, const char *reason,
                         const char *where, dm_error_t *err)
{
    pending_t *p = add_pending(q, err);
    if (!p) return err->code;
    p->dead = true;
    p->vstart = src->bytes.len;
    dm_err_t rc = dm_buf_append(&src->bytes, msg.p, msg.n);
    p->vlen = src->bytes.len - p->vstart;
    p->rstart = src->bytes.len;
    if (!rc) rc = dm_buf_append_str(&src->bytes, reason);
    p->rlen = src->bytes.len - p->rstart;
    p->wstart = src->bytes.len;
    if (!rc) rc = dm_buf_append_str(&src->bytes, where);
    p->wlen = src->bytes.len - p->wstart;
    q->dead++;
    return rc ? dm_error_set(err, DM_ERR_NOMEM, "out of memory") : DM_OK;
}

/* Where a message came from, for its dead letter: topic@updated. */
static void where_of(const dm_crdb_source_t *src, const char *topic, const char *updated, char *out,
                     size_t cap)
{
    snprintf(out, cap, "%s@%s", topic ? topic : src->conf->table ? src->conf->table : "", updated);
}

/* The key as the record of spec.key's fields; its elements decoded straight
 * from their bytes. A mismatch is decoded again as {"k1": key[0], …} text so
 * that the reason names the field. */
static dm_err_t decode_key(dm_crdb_source_t *src, span_t key, size_t *count, dm_avro_value_t *out,
                           dm_error_t *why)
{
    const dm_strlist_t *keys = src->env.key_fields;
    const dm_avro_node_t *rec = src->key->root;
    dm_avro_value_t *f = dm_arena_alloc(&src->arena, keys->n * sizeof(*f));
    if (!f) return dm_error_set(why, DM_ERR_NOMEM, "out of memory");
    size_t n = 0;
    dm_err_t rc = DM_OK;
    const char *p = key.p + 1, *e = key.p + key.n;
    span_t elem;
    while (next_element(&p, e, &elem)) {
        if (n < keys->n && !rc)
            rc = dm_avro_from_json_text(rec->fields[n].type, elem.p, elem.n, DM_AVRO_JSON_PLAIN,
                                        &src->arena, &f[n], why);
        n++;
    }
    *count = n;
    *out = (dm_avro_value_t){.type = DM_AVRO_RECORD, .len = (uint32_t)keys->n, .u.v = f};
    if (n != keys->n || !rc || rc == DM_ERR_NOMEM) return rc;
    dm_buf_t *kt = &src->text; /* the slow path, for the message */
    dm_buf_reset(kt);
    rc = dm_buf_append_u8(kt, '{');
    p = key.p + 1;
    for (size_t k = 0; next_element(&p, e, &elem) && !rc; k++) {
        rc = dm_buf_printf(kt, "%s\"%s\":", k ? "," : "", keys->items[k]);
        if (!rc) rc = dm_buf_append(kt, elem.p, elem.n);
    }
    if (!rc) rc = dm_buf_append_u8(kt, '}');
    if (rc) return dm_error_set(why, DM_ERR_NOMEM, "out of memory");
    dm_avro_value_t kv;
    rc = dm_avro_from_json_text(rec, (const char *)kt->data, kt->len, DM_AVRO_JSON_PLAIN,
                                &src->arena, &kv, why);
    return rc ? rc : DM_ERR_SCHEMA_MISMATCH;
}

static dm_avro_value_t str_value(const char *s, size_t n)
{
    return (dm_avro_value_t){.type = DM_AVRO_STRING, .len = (uint32_t)n, .u.p = (const uint8_t *)s};
}

/* One row message: de-duplicated, encoded in the envelope, or dead-lettered. */
static dm_err_t add_row(dm_crdb_source_t *src, request_t *q, size_t i, const message_t *msg,
                        dm_error_t *err)
{
    if (!is_string(msg->updated))
        return dm_error_set(err, DM_ERR_INVALID,
                            "payload[%zu]: no 'updated' timestamp (create the changefeed WITH "
                            "updated)",
                            i);
    if (!msg->key.p || msg->key.p[0] != '[')
        return dm_error_set(err, DM_ERR_INVALID,
                            "payload[%zu]: 'key' is not an array (the changefeed's envelope must "
                            "be wrapped, format json)",
                            i);
    span_t after = msg->after, before = msg->before;
    if (!after.p || !(after.p[0] == '{' || is_null(after)))
        return dm_error_set(err, DM_ERR_INVALID,
                            "payload[%zu]: 'after' is missing or not an object/null (envelope "
                            "wrapped expected)",
                            i);
    char updated[100];
    string_text((span_t){msg->updated.p + 1, msg->updated.n - 2}, updated, sizeof(updated));
    dm_crdb_hlc_t hlc;
    if (dm_crdb_hlc_parse(updated, &hlc, err))
        return dm_error_prefix(err, "payload[%zu].updated", i);
    if (dm_crdb_hlc_cmp(hlc, src->resolved) <= 0 || dm_crdb_hlc_cmp(hlc, q->resolved) <= 0) {
        q->dropped++; /* at or below a resolved timestamp: delivered before */
        return DM_OK;
    }
    char topic[300] = "", where[400];
    bool has_topic = is_string(msg->topic);
    if (has_topic) string_text((span_t){msg->topic.p + 1, msg->topic.n - 2}, topic, sizeof(topic));
    const char *tp = has_topic ? topic : NULL;
    /* the key through spec.key, in order */
    const dm_strlist_t *keys = src->env.key_fields;
    dm_avro_value_t kv;
    dm_error_t why = {0};
    size_t nkey = 0;
    dm_err_t rc = decode_key(src, msg->key, &nkey, &kv, &why);
    if (rc == DM_ERR_NOMEM) return dm_error_set(err, rc, "out of memory");
    if (nkey != keys->n) {
        char r[200];
        snprintf(r, sizeof(r), "the key has %zu values, spec.key names %zu fields", nkey, keys->n);
        where_of(src, tp, updated, where, sizeof(where));
        return add_dead(src, q, msg->all, r, where, err);
    }
    if (rc) {
        char r[700];
        snprintf(r, sizeof(r), "the key does not fit spec.key: %s", why.message);
        where_of(src, tp, updated, where, sizeof(where));
        return add_dead(src, q, msg->all, r, where, err);
    }
    size_t kstart = src->bytes.len;
    if (dm_wire_put_header(&src->bytes, src->key_id) ||
        dm_avro_encode(src->key->root, &kv, &src->bytes, err))
        return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    size_t klen = src->bytes.len - kstart;
    /* a re-delivery: not newer than the key's last change (this request's or committed) */
    /* the key's entry, made now when new (an entry nothing was committed for counts as
     * absent): the one probe of the table until the commit */
    seen_entry_t *last = seen_put(&src->seen, src->bytes.data + kstart, klen);
    if (!last) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    const dm_crdb_hlc_t *prev = last->staged_req == q->seq ? &last->staged
                                : last->committed          ? &last->last
                                                           : NULL;
    if (prev && dm_crdb_hlc_cmp(hlc, *prev) <= 0) {
        src->bytes.len = kstart;
        q->dropped++;
        return DM_OK;
    }
    /* the envelope, the row images decoded straight from their bytes */
    const char *op = is_null(after)                 ? "d"
                     : before.p && !is_null(before) ? "u"
                     : before.p                     ? "c"
                                                    : "u";
    const dm_avro_node_t *env = src->value->root;
    const dm_avro_node_t *rownode = env->fields[1].type->branches[1];
    dm_avro_value_t *f = dm_arena_alloc(&src->arena, 12 * sizeof(*f)), *s = f + 5;
    if (!f) rc = dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    span_t img[2] = {before, after};
    for (int b = 0; b < 2 && !rc; b++) {
        if (!img[b].p || is_null(img[b])) {
            f[b] = (dm_avro_value_t){.type = DM_AVRO_NULL, .branch = 0};
            continue;
        }
        rc = dm_avro_from_json_text(rownode, img[b].p, img[b].n, DM_AVRO_JSON_PLAIN, &src->arena,
                                    &f[b], &why);
        f[b].branch = 1;
    }
    if (rc == DM_ERR_NOMEM) {
        return dm_error_set(err, rc, "out of memory");
    }
    if (rc) {
        src->bytes.len = kstart;
        char r[700];
        snprintf(r, sizeof(r), "the row does not fit spec.schema: %s", why.message);
        where_of(src, tp, updated, where, sizeof(where));
        return add_dead(src, q, msg->all, r, where, err);
    }
    f[2] = str_value(op, 1);
    s[0] = str_value("cockroachdb", 11);
    s[1] = str_value(src->table_db, strlen(src->table_db));
    s[2] = has_topic ? str_value(topic, strlen(topic))
                     : str_value(src->table_name, strlen(src->table_name));
    s[3] = str_value(updated, strlen(updated));
    s[4] = str_value(src->resolved_text, strlen(src->resolved_text));
    s[5] = (dm_avro_value_t){.type = DM_AVRO_LONG, .u.l = hlc.wall / 1000000};
    s[6] = str_value("false", 5);
    f[3] = (dm_avro_value_t){.type = DM_AVRO_RECORD, .len = 7, .u.v = s};
    f[4] = (dm_avro_value_t){.type = DM_AVRO_LONG, .u.l = q->now_ms};
    dm_avro_value_t v = {.type = DM_AVRO_RECORD, .len = 5, .u.v = f};
    size_t vstart = src->bytes.len;
    if (dm_wire_put_header(&src->bytes, src->value_id) ||
        (rc = dm_avro_encode(src->value->root, &v, &src->bytes, err))) {
        return rc ? rc : dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    }
    pending_t *p = add_pending(q, err);
    if (!p) {
        return err->code;
    }
    *p = (pending_t){.kstart = kstart,
                     .klen = klen,
                     .vstart = vstart,
                     .vlen = src->bytes.len - vstart,
                     .ts = hlc.wall / 1000000};
    p->hlc = hlc;
    last->staged = hlc;
    last->staged_req = q->seq;
    q->events++;
    return DM_OK;
}

/* A resolved timestamp: every change at or below it has been delivered. */
static dm_err_t add_resolved(request_t *q, const char *text, dm_error_t *err)
{
    dm_crdb_hlc_t r;
    if (dm_crdb_hlc_parse(text, &r, err)) return dm_error_prefix(err, "resolved");
    if (dm_crdb_hlc_cmp(r, q->resolved) > 0) {
        q->resolved = r;
        snprintf(q->resolved_text, sizeof(q->resolved_text), "%s", text);
    }
    return DM_OK;
}

/* Adds the request's records and dead letters to the transaction. */
static dm_err_t add_to_txn(dm_crdb_source_t *src, request_t *q, int64_t *ends, dm_error_t *err)
{
    int topic = -1, dlq = -1;
    dm_err_t rc = dm_txn_builder_topic(&src->txn, src->name, src->partitions, &topic, err);
    for (int32_t part = 0; part < src->partitions && !rc; part++) {
        int64_t start = 0;
        rc = dm_transport_offsets(src->t, src->name, part, &start, &ends[part], err);
    }
    for (size_t i = 0; i < q->n && !rc; i++) {
        const pending_t *p = &q->items[i];
        const uint8_t *b = src->bytes.data;
        if (p->dead) {
            dm_record_header_t *h = dm_arena_alloc(&src->arena, 3 * sizeof(*h));
            if (!h) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
            h[0] = (dm_record_header_t){DM_DLQ_REASON, (uint32_t)strlen(DM_DLQ_REASON),
                                        b + p->rstart, (int32_t)p->rlen};
            h[1] = (dm_record_header_t){DM_DLQ_SOURCE, (uint32_t)strlen(DM_DLQ_SOURCE),
                                        b + p->wstart, (int32_t)p->wlen};
            h[2] =
                (dm_record_header_t){"dm.source.connector", 19, (const uint8_t *)"cockroachdb", 11};
            dm_record_t r = {.timestamp = dm_wall_ms(),
                             .key_len = -1,
                             .value = b + p->vstart,
                             .value_len = (int32_t)p->vlen,
                             .headers = h,
                             .n_headers = 3};
            if (!(rc = dm_txn_builder_topic(&src->txn, src->dlq, 1, &dlq, err)))
                rc = dm_txn_builder_add(&src->txn, dlq, 0, &r, err);
            continue;
        }
        dm_record_t r = {.timestamp = p->ts,
                         .key = b + p->kstart,
                         .key_len = (int32_t)p->klen,
                         .value = b + p->vstart,
                         .value_len = (int32_t)p->vlen};
        pending_t *w = &q->items[i];
        w->partition = dm_txn_key_partition(r.key, p->klen, src->partitions);
        w->offset = ends[w->partition]++;
        rc = dm_txn_builder_add(&src->txn, topic, w->partition, &r, err);
    }
    return rc;
}

/* Reads the changes above the resolved timestamp back from the topic (from
 * the committed window on), so that a restart drops re-deliveries of them
 * as the running source did. Records of another schema version than the
 * current one are older than any window and skipped. */
static dm_err_t load_window(dm_crdb_source_t *src, dm_error_t *err)
{
    dm_arena_t a;
    dm_arena_init(&a, 0);
    dm_err_t rc = DM_OK;
    for (int32_t p = 0; p < src->partitions && !rc; p++) {
        int64_t start = 0, end = 0, off;
        if ((rc = dm_transport_offsets(src->t, src->name, p, &start, &end, err))) break;
        off = src->window[p] > start ? src->window[p] : start;
        dm_transport_batch_t b = {0};
        while (off < end && !rc) {
            if ((rc = dm_transport_fetch(src->t, src->name, p, off, 1 << 20, 0, &b, err)) || !b.n)
                break;
            for (size_t i = 0; i < b.n; i++) {
                const dm_record_t *r = &b.records[i];
                uint32_t id = 0;
                dm_avro_value_t v;
                if (r->key_len <= 0 || r->value_len <= DM_WIRE_HEADER ||
                    dm_wire_get_header(r->value, (size_t)r->value_len, &id) ||
                    id != src->value_id ||
                    dm_avro_decode_node(src->value->root, r->value + DM_WIRE_HEADER,
                                        (size_t)r->value_len - DM_WIRE_HEADER, NULL, &a, &v, NULL))
                    continue;
                const dm_avro_value_t *pos = &v.u.v[3].u.v[3]; /* source.position */
                char updated[48];
                snprintf(updated, sizeof(updated), "%.*s", (int)pos->len, (const char *)pos->u.p);
                dm_crdb_hlc_t h;
                if (dm_crdb_hlc_parse(updated, &h, NULL) || dm_crdb_hlc_cmp(h, src->resolved) <= 0)
                    continue;
                seen_entry_t *e = seen_put(&src->seen, r->key, (size_t)r->key_len);
                if (!e) {
                    rc = dm_error_set(err, DM_ERR_NOMEM, "out of memory");
                    break;
                }
                e->committed = true;
                e->last = h;
                e->partition = p;
                e->offset = r->offset;
            }
            off = b.next_offset;
            dm_arena_reset(&a);
        }
        dm_transport_batch_free(src->t, &b);
    }
    dm_arena_destroy(&a);
    return rc;
}

/* Forgets keys whose last change is at or below the resolved timestamp: a
 * re-delivery of them is dropped by the resolved check alone. */
static void prune_seen(dm_crdb_source_t *src)
{
    seen_t *t = &src->seen;
    seen_t keep = {0};
    bool oom = false;
    for (size_t i = 0; i < t->cap && !oom; i++) {
        seen_entry_t *e = &t->slots[i];
        if (!e->key || !e->committed || dm_crdb_hlc_cmp(e->last, src->resolved) <= 0) continue;
        seen_entry_t *k = seen_put(&keep, e->key, e->klen);
        if (k) {
            uint8_t *key = k->key;
            *k = *e;
            k->key = key;
        }
        oom = !k;
    }
    seen_free(oom ? &keep : t); /* out of memory: keep all (only memory is lost) */
    if (!oom) *t = keep;
}

static dm_err_t check_json(void *ctx, size_t i, const char *elem, size_t elem_len, dm_error_t *err)
{
    (void)ctx, (void)i, (void)elem, (void)elem_len, (void)err;
    return DM_OK;
}

/* The body's messages: resolved timestamps and rows, in order. */
static dm_err_t read_body(dm_crdb_source_t *src, request_t *q, const char *body, size_t len,
                          size_t *n, dm_error_t *err)
{
    dm_err_t rc = dm_avro_json_each(body, len, check_json, NULL, NULL, err);
    if (rc) return dm_error_prefix(err, "body is not JSON");
    const char *p = sk_ws(body, body + len), *e = body + len;
    span_t k, v, payload = {0}, length = {0}, resolved = {0};
    if (p < e && *p == '{') {
        p++;
        while (next_member(&p, e, &k, &v)) {
            span_t *slot = key_is(k, "payload")    ? &payload
                           : key_is(k, "length")   ? &length
                           : key_is(k, "resolved") ? &resolved
                                                   : NULL;
            if (slot && slot->p)
                return dm_error_set(err, DM_ERR_INVALID,
                                    "body is not JSON: duplicate object key '%.*s'", (int)k.n, k.p);
            if (slot) *slot = v;
        }
    }
    if (is_string(resolved)) {
        char text[100];
        string_text((span_t){resolved.p + 1, resolved.n - 2}, text, sizeof(text));
        *n = 1;
        return add_resolved(q, text, err);
    }
    if (!payload.p || payload.p[0] != '[')
        return dm_error_set(err, DM_ERR_INVALID,
                            "not a changefeed webhook body: expected {\"payload\": [...], "
                            "\"length\": N} or {\"resolved\": \"...\"}");
    /* one walk: a 'length' that does not match refuses the body after it (nothing
     * is written either way) */
    size_t count = 0;
    const char *ap = payload.p + 1, *ae = payload.p + payload.n;
    for (; !rc; count++) { /* each message walked once, not skipped first */
        ap = sk_ws(ap, ae);
        if (ap < ae && *ap == ',') ap = sk_ws(ap + 1, ae);
        if (ap >= ae || *ap == ']') break;
        message_t m;
        if (*ap != '{') {
            rc = dm_error_set(err, DM_ERR_INVALID, "payload[%zu] is not an object", count);
        } else if (!(rc = scan_message(ap, ae, count, &m, err))) {
            ap += m.all.n;
            if (is_string(m.resolved)) {
                char text[100];
                string_text((span_t){m.resolved.p + 1, m.resolved.n - 2}, text, sizeof(text));
                rc = add_resolved(q, text, err);
            } else {
                rc = add_row(src, q, count, &m, err);
            }
        }
    }
    *n = count;
    if (!rc && length.p) {
        bool integer = !memchr(length.p, '.', length.n) && !memchr(length.p, 'e', length.n) &&
                       !memchr(length.p, 'E', length.n) &&
                       (length.p[0] == '-' || (length.p[0] >= '0' && length.p[0] <= '9'));
        if (!integer || strtoull(length.p, NULL, 10) != count || length.p[0] == '-')
            rc = dm_error_set(err, DM_ERR_INVALID, "'length' says %.*s messages, 'payload' has %zu",
                              (int)(length.n < 40 ? length.n : 40), length.p, count);
    }
    return rc;
}

static dm_err_t receive_locked(dm_crdb_source_t *src, const void *body, size_t len,
                               size_t *accepted, dm_error_t *err)
{
    request_t q = {.seq = ++src->request_seq, .resolved = src->resolved, .now_ms = dm_wall_ms()};
    snprintf(q.resolved_text, sizeof(q.resolved_text), "%s", src->resolved_text);
    size_t n = 0;
    dm_err_t rc = read_body(src, &q, body, len, &n, err);
    dm_crdb_hlc_t old = src->resolved;
    char old_text[48];
    snprintf(old_text, sizeof(old_text), "%s", src->resolved_text);
    src->resolved = q.resolved;
    snprintf(src->resolved_text, sizeof(src->resolved_text), "%s", q.resolved_text);
    int64_t *ends = calloc((size_t)src->partitions, sizeof(int64_t));
    int64_t *window = calloc((size_t)src->partitions, sizeof(int64_t));
    if (!rc && (!ends || !window)) rc = dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    if (!rc) rc = add_to_txn(src, &q, ends, err);
    if (!rc) { /* the window after this request: where changes above resolved start */
        bool advanced = dm_crdb_hlc_cmp(old, src->resolved) < 0;
        for (int32_t p = 0; p < src->partitions; p++) /* lower than needed is safe */
            window[p] = advanced ? ends[p] : src->window[p];
        for (size_t i = 0; advanced && i < src->seen.cap; i++) { /* once per resolved */
            const seen_entry_t *e = &src->seen.slots[i];
            if (e->key && e->committed && dm_crdb_hlc_cmp(e->last, src->resolved) > 0 &&
                e->partition >= 0 && e->partition < src->partitions &&
                e->offset < window[e->partition])
                window[e->partition] = e->offset;
        }
        for (size_t i = 0; i < q.n; i++) {
            const pending_t *p = &q.items[i];
            if (!p->dead && p->offset < window[p->partition]) window[p->partition] = p->offset;
        }
    }
    if (!rc)
        rc = commit(src, window, err);
    else
        dm_txn_builder_clear(&src->txn);
    if (rc && rc != DM_ERR_INVALID) {
        dm_error_prefix(err, "source %s: writing the changefeed's batch", src->name);
        err->code = rc = DM_ERR_AGAIN; /* nothing was written: CockroachDB retries */
        err->retriable = true;
    }
    if (rc) { /* nothing written: as before the request */
        src->resolved = old;
        snprintf(src->resolved_text, sizeof(src->resolved_text), "%s", old_text);
    } else {
        for (size_t i = 0; i < q.n; i++) {
            const pending_t *p = &q.items[i];
            if (p->dead) continue;
            seen_entry_t *e = seen_put(&src->seen, src->bytes.data + p->kstart, p->klen);
            if (!e) continue; /* only de-duplication is lost */
            e->committed = true;
            e->last = p->hlc;
            e->partition = p->partition;
            e->offset = p->offset;
        }
        memcpy(src->window, window, (size_t)src->partitions * sizeof(int64_t));
        if (dm_crdb_hlc_cmp(old, src->resolved) < 0) prune_seen(src);
        src->events += q.events;
        src->dropped += q.dropped;
        src->dead += q.dead;
        src->requests++;
        if (src->m_events) dm_metric_add(src->m_events, q.events);
        if (src->m_dropped) dm_metric_add(src->m_dropped, q.dropped);
        if (src->m_resolved) dm_metric_set(src->m_resolved, src->resolved.wall / 1000000);
        *accepted = n;
    }
    free(q.items);
    free(ends);
    free(window);
    dm_buf_reset(&src->bytes);
    dm_arena_reset(&src->arena);
    return rc;
}

dm_err_t dm_crdb_receive(dm_crdb_source_t *src, const void *body, size_t len, size_t *accepted,
                         dm_error_t *err)
{
    dm_error_t local = {0};
    if (!err) err = &local;
    *accepted = 0;
    if ((int64_t)len > src->conf->max_bytes)
        return dm_error_set(err, DM_ERR_RANGE,
                            "request body larger than %lld bytes (the source's max_bytes)",
                            (long long)src->conf->max_bytes);
    pthread_mutex_lock(&src->mu);
    dm_err_t rc = src->ready ? receive_locked(src, body, len, accepted, err)
                             : dm_error_set_retriable(err, DM_ERR_AGAIN,
                                                      "source %s is starting: its schemas and "
                                                      "topics are not ready yet",
                                                      src->name);
    pthread_mutex_unlock(&src->mu);
    return rc;
}

/* ---- the changefeed ------------------------------------------------------------------- */

static char *read_secret(const char *env_name, const char *file, const char *what,
                         const char *source, dm_error_t *err)
{
    if (env_name && *env_name) {
        const char *v = getenv(env_name);
        if (!v)
            return dm_error_set(err, DM_ERR_CONFIG,
                                "source %s: environment variable %s (%s) is not set", source,
                                env_name, what),
                   NULL;
        return strdup(v);
    }
    if (file && *file) {
        FILE *f = fopen(file, "r");
        char line[1024] = "";
        if (!f || !fgets(line, sizeof(line), f)) {
            if (f) fclose(f);
            return dm_error_set(err, DM_ERR_CONFIG, "source %s: cannot read %s (%s)", source, file,
                                what),
                   NULL;
        }
        fclose(f);
        line[strcspn(line, "\r\n")] = '\0';
        return strdup(line);
    }
    return strdup("");
}

/* s with every ' doubled (a SQL string literal's body). */
static void sql_quote(dm_buf_t *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\'') dm_buf_append_u8(b, '\'');
        dm_buf_append_u8(b, (uint8_t)*s);
    }
}

char *dm_crdb_changefeed_sql(const dm_crdb_source_t *src, bool with_secret)
{
    const dm_crdb_config_t *c = src->conf;
    dm_buf_t b = DM_BUF_INIT;
    dm_buf_printf(&b, "CREATE CHANGEFEED FOR TABLE %s INTO 'webhook-", c->table);
    sql_quote(&b, c->webhook_url ? c->webhook_url : "");
    dm_buf_printf(&b, "/api/v1/sources/%s/changefeed", src->name);
    if (c->insecure_tls_skip_verify) dm_buf_append_str(&b, "?insecure_tls_skip_verify=true");
    dm_buf_printf(&b, "' WITH updated, resolved = '%llds', format = json, envelope = wrapped",
                  (long long)(c->resolved_ms / 1000));
    if (c->diff) dm_buf_append_str(&b, ", diff");
    if (src->resolved_text[0]) dm_buf_printf(&b, ", cursor = '%s'", src->resolved_text);
    char *token = NULL;
    if (c->token_env && *c->token_env) {
        token = with_secret ? read_secret(c->token_env, NULL, "token_env", src->name, NULL) : NULL;
        dm_buf_append_str(&b, ", webhook_auth_header = 'Bearer ");
        if (token)
            sql_quote(&b, token);
        else
            dm_buf_append_str(&b, "***");
        dm_buf_append_u8(&b, '\'');
    }
    free(token);
    dm_buf_append_u8(&b, '\0');
    return (char *)b.data;
}

/* err's message without the secret s (a server may quote the statement). */
static void scrub(dm_error_t *err, const char *s)
{
    if (!err || !s || strlen(s) < 4) return;
    char *at;
    while ((at = strstr(err->message, s)))
        memset(at, '*', strlen(s));
}

static dm_err_t pg_error(PGconn *c, const PGresult *r, const char *what, const char *name,
                         dm_err_t code, dm_error_t *err)
{
    const char *msg = r ? PQresultErrorMessage(r) : PQerrorMessage(c);
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    char m[400];
    snprintf(m, sizeof(m), "%s", msg && *msg ? msg : "no reason given");
    m[strcspn(m, "\n")] = '\0';
    return dm_error_set(err, code, "source %s: %s: %s%s%s%s", name, what, m,
                        state ? " (SQLSTATE " : "", state ? state : "", state ? ")" : "");
}

/* Connects, checks the server is CockroachDB, and creates the changefeed
 * unless its job is still there. */
static dm_err_t ensure_changefeed(dm_crdb_source_t *src, PGconn **conn, dm_error_t *err)
{
    const dm_crdb_config_t *c = src->conf;
    if (!*conn) {
        char *pw = read_secret(c->password_env, c->password_file, "password", src->name, err);
        if (!pw) return err->code;
        const char *keys[] = {"dbname", "password", "connect_timeout", NULL};
        const char *vals[] = {c->dsn, *pw ? pw : NULL, "10", NULL};
        if (!*pw) keys[1] = "connect_timeout", vals[1] = "10", keys[2] = NULL;
        *conn = PQconnectdbParams(keys, vals, 1);
        dm_err_t rc = DM_OK;
        if (PQstatus(*conn) != CONNECTION_OK) {
            bool auth = strstr(PQerrorMessage(*conn), "password") ||
                        strstr(PQerrorMessage(*conn), "authentication");
            rc = pg_error(*conn, NULL, "cannot connect to CockroachDB", src->name,
                          auth ? DM_ERR_PERMISSION : DM_ERR_AGAIN, err);
            if (!auth) err->retriable = true;
            scrub(err, pw);
            PQfinish(*conn);
            *conn = NULL;
        }
        free(pw);
        if (rc) return rc;
    }
    PGresult *r = PQexec(*conn, "SELECT version()");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        dm_err_t rc = pg_error(*conn, r, "SELECT version()", src->name, DM_ERR_AGAIN, err);
        err->retriable = true;
        PQclear(r);
        PQfinish(*conn);
        *conn = NULL;
        return rc;
    }
    char version[200];
    snprintf(version, sizeof(version), "%s", PQntuples(r) ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
    if (!strstr(version, "CockroachDB")) {
        version[strcspn(version, ",(")] = '\0';
        for (size_t n = strlen(version); n && version[n - 1] == ' '; n--)
            version[n - 1] = '\0';
        return dm_error_set(err, DM_ERR_CONFIG,
                            "source %s: the dsn reaches '%s', not CockroachDB: changefeeds "
                            "(CREATE CHANGEFEED) need a CockroachDB cluster",
                            src->name, version);
    }
    if (src->job_id[0]) { /* the job survives our restarts: keep it when it runs */
        char q[200];
        snprintf(q, sizeof(q), "SELECT status, coalesce(error, '') FROM [SHOW CHANGEFEED JOB %s]",
                 src->job_id);
        r = PQexec(*conn, q);
        bool alive = false;
        if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
            pthread_mutex_lock(&src->mu);
            snprintf(src->job_status, sizeof(src->job_status), "%s", PQgetvalue(r, 0, 0));
            snprintf(src->job_error, sizeof(src->job_error), "%s", PQgetvalue(r, 0, 1));
            pthread_mutex_unlock(&src->mu);
            alive =
                !strcmp(PQgetvalue(r, 0, 0), "running") || !strcmp(PQgetvalue(r, 0, 0), "pending");
        }
        PQclear(r);
        if (alive) return DM_OK;
    }
    if (!c->create) return DM_OK;
    if (!c->webhook_url || strncmp(c->webhook_url, "https://", 8))
        return dm_error_set(err, DM_ERR_CONFIG,
                            "source %s: webhook_url must be this controller's https:// address "
                            "as CockroachDB reaches it (its webhook sink sends over TLS only)",
                            src->name);
    char *sql = dm_crdb_changefeed_sql(src, true);
    char *shown = dm_crdb_changefeed_sql(src, false);
    r = PQexec(*conn, sql);
    dm_err_t rc = DM_OK;
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) < 1) {
        rc = pg_error(*conn, r, "CockroachDB refused CREATE CHANGEFEED", src->name, DM_ERR_CONFIG,
                      err);
        char *token =
            c->token_env && *c->token_env ? read_secret(c->token_env, NULL, "", "", NULL) : NULL;
        scrub(err, token);
        free(token);
    } else {
        pthread_mutex_lock(&src->mu);
        snprintf(src->job_id, sizeof(src->job_id), "%s", PQgetvalue(r, 0, 0));
        snprintf(src->job_status, sizeof(src->job_status), "running");
        dm_error_t cerr = {0};
        rc = commit(src, src->window, &cerr); /* the job id, with the position */
        pthread_mutex_unlock(&src->mu);
        DM_INFO("cockroachdb", "source=%s: created changefeed job %s: %s", src->name, src->job_id,
                shown);
        if (rc) *err = cerr;
    }
    PQclear(r);
    free(sql);
    free(shown);
    return rc;
}

void dm_crdb_source_run(dm_crdb_source_t *src, dm_unit_status_t *status)
{
    src->status = status;
    PGconn *conn = NULL;
    while (!atomic_load(&status->stop)) {
        dm_error_t err = {0};
        if (dm_crdb_source_prepare(src, &err)) {
            if (!dm_unit_retry(status, &err, "preparing")) break;
            continue;
        }
        if (!src->conf->create && !src->job_id[0]) {
            dm_unit_ok(status); /* the user's changefeed posts to us */
            dm_unit_sleep(status, 1000);
            continue;
        }
        if (ensure_changefeed(src, &conn, &err)) {
            if (conn && !err.retriable) {
                PQfinish(conn);
                conn = NULL;
            }
            if (!dm_unit_retry(status, &err, "creating the changefeed")) break;
            continue;
        }
        dm_unit_ok(status);
        dm_unit_sleep(status, 10000); /* then look at the job again */
    }
    if (conn) PQfinish(conn);
}

/* ---- life ----------------------------------------------------------------------------- */

/* s as a JSON string's text (quoted, escaped), a new string; invalid UTF-8 is
 * replaced by "" (a table name from the config). */
static char *json_text(const char *s)
{
    json_t *j = json_string(s);
    char *t = json_dumps(j ? j : json_string(""), JSON_ENCODE_ANY);
    json_decref(j);
    return t;
}

dm_err_t dm_crdb_source_new(const dm_source_env_t *env, const dm_crdb_config_t *conf,
                            dm_crdb_source_t **out, dm_error_t *err)
{
    *out = NULL;
    dm_crdb_source_t *src = calloc(1, sizeof(*src));
    if (!src) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    src->env = *env;
    src->t = env->transport;
    src->conf = conf;
    src->partitions = env->partitions > 0 ? env->partitions : 1;
    src->name = strdup(env->name);
    pthread_mutex_init(&src->mu, NULL);
    src->window = calloc((size_t)src->partitions, sizeof(int64_t));
    dm_txn_builder_init(&src->txn, src->t);
    src->bytes = (dm_buf_t)DM_BUF_INIT;
    src->text = (dm_buf_t)DM_BUF_INIT;
    dm_arena_init(&src->arena, 0);
    const char *table = conf->table ? conf->table : "";
    const char *dot = strrchr(table, '.');
    snprintf(src->table_name, sizeof(src->table_name), "%s", dot ? dot + 1 : table);
    if (dot) {
        const char *first = strchr(table, '.');
        snprintf(src->table_db, sizeof(src->table_db), "%.*s", (int)(first - table), table);
    }
    src->db_json = json_text(src->table_db);
    src->table_json = json_text(src->table_name);
    if (asprintf(&src->state_topic, "__dm_cockroachdb_state.%s", env->name) < 0)
        src->state_topic = NULL;
    if (asprintf(&src->dlq, "source.%s.dlq", env->name) < 0) src->dlq = NULL;
    dm_err_t rc =
        src->name && src->state_topic && src->dlq && src->window && src->db_json && src->table_json
            ? DM_OK
            : dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    if (!rc && env->metrics) {
        char labels[300];
        snprintf(labels, sizeof(labels), "source=\"%s\"", env->name);
        src->m_events = dm_metrics_counter(env->metrics, "datamesh_cockroachdb_events_total",
                                           "changefeed rows written to the source", labels);
        src->m_dropped = dm_metrics_counter(env->metrics, "datamesh_cockroachdb_redeliveries_total",
                                            "changefeed rows dropped as re-deliveries", labels);
        src->m_resolved = dm_metrics_time_gauge(
            env->metrics, "datamesh_cockroachdb_resolved_timestamp_seconds",
            "the highest resolved timestamp committed", labels, DM_GAUGE_TIME_MS);
    }
    if (rc) {
        dm_crdb_source_free(src);
        return rc;
    }
    *out = src;
    return DM_OK;
}

dm_err_t dm_crdb_source_prepare(dm_crdb_source_t *src, dm_error_t *err)
{
    pthread_mutex_lock(&src->mu);
    dm_err_t rc = src->ready ? DM_OK : register_schemas(src, err);
    char subject[300];
    snprintf(subject, sizeof(subject), "%s-value", src->name);
    const dm_source_env_t *env = &src->env;
    if (!src->ready && !rc)
        rc = env->ensure_topic(env->ctx, src->name, src->partitions, subject, err);
    if (!src->ready && !rc) rc = env->ensure_topic(env->ctx, src->state_topic, 1, NULL, err);
    if (!src->ready && !rc) rc = env->ensure_topic(env->ctx, src->dlq, 1, NULL, err);
    for (int32_t p = 0; !src->ready && !rc && p < src->partitions; p++) {
        int64_t start = 0; /* no change above resolved yet: the window starts at the end */
        rc = dm_transport_offsets(src->t, src->name, p, &start, &src->window[p], err);
    }
    if (!src->ready && !rc) rc = load_state(src, err);
    if (!src->ready && !rc) rc = load_window(src, err);
    if (!src->ready && !rc) src->ready = true;
    if (rc) { /* from the start next time */
        dm_avro_schema_free(src->value);
        dm_avro_schema_free(src->key);
        src->value = src->key = NULL;
    }
    pthread_mutex_unlock(&src->mu);
    return rc;
}

json_t *dm_crdb_source_status(dm_crdb_source_t *src)
{
    pthread_mutex_lock(&src->mu);
    json_t *j =
        json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I}", "position", src->resolved_text,
                  "job_id", src->job_id, "job_status", src->job_status, "job_error", src->job_error,
                  "events", (json_int_t)src->events, "redeliveries_dropped",
                  (json_int_t)src->dropped, "dead_letters", (json_int_t)src->dead, "requests",
                  (json_int_t)src->requests, "keys_in_window", (json_int_t)seen_count(&src->seen));
    pthread_mutex_unlock(&src->mu);
    return j;
}

void dm_crdb_source_free(dm_crdb_source_t *src)
{
    if (!src) return;
    dm_avro_schema_free(src->value);
    dm_avro_schema_free(src->key);
    seen_free(&src->seen);
    free(src->window);
    dm_txn_builder_destroy(&src->txn);
    dm_buf_free(&src->bytes);
    dm_buf_free(&src->text);
    dm_arena_destroy(&src->arena);
    pthread_mutex_destroy(&src->mu);
    free(src->name);
    free(src->state_topic);
    free(src->dlq);
    free(src->db_json);
    free(src->table_json);
    free(src);
}

/* ---- the ops struct ------------------------------------------------------------------- */

static dm_err_t crdb_open(const void *conf, const dm_source_env_t *env, void **state,
                          dm_error_t *err)
{
    dm_crdb_source_t *src = NULL;
    dm_err_t rc = dm_crdb_source_new(env, conf, &src, err);
    *state = src;
    return rc;
}

static void crdb_run(void *state, struct dm_unit_status *status)
{
    dm_crdb_source_run(state, status);
}

static void crdb_close(void *state)
{
    dm_crdb_source_free(state);
}

static json_t *crdb_status(void *state)
{
    return dm_crdb_source_status(state);
}

static dm_err_t crdb_receive(void *state, const void *body, size_t len, size_t *accepted,
                             dm_error_t *err)
{
    return dm_crdb_receive(state, body, len, accepted, err);
}

const dm_source_ops_t dm_cockroachdb_source_ops = {
    .def = {.name = "cockroachdb",
            .summary = "CockroachDB changefeeds received at POST /api/v1/sources/{name}/changefeed",
            .config = &dm_crdb_config_table,
            .config_size = sizeof(dm_crdb_config_t),
            .needs_schema = false /* its envelope is built around spec.schema's row */},
    .runs_thread = true,
    .dead_letters = true,
    .open = crdb_open,
    .run = crdb_run,
    .close = crdb_close,
    .status_json = crdb_status,
    .receive = crdb_receive,
};
