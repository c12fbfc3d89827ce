/* connectors/iceberg/iceberg_sink.c — the Iceberg sink, a sink type on the
 * common runner (connectors/sink.h: it reads, batches, decodes by schema id
 * and sends dead letters; this file turns batches into table commits).
 *
 * One checkpoint at a time, over as many batches as it takes: records are converted to table rows
 * and written to an open Parquet file per partition (append mode), or buffered with their latest
 * version per key (upsert mode); at the checkpoint (a file reached target_file_size, or
 * commit_interval passed) the files are closed, delete files written, and one snapshot is committed
 * through the catalog carrying the next input offsets in its summary (the runner's checkpoint
 * callback decides when). The table, not the consumer group, is the source of truth for where to
 * resume: a restart reads the offsets of this sink's last snapshot, so a crash before the catalog
 * swap rewrites the checkpoint (its orphan files are never referenced) and a crash after it does
 * not repeat it.
 *
 * Why buffering in upsert mode: an equality delete only applies to data with
 * a smaller sequence number, so a key inserted and updated within one
 * checkpoint must be resolved before the files are written; the buffer keeps
 * the last version of each key (and a delete for the versions in earlier
 * snapshots).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "connectors/iceberg/iceberg.h"
#include "connectors/iceberg/rows.h"
#include "connectors/iceberg/sink_internal.h"
#include "connectors/iceberg/table.h"
#include "core/clock.h"
#include "core/fs.h"
#include "core/hash.h"
#include "core/log.h"
#include "schema/wire.h"
#include "transport/transport.h"

#define MAX_OPEN_PARTITIONS 512
#define COMMIT_ATTEMPTS     10

/* ---- small helpers ----------------------------------------------------------- */

dm_err_t dm_ice_keymap_find_or_add(keymap_t *m, const uint8_t *k, size_t len, uint32_t val,
                                   uint32_t **slot_val, bool *found)
{
    if ((m->n + 1) * 2 > m->n_slots) {
        uint32_t ns = m->n_slots ? m->n_slots * 2 : 1024;
        uint32_t *s = calloc(ns, sizeof(uint32_t));
        if (!s) return DM_ERR_NOMEM;
        for (size_t i = 0; i < m->n; i++) {
            uint32_t h = (uint32_t)dm_hash64(m->bytes.data + m->off[i], m->len[i]) & (ns - 1);
            while (s[h])
                h = (h + 1) & (ns - 1);
            s[h] = (uint32_t)i + 1;
        }
        free(m->slots);
        m->slots = s;
        m->n_slots = ns;
    }
    uint32_t h = (uint32_t)dm_hash64(k, len) & (m->n_slots - 1);
    for (; m->slots[h]; h = (h + 1) & (m->n_slots - 1)) {
        uint32_t i = m->slots[h] - 1;
        if (m->len[i] == len && !memcmp(m->bytes.data + m->off[i], k, len)) {
            *found = true;
            *slot_val = &m->val[i];
            return DM_OK;
        }
    }
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 1024;
        uint32_t *o = realloc(m->off, cap * sizeof(uint32_t));
        if (o) m->off = o;
        uint32_t *l = realloc(m->len, cap * sizeof(uint32_t));
        if (l) m->len = l;
        uint32_t *v = realloc(m->val, cap * sizeof(uint32_t));
        if (v) m->val = v;
        if (!o || !l || !v) return DM_ERR_NOMEM;
        m->cap = cap;
    }
    m->off[m->n] = (uint32_t)m->bytes.len;
    m->len[m->n] = (uint32_t)len;
    m->val[m->n] = val;
    dm_err_t rc = dm_buf_append(&m->bytes, k, len);
    if (rc) return rc;
    m->slots[h] = (uint32_t)++m->n;
    *found = false;
    *slot_val = &m->val[m->n - 1];
    return DM_OK;
}

static void keymap_reset(keymap_t *m)
{
    dm_buf_reset(&m->bytes);
    m->n = 0;
    if (m->slots) memset(m->slots, 0, m->n_slots * sizeof(uint32_t));
}

static void keymap_free(keymap_t *m)
{
    dm_buf_free(&m->bytes);
    free(m->off);
    free(m->len);
    free(m->val);
    free(m->slots);
    memset(m, 0, sizeof(*m));
}

/* Appends a value's bytes, length-prefixed, to a tuple key. */
static dm_err_t key_append(dm_buf_t *b, dm_ice_type_t t, const dm_pq_value_t *v)
{
    uint8_t bytes[64];
    uint32_t len = 0;
    if (v->null) return dm_buf_append_u8(b, 0xff);
    if (!dm_ice_value_bytes(t, v, bytes, &len)) {
        /* Longer than bounds allow: the value's bytes, in full. */
        dm_err_t rc = dm_buf_append(b, &v->u.s.len, 4);
        return rc ? rc : dm_buf_append(b, v->u.s.p, v->u.s.len);
    }
    dm_err_t rc = dm_buf_append(b, &len, 4);
    return rc ? rc : dm_buf_append(b, bytes, len);
}

static const char *sink_name(const sink_t *k)
{
    return k->conf->table;
}

/* ---- partition writers ----------------------------------------------------------- */

static dm_err_t partition_of(sink_t *k, const dm_pq_value_t *row, dm_pq_value_t *out, dm_buf_t *key)
{
    const dm_ice_table_t *t = k->table;
    dm_buf_reset(key);
    for (size_t i = 0; i < t->spec.n; i++) {
        const dm_ice_field_t *src = &t->schema.fields[k->part_cols[i]];
        dm_ice_transform_apply(&t->spec.fields[i], src->type, &row[k->part_cols[i]], &out[i]);
        dm_ice_type_t rt;
        dm_ice_transform_result(t->spec.fields[i].transform, src->type, &rt);
        dm_err_t rc = key_append(key, rt, &out[i]);
        if (rc) return rc;
    }
    return DM_OK;
}

static dm_pq_options_t parquet_options(const sink_t *k)
{
    static const dm_pq_codec_t codecs[] = {DM_PQ_ZSTD, DM_PQ_SNAPPY, DM_PQ_UNCOMPRESSED};
    dm_pq_options_t o = {.codec = codecs[k->conf->compression],
                         .row_group_bytes = k->conf->row_group_size,
                         .zstd_level = (int)k->conf->compression_level};
    return o;
}

/* Opens a Parquet file under data/<partition path>/ with the columns cols. */
static dm_err_t open_file(sink_t *k, const dm_pq_value_t *part, const dm_pq_column_t *cols,
                          size_t n_cols, const char *kind, char **path, FILE **f,
                          dm_pq_writer_t **w, dm_error_t *err)
{
    dm_buf_t p = DM_BUF_INIT;
    char uuid[37];
    dm_ice_uuid(uuid);
    dm_err_t rc = dm_buf_printf(&p, "%s/data/", k->table->dir);
    if (!rc && k->table->spec.n) {
        rc = dm_ice_partition_path(&k->table->spec, &k->table->schema, part, &p);
        if (!rc) rc = dm_buf_append_u8(&p, '/');
    }
    if (!rc) rc = dm_buf_printf(&p, "%s-%s.parquet", uuid, kind);
    const char *s;
    if (!rc) rc = dm_buf_cstr(&p, &s);
    if (rc) {
        dm_buf_free(&p);
        return dm_error_set(err, rc, "iceberg: out of memory");
    }
    *path = (char *)dm_buf_detach(&p, NULL);
    if ((rc = dm_mkdirs(*path, true, err))) return rc;
    if (!(*f = fopen(*path, "wb")))
        return dm_error_set(err, DM_ERR_IO, "iceberg: cannot create %s: %s", *path,
                            strerror(errno));
    dm_pq_options_t o = parquet_options(k);
    const char *kv[2] = {"iceberg.schema", k->schema_kv};
    o.kv = kv;
    o.n_kv = 1;
    rc = dm_pq_writer_new(*f, cols, n_cols, &o, w, err);
    if (rc) {
        fclose(*f);
        *f = NULL;
    }
    return rc;
}

