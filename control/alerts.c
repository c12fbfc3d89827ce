/* control/alerts.c — default alert rules from the catalog, as PromQL and a
 * Prometheus rules file; the metrics text parser; Grafana dashboards.
 * The evaluator is control/alerts_eval.c. */
#include "control/alerts.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- defaults and spec.alerts -------------------------------------------------------- */

const char *const dm_alert_pipeline_rule_ids[] = {
    "lag", "stalled", "dead_letter_ratio", "restart_loop", "failed", "stale_commit", NULL};
const char *const dm_alert_source_rule_ids[] = {"lag", "slot_wal", "stopped", "restart_loop", NULL};

/* What spec.alerts may change; every field starts at its default. */
typedef struct overrides {
    double lag_warning, lag_critical; /* seconds */
    double stale_commit;              /* seconds */
    double dead_letter_ratio;
    double restarts;
    double slot_wal_bytes;
    int64_t for_ms;    /* -1: each rule's own */
    int64_t window_ms; /* rates and increases */
    const json_t *disabled, *labels;
} overrides_t;

static void defaults(overrides_t *o)
{
    *o = (overrides_t){.lag_warning = 300,
                       .lag_critical = 900,
                       .stale_commit = 900,
                       .dead_letter_ratio = 0.01,
                       .restarts = 3,
                       .slot_wal_bytes = 1073741824.0,
                       .for_ms = -1,
                       .window_ms = 10 * 60 * 1000};
}

typedef struct check {
    const char *path;
    dm_config_locate_fn locate;
    void *locate_ctx;
    dm_error_t *err;
} check_t;

static dm_err_t fail(check_t *c, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static dm_err_t fail(check_t *c, const char *key, const char *fmt, ...)
{
    char path[256], loc[300] = "", msg[600];
    snprintf(path, sizeof(path), "%s%s%s", c->path, key ? "." : "", key ? key : "");
    if (c->locate) c->locate(c->locate_ctx, path, loc, sizeof(loc));
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return dm_error_set(c->err, DM_ERR_CONFIG_RANGE, "%s%s%s: %s", loc, loc[0] ? ": " : "", path,
                        msg);
}

static bool in_list(const char *const *list, const char *s)
{
    for (size_t i = 0; list[i]; i++)
        if (!strcmp(list[i], s)) return true;
    return false;
}

static void join(const char *const *list, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; list[i] && o < cap; i++)
        o += (size_t)snprintf(out + o, cap - o, "%s%s", i ? ", " : "", list[i]);
}

static dm_err_t positive(check_t *c, const json_t *v, const char *key, double *out)
{
    if (!json_is_number(v) || json_number_value(v) <= 0)
        return fail(c, key, "expected a number above 0, got %s", dm_config_json_kind(v));
    *out = json_number_value(v);
    return DM_OK;
}

static dm_err_t duration(check_t *c, const json_t *v, const char *key, bool zero_ok, int64_t *out)
{
    int64_t ms = -1;
    if (json_is_integer(v))
        ms = json_integer_value(v);
    else if (!json_is_string(v) || dm_parse_duration_ms(json_string_value(v), &ms))
        ms = -1;
    if (ms < 0 || (!zero_ok && ms == 0))
        return fail(c, key,
                    "expected a duration (\"30s\", \"5m\", \"1h\") or a number of milliseconds%s",
                    zero_ok ? "" : " above 0");
    *out = ms;
    return DM_OK;
}

static bool label_name_ok(const char *s)
{
    if (!*s || !(isalpha((unsigned char)*s) || *s == '_')) return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_') return false;
    return true;
}

