/* engine/task.c — one input partition through a fused chain, exactly once. */
#include "engine/task.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/hash.h"
#include "core/log.h"
#include "schema/wire.h"

typedef struct proc_metrics {
    dm_metric_t *in, *out, *dead;
} proc_metrics_t;

/* One dead letter ready to produce: where its bytes and headers are. */
typedef struct dlq_item {
    size_t fetch_index;
    char reason[256];
    const char *processor;
} dlq_item_t;

struct dm_task {
    dm_transport_t *t;
    dm_task_config_t conf;
    dm_proc_t **procs;
    proc_metrics_t *pm;
    const dm_avro_node_t *out_schema;
    dm_avro_codec_t *codec;
    dm_rows_t *rows; /* rows[0]: decoded input; rows[i + 1]: output of procs[i] */
    dm_dead_letters_t dead;
    dm_transport_batch_t fetch;
    int64_t position;
    int64_t lag;
    int32_t out_partitions, dlq_partitions;
    /* per step, reused */
    dm_buf_t out_bytes;
    size_t *out_offsets; /* where each output record's value starts in out_bytes */
    size_t out_cap;
    dm_record_t *out_recs;
    int32_t *out_part;
    dlq_item_t *dlq;
    size_t n_dlq, cap_dlq;
    dm_metric_t *m_in, *m_out, *m_dead, *m_lag, *m_latency;
};

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
    for (size_t i = 0; i < task->conf.n_steps; i++) {
        snprintf(labels, sizeof(labels), "task=\"%s\",processor=\"%s\",step=\"%zu\"", esc,
                 task->procs[i]->ops->name, i);
        task->pm[i].in = dm_metrics_counter(m, "datamesh_processor_records_in_total",
                                            "records into a processor", labels);
        task->pm[i].out = dm_metrics_counter(m, "datamesh_processor_records_out_total",
                                             "records out of a processor", labels);
        task->pm[i].dead = dm_metrics_counter(m, "datamesh_processor_dead_letters_total",
                                              "records a processor could not handle", labels);
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
    for (size_t i = 0; i < conf->n_steps; i++) {
        rc = dm_proc_open(conf->steps[i].ops, conf->env, conf->steps[i].config, schema,
                          &task->procs[i], err);
        if (rc) {
            dm_error_prefix(err, "task %s: step %zu", conf->name, i + 1);
            goto fail;
        }
        if (task->procs[i]->output) schema = task->procs[i]->output->root;
        dm_rows_init(&task->rows[i + 1], schema);
    }
    task->out_schema = schema;
    const char **paths;
    size_t n_paths;
    if ((rc = decoder_paths(task, &paths, &n_paths))) {
        dm_error_set(err, rc, "out of memory");
        goto fail;
    }
    rc = dm_avro_codec_new(conf->input_schema, NULL, paths, n_paths, &task->codec, err);
    free(paths);
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
    /* Resume where the group's last commit left off, or at the start. */
    dm_error_t e2 = {0};
    rc = dm_transport_group_offset(t, conf->group, conf->input_topic, conf->input_partition,
                                   &task->position, &e2);
    if (rc == DM_ERR_NOT_FOUND) {
        int64_t end;
        rc = dm_transport_offsets(t, conf->input_topic, conf->input_partition, &task->position,
                                  &end, err);
    } else if (rc && err) {
        *err = e2;
    }
    if (rc) goto fail;
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
    return task->position;
}

int64_t dm_task_lag(const dm_task_t *task)
{
    return task->lag;
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
        if (!d) return DM_ERR_NOMEM;
        task->dlq = d;
        task->cap_dlq = cap;
    }
    dlq_item_t *d = &task->dlq[task->n_dlq++];
    d->fetch_index = fetch_idx;
    d->processor = processor;
    snprintf(d->reason, sizeof(d->reason), "%s", reason);
    return DM_OK;
}

/* Decodes the fetched records into rows[0]; undecodable ones become dead letters. */
static dm_err_t decode_input(dm_task_t *task, dm_error_t *err)
{
    dm_rows_t *rows = &task->rows[0];
    for (size_t i = 0; i < task->fetch.n; i++) {
        const dm_record_t *rec = &task->fetch.records[i];
        char reason[300];
        uint32_t id;
        dm_err_t rc;
        if (rec->value_len < 0) continue; /* tombstones carry no event */
        rc = dm_wire_get_header(rec->value, (size_t)rec->value_len, &id);
        if (rc) {
            snprintf(reason, sizeof(reason), "value is not in the Confluent wire format (%s)",
                     rc == DM_ERR_TRUNCATED ? "shorter than 5 bytes" : "magic byte is not 0");
        } else if (id != task->conf.input_schema_id) {
            snprintf(reason, sizeof(reason), "value has schema id %u, the topic's is %u", id,
                     task->conf.input_schema_id);
            rc = DM_ERR_SCHEMA_MISMATCH;
        } else {
            dm_row_t *row = dm_rows_push(rows);
            if (!row) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
            dm_error_t derr;
            rc = dm_avro_decode(task->codec, rec->value + DM_WIRE_HEADER,
                                (size_t)rec->value_len - DM_WIRE_HEADER, NULL, &rows->arena,
                                &row->value, &derr);
            if (rc) {
                rows->n--;
                snprintf(reason, sizeof(reason), "%s", derr.message);
            } else {
                row->key = rec->key;
                row->key_len = rec->key_len < 0 ? 0 : (uint32_t)rec->key_len;
                row->timestamp = rec->timestamp;
                row->partition = task->conf.input_partition;
                row->offset = rec->offset;
            }
        }
        if (rc && add_dead(task, i, "decode", reason))
            return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    }
    return DM_OK;
}

