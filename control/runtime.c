/* control/runtime.c — stored specs to running units. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/evolve.h"
#include "control/runtime_internal.h"

static const char *const unit_kinds[] = {"connector", "task", "table", "sink"};

static size_t owner_slot(const char *owner)
{
    return (size_t)dm_hash64(owner, strlen(owner)) & (OWNER_BUCKETS - 1);
}

/* ---- schemas ---------------------------------------------------------------- */

dm_avro_schema_t *dm_runtime_schema_locked(dm_runtime_t *rt, int64_t id, dm_error_t *err)
{
    for (schema_entry_t *e = rt->schemas; e; e = e->next)
        if (e->id == id) return e->schema;
    char *text = NULL;
    if (dm_schema_registry_get_by_id(rt->reg, id, &text, err)) return NULL;
    dm_avro_schema_t *s = NULL;
    dm_err_t rc = dm_avro_schema_parse(text, strlen(text), &s, err);
    free(text);
    if (rc) return NULL;
    schema_entry_t *e = calloc(1, sizeof(*e));
    if (!e) {
        dm_avro_schema_free(s);
        dm_error_set(err, DM_ERR_NOMEM, "out of memory");
        return NULL;
    }
    e->id = id;
    e->schema = s;
    e->next = rt->schemas;
    rt->schemas = e;
    return s;
}

/* Registers text under subject; returns the parsed schema and its id. */
dm_avro_schema_t *dm_runtime_register_schema(dm_runtime_t *rt, const char *subject,
                                             const char *text, int64_t *id, dm_error_t *err)
{
    dm_schema_compat_report_t report = {0};
    dm_err_t rc = dm_schema_registry_register(rt->reg, subject, text, id, NULL, &report, err);
    if (rc == DM_ERR_SCHEMA_INCOMPATIBLE) dm_runtime_incompatible(err, subject, &report);
    dm_schema_compat_report_free(&report);
    return rc ? NULL : dm_runtime_schema_locked(rt, *id, err);
}

dm_err_t dm_runtime_incompatible(dm_error_t *err, const char *subject,
                                 const dm_schema_compat_report_t *report)
{
    char msg[900] = "";
    size_t o = 0;
    for (size_t i = 0; i < report->n && o < sizeof(msg); i++)
        o += (size_t)snprintf(msg + o, sizeof(msg) - o, "%s%s", i ? "; " : "", report->messages[i]);
    return dm_error_set(err, DM_ERR_SCHEMA_INCOMPATIBLE,
                        "schema of %s is incompatible with its earlier versions: %s", subject, msg);
}

dm_err_t dm_runtime_source_schema(dm_runtime_t *rt, const char *source, char **schema, int64_t *id,
                                  dm_error_t *err)
{
    char subject[300];
    snprintf(subject, sizeof(subject), "%s-value", source);
    pthread_mutex_lock(&rt->mu);
    dm_err_t rc = dm_schema_registry_get_version(rt->reg, subject, -1, id, NULL, schema, err);
    pthread_mutex_unlock(&rt->mu);
    return rc;
}

dm_err_t dm_runtime_subject_id(dm_runtime_t *rt, const char *subject, int64_t *id, dm_error_t *err)
{
    pthread_mutex_lock(&rt->mu);
    dm_err_t rc = dm_schema_registry_get_version(rt->reg, subject, -1, id, NULL, NULL, err);
    pthread_mutex_unlock(&rt->mu);
    return rc;
}

const dm_avro_schema_t *dm_runtime_schema(dm_runtime_t *rt, int64_t id, dm_error_t *err)
{
    pthread_mutex_lock(&rt->mu);
    const dm_avro_schema_t *s = dm_runtime_schema_locked(rt, id, err);
    pthread_mutex_unlock(&rt->mu);
    return s;
}

dm_err_t dm_runtime_schema_by_id(dm_runtime_t *rt, int64_t id, char **schema, dm_error_t *err)
{
    pthread_mutex_lock(&rt->mu);
    dm_err_t rc = dm_schema_registry_get_by_id(rt->reg, id, schema, err);
    pthread_mutex_unlock(&rt->mu);
    return rc;
}

json_t *dm_runtime_schema_versions(dm_runtime_t *rt, const char *subject)
{
    json_t *out = json_array();
    int *versions = NULL;
    size_t n = 0;
    pthread_mutex_lock(&rt->mu);
    if (dm_schema_registry_versions(rt->reg, subject, false, &versions, &n, NULL) == DM_OK)
        for (size_t i = 0; i < n; i++) {
            int64_t id = 0;
            char *text = NULL;
            if (dm_schema_registry_get_version(rt->reg, subject, versions[i], &id, NULL, &text,
                                               NULL) == DM_OK) {
                json_t *schema = json_loads(text, JSON_DECODE_ANY, NULL);
                json_array_append_new(out, json_pack("{s:i, s:I, s:o}", "version", versions[i],
                                                     "id", (json_int_t)id, "schema",
                                                     schema ? schema : json_string(text)));
            }
            free(text);
        }
    pthread_mutex_unlock(&rt->mu);
    free(versions);
    return out;
}

