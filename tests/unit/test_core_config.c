/* Unit tests for core/config: declared tables drive parsing and validation. */
#include <stddef.h>

#include "check.h"
#include "core/config.h"

typedef struct {
    int64_t rate;
    double ratio;
    bool follow;
    char *path;
    char *password;
    int format;
    int64_t flush_ms;
    int64_t max_bytes;
    dm_strlist_t tables;
    char *dsn;
} conf_t;

static const char *const formats[] = {"jsonl", "avro", NULL};

static const dm_config_field_t fields[] = {
    {.name = "rate",
     .type = DM_CFG_INT,
     .offset = offsetof(conf_t, rate),
     .def = "1000",
     .min = 1,
     .max = 1000000,
     .help = "events per second"},
    {.name = "ratio",
     .type = DM_CFG_DOUBLE,
     .offset = offsetof(conf_t, ratio),
     .def = "0.5",
     .min = 0,
     .max = 1,
     .help = "share of updates"},
    {.name = "follow", .type = DM_CFG_BOOL, .offset = offsetof(conf_t, follow), .def = "false"},
    {.name = "path", .type = DM_CFG_STRING, .offset = offsetof(conf_t, path), .def = "out.jsonl"},
    {.name = "password", .type = DM_CFG_SECRET, .offset = offsetof(conf_t, password)},
    {.name = "format",
     .type = DM_CFG_ENUM,
     .offset = offsetof(conf_t, format),
     .def = "jsonl",
     .enum_values = formats},
    {.name = "flush",
     .type = DM_CFG_DURATION,
     .offset = offsetof(conf_t, flush_ms),
     .def = "5s",
     .min = 1,
     .max = 3600000},
    {.name = "max_bytes",
     .type = DM_CFG_SIZE,
     .offset = offsetof(conf_t, max_bytes),
     .def = "64MiB"},
    {.name = "tables", .type = DM_CFG_STRING_LIST, .offset = offsetof(conf_t, tables)},
    {.name = "dsn",
     .type = DM_CFG_STRING,
     .offset = offsetof(conf_t, dsn),
     .flags = DM_CFG_REQUIRED,
     .help = "libpq connection string"},
};
DM_CONFIG_TABLE(table, "test connector", fields);

static dm_err_t apply(conf_t *c, const char *json_text, dm_error_t *err)
{
    memset(c, 0, sizeof(*c));
    dm_err_t rc = dm_config_defaults(&table, c, err);
    if (rc) return rc;
    json_error_t jerr;
    json_t *j = json_loads(json_text, 0, &jerr);
    if (!j) return dm_error_set(err, DM_ERR_INVALID, "bad test json: %s", jerr.text);
    dm_config_source_t src = {.path = "spec.config"};
    rc = dm_config_apply_json(&table, c, j, &src, err);
    json_decref(j);
    return rc;
}

static void test_defaults_and_values(void)
{
    conf_t c;
    dm_error_t err = {0};
    REQUIRE(apply(&c,
                  "{\"dsn\": \"host=x\", \"rate\": 250, \"format\": \"avro\", \"flush\": \"250ms\","
                  " \"max_bytes\": \"16MiB\", \"tables\": [\"public.a\", \"public.b\"],"
                  " \"follow\": true, \"password\": \"hunter2\"}",
                  &err) == DM_OK);
    CHECK_EQ_INT(c.rate, 250);
    CHECK(c.ratio == 0.5);
    CHECK(c.follow);
    CHECK_STR_EQ(c.path, "out.jsonl");
    CHECK_EQ_INT(c.format, 1);
    CHECK_EQ_INT(c.flush_ms, 250);
    CHECK_EQ_INT(c.max_bytes, 16 << 20);
    CHECK_EQ_INT(c.tables.n, 2);
    CHECK_STR_EQ(c.tables.items[1], "public.b");
    /* The dump never shows secrets. */
    json_t *dump = dm_config_dump_json(&table, &c);
    char *text = json_dumps(dump, JSON_SORT_KEYS);
    CHECK_CONTAINS(text, "\"password\": \"***\"");
    CHECK(strstr(text, "hunter2") == NULL);
    free(text);
    json_decref(dump);
    dm_config_free(&table, &c);
    CHECK(c.path == NULL && c.tables.items == NULL);
}

