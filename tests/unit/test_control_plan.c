/* Unit tests for control/plan: compiling pipeline documents into plans (stages,
 * re-keying, routes, tables, sinks), the JSON round trip for every step kind, the
 * errors of a malformed plan, and explain's text. The registry and the topics are a
 * small in-memory stand-in given through dm_plan_env_t. */
#include "check.h"
#include "control/plan.h"

#define EV                                                                                         \
    "{\"type\":\"record\",\"name\":\"Ev\",\"fields\":[{\"name\":\"id\",\"type\":\"long\"},"        \
    "{\"name\":\"country\",\"type\":\"string\"},{\"name\":\"amount\",\"type\":\"double\"},"        \
    "{\"name\":\"ts\",\"type\":\"long\"}]}"
#define MOVIE                                                                                      \
    "{\"type\":\"record\",\"name\":\"Movie\",\"fields\":[{\"name\":\"movie_id\",\"type\":"         \
    "\"long\"},"                                                                                   \
    "{\"name\":\"title\",\"type\":\"string\"}]}"

/* The stand-in: sources a, b (EV, 4 partitions, key id), m (MOVIE, key movie_id,
 * 1 partition), late (no schema yet); registered outputs get ids from 100. */
typedef struct fake {
    dm_avro_schema_t *ev, *movie;
    json_t *sources, *registered;
    int32_t parts;
    int64_t next_id;
} fake_t;

static dm_err_t f_latest(void *ctx, const char *subject, int64_t *id,
                         const dm_avro_schema_t **schema, dm_error_t *err)
{
    fake_t *f = ctx;
    if (!strcmp(subject, "a-value") || !strcmp(subject, "b-value")) {
        *id = !strcmp(subject, "a-value") ? 1 : 2;
        *schema = f->ev;
        return DM_OK;
    }
    if (!strcmp(subject, "m-value")) {
        *id = 3;
        *schema = f->movie;
        return DM_OK;
    }
    return dm_error_set(err, DM_ERR_NOT_FOUND, "subject %s not found", subject);
}

static dm_err_t f_register(void *ctx, const char *subject, const char *text, int64_t *id,
                           dm_error_t *err)
{
    (void)err;
    fake_t *f = ctx;
    /* the same text gets the same id, as a registry gives */
    json_t *was = json_object_get(f->registered, text);
    *id = was ? json_integer_value(was) : f->next_id++;
    if (!was) json_object_set_new(f->registered, text, json_integer(*id));
    (void)subject;
    return DM_OK;
}

static int32_t f_partitions(void *ctx, const char *topic)
{
    fake_t *f = ctx;
    if (!strcmp(topic, "a") || !strcmp(topic, "b")) return f->parts;
    if (!strcmp(topic, "m")) return 1;
    return 0;
}

static const json_t *f_source(void *ctx, const char *name)
{
    fake_t *f = ctx;
    return json_object_get(f->sources, name);
}

static const json_t *f_sink(void *ctx, const char *name)
{
    (void)ctx;
    (void)name;
    return NULL;
}

static fake_t fake_new(int32_t parts)
{
    fake_t f = {.parts = parts, .next_id = 100};
    dm_avro_schema_parse(EV, strlen(EV), &f.ev, NULL);
    dm_avro_schema_parse(MOVIE, strlen(MOVIE), &f.movie, NULL);
    f.sources = json_pack("{s:{s:{s:[s]}}, s:{s:{s:[s]}}, s:{s:{s:[s]}}}", "a", "spec", "key", "id",
                          "b", "spec", "key", "id", "m", "spec", "key", "movie_id");
    f.registered = json_object();
    return f;
}

static void fake_free(fake_t *f)
{
    dm_avro_schema_free(f->ev);
    dm_avro_schema_free(f->movie);
    json_decref(f->sources);
    json_decref(f->registered);
}

static dm_err_t compile(fake_t *f, const char *doc_json, dm_pipeline_plan_t **plan, dm_error_t *err)
{
    dm_plan_env_t env = {f_latest, f_register, f_partitions, f_source, f_sink, f, NULL};
    json_t *doc = json_loads(doc_json, 0, NULL);
    if (!doc) return dm_error_set(err, DM_ERR_INVALID, "bad test document");
    dm_err_t rc = dm_plan_compile(doc, &env, plan, err);
    json_decref(doc);
    return rc;
}

