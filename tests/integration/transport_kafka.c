/* The Kafka transport against librdkafka's mock cluster (three brokers on loopback, made
 * in this process so the tests can inject faults): produce/fetch, groups, transactions that
 * carry input offsets, aborts when a transactional request fails, fencing of a zombie, a
 * running task through a broker outage and request errors, and kcat reading what datamesh
 * wrote. The mock has no CreateTopics (topics are made through its API) and does not hide
 * aborted records from read_committed readers (so output is checked for loss, and the
 * committed offsets for exactness). */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/clock.h"
#include "engine/task.h"
#include "schema/wire.h"
#include "transport/kafka/kafka.h"
#include "transport/transport.h"

/* Kafka protocol API keys (the mock takes them for pushed errors). */
enum { API_PRODUCE = 0, API_ADD_OFFSETS_TO_TXN = 25, API_END_TXN = 26, API_TXN_OFFSET_COMMIT = 28 };

static rd_kafka_t *mock_rk;
static rd_kafka_mock_cluster_t *mc;
static char url[512];

static void start_cluster(void)
{
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "2", errstr, sizeof(errstr));
    mock_rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    REQUIRE(mock_rk);
    mc = rd_kafka_mock_cluster_new(mock_rk, 3);
    REQUIRE(mc);
    snprintf(url, sizeof(url), "kafka://%s", rd_kafka_mock_cluster_bootstraps(mc));
}

static void topic(const char *name, int partitions)
{
    REQUIRE(rd_kafka_mock_topic_create(mc, name, partitions, 3) == RD_KAFKA_RESP_ERR_NO_ERROR);
}

static dm_transport_t *open_kafka(void)
{
    dm_transport_t *t = NULL;
    dm_error_t err = {0};
    dm_err_t rc = dm_transport_open(url, &t, &err);
    if (rc) fprintf(stderr, "open: %s\n", err.message);
    REQUIRE(rc == DM_OK);
    return t;
}

static void test_open_errors(void)
{
    dm_transport_t *t = NULL;
    dm_error_t err = {0};
    CHECK_EQ_INT(dm_transport_open("kafka://", &t, &err), DM_ERR_TRANSPORT_BACKEND);
    CHECK_CONTAINS(err.message, "kafka://host:port");
    CHECK(dm_transport_open("kafka://127.0.0.1:1?socket.timeout.ms=1000", &t, &err) != DM_OK);
    CHECK_CONTAINS(err.message, "cannot reach the cluster");
    CHECK(dm_transport_open("kafka://127.0.0.1:1?no.such.setting=1", &t, &err) != DM_OK);
    CHECK_CONTAINS(err.message, "no.such.setting");
    CHECK(t == NULL);
}

static void test_admin(void)
{
    /* Short request timeouts: the mock never answers CreateTopics. */
    char short_url[600];
    snprintf(short_url, sizeof(short_url), "%s?socket.timeout.ms=3000", url);
    dm_transport_t *t = NULL;
    dm_error_t e0 = {0};
    REQUIRE(dm_transport_open(short_url, &t, &e0) == DM_OK);
    CHECK_STR_EQ(dm_transport_backend(t), "kafka");
    topic("adm", 3);
    dm_topic_description_t d;
    dm_error_t err = {0};
    REQUIRE(dm_transport_describe_topic(t, "adm", &d, &err) == DM_OK);
    CHECK_EQ_INT(d.n_partitions, 3);
    CHECK_EQ_INT(d.partitions[2].end_offset, 0);
    dm_transport_description_free(&d);
    CHECK_EQ_INT(dm_transport_describe_topic(t, "nope", &d, &err), DM_ERR_LOG_TOPIC_NOT_FOUND);
    CHECK_CONTAINS(err.message, "nope");
    /* The mock has no CreateTopics: the real admin path must report the broker's refusal. */
    dm_err_t rc = dm_transport_create_topic(
        t, &(dm_topic_config_t){.name = "made", .partitions = 2, .retention_ms = 1000}, &err);
    CHECK(rc != DM_OK);
    CHECK_CONTAINS(err.message, "creating topic made");
    dm_transport_close(t);
}