dm_transport_t *dm_runtime_transport(dm_runtime_t *rt)
{
    return rt->t;
}

/* ---- topics ------------------------------------------------------------------- */

/* Set on the thread running dm_runtime_sync: the topics it creates are made
 * durable together (one journal fsync) before the sync returns, instead of
 * one fsync each. */
static _Thread_local bool sync_defers_topics;

dm_err_t dm_runtime_ensure_topic(dm_runtime_t *rt, const char *name, int32_t partitions,
                                 const char *subject, dm_error_t *err)
{
    dm_topic_description_t d;
    dm_error_t e2 = {0};
    if (dm_transport_describe_topic(rt->t, name, &d, &e2) == DM_OK) {
        dm_transport_description_free(&d);
        return DM_OK;
    }
    dm_topic_config_t conf = {.name = name,
                              .partitions = partitions > 0 ? partitions : 1,
                              .fsync = DM_TRANSPORT_FSYNC_INTERVAL,
                              .flush_ms = 1000,
                              .schema_subject = subject,
                              .defer_durable = sync_defers_topics};
    return dm_transport_create_topic(rt->t, &conf, err);
}

int32_t dm_runtime_topic_partitions(dm_runtime_t *rt, const char *name)
{
    dm_topic_description_t d;
    if (dm_transport_describe_topic(rt->t, name, &d, NULL)) return 0;
    int32_t n = d.n_partitions;
    dm_transport_description_free(&d);
    return n;
}

/* ---- units ---------------------------------------------------------------------- */

unit_t *dm_runtime_unit_new(dm_runtime_t *rt, unit_kind_t kind, const char *owner, const char *name)
{
    unit_t *u = calloc(1, sizeof(*u));
    if (!u) return NULL;
    u->kind = kind;
    u->rt = rt;
    snprintf(u->owner, sizeof(u->owner), "%s", owner);
    snprintf(u->name, sizeof(u->name), "%s", name);
    dm_unit_init(&u->st);
    dm_unit_name(&u->st, u->name);
    u->next = rt->units;
    rt->units = u;
    size_t slot = owner_slot(u->owner);
    u->onext = rt->by_owner[slot];
    rt->by_owner[slot] = u;
    return u;
}

void dm_runtime_unit_start(unit_t *u, void *(*thread_main)(void *))
{
    if (!thread_main) { /* a task: a job of the worker pool, no thread of its own */
        u->job = dm_pool_add(u->rt->pool, u->name, dm_runtime_task_step, u);
        if (u->job)
            u->started = true;
        else
            dm_unit_set(&u->st, DM_UNIT_FAILED, "out of memory");
        return;
    }
    if (pthread_create(&u->th, NULL, thread_main, u) == 0) {
        /* top -H shows the unit (at most 15 bytes of its name), not the thread
         * that started it (an HTTP worker, "MHD-worker") */
        char tn[16];
        snprintf(tn, sizeof(tn), "%s", u->name);
        pthread_setname_np(u->th, tn);
        u->started = true;
    } else
        dm_unit_set(&u->st, DM_UNIT_FAILED, "cannot start a thread");
}

static void unit_free(unit_t *u)
{
    if (u->kind == U_TASK) dm_task_free(u->task);
    if (u->pt) dm_plan_task_release(u->pt);
    free(u->pt);
    dm_runtime_plan_unref(u->plan);
    if (u->kind == U_TABLE) dm_table_free(u->table);
    if (u->kind == U_SINK && u->run.ops) dm_runtime_free_runner_sink(u);
    if (u->kind == U_SOURCE) dm_runtime_free_source(u);
    json_decref(u->owned);
    dm_unit_destroy(&u->st);
    free(u);
}

/* Stops (and frees) the units of owner; all units when owner is NULL. */
static void stop_units(dm_runtime_t *rt, const char *owner)
{
    for (unit_t *u = rt->units; u; u = u->next)
        if (!owner || !strcmp(u->owner, owner)) atomic_store(&u->st.stop, true);
    unit_t **pp = &rt->units;
    while (*pp) {
        unit_t *u = *pp;
        if (owner && strcmp(u->owner, owner)) {
            pp = &u->next;
            continue;
        }
        if (u->job) {
            dm_pool_remove(rt->pool, u->job);
            dm_unit_set(&u->st, DM_UNIT_STOPPED, NULL);
        } else if (u->started) {
            pthread_join(u->th, NULL);
        }
        *pp = u->next;
        unit_t **op = &rt->by_owner[owner_slot(u->owner)];
        while (*op && *op != u)
            op = &(*op)->onext;
        if (*op) *op = u->onext;
        unit_free(u);
    }
}

/* A failed unit that only carries the reason, so status shows it. */
void dm_runtime_unit_failed(dm_runtime_t *rt, const char *owner, const char *what, const char *msg)
{
    unit_t *u = dm_runtime_unit_new(rt, U_TASK, owner, what);
    if (u) dm_unit_set(&u->st, DM_UNIT_FAILED, "%s", msg);
    DM_ERROR("control", "%s: %s: %s", owner, what, msg);
}

