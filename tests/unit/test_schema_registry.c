/* Unit tests for schema/registry.c: ids deduplicated by the schema's JSON
 * (key order and whitespace do not count; defaults and docs do),
 * versions, compatibility levels per subject and global, soft and hard
 * deletes, persistence across reopen. */
#include <unistd.h>

#include "check.h"
#include "schema/dm_schema_registry.h"

static const char *v1 = "{\"type\":\"record\",\"name\":\"P\",\"fields\":[{\"name\":\"id\","
                        "\"type\":\"long\"}]}";
/* the same schema as v1: key order and whitespace do not count */
static const char *v1b = "{ \"name\": \"P\", \"type\": \"record\", \"fields\": "
                         "[ {\"type\": \"long\", \"name\": \"id\"} ] }";
/* v1 with a doc: the same Parsing Canonical Form, but another schema */
static const char *v1doc = "{\"type\":\"record\",\"name\":\"P\",\"doc\":\"play\",\"fields\":[{"
                           "\"name\":\"id\",\"type\":\"long\"}]}";
static const char *v2 =
    "{\"type\":\"record\",\"name\":\"P\",\"fields\":[{\"name\":\"id\","
    "\"type\":\"long\"},{\"name\":\"c\",\"type\":\"string\",\"default\":\"\"}]}";
/* adds a field without a default: not BACKWARD compatible */
static const char *bad = "{\"type\":\"record\",\"name\":\"P\",\"fields\":[{\"name\":\"id\","
                         "\"type\":\"long\"},{\"name\":\"z\",\"type\":\"int\"}]}";

static void test_register_and_dedup(void)
{
    dm_schema_registry_t *r;
    REQUIRE(dm_schema_registry_open(":memory:", &r, NULL) == DM_OK);
    int64_t id1, id1b, id2, ido;
    int ver;
    CHECK_EQ_INT(dm_schema_registry_register(r, "plays-value", v1, &id1, &ver, NULL, NULL), DM_OK);
    CHECK_EQ_INT(ver, 1);
    /* the same schema again: same version, nothing added */
    CHECK_EQ_INT(dm_schema_registry_register(r, "plays-value", v1b, &id1b, &ver, NULL, NULL),
                 DM_OK);
    CHECK_EQ_INT(id1b, id1);
    CHECK_EQ_INT(ver, 1);
    /* a doc (or a default) makes another schema, as in Confluent's registry */
    int64_t idd;
    CHECK_EQ_INT(dm_schema_registry_register(r, "zdoc-value", v1doc, &idd, &ver, NULL, NULL),
                 DM_OK);
    CHECK(idd != id1);
    CHECK_EQ_INT(dm_schema_registry_register(r, "plays-value", v2, &id2, &ver, NULL, NULL), DM_OK);
    CHECK_EQ_INT(ver, 2);
    CHECK(id2 != id1);
    /* another subject with v1 shares its global id */
    CHECK_EQ_INT(dm_schema_registry_register(r, "other-value", v1, &ido, &ver, NULL, NULL), DM_OK);
    CHECK_EQ_INT(ido, id1);
    CHECK_EQ_INT(ver, 1);
    char *text;
    REQUIRE(dm_schema_registry_get_by_id(r, id2, &text, NULL) == DM_OK);
    CHECK_STR_EQ(text, v2);
    free(text);
    dm_error_t err = {0};
    CHECK_EQ_INT(dm_schema_registry_get_by_id(r, 999, &text, &err), DM_ERR_NOT_FOUND);
    int64_t id;
    REQUIRE(dm_schema_registry_get_version(r, "plays-value", -1, &id, &ver, &text, NULL) == DM_OK);
    CHECK_EQ_INT(ver, 2);
    CHECK_EQ_INT(id, id2);
    free(text);
    CHECK_EQ_INT(dm_schema_registry_lookup(r, "plays-value", v1b, &id, &ver, NULL), DM_OK);
    CHECK_EQ_INT(ver, 1);
    CHECK_EQ_INT(dm_schema_registry_lookup(r, "plays-value", bad, &id, &ver, NULL),
                 DM_ERR_NOT_FOUND);
    char **subjects;
    size_t n;
    REQUIRE(dm_schema_registry_subjects(r, false, &subjects, &n, NULL) == DM_OK);
    CHECK_EQ_INT(n, 3);
    CHECK_STR_EQ(subjects[0], "other-value");
    dm_schema_registry_free_list(subjects, n);
    CHECK_EQ_INT(dm_schema_registry_register(r, "x", "{\"type\":", &id, &ver, NULL, &err),
                 DM_ERR_SCHEMA_PARSE);
    dm_schema_registry_close(r);
}

