/* control/controller.c — the control plane process. */
#include "control/controller.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "control/api.h"
#include "control/api_alerts.h"
#include "control/auth.h"
#include "control/demo.h"
#include "control/history.h"
#include "control/reconcile.h"
#include "control/http.h"
#include "control/openlineage.h"
#include "control/registry_api.h"
#include "control/runtime.h"
#include "control/store.h"
#include "control/ui.h"
#include "core/clock.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/metrics.h"

struct dm_controller {
    char *data_dir;
    int lock_fd;
    dm_http_server_t *http;
    dm_store_t *store;
    dm_registry_api_t *registry;
    dm_auth_t *auth;
    bool tls;
    char *tls_cert_pem, *tls_key_pem; /* kept while the server runs */
    dm_runtime_t *runtime;
    dm_openlineage_t *openlineage;
    dm_alerts_service_t *alerts;
    dm_history_t *history; /* the last hour of every pipeline, for the UI */
    dm_metrics_t *metrics;
    dm_metric_t *objects[DM_KIND_COUNT];
    int64_t started_ms;
    _Atomic bool ready;
};

/* GET /healthz — 200 once the controller serves, 503 before. */
static void on_healthz(void *ctx, const dm_http_request_t *req, dm_http_response_t *res)
{
    dm_controller_t *c = ctx;
    if (!atomic_load(&c->ready)) {
        dm_http_error(res, 503, 50300, "controller is starting");
        return;
    }
    dm_http_json(res, 200,
                 json_pack("{s:s, s:s, s:I}", "status", "ok", "version", DM_VERSION, "uptime_ms",
                           (json_int_t)(dm_wall_ms() - c->started_ms)));
}

/* Everything GET /metrics serves: the registry's metrics and the units'
 * health. What the alert evaluator reads too (the same text Prometheus
 * scrapes, so both evaluate the same numbers). */
static dm_err_t render_metrics(void *ctx, dm_buf_t *out)
{
    dm_controller_t *c = ctx;
    for (int k = 0; k < DM_KIND_COUNT; k++) {
        json_t *list;
        if (dm_store_list(c->store, (dm_kind_t)k, &list, NULL) == DM_OK) {
            dm_metric_set(c->objects[k], (int64_t)json_array_size(list));
            json_decref(list);
        }
    }
    dm_err_t rc = dm_metrics_render(c->metrics, out);
    if (!rc && c->runtime) rc = dm_runtime_render_metrics(c->runtime, out);
    return rc;
}

/* GET /metrics — Prometheus text format. */
static void on_metrics(void *ctx, const dm_http_request_t *req, dm_http_response_t *res)
{
    dm_controller_t *c = ctx;
    res->status = 200;
    res->content_type = "text/plain; version=0.0.4; charset=utf-8";
    if (render_metrics(c, &res->body))
        dm_http_error(res, 500, 50000, "out of memory rendering metrics");
}

/* Applies the demo specs (again: applying is idempotent). */
static dm_err_t load_demo(dm_controller_t *c, dm_error_t *err)
{
    dm_buf_t text = DM_BUF_INIT;
    dm_spec_doc_t *docs = NULL;
    size_t n = 0;
    dm_spec_t specs[8] = {0};
    json_t *plan = NULL;
    dm_err_t rc = dm_demo_specs(c->data_dir, &text);
    if (!rc) rc = dm_spec_load("<demo>", (const char *)text.data, text.len, &docs, &n, err);
    /* Only what is missing: a user's changes to the demo objects stay. */
    size_t k = 0;
    for (size_t i = 0; i < n && k < 8 && !rc; i++) {
        rc = dm_spec_validate(&docs[i], &specs[k], err);
        json_t *existing = NULL;
        if (!rc && dm_store_get(c->store, specs[k].kind, specs[k].name, &existing, NULL) == DM_OK) {
            json_decref(existing);
            dm_spec_clear(&specs[k]);
            continue;
        }
        if (!rc) k++;
    }
    if (!rc && k) rc = dm_reconcile_apply(c->store, specs, k, false, &plan, err);
    if (!rc) rc = dm_runtime_sync(c->runtime, err);
    if (!rc) DM_INFO("control", "demo: sources movies and plays, pipeline us-plays loaded");
    json_decref(plan);
    for (size_t i = 0; i < 8; i++)
        dm_spec_clear(&specs[i]);
    dm_spec_docs_free(docs, n);
    dm_buf_free(&text);
    return rc;
}

