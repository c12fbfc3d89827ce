/* tests/unit/test_control_catalog.c — the catalog kept between changes
 * (dm_catalog_update) gives exactly what a full build (dm_catalog_sources)
 * gives, after random puts, deletes and rollbacks (replaying the store's
 * changes, or scanning everything when the store no longer remembers them),
 * and builds again only the entries a change touched. */
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "control/reconcile.h"
#include "control/store.h"

static char dir[] = "/tmp/dm-test-catalog-XXXXXX";
static char path[128];

static json_t *source(int i, int version)
{
    char name[32], owner[32];
    snprintf(name, sizeof(name), "src-%d", i);
    snprintf(owner, sizeof(owner), "team-%d", version % 3);
    json_t *doc =
        json_pack("{s:s, s:{s:s, s:s, s:{s:i}}, s:{s:s, s:{s:s, s:s, s:[{s:s, s:s}]}}}", "kind",
                  "Source", "metadata", "name", name, "owner", owner, "labels", "v", version,
                  "spec", "connector", version % 2 ? "ingest" : "http", "schema", "type", "record",
                  "name", "R", "fields", "name", version % 4 ? "id" : "country", "type", "long");
    return doc;
}

/* A pipeline reading one or two sources (the second through enrich), and
 * publishing one or two derived sources (the second through a route step). */
static json_t *pipeline(int i, int version, int nsources)
{
    char name[32], from[32], with[32], to[32], side[32];
    snprintf(name, sizeof(name), "p-%d", i);
    snprintf(from, sizeof(from), "src-%d", (i + version) % nsources);
    snprintf(with, sizeof(with), "src-%d", (i * 7 + version) % nsources);
    snprintf(to, sizeof(to), "derived-%d", version % 2 ? i : i + 1000);
    if (version % 7 == 3) snprintf(to, sizeof(to), "src-%d", i); /* the same name as a source */
    snprintf(side, sizeof(side), "side-%d", version % 11 == 4 ? 0 : i); /* two publishers */
    json_t *steps = json_array();
    if (version % 3 == 1)
        json_array_append_new(steps,
                              json_pack("{s:{s:s, s:[s]}}", "enrich", "with", with, "on", "id"));
    if (version % 5 == 2)
        json_array_append_new(
            steps, json_pack("{s:{s:{s:{s:s}}}}", "route", "outputs", side, "when", "id > 0"));
    json_t *doc =
        json_pack("{s:s, s:{s:s}, s:{s:[s], s:o, s:[{s:s}]}}", "kind", "Pipeline", "metadata",
                  "name", name, "spec", "from", from, "steps", steps, "to", "source", to);
    if (version % 2)
        json_object_set_new(json_object_get(doc, "metadata"), "owner", json_string("t"));
    return doc;
}

static void put(dm_store_t *s, dm_kind_t kind, json_t *doc)
{
    dm_error_t err = {0};
    CHECK(dm_store_put(s, kind,
                       json_string_value(json_object_get(json_object_get(doc, "metadata"), "name")),
                       doc, &err) == DM_OK);
    json_decref(doc);
}

/* The kept catalog equals a full build; returns how many entries it built. */
static size_t same_as_full(dm_catalog_t *c, dm_store_t *s, json_t **kept)
{
    dm_error_t err = {0};
    json_t *full = NULL, *inc = NULL;
    size_t built = 0;
    REQUIRE(dm_catalog_sources(s, &full, &err) == DM_OK);
    REQUIRE(dm_catalog_update(c, s, &inc, &built, &err) == DM_OK);
    CHECK(json_array_size(inc) == json_array_size(full));
    bool equal = json_equal(inc, full);
    CHECK(equal);
    if (!equal) {
        char *a = json_dumps(inc, JSON_COMPACT), *b = json_dumps(full, JSON_COMPACT);
        fprintf(stderr, "kept: %.2000s\nfull: %.2000s\n", a, b);
        free(a);
        free(b);
    }
    json_decref(full);
    if (kept)
        *kept = inc;
    else
        json_decref(inc);
    return built;
}

