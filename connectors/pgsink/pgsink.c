/* connectors/pgsink/pgsink.c — rows into a PostgreSQL table (see pgsink.h).
 *
 * One batch is one transaction: the rows go by COPY into a temporary staging
 * table and are merged into the target (INSERT … ON CONFLICT DO UPDATE by the
 * key; DELETE … USING for deletes), then the offsets table gets the batch's end
 * offsets, then COMMIT. After a crash the sink starts from the offsets in the
 * table, so every record lands exactly once. Within a batch only the last
 * event of each key matters (a later upsert or delete replaces it). A batch
 * the server refuses for its data (SQLSTATE classes 22 and 23) is written again
 * in halves under savepoints, so only the records that fail become dead
 * letters, each with the server's message.
 */
#include "connectors/pgsink/pgsink.h"

#include <libpq-fe.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/hash.h"
#include "core/log.h"
#include "connectors/postgres/pg_types.h"
#include "core/redact.h"
#include "schema/dm_avro.h"

typedef struct pgsink {
    const dm_pgsink_config_t *conf;
    const dm_sink_env_t *env;
    PGconn *conn;
    char password[256];
    char *schema_q, *table_q, *target; /* quoted identifiers; target = schema.table */
    char *schema_lit, *table_lit;      /* as literals, for the catalog query */
    char *target_lit;                  /* schema.table quoted, without the literal quotes */
    char *offsets_q;
    const dm_avro_node_t *ensured; /* the row schema the table has columns for */
    char **keys;                   /* key column names */
    size_t n_keys;
    int *key_idx; /* per key: index in the ensured row schema */
    dm_buf_t sql, copy, del, keybuf;
    dm_arena_t arena;   /* for the sink's life */
    dm_arena_t scratch; /* reset every write */
    char sqlstate[6];   /* of the last failed statement */
    bool direct_ok;     /* the table has a unique index on exactly the key columns */
    bool binary;        /* rows go in COPY's binary format (the columns have our types) */
    int said_binary;    /* what the log said last (-1: nothing yet) */
    int skip_direct;    /* batches to merge before trying a direct COPY again */
    int32_t *slot;      /* dedup hash table: batch index + 1 */
    size_t n_slot;
} pgsink_t;

/* ---- connection ------------------------------------------------------------------ */

static dm_err_t read_password(pgsink_t *s, dm_error_t *err)
{
    dm_err_t rc = dm_sink_read_secret(s->conf->password_env, s->conf->password_file, s->password,
                                      sizeof(s->password), err);
    return rc ? dm_error_prefix(err, "postgres sink: password") : DM_OK;
}

/* The server's words, without secrets, into err. */
static dm_err_t pg_error(pgsink_t *s, const char *what, dm_error_t *err)
{
    char msg[600];
    dm_redact_dsn(PQerrorMessage(s->conn), msg, sizeof(msg));
    msg[strcspn(msg, "\n")] = '\0';
    if (s->password[0]) {
        char *p = strstr(msg, s->password);
        if (p) memset(p, '*', strlen(s->password));
    }
    dm_error_set(err, DM_ERR_CONNECTOR, "postgres sink: %s: %s", what, msg);
    /* a server restarting or a connection lost passes: retried (connectors/unit.h) */
    if (err && (PQstatus(s->conn) != CONNECTION_OK || dm_pg_sqlstate_transient(s->sqlstate)))
        err->retriable = true;
    return DM_ERR_CONNECTOR;
}

static dm_err_t exec(pgsink_t *s, const char *sql, const char *what, dm_error_t *err)
{
    PGresult *r = PQexec(s->conn, sql);
    ExecStatusType st = PQresultStatus(r);
    dm_err_t rc = DM_OK;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        const char *code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        snprintf(s->sqlstate, sizeof(s->sqlstate), "%s", code ? code : "");
        rc = pg_error(s, what, err);
    }
    PQclear(r);
    return rc;
}

static dm_err_t connect_db(pgsink_t *s, dm_error_t *err)
{
    if (s->conn && PQstatus(s->conn) == CONNECTION_OK) {
        if (PQtransactionStatus(s->conn) != PQTRANS_IDLE) PQclear(PQexec(s->conn, "ROLLBACK"));
        if (PQtransactionStatus(s->conn) == PQTRANS_IDLE) return DM_OK;
    }
    if (s->conn) PQfinish(s->conn);
    s->ensured = NULL;
    dm_err_t rc = read_password(s, err);
    if (rc) return rc;
    const char *keys[] = {"dbname", "password", "application_name", "connect_timeout", NULL};
    const char *vals[] = {s->conf->dsn, s->password[0] ? s->password : NULL, "datamesh-sink", "10",
                          NULL};
    if (!s->password[0]) keys[1] = "application_name", vals[1] = "datamesh-sink", keys[2] = NULL;
    s->conn = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(s->conn) != CONNECTION_OK) {
        char dsn[512];
        pg_error(s, "connecting", err);
        dm_redact_dsn(s->conf->dsn, dsn, sizeof(dsn));
        dm_error_prefix(err, "%s", dsn);
        err->retriable = true;
        return err->code;
    }
    PQclear(PQexec(s->conn, "SET client_min_messages = warning"));
    char sql[1200];
    snprintf(sql, sizeof(sql),
             "CREATE TABLE IF NOT EXISTS %s (sink text NOT NULL, topic text NOT NULL, "
             "partition integer NOT NULL, next_offset bigint NOT NULL, "
             "PRIMARY KEY (sink, topic, partition))",
             s->offsets_q);
    return exec(s, sql, "creating the offsets table", err);
}

/* ---- types ------------------------------------------------------------------------ */

/* T of a [null, T] union (or of T itself); NULL for other unions. */
static const dm_avro_node_t *nonnull(const dm_avro_node_t *t)
{
    if (t->type != DM_AVRO_UNION) return t;
    const dm_avro_node_t *only = NULL;
    for (uint32_t i = 0; i < t->n_branches; i++) {
        if (t->branches[i]->type == DM_AVRO_NULL) continue;
        if (only) return NULL;
        only = t->branches[i];
    }
    return only;
}

/* How wide a number column type is (information_schema's spelling), for
 * widening a column when its field is promoted; 0 for other types. */
