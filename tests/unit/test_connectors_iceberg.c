/* tests/unit/test_connectors_iceberg.c — the Iceberg sink's building blocks
 * against hand-computed bytes and the spec's test vectors. */
#include "check.h"
#include "connectors/iceberg/parquet.h"
#include "connectors/iceberg/table.h"
#include "connectors/iceberg/thrift.h"

static void check_bytes(const dm_buf_t *b, const uint8_t *want, size_t n)
{
    CHECK_EQ_INT(b->len, n);
    for (size_t i = 0; i < n && i < b->len; i++)
        if (b->data[i] != want[i]) {
            printf("    byte %zu: 0x%02x != 0x%02x\n", i, b->data[i], want[i]);
            CHECK(b->data[i] == want[i]);
        }
}

/* Headers carry the delta from the previous field id. Field 1 (i32 1), 2
 * (i64 -1), 3 ("ab"), 4 (true), 20 (struct {1: i32 150})
 * which needs the long header form, 21 (list<i32> [1, 2]), stop. */
static void test_thrift_compact(void)
{
    dm_buf_t b = DM_BUF_INIT;
    dm_thrift_writer_t t;
    dm_thrift_writer_init(&t, &b);
    dm_thrift_i32(&t, 1, 1);
    dm_thrift_i64(&t, 2, -1);
    dm_thrift_string(&t, 3, "ab");
    dm_thrift_bool(&t, 4, true);
    dm_thrift_struct_begin(&t, 20);
    dm_thrift_i32(&t, 1, 150);
    dm_thrift_struct_end(&t);
    dm_thrift_list_begin(&t, 21, DM_THRIFT_I32, 2);
    dm_thrift_i32_elem(&t, 1);
    dm_thrift_i32_elem(&t, 2);
    CHECK_EQ_INT(dm_thrift_writer_finish(&t), DM_OK);
    static const uint8_t want[] = {0x15, 0x02, 0x16, 0x01, 0x18, 0x02, 'a',  'b',  0x11, 0x0c,
                                   0x28, 0x15, 0xac, 0x02, 0x00, 0x19, 0x25, 0x02, 0x04, 0x00};
    check_bytes(&b, want, sizeof(want));
    dm_buf_free(&b);
}

/* A list of 20 structs uses the long list header; a negative delta (field 1
 * after field 5) the long field header. */
static void test_thrift_long_forms(void)
{
    dm_buf_t b = DM_BUF_INIT;
    dm_thrift_writer_t t;
    dm_thrift_writer_init(&t, &b);
    dm_thrift_i32(&t, 5, 0);
    dm_thrift_i32(&t, 1, -2);
    dm_thrift_list_begin(&t, 2, DM_THRIFT_STRUCT, 20);
    for (int i = 0; i < 20; i++) {
        dm_thrift_elem_struct_begin(&t);
        dm_thrift_struct_end(&t);
    }
    dm_thrift_bool(&t, 3, false);
    CHECK_EQ_INT(dm_thrift_writer_finish(&t), DM_OK);
    uint8_t want[64] = {0x55, 0x00, 0x05, 0x02, 0x03, 0x19, 0xfc, 0x14};
    size_t n = 8;
    for (int i = 0; i < 20; i++)
        want[n++] = 0x00;
    want[n++] = 0x12;
    want[n++] = 0x00;
    check_bytes(&b, want, n);
    dm_buf_free(&b);
}

/* The Parquet spec's bit-packing example (0..7 at width 3), an RLE run, and
 * a mix that pads its last group. */