/* Reads spec.alerts into o, checking as it goes (c->err set on the first problem). */
static dm_err_t read_overrides(check_t *c, const char *kind, const json_t *a, overrides_t *o)
{
    bool source = !strcmp(kind, "Source");
    defaults(o);
    if (!a) return DM_OK;
    if (!json_is_object(a))
        return fail(c, NULL, "expected a mapping, got %s", dm_config_json_kind(a));
    static const char *const pkeys[] = {
        "disabled",          "for",      "window", "labels", "lag_seconds", "stale_commit_seconds",
        "dead_letter_ratio", "restarts", NULL};
    static const char *const skeys[] = {"disabled",    "for",      "window",         "labels",
                                        "lag_seconds", "restarts", "slot_wal_bytes", NULL};
    const char *const *keys = source ? skeys : pkeys;
    const char *k;
    json_t *v;
    dm_err_t rc;
    json_object_foreach((json_t *)a, k, v)
    {
        char list[300];
        if (!in_list(keys, k)) {
            join(keys, list, sizeof(list));
            return fail(c, k, "unknown key '%s'; allowed: %s", k, list);
        }
        if (!strcmp(k, "disabled")) {
            const char *const *ids = source ? dm_alert_source_rule_ids : dm_alert_pipeline_rule_ids;
            if (!json_is_array(v))
                return fail(c, k, "expected a list of rule names, got %s", dm_config_json_kind(v));
            size_t i;
            json_t *it;
            json_array_foreach(v, i, it)
            {
                char key[64];
                snprintf(key, sizeof(key), "disabled[%zu]", i);
                if (!json_is_string(it) || !in_list(ids, json_string_value(it))) {
                    join(ids, list, sizeof(list));
                    return fail(c, key, "'%s' is not a rule of a %s; rules: %s",
                                json_is_string(it) ? json_string_value(it) : "(not a string)", kind,
                                list);
                }
            }
            o->disabled = v;
        } else if (!strcmp(k, "for")) {
            if ((rc = duration(c, v, k, true, &o->for_ms))) return rc;
        } else if (!strcmp(k, "window")) {
            if ((rc = duration(c, v, k, false, &o->window_ms))) return rc;
        } else if (!strcmp(k, "labels")) {
            if (!json_is_object(v))
                return fail(c, k, "expected a mapping of label: value, got %s",
                            dm_config_json_kind(v));
            const char *lk;
            json_t *lv;
            json_object_foreach(v, lk, lv)
            {
                char key[200];
                snprintf(key, sizeof(key), "labels.%s", lk);
                if (!label_name_ok(lk))
                    return fail(c, key, "'%s' is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)", lk);
                if (!strcmp(lk, "severity") || !strcmp(lk, "owner") || !strcmp(lk, "alertname") ||
                    !strcmp(lk, "datamesh_rule") || !strcmp(lk, "pipeline") ||
                    !strcmp(lk, "source"))
                    return fail(c, key, "label '%s' is set by datamesh", lk);
                if (!json_is_string(lv))
                    return fail(c, key, "expected a string, got %s", dm_config_json_kind(lv));
            }
            o->labels = v;
        } else if (!strcmp(k, "lag_seconds")) {
            if (!json_is_object(v))
                return fail(c, k, "expected {warning: SECONDS, critical: SECONDS}, got %s",
                            dm_config_json_kind(v));
            const char *lk;
            json_t *lv;
            json_object_foreach(v, lk, lv)
            {
                char key[64];
                snprintf(key, sizeof(key), "lag_seconds.%s", lk);
                if (strcmp(lk, "warning") && strcmp(lk, "critical"))
                    return fail(c, key, "unknown key '%s'; allowed: warning, critical", lk);
                if ((rc = positive(c, lv, key,
                                   !strcmp(lk, "warning") ? &o->lag_warning : &o->lag_critical)))
                    return rc;
            }
            if (o->lag_warning > o->lag_critical)
                return fail(c, k, "warning (%g) is above critical (%g)", o->lag_warning,
                            o->lag_critical);
        } else if (!strcmp(k, "stale_commit_seconds")) {
            if ((rc = positive(c, v, k, &o->stale_commit))) return rc;
        } else if (!strcmp(k, "dead_letter_ratio")) {
            if ((rc = positive(c, v, k, &o->dead_letter_ratio))) return rc;
            if (o->dead_letter_ratio > 1) return fail(c, k, "a ratio is at most 1");
        } else if (!strcmp(k, "restarts")) {
            if (!json_is_integer(v) || json_integer_value(v) < 1)
                return fail(c, k, "expected a whole number of restarts, at least 1");
            o->restarts = (double)json_integer_value(v);
        } else if (!strcmp(k, "slot_wal_bytes")) {
            if ((rc = positive(c, v, k, &o->slot_wal_bytes))) return rc;
        }
    }
    return DM_OK;
}

dm_err_t dm_alerts_check_spec(const char *kind, const json_t *alerts, const char *path,
                              dm_config_locate_fn locate, void *locate_ctx, dm_error_t *err)
{
    check_t c = {path, locate, locate_ctx, err};
    overrides_t o;
    return read_overrides(&c, kind, alerts, &o);
}

/* ---- generating the rules ---------------------------------------------------------- */

static bool disabled(const overrides_t *o, const char *id)
{
    size_t i;
    json_t *it;
    json_array_foreach(o->disabled, i, it) if (!strcmp(json_string_value(it), id)) return true;
    return false;
}

static dm_alert_sel_t sel_prefix(const char *metric, const char *label, const char *object)
{
    dm_alert_sel_t s = {.metric = metric, .n_m = 1};
    s.m[0].label = label;
    snprintf(s.m[0].value, sizeof(s.m[0].value), "%s/", object);
    s.m[0].prefix = true;
    return s;
}

