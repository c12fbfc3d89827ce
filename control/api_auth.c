/* control/api_auth.c — tokens and the audit log through the API.
 *
 *   POST   /api/v1/tokens       {"owner": TEAM, "role": viewer|editor|admin|worker,
 *                                "expires": "30d" (optional), "description": TEXT}
 *                               → 201 {id, owner, role, …, "token": TOKEN}: the only
 *                                 answer that ever holds a token
 *   GET    /api/v1/tokens       → {"items": [{id, owner, role, description, created_ms,
 *                                 expires_ms, last_used_ms, revoked_ms, state}]}
 *   DELETE /api/v1/tokens/{id}  → {"id": ID, "revoked": true}
 *   GET    /api/v1/audit?since=1h|since_ms=MS&who=TEAM|TOKEN_ID&outcome=ok|denied|failed
 *                               &limit=N → {"items": [entries, oldest first]}
 *   GET    /api/v1/whoami       → {token, owner, role, auth}
 *
 * Who may call them is control/auth.c's rule table (admins, whoami anyone).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/api.h"
#include "control/auth.h"
#include "core/clock.h"

typedef struct auth_api {
    dm_auth_t *auth;
    dm_store_t *store;
} auth_api_t;

static void on_create(void *ctx, const dm_http_request_t *req, dm_http_response_t *res)
{
    auth_api_t *api = ctx;
    json_error_t je;
    json_t *body =
        req->body_len ? json_loadb((const char *)req->body, req->body_len, 0, &je) : NULL;
    if (!json_is_object(body)) {
        dm_http_error(
            res, 400, 40000,
            "send {\"owner\": TEAM, \"role\": \"viewer|editor|admin|worker\", \"expires\": "
            "\"30d\"}");
        json_decref(body);
        return;
    }
    const char *owner = json_string_value(json_object_get(body, "owner"));
    const char *role_s = json_string_value(json_object_get(body, "role"));
    const char *expires = json_string_value(json_object_get(body, "expires"));
    const char *description = json_string_value(json_object_get(body, "description"));
    int role = dm_role_parse(role_s);
    int64_t ttl = expires ? dm_auth_parse_duration(expires) : 0;
    if (!owner || role < 0 || ttl < 0) {
        dm_http_error(res, 400, 40000, "%s",
                      !owner     ? "owner (the token's team) is required"
                      : role < 0 ? "role must be viewer, editor, admin or worker"
                                 : "expires must be a duration like 30d, 12h, 15m or 90s");
        json_decref(body);
        return;
    }
    char token[128];
    dm_store_token_t row;
    dm_error_t err = {0};
    if (dm_auth_token_create(api->auth, owner, (dm_role_t)role, ttl ? dm_wall_ms() + ttl : 0,
                             description, token, sizeof(token), &row, &err)) {
        dm_api_reply_error(res, &err);
        json_decref(body);
        return;
    }
    dm_principal_t *p = req->principal;
    if (p)
        snprintf(p->detail, sizeof(p->detail), "create token %s for team %s, role %s", row.id,
                 row.owner, row.role);
    dm_http_json(res, 201,
                 json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:s}", "id", row.id, "owner", row.owner,
                           "role", row.role, "description", row.description, "created_ms",
                           (json_int_t)row.created_ms, "expires_ms", (json_int_t)row.expires_ms,
                           "token", token));
    memset(token, 0, sizeof(token));
    json_decref(body);
}

static void on_list(void *ctx, const dm_http_request_t *req, dm_http_response_t *res)
{
    auth_api_t *api = ctx;
    dm_store_token_t *rows;
    size_t n;
    dm_error_t err = {0};
    if (dm_store_token_list(api->store, &rows, &n, &err)) {
        dm_api_reply_error(res, &err);
        return;
    }
    int64_t now = dm_wall_ms();
    json_t *items = json_array();
    for (size_t i = 0; i < n; i++) {
        const dm_store_token_t *t = &rows[i];
        const char *state = t->revoked_ms                           ? "revoked"
                            : t->expires_ms && now >= t->expires_ms ? "expired"
                                                                    : "active";
        json_array_append_new(
            items, json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:s}", "id", t->id, "owner",
                             t->owner, "role", t->role, "description", t->description, "created_ms",
                             (json_int_t)t->created_ms, "expires_ms", (json_int_t)t->expires_ms,
                             "last_used_ms", (json_int_t)t->last_used_ms, "revoked_ms",
                             (json_int_t)t->revoked_ms, "state", state));
    }
    free(rows);
    dm_http_json(res, 200, json_pack("{s:o}", "items", items));
}

static void on_revoke(void *ctx, const dm_http_request_t *req, dm_http_response_t *res)
{
    auth_api_t *api = ctx;
    const char *id = dm_http_param(req, "id");
    dm_error_t err = {0};
    dm_principal_t *p = req->principal;
    if (p) snprintf(p->detail, sizeof(p->detail), "revoke token %.64s", id ? id : "");
    if (!id || dm_store_token_revoke(api->store, id, dm_wall_ms(), &err)) {
        if (!id) dm_error_set(&err, DM_ERR_NOT_FOUND, "no token id");
        dm_api_reply_error(res, &err);
        return;
    }
    dm_http_json(res, 200, json_pack("{s:s, s:b}", "id", id, "revoked", 1));
}

static void on_audit(void *ctx, const dm_http_request_t *req, dm_http_response_t *res)
{
    auth_api_t *api = ctx;
    dm_store_audit_filter_t f = {.who = dm_http_query(req, "who"),
                                 .outcome = dm_http_query(req, "outcome")};
    const char *since = dm_http_query(req, "since"), *since_ms = dm_http_query(req, "since_ms");
    const char *limit = dm_http_query(req, "limit");
    if (since) {
        int64_t d = dm_auth_parse_duration(since);
        if (d < 0) {
            dm_http_error(res, 400, 40000, "since must be a duration like 1h, 30m or 7d");
            return;
        }
        f.since_ms = dm_wall_ms() - d;
    } else if (since_ms) {
        f.since_ms = strtoll(since_ms, NULL, 10);
    }
    f.limit = limit ? strtoll(limit, NULL, 10) : 100;
    if (f.limit < 1 || f.limit > 10000) {
        dm_http_error(res, 400, 40000, "limit must be 1..10000");
        return;
    }
    if (f.outcome && strcmp(f.outcome, "ok") && strcmp(f.outcome, "denied") &&
        strcmp(f.outcome, "failed")) {
        dm_http_error(res, 400, 40000, "outcome must be ok, denied or failed");
        return;
    }
    json_t *items;
    dm_error_t err = {0};
    if (dm_auth_audit_query(api->auth, &f, &items, &err)) {
        dm_api_reply_error(res, &err);
        return;
    }
    dm_http_json(res, 200, json_pack("{s:o}", "items", items));
}

static void on_whoami(void *ctx, const dm_http_request_t *req, dm_http_response_t *res)
{
    auth_api_t *api = ctx;
    const dm_principal_t *p = req->principal;
    dm_http_json(res, 200,
                 json_pack("{s:s, s:s, s:s, s:b}", "token", p ? p->token : "-", "owner",
                           p ? p->owner : "-", "role", p ? dm_role_name(p->role) : "admin", "auth",
                           dm_auth_enabled(api->auth)));
}

dm_err_t dm_auth_api_register(dm_http_server_t *http, dm_auth_t *a, dm_store_t *store)
{
    static auth_api_t api;
    api = (auth_api_t){a, store};
    dm_err_t rc = dm_http_route(http, "POST", "/api/v1/tokens", on_create, &api);
    rc = rc ? rc : dm_http_route(http, "GET", "/api/v1/tokens", on_list, &api);
    rc = rc ? rc : dm_http_route(http, "DELETE", "/api/v1/tokens/{id}", on_revoke, &api);
    rc = rc ? rc : dm_http_route(http, "GET", "/api/v1/audit", on_audit, &api);
    rc = rc ? rc : dm_auth_session_api_register(http, a);
    return rc ? rc : dm_http_route(http, "GET", "/api/v1/whoami", on_whoami, &api);
}
