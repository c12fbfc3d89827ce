/* needs:kafka-mock — the kafka sink writes onto a topic of librdkafka's mock
 * cluster (three brokers over real TCP) in the Confluent wire format, with
 * its schemas registered in the controller's own registry API (a controller
 * runs in this process); kcat reads the records back. */
#include <librdkafka/rdkafka.h>

#include "check.h"
#include "connectors/kafkasink/kafkasink.h"
#include "control/controller.h"
#include "engine/task.h"
#include "sink_util.h"

static const char *brokers;
static char *dir;
static dm_transport_t *t;
static su_schemas_t schemas;
static dm_avro_schema_t *row, *key, *row2;
static dm_strlist_t id_key = {(char *[]){"id"}, 1};
static dm_controller_t *ctl;
static char registry[128];

static const char *ROW =
    "{\"type\":\"record\",\"name\":\"Event\",\"namespace\":\"ext\",\"fields\":["
    "{\"name\":\"id\",\"type\":\"long\"},{\"name\":\"what\",\"type\":\"string\"}]}";
static const char *ROW_V2 =
    "{\"type\":\"record\",\"name\":\"Event\",\"namespace\":\"ext\",\"fields\":["
    "{\"name\":\"id\",\"type\":\"long\"},{\"name\":\"what\",\"type\":\"string\"},"
    "{\"name\":\"region\",\"type\":\"string\",\"default\":\"eu\"}]}";
static const char *KEY =
    "{\"type\":\"record\",\"name\":\"EventKey\",\"namespace\":\"ext\",\"fields\":["
    "{\"name\":\"id\",\"type\":\"long\"}]}";

static void create_topic(const char *name, int partitions)
{
    FILE *f = fopen(getenv("DM_KAFKA_MOCK_CTL"), "w");
    REQUIRE(f);
    fprintf(f, "topic %s %d 3\n", name, partitions);
    fclose(f);
    char want[256];
    snprintf(want, sizeof(want), "created %s", name);
    for (int i = 0; i < 100; i++) {
        FILE *out = fopen(getenv("DM_KAFKA_MOCK_OUT"), "r");
        char line[512];
        bool seen = false;
        while (out && fgets(line, sizeof(line), out))
            if (!strncmp(line, want, strlen(want))) seen = true;
        if (out) fclose(out);
        if (seen) return;
        dm_sleep_ms(20);
    }
    REQUIRE(!"the mock did not create the topic");
}

/* The id the controller's registry holds for subject at version ("latest", "1"). */
static long registry_id_at(const char *subject, const char *version)
{
    char cmd[400], out[4096] = "";
    snprintf(cmd, sizeof(cmd), "curl -fs %s/subjects/%s/versions/%s", registry, subject, version);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = '\0';
    pclose(p);
    const char *id = strstr(out, "\"id\":");
    return id ? atol(id + 5) : -1;
}

static long registry_id(const char *subject)
{
    return registry_id_at(subject, "latest");
}

typedef struct kmsg {
    int partition;
    uint8_t key[64];
    int key_len;
    uint8_t value[256];
    int value_len;
} kmsg_t;

/* Reads the whole topic with kcat: "%p %K %S\n" then the raw key and value. */
static int kcat_read(const char *topic_name, kmsg_t *out, int cap)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "kcat -C -b '%s' -t %s -o beginning -e -q -f '%%p %%K %%S\\n%%k%%s'",
             brokers, topic_name);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    int n = 0;
    char line[128];
    while (n < cap && fgets(line, sizeof(line), p)) {
        kmsg_t *m = &out[n];
        if (sscanf(line, "%d %d %d", &m->partition, &m->key_len, &m->value_len) != 3) break;
        if (m->key_len > (int)sizeof(m->key) || m->value_len > (int)sizeof(m->value)) break;
        if (m->key_len > 0 && fread(m->key, 1, (size_t)m->key_len, p) != (size_t)m->key_len) break;
        if (m->value_len > 0 && fread(m->value, 1, (size_t)m->value_len, p) != (size_t)m->value_len)
            break;
        n++;
    }
    pclose(p);
    return n;
}

