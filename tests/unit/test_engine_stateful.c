/* Unit tests for stateful tasks on the embedded log: a filter→project→
 * aggregate chain whose windows span a restart (state restored from the
 * state topic, spilled to RocksDB on the way), route into several topics,
 * processing-time timers firing without input, and exactly-once output of
 * the aggregate chain when the process running it is killed at random
 * moments. */
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "core/clock.h"
#include "engine/task.h"
#include "schema/wire.h"

#define SCHEMA_ID     7
#define OUT_SCHEMA_ID 8
#define WINDOW_MS     1000
#define TS_STEP       10 /* event time of id = id * TS_STEP: 100 ids per window */

static const char *schema_json =
    "{\"type\": \"record\", \"name\": \"Play\", \"fields\": ["
    " {\"name\": \"id\", \"type\": \"long\"}, {\"name\": \"country\", \"type\": \"string\"},"
    " {\"name\": \"amount\", \"type\": \"double\"}, {\"name\": \"qty\", \"type\": \"long\"},"
    " {\"name\": \"ts\", \"type\": \"long\"}]}";

static dm_avro_schema_t *schema;
static char dir[256];
static json_t *filter_conf, *project_conf, *aggregate_conf, *route_conf;

/* Produces plays with ids [first, first + n); every 7th is from FR, every
 * 10th has qty 0 (a division by zero in the project: dead letter). */
static void produce(dm_transport_t *t, int64_t first, int n)
{
    dm_buf_t bytes = DM_BUF_INIT;
    size_t *starts = calloc((size_t)n, sizeof(size_t));
    dm_arena_t a;
    dm_arena_init(&a, 0);
    for (int i = 0; i < n; i++) {
        int64_t id = first + i;
        char json[256];
        snprintf(json, sizeof(json),
                 "{\"id\": %lld, \"country\": \"%s\", \"amount\": 1.5, \"qty\": %d, \"ts\": %lld}",
                 (long long)id, id % 7 == 0 ? "FR" : "US", id % 10 == 0 ? 0 : 2,
                 (long long)(id * TS_STEP));
        dm_avro_value_t v;
        dm_error_t err = {0};
        REQUIRE(dm_avro_from_json_text(schema->root, json, strlen(json), DM_AVRO_JSON_PLAIN, &a, &v,
                                       &err) == DM_OK);
        starts[i] = bytes.len;
        dm_wire_put_header(&bytes, SCHEMA_ID);
        REQUIRE(dm_avro_encode(schema->root, &v, &bytes, &err) == DM_OK);
    }
    dm_record_t *recs = calloc((size_t)n, sizeof(*recs));
    for (int i = 0; i < n; i++) {
        size_t end = i + 1 < n ? starts[i + 1] : bytes.len;
        recs[i] = (dm_record_t){.value = bytes.data + starts[i],
                                .value_len = (int32_t)(end - starts[i]),
                                .key_len = -1};
    }
    dm_error_t err = {0};
    REQUIRE(dm_transport_produce(t, "plays", 0, recs, (size_t)n, NULL, &err) == DM_OK);
    free(recs);
    free(starts);
    dm_buf_free(&bytes);
    dm_arena_destroy(&a);
}

static dm_transport_t *open_transport(void)
{
    char url[300];
    snprintf(url, sizeof(url), "embedded:%s", dir);
    dm_transport_t *t;
    dm_error_t err = {0};
    if (dm_transport_open(url, &t, &err)) {
        printf("    open: %s\n", err.message);
        return NULL;
    }
    return t;
}

static void create_topics(dm_transport_t *t)
{
    dm_error_t err = {0};
    const char *names[] = {"plays", "windows", "windows.dlq", "windows.state", "plays.fr"};
    for (int i = 0; i < 5; i++)
        REQUIRE(dm_transport_create_topic(t,
                                          &(dm_topic_config_t){.name = names[i],
                                                               .partitions = 1,
                                                               .compact = i == 3,
                                                               .fsync = DM_TRANSPORT_FSYNC_NEVER},
                                          &err) == DM_OK);
}

static const char *state_dir; /* NULL: state in memory only */

static dm_err_t new_aggregate_task(dm_transport_t *t, dm_task_t **task, dm_error_t *err)
{
    static dm_task_step_spec_t steps[3];
    steps[0] = (dm_task_step_spec_t){&dm_proc_filter, filter_conf};
    steps[1] = (dm_task_step_spec_t){&dm_proc_project, project_conf};
    steps[2] = (dm_task_step_spec_t){&dm_proc_aggregate, aggregate_conf};
    dm_task_config_t conf = {.name = "windows/0",
                             .group = "pipeline.windows",
                             .input_topic = "plays",
                             .input_partition = 0,
                             .input_schema = schema,
                             .input_schema_id = SCHEMA_ID,
                             .output_topic = "windows",
                             .output_schema_id = OUT_SCHEMA_ID,
                             .dead_letter_topic = "windows.dlq",
                             .steps = steps,
                             .n_steps = 3,
                             .max_batch_bytes = 4096,
                             .state_topic = "windows.state",
                             .state_dir = state_dir,
                             .state_spill_bytes = state_dir ? 256 : 0,
                             .event_time = "ts"};
    return dm_task_new(t, &conf, task, err);
}

