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

int main(void)
{
    RUN(test_defaults_and_values);
    RUN(test_unknown_key_rejected);
    RUN(test_out_of_range_rejected);
    RUN(test_wrong_types_and_enums);
    RUN(test_required_missing);
    RUN(test_set_text_and_units);
    RUN(test_describe);
    return check_summary();
}
