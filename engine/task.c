/* engine/task.c — one input partition through a fused chain, exactly once. */
#include "engine/task.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "engine/expr.h"
#include "engine/rekey.h"
#include "schema/dm_schema_compat.h"
#include "schema/wire.h"
#include "transport/txn_builder.h"

typedef struct proc_metrics {
    dm_metric_t *in, *out, *dead;
} proc_metrics_t;

/* One dead letter ready to produce: where its bytes and headers are. */
typedef struct dlq_item {
    size_t fetch_index;
    char reason[256];
    const char *processor;
} dlq_item_t;

/* A decoder for values of another schema version than the input's. */
typedef struct version_codec {
    uint32_t id;
    dm_avro_codec_t *codec; /* NULL: resolution cannot read it (why says so) */
    char why[240];
} version_codec_t;

/* One input partition: the first is the config's input, more for a union. */
typedef struct input {
    const char *topic;
    int32_t partition;
    uint32_t schema_id;
    uint32_t newest_id; /* ids above it are versions the plan did not know */
    version_codec_t *versions;
    size_t n_versions;
    const dm_avro_schema_t *writer;
    dm_avro_schema_t *reader; /* union inputs: the primary shape under their name */
    dm_avro_codec_t *codec;
    int64_t position, lag;
    bool other;        /* the join's other source */
    int64_t max_event; /* largest event time read from this input; INT64_MIN before any */
    int64_t last_ms;   /* wall clock of its last records (of the task's start before any) */
} input_t;

struct dm_task {
    dm_transport_t *t;
    input_t *in;
    size_t n_in, cur, next_in; /* cur: the input of this step */
    dm_task_config_t conf;
    dm_proc_t **procs;
    proc_metrics_t *pm;
    const dm_avro_node_t *out_schema;
    dm_rows_t *rows;    /* rows[0]: decoded input; rows[i + 1]: output of procs[i] */
    size_t join_step;   /* the step that reads the other inputs (join), if any */
    dm_rows_t *decoded; /* where this step's input was decoded */
    dm_dead_letters_t dead;
    dm_transport_batch_t fetch;
    int32_t out_partitions, dlq_partitions;
    /* per step, reused */
    dm_buf_t out_bytes;
    size_t n_out, out_cap; /* output records of this step; room for */
    bool chunked;          /* the chain runs a fetch in chunks (see CHUNK) */
    dm_record_t *out_recs;
    int32_t *out_part;
    dlq_item_t *dlq;
    size_t n_dlq, cap_dlq;
    uint16_t *out_which; /* output of each record: 0 main, i + 1 extra_topics[i] */
    int32_t *extra_partitions;
    /* time and state */
    dm_expr_t *event_time;
    dm_expr_t *other_event_time; /* the same field in the join's other source */
    bool timed;                  /* some step reacts to watermarks */
    bool stateful;               /* some step keeps state */
    bool broken;                 /* a step failed after state changed: restore first */
    int64_t max_event_time;      /* what the watermark follows (see event_basis) */
    int64_t logged_max_event;    /* what the state topic holds */
    int64_t watermark;
    dm_buf_t state_bytes;
    dm_record_t *state_recs;
    size_t n_state, cap_state;
    dm_metric_t *m_in, *m_out, *m_dead, *m_lag, *m_latency, *m_wm;
    dm_metric_t *m_lag_s, *m_wm_lag; /* age gauges: oldest unprocessed record, watermark */
    /* re-keying: the watermark of each task writing the input (reader), and
     * when its last marker came */
    int64_t *prod_wm, *prod_last_ms;
    dm_metric_t **m_state; /* per step: bytes of state in memory */
    /* the step's transaction: topics declared once, memory reused */
    dm_txn_builder_t txn;
    int txn_out, txn_dlq, txn_state; /* topic handles; -1: not written */
    int *txn_extra;
    dm_record_t *dlq_recs; /* the step's dead letters as records (cap_dlq of them) */
    dm_dlq_record_t *dlq_hdrs;
    const char **paths; /* the fields the chain reads (decoder projection) */
    size_t n_paths;
    dm_record_t marker; /* the step's watermark marker */
    dm_record_header_t marker_h[2];
    char marker_wm[24], marker_producer[24];
};

/* Key of the task's own record in the state topic (steps use 0..254). */
#define META_STEP 0xff

static const double latency_bounds[] = {0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5};

static void register_metrics(dm_task_t *task)
{
    dm_metrics_t *m = task->conf.metrics;
    if (!m) return;
    char labels[256], esc[200];
    dm_metrics_escape(task->conf.name, esc, sizeof(esc));
    snprintf(labels, sizeof(labels), "task=\"%s\"", esc);
    task->m_in = dm_metrics_counter(m, "datamesh_task_records_in_total", "records read", labels);
    task->m_out =
        dm_metrics_counter(m, "datamesh_task_records_out_total", "records written", labels);
    task->m_dead = dm_metrics_counter(m, "datamesh_task_dead_letters_total",
                                      "records sent to the dead-letter topic", labels);
    task->m_lag = dm_metrics_gauge(m, "datamesh_task_input_lag_records",
                                   "committed input records not processed yet", labels);
    task->m_latency = dm_metrics_histogram(m, "datamesh_task_batch_seconds",
                                           "time to process and commit one batch", labels,
                                           latency_bounds, 10, 1e6);
    task->m_lag_s = dm_metrics_time_gauge(
        m, "datamesh_task_input_lag_seconds",
        "age of the oldest input record not processed yet (its timestamp to now; 0 caught up)",
        labels, DM_GAUGE_AGE_MS);
    if (task->timed) {
        task->m_wm =
            dm_metrics_time_gauge(m, "datamesh_task_watermark_timestamp_seconds",
                                  "event-time watermark of the task", labels, DM_GAUGE_TIME_MS);
        task->m_wm_lag = dm_metrics_time_gauge(m, "datamesh_task_watermark_lag_seconds",
                                               "how far the event-time watermark is behind now",
                                               labels, DM_GAUGE_AGE_MS);
    }
    for (size_t i = 0; i < task->conf.n_steps; i++) {
        snprintf(labels, sizeof(labels), "task=\"%s\",processor=\"%s\",step=\"%zu\"", esc,
                 task->procs[i]->ops->name, i);
        task->pm[i].in = dm_metrics_counter(m, "datamesh_processor_records_in_total",
                                            "records into a processor", labels);
        task->pm[i].out = dm_metrics_counter(m, "datamesh_processor_records_out_total",
                                             "records out of a processor", labels);
        task->pm[i].dead = dm_metrics_counter(m, "datamesh_processor_dead_letters_total",
                                              "records a processor could not handle", labels);
        if (task->procs[i]->kv && task->m_state)
            task->m_state[i] = dm_metrics_gauge(m, "datamesh_processor_state_bytes",
                                                "keyed state held in memory", labels);
    }
}

static void add(dm_metric_t *m, uint64_t n)
{
    if (m) dm_metric_add(m, n);
}

/* Paths the decoder must produce: what the processors up to the first one that
 * changes the schema read. When none changes it, the input flows out whole. */
static dm_err_t decoder_paths(dm_task_t *task, const char ***paths, size_t *n)
{
    *paths = NULL;
    *n = 0;
    bool changes = false;
    for (size_t i = 0; i < task->conf.n_steps && !changes; i++)
        changes = task->procs[i]->output;
    if (!changes) return DM_OK;
    size_t cap = 0;
    for (size_t i = 0; i < task->conf.n_steps; i++) {
        dm_proc_t *p = task->procs[i];
        if (!p->ops->read_paths) { /* reads everything */
            free(*paths);
            *paths = NULL;
            *n = 0;
            return DM_OK;
        }
        const char *const *ps;
        size_t k = p->ops->read_paths(p, &ps);
        for (size_t j = 0; j < k; j++) {
            bool dup = false;
            for (size_t q = 0; q < *n && !dup; q++)
                dup = !strcmp((*paths)[q], ps[j]);
            if (dup) continue;
            if (*n == cap) {
                cap = cap ? cap * 2 : 16;
                const char **np = realloc(*paths, cap * sizeof(*np));
                if (!np) return DM_ERR_NOMEM;
                *paths = np;
            }
            (*paths)[(*n)++] = ps[j];
        }
        if (p->output) break;
    }
    if (task->event_time && *n) {
        const char *const *ps;
        size_t k = dm_expr_paths(task->event_time, &ps);
        for (size_t j = 0; j < k; j++) {
            bool dup = false;
            for (size_t q = 0; q < *n && !dup; q++)
                dup = !strcmp((*paths)[q], ps[j]);
            if (dup) continue;
            if (*n == cap) {
                cap = cap ? cap * 2 : 16;
                const char **np = realloc(*paths, cap * sizeof(*np));
                if (!np) return DM_ERR_NOMEM;
                *paths = np;
            }
            (*paths)[(*n)++] = ps[j];
        }
    }
    return DM_OK;
}

