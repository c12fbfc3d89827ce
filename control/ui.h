/* control/ui.h — the web UI, served by `datamesh up` from the binary itself.
 *
 * The assets of ui/ are compiled in at build time (ui/embed.cmake writes the
 * table dm_ui_assets), so the UI works offline with nothing to install. Pages
 * are one single-page app: every page URL (/, /catalog, /sources/NAME, …)
 * answers ui/index.html and the app draws the page its URL names; assets are
 * under /ui/NAME. Every answer carries a strict Content-Security-Policy (no
 * inline script or style, nothing from another origin), an ETag and
 * Cache-Control: no-cache (revalidated, 304 when unchanged).
 */
#ifndef DM_CONTROL_UI_H
#define DM_CONTROL_UI_H

#include <stddef.h>

#include "control/http.h"

typedef struct dm_ui_asset {
    const char *name;         /* "app.js" */
    const char *content_type; /* "text/javascript; charset=utf-8" */
    const char *etag;         /* quoted: "\"3f2a…\"" */
    const unsigned char *data;
    size_t len;
} dm_ui_asset_t;

extern const dm_ui_asset_t dm_ui_assets[];
extern const size_t dm_ui_n_assets;

/* The asset called name, or NULL. */
const dm_ui_asset_t *dm_ui_asset(const char *name);

/* Adds the UI's routes: GET / and the other page URLs, GET /ui/{file}. Each
 * needs its rule in control/auth.c (public: they hold no data). */
dm_err_t dm_ui_register(dm_http_server_t *http);

#endif
