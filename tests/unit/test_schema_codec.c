/* Unit tests for schema/codec.c and schema/json.c: binary round trips, the
 * spec's encoding examples, projection, writer->reader resolution, JSON in
 * both dialects, and hostile bytes. */
#include "check.h"
#include "schema/dm_avro.h"

static dm_avro_schema_t *parse(const char *json)
{
    dm_avro_schema_t *s = NULL;
    dm_error_t err = {0};
    if (dm_avro_schema_parse(json, strlen(json), &s, &err)) printf("    %s\n", err.message);
    return s;
}

/* JSON (plain or Avro dialect) -> binary with schema. */
static size_t to_bin(const dm_avro_schema_t *s, const char *json, dm_avro_json_mode_t mode,
                     uint8_t *out, size_t cap)
{
    dm_arena_t a;
    dm_arena_init(&a, 0);
    dm_avro_value_t v;
    dm_error_t err = {0};
    dm_buf_t b = DM_BUF_INIT;
    size_t n = 0;
    if (dm_avro_from_json_text(s->root, json, strlen(json), mode, &a, &v, &err) ||
        dm_avro_encode(s->root, &v, &b, &err)) {
        printf("    %s\n", err.message);
        n = (size_t)-1;
    } else if (b.len <= cap) {
        memcpy(out, b.data, b.len);
        n = b.len;
    }
    dm_buf_free(&b);
    dm_arena_destroy(&a);
    return n;
}

/* Decodes bin with (writer, reader, paths) and prints the value as JSON. */
static const char *decode_json(const dm_avro_schema_t *w, const dm_avro_schema_t *r,
                               const char *const *paths, size_t n_paths, const uint8_t *bin,
                               size_t len, dm_avro_json_mode_t mode)
{
    static char out[4096];
    dm_avro_codec_t *c;
    dm_error_t err = {0};
    if (dm_avro_codec_new(w, r, paths, n_paths, &c, &err)) {
        snprintf(out, sizeof(out), "compile error: %s", err.message);
        return out;
    }
    dm_arena_t a;
    dm_arena_init(&a, 0);
    dm_avro_value_t v;
    size_t used = 0;
    dm_buf_t b = DM_BUF_INIT;
    if (dm_avro_decode(c, bin, len, &used, &a, &v, &err)) {
        snprintf(out, sizeof(out), "decode error: %s", err.message);
    } else if (used != len) {
        snprintf(out, sizeof(out), "decode left %zu bytes", len - used);
    } else {
        dm_avro_to_json(dm_avro_codec_reader(c), &v, mode, &b, &err);
        snprintf(out, sizeof(out), "%.*s", (int)b.len, b.data ? (const char *)b.data : "");
    }
    dm_buf_free(&b);
    dm_arena_destroy(&a);
    dm_avro_codec_free(c);
    return out;
}

