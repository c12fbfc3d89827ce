/* connectors/postgres/pg_source.c — the postgres source: connections, setup of
 * publication, slot and signal table, the replication stream, batches
 * committed with their position, and feedback to the server.
 *
 * Exactly-once: every batch of events goes to the topics in one transport
 * transaction together with a state record (on the source's state topic)
 * holding the position: the end LSN of the last transaction fully written,
 * plus, when a large transaction was split over batches, its commit LSN and
 * the LSN of the last change written. Only after that commit is the LSN sent
 * to the server as flushed. After a crash the server resends from its
 * confirmed LSN; transactions ending before the stored position are skipped,
 * and so are the changes of a split transaction up to the stored change. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "connectors/postgres/pg_internal.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/redact.h"

#define BATCH_EVENTS   10000 /* flush at a transaction's end beyond this */
#define SPLIT_EVENTS   50000 /* flush inside a transaction beyond this */
#define BATCH_BYTES    (16 << 20)
#define FEEDBACK_NS    (10ULL * 1000000000ULL)
#define CHUNK_EVERY_NS (200ULL * 1000000ULL)

/* ---- small helpers ----------------------------------------------------------------------- */

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static void lsn_text(uint64_t lsn, char *out, size_t cap)
{
    snprintf(out, cap, "%X/%X", (unsigned)(lsn >> 32), (unsigned)lsn);
}

/* The message of a failed result, without the trailing newline. */
static void result_message(PGconn *c, PGresult *r, char *out, size_t cap)
{
    const char *m = r ? PQresultErrorMessage(r) : PQerrorMessage(c);
    snprintf(out, cap, "%s", m && *m ? m : PQerrorMessage(c));
    size_t n = strlen(out);
    while (n && (out[n - 1] == '\n' || out[n - 1] == ' '))
        out[--n] = '\0';
    for (char *p = out; *p; p++) /* one line in logs and status */
        if (*p == '\n' || *p == '\t') *p = ' ';
}

dm_err_t dm_pg_exec(dm_pg_source_t *src, const char *what, PGresult **out, const char *sql, int n,
                    const char *const *params, dm_error_t *err)
{
    if (out) *out = NULL;
    PGresult *r = PQexecParams(src->q, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        if (out)
            *out = r;
        else
            PQclear(r);
        return DM_OK;
    }
    char msg[400];
    result_message(src->q, r, msg, sizeof(msg));
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    dm_err_t code = state && !strcmp(state, "42501") ? DM_ERR_PERMISSION
                    : PQstatus(src->q) != CONNECTION_OK || dm_pg_sqlstate_transient(state)
                        ? DM_ERR_AGAIN
                        : DM_ERR_CONNECTOR;
    PQclear(r);
    return dm_error_set(err, code, "%s: %s", what, msg);
}

/* "schema.table" into its two parts (malloc'd). */
static void split_name(const char *q, char **schema, char **name)
{
    const char *dot = strchr(q, '.');
    *schema = dot ? strndup(q, (size_t)(dot - q)) : strdup("public");
    *name = strdup(dot ? dot + 1 : q);
}

/* schema.table as SQL, each part quoted. */
static char *quoted_name(PGconn *c, const char *schema, const char *name)
{
    char *a = PQescapeIdentifier(c, schema, strlen(schema));
    char *b = PQescapeIdentifier(c, name, strlen(name));
    char *out = NULL;
    if (a && b && asprintf(&out, "%s.%s", a, b) < 0) out = NULL;
    PQfreemem(a);
    PQfreemem(b);
    return out;
}

int dm_pg_table_index(dm_pg_source_t *src, const char *qualified)
{
    for (int i = 0; i < src->n_tables; i++) {
        const dm_pg_table_t *t = &src->tables[i];
        size_t sl = strlen(t->schema);
        if (!strncmp(qualified, t->schema, sl) && qualified[sl] == '.' &&
            !strcmp(qualified + sl + 1, t->name))
            return i;
    }
    return -1;
}

static int table_by_relid(dm_pg_source_t *src, uint32_t relid)
{
    for (int i = 0; i < src->n_tables; i++)
        if (src->tables[i].relid == relid) return i;
    return -1;
}

/* ---- connections ------------------------------------------------------------------------- */

static dm_err_t read_password(dm_pg_source_t *src, dm_error_t *err)
{
    free(src->password);
    src->password = NULL;
    const dm_postgres_config_t *c = src->conf;
    if (c->password_env && *c->password_env) {
        const char *v = getenv(c->password_env);
        if (!v)
            return dm_error_set(err, DM_ERR_CONFIG,
                                "source %s: environment variable %s (password_env) is not set",
                                src->name, c->password_env);
        src->password = strdup(v);
    } else if (c->password_file && *c->password_file) {
        FILE *f = fopen(c->password_file, "r");
        if (!f)
            return dm_error_set_retriable(err, DM_ERR_IO,
                                          "source %s: cannot read password_file %s: %s", src->name,
                                          c->password_file, strerror(errno));
        char line[1024] = "";
        if (!fgets(line, sizeof(line), f)) line[0] = '\0';
        fclose(f);
        line[strcspn(line, "\r\n")] = '\0';
        src->password = strdup(line);
        memset(line, 0, sizeof(line));
    }
    return DM_OK;
}

static dm_err_t connect_one(dm_pg_source_t *src, bool replication, PGconn **out, dm_error_t *err)
{
    char app[200];
    snprintf(app, sizeof(app), "datamesh-%s", src->name);
    const char *keys[7] = {"dbname", "options", "application_name", "connect_timeout"};
    const char *vals[7] = {src->conf->dsn, DM_PG_SESSION_OPTIONS, app, "10"};
    int n = 4;
    if (replication) keys[n] = "replication", vals[n++] = "database";
    if (src->password) keys[n] = "password", vals[n++] = src->password;
    keys[n] = vals[n] = NULL;
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (!c || PQstatus(c) != CONNECTION_OK) {
        char msg[400], dsn[400];
        result_message(c, NULL, msg, sizeof(msg));
        dm_redact_dsn(src->conf->dsn, dsn, sizeof(dsn));
        PQfinish(c);
        return dm_error_set(err, DM_ERR_AGAIN, "source %s: cannot connect%s to \"%s\": %s%s",
                            src->name, replication ? " for replication" : "", dsn, msg,
                            replication && strstr(msg, "replication")
                                ? " (the role needs the REPLICATION attribute and pg_hba.conf "
                                  "must allow replication connections)"
                                : "");
    }
    *out = c;
    return DM_OK;
}

/* ---- types and tables from the catalog --------------------------------------------------- */

