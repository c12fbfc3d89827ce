/* control/http.c — libmicrohttpd server with a small path router. */
#include "control/http.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"

#define MAX_ROUTES   256
#define MAX_SEGMENTS 16

typedef struct route {
    char method[8];
    char *pattern;
    dm_http_handler_fn fn;
    void *ctx;
} route_t;

struct dm_http_server {
    dm_http_options_t opt;
    struct sockaddr_storage addr;
    socklen_t addr_len;
    struct MHD_Daemon *daemon;
    route_t routes[MAX_ROUTES];
    size_t n_routes;
    dm_http_guard_t guard;    /* .before NULL: no access control */
    dm_metric_t *by_class[6]; /* requests by status class 1xx..5xx */
};

/* Per-request state while the body arrives. */
typedef struct pending {
    dm_buf_t body;
    bool too_large;
} pending_t;

static dm_err_t parse_listen(const char *listen, struct sockaddr_storage *ss, socklen_t *len,
                             dm_error_t *err)
{
    char host[128];
    const char *colon = strrchr(listen, ':');
    if (!colon) return dm_error_set(err, DM_ERR_INVALID, "--listen %s: expected HOST:PORT", listen);
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || end == colon + 1 || port < 0 || port > 65535)
        return dm_error_set(err, DM_ERR_INVALID, "--listen %s: port must be 0..65535", listen);
    size_t hlen = (size_t)(colon - listen);
    if (hlen >= sizeof(host)) return dm_error_set(err, DM_ERR_INVALID, "--listen: host too long");
    memcpy(host, listen, hlen);
    host[hlen] = '\0';
    memset(ss, 0, sizeof(*ss));
    if (host[0] == '[') {
        size_t n = strlen(host);
        if (n < 2 || host[n - 1] != ']')
            return dm_error_set(err, DM_ERR_INVALID, "--listen %s: bad IPv6 address", listen);
        host[n - 1] = '\0';
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host + 1, &a6->sin6_addr) != 1)
            return dm_error_set(err, DM_ERR_INVALID, "--listen %s: bad IPv6 address", listen);
        *len = sizeof(*a6);
        return DM_OK;
    }
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    if (!host[0] || strcmp(host, "localhost") == 0) strcpy(host, "127.0.0.1");
    if (inet_pton(AF_INET, host, &a4->sin_addr) != 1)
        return dm_error_set(err, DM_ERR_INVALID, "--listen %s: '%s' is not an IPv4 address", listen,
                            host);
    *len = sizeof(*a4);
    return DM_OK;
}

dm_http_server_t *dm_http_server_new(const dm_http_options_t *opt, dm_error_t *err)
{
    dm_http_server_t *s = calloc(1, sizeof(*s));
    if (!s) {
        dm_error_set(err, DM_ERR_NOMEM, "http server: out of memory");
        return NULL;
    }
    s->opt = *opt;
    if (!s->opt.listen) s->opt.listen = "127.0.0.1:8080";
    if (!s->opt.max_body) s->opt.max_body = 16u << 20;
    if (!s->opt.threads) s->opt.threads = 4;
    if (!s->opt.timeout_s) s->opt.timeout_s = 30;
    if (!s->opt.max_connections) s->opt.max_connections = 1024;
    if (parse_listen(s->opt.listen, &s->addr, &s->addr_len, err)) {
        free(s);
        return NULL;
    }
    if (s->opt.metrics)
        for (int c = 1; c <= 5; c++) {
            char labels[32];
            snprintf(labels, sizeof(labels), "code=\"%dxx\"", c);
            s->by_class[c] = dm_metrics_counter(s->opt.metrics, "datamesh_http_requests_total",
                                                "HTTP requests answered, by status class", labels);
        }
    return s;
}

dm_err_t dm_http_route(dm_http_server_t *s, const char *method, const char *pattern,
                       dm_http_handler_fn fn, void *ctx)
{
    if (s->n_routes == MAX_ROUTES || strlen(method) >= sizeof(s->routes[0].method))
        return DM_ERR_RANGE;
    route_t *r = &s->routes[s->n_routes];
    snprintf(r->method, sizeof(r->method), "%s", method);
    r->pattern = strdup(pattern);
    if (!r->pattern) return DM_ERR_NOMEM;
    r->fn = fn;
    r->ctx = ctx;
    s->n_routes++;
    return DM_OK;
}