/* Closes a Parquet file into a data file description for the manifest. */
static dm_err_t finish_file(sink_t *k, int content, const dm_pq_value_t *part, char *path, FILE *f,
                            dm_pq_writer_t *w, const int32_t *col_ids, size_t n_cols,
                            dm_error_t *err)
{
    dm_ice_data_file_t *d = calloc(1, sizeof(*d));
    dm_pq_column_stats_t *stats = calloc(n_cols, sizeof(*stats));
    int64_t rows = dm_pq_writer_rows(w), bytes = 0;
    dm_err_t rc = d && stats ? DM_OK : DM_ERR_NOMEM;
    if (!rc)
        rc = dm_pq_writer_close(w, stats, &bytes, err);
    else
        dm_pq_writer_abort(w);
    if (!rc && (fflush(f) || fsync(fileno(f))))
        rc = dm_error_set(err, DM_ERR_IO, "iceberg: writing %s: %s", path, strerror(errno));
    fclose(f);
    size_t np = k->table->spec.n;
    if (!rc) {
        d->content = content;
        d->sort_order_id = content == DM_ICE_CONTENT_DATA && k->sort.n ? k->sort_order_id : 0;
        d->records = rows;
        d->bytes = bytes;
        d->stats = stats;
        d->n_cols = n_cols;
        d->col_ids = malloc(n_cols * sizeof(int32_t));
        d->partition = calloc(np + 1, sizeof(dm_pq_value_t));
        d->partition_owned = calloc(np + 1, sizeof(bool));
        d->n_partition = np;
        if (asprintf(&d->path, "file://%s", path) < 0) d->path = NULL;
        if (!d->col_ids || !d->partition || !d->partition_owned || !d->path) rc = DM_ERR_NOMEM;
    }
    for (size_t i = 0; !rc && i < np; i++) {
        d->partition[i] = part[i];
        dm_ice_type_t rt;
        dm_ice_transform_result(k->table->spec.fields[i].transform,
                                k->table->schema.fields[k->part_cols[i]].type, &rt);
        if (part[i].null || rt < DM_ICE_STRING) continue;
        /* Byte values point into a writer that goes away: copy them. */
        uint8_t *c = malloc(part[i].u.s.len + 1);
        if (!c) {
            rc = DM_ERR_NOMEM;
            break;
        }
        memcpy(c, part[i].u.s.p, part[i].u.s.len);
        d->partition[i].u.s.p = c;
        d->partition_owned[i] = true;
    }
    if (!rc) memcpy(d->col_ids, col_ids, n_cols * sizeof(int32_t));
    if (!rc) {
        dm_ice_data_file_t **fs = realloc(k->files, (k->n_files + 1) * sizeof(*fs));
        if (!fs)
            rc = DM_ERR_NOMEM;
        else {
            k->files = fs;
            k->files[k->n_files++] = d;
            d = NULL;
            stats = NULL;
        }
    }
    if (rc == DM_ERR_NOMEM) dm_error_set(err, rc, "iceberg: out of memory");
    if (d) {
        d->stats = NULL;
        dm_ice_data_file_free(d);
    }
    free(stats);
    if (rc) unlink(path);
    free(path);
    return rc;
}

static void table_columns(const sink_t *k, dm_pq_column_t *cols, int32_t *ids)
{
    for (size_t i = 0; i < k->table->schema.n; i++) {
        cols[i] = dm_ice_parquet_column(&k->table->schema.fields[i]);
        ids[i] = k->table->schema.fields[i].id;
    }
}

/* sort_by: the file's buffered rows go to its writer in the table's order. */
static dm_err_t write_sorted(sink_t *k, part_writer_t *pw, dm_error_t *err)
{
    if (dm_ice_sort_rows(&k->sort, pw->rows, pw->n_rows))
        return dm_error_set(err, DM_ERR_NOMEM, "iceberg: out of memory");
    dm_err_t rc = DM_OK;
    for (size_t i = 0; !rc && i < pw->n_rows; i++)
        rc = dm_pq_writer_add_row(pw->w, pw->rows[i], err);
    return rc;
}

dm_err_t dm_ice_sink_close_writer(sink_t *k, part_writer_t *pw, dm_error_t *err)
{
    size_t n = k->table->schema.n;
    int32_t *ids = malloc(n * sizeof(int32_t));
    dm_pq_column_t *cols = malloc(n * sizeof(dm_pq_column_t));
    dm_err_t rc = ids && cols ? DM_OK : dm_error_set(err, DM_ERR_NOMEM, "iceberg: out of memory");
    if (!rc && pw->n_rows) rc = write_sorted(k, pw, err);
    if (!rc) {
        table_columns(k, cols, ids);
        rc = finish_file(k, DM_ICE_CONTENT_DATA, pw->values, pw->path, pw->f, pw->w, ids, n, err);
    } else {
        dm_pq_writer_abort(pw->w);
        fclose(pw->f);
        free(pw->path);
    }
    free(ids);
    free(cols);
    dm_buf_free(&pw->key);
    free(pw->values);
    free(pw->bytes);
    free(pw->rows);
    memset(pw, 0, sizeof(*pw));
    return rc;
}

static dm_pq_value_t *copy_row(sink_t *k, dm_arena_t *arena, int64_t *bytes,
                               const dm_pq_value_t *row, const size_t *cols, size_t n);

/* Closes every open file (each one sorted run) and frees the rows they
 * buffered. */
static dm_err_t close_writers(sink_t *k, dm_error_t *err)
{
    dm_err_t rc = DM_OK;
    while (!rc && k->n_writers) {
        rc = dm_ice_sink_close_writer(k, &k->writers[k->n_writers - 1], err);
        k->n_writers--;
    }
    if (!rc) {
        dm_arena_reset(&k->sort_arena);
        k->sort_bytes = 0;
    }
    return rc;
}

/* sort_by: keeps a copy of the row for its file, which closes (sorted) at
 * target_file_size; when the sort buffer fills every open file closes early. */
static dm_err_t buffer_sorted(sink_t *k, part_writer_t *pw, const dm_pq_value_t *row,
                              dm_error_t *err)
{
    if (pw->n_rows == pw->cap_rows) {
        size_t cap = pw->cap_rows ? pw->cap_rows * 2 : 1024;
        const dm_pq_value_t **r = realloc(pw->rows, cap * sizeof(*r));
        if (!r) return dm_error_set(err, DM_ERR_NOMEM, "iceberg: out of memory");
        pw->rows = r;
        pw->cap_rows = cap;
    }
    /* Upserted rows are already kept (until the commit ends): no second copy. */
    int64_t bytes = (int64_t)sizeof(void *);
    const dm_pq_value_t *copy =
        k->rows_kept ? row : copy_row(k, &k->sort_arena, &bytes, row, NULL, k->table->schema.n);
    if (!copy) return dm_error_set(err, DM_ERR_NOMEM, "iceberg: out of memory");
    pw->rows[pw->n_rows++] = copy;
    pw->row_bytes += bytes;
    k->sort_bytes += bytes;
    k->pending = true;
    if (k->sort_bytes >= k->conf->sort_buffer) return close_writers(k, err);
    if (pw->row_bytes < k->conf->target_file_size) return DM_OK;
    dm_err_t rc = dm_ice_sink_close_writer(k, pw, err);
    *pw = k->writers[--k->n_writers];
    return rc;
}

