/* Unit tests for the datagen generator: determinism by seed, schema hints,
 * key sequences, and values that encode with their schema. */
#include "check.h"
#include "connectors/datagen/datagen.h"
#include "core/clock.h"
#include "schema/dm_avro.h"

static const char *schema_json =
    "{\"type\": \"record\", \"name\": \"Play\", \"fields\": ["
    " {\"name\": \"id\", \"type\": \"long\"},"
    " {\"name\": \"movie_id\", \"type\": \"long\", \"arg.properties\": {\"range\": {\"min\": 1, "
    "\"max\": 5}}},"
    " {\"name\": \"country\", \"type\": \"string\", \"arg.properties\": {\"options\": [\"US\", "
    "\"FR\", \"JP\"]}},"
    " {\"name\": \"amount\", \"type\": \"double\", \"arg.properties\": {\"range\": {\"min\": 0.5, "
    "\"max\": 20}}},"
    " {\"name\": \"seq\", \"type\": \"int\", \"arg.properties\": {\"iteration\": {\"start\": 100, "
    "\"step\": 10}}},"
    " {\"name\": \"ts\", \"type\": {\"type\": \"long\", \"logicalType\": \"timestamp-millis\"}},"
    " {\"name\": \"uid\", \"type\": {\"type\": \"string\", \"logicalType\": \"uuid\"}},"
    " {\"name\": \"device\", \"type\": [\"null\", {\"type\": \"enum\", \"name\": \"D\", "
    "\"symbols\": [\"TV\", \"PHONE\"]}]},"
    " {\"name\": \"tags\", \"type\": {\"type\": \"array\", \"items\": \"string\"}},"
    " {\"name\": \"attrs\", \"type\": {\"type\": \"map\", \"values\": \"int\"}},"
    " {\"name\": \"word\", \"type\": \"string\", \"arg.properties\": {\"length\": {\"min\": 3, "
    "\"max\": 3}}}]}";

static dm_avro_schema_t *schema;

/* Generates n values and returns their concatenated binary encoding. */
static void generate(int64_t seed, int n, dm_buf_t *out, bool keep_ts)
{
    dm_datagen_config_t conf = {.rate = 1000, .seed = seed};
    dm_datagen_t *g;
    dm_error_t err = {0};
    REQUIRE(dm_datagen_new(schema, &conf, NULL, &g, &err) == DM_OK);
    dm_arena_t a;
    dm_arena_init(&a, 0);
    for (int i = 0; i < n; i++) {
        dm_avro_value_t v;
        REQUIRE(dm_datagen_next(g, &a, &v, &err) == DM_OK);
        if (!keep_ts) v.u.v[5].u.l = 0; /* the time field follows the clock */
        if (dm_avro_encode(schema->root, &v, out, &err)) {
            printf("    encode: %s\n", err.message);
            REQUIRE(0);
        }
        dm_arena_reset(&a);
    }
    CHECK_EQ_U64(dm_datagen_count(g), (uint64_t)n);
    dm_arena_destroy(&a);
    dm_datagen_free(g);
}

static void test_deterministic(void)
{
    dm_buf_t a = DM_BUF_INIT, b = DM_BUF_INIT, c = DM_BUF_INIT;
    generate(7, 500, &a, false);
    generate(7, 500, &b, false);
    generate(8, 500, &c, false);
    CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
    CHECK(a.len != c.len || memcmp(a.data, c.data, a.len) != 0);
    dm_buf_free(&a);
    dm_buf_free(&b);
    dm_buf_free(&c);
}

