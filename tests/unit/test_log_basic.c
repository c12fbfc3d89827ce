/* tests/unit/test_log_basic.c — batches, topics, produce/read, transactions, groups,
 * restart, waiting readers, time lookups. */
#include <pthread.h>

#include "check.h"
#include "core/clock.h"
#include "core/crc32c.h"
#include "log/log.h"
#include "test_log_util.h"

static dm_log_t *open_log(const char *dir)
{
    dm_log_t *log = NULL;
    dm_error_t err = {0};
    dm_log_options_t opt = {.no_background = true};
    dm_err_t rc = dm_log_open(dir, &opt, &log, &err);
    if (rc) printf("    open: %s\n", err.message);
    return log;
}

static void make_recs(dm_log_record_t *r, char (*vals)[32], int n, int base, int64_t ts)
{
    for (int i = 0; i < n; i++) {
        int l = snprintf(vals[i], 32, "v%d", base + i);
        r[i] = (dm_log_record_t){.key = (const uint8_t *)vals[i],
                                 .key_len = l,
                                 .value = (const uint8_t *)vals[i],
                                 .value_len = l,
                                 .timestamp = ts ? ts + i : 0};
    }
}

static void test_batch_roundtrip(void)
{
    for (int comp = 0; comp <= 2; comp++) {
        dm_buf_t out = DM_BUF_INIT, scratch = DM_BUF_INIT;
        dm_log_header_t hs[2] = {{"trace", 5, (const uint8_t *)"abc", 3}, {"n", 1, NULL, -1}};
        dm_log_record_t r[3] = {
            {.key = (const uint8_t *)"k1",
             .key_len = 2,
             .value = (const uint8_t *)"hello",
             .value_len = 5,
             .timestamp = 1000,
             .headers = hs,
             .n_headers = 2},
            {.key = NULL,
             .key_len = -1,
             .value = (const uint8_t *)"",
             .value_len = 0,
             .timestamp = 990},
            {.key = (const uint8_t *)"k3",
             .key_len = 2,
             .value = NULL,
             .value_len = -1,
             .timestamp = 1010},
        };
        REQUIRE(dm_batch_encode(&out, &scratch, r, 3, (dm_batch_comp_t)comp, 7, 5, NULL) == 0);
        dm_batch_set_base_offset(out.data, 100);
        dm_batch_hdr_t h;
        REQUIRE(dm_batch_parse_header(out.data, out.len, &h) == 0);
        CHECK_EQ_INT(h.length, out.len);
        CHECK_EQ_INT(h.count, 3);
        CHECK_EQ_INT(h.first_ts, 990);
        CHECK_EQ_INT(h.last_ts, 1010);
        CHECK_EQ_INT(h.txn_id, 7);
        CHECK(dm_batch_crc_ok(out.data, &h));
        dm_arena_t a;
        dm_arena_init(&a, 0);
        dm_log_record_t *recs = NULL;
        size_t n = 0, cap = 0;
        REQUIRE(dm_batch_decode(out.data, &h, 101, &a, &recs, &n, &cap, NULL) == 0);
        REQUIRE(n == 2);
        CHECK_EQ_INT(recs[0].offset, 101);
        CHECK(recs[0].key == NULL && recs[0].key_len == -1);
        CHECK_EQ_INT(recs[0].timestamp, 990);
        CHECK(recs[1].value == NULL && recs[1].value_len == -1);
        n = 0;
        REQUIRE(dm_batch_decode(out.data, &h, 0, &a, &recs, &n, &cap, NULL) == 0);
        CHECK_EQ_INT(recs[0].n_headers, 2);
        CHECK(recs[0].headers[0].key_len == 5 && !memcmp(recs[0].headers[0].value, "abc", 3));
        CHECK(recs[0].headers[1].value == NULL);
        CHECK(!memcmp(recs[0].value, "hello", 5));
        out.data[out.len - 1] ^= 1;
        CHECK(!dm_batch_crc_ok(out.data, &h));
        dm_arena_destroy(&a);
        dm_buf_free(&out);
        dm_buf_free(&scratch);
    }
}

