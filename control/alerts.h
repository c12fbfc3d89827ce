/* control/alerts.h — default alert rules and dashboards for every pipeline
 * and source, and their evaluation inside the controller.
 *
 * Rules are generated from the catalog (the stored Pipeline and Source
 * documents), each object's spec.alerts overriding thresholds, durations and
 * which rules run. One rule model renders both ways:
 *   - as a Prometheus rules file (PromQL; GET /api/v1/alerts/rules), and
 *   - as what the in-process evaluator computes from the same /metrics text
 *     a Prometheus would scrape (dm_alerts_eval_*), so a single `datamesh up`
 *     alerts without Prometheus and both say the same.
 *
 *   dm_alert_rules_t *rules = dm_alert_rules_from_catalog(pipelines, sources, &err);
 *   dm_alert_rules_yaml(rules, &buf);            // the rules file
 *   dm_alert_eval_t *ev = dm_alert_eval_new(&opt, &err);
 *   dm_alert_eval_tick(ev, rules, metrics_text, now_ms);   // pending → firing → resolved
 *   json_t *list = dm_alert_eval_json(ev);
 *
 * Threads: rules are immutable once built (any thread). The evaluator's
 * functions take its lock; its notifier runs on a thread of its own.
 */
#ifndef DM_CONTROL_ALERTS_H
#define DM_CONTROL_ALERTS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/error.h"
#include "core/metrics.h"

/* ---- the rule model ------------------------------------------------------------------ */

/* One series selector: a metric name and up to two label matchers (a label
 * equal to value, or starting with it when prefix). */
typedef struct dm_alert_sel {
    const char *metric;
    struct {
        const char *label;
        char value[80];
        bool prefix;
    } m[2];
    int n_m;
} dm_alert_sel_t;

/* How a term reduces the series its selectors match to one number. */
typedef enum {
    DM_ALERT_MAX,      /* max(...) */
    DM_ALERT_MIN,      /* min(...) */
    DM_ALERT_SUM,      /* sum(...) */
    DM_ALERT_RATE,     /* sum(rate(...[window])) per second */
    DM_ALERT_INCREASE, /* sum(increase(...[window])) */
} dm_alert_fn_t;

typedef struct dm_alert_term {
    dm_alert_fn_t fn;
    dm_alert_sel_t sel[2]; /* joined with `or` */
    int n_sel;
    bool age; /* time() - the reduced value */
} dm_alert_term_t;

/* term op threshold, or term / den op threshold when ratio. */
typedef struct dm_alert_cond {
    dm_alert_term_t a, den;
    bool ratio;
    char op[3]; /* ">", ">=", "==" */
    double threshold;
} dm_alert_cond_t;

typedef struct dm_alert_rule {
    char alert[64];          /* Prometheus alertname: DatameshPipelineLagHigh */
    char id[32];             /* the name spec.alerts.disabled uses: lag, stalled, … */
    char severity[16];       /* warning | critical */
    char kind[16];           /* Pipeline | Source */
    char object[64];         /* the pipeline's or source's name */
    char owner[64];          /* metadata.owner ("" when none) */
    json_t *labels;          /* extra labels from spec.alerts.labels (owned; may be NULL) */
    dm_alert_cond_t cond[2]; /* all must hold (`and`) */
    int n_cond;
    int64_t for_ms, window_ms;
    char summary[256];
} dm_alert_rule_t;

typedef struct dm_alert_rules {
    dm_alert_rule_t *items;
    size_t n, cap;
} dm_alert_rules_t;

/* Every rule id a Pipeline or Source may have (NULL-terminated), for
 * spec.alerts.disabled and the docs. */
extern const char *const dm_alert_pipeline_rule_ids[];
extern const char *const dm_alert_source_rule_ids[];

/* Checks a spec.alerts mapping of a document of kind ("Pipeline" or
 * "Source") at path (e.g. "spec.alerts"); errors start with the
 * file:line:col locate gives (may be NULL) and name the field path. */
dm_err_t dm_alerts_check_spec(const char *kind, const json_t *alerts, const char *path,
                              dm_config_locate_fn locate, void *locate_ctx, dm_error_t *err);

/* The rules of the stored documents: pipelines and sources are JSON arrays of
 * documents (borrowed). A document whose spec.alerts does not check is
 * skipped with its defaults (apply refuses such documents; this only happens
 * to documents stored before). NULL when out of memory. */
dm_alert_rules_t *dm_alert_rules_from_catalog(const json_t *pipelines, const json_t *sources);

void dm_alert_rules_free(dm_alert_rules_t *rules);

/* Appends the rules of one stored document (a Pipeline when pipeline, else a
 * Source; borrowed) to rules, as dm_alert_rules_from_catalog does for each of
 * its documents. False when out of memory. */
