/* control/ui.c — serves the embedded web UI (see ui.h). */
#include "control/ui.h"

#include <string.h>

/* Nothing runs but the UI's own files; no inline script or style, no other
 * origin, no framing (clickjacking), no <base> or plugins. */
#define CSP                                                                                        \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "              \
    "connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; "                  \
    "form-action 'self'; frame-ancestors 'none'"

/* The page URLs of the single-page app; each answers index.html. */
static const char *const pages[] = {
    "/",        "/catalog",  "/sources/{name}", "/pipelines", "/pipelines/{name}",
    "/lineage", "/registry", "/editor",         "/signin",    "/sql",
};

const dm_ui_asset_t *dm_ui_asset(const char *name)
{
    for (size_t i = 0; name && i < dm_ui_n_assets; i++)
        if (!strcmp(dm_ui_assets[i].name, name)) return &dm_ui_assets[i];
    return NULL;
}

/* Whether the request's If-None-Match names etag (a list, or "*"). */
static bool not_modified(const dm_http_request_t *req, const char *etag)
{
    const char *inm = dm_http_header(req, "If-None-Match");
    if (!inm) return false;
    if (!strcmp(inm, "*")) return true;
    size_t n = strlen(etag);
    for (const char *p = strstr(inm, etag); p; p = strstr(p + 1, etag))
        if ((p == inm || p[-1] == ' ' || p[-1] == ',') &&
            (p[n] == '\0' || p[n] == ',' || p[n] == ' '))
            return true;
    return false;
}

static void send_asset(const dm_http_request_t *req, dm_http_response_t *res,
                       const dm_ui_asset_t *a)
{
    dm_http_add_header(res, "Content-Security-Policy", CSP);
    dm_http_add_header(res, "X-Content-Type-Options", "nosniff");
    dm_http_add_header(res, "Referrer-Policy", "no-referrer");
    dm_http_add_header(res, "X-Frame-Options", "DENY");
    dm_http_add_header(res, "Cache-Control", "no-cache");
    dm_http_add_header(res, "ETag", a->etag);
    res->content_type = a->content_type;
    dm_buf_reset(&res->body);
    if (not_modified(req, a->etag)) {
        res->status = 304;
        return;
    }
    res->status = 200;
    dm_buf_append(&res->body, a->data, a->len);
}

static void on_page(void *ctx, const dm_http_request_t *req, dm_http_response_t *res)
{
    const dm_ui_asset_t *index = dm_ui_asset("index.html");
    if (!index) {
        dm_http_error(res, 500, 50000, "this build has no UI (ui/index.html was not embedded)");
        return;
    }
    send_asset(req, res, index);
}

static void on_asset(void *ctx, const dm_http_request_t *req, dm_http_response_t *res)
{
    const char *name = dm_http_param(req, "file");
    const dm_ui_asset_t *a = dm_ui_asset(name);
    if (!a) {
        dm_http_error(res, 404, 40400, "no such UI asset: /ui/%s", name ? name : "");
        return;
    }
    send_asset(req, res, a);
}

dm_err_t dm_ui_register(dm_http_server_t *http)
{
    dm_err_t rc = dm_http_route(http, "GET", "/ui/{file}", on_asset, NULL);
    for (size_t i = 0; i < sizeof(pages) / sizeof(pages[0]) && !rc; i++)
        rc = dm_http_route(http, "GET", pages[i], on_page, NULL);
    return rc;
}
