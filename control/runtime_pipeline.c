/* control/runtime_pipeline.c — Pipeline specs to running tasks, tables and sinks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/runtime_internal.h"

static void *sink_main(void *arg)
{
    unit_t *u = arg;
    dm_sink_run(&u->run, &u->st);
    return NULL;
}

/* One step of a task unit on a pool worker: a batch when there is input,
 * else a wait for its input partition (woken by the commit that fills it). */
dm_job_next_t dm_runtime_task_step(void *arg, dm_job_wait_t *w)
{
    unit_t *u = arg;
    dm_error_t err = {0};
    if (atomic_load(&u->st.stop)) return DM_JOB_DONE;
    /* A stream–table join starts once its tables hold what their sources had. */
    for (int i = 0; i < u->n_tables; i++)
        if (!atomic_load(&u->tables[i]->ready)) {
            dm_unit_set(&u->st, "starting", "waiting for table %s to load", u->tables[i]->topic);
            w->sleep_ms = 20;
            return DM_JOB_SLEEP;
        }
    size_t n = 0;
    if (dm_task_step(u->task, 0, &n, &err)) {
        dm_unit_set(&u->st, "retrying", "%s", err.message);
        DM_WARN("engine", "%s: %s; retrying in %lld ms", u->name, err.message,
                (long long)u->backoff);
        w->sleep_ms = u->backoff;
        if (u->backoff < 10000) u->backoff *= 2;
        return DM_JOB_SLEEP;
    }
    if (u->backoff != 100 || strcmp(u->st.state, "running")) dm_unit_set(&u->st, "running", NULL);
    u->backoff = 100;
    atomic_store(&u->st.position, dm_task_position(u->task));
    atomic_store(&u->st.lag, dm_task_lag(u->task));
    if (n) return DM_JOB_AGAIN;
    w->n_inputs = dm_task_inputs(u->task, w->inputs, DM_JOB_MAX_INPUTS);
    /* Caught up: nothing to do until a commit wakes it, or its next timer. */
    int64_t timer = dm_task_next_timer(u->task);
    w->sleep_ms = 0;
    if (timer) w->sleep_ms = timer > dm_wall_ms() ? timer - dm_wall_ms() : 1;
    return DM_JOB_WAIT;
}

/* Keeps a table up to date with every partition of its source's topic. */
static void *table_main(void *arg)
{
    unit_t *u = arg;
    dm_transport_t *t = u->rt->t;
    int64_t *pos = calloc((size_t)u->partitions, sizeof(int64_t));
    dm_transport_batch_t b = {0};
    dm_error_t err = {0};
    for (int32_t p = 0; p < u->partitions; p++) {
        int64_t end;
        dm_transport_offsets(t, u->topic, p, &pos[p], &end, &err);
    }
    dm_unit_set(&u->st, "running", NULL);
    while (!atomic_load(&u->st.stop)) {
        int64_t lag = 0;
        for (int32_t p = 0; p < u->partitions && !atomic_load(&u->st.stop); p++) {
            if (dm_transport_fetch(t, u->topic, p, pos[p], 1 << 20, u->partitions == 1 ? 200 : 50,
                                   &b, &err)) {
                dm_unit_set(&u->st, "retrying", "%s", err.message);
                dm_unit_sleep(&u->st, 500);
                continue;
            }
            for (size_t i = 0; i < b.n; i++)
                if (dm_table_apply(u->table, &b.records[i], &err))
                    DM_WARN("engine", "%s: skipped offset %lld: %s", u->name,
                            (long long)b.records[i].offset, err.message);
            if (b.next_offset > pos[p]) pos[p] = b.next_offset;
            lag += b.high_watermark - pos[p];
        }
        atomic_store(&u->st.position, (int64_t)dm_table_size(u->table));
        atomic_store(&u->st.lag, lag);
        if (lag == 0) atomic_store(&u->ready, true);
    }
    dm_transport_batch_free(t, &b);
    free(pos);
    dm_unit_set(&u->st, "stopped", NULL);
    return NULL;
}

/* ---- sinks on the common runner ---------------------------------------------------- */

/* Schemas of keys and of older values, by id, for a sink unit. Runs on the
 * sink's thread, with its own registry handle (one per thread). */
