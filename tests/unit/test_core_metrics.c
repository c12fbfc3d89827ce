/* Unit tests for core/metrics: registration, concurrent updates and the
 * Prometheus text format (checked again by promtool in the API tests). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/clock.h"
#include "core/metrics.h"

static dm_metric_t *shared;

static void *bump(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100000; i++)
        dm_metric_add(shared, 1);
    return NULL;
}

static void test_counter_concurrent(void)
{
    dm_metrics_t *m = dm_metrics_new();
    shared = dm_metrics_counter(m, "datamesh_test_records_total", "records", "pipeline=\"p\"");
    REQUIRE(shared);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, bump, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    CHECK_EQ_U64(atomic_load(&shared->count), 400000);
    /* The same name and labels give the same handle; another kind is refused. */
    CHECK(dm_metrics_counter(m, "datamesh_test_records_total", "records", "pipeline=\"p\"") ==
          shared);
    CHECK(dm_metrics_gauge(m, "datamesh_test_records_total", "x", NULL) == NULL);
    dm_metrics_free(m);
}

static void test_render(void)
{
    dm_metrics_t *m = dm_metrics_new();
    dm_metric_t *a =
        dm_metrics_counter(m, "datamesh_in_total", "records in", "processor=\"filter\"");
    dm_metric_t *b =
        dm_metrics_counter(m, "datamesh_in_total", "records in", "processor=\"project\"");
    dm_metric_t *g = dm_metrics_gauge(m, "datamesh_lag", "lag", NULL);
    static const double bounds[] = {0.001, 0.01, 0.1};
    dm_metric_t *h =
        dm_metrics_histogram(m, "datamesh_latency_seconds", "latency", "p=\"x\"", bounds, 3, 1e6);
    dm_metric_add(a, 5);
    dm_metric_add(b, 7);
    dm_metric_set(g, -3);
    dm_metric_observe(h, 500);     /* 0.0005 s */
    dm_metric_observe(h, 50000);   /* 0.05 s */
    dm_metric_observe(h, 2000000); /* 2 s: only +Inf */
    dm_buf_t out = DM_BUF_INIT;
    REQUIRE(dm_metrics_render(m, &out) == DM_OK);
    const char *s;
    dm_buf_cstr(&out, &s);
    CHECK_CONTAINS(s, "# HELP datamesh_in_total records in\n# TYPE datamesh_in_total counter\n");
    CHECK_CONTAINS(s, "datamesh_in_total{processor=\"filter\"} 5\n");
    CHECK_CONTAINS(s, "datamesh_in_total{processor=\"project\"} 7\n");
    CHECK_CONTAINS(s, "datamesh_lag -3\n");
    CHECK_CONTAINS(s, "datamesh_latency_seconds_bucket{p=\"x\",le=\"0.001\"} 1\n");
    CHECK_CONTAINS(s, "datamesh_latency_seconds_bucket{p=\"x\",le=\"0.1\"} 2\n");
    CHECK_CONTAINS(s, "datamesh_latency_seconds_bucket{p=\"x\",le=\"+Inf\"} 3\n");
    CHECK_CONTAINS(s, "datamesh_latency_seconds_count{p=\"x\"} 3\n");
    CHECK_CONTAINS(s, "datamesh_latency_seconds_sum{p=\"x\"} 2.0505\n");
    /* One HELP per name. */
    CHECK(strstr(strstr(s, "# HELP datamesh_in_total") + 1, "# HELP datamesh_in_total") == NULL);
    dm_buf_free(&out);
    dm_metrics_remove_matching(m, "processor=\"filter\"");
    REQUIRE(dm_metrics_render(m, &out) == DM_OK);
    dm_buf_cstr(&out, &s);
    CHECK(strstr(s, "filter") == NULL);
    CHECK_CONTAINS(s, "project");
    dm_buf_free(&out);
    char esc[64];
    dm_metrics_escape("a\"b\\c\nd", esc, sizeof(esc));
    CHECK_STR_EQ(esc, "a\\\"b\\\\c\\nd");
    dm_metrics_free(m);
}

/* Time gauges render seconds since the epoch; age gauges how long ago the
 * instant they hold was, computed when read (so a stuck writer's age grows),
 * 0 while they hold nothing. */
static void test_time_and_age_gauges(void)
{
    dm_metrics_t *m = dm_metrics_new();
    dm_metric_t *t =
        dm_metrics_time_gauge(m, "datamesh_t_last_seconds", "last", "s=\"a\"", DM_GAUGE_TIME_MS);
    dm_metric_t *a =
        dm_metrics_time_gauge(m, "datamesh_t_lag_seconds", "lag", "s=\"a\"", DM_GAUGE_AGE_MS);
    REQUIRE(t && a);
    dm_metric_set(t, 1700000000500);
    CHECK(dm_metric_gauge_value(t, 0) == 1700000000.5);
    CHECK(dm_metric_gauge_value(a, 5000) == 0.0); /* nothing waiting */
    dm_metric_set(a, 1000);
    CHECK(dm_metric_gauge_value(a, 3500) == 2.5);
    CHECK(dm_metric_gauge_value(a, 500) == 0.0); /* a timestamp ahead of the clock: no lag */
    dm_metric_set(a, dm_wall_ms() - 4000);
    dm_buf_t out = DM_BUF_INIT;
    REQUIRE(dm_metrics_render(m, &out) == DM_OK);
    const char *s;
    dm_buf_cstr(&out, &s);
    CHECK_CONTAINS(s, "datamesh_t_last_seconds{s=\"a\"} 1700000000.500\n");
    const char *lag = strstr(s, "datamesh_t_lag_seconds{s=\"a\"} ");
    REQUIRE(lag);
    double v = strtod(lag + strlen("datamesh_t_lag_seconds{s=\"a\"} "), NULL);
    CHECK(v >= 4.0 && v < 60.0);
    dm_buf_free(&out);
    dm_metrics_free(m);
}

/* Observations gathered locally land as if observed one by one. */
static void test_local_observations(void)
{
    static const double bounds[] = {0.1, 1, 10};
    dm_metrics_t *m = dm_metrics_new();
    dm_metric_t *a = dm_metrics_histogram(m, "datamesh_h_a", "a", NULL, bounds, 3, 1e3);
    dm_metric_t *b = dm_metrics_histogram(m, "datamesh_h_b", "b", NULL, bounds, 3, 1e3);
    REQUIRE(a && b);
    static const uint64_t ms[] = {50, 100, 101, 999, 5000, 60000, 0};
    dm_metric_local_t l;
    memset(&l, 0, sizeof(l));
    for (size_t i = 0; i < sizeof(ms) / sizeof(ms[0]); i++) {
        dm_metric_observe(a, ms[i]);
        dm_metric_local_observe(b, &l, ms[i]);
    }
    dm_metric_observe_local(b, &l);
    for (int i = 0; i < 3; i++)
        CHECK_EQ_U64(atomic_load(&b->buckets[i]), atomic_load(&a->buckets[i]));
    CHECK_EQ_U64(atomic_load(&b->count), 7);
    CHECK_EQ_U64(atomic_load(&b->sum), atomic_load(&a->sum));
    CHECK_EQ_U64(atomic_load(&b->buckets[0]), 3); /* 0, 50 and 100 ms are <= 0.1 s */
    dm_metrics_free(m);
}

int main(void)
{
    RUN(test_counter_concurrent);
    RUN(test_render);
    RUN(test_time_and_age_gauges);
    RUN(test_local_observations);
    return check_summary();
}
