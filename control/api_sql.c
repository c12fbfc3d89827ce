/* control/api_sql.c — POST /api/v1/sql: a script of SQL statements carried
 * out in order (docs/sql.md).
 *
 *   body: the script as text, or {"sql": "…"}
 *   → {results: [{statement, kind, …}]}:
 *      CREATE SOURCE n [WITH (owner = '…', description = '…')] AS SELECT …
 *          applies Pipeline n (spec.sql, to: [{source: n}]) as POST /api/v1/apply does
 *      DROP SOURCE n       deletes Pipeline n
 *      EXPLAIN SELECT …    {plan, explain}: what it compiles to (nothing applied)
 *      SHOW SOURCES        {sources}: the catalog
 *      DESCRIBE n          {source}: its catalog entry (schema, owner, producers, …)
 * A bare SELECT is a push query, whose rows stream: `datamesh sql` runs it.
 * The script is parsed whole first (errors at line:col, nothing done); a
 * statement that fails stops the script, and the error says which one and
 * that the ones before it were carried out. Access (control/auth.c): any
 * token reads; CREATE and DROP need an editor of the owner team or an admin.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/api.h"
#include "control/auth.h"
#include "control/reconcile.h"
#include "control/spec.h"
#include "control/yaml.h"
#include "sql/sql.h"

typedef struct sql_api {
    dm_store_t *store;
    dm_runtime_t *rt;
} sql_api_t;

/* The document with the query where it stands in the script (errors at the
 * script's line:col). */
static json_t *doc_in_place(const dm_sql_stmt_t *st, const char *team)
{
    json_t *doc = dm_api_sql_pipeline_doc(st, team);
    char *q = dm_sql_stmt_query_in_place(st);
    if (q) json_object_set_new(json_object_get(doc, "spec"), "sql", json_string(q));
    free(q);
    return doc;
}

json_t *dm_api_sql_pipeline_doc(const dm_sql_stmt_t *st, const char *default_owner)
{
    const char *owner = st->owner ? st->owner : default_owner;
    json_t *meta = json_pack("{s:s, s:s}", "name", st->name ? st->name : "sql-explain", "owner",
                             owner ? owner : "sql");
    if (st->description) json_object_set_new(meta, "description", json_string(st->description));
    return json_pack("{s:s, s:o, s:{s:s, s:[{s:s}]}}", "kind", "Pipeline", "metadata", meta, "spec",
                     "sql", st->query, "to", "source", st->name ? st->name : "sql-explain");
}

/* Applies one Pipeline document the way POST /api/v1/apply does. */
static dm_err_t apply_doc(sql_api_t *api, const json_t *doc, dm_error_t *err)
{
    char *text = json_dumps(doc, JSON_COMPACT);
    if (!text) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    dm_spec_doc_t *docs = NULL;
    size_t n = 0;
    dm_spec_t spec = {0};
    dm_err_t rc = dm_spec_load("<sql>", text, strlen(text), &docs, &n, err);
    free(text);
    if (!rc && n != 1) rc = dm_error_set(err, DM_ERR_INTERNAL, "one document expected");
    if (!rc) rc = dm_spec_validate(&docs[0], &spec, err);
    if (!rc && api->rt) {
        const json_t *one = spec.doc;
        rc = dm_runtime_check(api->rt, &one, 1, err);
    }
    json_t *plan = NULL;
    if (!rc) rc = dm_reconcile_apply(api->store, &spec, 1, false, &plan, err);
    json_decref(plan);
    if (!rc && api->rt) rc = dm_runtime_sync(api->rt, err);
    dm_spec_clear(&spec);
    dm_spec_docs_free(docs, n);
    return rc;
}

