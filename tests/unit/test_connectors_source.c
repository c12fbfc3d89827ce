/* tests/unit/test_connectors_source.c — the source connector registry and the
 * common source interface (connectors/source.h): every listed connector is a
 * complete ops struct with a config table; datagen and file run through their
 * ops the way the runtime drives them; the ingest write path validates every
 * record before writing any. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "connectors/ingest/ingest.h"
#include "connectors/source.h"
#include "connectors/unit.h"
#include "schema/dm_avro.h"
#include "schema/wire.h"
#include "transport/transport.h"

static char dir[] = "/tmp/dm-test-source.XXXXXX";
static dm_transport_t *t;
static dm_avro_schema_t *value_schema, *key_schema;

static const char *CLICK = "{\"type\": \"record\", \"name\": \"Click\", \"fields\": ["
                           "{\"name\": \"user\", \"type\": \"string\"},"
                           "{\"name\": \"page\", \"type\": \"string\"},"
                           "{\"name\": \"ms\", \"type\": \"long\"}]}";
static const char *CLICK_KEY = "{\"type\": \"record\", \"name\": \"ClickKey\", \"fields\": ["
                               "{\"name\": \"user\", \"type\": \"string\"}]}";

/* Records in topic over every partition. */
static int64_t count(const char *topic, int32_t partitions)
{
    int64_t n = 0;
    for (int32_t p = 0; p < partitions; p++) {
        int64_t start = 0, end = 0;
        if (dm_transport_offsets(t, topic, p, &start, &end, NULL) == DM_OK) n += end - start;
    }
    return n;
}

static void make_topic(const char *name, int32_t partitions)
{
    dm_error_t err = {0};
    REQUIRE(dm_transport_create_topic(
                t, &(dm_topic_config_t){.name = name, .partitions = partitions}, &err) == DM_OK);
}

/* ---- the registry ---------------------------------------------------------------- */

static void test_registry_lists_complete_ops(void)
{
    size_t n = 0;
    const dm_source_ops_t *const *list = dm_source_ops_list(&n);
    REQUIRE(n >= 4);
    char available[256];
    dm_source_connectors_available(available, sizeof(available));
    for (size_t i = 0; i < n; i++) {
        const dm_source_ops_t *ops = list[i];
        REQUIRE(ops && ops->def.name && ops->def.name[0]);
        printf("    %s: %s\n", ops->def.name, ops->def.summary ? ops->def.summary : "(none)");
        CHECK(ops->def.summary && ops->def.summary[0]);
        /* a config table that drives parsing, validation and the docs */
        CHECK(ops->def.config && ops->def.config->n_fields > 0 && ops->def.config->fields);
        CHECK(ops->def.config_size > 0);
        for (size_t f = 0; ops->def.config && f < ops->def.config->n_fields; f++)
            CHECK(ops->def.config->fields[f].help && ops->def.config->fields[f].help[0]);
        /* a source either runs a thread (open, run, close) or is filled by the API */
        if (ops->runs_thread)
            CHECK(ops->open && ops->run && ops->close && !ops->push);
        else
            CHECK(ops->push && !ops->open && !ops->run);
        /* names are unique, found by both look-ups (spec validation uses the
         * second), listed among the available ones */
        for (size_t j = 0; j < i; j++)
            CHECK(strcmp(list[j]->def.name, ops->def.name) != 0);
        CHECK(dm_source_ops_find(ops->def.name) == ops);
        CHECK(dm_source_connector_find(ops->def.name) == &ops->def);
        CHECK_CONTAINS(available, ops->def.name);
    }
    /* DESIGN.md's connectors: every one is built and registered (one that
     * is not would be refused by the look-ups and not listed) */
    size_t designed = 0, built = 0;
    for (size_t k = 0; dm_source_connector_names[k]; k++, designed++) {
        const char *c = dm_source_connector_names[k];
        if (dm_source_ops_find(c)) {
            built++;
        } else {
            CHECK(dm_source_connector_find(c) == NULL);
            CHECK(strstr(available, c) == NULL);
        }
    }
    CHECK(built > 0 && built <= n);
    CHECK(designed == built);
    CHECK(dm_source_ops_find("mysql") != NULL);
    CHECK(dm_source_ops_find("cockroachdb") != NULL);
    CHECK(dm_source_ops_find(NULL) == NULL);
}

