/* control/registry_api.c — Confluent Schema Registry API over schema/'s store.
 *
 * Error codes follow Confluent's: 40401 subject not found, 40402 version not
 * found, 40403 schema not found, 409 incompatible schema, 42201 invalid
 * schema, 42202 invalid version, 42203 invalid compatibility level, 42205
 * operation not permitted (READONLY mode), 50001 backend store error.
 */
#include "control/registry_api.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "schema/dm_schema_registry.h"

#define CT "application/vnd.schemaregistry.v1+json"

struct dm_registry_api {
    dm_schema_registry_t *reg;
    pthread_mutex_t mu; /* one store handle, shared by the server's threads */
    char *mode_path;
    char mode[16];
};

static void reply(dm_http_response_t *res, int status, json_t *body)
{
    dm_http_json(res, status, body);
    res->content_type = CT;
}

static void fail(dm_http_response_t *res, int status, int code, const char *msg)
{
    dm_http_error(res, status, code, "%s", msg);
    res->content_type = CT;
}

static void store_error(dm_http_response_t *res, const dm_error_t *err)
{
    fail(res, 500, 50001, err->message[0] ? err->message : "error in the backend data store");
}

static bool query_true(const dm_http_request_t *req, const char *name)
{
    const char *v = dm_http_query(req, name);
    return v && (!strcasecmp(v, "true") || !strcmp(v, "1"));
}

/* Parses the version segment: "latest" or -1 → -1, 1..2^31-1 → n; -2 on error. */
static int parse_version(const char *s)
{
    if (!s) return -2;
    if (!strcmp(s, "latest") || !strcmp(s, "-1")) return -1;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*end || end == s || errno || v < 1 || v > 2147483647) return -2;
    return (int)v;
}

/* The "schema" of a request body; replies and returns NULL when missing. */
static json_t *body_schema(const dm_http_request_t *req, dm_http_response_t *res)
{
    json_error_t jerr;
    json_t *body =
        req->body_len ? json_loadb((const char *)req->body, req->body_len, 0, &jerr) : NULL;
    if (!body) {
        if (req->body_len) {
            char msg[400];
            snprintf(msg, sizeof(msg),
                     "request body is not JSON (line %d column %d: %s); send {\"schema\": \"...\"}",
                     jerr.line, jerr.column, jerr.text);
            fail(res, 422, 42201, msg);
        } else
            fail(res, 422, 42201, "request body is not JSON with a \"schema\" string");
        return NULL;
    }
    const json_t *type = json_object_get(body, "schemaType");
    if (type && (!json_is_string(type) || strcmp(json_string_value(type), "AVRO") != 0)) {
        json_decref(body);
        fail(res, 422, 42201, "only AVRO schemas are supported");
        return NULL;
    }
    if (!json_is_string(json_object_get(body, "schema"))) {
        json_decref(body);
        fail(res, 422, 42201, "request body needs a \"schema\" string");
        return NULL;
    }
    return body;
}

/* Subject exists (has any version, live unless include_deleted)? Replies 40401 if not. */
static bool subject_exists(dm_registry_api_t *api, const char *subject, bool include_deleted,
                           dm_http_response_t *res)
{
    int *versions = NULL;
    size_t n = 0;
    dm_error_t err = {0};
    dm_err_t rc =
        dm_schema_registry_versions(api->reg, subject, include_deleted, &versions, &n, &err);
    free(versions);
    if (rc == DM_ERR_NOT_FOUND || (!rc && n == 0)) {
        char msg[600];
        snprintf(msg, sizeof(msg), "Subject '%s' not found.", subject);
        fail(res, 404, 40401, msg);
        return false;
    }
    if (rc) {
        store_error(res, &err);
        return false;
    }
    return true;
}

/* GET /subjects */
static void on_subjects(void *ctx, const dm_http_request_t *req, dm_http_response_t *res)
{
    dm_registry_api_t *api = ctx;
    char **list;
    size_t n;
    dm_error_t err = {0};
    pthread_mutex_lock(&api->mu);
    dm_err_t rc =
        dm_schema_registry_subjects(api->reg, query_true(req, "deleted"), &list, &n, &err);
    pthread_mutex_unlock(&api->mu);
    if (rc) return store_error(res, &err);
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(list[i]));
    dm_schema_registry_free_list(list, n);
    reply(res, 200, a);
}

