/* tests/unit/test_transport_txn.c — the transaction builder over the embedded log: grouping
 * by (topic, partition), keyed partitioning, all-or-nothing commits, memory reuse. */
#include "check.h"
#include "core/hash.h"
#include "test_log_util.h"
#include "transport/txn_builder.h"

static char *dir;

static dm_transport_t *open_with(const char *const *topics, const int32_t *parts, size_t n)
{
    dm_transport_t *t = NULL;
    dm_error_t err = {0};
    tu_rmrf(dir);
    if (dm_transport_open(dir, &t, &err)) return NULL;
    for (size_t i = 0; i < n; i++)
        if (dm_transport_create_topic(
                t, &(dm_topic_config_t){.name = topics[i], .partitions = parts[i]}, &err))
            return NULL;
    return t;
}

static dm_record_t rec(const char *key, const char *value)
{
    return (dm_record_t){.timestamp = 1000,
                         .key = (const uint8_t *)key,
                         .key_len = key ? (int32_t)strlen(key) : -1,
                         .value = (const uint8_t *)value,
                         .value_len = (int32_t)strlen(value)};
}

/* The values of topic/partition, joined by ',' into out. */
static int64_t values_of(dm_transport_t *t, const char *topic, int32_t p, char *out, size_t cap)
{
    dm_transport_batch_t b = {0};
    dm_error_t err = {0};
    out[0] = '\0';
    if (dm_transport_fetch(t, topic, p, 0, 1 << 20, 0, &b, &err)) return -1;
    size_t len = 0;
    for (size_t i = 0; i < b.n; i++)
        len += (size_t)snprintf(out + len, cap - len, "%s%.*s", i ? "," : "",
                                b.records[i].value_len, (const char *)b.records[i].value);
    int64_t n = (int64_t)b.n;
    dm_transport_batch_free(t, &b);
    return n;
}

static void test_topics_and_partitions(void)
{
    const char *names[] = {"a", "b", "in"};
    int32_t parts[] = {3, 2, 1};
    dm_transport_t *t = open_with(names, parts, 3);
    REQUIRE(t);
    dm_error_t err = {0};
    dm_txn_builder_t b;
    dm_txn_builder_init(&b, t);
    int a, bb, again;
    REQUIRE(dm_txn_builder_topic(&b, "a", 3, &a, &err) == 0);
    REQUIRE(dm_txn_builder_topic(&b, "b", 2, &bb, &err) == 0);
    REQUIRE(dm_txn_builder_topic(&b, "a", 3, &again, &err) == 0);
    CHECK_EQ_INT(again, a);
    dm_record_t r1 = rec(NULL, "a2-1"), r2 = rec(NULL, "b0-1"), r3 = rec(NULL, "a2-2"),
                r4 = rec(NULL, "a0-1");
    dm_record_t batch[2] = {rec(NULL, "b1-1"), rec(NULL, "b1-2")};
    CHECK(dm_txn_builder_add(&b, a, 2, &r1, &err) == 0);
    CHECK(dm_txn_builder_add(&b, bb, 0, &r2, &err) == 0);
    CHECK(dm_txn_builder_add_batch(&b, bb, 1, batch, 2, &err) == 0);
    CHECK(dm_txn_builder_add(&b, a, 2, &r3, &err) == 0);
    CHECK(dm_txn_builder_add(&b, a, 0, &r4, &err) == 0);
    /* a record after a lent batch in the same partition comes after it */
    dm_record_t r5 = rec(NULL, "b1-3");
    CHECK(dm_txn_builder_add(&b, bb, 1, &r5, &err) == 0);
    CHECK(dm_txn_builder_add(&b, a, 3, &r5, &err) == DM_ERR_LOG_PARTITION);
    CHECK_CONTAINS(err.message, "topic a has no partition 3");
    CHECK_EQ_INT(dm_txn_builder_records(&b), 7);
    REQUIRE(dm_txn_builder_offsets(&b, "g", &(dm_tp_offset_t){"in", 0, 42}, 1, &err) == 0);
    REQUIRE(dm_txn_builder_commit(&b, &err) == 0);
    CHECK_EQ_INT(dm_txn_builder_records(&b), 0);
    char v[256];
    CHECK_EQ_INT(values_of(t, "a", 0, v, sizeof(v)), 1);
    CHECK_STR_EQ(v, "a0-1");
    CHECK_EQ_INT(values_of(t, "a", 1, v, sizeof(v)), 0);
    CHECK_EQ_INT(values_of(t, "a", 2, v, sizeof(v)), 2);
    CHECK_STR_EQ(v, "a2-1,a2-2");
    CHECK_EQ_INT(values_of(t, "b", 0, v, sizeof(v)), 1);
    CHECK_EQ_INT(values_of(t, "b", 1, v, sizeof(v)), 3);
    CHECK_STR_EQ(v, "b1-1,b1-2,b1-3");
    int64_t off = 0;
    CHECK(dm_transport_group_offset(t, "g", "in", 0, &off, &err) == 0);
    CHECK_EQ_INT(off, 42);
    dm_txn_builder_destroy(&b);
    dm_transport_close(t);
}

