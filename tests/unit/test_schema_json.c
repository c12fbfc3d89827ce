/* tests/unit/test_schema_json.c — the DOM-free JSON reader (schema/json_decode.c)
 * and the number writer (schema/json_number.c): escapes, UTF-8, numbers at
 * their limits, nesting, duplicate keys, error positions, and numbers both
 * ways against strtod/printf on random inputs. The random records of every
 * Avro type are in tests/oracle/avro_oracle.c (both readers, avro-c's text). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema/dm_avro.h"
#include "schema/json_internal.h"
#include "tests/check.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t rnd64(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static dm_avro_schema_t *schema(const char *json)
{
    dm_avro_schema_t *s = NULL;
    dm_error_t err = {0};
    if (dm_avro_schema_parse(json, strlen(json), &s, &err)) printf("    schema: %s\n", err.message);
    return s;
}

static const char *REC = "{\"type\":\"record\",\"name\":\"R\",\"fields\":["
                         "{\"name\":\"id\",\"type\":\"long\"},"
                         "{\"name\":\"s\",\"type\":\"string\",\"default\":\"\"},"
                         "{\"name\":\"d\",\"type\":\"double\",\"default\":0},"
                         "{\"name\":\"b\",\"type\":\"bytes\",\"default\":\"\"}]}";

/* Reads text in plain mode; returns the error message ("" when accepted). */
static char msg[DM_ERROR_MSG_MAX];
static dm_avro_value_t val;
static dm_arena_t arena;
static const char *rd(dm_avro_schema_t *s, const char *text, size_t len)
{
    dm_error_t err = {0};
    msg[0] = '\0';
    if (dm_avro_from_json_text(s->root, text, len, DM_AVRO_JSON_PLAIN, &arena, &val, &err))
        snprintf(msg, sizeof(msg), "%s", err.message[0] ? err.message : "(no message)");
    return msg;
}
#define RD(s, text) rd(s, text, strlen(text))

static void test_escapes_and_utf8(void)
{
    dm_avro_schema_t *s = schema(REC);
    REQUIRE(s);
    CHECK_EQ_INT(strlen(RD(s, "{\"id\":1,\"s\":\"a\\u00e9\\ud83d\\ude00\\n\\\"\\/\"}")), 0);
    CHECK(val.u.v[1].len == 10 &&
          memcmp(val.u.v[1].u.p, "a\xc3\xa9\xf0\x9f\x98\x80\n\"/", 10) == 0);
    CHECK_EQ_INT(strlen(RD(s, "{\"id\":1,\"s\":\"\xe4\xb8\xad\xf0\x9f\x98\x80\"}")), 0);
    CHECK_EQ_INT(val.u.v[1].len, 7);
    CHECK_EQ_INT(strlen(RD(s, "{\"id\":1,\"s\":\"nul\\u0000in\"}")), 0);
    CHECK_EQ_INT(val.u.v[1].len, 6);
    /* bytes: code points 0-255 */
    CHECK_EQ_INT(strlen(RD(s, "{\"id\":1,\"b\":\"\\u00ff\\u0000A\"}")), 0);
    CHECK(val.u.v[3].len == 3 && val.u.v[3].u.p[0] == 0xff && val.u.v[3].u.p[1] == 0);
    CHECK_CONTAINS(RD(s, "{\"id\":1,\"b\":\"\\u0100\"}"), "$.b: expected bytes");
    static const char *const bad[] = {
        "{\"id\":1,\"s\":\"\\udc00\"}",          /* a low surrogate alone */
        "{\"id\":1,\"s\":\"\\ud800x\"}",         /* a high one without its low one */
        "{\"id\":1,\"s\":\"\\ud800\\u0041\"}",   /* followed by no low one */
        "{\"id\":1,\"s\":\"\xff\"}",             /* not UTF-8 */
        "{\"id\":1,\"s\":\"\xc0\x80\"}",         /* overlong */
        "{\"id\":1,\"s\":\"\xed\xa0\x80\"}",     /* a surrogate in UTF-8 */
        "{\"id\":1,\"s\":\"\xf4\x90\x80\x80\"}", /* above U+10FFFF */
        "{\"id\":1,\"s\":\"\xe4\xb8\"}",         /* cut short */
        "{\"id\":1,\"s\":\"a\tb\"}",             /* a raw control character */
        "{\"id\":1,\"s\":\"\\x41\"}",            /* no such escape */
        "{\"id\":1,\"s\":\"\\u12\"}",            /* short \u */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *m = RD(s, bad[i]);
        if (!strstr(m, "JSON line 1 column")) printf("    case %zu: \"%s\"\n", i, m);
        CHECK(strstr(m, "JSON line 1 column") != NULL);
    }
    dm_avro_schema_free(s);
}