#define PIPE(from, steps)                                                                          \
    "{\"kind\":\"Pipeline\",\"metadata\":{\"name\":\"p\"},\"spec\":{\"from\":" from                \
    ",\"steps\":" steps ",\"to\":[{\"source\":\"out\"},{\"sink\":{\"type\":\"file\",\"path\":"     \
    "\"o.jsonl\"}}]}}"

/* Every step kind, alone and together, survives to_json → from_json → to_json. */
static void test_round_trip_every_step(void)
{
    static const char *const docs[] = {
        PIPE("[\"a\"]", "[{\"filter\":\"country = 'US'\"}]"),
        PIPE("[\"a\"]", "[{\"project\":[\"id\",\"amount * 100 AS cents\"]}]"),
        PIPE("[\"a\"]", "[{\"enrich\":{\"with\":\"m\",\"on\":\"id\",\"fields\":[\"title\"]}}]"),
        PIPE("[\"a\"]", "[{\"aggregate\":{\"window\":{\"type\":\"tumbling\",\"size\":\"10s\"},"
                        "\"time\":\"ts\",\"group_by\":[\"country\"],\"aggregates\":[\"count(*) "
                        "AS n\"]}}]"),
        PIPE("[\"a\"]", "[{\"dedupe\":{\"key\":[\"country\"],\"within\":\"1m\",\"time\":\"ts\"}}]"),
        PIPE("[\"a\"]", "[{\"route\":{\"outputs\":{\"us\":\"country = 'US'\"},\"default\":"
                        "\"rest\"}}]"),
        PIPE("[\"a\"]", "[{\"join\":{\"with\":\"b\",\"on\":\"country\",\"within\":\"1m\","
                        "\"time\":\"ts\"}}]"),
        PIPE("[\"a\", \"b\"]", "[{\"filter\":\"amount > 0\"}]"),
    };
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        fake_t f = fake_new(2);
        dm_error_t err = {0};
        dm_pipeline_plan_t *plan = NULL, *back = NULL;
        dm_err_t rc = compile(&f, docs[i], &plan, &err);
        if (rc) printf("    doc %zu: %s\n", i, err.message);
        REQUIRE(rc == DM_OK);
        json_t *j1 = dm_plan_to_json(plan);
        REQUIRE(dm_plan_from_json(j1, &back, &err) == DM_OK);
        json_t *j2 = dm_plan_to_json(back);
        CHECK(json_equal(j1, j2));
        /* and through text, as workers get it */
        char *text = json_dumps(j2, JSON_COMPACT);
        json_t *j3 = json_loads(text, 0, NULL);
        dm_pipeline_plan_t *again = NULL;
        CHECK(dm_plan_from_json(j3, &again, &err) == DM_OK);
        dm_plan_free(again);
        free(text);
        json_decref(j3);
        json_decref(j1);
        json_decref(j2);
        dm_plan_free(plan);
        dm_plan_free(back);
        fake_free(&f);
    }
}