/* Writes one row to its partition's open file, rolling it at target_file_size. */
dm_err_t dm_ice_sink_write_row(sink_t *k, const dm_pq_value_t *row, dm_error_t *err)
{
    size_t np = k->table->spec.n;
    dm_pq_value_t part[np + 1];
    dm_err_t rc = partition_of(k, row, part, &k->scratch);
    if (rc) return dm_error_set(err, rc, "iceberg: out of memory");
    part_writer_t *pw = np == 0 && k->n_writers ? &k->writers[0] : NULL;
    for (size_t i = 0; !pw && i < k->n_writers; i++)
        if (k->writers[i].key.len == k->scratch.len &&
            !memcmp(k->writers[i].key.data, k->scratch.data, k->scratch.len)) {
            pw = &k->writers[i];
            break;
        }
    if (!pw) {
        if (k->n_writers == MAX_OPEN_PARTITIONS)
            return dm_error_set(err, DM_ERR_RANGE,
                                "iceberg: more than %d partitions in one checkpoint; use a coarser "
                                "partition_by",
                                MAX_OPEN_PARTITIONS);
        part_writer_t *ws = realloc(k->writers, (k->n_writers + 1) * sizeof(*ws));
        if (!ws) return dm_error_set(err, DM_ERR_NOMEM, "iceberg: out of memory");
        k->writers = ws;
        pw = &ws[k->n_writers];
        memset(pw, 0, sizeof(*pw));
        /* Keep a private copy of the tuple: its byte values point into the row. */
        size_t nbytes = 0;
        for (size_t i = 0; i < np; i++)
            if (!part[i].null) nbytes += part[i].u.s.len;
        pw->values = calloc(np + 1, sizeof(dm_pq_value_t));
        pw->bytes = malloc(nbytes + 1);
        if (!pw->values || !pw->bytes || dm_buf_append(&pw->key, k->scratch.data, k->scratch.len)) {
            free(pw->values);
            free(pw->bytes);
            dm_buf_free(&pw->key);
            return dm_error_set(err, DM_ERR_NOMEM, "iceberg: out of memory");
        }
        size_t o = 0;
        for (size_t i = 0; i < np; i++) {
            pw->values[i] = part[i];
            dm_ice_type_t rt;
            dm_ice_transform_result(k->table->spec.fields[i].transform,
                                    k->table->schema.fields[k->part_cols[i]].type, &rt);
            if (!part[i].null && rt >= DM_ICE_STRING) {
                memcpy(pw->bytes + o, part[i].u.s.p, part[i].u.s.len);
                pw->values[i].u.s.p = pw->bytes + o;
                o += part[i].u.s.len;
            }
        }
        size_t n = k->table->schema.n;
        dm_pq_column_t cols[n];
        int32_t ids[n];
        table_columns(k, cols, ids);
        rc = open_file(k, pw->values, cols, n, "data", &pw->path, &pw->f, &pw->w, err);
        if (rc) {
            free(pw->path);
            free(pw->values);
            free(pw->bytes);
            dm_buf_free(&pw->key);
            return rc;
        }
        k->n_writers++;
    }
    if (k->sort.n) return buffer_sorted(k, pw, row, err);
    if ((rc = dm_pq_writer_add_row(pw->w, row, err))) return rc;
    k->pending = true;
    if (dm_pq_writer_size_estimate(pw->w) >= k->conf->target_file_size) {
        rc = dm_ice_sink_close_writer(k, pw, err);
        *pw = k->writers[--k->n_writers];
    }
    return rc;
}

/* ---- upsert buffering and delete files ------------------------------------------ */

dm_err_t dm_ice_sink_encode_key(sink_t *k, const dm_pq_value_t *row, dm_buf_t *out, dm_error_t *err)
{
    dm_buf_reset(out);
    for (size_t i = 0; i < k->n_key; i++) {
        const dm_ice_field_t *f = &k->table->schema.fields[k->key_cols[i]];
        if (row[k->key_cols[i]].null)
            return dm_error_set(err, DM_ERR_SCHEMA_MISMATCH,
                                "iceberg: primary key column %s is null", f->name);
        if (key_append(out, f->type, &row[k->key_cols[i]]))
            return dm_error_set(err, DM_ERR_NOMEM, "iceberg: out of memory");
    }
    return DM_OK;
}

static dm_err_t grow_ptrs(dm_pq_value_t ***a, size_t *cap, size_t n)
{
    if (n < *cap) return DM_OK;
    size_t c = *cap ? *cap * 2 : 1024;
    dm_pq_value_t **r = realloc(*a, c * sizeof(*r));
    if (!r) return DM_ERR_NOMEM;
    *a = r;
    *cap = c;
    return DM_OK;
}

/* Copies a list's or map's entries (and their bytes) into the checkpoint's
 * arena. */
static dm_err_t keep_entries(sink_t *k, dm_arena_t *arena, int64_t *bytes, dm_pq_value_t *v)
{
    dm_pq_entry_t *e = dm_arena_memdup(arena, v->u.rep.e, v->u.rep.n * sizeof(*e));
    if (!e) return DM_ERR_NOMEM;
    for (uint32_t j = 0; j < v->u.rep.n; j++) {
        *bytes += (int64_t)sizeof(*e);
        if (e[j].v.null || k->table->schema.fields[e[j].col].type < DM_ICE_STRING) continue;
        *bytes += e[j].v.u.s.len;
        if (!e[j].v.u.s.len) continue;
        if (!(e[j].v.u.s.p = dm_arena_memdup(arena, e[j].v.u.s.p, e[j].v.u.s.len)))
            return DM_ERR_NOMEM;
    }
    v->u.rep.e = e;
    return DM_OK;
}

/* Copies a row (or the key columns of one) into arena, adding its size to
 * *bytes. */
static dm_pq_value_t *copy_row(sink_t *k, dm_arena_t *arena, int64_t *bytes,
                               const dm_pq_value_t *row, const size_t *cols, size_t n)
{
    dm_pq_value_t *out = dm_arena_alloc(arena, (n + 1) * sizeof(*out));
    if (!out) return NULL;
    for (size_t i = 0; i < n; i++) {
        size_t c = cols ? cols[i] : i;
        dm_ice_type_t t = k->table->schema.fields[c].type;
        out[i] = row[c];
        if (!row[c].null && (t == DM_ICE_LIST || t == DM_ICE_MAP)) {
            if (keep_entries(k, arena, bytes, &out[i])) return NULL;
            continue;
        }
        if (!row[c].null && t >= DM_ICE_STRING && row[c].u.s.len) {
            out[i].u.s.p = dm_arena_memdup(arena, row[c].u.s.p, row[c].u.s.len);
            if (!out[i].u.s.p) return NULL;
        }
        *bytes += 16 + (int64_t)(out[i].null || t < DM_ICE_STRING ? 0 : out[i].u.s.len);
    }
    return out;
}

/* Copies a row (or the key columns of one) into the checkpoint's arena. */
static dm_pq_value_t *keep_row(sink_t *k, const dm_pq_value_t *row, const size_t *cols, size_t n)
{
    return copy_row(k, &k->rows_arena, &k->buffered_bytes, row, cols, n);
}

/* Forgets the buffered version of the row's key and records a delete for
 * the versions in earlier snapshots. */
static dm_err_t buffer_delete(sink_t *k, const dm_pq_value_t *row, dm_error_t *err)
{
    dm_err_t rc = dm_ice_sink_encode_key(k, row, &k->scratch, err);
    if (rc) return rc;
    uint32_t *v;
    bool found;
    if (dm_ice_keymap_find_or_add(&k->row_of_key, k->scratch.data, k->scratch.len, UINT32_MAX, &v,
                                  &found))
        return dm_error_set(err, DM_ERR_NOMEM, "iceberg: out of memory");
    if (found && *v != UINT32_MAX) k->rows[*v] = NULL;
    *v = UINT32_MAX;
    if (dm_ice_keymap_find_or_add(&k->deleted, k->scratch.data, k->scratch.len, 0, &v, &found))
        return dm_error_set(err, DM_ERR_NOMEM, "iceberg: out of memory");
    if (!found) {
        dm_pq_value_t *keyrow = keep_row(k, row, k->key_cols, k->n_key);
        if (!keyrow || grow_ptrs(&k->del_keys, &k->cap_del, k->n_del))
            return dm_error_set(err, DM_ERR_NOMEM, "iceberg: out of memory");
        k->del_keys[k->n_del++] = keyrow;
    }
    k->pending = true;
    return DM_OK;
}

