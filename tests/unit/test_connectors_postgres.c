/* Unit tests for the postgres connector's pure parts: the pgoutput decoder on
 * hand-built messages, type mapping, text-to-Avro values and event encoding. */
#include "check.h"
#include "connectors/postgres/pg_table.h"
#include "connectors/postgres/pg_types.h"
#include "connectors/postgres/pgoutput.h"
#include "schema/dm_avro.h"

/* ---- message builder ---------------------------------------------------------- */

static void be(dm_buf_t *b, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--)
        dm_buf_append_u8(b, (uint8_t)(v >> (8 * i)));
}

static void str(dm_buf_t *b, const char *s)
{
    dm_buf_append(b, s, strlen(s) + 1);
}

/* A tuple from a spec string: one char per column (n, u, t); t values from vals. */
static void tuple(dm_buf_t *b, const char *kinds, const char *const *vals)
{
    be(b, strlen(kinds), 2);
    for (const char *k = kinds; *k; k++) {
        dm_buf_append_u8(b, (uint8_t)*k);
        if (*k == 't') {
            be(b, strlen(*vals), 4);
            dm_buf_append(b, *vals, strlen(*vals));
            vals++;
        }
    }
}

static dm_arena_t arena;

static void test_begin_commit(void)
{
    dm_buf_t b = DM_BUF_INIT;
    dm_buf_append_u8(&b, 'B');
    be(&b, 0x16B3748, 8);
    be(&b, 700000000000000LL, 8);
    be(&b, 745, 4);
    dm_pgoutput_msg_t m;
    dm_error_t err = {0};
    REQUIRE(dm_pgoutput_decode(b.data, b.len, &arena, &m, &err) == DM_OK);
    CHECK(m.type == 'B');
    CHECK_EQ_U64(m.lsn, 0x16B3748);
    CHECK_EQ_INT(m.ts_us, 700000000000000LL);
    CHECK_EQ_INT(m.xid, 745);
    dm_buf_reset(&b);
    dm_buf_append_u8(&b, 'C');
    dm_buf_append_u8(&b, 0);
    be(&b, 0x100, 8);
    be(&b, 0x180, 8);
    be(&b, 5, 8);
    REQUIRE(dm_pgoutput_decode(b.data, b.len, &arena, &m, &err) == DM_OK);
    CHECK(m.type == 'C');
    CHECK_EQ_U64(m.lsn, 0x100);
    CHECK_EQ_U64(m.end_lsn, 0x180);
    /* Every shorter prefix is truncated, never read past. */
    for (size_t n = 0; n < b.len; n++)
        CHECK(dm_pgoutput_decode(b.data, n, &arena, &m, &err) == DM_ERR_TRUNCATED);
    dm_buf_free(&b);
}

static void relation(dm_buf_t *b)
{
    dm_buf_append_u8(b, 'R');
    be(b, 16384, 4);
    str(b, "public");
    str(b, "orders");
    dm_buf_append_u8(b, 'f');
    be(b, 3, 2);
    dm_buf_append_u8(b, 1);
    str(b, "id");
    be(b, 23, 4);
    be(b, 0xffffffff, 4);
    dm_buf_append_u8(b, 0);
    str(b, "note");
    be(b, 25, 4);
    be(b, 0xffffffff, 4);
    dm_buf_append_u8(b, 0);
    str(b, "amount");
    be(b, 1700, 4);
    be(b, (10 << 16 | 2) + 4, 4);
}

static void test_relation(void)
{
    dm_buf_t b = DM_BUF_INIT;
    relation(&b);
    dm_pgoutput_msg_t m;
    dm_error_t err = {0};
    REQUIRE(dm_pgoutput_decode(b.data, b.len, &arena, &m, &err) == DM_OK);
    CHECK_EQ_INT(m.relid, 16384);
    CHECK_STR_EQ(m.nspname, "public");
    CHECK_STR_EQ(m.relname, "orders");
    CHECK(m.replident == 'f');
    REQUIRE(m.n_cols == 3);
    CHECK(m.cols[0].key && !m.cols[1].key);
    CHECK_STR_EQ(m.cols[2].name, "amount");
    CHECK_EQ_INT(m.cols[2].type_oid, 1700);
    CHECK_EQ_INT(m.cols[2].typmod, (10 << 16 | 2) + 4);
    CHECK_EQ_INT(m.cols[1].typmod, -1);
    for (size_t n = 1; n < b.len; n++)
        CHECK(dm_pgoutput_decode(b.data, n, &arena, &m, &err) == DM_ERR_TRUNCATED);
    dm_buf_free(&b);
}