static const dm_avro_schema_t *sink_schema_by_id(void *ctx, uint32_t id)
{
    unit_t *u = ctx;
    for (schema_entry_t *e = u->run_schemas; e; e = e->next)
        if (e->id == (int64_t)id) return e->schema;
    char path[4200], *text = NULL;
    dm_avro_schema_t *s = NULL;
    snprintf(path, sizeof(path), "%s/registry.db", u->rt->data_dir);
    if (!u->run_reg && dm_schema_registry_open(path, &u->run_reg, NULL)) return NULL;
    if (dm_schema_registry_get_by_id(u->run_reg, id, &text, NULL)) return NULL;
    dm_err_t rc = dm_avro_schema_parse(text, strlen(text), &s, NULL);
    free(text);
    schema_entry_t *e = rc ? NULL : calloc(1, sizeof(*e));
    if (!e) {
        dm_avro_schema_free(s);
        return NULL;
    }
    *e = (schema_entry_t){(int64_t)id, s, u->run_schemas};
    u->run_schemas = e;
    return s;
}

/* The controller's registry address, for sinks that register schemas
 * elsewhere (kafka). Any thread. */
static void sink_registry_url(void *ctx, char *out, size_t cap)
{
    unit_t *u = ctx;
    pthread_mutex_lock(&u->rt->url_mu);
    snprintf(out, cap, "%s", u->rt->registry_url);
    pthread_mutex_unlock(&u->rt->url_mu);
}

void dm_runtime_set_registry_url(dm_runtime_t *rt, const char *url)
{
    pthread_mutex_lock(&rt->url_mu);
    snprintf(rt->registry_url, sizeof(rt->registry_url), "%s", url);
    pthread_mutex_unlock(&rt->url_mu);
}

void dm_runtime_free_runner_sink(unit_t *u)
{
    dm_config_free(u->run.ops->config, u->run_conf);
    free(u->run_conf);
    free(u->run_keys.items);
    dm_schema_registry_close(u->run_reg);
    while (u->run_schemas) {
        schema_entry_t *e = u->run_schemas;
        u->run_schemas = e->next;
        dm_avro_schema_free(e->schema);
        free(e);
    }
}

json_t *dm_runtime_step_config(const json_t *step, const char **kind)
{
    *kind = json_object_iter_key(json_object_iter((json_t *)step));
    const json_t *arg = json_object_get(step, *kind);
    if (!strcmp(*kind, "filter")) return json_pack("{s:O}", "expr", arg);
    if (!strcmp(*kind, "project")) return json_pack("{s:O}", "columns", arg);
    return json_deep_copy(arg);
}

/* ---- pipelines ------------------------------------------------------------------- */

/* The compacted topic a pipeline's stateful steps checkpoint their state to. */
static dm_err_t ensure_state_topic(dm_runtime_t *rt, const char *name, int32_t partitions,
                                   dm_error_t *err)
{
    dm_topic_description_t d;
    if (dm_transport_describe_topic(rt->t, name, &d, NULL) == DM_OK) {
        dm_transport_description_free(&d);
        return DM_OK;
    }
    dm_topic_config_t conf = {.name = name,
                              .partitions = partitions > 0 ? partitions : 1,
                              .compact = true,
                              .fsync = DM_TRANSPORT_FSYNC_INTERVAL,
                              .flush_ms = 1000};
    return dm_transport_create_topic(rt->t, &conf, err);
}

/* What a pipeline's time-based and routing steps need from its tasks: whether
 * state is kept, the event-time field (the first `time` of a stateful step,
 * when the pipeline's input has it; else record timestamps are event time)
 * and the route's output names (new reference, in "extra"). */
