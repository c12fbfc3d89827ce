/* Unit tests for core/: errors, arena, buffer, varint, CRC32C, hashing,
 * clocks, logging, redaction. Config tables are in test_core_config.c. */
#include "check.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/crc32c.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/hash.h"
#include "core/log.h"
#include "core/redact.h"
#include "core/varint.h"

static void test_error_set_and_prefix(void)
{
    dm_error_t err;
    dm_error_clear(&err);
    CHECK_EQ_INT(dm_error_set(&err, DM_ERR_IO, "reading %s", "seg.log"), DM_ERR_IO);
    CHECK_STR_EQ(err.message, "reading seg.log");
    CHECK(!err.retriable);
    dm_error_prefix(&err, "topic=%s partition=%d", "plays", 3);
    CHECK_STR_EQ(err.message, "topic=plays partition=3: reading seg.log");
    CHECK_EQ_INT(err.code, DM_ERR_IO);
    dm_error_set(&err, DM_ERR_TIMEOUT, "broker");
    CHECK(err.retriable);
    CHECK_STR_EQ(dm_err_name(DM_ERR_CORRUPT), "DM_ERR_CORRUPT");
    CHECK_STR_EQ(dm_err_name((dm_err_t)-9999), "DM_ERR_UNKNOWN");
    /* NULL error objects are allowed everywhere. */
    CHECK_EQ_INT(dm_error_set(NULL, DM_ERR_INVALID, "x"), DM_ERR_INVALID);
    /* Messages longer than the buffer are cut, not overflowed. */
    char big[2000];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    dm_error_set(&err, DM_ERR_INVALID, "%s", big);
    CHECK_EQ_INT(strlen(err.message), DM_ERROR_MSG_MAX - 1);
}

/* Messages quoting input or cut mid-character stay UTF-8 (they go into JSON). */
static void test_utf8_repair(void)
{
    char ok[] = "plain, \xc3\xbf, \xe2\x82\xac, \xf0\x9f\x98\x80";
    dm_utf8_repair(ok);
    CHECK_STR_EQ(ok, "plain, \xc3\xbf, \xe2\x82\xac, \xf0\x9f\x98\x80");
    char cut[] = "field '\xc3";
    dm_utf8_repair(cut);
    CHECK_STR_EQ(cut, "field '?");
    char bad[] = "\xff \xc0\xaf \xed\xa0\x80 \xe2\x82x \xf4\x90\x80\x80";
    dm_utf8_repair(bad);
    CHECK_STR_EQ(bad, "? ?? ??? ??x ????");
    dm_error_t err;
    dm_error_set(&err, DM_ERR_INVALID, "unexpected '%c' in %s", (char)0xc3, "x");
    CHECK_STR_EQ(err.message, "unexpected '?' in x");
}

static void test_arena_alignment_and_growth(void)
{
    dm_arena_t a;
    dm_arena_init(&a, 1024);
    void *prev = NULL;
    for (int i = 1; i < 200; i++) {
        char *p = dm_arena_alloc(&a, (size_t)i);
        REQUIRE(p);
        CHECK(((uintptr_t)p % DM_ARENA_ALIGN) == 0);
        memset(p, i & 0xff, (size_t)i);
        CHECK(p != prev);
        prev = p;
    }
    CHECK(a.mallocs > 1); /* 200 allocations of up to 200 bytes outgrow 1 KiB */
    /* A request larger than any chunk gets a chunk of its own. */
    char *huge = dm_arena_alloc(&a, 1 << 20);
    REQUIRE(huge);
    memset(huge, 0, 1 << 20);
    CHECK(a.reserved >= (1u << 20));
    dm_arena_destroy(&a);
    CHECK(a.head == NULL);
}