static int number_rank(const char *type)
{
    static const char *const order[] = {"smallint", "integer", "bigint", "real",
                                        "double precision"};
    for (int i = 0; i < 5; i++)
        if (!strcmp(type, order[i])) return i + 1;
    return 0;
}

/* The column type of an Avro field type. */
static void column_type(const dm_avro_node_t *field, char *out, size_t cap)
{
    const dm_avro_node_t *t = nonnull(field);
    const char *name = "jsonb";
    if (!t) {
        snprintf(out, cap, "%s", name);
        return;
    }
    switch (t->logical) {
    case DM_AVRO_LT_DECIMAL: snprintf(out, cap, "numeric(%d,%d)", t->precision, t->scale); return;
    case DM_AVRO_LT_UUID: name = "uuid"; break;
    case DM_AVRO_LT_DATE: name = "date"; break;
    case DM_AVRO_LT_TIME_MILLIS:
    case DM_AVRO_LT_TIME_MICROS: name = "time"; break;
    case DM_AVRO_LT_TIMESTAMP_MILLIS:
    case DM_AVRO_LT_TIMESTAMP_MICROS: name = "timestamptz"; break;
    case DM_AVRO_LT_LOCAL_TIMESTAMP_MILLIS:
    case DM_AVRO_LT_LOCAL_TIMESTAMP_MICROS: name = "timestamp"; break;
    case DM_AVRO_LT_DURATION: name = "bytea"; break;
    default:
        switch (t->type) {
        case DM_AVRO_BOOLEAN: name = "boolean"; break;
        case DM_AVRO_INT: name = "integer"; break;
        case DM_AVRO_LONG: name = "bigint"; break;
        case DM_AVRO_FLOAT: name = "real"; break;
        case DM_AVRO_DOUBLE: name = "double precision"; break;
        case DM_AVRO_STRING:
        case DM_AVRO_ENUM: name = "text"; break;
        case DM_AVRO_BYTES:
        case DM_AVRO_FIXED: name = "bytea"; break;
        default: name = "jsonb"; break; /* records, arrays, maps, wider unions */
        }
    }
    snprintf(out, cap, "%s", name);
}

/* ---- values as COPY text ------------------------------------------------------------ */

static dm_err_t copy_escaped(dm_buf_t *o, const uint8_t *p, size_t n)
{
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        const char *e = p[i] == '\\'   ? "\\\\"
                        : p[i] == '\t' ? "\\t"
                        : p[i] == '\n' ? "\\n"
                        : p[i] == '\r' ? "\\r"
                                       : NULL;
        if (!e) continue;
        if (dm_buf_append(o, p + start, i - start) || dm_buf_append_str(o, e)) return DM_ERR_NOMEM;
        start = i + 1;
    }
    return dm_buf_append(o, p + start, n - start);
}

/* Decimal digits of v (snprintf is much of the cost of a row otherwise). */
static dm_err_t append_int(dm_buf_t *o, int64_t v)
{
    char tmp[24], *p = tmp + sizeof(tmp);
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) *--p = '-';
    return dm_buf_append(o, p, (size_t)(tmp + sizeof(tmp) - p));
}

/* Appends one field's value in COPY text format. */
static dm_err_t copy_value(pgsink_t *s, const dm_avro_node_t *node, const dm_avro_value_t *v,
                           dm_buf_t *o, dm_error_t *err)
{
    if (v->type == DM_AVRO_NULL || v->type == DM_AVRO_ABSENT) return dm_buf_append_str(o, "\\N");
    const dm_avro_node_t *t = node;
    if (t->type == DM_AVRO_UNION && v->branch < t->n_branches && nonnull(node))
        t = t->branches[v->branch];
    char num[64];
    if (t->logical == DM_AVRO_LT_NONE) {
        switch (t->type) {
        case DM_AVRO_BOOLEAN: return dm_buf_append_str(o, v->u.b ? "t" : "f");
        case DM_AVRO_INT: return append_int(o, v->u.i);
        case DM_AVRO_LONG: return append_int(o, v->u.l);
        case DM_AVRO_FLOAT:
        case DM_AVRO_DOUBLE: {
            double d = t->type == DM_AVRO_FLOAT ? v->u.f : v->u.d;
            if (isnan(d)) return dm_buf_append_str(o, "NaN");
            if (isinf(d)) return dm_buf_append_str(o, d > 0 ? "Infinity" : "-Infinity");
            snprintf(num, sizeof(num), t->type == DM_AVRO_FLOAT ? "%.9g" : "%.17g", d);
            return dm_buf_append_str(o, num);
        }
        case DM_AVRO_STRING: return copy_escaped(o, v->u.p, v->len);
        case DM_AVRO_ENUM:
            return (uint32_t)v->u.i < t->n_symbols ? dm_buf_append_str(o, t->symbols[v->u.i])
                                                   : dm_buf_append_str(o, "\\N");
        case DM_AVRO_BYTES:
        case DM_AVRO_FIXED: {
            /* bytea hex input, its backslash escaped for COPY */
            static const char hex[] = "0123456789abcdef";
            if (dm_buf_append_str(o, "\\\\x") || dm_buf_reserve(o, 2 * (size_t)v->len))
                return DM_ERR_NOMEM;
            for (uint32_t i = 0; i < v->len; i++) {
                o->data[o->len++] = (uint8_t)hex[v->u.p[i] >> 4];
                o->data[o->len++] = (uint8_t)hex[v->u.p[i] & 15];
            }
            return DM_OK;
        }
        default: break;
        }
    }
    /* Logical types (ISO-8601 text, decimal digits, uuid) and nested values
     * (jsonb) through the plain JSON conversion. */
    s->keybuf.len = 0;
    dm_err_t rc = dm_avro_to_json(t, v, DM_AVRO_JSON_PLAIN, &s->keybuf, err);
    if (rc) return rc;
    const uint8_t *p = s->keybuf.data;
    size_t n = s->keybuf.len;
    bool json = t->type == DM_AVRO_RECORD || t->type == DM_AVRO_ARRAY || t->type == DM_AVRO_MAP ||
                t->type == DM_AVRO_UNION || t->logical == DM_AVRO_LT_DURATION;
    if (!json && n >= 2 && p[0] == '"') p++, n -= 2;
    return copy_escaped(o, p, n);
}

/* ---- values in COPY's binary format ------------------------------------------------------
 *
 * Binary COPY spares both sides the text: no printf of doubles and
 * timestamps here, no parsing there. It is used when every column has the
 * type column_type() gives its field (format_type spelling below); tables
 * with decimals, uuids or columns of other types go as text. */

