/* Unit tests for control/alerts: rules generated from catalog documents,
 * spec.alerts checks, the metrics text parser, the evaluator's pending →
 * firing → resolved states (plain, rate and ratio conditions), dashboards,
 * and webhook notifications retried against a real HTTP server on loopback.
 * Prometheus itself checks the same rules in tests/integration/alerts.sh. */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "control/alerts.h"
#include "control/http.h"
#include "core/clock.h"

static json_t *doc(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    if (!j) fprintf(stderr, "bad test JSON: %s: %s\n", e.text, text);
    return j;
}

static json_t *one(const char *text)
{
    json_t *a = json_array();
    json_array_append_new(a, doc(text));
    return a;
}

static const dm_alert_rule_t *find(const dm_alert_rules_t *r, const char *object, const char *alert,
                                   const char *severity)
{
    for (size_t i = 0; i < r->n; i++)
        if (!strcmp(r->items[i].object, object) && !strcmp(r->items[i].alert, alert) &&
            (!severity || !strcmp(r->items[i].severity, severity)))
            return &r->items[i];
    return NULL;
}

#define PIPE                                                                                       \
    "{\"kind\":\"Pipeline\",\"metadata\":{\"name\":\"us.plays\",\"owner\":\"growth\"},"            \
    "\"spec\":{\"from\":[\"plays\"],\"to\":[{\"source\":\"x\"},{\"sink\":{\"type\":\"file\"}}]"

static void test_rules_from_catalog(void)
{
    json_t *pipes = one(PIPE "}}");
    json_t *sources = json_array();
    json_array_append_new(sources, doc("{\"metadata\":{\"name\":\"orders\",\"owner\":\"shop\"},"
                                       "\"spec\":{\"connector\":\"postgres\"}}"));
    json_array_append_new(sources, doc("{\"metadata\":{\"name\":\"plays\"},\"spec\":{\"connector\":"
                                       "\"datagen\"}}"));
    dm_alert_rules_t *r = dm_alert_rules_from_catalog(pipes, sources);
    REQUIRE(r);
    /* pipeline: lag ×2, stalled, dead letters, restart loop, failed, stale commit;
     * postgres source: lag ×2, slot WAL, stopped, restart loop; datagen: stopped, restart loop */
    CHECK_EQ_INT((int)r->n, 7 + 5 + 2);
    const dm_alert_rule_t *lag = find(r, "us.plays", "DatameshPipelineLagHigh", "warning");
    REQUIRE(lag);
    CHECK_STR_EQ(lag->owner, "growth");
    CHECK_EQ_INT((int)lag->for_ms, 300000);
    char expr[4096];
    dm_alert_rule_expr(lag, expr, sizeof(expr));
    CHECK_STR_EQ(expr, "max(datamesh_task_input_lag_seconds{task=~\"us\\\\.plays/.*\"} or "
                       "datamesh_sink_input_lag_seconds{sink=~\"us\\\\.plays/.*\"}) > 300");
    dm_alert_rule_expr(find(r, "us.plays", "DatameshPipelineLagHigh", "critical"), expr,
                       sizeof(expr));
    CHECK_CONTAINS(expr, "> 900");
    dm_alert_rule_expr(find(r, "us.plays", "DatameshPipelineDeadLetters", NULL), expr,
                       sizeof(expr));
    CHECK_STR_EQ(expr,
                 "(sum(rate(datamesh_task_dead_letters_total{task=~\"us\\\\.plays/.*\"}[10m]) "
                 "or rate(datamesh_sink_dead_letters_total{sink=~\"us\\\\.plays/.*\"}[10m]))) "
                 "/ (sum(rate(datamesh_task_records_in_total{task=~\"us\\\\.plays/.*\"}[10m]))) "
                 "> 0.01");
    dm_alert_rule_expr(find(r, "orders", "DatameshSourceLagHigh", "warning"), expr, sizeof(expr));
    CHECK_STR_EQ(expr, "max(datamesh_postgres_slot_lag_seconds{pg_source=\"orders\"}) > 300");
    CHECK(find(r, "orders", "DatameshPostgresSlotWalRetained", NULL) != NULL);
    CHECK(find(r, "plays", "DatameshPostgresSlotWalRetained", NULL) == NULL);
    dm_alert_rule_expr(find(r, "plays", "DatameshSourceStopped", NULL), expr, sizeof(expr));
    CHECK_STR_EQ(expr, "max(datamesh_unit_failed{object=\"plays\",kind=\"Source\"}) > 0");
    dm_buf_t y = DM_BUF_INIT;
    REQUIRE(dm_alert_rules_yaml(r, &y) == DM_OK);
    const char *s;
    dm_buf_cstr(&y, &s);
    CHECK_CONTAINS(s, "groups:\n  - name: \"datamesh.pipeline.us.plays\"\n    rules:\n");
    CHECK_CONTAINS(s, "        for: 5m\n        labels:\n          severity: warning\n"
                      "          owner: \"growth\"\n          pipeline: \"us.plays\"\n"
                      "          datamesh_rule: lag\n");
    CHECK_CONTAINS(s, "  - name: \"datamesh.source.orders\"\n");
    dm_buf_free(&y);
    dm_alert_rules_free(r);
    json_decref(pipes);
    json_decref(sources);
    /* nothing in the catalog: an empty, valid rules file */
    json_t *none = json_array();
    r = dm_alert_rules_from_catalog(none, none);
    REQUIRE(r && r->n == 0);
    dm_buf_t e = DM_BUF_INIT;
    REQUIRE(dm_alert_rules_yaml(r, &e) == DM_OK);
    dm_buf_cstr(&e, &s);
    CHECK_CONTAINS(s, "groups: []\n");
    dm_buf_free(&e);
    dm_alert_rules_free(r);
    json_decref(none);
}

