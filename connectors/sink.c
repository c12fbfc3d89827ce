/* connectors/sink.c — the common sink runner (see sink.h). */
#include "connectors/sink.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/unit.h"
#include "core/arena.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/redact.h"
#include "engine/task.h"
#include "schema/dm_avro.h"
#include "schema/wire.h"

dm_err_t dm_sink_read_secret(const char *env, const char *file, char *out, size_t cap,
                             dm_error_t *err)
{
    out[0] = '\0';
    if (env) {
        const char *v = getenv(env);
        if (!v) /* retriable: a secret may be provided after the sink started */
            return dm_error_set_retriable(err, DM_ERR_CONFIG, "environment variable %s is not set",
                                          env);
        snprintf(out, cap, "%s", v);
    } else if (file) {
        FILE *f = fopen(file, "r");
        if (!f)
            return dm_error_set_retriable(err, DM_ERR_IO, "cannot read %s: %s", file,
                                          strerror(errno));
        if (!fgets(out, (int)cap, f)) out[0] = '\0';
        fclose(f);
        out[strcspn(out, "\r\n")] = '\0';
    }
    return DM_OK;
}

/* ---- rejects ------------------------------------------------------------------- */

typedef struct reject {
    size_t index;
    char reason[400];
} reject_t;

struct dm_sink_rejects {
    reject_t *items;
    size_t n, cap;
    bool *marked; /* per batch record */
    size_t n_marked;
};

dm_err_t dm_sink_reject(dm_sink_rejects_t *r, size_t index, const char *fmt, ...)
{
    if (index >= r->n_marked || r->marked[index]) return DM_OK;
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        reject_t *items = realloc(r->items, cap * sizeof(*items));
        if (!items) return DM_ERR_NOMEM;
        r->items = items;
        r->cap = cap;
    }
    reject_t *it = &r->items[r->n++];
    it->index = index;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(it->reason, sizeof(it->reason), fmt, ap);
    va_end(ap);
    r->marked[index] = true;
    return DM_OK;
}

bool dm_sink_rejected(const dm_sink_rejects_t *r, size_t index)
{
    return index < r->n_marked && r->marked[index];
}

static void rejects_reset(dm_sink_rejects_t *r, size_t n)
{
    r->n = 0;
    if (n > r->n_marked) {
        free(r->marked);
        r->marked = calloc(n, sizeof(bool));
        r->n_marked = r->marked ? n : 0;
    } else if (r->marked) {
        memset(r->marked, 0, r->n_marked * sizeof(bool));
    }
}

/* ---- schemas ------------------------------------------------------------------- */

typedef struct codec_entry {
    uint32_t id;
    const dm_avro_schema_t *schema;
    dm_avro_codec_t *codec;
    /* Envelopes: where op / before / after sit, and the row's record schema. */
    int op_idx, before_idx, after_idx;
    const dm_avro_node_t *row;
} codec_entry_t;

typedef struct runner {
    const dm_sink_run_config_t *c;
    dm_unit_status_t *status;
    void *state;
    codec_entry_t *codecs;
    size_t n_codecs;
    /* the batch being assembled */
    dm_arena_t arena;
    dm_record_t *recs;
    int32_t *rec_part;
    dm_sink_record_t *items;
    size_t n, cap;
    int64_t bytes;
    /* The last fetch. The batch's records [from_fetch, n) point into it (no
     * copy): they are copied into the arena only if another fetch into it
     * comes before the batch is written. Records of it not taken (past
     * batch_records) are taken by the next batch straight from it while
     * nothing was fetched since and its partition still resumes at
     * fetch_resume. */
    dm_transport_batch_t fetch;
    size_t from_fetch;
    int32_t fetch_part; /* -1: nothing left in it to take */
    size_t fetch_next;  /* its first record not taken */
    int64_t fetch_resume;
    int64_t avg_record; /* bytes per record seen so far, to size fetches */
    int64_t *pos;       /* next offset to read per partition */
    int64_t *saved;     /* where reading resumes if the batch being filled is dropped */
    dm_tp_offset_t *offsets;
    dm_sink_rejects_t rejects;     /* this attempt's */
    dm_sink_rejects_t undecodable; /* records that are no rows */
    bool running;
    bool failed; /* open failed for good */
    /* Value schema ids handed to the sink in earlier batches. */
    uint32_t *seen;
    size_t n_seen, cap_seen;
    /* A checkpointing sink (ops->checkpoint): whether it holds written
     * records not yet committed, and how many (metrics count them once
     * committed). */
    bool open;
    /* The batch has a value schema id no earlier batch had (else the
     * version checks below skip their loops). */
    bool unseen;
    uint64_t staged_records, staged_bytes;
    dm_metric_t *m_records, *m_bytes, *m_retries, *m_dead, *m_latency, *m_lag;
    dm_metric_t *m_lag_s, *m_commit, *m_e2e; /* time lag, last commit, source → sink latency */
    char label[200];
} runner_t;

