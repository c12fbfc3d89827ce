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
#include "core/log.h"

#define CACHE_MAX_AGE_MS 600000 /* a safety net: the counters say when anything changed */

typedef struct lineage_api {
    dm_store_t *store;
    dm_runtime_t *rt;
} lineage_api_t;

/* The registry as building reads it: the latest ids read once (one query
 * for thousands of sources), the runtime for the rest. */
typedef struct env_ctx {
    dm_runtime_t *rt;
    const json_t *subjects; /* subject → latest id, or NULL */
} env_ctx_t;

static const dm_avro_schema_t *env_schema(void *ctx, int64_t id, dm_error_t *err)
{
    return dm_runtime_schema(((env_ctx_t *)ctx)->rt, id, err);
}

static const dm_avro_schema_t *env_subject_schema(void *ctx, const char *subject)
{
    env_ctx_t *c = ctx;
    int64_t id = 0;
    if (c->subjects)
        id = json_integer_value(json_object_get(c->subjects, subject));
    else if (dm_runtime_subject_id(c->rt, subject, &id, NULL))
        return NULL;
    return id ? dm_runtime_schema(c->rt, id, NULL) : NULL;
}

/* ---- each pipeline's part of the graph, kept ---------------------------------------
 * A fragment (control/lineage.h) per pipeline with its key: the pipeline's
 * generation and what its compile read (dm_runtime_plan_deps: the subjects'
 * latest ids, its sources', sinks' and processors' generations). Building
 * the graph replays a pipeline's fragment while its key holds and the graph
 * it read is the same, else compiles it and records a new one. Fragments live
 * here and in the store's lineage table (read once, after a restart). */

typedef struct kept {
    int64_t generation;
    json_t *deps;
    void *frag;
    size_t len;
    bool dirty; /* not in the store yet */
} kept_t;

static void kept_free(kept_t *k)
{
    if (!k) return;
    json_decref(k->deps);
    free(k->frag);
    free(k);
}

static kept_t *kept_get(json_t *kept, const char *name)
{
    return (kept_t *)(intptr_t)json_integer_value(json_object_get(kept, name));
}

static void kept_set(json_t *kept, const char *name, kept_t *k)
{
    kept_free(kept_get(kept, name));
    if (!k)
        json_object_del(kept, name);
    else if (json_object_set_new(kept, name, json_integer((json_int_t)(intptr_t)k)))
        kept_free(k);
}

/* The store's text of a key: "GENERATION DEPS-JSON". */
static char *key_text(const kept_t *k)
{
    char *deps = json_dumps(k->deps, JSON_COMPACT | JSON_SORT_KEYS);
    size_t n = deps ? strlen(deps) + 32 : 0;
    char *out = deps ? malloc(n) : NULL;
    if (out) snprintf(out, n, "%lld %s", (long long)k->generation, deps);
    free(deps);
    return out;
}

static void on_stored(void *ctx, const char *pipeline, const char *key, const void *frag,
                      size_t len)
{
    char *end;
    long long gen = strtoll(key, &end, 10);
    kept_t *k = calloc(1, sizeof(*k));
    if (!k) return;
    k->generation = gen;
    k->deps = *end == ' ' ? json_loads(end + 1, 0, NULL) : NULL;
    k->frag = len ? malloc(len) : NULL;
    k->len = len;
    if (!k->deps || !k->frag) {
        kept_free(k); /* unreadable: computed again */
        return;
    }
    memcpy(k->frag, frag, len);
    kept_set(ctx, pipeline, k);
}

static int64_t generation_of(const json_t *doc)
{
    return json_integer_value(json_object_get(json_object_get(doc, "status"), "generation"));
}

/* Writes the fragments not in the store yet, in one transaction. A failure
 * only means they are computed again after a restart. */
static void kept_store(dm_store_t *store, json_t *kept)
{
    dm_error_t err = {0};
    if (dm_store_begin(store, &err)) return;
    const char *name;
    json_t *v;
    dm_err_t rc = DM_OK;
    json_object_foreach(kept, name, v)
    {
        kept_t *k = (kept_t *)(intptr_t)json_integer_value(v);
        if (!k->dirty || rc) continue;
        char *key = key_text(k);
        rc = key ? dm_store_lineage_put(store, name, key, k->frag, k->len, &err) : DM_ERR_NOMEM;
        free(key);
    }
    if (!rc && !dm_store_commit(store, &err)) {
        json_object_foreach(kept, name, v)((kept_t *)(intptr_t)json_integer_value(v))->dirty =
            false;
    } else if (rc) {
        dm_store_rollback(store);
    }
}