static json_t *run(sql_api_t *api, const dm_sql_stmt_t *st, const char *team, dm_error_t *err)
{
    json_t *out = NULL, *doc = NULL;
    switch (st->kind) {
    case DM_SQL_SELECT:
        /* what is wrong with it first, then why the API does not run it */
        doc = doc_in_place(st, team);
        json_t *plan = api->rt ? dm_runtime_plan(api->rt, doc, NULL, NULL, NULL, err) : NULL;
        json_decref(doc);
        if (api->rt && !plan) return NULL;
        json_decref(plan);
        dm_error_set(err, DM_ERR_UNSUPPORTED,
                     "a SELECT is a push query whose rows stream as they come: run it with "
                     "`datamesh sql`, or publish its rows with CREATE SOURCE name AS SELECT …");
        return NULL;
    case DM_SQL_EXPLAIN: {
        if (!api->rt) {
            dm_error_set(err, DM_ERR_UNSUPPORTED, "this controller runs nothing: there is no plan");
            return NULL;
        }
        doc = doc_in_place(st, team);
        char *text = NULL;
        json_t *plan = dm_runtime_plan(api->rt, doc, NULL, NULL, &text, err);
        if (plan)
            out = json_pack("{s:s, s:o, s:s}", "kind", "explain", "plan", dm_api_redacted(plan),
                            "explain", text ? text : "");
        free(text);
        break;
    }
    case DM_SQL_CREATE_SOURCE:
        /* its errors at the script's line:col first (a source it reads that
         * has no schema yet is not one: the pipeline waits for it) */
        if (api->rt) {
            dm_error_t e = {0};
            doc = doc_in_place(st, team);
            json_t *plan = dm_runtime_plan(api->rt, doc, NULL, NULL, NULL, &e);
            json_decref(doc);
            json_decref(plan);
            if (!plan && e.code != DM_ERR_AGAIN) {
                *err = e;
                return NULL;
            }
        }
        doc = dm_api_sql_pipeline_doc(st, team);
        if (!apply_doc(api, doc, err))
            out = json_pack("{s:s, s:s, s:s}", "kind", "create source", "source", st->name,
                            "pipeline", st->name);
        break;
    case DM_SQL_DROP_SOURCE:
        if (!dm_reconcile_delete(api->store, DM_KIND_PIPELINE, st->name, err) &&
            (!api->rt || !dm_runtime_sync(api->rt, err)))
            out = json_pack("{s:s, s:s, s:s}", "kind", "drop source", "source", st->name,
                            "pipeline", st->name);
        break;
    case DM_SQL_SHOW_SOURCES: {
        json_t *items = NULL;
        if (!dm_catalog_sources(api->store, &items, err))
            out =
                json_pack("{s:s, s:o}", "kind", "show sources", "sources", dm_api_redacted(items));
        break;
    }
    case DM_SQL_DESCRIBE: {
        json_t *src = NULL;
        if (!dm_catalog_source(api->store, st->name, &src, err)) {
            if (src)
                out = json_pack("{s:s, s:o}", "kind", "describe", "source", dm_api_redacted(src));
            else
                dm_error_set(err, DM_ERR_NOT_FOUND, "no source %s", st->name);
        }
        break;
    }
    }
    json_decref(doc);
    return out;
}

/* The script of a request: its text, or {"sql": "…"}; malloc'd, NULL when neither. */
char *dm_api_sql_text(const void *body, size_t len)
{
    const char *b = body ? body : "";
    size_t i = 0;
    while (i < len && (b[i] == ' ' || b[i] == '\n' || b[i] == '\t' || b[i] == '\r'))
        i++;
    if (i < len && b[i] == '{') {
        json_t *j = json_loadb(b, len, 0, NULL);
        const char *s = json_string_value(json_object_get(j, "sql"));
        char *out = s ? strdup(s) : NULL;
        json_decref(j);
        return out;
    }
    if (memchr(b, '\0', len)) return NULL;
    return strndup(b, len);
}

static void on_sql(void *ctx, const dm_http_request_t *req, dm_http_response_t *res)
{
    sql_api_t *api = ctx;
    char *text = dm_api_sql_text(req->body, req->body_len);
    if (!text) {
        dm_http_error(res, 400, 40000,
                      "the body is a SQL script, or {\"sql\": \"…\"} (a string of statements)");
        return;
    }
    dm_sql_stmt_t *st = NULL;
    size_t n = 0;
    dm_error_t err = {0};
    if (dm_sql_script_parse(text, &st, &n, &err)) {
        free(text);
        dm_api_reply_error(res, &err);
        return;
    }
    const dm_principal_t *who = req->principal;
    const char *team = who && strcmp(who->owner, "-") ? who->owner : NULL;
    json_t *results = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *r = run(api, &st[i], team, &err);
        if (!r) {
            if (!err.message[0]) dm_error_set(&err, DM_ERR_INTERNAL, "statement failed");
            dm_error_prefix(&err, "statement %zu (line %d)%s", i + 1, st[i].line,
                            i ? " (the statements before it were carried out)" : "");
            json_decref(results);
            dm_sql_stmts_free(st, n);
            free(text);
            dm_api_reply_error(res, &err);
            return;
        }
        json_object_set_new(r, "statement", json_integer((json_int_t)i + 1));
        json_array_append_new(results, r);
    }
    dm_sql_stmts_free(st, n);
    free(text);
    dm_http_json(res, 200, json_pack("{s:o}", "results", results));
}

dm_err_t dm_api_sql_register(dm_http_server_t *http, dm_store_t *store, dm_runtime_t *rt)
{
    static sql_api_t api;
    api = (sql_api_t){store, rt};
    return dm_http_route(http, "POST", "/api/v1/sql", on_sql, &api);
}
