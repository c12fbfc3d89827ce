/* tests/unit/test_log_uniform.c — uniform batches (DM_BATCH_ATTR_UNIFORM): when the encoder
 * sets the bit, and that decoding by the bit gives exactly what decoding the records one by
 * one gives, at every start offset and across the offset deltas' varint widths. */
#include "check.h"
#include "core/crc32c.h"
#include "log/batch.h"

#define MAXN 20000

static uint8_t bytes[1 << 16];

/* n records of one shape: key of kl bytes (-1 = null), value of vl bytes (-1 = null). */
static void shaped(dm_log_record_t *r, int n, int32_t kl, int32_t vl)
{
    for (int i = 0; i < n; i++)
        r[i] = (dm_log_record_t){.key = kl >= 0 ? bytes + i % 4096 : NULL,
                                 .key_len = kl,
                                 .value = vl >= 0 ? bytes + 7 * (i % 4096) : NULL,
                                 .value_len = vl};
}

static uint8_t encode(dm_buf_t *out, const dm_log_record_t *r, int n, dm_batch_comp_t comp)
{
    static dm_buf_t scratch = DM_BUF_INIT;
    dm_buf_reset(out);
    if (dm_batch_encode(out, &scratch, r, (size_t)n, comp, 0, 1700000000000, NULL)) return 0xff;
    dm_batch_set_base_offset(out->data, 1000);
    return out->data[17];
}

/* Sets or clears the bit and puts the CRC right, as a writer that decided otherwise would. */
static void set_uniform(dm_buf_t *out, bool on, dm_batch_hdr_t *h)
{
    out->data[17] = (uint8_t)(on ? out->data[17] | DM_BATCH_ATTR_UNIFORM
                                 : out->data[17] & ~DM_BATCH_ATTR_UNIFORM);
    dm_wr32(out->data + 12, dm_crc32c(0, out->data + 16, out->len - 16));
    dm_batch_parse_header(out->data, out->len, h);
}

static bool same_records(const dm_log_record_t *a, const dm_log_record_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (a[i].offset != b[i].offset || a[i].timestamp != b[i].timestamp ||
            a[i].key != b[i].key || a[i].key_len != b[i].key_len || a[i].value != b[i].value ||
            a[i].value_len != b[i].value_len || a[i].n_headers != b[i].n_headers ||
            a[i].headers != b[i].headers)
            return false;
    return true;
}

/* Decodes out from min_offset with the bit as encoded and without it (both decoders), and
 * checks the four agree. Returns the number of records. */
static size_t decode_both_ways(dm_buf_t *out, int64_t min_offset)
{
    dm_batch_hdr_t h;
    dm_batch_parse_header(out->data, out->len, &h);
    bool uniform = h.attributes & DM_BATCH_ATTR_UNIFORM;
    dm_arena_t a;
    dm_arena_init(&a, 0);
    dm_log_record_t *r[4] = {0};
    size_t n[4] = {0}, cap[4] = {0};
    bool crc_bad = true;
    REQUIRE(dm_batch_decode(out->data, &h, min_offset, &a, &r[0], &n[0], &cap[0], NULL) == 0);
    REQUIRE(dm_batch_check_decode(out->data, &h, min_offset, &a, &r[1], &n[1], &cap[1], &crc_bad,
                                  NULL) == 0);
    CHECK(!crc_bad);
    set_uniform(out, false, &h);
    REQUIRE(dm_batch_decode(out->data, &h, min_offset, &a, &r[2], &n[2], &cap[2], NULL) == 0);
    REQUIRE(dm_batch_check_decode(out->data, &h, min_offset, &a, &r[3], &n[3], &cap[3], &crc_bad,
                                  NULL) == 0);
    set_uniform(out, uniform, &h);
    for (int k = 1; k < 4; k++) {
        CHECK_EQ_INT(n[k], n[0]);
        CHECK(n[k] == n[0] && same_records(r[0], r[k], n[0]));
    }
    size_t got = n[0];
    dm_arena_destroy(&a);
    return got;
}

static void test_uniform_bit_set_when_it_holds(void)
{
    static dm_log_record_t r[MAXN];
    dm_buf_t out = DM_BUF_INIT;
    shaped(r, 1000, -1, 100);
    CHECK(encode(&out, r, 1000, DM_BATCH_COMP_NONE) & DM_BATCH_ATTR_UNIFORM);
    shaped(r, 1, 5, 0);
    CHECK(encode(&out, r, 1, DM_BATCH_COMP_NONE) & DM_BATCH_ATTR_UNIFORM);
    shaped(r, 300, 8, -1); /* tombstones */
    CHECK(encode(&out, r, 300, DM_BATCH_COMP_NONE) & DM_BATCH_ATTR_UNIFORM);

    shaped(r, 300, 8, 20);
    r[150].value_len = 21;
    CHECK(!(encode(&out, r, 300, DM_BATCH_COMP_NONE) & DM_BATCH_ATTR_UNIFORM));
    shaped(r, 300, 8, 20);
    r[299].key = NULL; /* a null key is not an empty one */
    CHECK(!(encode(&out, r, 300, DM_BATCH_COMP_NONE) & DM_BATCH_ATTR_UNIFORM));
    shaped(r, 300, 8, 20);
    dm_log_header_t hd = {"h", 1, bytes, 3};
    r[7].headers = &hd;
    r[7].n_headers = 1;
    CHECK(!(encode(&out, r, 300, DM_BATCH_COMP_NONE) & DM_BATCH_ATTR_UNIFORM));
    shaped(r, 300, 8, 20);
    r[299].timestamp = 1800000000000; /* one later timestamp */
    CHECK(!(encode(&out, r, 300, DM_BATCH_COMP_NONE) & DM_BATCH_ATTR_UNIFORM));
    shaped(r, 300, 8, 20);
    CHECK(!(encode(&out, r, 300, DM_BATCH_COMP_LZ4) & DM_BATCH_ATTR_UNIFORM));
    dm_buf_free(&out);
}