/* The record schema inside a field type [null, record] or record; NULL otherwise. */
static const dm_avro_node_t *record_of(const dm_avro_node_t *t)
{
    if (t->type == DM_AVRO_RECORD) return t;
    if (t->type != DM_AVRO_UNION) return NULL;
    for (uint32_t i = 0; i < t->n_branches; i++)
        if (t->branches[i]->type == DM_AVRO_RECORD) return t->branches[i];
    return NULL;
}

static codec_entry_t *codec_for(runner_t *r, uint32_t id, dm_error_t *err)
{
    for (size_t i = 0; i < r->n_codecs; i++)
        if (r->codecs[i].id == id) return &r->codecs[i];
    const dm_sink_env_t *env = &r->c->env;
    const dm_avro_schema_t *s = id == env->value_schema_id ? env->value_schema : NULL;
    if (!s && env->schema_by_id) s = env->schema_by_id(env->schema_ctx, id);
    if (!s) {
        dm_error_set(err, DM_ERR_SCHEMA_MISMATCH, "schema id %u is not in the registry", id);
        return NULL;
    }
    codec_entry_t *grown = realloc(r->codecs, (r->n_codecs + 1) * sizeof(*grown));
    if (!grown) {
        dm_error_set(err, DM_ERR_NOMEM, "out of memory");
        return NULL;
    }
    r->codecs = grown;
    codec_entry_t *e = &r->codecs[r->n_codecs];
    *e = (codec_entry_t){.id = id, .schema = s, .op_idx = -1, .before_idx = -1, .after_idx = -1};
    if (dm_avro_codec_new(s, NULL, NULL, 0, &e->codec, err)) return NULL;
    r->n_codecs++;
    e->row = s->root->type == DM_AVRO_RECORD ? s->root : NULL;
    if (e->row) {
        int op = dm_avro_field_index(s->root, "op"), after = dm_avro_field_index(s->root, "after");
        const dm_avro_node_t *row = after >= 0 ? record_of(s->root->fields[after].type) : NULL;
        if (op >= 0 && row) {
            e->op_idx = op;
            e->after_idx = after;
            e->before_idx = dm_avro_field_index(s->root, "before");
            e->row = row;
        }
    }
    return e;
}

/* The record inside a value of a [null, record] field; NULL when null. */
static const dm_avro_value_t *unwrap_record(const dm_avro_value_t *v)
{
    return v->type == DM_AVRO_RECORD ? v : NULL;
}

/* The op letter of an envelope ('c', 'u', 'd', 'r', 't'); 0 when unreadable. */
static char op_letter(const dm_avro_node_t *t, const dm_avro_value_t *v)
{
    if (v->type == DM_AVRO_STRING && v->len > 0) return (char)v->u.p[0];
    if (v->type == DM_AVRO_ENUM && t->type == DM_AVRO_ENUM && (uint32_t)v->u.i < t->n_symbols)
        return t->symbols[v->u.i][0];
    if (t->type == DM_AVRO_UNION && v->branch < t->n_branches)
        return op_letter(t->branches[v->branch], v);
    return 0;
}