static void test_random_changes(void)
{
    enum { SOURCES = 40, PIPES = 30, STEPS = 400 };
    dm_error_t err = {0};
    dm_store_t *s = dm_store_open(path, &err);
    REQUIRE(s);
    dm_catalog_t *c = dm_catalog_new();
    REQUIRE(c);
    CHECK(same_as_full(c, s, NULL) == 0); /* empty store, empty catalog */
    REQUIRE(dm_store_begin(s, &err) == DM_OK);
    for (int i = 0; i < SOURCES; i++)
        put(s, DM_KIND_SOURCE, source(i, 0));
    for (int i = 0; i < PIPES; i++)
        put(s, DM_KIND_PIPELINE, pipeline(i, 0, SOURCES));
    REQUIRE(dm_store_commit(s, &err) == DM_OK);
    CHECK(same_as_full(c, s, NULL) == SOURCES + PIPES);
    CHECK(same_as_full(c, s, NULL) == 0); /* nothing changed: nothing built */

    /* An answer given out stays as it was while the catalog moves on. */
    json_t *old = NULL;
    same_as_full(c, s, &old);
    json_t *old_copy = json_deep_copy(old);

    unsigned seed = 18;
    int version = 1;
    for (int step = 0; step < STEPS; step++) {
        int what = rand_r(&seed) % 10, n = 1 + rand_r(&seed) % 3;
        REQUIRE(dm_store_begin(s, &err) == DM_OK);
        for (int k = 0; k < n; k++) {
            int i = rand_r(&seed);
            if (what < 4)
                put(s, DM_KIND_SOURCE, source(i % (SOURCES + 5), version++));
            else if (what < 8)
                put(s, DM_KIND_PIPELINE, pipeline(i % (PIPES + 5), version++, SOURCES));
            else {
                char name[32];
                bool pipe = i % 2;
                snprintf(name, sizeof(name), pipe ? "p-%d" : "src-%d",
                         i % (pipe ? PIPES : SOURCES));
                dm_store_delete(s, pipe ? DM_KIND_PIPELINE : DM_KIND_SOURCE, name, NULL);
            }
        }
        if (step % 100 == 99) /* more changes than the store remembers: a scan of everything */
            for (int k = 0; k < 4100; k++)
                put(s, DM_KIND_SOURCE, source(k % 3, version++));
        if (rand_r(&seed) % 12 == 0)
            dm_store_rollback(s); /* drops the store's cache: every document is new */
        else
            REQUIRE(dm_store_commit(s, &err) == DM_OK);
        size_t built = same_as_full(c, s, NULL);
        /* A few documents changed: far fewer entries built than the catalog holds. */
        if (step % 50 == 0) fprintf(stderr, "step %d: built %zu\n", step, built);
    }
    CHECK(json_equal(old, old_copy));
    json_decref(old);
    json_decref(old_copy);
    dm_catalog_free(c);
    dm_store_close(s);
}

/* One changed document builds its own entry and the entries whose consumers it
 * changed, nothing else. */
static void test_builds_only_what_changed(void)
{
    dm_error_t err = {0};
    char own[160];
    snprintf(own, sizeof(own), "%s/few.db", dir);
    dm_store_t *s = dm_store_open(own, &err);
    REQUIRE(s);
    REQUIRE(dm_store_begin(s, &err) == DM_OK);
    for (int i = 0; i < 10; i++)
        put(s, DM_KIND_SOURCE, source(i, 0));
    for (int i = 0; i < 5; i++)
        put(s, DM_KIND_PIPELINE, pipeline(i, 0, 10));
    REQUIRE(dm_store_commit(s, &err) == DM_OK);
    dm_catalog_t *c = dm_catalog_new();
    REQUIRE(c);
    CHECK_EQ_INT((int)same_as_full(c, s, NULL), 15);
    CHECK(same_as_full(c, s, NULL) == 0);

    /* A source's description: only its entry. */
    json_t *doc = NULL;
    REQUIRE(dm_store_get(s, DM_KIND_SOURCE, "src-3", &doc, &err) == DM_OK);
    json_object_set_new(json_object_get(doc, "metadata"), "description", json_string("changed"));
    json_object_del(doc, "status");
    REQUIRE(dm_store_begin(s, &err) == DM_OK);
    put(s, DM_KIND_SOURCE, doc);
    REQUIRE(dm_store_commit(s, &err) == DM_OK);
    CHECK_EQ_INT((int)same_as_full(c, s, NULL), 1);

    /* A new pipeline reading src-1 and src-2, publishing one source: its
     * derived entry, plus src-1 and src-2 (their consumers changed). */
    REQUIRE(dm_store_begin(s, &err) == DM_OK);
    put(s, DM_KIND_PIPELINE,
        json_pack("{s:s, s:{s:s}, s:{s:[s], s:[{s:{s:s, s:[s]}}], s:[{s:s}]}}", "kind", "Pipeline",
                  "metadata", "name", "p-new", "spec", "from", "src-1", "steps", "enrich", "with",
                  "src-2", "on", "id", "to", "source", "derived-new"));
    REQUIRE(dm_store_commit(s, &err) == DM_OK);
    CHECK_EQ_INT((int)same_as_full(c, s, NULL), 3);

    /* Deleting it builds src-1 and src-2 again, and drops its entry. */
    REQUIRE(dm_store_begin(s, &err) == DM_OK);
    CHECK(dm_store_delete(s, DM_KIND_PIPELINE, "p-new", &err) == DM_OK);
    REQUIRE(dm_store_commit(s, &err) == DM_OK);
    CHECK_EQ_INT((int)same_as_full(c, s, NULL), 2);
    dm_catalog_free(c);
    dm_store_close(s);
}

int main(void)
{
    if (!mkdtemp(dir)) return 1;
    snprintf(path, sizeof(path), "%s/controller.db", dir);
    RUN(test_random_changes);
    RUN(test_builds_only_what_changed);
    char cmd[200];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0) return 1;
    return check_summary();
}
