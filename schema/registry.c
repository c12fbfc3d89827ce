/* schema/registry.c — the schema registry store (dm_schema_registry_*).
 *
 * Three tables: schemas (global id, identity, original text), versions
 * (subject, version, schema id, deleted flag) and config (compatibility level
 * per subject, '' for the global one). A registration runs in one IMMEDIATE
 * transaction so concurrent registrations on the same file cannot hand out the
 * same version twice.
 *
 * A schema's identity (column "canonical") is its JSON with sorted keys and no
 * spaces, as Confluent's registry compares schemas: two schemas that differ
 * only in a default or a doc are different schemas (a reader resolves with
 * the defaults it was registered with). Stores written by earlier versions
 * kept the Parsing Canonical Form there; opening one rewrites the column once
 * (PRAGMA user_version 2).
 */
#include <jansson.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "schema/dm_schema_registry.h"

/* Prepared statements kept for the handle's life: compiling the SQL cost more
 * than running it (a registration runs six statements), so each text is
 * compiled once. A slot in use by one thread makes another compile its own. */
#define STMT_CACHE 32

typedef struct stmt_slot {
    const char *sql; /* the literal it was prepared from (compared by address) */
    sqlite3_stmt *st;
    bool busy;
} stmt_slot_t;

struct dm_schema_registry {
    sqlite3 *db;
    pthread_mutex_t mu; /* guards the slots */
    stmt_slot_t slots[STMT_CACHE];
};

static const char *const migration = "CREATE TABLE IF NOT EXISTS schemas ("
                                     "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
                                     "  canonical TEXT NOT NULL UNIQUE,"
                                     "  fingerprint INTEGER NOT NULL,"
                                     "  schema TEXT NOT NULL);"
                                     "CREATE TABLE IF NOT EXISTS versions ("
                                     "  subject TEXT NOT NULL,"
                                     "  version INTEGER NOT NULL,"
                                     "  schema_id INTEGER NOT NULL REFERENCES schemas(id),"
                                     "  deleted INTEGER NOT NULL DEFAULT 0,"
                                     "  PRIMARY KEY (subject, version));"
                                     "CREATE TABLE IF NOT EXISTS config ("
                                     "  subject TEXT PRIMARY KEY,"
                                     "  level TEXT NOT NULL);";

static dm_err_t sql_err(dm_schema_registry_t *r, dm_error_t *err, const char *what)
{
    return dm_error_set(err, DM_ERR_IO, "schema registry: %s: %s", what, sqlite3_errmsg(r->db));
}

static dm_err_t migrate_identity(dm_schema_registry_t *r, dm_error_t *err);

dm_err_t dm_schema_registry_open(const char *path, dm_schema_registry_t **out, dm_error_t *err)
{
    *out = NULL;
    dm_schema_registry_t *r = calloc(1, sizeof(*r));
    if (!r) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&r->mu, NULL);
    if (sqlite3_open(path, &r->db) != SQLITE_OK) {
        dm_err_t rc = dm_error_set(err, DM_ERR_IO, "schema registry: open %s: %s", path,
                                   r->db ? sqlite3_errmsg(r->db) : "out of memory");
        dm_schema_registry_close(r);
        return rc;
    }
    sqlite3_busy_timeout(r->db, 5000);
    /* WAL: a registration appends to one file instead of creating, syncing and
     * deleting a rollback journal; NORMAL: a process crash loses nothing (the
     * OS has the pages), only a power cut can lose the newest registrations. */
    sqlite3_exec(r->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", NULL, NULL, NULL);
    if (sqlite3_exec(r->db, migration, NULL, NULL, NULL) != SQLITE_OK) {
        dm_err_t rc = sql_err(r, err, "creating tables");
        dm_schema_registry_close(r);
        return rc;
    }
    dm_err_t rc = migrate_identity(r, err);
    if (rc) {
        dm_schema_registry_close(r);
        return rc;
    }
    *out = r;
    return DM_OK;
}

