/* connectors/postgres/pg_snapshot.c — full-state snapshots the DBLog way
 * (Netflix, 2020): no table locks, no pause of the log.
 *
 * A table is read in chunks in primary-key order. For each chunk: a low
 * watermark row is written to the signal table, the chunk is SELECTed, a high
 * watermark row is written. Both rows come back through the replication
 * stream. A change to a row of the chunk that the stream shows between the
 * watermarks is newer than what the SELECT saw, so that row is dropped from
 * the chunk; at the high watermark the rest of the chunk goes out as 'r'
 * events, in the log's order. Memory is one chunk. Progress (the key of the
 * last row read) is committed with the chunk's events, so a crash redoes at
 * most the chunk that was in flight. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "connectors/postgres/pg_internal.h"
#include "core/clock.h"
#include "core/hash.h"
#include "core/log.h"
#include "core/metrics.h"

/* ---- the queue --------------------------------------------------------------------------- */

static int snap_index(dm_pg_source_t *src, const char *table)
{
    for (int i = 0; i < src->n_snaps; i++)
        if (!strcmp(src->snaps[i].table, table)) return i;
    return -1;
}

static void snap_remove(dm_pg_source_t *src, int i)
{
    free(src->snaps[i].table);
    json_decref(src->snaps[i].after);
    json_decref(src->snaps[i].from);
    json_decref(src->snaps[i].until);
    memmove(&src->snaps[i], &src->snaps[i + 1], (size_t)(src->n_snaps - i - 1) * sizeof(pg_snap_t));
    src->n_snaps--;
    src->snaps_dirty = true;
}

static pg_snap_t *snap_push(dm_pg_source_t *src, const char *table)
{
    pg_snap_t *grown = realloc(src->snaps, ((size_t)src->n_snaps + 1) * sizeof(*grown));
    if (!grown) return NULL;
    src->snaps = grown;
    pg_snap_t *s = &src->snaps[src->n_snaps++];
    memset(s, 0, sizeof(*s));
    s->table = strdup(table);
    src->snaps_dirty = true;
    return s;
}

/* A key bound as an array of n text values (a new reference), or NULL. */
static json_t *key_bound(const json_t *b, int n)
{
    if (!b || json_is_null(b)) return NULL;
    json_t *out = json_array();
    const json_t *items = json_is_array(b) ? b : NULL;
    for (int i = 0; i < n; i++) {
        const json_t *v = items ? json_array_get(items, (size_t)i) : b;
        char *text = json_is_string(v) ? strdup(json_string_value(v))
                                       : json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        json_array_append_new(out, json_string(text ? text : ""));
        free(text);
    }
    return out;
}

dm_err_t dm_pg_snapshot_add(dm_pg_source_t *src, const char *table, const json_t *from,
                            const json_t *until, dm_error_t *err)
{
    int ti = dm_pg_table_index(src, table);
    if (ti < 0)
        return dm_error_set(err, DM_ERR_NOT_FOUND, "source %s: snapshot of %s: not captured",
                            src->name, table);
    int n_key = src->tables[ti].n_key;
    for (int b = 0; b < 2; b++) {
        const json_t *v = b ? until : from;
        if (v && json_is_array(v) && json_array_size(v) != (size_t)n_key)
            return dm_error_set(err, DM_ERR_INVALID,
                                "source %s: snapshot of %s: the %s bound has %zu values, the key "
                                "%d columns",
                                src->name, table, b ? "to" : "from", json_array_size(v), n_key);
    }
    if (!src->tables[ti].n_key) {
        DM_WARN("connector",
                "source=%s connector=postgres: table %s has no primary key; snapshots read tables "
                "in key order and need one (skipped)",
                src->name, table);
        return DM_OK;
    }
    if (snap_index(src, table) >= 0) return DM_OK; /* already under way */
    pg_snap_t *s = snap_push(src, table);
    if (!s) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    s->from = key_bound(from, n_key);
    s->until = key_bound(until, n_key);
    char o[16];
    snprintf(o, sizeof(o), "%u", src->tables[ti].relid);
    const char *p[1] = {o};
    PGresult *r;
    if (dm_pg_exec(src, "estimating the table size", &r,
                   "SELECT GREATEST(reltuples, 0)::int8 FROM pg_class WHERE oid = $1", 1, p,
                   err) == DM_OK) {
        if (PQntuples(r) == 1) s->total = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        PQclear(r);
    }
    DM_INFO("connector", "source=%s connector=postgres: snapshot of %s queued (about %lld rows)",
            src->name, table, (long long)s->total);
    return DM_OK;
}

