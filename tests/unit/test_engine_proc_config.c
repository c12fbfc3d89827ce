/* Unit tests for the processors' config tables (engine/processor.c and each
 * engine/proc_*.c): every processor's settings parsed from spec steps, good
 * ones, shorthands, unknown keys, wrong types, values out of bounds and the
 * checks across settings, with the messages users read. */
#include <stdio.h>

#include "check.h"
#include "engine/processor.h"

/* Places every path at a fake spec position, as control/spec.c does. */
static void locate(void *ctx, const char *path, char *out, size_t cap)
{
    (void)ctx;
    snprintf(out, cap, "s.yaml@%s", path);
}

static dm_err_t check_step(const char *step_json, dm_error_t *err)
{
    json_error_t jerr;
    json_t *step = json_loads(step_json, JSON_DECODE_ANY, &jerr);
    if (!step)
        return dm_error_set(err, DM_ERR_INVALID, "bad test json %s: %s", step_json, jerr.text);
    dm_err_t rc = dm_proc_step_check(step, "spec.steps[2]", locate, NULL, err);
    json_decref(step);
    return rc;
}

/* Steps that must be accepted. */
static const char *const good[] = {
    "{\"filter\": \"country = 'US' AND amount > 0\"}",
    "{\"filter\": {\"expr\": \"amount > 0\"}}",
    "{\"project\": [\"id\", \"amount * 100 AS cents\", \"*\", \"-name\"]}",
    "{\"project\": \"id\"}",
    "{\"project\": {\"columns\": [\"id\"]}}",
    "{\"enrich\": {\"with\": \"movies\", \"on\": \"movie_id\"}}",
    "{\"enrich\": {\"with\": \"movies\", \"on\": \"movie_id\", \"fields\": [\"title\", \"year AS "
    "released\"]}}",
    "{\"aggregate\": {\"window\": {\"type\": \"tumbling\", \"size\": \"1m\", \"lateness\": "
    "\"30s\"},"
    " \"time\": \"ts\", \"group_by\": [\"country\"], \"aggregates\": [\"count(*) AS n\"]}}",
    "{\"aggregate\": {\"window\": {\"type\": \"hopping\", \"size\": 600000, \"slide\": \"1m\"}, "
    "\"group_by\": [], \"aggregates\": \"count(*)\"}}",
    "{\"aggregate\": {\"window\": {\"type\": \"session\", \"gap\": \"5m\"}, \"aggregates\": "
    "[\"sum(amount)\", \"count(distinct user) AS users\"]}}",
    "{\"dedupe\": {\"key\": \"order_id\", \"within\": \"10m\"}}",
    "{\"dedupe\": {\"key\": [\"order_id\", \"lower(email) AS email\"], \"within\": 1, \"time\": "
    "\"ts\"}}",
    "{\"route\": {\"outputs\": {\"big\": \"amount > 100\", \"fr\": \"country = 'FR'\"}, "
    "\"default\": \"rest\"}}",
    "{\"join\": {\"with\": \"payments\", \"on\": \"order_id\", \"within\": \"5m\", \"time\": "
    "\"ts\"}}",
};

static void test_good_steps(void)
{
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        dm_error_t err = {0};
        if (check_step(good[i], &err) != DM_OK) {
            printf("    good[%zu] refused: %s\n", i, err.message);
            CHECK(!"good step refused");
        }
    }
}