static void test_rules_overridden(void)
{
    json_t *pipes = one(PIPE ",\"alerts\":{\"lag_seconds\":{\"warning\":10},\"disabled\":["
                             "\"stalled\",\"stale_commit\"],\"for\":\"30s\",\"window\":\"1m\","
                             "\"labels\":{\"team\":\"oncall-a\"},\"dead_letter_ratio\":0.5}}}");
    json_t *none = json_array();
    dm_alert_rules_t *r = dm_alert_rules_from_catalog(pipes, none);
    REQUIRE(r);
    CHECK_EQ_INT((int)r->n, 5);
    CHECK(find(r, "us.plays", "DatameshPipelineStalled", NULL) == NULL);
    CHECK(find(r, "us.plays", "DatameshSinkCommitStale", NULL) == NULL);
    const dm_alert_rule_t *w = find(r, "us.plays", "DatameshPipelineLagHigh", "warning");
    REQUIRE(w);
    CHECK_EQ_INT((int)w->for_ms, 30000);
    CHECK(w->cond[0].threshold == 10);
    CHECK(find(r, "us.plays", "DatameshPipelineLagHigh", "critical")->cond[0].threshold == 900);
    char expr[4096];
    dm_alert_rule_expr(find(r, "us.plays", "DatameshPipelineDeadLetters", NULL), expr,
                       sizeof(expr));
    CHECK_CONTAINS(expr, "[1m]");
    CHECK_CONTAINS(expr, "> 0.5");
    dm_buf_t y = DM_BUF_INIT;
    REQUIRE(dm_alert_rules_yaml(r, &y) == DM_OK);
    const char *s;
    dm_buf_cstr(&y, &s);
    CHECK_CONTAINS(s, "          team: \"oncall-a\"\n");
    CHECK_CONTAINS(s, "        for: 30s\n");
    dm_buf_free(&y);
    dm_alert_rules_free(r);
    json_decref(pipes);
    json_decref(none);
}

static void locate(void *ctx, const char *path, char *out, size_t cap)
{
    (void)ctx;
    snprintf(out, cap, "f.yaml:9:3 (%s)", path);
}

static void bad_spec(const char *kind, const char *alerts, const char *want1, const char *want2)
{
    json_t *a = doc(alerts);
    dm_error_t err = {0};
    dm_err_t rc = dm_alerts_check_spec(kind, a, "spec.alerts", locate, NULL, &err);
    CHECK(rc != DM_OK);
    CHECK_CONTAINS(err.message, "f.yaml:9:3");
    CHECK_CONTAINS(err.message, want1);
    CHECK_CONTAINS(err.message, want2);
    json_decref(a);
}

