/* tests/unit/test_connectors_unit.c — unit states and the one failure policy
 * (connectors/unit.h): a retriable error retries with a growing backoff and
 * shows "retrying" with the reason; a fatal or unknown one stops the unit as
 * "failed" with the reason. Also through real source units: a file source
 * waits for its file to appear, a datagen source whose topic is gone fails. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "connectors/source.h"
#include "connectors/unit.h"
#include "core/clock.h"
#include "schema/dm_avro.h"
#include "transport/transport.h"

static char dir[] = "/tmp/dm-test-unit.XXXXXX";
static dm_transport_t *t;
static dm_avro_schema_t *schema;

static const char *CLICK = "{\"type\": \"record\", \"name\": \"Click\", \"fields\": ["
                           "{\"name\": \"user\", \"type\": \"string\"},"
                           "{\"name\": \"ms\", \"type\": \"long\"}]}";

static void test_state_names_are_what_users_see(void)
{
    /* the strings of the status API and `datamesh worker` reports, unchanged */
    CHECK_STR_EQ(dm_unit_state_name(DM_UNIT_STARTING), "starting");
    CHECK_STR_EQ(dm_unit_state_name(DM_UNIT_RUNNING), "running");
    CHECK_STR_EQ(dm_unit_state_name(DM_UNIT_RETRYING), "retrying");
    CHECK_STR_EQ(dm_unit_state_name(DM_UNIT_FAILED), "failed");
    CHECK_STR_EQ(dm_unit_state_name(DM_UNIT_STOPPED), "stopped");
    CHECK_STR_EQ(dm_unit_state_name(DM_UNIT_DONE), "done");
    CHECK_STR_EQ(dm_unit_state_name(DM_UNIT_EXTERNAL), "external");
    CHECK_STR_EQ(dm_unit_state_name((dm_unit_state_t)99), "unknown");
    dm_unit_status_t st;
    dm_unit_init(&st);
    char state[32], error[64];
    CHECK(dm_unit_get(&st, state, sizeof(state), error, sizeof(error)) == DM_UNIT_STARTING);
    CHECK_STR_EQ(state, "starting");
    dm_unit_set(&st, DM_UNIT_DONE, "%d rejected", 3);
    CHECK(dm_unit_get(&st, state, sizeof(state), error, sizeof(error)) == DM_UNIT_DONE);
    CHECK_STR_EQ(state, "done");
    CHECK_STR_EQ(error, "3 rejected");
    dm_unit_destroy(&st);
}

static void test_retriable_error_retries_with_growing_backoff(void)
{
    dm_unit_status_t st;
    dm_unit_init(&st);
    dm_unit_backoff(&st, 100, 1000);
    dm_error_t err = {0};
    dm_error_set(&err, DM_ERR_TIMEOUT, "broker 127.0.0.1:9092 did not answer");
    CHECK(err.retriable);
    int64_t want[] = {100, 200, 400, 800, 1000, 1000};
    char state[32], error[512];
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        CHECK_EQ_INT(dm_unit_failure(&st, &err, "task %s", "p/task/0"), want[i]);
        CHECK(dm_unit_get(&st, state, sizeof(state), error, sizeof(error)) == DM_UNIT_RETRYING);
        CHECK_STR_EQ(state, "retrying");
        CHECK_STR_EQ(error, "task p/task/0: broker 127.0.0.1:9092 did not answer");
    }
    /* a success: running without a reason, and the backoff starts over */
    dm_unit_ok(&st);
    CHECK(dm_unit_get(&st, state, sizeof(state), error, sizeof(error)) == DM_UNIT_RUNNING);
    CHECK_STR_EQ(error, "");
    CHECK_EQ_INT(dm_unit_failure(&st, &err, NULL), 100);
    CHECK_STR_EQ((dm_unit_get(&st, state, sizeof(state), error, sizeof(error)), error),
                 "broker 127.0.0.1:9092 did not answer");
    /* marked by hand: a connection refused */
    dm_error_set_retriable(&err, DM_ERR_IO, "connection refused");
    CHECK(dm_unit_should_retry(&err));
    CHECK_EQ_INT(dm_unit_failure(&st, &err, NULL), 200);
    /* a running unit's note survives a success (only starting/retrying are cleared) */
    dm_unit_set(&st, DM_UNIT_RUNNING, "last rejected record: x");
    dm_unit_ok(&st);
    dm_unit_get(&st, state, sizeof(state), error, sizeof(error));
    CHECK_STR_EQ(error, "last rejected record: x");
    dm_unit_destroy(&st);
}