void dm_http_set_guard(dm_http_server_t *s, const dm_http_guard_t *guard)
{
    s->guard = *guard;
}

size_t dm_http_route_count(const dm_http_server_t *s)
{
    return s->n_routes;
}

void dm_http_route_at(const dm_http_server_t *s, size_t i, const char **method,
                      const char **pattern)
{
    *method = s->routes[i].method;
    *pattern = s->routes[i].pattern;
}

bool dm_http_listen_is_loopback(const char *listen)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (!listen || parse_listen(listen, &ss, &len, NULL)) return false;
    if (ss.ss_family == AF_INET6)
        return IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)&ss)->sin6_addr);
    return (ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr) >> 24) == 127;
}

void dm_http_remote(const dm_http_request_t *req, char *out, size_t cap)
{
    snprintf(out, cap, "?");
    const union MHD_ConnectionInfo *info =
        req->conn ? MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS) : NULL;
    if (!info || !info->client_addr) return;
    const struct sockaddr *sa = info->client_addr;
    char text[INET6_ADDRSTRLEN] = "?";
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, text, sizeof(text));
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, text, sizeof(text));
    snprintf(out, cap, "%s", text);
}

/* Splits a path into segments in place; returns the count or -1 if too many.
 * (strtok_r: the pool's threads match routes at the same time.) */
static int split(char *path, char **seg)
{
    int n = 0;
    char *save = NULL;
    for (char *p = strtok_r(path, "/", &save); p; p = strtok_r(NULL, "/", &save)) {
        if (n == MAX_SEGMENTS) return -1;
        seg[n++] = p;
    }
    return n;
}

static void url_decode(char *s)
{
    char *o = s;
    for (char *p = s; *p; p++) {
        if (*p == '%' && p[1] && p[2]) {
            char hex[3] = {p[1], p[2], 0};
            char *end;
            long v = strtol(hex, &end, 16);
            if (!*end && v > 0) {
                *o++ = (char)v;
                p += 2;
                continue;
            }
        }
        *o++ = *p;
    }
    *o = '\0';
}

/* Matches path against a route pattern; fills params on success. */
static bool match(const route_t *r, const char *path, dm_http_request_t *req)
{
    char pbuf[1024], rbuf[1024];
    if (strlen(path) >= sizeof(pbuf) || strlen(r->pattern) >= sizeof(rbuf)) return false;
    strcpy(pbuf, path);
    strcpy(rbuf, r->pattern);
    char *ps[MAX_SEGMENTS], *rs[MAX_SEGMENTS];
    int np = split(pbuf, ps), nr = split(rbuf, rs);
    if (np < 0 || nr < 0 || np != nr) return false;
    size_t n_params = 0;
    for (int i = 0; i < nr; i++) {
        size_t len = strlen(rs[i]);
        if (rs[i][0] == '{' && rs[i][len - 1] == '}') {
            if (n_params == DM_HTTP_MAX_PARAMS) return false;
            n_params++;
            continue;
        }
        if (strcmp(rs[i], ps[i]) != 0) return false;
    }
    /* Matched: capture parameters (pattern names point into the route). */
    req->n_params = 0;
    const char *pat = r->pattern;
    for (int i = 0; i < nr; i++) {
        size_t len = strlen(rs[i]);
        if (rs[i][0] == '{' && rs[i][len - 1] == '}') {
            const char *name = strstr(pat, rs[i]);
            req->param_names[req->n_params] = name ? name + 1 : "";
            char *v = strdup(ps[i]);
            if (!v) return false;
            url_decode(v);
            req->param_values[req->n_params++] = v;
        }
    }
    return true;
}

const char *dm_http_param(const dm_http_request_t *req, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < req->n_params; i++)
        if (strncmp(req->param_names[i], name, n) == 0 && req->param_names[i][n] == '}')
            return req->param_values[i];
    return NULL;
}

