/* tests/fuzz/fuzz_avro_json.c — libFuzzer target: the DOM-free JSON reader
 * against the jansson path as its oracle. The first input byte picks a schema
 * (every Avro type, logical types, unions, a recursive record) and a mode
 * (plain or the spec's encoding); the rest is JSON text. Both readers must
 * accept and refuse the same texts and give equal values (duplicate keys
 * refused by both; text with a \u0000 escape or a raw NUL byte is only read,
 * since there the new reader is stricter on purpose). What is accepted is written back as JSON
 * and must read again as the same value. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema/dm_avro.h"
#include "schema/json_internal.h"

static const char *const schemas[] = {
    "{\"type\":\"record\",\"name\":\"All\",\"fields\":[{\"name\":\"n\",\"type\":\"null\"},"
    "{\"name\":\"b\",\"type\":\"boolean\"},{\"name\":\"i\",\"type\":\"int\"},"
    "{\"name\":\"l\",\"type\":\"long\"},{\"name\":\"f\",\"type\":\"float\"},"
    "{\"name\":\"d\",\"type\":\"double\"},{\"name\":\"by\",\"type\":\"bytes\"},"
    "{\"name\":\"s\",\"type\":\"string\",\"default\":\"x\"},{\"name\":\"e\",\"type\":{\"type\":"
    "\"enum\",\"name\":\"E\",\"symbols\":[\"A\",\"B\",\"C\"]}},{\"name\":\"fx\",\"type\":{\"type\":"
    "\"fixed\",\"name\":\"F\",\"size\":3}},{\"name\":\"a\",\"type\":{\"type\":\"array\","
    "\"items\":\"long\"}},{\"name\":\"m\",\"type\":{\"type\":\"map\",\"values\":\"string\"}},"
    "{\"name\":\"u\",\"type\":[\"null\",\"int\",\"string\",\"E\",\"double\"],\"default\":null}]}",
    "{\"type\":\"record\",\"name\":\"Node\",\"fields\":[{\"name\":\"v\",\"type\":\"int\"},"
    "{\"name\":\"kids\",\"type\":{\"type\":\"array\",\"items\":\"Node\"},\"default\":[]},"
    "{\"name\":\"next\",\"type\":[\"null\",\"Node\",{\"type\":\"map\",\"values\":\"Node\"}],"
    "\"default\":null}]}",
    "{\"type\":\"map\",\"values\":{\"type\":\"array\",\"items\":[\"null\",\"boolean\",\"long\","
    "{\"type\":\"map\",\"values\":\"bytes\"},{\"type\":\"array\",\"items\":\"float\"}]}}",
    "{\"type\":\"record\",\"name\":\"L\",\"fields\":[{\"name\":\"d\",\"type\":{\"type\":\"bytes\","
    "\"logicalType\":\"decimal\",\"precision\":20,\"scale\":4}},{\"name\":\"t\",\"type\":"
    "{\"type\":\"long\",\"logicalType\":\"timestamp-micros\"}},{\"name\":\"tm\",\"type\":"
    "{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}},{\"name\":\"day\",\"type\":"
    "{\"type\":\"int\",\"logicalType\":\"date\"}},{\"name\":\"tod\",\"type\":{\"type\":\"int\","
    "\"logicalType\":\"time-millis\"}},{\"name\":\"fd\",\"type\":{\"type\":\"fixed\",\"name\":"
    "\"D\",\"size\":16,\"logicalType\":\"decimal\",\"precision\":30,\"scale\":2}},"
    "{\"name\":\"du\",\"type\":{\"type\":\"fixed\",\"name\":\"Du\",\"size\":12,\"logicalType\":"
    "\"duration\"}},{\"name\":\"id\",\"type\":{\"type\":\"string\",\"logicalType\":\"uuid\"}},"
    "{\"name\":\"ot\",\"type\":[\"null\",{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}]}"
    "]}",
    "[\"null\",\"long\",\"double\",\"string\",{\"type\":\"array\",\"items\":\"long\"},"
    "{\"type\":\"map\",\"values\":\"string\"},{\"type\":\"record\",\"name\":\"P\",\"fields\":"
    "[{\"name\":\"x\",\"type\":\"int\"}]}]",
};

#define N_SCHEMAS (sizeof(schemas) / sizeof(schemas[0]))

static dm_avro_schema_t *parsed[N_SCHEMAS];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!parsed[0])
        for (size_t i = 0; i < N_SCHEMAS; i++)
            if (dm_avro_schema_parse(schemas[i], strlen(schemas[i]), &parsed[i], NULL)) abort();
    if (size < 1) return 0;
    const dm_avro_node_t *root = parsed[data[0] % N_SCHEMAS]->root;
    dm_avro_json_mode_t mode = (data[0] / N_SCHEMAS) % 2 ? DM_AVRO_JSON_AVRO : DM_AVRO_JSON_PLAIN;
    data++, size--;
    /* a private copy so reads past the end are caught by ASan */
    char *text = malloc(size ? size : 1);
    memcpy(text, data, size);
    dm_arena_t a;
    dm_arena_init(&a, 0);
    dm_avro_value_t vn, vo;
    dm_error_t en = {0}, eo = {0};
    dm_err_t rn = dm_avro_from_json_text(root, text, size, mode, &a, &vn, &en);
    if (rn && !en.message[0]) abort(); /* a refusal always says why */
    /* jansson reads a raw NUL byte as the end of its input ("9\0" is 9);
     * the new reader refuses it (it is not JSON): only compared without one */
    if (!memmem(text, size, "\\u0000", 6) && !memchr(text, 0, size)) {
        dm_err_t ro = dm_avro_from_json_dom(root, text, size, mode, true, &a, &vo, &eo);
        if (!rn != !ro) {
            fprintf(stderr, "new %s (%s), jansson path %s (%s)\n", rn ? "refuses" : "accepts",
                    en.message, ro ? "refuses" : "accepts", eo.message);
            abort();
        }
        if (!rn && !dm_avro_value_equal(root, &vn, &vo)) {
            fprintf(stderr, "the readers give different values\n");
            abort();
        }
    }
    if (!rn) {
        /* what was read writes back as JSON that reads as the same value */
        dm_buf_t out = DM_BUF_INIT;
        dm_avro_value_t back;
        if (dm_avro_to_json(root, &vn, DM_AVRO_JSON_AVRO, &out, &en)) abort();
        if (dm_avro_from_json_text(root, (const char *)out.data, out.len, DM_AVRO_JSON_AVRO, &a,
                                   &back, &en)) {
            fprintf(stderr, "our own JSON does not read back: %s\n%.*s\n", en.message, (int)out.len,
                    out.data);
            abort();
        }
        if (!dm_avro_value_equal(root, &vn, &back)) abort();
        dm_buf_reset(&out);
        dm_avro_to_json(root, &vn, DM_AVRO_JSON_PLAIN, &out, &en);
        dm_buf_free(&out);
    }
    dm_arena_destroy(&a);
    free(text);
    return 0;
}
