/* control/api.h — the REST API under /api/v1 for every kind. */
#ifndef DM_CONTROL_API_H
#define DM_CONTROL_API_H

#include "control/http.h"
#include "control/runtime.h"
#include "control/store.h"

/* Registers the /api/v1 routes on the server; handlers use store and rt
 * (rt may be NULL: specs are stored but nothing runs), which must outlive the
 * server. One API per process. */
dm_err_t dm_api_register(dm_http_server_t *http, dm_store_t *store, dm_runtime_t *rt);

/* The data routes (control/api_data.c): reading a source's records and
 * ingesting events into it. */
dm_err_t dm_api_data_register(dm_http_server_t *http, dm_store_t *store, dm_runtime_t *rt);

/* The replay route (control/api_replay.c): POST
 * /api/v1/pipelines/{name}/deadletters/replay puts chosen dead letters back
 * into the pipeline's replay topic. */
dm_err_t dm_api_replay_register(dm_http_server_t *http, dm_store_t *store, dm_runtime_t *rt);

/* The dead letters of pipeline replayed so far: "PARTITION:OFFSET" of the
 * dead-letter topic → the replay partition (new reference; empty when none). */
json_t *dm_api_replayed(dm_transport_t *t, const char *pipeline);

/* The worker routes (control/api_workers.c): the tasks `datamesh worker` processes run,
 * and the status they report. Registered before dm_api_register. */
dm_err_t dm_api_workers_register(dm_http_server_t *http, dm_runtime_t *rt);

/* The task units workers reported for pipeline in the last 30 s, each with its worker's
 * name (new reference): what a pipeline's status shows when its tasks run in workers. */
json_t *dm_api_workers_units(const char *pipeline);

/* The plan routes (control/api_plan.c): GET /api/v1/pipelines/{name}/plan and
 * POST /api/v1/plan (the plans of the pipelines in a request, not applied). */
dm_err_t dm_api_plan_register(dm_http_server_t *http, dm_store_t *store, dm_runtime_t *rt);

/* The lineage route (control/api_lineage.c): GET /api/v1/lineage. Registered
 * before the routes of kinds. */
dm_err_t dm_api_lineage_register(dm_http_server_t *http, dm_store_t *store, dm_runtime_t *rt);

/* The SQL route (control/api_sql.c): POST /api/v1/sql, a script of statements. */
dm_err_t dm_api_sql_register(dm_http_server_t *http, dm_store_t *store, dm_runtime_t *rt);

/* The script of a POST /api/v1/sql body (the text, or {"sql": "…"}); malloc'd,
 * NULL when it is neither (the auth guard reads it too). */
char *dm_api_sql_text(const void *body, size_t len);

struct dm_sql_stmt;
/* The Pipeline document of a CREATE SOURCE (or EXPLAIN) statement: spec.sql
 * and to: [{source: name}], owner from WITH (owner = …) else default_owner
 * (else "sql"). New reference. */
json_t *dm_api_sql_pipeline_doc(const struct dm_sql_stmt *st, const char *default_owner);

struct dm_lineage;
/* Gives fn (on the caller's thread, under the graph's lock: keep it short) the
 * lineage graph of what the store holds now, with problems ([{pipeline,
 * error}] for pipelines left out): the one computed last when nothing it was
 * computed from changed (control/api_lineage.c), else a new one. Both are
 * borrowed for the call. Errors: the store's, or out of memory. */
typedef void (*dm_api_lineage_fn)(void *ctx, const struct dm_lineage *g, const json_t *problems);
dm_err_t dm_api_lineage_with(dm_store_t *store, dm_runtime_t *rt, dm_api_lineage_fn fn, void *ctx,
                             dm_error_t *err);

/* Frees the kept graph (the controller, when it stops). */
void dm_api_lineage_forget(void);

/* Drops the catalog the catalog endpoint keeps between changes (at controller
 * stop, before its store closes). */
void dm_api_catalog_forget(void);

/* A deep copy of j with secrets (passwords, tokens, DSN passwords) masked; j is released. */
json_t *dm_api_redacted(json_t *j);

/* Replies with err as {"error_code", "message"} and the status for its code. */
void dm_api_reply_error(dm_http_response_t *res, const dm_error_t *err);

/* The HTTP status for an error code (400, 404, 409, 500, …). */
int dm_api_status(dm_err_t code);

#endif