const char *dm_http_query(const dm_http_request_t *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *dm_http_header(const dm_http_request_t *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *dm_http_cookie(const dm_http_request_t *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_COOKIE_KIND, name);
}

bool dm_http_add_header(dm_http_response_t *res, const char *name, const char *value)
{
    if (strpbrk(name, "\r\n:") || strpbrk(value, "\r\n")) return false;
    size_t room = sizeof(res->headers) - res->headers_len;
    int n = snprintf(res->headers + res->headers_len, room, "%s: %s\n", name, value);
    if (n < 0 || (size_t)n >= room) {
        res->headers[res->headers_len] = '\0';
        return false;
    }
    res->headers_len += (size_t)n;
    return true;
}

void dm_http_json(dm_http_response_t *res, int status, json_t *body)
{
    res->status = status;
    res->content_type = "application/json";
    dm_buf_reset(&res->body);
    char *text = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
    if (text) {
        dm_buf_append_str(&res->body, text);
        free(text);
    }
    json_decref(body);
}

void dm_http_error(dm_http_response_t *res, int status, int code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    dm_utf8_repair(msg); /* jansson refuses text that is not UTF-8: the answer would be empty */
    dm_http_json(res, status, json_pack("{s:i, s:s}", "error_code", code, "message", msg));
}

/* Whether a request body's Content-Type is one the API reads: JSON (the
 * registry's application/vnd.schemaregistry.v1+json too), YAML, plain text,
 * bytes, or curl's default for --data (the body is read as it is). A body in
 * another format (XML, a multipart form) is refused with 415 naming its type
 * instead of failing later as unparseable JSON. */
static bool body_type_ok(const dm_http_request_t *req, dm_http_response_t *res)
{
    const char *ct = req->body_len ? dm_http_header(req, "Content-Type") : NULL;
    if (!ct) return true;
    static const char *const ok[] = {
        "application/json",
        "application/yaml",
        "application/x-yaml",
        "text/yaml",
        "text/x-yaml",
        "text/plain",
        "application/octet-stream",
        "application/x-www-form-urlencoded",
        "application/x-ndjson",
        "application/vnd.datamesh.batch", /* the emitter's binary batches (events/avro) */
    };
    size_t n = strcspn(ct, ";");
    while (n && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
        n--;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        if (strlen(ok[i]) == n && !strncasecmp(ct, ok[i], n)) return true;
    if (n > 5 && !strncasecmp(ct + n - 5, "+json", 5) && !strncasecmp(ct, "application/", 12))
        return true;
    dm_http_error(res, 415, 41500,
                  "%s %s: Content-Type '%.*s' is not accepted; send the body as application/json "
                  "(or YAML for /api/v1/apply)",
                  req->method, req->path, (int)(n > 100 ? 100 : n), ct);
    return false;
}

static enum MHD_Result send_response(dm_http_server_t *s, struct MHD_Connection *conn,
                                     dm_http_response_t *res)
{
    int cls = res->status / 100;
    if (cls >= 1 && cls <= 5 && s->by_class[cls]) dm_metric_add(s->by_class[cls], 1);
    struct MHD_Response *r =
        MHD_create_response_from_buffer(res->body.len, res->body.data, MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type",
                            res->content_type ? res->content_type : "application/json");
    if (res->location[0]) MHD_add_response_header(r, "Location", res->location);
    if (res->authenticate[0]) MHD_add_response_header(r, "WWW-Authenticate", res->authenticate);
    if (res->retry_after_s > 0) {
        char v[16];
        snprintf(v, sizeof(v), "%d", res->retry_after_s);
        MHD_add_response_header(r, "Retry-After", v);
    }
    for (char *line = res->headers; *line;) { /* "Name: value\n" lines */
        char *colon = strchr(line, ':'), *end = strchr(line, '\n');
        if (!colon || !end) break;
        *colon = *end = '\0';
        MHD_add_response_header(r, line, colon + 2);
        line = end + 1;
    }
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)res->status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    dm_http_server_t *s = cls;
    pending_t *p = *con_cls;
    if (!p) {
        p = calloc(1, sizeof(*p));
        if (!p) return MHD_NO;
        *con_cls = p;
        /* Refuse a declared oversized body before reading any of it. */
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        unsigned long long declared = cl ? strtoull(cl, NULL, 10) : 0;
        if (declared > s->opt.max_body) p->too_large = true;
        /* the declared size at once: no copy per doubling of a large body */
        else if (declared > 65536 && dm_buf_reserve(&p->body, (size_t)declared))
            return MHD_NO;
        if (!p->too_large) return MHD_YES;
    }
    if (*upload_data_size) {
        if (!p->too_large) {
            if (p->body.len + *upload_data_size > s->opt.max_body) {
                p->too_large = true;
                dm_buf_free(&p->body);
            } else if (dm_buf_append(&p->body, upload_data, *upload_data_size)) {
                return MHD_NO;
            }
        }
        *upload_data_size = 0;
        return MHD_YES;
    }

    dm_http_response_t res = {.status = 200, .content_type = "application/json"};
    if (p->too_large) {
        dm_http_error(&res, 413, 41300, "request body larger than %zu bytes", s->opt.max_body);
        enum MHD_Result ret = send_response(s, conn, &res);
        dm_buf_free(&res.body);
        return ret;
    }

    dm_http_request_t req = {.method = method,
                             .path = url,
                             .conn = conn,
                             .body = p->body.data,
                             .body_len = p->body.len,
                             .tls = s->opt.tls_cert_pem != NULL};
    bool path_known = false;
    const route_t *found = NULL;
    for (size_t i = 0; i < s->n_routes && !found; i++) {
        const route_t *r = &s->routes[i];
        dm_http_request_t probe = req;
        if (!match(r, url, &probe)) continue;
        path_known = true;
        if (strcmp(r->method, "*") == 0 || strcmp(r->method, method) == 0) {
            found = r;
            req = probe;
        } else {
            for (size_t k = 0; k < probe.n_params; k++)
                free(probe.param_values[k]);
        }
    }
    if (found) {
        req.route_method = found->method;
        req.route_pattern = found->pattern;
        /* The guard sees every routed request; a route it has no rule for is
         * refused there, so an endpoint cannot be added unguarded. */
        if ((!s->guard.before || s->guard.before(s->guard.ctx, &req, &res)) &&
            body_type_ok(&req, &res))
            found->fn(found->ctx, &req, &res);
        if (s->guard.after) s->guard.after(s->guard.ctx, &req, &res);
    } else if (path_known) {
        dm_http_error(&res, 405, 40500, "method %s not allowed on %s", method, url);
    } else {
        dm_http_error(&res, 404, 40400, "no such endpoint: %s %s", method, url);
    }
    for (size_t k = 0; k < req.n_params; k++)
        free(req.param_values[k]);
    enum MHD_Result ret = send_response(s, conn, &res);
    dm_buf_free(&res.body);
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    pending_t *p = *con_cls;
    if (p) {
        dm_buf_free(&p->body);
        free(p);
        *con_cls = NULL;
    }
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n')
        msg[--n] = '\0';
    DM_DEBUG("http", "%s", msg);
}

dm_err_t dm_http_server_start(dm_http_server_t *s, dm_error_t *err)
{
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    if (s->addr.ss_family == AF_INET6) flags |= MHD_USE_IPv6;
    bool tls = s->opt.tls_cert_pem && s->opt.tls_key_pem;
    if (tls && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
        return dm_error_set(err, DM_ERR_UNSUPPORTED,
                            "http: this libmicrohttpd was built without TLS (GnuTLS)");
    if (tls) flags |= MHD_USE_TLS;
#ifdef MHD_USE_EPOLL
    flags |= MHD_USE_EPOLL;
#endif
    s->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&s->addr,
        MHD_OPTION_THREAD_POOL_SIZE, s->opt.threads, MHD_OPTION_CONNECTION_TIMEOUT,
        s->opt.timeout_s, MHD_OPTION_CONNECTION_LIMIT, s->opt.max_connections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, s->opt.max_connections / 2,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)64 * 1024, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, s, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
        /* Last: without TLS the list ends at the first MHD_OPTION_END. */
        tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, s->opt.tls_cert_pem,
        MHD_OPTION_HTTPS_MEM_KEY, s->opt.tls_key_pem, MHD_OPTION_END);
    if (!s->daemon)
        return dm_error_set(err, DM_ERR_IO,
                            "http: cannot listen on %s (address in use, or not an address of "
                            "this machine%s)",
                            s->opt.listen,
                            tls ? ", or the TLS certificate and key do not load or match" : "");
    return DM_OK;
}

uint16_t dm_http_server_port(const dm_http_server_t *s)
{
    if (!s->daemon) return 0;
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    return info ? info->port : 0;
}

void dm_http_server_free(dm_http_server_t *s)
{
    if (!s) return;
    if (s->daemon) MHD_stop_daemon(s->daemon);
    for (size_t i = 0; i < s->n_routes; i++)
        free(s->routes[i].pattern);
    free(s);
}
