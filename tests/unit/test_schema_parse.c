/* Unit tests for schema/parse.c and schema/canonical.c: the spec's examples,
 * Parsing Canonical Form, the Rabin fingerprint vectors of the Avro project
 * (share/test/data/schema-tests.txt), MD5/SHA-256, and bad schemas. */
#include "check.h"
#include "schema/dm_avro.h"

static dm_avro_schema_t *parse(const char *json)
{
    dm_avro_schema_t *s = NULL;
    dm_error_t err = {0};
    if (dm_avro_schema_parse(json, strlen(json), &s, &err)) {
        printf("    parse failed: %s\n", err.message);
        return NULL;
    }
    return s;
}

static char *canon(const char *json)
{
    static char out[4096];
    dm_avro_schema_t *s = parse(json);
    if (!s) return NULL;
    dm_buf_t b = DM_BUF_INIT;
    dm_avro_canonical(s->root, &b);
    snprintf(out, sizeof(out), "%.*s", (int)b.len, (const char *)b.data);
    dm_buf_free(&b);
    dm_avro_schema_free(s);
    return out;
}

static const char *parse_error(const char *json)
{
    static dm_error_t err;
    dm_avro_schema_t *s = NULL;
    dm_error_clear(&err);
    if (dm_avro_schema_parse(json, strlen(json), &s, &err) == DM_OK) {
        dm_avro_schema_free(s);
        return "(parsed)";
    }
    return err.message;
}

static void test_primitives(void)
{
    const char *names[] = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"};
    for (int i = 0; i < 8; i++) {
        char a[64], b[64], want[64];
        snprintf(a, sizeof(a), "\"%s\"", names[i]);
        snprintf(b, sizeof(b), "{\"type\": \"%s\"}", names[i]);
        snprintf(want, sizeof(want), "\"%s\"", names[i]);
        CHECK_STR_EQ(canon(a), want);
        CHECK_STR_EQ(canon(b), want);
    }
}

static void test_rabin_vectors(void)
{
    static const struct {
        const char *schema;
        int64_t fp;
    } v[] = {
        {"\"null\"", 7195948357588979594LL},
        {"{\"type\":\"null\"}", 7195948357588979594LL},
        {"\"boolean\"", -6970731678124411036LL},
        {"\"int\"", 8247732601305521295LL},
        {"\"long\"", -3434872931120570953LL},
        {"\"float\"", 5583340709985441680LL},
        {"\"double\"", -8181574048448539266LL},
        {"\"bytes\"", 5746618253357095269LL},
        {"\"string\"", -8142146995180207161LL},
        {"[ \"int\"  ]", -5232228896498058493LL},
        {"[ \"int\" , {\"type\":\"boolean\"} ]", 5392556393470105090LL},
        {"{\"fields\":[], \"type\":\"record\", \"name\":\"foo\"}", -4824392279771201922LL},
        {"{\"type\":\"record\",\"name\":\"foo\",\"fields\":[{\"name\":\"f1\",\"type\":\"boolean\"}]"
         "}",
         7843277075252814651LL},
        {"{\"name\":\"foo\",\"type\":\"record\",\"fields\":[{\"name\":\"f1\",\"type\":\"boolean\"},"
         "{\"name\":\"f2\",\"type\":\"int\"}]}",
         -4860222112080293046LL},
        {"{\"type\":\"enum\",\"name\":\"foo\",\"symbols\":[\"A1\"]}", -6342190197741309591LL},
        {"{\"type\":\"fixed\",\"name\":\"foo\",\"size\":15}", 1756455273707447556LL},
        {"{\"name\":\"PigValue\",\"type\":\"record\",\"fields\":[{\"name\":\"value\",\"type\":"
         "[\"null\",\"int\",\"long\",\"PigValue\"]}]}",
         -1759257747318642341LL},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        dm_avro_schema_t *s = parse(v[i].schema);
        REQUIRE(s);
        dm_avro_fingerprints_t fp;
        CHECK_EQ_INT(dm_avro_fingerprint(s->root, &fp), DM_OK);
        CHECK_EQ_U64(fp.rabin, (uint64_t)v[i].fp);
        dm_avro_schema_free(s);
    }
}

