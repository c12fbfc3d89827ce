/* Unit tests for engine/expr: parsing, type errors with columns, evaluation
 * with SQL NULL semantics, CDC helpers and the paths used for projection. */
#include <math.h>

#include "check.h"
#include "engine/expr.h"

static const char *schema_json =
    "{\"type\": \"record\", \"name\": \"Change\", \"fields\": ["
    " {\"name\": \"op\", \"type\": \"string\"},"
    " {\"name\": \"ts_ms\", \"type\": {\"type\": \"long\", \"logicalType\": \"timestamp-millis\"}},"
    " {\"name\": \"before\", \"type\": [\"null\", {\"type\": \"record\", \"name\": \"Row\", "
    "\"fields\": ["
    "   {\"name\": \"id\", \"type\": \"long\"},"
    "   {\"name\": \"title\", \"type\": [\"null\", \"string\"], \"default\": null},"
    "   {\"name\": \"price\", \"type\": \"double\"},"
    "   {\"name\": \"qty\", \"type\": \"int\"},"
    "   {\"name\": \"country\", \"type\": {\"type\": \"enum\", \"name\": \"Country\", \"symbols\": "
    "[\"US\", \"FR\", \"JP\"]}},"
    "   {\"name\": \"active\", \"type\": \"boolean\"}]}], \"default\": null},"
    " {\"name\": \"after\", \"type\": [\"null\", \"Row\"], \"default\": null},"
    " {\"name\": \"tags\", \"type\": {\"type\": \"array\", \"items\": \"string\"}}]}";

static const char *record_json = "{\"op\": \"u\", \"ts_ms\": 1700000000000,"
                                 " \"before\": {\"id\": 7, \"title\": \"Heat\", \"price\": 9.5, "
                                 "\"qty\": 3, \"country\": \"US\", \"active\": true},"
                                 " \"after\": {\"id\": 7, \"title\": null, \"price\": 12.25, "
                                 "\"qty\": -4, \"country\": \"FR\", \"active\": false},"
                                 " \"tags\": [\"a\"]}";

static dm_avro_schema_t *schema;
static dm_avro_value_t record;
static dm_arena_t arena;

/* Evaluates text and renders the result ("NULL", "true", "42", "'s'", "ts:…"). */
static const char *run(const char *text, char *out, size_t cap)
{
    dm_error_t err = {0};
    dm_expr_t *e;
    if (dm_expr_compile(text, schema->root, &e, &err)) {
        snprintf(out, cap, "compile error: %s", err.message);
        return out;
    }
    dm_expr_value_t v;
    if (dm_expr_eval(e, &record, &arena, &v, &err)) {
        snprintf(out, cap, "eval error: %s", err.message);
    } else if (v.null) {
        snprintf(out, cap, "NULL");
    } else {
        switch (v.type) {
        case DM_EXPR_BOOL: snprintf(out, cap, "%s", v.u.b ? "true" : "false"); break;
        case DM_EXPR_LONG: snprintf(out, cap, "%lld", (long long)v.u.l); break;
        case DM_EXPR_DOUBLE: snprintf(out, cap, "%g", v.u.d); break;
        case DM_EXPR_STRING: snprintf(out, cap, "'%.*s'", (int)v.len, v.u.s); break;
        case DM_EXPR_TIMESTAMP: snprintf(out, cap, "ts:%lld", (long long)v.u.l); break;
        case DM_EXPR_NULL: snprintf(out, cap, "NULL"); break;
        }
    }
    dm_expr_free(e);
    return out;
}

static void setup(void)
{
    dm_error_t err = {0};
    REQUIRE(dm_avro_schema_parse(schema_json, strlen(schema_json), &schema, &err) == DM_OK);
    dm_arena_init(&arena, 0);
    if (dm_avro_from_json_text(schema->root, record_json, strlen(record_json), DM_AVRO_JSON_PLAIN,
                               &arena, &record, &err))
        printf("    %s\n", err.message);
    REQUIRE(record.type == DM_AVRO_RECORD);
}

