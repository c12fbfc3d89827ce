/* control/store.h — the controller's state in SQLite (data directory's
 * controller.db): every applied object with its generation and timestamps.
 *
 * Thread-safe: one connection guarded by a mutex; a transaction (begin …
 * commit/rollback) holds the mutex, so calls between them come from one thread.
 */
#ifndef DM_CONTROL_STORE_H
#define DM_CONTROL_STORE_H

#include <stdint.h>
#include <jansson.h>

#include "control/spec.h"
#include "core/error.h"

typedef struct dm_store dm_store_t;

/* Opens (creating when missing) the database at path. A database that is not a
 * datamesh store, or is corrupt, is an error naming the file; it is never reset. */
dm_store_t *dm_store_open(const char *path, dm_error_t *err);

void dm_store_close(dm_store_t *s);

/* Transactions: begin locks the store for the calling thread until commit or
 * rollback. */
dm_err_t dm_store_begin(dm_store_t *s, dm_error_t *err);
dm_err_t dm_store_commit(dm_store_t *s, dm_error_t *err);
void dm_store_rollback(dm_store_t *s);

/* The stored object {kind, metadata, spec, status: {generation, created_ms,
 * updated_ms}} as a new reference in *out, or DM_ERR_NOT_FOUND. Call inside a
 * transaction or alone (then it locks for itself). */
dm_err_t dm_store_get(dm_store_t *s, dm_kind_t kind, const char *name, json_t **out,
                      dm_error_t *err);

/* How many puts and deletes of objects this handle has made: a cheap "has
 * anything changed" for caches of what the objects imply (a rolled-back
 * change counts too). Any thread. */
uint64_t dm_store_changes(dm_store_t *s);

/* What was put or deleted after change number since (a dm_store_changes
 * value): a new object {kind name: {object name: true}} in *out (a superset:
 * rolled-back changes are in it too), and in *now the change number it goes up
 * to. DM_ERR_NOT_FOUND when the store no longer remembers that far back (it
 * keeps the last 4,096 changes): then look at everything. Any thread. */
dm_err_t dm_store_changed_since(dm_store_t *s, uint64_t since, json_t **out, uint64_t *now,
                                dm_error_t *err);

/* Every object of a kind, ordered by name, as a new JSON array. */
dm_err_t dm_store_list(dm_store_t *s, dm_kind_t kind, json_t **out, dm_error_t *err);

/* Every object of a kind as a new JSON object name → document (status
 * included). The documents are shared with the store's cache and must not be
 * changed; they stay as they are when the store later replaces or deletes the
 * object. Cheaper than dm_store_list: no copy per object. */
dm_err_t dm_store_docs(dm_store_t *s, dm_kind_t kind, json_t **out, dm_error_t *err);

/* The names of the pipelines that read (role "reads") or publish (role
 * "publishes"; NULL: either) source, ordered, as a new JSON array of strings.
 * An index lookup: it does not parse any document. */
dm_err_t dm_store_edge_pipelines(dm_store_t *s, const char *source, const char *role, json_t **out,
                                 dm_error_t *err);

/* Inserts or replaces an object (its document: kind, metadata, spec); bumps the
 * generation on replace. Inside a transaction. */
dm_err_t dm_store_put(dm_store_t *s, dm_kind_t kind, const char *name, const json_t *doc,
                      dm_error_t *err);

/* Removes an object; DM_ERR_NOT_FOUND when absent. Inside a transaction. */
dm_err_t dm_store_delete(dm_store_t *s, dm_kind_t kind, const char *name, dm_error_t *err);

/* ---- lineage fragments (control/api_lineage.c keeps them) ---- */

/* Keeps pipeline's lineage fragment (bytes copied) under key, replacing the
 * one it had; nothing when there is no such pipeline (deleted meanwhile). Alone, or inside a
 * transaction (many at once: one commit). A deleted pipeline's fragment goes with it. */
dm_err_t dm_store_lineage_put(dm_store_t *s, const char *pipeline, const char *key,
                              const void *frag, size_t len, dm_error_t *err);

/* Called per kept fragment; the strings and bytes live only during the call. */
typedef void (*dm_store_lineage_fn)(void *ctx, const char *pipeline, const char *key,
                                    const void *frag, size_t len);

/* Every kept fragment, in no particular order. */
dm_err_t dm_store_lineage_each(dm_store_t *s, dm_store_lineage_fn fn, void *ctx, dm_error_t *err);

/* ---- API tokens (control/auth.c makes and checks them) ---- */

typedef struct dm_store_token {
    char id[32];           /* public part of the token, names it in lists and the audit log */
    char hash[72];         /* hex SHA-256 of the whole token; the token itself is never stored */
    char owner[64];        /* the team it acts for */
    char role[16];         /* viewer | editor | admin */
    char description[128]; /* free text from `token create --description` */
    int64_t created_ms, expires_ms;   /* expires_ms 0: never */
    int64_t last_used_ms, revoked_ms; /* 0: never used / not revoked */
} dm_store_token_t;

