/* Unit tests for projected decoding's skip runs (schema/codec.c): a record
 * whose unwanted fields are skipped in one tight loop must accept and reject
 * exactly what full decoding accepts and rejects, and name the same byte and
 * field when it rejects; full decoding (with its jump-free nullable string)
 * must agree with the plan-free dm_avro_decode_node. Random records, valid and broken, of every
 * simple type and of unions of them; the seed is printed and DM_SKIP_SEED replays it. */
#include <time.h>

#include "check.h"
#include "core/varint.h"
#include "schema/dm_avro.h"

/* run 1: l..e, wanted k1, run 2: u..s2 (ends with a union), wanted k2, tail */
static const char *schema_json =
    "{\"type\":\"record\",\"name\":\"R\",\"fields\":["
    "{\"name\":\"l\",\"type\":\"long\"},{\"name\":\"s\",\"type\":\"string\"},"
    "{\"name\":\"d\",\"type\":\"double\"},{\"name\":\"f\",\"type\":\"float\"},"
    "{\"name\":\"n\",\"type\":\"null\"},{\"name\":\"i\",\"type\":\"int\"},"
    "{\"name\":\"b\",\"type\":\"boolean\"},{\"name\":\"x\",\"type\":{\"type\":\"fixed\","
    "\"name\":\"X\",\"size\":3}},{\"name\":\"e\",\"type\":{\"type\":\"enum\",\"name\":\"E\","
    "\"symbols\":[\"A\",\"B\",\"C\"]}},"
    "{\"name\":\"k1\",\"type\":\"int\"},"
    "{\"name\":\"u\",\"type\":[\"null\",\"string\",\"int\",\"long\",\"boolean\",\"double\","
    "\"E\",\"X\"]},{\"name\":\"by\",\"type\":\"bytes\"},{\"name\":\"s2\",\"type\":[\"null\","
    "\"string\"]},"
    "{\"name\":\"k2\",\"type\":\"long\"},"
    "{\"name\":\"t1\",\"type\":\"int\"},{\"name\":\"t2\",\"type\":\"string\"}]}";

static uint64_t rng;
static uint64_t rnd(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return rng;
}

/* Appends a varint: usually a fitting value, sometimes one at the edges
 * (5-byte ints in and out of range, 10-byte and overlong varints). */
static size_t put_long(uint8_t *o, int64_t v)
{
    return dm_varint_encode_u64(dm_zigzag_encode64(v), o);
}

static int64_t some_long(bool is_int)
{
    switch (rnd() % 8) {
    case 0: return is_int ? INT32_MAX : INT64_MAX;
    case 1: return is_int ? INT32_MIN : INT64_MIN;
    case 2: return is_int ? (int64_t)INT32_MAX + 1 : -1; /* out of range for int */
    case 3: return (int64_t)(rnd() % 300000) - 150000;
    default: return (int64_t)(rnd() % 100);
    }
}

static size_t put_string(uint8_t *o)
{
    int64_t len = rnd() % 6 == 0 ? 64 + (int64_t)(rnd() % 100) : (int64_t)(rnd() % 20);
    if (rnd() % 40 == 0) len = -1 - (int64_t)(rnd() % 3); /* negative length */
    size_t n = put_long(o, len);
    for (int64_t k = 0; k < len; k++)
        o[n++] = (uint8_t)('a' + k % 26);
    return n;
}

static size_t put_value(uint8_t *o, const dm_avro_node_t *t)
{
    size_t n = 0;
    switch (t->type) {
    case DM_AVRO_NULL: return 0;
    case DM_AVRO_BOOLEAN: o[0] = rnd() % 30 == 0 ? 2 : (uint8_t)(rnd() & 1); return 1;
    case DM_AVRO_INT: return put_long(o, some_long(true));
    case DM_AVRO_LONG: return put_long(o, some_long(false));
    case DM_AVRO_FLOAT: memset(o, 0x41, 4); return 4;
    case DM_AVRO_DOUBLE: memset(o, 0x42, 8); return 8;
    case DM_AVRO_FIXED: memset(o, 0x43, t->size); return t->size;
    case DM_AVRO_BYTES:
    case DM_AVRO_STRING: return put_string(o);
    case DM_AVRO_ENUM: return put_long(o, (int64_t)(rnd() % (t->n_symbols + 1)));
    case DM_AVRO_UNION: {
        uint32_t b = (uint32_t)(rnd() % (t->n_branches + (rnd() % 20 == 0)));
        n = put_long(o, b);
        if (b < t->n_branches) n += put_value(o + n, t->branches[b]);
        return n;
    }
    default: return 0;
    }
}