/* Buffers the row as its key's latest version. */
static dm_err_t buffer_upsert(sink_t *k, const dm_pq_value_t *row, dm_error_t *err)
{
    dm_err_t rc = dm_ice_sink_encode_key(k, row, &k->scratch, err);
    if (rc) return rc;
    uint32_t *v;
    bool found;
    if (dm_ice_keymap_find_or_add(&k->row_of_key, k->scratch.data, k->scratch.len, UINT32_MAX, &v,
                                  &found))
        return dm_error_set(err, DM_ERR_NOMEM, "iceberg: out of memory");
    if (found && *v != UINT32_MAX) k->rows[*v] = NULL;
    dm_pq_value_t *copy = keep_row(k, row, NULL, k->table->schema.n);
    if (!copy || grow_ptrs(&k->rows, &k->cap_rows, k->n_rows))
        return dm_error_set(err, DM_ERR_NOMEM, "iceberg: out of memory");
    *v = (uint32_t)k->n_rows;
    k->rows[k->n_rows++] = copy;
    k->pending = true;
    return DM_OK;
}

/* Writes the buffered deletes, one equality delete file per partition (the
 * partition columns are part of the key, so a key's partition is known). */
static dm_err_t write_deletes(sink_t *k, dm_error_t *err)
{
    size_t nk = k->n_key, np = k->table->spec.n, done = 0;
    if (!k->n_del) return DM_OK;
    dm_pq_column_t cols[nk];
    int32_t ids[nk];
    for (size_t i = 0; i < nk; i++) {
        cols[i] = dm_ice_parquet_column(&k->table->schema.fields[k->key_cols[i]]);
        ids[i] = k->table->schema.fields[k->key_cols[i]].id;
    }
    bool *written = calloc(k->n_del, sizeof(bool));
    size_t ncols = k->table->schema.n;
    dm_pq_value_t *full = calloc(ncols + 1, sizeof(dm_pq_value_t));
    dm_pq_value_t part[np + 1], other[np + 1];
    dm_buf_t pkey = DM_BUF_INIT, okey = DM_BUF_INIT;
    dm_err_t rc =
        written && full ? DM_OK : dm_error_set(err, DM_ERR_NOMEM, "iceberg: out of memory");
    while (!rc && done < k->n_del) {
        size_t first = 0;
        while (written[first])
            first++;
        /* The partition of this group, from the key columns. */
        for (size_t i = 0; i < nk; i++)
            full[k->key_cols[i]] = k->del_keys[first][i];
        if ((rc = partition_of(k, full, part, &pkey))) break;
        char *path = NULL;
        FILE *f = NULL;
        dm_pq_writer_t *w = NULL;
        if ((rc = open_file(k, part, cols, nk, "deletes", &path, &f, &w, err))) {
            free(path);
            break;
        }
        for (size_t d = first; d < k->n_del && !rc; d++) {
            if (written[d]) continue;
            for (size_t i = 0; i < nk; i++)
                full[k->key_cols[i]] = k->del_keys[d][i];
            if (np && (rc = partition_of(k, full, other, &okey))) break;
            if (np && (okey.len != pkey.len || memcmp(okey.data, pkey.data, pkey.len))) continue;
            rc = dm_pq_writer_add_row(w, k->del_keys[d], err);
            written[d] = true;
            done++;
        }
        if (rc) {
            dm_pq_writer_abort(w);
            fclose(f);
            unlink(path);
            free(path);
            break;
        }
        rc = finish_file(k, DM_ICE_CONTENT_EQ_DELETES, part, path, f, w, ids, nk, err);
        if (!rc) {
            dm_ice_data_file_t *d = k->files[k->n_files - 1];
            d->eq_ids = malloc(nk * sizeof(int32_t));
            if (!d->eq_ids)
                rc = dm_error_set(err, DM_ERR_NOMEM, "iceberg: out of memory");
            else
                memcpy(d->eq_ids, ids, nk * sizeof(int32_t)), d->n_eq = nk;
        }
    }
    dm_buf_free(&pkey);
    dm_buf_free(&okey);
    free(written);
    free(full);
    return rc;
}

/* ---- checkpoints ----------------------------------------------------------------- */

/* "P:OFFSET,P:OFFSET": the next offset to read per input partition. */
static char *checkpoint_text(const sink_t *k)
{
    dm_buf_t b = DM_BUF_INIT;
    for (int32_t p = 0; p < k->env->partitions; p++)
        dm_buf_printf(&b, "%s%d:%" PRId64, p ? "," : "", p, k->pos[p]);
    const char *s;
    if (dm_buf_cstr(&b, &s)) {
        dm_buf_free(&b);
        return NULL;
    }
    return (char *)dm_buf_detach(&b, NULL);
}

/* Reads this sink's offsets from the table; false when it has none. */
static bool table_offsets(const sink_t *k, int64_t *out)
{
    const char *cp = dm_ice_table_sink_summary(k->table, k->env->group, "datamesh.checkpoint");
    if (!cp) return false;
    for (int32_t p = 0; p < k->env->partitions; p++)
        out[p] = 0;
    while (*cp) {
        char *end;
        long p = strtol(cp, &end, 10);
        if (*end != ':') break;
        long long off = strtoll(end + 1, &end, 10);
        if (p >= 0 && p < k->env->partitions) out[p] = off;
        cp = *end == ',' ? end + 1 : end;
        if (!*end) break;
    }
    return true;
}

/* Drops everything of the open checkpoint (its files are deleted). */
static void discard(sink_t *k)
{
    for (size_t i = 0; i < k->n_writers; i++) {
        part_writer_t *pw = &k->writers[i];
        dm_pq_writer_abort(pw->w);
        fclose(pw->f);
        unlink(pw->path);
        free(pw->path);
        dm_buf_free(&pw->key);
        free(pw->values);
        free(pw->bytes);
        free(pw->rows);
    }
    k->n_writers = 0;
    dm_arena_reset(&k->sort_arena);
    k->sort_bytes = 0;
    for (size_t i = 0; i < k->n_files; i++)
        dm_ice_data_file_free(k->files[i]);
    k->n_files = 0;
    dm_arena_reset(&k->rows_arena);
    k->n_rows = k->n_del = 0;
    keymap_reset(&k->row_of_key);
    keymap_reset(&k->deleted);
    k->buffered_bytes = 0;
    k->pending = false;
    k->opened_ms = dm_wall_ms();
}

void dm_ice_sink_discard_files(sink_t *k)
{
    for (size_t i = 0; i < k->n_files; i++)
        unlink(dm_ice_local_path(k->files[i]->path));
}

/* True when the table already holds this checkpoint (every partition's
 * committed offset at or past ours): committing again would duplicate it. */
static bool already_committed(const sink_t *k)
{
    int64_t *have = calloc((size_t)k->env->partitions, sizeof(int64_t));
    bool covered = have && table_offsets(k, have);
    for (int32_t p = 0; covered && p < k->env->partitions; p++)
        if (have[p] < k->pos[p]) covered = false;
    free(have);
    return covered;
}

/* Ends the checkpoint: closes the files, writes deletes, commits a snapshot
 * with the offsets (the runner then commits the group, for lag only). */