static void test_compatibility_levels(void)
{
    dm_schema_registry_t *r;
    REQUIRE(dm_schema_registry_open(":memory:", &r, NULL) == DM_OK);
    dm_schema_compat_level_t level;
    CHECK_EQ_INT(dm_schema_registry_get_level(r, "s", &level, NULL), DM_OK);
    CHECK_EQ_INT(level, DM_COMPAT_BACKWARD);
    REQUIRE(dm_schema_registry_register(r, "s", v1, NULL, NULL, NULL, NULL) == DM_OK);
    dm_schema_compat_report_t report = {0};
    dm_error_t err = {0};
    CHECK_EQ_INT(dm_schema_registry_register(r, "s", bad, NULL, NULL, &report, &err),
                 DM_ERR_SCHEMA_INCOMPATIBLE);
    CHECK(report.n == 1);
    if (report.n) CHECK_CONTAINS(report.messages[0], "$.z");
    CHECK_CONTAINS(err.message, "BACKWARD");
    dm_schema_compat_report_free(&report);
    CHECK_EQ_INT(dm_schema_registry_check(r, "s", bad, NULL, NULL), DM_ERR_SCHEMA_INCOMPATIBLE);
    /* a subject level overrides the global one */
    CHECK_EQ_INT(dm_schema_registry_set_level(r, NULL, DM_COMPAT_FULL, NULL), DM_OK);
    CHECK_EQ_INT(dm_schema_registry_get_level(r, "s", &level, NULL), DM_OK);
    CHECK_EQ_INT(level, DM_COMPAT_FULL);
    CHECK_EQ_INT(dm_schema_registry_set_level(r, "s", DM_COMPAT_FORWARD, NULL), DM_OK);
    CHECK_EQ_INT(dm_schema_registry_get_level(r, "s", &level, NULL), DM_OK);
    CHECK_EQ_INT(level, DM_COMPAT_FORWARD);
    CHECK_EQ_INT(dm_schema_registry_get_level(r, NULL, &level, NULL), DM_OK);
    CHECK_EQ_INT(level, DM_COMPAT_FULL);
    int ver;
    CHECK_EQ_INT(dm_schema_registry_register(r, "s", bad, NULL, &ver, NULL, NULL), DM_OK);
    CHECK_EQ_INT(ver, 2);
    dm_schema_registry_close(r);
}