/* Every connector's defaults parse; a config missing what it requires, or with
 * an unknown key, is refused naming the key. */
static void test_registry_config_tables_parse(void)
{
    size_t n = 0;
    const dm_source_ops_t *const *list = dm_source_ops_list(&n);
    for (size_t i = 0; i < n; i++) {
        const dm_config_table_t *table = list[i]->def.config;
        void *conf = calloc(1, list[i]->def.config_size);
        REQUIRE(conf);
        dm_error_t err = {0};
        CHECK(dm_config_defaults(table, conf, &err) == DM_OK);
        json_t *bad = json_pack("{s:i}", "no_such_setting", 1);
        CHECK(dm_config_apply_json(table, conf, bad, NULL, &err) == DM_ERR_CONFIG_UNKNOWN_KEY);
        CHECK_CONTAINS(err.message, "no_such_setting");
        json_decref(bad);
        dm_config_free(table, conf);
        free(conf);
    }
}

/* ---- datagen and file through their ops, as the runtime drives them ---------------- */

static dm_err_t no_topic(void *ctx, const char *topic, int32_t partitions, const char *subject,
                         dm_error_t *err)
{
    return dm_error_set(err, DM_ERR_UNSUPPORTED, "not in this test");
}

/* Opens ops with settings (JSON) and runs it on this thread until it is done. */
static void run_source(const dm_source_ops_t *ops, const char *settings, dm_source_env_t *env,
                       dm_unit_status_t *st)
{
    void *conf = calloc(1, ops->def.config_size), *state = NULL;
    REQUIRE(conf);
    dm_error_t err = {0};
    json_t *j = json_loads(settings, 0, NULL);
    REQUIRE(dm_config_defaults(ops->def.config, conf, &err) == DM_OK);
    if (dm_config_apply_json(ops->def.config, conf, j, NULL, &err)) printf("    %s\n", err.message);
    json_decref(j);
    env->ensure_topic = no_topic;
    REQUIRE(ops->open(conf, env, &state, &err) == DM_OK);
    dm_unit_init(st);
    ops->run(state, st); /* both end by themselves: max_events, end of file */
    ops->close(state);
    dm_config_free(ops->def.config, conf);
    free(conf);
}

static void test_datagen_through_ops(void)
{
    make_topic("gen", 2);
    dm_strlist_t keys = {.items = (char *[]){"user"}, .n = 1};
    dm_source_env_t env = {.name = "gen",
                           .transport = t,
                           .topic = "gen",
                           .partitions = 2,
                           .value_schema = value_schema,
                           .value_schema_id = 7,
                           .key_schema = key_schema,
                           .key_schema_id = 8,
                           .key_fields = &keys};
    dm_unit_status_t st;
    run_source(dm_source_ops_find("datagen"), "{\"rate\": 1000, \"max_events\": 50, \"seed\": 3}",
               &env, &st);
    char state[32], error[512];
    dm_unit_get(&st, state, sizeof(state), error, sizeof(error));
    CHECK_STR_EQ(state, "done");
    CHECK_EQ_INT(atomic_load(&st.position), 50);
    CHECK_EQ_INT(count("gen", 2), 50);
    /* records carry the ids the runtime lent */
    dm_transport_batch_t b = {0};
    REQUIRE(dm_transport_fetch(t, "gen", 0, 0, 1 << 20, 0, &b, NULL) == DM_OK && b.n > 0);
    uint32_t id = 0;
    CHECK(dm_wire_get_header(b.records[0].value, (size_t)b.records[0].value_len, &id) == DM_OK);
    CHECK_EQ_INT(id, 7);
    CHECK(dm_wire_get_header(b.records[0].key, (size_t)b.records[0].key_len, &id) == DM_OK);
    CHECK_EQ_INT(id, 8);
    dm_transport_batch_free(t, &b);
    dm_unit_destroy(&st);
}

