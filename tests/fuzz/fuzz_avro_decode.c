/* tests/fuzz/fuzz_avro_decode.c — libFuzzer target: the binary decoder. The
 * first input byte picks a schema (wide, recursive, nested collections, a
 * resolution pair, logical types); the rest is decoded fully, with a
 * projection, skipped, and, when it decodes, re-encoded and printed as JSON
 * in both dialects. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "schema/dm_avro.h"

static const char *const schemas[] = {
    "{\"type\":\"record\",\"name\":\"All\",\"fields\":[{\"name\":\"n\",\"type\":\"null\"},"
    "{\"name\":\"b\",\"type\":\"boolean\"},{\"name\":\"i\",\"type\":\"int\"},"
    "{\"name\":\"l\",\"type\":\"long\"},{\"name\":\"f\",\"type\":\"float\"},"
    "{\"name\":\"d\",\"type\":\"double\"},{\"name\":\"by\",\"type\":\"bytes\"},"
    "{\"name\":\"s\",\"type\":\"string\"},{\"name\":\"e\",\"type\":{\"type\":\"enum\","
    "\"name\":\"E\",\"symbols\":[\"A\",\"B\",\"C\"]}},{\"name\":\"fx\",\"type\":{\"type\":"
    "\"fixed\",\"name\":\"F\",\"size\":3}},{\"name\":\"a\",\"type\":{\"type\":\"array\","
    "\"items\":\"long\"}},{\"name\":\"m\",\"type\":{\"type\":\"map\",\"values\":\"string\"}},"
    "{\"name\":\"u\",\"type\":[\"null\",\"int\",\"string\",\"E\"]}]}",
    "{\"type\":\"record\",\"name\":\"Node\",\"fields\":[{\"name\":\"v\",\"type\":\"int\"},"
    "{\"name\":\"kids\",\"type\":{\"type\":\"array\",\"items\":\"Node\"}},"
    "{\"name\":\"next\",\"type\":[\"null\",\"Node\"]}]}",
    "{\"type\":\"map\",\"values\":{\"type\":\"array\",\"items\":[\"null\",{\"type\":\"map\","
    "\"values\":\"bytes\"}]}}",
    "{\"type\":\"record\",\"name\":\"L\",\"fields\":[{\"name\":\"d\",\"type\":{\"type\":\"bytes\","
    "\"logicalType\":\"decimal\",\"precision\":20,\"scale\":4}},{\"name\":\"t\",\"type\":"
    "{\"type\":\"long\",\"logicalType\":\"timestamp-micros\"}},{\"name\":\"day\",\"type\":"
    "{\"type\":\"int\",\"logicalType\":\"date\"}},{\"name\":\"tm\",\"type\":{\"type\":\"int\","
    "\"logicalType\":\"time-millis\"}},{\"name\":\"fd\",\"type\":{\"type\":\"fixed\",\"name\":"
    "\"D\",\"size\":16,\"logicalType\":\"decimal\",\"precision\":30,\"scale\":2}}]}",
};

/* writer → reader pair for schema resolution */
static const char *const writer2 =
    "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":\"int\"},"
    "{\"name\":\"gone\",\"type\":{\"type\":\"map\",\"values\":\"string\"}},"
    "{\"name\":\"e\",\"type\":{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"X\",\"Y\",\"Z\"]}},"
    "{\"name\":\"u\",\"type\":[\"null\",\"int\",\"string\"]}]}";
static const char *const reader2 =
    "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"u\",\"type\":[\"string\","
    "\"long\",\"null\"]},{\"name\":\"a\",\"type\":\"double\"},{\"name\":\"e\",\"type\":{\"type\":"
    "\"enum\",\"name\":\"E\",\"symbols\":[\"Y\",\"Q\"],\"default\":\"Q\"}},"
    "{\"name\":\"new\",\"type\":\"string\",\"default\":\"n\"}]}";

#define N_SCHEMAS (sizeof(schemas) / sizeof(schemas[0]))

static dm_avro_schema_t *parsed[N_SCHEMAS + 2];
static dm_avro_codec_t *full[N_SCHEMAS + 1], *proj[N_SCHEMAS + 1];

static dm_avro_schema_t *must_parse(const char *json)
{
    dm_avro_schema_t *s;
    if (dm_avro_schema_parse(json, strlen(json), &s, NULL)) abort();
    return s;
}

static void setup(void)
{
    const char *paths[] = {"s", "u", "kids.v", "d"};
    for (size_t i = 0; i < N_SCHEMAS; i++) {
        parsed[i] = must_parse(schemas[i]);
        if (dm_avro_codec_new(parsed[i], NULL, NULL, 0, &full[i], NULL)) abort();
        if (dm_avro_codec_new(parsed[i], NULL, paths + (i < 2 ? i : 3), 1, &proj[i], NULL))
            proj[i] = NULL;
    }
    parsed[N_SCHEMAS] = must_parse(writer2);
    parsed[N_SCHEMAS + 1] = must_parse(reader2);
    if (dm_avro_codec_new(parsed[N_SCHEMAS], parsed[N_SCHEMAS + 1], NULL, 0, &full[N_SCHEMAS],
                          NULL))
        abort();
    proj[N_SCHEMAS] = NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!parsed[0]) setup();
    if (size < 1) return 0;
    size_t k = data[0] % (N_SCHEMAS + 1);
    data++, size--;
    /* a private copy so reads past the end are caught by ASan */
    uint8_t *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    dm_arena_t a;
    dm_arena_init(&a, 0);
    dm_avro_value_t v;
    size_t used;
    dm_error_t err = {0};
    const dm_avro_node_t *rnode = dm_avro_codec_reader(full[k]);
    if (dm_avro_decode(full[k], buf, size, &used, &a, &v, &err) == DM_OK) {
        dm_buf_t out = DM_BUF_INIT;
        dm_avro_encode(rnode, &v, &out, &err);
        dm_buf_reset(&out);
        dm_avro_to_json(rnode, &v, DM_AVRO_JSON_AVRO, &out, &err);
        dm_buf_reset(&out);
        dm_avro_to_json(rnode, &v, DM_AVRO_JSON_PLAIN, &out, &err);
        dm_buf_free(&out);
    }
    if (proj[k]) dm_avro_decode(proj[k], buf, size, NULL, &a, &v, &err);
    dm_avro_skip(parsed[k]->root, buf, size, &used, &err);
    dm_avro_decode_node(parsed[k]->root, buf, size, &used, &a, &v, &err);
    dm_arena_destroy(&a);
    free(buf);
    return 0;
}
