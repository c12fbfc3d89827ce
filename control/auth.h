/* control/auth.h — who may do what: API tokens, roles, owners' authorization,
 * the audit log and the limit on failed authentication.
 *
 *   dm_auth_t *a = dm_auth_new(store, &(dm_auth_options_t){.enabled = true}, &err);
 *   dm_auth_attach(a, http, &err);   // after every route is added: each needs a rule
 *   dm_auth_bootstrap(a, data_dir, &err);  // first start: DATA/admin.token
 *
 * A token is `dmt_<id>_<secret>` (12 hex digits of public id, 64 of secret). The
 * store keeps its id, owner team, role, expiry and last use, and the SHA-256 of
 * the whole token — never the token. A request carries it as
 * `Authorization: Bearer TOKEN`, or as the password of HTTP basic auth (what
 * Confluent registry clients send with basic.auth.user.info). Checking looks
 * the row up by id and compares hashes in constant time.
 *
 * Every route the HTTP server has must have a rule in this module's table
 * (dm_auth_rules): dm_auth_attach refuses a server with an unruled route, and
 * the guard answers 500 for one it meets, so no endpoint is ever served
 * unguarded. Roles: viewers read; editors also change the objects their team
 * owns (and cannot hand one to another team); admins do everything, including
 * tokens and the audit log. The records of a source labelled `sensitive: true`
 * are for its owner team and admins. A pipeline may read another team's source
 * unless that source is labelled `access: private`.
 *
 * Without `enabled`, every request acts as an anonymous admin: nothing is
 * refused, and mutations are still audited.
 */
#ifndef DM_CONTROL_AUTH_H
#define DM_CONTROL_AUTH_H

#include <stdbool.h>
#include <stdint.h>

#include "control/http.h"
#include "control/store.h"
#include "core/error.h"

typedef enum {
    DM_ROLE_NONE = 0, /* no token (public endpoints only) */
    DM_ROLE_VIEWER = 1,
    DM_ROLE_EDITOR = 2,
    DM_ROLE_ADMIN = 3,
    DM_ROLE_WORKER = 4, /* `datamesh worker`: its team's pipelines' tasks, status reports and
                           the schema registry; nothing else (not a rank above admin) */
} dm_role_t;

/* "viewer", "editor", "admin", "worker" ("none" for DM_ROLE_NONE). */
const char *dm_role_name(dm_role_t role);

/* The role named text, or -1. */
int dm_role_parse(const char *text);

typedef enum {
    DM_ACCESS_PUBLIC,  /* anyone, without a token */
    DM_ACCESS_READ,    /* any valid token */
    DM_ACCESS_RECORDS, /* any valid token; a sensitive source's records: its team or admin */
    DM_ACCESS_WRITE,   /* an editor of the object's owner team, or an admin */
    DM_ACCESS_ADMIN,   /* admins only */
    DM_ACCESS_SQL,     /* a SQL script: any token reads; CREATE / DROP as WRITE on their pipeline */
    DM_ACCESS_WORKER,  /* workers (their team's pipelines) and admins */
} dm_access_t;

/* What a WRITE or RECORDS rule's object is, to find its owner. */
typedef enum {
    DM_SCOPE_NONE,
    DM_SCOPE_OBJECT,   /* path {kind}/{name} */
    DM_SCOPE_SOURCE,   /* path {name}, a source */
    DM_SCOPE_SUBJECT,  /* path {subject}: NAME-value / NAME-key belong to source NAME */
    DM_SCOPE_APPLY,    /* the spec documents in the body */
    DM_SCOPE_PIPELINE, /* path {name}, a pipeline */
} dm_scope_t;

typedef struct dm_auth_rule {
    const char *method, *pattern; /* exactly as the route is added */
    dm_access_t access;
    dm_scope_t scope;
    bool audit; /* every request of this endpoint goes to the audit log */
} dm_auth_rule_t;

/* The rule table (*n rules). */
const dm_auth_rule_t *dm_auth_rules(size_t *n);

/* The rule of a route, or NULL when it has none. */
const dm_auth_rule_t *dm_auth_rule(const char *method, const char *pattern);

/* Who sent a request (the guard puts one in dm_http_request_t.principal). */
typedef struct dm_principal {
    char token[32]; /* the token's id; "-" without a token */
    char owner[64]; /* its team; "-" without a token */
    dm_role_t role;
    char remote[64];  /* the client's address */
    char detail[256]; /* what the request does, in words, for the audit log */
    bool audit;       /* log this request even though its rule does not ask */
} dm_principal_t;