static void test_numbers_at_limits(void)
{
    dm_avro_schema_t *s = schema(REC);
    REQUIRE(s);
    CHECK_EQ_INT(strlen(RD(s, "{\"id\":9223372036854775807}")), 0);
    CHECK(val.u.v[0].u.l == INT64_MAX);
    CHECK_EQ_INT(strlen(RD(s, "{\"id\":-9223372036854775808}")), 0);
    CHECK(val.u.v[0].u.l == INT64_MIN);
    CHECK_CONTAINS(RD(s, "{\"id\":9223372036854775808}"), "too big integer");
    CHECK_CONTAINS(RD(s, "{\"id\":-9223372036854775809}"), "too big negative integer");
    CHECK_CONTAINS(RD(s, "{\"id\":123456789012345678901234567890}"), "too big integer");
    CHECK_CONTAINS(RD(s, "{\"id\":1.5}"), "$.id: expected long, got a number");
    CHECK_CONTAINS(RD(s, "{\"id\":01}"), "leading zero");
    CHECK_CONTAINS(RD(s, "{\"id\":1,\"d\":1e309}"), "real number overflow");
    CHECK_CONTAINS(RD(s, "{\"id\":1,\"d\":-1e400}"), "real number overflow");
    CHECK_EQ_INT(strlen(RD(s, "{\"id\":1,\"d\":1e-400}")), 0);
    CHECK(val.u.v[2].u.d == 0);
    CHECK_EQ_INT(strlen(RD(s, "{\"id\":1,\"d\":123456789012345678901234567890.5e-3}")), 0);
    CHECK(val.u.v[2].u.d == strtod("123456789012345678901234567890.5e-3", NULL));
    CHECK_EQ_INT(strlen(RD(s, "{\"id\":1,\"d\":\"NaN\"}")), 0);
    CHECK(isnan(val.u.v[2].u.d));
    CHECK_CONTAINS(RD(s, "{\"id\":1,\"d\":1.}"), "invalid number");
    CHECK_CONTAINS(RD(s, "{\"id\":1,\"d\":.5}"), "invalid token");
    CHECK_CONTAINS(RD(s, "{\"id\":1,\"d\":1e}"), "invalid number");
    dm_avro_schema_free(s);
}

/* Random number texts read as strtod reads them, bit for bit. */
static void test_numbers_match_strtod(void)
{
    dm_avro_schema_t *s = schema("\"double\"");
    REQUIRE(s);
    int bad = 0;
    for (int i = 0; i < 200000 && bad < 5; i++) {
        char t[80];
        int k = 0;
        if (rnd64() & 1) t[k++] = '-';
        int whole = 1 + (int)(rnd64() % 20), frac = (int)(rnd64() % 20);
        t[k++] = (char)('1' + rnd64() % 9);
        for (int j = 1; j < whole; j++)
            t[k++] = (char)('0' + rnd64() % 10);
        if (frac) {
            t[k++] = '.';
            for (int j = 0; j < frac; j++)
                t[k++] = (char)('0' + (rnd64() % 3 ? rnd64() % 10 : 0));
        }
        if (rnd64() % 2 || !frac) /* a real: an integer past int64 is refused */
            k += snprintf(t + k, sizeof(t) - (size_t)k, "e%d", (int)(rnd64() % 80) - 40);
        t[k] = '\0';
        dm_error_t err = {0};
        dm_avro_value_t v;
        if (dm_avro_from_json_text(s->root, t, (size_t)k, DM_AVRO_JSON_PLAIN, &arena, &v, &err)) {
            printf("    %s: %s\n", t, err.message);
            bad++;
            continue;
        }
        double want = strtod(t, NULL);
        if (memcmp(&want, &v.u.d, 8) != 0) {
            printf("    %s: %.17g, strtod %.17g\n", t, v.u.d, want);
            bad++;
        }
        dm_arena_reset(&arena);
    }
    CHECK_EQ_INT(bad, 0);
    dm_avro_schema_free(s);
}

/* Random longs of 1..19 digits read as strtoll reads them (eight digits at a
 * time where there are eight), and a byte just outside '0'..'9' ('/', ':')
 * anywhere in the digits refused. */