/* Records far larger than the encoder's first guess, some with keys and headers, encoded
 * after a batch already in the buffer (a transaction appends batch after batch): the
 * buffer grows mid-batch and both batches decode back byte for byte. */
static void test_batch_grows_and_appends(void)
{
    static uint8_t big[20000];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)(i * 7 + 3);
    dm_log_header_t hs[1] = {{"h", 1, big, 300}};
    dm_log_record_t r[40];
    for (int i = 0; i < 40; i++)
        r[i] = (dm_log_record_t){.key = i % 3 ? big + i : NULL,
                                 .key_len = i % 3 ? i : -1,
                                 .value = big + i,
                                 .value_len = 100 + i * 450,
                                 .timestamp = i % 2 ? 5000 + i : 0,
                                 .headers = i % 5 ? NULL : hs,
                                 .n_headers = i % 5 ? 0 : 1};
    dm_buf_t out = DM_BUF_INIT, scratch = DM_BUF_INIT;
    REQUIRE(dm_batch_encode(&out, &scratch, r, 3, DM_BATCH_COMP_NONE, 0, 9, NULL) == 0);
    size_t second = out.len;
    REQUIRE(dm_batch_encode(&out, &scratch, r, 40, DM_BATCH_COMP_NONE, 0, 9, NULL) == 0);
    dm_arena_t a;
    dm_arena_init(&a, 0);
    size_t at[2] = {0, second}, counts[2] = {3, 40};
    for (int b = 0; b < 2; b++) {
        dm_batch_hdr_t h;
        REQUIRE(dm_batch_parse_header(out.data + at[b], out.len - at[b], &h) == 0);
        CHECK_EQ_INT(h.count, counts[b]);
        CHECK_EQ_INT(h.first_ts, 9);
        CHECK(dm_batch_crc_ok(out.data + at[b], &h));
        dm_log_record_t *recs = NULL;
        size_t n = 0, cap = 0;
        REQUIRE(dm_batch_decode(out.data + at[b], &h, 0, &a, &recs, &n, &cap, NULL) == 0);
        REQUIRE(n == counts[b]);
        for (size_t i = 0; i < n; i++) {
            CHECK_EQ_INT(recs[i].offset, i);
            CHECK_EQ_INT(recs[i].timestamp, r[i].timestamp ? r[i].timestamp : 9);
            CHECK_EQ_INT(recs[i].key_len, r[i].key_len);
            CHECK_EQ_INT(recs[i].value_len, r[i].value_len);
            CHECK(!memcmp(recs[i].value, r[i].value, (size_t)r[i].value_len));
            CHECK_EQ_INT(recs[i].n_headers, r[i].n_headers);
            if (r[i].n_headers) CHECK(!memcmp(recs[i].headers[0].value, big, 300));
        }
    }
    CHECK_EQ_INT(at[1] + dm_rd32(out.data + at[1] + 8), out.len);
    dm_arena_destroy(&a);
    dm_buf_free(&out);
    dm_buf_free(&scratch);
}

/* The reader's one-pass check+decode (CRC by chunks, a fast path for short varints, the
 * next record's place guessed from the last record's size) against the plain decoder:
 * same records for batches of mixed shapes spanning many chunks (runs of equal sizes,
 * then changes; null and empty keys and values; values needing 3-byte lengths; headers),
 * the CRC failure reported as such, and batches whose bytes are damaged but whose CRC is
 * made to match decode the same way (or fail the same way) in both. */