static void test_uniform_decode_matches_general(void)
{
    static dm_log_record_t r[MAXN];
    dm_buf_t out = DM_BUF_INIT;
    /* 20,000 records: offset deltas of one, two and three varint bytes */
    const int32_t shapes[][2] = {{-1, 3}, {0, 0}, {4, -1}, {-1, 200}};
    const int counts[] = {MAXN, 17000, 129, 1};
    const int64_t mins[] = {0,     1000,  1001,  1127,  1128,  1129, 17383,
                            17384, 17385, 20999, 21000, 21001, 99999};
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        int n = counts[s];
        shaped(r, n, shapes[s][0], shapes[s][1]);
        REQUIRE(encode(&out, r, n, DM_BATCH_COMP_NONE) & DM_BATCH_ATTR_UNIFORM);
        for (size_t m = 0; m < sizeof(mins) / sizeof(mins[0]); m++) {
            int64_t from = mins[m] < 1000 ? 1000 : mins[m];
            size_t want = from >= 1000 + n ? 0 : (size_t)(1000 + n - from);
            CHECK_EQ_INT(decode_both_ways(&out, mins[m]), want);
        }
    }
    /* what the records point at is what was produced */
    shaped(r, 500, 3, 9);
    encode(&out, r, 500, DM_BATCH_COMP_NONE);
    dm_batch_hdr_t h;
    dm_batch_parse_header(out.data, out.len, &h);
    dm_arena_t a;
    dm_arena_init(&a, 0);
    dm_log_record_t *got = NULL;
    size_t n = 0, cap = 0;
    REQUIRE(dm_batch_decode(out.data, &h, 0, &a, &got, &n, &cap, NULL) == 0);
    REQUIRE(n == 500);
    int bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += got[i].offset != 1000 + (int64_t)i || got[i].timestamp != 1700000000000 ||
               memcmp(got[i].key, r[i].key, 3) || memcmp(got[i].value, r[i].value, 9);
    CHECK_EQ_INT(bad, 0);
    dm_arena_destroy(&a);
    dm_buf_free(&out);
}

/* The bit on a batch whose records are not uniform (a writer's bug with a good CRC): the
 * records still decode the general way, and nothing points outside the batch. */
static void test_uniform_bit_that_does_not_hold(void)
{
    static dm_log_record_t r[400];
    dm_buf_t out = DM_BUF_INIT;
    dm_batch_hdr_t h;
    shaped(r, 400, 2, 30);
    r[200].value_len = 31;
    encode(&out, r, 400, DM_BATCH_COMP_NONE);
    set_uniform(&out, true, &h);
    CHECK_EQ_INT(decode_both_ways(&out, 0), 400);

    shaped(r, 400, 2, 30);
    r[3].timestamp = 1700000000005; /* two timestamps */
    encode(&out, r, 400, DM_BATCH_COMP_NONE);
    set_uniform(&out, true, &h);
    CHECK_EQ_INT(decode_both_ways(&out, 1010), 390);

    /* sizes that add up as if uniform: 31 + 29 instead of 30 + 30 */
    shaped(r, 400, 2, 30);
    r[1].value_len = 31;
    r[2].value_len = 29;
    encode(&out, r, 400, DM_BATCH_COMP_NONE);
    set_uniform(&out, true, &h);
    dm_arena_t a;
    dm_arena_init(&a, 0);
    dm_log_record_t *got = NULL;
    size_t n = 0, cap = 0;
    REQUIRE(dm_batch_decode(out.data, &h, 0, &a, &got, &n, &cap, NULL) == 0);
    int outside = 0;
    for (size_t i = 0; i < n; i++)
        outside += got[i].value < out.data || got[i].value + got[i].value_len > out.data + out.len;
    CHECK_EQ_INT(outside, 0);
    dm_arena_destroy(&a);
    dm_buf_free(&out);
}

int main(void)
{
    for (size_t i = 0; i < sizeof(bytes); i++)
        bytes[i] = (uint8_t)(i * 31 + 3);
    RUN(test_uniform_bit_set_when_it_holds);
    RUN(test_uniform_decode_matches_general);
    RUN(test_uniform_bit_that_does_not_hold);
    return check_summary();
}