static void test_insert_update_delete(void)
{
    dm_buf_t b = DM_BUF_INIT;
    dm_pgoutput_msg_t m;
    dm_error_t err = {0};
    /* INSERT */
    dm_buf_append_u8(&b, 'I');
    be(&b, 16384, 4);
    dm_buf_append_u8(&b, 'N');
    tuple(&b, "tnt", (const char *const[]){"7", "12.50"});
    REQUIRE(dm_pgoutput_decode(b.data, b.len, &arena, &m, &err) == DM_OK);
    CHECK(m.type == 'I' && m.old_kind == 0);
    REQUIRE(m.new_tuple.n == 3);
    CHECK_STR_EQ(m.new_tuple.cols[0].text, "7");
    CHECK(m.new_tuple.cols[1].kind == 'n');
    CHECK_EQ_INT(m.new_tuple.cols[2].len, 5);
    /* UPDATE with a whole old row (REPLICA IDENTITY FULL) and an unchanged TOAST column */
    dm_buf_reset(&b);
    dm_buf_append_u8(&b, 'U');
    be(&b, 16384, 4);
    dm_buf_append_u8(&b, 'O');
    tuple(&b, "ttt", (const char *const[]){"7", "long text", "12.50"});
    dm_buf_append_u8(&b, 'N');
    tuple(&b, "tut", (const char *const[]){"7", "13.00"});
    REQUIRE(dm_pgoutput_decode(b.data, b.len, &arena, &m, &err) == DM_OK);
    CHECK(m.type == 'U' && m.old_kind == 'O');
    CHECK_STR_EQ(m.old_tuple.cols[1].text, "long text");
    CHECK(m.new_tuple.cols[1].kind == 'u');
    CHECK_STR_EQ(m.new_tuple.cols[2].text, "13.00");
    /* UPDATE without old tuple (identity DEFAULT, key unchanged) */
    dm_buf_reset(&b);
    dm_buf_append_u8(&b, 'U');
    be(&b, 16384, 4);
    dm_buf_append_u8(&b, 'N');
    tuple(&b, "tnn", (const char *const[]){"8"});
    REQUIRE(dm_pgoutput_decode(b.data, b.len, &arena, &m, &err) == DM_OK);
    CHECK(m.old_kind == 0 && m.new_tuple.n == 3);
    /* DELETE with the key only */
    dm_buf_reset(&b);
    dm_buf_append_u8(&b, 'D');
    be(&b, 16384, 4);
    dm_buf_append_u8(&b, 'K');
    tuple(&b, "tnn", (const char *const[]){"8"});
    REQUIRE(dm_pgoutput_decode(b.data, b.len, &arena, &m, &err) == DM_OK);
    CHECK(m.type == 'D' && m.old_kind == 'K');
    CHECK_STR_EQ(m.old_tuple.cols[0].text, "8");
    /* A column kind that is not n/u/t is refused with its position */
    b.data[b.len - 1] = 'x';
    CHECK(dm_pgoutput_decode(b.data, b.len, &arena, &m, &err) == DM_ERR_CORRUPT);
    CHECK_CONTAINS(err.message, "column 2");
    /* DELETE with a new tuple marker is corrupt */
    dm_buf_reset(&b);
    dm_buf_append_u8(&b, 'D');
    be(&b, 16384, 4);
    dm_buf_append_u8(&b, 'N');
    tuple(&b, "t", (const char *const[]){"8"});
    CHECK(dm_pgoutput_decode(b.data, b.len, &arena, &m, &err) == DM_ERR_CORRUPT);
    dm_buf_free(&b);
}