/* The part of an error message that names the byte and the field. */
static void where(const char *msg, char *out, size_t cap)
{
    const char *e = strstr(msg, "): ");
    size_t n = e ? (size_t)(e - msg) : strlen(msg);
    if (n >= cap) n = cap - 1;
    memcpy(out, msg, n);
    out[n] = '\0';
}

static void test_skip_runs_match_full_decoding(void)
{
    dm_avro_schema_t *s = NULL;
    REQUIRE(dm_avro_schema_parse(schema_json, strlen(schema_json), &s, NULL) == DM_OK);
    const char *paths[] = {"k1", "k2"};
    dm_avro_codec_t *full = NULL, *proj = NULL;
    REQUIRE(dm_avro_codec_new(s, NULL, NULL, 0, &full, NULL) == DM_OK);
    REQUIRE(dm_avro_codec_new(s, NULL, paths, 2, &proj, NULL) == DM_OK);
    const char *seed_env = getenv("DM_SKIP_SEED");
    rng = seed_env ? strtoull(seed_env, NULL, 0) : (uint64_t)time(NULL) * 2654435761u | 1;
    if (!rng) rng = 1; /* xorshift stays at zero */
    printf("    seed %llu (replay with DM_SKIP_SEED=%llu)\n", (unsigned long long)rng,
           (unsigned long long)rng);
    const dm_avro_node_t *root = s->root;
    int k1 = dm_avro_field_index(root, "k1"), k2 = dm_avro_field_index(root, "k2");
    dm_arena_t a;
    dm_arena_init(&a, 0);
    int ok = 0, bad = 0, mismatched = 0;
    for (int round = 0; round < 20000; round++) {
        static uint8_t buf[4096];
        size_t len = 0;
        for (uint32_t i = 0; i < root->n_fields; i++)
            len += put_value(buf + len, root->fields[i].type);
        if (rnd() % 4 == 0) len = (size_t)(rnd() % (len + 1)); /* truncated */
        if (rnd() % 4 == 0 && len) buf[rnd() % len] = (uint8_t)rnd();
        dm_avro_value_t vf, vp;
        dm_error_t ef = {0}, ep = {0};
        size_t uf = 0, up = 0;
        dm_err_t rf = dm_avro_decode(full, buf, len, &uf, &a, &vf, &ef);
        dm_err_t rp = dm_avro_decode(proj, buf, len, &up, &a, &vp, &ep);
        /* the plan-free decoder is the reference for full decoding */
        dm_avro_value_t vn;
        dm_error_t en = {0};
        size_t un = 0;
        dm_err_t rn = dm_avro_decode_node(root, buf, len, &un, &a, &vn, &en);
        if (rn != rf || (rf == DM_OK && (un != uf || !dm_avro_value_equal(root, &vn, &vf)))) {
            printf("    full rc %d (%s), node rc %d (%s)\n", rf, ef.message, rn, en.message);
            if (++mismatched > 5) break;
        }
        bool same = rf == rp;
        if (same && rf == DM_OK) {
            ok++;
            same = uf == up && vp.len == root->n_fields &&
                   dm_avro_value_equal(root->fields[k1].type, &vf.u.v[k1], &vp.u.v[k1]) &&
                   dm_avro_value_equal(root->fields[k2].type, &vf.u.v[k2], &vp.u.v[k2]) &&
                   vp.u.v[0].type == DM_AVRO_ABSENT;
            /* with the end known, it stops after k2 and must agree */
            dm_avro_value_t vl;
            same = same && dm_avro_decode(proj, buf, len, NULL, &a, &vl, NULL) == DM_OK &&
                   dm_avro_value_equal(root->fields[k2].type, &vf.u.v[k2], &vl.u.v[k2]);
        } else if (same) {
            bad++;
            char wf[256], wp[256];
            where(ef.message, wf, sizeof(wf));
            where(ep.message, wp, sizeof(wp));
            same = strcmp(wf, wp) == 0;
            if (!same) printf("    full: %s\n    proj: %s\n", ef.message, ep.message);
        } else {
            printf("    full rc %d (%s), projected rc %d (%s)\n", rf, ef.message, rp, ep.message);
        }
        if (!same && ++mismatched > 5) break;
        dm_arena_reset(&a);
    }
    CHECK_EQ_INT(mismatched, 0);
    CHECK(ok > 100 && bad > 100); /* both sides of the contract were exercised */
    dm_arena_destroy(&a);
    dm_avro_codec_free(full);
    dm_avro_codec_free(proj);
    dm_avro_schema_free(s);
}