void dm_schema_registry_close(dm_schema_registry_t *r)
{
    if (!r) return;
    for (int i = 0; i < STMT_CACHE; i++)
        sqlite3_finalize(r->slots[i].st);
    sqlite3_close(r->db);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

/* ---- small helpers ------------------------------------------------------------------ */

/* A statement for sql (a string literal), from the cache when its slot is
 * free; give it back with done(). */
static sqlite3_stmt *prep(dm_schema_registry_t *r, const char *sql)
{
    pthread_mutex_lock(&r->mu);
    stmt_slot_t *free_slot = NULL;
    for (int i = 0; i < STMT_CACHE; i++) {
        stmt_slot_t *sl = &r->slots[i];
        if (sl->sql == sql && !sl->busy) {
            sl->busy = true;
            pthread_mutex_unlock(&r->mu);
            return sl->st;
        }
        if (!sl->sql && !free_slot) free_slot = sl;
    }
    if (free_slot) { /* claimed (busy) before unlocking */
        free_slot->sql = sql;
        free_slot->busy = true;
    }
    pthread_mutex_unlock(&r->mu);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v3(r->db, sql, -1, free_slot ? SQLITE_PREPARE_PERSISTENT : 0, &st, NULL) !=
        SQLITE_OK) {
        sqlite3_finalize(st);
        st = NULL;
    }
    if (free_slot) {
        pthread_mutex_lock(&r->mu);
        free_slot->st = st;
        free_slot->busy = st != NULL;
        if (!st) free_slot->sql = NULL;
        pthread_mutex_unlock(&r->mu);
    }
    return st;
}

/* Gives back a statement from prep (NULL is fine). */
static void done(dm_schema_registry_t *r, sqlite3_stmt *st)
{
    if (!st) return;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < STMT_CACHE; i++)
        if (r->slots[i].st == st) {
            r->slots[i].busy = false;
            pthread_mutex_unlock(&r->mu);
            return;
        }
    pthread_mutex_unlock(&r->mu);
    done(r, st);
}

static char *dup_col(sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    return strdup(t ? (const char *)t : "");
}

/* The identity of a schema text: its JSON with sorted keys, compact (malloc'd). */
static char *identity_of(const char *schema_json)
{
    json_t *j = json_loads(schema_json, JSON_DECODE_ANY, NULL);
    char *id = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) : NULL;
    json_decref(j);
    return id;
}

/* Parses schema_json; *canon gets its identity (malloc'd) and *fp the Rabin
 * fingerprint of its Parsing Canonical Form. */
static dm_err_t canonical_of(const char *schema_json, dm_avro_schema_t **schema, char **canon,
                             uint64_t *fp, dm_error_t *err)
{
    dm_err_t rc = dm_avro_schema_parse(schema_json, strlen(schema_json), schema, err);
    if (rc) return rc;
    dm_buf_t b = DM_BUF_INIT;
    *canon = identity_of(schema_json);
    if (!*canon || dm_avro_canonical((*schema)->root, &b)) {
        free(*canon);
        dm_buf_free(&b);
        dm_avro_schema_free(*schema);
        *schema = NULL;
        return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    }
    *fp = dm_avro_rabin64(b.data, b.len);
    dm_buf_free(&b);
    return DM_OK;
}

