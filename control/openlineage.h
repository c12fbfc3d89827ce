/* control/openlineage.h — OpenLineage export (`datamesh up --openlineage URL`).
 *
 * A thread of its own watches what is deployed and sends a RunEvent for each
 * change, per pipeline (job pipeline.NAME) and per source (its connector job,
 * source.NAME):
 *   START     when it is deployed (and for everything deployed when the
 *             controller starts: consumers see the same runId again)
 *   RUNNING   when its spec changes (a new generation), or an input schema
 *             changes what it reads/writes
 *   COMPLETE  when it is deleted
 * Each event carries eventTime, producer, schemaURL, run.runId (a UUID derived
 * from the object's name and creation time: the same for the whole
 * deployment), job {namespace, name} with the jobType facet (STREAMING), and
 * inputs/outputs named per the OpenLineage naming spec — captured tables as
 * postgres://host:port + db.schema.table, topics as kafka://bootstrap + topic
 * when they live on Kafka, else the controller's namespace + source name —
 * each with the schema facet, outputs with the columnLineage facet from the
 * lineage graph (control/lineage.h).
 *
 * URL: http(s)://… (each event POSTed as JSON, e.g. Marquez's
 * /api/v1/lineage) or file:///path (JSON lines appended). Events wait in a
 * bounded queue while the endpoint is down and are retried with backoff
 * (0.2 s doubling to 30 s); a full queue drops new events and counts them
 * (datamesh_openlineage_dropped_events_total). Nothing here runs on a data
 * plane thread or holds a lock a task needs for longer than a plan compile.
 */
#ifndef DM_CONTROL_OPENLINEAGE_H
#define DM_CONTROL_OPENLINEAGE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "control/lineage.h"
#include "control/runtime.h"
#include "control/store.h"
#include "core/error.h"
#include "core/metrics.h"

typedef struct dm_openlineage dm_openlineage_t;

typedef struct dm_openlineage_options {
    const char *url;      /* http://, https:// or file:// */
    const char *ns;       /* jobs and the controller's sources: "datamesh://HOST:PORT" */
    const char *topic_ns; /* "kafka://bootstrap" when topics live on Kafka; NULL: ns */
    int64_t interval_ms;  /* how often deployments are compared (0: 1000) */
    size_t queue;         /* events kept while the endpoint is down (0: 10000) */
} dm_openlineage_options_t;

/* Checks the URL and starts the exporter's thread. store and rt are borrowed
 * and must outlive it; metrics (may be NULL) gets its counters. Errors name
 * the URL and what is wrong with it. */
dm_err_t dm_openlineage_start(const dm_openlineage_options_t *opt, dm_store_t *store,
                              dm_runtime_t *rt, dm_metrics_t *metrics, dm_openlineage_t **out,
                              dm_error_t *err);

/* Stops the thread after one last attempt to send what is queued; what is
 * still queued then is dropped (and counted). NULL is fine. */
void dm_openlineage_stop(dm_openlineage_t *ol);

/* The RunEvent for a job as control/lineage.h describes it (job: what
 * dm_lineage_job or dm_lineage_source_job gave; NULL: no datasets), new
 * reference. type: "START", "RUNNING", "COMPLETE", "ABORT", "FAIL"; job_name
 * "pipeline.NAME" or "source.NAME"; run_id a UUID; now_ms the event time. */
json_t *dm_openlineage_event(const dm_openlineage_options_t *opt, const char *type,
                             const char *job_name, const char *job_type, const char *run_id,
                             const json_t *job, int64_t now_ms);

/* A UUID (8-4-4-4-12 hex, version 5 layout) derived from key, into out (37 bytes). */
void dm_openlineage_uuid(const char *key, char out[37]);

#endif
