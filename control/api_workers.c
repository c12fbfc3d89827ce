/* control/api_workers.c — the controller's side of `datamesh worker`.
 *
 *   GET  /api/v1/workers/tasks        → what workers run: {transport, external, tasks: […]}
 *                                       (dm_runtime_worker_tasks)
 *   POST /api/v1/workers/{id}/status  with {"units": [{name, state, error, position, lag}]}
 *                                     → 204; a worker reports what it runs. A unit with
 *                                       {pipeline, generation, schema_change: {message,
 *                                       incompatible}} met a schema version it does not
 *                                       read (dm_runtime_worker_schema_change)
 *   GET  /api/v1/workers              → {"workers": [{worker, age_ms, units}]}: the last
 *                                       report of each worker and how old it is
 *
 * Reports live in memory: they describe processes that report again every few seconds.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/api.h"
#include "control/auth.h"
#include "core/clock.h"

typedef struct workers_api {
    dm_runtime_t *rt;
    pthread_mutex_t mu;
    json_t *reports; /* worker id → {units, at_ns} */
} workers_api_t;

#define MAX_WORKER_ID   128
#define MAX_UNITS       4096
#define WORKER_STALE_NS (30ull * 1000000000) /* reports older than this are not status */

static void on_tasks(void *ctx, const dm_http_request_t *req, dm_http_response_t *res)
{
    workers_api_t *w = ctx;
    const dm_principal_t *p = req->principal;
    bool worker = p && p->role == DM_ROLE_WORKER;
    dm_http_json(res, 200, dm_runtime_worker_tasks(w->rt, worker ? p->owner : NULL));
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
    pthread_mutex_lock(&api->mu);
    json_object_set_new(api->reports, id,
                        json_pack("{s:O, s:I}", "units", units, "at_ns", (json_int_t)dm_now_ns()));
    pthread_mutex_unlock(&api->mu);
    json_decref(body);
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