static void test_arena_reset_reaches_steady_state(void)
{
    dm_arena_t a;
    dm_arena_init(&a, 4096);
    /* First cycle needs several chunks. */
    for (int i = 0; i < 1000; i++)
        REQUIRE(dm_arena_alloc(&a, 100));
    uint64_t after_first = a.mallocs;
    CHECK(after_first > 1);
    dm_arena_reset(&a);
    CHECK_EQ_INT(a.used, 0);
    uint64_t after_reset = a.mallocs;
    /* Every later cycle of the same size fits in the coalesced chunk. */
    for (int cycle = 0; cycle < 10; cycle++) {
        for (int i = 0; i < 1000; i++)
            REQUIRE(dm_arena_alloc(&a, 100));
        dm_arena_reset(&a);
    }
    CHECK_EQ_U64(a.mallocs, after_reset);
    char *s = dm_arena_strdup(&a, "hello");
    CHECK_STR_EQ(s, "hello");
    char *f = dm_arena_printf(&a, "%s-%d", "p", 7);
    CHECK_STR_EQ(f, "p-7");
    int *z = dm_arena_calloc(&a, 16, sizeof(int));
    REQUIRE(z);
    for (int i = 0; i < 16; i++)
        CHECK_EQ_INT(z[i], 0);
    CHECK(dm_arena_calloc(&a, SIZE_MAX / 2, 4) == NULL); /* overflow refused */
    dm_arena_destroy(&a);
}

static void test_buf_append_and_detach(void)
{
    dm_buf_t b = DM_BUF_INIT;
    for (int i = 0; i < 10000; i++)
        REQUIRE(dm_buf_append_u8(&b, (uint8_t)i) == DM_OK);
    CHECK_EQ_INT(b.len, 10000);
    CHECK_EQ_INT(b.data[9999], (uint8_t)9999);
    dm_buf_reset(&b);
    CHECK(dm_buf_printf(&b, "%s=%d", "x", 42) == DM_OK);
    const char *s;
    REQUIRE(dm_buf_cstr(&b, &s) == DM_OK);
    CHECK_STR_EQ(s, "x=42");
    size_t len;
    uint8_t *raw = dm_buf_detach(&b, &len);
    CHECK_EQ_INT(len, 4);
    CHECK(b.data == NULL && b.len == 0);
    free(raw);
    CHECK(dm_buf_reserve(&b, SIZE_MAX) == DM_ERR_NOMEM);
    dm_buf_free(&b);
}

static void test_varint_edges(void)
{
    const int64_t values[] = {0,
                              1,
                              -1,
                              63,
                              -64,
                              64,
                              -65,
                              127,
                              128,
                              16383,
                              16384,
                              INT32_MAX,
                              INT32_MIN,
                              (int64_t)INT32_MAX + 1,
                              INT64_MAX,
                              INT64_MIN,
                              INT64_MAX - 1,
                              INT64_MIN + 1};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        uint8_t buf[DM_VARINT_MAX];
        size_t n = dm_varint_encode_i64(values[i], buf);
        CHECK(n >= 1 && n <= DM_VARINT_MAX);
        int64_t back = 0;
        CHECK_EQ_INT(dm_varint_decode_i64(buf, buf + n, &back), (int)n);
        CHECK_EQ_INT(back, values[i]);
        /* Every shorter prefix is reported as truncated, never over-read. */
        for (size_t cut = 0; cut < n; cut++)
            CHECK_EQ_INT(dm_varint_decode_i64(buf, buf + cut, &back), 0);
    }
    /* Avro's examples: zigzag 0,-1,1,-2,2 → 0,1,2,3,4; 64 → 0x80 0x01. */
    CHECK_EQ_U64(dm_zigzag_encode64(-1), 1);
    CHECK_EQ_U64(dm_zigzag_encode64(1), 2);
    CHECK_EQ_U64(dm_zigzag_encode64(-2), 3);
    CHECK_EQ_U64(dm_zigzag_encode32(INT32_MIN), UINT32_MAX);
    CHECK_EQ_INT(dm_zigzag_decode32(UINT32_MAX), INT32_MIN);
    uint8_t b64[DM_VARINT_MAX];
    CHECK_EQ_INT(dm_varint_encode_i64(64, b64), 2);
    CHECK_EQ_INT(b64[0], 0x80);
    CHECK_EQ_INT(b64[1], 0x01);
    /* Unsigned maximum is exactly 10 bytes; an 11th continuation or a 10th byte
     * above 1 is malformed. */
    uint8_t umax[DM_VARINT_MAX];
    CHECK_EQ_INT(dm_varint_encode_u64(UINT64_MAX, umax), 10);
    uint64_t u = 0;
    CHECK_EQ_INT(dm_varint_decode_u64(umax, umax + 10, &u), 10);
    CHECK_EQ_U64(u, UINT64_MAX);
    uint8_t overlong[11];
    memset(overlong, 0xff, sizeof(overlong));
    CHECK_EQ_INT(dm_varint_decode_u64(overlong, overlong + 11, &u), -1);
    uint8_t bad10[10] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02};
    CHECK_EQ_INT(dm_varint_decode_u64(bad10, bad10 + 10, &u), -1);
}