/* GET /subjects/{subject}/versions */
static void on_versions(void *ctx, const dm_http_request_t *req, dm_http_response_t *res)
{
    dm_registry_api_t *api = ctx;
    const char *subject = dm_http_param(req, "subject");
    int *versions = NULL;
    size_t n = 0;
    dm_error_t err = {0};
    pthread_mutex_lock(&api->mu);
    dm_err_t rc = dm_schema_registry_versions(api->reg, subject, query_true(req, "deleted"),
                                              &versions, &n, &err);
    pthread_mutex_unlock(&api->mu);
    if (rc == DM_ERR_NOT_FOUND || (!rc && !n)) {
        free(versions);
        char msg[600];
        snprintf(msg, sizeof(msg), "Subject '%s' not found.", subject);
        return fail(res, 404, 40401, msg);
    }
    if (rc) return store_error(res, &err);
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_integer(versions[i]));
    free(versions);
    reply(res, 200, a);
}

/* GET /subjects/{subject}/versions/{version}[/schema] */
static void get_version(dm_registry_api_t *api, const dm_http_request_t *req,
                        dm_http_response_t *res, bool schema_only)
{
    const char *subject = dm_http_param(req, "subject");
    int version = parse_version(dm_http_param(req, "version"));
    if (version == -2)
        return fail(res, 422, 42202,
                    "The specified version is not a valid version id. Allowed values are between "
                    "[1, 2^31-1] and the string \"latest\"");
    pthread_mutex_lock(&api->mu);
    if (!subject_exists(api, subject, false, res)) {
        pthread_mutex_unlock(&api->mu);
        return;
    }
    int64_t id;
    int v;
    char *schema = NULL;
    dm_error_t err = {0};
    dm_err_t rc =
        dm_schema_registry_get_version(api->reg, subject, version, &id, &v, &schema, &err);
    pthread_mutex_unlock(&api->mu);
    if (rc == DM_ERR_NOT_FOUND) return fail(res, 404, 40402, "Version not found.");
    if (rc) return store_error(res, &err);
    if (schema_only) {
        json_t *parsed = json_loads(schema, JSON_DECODE_ANY, NULL);
        reply(res, 200, parsed ? parsed : json_string(schema));
    } else {
        reply(res, 200,
              json_pack("{s:s, s:I, s:i, s:s}", "subject", subject, "id", (json_int_t)id, "version",
                        v, "schema", schema));
    }
    free(schema);
}

static void on_version(void *ctx, const dm_http_request_t *req, dm_http_response_t *res)
{
    get_version(ctx, req, res, false);
}

static void on_version_schema(void *ctx, const dm_http_request_t *req, dm_http_response_t *res)
{
    get_version(ctx, req, res, true);
}

static void reply_incompatible(dm_http_response_t *res, dm_schema_compat_report_t *report)
{
    char msg[2048] = "Schema being registered is incompatible with an earlier schema";
    size_t o = strlen(msg);
    for (size_t i = 0; report && i < report->n && o < sizeof(msg); i++)
        o += (size_t)snprintf(msg + o, sizeof(msg) - o, "%s%s", i ? "; " : ": ",
                              report->messages[i]);
    fail(res, 409, 409, msg);
}

/* POST /subjects/{subject}/versions */
static void on_register(void *ctx, const dm_http_request_t *req, dm_http_response_t *res)
{
    dm_registry_api_t *api = ctx;
    const char *subject = dm_http_param(req, "subject");
    if (!strcmp(api->mode, "READONLY"))
        return fail(res, 422, 42205, "Subject is in read-only mode");
    json_t *body = body_schema(req, res);
    if (!body) return;
    int64_t id;
    dm_schema_compat_report_t report = {0};
    dm_error_t err = {0};
    pthread_mutex_lock(&api->mu);
    dm_err_t rc = dm_schema_registry_register(api->reg, subject,
                                              json_string_value(json_object_get(body, "schema")),
                                              &id, NULL, &report, &err);
    pthread_mutex_unlock(&api->mu);
    json_decref(body);
    if (rc == DM_ERR_SCHEMA_INCOMPATIBLE)
        reply_incompatible(res, &report);
    else if (rc == DM_ERR_SCHEMA_PARSE || rc == DM_ERR_INVALID)
        fail(res, 422, 42201, err.message);
    else if (rc)
        store_error(res, &err);
    else
        reply(res, 200, json_pack("{s:I}", "id", (json_int_t)id));
    dm_schema_compat_report_free(&report);
}

