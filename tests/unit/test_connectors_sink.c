/* The common sink runner with a sink that keeps what it is given in memory:
 * batching by size and by time, retries while the destination is down (with
 * its words, secrets out), dead letters for refused and undecodable records,
 * change-event envelopes, metrics; a new schema version starting a batch; a
 * checkpointing sink (several batches per commit, commits when due, idle,
 * forced before a new schema version and at stop, a lost checkpoint read
 * again from its positions); an open that fails for good. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "connectors/sink.h"
#include "connectors/unit.h"
#include "core/clock.h"
#include "core/metrics.h"
#include "engine/task.h"
#include "schema/dm_avro.h"
#include "schema/wire.h"

/* ---- the memory sink ---------------------------------------------------------------- */

typedef struct mem_conf {
    dm_sink_common_config_t common;
} mem_conf_t;

static const dm_config_field_t mem_fields[] = {DM_SINK_COMMON_FIELDS(mem_conf_t)};
static const dm_config_table_t mem_table = {"memory sink", mem_fields,
                                            sizeof(mem_fields) / sizeof(mem_fields[0])};

static struct {
    pthread_mutex_t mu;
    int fail_next;      /* writes to refuse, as if the destination were down */
    bool fail_for_good; /* refuse every write with an error retrying cannot fix */
    size_t batches[64]; /* sizes of the batches written */
    int n_batches;
    int64_t ids[1024]; /* rows written, in order (-id - 1 for deletes) */
    int n_ids;
    int bad_strings; /* rows whose string is not the one their id was written with */
} mem = {.mu = PTHREAD_MUTEX_INITIALIZER};

static dm_err_t mem_open(const void *conf, const dm_sink_env_t *env, void **state, dm_error_t *err)
{
    (void)conf;
    (void)env;
    (void)err;
    *state = &mem;
    return DM_OK;
}

static dm_err_t mem_write(void *state, const dm_sink_batch_t *b, dm_sink_rejects_t *rj,
                          dm_error_t *err)
{
    (void)state;
    pthread_mutex_lock(&mem.mu);
    if (mem.fail_next > 0) {
        mem.fail_next--;
        pthread_mutex_unlock(&mem.mu);
        return dm_error_set_retriable(err, DM_ERR_CONNECTOR,
                                      "cannot connect: host=db password=hunter2 refused");
    }
    if (mem.fail_for_good) {
        pthread_mutex_unlock(&mem.mu);
        return dm_error_set(err, DM_ERR_CONNECTOR, "column id of table t is a date");
    }
    for (size_t i = 0; i < b->n; i++) {
        if (dm_sink_rejected(rj, i)) continue;
        const dm_sink_record_t *r = &b->records[i];
        int64_t id = r->row ? r->row->u.v[0].u.l : r->key ? r->key->u.v[0].u.l : -999;
        if (r->row && r->row->u.v[1].len == 3 && !memcmp(r->row->u.v[1].u.p, "bad", 3)) {
            dm_sink_reject(rj, i, "the destination refuses 'bad'");
            continue;
        }
        /* Rows named "row-ID" must carry their own id (bytes intact). */
        if (r->row && r->row->u.v[1].len > 4 && !memcmp(r->row->u.v[1].u.p, "row-", 4)) {
            char want[32];
            int len = snprintf(want, sizeof(want), "row-%lld", (long long)id);
            if (r->row->u.v[1].len != (uint32_t)len ||
                memcmp(r->row->u.v[1].u.p, want, (size_t)len))
                mem.bad_strings++;
        }
        if (mem.n_ids < 1024) mem.ids[mem.n_ids++] = r->is_delete ? -id - 1 : id;
    }
    if (mem.n_batches < 64) mem.batches[mem.n_batches++] = b->n;
    pthread_mutex_unlock(&mem.mu);
    return DM_OK;
}

static void mem_close(void *state)
{
    (void)state;
}

static const dm_sink_ops_t mem_ops = {.name = "memory",
                                      .config = &mem_table,
                                      .config_size = sizeof(mem_conf_t),
                                      .open = mem_open,
                                      .write = mem_write,
                                      .close = mem_close};

static void mem_reset(void)
{
    pthread_mutex_lock(&mem.mu);
    mem.fail_next = 0;
    mem.fail_for_good = false;
    mem.n_batches = 0;
    mem.n_ids = 0;
    mem.bad_strings = 0;
    pthread_mutex_unlock(&mem.mu);
}

/* ---- a checkpointing sink ------------------------------------------------------------- */

/* Keeps written rows staged until checkpoint commits them with the offsets
 * (as iceberg keeps files until a snapshot); positions are the committed ones. */
