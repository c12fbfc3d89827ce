/* control/api_plan.c — what a pipeline compiles to, for people and tools.
 *
 *   GET  /api/v1/pipelines/{name}/plan → {pipeline, plan, explain}: the stored
 *        pipeline's plan against the registry and topics as they are now
 *   POST /api/v1/plan with spec documents (YAML or JSON, as apply takes them)
 *        → {plans: [{pipeline, plan, explain}]}: the plans the pipelines in the
 *        request would run, with the request's sources and sinks in place of the
 *        stored ones; nothing is applied. Used by `datamesh explain -f`.
 *
 * Settings that hold secrets are masked as everywhere in the API.
 */
#include <stdlib.h>
#include <string.h>

#include "control/api.h"
#include "control/spec.h"

typedef struct plan_api {
    dm_store_t *store;
    dm_runtime_t *rt;
} plan_api_t;

static json_t *one_plan(plan_api_t *api, const json_t *doc, const json_t *sources,
                        const json_t *sinks, dm_error_t *err)
{
    char *text = NULL;
    json_t *plan = dm_runtime_plan(api->rt, doc, sources, sinks, &text, err);
    if (!plan) return NULL;
    json_t *out = json_pack("{s:s, s:o, s:s}", "pipeline", dm_spec_name(doc), "plan",
                            dm_api_redacted(plan), "explain", text ? text : "");
    free(text);
    if (!out)
        dm_error_set(err, DM_ERR_INTERNAL, "Pipeline %s: the plan is not valid JSON text",
                     dm_spec_name(doc));
    return out;
}

static void on_get_plan(void *ctx, const dm_http_request_t *req, dm_http_response_t *res)
{
    plan_api_t *api = ctx;
    const char *name = dm_http_param(req, "name");
    json_t *doc = NULL;
    dm_error_t err = {0};
    if (!api->rt) {
        dm_http_error(res, 503, 50300, "this controller runs nothing: there is no plan");
        return;
    }
    if (dm_store_get(api->store, DM_KIND_PIPELINE, name, &doc, &err)) {
        dm_api_reply_error(res, &err);
        return;
    }
    json_t *out = one_plan(api, doc, NULL, NULL, &err);
    json_decref(doc);
    if (!out) {
        dm_api_reply_error(res, &err);
        return;
    }
    dm_http_json(res, 200, out);
}

static void on_post_plan(void *ctx, const dm_http_request_t *req, dm_http_response_t *res)
{
    plan_api_t *api = ctx;
    dm_error_t err = {0};
    dm_spec_doc_t *docs = NULL;
    size_t n = 0;
    if (!api->rt) {
        dm_http_error(res, 503, 50300, "this controller runs nothing: there is no plan");
        return;
    }
    const char *file = dm_http_query(req, "file");
    const char *text = req->body ? (const char *)req->body : "";
    if (dm_spec_load(file && *file ? file : "<request>", text, req->body_len, &docs, &n, &err)) {
        dm_api_reply_error(res, &err);
        return;
    }
    dm_spec_t *specs = calloc(n ? n : 1, sizeof(*specs));
    dm_err_t rc = specs ? DM_OK : dm_error_set(&err, DM_ERR_NOMEM, "out of memory");
    size_t valid = 0;
    for (; valid < n && !rc; valid++)
        rc = dm_spec_validate(&docs[valid], &specs[valid], &err);
    json_t *batch = json_object(), *batch_sinks = json_object(), *plans = json_array();
    for (size_t i = 0; !rc && i < n; i++) {
        const char *kind = json_string_value(json_object_get(specs[i].doc, "kind"));
        if (kind && !strcmp(kind, "Source"))
            json_object_set(batch, dm_spec_name(specs[i].doc), specs[i].doc);
        if (kind && !strcmp(kind, "Sink"))
            json_object_set(batch_sinks, dm_spec_name(specs[i].doc), specs[i].doc);
    }
    for (size_t i = 0; !rc && i < n; i++) {
        const char *kind = json_string_value(json_object_get(specs[i].doc, "kind"));
        if (!kind || strcmp(kind, "Pipeline")) continue;
        json_t *p = one_plan(api, specs[i].doc, batch, batch_sinks, &err);
        if (!p) {
            rc = err.code ? err.code
                          : dm_error_set(&err, DM_ERR_INTERNAL, "Pipeline %s: no plan",
                                         dm_spec_name(specs[i].doc));
            break;
        }
        json_array_append_new(plans, p);
    }
    if (!rc && !json_array_size(plans))
        rc = dm_error_set(&err, DM_ERR_INVALID, "the request holds no Pipeline document");
    if (rc)
        dm_api_reply_error(res, &err);
    else
        dm_http_json(res, 200, json_pack("{s:O}", "plans", plans));
    json_decref(plans);
    json_decref(batch);
    json_decref(batch_sinks);
    for (size_t i = 0; specs && i < valid; i++)
        dm_spec_clear(&specs[i]);
    free(specs);
    dm_spec_docs_free(docs, n);
}

dm_err_t dm_api_plan_register(dm_http_server_t *http, dm_store_t *store, dm_runtime_t *rt)
{
    static plan_api_t api;
    api = (plan_api_t){store, rt};
    dm_err_t rc = dm_http_route(http, "GET", "/api/v1/pipelines/{name}/plan", on_get_plan, &api);
    return rc ? rc : dm_http_route(http, "POST", "/api/v1/plan", on_post_plan, &api);
}