static const struct {
    const char *expr;
    const char *want;
} cases[] = {
    /* literals and arithmetic */
    {"1 + 2 * 3", "7"},
    {"(1 + 2) * 3", "9"},
    {"7 / 2", "3"},
    {"7.0 / 2", "3.5"},
    {"-7 % 3", "-1"},
    {"after.price * 100", "1225"},
    {"after.qty + before.qty", "-1"},
    {"-after.qty", "4"},
    {"'a' || 'b' || 3", "'ab3'"},
    /* comparisons and logic */
    {"after.price > before.price", "true"},
    {"after.country = 'FR' AND before.country = 'US'", "true"},
    {"after.country <> 'FR' OR after.active", "false"},
    {"NOT after.active", "true"},
    {"before.id BETWEEN 5 AND 10", "true"},
    {"before.id NOT BETWEEN 5 AND 10", "false"},
    {"after.country IN ('US', 'JP')", "false"},
    {"after.country NOT IN ('US', 'JP')", "true"},
    {"before.title LIKE 'H%'", "true"},
    {"before.title LIKE 'H__t'", "true"},
    {"before.title NOT LIKE '%x%'", "true"},
    {"ts_ms > '2023-01-01T00:00:00Z'", "true"},
    {"ts_ms = '2023-11-14T22:13:20Z'", "true"},
    {"ts_ms + 1000", "ts:1700000001000"},
    /* NULL semantics */
    {"after.title", "NULL"},
    {"after.title = 'x'", "NULL"},
    {"after.title IS NULL", "true"},
    {"before.title IS NOT NULL", "true"},
    {"after.title = 'x' OR TRUE", "true"},
    {"after.title = 'x' AND FALSE", "false"},
    {"after.title = 'x' AND TRUE", "NULL"},
    {"after.country IN ('US', NULL)", "NULL"},
    {"NULL + 1", "NULL"},
    {"coalesce(after.title, before.title, 'none')", "'Heat'"},
    {"nullif(before.qty, 3)", "NULL"},
    {"concat(after.title, '-', before.id)", "'-7'"},
    /* CASE and CAST */
    {"CASE WHEN after.qty < 0 THEN 'refund' WHEN after.qty = 0 THEN 'zero' ELSE 'sale' END",
     "'refund'"},
    {"CASE WHEN after.qty > 100 THEN 1 END", "NULL"},
    {"CASE WHEN TRUE THEN 1 ELSE 2.5 END", "1"},
    {"CAST('42' AS long) + 1", "43"},
    {"CAST(before.price AS string)", "'9.5'"},
    {"CAST(before.id AS double) / 2", "3.5"},
    {"CAST('2023-11-14T22:13:20.5Z' AS timestamp)", "ts:1700000000500"},
    {"CAST(ts_ms AS string)", "'2023-11-14T22:13:20.000Z'"},
    /* functions */
    {"upper(before.title)", "'HEAT'"},
    {"lower('ÀB')", "'Àb'"},
    {"length('héllo')", "5"},
    {"substr('datamesh', 5)", "'mesh'"},
    {"substr('datamesh', 1, 4)", "'data'"},
    {"trim('  x  ') || '|'", "'x|'"},
    {"replace('a-b-c', '-', '+')", "'a+b+c'"},
    {"starts_with(before.title, 'He')", "true"},
    {"contains(before.title, 'ea')", "true"},
    {"abs(after.qty)", "4"},
    {"round(2.345, 2)", "2.35"},
    {"floor(after.price)", "12"},
    {"mod(17, 5)", "2"},
    {"greatest(1, 5.5, 3)", "5.5"},
    {"least(before.qty, after.qty)", "-4"},
    {"epoch_ms(ts_ms)", "1700000000000"},
    {"now() > ts_ms", "true"},
    /* CDC helpers */
    {"op()", "'u'"},
    {"is_update()", "true"},
    {"is_delete() OR is_insert() OR is_snapshot()", "false"},
    {"changed(price)", "true"},
    {"changed(id)", "false"},
    {"changed(title)", "true"},
    /* quoted names */
    {"`after`.\"id\" = 7", "true"},
};

static void test_evaluation(void)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char got[600];
        run(cases[i].expr, got, sizeof(got));
        if (strcmp(got, cases[i].want) != 0) {
            printf("    %s\n      got  %s\n      want %s\n", cases[i].expr, got, cases[i].want);
            CHECK(!"wrong result");
        }
    }
}