static void test_unknown_key_rejected(void)
{
    conf_t c;
    dm_error_t err = {0};
    CHECK_EQ_INT(apply(&c, "{\"dsn\": \"x\", \"rat\": 5}", &err), DM_ERR_CONFIG_UNKNOWN_KEY);
    CHECK_CONTAINS(err.message, "spec.config.rat: unknown key 'rat' for test connector");
    CHECK_CONTAINS(err.message, "allowed: rate, ratio, follow, path, password, format");
    dm_config_free(&table, &c);
}

static void test_out_of_range_rejected(void)
{
    conf_t c;
    dm_error_t err = {0};
    CHECK_EQ_INT(apply(&c, "{\"dsn\": \"x\", \"rate\": 0}", &err), DM_ERR_CONFIG_RANGE);
    CHECK_CONTAINS(err.message, "spec.config.rate: 0 is out of range [1, 1000000]");
    dm_config_free(&table, &c);
    CHECK_EQ_INT(apply(&c, "{\"dsn\": \"x\", \"ratio\": 1.5}", &err), DM_ERR_CONFIG_RANGE);
    CHECK_CONTAINS(err.message, "spec.config.ratio: 1.5 is out of range [0, 1]");
    dm_config_free(&table, &c);
    CHECK_EQ_INT(apply(&c, "{\"dsn\": \"x\", \"flush\": \"2h\"}", &err), DM_ERR_CONFIG_RANGE);
    CHECK_CONTAINS(err.message, "spec.config.flush: 2h is out of range");
    dm_config_free(&table, &c);
}

static void test_wrong_types_and_enums(void)
{
    conf_t c;
    dm_error_t err = {0};
    CHECK_EQ_INT(apply(&c, "{\"dsn\": \"x\", \"rate\": \"fast\"}", &err), DM_ERR_CONFIG_TYPE);
    CHECK_CONTAINS(err.message, "spec.config.rate: expected an integer, got a string");
    dm_config_free(&table, &c);
    CHECK_EQ_INT(apply(&c, "{\"dsn\": \"x\", \"rate\": 2.5}", &err), DM_ERR_CONFIG_TYPE);
    dm_config_free(&table, &c);
    CHECK_EQ_INT(apply(&c, "{\"dsn\": \"x\", \"format\": \"csv\"}", &err), DM_ERR_CONFIG_RANGE);
    CHECK_CONTAINS(err.message, "spec.config.format: 'csv' is not one of: jsonl, avro");
    dm_config_free(&table, &c);
    CHECK_EQ_INT(apply(&c, "{\"dsn\": \"x\", \"flush\": \"soon\"}", &err), DM_ERR_CONFIG_TYPE);
    CHECK_CONTAINS(err.message, "expected a duration");
    dm_config_free(&table, &c);
    CHECK_EQ_INT(apply(&c, "{\"dsn\": \"x\", \"tables\": [\"a\", 3]}", &err), DM_ERR_CONFIG_TYPE);
    CHECK_CONTAINS(err.message, "spec.config.tables[1]: expected a string");
    dm_config_free(&table, &c);
    CHECK_EQ_INT(apply(&c, "[1]", &err), DM_ERR_CONFIG_TYPE);
    CHECK_CONTAINS(err.message, "must be an object");
    dm_config_free(&table, &c);
}

static void test_required_missing(void)
{
    conf_t c;
    dm_error_t err = {0};
    CHECK_EQ_INT(apply(&c, "{\"rate\": 5}", &err), DM_ERR_CONFIG_MISSING);
    CHECK_CONTAINS(err.message,
                   "spec.config.dsn: required key 'dsn' is missing (libpq connection string)");
    dm_config_free(&table, &c);
}