/* Takes the runtime's lock from a unit's own thread. The runtime may hold it
 * while stopping this very unit (and joining its thread), so give up once the
 * unit is asked to stop. */
bool dm_runtime_lock_unless_stopping(unit_t *u)
{
    while (pthread_mutex_trylock(&u->rt->mu) != 0) {
        if (atomic_load(&u->st.stop)) return false;
        dm_sleep_ms(5);
    }
    return true;
}

/* ---- sync ------------------------------------------------------------------------- */

/* Level-triggered: a pipeline starts as soon as what it reads exists; one
 * that waits says why (status) and the reconciler tries again. A round may
 * create the derived sources the next round's pipelines read. Lock held. */
static void start_pipelines(dm_runtime_t *rt, const json_t *pipelines, const json_t *sources,
                            const json_t *sinks)
{
    const char *n;
    json_t *d;
    for (bool progress = true; progress;) {
        progress = false;
        json_object_foreach((json_t *)pipelines, n, d)
        {
            char pk[200];
            snprintf(pk, sizeof(pk), "Pipeline/%s", n);
            if (json_object_get(rt->running, pk)) continue;
            dm_error_t e = {0};
            dm_err_t rc = dm_runtime_start_pipeline(rt, d, sources, sinks, &e);
            if (rc == DM_ERR_AGAIN) {
                json_t *was = json_object_get(rt->waiting, pk);
                if (!was || strcmp(json_string_value(was), e.message))
                    DM_INFO("control", "pipeline=%s: not started yet: %s", n, e.message);
                json_object_set_new(rt->waiting, pk, json_string(e.message));
                continue;
            }
            if (rc) DM_ERROR("control", "pipeline=%s: %s", n, e.message);
            json_object_del(rt->waiting, pk);
            json_object_set(rt->running, pk, d);
            progress = true;
        }
    }
    /* Forget the waits of pipelines that are gone. */
    const char *wk;
    json_t *wv;
    void *tmp;
    json_object_foreach_safe(rt->waiting, tmp, wk, wv) if (!json_object_get(pipelines, wk + 9))
        json_object_del(rt->waiting, wk);
}

static void pin_reader(dm_runtime_t *rt, const char *owner);
/* Whether two documents say the same but for spec.alerts: alert thresholds
 * are read by the evaluator from the store, so changing them restarts
 * nothing. */
static bool same_but_alerts(const json_t *a, const json_t *b)
{
    if (dm_spec_doc_equal(a, b)) return true;
    json_t *x = json_deep_copy(a), *y = json_deep_copy(b);
    json_object_del(json_object_get(x, "spec"), "alerts");
    json_object_del(json_object_get(y, "spec"), "alerts");
    bool same = x && y && dm_spec_doc_equal(x, y);
    json_decref(x);
    json_decref(y);
    return same;
}

