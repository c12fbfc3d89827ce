/* cli/cmd_worker.c — `datamesh worker`: runs a controller's pipeline tasks over Kafka.
 *
 * The controller (datamesh up --transport kafka://… --external-workers) lists what to run
 * at GET /api/v1/workers/tasks. For each pipeline the worker joins the pipeline's consumer
 * group on its input topic (transport/kafka/kafka.h): Kafka assigns it some partitions,
 * and it runs a task instance per assigned partition on its own thread, exactly as
 * `datamesh up` would, committing outputs and input offsets in one Kafka transaction. When
 * a worker joins, leaves or dies, the group moves partitions; a task stops before its
 * partition is given away, and the next owner starts from the committed offsets (and its
 * transactional id fences a zombie). Every couple of seconds the worker reports its units
 * to POST /api/v1/workers/{id}/status and looks for changed pipelines.
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
#include "core/clock.h"
#include "core/log.h"
#include "engine/task.h"
#include "transport/kafka/kafka.h"

typedef struct wpipe wpipe_t;

/* One task instance: a partition of a pipeline's input. */
typedef struct wtask {
    wpipe_t *pipe;
    int32_t partition;
    char name[300];
    dm_task_t *task;
    dm_unit_status_t st;
    pthread_t th;
    bool started;
    struct wtask *next;
} wtask_t;

struct wpipe {
    char *name;
    json_t *desc; /* the controller's description; task configs point into it */
    dm_avro_schema_t *schema;
    dm_task_step_spec_t *steps;
    size_t n_steps;
    dm_kafka_member_t *member;
    wtask_t *tasks;
    char error[512]; /* why the pipeline cannot run here */
    dm_transport_t *t;
    struct wpipe *next;
};

typedef struct worker {
    const char *server;
    char id[160];
    dm_transport_t *t;
    wpipe_t *pipes;
} worker_t;

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

/* ---- task instances ------------------------------------------------------------------ */

static dm_err_t open_task(wtask_t *w, dm_error_t *err)
{
    wpipe_t *p = w->pipe;
    const json_t *d = p->desc;
    dm_task_config_t tc = {
        .name = w->name,
        .group = json_string_value(json_object_get(d, "group")),
        .input_topic = json_string_value(json_object_get(d, "input")),
        .input_partition = w->partition,
        .input_schema = p->schema,
        .input_schema_id = (uint32_t)json_integer_value(json_object_get(d, "input_schema_id")),
        .output_topic = json_string_value(json_object_get(d, "output")),
        .output_schema_id = (uint32_t)json_integer_value(json_object_get(d, "output_schema_id")),
        .dead_letter_topic = json_string_value(json_object_get(d, "dead_letter")),
        .steps = p->steps,
        .n_steps = p->n_steps,
    };
    return dm_task_new(p->t, &tc, &w->task, err);
}

static void *task_main(void *arg)
{
    wtask_t *w = arg;
    dm_error_t err = {0};
    int64_t backoff = 100;
    while (!atomic_load(&w->st.stop)) {
        if (!w->task && open_task(w, &err)) {
            dm_unit_set(&w->st, "retrying", "%s", err.message);
            if (dm_unit_sleep(&w->st, 1000)) break;
            continue;
        }
        dm_unit_set(&w->st, "running", NULL);
        size_t n;
        dm_err_t rc = dm_task_step(w->task, 200, &n, &err);
        if (rc == DM_ERR_TRANSPORT_FENCED) {
            /* Another instance took this partition's transactional id: what this one
             * holds in memory is stale. Start again from the committed offsets. */
            DM_WARN("worker", "%s: %s; reopening from the committed offsets", w->name, err.message);
            dm_task_free(w->task);
            w->task = NULL;
        }
        if (rc) {
            dm_unit_set(&w->st, "retrying", "%s", err.message);
            if (dm_unit_sleep(&w->st, backoff)) break;
            if (backoff < 10000) backoff *= 2;
            continue;
        }
        backoff = 100;
        atomic_store(&w->st.position, dm_task_position(w->task));
        atomic_store(&w->st.lag, dm_task_lag(w->task));
    }
    dm_unit_set(&w->st, "stopped", NULL);
    return NULL;
}

static void task_start(wpipe_t *p, int32_t partition)
{
    wtask_t *w = calloc(1, sizeof(*w));
    if (!w) return;
    w->pipe = p;
    w->partition = partition;
    snprintf(w->name, sizeof(w->name), "%s/task/%d", p->name, partition);
    dm_unit_init(&w->st);
    w->next = p->tasks;
    p->tasks = w;
    if (pthread_create(&w->th, NULL, task_main, w) == 0)
        w->started = true;
    else
        dm_unit_set(&w->st, "failed", "cannot start a thread");
}

static void task_stop(wpipe_t *p, int32_t partition)
{
    for (wtask_t **pp = &p->tasks; *pp; pp = &(*pp)->next) {
        wtask_t *w = *pp;
        if (w->partition != partition) continue;
        atomic_store(&w->st.stop, true);
        if (w->started) pthread_join(w->th, NULL); /* finishes its transaction */
        *pp = w->next;
        dm_task_free(w->task);
        dm_unit_destroy(&w->st);
        free(w);
        return;
    }
}

