/* cli/cmd_worker.c — `datamesh worker`: runs a controller's pipeline tasks over Kafka.
 *
 * The controller (datamesh up --transport kafka://… --external-workers) lists what to run
 * at GET /api/v1/workers/tasks: the plan of every pipeline (control/plan.h), the same plan
 * the embedded runtime runs. For each stage of a plan the worker joins the stage's consumer
 * group on its input topic (transport/kafka/kafka.h): Kafka assigns it some partitions,
 * and it runs a task instance per assigned partition on its own thread, configured by
 * dm_plan_task_config exactly as `datamesh up` does (unions, joins, state, event time,
 * routes, re-keying; enrich tables are kept by the worker itself), committing outputs and input
 * offsets in one Kafka transaction. When a worker joins, leaves or dies, the group moves
 * partitions; a task stops before its partition is given away, and the next owner starts from the
 * committed offsets (and its transactional id fences a zombie). Every couple of seconds the worker
 * reports its units to POST /api/v1/workers/{id}/status and looks for changed pipelines.
 * Each plan carries a generation; a task that meets a schema version its plan does not read
 * stops just before it and is reported at once (schema_change), the controller recompiles
 * the plan (evolve, lenient: docs/schema-evolution.md) and lists it with a new generation, and
 * the worker reloads it, every task starting again from its committed offset.
 *
 * Threads: the main thread polls the groups (assignment callbacks run there) and talks to
 * the controller; each task instance runs on its own thread.
 */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "connectors/unit.h"
#include "control/plan.h"
#include "control/spec.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"
#include "engine/table.h"
#include "engine/task.h"
#include "transport/kafka/kafka.h"

typedef struct wpipe wpipe_t;
typedef struct wstage wstage_t;

/* One task instance: a partition of a stage's input. */
typedef struct wtask {
    wstage_t *stage;
    int32_t partition;
    char name[300];
    dm_plan_task_t pt;
    bool configured;
    dm_task_t *task;
    dm_unit_status_t st;
    pthread_t th;
    bool started;
    /* A schema version the plan does not read (engine/task.h): the task
     * stops there, having committed all before it, and the report tells the
     * controller, which lists a recompiled plan (a new generation) or pauses
     * the pipeline. Set once by the task's thread before it ends. */
    _Atomic bool met_change;
    bool change_incompatible;
    char change[600];
    struct wtask *next;
} wtask_t;

/* One stage of a pipeline's plan: a consumer group on its input topic. */
struct wstage {
    wpipe_t *pipe;
    size_t index;
    dm_kafka_member_t *member;
    wtask_t *tasks;
};

/* A table kept up to date for the enrich steps of a pipeline. */
typedef struct wtable {
    wpipe_t *pipe;
    const dm_plan_table_t *def;
    dm_table_t *table;
    dm_unit_status_t st;
    _Atomic bool ready;
    pthread_t th;
    bool started;
} wtable_t;

/* Parsed schemas by registry id, fetched from the controller once. */
typedef struct wschema {
    int64_t id;
    dm_avro_schema_t *schema;
    struct wschema *next;
} wschema_t;

struct wpipe {
    char *name;
    json_t *desc;       /* the controller's plan as JSON */
    int64_t generation; /* desc's: the controller's count of the plans it listed */
    dm_pipeline_plan_t *plan;
    const char *server;
    pthread_mutex_t schemas_mu;
    wschema_t *schemas;
    wstage_t *stages;
    wtable_t *tables;
    size_t n_tables;
    dm_proc_env_t env;
    char error[512]; /* why the pipeline cannot run here */
    dm_transport_t *t;
    struct wpipe *next;
};

/* Tasks that met a schema change since the main thread last looked: it
 * reports at once and asks for the recompiled plan sooner. */
static _Atomic int changes_met;

typedef struct worker {
    const char *server;
    char id[160];
    dm_transport_t *t;
    wpipe_t *pipes;
    dm_metrics_t *metrics; /* its tasks' and SDK processors', sent with each report */
} worker_t;

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

