/* tests/unit/test_control_store.c — the store's pipeline → source edges and the
 * catalog lookups that use them. */
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "control/reconcile.h"
#include "control/store.h"

static char dir[] = "/tmp/dm-test-store-XXXXXX";
static char path[128];

static json_t *pipeline(const char *name, const char *from, const char *enrich, const char *to)
{
    json_t *steps = json_array();
    if (enrich)
        json_array_append_new(steps,
                              json_pack("{s:{s:s, s:[s]}}", "enrich", "with", enrich, "on", "id"));
    return json_pack("{s:s, s:{s:s}, s:{s:[s], s:o, s:[{s:s}]}}", "kind", "Pipeline", "metadata",
                     "name", name, "spec", "from", from, "steps", steps, "to", "source", to);
}

static void put(dm_store_t *s, json_t *doc)
{
    dm_error_t err = {0};
    const char *name = json_string_value(json_object_get(json_object_get(doc, "metadata"), "name"));
    REQUIRE(dm_store_begin(s, &err) == DM_OK);
    CHECK(dm_store_put(s, DM_KIND_PIPELINE, name, doc, &err) == DM_OK);
    CHECK(dm_store_commit(s, &err) == DM_OK);
    json_decref(doc);
}

/* The names dm_store_edge_pipelines gives, joined by commas. */
static char *edges(dm_store_t *s, const char *source, const char *role)
{
    static char out[256];
    json_t *a;
    dm_error_t err = {0};
    out[0] = 0;
    if (dm_store_edge_pipelines(s, source, role, &a, &err)) return strcpy(out, "error");
    size_t i;
    json_t *n;
    json_array_foreach(a, i, n)
    {
        if (i) strcat(out, ",");
        strncat(out, json_string_value(n), sizeof(out) - strlen(out) - 2);
    }
    json_decref(a);
    return out;
}

static void test_edges_follow_put_and_delete(void)
{
    dm_error_t err = {0};
    dm_store_t *s = dm_store_open(path, &err);
    REQUIRE(s);
    put(s, pipeline("p1", "orders", "movies", "rich"));
    put(s, pipeline("p2", "orders", NULL, "big"));
    put(s, pipeline("p3", "rich", NULL, "richer"));
    CHECK_STR_EQ(edges(s, "orders", "reads"), "p1,p2");
    CHECK_STR_EQ(edges(s, "movies", "reads"), "p1");
    CHECK_STR_EQ(edges(s, "rich", "publishes"), "p1");
    CHECK_STR_EQ(edges(s, "rich", NULL), "p1,p3");
    CHECK_STR_EQ(edges(s, "nothing", NULL), "");
    /* An update replaces the pipeline's edges. */
    put(s, pipeline("p2", "clicks", NULL, "big"));
    CHECK_STR_EQ(edges(s, "orders", "reads"), "p1");
    CHECK_STR_EQ(edges(s, "clicks", "reads"), "p2");
    REQUIRE(dm_store_begin(s, &err) == DM_OK);
    CHECK(dm_store_delete(s, DM_KIND_PIPELINE, "p1", &err) == DM_OK);
    CHECK(dm_store_commit(s, &err) == DM_OK);
    CHECK_STR_EQ(edges(s, "orders", NULL), "");
    CHECK_STR_EQ(edges(s, "movies", NULL), "");
    CHECK_STR_EQ(edges(s, "rich", NULL), "p3");
    /* A rolled-back put leaves the edges as they were. */
    REQUIRE(dm_store_begin(s, &err) == DM_OK);
    json_t *p4 = pipeline("p4", "orders", NULL, "x");
    CHECK(dm_store_put(s, DM_KIND_PIPELINE, "p4", p4, &err) == DM_OK);
    json_decref(p4);
    dm_store_rollback(s);
    CHECK_STR_EQ(edges(s, "orders", NULL), "");
    dm_store_close(s);
}

/* The change number moves on every put, delete and rollback, and only then:
 * the catalog endpoint keeps its catalog while it stays. */