typedef struct build_stats {
    size_t replayed, compiled;
    uint64_t load_ns, sources_ns, check_ns, replay_ns, compile_ns,
        store_ns; /* where the time went */
} build_stats_t;

/* Builds the graph of what the store holds now, from the kept fragments
 * where they hold. */
static dm_err_t build_once(dm_store_t *store, dm_runtime_t *rt, json_t *kept, dm_lineage_t **out,
                           json_t **problems, build_stats_t *stats, dm_error_t *err)
{
    *out = NULL;
    *problems = json_array();
    json_t *sources = NULL, *pipelines = NULL, *sinks = NULL, *processors = NULL;
    dm_err_t rc = dm_store_docs(store, DM_KIND_SOURCE, &sources, err);
    if (!rc) rc = dm_store_docs(store, DM_KIND_PIPELINE, &pipelines, err);
    if (!rc) rc = dm_store_docs(store, DM_KIND_SINK, &sinks, err);
    if (!rc) rc = dm_store_docs(store, DM_KIND_PROCESSOR, &processors, err);
    dm_lineage_t *g = NULL;
    dm_runtime_plan_now_t now = {.sources = sources, .sinks = sinks, .processors = processors};
    uint64_t t = dm_now_ns();
    /* without them every pipeline is compiled, as before fragments were kept */
    bool have_now = !rc && !dm_runtime_plan_now(rt, &now, NULL);
    stats->check_ns += dm_now_ns() - t;
    env_ctx_t ectx = {rt, have_now ? now.subjects : NULL};
    dm_lineage_env_t env = {env_schema, env_subject_schema, &ectx};
    t = dm_now_ns();
    if (!rc) rc = dm_lineage_new(sources, &env, &g, err);
    stats->sources_ns = dm_now_ns() - t;
    const char *name;
    json_t *doc;
    json_object_foreach(rc ? NULL : pipelines, name, doc)
    {
        kept_t *k = kept_get(kept, name);
        uint64_t t0 = dm_now_ns();
        bool holds = have_now && k && k->generation == generation_of(doc) &&
                     dm_runtime_plan_deps_hold(k->deps, &now);
        uint64_t t1 = dm_now_ns();
        stats->check_ns += t1 - t0;
        if (holds) {
            int r = dm_lineage_replay(g, k->frag, k->len);
            stats->replay_ns += dm_now_ns() - t1;
            if (r > 0) {
                stats->replayed++;
                continue;
            }
            if (r < 0) {
                /* half replayed: this graph is lost; the next one compiles everything */
                dm_log(DM_LOG_WARN, "lineage",
                       "pipeline=%s: its kept fragment failed half way; computing the whole "
                       "graph again",
                       name);
                rc = DM_ERR_AGAIN;
                break;
            }
        }
        stats->compiled++;
        t1 = dm_now_ns();
        dm_error_t e = {0};
        json_t *deps = NULL;
        dm_pipeline_plan_t *plan = NULL;
        json_t *j = dm_runtime_plan_deps(rt, doc, sources, sinks, &deps, &e);
        if (!j || dm_plan_from_json(j, &plan, &e) != DM_OK) {
            /* not compiled (yet): a problem, and nothing kept */
            json_array_append_new(*problems,
                                  json_pack("{s:s, s:s}", "pipeline", name, "error", e.message));
            kept_set(kept, name, NULL);
            json_decref(deps);
            json_decref(j);
            continue;
        }
        json_decref(j);
        kept_t *nk = calloc(1, sizeof(*nk));
        if (!nk) rc = dm_error_set(err, DM_ERR_NOMEM, "out of memory");
        if (!rc) rc = dm_lineage_add(g, &env, plan, &nk->frag, &nk->len, err);
        dm_plan_free(plan);
        if (rc) {
            json_decref(deps);
            kept_free(nk);
            break;
        }
        nk->generation = generation_of(doc);
        nk->deps = deps;
        nk->dirty = true;
        kept_set(kept, name, nk);
        stats->compile_ns += dm_now_ns() - t1;
    }
    if (!rc) rc = dm_lineage_finish(g, err);
    if (!rc) json_array_extend(*problems, (json_t *)dm_lineage_problems(g));
    if (rc) {
        dm_lineage_free(g);
        g = NULL;
    }
    /* pipelines deleted since (their rows went with them) */
    void *tmp;
    json_object_foreach_safe(rc ? NULL : kept, tmp, name, doc)
    {
        if (!json_object_get(pipelines, name)) kept_set(kept, name, NULL);
    }
    if (have_now) dm_runtime_plan_now_clear(&now);
    uint64_t t2 = dm_now_ns();
    if (!rc) kept_store(store, kept);
    stats->store_ns = dm_now_ns() - t2;
    *out = g;
    json_decref(sources);
    json_decref(pipelines);
    json_decref(sinks);
    json_decref(processors);
    return rc;
}