static void test_stages_and_rekey(void)
{
    fake_t f = fake_new(4);
    dm_error_t err = {0};
    dm_pipeline_plan_t *plan = NULL;
    /* grouped by the source's key: records of a key are together already */
    REQUIRE(compile(&f,
                    PIPE("[\"a\"]", "[{\"dedupe\":{\"key\":[\"id\"],\"within\":\"1m\",\"time\":"
                                    "\"ts\"}}]"),
                    &plan, &err) == DM_OK);
    CHECK_EQ_INT(plan->n_stages, 1);
    CHECK_STR_EQ(plan->stages[0].state_topic, "pipeline.p.state");
    CHECK_STR_EQ(plan->stages[0].event_time, "ts");
    dm_plan_free(plan);
    /* a union grouped by country: split before the aggregate */
    REQUIRE(compile(&f,
                    PIPE("[\"a\",\"b\"]", "[{\"filter\":\"amount > 0\"},{\"aggregate\":{"
                                          "\"window\":{\"type\":\"tumbling\",\"size\":\"10s\"},"
                                          "\"time\":\"ts\",\"group_by\":[\"country\"],"
                                          "\"aggregates\":[\"count(*) AS n\"]}}]"),
                    &plan, &err) == DM_OK);
    REQUIRE(plan->n_stages == 2);
    const dm_plan_stage_t *s0 = &plan->stages[0], *s1 = &plan->stages[1];
    CHECK_STR_EQ(s0->output, "pipeline.p.rekey.1");
    CHECK(s0->writes_rekey);
    CHECK_EQ_INT(s0->n_steps, 2); /* the filter, then the re-key */
    CHECK_STR_EQ(s0->steps[1].kind, "rekey");
    CHECK_STR_EQ(s0->event_time, "ts"); /* for the watermarks it sends */
    CHECK(s0->state_topic == NULL);
    CHECK_EQ_INT(s0->n_more, 1);
    CHECK_STR_EQ(s1->input.topic, "pipeline.p.rekey.1");
    CHECK_EQ_INT(s1->input.partitions, 4);
    CHECK_EQ_INT(s1->watermark_producers, 4);
    CHECK_STR_EQ(s1->group, "pipeline.p.rekey.1");
    CHECK_STR_EQ(s1->state_topic, "pipeline.p.state.rekey.1");
    CHECK_STR_EQ(s1->output, "out");
    CHECK_EQ_INT(s1->steps[0].index, 1);
    dm_plan_free(plan);
    /* a global aggregate: one partition sees everything */
    REQUIRE(compile(&f,
                    PIPE("[\"a\"]", "[{\"aggregate\":{\"window\":{\"type\":\"tumbling\",\"size\":"
                                    "\"10s\"},\"time\":\"ts\",\"aggregates\":[\"count(*) AS "
                                    "n\"]}}]"),
                    &plan, &err) == DM_OK);
    REQUIRE(plan->n_stages == 2);
    CHECK_EQ_INT(plan->stages[1].input.partitions, 1);
    dm_plan_free(plan);
    /* a join: both sides re-keyed, the other side by a stage of its own */
    REQUIRE(compile(&f,
                    PIPE("[\"a\"]", "[{\"join\":{\"with\":\"b\",\"on\":\"country\",\"within\":"
                                    "\"1m\",\"time\":\"ts\"}}]"),
                    &plan, &err) == DM_OK);
    REQUIRE(plan->n_stages == 3);
    CHECK_STR_EQ(plan->stages[1].other.topic, "pipeline.p.rekey.0.with");
    CHECK_STR_EQ(plan->stages[2].input.topic, "b");
    CHECK_STR_EQ(plan->stages[2].output, "pipeline.p.rekey.0.with");
    CHECK_EQ_INT(plan->stages[2].producer_base, 4);
    CHECK_EQ_INT(plan->stages[1].watermark_producers, 8);
    CHECK_STR_EQ(plan->stages[2].event_time, "ts");
    dm_plan_free(plan);
    fake_free(&f);

    /* one partition: nothing to split */
    f = fake_new(1);
    REQUIRE(compile(&f,
                    PIPE("[\"a\"]", "[{\"join\":{\"with\":\"b\",\"on\":\"country\",\"within\":"
                                    "\"1m\",\"time\":\"ts\"}}]"),
                    &plan, &err) == DM_OK);
    CHECK_EQ_INT(plan->n_stages, 1);
    CHECK_STR_EQ(plan->stages[0].other.topic, "b");
    dm_plan_free(plan);
    fake_free(&f);
}