static void test_set_text_and_units(void)
{
    conf_t c;
    memset(&c, 0, sizeof(c));
    dm_error_t err = {0};
    REQUIRE(dm_config_defaults(&table, &c, &err) == DM_OK);
    CHECK(dm_config_set_text(&table, &c, "rate", "42", &err) == DM_OK);
    CHECK_EQ_INT(c.rate, 42);
    CHECK(dm_config_set_text(&table, &c, "tables", "public.a, public.b ,x", &err) == DM_OK);
    CHECK_EQ_INT(c.tables.n, 3);
    CHECK_STR_EQ(c.tables.items[1], "public.b");
    CHECK(dm_config_set_text(&table, &c, "password", "nope", &err) == DM_OK);
    CHECK_EQ_INT(dm_config_set_text(&table, &c, "format", "secret-format", &err),
                 DM_ERR_CONFIG_RANGE);
    CHECK_EQ_INT(dm_config_set_text(&table, &c, "nope", "1", &err), DM_ERR_CONFIG_UNKNOWN_KEY);
    CHECK_CONTAINS(err.message, "unknown key 'nope'");
    int64_t v;
    CHECK(dm_parse_duration_ms("1.5s", &v) == DM_OK && v == 1500);
    CHECK(dm_parse_duration_ms("2m", &v) == DM_OK && v == 120000);
    CHECK(dm_parse_duration_ms("1d", &v) == DM_OK && v == 86400000);
    CHECK(dm_parse_duration_ms("-1s", &v) != DM_OK);
    CHECK(dm_parse_duration_ms("5 parsecs", &v) != DM_OK);
    CHECK(dm_parse_size("1GiB", &v) == DM_OK && v == 1073741824);
    CHECK(dm_parse_size("10KB", &v) == DM_OK && v == 10000);
    CHECK(dm_parse_size("", &v) != DM_OK);
    CHECK(dm_parse_size("1e30", &v) == DM_ERR_RANGE);
    dm_config_free(&table, &c);
}

static void test_describe(void)
{
    json_t *d = dm_config_describe_json(&table);
    CHECK_EQ_INT(json_array_size(d), sizeof(fields) / sizeof(fields[0]));
    json_t *fmt = json_array_get(d, 5);
    CHECK_STR_EQ(json_string_value(json_object_get(fmt, "name")), "format");
    CHECK_EQ_INT(json_array_size(json_object_get(fmt, "values")), 2);
    json_decref(d);
    dm_buf_t md = DM_BUF_INIT;
    REQUIRE(dm_config_describe_markdown(&table, &md) == DM_OK);
    const char *s;
    dm_buf_cstr(&md, &s);
    CHECK_CONTAINS(s, "| `rate` | integer | 1000 | 1 … 1000000 | events per second |");
    CHECK_CONTAINS(s, "| `dsn` | string | required |");
    dm_buf_free(&md);
}

/* ---- settings of processors: names, expressions, lists, maps, objects ---- */

typedef struct {
    int64_t every, grace;
} inner_t;

typedef struct {
    char *with;
    char *expr;
    dm_strlist_t cols;
    dm_strmap_t outs;
    inner_t inner;
    int n;
} step_t;

static const char *const units[] = {"a", NULL};

/* every must not be less than grace: a check across the inner object. */
static dm_err_t check_inner(void *obj, const json_t *json, const dm_config_source_t *src,
                            dm_error_t *err)
{
    const inner_t *in = obj;
    if (json_object_get(json, "grace") && in->grace > in->every)
        return dm_config_fail(src, "grace", DM_ERR_CONFIG_RANGE, err,
                              "grace (%lld) is more than every (%lld)", (long long)in->grace,
                              (long long)in->every);
    return DM_OK;
}

static const dm_config_field_t inner_fields[] = {
    {.name = "every",
     .type = DM_CFG_DURATION,
     .offset = offsetof(inner_t, every),
     .min = 1,
     .max = 3600000,
     .flags = DM_CFG_REQUIRED,
     .help = "period",
     .check = check_inner},
    {.name = "grace", .type = DM_CFG_DURATION, .offset = offsetof(inner_t, grace), .def = "0"},
};
DM_CONFIG_TABLE(inner_table, "inner", inner_fields);