/* Steps that must be refused, and what the message must hold. */
static const struct {
    const char *step;
    dm_err_t code;
    const char *want;
} bad[] = {
    /* the step itself */
    {"{\"map\": \"x\"}", DM_ERR_CONFIG_UNKNOWN_KEY,
     "s.yaml@spec.steps[2].map: spec.steps[2].map: unknown key 'map'; allowed: filter, project, "
     "enrich, aggregate, dedupe, route, join, processor, lua, sql"},
    {"{\"filter\": \"a\", \"project\": [\"a\"]}", DM_ERR_CONFIG,
     "spec.steps[2]: each step is a mapping with one key, one of: filter, project"},
    {"[1]", DM_ERR_CONFIG, "spec.steps[2]: each step is a mapping with one key"},
    {"{\"sql\": \"SELECT 1\"}", DM_ERR_UNSUPPORTED,
     "spec.steps[2].sql: step 'sql' is not available in this version yet (available: filter, "
     "project, enrich, aggregate, dedupe, route, join, processor, lua)"},
    {"{\"processor\": {\"config\": {}}}", DM_ERR_CONFIG_MISSING,
     "spec.steps[2].processor.name: required key 'name' is missing"},
    {"{\"processor\": {\"name\": \"x\", \"config\": 3}}", DM_ERR_CONFIG_TYPE,
     "spec.steps[2].processor.config: expected a mapping, got an integer"},
    /* filter */
    {"{\"filter\": 3}", DM_ERR_CONFIG_TYPE,
     "s.yaml@spec.steps[2].filter: spec.steps[2].filter: expected an expression as a non-empty "
     "string, got an integer"},
    {"{\"filter\": \"\"}", DM_ERR_CONFIG_TYPE,
     "spec.steps[2].filter: expected an expression as a non-empty string, got an empty string"},
    {"{\"filter\": {\"expr\": \"a\", \"where\": \"b\"}}", DM_ERR_CONFIG_UNKNOWN_KEY,
     "s.yaml@spec.steps[2].filter.where: spec.steps[2].filter.where: unknown key 'where' for "
     "filter step; allowed: expr"},
    {"{\"filter\": {}}", DM_ERR_CONFIG_MISSING,
     "spec.steps[2].filter.expr: required key 'expr' is missing"},
    /* project */
    {"{\"project\": []}", DM_ERR_CONFIG_RANGE,
     "spec.steps[2].project: must list at least one item"},
    {"{\"project\": [\"id\", 7]}", DM_ERR_CONFIG_TYPE,
     "s.yaml@spec.steps[2].project[1]: spec.steps[2].project[1]: expected a non-empty string, got "
     "an integer"},
    {"{\"project\": [\"id\", \"\"]}", DM_ERR_CONFIG_TYPE,
     "spec.steps[2].project[1]: expected a non-empty string, got an empty string"},
    {"{\"project\": true}", DM_ERR_CONFIG_TYPE,
     "spec.steps[2].project: expected a list of expressions, got a boolean"},
    {"{\"project\": {\"cols\": [\"id\"]}}", DM_ERR_CONFIG_UNKNOWN_KEY,
     "spec.steps[2].project.cols: unknown key 'cols' for project step; allowed: columns"},
    /* enrich */
    {"{\"enrich\": \"movies\"}", DM_ERR_CONFIG_TYPE,
     "s.yaml@spec.steps[2].enrich: spec.steps[2].enrich: expected a mapping of settings, got a "
     "string"},
    {"{\"enrich\": {\"with\": \"movies\"}}", DM_ERR_CONFIG_MISSING,
     "spec.steps[2].enrich.on: required key 'on' is missing"},
    {"{\"enrich\": {\"with\": \"Movies\", \"on\": \"id\"}}", DM_ERR_CONFIG_RANGE,
     "spec.steps[2].enrich.with: 'Movies' is not a valid name: use 1-63 of a-z 0-9"},
    {"{\"enrich\": {\"with\": \"movies\", \"on\": [\"id\"]}}", DM_ERR_CONFIG_TYPE,
     "spec.steps[2].enrich.on: expected an expression as a non-empty string, got a list"},
    {"{\"enrich\": {\"with\": \"movies\", \"on\": \"id\", \"fields\": []}}", DM_ERR_CONFIG_RANGE,
     "spec.steps[2].enrich.fields: must list at least one item"},
    {"{\"enrich\": {\"with\": \"movies\", \"on\": \"id\", \"as\": \"m\"}}",
     DM_ERR_CONFIG_UNKNOWN_KEY,
     "spec.steps[2].enrich.as: unknown key 'as' for enrich step; allowed: with, on, fields"},
    /* aggregate */
    {"{\"aggregate\": {\"aggregates\": [\"count(*)\"]}}", DM_ERR_CONFIG_MISSING,
     "spec.steps[2].aggregate.window: required key 'window' is missing"},
    {"{\"aggregate\": {\"window\": \"1m\", \"aggregates\": [\"count(*)\"]}}", DM_ERR_CONFIG_TYPE,
     "spec.steps[2].aggregate.window: expected a mapping, got a string"},
    {"{\"aggregate\": {\"window\": {\"type\": \"sliding\", \"size\": \"1m\"}, \"aggregates\": "
     "[\"count(*)\"]}}",
     DM_ERR_CONFIG_RANGE,
     "s.yaml@spec.steps[2].aggregate.window.type: spec.steps[2].aggregate.window.type: 'sliding' "
     "is not one of: tumbling, hopping, session"},
    {"{\"aggregate\": {\"window\": {\"size\": \"1m\"}, \"aggregates\": [\"count(*)\"]}}",
     DM_ERR_CONFIG_MISSING, "spec.steps[2].aggregate.window.type: required key 'type' is missing"},
    {"{\"aggregate\": {\"window\": {\"type\": \"tumbling\", \"size\": \"1m\", \"every\": 1}, "
     "\"aggregates\": [\"count(*)\"]}}",
     DM_ERR_CONFIG_UNKNOWN_KEY,
     "spec.steps[2].aggregate.window.every: unknown key 'every' for aggregate window; allowed: "
     "type, size, slide, gap, lateness"},
    {"{\"aggregate\": {\"window\": {\"type\": \"tumbling\"}, \"aggregates\": [\"count(*)\"]}}",
     DM_ERR_CONFIG_MISSING, "spec.steps[2].aggregate.window.size: required key 'size' is missing"},
    {"{\"aggregate\": {\"window\": {\"type\": \"tumbling\", \"size\": 0}, \"aggregates\": "
     "[\"count(*)\"]}}",
     DM_ERR_CONFIG_RANGE,
     "spec.steps[2].aggregate.window.size: 0 is out of range [1, 31536000000]"},
    {"{\"aggregate\": {\"window\": {\"type\": \"tumbling\", \"size\": \"400d\"}, \"aggregates\": "
     "[\"count(*)\"]}}",
     DM_ERR_CONFIG_RANGE, "spec.steps[2].aggregate.window.size: 400d is out of range"},
    {"{\"aggregate\": {\"window\": {\"type\": \"tumbling\", \"size\": \"soon\"}, \"aggregates\": "
     "[\"count(*)\"]}}",
     DM_ERR_CONFIG_TYPE, "spec.steps[2].aggregate.window.size: expected a duration"},
    {"{\"aggregate\": {\"window\": {\"type\": \"tumbling\", \"size\": \"1m\", \"slide\": \"1m\"},"
     " \"aggregates\": [\"count(*)\"]}}",
     DM_ERR_CONFIG, "spec.steps[2].aggregate.window.slide: a tumbling window has no slide"},
    {"{\"aggregate\": {\"window\": {\"type\": \"tumbling\", \"size\": \"1m\", \"gap\": \"1m\"}, "
     "\"aggregates\": [\"count(*)\"]}}",
     DM_ERR_CONFIG, "spec.steps[2].aggregate.window.gap: a tumbling window has no gap"},
    {"{\"aggregate\": {\"window\": {\"type\": \"hopping\", \"size\": \"1m\"}, \"aggregates\": "
     "[\"count(*)\"]}}",
     DM_ERR_CONFIG_MISSING,
     "spec.steps[2].aggregate.window.slide: required key 'slide' is missing"},
    {"{\"aggregate\": {\"window\": {\"type\": \"hopping\", \"size\": \"1m\", \"slide\": \"2m\"}, "
     "\"aggregates\": [\"count(*)\"]}}",
     DM_ERR_CONFIG_RANGE,
     "spec.steps[2].aggregate.window.slide: a hopping window's slide (120000 ms) must be at most "
     "its size (60000 ms)"},
    {"{\"aggregate\": {\"window\": {\"type\": \"session\", \"gap\": \"5m\", \"size\": \"1m\"}, "
     "\"aggregates\": [\"count(*)\"]}}",
     DM_ERR_CONFIG, "spec.steps[2].aggregate.window.size: a session window has no size"},
    {"{\"aggregate\": {\"window\": {\"type\": \"session\"}, \"aggregates\": [\"count(*)\"]}}",
     DM_ERR_CONFIG_MISSING, "spec.steps[2].aggregate.window.gap: required key 'gap' is missing"},
    {"{\"aggregate\": {\"window\": {\"type\": \"session\", \"gap\": \"5m\", \"lateness\": -1}, "
     "\"aggregates\": [\"count(*)\"]}}",
     DM_ERR_CONFIG_TYPE, "spec.steps[2].aggregate.window.lateness: expected a duration"},
    {"{\"aggregate\": {\"window\": {\"type\": \"session\", \"gap\": \"5m\"}}}",
     DM_ERR_CONFIG_MISSING,
     "spec.steps[2].aggregate.aggregates: required key 'aggregates' is missing"},
    {"{\"aggregate\": {\"window\": {\"type\": \"session\", \"gap\": \"5m\"}, \"aggregates\": []}}",
     DM_ERR_CONFIG_RANGE, "spec.steps[2].aggregate.aggregates: must list at least one item"},
    {"{\"aggregate\": {\"window\": {\"type\": \"session\", \"gap\": \"5m\"}, \"aggregates\": [3]}}",
     DM_ERR_CONFIG_TYPE,
     "spec.steps[2].aggregate.aggregates[0]: expected a non-empty string, got an integer"},
    {"{\"aggregate\": {\"window\": {\"type\": \"session\", \"gap\": \"5m\"}, \"time\": 5, "
     "\"aggregates\": [\"count(*)\"]}}",
     DM_ERR_CONFIG_TYPE,
     "spec.steps[2].aggregate.time: expected an expression as a non-empty string, got an integer"},
    {"{\"aggregate\": {\"window\": {\"type\": \"session\", \"gap\": \"5m\"}, \"group_by\": {}, "
     "\"aggregates\": [\"count(*)\"]}}",
     DM_ERR_CONFIG_TYPE,
     "spec.steps[2].aggregate.group_by: expected a list of expressions, got a mapping"},
    /* dedupe */
    {"{\"dedupe\": {\"key\": [\"id\"]}}", DM_ERR_CONFIG_MISSING,
     "spec.steps[2].dedupe.within: required key 'within' is missing"},
    {"{\"dedupe\": {\"within\": \"1m\"}}", DM_ERR_CONFIG_MISSING,
     "spec.steps[2].dedupe.key: required key 'key' is missing"},
    {"{\"dedupe\": {\"key\": [], \"within\": \"1m\"}}", DM_ERR_CONFIG_RANGE,
     "spec.steps[2].dedupe.key: must list at least one item"},
    {"{\"dedupe\": {\"key\": \"id\", \"within\": 0}}", DM_ERR_CONFIG_RANGE,
     "spec.steps[2].dedupe.within: 0 is out of range [1, 31536000000]"},
    {"{\"dedupe\": {\"key\": \"id\", \"within\": true}}", DM_ERR_CONFIG_TYPE,
     "spec.steps[2].dedupe.within: expected a duration (\"500ms\", \"10s\", \"5m\", \"1h\", "
     "\"1d\") or a number of milliseconds, got a boolean"},
    {"{\"dedupe\": {\"key\": \"id\", \"within\": \"1m\", \"ttl\": \"1h\"}}",
     DM_ERR_CONFIG_UNKNOWN_KEY,
     "spec.steps[2].dedupe.ttl: unknown key 'ttl' for dedupe step; allowed: key, within, time"},
    /* route */
    {"{\"route\": {\"default\": \"rest\"}}", DM_ERR_CONFIG_MISSING,
     "spec.steps[2].route.outputs: required key 'outputs' is missing"},
    {"{\"route\": {\"outputs\": {}}}", DM_ERR_CONFIG_RANGE,
     "spec.steps[2].route.outputs: must list at least one item"},
    {"{\"route\": {\"outputs\": [\"a > 1\"]}}", DM_ERR_CONFIG_TYPE,
     "spec.steps[2].route.outputs: expected a mapping of names to expressions, got a list"},
    {"{\"route\": {\"outputs\": {\"Big\": \"x > 1\"}}}", DM_ERR_CONFIG_RANGE,
     "s.yaml@spec.steps[2].route.outputs.Big: spec.steps[2].route.outputs.Big: 'Big' is not a "
     "valid name"},
    {"{\"route\": {\"outputs\": {\"big\": 3}}}", DM_ERR_CONFIG_TYPE,
     "spec.steps[2].route.outputs.big: expected an expression, got an integer"},
    {"{\"route\": {\"outputs\": {\"big\": \"x > 1\"}, \"default\": \"big\"}}", DM_ERR_CONFIG,
     "spec.steps[2].route.outputs.big: 'big' is the default output"},
    {"{\"route\": {\"outputs\": {\"big\": \"x > 1\"}, \"default\": \"../etc\"}}",
     DM_ERR_CONFIG_RANGE, "spec.steps[2].route.default: '../etc' is not a valid name"},
    /* join */
    {"{\"join\": {\"with\": \"b\", \"on\": \"id\"}}", DM_ERR_CONFIG_MISSING,
     "spec.steps[2].join.within: required key 'within' is missing"},
    {"{\"join\": {\"on\": \"id\", \"within\": \"1m\"}}", DM_ERR_CONFIG_MISSING,
     "spec.steps[2].join.with: required key 'with' is missing"},
    {"{\"join\": {\"with\": \"b\", \"on\": \"id\", \"within\": \"-5s\"}}", DM_ERR_CONFIG_TYPE,
     "spec.steps[2].join.within: expected a duration"},
    {"{\"join\": {\"with\": \"b\", \"on\": \"id\", \"within\": \"2y\"}}", DM_ERR_CONFIG_TYPE,
     "spec.steps[2].join.within: expected a duration"},
    {"{\"join\": {\"with\": \"b\", \"on\": \"id\", \"within\": 1.5e12}}", DM_ERR_CONFIG_RANGE,
     "spec.steps[2].join.within: 1500000000000 is out of range [1, 31536000000]"},
    {"{\"join\": {\"with\": \"b\", \"on\": \"id\", \"within\": \"1m\", \"type\": \"left\"}}",
     DM_ERR_CONFIG_UNKNOWN_KEY,
     "spec.steps[2].join.type: unknown key 'type' for join step; allowed: with, on, within, time"},
};

