/* tests/unit/test_connectors_iceberg_sort.c — Iceberg sort orders: sort_by
 * parsing against a schema, the order's metadata JSON, typed comparisons
 * (numbers, NaN, decimals, strings, booleans, nulls first/last) and the
 * stability of the sort. */
#include <math.h>
#include <string.h>

#include "check.h"
#include "connectors/iceberg/rows.h"
#include "connectors/iceberg/sort.h"
#include "connectors/iceberg/table.h"
#include "schema/dm_avro.h"

static const char *AVRO =
    "{\"type\":\"record\",\"name\":\"R\",\"fields\":["
    "{\"name\":\"a\",\"type\":\"long\"},{\"name\":\"s\",\"type\":[\"null\",\"string\"]},"
    "{\"name\":\"st\",\"type\":{\"type\":\"record\",\"name\":\"S\",\"fields\":["
    "{\"name\":\"x\",\"type\":\"int\"}]}},"
    "{\"name\":\"l\",\"type\":{\"type\":\"array\",\"items\":\"int\"}},"
    "{\"name\":\"d\",\"type\":\"double\"}]}";

static void with_schema(void (*fn)(const dm_ice_schema_t *))
{
    dm_avro_schema_t *a = NULL;
    REQUIRE(dm_avro_schema_parse(AVRO, strlen(AVRO), &a, NULL) == DM_OK);
    dm_ice_schema_t s;
    dm_error_t err = {0};
    REQUIRE(dm_ice_schema_from_avro(a->root, 1, &s, &err) == DM_OK);
    fn(&s);
    dm_ice_schema_free(&s);
    dm_avro_schema_free(a);
}

static void parse_ok(const dm_ice_schema_t *s)
{
    dm_ice_sort_t o;
    dm_error_t err = {0};
    REQUIRE(dm_ice_sort_parse("s, a desc nulls first,d  ASC NULLS LAST", s, &o, &err) == DM_OK);
    CHECK_EQ_INT(o.n, 3);
    json_t *j = dm_ice_sort_fields_json(&o);
    char *text = json_dumps(j, JSON_COMPACT);
    CHECK_STR_EQ(text, "[{\"transform\":\"identity\",\"source-id\":2,\"direction\":\"asc\","
                       "\"null-order\":\"nulls-first\"},{\"transform\":\"identity\",\"source-id\":"
                       "1,\"direction\":\"desc\",\"null-order\":\"nulls-first\"},{\"transform\":"
                       "\"identity\",\"source-id\":7,\"direction\":\"asc\",\"null-order\":"
                       "\"nulls-last\"}]");
    free(text);
    json_decref(j);
    dm_ice_sort_free(&o);
    /* desc alone puts nulls last, as Iceberg's default. */
    REQUIRE(dm_ice_sort_parse("a desc", s, &o, &err) == DM_OK);
    CHECK(o.f[0].desc && !o.f[0].nulls_first);
    dm_ice_sort_free(&o);
    REQUIRE(dm_ice_sort_parse("", s, &o, &err) == DM_OK);
    CHECK_EQ_INT(o.n, 0);
}

static void parse_bad(const dm_ice_schema_t *s)
{
    static const char *bad[][2] = {{"zz", "zz"},      {"a, st", "st"},  {"l", "l is a struct"},
                                   {"x", "x is not"}, {"a up", "'up'"}, {"a nulls", "nulls"},
                                   {"a,,s", "empty"}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        dm_ice_sort_t o;
        dm_error_t err = {0};
        CHECK_EQ_INT(dm_ice_sort_parse(bad[i][0], s, &o, &err), DM_ERR_CONFIG);
        CHECK_CONTAINS(err.message, bad[i][1]);
    }
}

static void test_parse(void)
{
    with_schema(parse_ok);
    with_schema(parse_bad);
}

static int cmp1(dm_ice_type_t t, bool desc, bool nulls_first, dm_pq_value_t a, dm_pq_value_t b)
{
    dm_ice_sort_field_t f = {.col = 0, .type = t, .desc = desc, .nulls_first = nulls_first};
    dm_ice_sort_t o = {&f, 1};
    return dm_ice_sort_compare(&o, &a, &b);
}

static dm_pq_value_t str(const char *s)
{
    return (dm_pq_value_t){.u.s = {(const uint8_t *)s, (uint32_t)strlen(s)}};
}