static void drain(dm_task_t *task, dm_transport_t *t)
{
    int64_t start, end;
    dm_error_t err = {0};
    REQUIRE(dm_transport_offsets(t, "plays", 0, &start, &end, &err) == DM_OK);
    for (int guard = 0; dm_task_position(task) < end && guard < 100000; guard++) {
        size_t n;
        if (dm_task_step(task, 100, &n, &err)) {
            printf("    step: %s\n", err.message);
            REQUIRE(0);
        }
    }
}

/* Per window and group g (id % 3): how often it was emitted, and its count
 * and sum of ids the last time. */
typedef struct cell {
    int seen;
    int64_t n, ids;
} cell_t;

static void read_windows(dm_transport_t *t, const dm_avro_node_t *node, cell_t *cells,
                         int n_windows)
{
    dm_transport_batch_t b = {0};
    int64_t off = 0, end, start;
    dm_error_t err = {0};
    dm_transport_offsets(t, "windows", 0, &start, &end, &err);
    dm_arena_t a;
    dm_arena_init(&a, 0);
    while (off < end) {
        if (dm_transport_fetch(t, "windows", 0, off, 1 << 20, 0, &b, &err) || b.n == 0) break;
        for (size_t i = 0; i < b.n; i++) {
            const dm_record_t *r = &b.records[i];
            dm_avro_value_t v;
            uint32_t id = 0;
            CHECK(dm_wire_get_header(r->value, (size_t)r->value_len, &id) == DM_OK);
            CHECK_EQ_INT(id, OUT_SCHEMA_ID);
            if (dm_avro_decode_node(node, r->value + 5, (size_t)r->value_len - 5, NULL, &a, &v,
                                    &err)) {
                printf("    decode: %s\n", err.message);
                CHECK(0);
                continue;
            }
            /* window_start, window_end, g, n, ids */
            int64_t w = v.u.v[0].u.l / WINDOW_MS, g = v.u.v[2].u.l;
            CHECK_EQ_INT(v.u.v[1].u.l - v.u.v[0].u.l, WINDOW_MS);
            if (w < 0 || w >= n_windows || g < 0 || g > 2) continue;
            cell_t *c = &cells[w * 3 + g];
            c->seen++;
            c->n = v.u.v[3].u.l;
            c->ids = v.u.v[4].type == DM_AVRO_NULL ? -1 : v.u.v[4].u.l;
        }
        off = b.next_offset;
        dm_arena_reset(&a);
    }
    dm_transport_batch_free(t, &b);
    dm_arena_destroy(&a);
}

/* Windows [0, n_windows) must each have come out exactly once per group with
 * the count and sum of the ids that pass the filter and the project. */
static int wrong_windows(const cell_t *cells, int n_windows)
{
    int wrong = 0;
    for (int w = 0; w < n_windows; w++)
        for (int g = 0; g < 3; g++) {
            int64_t n = 0, ids = 0;
            for (int64_t id = (int64_t)w * 100; id < (int64_t)(w + 1) * 100; id++)
                if (id % 7 && id % 10 && id % 3 == g) n++, ids += id;
            const cell_t *c = &cells[w * 3 + g];
            if (c->seen != 1 || c->n != n || c->ids != ids) {
                if (wrong < 5)
                    printf("    window %d group %d: seen %d, n %lld (want %lld), ids %lld (want "
                           "%lld)\n",
                           w, g, c->seen, (long long)c->n, (long long)n, (long long)c->ids,
                           (long long)ids);
                wrong++;
            }
        }
    return wrong;
}

static void rm_dir(void)
{
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
}

static void test_windows_span_a_restart(void)
{
    snprintf(dir, sizeof(dir), "/tmp/dm-stateful-XXXXXX");
    REQUIRE(mkdtemp(dir));
    char sd[300];
    snprintf(sd, sizeof(sd), "%s/state", dir);
    state_dir = sd; /* spill at every commit: the RocksDB path carries the windows */
    dm_transport_t *t = open_transport();
    REQUIRE(t);
    create_topics(t);
    produce(t, 0, 950); /* window 9 is half full when the task stops */
    dm_task_t *task;
    dm_error_t err = {0};
    if (new_aggregate_task(t, &task, &err)) printf("    %s\n", err.message);
    REQUIRE(task);
    drain(task, t);
    CHECK_EQ_INT(dm_task_watermark(task), 949 * TS_STEP);
    dm_task_free(task);
    /* A new instance: the half window and the watermark come back from the state topic. */
    produce(t, 950, 1050);
    REQUIRE(new_aggregate_task(t, &task, &err) == DM_OK);
    CHECK_EQ_INT(dm_task_watermark(task), 949 * TS_STEP);
    CHECK_EQ_INT(dm_task_position(task), 950);
    drain(task, t);
    produce(t, 5000, 1); /* moves the watermark past window 19 */
    drain(task, t);
    cell_t cells[20 * 3] = {{0}};
    read_windows(t, dm_task_output_schema(task), cells, 20);
    CHECK_EQ_INT(wrong_windows(cells, 20), 0);
    /* Late input after the windows closed goes to the dead letters, not lost. */
    int64_t dlq_start, dlq_before, dlq_after;
    dm_transport_offsets(t, "windows.dlq", 0, &dlq_start, &dlq_before, &err);
    produce(t, 1003, 2); /* US, qty 2: both in window 10, long closed */
    drain(task, t);
    dm_transport_offsets(t, "windows.dlq", 0, &dlq_start, &dlq_after, &err);
    CHECK_EQ_INT(dlq_after - dlq_before, 2);
    dm_task_free(task);
    dm_transport_close(t);
    state_dir = NULL;
    rm_dir();
}

/* ---- a failed step rolls state back ------------------------------------------------------ */