static void test_spec_checked(void)
{
    json_t *good = doc("{\"lag_seconds\":{\"warning\":60,\"critical\":600},\"for\":\"1m\","
                       "\"disabled\":[\"lag\"],\"restarts\":5,\"labels\":{\"team\":\"a\"}}");
    dm_error_t err = {0};
    CHECK(dm_alerts_check_spec("Pipeline", good, "spec.alerts", locate, NULL, &err) == DM_OK);
    json_decref(good);
    bad_spec("Pipeline", "{\"lag\":1}", "spec.alerts.lag: unknown key 'lag'", "lag_seconds");
    bad_spec("Pipeline", "{\"disabled\":[\"lag\",\"nope\"]}", "spec.alerts.disabled[1]",
             "'nope' is not a rule of a Pipeline; rules: lag, stalled");
    bad_spec("Source", "{\"disabled\":[\"stale_commit\"]}", "spec.alerts.disabled[0]", "slot_wal");
    bad_spec("Pipeline", "{\"slot_wal_bytes\":5}", "spec.alerts.slot_wal_bytes", "unknown key");
    bad_spec("Pipeline", "{\"lag_seconds\":{\"warning\":900,\"critical\":300}}",
             "spec.alerts.lag_seconds", "warning (900) is above critical (300)");
    bad_spec("Pipeline", "{\"lag_seconds\":{\"warning\":\"5m\"}}",
             "spec.alerts.lag_seconds.warning", "expected a number above 0, got a string");
    bad_spec("Pipeline", "{\"for\":\"soon\"}", "spec.alerts.for", "expected a duration");
    bad_spec("Pipeline", "{\"window\":0}", "spec.alerts.window", "above 0");
    bad_spec("Pipeline", "{\"dead_letter_ratio\":2}", "spec.alerts.dead_letter_ratio", "at most 1");
    bad_spec("Pipeline", "{\"restarts\":0.5}", "spec.alerts.restarts", "whole number");
    bad_spec("Pipeline", "{\"labels\":{\"severity\":\"low\"}}", "spec.alerts.labels.severity",
             "set by datamesh");
    bad_spec("Pipeline", "{\"labels\":{\"9x\":\"a\"}}", "spec.alerts.labels.9x", "label name");
    bad_spec("Source", "[1]", "spec.alerts", "expected a mapping, got a list");
}

static void test_samples_parse(void)
{
    const char *text = "# HELP x_total things\n# TYPE x_total counter\n"
                       "x_total{a=\"1\",b=\"q\\\"uo\\\\te\\n\"} 42\n"
                       "plain 1.5\n"
                       "h_bucket{le=\"+Inf\"} 7\n"
                       "broken{a=\"1\" 3\n"
                       "nonumber{a=\"1\"} x\n";
    dm_alert_samples_t s = {0};
    REQUIRE(dm_alert_samples_parse(text, strlen(text), &s) == DM_OK);
    CHECK_EQ_INT((int)s.n, 3);
    CHECK_STR_EQ(s.items[0].name, "x_total");
    CHECK(s.items[0].value == 42);
    CHECK_STR_EQ(json_string_value(json_object_get(s.items[0].labels, "b")), "q\"uo\\te\n");
    CHECK_STR_EQ(s.items[1].name, "plain");
    CHECK(s.items[1].value == 1.5);
    CHECK_STR_EQ(json_string_value(json_object_get(s.items[2].labels, "le")), "+Inf");
    dm_alert_samples_free(&s);
}

/* Evaluates rules against text at t ms. */
static void tick(dm_alert_eval_t *ev, const dm_alert_rules_t *r, const char *text, int64_t t)
{
    dm_alert_samples_t s = {0};
    REQUIRE(dm_alert_samples_parse(text, strlen(text), &s) == DM_OK);
    dm_alert_eval_tick(ev, r, &s, t);
    dm_alert_samples_free(&s);
}

/* The state of alert (any severity given NULL) of object, "" when not listed. */
static const char *state(dm_alert_eval_t *ev, const char *alert, const char *severity)
{
    static char out[32];
    out[0] = '\0';
    json_t *list = dm_alert_eval_json(ev, NULL, NULL);
    size_t i;
    json_t *a;
    json_array_foreach(list, i, a)
    {
        if (strcmp(json_string_value(json_object_get(a, "alert")), alert)) continue;
        if (severity && strcmp(json_string_value(json_object_get(a, "severity")), severity))
            continue;
        snprintf(out, sizeof(out), "%s", json_string_value(json_object_get(a, "state")));
    }
    json_decref(list);
    return out;
}

