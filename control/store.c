/* control/store.c — controller state in SQLite. */
#include "control/store.h"

#include <pthread.h>
#include <stdatomic.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"

struct dm_store {
    sqlite3 *db;
    char *path;
    pthread_mutex_t mu;
    pthread_t owner; /* thread holding an open transaction */
    bool in_txn;
    /* Parsed documents by kind (name → document with status), filled by the
     * first list of a kind and kept up to date by put and delete; dropped on
     * rollback. Lists hand out shallow copies, so callers may change the top
     * level (not deeper) without touching the cache. */
    json_t *cache[DM_KIND_COUNT];
    _Atomic uint64_t changes; /* bumped by every put, delete and rollback */
    /* The statements every put and get runs, compiled once (compiling cost
     * more than running them); used under the lock, so by one thread at a time. */
    sqlite3_stmt *stmts[5];
    /* The last CHANGE_LOG puts and deletes, slot seq % CHANGE_LOG holding
     * change number seq (dm_store_changed_since). */
    struct {
        uint64_t seq;
        dm_kind_t kind;
        char *name;
    } log[4096];
    uint64_t log_lost; /* the last change that could not be remembered */
};

#define CHANGE_LOG 4096

enum { ST_GET, ST_PUT, ST_EDGES_DEL, ST_EDGES_INS, ST_LINEAGE_PUT };

/* The kept statement which, compiled from sql on first use; NULL on error.
 * Give it back with release(). Lock held. */
static sqlite3_stmt *prep(dm_store_t *s, int which, const char *sql)
{
    if (!s->stmts[which] && sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
                                               &s->stmts[which], NULL) != SQLITE_OK) {
        sqlite3_finalize(s->stmts[which]);
        s->stmts[which] = NULL;
    }
    return s->stmts[which];
}

static void release(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

#define SCHEMA_VERSION 1

static dm_err_t edges_rebuild(dm_store_t *s, dm_error_t *err);

static dm_err_t sql_fail(dm_store_t *s, dm_error_t *err, const char *what)
{
    return dm_error_set(err, DM_ERR_IO, "controller state %s: %s: %s", s->path, what,
                        sqlite3_errmsg(s->db));
}

static dm_err_t exec(dm_store_t *s, const char *sql, dm_error_t *err)
{
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        dm_error_set(err, DM_ERR_IO, "controller state %s: %s", s->path,
                     msg ? msg : sqlite3_errmsg(s->db));
        sqlite3_free(msg);
        return DM_ERR_IO;
    }
    return DM_OK;
}