#define PG_EPOCH_US   946684800000000LL /* 2000-01-01 in Unix microseconds */
#define PG_EPOCH_DAYS 10957

/* The type a column must have for its field to go in binary, as
 * format_type() spells it; NULL when the field goes only as text. */
static const char *binary_type(const dm_avro_node_t *field)
{
    const dm_avro_node_t *t = nonnull(field);
    if (!t) return "jsonb";
    switch (t->logical) {
    case DM_AVRO_LT_NONE: break;
    case DM_AVRO_LT_DATE: return "date";
    case DM_AVRO_LT_TIME_MILLIS:
    case DM_AVRO_LT_TIME_MICROS: return "time without time zone";
    case DM_AVRO_LT_TIMESTAMP_MILLIS:
    case DM_AVRO_LT_TIMESTAMP_MICROS: return "timestamp with time zone";
    case DM_AVRO_LT_LOCAL_TIMESTAMP_MILLIS:
    case DM_AVRO_LT_LOCAL_TIMESTAMP_MICROS: return "timestamp without time zone";
    default: return NULL; /* decimal, uuid, duration */
    }
    switch (t->type) {
    case DM_AVRO_BOOLEAN: return "boolean";
    case DM_AVRO_INT: return "integer";
    case DM_AVRO_LONG: return "bigint";
    case DM_AVRO_FLOAT: return "real";
    case DM_AVRO_DOUBLE: return "double precision";
    case DM_AVRO_STRING:
    case DM_AVRO_ENUM: return "text";
    case DM_AVRO_BYTES:
    case DM_AVRO_FIXED: return "bytea";
    default: return "jsonb";
    }
}