/* Decodes record i of the batch; a reason in why when it cannot be a row. */
static dm_err_t decode_one(runner_t *r, size_t i, dm_error_t *err, char *why, size_t why_cap)
{
    dm_sink_record_t *it = &r->items[i];
    const dm_record_t *rec = &r->recs[i];
    uint32_t id;
    err->message[0] = '\0';
    *it = (dm_sink_record_t){.rec = rec, .partition = r->rec_part[i]};
    if (rec->key_len > 0 && !dm_wire_get_header(rec->key, (size_t)rec->key_len, &id)) {
        codec_entry_t *k = codec_for(r, id, err);
        dm_avro_value_t *kv = dm_arena_alloc(&r->arena, sizeof(*kv));
        if (k && kv &&
            !dm_avro_decode(k->codec, rec->key + DM_WIRE_HEADER,
                            (size_t)rec->key_len - DM_WIRE_HEADER, NULL, &r->arena, kv, err) &&
            kv->type == DM_AVRO_RECORD) {
            it->key_schema = k->schema->root;
            it->key_schema_id = id;
            it->key = kv;
        }
    }
    if (rec->value_len < 0) {
        it->is_delete = true;
        if (it->key) return DM_OK;
        snprintf(why, why_cap, "a tombstone without a decodable key cannot name what to delete");
        return DM_ERR_SCHEMA_MISMATCH;
    }
    if (dm_wire_get_header(rec->value, (size_t)rec->value_len, &id)) {
        snprintf(why, why_cap, "value is not in the Confluent wire format");
        return DM_ERR_SCHEMA_MISMATCH;
    }
    codec_entry_t *e = codec_for(r, id, err);
    dm_avro_value_t *v = dm_arena_alloc(&r->arena, sizeof(*v));
    if (!e || !v ||
        dm_avro_decode(e->codec, rec->value + DM_WIRE_HEADER,
                       (size_t)rec->value_len - DM_WIRE_HEADER, NULL, &r->arena, v, err)) {
        snprintf(why, why_cap, "%s", err->message[0] ? err->message : "out of memory");
        return DM_ERR_SCHEMA_MISMATCH;
    }
    it->value_schema_id = id;
    it->value_schema = e->schema;
    it->value = v;
    it->row_schema = e->row;
    if (!e->row) {
        snprintf(why, why_cap, "value is a %s, not a record",
                 dm_avro_type_name(e->schema->root->type));
        return DM_ERR_SCHEMA_MISMATCH;
    }
    if (e->op_idx < 0) {
        it->row = v;
        return DM_OK;
    }
    char op = op_letter(e->schema->root->fields[e->op_idx].type, &v->u.v[e->op_idx]);
    it->is_delete = op == 'd';
    int idx = it->is_delete ? e->before_idx : e->after_idx;
    it->row = idx >= 0 ? unwrap_record(&v->u.v[idx]) : NULL;
    if (it->row || (it->is_delete && it->key)) return DM_OK;
    snprintf(why, why_cap, "change event with op '%c' has no %s row", op ? op : '?',
             it->is_delete ? "before" : "after");
    return DM_ERR_SCHEMA_MISMATCH;
}

/* ---- reading -------------------------------------------------------------------- */

static dm_err_t grow(runner_t *r, size_t n)
{
    if (r->n + n <= r->cap) return DM_OK;
    size_t cap = r->cap ? r->cap : 1024;
    while (cap < r->n + n)
        cap *= 2;
    dm_record_t *recs = realloc(r->recs, cap * sizeof(*recs));
    if (recs) r->recs = recs;
    int32_t *parts = realloc(r->rec_part, cap * sizeof(*parts));
    if (parts) r->rec_part = parts;
    dm_sink_record_t *items = realloc(r->items, cap * sizeof(*items));
    if (items) r->items = items;
    if (!recs || !parts || !items) return DM_ERR_NOMEM;
    r->cap = cap;
    return DM_OK;
}

/* The last fetch is about to be fetched into again: the batch's records that
 * point into it get their own copy in the batch's arena (and what it had left
 * is read again). With one fetch per batch (the common case) this copies
 * nothing. */
static dm_err_t keep_fetched(runner_t *r)
{
    for (size_t i = r->from_fetch; i < r->n; i++) {
        dm_record_t *d = &r->recs[i];
        if (d->key_len > 0 && !(d->key = dm_arena_memdup(&r->arena, d->key, (size_t)d->key_len)))
            return DM_ERR_NOMEM;
        if (d->value_len > 0 &&
            !(d->value = dm_arena_memdup(&r->arena, d->value, (size_t)d->value_len)))
            return DM_ERR_NOMEM;
    }
    r->from_fetch = SIZE_MAX;
    r->fetch_part = -1;
    return DM_OK;
}

/* Adds records [from, from + take) of the last fetch (partition p) to the
 * batch, pointing into the fetch, and moves p's position past them; the rest
 * stays in the fetch for the next batch. */
static dm_err_t take_fetched(runner_t *r, int32_t p, size_t from, size_t take)
{
    const dm_transport_batch_t *b = &r->fetch;
    if (grow(r, take)) return DM_ERR_NOMEM;
    if (take && r->from_fetch > r->n) r->from_fetch = r->n;
    for (size_t i = from; i < from + take; i++) {
        const dm_record_t *src = &b->records[i];
        r->recs[r->n] = (dm_record_t){.offset = src->offset,
                                      .timestamp = src->timestamp,
                                      .key = src->key,
                                      .key_len = src->key_len,
                                      .value = src->value,
                                      .value_len = src->value_len};
        r->rec_part[r->n++] = p;
        r->bytes +=
            (src->key_len > 0 ? src->key_len : 0) + (src->value_len > 0 ? src->value_len : 0);
    }
    size_t end = from + take;
    /* What was not taken is read again for the next batch (from the fetch
     * while nothing else was fetched). */
    int64_t next =
        end < b->n ? (take ? b->records[end - 1].offset + 1 : r->pos[p]) : b->next_offset;
    if (next > r->pos[p]) r->pos[p] = next;
    r->fetch_part = end < b->n ? p : -1;
    r->fetch_next = end;
    r->fetch_resume = r->pos[p];
    return DM_OK;
}