dm_err_t dm_runtime_sync(dm_runtime_t *rt, dm_error_t *err)
{
    /* The store's documents themselves (no copy per object: at 50,000 objects
     * the copies were most of the controller's memory peak); read only. */
    json_t *sources = NULL, *pipelines = NULL, *sinks = NULL, *processors = NULL;
    if (dm_store_docs(rt->store, DM_KIND_SOURCE, &sources, err) ||
        dm_store_docs(rt->store, DM_KIND_PIPELINE, &pipelines, err) ||
        dm_store_docs(rt->store, DM_KIND_SINK, &sinks, err) ||
        dm_store_docs(rt->store, DM_KIND_PROCESSOR, &processors, err)) {
        json_decref(sources);
        json_decref(pipelines);
        json_decref(sinks);
        return err->code;
    }
    sync_defers_topics = true;
    pthread_mutex_lock(&rt->mu);
    /* Which objects changed (or went away) since their units started? A changed
     * source restarts the pipelines that read it, so they pick up its schema. */
    const char *n;
    json_t *d;
    json_t *stale = json_array();
    const char *key;
    json_t *was;
    json_object_foreach(rt->running, key, was)
    {
        const json_t *now = !strncmp(key, "Source/", 7) ? json_object_get(sources, key + 7)
                            : !strncmp(key, "Processor/", 10)
                                ? json_object_get(processors, key + 10)
                                : json_object_get(pipelines, key + 9);
        if (!now || !same_but_alerts(now, was)) json_array_append_new(stale, json_string(key));
    }
    json_object_foreach(pipelines, n, d)
    {
        char pk[200];
        snprintf(pk, sizeof(pk), "Pipeline/%s", n);
        json_t *reads = dm_spec_pipeline_inputs(d);
        /* A join reads its other source too: restart when that one changes. */
        json_t *expanded = dm_spec_pipeline_expand(d); /* SQL's joins too */
        const json_t *steps = json_object_get(json_object_get(expanded, "spec"), "steps");
        for (size_t k = 0; k < json_array_size(steps); k++) {
            const json_t *jw =
                json_object_get(json_object_get(json_array_get(steps, k), "join"), "with");
            if (json_is_string(jw)) json_array_append(reads, (json_t *)jw);
        }
        /* An SDK step's Processor re-applied (a new library: a hot upgrade)
         * restarts the pipeline from its last commit with the new one. */
        for (size_t k = 0; k < json_array_size(steps); k++) {
            const json_t *pn =
                json_object_get(json_object_get(json_array_get(steps, k), "processor"), "name");
            char prk[200];
            snprintf(prk, sizeof(prk), "Processor/%s", json_string_value(pn));
            size_t j;
            json_t *x;
            if (json_is_string(pn))
                json_array_foreach(stale, j, x) if (!strcmp(json_string_value(x), prk))
                    json_array_append_new(stale, json_string(pk));
        }
        json_decref(expanded);
        size_t i;
        json_t *s;
        json_array_foreach(reads, i, s)
        {
            char sk[200];
            snprintf(sk, sizeof(sk), "Source/%s", json_string_value(s));
            size_t j;
            json_t *x;
            json_array_foreach(stale, j, x) if (!strcmp(json_string_value(x), sk))
                json_array_append_new(stale, json_string(pk));
        }
        json_decref(reads);
    }
    size_t i;
    json_t *x;
    json_array_foreach(stale, i, x)
    {
        if (!strncmp(json_string_value(x), "Pipeline/", 9)) pin_reader(rt, json_string_value(x));
        stop_units(rt, json_string_value(x));
        json_object_del(rt->running, json_string_value(x));
        json_object_del(rt->worker_tasks, json_string_value(x));
    }
    json_object_foreach(processors, n, d) /* nothing runs: seen, to tell changes */
    {
        char prk[200];
        snprintf(prk, sizeof(prk), "Processor/%s", n);
        json_object_set(rt->running, prk, d);
    }
    /* Start what is not running: sources first, then pipelines whose input
     * exists (a pipeline may read another's derived source). */
    json_object_foreach(sources, n, d)
    {
        char sk[200];
        snprintf(sk, sizeof(sk), "Source/%s", n);
        if (json_object_get(rt->running, sk)) continue;
        dm_runtime_start_source(rt, d);
        json_object_set(rt->running, sk, d);
    }
    /* Let new sources that produce at once (ops->await_first_commit: datagen)
     * commit their first batch before the pipelines that read them (and the
     * tables enrich keeps) start: a table then starts with its rows instead of
     * filling while the first events pass. */
    for (int waited = 0; waited < 150; waited++) {
        bool pending = false;
        for (unit_t *u = rt->units; u; u = u->next) {
            if (u->kind != U_SOURCE || !u->started || !u->src_ops->await_first_commit) continue;
            dm_unit_state_t state = dm_unit_state(&u->st);
            if (atomic_load(&u->st.position) == 0 &&
                (state == DM_UNIT_STARTING || state == DM_UNIT_RUNNING))
                pending = true;
        }
        if (!pending) break;
        dm_sleep_ms(20);
    }
    start_pipelines(rt, pipelines, sources, sinks);
    pthread_mutex_unlock(&rt->mu);
    json_decref(stale);
    json_decref(sources);
    json_decref(pipelines);
    json_decref(sinks);
    json_decref(processors);
    /* Apply's parse trees and plans are free now: their pages go back to the
     * system rather than stay in glibc's arenas (the controller's RSS after
     * an apply of thousands of pipelines stayed at the apply's peak). */
    malloc_trim(0);
    /* Apply returns only once the topics it made survive a crash. */
    sync_defers_topics = false;
    return rt->t ? dm_transport_sync_topics(rt->t, err) : DM_OK;
}

const char *dm_runtime_state(dm_runtime_t *rt, const char *kind, const char *name, char *error,
                             size_t cap)
{
    char owner[200];
    snprintf(owner, sizeof(owner), "%s/%s", kind, name);
    int failed = 0, retrying = 0, running = 0;
    if (cap) error[0] = '\0';
    pthread_mutex_lock(&rt->mu);
    for (unit_t *u = rt->by_owner[owner_slot(owner)]; u; u = u->onext) {
        if (strcmp(u->owner, owner)) continue;
        char state[32], e[512];
        dm_unit_state_t s = dm_unit_get(&u->st, state, sizeof(state), e, sizeof(e));
        if (s == DM_UNIT_FAILED && !failed && cap) snprintf(error, cap, "%s: %s", u->name, e);
        failed += s == DM_UNIT_FAILED;
        retrying += s == DM_UNIT_RETRYING;
        running += s == DM_UNIT_RUNNING;
    }
    bool known = json_object_get(rt->running, owner) != NULL;
    pthread_mutex_unlock(&rt->mu);
    return failed     ? "failed"
           : retrying ? "degraded"
           : running  ? "running"
           : known    ? "ready"
                      : "pending";
}