static void test_fatal_or_unknown_error_fails(void)
{
    dm_unit_status_t st;
    dm_unit_init(&st);
    dm_error_t err = {0};
    char state[32], error[512];
    /* not known to pass: a corrupt state topic */
    dm_error_set(&err, DM_ERR_CORRUPT, "state topic s/0 offset 3: no key");
    CHECK(!err.retriable);
    CHECK_EQ_INT(dm_unit_failure(&st, &err, "restoring"), -1);
    CHECK(dm_unit_get(&st, state, sizeof(state), error, sizeof(error)) == DM_UNIT_FAILED);
    CHECK_STR_EQ(state, "failed");
    CHECK_STR_EQ(error, "restoring: state topic s/0 offset 3: no key");
    /* fatal wins over retriable */
    dm_error_set(&err, DM_ERR_AGAIN, "producer fenced for good");
    err.fatal = true;
    CHECK(!dm_unit_should_retry(&err));
    CHECK(!dm_unit_retry(&st, &err, NULL));
    CHECK(dm_unit_state(&st) == DM_UNIT_FAILED);
    CHECK(!dm_unit_should_retry(NULL));
    dm_unit_destroy(&st);
}

static void *stop_soon(void *arg)
{
    dm_sleep_ms(50);
    atomic_store(&((dm_unit_status_t *)arg)->stop, true);
    return NULL;
}

static void test_retry_wait_ends_at_stop(void)
{
    dm_unit_status_t st;
    dm_unit_init(&st);
    dm_unit_backoff(&st, 60000, 60000);
    dm_error_t err = {0};
    dm_error_set(&err, DM_ERR_AGAIN, "busy");
    pthread_t th;
    REQUIRE(pthread_create(&th, NULL, stop_soon, &st) == 0);
    uint64_t t0 = dm_now_ns();
    CHECK(!dm_unit_retry(&st, &err, NULL)); /* stopped while waiting a minute */
    CHECK((dm_now_ns() - t0) / 1000000 < 5000);
    pthread_join(th, NULL);
    CHECK(dm_unit_state(&st) == DM_UNIT_RETRYING);
    dm_unit_destroy(&st);
}

/* ---- real units ---------------------------------------------------------------------- */

static dm_err_t no_topic(void *ctx, const char *topic, int32_t partitions, const char *subject,
                         dm_error_t *err)
{
    (void)ctx, (void)topic, (void)partitions, (void)subject;
    return dm_error_set(err, DM_ERR_UNSUPPORTED, "not in this test");
}

typedef struct running {
    const dm_source_ops_t *ops;
    void *conf, *state;
    dm_unit_status_t st;
    pthread_t th;
} running_t;

static void *run_main(void *arg)
{
    running_t *r = arg;
    r->ops->run(r->state, &r->st);
    return NULL;
}

/* Opens connector name with settings and runs it on a thread of its own. */
static int start(running_t *r, const char *name, const char *settings, dm_source_env_t *env)
{
    memset(r, 0, sizeof(*r));
    r->ops = dm_source_ops_find(name);
    if (!r->ops) return -1;
    r->conf = calloc(1, r->ops->def.config_size);
    dm_error_t err = {0};
    json_t *j = json_loads(settings, 0, NULL);
    int rc = !r->conf || dm_config_defaults(r->ops->def.config, r->conf, &err) ||
             dm_config_apply_json(r->ops->def.config, r->conf, j, NULL, &err);
    json_decref(j);
    env->ensure_topic = no_topic;
    if (!rc) rc = r->ops->open(r->conf, env, &r->state, &err);
    if (rc) {
        printf("    %s\n", err.message);
        return -1;
    }
    dm_unit_init(&r->st);
    return pthread_create(&r->th, NULL, run_main, r);
}

static void finish(running_t *r)
{
    atomic_store(&r->st.stop, true);
    pthread_join(r->th, NULL);
    r->ops->close(r->state);
    dm_config_free(r->ops->def.config, r->conf);
    free(r->conf);
    dm_unit_destroy(&r->st);
}

/* Waits up to ms for the unit to be in state; returns its state then. */
static dm_unit_state_t wait_state(running_t *r, dm_unit_state_t want, int ms)
{
    for (int i = 0; i < ms / 10 && dm_unit_state(&r->st) != want; i++)
        dm_sleep_ms(10);
    return dm_unit_state(&r->st);
}

