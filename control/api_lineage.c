/* control/api_lineage.c — GET /api/v1/lineage?node=…&direction=…&depth=…
 *
 * Answers {node, direction, depth, nodes, edges, problems} (control/lineage.h):
 * the part of the lineage graph reachable from node. Without node, the whole
 * graph. The graph is computed from the plans the stored pipelines compile to
 * against the registry as it is now; pipelines that cannot compile yet (a
 * source without a schema) are listed under problems.
 *
 * Computing it costs a dry-run compile per pipeline, so the last graph is kept
 * and used again while nothing changed: first the store's and the registry's
 * change counters (constant time); only when one moved, a fingerprint of what
 * the graph was computed from, which must then differ too:
 * the name and generation of every Source, Pipeline and Sink (any apply or
 * delete changes it) and the latest schema id of every source and derived
 * source (a new schema version does). Any registration (the tables of a
 * multi-table capture too, which no spec names) recomputes it; so does every
 * second while some pipeline cannot compile, and every 10 minutes regardless.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "control/api.h"
#include "control/lineage.h"
#include "control/spec.h"
#include "core/clock.h"
#include "core/hash.h"

#define CACHE_MAX_AGE_MS 600000 /* a safety net: the counters say when anything changed */

typedef struct lineage_api {
    dm_store_t *store;
    dm_runtime_t *rt;
} lineage_api_t;

static const dm_avro_schema_t *env_schema(void *ctx, int64_t id, dm_error_t *err)
{
    return dm_runtime_schema(ctx, id, err);
}

static const dm_avro_schema_t *env_subject_schema(void *ctx, const char *subject)
{
    int64_t id = 0;
    if (dm_runtime_subject_id(ctx, subject, &id, NULL)) return NULL;
    return dm_runtime_schema(ctx, id, NULL);
}

/* Builds the graph of what the store holds now. */
static dm_err_t build_graph(dm_store_t *store, dm_runtime_t *rt, dm_lineage_t **out,
                            json_t **problems, dm_error_t *err)
{
    *out = NULL;
    *problems = json_array();
    json_t *sources = NULL, *pipelines = NULL, *sinks = NULL;
    dm_err_t rc = dm_store_docs(store, DM_KIND_SOURCE, &sources, err);
    if (!rc) rc = dm_store_docs(store, DM_KIND_PIPELINE, &pipelines, err);
    if (!rc) rc = dm_store_docs(store, DM_KIND_SINK, &sinks, err);
    size_t n = json_object_size(pipelines), k = 0;
    dm_pipeline_plan_t **plans = calloc(n ? n : 1, sizeof(*plans));
    if (!rc && !plans) rc = dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    const char *name;
    json_t *doc;
    json_object_foreach(rc ? NULL : pipelines, name, doc)
    {
        dm_error_t e = {0};
        /* the maps read once: per pipeline they would cost O(objects) each */
        json_t *j = dm_runtime_plan_among(rt, doc, sources, sinks, &e);
        if (j && dm_plan_from_json(j, &plans[k], &e) == DM_OK)
            k++;
        else
            json_array_append_new(*problems,
                                  json_pack("{s:s, s:s}", "pipeline", name, "error", e.message));
        json_decref(j);
    }
    dm_lineage_env_t env = {env_schema, env_subject_schema, rt};
    if (!rc) rc = dm_lineage_build(sources, plans, k, &env, out, err);
    if (!rc) json_array_extend(*problems, (json_t *)dm_lineage_problems(*out));
    for (size_t i = 0; i < k; i++)
        dm_plan_free(plans[i]);
    free(plans);
    json_decref(sources);
    json_decref(pipelines);
    json_decref(sinks);
    return rc;
}

/* What the graph is computed from, in 64 bits (see the top of the file). */
static uint64_t fingerprint(dm_store_t *store, dm_runtime_t *rt)
{
    uint64_t h = 0x243f6a8885a308d3ull;
    const dm_kind_t kinds[] = {DM_KIND_SOURCE, DM_KIND_PIPELINE, DM_KIND_SINK};
    for (int k = 0; k < 3; k++) {
        json_t *docs = NULL;
        if (dm_store_docs(store, kinds[k], &docs, NULL)) return 0;
        const char *name;
        json_t *doc;
        json_object_foreach(docs, name, doc)
        {
            int64_t v[3] = {
                k,
                json_integer_value(json_object_get(json_object_get(doc, "status"), "generation")),
                0};
            if (kinds[k] == DM_KIND_SOURCE) {
                char subject[400];
                snprintf(subject, sizeof(subject), "%s-value", name);
                dm_runtime_subject_id(rt, subject, &v[2], NULL);
            }
            h = dm_hash64_seed(name, strlen(name), h);
            h = dm_hash64_seed(v, sizeof(v), h);
            /* a derived source: its schema is registered once its pipeline runs */
            size_t i;
            json_t *to;
            json_array_foreach(json_object_get(json_object_get(doc, "spec"), "to"), i, to)
            {
                const char *src = json_string_value(json_object_get(to, "source"));
                char subject[400];
                int64_t id = 0;
                if (!src) continue;
                snprintf(subject, sizeof(subject), "%s-value", src);
                dm_runtime_subject_id(rt, subject, &id, NULL);
                h = dm_hash64_seed(&id, sizeof(id), h);
            }
        }
        json_decref(docs);
    }
    return h ? h : 1;
}

