/* Unit tests for engine/table and the enrich processor: upserts, deletes by
 * tombstone, lookups across int/long keys, misses as NULLs, and errors. */
#include "check.h"
#include "engine/processor.h"
#include "engine/table.h"
#include "schema/wire.h"

static const char *movie_json = "{\"type\": \"record\", \"name\": \"Movie\", \"fields\": "
                                "[{\"name\": \"movie_id\", \"type\": \"int\"},"
                                " {\"name\": \"title\", \"type\": \"string\"}, {\"name\": "
                                "\"year\", \"type\": [\"null\", \"int\"]}]}";
static const char *play_json =
    "{\"type\": \"record\", \"name\": \"Play\", \"fields\": [{\"name\": \"id\", \"type\": "
    "\"long\"},"
    " {\"name\": \"movie_id\", \"type\": \"long\"}, {\"name\": \"title\", \"type\": \"string\"}]}";

static dm_avro_schema_t *movies, *plays;
static dm_table_t *table;

static void put_movie(const char *json)
{
    dm_arena_t a;
    dm_arena_init(&a, 0);
    dm_avro_value_t v;
    dm_error_t err = {0};
    REQUIRE(dm_avro_from_json_text(movies->root, json, strlen(json), DM_AVRO_JSON_PLAIN, &a, &v,
                                   &err) == DM_OK);
    dm_buf_t b = DM_BUF_INIT;
    dm_wire_put_header(&b, 1);
    REQUIRE(dm_avro_encode(movies->root, &v, &b, &err) == DM_OK);
    dm_record_t rec = {.value = b.data, .value_len = (int32_t)b.len, .key_len = -1};
    REQUIRE(dm_table_apply(table, &rec, &err) == DM_OK);
    dm_buf_free(&b);
    dm_arena_destroy(&a);
}

static dm_table_t *lookup(void *ctx, const char *name, dm_error_t *err)
{
    if (!strcmp(name, "movies")) return table;
    dm_error_set(err, DM_ERR_NOT_FOUND, "no source named '%s'", name);
    return NULL;
}

static void test_table(void)
{
    dm_error_t err = {0};
    REQUIRE(dm_table_new("movies", movies, "movie_id", &table, &err) == DM_OK);
    put_movie("{\"movie_id\": 1, \"title\": \"Heat\", \"year\": 1995}");
    put_movie("{\"movie_id\": 2, \"title\": \"Alien\", \"year\": null}");
    put_movie("{\"movie_id\": 1, \"title\": \"Heat (remastered)\", \"year\": 1995}");
    for (int i = 100; i < 3000; i++) {
        char j[128];
        snprintf(j, sizeof(j), "{\"movie_id\": %d, \"title\": \"m%d\", \"year\": 2000}", i, i);
        put_movie(j);
    }
    CHECK_EQ_INT(dm_table_size(table), 2902);
    dm_buf_t out = DM_BUF_INIT;
    bool found;
    REQUIRE(dm_table_get(table, "1", 1, &out, &found) == DM_OK);
    CHECK(found);
    CHECK(memmem(out.data, out.len, "remastered", 10) != NULL);
    REQUIRE(dm_table_get(table, "999999", 6, &out, &found) == DM_OK);
    CHECK(!found);
    /* A tombstone (null value, key record in the wire format) deletes. */
    dm_buf_t key = DM_BUF_INIT;
    dm_wire_put_header(&key, 2);
    dm_buf_append_u8(&key, 0x08); /* zigzag(4) ... the int 4 */
    dm_record_t tomb = {.key = key.data, .key_len = (int32_t)key.len, .value_len = -1};
    put_movie("{\"movie_id\": 4, \"title\": \"Gone\", \"year\": null}");
    size_t before = dm_table_size(table);
    REQUIRE(dm_table_apply(table, &tomb, &err) == DM_OK);
    CHECK_EQ_INT(dm_table_size(table), before - 1);
    dm_buf_free(&key);
    dm_record_t junk = {.value = (const uint8_t *)"\x01zz", .value_len = 3};
    CHECK(dm_table_apply(table, &junk, &err) == DM_ERR_SCHEMA_MISMATCH);
    CHECK_CONTAINS(err.message, "not in the wire format");
    dm_buf_free(&out);
}