static dm_err_t put_be(dm_buf_t *o, uint64_t v, int bytes)
{
    uint8_t b[8];
    for (int i = 0; i < bytes; i++)
        b[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
    return dm_buf_append(o, b, (size_t)bytes);
}

/* Appends one field: its length, then its bytes. */
static dm_err_t binary_value(pgsink_t *s, const dm_avro_node_t *node, const dm_avro_value_t *v,
                             dm_buf_t *o, dm_error_t *err)
{
    if (v->type == DM_AVRO_NULL || v->type == DM_AVRO_ABSENT) return put_be(o, 0xffffffffu, 4);
    const dm_avro_node_t *t = node;
    if (t->type == DM_AVRO_UNION && v->branch < t->n_branches && nonnull(node))
        t = t->branches[v->branch];
    bool json = t->type == DM_AVRO_RECORD || t->type == DM_AVRO_ARRAY || t->type == DM_AVRO_MAP ||
                t->type == DM_AVRO_UNION;
    if (json) {
        /* jsonb: a version byte, then the text */
        size_t at = o->len;
        dm_err_t rc = put_be(o, 0, 4);
        if (!rc) rc = dm_buf_append_u8(o, 1);
        if (!rc) rc = dm_avro_to_json(t, v, DM_AVRO_JSON_PLAIN, o, err);
        if (rc) return rc;
        uint32_t len = (uint32_t)(o->len - at - 4);
        for (int i = 0; i < 4; i++)
            o->data[at + (size_t)i] = (uint8_t)(len >> (8 * (3 - i)));
        return DM_OK;
    }
    int64_t us;
    union {
        double d;
        float f;
        uint64_t u64;
        uint32_t u32;
    } bits;
    switch (t->logical) {
    case DM_AVRO_LT_DATE:
        return put_be(o, 4, 4) || put_be(o, (uint32_t)(v->u.i - PG_EPOCH_DAYS), 4);
    case DM_AVRO_LT_TIME_MILLIS: return put_be(o, 8, 4) || put_be(o, (uint64_t)v->u.i * 1000, 8);
    case DM_AVRO_LT_TIME_MICROS: return put_be(o, 8, 4) || put_be(o, (uint64_t)v->u.l, 8);
    case DM_AVRO_LT_TIMESTAMP_MILLIS:
    case DM_AVRO_LT_LOCAL_TIMESTAMP_MILLIS:
        us = v->u.l * 1000 - PG_EPOCH_US;
        return put_be(o, 8, 4) || put_be(o, (uint64_t)us, 8);
    case DM_AVRO_LT_TIMESTAMP_MICROS:
    case DM_AVRO_LT_LOCAL_TIMESTAMP_MICROS:
        us = v->u.l - PG_EPOCH_US;
        return put_be(o, 8, 4) || put_be(o, (uint64_t)us, 8);
    default: break;
    }
    (void)s;
    switch (t->type) {
    case DM_AVRO_BOOLEAN: return put_be(o, 1, 4) || dm_buf_append_u8(o, v->u.b ? 1 : 0);
    case DM_AVRO_INT: return put_be(o, 4, 4) || put_be(o, (uint32_t)v->u.i, 4);
    case DM_AVRO_LONG: return put_be(o, 8, 4) || put_be(o, (uint64_t)v->u.l, 8);
    case DM_AVRO_FLOAT: bits.f = v->u.f; return put_be(o, 4, 4) || put_be(o, bits.u32, 4);
    case DM_AVRO_DOUBLE: bits.d = v->u.d; return put_be(o, 8, 4) || put_be(o, bits.u64, 8);
    case DM_AVRO_ENUM: {
        const char *sym = (uint32_t)v->u.i < t->n_symbols ? t->symbols[v->u.i] : "";
        return put_be(o, (uint32_t)strlen(sym), 4) || dm_buf_append_str(o, sym);
    }
    default: /* string, bytes, fixed: the bytes as they are */
        return put_be(o, v->len, 4) || dm_buf_append(o, v->u.p, v->len);
    }
}

/* True when every field of t can go in binary into the table's columns. */
static bool columns_take_binary(pgsink_t *s, const dm_avro_node_t *t)
{
    char sql[1200];
    snprintf(sql, sizeof(sql),
             "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = "
             "'%s'::regclass AND attnum > 0 AND NOT attisdropped",
             s->target_lit);
    PGresult *r = PQexec(s->conn, sql);
    bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    for (uint32_t i = 0; ok && i < t->n_fields; i++) {
        const char *want = binary_type(t->fields[i].type);
        bool found = false;
        for (int j = 0; want && j < PQntuples(r) && !found; j++)
            found = !strcmp(PQgetvalue(r, j, 0), t->fields[i].name) &&
                    !strcmp(PQgetvalue(r, j, 1), want);
        ok = found;
    }
    PQclear(r);
    return ok;
}

static const uint8_t copy_signature[11] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', 0xff, '\r', '\n', 0};

/* The binary COPY header (signature, flags, header extension length). */
static dm_err_t binary_header(dm_buf_t *o)
{
    return dm_buf_append(o, copy_signature, sizeof(copy_signature)) || put_be(o, 0, 4) ||
           put_be(o, 0, 4);
}

/* ---- the table -------------------------------------------------------------------- */

static bool is_key(const pgsink_t *s, const char *name)
{
    for (size_t i = 0; i < s->n_keys; i++)
        if (!strcmp(s->keys[i], name)) return true;
    return false;
}

static char *quote(dm_arena_t *a, const char *name, char q);

/* A quoted identifier, valid until the next write. */
static char *quote_ident(pgsink_t *s, const char *name)
{
    return quote(&s->scratch, name, '"');
}

/* Creates the table for row schema t, or adds the columns it lacks. */
static dm_err_t ensure_table(pgsink_t *s, const dm_avro_node_t *t, dm_error_t *err)
{
    if (s->ensured == t) return DM_OK;
    for (size_t k = 0; k < s->n_keys; k++) {
        int idx = dm_avro_field_index(t, s->keys[k]);
        if (idx < 0)
            return dm_error_set(err, DM_ERR_SCHEMA_MISMATCH,
                                "postgres sink: key column %s is not a field of %s", s->keys[k],
                                t->fullname);
        s->key_idx[k] = idx;
    }
    dm_buf_t *q = &s->sql;
    q->len = 0;
    dm_buf_printf(q,
                  "SELECT column_name, data_type FROM information_schema.columns WHERE "
                  "table_schema = %s AND "
                  "table_name = %s",
                  s->schema_lit, s->table_lit);
    const char *sql;
    if (dm_buf_cstr(q, &sql)) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    PGresult *r = PQexec(s->conn, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        PQclear(r);
        return pg_error(s, "reading the table's columns", err);
    }
    int have = PQntuples(r);
    q->len = 0;
    char type[64];
    if (have == 0) {
        dm_buf_printf(q, "CREATE TABLE IF NOT EXISTS %s (", s->target);
        for (uint32_t i = 0; i < t->n_fields; i++) {
            column_type(t->fields[i].type, type, sizeof(type));
            bool key = is_key(s, t->fields[i].name);
            dm_buf_printf(q, "%s%s %s%s", i ? ", " : "", quote_ident(s, t->fields[i].name), type,
                          key ? " NOT NULL" : "");
        }
        for (size_t k = 0; k < s->n_keys; k++)
            dm_buf_printf(q, "%s%s", k ? ", " : ", PRIMARY KEY (", quote_ident(s, s->keys[k]));
        dm_buf_append_str(q, s->n_keys ? "))" : ")");
    } else {
        /* Compatible evolution: new fields become new (nullable) columns;
         * dropped fields keep their column and get NULL; a number widened
         * (int to long, float to double: Avro's promotions) widens its column. */
        for (uint32_t i = 0; i < t->n_fields; i++) {
            int found = -1;
            for (int j = 0; j < have && found < 0; j++)
                if (!strcmp(PQgetvalue(r, j, 0), t->fields[i].name)) found = j;
            column_type(t->fields[i].type, type, sizeof(type));
            if (found >= 0) {
                const char *was = PQgetvalue(r, found, 1);
                if (number_rank(type) > number_rank(was) && number_rank(was) > 0) {
                    dm_buf_printf(q, "%sALTER TABLE %s ALTER COLUMN %s TYPE %s", q->len ? "; " : "",
                                  s->target, quote_ident(s, t->fields[i].name), type);
                    DM_INFO("sink", "%s sink=postgres: widening column %s of %s from %s to %s",
                            s->env->name, t->fields[i].name, s->conf->table, was, type);
                }
                continue;
            }
            dm_buf_printf(q, "%sALTER TABLE %s ADD COLUMN IF NOT EXISTS %s %s", q->len ? "; " : "",
                          s->target, quote_ident(s, t->fields[i].name), type);
            DM_INFO("sink", "%s sink=postgres: adding column %s %s to %s", s->env->name,
                    t->fields[i].name, type, s->conf->table);
        }
    }
    PQclear(r);
    if (q->len) {
        if (dm_buf_cstr(q, &sql)) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
        dm_err_t rc = exec(s, sql, "creating or evolving the table", err);
        if (rc) return rc;
    }
    s->binary = columns_take_binary(s, t);
    if (s->said_binary != (s->binary ? 1 : 0))
        DM_INFO("sink", "%s sink=postgres: writing %s by %s COPY", s->env->name, s->conf->table,
                s->binary ? "binary" : "text");
    s->said_binary = s->binary ? 1 : 0;
    s->direct_ok = false;
    if (s->n_keys) {
        /* Is there a unique index on exactly the key columns? */
        q->len = 0;
        dm_buf_printf(
            q,
            "SELECT 1 FROM pg_index i WHERE i.indrelid = '%s'::regclass AND "
            "i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL AND "
            "i.indnkeyatts = %zu AND (SELECT array_agg(a.attname::text ORDER BY "
            "a.attname) FROM pg_attribute a WHERE a.attrelid = i.indrelid AND a.attnum "
            "= ANY(i.indkey::int2[])) = (SELECT array_agg(k ORDER BY k) FROM unnest(ARRAY[",
            s->target_lit, s->n_keys);
        for (size_t k = 0; k < s->n_keys; k++)
            dm_buf_printf(q, "%s%s", k ? ", " : "", quote(&s->scratch, s->keys[k], '\''));
        dm_buf_append_str(q, "]::text[]) k)");
        if (dm_buf_cstr(q, &sql)) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
        r = PQexec(s->conn, sql);
        s->direct_ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0;
        PQclear(r);
    }
    s->ensured = t;
    return DM_OK;
}

/* ---- a run of records with one row schema ------------------------------------------- */

/* The text of record i's key (for dedup), or -1 when it has none. */
static int key_text(pgsink_t *s, const dm_sink_record_t *it, dm_buf_t *o, dm_error_t *err)
{
    const dm_avro_node_t *t = s->ensured;
    for (size_t k = 0; k < s->n_keys; k++) {
        const dm_avro_value_t *v = NULL;
        const dm_avro_node_t *node = NULL;
        if (it->row && it->row_schema == t) {
            v = &it->row->u.v[s->key_idx[k]];
            node = t->fields[s->key_idx[k]].type;
        } else if (it->key) {
            int idx = dm_avro_field_index(it->key_schema, s->keys[k]);
            if (idx < 0) return -1;
            v = &it->key->u.v[idx];
            node = it->key_schema->fields[idx].type;
        } else {
            return -1;
        }
        if (v->type == DM_AVRO_NULL) return -1;
        if (k) dm_buf_append_u8(o, '\t');
        if (copy_value(s, node, v, o, err)) return -1;
    }
    return 0;
}

static dm_err_t copy_begin(pgsink_t *s, const char *table, bool binary, dm_error_t *err)
{
    char sql[2048];
    snprintf(sql, sizeof(sql), "COPY %s FROM STDIN%s", table, binary ? " (FORMAT binary)" : "");
    PGresult *r = PQexec(s->conn, sql);
    bool ok = PQresultStatus(r) == PGRES_COPY_IN;
    PQclear(r);
    return ok ? DM_OK : pg_error(s, "starting COPY", err);
}

static bool copy_put(pgsink_t *s, const uint8_t *p, size_t len)
{
    for (size_t o = 0; o < len; o += 1 << 20) {
        size_t n = len - o < (1 << 20) ? len - o : (1 << 20);
        if (PQputCopyData(s->conn, (const char *)p + o, (int)n) != 1) return false;
    }
    return true;
}

/* Ends a COPY (aborting it when !ok) and reads its result. */
static dm_err_t copy_end(pgsink_t *s, bool ok, const char *what, dm_error_t *err)
{
    if (PQputCopyEnd(s->conn, ok ? NULL : "client error") != 1) ok = false;
    PGresult *r;
    while ((r = PQgetResult(s->conn))) {
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            const char *code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
            snprintf(s->sqlstate, sizeof(s->sqlstate), "%s", code ? code : "");
            ok = false;
        }
        PQclear(r);
    }
    return ok ? DM_OK : pg_error(s, what, err);
}

