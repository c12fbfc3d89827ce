/* connectors/dblog.c — DBLog snapshots for any CDC connector (see dblog.h).
 * Moved here from the postgres connector so that mysql runs the same
 * algorithm. */
#include "connectors/dblog.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/hash.h"
#include "core/log.h"

void dm_dblog_init(dm_dblog_t *d, const dm_dblog_ops_t *ops, void *ctx, const char *who,
                   const char *tag, int64_t chunk_size)
{
    memset(d, 0, sizeof(*d));
    d->ops = ops;
    d->ctx = ctx;
    snprintf(d->who, sizeof(d->who), "%s", who);
    snprintf(d->tag, sizeof(d->tag), "%s", tag);
    d->chunk_size = chunk_size > 0 ? chunk_size : 1;
}

void dm_dblog_destroy(dm_dblog_t *d)
{
    dm_dblog_abort(d);
    dm_dblog_clear(d);
    dm_buf_free(&d->keys);
}

/* ---- the queue --------------------------------------------------------------------------- */

static int snap_index(const dm_dblog_t *d, const char *table)
{
    for (int i = 0; i < d->n_snaps; i++)
        if (!strcmp(d->snaps[i].table, table)) return i;
    return -1;
}

static void snap_remove(dm_dblog_t *d, int i)
{
    free(d->snaps[i].table);
    json_decref(d->snaps[i].after);
    json_decref(d->snaps[i].from);
    json_decref(d->snaps[i].until);
    memmove(&d->snaps[i], &d->snaps[i + 1], (size_t)(d->n_snaps - i - 1) * sizeof(d->snaps[0]));
    d->n_snaps--;
    d->dirty = true;
}

