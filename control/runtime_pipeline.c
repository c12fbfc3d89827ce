/* control/runtime_pipeline.c — Pipeline specs to running tasks, tables and sinks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/runtime_internal.h"
#include "control/spec.h"

static void *sink_main(void *arg)
{
    unit_t *u = arg;
    dm_sink_run(&u->run, &u->st);
    return NULL;
}

/* A task met a schema version of its input it does not read (engine/task.h),
 * having committed everything before it. evolve and lenient: the pipeline is
 * recompiled on the new version and restarted from there by the reconciler;
 * fail (and freeze, when its reader cannot read the version): the task
 * pauses there with the reason. */
static dm_job_next_t schema_changed(unit_t *u, const dm_error_t *err, dm_job_wait_t *w)
{
    dm_plan_schema_change_t policy = u->plan->plan->schema_change;
    const char *name = dm_spec_schema_changes[policy];
    atomic_store(&u->st.position, dm_task_position(u->task));
    const char *why = "";
    if (err->code == DM_ERR_SCHEMA_NEW_VERSION &&
        (policy == DM_SCHEMA_CHANGE_EVOLVE || policy == DM_SCHEMA_CHANGE_LENIENT)) {
        if (dm_runtime_request_restart(u->rt, u->owner, err->message)) {
            dm_unit_set(&u->st, DM_UNIT_STARTING, "%s; restarting on the new version (%s)",
                        err->message, name);
            dm_runtime_note_schema_change(u->rt, u->owner, name, "restart", err->message);
            return DM_JOB_DONE;
        }
        why = " (still after recompiling on the latest version: the id is no version of the "
              "source's schema)";
    }
    dm_unit_set(&u->st, DM_UNIT_FAILED, "paused (schema_change: %s): %s%s", name, err->message,
                why);
    dm_runtime_note_schema_change(u->rt, u->owner, name, "pause", err->message);
    DM_ERROR("control", "%s: paused (schema_change: %s): %s", u->owner, name, err->message);
    w->sleep_ms = 0;
    return DM_JOB_DONE;
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
            dm_unit_set(&u->st, DM_UNIT_STARTING, "waiting for table %s to load",
                        u->tables[i]->topic);
            w->sleep_ms = 20;
            return DM_JOB_SLEEP;
        }
    size_t n = 0;
    dm_err_t rc = dm_task_step(u->task, 0, &n, &err);
    if (rc == DM_ERR_SCHEMA_NEW_VERSION || rc == DM_ERR_SCHEMA_INCOMPATIBLE)
        return schema_changed(u, &err, w);
    /* Stopping (a restart on a new version): the failed step committed
     * nothing, and the next run of the task starts where it had come. */
    if (rc && atomic_load(&u->st.stop)) return DM_JOB_DONE;
    if (rc) { /* the failure policy (connectors/unit.h) */
        w->sleep_ms = dm_unit_failure(&u->st, &err, NULL);
        return w->sleep_ms < 0 ? DM_JOB_DONE : DM_JOB_SLEEP;
    }
    dm_unit_ok(&u->st);
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
    dm_plan_table_follow(u->table, u->rt->t, u->topic, u->partitions, u->name, &u->st, &u->ready);
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

/* ---- tables ------------------------------------------------------------------------ */

/* The table an enrich step reads (found among the running table units). */
dm_table_t *dm_runtime_env_table(void *ctx, const char *source, dm_error_t *err)
{
    dm_runtime_t *rt = ctx;
    for (unit_t *u = rt->units; u; u = u->next)
        if (u->kind == U_TABLE && !strcmp(dm_table_name(u->table), source)) return u->table;
    dm_error_set(err, DM_ERR_NOT_FOUND, "no table for source '%s'", source);
    return NULL;
}