json_t *dm_runtime_status(dm_runtime_t *rt, const char *kind, const char *name)
{
    char owner[200];
    snprintf(owner, sizeof(owner), "%s/%s", kind, name);
    json_t *units = json_array();
    const char *overall = "idle";
    int failed = 0, retrying = 0, running = 0;
    pthread_mutex_lock(&rt->mu);
    for (unit_t *u = rt->by_owner[owner_slot(owner)]; u; u = u->onext) {
        if (strcmp(u->owner, owner)) continue;
        char state[32], error[512];
        dm_unit_state_t s = dm_unit_get(&u->st, state, sizeof(state), error, sizeof(error));
        failed += s == DM_UNIT_FAILED;
        retrying += s == DM_UNIT_RETRYING;
        running += s == DM_UNIT_RUNNING;
        json_t *j =
            json_pack("{s:s, s:s, s:s, s:I, s:I}", "name", u->name, "kind", unit_kinds[u->kind],
                      "state", state, "position", (json_int_t)atomic_load(&u->st.position), "lag",
                      (json_int_t)atomic_load(&u->st.lag));
        if (error[0]) json_object_set_new(j, "error", json_string(error));
        if (u->kind == U_SOURCE && u->src_state && u->src_ops->status_json)
            json_object_set_new(j, u->src_ops->def.name, u->src_ops->status_json(u->src_state));
        json_array_append_new(units, j);
    }
    bool known = json_object_get(rt->running, owner) != NULL;
    const char *waiting = json_string_value(json_object_get(rt->waiting, owner));
    json_t *reason = waiting ? json_string(waiting) : NULL;
    pthread_mutex_unlock(&rt->mu);
    overall = failed     ? "failed"
              : retrying ? "degraded"
              : running  ? "running"
              : known    ? "ready"
                         : "pending";
    json_t *out = json_pack("{s:s, s:o}", "state", overall, "units", units);
    if (reason) json_object_set_new(out, "reason", reason);
    return out;
}

/* ---- schema changes ------------------------------------------------------------------ */

void dm_runtime_note_schema_change(dm_runtime_t *rt, const char *owner, const char *policy,
                                   const char *action, const char *what)
{
    if (rt->metrics) { /* for alert rules: a pause is one to page on */
        char labels[400], esc[200];
        dm_metrics_escape(strchr(owner, '/') ? strchr(owner, '/') + 1 : owner, esc, sizeof(esc));
        snprintf(labels, sizeof(labels), "pipeline=\"%s\",policy=\"%s\",action=\"%s\"", esc, policy,
                 action);
        dm_metric_t *c = dm_metrics_counter(rt->metrics, "datamesh_pipeline_schema_changes_total",
                                            "schema changes a pipeline met, by what it did "
                                            "(restart, pause)",
                                            labels);
        if (c) dm_metric_add(c, 1);
    }
    /* Kept with the catalog, so the history survives a restart; in memory
     * only when the store cannot take it (said in the log). */
    const char *pipeline = strchr(owner, '/') ? strchr(owner, '/') + 1 : owner;
    int64_t now = dm_wall_ms();
    dm_error_t err = {0};
    dm_store_schema_change_t sc = {now, pipeline, policy, action, what};
    if (rt->store && !dm_store_schema_change_add(rt->store, &sc, &err)) return;
    if (rt->store)
        DM_WARN("control", "%s: keeping a schema change in memory only: %s", owner, err.message);
    json_t *e = json_pack("{s:I, s:s, s:s, s:s, s:s}", "ts_ms", (json_int_t)now, "pipeline",
                          pipeline, "policy", policy, "action", action, "what", what);
    pthread_mutex_lock(&rt->restart_mu);
    json_array_append_new(rt->schema_changes, e);
    while (json_array_size(rt->schema_changes) > 1000)
        json_array_remove(rt->schema_changes, 0);
    pthread_mutex_unlock(&rt->restart_mu);
}

json_t *dm_runtime_schema_changes(dm_runtime_t *rt, const char *pipeline)
{
    json_t *out = NULL;
    dm_error_t err = {0};
    if (rt->store && dm_store_schema_changes(rt->store, pipeline, 0, &out, &err))
        DM_WARN("control", "schema changes: %s", err.message);
    if (!out) out = json_array();
    pthread_mutex_lock(&rt->restart_mu);
    size_t i;
    json_t *e;
    json_array_foreach(rt->schema_changes, i, e)
    {
        const char *p = json_string_value(json_object_get(e, "pipeline"));
        if (!pipeline || (p && !strcmp(p, pipeline))) json_array_append(out, e);
    }
    pthread_mutex_unlock(&rt->restart_mu);
    return out;
}

bool dm_runtime_request_restart(dm_runtime_t *rt, const char *owner, const char *what)
{
    pthread_mutex_lock(&rt->restart_mu);
    const char *last = json_string_value(json_object_get(rt->last_restart, owner));
    bool again = last && !strcmp(last, what);
    bool first = !again && !json_object_get(rt->restarts, owner);
    if (!again) {
        json_object_set_new(rt->restarts, owner, json_string(what));
        json_object_set_new(rt->last_restart, owner, json_string(what));
    }
    pthread_mutex_unlock(&rt->restart_mu);
    if (first) DM_INFO("control", "%s: %s: recompiling on the new version", owner, what);
    return !again;
}