json_t *dm_pg_snapshots_json(dm_pg_source_t *src)
{
    json_t *a = json_array();
    for (int i = 0; i < src->n_snaps; i++) {
        const pg_snap_t *s = &src->snaps[i];
        json_array_append_new(
            a, json_pack("{s:s, s:O, s:O, s:O, s:I, s:I, s:I}", "table", s->table, "after",
                         s->after ? s->after : json_null(), "from", s->from ? s->from : json_null(),
                         "until", s->until ? s->until : json_null(), "rows", (json_int_t)s->rows,
                         "chunks", (json_int_t)s->chunks, "total", (json_int_t)s->total));
    }
    return a;
}

void dm_pg_snapshots_load(dm_pg_source_t *src, const json_t *list)
{
    size_t i;
    json_t *j;
    json_array_foreach(list, i, j)
    {
        const char *table = json_string_value(json_object_get(j, "table"));
        if (!table) continue;
        pg_snap_t *s = snap_push(src, table);
        if (!s) return;
        json_t *after = json_object_get(j, "after");
        s->after = json_is_array(after) ? json_incref(after) : NULL;
        json_t *from = json_object_get(j, "from"), *until = json_object_get(j, "until");
        s->from = json_is_array(from) ? json_incref(from) : NULL;
        s->until = json_is_array(until) ? json_incref(until) : NULL;
        s->rows = json_integer_value(json_object_get(j, "rows"));
        s->chunks = json_integer_value(json_object_get(j, "chunks"));
        s->total = json_integer_value(json_object_get(j, "total"));
    }
    src->snaps_dirty = false;
}

void dm_pg_snapshots_clear(dm_pg_source_t *src)
{
    while (src->n_snaps)
        snap_remove(src, src->n_snaps - 1);
    free(src->snaps);
    src->snaps = NULL;
    src->snaps_dirty = false;
}

/* ---- a chunk ----------------------------------------------------------------------------- */

void dm_pg_snapshot_abort(dm_pg_source_t *src)
{
    pg_chunk_t *c = &src->chunk;
    PQclear(c->res);
    free(c->dropped);
    free(c->slots);
    memset(c, 0, sizeof(*c));
}

/* Row r of the chunk as datums (allocated in the batch arena). */
static dm_pgoutput_datum_t *chunk_row(dm_pg_source_t *src, int r)
{
    pg_chunk_t *c = &src->chunk;
    int n = PQnfields(c->res);
    dm_pgoutput_datum_t *d = dm_arena_calloc(&src->arena, (size_t)n + 1, sizeof(*d));
    for (int i = 0; d && i < n; i++)
        d[i] = PQgetisnull(c->res, r, i)
                   ? (dm_pgoutput_datum_t){.kind = 'n'}
                   : (dm_pgoutput_datum_t){.kind = 't',
                                           .len = (uint32_t)PQgetlength(c->res, r, i),
                                           .text = PQgetvalue(c->res, r, i)};
    return d;
}

static uint64_t row_hash(dm_pg_source_t *src, const dm_pgoutput_datum_t *row, dm_buf_t *tmp)
{
    dm_buf_reset(tmp);
    if (!dm_pg_row_key_text(&src->tables[src->chunk.table], row, tmp)) return 0;
    return dm_hash64(tmp->data, tmp->len) | 1;
}

/* Indexes the chunk's rows by key (open addressing), for dropping rows the
 * stream changed. */