static struct {
    pthread_mutex_t mu;
    int64_t staged[256], committed[256];
    int n_staged, n_committed;
    int64_t stored_next; /* next offset the "destination" holds (-1: none) */
    int64_t pending_next;
    int due_at;           /* commit when this many rows are staged */
    int fail_checkpoints; /* checkpoints to fail (the open one is lost) */
    int forced, commits;
    uint32_t met[16]; /* value schema ids written so far */
    int n_met;
    int late_versions; /* records of a new version met past a batch's start */
} ck = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void ck_reset(int due_at)
{
    pthread_mutex_lock(&ck.mu);
    ck.n_staged = ck.n_committed = ck.forced = ck.commits = ck.fail_checkpoints = 0;
    ck.n_met = ck.late_versions = 0;
    ck.stored_next = -1;
    ck.due_at = due_at;
    pthread_mutex_unlock(&ck.mu);
}

static dm_err_t ck_positions(void *state, int64_t *next, dm_error_t *err)
{
    (void)state;
    (void)err;
    pthread_mutex_lock(&ck.mu);
    next[0] = ck.stored_next;
    pthread_mutex_unlock(&ck.mu);
    return DM_OK;
}

static dm_err_t ck_write(void *state, const dm_sink_batch_t *b, dm_sink_rejects_t *rj,
                         dm_error_t *err)
{
    (void)state;
    (void)err;
    pthread_mutex_lock(&ck.mu);
    bool handed = false;
    for (size_t i = 0; i < b->n; i++) {
        if (dm_sink_rejected(rj, i) || !b->records[i].row) continue;
        /* The contract a checkpointing sink relies on: a new version only at
         * the start of a batch. */
        uint32_t id = b->records[i].value_schema_id;
        int m = 0;
        while (m < ck.n_met && ck.met[m] != id)
            m++;
        if (m == ck.n_met && ck.n_met < 16) {
            ck.met[ck.n_met++] = id;
            if (handed) ck.late_versions++;
        }
        handed = true;
        if (ck.n_staged < 256) ck.staged[ck.n_staged++] = b->records[i].row->u.v[0].u.l;
    }
    ck.pending_next = b->offsets[0].offset;
    pthread_mutex_unlock(&ck.mu);
    return DM_OK;
}

static dm_err_t ck_checkpoint(void *state, bool force, bool *committed, dm_error_t *err)
{
    (void)state;
    dm_err_t rc = DM_OK;
    *committed = false;
    pthread_mutex_lock(&ck.mu);
    if (force) ck.forced++;
    if (ck.n_staged && (force || ck.n_staged >= ck.due_at)) {
        if (ck.fail_checkpoints > 0) {
            ck.fail_checkpoints--;
            ck.n_staged = 0; /* the open checkpoint is gone */
            rc = dm_error_set(err, DM_ERR_IO, "commit failed: disk on fire");
            err->retriable = true; /* a destination that may come back */
        } else {
            for (int i = 0; i < ck.n_staged && ck.n_committed < 256; i++)
                ck.committed[ck.n_committed++] = ck.staged[i];
            ck.n_staged = 0;
            ck.stored_next = ck.pending_next;
            ck.commits++;
            *committed = true;
        }
    } else if (!ck.n_staged) {
        *committed = true;
    }
    pthread_mutex_unlock(&ck.mu);
    return rc;
}

static const dm_sink_ops_t ck_ops = {.name = "checkpointing",
                                     .config = &mem_table,
                                     .config_size = sizeof(mem_conf_t),
                                     .open = mem_open,
                                     .positions = ck_positions,
                                     .write = ck_write,
                                     .checkpoint = ck_checkpoint,
                                     .close = mem_close};

static int committed(void)
{
    pthread_mutex_lock(&ck.mu);
    int n = ck.n_committed;
    pthread_mutex_unlock(&ck.mu);
    return n;
}

static bool wait_committed(int n, int ms)
{
    for (int i = 0; i < ms / 10 && committed() < n; i++)
        dm_sleep_ms(10);
    return committed() >= n;
}

/* A sink whose settings can never work. */
static dm_err_t broken_open(const void *conf, const dm_sink_env_t *env, void **state,
                            dm_error_t *err)
{
    (void)conf;
    (void)env;
    (void)state;
    dm_error_set(err, DM_ERR_CONFIG, "table 'x' must be NAMESPACE.TABLE");
    err->fatal = true;
    return DM_ERR_CONFIG;
}

static const dm_sink_ops_t broken_ops = {.name = "broken",
                                         .config = &mem_table,
                                         .config_size = sizeof(mem_conf_t),
                                         .open = broken_open,
                                         .write = mem_write,
                                         .close = mem_close};

/* ---- the topic and the runner ----------------------------------------------------------- */

static dm_transport_t *t;
static dm_avro_schema_t *row, *row2, *env_schema;
static char dir[] = "/tmp/dm-test-sink.XXXXXX";

static const char *ROW =
    "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"id\",\"type\":"
    "\"long\"},{\"name\":\"s\",\"type\":\"string\"}]}";
static const char *ROW2 =
    "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"id\",\"type\":"
    "\"long\"},{\"name\":\"s\",\"type\":\"string\"},{\"name\":\"n\",\"type\":\"long\","
    "\"default\":0}]}";