dm_store_t *dm_store_open(const char *path, dm_error_t *err)
{
    dm_store_t *s = calloc(1, sizeof(*s));
    if (!s) {
        dm_error_set(err, DM_ERR_NOMEM, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&s->mu, NULL);
    s->path = strdup(path);
    if (sqlite3_open_v2(path, &s->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        sql_fail(s, err, "cannot open");
        dm_store_close(s);
        return NULL;
    }
    sqlite3_busy_timeout(s->db, 5000);
    /* user_version tells a datamesh store from any other SQLite file. */
    sqlite3_stmt *st;
    int version = -1;
    if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        version = sqlite3_column_int(st, 0);
    else {
        sql_fail(s, err, "not a readable SQLite database");
        sqlite3_finalize(st);
        dm_store_close(s);
        return NULL;
    }
    sqlite3_finalize(st);
    if (version != 0 && version != SCHEMA_VERSION) {
        dm_error_set(err, DM_ERR_CORRUPT,
                     "controller state %s: schema version %d, this datamesh knows %d", path,
                     version, SCHEMA_VERSION);
        dm_store_close(s);
        return NULL;
    }
    if (exec(s, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", err) ||
        exec(s,
             "CREATE TABLE IF NOT EXISTS objects ("
             " kind TEXT NOT NULL, name TEXT NOT NULL, doc TEXT NOT NULL,"
             " generation INTEGER NOT NULL, created_ms INTEGER NOT NULL,"
             " updated_ms INTEGER NOT NULL, PRIMARY KEY (kind, name));"
             "CREATE TABLE IF NOT EXISTS edges ("
             " source TEXT NOT NULL, role TEXT NOT NULL, pipeline TEXT NOT NULL,"
             " PRIMARY KEY (source, role, pipeline)) WITHOUT ROWID;"
             "CREATE INDEX IF NOT EXISTS edges_by_pipeline ON edges (pipeline);"
             "CREATE TABLE IF NOT EXISTS tokens ("
             " id TEXT PRIMARY KEY, hash TEXT NOT NULL, owner TEXT NOT NULL,"
             " role TEXT NOT NULL, description TEXT NOT NULL DEFAULT '',"
             " created_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL DEFAULT 0,"
             " last_used_ms INTEGER NOT NULL DEFAULT 0, revoked_ms INTEGER NOT NULL DEFAULT 0);"
             "CREATE TABLE IF NOT EXISTS audit ("
             " seq INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER NOT NULL,"
             " token TEXT NOT NULL, owner TEXT NOT NULL, role TEXT NOT NULL,"
             " remote TEXT NOT NULL, method TEXT NOT NULL, path TEXT NOT NULL,"
             " detail TEXT NOT NULL, status INTEGER NOT NULL, outcome TEXT NOT NULL,"
             " reason TEXT NOT NULL);"
             "CREATE INDEX IF NOT EXISTS audit_by_time ON audit (at_ms);"
             "CREATE TABLE IF NOT EXISTS kv ("
             " space TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,"
             " PRIMARY KEY (space, key)) WITHOUT ROWID;"
             "CREATE TABLE IF NOT EXISTS lineage ("
             " pipeline TEXT PRIMARY KEY, key TEXT NOT NULL, fragment BLOB NOT NULL);"
             "DELETE FROM lineage WHERE pipeline NOT IN"
             " (SELECT name FROM objects WHERE kind = 'Pipeline');"
             "PRAGMA user_version = 1;",
             err) ||
        edges_rebuild(s, err)) {
        dm_store_close(s);
        return NULL;
    }
    return s;
}

/* ---- pipeline → source edges ------------------------------------------------
 * The edges table says which pipelines read (spec.from, enrich and join
 * tables) and publish (derived sources) each source, so the catalog and the
 * reconciler find a source's consumers and publisher with an index lookup
 * instead of parsing every pipeline. It is derived data: kept current by put
 * and delete of pipelines in the same transaction, and rebuilt at open. */

static dm_err_t edges_insert(dm_store_t *s, sqlite3_stmt *ins, const char *pipeline,
                             const json_t *names, const char *role, dm_error_t *err)
{
    size_t i;
    json_t *n;
    json_array_foreach(names, i, n)
    {
        if (!json_is_string(n)) continue;
        sqlite3_reset(ins);
        sqlite3_bind_text(ins, 1, json_string_value(n), -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(ins, 2, role, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 3, pipeline, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(ins) != SQLITE_DONE) return sql_fail(s, err, "index pipeline edges");
    }
    return DM_OK;
}

/* Replaces the edges of one pipeline by those of doc (NULL: removes them). Lock held. */
static dm_err_t edges_set(dm_store_t *s, const char *pipeline, const json_t *doc, dm_error_t *err)
{
    sqlite3_stmt *del = prep(s, ST_EDGES_DEL, "DELETE FROM edges WHERE pipeline = ?1"), *ins;
    if (!del) return sql_fail(s, err, "index pipeline edges");
    sqlite3_bind_text(del, 1, pipeline, -1, SQLITE_TRANSIENT);
    int r = sqlite3_step(del);
    release(del);
    if (r != SQLITE_DONE) return sql_fail(s, err, "index pipeline edges");
    if (!doc) return DM_OK;
    if (!(ins = prep(s, ST_EDGES_INS,
                     "INSERT OR IGNORE INTO edges (source, role, pipeline) VALUES (?1, ?2, ?3)")))
        return sql_fail(s, err, "index pipeline edges");
    json_t *reads = dm_spec_pipeline_reads(doc), *outs = dm_spec_pipeline_outputs(doc);
    dm_err_t rc = edges_insert(s, ins, pipeline, reads, "reads", err);
    if (!rc) rc = edges_insert(s, ins, pipeline, outs, "publishes", err);
    json_decref(reads);
    json_decref(outs);
    release(ins);
    return rc;
}

/* Derives the edges from the stored pipelines, so a database written by an
 * older datamesh (or changed by hand) never answers from a stale index. */
static dm_err_t edges_rebuild(dm_store_t *s, dm_error_t *err)
{
    if (exec(s, "BEGIN IMMEDIATE; DELETE FROM edges;", err)) return DM_ERR_IO;
    sqlite3_stmt *st;
    dm_err_t rc = DM_OK;
    if (sqlite3_prepare_v2(s->db, "SELECT name, doc FROM objects WHERE kind = ?1", -1, &st, NULL) !=
        SQLITE_OK) {
        rc = sql_fail(s, err, "index pipeline edges");
    } else {
        sqlite3_bind_text(st, 1, dm_kind_name(DM_KIND_PIPELINE), -1, SQLITE_STATIC);
        int r;
        while (!rc && (r = sqlite3_step(st)) == SQLITE_ROW) {
            json_t *doc = json_loads((const char *)sqlite3_column_text(st, 1), 0, NULL);
            if (doc) rc = edges_set(s, (const char *)sqlite3_column_text(st, 0), doc, err);
            json_decref(doc);
        }
        if (!rc && r != SQLITE_DONE) rc = sql_fail(s, err, "index pipeline edges");
        sqlite3_finalize(st);
    }
    if (rc) {
        exec(s, "ROLLBACK", NULL);
        return rc;
    }
    return exec(s, "COMMIT", err);
}

static void cache_drop(dm_store_t *s)
{
    for (int k = 0; k < DM_KIND_COUNT; k++) {
        json_decref(s->cache[k]);
        s->cache[k] = NULL;
    }
}

void dm_store_close(dm_store_t *s)
{
    if (!s) return;
    cache_drop(s);
    for (size_t i = 0; i < CHANGE_LOG; i++)
        free(s->log[i].name);
    for (size_t i = 0; i < sizeof(s->stmts) / sizeof(s->stmts[0]); i++)
        sqlite3_finalize(s->stmts[i]);
    if (s->db) sqlite3_close(s->db);
    pthread_mutex_destroy(&s->mu);
    free(s->path);
    free(s);
}

/* Locks unless the calling thread holds the transaction. Returns whether it locked. */
static bool lock(dm_store_t *s)
{
    if (s->in_txn && pthread_equal(s->owner, pthread_self())) return false;
    pthread_mutex_lock(&s->mu);
    return true;
}

static void unlock(dm_store_t *s, bool locked)
{
    if (locked) pthread_mutex_unlock(&s->mu);
}

dm_err_t dm_store_begin(dm_store_t *s, dm_error_t *err)
{
    pthread_mutex_lock(&s->mu);
    if (exec(s, "BEGIN IMMEDIATE", err)) {
        pthread_mutex_unlock(&s->mu);
        return DM_ERR_IO;
    }
    s->owner = pthread_self();
    s->in_txn = true;
    return DM_OK;
}

dm_err_t dm_store_commit(dm_store_t *s, dm_error_t *err)
{
    dm_err_t rc = exec(s, "COMMIT", err);
    if (rc) exec(s, "ROLLBACK", NULL);
    s->in_txn = false;
    pthread_mutex_unlock(&s->mu);
    return rc;
}

uint64_t dm_store_changes(dm_store_t *s)
{
    return atomic_load(&s->changes);
}

/* Counts a put or delete of kind/name as the next change and remembers it. Lock held. */
static void change_logged(dm_store_t *s, dm_kind_t kind, const char *name)
{
    uint64_t seq = atomic_fetch_add(&s->changes, 1) + 1;
    char *copy = strdup(name);
    size_t slot = seq % CHANGE_LOG;
    free(s->log[slot].name);
    s->log[slot].name = copy;
    s->log[slot].kind = kind;
    s->log[slot].seq = seq;
    if (!copy) s->log_lost = seq; /* out of memory: changes up to here are unknown */
}

dm_err_t dm_store_changed_since(dm_store_t *s, uint64_t since, json_t **out, uint64_t *now,
                                dm_error_t *err)
{
    *out = NULL;
    bool locked = lock(s);
    uint64_t to = atomic_load(&s->changes);
    dm_err_t rc = DM_OK;
    if (since > to || to - since >= CHANGE_LOG || s->log_lost > since) {
        rc = dm_error_set(err, DM_ERR_NOT_FOUND, "the store keeps the last %d changes only",
                          CHANGE_LOG);
    } else {
        json_t *all = json_object();
        for (uint64_t seq = since + 1; all && seq <= to; seq++) {
            size_t slot = seq % CHANGE_LOG;
            if (s->log[slot].seq != seq) continue; /* a rollback: no object */
            const char *kind = dm_kind_name(s->log[slot].kind);
            json_t *names = json_object_get(all, kind);
            if (!names) json_object_set_new(all, kind, names = json_object());
            json_object_set_new(names, s->log[slot].name, json_true());
        }
        if (!all) rc = dm_error_set(err, DM_ERR_NOMEM, "out of memory");
        *out = all;
        *now = to;
    }
    unlock(s, locked);
    return rc;
}

void dm_store_rollback(dm_store_t *s)
{
    atomic_fetch_add(&s->changes, 1);
    cache_drop(s); /* it may hold documents put in the transaction */
    exec(s, "ROLLBACK", NULL);
    s->in_txn = false;
    pthread_mutex_unlock(&s->mu);
}

static json_t *row_object(sqlite3_stmt *st)
{
    json_t *doc = json_loads((const char *)sqlite3_column_text(st, 0), 0, NULL);
    if (!doc) return NULL;
    json_object_set_new(doc, "status",
                        json_pack("{s:I, s:I, s:I}", "generation",
                                  (json_int_t)sqlite3_column_int64(st, 1), "created_ms",
                                  (json_int_t)sqlite3_column_int64(st, 2), "updated_ms",
                                  (json_int_t)sqlite3_column_int64(st, 3)));
    return doc;
}

/* One row as a document (lock held). */
static dm_err_t get_row(dm_store_t *s, dm_kind_t kind, const char *name, json_t **out,
                        dm_error_t *err)
{
    *out = NULL;
    dm_err_t rc = DM_OK;
    sqlite3_stmt *st = prep(s, ST_GET,
                            "SELECT doc, generation, created_ms, updated_ms FROM objects "
                            "WHERE kind = ?1 AND name = ?2");
    if (!st) return sql_fail(s, err, "get");
    sqlite3_bind_text(st, 1, dm_kind_name(kind), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_TRANSIENT);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
        *out = row_object(st);
        if (!*out)
            rc = dm_error_set(err, DM_ERR_CORRUPT,
                              "controller state %s: %s %s: stored "
                              "document is not JSON",
                              s->path, dm_kind_name(kind), name);
    } else if (r == SQLITE_DONE) {
        rc = dm_error_set(err, DM_ERR_NOT_FOUND, "%s '%s' not found", dm_kind_name(kind), name);
    } else {
        rc = sql_fail(s, err, "get");
    }
    release(st);
    return rc;
}

dm_err_t dm_store_get(dm_store_t *s, dm_kind_t kind, const char *name, json_t **out,
                      dm_error_t *err)
{
    bool locked = lock(s);
    dm_err_t rc = get_row(s, kind, name, out, err);
    unlock(s, locked);
    return rc;
}

/* The documents of a kind from the table (lock held). */
static dm_err_t list_rows(dm_store_t *s, dm_kind_t kind, json_t **out, dm_error_t *err)
{
    *out = NULL;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT doc, generation, created_ms, updated_ms FROM objects "
                           "WHERE kind = ?1 ORDER BY name",
                           -1, &st, NULL) != SQLITE_OK) {
        dm_err_t rc = sql_fail(s, err, "list");
        return rc;
    }
    sqlite3_bind_text(st, 1, dm_kind_name(kind), -1, SQLITE_STATIC);
    json_t *a = json_array();
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *o = row_object(st);
        if (o) json_array_append_new(a, o);
    }
    dm_err_t rc = r == SQLITE_DONE ? DM_OK : sql_fail(s, err, "list");
    sqlite3_finalize(st);
    if (rc)
        json_decref(a);
    else
        *out = a;
    return rc;
}