static void test_batch_check_decode_matches_decode(void)
{
    static uint8_t big[30000];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)(i * 13 + 5);
    dm_log_header_t hs[2] = {{"h", 1, big, 7}, {"k2", 2, NULL, -1}};
    enum { N = 3000 };
    static dm_log_record_t r[N];
    uint64_t x = 12345;
    for (int i = 0; i < N; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int run = (i / 50) % 7; /* runs of one shape, then another */
        int32_t vl = run == 0   ? 100
                     : run == 1 ? 0
                     : run == 2 ? -1
                     : run == 3 ? 9000 + (int)(x % 5)
                                : (int32_t)(x % 300);
        int32_t kl = run == 4 ? (int32_t)(x % 20) : run == 5 ? 0 : -1;
        r[i] = (dm_log_record_t){.key = kl >= 0 ? big + 1 : NULL,
                                 .key_len = kl,
                                 .value = vl >= 0 ? big + (x % 1000) : NULL,
                                 .value_len = vl,
                                 .timestamp = 1000 + (int64_t)(x % 3),
                                 .headers = run == 6 && i % 3 == 0 ? hs : NULL,
                                 .n_headers = run == 6 && i % 3 == 0 ? 2 : 0};
    }
    dm_buf_t out = DM_BUF_INIT, scratch = DM_BUF_INIT;
    REQUIRE(dm_batch_encode(&out, &scratch, r, N, DM_BATCH_COMP_NONE, 0, 9, NULL) == 0);
    dm_batch_set_base_offset(out.data, 500);
    dm_batch_hdr_t h;
    REQUIRE(dm_batch_parse_header(out.data, out.len, &h) == 0);
    CHECK(h.length > 200000); /* many check chunks */
    dm_arena_t a, b;
    dm_arena_init(&a, 0);
    dm_arena_init(&b, 0);
    int64_t mins[] = {0, 500, 1777, 3499};
    for (size_t m = 0; m < 4; m++) {
        dm_log_record_t *ra = NULL, *rb = NULL;
        size_t na = 0, ca = 0, nb = 0, cb = 0;
        bool crc_bad = true;
        REQUIRE(dm_batch_decode(out.data, &h, mins[m], &a, &ra, &na, &ca, NULL) == 0);
        REQUIRE(dm_batch_check_decode(out.data, &h, mins[m], &b, &rb, &nb, &cb, &crc_bad, NULL) ==
                0);
        CHECK(!crc_bad);
        REQUIRE(na == nb);
        CHECK_EQ_INT(na, 3500 - mins[m] > N ? N : 3500 - mins[m]);
        size_t diff = 0;
        for (size_t i = 0; i < na; i++) {
            const dm_log_record_t *p = &ra[i], *q = &rb[i], *o = &r[p->offset - 500];
            if (p->offset != q->offset || p->timestamp != q->timestamp || p->key != q->key ||
                p->key_len != q->key_len || p->value != q->value || p->value_len != q->value_len ||
                p->n_headers != q->n_headers || p->value_len != o->value_len ||
                p->key_len != o->key_len ||
                (o->value_len > 0 && memcmp(q->value, o->value, (size_t)o->value_len)) ||
                (q->n_headers && q->headers[0].value_len != 7))
                diff++;
        }
        CHECK_EQ_INT(diff, 0);
        dm_arena_reset(&a);
        dm_arena_reset(&b);
    }
    /* damage: reported as a CRC failure */
    out.data[h.length / 2] ^= 0x40;
    dm_log_record_t *rb = NULL;
    size_t nb = 0, cb = 0;
    bool crc_bad = false;
    CHECK(dm_batch_check_decode(out.data, &h, 0, &b, &rb, &nb, &cb, &crc_bad, NULL) ==
          DM_ERR_CORRUPT);
    CHECK(crc_bad);
    CHECK_EQ_INT(nb, 0);
    /* damage with a matching CRC (a bug upstream, not a disk): both decoders agree */
    int agree = 0;
    for (int t = 0; t < 300; t++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t at = DM_BATCH_HEADER_SIZE + (size_t)(x % (h.length - DM_BATCH_HEADER_SIZE));
        out.data[at] ^= (uint8_t)(1u << (x >> 40) % 8);
        h.crc = dm_crc32c(0, out.data + 16, h.length - 16);
        dm_log_record_t *ra = NULL;
        size_t na = 0, ca = 0;
        nb = cb = 0;
        rb = NULL;
        dm_err_t ea = dm_batch_decode(out.data, &h, 0, &a, &ra, &na, &ca, NULL);
        dm_err_t eb = dm_batch_check_decode(out.data, &h, 0, &b, &rb, &nb, &cb, &crc_bad, NULL);
        bool same = ea == eb && na == nb && !crc_bad;
        for (size_t i = 0; same && i < na; i++)
            same = ra[i].offset == rb[i].offset && ra[i].value == rb[i].value &&
                   ra[i].value_len == rb[i].value_len && ra[i].key_len == rb[i].key_len;
        agree += same;
        dm_arena_reset(&a);
        dm_arena_reset(&b);
    }
    CHECK_EQ_INT(agree, 300);
    dm_arena_destroy(&a);
    dm_arena_destroy(&b);
    dm_buf_free(&out);
    dm_buf_free(&scratch);
}

