/* control/api_workers.c — the controller's side of `datamesh worker`.
 *
 *   GET  /api/v1/workers/tasks        → what workers run: {transport, external, tasks: […]}
 *                                       (dm_runtime_worker_tasks)
 *   POST /api/v1/workers/{id}/status  with {"units": [{name, state, error, position, lag}],
 *                                     "metrics": [{name, kind, form, help, labels, value}]}
 *                                     → 204; a worker reports what it runs, and its
 *                                     tasks' and SDK processors' counters and gauges,
 *                                     served by GET /metrics with worker="ID" added. A
 *                                       unit with {pipeline, generation, schema_change:
 *                                       {message, incompatible}} met a schema version it
 *                                       does not read (dm_runtime_worker_schema_change)
 *   GET  /api/v1/workers              → {"workers": [{worker, age_ms, units}]}: the last
 *                                       report of each worker and how old it is
 *
 * Reports live in memory: they describe processes that report again every few seconds.
 * A worker's metrics leave /metrics once it has not reported for WORKER_STALE_NS.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/api.h"
#include "control/auth.h"
#include "core/clock.h"
#include "core/metrics.h"

typedef struct workers_api {
    dm_runtime_t *rt;
    pthread_mutex_t mu;
    json_t *reports; /* worker id → {units, at_ns} */
} workers_api_t;

#define MAX_WORKER_ID   128
#define MAX_UNITS       4096
#define MAX_METRICS     20000
#define WORKER_STALE_NS (30ull * 1000000000) /* reports older than this are not status */

static void on_tasks(void *ctx, const dm_http_request_t *req, dm_http_response_t *res)
{
    workers_api_t *w = ctx;
    const dm_principal_t *p = req->principal;
    bool worker = p && p->role == DM_ROLE_WORKER;
    dm_http_json(res, 200, dm_runtime_worker_tasks(w->rt, worker ? p->owner : NULL));
}

/* A Prometheus name ([a-zA-Z0-9_:]) of a family a worker's tasks make:
 * datamesh_task_*, datamesh_processor_*, datamesh_sdk_* (a worker cannot set
 * the controller's own series, such as datamesh_unit_failed). */
static bool metric_name_ok(const char *s)
{
    if (!s || strlen(s) > 200 ||
        (strncmp(s, "datamesh_task_", 14) && strncmp(s, "datamesh_processor_", 19) &&
         strncmp(s, "datamesh_sdk_", 13)))
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == ':'))
            return false;
    return true;
}

/* A rendered label list: name="value" pairs separated by commas, values
 * escaped as the text format wants (\\, \", \n), no "worker" label (the
 * controller adds it). "" is fine. */
static bool labels_ok(const char *s)
{
    if (!s || strlen(s) > 1000) return false;
    while (*s) {
        const char *n = s;
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_')) return false;
        while ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
               *s == '_')
            s++;
        if (s - n == 6 && !strncmp(n, "worker", 6)) return false;
        if (s[0] != '=' || s[1] != '"') return false;
        for (s += 2; *s != '"'; s++) {
            if (!*s || *s == '\n') return false;
            if (*s == '\\' && (s[1] != '\\' && s[1] != '"' && s[1] != 'n')) return false;
            if (*s == '\\') s++;
        }
        s++;
        if (*s == ',') {
            s++;
            if (!*s) return false;
        } else if (*s) {
            return false;
        }
    }
    return true;
}

/* Sets the worker's metrics in the controller's registry, worker="id" first
 * among their labels. What is not a counter or gauge of a task family with
 * well-formed labels is skipped (counted in *skipped). */
