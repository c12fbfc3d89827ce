/* control/runtime.h — what runs: the data plane inside `datamesh up`.
 *
 * The runtime turns the stored specs into running units: a topic and a
 * registered schema per source, a connector thread per source that runs one
 * (connectors/source.h), a task
 * per input partition of each pipeline (a fused chain, exactly once), a table
 * reader per source that enrich looks up in, and a sink thread per sink. It
 * owns the transport (the embedded log in DATA/log) and its own handle on the
 * schema registry.
 *
 * dm_runtime_sync brings the running units in line with the store after every
 * apply or delete: units whose spec changed are stopped and started again;
 * every position (task offsets, connector sequence, sink offsets) is durable
 * in the transport, so a restart resumes where the unit stopped.
 *
 * Threads: sync, status and free are called from API threads under the
 * runtime's lock; units run on their own threads.
 */
#ifndef DM_CONTROL_RUNTIME_H
#define DM_CONTROL_RUNTIME_H

#include <jansson.h>
#include <stdbool.h>

#include "control/store.h"
#include "core/error.h"
#include "core/metrics.h"
#include "transport/transport.h"

typedef struct dm_runtime dm_runtime_t;

/* Opens the transport and the registry under data_dir and starts everything
 * the store holds. */
dm_err_t dm_runtime_new(const char *data_dir, dm_store_t *store, dm_metrics_t *metrics,
                        dm_runtime_t **out, dm_error_t *err);

/* Where the runtime runs what it runs (dm_runtime_new_with). */
typedef struct dm_runtime_options {
    const char *transport; /* transport URL (kafka://…); NULL: the embedded log in DATA/log */
    bool external_tasks;   /* pipeline tasks run in `datamesh worker` processes, not here */
} dm_runtime_options_t;

/* dm_runtime_new with options (opt may be NULL: the defaults). */
dm_err_t dm_runtime_new_with(const char *data_dir, const dm_runtime_options_t *opt,
                             dm_store_t *store, dm_metrics_t *metrics, dm_runtime_t **out,
                             dm_error_t *err);

/* What workers run: {transport, external, tasks: [plan, …]} with each pipeline's plan as
 * JSON (dm_plan_to_json; new reference). Plans are listed only when tasks run externally.
 * team non-NULL: only the pipelines whose metadata.owner is that team (a worker token's). */
json_t *dm_runtime_worker_tasks(dm_runtime_t *rt, const char *team);

/* A worker's task of pipeline met a schema version of its input it does not
 * read (engine/task.h), running the plan of generation (the task list's).
 * As for a task of this runtime: under evolve and lenient the reconciler
 * recompiles the plan and lists it with a new generation, which workers
 * load and run from the committed offsets; otherwise (fail, freeze, or the
 * same record again after recompiling) the pipeline is noted as paused.
 * incompatible: DM_ERR_SCHEMA_INCOMPATIBLE (a frozen reader cannot read it).
 * Reports of another generation than the listed one are stale and ignored,
 * and each is acted on once. team non-NULL: only that team's pipelines (a
 * worker token's). Returns false when ignored. Any thread. */
bool dm_runtime_worker_schema_change(dm_runtime_t *rt, const char *team, const char *pipeline,
                                     int64_t generation, bool incompatible, const char *what);

/* The plan a Pipeline document compiles to against the registry and the
 * topics as they are, without registering or creating anything (schema ids
 * of outputs not registered yet are 0): JSON (new reference) and, when text
 * is not NULL, the explanation for people (malloc'd). batch_sources /
 * batch_sinks: name → document of the Sources and Sinks being applied with it
 * (either may be NULL), which take the place of the stored ones. NULL with err
 * when it does not compile (DM_ERR_AGAIN: a source it reads does not exist yet). */
json_t *dm_runtime_plan(dm_runtime_t *rt, const json_t *doc, const json_t *batch_sources,
                        const json_t *batch_sinks, char **text, dm_error_t *err);

/* dm_runtime_plan against stored sources and sinks the caller read once
 * (name → document maps, as dm_store_docs gives them): for compiling many
 * pipelines in a row (lineage), where reading the store's maps per pipeline
 * would cost O(objects) each. */
json_t *dm_runtime_plan_among(dm_runtime_t *rt, const json_t *doc, const json_t *sources,
                              const json_t *sinks, dm_error_t *err);

/* dm_runtime_plan_among, and in *deps (new object, also on error) what the
 * compile read: "s:SUBJECT" → its latest schema id, "t:TOPIC" → 1 when it
 * exists, "Source:N" / "Sink:N" / "Processor:N" → the document's generation
 * (0: none). The same document compiles to the same plan while
 * dm_runtime_plan_deps_hold says they all still hold (lineage keeps each
 * pipeline's part of its graph while they do). */
json_t *dm_runtime_plan_deps(dm_runtime_t *rt, const json_t *doc, const json_t *sources,
                             const json_t *sinks, json_t **deps, dm_error_t *err);

/* Every subject's latest schema id: a new JSON object subject → id, in one
 * registry query. Any thread. */
dm_err_t dm_runtime_latest_ids(dm_runtime_t *rt, json_t **out, dm_error_t *err);

/* What plan deps are checked against, read once for many pipelines:
 * subjects (subject → latest id) and topics (name → true) filled by
 * dm_runtime_plan_now; sources, sinks, processors: the stored name → document
 * maps the caller read (borrowed). */
typedef struct dm_runtime_plan_now {
    json_t *subjects, *topics;
    const json_t *sources, *sinks, *processors;
} dm_runtime_plan_now_t;

/* Reads the registry's latest ids and the topics (one query each); free them
 * with dm_runtime_plan_now_clear. */