static int count_topic(void *ctx, const char *name)
{
    if (!strcmp(name, "adm")) ++*(int *)ctx;
    return 0;
}

static void test_produce_fetch_groups(void)
{
    dm_transport_t *t = open_kafka();
    topic("pf", 2);
    dm_error_t err = {0};
    int seen = 0;
    CHECK(dm_transport_list_topics(t, count_topic, &seen, &err) == DM_OK);
    CHECK_EQ_INT(seen, 1);
    dm_record_header_t h = {"h", 1, (const uint8_t *)"v", 1};
    dm_record_t recs[3] = {
        {.key = (const uint8_t *)"k0",
         .key_len = 2,
         .value = (const uint8_t *)"a",
         .value_len = 1,
         .headers = &h,
         .n_headers = 1},
        {.key = NULL, .key_len = -1, .value = (const uint8_t *)"bb", .value_len = 2},
        {.key = (const uint8_t *)"k2", .key_len = 2, .value = NULL, .value_len = -1},
    };
    int64_t base = -1;
    REQUIRE(dm_transport_produce(t, "pf", 1, recs, 3, &base, &err) == DM_OK);
    CHECK_EQ_INT(base, 0);
    REQUIRE(dm_transport_produce(t, "pf", 1, recs, 1, &base, &err) == DM_OK);
    CHECK_EQ_INT(base, 3);
    int64_t start, end;
    REQUIRE(dm_transport_offsets(t, "pf", 1, &start, &end, &err) == DM_OK);
    CHECK_EQ_INT(start, 0);
    CHECK_EQ_INT(end, 4);

    dm_transport_batch_t b = {0};
    REQUIRE(dm_transport_fetch(t, "pf", 1, 0, 1 << 20, 5000, &b, &err) == DM_OK);
    REQUIRE(b.n >= 1);
    size_t got = b.n;
    CHECK_EQ_INT(b.records[0].offset, 0);
    CHECK_EQ_INT(b.records[0].key_len, 2);
    CHECK_EQ_INT(b.records[0].n_headers, 1);
    CHECK(b.records[0].n_headers == 1 && !memcmp(b.records[0].headers[0].value, "v", 1));
    while (got < 4) { /* continues where it ended, without a seek */
        REQUIRE(dm_transport_fetch(t, "pf", 1, b.next_offset, 1 << 20, 5000, &b, &err) == DM_OK);
        if (b.n && b.records[0].offset == 1) CHECK_EQ_INT(b.records[0].key_len, -1);
        got += b.n;
    }
    CHECK_EQ_INT(b.next_offset, 4);
    /* Another offset seeks back. */
    REQUIRE(dm_transport_fetch(t, "pf", 1, 2, 1 << 20, 5000, &b, &err) == DM_OK);
    REQUIRE(b.n >= 1);
    CHECK_EQ_INT(b.records[0].offset, 2);
    CHECK_EQ_INT(b.records[0].value_len, -1);
    /* An empty partition waits, then returns nothing. */
    uint64_t t0 = dm_now_ns();
    REQUIRE(dm_transport_fetch(t, "pf", 0, 0, 1 << 20, 300, &b, &err) == DM_OK);
    CHECK_EQ_INT(b.n, 0);
    CHECK((dm_now_ns() - t0) / 1000000 >= 250);
    dm_transport_batch_free(t, &b);

    int64_t o;
    CHECK_EQ_INT(dm_transport_group_offset(t, "g1", "pf", 1, &o, &err), DM_ERR_NOT_FOUND);
    REQUIRE(dm_transport_group_commit(t, "g1", &(dm_tp_offset_t){"pf", 1, 3}, 1, &err) == DM_OK);
    REQUIRE(dm_transport_group_offset(t, "g1", "pf", 1, &o, &err) == DM_OK);
    CHECK_EQ_INT(o, 3);
    dm_transport_close(t);
}