/* Rewrites the identity column of a store from an earlier version. */
static dm_err_t migrate_identity(dm_schema_registry_t *r, dm_error_t *err)
{
    sqlite3_stmt *v = prep(r, "PRAGMA user_version");
    int version = v && sqlite3_step(v) == SQLITE_ROW ? sqlite3_column_int(v, 0) : 0;
    done(r, v);
    if (version >= 2) return DM_OK;
    sqlite3_stmt *sel = NULL, *upd = NULL;
    dm_err_t rc = sqlite3_exec(r->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK
                      ? DM_OK
                      : sql_err(r, err, "migrating");
    if (!rc) {
        sel = prep(r, "SELECT id, schema FROM schemas");
        upd = prep(r, "UPDATE schemas SET canonical = ?1 WHERE id = ?2");
        if (!sel || !upd) rc = sql_err(r, err, "migrating");
    }
    while (!rc && sqlite3_step(sel) == SQLITE_ROW) {
        char *id = identity_of((const char *)sqlite3_column_text(sel, 1));
        if (!id) continue; /* unparsable text keeps its old identity */
        sqlite3_bind_text(upd, 1, id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(upd, 2, sqlite3_column_int64(sel, 0));
        if (sqlite3_step(upd) != SQLITE_DONE) rc = sql_err(r, err, "migrating a schema");
        sqlite3_reset(upd);
        free(id);
    }
    done(r, sel);
    done(r, upd);
    if (!rc &&
        sqlite3_exec(r->db, "PRAGMA user_version = 2; COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        rc = sql_err(r, err, "migrating");
    if (rc) sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

dm_err_t dm_schema_registry_get_level(dm_schema_registry_t *r, const char *subject,
                                      dm_schema_compat_level_t *level, dm_error_t *err)
{
    sqlite3_stmt *st = prep(r, "SELECT level FROM config WHERE subject = ?1 "
                               "UNION ALL SELECT level FROM config WHERE subject = '' LIMIT 1");
    if (!st) return sql_err(r, err, "reading the level");
    sqlite3_bind_text(st, 1, subject ? subject : "", -1, SQLITE_TRANSIENT);
    *level = DM_COMPAT_BACKWARD;
    if (sqlite3_step(st) == SQLITE_ROW)
        dm_schema_compat_level_parse((const char *)sqlite3_column_text(st, 0), level);
    done(r, st);
    return DM_OK;
}

dm_err_t dm_schema_registry_set_level(dm_schema_registry_t *r, const char *subject,
                                      dm_schema_compat_level_t level, dm_error_t *err)
{
    sqlite3_stmt *st = prep(r, "INSERT INTO config(subject, level) VALUES (?1, ?2) "
                               "ON CONFLICT(subject) DO UPDATE SET level = excluded.level");
    if (!st) return sql_err(r, err, "setting the level");
    sqlite3_bind_text(st, 1, subject ? subject : "", -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, dm_schema_compat_level_name(level), -1, SQLITE_STATIC);
    int s = sqlite3_step(st);
    done(r, st);
    return s == SQLITE_DONE ? DM_OK : sql_err(r, err, "setting the level");
}

/* Loads the subject's live schemas, newest first (for compatibility checks). */
static dm_err_t live_schemas(dm_schema_registry_t *r, const char *subject, dm_avro_schema_t ***out,
                             size_t *n, dm_error_t *err)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st = prep(r, "SELECT s.schema FROM versions v JOIN schemas s ON s.id = "
                               "v.schema_id WHERE v.subject = ?1 AND v.deleted = 0 "
                               "ORDER BY v.version DESC");
    if (!st) return sql_err(r, err, "reading versions");
    sqlite3_bind_text(st, 1, subject, -1, SQLITE_TRANSIENT);
    dm_err_t rc = DM_OK;
    size_t cap = 0;
    while (!rc && sqlite3_step(st) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            dm_avro_schema_t **g = realloc(*out, cap * sizeof(*g));
            if (!g) {
                rc = dm_error_set(err, DM_ERR_NOMEM, "out of memory");
                break;
            }
            *out = g;
        }
        const char *text = (const char *)sqlite3_column_text(st, 0);
        rc = dm_avro_schema_parse(text, strlen(text), &(*out)[*n], err);
        if (!rc) (*n)++;
    }
    done(r, st);
    return rc;
}

static void free_schemas(dm_avro_schema_t **s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dm_avro_schema_free(s[i]);
    free(s);
}

static dm_err_t check_locked(dm_schema_registry_t *r, const char *subject,
                             const dm_avro_schema_t *schema, dm_schema_compat_report_t *report,
                             dm_error_t *err)
{
    dm_schema_compat_level_t level;
    dm_err_t rc = dm_schema_registry_get_level(r, subject, &level, err);
    if (rc) return rc;
    dm_avro_schema_t **olds;
    size_t n;
    if ((rc = live_schemas(r, subject, &olds, &n, err))) return rc;
    rc = dm_schema_compat_check(level, schema, (const dm_avro_schema_t *const *)olds, n, report);
    free_schemas(olds, n);
    if (rc)
        dm_error_set(err, rc, "schema is not %s compatible with subject \"%s\"",
                     dm_schema_compat_level_name(level), subject);
    return rc;
}

uint64_t dm_schema_registry_changes(dm_schema_registry_t *r)
{
    /* data_version moves with other connections' commits, total_changes with this one's */
    int64_t version = 0;
    sqlite3_stmt *st;
    pthread_mutex_lock(&r->mu);
    if (sqlite3_prepare_v2(r->db, "PRAGMA data_version", -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW) version = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    uint64_t own = (uint64_t)sqlite3_total_changes64(r->db);
    pthread_mutex_unlock(&r->mu);
    return ((uint64_t)version << 40) ^ own;
}

dm_err_t dm_schema_registry_check(dm_schema_registry_t *r, const char *subject,
                                  const char *schema_json, dm_schema_compat_report_t *report,
                                  dm_error_t *err)
{
    dm_avro_schema_t *s = NULL;
    dm_err_t rc = dm_avro_schema_parse(schema_json, strlen(schema_json), &s, err);
    if (!rc) rc = check_locked(r, subject, s, report, err);
    dm_avro_schema_free(s);
    return rc;
}

/* The live version of subject holding canonical, if any. */
static dm_err_t find_version(dm_schema_registry_t *r, const char *subject, const char *canon,
                             int64_t *id, int *version, bool *found, dm_error_t *err)
{
    sqlite3_stmt *st = prep(r, "SELECT s.id, v.version FROM versions v JOIN schemas s ON s.id = "
                               "v.schema_id WHERE v.subject = ?1 AND v.deleted = 0 AND "
                               "s.canonical = ?2 ORDER BY v.version LIMIT 1");
    if (!st) return sql_err(r, err, "looking up a version");
    sqlite3_bind_text(st, 1, subject, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, canon, -1, SQLITE_TRANSIENT);
    *found = sqlite3_step(st) == SQLITE_ROW;
    if (*found) {
        if (id) *id = sqlite3_column_int64(st, 0);
        if (version) *version = sqlite3_column_int(st, 1);
    }
    done(r, st);
    return DM_OK;
}

dm_err_t dm_schema_registry_register(dm_schema_registry_t *r, const char *subject,
                                     const char *schema_json, int64_t *id, int *version,
                                     dm_schema_compat_report_t *report, dm_error_t *err)
{
    dm_avro_schema_t *schema;
    char *canon;
    uint64_t fp;
    dm_err_t rc = canonical_of(schema_json, &schema, &canon, &fp, err);
    if (rc) return rc;
    if (sqlite3_exec(r->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        rc = sql_err(r, err, "begin");
        goto out;
    }
    bool found;
    if ((rc = find_version(r, subject, canon, id, version, &found, err))) goto rollback;
    if (found) goto commit;
    if ((rc = check_locked(r, subject, schema, report, err))) goto rollback;
    /* Insert only a new canonical form: an upsert that does nothing would still
     * advance the AUTOINCREMENT sequence and leave gaps in the ids. */
    sqlite3_stmt *st = prep(r, "INSERT INTO schemas(canonical, fingerprint, schema) "
                               "SELECT ?1, ?2, ?3 WHERE NOT EXISTS "
                               "(SELECT 1 FROM schemas WHERE canonical = ?1)");
    if (!st) {
        rc = sql_err(r, err, "storing the schema");
        goto rollback;
    }
    sqlite3_bind_text(st, 1, canon, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)fp);
    sqlite3_bind_text(st, 3, schema_json, -1, SQLITE_TRANSIENT);
    int s = sqlite3_step(st);
    done(r, st);
    if (s != SQLITE_DONE) {
        rc = sql_err(r, err, "storing the schema");
        goto rollback;
    }
    st = prep(r, "INSERT INTO versions(subject, version, schema_id) "
                 "SELECT ?1, COALESCE((SELECT MAX(version) FROM versions WHERE subject = ?1), 0) "
                 "+ 1, id FROM schemas WHERE canonical = ?2 "
                 "RETURNING version, schema_id");
    if (!st) {
        rc = sql_err(r, err, "adding the version");
        goto rollback;
    }
    sqlite3_bind_text(st, 1, subject, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, canon, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) == SQLITE_ROW) {
        if (version) *version = sqlite3_column_int(st, 0);
        if (id) *id = sqlite3_column_int64(st, 1);
        s = SQLITE_DONE;
    } else {
        s = SQLITE_ERROR;
    }
    done(r, st);
    if (s != SQLITE_DONE) {
        rc = sql_err(r, err, "adding the version");
        goto rollback;
    }
commit:
    if (sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        rc = sql_err(r, err, "commit");
        goto rollback;
    }
    goto out;
rollback:
    sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
out:
    free(canon);
    dm_avro_schema_free(schema);
    return rc;
}

dm_err_t dm_schema_registry_get_by_id(dm_schema_registry_t *r, int64_t id, char **schema,
                                      dm_error_t *err)
{
    sqlite3_stmt *st = prep(r, "SELECT schema FROM schemas WHERE id = ?1");
    if (!st) return sql_err(r, err, "reading a schema");
    sqlite3_bind_int64(st, 1, id);
    dm_err_t rc = DM_OK;
    if (sqlite3_step(st) == SQLITE_ROW)
        *schema = dup_col(st, 0);
    else
        rc = dm_error_set(err, DM_ERR_NOT_FOUND, "schema id %lld not found", (long long)id);
    done(r, st);
    return rc;
}

dm_err_t dm_schema_registry_get_version(dm_schema_registry_t *r, const char *subject, int version,
                                        int64_t *id, int *version_out, char **schema,
                                        dm_error_t *err)
{
    sqlite3_stmt *st = prep(r, "SELECT s.id, v.version, s.schema FROM versions v JOIN schemas s "
                               "ON s.id = v.schema_id WHERE v.subject = ?1 AND v.deleted = 0 "
                               "AND (?2 < 0 OR v.version = ?2) ORDER BY v.version DESC LIMIT 1");
    if (!st) return sql_err(r, err, "reading a version");
    sqlite3_bind_text(st, 1, subject, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 2, version);
    dm_err_t rc = DM_OK;
    if (sqlite3_step(st) == SQLITE_ROW) {
        if (id) *id = sqlite3_column_int64(st, 0);
        if (version_out) *version_out = sqlite3_column_int(st, 1);
        if (schema) *schema = dup_col(st, 2);
    } else {
        rc = version < 0 ? dm_error_set(err, DM_ERR_NOT_FOUND, "subject \"%s\" not found", subject)
                         : dm_error_set(err, DM_ERR_NOT_FOUND, "subject \"%s\" has no version %d",
                                        subject, version);
    }
    done(r, st);
    return rc;
}

dm_err_t dm_schema_registry_latest_ids(dm_schema_registry_t *r, json_t **out, dm_error_t *err)
{
    *out = json_object();
    sqlite3_stmt *st = prep(r, "SELECT subject, schema_id FROM versions WHERE deleted = 0 "
                               "ORDER BY subject, version");
    if (!st || !*out) {
        json_decref(*out);
        *out = NULL;
        if (st) done(r, st);
        return st ? dm_error_set(err, DM_ERR_NOMEM, "out of memory")
                  : sql_err(r, err, "reading the latest versions");
    }
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *subject = (const char *)sqlite3_column_text(st, 0);
        /* ordered by version: the last one set is the latest */
        if (subject) json_object_set_new(*out, subject, json_integer(sqlite3_column_int64(st, 1)));
    }
    done(r, st);
    if (rc != SQLITE_DONE) {
        json_decref(*out);
        *out = NULL;
        return sql_err(r, err, "reading the latest versions");
    }
    return DM_OK;
}

dm_err_t dm_schema_registry_lookup(dm_schema_registry_t *r, const char *subject,
                                   const char *schema_json, int64_t *id, int *version,
                                   dm_error_t *err)
{
    dm_avro_schema_t *schema;
    char *canon;
    uint64_t fp;
    dm_err_t rc = canonical_of(schema_json, &schema, &canon, &fp, err);
    if (rc) return rc;
    bool found = false;
    rc = find_version(r, subject, canon, id, version, &found, err);
    if (!rc && !found)
        rc = dm_error_set(err, DM_ERR_NOT_FOUND, "schema not found under subject \"%s\"", subject);
    free(canon);
    dm_avro_schema_free(schema);
    return rc;
}

void dm_schema_registry_free_list(char **list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

dm_err_t dm_schema_registry_subjects(dm_schema_registry_t *r, bool include_deleted,
                                     char ***subjects, size_t *n, dm_error_t *err)
{
    *subjects = NULL;
    *n = 0;
    sqlite3_stmt *st = prep(r, "SELECT DISTINCT subject FROM versions WHERE ?1 OR deleted = 0 "
                               "ORDER BY subject");
    if (!st) return sql_err(r, err, "listing subjects");
    sqlite3_bind_int(st, 1, include_deleted);
    size_t cap = 0;
    dm_err_t rc = DM_OK;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            char **g = realloc(*subjects, cap * sizeof(*g));
            if (!g) {
                rc = dm_error_set(err, DM_ERR_NOMEM, "out of memory");
                break;
            }
            *subjects = g;
        }
        (*subjects)[(*n)++] = dup_col(st, 0);
    }
    done(r, st);
    return rc;
}

dm_err_t dm_schema_registry_versions(dm_schema_registry_t *r, const char *subject,
                                     bool include_deleted, int **versions, size_t *n,
                                     dm_error_t *err)
{
    *versions = NULL;
    *n = 0;
    sqlite3_stmt *st = prep(r, "SELECT version FROM versions WHERE subject = ?1 AND "
                               "(?2 OR deleted = 0) ORDER BY version");
    if (!st) return sql_err(r, err, "listing versions");
    sqlite3_bind_text(st, 1, subject, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 2, include_deleted);
    size_t cap = 0;
    dm_err_t rc = DM_OK;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            int *g = realloc(*versions, cap * sizeof(*g));
            if (!g) {
                rc = dm_error_set(err, DM_ERR_NOMEM, "out of memory");
                break;
            }
            *versions = g;
        }
        (*versions)[(*n)++] = sqlite3_column_int(st, 0);
    }
    done(r, st);
    if (!rc && *n == 0)
        rc = dm_error_set(err, DM_ERR_NOT_FOUND, "subject \"%s\" not found", subject);
    return rc;
}