static dm_err_t resolve_type(dm_pg_source_t *src, uint32_t oid, int32_t typmod, int depth,
                             dm_pg_type_t *out, dm_error_t *err)
{
    if (dm_pg_type_builtin(oid, typmod, out)) return DM_OK;
    memset(out, 0, sizeof(*out));
    out->kind = DM_PGK_STRING;
    char o[16];
    snprintf(o, sizeof(o), "%u", oid);
    const char *p[1] = {o};
    PGresult *r;
    dm_err_t rc = dm_pg_exec(src, "reading pg_type", &r,
                             "SELECT typtype, typbasetype, typtypmod, typelem, typcategory, "
                             "format_type(oid, NULL) FROM pg_type WHERE oid = $1",
                             1, p, err);
    if (rc) return rc;
    if (PQntuples(r) == 1 && depth < 8) {
        char typtype = *PQgetvalue(r, 0, 0), cat = *PQgetvalue(r, 0, 4);
        uint32_t base = (uint32_t)strtoul(PQgetvalue(r, 0, 1), NULL, 10);
        int32_t base_mod = (int32_t)strtol(PQgetvalue(r, 0, 2), NULL, 10);
        uint32_t elem = (uint32_t)strtoul(PQgetvalue(r, 0, 3), NULL, 10);
        if (typtype == 'd') { /* a domain is its base type */
            rc = resolve_type(src, base, base_mod, depth + 1, out, err);
        } else if (typtype == 'e') {
            out->kind = DM_PGK_STRING; /* enum labels as strings: new labels need no new schema */
        } else if (cat == 'A' && elem) {
            dm_pg_type_t e;
            rc = resolve_type(src, elem, typmod, depth + 1, &e, err);
            if (!rc && e.kind != DM_PGK_ARRAY) {
                out->kind = DM_PGK_ARRAY;
                out->elem = e.kind;
                out->elem_precision = e.precision;
                out->elem_scale = e.scale;
                out->unknown = e.unknown;
            }
        } else {
            out->unknown = true;
            if (!src->warned_unknown)
                DM_WARN("connector",
                        "source=%s connector=postgres: type %s has no Avro mapping; its values "
                        "are sent as strings (this warning is shown once)",
                        src->name, PQgetvalue(r, 0, 5));
            src->warned_unknown = true;
        }
    }
    PQclear(r);
    return rc;
}

/* Topic of a captured table: the source's name when it captures one table,
 * "<source>.<schema>.<table>" otherwise (characters a topic cannot have
 * become '_'). */
static void table_topic(dm_pg_source_t *src, dm_pg_table_t *t)
{
    bool single = src->conf->tables.n == 1 && !strchr(src->conf->tables.items[0], '*');
    if (single) {
        snprintf(t->topic, sizeof(t->topic), "%s", src->name);
        return;
    }
    snprintf(t->topic, sizeof(t->topic), "%s.%s.%s", src->name, t->schema, t->name);
    for (char *p = t->topic; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '-'))
            *p = '_';
}

/* Registers the table's schemas and makes sure its topic exists. */
static dm_err_t publish_schemas(dm_pg_source_t *src, dm_pg_table_t *t, dm_error_t *err)
{
    char *vj = NULL, *kj = NULL, subject[300];
    dm_err_t rc = dm_pg_table_schema_json(t, src->db, &vj, &kj, err);
    snprintf(subject, sizeof(subject), "%s-value", t->topic);
    if (!rc) rc = src->env.ensure_topic(src->env.ctx, t->topic, src->partitions, subject, err);
    if (!rc) rc = src->env.register_schema(src->env.ctx, subject, vj, &t->value_id, err);
    dm_avro_schema_free(t->value_schema);
    dm_avro_schema_free(t->key_schema);
    t->value_schema = t->key_schema = NULL;
    if (!rc) rc = dm_avro_schema_parse(vj, strlen(vj), &t->value_schema, err);
    if (!rc && kj) {
        snprintf(subject, sizeof(subject), "%s-key", t->topic);
        rc = src->env.register_schema(src->env.ctx, subject, kj, &t->key_id, err);
        if (!rc) rc = dm_avro_schema_parse(kj, strlen(kj), &t->key_schema, err);
    }
    free(vj);
    free(kj);
    if (rc) dm_error_prefix(err, "source %s: table %s.%s", src->name, t->schema, t->name);
    return rc;
}

/* The columns of a relation (from a RELATION message when msg is given, else
 * from the catalog), with their primary key from the catalog. */
static dm_err_t describe_table(dm_pg_source_t *src, uint32_t relid, const dm_pgoutput_msg_t *msg,
                               dm_pg_table_t *t, dm_error_t *err)
{
    memset(t, 0, sizeof(*t));
    t->relid = relid;
    char o[16];
    snprintf(o, sizeof(o), "%u", relid);
    const char *p[1] = {o};
    PGresult *r;
    dm_err_t rc = dm_pg_exec(
        src, "reading the columns of a captured table", &r,
        "SELECT n.nspname, c.relname, a.attname, a.atttypid, a.atttypmod, "
        "COALESCE((SELECT k.n FROM pg_index i, unnest(i.indkey) WITH ORDINALITY k(att, n) WHERE "
        "i.indrelid = c.oid AND i.indisprimary AND k.att = a.attnum), 0) "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = "
        "c.relnamespace JOIN pg_attribute a ON a.attrelid = c.oid WHERE c.oid = $1 AND a.attnum > "
        "0 AND NOT a.attisdropped AND a.attgenerated = '' ORDER BY a.attnum",
        1, p, err);
    if (rc) return rc;
    int rows = PQntuples(r);
    if (!rows && !msg) {
        PQclear(r);
        return dm_error_set(err, DM_ERR_NOT_FOUND, "relation %u has no columns", relid);
    }
    t->schema = strdup(msg ? msg->nspname : PQgetvalue(r, 0, 0));
    t->name = strdup(msg ? msg->relname : PQgetvalue(r, 0, 1));
    t->n_cols = msg ? msg->n_cols : rows;
    t->cols = calloc((size_t)t->n_cols + 1, sizeof(*t->cols));
    t->key = calloc((size_t)t->n_cols + 1, sizeof(int));
    for (int i = 0; i < t->n_cols && !rc; i++) {
        dm_pg_column_t *c = &t->cols[i];
        c->name = strdup(msg ? msg->cols[i].name : PQgetvalue(r, i, 2));
        c->type_oid = msg ? msg->cols[i].type_oid : (uint32_t)strtoul(PQgetvalue(r, i, 3), 0, 10);
        c->typmod = msg ? msg->cols[i].typmod : (int32_t)strtol(PQgetvalue(r, i, 4), 0, 10);
        for (int j = 0; j < rows; j++)
            if (!strcmp(PQgetvalue(r, j, 2), c->name)) c->key_pos = atoi(PQgetvalue(r, j, 5));
        rc = resolve_type(src, c->type_oid, c->typmod, 0, &c->type, err);
    }
    PQclear(r);
    /* Key columns in key order. */
    for (int pos = 1; pos <= t->n_cols; pos++)
        for (int i = 0; i < t->n_cols; i++)
            if (t->cols[i].key_pos == pos) t->key[t->n_key++] = i;
    table_topic(src, t);
    if (rc) dm_pg_table_clear(t);
    return rc;
}

static bool same_columns(const dm_pg_table_t *a, const dm_pg_table_t *b)
{
    if (a->n_cols != b->n_cols || a->n_key != b->n_key || strcmp(a->name, b->name) ||
        strcmp(a->schema, b->schema))
        return false;
    for (int i = 0; i < a->n_cols; i++)
        if (strcmp(a->cols[i].name, b->cols[i].name) ||
            a->cols[i].type_oid != b->cols[i].type_oid || a->cols[i].typmod != b->cols[i].typmod ||
            a->cols[i].key_pos != b->cols[i].key_pos)
            return false;
    return true;
}

static dm_err_t add_table(dm_pg_source_t *src, uint32_t relid, const dm_pgoutput_msg_t *msg,
                          dm_error_t *err)
{
    dm_pg_table_t t;
    dm_err_t rc = describe_table(src, relid, msg, &t, err);
    if (!rc) rc = publish_schemas(src, &t, err);
    if (rc) {
        dm_pg_table_clear(&t);
        return rc;
    }
    dm_pg_table_t *grown = realloc(src->tables, ((size_t)src->n_tables + 1) * sizeof(*grown));
    if (!grown) {
        dm_pg_table_clear(&t);
        return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    }
    src->tables = grown;
    src->tables[src->n_tables++] = t;
    return DM_OK;
}