/* ---- schemas and tables ------------------------------------------------------------------ */

/* A schema by registry id, from the controller (any thread of the pipeline). */
static const dm_avro_schema_t *pipe_schema(void *ctx, int64_t id, dm_error_t *err)
{
    wpipe_t *p = ctx;
    pthread_mutex_lock(&p->schemas_mu);
    for (wschema_t *e = p->schemas; e; e = e->next)
        if (e->id == id) {
            pthread_mutex_unlock(&p->schemas_mu);
            return e->schema;
        }
    pthread_mutex_unlock(&p->schemas_mu);
    char path[64];
    snprintf(path, sizeof(path), "/schemas/ids/%lld", (long long)id);
    long status;
    json_t *reply = NULL;
    if (dm_client_call(p->server, "GET", path, NULL, 0, &status, &reply, err)) return NULL;
    const char *text = json_string_value(json_object_get(reply, "schema"));
    dm_avro_schema_t *s = NULL;
    if (!text)
        dm_error_set(err, DM_ERR_NOT_FOUND, "the registry has no schema %lld", (long long)id);
    else
        dm_avro_schema_parse(text, strlen(text), &s, err);
    json_decref(reply);
    wschema_t *e = s ? calloc(1, sizeof(*e)) : NULL;
    if (!e) {
        dm_avro_schema_free(s);
        return NULL;
    }
    e->id = id;
    e->schema = s;
    pthread_mutex_lock(&p->schemas_mu);
    e->next = p->schemas;
    p->schemas = e;
    pthread_mutex_unlock(&p->schemas_mu);
    return s;
}

static dm_table_t *pipe_table(void *ctx, const char *source, dm_error_t *err)
{
    wpipe_t *p = ctx;
    for (size_t i = 0; i < p->n_tables; i++)
        if (p->tables[i].table && !strcmp(p->tables[i].def->source, source))
            return p->tables[i].table;
    dm_error_set(err, DM_ERR_NOT_FOUND, "no table for source '%s'", source);
    return NULL;
}

static void *table_main(void *arg)
{
    wtable_t *w = arg;
    char name[300];
    snprintf(name, sizeof(name), "%s/table/%s", w->pipe->name, w->def->source);
    dm_plan_table_follow(w->table, w->pipe->t, w->def->source, w->def->partitions, name, &w->st,
                         &w->ready);
    return NULL;
}

static bool tables_ready(const wpipe_t *p)
{
    for (size_t i = 0; i < p->n_tables; i++)
        if (!atomic_load(&p->tables[i].ready)) return false;
    return true;
}

/* ---- task instances ------------------------------------------------------------------ */

