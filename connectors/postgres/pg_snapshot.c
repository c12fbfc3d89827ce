/* connectors/postgres/pg_snapshot.c — the postgres side of DBLog snapshots
 * (connectors/dblog.h has the algorithm): watermark rows in the signal table,
 * chunks SELECTed in key order, their rows as 'r' events. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/postgres/pg_internal.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"

/* ---- what the algorithm asks of postgres ------------------------------------------------- */

static int ops_table_index(void *ctx, const char *table, int *n_key)
{
    dm_pg_source_t *src = ctx;
    int ti = dm_pg_table_index(src, table);
    *n_key = ti >= 0 ? src->tables[ti].n_key : 0;
    return ti;
}

static dm_err_t ops_write_watermark(void *ctx, const char *id, const char *kind, dm_error_t *err)
{
    dm_pg_source_t *src = ctx;
    char *qs = PQescapeIdentifier(src->q, src->signal_schema, strlen(src->signal_schema));
    char *qn = PQescapeIdentifier(src->q, src->signal_name, strlen(src->signal_name)), *sql = NULL;
    if (qs && qn && asprintf(&sql, "INSERT INTO %s.%s (id, kind) VALUES ($1, $2)", qs, qn) < 0)
        sql = NULL;
    PQfreemem(qs);
    PQfreemem(qn);
    const char *p[2] = {id, kind};
    dm_err_t rc = sql ? dm_pg_exec(src, "writing a snapshot watermark", NULL, sql, 2, p, err)
                      : dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    free(sql);
    return rc;
}

/* SELECT of the next chunk: the table's columns, keys after the last one read. */
static dm_err_t ops_select_chunk(void *ctx, int table, const json_t *after, const json_t *from,
                                 const json_t *until, int64_t limit, int *n_rows, dm_error_t *err)
{
    dm_pg_source_t *src = ctx;
    const dm_pg_table_t *t = &src->tables[table];
    dm_buf_t sql = DM_BUF_INIT, keys = DM_BUF_INIT;
    dm_buf_append_str(&sql, "SELECT ");
    for (int i = 0; i < t->n_cols; i++) {
        char *q = PQescapeIdentifier(src->q, t->cols[i].name, strlen(t->cols[i].name));
        dm_buf_printf(&sql, "%s%s", i ? ", " : "", q);
        PQfreemem(q);
    }
    for (int k = 0; k < t->n_key; k++) {
        const char *name = t->cols[t->key[k]].name;
        char *q = PQescapeIdentifier(src->q, name, strlen(name));
        dm_buf_printf(&keys, "%s%s", k ? ", " : "", q);
        PQfreemem(q);
    }
    const char *kt;
    dm_buf_cstr(&keys, &kt);
    char *qt = PQescapeIdentifier(src->q, t->schema, strlen(t->schema));
    char *qn = PQescapeIdentifier(src->q, t->name, strlen(t->name));
    dm_buf_printf(&sql, " FROM %s.%s", qt, qn);
    PQfreemem(qt);
    PQfreemem(qn);
    /* Keys after the last row read (or from the range's start), up to its end. */
    const char *values[3 * 32];
    Oid types[3 * 32];
    int n = 0;
    const json_t *bounds[3] = {after, from, until};
    static const char *const ops[3] = {">", ">=", "<="};
    for (int b = 0; b < 3; b++) {
        if (!bounds[b] || json_array_size(bounds[b]) != (size_t)t->n_key || t->n_key > 32) continue;
        dm_buf_printf(&sql, " %s (%s) %s (", n ? "AND" : "WHERE", kt, ops[b]);
        for (int k = 0; k < t->n_key; k++, n++) {
            values[n] = json_string_value(json_array_get(bounds[b], (size_t)k));
            types[n] = t->cols[t->key[k]].type_oid;
            dm_buf_printf(&sql, "%s$%d", k ? ", " : "", n + 1);
        }
        dm_buf_append_str(&sql, ")");
    }
    dm_buf_printf(&sql, " ORDER BY %s LIMIT %lld", kt, (long long)limit);
    const char *text;
    dm_buf_cstr(&sql, &text);
    PGresult *r = PQexecParams(src->q, text, n, types, values, NULL, NULL, 0);
    dm_buf_free(&sql);
    dm_buf_free(&keys);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        /* A bound that is not a value of the key's type (SQLSTATE class 22) will
         * not get better by retrying. */
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        dm_err_t rc =
            dm_error_set(err, state && !strncmp(state, "22", 2) ? DM_ERR_INVALID : DM_ERR_AGAIN,
                         "source %s: snapshot of %s.%s: %s", src->name, t->schema, t->name,
                         PQresultErrorMessage(r));
        PQclear(r);
        return rc;
    }
    src->chunk_res = r;
    src->chunk_table = table;
    *n_rows = PQntuples(r);
    return DM_OK;
}