static void test_keyed_partitioning(void)
{
    const char *names[] = {"k"};
    int32_t parts[] = {5};
    dm_transport_t *t = open_with(names, parts, 1);
    REQUIRE(t);
    dm_error_t err = {0};
    dm_txn_builder_t b;
    dm_txn_builder_init(&b, t);
    int k;
    REQUIRE(dm_txn_builder_topic(&b, "k", 5, &k, &err) == 0);
    char keys[100][16];
    int64_t expect[5] = {0};
    for (int i = 0; i < 100; i++) {
        snprintf(keys[i], sizeof(keys[i]), "key-%d", i * 7919);
        /* what every producer computed before the builder */
        int32_t old = (int32_t)(dm_hash64(keys[i], strlen(keys[i])) % 5u);
        CHECK_EQ_INT(dm_txn_key_partition(keys[i], strlen(keys[i]), 5), old);
        expect[old]++;
        dm_record_t r = rec(keys[i], keys[i]);
        CHECK(dm_txn_builder_add_keyed(&b, k, &r, 4, &err) == 0);
    }
    dm_record_t keyless = rec(NULL, "none");
    CHECK(dm_txn_builder_add_keyed(&b, k, &keyless, 3, &err) == 0);
    expect[3]++;
    CHECK_EQ_INT(dm_txn_key_partition("x", 1, 1), 0);
    REQUIRE(dm_txn_builder_commit(&b, &err) == 0);
    for (int32_t p = 0; p < 5; p++) {
        dm_transport_batch_t bt = {0};
        REQUIRE(dm_transport_fetch(t, "k", p, 0, 1 << 20, 0, &bt, &err) == 0);
        CHECK_EQ_INT((int64_t)bt.n, expect[p]);
        for (size_t i = 0; i < bt.n; i++)
            if (bt.records[i].key_len > 0)
                CHECK_EQ_INT(
                    (int64_t)(dm_hash64(bt.records[i].key, (size_t)bt.records[i].key_len) % 5u), p);
        dm_transport_batch_free(t, &bt);
    }
    dm_txn_builder_destroy(&b);
    dm_transport_close(t);
}

