/* control/auth.c — tokens, the rule table, the guard around every request,
 * the audit log and the limit on failed authentication (see auth.h). */
#include "control/auth.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "control/api.h"
#include "control/audit.h"
#include "control/reconcile.h"
#include "control/session.h"
#include "control/yaml.h"
#include "core/clock.h"
#include "core/hex.h"
#include "core/log.h"
#include "sql/sql.h"

/* ---- the rule table -----------------------------------------------------------
 * One line per route the controller serves. A route added without a line here
 * stops the controller at start (dm_auth_attach) and is answered 500 by the
 * guard, so a new endpoint cannot be served before someone decides who may
 * call it. tests/unit/test_control_auth.c checks every line against every role. */

static const dm_auth_rule_t rules[] = {
    /* controller.c */
    {"GET", "/healthz", DM_ACCESS_PUBLIC, DM_SCOPE_NONE, false},
    {"GET", "/metrics", DM_ACCESS_READ, DM_SCOPE_NONE, false},
    /* api_auth.c */
    {"POST", "/api/v1/tokens", DM_ACCESS_ADMIN, DM_SCOPE_NONE, true},
    {"GET", "/api/v1/tokens", DM_ACCESS_ADMIN, DM_SCOPE_NONE, false},
    {"DELETE", "/api/v1/tokens/{id}", DM_ACCESS_ADMIN, DM_SCOPE_NONE, true},
    {"GET", "/api/v1/audit", DM_ACCESS_ADMIN, DM_SCOPE_NONE, false},
    {"GET", "/api/v1/whoami", DM_ACCESS_READ, DM_SCOPE_NONE, false},
    /* api_workers.c: the tasks carry whole plans, sink settings included */
    {"GET", "/api/v1/workers/tasks", DM_ACCESS_WORKER, DM_SCOPE_NONE, false},
    {"POST", "/api/v1/workers/{id}/status", DM_ACCESS_WORKER, DM_SCOPE_NONE, false},
    {"GET", "/api/v1/workers", DM_ACCESS_READ, DM_SCOPE_NONE, false},
    /* api_data.c */
    {"GET", "/api/v1/sources/{name}/records", DM_ACCESS_RECORDS, DM_SCOPE_SOURCE, false},
    {"POST", "/api/v1/sources/{name}/snapshot", DM_ACCESS_WRITE, DM_SCOPE_SOURCE, true},
    {"POST", "/api/v1/sources/{name}/events", DM_ACCESS_WRITE, DM_SCOPE_SOURCE, true},
    {"GET", "/api/v1/sources/{name}/partitions", DM_ACCESS_READ, DM_SCOPE_NONE, false},
    /* records of the pipeline's inputs: the handler applies the sensitive-source rule */
    {"GET", "/api/v1/pipelines/{name}/deadletters", DM_ACCESS_READ, DM_SCOPE_NONE, false},
    /* the last hour of a pipeline's numbers (control/history.c), as /metrics */
    {"GET", "/api/v1/pipelines/{name}/history", DM_ACCESS_READ, DM_SCOPE_NONE, false},
    /* dead letters put back into the pipeline (control/api_replay.c): its owner's editor */
    {"POST", "/api/v1/pipelines/{name}/deadletters/replay", DM_ACCESS_WRITE, DM_SCOPE_PIPELINE,
     true},
    {"POST", "/api/v1/sources/{name}/events/avro", DM_ACCESS_WRITE, DM_SCOPE_SOURCE, true},
    /* a cockroachdb source's changefeed webhook (its token: the source owner's editor) */
    {"POST", "/api/v1/sources/{name}/changefeed", DM_ACCESS_WRITE, DM_SCOPE_SOURCE, true},
    /* api.c */
    {"POST", "/api/v1/apply", DM_ACCESS_WRITE, DM_SCOPE_APPLY, true},
    {"GET", "/api/v1/catalog", DM_ACCESS_READ, DM_SCOPE_NONE, false},
    {"GET", "/api/v1/{kind}", DM_ACCESS_READ, DM_SCOPE_NONE, false},
    {"GET", "/api/v1/{kind}/{name}", DM_ACCESS_READ, DM_SCOPE_NONE, false},
    {"GET", "/api/v1/{kind}/{name}/status", DM_ACCESS_READ, DM_SCOPE_NONE, false},
    {"DELETE", "/api/v1/{kind}/{name}", DM_ACCESS_WRITE, DM_SCOPE_OBJECT, true},
    /* plans (control/api_plan.c): compiled dry, nothing changes */
    {"GET", "/api/v1/pipelines/{name}/plan", DM_ACCESS_READ, DM_SCOPE_NONE, false},
    {"POST", "/api/v1/plan", DM_ACCESS_READ, DM_SCOPE_NONE, false},
    /* lineage (control/api_lineage.c): names of sources, fields and pipelines, as the catalog */
    {"GET", "/api/v1/lineage", DM_ACCESS_READ, DM_SCOPE_NONE, false},
    /* schema changes met by pipelines (control/api.c) */
    {"GET", "/api/v1/schema-changes", DM_ACCESS_READ, DM_SCOPE_NONE, false},
    {"POST", "/api/v1/sources/{name}/schema-plan", DM_ACCESS_READ, DM_SCOPE_NONE, false},
    /* plugins (control/plugins.c) */
    {"GET", "/api/v1/plugins", DM_ACCESS_READ, DM_SCOPE_NONE, false},
    /* SQL (control/api_sql.c): EXPLAIN, SHOW, DESCRIBE any token; CREATE, DROP the owner's editor
     */
    {"POST", "/api/v1/sql", DM_ACCESS_SQL, DM_SCOPE_NONE, true},
    /* alerts and dashboards (control/api_alerts.c): names, thresholds and metric values */
    {"GET", "/api/v1/alerts/rules", DM_ACCESS_READ, DM_SCOPE_NONE, false},
    {"GET", "/api/v1/alerts", DM_ACCESS_READ, DM_SCOPE_NONE, false},
    {"GET", "/api/v1/pipelines/{name}/dashboard", DM_ACCESS_READ, DM_SCOPE_NONE, false},
    /* registry_api.c: the Confluent-compatible schema registry */
    {"GET", "/subjects", DM_ACCESS_READ, DM_SCOPE_NONE, false},
    {"GET", "/subjects/{subject}/versions", DM_ACCESS_READ, DM_SCOPE_NONE, false},
    {"POST", "/subjects/{subject}/versions", DM_ACCESS_WRITE, DM_SCOPE_SUBJECT, true},
    {"GET", "/subjects/{subject}/versions/{version}", DM_ACCESS_READ, DM_SCOPE_NONE, false},
    {"DELETE", "/subjects/{subject}/versions/{version}", DM_ACCESS_WRITE, DM_SCOPE_SUBJECT, true},
    {"GET", "/subjects/{subject}/versions/{version}/schema", DM_ACCESS_READ, DM_SCOPE_NONE, false},
    {"POST", "/subjects/{subject}", DM_ACCESS_READ, DM_SCOPE_NONE, false}, /* lookup */
    {"DELETE", "/subjects/{subject}", DM_ACCESS_WRITE, DM_SCOPE_SUBJECT, true},
    {"GET", "/schemas/ids/{id}", DM_ACCESS_READ, DM_SCOPE_NONE, false},
    {"POST", "/compatibility/subjects/{subject}/versions", DM_ACCESS_READ, DM_SCOPE_NONE, false},
    {"POST", "/compatibility/subjects/{subject}/versions/{version}", DM_ACCESS_READ, DM_SCOPE_NONE,
     false},
    {"GET", "/config", DM_ACCESS_READ, DM_SCOPE_NONE, false},
    {"PUT", "/config", DM_ACCESS_ADMIN, DM_SCOPE_NONE, true},
    {"GET", "/config/{subject}", DM_ACCESS_READ, DM_SCOPE_NONE, false},
    {"PUT", "/config/{subject}", DM_ACCESS_WRITE, DM_SCOPE_SUBJECT, true},
    {"GET", "/mode", DM_ACCESS_READ, DM_SCOPE_NONE, false},
    {"PUT", "/mode", DM_ACCESS_ADMIN, DM_SCOPE_NONE, true},
    /* the web UI (control/ui.c): its pages and assets hold no data; the data
     * they show comes from the endpoints above, under their own rules */
    {"GET", "/", DM_ACCESS_PUBLIC, DM_SCOPE_NONE, false},
    {"GET", "/ui/{file}", DM_ACCESS_PUBLIC, DM_SCOPE_NONE, false},
    {"GET", "/catalog", DM_ACCESS_PUBLIC, DM_SCOPE_NONE, false},
    {"GET", "/sources/{name}", DM_ACCESS_PUBLIC, DM_SCOPE_NONE, false},
    {"GET", "/pipelines", DM_ACCESS_PUBLIC, DM_SCOPE_NONE, false},
    {"GET", "/pipelines/{name}", DM_ACCESS_PUBLIC, DM_SCOPE_NONE, false},
    {"GET", "/lineage", DM_ACCESS_PUBLIC, DM_SCOPE_NONE, false},
    {"GET", "/registry", DM_ACCESS_PUBLIC, DM_SCOPE_NONE, false},
    {"GET", "/editor", DM_ACCESS_PUBLIC, DM_SCOPE_NONE, false},
    {"GET", "/signin", DM_ACCESS_PUBLIC, DM_SCOPE_NONE, false},
    {"GET", "/sql", DM_ACCESS_PUBLIC, DM_SCOPE_NONE, false},
    /* the UI's sessions (control/api_session.c): signing in takes a token in
     * the Authorization header; signing out needs only the cookie (and CSRF) */
    {"POST", "/api/v1/session", DM_ACCESS_READ, DM_SCOPE_NONE, true},
    {"GET", "/api/v1/session", DM_ACCESS_READ, DM_SCOPE_NONE, false},
    {"DELETE", "/api/v1/session", DM_ACCESS_PUBLIC, DM_SCOPE_NONE, true},
};

