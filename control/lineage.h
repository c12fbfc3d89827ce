/* control/lineage.h — field-level lineage: which pipeline reads and writes
 * which source and which field, end to end (DESIGN.md "lineage").
 *
 *   Source docs + registry ─┐
 *   pipeline plans ─────────┴─dm_lineage_build─▶ dm_lineage_t ─dm_lineage_query─▶ {nodes, edges}
 *
 * The graph is computed from plans (never from spec JSON): each plan's
 * steps are opened against the schemas they read and asked, through
 * dm_proc_ops_t.field_deps, where each output field comes from; chains of
 * steps, re-key stages, unions, joins, enrich tables and derived sources are
 * followed so that every edge links a field people can name to one they can
 * name.
 *
 * Nodes (id → what):
 *   NAME              a source (or a pipeline's output topic pipeline.P.out)
 *   NAME.a.b          a field of it (every nested record field too)
 *   pipeline:P        a pipeline, with its steps (index, kind, fields read)
 *   sink:P/sink/I     a sink of pipeline P; sink:P/sink/I.a its columns
 *   table:S/sch.tbl   a table a postgres source S captures; .col its columns
 * Edges carry OpenLineage's vocabulary: type DIRECT (subtype IDENTITY,
 * TRANSFORMATION, AGGREGATION) or INDIRECT (FILTER, JOIN, GROUP_BY, WINDOW,
 * SORT) between fields and columns, with the pipeline that makes them; and
 * type DATASET (INPUT: a source a pipeline reads; OUTPUT: what it writes,
 * sinks included; CAPTURE: a table a source captures) between datasets and
 * pipelines.
 *
 * Threads: a graph is built by one thread and read-only afterwards; queries
 * may run on any thread.
 */
#ifndef DM_CONTROL_LINEAGE_H
#define DM_CONTROL_LINEAGE_H

#include <jansson.h>
#include <stddef.h>

#include "control/plan.h"
#include "core/error.h"
#include "schema/dm_avro.h"

typedef struct dm_lineage dm_lineage_t;

/* What building needs from the registry. Schemas returned are borrowed and
 * must live until dm_lineage_build returns. */
typedef struct dm_lineage_env {
    /* The parsed schema of registry id; NULL (err set) when there is none. */
    const dm_avro_schema_t *(*schema)(void *ctx, int64_t id, dm_error_t *err);
    /* The latest parsed schema registered under subject; NULL when none. */
    const dm_avro_schema_t *(*subject_schema)(void *ctx, const char *subject);
    void *ctx;
} dm_lineage_env_t;

/* Builds the graph of sources (name → Source document, may be NULL) and
 * plans (borrowed; only read). A plan whose steps no longer open against the
 * schemas (a source changed since) is left out with the reason in
 * dm_lineage_problems. The caller frees *out with dm_lineage_free. */
dm_err_t dm_lineage_build(const json_t *sources, dm_pipeline_plan_t *const *plans, size_t n_plans,
                          const dm_lineage_env_t *env, dm_lineage_t **out, dm_error_t *err);

void dm_lineage_free(dm_lineage_t *g);

/* ---- building one plan at a time, and again from fragments --------------------
 *
 * dm_lineage_build is new + add per plan + finish. A fragment is what adding
 * one plan did to the graph, with what it read of it: replaying fragments in
 * the order their plans were added gives exactly the graph adding the plans
 * gives (controllers keep them in the store, control/api_lineage.c), at a
 * fraction of the cost — no compile, no step opened. */

/* A graph of the sources only (name → Source document); plans come next. */
dm_err_t dm_lineage_new(const json_t *sources, const dm_lineage_env_t *env, dm_lineage_t **out,
                        dm_error_t *err);

/* Adds plan (borrowed). When frag is not NULL, *frag (malloc'd, the caller
 * frees it) and *frag_len receive its fragment. Only out of memory is an
 * error; a plan whose steps do not open is a problem in the graph. */
dm_err_t dm_lineage_add(dm_lineage_t *g, const dm_lineage_env_t *env,
                        const dm_pipeline_plan_t *plan, void **frag, size_t *frag_len,
                        dm_error_t *err);

/* Replays a fragment: 1 when done; 0 when the graph is not what the plan read
 * when it was recorded (or the fragment is damaged or of another version) —
 * nothing changed, add the plan instead; -1 when it failed half way (out of
 * memory): the graph must be dropped. */
int dm_lineage_replay(dm_lineage_t *g, const void *frag, size_t len);

/* Ends building: after it, g is read-only and may be queried. */
dm_err_t dm_lineage_finish(dm_lineage_t *g, dm_error_t *err);

typedef enum { DM_LINEAGE_UPSTREAM, DM_LINEAGE_DOWNSTREAM, DM_LINEAGE_BOTH } dm_lineage_dir_t;

/* Parses "upstream", "downstream", "both"; -1 otherwise. */
int dm_lineage_dir_parse(const char *text);

/* The part of the graph reachable from node in direction, at most depth
 * edges away (depth < 0: no limit): {node, direction, depth, nodes: [...],
 * edges: [...]} (new reference). node is a node id, a source, a field
 * ("SOURCE.a.b") or a pipeline name (a bare name that is both a source and a
 * pipeline means both). From a field, the field's nested fields count as
 * the field (changing a record changes its parts), and the pipelines that
 * make the edges followed are listed among the nodes. NULL with err
 * (DM_ERR_NOT_FOUND naming what is missing) when node names nothing. */
json_t *dm_lineage_query(const dm_lineage_t *g, const char *node, dm_lineage_dir_t dir, int depth,
                         dm_error_t *err);

/* The whole graph as {nodes, edges} (new reference). */
json_t *dm_lineage_to_json(const dm_lineage_t *g);

/* Pipelines left out of the graph: [{pipeline, error}] (borrowed). */
const json_t *dm_lineage_problems(const dm_lineage_t *g);

/* The column lineage of what pipeline writes, for OpenLineage's
 * columnLineage facet: {OUTPUT_DATASET: {FIELD: [{dataset, field, type,
 * subtype}]}} with the input fields each output field of each dataset it
 * writes (its output source or topic, its sinks) depends on directly or
 * indirectly through its own steps (new reference; NULL when there is no
 * such pipeline). */
json_t *dm_lineage_column_lineage(const dm_lineage_t *g, const char *pipeline);

/* What pipeline reads and writes, for an OpenLineage job: {pipeline,
 * inputs: [DATASET], outputs: [DATASET + columns]} where DATASET is its node
 * (id, kind, name, namespace for captured tables, …) with fields [{name,
 * type}] (top level), and columns the column lineage of that output as
 * dm_lineage_column_lineage gives it (new reference; NULL when there is no
 * such pipeline). */
json_t *dm_lineage_job(const dm_lineage_t *g, const char *pipeline);

/* The same for the connector job of a source: inputs are the tables it
 * captures (empty for other connectors), the one output the source with the
 * columns each of its fields comes from. NULL when there is no such source. */
json_t *dm_lineage_source_job(const dm_lineage_t *g, const char *source);

#endif