static void test_changes_number(void)
{
    dm_error_t err = {0};
    dm_store_t *s = dm_store_open(path, &err);
    REQUIRE(s);
    uint64_t c0 = dm_store_changes(s);
    json_t *list;
    REQUIRE(dm_store_list(s, DM_KIND_PIPELINE, &list, &err) == DM_OK);
    json_decref(list);
    CHECK(dm_store_changes(s) == c0); /* reading changes nothing */
    put(s, pipeline("c1", "orders", NULL, "c1-out"));
    uint64_t c1 = dm_store_changes(s);
    CHECK(c1 != c0);
    REQUIRE(dm_store_begin(s, &err) == DM_OK);
    CHECK(dm_store_delete(s, DM_KIND_PIPELINE, "c1", &err) == DM_OK);
    CHECK(dm_store_commit(s, &err) == DM_OK);
    uint64_t c2 = dm_store_changes(s);
    CHECK(c2 != c1);
    REQUIRE(dm_store_begin(s, &err) == DM_OK);
    dm_store_rollback(s);
    CHECK(dm_store_changes(s) != c2);
    dm_store_close(s);
}

static void test_edges_rebuilt_at_open(void)
{
    dm_error_t err = {0};
    dm_store_t *s = dm_store_open(path, &err);
    REQUIRE(s);
    CHECK_STR_EQ(edges(s, "clicks", "reads"), "p2");
    dm_store_close(s);
    /* A stale index (as an older datamesh would leave it) is rebuilt at open. */
    char cmd[300];
    snprintf(cmd, sizeof(cmd),
             "sqlite3 %s \"DELETE FROM edges; INSERT INTO edges VALUES "
             "('ghost', 'reads', 'p9')\" 2>/dev/null",
             path);
    if (system(cmd) != 0) return; /* no sqlite3 shell: the rebuild is still run below */
    s = dm_store_open(path, &err);
    REQUIRE(s);
    CHECK_STR_EQ(edges(s, "ghost", NULL), "");
    CHECK_STR_EQ(edges(s, "clicks", "reads"), "p2");
    dm_store_close(s);
}

static void test_catalog_source_lineage(void)
{
    dm_error_t err = {0};
    dm_store_t *s = dm_store_open(path, &err);
    REQUIRE(s);
    put(s, pipeline("p5", "orders", NULL, "derived5"));
    put(s, pipeline("p6", "derived5", NULL, "derived6"));
    put(s, pipeline("p7", "orders", "derived5", "derived7"));
    json_t *src = NULL;
    REQUIRE(dm_catalog_source(s, "derived5", &src, &err) == DM_OK);
    char *text = json_dumps(src, JSON_COMPACT);
    CHECK_CONTAINS(text, "\"producers\":[\"pipeline:p5\"]");
    CHECK_CONTAINS(text, "\"consumers\":[\"pipeline:p6\",\"pipeline:p7\"]");
    free(text);
    json_decref(src);
    /* Read but published by no one (p1 is gone): not a source. */
    CHECK(dm_catalog_source(s, "rich", &src, &err) == DM_ERR_NOT_FOUND);
    dm_store_close(s);
}

static void put_kind(dm_store_t *s, dm_kind_t kind, json_t *doc)
{
    dm_error_t err = {0};
    const char *name = json_string_value(json_object_get(json_object_get(doc, "metadata"), "name"));
    REQUIRE(dm_store_begin(s, &err) == DM_OK);
    CHECK(dm_store_put(s, kind, name, doc, &err) == DM_OK);
    CHECK(dm_store_commit(s, &err) == DM_OK);
    json_decref(doc);
}