static dm_err_t commit(sink_t *k, dm_error_t *err)
{
    dm_err_t rc = DM_OK;
    k->rows_kept = true;
    for (size_t i = 0; i < k->n_rows && !rc; i++)
        if (k->rows[i]) rc = dm_ice_sink_write_row(k, k->rows[i], err);
    if (!rc) rc = close_writers(k, err);
    k->rows_kept = false;
    if (!rc) rc = write_deletes(k, err);
    if (rc) {
        dm_ice_sink_discard_files(k);
        discard(k);
        return rc;
    }
    size_t nd = 0;
    for (size_t i = 0; i < k->n_files; i++)
        if (k->files[i]->content == DM_ICE_CONTENT_DATA) nd++;
    dm_ice_data_file_t **sorted = malloc((k->n_files + 1) * sizeof(*sorted));
    char *cp = checkpoint_text(k);
    if (!sorted || !cp) {
        free(sorted);
        free(cp);
        dm_ice_sink_discard_files(k);
        discard(k);
        return dm_error_set(err, DM_ERR_NOMEM, "iceberg: out of memory");
    }
    size_t a = 0, b = nd;
    for (size_t i = 0; i < k->n_files; i++)
        sorted[k->files[i]->content == DM_ICE_CONTENT_DATA ? a++ : b++] = k->files[i];
    json_t *extra =
        json_pack("{s:s, s:s}", "datamesh.sink", k->env->group, "datamesh.checkpoint", cp);
    dm_ice_commit_t c = {.data = sorted,
                         .n_data = nd,
                         .deletes = sorted + nd,
                         .n_deletes = k->n_files - nd,
                         .extra = extra};
    for (int attempt = 0; attempt < COMMIT_ATTEMPTS; attempt++) {
        if (already_committed(k)) {
            /* A replay of a checkpoint the table holds: a no-op. */
            DM_INFO("sink", "sink=iceberg table=%s: checkpoint %s already committed", sink_name(k),
                    cp);
            dm_ice_sink_discard_files(k);
            rc = DM_OK;
            break;
        }
        rc = dm_ice_table_commit(k->table, &c, err);
        if (rc != DM_ERR_AGAIN) break;
        dm_err_t rr = dm_ice_table_refresh(k->table, err);
        if (rr) {
            rc = rr;
            break;
        }
    }
    json_decref(extra);
    free(sorted);
    if (rc) {
        dm_error_prefix(err, "commit of checkpoint %s", cp);
        dm_ice_sink_discard_files(k);
    }
    free(cp);
    discard(k);
    return rc;
}

/* ---- sources and schema evolution --------------------------------------------------- */

dm_err_t dm_ice_sink_reset_sources(sink_t *k, dm_error_t *err)
{
    for (size_t i = 0; i < k->n_sources; i++) {
        dm_ice_source_t *src = &k->sources[i];
        uint32_t id = src->id;
        const dm_avro_schema_t *schema = src->schema;
        dm_ice_source_free(src);
        dm_err_t rc = dm_ice_source_init(src, id, schema, &k->table->schema, err);
        if (rc) return rc;
    }
    free(k->row);
    k->row = calloc(k->table->schema.n + 1, sizeof(dm_pq_value_t));
    free(k->schema_kv);
    json_t *sj = dm_ice_schema_to_json(&k->table->schema);
    k->schema_kv = json_dumps(sj, JSON_COMPACT);
    json_decref(sj);
    if (!k->row || !k->schema_kv) return dm_error_set(err, DM_ERR_NOMEM, "iceberg: out of memory");
    /* Column positions of the key and of partition sources. */
    for (size_t i = 0; i < k->n_key; i++) {
        const dm_ice_field_t *f =
            dm_ice_schema_find_id(&k->table->schema, k->table->schema.key_ids[i]);
        k->key_cols[i] = (size_t)(f - k->table->schema.fields);
    }
    for (size_t i = 0; i < k->sort.n; i++) {
        const dm_ice_field_t *f = dm_ice_schema_find_id(&k->table->schema, k->sort.f[i].source_id);
        if (!f)
            return dm_error_set(err, DM_ERR_CORRUPT, "iceberg: sort field %d has no source column",
                                k->sort.f[i].source_id);
        k->sort.f[i].col = (size_t)(f - k->table->schema.fields);
        k->sort.f[i].type = f->type;
    }
    free(k->part_cols);
    k->part_cols = calloc(k->table->spec.n + 1, sizeof(size_t));
    if (!k->part_cols) return dm_error_set(err, DM_ERR_NOMEM, "iceberg: out of memory");
    for (size_t i = 0; i < k->table->spec.n; i++) {
        const dm_ice_field_t *f =
            dm_ice_schema_find_id(&k->table->schema, k->table->spec.fields[i].source_id);
        if (!f)
            return dm_error_set(err, DM_ERR_CORRUPT,
                                "iceberg: partition field %s has no source column",
                                k->table->spec.fields[i].name);
        k->part_cols[i] = (size_t)(f - k->table->schema.fields);
    }
    return DM_OK;
}

/* Brings the table's schema up to a source schema: new columns, widened
 * types, as a new current schema (committed through the catalog). */
static dm_err_t evolve_to(sink_t *k, const dm_avro_schema_t *schema, bool *changed, dm_error_t *err)
{
    bool env;
    const dm_avro_node_t *row = dm_ice_row_node(schema->root, &env);
    dm_ice_schema_t src, next;
    dm_err_t rc = dm_ice_schema_from_avro(row, 1, &src, err);
    if (rc) return rc;
    for (int attempt = 0; attempt < COMMIT_ATTEMPTS; attempt++) {
        int32_t last =
            (int32_t)json_integer_value(json_object_get(k->table->meta, "last-column-id"));
        rc = dm_ice_schema_evolve(&k->table->schema, last, &src, &next, changed, err);
        if (rc) break;
        if (!*changed) {
            dm_ice_schema_free(&next);
            break;
        }
        rc = dm_ice_table_set_schema(k->table, &next, err);
        dm_ice_schema_free(&next);
        if (rc != DM_ERR_AGAIN) break;
        if ((rc = dm_ice_table_refresh(k->table, err))) break;
    }
    dm_ice_schema_free(&src);
    if (!rc && *changed) {
        DM_INFO("sink", "sink=iceberg table=%s: schema evolved to id %d (%zu columns)",
                sink_name(k), k->table->schema.id, k->table->schema.n);
        rc = dm_ice_sink_reset_sources(k, err);
    }
    return rc;
}

/* Whether an error converting or evolving to a record's schema can never go
 * away for that record (it is a dead letter then), rather than the table or
 * the disk failing (the checkpoint is tried again). */
static bool permanent(dm_err_t rc)
{
    return rc == DM_ERR_SCHEMA_MISMATCH || rc == DM_ERR_SCHEMA_INCOMPATIBLE ||
           rc == DM_ERR_UNSUPPORTED || rc == DM_ERR_RANGE || rc == DM_ERR_INVALID;
}

/* The prepared source for a record's schema, adding (and evolving the table
 * to) new ones. The runner starts a batch at a new schema version after the
 * open checkpoint committed, so the table evolves between checkpoints. A
 * schema the table can never take is remembered (DM_ERR_SCHEMA_INCOMPATIBLE
 * with the reason): its records are dead letters. */
static dm_err_t source_for(sink_t *k, const dm_sink_record_t *r, dm_ice_source_t **out,
                           dm_error_t *err)
{
    uint32_t id = r->value_schema_id;
    for (size_t i = 0; i < k->n_sources; i++)
        if (k->sources[i].id == id) {
            *out = &k->sources[i];
            return DM_OK;
        }
    for (size_t i = 0; i < k->n_bad; i++)
        if (k->bad[i].id == id)
            return dm_error_set(err, DM_ERR_SCHEMA_INCOMPATIBLE, "%s", k->bad[i].reason);
    if (k->pending)
        return dm_error_set(err, DM_ERR_INTERNAL,
                            "iceberg: schema id %u met inside an open checkpoint; starting it over",
                            id);
    bool changed = false;
    dm_err_t rc = evolve_to(k, r->value_schema, &changed, err);
    dm_ice_source_t *ss = NULL;
    if (!rc && !(ss = realloc(k->sources, (k->n_sources + 1) * sizeof(*ss))))
        rc = dm_error_set(err, DM_ERR_NOMEM, "iceberg: out of memory");
    if (!rc) {
        k->sources = ss;
        rc = dm_ice_source_init(&ss[k->n_sources], id, r->value_schema, &k->table->schema, err);
        if (rc) dm_ice_source_free(&ss[k->n_sources]);
    }
    if (!rc) {
        *out = &ss[k->n_sources++];
        return DM_OK;
    }
    if (!permanent(rc)) return rc;
    bad_schema_t *bad = realloc(k->bad, (k->n_bad + 1) * sizeof(*bad));
    if (!bad) return dm_error_set(err, DM_ERR_NOMEM, "iceberg: out of memory");
    k->bad = bad;
    bad[k->n_bad].id = id;
    snprintf(bad[k->n_bad].reason, sizeof(bad[k->n_bad].reason),
             "schema id %u cannot be written to table %s: %s", id, k->conf->table, err->message);
    DM_WARN("sink", "sink=iceberg table=%s: %s; its records go to the dead-letter topic",
            sink_name(k), bad[k->n_bad].reason);
    rc = dm_error_set(err, DM_ERR_SCHEMA_INCOMPATIBLE, "%s", bad[k->n_bad].reason);
    k->n_bad++;
    return rc;
}

