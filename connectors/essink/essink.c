/* connectors/essink/essink.c — documents into Elasticsearch through _bulk
 * (see essink.h).
 *
 * A batch is one _bulk request: an "index" action (with the key as _id) per
 * row, a "delete" action per delete. Indexing by id makes a retried batch
 * harmless, so the whole batch is sent again whenever anything in it must be
 * retried: the request failed, Elasticsearch answered 429 or 5xx, or an item
 * came back with 429 or 5xx. Items refused for other reasons (a document that
 * does not fit the mapping) are dead letters with Elasticsearch's error; a
 * delete of a document that is not there (404) is not an error.
 */
#include "connectors/essink/essink.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/log.h"
#include "schema/dm_avro.h"

typedef struct essink {
    const dm_essink_config_t *conf;
    const dm_sink_env_t *env;
    CURL *curl;
    char secret[512]; /* password or API key; never in a message */
    char *auth_header;
    const dm_avro_node_t *mapped; /* the row schema the index was created for */
    const char *const *keys;
    size_t n_keys;
    dm_buf_t body, resp, idbuf;
    size_t *sent; /* per bulk item: the batch index */
} essink_t;

/* ---- HTTP --------------------------------------------------------------------------- */

static size_t on_data(char *p, size_t size, size_t n, void *ctx)
{
    dm_buf_t *b = ctx;
    return dm_buf_append(b, p, size * n) ? 0 : size * n;
}

/* One request; *status gets the HTTP status. body may be NULL. */
static dm_err_t request(essink_t *s, const char *method, const char *path, const char *type,
                        const dm_buf_t *body, long *status, dm_error_t *err)
{
    char url[2048];
    snprintf(url, sizeof(url), "%s%s%s", s->conf->url,
             s->conf->url[0] && s->conf->url[strlen(s->conf->url) - 1] == '/' ? "" : "/", path);
    CURL *c = s->curl;
    curl_easy_reset(c);
    struct curl_slist *h = NULL;
    char ct[128];
    snprintf(ct, sizeof(ct), "Content-Type: %s", type ? type : "application/json");
    h = curl_slist_append(h, ct);
    if (s->auth_header) h = curl_slist_append(h, s->auth_header);
    s->resp.len = 0;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &s->resp);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)s->conf->timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (!strcmp(method, "HEAD")) curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, (const char *)body->data);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->len);
    }
    if (s->conf->username && !s->auth_header) {
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(c, CURLOPT_USERNAME, s->conf->username);
        curl_easy_setopt(c, CURLOPT_PASSWORD, s->secret);
    }
    CURLcode rc = curl_easy_perform(c);
    curl_slist_free_all(h);
    if (rc != CURLE_OK) {
        dm_error_set(err, DM_ERR_CONNECTOR, "elasticsearch sink: %s %s: %s", method, path,
                     curl_easy_strerror(rc));
        err->retriable = true;
        return err->code;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    return DM_OK;
}

/* Elasticsearch's reason in an error body ({"error": {"type", "reason"}}). */
static void error_reason(const dm_buf_t *resp, char *out, size_t cap)
{
    json_t *j = json_loadb((const char *)resp->data, resp->len, 0, NULL);
    json_t *e = json_object_get(j, "error");
    if (json_is_object(e))
        snprintf(out, cap, "%s: %s", json_string_value(json_object_get(e, "type")) ?: "error",
                 json_string_value(json_object_get(e, "reason")) ?: "");
    else
        snprintf(out, cap, "%.*s", (int)(resp->len > 300 ? 300 : resp->len),
                 resp->data ? (const char *)resp->data : "");
    json_decref(j);
}

/* ---- the mapping ------------------------------------------------------------------------ */