static dm_alert_sel_t sel_eq(const char *metric, const char *label, const char *value)
{
    dm_alert_sel_t s = {.metric = metric, .n_m = 1};
    s.m[0].label = label;
    snprintf(s.m[0].value, sizeof(s.m[0].value), "%s", value);
    return s;
}

/* A unit metric of the object: object and kind labels (object first: the
 * samples' index files them by it). */
static dm_alert_sel_t sel_unit(const char *metric, const char *kind, const char *object)
{
    dm_alert_sel_t s = sel_eq(metric, "object", object);
    s.m[1].label = "kind";
    snprintf(s.m[1].value, sizeof(s.m[1].value), "%s", kind);
    s.n_m = 2;
    return s;
}

static dm_alert_term_t term1(dm_alert_fn_t fn, dm_alert_sel_t a)
{
    return (dm_alert_term_t){.fn = fn, .sel = {a}, .n_sel = 1};
}

static dm_alert_term_t term2(dm_alert_fn_t fn, dm_alert_sel_t a, dm_alert_sel_t b)
{
    return (dm_alert_term_t){.fn = fn, .sel = {a, b}, .n_sel = 2};
}

static dm_alert_cond_t cond(dm_alert_term_t a, const char *op, double threshold)
{
    dm_alert_cond_t c = {.a = a, .threshold = threshold};
    snprintf(c.op, sizeof(c.op), "%s", op);
    return c;
}

typedef struct gen {
    dm_alert_rules_t *rules;
    const char *kind, *object, *owner;
    const overrides_t *o;
    bool nomem;
} gen_t;

static dm_alert_rule_t *add(gen_t *g, const char *alert, const char *id, const char *severity,
                            int64_t for_ms, const char *summary)
{
    dm_alert_rules_t *rs = g->rules;
    if (disabled(g->o, id)) return NULL;
    if (rs->n == rs->cap) {
        size_t cap = rs->cap ? rs->cap * 2 : 32;
        dm_alert_rule_t *grown = realloc(rs->items, cap * sizeof(*grown));
        if (!grown) {
            g->nomem = true;
            return NULL;
        }
        rs->items = grown;
        rs->cap = cap;
    }
    dm_alert_rule_t *r = &rs->items[rs->n++];
    memset(r, 0, sizeof(*r));
    snprintf(r->alert, sizeof(r->alert), "%s", alert);
    snprintf(r->id, sizeof(r->id), "%s", id);
    snprintf(r->severity, sizeof(r->severity), "%s", severity);
    snprintf(r->kind, sizeof(r->kind), "%s", g->kind);
    snprintf(r->object, sizeof(r->object), "%s", g->object);
    snprintf(r->owner, sizeof(r->owner), "%s", g->owner ? g->owner : "");
    snprintf(r->summary, sizeof(r->summary), "%s %s: %s", g->kind, g->object, summary);
    r->labels = g->o->labels ? json_incref((json_t *)g->o->labels) : NULL;
    r->for_ms = g->o->for_ms >= 0 ? g->o->for_ms : for_ms;
    r->window_ms = g->o->window_ms;
    return r;
}

static bool has_sink(const json_t *spec)
{
    size_t i;
    json_t *to;
    json_array_foreach(json_object_get(spec, "to"), i,
                       to) if (json_object_get(to, "sink")) return true;
    return false;
}

