/* bench/bench_catalog.c — the first catalog request after a change, at the
 * scale of docs/ui.md: 30,000 sources and 20,000 pipelines (each publishing a
 * derived source: 50,000 catalog entries) in a controller store.
 *
 * After each change (one pipeline applied again with a new `from`, so its
 * entry, its derived entry and two sources' consumers change) the catalog is
 * brought up to date two ways, alternating, and the previous answer freed:
 *   full (baseline, what GET /api/v1/catalog did before): dm_catalog_sources
 *   kept (datamesh): dm_catalog_update, building only the changed entries
 * Both answers are compared (json_equal) every round. Time is CPU time of the
 * process; the median of DM_BENCH_ROUNDS (default 5) rounds each is reported.
 * Sizes: DM_BENCH_SOURCES (30000), DM_BENCH_PIPELINES (20000).
 * Last line: `catalog ratio=full/kept target=10`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "control/reconcile.h"
#include "control/store.h"

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const dm_error_t *err)
{
    fprintf(stderr, "bench_catalog: %s: %s\n", what, err ? err->message : "");
    exit(1);
}

static int env_int(const char *name, int dflt)
{
    const char *v = getenv(name);
    return v && atoi(v) > 0 ? atoi(v) : dflt;
}

static json_t *pipeline(int i, int from)
{
    char name[32], src[32], to[32];
    snprintf(name, sizeof(name), "p-%d", i);
    snprintf(src, sizeof(src), "src-%d", from);
    snprintf(to, sizeof(to), "derived-%d", i);
    return json_pack("{s:s, s:{s:s, s:s}, s:{s:[s], s:[{s:s}, {s:[s, s]}], s:[{s:s}]}}", "kind",
                     "Pipeline", "metadata", "name", name, "owner", "team-1", "spec", "from", src,
                     "steps", "filter", "amount > 0", "project", "id", "amount * 100 AS cents",
                     "to", "source", to);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(void)
{
    int nsrc = env_int("DM_BENCH_SOURCES", 30000), npipe = env_int("DM_BENCH_PIPELINES", 20000);
    int rounds = env_int("DM_BENCH_ROUNDS", 5);
    char dir[] = "/tmp/dm-bench-catalog-XXXXXX", path[128];
    if (!mkdtemp(dir)) die("mkdtemp", NULL);
    snprintf(path, sizeof(path), "%s/controller.db", dir);
    dm_error_t err = {0};
    dm_store_t *s = dm_store_open(path, &err);
    if (!s) die("open the store", &err);
    if (dm_store_begin(s, &err)) die("begin", &err);
    for (int i = 0; i < nsrc; i++) {
        char name[32], owner[32];
        snprintf(name, sizeof(name), "src-%d", i);
        snprintf(owner, sizeof(owner), "team-%d", i % 50);
        json_t *doc =
            json_pack("{s:s, s:{s:s, s:s}, s:{s:s, s:[s], s:{s:s, s:s, s:[{s:s, s:s}, {s:s, s:s}, "
                      "{s:s, s:s}]}}}",
                      "kind", "Source", "metadata", "name", name, "owner", owner, "spec",
                      "connector", "ingest", "key", "id", "schema", "type", "record", "name",
                      "Order", "fields", "name", "id", "type", "long", "name", "amount", "type",
                      "double", "name", "country", "type", "string");
        if (dm_store_put(s, DM_KIND_SOURCE, name, doc, &err)) die("put a source", &err);
        json_decref(doc);
    }
    for (int i = 0; i < npipe; i++) {
        json_t *doc = pipeline(i, i % nsrc);
        if (dm_store_put(s, DM_KIND_PIPELINE, dm_spec_name(doc), doc, &err))
            die("put a pipeline", &err);
        json_decref(doc);
    }
    if (dm_store_commit(s, &err)) die("commit", &err);

    dm_catalog_t *c = dm_catalog_new();
    json_t *full = NULL, *kept = NULL;
    if (dm_catalog_sources(s, &full, &err)) die("full catalog", &err);
    if (dm_catalog_update(c, s, &kept, NULL, &err)) die("kept catalog", &err);
    size_t entries = json_array_size(full);
    double *tf = calloc((size_t)rounds, sizeof(double)),
           *tk = calloc((size_t)rounds, sizeof(double));
    size_t built = 0;
    for (int r = 0; r < rounds; r++) {
        /* One apply: p-7 now reads another source. */
        json_t *doc = pipeline(7, (r + 100) % nsrc);
        if (dm_store_begin(s, &err) || dm_store_put(s, DM_KIND_PIPELINE, "p-7", doc, &err) ||
            dm_store_commit(s, &err))
            die("apply", &err);
        json_decref(doc);
        double t0 = cpu_s();
        json_t *next = NULL;
        if (dm_catalog_sources(s, &next, &err)) die("full catalog", &err);
        json_decref(full); /* the request that rebuilt it drops the old one */
        full = next;
        double t1 = cpu_s();
        if (dm_catalog_update(c, s, &next, &built, &err)) die("kept catalog", &err);
        json_decref(kept);
        kept = next;
        double t2 = cpu_s();
        tf[r] = t1 - t0;
        tk[r] = t2 - t1;
        if (!json_equal(full, kept)) die("the kept catalog differs from the full build", NULL);
    }
    qsort(tf, (size_t)rounds, sizeof(double), cmp_double);
    qsort(tk, (size_t)rounds, sizeof(double), cmp_double);
    double f = tf[rounds / 2], k = tk[rounds / 2];
    printf("catalog of %zu entries (%d sources, %d pipelines), first build after one apply, "
           "median of %d:\n",
           entries, nsrc, npipe, rounds);
    printf("  full rebuild (baseline): %8.1f ms CPU (%.2f us per entry)\n", f * 1e3,
           f * 1e6 / (double)entries);
    printf("  kept, changed entries:   %8.1f ms CPU (%.2f us per entry; %zu entries built)\n",
           k * 1e3, k * 1e6 / (double)entries, built);
    printf("catalog ratio=%.2f target=10\n", f / k);
    json_decref(full);
    json_decref(kept);
    dm_catalog_free(c);
    dm_store_close(s);
    free(tf);
    free(tk);
    char cmd[200];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : 1;
}
