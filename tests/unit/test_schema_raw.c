/* Unit tests for raw fields of a codec (dm_avro_codec_new_raw): a field kept
 * as its bytes must hold exactly the bytes that encoding its decoded value
 * gives, on random records, and bad bytes must fail with the same error as a
 * codec that decodes everything. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "schema/dm_avro.h"

#include "test_raw_util.h"

/* Every field raw (the flat loop cannot take the record and array: the
 * general loop does) and a projection with the flat loop: each raw field's
 * bytes are its decoded value encoded, and the whole record re-encodes to
 * its input. */
static void test_raw_fields_are_the_encoded_bytes(void)
{
    const char *all[] = {"n",   "id",    "name", "amount", "flag", "note",
                         "big", "inner", "tags", "f",      "opt"};
    /* up to big: no record or array to skip, so the flat loop runs */
    const char *paths[] = {"n", "id", "name", "amount", "flag", "note", "big"};
    const char *raw_some[] = {"n", "id", "name", "flag", "note", "big"};
    dm_avro_codec_t *full, *raw_all, *full_p, *raw_p;
    dm_error_t err = {0};
    REQUIRE(dm_avro_codec_new(schema, NULL, NULL, 0, &full, &err) == DM_OK);
    REQUIRE(dm_avro_codec_new_raw(schema, NULL, NULL, 0, all, 11, &raw_all, &err) == DM_OK);
    REQUIRE(dm_avro_codec_new(schema, NULL, paths, 7, &full_p, &err) == DM_OK);
    REQUIRE(dm_avro_codec_new_raw(schema, NULL, paths, 7, raw_some, 6, &raw_p, &err) == DM_OK);
    dm_arena_t a;
    dm_arena_init(&a, 0);
    dm_buf_t in = DM_BUF_INIT, out = DM_BUF_INIT, one = DM_BUF_INIT;
    int bad = 0, encoded = 0;
    for (int r = 0; r < 3000; r++) {
        dm_arena_reset(&a);
        dm_buf_reset(&in);
        dm_avro_value_t v = random_record(&a), d, dr;
        REQUIRE(dm_avro_encode(schema->root, &v, &in, &err) == DM_OK);
        const dm_avro_codec_t *fc = r % 2 ? full : full_p, *rc = r % 2 ? raw_all : raw_p;
        REQUIRE(dm_avro_decode(fc, in.data, in.len, NULL, &a, &d, &err) == DM_OK);
        REQUIRE(dm_avro_decode(rc, in.data, in.len, NULL, &a, &dr, &err) == DM_OK);
        for (uint32_t i = 0; i < d.len; i++) {
            const dm_avro_value_t *fv = &d.u.v[i], *rv = &dr.u.v[i];
            if (rv->type != DM_AVRO_ENCODED) {
                bad += !dm_avro_value_equal(schema->root->fields[i].type, fv, rv);
                continue;
            }
            encoded++;
            dm_buf_reset(&one);
            REQUIRE(dm_avro_encode(schema->root->fields[i].type, fv, &one, &err) == DM_OK);
            bad += one.len != rv->len || memcmp(one.data, rv->u.p, one.len) != 0;
        }
        if (r % 2) { /* whole: encodes back to the input, one copy for all */
            dm_buf_reset(&out);
            REQUIRE(dm_avro_encode(schema->root, &dr, &out, &err) == DM_OK);
            bad += out.len != in.len || memcmp(out.data, in.data, in.len) != 0;
        }
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(encoded, 1500 * 11 + 1500 * 6); /* every raw field came out as bytes */
    dm_buf_free(&in);
    dm_buf_free(&out);
    dm_buf_free(&one);
    dm_arena_destroy(&a);
    dm_avro_codec_free(full);
    dm_avro_codec_free(raw_all);
    dm_avro_codec_free(full_p);
    dm_avro_codec_free(raw_p);
}

/* Truncated and corrupted records: the raw codec accepts exactly what the
 * decoding one accepts and names the same error. */
static void test_raw_fields_fail_as_decoding(void)
{
    /* the general loop (a record to skip), then the flat one */
    const char *paths[] = {"id", "name", "note", "inner", "f", "opt"};
    const char *raw[] = {"id", "name", "note", "inner", "opt"};
    const char *flat_paths[] = {"n", "id", "name", "amount", "flag", "note", "big"};
    const char *flat_raw[] = {"n", "id", "name", "amount", "flag", "note"};
    dm_avro_codec_t *full[2], *rawc[2];
    dm_error_t err = {0};
    REQUIRE(dm_avro_codec_new(schema, NULL, paths, 6, &full[0], &err) == DM_OK);
    REQUIRE(dm_avro_codec_new_raw(schema, NULL, paths, 6, raw, 5, &rawc[0], &err) == DM_OK);
    REQUIRE(dm_avro_codec_new(schema, NULL, flat_paths, 7, &full[1], &err) == DM_OK);
    REQUIRE(dm_avro_codec_new_raw(schema, NULL, flat_paths, 7, flat_raw, 6, &rawc[1], &err) ==
            DM_OK);
    dm_arena_t a;
    dm_arena_init(&a, 0);
    dm_buf_t in = DM_BUF_INIT;
    int differ = 0, failed = 0;
    for (int r = 0; r < 5000; r++) {
        dm_arena_reset(&a);
        dm_buf_reset(&in);
        dm_avro_value_t v = random_record(&a), d;
        REQUIRE(dm_avro_encode(schema->root, &v, &in, &err) == DM_OK);
        size_t len = in.len;
        if (r % 2)
            len = rnd() % in.len;
        else
            for (int k = 0; k < 3; k++)
                in.data[rnd() % in.len] = (uint8_t)rnd();
        dm_error_t e1 = {0}, e2 = {0};
        size_t c1 = 0, c2 = 0;
        bool lazy = r % 3 != 0; /* with and without the caller knowing the end */
        int which = (r / 2) % 2;
        dm_err_t r1 = dm_avro_decode(full[which], in.data, len, lazy ? NULL : &c1, &a, &d, &e1);
        dm_err_t r2 = dm_avro_decode(rawc[which], in.data, len, lazy ? NULL : &c2, &a, &d, &e2);
        failed += r1 != DM_OK;
        if (r1 != r2 || c1 != c2 || (r1 && strcmp(e1.message, e2.message))) {
            if (differ++ < 3) printf("    %d/%d: '%s' vs '%s'\n", r1, r2, e1.message, e2.message);
        }
    }
    CHECK_EQ_INT(differ, 0);
    CHECK(failed > 1000); /* the corruptions did reach the checks */
    dm_buf_free(&in);
    dm_arena_destroy(&a);
    for (int k = 0; k < 2; k++) {
        dm_avro_codec_free(full[k]);
        dm_avro_codec_free(rawc[k]);
    }
}

/* A field read through schema resolution (another type node) is decoded. */
static void test_raw_needs_the_same_type(void)
{
    const char *reader_json =
        "{\"type\": \"record\", \"name\": \"R\", \"fields\": ["
        " {\"name\": \"n\", \"type\": \"long\"}, {\"name\": \"id\", \"type\": \"long\"}]}";
    dm_avro_schema_t *reader;
    dm_error_t err = {0};
    REQUIRE(dm_avro_schema_parse(reader_json, strlen(reader_json), &reader, &err) == DM_OK);
    const char *raw[] = {"n", "id"};
    dm_avro_codec_t *c;
    REQUIRE(dm_avro_codec_new_raw(schema, reader, NULL, 0, raw, 2, &c, &err) == DM_OK);
    dm_arena_t a;
    dm_arena_init(&a, 0);
    dm_buf_t in = DM_BUF_INIT;
    dm_avro_value_t v = random_record(&a), d;
    REQUIRE(dm_avro_encode(schema->root, &v, &in, &err) == DM_OK);
    REQUIRE(dm_avro_decode(c, in.data, in.len, NULL, &a, &d, &err) == DM_OK);
    CHECK_EQ_INT(d.u.v[0].type, DM_AVRO_LONG); /* int promoted to long: decoded */
    CHECK_EQ_INT(d.u.v[0].u.l, v.u.v[0].u.i);
    CHECK_EQ_INT(d.u.v[1].type, DM_AVRO_LONG); /* another schema's node: decoded */
    dm_buf_free(&in);
    dm_arena_destroy(&a);
    dm_avro_codec_free(c);
    dm_avro_schema_free(reader);
}

int main(void)
{
    dm_error_t err = {0};
    REQUIRE(dm_avro_schema_parse(schema_json, strlen(schema_json), &schema, &err) == DM_OK);
    RUN(test_raw_fields_are_the_encoded_bytes);
    RUN(test_raw_fields_fail_as_decoding);
    RUN(test_raw_needs_the_same_type);
    dm_avro_schema_free(schema);
    return check_summary();
}
