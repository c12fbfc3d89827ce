/* tests/unit/test_connectors_iceberg.c — the Iceberg sink's building blocks
 * against hand-computed bytes and the spec's test vectors. */
#include "check.h"
#include "connectors/iceberg/parquet.h"
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

int main(void)
{
    RUN(test_thrift_compact);
    RUN(test_thrift_long_forms);
    RUN(test_rle_hybrid);
    return check_summary();
}
