/* Unit tests for control/evolve: the lenient reader keeps the fields a new
 * version dropped (nested in a change event's row too), as nullable with
 * default null, and is the new version itself when nothing was dropped; the
 * spec's policy names. */
#include <jansson.h>

#include "check.h"
#include "control/evolve.h"
#include "control/spec.h"
#include "schema/dm_avro.h"
#include "schema/dm_schema_compat.h"

static const char *older =
    "{\"type\":\"record\",\"name\":\"Envelope\",\"fields\":["
    "{\"name\":\"before\",\"type\":[\"null\",{\"type\":\"record\",\"name\":\"Value\",\"fields\":["
    "{\"name\":\"id\",\"type\":\"int\"},{\"name\":\"note\",\"type\":[\"string\",\"null\"]},"
    "{\"name\":\"qty\",\"type\":\"int\"}]}],\"default\":null},"
    "{\"name\":\"after\",\"type\":[\"null\",\"Value\"],\"default\":null},"
    "{\"name\":\"op\",\"type\":\"string\"},{\"name\":\"gone\",\"type\":\"long\"}]}";

/* note and qty dropped from the row, gone from the envelope; tier added */
static const char *latest =
    "{\"type\":\"record\",\"name\":\"Envelope\",\"fields\":["
    "{\"name\":\"before\",\"type\":[\"null\",{\"type\":\"record\",\"name\":\"Value\",\"fields\":["
    "{\"name\":\"id\",\"type\":\"int\"},{\"name\":\"tier\",\"type\":[\"null\",\"string\"],"
    "\"default\":null}]}],\"default\":null},"
    "{\"name\":\"after\",\"type\":[\"null\",\"Value\"],\"default\":null},"
    "{\"name\":\"op\",\"type\":\"string\"}]}";

static void test_lenient_reader_keeps_dropped_fields(void)
{
    char *out = NULL;
    int dropped = -1;
    dm_error_t err = {0};
    REQUIRE(dm_evolve_lenient_reader(latest, older, &out, &dropped, &err) == DM_OK);
    CHECK_EQ_INT(dropped, 3);
    /* a valid schema that reads both versions */
    dm_avro_schema_t *r = NULL, *o = NULL, *l = NULL;
    REQUIRE(dm_avro_schema_parse(out, strlen(out), &r, &err) == DM_OK);
    REQUIRE(dm_avro_schema_parse(older, strlen(older), &o, &err) == DM_OK);
    REQUIRE(dm_avro_schema_parse(latest, strlen(latest), &l, &err) == DM_OK);
    CHECK(dm_schema_can_read(r->root, l->root, NULL, "$"));
    CHECK(dm_schema_can_read(r->root, o->root, NULL, "$"));
    /* the dropped fields: nullable, null first, default null */
    CHECK(strstr(out, "{\"name\":\"note\",\"type\":[\"null\",\"string\"],\"default\":null") !=
          NULL);
    CHECK(strstr(out, "{\"name\":\"qty\",\"type\":[\"null\",\"int\"],\"default\":null") != NULL);
    CHECK(strstr(out, "{\"name\":\"gone\",\"type\":[\"null\",\"long\"],\"default\":null") != NULL);
    CHECK(strstr(out, "tier") != NULL);
    dm_avro_schema_free(r);
    dm_avro_schema_free(o);
    dm_avro_schema_free(l);
    free(out);
}

static void test_nothing_dropped_is_the_latest(void)
{
    char *out = NULL;
    int dropped = -1;
    dm_error_t err = {0};
    REQUIRE(dm_evolve_lenient_reader(older, NULL, &out, &dropped, &err) == DM_OK);
    CHECK_EQ_INT(dropped, 0);
    json_t *a = json_loads(out, 0, NULL), *b = json_loads(older, 0, NULL);
    CHECK(json_equal(a, b));
    json_decref(a);
    json_decref(b);
    free(out);
    REQUIRE(dm_evolve_lenient_reader(older, older, &out, &dropped, &err) == DM_OK);
    CHECK_EQ_INT(dropped, 0);
    free(out);
}

static void test_bad_schemas_are_named(void)
{
    char *out = NULL;
    int dropped;
    dm_error_t err = {0};
    CHECK(dm_evolve_lenient_reader("{nope", NULL, &out, &dropped, &err) == DM_ERR_INVALID);
    CHECK(strstr(err.message, "latest schema is not JSON") != NULL);
    CHECK(dm_evolve_lenient_reader("\"string\"", NULL, &out, &dropped, &err) == DM_ERR_INVALID);
    CHECK(strstr(err.message, "not a record") != NULL);
    CHECK(dm_evolve_lenient_reader(latest, "[", &out, &dropped, &err) == DM_ERR_INVALID);
    CHECK(strstr(err.message, "reader schema is not JSON") != NULL);
    CHECK(out == NULL);
}

static void test_policy_names(void)
{
    CHECK_EQ_INT(dm_spec_schema_change(NULL), 0); /* lenient, the default */
    CHECK_EQ_INT(dm_spec_schema_change("lenient"), 0);
    CHECK_EQ_INT(dm_spec_schema_change("evolve"), 1);
    CHECK_EQ_INT(dm_spec_schema_change("freeze"), 2);
    CHECK_EQ_INT(dm_spec_schema_change("fail"), 3);
    CHECK_EQ_INT(dm_spec_schema_change("Evolve"), -1);
    char sub[64];
    dm_evolve_reader_subject("us-plays", sub, sizeof(sub));
    CHECK(!strcmp(sub, "pipeline.us-plays.input"));
}

int main(void)
{
    RUN(test_lenient_reader_keeps_dropped_fields);
    RUN(test_nothing_dropped_is_the_latest);
    RUN(test_bad_schemas_are_named);
    RUN(test_policy_names);
    return check_summary();
}
