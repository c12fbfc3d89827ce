/* connectors/iceberg/catalog.c — where a table's current metadata file is
 * recorded, and the compare-and-swap that makes a commit atomic.
 *
 * sqlite and postgres: the JDBC catalog's layout (iceberg_tables with catalog_name,
 * table_namespace, table_name, metadata_location, previous_metadata_location),
 * so Java's JdbcCatalog and PyIceberg's SqlCatalog open the same tables; the
 * swap is an UPDATE guarded by the expected metadata_location.
 * file: version files metadata/vN.metadata.json created with link(2), which
 * fails when vN exists (the swap), and metadata/version-hint.text naming N as
 * a hint (readers probe past it, so a crash between the two loses nothing).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "connectors/iceberg/table.h"
#include "core/fs.h"
#include "core/redact.h"

struct dm_ice_catalog {
    dm_ice_catalog_kind_t kind;
    char *name;
    sqlite3 *db;
    PGconn *pg;
};

void dm_ice_uuid(char out[37])
{
    uint8_t b[16] = {0};
    FILE *f = fopen("/dev/urandom", "rb");
    if (!f || fread(b, 1, 16, f) != 16) {
        /* Not expected on Linux; fall back on the clock and the pid. */
        uint64_t x = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)out;
        for (int i = 0; i < 16; i++)
            b[i] = (uint8_t)(x >> (8 * (i % 8))) ^ (uint8_t)(i * 37);
    }
    if (f) fclose(f);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

static dm_err_t write_tmp(const char *tmp, const void *data, size_t len, dm_error_t *err)
{
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return dm_error_set(err, DM_ERR_IO, "iceberg: cannot create %s: %s", tmp, strerror(errno));
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, (const char *)data + off, len - off);
        if (n <= 0) break;
        off += (size_t)n;
    }
    bool ok = off == len && fsync(fd) == 0;
    int e = errno;
    close(fd);
    if (!ok) {
        unlink(tmp);
        return dm_error_set(err, DM_ERR_IO, "iceberg: writing %s: %s", tmp, strerror(e));
    }
    return DM_OK;
}

dm_err_t dm_ice_write_file(const char *path, const void *data, size_t len, dm_error_t *err)
{
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    dm_err_t rc = write_tmp(tmp, data, len, err);
    if (rc) return rc;
    if (rename(tmp, path)) {
        unlink(tmp);
        return dm_error_set(err, DM_ERR_IO, "iceberg: renaming %s: %s", tmp, strerror(errno));
    }
    return DM_OK;
}