static void test_crc32c_rfc3720_vectors(void)
{
    uint8_t buf[32];
    memset(buf, 0, 32);
    CHECK_EQ_U64(dm_crc32c(0, buf, 32), 0x8A9136AA);
    CHECK_EQ_U64(dm_crc32c_sw(0, buf, 32), 0x8A9136AA);
    memset(buf, 0xff, 32);
    CHECK_EQ_U64(dm_crc32c(0, buf, 32), 0x62A8AB43);
    CHECK_EQ_U64(dm_crc32c_sw(0, buf, 32), 0x62A8AB43);
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)i;
    CHECK_EQ_U64(dm_crc32c(0, buf, 32), 0x46DD794E);
    CHECK_EQ_U64(dm_crc32c_sw(0, buf, 32), 0x46DD794E);
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)(31 - i);
    CHECK_EQ_U64(dm_crc32c(0, buf, 32), 0x113FDB5C);
    CHECK_EQ_U64(dm_crc32c_sw(0, buf, 32), 0x113FDB5C);
    /* The iSCSI read command PDU of RFC 3720 B.4. */
    static const uint8_t pdu[48] = {0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00,
                                    0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00,
                                    0x00, 0x18, 0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                    0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
    CHECK_EQ_U64(dm_crc32c(0, pdu, 48), 0xD9963A56);
    CHECK_EQ_U64(dm_crc32c(0, "123456789", 9), 0xE3069283);
}

static void test_crc32c_hw_sw_agree_and_chain(void)
{
    uint8_t data[4099];
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < sizeof(data); i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        data[i] = (uint8_t)x;
    }
    /* Every length and misalignment gives the same CRC both ways. */
    for (size_t off = 0; off < 9; off++)
        for (size_t len = 0; len < 300; len += 7)
            CHECK_EQ_U64(dm_crc32c(0, data + off, len), dm_crc32c_sw(0, data + off, len));
    /* Long inputs take the three-chain path: same results as the table. */
    static uint8_t big[3 * 4096 * 3 + 77];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)(i * 131 + (i >> 7));
    for (size_t len = 3 * 4096 - 1; len <= sizeof(big); len += 4093)
        CHECK_EQ_U64(dm_crc32c(7, big + 1, len - 1), dm_crc32c_sw(7, big + 1, len - 1));
    uint32_t whole = dm_crc32c(0, data, sizeof(data));
    uint32_t split = dm_crc32c(dm_crc32c(0, data, 1000), data + 1000, sizeof(data) - 1000);
    CHECK_EQ_U64(whole, split);
    CHECK_EQ_U64(whole, dm_crc32c_sw(0, data, sizeof(data)));
}

/* Every implementation the CPU runs (folding over 512-bit and 128-bit registers, the crc32
 * instruction, the table) gives the RFC 3720 values and the table's result for every
 * alignment 0..63 with every length 0..300 (the paths' thresholds and tails) and random
 * lengths up to 64 KiB, with a non-zero starting CRC too. */