static void test_eval_lag_pending_firing_resolved(void)
{
    json_t *pipes = one(PIPE ",\"alerts\":{\"lag_seconds\":{\"warning\":3,\"critical\":60},"
                             "\"for\":\"2s\"}}}");
    json_t *none = json_array();
    dm_alert_rules_t *r = dm_alert_rules_from_catalog(pipes, none);
    dm_alert_eval_t *ev = dm_alert_eval_new(NULL, NULL);
    REQUIRE(r && ev);
    const char *ok = "datamesh_task_input_lag_seconds{task=\"us.plays/task/0\"} 0.5\n"
                     "datamesh_task_input_lag_seconds{task=\"other/task/0\"} 500\n"
                     "datamesh_task_input_lag_seconds{task=\"us.plays2/task/0\"} 500\n";
    const char *late = "datamesh_task_input_lag_seconds{task=\"us.plays/task/0\"} 1\n"
                       "datamesh_sink_input_lag_seconds{sink=\"us.plays/sink/0\",type=\"f\"} 5\n";
    tick(ev, r, ok, 1000);
    CHECK_STR_EQ(state(ev, "DatameshPipelineLagHigh", "warning"), ""); /* another pipeline's lag */
    tick(ev, r, late, 2000);
    CHECK_STR_EQ(state(ev, "DatameshPipelineLagHigh", "warning"), "pending");
    tick(ev, r, late, 3000);
    CHECK_STR_EQ(state(ev, "DatameshPipelineLagHigh", "warning"), "pending");
    tick(ev, r, late, 4000);
    CHECK_STR_EQ(state(ev, "DatameshPipelineLagHigh", "warning"), "firing");
    CHECK_STR_EQ(state(ev, "DatameshPipelineLagHigh", "critical"), "");
    json_t *list = dm_alert_eval_json(ev, "Pipeline", "us.plays");
    CHECK_EQ_INT((int)json_array_size(list), 1);
    json_t *a = json_array_get(list, 0);
    CHECK(json_real_value(json_object_get(a, "value")) == 5.0);
    CHECK_STR_EQ(json_string_value(json_object_get(json_object_get(a, "labels"), "owner")),
                 "growth");
    CHECK(json_is_string(json_object_get(a, "fired_at")));
    json_decref(list);
    list = dm_alert_eval_json(ev, "Pipeline", "elsewhere");
    CHECK_EQ_INT((int)json_array_size(list), 0);
    json_decref(list);
    tick(ev, r, ok, 5000);
    CHECK_STR_EQ(state(ev, "DatameshPipelineLagHigh", "warning"), "resolved");
    /* pending that clears before its for-duration never fires */
    tick(ev, r, late, 6000);
    CHECK_STR_EQ(state(ev, "DatameshPipelineLagHigh", "warning"), "pending");
    tick(ev, r, ok, 7000);
    CHECK_STR_EQ(state(ev, "DatameshPipelineLagHigh", "warning"), "");
    /* a firing alert whose pipeline is gone resolves and is forgotten */
    tick(ev, r, late, 8000);
    tick(ev, r, late, 10000);
    CHECK_STR_EQ(state(ev, "DatameshPipelineLagHigh", "warning"), "firing");
    dm_alert_rules_t *empty = dm_alert_rules_from_catalog(none, none);
    tick(ev, empty, late, 11000);
    CHECK_STR_EQ(state(ev, "DatameshPipelineLagHigh", "warning"), "");
    dm_alert_rules_free(empty);
    dm_alert_eval_free(ev);
    dm_alert_rules_free(r);
    json_decref(pipes);
    json_decref(none);
}