/* A lenient pipeline meeting its first schema change: the reader it ran
 * with becomes its own (pipeline.NAME.input), so that the recompiled plan
 * keeps the fields the new version dropped (control/evolve.h). Lock held. */
static void pin_reader(dm_runtime_t *rt, const char *owner)
{
    const dm_pipeline_plan_t *plan = NULL;
    for (unit_t *u = rt->by_owner[owner_slot(owner)]; u && !plan; u = u->onext)
        if (!strcmp(u->owner, owner) && u->plan) plan = u->plan->plan;
    if (!plan || plan->schema_change != DM_SCHEMA_CHANGE_LENIENT || !plan->n_stages) return;
    char subject[300];
    dm_evolve_reader_subject(plan->name, subject, sizeof(subject));
    int64_t id = 0;
    dm_error_t err = {0};
    if (dm_schema_registry_get_version(rt->reg, subject, -1, &id, NULL, NULL, &err) !=
        DM_ERR_NOT_FOUND)
        return; /* pinned already (or the registry cannot say: the next change tries again) */
    char *text = NULL;
    if (dm_schema_registry_get_by_id(rt->reg, plan->stages[0].input.schema_id, &text, &err) ||
        !dm_runtime_register_schema(rt, subject, text, &id, &err))
        DM_WARN("control", "%s: keeping its reader schema as %s: %s", owner, subject, err.message);
    free(text);
}

/* Recompiles and restarts the pipelines whose tasks met a new schema
 * version: their units stop (every task has committed up to where it is, the
 * ones that met the version just before it), and start again from the plan
 * compiled on the subject's latest version, each task from its committed
 * position. The reconciler's thread. */
static void restart_requested(dm_runtime_t *rt)
{
    pthread_mutex_lock(&rt->restart_mu);
    json_t *todo = rt->restarts;
    rt->restarts = json_object();
    pthread_mutex_unlock(&rt->restart_mu);
    if (!json_object_size(todo)) {
        json_decref(todo);
        return;
    }
    json_t *sources = NULL, *pipelines = NULL, *sinks = NULL;
    dm_error_t err = {0};
    if (dm_store_docs(rt->store, DM_KIND_SOURCE, &sources, &err) ||
        dm_store_docs(rt->store, DM_KIND_PIPELINE, &pipelines, &err) ||
        dm_store_docs(rt->store, DM_KIND_SINK, &sinks, &err)) {
        DM_WARN("control", "reconciler: %s", err.message);
        pthread_mutex_lock(&rt->restart_mu); /* try again next round */
        json_object_update_missing(rt->restarts, todo);
        pthread_mutex_unlock(&rt->restart_mu);
    } else {
        int64_t t0 = dm_wall_ms();
        sync_defers_topics = true;
        pthread_mutex_lock(&rt->mu);
        const char *owner;
        json_t *what;
        /* every unit told first, so their threads wind down together */
        for (unit_t *u = rt->units; u; u = u->next)
            if (json_object_get(todo, u->owner)) atomic_store(&u->st.stop, true);
        json_object_foreach(todo, owner, what)
        {
            pin_reader(rt, owner);
            stop_units(rt, owner);
            json_object_del(rt->running, owner);
            json_object_del(rt->worker_tasks, owner);
        }
        int64_t stopped = dm_wall_ms();
        start_pipelines(rt, pipelines, sources, sinks);
        pthread_mutex_unlock(&rt->mu);
        sync_defers_topics = false;
        if (rt->t && dm_transport_sync_topics(rt->t, &err))
            DM_WARN("control", "reconciler: %s", err.message);
        json_object_foreach(todo, owner, what)
            DM_INFO("control",
                    "%s: restarted on the new schema version in %lld ms (stopping %lld, "
                    "compiling and starting %lld)",
                    owner, (long long)(dm_wall_ms() - t0), (long long)(stopped - t0),
                    (long long)(dm_wall_ms() - stopped));
    }
    json_decref(todo);
    json_decref(sources);
    json_decref(pipelines);
    json_decref(sinks);
}

/* The units' health as Prometheus text: errors and restarts (counters that
 * start over with the unit) and whether it failed, labelled with the kind and
 * name of the object it runs for. Rendered on each scrape from the units as
 * they are, so nothing lingers for units that are gone. */
dm_metrics_t *dm_runtime_metrics(dm_runtime_t *rt)
{
    return rt->metrics;
}