static int cmp_key(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Fills the cache of a kind from the table when it is empty (lock held). */
static dm_err_t cache_fill(dm_store_t *s, dm_kind_t kind, dm_error_t *err)
{
    if (s->cache[kind]) return DM_OK;
    json_t *all;
    dm_err_t rc = list_rows(s, kind, &all, err);
    if (rc) return rc;
    s->cache[kind] = json_object();
    size_t i;
    json_t *d;
    json_array_foreach(all, i, d)
    {
        const char *name =
            json_string_value(json_object_get(json_object_get(d, "metadata"), "name"));
        if (name) json_object_set(s->cache[kind], name, d);
    }
    json_decref(all);
    return DM_OK;
}

dm_err_t dm_store_docs(dm_store_t *s, dm_kind_t kind, json_t **out, dm_error_t *err)
{
    *out = NULL;
    bool locked = lock(s);
    dm_err_t rc = cache_fill(s, kind, err);
    if (!rc) {
        /* A new map holding the cached documents: put replaces a document
         * rather than changing it, so the caller's stay as they were. */
        *out = json_object();
        if (!*out || json_object_update(*out, s->cache[kind]))
            rc = dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    }
    unlock(s, locked);
    if (rc) {
        json_decref(*out);
        *out = NULL;
    }
    return rc;
}

dm_err_t dm_store_list(dm_store_t *s, dm_kind_t kind, json_t **out, dm_error_t *err)
{
    *out = NULL;
    bool locked = lock(s);
    dm_err_t rc = cache_fill(s, kind, err);
    if (rc) {
        unlock(s, locked);
        return rc;
    }
    size_t n = json_object_size(s->cache[kind]), i = 0;
    const char **names = malloc((n ? n : 1) * sizeof(*names));
    json_t *a = json_array();
    const char *name;
    json_t *d;
    if (names) {
        json_object_foreach(s->cache[kind], name, d) names[i++] = name;
        qsort(names, n, sizeof(*names), cmp_key);
        for (i = 0; i < n; i++) {
            json_t *o = json_object();
            json_object_update(o, json_object_get(s->cache[kind], names[i]));
            json_array_append_new(a, o);
        }
    } else {
        rc = dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    }
    free(names);
    unlock(s, locked);
    if (rc)
        json_decref(a);
    else
        *out = a;
    return rc;
}

dm_err_t dm_store_put(dm_store_t *s, dm_kind_t kind, const char *name, const json_t *doc,
                      dm_error_t *err)
{
    char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    if (!text) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    bool locked = lock(s);
    change_logged(s, kind, name);
    dm_err_t rc = DM_OK;
    int64_t now = dm_wall_ms();
    sqlite3_stmt *st = prep(s, ST_PUT,
                            "INSERT INTO objects (kind, name, doc, generation, created_ms, "
                            "updated_ms) VALUES (?1, ?2, ?3, 1, ?4, ?4) "
                            "ON CONFLICT (kind, name) DO UPDATE SET doc = excluded.doc, "
                            "generation = generation + 1, updated_ms = excluded.updated_ms");
    if (!st) {
        rc = sql_fail(s, err, "put");
    } else {
        sqlite3_bind_text(st, 1, dm_kind_name(kind), -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, name, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, text, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 4, now);
        if (sqlite3_step(st) != SQLITE_DONE) rc = sql_fail(s, err, "put");
        release(st);
    }
    if (!rc && kind == DM_KIND_PIPELINE) rc = edges_set(s, name, doc, err);
    if (s->cache[kind]) {
        /* Keep the cache as the table now is (generation and times included). */
        json_t *fresh = NULL;
        if (!rc && get_row(s, kind, name, &fresh, NULL) == DM_OK)
            json_object_set_new(s->cache[kind], name, fresh);
        else {
            json_decref(s->cache[kind]);
            s->cache[kind] = NULL;
        }
    }
    unlock(s, locked);
    free(text);
    return rc;
}

/* ---- lineage fragments ------------------------------------------------------
 * What each pipeline adds to the lineage graph (control/lineage.h fragments),
 * with the key saying what it was computed from. Derived data like the edges:
 * a deleted pipeline's row goes in the same transaction, rows of pipelines
 * that are gone are dropped at open, and a stale key only means "compute it
 * again" (control/api_lineage.c). */

/* Removes pipeline's fragment. Lock held. */
static dm_err_t lineage_delete(dm_store_t *s, const char *pipeline, dm_error_t *err)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "DELETE FROM lineage WHERE pipeline = ?1", -1, &st, NULL) !=
        SQLITE_OK)
        return sql_fail(s, err, "drop a pipeline's lineage");
    sqlite3_bind_text(st, 1, pipeline, -1, SQLITE_TRANSIENT);
    int r = sqlite3_step(st);
    sqlite3_finalize(st);
    return r == SQLITE_DONE ? DM_OK : sql_fail(s, err, "drop a pipeline's lineage");
}