static const char *ENV =
    "{\"type\":\"record\",\"name\":\"E\",\"fields\":[{\"name\":\"before\",\"type\":[\"null\","
    "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"id\",\"type\":\"long\"},{\"name\":"
    "\"s\",\"type\":\"string\"}]}]},{\"name\":\"after\",\"type\":[\"null\",\"R\"]},{\"name\":"
    "\"op\",\"type\":\"string\"}]}";

static const dm_avro_schema_t *lookup(void *ctx, uint32_t id)
{
    (void)ctx;
    return id == 1 ? row : id == 2 ? env_schema : id == 3 ? row2 : NULL;
}

static void produce_json(const char *topic, const dm_avro_schema_t *s, uint32_t id,
                         const char *json)
{
    dm_arena_t a;
    dm_arena_init(&a, 0);
    dm_avro_value_t v;
    dm_buf_t b = DM_BUF_INIT;
    dm_error_t err = {0};
    dm_wire_put_header(&b, id);
    if (dm_avro_from_json_text(s->root, json, strlen(json), DM_AVRO_JSON_PLAIN, &a, &v, &err) ||
        dm_avro_encode(s->root, &v, &b, &err))
        fprintf(stderr, "encode %s: %s\n", json, err.message);
    /* committed by its "source" 2 s ago: what the time lag and end-to-end latency count from */
    dm_record_t r = {.timestamp = dm_wall_ms() - 2000,
                     .key_len = -1,
                     .value = b.data,
                     .value_len = (int32_t)b.len};
    dm_transport_produce(t, topic, 0, &r, 1, NULL, &err);
    dm_buf_free(&b);
    dm_arena_destroy(&a);
}

static void produce_rows(const char *topic, int from, int n)
{
    for (int i = from; i < from + n; i++) {
        char j[100];
        snprintf(j, sizeof(j), "{\"id\":%d,\"s\":\"row\"}", i);
        produce_json(topic, row, 1, j);
    }
}

typedef struct runner {
    dm_sink_run_config_t c;
    mem_conf_t conf;
    dm_unit_status_t st;
    pthread_t th;
} runner_t;

static void *run_main(void *arg)
{
    runner_t *r = arg;
    dm_sink_run(&r->c, &r->st);
    return NULL;
}

static const dm_sink_ops_t *start_ops = &mem_ops; /* the type start() runs */

static void start(runner_t *r, const char *topic, const char *batch_records, const char *linger,
                  dm_metrics_t *metrics)
{
    memset(r, 0, sizeof(*r));
    dm_error_t err = {0};
    dm_config_defaults(&mem_table, &r->conf, &err);
    dm_config_set_text(&mem_table, &r->conf, "batch_records", batch_records, &err);
    dm_config_set_text(&mem_table, &r->conf, "linger", linger, &err);
    dm_config_set_text(&mem_table, &r->conf, "retry_max", "100ms", &err);
    r->c = (dm_sink_run_config_t){.transport = t,
                                  .ops = start_ops,
                                  .conf = &r->conf,
                                  .dead_letter_topic = "dlq",
                                  .metrics = metrics,
                                  .env = {.name = topic,
                                          .topic = topic,
                                          .partitions = 1,
                                          .group = topic,
                                          .value_schema = row,
                                          .value_schema_id = 1,
                                          .schema_by_id = lookup}};
    dm_unit_init(&r->st);
    pthread_create(&r->th, NULL, run_main, r);
}

static void stop(runner_t *r)
{
    atomic_store(&r->st.stop, true);
    pthread_join(r->th, NULL);
    dm_unit_destroy(&r->st);
}

static int written(void)
{
    pthread_mutex_lock(&mem.mu);
    int n = mem.n_ids;
    pthread_mutex_unlock(&mem.mu);
    return n;
}