static void test_crc32c_every_impl_matches_table(void)
{
    size_t n_impls;
    const dm_crc32c_impl_t *impls = dm_crc32c_impls(&n_impls);
    CHECK(n_impls >= 1);
    CHECK(impls[n_impls - 1].available); /* the table always is */
    static uint8_t data[(64 << 10) + 64];
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < sizeof(data); i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        data[i] = (uint8_t)x;
    }
    static const uint8_t pdu[48] = {0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00,
                                    0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00,
                                    0x00, 0x18, 0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                    0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
    uint8_t zeros[32] = {0}, ones[32], inc[32];
    memset(ones, 0xff, sizeof(ones));
    for (int i = 0; i < 32; i++)
        inc[i] = (uint8_t)i;
    for (size_t k = 0; k < n_impls; k++) {
        const dm_crc32c_impl_t *im = &impls[k];
        if (!im->available) {
            printf("  crc32c %s: not on this CPU\n", im->name);
            continue;
        }
        CHECK_EQ_U64(im->fn(0, zeros, 32), 0x8A9136AA);
        CHECK_EQ_U64(im->fn(0, ones, 32), 0x62A8AB43);
        CHECK_EQ_U64(im->fn(0, inc, 32), 0x46DD794E);
        CHECK_EQ_U64(im->fn(0, pdu, 48), 0xD9963A56);
        CHECK_EQ_U64(im->fn(0, "123456789", 9), 0xE3069283);
        size_t bad = 0, cases = 0;
        for (size_t off = 0; off < 64; off++) {
            for (size_t len = 0; len <= 300; len++, cases++)
                if (im->fn(0, data + off, len) != dm_crc32c_sw(0, data + off, len)) bad++;
            for (int r = 0; r < 8; r++, cases++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                size_t len = (size_t)(x % ((64 << 10) + 1));
                uint32_t seed = (uint32_t)(x >> 32);
                if (im->fn(seed, data + off, len) != dm_crc32c_sw(seed, data + off, len)) {
                    if (!bad)
                        printf("  crc32c %s: offset %zu length %zu differs\n", im->name, off, len);
                    bad++;
                }
            }
        }
        /* the longest input and the chaining property */
        size_t all = sizeof(data) - 64;
        cases++;
        if (im->fn(im->fn(0, data, 777), data + 777, all - 777) != dm_crc32c_sw(0, data, all))
            bad++;
        printf("  crc32c %s: %zu cases, %zu differ from the table\n", im->name, cases, bad);
        CHECK_EQ_U64(bad, 0);
    }
}

static void test_hash_is_stable(void)
{
    /* XXH3-64 of the empty input is a published constant. */
    CHECK_EQ_U64(dm_hash64("", 0), 0x2D06800538D394C2ull);
    CHECK(dm_hash64("a", 1) != dm_hash64("b", 1));
    CHECK(dm_hash64_seed("a", 1, 1) != dm_hash64_seed("a", 1, 2));
}

static void test_clock_and_iso8601(void)
{
    uint64_t a = dm_now_ns();
    dm_sleep_ms(2);
    uint64_t b = dm_now_ns();
    CHECK(b - a >= 2000000);
    char ts[32];
    CHECK_STR_EQ(dm_format_iso8601_ms(0, ts, sizeof(ts)), "1970-01-01T00:00:00.000Z");
    CHECK_STR_EQ(dm_format_iso8601_ms(1700000000123, ts, sizeof(ts)), "2023-11-14T22:13:20.123Z");
    CHECK_STR_EQ(dm_format_iso8601_ms(-1, ts, sizeof(ts)), "1969-12-31T23:59:59.999Z");
    CHECK(dm_wall_ms() > 1700000000000);
}

static char captured[4096];
static int captured_lines;

static void capture(void *ctx, dm_log_level_t level, const char *line, size_t len)
{
    (void)ctx;
    (void)level;
    snprintf(captured, sizeof(captured), "%.*s", (int)len, line);
    captured_lines++;
}