/* Passes records through but fails every third batch it sees: after the
 * aggregate before it has changed its state for that batch. */
static int flaky_calls;

static dm_err_t flaky_open(dm_proc_t *p, const void *config, const dm_avro_node_t *input,
                           dm_avro_schema_t **output, dm_error_t *err)
{
    (void)p, (void)config, (void)input, (void)err;
    *output = NULL;
    return DM_OK;
}

static dm_err_t flaky_process(dm_proc_t *p, const dm_rows_t *in, dm_rows_t *out,
                              dm_dead_letters_t *dead, dm_error_t *err)
{
    (void)p, (void)dead;
    if (++flaky_calls % 3 == 0) return dm_error_set(err, DM_ERR_AGAIN, "flaky: try again");
    for (uint32_t i = 0; i < in->n; i++) {
        dm_row_t *r = dm_rows_push(out);
        if (!r) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
        *r = in->records[i];
    }
    return DM_OK;
}

static const dm_proc_ops_t flaky = {
    .name = "flaky",
    .open = flaky_open,
    .process = flaky_process,
};

static void test_failed_step_restores_state(void)
{
    snprintf(dir, sizeof(dir), "/tmp/dm-stateful-XXXXXX");
    REQUIRE(mkdtemp(dir));
    dm_transport_t *t = open_transport();
    REQUIRE(t);
    create_topics(t);
    for (int i = 0; i < 20; i++) /* 20 log batches: 20 steps */
        produce(t, i * 50, 50);
    produce(t, 5000, 1); /* closes windows 0..9 */
    dm_task_step_spec_t steps[] = {{&dm_proc_filter, filter_conf},
                                   {&dm_proc_project, project_conf},
                                   {&dm_proc_aggregate, aggregate_conf},
                                   {&flaky, NULL}};
    dm_task_config_t conf = {.name = "flaky/0",
                             .group = "pipeline.flaky",
                             .input_topic = "plays",
                             .input_schema = schema,
                             .input_schema_id = SCHEMA_ID,
                             .output_topic = "windows",
                             .output_schema_id = OUT_SCHEMA_ID,
                             .dead_letter_topic = "windows.dlq",
                             .steps = steps,
                             .n_steps = 4,
                             .max_batch_bytes = 2048,
                             .state_topic = "windows.state",
                             .event_time = "ts"};
    dm_task_t *task;
    dm_error_t err = {0};
    REQUIRE(dm_task_new(t, &conf, &task, &err) == DM_OK);
    int failures = 0;
    for (int guard = 0; dm_task_position(task) < 1001 && guard < 10000; guard++) {
        size_t n;
        if (dm_task_step(task, 0, &n, &err)) failures++; /* retried as the runtime does */
    }
    printf("    %d failed steps retried (%d batches)\n", failures, flaky_calls);
    CHECK(failures > 3);
    cell_t cells[10 * 3] = {{0}};
    read_windows(t, dm_task_output_schema(task), cells, 10);
    CHECK_EQ_INT(wrong_windows(cells, 10), 0);
    dm_task_free(task);
    dm_transport_close(t);
    rm_dir();
}

/* ---- union ------------------------------------------------------------------------------ */

/* Taps: the same fields under another record name, in another order, with
 * one more; they union with plays. */
static const char *taps_json =
    "{\"type\": \"record\", \"name\": \"Tap\", \"namespace\": \"mobile\", \"fields\": ["
    " {\"name\": \"ts\", \"type\": \"long\"}, {\"name\": \"id\", \"type\": \"long\"},"
    " {\"name\": \"screen\", \"type\": \"string\"}, {\"name\": \"qty\", \"type\": \"long\"},"
    " {\"name\": \"amount\", \"type\": \"double\"}, {\"name\": \"country\", \"type\": "
    "\"string\"}]}";

static void produce_taps(dm_transport_t *t, const dm_avro_schema_t *taps, int64_t first, int n)
{
    dm_arena_t a;
    dm_arena_init(&a, 0);
    for (int i = 0; i < n; i++) {
        int64_t id = first + i;
        char json[256];
        snprintf(json, sizeof(json),
                 "{\"ts\": %lld, \"id\": %lld, \"screen\": \"home\", \"qty\": 2, \"amount\": 1.0, "
                 "\"country\": \"US\"}",
                 (long long)(id * TS_STEP), (long long)id);
        dm_avro_value_t v;
        dm_error_t err = {0};
        dm_buf_t bytes = DM_BUF_INIT;
        REQUIRE(dm_avro_from_json_text(taps->root, json, strlen(json), DM_AVRO_JSON_PLAIN, &a, &v,
                                       &err) == DM_OK);
        dm_wire_put_header(&bytes, 9);
        REQUIRE(dm_avro_encode(taps->root, &v, &bytes, &err) == DM_OK);
        dm_record_t rec = {.value = bytes.data, .value_len = (int32_t)bytes.len, .key_len = -1};
        REQUIRE(dm_transport_produce(t, "taps", 0, &rec, 1, NULL, &err) == DM_OK);
        dm_buf_free(&bytes);
    }
    dm_arena_destroy(&a);
}