static dm_err_t copy_in(pgsink_t *s, const char *table, bool binary, const dm_buf_t *data,
                        dm_error_t *err)
{
    dm_err_t rc = copy_begin(s, table, binary, err);
    if (rc) return rc;
    return copy_end(s, copy_put(s, data->data, data->len), "COPY into staging", err);
}

/* Rows whose keys are not in the table yet (the common case: snapshots,
 * new entities) need no merge: COPY them straight into the table, under a
 * savepoint. A unique violation means some key exists: roll back to the
 * savepoint and let the caller merge; after that, merge the next batches
 * directly for a while (an update-heavy stream would waste the attempt).
 * The unique index on the key columns makes this safe: a duplicate key can
 * never slip in. *n_up becomes 0 when the rows are in. */
static dm_err_t direct_begin(pgsink_t *s, bool *started, dm_error_t *err)
{
    *started = false;
    if (!s->direct_ok || !s->n_keys) return DM_OK;
    if (s->skip_direct > 0) {
        s->skip_direct--;
        return DM_OK;
    }
    const dm_avro_node_t *t = s->ensured;
    dm_buf_t cols = DM_BUF_INIT;
    dm_buf_printf(&cols, "%s (", s->target);
    for (uint32_t f = 0; f < t->n_fields; f++)
        dm_buf_printf(&cols, "%s%s", f ? ", " : "", quote_ident(s, t->fields[f].name));
    const char *target;
    dm_err_t rc = dm_buf_append_str(&cols, ")") || dm_buf_cstr(&cols, &target)
                      ? dm_error_set(err, DM_ERR_NOMEM, "out of memory")
                      : exec(s, "SAVEPOINT dm_direct", "savepoint", err);
    if (!rc) rc = copy_begin(s, target, s->binary, err);
    dm_buf_free(&cols);
    *started = !rc;
    return rc;
}

/* Ends the direct COPY: *n_up becomes 0 when the rows are in. */
static dm_err_t direct_finish(pgsink_t *s, bool ok, size_t *n_up, dm_error_t *err)
{
    dm_err_t rc = copy_end(s, ok, "COPY into the table", err);
    if (!rc) {
        rc = exec(s, "RELEASE SAVEPOINT dm_direct", "releasing a savepoint", err);
        if (!rc) *n_up = 0;
    } else if (!strcmp(s->sqlstate, "23505") && PQstatus(s->conn) == CONNECTION_OK) {
        rc = exec(s, "ROLLBACK TO SAVEPOINT dm_direct", "rollback to savepoint", err);
        s->skip_direct = 16;
    }
    return rc;
}

/* Stages and merges records [from, to) with row schema s->ensured, keeping
 * the last event per key; only indexes for which take() is true. */