static void test_md5_sha256(void)
{
    dm_avro_schema_t *s = parse("\"int\"");
    REQUIRE(s);
    dm_avro_fingerprints_t fp;
    CHECK_EQ_INT(dm_avro_fingerprint(s->root, &fp), DM_OK);
    /* md5('"int"') and sha256('"int"') */
    static const uint8_t md5[16] = {0xef, 0x52, 0x4e, 0xa1, 0xb9, 0x1e, 0x73, 0x17,
                                    0x3d, 0x93, 0x8a, 0xde, 0x36, 0xc1, 0xdb, 0x32};
    CHECK(memcmp(fp.md5, md5, 16) == 0);
    static const uint8_t sha[4] = {0x3f, 0x2b, 0x87, 0xa9};
    CHECK(memcmp(fp.sha256, sha, 4) == 0);
    dm_avro_schema_free(s);
}

static void test_canonical_named_and_namespaces(void)
{
    CHECK_STR_EQ(canon("{\"type\":\"record\",\"name\":\"R\",\"namespace\":\"a.b\",\"doc\":\"x\","
                       "\"fields\":[{\"name\":\"e\",\"type\":{\"type\":\"enum\",\"name\":\"E\","
                       "\"symbols\":[\"X\",\"Y\"]},\"default\":\"X\"},"
                       "{\"name\":\"e2\",\"type\":\"E\"},"
                       "{\"name\":\"f\",\"type\":{\"type\":\"fixed\",\"name\":\"c.F\",\"size\":4}},"
                       "{\"name\":\"g\",\"type\":\"c.F\"},"
                       "{\"name\":\"m\",\"type\":{\"type\":\"map\",\"values\":\"long\"}},"
                       "{\"name\":\"l\",\"type\":{\"type\":\"array\",\"items\":\"R\"}}]}"),
                 "{\"name\":\"a.b.R\",\"type\":\"record\",\"fields\":[{\"name\":\"e\",\"type\":"
                 "{\"name\":\"a.b.E\",\"type\":\"enum\",\"symbols\":[\"X\",\"Y\"]}},"
                 "{\"name\":\"e2\",\"type\":\"a.b.E\"},"
                 "{\"name\":\"f\",\"type\":{\"name\":\"c.F\",\"type\":\"fixed\",\"size\":4}},"
                 "{\"name\":\"g\",\"type\":\"c.F\"},"
                 "{\"name\":\"m\",\"type\":{\"type\":\"map\",\"values\":\"long\"}},"
                 "{\"name\":\"l\",\"type\":{\"type\":\"array\",\"items\":\"a.b.R\"}}]}");
    /* logicalType is not part of the canonical form */
    CHECK_STR_EQ(canon("{\"type\":\"int\",\"logicalType\":\"date\"}"), "\"int\"");
}

static void test_forward_reference(void)
{
    dm_avro_schema_t *s = parse("{\"type\":\"record\",\"name\":\"A\",\"fields\":["
                                "{\"name\":\"b\",\"type\":[\"null\",\"B\"]},"
                                "{\"name\":\"b2\",\"type\":{\"type\":\"record\",\"name\":\"B\","
                                "\"fields\":[{\"name\":\"x\",\"type\":\"int\"}]}}]}");
    REQUIRE(s);
    CHECK(s->root->fields[0].type->branches[1] == s->root->fields[1].type);
    CHECK_EQ_INT(s->root->fields[1].type->n_fields, 1);
    dm_avro_schema_free(s);
}

