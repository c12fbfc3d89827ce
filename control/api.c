/* control/api.c — /api/v1: apply, list, get, delete, catalog search, plugins.
 *
 * Every answer is JSON; errors are {"error_code": N, "message": "..."}. Secrets
 * never leave: DSNs are redacted and any password/token/secret value is "***".
 */
#include "control/api.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "control/api_alerts.h"
#include "control/auth.h"
#include "connectors/source.h"
#include "connectors/unit.h"
#include "control/plugins.h"
#include "control/reconcile.h"
#include "control/runtime.h"
#include "control/yaml.h"
#include "core/redact.h"

typedef struct api {
    dm_store_t *store;
    dm_runtime_t *rt;
} api_t;

int dm_api_status(dm_err_t code)
{
    switch (code) {
    case DM_OK: return 200;
    case DM_ERR_NOT_FOUND: return 404;
    case DM_ERR_EXISTS: return 409;
    case DM_ERR_NOMEM:
    case DM_ERR_IO:
    case DM_ERR_INTERNAL:
    case DM_ERR_CORRUPT: return 500;
    case DM_ERR_TIMEOUT:
    case DM_ERR_AGAIN: return 503;
    default: return code <= DM_ERR_CONFIG && code > DM_ERR_SCHEMA ? 422 : 400;
    }
}

void dm_api_reply_error(dm_http_response_t *res, const dm_error_t *err)
{
    int status = dm_api_status(err->code);
    dm_http_error(res, status, status * 100 + (-(int)err->code % 100), "%s", err->message);
}

/* Replaces secrets in place, recursively. */
static void redact(json_t *j, int depth)
{
    if (depth > 64) return;
    if (json_is_array(j)) {
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v) redact(v, depth + 1);
        return;
    }
    if (!json_is_object(j)) return;
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v)
    {
        if (json_is_string(v) &&
            (strcasestr(k, "password") || strcasestr(k, "token") || strcasestr(k, "secret") ||
             strcasestr(k, "api_key")) &&
            !strstr(k, "_env") && !strstr(k, "_file")) {
            json_object_set_new(j, k, json_string("***"));
        } else if (json_is_string(v) && (!strcasecmp(k, "dsn") || !strcasecmp(k, "url"))) {
            char red[2048];
            dm_redact_dsn(json_string_value(v), red, sizeof(red));
            json_object_set_new(j, k, json_string(red));
        } else {
            redact(v, depth + 1);
        }
    }
}

/* A deep copy of j with its secrets masked; j is released. Documents from the
 * store share their nested values with its cache, so they are never changed
 * in place. */
json_t *dm_api_redacted(json_t *j)
{
    json_t *copy = json_deep_copy(j);
    json_decref(j);
    redact(copy, 0);
    return copy;
}

static int kind_of(const dm_http_request_t *req, dm_http_response_t *res)
{
    const char *plural = dm_http_param(req, "kind");
    int k = plural ? dm_kind_parse(plural) : -1;
    if (k < 0)
        dm_http_error(res, 404, 40400,
                      "unknown kind '%s'; kinds: sources, pipelines, processors, sinks",
                      plural ? plural : "");
    return k;
}

static bool query_true(const dm_http_request_t *req, const char *name)
{
    const char *v = dm_http_query(req, name);
    return v && (!strcmp(v, "true") || !strcmp(v, "1") || !*v);
}

/* A dry run of Sources whose schema changes: what each pipeline reading
 * them will do (docs/schema-evolution.md), as "impact" steps of the plan. */
static void add_schema_impact(dm_runtime_t *rt, const dm_spec_t *specs, size_t n, json_t *steps)
{
    for (size_t i = 0; i < n; i++) {
        const json_t *schema = json_object_get(json_object_get(specs[i].doc, "spec"), "schema");
        if (specs[i].kind != DM_KIND_SOURCE || !json_is_object(schema)) continue;
        char *text = json_dumps(schema, JSON_COMPACT);
        dm_error_t e = {0};
        json_t *impact = text ? dm_runtime_schema_plan(rt, specs[i].name, text, &e) : NULL;
        free(text);
        if (!impact || !json_array_size(json_object_get(impact, "changes"))) {
            json_decref(impact); /* a new source, or its schema as it is */
            continue;
        }
        size_t k;
        json_t *p;
        json_array_foreach(json_object_get(impact, "pipelines"), k, p)
        {
            char detail[1500];
            size_t o = (size_t)snprintf(detail, sizeof(detail), "schema_change: %s: %s",
                                        json_string_value(json_object_get(p, "policy")),
                                        json_string_value(json_object_get(p, "action")));
            size_t j;
            json_t *x;
            json_array_foreach(json_object_get(p, "effects"), j, x) if (o < sizeof(detail)) o +=
                (size_t)snprintf(detail + o, sizeof(detail) - o, "; %s", json_string_value(x));
            const char *via = json_string_value(json_object_get(p, "via"));
            if (via && o < sizeof(detail))
                snprintf(detail + o, sizeof(detail) - o, "; through derived source %s", via);
            json_array_append_new(
                steps,
                json_pack("{s:s, s:s, s:s, s:s}", "action", "impact", "kind", "Pipeline", "name",
                          json_string_value(json_object_get(p, "pipeline")), "detail", detail));
        }
        json_decref(impact);
    }
}