bool dm_alert_rules_add(dm_alert_rules_t *rules, const json_t *doc, bool pipeline);

/* Empties rules, keeping its storage for the next dm_alert_rules_add. */
void dm_alert_rules_clear(dm_alert_rules_t *rules);

/* The PromQL expression of a rule into out (cap bytes). */
void dm_alert_rule_expr(const dm_alert_rule_t *r, char *out, size_t cap);

/* The rules as a Prometheus rules file (YAML): one group per object. */
dm_err_t dm_alert_rules_yaml(const dm_alert_rules_t *rules, dm_buf_t *out);

/* ---- the metrics text ------------------------------------------------------------------ */

/* One sample of the Prometheus text format: name, labels, value. */
typedef struct dm_alert_sample {
    char *name;
    json_t *labels; /* {label: value}, owned */
    double value;
} dm_alert_sample_t;

typedef struct dm_alert_samples {
    dm_alert_sample_t *items;
    size_t n, cap;
    /* "metric|label|value" → [index, …]: the samples a rule's first matcher can
     * match (task and sink values up to their first '/', the object's name;
     * pg_source and object whole), so evaluating thousands of objects' rules
     * does not scan every sample for each */
    json_t *index;
} dm_alert_samples_t;

/* The samples of metric whose label is value (a task or sink label: the
 * "NAME/" prefix of its values) as a JSON array of indexes (borrowed), or
 * NULL when there are none. */
const json_t *dm_alert_samples_lookup(const dm_alert_samples_t *s, const char *metric,
                                      const char *label, const char *value);

/* Parses exposition text (0.0.4) into samples (appended to out). Lines
 * that do not parse are skipped. */
dm_err_t dm_alert_samples_parse(const char *text, size_t len, dm_alert_samples_t *out);
void dm_alert_samples_free(dm_alert_samples_t *s);

/* ---- dashboards ------------------------------------------------------------------------- */

/* A Grafana dashboard (JSON, new reference) for pipeline: panels for the
 * metrics the pipeline has in samples (what /metrics shows now), the
 * Prometheus datasource as the template variable ${datasource}. */
json_t *dm_alert_dashboard(const char *pipeline, const dm_alert_samples_t *samples);

/* ---- the evaluator ---------------------------------------------------------------------- */

typedef struct dm_alert_eval dm_alert_eval_t;

typedef struct dm_alert_eval_options {
    const char *webhook;      /* Alertmanager webhook receiver URL; NULL: no notifications */
    const char *external_url; /* the controller's URL, in payloads */
    int max_attempts;         /* per notification (0: 8) */
    int64_t retry_min_ms;     /* first backoff (0: 500 ms), doubling up to 30 s */
    dm_metrics_t *metrics;    /* may be NULL: counters of notifications */
} dm_alert_eval_options_t;

/* A new evaluator (starts its notifier thread when opt->webhook is set). */
dm_alert_eval_t *dm_alert_eval_new(const dm_alert_eval_options_t *opt, dm_error_t *err);

/* Stops the notifier (a notification in flight finishes or times out) and
 * frees the evaluator. */
void dm_alert_eval_free(dm_alert_eval_t *ev);

/* Evaluates every rule against samples at now_ms: a rule whose conditions
 * hold turns pending, firing once they held for its for-duration, resolved
 * when they stop holding. Transitions to firing and resolved are queued for
 * the webhook. */
void dm_alert_eval_tick(dm_alert_eval_t *ev, const dm_alert_rules_t *rules,
                        const dm_alert_samples_t *samples, int64_t now_ms);

/* The same tick in parts, so the rules need not all be in memory at once:
 * begin, then rules for each part of the rules (every rule of the tick once),
 * then end, which forgets the alerts whose rules were not given and queues
 * the webhook payloads. The evaluator is locked from begin to end; one thread. */
void dm_alert_eval_begin(dm_alert_eval_t *ev);
void dm_alert_eval_rules(dm_alert_eval_t *ev, const dm_alert_rules_t *rules,
                         const dm_alert_samples_t *samples, int64_t now_ms);
void dm_alert_eval_end(dm_alert_eval_t *ev, int64_t now_ms);
/* Ends a tick whose rules could not all be given: transitions so far are
 * queued, no alert is forgotten. */
void dm_alert_eval_abort(dm_alert_eval_t *ev, int64_t now_ms);

/* The alerts that are pending, firing or resolved (new reference):
 * [{alert, rule, severity, kind, object, owner, state, value, active_since,
 * fired_at, resolved_at, summary, labels}], kind and object filtering when
 * not NULL. */
json_t *dm_alert_eval_json(dm_alert_eval_t *ev, const char *kind, const char *object);

#endif