/* The group's assignment changes (main thread, inside the member's poll). */
static void on_assignment(void *ctx, int change, int32_t partition)
{
    wpipe_t *p = ctx;
    if (change > 0) {
        DM_INFO("worker", "pipeline=%s: partition %d is mine", p->name, partition);
        task_start(p, partition);
    } else {
        DM_INFO("worker", "pipeline=%s: partition %d goes to another worker", p->name, partition);
        task_stop(p, partition);
    }
}

/* ---- pipelines ------------------------------------------------------------------------- */

static void pipe_free(wpipe_t *p)
{
    dm_kafka_member_free(p->member, on_assignment, p); /* revokes: stops every task */
    while (p->tasks)
        task_stop(p, p->tasks->partition);
    dm_avro_schema_free(p->schema);
    free(p->steps);
    json_decref(p->desc);
    free(p->name);
    free(p);
}

/* Prepares a pipeline from its description and joins its group. A pipeline that cannot
 * run here keeps the reason in p->error (reported, retried on the next change). */
static wpipe_t *pipe_new(worker_t *wk, json_t *desc)
{
    wpipe_t *p = calloc(1, sizeof(*p));
    if (!p) return NULL;
    p->name = strdup(json_string_value(json_object_get(desc, "pipeline")));
    p->desc = json_incref(desc);
    p->t = wk->t;
    dm_error_t err = {0};
    const json_t *steps = json_object_get(desc, "steps");
    p->n_steps = json_array_size(steps);
    p->steps = calloc(p->n_steps ? p->n_steps : 1, sizeof(*p->steps));
    for (size_t i = 0; i < p->n_steps; i++) {
        const json_t *s = json_array_get(steps, i);
        const char *kind = json_string_value(json_object_get(s, "kind"));
        p->steps[i] =
            (dm_task_step_spec_t){kind ? dm_proc_find(kind) : NULL, json_object_get(s, "config")};
        if (!kind || !p->steps[i].ops || !strcmp(kind, "enrich")) {
            snprintf(p->error, sizeof(p->error),
                     "step %zu (%s) cannot run in a worker yet (enrich tables run inside "
                     "datamesh up)",
                     i + 1, kind ? kind : "?");
            return p;
        }
    }
    char path[64];
    snprintf(path, sizeof(path), "/schemas/ids/%lld",
             (long long)json_integer_value(json_object_get(desc, "input_schema_id")));
    long status;
    json_t *reply = NULL;
    if (dm_client_call(wk->server, "GET", path, NULL, 0, &status, &reply, &err)) {
        snprintf(p->error, sizeof(p->error), "input schema: %s", err.message);
        return p;
    }
    const char *text = json_string_value(json_object_get(reply, "schema"));
    if (!text || dm_avro_schema_parse(text, strlen(text), &p->schema, &err))
        snprintf(p->error, sizeof(p->error), "input schema: %s",
                 text ? err.message : "the registry answer has no schema");
    json_decref(reply);
    if (p->error[0]) return p;
    if (dm_kafka_member_new(wk->t, json_string_value(json_object_get(desc, "group")),
                            json_string_value(json_object_get(desc, "input")), &p->member, &err))
        snprintf(p->error, sizeof(p->error), "%s", err.message);
    else
        DM_INFO("worker", "worker=%s pipeline=%s: joined group %s", wk->id, p->name,
                json_string_value(json_object_get(desc, "group")));
    return p;
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

static void report(worker_t *wk)
{
    json_t *units = json_array();
    for (wpipe_t *p = wk->pipes; p; p = p->next) {
        if (p->error[0])
            json_array_append_new(units, json_pack("{s:s, s:s, s:s}", "name", p->name, "state",
                                                   "failed", "error", p->error));
        for (wtask_t *w = p->tasks; w; w = w->next) {
            char state[32], error[512];
            dm_unit_get(&w->st, state, sizeof(state), error, sizeof(error));
            json_t *j = json_pack("{s:s, s:s, s:s, s:i, s:I, s:I}", "name", w->name, "pipeline",
                                  p->name, "state", state, "partition", (int)w->partition,
                                  "position", (json_int_t)atomic_load(&w->st.position), "lag",
                                  (json_int_t)atomic_load(&w->st.lag));
            if (error[0]) json_object_set_new(j, "error", json_string(error));
            json_array_append_new(units, j);
        }
    }
    json_t *body = json_pack("{s:o}", "units", units);
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

    sync_pipes(&wk, json_object_get(tasks, "tasks"));
    json_decref(tasks);
    uint64_t last_sync = dm_now_ns(), last_report = 0;
    while (!stopping) {
        int n = 0;
        for (wpipe_t *p = wk.pipes; p; p = p->next)
            n += p->member != NULL;
        for (wpipe_t *p = wk.pipes; p && !stopping; p = p->next)
            if (p->member && dm_kafka_member_poll(p->member, 100 / n, on_assignment, p, &err))
                DM_ERROR("worker", "pipeline=%s: %s", p->name, err.message);
        if (!n) dm_sleep_ms(100);
        uint64_t now = dm_now_ns();
        if (now - last_report > 2000000000ull) {
            report(&wk);
            last_report = now;
        }
        if (now - last_sync > 5000000000ull) {
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
    return DM_EXIT_OK;
}