static void test_spec_encoding_examples(void)
{
    dm_avro_schema_t *s = parse("\"long\"");
    REQUIRE(s);
    uint8_t b[64];
    static const struct {
        const char *v;
        uint8_t enc[3];
        size_t n;
    } longs[] = {{"0", {0}, 1}, {"-1", {1}, 1},     {"1", {2}, 1},       {"-2", {3}, 1},
                 {"2", {4}, 1}, {"-64", {0x7f}, 1}, {"64", {0x80, 1}, 2}};
    for (size_t i = 0; i < sizeof(longs) / sizeof(longs[0]); i++) {
        CHECK_EQ_INT(to_bin(s, longs[i].v, DM_AVRO_JSON_AVRO, b, sizeof(b)), longs[i].n);
        CHECK(memcmp(b, longs[i].enc, longs[i].n) == 0);
    }
    dm_avro_schema_free(s);
    /* "foo" as a string: 06 66 6f 6f */
    s = parse("\"string\"");
    CHECK_EQ_INT(to_bin(s, "\"foo\"", DM_AVRO_JSON_AVRO, b, sizeof(b)), 4);
    CHECK(memcmp(b,
                 "\x06"
                 "foo",
                 4) == 0);
    dm_avro_schema_free(s);
    /* the spec's record {"a": 27, "b": "foo"} = 36 06 66 6f 6f */
    s = parse(
        "{\"type\":\"record\",\"name\":\"test\",\"fields\":[{\"name\":\"a\",\"type\":\"long\"},"
        "{\"name\":\"b\",\"type\":\"string\"}]}");
    CHECK_EQ_INT(to_bin(s, "{\"a\":27,\"b\":\"foo\"}", DM_AVRO_JSON_AVRO, b, sizeof(b)), 5);
    CHECK(memcmp(b,
                 "\x36\x06"
                 "foo",
                 5) == 0);
    dm_avro_schema_free(s);
    /* array of longs [3, 27] = 04 06 36 00 */
    s = parse("{\"type\":\"array\",\"items\":\"long\"}");
    CHECK_EQ_INT(to_bin(s, "[3,27]", DM_AVRO_JSON_AVRO, b, sizeof(b)), 4);
    CHECK(memcmp(b, "\x04\x06\x36\x00", 4) == 0);
    /* a block with a negative count and a byte size decodes too */
    static const uint8_t neg[] = {0x03, 0x04, 0x06, 0x36, 0x00};
    CHECK_STR_EQ(decode_json(s, NULL, NULL, 0, neg, sizeof(neg), DM_AVRO_JSON_AVRO), "[3,27]");
    dm_avro_schema_free(s);
    /* union ["null","string"]: null = 00; "a" = 02 02 61 */
    s = parse("[\"null\",\"string\"]");
    CHECK_EQ_INT(to_bin(s, "null", DM_AVRO_JSON_AVRO, b, sizeof(b)), 1);
    CHECK_EQ_INT(b[0], 0);
    CHECK_EQ_INT(to_bin(s, "{\"string\":\"a\"}", DM_AVRO_JSON_AVRO, b, sizeof(b)), 3);
    CHECK(memcmp(b,
                 "\x02\x02"
                 "a",
                 3) == 0);
    dm_avro_schema_free(s);
}

static const char *all_types =
    "{\"type\":\"record\",\"name\":\"All\",\"namespace\":\"t\",\"fields\":["
    "{\"name\":\"n\",\"type\":\"null\"},{\"name\":\"b\",\"type\":\"boolean\"},"
    "{\"name\":\"i\",\"type\":\"int\"},{\"name\":\"l\",\"type\":\"long\"},"
    "{\"name\":\"f\",\"type\":\"float\"},{\"name\":\"d\",\"type\":\"double\"},"
    "{\"name\":\"by\",\"type\":\"bytes\"},{\"name\":\"s\",\"type\":\"string\"},"
    "{\"name\":\"e\",\"type\":{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\",\"B\"]}},"
    "{\"name\":\"fx\",\"type\":{\"type\":\"fixed\",\"name\":\"F\",\"size\":2}},"
    "{\"name\":\"a\",\"type\":{\"type\":\"array\",\"items\":\"int\"}},"
    "{\"name\":\"m\",\"type\":{\"type\":\"map\",\"values\":\"string\"}},"
    "{\"name\":\"u\",\"type\":[\"null\",\"long\",\"E\"]},"
    "{\"name\":\"r\",\"type\":[\"null\",\"All\"]}]}";