/* Fills the batch until it is big enough or old enough (or stop). */
static dm_err_t fill(runner_t *r, dm_error_t *err)
{
    const dm_sink_run_config_t *c = r->c;
    const dm_sink_common_config_t *cc = c->conf;
    dm_transport_batch_t *b = &r->fetch;
    int32_t parts = c->env.partitions;
    uint64_t first_ns = 0, start_ns = dm_now_ns();
    /* A checkpointing sink with written records is asked now and then
     * whether its checkpoint is due, also when no record comes. */
    int64_t idle_ms = cc->linger_ms > 100 ? cc->linger_ms : 100;
    while (!atomic_load(&r->status->stop)) {
        bool got = false;
        int64_t lag = 0;
        for (int32_t p = 0; p < parts; p++) {
            size_t from = 0;
            if (r->fetch_part == p && r->fetch_resume == r->pos[p] && r->fetch_next < b->n) {
                from = r->fetch_next; /* what the last fetch had past the last batch */
            } else {
                int64_t waited = first_ns ? (int64_t)((dm_now_ns() - first_ns) / 1000000) : 0;
                int wait = (int)(cc->linger_ms - waited);
                if (wait > 100 / parts) wait = 100 / parts;
                if (wait < 0 || got) wait = 0;
                /* Ask for about what the batch still takes: what is fetched
                 * past batch_records is taken by the next batch. */
                int64_t want = ((int64_t)cc->batch_records - (int64_t)r->n) * r->avg_record * 5 / 4;
                if (want > cc->batch_bytes - r->bytes) want = cc->batch_bytes - r->bytes;
                if (want < 65536) want = 65536;
                if (keep_fetched(r)) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
                dm_err_t rc = dm_transport_fetch(c->transport, c->env.topic, p, r->pos[p],
                                                 (size_t)want, wait, b, err);
                if (rc)
                    return dm_error_prefix(err, "reading %s/%d at offset %lld", c->env.topic, p,
                                           (long long)r->pos[p]);
            }
            size_t take = b->n - from;
            if (take > (size_t)cc->batch_records - r->n) take = (size_t)cc->batch_records - r->n;
            if (take_fetched(r, p, from, take))
                return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
            lag += b->high_watermark > r->pos[p] ? b->high_watermark - r->pos[p] : 0;
            if (b->n > from) got = true;
            if (r->n && !first_ns) first_ns = dm_now_ns();
            if (r->n >= (size_t)cc->batch_records || r->bytes >= cc->batch_bytes) break;
        }
        atomic_store(&r->status->lag, lag);
        if (r->m_lag) dm_metric_set(r->m_lag, lag);
        if (r->n >= (size_t)cc->batch_records || r->bytes >= cc->batch_bytes) return DM_OK;
        if (first_ns && (int64_t)((dm_now_ns() - first_ns) / 1000000) >= cc->linger_ms)
            return DM_OK;
        if (r->open && !r->n && (int64_t)((dm_now_ns() - start_ns) / 1000000) >= idle_ms)
            return DM_OK;
    }
    return DM_OK;
}

/* ---- schema versions ---------------------------------------------------------------- */

static bool seen(const runner_t *r, uint32_t id)
{
    for (size_t i = 0; i < r->n_seen; i++)
        if (r->seen[i] == id) return true;
    return false;
}

/* Remembers the value schema ids the sink met in the batch just written
 * (not those of records it never got: they could not be decoded). */
static void mark_seen(runner_t *r)
{
    if (!r->unseen) return;
    for (size_t i = 0; i < r->n; i++) {
        if (dm_sink_rejected(&r->undecodable, i)) continue;
        uint32_t id = r->items[i].value_schema_id;
        if (!id || seen(r, id)) continue;
        if (r->n_seen == r->cap_seen) {
            size_t cap = r->cap_seen ? r->cap_seen * 2 : 8;
            uint32_t *grown = realloc(r->seen, cap * sizeof(*grown));
            if (!grown) return; /* only costs an extra cut later */
            r->seen = grown;
            r->cap_seen = cap;
        }
        r->seen[r->n_seen++] = id;
    }
}

/* Decodes every record of the batch; those that cannot be rows are dead
 * letters whatever the destination says. */
static void decode_batch(runner_t *r)
{
    /* One error for the batch: zeroing its 500 bytes per record shows. */
    dm_error_t err;
    dm_error_clear(&err);
    uint32_t known = 0; /* the last id found among the seen ones */
    rejects_reset(&r->undecodable, r->n);
    r->unseen = false;
    for (size_t i = 0; i < r->n; i++) {
        char why[300];
        if (decode_one(r, i, &err, why, sizeof(why))) {
            dm_sink_reject(&r->undecodable, i, "%s", why);
            continue;
        }
        uint32_t id = r->items[i].value_schema_id;
        if (id && id != known) {
            if (seen(r, id))
                known = id;
            else
                r->unseen = true;
        }
    }
}