dm_err_t dm_ice_read_file(const char *path, char **out, size_t *len, dm_error_t *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return dm_error_set(err, errno == ENOENT ? DM_ERR_NOT_FOUND : DM_ERR_IO,
                            "iceberg: cannot open %s: %s", path, strerror(errno));
    dm_buf_t b = DM_BUF_INIT;
    char chunk[65536];
    size_t n;
    dm_err_t rc = DM_OK;
    while (!rc && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        rc = dm_buf_append(&b, chunk, n);
    fclose(f);
    const char *s;
    if (!rc) rc = dm_buf_cstr(&b, &s);
    if (rc) {
        dm_buf_free(&b);
        return dm_error_set(err, rc, "iceberg: reading %s: out of memory", path);
    }
    if (len) *len = b.len;
    *out = (char *)dm_buf_detach(&b, NULL);
    return DM_OK;
}

static dm_err_t pg_open(dm_ice_catalog_t *c, const char *dsn, dm_error_t *err);

static dm_err_t sql_error(dm_ice_catalog_t *c, const char *what, dm_error_t *err)
{
    int code = sqlite3_errcode(c->db);
    return dm_error_set(err,
                        code == SQLITE_BUSY || code == SQLITE_LOCKED ? DM_ERR_AGAIN : DM_ERR_IO,
                        "iceberg: sqlite catalog: %s: %s", what, sqlite3_errmsg(c->db));
}

static dm_err_t sql_exec(dm_ice_catalog_t *c, const char *sql, dm_error_t *err)
{
    return sqlite3_exec(c->db, sql, NULL, NULL, NULL) == SQLITE_OK ? DM_OK : sql_error(c, sql, err);
}

dm_err_t dm_ice_catalog_open(dm_ice_catalog_kind_t kind, const char *uri, const char *name,
                             dm_ice_catalog_t **out, dm_error_t *err)
{
    *out = NULL;
    dm_ice_catalog_t *c = calloc(1, sizeof(*c));
    if (!c || !(c->name = strdup(name ? name : "datamesh"))) {
        free(c);
        return dm_error_set(err, DM_ERR_NOMEM, "iceberg: out of memory");
    }
    c->kind = kind;
    if (kind == DM_ICE_CATALOG_POSTGRES) {
        dm_err_t rc = pg_open(c, uri, err);
        if (rc) {
            dm_ice_catalog_close(c);
            return rc;
        }
    }
    if (kind == DM_ICE_CATALOG_SQLITE) {
        dm_err_t rc = dm_mkdirs(uri, true, err);
        if (!rc && sqlite3_open(uri, &c->db) != SQLITE_OK)
            rc = dm_error_set(err, DM_ERR_IO, "iceberg: cannot open sqlite catalog %s: %s", uri,
                              c->db ? sqlite3_errmsg(c->db) : "out of memory");
        if (!rc) sqlite3_busy_timeout(c->db, 5000);
        if (!rc)
            rc = sql_exec(c,
                          "CREATE TABLE IF NOT EXISTS iceberg_tables ("
                          "catalog_name VARCHAR(255) NOT NULL, "
                          "table_namespace VARCHAR(255) NOT NULL, "
                          "table_name VARCHAR(255) NOT NULL, "
                          "metadata_location VARCHAR(1000), "
                          "previous_metadata_location VARCHAR(1000), "
                          "PRIMARY KEY (catalog_name, table_namespace, table_name));"
                          "CREATE TABLE IF NOT EXISTS iceberg_namespace_properties ("
                          "catalog_name VARCHAR(255) NOT NULL, "
                          "namespace VARCHAR(255) NOT NULL, "
                          "property_key VARCHAR(255), "
                          "property_value VARCHAR(1000), "
                          "PRIMARY KEY (catalog_name, namespace, property_key));",
                          err);
        if (rc) {
            dm_ice_catalog_close(c);
            return rc;
        }
    }
    *out = c;
    return DM_OK;
}

void dm_ice_catalog_close(dm_ice_catalog_t *c)
{
    if (!c) return;
    if (c->db) sqlite3_close(c->db);
    if (c->pg) PQfinish(c->pg);
    free(c->name);
    free(c);
}

static bool exists(const char *path)
{
    return access(path, F_OK) == 0;
}

/* ---- file catalog ------------------------------------------------------------- */

static void version_path(char *out, size_t cap, const char *table_dir, int64_t v)
{
    snprintf(out, cap, "%s/metadata/v%" PRId64 ".metadata.json", table_dir, v);
}

static dm_err_t file_load(const char *table_dir, char **location, int64_t *version, dm_error_t *err)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/metadata/version-hint.text", table_dir);
    char *hint = NULL;
    int64_t v = 0;
    dm_err_t rc = dm_ice_read_file(path, &hint, NULL, err);
    if (rc == DM_ERR_NOT_FOUND) rc = DM_OK;
    if (rc) return rc;
    if (hint) v = strtoll(hint, NULL, 10);
    free(hint);
    if (v < 0) v = 0;
    /* The hint may lag a crash: probe for later versions. */
    for (;;) {
        version_path(path, sizeof(path), table_dir, v + 1);
        if (!exists(path)) break;
        v++;
    }
    if (v > 0) {
        version_path(path, sizeof(path), table_dir, v);
        if (!exists(path))
            return dm_error_set(err, DM_ERR_CORRUPT,
                                "iceberg: %s/metadata/version-hint.text names v%" PRId64
                                ", which is missing",
                                table_dir, v);
    }
    *version = v;
    *location = NULL;
    if (v > 0 && asprintf(location, "file://%s", path) < 0) return DM_ERR_NOMEM;
    return DM_OK;
}