static json_t *field_mapping(const dm_avro_node_t *t)
{
    if (t->type == DM_AVRO_UNION) {
        const dm_avro_node_t *only = NULL;
        for (uint32_t i = 0; i < t->n_branches; i++)
            if (t->branches[i]->type != DM_AVRO_NULL) only = only ? NULL : t->branches[i];
        return only ? field_mapping(only) : json_pack("{s:s}", "type", "object");
    }
    switch (t->logical) {
    case DM_AVRO_LT_DATE: return json_pack("{s:s, s:s}", "type", "date", "format", "strict_date");
    case DM_AVRO_LT_TIMESTAMP_MILLIS:
    case DM_AVRO_LT_TIMESTAMP_MICROS:
    case DM_AVRO_LT_LOCAL_TIMESTAMP_MILLIS:
    case DM_AVRO_LT_LOCAL_TIMESTAMP_MICROS:
        return json_pack("{s:s, s:s}", "type", "date", "format", "strict_date_optional_time");
    case DM_AVRO_LT_DECIMAL: return json_pack("{s:s}", "type", "double");
    case DM_AVRO_LT_UUID: return json_pack("{s:s}", "type", "keyword");
    case DM_AVRO_LT_TIME_MILLIS:
    case DM_AVRO_LT_TIME_MICROS: return json_pack("{s:s}", "type", "keyword");
    default: break;
    }
    switch (t->type) {
    case DM_AVRO_BOOLEAN: return json_pack("{s:s}", "type", "boolean");
    case DM_AVRO_INT: return json_pack("{s:s}", "type", "integer");
    case DM_AVRO_LONG: return json_pack("{s:s}", "type", "long");
    case DM_AVRO_FLOAT: return json_pack("{s:s}", "type", "float");
    case DM_AVRO_DOUBLE: return json_pack("{s:s}", "type", "double");
    case DM_AVRO_STRING:
        /* searchable text, with an exact keyword beside it (as dynamic mapping does) */
        return json_pack("{s:s, s:{s:{s:s, s:i}}}", "type", "text", "fields", "keyword", "type",
                         "keyword", "ignore_above", 256);
    case DM_AVRO_ENUM: return json_pack("{s:s}", "type", "keyword");
    case DM_AVRO_BYTES:
    case DM_AVRO_FIXED: return json_pack("{s:s}", "type", "binary");
    case DM_AVRO_ARRAY: return field_mapping(t->items); /* every field may hold many values */
    case DM_AVRO_RECORD: {
        json_t *props = json_object();
        for (uint32_t i = 0; i < t->n_fields; i++)
            json_object_set_new(props, t->fields[i].name, field_mapping(t->fields[i].type));
        return json_pack("{s:o}", "properties", props);
    }
    default: return json_pack("{s:s}", "type", "object");
    }
}

/* A new schema version of the rows (docs/schema-evolution.md): its fields
 * added to the index's mapping. Elasticsearch keeps the fields it has and
 * refuses a changed type; that refusal is logged, not fatal: documents still
 * index, their new fields mapped dynamically. */