static dm_err_t run_chain(dm_task_t *task, dm_error_t *err)
{
    for (size_t i = 0; i < task->conf.n_steps; i++) {
        dm_proc_t *p = task->procs[i];
        dm_rows_t *in = &task->rows[i], *out = &task->rows[i + 1];
        dm_dead_letters_reset(&task->dead);
        dm_err_t rc = p->ops->process(p, in, out, &task->dead, err);
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

/* Encodes the chain's output rows into out_bytes / out_recs. */
static dm_err_t encode_output(dm_task_t *task, dm_error_t *err)
{
    dm_rows_t *rows = &task->rows[task->conf.n_steps];
    if (rows->n > task->out_cap) {
        size_t cap = rows->n;
        size_t *o = realloc(task->out_offsets, cap * sizeof(*o));
        if (o) task->out_offsets = o;
        dm_record_t *r = realloc(task->out_recs, cap * sizeof(*r));
        if (r) task->out_recs = r;
        int32_t *pp = realloc(task->out_part, cap * sizeof(*pp));
        if (pp) task->out_part = pp;
        if (!o || !r || !pp) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
        task->out_cap = cap;
    }
    dm_buf_reset(&task->out_bytes);
    for (uint32_t i = 0; i < rows->n; i++) {
        task->out_offsets[i] = task->out_bytes.len;
        dm_err_t rc = dm_wire_put_header(&task->out_bytes, task->conf.output_schema_id);
        if (!rc)
            rc = dm_avro_encode(task->out_schema, &rows->records[i].value, &task->out_bytes, err);
        if (rc)
            return dm_error_prefix(err, "task %s: encoding the output of offset %lld",
                                   task->conf.name, (long long)rows->records[i].offset);
    }
    for (uint32_t i = 0; i < rows->n; i++) {
        const dm_row_t *row = &rows->records[i];
        size_t end = i + 1 < rows->n ? task->out_offsets[i + 1] : task->out_bytes.len;
        task->out_recs[i] = (dm_record_t){
            .timestamp = row->timestamp,
            .key = row->key,
            .key_len = row->key ? (int32_t)row->key_len : -1,
            .value = task->out_bytes.data + task->out_offsets[i],
            .value_len = (int32_t)(end - task->out_offsets[i]),
        };
        /* Keyed records go by key hash; keyless ones stay on the input's partition. */
        task->out_part[i] =
            row->key ? (int32_t)(dm_hash64(row->key, row->key_len) % (uint64_t)task->out_partitions)
                     : task->conf.input_partition % task->out_partitions;
    }
    return DM_OK;
}

/* Adds outputs to the transaction, one produce per output partition. */
static dm_err_t produce_output(dm_task_t *task, dm_transport_txn_t *txn, dm_error_t *err)
{
    size_t n = task->rows[task->conf.n_steps].n;
    if (!n || !task->conf.output_topic) return DM_OK;
    dm_record_t *group = malloc(n * sizeof(*group));
    if (!group) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    dm_err_t rc = DM_OK;
    for (int32_t p = 0; p < task->out_partitions && !rc; p++) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (task->out_part[i] == p) group[k++] = task->out_recs[i];
        if (k) rc = dm_transport_txn_produce(txn, task->conf.output_topic, p, group, k, err);
    }
    free(group);
    return rc;
}

/* Adds dead letters: the input record as it was, with the reason in headers. */
static dm_err_t produce_dead(dm_task_t *task, dm_transport_txn_t *txn, dm_error_t *err)
{
    if (!task->n_dlq) return DM_OK;
    dm_record_t *recs = calloc(task->n_dlq, sizeof(*recs));
    dm_record_header_t *hdrs = calloc(task->n_dlq * 5, sizeof(*hdrs));
    char(*nums)[2][24] = calloc(task->n_dlq, sizeof(*nums));
    dm_err_t rc = DM_OK;
    if (!recs || !hdrs || !nums) {
        rc = dm_error_set(err, DM_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < task->n_dlq; i++) {
        const dlq_item_t *d = &task->dlq[i];
        const dm_record_t *src = &task->fetch.records[d->fetch_index];
        dm_record_header_t *h = &hdrs[i * 5];
        int np = snprintf(nums[i][0], sizeof(nums[i][0]), "%d", task->conf.input_partition);
        int no = snprintf(nums[i][1], sizeof(nums[i][1]), "%lld", (long long)src->offset);
        h[0] = (dm_record_header_t){DM_DLQ_REASON, (uint32_t)strlen(DM_DLQ_REASON),
                                    (const uint8_t *)d->reason, (int32_t)strlen(d->reason)};
        h[1] = (dm_record_header_t){DM_DLQ_PROCESSOR, (uint32_t)strlen(DM_DLQ_PROCESSOR),
                                    (const uint8_t *)d->processor, (int32_t)strlen(d->processor)};
        h[2] = (dm_record_header_t){DM_DLQ_TOPIC, (uint32_t)strlen(DM_DLQ_TOPIC),
                                    (const uint8_t *)task->conf.input_topic,
                                    (int32_t)strlen(task->conf.input_topic)};
        h[3] = (dm_record_header_t){DM_DLQ_PARTITION, (uint32_t)strlen(DM_DLQ_PARTITION),
                                    (const uint8_t *)nums[i][0], np};
        h[4] = (dm_record_header_t){DM_DLQ_OFFSET, (uint32_t)strlen(DM_DLQ_OFFSET),
                                    (const uint8_t *)nums[i][1], no};
        recs[i] = (dm_record_t){.timestamp = src->timestamp,
                                .key = src->key,
                                .key_len = src->key_len,
                                .value = src->value,
                                .value_len = src->value_len,
                                .headers = h,
                                .n_headers = 5};
    }
    rc = dm_transport_txn_produce(txn, task->conf.dead_letter_topic,
                                  task->conf.input_partition % task->dlq_partitions, recs,
                                  task->n_dlq, err);
out:
    free(recs);
    free(hdrs);
    free(nums);
    return rc;
}

dm_err_t dm_task_step(dm_task_t *task, int timeout_ms, size_t *processed, dm_error_t *err)
{
    *processed = 0;
    dm_err_t rc = dm_transport_fetch(task->t, task->conf.input_topic, task->conf.input_partition,
                                     task->position, task->conf.max_batch_bytes, timeout_ms,
                                     &task->fetch, err);
    if (rc)
        return dm_error_prefix(err, "task %s: reading %s/%d at offset %lld", task->conf.name,
                               task->conf.input_topic, task->conf.input_partition,
                               (long long)task->position);
    task->lag = task->fetch.high_watermark - task->fetch.next_offset;
    if (task->lag < 0) task->lag = 0;
    if (task->m_lag) dm_metric_set(task->m_lag, task->lag);
    if (task->fetch.n == 0 && task->fetch.next_offset <= task->position) return DM_OK;
    uint64_t t0 = dm_now_ns();
    for (size_t i = 0; i <= task->conf.n_steps; i++)
        dm_rows_reset(&task->rows[i]);
    task->n_dlq = 0;
    if ((rc = decode_input(task, err)) || (rc = run_chain(task, err)) ||
        (rc = encode_output(task, err)))
        return rc;
    dm_transport_txn_t *txn;
    if ((rc = dm_transport_txn_begin(task->t, &txn, err))) return rc;
    dm_tp_offset_t next = {task->conf.input_topic, task->conf.input_partition,
                           task->fetch.next_offset};
    if ((rc = produce_output(task, txn, err)) || (rc = produce_dead(task, txn, err)) ||
        (rc = dm_transport_txn_offsets(txn, task->conf.group, &next, 1, err))) {
        dm_transport_txn_abort(txn);
        return rc;
    }
    if ((rc = dm_transport_txn_commit(txn, err)))
        return dm_error_prefix(err, "task %s: commit", task->conf.name);
    task->position = task->fetch.next_offset;
    *processed = task->fetch.n;
    add(task->m_in, task->fetch.n);
    add(task->m_out, task->rows[task->conf.n_steps].n);
    add(task->m_dead, task->n_dlq);
    if (task->m_latency) dm_metric_observe(task->m_latency, (dm_now_ns() - t0) / 1000);
    if (task->n_dlq)
        DM_WARN("engine", "task=%s: %zu record(s) sent to %s; first: offset %lld: %s",
                task->conf.name, task->n_dlq, task->conf.dead_letter_topic,
                (long long)task->fetch.records[task->dlq[0].fetch_index].offset,
                task->dlq[0].reason);
    return DM_OK;
}

void dm_task_free(dm_task_t *task)
{
    if (!task) return;
    for (size_t i = 0; i < task->conf.n_steps && task->procs; i++)
        dm_proc_close(task->procs[i]);
    for (size_t i = 0; task->rows && i <= task->conf.n_steps; i++)
        dm_rows_free(&task->rows[i]);
    dm_avro_codec_free(task->codec);
    dm_dead_letters_free(&task->dead);
    if (task->fetch.impl) dm_transport_batch_free(task->t, &task->fetch);
    dm_buf_free(&task->out_bytes);
    free(task->out_offsets);
    free(task->out_recs);
    free(task->out_part);
    free(task->dlq);
    free(task->rows);
    free(task->procs);
    free(task->pm);
    free(task);
}