static dm_err_t merge_run(pgsink_t *s, const dm_sink_batch_t *b, size_t from, size_t to,
                          const dm_sink_rejects_t *rj, dm_error_t *err)
{
    const dm_avro_node_t *t = s->ensured;
    size_t n = to - from;
    /* Dedup: for each key the last index in the run. */
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    if (cap > s->n_slot) {
        free(s->slot);
        s->slot = calloc(cap, sizeof(int32_t));
        s->n_slot = s->slot ? cap : 0;
        if (!s->slot) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    } else {
        memset(s->slot, 0, cap * sizeof(int32_t));
    }
    size_t *kstart = calloc(n + 1, sizeof(size_t)), *kend = calloc(n + 1, sizeof(size_t));
    bool *last = calloc(n, sizeof(bool));
    dm_buf_t keys = DM_BUF_INIT;
    dm_err_t rc = DM_OK;
    if (!kstart || !kend || !last) rc = dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n && !rc; i++) {
        kstart[i] = kend[i] = keys.len;
        last[i] = !dm_sink_rejected(rj, from + i);
        if (!last[i] || !s->n_keys) continue;
        if (key_text(s, &b->records[from + i], &keys, err)) {
            last[i] = false; /* check_records rejected it already */
            keys.len = kstart[i];
            continue;
        }
        kend[i] = keys.len;
        size_t len = kend[i] - kstart[i];
        uint64_t h = dm_hash64(keys.data + kstart[i], len);
        for (size_t j = h & (cap - 1);; j = (j + 1) & (cap - 1)) {
            int32_t at = s->slot[j];
            if (!at) {
                s->slot[j] = (int32_t)i + 1;
                break;
            }
            size_t o = kstart[at - 1], l = kend[at - 1] - o;
            if (l == len && !memcmp(keys.data + o, keys.data + kstart[i], len)) {
                last[at - 1] = false; /* a later event of the same key wins */
                s->slot[j] = (int32_t)i + 1;
                break;
            }
        }
    }
    s->copy.len = 0;
    s->del.len = 0;
    if (s->binary && !rc) rc = binary_header(&s->copy);
    size_t n_up = 0, n_del = 0, sent = 0;
    /* The direct COPY streams while rows are being formatted: the server
     * parses one chunk while the next one is made. */
    bool direct = false, any_up = false;
    for (size_t i = 0; i < n && !any_up; i++)
        any_up = last[i] && !b->records[from + i].is_delete;
    if (!rc && any_up) rc = direct_begin(s, &direct, err);
    bool put_ok = true;
    for (size_t i = 0; i < n && !rc; i++) {
        if (!last[i]) continue;
        const dm_sink_record_t *it = &b->records[from + i];
        if (it->is_delete) {
            if (!s->n_keys) continue; /* rejected by the caller's check before */
            rc = dm_buf_append(&s->del, keys.data + kstart[i], kend[i] - kstart[i]);
            if (!rc) rc = dm_buf_append_u8(&s->del, '\n');
            n_del++;
            continue;
        }
        if (s->binary) {
            rc = put_be(&s->copy, t->n_fields, 2);
            for (uint32_t f = 0; f < t->n_fields && !rc; f++)
                rc = binary_value(s, t->fields[f].type, &it->row->u.v[f], &s->copy, err);
        } else {
            for (uint32_t f = 0; f < t->n_fields && !rc; f++) {
                if (f) rc = dm_buf_append_u8(&s->copy, '\t');
                if (!rc) rc = copy_value(s, t->fields[f].type, &it->row->u.v[f], &s->copy, err);
            }
            if (!rc) rc = dm_buf_append_u8(&s->copy, '\n');
        }
        n_up++;
        if (direct && put_ok && s->copy.len - sent >= (256 << 10)) {
            put_ok = copy_put(s, s->copy.data + sent, s->copy.len - sent);
            sent = s->copy.len;
        }
    }
    if (s->binary && !rc) rc = put_be(&s->copy, 0xffff, 2); /* the trailer */
    if (direct) {
        if (put_ok && !rc) put_ok = copy_put(s, s->copy.data + sent, s->copy.len - sent);
        dm_err_t drc = direct_finish(s, put_ok && !rc, &n_up, err);
        if (!rc) rc = drc;
    }
    free(kstart);
    free(kend);
    free(last);
    dm_buf_free(&keys);
    if (rc) return rc;

    dm_buf_t *q = &s->sql;
    const char *sql;
    if (n_up) {
        q->len = 0;
        /* Made again each time: the table may have gained columns. */
        dm_buf_printf(q,
                      "DROP TABLE IF EXISTS dm_stage; CREATE TEMP TABLE dm_stage (LIKE %s) ON "
                      "COMMIT DROP",
                      s->target);
        if (dm_buf_cstr(q, &sql)) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
        if ((rc = exec(s, sql, "creating the staging table", err))) return rc;
        dm_buf_t cols = DM_BUF_INIT;
        for (uint32_t f = 0; f < t->n_fields; f++)
            dm_buf_printf(&cols, "%s%s", f ? ", " : "", quote_ident(s, t->fields[f].name));
        const char *c;
        if (dm_buf_cstr(&cols, &c)) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
        char *into = dm_arena_printf(&s->scratch, "dm_stage (%s)", c);
        q->len = 0;
        dm_buf_printf(q, "INSERT INTO %s (%s) SELECT %s FROM dm_stage", s->target, c, c);
        dm_buf_free(&cols);
        if (!into) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
        if ((rc = copy_in(s, into, s->binary, &s->copy, err))) return rc;
        if (s->n_keys) {
            dm_buf_append_str(q, " ON CONFLICT (");
            for (size_t k = 0; k < s->n_keys; k++)
                dm_buf_printf(q, "%s%s", k ? ", " : "", quote_ident(s, s->keys[k]));
            size_t before = q->len;
            dm_buf_append_str(q, ") DO UPDATE SET ");
            size_t sets = 0;
            for (uint32_t f = 0; f < t->n_fields; f++) {
                if (is_key(s, t->fields[f].name)) continue;
                const char *c = quote_ident(s, t->fields[f].name);
                dm_buf_printf(q, "%s%s = EXCLUDED.%s", sets++ ? ", " : "", c, c);
            }
            if (!sets) {
                q->len = before;
                dm_buf_append_str(q, ") DO NOTHING");
            }
        }
        if (dm_buf_cstr(q, &sql)) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
        if ((rc = exec(s, sql, "merging into the table", err))) return rc;
    }
    if (n_del) {
        q->len = 0;
        dm_buf_append_str(
            q, "DROP TABLE IF EXISTS dm_del; CREATE TEMP TABLE dm_del ON COMMIT DROP AS SELECT ");
        for (size_t k = 0; k < s->n_keys; k++)
            dm_buf_printf(q, "%s%s", k ? ", " : "", quote_ident(s, s->keys[k]));
        dm_buf_printf(q, " FROM %s WITH NO DATA", s->target);
        if (dm_buf_cstr(q, &sql)) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
        if ((rc = exec(s, sql, "creating the staging table for deletes", err))) return rc;
        if ((rc = copy_in(s, "dm_del", false, &s->del, err))) return rc;
        q->len = 0;
        dm_buf_printf(q, "DELETE FROM %s t USING dm_del d WHERE ", s->target);
        for (size_t k = 0; k < s->n_keys; k++) {
            const char *c = quote_ident(s, s->keys[k]);
            dm_buf_printf(q, "%st.%s = d.%s", k ? " AND " : "", c, c);
        }
        if (dm_buf_cstr(q, &sql)) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
        if ((rc = exec(s, sql, "deleting from the table", err))) return rc;
    }
    return DM_OK;
}

/* Rejects what can never be written here (no row schema to make columns from,
 * deletes without a key). */