static void test_round_trip_all_types(void)
{
    dm_avro_schema_t *s = parse(all_types);
    REQUIRE(s);
    const char *json =
        "{\"n\":null,\"b\":true,\"i\":-5,\"l\":1234567890123,\"f\":1.5,\"d\":-2.25,"
        "\"by\":\"\\u0000\\u00ff\",\"s\":\"hey\\n\",\"e\":\"B\",\"fx\":\"xy\",\"a\":[1,2,3],"
        "\"m\":{\"k\":\"v\"},\"u\":{\"t.E\":\"A\"},\"r\":{\"t.All\":{\"n\":null,\"b\":false,"
        "\"i\":0,\"l\":0,\"f\":0.0,\"d\":0.0,\"by\":\"\",\"s\":\"\",\"e\":\"A\",\"fx\":\"ab\","
        "\"a\":[],\"m\":{},\"u\":null,\"r\":null}}}";
    uint8_t b[512];
    size_t n = to_bin(s, json, DM_AVRO_JSON_AVRO, b, sizeof(b));
    REQUIRE(n != (size_t)-1);
    CHECK_STR_EQ(decode_json(s, NULL, NULL, 0, b, n, DM_AVRO_JSON_AVRO), json);
    /* plain JSON of the same value: unions unwrapped */
    CHECK_CONTAINS(decode_json(s, NULL, NULL, 0, b, n, DM_AVRO_JSON_PLAIN), "\"u\":\"A\",\"r\":{");
    /* every truncation of the bytes is an error, never a crash */
    for (size_t cut = 0; cut < n; cut++)
        CHECK_CONTAINS(decode_json(s, NULL, NULL, 0, b, cut, DM_AVRO_JSON_AVRO), "error");
    dm_avro_schema_free(s);
}

static void test_projection(void)
{
    dm_avro_schema_t *s =
        parse("{\"type\":\"record\",\"name\":\"P\",\"fields\":[{\"name\":\"a\",\"type\":\"int\"},"
              "{\"name\":\"big\",\"type\":{\"type\":\"array\",\"items\":\"string\"}},"
              "{\"name\":\"in\",\"type\":{\"type\":\"record\",\"name\":\"In\",\"fields\":["
              "{\"name\":\"x\",\"type\":\"long\"},{\"name\":\"y\",\"type\":\"string\"}]}},"
              "{\"name\":\"z\",\"type\":\"string\"}]}");
    REQUIRE(s);
    uint8_t b[256];
    size_t n =
        to_bin(s, "{\"a\":1,\"big\":[\"q\",\"r\"],\"in\":{\"x\":5,\"y\":\"w\"},\"z\":\"end\"}",
               DM_AVRO_JSON_PLAIN, b, sizeof(b));
    REQUIRE(n != (size_t)-1);
    const char *p1[] = {"z", "in.x"};
    CHECK_STR_EQ(decode_json(s, NULL, p1, 2, b, n, DM_AVRO_JSON_PLAIN),
                 "{\"in\":{\"x\":5},\"z\":\"end\"}");
    const char *p2[] = {"in"};
    CHECK_STR_EQ(decode_json(s, NULL, p2, 1, b, n, DM_AVRO_JSON_PLAIN),
                 "{\"in\":{\"x\":5,\"y\":\"w\"}}");
    const char *p3[] = {"nope"};
    CHECK_CONTAINS(decode_json(s, NULL, p3, 1, b, n, DM_AVRO_JSON_PLAIN), "no field \"nope\"");
    /* a projected decode allocates nothing per record once the arena is warm */
    dm_avro_codec_t *c;
    REQUIRE(dm_avro_codec_new(s, NULL, p1, 2, &c, NULL) == DM_OK);
    dm_arena_t a;
    dm_arena_init(&a, 4096);
    dm_avro_value_t v;
    for (int i = 0; i < 10; i++)
        REQUIRE(dm_avro_decode(c, b, n, NULL, &a, &v, NULL) == DM_OK);
    dm_arena_reset(&a);
    uint64_t before = a.mallocs;
    for (int round = 0; round < 100; round++) {
        for (int i = 0; i < 10; i++)
            REQUIRE(dm_avro_decode(c, b, n, NULL, &a, &v, NULL) == DM_OK);
        dm_arena_reset(&a);
    }
    CHECK_EQ_U64(a.mallocs, before);
    dm_arena_destroy(&a);
    dm_avro_codec_free(c);
    dm_avro_schema_free(s);
}

static const char *resolve(const char *wschema, const char *rschema, const char *wjson)
{
    static char out[4096];
    dm_avro_schema_t *w = parse(wschema), *r = parse(rschema);
    if (!w || !r) {
        dm_avro_schema_free(w);
        dm_avro_schema_free(r);
        return "bad schema";
    }
    uint8_t b[1024];
    size_t n = to_bin(w, wjson, DM_AVRO_JSON_AVRO, b, sizeof(b));
    if (n == (size_t)-1)
        snprintf(out, sizeof(out), "bad value");
    else
        snprintf(out, sizeof(out), "%s", decode_json(w, r, NULL, 0, b, n, DM_AVRO_JSON_AVRO));
    dm_avro_schema_free(w);
    dm_avro_schema_free(r);
    return out;
}

