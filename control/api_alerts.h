/* control/api_alerts.h — the controller's alert evaluator (a thread that
 * evaluates the catalog's rules every interval against what /metrics shows)
 * and its routes. See control/alerts.h for the rules and docs/alerts.md. */
#ifndef DM_CONTROL_API_ALERTS_H
#define DM_CONTROL_API_ALERTS_H

#include <jansson.h>

#include "control/alerts.h"
#include "control/http.h"
#include "control/store.h"

typedef struct dm_alerts_service dm_alerts_service_t;

/* Appends what GET /metrics serves to out (the controller's renderer). */
typedef dm_err_t (*dm_alerts_metrics_fn)(void *ctx, dm_buf_t *out);

/* Starts evaluating the rules of what store holds every interval_ms (0:
 * 15 s) against the text metrics gives; opt as dm_alert_eval_new. store and
 * metrics_ctx outlive the service. One service per process. */
dm_alerts_service_t *dm_alerts_service_start(dm_store_t *store, dm_alerts_metrics_fn metrics,
                                             void *metrics_ctx, const dm_alert_eval_options_t *opt,
                                             int64_t interval_ms, dm_error_t *err);

/* One evaluation now (the thread runs these). */
void dm_alerts_service_tick(dm_alerts_service_t *s);

/* Stops the thread and the notifier; frees the service. */
void dm_alerts_service_stop(dm_alerts_service_t *s);

/* GET /api/v1/alerts/rules, GET /api/v1/alerts and
 * GET /api/v1/pipelines/{name}/dashboard. Registered before the routes of kinds. */
dm_err_t dm_api_alerts_register(dm_http_server_t *http, dm_alerts_service_t *s);

/* The alerts of one object (kind "Pipeline", name) as status shows them (new
 * reference; [] when no service runs). */
json_t *dm_api_alerts_of(const char *kind, const char *name);

#endif