const dm_auth_rule_t *dm_auth_rules(size_t *n)
{
    *n = sizeof(rules) / sizeof(rules[0]);
    return rules;
}

const dm_auth_rule_t *dm_auth_rule(const char *method, const char *pattern)
{
    if (!method || !pattern) return NULL;
    for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++)
        if (!strcmp(rules[i].method, method) && !strcmp(rules[i].pattern, pattern))
            return &rules[i];
    return NULL;
}

const char *dm_role_name(dm_role_t role)
{
    switch (role) {
    case DM_ROLE_VIEWER: return "viewer";
    case DM_ROLE_EDITOR: return "editor";
    case DM_ROLE_ADMIN: return "admin";
    case DM_ROLE_WORKER: return "worker";
    default: return "none";
    }
}

int dm_role_parse(const char *text)
{
    if (!text) return -1;
    for (int r = DM_ROLE_VIEWER; r <= DM_ROLE_WORKER; r++)
        if (!strcmp(text, dm_role_name((dm_role_t)r))) return r;
    return -1;
}

/* ---- tokens ---------------------------------------------------------------- */

#define TOKEN_PREFIX     "dmt_"
#define TOKEN_ID_HEX     12
#define TOKEN_SECRET_HEX 64
#define TOKEN_LEN        (4 + TOKEN_ID_HEX + 1 + TOKEN_SECRET_HEX)
#define TOUCH_EVERY_MS   60000 /* last use is written at most once a minute per token */

/* Failed authentications of one client address in the current window. */
typedef struct fail_slot {
    char addr[64];
    uint64_t window_start_ns;
    unsigned fails;
} fail_slot_t;

#define FAIL_SLOTS 256

struct dm_auth {
    dm_store_t *store;
    dm_auth_options_t opt;
    char internal_token[TOKEN_LEN + 1];
    char internal_id[TOKEN_ID_HEX + 1];
    char internal_hash[65];
    pthread_mutex_t mu; /* guards fails */
    fail_slot_t fails[FAIL_SLOTS];
    dm_sessions_t *sessions; /* the UI's signed-in browsers */
    /* The audit topic (dm_auth_audit_to), opened by a thread of its own (a
     * Kafka cluster may take its time); until then, or if it cannot be made,
     * the store's table. audit_mu orders writes and the switch. */
    pthread_mutex_t audit_mu;
    dm_audit_t *audit;
    pthread_t audit_th;
    bool audit_started;
    dm_transport_t *audit_t;
};

bool dm_auth_equal(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}

/* Hex SHA-256 of text into out[65]. */
static bool sha256_hex(const char *text, size_t len, char *out)
{
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    if (!EVP_Digest(text, len, md, &n, EVP_sha256(), NULL) || n != 32) return false;
    dm_hex_encode(md, 32, out);
    return true;
}