/* Adds a token row (last use and revocation start at 0). DM_ERR_IO when the id exists. */
dm_err_t dm_store_token_put(dm_store_t *s, const dm_store_token_t *t, dm_error_t *err);

/* The row of token id, or DM_ERR_NOT_FOUND. */
dm_err_t dm_store_token_get(dm_store_t *s, const char *id, dm_store_token_t *out, dm_error_t *err);

/* Every token row, oldest first, in a new array (*n rows; free() it). */
dm_err_t dm_store_token_list(dm_store_t *s, dm_store_token_t **out, size_t *n, dm_error_t *err);

/* Marks a token revoked at now_ms; DM_ERR_NOT_FOUND when absent or already revoked. */
dm_err_t dm_store_token_revoke(dm_store_t *s, const char *id, int64_t now_ms, dm_error_t *err);

/* Records a use of the token at now_ms. */
dm_err_t dm_store_token_touch(dm_store_t *s, const char *id, int64_t now_ms, dm_error_t *err);

/* How many tokens of role (NULL: any) are usable at now_ms: not revoked, not expired. */
dm_err_t dm_store_token_count(dm_store_t *s, const char *role, int64_t now_ms, int64_t *n,
                              dm_error_t *err);

/* ---- audit log ---- */

typedef struct dm_store_audit {
    int64_t at_ms;
    const char *token, *owner, *role; /* who: token id ("-" without one), team, role */
    const char *remote;               /* the client's address */
    const char *method, *path;        /* what */
    const char *detail;               /* what, in words ("apply Source plays") */
    int status;                       /* HTTP status of the answer */
    const char *outcome;              /* "ok", "denied" or "failed" */
    const char *reason;               /* the error message when not ok */
} dm_store_audit_t;

/* Appends an audit entry (strings copied; NULL stored as ""). Keeps the newest
 * 100,000 entries. */
dm_err_t dm_store_audit_add(dm_store_t *s, const dm_store_audit_t *e, dm_error_t *err);

typedef struct dm_store_audit_filter {
    int64_t since_ms;    /* entries at or after; 0: all */
    const char *who;     /* a token id or a team; NULL: everyone */
    const char *outcome; /* "ok", "denied", "failed"; NULL: any */
    int64_t limit;       /* the newest N (0: 100) */
} dm_store_audit_filter_t;

/* Deletes every audit entry (they moved to the audit topic, control/audit.h). */
dm_err_t dm_store_audit_clear(dm_store_t *s, dm_error_t *err);

/* The newest matching entries, oldest first, as a new JSON array of
 * {seq, at_ms, token, owner, role, remote, method, path, detail, status, outcome, reason}. */
dm_err_t dm_store_audit_query(dm_store_t *s, const dm_store_audit_filter_t *f, json_t **out,
                              dm_error_t *err);

/* ---- schema-change history ---- */

/* What a pipeline did when a source it reads changed its schema
 * (docs/schema-evolution.md): kept with the catalog, so that
 * GET /api/v1/schema-changes survives a restart. */
typedef struct dm_store_schema_change {
    int64_t at_ms;
    const char *pipeline;
    const char *policy; /* spec.schema_change: lenient, evolve, freeze, fail */
    const char *action; /* restart, pause */
    const char *what;   /* the task's message: topic, partition, offset, ids */
} dm_store_schema_change_t;

#define DM_STORE_SCHEMA_CHANGES_KEEP 10000

/* Appends an entry (strings copied; NULL stored as ""). Keeps the newest
 * DM_STORE_SCHEMA_CHANGES_KEEP. */
dm_err_t dm_store_schema_change_add(dm_store_t *s, const dm_store_schema_change_t *e,
                                    dm_error_t *err);

/* The newest limit entries (0: 1000) of pipeline (NULL: every pipeline),
 * oldest first, as a new JSON array of {ts_ms, pipeline, policy, action, what}. */
dm_err_t dm_store_schema_changes(dm_store_t *s, const char *pipeline, int64_t limit, json_t **out,
                                 dm_error_t *err);

/* ---- small keyed state ---- */

/* Keeps value (JSON, copied as text) under key in space ("session",
 * "history"): what should outlive a restart of the controller but is no
 * object of the catalog. Replaces what key held. */
dm_err_t dm_store_kv_put(dm_store_t *s, const char *space, const char *key, const json_t *value,
                         dm_error_t *err);

/* Drops key of space (key NULL: all of space). */
dm_err_t dm_store_kv_delete(dm_store_t *s, const char *space, const char *key, dm_error_t *err);

/* Everything kept in space as a new JSON object key → value. */
dm_err_t dm_store_kv_list(dm_store_t *s, const char *space, json_t **out, dm_error_t *err);

#endif
