/* cli/client.h — the CLI's HTTP client for the controller API (libcurl). */
#ifndef DM_CLI_CLIENT_H
#define DM_CLI_CLIENT_H

#include <jansson.h>

#include "core/buf.h"
#include "core/error.h"

/* The controller URL: flag if given, else $DATAMESH_SERVER, else
 * http://127.0.0.1:8080. */
const char *dm_client_server(const char *flag);

/* The API token every call sends (Authorization: Bearer), or NULL for none;
 * the string must outlive the calls. dm_cli_main sets it from --token, else
 * $DATAMESH_TOKEN. */
void dm_client_set_token(const char *token);

/* A CA certificate file (PEM) to trust for https:// servers besides the
 * system's, or NULL. dm_cli_main sets it from --cacert, else $DATAMESH_CACERT. */
void dm_client_set_cacert(const char *path);

/* Sends one request and parses the JSON answer into *out (new reference).
 * *status gets the HTTP status. A non-2xx answer with the API's error shape
 * becomes an error with the server's message (401 and 403: DM_ERR_PERMISSION);
 * a connection failure names the server and says whether it is running. */
dm_err_t dm_client_call(const char *server, const char *method, const char *path, const char *body,
                        size_t body_len, long *status, json_t **out, dm_error_t *err);

/* GETs path and appends the answer's body, whatever its type (a rules
 * file is YAML), to out; a non-2xx answer is an error as dm_client_call's. */
dm_err_t dm_client_get_text(const char *server, const char *path, dm_buf_t *out, dm_error_t *err);

/* URL-escapes s into out. */
void dm_client_escape(const char *s, char *out, size_t cap);

#endif