static void test_batch_crc_matches_core(void)
{
    static uint8_t buf[100000];
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < sizeof(buf); i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        buf[i] = (uint8_t)x;
    }
    size_t lens[] = {0, 1, 7, 4096, 12287, 12288, 12289, 24576 + 5, 65536, 99999, 100000};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        CHECK_EQ_U64(dm_crc32c(0, buf, lens[i]), dm_crc32c_sw(0, buf, lens[i]));
        CHECK_EQ_U64(dm_crc32c(0x12345678, buf + 3, lens[i] - (lens[i] > 3 ? 3 : lens[i])),
                     dm_crc32c_sw(0x12345678, buf + 3, lens[i] - (lens[i] > 3 ? 3 : lens[i])));
    }
}

static void test_topic_names(void)
{
    dm_error_t err = {0};
    CHECK(dm_log_topic_name_check("orders.v1_x-2", &err) == 0);
    CHECK(dm_log_topic_name_check("a/b", &err) == DM_ERR_LOG_BAD_NAME);
    CHECK_CONTAINS(err.message, "'/'");
    CHECK(dm_log_topic_name_check("..", &err) == DM_ERR_LOG_BAD_NAME);
    CHECK(dm_log_topic_name_check(".", &err) == DM_ERR_LOG_BAD_NAME);
    CHECK(dm_log_topic_name_check("", &err) == DM_ERR_LOG_BAD_NAME);
    CHECK(dm_log_topic_name_check("a b", &err) == DM_ERR_LOG_BAD_NAME);
    char longname[300];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[299] = 0;
    CHECK(dm_log_topic_name_check(longname, &err) == DM_ERR_LOG_BAD_NAME);
}

