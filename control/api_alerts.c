/* control/api_alerts.c — the alert routes and the controller's evaluator
 * thread: GET /api/v1/alerts/rules (a Prometheus rules file),
 * GET /api/v1/alerts (pending, firing and resolved alerts) and
 * GET /api/v1/pipelines/{name}/dashboard (Grafana JSON). */
#include "control/api_alerts.h"

#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "control/api.h"
#include "core/clock.h"
#include "core/log.h"

struct dm_alerts_service {
    dm_store_t *store;
    dm_alerts_metrics_fn metrics;
    void *metrics_ctx;
    dm_alert_eval_t *ev;
    int64_t interval_ms;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop, started;
    pthread_t th;
};

/* The one service of the process, for a pipeline's status (api.c). */
static dm_alerts_service_t *the_service;

static dm_alert_rules_t *current_rules(dm_store_t *store, dm_error_t *err)
{
    json_t *pipes = NULL, *sources = NULL;
    if (dm_store_list(store, DM_KIND_PIPELINE, &pipes, err) ||
        dm_store_list(store, DM_KIND_SOURCE, &sources, err)) {
        json_decref(pipes);
        return NULL;
    }
    dm_alert_rules_t *rules = dm_alert_rules_from_catalog(pipes, sources);
    json_decref(pipes);
    json_decref(sources);
    if (!rules) dm_error_set(err, DM_ERR_NOMEM, "out of memory generating alert rules");
    return rules;
}

static dm_err_t scrape(dm_alerts_service_t *s, dm_alert_samples_t *out)
{
    dm_buf_t text = DM_BUF_INIT;
    dm_err_t rc = s->metrics(s->metrics_ctx, &text);
    if (!rc) rc = dm_alert_samples_parse((const char *)text.data, text.len, out);
    dm_buf_free(&text);
    return rc;
}

/* Rules generated and evaluated per this many documents: all of them at once
 * held ~2.3 KiB per rule, ~600 MiB at 20,000 pipelines and 30,000 sources. */
#define TICK_DOCS 256

/* Evaluates the rules of every document of list (kind: pipeline or not). */
static bool eval_docs(dm_alerts_service_t *s, dm_alert_rules_t *rules, const json_t *list,
                      bool pipeline, const dm_alert_samples_t *samples, int64_t now)
{
    size_t i, n = 0;
    json_t *doc;
    json_array_foreach(list, i, doc)
    {
        if (!dm_alert_rules_add(rules, doc, pipeline)) return false;
        if (++n % TICK_DOCS == 0 || i + 1 == json_array_size(list)) {
            dm_alert_eval_rules(s->ev, rules, samples, now);
            dm_alert_rules_clear(rules);
        }
    }
    return true;
}

void dm_alerts_service_tick(dm_alerts_service_t *s)
{
    dm_error_t err = {0};
    json_t *pipes = NULL, *sources = NULL;
    dm_alert_rules_t *rules = calloc(1, sizeof(*rules));
    dm_alert_samples_t samples = {0};
    const char *why = NULL;
    if (!rules)
        why = "out of memory generating alert rules";
    else if (dm_store_list(s->store, DM_KIND_PIPELINE, &pipes, &err) ||
             dm_store_list(s->store, DM_KIND_SOURCE, &sources, &err))
        why = err.message;
    else if (scrape(s, &samples))
        why = "out of memory reading the metrics";
    if (!why) {
        int64_t now = dm_wall_ms();
        dm_alert_eval_begin(s->ev);
        bool ok = eval_docs(s, rules, pipes, true, &samples, now) &&
                  eval_docs(s, rules, sources, false, &samples, now);
        if (ok)
            dm_alert_eval_end(s->ev, now);
        else /* nothing forgotten for rules that could not be generated */
            dm_alert_eval_abort(s->ev, now);
        if (!ok) why = "out of memory generating alert rules";
    }
    if (why) DM_ERROR("alerts", "evaluating the alert rules: %s", why);
    json_decref(pipes);
    json_decref(sources);
    dm_alert_samples_free(&samples);
    dm_alert_rules_free(rules);
    /* The tick's documents, metrics text and samples (tens of MiB at 20,000
     * pipelines) are free now; without this glibc keeps their pages in its
     * arenas and the controller's RSS stays at its peak. */
    malloc_trim(0);
}