static dm_err_t commit_one(dm_transport_t *t, const char *out, const char *group, int64_t next,
                           dm_error_t *err)
{
    dm_transport_txn_t *x;
    dm_err_t rc = dm_transport_txn_begin(t, &x, err);
    if (rc) return rc;
    dm_record_t r = {
        .key = (const uint8_t *)"k", .key_len = 1, .value = (const uint8_t *)"out", .value_len = 3};
    if ((rc = dm_transport_txn_produce(x, out, 0, &r, 1, err)) ||
        (rc = dm_transport_txn_offsets(x, group, &(dm_tp_offset_t){"txin", 0, next}, 1, err))) {
        dm_transport_txn_abort(x);
        return rc;
    }
    return dm_transport_txn_commit(x, err);
}

static void test_transactions(void)
{
    topic("txin", 1);
    topic("txout", 1);
    dm_transport_t *t = open_kafka();
    dm_error_t err = {0};
    dm_err_t rc = commit_one(t, "txout", "tg", 42, &err);
    if (rc) fprintf(stderr, "commit: %s\n", err.message);
    REQUIRE(rc == DM_OK);
    uint64_t commits, aborts;
    dm_kafka_txn_counts(t, &commits, &aborts);
    CHECK_EQ_INT(commits, 1);
    CHECK_EQ_INT(aborts, 0);
    int64_t end;
    REQUIRE(dm_transport_offsets(t, "txout", 0, NULL, &end, &err) == DM_OK);
    CHECK(end >= 1);

    /* The input offsets travel inside the transaction: when the offset commit fails for
     * good, the whole transaction aborts (and says why). */
    rd_kafka_mock_push_request_errors(mc, API_TXN_OFFSET_COMMIT, 1,
                                      RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED);
    rc = commit_one(t, "txout", "tg", 50, &err);
    CHECK(rc != DM_OK);
    CHECK_CONTAINS(err.message, "datamesh.tg.txin.0");
    CHECK_CONTAINS(err.message, "authorization");
    dm_kafka_txn_counts(t, &commits, &aborts);
    CHECK_EQ_INT(commits, 1);
    CHECK_EQ_INT(aborts, 1);
    rd_kafka_mock_push_request_errors(mc, API_ADD_OFFSETS_TO_TXN, 1,
                                      RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED);
    CHECK(commit_one(t, "txout", "tg", 50, &err) != DM_OK);
    dm_kafka_txn_counts(t, &commits, &aborts);
    CHECK_EQ_INT(aborts, 2);
    /* Retriable errors on the way are retried, and the next commit goes through on the
     * same producer. */
    rd_kafka_mock_push_request_errors(mc, API_END_TXN, 2,
                                      RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS,
                                      RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS);
    rc = commit_one(t, "txout", "tg", 50, &err);
    if (rc) fprintf(stderr, "commit: %s\n", err.message);
    CHECK(rc == DM_OK);
    dm_kafka_txn_counts(t, &commits, &aborts);
    CHECK_EQ_INT(commits, 2);

    /* A producer the cluster fenced (a newer instance of the task took its id) is
     * reported as fenced and not reused. (The mock gives each init a new producer id
     * rather than bumping the epoch, so the fence is injected.) */
    rd_kafka_mock_push_request_errors(mc, API_END_TXN, 1, RD_KAFKA_RESP_ERR_PRODUCER_FENCED);
    rc = commit_one(t, "txout", "tg", 55, &err);
    CHECK_EQ_INT(rc, DM_ERR_TRANSPORT_FENCED);
    CHECK_CONTAINS(err.message, "datamesh.tg.txin.0");
    rc = commit_one(t, "txout", "tg", 60, &err); /* a new producer: init fences the old */
    if (rc) fprintf(stderr, "commit: %s\n", err.message);
    CHECK(rc == DM_OK);
    dm_transport_close(t);
}

