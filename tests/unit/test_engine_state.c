/* Unit tests for engine/state: the keyed store in memory and spilled to
 * RocksDB, its change list (what the changelog gets), timers, values as bytes. */
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "engine/state.h"

static int count_fn(void *ctx, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    (void)k, (void)kl, (void)v, (void)vl;
    (*(int *)ctx)++;
    return 0;
}

typedef struct changes {
    int puts, dels;
} changes_t;

static int change_fn(void *ctx, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    (void)k, (void)kl, (void)vl;
    changes_t *c = ctx;
    if (v)
        c->puts++;
    else
        c->dels++;
    return 0;
}

static bool get_text(dm_state_t *s, const char *key, char *out, size_t cap)
{
    const uint8_t *v;
    size_t n;
    bool found = false;
    dm_error_t err = {0};
    CHECK(dm_state_get(s, key, strlen(key), &v, &n, &found, &err) == DM_OK);
    if (found) snprintf(out, cap, "%.*s", (int)n, (const char *)v);
    return found;
}

static void test_memory_and_changes(void)
{
    dm_state_t *s;
    dm_error_t err = {0};
    REQUIRE(dm_state_new(NULL, 0, &s, &err) == DM_OK);
    char buf[64];
    CHECK(!get_text(s, "a", buf, sizeof(buf)));
    CHECK(dm_state_put(s, "a", 1, "one", 3, &err) == DM_OK);
    CHECK(dm_state_put(s, "b", 1, "two", 3, &err) == DM_OK);
    CHECK(dm_state_put(s, "a", 1, "uno, longer", 11, &err) == DM_OK);
    CHECK(get_text(s, "a", buf, sizeof(buf)));
    CHECK_STR_EQ(buf, "uno, longer");
    CHECK_EQ_INT(dm_state_n_changes(s), 2);
    CHECK(dm_state_commit(s, &err) == DM_OK);
    CHECK_EQ_INT(dm_state_n_changes(s), 0);
    CHECK(dm_state_del(s, "a", 1, &err) == DM_OK);
    CHECK(dm_state_del(s, "zz", 2, &err) == DM_OK); /* absent: nothing to log */
    changes_t c = {0};
    dm_state_changes(s, change_fn, &c);
    CHECK_EQ_INT(c.dels, 1);
    CHECK_EQ_INT(c.puts, 0);
    CHECK(!get_text(s, "a", buf, sizeof(buf)));
    int n = 0;
    CHECK(dm_state_foreach(s, count_fn, &n, &err) == DM_OK);
    CHECK_EQ_INT(n, 1);
    CHECK(dm_state_commit(s, &err) == DM_OK);
    /* Many keys: the map grows and keeps them all. */
    for (int i = 0; i < 5000; i++) {
        char k[16];
        snprintf(k, sizeof(k), "k%d", i);
        CHECK(dm_state_put(s, k, strlen(k), k, strlen(k), &err) == DM_OK);
    }
    CHECK(get_text(s, "k4321", buf, sizeof(buf)));
    CHECK_STR_EQ(buf, "k4321");
    n = 0;
    dm_state_foreach(s, count_fn, &n, &err);
    CHECK_EQ_INT(n, 5001);
    dm_state_free(s);
}

static void test_spill_to_rocksdb(void)
{
    char dir[] = "/tmp/dm-state-XXXXXX";
    REQUIRE(mkdtemp(dir));
    char path[300];
    snprintf(path, sizeof(path), "%s/spill", dir);
    dm_state_t *s;
    dm_error_t err = {0};
    REQUIRE(dm_state_new(path, 4096, &s, &err) == DM_OK);
    for (int i = 0; i < 1000; i++) {
        char k[16], v[32];
        snprintf(k, sizeof(k), "k%d", i);
        snprintf(v, sizeof(v), "value-%d", i);
        CHECK(dm_state_put(s, k, strlen(k), v, strlen(v), &err) == DM_OK);
    }
    CHECK(dm_state_memory_bytes(s) > 4096);
    CHECK(dm_state_commit(s, &err) == DM_OK);
    CHECK(dm_state_memory_bytes(s) < 4096); /* moved out */
    CHECK(dm_state_spilled(s) == 1000);
    CHECK(access(path, F_OK) == 0);
    char buf[64];
    CHECK(get_text(s, "k777", buf, sizeof(buf)));
    CHECK_STR_EQ(buf, "value-777");
    /* Updates and removals shadow the spilled copies, before and after commit. */
    CHECK(dm_state_put(s, "k1", 2, "new", 3, &err) == DM_OK);
    CHECK(dm_state_del(s, "k2", 2, &err) == DM_OK);
    CHECK(get_text(s, "k1", buf, sizeof(buf)));
    CHECK_STR_EQ(buf, "new");
    CHECK(!get_text(s, "k2", buf, sizeof(buf)));
    changes_t c = {0};
    dm_state_changes(s, change_fn, &c);
    CHECK_EQ_INT(c.puts, 1);
    CHECK_EQ_INT(c.dels, 1);
    int n = 0;
    CHECK(dm_state_foreach(s, count_fn, &n, &err) == DM_OK);
    CHECK_EQ_INT(n, 999);
    CHECK(dm_state_commit(s, &err) == DM_OK);
    CHECK(!get_text(s, "k2", buf, sizeof(buf)));
    CHECK(get_text(s, "k1", buf, sizeof(buf)));
    CHECK_STR_EQ(buf, "new");
    n = 0;
    dm_state_foreach(s, count_fn, &n, &err);
    CHECK_EQ_INT(n, 999);
    dm_state_free(s);
    CHECK(access(path, F_OK) != 0); /* a cache: gone with the store */
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
}