static dm_kafkasink_config_t *config(const char *bootstrap, const char *topic_name,
                                     const char *timeout)
{
    dm_kafkasink_config_t *c = calloc(1, sizeof(*c));
    dm_error_t err = {0};
    dm_config_defaults(&dm_kafkasink_config_table, c, &err);
    dm_config_set_text(&dm_kafkasink_config_table, c, "brokers", bootstrap, &err);
    dm_config_set_text(&dm_kafkasink_config_table, c, "topic", topic_name, &err);
    dm_config_set_text(&dm_kafkasink_config_table, c, "linger", "20ms", &err);
    dm_config_set_text(&dm_kafkasink_config_table, c, "retry_max", "500ms", &err);
    if (timeout) dm_config_set_text(&dm_kafkasink_config_table, c, "timeout", timeout, &err);
    return c;
}

/* The controller's address, as the runtime hands it to sinks. */
static void our_registry(void *ctx, char *out, size_t cap)
{
    (void)ctx;
    snprintf(out, cap, "%s", registry);
}

static void runner(su_runner_t *r, const dm_kafkasink_config_t *c, const char *topic_name)
{
    memset(r, 0, sizeof(*r));
    r->c = (dm_sink_run_config_t){.transport = t,
                                  .ops = &dm_kafkasink_ops,
                                  .conf = c,
                                  .dead_letter_topic = "dlq",
                                  .env = {.name = "sink.kafka",
                                          .topic = topic_name,
                                          .partitions = 1,
                                          .group = "sink.kafka",
                                          .value_schema = row,
                                          .value_schema_id = 1,
                                          .key_fields = &id_key,
                                          .registry_url = our_registry,
                                          .schema_by_id = su_lookup,
                                          .schema_ctx = &schemas}};
}

static void produce(int id, const char *what)
{
    char k[64], v[200];
    snprintf(k, sizeof(k), "{\"id\":%d}", id);
    snprintf(v, sizeof(v), "{\"id\":%d,\"what\":\"%s\"}", id, what);
    su_produce(t, "events", 0, key, 2, k, row, 1, what ? v : NULL);
}