/* ---- records ---------------------------------------------------------------------- */

/* The op letter of a change event ('?' when unreadable). */
static char op_of(const dm_ice_source_t *src, const dm_avro_value_t *v)
{
    const dm_avro_value_t *op = &v->u.v[src->op];
    if (op->type == DM_AVRO_STRING && op->len >= 1) return (char)op->u.p[0];
    const dm_avro_node_t *on = src->schema->root->fields[src->op].type;
    if (op->type == DM_AVRO_ENUM && on->type == DM_AVRO_ENUM && (uint32_t)op->u.i < on->n_symbols)
        return on->symbols[op->u.i][0];
    return '?';
}

/* Converts row into k->row; a record the table cannot hold is refused
 * (permanent error) before anything of it is applied. */
static dm_err_t convert(sink_t *k, dm_ice_source_t *src, const dm_avro_value_t *row,
                        dm_error_t *err)
{
    return dm_ice_row_convert(src, &k->table->schema, row, NULL, k->row, err);
}

/* Applies one record to the open checkpoint. A permanent error means the
 * record was not applied at all (its conversion, and the keys it needs, are
 * checked first); any other means the checkpoint must be dropped. */
static dm_err_t process(sink_t *k, const dm_sink_record_t *r, dm_error_t *err)
{
    if (r->rec->value_len < 0 || !r->value) return DM_OK; /* a tombstone: its event came first */
    dm_ice_source_t *src = NULL;
    dm_err_t rc = source_for(k, r, &src, err);
    if (rc) return rc;
    const dm_avro_value_t *v = r->value;
    if (!src->envelope) {
        if ((rc = convert(k, src, v, err))) return rc;
        return k->upsert ? buffer_upsert(k, k->row, err) : dm_ice_sink_write_row(k, k->row, err);
    }
    char o = op_of(src, v);
    const dm_avro_value_t *after = &v->u.v[src->after];
    const dm_avro_value_t *before = src->before >= 0 ? &v->u.v[src->before] : NULL;
    switch (o) {
    case 'c':
    case 'r':
    case 'u':
        if (after->type != DM_AVRO_RECORD)
            return dm_error_set(err, DM_ERR_SCHEMA_MISMATCH, "iceberg: op %c without after", o);
        if ((rc = convert(k, src, after, err))) return rc;
        if (!k->upsert) return dm_ice_sink_write_row(k, k->row, err);
        /* An update may change the key: the before image's key goes too. Its
         * conversion overwrites k->row, so after (its key checked first) is
         * converted again below (it converted once: it will again). Buffering
         * checks the key before it changes anything. */
        if (o == 'u' && before && before->type == DM_AVRO_RECORD) {
            if ((rc = dm_ice_sink_encode_key(k, k->row, &k->scratch, err))) return rc;
            if ((rc = convert(k, src, before, err))) return rc;
            if ((rc = dm_ice_sink_encode_key(k, k->row, &k->scratch, err))) return rc;
            if ((rc = buffer_delete(k, k->row, err))) return rc;
            if ((rc = convert(k, src, after, err))) return rc;
        }
        /* A snapshot read ('r') may repeat a row an earlier snapshot wrote. */
        if ((o == 'u' || o == 'r') && (rc = buffer_delete(k, k->row, err))) return rc;
        return buffer_upsert(k, k->row, err);
    case 'd':
        if (!k->upsert) return DM_OK; /* append mode keeps history only */
        if (!before || before->type != DM_AVRO_RECORD)
            return dm_error_set(err, DM_ERR_SCHEMA_MISMATCH,
                                "iceberg: delete without a before image");
        if ((rc = convert(k, src, before, err))) return rc;
        return buffer_delete(k, k->row, err);
    case 't':
        /* A truncate has no key to delete by; it is logged, not applied. */
        DM_WARN("sink",
                "sink=iceberg table=%s: truncate at topic %s partition %d offset %" PRId64
                " is not applied to the table",
                sink_name(k), k->env->topic, r->partition, r->rec->offset);
        return DM_OK;
    default: return dm_error_set(err, DM_ERR_SCHEMA_MISMATCH, "iceberg: unknown op '%c'", o);
    }
}

/* ---- the unit ---------------------------------------------------------------------- */

static dm_err_t split_table(const char *full, char **ns, char **name, dm_error_t *err)
{
    const char *dot = strrchr(full, '.');
    if (!dot || dot == full || !dot[1] || strchr(full, '/'))
        return dm_error_set(err, DM_ERR_CONFIG, "iceberg: table '%s' must be NAMESPACE.TABLE",
                            full);
    *ns = strndup(full, (size_t)(dot - full));
    *name = strdup(dot + 1);
    return *ns && *name ? DM_OK : dm_error_set(err, DM_ERR_NOMEM, "iceberg: out of memory");
}

/* An existing table keeps its partition spec; say so when the settings ask
 * for another one (spec evolution is not done here). */
static void warn_spec(const sink_t *k)
{
    dm_ice_spec_t want;
    if (dm_ice_spec_parse(k->conf->partition_by, &k->table->schema, &want, NULL)) return;
    bool same = want.n == k->table->spec.n;
    for (size_t i = 0; same && i < want.n; i++)
        same = want.fields[i].source_id == k->table->spec.fields[i].source_id &&
               want.fields[i].transform == k->table->spec.fields[i].transform &&
               want.fields[i].param == k->table->spec.fields[i].param;
    if (!same)
        DM_WARN("sink",
                "sink=iceberg table=%s: the table exists with another partition spec; it "
                "keeps its own (partition_by applies to new tables)",
                sink_name(k));
    dm_ice_spec_free(&want);
}

/* Opens the catalog the settings name and splits the table name. */
dm_err_t dm_ice_sink_open_catalog(sink_t *k, char **ns, char **name, dm_error_t *err)
{
    const dm_iceberg_sink_config_t *c = k->conf;
    char *uri = NULL;
    dm_err_t rc = split_table(c->table, ns, name, err);
    if (!rc && c->catalog == DM_ICEBERG_CATALOG_SQLITE) {
        if (c->catalog_uri && *c->catalog_uri)
            uri = strdup(c->catalog_uri);
        else if (asprintf(&uri, "%s/catalog.db", c->warehouse) < 0)
            uri = NULL;
        if (!uri) rc = dm_error_set(err, DM_ERR_NOMEM, "iceberg: out of memory");
    }
    if (!rc && c->catalog == DM_ICEBERG_CATALOG_POSTGRES && !(c->catalog_dsn && *c->catalog_dsn))
        rc = dm_error_set(err, DM_ERR_CONFIG, "iceberg: catalog postgres needs catalog_dsn");
    static const dm_ice_catalog_kind_t kinds[] = {DM_ICE_CATALOG_FILE, DM_ICE_CATALOG_SQLITE,
                                                  DM_ICE_CATALOG_POSTGRES};
    if (!rc)
        rc = dm_ice_catalog_open(kinds[c->catalog],
                                 c->catalog == DM_ICEBERG_CATALOG_POSTGRES ? c->catalog_dsn : uri,
                                 c->catalog_name, &k->catalog, err);
    free(uri);
    return rc;
}

/* sort_by against the table: an existing table keeps its own default sort
 * order, so a sort_by that differs from it is refused (naming both) rather
 * than writing files that claim an order the table does not have. */