static void test_resolution(void)
{
    /* promotions */
    CHECK_STR_EQ(resolve("\"int\"", "\"long\"", "7"), "7");
    CHECK_STR_EQ(resolve("\"int\"", "\"double\"", "7"), "7.0");
    CHECK_STR_EQ(resolve("\"long\"", "\"float\"", "8"), "8.0");
    CHECK_STR_EQ(resolve("\"float\"", "\"double\"", "1.5"), "1.5");
    CHECK_STR_EQ(resolve("\"string\"", "\"bytes\"", "\"ab\""), "\"ab\"");
    CHECK_STR_EQ(resolve("\"bytes\"", "\"string\"", "\"ab\""), "\"ab\"");
    CHECK_CONTAINS(resolve("\"long\"", "\"int\"", "1"), "cannot be read as int");
    /* defaults, dropped fields, field aliases, record aliases */
    const char *w = "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":"
                    "\"int\"},{\"name\":\"gone\",\"type\":{\"type\":\"array\",\"items\":"
                    "\"string\"}},{\"name\":\"old\",\"type\":\"string\"}]}";
    const char *r = "{\"type\":\"record\",\"name\":\"R2\",\"aliases\":[\"R\"],\"fields\":["
                    "{\"name\":\"new\",\"aliases\":[\"old\"],\"type\":\"string\"},"
                    "{\"name\":\"a\",\"type\":\"long\"},"
                    "{\"name\":\"c\",\"type\":[\"null\",\"int\"],\"default\":null},"
                    "{\"name\":\"d\",\"type\":{\"type\":\"map\",\"values\":\"int\"},"
                    "\"default\":{\"k\":1}}]}";
    CHECK_STR_EQ(resolve(w, r, "{\"a\":3,\"gone\":[\"x\",\"y\"],\"old\":\"o\"}"),
                 "{\"new\":\"o\",\"a\":3,\"c\":null,\"d\":{\"k\":1}}");
    CHECK_CONTAINS(resolve(w,
                           "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"z\","
                           "\"type\":\"int\"}]}",
                           "{\"a\":3,\"gone\":[],\"old\":\"o\"}"),
                   "no default");
    /* enum: reader default for unknown symbols */
    const char *we = "{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\",\"B\",\"C\"]}";
    const char *re = "{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"C\",\"A\",\"U\"],"
                     "\"default\":\"U\"}";
    CHECK_STR_EQ(resolve(we, re, "\"A\""), "\"A\"");
    CHECK_STR_EQ(resolve(we, re, "\"B\""), "\"U\"");
    CHECK_CONTAINS(resolve(we, "{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\"]}", "\"B\""),
                   "unknown to the reader");
    /* unions on either side */
    CHECK_STR_EQ(resolve("\"int\"", "[\"null\",\"long\"]", "4"), "{\"long\":4}");
    CHECK_STR_EQ(resolve("[\"null\",\"int\"]", "\"long\"", "{\"int\":4}"), "4");
    CHECK_CONTAINS(resolve("[\"null\",\"int\"]", "\"long\"", "null"), "no match");
    CHECK_STR_EQ(resolve("[\"int\",\"string\"]", "[\"string\",\"null\",\"double\"]", "{\"int\":2}"),
                 "{\"double\":2.0}");
    CHECK_CONTAINS(resolve("\"boolean\"", "[\"null\",\"int\"]", "true"), "matches no branch");
    /* fixed */
    CHECK_CONTAINS(resolve("{\"type\":\"fixed\",\"name\":\"F\",\"size\":2}",
                           "{\"type\":\"fixed\",\"name\":\"F\",\"size\":3}", "\"ab\""),
                   "size");
    /* nested and recursive records */
    const char *list_w = "{\"type\":\"record\",\"name\":\"Node\",\"fields\":[{\"name\":\"v\","
                         "\"type\":\"int\"},{\"name\":\"next\",\"type\":[\"null\",\"Node\"]}]}";
    const char *list_r = "{\"type\":\"record\",\"name\":\"Node\",\"fields\":[{\"name\":\"next\","
                         "\"type\":[\"null\",\"Node\"]},{\"name\":\"v\",\"type\":\"double\"},"
                         "{\"name\":\"tag\",\"type\":\"string\",\"default\":\"t\"}]}";
    CHECK_STR_EQ(resolve(list_w, list_r, "{\"v\":1,\"next\":{\"Node\":{\"v\":2,\"next\":null}}}"),
                 "{\"next\":{\"Node\":{\"next\":null,\"v\":2.0,\"tag\":\"t\"}},\"v\":1.0,"
                 "\"tag\":\"t\"}");
}