static void pipeline_rules(gen_t *g, const json_t *spec)
{
    const char *p = g->object;
    const overrides_t *o = g->o;
    bool sinks = has_sink(spec);
    dm_alert_sel_t task_lag = sel_prefix("datamesh_task_input_lag_seconds", "task", p);
    dm_alert_sel_t sink_lag = sel_prefix("datamesh_sink_input_lag_seconds", "sink", p);
    dm_alert_term_t lag =
        sinks ? term2(DM_ALERT_MAX, task_lag, sink_lag) : term1(DM_ALERT_MAX, task_lag);
    dm_alert_rule_t *r;
    const char *sev[2] = {"warning", "critical"};
    double thr[2] = {o->lag_warning, o->lag_critical};
    for (int i = 0; i < 2; i++)
        if ((r = add(g, "DatameshPipelineLagHigh", "lag", sev[i], 5 * 60000,
                     "the oldest record not processed yet is older than its lag threshold"))) {
            r->cond[r->n_cond++] = cond(lag, ">", thr[i]);
        }
    if ((r = add(g, "DatameshPipelineStalled", "stalled", "critical", 10 * 60000,
                 "records wait in its input but none are processed"))) {
        r->cond[r->n_cond++] = cond(
            term1(DM_ALERT_SUM, sel_prefix("datamesh_task_input_lag_records", "task", p)), ">", 0);
        r->cond[r->n_cond++] = cond(
            term1(DM_ALERT_RATE, sel_prefix("datamesh_task_records_in_total", "task", p)), "==", 0);
    }
    if ((r = add(g, "DatameshPipelineDeadLetters", "dead_letter_ratio", "warning", 5 * 60000,
                 "a share of its records above the threshold goes to the dead-letter topic"))) {
        dm_alert_sel_t dl = sel_prefix("datamesh_task_dead_letters_total", "task", p);
        dm_alert_cond_t c =
            cond(sinks ? term2(DM_ALERT_RATE, dl,
                               sel_prefix("datamesh_sink_dead_letters_total", "sink", p))
                       : term1(DM_ALERT_RATE, dl),
                 ">", o->dead_letter_ratio);
        c.ratio = true;
        c.den = term1(DM_ALERT_RATE, sel_prefix("datamesh_task_records_in_total", "task", p));
        r->cond[r->n_cond++] = c;
    }
    if ((r = add(g, "DatameshPipelineRestartLoop", "restart_loop", "warning", 0,
                 "its units keep starting over after errors"))) {
        r->cond[r->n_cond++] =
            cond(term1(DM_ALERT_INCREASE, sel_unit("datamesh_unit_restarts_total", "Pipeline", p)),
                 ">", o->restarts);
    }
    if ((r = add(g, "DatameshPipelineFailed", "failed", "critical", 60000,
                 "a unit stopped on an error retrying cannot fix (e.g. an incompatible schema)"))) {
        r->cond[r->n_cond++] =
            cond(term1(DM_ALERT_MAX, sel_unit("datamesh_unit_failed", "Pipeline", p)), ">", 0);
    }
    if (sinks && (r = add(g, "DatameshSinkCommitStale", "stale_commit", "critical", 5 * 60000,
                          "a sink has records to write and has not committed for too long"))) {
        dm_alert_term_t t = term1(DM_ALERT_MIN, sel_prefix("datamesh_sink_last_commit_timestamp_"
                                                           "seconds",
                                                           "sink", p));
        t.age = true;
        r->cond[r->n_cond++] = cond(t, ">", o->stale_commit);
        /* records waiting: a batch read and not written yet (the records
         * gauge counts only what is not read yet, and stops moving while the
         * sink retries one batch) */
        r->cond[r->n_cond++] = cond(
            term1(DM_ALERT_MAX, sel_prefix("datamesh_sink_input_lag_seconds", "sink", p)), ">", 0);
    }
}

static void source_rules(gen_t *g, const json_t *spec)
{
    const char *s = g->object;
    const overrides_t *o = g->o;
    const char *connector = json_string_value(json_object_get(spec, "connector"));
    bool pg = connector && !strcmp(connector, "postgres");
    dm_alert_rule_t *r;
    if (pg) {
        const char *sev[2] = {"warning", "critical"};
        double thr[2] = {o->lag_warning, o->lag_critical};
        for (int i = 0; i < 2; i++)
            if ((r = add(g, "DatameshSourceLagHigh", "lag", sev[i], 5 * 60000,
                         "the oldest change not yet in its topic is older than its threshold"))) {
                r->cond[r->n_cond++] =
                    cond(term1(DM_ALERT_MAX,
                               sel_eq("datamesh_postgres_slot_lag_seconds", "pg_source", s)),
                         ">", thr[i]);
            }
        if ((r = add(g, "DatameshPostgresSlotWalRetained", "slot_wal", "warning", 5 * 60000,
                     "its replication slot holds more WAL than the threshold on the server"))) {
            r->cond[r->n_cond++] = cond(
                term1(DM_ALERT_MAX, sel_eq("datamesh_postgres_slot_lag_bytes", "pg_source", s)),
                ">", o->slot_wal_bytes);
        }
    }
    if ((r = add(g, "DatameshSourceStopped", "stopped", "critical", 60000,
                 "its connector stopped on an error retrying cannot fix (e.g. an incompatible "
                 "schema)"))) {
        r->cond[r->n_cond++] =
            cond(term1(DM_ALERT_MAX, sel_unit("datamesh_unit_failed", "Source", s)), ">", 0);
    }
    if ((r = add(g, "DatameshSourceRestartLoop", "restart_loop", "warning", 0,
                 "its connector keeps starting over after errors"))) {
        r->cond[r->n_cond++] =
            cond(term1(DM_ALERT_INCREASE, sel_unit("datamesh_unit_restarts_total", "Source", s)),
                 ">", o->restarts);
    }
}

