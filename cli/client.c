/* cli/client.c — HTTP calls to the controller. */
#include "cli/client.h"

#include <ctype.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *client_token, *client_cacert;

void dm_client_set_token(const char *token)
{
    client_token = token && *token ? token : NULL;
}

void dm_client_set_cacert(const char *path)
{
    client_cacert = path && *path ? path : NULL;
}

const char *dm_client_server(const char *flag)
{
    if (flag && *flag) return flag;
    const char *env = getenv("DATAMESH_SERVER");
    return env && *env ? env : "http://127.0.0.1:8080";
}

static size_t on_data(char *p, size_t size, size_t n, void *ctx)
{
    return dm_buf_append(ctx, p, size * n) ? 0 : size * n;
}

void dm_client_escape(const char *s, char *out, size_t cap)
{
    size_t o = 0;
    for (; *s && o + 4 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~')
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, cap - o, "%%%02X", c);
    }
    out[o] = '\0';
}

/* Sends one request; the answer's body lands in resp whatever its status. */
static dm_err_t request(const char *server, const char *method, const char *path, const char *body,
                        size_t body_len, long *status, dm_buf_t *resp, dm_error_t *err)
{
    *status = 0;
    char url[4096];
    snprintf(url, sizeof(url), "%s%s", server, path);
    CURL *c = curl_easy_init();
    if (!c) return dm_error_set(err, DM_ERR_NOMEM, "cannot start an HTTP client");
    struct curl_slist *headers = NULL;
    if (body) headers = curl_slist_append(headers, "Content-Type: application/yaml");
    if (client_token) {
        char auth[512];
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", client_token);
        headers = curl_slist_append(headers, auth);
        memset(auth, 0, sizeof(auth));
    }
    if (client_cacert) curl_easy_setopt(c, CURLOPT_CAINFO, client_cacert);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, resp);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 5L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 300L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (headers) curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
    CURLcode cc = curl_easy_perform(c);
    dm_err_t rc = DM_OK;
    if (cc != CURLE_OK) {
        /* retriable: a controller restarting comes back (a worker waits for it) */
        rc = dm_error_set_retriable(
            err, cc == CURLE_OPERATION_TIMEDOUT ? DM_ERR_TIMEOUT : DM_ERR_IO,
            "cannot reach the controller at %s: %s%s", server, curl_easy_strerror(cc),
            cc == CURLE_COULDNT_CONNECT ? " (is `datamesh up` running?)" : "");
    } else {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    }
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);
    return rc;
}

/* An error answer's message (the API's error shape) as err. */
static dm_err_t answer_error(const char *method, const char *path, long status, const json_t *j,
                             dm_error_t *err)
{
    const char *msg = json_string_value(json_object_get(j, "message"));
    dm_err_t code = status == 401 || status == 403 ? DM_ERR_PERMISSION
                    : status == 404                ? DM_ERR_NOT_FOUND
                    : status == 409                ? DM_ERR_EXISTS
                    : status >= 500                ? DM_ERR_IO
                                                   : DM_ERR_INVALID;
    dm_error_set(err, code, "%s%s", msg ? msg : "request failed",
                 status == 401 && !client_token ? " (no token given: --token or $DATAMESH_TOKEN)"
                                                : "");
    if (err && (status >= 500 || status == 429)) err->retriable = true;
    (void)method;
    (void)path;
    return code;
}

dm_err_t dm_client_get_text(const char *server, const char *path, dm_buf_t *out, dm_error_t *err)
{
    long status;
    dm_err_t rc = request(server, "GET", path, NULL, 0, &status, out, err);
    if (rc || status < 300) return rc;
    json_t *j = out->len ? json_loadb((const char *)out->data, out->len, 0, NULL) : NULL;
    rc = answer_error("GET", path, status, j, err);
    json_decref(j);
    return rc;
}

dm_err_t dm_client_call(const char *server, const char *method, const char *path, const char *body,
                        size_t body_len, long *status, json_t **out, dm_error_t *err)
{
    *out = NULL;
    dm_buf_t resp = DM_BUF_INIT;
    dm_err_t rc = request(server, method, path, body, body_len, status, &resp, err);
    if (!rc) {
        json_error_t jerr;
        *out = resp.len ? json_loadb((const char *)resp.data, resp.len, 0, &jerr) : json_null();
        if (!*out) {
            rc = dm_error_set(err, DM_ERR_INVALID, "%s %s: HTTP %ld with a body that is not JSON",
                              method, path, *status);
        } else if (*status >= 300) {
            rc = answer_error(method, path, *status, *out, err);
            json_decref(*out);
            *out = NULL;
        }
    }
    dm_buf_free(&resp);
    return rc;
}