static int32_t partitions_of(dm_transport_t *t, const char *topic, dm_error_t *err)
{
    dm_topic_description_t d;
    if (dm_transport_describe_topic(t, topic, &d, err)) return -1;
    int32_t n = d.n_partitions;
    dm_transport_description_free(&d);
    return n;
}

/* Event time, state and extra outputs: what the chain's processors need. */
static dm_err_t open_time_and_state(dm_task_t *task, dm_error_t *err)
{
    const dm_task_config_t *conf = &task->conf;
    dm_err_t rc;
    if (conf->event_time) {
        rc = dm_expr_compile(conf->event_time, conf->input_schema->root, &task->event_time, err);
        if (rc) return dm_error_prefix(err, "task %s: event time", conf->name);
        dm_expr_type_t ty = dm_expr_result_type(task->event_time);
        if (ty != DM_EXPR_LONG && ty != DM_EXPR_TIMESTAMP)
            return dm_error_set(err, DM_ERR_INVALID,
                                "task %s: event time '%s' is a %s; it must be a long (ms since "
                                "the epoch) or a timestamp",
                                conf->name, conf->event_time, dm_expr_type_name(ty));
        if (conf->n_other_inputs &&
            (rc = dm_expr_compile(conf->event_time, conf->other_inputs[0].schema->root,
                                  &task->other_event_time, err)))
            return dm_error_prefix(err, "task %s: event time in %s", conf->name,
                                   conf->other_inputs[0].topic);
    }
    size_t extra = 0;
    task->chunked = true;
    task->timed = conf->watermark_out; /* its watermark goes downstream */
    for (size_t i = 0; i < conf->n_steps; i++) {
        dm_proc_t *p = task->procs[i];
        task->timed |= p->ops->on_watermark != NULL;
        task->chunked &= !p->ops->on_watermark && !p->ops->on_timer && !p->ops->stateful;
        if (p->ops->stateful) {
            task->stateful = true;
            if (!conf->state_topic)
                return dm_error_set(err, DM_ERR_INVALID,
                                    "task %s: step %zu (%s) keeps state: a state topic is required",
                                    conf->name, i + 1, p->ops->name);
            if (i >= META_STEP)
                return dm_error_set(err, DM_ERR_INVALID, "task %s: too many steps keep state",
                                    conf->name);
        }
        const char *const *names;
        size_t k = p->ops->outputs ? p->ops->outputs(p, &names) : 0;
        if (k > extra) extra = k;
    }
    if (extra > conf->n_extra_topics)
        return dm_error_set(
            err, DM_ERR_INVALID,
            "task %s: the chain writes %zu extra output(s), the task has %zu topic(s) "
            "for them",
            conf->name, extra, conf->n_extra_topics);
    task->extra_partitions = calloc(conf->n_extra_topics + 1, sizeof(int32_t));
    task->m_state = calloc(conf->n_steps + 1, sizeof(*task->m_state));
    if (!task->extra_partitions || !task->m_state)
        return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < conf->n_extra_topics; i++)
        if ((task->extra_partitions[i] = partitions_of(task->t, conf->extra_topics[i], err)) <= 0)
            return err ? err->code : DM_ERR_NOT_FOUND;
    if (task->stateful) {
        int32_t n = partitions_of(task->t, conf->state_topic, err);
        if (n <= 0) return err ? err->code : DM_ERR_NOT_FOUND;
        if (n <= conf->input_partition)
            return dm_error_set(err, DM_ERR_INVALID,
                                "task %s: state topic %s has %d partition(s); input partition %d "
                                "needs its own",
                                conf->name, conf->state_topic, n, conf->input_partition);
        dm_err_t rc = dm_txn_builder_topic(&task->txn, conf->state_topic, n, &task->txn_state, err);
        if (rc) return rc;
    }
    return DM_OK;
}

/* Applies one changelog record to the step's store (or the task's own record). */
static dm_err_t apply_state_record(dm_task_t *task, const dm_record_t *r, dm_error_t *err)
{
    if (r->key_len < 1)
        return dm_error_set(err, DM_ERR_CORRUPT, "state topic %s/%d offset %lld: no key",
                            task->conf.state_topic, task->conf.input_partition,
                            (long long)r->offset);
    uint8_t step = r->key[0];
    if (step == META_STEP) {
        if (r->value_len != 8)
            return dm_error_set(err, DM_ERR_CORRUPT,
                                "state topic %s/%d offset %lld: task record of %d bytes",
                                task->conf.state_topic, task->conf.input_partition,
                                (long long)r->offset, r->value_len);
        uint64_t v = 0;
        for (int i = 0; i < 8; i++)
            v = v << 8 | r->value[i];
        task->max_event_time = (int64_t)v;
        return DM_OK;
    }
    if (step >= task->conf.n_steps || !task->procs[step]->kv)
        return dm_error_set(err, DM_ERR_CORRUPT,
                            "state topic %s/%d offset %lld: state of step %u, which keeps none "
                            "(did the pipeline's steps change?)",
                            task->conf.state_topic, task->conf.input_partition,
                            (long long)r->offset, step + 1);
    dm_state_t *kv = task->procs[step]->kv;
    if (r->value_len < 0) return dm_state_del(kv, r->key + 1, (size_t)r->key_len - 1, err);
    return dm_state_put(kv, r->key + 1, (size_t)r->key_len - 1, r->value, (size_t)r->value_len,
                        err);
}

static int64_t watermark_of(const dm_task_t *task, int64_t max_event)
{
    if (max_event == INT64_MIN) return INT64_MIN;
    return max_event - task->conf.out_of_orderness_ms;
}

static dm_err_t commit_stores(dm_task_t *task, dm_error_t *err)
{
    for (size_t i = 0; i < task->conf.n_steps; i++) {
        dm_proc_t *p = task->procs[i];
        if (!p->kv) continue;
        dm_err_t rc = dm_state_commit(p->kv, err);
        if (rc) return rc;
        if (task->m_state && task->m_state[i])
            dm_metric_set(task->m_state[i], (int64_t)dm_state_memory_bytes(p->kv));
    }
    return DM_OK;
}

/* Rebuilds every store from the state topic (fresh ones), then lets the
 * processors rebuild what they derive from it. */
static dm_err_t restore_state(dm_task_t *task, dm_error_t *err)
{
    task->max_event_time = task->logged_max_event = task->watermark = INT64_MIN;
    if (!task->stateful) return DM_OK;
    const dm_task_config_t *conf = &task->conf;
    dm_err_t rc;
    for (size_t i = 0; i < conf->n_steps; i++) {
        char dir[4200];
        snprintf(dir, sizeof(dir), "%s/%zu", conf->state_dir ? conf->state_dir : "", i);
        rc = dm_proc_reset_state(task->procs[i], conf->state_dir ? dir : NULL,
                                 conf->state_spill_bytes, err);
        if (rc) return rc;
    }
    int64_t off, end;
    rc = dm_transport_offsets(task->t, conf->state_topic, conf->input_partition, &off, &end, err);
    dm_transport_batch_t b = {0};
    while (!rc && off < end) {
        rc = dm_transport_fetch(task->t, conf->state_topic, conf->input_partition, off, 1 << 20, 0,
                                &b, err);
        if (rc) break;
        if (b.n == 0 && b.next_offset <= off) break; /* nothing more committed */
        for (size_t i = 0; i < b.n && !rc; i++)
            rc = apply_state_record(task, &b.records[i], err);
        off = b.next_offset;
        if (!rc) rc = commit_stores(task, err); /* restored, not new: and may spill */
    }
    if (b.impl) dm_transport_batch_free(task->t, &b);
    if (rc) return dm_error_prefix(err, "task %s: restoring state", conf->name);
    task->logged_max_event = task->max_event_time;
    task->watermark = watermark_of(task, task->max_event_time);
    for (size_t i = 0; i < task->n_in; i++) /* no input holds it below where it was */
        task->in[i].max_event = task->max_event_time;
    for (size_t i = 0; i < conf->n_steps; i++) {
        dm_proc_t *p = task->procs[i];
        p->watermark = task->watermark;
        if (p->ops->restore && (rc = p->ops->restore(p, err)))
            return dm_error_prefix(err, "task %s: step %zu (%s): restoring state", conf->name,
                                   i + 1, p->ops->name);
    }
    return DM_OK;
}