static dm_err_t new_union_task(dm_transport_t *t, const dm_avro_schema_t *taps, dm_task_t **task,
                               dm_error_t *err)
{
    static dm_task_step_spec_t steps[1];
    steps[0] = (dm_task_step_spec_t){&dm_proc_filter, filter_conf};
    dm_task_input_t more = {"taps", 0, taps, 9};
    dm_task_config_t conf = {.name = "union/0",
                             .group = "pipeline.union",
                             .input_topic = "plays",
                             .input_schema = schema,
                             .input_schema_id = SCHEMA_ID,
                             .output_topic = "windows",
                             .output_schema_id = SCHEMA_ID,
                             .dead_letter_topic = "windows.dlq",
                             .steps = steps,
                             .n_steps = 1,
                             .max_batch_bytes = 1024,
                             .more_inputs = &more,
                             .n_more_inputs = 1};
    return dm_task_new(t, &conf, task, err);
}

static void drain_union(dm_task_t *task)
{
    dm_error_t err = {0};
    for (int idle = 0; idle < 3;) {
        size_t n;
        REQUIRE(dm_task_step(task, 0, &n, &err) == DM_OK);
        idle = n ? 0 : idle + 1;
    }
}

static void test_union_of_two_sources(void)
{
    snprintf(dir, sizeof(dir), "/tmp/dm-stateful-XXXXXX");
    REQUIRE(mkdtemp(dir));
    dm_transport_t *t = open_transport();
    REQUIRE(t);
    create_topics(t);
    dm_error_t err = {0};
    REQUIRE(dm_transport_create_topic(t, &(dm_topic_config_t){.name = "taps", .partitions = 1},
                                      &err) == DM_OK);
    dm_avro_schema_t *taps;
    REQUIRE(dm_avro_schema_parse(taps_json, strlen(taps_json), &taps, &err) == DM_OK);
    produce(t, 1, 70); /* 60 from the US */
    produce_taps(t, taps, 1000, 30);
    dm_task_t *task;
    REQUIRE(new_union_task(t, taps, &task, &err) == DM_OK);
    drain_union(task);
    dm_task_free(task);
    /* A restart resumes both inputs at their own committed offsets. */
    produce(t, 71, 7);
    produce_taps(t, taps, 1030, 5);
    REQUIRE(new_union_task(t, taps, &task, &err) == DM_OK);
    dm_tp_offset_t ins[4];
    CHECK_EQ_INT(dm_task_inputs(task, ins, 4), 2);
    CHECK_STR_EQ(ins[1].topic, "taps");
    CHECK_EQ_INT(ins[0].offset, 70);
    CHECK_EQ_INT(ins[1].offset, 30);
    drain_union(task);
    CHECK_EQ_INT(dm_task_lag(task), 0);
    dm_task_free(task);
    int64_t s, end;
    dm_transport_offsets(t, "windows", 0, &s, &end, &err);
    CHECK_EQ_INT(end, 60 + 30 + 6 + 5); /* 77 is from FR */
    /* Every output value decodes as a play (the taps were read as plays). */
    dm_transport_batch_t b = {0};
    dm_arena_t a;
    dm_arena_init(&a, 0);
    int taps_seen = 0, bad = 0;
    for (int64_t off = 0; off < end;) {
        REQUIRE(dm_transport_fetch(t, "windows", 0, off, 1 << 20, 0, &b, &err) == DM_OK);
        for (size_t i = 0; i < b.n; i++) {
            dm_avro_value_t v;
            if (dm_avro_decode_node(schema->root, b.records[i].value + 5,
                                    (size_t)b.records[i].value_len - 5, NULL, &a, &v, &err)) {
                bad++;
                continue;
            }
            if (v.u.v[0].u.l >= 1000) {
                taps_seen++;
                if (v.u.v[4].u.l != v.u.v[0].u.l * TS_STEP) bad++;
            }
        }
        off = b.next_offset;
    }
    CHECK_EQ_INT(taps_seen, 35);
    CHECK_EQ_INT(bad, 0);
    dm_transport_batch_free(t, &b);
    dm_arena_destroy(&a);
    /* A source missing a field the union needs is refused, naming the field. */
    dm_avro_schema_t *narrow, *reader = NULL;
    const char *narrow_json = "{\"type\": \"record\", \"name\": \"N\", \"fields\": [{\"name\": "
                              "\"id\", \"type\": \"long\"}, {\"name\": \"country\", \"type\": "
                              "\"string\"}, {\"name\": \"amount\", \"type\": \"double\"}, "
                              "{\"name\": \"ts\", \"type\": \"long\"}]}";
    REQUIRE(dm_avro_schema_parse(narrow_json, strlen(narrow_json), &narrow, &err) == DM_OK);
    CHECK(dm_task_union_reader(schema, narrow, &reader, &err) == DM_ERR_SCHEMA_INCOMPATIBLE);
    CHECK_CONTAINS(err.message, "qty");
    CHECK(reader == NULL);
    dm_avro_schema_free(narrow);
    dm_avro_schema_free(taps);
    dm_transport_close(t);
    rm_dir();
}

/* With two inputs the watermark follows the slower one, until it has brought
 * nothing for the idle timeout. */
static dm_err_t new_union_windows_task(dm_transport_t *t, const dm_avro_schema_t *taps,
                                       dm_task_t **task, dm_error_t *err)
{
    static dm_task_step_spec_t steps[1];
    steps[0] = (dm_task_step_spec_t){&dm_proc_aggregate, aggregate_conf};
    static dm_task_input_t more;
    more = (dm_task_input_t){"taps", 0, taps, 9};
    dm_task_config_t conf = {.name = "union-windows/0",
                             .group = "pipeline.union-windows",
                             .input_topic = "plays",
                             .input_schema = schema,
                             .input_schema_id = SCHEMA_ID,
                             .output_topic = "windows",
                             .output_schema_id = OUT_SCHEMA_ID,
                             .dead_letter_topic = "windows.dlq",
                             .steps = steps,
                             .n_steps = 1,
                             .state_topic = "windows.state",
                             .event_time = "ts",
                             .more_inputs = &more,
                             .n_more_inputs = 1,
                             .idle_timeout_ms = 300};
    return dm_task_new(t, &conf, task, err);
}