static void test_enrich(void)
{
    dm_proc_env_t env = {lookup, NULL, NULL};
    json_t *conf = json_pack("{s:s, s:s, s:[s,s]}", "with", "movies", "on", "movie_id", "fields",
                             "title AS movie_title", "year");
    dm_proc_t *p;
    dm_error_t err = {0};
    if (dm_proc_open(&dm_proc_enrich, &env, conf, plays->root, &p, &err))
        printf("    %s\n", err.message);
    REQUIRE(p);
    REQUIRE(p->output);
    CHECK_EQ_INT(p->output->root->n_fields, 5);
    CHECK_STR_EQ(p->output->root->fields[3].name, "movie_title");
    dm_rows_t in, out;
    dm_rows_init(&in, plays->root);
    dm_rows_init(&out, p->output->root);
    const char *rows[] = {"{\"id\": 1, \"movie_id\": 1, \"title\": \"x\"}",
                          "{\"id\": 2, \"movie_id\": 2, \"title\": \"y\"}",
                          "{\"id\": 3, \"movie_id\": 77, \"title\": \"z\"}"};
    for (int i = 0; i < 3; i++) {
        dm_row_t *r = dm_rows_push(&in);
        REQUIRE(dm_avro_from_json_text(plays->root, rows[i], strlen(rows[i]), DM_AVRO_JSON_PLAIN,
                                       &in.arena, &r->value, &err) == DM_OK);
    }
    dm_dead_letters_t dead = {0};
    REQUIRE(p->ops->process(p, &in, &out, &dead, &err) == DM_OK);
    REQUIRE(out.n == 3);
    const char *want[] = {
        "{\"id\":1,\"movie_id\":1,\"title\":\"x\",\"movie_title\":\"Heat "
        "(remastered)\",\"year\":1995}",
        "{\"id\":2,\"movie_id\":2,\"title\":\"y\",\"movie_title\":\"Alien\",\"year\":null}",
        "{\"id\":3,\"movie_id\":77,\"title\":\"z\",\"movie_title\":null,\"year\":null}"};
    for (int i = 0; i < 3; i++) {
        /* Round trip through the binary encoding checks the union branches. */
        dm_buf_t bin = DM_BUF_INIT, json = DM_BUF_INIT;
        dm_arena_t a;
        dm_arena_init(&a, 0);
        dm_avro_value_t back;
        CHECK(dm_avro_encode(p->output->root, &out.records[i].value, &bin, &err) == DM_OK);
        CHECK(dm_avro_decode_node(p->output->root, bin.data, bin.len, NULL, &a, &back, &err) ==
              DM_OK);
        CHECK(dm_avro_to_json(p->output->root, &back, DM_AVRO_JSON_PLAIN, &json, &err) == DM_OK);
        const char *s;
        dm_buf_cstr(&json, &s);
        CHECK_STR_EQ(s, want[i]);
        dm_buf_free(&bin);
        dm_buf_free(&json);
        dm_arena_destroy(&a);
    }
    dm_rows_free(&in);
    dm_rows_free(&out);
    dm_dead_letters_free(&dead);
    dm_proc_close(p);
    json_decref(conf);
}

static void test_enrich_errors(void)
{
    dm_proc_env_t env = {lookup, NULL, NULL};
    const struct {
        const char *conf;
        const char *want;
    } cases[] = {
        {"{\"with\": \"films\", \"on\": \"movie_id\"}", "no source named 'films'"},
        {"{\"with\": \"movies\"}", "on: required key 'on' is missing"},
        {"{\"with\": \"movies\", \"on\": \"film\"}", "no field 'film' in Play"},
        {"{\"with\": \"movies\", \"on\": \"movie_id\", \"fields\": [\"rating\"]}",
         "source movies has no field 'rating'"},
        {"{\"with\": \"movies\", \"on\": \"movie_id\", \"fields\": [\"title\"]}",
         "the stream already has a field 'title'"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *conf = json_loads(cases[i].conf, 0, NULL);
        dm_proc_t *p = NULL;
        dm_error_t err = {0};
        CHECK(dm_proc_open(&dm_proc_enrich, &env, conf, plays->root, &p, &err) != DM_OK);
        if (!strstr(err.message, cases[i].want)) {
            printf("    case %zu: got %s\n", i, err.message);
            CHECK(!"wrong message");
        }
        dm_proc_close(p);
        json_decref(conf);
    }
}

int main(void)
{
    dm_error_t err = {0};
    if (dm_avro_schema_parse(movie_json, strlen(movie_json), &movies, &err) ||
        dm_avro_schema_parse(play_json, strlen(play_json), &plays, &err)) {
        printf("%s\n", err.message);
        return 1;
    }
    RUN(test_table);
    RUN(test_enrich);
    RUN(test_enrich_errors);
    dm_table_free(table);
    dm_avro_schema_free(movies);
    dm_avro_schema_free(plays);
    return check_summary();
}