static void *task_main(void *arg)
{
    wtask_t *w = arg;
    wpipe_t *p = w->stage->pipe;
    dm_error_t err = {0};
    while (!atomic_load(&w->st.stop)) {
        if (!tables_ready(p)) { /* enrich starts once its tables hold what their sources had */
            dm_unit_set(&w->st, DM_UNIT_STARTING, "waiting for the enrich tables to load");
            if (dm_unit_sleep(&w->st, 50)) break;
            continue;
        }
        if (!w->configured) {
            if (dm_plan_task_config(p->plan, w->stage->index, w->partition, pipe_schema, p, NULL,
                                    &w->pt, &err) == DM_OK) {
                w->pt.conf.env = &p->env;
                w->pt.conf.metrics = p->env.metrics; /* built-ins' metrics, like SDK ones */
                w->configured = true;
            } else {
                dm_plan_task_release(&w->pt); /* what it made before failing */
            }
        }
        if (!w->task && (!w->configured || dm_task_new(p->t, &w->pt.conf, &w->task, &err))) {
            if (!dm_unit_retry(&w->st, &err, "opening")) break;
            continue;
        }
        dm_unit_ok(&w->st);
        size_t n;
        dm_err_t rc = dm_task_step(w->task, 200, &n, &err);
        if (rc == DM_ERR_SCHEMA_NEW_VERSION || rc == DM_ERR_SCHEMA_INCOMPATIBLE) {
            bool resume = rc == DM_ERR_SCHEMA_NEW_VERSION &&
                          (p->plan->schema_change == DM_SCHEMA_CHANGE_EVOLVE ||
                           p->plan->schema_change == DM_SCHEMA_CHANGE_LENIENT);
            const char *policy = dm_spec_schema_changes[p->plan->schema_change];
            snprintf(w->change, sizeof(w->change), "%s", err.message);
            w->change_incompatible = rc == DM_ERR_SCHEMA_INCOMPATIBLE;
            if (resume)
                dm_unit_set(&w->st, DM_UNIT_STARTING,
                            "%s; waiting for the plan recompiled on the new version (%s)",
                            err.message, policy);
            else
                dm_unit_set(&w->st, DM_UNIT_FAILED, "paused (schema_change: %s): %s", policy,
                            err.message);
            atomic_store(&w->st.position, dm_task_position(w->task));
            DM_INFO("worker", "%s: %s", w->name, err.message);
            atomic_store(&w->met_change, true);
            atomic_fetch_add(&changes_met, 1);
            return NULL; /* this plan reads no further: the next generation does */
        }
        if (rc == DM_ERR_TRANSPORT_FENCED) {
            /* Another instance took this partition's transactional id: what this one
             * holds in memory is stale. Start again from the committed offsets. */
            DM_WARN("worker", "%s: %s; reopening from the committed offsets", w->name, err.message);
            dm_task_free(w->task);
            w->task = NULL;
        }
        if (rc) { /* the failure policy (connectors/unit.h) */
            if (!dm_unit_retry(&w->st, &err, NULL)) break;
            continue;
        }
        dm_unit_ok(&w->st);
        atomic_store(&w->st.position, dm_task_position(w->task));
        atomic_store(&w->st.lag, dm_task_lag(w->task));
    }
    if (dm_unit_state(&w->st) != DM_UNIT_FAILED) dm_unit_set(&w->st, DM_UNIT_STOPPED, NULL);
    return NULL;
}

static void task_start(wstage_t *s, int32_t partition)
{
    wtask_t *w = calloc(1, sizeof(*w));
    if (!w) return;
    w->stage = s;
    w->partition = partition;
    const dm_plan_stage_t *ps = &s->pipe->plan->stages[s->index];
    if (s->index == 0)
        snprintf(w->name, sizeof(w->name), "%s/task/%d", s->pipe->name, partition);
    else
        snprintf(w->name, sizeof(w->name), "%s/%s/task/%d", s->pipe->name, ps->name, partition);
    dm_unit_init(&w->st);
    dm_unit_name(&w->st, w->name);
    w->next = s->tasks;
    s->tasks = w;
    if (pthread_create(&w->th, NULL, task_main, w) == 0)
        w->started = true;
    else
        dm_unit_set(&w->st, DM_UNIT_FAILED, "cannot start a thread");
}

static void task_stop(wstage_t *s, int32_t partition)
{
    for (wtask_t **pp = &s->tasks; *pp; pp = &(*pp)->next) {
        wtask_t *w = *pp;
        if (w->partition != partition) continue;
        atomic_store(&w->st.stop, true);
        if (w->started) pthread_join(w->th, NULL); /* finishes its transaction */
        *pp = w->next;
        dm_task_free(w->task);
        dm_plan_task_release(&w->pt);
        dm_unit_destroy(&w->st);
        free(w);
        return;
    }
}

/* The group's assignment changes (main thread, inside the member's poll). */
static void on_assignment(void *ctx, int change, int32_t partition)
{
    wstage_t *s = ctx;
    const char *stage = s->pipe->plan->stages[s->index].name;
    if (change > 0) {
        DM_INFO("worker", "pipeline=%s stage=%s: partition %d is mine", s->pipe->name, stage,
                partition);
        task_start(s, partition);
    } else {
        DM_INFO("worker", "pipeline=%s stage=%s: partition %d goes to another worker",
                s->pipe->name, stage, partition);
        task_stop(s, partition);
    }
}