static void test_produce_read_restart(void)
{
    char *dir = tu_tmpdir("log");
    dm_log_t *log = open_log(dir);
    REQUIRE(log);
    dm_error_t err = {0};
    CHECK(dm_log_topic_create(log, &(dm_log_topic_conf_t){.name = "t", .partitions = 2}, &err) ==
          0);
    CHECK(dm_log_topic_create(log, &(dm_log_topic_conf_t){.name = "t"}, &err) ==
          DM_ERR_LOG_TOPIC_EXISTS);
    CHECK(dm_log_topic_create(log, &(dm_log_topic_conf_t){.name = "../x"}, &err) ==
          DM_ERR_LOG_BAD_NAME);
    dm_log_record_t r[100];
    char vals[100][32];
    int64_t base = -1;
    for (int b = 0; b < 10; b++) {
        make_recs(r, vals, 100, b * 100, 0);
        REQUIRE(dm_log_produce(log, "t", 1, r, 100, &base, &err) == 0);
        CHECK_EQ_INT(base, b * 100);
    }
    dm_log_fetch_t f;
    dm_log_fetch_init(&f);
    int64_t off = 0;
    int seen = 0;
    while (off < 1000) {
        REQUIRE(dm_log_read(log, "t", 1, off, 4096, 0, &f, &err) == 0);
        REQUIRE(f.n > 0);
        for (size_t i = 0; i < f.n; i++) {
            char want[32];
            snprintf(want, sizeof(want), "v%d", seen);
            CHECK_EQ_INT(f.records[i].offset, seen);
            CHECK(f.records[i].value_len == (int)strlen(want) &&
                  !memcmp(f.records[i].value, want, strlen(want)));
            seen++;
        }
        off = f.next_offset;
    }
    CHECK_EQ_INT(seen, 1000);
    CHECK_EQ_INT(f.high_watermark, 1000);
    /* reading mid-batch starts at the offset asked for */
    REQUIRE(dm_log_read(log, "t", 1, 555, 1 << 20, 0, &f, &err) == 0);
    CHECK_EQ_INT(f.records[0].offset, 555);
    CHECK(dm_log_read(log, "t", 1, 1001, 1 << 20, 0, &f, &err) == DM_ERR_LOG_OFFSET_RANGE);
    CHECK_CONTAINS(err.message, "topic=t partition=1");
    CHECK(dm_log_read(log, "t", 2, 0, 1 << 20, 0, &f, &err) == DM_ERR_LOG_PARTITION);
    CHECK(dm_log_read(log, "nope", 0, 0, 1 << 20, 0, &f, &err) == DM_ERR_LOG_TOPIC_NOT_FOUND);
    REQUIRE(dm_log_read(log, "t", 1, 1000, 1 << 20, 0, &f, &err) == 0);
    CHECK_EQ_INT(f.n, 0);
    CHECK(dm_log_group_commit(log, "g1", "t", 1, 500, &err) == 0);
    dm_log_close(log);

    log = open_log(dir);
    REQUIRE(log);
    int64_t start, end, g;
    CHECK(dm_log_offsets(log, "t", 1, &start, &end, &err) == 0);
    CHECK_EQ_INT(start, 0);
    CHECK_EQ_INT(end, 1000);
    CHECK(dm_log_group_offset(log, "g1", "t", 1, &g, &err) == 0);
    CHECK_EQ_INT(g, 500);
    CHECK(dm_log_group_offset(log, "g2", "t", 1, &g, &err) == DM_ERR_NOT_FOUND);
    REQUIRE(dm_log_read(log, "t", 1, 990, 1 << 20, 0, &f, &err) == 0);
    CHECK_EQ_INT(f.n, 10);
    make_recs(r, vals, 1, 1000, 0);
    REQUIRE(dm_log_produce(log, "t", 1, r, 1, &base, &err) == 0);
    CHECK_EQ_INT(base, 1000);
    dm_log_fetch_free(&f);
    dm_log_close(log);
    tu_rmrf(dir);
    free(dir);
}

static void test_txn_atomic(void)
{
    char *dir = tu_tmpdir("log");
    dm_log_t *log = open_log(dir);
    REQUIRE(log);
    dm_error_t err = {0};
    REQUIRE(dm_log_topic_create(log, &(dm_log_topic_conf_t){.name = "a", .partitions = 2}, &err) ==
            0);
    REQUIRE(dm_log_topic_create(log, &(dm_log_topic_conf_t){.name = "in"}, &err) == 0);
    dm_log_record_t r[10];
    char vals[10][32];
    make_recs(r, vals, 10, 0, 0);
    dm_log_txn_t *txn;
    REQUIRE(dm_log_txn_begin(log, &txn, &err) == 0);
    REQUIRE(dm_log_txn_produce(txn, "a", 0, r, 10, &err) == 0);
    REQUIRE(dm_log_txn_produce(txn, "a", 1, r, 5, &err) == 0);
    REQUIRE(dm_log_txn_produce(txn, "a", 0, r, 3, &err) == 0);
    REQUIRE(dm_log_txn_offset(txn, "grp", "in", 0, 42, &err) == 0);
    CHECK(dm_log_txn_produce(txn, "zz", 0, r, 1, &err) == DM_ERR_LOG_TOPIC_NOT_FOUND);
    int64_t firsts[3];
    REQUIRE(dm_log_txn_commit(txn, firsts, &err) == 0);
    CHECK_EQ_INT(firsts[0], 0);
    CHECK_EQ_INT(firsts[1], 0);
    CHECK_EQ_INT(firsts[2], 10);
    int64_t end, g;
    dm_log_offsets(log, "a", 0, NULL, &end, &err);
    CHECK_EQ_INT(end, 13);
    dm_log_offsets(log, "a", 1, NULL, &end, &err);
    CHECK_EQ_INT(end, 5);
    CHECK(dm_log_group_offset(log, "grp", "in", 0, &g, &err) == 0);
    CHECK_EQ_INT(g, 42);
    /* an aborted transaction leaves nothing */
    REQUIRE(dm_log_txn_begin(log, &txn, &err) == 0);
    REQUIRE(dm_log_txn_produce(txn, "a", 0, r, 10, &err) == 0);
    dm_log_txn_abort(txn);
    dm_log_offsets(log, "a", 0, NULL, &end, &err);
    CHECK_EQ_INT(end, 13);
    /* key partitioning is stable */
    int64_t b1, b2;
    REQUIRE(dm_log_produce(log, "a", -1, r, 1, &b1, &err) == 0);
    REQUIRE(dm_log_produce(log, "a", -1, r, 1, &b2, &err) == 0);
    CHECK_EQ_INT(b2, b1 + 1);
    dm_log_close(log);
    tu_rmrf(dir);
    free(dir);
}