static uint32_t wire_id(const uint8_t *p)
{
    return (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
}

static void test_writes_wire_format_and_registers_schemas(void)
{
    create_topic("ext", 3);
    dm_error_t err = {0};
    dm_transport_create_topic(t, &(dm_topic_config_t){.name = "events", .partitions = 1}, &err);
    const char *whats[] = {"signup", "login", "purchase", "logout", "refund"};
    for (int i = 0; i < 5; i++)
        produce(i + 1, whats[i]);
    produce(3, NULL); /* a tombstone stays a tombstone */
    dm_kafkasink_config_t *c = config(brokers, "ext", NULL);
    su_runner_t r;
    runner(&r, c, "events");
    su_start(&r);
    CHECK(su_wait_position(&r, 6, 30000));
    su_stop(&r);
    long vid = registry_id("ext-value"), kid = registry_id("ext-key");
    CHECK(vid > 0);
    CHECK(kid > 0);
    kmsg_t msgs[16];
    int n = kcat_read("ext", msgs, 16);
    CHECK_EQ_INT(n, 6);
    int seen = 0, tombstones = 0, part3 = -1;
    dm_arena_t a;
    dm_arena_init(&a, 0);
    for (int i = 0; i < n; i++) {
        kmsg_t *m = &msgs[i];
        REQUIRE(m->key_len > 5 && m->key[0] == 0);
        CHECK_EQ_INT(wire_id(m->key), kid);
        dm_avro_value_t kv;
        REQUIRE(!dm_avro_decode_node(key->root, m->key + 5, (size_t)m->key_len - 5, NULL, &a, &kv,
                                     &err));
        int64_t id = kv.u.v[0].u.l;
        if (id == 3) {
            if (part3 >= 0) CHECK_EQ_INT(m->partition, part3); /* same key, same partition */
            part3 = m->partition;
        }
        if (m->value_len < 0) {
            tombstones++;
            CHECK_EQ_INT(id, 3);
            continue;
        }
        REQUIRE(m->value_len > 5 && m->value[0] == 0);
        CHECK_EQ_INT(wire_id(m->value), vid);
        dm_avro_value_t v;
        REQUIRE(!dm_avro_decode_node(row->root, m->value + 5, (size_t)m->value_len - 5, NULL, &a,
                                     &v, &err));
        CHECK_EQ_INT(v.u.v[0].u.l, id);
        CHECK(id >= 1 && id <= 5 &&
              !strncmp((const char *)v.u.v[1].u.p, whats[id - 1], v.u.v[1].len));
        seen |= 1 << id;
    }
    dm_arena_destroy(&a);
    CHECK_EQ_INT(seen, 0x3e);
    CHECK_EQ_INT(tombstones, 1);
    dm_config_free(&dm_kafkasink_config_table, c);
    free(c);
}

/* A topic holding two versions of the source (v2 adds "region" with a
 * default), through the type the registry names: both versions are
 * registered under the target subject (v2 as version 2) and every record
 * carries its own version's id there; a v2 record too large for Kafka is a
 * dead letter with librdkafka's reason while the rest land. */
static void test_two_schema_versions_and_a_dead_letter(void)
{
    create_topic("ext2", 3);
    dm_error_t err = {0};
    dm_transport_create_topic(t, &(dm_topic_config_t){.name = "vers", .partitions = 1}, &err);
    dm_transport_create_topic(t, &(dm_topic_config_t){.name = "vers.dlq", .partitions = 1}, &err);
    size_t big_len = 1200000;
    char *big = malloc(big_len + 100);
    REQUIRE(big);
    for (int id = 31; id < 39; id++) {
        char k[64], v[200];
        snprintf(k, sizeof(k), "{\"id\":%d}", id);
        if (id < 34 || id == 38) {
            snprintf(v, sizeof(v), "{\"id\":%d,\"what\":\"v1\"}", id);
            su_produce(t, "vers", 0, key, 2, k, row, 1, v);
        } else if (id == 36) {
            int o = snprintf(big, 100, "{\"id\":%d,\"what\":\"", id);
            memset(big + o, 'x', big_len);
            snprintf(big + o + big_len, 100, "\",\"region\":\"us\"}");
            su_produce(t, "vers", 0, key, 2, k, row2, 3, big);
        } else {
            snprintf(v, sizeof(v), "{\"id\":%d,\"what\":\"v2\",\"region\":\"us\"}", id);
            su_produce(t, "vers", 0, key, 2, k, row2, 3, v);
        }
    }
    free(big);
    dm_kafkasink_config_t *c = config(brokers, "ext2", NULL);
    su_runner_t r;
    runner(&r, c, "vers");
    r.c.ops = dm_sink_ops_find("kafka");
    r.c.dead_letter_topic = "vers.dlq";
    r.c.env.group = "sink.vers";
    su_start(&r);
    CHECK(su_wait_position(&r, 8, 30000));
    su_stop(&r);
    long v1id = registry_id_at("ext2-value", "1"), v2id = registry_id_at("ext2-value", "2");
    CHECK(v1id > 0);
    CHECK(v2id > 0 && v2id != v1id);
    kmsg_t msgs[16];
    int n = kcat_read("ext2", msgs, 16);
    CHECK_EQ_INT(n, 7);
    int seen = 0;
    dm_arena_t a;
    dm_arena_init(&a, 0);
    for (int i = 0; i < n; i++) {
        kmsg_t *m = &msgs[i];
        REQUIRE(m->value_len > 5 && m->value[0] == 0);
        bool v2 = wire_id(m->value) == (uint32_t)v2id;
        CHECK(v2 || wire_id(m->value) == (uint32_t)v1id);
        dm_avro_value_t v;
        REQUIRE(!dm_avro_decode_node((v2 ? row2 : row)->root, m->value + 5,
                                     (size_t)m->value_len - 5, NULL, &a, &v, &err));
        int64_t id = v.u.v[0].u.l;
        CHECK_EQ_INT(v2, id >= 34 && id < 38);
        if (v2) CHECK(v.u.v[2].len == 2 && !memcmp(v.u.v[2].u.p, "us", 2));
        if (id >= 31 && id < 39) seen |= 1 << (id - 31);
    }
    dm_arena_destroy(&a);
    CHECK_EQ_INT(seen, 0xff & ~(1 << 5)); /* all but 36 */
    dm_transport_batch_t b = {0};
    CHECK(!dm_transport_fetch(t, "vers.dlq", 0, 0, 4 << 20, 1000, &b, &err));
    CHECK_EQ_INT(b.n, 1);
    for (size_t i = 0; i < b.n; i++)
        for (uint32_t h = 0; h < b.records[i].n_headers; h++) {
            const dm_record_header_t *hd = &b.records[i].headers[h];
            char val[400];
            snprintf(val, sizeof(val), "%.*s", hd->value_len, (const char *)hd->value);
            if (!strncmp(hd->key, DM_DLQ_REASON, hd->key_len)) CHECK_CONTAINS(val, "too large");
            if (!strncmp(hd->key, DM_DLQ_OFFSET, hd->key_len)) CHECK_STR_EQ(val, "5");
        }
    dm_transport_batch_free(t, &b);
    dm_config_free(&dm_kafkasink_config_table, c);
    free(c);
}

static void test_unreachable_cluster_is_retried(void)
{
    dm_error_t err = {0};
    dm_transport_create_topic(t, &(dm_topic_config_t){.name = "more", .partitions = 1}, &err);
    su_produce(t, "more", 0, key, 2, "{\"id\":9}", row, 1, "{\"id\":9,\"what\":\"x\"}");
    dm_kafkasink_config_t *c = config("127.0.0.1:1", "ext", "1s");
    su_runner_t r;
    runner(&r, c, "more");
    su_start(&r);
    char state[32] = "", error[512] = "";
    for (int i = 0; i < 400 && strcmp(state, "retrying"); i++) {
        dm_sleep_ms(20);
        dm_unit_get(&r.st, state, sizeof(state), error, sizeof(error));
    }
    CHECK_STR_EQ(state, "retrying");
    CHECK_CONTAINS(error, "kafka sink: writing to ext at 127.0.0.1:1");
    CHECK_EQ_INT(atomic_load(&r.st.position), 0);
    su_stop(&r);
    dm_config_free(&dm_kafkasink_config_table, c);
    free(c);
}

int main(void)
{
    brokers = getenv("DM_KAFKA_BROKERS");
    if (!brokers) {
        fprintf(stderr, "DM_KAFKA_BROKERS is not set (run under tests/harness/with-kafka-mock)\n");
        return 1;
    }
    dir = su_tmpdir("dm-kafkasink");
    char path[600];
    dm_error_t err = {0};
    snprintf(path, sizeof(path), "%s/controller", dir);
    ctl = dm_controller_start(&(dm_controller_options_t){.data_dir = path, .listen = "127.0.0.1:0"},
                              &err);
    if (!ctl) {
        fprintf(stderr, "controller: %s\n", err.message);
        return 1;
    }
    snprintf(registry, sizeof(registry), "http://127.0.0.1:%u", dm_controller_port(ctl));
    snprintf(path, sizeof(path), "embedded:%s/log", dir);
    if (dm_transport_open(path, &t, &err)) return 1;
    dm_transport_create_topic(t, &(dm_topic_config_t){.name = "dlq", .partitions = 1}, &err);
    row = su_schema(&schemas, 1, ROW);
    key = su_schema(&schemas, 2, KEY);
    row2 = su_schema(&schemas, 3, ROW_V2);
    RUN(test_writes_wire_format_and_registers_schemas);
    RUN(test_two_schema_versions_and_a_dead_letter);
    RUN(test_unreachable_cluster_is_retried);
    dm_transport_close(t);
    dm_controller_stop(ctl);
    su_schemas_free(&schemas);
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd)) {
    }
    free(dir);
    return check_summary();
}