static void test_routes_tables_sinks(void)
{
    fake_t f = fake_new(2);
    dm_error_t err = {0};
    dm_pipeline_plan_t *plan = NULL;
    REQUIRE(compile(&f,
                    PIPE("[\"a\"]", "[{\"enrich\":{\"with\":\"m\",\"on\":\"id\",\"fields\":[\""
                                    "title\"]}},{\"route\":{\"outputs\":{\"us\":\"country = "
                                    "'US'\"},\"default\":\"rest\"}}]"),
                    &plan, &err) == DM_OK);
    CHECK_EQ_INT(plan->n_tables, 1);
    CHECK_STR_EQ(plan->tables[0].source, "m");
    CHECK_STR_EQ(plan->tables[0].key, "movie_id");
    CHECK_EQ_INT(plan->stages[0].n_extra, 1);
    CHECK_STR_EQ(plan->stages[0].extra[0], "us");
    CHECK_EQ_INT(plan->n_sinks, 1);
    CHECK_STR_EQ(plan->sinks[0].type, "file");
    CHECK_STR_EQ(plan->sinks[0].group, "sink.p.0");
    CHECK_STR_EQ(plan->sinks[0].key[0], "id");
    CHECK(json_object_get(plan->sinks[0].settings, "type") == NULL);
    CHECK_STR_EQ(plan->output, "out");
    CHECK(plan->output_schema_id >= 100);
    /* the enriched output is a new schema: registered, its id on the stage */
    CHECK_EQ_INT(plan->stages[0].output_schema_id, plan->output_schema_id);
    char *text = dm_plan_explain(plan), want[64];
    snprintf(want, sizeof(want), "route output us, schema id %lld\n",
             (long long)plan->output_schema_id);
    CHECK(strstr(text, want) != NULL);
    free(text);
    /* a dry run's new schemas read "new", on every line */
    plan->stages[0].output_schema_id = 0;
    text = dm_plan_explain(plan);
    CHECK(strstr(text, "route output us, schema id new\n") != NULL);
    json_t *js = json_string(text); /* NULL unless valid UTF-8 throughout */
    CHECK(js != NULL);
    json_decref(js);
    free(text);
    dm_plan_free(plan);
    fake_free(&f);
}