/* The value schema id of the first record the sink will be handed when no
 * earlier batch had it; 0 otherwise. */
static uint32_t new_version_first(const runner_t *r)
{
    if (!r->unseen) return 0;
    for (size_t i = 0; i < r->n; i++) {
        if (dm_sink_rejected(&r->undecodable, i)) continue;
        uint32_t id = r->items[i].value_schema_id;
        return id && !seen(r, id) ? id : 0;
    }
    return 0;
}

/* Ends the decoded batch before the first record the sink would be handed
 * after another one and whose schema id no earlier batch had: a new schema
 * version starts a batch, so a sink meets it before anything else of its
 * batch, after everything before it is written (the iceberg sink commits
 * there and evolves its table; an Avro file rolls). What is cut off is read
 * again. Undecodable records do not count: the sink never gets them. */
static void cut_at_new_schema(runner_t *r)
{
    if (!r->unseen) return;
    uint32_t allowed = new_version_first(r);
    bool handed = false;
    size_t cut = r->n;
    for (size_t i = 0; i < r->n && cut == r->n; i++) {
        if (dm_sink_rejected(&r->undecodable, i)) continue;
        uint32_t id = r->items[i].value_schema_id;
        if (handed && id && id != allowed && !seen(r, id)) cut = i;
        handed = true;
    }
    if (cut == r->n) return;
    /* Backwards, so each partition resumes at its first record cut off. */
    for (size_t i = r->n; i-- > cut;)
        r->pos[r->rec_part[i]] = r->recs[i].offset;
    r->n = cut;
    r->bytes = 0;
    for (size_t i = 0; i < cut; i++)
        r->bytes += (r->recs[i].key_len > 0 ? r->recs[i].key_len : 0) +
                    (r->recs[i].value_len > 0 ? r->recs[i].value_len : 0);
    /* Dead letters beyond the cut are found again when those are read. */
    size_t keep = 0;
    while (keep < r->undecodable.n && r->undecodable.items[keep].index < cut)
        keep++;
    r->undecodable.n = keep;
}

/* ---- dead letters ----------------------------------------------------------------- */

static int by_index(const void *a, const void *b)
{
    size_t x = ((const reject_t *)a)->index, y = ((const reject_t *)b)->index;
    return x < y ? -1 : x > y;
}