typedef struct waiter {
    dm_log_t *log;
    int64_t got_ns;
    size_t n;
} waiter_t;

static void *wait_thread(void *arg)
{
    waiter_t *w = arg;
    dm_log_fetch_t f;
    dm_log_fetch_init(&f);
    if (dm_log_read(w->log, "w", 0, 1, 1 << 20, 5000, &f, NULL) == 0) {
        w->got_ns = (int64_t)dm_now_ns();
        w->n = f.n;
    }
    dm_log_fetch_free(&f);
    return NULL;
}

static void test_wakeup_latency(void)
{
    char *dir = tu_tmpdir("log");
    dm_log_t *log = open_log(dir);
    REQUIRE(log);
    dm_error_t err = {0};
    REQUIRE(dm_log_topic_create(
                log, &(dm_log_topic_conf_t){.name = "w", .fsync = DM_LOG_FSYNC_NEVER}, &err) == 0);
    dm_log_fetch_t f;
    dm_log_fetch_init(&f);
    uint64_t t0 = dm_now_ns();
    REQUIRE(dm_log_read(log, "w", 0, 0, 1 << 20, 50, &f, &err) == 0);
    CHECK_EQ_INT(f.n, 0);
    CHECK(dm_now_ns() - t0 >= 45000000ull);
    dm_log_fetch_free(&f);
    dm_log_record_t r0 = {.value = (const uint8_t *)"0", .value_len = 1, .key_len = -1};
    REQUIRE(dm_log_produce(log, "w", 0, &r0, 1, NULL, &err) == 0);
    waiter_t w = {.log = log};
    pthread_t th;
    pthread_create(&th, NULL, wait_thread, &w);
    dm_sleep_ms(50);
    dm_log_record_t r = {.value = (const uint8_t *)"x", .value_len = 1, .key_len = -1};
    int64_t sent = (int64_t)dm_now_ns();
    REQUIRE(dm_log_produce(log, "w", 0, &r, 1, NULL, &err) == 0);
    pthread_join(th, NULL);
    CHECK_EQ_INT(w.n, 1);
    double us = (double)(w.got_ns - sent) / 1000.0;
    printf("    wake-up after commit: %.0f us\n", us);
    /* A waiting reader wakes on the commit, not on a poll; the latency target
     * (< 1 ms) is measured by bench/run log, this only catches a lost wake-up. */
    CHECK(us < 1000000);
    dm_log_close(log);
    tu_rmrf(dir);
    free(dir);
}