static void test_rle_hybrid(void)
{
    dm_buf_t b = DM_BUF_INIT;
    uint32_t seq[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    CHECK_EQ_INT(dm_pq_rle_encode(seq, 8, 3, &b), DM_OK);
    check_bytes(&b, (const uint8_t[]){0x03, 0x88, 0xc6, 0xfa}, 4);
    dm_buf_reset(&b);
    uint32_t ones[10] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    CHECK_EQ_INT(dm_pq_rle_encode(ones, 10, 1, &b), DM_OK);
    check_bytes(&b, (const uint8_t[]){0x14, 0x01}, 2);
    dm_buf_reset(&b);
    uint32_t mix[5] = {0, 1, 0, 1, 1};
    CHECK_EQ_INT(dm_pq_rle_encode(mix, 5, 1, &b), DM_OK);
    check_bytes(&b, (const uint8_t[]){0x03, 0x1a}, 2);
    dm_buf_reset(&b);
    /* 3 packed values, then a run of 300 sevens at width 9 (2-byte value). */
    uint32_t v[303] = {1, 2, 3};
    for (int i = 3; i < 303; i++)
        v[i] = 7;
    CHECK_EQ_INT(dm_pq_rle_encode(v, 303, 9, &b), DM_OK);
    /* The packed group swallows 5 of the sevens (groups are 8 wide): 1,2,3,7,7,7,7,7
     * at 9 bits = 9 bytes; then a run of 295 = varint(590) = 0xce 0x04, value 7 0. */
    CHECK_EQ_INT(b.len, 1 + 9 + 2 + 2);
    CHECK_EQ_INT(b.data[0], 0x03);
    CHECK_EQ_INT(b.data[10], 0xce);
    CHECK_EQ_INT(b.data[11], 0x04);
    CHECK_EQ_INT(b.data[12], 7);
    CHECK_EQ_INT(b.data[13], 0);
    dm_buf_free(&b);
}

static dm_pq_value_t i32(int32_t v)
{
    return (dm_pq_value_t){.u.i32 = v};
}
static dm_pq_value_t i64(int64_t v)
{
    return (dm_pq_value_t){.u.i64 = v};
}
static dm_pq_value_t str(const char *s)
{
    return (dm_pq_value_t){.u.s = {(const uint8_t *)s, (uint32_t)strlen(s)}};
}

/* The Iceberg spec's Appendix B hash vectors. */
static void test_murmur3_spec_vectors(void)
{
    dm_pq_value_t v = i32(34);
    CHECK_EQ_INT(dm_ice_hash_value(DM_ICE_INT, &v), 2017239379);
    v = i64(34);
    CHECK_EQ_INT(dm_ice_hash_value(DM_ICE_LONG, &v), 2017239379);
    v = i32(17486); /* 2017-11-16 */
    CHECK_EQ_INT(dm_ice_hash_value(DM_ICE_DATE, &v), -653330422);
    v = i64(1510871468000000LL); /* 2017-11-16T22:31:08 */
    CHECK_EQ_INT(dm_ice_hash_value(DM_ICE_TIMESTAMPTZ, &v), -2047944441);
    v = str("iceberg");
    CHECK_EQ_INT(dm_ice_hash_value(DM_ICE_STRING, &v), 1210000089);
    static const uint8_t b[4] = {0, 1, 2, 3};
    v = (dm_pq_value_t){.u.s = {b, 4}};
    CHECK_EQ_INT(dm_ice_hash_value(DM_ICE_BINARY, &v), -188683207);
}

static int32_t apply_i32(const char *transform, dm_ice_type_t src, dm_pq_value_t in)
{
    dm_ice_part_field_t pf = {0};
    dm_ice_transform_parse(transform, &pf.transform, &pf.param, NULL);
    dm_pq_value_t out;
    dm_ice_transform_apply(&pf, src, &in, &out);
    return out.u.i32;
}

static void test_transforms(void)
{
    CHECK_EQ_INT(apply_i32("bucket[100]", DM_ICE_INT, i32(34)), 79);
    CHECK_EQ_INT(apply_i32("bucket[100]", DM_ICE_LONG, i64(34)), 79);
    /* 2017-12-01 10:12:55.038194 */
    CHECK_EQ_INT(apply_i32("hour", DM_ICE_TIMESTAMP, i64(1512123175038194LL)), 420034);
    CHECK_EQ_INT(apply_i32("hour", DM_ICE_TIMESTAMP, i64(-1)), -1);
    CHECK_EQ_INT(apply_i32("day", DM_ICE_TIMESTAMP, i64(-1)), -1);
    CHECK_EQ_INT(apply_i32("day", DM_ICE_TIMESTAMPTZ, i64(1512123175038194LL)), 17501);
    CHECK_EQ_INT(apply_i32("month", DM_ICE_DATE, i32(17486)), 574);
    CHECK_EQ_INT(apply_i32("year", DM_ICE_DATE, i32(17486)), 47);
    CHECK_EQ_INT(apply_i32("month", DM_ICE_DATE, i32(-1)), -1);
    CHECK_EQ_INT(apply_i32("year", DM_ICE_DATE, i32(-1)), -1);
    CHECK_EQ_INT(apply_i32("truncate[10]", DM_ICE_INT, i32(-1)), -10);
    CHECK_EQ_INT(apply_i32("truncate[10]", DM_ICE_INT, i32(19)), 10);
    dm_ice_part_field_t pf = {.transform = DM_ICE_TRUNCATE, .param = 3};
    dm_pq_value_t in = str("iceberg"), out;
    dm_ice_transform_apply(&pf, DM_ICE_STRING, &in, &out);
    CHECK_EQ_INT(out.u.s.len, 3);
    in = str("\xc3\xa9t\xc3\xa9s"); /* "étés": code points, not bytes */
    dm_ice_transform_apply(&pf, DM_ICE_STRING, &in, &out);
    CHECK_EQ_INT(out.u.s.len, 5);
    dm_ice_transform_t t;
    int32_t param;
    CHECK_EQ_INT(dm_ice_transform_parse("bucket[0]", &t, &param, NULL), DM_ERR_UNSUPPORTED);
    CHECK_EQ_INT(dm_ice_transform_parse("void", &t, &param, NULL), DM_ERR_UNSUPPORTED);
}

static void test_partition_spec(void)
{
    dm_ice_field_t fields[] = {{1, "id", DM_ICE_LONG, 0, true, 0, 0, 0},
                               {2, "ts", DM_ICE_TIMESTAMPTZ, 0, false, 0, 0, 0},
                               {3, "name", DM_ICE_STRING, 0, false, 0, 0, 0},
                               {4, "amount", DM_ICE_DOUBLE, 0, false, 0, 0, 0}};
    dm_ice_schema_t schema = {.fields = fields, .n = 4};
    dm_ice_spec_t spec;
    dm_error_t err = {0};
    REQUIRE(dm_ice_spec_parse("day(ts), bucket(16, id), truncate(2, name)", &schema, &spec, &err) ==
            DM_OK);
    CHECK_EQ_INT(spec.n, 3);
    CHECK_STR_EQ(spec.fields[0].name, "ts_day");
    CHECK_EQ_INT(spec.fields[1].field_id, 1001);
    CHECK_EQ_INT(spec.fields[1].param, 16);
    dm_pq_value_t vals[3] = {i32(17486), i32(7), str("a/b")};
    dm_buf_t path = DM_BUF_INIT;
    CHECK_EQ_INT(dm_ice_partition_path(&spec, &schema, vals, &path), DM_OK);
    const char *p;
    dm_buf_cstr(&path, &p);
    CHECK_STR_EQ(p, "ts_day=2017-11-16/id_bucket=7/name_truncate=a%2Fb");
    dm_buf_free(&path);
    json_t *j = dm_ice_spec_to_json(&spec);
    dm_ice_spec_t back;
    CHECK_EQ_INT(dm_ice_spec_from_json(j, &back, &err), DM_OK);
    CHECK_EQ_INT(back.n, 3);
    CHECK_EQ_INT(back.fields[2].transform, DM_ICE_TRUNCATE);
    json_decref(j);
    dm_ice_spec_free(&back);
    dm_ice_spec_free(&spec);
    CHECK_EQ_INT(dm_ice_spec_parse("bucket(4, amount)", &schema, &spec, &err), DM_ERR_CONFIG);
    CHECK_CONTAINS(err.message, "amount");
    CHECK_EQ_INT(dm_ice_spec_parse("day(nope)", &schema, &spec, &err), DM_ERR_CONFIG);
    CHECK_CONTAINS(err.message, "nope");
}

int main(void)
{
    RUN(test_murmur3_spec_vectors);
    RUN(test_transforms);
    RUN(test_partition_spec);
    RUN(test_thrift_compact);
    RUN(test_thrift_long_forms);
    RUN(test_rle_hybrid);
    return check_summary();
}