static int64_t windows_written(dm_transport_t *t)
{
    int64_t s, end;
    dm_error_t err = {0};
    dm_transport_offsets(t, "windows", 0, &s, &end, &err);
    return end;
}

static void test_watermark_waits_for_the_slower_input(void)
{
    snprintf(dir, sizeof(dir), "/tmp/dm-stateful-XXXXXX");
    REQUIRE(mkdtemp(dir));
    dm_transport_t *t = open_transport();
    REQUIRE(t);
    create_topics(t);
    dm_error_t err = {0};
    REQUIRE(dm_transport_create_topic(t, &(dm_topic_config_t){.name = "taps", .partitions = 1},
                                      &err) == DM_OK);
    dm_avro_schema_t *taps;
    REQUIRE(dm_avro_schema_parse(taps_json, strlen(taps_json), &taps, &err) == DM_OK);
    produce_taps(t, taps, 1, 1); /* taps reached event time 10 ... */
    produce(t, 1, 250);          /* ... plays 2500: two windows of plays are complete */
    dm_task_t *task;
    REQUIRE(new_union_windows_task(t, taps, &task, &err) == DM_OK);
    drain_union(task);
    CHECK_EQ_INT(windows_written(t), 0); /* the taps hold them open */
    CHECK(dm_task_watermark(task) <= 10);
    /* Taps bring nothing for longer than the idle timeout: the next plays
     * close the windows the plays completed. */
    usleep(400 * 1000);
    produce(t, 251, 1);
    drain_union(task);
    CHECK_EQ_INT(dm_task_watermark(task), 2510);
    CHECK_EQ_INT(windows_written(t), 2 * 3); /* windows [0, 1000) and [1000, 2000), 3 groups */
    /* Taps come back behind the plays: they hold the watermark again, and it
     * does not go back. */
    produce_taps(t, taps, 255, 1); /* 2550 */
    produce(t, 252, 100);          /* up to 3510 */
    drain_union(task);
    CHECK_EQ_INT(dm_task_watermark(task), 2550);
    CHECK_EQ_INT(windows_written(t), 2 * 3);
    dm_task_free(task);
    dm_avro_schema_free(taps);
    dm_transport_close(t);
    rm_dir();
}

/* ---- join ------------------------------------------------------------------------------- */

static const char *pays_json = "{\"type\": \"record\", \"name\": \"Pay\", \"fields\": [{\"name\": "
                               "\"id\", \"type\": \"long\"}, {\"name\": \"paid\", \"type\": "
                               "\"double\"}, {\"name\": \"ts\", \"type\": \"long\"}]}";

static void produce_pays(dm_transport_t *t, const dm_avro_schema_t *pays, int64_t first, int n)
{
    dm_arena_t a;
    dm_arena_init(&a, 0);
    for (int64_t id = first; id < first + n; id += 2) {
        char json[200];
        snprintf(json, sizeof(json), "{\"id\": %lld, \"paid\": 2.5, \"ts\": %lld}", (long long)id,
                 (long long)(id * TS_STEP + 5));
        dm_avro_value_t v;
        dm_error_t err = {0};
        dm_buf_t bytes = DM_BUF_INIT;
        REQUIRE(dm_avro_from_json_text(pays->root, json, strlen(json), DM_AVRO_JSON_PLAIN, &a, &v,
                                       &err) == DM_OK);
        dm_wire_put_header(&bytes, 11);
        REQUIRE(dm_avro_encode(pays->root, &v, &bytes, &err) == DM_OK);
        dm_record_t rec = {.value = bytes.data, .value_len = (int32_t)bytes.len, .key_len = -1};
        REQUIRE(dm_transport_produce(t, "pays", 0, &rec, 1, NULL, &err) == DM_OK);
        dm_buf_free(&bytes);
    }
    dm_arena_destroy(&a);
}

static dm_err_t new_join_task(dm_transport_t *t, const dm_avro_schema_t *pays, const json_t *conf,
                              dm_task_t **task, dm_error_t *err)
{
    dm_task_step_spec_t steps[] = {{&dm_proc_join, conf}};
    dm_task_input_t other = {"pays", 0, pays, 11};
    dm_task_config_t c = {.name = "join/0",
                          .group = "pipeline.join",
                          .input_topic = "plays",
                          .input_schema = schema,
                          .input_schema_id = SCHEMA_ID,
                          .output_topic = "windows",
                          .output_schema_id = OUT_SCHEMA_ID,
                          .dead_letter_topic = "windows.dlq",
                          .steps = steps,
                          .n_steps = 1,
                          .max_batch_bytes = 1024,
                          .state_topic = "windows.state",
                          .event_time = "ts",
                          .other_inputs = &other,
                          .n_other_inputs = 1};
    return dm_task_new(t, &c, task, err);
}