static void check_records(pgsink_t *s, const dm_sink_batch_t *b, dm_sink_rejects_t *rj)
{
    for (size_t i = 0; i < b->n; i++) {
        const dm_sink_record_t *it = &b->records[i];
        if (dm_sink_rejected(rj, i)) continue;
        if (it->is_delete && !s->n_keys)
            dm_sink_reject(rj, i, "postgres sink: a delete needs key columns (set key:)");
    }
}

/* The row record of a topic's value schema (an envelope's after). */
static const dm_avro_node_t *topic_row(const dm_avro_node_t *root)
{
    if (root->type != DM_AVRO_RECORD) return NULL;
    int after = dm_avro_field_index(root, "after");
    const dm_avro_node_t *t = after >= 0 ? nonnull(root->fields[after].type) : NULL;
    return dm_avro_field_index(root, "op") >= 0 && t && t->type == DM_AVRO_RECORD ? t : root;
}

/* Writes every run of the batch; SQLSTATE class of the first failure in *state. */
static dm_err_t write_runs(pgsink_t *s, const dm_sink_batch_t *b, dm_sink_rejects_t *rj,
                           size_t from, size_t to, dm_error_t *err)
{
    size_t i = from;
    while (i < to) {
        /* a run: records whose rows share a schema (deletes go with any) */
        const dm_avro_node_t *t = NULL;
        size_t j = i;
        for (; j < to; j++) {
            const dm_sink_record_t *it = &b->records[j];
            if (dm_sink_rejected(rj, j) || !it->row_schema || (it->is_delete && !it->row)) continue;
            if (t && it->row_schema != t) break;
            t = it->row_schema;
        }
        if (!t) t = s->ensured ? s->ensured : topic_row(s->env->value_schema->root);
        if (!t)
            return dm_error_set(err, DM_ERR_SCHEMA_MISMATCH,
                                "postgres sink: the topic's schema is not a record");
        dm_err_t rc = ensure_table(s, t, err);
        if (!rc) rc = merge_run(s, b, i, j, rj, err);
        if (rc) return rc;
        i = j;
    }
    return DM_OK;
}

static bool data_refused(const pgsink_t *s)
{
    return !strncmp(s->sqlstate, "22", 2) || !strncmp(s->sqlstate, "23", 2);
}

/* Writes records [from, to) under a savepoint; when the server refuses them
 * for their data, writes each half the same way, down to single records,
 * which become dead letters with the server's message. A few bad records in
 * a large batch cost a few dozen statements, not one per record. */
static dm_err_t write_bisect(pgsink_t *s, const dm_sink_batch_t *b, dm_sink_rejects_t *rj,
                             size_t from, size_t to, int depth, dm_error_t *err)
{
    char sp[64], sql[128];
    snprintf(sp, sizeof(sp), "dm_part%d", depth);
    snprintf(sql, sizeof(sql), "SAVEPOINT %s", sp);
    dm_err_t rc = exec(s, sql, "savepoint", err);
    if (rc) return rc;
    dm_error_t part = {0};
    s->sqlstate[0] = '\0';
    if (!write_runs(s, b, rj, from, to, &part)) {
        snprintf(sql, sizeof(sql), "RELEASE SAVEPOINT %s", sp);
        return exec(s, sql, "releasing a savepoint", err);
    }
    bool data = data_refused(s);
    if (PQstatus(s->conn) != CONNECTION_OK || !data) {
        if (err) *err = part; /* with whether it may pass */
        dm_err_t code = part.code ? part.code : DM_ERR_CONNECTOR;
        if (err) err->code = code;
        return code;
    }
    s->ensured = NULL; /* the rollback may have undone its DDL */
    snprintf(sql, sizeof(sql), "ROLLBACK TO SAVEPOINT %s; RELEASE SAVEPOINT %s", sp, sp);
    if ((rc = exec(s, sql, "rollback to savepoint", err))) return rc;
    if (to - from == 1) return dm_sink_reject(rj, from, "%s", part.message);
    size_t mid = from + (to - from) / 2;
    rc = write_bisect(s, b, rj, from, mid, depth + 1, err);
    return rc ? rc : write_bisect(s, b, rj, mid, to, depth + 1, err);
}

/* ---- ops ---------------------------------------------------------------------------- */

static dm_err_t pg_write(void *state, const dm_sink_batch_t *b, dm_sink_rejects_t *rj,
                         dm_error_t *err)
{
    pgsink_t *s = state;
    dm_err_t rc = connect_db(s, err);
    if (rc) return rc;
    dm_arena_reset(&s->scratch);
    s->sqlstate[0] = '\0';
    check_records(s, b, rj);
    if ((rc = exec(s, "BEGIN", "starting a transaction", err))) return rc;
    rc = write_runs(s, b, rj, 0, b->n, err);
    if (!rc) return DM_OK;
    /* Refused for its data (SQLSTATE classes 22, 23)? Then find the records. */
    bool data = data_refused(s);
    PQclear(PQexec(s->conn, "ROLLBACK"));
    s->ensured = NULL;
    if (!data || PQstatus(s->conn) != CONNECTION_OK) return rc;
    DM_WARN("sink", "%s sink=postgres: %s; finding the records it refuses", s->env->name,
            err->message);
    if ((rc = exec(s, "BEGIN", "starting a transaction", err))) return rc;
    return write_bisect(s, b, rj, 0, b->n, 0, err);
}

/* Records the batch's end offsets and commits the transaction. */
static dm_err_t pg_flush(void *state, const dm_sink_batch_t *b, dm_error_t *err)
{
    pgsink_t *s = state;
    dm_buf_t *q = &s->sql;
    q->len = 0;
    dm_buf_printf(q, "INSERT INTO %s (sink, topic, partition, next_offset) VALUES ", s->offsets_q);
    char *sink = PQescapeLiteral(s->conn, s->env->group, strlen(s->env->group));
    char *topic = PQescapeLiteral(s->conn, s->env->topic, strlen(s->env->topic));
    for (size_t i = 0; i < b->n_offsets; i++)
        dm_buf_printf(q, "%s(%s, %s, %d, %lld)", i ? ", " : "", sink, topic,
                      b->offsets[i].partition, (long long)b->offsets[i].offset);
    PQfreemem(sink);
    PQfreemem(topic);
    dm_buf_append_str(q, " ON CONFLICT (sink, topic, partition) DO UPDATE SET next_offset = "
                         "EXCLUDED.next_offset");
    const char *sql;
    if (dm_buf_cstr(q, &sql)) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    dm_err_t rc = exec(s, sql, "storing offsets", err);
    if (!rc) rc = exec(s, "COMMIT", "committing", err);
    if (rc) {
        PQclear(PQexec(s->conn, "ROLLBACK"));
        s->ensured = NULL;
    }
    return rc;
}