static const struct {
    const char *expr;
    const char *want; /* substring of the error */
} errors[] = {
    {"after.title = 5", "expression 'after.title = 5': column 13: cannot compare string with long"},
    {"after.nope > 1",
     "column 1: no field 'nope' in Row (fields: id, title, price, qty, country, active)"},
    {"tags = 'a'", "column 1: 'tags' is an array; name a field inside it"},
    {"after", "column 1: 'after' is a record; name a field inside it"},
    {"after.price AND TRUE", "column 1: AND needs booleans, got double"},
    {"1 +", "column 4: expression ends too early"},
    {"(1 + 2", "column 7: expected ')'"},
    {"1 2", "column 3: unexpected '2'"},
    {"'open", "column 1: string literal is not closed"},
    {"frob(1)", "column 1: unknown function frob()"},
    {"upper(1)", "column 7: upper() needs a string, got long"},
    {"substr('a')", "substr() takes 2 to 3 arguments, got 1"},
    {"before.title + 1", "cannot apply '+' to string and long (use || to join strings)"},
    {"CASE WHEN 1 THEN 2 END", "WHEN needs a boolean condition, got long"},
    {"CAST(1 AS blob)", "CAST to unknown type"},
    {"ts_ms > 'yesterday'", "'yesterday' is not an ISO-8601 timestamp"},
    {"before.title LIKE 3", "LIKE needs a string pattern, got long"},
    {"after.id NOT 3", "expected IN, LIKE or BETWEEN after NOT"},
    {"1 ; 2", "unexpected character ';'"},
    {"", "expression ends too early"},
};

static void test_type_errors(void)
{
    for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++) {
        char got[600];
        run(errors[i].expr, got, sizeof(got));
        if (!strstr(got, errors[i].want)) {
            printf("    %s\n      got  %s\n      want %s\n", errors[i].expr, got, errors[i].want);
            CHECK(!"wrong error");
        }
    }
}

static void test_runtime_errors(void)
{
    char got[600];
    CHECK_CONTAINS(
        run("before.id / (after.qty + 4)", got, sizeof(got)),
        "eval error: expression 'before.id / (after.qty + 4)': column 11: division by zero");
    CHECK_CONTAINS(run("CAST(before.title AS long)", got, sizeof(got)), "string is not an integer");
    CHECK_CONTAINS(run("9223372036854775807 + 1", got, sizeof(got)), "integer overflow");
}

static void test_types_and_paths(void)
{
    dm_error_t err = {0};
    dm_expr_t *e;
    REQUIRE(dm_expr_compile("after.price * 100 + before.qty", schema->root, &e, &err) == DM_OK);
    CHECK_EQ_INT(dm_expr_result_type(e), DM_EXPR_DOUBLE);
    CHECK(dm_expr_nullable(e)); /* after and before are nullable unions */
    const char *const *paths;
    size_t n = dm_expr_paths(e, &paths);
    CHECK_EQ_INT(n, 2);
    CHECK_STR_EQ(paths[0], "after.price");
    CHECK_STR_EQ(paths[1], "before.qty");
    dm_expr_free(e);
    REQUIRE(dm_expr_compile("coalesce(op, 'x')", schema->root, &e, &err) == DM_OK);
    CHECK(!dm_expr_nullable(e));
    CHECK_EQ_INT(dm_expr_result_type(e), DM_EXPR_STRING);
    dm_expr_free(e);
}

static void test_filter_keeps_only_true(void)
{
    dm_error_t err = {0};
    const struct {
        const char *expr;
        bool keep;
    } f[] = {
        {"after.price > 10", true}, {"after.price > 100", false}, {"after.title = 'x'", false}};
    for (size_t i = 0; i < 3; i++) {
        dm_expr_t *e;
        REQUIRE(dm_expr_compile(f[i].expr, schema->root, &e, &err) == DM_OK);
        bool keep = !f[i].keep;
        CHECK(dm_expr_eval_filter(e, &record, &arena, &keep, &err) == DM_OK);
        CHECK_EQ_INT(keep, f[i].keep);
        dm_expr_free(e);
    }
}

int main(void)
{
    RUN(setup);
    RUN(test_evaluation);
    RUN(test_type_errors);
    RUN(test_runtime_errors);
    RUN(test_types_and_paths);
    RUN(test_filter_keeps_only_true);
    dm_arena_destroy(&arena);
    dm_avro_schema_free(schema);
    return check_summary();
}