static void test_eval_rates(void)
{
    json_t *pipes = one(PIPE ",\"alerts\":{\"for\":0,\"window\":\"10s\"}}}");
    json_t *none = json_array();
    dm_alert_rules_t *r = dm_alert_rules_from_catalog(pipes, none);
    dm_alert_eval_t *ev = dm_alert_eval_new(NULL, NULL);
    REQUIRE(r && ev);
    char text[1024];
    /* records wait (lag 10) and the input counter stands still: stalled once two samples show it */
    for (int t = 0; t <= 3; t++) {
        snprintf(text, sizeof(text),
                 "datamesh_task_input_lag_records{task=\"us.plays/task/0\"} 10\n"
                 "datamesh_task_records_in_total{task=\"us.plays/task/0\"} 100\n"
                 "datamesh_task_dead_letters_total{task=\"us.plays/task/0\"} 0\n");
        tick(ev, r, text, t * 1000);
        if (t == 0) CHECK_STR_EQ(state(ev, "DatameshPipelineStalled", NULL), "");
    }
    CHECK_STR_EQ(state(ev, "DatameshPipelineStalled", NULL), "firing");
    CHECK_STR_EQ(state(ev, "DatameshPipelineDeadLetters", NULL), ""); /* 0 / 0 */
    /* records move again, a tenth of them dead letters; a task restart resets its counters */
    static const int in[] = {200, 300, 50, 150};
    static const int dead[] = {10, 20, 5, 15};
    for (int k = 0; k < 4; k++) {
        snprintf(text, sizeof(text),
                 "datamesh_task_input_lag_records{task=\"us.plays/task/0\"} 10\n"
                 "datamesh_task_records_in_total{task=\"us.plays/task/0\"} %d\n"
                 "datamesh_task_dead_letters_total{task=\"us.plays/task/0\"} %d\n",
                 in[k], dead[k]);
        tick(ev, r, text, 4000 + k * 1000);
    }
    CHECK_STR_EQ(state(ev, "DatameshPipelineStalled", NULL), "resolved");
    CHECK_STR_EQ(state(ev, "DatameshPipelineDeadLetters", NULL), "firing");
    json_t *list = dm_alert_eval_json(ev, NULL, NULL);
    size_t i;
    json_t *a;
    json_array_foreach(list, i, a) if (!strcmp(json_string_value(json_object_get(a, "alert")),
                                               "DatameshPipelineDeadLetters"))
    {
        /* over the window: in 100 → 300, reset, 50 → 150: +350; dead 0 → 20, reset, 5 → 15: +35 */
        CHECK(fabs(json_real_value(json_object_get(a, "value")) - 0.1) < 1e-9);
    }
    json_decref(list);
    dm_alert_eval_free(ev);
    dm_alert_rules_free(r);
    json_decref(pipes);
    json_decref(none);
}

/* Thousands of pipelines: rules find their series through the samples'
 * index, not by scanning every sample for each rule. */
static void test_eval_many_pipelines(void)
{
    enum { N = 3000 };
    json_t *pipes = json_array(), *none = json_array();
    dm_buf_t text = DM_BUF_INIT;
    for (int i = 0; i < N; i++) {
        char name[16];
        snprintf(name, sizeof(name), "p%d", i);
        json_array_append_new(pipes, json_pack("{s:{s:s, s:s}, s:{s:[s], s:[{s:{s:s}}]}}",
                                               "metadata", "name", name, "owner", "t", "spec",
                                               "from", "x", "to", "sink", "type", "file"));
        dm_buf_printf(&text,
                      "datamesh_task_input_lag_seconds{task=\"p%d/task/0\"} %d\n"
                      "datamesh_task_records_in_total{task=\"p%d/task/0\"} 5\n"
                      "datamesh_task_input_lag_records{task=\"p%d/task/0\"} 0\n"
                      "datamesh_sink_input_lag_seconds{sink=\"p%d/sink/0\",type=\"f\"} 0\n"
                      "datamesh_sink_last_commit_timestamp_seconds{sink=\"p%d/sink/0\",type=\"f\"} "
                      "1\n"
                      "datamesh_unit_failed{kind=\"Pipeline\",object=\"p%d\",unit=\"u\"} 0\n",
                      i, i == 7 ? 1000 : 0, i, i, i, i, i);
    }
    dm_alert_rules_t *r = dm_alert_rules_from_catalog(pipes, none);
    REQUIRE(r && r->n == (size_t)N * 7);
    dm_alert_eval_t *ev = dm_alert_eval_new(NULL, NULL);
    const char *s;
    dm_buf_cstr(&text, &s);
    uint64_t t0 = dm_now_ns();
    tick(ev, r, s, 1000000);
    tick(ev, r, s, 1000000 + 400000); /* past the 5 min for-duration */
    double secs = (double)(dm_now_ns() - t0) / 1e9;
    printf("    %d pipelines, %zu rules, %d samples: two evaluations in %.2f s\n", N, r->n, N * 6,
           secs);
    CHECK(secs < 30); /* was minutes when each rule scanned every sample and alert */
    json_t *list = dm_alert_eval_json(ev, NULL, NULL);
    CHECK_EQ_INT((int)json_array_size(list), 2); /* p7's lag: warning and critical */
    CHECK_STR_EQ(json_string_value(json_object_get(json_array_get(list, 0), "object")), "p7");
    json_decref(list);
    dm_alert_eval_free(ev);
    dm_alert_rules_free(r);
    dm_buf_free(&text);
    json_decref(pipes);
    json_decref(none);
}