dm_err_t dm_task_union_reader(const dm_avro_schema_t *primary, const dm_avro_schema_t *other,
                              dm_avro_schema_t **reader, dm_error_t *err)
{
    *reader = NULL;
    const dm_avro_node_t *o = other->root;
    if (o->type != DM_AVRO_RECORD || primary->root->type != DM_AVRO_RECORD)
        return dm_error_set(err, DM_ERR_SCHEMA_INCOMPATIBLE, "a union reads records only");
    json_error_t je;
    json_t *doc = json_loads(primary->json, 0, &je);
    if (!doc) return dm_error_set(err, DM_ERR_INTERNAL, "schema JSON: %s", je.text);
    json_object_set_new(doc, "name", json_string(o->name));
    json_object_set_new(doc, "namespace", json_string(o->space ? o->space : ""));
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (!text) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    dm_err_t rc = dm_avro_schema_parse(text, strlen(text), reader, err);
    free(text);
    if (rc) return rc;
    dm_avro_codec_t *c;
    if ((rc = dm_avro_codec_new(other, *reader, NULL, 0, &c, err))) {
        dm_avro_schema_free(*reader);
        *reader = NULL;
        return rc;
    }
    dm_avro_codec_free(c);
    return DM_OK;
}

/* Whether one of paths starts at top-level field name. */
static bool reads_field(const char *const *paths, size_t n, const char *name)
{
    size_t len = strlen(name);
    for (size_t i = 0; i < n; i++)
        if (!strncmp(paths[i], name, len) && (paths[i][len] == '\0' || paths[i][len] == '.'))
            return true;
    return false;
}

/* Fields the decoder may leave as their bytes for the encoder to copy
 * (dm_avro_codec_new_raw): in a chain of filters ending in a project, on a
 * single input, those the project passes through and nothing else reads.
 * Any other chain may read or reshape what it is given: none. Fills up to
 * cap names (owned by the input schema); returns how many. */
static size_t raw_fields(dm_task_t *task, const char **names, size_t cap)
{
    size_t last = task->conf.n_steps - 1;
    if (task->n_in != 1 || !task->conf.n_steps || task->procs[last]->ops != &dm_proc_project)
        return 0;
    for (size_t i = 0; i < last; i++)
        if (task->procs[i]->ops != &dm_proc_filter || !task->procs[i]->ops->read_paths) return 0;
    size_t n = dm_proc_project_passthrough(task->procs[last], names, cap), kept = 0;
    for (size_t k = 0; k < n; k++) {
        bool read = false;
        const char *const *ps;
        for (size_t i = 0; i < last && !read; i++) {
            size_t np = task->procs[i]->ops->read_paths(task->procs[i], &ps);
            read = reads_field(ps, np, names[k]);
        }
        if (!read && task->event_time) {
            size_t np = dm_expr_paths(task->event_time, &ps);
            read = reads_field(ps, np, names[k]);
        }
        if (!read) names[kept++] = names[k];
    }
    return kept;
}

/* Compiles each input's decoder: the first reads its own schema, union
 * inputs read theirs as the first's shape. */
static dm_err_t open_inputs(dm_task_t *task, const char **paths, size_t n_paths, dm_error_t *err)
{
    const dm_task_config_t *conf = &task->conf;
    task->n_in = 1 + conf->n_more_inputs + conf->n_other_inputs;
    task->in = calloc(task->n_in, sizeof(*task->in));
    if (!task->in) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    task->in[0] = (input_t){.topic = conf->input_topic,
                            .partition = conf->input_partition,
                            .schema_id = conf->input_schema_id,
                            .newest_id = conf->input_newest_id,
                            .writer = conf->input_schema};
    for (size_t i = 0; i < conf->n_more_inputs; i++)
        task->in[i + 1] = (input_t){.topic = conf->more_inputs[i].topic,
                                    .partition = conf->more_inputs[i].partition,
                                    .schema_id = conf->more_inputs[i].schema_id,
                                    .writer = conf->more_inputs[i].schema};
    for (size_t i = 0; i < conf->n_other_inputs; i++)
        task->in[1 + conf->n_more_inputs + i] =
            (input_t){.topic = conf->other_inputs[i].topic,
                      .partition = conf->other_inputs[i].partition,
                      .schema_id = conf->other_inputs[i].schema_id,
                      .writer = conf->other_inputs[i].schema,
                      .other = true};
    for (size_t i = 0; i < task->n_in; i++)
        if (task->in[i].newest_id < task->in[i].schema_id)
            task->in[i].newest_id = task->in[i].schema_id;
    for (size_t i = 0; i < task->n_in; i++) {
        input_t *in = &task->in[i];
        in->max_event = INT64_MIN;
        in->last_ms = dm_wall_ms();
        dm_err_t rc = i && !in->other
                          ? dm_task_union_reader(conf->input_schema, in->writer, &in->reader, err)
                          : DM_OK;
        if (!rc && in->other) /* read whole: the join keeps and emits every field */
            rc = dm_avro_codec_new(in->writer, NULL, NULL, 0, &in->codec, err);
        else if (!rc && !in->reader) {
            const char *raw[64];
            size_t n_raw = raw_fields(task, raw, 64);
            rc = dm_avro_codec_new_raw(in->writer, NULL, paths, n_paths, raw, n_raw, &in->codec,
                                       err);
        } else if (!rc) {
            rc = dm_avro_codec_new(in->writer, in->reader, paths, n_paths, &in->codec, err);
        }
        if (rc)
            return dm_error_prefix(err, "task %s: input %s cannot be read as %s", conf->name,
                                   in->topic, conf->input_topic);
    }
    return DM_OK;
}

/* Every input resumes where the group's last commit left it, or at its start
 * (its end under start_at_end). */
static dm_err_t resume_positions(dm_task_t *task, dm_error_t *err)
{
    for (size_t i = 0; i < task->n_in; i++) {
        input_t *in = &task->in[i];
        dm_error_t e2 = {0};
        dm_err_t rc = dm_transport_group_offset(task->t, task->conf.group, in->topic, in->partition,
                                                &in->position, &e2);
        if (rc == DM_ERR_NOT_FOUND) {
            int64_t end;
            rc = dm_transport_offsets(task->t, in->topic, in->partition, &in->position, &end, err);
            if (!rc && task->conf.start_at_end) in->position = end;
        } else if (rc && err) {
            *err = e2;
        }
        if (rc) return rc;
    }
    return DM_OK;
}

/* The topics a step's transaction writes, declared once to its builder (the
 * state topic is declared where its partitions are checked). */
static dm_err_t declare_topics(dm_task_t *task, dm_error_t *err)
{
    const dm_task_config_t *conf = &task->conf;
    dm_txn_builder_t *b = &task->txn;
    dm_err_t rc = DM_OK;
    if (conf->output_topic)
        rc = dm_txn_builder_topic(b, conf->output_topic, task->out_partitions, &task->txn_out, err);
    if (!rc)
        rc = dm_txn_builder_topic(b, conf->dead_letter_topic, task->dlq_partitions, &task->txn_dlq,
                                  err);
    task->txn_extra = calloc(conf->n_extra_topics + 1, sizeof(int));
    if (!rc && !task->txn_extra) rc = dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < conf->n_extra_topics && !rc; i++)
        rc = dm_txn_builder_topic(b, conf->extra_topics[i], task->extra_partitions[i],
                                  &task->txn_extra[i], err);
    return rc;
}

