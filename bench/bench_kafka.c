/* bench/bench_kafka.c — the Kafka transport against raw librdkafka, on one mock cluster.
 *
 * The same work on both sides: produce and consume RECORDS records (8-byte key, 100-byte
 * value) on a one-partition topic, with an idempotent producer (every record acknowledged)
 * and a read_committed consumer. The mock keeps only a few MB per partition, so each side
 * produces CHUNK records and reads them back, CYCLES times, after one untimed warm-up
 * cycle (connections, producer id, first fetch).
 *
 * Baseline: librdkafka used as well as it can be — producev with RD_KAFKA_MSG_F_COPY of
 * every record, then polling delivery reports until all are acknowledged; an assigned
 * consumer read from its partition queue, a blocking wait for the first message and then
 * rd_kafka_consume_batch_queue of what is queued; the transport's consumer settings.
 * datamesh: dm_transport_produce of BATCH records per call (each call returns once its
 * records are acknowledged) and dm_transport_fetch of 1 MiB at a time.
 *
 * Both run against librdkafka's mock cluster (three brokers on loopback, made in this
 * process), alternating, ROUNDS times each; the best round counts. Last line:
 * `kafka ratio=X.XX target=0.8`: datamesh's produce+consume rate over the baseline's.
 */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "transport/transport.h"

#define CHUNK   20000 /* the mock keeps a few MB per partition: produce, consume, repeat */
#define CYCLES  10
#define RECORDS (CHUNK * CYCLES)
#define BATCH   5000
#define VSIZE   100
#define ROUNDS  3

static rd_kafka_mock_cluster_t *mc;
static const char *bootstrap;
static uint8_t values[BATCH][VSIZE];
static uint64_t keys[BATCH];

typedef struct result {
    uint64_t produce_ns, consume_ns;
} result_t;

static void die(const char *what, const char *why)
{
    fprintf(stderr, "bench kafka: %s: %s\n", what, why);
    exit(1);
}

static rd_kafka_conf_t *conf_new(void)
{
    char errstr[256];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    if (rd_kafka_conf_set(c, "bootstrap.servers", bootstrap, errstr, sizeof(errstr)))
        die("conf", errstr);
    return c;
}

static void set(rd_kafka_conf_t *c, const char *k, const char *v)
{
    char errstr[256];
    if (rd_kafka_conf_set(c, k, v, errstr, sizeof(errstr))) die(k, errstr);
}

static long raw_failed, raw_delivered;

/* The baseline counts deliveries, and failures: the same promise as the transport's. */
static void raw_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    if (m->err) raw_failed++;
    raw_delivered++;
}

static rd_kafka_t *raw_producer(void)
{
    char errstr[256];
    rd_kafka_conf_t *c = conf_new();
    set(c, "enable.idempotence", "true");
    set(c, "linger.ms", "5");
    rd_kafka_conf_set_dr_msg_cb(c, raw_delivery);
    rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, c, errstr, sizeof(errstr));
    if (!p) die("producer", errstr);
    return p;
}

static rd_kafka_t *raw_consumer(const char *topic, rd_kafka_queue_t **q)
{
    char errstr[256];
    rd_kafka_conf_t *c = conf_new();
    set(c, "group.id", "bench");
    set(c, "enable.auto.commit", "false");
    set(c, "isolation.level", "read_committed");
    /* The transport's consumer settings: the mock answers an empty fetch only when
     * fetch.wait.max.ms expires, and the end-of-partition events cost nothing. */
    set(c, "fetch.wait.max.ms", "100");
    set(c, "fetch.error.backoff.ms", "100");
    set(c, "enable.partition.eof", "true");
    set(c, "queued.max.messages.kbytes", "16384");
    rd_kafka_t *k = rd_kafka_new(RD_KAFKA_CONSUMER, c, errstr, sizeof(errstr));
    if (!k) die("consumer", errstr);
    /* Read the partition's own queue (one hop less than the consumer queue it forwards to
     * by default: the faster way, and the one the transport uses). */
    *q = rd_kafka_queue_get_partition(k, topic, 0);
    rd_kafka_queue_forward(*q, NULL);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, 0)->offset = 0;
    rd_kafka_assign(k, l);
    rd_kafka_topic_partition_list_destroy(l);
    return k;
}