static dm_err_t lock_data_dir(dm_controller_t *c, dm_error_t *err)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/controller.lock", c->data_dir);
    c->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (c->lock_fd < 0)
        return dm_error_set(err, DM_ERR_IO, "data directory %s: cannot open lock file: %s",
                            c->data_dir, strerror(errno));
    if (flock(c->lock_fd, LOCK_EX | LOCK_NB) != 0)
        return dm_error_set(err, DM_ERR_EXISTS,
                            "data directory %s is in use by another datamesh controller",
                            c->data_dir);
    char pid[32];
    int n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
    if (ftruncate(c->lock_fd, 0) == 0 && write(c->lock_fd, pid, (size_t)n) < 0) {
        /* The pid is informational; the flock is what protects the directory. */
    }
    return DM_OK;
}

/* Tells the runtime's sinks where this controller's registry API answers.
 * With auth on, the URL carries the controller's in-memory token as basic-auth
 * password (sinks show URLs through dm_redact_dsn, which masks it). */
static void set_registry_url(dm_controller_t *c, const char *listen)
{
    char host[200] = "127.0.0.1", url[400], cred[160] = "";
    const char *colon = strrchr(listen, ':');
    size_t n = colon ? (size_t)(colon - listen) : 0;
    if (n && n < sizeof(host) && strncmp(listen, "0.0.0.0", n) && strncmp(listen, "[::]", n))
        snprintf(host, sizeof(host), "%.*s", (int)n, listen);
    if (dm_auth_enabled(c->auth))
        snprintf(cred, sizeof(cred), "datamesh:%s@", dm_auth_internal_token(c->auth));
    snprintf(url, sizeof(url), "%s://%s%s:%u", c->tls ? "https" : "http", cred, host,
             dm_http_server_port(c->http));
    dm_runtime_set_registry_url(c->runtime, url);
    memset(url, 0, sizeof(url));
    memset(cred, 0, sizeof(cred));
}

/* The whole of a small file (a PEM certificate or key) as a new string. */
static char *read_pem(const char *path, const char *what, dm_error_t *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        dm_error_set(err, DM_ERR_IO, "%s %s: %s", what, path, strerror(errno));
        return NULL;
    }
    char *text = calloc(1, 1 << 20);
    bool bad = !text || (fread(text, 1, (1 << 20) - 1, f), ferror(f)) || !feof(f) ||
               !strstr(text, "-----BEGIN ");
    fclose(f);
    if (bad) {
        dm_error_set(err, DM_ERR_INVALID, "%s %s: not a PEM file (or larger than 1 MiB)", what,
                     path);
        free(text);
        return NULL;
    }
    return text;
}

/* The OpenLineage exporter: jobs and the controller's own sources in the
 * namespace datamesh://HOST:PORT, topics in the Kafka cluster's when they live there. */
static dm_err_t start_openlineage(dm_controller_t *c, const dm_controller_options_t *opt,
                                  const char *listen, dm_error_t *err)
{
    char ns[300], host[200] = "127.0.0.1";
    const char *colon = strrchr(listen, ':');
    size_t n = colon ? (size_t)(colon - listen) : 0;
    if (n && n < sizeof(host)) snprintf(host, sizeof(host), "%.*s", (int)n, listen);
    snprintf(ns, sizeof(ns), "datamesh://%s:%u", host, dm_http_server_port(c->http));
    dm_openlineage_options_t o = {
        .url = opt->openlineage,
        .ns = ns,
        .topic_ns =
            opt->transport && !strncmp(opt->transport, "kafka://", 8) ? opt->transport : NULL,
    };
    return dm_openlineage_start(&o, c->store, c->runtime, c->metrics, &c->openlineage, err);
}