dm_err_t dm_schema_registry_delete_version(dm_schema_registry_t *r, const char *subject,
                                           int version, bool permanent, dm_error_t *err)
{
    sqlite3_stmt *st = prep(r, "SELECT version, deleted FROM versions WHERE subject = ?1 AND "
                               "(?2 >= 0 AND version = ?2 OR ?2 < 0 AND deleted = 0) "
                               "ORDER BY version DESC LIMIT 1");
    if (!st) return sql_err(r, err, "deleting a version");
    sqlite3_bind_text(st, 1, subject, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 2, version);
    if (sqlite3_step(st) != SQLITE_ROW) {
        done(r, st);
        return dm_error_set(err, DM_ERR_NOT_FOUND, "subject \"%s\" has no version %d", subject,
                            version);
    }
    int v = sqlite3_column_int(st, 0);
    bool deleted = sqlite3_column_int(st, 1) != 0;
    done(r, st);
    if (permanent && !deleted)
        return dm_error_set(err, DM_ERR_INVALID,
                            "version %d of \"%s\" must be soft-deleted before a permanent delete",
                            v, subject);
    if (!permanent && deleted)
        return dm_error_set(err, DM_ERR_NOT_FOUND, "version %d of \"%s\" is already deleted", v,
                            subject);
    st = prep(r, permanent ? "DELETE FROM versions WHERE subject = ?1 AND version = ?2"
                           : "UPDATE versions SET deleted = 1 WHERE subject = ?1 AND version = ?2");
    if (!st) return sql_err(r, err, "deleting a version");
    sqlite3_bind_text(st, 1, subject, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 2, v);
    int s = sqlite3_step(st);
    done(r, st);
    return s == SQLITE_DONE ? DM_OK : sql_err(r, err, "deleting a version");
}