static const char *plain_err(const char *schema, const char *json)
{
    static dm_error_t err;
    dm_avro_schema_t *s = parse(schema);
    dm_arena_t a;
    dm_arena_init(&a, 0);
    dm_avro_value_t v;
    dm_error_clear(&err);
    if (dm_avro_from_json_text(s->root, json, strlen(json), DM_AVRO_JSON_PLAIN, &a, &v, &err) ==
        DM_OK)
        snprintf(err.message, sizeof(err.message), "(ok)");
    dm_arena_destroy(&a);
    dm_avro_schema_free(s);
    return err.message;
}

static void test_plain_json(void)
{
    const char *sch =
        "{\"type\":\"record\",\"name\":\"Ev\",\"fields\":["
        "{\"name\":\"id\",\"type\":\"long\"},"
        "{\"name\":\"who\",\"type\":[\"null\",\"string\"],\"default\":null},"
        "{\"name\":\"amt\",\"type\":{\"type\":\"bytes\",\"logicalType\":\"decimal\","
        "\"precision\":10,\"scale\":2}},"
        "{\"name\":\"day\",\"type\":{\"type\":\"int\",\"logicalType\":\"date\"}},"
        "{\"name\":\"at\",\"type\":{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}},"
        "{\"name\":\"t\",\"type\":{\"type\":\"int\",\"logicalType\":\"time-millis\"}},"
        "{\"name\":\"v\",\"type\":[\"null\",\"long\",\"double\",\"string\",{\"type\":\"array\","
        "\"items\":\"int\"}]}]}";
    dm_avro_schema_t *s = parse(sch);
    REQUIRE(s);
    uint8_t b[256];
    size_t n = to_bin(s,
                      "{\"id\":1,\"amt\":\"-12.5\",\"day\":\"2024-02-29\","
                      "\"at\":\"2024-02-29T10:20:30.123+01:00\",\"t\":\"01:02:03.5\",\"v\":2.5}",
                      DM_AVRO_JSON_PLAIN, b, sizeof(b));
    REQUIRE(n != (size_t)-1);
    CHECK_STR_EQ(decode_json(s, NULL, NULL, 0, b, n, DM_AVRO_JSON_PLAIN),
                 "{\"id\":1,\"who\":null,\"amt\":\"-12.50\",\"day\":\"2024-02-29\","
                 "\"at\":\"2024-02-29T09:20:30.123000Z\",\"t\":\"01:02:03.500000\",\"v\":2.5}");
    CHECK_CONTAINS(decode_json(s, NULL, NULL, 0, b, n, DM_AVRO_JSON_AVRO),
                   "\"v\":{\"double\":2.5}");
    n = to_bin(s, "{\"id\":1,\"amt\":3,\"day\":19782,\"at\":0,\"t\":0,\"v\":[1,2],\"who\":\"x\"}",
               DM_AVRO_JSON_PLAIN, b, sizeof(b));
    REQUIRE(n != (size_t)-1);
    CHECK_STR_EQ(decode_json(s, NULL, NULL, 0, b, n, DM_AVRO_JSON_AVRO),
                 "{\"id\":1,\"who\":{\"string\":\"x\"},\"amt\":\"\\u0001,\",\"day\":19782,"
                 "\"at\":0,\"t\":0,\"v\":{\"array\":[1,2]}}");
    CHECK_CONTAINS(plain_err(sch, "{\"id\":\"x\"}"), "$.id: expected long, got a string");
    CHECK_CONTAINS(plain_err(sch, "{\"id\":1,\"amt\":1,\"day\":1,\"at\":1,\"t\":1}"),
                   "$.v: missing field");
    CHECK_CONTAINS(plain_err(sch, "{\"id\":1,\"amt\":1,\"day\":1,\"at\":1,\"t\":1,\"v\":true}"),
                   "$.v: expected one of [null, long, double, string, array]");
    CHECK_CONTAINS(plain_err(sch, "{\"id\":1,\"amt\":\"1.234\",\"day\":1,\"at\":1,\"t\":1,"
                                  "\"v\":null}"),
                   "$.amt");
    CHECK_CONTAINS(plain_err(sch, "{\"id\":1,\"x\":1}"), "no field \"x\"");
    CHECK_CONTAINS(plain_err("\"int\"", "4000000000"), "out of int range");
    dm_avro_schema_free(s);
}

