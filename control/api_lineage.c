/* control/api_lineage.c — GET /api/v1/lineage?node=…&direction=…&depth=…
 *
 * Answers {node, direction, depth, nodes, edges, problems} (control/lineage.h):
 * the part of the lineage graph reachable from node. Without node, the whole
 * graph. The graph is computed for each request from the plans the stored
 * pipelines compile to against the registry as it is now, so it follows every
 * apply, delete and schema version without being told; pipelines that cannot
 * compile yet (a source without a schema) are listed under problems.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "control/api.h"
#include "control/lineage.h"
#include "control/spec.h"

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

dm_err_t dm_api_lineage_graph(dm_store_t *store, dm_runtime_t *rt, dm_lineage_t **out,
                              json_t **problems, dm_error_t *err)
{
    *out = NULL;
    *problems = json_array();
    json_t *sources = NULL, *pipelines = NULL;
    dm_err_t rc = dm_store_docs(store, DM_KIND_SOURCE, &sources, err);
    if (!rc) rc = dm_store_docs(store, DM_KIND_PIPELINE, &pipelines, err);
    size_t n = json_object_size(pipelines), k = 0;
    dm_pipeline_plan_t **plans = calloc(n ? n : 1, sizeof(*plans));
    if (!rc && !plans) rc = dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    const char *name;
    json_t *doc;
    json_object_foreach(rc ? NULL : pipelines, name, doc)
    {
        dm_error_t e = {0};
        json_t *j = dm_runtime_plan(rt, doc, NULL, NULL, &e);
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
    return rc;
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
    dm_lineage_t *g = NULL;
    json_t *problems = NULL;
    if (dm_api_lineage_graph(api->store, api->rt, &g, &problems, &err)) {
        json_decref(problems);
        dm_api_reply_error(res, &err);
        return;
    }
    json_t *out = node && *node ? dm_lineage_query(g, node, (dm_lineage_dir_t)dir, (int)depth, &err)
                                : dm_lineage_to_json(g);
    dm_lineage_free(g);
    if (!out) {
        json_decref(problems);
        dm_api_reply_error(res, &err);
        return;
    }
    json_object_set_new(out, "problems", problems);
    dm_http_json(res, 200, out);
}

dm_err_t dm_api_lineage_register(dm_http_server_t *http, dm_store_t *store, dm_runtime_t *rt)
{
    static lineage_api_t api;
    api = (lineage_api_t){store, rt};
    return dm_http_route(http, "GET", "/api/v1/lineage", on_lineage, &api);
}