static bool random_hex(char *out, size_t hex_digits)
{
    uint8_t b[64];
    if (hex_digits / 2 > sizeof(b) || RAND_bytes(b, (int)(hex_digits / 2)) != 1) return false;
    dm_hex_encode(b, hex_digits / 2, out);
    OPENSSL_cleanse(b, sizeof(b));
    return true;
}

/* A new token in out[TOKEN_LEN + 1], its id in id[TOKEN_ID_HEX + 1], its hash in hash[65]. */
static bool make_token(char *out, char *id, char *hash)
{
    char secret[TOKEN_SECRET_HEX + 1];
    if (!random_hex(id, TOKEN_ID_HEX) || !random_hex(secret, TOKEN_SECRET_HEX)) return false;
    snprintf(out, TOKEN_LEN + 1, TOKEN_PREFIX "%s_%s", id, secret);
    OPENSSL_cleanse(secret, sizeof(secret));
    return sha256_hex(out, TOKEN_LEN, hash);
}

static bool all_hex(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)p[i]) || isupper((unsigned char)p[i])) return false;
    return true;
}

dm_auth_t *dm_auth_new(dm_store_t *store, const dm_auth_options_t *opt, dm_error_t *err)
{
    dm_auth_t *a = calloc(1, sizeof(*a));
    if (!a) {
        dm_error_set(err, DM_ERR_NOMEM, "auth: out of memory");
        return NULL;
    }
    a->store = store;
    a->opt = *opt;
    if (!a->opt.max_failures) a->opt.max_failures = 10;
    if (!a->opt.window_s) a->opt.window_s = 60;
    pthread_mutex_init(&a->mu, NULL);
    pthread_mutex_init(&a->audit_mu, NULL);
    a->sessions = dm_sessions_new();
    if (!a->sessions) {
        dm_error_set(err, DM_ERR_NOMEM, "auth: out of memory");
        dm_auth_free(a);
        return NULL;
    }
    if (store) dm_sessions_keep_in(a->sessions, store, dm_wall_ms()); /* survive a restart */
    if (!make_token(a->internal_token, a->internal_id, a->internal_hash)) {
        dm_error_set(err, DM_ERR_INTERNAL, "auth: no randomness to make tokens from");
        dm_auth_free(a);
        return NULL;
    }
    return a;
}