/* Does schema.name match one of the configured tables or schema wildcards? */
static bool captured(dm_pg_source_t *src, const char *schema, const char *name)
{
    if (!strcmp(schema, src->signal_schema) && !strcmp(name, src->signal_name)) return false;
    for (size_t i = 0; i < src->conf->tables.n; i++) {
        char *s, *n;
        split_name(src->conf->tables.items[i], &s, &n);
        bool m = !strcmp(s, schema) && (!strcmp(n, "*") || !strcmp(n, name));
        free(s);
        free(n);
        if (m) return true;
    }
    return false;
}

/* The configured tables (wildcards expanded) as table models. */
static dm_err_t load_tables(dm_pg_source_t *src, dm_error_t *err)
{
    for (size_t i = 0; i < src->conf->tables.n; i++) {
        char *s, *n;
        split_name(src->conf->tables.items[i], &s, &n);
        const char *p[2] = {s, n};
        PGresult *r;
        dm_err_t rc = dm_pg_exec(src, "listing captured tables", &r,
                                 "SELECT c.oid FROM pg_class c JOIN pg_namespace ns ON ns.oid = "
                                 "c.relnamespace WHERE c.relkind IN ('r', 'p') AND ns.nspname = $1 "
                                 "AND ($2 = '*' OR c.relname = $2) ORDER BY c.relname",
                                 2, p, err);
        if (!rc && PQntuples(r) == 0 && strcmp(n, "*"))
            rc = dm_error_set(err, DM_ERR_NOT_FOUND, "source %s: table %s.%s does not exist",
                              src->name, s, n);
        for (int j = 0; !rc && j < PQntuples(r); j++) {
            uint32_t relid = (uint32_t)strtoul(PQgetvalue(r, j, 0), NULL, 10);
            if (table_by_relid(src, relid) >= 0) continue;
            dm_pg_table_t probe;
            rc = describe_table(src, relid, NULL, &probe, err);
            bool want = !rc && captured(src, probe.schema, probe.name);
            dm_pg_table_clear(&probe);
            if (want) rc = add_table(src, relid, NULL, err);
        }
        PQclear(r);
        free(s);
        free(n);
        if (rc) return rc;
    }
    return DM_OK;
}

/* ---- setup: signal table, publication, slot ---------------------------------------------- */