static void test_truncate_and_unknown(void)
{
    dm_buf_t b = DM_BUF_INIT;
    dm_pgoutput_msg_t m;
    dm_error_t err = {0};
    dm_buf_append_u8(&b, 'T');
    be(&b, 2, 4);
    dm_buf_append_u8(&b, 2);
    be(&b, 16384, 4);
    be(&b, 16390, 4);
    REQUIRE(dm_pgoutput_decode(b.data, b.len, &arena, &m, &err) == DM_OK);
    CHECK_EQ_INT(m.n_relids, 2);
    CHECK_EQ_INT(m.relids[1], 16390);
    CHECK_EQ_INT(m.truncate_options, 2);
    /* a huge relation count with few bytes is truncated, not a huge allocation */
    b.data[1] = 0x7f;
    CHECK(dm_pgoutput_decode(b.data, b.len, &arena, &m, &err) == DM_ERR_TRUNCATED);
    uint8_t q = 'Q';
    CHECK(dm_pgoutput_decode(&q, 1, &arena, &m, &err) == DM_ERR_CORRUPT);
    dm_buf_free(&b);
}

/* ---- types and values ----------------------------------------------------------- */

static dm_avro_value_t conv(uint32_t oid, int32_t typmod, const char *text, dm_err_t want)
{
    dm_pg_type_t t;
    dm_avro_value_t v = {0};
    dm_error_t err = {0};
    CHECK(dm_pg_type_builtin(oid, typmod, &t));
    dm_err_t rc = dm_pg_value_from_text(&t, text, strlen(text), &arena, &v, &err);
    if (rc != want) printf("    %u '%s': %s\n", oid, text, err.message);
    CHECK_EQ_INT(rc, want);
    return v;
}