/* build_once; when a fragment fails half way (only out of memory can do
 * that), once more with nothing kept. */
static dm_err_t build_graph(dm_store_t *store, dm_runtime_t *rt, json_t *kept, dm_lineage_t **out,
                            json_t **problems, build_stats_t *stats, dm_error_t *err)
{
    dm_err_t rc = build_once(store, rt, kept, out, problems, stats, err);
    if (rc != DM_ERR_AGAIN) return rc;
    json_decref(*problems);
    const char *name;
    json_t *v;
    json_object_foreach(kept, name, v) kept_free((kept_t *)(intptr_t)json_integer_value(v));
    json_object_clear(kept);
    *stats = (build_stats_t){0};
    rc = build_once(store, rt, kept, out, problems, stats, err);
    return rc == DM_ERR_AGAIN ? dm_error_set(err, DM_ERR_NOMEM, "lineage: out of memory") : rc;
}

/* What the graph is computed from, in 64 bits (see the top of the file). */
static uint64_t fingerprint(dm_store_t *store, dm_runtime_t *rt)
{
    uint64_t h = 0x243f6a8885a308d3ull;
    /* the latest ids in one query: one per source costs seconds at 30,000 */
    json_t *ids = NULL;
    if (dm_runtime_latest_ids(rt, &ids, NULL)) return 0;
    const dm_kind_t kinds[] = {DM_KIND_SOURCE, DM_KIND_PIPELINE, DM_KIND_SINK};
    for (int k = 0; k < 3; k++) {
        json_t *docs = NULL;
        if (dm_store_docs(store, kinds[k], &docs, NULL)) {
            json_decref(ids);
            return 0;
        }
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
                v[2] = json_integer_value(json_object_get(ids, subject));
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
                id = json_integer_value(json_object_get(ids, subject));
                h = dm_hash64_seed(&id, sizeof(id), h);
            }
        }
        json_decref(docs);
    }
    json_decref(ids);
    return h ? h : 1;
}

static struct {
    pthread_mutex_t mu;
    dm_lineage_t *g;
    json_t *problems;
    uint64_t fp;
    uint64_t store_changes, registry_changes; /* the counters when the graph was checked */
    int64_t at_ms;
    json_t *kept;       /* pipeline name → kept_t (see above); NULL until read from the store */
    build_stats_t last; /* how the last graph was built */
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
        build_stats_t stats = {0};
        uint64_t t0 = dm_now_ns();
        if (!cache.kept) {
            cache.kept = json_object();
            dm_error_t e = {0};
            if (cache.kept) dm_store_lineage_each(store, on_stored, cache.kept, &e);
            stats.load_ns = dm_now_ns() - t0;
        }
        rc = cache.kept ? build_graph(store, rt, cache.kept, &g, &problems, &stats, err)
                        : dm_error_set(err, DM_ERR_NOMEM, "out of memory");
        cache.last = stats;
        if (!rc)
            dm_log(DM_LOG_INFO, "lineage",
                   "graph of %zu pipelines: %zu replayed from kept fragments, %zu compiled, "
                   "in %.1f ms (loading %.1f, sources %.1f, checking keys %.1f, replaying %.1f, "
                   "compiling %.1f, "
                   "storing %.1f)",
                   stats.replayed + stats.compiled, stats.replayed, stats.compiled,
                   (double)(dm_now_ns() - t0) / 1e6, (double)stats.load_ns / 1e6,
                   (double)stats.sources_ns / 1e6, (double)stats.check_ns / 1e6,
                   (double)stats.replay_ns / 1e6, (double)stats.compile_ns / 1e6,
                   (double)stats.store_ns / 1e6);
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
    const char *name;
    json_t *v;
    json_object_foreach(cache.kept, name, v) kept_free((kept_t *)(intptr_t)json_integer_value(v));
    json_decref(cache.kept);
    cache.kept = NULL;
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