static void put_mapping(essink_t *s, const dm_avro_node_t *t)
{
    char path[600], why[400];
    snprintf(path, sizeof(path), "%s/_mapping", s->conf->index);
    json_t *m = field_mapping(t);
    char *text = json_dumps(m, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(m);
    dm_buf_t body = DM_BUF_INIT;
    dm_buf_append_str(&body, text ? text : "{}");
    free(text);
    long status = 0;
    dm_error_t e = {0};
    dm_err_t rc = request(s, "PUT", path, NULL, &body, &status, &e);
    dm_buf_free(&body);
    if (!rc && status < 300) {
        DM_INFO("sink", "%s sink=elasticsearch: mapping of %s updated to the new schema version",
                s->env->name, s->conf->index);
        return;
    }
    error_reason(&s->resp, why, sizeof(why));
    DM_WARN("sink", "%s sink=elasticsearch: updating the mapping of %s: %s", s->env->name,
            s->conf->index, rc ? e.message : why);
}

/* Creates the index with a mapping of row schema t when it is missing. */
static dm_err_t ensure_index(essink_t *s, const dm_avro_node_t *t, dm_error_t *err)
{
    if (s->mapped == t) return DM_OK;
    long status = 0;
    dm_err_t rc = request(s, "HEAD", s->conf->index, NULL, NULL, &status, err);
    if (rc) return rc;
    if (status == 404) {
        json_t *m = field_mapping(t);
        json_t *doc = json_pack("{s:o}", "mappings", m);
        char *text = json_dumps(doc, JSON_COMPACT);
        json_decref(doc);
        dm_buf_t body = DM_BUF_INIT;
        dm_buf_append_str(&body, text ? text : "{}");
        free(text);
        rc = request(s, "PUT", s->conf->index, NULL, &body, &status, err);
        dm_buf_free(&body);
        if (rc) return rc;
        char why[400];
        error_reason(&s->resp, why, sizeof(why));
        /* Someone else may have created it in between. */
        if (status >= 300 && !strstr(why, "resource_already_exists_exception")) {
            dm_error_set(err, DM_ERR_CONNECTOR,
                         "elasticsearch sink: creating index %s: HTTP %ld: %s", s->conf->index,
                         status, why);
            err->retriable = status == 429 || status >= 500; /* the cluster busy or starting */
            return err->code;
        }
        DM_INFO("sink", "%s sink=elasticsearch: created index %s", s->env->name, s->conf->index);
    } else if (status >= 300) {
        dm_error_set(err, DM_ERR_CONNECTOR, "elasticsearch sink: checking index %s: HTTP %ld",
                     s->conf->index, status);
        err->retriable = status == 429 || status >= 500;
        return err->code;
    } else if (s->mapped) {
        put_mapping(s, t);
    }
    s->mapped = t;
    return DM_OK;
}

/* ---- the bulk body ------------------------------------------------------------------------ */

/* The document id of a record: its key fields' values (JSON text, joined by
 * '|' when there are several); false when it has none. */
static bool doc_id(essink_t *s, const dm_sink_record_t *it, dm_buf_t *out)
{
    out->len = 0;
    for (size_t k = 0; k < s->n_keys; k++) {
        const dm_avro_node_t *node = NULL;
        const dm_avro_value_t *v = NULL;
        int idx;
        if (it->row && (idx = dm_avro_field_index(it->row_schema, s->keys[k])) >= 0) {
            node = it->row_schema->fields[idx].type;
            v = &it->row->u.v[idx];
        } else if (it->key && (idx = dm_avro_field_index(it->key_schema, s->keys[k])) >= 0) {
            node = it->key_schema->fields[idx].type;
            v = &it->key->u.v[idx];
        } else {
            return false;
        }
        if (k) dm_buf_append_u8(out, '|');
        if (v->type == DM_AVRO_NULL) return false;
        if (v->type == DM_AVRO_STRING) {
            /* the text itself, not its JSON form */
            if (dm_buf_append(out, v->u.p, v->len)) return false;
        } else if (dm_avro_to_json(node, v, DM_AVRO_JSON_PLAIN, out, NULL)) {
            return false;
        }
    }
    return s->n_keys > 0;
}

static dm_err_t build_body(essink_t *s, const dm_sink_batch_t *b, dm_sink_rejects_t *rj,
                           size_t *n_sent, dm_error_t *err)
{
    dm_buf_t *o = &s->body;
    o->len = 0;
    *n_sent = 0;
    for (size_t i = 0; i < b->n; i++) {
        if (dm_sink_rejected(rj, i)) continue;
        const dm_sink_record_t *it = &b->records[i];
        bool has_id = doc_id(s, it, &s->idbuf);
        if (it->is_delete && !has_id) {
            dm_sink_reject(rj, i, "elasticsearch sink: a delete needs a document id (set key:)");
            continue;
        }
        json_t *action =
            json_pack("{s:{s:s}}", it->is_delete ? "delete" : "index", "_index", s->conf->index);
        if (has_id)
            json_object_set_new(json_object_get(action, it->is_delete ? "delete" : "index"), "_id",
                                json_stringn((const char *)s->idbuf.data, s->idbuf.len));
        char *text = json_dumps(action, JSON_COMPACT);
        json_decref(action);
        dm_err_t rc = text ? dm_buf_append_str(o, text) : DM_ERR_NOMEM;
        free(text);
        if (!rc) rc = dm_buf_append_u8(o, '\n');
        if (!rc && !it->is_delete) {
            rc = dm_avro_to_json(it->row_schema, it->row, DM_AVRO_JSON_PLAIN, o, err);
            if (!rc) rc = dm_buf_append_u8(o, '\n');
        }
        if (rc) return dm_error_set(err, rc, "elasticsearch sink: building the bulk request");
        s->sent[(*n_sent)++] = i;
    }
    return DM_OK;
}

/* Reads the _bulk answer: items to retry make the batch retried; items
 * refused for good become dead letters. */
static dm_err_t read_items(essink_t *s, size_t n_sent, dm_sink_rejects_t *rj, dm_error_t *err)
{
    json_error_t jerr;
    json_t *j = json_loadb((const char *)s->resp.data, s->resp.len, 0, &jerr);
    json_t *items = json_object_get(j, "items");
    if (!json_is_array(items) || json_array_size(items) != n_sent) {
        json_decref(j);
        return dm_error_set(err, DM_ERR_CONNECTOR,
                            "elasticsearch sink: the _bulk answer does not list the %zu items sent",
                            n_sent);
    }
    size_t retry = 0;
    char first[400] = "";
    for (size_t k = 0; k < n_sent; k++) {
        /* each item is {"<action>": {"_id", "status", "error"}} */
        void *it = json_object_iter(json_array_get(items, k));
        const char *action = it ? json_object_iter_key(it) : "item";
        json_t *res = it ? json_object_iter_value(it) : NULL;
        long status = (long)json_integer_value(json_object_get(res, "status"));
        if (status < 300 || (status == 404 && !strcmp(action, "delete"))) continue;
        json_t *e = json_object_get(res, "error");
        char why[400];
        snprintf(why, sizeof(why), "elasticsearch %s %ld: %s: %s", action, status,
                 json_string_value(json_object_get(e, "type")) ?: "error",
                 json_string_value(json_object_get(e, "reason")) ?: "");
        if (status == 429 || status >= 500) {
            if (!retry++) snprintf(first, sizeof(first), "%s", why);
            continue;
        }
        dm_sink_reject(rj, s->sent[k], "%s", why);
    }
    json_decref(j);
    if (retry)
        return dm_error_set(err, DM_ERR_AGAIN, "elasticsearch sink: %zu items to retry (%s)", retry,
                            first);
    return DM_OK;
}

/* ---- ops ------------------------------------------------------------------------------------ */

static dm_err_t es_write(void *state, const dm_sink_batch_t *b, dm_sink_rejects_t *rj,
                         dm_error_t *err)
{
    essink_t *s = state;
    const dm_avro_node_t *t = NULL;
    for (size_t i = 0; i < b->n && !t; i++)
        if (!dm_sink_rejected(rj, i) && b->records[i].row) t = b->records[i].row_schema;
    dm_err_t rc = t ? ensure_index(s, t, err) : DM_OK;
    if (rc) return rc;
    size_t *sent = realloc(s->sent, (b->n + 1) * sizeof(size_t));
    if (!sent) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    s->sent = sent;
    size_t n_sent;
    if ((rc = build_body(s, b, rj, &n_sent, err)) || !n_sent) return rc;
    long status = 0;
    if ((rc = request(s, "POST", "_bulk", "application/x-ndjson", &s->body, &status, err)))
        return rc;
    if (status != 200) {
        char why[400];
        error_reason(&s->resp, why, sizeof(why));
        rc = dm_error_set(err, DM_ERR_CONNECTOR, "elasticsearch sink: _bulk: HTTP %ld: %s", status,
                          why);
        err->retriable = status == 429 || status >= 500;
        return rc;
    }
    return read_items(s, n_sent, rj, err);
}

static void es_close(void *state)
{
    essink_t *s = state;
    if (!s) return;
    if (s->curl) curl_easy_cleanup(s->curl);
    memset(s->secret, 0, sizeof(s->secret));
    if (s->auth_header) memset(s->auth_header, 0, strlen(s->auth_header));
    free(s->auth_header);
    dm_buf_free(&s->body);
    dm_buf_free(&s->resp);
    dm_buf_free(&s->idbuf);
    free(s->sent);
    free(s);
}

static dm_err_t es_open(const void *conf, const dm_sink_env_t *env, void **state, dm_error_t *err)
{
    const dm_essink_config_t *c = conf;
    for (const char *p = c->index; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || strchr("-_.+", *p)))
            return dm_error_set(err, DM_ERR_CONFIG,
                                "elasticsearch sink: index %s: names are lowercase letters, digits "
                                "and - _ . +",
                                c->index);
    essink_t *s = calloc(1, sizeof(*s));
    if (!s) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    s->conf = c;
    s->env = env;
    s->body = s->resp = s->idbuf = (dm_buf_t)DM_BUF_INIT;
    const dm_strlist_t *keys = c->key.n ? &c->key : env->key_fields;
    s->keys = keys ? (const char *const *)keys->items : NULL;
    s->n_keys = keys ? keys->n : 0;
    dm_err_t rc = DM_OK;
    if (c->api_key_env || c->api_key_file) {
        rc =
            dm_sink_read_secret(c->api_key_env, c->api_key_file, s->secret, sizeof(s->secret), err);
        if (!rc && (s->auth_header = malloc(strlen(s->secret) + 32)))
            sprintf(s->auth_header, "Authorization: ApiKey %s", s->secret);
    } else {
        rc = dm_sink_read_secret(c->password_env, c->password_file, s->secret, sizeof(s->secret),
                                 err);
    }
    if (!rc && !(s->curl = curl_easy_init()))
        rc = dm_error_set(err, DM_ERR_NOMEM, "elasticsearch sink: cannot make an HTTP client");
    if (rc) {
        es_close(s);
        return dm_error_prefix(err, "elasticsearch sink");
    }
    *state = s;
    return DM_OK;
}

const dm_sink_ops_t dm_essink_ops = {.name = "elasticsearch",
                                     .config = &dm_essink_config_table,
                                     .config_size = sizeof(dm_essink_config_t),
                                     .open = es_open,
                                     .write = es_write,
                                     .close = es_close};