static dm_err_t pg_positions(void *state, int64_t *next, dm_error_t *err)
{
    pgsink_t *s = state;
    dm_err_t rc = connect_db(s, err);
    if (rc) return rc;
    const char *params[2] = {s->env->group, s->env->topic};
    char sql[600];
    snprintf(sql, sizeof(sql),
             "SELECT partition, next_offset FROM %s WHERE sink = $1 AND topic = $2", s->offsets_q);
    PGresult *r = PQexecParams(s->conn, sql, 2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        PQclear(r);
        return pg_error(s, "reading stored offsets", err);
    }
    for (int i = 0; i < PQntuples(r); i++) {
        int p = atoi(PQgetvalue(r, i, 0));
        if (p >= 0 && p < s->env->partitions) next[p] = strtoll(PQgetvalue(r, i, 1), NULL, 10);
    }
    PQclear(r);
    return DM_OK;
}

static void pg_close(void *state)
{
    pgsink_t *s = state;
    if (!s) return;
    if (s->conn) PQfinish(s->conn);
    memset(s->password, 0, sizeof(s->password));
    dm_buf_free(&s->sql);
    dm_buf_free(&s->copy);
    dm_buf_free(&s->del);
    dm_buf_free(&s->keybuf);
    free(s->slot);
    free(s->key_idx);
    dm_arena_destroy(&s->arena);
    dm_arena_destroy(&s->scratch);
    free(s);
}

/* Quotes without a connection (identifiers: double quotes doubled). */
static char *quote(dm_arena_t *a, const char *name, char q)
{
    size_t n = strlen(name);
    char *o = dm_arena_alloc(a, 2 * n + 3), *p = o;
    if (!o) return NULL;
    *p++ = q;
    for (size_t i = 0; i < n; i++) {
        if (name[i] == q) *p++ = q;
        *p++ = name[i];
    }
    *p++ = q;
    *p = '\0';
    return o;
}

static dm_err_t pg_open(const void *conf, const dm_sink_env_t *env, void **state, dm_error_t *err)
{
    const dm_pgsink_config_t *c = conf;
    pgsink_t *s = calloc(1, sizeof(*s));
    if (!s) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    s->conf = c;
    s->env = env;
    s->said_binary = -1;
    dm_arena_init(&s->arena, 0);
    dm_arena_init(&s->scratch, 0);
    s->sql = s->copy = s->del = s->keybuf = (dm_buf_t)DM_BUF_INIT;
    const char *dot = strchr(c->table, '.');
    char *schema = dot ? dm_arena_strndup(&s->arena, c->table, (size_t)(dot - c->table))
                       : dm_arena_strdup(&s->arena, "public");
    const char *table = dot ? dot + 1 : c->table;
    s->schema_q = quote(&s->arena, schema, '"');
    s->table_q = quote(&s->arena, table, '"');
    s->schema_lit = quote(&s->arena, schema, '\'');
    s->table_lit = quote(&s->arena, table, '\'');
    s->target = dm_arena_printf(&s->arena, "%s.%s", s->schema_q, s->table_q);
    /* 'schema.table' for ::regclass: the quoted identifiers, quotes in it doubled */
    s->target_lit = s->target ? quote(&s->arena, s->target, '\'') : NULL;
    if (s->target_lit) {
        s->target_lit[strlen(s->target_lit) - 1] = '\0';
        s->target_lit++;
    }
    s->offsets_q = quote(&s->arena, c->offsets_table, '"');
    const dm_strlist_t *keys = c->key.n ? &c->key : env->key_fields;
    s->n_keys = keys ? keys->n : 0;
    s->keys = keys ? keys->items : NULL;
    s->key_idx = calloc(s->n_keys + 1, sizeof(int));
    if (!s->target || !s->offsets_q || !s->key_idx) {
        pg_close(s);
        return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    }
    *state = s;
    return DM_OK;
}

/* Lineage: OpenLineage's postgres://HOST:PORT + DB.SCHEMA.TABLE, from the
 * connection string as libpq reads it (key=value or URI; the password is
 * never read out of it). Without dbname, libpq's default: the user's name. */
static void pg_lineage(const json_t *settings, json_t *dataset)
{
    const char *dsn = json_string_value(json_object_get(settings, "dsn"));
    const char *table = json_string_value(json_object_get(settings, "table"));
    if (!dsn || !table) return;
    PQconninfoOption *opts = PQconninfoParse(dsn, NULL);
    if (!opts) return;
    const char *host = NULL, *port = NULL, *db = NULL, *user = NULL;
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (!o->val || !*o->val) continue;
        if (!strcmp(o->keyword, "host")) host = o->val;
        if (!strcmp(o->keyword, "hostaddr") && !host) host = o->val;
        if (!strcmp(o->keyword, "port")) port = o->val;
        if (!strcmp(o->keyword, "dbname")) db = o->val;
        if (!strcmp(o->keyword, "user")) user = o->val;
    }
    char ns[512], name[1024];
    /* a socket directory is no host name: libpq's default server is localhost */
    snprintf(ns, sizeof(ns), "postgres://%s:%s", host && host[0] != '/' ? host : "localhost",
             port ? port : "5432");
    snprintf(name, sizeof(name), "%s.%s%s",
             db     ? db
             : user ? user
                    : "postgres",
             strchr(table, '.') ? "" : "public.", table);
    json_object_set_new(dataset, "namespace", json_string(ns));
    json_object_set_new(dataset, "name", json_string(name));
    PQconninfoFree(opts);
}

const dm_sink_ops_t dm_pgsink_ops = {.name = "postgres",
                                     .config = &dm_pgsink_config_table,
                                     .config_size = sizeof(dm_pgsink_config_t),
                                     .open = pg_open,
                                     .positions = pg_positions,
                                     .write = pg_write,
                                     .flush = pg_flush,
                                     .close = pg_close,
                                     .lineage = pg_lineage};