void dm_auth_free(dm_auth_t *a)
{
    if (!a) return;
    OPENSSL_cleanse(a->internal_token, sizeof(a->internal_token));
    dm_sessions_free(a->sessions);
    if (a->audit_started) pthread_join(a->audit_th, NULL);
    dm_audit_free(a->audit);
    pthread_mutex_destroy(&a->audit_mu);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

/* Opens the audit topic, then switches the log to it, moving what the store
 * took meanwhile (under audit_mu: no entry is written between the two). */
static void *audit_open_main(void *arg)
{
    dm_auth_t *a = arg;
    dm_audit_t *audit;
    dm_error_t err = {0};
    if (dm_audit_open(a->audit_t, NULL, &audit, &err)) {
        DM_WARN("auth", "audit log kept in the controller store: %s", err.message);
        return NULL;
    }
    pthread_mutex_lock(&a->audit_mu);
    if (dm_audit_move_from_store(audit, a->store, &err))
        DM_WARN("auth", "audit: %s (those entries stay in the controller store)", err.message);
    a->audit = audit;
    pthread_mutex_unlock(&a->audit_mu);
    DM_INFO("auth", "topic=%s: audit log", DM_AUDIT_TOPIC);
    return NULL;
}

dm_err_t dm_auth_audit_to(dm_auth_t *a, dm_transport_t *t, dm_error_t *err)
{
    if (a->audit_started) return dm_error_set(err, DM_ERR_INVALID, "audit: already started");
    a->audit_t = t;
    if (pthread_create(&a->audit_th, NULL, audit_open_main, a))
        return dm_error_set(err, DM_ERR_NOMEM, "audit: cannot start a thread");
    a->audit_started = true;
    return DM_OK;
}

dm_err_t dm_auth_audit_query(dm_auth_t *a, const dm_store_audit_filter_t *f, json_t **out,
                             dm_error_t *err)
{
    pthread_mutex_lock(&a->audit_mu);
    dm_err_t rc = a->audit ? dm_audit_query(a->audit, f, out, err)
                           : dm_store_audit_query(a->store, f, out, err);
    pthread_mutex_unlock(&a->audit_mu);
    return rc;
}

bool dm_auth_enabled(const dm_auth_t *a)
{
    return a->opt.enabled;
}

dm_sessions_t *dm_auth_sessions(dm_auth_t *a)
{
    return a->sessions;
}

const char *dm_auth_internal_token(const dm_auth_t *a)
{
    return a->internal_token;
}

dm_err_t dm_auth_token_create(dm_auth_t *a, const char *owner, dm_role_t role, int64_t expires_ms,
                              const char *description, char *token, size_t cap,
                              dm_store_token_t *row, dm_error_t *err)
{
    if (!owner || !dm_spec_name_valid(owner))
        return dm_error_set(err, DM_ERR_INVALID,
                            "owner '%s' is not a team name (1-63 characters of a-z, 0-9, '-', "
                            "'_', '.')",
                            owner ? owner : "");
    if (role < DM_ROLE_VIEWER || role > DM_ROLE_WORKER)
        return dm_error_set(err, DM_ERR_INVALID, "role must be viewer, editor, admin or worker");
    if (cap < TOKEN_LEN + 1) return dm_error_set(err, DM_ERR_INVALID, "token buffer too small");
    if (description && strlen(description) >= sizeof(row->description))
        return dm_error_set(err, DM_ERR_INVALID, "description longer than %zu characters",
                            sizeof(row->description) - 1);
    memset(row, 0, sizeof(*row));
    if (!make_token(token, row->id, row->hash))
        return dm_error_set(err, DM_ERR_INTERNAL, "auth: no randomness to make tokens from");
    snprintf(row->owner, sizeof(row->owner), "%s", owner);
    snprintf(row->role, sizeof(row->role), "%s", dm_role_name(role));
    snprintf(row->description, sizeof(row->description), "%s", description ? description : "");
    row->created_ms = dm_wall_ms();
    row->expires_ms = expires_ms;
    dm_err_t rc = dm_store_token_put(a->store, row, err);
    if (rc) OPENSSL_cleanse(token, cap);
    return rc;
}

/* The token inside an Authorization header value (Bearer, or Basic with the
 * token as password) into out; false with the reason in err. */
static bool token_of(const char *h, char *out, size_t cap, dm_error_t *err)
{
    while (*h == ' ')
        h++;
    if (!strncasecmp(h, "Bearer ", 7)) {
        h += 7;
        while (*h == ' ')
            h++;
        size_t n = strlen(h);
        while (n && h[n - 1] == ' ')
            n--;
        if (n >= cap) n = cap - 1; /* too long to be a token: fails the format check */
        memcpy(out, h, n);
        out[n] = '\0';
        return true;
    }
    if (!strncasecmp(h, "Basic ", 6)) {
        h += 6;
        while (*h == ' ')
            h++;
        size_t n = strlen(h);
        uint8_t dec[512];
        if (n == 0 || n % 4 || n > 4 * (sizeof(dec) - 1) / 3) {
            dm_error_set(err, DM_ERR_PERMISSION, "basic auth: credentials are not base64");
            return false;
        }
        int len = EVP_DecodeBlock(dec, (const uint8_t *)h, (int)n);
        if (len < 0) {
            dm_error_set(err, DM_ERR_PERMISSION, "basic auth: credentials are not base64");
            return false;
        }
        while (len > 0 && h[n - 1] == '=' && dec[len - 1] == 0) { /* padding decodes to NULs */
            len--;
            n--;
        }
        const uint8_t *colon = memchr(dec, ':', (size_t)len);
        if (!colon) {
            OPENSSL_cleanse(dec, sizeof(dec));
            dm_error_set(err, DM_ERR_PERMISSION,
                         "basic auth: expected USER:TOKEN (the token is the password)");
            return false;
        }
        size_t tn = (size_t)len - (size_t)(colon + 1 - dec);
        if (tn >= cap) tn = cap - 1;
        memcpy(out, colon + 1, tn);
        out[tn] = '\0';
        OPENSSL_cleanse(dec, sizeof(dec));
        return true;
    }
    dm_error_set(err, DM_ERR_PERMISSION,
                 "unsupported Authorization scheme: send 'Bearer TOKEN' (or basic auth with the "
                 "token as password)");
    return false;
}

dm_err_t dm_auth_authenticate(dm_auth_t *a, const char *authorization, dm_principal_t *out,
                              dm_error_t *err)
{
    if (!authorization || !*authorization)
        return dm_error_set(err, DM_ERR_NOT_FOUND,
                            "authentication required: send Authorization: Bearer TOKEN "
                            "(datamesh --token TOKEN or $DATAMESH_TOKEN)");
    char token[TOKEN_LEN + 2];
    if (!token_of(authorization, token, sizeof(token), err)) return DM_ERR_PERMISSION;
    dm_err_t rc = DM_OK;
    char hash[65], id[TOKEN_ID_HEX + 1];
    size_t n = strlen(token);
    if (n != TOKEN_LEN || strncmp(token, TOKEN_PREFIX, 4) || token[4 + TOKEN_ID_HEX] != '_' ||
        !all_hex(token + 4, TOKEN_ID_HEX) || !all_hex(token + 5 + TOKEN_ID_HEX, TOKEN_SECRET_HEX)) {
        OPENSSL_cleanse(token, sizeof(token));
        return dm_error_set(err, DM_ERR_PERMISSION,
                            "malformed token (expected dmt_ID_SECRET, as `datamesh token create` "
                            "prints)");
    }
    memcpy(id, token + 4, TOKEN_ID_HEX);
    id[TOKEN_ID_HEX] = '\0';
    bool hashed = sha256_hex(token, n, hash);
    OPENSSL_cleanse(token, sizeof(token));
    if (!hashed) return dm_error_set(err, DM_ERR_INTERNAL, "auth: cannot hash the token");

    /* out is filled only on success: a refused request stays "-" in the audit log. */
    if (!strcmp(id, a->internal_id)) {
        if (!dm_auth_equal(hash, a->internal_hash, 64))
            return dm_error_set(err, DM_ERR_PERMISSION, "unknown or invalid token");
        snprintf(out->token, sizeof(out->token), "internal");
        snprintf(out->owner, sizeof(out->owner), "datamesh");
        out->role = DM_ROLE_ADMIN;
        return DM_OK;
    }
    dm_store_token_t row;
    dm_error_t serr = {0};
    rc = dm_store_token_get(a->store, id, &row, &serr);
    if (rc == DM_ERR_NOT_FOUND) {
        /* Same work and the same answer as a wrong secret: an id alone tells nothing. */
        memset(&row, 0, sizeof(row));
        memset(row.hash, '0', 64);
    } else if (rc) {
        return dm_error_set(err, DM_ERR_INTERNAL, "auth: %s", serr.message);
    }
    if (!dm_auth_equal(hash, row.hash, 64) || rc)
        return dm_error_set(err, DM_ERR_PERMISSION, "unknown or invalid token");
    int64_t now = dm_wall_ms();
    if (row.revoked_ms) return dm_error_set(err, DM_ERR_PERMISSION, "token %s was revoked", row.id);
    if (row.expires_ms && now >= row.expires_ms)
        return dm_error_set(err, DM_ERR_PERMISSION, "token %s expired", row.id);
    int role = dm_role_parse(row.role);
    if (role < 0)
        return dm_error_set(err, DM_ERR_PERMISSION, "token %s has no valid role ('%s')", row.id,
                            row.role);
    if (now - row.last_used_ms >= TOUCH_EVERY_MS) dm_store_token_touch(a->store, row.id, now, NULL);
    snprintf(out->token, sizeof(out->token), "%s", row.id);
    snprintf(out->owner, sizeof(out->owner), "%s", row.owner);
    out->role = (dm_role_t)role;
    return DM_OK;
}

int64_t dm_auth_parse_duration(const char *text)
{
    if (!text || !*text) return -1;
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || end == text || v <= 0) return -1;
    long long unit = 1000;
    if (!strcmp(end, "d"))
        unit = 86400000LL;
    else if (!strcmp(end, "h"))
        unit = 3600000LL;
    else if (!strcmp(end, "m"))
        unit = 60000LL;
    else if (*end && strcmp(end, "s"))
        return -1;
    if (v > INT64_MAX / unit) return -1;
    return (int64_t)(v * unit);
}

/* ---- first start ------------------------------------------------------------ */