static void test_file_through_ops_dead_letters(void)
{
    make_topic("lines", 1);
    make_topic("source.lines.dlq", 1);
    char path[300];
    snprintf(path, sizeof(path), "%s/in.jsonl", dir);
    FILE *f = fopen(path, "w");
    REQUIRE(f);
    fputs("{\"user\":\"a\",\"page\":\"/\",\"ms\":1}\n{\"user\":\"b\"}\n"
          "{\"user\":\"c\",\"page\":\"/c\",\"ms\":3}\n",
          f);
    fclose(f);
    dm_strlist_t keys = {0};
    dm_source_env_t env = {.name = "lines",
                           .transport = t,
                           .topic = "lines",
                           .partitions = 1,
                           .value_schema = value_schema,
                           .value_schema_id = 7,
                           .key_fields = &keys,
                           .dead_letter_topic = "source.lines.dlq"};
    char settings[600];
    snprintf(settings, sizeof(settings), "{\"path\": \"%s\"}", path);
    dm_unit_status_t st;
    run_source(dm_source_ops_find("file"), settings, &env, &st);
    char state[32], error[512];
    dm_unit_get(&st, state, sizeof(state), error, sizeof(error));
    CHECK_STR_EQ(state, "done");
    CHECK_CONTAINS(error, "1 records rejected to source.lines.dlq");
    CHECK_EQ_INT(count("lines", 1), 2);
    CHECK_EQ_INT(count("source.lines.dlq", 1), 1);
    dm_unit_destroy(&st);
}

/* ---- ingest: the write path the API calls ------------------------------------------ */

static dm_ingest_config_t ingest_conf(void)
{
    dm_ingest_config_t c;
    dm_error_t err = {0};
    dm_config_defaults(&dm_ingest_config_table, &c, &err);
    return c;
}

static dm_source_env_t ingest_env(const char *topic, int32_t partitions)
{
    static char *user[] = {"user"};
    static dm_strlist_t keys = {.items = user, .n = 1};
    return (dm_source_env_t){.name = topic,
                             .transport = t,
                             .topic = topic,
                             .partitions = partitions,
                             .value_schema = value_schema,
                             .value_schema_id = 7,
                             .key_schema = key_schema,
                             .key_schema_id = 8,
                             .key_fields = &keys};
}

static void test_ingest_writes_all_partitioned_by_key(void)
{
    make_topic("clicks", 4);
    dm_ingest_config_t conf = ingest_conf();
    dm_source_env_t env = ingest_env("clicks", 4);
    const char *body = "[{\"user\":\"a\",\"page\":\"/\",\"ms\":1},"
                       "{\"user\":\"b\",\"page\":\"/x\",\"ms\":2},"
                       "{\"user\":\"a\",\"page\":\"/y\",\"ms\":3}]";
    size_t accepted = 0;
    dm_error_t err = {0};
    CHECK(dm_ingest_push(&conf, &env, body, strlen(body), &accepted, &err) == DM_OK);
    CHECK_EQ_INT(accepted, 3);
    CHECK_EQ_INT(count("clicks", 4), 3);
    /* both records of user a are in one partition, in order */
    int with_two = -1;
    for (int32_t p = 0; p < 4; p++) {
        int64_t start, end;
        dm_transport_offsets(t, "clicks", p, &start, &end, NULL);
        if (end - start == 2) with_two = p;
    }
    REQUIRE(with_two >= 0);
    dm_transport_batch_t b = {0};
    REQUIRE(dm_transport_fetch(t, "clicks", with_two, 0, 1 << 20, 0, &b, NULL) == DM_OK);
    REQUIRE(b.n == 2);
    CHECK_EQ_INT(b.records[0].key_len, b.records[1].key_len);
    CHECK(memcmp(b.records[0].key, b.records[1].key, (size_t)b.records[0].key_len) == 0);
    dm_transport_batch_free(t, &b);
    /* one object is one record */
    const char *one = "{\"user\":\"z\",\"page\":\"/z\",\"ms\":9}";
    CHECK(dm_ingest_push(&conf, &env, one, strlen(one), &accepted, &err) == DM_OK);
    CHECK_EQ_INT(accepted, 1);
    CHECK_EQ_INT(count("clicks", 4), 4);
}

