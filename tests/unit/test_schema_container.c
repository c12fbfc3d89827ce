/* Unit tests for schema/container.c: write and read back with every codec,
 * several blocks, a truncated last block, corrupt bytes. */
#include <stdio.h>

#include "check.h"
#include "schema/dm_avro_container.h"

static const char *schema_json =
    "{\"type\":\"record\",\"name\":\"Ev\",\"fields\":[{\"name\":\"id\",\"type\":\"long\"},"
    "{\"name\":\"name\",\"type\":\"string\"},{\"name\":\"tag\",\"type\":[\"null\",\"string\"]}]}";

/* Writes n records to a memory buffer with codec; returns the bytes. */
static uint8_t *write_file(dm_avro_file_codec_t codec, int n, size_t block, size_t *len)
{
    dm_avro_schema_t *s = NULL;
    if (dm_avro_schema_parse(schema_json, strlen(schema_json), &s, NULL)) return NULL;
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    dm_avro_file_writer_t *w;
    dm_error_t err = {0};
    if (dm_avro_file_writer_new(f, s, codec, block, &w, &err)) {
        printf("    %s\n", err.message);
        return NULL;
    }
    dm_arena_t a;
    dm_arena_init(&a, 0);
    for (int i = 0; i < n; i++) {
        char json[128];
        snprintf(json, sizeof(json), "{\"id\":%d,\"name\":\"record number %d\",\"tag\":%s}", i, i,
                 i % 3 ? "\"t\"" : "null");
        dm_avro_value_t v;
        if (dm_avro_from_json_text(s->root, json, strlen(json), DM_AVRO_JSON_PLAIN, &a, &v, &err) ||
            dm_avro_file_writer_append(w, &v, &err)) {
            printf("    %s\n", err.message);
            break;
        }
        dm_arena_reset(&a);
    }
    dm_avro_file_writer_close(w, &err);
    fclose(f);
    dm_arena_destroy(&a);
    dm_avro_schema_free(s);
    *len = size;
    return (uint8_t *)buf;
}

/* Reads every record; returns how many, and the error code that ended it. */
static int read_all(const uint8_t *data, size_t len, dm_err_t *rc_out, dm_error_t *err)
{
    dm_avro_file_reader_t *r;
    *rc_out = dm_avro_file_reader_new(data, len, &r, err);
    if (*rc_out) return -1;
    dm_arena_t a;
    dm_arena_init(&a, 0);
    int n = 0;
    for (;;) {
        dm_avro_value_t v;
        bool got;
        *rc_out = dm_avro_file_reader_next(r, &a, &v, &got, err);
        if (*rc_out || !got) break;
        if (v.type != DM_AVRO_RECORD || v.u.v[0].u.l != n) {
            *rc_out = DM_ERR_INTERNAL;
            break;
        }
        n++;
        dm_arena_reset(&a);
    }
    dm_arena_destroy(&a);
    dm_avro_file_reader_free(r);
    return n;
}

static void test_round_trip_every_codec(void)
{
    for (int c = DM_AVRO_FILE_NULL; c <= DM_AVRO_FILE_ZSTD; c++) {
        size_t len;
        uint8_t *data = write_file((dm_avro_file_codec_t)c, 5000, 4096, &len);
        REQUIRE(data);
        dm_err_t rc;
        dm_error_t err = {0};
        CHECK_EQ_INT(read_all(data, len, &rc, &err), 5000);
        CHECK_EQ_INT(rc, DM_OK);
        dm_avro_file_reader_t *r;
        REQUIRE(dm_avro_file_reader_new(data, len, &r, NULL) == DM_OK);
        CHECK_EQ_INT(dm_avro_file_reader_codec(r), c);
        size_t ml;
        const uint8_t *m = dm_avro_file_reader_meta(r, "avro.schema", &ml);
        CHECK(m && ml == strlen(schema_json) && memcmp(m, schema_json, ml) == 0);
        dm_avro_file_reader_free(r);
        free(data);
    }
}

static void test_empty_file(void)
{
    size_t len;
    uint8_t *data = write_file(DM_AVRO_FILE_DEFLATE, 0, 0, &len);
    REQUIRE(data);
    dm_err_t rc;
    CHECK_EQ_INT(read_all(data, len, &rc, NULL), 0);
    CHECK_EQ_INT(rc, DM_OK);
    free(data);
}