static dm_err_t index_chunk(dm_pg_source_t *src, dm_error_t *err)
{
    pg_chunk_t *c = &src->chunk;
    c->n_slots = 16;
    while (c->n_slots < 2 * (size_t)c->n_rows)
        c->n_slots *= 2;
    c->slots = calloc(c->n_slots, sizeof(*c->slots));
    c->dropped = calloc((size_t)c->n_rows + 1, sizeof(bool));
    if (!c->slots || !c->dropped) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    dm_buf_t tmp = DM_BUF_INIT;
    dm_arena_t a;
    dm_arena_init(&a, 0);
    for (int r = 0; r < c->n_rows; r++) {
        int n = PQnfields(c->res);
        dm_pgoutput_datum_t *d = dm_arena_calloc(&a, (size_t)n + 1, sizeof(*d));
        for (int i = 0; d && i < n; i++)
            d[i] = (dm_pgoutput_datum_t){.kind = PQgetisnull(c->res, r, i) ? 'n' : 't',
                                         .len = (uint32_t)PQgetlength(c->res, r, i),
                                         .text = PQgetvalue(c->res, r, i)};
        uint64_t h = d ? row_hash(src, d, &tmp) : 0;
        size_t s = h & (c->n_slots - 1);
        while (c->slots[s].hash)
            s = (s + 1) & (c->n_slots - 1);
        c->slots[s] = (pg_chunk_slot_t){h, r};
        if ((r & 1023) == 1023) dm_arena_reset(&a);
    }
    dm_arena_destroy(&a);
    dm_buf_free(&tmp);
    return DM_OK;
}

/* Key columns of row r equal those of row? */
static bool same_key(dm_pg_source_t *src, int r, const dm_pgoutput_datum_t *row)
{
    const dm_pg_table_t *t = &src->tables[src->chunk.table];
    for (int k = 0; k < t->n_key; k++) {
        int col = t->key[k];
        const dm_pgoutput_datum_t *d = &row[col];
        if (d->kind != 't' || PQgetisnull(src->chunk.res, r, col) ||
            (uint32_t)PQgetlength(src->chunk.res, r, col) != d->len ||
            memcmp(PQgetvalue(src->chunk.res, r, col), d->text, d->len))
            return false;
    }
    return true;
}

void dm_pg_snapshot_saw(dm_pg_source_t *src, int table, const dm_pgoutput_datum_t *row)
{
    pg_chunk_t *c = &src->chunk;
    if (!c->active || !c->window_open || c->table != table || !c->n_rows) return;
    uint64_t h = row_hash(src, row, &src->key); /* the key scratch is free between events */
    if (!h) return;
    for (size_t s = h & (c->n_slots - 1); c->slots[s].hash; s = (s + 1) & (c->n_slots - 1))
        if (c->slots[s].hash == h && same_key(src, c->slots[s].row, row) &&
            !c->dropped[c->slots[s].row]) {
            c->dropped[c->slots[s].row] = true;
            c->n_dropped++;
        }
}

void dm_pg_snapshot_saw_truncate(dm_pg_source_t *src, int table)
{
    if (src->chunk.active && src->chunk.window_open && src->chunk.table == table)
        src->chunk.truncated = true;
}