static dm_err_t use_sort_order(sink_t *k, dm_error_t *err)
{
    const char *by = k->conf->sort_by;
    if (!by || !*by) return DM_OK;
    dm_err_t rc = dm_ice_sort_parse(by, &k->table->schema, &k->sort, err);
    if (rc) return rc;
    json_t *meta = k->table->meta, *have = NULL, *o;
    json_int_t id = json_integer_value(json_object_get(meta, "default-sort-order-id"));
    size_t i;
    json_array_foreach(json_object_get(meta, "sort-orders"), i, o)
    {
        if (json_integer_value(json_object_get(o, "order-id")) == id)
            have = json_object_get(o, "fields");
    }
    json_t *want = dm_ice_sort_fields_json(&k->sort);
    if (!want) return dm_error_set(err, DM_ERR_NOMEM, "iceberg: out of memory");
    if (!have || !json_equal(have, want)) {
        char *h = have ? json_dumps(have, JSON_COMPACT) : NULL;
        rc = dm_error_set(err, DM_ERR_CONFIG,
                          "iceberg: table %s exists with default sort order %lld %s; sort_by "
                          "'%s' asks for another (an existing table keeps its order: set "
                          "sort_by to it or leave it empty)",
                          k->conf->table, (long long)id, h ? h : "(missing)", by);
        free(h);
    }
    json_decref(want);
    k->sort_order_id = (int32_t)id;
    return rc;
}

/* Opens catalog and table, decides the mode and the key, and finds where to
 * resume. */
static dm_err_t start(sink_t *k, dm_error_t *err)
{
    const dm_iceberg_sink_config_t *c = k->conf;
    char *ns = NULL, *name = NULL;
    dm_err_t rc = dm_ice_sink_open_catalog(k, &ns, &name, err);
    bool envelope = false;
    const dm_avro_node_t *row = dm_ice_row_node(k->env->value_schema->root, &envelope);
    k->upsert = c->mode == DM_ICEBERG_MODE_UPSERT || (c->mode == DM_ICEBERG_MODE_AUTO && envelope);
    dm_ice_schema_t schema = {0};
    if (!rc) rc = dm_ice_schema_from_avro(row, 1, &schema, err);
    /* The primary key: configured, or the source's key. */
    const dm_strlist_t *source_key = k->env->key_fields;
    const char *const *key = c->primary_key.n ? (const char *const *)c->primary_key.items
                             : source_key     ? (const char *const *)source_key->items
                                              : NULL;
    size_t n_key = c->primary_key.n ? c->primary_key.n : source_key ? source_key->n : 0;
    for (size_t i = 0; !rc && i < n_key; i++) {
        const dm_ice_field_t *f = dm_ice_schema_find(&schema, key[i]);
        if (!f)
            rc = dm_error_set(err, DM_ERR_CONFIG,
                              "iceberg: primary key column %s is not in the source", key[i]);
        else if (dm_ice_type_nested(f->type))
            rc = dm_error_set(err, DM_ERR_CONFIG,
                              "iceberg: primary key column %s is a struct, list or map", key[i]);
        else if (!f->required && k->upsert)
            rc = dm_error_set(err, DM_ERR_CONFIG, "iceberg: primary key column %s is nullable",
                              key[i]);
        else
            schema.key_ids[schema.n_keys++] = f->id;
    }
    if (!rc && k->upsert && !n_key)
        rc = dm_error_set(err, DM_ERR_CONFIG,
                          "iceberg: upserts (change events) need a primary key: "
                          "set primary_key or the source's key");
    /* A new table gets sort_by as its order (checked against the table below). */
    json_t *sort_fields = NULL;
    if (!rc && c->sort_by && *c->sort_by) {
        dm_ice_sort_t want;
        if (!(rc = dm_ice_sort_parse(c->sort_by, &schema, &want, err))) {
            sort_fields = dm_ice_sort_fields_json(&want);
            dm_ice_sort_free(&want);
            if (!sort_fields) rc = dm_error_set(err, DM_ERR_NOMEM, "iceberg: out of memory");
        }
    }
    if (!rc)
        rc = dm_ice_table_open_sorted(k->catalog, c->warehouse, ns, name, &schema, c->partition_by,
                                      sort_fields, NULL, &k->table, err);
    json_decref(sort_fields);
    dm_ice_schema_free(&schema);
    free(ns);
    free(name);
    if (rc) return rc;
    warn_spec(k);
    bool changed;
    if ((rc = evolve_to(k, k->env->value_schema, &changed, err))) return rc;
    k->n_key = k->table->schema.n_keys;
    if (k->upsert && !k->n_key)
        return dm_error_set(err, DM_ERR_CONFIG,
                            "iceberg: table %s has no identifier fields to upsert by", c->table);
    k->key_cols = calloc(k->n_key + 1, sizeof(size_t));
    if (!k->key_cols) return dm_error_set(err, DM_ERR_NOMEM, "iceberg: out of memory");
    if ((rc = use_sort_order(k, err))) return rc;
    if ((rc = dm_ice_sink_reset_sources(k, err))) return rc;
    /* Deletes are partitioned like data: the partition must follow from the key. */
    for (size_t i = 0; k->upsert && i < k->table->spec.n; i++) {
        bool in_key = false;
        for (size_t j = 0; j < k->n_key; j++)
            if (k->key_cols[j] == k->part_cols[i]) in_key = true;
        if (!in_key)
            return dm_error_set(err, DM_ERR_CONFIG,
                                "iceberg: upserts into a table partitioned by %s "
                                "need that column in the primary key",
                                k->table->spec.fields[i].name);
    }
    return DM_OK;
}

void dm_ice_sink_free(sink_t *k)
{
    discard(k);
    free(k->writers);
    free(k->files);
    free(k->rows);
    free(k->del_keys);
    keymap_free(&k->row_of_key);
    keymap_free(&k->deleted);
    dm_arena_destroy(&k->rows_arena);
    dm_arena_destroy(&k->batch_arena);
    dm_arena_destroy(&k->sort_arena);
    dm_ice_sort_free(&k->sort);
    dm_buf_free(&k->scratch);
    for (size_t i = 0; i < k->n_sources; i++)
        dm_ice_source_free(&k->sources[i]);
    free(k->sources);
    free(k->key_cols);
    free(k->part_cols);
    free(k->row);
    free(k->schema_kv);
    dm_ice_table_free(k->table);
    dm_ice_catalog_close(k->catalog);
    free(k->pos);
}

static bool due(const sink_t *k)
{
    if (!k->pending) return false;
    if (k->n_files) return true; /* a file reached target_file_size */
    if (k->upsert && k->buffered_bytes >= k->conf->target_file_size) return true;
    return dm_wall_ms() - k->opened_ms >= k->conf->commit_interval;
}

/* ---- the sink type (connectors/sink.h) -------------------------------------------------- */

static void ice_close(void *state)
{
    sink_t *k = state;
    /* Files of a checkpoint that did not commit are never referenced. */
    dm_ice_sink_discard_files(k);
    dm_ice_sink_free(k);
    free(k->bad);
    free(k);
}

/* Opens catalog and table (created, or evolved to the topic's schema). Errors
 * that settings cause are fatal: retrying cannot fix them. */
static dm_err_t ice_open(const void *conf, const dm_sink_env_t *env, void **state, dm_error_t *err)
{
    sink_t *k = calloc(1, sizeof(*k));
    if (!k) return dm_error_set(err, DM_ERR_NOMEM, "iceberg: out of memory");
    k->conf = conf;
    k->env = env;
    dm_arena_init(&k->rows_arena, 1 << 20);
    dm_arena_init(&k->batch_arena, 0);
    dm_arena_init(&k->sort_arena, 1 << 20);
    k->pos = calloc((size_t)(env->partitions > 0 ? env->partitions : 1), sizeof(int64_t));
    dm_err_t rc = k->pos ? DM_OK : dm_error_set(err, DM_ERR_NOMEM, "iceberg: out of memory");
    if (!rc && !env->value_schema)
        rc = dm_error_set(err, DM_ERR_CONFIG, "iceberg: topic %s has no value schema", env->topic);
    if (!rc) rc = start(k, err);
    if (rc) {
        /* Settings (and schemas) the table can never take stop the unit. */
        err->fatal = (rc <= DM_ERR_CONFIG && rc > DM_ERR_SCHEMA) || permanent(rc);
        err->retriable = !err->fatal; /* the catalog or the store may come back */
        ice_close(k);
        return rc;
    }
    k->opened_ms = dm_wall_ms();
    *state = k;
    return DM_OK;
}