dm_err_t dm_task_new(dm_transport_t *t, const dm_task_config_t *conf, dm_task_t **out,
                     dm_error_t *err)
{
    *out = NULL;
    if (!conf->dead_letter_topic)
        return dm_error_set(err, DM_ERR_INVALID, "task %s: a dead-letter topic is required",
                            conf->name);
    dm_task_t *task = calloc(1, sizeof(*task));
    if (!task) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    task->t = t;
    task->conf = *conf;
    dm_txn_builder_init(&task->txn, t);
    task->txn_out = task->txn_dlq = task->txn_state = -1;
    if (!task->conf.max_batch_bytes) task->conf.max_batch_bytes = 1 << 20;
    task->procs = calloc(conf->n_steps ? conf->n_steps : 1, sizeof(*task->procs));
    task->pm = calloc(conf->n_steps ? conf->n_steps : 1, sizeof(*task->pm));
    task->rows = calloc(conf->n_steps + 1, sizeof(*task->rows));
    dm_err_t rc = task->procs && task->pm && task->rows ? DM_OK : DM_ERR_NOMEM;
    if (rc) {
        dm_error_set(err, rc, "out of memory");
        goto fail;
    }
    const dm_avro_node_t *schema = conf->input_schema->root;
    dm_rows_init(&task->rows[0], schema);
    /* One step may read a second source (a join); its records enter the
     * chain at that step. */
    size_t joins = 0;
    for (size_t i = 0; i < conf->n_steps; i++)
        if (conf->steps[i].ops->two_inputs && !joins++) task->join_step = i;
    if (joins > 1 || (conf->n_other_inputs && !joins)) {
        rc = dm_error_set(err, DM_ERR_INVALID,
                          joins > 1 ? "task %s: only one step may read a second source (one join)"
                                    : "task %s: a second source is read only by a step that joins",
                          conf->name);
        goto fail;
    }
    for (size_t i = 0; i < conf->n_steps; i++) {
        const dm_avro_node_t *other = joins && i == task->join_step && conf->n_other_inputs
                                          ? conf->other_inputs[0].schema->root
                                          : NULL;
        rc = dm_proc_open2(conf->steps[i].ops, conf->env, conf->steps[i].config, schema, other,
                           &task->procs[i], err);
        if (rc) {
            dm_error_prefix(err, "task %s: step %zu", conf->name, i + 1);
            goto fail;
        }
        if (task->procs[i]->output) schema = task->procs[i]->output->root;
        dm_rows_init(&task->rows[i + 1], schema);
    }
    task->out_schema = schema;
    if ((rc = open_time_and_state(task, err))) goto fail;
    const char **paths;
    size_t n_paths;
    if ((rc = decoder_paths(task, &paths, &n_paths))) {
        dm_error_set(err, rc, "out of memory");
        goto fail;
    }
    task->paths = paths; /* kept: other schema versions' decoders read the same */
    task->n_paths = n_paths;
    rc = open_inputs(task, paths, n_paths, err);
    if (rc) goto fail;
    if (conf->output_topic &&
        (task->out_partitions = partitions_of(t, conf->output_topic, err)) <= 0) {
        rc = err ? err->code : DM_ERR_NOT_FOUND;
        goto fail;
    }
    if ((task->dlq_partitions = partitions_of(t, conf->dead_letter_topic, err)) <= 0) {
        rc = err ? err->code : DM_ERR_NOT_FOUND;
        goto fail;
    }
    if ((rc = declare_topics(task, err))) goto fail;
    if (conf->watermark_producers > 0) {
        size_t n = (size_t)conf->watermark_producers;
        task->prod_wm = malloc(n * sizeof(int64_t));
        task->prod_last_ms = malloc(n * sizeof(int64_t));
        if (!task->prod_wm || !task->prod_last_ms) {
            rc = dm_error_set(err, DM_ERR_NOMEM, "out of memory");
            goto fail;
        }
        /* a writer not heard from yet holds the watermark back for idle_timeout */
        for (size_t i = 0; i < n; i++) {
            task->prod_wm[i] = INT64_MIN;
            task->prod_last_ms[i] = dm_wall_ms();
        }
    }
    if ((rc = resume_positions(task, err))) goto fail;
    if ((rc = restore_state(task, err))) goto fail;
    register_metrics(task);
    *out = task;
    return DM_OK;
fail:
    dm_task_free(task);
    return rc;
}

const dm_avro_node_t *dm_task_output_schema(const dm_task_t *task)
{
    return task->out_schema;
}

int64_t dm_task_position(const dm_task_t *task)
{
    return task->in[0].position;
}

int64_t dm_task_lag(const dm_task_t *task)
{
    int64_t lag = 0;
    for (size_t i = 0; i < task->n_in; i++)
        lag += task->in[i].lag;
    return lag;
}

size_t dm_task_inputs(const dm_task_t *task, dm_tp_offset_t *out, size_t max)
{
    for (size_t i = 0; i < task->n_in && i < max; i++)
        out[i] = (dm_tp_offset_t){task->in[i].topic, task->in[i].partition, task->in[i].position};
    return task->n_in;
}

static int64_t next_timer(const dm_task_t *task);

int64_t dm_task_next_timer(const dm_task_t *task)
{
    return next_timer(task);
}

int64_t dm_task_watermark(const dm_task_t *task)
{
    return task->watermark;
}

void dm_task_set_output_schema_id(dm_task_t *task, uint32_t id)
{
    task->conf.output_schema_id = id;
}

