/* core/metrics.h — counters, gauges and histograms, rendered in the
 * Prometheus text format for GET /metrics.
 *
 * A metric is registered once (name, help, labels) and returns a handle; the
 * hot path only does relaxed atomic adds on it, from any thread. Registration
 * and rendering take the registry's lock. Names follow Prometheus rules
 * (datamesh_<component>_<what>_<unit>); labels are fixed at registration
 * ("pipeline=\"us-plays\",processor=\"filter\"").
 */
#ifndef DM_CORE_METRICS_H
#define DM_CORE_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/error.h"

typedef enum { DM_METRIC_COUNTER, DM_METRIC_GAUGE, DM_METRIC_HISTOGRAM } dm_metric_kind_t;

/* What a gauge holds and how it renders. A time gauge holds a wall-clock
 * instant in ms and renders it in seconds since the epoch; an age gauge holds
 * the wall-clock instant something began (0: nothing) and renders how long ago
 * that was, in seconds, at the time it is read: an age keeps growing while the
 * thread that set it is stuck, which is what a lag alert must see. */
typedef enum { DM_GAUGE_PLAIN = 0, DM_GAUGE_TIME_MS, DM_GAUGE_AGE_MS } dm_gauge_form_t;

#define DM_HIST_BUCKETS 16

typedef struct dm_metric {
    dm_metric_kind_t kind;
    char *name;
    char *help;
    char *labels;                              /* rendered label pairs without braces, may be "" */
    _Atomic uint64_t count;                    /* counter value; histogram observation count */
    _Atomic int64_t gauge;                     /* gauge value */
    _Atomic uint64_t buckets[DM_HIST_BUCKETS]; /* histogram: observations <= bound[i] */
    _Atomic uint64_t sum;                      /* histogram: sum of observations (integer units) */
    const double *bounds;                      /* histogram upper bounds, ascending */
    size_t n_bounds;
    double scale;         /* histogram: rendered value = stored / scale (e.g. µs → s) */
    dm_gauge_form_t form; /* gauges: how the value renders */
    struct dm_metric *next;
    struct dm_metric *hnext; /* registry's hash chain (name, labels) */
    uint64_t age;            /* creation rank: newer series render first */
} dm_metric_t;

typedef struct dm_metrics dm_metrics_t;

/* A new, empty registry. */
dm_metrics_t *dm_metrics_new(void);

/* Frees the registry and every metric in it. */
void dm_metrics_free(dm_metrics_t *m);

/* Registers (or returns the existing) metric with this name and labels.
 * labels is NULL or "k=\"v\",k2=\"v2\"". NULL when out of memory or when name
 * is already registered with another kind. */
dm_metric_t *dm_metrics_counter(dm_metrics_t *m, const char *name, const char *help,
                                const char *labels);
dm_metric_t *dm_metrics_gauge(dm_metrics_t *m, const char *name, const char *help,
                              const char *labels);

/* A gauge holding a wall-clock time in ms (dm_wall_ms), rendered as seconds
 * since the epoch (form DM_GAUGE_TIME_MS) or as seconds elapsed since then, 0
 * while it holds 0 (DM_GAUGE_AGE_MS). Set it with dm_metric_set. */
dm_metric_t *dm_metrics_time_gauge(dm_metrics_t *m, const char *name, const char *help,
                                   const char *labels, dm_gauge_form_t form);

/* The value a gauge renders now (its form applied), in its rendered unit. */
double dm_metric_gauge_value(const dm_metric_t *g, int64_t now_ms);

/* A histogram of integer observations (e.g. microseconds) with the given
 * upper bounds in rendered units; scale converts observations to those units
 * (1e6 for µs rendered as seconds). At most DM_HIST_BUCKETS bounds. */
dm_metric_t *dm_metrics_histogram(dm_metrics_t *m, const char *name, const char *help,
                                  const char *labels, const double *bounds, size_t n_bounds,
                                  double scale);

/* Removes and frees every metric whose labels contain match (e.g. when a
 * pipeline is deleted). Callers must no longer use those handles. */
void dm_metrics_remove_matching(dm_metrics_t *m, const char *match);

static inline void dm_metric_add(dm_metric_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(&c->count, n, memory_order_relaxed);
}

static inline void dm_metric_set(dm_metric_t *g, int64_t v)
{
    atomic_store_explicit(&g->gauge, v, memory_order_relaxed);
}

static inline void dm_metric_gauge_add(dm_metric_t *g, int64_t v)
{
    atomic_fetch_add_explicit(&g->gauge, v, memory_order_relaxed);
}

/* Records one observation (in the histogram's integer unit). */
void dm_metric_observe(dm_metric_t *h, uint64_t v);

/* Observations gathered without atomics (one thread, e.g. a batch's records),
 * then added to the histogram at once: a per-record loop pays no atomic
 * operation. Zero-initialise, dm_metric_local_observe each value, then
 * dm_metric_observe_local. */
typedef struct dm_metric_local {
    uint64_t buckets[DM_HIST_BUCKETS];
    uint64_t count, sum;
} dm_metric_local_t;

void dm_metric_local_observe(const dm_metric_t *h, dm_metric_local_t *l, uint64_t v);
void dm_metric_observe_local(dm_metric_t *h, const dm_metric_local_t *l);

/* Calls fn for every metric, under the registry's lock (fn must not call
 * into m). For sending a registry's values elsewhere (a worker's to its
 * controller). */
void dm_metrics_each(dm_metrics_t *m, void (*fn)(void *ctx, const dm_metric_t *x), void *ctx);

/* Appends every metric in the Prometheus text exposition format (0.0.4). */
dm_err_t dm_metrics_render(dm_metrics_t *m, dm_buf_t *out);

/* Escapes a label value (backslash, quote, newline) into out. */
void dm_metrics_escape(const char *value, char *out, size_t cap);

#endif