dm_err_t dm_store_lineage_put(dm_store_t *s, const char *pipeline, const char *key,
                              const void *frag, size_t len, dm_error_t *err)
{
    bool locked = lock(s);
    dm_err_t rc = DM_OK;
    sqlite3_stmt *st = prep(s, ST_LINEAGE_PUT,
                            "INSERT OR REPLACE INTO lineage (pipeline, key, fragment) "
                            "SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM objects "
                            "WHERE kind = 'Pipeline' AND name = ?1)");
    if (!st) {
        rc = sql_fail(s, err, "keep a pipeline's lineage");
    } else {
        sqlite3_bind_text(st, 1, pipeline, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, key, -1, SQLITE_TRANSIENT);
        sqlite3_bind_blob64(st, 3, frag, len, SQLITE_TRANSIENT);
        if (sqlite3_step(st) != SQLITE_DONE) rc = sql_fail(s, err, "keep a pipeline's lineage");
        release(st);
    }
    unlock(s, locked);
    return rc;
}

dm_err_t dm_store_lineage_each(dm_store_t *s, dm_store_lineage_fn fn, void *ctx, dm_error_t *err)
{
    bool locked = lock(s);
    sqlite3_stmt *st;
    dm_err_t rc = DM_OK;
    if (sqlite3_prepare_v2(s->db, "SELECT pipeline, key, fragment FROM lineage", -1, &st, NULL) !=
        SQLITE_OK) {
        rc = sql_fail(s, err, "read the kept lineage");
    } else {
        int r;
        while ((r = sqlite3_step(st)) == SQLITE_ROW) {
            const char *name = (const char *)sqlite3_column_text(st, 0);
            const char *key = (const char *)sqlite3_column_text(st, 1);
            const void *frag = sqlite3_column_blob(st, 2);
            size_t len = (size_t)sqlite3_column_bytes(st, 2);
            if (name && key) fn(ctx, name, key, frag, len);
        }
        if (r != SQLITE_DONE) rc = sql_fail(s, err, "read the kept lineage");
        sqlite3_finalize(st);
    }
    unlock(s, locked);
    return rc;
}