static bool ops_row_key(void *ctx, int r, dm_buf_t *out)
{
    dm_pg_source_t *src = ctx;
    const dm_pg_table_t *t = &src->tables[src->chunk_table];
    for (int k = 0; k < t->n_key; k++) {
        int col = t->key[k];
        if (PQgetisnull(src->chunk_res, r, col)) return false;
        if (k) dm_buf_append_u8(out, 0x1f);
        dm_buf_append(out, PQgetvalue(src->chunk_res, r, col),
                      (size_t)PQgetlength(src->chunk_res, r, col));
    }
    return t->n_key > 0;
}

static json_t *ops_row_key_json(void *ctx, int r)
{
    dm_pg_source_t *src = ctx;
    const dm_pg_table_t *t = &src->tables[src->chunk_table];
    json_t *after = json_array();
    for (int k = 0; k < t->n_key; k++)
        json_array_append_new(after, json_string(PQgetvalue(src->chunk_res, r, t->key[k])));
    return after;
}

static dm_err_t ops_emit_row(void *ctx, int table, int r, dm_error_t *err)
{
    dm_pg_source_t *src = ctx;
    int n = PQnfields(src->chunk_res);
    dm_pgoutput_datum_t *d = dm_arena_calloc(&src->arena, (size_t)n + 1, sizeof(*d));
    if (!d) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++)
        d[i] = PQgetisnull(src->chunk_res, r, i)
                   ? (dm_pgoutput_datum_t){.kind = 'n'}
                   : (dm_pgoutput_datum_t){.kind = 't',
                                           .len = (uint32_t)PQgetlength(src->chunk_res, r, i),
                                           .text = PQgetvalue(src->chunk_res, r, i)};
    dm_pg_event_t ev = {.op = 'r',
                        .after = d,
                        .db = src->db,
                        .lsn = src->chunk_lsn,
                        .commit_lsn = src->final_lsn,
                        .txid = src->xid,
                        .commit_ms = src->commit_ms,
                        .now_ms = dm_wall_ms()};
    dm_err_t rc = dm_pg_emit(src, table, &ev, err);
    if (!rc && src->m_snapshot_rows) dm_metric_add(src->m_snapshot_rows, 1);
    return rc;
}

static void ops_release_chunk(void *ctx)
{
    dm_pg_source_t *src = ctx;
    PQclear(src->chunk_res);
    src->chunk_res = NULL;
}

const dm_dblog_ops_t dm_pg_dblog_ops = {
    .table_index = ops_table_index,
    .write_watermark = ops_write_watermark,
    .select_chunk = ops_select_chunk,
    .row_key = ops_row_key,
    .row_key_json = ops_row_key_json,
    .emit_row = ops_emit_row,
    .release_chunk = ops_release_chunk,
};

/* ---- the connector's calls --------------------------------------------------------------- */

dm_err_t dm_pg_snapshot_add(dm_pg_source_t *src, const char *table, const json_t *from,
                            const json_t *until, dm_error_t *err)
{
    int ti = dm_pg_table_index(src, table);
    if (ti < 0)
        return dm_error_set(err, DM_ERR_NOT_FOUND, "source %s: snapshot of %s: not captured",
                            src->name, table);
    int64_t total = 0;
    char o[16];
    snprintf(o, sizeof(o), "%u", src->tables[ti].relid);
    const char *p[1] = {o};
    PGresult *r;
    if (src->tables[ti].n_key &&
        dm_pg_exec(src, "estimating the table size", &r,
                   "SELECT GREATEST(reltuples, 0)::int8 FROM pg_class WHERE oid = $1", 1, p,
                   err) == DM_OK) {
        if (PQntuples(r) == 1) total = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        PQclear(r);
    }
    return dm_dblog_add(&src->dblog, table, src->tables[ti].n_key, from, until, total, err);
}

dm_err_t dm_pg_snapshot_step(dm_pg_source_t *src, dm_error_t *err)
{
    if (!src->dblog.active && src->dblog.n_snaps) src->last_chunk_ns = dm_now_ns();
    return dm_dblog_step(&src->dblog, err);
}

dm_err_t dm_pg_snapshot_signal(dm_pg_source_t *src, const char *id, uint64_t lsn, dm_error_t *err)
{
    bool done;
    src->chunk_lsn = lsn;
    dm_err_t rc = dm_dblog_signal(&src->dblog, id, &done, err);
    if (!rc && done) { /* the chunk's rows are in the batch at this change */
        src->next.partial_final = src->final_lsn;
        src->next.partial_lsn = lsn;
    }
    return rc;
}

void dm_pg_snapshot_saw(dm_pg_source_t *src, int table, const dm_pgoutput_datum_t *row)
{
    if (!dm_dblog_busy(&src->dblog, table)) return;
    dm_buf_reset(&src->key); /* the key scratch is free between events */
    if (dm_pg_row_key_text(&src->tables[table], row, &src->key))
        dm_dblog_saw(&src->dblog, table, src->key.data, src->key.len);
}

void dm_pg_snapshot_saw_truncate(dm_pg_source_t *src, int table)
{
    dm_dblog_saw_truncate(&src->dblog, table);
}

void dm_pg_snapshot_abort(dm_pg_source_t *src)
{
    dm_dblog_abort(&src->dblog);
}
