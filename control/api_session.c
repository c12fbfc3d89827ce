/* control/api_session.c — the web UI signs in and out (see control/session.h).
 *
 *   POST   /api/v1/session  with `Authorization: Bearer TOKEN` → 200 {token (its
 *                           id), owner, role, csrf, expires_ms, auth} and
 *                           Set-Cookie: dm_session=…; HttpOnly; SameSite=Strict
 *   GET    /api/v1/session  → who the caller is and, for a session, its csrf
 *   DELETE /api/v1/session  → ends the cookie's session (X-CSRF-Token required)
 *                           and clears the cookie
 *
 * Without --auth every request is an anonymous admin: there is nothing to sign
 * in to, and these answer {"auth": false} without a cookie.
 */
#include <stdio.h>
#include <string.h>

#include "control/api.h"
#include "control/auth.h"
#include "control/session.h"
#include "core/clock.h"

/* The cookie's attributes: scripts cannot read it, other sites cannot send it. */
static void set_cookie(const dm_http_request_t *req, dm_http_response_t *res, const char *value,
                       long max_age_s)
{
    char cookie[256];
    snprintf(cookie, sizeof(cookie),
             DM_SESSION_COOKIE "=%s; Path=/; HttpOnly; SameSite=Strict; "
                               "Max-Age=%ld%s",
             value, max_age_s, req->tls ? "; Secure" : "");
    dm_http_add_header(res, "Set-Cookie", cookie);
    dm_http_add_header(res, "Cache-Control", "no-store");
}

static json_t *who(const dm_principal_t *p, const dm_session_info_t *s, bool auth)
{
    return json_pack("{s:s, s:s, s:s, s:s?, s:I, s:b}", "token", p ? p->token : "-", "owner",
                     p ? p->owner : "-", "role", p ? dm_role_name(p->role) : "admin", "csrf",
                     s ? s->csrf : NULL, "expires_ms", (json_int_t)(s ? s->expires_ms : 0), "auth",
                     auth);
}

static void on_signin(void *ctx, const dm_http_request_t *req, dm_http_response_t *res)
{
    dm_auth_t *a = ctx;
    dm_principal_t *p = req->principal;
    if (!dm_auth_enabled(a)) {
        dm_http_json(res, 200, who(p, NULL, false));
        return;
    }
    const char *authorization = dm_http_header(req, "Authorization");
    if (!p || !authorization || !*authorization) {
        /* A session does not renew itself: signing in takes the token again. */
        dm_http_error(res, 400, 40000, "sign in with the token in the Authorization header");
        return;
    }
    snprintf(p->detail, sizeof(p->detail), "sign in to the UI");
    dm_session_info_t s = {.role = (int)p->role};
    snprintf(s.token, sizeof(s.token), "%s", p->token);
    snprintf(s.owner, sizeof(s.owner), "%s", p->owner);
    char id[DM_SESSION_ID_HEX + 1];
    dm_error_t err = {0};
    int64_t now = dm_wall_ms();
    if (dm_sessions_open(dm_auth_sessions(a), &s, now, id, &err)) {
        dm_api_reply_error(res, &err);
        return;
    }
    set_cookie(req, res, id, (long)((s.expires_ms - now) / 1000));
    memset(id, 0, sizeof(id));
    dm_http_json(res, 200, who(p, &s, true));
}

static void on_get(void *ctx, const dm_http_request_t *req, dm_http_response_t *res)
{
    dm_auth_t *a = ctx;
    dm_session_info_t s;
    const char *sid = dm_http_cookie(req, DM_SESSION_COOKIE);
    bool has = dm_auth_enabled(a) && sid && !dm_http_header(req, "Authorization") &&
               dm_sessions_find(dm_auth_sessions(a), sid, dm_wall_ms(), &s);
    dm_http_add_header(res, "Cache-Control", "no-store");
    dm_http_json(res, 200, who(req->principal, has ? &s : NULL, dm_auth_enabled(a)));
}

static void on_signout(void *ctx, const dm_http_request_t *req, dm_http_response_t *res)
{
    dm_auth_t *a = ctx;
    dm_session_info_t s;
    const char *sid = dm_http_cookie(req, DM_SESSION_COOKIE);
    if (sid && dm_sessions_find(dm_auth_sessions(a), sid, dm_wall_ms(), &s)) {
        if (!dm_sessions_csrf_ok(&s, dm_http_header(req, DM_SESSION_HEADER))) {
            dm_http_error(res, 403, 40300,
                          "signing out needs the session's " DM_SESSION_HEADER " header");
            return;
        }
        dm_principal_t *p = req->principal;
        if (p) {
            snprintf(p->token, sizeof(p->token), "%s", s.token);
            snprintf(p->owner, sizeof(p->owner), "%s", s.owner);
            p->role = (dm_role_t)s.role;
            snprintf(p->detail, sizeof(p->detail), "sign out of the UI");
        }
        dm_sessions_close(dm_auth_sessions(a), sid);
    }
    set_cookie(req, res, "", 0);
    dm_http_json(res, 200, json_pack("{s:b}", "signed_out", true));
}

dm_err_t dm_auth_session_api_register(dm_http_server_t *http, dm_auth_t *a)
{
    dm_err_t rc = dm_http_route(http, "POST", "/api/v1/session", on_signin, a);
    rc = rc ? rc : dm_http_route(http, "GET", "/api/v1/session", on_get, a);
    return rc ? rc : dm_http_route(http, "DELETE", "/api/v1/session", on_signout, a);
}