/* ---- pipelines ------------------------------------------------------------------------- */

static void pipe_free(wpipe_t *p)
{
    for (size_t i = 0; p->stages && p->plan && i < p->plan->n_stages; i++) {
        wstage_t *s = &p->stages[i];
        dm_kafka_member_free(s->member, on_assignment, s); /* revokes: stops every task */
        while (s->tasks)
            task_stop(s, s->tasks->partition);
    }
    for (size_t i = 0; i < p->n_tables; i++) {
        wtable_t *w = &p->tables[i];
        atomic_store(&w->st.stop, true);
        if (w->started) pthread_join(w->th, NULL);
        dm_table_free(w->table);
        dm_unit_destroy(&w->st);
    }
    free(p->tables);
    free(p->stages);
    while (p->schemas) {
        wschema_t *e = p->schemas;
        p->schemas = e->next;
        dm_avro_schema_free(e->schema);
        free(e);
    }
    pthread_mutex_destroy(&p->schemas_mu);
    dm_plan_free(p->plan);
    json_decref(p->desc);
    free(p->name);
    free(p);
}

/* Prepares a pipeline from its plan: its enrich tables, then a consumer group per
 * stage. A pipeline that cannot run here keeps the reason in p->error (reported,
 * retried on the next change). */
static wpipe_t *pipe_new(worker_t *wk, json_t *desc)
{
    wpipe_t *p = calloc(1, sizeof(*p));
    if (!p) return NULL;
    const char *name = json_string_value(json_object_get(desc, "pipeline"));
    p->name = strdup(name ? name : "?");
    p->desc = json_incref(desc);
    p->generation = json_integer_value(json_object_get(desc, "generation"));
    p->t = wk->t;
    p->server = wk->server;
    p->env = (dm_proc_env_t){pipe_table, p, wk->metrics};
    pthread_mutex_init(&p->schemas_mu, NULL);
    dm_error_t err = {0};
    if (dm_plan_from_json(desc, &p->plan, &err)) {
        snprintf(p->error, sizeof(p->error), "%s", err.message);
        return p;
    }
    p->tables = calloc(p->plan->n_tables + 1, sizeof(*p->tables));
    p->stages = calloc(p->plan->n_stages, sizeof(*p->stages));
    if (!p->tables || !p->stages) {
        snprintf(p->error, sizeof(p->error), "out of memory");
        return p;
    }
    for (size_t i = 0; i < p->plan->n_tables; i++, p->n_tables++) {
        wtable_t *w = &p->tables[i];
        w->pipe = p;
        w->def = &p->plan->tables[i];
        dm_unit_init(&w->st);
        const dm_avro_schema_t *s = pipe_schema(p, w->def->schema_id, &err);
        if (!s || dm_table_new(w->def->source, s, w->def->key, &w->table, &err)) {
            snprintf(p->error, sizeof(p->error), "table %s: %s", w->def->source, err.message);
            p->n_tables++;
            return p;
        }
        if (pthread_create(&w->th, NULL, table_main, w) == 0) w->started = true;
    }
    for (size_t i = 0; i < p->plan->n_stages; i++) {
        wstage_t *s = &p->stages[i];
        const dm_plan_stage_t *ps = &p->plan->stages[i];
        s->pipe = p;
        s->index = i;
        if (dm_kafka_member_new(wk->t, ps->group, ps->input.topic, &s->member, &err)) {
            snprintf(p->error, sizeof(p->error), "stage %s: %s", ps->name, err.message);
            return p;
        }
        DM_INFO("worker", "worker=%s pipeline=%s: joined group %s", wk->id, p->name, ps->group);
    }
    return p;
}