/* The tick in parts (how the service evaluates thousands of documents without
 * holding every rule at once): an alert whose rules come in a later part keeps
 * its state, one whose document is not given is forgotten, an aborted tick
 * forgets nothing. */
static void part_tick(dm_alert_eval_t *ev, json_t *docs, const char *text, int64_t t, bool abort)
{
    dm_alert_samples_t s = {0};
    REQUIRE(dm_alert_samples_parse(text, strlen(text), &s) == DM_OK);
    dm_alert_rules_t *r = calloc(1, sizeof(*r));
    REQUIRE(r);
    dm_alert_eval_begin(ev);
    size_t i;
    json_t *d;
    json_array_foreach(docs, i, d)
    { /* one document per part */
        CHECK(dm_alert_rules_add(r, d, true));
        dm_alert_eval_rules(ev, r, &s, t);
        dm_alert_rules_clear(r);
        CHECK_EQ_INT((int)r->n, 0);
    }
    if (abort)
        dm_alert_eval_abort(ev, t);
    else
        dm_alert_eval_end(ev, t);
    dm_alert_rules_free(r);
    dm_alert_samples_free(&s);
}

static void test_eval_in_parts(void)
{
    json_t *pipes = json_array(), *none = json_array();
    for (int i = 0; i < 2; i++)
        json_array_append_new(pipes,
                              json_pack("{s:{s:s, s:s}, s:{s:[s], s:[{s:s}], s:{s:i}}}", "metadata",
                                        "name", i ? "b" : "a", "owner", "t", "spec", "from", "x",
                                        "to", "source", "y", "alerts", "for", 0));
    dm_alert_rules_t *all = dm_alert_rules_from_catalog(pipes, none), *one_by_one = NULL;
    REQUIRE(all && (one_by_one = calloc(1, sizeof(*one_by_one))));
    for (size_t i = 0; i < json_array_size(pipes); i++)
        CHECK(dm_alert_rules_add(one_by_one, json_array_get(pipes, i), true));
    CHECK_EQ_INT((int)one_by_one->n, (int)all->n);
    for (size_t i = 0; i < all->n && i < one_by_one->n; i++)
        CHECK_STR_EQ(one_by_one->items[i].summary, all->items[i].summary);
    dm_alert_eval_t *ev = dm_alert_eval_new(NULL, NULL);
    REQUIRE(ev);
    const char *lag = "datamesh_task_input_lag_seconds{task=\"a/task/0\"} 1000\n"
                      "datamesh_task_input_lag_seconds{task=\"b/task/0\"} 1000\n";
    part_tick(ev, pipes, lag, 1000, false);
    part_tick(ev, pipes, lag, 2000, false);
    json_t *list = dm_alert_eval_json(ev, "Pipeline", "b");
    CHECK_EQ_INT((int)json_array_size(list), 2); /* b's lag: warning and critical */
    CHECK_STR_EQ(json_string_value(json_object_get(json_array_get(list, 0), "state")), "firing");
    CHECK_CONTAINS(json_string_value(json_object_get(json_array_get(list, 0), "expr")), "b/");
    json_decref(list);
    json_t *only_a = json_array();
    json_array_append(only_a, json_array_get(pipes, 0));
    part_tick(ev, only_a, lag, 3000, true); /* aborted: b is kept */
    list = dm_alert_eval_json(ev, "Pipeline", "b");
    CHECK_EQ_INT((int)json_array_size(list), 2);
    json_decref(list);
    part_tick(ev, only_a, lag, 4000, false); /* b is gone */
    list = dm_alert_eval_json(ev, "Pipeline", "b");
    CHECK_EQ_INT((int)json_array_size(list), 0);
    json_decref(list);
    list = dm_alert_eval_json(ev, "Pipeline", "a");
    CHECK_EQ_INT((int)json_array_size(list), 2);
    json_decref(list);
    const char *calm = "datamesh_task_input_lag_seconds{task=\"a/task/0\"} 0\n";
    part_tick(ev, only_a, calm, 5000, false);
    CHECK_STR_EQ(state(ev, "DatameshPipelineLagHigh", NULL), "resolved");
    part_tick(ev, only_a, calm, 6000, false); /* resolved stays listed until it fires again */
    CHECK_STR_EQ(state(ev, "DatameshPipelineLagHigh", NULL), "resolved");
    dm_alert_eval_free(ev);
    dm_alert_rules_free(all);
    dm_alert_rules_free(one_by_one);
    json_decref(only_a);
    json_decref(pipes);
    json_decref(none);
}