dm_err_t dm_runtime_plan_now(dm_runtime_t *rt, dm_runtime_plan_now_t *now, dm_error_t *err);
void dm_runtime_plan_now_clear(dm_runtime_plan_now_t *now);

/* Whether every entry of deps is as it was. Any thread. */
bool dm_runtime_plan_deps_hold(const json_t *deps, const dm_runtime_plan_now_t *now);

/* Reconciles running units with the store. Errors of individual units show
 * in their status; an error here means the runtime itself failed. */
dm_err_t dm_runtime_sync(dm_runtime_t *rt, dm_error_t *err);

/* Checks, before specs are stored, what only the runtime can: that the
 * connectors, sinks and steps can run here, and that every pipeline's chain
 * opens against its input schema (expressions, fields, enrich tables). docs
 * are the documents of one apply. */
dm_err_t dm_runtime_check(dm_runtime_t *rt, const json_t *const *docs, size_t n, dm_error_t *err);

/* The overall state of an object as dm_runtime_status names it ("running",
 * "failed", "degraded", "ready", "pending"), without building its JSON; error
 * gets the first failed unit's error ("" when none). Any thread. */
const char *dm_runtime_state(dm_runtime_t *rt, const char *kind, const char *name, char *error,
                             size_t cap);

/* Status of an object: {state, units: [{name, state, error, position, lag}]}. */
json_t *dm_runtime_status(dm_runtime_t *rt, const char *kind, const char *name);

/* The schema changes the pipelines met, oldest first (the newest 1000, kept
 * in the controller's store across restarts): [{ts_ms, pipeline, policy,
 * action (restart | pause), what}], only pipeline's when it is not NULL
 * (docs/schema-evolution.md). New reference. */
json_t *dm_runtime_schema_changes(dm_runtime_t *rt, const char *pipeline);

/* The impact of giving source the value schema new_schema (Avro JSON), before
 * it happens (control/runtime_evolve.c): {source, subject, current_id,
 * compatible, reasons, changes: [{field, change, from, to}], pipelines:
 * [{pipeline, policy, action, effects}]}. NULL with err when new_schema does
 * not parse or the source has no schema. New reference. */
json_t *dm_runtime_schema_plan(dm_runtime_t *rt, const char *source, const char *new_schema,
                               dm_error_t *err);

/* Asks the running source to snapshot table ("schema.table"; NULL: every
 * table it captures), optionally the key range [from, to] (either NULL: open;
 * see dm_source_ops_t.snapshot). DM_ERR_NOT_FOUND when source is not running,
 * its connector takes no snapshot requests, or it does not capture table. */
dm_err_t dm_runtime_source_snapshot(dm_runtime_t *rt, const char *source, const char *table,
                                    const char *from, const char *to, dm_error_t *err);

/* Hands a request body to the connector of a source filled through the API
 * (dm_source_ops_t.push: ingest), with the source's latest registered schemas
 * and its topic; spec is the source's stored spec. *accepted gets how many
 * records were written (all or none). Errors as dm_source_ops_t.push, and
 * DM_ERR_UNSUPPORTED when the connector does not take requests, DM_ERR_AGAIN
 * when the source has no schema or topic yet. Any thread; takes the runtime's
 * lock only to look the schemas up. */
/* Hands a request body to the running source's connector (ops->receive:
 * the cockroachdb webhook); DM_ERR_NOT_FOUND when the source is not running
 * or its connector takes no such requests. Errors as dm_runtime_source_push.
 * API threads. */
dm_err_t dm_runtime_source_receive(dm_runtime_t *rt, const char *source, const void *body,
                                   size_t len, size_t *accepted, dm_error_t *err);
dm_err_t dm_runtime_source_push(dm_runtime_t *rt, const char *source, const json_t *spec,
                                const void *body, size_t len, size_t *accepted, dm_error_t *err);

/* The transport, for reading and writing sources through the API. */
dm_transport_t *dm_runtime_transport(dm_runtime_t *rt);

/* Tells sinks where the controller's schema registry API answers
 * ("http://127.0.0.1:8080"); the kafka sink registers there by default. */
void dm_runtime_set_registry_url(dm_runtime_t *rt, const char *url);

/* The latest registered value schema of a source: JSON text (malloc'd) and id. */
dm_err_t dm_runtime_source_schema(dm_runtime_t *rt, const char *source, char **schema, int64_t *id,
                                  dm_error_t *err);

/* The latest id registered under subject. */
dm_err_t dm_runtime_subject_id(dm_runtime_t *rt, const char *subject, int64_t *id, dm_error_t *err);

/* The parsed schema of a registry id, cached for the runtime's life (the
 * pointer stays valid until dm_runtime_free). */
const struct dm_avro_schema *dm_runtime_schema(dm_runtime_t *rt, int64_t id, dm_error_t *err);

/* The schema text for a registry id (malloc'd). */
dm_err_t dm_runtime_schema_by_id(dm_runtime_t *rt, int64_t id, char **schema, dm_error_t *err);

/* Every live version of subject as [{version, id, schema}], oldest first
 * (empty when the subject has none): the catalog's schema history. */
json_t *dm_runtime_schema_versions(dm_runtime_t *rt, const char *subject);

/* Appends the units' health in the Prometheus text format (errors,
 * restarts, failed; labels kind, object, unit). Takes the runtime's lock. */
dm_err_t dm_runtime_render_metrics(dm_runtime_t *rt, dm_buf_t *out);

/* The registry the runtime's units report to (what GET /metrics renders). */
dm_metrics_t *dm_runtime_metrics(dm_runtime_t *rt);
/* A number that changes whenever the registry changes (dm_schema_registry_changes). */
uint64_t dm_runtime_registry_changes(dm_runtime_t *rt);

/* Stops every unit (each commits what it finished) and closes the transport. */
void dm_runtime_free(dm_runtime_t *rt);

#endif