static void test_join_across_a_restart(void)
{
    snprintf(dir, sizeof(dir), "/tmp/dm-stateful-XXXXXX");
    REQUIRE(mkdtemp(dir));
    dm_transport_t *t = open_transport();
    REQUIRE(t);
    create_topics(t);
    dm_error_t err = {0};
    REQUIRE(dm_transport_create_topic(t, &(dm_topic_config_t){.name = "pays", .partitions = 1},
                                      &err) == DM_OK);
    dm_avro_schema_t *pays;
    REQUIRE(dm_avro_schema_parse(pays_json, strlen(pays_json), &pays, &err) == DM_OK);
    json_t *conf = json_pack("{s:s, s:s, s:s, s:s}", "with", "pays", "on", "id", "within", "10s",
                             "time", "ts");
    produce(t, 0, 60);
    produce_pays(t, pays, 0, 100); /* even ids 0..98 */
    dm_task_t *task;
    REQUIRE(new_join_task(t, pays, conf, &task, &err) == DM_OK);
    drain_union(task);
    dm_task_free(task);
    /* Plays 60..99 meet payments kept in the state of the instance before. */
    produce(t, 60, 40);
    REQUIRE(new_join_task(t, pays, conf, &task, &err) == DM_OK);
    drain_union(task);
    const dm_avro_node_t *node = dm_task_output_schema(task);
    CHECK_EQ_INT(node->n_fields, 7); /* the play's 5, paid, pays_ts */
    int counts[100] = {0}, bad = 0;
    int64_t off = 0, s0, end;
    dm_transport_offsets(t, "windows", 0, &s0, &end, &err);
    dm_transport_batch_t b = {0};
    dm_arena_t a;
    dm_arena_init(&a, 0);
    while (off < end) {
        REQUIRE(dm_transport_fetch(t, "windows", 0, off, 1 << 20, 0, &b, &err) == DM_OK);
        for (size_t i = 0; i < b.n; i++) {
            dm_avro_value_t v;
            if (dm_avro_decode_node(node, b.records[i].value + 5,
                                    (size_t)b.records[i].value_len - 5, NULL, &a, &v, &err) ||
                v.u.v[0].u.l < 0 || v.u.v[0].u.l >= 100 || v.u.v[6].u.l != v.u.v[4].u.l + 5) {
                bad++;
                continue;
            }
            counts[v.u.v[0].u.l]++;
        }
        off = b.next_offset;
    }
    dm_transport_batch_free(t, &b);
    dm_arena_destroy(&a);
    int wrong = 0;
    for (int id = 0; id < 100; id++)
        wrong += counts[id] != (id % 2 == 0);
    CHECK_EQ_INT(wrong, 0);
    CHECK_EQ_INT(bad, 0);
    dm_task_free(task);
    json_decref(conf);
    dm_avro_schema_free(pays);
    dm_transport_close(t);
    rm_dir();
}

/* A join after a filter: the payments enter the chain at the join, the
 * plays are filtered first; a second join in a chain is refused. */
static void test_join_after_a_filter(void)
{
    snprintf(dir, sizeof(dir), "/tmp/dm-stateful-XXXXXX");
    REQUIRE(mkdtemp(dir));
    dm_transport_t *t = open_transport();
    REQUIRE(t);
    create_topics(t);
    dm_error_t err = {0};
    REQUIRE(dm_transport_create_topic(t, &(dm_topic_config_t){.name = "pays", .partitions = 1},
                                      &err) == DM_OK);
    dm_avro_schema_t *pays;
    REQUIRE(dm_avro_schema_parse(pays_json, strlen(pays_json), &pays, &err) == DM_OK);
    json_t *conf = json_pack("{s:s, s:s, s:s, s:s}", "with", "pays", "on", "id", "within", "10s",
                             "time", "ts");
    produce(t, 0, 100);
    produce_pays(t, pays, 0, 100); /* even ids 0..98 */
    dm_task_step_spec_t steps[] = {
        {&dm_proc_filter, filter_conf}, {&dm_proc_join, conf}, {&dm_proc_join, conf}};
    dm_task_input_t other = {"pays", 0, pays, 11};
    dm_task_config_t c = {.name = "join/0",
                          .group = "pipeline.join",
                          .input_topic = "plays",
                          .input_schema = schema,
                          .input_schema_id = SCHEMA_ID,
                          .output_topic = "windows",
                          .output_schema_id = OUT_SCHEMA_ID,
                          .dead_letter_topic = "windows.dlq",
                          .steps = steps,
                          .n_steps = 3,
                          .max_batch_bytes = 1024,
                          .state_topic = "windows.state",
                          .event_time = "ts",
                          .other_inputs = &other,
                          .n_other_inputs = 1};
    dm_task_t *task;
    CHECK(dm_task_new(t, &c, &task, &err) == DM_ERR_INVALID);
    CHECK_CONTAINS(err.message, "one join");
    c.n_steps = 2;
    REQUIRE(dm_task_new(t, &c, &task, &err) == DM_OK);
    drain_union(task);
    const dm_avro_node_t *node = dm_task_output_schema(task);
    int counts[100] = {0}, bad = 0;
    int64_t off = 0, s0, end;
    dm_transport_offsets(t, "windows", 0, &s0, &end, &err);
    dm_transport_batch_t b = {0};
    dm_arena_t a;
    dm_arena_init(&a, 0);
    while (off < end) {
        REQUIRE(dm_transport_fetch(t, "windows", 0, off, 1 << 20, 0, &b, &err) == DM_OK);
        for (size_t i = 0; i < b.n; i++) {
            dm_avro_value_t v;
            if (dm_avro_decode_node(node, b.records[i].value + 5,
                                    (size_t)b.records[i].value_len - 5, NULL, &a, &v, &err) ||
                v.u.v[0].u.l < 0 || v.u.v[0].u.l >= 100) {
                bad++;
                continue;
            }
            counts[v.u.v[0].u.l]++;
        }
        off = b.next_offset;
    }
    dm_transport_batch_free(t, &b);
    dm_arena_destroy(&a);
    int wrong = 0;
    for (int id = 0; id < 100; id++) /* paid (even) and from the US (not every 7th) */
        wrong += counts[id] != (id % 2 == 0 && id % 7 != 0);
    CHECK_EQ_INT(wrong, 0);
    CHECK_EQ_INT(bad, 0);
    dm_task_free(task);
    json_decref(conf);
    dm_avro_schema_free(pays);
    dm_transport_close(t);
    rm_dir();
}