static void test_dashboard(void)
{
    const char *text =
        "datamesh_task_records_in_total{task=\"us.plays/task/0\"} 1\n"
        "datamesh_task_input_lag_seconds{task=\"us.plays/task/0\"} 0\n"
        "datamesh_sink_end_to_end_seconds_bucket{sink=\"us.plays/sink/0\",le=\"1\"} 1\n"
        "datamesh_task_watermark_lag_seconds{task=\"other/task/0\"} 1\n";
    dm_alert_samples_t s = {0};
    REQUIRE(dm_alert_samples_parse(text, strlen(text), &s) == DM_OK);
    json_t *d = dm_alert_dashboard("us.plays", &s);
    REQUIRE(d);
    json_t *panels = json_object_get(d, "panels");
    CHECK_EQ_INT((int)json_array_size(panels), 3); /* only what the pipeline has */
    char *dump = json_dumps(d, 0);
    CHECK_CONTAINS(dump, "\"uid\": \"${datasource}\"");
    CHECK_CONTAINS(dump,
                   "histogram_quantile(0.99, sum by (le) "
                   "(rate(datamesh_sink_end_to_end_seconds_bucket{sink=~\\\"us\\\\\\\\.plays/");
    CHECK(strstr(dump, "watermark") == NULL);
    CHECK_STR_EQ(
        json_string_value(json_object_get(
            json_array_get(json_object_get(json_object_get(d, "templating"), "list"), 0), "type")),
        "datasource");
    free(dump);
    json_decref(d);
    dm_alert_samples_free(&s);
}

/* ---- webhook notifications against a real HTTP server ---- */

static atomic_int posts, good_posts;
static char bodies[8][4096];

static void on_hook(void *ctx, const dm_http_request_t *req, dm_http_response_t *res)
{
    (void)ctx;
    int n = atomic_fetch_add(&posts, 1);
    if (n < 2) { /* the first two attempts fail: the notifier tries again */
        dm_http_error(res, 503, 50300, "not now");
        return;
    }
    int k = atomic_fetch_add(&good_posts, 1);
    if (k < 8)
        snprintf(bodies[k], sizeof(bodies[k]), "%.*s", (int)req->body_len, (const char *)req->body);
    dm_http_json(res, 200, json_object());
}

static bool wait_for(atomic_int *v, int want)
{
    for (int i = 0; i < 400 && atomic_load(v) < want; i++)
        usleep(10000);
    return atomic_load(v) >= want;
}