/* POST /subjects/{subject} — is this schema registered under subject? */
static void on_lookup(void *ctx, const dm_http_request_t *req, dm_http_response_t *res)
{
    dm_registry_api_t *api = ctx;
    const char *subject = dm_http_param(req, "subject");
    json_t *body = body_schema(req, res);
    if (!body) return;
    pthread_mutex_lock(&api->mu);
    if (!subject_exists(api, subject, false, res)) {
        pthread_mutex_unlock(&api->mu);
        json_decref(body);
        return;
    }
    int64_t id;
    int version;
    dm_error_t err = {0};
    const char *schema = json_string_value(json_object_get(body, "schema"));
    dm_err_t rc = dm_schema_registry_lookup(api->reg, subject, schema, &id, &version, &err);
    pthread_mutex_unlock(&api->mu);
    if (rc == DM_ERR_NOT_FOUND)
        fail(res, 404, 40403, "Schema not found");
    else if (rc == DM_ERR_SCHEMA_PARSE || rc == DM_ERR_INVALID)
        fail(res, 422, 42201, err.message);
    else if (rc)
        store_error(res, &err);
    else
        reply(res, 200,
              json_pack("{s:s, s:I, s:i, s:s}", "subject", subject, "id", (json_int_t)id, "version",
                        version, "schema", schema));
    json_decref(body);
}

/* DELETE /subjects/{subject} */
static void on_delete_subject(void *ctx, const dm_http_request_t *req, dm_http_response_t *res)
{
    dm_registry_api_t *api = ctx;
    const char *subject = dm_http_param(req, "subject");
    bool permanent = query_true(req, "permanent");
    if (!strcmp(api->mode, "READONLY"))
        return fail(res, 422, 42205, "Subject is in read-only mode");
    pthread_mutex_lock(&api->mu);
    int *versions = NULL;
    size_t n = 0;
    dm_error_t err = {0};
    dm_err_t rc = dm_schema_registry_versions(api->reg, subject, permanent, &versions, &n, &err);
    if (rc == DM_ERR_NOT_FOUND || (!rc && !n)) {
        pthread_mutex_unlock(&api->mu);
        free(versions);
        char msg[600];
        snprintf(msg, sizeof(msg), "Subject '%s' not found.", subject);
        return fail(res, 404, 40401, msg);
    }
    if (!rc) rc = dm_schema_registry_delete_subject(api->reg, subject, permanent, NULL, &err);
    pthread_mutex_unlock(&api->mu);
    if (rc) {
        free(versions);
        return rc == DM_ERR_INVALID ? fail(res, 404, 40405, err.message) : store_error(res, &err);
    }
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_integer(versions[i]));
    free(versions);
    reply(res, 200, a);
}

/* DELETE /subjects/{subject}/versions/{version} */
static void on_delete_version(void *ctx, const dm_http_request_t *req, dm_http_response_t *res)
{
    dm_registry_api_t *api = ctx;
    const char *subject = dm_http_param(req, "subject");
    int version = parse_version(dm_http_param(req, "version"));
    bool permanent = query_true(req, "permanent");
    if (version == -2)
        return fail(res, 422, 42202, "The specified version is not a valid version id.");
    if (!strcmp(api->mode, "READONLY"))
        return fail(res, 422, 42205, "Subject is in read-only mode");
    pthread_mutex_lock(&api->mu);
    if (!subject_exists(api, subject, permanent, res)) {
        pthread_mutex_unlock(&api->mu);
        return;
    }
    int v = version;
    int64_t id;
    dm_error_t err = {0};
    dm_err_t rc = version == -1
                      ? dm_schema_registry_get_version(api->reg, subject, -1, &id, &v, NULL, &err)
                      : DM_OK;
    if (!rc) rc = dm_schema_registry_delete_version(api->reg, subject, v, permanent, &err);
    pthread_mutex_unlock(&api->mu);
    if (rc == DM_ERR_NOT_FOUND) return fail(res, 404, 40402, "Version not found.");
    if (rc == DM_ERR_INVALID) return fail(res, 404, 40407, err.message);
    if (rc) return store_error(res, &err);
    reply(res, 200, json_integer(v));
}