static void test_delete_refused_through_index(void)
{
    dm_error_t err = {0};
    dm_store_t *s = dm_store_open(path, &err);
    REQUIRE(s);
    put_kind(s, DM_KIND_SOURCE,
             json_pack("{s:s, s:{s:s}, s:{s:s}}", "kind", "Source", "metadata", "name", "orders",
                       "spec", "connector", "ingest"));
    /* p2 reads clicks, p5 and p7 read orders, p7 enriches with derived5 (p5's). */
    CHECK(dm_reconcile_delete(s, DM_KIND_SOURCE, "orders", &err) == DM_ERR_EXISTS);
    CHECK_CONTAINS(err.message, "still used by pipelines: p5, p7");
    CHECK(dm_reconcile_delete(s, DM_KIND_PIPELINE, "p5", &err) == DM_ERR_EXISTS);
    CHECK_CONTAINS(err.message, "Pipeline 'p5' is still used by pipelines: p6, p7");
    CHECK(dm_reconcile_delete(s, DM_KIND_SOURCE, "derived5", &err) == DM_ERR_INVALID);
    CHECK_CONTAINS(err.message, "published by pipeline p5");
    CHECK(dm_reconcile_delete(s, DM_KIND_SOURCE, "nowhere", &err) == DM_ERR_NOT_FOUND);
    /* Readers first, then what they read. */
    CHECK(dm_reconcile_delete(s, DM_KIND_PIPELINE, "p7", &err) == DM_OK);
    CHECK(dm_reconcile_delete(s, DM_KIND_PIPELINE, "p6", &err) == DM_OK);
    CHECK(dm_reconcile_delete(s, DM_KIND_PIPELINE, "p5", &err) == DM_OK);
    CHECK(dm_reconcile_delete(s, DM_KIND_SOURCE, "orders", &err) == DM_OK);
    CHECK_STR_EQ(edges(s, "derived5", NULL), "");
    dm_store_close(s);
}

static void collect(void *ctx, const char *pipeline, const char *key, const void *frag, size_t len)
{
    char line[200];
    snprintf(line, sizeof(line), "%s=%s:%.*s", pipeline, key, (int)len, (const char *)frag);
    json_array_append_new(ctx, json_string(line));
}

/* The kept fragments (as "pipeline=key:bytes", sorted), joined by commas. */
static char *fragments(dm_store_t *s)
{
    static char out[512];
    json_t *a = json_array();
    dm_error_t err = {0};
    out[0] = 0;
    if (dm_store_lineage_each(s, collect, a, &err)) strcpy(out, "error");
    size_t n = json_array_size(a);
    for (size_t i = 0; i < n; i++) /* few: a selection sort */
        for (size_t j = i + 1; j < n; j++)
            if (strcmp(json_string_value(json_array_get(a, j)),
                       json_string_value(json_array_get(a, i))) < 0) {
                json_t *x = json_incref(json_array_get(a, i));
                json_array_set(a, i, json_array_get(a, j));
                json_array_set_new(a, j, x);
            }
    for (size_t i = 0; i < n; i++) {
        if (i) strcat(out, ",");
        strncat(out, json_string_value(json_array_get(a, i)), sizeof(out) - strlen(out) - 2);
    }
    json_decref(a);
    return out;
}

/* Lineage fragments: kept per pipeline, replaced, gone with a deleted
 * pipeline (in its transaction), and rows of pipelines that are not there
 * dropped at open. */