static void take_metrics(dm_metrics_t *reg, const char *id, const json_t *metrics, int *skipped)
{
    char esc[400], labels[1500];
    dm_metrics_escape(id, esc, sizeof(esc));
    size_t i;
    const json_t *m;
    json_array_foreach(metrics, i, m)
    {
        const char *name = json_string_value(json_object_get(m, "name"));
        const char *kind = json_string_value(json_object_get(m, "kind"));
        const char *form = json_string_value(json_object_get(m, "form"));
        const char *help = json_string_value(json_object_get(m, "help"));
        const char *lab = json_string_value(json_object_get(m, "labels"));
        const json_t *value = json_object_get(m, "value");
        bool counter = kind && !strcmp(kind, "counter"), gauge = kind && !strcmp(kind, "gauge");
        dm_gauge_form_t f = !form || !strcmp(form, "plain") ? DM_GAUGE_PLAIN
                            : !strcmp(form, "time_ms")      ? DM_GAUGE_TIME_MS
                            : !strcmp(form, "age_ms")       ? DM_GAUGE_AGE_MS
                                                            : (dm_gauge_form_t)-1;
        if (!metric_name_ok(name) || !(counter || gauge) || (int)f < 0 ||
            !labels_ok(lab ? lab : "") || !json_is_integer(value) ||
            (counter && json_integer_value(value) < 0)) {
            (*skipped)++;
            continue;
        }
        snprintf(labels, sizeof(labels), "worker=\"%s\"%s%s", esc, lab && *lab ? "," : "",
                 lab ? lab : "");
        if (!help || !*help) help = "reported by a worker";
        char h[300];
        snprintf(h, sizeof(h), "%s", help);
        for (char *c = h; *c; c++) /* one line of help text */
            if (*c == '\n' || *c == '\\') *c = ' ';
        dm_metric_t *x = counter  ? dm_metrics_counter(reg, name, h, labels)
                         : f == 0 ? dm_metrics_gauge(reg, name, h, labels)
                                  : dm_metrics_time_gauge(reg, name, h, labels, f);
        if (!x || x->kind != (counter ? DM_METRIC_COUNTER : DM_METRIC_GAUGE) ||
            (!counter && x->form != f)) {
            (*skipped)++; /* the name is the controller's with another kind */
            continue;
        }
        if (counter)
            atomic_store_explicit(&x->count, (uint64_t)json_integer_value(value),
                                  memory_order_relaxed);
        else
            dm_metric_set(x, (int64_t)json_integer_value(value));
    }
}

/* Takes the metrics of workers that stopped reporting out of /metrics (mu
 * held); their reports stay listed, with their age. */
static void sweep(workers_api_t *api, uint64_t now)
{
    const char *id;
    json_t *r;
    json_object_foreach(api->reports, id, r)
    {
        uint64_t at = (uint64_t)json_integer_value(json_object_get(r, "at_ns"));
        if (now - at <= WORKER_STALE_NS || !json_is_true(json_object_get(r, "has_metrics")) ||
            !api->rt)
            continue;
        char esc[400], match[420];
        dm_metrics_escape(id, esc, sizeof(esc));
        snprintf(match, sizeof(match), "worker=\"%s\"", esc);
        dm_metrics_remove_matching(dm_runtime_metrics(api->rt), match);
        json_object_set_new(r, "has_metrics", json_false());
    }
}