static dm_err_t ensure_signal_table(dm_pg_source_t *src, dm_error_t *err)
{
    char *q = quoted_name(src->q, src->signal_schema, src->signal_name), *sql = NULL;
    if (!q) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    const char *p[2] = {src->signal_schema, src->signal_name};
    PGresult *r;
    dm_err_t rc = dm_pg_exec(src, "looking for the signal table", &r,
                             "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = "
                             "c.relnamespace WHERE n.nspname = $1 AND c.relname = $2",
                             2, p, err);
    if (!rc && PQntuples(r) == 0) {
        if (asprintf(&sql,
                     "CREATE TABLE IF NOT EXISTS %s (id text PRIMARY KEY, kind text NOT NULL, "
                     "ts timestamptz NOT NULL DEFAULT now())",
                     q) < 0)
            sql = NULL;
        rc = dm_pg_exec(src, "creating the signal table", NULL, sql, 0, NULL, err);
        if (rc == DM_ERR_PERMISSION)
            dm_error_set(err, rc,
                         "source %s: creating the signal table %s needs the CREATE privilege on "
                         "schema %s (or create it: CREATE TABLE %s (id text PRIMARY KEY, kind "
                         "text NOT NULL, ts timestamptz NOT NULL DEFAULT now()) and grant INSERT, "
                         "UPDATE, DELETE on it)",
                         src->name, q, src->signal_schema, q);
        PQclear(r);
        r = NULL;
        if (!rc)
            rc = dm_pg_exec(src, "looking for the signal table", &r,
                            "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = "
                            "c.relnamespace WHERE n.nspname = $1 AND c.relname = $2",
                            2, p, err);
    }
    if (!rc) src->signal_relid = (uint32_t)strtoul(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    free(sql);
    free(q);
    return rc;
}

static dm_err_t ensure_publication(dm_pg_source_t *src, dm_error_t *err)
{
    const char *pub = src->conf->publication;
    const char *p[1] = {pub};
    PGresult *r;
    dm_err_t rc = dm_pg_exec(src, "looking for the publication", &r,
                             "SELECT 1 FROM pg_publication WHERE pubname = $1", 1, p, err);
    if (rc) return rc;
    bool exists = PQntuples(r) == 1;
    PQclear(r);
    char *qp = PQescapeIdentifier(src->q, pub, strlen(pub));
    dm_buf_t sql = DM_BUF_INIT;
    /* Schema wildcards as TABLES IN SCHEMA, so tables created later are captured. */
    dm_buf_printf(&sql, exists ? "ALTER PUBLICATION %s ADD " : "CREATE PUBLICATION %s FOR ", qp);
    int added = 0;
    for (size_t i = 0; i < src->conf->tables.n; i++) {
        char *s, *n;
        split_name(src->conf->tables.items[i], &s, &n);
        const char *pp[3] = {pub, s, n};
        bool have = false;
        if (exists) {
            rc = dm_pg_exec(src, "reading the publication", &r,
                            !strcmp(n, "*")
                                ? "SELECT 1 FROM pg_publication_namespace pn JOIN pg_publication "
                                  "p ON p.oid = pn.pnpubid JOIN pg_namespace n ON n.oid = "
                                  "pn.pnnspid WHERE p.pubname = $1 AND n.nspname = $2 AND $3 = $3"
                                : "SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND "
                                  "schemaname = $2 AND tablename = $3",
                            3, pp, err);
            have = !rc && PQntuples(r) > 0;
            PQclear(r);
        }
        if (!rc && !have) {
            char *qs = PQescapeIdentifier(src->q, s, strlen(s));
            char *qn = quoted_name(src->q, s, n);
            if (!strcmp(n, "*"))
                dm_buf_printf(&sql, "%sTABLES IN SCHEMA %s", added++ ? ", " : "", qs);
            else
                dm_buf_printf(&sql, "%sTABLE %s", added++ ? ", " : "", qn);
            PQfreemem(qs);
            free(qn);
        }
        free(s);
        free(n);
        if (rc) break;
    }
    if (!rc && !exists) {
        char *qs = quoted_name(src->q, src->signal_schema, src->signal_name);
        dm_buf_printf(&sql, "%sTABLE %s", added++ ? ", " : "", qs);
        free(qs);
    }
    const char *text;
    dm_buf_cstr(&sql, &text);
    if (!rc && added) {
        rc = dm_pg_exec(src,
                        exists ? "adding tables to the publication" : "creating the publication",
                        NULL, text, 0, NULL, err);
        if (rc == DM_ERR_PERMISSION)
            dm_error_set(err, rc,
                         "source %s: %s publication %s needs the CREATE privilege on database %s "
                         "and ownership of the captured tables (or run as an owner: %s)",
                         src->name, exists ? "changing" : "creating", pub, src->db, text);
    }
    dm_buf_free(&sql);
    PQfreemem(qp);
    return rc;
}

/* Creates the slot when missing. *created tells whether it was. */
static dm_err_t ensure_slot(dm_pg_source_t *src, bool *created, dm_error_t *err)
{
    *created = false;
    const char *p[1] = {src->conf->slot};
    PGresult *r;
    dm_err_t rc = dm_pg_exec(src, "looking for the replication slot", &r,
                             "SELECT plugin, database FROM pg_replication_slots WHERE slot_name = "
                             "$1",
                             1, p, err);
    if (rc) return rc;
    if (PQntuples(r) == 1) {
        bool ok = !strcmp(PQgetvalue(r, 0, 0), "pgoutput") && !strcmp(PQgetvalue(r, 0, 1), src->db);
        char plugin[64];
        snprintf(plugin, sizeof(plugin), "%s", PQgetvalue(r, 0, 0));
        PQclear(r);
        if (!ok)
            return dm_error_set(err, DM_ERR_CONFIG,
                                "source %s: replication slot %s exists but is not a pgoutput "
                                "slot of database %s (plugin %s); choose another slot name",
                                src->name, src->conf->slot, src->db, plugin);
        return DM_OK;
    }
    PQclear(r);
    char *qs = PQescapeIdentifier(src->repl, src->conf->slot, strlen(src->conf->slot)), *sql;
    if (asprintf(&sql, "CREATE_REPLICATION_SLOT %s LOGICAL pgoutput NOEXPORT_SNAPSHOT", qs) < 0)
        sql = NULL;
    PQfreemem(qs);
    r = PQexec(src->repl, sql);
    free(sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        char msg[400];
        result_message(src->repl, r, msg, sizeof(msg));
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        bool perm = state && !strcmp(state, "42501");
        bool again =
            !perm && (dm_pg_sqlstate_transient(state) || PQstatus(src->repl) != CONNECTION_OK);
        PQclear(r);
        return dm_error_set(
            err,
            perm    ? DM_ERR_PERMISSION
            : again ? DM_ERR_AGAIN
                    : DM_ERR_CONNECTOR,
            "source %s: creating replication slot %s%s: %s", src->name, src->conf->slot,
            perm ? " needs the REPLICATION attribute (ALTER ROLE … REPLICATION)" : "", msg);
    }
    PQclear(r);
    *created = true;
    DM_INFO("connector", "source=%s connector=postgres: created replication slot %s", src->name,
            src->conf->slot);
    return DM_OK;
}

/* ---- the state record -------------------------------------------------------------------- */

/* Reads the last state record: the committed position and snapshot progress.
 * *found is false when the source never committed anything. */
static dm_err_t load_state(dm_pg_source_t *src, bool *found, dm_error_t *err)
{
    *found = false;
    memset(&src->durable, 0, sizeof(src->durable));
    dm_dblog_clear(&src->dblog);
    int64_t start, end;
    dm_err_t rc = dm_transport_offsets(src->t, src->state_topic, 0, &start, &end, err);
    if (rc || end <= start) return rc;
    dm_transport_batch_t b = {0};
    rc = dm_transport_fetch(src->t, src->state_topic, 0, end - 1, 1 << 16, 0, &b, err);
    if (!rc && b.n > 0) {
        const dm_record_t *rec = &b.records[b.n - 1];
        json_error_t je;
        json_t *j = json_loadb((const char *)rec->value, (size_t)rec->value_len, 0, &je);
        if (!j) {
            rc = dm_error_set(err, DM_ERR_CORRUPT, "source %s: state record at %s:%lld: %s",
                              src->name, src->state_topic, (long long)(end - 1), je.text);
        } else {
            src->durable.commit_lsn =
                (uint64_t)json_integer_value(json_object_get(j, "commit_lsn"));
            src->durable.partial_final =
                (uint64_t)json_integer_value(json_object_get(j, "partial_final"));
            src->durable.partial_lsn =
                (uint64_t)json_integer_value(json_object_get(j, "partial_lsn"));
            dm_dblog_load(&src->dblog, json_object_get(j, "snapshots"));
            json_decref(j);
            *found = true;
        }
    }
    dm_transport_batch_free(src->t, &b);
    return rc;
}

/* ---- the batch --------------------------------------------------------------------------- */

dm_err_t dm_pg_emit(dm_pg_source_t *src, int table, const dm_pg_event_t *ev, dm_error_t *err)
{
    if (src->n_pend == src->cap_pend) {
        size_t cap = src->cap_pend ? src->cap_pend * 2 : 1024;
        pg_pending_t *p = realloc(src->pend, cap * sizeof(*p));
        if (!p) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
        src->pend = p;
        src->cap_pend = cap;
    }
    pg_pending_t *p = &src->pend[src->n_pend];
    dm_buf_t *key = &src->key;
    dm_buf_reset(key);
    p->vstart = src->bytes.len;
    dm_err_t rc = dm_pg_event_encode(&src->tables[table], ev, &src->arena, key, &p->has_key,
                                     &src->bytes, err);
    p->vlen = src->bytes.len - p->vstart;
    p->kstart = src->bytes.len; /* the key follows the value */
    if (!rc && p->has_key) rc = dm_buf_append(&src->bytes, key->data, key->len);
    if (rc) {
        src->bytes.len = p->vstart;
        return rc;
    }
    p->klen = key->len;
    p->table = table;
    p->partition = ev->op == 't' ? -1
                   : p->has_key  ? dm_txn_key_partition(key->data, key->len, src->partitions)
                                 : 0;
    src->n_pend++;
    return DM_OK;
}

static bool position_equal(const pg_position_t *a, const pg_position_t *b)
{
    return a->commit_lsn == b->commit_lsn && a->partial_final == b->partial_final &&
           a->partial_lsn == b->partial_lsn;
}

static dm_err_t send_feedback(dm_pg_source_t *src, dm_error_t *err)
{
    uint8_t m[34];
    m[0] = 'r';
    uint64_t lsn = src->durable.commit_lsn;
    put_be64(m + 1, lsn);
    put_be64(m + 9, lsn);
    put_be64(m + 17, lsn);
    put_be64(m + 25, (uint64_t)(dm_wall_ms() * 1000 - DM_PG_EPOCH_OFFSET_US));
    m[33] = 0;
    if (PQputCopyData(src->repl, (const char *)m, sizeof(m)) != 1 || PQflush(src->repl) != 0)
        return dm_error_set(err, DM_ERR_AGAIN, "source %s: sending feedback: %s", src->name,
                            PQerrorMessage(src->repl));
    src->sent_flush = lsn;
    src->last_feedback_ns = dm_now_ns();
    return DM_OK;
}

static void update_stats(dm_pg_source_t *src);

/* Adds the batch's events to the transaction, each table's to its topic's
 * partition by key (a truncate to every partition). */
static dm_err_t add_batch(dm_pg_source_t *src, int64_t now, dm_error_t *err)
{
    int topic = -1, topic_of = -1; /* the handle of table topic_of */
    for (size_t i = 0; i < src->n_pend; i++) {
        const pg_pending_t *p = &src->pend[i];
        dm_err_t rc;
        if (p->table != topic_of &&
            (rc = dm_txn_builder_topic(&src->txn, src->tables[p->table].topic, src->partitions,
                                       &topic, err)))
            return rc;
        topic_of = p->table;
        dm_record_t r = {.timestamp = now,
                         .key = p->has_key ? src->bytes.data + p->kstart : NULL,
                         .key_len = p->has_key ? (int32_t)p->klen : -1,
                         .value = src->bytes.data + p->vstart,
                         .value_len = (int32_t)p->vlen};
        for (int32_t part = p->partition < 0 ? 0 : p->partition;
             part < (p->partition < 0 ? src->partitions : p->partition + 1); part++)
            if ((rc = dm_txn_builder_add(&src->txn, topic, part, &r, err))) return rc;
    }
    return DM_OK;
}

/* Commits the batch, the position and the snapshot progress in one
 * transaction, then tells the server what is flushed. */
static dm_err_t flush(dm_pg_source_t *src, dm_error_t *err)
{
    if (!src->n_pend && position_equal(&src->next, &src->durable) && !src->dblog.dirty)
        return DM_OK;
    int64_t now = dm_wall_ms();
    dm_err_t rc = add_batch(src, now, err);
    json_t *state =
        json_pack("{s:I, s:I, s:I, s:o}", "commit_lsn", (json_int_t)src->next.commit_lsn,
                  "partial_final", (json_int_t)src->next.partial_final, "partial_lsn",
                  (json_int_t)src->next.partial_lsn, "snapshots", dm_dblog_json(&src->dblog));
    char *text = state ? json_dumps(state, JSON_COMPACT) : NULL;
    json_decref(state);
    if (!rc && !text) rc = dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    int state_topic = -1;
    if (!rc) rc = dm_txn_builder_topic(&src->txn, src->state_topic, 1, &state_topic, err);
    if (!rc) {
        dm_record_t s = {.timestamp = now,
                         .key_len = -1,
                         .value = (const uint8_t *)text,
                         .value_len = (int32_t)strlen(text)};
        rc = dm_txn_builder_add(&src->txn, state_topic, 0, &s, err);
    }
    if (!rc) {
        dm_tp_offset_t off = {src->state_topic, 0, (int64_t)src->next.commit_lsn};
        rc = dm_txn_builder_offsets(&src->txn, src->group, &off, 1, err);
    }
    if (!rc)
        rc = dm_txn_builder_commit(&src->txn, err);
    else
        dm_txn_builder_clear(&src->txn);
    free(text);
    if (rc) return dm_error_prefix(err, "source %s: writing a batch", src->name), rc;
    if (src->m_events) dm_metric_add(src->m_events, src->n_pend);
    src->durable = src->next;
    src->dblog.dirty = false;
    src->n_pend = 0;
    dm_buf_reset(&src->bytes);
    dm_arena_reset(&src->arena);
    atomic_store(&src->status->position, (int64_t)src->durable.commit_lsn);
    update_stats(src);
    if (src->durable.commit_lsn != src->sent_flush) return send_feedback(src, err);
    return DM_OK;
}

/* ---- the stream -------------------------------------------------------------------------- */

/* A column's type as Postgres spells it ("integer", "character varying(20)"). */
static void type_text(dm_pg_source_t *src, const dm_pg_column_t *c, char *out, size_t cap)
{
    char oid[16], mod[16];
    snprintf(oid, sizeof(oid), "%u", c->type_oid);
    snprintf(mod, sizeof(mod), "%d", c->typmod);
    const char *p[2] = {oid, mod};
    PGresult *r = NULL;
    dm_error_t e = {0};
    snprintf(out, cap, "type %u", c->type_oid);
    if (dm_pg_exec(src, "naming a column type", &r, "SELECT format_type($1::oid, $2::int)", 2, p,
                   &e) == DM_OK &&
        PQntuples(r) == 1)
        snprintf(out, cap, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
}

/* What an ALTER TABLE did to the columns, as DDL-ish text: "ADD COLUMN tier
 * text, DROP COLUMN note, ALTER COLUMN amount TYPE bigint (was integer)".
 * pgoutput carries the new columns, not the statement. */
static void describe_change(dm_pg_source_t *src, const dm_pg_table_t *was, const dm_pg_table_t *now,
                            char *out, size_t cap)
{
    size_t o = 0;
    out[0] = '\0';
    char a[128], b[128];
    for (int i = 0; i < now->n_cols && o < cap; i++) {
        const dm_pg_column_t *c = &now->cols[i], *old = NULL;
        for (int j = 0; j < was->n_cols && !old; j++)
            if (!strcmp(was->cols[j].name, c->name)) old = &was->cols[j];
        type_text(src, c, a, sizeof(a));
        if (!old) {
            o +=
                (size_t)snprintf(out + o, cap - o, "%sADD COLUMN %s %s", o ? ", " : "", c->name, a);
        } else if (old->type_oid != c->type_oid || old->typmod != c->typmod) {
            type_text(src, old, b, sizeof(b));
            o += (size_t)snprintf(out + o, cap - o, "%sALTER COLUMN %s TYPE %s (was %s)",
                                  o ? ", " : "", c->name, a, b);
        }
    }
    for (int j = 0; j < was->n_cols && o < cap; j++) {
        bool kept = false;
        for (int i = 0; i < now->n_cols && !kept; i++)
            kept = !strcmp(was->cols[j].name, now->cols[i].name);
        if (!kept)
            o += (size_t)snprintf(out + o, cap - o, "%sDROP COLUMN %s", o ? ", " : "",
                                  was->cols[j].name);
    }
    if (!out[0]) snprintf(out, cap, "key or column order changed");
}

static dm_err_t on_relation(dm_pg_source_t *src, const dm_pgoutput_msg_t *m, dm_error_t *err)
{
    if (!strcmp(m->nspname, src->signal_schema) && !strcmp(m->relname, src->signal_name)) {
        src->signal_relid = m->relid;
        return DM_OK;
    }
    int ti = table_by_relid(src, m->relid);
    if (ti < 0) { /* recreated under the same name, or new in a captured schema */
        char q[300];
        snprintf(q, sizeof(q), "%s.%s", m->nspname, m->relname);
        ti = dm_pg_table_index(src, q);
        if (ti < 0)
            return captured(src, m->nspname, m->relname) ? add_table(src, m->relid, m, err) : DM_OK;
    }
    dm_pg_table_t t;
    dm_err_t rc = describe_table(src, m->relid, m, &t, err);
    if (rc) return rc;
    if (same_columns(&t, &src->tables[ti])) {
        src->tables[ti].relid = m->relid;
        dm_pg_table_clear(&t);
        return DM_OK;
    }
    /* The table changed (ALTER TABLE): a new schema version, compatibility-checked. */
    char change[600];
    describe_change(src, &src->tables[ti], &t, change, sizeof(change));
    if ((rc = publish_schemas(src, &t, err))) {
        dm_pg_table_clear(&t);
        return dm_error_prefix(err, "after ALTER TABLE %s.%s (%s)", m->nspname, m->relname, change);
    }
    DM_INFO("connector", "source=%s connector=postgres: ALTER TABLE %s.%s: %s", src->name,
            m->nspname, m->relname, change);
    DM_INFO("connector", "source=%s connector=postgres: table %s.%s changed; schema id %u",
            src->name, t.schema, t.name, t.value_id);
    if (dm_dblog_busy(&src->dblog, ti)) dm_pg_snapshot_abort(src);
    dm_pg_table_clear(&src->tables[ti]);
    src->tables[ti] = t;
    return DM_OK;
}

/* Copies row with unchanged TOASTed columns filled from the old row when it has them. */
static dm_pgoutput_datum_t *fill_unchanged(dm_pg_source_t *src, const dm_pgoutput_tuple_t *row,
                                           const dm_pgoutput_tuple_t *old)
{
    dm_pgoutput_datum_t *out = dm_arena_calloc(&src->arena, (size_t)row->n + 1, sizeof(*out));
    if (!out) return NULL;
    for (uint16_t i = 0; i < row->n; i++) {
        out[i] = row->cols[i];
        if (out[i].kind == 'u' && old && i < old->n && old->cols[i].kind == 't')
            out[i] = old->cols[i];
    }
    return out;
}

static dm_err_t on_change(dm_pg_source_t *src, const dm_pgoutput_msg_t *m, uint64_t lsn,
                          dm_error_t *err)
{
    if (m->relid == src->signal_relid) {
        if (m->type == 'D' || !m->new_tuple.n || m->new_tuple.cols[0].kind != 't') return DM_OK;
        return dm_pg_snapshot_signal(src, m->new_tuple.cols[0].text, lsn, err);
    }
    int ti = table_by_relid(src, m->relid);
    if (ti < 0) return DM_OK; /* not captured */
    dm_pg_table_t *t = &src->tables[ti];
    const dm_pgoutput_tuple_t *old = m->old_kind ? &m->old_tuple : NULL;
    const dm_pgoutput_tuple_t *row = m->type == 'D' ? NULL : &m->new_tuple;
    if ((old && old->n != t->n_cols) || (row && row->n != t->n_cols))
        return dm_error_set(err, DM_ERR_CORRUPT,
                            "source %s: change to %s.%s at LSN %" PRIX64 " has %u columns, the "
                            "table %d",
                            src->name, t->schema, t->name, lsn, (old ? old : row)->n, t->n_cols);
    dm_pgoutput_datum_t *before = old ? fill_unchanged(src, old, NULL) : NULL;
    dm_pgoutput_datum_t *after =
        row ? fill_unchanged(src, row, m->old_kind == 'O' ? old : NULL) : NULL;
    /* Key columns never come as unchanged TOAST unless the key changed; take them from old. */
    for (int k = 0; after && before && k < t->n_key; k++)
        if (after[t->key[k]].kind == 'u') after[t->key[k]] = before[t->key[k]];
    dm_pg_event_t ev = {.db = src->db,
                        .lsn = lsn,
                        .commit_lsn = src->final_lsn,
                        .txid = src->xid,
                        .commit_ms = src->commit_ms,
                        .now_ms = dm_wall_ms(),
                        .before = before,
                        .after = after};
    dm_err_t rc = DM_OK;
    if (m->type == 'I') {
        ev.op = 'c';
        rc = dm_pg_emit(src, ti, &ev, err);
    } else if (m->type == 'D') {
        ev.op = 'd';
        rc = dm_pg_emit(src, ti, &ev, err);
    } else {
        /* An update that changed the key: a delete of the old key and a create of
         * the new, so that keyed consumers (compaction, upserts) stay right. */
        dm_buf_t a = DM_BUF_INIT, b = DM_BUF_INIT;
        bool moved = before && t->n_key && dm_pg_row_key_text(t, before, &a) &&
                     dm_pg_row_key_text(t, after, &b) &&
                     (a.len != b.len || memcmp(a.data, b.data, a.len));
        dm_buf_free(&a);
        dm_buf_free(&b);
        if (moved) {
            dm_pg_event_t del = ev;
            del.op = 'd';
            del.after = NULL;
            ev.op = 'c';
            ev.before = NULL;
            rc = dm_pg_emit(src, ti, &del, err);
        } else {
            ev.op = 'u';
        }
        if (!rc) rc = dm_pg_emit(src, ti, &ev, err);
    }
    if (rc) return rc;
    if (before) dm_pg_snapshot_saw(src, ti, before);
    if (after) dm_pg_snapshot_saw(src, ti, after);
    src->next.partial_final = src->final_lsn;
    src->next.partial_lsn = lsn;
    return DM_OK;
}

static dm_err_t on_truncate(dm_pg_source_t *src, const dm_pgoutput_msg_t *m, uint64_t lsn,
                            dm_error_t *err)
{
    for (uint32_t i = 0; i < m->n_relids; i++) {
        int ti = table_by_relid(src, m->relids[i]);
        if (ti < 0) continue;
        dm_pg_event_t ev = {.op = 't',
                            .db = src->db,
                            .lsn = lsn,
                            .commit_lsn = src->final_lsn,
                            .txid = src->xid,
                            .commit_ms = src->commit_ms,
                            .now_ms = dm_wall_ms()};
        dm_err_t rc = dm_pg_emit(src, ti, &ev, err);
        if (rc) return rc;
        dm_pg_snapshot_saw_truncate(src, ti);
    }
    src->next.partial_final = src->final_lsn;
    src->next.partial_lsn = lsn;
    return DM_OK;
}

/* One XLogData frame: 'w', start LSN, end LSN, send time, then a pgoutput message. */
static dm_err_t on_xlogdata(dm_pg_source_t *src, const uint8_t *buf, size_t len, dm_error_t *err)
{
    if (len < 25) return dm_error_set(err, DM_ERR_CORRUPT, "source %s: short XLogData", src->name);
    uint64_t lsn = get_be64(buf + 1), end = get_be64(buf + 9);
    if (end > src->server_end) src->server_end = end;
    dm_pgoutput_msg_t m;
    dm_err_t rc = dm_pgoutput_decode(buf + 25, len - 25, &src->arena, &m, err);
    if (rc) return dm_error_prefix(err, "source %s: at LSN %" PRIX64, src->name, lsn), rc;
    switch (m.type) {
    case 'B':
        src->in_txn = true;
        src->final_lsn = m.lsn;
        src->xid = m.xid;
        src->commit_ms = (m.ts_us + DM_PG_EPOCH_OFFSET_US) / 1000;
        /* Already in the topics: a whole transaction, or part of a split one. */
        src->skip_txn = m.lsn < src->next.commit_lsn;
        src->skip_upto = m.lsn == src->next.partial_final ? src->next.partial_lsn : 0;
        return DM_OK;
    case 'C':
        src->in_txn = false;
        if (!src->skip_txn) {
            src->next.commit_lsn = m.end_lsn;
            src->next.partial_final = src->next.partial_lsn = 0;
            src->last_commit_ms = src->commit_ms;
        }
        src->skip_txn = false;
        if (src->n_pend >= BATCH_EVENTS || src->bytes.len >= BATCH_BYTES) return flush(src, err);
        return DM_OK;
    case 'R': return on_relation(src, &m, err);
    case 'I':
    case 'U':
    case 'D':
    case 'T':
        if (src->skip_txn || lsn <= src->skip_upto) return DM_OK;
        rc = m.type == 'T' ? on_truncate(src, &m, lsn, err) : on_change(src, &m, lsn, err);
        if (!rc && (src->n_pend >= SPLIT_EVENTS || src->bytes.len >= 4 * BATCH_BYTES))
            rc = flush(src, err);
        return rc;
    default: return DM_OK; /* origin, type, message */
    }
}

static dm_err_t on_copy_data(dm_pg_source_t *src, const uint8_t *buf, size_t len, dm_error_t *err)
{
    if (len >= 1 && buf[0] == 'w') return on_xlogdata(src, buf, len, err);
    if (len >= 18 && buf[0] == 'k') { /* keepalive: end LSN, time, reply requested */
        uint64_t end = get_be64(buf + 1);
        if (end > src->server_end) src->server_end = end;
        if (buf[17]) return send_feedback(src, err);
        return DM_OK;
    }
    return dm_error_set(err, DM_ERR_CORRUPT, "source %s: unexpected replication message 0x%02x",
                        src->name, len ? buf[0] : 0);
}

/* ---- heartbeats and status --------------------------------------------------------------- */

static dm_err_t heartbeat(dm_pg_source_t *src, dm_error_t *err)
{
    char *q = quoted_name(src->q, src->signal_schema, src->signal_name), *sql = NULL, id[300];
    snprintf(id, sizeof(id), "heartbeat:%s", src->conf->slot);
    const char *p[2] = {id, src->conf->slot};
    if (q && asprintf(&sql,
                      "INSERT INTO %s (id, kind) VALUES ($1, 'heartbeat') ON CONFLICT (id) DO "
                      "UPDATE SET ts = now()",
                      q) < 0)
        sql = NULL;
    dm_err_t rc = sql ? dm_pg_exec(src, "writing a heartbeat", NULL, sql, 1, p, err) : DM_ERR_NOMEM;
    free(sql);
    free(q);
    PGresult *r;
    if (!rc && dm_pg_exec(src, "reading slot lag", &r,
                          "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::int8 "
                          "FROM pg_replication_slots WHERE slot_name = $2 AND $1 = $1",
                          2, p, err) == DM_OK) {
        int64_t lag = PQntuples(r) == 1 ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : 0;
        atomic_store(&src->status->lag, lag);
        if (src->m_lag_bytes) dm_metric_set(src->m_lag_bytes, lag);
        PQclear(r);
    }
    src->last_heartbeat_ns = dm_now_ns();
    return rc;
}

static void update_stats(dm_pg_source_t *src)
{
    char lsn[32];
    lsn_text(src->durable.commit_lsn, lsn, sizeof(lsn));
    int64_t behind = src->server_end > src->durable.commit_lsn
                         ? (int64_t)(src->server_end - src->durable.commit_lsn)
                         : 0;
    double secs =
        behind && src->last_commit_ms ? (double)(dm_wall_ms() - src->last_commit_ms) / 1e3 : 0.0;
    if (secs < 0) secs = 0;
    if (src->m_lag_ms) dm_metric_set(src->m_lag_ms, (int64_t)(secs * 1000));
    json_t *snaps = dm_dblog_status(&src->dblog);
    json_t *st =
        json_pack("{s:s, s:s, s:I, s:I, s:f, s:o}", "slot", src->conf->slot, "lsn", lsn,
                  "slot_lag_bytes", (json_int_t)atomic_load(&src->status->lag), "stream_lag_bytes",
                  (json_int_t)behind, "slot_lag_seconds", secs, "snapshots", snaps);
    pthread_mutex_lock(&src->mu);
    json_decref(src->stats);
    src->stats = st;
    pthread_mutex_unlock(&src->mu);
}

/* Moves snapshot requests from the API into the queue. */
static dm_err_t take_requests(dm_pg_source_t *src, dm_error_t *err)
{
    pthread_mutex_lock(&src->mu);
    json_t *reqs = src->requests;
    src->requests = json_array();
    pthread_mutex_unlock(&src->mu);
    dm_err_t rc = DM_OK;
    size_t i;
    json_t *q;
    json_array_foreach(reqs, i, q)
    {
        const char *table = json_string_value(json_object_get(q, "table"));
        const json_t *from = json_object_get(q, "from"), *to = json_object_get(q, "to");
        for (int t = 0; t < src->n_tables && !rc; t++) {
            char name[300];
            snprintf(name, sizeof(name), "%s.%s", src->tables[t].schema, src->tables[t].name);
            if (table && strcmp(table, name)) continue;
            rc = dm_pg_snapshot_add(src, name, from, to, err);
            if (rc == DM_ERR_INVALID) { /* a bad range: say so, keep streaming */
                DM_WARN("connector", "%s; snapshot request dropped", err->message);
                rc = DM_OK;
            }
        }
        if (rc) break;
    }
    json_decref(reqs);
    return rc;
}

/* ---- a session: connect, set up, stream until an error or stop --------------------------- */

static void session_end(dm_pg_source_t *src)
{
    dm_pg_snapshot_abort(src);
    if (src->repl) PQfinish(src->repl);
    if (src->q) PQfinish(src->q);
    src->repl = src->q = NULL;
    for (int i = 0; i < src->n_tables; i++)
        dm_pg_table_clear(&src->tables[i]);
    free(src->tables);
    src->tables = NULL;
    src->n_tables = 0;
    src->n_pend = 0;
    dm_buf_reset(&src->bytes);
    dm_arena_reset(&src->arena);
    src->in_txn = src->skip_txn = false;
}

static dm_err_t start_streaming(dm_pg_source_t *src, dm_error_t *err)
{
    char lsn[32], *sql = NULL;
    lsn_text(src->durable.commit_lsn, lsn, sizeof(lsn));
    char *slot = PQescapeIdentifier(src->repl, src->conf->slot, strlen(src->conf->slot));
    /* publication_names is a quoted identifier list inside a literal. */
    char *pubid =
        PQescapeIdentifier(src->repl, src->conf->publication, strlen(src->conf->publication));
    char *publit = pubid ? PQescapeLiteral(src->repl, pubid, strlen(pubid)) : NULL;
    if (slot && publit &&
        asprintf(&sql,
                 "START_REPLICATION SLOT %s LOGICAL %s (proto_version '1', publication_names %s)",
                 slot, lsn, publit) < 0)
        sql = NULL;
    PQfreemem(slot);
    PQfreemem(pubid);
    PQfreemem(publit);
    if (!sql) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    PGresult *r = PQexec(src->repl, sql);
    free(sql);
    if (PQresultStatus(r) != PGRES_COPY_BOTH) {
        char msg[400];
        result_message(src->repl, r, msg, sizeof(msg));
        PQclear(r);
        return dm_error_set(err, DM_ERR_AGAIN, "source %s: START_REPLICATION from %s: %s",
                            src->name, lsn, msg);
    }
    PQclear(r);
    return DM_OK;
}

static dm_err_t setup(dm_pg_source_t *src, dm_error_t *err)
{
    dm_err_t rc = read_password(src, err);
    if (!rc) rc = connect_one(src, false, &src->q, err);
    if (rc) return rc;
    snprintf(src->db, sizeof(src->db), "%s", PQdb(src->q));
    if ((rc = ensure_signal_table(src, err)) || (rc = load_tables(src, err))) return rc;
    if (!src->n_tables)
        return dm_error_set(err, DM_ERR_NOT_FOUND, "source %s: no table matches tables", src->name);
    rc = src->env.ensure_topic(src->env.ctx, src->state_topic, 1, NULL, err);
    bool found = false, created = false;
    if (!rc) rc = load_state(src, &found, err);
    if (!rc) rc = ensure_publication(src, err);
    if (!rc) rc = connect_one(src, true, &src->repl, err);
    if (!rc) rc = ensure_slot(src, &created, err);
    if (rc) return rc;
    if (created && found)
        DM_WARN("connector",
                "source=%s connector=postgres: replication slot %s was missing and has been "
                "recreated; changes made while it was gone are not in the topics (take a snapshot)",
                src->name, src->conf->slot);
    if (!found && src->conf->snapshot == DM_PG_SNAPSHOT_INITIAL)
        for (int i = 0; i < src->n_tables && !rc; i++) {
            char q[300];
            snprintf(q, sizeof(q), "%s.%s", src->tables[i].schema, src->tables[i].name);
            rc = dm_pg_snapshot_add(src, q, NULL, NULL, err);
        }
    src->next = src->durable;
    src->sent_flush = 0;
    return rc ? rc : start_streaming(src, err);
}

static dm_err_t wait_readable(dm_pg_source_t *src, int ms, dm_error_t *err)
{
    struct pollfd pfd = {.fd = PQsocket(src->repl), .events = POLLIN};
    if (pfd.fd < 0) return dm_error_set(err, DM_ERR_AGAIN, "source %s: connection lost", src->name);
    if (poll(&pfd, 1, ms) < 0 && errno != EINTR)
        return dm_error_set(err, DM_ERR_IO, "source %s: poll: %s", src->name, strerror(errno));
    if (!PQconsumeInput(src->repl))
        return dm_error_set(err, DM_ERR_AGAIN, "source %s: replication connection: %s", src->name,
                            PQerrorMessage(src->repl));
    return DM_OK;
}

/* Work between messages: commit what is pending, snapshots, heartbeats, feedback. */
static dm_err_t tick(dm_pg_source_t *src, bool idle, dm_error_t *err)
{
    dm_err_t rc = DM_OK;
    uint64_t now = dm_now_ns();
    if (idle) rc = flush(src, err);
    if (!rc && idle && !src->n_pend) dm_arena_reset(&src->arena); /* skipped messages */
    if (!rc) rc = take_requests(src, err);
    if (!rc && (idle || now - src->last_chunk_ns > CHUNK_EVERY_NS))
        rc = dm_pg_snapshot_step(src, err);
    if (!rc && now - src->last_heartbeat_ns > (uint64_t)src->conf->heartbeat_ms * 1000000ULL)
        rc = heartbeat(src, err);
    if (!rc && (now - src->last_feedback_ns > FEEDBACK_NS)) rc = send_feedback(src, err);
    if (!rc && idle) update_stats(src);
    return rc;
}

static dm_err_t session(dm_pg_source_t *src, bool *streamed, dm_error_t *err)
{
    dm_err_t rc = setup(src, err);
    if (rc) return rc;
    *streamed = true;
    dm_unit_set(src->status, DM_UNIT_RUNNING, NULL);
    DM_INFO("connector", "source=%s connector=postgres: streaming %d table(s) from slot %s",
            src->name, src->n_tables, src->conf->slot);
    src->last_heartbeat_ns = 0;
    int since_tick = 0;
    while (!rc && !atomic_load(&src->status->stop)) {
        char *buf = NULL;
        int n = PQgetCopyData(src->repl, &buf, 1);
        if (n > 0) {
            rc = on_copy_data(src, (const uint8_t *)buf, (size_t)n, err);
            PQfreemem(buf);
            if (!rc && ++since_tick >= 4096) {
                since_tick = 0;
                rc = tick(src, false, err);
            }
            continue;
        }
        if (n == 0) {
            since_tick = 0;
            rc = tick(src, true, err);
            if (!rc) rc = wait_readable(src, 100, err);
            continue;
        }
        char msg[400];
        PGresult *r = PQgetResult(src->repl);
        result_message(src->repl, r, msg, sizeof(msg));
        PQclear(r);
        rc = dm_error_set(err, DM_ERR_AGAIN, "source %s: replication stream ended: %s", src->name,
                          msg);
    }
    if (!rc) rc = flush(src, err); /* stopping: keep what was decoded */
    return rc;
}

void dm_pg_source_run(dm_pg_source_t *src, dm_unit_status_t *status)
{
    src->status = status;
    dm_unit_backoff(status, 250, 30000);
    while (!atomic_load(&status->stop)) {
        dm_error_t err = {0};
        bool streamed = false;
        dm_err_t rc = session(src, &streamed, &err);
        session_end(src);
        if (!rc || atomic_load(&status->stop)) break;
        if (streamed) status->backoff_ms = 0; /* it ran: the backoff starts over */
        /* The failure policy (connectors/unit.h): a server down or restarting,
         * a connection lost, a slot in use are retried; a missing privilege,
         * table or setting is not (the status names it; the source starts
         * again when its spec changes). */
        if (!dm_unit_retry(status, &err, NULL)) break;
    }
    if (dm_unit_state(status) != DM_UNIT_FAILED) dm_unit_set(status, DM_UNIT_STOPPED, NULL);
}

/* ---- life and the API -------------------------------------------------------------------- */

dm_err_t dm_pg_source_new(const dm_source_env_t *env, const dm_postgres_config_t *conf,
                          dm_pg_source_t **out, dm_error_t *err)
{
    dm_pg_source_t *src = calloc(1, sizeof(*src));
    if (!src) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    const char *name = env->name;
    src->t = env->transport;
    dm_txn_builder_init(&src->txn, src->t);
    src->name = strdup(name);
    src->partitions = env->partitions > 0 ? env->partitions : 1;
    src->conf = conf;
    src->env = *env;
    if (asprintf(&src->state_topic, "__dm_pg_state.%s", name) < 0) src->state_topic = NULL;
    if (asprintf(&src->group, "connector.%s", name) < 0) src->group = NULL;
    split_name(conf->signal_table, &src->signal_schema, &src->signal_name);
    pthread_mutex_init(&src->mu, NULL);
    dm_arena_init(&src->arena, 0);
    char who[300];
    snprintf(who, sizeof(who), "source=%s connector=postgres", name);
    dm_dblog_init(&src->dblog, &dm_pg_dblog_ops, src, who, conf->slot, conf->chunk_size);
    src->stats = json_object();
    src->requests = json_array();
    if (env->metrics) {
        char labels[300], esc[256];
        dm_metrics_escape(name, esc, sizeof(esc));
        snprintf(labels, sizeof(labels), "pg_source=\"%s\"", esc);
        src->m_lag_bytes = dm_metrics_gauge(env->metrics, "datamesh_postgres_slot_lag_bytes",
                                            "WAL the slot holds beyond what is confirmed", labels);
        src->m_lag_ms = dm_metrics_time_gauge(env->metrics, "datamesh_postgres_slot_lag_seconds",
                                              "age of the oldest change not yet in the topics",
                                              labels, DM_GAUGE_TIME_MS);
        src->m_events = dm_metrics_counter(env->metrics, "datamesh_postgres_events_total",
                                           "change events committed to the topics", labels);
        src->m_snapshot_rows =
            dm_metrics_counter(env->metrics, "datamesh_postgres_snapshot_rows_total",
                               "snapshot rows committed to the topics", labels);
    }
    *out = src;
    return DM_OK;
}

/* A key bound from the API: a JSON array for composite keys, else one value. */
static dm_err_t parse_bound(const char *text, json_t **out, dm_error_t *err)
{
    *out = NULL;
    if (!text || !*text) return DM_OK;
    if (text[0] != '[') {
        *out = json_string(text);
        return DM_OK;
    }
    json_error_t je;
    *out = json_loads(text, 0, &je);
    return *out ? DM_OK
                : dm_error_set(err, DM_ERR_INVALID, "key bound '%.60s': not a JSON array: %s", text,
                               je.text);
}

dm_err_t dm_pg_source_request_snapshot(dm_pg_source_t *src, const char *table, const char *from,
                                       const char *to, dm_error_t *err)
{
    char qualified[300];
    if (table) {
        snprintf(qualified, sizeof(qualified), "%s%s", strchr(table, '.') ? "" : "public.", table);
        char *s, *n;
        split_name(qualified, &s, &n);
        bool ok = captured(src, s, n) && strcmp(n, "*");
        free(s);
        free(n);
        if (!ok)
            return dm_error_set(err, DM_ERR_NOT_FOUND, "source %s does not capture table %s",
                                src->name, table);
    }
    json_t *f, *t;
    dm_err_t rc = parse_bound(from, &f, err);
    if (!rc) rc = parse_bound(to, &t, err);
    if (rc) {
        json_decref(f);
        return rc;
    }
    json_t *req =
        json_pack("{s:o, s:o, s:o}", "table", table ? json_string(qualified) : json_null(), "from",
                  f ? f : json_null(), "to", t ? t : json_null());
    pthread_mutex_lock(&src->mu);
    if (json_array_size(src->requests) >= 64)
        rc = dm_error_set(err, DM_ERR_AGAIN, "source %s: too many snapshot requests waiting",
                          src->name);
    else
        json_array_append(src->requests, req);
    pthread_mutex_unlock(&src->mu);
    json_decref(req);
    return rc;
}

json_t *dm_pg_source_status(dm_pg_source_t *src)
{
    pthread_mutex_lock(&src->mu);
    json_t *j = json_deep_copy(src->stats);
    json_t *waiting = json_deep_copy(src->requests);
    pthread_mutex_unlock(&src->mu);
    json_object_set_new(j, "snapshot_requests", waiting);
    return j;
}

void dm_pg_source_free(dm_pg_source_t *src)
{
    if (!src) return;
    if (src->env.metrics) {
        char labels[300], esc[256];
        dm_metrics_escape(src->name, esc, sizeof(esc));
        snprintf(labels, sizeof(labels), "pg_source=\"%s\"", esc);
        dm_metrics_remove_matching(src->env.metrics, labels);
    }
    session_end(src);
    dm_dblog_destroy(&src->dblog);
    json_decref(src->requests);
    if (src->password) memset(src->password, 0, strlen(src->password));
    free(src->password);
    free(src->pend);
    dm_txn_builder_destroy(&src->txn);
    dm_buf_free(&src->bytes);
    dm_buf_free(&src->key);
    dm_arena_destroy(&src->arena);
    json_decref(src->stats);
    pthread_mutex_destroy(&src->mu);
    free(src->signal_schema);
    free(src->signal_name);
    free(src->state_topic);
    free(src->group);
    free(src->name);
    free(src);
}
