/* Unit tests of the mysql connector's binlog decoders, on byte sequences
 * written from the formats the MySQL documentation describes: binary JSON
 * (json_binary.h), GTID and PREVIOUS_GTIDS events, table maps with optional
 * metadata, row images with DECIMAL, TIME2 and DATETIME2. */
#include <string.h>

#include "check.h"
#include "connectors/mysql/my_binlog.h"
#include "connectors/mysql/my_internal.h"
#include "connectors/mysql/my_table.h"

static const char *json_text(const uint8_t *b, size_t n, dm_err_t *rc)
{
    static char out[512];
    dm_buf_t buf = DM_BUF_INIT;
    dm_error_t err = {0};
    *rc = dm_my_json_to_text(b, n, &buf, &err);
    snprintf(out, sizeof(out), "%.*s", (int)buf.len, buf.data ? (const char *)buf.data : "");
    if (*rc) snprintf(out, sizeof(out), "error: %s", err.message);
    dm_buf_free(&buf);
    return out;
}

/* {"a": 1, "b": [true, "xy"]}: a small object holding an inlined int16 and a
 * small array (an inlined literal and a string by offset). */
static void test_json_object_and_array(void)
{
    static const uint8_t doc[] = {
        0x00,                   /* small object */
        0x02, 0x00, 0x21, 0x00, /* 2 elements, 33 bytes */
        0x12, 0x00, 0x01, 0x00, /* key "a" at 18, 1 byte */
        0x13, 0x00, 0x01, 0x00, /* key "b" at 19 */
        0x05, 0x01, 0x00,       /* int16 1, inlined */
        0x02, 0x14, 0x00,       /* small array at 20 */
        'a',  'b',              /* keys */
        0x02, 0x00, 0x0d, 0x00, /* the array: 2 elements, 13 bytes */
        0x04, 0x01, 0x00,       /* literal true, inlined */
        0x0c, 0x0a, 0x00,       /* string at 10 */
        0x02, 'x',  'y',        /* length 2, "xy" */
    };
    dm_err_t rc;
    CHECK_STR_EQ(json_text(doc, sizeof(doc), &rc), "{\"a\":1,\"b\":[true,\"xy\"]}");
    CHECK_EQ_INT(rc, DM_OK);
    /* every prefix is refused, never read past */
    for (size_t n = 0; n < sizeof(doc); n++) {
        json_text(doc, n, &rc);
        CHECK(rc != DM_OK);
    }
}