static void test_garbage_bytes(void)
{
    dm_avro_schema_t *s = parse(all_types);
    REQUIRE(s);
    dm_avro_codec_t *c;
    REQUIRE(dm_avro_codec_new(s, NULL, NULL, 0, &c, NULL) == DM_OK);
    dm_arena_t a;
    dm_arena_init(&a, 0);
    uint32_t seed = 12345;
    int errors = 0;
    for (int i = 0; i < 20000; i++) {
        uint8_t buf[64];
        size_t len = (size_t)(seed % 64);
        for (size_t k = 0; k < len; k++) {
            seed = seed * 1103515245 + 12345;
            buf[k] = (uint8_t)(seed >> 16);
        }
        seed = seed * 1103515245 + 12345;
        dm_avro_value_t v;
        dm_error_t err = {0};
        dm_err_t rc = dm_avro_decode(c, buf, len, NULL, &a, &v, &err);
        if (rc) {
            errors++;
            CHECK(rc == DM_ERR_TRUNCATED || rc == DM_ERR_SCHEMA_MISMATCH);
            CHECK_CONTAINS(err.message, "at byte");
        }
        dm_arena_reset(&a);
    }
    CHECK(errors > 0);
    /* a huge array count in a few bytes is refused before allocating */
    dm_avro_schema_t *arr = parse("{\"type\":\"array\",\"items\":\"null\"}");
    dm_avro_codec_t *ca;
    REQUIRE(dm_avro_codec_new(arr, NULL, NULL, 0, &ca, NULL) == DM_OK);
    static const uint8_t huge[] = {0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f};
    dm_avro_value_t v;
    dm_error_t err = {0};
    CHECK_EQ_INT(dm_avro_decode(ca, huge, sizeof(huge), NULL, &a, &v, &err),
                 DM_ERR_SCHEMA_MISMATCH);
    dm_avro_codec_free(ca);
    dm_avro_schema_free(arr);
    dm_arena_destroy(&a);
    dm_avro_codec_free(c);
    dm_avro_schema_free(s);
}

static void test_encode_mismatch_names_path(void)
{
    dm_avro_schema_t *s = parse("{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"in\","
                                "\"type\":{\"type\":\"record\",\"name\":\"I\",\"fields\":["
                                "{\"name\":\"x\",\"type\":\"int\"}]}}]}");
    REQUIRE(s);
    dm_avro_value_t x = {.type = DM_AVRO_STRING};
    dm_avro_value_t in = {.type = DM_AVRO_RECORD, .len = 1};
    in.u.v = &x;
    dm_avro_value_t r = {.type = DM_AVRO_RECORD, .len = 1};
    r.u.v = &in;
    dm_buf_t b = DM_BUF_INIT;
    dm_error_t err = {0};
    CHECK_EQ_INT(dm_avro_encode(s->root, &r, &b, &err), DM_ERR_SCHEMA_MISMATCH);
    CHECK_STR_EQ(err.message, "$.in.x: expected a value of type int");
    CHECK_EQ_INT(b.len, 0);
    dm_buf_free(&b);
    dm_avro_schema_free(s);
}