static bool wait_written(int n, int ms)
{
    for (int i = 0; i < ms / 10; i++) {
        if (written() >= n) return true;
        dm_sleep_ms(10);
    }
    return written() >= n;
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_batches_by_size(void)
{
    mem_reset();
    produce_rows("size", 0, 250);
    runner_t r;
    start(&r, "size", "100", "1h", NULL);
    CHECK(wait_written(200, 5000));
    dm_sleep_ms(200); /* the last 50 wait for more (or for the hour to pass) */
    CHECK_EQ_INT(written(), 200);
    CHECK_EQ_INT(mem.n_batches, 2);
    CHECK_EQ_INT(mem.batches[0], 100);
    CHECK_EQ_INT(mem.batches[1], 100);
    produce_rows("size", 250, 50);
    CHECK(wait_written(300, 5000));
    CHECK_EQ_INT(mem.batches[2], 100);
    stop(&r);
    for (int i = 0; i < 300; i++)
        CHECK_EQ_INT(mem.ids[i], i);
}

static void test_batches_by_time(void)
{
    mem_reset();
    produce_rows("time", 0, 7);
    runner_t r;
    uint64_t t0 = dm_now_ns();
    start(&r, "time", "1000", "300ms", NULL);
    CHECK(wait_written(7, 5000));
    int64_t waited = (int64_t)((dm_now_ns() - t0) / 1000000);
    CHECK(waited >= 290);
    CHECK_EQ_INT(mem.n_batches, 1);
    CHECK_EQ_INT(mem.batches[0], 7);
    stop(&r);
}

static void test_retries_while_down_with_secrets_out(void)
{
    mem_reset();
    mem.fail_next = 3;
    produce_rows("down", 0, 20);
    dm_metrics_t *m = dm_metrics_new();
    runner_t r;
    start(&r, "down", "1000", "10ms", m);
    char state[32] = "", error[512] = "";
    for (int i = 0; i < 200 && strcmp(state, "retrying"); i++) {
        dm_unit_get(&r.st, state, sizeof(state), error, sizeof(error));
        dm_sleep_ms(5);
    }
    CHECK_STR_EQ(state, "retrying");
    dm_buf_t lagging = DM_BUF_INIT;
    dm_metrics_render(m, &lagging);
    dm_buf_append_u8(&lagging, 0);
    /* a batch waits while the destination is down: its age is the time lag */
    const char *lag = strstr((char *)lagging.data,
                             "datamesh_sink_input_lag_seconds{sink=\"down\",type=\"memory\"} ");
    CHECK(lag && strtod(lag + strlen("datamesh_sink_input_lag_seconds{sink=\"down\",type="
                                     "\"memory\"} "),
                        NULL) >= 2.0);
    dm_buf_free(&lagging);
    CHECK_CONTAINS(error, "cannot connect");
    CHECK_CONTAINS(error, "password=***");
    CHECK(!strstr(error, "hunter2"));
    CHECK(wait_written(20, 5000));
    dm_sleep_ms(50);
    dm_unit_get(&r.st, state, sizeof(state), error, sizeof(error));
    CHECK_STR_EQ(state, "running");
    stop(&r);
    CHECK_EQ_INT(written(), 20); /* each once, in order */
    for (int i = 0; i < 20; i++)
        CHECK_EQ_INT(mem.ids[i], i);
    dm_buf_t text = DM_BUF_INIT;
    dm_metrics_render(m, &text);
    dm_buf_append_u8(&text, 0);
    CHECK_CONTAINS((char *)text.data,
                   "datamesh_sink_retries_total{sink=\"down\",type=\"memory\"} 3");
    CHECK_CONTAINS((char *)text.data,
                   "datamesh_sink_records_total{sink=\"down\",type=\"memory\"} 20");
    CHECK_CONTAINS((char *)text.data,
                   "datamesh_sink_batch_seconds_count{sink=\"down\",type=\"memory\"} 1");
    /* written: nothing waits, every record's source → sink time observed (about 2 s) */
    CHECK_CONTAINS((char *)text.data,
                   "datamesh_sink_input_lag_seconds{sink=\"down\",type=\"memory\"} 0.000\n");
    CHECK_CONTAINS((char *)text.data,
                   "datamesh_sink_end_to_end_seconds_count{sink=\"down\",type=\"memory\"} 20\n");
    CHECK_CONTAINS((char *)text.data, "datamesh_sink_end_to_end_seconds_bucket{sink=\"down\","
                                      "type=\"memory\",le=\"1\"} 0\n");
    CHECK_CONTAINS((char *)text.data, "datamesh_sink_end_to_end_seconds_bucket{sink=\"down\","
                                      "type=\"memory\",le=\"5\"} 20\n");
    CHECK_CONTAINS((char *)text.data, "datamesh_sink_last_commit_timestamp_seconds{sink=\"down\"");
    dm_buf_free(&text);
    dm_metrics_free(m);
}

/* The failure policy: an error not known to pass stops the sink as failed
 * with the reason, writing nothing and committing no offset. */
static void test_fails_when_retrying_cannot_help(void)
{
    mem_reset();
    mem.fail_for_good = true;
    produce_rows("never", 0, 5);
    runner_t r;
    start(&r, "never", "1000", "10ms", NULL);
    char state[32] = "", error[512] = "";
    for (int i = 0; i < 400 && strcmp(state, "failed"); i++) {
        dm_unit_get(&r.st, state, sizeof(state), error, sizeof(error));
        dm_sleep_ms(5);
    }
    CHECK_STR_EQ(state, "failed");
    CHECK_STR_EQ(error, "writing: column id of table t is a date");
    dm_sleep_ms(100); /* the runner has returned: its end does not hide the failure */
    dm_unit_get(&r.st, state, sizeof(state), error, sizeof(error));
    CHECK_STR_EQ(state, "failed");
    stop(&r);
    CHECK_EQ_INT(written(), 0);
}

static void test_dead_letters_and_envelopes(void)
{
    mem_reset();
    dm_error_t err = {0};
    produce_json("mixed", row, 1, "{\"id\":1,\"s\":\"ok\"}");
    produce_json("mixed", row, 1, "{\"id\":2,\"s\":\"bad\"}");
    dm_record_t junk = {.key_len = -1, .value = (const uint8_t *)"{not avro}", .value_len = 10};
    dm_transport_produce(t, "mixed", 0, &junk, 1, NULL, &err);
    produce_json("mixed", env_schema, 2,
                 "{\"before\":null,\"after\":{\"id\":3,\"s\":\"x\"},\"op\":\"c\"}");
    produce_json("mixed", env_schema, 2,
                 "{\"before\":{\"id\":3,\"s\":\"x\"},\"after\":null,\"op\":\"d\"}");
    runner_t r;
    start(&r, "mixed", "1000", "10ms", NULL);
    CHECK(wait_written(3, 5000));
    stop(&r);
    CHECK_EQ_INT(written(), 3);
    CHECK_EQ_INT(mem.ids[0], 1);
    CHECK_EQ_INT(mem.ids[1], 3);
    CHECK_EQ_INT(mem.ids[2], -4); /* delete of 3 */
    dm_transport_batch_t b = {0};
    CHECK(!dm_transport_fetch(t, "dlq", 0, 0, 1 << 20, 1000, &b, &err));
    CHECK_EQ_INT(b.n, 2);
    const char *want[2][2] = {{"the destination refuses 'bad'", "1"},
                              {"not in the Confluent wire format", "2"}};
    for (size_t i = 0; i < b.n && i < 2; i++) {
        bool reason = false, offset = false, proc = false;
        for (uint32_t h = 0; h < b.records[i].n_headers; h++) {
            const dm_record_header_t *hd = &b.records[i].headers[h];
            char v[300];
            snprintf(v, sizeof(v), "%.*s", hd->value_len, (const char *)hd->value);
            if (!strncmp(hd->key, DM_DLQ_REASON, hd->key_len)) reason = strstr(v, want[i][0]);
            if (!strncmp(hd->key, DM_DLQ_OFFSET, hd->key_len)) offset = !strcmp(v, want[i][1]);
            if (!strncmp(hd->key, DM_DLQ_PROCESSOR, hd->key_len)) proc = !strcmp(v, "sink:memory");
        }
        CHECK(reason);
        CHECK(offset);
        CHECK(proc);
    }
    dm_transport_batch_free(t, &b);
}

static void test_resumes_from_committed_offsets(void)
{
    mem_reset();
    produce_rows("resume", 0, 10);
    runner_t r;
    start(&r, "resume", "1000", "10ms", NULL);
    CHECK(wait_written(10, 5000));
    stop(&r);
    produce_rows("resume", 10, 5);
    start(&r, "resume", "1000", "10ms", NULL);
    CHECK(wait_written(15, 5000));
    dm_sleep_ms(50);
    stop(&r);
    CHECK_EQ_INT(written(), 15);
    for (int i = 0; i < 15; i++)
        CHECK_EQ_INT(mem.ids[i], i);
}

static void test_reads_every_partition(void)
{
    mem_reset();
    dm_error_t err = {0};
    for (int i = 0; i < 30; i++) {
        char j[100];
        snprintf(j, sizeof(j), "{\"id\":%d,\"s\":\"p\"}", i);
        dm_arena_t a;
        dm_arena_init(&a, 0);
        dm_avro_value_t v;
        dm_buf_t b = DM_BUF_INIT;
        dm_wire_put_header(&b, 1);
        dm_avro_from_json_text(row->root, j, strlen(j), DM_AVRO_JSON_PLAIN, &a, &v, &err);
        dm_avro_encode(row->root, &v, &b, &err);
        dm_record_t r = {.key_len = -1, .value = b.data, .value_len = (int32_t)b.len};
        dm_transport_produce(t, "parts", i % 3, &r, 1, NULL, &err);
        dm_buf_free(&b);
        dm_arena_destroy(&a);
    }
    runner_t r;
    memset(&r, 0, sizeof(r));
    dm_config_defaults(&mem_table, &r.conf, &err);
    dm_config_set_text(&mem_table, &r.conf, "batch_records", "7", &err);
    dm_config_set_text(&mem_table, &r.conf, "linger", "10ms", &err);
    r.c = (dm_sink_run_config_t){.transport = t,
                                 .ops = &mem_ops,
                                 .conf = &r.conf,
                                 .dead_letter_topic = "dlq",
                                 .env = {.name = "parts",
                                         .topic = "parts",
                                         .partitions = 3,
                                         .group = "parts3",
                                         .value_schema = row,
                                         .value_schema_id = 1,
                                         .schema_by_id = lookup}};
    dm_unit_init(&r.st);
    pthread_create(&r.th, NULL, run_main, &r);
    CHECK(wait_written(30, 5000));
    dm_sleep_ms(50);
    stop(&r);
    CHECK_EQ_INT(written(), 30);
    int seen[30] = {0};
    for (int i = 0; i < written(); i++)
        if (mem.ids[i] >= 0 && mem.ids[i] < 30) seen[mem.ids[i]]++;
    for (int i = 0; i < 30; i++)
        CHECK_EQ_INT(seen[i], 1);
    for (int i = 0; i < mem.n_batches; i++)
        CHECK(mem.batches[i] <= 7);
    for (int p = 0; p < 3; p++) {
        int64_t off = -1;
        CHECK(!dm_transport_group_offset(t, "parts3", "parts", p, &off, &err));
        CHECK_EQ_INT(off, 10);
    }
}

/* Batches point into the transport's fetches instead of copying each record:
 * records a fetch had past batch_records are taken by the next batch, and a
 * batch that needs another fetch first copies what it holds of the last one.
 * Many records per fetch over three partitions and small batches cross every
 * one of those paths; each row must arrive once, in its partition's order,
 * with its bytes intact. */
static void test_batches_point_into_fetches(void)
{
    mem_reset();
    dm_error_t err = {0};
    for (int p = 0; p < 3; p++)
        for (int i = 0; i < 300; i += 50) {
            dm_record_t recs[50];
            dm_buf_t bufs[50];
            for (int k = 0; k < 50; k++) {
                int id = p * 1000 + i + k;
                char j[100];
                snprintf(j, sizeof(j), "{\"id\":%d,\"s\":\"row-%d\"}", id, id);
                dm_arena_t a;
                dm_arena_init(&a, 0);
                dm_avro_value_t v;
                bufs[k] = (dm_buf_t)DM_BUF_INIT;
                dm_wire_put_header(&bufs[k], 1);
                dm_avro_from_json_text(row->root, j, strlen(j), DM_AVRO_JSON_PLAIN, &a, &v, &err);
                dm_avro_encode(row->root, &v, &bufs[k], &err);
                dm_arena_destroy(&a);
                recs[k] = (dm_record_t){
                    .key_len = -1, .value = bufs[k].data, .value_len = (int32_t)bufs[k].len};
            }
            CHECK(!dm_transport_produce(t, "fetches", p, recs, 50, NULL, &err));
            for (int k = 0; k < 50; k++)
                dm_buf_free(&bufs[k]);
        }
    runner_t r;
    memset(&r, 0, sizeof(r));
    dm_config_defaults(&mem_table, &r.conf, &err);
    dm_config_set_text(&mem_table, &r.conf, "batch_records", "64", &err);
    dm_config_set_text(&mem_table, &r.conf, "linger", "10ms", &err);
    r.c = (dm_sink_run_config_t){.transport = t,
                                 .ops = &mem_ops,
                                 .conf = &r.conf,
                                 .dead_letter_topic = "dlq",
                                 .env = {.name = "fetches",
                                         .topic = "fetches",
                                         .partitions = 3,
                                         .group = "fetches",
                                         .value_schema = row,
                                         .value_schema_id = 1,
                                         .schema_by_id = lookup}};
    dm_unit_init(&r.st);
    pthread_create(&r.th, NULL, run_main, &r);
    CHECK(wait_written(900, 10000));
    dm_sleep_ms(50);
    stop(&r);
    CHECK_EQ_INT(written(), 900);
    CHECK_EQ_INT(mem.bad_strings, 0);
    int seen[3000] = {0}, last[3] = {-1, -1, -1};
    for (int i = 0; i < written(); i++) {
        int64_t id = mem.ids[i];
        CHECK(id >= 0 && id < 3000);
        if (id < 0 || id >= 3000) continue;
        seen[id]++;
        CHECK(id % 1000 > last[id / 1000]); /* in its partition's order */
        last[id / 1000] = (int)(id % 1000);
    }
    for (int p = 0; p < 3; p++)
        for (int i = 0; i < 300; i++)
            CHECK_EQ_INT(seen[p * 1000 + i], 1);
    for (int i = 0; i < mem.n_batches; i++)
        CHECK(mem.batches[i] <= 64);
    for (int p = 0; p < 3; p++) {
        int64_t off = -1;
        CHECK(!dm_transport_group_offset(t, "fetches", "fetches", p, &off, &err));
        CHECK_EQ_INT(off, 300);
    }
}

/* Rows i in [from, from + n) of schema version 2 (id 3: a field more). */
static void produce_rows_v2(const char *topic, int from, int n)
{
    for (int i = from; i < from + n; i++) {
        char j[100];
        snprintf(j, sizeof(j), "{\"id\":%d,\"s\":\"v2\",\"n\":%d}", i, i * 10);
        produce_json(topic, row2, 3, j);
    }
}

static void test_new_schema_version_starts_a_batch(void)
{
    mem_reset();
    produce_rows("versions", 0, 3);
    produce_rows_v2("versions", 3, 3);
    produce_rows("versions", 6, 2); /* v1 again: known by then, no cut */
    produce_rows_v2("versions", 8, 2);
    runner_t r;
    start(&r, "versions", "1000", "50ms", NULL);
    CHECK(wait_written(10, 5000));
    stop(&r);
    CHECK_EQ_INT(written(), 10);
    for (int i = 0; i < 10; i++)
        CHECK_EQ_INT(mem.ids[i], i);
    CHECK_EQ_INT(mem.n_batches, 2);
    CHECK_EQ_INT(mem.batches[0], 3);
    CHECK_EQ_INT(mem.batches[1], 7);
    int64_t off = -1;
    dm_error_t err = {0};
    CHECK(!dm_transport_group_offset(t, "versions", "versions", 0, &off, &err));
    CHECK_EQ_INT(off, 10);
}

static void test_checkpointing_sink(void)
{
    dm_metrics_t *m = dm_metrics_new();
    runner_t r;
    dm_error_t err = {0};
    int64_t off = -1;
    /* Batches of 3, a commit once 6 rows are staged, the rest at the stop. */
    ck_reset(6);
    start_ops = &ck_ops;
    produce_rows("ckpt", 0, 10);
    start(&r, "ckpt", "3", "10ms", m);
    CHECK(wait_committed(6, 5000));
    dm_sleep_ms(100);
    CHECK_EQ_INT(committed(), 6); /* 4 staged, not due */
    CHECK(!dm_transport_group_offset(t, "ckpt", "ckpt", 0, &off, &err));
    CHECK_EQ_INT(off, 6); /* the group follows commits only */
    stop(&r);
    CHECK_EQ_INT(committed(), 10);
    CHECK_EQ_INT(ck.stored_next, 10);
    CHECK_EQ_INT(ck.commits, 2);
    dm_buf_t text = DM_BUF_INIT;
    dm_metrics_render(m, &text);
    dm_buf_append_u8(&text, 0);
    CHECK_CONTAINS((char *)text.data,
                   "datamesh_sink_records_total{sink=\"ckpt\",type=\"checkpointing\"} 10");
    dm_buf_free(&text);
    /* A lost checkpoint: read again from the stored positions, each row once. */
    ck.fail_checkpoints = 1;
    ck.due_at = 4;
    produce_rows("ckpt", 10, 8);
    start(&r, "ckpt", "4", "10ms", m);
    CHECK(wait_committed(18, 5000));
    stop(&r);
    CHECK_EQ_INT(committed(), 18);
    dm_metrics_render(m, &text);
    dm_buf_append_u8(&text, 0);
    CHECK_CONTAINS((char *)text.data,
                   "datamesh_sink_retries_total{sink=\"ckpt\",type=\"checkpointing\"} 1");
    dm_buf_free(&text);
    for (int i = 0; i < committed(); i++)
        CHECK_EQ_INT(ck.committed[i], i);
    /* Idle: a due checkpoint commits without new records or a stop. */
    ck.due_at = 2;
    produce_rows("ckpt", 18, 1);
    start(&r, "ckpt", "100", "10ms", NULL);
    dm_sleep_ms(300);
    CHECK_EQ_INT(committed(), 18); /* 1 staged, not due */
    pthread_mutex_lock(&ck.mu);
    ck.due_at = 1;
    pthread_mutex_unlock(&ck.mu);
    CHECK(wait_committed(19, 3000)); /* asked again while idle */
    /* A new schema version: what is open commits first (forced). */
    ck.due_at = 100;
    int forced = ck.forced;
    produce_rows("ckpt", 19, 2);
    dm_sleep_ms(200);
    produce_rows_v2("ckpt", 21, 2);
    CHECK(wait_committed(21, 3000));
    CHECK(ck.forced > forced);
    stop(&r);
    CHECK_EQ_INT(committed(), 23);
    for (int i = 0; i < committed(); i++)
        CHECK_EQ_INT(ck.committed[i], i);
    CHECK_EQ_INT(ck.late_versions, 0);
    start_ops = &mem_ops;
    dm_metrics_free(m);
}

/* A record of a new version that cannot be decoded (a dead letter) does not
 * make its version known: the next good record of it still starts a batch. */
static void test_undecodable_new_version_stays_unknown(void)
{
    ck_reset(1000);
    start_ops = &ck_ops;
    produce_rows("undec", 0, 3);
    uint8_t broken[] = {0, 0, 0, 0, 3, 0xff}; /* schema id 3 (v2), a cut varint */
    dm_record_t junk = {.key_len = -1, .value = broken, .value_len = sizeof(broken)};
    dm_error_t err = {0};
    dm_transport_produce(t, "undec", 0, &junk, 1, NULL, &err);
    produce_rows("undec", 3, 2);
    produce_rows_v2("undec", 5, 2);
    runner_t r;
    start(&r, "undec", "1000", "50ms", NULL);
    dm_sleep_ms(400);
    stop(&r); /* commits what is open */
    CHECK_EQ_INT(committed(), 7);
    for (int i = 0; i < committed(); i++)
        CHECK_EQ_INT(ck.committed[i], i);
    CHECK_EQ_INT(ck.late_versions, 0);
    start_ops = &mem_ops;
}

static void test_open_failing_for_good_fails_the_unit(void)
{
    runner_t r;
    start_ops = &broken_ops;
    start(&r, "size", "10", "10ms", NULL);
    pthread_join(r.th, NULL); /* returns by itself */
    char state[32], error[300];
    dm_unit_get(&r.st, state, sizeof(state), error, sizeof(error));
    CHECK_STR_EQ(state, "failed");
    CHECK_CONTAINS(error, "NAMESPACE.TABLE");
    dm_unit_destroy(&r.st);
    start_ops = &mem_ops;
}

/* Each sink names what it writes as OpenLineage's naming spec does, found
 * through the registry as lineage finds it; no password ever in it. */
static void lineage_name(const char *type, const char *settings, const char *ns, const char *name)
{
    const dm_sink_ops_t *ops = dm_sink_ops_find(type);
    REQUIRE(ops && ops->lineage);
    json_t *s = json_loads(settings, 0, NULL), *d = json_object();
    REQUIRE(s);
    ops->lineage(s, d);
    CHECK_STR_EQ(json_string_value(json_object_get(d, "namespace")), ns);
    const char *got = json_string_value(json_object_get(d, "name"));
    REQUIRE(got);
    if (name[0] == '*') /* "*suffix": a path under the working directory */
        CHECK(got[0] == '/' && strlen(got) > strlen(name + 1) &&
              !strcmp(got + strlen(got) - strlen(name + 1), name + 1));
    else
        CHECK_STR_EQ(got, name);
    char *all = json_dumps(d, 0);
    CHECK(!strstr(all, "s3cret"));
    free(all);
    json_decref(s);
    json_decref(d);
}

static void test_lineage_dataset_names(void)
{
    lineage_name("postgres",
                 "{\"dsn\":\"host=db.example port=5433 dbname=shop user=w password=s3cret\","
                 "\"table\":\"sales.orders\"}",
                 "postgres://db.example:5433", "shop.sales.orders");
    lineage_name("postgres", "{\"dsn\":\"postgresql://w:s3cret@10.0.0.7/dw\",\"table\":\"orders\"}",
                 "postgres://10.0.0.7:5432", "dw.public.orders");
    lineage_name("postgres", "{\"dsn\":\"user=etl\",\"table\":\"t\"}", "postgres://localhost:5432",
                 "etl.public.t");
    lineage_name("kafka", "{\"brokers\":\"k1:9092,k2:9092\",\"topic\":\"orders\"}",
                 "kafka://k1:9092", "orders");
    lineage_name("file", "{\"path\":\"/data/out.jsonl\"}", "file", "/data/out.jsonl");
    lineage_name("file", "{\"path\":\"out/x.jsonl\"}", "file", "*/out/x.jsonl");
    lineage_name("iceberg", "{\"warehouse\":\"/lake\",\"table\":\"db.orders\"}", "file",
                 "/lake/db/orders");
    /* an iceberg sort order: its columns, in order */
    json_t *s = json_loads("{\"warehouse\":\"w\",\"table\":\"a.b\","
                           "\"sort_by\":\"country desc nulls last, ts,id asc\"}",
                           0, NULL),
           *d = json_object();
    dm_sink_ops_find("iceberg")->lineage(s, d);
    const json_t *sort = json_object_get(d, "sort");
    REQUIRE(json_array_size(sort) == 3);
    CHECK_STR_EQ(json_string_value(json_array_get(sort, 0)), "country");
    CHECK_STR_EQ(json_string_value(json_array_get(sort, 1)), "ts");
    CHECK_STR_EQ(json_string_value(json_array_get(sort, 2)), "id");
    json_decref(s);
    json_decref(d);
}

int main(void)
{
    if (!mkdtemp(dir)) return 1;
    char url[100];
    snprintf(url, sizeof(url), "embedded:%s", dir);
    dm_error_t err = {0};
    if (dm_transport_open(url, &t, &err)) return 1;
    const char *topics[] = {"dlq",   "size",   "time",     "down", "never",
                            "mixed", "resume", "versions", "ckpt", "undec"};
    for (size_t i = 0; i < sizeof(topics) / sizeof(topics[0]); i++)
        dm_transport_create_topic(t, &(dm_topic_config_t){.name = topics[i], .partitions = 1},
                                  &err);
    dm_transport_create_topic(t, &(dm_topic_config_t){.name = "parts", .partitions = 3}, &err);
    dm_transport_create_topic(t, &(dm_topic_config_t){.name = "fetches", .partitions = 3}, &err);
    dm_avro_schema_parse(ROW, strlen(ROW), &row, &err);
    dm_avro_schema_parse(ENV, strlen(ENV), &env_schema, &err);
    dm_avro_schema_parse(ROW2, strlen(ROW2), &row2, &err);
    RUN(test_lineage_dataset_names);
    RUN(test_batches_by_size);
    RUN(test_batches_by_time);
    RUN(test_retries_while_down_with_secrets_out);
    RUN(test_fails_when_retrying_cannot_help);
    RUN(test_dead_letters_and_envelopes);
    RUN(test_resumes_from_committed_offsets);
    RUN(test_reads_every_partition);
    RUN(test_batches_point_into_fetches);
    RUN(test_new_schema_version_starts_a_batch);
    RUN(test_checkpointing_sink);
    RUN(test_undecodable_new_version_stays_unknown);
    RUN(test_open_failing_for_good_fails_the_unit);
    dm_transport_close(t);
    dm_avro_schema_free(row);
    dm_avro_schema_free(env_schema);
    dm_avro_schema_free(row2);
    char cmd[200];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd)) {
    }
    return check_summary();
}