static void test_scalars(void)
{
    CHECK_EQ_INT(conv(21, -1, "-32768", DM_OK).u.i, -32768);
    conv(21, -1, "32768", DM_ERR_INVALID);
    CHECK_EQ_INT(conv(23, -1, "2147483647", DM_OK).u.i, 2147483647);
    CHECK_EQ_INT(conv(20, -1, "-9223372036854775808", DM_OK).u.l, INT64_MIN);
    conv(20, -1, "12x", DM_ERR_INVALID);
    CHECK(conv(16, -1, "t", DM_OK).u.b == true);
    conv(16, -1, "yes", DM_ERR_INVALID);
    CHECK(conv(701, -1, "1.5e300", DM_OK).u.d == 1.5e300);
    CHECK(conv(700, -1, "0.25", DM_OK).u.f == 0.25f);
    dm_avro_value_t nan = conv(701, -1, "NaN", DM_OK);
    CHECK(nan.u.d != nan.u.d);
    CHECK(conv(701, -1, "-Infinity", DM_OK).u.d < -1e308);
    dm_avro_value_t s = conv(25, -1, "héllo", DM_OK);
    CHECK(s.type == DM_AVRO_STRING && s.len == 6);
    dm_avro_value_t by = conv(17, -1, "\\x00ff10", DM_OK);
    CHECK(by.len == 3 && by.u.p[1] == 0xff);
    conv(17, -1, "\\x0g", DM_ERR_INVALID);
    CHECK_EQ_INT(conv(1082, -1, "1970-01-02", DM_OK).u.i, 1);
    CHECK_EQ_INT(conv(1082, -1, "2000-03-01", DM_OK).u.i, 11017);
    CHECK_EQ_INT(conv(1082, -1, "1969-12-31", DM_OK).u.i, -1);
    CHECK_EQ_INT(conv(1082, -1, "infinity", DM_OK).u.i, INT32_MAX);
    CHECK_EQ_INT(conv(1082, -1, "0001-01-01 BC", DM_OK).u.i, -719528);
    conv(1082, -1, "2020-13-01", DM_ERR_INVALID);
    CHECK_EQ_INT(conv(1083, -1, "01:02:03.5", DM_OK).u.l, 3723500000LL);
    CHECK_EQ_INT(conv(1114, -1, "1970-01-01 00:00:01.000001", DM_OK).u.l, 1000001);
    CHECK_EQ_INT(conv(1184, -1, "1970-01-01 02:00:00+02", DM_OK).u.l, 0);
    CHECK_EQ_INT(conv(1184, -1, "1970-01-01 00:00:00-05:30", DM_OK).u.l, 19800000000LL);
    CHECK_EQ_INT(conv(1184, -1, "-infinity", DM_OK).u.l, INT64_MIN);
    dm_avro_value_t iv = conv(1186, -1, "P1Y2M-3DT4H5M6.25S", DM_OK);
    REQUIRE(iv.type == DM_AVRO_RECORD);
    CHECK_EQ_INT(iv.u.v[0].u.i, 14);
    CHECK_EQ_INT(iv.u.v[1].u.i, -3);
    CHECK_EQ_INT(iv.u.v[2].u.l, 14706250000LL);
    CHECK_EQ_INT(conv(1186, -1, "PT-0.5S", DM_OK).u.v[2].u.l, -500000);
    conv(1186, -1, "1 day", DM_ERR_INVALID);
    dm_avro_value_t u = conv(2950, -1, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", DM_OK);
    CHECK(u.type == DM_AVRO_STRING && u.len == 36);
}

static void test_decimal(void)
{
    int32_t tm = (10 << 16 | 2) + 4;
    dm_avro_value_t d = conv(1700, tm, "12.5", DM_OK); /* 1250 = 0x04e2 */
    REQUIRE(d.type == DM_AVRO_BYTES && d.len == 2);
    CHECK(d.u.p[0] == 0x04 && d.u.p[1] == 0xe2);
    d = conv(1700, tm, "-1.28", DM_OK); /* -128 = 0x80 */
    CHECK(d.len == 1 && d.u.p[0] == 0x80);
    d = conv(1700, tm, "1.28", DM_OK); /* 128 = 0x0080 */
    CHECK(d.len == 2 && d.u.p[0] == 0x00 && d.u.p[1] == 0x80);
    d = conv(1700, tm, "0", DM_OK);
    CHECK(d.len == 1 && d.u.p[0] == 0);
    d = conv(1700, tm, "-0.01", DM_OK);
    CHECK(d.len == 1 && d.u.p[0] == 0xff);
    conv(1700, tm, "NaN", DM_ERR_INVALID);
    conv(1700, tm, "123456789.00", DM_ERR_INVALID); /* 9 integer digits > 10 - 2 */
    dm_pg_type_t t;
    CHECK(dm_pg_type_builtin(1700, -1, &t) && t.kind == DM_PGK_STRING);
    /* a 38-digit value */
    int32_t big = (38 << 16 | 0) + 4;
    d = conv(1700, big, "-99999999999999999999999999999999999999", DM_OK);
    CHECK(d.len == 16 && (d.u.p[0] & 0x80));
}

static void test_arrays(void)
{
    dm_avro_value_t a = conv(1007, -1, "{1,NULL,-3}", DM_OK);
    REQUIRE(a.type == DM_AVRO_ARRAY && a.len == 3);
    CHECK(a.u.v[0].branch == 1 && a.u.v[0].u.i == 1);
    CHECK(a.u.v[1].type == DM_AVRO_NULL && a.u.v[1].branch == 0);
    CHECK_EQ_INT(a.u.v[2].u.i, -3);
    a = conv(1009, -1, "{\"a b\",\"x\\\"y\",\"NULL\",plain}", DM_OK);
    REQUIRE(a.len == 4);
    CHECK(a.u.v[0].len == 3 && !memcmp(a.u.v[0].u.p, "a b", 3));
    CHECK(a.u.v[1].len == 3 && !memcmp(a.u.v[1].u.p, "x\"y", 3));
    CHECK(a.u.v[2].type == DM_AVRO_STRING);
    CHECK_EQ_INT(conv(1007, -1, "{}", DM_OK).len, 0);
    CHECK_EQ_INT(conv(1007, -1, "[0:1]={5,6}", DM_OK).len, 2);
    conv(1007, -1, "{{1,2},{3,4}}", DM_ERR_UNSUPPORTED);
    conv(1007, -1, "{1,x}", DM_ERR_INVALID);
    conv(1007, -1, "1,2", DM_ERR_INVALID);
}

/* ---- events ----------------------------------------------------------------------- */

static void test_event_encode(void)
{
    dm_pg_column_t cols[4] = {
        {.name = "id", .type_oid = 23, .typmod = -1, .key_pos = 1},
        {.name = "note", .type_oid = 25, .typmod = -1},
        {.name = "when", .type_oid = 1186, .typmod = -1},
        {.name = "2nd col", .type_oid = 1187, .typmod = -1},
    };
    for (int i = 0; i < 4; i++)
        REQUIRE(dm_pg_type_builtin(cols[i].type_oid, cols[i].typmod, &cols[i].type));
    int key[1] = {0};
    dm_pg_table_t t = {.schema = "public",
                       .name = "orders",
                       .cols = cols,
                       .n_cols = 4,
                       .key = key,
                       .n_key = 1,
                       .value_id = 7,
                       .key_id = 8};
    char *vj, *kj;
    dm_error_t err = {0};
    REQUIRE(dm_pg_table_schema_json(&t, "shop", &vj, &kj, &err) == DM_OK);
    CHECK_CONTAINS(vj, "\"_2nd_col\"");
    REQUIRE(dm_avro_schema_parse(vj, strlen(vj), &t.value_schema, &err) == DM_OK);
    REQUIRE(dm_avro_schema_parse(kj, strlen(kj), &t.key_schema, &err) == DM_OK);
    dm_pgoutput_datum_t after[4] = {
        {'t', 2, "42"}, {'u', 0, NULL}, {'t', 3, "P1D"}, {'t', 11, "{PT1S,NULL}"}};
    dm_pgoutput_datum_t before[4] = {
        {'t', 2, "42"}, {'n', 0, NULL}, {'n', 0, NULL}, {'n', 0, NULL}};
    dm_pg_event_t ev = {.op = 'u',
                        .before = before,
                        .after = after,
                        .db = "shop",
                        .lsn = 0x1234,
                        .commit_lsn = 0x2000,
                        .txid = 9,
                        .commit_ms = 5,
                        .now_ms = 6};
    dm_buf_t k = DM_BUF_INIT, v = DM_BUF_INIT;
    bool has_key;
    dm_err_t erc = dm_pg_event_encode(&t, &ev, &arena, &k, &has_key, &v, &err);
    if (erc) printf("    %s\n", err.message);
    REQUIRE(erc == DM_OK);
    CHECK(has_key);
    CHECK(v.data[0] == 0 && v.data[4] == 7 && k.data[4] == 8);
    dm_avro_value_t out;
    REQUIRE(dm_avro_decode_node(t.value_schema->root, v.data + 5, v.len - 5, NULL, &arena, &out,
                                &err) == DM_OK);
    dm_buf_t j = DM_BUF_INIT;
    REQUIRE(dm_avro_to_json(t.value_schema->root, &out, DM_AVRO_JSON_PLAIN, &j, &err) == DM_OK);
    const char *js;
    dm_buf_cstr(&j, &js);
    CHECK_CONTAINS(js, "\"op\":\"u\"");
    CHECK_CONTAINS(js, "\"lsn\":4660");
    CHECK_CONTAINS(js, "\"unchanged\":[\"note\"]");
    CHECK_CONTAINS(js, "\"days\":1");
    /* A key column without a value is an error naming it. */
    after[0].kind = 'u';
    dm_buf_reset(&v);
    dm_buf_reset(&k);
    CHECK(dm_pg_event_encode(&t, &ev, &arena, &k, &has_key, &v, &err) == DM_ERR_INVALID);
    CHECK_CONTAINS(err.message, "key column id");
    /* A bad value names table and column. */
    after[0] = (dm_pgoutput_datum_t){'t', 3, "4x2"};
    CHECK(dm_pg_event_encode(&t, &ev, &arena, &k, &has_key, &v, &err) == DM_ERR_INVALID);
    CHECK_CONTAINS(err.message, "public.orders column id");
    dm_buf_t kt = DM_BUF_INIT;
    after[0] = (dm_pgoutput_datum_t){'t', 2, "42"};
    CHECK(dm_pg_row_key_text(&t, after, &kt) && kt.len == 2);
    dm_buf_free(&kt);
    dm_buf_free(&j);
    dm_buf_free(&k);
    dm_buf_free(&v);
    dm_avro_schema_free(t.value_schema);
    dm_avro_schema_free(t.key_schema);
    free(vj);
    free(kj);
}

int main(void)
{
    dm_arena_init(&arena, 0);
    RUN(test_begin_commit);
    RUN(test_relation);
    RUN(test_insert_update_delete);
    RUN(test_truncate_and_unknown);
    RUN(test_scalars);
    RUN(test_decimal);
    RUN(test_arrays);
    RUN(test_event_encode);
    dm_arena_destroy(&arena);
    return check_summary();
}