static void object_rules(gen_t *g, const json_t *doc, bool pipeline)
{
    const json_t *md = json_object_get(doc, "metadata");
    const json_t *spec = json_object_get(doc, "spec");
    g->object = json_string_value(json_object_get(md, "name"));
    g->owner = json_string_value(json_object_get(md, "owner"));
    g->kind = pipeline ? "Pipeline" : "Source";
    if (!g->object) return;
    overrides_t o;
    dm_error_t ignored = {0};
    check_t c = {"spec.alerts", NULL, NULL, &ignored};
    if (read_overrides(&c, g->kind, json_object_get(spec, "alerts"), &o)) defaults(&o);
    g->o = &o;
    if (pipeline)
        pipeline_rules(g, spec);
    else
        source_rules(g, spec);
    g->o = NULL;
}

dm_alert_rules_t *dm_alert_rules_from_catalog(const json_t *pipelines, const json_t *sources)
{
    dm_alert_rules_t *rules = calloc(1, sizeof(*rules));
    if (!rules) return NULL;
    gen_t g = {.rules = rules};
    size_t i;
    json_t *doc;
    json_array_foreach(pipelines, i, doc) object_rules(&g, doc, true);
    json_array_foreach(sources, i, doc) object_rules(&g, doc, false);
    if (g.nomem) {
        dm_alert_rules_free(rules);
        return NULL;
    }
    return rules;
}

bool dm_alert_rules_add(dm_alert_rules_t *rules, const json_t *doc, bool pipeline)
{
    gen_t g = {.rules = rules};
    object_rules(&g, doc, pipeline);
    return !g.nomem;
}

void dm_alert_rules_clear(dm_alert_rules_t *rules)
{
    for (size_t i = 0; i < rules->n; i++)
        json_decref(rules->items[i].labels);
    rules->n = 0;
}

void dm_alert_rules_free(dm_alert_rules_t *rules)
{
    if (!rules) return;
    dm_alert_rules_clear(rules);
    free(rules->items);
    free(rules);
}

/* ---- PromQL and the rules file ------------------------------------------------------- */

typedef struct out {
    char *p;
    size_t cap, o;
} out_t;

