/* Unit tests for engine/task schema versions: a task stops exactly before
 * the first record of a version newer than its plan knew, with everything
 * before it committed; a task reading the new version reads records of the
 * old one still unread by Avro resolution; a frozen task reads new versions
 * with its old reader schema, and stops at one it cannot read. */
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "core/varint.h"
#include "engine/task.h"
#include "schema/wire.h"

enum { V1 = 10, V2 = 11, V3 = 12, OUT = 20 };

static const char *v1_json = "{\"type\": \"record\", \"name\": \"Play\", \"fields\": ["
                             " {\"name\": \"id\", \"type\": \"long\"},"
                             " {\"name\": \"country\", \"type\": \"string\"}]}";
/* v1 + a nullable column (ALTER TABLE ADD COLUMN) */
static const char *v2_json = "{\"type\": \"record\", \"name\": \"Play\", \"fields\": ["
                             " {\"name\": \"id\", \"type\": \"long\"},"
                             " {\"name\": \"country\", \"type\": \"string\"},"
                             " {\"name\": \"tier\", \"type\": [\"null\", \"string\"], "
                             "\"default\": null}]}";
/* country became a number: no reader of v1 can read it */
static const char *v3_json = "{\"type\": \"record\", \"name\": \"Play\", \"fields\": ["
                             " {\"name\": \"id\", \"type\": \"long\"},"
                             " {\"name\": \"country\", \"type\": \"long\"}]}";

static dm_avro_schema_t *v1, *v2, *v3;
static char dir[256];

/* Lookups that fail for now before by_id answers, as the runtime's does
 * while the task's unit is being stopped (control/runtime_pipeline.c). */
static int busy_lookups;

static const dm_avro_schema_t *by_id(void *ctx, int64_t id, dm_error_t *err)
{
    (void)ctx;
    if (busy_lookups > 0) {
        busy_lookups--;
        dm_error_set(err, DM_ERR_AGAIN, "stopping while looking up schema id %lld", (long long)id);
        return NULL;
    }
    if (id == V1) return v1;
    if (id == V2) return v2;
    if (id == V3) return v3;
    dm_error_set(err, DM_ERR_NOT_FOUND, "schema id %lld is not in the registry", (long long)id);
    return NULL;
}

/* Produces n records with ids from first, written with version ver. */
static void produce(dm_transport_t *t, int64_t first, int n, int ver)
{
    const dm_avro_schema_t *s = by_id(NULL, ver, NULL);
    dm_buf_t bytes = DM_BUF_INIT;
    size_t *starts = calloc((size_t)n + 1, sizeof(size_t));
    dm_arena_t a;
    dm_arena_init(&a, 0);
    for (int i = 0; i < n; i++) {
        char json[200];
        if (ver == V1)
            snprintf(json, sizeof(json), "{\"id\": %lld, \"country\": \"US\"}",
                     (long long)(first + i));
        else if (ver == V2)
            snprintf(json, sizeof(json), "{\"id\": %lld, \"country\": \"US\", \"tier\": \"gold\"}",
                     (long long)(first + i));
        else
            snprintf(json, sizeof(json), "{\"id\": %lld, \"country\": 1}", (long long)(first + i));
        dm_avro_value_t v;
        dm_error_t err = {0};
        REQUIRE(dm_avro_from_json_text(s->root, json, strlen(json), DM_AVRO_JSON_PLAIN, &a, &v,
                                       &err) == DM_OK);
        starts[i] = bytes.len;
        dm_wire_put_header(&bytes, (uint32_t)ver);
        REQUIRE(dm_avro_encode(s->root, &v, &bytes, &err) == DM_OK);
    }
    starts[n] = bytes.len;
    dm_record_t *recs = calloc((size_t)n, sizeof(*recs));
    for (int i = 0; i < n; i++)
        recs[i] = (dm_record_t){.value = bytes.data + starts[i],
                                .value_len = (int32_t)(starts[i + 1] - starts[i]),
                                .key_len = -1};
    dm_error_t err = {0};
    REQUIRE(dm_transport_produce(t, "plays", 0, recs, (size_t)n, NULL, &err) == DM_OK);
    free(recs);
    free(starts);
    dm_buf_free(&bytes);
    dm_arena_destroy(&a);
}