static const dm_config_field_t step_fields[] = {
    {.name = "with", .type = DM_CFG_NAME, .offset = offsetof(step_t, with), .help = "a source"},
    {.name = "expr", .type = DM_CFG_EXPR, .offset = offsetof(step_t, expr)},
    {.name = "cols",
     .type = DM_CFG_EXPR_LIST,
     .offset = offsetof(step_t, cols),
     .min = 1,
     .max = 3,
     .flags = DM_CFG_REQUIRED,
     .help = "columns"},
    {.name = "outs", .type = DM_CFG_EXPR_MAP, .offset = offsetof(step_t, outs), .min = 1},
    {.name = "inner",
     .type = DM_CFG_OBJECT,
     .offset = offsetof(step_t, inner),
     .table = &inner_table},
    {.name = "n",
     .type = DM_CFG_ENUM,
     .offset = offsetof(step_t, n),
     .enum_values = units,
     .flags = DM_CFG_REQUIRED},
};
DM_CONFIG_TABLE(step_table, "test step", step_fields);

static dm_err_t apply_step(step_t *c, const char *json_text, const char *shorthand, dm_error_t *err)
{
    memset(c, 0, sizeof(*c));
    REQUIRE(dm_config_defaults(&step_table, c, err) == DM_OK);
    json_t *j = json_loads(json_text, 0, NULL);
    REQUIRE(j != NULL);
    dm_config_source_t src = {.path = "spec.steps[1].t", .shorthand = shorthand};
    dm_err_t rc = dm_config_apply_json(&step_table, c, j, &src, err);
    json_decref(j);
    return rc;
}

