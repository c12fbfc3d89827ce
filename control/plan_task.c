/* control/plan_task.c — one task instance of a plan: what the embedded
 * runtime and `datamesh worker` both hand to dm_task_new. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/plan.h"
#include "core/log.h"
#include "engine/table.h"

/* Task p of a stage reads partitions q = p, p + n, … of a further input (n:
 * the stage's tasks), so every partition of it is read by one task. */
static dm_err_t map_input(const dm_plan_input_t *in, int32_t p, int32_t n, dm_plan_schema_fn schema,
                          void *ctx, dm_task_input_t **out, size_t *k, dm_error_t *err)
{
    const dm_avro_schema_t *s = schema(ctx, in->schema_id, err);
    if (!s) return dm_error_prefix(err, "schema %lld of %s", (long long)in->schema_id, in->topic);
    size_t add = p < in->partitions ? (size_t)((in->partitions - 1 - p) / n + 1) : 0;
    dm_task_input_t *a = realloc(*out, (*k + add + 1) * sizeof(*a));
    if (!a) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    *out = a;
    for (int32_t q = p; q < in->partitions; q += n)
        a[(*k)++] = (dm_task_input_t){in->topic, q, s, (uint32_t)in->schema_id};
    return DM_OK;
}

static char *printed(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *printed(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *out = NULL;
    if (vasprintf(&out, fmt, ap) < 0) out = NULL;
    va_end(ap);
    return out;
}

dm_err_t dm_plan_task_config(const dm_pipeline_plan_t *plan, size_t s, int32_t p,
                             dm_plan_schema_fn schema, void *schema_ctx, const char *data_dir,
                             dm_plan_task_t *t, dm_error_t *err)
{
    memset(t, 0, sizeof(*t));
    const dm_plan_stage_t *st = &plan->stages[s];
    bool main = s == 0;
    t->name = main ? printed("%s/task/%d", plan->name, p)
                   : printed("%s/%s/task/%d", plan->name, st->name, p);
    if (data_dir)
        t->state_dir = main ? printed("%s/state/%s/%d", data_dir, plan->name, p)
                            : printed("%s/state/%s/%s/%d", data_dir, plan->name, st->name, p);
    t->steps = calloc(st->n_steps ? st->n_steps : 1, sizeof(*t->steps));
    t->extra = calloc(st->n_extra + 1, sizeof(*t->extra));
    if (!t->name || (data_dir && !t->state_dir) || !t->steps || !t->extra)
        return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    const dm_avro_schema_t *in = schema(schema_ctx, st->input.schema_id, err);
    if (!in)
        return dm_error_prefix(err, "schema %lld of %s", (long long)st->input.schema_id,
                               st->input.topic);
    for (size_t i = 0; i < st->n_steps; i++) {
        const dm_proc_ops_t *ops = dm_plan_proc_find(st->steps[i].kind);
        if (!ops)
            return dm_error_set(err, DM_ERR_UNSUPPORTED, "step %s is not available here",
                                st->steps[i].kind);
        t->steps[i] = (dm_task_step_spec_t){ops, st->steps[i].config};
    }
    size_t n_more = 0, n_other = 0;
    int32_t n = st->input.partitions;
    dm_err_t rc = DM_OK;
    for (size_t k = 0; !rc && k < st->n_more; k++)
        rc = map_input(&st->more[k], p, n, schema, schema_ctx, &t->more, &n_more, err);
    if (!rc && st->other.topic)
        rc = map_input(&st->other, p, n, schema, schema_ctx, &t->other, &n_other, err);
    if (rc) return rc;
    for (size_t x = 0; x < st->n_extra; x++)
        t->extra[x] = st->extra[x];
    t->conf = (dm_task_config_t){
        .name = t->name,
        .group = st->group,
        .input_topic = st->input.topic,
        .input_partition = p,
        .input_schema = in,
        .input_schema_id = (uint32_t)st->input.schema_id,
        .output_topic = st->output,
        .output_schema_id = (uint32_t)st->output_schema_id,
        .dead_letter_topic = plan->dead_letter,
        .steps = t->steps,
        .n_steps = st->n_steps,
        .state_topic = st->state_topic,
        .state_dir = t->state_dir,
        .state_spill_bytes = (size_t)plan->state_spill_bytes,
        .event_time = st->event_time,
        .extra_topics = t->extra,
        .n_extra_topics = st->n_extra,
        .more_inputs = t->more,
        .n_more_inputs = n_more,
        .other_inputs = t->other,
        .n_other_inputs = n_other,
        .idle_timeout_ms = plan->idle_timeout_ms,
        .watermark_out = st->writes_rekey,
        .watermark_producer = st->producer_base + p,
        .watermark_producers = st->watermark_producers,
        .schema_by_id = schema,
        .schema_ctx = schema_ctx,
        .schema_policy = plan->schema_change == DM_SCHEMA_CHANGE_FREEZE ? DM_TASK_SCHEMA_RESOLVE
                                                                        : DM_TASK_SCHEMA_STOP,
        .input_newest_id = (uint32_t)st->input.newest_id,
        /* a stage reading a rekey topic reads it whole: it is the pipeline's own */
        .start_at_end = plan->start_latest && st->watermark_producers == 0,
        /* the first stage reads the dead letters put back (task p: partition p) */
        .replay_topic = main ? plan->replay : NULL,
    };
    return DM_OK;
}

void dm_plan_task_release(dm_plan_task_t *t)
{
    free(t->name);
    free(t->state_dir);
    free(t->steps);
    free(t->more);
    free(t->other);
    free(t->extra);
    memset(t, 0, sizeof(*t));
}

/* ---- tables -------------------------------------------------------------------------------- */

void dm_plan_table_follow(dm_table_t *table, dm_transport_t *t, const char *topic,
                          int32_t partitions, const char *name, dm_unit_status_t *st,
                          _Atomic bool *ready)
{
    int64_t *pos = calloc((size_t)(partitions > 0 ? partitions : 1), sizeof(int64_t));
    dm_transport_batch_t b = {0};
    dm_error_t err = {0};
    if (!pos) {
        dm_unit_set(st, DM_UNIT_FAILED, "out of memory");
        return;
    }
    for (int32_t p = 0; p < partitions; p++) {
        int64_t end;
        dm_transport_offsets(t, topic, p, &pos[p], &end, &err);
    }
    dm_unit_set(st, DM_UNIT_RUNNING, NULL);
    bool failed = false;
    while (!failed && !atomic_load(&st->stop)) {
        int64_t lag = 0;
        for (int32_t p = 0; p < partitions && !atomic_load(&st->stop); p++) {
            if (dm_transport_fetch(t, topic, p, pos[p], 1 << 20, partitions == 1 ? 200 : 50, &b,
                                   &err)) {
                failed = !dm_unit_retry(st, &err, "reading %s/%d", topic, p);
                lag = -1; /* not known this round */
                break;
            }
            dm_unit_ok(st);
            for (size_t i = 0; i < b.n; i++)
                if (dm_table_apply(table, &b.records[i], &err))
                    DM_WARN("engine", "%s: skipped offset %lld of %s/%d: %s", name,
                            (long long)b.records[i].offset, topic, p, err.message);
            if (b.next_offset > pos[p]) pos[p] = b.next_offset;
            lag += b.high_watermark - pos[p];
        }
        if (lag < 0) continue;
        atomic_store(&st->position, (int64_t)dm_table_size(table));
        atomic_store(&st->lag, lag);
        if (lag == 0) atomic_store(ready, true);
    }
    dm_transport_batch_free(t, &b);
    free(pos);
    if (dm_unit_state(st) != DM_UNIT_FAILED) dm_unit_set(st, DM_UNIT_STOPPED, NULL);
}