static dm_err_t file_commit(const char *table_dir, const char *expected, const char *metadata,
                            char **location, dm_error_t *err)
{
    char *cur = NULL;
    int64_t v = 0;
    dm_err_t rc = file_load(table_dir, &cur, &v, err);
    if (rc) return rc;
    bool stale = (expected == NULL) != (cur == NULL) ||
                 (expected && strcmp(dm_ice_local_path(expected), dm_ice_local_path(cur)));
    free(cur);
    if (stale)
        return dm_error_set(err, DM_ERR_AGAIN, "iceberg: %s changed under this commit", table_dir);
    char path[4200], tmp[4300];
    version_path(path, sizeof(path), table_dir, v + 1);
    snprintf(tmp, sizeof(tmp), "%s/metadata/.v%" PRId64 ".%d.tmp", table_dir, v + 1, (int)getpid());
    if ((rc = dm_mkdirs(path, true, err))) return rc;
    if ((rc = write_tmp(tmp, metadata, strlen(metadata), err))) return rc;
    int lr = link(tmp, path);
    int e = errno;
    unlink(tmp);
    if (lr != 0)
        return e == EEXIST
                   ? dm_error_set(err, DM_ERR_AGAIN,
                                  "iceberg: v%" PRId64 " of %s was committed by another writer",
                                  v + 1, table_dir)
                   : dm_error_set(err, DM_ERR_IO, "iceberg: cannot create %s: %s", path,
                                  strerror(e));
    char hint[4200], num[24];
    snprintf(hint, sizeof(hint), "%s/metadata/version-hint.text", table_dir);
    snprintf(num, sizeof(num), "%" PRId64, v + 1);
    /* The commit is done; a stale hint only costs readers a probe. */
    dm_ice_write_file(hint, num, strlen(num), NULL);
    if (asprintf(location, "file://%s", path) < 0) return DM_ERR_NOMEM;
    return DM_OK;
}

/* ---- sqlite catalog --------------------------------------------------------------- */

static dm_err_t sql_load(dm_ice_catalog_t *c, const char *ns, const char *name, char **location,
                         dm_error_t *err)
{
    *location = NULL;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(c->db,
                           "SELECT metadata_location FROM iceberg_tables WHERE catalog_name = ? "
                           "AND table_namespace = ? AND table_name = ?",
                           -1, &st, NULL) != SQLITE_OK)
        return sql_error(c, "select", err);
    sqlite3_bind_text(st, 1, c->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, ns, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
    int r = sqlite3_step(st);
    dm_err_t rc = DM_OK;
    if (r == SQLITE_ROW && sqlite3_column_text(st, 0)) {
        if (!(*location = strdup((const char *)sqlite3_column_text(st, 0)))) rc = DM_ERR_NOMEM;
    } else if (r != SQLITE_ROW && r != SQLITE_DONE) {
        rc = sql_error(c, "select", err);
    }
    sqlite3_finalize(st);
    return rc;
}