static void raw_consume(rd_kafka_queue_t *q, long want)
{
    static rd_kafka_message_t *msgs[4096];
    long got = 0;
    while (got < want) {
        /* Block for the first message, then take what is queued without waiting (the
         * batch call with a timeout would wait for a full batch). */
        ssize_t n = 0;
        rd_kafka_message_t *first = rd_kafka_consume_queue(q, 10000);
        if (!first) die("consume", "no records for 10 s");
        msgs[n++] = first;
        ssize_t more = rd_kafka_consume_batch_queue(q, 0, msgs + 1, 4095);
        if (more > 0) n += more;
        for (ssize_t i = 0; i < n; i++) {
            if (msgs[i]->err && msgs[i]->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                die("consume", rd_kafka_message_errstr(msgs[i]));
            if (!msgs[i]->err) {
                if (msgs[i]->len != VSIZE) die("consume", "wrong record size");
                got++;
            }
            rd_kafka_message_destroy(msgs[i]);
        }
    }
    if (got != want) die("consume", "more records than produced");
}

static result_t raw_round(const char *topic)
{
    result_t r = {0, 0};
    rd_kafka_t *p = raw_producer();
    rd_kafka_queue_t *q;
    rd_kafka_t *k = raw_consumer(topic, &q);
    for (int cycle = 0; cycle <= CYCLES; cycle++) {
        uint64_t t0 = dm_now_ns();
        for (int i = 0; i < CHUNK; i++) {
            rd_kafka_resp_err_t e;
            while ((e = rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(0),
                                          RD_KAFKA_V_KEY(&keys[i % BATCH], 8),
                                          RD_KAFKA_V_VALUE(values[i % BATCH], VSIZE),
                                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                          RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                rd_kafka_poll(p, 1);
            if (e) die("produce", rd_kafka_err2str(e));
        }
        /* Every record acknowledged (polling for delivery reports is faster than flush). */
        while (raw_delivered < (long)(cycle + 1) * CHUNK)
            rd_kafka_poll(p, 5);
        if (raw_failed) die("produce", "deliveries failed");
        uint64_t t1 = dm_now_ns();
        raw_consume(q, CHUNK);
        if (cycle == 0) continue; /* warm-up: connections, producer id, first fetch */
        r.produce_ns += t1 - t0;
        r.consume_ns += dm_now_ns() - t1;
    }
    rd_kafka_queue_destroy(q);
    rd_kafka_consumer_close(k);
    rd_kafka_destroy(k);
    rd_kafka_destroy(p);
    return r;
}

static result_t dm_round(const char *topic)
{
    result_t r = {0, 0};
    dm_transport_t *t;
    dm_error_t err = {0};
    char url[512];
    snprintf(url, sizeof(url), "kafka://%s", bootstrap);
    if (dm_transport_open(url, &t, &err)) die("open", err.message);
    static dm_record_t recs[BATCH];
    for (int i = 0; i < BATCH; i++)
        recs[i] = (dm_record_t){
            .key = (const uint8_t *)&keys[i], .key_len = 8, .value = values[i], .value_len = VSIZE};
    dm_transport_batch_t b = {0};
    int64_t pos = 0;
    for (int cycle = 0; cycle <= CYCLES; cycle++) {
        uint64_t t0 = dm_now_ns();
        for (int i = 0; i < CHUNK; i += BATCH)
            if (dm_transport_produce(t, topic, 0, recs, BATCH, NULL, &err))
                die("produce", err.message);
        uint64_t t1 = dm_now_ns();
        long got = 0;
        while (got < CHUNK) {
            if (dm_transport_fetch(t, topic, 0, pos, 1 << 20, 10000, &b, &err))
                die("fetch", err.message);
            if (!b.n) die("fetch", "no records for 10 s");
            for (size_t i = 0; i < b.n; i++)
                if (b.records[i].value_len != VSIZE) die("fetch", "wrong record size");
            got += (long)b.n;
            pos = b.next_offset;
        }
        if (got != CHUNK) die("fetch", "more records than produced");
        if (cycle == 0) continue; /* warm-up: connections, producer id, first fetch */
        r.produce_ns += t1 - t0;
        r.consume_ns += dm_now_ns() - t1;
    }
    dm_transport_batch_free(t, &b);
    dm_transport_close(t);
    return r;
}

static double rate(uint64_t ns)
{
    return RECORDS / ((double)ns / 1e9);
}

int main(void)
{
    dm_log_set_level(DM_LOG_ERROR);
    char errstr[256];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    rd_kafka_conf_set(c, "log_level", "2", errstr, sizeof(errstr));
    rd_kafka_t *mrk = rd_kafka_new(RD_KAFKA_PRODUCER, c, errstr, sizeof(errstr));
    if (!mrk) die("mock", errstr);
    mc = rd_kafka_mock_cluster_new(mrk, 3);
    if (!mc) die("mock", "cannot create the cluster");
    bootstrap = rd_kafka_mock_cluster_bootstraps(mc);
    for (int i = 0; i < BATCH; i++) {
        keys[i] = (uint64_t)i * 2654435761u;
        for (int j = 0; j < VSIZE; j++)
            values[i][j] = (uint8_t)(i + j);
    }
    result_t best_raw = {UINT64_MAX, UINT64_MAX}, best_dm = {UINT64_MAX, UINT64_MAX};
    for (int round = 0; round < ROUNDS; round++) {
        char topic[64];
        snprintf(topic, sizeof(topic), "raw-%d", round);
        rd_kafka_mock_topic_create(mc, topic, 1, 3);
        result_t r = raw_round(topic);
        if (r.produce_ns + r.consume_ns < best_raw.produce_ns + best_raw.consume_ns) best_raw = r;
        snprintf(topic, sizeof(topic), "dm-%d", round);
        rd_kafka_mock_topic_create(mc, topic, 1, 3);
        r = dm_round(topic);
        if (r.produce_ns + r.consume_ns < best_dm.produce_ns + best_dm.consume_ns) best_dm = r;
    }
    printf("records: %d x %d bytes, mock cluster of 3 brokers, best of %d rounds\n", RECORDS, VSIZE,
           ROUNDS);
    printf("librdkafka  produce %9.0f msg/s  consume %9.0f msg/s  both %9.0f msg/s\n",
           rate(best_raw.produce_ns), rate(best_raw.consume_ns),
           2 * rate(best_raw.produce_ns + best_raw.consume_ns));
    printf("datamesh    produce %9.0f msg/s  consume %9.0f msg/s  both %9.0f msg/s\n",
           rate(best_dm.produce_ns), rate(best_dm.consume_ns),
           2 * rate(best_dm.produce_ns + best_dm.consume_ns));
    double ratio = (double)(best_raw.produce_ns + best_raw.consume_ns) /
                   (double)(best_dm.produce_ns + best_dm.consume_ns);
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(mrk);
    printf("kafka ratio=%.2f target=0.8\n", ratio);
    return 0;
}