dm_err_t dm_store_delete(dm_store_t *s, dm_kind_t kind, const char *name, dm_error_t *err)
{
    bool locked = lock(s);
    change_logged(s, kind, name);
    sqlite3_stmt *st;
    dm_err_t rc = DM_OK;
    if (sqlite3_prepare_v2(s->db, "DELETE FROM objects WHERE kind = ?1 AND name = ?2", -1, &st,
                           NULL) != SQLITE_OK) {
        rc = sql_fail(s, err, "delete");
    } else {
        sqlite3_bind_text(st, 1, dm_kind_name(kind), -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, name, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = sql_fail(s, err, "delete");
        else if (sqlite3_changes(s->db) == 0)
            rc = dm_error_set(err, DM_ERR_NOT_FOUND, "%s '%s' not found", dm_kind_name(kind), name);
        sqlite3_finalize(st);
    }
    if (!rc && kind == DM_KIND_PIPELINE) rc = edges_set(s, name, NULL, err);
    if (!rc && kind == DM_KIND_PIPELINE) rc = lineage_delete(s, name, err);
    if (s->cache[kind]) json_object_del(s->cache[kind], name);
    unlock(s, locked);
    return rc;
}

dm_err_t dm_store_edge_pipelines(dm_store_t *s, const char *source, const char *role, json_t **out,
                                 dm_error_t *err)
{
    *out = NULL;
    bool locked = lock(s);
    sqlite3_stmt *st;
    dm_err_t rc = DM_OK;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT DISTINCT pipeline FROM edges WHERE source = ?1 "
                           "AND (?2 IS NULL OR role = ?2) ORDER BY pipeline",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = sql_fail(s, err, "pipeline edges");
    } else {
        sqlite3_bind_text(st, 1, source, -1, SQLITE_TRANSIENT);
        if (role) sqlite3_bind_text(st, 2, role, -1, SQLITE_STATIC);
        json_t *a = json_array();
        int r;
        while ((r = sqlite3_step(st)) == SQLITE_ROW)
            json_array_append_new(a, json_string((const char *)sqlite3_column_text(st, 0)));
        if (r == SQLITE_DONE)
            *out = a;
        else {
            rc = sql_fail(s, err, "pipeline edges");
            json_decref(a);
        }
        sqlite3_finalize(st);
    }
    unlock(s, locked);
    return rc;
}

/* ---- API tokens -------------------------------------------------------------
 * A token's secret is never stored: only its SHA-256 (hex), looked up by the
 * token's public id. control/auth.c makes and checks tokens; these functions
 * only keep the rows. */

/* One statement, prepared and stepped once with the binds done by the caller's
 * bind function; DM_OK when it ran to completion. Lock held. */
static dm_err_t run_once(dm_store_t *s, sqlite3_stmt *st, const char *what, dm_error_t *err)
{
    int r = sqlite3_step(st);
    dm_err_t rc = r == SQLITE_DONE || r == SQLITE_ROW ? DM_OK : sql_fail(s, err, what);
    sqlite3_finalize(st);
    return rc;
}

dm_err_t dm_store_token_put(dm_store_t *s, const dm_store_token_t *t, dm_error_t *err)
{
    bool locked = lock(s);
    sqlite3_stmt *st;
    dm_err_t rc;
    if (sqlite3_prepare_v2(
            s->db,
            "INSERT INTO tokens (id, hash, owner, role, description, created_ms, "
            "expires_ms, last_used_ms, revoked_ms) VALUES (?1,?2,?3,?4,?5,?6,?7,0,0)",
            -1, &st, NULL) != SQLITE_OK) {
        rc = sql_fail(s, err, "add token");
    } else {
        sqlite3_bind_text(st, 1, t->id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, t->hash, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, t->owner, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 4, t->role, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 5, t->description, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 6, t->created_ms);
        sqlite3_bind_int64(st, 7, t->expires_ms);
        rc = run_once(s, st, "add token", err);
    }
    unlock(s, locked);
    return rc;
}