typedef struct dm_auth dm_auth_t;

typedef struct dm_auth_options {
    bool enabled;          /* require tokens (datamesh up --auth) */
    unsigned max_failures; /* failed authentications per client address and window
                              before it gets 429 for the rest of the window; 0 = 10 */
    unsigned window_s;     /* 0 = 60 */
} dm_auth_options_t;

/* Creates the access control over store (which must outlive it). NULL with err
 * set when out of memory or without a source of randomness. */
dm_auth_t *dm_auth_new(dm_store_t *store, const dm_auth_options_t *opt, dm_error_t *err);

/* Frees it (after the HTTP server that uses it). */
void dm_auth_free(dm_auth_t *a);

/* Whether tokens are required. */
bool dm_auth_enabled(const dm_auth_t *a);

/* Installs the guard on http. DM_ERR_INTERNAL naming the first route that has
 * no rule. Call after every route is added, before the server starts. */
dm_err_t dm_auth_attach(dm_auth_t *a, dm_http_server_t *http, dm_error_t *err);

/* With auth enabled and no usable (unrevoked, unexpired) admin token in the
 * store — the first start, or every admin token revoked or expired: creates an
 * admin token and writes it to DATA_DIR/admin.token (mode 0600), logging the
 * path, never the token. Otherwise does nothing. Whoever can read the data
 * directory can change the store anyway, so this gives no one more power. */
dm_err_t dm_auth_bootstrap(dm_auth_t *a, const char *data_dir, dm_error_t *err);

/* The UI's browser sessions (control/session.h); owned by a. */
struct dm_sessions;
struct dm_sessions *dm_auth_sessions(dm_auth_t *a);

/* The UI's session routes (control/api_session.c): POST/GET/DELETE
 * /api/v1/session. dm_auth_api_register adds them. */
dm_err_t dm_auth_session_api_register(dm_http_server_t *http, dm_auth_t *a);

/* A token the controller uses for its own calls to its API (the kafka sink's
 * schema registry calls); admin, kept in memory only, valid until exit. */
const char *dm_auth_internal_token(const dm_auth_t *a);

/* Creates a token for team owner with role, expiring at expires_ms (0: never).
 * Writes the token (the only time it exists in full) to token (cap ≥ 96) and
 * its stored row to row. DM_ERR_INVALID for a bad team name or role. */
dm_err_t dm_auth_token_create(dm_auth_t *a, const char *owner, dm_role_t role, int64_t expires_ms,
                              const char *description, char *token, size_t cap,
                              dm_store_token_t *row, dm_error_t *err);

/* Checks an Authorization header value. DM_OK fills out (token, owner, role);
 * DM_ERR_NOT_FOUND when there is no header; DM_ERR_PERMISSION for a malformed,
 * unknown, wrong, expired or revoked token, with the reason (never the token). */
dm_err_t dm_auth_authenticate(dm_auth_t *a, const char *authorization, dm_principal_t *out,
                              dm_error_t *err);

/* Compares n bytes in time that depends on n only, not on where they differ. */
bool dm_auth_equal(const void *a, const void *b, size_t n);

/* Parses a duration "30d", "12h", "15m", "90s" (or plain seconds) into
 * milliseconds; -1 when it is not one (or ≤ 0). */
int64_t dm_auth_parse_duration(const char *text);

/* The token and audit routes (control/api_auth.c): POST/GET /api/v1/tokens,
 * DELETE /api/v1/tokens/{id}, GET /api/v1/audit, GET /api/v1/whoami. Add them
 * before the /api/v1/{kind} routes. */
dm_err_t dm_auth_api_register(dm_http_server_t *http, dm_auth_t *a, dm_store_t *store);

/* Moves the audit log to the internal topic _datamesh.audit of t
 * (control/audit.h): a thread of its own opens (or makes) the topic, which a
 * Kafka cluster may take a while to do, then moves the entries the store took
 * until then into it; from then on entries go to the topic. If the topic
 * cannot be made, the log stays in the store (a warning says why). t must
 * outlive a. Call once, before serving. */
struct dm_transport;
dm_err_t dm_auth_audit_to(dm_auth_t *a, struct dm_transport *t, dm_error_t *err);

/* The newest audit entries matching f, oldest first (the topic's, or the
 * store's when there is no topic): see dm_store_audit_query. */
dm_err_t dm_auth_audit_query(dm_auth_t *a, const dm_store_audit_filter_t *f, json_t **out,
                             dm_error_t *err);

#endif