static dm_transport_t *fresh(void)
{
    char cmd[300], url[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    snprintf(url, sizeof(url), "embedded:%s", dir);
    dm_transport_t *t = NULL;
    dm_error_t err = {0};
    REQUIRE(dm_transport_open(url, &t, &err) == DM_OK);
    const char *names[] = {"plays", "out", "dlq"};
    for (int i = 0; i < 3; i++)
        REQUIRE(dm_transport_create_topic(t,
                                          &(dm_topic_config_t){.name = names[i],
                                                               .partitions = 1,
                                                               .fsync = DM_TRANSPORT_FSYNC_NEVER},
                                          &err) == DM_OK);
    return t;
}

static json_t *filter_conf;

static dm_task_t *new_task(dm_transport_t *t, const dm_avro_schema_t *reader, uint32_t id,
                           dm_task_schema_policy_t policy)
{
    static dm_task_step_spec_t steps[1];
    steps[0] = (dm_task_step_spec_t){&dm_proc_filter, filter_conf};
    dm_task_config_t conf = {.name = "p/0",
                             .group = "pipeline.p",
                             .input_topic = "plays",
                             .input_schema = reader,
                             .input_schema_id = id,
                             .output_topic = "out",
                             .output_schema_id = OUT,
                             .dead_letter_topic = "dlq",
                             .steps = steps,
                             .n_steps = 1,
                             .max_batch_bytes = 1 << 20,
                             .schema_by_id = by_id,
                             .schema_policy = policy};
    dm_task_t *task = NULL;
    dm_error_t err = {0};
    REQUIRE(dm_task_new(t, &conf, &task, &err) == DM_OK);
    return task;
}

/* Steps until the input is drained or a step fails; returns the failure. */
static dm_err_t run(dm_task_t *task, dm_error_t *err)
{
    for (int guard = 0; guard < 1000; guard++) {
        size_t n = 0;
        dm_err_t rc = dm_task_step(task, 0, &n, err);
        if (rc) return rc;
        if (!n) return DM_OK;
    }
    return DM_ERR_TIMEOUT;
}

/* counts[id] per output record; returns how many records a topic holds. */
static int read_ids(dm_transport_t *t, const char *topic, int *counts, int max)
{
    dm_transport_batch_t b = {0};
    int64_t off = 0, start, end;
    dm_error_t err = {0};
    int total = 0;
    dm_transport_offsets(t, topic, 0, &start, &end, &err);
    while (off < end) {
        if (dm_transport_fetch(t, topic, 0, off, 1 << 20, 0, &b, &err) || !b.n) break;
        for (size_t i = 0; i < b.n; i++) {
            int64_t v = -1;
            total++;
            if (counts && b.records[i].value_len > 5)
                dm_varint_decode_i64(b.records[i].value + 5,
                                     b.records[i].value + b.records[i].value_len, &v);
            if (counts && v >= 0 && v < max) counts[v]++;
        }
        off = b.next_offset;
    }
    dm_transport_batch_free(t, &b);
    return total;
}

static void test_stops_exactly_at_new_version_then_resolves_old(void)
{
    dm_transport_t *t = fresh();
    produce(t, 0, 50, V1);
    produce(t, 50, 30, V2);
    produce(t, 80, 20, V1); /* an old producer still writing v1 */
    produce(t, 100, 10, V2);
    dm_task_t *task = new_task(t, v1, V1, DM_TASK_SCHEMA_STOP);
    dm_error_t err = {0};
    CHECK_EQ_INT(run(task, &err), DM_ERR_SCHEMA_NEW_VERSION);
    CHECK(strstr(err.message, "plays/0 offset 50 has schema id 11") != NULL);
    CHECK_EQ_INT(dm_task_position(task), 50);
    /* stepping again stops at once, at the same record */
    CHECK_EQ_INT(run(task, &err), DM_ERR_SCHEMA_NEW_VERSION);
    CHECK_EQ_INT(dm_task_position(task), 50);
    dm_task_free(task);
    CHECK_EQ_INT(read_ids(t, "out", NULL, 0), 50);
    /* the plan recompiled on v2: the rest, v1 records by resolution */
    task = new_task(t, v2, V2, DM_TASK_SCHEMA_STOP);
    CHECK_EQ_INT(run(task, &err), DM_OK);
    CHECK_EQ_INT(dm_task_position(task), 110);
    dm_task_free(task);
    int counts[110] = {0};
    CHECK_EQ_INT(read_ids(t, "out", counts, 110), 110);
    int once = 0;
    for (int i = 0; i < 110; i++)
        once += counts[i] == 1;
    CHECK_EQ_INT(once, 110);
    CHECK_EQ_INT(read_ids(t, "dlq", NULL, 0), 0);
    dm_transport_close(t);
}

static void test_freeze_reads_new_versions_as_old(void)
{
    dm_transport_t *t = fresh();
    produce(t, 0, 20, V1);
    produce(t, 20, 20, V2);
    dm_task_t *task = new_task(t, v1, V1, DM_TASK_SCHEMA_RESOLVE);
    dm_error_t err = {0};
    CHECK_EQ_INT(run(task, &err), DM_OK);
    CHECK_EQ_INT(dm_task_position(task), 40);
    CHECK_EQ_INT(read_ids(t, "out", NULL, 0), 40);
    CHECK_EQ_INT(read_ids(t, "dlq", NULL, 0), 0);
    /* a version its reader cannot read: stop before it, say which and why */
    produce(t, 40, 5, V1);
    produce(t, 45, 5, V3);
    CHECK_EQ_INT(run(task, &err), DM_ERR_SCHEMA_INCOMPATIBLE);
    CHECK(strstr(err.message, "offset 45 has schema id 12") != NULL);
    CHECK(strstr(err.message, "country") != NULL);
    CHECK_EQ_INT(dm_task_position(task), 45);
    CHECK_EQ_INT(read_ids(t, "out", NULL, 0), 45);
    dm_task_free(task);
    dm_transport_close(t);
}

/* The lenient switch's race, made deterministic: a task reading an older
 * version by resolution whose lookup fails for now (its unit stopping for a
 * restart) must end the step uncommitted, not dead-letter the batch; the
 * next try (or the restarted task) reads every record. */
static void test_lookup_failing_for_now_is_no_dead_letter(void)
{
    dm_transport_t *t = fresh();
    produce(t, 0, 30, V1);
    produce(t, 30, 20, V2);
    produce(t, 50, 10, V1);
    dm_task_t *task = new_task(t, v2, V2, DM_TASK_SCHEMA_STOP);
    dm_error_t err = {0};
    busy_lookups = 1;
    CHECK_EQ_INT(run(task, &err), DM_ERR_AGAIN);
    CHECK(err.retriable);
    CHECK(strstr(err.message, "plays/0: schema id 10") != NULL);
    CHECK_EQ_INT(dm_task_position(task), 0);
    CHECK_EQ_INT(read_ids(t, "out", NULL, 0), 0);
    CHECK_EQ_INT(read_ids(t, "dlq", NULL, 0), 0);
    CHECK_EQ_INT(busy_lookups, 0);
    CHECK_EQ_INT(run(task, &err), DM_OK);
    CHECK_EQ_INT(dm_task_position(task), 60);
    dm_task_free(task);
    /* a frozen reader meeting a newer version while the lookup fails: the
     * step commits what it could read and reads the rest on the next try */
    produce(t, 60, 5, V2);
    task = new_task(t, v1, V1, DM_TASK_SCHEMA_RESOLVE);
    busy_lookups = 1;
    CHECK_EQ_INT(run(task, &err), DM_ERR_AGAIN);
    CHECK_EQ_INT(dm_task_position(task), 60);
    CHECK_EQ_INT(run(task, &err), DM_OK);
    CHECK_EQ_INT(dm_task_position(task), 65);
    dm_task_free(task);
    int counts[65] = {0};
    CHECK_EQ_INT(read_ids(t, "out", counts, 65), 65);
    int once = 0;
    for (int i = 0; i < 65; i++)
        once += counts[i] == 1;
    CHECK_EQ_INT(once, 65);
    CHECK_EQ_INT(read_ids(t, "dlq", NULL, 0), 0);
    dm_transport_close(t);
}

static void test_without_lookup_other_ids_are_dead_letters(void)
{
    dm_transport_t *t = fresh();
    produce(t, 0, 5, V1);
    produce(t, 5, 5, V2);
    static dm_task_step_spec_t steps[1];
    steps[0] = (dm_task_step_spec_t){&dm_proc_filter, filter_conf};
    dm_task_config_t conf = {.name = "p/0",
                             .group = "pipeline.p",
                             .input_topic = "plays",
                             .input_schema = v1,
                             .input_schema_id = V1,
                             .output_topic = "out",
                             .output_schema_id = OUT,
                             .dead_letter_topic = "dlq",
                             .steps = steps,
                             .n_steps = 1};
    dm_task_t *task = NULL;
    dm_error_t err = {0};
    REQUIRE(dm_task_new(t, &conf, &task, &err) == DM_OK);
    CHECK_EQ_INT(run(task, &err), DM_OK);
    CHECK_EQ_INT(read_ids(t, "out", NULL, 0), 5);
    CHECK_EQ_INT(read_ids(t, "dlq", NULL, 0), 5);
    dm_task_free(task);
    dm_transport_close(t);
}

int main(void)
{
    dm_error_t err = {0};
    if (dm_avro_schema_parse(v1_json, strlen(v1_json), &v1, &err) ||
        dm_avro_schema_parse(v2_json, strlen(v2_json), &v2, &err) ||
        dm_avro_schema_parse(v3_json, strlen(v3_json), &v3, &err))
        return 1;
    snprintf(dir, sizeof(dir), "/tmp/dm_test_evolve_%d", (int)getpid());
    filter_conf = json_pack("{s:s}", "expr", "country = 'US' OR country <> 'US'");
    RUN(test_stops_exactly_at_new_version_then_resolves_old);
    RUN(test_freeze_reads_new_versions_as_old);
    RUN(test_lookup_failing_for_now_is_no_dead_letter);
    RUN(test_without_lookup_other_ids_are_dead_letters);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    json_decref(filter_conf);
    dm_avro_schema_free(v1);
    dm_avro_schema_free(v2);
    dm_avro_schema_free(v3);
    return check_summary();
}