/* ---- route ------------------------------------------------------------------------------ */

static void test_route_to_several_topics(void)
{
    snprintf(dir, sizeof(dir), "/tmp/dm-stateful-XXXXXX");
    REQUIRE(mkdtemp(dir));
    dm_transport_t *t = open_transport();
    REQUIRE(t);
    create_topics(t);
    produce(t, 1, 70);
    dm_task_step_spec_t steps[] = {{&dm_proc_route, route_conf}};
    const char *extra[] = {"plays.fr"};
    dm_task_config_t conf = {.name = "route/0",
                             .group = "pipeline.route",
                             .input_topic = "plays",
                             .input_schema = schema,
                             .input_schema_id = SCHEMA_ID,
                             .output_topic = "windows",
                             .output_schema_id = SCHEMA_ID,
                             .dead_letter_topic = "windows.dlq",
                             .steps = steps,
                             .n_steps = 1,
                             .extra_topics = extra,
                             .n_extra_topics = 1};
    dm_task_t *task;
    dm_error_t err = {0};
    /* Without a topic for the route's output the task refuses to start. */
    conf.n_extra_topics = 0;
    CHECK(dm_task_new(t, &conf, &task, &err) == DM_ERR_INVALID);
    CHECK_CONTAINS(err.message, "extra output");
    conf.n_extra_topics = 1;
    REQUIRE(dm_task_new(t, &conf, &task, &err) == DM_OK);
    drain(task, t);
    int64_t s, fr, us;
    dm_transport_offsets(t, "plays.fr", 0, &s, &fr, &err);
    dm_transport_offsets(t, "windows", 0, &s, &us, &err);
    CHECK_EQ_INT(fr, 10); /* ids 7, 14, ..., 70 */
    CHECK_EQ_INT(us, 60);
    dm_task_free(task);
    dm_transport_close(t);
    rm_dir();
}

/* ---- processing-time timers ----------------------------------------------------------- */

/* A processor that passes records and emits one marker record from its
 * processing-time timer, 30 ms after it opened. */
static dm_err_t ticker_open(dm_proc_t *p, const void *config, const dm_avro_node_t *input,
                            dm_avro_schema_t **output, dm_error_t *err)
{
    (void)config, (void)input, (void)err;
    p->timer_at = dm_wall_ms() + 30;
    *output = NULL;
    return DM_OK;
}

static dm_err_t ticker_process(dm_proc_t *p, const dm_rows_t *in, dm_rows_t *out,
                               dm_dead_letters_t *dead, dm_error_t *err)
{
    (void)p, (void)in, (void)out, (void)dead, (void)err;
    return DM_OK;
}

static dm_err_t ticker_timer(dm_proc_t *p, int64_t now, dm_rows_t *out, dm_error_t *err)
{
    (void)p;
    const char *json = "{\"id\": 424242, \"country\": \"T\", \"amount\": 0, \"qty\": 1, \"ts\": 1}";
    dm_row_t *r = dm_rows_push(out);
    if (!r) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    r->timestamp = now;
    return dm_avro_from_json_text(out->schema, json, strlen(json), DM_AVRO_JSON_PLAIN, &out->arena,
                                  &r->value, err);
}

static const dm_proc_ops_t ticker = {
    .name = "ticker",
    .open = ticker_open,
    .process = ticker_process,
    .on_timer = ticker_timer,
};

static void test_processing_time_timer_without_input(void)
{
    snprintf(dir, sizeof(dir), "/tmp/dm-stateful-XXXXXX");
    REQUIRE(mkdtemp(dir));
    dm_transport_t *t = open_transport();
    REQUIRE(t);
    create_topics(t);
    dm_task_step_spec_t steps[] = {{&ticker, NULL}};
    dm_task_config_t conf = {.name = "tick/0",
                             .group = "pipeline.tick",
                             .input_topic = "plays",
                             .input_schema = schema,
                             .input_schema_id = SCHEMA_ID,
                             .output_topic = "windows",
                             .output_schema_id = SCHEMA_ID,
                             .dead_letter_topic = "windows.dlq",
                             .steps = steps,
                             .n_steps = 1};
    dm_task_t *task;
    dm_error_t err = {0};
    REQUIRE(dm_task_new(t, &conf, &task, &err) == DM_OK);
    size_t n;
    CHECK(dm_task_next_timer(task) > 0);
    CHECK(dm_task_step(task, 0, &n, &err) == DM_OK); /* 0: returns at once, nothing due */
    int64_t s, end = 0;
    dm_transport_offsets(t, "windows", 0, &s, &end, &err);
    CHECK_EQ_INT(end, 0);
    /* A long wait returns when the timer is due, not after the wait. */
    uint64_t t0 = dm_now_ns();
    CHECK(dm_task_step(task, 5000, &n, &err) == DM_OK);
    CHECK((dm_now_ns() - t0) / 1000000 < 2000);
    CHECK_EQ_INT(n, 0);
    dm_transport_offsets(t, "windows", 0, &s, &end, &err);
    CHECK_EQ_INT(end, 1);
    CHECK_EQ_INT(dm_task_next_timer(task), 0); /* fired, not set again */
    dm_task_free(task);
    dm_transport_close(t);
    rm_dir();
}