/* ---- a task running through faults ---------------------------------------------------- */

#define N_EVENTS 3000

typedef struct runner {
    dm_task_t *task;
    _Atomic int64_t position;
    atomic_bool stop;
    atomic_int errors;
    atomic_bool txn_failed; /* a commit failed and said which transaction */
} runner_t;

static void *run_task(void *arg)
{
    runner_t *r = arg;
    while (!atomic_load(&r->stop)) {
        size_t n;
        dm_error_t err = {0};
        if (dm_task_step(r->task, 100, &n, &err)) {
            atomic_fetch_add(&r->errors, 1);
            if (strstr(err.message, "kafka transaction datamesh.pipeline.faults.ev.0"))
                atomic_store(&r->txn_failed, true);
            dm_sleep_ms(100);
        }
        atomic_store(&r->position, dm_task_position(r->task));
    }
    return NULL;
}

static void produce_events(dm_transport_t *t, int from, int to)
{
    uint8_t buf[64][16];
    dm_record_t recs[64];
    for (int i = from; i < to;) {
        int n = 0;
        for (; n < 64 && i < to; n++, i++) {
            buf[n][0] = 0;
            buf[n][1] = buf[n][2] = buf[n][3] = 0;
            buf[n][4] = 7; /* schema id 7 */
            uint64_t z = (uint64_t)i << 1;
            int len = 5;
            do {
                buf[n][len++] = (uint8_t)((z & 0x7f) | (z > 0x7f ? 0x80 : 0));
                z >>= 7;
            } while (z);
            recs[n] = (dm_record_t){.key = NULL, .key_len = -1, .value = buf[n], .value_len = len};
        }
        dm_error_t err = {0};
        dm_err_t rc = dm_transport_produce(t, "ev", 0, recs, (size_t)n, NULL, &err);
        if (rc) fprintf(stderr, "produce: %s\n", err.message);
        REQUIRE(rc == DM_OK);
    }
}