static void test_hints_are_honoured(void)
{
    dm_datagen_config_t conf = {.seed = 3};
    dm_datagen_t *g;
    dm_error_t err = {0};
    REQUIRE(dm_datagen_new(schema, &conf, NULL, &g, &err) == DM_OK);
    dm_arena_t a;
    dm_arena_init(&a, 0);
    int nulls = 0, countries[3] = {0};
    int64_t now = dm_wall_ms();
    for (int i = 0; i < 1000; i++) {
        dm_avro_value_t v;
        REQUIRE(dm_datagen_next(g, &a, &v, &err) == DM_OK);
        dm_avro_value_t *f = v.u.v;
        CHECK_EQ_INT(f[0].u.l, i); /* id counts */
        CHECK(f[1].u.l >= 1 && f[1].u.l <= 5);
        const char *c = (const char *)f[2].u.p;
        if (f[2].len == 2 && !memcmp(c, "US", 2))
            countries[0]++;
        else if (f[2].len == 2 && !memcmp(c, "FR", 2))
            countries[1]++;
        else if (f[2].len == 2 && !memcmp(c, "JP", 2))
            countries[2]++;
        else
            CHECK(!"country outside the options");
        CHECK(f[3].u.d >= 0.5 && f[3].u.d <= 20);
        CHECK_EQ_INT(f[4].u.i, 100 + 10 * i);
        CHECK(f[5].u.l >= now - 1000 && f[5].u.l <= dm_wall_ms() + 1000);
        CHECK_EQ_INT(f[6].len, 36);
        CHECK_EQ_INT(((const char *)f[6].u.p)[14], '4');
        if (f[7].type == DM_AVRO_NULL) nulls++;
        CHECK_EQ_INT(f[10].len, 3);
    }
    CHECK(countries[0] > 250 && countries[1] > 250 && countries[2] > 250);
    CHECK(nulls > 50 && nulls < 200); /* about one in ten */
    dm_arena_destroy(&a);
    dm_datagen_free(g);
}

static void test_keys_and_errors(void)
{
    dm_datagen_config_t conf = {.seed = 1, .keys = 10};
    dm_strlist_t keys = {(char *[]){"movie_id"}, 1};
    dm_datagen_t *g;
    dm_error_t err = {0};
    /* movie_id has a range hint, so it keeps it; id is no longer the key. */
    REQUIRE(dm_datagen_new(schema, &conf, &keys, &g, &err) == DM_OK);
    dm_datagen_free(g);
    const char *bad = "{\"type\": \"record\", \"name\": \"B\", \"fields\": [{\"name\": \"c\", "
                      "\"type\": \"string\", "
                      "\"arg.properties\": {\"options\": [1, 2]}}]}";
    dm_avro_schema_t *s;
    REQUIRE(dm_avro_schema_parse(bad, strlen(bad), &s, &err) == DM_OK);
    CHECK(dm_datagen_new(s, &conf, NULL, &g, &err) != DM_OK);
    CHECK_CONTAINS(err.message, "field c: arg.properties.options[0]");
    dm_avro_schema_free(s);
    const char *keyed = "{\"type\": \"record\", \"name\": \"K\", \"fields\": [{\"name\": \"k\", "
                        "\"type\": \"long\"}]}";
    REQUIRE(dm_avro_schema_parse(keyed, strlen(keyed), &s, &err) == DM_OK);
    dm_strlist_t k = {(char *[]){"k"}, 1};
    REQUIRE(dm_datagen_new(s, &conf, &k, &g, &err) == DM_OK);
    dm_arena_t a;
    dm_arena_init(&a, 0);
    for (int i = 0; i < 25; i++) {
        dm_avro_value_t v;
        dm_datagen_next(g, &a, &v, &err);
        CHECK_EQ_INT(v.u.v[0].u.l, i % 10); /* keys wrap at `keys` */
    }
    dm_arena_destroy(&a);
    dm_datagen_free(g);
    dm_avro_schema_free(s);
}

int main(void)
{
    dm_error_t err = {0};
    if (dm_avro_schema_parse(schema_json, strlen(schema_json), &schema, &err)) {
        printf("schema: %s\n", err.message);
        return 1;
    }
    RUN(test_deterministic);
    RUN(test_hints_are_honoured);
    RUN(test_keys_and_errors);
    dm_avro_schema_free(schema);
    return check_summary();
}