static void test_compare(void)
{
    dm_pq_value_t null = {.null = true};
    CHECK(cmp1(DM_ICE_LONG, false, true, (dm_pq_value_t){.u.i64 = -5},
               (dm_pq_value_t){.u.i64 = 3}) < 0);
    CHECK(cmp1(DM_ICE_LONG, true, true, (dm_pq_value_t){.u.i64 = -5}, (dm_pq_value_t){.u.i64 = 3}) >
          0);
    CHECK(cmp1(DM_ICE_DATE, false, true, (dm_pq_value_t){.u.i32 = 19000},
               (dm_pq_value_t){.u.i32 = -1}) > 0);
    CHECK(cmp1(DM_ICE_TIMESTAMPTZ, false, true, (dm_pq_value_t){.u.i64 = INT64_MIN},
               (dm_pq_value_t){.u.i64 = INT64_MAX}) < 0);
    CHECK(cmp1(DM_ICE_BOOLEAN, false, true, (dm_pq_value_t){.u.b = false},
               (dm_pq_value_t){.u.b = true}) < 0);
    /* NaN after everything, -0 before +0. */
    CHECK(cmp1(DM_ICE_DOUBLE, false, true, (dm_pq_value_t){.u.d = NAN},
               (dm_pq_value_t){.u.d = INFINITY}) > 0);
    CHECK(cmp1(DM_ICE_DOUBLE, false, true, (dm_pq_value_t){.u.d = -0.0},
               (dm_pq_value_t){.u.d = 0.0}) < 0);
    CHECK(cmp1(DM_ICE_FLOAT, false, true, (dm_pq_value_t){.u.f = -1.5f},
               (dm_pq_value_t){.u.f = -0.5f}) < 0);
    /* Strings bytewise (UTF-8 order), a prefix first. */
    CHECK(cmp1(DM_ICE_STRING, false, true, str("ab"), str("abc")) < 0);
    CHECK(cmp1(DM_ICE_STRING, false, true, str("Z"), str("a")) < 0);
    CHECK(cmp1(DM_ICE_STRING, false, true, str("\xc3\xa9"), str("z")) > 0);
    CHECK_EQ_INT(cmp1(DM_ICE_STRING, false, true, str("x"), str("x")), 0);
    /* Decimals: 16 big-endian two's complement bytes; -1 < 1. */
    dm_pq_value_t m1 = {0}, p1 = {0};
    memset(m1.u.dec, 0xff, 16);
    p1.u.dec[15] = 1;
    CHECK(cmp1(DM_ICE_DECIMAL, false, true, m1, p1) < 0);
    /* Nulls as declared, whatever the direction. */
    CHECK(cmp1(DM_ICE_LONG, false, true, null, (dm_pq_value_t){.u.i64 = 1}) < 0);
    CHECK(cmp1(DM_ICE_LONG, false, false, null, (dm_pq_value_t){.u.i64 = 1}) > 0);
    CHECK(cmp1(DM_ICE_LONG, true, false, null, (dm_pq_value_t){.u.i64 = 1}) > 0);
    CHECK(cmp1(DM_ICE_LONG, true, true, null, (dm_pq_value_t){.u.i64 = 1}) < 0);
    CHECK_EQ_INT(cmp1(DM_ICE_LONG, true, true, null, null), 0);
}

/* Rows (key, arrival) sorted by key: equal keys keep their arrival order. */
static void test_stable(void)
{
    enum { N = 1001 };
    static dm_pq_value_t rows[N][2];
    const dm_pq_value_t *p[N];
    for (int i = 0; i < N; i++) {
        rows[i][0] = (dm_pq_value_t){.u.i64 = (i * 7919) % 13};
        rows[i][1] = (dm_pq_value_t){.u.i64 = i};
        p[i] = rows[i];
    }
    dm_ice_sort_field_t f = {.col = 0, .type = DM_ICE_LONG, .desc = true};
    dm_ice_sort_t o = {&f, 1};
    REQUIRE(dm_ice_sort_rows(&o, p, N) == DM_OK);
    int bad = 0;
    for (int i = 1; i < N; i++) {
        if (p[i - 1][0].u.i64 < p[i][0].u.i64) bad++;
        if (p[i - 1][0].u.i64 == p[i][0].u.i64 && p[i - 1][1].u.i64 > p[i][1].u.i64) bad++;
    }
    CHECK_EQ_INT(bad, 0);
}

int main(void)
{
    RUN(test_parse);
    RUN(test_compare);
    RUN(test_stable);
    return check_summary();
}