/* ---- exactly once under SIGKILL --------------------------------------------------------- */

static int notify_fd = -1; /* the child writes a byte here after each commit */

static void child_loop(void)
{
    dm_transport_t *t = open_transport();
    if (!t) _exit(3);
    dm_task_t *task;
    dm_error_t err = {0};
    if (new_aggregate_task(t, &task, &err)) _exit(4);
    for (;;) {
        size_t n;
        if (dm_task_step(task, 10, &n, &err)) _exit(5);
        if (n && notify_fd >= 0 && write(notify_fd, "x", 1) < 0) notify_fd = -1;
    }
}

static void test_exactly_once_windows_under_sigkill(void)
{
    snprintf(dir, sizeof(dir), "/tmp/dm-stateful-kill-XXXXXX");
    REQUIRE(mkdtemp(dir));
    dm_transport_t *t = open_transport();
    REQUIRE(t);
    create_topics(t);
    dm_transport_close(t);
    int iterations = getenv("DM_CRASH_ITERATIONS") ? atoi(getenv("DM_CRASH_ITERATIONS")) : 100;
    const int per = 500;
    int total = iterations * per;
    uint64_t seed = dm_now_ns();
    printf("    seed %llu, %d iterations\n", (unsigned long long)seed, iterations);
    srand((unsigned)seed);
    /* Calibrate the kill window to how long a worker takes to commit its
     * first batch here (restoring state included; sanitizers are slower). */
    uint64_t window_ms = 4;
    {
        t = open_transport();
        REQUIRE(t);
        produce(t, 0, per);
        dm_transport_close(t);
        int fds[2];
        REQUIRE(pipe(fds) == 0);
        uint64_t t0 = dm_now_ns();
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            notify_fd = fds[1];
            child_loop();
        }
        close(fds[1]);
        struct pollfd pfd = {fds[0], POLLIN, 0};
        poll(&pfd, 1, 10000);
        window_ms = 3 * (dm_now_ns() - t0) / 1000000 + 2; /* restores take longer */
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        close(fds[0]);
    }
    printf("    kill window %llu ms\n", (unsigned long long)window_ms);
    int64_t last = 0;
    int progressed = 0;
    for (int it = 1; it < iterations; it++) {
        t = open_transport();
        REQUIRE(t);
        produce(t, (int64_t)it * per, per);
        dm_transport_close(t);
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) child_loop();
        dm_sleep_ms((uint64_t)rand() % window_ms);
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        CHECK(WIFSIGNALED(status));
        t = open_transport();
        REQUIRE(t);
        int64_t pos = 0;
        dm_error_t err = {0};
        dm_transport_group_offset(t, "pipeline.windows", "plays", 0, &pos, &err);
        dm_transport_close(t);
        if (pos > last) progressed++;
        last = pos;
    }
    printf("    killed workers made progress in %d of %d iterations (input at %lld of %d)\n",
           progressed, iterations, (long long)last, total);
    CHECK(progressed > 0);
    t = open_transport();
    REQUIRE(t);
    dm_task_t *task;
    dm_error_t err = {0};
    REQUIRE(new_aggregate_task(t, &task, &err) == DM_OK);
    drain(task, t);
    produce(t, (int64_t)total + 1000, 1);
    drain(task, t);
    int n_windows = total / 100;
    cell_t *cells = calloc((size_t)n_windows * 3, sizeof(*cells));
    read_windows(t, dm_task_output_schema(task), cells, n_windows);
    CHECK_EQ_INT(wrong_windows(cells, n_windows), 0);
    free(cells);
    dm_task_free(task);
    dm_transport_close(t);
    rm_dir();
}

int main(void)
{
    dm_error_t err = {0};
    if (dm_avro_schema_parse(schema_json, strlen(schema_json), &schema, &err)) return 1;
    filter_conf = json_pack("{s:s}", "expr", "country = 'US'");
    project_conf = json_pack("{s:[s,s,s]}", "columns", "id", "ts", "amount * 100 / qty AS cents");
    aggregate_conf = json_loads(
        "{\"window\": {\"type\": \"tumbling\", \"size\": 1000}, \"time\": \"ts\", \"group_by\": "
        "[\"id % 3 AS g\"], \"aggregates\": [\"count(*) AS n\", \"sum(id) AS ids\"]}",
        0, NULL);
    route_conf =
        json_loads("{\"outputs\": {\"fr\": \"country = 'FR'\"}, \"default\": \"us\"}", 0, NULL);
    RUN(test_windows_span_a_restart);
    RUN(test_route_to_several_topics);
    RUN(test_failed_step_restores_state);
    RUN(test_union_of_two_sources);
    RUN(test_watermark_waits_for_the_slower_input);
    RUN(test_join_across_a_restart);
    RUN(test_join_after_a_filter);
    RUN(test_processing_time_timer_without_input);
    RUN(test_exactly_once_windows_under_sigkill);
    json_decref(filter_conf);
    json_decref(project_conf);
    json_decref(aggregate_conf);
    json_decref(route_conf);
    dm_avro_schema_free(schema);
    return check_summary();
}