dm_err_t dm_runtime_render_metrics(dm_runtime_t *rt, dm_buf_t *out)
{
    static const struct {
        const char *name, *type, *help;
    } fams[] = {
        {"datamesh_unit_errors_total", "counter",
         "failed attempts of a unit (connector, task, table, sink) since it started"},
        {"datamesh_unit_restarts_total", "counter",
         "times a unit started over from its durable position after an error"},
        {"datamesh_unit_failed", "gauge",
         "1 while a unit is stopped by an error that retrying cannot fix"},
    };
    dm_err_t rc = DM_OK;
    pthread_mutex_lock(&rt->mu);
    for (size_t f = 0; f < sizeof(fams) / sizeof(fams[0]) && !rc; f++) {
        rc = dm_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", fams[f].name, fams[f].help,
                           fams[f].name, fams[f].type);
        for (unit_t *u = rt->units; u && !rc; u = u->next) {
            char kind[32], object[256], unit[400];
            const char *slash = strchr(u->owner, '/');
            if (!slash) continue;
            snprintf(kind, sizeof(kind), "%.*s", (int)(slash - u->owner), u->owner);
            dm_metrics_escape(slash + 1, object, sizeof(object));
            dm_metrics_escape(u->name, unit, sizeof(unit));
            uint64_t v = f == 0   ? atomic_load(&u->st.errors)
                         : f == 1 ? atomic_load(&u->st.restarts)
                                  : dm_unit_state(&u->st) == DM_UNIT_FAILED;
            rc = dm_buf_printf(out, "%s{kind=\"%s\",object=\"%s\",unit=\"%s\"} %llu\n",
                               fams[f].name, kind, object, unit, (unsigned long long)v);
        }
    }
    pthread_mutex_unlock(&rt->mu);
    return rc;
}

/* ---- life --------------------------------------------------------------------------- */

/* The reconciler thread: while some pipeline waits for what it reads (a
 * source whose connector has not made its topic or schema yet), syncs again
 * every half second, so it starts once it can without another apply. */
static void *reconcile_main(void *arg)
{
    dm_runtime_t *rt = arg;
    while (!atomic_load(&rt->stopping)) {
        for (int i = 0; i < 5 && !atomic_load(&rt->stopping); i++)
            dm_sleep_ms(100);
        restart_requested(rt);
        pthread_mutex_lock(&rt->mu);
        bool waiting = json_object_size(rt->waiting) > 0;
        pthread_mutex_unlock(&rt->mu);
        if (!waiting || atomic_load(&rt->stopping)) continue;
        /* Only the waiting pipelines: what changed is the next apply's sync. */
        json_t *sources = NULL, *pipelines = NULL, *sinks = NULL;
        dm_error_t err = {0};
        if (dm_store_docs(rt->store, DM_KIND_SOURCE, &sources, &err) ||
            dm_store_docs(rt->store, DM_KIND_PIPELINE, &pipelines, &err) ||
            dm_store_docs(rt->store, DM_KIND_SINK, &sinks, &err)) {
            DM_WARN("control", "reconciler: %s", err.message);
        } else {
            sync_defers_topics = true;
            pthread_mutex_lock(&rt->mu);
            start_pipelines(rt, pipelines, sources, sinks);
            pthread_mutex_unlock(&rt->mu);
            sync_defers_topics = false;
            if (rt->t && dm_transport_sync_topics(rt->t, &err))
                DM_WARN("control", "reconciler: %s", err.message);
        }
        json_decref(sources);
        json_decref(pipelines);
        json_decref(sinks);
    }
    return NULL;
}

dm_err_t dm_runtime_new(const char *data_dir, dm_store_t *store, dm_metrics_t *metrics,
                        dm_runtime_t **out, dm_error_t *err)
{
    return dm_runtime_new_with(data_dir, NULL, store, metrics, out, err);
}

uint64_t dm_runtime_registry_changes(dm_runtime_t *rt)
{
    return rt->reg ? dm_schema_registry_changes(rt->reg) : 0;
}

json_t *dm_runtime_worker_tasks(dm_runtime_t *rt, const char *team)
{
    pthread_mutex_lock(&rt->mu);
    json_t *tasks = json_array();
    const char *key;
    json_t *t;
    json_object_foreach(rt->worker_tasks, key, t)
    {
        if (team) {
            /* a worker token: only its team's pipelines */
            json_t *doc = NULL;
            const char *name = json_string_value(json_object_get(t, "pipeline"));
            if (!name || dm_store_get(rt->store, DM_KIND_PIPELINE, name, &doc, NULL)) continue;
            const char *owner =
                json_string_value(json_object_get(json_object_get(doc, "metadata"), "owner"));
            bool ours = owner && !strcmp(owner, team);
            json_decref(doc);
            if (!ours) continue;
        }
        json_array_append(tasks, t);
    }
    /* Only scheme and brokers: settings after '?' may hold credentials. */
    const char *url = rt->transport_url ? rt->transport_url : "embedded";
    json_t *out = json_pack("{s:s%, s:b, s:o}", "transport", url, strcspn(url, "?"), "external",
                            rt->external_tasks, "tasks", tasks);
    pthread_mutex_unlock(&rt->mu);
    return out;
}