static void test_step_types(void)
{
    step_t c;
    dm_error_t err = {0};
    REQUIRE(apply_step(&c,
                       "{\"with\": \"movies\", \"expr\": \"a > 1\", \"cols\": \"f(a, b) AS c\", "
                       "\"outs\": {\"z\": \"x > 1\", \"b\": \"y\"}, \"inner\": {\"every\": \"5s\", "
                       "\"grace\": 1000}, \"n\": \"a\"}",
                       NULL, &err) == DM_OK);
    CHECK_STR_EQ(c.with, "movies");
    CHECK_EQ_INT(c.cols.n, 1); /* one string is one item: commas are the expression's */
    CHECK_STR_EQ(c.cols.items[0], "f(a, b) AS c");
    CHECK_EQ_INT(c.outs.n, 2);
    CHECK_STR_EQ(c.outs.keys[0], "z"); /* the order written */
    CHECK_STR_EQ(c.outs.values[1], "y");
    CHECK_EQ_INT(c.inner.every, 5000);
    CHECK_EQ_INT(c.inner.grace, 1000);
    json_t *dump = dm_config_dump_json(&step_table, &c);
    CHECK_EQ_INT(json_integer_value(json_object_get(json_object_get(dump, "inner"), "every")),
                 5000);
    json_decref(dump);
    dm_config_free(&step_table, &c);
    CHECK(c.with == NULL && c.cols.items == NULL && c.outs.keys == NULL);
    static const struct {
        const char *json, *shorthand, *want;
        dm_err_t code;
    } bad[] = {
        {"{\"cols\": [\"a\"], \"n\": \"a\", \"with\": \"Movies\"}", NULL,
         "spec.steps[1].t.with: 'Movies' is not a valid name", DM_ERR_CONFIG_RANGE},
        {"{\"cols\": [\"a\"], \"n\": \"a\", \"expr\": \"\"}", NULL,
         "spec.steps[1].t.expr: expected an expression as a non-empty string, got an empty string",
         DM_ERR_CONFIG_TYPE},
        {"{\"cols\": [\"a\", \"b\", \"c\", \"d\"], \"n\": \"a\"}", NULL,
         "spec.steps[1].t.cols: lists 4 items, at most 3", DM_ERR_CONFIG_RANGE},
        {"{\"cols\": [], \"n\": \"a\"}", "cols", "spec.steps[1].t: must list at least one item",
         DM_ERR_CONFIG_RANGE},
        {"{\"cols\": [\"a\", 1], \"n\": \"a\"}", "cols",
         "spec.steps[1].t[1]: expected a non-empty string, got an integer", DM_ERR_CONFIG_TYPE},
        {"{\"cols\": [\"a\"]}", NULL, "spec.steps[1].t.n: required key 'n' is missing",
         DM_ERR_CONFIG_MISSING},
        {"{\"cols\": [\"a\"], \"n\": \"a\", \"outs\": {\"ok\": \"\"}}", NULL,
         "spec.steps[1].t.outs.ok: expected an expression, got an empty string",
         DM_ERR_CONFIG_TYPE},
        {"{\"cols\": [\"a\"], \"n\": \"a\", \"outs\": \"x\"}", NULL,
         "spec.steps[1].t.outs: expected a mapping of names to expressions, got a string",
         DM_ERR_CONFIG_TYPE},
        {"{\"cols\": [\"a\"], \"n\": \"a\", \"inner\": {}}", NULL,
         "spec.steps[1].t.inner.every: required key 'every' is missing (period)",
         DM_ERR_CONFIG_MISSING},
        {"{\"cols\": [\"a\"], \"n\": \"a\", \"inner\": {\"every\": 0}}", NULL,
         "spec.steps[1].t.inner.every: 0 is out of range [1, 3600000]", DM_ERR_CONFIG_RANGE},
        {"{\"cols\": [\"a\"], \"n\": \"a\", \"inner\": {\"every\": 10, \"grace\": 20}}", NULL,
         "spec.steps[1].t.inner.grace: grace (20) is more than every (10)", DM_ERR_CONFIG_RANGE},
        {"{\"cols\": [\"a\"], \"n\": \"a\", \"inner\": {\"every\": 10, \"x\": 1}}", NULL,
         "spec.steps[1].t.inner.x: unknown key 'x' for inner; allowed: every, grace",
         DM_ERR_CONFIG_UNKNOWN_KEY},
        {"{\"cols\": [\"a\"], \"n\": \"a\", \"inner\": [1]}", NULL,
         "spec.steps[1].t.inner: expected a mapping, got a list", DM_ERR_CONFIG_TYPE},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        dm_err_t rc = apply_step(&c, bad[i].json, bad[i].shorthand, &err);
        if (rc != bad[i].code || !strstr(err.message, bad[i].want)) {
            printf("    bad[%zu]: got %s (%d)\n      wanted %s\n", i, err.message, rc, bad[i].want);
            CHECK(!"wrong refusal");
        }
        dm_config_free(&step_table, &c);
    }
    /* Nested settings are described and documented with their parent's name. */
    json_t *d = dm_config_describe_json(&step_table);
    const json_t *inner = json_array_get(d, 4);
    CHECK_STR_EQ(json_string_value(json_object_get(inner, "type")), "object");
    CHECK_EQ_INT(json_array_size(json_object_get(inner, "fields")), 2);
    CHECK_EQ_INT(json_integer_value(json_object_get(json_array_get(d, 2), "max_items")), 3);
    json_decref(d);
    dm_buf_t md = DM_BUF_INIT;
    REQUIRE(dm_config_describe_markdown(&step_table, &md) == DM_OK);
    const char *s;
    dm_buf_cstr(&md, &s);
    CHECK_CONTAINS(s, "| `inner.every` | duration | required | 1 … 3600000 | period |");
    CHECK_CONTAINS(s, "| `cols` | list of expressions | required | 1 … 3 items | columns |");
    dm_buf_free(&md);
    CHECK(dm_config_name_valid("us-plays.v2"));
    CHECK(!dm_config_name_valid("a..b"));
    CHECK(!dm_config_name_valid("-a"));
}

int main(void)
{
    RUN(test_defaults_and_values);
    RUN(test_step_types);
    RUN(test_unknown_key_rejected);
    RUN(test_out_of_range_rejected);
    RUN(test_wrong_types_and_enums);
    RUN(test_required_missing);
    RUN(test_set_text_and_units);
    RUN(test_describe);
    return check_summary();
}