/* POST /api/v1/apply[?dry_run=true] with YAML or JSON documents. */
static void on_apply(void *ctx, const dm_http_request_t *req, dm_http_response_t *res)
{
    api_t *api = ctx;
    dm_store_t *store = api->store;
    dm_error_t err = {0};
    dm_spec_doc_t *docs = NULL;
    size_t n = 0;
    const char *file = dm_http_query(req, "file");
    const char *text = req->body ? (const char *)req->body : "";
    if (dm_spec_load(file && *file ? file : "<request>", text, req->body_len, &docs, &n, &err)) {
        dm_api_reply_error(res, &err);
        return;
    }
    if (n == 0) {
        dm_spec_docs_free(docs, n);
        dm_http_error(res, 400, 40000, "the request holds no spec document");
        return;
    }
    dm_spec_t *specs = calloc(n, sizeof(*specs));
    dm_err_t rc = specs ? DM_OK : DM_ERR_NOMEM;
    for (size_t i = 0; i < n && !rc; i++)
        rc = dm_spec_validate(&docs[i], &specs[i], &err);
    if (!rc && api->rt) {
        const json_t **docs_j = calloc(n, sizeof(*docs_j));
        for (size_t i = 0; docs_j && i < n; i++)
            docs_j[i] = specs[i].doc;
        rc = docs_j ? dm_runtime_check(api->rt, docs_j, n, &err) : DM_ERR_NOMEM;
        free(docs_j);
    }
    /* What the audit log says this request did (an editor's guard said it already). */
    dm_principal_t *who = req->principal;
    bool dry = query_true(req, "dry_run");
    if (who && !who->detail[0] && !rc) {
        size_t used = (size_t)snprintf(who->detail, sizeof(who->detail), "%s",
                                       dry ? "dry-run apply" : "apply");
        for (size_t i = 0; i < n && used < sizeof(who->detail); i++)
            used += (size_t)snprintf(who->detail + used, sizeof(who->detail) - used, "%s %s %s",
                                     i ? "," : "", dm_kind_name(specs[i].kind), specs[i].name);
    }
    json_t *plan = NULL;
    if (!rc) rc = dm_reconcile_apply(store, specs, n, dry, &plan, &err);
    if (!rc && !dry && api->rt) rc = dm_runtime_sync(api->rt, &err);
    if (!rc && dry && api->rt && json_is_array(plan)) add_schema_impact(api->rt, specs, n, plan);
    if (rc) {
        if (!err.message[0]) dm_error_set(&err, rc, "apply failed");
        dm_api_reply_error(res, &err);
    } else {
        dm_http_json(res, 200, json_pack("{s:b, s:o}", "dry_run", dry, "plan", plan));
    }
    for (size_t i = 0; specs && i < n; i++)
        dm_spec_clear(&specs[i]);
    free(specs);
    dm_spec_docs_free(docs, n);
}

/* ?connector=C&owner=O&name=TEXT (in the name) keep the objects that match; ?offset=N&limit=M then
 * keep one page of them (the UI pages a big catalog this way); *total is the
 * count before paging. Takes items, returns the page. */
static json_t *filter_page(const dm_http_request_t *req, json_t *items, size_t *total)
{
    const char *connector = dm_http_query(req, "connector"), *owner = dm_http_query(req, "owner");
    const char *name = dm_http_query(req, "name");
    const char *off_s = dm_http_query(req, "offset"), *lim_s = dm_http_query(req, "limit");
    long off = off_s ? strtol(off_s, NULL, 10) : 0, lim = lim_s ? strtol(lim_s, NULL, 10) : -1;
    json_t *kept = json_array();
    size_t i;
    json_t *s;
    json_array_foreach(items, i, s)
    {
        const char *c = json_string_value(json_object_get(json_object_get(s, "spec"), "connector"));
        const char *o = json_string_value(json_object_get(json_object_get(s, "metadata"), "owner"));
        if (connector && *connector && (!c || strcmp(c, connector))) continue;
        if (owner && *owner && (!o || strcmp(o, owner))) continue;
        const char *n = dm_spec_name(s);
        if (name && *name && (!n || !strcasestr(n, name))) continue;
        json_array_append(kept, s);
    }
    json_decref(items);
    *total = json_array_size(kept);
    if (off <= 0 && lim < 0) return kept;
    json_t *page = json_array();
    for (size_t k = off > 0 ? (size_t)off : 0;
         k < json_array_size(kept) && (lim < 0 || json_array_size(page) < (size_t)lim); k++)
        json_array_append(page, json_array_get(kept, k));
    json_decref(kept);
    return page;
}