/* Loads desc, a new generation of p's plan (a schema change recompiled it),
 * in place when it reads through the same consumer groups and topics and
 * keeps no enrich tables: the tasks stop (each has committed what it did),
 * the plan is swapped, and the partitions this worker holds start again
 * from their committed offsets, without leaving the groups (a rebalance
 * costs seconds: 5 s on the test cluster). False, changing nothing, when it
 * cannot: the caller stops the pipeline and starts the new plan anew. Main
 * thread. */
static bool pipe_reload(wpipe_t *p, json_t *desc)
{
    const char *name = json_string_value(json_object_get(desc, "pipeline"));
    if (!name || strcmp(name, p->name) || p->error[0] || !p->plan || p->n_tables) return false;
    dm_pipeline_plan_t *plan = NULL;
    dm_error_t err = {0};
    if (dm_plan_from_json(desc, &plan, &err)) return false;
    bool same = plan->n_stages == p->plan->n_stages && !plan->n_tables;
    for (size_t i = 0; same && i < plan->n_stages; i++) {
        const dm_plan_stage_t *a = &plan->stages[i], *b = &p->plan->stages[i];
        same = p->stages[i].member && !strcmp(a->group, b->group) &&
               !strcmp(a->input.topic, b->input.topic) && !strcmp(a->name, b->name);
    }
    size_t n = 0;
    for (size_t i = 0; same && i < plan->n_stages; i++)
        for (wtask_t *w = p->stages[i].tasks; w; w = w->next)
            n++;
    /* the partitions it holds, as stage index and partition */
    int64_t *held = same ? calloc(n + 1, sizeof(*held)) : NULL;
    if (!held) {
        dm_plan_free(plan);
        return false;
    }
    size_t k = 0;
    for (size_t i = 0; i < plan->n_stages; i++)
        while (p->stages[i].tasks) {
            int32_t part = p->stages[i].tasks->partition;
            held[k++] = (int64_t)i << 32 | (uint32_t)part;
            task_stop(&p->stages[i], part);
        }
    dm_plan_free(p->plan);
    p->plan = plan;
    json_decref(p->desc);
    p->desc = json_incref(desc);
    p->generation = json_integer_value(json_object_get(desc, "generation"));
    for (size_t j = 0; j < k; j++)
        task_start(&p->stages[held[j] >> 32], (int32_t)(uint32_t)held[j]);
    free(held);
    return true;
}

/* Brings the running pipelines in line with the controller's list. */
static void sync_pipes(worker_t *wk, const json_t *tasks)
{
    for (wpipe_t **pp = &wk->pipes; *pp;) {
        wpipe_t *p = *pp;
        bool keep = false;
        size_t i;
        json_t *d;
        json_array_foreach(tasks, i, d) keep |= json_equal(d, p->desc);
        json_array_foreach(tasks, i, d) if (!keep && pipe_reload(p, d))
        {
            DM_INFO("worker", "worker=%s pipeline=%s: loaded plan generation %lld in place", wk->id,
                    p->name, (long long)p->generation);
            keep = true;
        }
        if (keep) {
            pp = &p->next;
            continue;
        }
        *pp = p->next;
        DM_INFO("worker", "worker=%s pipeline=%s: changed or removed; stopping", wk->id, p->name);
        pipe_free(p);
    }
    size_t i;
    json_t *d;
    json_array_foreach(tasks, i, d)
    {
        bool have = false;
        for (wpipe_t *p = wk->pipes; p && !have; p = p->next)
            have = json_equal(d, p->desc);
        if (have) continue;
        wpipe_t *p = pipe_new(wk, d);
        if (!p) continue;
        if (p->error[0]) DM_ERROR("worker", "pipeline=%s: %s", p->name, p->error);
        p->next = wk->pipes;
        wk->pipes = p;
    }
}

/* ---- talking to the controller ---------------------------------------------------------- */

/* One metric of the worker for its report: counters and gauges of its tasks
 * and processors (a time gauge as the instant it holds, with its form, so
 * that an age keeps growing at the controller's scrape); histograms stay on
 * the worker. */