dm_controller_t *dm_controller_start(const dm_controller_options_t *opt, dm_error_t *err)
{
    dm_controller_t *c = calloc(1, sizeof(*c));
    if (!c) {
        dm_error_set(err, DM_ERR_NOMEM, "controller: out of memory");
        return NULL;
    }
    c->lock_fd = -1;
    c->started_ms = dm_wall_ms();
    c->data_dir = strdup(opt->data_dir ? opt->data_dir : "./.datamesh");
    if (!c->data_dir) {
        dm_error_set(err, DM_ERR_NOMEM, "controller: out of memory");
        goto fail;
    }
    if (dm_mkdirs(c->data_dir, false, err)) {
        dm_error_prefix(err, "data directory %s", c->data_dir);
        goto fail;
    }
    if (lock_data_dir(c, err)) goto fail;

    char db[4200];
    snprintf(db, sizeof(db), "%s/controller.db", c->data_dir);
    c->store = dm_store_open(db, err);
    if (!c->store) goto fail;
    char reg_db[4200], reg_mode[4200];
    snprintf(reg_db, sizeof(reg_db), "%s/registry.db", c->data_dir);
    snprintf(reg_mode, sizeof(reg_mode), "%s/registry.mode", c->data_dir);

    c->metrics = dm_metrics_new();
    if (!c->metrics) {
        dm_error_set(err, DM_ERR_NOMEM, "controller: out of memory");
        goto fail;
    }
    for (int k = 0; k < DM_KIND_COUNT; k++) {
        char labels[64];
        snprintf(labels, sizeof(labels), "kind=\"%s\"", dm_kind_name((dm_kind_t)k));
        c->objects[k] =
            dm_metrics_gauge(c->metrics, "datamesh_objects", "applied objects, by kind", labels);
    }
    dm_metric_set(dm_metrics_gauge(c->metrics, "datamesh_build_info",
                                   "datamesh version (value is always 1)",
                                   "version=\"" DM_VERSION "\""),
                  1);

    dm_runtime_options_t ropt = {.transport = opt->transport,
                                 .external_tasks = opt->external_tasks};
    if (dm_runtime_new_with(c->data_dir, &ropt, c->store, c->metrics, &c->runtime, err)) goto fail;
    if (!(c->history = dm_history_start(c->store, c->runtime, c->metrics, err))) goto fail;

    dm_http_options_t hopt = {.listen = opt->listen ? opt->listen : "127.0.0.1:8080",
                              .metrics = c->metrics};
    if (!opt->auth && !opt->insecure && !dm_http_listen_is_loopback(hopt.listen)) {
        dm_error_set(err, DM_ERR_PERMISSION,
                     "refusing to listen on %s without --auth: anyone who reaches it could "
                     "change and read everything (add --auth for API tokens, or --insecure)",
                     hopt.listen);
        goto fail;
    }
    if (!opt->tls_cert != !opt->tls_key) {
        dm_error_set(err, DM_ERR_INVALID, "--tls-cert and --tls-key go together");
        goto fail;
    }
    char *cert = NULL, *key = NULL;
    if (opt->tls_cert) {
        cert = read_pem(opt->tls_cert, "--tls-cert", err);
        key = cert ? read_pem(opt->tls_key, "--tls-key", err) : NULL;
        if (!key) {
            free(cert);
            goto fail;
        }
        hopt.tls_cert_pem = cert;
        hopt.tls_key_pem = key;
        c->tls = true;
    }
    char self_url[300];
    snprintf(self_url, sizeof(self_url), "%s://%s", c->tls ? "https" : "http", hopt.listen);
    dm_alert_eval_options_t aopt = {
        .webhook = opt->alert_webhook, .external_url = self_url, .metrics = c->metrics};
    c->alerts =
        dm_alerts_service_start(c->store, render_metrics, c, &aopt, opt->alert_interval_ms, err);
    if (!c->alerts) goto fail;
    c->auth = dm_auth_new(c->store, &(dm_auth_options_t){.enabled = opt->auth}, err);
    if (c->auth && c->runtime) {
        /* the audit log lives in an internal topic; the store keeps it only if that fails */
        dm_error_t e = {0};
        if (dm_auth_audit_to(c->auth, dm_runtime_transport(c->runtime), &e))
            DM_WARN("control", "audit log kept in the controller store: %s", e.message);
        /* (the topic is opened in the background; see dm_auth_audit_to) */
    }
    c->http = c->auth ? dm_http_server_new(&hopt, err) : NULL;
    dm_err_t hrc = c->http ? DM_OK : DM_ERR_INVALID;
    if (!hrc &&
        (dm_http_route(c->http, "GET", "/healthz", on_healthz, c) ||
         dm_http_route(c->http, "GET", "/metrics", on_metrics, c) ||
         dm_auth_api_register(c->http, c->auth, c->store) || /* before /api/v1/{kind}/… */
         dm_api_workers_register(c->http, c->runtime) ||     /* before /api/v1/{kind}/… */
         dm_api_alerts_register(c->http, c->alerts) ||       /* before /api/v1/{kind}/… */
         dm_api_register(c->http, c->store, c->runtime) ||
         dm_registry_api_new(c->http, reg_db, reg_mode, &c->registry, err) ||
         dm_ui_register(c->http) || dm_history_register(c->http, c->history) ||
         dm_auth_attach(c->auth, c->http, err) || dm_auth_bootstrap(c->auth, c->data_dir, err) ||
         dm_http_server_start(c->http, err)))
        hrc = DM_ERR_INVALID;
    /* libmicrohttpd keeps the PEM pointers for the daemon's life: the key is
     * wiped and freed only after the server stops. */
    c->tls_cert_pem = cert;
    c->tls_key_pem = key;
    if (hrc) goto fail;
    set_registry_url(c, hopt.listen);
    if (opt->demo && load_demo(c, err)) goto fail;
    if (opt->openlineage && start_openlineage(c, opt, hopt.listen, err)) goto fail;
    atomic_store(&c->ready, true);
    DM_INFO("control", "listen=%s data=%s auth=%s tls=%s: controller ready", hopt.listen,
            c->data_dir, opt->auth ? "on" : "off", c->tls ? "on" : "off");
    return c;
fail:
    dm_controller_stop(c);
    return NULL;
}

uint16_t dm_controller_port(const dm_controller_t *c)
{
    return dm_http_server_port(c->http);
}

const dm_http_server_t *dm_controller_http(const dm_controller_t *c)
{
    return c->http;
}

void dm_controller_stop(dm_controller_t *c)
{
    if (!c) return;
    dm_http_server_free(c->http); /* first: no handler runs after this */
    dm_openlineage_stop(c->openlineage);
    dm_alerts_service_stop(c->alerts); /* before the runtime and store it reads */
    dm_history_stop(c->history);       /* before the runtime and metrics it reads */
    dm_api_lineage_forget();
    dm_api_catalog_forget();
    dm_auth_free(c->auth);
    if (c->tls_key_pem) memset(c->tls_key_pem, 0, strlen(c->tls_key_pem));
    free(c->tls_key_pem);
    free(c->tls_cert_pem);
    dm_runtime_free(c->runtime); /* stops every unit; each commits what it finished */
    dm_store_close(c->store);
    dm_registry_api_free(c->registry);
    dm_metrics_free(c->metrics);
    if (c->lock_fd >= 0) close(c->lock_fd);
    free(c->data_dir);
    free(c);
}