static dm_dblog_snap_t *snap_push(dm_dblog_t *d, const char *table)
{
    dm_dblog_snap_t *grown = realloc(d->snaps, ((size_t)d->n_snaps + 1) * sizeof(*grown));
    if (!grown) return NULL;
    d->snaps = grown;
    dm_dblog_snap_t *s = &d->snaps[d->n_snaps++];
    memset(s, 0, sizeof(*s));
    s->table = strdup(table);
    d->dirty = true;
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

dm_err_t dm_dblog_add(dm_dblog_t *d, const char *table, int n_key, const json_t *from,
                      const json_t *until, int64_t total, dm_error_t *err)
{
    for (int b = 0; b < 2; b++) {
        const json_t *v = b ? until : from;
        if (v && json_is_array(v) && json_array_size(v) != (size_t)n_key)
            return dm_error_set(err, DM_ERR_INVALID,
                                "%s: snapshot of %s: the %s bound has %zu values, the key %d "
                                "columns",
                                d->who, table, b ? "to" : "from", json_array_size(v), n_key);
    }
    if (!n_key) {
        DM_WARN("connector",
                "%s: table %s has no primary key; snapshots read tables in key order and need one "
                "(skipped)",
                d->who, table);
        return DM_OK;
    }
    if (snap_index(d, table) >= 0) return DM_OK; /* already under way */
    dm_dblog_snap_t *s = snap_push(d, table);
    if (!s || !s->table) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    s->from = key_bound(from, n_key);
    s->until = key_bound(until, n_key);
    s->total = total;
    DM_INFO("connector", "%s: snapshot of %s queued (about %lld rows)", d->who, table,
            (long long)total);
    return DM_OK;
}

json_t *dm_dblog_json(const dm_dblog_t *d)
{
    json_t *a = json_array();
    for (int i = 0; i < d->n_snaps; i++) {
        const dm_dblog_snap_t *s = &d->snaps[i];
        json_array_append_new(
            a, json_pack("{s:s, s:O, s:O, s:O, s:I, s:I, s:I}", "table", s->table, "after",
                         s->after ? s->after : json_null(), "from", s->from ? s->from : json_null(),
                         "until", s->until ? s->until : json_null(), "rows", (json_int_t)s->rows,
                         "chunks", (json_int_t)s->chunks, "total", (json_int_t)s->total));
    }
    return a;
}

void dm_dblog_load(dm_dblog_t *d, const json_t *list)
{
    dm_dblog_clear(d);
    size_t i;
    json_t *j;
    json_array_foreach(list, i, j)
    {
        const char *table = json_string_value(json_object_get(j, "table"));
        if (!table) continue;
        dm_dblog_snap_t *s = snap_push(d, table);
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
    d->dirty = false;
}

void dm_dblog_clear(dm_dblog_t *d)
{
    while (d->n_snaps)
        snap_remove(d, d->n_snaps - 1);
    free(d->snaps);
    d->snaps = NULL;
    d->dirty = false;
}

json_t *dm_dblog_status(const dm_dblog_t *d)
{
    json_t *snaps = json_array();
    for (int i = 0; i < d->n_snaps; i++) {
        const dm_dblog_snap_t *s = &d->snaps[i];
        double pct = s->total > 0 ? 100.0 * (double)s->rows / (double)s->total : 0.0;
        json_t *j =
            json_pack("{s:s, s:I, s:I, s:I, s:f}", "table", s->table, "rows", (json_int_t)s->rows,
                      "chunks", (json_int_t)s->chunks, "estimated_rows", (json_int_t)s->total,
                      "percent", pct > 99.9 ? 99.9 : pct);
        if (s->from) json_object_set(j, "from", s->from);
        if (s->until) json_object_set(j, "to", s->until);
        json_array_append_new(snaps, j);
    }
    return snaps;
}

/* ---- a chunk ----------------------------------------------------------------------------- */

void dm_dblog_abort(dm_dblog_t *d)
{
    if (d->active || d->n_rows) d->ops->release_chunk(d->ctx);
    free(d->dropped);
    free(d->slots);
    free(d->key_off);
    d->dropped = NULL;
    d->slots = NULL;
    d->key_off = NULL;
    d->active = d->window_open = d->truncated = false;
    d->n_rows = d->n_dropped = 0;
    d->n_slots = 0;
    dm_buf_reset(&d->keys);
}

bool dm_dblog_busy(const dm_dblog_t *d, int table)
{
    return d->active && d->table == table;
}

/* Indexes the chunk's rows by key (open addressing), for dropping rows the
 * log changed. */
static dm_err_t index_chunk(dm_dblog_t *d, dm_error_t *err)
{
    d->n_slots = 16;
    while (d->n_slots < 2 * (size_t)d->n_rows)
        d->n_slots *= 2;
    d->slots = calloc(d->n_slots, sizeof(*d->slots));
    d->dropped = calloc((size_t)d->n_rows + 1, sizeof(bool));
    d->key_off = calloc((size_t)d->n_rows + 1, sizeof(size_t));
    if (!d->slots || !d->dropped || !d->key_off)
        return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    dm_buf_reset(&d->keys);
    for (int r = 0; r < d->n_rows; r++) {
        size_t start = d->keys.len;
        d->key_off[r] = start;
        if (!d->ops->row_key(d->ctx, r, &d->keys)) {
            d->keys.len = start;
            continue;
        }
        uint64_t h = dm_hash64(d->keys.data + start, d->keys.len - start) | 1;
        size_t s = h & (d->n_slots - 1);
        while (d->slots[s].hash)
            s = (s + 1) & (d->n_slots - 1);
        d->slots[s] = (dm_dblog_slot_t){h, r};
    }
    d->key_off[d->n_rows] = d->keys.len;
    return DM_OK;
}

void dm_dblog_saw(dm_dblog_t *d, int table, const void *key, size_t len)
{
    if (!d->active || !d->window_open || d->table != table || !d->n_rows) return;
    uint64_t h = dm_hash64(key, len) | 1;
    for (size_t s = h & (d->n_slots - 1); d->slots[s].hash; s = (s + 1) & (d->n_slots - 1)) {
        int r = d->slots[s].row;
        size_t klen = d->key_off[r + 1] - d->key_off[r];
        if (d->slots[s].hash == h && klen == len &&
            !memcmp(d->keys.data + d->key_off[r], key, len) && !d->dropped[r]) {
            d->dropped[r] = true;
            d->n_dropped++;
        }
    }
}

void dm_dblog_saw_truncate(dm_dblog_t *d, int table)
{
    if (d->active && d->window_open && d->table == table) d->truncated = true;
}

dm_err_t dm_dblog_step(dm_dblog_t *d, dm_error_t *err)
{
    if (d->active || !d->n_snaps) return DM_OK;
    dm_dblog_snap_t *s = &d->snaps[0];
    int n_key = 0, ti = d->ops->table_index(d->ctx, s->table, &n_key);
    if (ti < 0 || !n_key) {
        DM_WARN("connector", "%s: snapshot of %s dropped: %s", d->who, s->table,
                ti < 0 ? "the table is not captured any more" : "it has no primary key");
        snap_remove(d, 0);
        return DM_OK;
    }
    static _Atomic uint64_t seq;
    uint64_t id = (uint64_t)dm_wall_ms() << 20 ^ (uint64_t)getpid() << 8 ^ ++seq;
    snprintf(d->lw, sizeof(d->lw), "%s:%" PRIx64 ":low", d->tag, id);
    snprintf(d->hw, sizeof(d->hw), "%s:%" PRIx64 ":high", d->tag, id);
    d->table = ti;
    dm_err_t rc = d->ops->write_watermark(d->ctx, d->lw, "low", err);
    if (!rc)
        rc = d->ops->select_chunk(d->ctx, ti, s->after, s->after ? NULL : s->from, s->until,
                                  d->chunk_size, &d->n_rows, err);
    d->active = true; /* the rows are the connector's now: released by abort */
    if (!rc) rc = d->ops->write_watermark(d->ctx, d->hw, "high", err);
    if (!rc) rc = index_chunk(d, err);
    if (rc) {
        dm_dblog_abort(d);
        if (rc != DM_ERR_INVALID) return rc;
        DM_WARN("connector", "%s; snapshot dropped", err->message);
        snap_remove(d, 0);
        return DM_OK;
    }
    return DM_OK;
}

/* The high watermark came through: the chunk's rows that the log did not
 * change in the window go out, and the snapshot moves on. */
static dm_err_t finish_chunk(dm_dblog_t *d, dm_error_t *err)
{
    dm_dblog_snap_t *s = &d->snaps[0];
    int64_t emitted = 0;
    for (int r = 0; r < d->n_rows && !d->truncated; r++) {
        if (d->dropped[r]) continue;
        dm_err_t rc = d->ops->emit_row(d->ctx, d->table, r, err);
        if (rc) return rc;
        emitted++;
    }
    s->rows += emitted;
    s->chunks++;
    if (d->n_rows > 0) {
        json_decref(s->after);
        s->after = d->ops->row_key_json(d->ctx, d->n_rows - 1);
    }
    d->dirty = true;
    if (d->n_rows < d->chunk_size) {
        DM_INFO("connector", "%s: snapshot of %s done: %lld rows in %lld chunks", d->who, s->table,
                (long long)s->rows, (long long)s->chunks);
        snap_remove(d, 0);
    }
    dm_dblog_abort(d);
    return DM_OK;
}

dm_err_t dm_dblog_signal(dm_dblog_t *d, const char *id, bool *done, dm_error_t *err)
{
    *done = false;
    if (!d->active) return DM_OK; /* a heartbeat, or a watermark of an abandoned chunk */
    if (!strcmp(id, d->lw)) {
        d->window_open = true;
        return DM_OK;
    }
    if (strcmp(id, d->hw) || !d->window_open) return DM_OK;
    *done = true;
    return finish_chunk(d, err);
}