/* The whole catalog, brought up to date once per change of the store: the
 * UI pages and searches it often, and building it whole for 50,000 sources
 * costs seconds, so only the entries a change touched are built again
 * (dm_catalog_update). The array and its entries are shared by the requests
 * and never changed. One lock: a request that finds the catalog stale waits
 * for the one bringing it up to date rather than doing the same work. */
static pthread_mutex_t catalog_mu = PTHREAD_MUTEX_INITIALIZER;
static dm_catalog_t *catalog_kept;
static json_t *catalog_cached;
static const dm_store_t *catalog_store;
static uint64_t catalog_changes;

/* The current catalog (new reference), or NULL with err set. */
static json_t *catalog_now(dm_store_t *store, dm_error_t *err)
{
    pthread_mutex_lock(&catalog_mu);
    uint64_t changes = dm_store_changes(store);
    json_t *all = NULL;
    if (catalog_cached && catalog_store == store && catalog_changes == changes) {
        all = json_incref(catalog_cached);
    } else {
        if (catalog_store != store) {
            dm_catalog_free(catalog_kept);
            catalog_kept = NULL;
        }
        if (!catalog_kept && !(catalog_kept = dm_catalog_new()))
            dm_error_set(err, DM_ERR_NOMEM, "out of memory");
        else if (!dm_catalog_update(catalog_kept, store, &all, NULL, err)) {
            json_decref(catalog_cached);
            catalog_cached = json_incref(all);
            catalog_store = store;
            catalog_changes = changes; /* read before: a change meanwhile updates next time */
        }
    }
    pthread_mutex_unlock(&catalog_mu);
    return all;
}

void dm_api_catalog_forget(void)
{
    pthread_mutex_lock(&catalog_mu);
    json_decref(catalog_cached);
    catalog_cached = NULL;
    dm_catalog_free(catalog_kept);
    catalog_kept = NULL;
    catalog_store = NULL;
    pthread_mutex_unlock(&catalog_mu);
}

/* GET /api/v1/{kind} */
static void on_list(void *ctx, const dm_http_request_t *req, dm_http_response_t *res)
{
    int k = kind_of(req, res);
    if (k < 0) return;
    dm_error_t err = {0};
    json_t *items;
    api_t *api = ctx;
    dm_err_t rc = DM_OK;
    if (k == DM_KIND_SOURCE)
        rc = (items = catalog_now(api->store, &err)) ? DM_OK : err.code;
    else
        rc = dm_store_list(api->store, (dm_kind_t)k, &items, &err);
    if (rc) {
        dm_api_reply_error(res, &err);
        return;
    }
    size_t total = 0;
    items = dm_api_redacted(filter_page(req, items, &total));
    dm_http_json(res, 200, json_pack("{s:o, s:I}", "items", items, "total", (json_int_t)total));
}

/* GET /api/v1/{kind}/{name} */
static void on_get(void *ctx, const dm_http_request_t *req, dm_http_response_t *res)
{
    int k = kind_of(req, res);
    if (k < 0) return;
    const char *name = dm_http_param(req, "name");
    dm_error_t err = {0};
    json_t *obj = NULL;
    if (k == DM_KIND_SOURCE) {
        /* Sources come from the catalog: declared or derived. */
        dm_catalog_source(((api_t *)ctx)->store, name, &obj, &err);
        api_t *api = ctx;
        if (obj && api->rt) {
            /* Its schema history, from the registry (subject NAME-value). */
            char subject[300];
            snprintf(subject, sizeof(subject), "%s-value", name);
            json_object_set_new(obj, "schemas", dm_runtime_schema_versions(api->rt, subject));
        }

    } else {
        dm_store_get(((api_t *)ctx)->store, (dm_kind_t)k, name, &obj, &err);
    }
    if (!obj) {
        dm_api_reply_error(res, &err);
        return;
    }
    obj = dm_api_redacted(obj);
    dm_http_json(res, 200, obj);
}