static void put(out_t *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(out_t *w, const char *fmt, ...)
{
    if (w->o >= w->cap) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(w->p + w->o, w->cap - w->o, fmt, ap);
    va_end(ap);
    if (n > 0) w->o += (size_t)n;
}

/* A label value in a PromQL string; a prefix becomes an anchored regex
 * (names are [a-z0-9-_.]: only '.' needs escaping, as "\\."). */
static void put_matcher(out_t *w, const char *label, const char *value, bool prefix)
{
    put(w, "%s%s\"", label, prefix ? "=~" : "=");
    for (const char *s = value; *s; s++) {
        if (prefix && strchr(".+*?()[]{}|^$\\", *s))
            put(w, "\\\\%c", *s);
        else if (*s == '"' || *s == '\\')
            put(w, "\\%c", *s);
        else
            put(w, "%c", *s);
    }
    put(w, "%s\"", prefix ? ".*" : "");
}

static void put_duration(out_t *w, int64_t ms)
{
    if (ms % 3600000 == 0 && ms)
        put(w, "%lldh", (long long)(ms / 3600000));
    else if (ms % 60000 == 0 && ms)
        put(w, "%lldm", (long long)(ms / 60000));
    else if (ms % 1000 == 0)
        put(w, "%llds", (long long)(ms / 1000));
    else
        put(w, "%lldms", (long long)ms);
}

static void put_sel(out_t *w, const dm_alert_sel_t *s)
{
    put(w, "%s{", s->metric);
    for (int i = 0; i < s->n_m; i++) {
        if (i) put(w, ",");
        put_matcher(w, s->m[i].label, s->m[i].value, s->m[i].prefix);
    }
    put(w, "}");
}

static void put_term(out_t *w, const dm_alert_term_t *t, int64_t window_ms)
{
    static const char *const agg[] = {"max", "min", "sum", "sum", "sum"};
    if (t->age) put(w, "time() - ");
    put(w, "%s(", agg[t->fn]);
    for (int i = 0; i < t->n_sel; i++) {
        if (i) put(w, " or ");
        bool ranged = t->fn == DM_ALERT_RATE || t->fn == DM_ALERT_INCREASE;
        if (ranged) put(w, "%s(", t->fn == DM_ALERT_RATE ? "rate" : "increase");
        put_sel(w, &t->sel[i]);
        if (ranged) {
            put(w, "[");
            put_duration(w, window_ms);
            put(w, "])");
        }
    }
    put(w, ")");
}

void dm_alert_rule_expr(const dm_alert_rule_t *r, char *buf, size_t cap)
{
    out_t w = {buf, cap, 0};
    buf[0] = '\0';
    for (int i = 0; i < r->n_cond; i++) {
        const dm_alert_cond_t *c = &r->cond[i];
        if (i) put(&w, " and ");
        bool paren = r->n_cond > 1 || c->ratio || c->a.age;
        if (paren) put(&w, "(");
        put_term(&w, &c->a, r->window_ms);
        if (c->ratio) {
            put(&w, ") / (");
            put_term(&w, &c->den, r->window_ms);
        }
        if (paren) put(&w, ")");
        put(&w, " %s %.17g", c->op, c->threshold);
    }
}

/* A YAML scalar: JSON's double-quoted string is one. */
static dm_err_t put_yaml_string(dm_buf_t *out, const char *s)
{
    json_t *j = json_string(s);
    char *text = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
    json_decref(j);
    if (!text) return DM_ERR_NOMEM;
    dm_err_t rc = dm_buf_printf(out, "%s", text);
    free(text);
    return rc;
}

dm_err_t dm_alert_rules_yaml(const dm_alert_rules_t *rules, dm_buf_t *out)
{
    dm_err_t rc = dm_buf_printf(out, "# datamesh alert rules, generated from the catalog\ngroups:");
    if (!rules->n && !rc) rc = dm_buf_printf(out, " []");
    rc = rc ? rc : dm_buf_printf(out, "\n");
    char expr[4096], dur[32];
    for (size_t i = 0; i < rules->n && !rc; i++) {
        const dm_alert_rule_t *r = &rules->items[i];
        if (!i || strcmp(rules->items[i - 1].object, r->object) ||
            strcmp(rules->items[i - 1].kind, r->kind)) {
            char group[128];
            snprintf(group, sizeof(group), "datamesh.%s.%s",
                     !strcmp(r->kind, "Pipeline") ? "pipeline" : "source", r->object);
            rc = dm_buf_printf(out, "  - name: ");
            rc = rc ? rc : put_yaml_string(out, group);
            rc = rc ? rc : dm_buf_printf(out, "\n    rules:\n");
        }
        dm_alert_rule_expr(r, expr, sizeof(expr));
        out_t w = {dur, sizeof(dur), 0};
        put_duration(&w, r->for_ms);
        rc = rc ? rc : dm_buf_printf(out, "      - alert: %s\n        expr: ", r->alert);
        rc = rc ? rc : put_yaml_string(out, expr);
        rc = rc ? rc : dm_buf_printf(out, "\n        for: %s\n        labels:\n", dur);
        rc = rc ? rc : dm_buf_printf(out, "          severity: %s\n          owner: ", r->severity);
        rc = rc ? rc : put_yaml_string(out, r->owner);
        rc = rc ? rc
                : dm_buf_printf(out, "\n          %s: ",
                                !strcmp(r->kind, "Pipeline") ? "pipeline" : "source");
        rc = rc ? rc : put_yaml_string(out, r->object);
        rc = rc ? rc : dm_buf_printf(out, "\n          datamesh_rule: %s\n", r->id);
        const char *k;
        json_t *v;
        json_object_foreach(r->labels, k, v)
        {
            rc = rc ? rc : dm_buf_printf(out, "          %s: ", k);
            rc = rc ? rc : put_yaml_string(out, json_string_value(v));
            rc = rc ? rc : dm_buf_printf(out, "\n");
        }
        rc = rc ? rc : dm_buf_printf(out, "        annotations:\n          summary: ");
        rc = rc ? rc : put_yaml_string(out, r->summary);
        rc = rc ? rc : dm_buf_printf(out, "\n");
    }
    return rc;
}

/* ---- the metrics text ------------------------------------------------------------------ */

static const char *skip_ws(const char *s, const char *end)
{
    while (s < end && (*s == ' ' || *s == '\t'))
        s++;
    return s;
}

/* Parses {k="v",...} at s; returns the character after '}' or NULL. */
static const char *parse_labels(const char *s, const char *end, json_t *labels)
{
    s++; /* '{' */
    char value[1024];
    for (;;) {
        s = skip_ws(s, end);
        if (s < end && *s == '}') return s + 1;
        const char *k = s;
        while (s < end && (isalnum((unsigned char)*s) || *s == '_'))
            s++;
        if (s == k || s >= end || *s != '=' || s + 1 >= end || s[1] != '"') return NULL;
        char key[128];
        snprintf(key, sizeof(key), "%.*s", (int)(s - k), k);
        s += 2;
        size_t o = 0;
        while (s < end && *s != '"') {
            char ch = *s++;
            if (ch == '\\' && s < end) {
                ch = *s++;
                if (ch == 'n') ch = '\n';
            }
            if (o + 1 < sizeof(value)) value[o++] = ch;
        }
        if (s >= end) return NULL;
        value[o] = '\0';
        s++;
        json_object_set_new(labels, key, json_string(value));
        s = skip_ws(s, end);
        if (s < end && *s == ',') s++;
    }
}

/* Files sample i under the keys its rules look it up by. */
static dm_err_t index_sample(dm_alert_samples_t *s, size_t i)
{
    static const char *const by_prefix[] = {"task", "sink"}, *const whole[] = {"pg_source",
                                                                               "object"};
    if (!s->index && !(s->index = json_object())) return DM_ERR_NOMEM;
    const dm_alert_sample_t *x = &s->items[i];
    for (int k = 0; k < 4; k++) {
        const char *label = k < 2 ? by_prefix[k] : whole[k - 2];
        const char *v = json_string_value(json_object_get(x->labels, label));
        if (!v) continue;
        const char *slash = k < 2 ? strchr(v, '/') : NULL;
        if (k < 2 && !slash) continue;
        char key[512];
        snprintf(key, sizeof(key), "%s|%s|%.*s", x->name, label,
                 slash ? (int)(slash - v + 1) : (int)strlen(v), v);
        json_t *list = json_object_get(s->index, key);
        if (!list && (!(list = json_array()) || json_object_set_new(s->index, key, list)))
            return DM_ERR_NOMEM;
        if (json_array_append_new(list, json_integer((json_int_t)i))) return DM_ERR_NOMEM;
    }
    return DM_OK;
}

dm_err_t dm_alert_samples_parse(const char *text, size_t len, dm_alert_samples_t *out)
{
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) eol = end;
        const char *s = skip_ws(p, eol);
        const char *line_end = eol;
        p = eol + 1;
        if (s >= line_end || *s == '#') continue;
        const char *n = s;
        while (s < line_end && (isalnum((unsigned char)*s) || *s == '_' || *s == ':'))
            s++;
        if (s == n) continue;
        json_t *labels = json_object();
        if (!labels) return DM_ERR_NOMEM;
        const char *name_end = s;
        if (s < line_end && *s == '{' && !(s = parse_labels(s, line_end, labels))) {
            json_decref(labels);
            continue;
        }
        s = skip_ws(s, line_end);
        char num[64];
        snprintf(num, sizeof(num), "%.*s", (int)(line_end - s), s);
        char *stop;
        double v = strtod(num, &stop);
        if (stop == num) {
            json_decref(labels);
            continue;
        }
        if (out->n == out->cap) {
            size_t cap = out->cap ? out->cap * 2 : 256;
            dm_alert_sample_t *grown = realloc(out->items, cap * sizeof(*grown));
            if (!grown) {
                json_decref(labels);
                return DM_ERR_NOMEM;
            }
            out->items = grown;
            out->cap = cap;
        }
        dm_alert_sample_t *x = &out->items[out->n];
        x->name = strndup(n, (size_t)(name_end - n));
        if (!x->name) {
            json_decref(labels);
            return DM_ERR_NOMEM;
        }
        x->labels = labels;
        x->value = v;
        if (index_sample(out, out->n)) return DM_ERR_NOMEM;
        out->n++;
    }
    return DM_OK;
}