static void test_logical_types(void)
{
    dm_avro_schema_t *s = parse(
        "{\"type\":\"record\",\"name\":\"L\",\"fields\":["
        "{\"name\":\"d\",\"type\":{\"type\":\"bytes\",\"logicalType\":\"decimal\","
        "\"precision\":9,\"scale\":2}},"
        "{\"name\":\"fd\",\"type\":{\"type\":\"fixed\",\"name\":\"D8\",\"size\":8,"
        "\"logicalType\":\"decimal\",\"precision\":18,\"scale\":4}},"
        "{\"name\":\"u\",\"type\":{\"type\":\"string\",\"logicalType\":\"uuid\"}},"
        "{\"name\":\"dt\",\"type\":{\"type\":\"int\",\"logicalType\":\"date\"}},"
        "{\"name\":\"tm\",\"type\":{\"type\":\"int\",\"logicalType\":\"time-millis\"}},"
        "{\"name\":\"tu\",\"type\":{\"type\":\"long\",\"logicalType\":\"time-micros\"}},"
        "{\"name\":\"ts\",\"type\":{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}},"
        "{\"name\":\"tsu\",\"type\":{\"type\":\"long\",\"logicalType\":\"timestamp-micros\"}},"
        "{\"name\":\"lts\",\"type\":{\"type\":\"long\",\"logicalType\":"
        "\"local-timestamp-millis\"}},"
        "{\"name\":\"ltu\",\"type\":{\"type\":\"long\",\"logicalType\":"
        "\"local-timestamp-micros\"}},"
        "{\"name\":\"du\",\"type\":{\"type\":\"fixed\",\"name\":\"Dur\",\"size\":12,"
        "\"logicalType\":\"duration\"}},"
        "{\"name\":\"bad\",\"type\":{\"type\":\"bytes\",\"logicalType\":\"decimal\","
        "\"precision\":2,\"scale\":3}},"
        "{\"name\":\"unknown\",\"type\":{\"type\":\"long\",\"logicalType\":\"nope\"}}]}");
    REQUIRE(s);
    const dm_avro_field_t *f = s->root->fields;
    CHECK_EQ_INT(f[0].type->logical, DM_AVRO_LT_DECIMAL);
    CHECK_EQ_INT(f[0].type->precision, 9);
    CHECK_EQ_INT(f[0].type->scale, 2);
    CHECK_EQ_INT(f[1].type->logical, DM_AVRO_LT_DECIMAL);
    CHECK_EQ_INT(f[2].type->logical, DM_AVRO_LT_UUID);
    CHECK_EQ_INT(f[3].type->logical, DM_AVRO_LT_DATE);
    CHECK_EQ_INT(f[4].type->logical, DM_AVRO_LT_TIME_MILLIS);
    CHECK_EQ_INT(f[5].type->logical, DM_AVRO_LT_TIME_MICROS);
    CHECK_EQ_INT(f[6].type->logical, DM_AVRO_LT_TIMESTAMP_MILLIS);
    CHECK_EQ_INT(f[7].type->logical, DM_AVRO_LT_TIMESTAMP_MICROS);
    CHECK_EQ_INT(f[8].type->logical, DM_AVRO_LT_LOCAL_TIMESTAMP_MILLIS);
    CHECK_EQ_INT(f[9].type->logical, DM_AVRO_LT_LOCAL_TIMESTAMP_MICROS);
    CHECK_EQ_INT(f[10].type->logical, DM_AVRO_LT_DURATION);
    /* invalid and unknown logical types fall back to the underlying type (spec) */
    CHECK_EQ_INT(f[11].type->logical, DM_AVRO_LT_NONE);
    CHECK_EQ_INT(f[12].type->logical, DM_AVRO_LT_NONE);
    dm_avro_schema_free(s);
}

