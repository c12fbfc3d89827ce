/* Unit tests for engine/task: a filter→project chain topic→topic on the
 * embedded log, with dead letters, resume after restart, and exactly-once
 * output when the process running the task is killed at random moments. */
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "core/clock.h"
#include "core/varint.h"
#include "engine/task.h"
#include "schema/wire.h"

#define SCHEMA_ID     7
#define OUT_SCHEMA_ID 8

static const char *schema_json =
    "{\"type\": \"record\", \"name\": \"Play\", \"fields\": ["
    " {\"name\": \"id\", \"type\": \"long\"}, {\"name\": \"country\", \"type\": \"string\"},"
    " {\"name\": \"amount\", \"type\": \"double\"}, {\"name\": \"qty\", \"type\": \"long\"},"
    " {\"name\": \"note\", \"type\": \"string\"}]}";

static dm_avro_schema_t *schema;
static char dir[256];
static bool keyed; /* produce: even ids get the key "k<id>" */
static const char *produce_to = "plays";

/* Produces n plays with ids from first; every 10th has qty 0 (division by
 * zero in the chain), every 7th is from FR (filtered out). */
static void produce(dm_transport_t *t, int64_t first, int n, bool corrupt_one)
{
    dm_buf_t bytes = DM_BUF_INIT;
    size_t *starts = calloc((size_t)n, sizeof(size_t));
    dm_arena_t a;
    dm_arena_init(&a, 0);
    for (int i = 0; i < n; i++) {
        int64_t id = first + i;
        char json[256];
        snprintf(
            json, sizeof(json),
            "{\"id\": %lld, \"country\": \"%s\", \"amount\": %lld.5, \"qty\": %d, \"note\": \"n\"}",
            (long long)id, id % 7 == 0 ? "FR" : "US", (long long)id, id % 10 == 0 ? 0 : 2);
        dm_avro_value_t v;
        dm_error_t err = {0};
        REQUIRE(dm_avro_from_json_text(schema->root, json, strlen(json), DM_AVRO_JSON_PLAIN, &a, &v,
                                       &err) == DM_OK);
        starts[i] = bytes.len;
        dm_wire_put_header(&bytes, corrupt_one && i == 3 ? 99 : SCHEMA_ID);
        REQUIRE(dm_avro_encode(schema->root, &v, &bytes, &err) == DM_OK);
    }
    dm_record_t *recs = calloc((size_t)n, sizeof(*recs));
    char(*keys)[16] = calloc((size_t)n, sizeof(*keys));
    for (int i = 0; i < n; i++) {
        size_t end = i + 1 < n ? starts[i + 1] : bytes.len;
        recs[i] = (dm_record_t){.value = bytes.data + starts[i],
                                .value_len = (int32_t)(end - starts[i]),
                                .key_len = -1};
        if (keyed && (first + i) % 2 == 0) {
            int kl = snprintf(keys[i], sizeof(keys[i]), "k%lld", (long long)(first + i));
            recs[i].key = (const uint8_t *)keys[i];
            recs[i].key_len = kl;
        }
    }
    dm_error_t err = {0};
    REQUIRE(dm_transport_produce(t, produce_to, 0, recs, (size_t)n, NULL, &err) == DM_OK);
    free(keys);
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

static json_t *filter_conf, *project_conf;

static size_t batch_bytes = 2048;
static bool start_at_end;        /* new_task: conf.start_at_end */
static const char *replay_topic; /* new_task: conf.replay_topic */

static dm_err_t new_task(dm_transport_t *t, dm_metrics_t *m, dm_task_t **task, dm_error_t *err)
{
    static dm_task_step_spec_t steps[2];
    steps[0] = (dm_task_step_spec_t){&dm_proc_filter, filter_conf};
    steps[1] = (dm_task_step_spec_t){&dm_proc_project, project_conf};
    dm_task_config_t conf = {.name = "us-plays/0",
                             .group = "pipeline.us-plays",
                             .input_topic = "plays",
                             .input_partition = 0,
                             .input_schema = schema,
                             .input_schema_id = SCHEMA_ID,
                             .output_topic = "us-plays",
                             .output_schema_id = OUT_SCHEMA_ID,
                             .dead_letter_topic = "us-plays.dlq",
                             .steps = steps,
                             .n_steps = 2,
                             .max_batch_bytes = batch_bytes,
                             .metrics = m,
                             .start_at_end = start_at_end,
                             .replay_topic = replay_topic};
    return dm_task_new(t, &conf, task, err);
}

/* Runs the task until it has consumed everything committed so far. */
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

/* Reads every output record; counts[id] = how often id appears. */
static int read_output(dm_transport_t *t, const char *topic, int *counts, int max_id,
                       bool check_dlq)
{
    dm_transport_batch_t b = {0};
    int64_t off = 0, end, start;
    dm_error_t err = {0};
    int total = 0;
    dm_transport_offsets(t, topic, 0, &start, &end, &err);
    dm_arena_t a;
    dm_arena_init(&a, 0);
    while (off < end) {
        if (dm_transport_fetch(t, topic, 0, off, 1 << 20, 0, &b, &err) || b.n == 0) break;
        for (size_t i = 0; i < b.n; i++) {
            total++;
            if (check_dlq) {
                CHECK_EQ_INT(b.records[i].n_headers, 5);
                continue;
            }
            uint32_t id = 0;
            CHECK(dm_wire_get_header(b.records[i].value, (size_t)b.records[i].value_len, &id) ==
                  DM_OK);
            CHECK_EQ_INT(id, OUT_SCHEMA_ID);
            /* output: {id long, cents double}: the id is the first varint */
            int64_t v = 0;
            dm_varint_decode_i64(b.records[i].value + 5,
                                 b.records[i].value + b.records[i].value_len, &v);
            if (v >= 0 && v < max_id) counts[v]++;
        }
        off = b.next_offset;
    }
    dm_transport_batch_free(t, &b);
    dm_arena_destroy(&a);
    return total;
}

static void create_topics(dm_transport_t *t)
{
    dm_error_t err = {0};
    const char *names[] = {"plays", "us-plays", "us-plays.dlq"};
    for (int i = 0; i < 3; i++)
        REQUIRE(dm_transport_create_topic(t,
                                          &(dm_topic_config_t){.name = names[i],
                                                               .partitions = 1,
                                                               .fsync = DM_TRANSPORT_FSYNC_NEVER},
                                          &err) == DM_OK);
}

static void test_chain_dead_letters_and_resume(void)
{
    snprintf(dir, sizeof(dir), "/tmp/dm-task-XXXXXX");
    REQUIRE(mkdtemp(dir));
    dm_transport_t *t = open_transport();
    REQUIRE(t);
    create_topics(t);
    produce(t, 1, 100, true);
    dm_metrics_t *m = dm_metrics_new();
    dm_task_t *task;
    dm_error_t err = {0};
    if (new_task(t, m, &task, &err)) printf("    %s\n", err.message);
    REQUIRE(task);
    CHECK_EQ_INT(dm_task_output_schema(task)->n_fields, 2);
    drain(task, t);
    int counts[300] = {0};
    int out = read_output(t, "us-plays", counts, 300, false);
    /* ids 1..100: 14 from FR dropped; of the US ones, qty 0 → dead (10,20,30,50,60,80,90,100:
     * 70 and 40? 70 is FR) ; id 4 has a bad schema id → dead */
    int want = 0, want_dead = 0;
    for (int id = 1; id <= 100; id++) {
        if (id == 4) {
            want_dead++;
            continue;
        }
        if (id % 7 == 0) continue;
        if (id % 10 == 0) {
            want_dead++;
            continue;
        }
        want++;
        CHECK_EQ_INT(counts[id], 1);
    }
    CHECK_EQ_INT(out, want);
    int dead = read_output(t, "us-plays.dlq", counts, 0, true);
    CHECK_EQ_INT(dead, want_dead);
    int64_t committed = -1;
    CHECK(dm_transport_group_offset(t, "pipeline.us-plays", "plays", 0, &committed, &err) == DM_OK);
    CHECK_EQ_INT(committed, 100);
    dm_buf_t text = DM_BUF_INIT;
    dm_metrics_render(m, &text);
    const char *s;
    dm_buf_cstr(&text, &s);
    CHECK_CONTAINS(s, "datamesh_task_records_in_total{task=\"us-plays/0\"} 100");
    CHECK_CONTAINS(s,
                   "datamesh_task_input_lag_seconds{task=\"us-plays/0\"} 0.000\n"); /* caught up */
    CHECK_CONTAINS(s, "datamesh_processor_dead_letters_total{task=\"us-plays/"
                      "0\",processor=\"project\",step=\"1\"}");
    dm_buf_free(&text);
    dm_task_free(task);
    /* A new instance resumes at the committed offset: only new input is processed. */
    produce(t, 101, 20, false);
    REQUIRE(new_task(t, NULL, &task, &err) == DM_OK);
    CHECK_EQ_INT(dm_task_position(task), 100);
    drain(task, t);
    memset(counts, 0, sizeof(counts));
    read_output(t, "us-plays", counts, 300, false);
    for (int id = 1; id <= 120; id++)
        CHECK(counts[id] <= 1);
    CHECK_EQ_INT(counts[101], 1);
    dm_task_free(task);
    dm_metrics_free(m);
    dm_transport_close(t);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
}

/* start_at_end: a group without an offset starts at the input's end (only
 * records appended from then on); one with an offset resumes at it. */
static void test_start_at_end(void)
{
    snprintf(dir, sizeof(dir), "/tmp/dm-task-XXXXXX");
    REQUIRE(mkdtemp(dir));
    dm_transport_t *t = open_transport();
    REQUIRE(t);
    create_topics(t);
    produce(t, 1, 20, false);
    start_at_end = true;
    dm_task_t *task;
    dm_error_t err = {0};
    if (new_task(t, NULL, &task, &err)) printf("    %s\n", err.message);
    REQUIRE(task);
    CHECK_EQ_INT(dm_task_position(task), 20);
    produce(t, 21, 10, false);
    drain(task, t);
    int counts[100] = {0};
    int out = read_output(t, "us-plays", counts, 100, false);
    for (int id = 1; id <= 20; id++)
        CHECK_EQ_INT(counts[id], 0);
    CHECK_EQ_INT(counts[22], 1);
    CHECK_EQ_INT(counts[29], 1);
    CHECK_EQ_INT(out, 7); /* 21..30 less 21, 28 (FR) and 30 (qty 0) */
    dm_task_free(task);
    /* a new instance resumes at the committed offset, not the end */
    produce(t, 31, 5, false);
    REQUIRE(new_task(t, NULL, &task, &err) == DM_OK);
    CHECK_EQ_INT(dm_task_position(task), 30);
    drain(task, t);
    memset(counts, 0, sizeof(counts));
    read_output(t, "us-plays", counts, 100, false);
    CHECK_EQ_INT(counts[31], 1);
    CHECK_EQ_INT(counts[33], 1);
    dm_task_free(task);
    start_at_end = false;
    dm_transport_close(t);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
}

/* A replay input (dead letters put back): read from its start even under
 * start_at_end, through the same chain (a record that fails again is a dead
 * letter naming the replay topic), its offset committed in the group. */
static void test_replay_input(void)
{
    snprintf(dir, sizeof(dir), "/tmp/dm-task-XXXXXX");
    REQUIRE(mkdtemp(dir));
    dm_transport_t *t = open_transport();
    REQUIRE(t);
    create_topics(t);
    dm_error_t err = {0};
    REQUIRE(dm_transport_create_topic(t,
                                      &(dm_topic_config_t){.name = "us-plays.replay",
                                                           .partitions = 1,
                                                           .fsync = DM_TRANSPORT_FSYNC_NEVER},
                                      &err) == DM_OK);
    produce(t, 1, 10, false); /* before the task: start_at_end skips them */
    produce_to = "us-plays.replay";
    produce(t, 1, 10, false); /* put back: read whole */
    produce_to = "plays";
    start_at_end = true;
    replay_topic = "us-plays.replay";
    dm_task_t *task;
    if (new_task(t, NULL, &task, &err)) printf("    %s\n", err.message);
    REQUIRE(task);
    CHECK_EQ_INT(dm_task_position(task), 10);
    produce(t, 11, 3, false);
    drain(task, t);
    for (int guard = 0; guard < 100; guard++) { /* and the replay input */
        size_t n;
        REQUIRE(dm_task_step(task, 0, &n, &err) == DM_OK);
    }
    int counts[100] = {0};
    int out = read_output(t, "us-plays", counts, 100, false);
    for (int id = 1; id <= 13; id++)
        CHECK_EQ_INT(counts[id], id == 7 || id == 10 ? 0 : 1); /* FR; qty 0 */
    CHECK_EQ_INT(out, 11);
    int64_t committed = -1;
    CHECK(dm_transport_group_offset(t, "pipeline.us-plays", "us-plays.replay", 0, &committed,
                                    &err) == DM_OK);
    CHECK_EQ_INT(committed, 10);
    /* id 10 failed again: its dead letter names the replay topic */
    dm_transport_batch_t b = {0};
    REQUIRE(dm_transport_fetch(t, "us-plays.dlq", 0, 0, 1 << 20, 0, &b, &err) == DM_OK);
    CHECK_EQ_INT(b.n, 1);
    bool named = false;
    for (uint32_t i = 0; b.n && i < b.records[0].n_headers; i++) {
        const dm_record_header_t *h = &b.records[0].headers[i];
        if (h->key_len == strlen(DM_DLQ_TOPIC) && !memcmp(h->key, DM_DLQ_TOPIC, h->key_len))
            named = h->value_len == 15 && !memcmp(h->value, "us-plays.replay", 15);
    }
    CHECK(named);
    dm_transport_batch_free(t, &b);
    dm_task_free(task);
    start_at_end = false;
    replay_topic = NULL;
    dm_transport_close(t);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
}

/* One fetch of thousands of records runs in chunks (engine/task.c CHUNK):
 * outputs, their keys and the dead letters' offsets must come out as from
 * one batch. */
static void test_large_fetch_in_chunks(void)
{
    snprintf(dir, sizeof(dir), "/tmp/dm-task-XXXXXX");
    REQUIRE(mkdtemp(dir));
    dm_transport_t *t = open_transport();
    REQUIRE(t);
    create_topics(t);
    keyed = true;
    produce(t, 1, 3000, true);
    keyed = false;
    batch_bytes = 1 << 20;
    dm_task_t *task;
    dm_error_t err = {0};
    REQUIRE(new_task(t, NULL, &task, &err) == DM_OK);
    size_t n;
    REQUIRE(dm_task_step(task, 0, &n, &err) == DM_OK);
    CHECK_EQ_INT(n, 3000); /* one fetch, one commit */
    batch_bytes = 2048;
    dm_transport_batch_t b = {0};
    int wrong = 0, total = 0, dead = 0;
    REQUIRE(dm_transport_fetch(t, "us-plays", 0, 0, 1 << 22, 0, &b, &err) == DM_OK);
    int64_t last = 0;
    for (size_t i = 0; i < b.n; i++, total++) {
        int64_t id = 0;
        dm_varint_decode_i64(b.records[i].value + 5, b.records[i].value + b.records[i].value_len,
                             &id);
        char want[16];
        int kl = snprintf(want, sizeof(want), "k%lld", (long long)id);
        bool key_ok = id % 2 ? b.records[i].key_len == -1
                             : b.records[i].key_len == kl && !memcmp(b.records[i].key, want, kl);
        wrong += id <= last || id % 7 == 0 || id % 10 == 0 || id == 4 || !key_ok;
        last = id;
    }
    REQUIRE(dm_transport_fetch(t, "us-plays.dlq", 0, 0, 1 << 22, 0, &b, &err) == DM_OK);
    for (size_t i = 0; i < b.n; i++, dead++) {
        const dm_record_header_t *h = &b.records[i].headers[4]; /* dm.input.offset */
        char off[24] = "";
        memcpy(off, h->value, h->value_len < 23 ? (size_t)h->value_len : 23);
        int64_t id = atoll(off) + 1;
        wrong += !(id == 4 || (id % 10 == 0 && id % 7 != 0));
    }
    dm_transport_batch_free(t, &b);
    int want = 0, want_dead = 0;
    for (int id = 1; id <= 3000; id++) {
        bool bad = id == 4 || (id % 10 == 0 && id % 7 != 0);
        want_dead += bad;
        want += !bad && id % 7 != 0;
    }
    CHECK_EQ_INT(total, want);
    CHECK_EQ_INT(dead, want_dead);
    CHECK_EQ_INT(wrong, 0);
    dm_task_free(task);
    dm_transport_close(t);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
}

/* The child runs the task forever over a growing input; the parent kills it. */
static int notify_fd = -1; /* the child writes a byte here after each commit */

static void child_loop(void)
{
    dm_transport_t *t = open_transport();
    if (!t) _exit(3);
    dm_task_t *task;
    dm_error_t err = {0};
    if (new_task(t, NULL, &task, &err)) _exit(4);
    for (;;) {
        size_t n;
        if (dm_task_step(task, 10, &n, &err)) _exit(5);
        if (n && notify_fd >= 0 && write(notify_fd, "x", 1) < 0) notify_fd = -1;
    }
}

static void test_exactly_once_under_sigkill(void)
{
    snprintf(dir, sizeof(dir), "/tmp/dm-task-kill-XXXXXX");
    REQUIRE(mkdtemp(dir));
    dm_transport_t *t = open_transport();
    REQUIRE(t);
    create_topics(t);
    dm_transport_close(t);
    int iterations = getenv("DM_CRASH_ITERATIONS") ? atoi(getenv("DM_CRASH_ITERATIONS")) : 100;
    const int per = 2000;
    int total = iterations * per;
    uint64_t seed = dm_now_ns();
    printf("    seed %llu, %d iterations\n", (unsigned long long)seed, iterations);
    srand((unsigned)seed);
    int64_t last = 0;
    int progressed = 0;
    /* Calibrate: how long does a worker take to commit its first batch here
     * (sanitizer builds are many times slower)? Kills then land anywhere from
     * before that moment to well after it. */
    uint64_t window_ms = 4;
    {
        t = open_transport();
        REQUIRE(t);
        produce(t, 0, per, false);
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
        poll(&pfd, 1, 10000); /* the first commit, or 10 s */
        window_ms = 2 * (dm_now_ns() - t0) / 1000000 + 2;
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        close(fds[0]);
    }
    printf("    kill window %llu ms\n", (unsigned long long)window_ms);
    for (int it = 1; it < iterations; it++) {
        /* More input arrives; a worker starts, works a little and is killed. */
        t = open_transport();
        REQUIRE(t);
        produce(t, (int64_t)it * per, per, false);
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
        dm_transport_group_offset(t, "pipeline.us-plays", "plays", 0, &pos, &err);
        dm_transport_close(t);
        if (pos > last) progressed++;
        last = pos;
    }
    printf("    killed workers made progress in %d of %d iterations (input at %lld of %d)\n",
           progressed, iterations, (long long)last, total);
    CHECK(progressed > 0);
    /* Finish the work here and check every id came out exactly once. */
    t = open_transport();
    REQUIRE(t);
    dm_task_t *task;
    dm_error_t err = {0};
    REQUIRE(new_task(t, NULL, &task, &err) == DM_OK);
    drain(task, t);
    int *counts = calloc((size_t)total, sizeof(int));
    read_output(t, "us-plays", counts, total, false);
    int wrong = 0;
    for (int id = 0; id < total; id++) {
        int want = (id % 7 == 0 || id % 10 == 0) ? 0 : 1;
        if (counts[id] != want) wrong++;
    }
    CHECK_EQ_INT(wrong, 0);
    free(counts);
    dm_task_free(task);
    dm_transport_close(t);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
}

int main(void)
{
    dm_error_t err = {0};
    if (dm_avro_schema_parse(schema_json, strlen(schema_json), &schema, &err)) return 1;
    filter_conf = json_pack("{s:s}", "expr", "country = 'US'");
    project_conf = json_pack("{s:[s,s]}", "columns", "id", "amount * 100 / qty AS cents");
    RUN(test_chain_dead_letters_and_resume);
    RUN(test_start_at_end);
    RUN(test_replay_input);
    RUN(test_large_fetch_in_chunks);
    RUN(test_exactly_once_under_sigkill);
    json_decref(filter_conf);
    json_decref(project_conf);
    dm_avro_schema_free(schema);
    return check_summary();
}