static void test_ingest_refuses_a_bad_record_writing_nothing(void)
{
    dm_ingest_config_t conf = ingest_conf();
    dm_source_env_t env = ingest_env("clicks", 4);
    int64_t before = count("clicks", 4);
    /* record 1 lacks page: the error names the index and the field */
    const char *body = "[{\"user\":\"c\",\"page\":\"/\",\"ms\":4},{\"user\":\"d\",\"ms\":5},"
                       "{\"user\":\"e\",\"page\":\"/e\",\"ms\":6}]";
    size_t accepted = 99;
    dm_error_t err = {0};
    CHECK(dm_ingest_push(&conf, &env, body, strlen(body), &accepted, &err) ==
          DM_ERR_SCHEMA_MISMATCH);
    printf("    %s\n", err.message);
    CHECK(strncmp(err.message, "record 1: ", 10) == 0);
    CHECK_CONTAINS(err.message, "page");
    CHECK_EQ_INT(accepted, 0);
    CHECK_EQ_INT(count("clicks", 4), before);
    /* a value of the wrong type */
    const char *typed = "[{\"user\":5,\"page\":\"/\",\"ms\":1}]";
    CHECK(dm_ingest_push(&conf, &env, typed, strlen(typed), &accepted, &err) ==
          DM_ERR_SCHEMA_MISMATCH);
    CHECK(strncmp(err.message, "record 0: ", 10) == 0);
    CHECK_CONTAINS(err.message, "user");
    CHECK_EQ_INT(count("clicks", 4), before);
}

static void test_ingest_refuses_malformed_requests(void)
{
    dm_ingest_config_t conf = ingest_conf();
    dm_source_env_t env = ingest_env("clicks", 4);
    int64_t before = count("clicks", 4);
    size_t accepted;
    dm_error_t err = {0};
    CHECK(dm_ingest_push(&conf, &env, "[{\"user\":", 9, &accepted, &err) == DM_ERR_INVALID);
    CHECK_CONTAINS(err.message, "not JSON");
    CHECK(dm_ingest_push(&conf, &env, "", 0, &accepted, &err) == DM_ERR_INVALID);
    CHECK(dm_ingest_push(&conf, &env, "[]", 2, &accepted, &err) == DM_ERR_INVALID);
    CHECK_CONTAINS(err.message, "1 to 10000 records");
    CHECK(dm_ingest_push(&conf, &env, "42", 2, &accepted, &err) == DM_ERR_INVALID);
    conf.max_records = 1;
    const char *two =
        "[{\"user\":\"a\",\"page\":\"/\",\"ms\":1},{\"user\":\"b\",\"page\":\"/\",\"ms\":2}]";
    CHECK(dm_ingest_push(&conf, &env, two, strlen(two), &accepted, &err) == DM_ERR_INVALID);
    conf = ingest_conf();
    conf.max_bytes = 10;
    CHECK(dm_ingest_push(&conf, &env, two, strlen(two), &accepted, &err) == DM_ERR_RANGE);
    CHECK_CONTAINS(err.message, "larger than 10 bytes");
    /* a source without its schema yet: retry later */
    conf = ingest_conf();
    env.value_schema = NULL;
    CHECK(dm_ingest_push(&conf, &env, two, strlen(two), &accepted, &err) == DM_ERR_AGAIN);
    CHECK_CONTAINS(err.message, "not ready");
    /* a topic that does not exist: nothing written, retriable */
    env = ingest_env("no-such-topic", 1);
    CHECK(dm_ingest_push(&conf, &env, two, strlen(two), &accepted, &err) == DM_ERR_AGAIN);
    CHECK_CONTAINS(err.message, "writing to source 'no-such-topic'");
    CHECK_EQ_INT(count("clicks", 4), before);
}

/* ---- ingest: binary batches (the emitter's) ------------------------------------------- */

static const char *CLICK2 = "{\"type\": \"record\", \"name\": \"Click\", \"fields\": ["
                            "{\"name\": \"user\", \"type\": \"string\"},"
                            "{\"name\": \"page\", \"type\": \"string\"},"
                            "{\"name\": \"ms\", \"type\": \"long\"},"
                            "{\"name\": \"country\", \"type\": \"string\", \"default\": \"?\"}]}";
static dm_avro_schema_t *click2;