static void test_time_lookup_and_compression(void)
{
    char *dir = tu_tmpdir("log");
    dm_log_t *log = open_log(dir);
    REQUIRE(log);
    dm_error_t err = {0};
    REQUIRE(dm_log_topic_create(log,
                                &(dm_log_topic_conf_t){.name = "z",
                                                       .compression = DM_BATCH_COMP_ZSTD,
                                                       .segment_bytes = 8192},
                                &err) == 0);
    REQUIRE(dm_log_topic_create(
                log, &(dm_log_topic_conf_t){.name = "l", .compression = DM_BATCH_COMP_LZ4}, &err) ==
            0);
    dm_log_record_t r[50];
    char vals[50][32];
    for (int b = 0; b < 40; b++) {
        make_recs(r, vals, 50, b * 50, 1000000 + b * 50);
        REQUIRE(dm_log_produce(log, "z", 0, r, 50, NULL, &err) == 0);
        REQUIRE(dm_log_produce(log, "l", 0, r, 50, NULL, &err) == 0);
    }
    int64_t off;
    REQUIRE(dm_log_offset_for_time(log, "z", 0, 1000000 + 777, &off, &err) == 0);
    CHECK_EQ_INT(off, 777);
    REQUIRE(dm_log_offset_for_time(log, "l", 0, 1000000 + 1999, &off, &err) == 0);
    CHECK_EQ_INT(off, 1999);
    REQUIRE(dm_log_offset_for_time(log, "l", 0, 5000000, &off, &err) == 0);
    CHECK_EQ_INT(off, 2000);
    REQUIRE(dm_log_offset_for_time(log, "z", 0, 0, &off, &err) == 0);
    CHECK_EQ_INT(off, 0);
    dm_log_topic_info_t info;
    REQUIRE(dm_log_topic_describe(log, "z", &info, &err) == 0);
    CHECK(info.parts[0].segments > 1);
    CHECK_EQ_INT(info.parts[0].end_offset, 2000);
    free(info.parts);
    dm_log_fetch_t f;
    dm_log_fetch_init(&f);
    int64_t next = 0;
    int seen = 0;
    while (next < 2000) {
        REQUIRE(dm_log_read(log, "z", 0, next, 3000, 0, &f, &err) == 0);
        REQUIRE(f.n > 0);
        for (size_t i = 0; i < f.n; i++, seen++)
            CHECK_EQ_INT(f.records[i].offset, seen);
        next = f.next_offset;
    }
    CHECK_EQ_INT(seen, 2000);
    dm_log_fetch_free(&f);
    dm_log_close(log);
    /* after a restart the sealed segments' indexes load from disk */
    log = open_log(dir);
    REQUIRE(log);
    REQUIRE(dm_log_offset_for_time(log, "z", 0, 1000000 + 1234, &off, &err) == 0);
    CHECK_EQ_INT(off, 1234);
    dm_log_close(log);
    tu_rmrf(dir);
    free(dir);
}

static void test_delete_topic(void)
{
    char *dir = tu_tmpdir("log");
    dm_log_t *log = open_log(dir);
    REQUIRE(log);
    dm_error_t err = {0};
    REQUIRE(dm_log_topic_create(log, &(dm_log_topic_conf_t){.name = "d"}, &err) == 0);
    dm_log_record_t r = {.value = (const uint8_t *)"x", .value_len = 1, .key_len = -1};
    REQUIRE(dm_log_produce(log, "d", 0, &r, 1, NULL, &err) == 0);
    REQUIRE(dm_log_topic_delete(log, "d", &err) == 0);
    CHECK(dm_log_produce(log, "d", 0, &r, 1, NULL, &err) == DM_ERR_LOG_TOPIC_NOT_FOUND);
    REQUIRE(dm_log_topic_create(log, &(dm_log_topic_conf_t){.name = "d"}, &err) == 0);
    int64_t end;
    dm_log_offsets(log, "d", 0, NULL, &end, &err);
    CHECK_EQ_INT(end, 0);
    dm_log_close(log);
    log = open_log(dir);
    REQUIRE(log);
    dm_log_offsets(log, "d", 0, NULL, &end, &err);
    CHECK_EQ_INT(end, 0);
    CHECK(dm_log_topic_partitions(log, "d", &err) == 1);
    dm_log_close(log);
    tu_rmrf(dir);
    free(dir);
}

int main(void)
{
    RUN(test_batch_roundtrip);
    RUN(test_batch_grows_and_appends);
    RUN(test_batch_check_decode_matches_decode);
    RUN(test_batch_crc_matches_core);
    RUN(test_topic_names);
    RUN(test_produce_read_restart);
    RUN(test_txn_atomic);
    RUN(test_wakeup_latency);
    RUN(test_time_lookup_and_compression);
    RUN(test_delete_topic);
    return check_summary();
}