static dm_err_t sql_swap(dm_ice_catalog_t *c, const char *ns, const char *name,
                         const char *expected, const char *location, dm_error_t *err)
{
    sqlite3_stmt *st;
    const char *sql = expected ? "UPDATE iceberg_tables SET metadata_location = ?, "
                                 "previous_metadata_location = ? WHERE catalog_name = ? AND "
                                 "table_namespace = ? AND table_name = ? AND metadata_location = ?"
                               : "INSERT OR IGNORE INTO iceberg_tables (metadata_location, "
                                 "previous_metadata_location, catalog_name, table_namespace, "
                                 "table_name) VALUES (?, ?, ?, ?, ?)";
    if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK)
        return sql_error(c, "prepare", err);
    sqlite3_bind_text(st, 1, location, -1, SQLITE_STATIC);
    if (expected)
        sqlite3_bind_text(st, 2, expected, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 2);
    sqlite3_bind_text(st, 3, c->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, ns, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, name, -1, SQLITE_STATIC);
    if (expected) sqlite3_bind_text(st, 6, expected, -1, SQLITE_STATIC);
    int r = sqlite3_step(st);
    sqlite3_finalize(st);
    if (r != SQLITE_DONE) return sql_error(c, "swap", err);
    if (sqlite3_changes(c->db) != 1)
        return dm_error_set(err, DM_ERR_AGAIN, "iceberg: %s.%s changed under this commit", ns,
                            name);
    if (!expected) {
        /* The namespace exists for catalog tools that list namespaces. */
        sqlite3_stmt *ns_st;
        if (sqlite3_prepare_v2(c->db,
                               "INSERT OR IGNORE INTO iceberg_namespace_properties VALUES (?, ?, "
                               "'exists', 'true')",
                               -1, &ns_st, NULL) == SQLITE_OK) {
            sqlite3_bind_text(ns_st, 1, c->name, -1, SQLITE_STATIC);
            sqlite3_bind_text(ns_st, 2, ns, -1, SQLITE_STATIC);
            sqlite3_step(ns_st);
            sqlite3_finalize(ns_st);
        }
    }
    return DM_OK;
}

/* ---- postgres catalog --------------------------------------------------------------- */

static const char pg_schema[] =
    "CREATE TABLE IF NOT EXISTS iceberg_tables ("
    "catalog_name VARCHAR(255) NOT NULL, table_namespace VARCHAR(255) NOT NULL, "
    "table_name VARCHAR(255) NOT NULL, metadata_location VARCHAR(1000), "
    "previous_metadata_location VARCHAR(1000), "
    "PRIMARY KEY (catalog_name, table_namespace, table_name));"
    "CREATE TABLE IF NOT EXISTS iceberg_namespace_properties ("
    "catalog_name VARCHAR(255) NOT NULL, namespace VARCHAR(255) NOT NULL, "
    "property_key VARCHAR(255) NOT NULL, property_value VARCHAR(1000), "
    "PRIMARY KEY (catalog_name, namespace, property_key));";

/* Errors name the server with its password replaced. */
static dm_err_t pg_error(dm_ice_catalog_t *c, const char *what, const char *dsn, dm_error_t *err)
{
    char safe[512] = "";
    if (dsn) dm_redact_dsn(dsn, safe, sizeof(safe));
    bool lost = !c->pg || PQstatus(c->pg) != CONNECTION_OK;
    return dm_error_set(err, lost ? DM_ERR_AGAIN : DM_ERR_IO,
                        "iceberg: postgres catalog%s%s: %s: %s", dsn ? " " : "", safe, what,
                        c->pg ? PQerrorMessage(c->pg) : "out of memory");
}

static dm_err_t pg_open(dm_ice_catalog_t *c, const char *dsn, dm_error_t *err)
{
    c->pg = PQconnectdb(dsn ? dsn : "");
    if (!c->pg || PQstatus(c->pg) != CONNECTION_OK) return pg_error(c, "connect", dsn, err);
    PGresult *r = PQexec(c->pg, pg_schema);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    return ok ? DM_OK : pg_error(c, "creating iceberg_tables", NULL, err);
}