static void test_truncated_last_block(void)
{
    for (int c = DM_AVRO_FILE_NULL; c <= DM_AVRO_FILE_ZSTD; c++) {
        size_t len;
        uint8_t *data = write_file((dm_avro_file_codec_t)c, 3000, 2048, &len);
        REQUIRE(data);
        dm_err_t rc;
        dm_error_t err = {0};
        int n = read_all(data, len - 5, &rc, &err);
        CHECK_EQ_INT(rc, DM_ERR_TRUNCATED);
        CHECK(n > 0 && n < 3000);
        CHECK_CONTAINS(err.message, "is truncated");
        /* every cut point ends cleanly: an error, or (cut on a block boundary)
         * fewer records */
        for (size_t cut = 0; cut < len; cut += 97) {
            int got = read_all(data, cut, &rc, &err);
            CHECK(rc != DM_OK || got < 3000);
        }
        free(data);
    }
}

static void test_corruption(void)
{
    size_t len;
    uint8_t *data = write_file(DM_AVRO_FILE_SNAPPY, 500, 1024, &len);
    REQUIRE(data);
    dm_err_t rc;
    dm_error_t err = {0};
    /* a flipped byte in the last sync marker */
    data[len - 3] ^= 0xff;
    read_all(data, len, &rc, &err);
    CHECK_EQ_INT(rc, DM_ERR_CORRUPT);
    CHECK_CONTAINS(err.message, "sync marker");
    data[len - 3] ^= 0xff;
    /* a flipped byte in the last block's data: snappy or its CRC catches it */
    data[len - 40] ^= 0x55;
    read_all(data, len, &rc, &err);
    CHECK(rc == DM_ERR_CORRUPT || rc == DM_ERR_SCHEMA_MISMATCH || rc == DM_ERR_TRUNCATED);
    /* not an Avro file */
    CHECK_EQ_INT(read_all((const uint8_t *)"PK\x03\x04", 4, &rc, &err), -1);
    CHECK_EQ_INT(rc, DM_ERR_CORRUPT);
    /* random mutations never crash */
    uint32_t seed = 7;
    for (int i = 0; i < 300; i++) {
        seed = seed * 1103515245 + 12345;
        size_t at = (seed >> 8) % len;
        uint8_t old = data[at];
        data[at] = (uint8_t)(seed >> 3);
        read_all(data, len, &rc, &err);
        data[at] = old;
    }
    free(data);
}

static void test_user_metadata(void)
{
    dm_avro_schema_t *s = NULL;
    REQUIRE(dm_avro_schema_parse("\"int\"", 5, &s, NULL) == DM_OK);
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    dm_avro_file_meta_t meta[] = {{"origin", (const uint8_t *)"datamesh", 8},
                                  {"empty", (const uint8_t *)"", 0}};
    dm_avro_file_writer_t *w;
    REQUIRE(dm_avro_file_writer_new_meta(f, s, DM_AVRO_FILE_ZSTD, 0, meta, 2, &w, NULL) == DM_OK);
    dm_avro_value_t v = {.type = DM_AVRO_INT};
    v.u.i = 42;
    CHECK_EQ_INT(dm_avro_file_writer_append(w, &v, NULL), DM_OK);
    CHECK_EQ_INT(dm_avro_file_writer_close(w, NULL), DM_OK);
    fclose(f);
    dm_avro_file_reader_t *r;
    REQUIRE(dm_avro_file_reader_new((const uint8_t *)buf, size, &r, NULL) == DM_OK);
    size_t len;
    const uint8_t *m = dm_avro_file_reader_meta(r, "origin", &len);
    CHECK(m && len == 8 && memcmp(m, "datamesh", 8) == 0);
    CHECK(dm_avro_file_reader_meta(r, "empty", &len) && len == 0);
    CHECK(!dm_avro_file_reader_meta(r, "missing", &len));
    dm_arena_t a;
    dm_arena_init(&a, 0);
    bool got;
    CHECK_EQ_INT(dm_avro_file_reader_next(r, &a, &v, &got, NULL), DM_OK);
    CHECK(got && v.u.i == 42);
    dm_arena_destroy(&a);
    dm_avro_file_reader_free(r);
    free(buf);
    dm_avro_file_meta_t bad[] = {{"avro.codec", (const uint8_t *)"x", 1}};
    dm_error_t err = {0};
    CHECK_EQ_INT(dm_avro_file_writer_new_meta(stdout, s, DM_AVRO_FILE_NULL, 0, bad, 1, &w, &err),
                 DM_ERR_INVALID);
    dm_avro_schema_free(s);
}

int main(void)
{
    RUN(test_round_trip_every_codec);
    RUN(test_empty_file);
    RUN(test_truncated_last_block);
    RUN(test_corruption);
    RUN(test_user_metadata);
    return check_summary();
}