/* DELETE /api/v1/{kind}/{name} */
static void on_delete(void *ctx, const dm_http_request_t *req, dm_http_response_t *res)
{
    int k = kind_of(req, res);
    if (k < 0) return;
    const char *name = dm_http_param(req, "name");
    dm_error_t err = {0};
    api_t *api = ctx;
    if (dm_reconcile_delete(api->store, (dm_kind_t)k, name, &err) ||
        (api->rt && dm_runtime_sync(api->rt, &err))) {
        dm_api_reply_error(res, &err);
        return;
    }
    dm_http_json(
        res, 200,
        json_pack("{s:s, s:s, s:s}", "action", "delete", "kind", dm_kind_name(k), "name", name));
}

/* GET /api/v1/plugins — every connector, sink and processor with its settings
 * (control/plugins.h; what `datamesh plugins -o json` prints). */
static void on_plugins(void *ctx, const dm_http_request_t *req, dm_http_response_t *res)
{
    (void)ctx, (void)req;
    dm_http_json(res, 200, dm_plugins_json());
}

/* GET /api/v1/catalog?q=TEXT — search sources. */
static void on_catalog(void *ctx, const dm_http_request_t *req, dm_http_response_t *res)
{
    const char *q = dm_http_query(req, "q");
    dm_error_t err = {0};
    json_t *all = catalog_now(((api_t *)ctx)->store, &err);
    if (!all) {
        dm_api_reply_error(res, &err);
        return;
    }
    json_t *items = q && *q ? dm_catalog_match(all, q) : json_incref(all);
    json_decref(all);
    size_t total = 0;
    items = dm_api_redacted(filter_page(req, items, &total));
    dm_http_json(res, 200, json_pack("{s:o, s:I}", "items", items, "total", (json_int_t)total));
}

/* Tasks that run in `datamesh worker` processes show in their pipeline's status as the
 * workers report them; the overall state follows theirs. */
static void merge_worker_units(json_t *st, const char *pipeline)
{
    json_t *units = dm_api_workers_units(pipeline);
    if (json_array_size(units)) {
        json_t *all = json_object_get(st, "units");
        json_array_extend(all, units);
        int failed = 0, retrying = 0, running = 0;
        size_t i;
        json_t *u;
        json_array_foreach(all, i, u)
        {
            const char *s = json_string_value(json_object_get(u, "state"));
            failed += s && !strcmp(s, dm_unit_state_name(DM_UNIT_FAILED));
            retrying += s && !strcmp(s, dm_unit_state_name(DM_UNIT_RETRYING));
            running += s && !strcmp(s, dm_unit_state_name(DM_UNIT_RUNNING));
        }
        json_object_set_new(st, "state",
                            json_string(failed     ? "failed"
                                        : retrying ? "degraded"
                                        : running  ? "running"
                                                   : "ready"));
    }
    json_decref(units);
}

/* A source without running units says why (issue 26: no "not ready" without
 * a reason): a derived one follows the pipeline that fills it (its state is
 * that pipeline's), one whose connector takes events through the API waits
 * for them, one whose connector finished is done. */
static void source_reason(api_t *api, const char *name, json_t *st)
{
    const char *state = json_string_value(json_object_get(st, "state"));
    if (json_object_get(st, "reason") || !state || !strcmp(state, "running") ||
        !strcmp(state, "failed") || !strcmp(state, "degraded"))
        return;
    json_t *doc = NULL;
    if (dm_catalog_source(api->store, name, &doc, NULL) || !doc) {
        json_object_set_new(st, "reason", json_string("no such source in the catalog"));
        return;
    }
    const json_t *spec = json_object_get(doc, "spec");
    const char *connector = json_string_value(json_object_get(spec, "connector"));
    const dm_source_ops_t *ops = connector ? dm_source_ops_find(connector) : NULL;
    const char *pipeline = json_string_value(json_object_get(spec, "derived_from"));
    char why[600];
    why[0] = '\0';
    if (pipeline && api->rt) {
        json_t *ps = dm_runtime_status(api->rt, "Pipeline", pipeline);
        merge_worker_units(ps, pipeline);
        const char *pstate = json_string_value(json_object_get(ps, "state"));
        const char *preason = json_string_value(json_object_get(ps, "reason"));
        json_object_set_new(st, "state", json_string(pstate ? pstate : "pending"));
        snprintf(why, sizeof(why), "filled by pipeline %s, which is %s%s%s", pipeline,
                 pstate ? pstate : "pending", preason ? ": " : "", preason ? preason : "");
        json_decref(ps);
    } else if (ops && ops->push) {
        snprintf(why, sizeof(why), "takes events at POST /api/v1/sources/%s/events (%s connector)",
                 name, connector);
    } else if (json_array_size(json_object_get(st, "units"))) {
        snprintf(why, sizeof(why), "its %s connector read everything it had (done)",
                 connector ? connector : "");
    } else {
        snprintf(why, sizeof(why), "its %s connector has not started", connector ? connector : "");
    }
    json_object_set_new(st, "reason", json_string(why));
    json_decref(doc);
}