static void test_json_scalars(void)
{
    dm_err_t rc;
    static const uint8_t dbl[] = {0x0b, 0, 0, 0, 0, 0, 0, 0x04, 0x40}; /* 2.5 */
    CHECK_STR_EQ(json_text(dbl, sizeof(dbl), &rc), "2.5");
    static const uint8_t i64[] = {0x09, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    CHECK_STR_EQ(json_text(i64, sizeof(i64), &rc), "-2");
    static const uint8_t u64[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    CHECK_STR_EQ(json_text(u64, sizeof(u64), &rc), "18446744073709551615");
    static const uint8_t nul[] = {0x04, 0x00};
    CHECK_STR_EQ(json_text(nul, sizeof(nul), &rc), "null");
    static const uint8_t str[] = {0x0c, 0x03, 'a', '"', 'b'};
    CHECK_STR_EQ(json_text(str, sizeof(str), &rc), "\"a\\\"b\"");
    /* a 200-byte string: its length takes two bytes (7 bits each) */
    uint8_t longstr[203] = {0x0c, 0xc8, 0x01};
    memset(longstr + 3, 'z', 200);
    CHECK_EQ_INT(strlen(json_text(longstr, sizeof(longstr), &rc)), 202);
    /* opaque DECIMAL(4,2): 12.34 and -12.34 */
    static const uint8_t dec[] = {0x0f, 0xf6, 0x04, 0x04, 0x02, 0x8c, 0x22};
    CHECK_STR_EQ(json_text(dec, sizeof(dec), &rc), "12.34");
    static const uint8_t neg[] = {0x0f, 0xf6, 0x04, 0x04, 0x02, 0x73, 0xdd};
    CHECK_STR_EQ(json_text(neg, sizeof(neg), &rc), "-12.34");
    /* opaque DATETIME: the packed form (ymd << 17 | hms) << 24 | micros */
    uint64_t ym = 2024 * 13 + 2, ymd = ym << 5 | 29, hms = 12 << 12 | 34 << 6 | 56;
    uint64_t packed = (ymd << 17 | hms) << 24 | 500000;
    uint8_t dt[12] = {0x0f, 12, 8};
    for (int i = 0; i < 8; i++)
        dt[3 + i] = (uint8_t)(packed >> (8 * i));
    CHECK_STR_EQ(json_text(dt, 11, &rc), "\"2024-02-29 12:34:56.500000\"");
    static const uint8_t bad[] = {0x42, 0x00};
    json_text(bad, sizeof(bad), &rc);
    CHECK_EQ_INT(rc, DM_ERR_CORRUPT);
}

/* A large array ([65536-wide offsets]) of an int32 (inlined when large). */
static void test_json_large_array(void)
{
    static const uint8_t doc[] = {
        0x03,                                  /* large array */
        0x01, 0,    0,    0,    0x0d, 0, 0, 0, /* 1 element, 13 bytes */
        0x07, 0xff, 0xff, 0xff, 0x7f,          /* int32 2147483647, inlined */
    };
    dm_err_t rc;
    CHECK_STR_EQ(json_text(doc, sizeof(doc), &rc), "[2147483647]");
}

static void test_gtid_mysql(void)
{
    static const uint8_t ev[] = {0x01, 0x3e, 0x11, 0xfa, 0x47, 0x71, 0xca, 0x11, 0xe1,
                                 0x9e, 0x33, 0xc8, 0x0a, 0xa9, 0x42, 0x95, 0x62, 23,
                                 0,    0,    0,    0,    0,    0,    0,    0x02};
    char out[80];
    dm_error_t err = {0};
    CHECK_EQ_INT(dm_my_gtid_mysql_decode(ev, sizeof(ev), out, sizeof(out), &err), DM_OK);
    CHECK_STR_EQ(out, "3e11fa47-71ca-11e1-9e33-c80aa9429562:23");
    CHECK_EQ_INT(dm_my_gtid_mysql_decode(ev, 20, out, sizeof(out), &err), DM_ERR_CORRUPT);
}

static void test_gtid_set(void)
{
    uint8_t ev[8 + 16 + 8 + 32] = {1};
    static const uint8_t sid[16] = {0x3e, 0x11, 0xfa, 0x47, 0x71, 0xca, 0x11, 0xe1,
                                    0x9e, 0x33, 0xc8, 0x0a, 0xa9, 0x42, 0x95, 0x62};
    memcpy(ev + 8, sid, 16);
    ev[24] = 2; /* intervals */
    ev[32] = 1; /* [1, 6) */
    ev[40] = 6;
    ev[48] = 7; /* [7, 8) */
    ev[56] = 8;
    dm_buf_t out = DM_BUF_INIT;
    dm_error_t err = {0};
    CHECK_EQ_INT(dm_my_gtid_set_decode(ev, sizeof(ev), &out, &err), DM_OK);
    const char *s;
    dm_buf_cstr(&out, &s);
    CHECK_STR_EQ(s, "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:7");
    dm_buf_reset(&out);
    CHECK_EQ_INT(dm_my_gtid_set_decode(ev, sizeof(ev) - 1, &out, &err), DM_ERR_CORRUPT);
    dm_buf_free(&out);
}

static void test_gtid_state(void)
{
    dm_my_gtid_state_t s;
    dm_error_t err = {0};
    CHECK_EQ_INT(dm_my_gtid_state_parse("1-2-30,0-1-7", &s, &err), DM_OK);
    CHECK(dm_my_gtid_state_set(&s, 0, 1, 8));
    char out[100];
    dm_my_gtid_state_text(&s, out, sizeof(out));
    CHECK_STR_EQ(out, "0-1-8,1-2-30");
    CHECK_EQ_INT(dm_my_gtid_state_parse("0-1", &s, &err), DM_ERR_INVALID);
    CHECK_CONTAINS(err.message, "domain-server-sequence");
    CHECK_EQ_INT(dm_my_gtid_state_parse("", &s, &err), DM_OK);
    CHECK_EQ_INT(s.n, 0);
}

/* A table map of shop.t (id INT UNSIGNED PRIMARY KEY, amount DECIMAL(5,2),
 * name VARCHAR(10) utf8mb4, at DATETIME(0), d TIME(0)) with FULL optional
 * metadata, and a WRITE_ROWS v1 event of one row. */
static const uint8_t table_map[] = {
    0x2a, 0,   0,    0,   0,   0,   0x01, 0x00, /* table id 42, flags */
    4,    's', 'h',  'o', 'p', 0,               /* db */
    1,    't', 0,                               /* table */
    5,                                          /* columns */
    3,    246, 15,   18,  19,                   /* LONG, NEWDECIMAL, VARCHAR, DATETIME2, TIME2 */
    6,                                          /* metadata bytes */
    5,    2,                                    /* decimal precision 5, scale 2 */
    40,   0,                                    /* varchar max 40 bytes */
    0,                                          /* datetime2 fsp 0 */
    0,                                          /* time2 fsp 0 */
    0x1e,                                       /* nullable: columns 1-4 */
    1,    1,   0x80,                            /* SIGNEDNESS: LONG unsigned, DECIMAL signed */
    3,    1,   45,                              /* COLUMN_CHARSET: utf8mb4 */
    4,    20,  2,    'i', 'd', 6,   'a',  'm',  'o', 'u', 'n',
    't',  4,   'n',  'a', 'm', 'e', 2,    'a',  't', 1,   'd', /* COLUMN_NAME */
    8,    1,   0,                                              /* SIMPLE_PRIMARY_KEY: column 0 */
};

static const uint8_t write_rows[] = {
    0x2a, 0,    0,    0,    0,    0, 0x01, 0x00, /* table id 42, flags STMT_END */
    5,    0x1f,                                  /* 5 columns, all present */
    0x00,                                        /* no nulls */
    0xff, 0xff, 0xff, 0xff,                      /* id 4294967295 */
    0x7f, 0xfc, 0xfa,             /* -3.05: the bytes of 003.05 (80 03 05) inverted */
    3,    'a',  'b',  'c',        /* name */
    0x99, 0xb2, 0xba, 0xc8, 0xb8, /* 2024-02-29 12:34:56 */
    0x7f, 0xff, 0xff,             /* TIME -00:00:01 */
};

static void test_table_map_and_row(void)
{
    dm_arena_t a;
    dm_arena_init(&a, 0);
    dm_my_table_map_t tm;
    dm_error_t err = {0};
    REQUIRE(dm_my_table_map_decode(table_map, sizeof(table_map), &a, &tm, &err) == DM_OK);
    CHECK_EQ_U64(tm.table_id, 42);
    CHECK_STR_EQ(tm.db, "shop");
    CHECK_STR_EQ(tm.table, "t");
    CHECK_EQ_INT(tm.n_cols, 5);
    CHECK(tm.has_names);
    CHECK_STR_EQ(tm.cols[1].name, "amount");
    CHECK(tm.cols[0].is_unsigned);
    CHECK(!tm.cols[1].is_unsigned);
    CHECK_EQ_INT(tm.cols[0].key_pos, 1);
    CHECK_EQ_INT(tm.cols[2].charset, 45);
    CHECK_EQ_INT(tm.cols[1].meta, 5 << 8 | 2);
    CHECK(!tm.cols[0].nullable && tm.cols[1].nullable);
    dm_my_rows_t rows;
    REQUIRE(dm_my_rows_decode(23, write_rows, sizeof(write_rows), &rows, &err) == DM_OK);
    CHECK_EQ_INT(rows.op, 'c');
    dm_my_value_t v[5];
    uint32_t missing;
    const uint8_t *p = rows.rows;
    dm_err_t rc = dm_my_row_decode(&tm, rows.present, &p, rows.end, &a, v, &missing, &err);
    if (rc) printf("    %s\n", err.message);
    REQUIRE(rc == DM_OK);
    CHECK(p == rows.end);
    CHECK_EQ_INT(missing, 0);
    CHECK_EQ_U64(v[0].u, 4294967295u);
    CHECK_EQ_INT(v[1].kind, DM_MYV_DECIMAL);
    CHECK_STR_EQ(v[1].s, "-3.05");
    CHECK_EQ_INT(v[2].n, 3);
    CHECK_EQ_INT(v[3].kind, DM_MYV_DATETIME);
    CHECK_EQ_U64((uint64_t)v[3].i, 1709210096000000ULL);
    CHECK_EQ_INT(v[4].kind, DM_MYV_TIME);
    CHECK_EQ_INT(v[4].i, -1000000);
    /* every shorter row image is refused */
    for (size_t n = 11; n < sizeof(write_rows); n++) {
        p = rows.rows;
        CHECK(dm_my_row_decode(&tm, rows.present, &p, write_rows + n, &a, v, &missing, &err) ==
              DM_ERR_CORRUPT);
    }
    /* and every shorter table map */
    for (size_t n = 0; n < sizeof(table_map) - 3; n++) {
        dm_my_table_map_t t2;
        dm_err_t r2 = dm_my_table_map_decode(table_map, n, &a, &t2, &err);
        CHECK(r2 != DM_OK || !t2.has_names || t2.cols[0].key_pos == 0);
    }
    /* the schema of the model, and an event encoded with it */
    dm_my_table_t t;
    REQUIRE(dm_my_table_from_map(&tm, &t, &err) == DM_OK);
    char *vj, *kj;
    REQUIRE(dm_my_table_schema_json(&t, &vj, &kj, &err) == DM_OK);
    CHECK_CONTAINS(vj, "\"name\":\"amount\",\"type\":[\"null\",{\"type\":\"bytes\","
                       "\"logicalType\":\"decimal\",\"precision\":5,\"scale\":2}]");
    CHECK_CONTAINS(vj, "\"name\":\"id\",\"type\":\"long\"");
    CHECK_CONTAINS(kj, "\"name\":\"id\",\"type\":\"long\"");
    REQUIRE(dm_avro_schema_parse(vj, strlen(vj), &t.value_schema, &err) == DM_OK);
    REQUIRE(dm_avro_schema_parse(kj, strlen(kj), &t.key_schema, &err) == DM_OK);
    dm_my_event_t ev = {.op = 'c', .after = v, .gtid = "0-1-5", .file = "binlog.000001"};
    dm_buf_t key = DM_BUF_INIT, value = DM_BUF_INIT;
    bool has_key;
    CHECK_EQ_INT(dm_my_event_encode(&t, &ev, &a, &key, &has_key, &value, &err), DM_OK);
    CHECK(has_key);
    CHECK(value.len > 30);
    /* a zero date in the key is refused with the column's name */
    dm_my_value_t z[5];
    memcpy(z, v, sizeof(z));
    z[0].kind = DM_MYV_NULL;
    ev.after = z;
    CHECK_EQ_INT(dm_my_event_encode(&t, &ev, &a, &key, &has_key, &value, &err), DM_ERR_INVALID);
    CHECK_CONTAINS(err.message, "key column id");
    /* a table map without names (binlog_row_metadata=MINIMAL) is refused */
    dm_my_table_t t3;
    tm.has_names = false;
    CHECK_EQ_INT(dm_my_table_from_map(&tm, &t3, &err), DM_ERR_CONFIG);
    CHECK_CONTAINS(err.message, "binlog_row_metadata");
    free(vj);
    free(kj);
    dm_buf_free(&key);
    dm_buf_free(&value);
    dm_my_table_clear(&t);
    dm_arena_destroy(&a);
}

/* Snapshot rows come as text (SELECT), changes as binlog values: both must
 * give the same values and the same key text, or a chunk row changed in the
 * window would not be dropped. */
static void test_text_values_match_binlog(void)
{
    dm_arena_t a;
    dm_arena_init(&a, 0);
    dm_my_table_map_t tm;
    dm_error_t err = {0};
    REQUIRE(dm_my_table_map_decode(table_map, sizeof(table_map), &a, &tm, &err) == DM_OK);
    dm_my_rows_t rows;
    REQUIRE(dm_my_rows_decode(23, write_rows, sizeof(write_rows), &rows, &err) == DM_OK);
    dm_my_value_t bin[5], txt[5];
    uint32_t missing;
    const uint8_t *p = rows.rows;
    REQUIRE(dm_my_row_decode(&tm, rows.present, &p, rows.end, &a, bin, &missing, &err) == DM_OK);
    const char *text[5] = {"4294967295", "-3.05", "abc", "2024-02-29 12:34:56", "-00:00:01"};
    for (int i = 0; i < 5; i++)
        CHECK_EQ_INT(dm_my_value_from_text(&tm.cols[i], text[i], strlen(text[i]), &txt[i], &err),
                     DM_OK);
    CHECK_EQ_U64(txt[0].u, bin[0].u);
    CHECK_EQ_INT(txt[1].n, bin[1].n);
    CHECK(!memcmp(txt[1].s, bin[1].s, bin[1].n));
    CHECK_EQ_U64((uint64_t)txt[3].i, (uint64_t)bin[3].i);
    CHECK_EQ_INT(txt[4].i, bin[4].i);
    dm_my_table_t t;
    REQUIRE(dm_my_table_from_map(&tm, &t, &err) == DM_OK);
    dm_buf_t k1 = DM_BUF_INIT, k2 = DM_BUF_INIT;
    CHECK(dm_my_key_text(&t, bin, &k1) && dm_my_key_text(&t, txt, &k2));
    CHECK(k1.len == k2.len && !memcmp(k1.data, k2.data, k1.len));
    /* zero dates and ENUM / SET labels */
    dm_my_col_t date = {.type = DM_MYT_DATE, .name = "d"};
    dm_my_value_t v;
    dm_my_value_from_text(&date, "0000-00-00", 10, &v, &err);
    CHECK_EQ_INT(v.kind, DM_MYV_ZERO);
    const char *labels[] = {"a", "b", "c"};
    dm_my_col_t set = {.type = DM_MYT_SET, .name = "s", .symbols = labels, .n_symbols = 3};
    dm_my_value_from_text(&set, "a,c", 3, &v, &err);
    CHECK_EQ_U64(v.u, 5);
    dm_my_col_t en = {.type = DM_MYT_ENUM, .name = "e", .symbols = labels, .n_symbols = 3};
    dm_my_value_from_text(&en, "b", 1, &v, &err);
    CHECK_EQ_U64(v.u, 2);
    dm_buf_free(&k1);
    dm_buf_free(&k2);
    dm_my_table_clear(&t);
    dm_arena_destroy(&a);
}

int main(void)
{
    RUN(test_json_object_and_array);
    RUN(test_json_scalars);
    RUN(test_json_large_array);
    RUN(test_gtid_mysql);
    RUN(test_gtid_set);
    RUN(test_gtid_state);
    RUN(test_table_map_and_row);
    RUN(test_text_values_match_binlog);
    return check_summary();
}