static json_t *pipeline_time_and_outputs(const json_t *steps, const dm_avro_node_t *input)
{
    json_t *r = json_pack("{s:b, s:n, s:[]}", "stateful", 0, "time", "extra");
    size_t i;
    json_t *step;
    json_array_foreach(steps, i, step)
    {
        const char *kind = json_object_iter_key(json_object_iter(step));
        const json_t *arg = json_object_get(step, kind);
        const dm_proc_ops_t *ops = kind ? dm_proc_find(kind) : NULL;
        if (ops && ops->stateful) {
            json_object_set_new(r, "stateful", json_true());
            const char *time = json_string_value(json_object_get(arg, "time"));
            dm_expr_t *e = NULL;
            if (time && json_is_null(json_object_get(r, "time")) &&
                dm_expr_compile(time, input, &e, NULL) == DM_OK)
                json_object_set_new(r, "time", json_string(time));
            dm_expr_free(e);
        }
        const char *name;
        json_t *x;
        if (kind && !strcmp(kind, "route"))
            json_object_foreach(json_object_get(arg, "outputs"), name, x)
                json_array_append_new(json_object_get(r, "extra"), json_string(name));
    }
    return r;
}

/* The table an enrich step reads (found among the running table units). */
dm_table_t *dm_runtime_env_table(void *ctx, const char *source, dm_error_t *err)
{
    dm_runtime_t *rt = ctx;
    for (unit_t *u = rt->units; u; u = u->next)
        if (u->kind == U_TABLE && !strcmp(dm_table_name(u->table), source)) return u->table;
    dm_error_set(err, DM_ERR_NOT_FOUND, "no table for source '%s'", source);
    return NULL;
}

/* Starts a table reader for an enrich source of pipeline owner. */
static dm_err_t start_table(dm_runtime_t *rt, const char *owner, const char *source,
                            const json_t *stored_sources, unit_t **table_unit, dm_error_t *err)
{
    for (unit_t *u = rt->units; u; u = u->next)
        if (u->kind == U_TABLE && !strcmp(u->owner, owner) &&
            !strcmp(dm_table_name(u->table), source)) {
            *table_unit = u;
            return DM_OK;
        }
    const json_t *src = json_object_get(stored_sources, source);
    const json_t *key = json_object_get(json_object_get(src, "spec"), "key");
    if (!json_array_size(key))
        return dm_error_set(err, DM_ERR_INVALID,
                            "enrich with %s: the source has no key (spec.key) to look up by",
                            source);
    char subject[300];
    snprintf(subject, sizeof(subject), "%s-value", source);
    int64_t id;
    if (dm_schema_registry_get_version(rt->reg, subject, -1, &id, NULL, NULL, err))
        return err->code;
    dm_avro_schema_t *schema = dm_runtime_schema_locked(rt, id, err);
    if (!schema) return err->code;
    char uname[300];
    snprintf(uname, sizeof(uname), "%s/table/%s", owner + strlen("Pipeline/"), source);
    unit_t *u = dm_runtime_unit_new(rt, U_TABLE, owner, uname);
    if (!u) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    dm_err_t rc =
        dm_table_new(source, schema, json_string_value(json_array_get(key, 0)), &u->table, err);
    if (rc) {
        dm_unit_set(&u->st, "failed", "%s", err->message);
        u->kind = U_TASK; /* nothing to free but the status */
        return rc;
    }
    snprintf(u->topic, sizeof(u->topic), "%s", source);
    u->partitions = dm_runtime_topic_partitions(rt, source);
    dm_runtime_unit_start(u, table_main);
    *table_unit = u;
    return DM_OK;
}

/* Configures unit u as a sink of type ops reading topic (the pipeline's
 * output); the unit is started by the caller. settings: the sink's spec
 * without "type". keys: the input source's key fields (JSON array or NULL). */
static dm_err_t setup_runner_sink(dm_runtime_t *rt, unit_t *u, const dm_sink_ops_t *ops,
                                  const json_t *settings, const json_t *keys, const char *topic,
                                  const dm_avro_schema_t *schema, int64_t schema_id,
                                  const char *dlq, dm_error_t *err)
{
    u->run_conf = calloc(1, ops->config_size);
    if (!u->run_conf) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    u->run.ops = ops; /* from here on unit_free releases the rest */
    dm_config_defaults(ops->config, u->run_conf, err);
    if (dm_config_apply_json(ops->config, u->run_conf, settings, NULL, err)) return err->code;
    u->owned = json_pack("{s:O, s:s}", "keys", keys ? keys : json_null(), "dlq", dlq);
    const json_t *k = json_object_get(u->owned, "keys");
    u->run_keys.n = json_array_size(k);
    u->run_keys.items = calloc(u->run_keys.n + 1, sizeof(char *));
    for (size_t i = 0; i < u->run_keys.n; i++)
        u->run_keys.items[i] = (char *)json_string_value(json_array_get(k, i));
    snprintf(u->topic, sizeof(u->topic), "%s", topic);
    u->run.transport = rt->t;
    u->run.conf = u->run_conf;
    u->run.dead_letter_topic = json_string_value(json_object_get(u->owned, "dlq"));
    u->run.metrics = rt->metrics;
    u->run.env = (dm_sink_env_t){.name = u->name,
                                 .topic = u->topic,
                                 .partitions = dm_runtime_topic_partitions(rt, topic),
                                 .group = u->group,
                                 .value_schema = schema,
                                 .value_schema_id = (uint32_t)schema_id,
                                 .key_fields = &u->run_keys,
                                 .registry_url = sink_registry_url,
                                 .schema_by_id = sink_schema_by_id,
                                 .schema_ctx = u,
                                 .registry_ctx = u};
    return DM_OK;
}

