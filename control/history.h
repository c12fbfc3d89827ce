/* control/history.h — a short in-memory history of every pipeline's numbers,
 * so the UI's dashboards draw the last hour without Prometheus.
 *
 *   dm_history_t *h = dm_history_start(store, rt, metrics, &err);
 *   dm_history_register(http, h);      // GET /api/v1/pipelines/{name}/history
 *   ...
 *   dm_history_stop(h);                // before the runtime and metrics go
 *
 * A thread samples every interval (DATAMESH_HISTORY_INTERVAL_MS, default
 * 30 s; 120 samples kept: one hour): per pipeline, the records its tasks have
 * consumed (the sum of their input positions), their lag, their lag in
 * seconds (the age of the oldest record not processed yet, the largest over
 * its tasks and sinks), the totals of its sinks' end-to-end latency histogram
 * (datamesh_sink_end_to_end_seconds _sum and _count: the mean latency between
 * two samples is their differences' ratio), and per processor step the
 * records in, out and dead-lettered (the controller's own counters,
 * datamesh_processor_*_total). Values are totals; rates are their differences.
 * Memory: 8 bytes × (6 + 3 × steps) per sample, up to 120 samples per
 * pipeline (about 12 KiB for three steps after an hour). The series are
 * written to the controller's store every 5 minutes and at stop, and read back
 * at start, so a restart keeps the charts (counters of processors start
 * from 0 again in a new process: rates across the restart show as 0).
 */
#ifndef DM_CONTROL_HISTORY_H
#define DM_CONTROL_HISTORY_H

#include "control/http.h"
#include "control/runtime.h"
#include "control/store.h"
#include "core/metrics.h"

typedef struct dm_history dm_history_t;

/* Starts sampling (store, rt and metrics must outlive it). NULL with err set
 * when out of memory or the thread cannot start. */
dm_history_t *dm_history_start(dm_store_t *store, dm_runtime_t *rt, dm_metrics_t *metrics,
                               dm_error_t *err);

/* Stops the thread and frees everything (NULL is fine). */
void dm_history_stop(dm_history_t *h);

/* Takes one sample now (the thread calls it; tests may too). Thread-safe. */
void dm_history_sample(dm_history_t *h);

/* The history of pipeline name as JSON (new reference): {pipeline,
 * interval_ms, samples: [{t, consumed, lag, lag_seconds, e2e_sum_seconds,
 * e2e_count, steps: [{step, processor, in, out, dead}]}]} oldest first; NULL when nothing was
 * sampled for it. */
json_t *dm_history_get(dm_history_t *h, const char *name);

/* Adds GET /api/v1/pipelines/{name}/history (its rule is in control/auth.c). */
dm_err_t dm_history_register(dm_http_server_t *http, dm_history_t *h);

#endif