/* The registry of the test: id 7 (CLICK) is an older version of bin-value. */
static const dm_avro_schema_t *older_version(void *ctx, const char *subject, uint32_t id)
{
    (void)ctx;
    return id == 7 && !strcmp(subject, "bin-value") ? value_schema : NULL;
}

/* Appends a record framed with schema id to a binary batch body. */
static void batch_add(dm_buf_t *body, const dm_avro_schema_t *s, uint32_t id, const char *json)
{
    dm_arena_t arena;
    dm_arena_init(&arena, 0);
    dm_avro_value_t v;
    dm_buf_t rec = DM_BUF_INIT;
    dm_error_t err = {0};
    REQUIRE(dm_avro_from_json_text(s->root, json, strlen(json), DM_AVRO_JSON_PLAIN, &arena, &v,
                                   &err) == DM_OK);
    REQUIRE(dm_wire_put_header(&rec, id) == DM_OK);
    REQUIRE(dm_avro_encode(s->root, &v, &rec, &err) == DM_OK);
    uint8_t len[4] = {(uint8_t)(rec.len >> 24), (uint8_t)(rec.len >> 16), (uint8_t)(rec.len >> 8),
                      (uint8_t)rec.len};
    dm_buf_append(body, len, 4);
    dm_buf_append(body, rec.data, rec.len);
    dm_buf_free(&rec);
    dm_arena_destroy(&arena);
}

static void batch_start(dm_buf_t *body, uint64_t first, uint32_t n)
{
    dm_buf_reset(body);
    dm_buf_append(body, "DMB1\x04prod", 9);
    uint8_t h[12];
    for (int i = 0; i < 8; i++)
        h[i] = (uint8_t)(first >> (56 - 8 * i));
    for (int i = 0; i < 4; i++)
        h[8 + i] = (uint8_t)(n >> (24 - 8 * i));
    dm_buf_append(body, h, 12);
}