static void test_log_format_and_level(void)
{
    dm_log_set_sink(capture, NULL);
    dm_log_set_level(DM_LOG_INFO);
    DM_INFO("log", "topic=%s partition=%d: recovered, cut %d bytes", "plays", 2, 112);
    CHECK_CONTAINS(captured,
                   " INFO component=log topic=plays partition=2: recovered, cut 112 bytes");
    int before = captured_lines;
    DM_DEBUG("log", "hidden");
    CHECK_EQ_INT(captured_lines, before);
    dm_log_set_level(DM_LOG_DEBUG);
    DM_DEBUG("log", "shown");
    CHECK_EQ_INT(captured_lines, before + 1);
    CHECK_EQ_INT(dm_log_level_parse("warn"), DM_LOG_WARN);
    CHECK_EQ_INT(dm_log_level_parse("loud"), -1);
    dm_log_set_sink(NULL, NULL);
    dm_log_set_level(DM_LOG_INFO);
}

static void test_redact_dsn(void)
{
    char out[256];
    CHECK_STR_EQ(dm_redact_dsn("host=127.0.0.1 port=5432 user=cdc password=s3cret dbname=shop", out,
                               sizeof(out)),
                 "host=127.0.0.1 port=5432 user=cdc password=*** dbname=shop");
    CHECK_STR_EQ(dm_redact_dsn("host=x password='a b\\'c' user=u", out, sizeof(out)),
                 "host=x password=*** user=u");
    CHECK_STR_EQ(dm_redact_dsn("postgres://cdc:s3cret@db:5432/shop?sslmode=require&password=x", out,
                               sizeof(out)),
                 "postgres://cdc:***@db:5432/shop?sslmode=require&password=***");
    CHECK_STR_EQ(dm_redact_dsn("kafka://broker:9092", out, sizeof(out)), "kafka://broker:9092");
    /* words between the pairs keep their spaces (error messages that quote a DSN) */
    CHECK_STR_EQ(
        dm_redact_dsn("connecting to host=db password=pw failed: no route", out, sizeof(out)),
        "connecting to host=db password=*** failed: no route");
    char tiny[8];
    dm_redact_dsn("password=abcdefghijkl", tiny, sizeof(tiny));
    CHECK(strlen(tiny) < sizeof(tiny));
    CHECK(strstr(tiny, "abc") == NULL);
}

static void test_mkdirs(void)
{
    char dir[] = "/tmp/dm-core-fs-XXXXXX";
    REQUIRE(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof(path), "%s/a/b/c", dir);
    CHECK(dm_mkdirs(path, false, NULL) == DM_OK);
    CHECK(dm_mkdirs(path, false, NULL) == DM_OK); /* existing is fine */
    snprintf(path, sizeof(path), "%s/x/y/file.txt", dir);
    CHECK(dm_mkdirs(path, true, NULL) == DM_OK);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) fclose(f);
    /* A file in the way is an error naming the directory. */
    snprintf(path, sizeof(path), "%s/x/y/file.txt/z", dir);
    dm_error_t err = {0};
    CHECK_EQ_INT(dm_mkdirs(path, false, &err), DM_ERR_IO);
    CHECK_CONTAINS(err.message, "file.txt");
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
}

int main(void)
{
    RUN(test_error_set_and_prefix);
    RUN(test_utf8_repair);
    RUN(test_arena_alignment_and_growth);
    RUN(test_arena_reset_reaches_steady_state);
    RUN(test_buf_append_and_detach);
    RUN(test_varint_edges);
    RUN(test_crc32c_rfc3720_vectors);
    RUN(test_crc32c_hw_sw_agree_and_chain);
    RUN(test_crc32c_every_impl_matches_table);
    RUN(test_hash_is_stable);
    RUN(test_clock_and_iso8601);
    RUN(test_log_format_and_level);
    RUN(test_redact_dsn);
    RUN(test_mkdirs);
    return check_summary();
}