dm_err_t dm_auth_bootstrap(dm_auth_t *a, const char *data_dir, dm_error_t *err)
{
    if (!a->opt.enabled) return DM_OK;
    int64_t n = 0, admins = 0;
    dm_err_t rc = dm_store_token_count(a->store, NULL, dm_wall_ms(), &n, err);
    if (!rc) rc = dm_store_token_count(a->store, "admin", dm_wall_ms(), &admins, err);
    if (rc) return rc;
    if (admins > 0) {
        DM_INFO("auth", "tokens=%lld admins=%lld: authentication on", (long long)n,
                (long long)admins);
        return DM_OK;
    }
    char path[4200], token[TOKEN_LEN + 1];
    snprintf(path, sizeof(path), "%s/admin.token", data_dir);
    /* The file first: a token nobody can read would lock everyone out. */
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return dm_error_set(err, DM_ERR_IO, "auth: cannot write %s: %s", path, strerror(errno));
    dm_store_token_t row;
    if (fchmod(fd, 0600) ||
        (rc = dm_auth_token_create(a, "admin", DM_ROLE_ADMIN, 0, "first admin (datamesh up --auth)",
                                   token, sizeof(token), &row, err))) {
        if (!rc) rc = dm_error_set(err, DM_ERR_IO, "auth: chmod %s: %s", path, strerror(errno));
        close(fd);
        unlink(path);
        return rc;
    }
    char line[TOKEN_LEN + 2];
    int len = snprintf(line, sizeof(line), "%s\n", token);
    bool ok = write(fd, line, (size_t)len) == len && fsync(fd) == 0;
    OPENSSL_cleanse(token, sizeof(token));
    OPENSSL_cleanse(line, sizeof(line));
    if (close(fd) || !ok) {
        dm_store_token_revoke(a->store, row.id, dm_wall_ms(), NULL);
        unlink(path);
        return dm_error_set(err, DM_ERR_IO, "auth: cannot write %s", path);
    }
    DM_INFO("auth",
            "token=%s owner=admin role=admin: no token existed; wrote the first admin "
            "token to %s (mode 0600)",
            row.id, path);
    return DM_OK;
}

/* ---- rate limit on failed authentication ----------------------------------- */