static void test_abort_leaves_nothing(void)
{
    const char *names[] = {"a", "in"};
    int32_t parts[] = {2, 1};
    dm_transport_t *t = open_with(names, parts, 2);
    REQUIRE(t);
    dm_error_t err = {0};
    dm_txn_builder_t b;
    dm_txn_builder_init(&b, t);
    int a, missing;
    REQUIRE(dm_txn_builder_topic(&b, "a", 2, &a, &err) == 0);
    REQUIRE(dm_txn_builder_topic(&b, "not-created", 1, &missing, &err) == 0);
    dm_record_t r = rec(NULL, "x");
    CHECK(dm_txn_builder_add(&b, a, 0, &r, &err) == 0);
    CHECK(dm_txn_builder_add(&b, a, 1, &r, &err) == 0);
    CHECK(dm_txn_builder_add(&b, missing, 0, &r, &err) == 0);
    CHECK(dm_txn_builder_offsets(&b, "g", &(dm_tp_offset_t){"in", 0, 7}, 1, &err) == 0);
    CHECK(dm_txn_builder_commit(&b, &err) != 0);
    CHECK_CONTAINS(err.message, "not-created/0");
    CHECK_EQ_INT(dm_txn_builder_records(&b), 0);
    char v[64];
    CHECK_EQ_INT(values_of(t, "a", 0, v, sizeof(v)), 0);
    CHECK_EQ_INT(values_of(t, "a", 1, v, sizeof(v)), 0);
    int64_t off;
    CHECK(dm_transport_group_offset(t, "g", "in", 0, &off, &err) == DM_ERR_NOT_FOUND);
    /* the builder is usable after a failure, and what failed is not carried over */
    CHECK(dm_txn_builder_add(&b, a, 1, &r, &err) == 0);
    REQUIRE(dm_txn_builder_commit(&b, &err) == 0);
    CHECK_EQ_INT(values_of(t, "a", 1, v, sizeof(v)), 1);
    CHECK_EQ_INT(values_of(t, "a", 0, v, sizeof(v)), 0);
    /* nothing added: no transaction, nothing written */
    CHECK(dm_txn_builder_commit(&b, &err) == 0);
    dm_txn_builder_destroy(&b);
    dm_transport_close(t);
}

static void test_memory_reused(void)
{
    const char *names[] = {"a", "b", "in"};
    int32_t parts[] = {4, 1, 1};
    dm_transport_t *t = open_with(names, parts, 3);
    REQUIRE(t);
    dm_error_t err = {0};
    dm_txn_builder_t b;
    dm_txn_builder_init(&b, t);
    CHECK_EQ_INT(b.allocations, 0);
    int a, bb;
    REQUIRE(dm_txn_builder_topic(&b, "a", 4, &a, &err) == 0);
    REQUIRE(dm_txn_builder_topic(&b, "b", 1, &bb, &err) == 0);
    dm_record_t recs[1000];
    char keys[1000][12];
    for (int i = 0; i < 1000; i++) {
        snprintf(keys[i], sizeof(keys[i]), "%d", i);
        recs[i] = rec(keys[i], keys[i]);
    }
    uint64_t after_first = 0;
    for (int round = 0; round < 5; round++) {
        for (int i = 0; i < 1000; i++)
            CHECK(dm_txn_builder_add_keyed(&b, a, &recs[i], 0, &err) == 0);
        CHECK(dm_txn_builder_add_batch(&b, bb, 0, recs, 1000, &err) == 0);
        CHECK(dm_txn_builder_offsets(&b, "g", &(dm_tp_offset_t){"in", 0, round + 1}, 1, &err) == 0);
        REQUIRE(dm_txn_builder_commit(&b, &err) == 0);
        if (round == 0) after_first = b.allocations;
    }
    CHECK(after_first > 0);
    CHECK_EQ_U64(b.allocations, after_first); /* later commits allocate nothing */
    int64_t total = 0;
    char v[1 << 16];
    for (int32_t p = 0; p < 4; p++)
        total += values_of(t, "a", p, v, sizeof(v));
    CHECK_EQ_INT(total, 5000);
    dm_txn_builder_destroy(&b);
    dm_transport_close(t);
}

int main(void)
{
    dir = tu_tmpdir("txn");
    RUN(test_topics_and_partitions);
    RUN(test_keyed_partitioning);
    RUN(test_abort_leaves_nothing);
    RUN(test_memory_reused);
    tu_rmrf(dir);
    free(dir);
    return check_summary();
}