/* GET /schemas/ids/{id} */
static void on_schema_by_id(void *ctx, const dm_http_request_t *req, dm_http_response_t *res)
{
    dm_registry_api_t *api = ctx;
    const char *s = dm_http_param(req, "id");
    char *end;
    errno = 0;
    long long id = strtoll(s, &end, 10);
    if (*end || end == s || errno || id < 1) return fail(res, 404, 40403, "Schema not found");
    char *schema = NULL;
    dm_error_t err = {0};
    pthread_mutex_lock(&api->mu);
    dm_err_t rc = dm_schema_registry_get_by_id(api->reg, id, &schema, &err);
    pthread_mutex_unlock(&api->mu);
    if (rc == DM_ERR_NOT_FOUND) return fail(res, 404, 40403, "Schema not found");
    if (rc) return store_error(res, &err);
    reply(res, 200, json_pack("{s:s}", "schema", schema));
    free(schema);
}

/* POST /compatibility/subjects/{subject}/versions/{version} */
static void on_compat(void *ctx, const dm_http_request_t *req, dm_http_response_t *res)
{
    dm_registry_api_t *api = ctx;
    const char *subject = dm_http_param(req, "subject");
    const char *vs = dm_http_param(req, "version");
    int version = vs ? parse_version(vs) : 0;
    if (version == -2)
        return fail(res, 422, 42202, "The specified version is not a valid version id.");
    json_t *body = body_schema(req, res);
    if (!body) return;
    const char *text = json_string_value(json_object_get(body, "schema"));
    dm_schema_compat_report_t report = {0};
    dm_error_t err = {0};
    dm_err_t rc;
    pthread_mutex_lock(&api->mu);
    if (!vs) { /* against every version the subject's level asks for */
        rc = dm_schema_registry_check(api->reg, subject, text, &report, &err);
    } else if (!subject_exists(api, subject, false, res)) {
        pthread_mutex_unlock(&api->mu);
        json_decref(body);
        return;
    } else {
        char *old = NULL;
        dm_schema_compat_level_t level = DM_COMPAT_BACKWARD;
        rc = dm_schema_registry_get_version(api->reg, subject, version, NULL, NULL, &old, &err);
        if (!rc) rc = dm_schema_registry_get_level(api->reg, subject, &level, &err);
        dm_avro_schema_t *a = NULL, *b = NULL;
        if (!rc) rc = dm_avro_schema_parse(text, strlen(text), &a, &err);
        if (!rc) rc = dm_avro_schema_parse(old, strlen(old), &b, &err);
        if (!rc) {
            const dm_avro_schema_t *olders[] = {b};
            rc = dm_schema_compat_check(level, a, olders, 1, &report);
        }
        dm_avro_schema_free(a);
        dm_avro_schema_free(b);
        free(old);
    }
    pthread_mutex_unlock(&api->mu);
    json_decref(body);
    if (rc == DM_ERR_NOT_FOUND) {
        fail(res, 404, vs ? 40402 : 40401, vs ? "Version not found." : "Subject not found.");
    } else if (rc == DM_ERR_SCHEMA_PARSE) {
        fail(res, 422, 42201, err.message);
    } else if (rc && rc != DM_ERR_SCHEMA_INCOMPATIBLE) {
        store_error(res, &err);
    } else {
        json_t *out = json_pack("{s:b}", "is_compatible", rc == DM_OK);
        if (query_true(req, "verbose")) {
            json_t *msgs = json_array();
            for (size_t i = 0; i < report.n; i++)
                json_array_append_new(msgs, json_string(report.messages[i]));
            json_object_set_new(out, "messages", msgs);
        }
        reply(res, 200, out);
    }
    dm_schema_compat_report_free(&report);
}

/* GET|PUT /config[/{subject}] */
static void config(dm_registry_api_t *api, const dm_http_request_t *req, dm_http_response_t *res,
                   const char *subject)
{
    dm_error_t err = {0};
    dm_schema_compat_level_t level;
    if (!strcmp(req->method, "PUT")) {
        json_t *body =
            req->body_len ? json_loadb((const char *)req->body, req->body_len, 0, NULL) : NULL;
        const char *name = json_string_value(json_object_get(body, "compatibility"));
        if (!name || dm_schema_compat_level_parse(name, &level)) {
            json_decref(body);
            return fail(res, 422, 42203,
                        "Invalid compatibility level. Valid values are none, "
                        "backward, forward, full, backward_transitive, "
                        "forward_transitive, and full_transitive");
        }
        json_decref(body);
        pthread_mutex_lock(&api->mu);
        dm_err_t rc = dm_schema_registry_set_level(api->reg, subject, level, &err);
        pthread_mutex_unlock(&api->mu);
        if (rc) return store_error(res, &err);
        return reply(res, 200,
                     json_pack("{s:s}", "compatibility", dm_schema_compat_level_name(level)));
    }
    pthread_mutex_lock(&api->mu);
    dm_err_t rc = dm_schema_registry_get_level(api->reg, subject, &level, &err);
    pthread_mutex_unlock(&api->mu);
    if (rc) return store_error(res, &err);
    reply(res, 200, json_pack("{s:s}", "compatibilityLevel", dm_schema_compat_level_name(level)));
}