static void test_webhook_retries(void)
{
    dm_error_t err = {0};
    dm_http_server_t *srv = dm_http_server_new(&(dm_http_options_t){.listen = "127.0.0.1:0"}, &err);
    REQUIRE(srv);
    REQUIRE(dm_http_route(srv, "POST", "/hook", on_hook, NULL) == DM_OK);
    REQUIRE(dm_http_server_start(srv, &err) == DM_OK);
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/hook", dm_http_server_port(srv));
    dm_alert_eval_t *ev = dm_alert_eval_new(
        &(dm_alert_eval_options_t){.webhook = url, .external_url = "http://dm", .retry_min_ms = 20},
        &err);
    REQUIRE(ev);
    json_t *pipes = one(PIPE ",\"alerts\":{\"for\":0}}}");
    json_t *none = json_array();
    dm_alert_rules_t *r = dm_alert_rules_from_catalog(pipes, none);
    const char *failed =
        "datamesh_unit_failed{kind=\"Pipeline\",object=\"us.plays\",unit=\"u\"} 1\n";
    const char *fine = "datamesh_unit_failed{kind=\"Pipeline\",object=\"us.plays\",unit=\"u\"} 0\n";
    tick(ev, r, failed, dm_wall_ms());
    CHECK(wait_for(&good_posts, 1));
    CHECK_EQ_INT(atomic_load(&posts), 3);
    tick(ev, r, fine, dm_wall_ms());
    CHECK(wait_for(&good_posts, 2));
    json_t *f = json_loads(bodies[0], 0, NULL), *res = json_loads(bodies[1], 0, NULL);
    REQUIRE(f && res);
    CHECK_STR_EQ(json_string_value(json_object_get(f, "status")), "firing");
    CHECK_STR_EQ(json_string_value(json_object_get(f, "version")), "4");
    CHECK_STR_EQ(json_string_value(json_object_get(f, "externalURL")), "http://dm");
    json_t *a = json_array_get(json_object_get(f, "alerts"), 0);
    CHECK_STR_EQ(json_string_value(json_object_get(json_object_get(a, "labels"), "alertname")),
                 "DatameshPipelineFailed");
    CHECK_STR_EQ(json_string_value(json_object_get(json_object_get(a, "labels"), "severity")),
                 "critical");
    CHECK_STR_EQ(json_string_value(json_object_get(a, "endsAt")), "0001-01-01T00:00:00Z");
    CHECK_STR_EQ(json_string_value(json_object_get(res, "status")), "resolved");
    a = json_array_get(json_object_get(res, "alerts"), 0);
    CHECK_STR_EQ(json_string_value(json_object_get(a, "status")), "resolved");
    CHECK(strncmp(json_string_value(json_object_get(a, "endsAt")), "0001", 4) != 0);
    json_decref(f);
    json_decref(res);
    dm_alert_eval_free(ev);
    dm_alert_rules_free(r);
    json_decref(pipes);
    json_decref(none);
    /* a receiver that keeps failing: given up after max_attempts, counted */
    atomic_store(&posts, 0);
    dm_metrics_t *m = dm_metrics_new();
    ev = dm_alert_eval_new(
        &(dm_alert_eval_options_t){
            .webhook = url, .max_attempts = 2, .retry_min_ms = 10, .metrics = m},
        &err);
    REQUIRE(ev);
    r = dm_alert_rules_from_catalog(pipes = one(PIPE ",\"alerts\":{\"for\":0}}}"),
                                    none = json_array());
    tick(ev, r, failed, dm_wall_ms());
    dm_metric_t *gave_up =
        dm_metrics_counter(m, "datamesh_alert_notifications_failed_total", "", NULL);
    for (int i = 0; i < 300 && atomic_load(&gave_up->count) == 0; i++)
        usleep(10000);
    CHECK_EQ_U64(atomic_load(&gave_up->count), 1);
    CHECK_EQ_INT(atomic_load(&posts), 2);
    CHECK_EQ_INT(atomic_load(&good_posts), 2); /* nothing more arrived */
    dm_alert_eval_free(ev);
    dm_alert_rules_free(r);
    dm_metrics_free(m);
    json_decref(pipes);
    json_decref(none);
    dm_http_server_free(srv);
    /* not an http(s) URL: refused up front */
    CHECK(dm_alert_eval_new(&(dm_alert_eval_options_t){.webhook = "ftp://x"}, &err) == NULL);
    CHECK_CONTAINS(err.message, "--alert-webhook");
}

int main(void)
{
    RUN(test_rules_from_catalog);
    RUN(test_rules_overridden);
    RUN(test_spec_checked);
    RUN(test_samples_parse);
    RUN(test_eval_lag_pending_firing_resolved);
    RUN(test_eval_rates);
    RUN(test_eval_many_pipelines);
    RUN(test_eval_in_parts);
    RUN(test_dashboard);
    RUN(test_webhook_retries);
    return check_summary();
}