static void test_projection_with_resolution_and_lazy_tail(void)
{
    dm_avro_schema_t *w =
        parse("{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":\"int\"},"
              "{\"name\":\"b\",\"type\":[\"null\",\"string\"]},{\"name\":\"c\",\"type\":"
              "{\"type\":\"array\",\"items\":\"long\"}}]}");
    dm_avro_schema_t *r =
        parse("{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"c\",\"type\":"
              "{\"type\":\"array\",\"items\":\"double\"}},{\"name\":\"a\",\"type\":\"long\"},"
              "{\"name\":\"d\",\"type\":\"string\",\"default\":\"dflt\"}]}");
    REQUIRE(w && r);
    uint8_t b[64];
    size_t n = to_bin(w, "{\"a\":7,\"b\":{\"string\":\"x\"},\"c\":[1,2]}", DM_AVRO_JSON_AVRO, b,
                      sizeof(b));
    REQUIRE(n != (size_t)-1);
    const char *pa[] = {"a", "d"};
    CHECK_STR_EQ(decode_json(w, r, pa, 2, b, n, DM_AVRO_JSON_PLAIN), "{\"a\":7,\"d\":\"dflt\"}");
    const char *pc[] = {"c"};
    CHECK_STR_EQ(decode_json(w, r, pc, 1, b, n, DM_AVRO_JSON_PLAIN), "{\"c\":[1.0,2.0]}");
    /* with the record's end known (consumed == NULL) the decoder stops after
     * "a": garbage after it is not even read */
    dm_avro_codec_t *c;
    REQUIRE(dm_avro_codec_new(w, r, pa, 1, &c, NULL) == DM_OK);
    dm_arena_t a;
    dm_arena_init(&a, 0);
    dm_avro_value_t v;
    uint8_t cut[3] = {b[0], 0x55, 0x55};
    CHECK_EQ_INT(dm_avro_decode(c, cut, sizeof(cut), NULL, &a, &v, NULL), DM_OK);
    CHECK_EQ_INT(v.u.v[1].u.l, 7);
    CHECK_EQ_INT(v.u.v[0].type, DM_AVRO_ABSENT);
    size_t used;
    CHECK(dm_avro_decode(c, cut, sizeof(cut), &used, &a, &v, NULL) != DM_OK);
    CHECK_EQ_INT(dm_avro_skip(w->root, b, n, &used, NULL), DM_OK);
    CHECK_EQ_INT(used, n);
    CHECK_EQ_INT(dm_avro_skip(w->root, b, n - 1, &used, NULL), DM_ERR_TRUNCATED);
    dm_arena_destroy(&a);
    dm_avro_codec_free(c);
    dm_avro_schema_free(w);
    dm_avro_schema_free(r);
}

/* A check codec (dm_avro_codec_new_check) reads every byte as a decode
 * would, builds nothing, and names the byte and field of what is wrong. */