/* Records of primitives only decode through the flat loop (dec_flat); it
 * must accept, reject and name errors exactly as the general loop does,
 * which dm_avro_decode_node stands for here. */
static const char *flat_json =
    "{\"type\":\"record\",\"name\":\"F\",\"fields\":["
    "{\"name\":\"l\",\"type\":\"long\"},{\"name\":\"s\",\"type\":\"string\"},"
    "{\"name\":\"d\",\"type\":\"double\"},{\"name\":\"f\",\"type\":\"float\"},"
    "{\"name\":\"i\",\"type\":\"int\"},{\"name\":\"b\",\"type\":\"boolean\"},"
    "{\"name\":\"o\",\"type\":[\"null\",\"string\"]},{\"name\":\"by\",\"type\":\"bytes\"},"
    "{\"name\":\"k\",\"type\":\"int\"},{\"name\":\"t\",\"type\":\"string\"}]}";

static void test_flat_records_match_general(void)
{
    dm_avro_schema_t *s = NULL;
    REQUIRE(dm_avro_schema_parse(flat_json, strlen(flat_json), &s, NULL) == DM_OK);
    const char *paths[] = {"s", "o", "k"};
    dm_avro_codec_t *full = NULL, *proj = NULL;
    REQUIRE(dm_avro_codec_new(s, NULL, NULL, 0, &full, NULL) == DM_OK);
    REQUIRE(dm_avro_codec_new(s, NULL, paths, 3, &proj, NULL) == DM_OK);
    const dm_avro_node_t *root = s->root;
    int wanted[] = {1, 6, 8};
    dm_arena_t a;
    dm_arena_init(&a, 0);
    int ok = 0, bad = 0, mismatched = 0;
    for (int round = 0; round < 20000 && mismatched <= 5; round++) {
        static uint8_t buf[4096];
        size_t len = 0;
        for (uint32_t i = 0; i < root->n_fields; i++)
            len += put_value(buf + len, root->fields[i].type);
        if (rnd() % 4 == 0) len = (size_t)(rnd() % (len + 1)); /* truncated */
        if (rnd() % 4 == 0 && len) buf[rnd() % len] = (uint8_t)rnd();
        dm_avro_value_t vf, vn, vp;
        dm_error_t ef = {0}, en = {0};
        size_t uf = 0, un = 0;
        dm_err_t rf = dm_avro_decode(full, buf, len, &uf, &a, &vf, &ef);
        dm_err_t rn = dm_avro_decode_node(root, buf, len, &un, &a, &vn, &en);
        bool same = rf == rn;
        if (same && rf == DM_OK) {
            ok++;
            same = uf == un && dm_avro_value_equal(root, &vn, &vf);
        } else if (same) {
            bad++;
            char wf[256], wn[256];
            where(ef.message, wf, sizeof(wf));
            where(en.message, wn, sizeof(wn));
            same = strcmp(wf, wn) == 0;
        }
        /* with the end known it stops after k: what it decodes must agree */
        if (same && dm_avro_decode(proj, buf, len, NULL, &a, &vp, NULL) == DM_OK) {
            same = rn != DM_OK || vp.u.v[0].type == DM_AVRO_ABSENT;
            for (int w = 0; w < 3 && same && rn == DM_OK; w++)
                same = dm_avro_value_equal(root->fields[wanted[w]].type, &vn.u.v[wanted[w]],
                                           &vp.u.v[wanted[w]]);
        } else if (same) {
            same = rn != DM_OK; /* the prefix failed, so must the whole */
        }
        if (!same) {
            printf("    flat rc %d (%s), node rc %d (%s)\n", rf, ef.message, rn, en.message);
            mismatched++;
        }
        dm_arena_reset(&a);
    }
    CHECK_EQ_INT(mismatched, 0);
    CHECK(ok > 100 && bad > 100);
    dm_arena_destroy(&a);
    dm_avro_codec_free(full);
    dm_avro_codec_free(proj);
    dm_avro_schema_free(s);
}

int main(void)
{
    RUN(test_skip_runs_match_full_decoding);
    RUN(test_flat_records_match_general);
    return check_summary();
}