dm_err_t dm_schema_registry_delete_subject(dm_schema_registry_t *r, const char *subject,
                                           bool permanent, size_t *count, dm_error_t *err)
{
    int *versions;
    size_t n;
    dm_err_t rc = dm_schema_registry_versions(r, subject, permanent, &versions, &n, err);
    if (rc) return rc;
    free(versions);
    if (permanent) {
        /* like Confluent: a permanent delete needs the soft delete first */
        int *live;
        size_t n_live = 0;
        dm_error_t ignore;
        if (dm_schema_registry_versions(r, subject, false, &live, &n_live, &ignore) == DM_OK) {
            free(live);
            return dm_error_set(err, DM_ERR_INVALID,
                                "subject \"%s\" must be soft-deleted before a permanent delete",
                                subject);
        }
    }
    sqlite3_stmt *st = prep(r, permanent ? "DELETE FROM versions WHERE subject = ?1"
                                         : "UPDATE versions SET deleted = 1 WHERE subject = ?1 "
                                           "AND deleted = 0");
    if (!st) return sql_err(r, err, "deleting a subject");
    sqlite3_bind_text(st, 1, subject, -1, SQLITE_TRANSIENT);
    int s = sqlite3_step(st);
    done(r, st);
    if (s != SQLITE_DONE) return sql_err(r, err, "deleting a subject");
    if (count) *count = (size_t)sqlite3_changes(r->db);
    return DM_OK;
}