static void report_metric(void *ctx, const dm_metric_t *x)
{
    static const char *const forms[] = {"plain", "time_ms", "age_ms"};
    json_t *list = ctx;
    if (x->kind == DM_METRIC_HISTOGRAM) return;
    /* the families the controller takes from workers (control/api_workers.c) */
    if (strncmp(x->name, "datamesh_task_", 14) && strncmp(x->name, "datamesh_processor_", 19) &&
        strncmp(x->name, "datamesh_sdk_", 13))
        return;
    bool counter = x->kind == DM_METRIC_COUNTER;
    json_int_t v = counter ? (json_int_t)atomic_load_explicit(&x->count, memory_order_relaxed)
                           : (json_int_t)atomic_load_explicit(&x->gauge, memory_order_relaxed);
    json_array_append_new(list,
                          json_pack("{s:s, s:s, s:s, s:s, s:s, s:I}", "name", x->name, "kind",
                                    counter ? "counter" : "gauge", "form", forms[x->form], "help",
                                    x->help, "labels", x->labels ? x->labels : "", "value", v));
}

static void report(worker_t *wk)
{
    json_t *units = json_array();
    for (wpipe_t *p = wk->pipes; p; p = p->next) {
        if (p->error[0])
            json_array_append_new(units,
                                  json_pack("{s:s, s:s, s:s}", "name", p->name, "state",
                                            dm_unit_state_name(DM_UNIT_FAILED), "error", p->error));
        for (size_t k = 0; p->stages && p->plan && k < p->plan->n_stages; k++)
            for (wtask_t *w = p->stages[k].tasks; w; w = w->next) {
                char state[32], error[512];
                dm_unit_get(&w->st, state, sizeof(state), error, sizeof(error));
                json_t *j = json_pack("{s:s, s:s, s:s, s:i, s:I, s:I}", "name", w->name, "pipeline",
                                      p->name, "state", state, "partition", (int)w->partition,
                                      "position", (json_int_t)atomic_load(&w->st.position), "lag",
                                      (json_int_t)atomic_load(&w->st.lag));
                if (error[0]) json_object_set_new(j, "error", json_string(error));
                json_object_set_new(j, "generation", json_integer(p->generation));
                if (atomic_load(&w->met_change))
                    json_object_set_new(j, "schema_change",
                                        json_pack("{s:s, s:b}", "message", w->change,
                                                  "incompatible", w->change_incompatible));
                json_array_append_new(units, j);
            }
    }
    json_t *metrics = json_array();
    if (wk->metrics) dm_metrics_each(wk->metrics, report_metric, metrics);
    json_t *body = json_pack("{s:o, s:o}", "units", units, "metrics", metrics);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    char path[256], esc[200];
    dm_client_escape(wk->id, esc, sizeof(esc));
    snprintf(path, sizeof(path), "/api/v1/workers/%s/status", esc);
    long status;
    json_t *reply = NULL;
    dm_error_t err = {0};
    if (text && dm_client_call(wk->server, "POST", path, text, strlen(text), &status, &reply, &err))
        DM_WARN("worker", "worker=%s: reporting status: %s", wk->id, err.message);
    json_decref(reply);
    free(text);
}

/* The controller's task list (new reference), or NULL with err. */
static json_t *fetch_tasks(worker_t *wk, dm_error_t *err)
{
    long status;
    json_t *reply = NULL;
    if (dm_client_call(wk->server, "GET", "/api/v1/workers/tasks", NULL, 0, &status, &reply, err))
        return NULL;
    return reply;
}