/* Starts a table reader for an enrich table of a pipeline's plan. */
static dm_err_t start_table(dm_runtime_t *rt, const char *owner, plan_ref_t *ref,
                            const dm_plan_table_t *t, unit_t **table_unit, dm_error_t *err)
{
    dm_avro_schema_t *schema = dm_runtime_schema_locked(rt, t->schema_id, err);
    if (!schema) return err->code;
    char uname[300];
    snprintf(uname, sizeof(uname), "%s/table/%s", ref->plan->name, t->source);
    unit_t *u = dm_runtime_unit_new(rt, U_TABLE, owner, uname);
    if (!u) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    dm_err_t rc = dm_table_new(t->source, schema, t->key, &u->table, err);
    if (rc) {
        dm_unit_set(&u->st, DM_UNIT_FAILED, "%s", err->message);
        u->kind = U_TASK; /* nothing to free but the status */
        return rc;
    }
    snprintf(u->topic, sizeof(u->topic), "%s", t->source);
    u->partitions = t->partitions;
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

/* ---- the plan compiler's view of the runtime ------------------------------------------ */

static dm_err_t batch_schema(dm_runtime_plan_ctx_t *c, const char *subject, int64_t *id,
                             const dm_avro_schema_t **schema, dm_error_t *err);

/* Notes what a compile read, under "KIND:name" (s: a subject's latest id, t:
 * whether a topic exists, Source:/Sink:/Processor: a document's generation,
 * 0 when there is none). */
static void dep_note(dm_runtime_plan_ctx_t *c, const char *kind, const char *name, int64_t value)
{
    if (!c->deps) return;
    char key[700];
    snprintf(key, sizeof(key), "%s:%s", kind, name);
    if (!json_object_get(c->deps, key)) json_object_set_new(c->deps, key, json_integer(value));
}

static int64_t doc_generation(const json_t *doc)
{
    return json_integer_value(json_object_get(json_object_get(doc, "status"), "generation"));
}

static void dep_subject(dm_runtime_plan_ctx_t *c, const char *subject)
{
    if (!c->deps) return;
    int64_t id = 0;
    dm_error_t e = {0};
    dm_schema_registry_get_version(c->rt->reg, subject, -1, &id, NULL, NULL, &e);
    dep_note(c, "s", subject, id);
}

static dm_err_t env_latest(void *ctx, const char *subject, int64_t *id,
                           const dm_avro_schema_t **schema, dm_error_t *err)
{
    dm_runtime_plan_ctx_t *c = ctx;
    dep_subject(c, subject);
    if (c->batch) {
        dm_err_t brc = batch_schema(c, subject, id, schema, err);
        if (brc != DM_ERR_NOT_FOUND) return brc;
    }
    dm_err_t rc = dm_schema_registry_get_version(c->rt->reg, subject, -1, id, NULL, NULL, err);
    if (rc) return rc;
    *schema = dm_runtime_schema_locked(c->rt, *id, err);
    return *schema ? DM_OK : err->code;
}

static dm_err_t env_register(void *ctx, const char *subject, const char *text, int64_t *id,
                             dm_error_t *err)
{
    dm_runtime_plan_ctx_t *c = ctx;
    if (!c->dry)
        return dm_runtime_register_schema(c->rt, subject, text, id, err) ? DM_OK : err->code;
    /* A dry run: the id the registry has for this text under subject, else 0 (new). */
    dep_subject(c, subject);
    *id = 0;
    if (c->registered) json_object_set_new(c->registered, subject, json_string(text));
    dm_error_t e = {0};
    int64_t latest = 0;
    if (dm_schema_registry_get_version(c->rt->reg, subject, -1, &latest, NULL, NULL, &e) ==
        DM_ERR_NOT_FOUND)
        return DM_OK; /* a new subject: nothing to be compatible with */
    if (dm_schema_registry_lookup(c->rt->reg, subject, text, id, NULL, &e) == DM_OK) return DM_OK;
    *id = 0;
    dm_schema_compat_report_t report = {0};
    dm_err_t rc = dm_schema_registry_check(c->rt->reg, subject, text, &report, &e);
    if (rc == DM_ERR_SCHEMA_INCOMPATIBLE) {
        rc = dm_runtime_incompatible(err, subject, &report);
    } else if (rc == DM_ERR_SCHEMA_PARSE) {
        rc = dm_error_set(err, rc, "schema of %s: %s", subject, e.message);
    } else {
        rc = DM_OK; /* compatible, or a subject that does not exist yet */
    }
    dm_schema_compat_report_free(&report);
    return rc;
}

static int32_t env_partitions(void *ctx, const char *topic)
{
    dm_runtime_plan_ctx_t *c = ctx;
    int32_t n = dm_runtime_topic_partitions(c->rt, topic);
    dep_note(c, "t", topic, n > 0);
    /* a dry run: a source being applied gets the partitions it asks for */
    const json_t *src = json_object_get(c->batch, topic);
    const json_t *parts = json_object_get(json_object_get(src, "spec"), "partitions");
    if (!n && src) n = json_is_integer(parts) ? (int32_t)json_integer_value(parts) : 1;
    return n;
}

/* Documents: those being applied take the place of the stored ones. */
static const json_t *env_source(void *ctx, const char *name)
{
    dm_runtime_plan_ctx_t *c = ctx;
    const json_t *d = json_object_get(c->batch, name);
    d = d ? d : json_object_get(c->sources, name);
    dep_note(c, "Source", name, doc_generation(d));
    return d;
}

static const json_t *env_sink(void *ctx, const char *name)
{
    dm_runtime_plan_ctx_t *c = ctx;
    const json_t *d = json_object_get(c->batch_sinks, name);
    d = d ? d : json_object_get(c->sinks, name);
    dep_note(c, "Sink", name, doc_generation(d));
    return d;
}

static const json_t *env_processor(void *ctx, const char *name)
{
    dm_runtime_plan_ctx_t *c = ctx;
    const json_t *d = json_object_get(c->batch_processors, name);
    if (d) return d;
    dm_error_t e = {0};
    if (!c->processors && dm_store_docs(c->rt->store, DM_KIND_PROCESSOR, &c->processors, &e))
        return NULL;
    d = json_object_get(c->processors, name);
    dep_note(c, "Processor", name, doc_generation(d));
    return d;
}

dm_plan_env_t dm_runtime_plan_env(dm_runtime_plan_ctx_t *c)
{
    return (dm_plan_env_t){env_latest, env_register, env_partitions, env_source, env_sink,
                           c,          env_processor};
}

/* ---- pipelines ------------------------------------------------------------------------- */

static const dm_avro_schema_t *task_schema(void *ctx, int64_t id, dm_error_t *err)
{
    return dm_runtime_schema_locked(ctx, id, err);
}

/* The same for a running task (other schema versions of its input), on a
 * pool worker: the lock is given up when the unit is being stopped, as the
 * runtime may hold it while removing this very job. */
static const dm_avro_schema_t *unit_schema(void *ctx, int64_t id, dm_error_t *err)
{
    unit_t *u = ctx;
    if (!dm_runtime_lock_unless_stopping(u)) {
        dm_error_set(err, DM_ERR_AGAIN, "stopping while looking up schema id %lld", (long long)id);
        return NULL;
    }
    const dm_avro_schema_t *s = dm_runtime_schema_locked(u->rt, id, err);
    pthread_mutex_unlock(&u->rt->mu);
    return s;
}

/* Creates the topics a plan needs. */
static dm_err_t ensure_plan_topics(dm_runtime_t *rt, const dm_pipeline_plan_t *plan,
                                   dm_error_t *err)
{
    for (size_t i = 0; i < plan->n_topics; i++) {
        const dm_plan_topic_t *t = &plan->topics[i];
        dm_err_t rc;
        if (t->compact) {
            dm_topic_description_t d;
            if (dm_transport_describe_topic(rt->t, t->name, &d, NULL) == DM_OK) {
                dm_transport_description_free(&d);
                continue;
            }
            dm_topic_config_t conf = {.name = t->name,
                                      .partitions = t->partitions,
                                      .compact = true,
                                      .fsync = DM_TRANSPORT_FSYNC_INTERVAL,
                                      .flush_ms = 1000};
            rc = dm_transport_create_topic(rt->t, &conf, err);
        } else {
            rc = dm_runtime_ensure_topic(rt, t->name, t->partitions, t->subject, err);
        }
        if (rc) return dm_error_prefix(err, "topic %s", t->name);
    }
    return DM_OK;
}

static plan_ref_t *plan_ref(plan_ref_t *ref)
{
    ref->refs++;
    return ref;
}

/* Starts a sink of the plan on its unit. */
static void start_sink(dm_runtime_t *rt, const char *owner, plan_ref_t *ref,
                       const dm_plan_sink_t *k, const dm_avro_schema_t *out_schema)
{
    const dm_pipeline_plan_t *plan = ref->plan;
    unit_t *u = dm_runtime_unit_new(rt, U_SINK, owner, k->name);
    if (!u) return;
    u->plan = plan_ref(ref);
    snprintf(u->group, sizeof(u->group), "%s", k->group);
    json_t *keys = json_array();
    for (size_t i = 0; k->key && k->key[i]; i++)
        json_array_append_new(keys, json_string(k->key[i]));
    dm_error_t err = {0};
    /* Every sink type runs on the common runner. */
    const dm_sink_ops_t *ops = dm_sink_ops_find(k->type);
    if (!ops) {
        char have[200];
        dm_sink_types_available(have, sizeof(have));
        dm_unit_set(&u->st, DM_UNIT_FAILED, "sink type %s is not available (available: %s)",
                    k->type ? k->type : "(none)", have);
    } else if (setup_runner_sink(rt, u, ops, k->settings, keys, plan->output, out_schema,
                                 plan->output_schema_id, plan->dead_letter, &err)) {
        dm_unit_set(&u->st, DM_UNIT_FAILED, "%s", err.message);
    } else {
        dm_runtime_unit_start(u, sink_main);
    }
    json_decref(keys);
}

dm_err_t dm_runtime_start_pipeline(dm_runtime_t *rt, const json_t *doc,
                                   const json_t *stored_sources, const json_t *stored_sinks,
                                   dm_error_t *err)
{
    const char *name = dm_spec_name(doc);
    char owner[160];
    snprintf(owner, sizeof(owner), "Pipeline/%s", name);
    dm_runtime_plan_ctx_t pc = {.rt = rt, .sources = stored_sources, .sinks = stored_sinks};
    dm_plan_env_t env = dm_runtime_plan_env(&pc);
    dm_pipeline_plan_t *plan = NULL;
    dm_err_t rc = dm_plan_compile(doc, &env, &plan, err);
    json_decref(pc.processors);
    if (rc == DM_ERR_AGAIN) return rc;
    if (!rc) rc = ensure_plan_topics(rt, plan, err);
    if (rc) {
        dm_runtime_unit_failed(rt, owner, "plan", err->message);
        dm_plan_free(plan);
        return DM_OK; /* failed for good: its status says why */
    }
    plan_ref_t *ref = calloc(1, sizeof(*ref));
    if (!ref) {
        dm_plan_free(plan);
        return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    }
    ref->plan = plan;
    ref->refs = 1; /* ours, until the units hold it */
    unit_t *tables[8];
    int n_tables = 0;
    for (size_t i = 0; i < plan->n_tables && n_tables < 8; i++) {
        dm_error_t e = {0};
        if (start_table(rt, owner, ref, &plan->tables[i], &tables[n_tables], &e))
            dm_runtime_unit_failed(rt, owner, "enrich", e.message);
        else
            tables[n_tables++]->plan = plan_ref(ref);
    }
    for (size_t s = 0; s < plan->n_stages; s++) {
        const dm_plan_stage_t *st = &plan->stages[s];
        for (int32_t p = 0; p < st->input.partitions; p++) {
            dm_plan_task_t *pt = calloc(1, sizeof(*pt));
            dm_error_t e = {0};
            if (!pt || dm_plan_task_config(plan, s, p, task_schema, rt, rt->data_dir, pt, &e)) {
                dm_runtime_unit_failed(rt, owner, pt && pt->name ? pt->name : "task",
                                       pt ? e.message : "out of memory");
                if (pt) dm_plan_task_release(pt);
                free(pt);
                continue;
            }
            unit_t *u = dm_runtime_unit_new(rt, U_TASK, owner, pt->name);
            if (!u) {
                dm_plan_task_release(pt);
                free(pt);
                break;
            }
            u->plan = plan_ref(ref);
            u->pt = pt;
            pt->conf.metrics = rt->metrics;
            pt->conf.env = &rt->env;
            pt->conf.schema_by_id = unit_schema;
            pt->conf.schema_ctx = u;
            if (rt->external_tasks) {
                dm_unit_set(&u->st, DM_UNIT_EXTERNAL, "run by datamesh worker processes (group %s)",
                            st->group);
                continue;
            }
            if (dm_task_new(rt->t, &pt->conf, &u->task, &e)) {
                dm_unit_set(&u->st, DM_UNIT_FAILED, "%s", e.message);
                continue;
            }
            memcpy(u->tables, tables, sizeof(tables));
            u->n_tables = n_tables;
            dm_runtime_unit_start(u, NULL);
        }
    }
    if (rt->external_tasks) {
        /* Workers run the tasks; sinks run here (and their settings stay here). */
        json_t *pj = dm_plan_to_json(plan);
        json_object_set_new(pj, "sinks", json_array());
        /* a worker reloads a plan whose generation changed (cli/cmd_worker.c) */
        json_object_set_new(pj, "generation", json_integer(++rt->plan_generation));
        json_object_set_new(rt->worker_tasks, owner, pj);
    }
    dm_error_t e = {0};
    const dm_avro_schema_t *out_schema = dm_runtime_schema_locked(rt, plan->output_schema_id, &e);
    for (size_t i = 0; i < plan->n_sinks; i++) {
        if (out_schema)
            start_sink(rt, owner, ref, &plan->sinks[i], out_schema);
        else
            dm_runtime_unit_failed(rt, owner, plan->sinks[i].name, e.message);
    }
    dm_runtime_plan_unref(ref);
    return DM_OK;
}

void dm_runtime_plan_unref(plan_ref_t *ref)
{
    if (!ref || --ref->refs > 0) return;
    dm_plan_free(ref->plan);
    free(ref);
}

/* A dry run's schema of a source being applied: its inline schema, parsed
 * once per run (kept in the context's list). */
static dm_err_t batch_schema(dm_runtime_plan_ctx_t *c, const char *subject, int64_t *id,
                             const dm_avro_schema_t **schema, dm_error_t *err)
{
    size_t len = strlen(subject);
    if (!c->batch || len < 7 || strcmp(subject + len - 6, "-value")) return DM_ERR_NOT_FOUND;
    char name[300];
    snprintf(name, sizeof(name), "%.*s", (int)(len - 6), subject);
    const json_t *inline_schema =
        json_object_get(json_object_get(json_object_get(c->batch, name), "spec"), "schema");
    if (!inline_schema) return DM_ERR_NOT_FOUND;
    char *text = json_dumps(inline_schema, JSON_COMPACT);
    dm_avro_schema_t *s = NULL;
    dm_err_t rc = text ? dm_avro_schema_parse(text, strlen(text), &s, err) : DM_ERR_NOMEM;
    *id = 0;
    dm_error_t e = {0};
    if (!rc) dm_schema_registry_lookup(c->rt->reg, subject, text, id, NULL, &e);
    free(text);
    if (rc) return dm_error_prefix(err, "source %s: spec.schema", name);
    json_array_append_new(c->owned, json_integer((json_int_t)(intptr_t)s));
    *schema = s;
    return DM_OK;
}

/* The spec path of a plan's sink k: spec.to[i].sink, i its place in `to`. */
static void sink_path(const json_t *doc, size_t k, char *out, size_t cap)
{
    size_t i, seen = 0;
    const json_t *to;
    snprintf(out, cap, "spec.to");
    json_array_foreach(json_object_get(json_object_get(doc, "spec"), "to"), i, to)
    {
        if (!json_object_get(to, "sink")) continue;
        if (seen++ == k) {
            snprintf(out, cap, "spec.to[%zu].sink", i);
            return;
        }
    }
}

/* Each sink's settings against the schema of the records it reads: the
 * output topic's, registered already or the one this plan would register. */
static dm_err_t check_sinks(dm_runtime_t *rt, const json_t *doc, const dm_pipeline_plan_t *plan,
                            const json_t *registered, dm_error_t *err)
{
    dm_err_t rc = DM_OK;
    dm_avro_schema_t *parsed = NULL;
    const dm_avro_schema_t *value = NULL;
    for (size_t k = 0; k < plan->n_sinks && !rc; k++) {
        const dm_sink_ops_t *ops = dm_sink_ops_find(plan->sinks[k].type);
        if (!ops || !ops->check) continue;
        if (!value) {
            char subject[600];
            snprintf(subject, sizeof(subject), "%s-value", plan->output);
            const char *text = json_string_value(json_object_get(registered, subject));
            dm_error_t e = {0};
            if (text && !dm_avro_schema_parse(text, strlen(text), &parsed, &e))
                value = parsed;
            else if (plan->output_schema_id > 0)
                value = dm_runtime_schema_locked(rt, plan->output_schema_id, &e);
            if (!value) break; /* not known before it runs: the sink says so when it opens */
        }
        dm_error_t e = {0};
        if ((rc = ops->check(plan->sinks[k].settings, value, &e))) {
            char path[64];
            sink_path(doc, k, path, sizeof(path));
            dm_error_set(err, rc, "Pipeline %s: %s: %s", plan->name, path, e.message);
        }
    }
    dm_avro_schema_free(parsed);
    return rc;
}

static dm_err_t plan_locked(dm_runtime_t *rt, const json_t *doc, const json_t *stored_sources,
                            const json_t *stored_sinks, const json_t *batch_sources,
                            const json_t *batch_sinks, const json_t *batch_processors,
                            json_t **plan_json, char **text, bool sinks, dm_error_t *err)
{
    dm_runtime_plan_ctx_t pc = {.rt = rt,
                                .sources = stored_sources,
                                .sinks = stored_sinks,
                                .dry = true,
                                .batch = batch_sources,
                                .owned = json_array(),
                                .batch_sinks = batch_sinks,
                                .batch_processors = batch_processors,
                                .registered = sinks ? json_object() : NULL};
    dm_plan_env_t env = dm_runtime_plan_env(&pc);
    dm_pipeline_plan_t *plan = NULL;
    dm_err_t rc = dm_plan_compile(doc, &env, &plan, err);
    if (!rc && plan_json) *plan_json = dm_plan_to_json(plan);
    if (!rc && text) *text = dm_plan_explain(plan);
    if (!rc && sinks) rc = check_sinks(rt, doc, plan, pc.registered, err);
    json_decref(pc.registered);
    dm_plan_free(plan);
    size_t i;
    json_t *x;
    json_array_foreach(pc.owned, i, x)
        dm_avro_schema_free((dm_avro_schema_t *)(intptr_t)json_integer_value(x));
    json_decref(pc.owned);
    json_decref(pc.processors);
    return rc;
}

dm_err_t dm_runtime_plan_locked(dm_runtime_t *rt, const json_t *doc, const json_t *stored_sources,
                                const json_t *stored_sinks, const json_t *batch_sources,
                                const json_t *batch_sinks, const json_t *batch_processors,
                                json_t **plan_json, char **text, dm_error_t *err)
{
    return plan_locked(rt, doc, stored_sources, stored_sinks, batch_sources, batch_sinks,
                       batch_processors, plan_json, text, false, err);
}

dm_err_t dm_runtime_plan_check_locked(dm_runtime_t *rt, const json_t *doc,
                                      const json_t *stored_sources, const json_t *stored_sinks,
                                      const json_t *batch_sources, const json_t *batch_sinks,
                                      const json_t *batch_processors, dm_error_t *err)
{
    return plan_locked(rt, doc, stored_sources, stored_sinks, batch_sources, batch_sinks,
                       batch_processors, NULL, NULL, true, err);
}

json_t *dm_runtime_plan_among(dm_runtime_t *rt, const json_t *doc, const json_t *sources,
                              const json_t *sinks, dm_error_t *err)
{
    json_t *j = NULL;
    pthread_mutex_lock(&rt->mu);
    dm_runtime_plan_locked(rt, doc, sources, sinks, NULL, NULL, NULL, &j, NULL, err);
    pthread_mutex_unlock(&rt->mu);
    return j;
}

json_t *dm_runtime_plan_deps(dm_runtime_t *rt, const json_t *doc, const json_t *sources,
                             const json_t *sinks, json_t **deps, dm_error_t *err)
{
    *deps = json_object();
    dm_runtime_plan_ctx_t pc = {.rt = rt,
                                .sources = sources,
                                .sinks = sinks,
                                .dry = true,
                                .owned = json_array(),
                                .deps = *deps};
    dm_plan_env_t env = dm_runtime_plan_env(&pc);
    dm_pipeline_plan_t *plan = NULL;
    json_t *j = NULL;
    pthread_mutex_lock(&rt->mu);
    if (!dm_plan_compile(doc, &env, &plan, err)) j = dm_plan_to_json(plan);
    pthread_mutex_unlock(&rt->mu);
    dm_plan_free(plan);
    size_t i;
    json_t *x;
    json_array_foreach(pc.owned, i, x)
        dm_avro_schema_free((dm_avro_schema_t *)(intptr_t)json_integer_value(x));
    json_decref(pc.owned);
    json_decref(pc.processors);
    return j;
}

dm_err_t dm_runtime_latest_ids(dm_runtime_t *rt, json_t **out, dm_error_t *err)
{
    pthread_mutex_lock(&rt->mu);
    dm_err_t rc = dm_schema_registry_latest_ids(rt->reg, out, err);
    pthread_mutex_unlock(&rt->mu);
    return rc;
}

static int topic_seen(void *ctx, const char *topic)
{
    json_object_set_new(ctx, topic, json_true());
    return 0;
}

dm_err_t dm_runtime_plan_now(dm_runtime_t *rt, dm_runtime_plan_now_t *now, dm_error_t *err)
{
    now->subjects = NULL;
    now->topics = json_object();
    if (!now->topics) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    dm_err_t rc = dm_runtime_latest_ids(rt, &now->subjects, err);
    if (!rc) rc = dm_transport_list_topics(rt->t, topic_seen, now->topics, err);
    if (rc) dm_runtime_plan_now_clear(now);
    return rc;
}

void dm_runtime_plan_now_clear(dm_runtime_plan_now_t *now)
{
    json_decref(now->subjects);
    json_decref(now->topics);
    now->subjects = now->topics = NULL;
}

bool dm_runtime_plan_deps_hold(const json_t *deps, const dm_runtime_plan_now_t *now)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)deps, key, v)
    {
        const char *name = strchr(key, ':');
        if (!name) return false;
        name++;
        int64_t want = json_integer_value(v), have = 0;
        if (!strncmp(key, "s:", 2))
            have = json_integer_value(json_object_get(now->subjects, name));
        else if (!strncmp(key, "t:", 2))
            have = json_object_get(now->topics, name) != NULL;
        else if (!strncmp(key, "Source:", 7))
            have = doc_generation(json_object_get(now->sources, name));
        else if (!strncmp(key, "Sink:", 5))
            have = doc_generation(json_object_get(now->sinks, name));
        else if (!strncmp(key, "Processor:", 10))
            have = doc_generation(json_object_get(now->processors, name));
        else
            return false;
        if (have != want) return false;
    }
    return true;
}

json_t *dm_runtime_plan(dm_runtime_t *rt, const json_t *doc, const json_t *batch_sources,
                        const json_t *batch_sinks, char **text, dm_error_t *err)
{
    json_t *sources = NULL, *sinks = NULL, *j = NULL;
    if (dm_store_docs(rt->store, DM_KIND_SOURCE, &sources, err) ||
        dm_store_docs(rt->store, DM_KIND_SINK, &sinks, err)) {
        json_decref(sources);
        return NULL;
    }
    pthread_mutex_lock(&rt->mu);
    dm_runtime_plan_locked(rt, doc, sources, sinks, batch_sources, batch_sinks, NULL, &j, text,
                           err);
    pthread_mutex_unlock(&rt->mu);
    json_decref(sources);
    json_decref(sinks);
    return j;
}