static void on_report(void *ctx, const dm_http_request_t *req, dm_http_response_t *res)
{
    workers_api_t *api = ctx;
    const char *id = dm_http_param(req, "id");
    if (!id || !*id || strlen(id) > MAX_WORKER_ID) {
        dm_http_error(res, 400, 40000, "worker id must be 1..%d characters", MAX_WORKER_ID);
        return;
    }
    json_error_t je;
    json_t *body = json_loadb((const char *)req->body, req->body_len, 0, &je);
    json_t *units = json_object_get(body, "units");
    if (!json_is_array(units) || json_array_size(units) > MAX_UNITS) {
        dm_http_error(res, 400, 40000,
                      "worker %s: the report must be {\"units\": [...]} with at most %d units%s%s",
                      id, MAX_UNITS, body ? "" : ": ", body ? "" : je.text);
        json_decref(body);
        return;
    }
    /* A task that met a schema version it does not read: the controller
     * recompiles (evolve, lenient) and lists the plan with a new generation. */
    const dm_principal_t *p = req->principal;
    size_t i;
    json_t *u;
    json_array_foreach(units, i, u)
    {
        const json_t *sc = json_object_get(u, "schema_change");
        const char *pipeline = json_string_value(json_object_get(u, "pipeline"));
        const char *what = json_string_value(json_object_get(sc, "message"));
        if (api->rt && pipeline && what)
            dm_runtime_worker_schema_change(
                api->rt, p && p->role == DM_ROLE_WORKER ? p->owner : NULL, pipeline,
                json_integer_value(json_object_get(u, "generation")),
                json_is_true(json_object_get(sc, "incompatible")), what);
    }
    json_t *metrics = json_object_get(body, "metrics");
    if (metrics && (!json_is_array(metrics) || json_array_size(metrics) > MAX_METRICS)) {
        dm_http_error(res, 400, 40000,
                      "worker %s: the report's \"metrics\" must be a list of at most %d metrics",
                      id, MAX_METRICS);
        json_decref(body);
        return;
    }
    int skipped = 0;
    pthread_mutex_lock(&api->mu);
    uint64_t now = dm_now_ns();
    sweep(api, now);
    bool has = json_array_size(metrics) > 0 ||
               json_is_true(json_object_get(json_object_get(api->reports, id), "has_metrics"));
    json_object_set_new(
        api->reports, id,
        json_pack("{s:O, s:I, s:b}", "units", units, "at_ns", (json_int_t)now, "has_metrics", has));
    if (metrics && api->rt) take_metrics(dm_runtime_metrics(api->rt), id, metrics, &skipped);
    pthread_mutex_unlock(&api->mu);
    json_decref(body);
    if (skipped) {
        dm_http_error(res, 400, 40000,
                      "worker %s: %d of the report's metrics were not taken (a counter or gauge "
                      "named datamesh_task_…, datamesh_processor_… or datamesh_sdk_…, labels "
                      "k=\"v\" without worker=, an integer value)",
                      id, skipped);
        return;
    }
    res->status = 204;
}

static void on_list(void *ctx, const dm_http_request_t *req, dm_http_response_t *res)
{
    workers_api_t *api = ctx;
    json_t *list = json_array();
    uint64_t now = dm_now_ns();
    pthread_mutex_lock(&api->mu);
    const char *id;
    json_t *r;
    json_object_foreach(api->reports, id, r)
    {
        uint64_t at = (uint64_t)json_integer_value(json_object_get(r, "at_ns"));
        json_array_append_new(list, json_pack("{s:s, s:I, s:O}", "worker", id, "age_ms",
                                              (json_int_t)((now - at) / 1000000), "units",
                                              json_object_get(r, "units")));
    }
    pthread_mutex_unlock(&api->mu);
    dm_http_json(res, 200, json_pack("{s:o}", "workers", list));
}

static workers_api_t api = {.mu = PTHREAD_MUTEX_INITIALIZER};

json_t *dm_api_workers_units(const char *pipeline)
{
    json_t *units = json_array();
    uint64_t now = dm_now_ns();
    pthread_mutex_lock(&api.mu);
    const char *id;
    json_t *r;
    json_object_foreach(api.reports, id, r)
    {
        uint64_t at = (uint64_t)json_integer_value(json_object_get(r, "at_ns"));
        if (now - at > WORKER_STALE_NS) continue; /* a worker that stopped reporting */
        size_t i;
        json_t *u;
        json_array_foreach(json_object_get(r, "units"), i, u)
        {
            const char *p = json_string_value(json_object_get(u, "pipeline"));
            const char *name = json_string_value(json_object_get(u, "name"));
            /* Failed pipelines are reported by name alone. */
            if ((p && !strcmp(p, pipeline)) || (!p && name && !strcmp(name, pipeline))) {
                json_t *c = json_deep_copy(u);
                json_object_set_new(c, "kind", json_string("task"));
                json_object_set_new(c, "worker", json_string(id));
                json_array_append_new(units, c);
            }
        }
    }
    pthread_mutex_unlock(&api.mu);
    return units;
}

dm_err_t dm_api_workers_register(dm_http_server_t *http, dm_runtime_t *rt)
{
    api.rt = rt;
    if (!api.reports) api.reports = json_object();
    dm_err_t rc = dm_http_route(http, "GET", "/api/v1/workers/tasks", on_tasks, &api);
    rc = rc ? rc : dm_http_route(http, "POST", "/api/v1/workers/{id}/status", on_report, &api);
    rc = rc ? rc : dm_http_route(http, "GET", "/api/v1/workers", on_list, &api);
    return rc;
}