/* Sends the rejected records to the dead-letter topic, in input order. */
static dm_err_t produce_dead(runner_t *r, dm_error_t *err)
{
    const dm_sink_rejects_t *rj = &r->rejects;
    if (!rj->n) return DM_OK;
    qsort(rj->items, rj->n, sizeof(reject_t), by_index);
    if (!r->c->dead_letter_topic)
        return dm_error_set(
            err, DM_ERR_CONNECTOR,
            "offset %lld was refused for good and there is no dead-letter topic: %s",
            (long long)r->recs[rj->items[0].index].offset, rj->items[0].reason);
    char processor[64];
    snprintf(processor, sizeof(processor), "sink:%s", r->c->ops->name);
    dm_record_t *recs = calloc(rj->n, sizeof(*recs));
    dm_dlq_record_t *dls = calloc(rj->n, sizeof(*dls));
    dm_err_t rc = DM_OK;
    if (!recs || !dls) {
        rc = dm_error_set(err, DM_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < rj->n; i++) {
        const reject_t *d = &rj->items[i];
        dm_dlq_record_make(&recs[i], &dls[i], &r->recs[d->index], d->reason, processor,
                           r->c->env.topic, r->rec_part[d->index]);
    }
    rc = dm_transport_produce(r->c->transport, r->c->dead_letter_topic, 0, recs, rj->n, NULL, err);
    if (rc) dm_error_prefix(err, "writing dead letters to %s", r->c->dead_letter_topic);
out:
    free(recs);
    free(dls);
    return rc;
}

/* ---- the loop --------------------------------------------------------------------- */

static void open_metrics(runner_t *r)
{
    dm_metrics_t *m = r->c->metrics;
    if (!m) return;
    char name[200], labels[300];
    dm_metrics_escape(r->c->env.name ? r->c->env.name : r->c->env.group, name, sizeof(name));
    snprintf(labels, sizeof(labels), "sink=\"%s\",type=\"%s\"", name, r->c->ops->name);
    r->m_records = dm_metrics_counter(m, "datamesh_sink_records_total",
                                      "records written to the destination", labels);
    r->m_bytes = dm_metrics_counter(m, "datamesh_sink_bytes_total",
                                    "bytes read for the destination", labels);
    r->m_retries = dm_metrics_counter(m, "datamesh_sink_retries_total",
                                      "failed attempts to write a batch (retried)", labels);
    r->m_dead = dm_metrics_counter(m, "datamesh_sink_dead_letters_total",
                                   "records the destination refused, sent to the dead-letter topic",
                                   labels);
    r->m_lag = dm_metrics_gauge(m, "datamesh_sink_input_lag_records",
                                "records in the input topic not yet written", labels);
    static const double bounds[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                    0.5,   1,     2.5,  5,     10,   30,  60};
    r->m_latency =
        dm_metrics_histogram(m, "datamesh_sink_batch_seconds", "time to write and flush one batch",
                             labels, bounds, sizeof(bounds) / sizeof(bounds[0]), 1e6);
    r->m_lag_s = dm_metrics_time_gauge(
        m, "datamesh_sink_input_lag_seconds",
        "age of the oldest record read for the destination and not written yet (0: none)", labels,
        DM_GAUGE_AGE_MS);
    r->m_commit = dm_metrics_time_gauge(
        m, "datamesh_sink_last_commit_timestamp_seconds",
        "when the sink last wrote a batch for good (its start before the first)", labels,
        DM_GAUGE_TIME_MS);
    if (r->m_commit) dm_metric_set(r->m_commit, dm_wall_ms());
    static const double e2e_bounds[] = {0.01, 0.05, 0.1, 0.25, 0.5, 1,   2.5,
                                        5,    10,   30,  60,   300, 900, 3600};
    r->m_e2e = dm_metrics_histogram(
        m, "datamesh_sink_end_to_end_seconds",
        "from a record's timestamp (its source commit) to the sink writing it for good", labels,
        e2e_bounds, sizeof(e2e_bounds) / sizeof(e2e_bounds[0]), 1e3);
}

/* After a batch is written: each record's time from its source commit to
 * now, and no record waiting any more; committed: the batch is also
 * committed for good (a checkpointing sink commits in checkpoint()). */
static void note_written(runner_t *r, bool committed)
{
    int64_t now = dm_wall_ms();
    if (r->m_commit && committed) dm_metric_set(r->m_commit, now);
    if (r->m_lag_s) dm_metric_set(r->m_lag_s, 0);
    if (!r->m_e2e) return;
    dm_metric_local_t l;
    memset(&l, 0, sizeof(l));
    for (size_t i = 0; i < r->n; i++) {
        int64_t ts = r->recs[i].timestamp;
        if (ts > 0) dm_metric_local_observe(r->m_e2e, &l, (uint64_t)(now > ts ? now - ts : 0));
    }
    dm_metric_observe_local(r->m_e2e, &l);
}

/* The failure policy (connectors/unit.h) with the destination's words
 * (secrets out): "retrying" and a wait, or "failed" when retrying cannot
 * help. True: stop (failed, or stopped while waiting). */
static bool retry_wait(runner_t *r, const char *what, const dm_error_t *err, int64_t *backoff)
{
    char clean[DM_ERROR_MSG_MAX + 64];
    dm_redact_dsn(err->message, clean, sizeof(clean));
    if (!dm_unit_should_retry(err)) {
        dm_unit_set(r->status, DM_UNIT_FAILED, "%s: %s", what, clean);
        DM_ERROR("sink", "%s sink=%s: %s: %s; stopped (retrying cannot help)", r->label,
                 r->c->ops->name, what, clean);
        return true;
    }
    dm_unit_set(r->status, DM_UNIT_RETRYING, "%s: %s", what, clean);
    r->running = false;
    DM_WARN("sink", "%s sink=%s: %s: %s; retrying in %lld ms", r->label, r->c->ops->name, what,
            clean, (long long)*backoff);
    if (r->m_retries) dm_metric_add(r->m_retries, 1);
    const dm_sink_common_config_t *cc = r->c->conf;
    bool stopped = dm_unit_sleep(r->status, *backoff);
    *backoff = *backoff * 2 > cc->retry_max_ms ? cc->retry_max_ms : *backoff * 2;
    return stopped;
}

static void start_positions(runner_t *r)
{
    const dm_sink_run_config_t *c = r->c;
    dm_error_t err = {0};
    int32_t parts = c->env.partitions;
    for (int32_t p = 0; p < parts; p++)
        r->pos[p] = -1;
    int64_t backoff = 200;
    while (c->ops->positions && !atomic_load(&r->status->stop)) {
        if (!c->ops->positions(r->state, r->pos, &err)) break;
        for (int32_t p = 0; p < parts; p++)
            r->pos[p] = -1;
        if (retry_wait(r, "reading the positions stored at the destination", &err, &backoff)) break;
    }
    for (int32_t p = 0; p < parts; p++) {
        int64_t end;
        if (r->pos[p] >= 0) continue;
        if (dm_transport_group_offset(c->transport, c->env.group, c->env.topic, p, &r->pos[p],
                                      &err) &&
            dm_transport_offsets(c->transport, c->env.topic, p, &r->pos[p], &end, &err))
            r->pos[p] = 0;
    }
}

/* Gives up the open checkpoint of a checkpointing sink after an error (the
 * sink dropped it): waits, then reads again from the positions the
 * destination holds. False when stopped meanwhile. */
static bool rewind_to_positions(runner_t *r, const char *what, const dm_error_t *err,
                                int64_t *backoff)
{
    r->open = false;
    r->staged_records = r->staged_bytes = 0;
    if (retry_wait(r, what, err, backoff)) return false;
    start_positions(r);
    return !atomic_load(&r->status->stop);
}

/* Asks a checkpointing sink to commit its open checkpoint (when due, or now
 * when force); once committed, the group offsets follow (for lag only: the
 * sink resumes from its own positions) and the records count as written. */
static dm_err_t checkpoint(runner_t *r, bool force, dm_error_t *err)
{
    const dm_sink_run_config_t *c = r->c;
    bool committed = false;
    dm_err_t rc = c->ops->checkpoint(r->state, force, &committed, err);
    if (rc || !committed) return rc;
    r->open = false;
    if (r->m_commit) dm_metric_set(r->m_commit, dm_wall_ms());
    dm_error_t ignored = {0};
    size_t n_off = 0;
    for (int32_t p = 0; p < c->env.partitions; p++)
        if (r->offsets[p].topic) n_off++;
    if (n_off) dm_transport_group_commit(c->transport, c->env.group, r->offsets, n_off, &ignored);
    if (r->m_records) dm_metric_add(r->m_records, r->staged_records);
    if (r->m_bytes) dm_metric_add(r->m_bytes, r->staged_bytes);
    r->staged_records = r->staged_bytes = 0;
    return DM_OK;
}

/* Writes the assembled batch until it is written (or stop). False only when
 * stopped. */
static bool deliver(runner_t *r)
{
    const dm_sink_run_config_t *c = r->c;
    const bool cp = c->ops->checkpoint != NULL;
    dm_error_t err = {0};
    int64_t backoff = 200;
    decode_batch(r);
    cut_at_new_schema(r);
    if (r->m_lag_s && r->n) dm_metric_set(r->m_lag_s, r->recs[0].timestamp);
    /* A new schema version starts a new checkpoint. r->offsets still holds
     * the last written batch's ends, which that checkpoint commits. */
    if (cp && r->open && new_version_first(r) && checkpoint(r, true, &err))
        return rewind_to_positions(r, "committing before a new schema version", &err, &backoff);
    size_t n_off = 0;
    for (int32_t p = 0; p < c->env.partitions; p++)
        r->offsets[n_off++] = (dm_tp_offset_t){c->env.topic, p, r->pos[p]};
    dm_sink_batch_t b = {.records = r->items,
                         .n = r->n,
                         .offsets = r->offsets,
                         .n_offsets = n_off,
                         .bytes = r->bytes};
    bool written = false;
    while (!atomic_load(&r->status->stop)) {
        uint64_t t0 = dm_now_ns();
        rejects_reset(&r->rejects, r->n);
        for (size_t i = 0; i < r->undecodable.n; i++)
            dm_sink_reject(&r->rejects, r->undecodable.items[i].index, "%s",
                           r->undecodable.items[i].reason);
        if (c->ops->write(r->state, &b, &r->rejects, &err)) {
            if (cp) return rewind_to_positions(r, "writing", &err, &backoff);
            if (retry_wait(r, "writing", &err, &backoff)) return false;
            continue;
        }
        if (cp) r->open = true;
        /* Only the dead letters are sent again: the rows are written. */
        bool dead_sent = false;
        while (!(dead_sent = !produce_dead(r, &err)))
            if (retry_wait(r, "dead letters", &err, &backoff)) break;
        if (!dead_sent) {
            /* Stopped with dead letters unsent: nothing of this batch may commit. */
            r->open = false;
            return false;
        }
        if (c->ops->flush && c->ops->flush(r->state, &b, &err)) {
            if (retry_wait(r, "flushing", &err, &backoff)) return false;
            continue;
        }
        if (r->m_latency) dm_metric_observe(r->m_latency, (dm_now_ns() - t0) / 1000);
        written = true;
        break;
    }
    if (!written) return false; /* stopped first */
    mark_seen(r);
    if (r->m_dead) dm_metric_add(r->m_dead, r->rejects.n);
    atomic_fetch_add(&r->status->position, (int64_t)r->n);
    if (cp) {
        r->staged_records += r->n - r->rejects.n;
        r->staged_bytes += (uint64_t)r->bytes;
        if (checkpoint(r, false, &err)) return rewind_to_positions(r, "committing", &err, &backoff);
        note_written(r, false);
        return true;
    }
    /* Group offsets: where at-least-once sinks resume (exactly-once ones read
     * their own positions first). */
    while (dm_transport_group_commit(c->transport, c->env.group, r->offsets, n_off, &err))
        if (retry_wait(r, "committing offsets", &err, &backoff)) return false;
    if (r->m_records) dm_metric_add(r->m_records, r->n - r->rejects.n);
    if (r->m_bytes) dm_metric_add(r->m_bytes, (uint64_t)r->bytes);
    note_written(r, true);
    return true;
}

/* Opens the sink, retrying with backoff; false when stopped or when open
 * failed for good (err->fatal: the unit is "failed"). */
static bool open_sink(runner_t *r)
{
    const dm_sink_run_config_t *c = r->c;
    dm_error_t err = {0};
    int64_t backoff = 200;
    while (!atomic_load(&r->status->stop)) {
        if (!c->ops->open(c->conf, &c->env, &r->state, &err)) return true;
        r->state = NULL;
        if (err.fatal) {
            char clean[DM_ERROR_MSG_MAX + 64];
            dm_redact_dsn(err.message, clean, sizeof(clean));
            dm_unit_set(r->status, DM_UNIT_FAILED, "%s", clean);
            DM_ERROR("sink", "%s sink=%s: cannot start: %s", r->label, c->ops->name, clean);
            r->failed = true;
            return false;
        }
        if (retry_wait(r, "opening", &err, &backoff)) return false;
    }
    return false;
}

void dm_sink_run(const dm_sink_run_config_t *c, dm_unit_status_t *status)
{
    runner_t r = {.c = c, .status = status, .avg_record = 256, .fetch_part = -1};
    int32_t parts = c->env.partitions > 0 ? c->env.partitions : 1;
    snprintf(r.label, sizeof(r.label), "%s", c->env.name ? c->env.name : c->env.group);
    dm_arena_init(&r.arena, 1 << 20);
    r.pos = calloc((size_t)parts, sizeof(int64_t));
    r.saved = calloc((size_t)parts, sizeof(int64_t));
    r.offsets = calloc((size_t)parts, sizeof(dm_tp_offset_t));
    dm_error_t err = {0};
    open_metrics(&r);
    dm_unit_set(status, DM_UNIT_STARTING, NULL);
    if (open_sink(&r)) start_positions(&r);
    /* opening or reading the positions failed for good */
    r.failed |= dm_unit_state(status) == DM_UNIT_FAILED;
    if (r.state && !r.failed) dm_unit_set(status, DM_UNIT_RUNNING, NULL);
    r.running = true;
    int64_t backoff = 200;
    while (r.state && !r.failed && !atomic_load(&status->stop)) {
        dm_arena_reset(&r.arena);
        r.n = 0;
        r.bytes = 0;
        r.from_fetch = SIZE_MAX;
        memcpy(r.saved, r.pos, (size_t)parts * sizeof(int64_t));
        if (fill(&r, &err)) {
            memcpy(r.pos, r.saved, (size_t)parts * sizeof(int64_t));
            backoff = 200;
            if (retry_wait(&r, "reading", &err, &backoff)) break;
            continue;
        }
        if (!r.n) {
            /* Idle: a checkpoint may be due by age. */
            backoff = 200;
            if (r.open && checkpoint(&r, false, &err) &&
                !rewind_to_positions(&r, "committing", &err, &backoff))
                break;
            continue;
        }
        r.avg_record = r.bytes / (int64_t)r.n + 16;
        if (!deliver(&r)) break;
        if (!r.running) dm_unit_set(status, DM_UNIT_RUNNING, NULL);
        r.running = true;
    }
    /* A clean stop commits what is open, so nothing is read twice. */
    if (r.state && r.open && checkpoint(&r, true, &err)) {
        char clean[DM_ERROR_MSG_MAX + 64];
        dm_redact_dsn(err.message, clean, sizeof(clean));
        DM_WARN("sink", "%s sink=%s: final commit: %s", r.label, c->ops->name, clean);
    }
    if (r.state) c->ops->close(r.state);
    dm_transport_batch_free(c->transport, &r.fetch);
    dm_arena_destroy(&r.arena);
    free(r.recs);
    free(r.rec_part);
    free(r.items);
    free(r.pos);
    free(r.saved);
    free(r.offsets);
    free(r.seen);
    for (size_t i = 0; i < r.n_codecs; i++)
        dm_avro_codec_free(r.codecs[i].codec);
    free(r.codecs);
    free(r.rejects.items);
    free(r.rejects.marked);
    free(r.undecodable.items);
    free(r.undecodable.marked);
    if (!r.failed && dm_unit_state(status) != DM_UNIT_FAILED)
        dm_unit_set(status, DM_UNIT_STOPPED, NULL);
}