static void test_longs_match_strtoll(void)
{
    dm_avro_schema_t *s = schema(REC);
    REQUIRE(s);
    int bad = 0;
    for (int i = 0; i < 200000 && bad < 5; i++) {
        char t[64], num[24];
        int k = 0, digits = 1 + (int)(rnd64() % 19);
        if (rnd64() & 1) num[k++] = '-';
        num[k++] = (char)('1' + rnd64() % 9);
        for (int j = 1; j < digits; j++)
            num[k++] = (char)('0' + rnd64() % 10);
        num[k] = '\0';
        bool broken = digits > 1 && rnd64() % 4 == 0;
        if (broken) num[k - 1 - (int)(rnd64() % (uint64_t)(digits - 1))] = rnd64() & 1 ? '/' : ':';
        int n = snprintf(t, sizeof(t), "{\"id\":%s}", num);
        errno = 0;
        char *end;
        long long want = strtoll(num, &end, 10);
        bool fits = !broken && !errno && !*end;
        const char *m = rd(s, t, (size_t)n);
        if (fits ? *m || val.u.v[0].u.l != want : !*m) {
            printf("    %s: %s (value %lld, strtoll %lld)\n", t, *m ? m : "accepted",
                   (long long)val.u.v[0].u.l, want);
            bad++;
        }
        dm_arena_reset(&arena);
    }
    CHECK_EQ_INT(bad, 0);
    dm_avro_schema_free(s);
}

/* Doubles and floats written shortest, and reading back as themselves. */
static void test_format_double_round_trips(void)
{
    int bad = 0;
    for (int i = 0; i < 300000 && bad < 5; i++) {
        double d;
        uint64_t bits = rnd64();
        switch (i % 4) {
        case 0: memcpy(&d, &bits, 8); break;                          /* any bit pattern */
        case 1: d = (double)(int64_t)(bits % 2000001) / 100.0; break; /* prices */
        case 2: d = (double)(int64_t)bits / 1e7; break;               /* large */
        default: d = (double)(bits % 1000000) * 1e-6; break;          /* ratios */
        }
        if (!isfinite(d)) continue;
        char t[40];
        size_t n = dm_avro_json_format_double(d, false, t);
        t[n] = '\0';
        char ref[40];
        for (int p = 15; p <= 17; p++) { /* the shortest %g that round-trips */
            snprintf(ref, sizeof(ref), "%.*g", p, d);
            if (strtod(ref, NULL) == d) break;
        }
        if (strtod(t, NULL) != d || !strpbrk(t, ".e") || n > strlen(ref) + 2) {
            printf("    %.17g -> \"%s\" (shortest %%g \"%s\")\n", d, t, ref);
            bad++;
        }
        float f = (float)d;
        if (!isfinite(f)) continue;
        n = dm_avro_json_format_double(f, true, t);
        t[n] = '\0';
        if (strtof(t, NULL) != f || n > 16) {
            printf("    float %.9g -> \"%s\"\n", f, t);
            bad++;
        }
    }
    CHECK_EQ_INT(bad, 0);
    char t[40];
    t[dm_avro_json_format_double(0.1, false, t)] = '\0';
    CHECK(strcmp(t, "0.1") == 0);
    t[dm_avro_json_format_double(-0.0, false, t)] = '\0';
    CHECK(strcmp(t, "-0.0") == 0);
    t[dm_avro_json_format_double(12.0, false, t)] = '\0';
    CHECK(strcmp(t, "12.0") == 0);
    t[dm_avro_json_format_double(1e300, false, t)] = '\0';
    CHECK(strcmp(t, "1e+300") == 0);
    t[dm_avro_json_format_double(0.1f, true, t)] = '\0';
    CHECK(strcmp(t, "0.1") == 0);
    int64_t ints[] = {0, -1, 9, 10, 99, 100, INT64_MAX, INT64_MIN, 1234567890123LL};
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
        char a[32], b[32];
        a[dm_avro_json_format_i64(ints[i], a)] = '\0';
        snprintf(b, sizeof(b), "%lld", (long long)ints[i]);
        CHECK(strcmp(a, b) == 0);
    }
}

static void test_structure_errors_name_where(void)
{
    dm_avro_schema_t *s = schema(REC);
    REQUIRE(s);
    CHECK_CONTAINS(RD(s, "{\"id\":1,\n \"s\": 5}"),
                   "$.s: expected string, got an integer (line 2 column 7, byte 15)");
    CHECK_CONTAINS(RD(s, "{\"id\":1,\"id\":2}"), "duplicate object key");
    CHECK_CONTAINS(RD(s, "{\"id\":1,\"zz\":2}"), "$.zz: record R has no field \"zz\"");
    CHECK_CONTAINS(RD(s, "{\"s\":\"x\"}"), "$.id: missing field of type long");
    CHECK_CONTAINS(RD(s, "{\"id\":1,\"s\":\"abc"), "premature end of input");
    CHECK_CONTAINS(RD(s, "{\"id\":1"), "JSON line 1 column 8 (byte 7)");
    CHECK_CONTAINS(RD(s, "{\"id\":1} x"), "end of file expected");
    CHECK_CONTAINS(RD(s, ""), "premature end of input");
    CHECK_CONTAINS(RD(s, "{\"id\":1,\"s\":\"a\",}"), "JSON line 1 column");
    /* a syntax error after a mismatch still says the text is not JSON */
    CHECK_CONTAINS(RD(s, "{\"id\":\"x\",\"s\":tru}"), "$.id: expected long");
    /* the map's keys: duplicates refused too */
    dm_avro_schema_t *m = schema("{\"type\":\"map\",\"values\":\"int\"}");
    REQUIRE(m);
    CHECK_CONTAINS(RD(m, "{\"a\":1,\"b\":2,\"a\":3}"), "duplicate object key");
    CHECK_EQ_INT(strlen(RD(m, "{\"a\":1,\"b\":2}")), 0);
    CHECK_EQ_INT(val.len, 2);
    CHECK_CONTAINS(RD(m, "{\"a\\u0000\":1}"), "NUL byte in an object key");
    dm_avro_schema_free(m);
    dm_avro_schema_free(s);
}

