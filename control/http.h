/* control/http.h — the controller's HTTP server (libmicrohttpd) and router.
 *
 * Routes are registered once before start as (method, pattern, handler);
 * patterns are paths whose `{name}` segments capture one path segment. Request
 * bodies are buffered up to max_body bytes (a larger body gets 413 without
 * being stored); idle or slow clients are cut after a timeout, so the server
 * keeps serving whatever a client sends. Handlers run on the server's threads,
 * concurrently: whatever they touch must be thread-safe.
 */
#ifndef DM_CONTROL_HTTP_H
#define DM_CONTROL_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/error.h"
#include "core/metrics.h"

typedef struct dm_http_server dm_http_server_t;

#define DM_HTTP_MAX_PARAMS 8

typedef struct dm_http_request {
    const char *method;
    const char *path; /* without the query string */
    const uint8_t *body;
    size_t body_len;
    void *conn; /* struct MHD_Connection *, for dm_http_query / dm_http_header */
    size_t n_params;
    const char *param_names[DM_HTTP_MAX_PARAMS];
    char *param_values[DM_HTTP_MAX_PARAMS]; /* URL-decoded path segments */
    const char *route_method;               /* the matched route's method ("GET", "*") */
    const char *route_pattern; /* the matched route's pattern ("/api/v1/{kind}/{name}") */
    void *principal;           /* who sent it: set by the guard (control/auth.h), else NULL */
    bool tls;                  /* it came over HTTPS */
} dm_http_request_t;

typedef struct dm_http_response {
    int status;
    const char *content_type; /* static string; default application/json */
    dm_buf_t body;
    char location[256];    /* optional Location header */
    char authenticate[64]; /* optional WWW-Authenticate header (with a 401) */
    int retry_after_s;     /* > 0: a Retry-After header (with a 429 or 503) */
    char headers[1536];    /* more headers, "Name: value\n" each (dm_http_add_header) */
    size_t headers_len;
} dm_http_response_t;

/* Handles one request; fills res (status defaults to 200). Runs on a server thread. */
typedef void (*dm_http_handler_fn)(void *ctx, const dm_http_request_t *req,
                                   dm_http_response_t *res);

/* Access control around every routed request (control/auth.c installs one).
 * before runs first: true lets the handler run, false means it filled res (401,
 * 403, 429, …) and the handler is skipped. after runs once the answer is known,
 * whether the handler ran or not, and releases whatever before put in
 * req->principal. Both run on server threads, concurrently. */
typedef struct dm_http_guard {
    bool (*before)(void *ctx, dm_http_request_t *req, dm_http_response_t *res);
    void (*after)(void *ctx, dm_http_request_t *req, const dm_http_response_t *res);
    void *ctx;
} dm_http_guard_t;

typedef struct dm_http_options {
    const char *listen;       /* "127.0.0.1:8080", "[::1]:8080" or ":8080" */
    const char *tls_cert_pem; /* PEM text of the certificate (chain): serve HTTPS; NULL: HTTP */
    const char *tls_key_pem;  /* PEM text of its private key (with tls_cert_pem) */
    size_t max_body;          /* bytes; 0 = 16 MiB */
    unsigned threads;         /* 0 = 4 */
    unsigned timeout_s;       /* idle connection timeout; 0 = 30 */
    unsigned max_connections; /* 0 = 1024 */
    dm_metrics_t *metrics;    /* optional: requests counted by status class */
} dm_http_options_t;

/* Creates a server (not yet listening). NULL on bad options, with err set. */
dm_http_server_t *dm_http_server_new(const dm_http_options_t *opt, dm_error_t *err);

/* Adds a route. method "GET", "POST", …; "*" matches any method. Call before start. */
dm_err_t dm_http_route(dm_http_server_t *s, const char *method, const char *pattern,
                       dm_http_handler_fn fn, void *ctx);

/* Installs the access guard (copied). Call before start; at most one. */
void dm_http_set_guard(dm_http_server_t *s, const dm_http_guard_t *guard);

/* The number of routes added so far. */
size_t dm_http_route_count(const dm_http_server_t *s);

/* The method and pattern of route i (0 ≤ i < dm_http_route_count); pointers stay
 * valid until the server is freed. */
void dm_http_route_at(const dm_http_server_t *s, size_t i, const char **method,
                      const char **pattern);

/* Whether listen ("HOST:PORT") names a loopback address only (127.0.0.0/8, ::1,
 * localhost, or an empty host, which this server binds to 127.0.0.1). */
bool dm_http_listen_is_loopback(const char *listen);

/* Starts listening. DM_ERR_IO naming the address when it cannot bind. */
dm_err_t dm_http_server_start(dm_http_server_t *s, dm_error_t *err);

/* The port actually bound (useful with port 0). */
uint16_t dm_http_server_port(const dm_http_server_t *s);

/* Stops listening, waits for running handlers and frees everything. */
void dm_http_server_free(dm_http_server_t *s);

/* A path parameter captured by `{name}`, or NULL. */
const char *dm_http_param(const dm_http_request_t *req, const char *name);

/* A query-string argument, or NULL. */
const char *dm_http_query(const dm_http_request_t *req, const char *name);

/* The client's address as text ("127.0.0.1", "::1"; "?" when unknown) in out. */
void dm_http_remote(const dm_http_request_t *req, char *out, size_t cap);

/* A request header, or NULL. */
const char *dm_http_header(const dm_http_request_t *req, const char *name);

/* A cookie the request carries, or NULL. */
const char *dm_http_cookie(const dm_http_request_t *req, const char *name);

/* Adds a response header. false (and nothing added) when res has no room left
 * or name/value hold a line break. */
bool dm_http_add_header(dm_http_response_t *res, const char *name, const char *value);

/* Sets status and a JSON body {"error_code": code, "message": msg} (the
 * Confluent registry's error shape, used by every endpoint). */
void dm_http_error(dm_http_response_t *res, int status, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Sets status and a JSON body from a jansson value (takes the reference). */
struct json_t;
void dm_http_json(dm_http_response_t *res, int status, struct json_t *body);

#endif