static dm_err_t pg_load(dm_ice_catalog_t *c, const char *ns, const char *name, char **location,
                        dm_error_t *err)
{
    const char *params[] = {c->name, ns, name};
    PGresult *r =
        PQexecParams(c->pg,
                     "SELECT metadata_location FROM iceberg_tables WHERE catalog_name = $1 "
                     "AND table_namespace = $2 AND table_name = $3",
                     3, NULL, params, NULL, NULL, 0);
    dm_err_t rc = DM_OK;
    *location = NULL;
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        rc = pg_error(c, "select", NULL, err);
    else if (PQntuples(r) == 1 && !PQgetisnull(r, 0, 0) &&
             !(*location = strdup(PQgetvalue(r, 0, 0))))
        rc = DM_ERR_NOMEM;
    PQclear(r);
    return rc;
}

static dm_err_t pg_swap(dm_ice_catalog_t *c, const char *ns, const char *name, const char *expected,
                        const char *location, dm_error_t *err)
{
    PGresult *r;
    if (expected) {
        const char *params[] = {location, expected, c->name, ns, name};
        r = PQexecParams(c->pg,
                         "UPDATE iceberg_tables SET metadata_location = $1, "
                         "previous_metadata_location = $2 WHERE catalog_name = $3 AND "
                         "table_namespace = $4 AND table_name = $5 AND metadata_location = $2",
                         5, NULL, params, NULL, NULL, 0);
    } else {
        const char *params[] = {c->name, ns, name, location};
        r = PQexecParams(c->pg,
                         "INSERT INTO iceberg_tables (catalog_name, table_namespace, table_name, "
                         "metadata_location) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                         4, NULL, params, NULL, NULL, 0);
    }
    dm_err_t rc = DM_OK;
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        rc = pg_error(c, "swap", NULL, err);
    else if (strcmp(PQcmdTuples(r), "1"))
        rc = dm_error_set(err, DM_ERR_AGAIN, "iceberg: %s.%s changed under this commit", ns, name);
    PQclear(r);
    if (!rc && !expected) {
        const char *params[] = {c->name, ns};
        r = PQexecParams(c->pg,
                         "INSERT INTO iceberg_namespace_properties VALUES ($1, $2, 'exists', "
                         "'true') ON CONFLICT DO NOTHING",
                         2, NULL, params, NULL, NULL, 0);
        PQclear(r);
    }
    return rc;
}

/* ---- either --------------------------------------------------------------------------- */

dm_err_t dm_ice_catalog_load(dm_ice_catalog_t *c, const char *ns, const char *name,
                             const char *table_dir, char **location, dm_error_t *err)
{
    if (c->kind == DM_ICE_CATALOG_SQLITE) return sql_load(c, ns, name, location, err);
    if (c->kind == DM_ICE_CATALOG_POSTGRES) return pg_load(c, ns, name, location, err);
    int64_t v;
    return file_load(table_dir, location, &v, err);
}

dm_err_t dm_ice_catalog_commit(dm_ice_catalog_t *c, const char *ns, const char *name,
                               const char *table_dir, const char *expected, const char *metadata,
                               int64_t version, char **location, dm_error_t *err)
{
    *location = NULL;
    if (c->kind == DM_ICE_CATALOG_FILE)
        return file_commit(table_dir, expected, metadata, location, err);
    char uuid[37], path[4300];
    dm_ice_uuid(uuid);
    snprintf(path, sizeof(path), "%s/metadata/%05" PRId64 "-%s.metadata.json", table_dir, version,
             uuid);
    dm_err_t rc = dm_mkdirs(path, true, err);
    if (!rc) rc = dm_ice_write_file(path, metadata, strlen(metadata), err);
    if (rc) return rc;
    char uri[4400];
    snprintf(uri, sizeof(uri), "file://%s", path);
    rc = c->kind == DM_ICE_CATALOG_POSTGRES ? pg_swap(c, ns, name, expected, uri, err)
                                            : sql_swap(c, ns, name, expected, uri, err);
    if (rc) {
        unlink(path);
        return rc;
    }
    if (!(*location = strdup(uri))) return DM_ERR_NOMEM;
    return DM_OK;
}