static void token_row(sqlite3_stmt *st, dm_store_token_t *t)
{
    memset(t, 0, sizeof(*t));
    snprintf(t->id, sizeof(t->id), "%s", (const char *)sqlite3_column_text(st, 0));
    snprintf(t->hash, sizeof(t->hash), "%s", (const char *)sqlite3_column_text(st, 1));
    snprintf(t->owner, sizeof(t->owner), "%s", (const char *)sqlite3_column_text(st, 2));
    snprintf(t->role, sizeof(t->role), "%s", (const char *)sqlite3_column_text(st, 3));
    snprintf(t->description, sizeof(t->description), "%s",
             (const char *)sqlite3_column_text(st, 4));
    t->created_ms = sqlite3_column_int64(st, 5);
    t->expires_ms = sqlite3_column_int64(st, 6);
    t->last_used_ms = sqlite3_column_int64(st, 7);
    t->revoked_ms = sqlite3_column_int64(st, 8);
}

#define TOKEN_COLUMNS                                                                              \
    "id, hash, owner, role, description, created_ms, expires_ms, last_used_ms, revoked_ms"

dm_err_t dm_store_token_get(dm_store_t *s, const char *id, dm_store_token_t *out, dm_error_t *err)
{
    bool locked = lock(s);
    sqlite3_stmt *st;
    dm_err_t rc = DM_OK;
    if (sqlite3_prepare_v2(s->db, "SELECT " TOKEN_COLUMNS " FROM tokens WHERE id = ?1", -1, &st,
                           NULL) != SQLITE_OK) {
        rc = sql_fail(s, err, "get token");
    } else {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
        int r = sqlite3_step(st);
        if (r == SQLITE_ROW)
            token_row(st, out);
        else if (r == SQLITE_DONE)
            rc = dm_error_set(err, DM_ERR_NOT_FOUND, "token %s not found", id);
        else
            rc = sql_fail(s, err, "get token");
        sqlite3_finalize(st);
    }
    unlock(s, locked);
    return rc;
}

dm_err_t dm_store_token_list(dm_store_t *s, dm_store_token_t **out, size_t *n, dm_error_t *err)
{
    *out = NULL;
    *n = 0;
    bool locked = lock(s);
    sqlite3_stmt *st;
    dm_err_t rc = DM_OK;
    if (sqlite3_prepare_v2(s->db, "SELECT " TOKEN_COLUMNS " FROM tokens ORDER BY created_ms, id",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = sql_fail(s, err, "list tokens");
    } else {
        size_t cap = 0;
        int r;
        while (!rc && (r = sqlite3_step(st)) == SQLITE_ROW) {
            if (*n == cap) {
                cap = cap ? cap * 2 : 16;
                dm_store_token_t *grown = realloc(*out, cap * sizeof(**out));
                if (!grown) {
                    rc = dm_error_set(err, DM_ERR_NOMEM, "out of memory");
                    break;
                }
                *out = grown;
            }
            token_row(st, &(*out)[(*n)++]);
        }
        if (!rc && r != SQLITE_DONE) rc = sql_fail(s, err, "list tokens");
        sqlite3_finalize(st);
    }
    unlock(s, locked);
    if (rc) {
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

/* Sets one integer column of a token's row (column is a constant of this file). */
static dm_err_t token_set(dm_store_t *s, const char *sql, const char *id, int64_t v,
                          const char *what, dm_error_t *err)
{
    bool locked = lock(s);
    sqlite3_stmt *st;
    dm_err_t rc;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
        rc = sql_fail(s, err, what);
    } else {
        sqlite3_bind_int64(st, 1, v);
        sqlite3_bind_text(st, 2, id, -1, SQLITE_TRANSIENT);
        rc = run_once(s, st, what, err);
        if (!rc && sqlite3_changes(s->db) == 0)
            rc = dm_error_set(err, DM_ERR_NOT_FOUND, "token %s not found (or already revoked)", id);
    }
    unlock(s, locked);
    return rc;
}

dm_err_t dm_store_token_revoke(dm_store_t *s, const char *id, int64_t now_ms, dm_error_t *err)
{
    return token_set(s, "UPDATE tokens SET revoked_ms = ?1 WHERE id = ?2 AND revoked_ms = 0", id,
                     now_ms, "revoke token", err);
}

dm_err_t dm_store_token_touch(dm_store_t *s, const char *id, int64_t now_ms, dm_error_t *err)
{
    return token_set(s, "UPDATE tokens SET last_used_ms = ?1 WHERE id = ?2", id, now_ms,
                     "note token use", err);
}

dm_err_t dm_store_token_count(dm_store_t *s, const char *role, int64_t now_ms, int64_t *n,
                              dm_error_t *err)
{
    bool locked = lock(s);
    sqlite3_stmt *st;
    dm_err_t rc = DM_OK;
    *n = 0;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT count(*) FROM tokens WHERE revoked_ms = 0 AND "
                           "(expires_ms = 0 OR expires_ms > ?1) AND (?2 IS NULL OR role = ?2)",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = sql_fail(s, err, "count tokens");
    } else {
        sqlite3_bind_int64(st, 1, now_ms);
        if (role) sqlite3_bind_text(st, 2, role, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) == SQLITE_ROW)
            *n = sqlite3_column_int64(st, 0);
        else
            rc = sql_fail(s, err, "count tokens");
        sqlite3_finalize(st);
    }
    unlock(s, locked);
    return rc;
}