/* Index in the fetch of the record at offset (records are in offset order). */
static size_t fetch_index(const dm_transport_batch_t *b, int64_t offset)
{
    size_t lo = 0, hi = b->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (b->records[mid].offset < offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static dm_err_t add_dead(dm_task_t *task, size_t fetch_idx, const char *processor,
                         const char *reason)
{
    if (task->n_dlq == task->cap_dlq) {
        size_t cap = task->cap_dlq ? task->cap_dlq * 2 : 16;
        dlq_item_t *d = realloc(task->dlq, cap * sizeof(*d));
        if (d) task->dlq = d;
        dm_record_t *r = realloc(task->dlq_recs, cap * sizeof(*r));
        if (r) task->dlq_recs = r;
        dm_dlq_record_t *h = realloc(task->dlq_hdrs, cap * sizeof(*h));
        if (h) task->dlq_hdrs = h;
        if (!d || !r || !h) return DM_ERR_NOMEM;
        task->cap_dlq = cap;
    }
    dlq_item_t *d = &task->dlq[task->n_dlq++];
    d->fetch_index = fetch_idx;
    d->processor = processor;
    snprintf(d->reason, sizeof(d->reason), "%s", reason);
    return DM_OK;
}

/* Sets the row's timestamp from the event-time field; a reason when it cannot. */
static dm_err_t event_time(dm_task_t *task, dm_row_t *row, char *reason, size_t cap)
{
    dm_expr_value_t v;
    dm_error_t e;
    const dm_expr_t *et = task->in[task->cur].other ? task->other_event_time : task->event_time;
    if (dm_expr_eval(et, &row->value, &task->decoded->arena, &v, &e)) {
        snprintf(reason, cap, "%s", e.message);
        return DM_ERR_INVALID;
    }
    if (v.null) {
        snprintf(reason, cap, "event time '%s' is null", task->conf.event_time);
        return DM_ERR_INVALID;
    }
    row->timestamp = v.u.l;
    return DM_OK;
}

/* A re-key topic's watermark marker: what the task writing it has reached. */
static void read_marker(dm_task_t *task, const dm_record_t *rec)
{
    int64_t wm = INT64_MIN, producer = -1;
    for (uint32_t h = 0; h < rec->n_headers; h++) {
        const dm_record_header_t *x = &rec->headers[h];
        char text[24];
        if (x->value_len <= 0 || x->value_len >= (int32_t)sizeof(text)) continue;
        memcpy(text, x->value, (size_t)x->value_len);
        text[x->value_len] = '\0';
        if (x->key_len == strlen(DM_WM_HEADER) && !memcmp(x->key, DM_WM_HEADER, x->key_len))
            wm = strtoll(text, NULL, 10);
        else if (x->key_len == strlen(DM_WM_PRODUCER) &&
                 !memcmp(x->key, DM_WM_PRODUCER, x->key_len))
            producer = strtoll(text, NULL, 10);
    }
    if (producer < 0 || producer >= task->conf.watermark_producers) return;
    if (wm > task->prod_wm[producer]) task->prod_wm[producer] = wm;
    task->prod_last_ms[producer] = dm_wall_ms();
}

/* ---- schema versions ------------------------------------------------------ */

/* The decoder for values written with schema id, another version than the
 * input's: Avro resolution into the schema the chain reads (a union input's
 * reader when it has one), projected to the fields the chain reads. Built
 * once per id; NULL when there is none (*why says why: no lookup, not in the
 * registry, or resolution cannot read it). A lookup that failed for now (the
 * unit stopping, out of memory) is not remembered and fills lookup instead:
 * the caller ends the step uncommitted, as the version is not known to be
 * unreadable, and a dead letter for it would lose a record that a later try
 * reads (the lenient switch under ASan: a task of the pipeline being stopped
 * for the restart dead-lettered a batch of an older version). */
static dm_avro_codec_t *other_version(dm_task_t *task, input_t *in, uint32_t id, const char **why,
                                      dm_error_t *lookup)
{
    lookup->code = DM_OK; /* only the code: decode_input calls this per record */
    for (size_t k = 0; k < in->n_versions; k++)
        if (in->versions[k].id == id) {
            *why = in->versions[k].why;
            return in->versions[k].codec;
        }
    *why = "";
    if (!task->conf.schema_by_id) return NULL;
    version_codec_t *grown = realloc(in->versions, (in->n_versions + 1) * sizeof(*grown));
    if (!grown) return NULL;
    in->versions = grown;
    version_codec_t *v = &in->versions[in->n_versions++];
    *v = (version_codec_t){.id = id};
    dm_error_t e = {0};
    const dm_avro_schema_t *writer = task->conf.schema_by_id(task->conf.schema_ctx, id, &e);
    if (!writer && (e.retriable || e.code == DM_ERR_NOMEM)) {
        in->n_versions--;
        dm_error_set(lookup, e.code, "task %s: %s/%d: schema id %u: %s", task->conf.name, in->topic,
                     in->partition, id, e.message);
        lookup->retriable = true;
        return NULL;
    }
    const dm_avro_schema_t *reader = in->reader ? in->reader : in->writer;
    /* Checked whole first: a codec resolves union branches only per value,
     * so it takes a writer whose values it may not read. */
    dm_schema_compat_report_t report = {0};
    if (writer && !dm_schema_can_read(reader->root, writer->root, &report, "$")) {
        snprintf(v->why, sizeof(v->why), "%s",
                 report.n ? report.messages[0] : "resolution cannot read it");
        dm_schema_compat_report_free(&report);
        *why = v->why;
        return NULL;
    }
    dm_schema_compat_report_free(&report);
    /* the join's other source is read whole, as the join keeps every field */
    if (!writer || dm_avro_codec_new(writer, reader, in->other ? NULL : task->paths,
                                     in->other ? 0 : task->n_paths, &v->codec, &e)) {
        snprintf(v->why, sizeof(v->why), "%s", e.message);
        v->codec = NULL;
    }
    *why = v->why;
    return v->codec;
}

/* The first fetched record the task must not read with what it has: of a
 * schema version newer than any its plan knew (under DM_TASK_SCHEMA_STOP), or
 * one resolution cannot read (under DM_TASK_SCHEMA_RESOLVE). Returns its
 * index (fetch.n: none) and fills err with what to say when stopping there. */
static size_t first_new_version(dm_task_t *task, input_t *in, dm_error_t *err)
{
    const dm_transport_batch_t *f = &task->fetch;
    if (!task->conf.schema_by_id) return f->n;
    uint32_t fine = in->schema_id; /* the last id found readable */
    for (size_t i = 0; i < f->n; i++) {
        const dm_record_t *rec = &f->records[i];
        uint32_t id;
        if (rec->value_len < 0 || dm_wire_get_header(rec->value, (size_t)rec->value_len, &id) ||
            id == fine || id == in->schema_id)
            continue;
        const char *why = "";
        bool resolve = task->conf.schema_policy == DM_TASK_SCHEMA_RESOLVE;
        if (id <= in->newest_id) { /* an older version: resolution reads it, or a dead letter */
            fine = id;
            continue;
        }
        dm_error_t lookup;
        lookup.code = DM_OK;
        if (resolve && other_version(task, in, id, &why, &lookup)) {
            fine = id;
            continue;
        }
        if (lookup.code) { /* not known yet: end the step before it, for now */
            *err = lookup;
            return i;
        }
        if (resolve)
            dm_error_set(err, DM_ERR_SCHEMA_INCOMPATIBLE,
                         "task %s: %s/%d offset %lld has schema id %u, which the pipeline's "
                         "frozen reader schema (id %u) cannot read: %s",
                         task->conf.name, in->topic, in->partition, (long long)rec->offset, id,
                         in->schema_id, why);
        else
            dm_error_set(err, DM_ERR_SCHEMA_NEW_VERSION,
                         "task %s: %s/%d offset %lld has schema id %u, a version newer than the "
                         "pipeline reads (id %u)",
                         task->conf.name, in->topic, in->partition, (long long)rec->offset, id,
                         in->schema_id);
        err->fatal = true;
        return i;
    }
    return f->n;
}

/* Decodes fetched records [lo, hi) into rows[0]; undecodable ones become
 * dead letters. */
static dm_err_t decode_input(dm_task_t *task, size_t lo, size_t hi, dm_error_t *err)
{
    input_t *in = &task->in[task->cur];
    dm_error_t lookup; /* set by other_version; not cleared per record (520 bytes) */
    /* the join's other source enters the chain at the join, its rows marked */
    dm_rows_t *rows = &task->rows[in->other ? task->join_step : 0];
    task->decoded = rows;
    if (rows == &task->rows[0])
        rows->schema = in->other ? in->writer->root : task->conf.input_schema->root;
    if (dm_rows_reserve(rows, (uint32_t)(hi - lo)))
        return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    for (size_t i = lo; i < hi; i++) {
        const dm_record_t *rec = &task->fetch.records[i];
        char reason[300];
        uint32_t id;
        dm_err_t rc;
        dm_avro_codec_t *codec = in->codec;
        const char *why = "";
        if (rec->value_len < 0) { /* tombstones carry no event; markers a watermark */
            if (task->prod_wm) read_marker(task, rec);
            continue;
        }
        rc = dm_wire_get_header(rec->value, (size_t)rec->value_len, &id);
        if (rc) {
            snprintf(reason, sizeof(reason), "value is not in the Confluent wire format (%s)",
                     rc == DM_ERR_TRUNCATED ? "shorter than 5 bytes" : "magic byte is not 0");
        } else if (id != in->schema_id && !(codec = other_version(task, in, id, &why, &lookup))) {
            if (lookup.code) { /* no dead letter: the step ends uncommitted */
                if (err) *err = lookup;
                return lookup.code;
            }
            snprintf(reason, sizeof(reason), "value has schema id %u, the topic's is %u%s%s", id,
                     in->schema_id, why[0] ? ": " : "", why);
            rc = DM_ERR_SCHEMA_MISMATCH;
        } else {
            /* filled in place (room reserved above); counted once it decoded */
            dm_row_t *row = &rows->records[rows->n];
            dm_error_t derr;
            rc = dm_avro_decode(codec, rec->value + DM_WIRE_HEADER,
                                (size_t)rec->value_len - DM_WIRE_HEADER, NULL, &rows->arena,
                                &row->value, &derr);
            if (rc) {
                snprintf(reason, sizeof(reason), "%s", derr.message);
            } else {
                row->key = rec->key;
                row->key_len = rec->key_len < 0 ? 0 : (uint32_t)rec->key_len;
                const uint8_t *new_key; /* a re-key topic's: its source's key back */
                uint32_t new_len;
                if (task->prod_wm)
                    dm_rekey_split(row->key, row->key_len, &new_key, &new_len, &row->key,
                                   &row->key_len);
                row->flags = 0;
                row->timestamp = rec->timestamp;
                row->partition = in->partition;
                row->output = 0;
                row->input = in->other;
                row->offset = rec->offset;
                if (!task->event_time || !(rc = event_time(task, row, reason, sizeof(reason))))
                    rows->n++;
            }
        }
        if (rc && add_dead(task, i, "decode", reason))
            return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    }
    return DM_OK;
}

/* Runs each processor on its input, then lets it react to the new watermark
 * (wm; INT64_MIN when it did not move) and its due timer; what those emit
 * flows on through the rest of the chain in the same batch. */
static dm_err_t run_chain(dm_task_t *task, int64_t wm, int64_t now_ms, dm_error_t *err)
{
    for (size_t i = 0; i < task->conf.n_steps; i++) {
        dm_proc_t *p = task->procs[i];
        dm_rows_t *in = &task->rows[i], *out = &task->rows[i + 1];
        dm_dead_letters_reset(&task->dead);
        dm_err_t rc = p->ops->process(p, in, out, &task->dead, err);
        if (!rc && wm > p->watermark) {
            if (p->ops->on_watermark) rc = p->ops->on_watermark(p, wm, out, err);
            p->watermark = wm;
        }
        if (!rc && p->timer_at && now_ms >= p->timer_at && p->ops->on_timer) {
            p->timer_at = 0;
            rc = p->ops->on_timer(p, now_ms, out, err);
        }
        if (rc)
            return dm_error_prefix(err, "task %s: step %zu (%s)", task->conf.name, i + 1,
                                   p->ops->name);
        add(task->pm[i].in, in->n);
        add(task->pm[i].out, out->n);
        add(task->pm[i].dead, task->dead.n);
        for (uint32_t d = 0; d < task->dead.n; d++) {
            const dm_row_t *row = &in->records[task->dead.items[d].index];
            size_t fi = fetch_index(&task->fetch, row->offset);
            if (add_dead(task, fi, p->ops->name, task->dead.items[d].reason))
                return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
        }
    }
    return DM_OK;
}

/* Appends the chain's output rows to out_bytes / out_recs: their keys as
 * they are and their values encoded, so that nothing of them stays in the
 * rows' arenas. The records hold offsets into out_bytes (which may move as
 * it grows) until output_pointers turns them into pointers. */
static dm_err_t encode_output(dm_task_t *task, dm_error_t *err)
{
    dm_rows_t *rows = &task->rows[task->conf.n_steps];
    if (task->n_out + rows->n > task->out_cap) {
        size_t cap = task->out_cap ? task->out_cap : 1024;
        while (cap < task->n_out + rows->n)
            cap *= 2;
        dm_record_t *r = realloc(task->out_recs, cap * sizeof(*r));
        if (r) task->out_recs = r;
        int32_t *pp = realloc(task->out_part, cap * sizeof(*pp));
        if (pp) task->out_part = pp;
        uint16_t *w = realloc(task->out_which, cap * sizeof(*w));
        if (w) task->out_which = w;
        if (!r || !pp || !w) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
        task->out_cap = cap;
    }
    for (uint32_t i = 0; i < rows->n; i++) {
        const dm_row_t *row = &rows->records[i];
        size_t key_at = task->out_bytes.len;
        if (row->key && dm_buf_append(&task->out_bytes, row->key, row->key_len))
            return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
        size_t start = task->out_bytes.len;
        dm_err_t rc = dm_wire_put_header(&task->out_bytes, task->conf.output_schema_id);
        if (!rc) rc = dm_avro_encode(task->out_schema, &row->value, &task->out_bytes, err);
        if (rc)
            return dm_error_prefix(err, "task %s: encoding the output of offset %lld",
                                   task->conf.name, (long long)row->offset);
        size_t k = task->n_out++;
        task->out_recs[k] = (dm_record_t){
            .timestamp = row->timestamp,
            .key = (const uint8_t *)(uintptr_t)key_at, /* offsets for now */
            .key_len = row->key ? (int32_t)row->key_len : -1,
            .value = (const uint8_t *)(uintptr_t)start,
            .value_len = (int32_t)(task->out_bytes.len - start),
        };
        /* Keyed records go by key hash; keyless ones stay on the input's partition. */
        uint16_t which = row->output;
        if (which > task->conf.n_extra_topics)
            return dm_error_set(err, DM_ERR_INTERNAL, "task %s: a record went to output %u of %zu",
                                task->conf.name, which, task->conf.n_extra_topics + 1);
        int32_t parts = which ? task->extra_partitions[which - 1] : task->out_partitions;
        task->out_which[k] = which;
        if (parts <= 0) { /* the main output is not written */
            task->out_part[k] = -1;
            continue;
        }
        /* A re-key topic goes by the new key only (engine/proc_rekey.c). */
        const uint8_t *hk = row->key, *old_key;
        uint32_t hlen = row->key_len, old_len;
        if (task->conf.watermark_out && !which)
            dm_rekey_split(row->key, row->key_len, &hk, &hlen, &old_key, &old_len);
        task->out_part[k] = hk           ? dm_txn_key_partition(hk, hlen, parts)
                            : parts == 1 ? 0
                                         : task->conf.input_partition % parts;
    }
    return DM_OK;
}

/* Turns the output records' value offsets into pointers, once out_bytes is whole. */
static void output_pointers(dm_task_t *task)
{
    for (size_t i = 0; i < task->n_out; i++) {
        dm_record_t *r = &task->out_recs[i];
        r->value = task->out_bytes.data + (uintptr_t)r->value;
        r->key = r->key_len < 0 ? NULL : task->out_bytes.data + (uintptr_t)r->key;
    }
}

/* Adds the outputs to the step's transaction: the main output's records as
 * they are when it has one partition and there are no other outputs (the
 * common case), else each to the partition encode_output chose. */
static dm_err_t add_output(dm_task_t *task, dm_error_t *err)
{
    size_t n = task->n_out;
    if (!n) return DM_OK;
    if (!task->conf.n_extra_topics && task->out_partitions == 1)
        return task->txn_out >= 0
                   ? dm_txn_builder_add_batch(&task->txn, task->txn_out, 0, task->out_recs, n, err)
                   : DM_OK;
    for (size_t i = 0; i < n; i++) {
        uint16_t w = task->out_which[i];
        int topic = w ? task->txn_extra[w - 1] : task->txn_out;
        if (topic < 0 || task->out_part[i] < 0) continue; /* the main output is not written */
        dm_err_t rc =
            dm_txn_builder_add(&task->txn, topic, task->out_part[i], &task->out_recs[i], err);
        if (rc) return rc;
    }
    return DM_OK;
}

static dm_record_header_t header(const char *name, const char *value, int len)
{
    return (dm_record_header_t){name, (uint32_t)strlen(name), (const uint8_t *)value,
                                len < 0 ? (int32_t)strlen(value) : len};
}

void dm_dlq_record_make(dm_record_t *out, dm_dlq_record_t *dl, const dm_record_t *src,
                        const char *reason, const char *processor, const char *topic,
                        int32_t partition)
{
    int np = snprintf(dl->partition, sizeof(dl->partition), "%d", partition);
    int no = snprintf(dl->offset, sizeof(dl->offset), "%lld", (long long)src->offset);
    dl->h[0] = header(DM_DLQ_REASON, reason, -1);
    dl->h[1] = header(DM_DLQ_PROCESSOR, processor, -1);
    dl->h[2] = header(DM_DLQ_TOPIC, topic, -1);
    dl->h[3] = header(DM_DLQ_PARTITION, dl->partition, np);
    dl->h[4] = header(DM_DLQ_OFFSET, dl->offset, no);
    *out = (dm_record_t){.timestamp = src->timestamp,
                         .key = src->key,
                         .key_len = src->key_len,
                         .value = src->value,
                         .value_len = src->value_len,
                         .headers = dl->h,
                         .n_headers = 5};
}

/* Adds the dead letters: the input records as they were, with the reason in
 * headers (records and headers kept in the task, cap_dlq of them). */
static dm_err_t add_dead_letters(dm_task_t *task, dm_error_t *err)
{
    if (!task->n_dlq) return DM_OK;
    const input_t *in = &task->in[task->cur];
    for (size_t i = 0; i < task->n_dlq; i++) {
        const dlq_item_t *d = &task->dlq[i];
        dm_dlq_record_make(&task->dlq_recs[i], &task->dlq_hdrs[i],
                           &task->fetch.records[d->fetch_index], d->reason, d->processor, in->topic,
                           in->partition);
    }
    return dm_txn_builder_add_batch(&task->txn, task->txn_dlq,
                                    task->conf.input_partition % task->dlq_partitions,
                                    task->dlq_recs, task->n_dlq, err);
}

/* ---- state in the transaction ------------------------------------------------ */

typedef struct state_ctx {
    dm_task_t *task;
    uint8_t step;
    dm_err_t rc;
} state_ctx_t;

/* Where a changelog record's key and value start in state_bytes (kept as
 * offsets while the buffer grows, turned into pointers at the end). */
static int add_state_record(void *ctx, const uint8_t *key, size_t klen, const uint8_t *val,
                            size_t vlen)
{
    state_ctx_t *c = ctx;
    dm_task_t *task = c->task;
    if (task->n_state == task->cap_state) {
        size_t cap = task->cap_state ? task->cap_state * 2 : 256;
        dm_record_t *r = realloc(task->state_recs, cap * sizeof(*r));
        if (!r) return c->rc = DM_ERR_NOMEM;
        task->state_recs = r;
        task->cap_state = cap;
    }
    size_t koff = task->state_bytes.len;
    if (dm_buf_append_u8(&task->state_bytes, c->step) ||
        dm_buf_append(&task->state_bytes, key, klen) ||
        (val && dm_buf_append(&task->state_bytes, val, vlen)))
        return c->rc = DM_ERR_NOMEM;
    task->state_recs[task->n_state++] = (dm_record_t){
        .key = (const uint8_t *)(uintptr_t)koff, /* offsets for now */
        .key_len = (int32_t)(klen + 1),
        .value = (const uint8_t *)(uintptr_t)(koff + 1 + klen),
        .value_len = val ? (int32_t)vlen : -1,
    };
    return 0;
}

/* Adds the stores' changes and the task's event time to the transaction. */
static dm_err_t add_state(dm_task_t *task, dm_error_t *err)
{
    if (!task->stateful) return DM_OK;
    dm_buf_reset(&task->state_bytes);
    task->n_state = 0;
    state_ctx_t c = {.task = task};
    for (size_t i = 0; i < task->conf.n_steps && !c.rc; i++) {
        if (!task->procs[i]->kv) continue;
        c.step = (uint8_t)i;
        dm_state_changes(task->procs[i]->kv, add_state_record, &c);
    }
    if (!c.rc && task->max_event_time != task->logged_max_event) {
        uint8_t v[8];
        uint64_t x = (uint64_t)task->max_event_time;
        for (int i = 7; i >= 0; i--, x >>= 8)
            v[i] = (uint8_t)x;
        c.step = META_STEP;
        add_state_record(&c, (const uint8_t *)"wm", 2, v, 8);
    }
    if (c.rc) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    if (!task->n_state) return DM_OK;
    for (size_t i = 0; i < task->n_state; i++) {
        dm_record_t *r = &task->state_recs[i];
        r->key = task->state_bytes.data + (uintptr_t)r->key;
        r->value = r->value_len < 0 ? NULL : task->state_bytes.data + (uintptr_t)r->value;
    }
    return dm_txn_builder_add_batch(&task->txn, task->txn_state, task->conf.input_partition,
                                    task->state_recs, task->n_state, err);
}

/* After a failed step changed state that was not committed: back to the last
 * commit (state, event time and input position). */
static dm_err_t recover(dm_task_t *task, dm_error_t *err)
{
    dm_err_t rc = restore_state(task, err);
    if (!rc) rc = resume_positions(task, err);
    if (!rc) task->broken = false;
    return rc;
}

/* A task writing a re-key topic: its watermark to every partition of it, so
 * the tasks reading it know how far this one has come (engine/task.h). */
static dm_err_t add_watermark(dm_task_t *task, dm_error_t *err)
{
    if (!task->conf.watermark_out || task->txn_out < 0 || task->watermark == INT64_MIN)
        return DM_OK;
    int nw = snprintf(task->marker_wm, sizeof(task->marker_wm), "%lld", (long long)task->watermark);
    int np = snprintf(task->marker_producer, sizeof(task->marker_producer), "%d",
                      task->conf.watermark_producer);
    task->marker_h[0] = header(DM_WM_HEADER, task->marker_wm, nw);
    task->marker_h[1] = header(DM_WM_PRODUCER, task->marker_producer, np);
    task->marker = (dm_record_t){.timestamp = task->watermark > 0 ? task->watermark : 0,
                                 .key_len = -1,
                                 .value_len = -1,
                                 .headers = task->marker_h,
                                 .n_headers = 2};
    dm_err_t rc = DM_OK;
    for (int32_t p = 0; p < task->out_partitions && !rc; p++)
        rc = dm_txn_builder_add(&task->txn, task->txn_out, p, &task->marker, err);
    return rc;
}

/* The earliest processing-time timer of the chain, 0 when none. */
static int64_t next_timer(const dm_task_t *task)
{
    int64_t due = 0;
    for (size_t i = 0; i < task->conf.n_steps; i++) {
        int64_t at = task->procs[i]->timer_at;
        if (at && (!due || at < due)) due = at;
    }
    return due;
}

/* The event time the watermark follows: the smallest of the inputs' largest
 * event times, so that a slow input's records are not late for windows a
 * fast one would close; an input that brought nothing for idle_timeout_ms
 * stops holding it back until it brings records again. When every input is
 * idle, the largest. */
static int64_t event_basis(const dm_task_t *task, int64_t now_ms)
{
    int64_t idle =
        task->conf.idle_timeout_ms > 0 ? task->conf.idle_timeout_ms : DM_TASK_IDLE_TIMEOUT_MS;
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    for (size_t i = 0; i < task->n_in; i++) {
        const input_t *in = &task->in[i];
        if (in->max_event > hi) hi = in->max_event;
        if (now_ms - in->last_ms <= idle && in->max_event < lo) lo = in->max_event;
    }
    return lo == INT64_MAX ? hi : lo;
}

/* A task reading a re-key topic: the smallest watermark of the tasks writing
 * it, leaving out those idle for idle_timeout_ms (the largest when all are). */
static int64_t producer_basis(const dm_task_t *task, int64_t now_ms)
{
    int64_t idle =
        task->conf.idle_timeout_ms > 0 ? task->conf.idle_timeout_ms : DM_TASK_IDLE_TIMEOUT_MS;
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    for (int32_t i = 0; i < task->conf.watermark_producers; i++) {
        if (task->prod_wm[i] > hi) hi = task->prod_wm[i];
        if (now_ms - task->prod_last_ms[i] <= idle && task->prod_wm[i] < lo) lo = task->prod_wm[i];
    }
    return lo == INT64_MAX ? hi : lo;
}

/* The watermark the decoded input brings, INT64_MIN when it does not move. */
static int64_t advance_watermark(dm_task_t *task)
{
    if (!task->timed) return INT64_MIN;
    const dm_rows_t *rows = task->decoded;
    input_t *cur = &task->in[task->cur];
    int64_t now = dm_wall_ms();
    if (task->fetch.n) cur->last_ms = now;
    for (uint32_t i = 0; i < rows->n; i++)
        if (rows->records[i].timestamp > cur->max_event)
            cur->max_event = rows->records[i].timestamp;
    int64_t basis = task->prod_wm ? producer_basis(task, now) : event_basis(task, now);
    if (basis > task->max_event_time) task->max_event_time = basis; /* it never goes back */
    int64_t wm = watermark_of(task, task->max_event_time);
    if (wm <= task->watermark) return INT64_MIN;
    task->watermark = wm;
    if (task->m_wm) dm_metric_set(task->m_wm, wm);
    if (task->m_wm_lag) dm_metric_set(task->m_wm_lag, wm > 0 ? wm : 0);
    return wm;
}

/* Fetches from the inputs in turn, starting after the last one that had
 * records: the first with records is this step's (task->cur). Only the last
 * one tried waits, so a step waits at most timeout_ms. */
static dm_err_t fetch_some(dm_task_t *task, int timeout_ms, bool *input, dm_error_t *err)
{
    int64_t lag = 0;
    for (size_t k = 0; k < task->n_in; k++) {
        size_t i = (task->next_in + k) % task->n_in;
        input_t *in = &task->in[i];
        dm_err_t rc = dm_transport_fetch(task->t, in->topic, in->partition, in->position,
                                         task->conf.max_batch_bytes,
                                         k + 1 == task->n_in ? timeout_ms : 0, &task->fetch, err);
        if (rc)
            return dm_error_prefix(err, "task %s: reading %s/%d at offset %lld", task->conf.name,
                                   in->topic, in->partition, (long long)in->position);
        in->lag = task->fetch.high_watermark - task->fetch.next_offset;
        if (in->lag < 0) in->lag = 0;
        task->cur = i;
        if (task->fetch.n > 0 || task->fetch.next_offset > in->position) {
            *input = true;
            task->next_in = (i + 1) % task->n_in;
            break;
        }
    }
    for (size_t i = 0; i < task->n_in; i++)
        lag += task->in[i].lag;
    if (task->m_lag) dm_metric_set(task->m_lag, lag);
    /* The fetch starts at the oldest record not processed: its timestamp is
     * what the time lag counts from, until a step commits past it. */
    if (task->m_lag_s && *input && task->fetch.n)
        dm_metric_set(task->m_lag_s, task->fetch.records[0].timestamp);
    else if (task->m_lag_s && !lag)
        dm_metric_set(task->m_lag_s, 0);
    return DM_OK;
}

/* Records per chunk of a chain that runs in chunks: a chunk's decoded rows
 * are still in cache when the steps read them, where a whole fetch (tens of
 * thousands of records) would have left the cache before the first step. */
#define CHUNK 512

/* Decodes the fetch, runs the chain and encodes its output. A chain whose
 * steps keep no state and ignore time runs in chunks of CHUNK records, its
 * arenas reset for each (the output has copied all it needs, and dead
 * letters refer to the fetch), so a chunk's memory is the last one's and
 * stays in cache; one that reacts to watermarks sees the fetch whole, so
 * that the watermark moves once per fetch as it always did. */
static dm_err_t run_fetch(dm_task_t *task, int64_t now, dm_error_t *err)
{
    size_t n = task->fetch.n, lo = 0;
    size_t chunk = task->chunked ? CHUNK : n;
    do {
        size_t hi = n - lo < chunk ? n : lo + chunk;
        for (size_t i = 0; i <= task->conf.n_steps; i++)
            dm_rows_reset(&task->rows[i]);
        dm_err_t rc = decode_input(task, lo, hi, err);
        if (!rc) rc = run_chain(task, advance_watermark(task), now, err);
        if (!rc) rc = encode_output(task, err);
        if (rc) return rc;
        lo = hi;
    } while (lo < n);
    return DM_OK;
}

dm_err_t dm_task_step(dm_task_t *task, int timeout_ms, size_t *processed, dm_error_t *err)
{
    *processed = 0;
    dm_err_t rc;
    if (task->broken && (rc = recover(task, err))) return rc;
    int64_t due = next_timer(task);
    if (due) {
        int64_t left = due - dm_wall_ms();
        if (left < 0) left = 0;
        if (timeout_ms < 0 || left < timeout_ms) timeout_ms = (int)left;
    }
    bool input = false;
    if ((rc = fetch_some(task, timeout_ms, &input, err))) return rc;
    input_t *in = &task->in[task->cur];
    int64_t now = due ? dm_wall_ms() : 0;
    if (!input && !(due && now >= due)) return DM_OK;
    /* A new schema version: this step ends just before its first record. */
    dm_error_t stop = {0};
    size_t cut = input ? first_new_version(task, in, &stop) : 0;
    if (input && cut < task->fetch.n) {
        if (cut == 0) {
            if (err) *err = stop;
            return stop.code;
        }
        task->fetch.next_offset = task->fetch.records[cut].offset;
        task->fetch.n = cut;
    }
    int64_t next_offset = input ? task->fetch.next_offset : in->position;
    uint64_t t0 = dm_now_ns();
    for (size_t i = 0; i <= task->conf.n_steps; i++)
        dm_rows_reset(&task->rows[i]);
    task->n_dlq = 0;
    task->n_out = 0;
    dm_buf_reset(&task->out_bytes);
    task->broken = task->stateful; /* until the commit: state may run ahead of the log */
    if ((rc = run_fetch(task, now, err))) return rc;
    output_pointers(task);
    dm_tp_offset_t next = {in->topic, in->partition, next_offset};
    if ((rc = add_output(task, err)) || (rc = add_dead_letters(task, err)) ||
        (rc = add_state(task, err)) || (input && (rc = add_watermark(task, err))) ||
        (rc = dm_txn_builder_offsets(&task->txn, task->conf.group, &next, 1, err))) {
        dm_txn_builder_clear(&task->txn);
        return rc;
    }
    if ((rc = dm_txn_builder_commit(&task->txn, err)))
        return dm_error_prefix(err, "task %s: commit", task->conf.name);
    in->position = next_offset;
    /* Committed: when nothing is left behind it, no record waits any more. */
    if (task->m_lag_s && input && !dm_task_lag(task)) dm_metric_set(task->m_lag_s, 0);
    task->logged_max_event = task->max_event_time;
    if (task->stateful && (rc = commit_stores(task, err))) return rc;
    task->broken = false;
    size_t n_in = input ? task->fetch.n : 0;
    *processed = n_in;
    add(task->m_in, n_in);
    add(task->m_out, task->n_out);
    add(task->m_dead, task->n_dlq);
    if (task->m_latency) dm_metric_observe(task->m_latency, (dm_now_ns() - t0) / 1000);
    if (task->n_dlq)
        DM_WARN("engine", "task=%s: %zu record(s) sent to %s; first: offset %lld: %s",
                task->conf.name, task->n_dlq, task->conf.dead_letter_topic,
                (long long)task->fetch.records[task->dlq[0].fetch_index].offset,
                task->dlq[0].reason);
    if (stop.code) { /* committed up to the new version: now say so */
        if (err) *err = stop;
        return stop.code;
    }
    return DM_OK;
}

void dm_task_free(dm_task_t *task)
{
    if (!task) return;
    for (size_t i = 0; i < task->conf.n_steps && task->procs; i++)
        dm_proc_close(task->procs[i]);
    for (size_t i = 0; task->rows && i <= task->conf.n_steps; i++)
        dm_rows_free(&task->rows[i]);
    for (size_t i = 0; task->in && i < task->n_in; i++) {
        dm_avro_codec_free(task->in[i].codec);
        dm_avro_schema_free(task->in[i].reader);
        for (size_t k = 0; k < task->in[i].n_versions; k++)
            dm_avro_codec_free(task->in[i].versions[k].codec);
        free(task->in[i].versions);
    }
    free(task->paths);
    free(task->in);
    dm_dead_letters_free(&task->dead);
    if (task->fetch.impl) dm_transport_batch_free(task->t, &task->fetch);
    dm_buf_free(&task->out_bytes);
    free(task->out_recs);
    free(task->out_part);
    free(task->out_which);
    free(task->extra_partitions);
    free(task->prod_wm);
    free(task->prod_last_ms);
    free(task->m_state);
    free(task->state_recs);
    dm_buf_free(&task->state_bytes);
    dm_expr_free(task->event_time);
    dm_expr_free(task->other_event_time);
    free(task->dlq);
    free(task->dlq_recs);
    free(task->dlq_hdrs);
    free(task->txn_extra);
    dm_txn_builder_destroy(&task->txn);
    free(task->rows);
    free(task->procs);
    free(task->pm);
    free(task);
}