/* What a `datamesh worker` needs to run a pipeline's tasks (see dm_runtime_worker_tasks). */
static json_t *worker_task(const json_t *doc, const char *group, const char *input,
                           int32_t partitions, int64_t in_id, const char *out, int64_t out_id,
                           const char *dlq)
{
    json_t *steps = json_array();
    size_t i;
    json_t *step;
    json_array_foreach(json_object_get(json_object_get(doc, "spec"), "steps"), i, step)
    {
        const char *kind;
        json_t *conf = dm_runtime_step_config(step, &kind);
        json_array_append_new(steps, json_pack("{s:s, s:o}", "kind", kind, "config", conf));
    }
    return json_pack("{s:s, s:s, s:s, s:i, s:I, s:s?, s:I, s:s, s:o}", "pipeline",
                     dm_spec_name(doc), "group", group, "input", input, "partitions",
                     (int)partitions, "input_schema_id", (json_int_t)in_id, "output", out,
                     "output_schema_id", (json_int_t)out_id, "dead_letter", dlq, "steps", steps);
}

void dm_runtime_start_pipeline(dm_runtime_t *rt, const json_t *doc, const json_t *stored_sources,
                               const json_t *stored_sinks)
{
    const char *name = dm_spec_name(doc);
    char owner[160];
    snprintf(owner, sizeof(owner), "Pipeline/%s", name);
    const json_t *spec = json_object_get(doc, "spec");
    const json_t *from = json_object_get(spec, "from");
    const char *input =
        json_is_string(from) ? json_string_value(from) : json_string_value(json_array_get(from, 0));
    dm_error_t err = {0};
    char subject[300];
    snprintf(subject, sizeof(subject), "%s-value", input);
    int64_t in_id;
    if (dm_schema_registry_get_version(rt->reg, subject, -1, &in_id, NULL, NULL, &err))
        return dm_runtime_unit_failed(
            rt, owner, "input", "the input source has no registered schema yet (is it running?)");
    dm_avro_schema_t *in_schema = dm_runtime_schema_locked(rt, in_id, &err);
    int32_t in_parts = dm_runtime_topic_partitions(rt, input);
    if (!in_schema || in_parts <= 0) return dm_runtime_unit_failed(rt, owner, "input", err.message);
    /* A union: the other sources, each read as the first one's schema. Task
     * p reads partition p of the first and partitions q = p, p + n, ... of the others. */
    size_t n_from = json_is_array(from) ? json_array_size(from) : 1;
    const dm_avro_schema_t *u_schema[16] = {0};
    uint32_t u_id[16] = {0};
    int32_t u_parts[16] = {0};
    if (n_from > 16)
        return dm_runtime_unit_failed(rt, owner, "input", "a union reads at most 16 sources");
    for (size_t k = 1; k < n_from; k++) {
        const char *src = json_string_value(json_array_get(from, k));
        char subj[300], msg[600];
        int64_t id = 0;
        snprintf(subj, sizeof(subj), "%s-value", src);
        if (dm_schema_registry_get_version(rt->reg, subj, -1, &id, NULL, NULL, &err) == DM_OK)
            u_schema[k] = dm_runtime_schema_locked(rt, id, &err);
        u_id[k] = (uint32_t)id;
        u_parts[k] = dm_runtime_topic_partitions(rt, src);
        if (!u_schema[k] || u_parts[k] <= 0) {
            snprintf(msg, sizeof(msg), "source %s has no registered schema or topic yet", src);
            return dm_runtime_unit_failed(rt, owner, "input", msg);
        }
    }

    /* A join (one per pipeline, at any step): the partitions of the source it
     * joins with, task p reading q = p, p + n, ... of them. */
    const json_t *join0 = NULL;
    for (size_t k = 0; !join0 && k < json_array_size(json_object_get(spec, "steps")); k++)
        join0 = json_object_get(json_array_get(json_object_get(spec, "steps"), k), "join");
    const char *jwith = json_string_value(json_object_get(join0, "with"));
    const dm_avro_schema_t *j_schema = NULL;
    uint32_t j_id = 0;
    int32_t j_parts = 0;
    if (jwith) {
        char subj[300], msg[600];
        int64_t id = 0;
        snprintf(subj, sizeof(subj), "%s-value", jwith);
        if (dm_schema_registry_get_version(rt->reg, subj, -1, &id, NULL, NULL, &err) == DM_OK)
            j_schema = dm_runtime_schema_locked(rt, id, &err);
        j_id = (uint32_t)id;
        j_parts = dm_runtime_topic_partitions(rt, jwith);
        if (!j_schema || j_parts <= 0) {
            snprintf(msg, sizeof(msg),
                     "join with %s: the source has no registered schema or "
                     "topic yet",
                     jwith);
            return dm_runtime_unit_failed(rt, owner, "join", msg);
        }
    }

    /* Steps: spec syntax to processor settings. */
    const json_t *steps = json_object_get(spec, "steps");
    size_t n_steps = json_array_size(steps);
    dm_task_step_spec_t *specs = calloc(n_steps ? n_steps : 1, sizeof(*specs));
    json_t *configs = json_array();
    unit_t *tables[8];
    int n_tables = 0;
    for (size_t i = 0; i < n_steps; i++) {
        const json_t *step = json_array_get(steps, i);
        const char *kind;
        json_t *conf = dm_runtime_step_config(step, &kind);
        const json_t *arg = json_object_get(step, kind);
        json_array_append_new(configs, conf);
        specs[i] = (dm_task_step_spec_t){dm_proc_find(kind), conf};
        unit_t *tu = NULL;
        if (!strcmp(kind, "enrich") &&
            start_table(rt, owner, json_string_value(json_object_get(arg, "with")), stored_sources,
                        &tu, &err)) {
            free(specs);
            json_decref(configs);
            return dm_runtime_unit_failed(rt, owner, "enrich", err.message);
        }
        if (tu && n_tables < 8) tables[n_tables++] = tu;
    }
    /* Output topic: the derived source, else one of the pipeline's own. */
    char out_topic[300] = "", dlq[300];
    const json_t *to = json_object_get(spec, "to");
    size_t i;
    json_t *o;
    json_array_foreach(to, i, o) if (json_is_string(json_object_get(o, "source"))) snprintf(
        out_topic, sizeof(out_topic), "%s", json_string_value(json_object_get(o, "source")));
    bool derived = out_topic[0] != '\0';
    if (!derived) snprintf(out_topic, sizeof(out_topic), "pipeline.%s.out", name);
    snprintf(dlq, sizeof(dlq), "pipeline.%s.dlq", name);
    char out_subject[320];
    snprintf(out_subject, sizeof(out_subject), "%s-value", out_topic);
    json_t *timing = pipeline_time_and_outputs(steps, in_schema->root);
    json_t *extra = json_object_get(timing, "extra");
    bool stateful = json_is_true(json_object_get(timing, "stateful"));
    char state_topic[300];
    snprintf(state_topic, sizeof(state_topic), "pipeline.%s.state", name);
    dm_err_t trc = dm_runtime_ensure_topic(rt, out_topic, in_parts, out_subject, &err);
    if (!trc) trc = dm_runtime_ensure_topic(rt, dlq, 1, NULL, &err);
    if (!trc && stateful) trc = ensure_state_topic(rt, state_topic, in_parts, &err);
    if (!trc && json_array_size(extra) > 8)
        trc = dm_error_set(&err, DM_ERR_UNSUPPORTED, "a route has more than 8 outputs");
    for (size_t x = 0; !trc && x < json_array_size(extra); x++) {
        const char *topic = json_string_value(json_array_get(extra, x));
        char subj[320];
        snprintf(subj, sizeof(subj), "%s-value", topic);
        trc = dm_runtime_ensure_topic(rt, topic, in_parts, subj, &err);
    }
    if (trc) {
        free(specs);
        json_decref(configs);
        json_decref(timing);
        return dm_runtime_unit_failed(rt, owner, "topics", err.message);
    }
    int64_t out_id = 0;
    dm_avro_schema_t *out_schema = NULL;
    char group[300];
    snprintf(group, sizeof(group), "pipeline.%s", name);
    for (int32_t p = 0; p < in_parts; p++) {
        char uname[300];
        snprintf(uname, sizeof(uname), "%s/task/%d", name, p);
        unit_t *u = dm_runtime_unit_new(rt, U_TASK, owner, uname);
        if (!u) break;
        /* The unit keeps the strings its task borrows. */
        u->owned = json_pack("{s:O, s:s, s:s, s:O, s:s}", "configs", configs, "out", out_topic,
                             "dlq", dlq, "timing", timing, "state", state_topic);
        char sdir[4400];
        snprintf(sdir, sizeof(sdir), "%s/state/%s/%d", rt->data_dir, name, p);
        json_object_set_new(u->owned, "state_dir", json_string(sdir));
        const json_t *ut = json_object_get(u->owned, "timing");
        json_object_set_new(u->owned, "from", json_deep_copy(from));
        const json_t *uf = json_object_get(u->owned, "from");
        dm_task_input_t more[64];
        size_t n_more = 0;
        for (size_t k = 1; k < n_from; k++)
            for (int32_t q = p; q < u_parts[k] && n_more < 64; q += in_parts)
                more[n_more++] = (dm_task_input_t){json_string_value(json_array_get(uf, k)), q,
                                                   u_schema[k], u_id[k]};
        for (size_t x = 0; x < json_array_size(extra); x++)
            u->extra[x] = json_string_value(json_array_get(json_object_get(ut, "extra"), x));
        snprintf(u->topic, sizeof(u->topic), "%s", input);
        snprintf(u->group, sizeof(u->group), "%s", group);
        dm_task_config_t tc = {.name = u->name,
                               .group = u->group,
                               .input_topic = u->topic,
                               .input_partition = p,
                               .input_schema = in_schema,
                               .input_schema_id = (uint32_t)in_id,
                               .output_topic = json_string_value(json_object_get(u->owned, "out")),
                               .dead_letter_topic =
                                   json_string_value(json_object_get(u->owned, "dlq")),
                               .steps = specs,
                               .n_steps = n_steps,
                               .metrics = rt->metrics,
                               .env = &rt->env};
        /* State, event time, route outputs and union inputs (engine/task.h). */
        if (stateful) tc.state_topic = json_string_value(json_object_get(u->owned, "state"));
        tc.state_dir = json_string_value(json_object_get(u->owned, "state_dir"));
        /* spec.idle_timeout (validated at apply): 0 = an input holds the
         * watermark back only while it brings records */
        const json_t *idle = json_object_get(spec, "idle_timeout");
        int64_t idle_ms = json_is_integer(idle) ? json_integer_value(idle) : 0;
        if (json_is_string(idle) && dm_parse_duration_ms(json_string_value(idle), &idle_ms))
            idle_ms = 0;
        if (idle) tc.idle_timeout_ms = idle_ms > 0 ? idle_ms : 1;
        int64_t spill = 0; /* validated at apply (spec.state.spill) */
        if (!dm_spec_state_spill(json_object_get(spec, "state"), &spill))
            tc.state_spill_bytes = (size_t)spill;
        tc.event_time = json_string_value(json_object_get(ut, "time"));
        tc.extra_topics = u->extra;
        tc.n_extra_topics = json_array_size(extra);
        tc.more_inputs = more;
        tc.n_more_inputs = n_more;
        dm_task_input_t other[64];
        size_t n_other = 0;
        if (jwith) json_object_set_new(u->owned, "join_with", json_string(jwith));
        for (int32_t q = p; jwith && q < j_parts && n_other < 64; q += in_parts)
            other[n_other++] = (dm_task_input_t){
                json_string_value(json_object_get(u->owned, "join_with")), q, j_schema, j_id};
        tc.other_inputs = other;
        tc.n_other_inputs = n_other;
        if (dm_task_new(rt->t, &tc, &u->task, &err)) {
            dm_unit_set(&u->st, "failed", "%s", err.message);
            break;
        }
        if (!out_schema) {
            /* Register what the chain writes (the derived source's schema). */
            char *text =
                dm_task_output_schema(u->task) == in_schema->root ? strdup(in_schema->json) : NULL;
            if (!text) {
                json_t *seen = json_object();
                json_t *j = dm_schema_type_json(dm_task_output_schema(u->task), seen);
                text = json_dumps(j, JSON_COMPACT);
                json_decref(j);
                json_decref(seen);
            }
            out_schema = dm_runtime_register_schema(rt, out_subject, text, &out_id, &err);
            /* Route outputs carry the same records: the same schema and id. */
            for (size_t x = 0; out_schema && x < json_array_size(extra); x++) {
                char subj[320];
                int64_t xid = 0;
                snprintf(subj, sizeof(subj), "%s-value",
                         json_string_value(json_array_get(extra, x)));
                if (!dm_runtime_register_schema(rt, subj, text, &xid, &err)) {
                    out_schema = NULL;
                } else if (xid != out_id) {
                    dm_error_set(&err, DM_ERR_SCHEMA_INCOMPATIBLE,
                                 "route output %s already has another schema (id %lld, the "
                                 "pipeline writes id %lld)",
                                 json_string_value(json_array_get(extra, x)), (long long)xid,
                                 (long long)out_id);
                    out_schema = NULL;
                }
            }
            free(text);
            if (!out_schema) {
                dm_unit_set(&u->st, "failed", "paused: %s", err.message);
                break;
            }
        }
        dm_task_set_output_schema_id(u->task, (uint32_t)out_id);
        memcpy(u->tables, tables, sizeof(tables));
        u->n_tables = n_tables;
        if (rt->external_tasks) {
            dm_unit_set(&u->st, "external", "run by datamesh worker processes (group %s)", group);
            continue;
        }
        dm_runtime_unit_start(u, NULL);
    }
    if (rt->external_tasks && out_schema)
        json_object_set_new(
            rt->worker_tasks, owner,
            worker_task(doc, group, input, in_parts, in_id, out_topic, out_id, dlq));
    free(specs); /* tasks opened their processors; the settings live in u->owned */
    json_decref(configs);
    json_decref(timing);
    if (!out_schema) return;
    /* Sinks read the output topic. */
    size_t k = 0;
    json_array_foreach(to, i, o)
    {
        const json_t *sink = json_object_get(o, "sink");
        if (!sink) continue;
        if (json_is_string(sink))
            sink = json_object_get(json_object_get(stored_sinks, json_string_value(sink)), "spec");
        char uname[300];
        snprintf(uname, sizeof(uname), "%s/sink/%zu", name, k++);
        unit_t *u = dm_runtime_unit_new(rt, U_SINK, owner, uname);
        if (!u) break;
        json_t *settings = json_deep_copy(sink);
        json_object_del(settings, "type");
        const char *type = json_string_value(json_object_get(sink, "type"));
        const dm_sink_ops_t *ops = dm_sink_ops_find(type);
        if (!ops) {
            char have[200];
            dm_sink_types_available(have, sizeof(have));
            dm_unit_set(&u->st, "failed", "sink type %s is not available (available: %s)",
                        type ? type : "(none)", have);
            json_decref(settings);
            continue;
        }
        /* Every sink type runs on the common runner. */
        snprintf(u->group, sizeof(u->group), "sink.%s.%zu", name, k - 1);
        const json_t *src = json_object_get(json_object_get(stored_sources, input), "spec");
        if (setup_runner_sink(rt, u, ops, settings, json_object_get(src, "key"), out_topic,
                              out_schema, out_id, dlq, &err))
            dm_unit_set(&u->st, "failed", "%s", err.message);
        else
            dm_runtime_unit_start(u, sink_main);
        json_decref(settings);
    }
}