static void on_config(void *ctx, const dm_http_request_t *req, dm_http_response_t *res)
{
    config(ctx, req, res, NULL);
}

static void on_subject_config(void *ctx, const dm_http_request_t *req, dm_http_response_t *res)
{
    config(ctx, req, res, dm_http_param(req, "subject"));
}

/* GET|PUT /mode */
static void on_mode(void *ctx, const dm_http_request_t *req, dm_http_response_t *res)
{
    dm_registry_api_t *api = ctx;
    if (!strcmp(req->method, "PUT")) {
        json_t *body =
            req->body_len ? json_loadb((const char *)req->body, req->body_len, 0, NULL) : NULL;
        const char *mode = json_string_value(json_object_get(body, "mode"));
        if (!mode || (strcmp(mode, "READWRITE") && strcmp(mode, "READONLY"))) {
            json_decref(body);
            return fail(res, 422, 42204, "Invalid mode. Valid values are READWRITE and READONLY");
        }
        pthread_mutex_lock(&api->mu);
        snprintf(api->mode, sizeof(api->mode), "%s", mode);
        FILE *f = fopen(api->mode_path, "w");
        bool ok = f && fprintf(f, "%s\n", mode) > 0;
        if (f && fclose(f)) ok = false;
        pthread_mutex_unlock(&api->mu);
        json_decref(body);
        if (!ok) return fail(res, 500, 50001, "cannot save the mode");
    }
    reply(res, 200, json_pack("{s:s}", "mode", api->mode));
}

dm_err_t dm_registry_api_new(dm_http_server_t *http, const char *db_path, const char *mode_path,
                             dm_registry_api_t **out, dm_error_t *err)
{
    *out = NULL;
    dm_registry_api_t *api = calloc(1, sizeof(*api));
    if (!api) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&api->mu, NULL);
    api->mode_path = strdup(mode_path);
    snprintf(api->mode, sizeof(api->mode), "READWRITE");
    FILE *f = fopen(mode_path, "r");
    if (f) {
        char line[32] = "";
        if (fgets(line, sizeof(line), f)) {
            line[strcspn(line, "\n")] = '\0';
            if (!strcmp(line, "READONLY") || !strcmp(line, "READWRITE"))
                snprintf(api->mode, sizeof(api->mode), "%s", line);
        }
        fclose(f);
    }
    dm_err_t rc = dm_schema_registry_open(db_path, &api->reg, err);
    static const struct {
        const char *method, *path;
        dm_http_handler_fn fn;
    } routes[] = {
        {"GET", "/subjects", on_subjects},
        {"GET", "/subjects/{subject}/versions", on_versions},
        {"POST", "/subjects/{subject}/versions", on_register},
        {"GET", "/subjects/{subject}/versions/{version}", on_version},
        {"DELETE", "/subjects/{subject}/versions/{version}", on_delete_version},
        {"GET", "/subjects/{subject}/versions/{version}/schema", on_version_schema},
        {"POST", "/subjects/{subject}", on_lookup},
        {"DELETE", "/subjects/{subject}", on_delete_subject},
        {"GET", "/schemas/ids/{id}", on_schema_by_id},
        {"POST", "/compatibility/subjects/{subject}/versions", on_compat},
        {"POST", "/compatibility/subjects/{subject}/versions/{version}", on_compat},
        {"GET", "/config", on_config},
        {"PUT", "/config", on_config},
        {"GET", "/config/{subject}", on_subject_config},
        {"PUT", "/config/{subject}", on_subject_config},
        {"GET", "/mode", on_mode},
        {"PUT", "/mode", on_mode},
    };
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]) && !rc; i++)
        rc = dm_http_route(http, routes[i].method, routes[i].path, routes[i].fn, api);
    if (rc) {
        dm_registry_api_free(api);
        return rc;
    }
    *out = api;
    return DM_OK;
}

void dm_registry_api_free(dm_registry_api_t *api)
{
    if (!api) return;
    dm_schema_registry_close(api->reg);
    pthread_mutex_destroy(&api->mu);
    free(api->mode_path);
    free(api);
}