bool dm_runtime_worker_schema_change(dm_runtime_t *rt, const char *team, const char *pipeline,
                                     int64_t generation, bool incompatible, const char *what)
{
    char owner[300];
    snprintf(owner, sizeof(owner), "Pipeline/%s", pipeline);
    pthread_mutex_lock(&rt->mu);
    const json_t *plan = json_object_get(rt->worker_tasks, owner);
    const json_t *seen = json_object_get(rt->worker_changes, owner);
    bool current = plan && json_integer_value(json_object_get(plan, "generation")) == generation &&
                   !(seen && json_integer_value(seen) == generation);
    int policy = dm_spec_schema_change(json_string_value(json_object_get(plan, "schema_change")));
    if (current && team) {
        json_t *doc = NULL;
        current = !dm_store_get(rt->store, DM_KIND_PIPELINE, pipeline, &doc, NULL);
        const char *o =
            json_string_value(json_object_get(json_object_get(doc, "metadata"), "owner"));
        current = current && o && !strcmp(o, team);
        json_decref(doc);
    }
    if (current) json_object_set_new(rt->worker_changes, owner, json_integer(generation));
    pthread_mutex_unlock(&rt->mu);
    if (!current) return false;
    if (policy < 0) policy = DM_SCHEMA_CHANGE_LENIENT;
    const char *name = dm_spec_schema_changes[policy];
    if (!incompatible &&
        (policy == DM_SCHEMA_CHANGE_EVOLVE || policy == DM_SCHEMA_CHANGE_LENIENT) &&
        dm_runtime_request_restart(rt, owner, what)) {
        dm_runtime_note_schema_change(rt, owner, name, "restart", what);
        return true;
    }
    dm_runtime_note_schema_change(rt, owner, name, "pause", what);
    DM_ERROR("control", "%s: paused (schema_change: %s): %s (on a worker)", owner, name, what);
    return true;
}

dm_err_t dm_runtime_new_with(const char *data_dir, const dm_runtime_options_t *opt,
                             dm_store_t *store, dm_metrics_t *metrics, dm_runtime_t **out,
                             dm_error_t *err)
{
    *out = NULL;
    dm_runtime_t *rt = calloc(1, sizeof(*rt));
    if (!rt) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&rt->mu, NULL);
    pthread_mutex_init(&rt->url_mu, NULL);
    rt->data_dir = strdup(data_dir);
    rt->store = store;
    rt->metrics = metrics;
    rt->running = json_object();
    rt->env = (dm_proc_env_t){dm_runtime_env_table, rt, metrics};
    rt->worker_tasks = json_object();
    rt->worker_changes = json_object();
    /* generations differ from a previous controller's, so workers reload */
    rt->plan_generation = dm_wall_ms() * 1000;
    rt->waiting = json_object();
    pthread_mutex_init(&rt->restart_mu, NULL);
    rt->restarts = json_object();
    rt->last_restart = json_object();
    rt->schema_changes = json_array();
    if (opt && opt->transport) rt->transport_url = strdup(opt->transport);
    rt->external_tasks = opt && opt->external_tasks;
    char path[4200];
    snprintf(path, sizeof(path), "embedded:%s/log", data_dir);
    dm_err_t rc = dm_transport_open(rt->transport_url ? rt->transport_url : path, &rt->t, err);
    if (!rc) rc = dm_pool_new(rt->t, 0, &rt->pool, err);
    if (!rc) {
        snprintf(path, sizeof(path), "%s/registry.db", data_dir);
        rc = dm_schema_registry_open(path, &rt->reg, err);
    }
    if (!rc) rc = dm_runtime_sync(rt, err);
    if (!rc && pthread_create(&rt->reconciler, NULL, reconcile_main, rt) == 0) {
        pthread_setname_np(rt->reconciler, "dm-reconcile");
        rt->reconciling = true;
    }
    if (rc) {
        dm_runtime_free(rt);
        return rc;
    }
    *out = rt;
    return DM_OK;
}

void dm_runtime_free(dm_runtime_t *rt)
{
    if (!rt) return;
    atomic_store(&rt->stopping, true);
    if (rt->reconciling) pthread_join(rt->reconciler, NULL);
    pthread_mutex_lock(&rt->mu);
    stop_units(rt, NULL);
    pthread_mutex_unlock(&rt->mu);
    for (schema_entry_t *e = rt->schemas, *next; e; e = next) {
        next = e->next;
        dm_avro_schema_free(e->schema);
        free(e);
    }
    dm_pool_free(rt->pool);
    if (rt->t) dm_transport_close(rt->t);
    dm_schema_registry_close(rt->reg);
    json_decref(rt->running);
    json_decref(rt->worker_tasks);
    json_decref(rt->worker_changes);
    json_decref(rt->waiting);
    json_decref(rt->restarts);
    json_decref(rt->last_restart);
    json_decref(rt->schema_changes);
    pthread_mutex_destroy(&rt->restart_mu);
    free(rt->transport_url);
    pthread_mutex_destroy(&rt->mu);
    pthread_mutex_destroy(&rt->url_mu);
    free(rt->data_dir);
    free(rt);
}