int dm_cmd_worker(int argc, char **argv)
{
    const char *controller = NULL, *transport = NULL, *id = NULL;
    static const struct option longopts[] = {{"controller", required_argument, NULL, 'c'},
                                             {"transport", required_argument, NULL, 't'},
                                             {"id", required_argument, NULL, 'i'},
                                             {NULL, 0, NULL, 0}};
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c': controller = optarg; break;
        case 't': transport = optarg; break;
        case 'i': id = optarg; break;
        default: return DM_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        dm_cli_errorf("worker", "unexpected argument '%s'", argv[optind]);
        return DM_EXIT_USAGE;
    }
    worker_t wk = {.server = dm_client_server(controller)};
    char host[100] = "worker";
    gethostname(host, sizeof(host) - 1);
    snprintf(wk.id, sizeof(wk.id), "%s", id ? id : "");
    if (!id) snprintf(wk.id, sizeof(wk.id), "%s-%ld", host, (long)getpid());

    dm_error_t err = {0};
    json_t *tasks = fetch_tasks(&wk, &err);
    if (!tasks) {
        dm_cli_errorf("worker", "%s", err.message);
        return DM_EXIT_FAILED;
    }
    if (!transport) transport = json_string_value(json_object_get(tasks, "transport"));
    if (!transport || strncmp(transport, "kafka://", 8) ||
        !json_is_true(json_object_get(tasks, "external"))) {
        dm_cli_errorf("worker",
                      "the controller at %s runs its tasks itself (transport %s); start it with "
                      "`datamesh up --transport kafka://... --external-workers`",
                      wk.server, transport ? transport : "?");
        json_decref(tasks);
        return DM_EXIT_FAILED;
    }
    if (dm_transport_open(transport, &wk.t, &err)) {
        dm_cli_errorf("worker", "%s", err.message);
        json_decref(tasks);
        return DM_EXIT_FAILED;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    printf("datamesh worker %s: running tasks of %s; Ctrl-C stops\n", wk.id, wk.server);
    fflush(stdout);

    wk.metrics = dm_metrics_new(); /* NULL (out of memory): tasks run without metrics */
    sync_pipes(&wk, json_object_get(tasks, "tasks"));
    json_decref(tasks);
    uint64_t last_sync = dm_now_ns(), last_report = 0, pending_change = 0;
    while (!stopping) {
        int n = 0;
        for (wpipe_t *p = wk.pipes; p; p = p->next)
            for (size_t k = 0; p->stages && p->plan && k < p->plan->n_stages; k++)
                n += p->stages[k].member != NULL;
        for (wpipe_t *p = wk.pipes; p && !stopping; p = p->next)
            for (size_t k = 0; p->stages && p->plan && k < p->plan->n_stages; k++) {
                wstage_t *s = &p->stages[k];
                if (s->member && dm_kafka_member_poll(s->member, 100 / n > 0 ? 100 / n : 1,
                                                      on_assignment, s, &err))
                    DM_ERROR("worker", "pipeline=%s: %s", p->name, err.message);
            }
        if (!n) dm_sleep_ms(100);
        uint64_t now = dm_now_ns();
        /* A task met a schema change: tell the controller now, then look
         * for the recompiled plan every half second until it is there. */
        bool changed = atomic_exchange(&changes_met, 0) > 0;
        if (changed) pending_change = now;
        if (changed || now - last_report > 2000000000ull) {
            report(&wk);
            last_report = now;
        }
        if (pending_change && now - pending_change > 30000000000ull) pending_change = 0;
        if (now - last_sync > (pending_change ? 500000000ull : 5000000000ull)) {
            last_sync = now;
            json_t *t = fetch_tasks(&wk, &err);
            if (t)
                sync_pipes(&wk, json_object_get(t, "tasks"));
            else
                DM_WARN("worker", "worker=%s: %s (keeping what runs)", wk.id, err.message);
            json_decref(t);
        }
    }
    DM_INFO("worker", "worker=%s: stopping; leaving the groups", wk.id);
    while (wk.pipes) {
        wpipe_t *p = wk.pipes;
        wk.pipes = p->next;
        pipe_free(p);
    }
    report(&wk);
    dm_transport_close(wk.t);
    if (wk.metrics) dm_metrics_free(wk.metrics);
    return DM_EXIT_OK;
}