static void test_bad_steps(void)
{
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        dm_error_t err = {0};
        dm_err_t rc = check_step(bad[i].step, &err);
        if (rc == DM_OK) {
            printf("    bad[%zu] accepted: %s\n", i, bad[i].step);
            CHECK(!"bad step accepted");
            continue;
        }
        if (rc != bad[i].code || !strstr(err.message, bad[i].want)) {
            printf("    bad[%zu]: got %s (%s)\n       wanted %s (%s)\n", i, err.message,
                   dm_err_name(rc), bad[i].want, dm_err_name(bad[i].code));
            CHECK(!"wrong refusal");
        }
    }
}

/* The settings a step stands for, parsed, as the table dumps them. */
static char *parsed(const char *step_json, dm_error_t *err)
{
    json_t *step = json_loads(step_json, 0, NULL);
    const char *kind;
    const dm_proc_ops_t *ops;
    json_t *settings = dm_proc_step_config(step, &kind, &ops, err);
    char *text = NULL;
    void *conf;
    if (settings && dm_proc_settings_parse(ops, settings, NULL, &conf, err) == DM_OK) {
        json_t *dump = dm_config_dump_json(ops->config, conf);
        text = json_dumps(dump, JSON_COMPACT);
        json_decref(dump);
        dm_proc_settings_free(ops, conf);
    }
    json_decref(settings);
    json_decref(step);
    return text;
}