/* This sink's offsets in the table's newest snapshot it made (-1 each when
 * it has none: the runner falls back to the group). Re-reads the table
 * first: after a failed commit another writer may have moved it. */
static dm_err_t ice_positions(void *state, int64_t *next, dm_error_t *err)
{
    sink_t *k = state;
    dm_err_t rc = dm_ice_table_refresh(k->table, err);
    if (rc) {
        err->retriable = !permanent(rc);
        return rc;
    }
    if (!table_offsets(k, next))
        for (int32_t p = 0; p < k->env->partitions; p++)
            next[p] = -1;
    return DM_OK;
}

/* Adds the batch to the open checkpoint; records the table cannot take are
 * rejected. Any other error drops the open checkpoint. */
static dm_err_t ice_write(void *state, const dm_sink_batch_t *b, dm_sink_rejects_t *rj,
                          dm_error_t *err)
{
    sink_t *k = state;
    dm_error_t one; /* one for the batch: zeroing its 500 bytes per record shows */
    dm_error_clear(&one);
    for (size_t i = 0; i < b->n; i++) {
        if (dm_sink_rejected(rj, i)) continue;
        const dm_sink_record_t *r = &b->records[i];
        dm_err_t rc = process(k, r, &one);
        if (rc && permanent(rc)) {
            dm_sink_reject(rj, i, "%s", one.message);
            dm_error_clear(&one);
            continue;
        }
        if (rc) {
            *err = one;
            dm_error_prefix(err, "topic %s partition %d offset %" PRId64, k->env->topic,
                            r->partition, r->rec->offset);
            dm_ice_sink_discard_files(k);
            discard(k);
            err->retriable = true; /* not a refusal of the record: try the batch again */
            return rc;
        }
    }
    for (size_t i = 0; i < b->n_offsets; i++)
        if (b->offsets[i].partition >= 0 && b->offsets[i].partition < k->env->partitions)
            k->pos[b->offsets[i].partition] = b->offsets[i].offset;
    return DM_OK;
}

/* Commits the open checkpoint when due (or now when force). commit() drops
 * the checkpoint whether it succeeds or not. */
static dm_err_t ice_checkpoint(void *state, bool force, bool *committed, dm_error_t *err)
{
    sink_t *k = state;
    *committed = false;
    if (!k->pending) {
        /* Nothing to make durable: every record so far was skipped or refused. */
        *committed = true;
        return DM_OK;
    }
    if (!force && !due(k)) return DM_OK;
    dm_err_t rc = commit(k, err);
    if (rc) {
        DM_WARN("sink", "sink=iceberg table=%s: %s", sink_name(k), err->message);
        err->retriable = !permanent(rc); /* written again from the table's positions */
        return rc;
    }
    *committed = true;
    return DM_OK;
}

/* Lineage: a table of this sink lives in the directory WAREHOUSE/NS/TABLE, so
 * OpenLineage names it as a local file location (namespace "file", name the
 * absolute directory); sort_by's columns are its rows' order (SORT edges). */
static void ice_lineage(const json_t *settings, json_t *dataset)
{
    const char *wh = json_string_value(json_object_get(settings, "warehouse"));
    const char *table = json_string_value(json_object_get(settings, "table"));
    const char *dot = table ? strrchr(table, '.') : NULL;
    if (wh && dot) {
        char cwd[4096] = "", full[8192];
        if (wh[0] != '/' && !getcwd(cwd, sizeof(cwd))) cwd[0] = '\0';
        snprintf(full, sizeof(full), "%s%s%s/%.*s/%s", cwd, cwd[0] ? "/" : "", wh,
                 (int)(dot - table), table, dot + 1);
        json_object_set_new(dataset, "namespace", json_string("file"));
        json_object_set_new(dataset, "name", json_string(full));
    }
    /* "col [asc|desc] [nulls first|last], …": the first word of each part */
    const char *sort = json_string_value(json_object_get(settings, "sort_by"));
    json_t *cols = json_array();
    for (const char *p = sort; p && *p;) {
        p += strspn(p, " \t,");
        size_t n = strcspn(p, " \t,");
        if (n) json_array_append_new(cols, json_stringn(p, n));
        p = strchr(p, ',');
    }
    if (json_array_size(cols))
        json_object_set_new(dataset, "sort", cols);
    else
        json_decref(cols);
}

/* The rows' top-level column names, "a, b, c", for messages (cut at cap). */
static void column_names(const dm_ice_schema_t *s, char *out, size_t cap)
{
    size_t len = 0;
    out[0] = 0;
    for (size_t i = 0; i < s->n && len < cap; i = dm_ice_schema_skip(s, i)) {
        int n = snprintf(out + len, cap - len, "%s%s", len ? ", " : "", s->fields[i].name);
        if (n < 0) break;
        len += (size_t)n;
    }
    if (len >= cap && cap > 4) memcpy(out + cap - 4, "...", 4);
}

/* At apply: the columns sort_by, partition_by and primary_key name are
 * columns of the rows this schema gives, and an upsert key is never null (the
 * sink stops on them when it opens otherwise: sort_by is parsed against the
 * rows whether the table is new or not). */
static dm_err_t ice_check(const json_t *settings, const dm_avro_schema_t *value, dm_error_t *err)
{
    bool envelope = false;
    const dm_avro_node_t *row = dm_ice_row_node(value->root, &envelope);
    dm_ice_schema_t schema = {0};
    dm_err_t rc = dm_ice_schema_from_avro(row, 1, &schema, err);
    char cols[256] = "";
    if (!rc) column_names(&schema, cols, sizeof(cols));
    const char *sort = json_string_value(json_object_get(settings, "sort_by"));
    if (!rc && sort && *sort) {
        dm_ice_sort_t order;
        dm_error_t e = {0};
        if ((rc = dm_ice_sort_parse(sort, &schema, &order, &e)))
            dm_error_set(err, rc, "sort_by: %s", e.message);
        else
            dm_ice_sort_free(&order);
    }
    const char *part = json_string_value(json_object_get(settings, "partition_by"));
    if (!rc && part && *part) {
        dm_ice_spec_t spec;
        dm_error_t e = {0};
        if ((rc = dm_ice_spec_parse(part, &schema, &spec, &e)))
            dm_error_set(err, rc,
                         "partition_by: %s; the records have the columns %s (partition by "
                         "one of them, or leave partition_by empty)",
                         e.message, cols);
        else
            dm_ice_spec_free(&spec);
    }
    /* As the sink decides when it opens: upsert, or auto with change events. */
    const char *mode = json_string_value(json_object_get(settings, "mode"));
    bool upsert =
        (mode && !strcmp(mode, "upsert")) || ((!mode || !strcmp(mode, "auto")) && envelope);
    size_t i;
    const json_t *k;
    json_array_foreach(rc ? NULL : json_object_get(settings, "primary_key"), i, k)
    {
        const char *col = json_string_value(k);
        const dm_ice_field_t *f = col ? dm_ice_schema_find(&schema, col) : NULL;
        if (col && !f) {
            rc = dm_error_set(err, DM_ERR_CONFIG,
                              "primary_key[%zu]: iceberg: column %s is not in the rows (they "
                              "have %s)",
                              i, col, cols);
            break;
        }
        if (f && upsert && !f->required) {
            rc = dm_error_set(err, DM_ERR_CONFIG,
                              "primary_key[%zu]: iceberg: column %s is nullable in the records, "
                              "and upserts need a key that is never null: make %s required in "
                              "the schema (a type without null), or set primary_key to "
                              "required columns",
                              i, col, col);
            break;
        }
    }
    dm_ice_schema_free(&schema);
    return rc;
}

const dm_sink_ops_t dm_iceberg_sink_ops = {.name = "iceberg",
                                           .config = &dm_iceberg_sink_config_table,
                                           .config_size = sizeof(dm_iceberg_sink_config_t),
                                           .open = ice_open,
                                           .positions = ice_positions,
                                           .write = ice_write,
                                           .checkpoint = ice_checkpoint,
                                           .close = ice_close,
                                           .lineage = ice_lineage,
                                           .check = ice_check};