static dm_err_t write_signal(dm_pg_source_t *src, const char *id, const char *kind, dm_error_t *err)
{
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
static dm_err_t select_chunk(dm_pg_source_t *src, const pg_snap_t *s, const dm_pg_table_t *t,
                             dm_error_t *err)
{
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
    const json_t *bounds[3] = {s->after, s->after ? NULL : s->from, s->until};
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
    dm_buf_printf(&sql, " ORDER BY %s LIMIT %lld", kt, (long long)src->conf->chunk_size);
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
    src->chunk.res = r;
    src->chunk.n_rows = PQntuples(r);
    return DM_OK;
}

dm_err_t dm_pg_snapshot_step(dm_pg_source_t *src, dm_error_t *err)
{
    if (src->chunk.active || !src->n_snaps) return DM_OK;
    pg_snap_t *s = &src->snaps[0];
    int ti = dm_pg_table_index(src, s->table);
    if (ti < 0 || !src->tables[ti].n_key) {
        DM_WARN("connector", "source=%s connector=postgres: snapshot of %s dropped: %s", src->name,
                s->table, ti < 0 ? "the table is not captured any more" : "it has no primary key");
        snap_remove(src, 0);
        return DM_OK;
    }
    pg_chunk_t *c = &src->chunk;
    static _Atomic uint64_t seq;
    uint64_t id = (uint64_t)dm_wall_ms() << 20 ^ (uint64_t)getpid() << 8 ^ ++seq;
    snprintf(c->lw, sizeof(c->lw), "%s:%" PRIx64 ":low", src->conf->slot, id);
    snprintf(c->hw, sizeof(c->hw), "%s:%" PRIx64 ":high", src->conf->slot, id);
    c->table = ti;
    src->last_chunk_ns = dm_now_ns();
    dm_err_t rc = write_signal(src, c->lw, "low", err);
    if (!rc) rc = select_chunk(src, s, &src->tables[ti], err);
    if (!rc) rc = write_signal(src, c->hw, "high", err);
    if (!rc) rc = index_chunk(src, err);
    if (rc) {
        dm_pg_snapshot_abort(src);
        if (rc != DM_ERR_INVALID) return rc;
        DM_WARN("connector", "%s; snapshot dropped", err->message);
        snap_remove(src, 0);
        return DM_OK;
    }
    c->active = true;
    return DM_OK;
}

/* The high watermark came through: the chunk's rows that the stream did not
 * change in the window go out, and the snapshot moves on. */
static dm_err_t finish_chunk(dm_pg_source_t *src, uint64_t lsn, dm_error_t *err)
{
    pg_chunk_t *c = &src->chunk;
    pg_snap_t *s = &src->snaps[0];
    const dm_pg_table_t *t = &src->tables[c->table];
    int64_t emitted = 0;
    for (int r = 0; r < c->n_rows && !c->truncated; r++) {
        if (c->dropped[r]) continue;
        dm_pg_event_t ev = {.op = 'r',
                            .after = chunk_row(src, r),
                            .db = src->db,
                            .lsn = lsn,
                            .commit_lsn = src->final_lsn,
                            .txid = src->xid,
                            .commit_ms = src->commit_ms,
                            .now_ms = dm_wall_ms()};
        if (!ev.after) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
        dm_err_t rc = dm_pg_emit(src, c->table, &ev, err);
        if (rc) return rc;
        emitted++;
    }
    s->rows += emitted;
    if (src->m_snapshot_rows) dm_metric_add(src->m_snapshot_rows, (uint64_t)emitted);
    s->chunks++;
    if (c->n_rows > 0) {
        json_t *after = json_array();
        for (int k = 0; k < t->n_key; k++)
            json_array_append_new(after, json_string(PQgetvalue(c->res, c->n_rows - 1, t->key[k])));
        json_decref(s->after);
        s->after = after;
    }
    src->snaps_dirty = true;
    src->next.partial_final = src->final_lsn;
    src->next.partial_lsn = lsn;
    bool done = c->n_rows < src->conf->chunk_size;
    if (done) {
        DM_INFO("connector",
                "source=%s connector=postgres: snapshot of %s done: %lld rows in %lld chunks",
                src->name, s->table, (long long)s->rows, (long long)s->chunks);
        snap_remove(src, 0);
    }
    dm_pg_snapshot_abort(src);
    return DM_OK;
}

dm_err_t dm_pg_snapshot_signal(dm_pg_source_t *src, const char *id, uint64_t lsn, dm_error_t *err)
{
    pg_chunk_t *c = &src->chunk;
    if (!c->active) return DM_OK; /* a heartbeat, or a watermark of an abandoned chunk */
    if (!strcmp(id, c->lw)) {
        c->window_open = true;
        return DM_OK;
    }
    if (!strcmp(id, c->hw) && c->window_open) return finish_chunk(src, lsn, err);
    return DM_OK;
}