static void test_defaults_and_aliases(void)
{
    dm_avro_schema_t *s = parse(
        "{\"type\":\"record\",\"name\":\"D\",\"aliases\":[\"Old\"],\"fields\":["
        "{\"name\":\"i\",\"type\":\"int\",\"default\":7,\"aliases\":[\"ii\"],\"doc\":\"an int\"},"
        "{\"name\":\"u\",\"type\":[\"null\",\"string\"],\"default\":null},"
        "{\"name\":\"b\",\"type\":\"bytes\",\"default\":\"\\u00ff\"},"
        "{\"name\":\"a\",\"type\":{\"type\":\"array\",\"items\":\"long\"},\"default\":[1,2]},"
        "{\"name\":\"r\",\"type\":{\"type\":\"record\",\"name\":\"In\",\"fields\":["
        "{\"name\":\"x\",\"type\":\"double\"}]},\"default\":{\"x\":1.5}},"
        "{\"name\":\"f\",\"type\":\"float\",\"default\":1}]}");
    REQUIRE(s);
    CHECK_STR_EQ(s->root->aliases[0], "Old");
    CHECK_EQ_INT(s->root->fields[0].default_len, 1);
    CHECK_EQ_INT(s->root->fields[0].default_bin[0], 14);
    CHECK_EQ_INT(dm_avro_field_index(s->root, "ii"), 0);
    CHECK_EQ_INT(s->root->fields[2].default_len, 2);
    CHECK_EQ_INT(s->root->fields[2].default_bin[1], 0xff);
    dm_avro_schema_free(s);
}

static void test_bad_schemas(void)
{
    CHECK_CONTAINS(parse_error("{\"type\":"), "line 1");
    CHECK_CONTAINS(parse_error("\"nosuch\""), "never defined");
    CHECK_CONTAINS(
        parse_error("{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":"
                    "{\"type\":\"map\",\"values\":\"Nope\"}}]}"),
        "$.fields[0].type.values: type \"Nope\" is used but never defined");
    CHECK_CONTAINS(parse_error("{\"type\":\"record\",\"name\":\"R\"}"), "\"fields\"");
    CHECK_CONTAINS(parse_error("{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\","
                               "\"type\":\"int\",\"default\":\"x\"}]}"),
                   "$.fields[0].default");
    CHECK_CONTAINS(parse_error("{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\","
                               "\"type\":[\"null\",\"int\"],\"default\":3}]}"),
                   "invalid default");
    CHECK_CONTAINS(parse_error("{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\","
                               "\"type\":\"int\"},{\"name\":\"a\",\"type\":\"int\"}]}"),
                   "appears twice");
    CHECK_CONTAINS(parse_error("{\"type\":\"record\",\"name\":\"1R\",\"fields\":[]}"),
                   "not a valid name");
    CHECK_CONTAINS(parse_error("[\"int\",\"int\"]"), "two branches");
    CHECK_CONTAINS(parse_error("[\"null\",[\"int\"]]"), "union");
    CHECK_CONTAINS(parse_error("{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\",\"A\"]}"),
                   "twice");
    CHECK_CONTAINS(parse_error("{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\"],"
                               "\"default\":\"B\"}"),
                   "default");
    CHECK_CONTAINS(parse_error("{\"type\":\"fixed\",\"name\":\"F\",\"size\":-1}"), "size");
    CHECK_CONTAINS(parse_error("{\"type\":\"array\"}"), "items");
    CHECK_CONTAINS(parse_error("{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\","
                               "\"type\":{\"type\":\"map\"}}]}"),
                   "$.fields[0].type");
    CHECK_CONTAINS(parse_error("{\"type\":\"record\",\"name\":\"R\",\"fields\":[]} x"), "line");
    CHECK_CONTAINS(parse_error("[{\"type\":\"fixed\",\"name\":\"F\",\"size\":1},"
                               "{\"type\":\"fixed\",\"name\":\"F\",\"size\":2}]"),
                   "twice");
    CHECK_CONTAINS(parse_error("42"), "schema must be");
}

int main(void)
{
    RUN(test_primitives);
    RUN(test_rabin_vectors);
    RUN(test_md5_sha256);
    RUN(test_canonical_named_and_namespaces);
    RUN(test_forward_reference);
    RUN(test_logical_types);
    RUN(test_defaults_and_aliases);
    RUN(test_bad_schemas);
    return check_summary();
}