static void *run(void *arg)
{
    dm_alerts_service_t *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        pthread_mutex_unlock(&s->mu);
        dm_alerts_service_tick(s);
        pthread_mutex_lock(&s->mu);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += s->interval_ms / 1000;
        ts.tv_nsec += (s->interval_ms % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        if (!s->stop) pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

dm_alerts_service_t *dm_alerts_service_start(dm_store_t *store, dm_alerts_metrics_fn metrics,
                                             void *metrics_ctx, const dm_alert_eval_options_t *opt,
                                             int64_t interval_ms, dm_error_t *err)
{
    dm_alerts_service_t *s = calloc(1, sizeof(*s));
    if (!s) {
        dm_error_set(err, DM_ERR_NOMEM, "out of memory");
        return NULL;
    }
    s->store = store;
    s->metrics = metrics;
    s->metrics_ctx = metrics_ctx;
    s->interval_ms = interval_ms > 0 ? interval_ms : 15000;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    if (!(s->ev = dm_alert_eval_new(opt, err))) {
        dm_alerts_service_stop(s);
        return NULL;
    }
    if (pthread_create(&s->th, NULL, run, s)) {
        dm_error_set(err, DM_ERR_INTERNAL, "alerts: cannot start the evaluator thread");
        dm_alerts_service_stop(s);
        return NULL;
    }
    s->started = true;
    the_service = s;
    return s;
}

void dm_alerts_service_stop(dm_alerts_service_t *s)
{
    if (!s) return;
    if (the_service == s) the_service = NULL;
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (s->started) pthread_join(s->th, NULL);
    dm_alert_eval_free(s->ev);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}

json_t *dm_api_alerts_of(const char *kind, const char *name)
{
    return the_service ? dm_alert_eval_json(the_service->ev, kind, name) : json_array();
}

/* ---- routes ------------------------------------------------------------------------- */

/* GET /api/v1/alerts/rules — the rules file Prometheus loads. */
static void on_rules(void *ctx, const dm_http_request_t *req, dm_http_response_t *res)
{
    (void)req;
    dm_alerts_service_t *s = ctx;
    dm_error_t err = {0};
    dm_alert_rules_t *rules = current_rules(s->store, &err);
    if (!rules) {
        dm_api_reply_error(res, &err);
        return;
    }
    res->status = 200;
    res->content_type = "application/yaml; charset=utf-8";
    if (dm_alert_rules_yaml(rules, &res->body))
        dm_http_error(res, 500, 50000, "out of memory rendering the alert rules");
    dm_alert_rules_free(rules);
}

/* GET /api/v1/alerts[?state=firing] — what the evaluator holds now. */
static void on_alerts(void *ctx, const dm_http_request_t *req, dm_http_response_t *res)
{
    dm_alerts_service_t *s = ctx;
    const char *want = dm_http_query(req, "state");
    if (want && strcmp(want, "pending") && strcmp(want, "firing") && strcmp(want, "resolved")) {
        dm_http_error(res, 400, 40001, "state: '%s' is not one of: pending, firing, resolved",
                      want);
        return;
    }
    json_t *all = dm_alert_eval_json(s->ev, NULL, NULL);
    json_t *list = json_array();
    size_t i;
    json_t *a;
    json_array_foreach(all, i, a)
    {
        if (!want || !strcmp(json_string_value(json_object_get(a, "state")), want))
            json_array_append(list, a);
    }
    json_decref(all);
    dm_http_json(
        res, 200,
        json_pack("{s:o, s:I}", "alerts", list, "interval_ms", (json_int_t)s->interval_ms));
}

/* GET /api/v1/pipelines/{name}/dashboard — panels for the metrics it has. */
static void on_dashboard(void *ctx, const dm_http_request_t *req, dm_http_response_t *res)
{
    dm_alerts_service_t *s = ctx;
    const char *name = dm_http_param(req, "name");
    json_t *doc;
    dm_error_t err = {0};
    if (dm_store_get(s->store, DM_KIND_PIPELINE, name, &doc, &err)) {
        dm_api_reply_error(res, &err);
        return;
    }
    json_decref(doc);
    dm_alert_samples_t samples = {0};
    if (scrape(s, &samples)) {
        dm_alert_samples_free(&samples);
        dm_http_error(res, 500, 50000, "out of memory reading the metrics");
        return;
    }
    dm_http_json(res, 200, dm_alert_dashboard(name, &samples));
    dm_alert_samples_free(&samples);
}

dm_err_t dm_api_alerts_register(dm_http_server_t *http, dm_alerts_service_t *s)
{
    dm_err_t rc = dm_http_route(http, "GET", "/api/v1/alerts/rules", on_rules, s);
    rc = rc ? rc : dm_http_route(http, "GET", "/api/v1/alerts", on_alerts, s);
    rc =
        rc ? rc : dm_http_route(http, "GET", "/api/v1/pipelines/{name}/dashboard", on_dashboard, s);
    return rc;
}