/* ---- audit log --------------------------------------------------------------
 * Append-only rows; the oldest go once the table holds more than
 * DM_STORE_AUDIT_KEEP entries, so the log is retained, not unbounded. */

#define DM_STORE_AUDIT_KEEP 100000

dm_err_t dm_store_audit_add(dm_store_t *s, const dm_store_audit_t *e, dm_error_t *err)
{
    bool locked = lock(s);
    sqlite3_stmt *st;
    dm_err_t rc;
    if (sqlite3_prepare_v2(s->db,
                           "INSERT INTO audit (at_ms, token, owner, role, remote, method, path, "
                           "detail, status, outcome, reason) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,"
                           "?10,?11)",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = sql_fail(s, err, "audit");
    } else {
        const char *text[] = {e->token, e->owner,  e->role,    e->remote, e->method,
                              e->path,  e->detail, e->outcome, e->reason};
        int col[] = {2, 3, 4, 5, 6, 7, 8, 10, 11};
        sqlite3_bind_int64(st, 1, e->at_ms);
        for (size_t i = 0; i < sizeof(col) / sizeof(col[0]); i++)
            sqlite3_bind_text(st, col[i], text[i] ? text[i] : "", -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(st, 9, e->status);
        rc = run_once(s, st, "audit", err);
        int64_t seq = sqlite3_last_insert_rowid(s->db);
        if (!rc && seq % 1000 == 0) {
            char sql[128];
            snprintf(sql, sizeof(sql), "DELETE FROM audit WHERE seq <= %lld",
                     (long long)(seq - DM_STORE_AUDIT_KEEP));
            exec(s, sql, NULL);
        }
    }
    unlock(s, locked);
    return rc;
}

dm_err_t dm_store_audit_clear(dm_store_t *s, dm_error_t *err)
{
    bool locked = lock(s);
    dm_err_t rc = exec(s, "DELETE FROM audit", err);
    unlock(s, locked);
    return rc;
}

dm_err_t dm_store_audit_query(dm_store_t *s, const dm_store_audit_filter_t *f, json_t **out,
                              dm_error_t *err)
{
    *out = NULL;
    bool locked = lock(s);
    sqlite3_stmt *st;
    dm_err_t rc = DM_OK;
    /* Newest first, then given back oldest first: the last N entries in order. */
    if (sqlite3_prepare_v2(
            s->db,
            "SELECT seq, at_ms, token, owner, role, remote, method, path, detail, status, outcome,"
            " reason FROM (SELECT * FROM audit WHERE at_ms >= ?1"
            " AND (?2 IS NULL OR token = ?2 OR owner = ?2)"
            " AND (?3 IS NULL OR outcome = ?3) ORDER BY seq DESC LIMIT ?4) ORDER BY seq",
            -1, &st, NULL) != SQLITE_OK) {
        rc = sql_fail(s, err, "audit query");
    } else {
        sqlite3_bind_int64(st, 1, f->since_ms);
        if (f->who) sqlite3_bind_text(st, 2, f->who, -1, SQLITE_TRANSIENT);
        if (f->outcome) sqlite3_bind_text(st, 3, f->outcome, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 4, f->limit > 0 ? f->limit : 100);
        json_t *a = json_array();
        int r;
        while ((r = sqlite3_step(st)) == SQLITE_ROW) {
            static const char *const names[] = {"token",  "owner", "role",   "remote",
                                                "method", "path",  "detail", NULL};
            json_t *o = json_pack("{s:I, s:I}", "seq", (json_int_t)sqlite3_column_int64(st, 0),
                                  "at_ms", (json_int_t)sqlite3_column_int64(st, 1));
            for (int i = 0; names[i]; i++)
                json_object_set_new(o, names[i],
                                    json_string((const char *)sqlite3_column_text(st, 2 + i)));
            json_object_set_new(o, "status", json_integer(sqlite3_column_int(st, 9)));
            json_object_set_new(o, "outcome",
                                json_string((const char *)sqlite3_column_text(st, 10)));
            json_object_set_new(o, "reason",
                                json_string((const char *)sqlite3_column_text(st, 11)));
            json_array_append_new(a, o);
        }
        if (r == SQLITE_DONE)
            *out = a;
        else {
            rc = sql_fail(s, err, "audit query");
            json_decref(a);
        }
        sqlite3_finalize(st);
    }
    unlock(s, locked);
    return rc;
}

/* ---- schema-change history ------------------------------------------------------ */

/* Made on first use rather than at open: stores written by an older datamesh
 * gain it without a migration, and most controllers never need it. */
static dm_err_t schema_changes_table(dm_store_t *s, dm_error_t *err)
{
    return exec(s,
                "CREATE TABLE IF NOT EXISTS schema_changes ("
                " seq INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER NOT NULL,"
                " pipeline TEXT NOT NULL, policy TEXT NOT NULL, action TEXT NOT NULL,"
                " what TEXT NOT NULL);"
                "CREATE INDEX IF NOT EXISTS schema_changes_by_pipeline"
                " ON schema_changes (pipeline, seq);",
                err);
}

dm_err_t dm_store_schema_change_add(dm_store_t *s, const dm_store_schema_change_t *e,
                                    dm_error_t *err)
{
    bool locked = lock(s);
    sqlite3_stmt *st = NULL;
    dm_err_t rc = schema_changes_table(s, err);
    if (!rc && sqlite3_prepare_v2(s->db,
                                  "INSERT INTO schema_changes (at_ms, pipeline, policy, action,"
                                  " what) VALUES (?1, ?2, ?3, ?4, ?5)",
                                  -1, &st, NULL) != SQLITE_OK)
        rc = sql_fail(s, err, "schema change");
    if (!rc) {
        const char *text[] = {e->pipeline, e->policy, e->action, e->what};
        sqlite3_bind_int64(st, 1, e->at_ms);
        for (int i = 0; i < 4; i++)
            sqlite3_bind_text(st, 2 + i, text[i] ? text[i] : "", -1, SQLITE_TRANSIENT);
        rc = run_once(s, st, "schema change", err);
        int64_t seq = sqlite3_last_insert_rowid(s->db);
        if (!rc && seq > DM_STORE_SCHEMA_CHANGES_KEEP) {
            char sql[128];
            snprintf(sql, sizeof(sql), "DELETE FROM schema_changes WHERE seq <= %lld",
                     (long long)(seq - DM_STORE_SCHEMA_CHANGES_KEEP));
            exec(s, sql, NULL);
        }
    }
    unlock(s, locked);
    return rc;
}

dm_err_t dm_store_schema_changes(dm_store_t *s, const char *pipeline, int64_t limit, json_t **out,
                                 dm_error_t *err)
{
    *out = NULL;
    bool locked = lock(s);
    sqlite3_stmt *st = NULL;
    dm_err_t rc = schema_changes_table(s, err);
    if (!rc && sqlite3_prepare_v2(s->db,
                                  "SELECT at_ms, pipeline, policy, action, what FROM"
                                  " (SELECT * FROM schema_changes WHERE ?1 IS NULL OR pipeline = ?1"
                                  " ORDER BY seq DESC LIMIT ?2) ORDER BY seq",
                                  -1, &st, NULL) != SQLITE_OK)
        rc = sql_fail(s, err, "schema changes");
    if (!rc) {
        if (pipeline) sqlite3_bind_text(st, 1, pipeline, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 2, limit > 0 ? limit : 1000);
        json_t *a = json_array();
        int r;
        while ((r = sqlite3_step(st)) == SQLITE_ROW)
            json_array_append_new(a, json_pack("{s:I, s:s, s:s, s:s, s:s}", "ts_ms",
                                               (json_int_t)sqlite3_column_int64(st, 0), "pipeline",
                                               (const char *)sqlite3_column_text(st, 1), "policy",
                                               (const char *)sqlite3_column_text(st, 2), "action",
                                               (const char *)sqlite3_column_text(st, 3), "what",
                                               (const char *)sqlite3_column_text(st, 4)));
        if (r == SQLITE_DONE) {
            *out = a;
        } else {
            rc = sql_fail(s, err, "schema changes");
            json_decref(a);
        }
    }
    sqlite3_finalize(st);
    unlock(s, locked);
    return rc;
}

/* ---- small keyed state (sessions, history) ---------------------------------------- */

dm_err_t dm_store_kv_put(dm_store_t *s, const char *space, const char *key, const json_t *value,
                         dm_error_t *err)
{
    char *text = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!text) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    bool locked = lock(s);
    sqlite3_stmt *st;
    dm_err_t rc;
    if (sqlite3_prepare_v2(s->db, "INSERT OR REPLACE INTO kv (space, key, value) VALUES (?1,?2,?3)",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = sql_fail(s, err, "keep state");
    } else {
        sqlite3_bind_text(st, 1, space, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, text, -1, SQLITE_STATIC);
        rc = run_once(s, st, "keep state", err);
    }
    unlock(s, locked);
    free(text);
    return rc;
}

dm_err_t dm_store_kv_delete(dm_store_t *s, const char *space, const char *key, dm_error_t *err)
{
    bool locked = lock(s);
    sqlite3_stmt *st;
    dm_err_t rc;
    if (sqlite3_prepare_v2(s->db,
                           key ? "DELETE FROM kv WHERE space = ?1 AND key = ?2"
                               : "DELETE FROM kv WHERE space = ?1",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = sql_fail(s, err, "drop state");
    } else {
        sqlite3_bind_text(st, 1, space, -1, SQLITE_STATIC);
        if (key) sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
        rc = run_once(s, st, "drop state", err);
    }
    unlock(s, locked);
    return rc;
}

dm_err_t dm_store_kv_list(dm_store_t *s, const char *space, json_t **out, dm_error_t *err)
{
    *out = NULL;
    json_t *all = json_object();
    if (!all) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    bool locked = lock(s);
    sqlite3_stmt *st;
    dm_err_t rc = DM_OK;
    if (sqlite3_prepare_v2(s->db, "SELECT key, value FROM kv WHERE space = ?1", -1, &st, NULL) !=
        SQLITE_OK) {
        rc = sql_fail(s, err, "read state");
    } else {
        sqlite3_bind_text(st, 1, space, -1, SQLITE_STATIC);
        int r;
        while ((r = sqlite3_step(st)) == SQLITE_ROW) {
            const char *text = (const char *)sqlite3_column_text(st, 1);
            json_t *v = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
            /* a value that does not parse is left out: it is only kept state */
            if (v) json_object_set_new(all, (const char *)sqlite3_column_text(st, 0), v);
        }
        if (r != SQLITE_DONE) rc = sql_fail(s, err, "read state");
        sqlite3_finalize(st);
    }
    unlock(s, locked);
    if (rc)
        json_decref(all);
    else
        *out = all;
    return rc;
}