/* GET /api/v1/{kind}/{name}/status */
static void on_status(void *ctx, const dm_http_request_t *req, dm_http_response_t *res)
{
    api_t *api = ctx;
    int k = kind_of(req, res);
    if (k < 0) return;
    const char *name = dm_http_param(req, "name");
    json_t *obj;
    dm_error_t err = {0};
    if (k != DM_KIND_SOURCE && dm_store_get(api->store, (dm_kind_t)k, name, &obj, &err)) {
        dm_api_reply_error(res, &err);
        return;
    }
    if (k != DM_KIND_SOURCE) json_decref(obj);
    json_t *st = api->rt ? dm_runtime_status(api->rt, dm_kind_name((dm_kind_t)k), name)
                         : json_pack("{s:s, s:[]}", "state", "pending", "units");
    if (k == DM_KIND_PIPELINE) merge_worker_units(st, name);
    json_object_set_new(st, "alerts", dm_api_alerts_of(dm_kind_name((dm_kind_t)k), name));
    if (k == DM_KIND_SOURCE) source_reason(api, name, st);
    json_object_set_new(st, "kind", json_string(dm_kind_name((dm_kind_t)k)));
    json_object_set_new(st, "name", json_string(name));
    dm_http_json(res, 200, st);
}

/* GET /api/v1/schema-changes[?pipeline=NAME]: what pipelines did when a
 * source they read changed its schema (docs/schema-evolution.md). */
static void on_schema_changes(void *ctx, const dm_http_request_t *req, dm_http_response_t *res)
{
    api_t *api = ctx;
    const char *p = dm_http_query(req, "pipeline");
    dm_http_json(res, 200, api->rt ? dm_runtime_schema_changes(api->rt, p) : json_array());
}

/* POST /api/v1/sources/{name}/schema-plan with a new Avro value schema: what
 * the change would do (docs/schema-evolution.md); changes nothing. */
static void on_schema_plan(void *ctx, const dm_http_request_t *req, dm_http_response_t *res)
{
    api_t *api = ctx;
    dm_error_t err = {0};
    char *text = strndup(req->body ? (const char *)req->body : "", req->body_len);
    json_t *out = text && api->rt
                      ? dm_runtime_schema_plan(api->rt, dm_http_param(req, "name"), text, &err)
                      : NULL;
    free(text);
    if (!out) {
        if (!err.code) dm_error_set(&err, DM_ERR_UNSUPPORTED, "no runtime");
        dm_api_reply_error(res, &err);
        return;
    }
    dm_http_json(res, 200, out);
}

dm_err_t dm_api_register(dm_http_server_t *http, dm_store_t *store, dm_runtime_t *rt)
{
    static api_t api;
    api = (api_t){store, rt};
    dm_err_t rc = dm_api_data_register(http, store, rt);
    rc = rc ? rc : dm_api_plan_register(http, store, rt);
    rc = rc ? rc : dm_api_lineage_register(http, store, rt);
    rc = rc ? rc : dm_api_sql_register(http, store, rt);
    rc = rc ? rc : dm_http_route(http, "GET", "/api/v1/schema-changes", on_schema_changes, &api);
    rc = rc ? rc
            : dm_http_route(http, "POST", "/api/v1/sources/{name}/schema-plan", on_schema_plan,
                            &api);
    rc = rc ? rc : dm_http_route(http, "POST", "/api/v1/apply", on_apply, &api);
    rc = rc ? rc : dm_http_route(http, "GET", "/api/v1/catalog", on_catalog, &api);
    rc = rc ? rc : dm_http_route(http, "GET", "/api/v1/plugins", on_plugins, &api);
    rc = rc ? rc : dm_http_route(http, "GET", "/api/v1/{kind}", on_list, &api);
    rc = rc ? rc : dm_http_route(http, "GET", "/api/v1/{kind}/{name}", on_get, &api);
    rc = rc ? rc : dm_http_route(http, "GET", "/api/v1/{kind}/{name}/status", on_status, &api);
    rc = rc ? rc : dm_http_route(http, "DELETE", "/api/v1/{kind}/{name}", on_delete, &api);
    return rc;
}