static void test_lineage_fragments(void)
{
    dm_error_t err = {0};
    dm_store_t *s = dm_store_open(path, &err);
    REQUIRE(s);
    put(s, pipeline("l1", "plays", NULL, "d1"));
    put(s, pipeline("l2", "plays", NULL, "d2"));
    CHECK(dm_store_lineage_put(s, "l1", "1 {}", "abc", 3, &err) == DM_OK);
    REQUIRE(dm_store_begin(s, &err) == DM_OK);
    CHECK(dm_store_lineage_put(s, "l2", "1 {}", "xyz", 3, &err) == DM_OK);
    CHECK(dm_store_lineage_put(s, "l1", "2 {}", "def", 3, &err) == DM_OK);
    CHECK(dm_store_commit(s, &err) == DM_OK);
    CHECK_STR_EQ(fragments(s), "l1=2 {}:def,l2=1 {}:xyz");
    REQUIRE(dm_store_begin(s, &err) == DM_OK);
    CHECK(dm_store_delete(s, DM_KIND_PIPELINE, "l2", &err) == DM_OK);
    CHECK(dm_store_commit(s, &err) == DM_OK);
    CHECK_STR_EQ(fragments(s), "l1=2 {}:def");
    /* a rolled-back delete keeps the fragment */
    REQUIRE(dm_store_begin(s, &err) == DM_OK);
    CHECK(dm_store_delete(s, DM_KIND_PIPELINE, "l1", &err) == DM_OK);
    dm_store_rollback(s);
    CHECK_STR_EQ(fragments(s), "l1=2 {}:def");
    /* no row for a pipeline that is not there (deleted while its lineage was computed) */
    CHECK(dm_store_lineage_put(s, "ghost", "1 {}", "g", 1, &err) == DM_OK);
    CHECK_STR_EQ(fragments(s), "l1=2 {}:def");
    dm_store_close(s);
    /* a row with no pipeline (left by hand or an older datamesh) goes at open */
    char cmd[300];
    snprintf(cmd, sizeof(cmd),
             "sqlite3 %s \"INSERT INTO lineage VALUES ('ghost', '1 {}', x'00')\" 2>/dev/null",
             path);
    if (system(cmd) != 0) return; /* no sqlite3 shell */
    s = dm_store_open(path, &err);
    REQUIRE(s);
    CHECK_STR_EQ(fragments(s), "l1=2 {}:def");
    dm_store_close(s);
}

/* The schema-change history is kept across a reopen (a controller
 * restart), filtered by pipeline, newest last. */
static void test_schema_changes_survive_reopen(void)
{
    dm_error_t err = {0};
    dm_store_t *s = dm_store_open(path, &err);
    REQUIRE(s);
    json_t *a = NULL;
    CHECK(dm_store_schema_changes(s, NULL, 0, &a, &err) == DM_OK);
    CHECK_EQ_INT((int)json_array_size(a), 0);
    json_decref(a);
    dm_store_schema_change_t e = {1000, "le", "lenient", "restart", "plays/0 offset 300"};
    CHECK(dm_store_schema_change_add(s, &e, &err) == DM_OK);
    e = (dm_store_schema_change_t){2000, "fa", "fail", "pause", "plays/1 offset 7"};
    CHECK(dm_store_schema_change_add(s, &e, &err) == DM_OK);
    e = (dm_store_schema_change_t){3000, "le", "lenient", "restart", NULL};
    CHECK(dm_store_schema_change_add(s, &e, &err) == DM_OK);
    dm_store_close(s);
    s = dm_store_open(path, &err);
    REQUIRE(s);
    CHECK(dm_store_schema_changes(s, NULL, 0, &a, &err) == DM_OK);
    CHECK_EQ_INT((int)json_array_size(a), 3);
    CHECK_STR_EQ(json_string_value(json_object_get(json_array_get(a, 1), "action")), "pause");
    json_decref(a);
    CHECK(dm_store_schema_changes(s, "le", 0, &a, &err) == DM_OK);
    CHECK_EQ_INT((int)json_array_size(a), 2);
    CHECK_EQ_INT((int)json_integer_value(json_object_get(json_array_get(a, 1), "ts_ms")), 3000);
    CHECK_STR_EQ(json_string_value(json_object_get(json_array_get(a, 0), "what")),
                 "plays/0 offset 300");
    json_decref(a);
    CHECK(dm_store_schema_changes(s, "le", 1, &a, &err) == DM_OK);
    CHECK_EQ_INT((int)json_array_size(a), 1);
    CHECK_EQ_INT((int)json_integer_value(json_object_get(json_array_get(a, 0), "ts_ms")), 3000);
    json_decref(a);
    dm_store_close(s);
}

int main(void)
{
    if (!mkdtemp(dir)) return 1;
    snprintf(path, sizeof(path), "%s/controller.db", dir);
    RUN(test_edges_follow_put_and_delete);
    RUN(test_edges_rebuilt_at_open);
    RUN(test_changes_number);
    RUN(test_catalog_source_lineage);
    RUN(test_delete_refused_through_index);
    RUN(test_schema_changes_survive_reopen);
    RUN(test_lineage_fragments);
    char cmd[200];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0) return 1;
    return check_summary();
}