static void test_file_source_retries_until_its_file_appears(void)
{
    dm_error_t err = {0};
    REQUIRE(dm_transport_create_topic(t, &(dm_topic_config_t){.name = "later", .partitions = 1},
                                      &err) == DM_OK);
    char path[300], settings[400];
    snprintf(path, sizeof(path), "%s/later.jsonl", dir);
    snprintf(settings, sizeof(settings), "{\"path\": \"%s\"}", path);
    dm_strlist_t keys = {0};
    dm_source_env_t env = {.name = "later",
                           .transport = t,
                           .topic = "later",
                           .partitions = 1,
                           .value_schema = schema,
                           .value_schema_id = 7,
                           .key_fields = &keys};
    running_t r;
    REQUIRE(start(&r, "file", settings, &env) == 0);
    CHECK(wait_state(&r, DM_UNIT_RETRYING, 3000) == DM_UNIT_RETRYING);
    char state[32], error[512];
    dm_unit_get(&r.st, state, sizeof(state), error, sizeof(error));
    CHECK_CONTAINS(error, "cannot open");
    CHECK_CONTAINS(error, "later.jsonl");
    /* the waits grow while it keeps failing: 100, 200, 400 ms, … */
    dm_sleep_ms(800);
    CHECK(r.st.backoff_ms >= 800);
    FILE *f = fopen(path, "w");
    REQUIRE(f);
    fputs("{\"user\":\"a\",\"ms\":1}\n{\"user\":\"b\",\"ms\":2}\n", f);
    fclose(f);
    CHECK(wait_state(&r, DM_UNIT_DONE, 10000) == DM_UNIT_DONE);
    CHECK_EQ_INT(atomic_load(&r.st.position), 2 * 20);
    finish(&r);
}

static void test_datagen_without_its_topic_fails(void)
{
    dm_strlist_t keys = {0};
    dm_source_env_t env = {.name = "gone",
                           .transport = t,
                           .topic = "gone", /* never created: no retry can help */
                           .partitions = 1,
                           .value_schema = schema,
                           .value_schema_id = 7,
                           .key_fields = &keys};
    running_t r;
    REQUIRE(start(&r, "datagen", "{\"rate\": 100, \"seed\": 1}", &env) == 0);
    CHECK(wait_state(&r, DM_UNIT_FAILED, 5000) == DM_UNIT_FAILED);
    char state[32], error[512];
    dm_unit_get(&r.st, state, sizeof(state), error, sizeof(error));
    CHECK_STR_EQ(state, "failed");
    CHECK_CONTAINS(error, "writing to topic gone");
    pthread_join(r.th, NULL); /* it stopped by itself */
    r.th = pthread_self();
    CHECK(dm_unit_state(&r.st) == DM_UNIT_FAILED); /* not overwritten by "stopped" */
    r.ops->close(r.state);
    dm_config_free(r.ops->def.config, r.conf);
    free(r.conf);
    dm_unit_destroy(&r.st);
}

/* Errors and restarts are counted for the alert rules: every failed attempt
 * is an error, one tried again a restart; a unit stays failed once. */
static void test_errors_and_restarts_counted(void)
{
    dm_unit_status_t st;
    dm_unit_init(&st);
    dm_unit_set(&st, DM_UNIT_RUNNING, NULL);
    dm_unit_set(&st, DM_UNIT_RETRYING, "down");
    dm_unit_set(&st, DM_UNIT_RETRYING, "down");
    dm_unit_set(&st, DM_UNIT_RUNNING, NULL);
    CHECK_EQ_U64(atomic_load(&st.errors), 2);
    CHECK_EQ_U64(atomic_load(&st.restarts), 2);
    dm_unit_set(&st, DM_UNIT_FAILED, "bad");
    dm_unit_set(&st, DM_UNIT_FAILED, "bad again");
    dm_unit_set(&st, DM_UNIT_STARTING, "waiting");
    CHECK_EQ_U64(atomic_load(&st.errors), 3);
    CHECK_EQ_U64(atomic_load(&st.restarts), 2);
    dm_unit_destroy(&st);
}

int main(void)
{
    if (!mkdtemp(dir)) return 1;
    char url[100];
    snprintf(url, sizeof(url), "embedded:%s/log", dir);
    dm_error_t err = {0};
    if (dm_transport_open(url, &t, &err) ||
        dm_avro_schema_parse(CLICK, strlen(CLICK), &schema, &err)) {
        printf("setup: %s\n", err.message);
        return 1;
    }
    RUN(test_state_names_are_what_users_see);
    RUN(test_retriable_error_retries_with_growing_backoff);
    RUN(test_fatal_or_unknown_error_fails);
    RUN(test_retry_wait_ends_at_stop);
    RUN(test_file_source_retries_until_its_file_appears);
    RUN(test_datagen_without_its_topic_fails);
    RUN(test_errors_and_restarts_counted);
    dm_transport_close(t);
    dm_avro_schema_free(schema);
    char cmd[200];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd)) {
    }
    return check_summary();
}