/* Many stores each under their own limit, together over the process budget:
 * committing stores spill until the sum is back near the budget. */
static void test_process_budget(void)
{
    char dir[] = "/tmp/dm-state-XXXXXX";
    REQUIRE(mkdtemp(dir));
    enum { STORES = 8, KEYS = 4000 };
    dm_state_t *st[STORES];
    dm_error_t err = {0};
    size_t base = dm_state_process_bytes();
    dm_state_set_budget(512 << 10);
    for (int i = 0; i < STORES; i++) {
        char path[300];
        snprintf(path, sizeof(path), "%s/s%d", dir, i);
        REQUIRE(dm_state_new(path, 64 << 20, &st[i], &err) == DM_OK); /* own limit: far away */
        for (int k = 0; k < KEYS; k++) {
            char key[16], v[48];
            snprintf(key, sizeof(key), "k%d", k);
            snprintf(v, sizeof(v), "value-%d-of-store-%d", k, i);
            CHECK(dm_state_put(st[i], key, strlen(key), v, strlen(v), &err) == DM_OK);
        }
        CHECK(dm_state_commit(st[i], &err) == DM_OK);
    }
    /* Each store holds ~250 KiB; without a budget 8 would hold ~2 MiB. */
    CHECK(dm_state_process_bytes() - base < (512 << 10) + (400 << 10));
    size_t spilled = 0;
    for (int i = 0; i < STORES; i++)
        spilled += dm_state_spilled(st[i]);
    CHECK(spilled >= (STORES - 3) * KEYS);
    char buf[64];
    CHECK(get_text(st[0], "k3999", buf, sizeof(buf)));
    CHECK_STR_EQ(buf, "value-3999-of-store-0");
    for (int i = 0; i < STORES; i++)
        dm_state_free(st[i]);
    CHECK_EQ_INT(dm_state_process_bytes(), base);
    dm_state_set_budget((size_t)1 << 30);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
}

static void test_timers(void)
{
    dm_timers_t h = {0};
    int64_t at[] = {50, 10, 40, 10, 30, 20, 60};
    for (size_t i = 0; i < 7; i++)
        CHECK(dm_timers_push(&h, at[i], "k", 1) == DM_OK);
    dm_timer_t t;
    int64_t last = 0;
    int n = 0;
    while (dm_timers_pop_due(&h, 45, &t)) {
        CHECK(t.at >= last);
        CHECK(t.at <= 45);
        last = t.at;
        free(t.key);
        n++;
    }
    CHECK_EQ_INT(n, 5);
    CHECK_EQ_INT(h.n, 2);
    dm_timers_free(&h);
}

static void test_values_as_bytes(void)
{
    dm_expr_value_t in[] = {
        {.type = DM_EXPR_LONG, .u.l = -42},   {.type = DM_EXPR_STRING, .u.s = "héllo", .len = 6},
        {.type = DM_EXPR_DOUBLE, .u.d = 2.5}, {.null = true},
        {.type = DM_EXPR_BOOL, .u.b = true},  {.type = DM_EXPR_TIMESTAMP, .u.l = 1700000000000},
    };
    dm_buf_t b = DM_BUF_INIT;
    for (size_t i = 0; i < 6; i++)
        CHECK(dm_state_put_value(&b, &in[i]) == DM_OK);
    const uint8_t *p = b.data, *end = b.data + b.len;
    for (size_t i = 0; i < 6; i++) {
        dm_expr_value_t v;
        REQUIRE(dm_state_get_value(&p, end, &v) == DM_OK);
        CHECK_EQ_INT(v.null, in[i].null);
        if (!v.null) {
            CHECK_EQ_INT(v.type, in[i].type);
            CHECK_EQ_INT(dm_state_value_cmp(&v, &in[i]), 0);
        }
    }
    CHECK(p == end);
    /* Truncated bytes are refused, not read past. */
    p = b.data;
    dm_expr_value_t v;
    CHECK(dm_state_get_value(&p, b.data + 5, &v) == DM_ERR_CORRUPT); /* the long: 9 bytes */
    p = b.data + 9;
    CHECK(dm_state_get_value(&p, b.data + 12, &v) == DM_ERR_CORRUPT);
    dm_expr_value_t a = {.type = DM_EXPR_STRING, .u.s = "ab", .len = 2};
    dm_expr_value_t c = {.type = DM_EXPR_STRING, .u.s = "abc", .len = 3};
    CHECK(dm_state_value_cmp(&a, &c) < 0);
    dm_buf_free(&b);
}

int main(void)
{
    RUN(test_memory_and_changes);
    RUN(test_spill_to_rocksdb);
    RUN(test_process_budget);
    RUN(test_timers);
    RUN(test_values_as_bytes);
    return check_summary();
}