const json_t *dm_alert_samples_lookup(const dm_alert_samples_t *s, const char *metric,
                                      const char *label, const char *value)
{
    char key[512];
    snprintf(key, sizeof(key), "%s|%s|%s", metric, label, value);
    return s->index ? json_object_get(s->index, key) : NULL;
}

void dm_alert_samples_free(dm_alert_samples_t *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->items[i].name);
        json_decref(s->items[i].labels);
    }
    json_decref(s->index);
    free(s->items);
    *s = (dm_alert_samples_t){0};
}

/* ---- dashboards ------------------------------------------------------------------------- */

/* Whether samples hold a series of metric whose label starts with prefix. */
static bool exists(const dm_alert_samples_t *s, const char *metric, const char *label,
                   const char *prefix)
{
    size_t n = strlen(prefix);
    for (size_t i = 0; i < s->n; i++) {
        if (strcmp(s->items[i].name, metric)) continue;
        const char *v = json_string_value(json_object_get(s->items[i].labels, label));
        if (v && !strncmp(v, prefix, n)) return true;
    }
    return false;
}

json_t *dm_alert_dashboard(const char *pipeline, const dm_alert_samples_t *samples)
{
    /* metric that must exist, its label, the query (%s: the label matcher), title, unit */
    static const struct {
        const char *metric, *label, *query, *title, *unit;
    } panels[] = {
        {"datamesh_task_records_in_total", "task",
         "sum(rate(datamesh_task_records_in_total{%s}[1m]))", "Records in / s", "ops"},
        {"datamesh_task_records_out_total", "task",
         "sum(rate(datamesh_task_records_out_total{%s}[1m]))", "Records out / s", "ops"},
        {"datamesh_task_input_lag_seconds", "task", "max(datamesh_task_input_lag_seconds{%s})",
         "Lag (age of the oldest unprocessed record)", "s"},
        {"datamesh_task_input_lag_records", "task", "sum(datamesh_task_input_lag_records{%s})",
         "Lag (records)", "short"},
        {"datamesh_task_watermark_lag_seconds", "task",
         "max(datamesh_task_watermark_lag_seconds{%s})", "Watermark lag", "s"},
        {"datamesh_task_dead_letters_total", "task",
         "sum(rate(datamesh_task_dead_letters_total{%s}[1m]))", "Dead letters / s", "ops"},
        {"datamesh_processor_records_out_total", "task",
         "sum by (processor, step) (rate(datamesh_processor_records_out_total{%s}[1m]))",
         "Records out of each processor / s", "ops"},
        {"datamesh_task_batch_seconds_bucket", "task",
         "histogram_quantile(0.99, sum by (le) (rate(datamesh_task_batch_seconds_bucket{%s}[5m])))",
         "Batch time p99", "s"},
        {"datamesh_sink_records_total", "sink",
         "sum by (sink) (rate(datamesh_sink_records_total{%s}[1m]))", "Sink records written / s",
         "ops"},
        {"datamesh_sink_input_lag_seconds", "sink",
         "max by (sink) (datamesh_sink_input_lag_seconds{%s})", "Sink lag", "s"},
        {"datamesh_sink_last_commit_timestamp_seconds", "sink",
         "time() - min by (sink) (datamesh_sink_last_commit_timestamp_seconds{%s})",
         "Time since the last sink commit", "s"},
        {"datamesh_sink_end_to_end_seconds_bucket", "sink",
         "histogram_quantile(0.99, sum by (le) "
         "(rate(datamesh_sink_end_to_end_seconds_bucket{%s}[5m])))",
         "End-to-end latency p99 (source commit → sink commit)", "s"},
        {"datamesh_sink_retries_total", "sink",
         "sum by (sink) (rate(datamesh_sink_retries_total{%s}[5m]))", "Sink retries / s", "ops"},
    };
    char prefix[80];
    snprintf(prefix, sizeof(prefix), "%s/", pipeline);
    json_t *list = json_array();
    int y = 0, id = 1;
    for (size_t i = 0; i < sizeof(panels) / sizeof(panels[0]); i++) {
        if (!exists(samples, panels[i].metric, panels[i].label, prefix)) continue;
        char m[200], q[512];
        out_t w = {m, sizeof(m), 0};
        put_matcher(&w, panels[i].label, prefix, true);
        snprintf(q, sizeof(q), panels[i].query, m);
        int x = (id % 2) ? 0 : 12;
        json_array_append_new(
            list, json_pack("{s:i, s:s, s:s, s:{s:s, s:s}, s:{s:i, s:i, s:i, s:i}, s:[{s:s, s:s, "
                            "s:{s:s, s:s}}], s:{s:{s:s}}}",
                            "id", id, "type", "timeseries", "title", panels[i].title, "datasource",
                            "type", "prometheus", "uid", "${datasource}", "gridPos", "h", 8, "w",
                            12, "x", x, "y", y, "targets", "expr", q, "refId", "A", "datasource",
                            "type", "prometheus", "uid", "${datasource}", "fieldConfig", "defaults",
                            "unit", panels[i].unit));
        if (x) y += 8;
        id++;
    }
    char title[128], uid[40];
    snprintf(title, sizeof(title), "datamesh pipeline %s", pipeline);
    snprintf(uid, sizeof(uid), "dm-%.36s", pipeline);
    return json_pack("{s:s, s:s, s:[s, s], s:i, s:s, s:o, s:{s:[{s:s, s:s, s:s, s:s}]}, s:{s:s, "
                     "s:s}, s:s}",
                     "title", title, "uid", uid, "tags", "datamesh", "pipeline", "schemaVersion",
                     39, "timezone", "browser", "panels", list, "templating", "list", "name",
                     "datasource", "type", "datasource", "query", "prometheus", "label",
                     "Prometheus", "time", "from", "now-1h", "to", "now", "refresh", "30s");
}