/* The slot of addr (a free or the oldest one when it has none). Lock held. */
static fail_slot_t *slot_of(dm_auth_t *a, const char *addr, bool create)
{
    uint64_t h = 1469598103934665603ull;
    for (const char *p = addr; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    fail_slot_t *oldest = NULL;
    for (unsigned i = 0; i < 8; i++) {
        fail_slot_t *s = &a->fails[(h + i) % FAIL_SLOTS];
        if (!strcmp(s->addr, addr)) return s;
        if (!oldest || s->window_start_ns < oldest->window_start_ns) oldest = s;
    }
    if (!create) return NULL;
    memset(oldest, 0, sizeof(*oldest));
    snprintf(oldest->addr, sizeof(oldest->addr), "%s", addr);
    return oldest;
}

/* Seconds addr must wait before it may try again (0: it may now). */
static int blocked_for(dm_auth_t *a, const char *addr)
{
    uint64_t now = dm_now_ns(), window = (uint64_t)a->opt.window_s * 1000000000ull;
    pthread_mutex_lock(&a->mu);
    fail_slot_t *s = slot_of(a, addr, false);
    int wait = 0;
    if (s && s->fails >= a->opt.max_failures && now - s->window_start_ns < window)
        wait = (int)((window - (now - s->window_start_ns)) / 1000000000ull) + 1;
    pthread_mutex_unlock(&a->mu);
    return wait;
}

static void note_failure(dm_auth_t *a, const char *addr)
{
    uint64_t now = dm_now_ns(), window = (uint64_t)a->opt.window_s * 1000000000ull;
    pthread_mutex_lock(&a->mu);
    fail_slot_t *s = slot_of(a, addr, true);
    if (!s->window_start_ns || now - s->window_start_ns >= window) {
        s->window_start_ns = now;
        s->fails = 0;
    }
    s->fails++;
    pthread_mutex_unlock(&a->mu);
}

/* ---- the guard ---------------------------------------------------------------- */

/* A request of the UI signed in with session cookie sid: it acts as the token
 * the session opened with, as long as that token is still valid. DM_ERR_NOT_FOUND
 * when the session does not exist (ended, signed out, the controller restarted):
 * that is no credentials, not a failed guess. *csrf_bad when the request changes
 * something without the session's X-CSRF-Token. */
static dm_err_t authenticate_session(dm_auth_t *a, const dm_http_request_t *req, const char *sid,
                                     dm_principal_t *out, bool *csrf_bad, dm_error_t *err)
{
    dm_session_info_t s;
    int64_t now = dm_wall_ms();
    if (!dm_sessions_find(a->sessions, sid, now, &s))
        return dm_error_set(err, DM_ERR_NOT_FOUND,
                            "session ended (signed out, expired or the controller restarted): "
                            "sign in again");
    dm_store_token_t row;
    dm_error_t serr = {0};
    dm_err_t rc = dm_store_token_get(a->store, s.token, &row, &serr);
    if (rc && rc != DM_ERR_NOT_FOUND)
        return dm_error_set(err, DM_ERR_INTERNAL, "auth: %s", serr.message);
    int role = rc ? -1 : dm_role_parse(row.role);
    if (rc || row.revoked_ms || (row.expires_ms && now >= row.expires_ms) || role < 0) {
        dm_sessions_close(a->sessions, sid);
        return dm_error_set(err, DM_ERR_NOT_FOUND,
                            "session ended: its token %s was revoked or expired; sign in again",
                            s.token);
    }
    snprintf(out->token, sizeof(out->token), "%s", row.id);
    snprintf(out->owner, sizeof(out->owner), "%s", row.owner);
    out->role = (dm_role_t)role;
    *csrf_bad = strcmp(req->method, "GET") && strcmp(req->method, "HEAD") &&
                !dm_sessions_csrf_ok(&s, dm_http_header(req, DM_SESSION_HEADER));
    return DM_OK;
}

/* metadata.owner of a document, or NULL. */
static const char *owner_of(const json_t *doc)
{
    return json_string_value(json_object_get(json_object_get(doc, "metadata"), "owner"));
}

/* A label's value as text ("true" for a boolean true), or NULL. */
static const char *label_of(const json_t *doc, const char *name)
{
    const json_t *v =
        json_object_get(json_object_get(json_object_get(doc, "metadata"), "labels"), name);
    if (json_is_true(v)) return "true";
    return json_string_value(v);
}

static bool refuse(dm_http_response_t *res, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static bool refuse(dm_http_response_t *res, int status, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    dm_http_error(res, status, status * 100, "%s", msg);
    if (status == 401)
        snprintf(res->authenticate, sizeof(res->authenticate), "Bearer realm=\"datamesh\"");
    return false;
}

/* An editor may change an object that has no owner yet (it does not exist) or
 * that its team owns. what names it ("Pipeline us-plays"). */
static bool editor_owns(const dm_principal_t *p, const json_t *existing, const char *what,
                        dm_http_response_t *res)
{
    if (!existing) return true;
    const char *owner = owner_of(existing);
    if (owner && !strcmp(owner, p->owner)) return true;
    return refuse(res, 403,
                  "%s is owned by team '%s'; token %s acts for team '%s' (an editor "
                  "changes only its team's objects)",
                  what, owner ? owner : "(none)", p->token, p->owner);
}

/* The catalog entry of source name (declared or derived; new reference), or NULL. */
static json_t *source_doc(dm_auth_t *a, const char *name)
{
    json_t *doc = NULL;
    if (name) dm_catalog_source(a->store, name, &doc, NULL);
    return doc;
}

/* The editor checks of an apply: every document names the editor's team as
 * owner, replaces only objects of that team, and its pipelines read no other
 * team's private source. Also fills p->detail (for admins the apply handler
 * does, from the documents it parses anyway). A body that does not parse is
 * left to the handler, which refuses it with positions. */
static bool check_apply(dm_auth_t *a, dm_principal_t *p, const dm_http_request_t *req,
                        dm_http_response_t *res)
{
    dm_spec_doc_t *docs = NULL;
    size_t n = 0;
    const char *text = req->body ? (const char *)req->body : "";
    if (dm_spec_load("<request>", text, req->body_len, &docs, &n, NULL)) return true;
    bool editor = p->role == DM_ROLE_EDITOR, ok = true;
    size_t used = (size_t)snprintf(p->detail, sizeof(p->detail), "apply");
    for (size_t i = 0; i < n && ok; i++) {
        const json_t *root = docs[i].root;
        int kind = dm_kind_parse(json_string_value(json_object_get(root, "kind")));
        const char *name = dm_spec_name(root);
        if (kind < 0 || !name) continue; /* invalid: the handler says why */
        if (used < sizeof(p->detail))
            used += (size_t)snprintf(p->detail + used, sizeof(p->detail) - used, "%s %s %s",
                                     i ? "," : "", dm_kind_name((dm_kind_t)kind), name);
        if (!editor) continue;
        if (kind == DM_KIND_PROCESSOR) {
            ok = refuse(res, 403,
                        "Processor %s: a Processor loads a native library into the controller and "
                        "its workers; only an admin token applies one (token %s is an editor)",
                        name, p->token);
            break;
        }
        const char *owner = owner_of(root);
        if (!owner || strcmp(owner, p->owner)) {
            ok = refuse(res, 403,
                        "%s %s: metadata.owner is '%s'; token %s acts for team '%s' (an editor "
                        "applies objects of its own team only)",
                        dm_kind_name((dm_kind_t)kind), name, owner ? owner : "(not set)", p->token,
                        p->owner);
            break;
        }
        json_t *existing = NULL;
        if (kind == DM_KIND_SOURCE)
            existing = source_doc(a, name);
        else
            dm_store_get(a->store, (dm_kind_t)kind, name, &existing, NULL);
        char what[200];
        snprintf(what, sizeof(what), "%s %s", dm_kind_name((dm_kind_t)kind), name);
        ok = editor_owns(p, existing, what, res);
        json_decref(existing);
        if (!ok || kind != DM_KIND_PIPELINE) continue;
        json_t *reads = dm_spec_pipeline_reads(root);
        size_t k;
        json_t *r;
        json_array_foreach(reads, k, r)
        {
            json_t *src = source_doc(a, json_string_value(r));
            const char *access = src ? label_of(src, "access") : NULL;
            const char *sowner = src ? owner_of(src) : NULL;
            if (ok && access && !strcmp(access, "private") && (!sowner || strcmp(sowner, p->owner)))
                ok = refuse(res, 403,
                            "Pipeline %s reads source '%s', which team '%s' keeps private "
                            "(access: private); token %s acts for team '%s'",
                            name, json_string_value(r), sowner ? sowner : "(none)", p->token,
                            p->owner);
            json_decref(src);
        }
        json_decref(reads);
    }
    dm_spec_docs_free(docs, n);
    return ok;
}

/* A SQL script: statements that read pass for any token; CREATE SOURCE and
 * DROP SOURCE change Pipeline NAME, so they need an editor of its owner team
 * (CREATE: the owner in WITH, else the token's team) or an admin, and a
 * CREATE reads no other team's private source. A script that does not parse
 * is left to the handler, which refuses it at line:col. */
static bool check_sql(dm_auth_t *a, dm_principal_t *p, const dm_http_request_t *req,
                      dm_http_response_t *res)
{
    char *text = dm_api_sql_text(req->body, req->body_len);
    dm_sql_stmt_t *st = NULL;
    size_t n = 0;
    if (!text || dm_sql_script_parse(text, &st, &n, NULL)) {
        free(text);
        return true;
    }
    bool ok = true;
    size_t used = (size_t)snprintf(p->detail, sizeof(p->detail), "sql");
    for (size_t i = 0; i < n && ok; i++) {
        bool create = st[i].kind == DM_SQL_CREATE_SOURCE, drop = st[i].kind == DM_SQL_DROP_SOURCE;
        if (!create && !drop) continue;
        if (used < sizeof(p->detail))
            used += (size_t)snprintf(p->detail + used, sizeof(p->detail) - used, "%s %s %s",
                                     i ? "," : "", create ? "create source" : "drop source",
                                     st[i].name);
        if (p->role == DM_ROLE_ADMIN) continue;
        if (p->role == DM_ROLE_VIEWER) {
            ok = refuse(res, 403, "%s SOURCE %s needs an editor or admin; token %s is a viewer",
                        create ? "CREATE" : "DROP", st[i].name, p->token);
            break;
        }
        if (create && st[i].owner && strcmp(st[i].owner, p->owner)) {
            ok = refuse(res, 403,
                        "CREATE SOURCE %s: owner is '%s'; token %s acts for team '%s' (an editor "
                        "creates objects of its own team only)",
                        st[i].name, st[i].owner, p->token, p->owner);
            break;
        }
        json_t *existing = NULL;
        dm_store_get(a->store, DM_KIND_PIPELINE, st[i].name, &existing, NULL);
        char what[200];
        snprintf(what, sizeof(what), "Pipeline %s", st[i].name);
        ok = editor_owns(p, existing, what, res);
        json_decref(existing);
        if (!ok || !create) continue;
        json_t *reads = dm_sql_reads(st[i].query, false, NULL);
        size_t k;
        json_t *r;
        json_array_foreach(reads, k, r)
        {
            json_t *src = source_doc(a, json_string_value(r));
            const char *access = src ? label_of(src, "access") : NULL;
            const char *sowner = src ? owner_of(src) : NULL;
            if (ok && access && !strcmp(access, "private") && (!sowner || strcmp(sowner, p->owner)))
                ok = refuse(res, 403,
                            "CREATE SOURCE %s reads source '%s', which team '%s' keeps private "
                            "(access: private); token %s acts for team '%s'",
                            st[i].name, json_string_value(r), sowner ? sowner : "(none)", p->token,
                            p->owner);
            json_decref(src);
        }
        json_decref(reads);
    }
    dm_sql_stmts_free(st, n);
    free(text);
    return ok;
}

/* The checks of a WRITE rule for an editor (admins pass before this). */
static bool check_write(dm_auth_t *a, dm_principal_t *p, const dm_auth_rule_t *rule,
                        const dm_http_request_t *req, dm_http_response_t *res)
{
    switch (rule->scope) {
    case DM_SCOPE_APPLY: return check_apply(a, p, req, res);
    case DM_SCOPE_OBJECT: {
        int kind = dm_kind_parse(dm_http_param(req, "kind"));
        const char *name = dm_http_param(req, "name");
        if (kind < 0 || !name) return true; /* the handler answers 404 */
        json_t *existing = NULL;
        if (kind == DM_KIND_SOURCE)
            existing = source_doc(a, name);
        else
            dm_store_get(a->store, (dm_kind_t)kind, name, &existing, NULL);
        char what[200];
        snprintf(what, sizeof(what), "%s %s", dm_kind_name((dm_kind_t)kind), name);
        bool ok = editor_owns(p, existing, what, res);
        json_decref(existing);
        return ok;
    }
    case DM_SCOPE_SOURCE:
    case DM_SCOPE_SUBJECT: {
        char name[300];
        const char *param = dm_http_param(req, rule->scope == DM_SCOPE_SOURCE ? "name" : "subject");
        snprintf(name, sizeof(name), "%s", param ? param : "");
        if (rule->scope == DM_SCOPE_SUBJECT) {
            /* NAME-value and NAME-key are source NAME's (TopicNameStrategy); a
             * subject of no source has no owner to protect. */
            size_t n = strlen(name);
            if (n > 6 && !strcmp(name + n - 6, "-value"))
                name[n - 6] = '\0';
            else if (n > 4 && !strcmp(name + n - 4, "-key"))
                name[n - 4] = '\0';
            else
                return true;
        }
        json_t *src = source_doc(a, name);
        char what[320];
        snprintf(what, sizeof(what), "Source %s", name);
        bool ok = editor_owns(p, src, what, res);
        json_decref(src);
        return ok;
    }
    case DM_SCOPE_PIPELINE: {
        const char *name = dm_http_param(req, "name");
        json_t *existing = NULL;
        if (name) dm_store_get(a->store, DM_KIND_PIPELINE, name, &existing, NULL);
        char what[320];
        snprintf(what, sizeof(what), "Pipeline %s", name ? name : "");
        bool ok = editor_owns(p, existing, what, res);
        json_decref(existing);
        return ok;
    }
    case DM_SCOPE_NONE: break;
    }
    return refuse(res, 403, "%s %s needs an admin; token %s is %s", req->method, req->path,
                  p->token, dm_role_name(p->role));
}

/* Records of a sensitive source: its team and admins. Reads of them are audited. */
static bool check_records(dm_auth_t *a, dm_principal_t *p, const dm_http_request_t *req,
                          dm_http_response_t *res)
{
    const char *name = dm_http_param(req, "name");
    json_t *src = source_doc(a, name);
    const char *sensitive = src ? label_of(src, "sensitive") : NULL;
    bool ok = true;
    if (sensitive && !strcmp(sensitive, "true")) {
        p->audit = true;
        snprintf(p->detail, sizeof(p->detail), "read records of sensitive source %s", name);
        const char *owner = owner_of(src);
        if (p->role != DM_ROLE_ADMIN && (!owner || strcmp(owner, p->owner)))
            ok = refuse(res, 403,
                        "source '%s' is sensitive: its records are for team '%s' and admins; "
                        "token %s acts for team '%s'",
                        name, owner ? owner : "(none)", p->token, p->owner);
    }
    json_decref(src);
    return ok;
}

/* Whether a request that changes something comes from a page of another site:
 * browsers send Origin on such requests; the CLI and other clients send none.
 * This guards the API without --auth too (a page elsewhere could otherwise
 * make a browser POST to a controller on loopback). */
static bool cross_site(const dm_http_request_t *req)
{
    if (!strcmp(req->method, "GET") || !strcmp(req->method, "HEAD")) return false;
    const char *origin = dm_http_header(req, "Origin"), *host = dm_http_header(req, "Host");
    /* Behind a reverse proxy the page's host is the proxy's; a page of another
     * site cannot set this header (it would need CORS, which is not served). */
    const char *fwd = dm_http_header(req, "X-Forwarded-Host");
    if (!origin) return false;
    const char *sep = strstr(origin, "://");
    return !sep || ((!host || strcmp(sep + 3, host)) && (!fwd || strcmp(sep + 3, fwd)));
}

/* What a worker token may call: its own endpoints, and the schema registry
 * (reading it; registering under the subjects of its team's sources, as an
 * editor of the team may — never deleting or reconfiguring). */
static bool worker_may(const dm_auth_rule_t *rule)
{
    if (rule->access == DM_ACCESS_WORKER) return true;
    if (rule->access == DM_ACCESS_ADMIN || rule->access == DM_ACCESS_RECORDS) return false;
    if (rule->access == DM_ACCESS_WRITE && strcmp(rule->method, "POST")) return false;
    static const char *const registry[] = {"/subjects", "/schemas/", "/compatibility/"};
    for (size_t i = 0; i < sizeof(registry) / sizeof(registry[0]); i++)
        if (!strncmp(rule->pattern, registry[i], strlen(registry[i]))) return true;
    return !strcmp(rule->pattern, "/api/v1/whoami");
}

static bool on_before(void *ctx, dm_http_request_t *req, dm_http_response_t *res)
{
    dm_auth_t *a = ctx;
    dm_principal_t *p = calloc(1, sizeof(*p));
    if (!p) {
        dm_http_error(res, 503, 50300, "out of memory");
        return false;
    }
    req->principal = p;
    snprintf(p->token, sizeof(p->token), "-");
    snprintf(p->owner, sizeof(p->owner), "-");
    dm_http_remote(req, p->remote, sizeof(p->remote));
    const dm_auth_rule_t *rule = dm_auth_rule(req->route_method, req->route_pattern);
    if (!rule)
        return refuse(res, 500,
                      "endpoint %s %s has no access rule (control/auth.c); refused until it has "
                      "one",
                      req->route_method ? req->route_method : "?",
                      req->route_pattern ? req->route_pattern : "?");
    if (cross_site(req))
        return refuse(res, 403,
                      "%s %s from another site (Origin %s) refused: only the UI's own pages "
                      "and clients that send no Origin may change things",
                      req->method, req->path, dm_http_header(req, "Origin"));
    if (!a->opt.enabled) {
        p->role = DM_ROLE_ADMIN;
        return true;
    }
    if (rule->access == DM_ACCESS_PUBLIC) return true;
    int wait = blocked_for(a, p->remote);
    if (wait) {
        res->retry_after_s = wait;
        return refuse(res, 429, "too many failed authentications from %s; try again in %d s",
                      p->remote, wait);
    }
    dm_error_t err = {0};
    /* A bearer token (or basic auth) first; else the UI's session cookie. */
    const char *authorization = dm_http_header(req, "Authorization");
    const char *sid =
        authorization && *authorization ? NULL : dm_http_cookie(req, DM_SESSION_COOKIE);
    bool csrf_bad = false;
    dm_err_t rc = sid ? authenticate_session(a, req, sid, p, &csrf_bad, &err)
                      : dm_auth_authenticate(a, authorization, p, &err);
    if (!rc && csrf_bad)
        return refuse(res, 403,
                      "%s %s: a signed-in page's request that changes something must carry its "
                      "session's " DM_SESSION_HEADER " header (cross-site requests cannot)",
                      req->method, req->path);
    if (rc == DM_ERR_NOT_FOUND) return refuse(res, 401, "%s", err.message);
    if (rc == DM_ERR_INTERNAL) return refuse(res, 503, "%s", err.message);
    if (rc) {
        note_failure(a, p->remote);
        return refuse(res, 401, "%s", err.message);
    }
    if (p->role == DM_ROLE_WORKER && !worker_may(rule))
        return refuse(res, 403,
                      "%s %s: token %s is a worker's (it fetches its team's tasks, reports their "
                      "status and uses the schema registry, nothing else)",
                      req->method, req->path, p->token);
    switch (rule->access) {
    case DM_ACCESS_PUBLIC:
    case DM_ACCESS_READ: return true;
    case DM_ACCESS_WORKER:
        if (p->role == DM_ROLE_ADMIN || p->role == DM_ROLE_WORKER) return true;
        return refuse(res, 403, "%s %s needs a worker or admin token; token %s is %s", req->method,
                      req->path, p->token, dm_role_name(p->role));
    case DM_ACCESS_RECORDS: return check_records(a, p, req, res);
    case DM_ACCESS_SQL: return check_sql(a, p, req, res);
    case DM_ACCESS_ADMIN:
        if (p->role == DM_ROLE_ADMIN) return true;
        return refuse(res, 403, "%s %s needs an admin; token %s is %s", req->method, req->path,
                      p->token, dm_role_name(p->role));
    case DM_ACCESS_WRITE:
        if (p->role == DM_ROLE_VIEWER)
            return refuse(res, 403, "%s %s needs an editor or admin; token %s is a viewer",
                          req->method, req->path, p->token);
        if (p->role == DM_ROLE_ADMIN) return true;
        return check_write(a, p, rule, req, res);
    }
    return refuse(res, 500, "unknown access rule");
}

/* The error message of an answer, if it is the API's error shape. */
static void reason_of(const dm_http_response_t *res, char *out, size_t cap)
{
    out[0] = '\0';
    if (res->status < 400 || !res->body.len) return;
    json_t *j = json_loadb((const char *)res->body.data, res->body.len, 0, NULL);
    const char *m = json_string_value(json_object_get(j, "message"));
    snprintf(out, cap, "%s", m ? m : "");
    json_decref(j);
}

static void on_after(void *ctx, dm_http_request_t *req, const dm_http_response_t *res)
{
    dm_auth_t *a = ctx;
    dm_principal_t *p = req->principal;
    if (!p) return;
    const dm_auth_rule_t *rule = dm_auth_rule(req->route_method, req->route_pattern);
    bool denied = res->status == 401 || res->status == 403;
    if ((rule && rule->audit) || p->audit || denied) {
        char reason[512];
        reason_of(res, reason, sizeof(reason));
        dm_store_audit_t e = {.at_ms = dm_wall_ms(),
                              .token = p->token,
                              .owner = p->owner,
                              .role = dm_role_name(p->role),
                              .remote = p->remote,
                              .method = req->method,
                              .path = req->path,
                              .detail = p->detail,
                              .status = res->status,
                              .outcome = res->status < 400 ? "ok"
                                         : denied          ? "denied"
                                                           : "failed",
                              .reason = reason};
        dm_error_t err = {0};
        pthread_mutex_lock(&a->audit_mu);
        dm_err_t arc =
            a->audit ? dm_audit_add(a->audit, &e, &err) : dm_store_audit_add(a->store, &e, &err);
        pthread_mutex_unlock(&a->audit_mu);
        if (arc)
            DM_ERROR("auth", "method=%s path=%s: cannot write the audit log: %s", req->method,
                     req->path, err.message);
    }
    free(p);
    req->principal = NULL;
}

dm_err_t dm_auth_attach(dm_auth_t *a, dm_http_server_t *http, dm_error_t *err)
{
    for (size_t i = 0; i < dm_http_route_count(http); i++) {
        const char *method, *pattern;
        dm_http_route_at(http, i, &method, &pattern);
        if (!dm_auth_rule(method, pattern))
            return dm_error_set(err, DM_ERR_INTERNAL,
                                "auth: endpoint %s %s has no access rule in control/auth.c", method,
                                pattern);
    }
    dm_http_set_guard(http, &(dm_http_guard_t){.before = on_before, .after = on_after, .ctx = a});
    return DM_OK;
}