static void test_task_through_faults(void)
{
    topic("ev", 1);
    topic("ev.out", 1);
    topic("ev.dlq", 1);
    dm_transport_t *t = open_kafka();
    dm_avro_schema_t *schema;
    const char *js = "{\"type\":\"record\",\"name\":\"E\",\"fields\":[{\"name\":\"id\",\"type\":"
                     "\"long\"}]}";
    dm_error_t err = {0};
    REQUIRE(dm_avro_schema_parse(js, strlen(js), &schema, &err) == DM_OK);
    dm_task_config_t tc = {.name = "faults/0",
                           .group = "pipeline.faults",
                           .input_topic = "ev",
                           .input_partition = 0,
                           .input_schema = schema,
                           .input_schema_id = 7,
                           .output_topic = "ev.out",
                           .output_schema_id = 7,
                           .dead_letter_topic = "ev.dlq",
                           .max_batch_bytes = 4096};
    runner_t r = {0};
    REQUIRE(dm_task_new(t, &tc, &r.task, &err) == DM_OK);
    pthread_t th;
    pthread_create(&th, NULL, run_task, &r);
    produce_events(t, 0, N_EVENTS / 3);

    /* The leader of the input goes down in the middle of the run, then comes back. */
    int32_t leader = 1;
    const rd_kafka_metadata_t *md;
    if (rd_kafka_metadata(mock_rk, 1, NULL, &md, 5000) == 0) {
        for (int i = 0; i < md->topic_cnt; i++)
            if (!strcmp(md->topics[i].topic, "ev")) leader = md->topics[i].partitions[0].leader;
        rd_kafka_metadata_destroy(md);
    }
    rd_kafka_mock_broker_set_down(mc, leader);
    dm_sleep_ms(1500);
    rd_kafka_mock_broker_set_up(mc, leader);
    produce_events(t, N_EVENTS / 3, 2 * N_EVENTS / 3);

    /* Request errors pushed at the transactions and at produce: retried or aborted. */
    rd_kafka_mock_push_request_errors(
        mc, API_PRODUCE, 3, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
        RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT);
    rd_kafka_mock_push_request_errors(mc, API_TXN_OFFSET_COMMIT, 1,
                                      RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED);
    produce_events(t, 2 * N_EVENTS / 3, N_EVENTS);

    /* The task gets through every input record (a position only moves on a commit). */
    uint64_t deadline = dm_now_ns() + 60ull * 1000000000;
    while (dm_now_ns() < deadline && atomic_load(&r.position) < N_EVENTS)
        dm_sleep_ms(100);
    CHECK_EQ_INT(atomic_load(&r.position), N_EVENTS);
    atomic_store(&r.stop, true);
    pthread_join(th, NULL);
    uint64_t commits, aborts;
    dm_kafka_txn_counts(t, &commits, &aborts);
    CHECK(aborts >= 1); /* the failed offset commit aborted its transaction */
    CHECK(atomic_load(&r.errors) >= 1);
    CHECK(atomic_load(&r.txn_failed));

    /* Nothing lost: every event is in the output (aborted copies may show: see above). */
    static bool seen[N_EVENTS];
    int distinct = 0;
    dm_transport_batch_t b = {0};
    int64_t pos = 0, end = 0;
    REQUIRE(dm_transport_offsets(t, "ev.out", 0, NULL, &end, &err) == DM_OK);
    while (pos < end) {
        REQUIRE(dm_transport_fetch(t, "ev.out", 0, pos, 1 << 20, 2000, &b, &err) == DM_OK);
        if (!b.n && b.next_offset == pos) break;
        for (size_t i = 0; i < b.n; i++) {
            const dm_record_t *rec = &b.records[i];
            uint64_t z = 0;
            int shift = 0;
            for (int j = 5; j < rec->value_len; j++, shift += 7) {
                z |= (uint64_t)(rec->value[j] & 0x7f) << shift;
                if (!(rec->value[j] & 0x80)) break;
            }
            int64_t id = (int64_t)(z >> 1);
            if (id >= 0 && id < N_EVENTS && !seen[id]) {
                seen[id] = true;
                distinct++;
            }
        }
        pos = b.next_offset;
    }
    dm_transport_batch_free(t, &b);
    CHECK_EQ_INT(distinct, N_EVENTS);
    dm_task_free(r.task);
    dm_avro_schema_free(schema);

    /* kcat lists the cluster's topics and reads what datamesh wrote, wire format intact. */
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "kcat -b '%s' -L 2>&1", url + strlen("kafka://"));
    FILE *f = popen(cmd, "r");
    REQUIRE(f);
    static char out[1 << 16];
    size_t n = fread(out, 1, sizeof(out) - 1, f);
    out[n] = '\0';
    CHECK_EQ_INT(pclose(f), 0);
    CHECK_CONTAINS(out, "topic \"ev.out\" with 1 partitions");
    snprintf(cmd, sizeof(cmd),
             "kcat -b '%s' -C -t ev.out -o beginning -c 1 -e -X isolation.level=read_committed "
             "-f '%%s' | od -An -tx1 -N5",
             url + strlen("kafka://"));
    f = popen(cmd, "r");
    REQUIRE(f);
    n = fread(out, 1, sizeof(out) - 1, f);
    out[n] = '\0';
    CHECK_EQ_INT(pclose(f), 0);
    CHECK_CONTAINS(out, "00 00 00 00 07"); /* Confluent magic byte, then schema id 7 */
    dm_transport_close(t);
}

int main(void)
{
    start_cluster();
    RUN(test_open_errors);
    RUN(test_admin);
    RUN(test_produce_fetch_groups);
    RUN(test_transactions);
    RUN(test_task_through_faults);
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(mock_rk);
    return check_summary();
}