static void test_parsed_values(void)
{
    static const struct {
        const char *step, *want;
    } cases[] = {
        {"{\"filter\": \"x > 1\"}", "{\"expr\":\"x > 1\"}"},
        {"{\"project\": \"lower(a, b) AS c\"}", "{\"columns\":[\"lower(a, b) AS c\"]}"},
        {"{\"dedupe\": {\"key\": \"id\", \"within\": \"10m\"}}",
         "{\"key\":[\"id\"],\"within\":600000,\"time\":null}"},
        {"{\"aggregate\": {\"window\": {\"type\": \"hopping\", \"size\": \"10m\", \"slide\": "
         "\"1m\"}, \"aggregates\": [\"count(*)\"]}}",
         "{\"window\":{\"type\":\"hopping\",\"size\":600000,\"slide\":60000,\"gap\":0,"
         "\"lateness\":0},\"time\":null,\"group_by\":null,\"aggregates\":[\"count(*)\"]}"},
        {"{\"route\": {\"outputs\": {\"z\": \"a > 1\", \"a\": \"b > 1\"}, \"default\": \"rest\"}}",
         "{\"outputs\":{\"z\":\"a > 1\",\"a\":\"b > 1\"},\"default\":\"rest\"}"},
        {"{\"join\": {\"with\": \"pays\", \"on\": \"id\", \"within\": 5000}}",
         "{\"with\":\"pays\",\"on\":\"id\",\"within\":5000,\"time\":null}"},
        {"{\"enrich\": {\"with\": \"movies\", \"on\": \"movie_id\", \"fields\": \"title\"}}",
         "{\"with\":\"movies\",\"on\":\"movie_id\",\"fields\":[\"title\"]}"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        dm_error_t err = {0};
        char *got = parsed(cases[i].step, &err);
        if (!got || strcmp(got, cases[i].want)) {
            printf("    case %zu: got %s\n      wanted %s\n", i, got ? got : err.message,
                   cases[i].want);
            CHECK(!"parsed settings differ");
        }
        free(got);
    }
}

/* dm_proc_step_config: the spec step as its processor's settings object. */
static void test_step_config(void)
{
    json_t *step = json_pack("{s:[s, s]}", "project", "id", "name");
    const char *kind;
    const dm_proc_ops_t *ops;
    json_t *conf = dm_proc_step_config(step, &kind, &ops, NULL);
    REQUIRE(conf != NULL);
    CHECK_STR_EQ(kind, "project");
    CHECK(ops == &dm_proc_project);
    CHECK_EQ_INT(json_array_size(json_object_get(conf, "columns")), 2);
    json_decref(conf);
    json_decref(step);
    step = json_pack("{s:{s:s}}", "filter", "expr", "a > 1");
    conf = dm_proc_step_config(step, &kind, NULL, NULL);
    CHECK_STR_EQ(json_string_value(json_object_get(conf, "expr")), "a > 1");
    json_decref(conf);
    json_decref(step);
    dm_error_t err = {0};
    step = json_pack("{s:s}", "sql", "SELECT 1");
    CHECK(dm_proc_step_config(step, &kind, &ops, &err) == NULL);
    CHECK_STR_EQ(kind, "sql");
    CHECK(ops == NULL);
    CHECK_EQ_INT(err.code, DM_ERR_UNSUPPORTED);
    CHECK_CONTAINS(err.message, "step 'sql' is not available in this version yet (available: "
                                "filter, project, enrich, aggregate, dedupe, route, join, "
                                "processor, lua)");
    json_decref(step);
    step = json_pack("{s:i}", "join", 5);
    CHECK(dm_proc_step_config(step, NULL, NULL, &err) == NULL);
    CHECK_CONTAINS(err.message, "step join: expected a mapping of settings, got an integer");
    json_decref(step);
}

/* The registry: one list, each processor with a summary and a table whose
 * every setting has help; the kind lists messages show come from it. */
static void test_registry(void)
{
    size_t n;
    const dm_proc_ops_t *const *list = dm_proc_list(&n);
    CHECK_EQ_INT(n, 9);
    for (size_t i = 0; i < n; i++) {
        CHECK(dm_proc_find(list[i]->name) == list[i]);
        CHECK(list[i]->summary && *list[i]->summary);
        REQUIRE(list[i]->config != NULL);
        CHECK(list[i]->config_size > 0);
        for (size_t f = 0; f < list[i]->config->n_fields; f++)
            CHECK(list[i]->config->fields[f].help != NULL);
    }
    CHECK(dm_proc_find("sql") == NULL);
    char kinds[256];
    dm_proc_kinds_available(kinds, sizeof(kinds));
    CHECK_STR_EQ(kinds, "filter, project, enrich, aggregate, dedupe, route, join, processor, lua");
    dm_proc_kinds_all(kinds, sizeof(kinds));
    CHECK_STR_EQ(kinds,
                 "filter, project, enrich, aggregate, dedupe, route, join, processor, lua, sql");
}

/* Settings reaching open without spec validation (a worker's plan) are
 * parsed by the same table: unknown keys and bad values are refused there. */
static void test_open_parses_with_the_table(void)
{
    const char *schema_json =
        "{\"type\": \"record\", \"name\": \"R\", \"fields\": [{\"name\": "
        "\"id\", \"type\": \"long\"}, {\"name\": \"ts\", \"type\": \"long\"}]}";
    dm_avro_schema_t *schema;
    dm_error_t err = {0};
    REQUIRE(dm_avro_schema_parse(schema_json, strlen(schema_json), &schema, &err) == DM_OK);
    json_t *conf = json_pack("{s:s, s:s}", "expr", "id > 1", "colour", "red");
    dm_proc_t *p = NULL;
    CHECK(dm_proc_open(&dm_proc_filter, NULL, conf, schema->root, &p, &err) ==
          DM_ERR_CONFIG_UNKNOWN_KEY);
    CHECK_CONTAINS(err.message, "processor filter: colour: unknown key 'colour' for filter step");
    json_decref(conf);
    conf = json_pack("{s:[s], s:i}", "key", "id", "within", 0);
    CHECK(dm_proc_open(&dm_proc_dedupe, NULL, conf, schema->root, &p, &err) == DM_ERR_CONFIG_RANGE);
    CHECK_CONTAINS(err.message, "processor dedupe: within: 0 is out of range");
    json_decref(conf);
    conf = json_pack("{s:[s], s:s, s:s}", "key", "id", "within", "1m", "time", "ts");
    REQUIRE(dm_proc_open(&dm_proc_dedupe, NULL, conf, schema->root, &p, &err) == DM_OK);
    dm_proc_close(p);
    json_decref(conf);
    dm_avro_schema_free(schema);
}

int main(void)
{
    RUN(test_good_steps);
    RUN(test_bad_steps);
    RUN(test_parsed_values);
    RUN(test_step_config);
    RUN(test_registry);
    RUN(test_open_parses_with_the_table);
    return check_summary();
}