static struct {
    pthread_mutex_t mu;
    dm_lineage_t *g;
    json_t *problems;
    uint64_t fp;
    uint64_t store_changes, registry_changes; /* the counters when the graph was checked */
    int64_t at_ms;
} cache = {.mu = PTHREAD_MUTEX_INITIALIZER};

dm_err_t dm_api_lineage_with(dm_store_t *store, dm_runtime_t *rt, dm_api_lineage_fn fn, void *ctx,
                             dm_error_t *err)
{
    pthread_mutex_lock(&cache.mu);
    uint64_t store_changes = dm_store_changes(store),
             registry_changes = dm_runtime_registry_changes(rt);
    /* a new schema anywhere (a table of a multi-table capture included) */
    bool registered = registry_changes != cache.registry_changes;
    /* nothing was put or deleted: the specs are as they were */
    uint64_t fp = cache.g && store_changes == cache.store_changes && !registered
                      ? cache.fp
                      : fingerprint(store, rt);
    cache.store_changes = store_changes;
    cache.registry_changes = registry_changes;
    int64_t now = dm_wall_ms();
    dm_err_t rc = DM_OK;
    /* while some pipeline cannot compile, what it waits for may not show in fp */
    int64_t max_age = json_array_size(cache.problems) ? 1000 : CACHE_MAX_AGE_MS;
    if (!cache.g || !fp || fp != cache.fp || registered || now - cache.at_ms >= max_age) {
        dm_lineage_t *g = NULL;
        json_t *problems = NULL;
        rc = build_graph(store, rt, &g, &problems, err);
        if (!rc) {
            dm_lineage_free(cache.g);
            json_decref(cache.problems);
            cache.g = g;
            cache.problems = problems;
            cache.fp = fp;
            cache.at_ms = now;
        } else {
            json_decref(problems);
        }
    }
    if (!rc) fn(ctx, cache.g, cache.problems);
    pthread_mutex_unlock(&cache.mu);
    return rc;
}

void dm_api_lineage_forget(void)
{
    pthread_mutex_lock(&cache.mu);
    dm_lineage_free(cache.g);
    json_decref(cache.problems);
    cache.g = NULL;
    cache.problems = NULL;
    pthread_mutex_unlock(&cache.mu);
}

typedef struct query {
    const char *node;
    dm_lineage_dir_t dir;
    int depth;
    json_t *out;
    dm_error_t *err;
} query_t;

static void run_query(void *ctx, const dm_lineage_t *g, const json_t *problems)
{
    query_t *q = ctx;
    q->out = q->node && *q->node ? dm_lineage_query(g, q->node, q->dir, q->depth, q->err)
                                 : dm_lineage_to_json(g);
    if (q->out) json_object_set(q->out, "problems", (json_t *)problems);
}

static void on_lineage(void *ctx, const dm_http_request_t *req, dm_http_response_t *res)
{
    lineage_api_t *api = ctx;
    dm_error_t err = {0};
    if (!api->rt) {
        dm_http_error(res, 503, 50300, "this controller runs nothing: there are no plans to trace");
        return;
    }
    const char *node = dm_http_query(req, "node");
    const char *dir_text = dm_http_query(req, "direction");
    const char *depth_text = dm_http_query(req, "depth");
    int dir = dir_text && *dir_text ? dm_lineage_dir_parse(dir_text) : DM_LINEAGE_BOTH;
    if (dir < 0) {
        dm_http_error(res, 400, 40000,
                      "direction=%s: expected upstream, downstream or both (default both)",
                      dir_text);
        return;
    }
    long depth = -1;
    if (depth_text && *depth_text) {
        char *end;
        errno = 0;
        depth = strtol(depth_text, &end, 10);
        if (errno || *end || depth < 0 || depth > 1000000) {
            dm_http_error(res, 400, 40000, "depth=%s: expected a number of edges, 0 or more",
                          depth_text);
            return;
        }
    }
    query_t q = {node, (dm_lineage_dir_t)dir, (int)depth, NULL, &err};
    if (dm_api_lineage_with(api->store, api->rt, run_query, &q, &err) || !q.out) {
        dm_api_reply_error(res, &err);
        return;
    }
    dm_http_json(res, 200, q.out);
}

dm_err_t dm_api_lineage_register(dm_http_server_t *http, dm_store_t *store, dm_runtime_t *rt)
{
    static lineage_api_t api;
    api = (lineage_api_t){store, rt};
    return dm_http_route(http, "GET", "/api/v1/lineage", on_lineage, &api);
}