static void test_waits_and_errors(void)
{
    fake_t f = fake_new(2);
    dm_error_t err = {0};
    dm_pipeline_plan_t *plan = NULL;
    /* a source that has no schema yet: not yet, not never */
    CHECK_EQ_INT(compile(&f, PIPE("[\"late\"]", "[]"), &plan, &err), DM_ERR_AGAIN);
    CHECK(strstr(err.message, "waiting for source late") != NULL);
    CHECK(plan == NULL);
    /* a bad expression: for good, naming the step */
    err = (dm_error_t){0};
    CHECK_EQ_INT(compile(&f, PIPE("[\"a\"]", "[{\"filter\":\"nope > 1\"}]"), &plan, &err) != DM_OK,
                 1);
    CHECK(strstr(err.message, "spec.steps[0].filter") != NULL);
    CHECK(strstr(err.message, "Pipeline p") != NULL);
    /* enrich with a source without a key */
    json_object_set_new(f.sources, "m", json_pack("{s:{}}", "spec"));
    err = (dm_error_t){0};
    CHECK(compile(&f, PIPE("[\"a\"]", "[{\"enrich\":{\"with\":\"m\",\"on\":\"id\"}}]"), &plan,
                  &err) != DM_OK);
    CHECK(strstr(err.message, "no key") != NULL);
    fake_free(&f);

    /* malformed plans name the member */
    static const char *const bad[][2] = {
        {"[]", "not a JSON object"},
        {"{\"pipeline\":\"p\",\"dead_letter\":\"d\",\"output\":\"o\",\"output_schema_id\":1,"
         "\"idle_timeout_ms\":0,\"state_spill_bytes\":0,\"stages\":[],\"tables\":[],\"topics\":[],"
         "\"sinks\":[]}",
         "stages is empty"},
        {"{\"pipeline\":\"p\",\"dead_letter\":\"d\",\"output\":\"o\",\"output_schema_id\":1,"
         "\"idle_timeout_ms\":0,\"state_spill_bytes\":0,\"stages\":[{\"name\":\"main\",\"group\":"
         "\"g\",\"input\":{\"topic\":7,\"schema_id\":1,\"partitions\":1},\"more\":[],\"steps\":[],"
         "\"output\":\"o\",\"output_schema_id\":1}],\"tables\":[],\"topics\":[],\"sinks\":[]}",
         "stages[0].input.topic must be a string"},
        {"{\"pipeline\":\"p\",\"dead_letter\":\"d\",\"output\":\"o\",\"output_schema_id\":1,"
         "\"idle_timeout_ms\":0,\"state_spill_bytes\":0,\"stages\":[{\"name\":\"main\",\"group\":"
         "\"g\",\"input\":{\"topic\":\"a\",\"schema_id\":1,\"partitions\":1},\"more\":[],\"steps\":"
         "[{\"index\":0,\"kind\":\"teleport\",\"config\":{}}],\"output\":\"o\","
         "\"output_schema_id\":1}],\"tables\":[],\"topics\":[],\"sinks\":[]}",
         "step 'teleport' is not available"},
        {"{\"pipeline\":\"p\"}", "dead_letter must be a string"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *j = json_loads(bad[i][0], JSON_DECODE_ANY, NULL);
        REQUIRE(j);
        err = (dm_error_t){0};
        dm_pipeline_plan_t *p = NULL;
        CHECK(dm_plan_from_json(j, &p, &err) != DM_OK);
        CHECK(p == NULL);
        if (!strstr(err.message, bad[i][1])) printf("    case %zu: %s\n", i, err.message);
        CHECK(strstr(err.message, bad[i][1]) != NULL);
        json_decref(j);
    }
}

static void test_explain_golden(void)
{
    fake_t f = fake_new(2);
    dm_error_t err = {0};
    dm_pipeline_plan_t *plan = NULL;
    REQUIRE(compile(&f,
                    PIPE("[\"a\"]", "[{\"filter\":\"amount > 0\"},{\"dedupe\":{\"key\":["
                                    "\"country\"],\"within\":\"1m\",\"time\":\"ts\"}}]"),
                    &plan, &err) == DM_OK);
    char *text = dm_plan_explain(plan);
    const char *want =
        "Pipeline p: 2 stages\n"
        "\n"
        "stage main: 2 tasks (one per partition of a), group pipeline.p\n"
        "    reads   a (2 partitions, schema id 1)\n"
        "    event time: ts\n"
        "    fused chain:\n"
        "      steps[0] filter {\"expr\":\"amount > 0\"}\n"
        "        reads: amount\n"
        "      re-key {\"by\":[\"country\"]}\n"
        "        reads: country\n"
        "    writes pipeline.p.rekey.1 (re-keyed), schema id 100\n"
        "\n"
        "stage rekey.1: 2 tasks (one per partition of pipeline.p.rekey.1), group "
        "pipeline.p.rekey.1\n"
        "    reads   pipeline.p.rekey.1 (2 partitions, schema id 100)\n"
        "    event time: ts\n"
        "    watermark: the smallest of 2 upstream tasks'\n"
        "    fused chain:\n"
        "      steps[1] dedupe {\"key\":[\"country\"],\"within\":\"1m\",\"time\":\"ts\"}\n"
        "        reads: country, ts\n"
        "    state: pipeline.p.state.rekey.1 (compacted)\n"
        "    writes out, schema id 100\n"
        "\n"
        "topics:\n"
        "    pipeline.p.rekey.1: 2 partitions\n"
        "    pipeline.p.state.rekey.1: 2 partitions, compacted\n"
        "    out: 2 partitions\n"
        "    pipeline.p.dlq: 1 partition\n"
        "    pipeline.p.replay: 2 partitions\n"
        "\n"
        "sinks (reading out):\n"
        "    p/sink/0: file, group sink.p.0\n"
        "\n"
        "output schema (id 100):\n"
        "    " EV "\n";
    if (strcmp(text, want)) printf("--- got:\n%s--- want:\n%s", text, want);
    CHECK_STR_EQ(text, want);
    free(text);
    dm_plan_free(plan);
    fake_free(&f);
}

int main(void)
{
    RUN(test_round_trip_every_step);
    RUN(test_stages_and_rekey);
    RUN(test_routes_tables_sinks);
    RUN(test_waits_and_errors);
    RUN(test_explain_golden);
    return check_summary();
}