static void test_soft_and_hard_delete(void)
{
    dm_schema_registry_t *r;
    REQUIRE(dm_schema_registry_open(":memory:", &r, NULL) == DM_OK);
    int64_t id1;
    REQUIRE(dm_schema_registry_register(r, "s", v1, &id1, NULL, NULL, NULL) == DM_OK);
    REQUIRE(dm_schema_registry_register(r, "s", v2, NULL, NULL, NULL, NULL) == DM_OK);
    dm_error_t err = {0};
    /* hard delete needs a soft delete first */
    CHECK_EQ_INT(dm_schema_registry_delete_version(r, "s", 2, true, &err), DM_ERR_INVALID);
    CHECK_EQ_INT(dm_schema_registry_delete_version(r, "s", 2, false, NULL), DM_OK);
    int ver;
    REQUIRE(dm_schema_registry_get_version(r, "s", -1, NULL, &ver, NULL, NULL) == DM_OK);
    CHECK_EQ_INT(ver, 1);
    int *vs;
    size_t n;
    REQUIRE(dm_schema_registry_versions(r, "s", false, &vs, &n, NULL) == DM_OK);
    CHECK_EQ_INT(n, 1);
    free(vs);
    REQUIRE(dm_schema_registry_versions(r, "s", true, &vs, &n, NULL) == DM_OK);
    CHECK_EQ_INT(n, 2);
    free(vs);
    /* versions are never reused, even after a delete */
    REQUIRE(dm_schema_registry_register(r, "s", v2, NULL, &ver, NULL, NULL) == DM_OK);
    CHECK_EQ_INT(ver, 3);
    CHECK_EQ_INT(dm_schema_registry_delete_version(r, "s", 2, true, NULL), DM_OK);
    REQUIRE(dm_schema_registry_versions(r, "s", true, &vs, &n, NULL) == DM_OK);
    CHECK_EQ_INT(n, 2);
    free(vs);
    /* subject: soft, then hard */
    CHECK_EQ_INT(dm_schema_registry_delete_subject(r, "s", true, NULL, &err), DM_ERR_INVALID);
    size_t count;
    CHECK_EQ_INT(dm_schema_registry_delete_subject(r, "s", false, &count, NULL), DM_OK);
    CHECK_EQ_INT(count, 2);
    char **subjects;
    REQUIRE(dm_schema_registry_subjects(r, false, &subjects, &n, NULL) == DM_OK);
    CHECK_EQ_INT(n, 0);
    dm_schema_registry_free_list(subjects, n);
    REQUIRE(dm_schema_registry_subjects(r, true, &subjects, &n, NULL) == DM_OK);
    CHECK_EQ_INT(n, 1);
    dm_schema_registry_free_list(subjects, n);
    CHECK_EQ_INT(dm_schema_registry_delete_subject(r, "s", true, &count, NULL), DM_OK);
    CHECK_EQ_INT(dm_schema_registry_versions(r, "s", true, &vs, &n, &err), DM_ERR_NOT_FOUND);
    /* the id still resolves: ids are stable for the life of the database */
    char *text;
    CHECK_EQ_INT(dm_schema_registry_get_by_id(r, id1, &text, NULL), DM_OK);
    free(text);
    dm_schema_registry_close(r);
}

static void test_persists(void)
{
    char path[] = "/tmp/dm-registry-XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    close(fd);
    dm_schema_registry_t *r;
    int64_t id;
    REQUIRE(dm_schema_registry_open(path, &r, NULL) == DM_OK);
    REQUIRE(dm_schema_registry_register(r, "s", v1, &id, NULL, NULL, NULL) == DM_OK);
    REQUIRE(dm_schema_registry_set_level(r, "s", DM_COMPAT_NONE, NULL) == DM_OK);
    dm_schema_registry_close(r);
    REQUIRE(dm_schema_registry_open(path, &r, NULL) == DM_OK);
    int64_t id_again;
    int ver;
    CHECK_EQ_INT(dm_schema_registry_lookup(r, "s", v1, &id_again, &ver, NULL), DM_OK);
    CHECK_EQ_INT(id_again, id);
    dm_schema_compat_level_t level;
    dm_schema_registry_get_level(r, "s", &level, NULL);
    CHECK_EQ_INT(level, DM_COMPAT_NONE);
    /* NONE: anything goes */
    CHECK_EQ_INT(dm_schema_registry_register(r, "s", "\"string\"", NULL, &ver, NULL, NULL), DM_OK);
    CHECK_EQ_INT(ver, 2);
    dm_schema_registry_close(r);
    unlink(path);
    dm_error_t err = {0};
    CHECK_EQ_INT(dm_schema_registry_open("/nonexistent/dir/x.db", &r, &err), DM_ERR_IO);
}

int main(void)
{
    RUN(test_register_and_dedup);
    RUN(test_compatibility_levels);
    RUN(test_soft_and_hard_delete);
    RUN(test_persists);
    return check_summary();
}