static void test_check_codec(void)
{
    dm_avro_schema_t *w =
        parse("{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":\"int\"},"
              "{\"name\":\"b\",\"type\":[\"null\",\"string\"]},{\"name\":\"c\",\"type\":"
              "{\"type\":\"array\",\"items\":\"long\"}},{\"name\":\"e\",\"type\":"
              "{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"x\",\"y\"]}}]}");
    REQUIRE(w);
    uint8_t b[64];
    size_t n = to_bin(w, "{\"a\":7,\"b\":{\"string\":\"x\"},\"c\":[1,2],\"e\":\"y\"}",
                      DM_AVRO_JSON_AVRO, b, sizeof(b));
    REQUIRE(n != (size_t)-1);
    dm_avro_codec_t *c;
    REQUIRE(dm_avro_codec_new_check(w, &c, NULL) == DM_OK);
    dm_arena_t a;
    dm_arena_init(&a, 0);
    dm_avro_value_t v;
    size_t used = 0;
    CHECK_EQ_INT(dm_avro_decode(c, b, n, &used, &a, &v, NULL), DM_OK);
    CHECK_EQ_INT(used, n);
    CHECK_EQ_INT(v.type, DM_AVRO_RECORD);
    for (uint32_t i = 0; i < v.len; i++)
        CHECK_EQ_INT(v.u.v[i].type, DM_AVRO_ABSENT);
    /* every cut is refused, as dm_avro_skip refuses it */
    for (size_t k = 0; k < n; k++) {
        dm_error_t err = {0};
        CHECK(dm_avro_decode(c, b, k, &used, &a, &v, &err) != DM_OK);
        CHECK(dm_avro_skip(w->root, b, k, &used, NULL) != DM_OK);
    }
    /* an enum index out of range names the field */
    uint8_t bad[64];
    memcpy(bad, b, n);
    bad[n - 1] = 0x08; /* index 4 of 2 symbols */
    dm_error_t err = {0};
    CHECK_EQ_INT(dm_avro_decode(c, bad, n, &used, &a, &v, &err), DM_ERR_SCHEMA_MISMATCH);
    CHECK_STR_EQ(err.message, "at byte 9 ($.e): enum index out of range");
    dm_arena_destroy(&a);
    dm_avro_codec_free(c);
    dm_avro_schema_free(w);
}

static void test_plain_json_duration_and_fixed_decimal(void)
{
    dm_avro_schema_t *s =
        parse("{\"type\":\"record\",\"name\":\"T\",\"fields\":[{\"name\":\"du\",\"type\":"
              "{\"type\":\"fixed\",\"name\":\"Dur\",\"size\":12,\"logicalType\":\"duration\"}},"
              "{\"name\":\"px\",\"type\":{\"type\":\"fixed\",\"name\":\"Px\",\"size\":8,"
              "\"logicalType\":\"decimal\",\"precision\":18,\"scale\":3}},"
              "{\"name\":\"ts\",\"type\":{\"type\":\"long\",\"logicalType\":"
              "\"local-timestamp-micros\"}}]}");
    REQUIRE(s);
    uint8_t b[64];
    size_t n = to_bin(s,
                      "{\"du\":{\"months\":1,\"days\":2,\"millis\":3000},\"px\":-0.5,"
                      "\"ts\":\"1969-12-31T23:59:59.999999\"}",
                      DM_AVRO_JSON_PLAIN, b, sizeof(b));
    REQUIRE(n != (size_t)-1);
    CHECK_STR_EQ(decode_json(s, NULL, NULL, 0, b, n, DM_AVRO_JSON_PLAIN),
                 "{\"du\":{\"months\":1,\"days\":2,\"millis\":3000},\"px\":\"-0.500\","
                 "\"ts\":\"1969-12-31T23:59:59.999999\"}");
    dm_avro_schema_free(s);
}

static void test_extreme_timestamps(void)
{
    dm_avro_schema_t *s = parse("{\"type\":\"long\",\"logicalType\":\"timestamp-micros\"}");
    REQUIRE(s);
    static const uint8_t min[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    CHECK_CONTAINS(decode_json(s, NULL, NULL, 0, min, sizeof(min), DM_AVRO_JSON_PLAIN), "-");
    static const uint8_t max[] = {0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    CHECK_CONTAINS(decode_json(s, NULL, NULL, 0, max, sizeof(max), DM_AVRO_JSON_PLAIN), "Z");
    dm_avro_schema_free(s);
}

int main(void)
{
    RUN(test_spec_encoding_examples);
    RUN(test_round_trip_all_types);
    RUN(test_projection);
    RUN(test_resolution);
    RUN(test_projection_with_resolution_and_lazy_tail);
    RUN(test_plain_json);
    RUN(test_plain_json_duration_and_fixed_decimal);
    RUN(test_check_codec);
    RUN(test_garbage_bytes);
    RUN(test_encode_mismatch_names_path);
    RUN(test_extreme_timestamps);
    return check_summary();
}