static void test_ingest_binary_batches_current_and_older_versions(void)
{
    make_topic("bin", 2);
    dm_ingest_config_t conf = ingest_conf();
    dm_source_env_t env = {.name = "bin",
                           .transport = t,
                           .topic = "bin",
                           .partitions = 2,
                           .value_schema = click2,
                           .value_schema_id = 9,
                           .key_fields = &(dm_strlist_t){0},
                           .schema_version = older_version};
    dm_buf_t body = DM_BUF_INIT;
    size_t accepted = 0;
    dm_error_t err = {0};
    /* one record of the current version (id 9), one of the older (id 7) */
    batch_start(&body, 0, 2);
    batch_add(&body, click2, 9, "{\"user\":\"a\",\"page\":\"/\",\"ms\":1,\"country\":\"fr\"}");
    batch_add(&body, value_schema, 7, "{\"user\":\"b\",\"page\":\"/b\",\"ms\":2}");
    CHECK(dm_ingest_push(&conf, &env, body.data, body.len, &accepted, &err) == DM_OK);
    printf("    %s\n", err.message);
    CHECK_EQ_INT(accepted, 2);
    CHECK_EQ_INT(count("bin", 2), 2);
    /* both are written with the current id; the older one got the default */
    int seen = 0;
    for (int32_t p = 0; p < 2; p++) {
        dm_transport_batch_t b = {0};
        REQUIRE(dm_transport_fetch(t, "bin", p, 0, 1 << 20, 0, &b, NULL) == DM_OK);
        for (size_t i = 0; i < b.n; i++) {
            const uint8_t *v = b.records[i].value;
            CHECK_EQ_INT(v[0], 0);
            CHECK_EQ_INT(((uint32_t)v[1] << 24 | v[2] << 16 | v[3] << 8 | v[4]), 9);
            dm_arena_t arena;
            dm_arena_init(&arena, 0);
            dm_avro_value_t val;
            size_t used;
            REQUIRE(dm_avro_decode_node(click2->root, v + 5, (size_t)b.records[i].value_len - 5,
                                        &used, &arena, &val, &err) == DM_OK);
            const dm_avro_value_t *user = &val.u.v[0], *country = &val.u.v[3];
            if (user->len == 1 && user->u.p[0] == 'b') {
                CHECK(country->len == 1 && country->u.p[0] == '?');
                seen |= 2;
            } else {
                CHECK(country->len == 2 && !memcmp(country->u.p, "fr", 2));
                seen |= 1;
            }
            dm_arena_destroy(&arena);
        }
        dm_transport_batch_free(t, &b);
    }
    CHECK_EQ_INT(seen, 3);
    /* the same batch again (a retry): taken, nothing written */
    CHECK(dm_ingest_push(&conf, &env, body.data, body.len, &accepted, &err) == DM_OK);
    CHECK_EQ_INT(count("bin", 2), 2);
    /* a current-id record whose bytes are not the schema: refused by index, nothing written */
    batch_start(&body, 2, 2);
    batch_add(&body, click2, 9, "{\"user\":\"c\",\"page\":\"/\",\"ms\":1,\"country\":\"de\"}");
    batch_add(&body, value_schema, 9, "{\"user\":\"d\",\"page\":\"/d\",\"ms\":2}");
    CHECK(dm_ingest_push(&conf, &env, body.data, body.len, &accepted, &err) ==
          DM_ERR_SCHEMA_MISMATCH);
    printf("    %s\n", err.message);
    CHECK(strncmp(err.message, "record 1: ", 10) == 0);
    CHECK_CONTAINS(err.message, "country");
    /* an id that is no version of the source */
    batch_start(&body, 2, 1);
    batch_add(&body, value_schema, 99, "{\"user\":\"e\",\"page\":\"/e\",\"ms\":2}");
    CHECK(dm_ingest_push(&conf, &env, body.data, body.len, &accepted, &err) ==
          DM_ERR_SCHEMA_MISMATCH);
    printf("    %s\n", err.message);
    CHECK_CONTAINS(err.message, "record 0: schema id 99 is not source bin's current schema id 9");
    /* without a registry to ask, an older id is refused the same way */
    env.schema_version = NULL;
    batch_start(&body, 2, 1);
    batch_add(&body, value_schema, 7, "{\"user\":\"f\",\"page\":\"/f\",\"ms\":2}");
    CHECK(dm_ingest_push(&conf, &env, body.data, body.len, &accepted, &err) ==
          DM_ERR_SCHEMA_MISMATCH);
    CHECK_CONTAINS(err.message, "schema id 7 is not source bin's");
    CHECK_EQ_INT(count("bin", 2), 2);
    /* keyed: the key is taken from the checked value */
    dm_source_env_t keyed = ingest_env("clicks", 4);
    int64_t before = count("clicks", 4);
    batch_start(&body, 0, 1);
    batch_add(&body, value_schema, 7, "{\"user\":\"k\",\"page\":\"/k\",\"ms\":3}");
    CHECK(dm_ingest_push(&conf, &keyed, body.data, body.len, &accepted, &err) == DM_OK);
    CHECK_EQ_INT(count("clicks", 4), before + 1);
    dm_buf_free(&body);
}

int main(void)
{
    if (!mkdtemp(dir)) return 1;
    char url[100];
    snprintf(url, sizeof(url), "embedded:%s/log", dir);
    dm_error_t err = {0};
    if (dm_transport_open(url, &t, &err) ||
        dm_avro_schema_parse(CLICK, strlen(CLICK), &value_schema, &err) ||
        dm_avro_schema_parse(CLICK_KEY, strlen(CLICK_KEY), &key_schema, &err) ||
        dm_avro_schema_parse(CLICK2, strlen(CLICK2), &click2, &err)) {
        printf("setup: %s\n", err.message);
        return 1;
    }
    RUN(test_registry_lists_complete_ops);
    RUN(test_registry_config_tables_parse);
    RUN(test_datagen_through_ops);
    RUN(test_file_through_ops_dead_letters);
    RUN(test_ingest_writes_all_partitioned_by_key);
    RUN(test_ingest_refuses_a_bad_record_writing_nothing);
    RUN(test_ingest_refuses_malformed_requests);
    RUN(test_ingest_binary_batches_current_and_older_versions);
    dm_transport_close(t);
    dm_avro_schema_free(value_schema);
    dm_avro_schema_free(key_schema);
    dm_avro_schema_free(click2);
    char cmd[200];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd)) {
    }
    return check_summary();
}
