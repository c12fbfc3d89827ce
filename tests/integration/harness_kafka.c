/* needs:kafka-mock — the harness's mock cluster of three brokers takes
 * produced records over real TCP and serves them back; kcat sees it too. */
#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "core/clock.h"

static const char *brokers;

static void create_topic(const char *name, int partitions)
{
    FILE *ctl = fopen(getenv("DM_KAFKA_MOCK_CTL"), "w");
    REQUIRE(ctl);
    fprintf(ctl, "topic %s %d 3\n", name, partitions);
    fclose(ctl);
    /* Wait for the mock's answer. */
    char want[256];
    snprintf(want, sizeof(want), "created %s", name);
    for (int i = 0; i < 100; i++) {
        FILE *out = fopen(getenv("DM_KAFKA_MOCK_OUT"), "r");
        char line[512];
        bool seen = false;
        while (out && fgets(line, sizeof(line), out))
            if (strncmp(line, want, strlen(want)) == 0) seen = true;
        if (out) fclose(out);
        if (seen) return;
        dm_sleep_ms(20);
    }
    REQUIRE(!"mock cluster did not create the topic");
}

static void test_produce_and_consume(void)
{
    brokers = getenv("DM_KAFKA_BROKERS");
    REQUIRE(brokers);
    create_topic("harness", 3);
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    REQUIRE(rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, sizeof(errstr)) ==
            RD_KAFKA_CONF_OK);
    rd_kafka_conf_set(conf, "enable.idempotence", "true", errstr, sizeof(errstr));
    rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    REQUIRE(p);
    for (int i = 0; i < 100; i++) {
        char v[32];
        int n = snprintf(v, sizeof(v), "record-%d", i);
        CHECK(rd_kafka_producev(p, RD_KAFKA_V_TOPIC("harness"), RD_KAFKA_V_PARTITION(i % 3),
                                RD_KAFKA_V_VALUE(v, (size_t)n),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR_NO_ERROR);
    }
    CHECK(rd_kafka_flush(p, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_destroy(p);

    conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "group.id", "harness", errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", errstr, sizeof(errstr));
    rd_kafka_t *c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    REQUIRE(c);
    rd_kafka_poll_set_consumer(c);
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(3);
    for (int i = 0; i < 3; i++)
        rd_kafka_topic_partition_list_add(parts, "harness", i)->offset = RD_KAFKA_OFFSET_BEGINNING;
    CHECK(rd_kafka_assign(c, parts) == RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(parts);
    int got = 0;
    bool seen[100] = {0};
    uint64_t deadline = dm_now_ns() + 20ull * 1000000000;
    while (got < 100 && dm_now_ns() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 200);
        if (!m) continue;
        if (!m->err) {
            int i = -1;
            if (sscanf(m->payload, "record-%d", &i) == 1 && i >= 0 && i < 100 && !seen[i]) {
                seen[i] = true;
                got++;
            }
        }
        rd_kafka_message_destroy(m);
    }
    CHECK_EQ_INT(got, 100);
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
}

static void test_kcat_lists_cluster(void)
{
    REQUIRE(brokers);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "kcat -b '%s' -L -t harness 2>&1", brokers);
    FILE *f = popen(cmd, "r");
    REQUIRE(f);
    char out[8192] = "";
    size_t n = fread(out, 1, sizeof(out) - 1, f);
    out[n] = '\0';
    CHECK_EQ_INT(pclose(f), 0);
    CHECK_CONTAINS(out, "3 brokers");
    CHECK_CONTAINS(out, "topic \"harness\" with 3 partitions");
}

int main(void)
{
    RUN(test_produce_and_consume);
    RUN(test_kcat_lists_cluster);
    return check_summary();
}