/* Deep nesting is refused at jansson's depth, without a crash; a long line
 * is read whole. */
static void test_depth_and_size(void)
{
    dm_avro_schema_t *s = schema("{\"type\":\"record\",\"name\":\"N\",\"fields\":[{\"name\":\"n\","
                                 "\"type\":[\"null\",\"N\"]}]}");
    REQUIRE(s);
    for (int depth = 100; depth <= 5000; depth *= 50) {
        size_t len = (size_t)depth * 6 + 16;
        char *t = malloc(len);
        size_t k = 0;
        for (int i = 0; i < depth; i++)
            k += (size_t)sprintf(t + k, "{\"n\":");
        k += (size_t)sprintf(t + k, "null");
        for (int i = 0; i < depth; i++)
            t[k++] = '}';
        const char *m = rd(s, t, k);
        if (depth == 100)
            CHECK_EQ_INT(strlen(m), 0);
        else
            CHECK_CONTAINS(m, "maximum parsing depth reached");
        free(t);
        dm_arena_reset(&arena);
    }
    dm_avro_schema_free(s);
    s = schema(REC);
    size_t big = 64 << 20;
    char *t = malloc(big + 64);
    size_t k = (size_t)sprintf(t, "{\"id\":7,\"s\":\"");
    memset(t + k, 'x', big);
    k += big;
    k += (size_t)sprintf(t + k, "\"}");
    CHECK_EQ_INT(strlen(rd(s, t, k)), 0);
    CHECK_EQ_INT(val.u.v[1].len, big);
    t[k - 2] = '\\'; /* now cut short inside an escape */
    CHECK_CONTAINS(rd(s, t, k - 1), "premature end of input");
    free(t);
    dm_avro_schema_free(s);
}

/* A union in plain JSON takes the branch the old path took. */
static void test_union_inference(void)
{
    dm_avro_schema_t *s = schema("[\"null\",\"long\",\"double\",\"string\",{\"type\":\"array\","
                                 "\"items\":\"long\"},{\"type\":\"map\",\"values\":\"string\"}]");
    REQUIRE(s);
    static const char *const texts[] = {"null",         "5",
                                        "5.5",          "\"x\"",
                                        "[1,2]",        "{\"a\":\"b\"}",
                                        "{\"long\":3}", "{\"string\":\"s\"}",
                                        "true",         "[1,\"x\"]"};
    static const int branches[] = {0, 1, 2, 3, 4, 5, 1, 3, -1, -1};
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        dm_error_t e1 = {0}, e2 = {0};
        dm_avro_value_t a, b;
        dm_err_t r1 = dm_avro_from_json_text(s->root, texts[i], strlen(texts[i]),
                                             DM_AVRO_JSON_PLAIN, &arena, &a, &e1);
        dm_err_t r2 = dm_avro_from_json_dom(s->root, texts[i], strlen(texts[i]), DM_AVRO_JSON_PLAIN,
                                            true, &arena, &b, &e2);
        CHECK_EQ_INT(!r1, !r2);
        CHECK_EQ_INT(r1 ? -1 : a.branch, branches[i]);
        if (!r1 && !r2) CHECK(dm_avro_value_equal(s->root, &a, &b));
    }
    dm_avro_schema_free(s);
}

int main(void)
{
    dm_arena_init(&arena, 0);
    RUN(test_escapes_and_utf8);
    RUN(test_numbers_at_limits);
    RUN(test_numbers_match_strtod);
    RUN(test_longs_match_strtoll);
    RUN(test_format_double_round_trips);
    RUN(test_structure_errors_name_where);
    RUN(test_depth_and_size);
    RUN(test_union_inference);
    dm_arena_destroy(&arena);
    return check_summary();
}
