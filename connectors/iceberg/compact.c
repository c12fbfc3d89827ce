/* connectors/iceberg/compact.c — `datamesh iceberg compact`: rewrites every
 * live data file of a table without the rows its equality deletes remove, as
 * one "replace" snapshot. It reads files back with datamesh's Parquet reader
 * and writes through the sink's partition writers. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/iceberg/iceberg.h"
#include "connectors/iceberg/sink_internal.h"
#include "core/hash.h"

/* ---- compaction --------------------------------------------------------------------- */

static int64_t entry_seq(json_t *e)
{
    json_t *s = json_object_get(e, "sequence_number");
    return json_integer_value(json_is_object(s) ? json_object_get(s, "long") : s);
}

static json_t *entry_file(json_t *e)
{
    return json_object_get(e, "data_file");
}

/* A file being read back: its columns mapped to the table's by field id,
 * each leaf's entries, and a cursor per leaf. */
typedef struct file_rows {
    dm_pq_reader_t *r;
    size_t nc;
    int *to;            /* file column -> table column, -1 when the table has none */
    dm_pq_leaf_t *leaf; /* per file column (leaves only) */
    size_t *pos;        /* per file column: the next entry */
    size_t *end;        /* per file column: after its subtree */
    dm_pq_entry_t *entries;
    size_t n_entries, cap_entries;
} file_rows_t;

/* A value read back as the table's column wants it: int files in a long
 * column, float in double (promoted columns). */
static dm_pq_value_t promote(const sink_t *k, const file_rows_t *f, size_t c, dm_pq_value_t v)
{
    dm_ice_type_t tt = k->table->schema.fields[f->to[c]].type;
    dm_pq_type_t ft = dm_pq_reader_column(f->r, c)->type;
    if (!v.null && tt == DM_ICE_LONG && ft == DM_PQ_INT32) v.u.i64 = v.u.i32;
    if (!v.null && tt == DM_ICE_DOUBLE && ft == DM_PQ_FLOAT) v.u.d = v.u.f;
    return v;
}

/* The first leaf of column c's subtree (c itself for a leaf). */
static size_t first_leaf(const file_rows_t *f, size_t c)
{
    while (c + 1 < f->end[c] && dm_pq_reader_column(f->r, c)->n_children)
        c++;
    return c;
}

/* Whether group c is present in the current row: its first leaf's next
 * entry reaches c's definition level. */
static bool group_present(const file_rows_t *f, size_t c)
{
    size_t l = first_leaf(f, c);
    return f->pos[l] < f->leaf[l].n && f->leaf[l].defs[f->pos[l]] >= dm_pq_reader_max_def(f->r, c);
}

static dm_err_t add_entry(file_rows_t *f, const dm_pq_entry_t *e, dm_error_t *err)
{
    if (f->n_entries == f->cap_entries) {
        size_t cap = f->cap_entries ? f->cap_entries * 2 : 256;
        dm_pq_entry_t *ne = realloc(f->entries, cap * sizeof(*ne));
        if (!ne) return dm_error_set(err, DM_ERR_NOMEM, "iceberg: out of memory");
        f->entries = ne, f->cap_entries = cap;
    }
    f->entries[f->n_entries++] = *e;
    return DM_OK;
}

/* Assembles the next row into table order: leaves take their next entry,
 * structs are null when their leaves say so, a list or map takes its
 * leaves' entries up to the next row (repetition level 0) as they are. */
static dm_err_t next_row(sink_t *k, file_rows_t *f, dm_pq_value_t *row, dm_error_t *err)
{
    size_t nt = k->table->schema.n;
    for (size_t t = 0; t < nt; t++)
        row[t] = (dm_pq_value_t){.null = true};
    f->n_entries = 0;
    for (size_t c = 0; c < f->nc;) {
        const dm_pq_column_t *d = dm_pq_reader_column(f->r, c);
        bool container =
            d->n_children && (d->logical == DM_PQ_LT_LIST || d->logical == DM_PQ_LT_MAP);
        if (!d->n_children) {
            if (f->pos[c] >= f->leaf[c].n)
                return dm_error_set(err, DM_ERR_CORRUPT, "iceberg: a column ends early");
            dm_pq_value_t v = f->leaf[c].vals[f->pos[c]++];
            if (f->to[c] >= 0) row[f->to[c]] = promote(k, f, c, v);
            c++;
            continue;
        }
        bool present = group_present(f, c);
        if (f->to[c] >= 0) row[f->to[c]].null = !present;
        if (!container) {
            c++; /* a struct: its fields follow */
            continue;
        }
        size_t start = f->n_entries;
        for (size_t l = c + 1; l < f->end[c]; l++) {
            if (dm_pq_reader_column(f->r, l)->n_children) continue;
            dm_pq_leaf_t *lf = &f->leaf[l];
            do {
                if (f->pos[l] >= lf->n)
                    return dm_error_set(err, DM_ERR_CORRUPT, "iceberg: a column ends early");
                size_t i = f->pos[l]++;
                dm_pq_entry_t e = {.col = (uint32_t)f->to[l],
                                   .rep = lf->reps[i],
                                   .def = lf->defs[i],
                                   .v = promote(k, f, l, lf->vals[i])};
                if (present) {
                    dm_err_t rc = add_entry(f, &e, err);
                    if (rc) return rc;
                }
            } while (f->pos[l] < lf->n && lf->reps[f->pos[l]] != 0);
        }
        if (present && f->to[c] >= 0) row[f->to[c]].u.rep.n = (uint32_t)(f->n_entries - start);
        c = f->end[c];
    }
    /* Entries were appended in column order: point each list or map at its run. */
    size_t off = 0;
    for (size_t t = 0; t < nt; t++) {
        dm_ice_type_t tt = k->table->schema.fields[t].type;
        if ((tt != DM_ICE_LIST && tt != DM_ICE_MAP) || row[t].null || !row[t].u.rep.n) continue;
        row[t].u.rep.e = f->entries + off;
        off += row[t].u.rep.n;
    }
    return DM_OK;
}

/* Maps a file's columns to the table's by field id; a nested column must
 * match the table's kind (the sink never changes inside nested columns). */
static dm_err_t map_file(sink_t *k, file_rows_t *f, dm_error_t *err)
{
    f->nc = dm_pq_reader_n_columns(f->r);
    f->to = calloc(f->nc + 1, sizeof(int));
    f->leaf = calloc(f->nc + 1, sizeof(dm_pq_leaf_t));
    f->pos = calloc(f->nc + 1, sizeof(size_t));
    f->end = calloc(f->nc + 1, sizeof(size_t));
    if (!f->to || !f->leaf || !f->pos || !f->end)
        return dm_error_set(err, DM_ERR_NOMEM, "iceberg: out of memory");
    /* Subtree ends, from the child counts (pre-order). */
    for (size_t c = f->nc; c-- > 0;) {
        size_t e = c + 1;
        for (int32_t ch = 0; ch < dm_pq_reader_column(f->r, c)->n_children && e < f->nc; ch++)
            e = f->end[e];
        f->end[c] = e;
    }
    for (size_t c = 0; c < f->nc; c++) {
        const dm_pq_column_t *d = dm_pq_reader_column(f->r, c);
        const dm_ice_field_t *tf = dm_ice_schema_find_id(&k->table->schema, d->field_id);
        f->to[c] = tf ? (int)(tf - k->table->schema.fields) : -1;
        bool nested = d->n_children > 0;
        if (tf && nested != dm_ice_type_nested(tf->type))
            return dm_error_set(err, DM_ERR_UNSUPPORTED,
                                "iceberg: column %s is nested in the file and not in the table "
                                "(or the other way round)",
                                d->name);
        if (!tf && nested)
            return dm_error_set(err, DM_ERR_UNSUPPORTED,
                                "iceberg: nested column %s (field id %d) is not in the table",
                                d->name, d->field_id);
        if (!nested) {
            dm_err_t rc = dm_pq_reader_read_leaf(f->r, c, &f->leaf[c], err);
            if (rc) return rc;
        }
    }
    return DM_OK;
}

static void file_rows_free(file_rows_t *f)
{
    for (size_t c = 0; f->leaf && c < f->nc; c++)
        dm_pq_leaf_free(&f->leaf[c]);
    free(f->leaf);
    free(f->to);
    free(f->pos);
    free(f->end);
    free(f->entries);
    dm_pq_reader_free(f->r);
}

/* Reads a file's rows into table order (columns matched by field id; ones
 * the table no longer has are dropped) and calls fn for every row. */
static dm_err_t read_rows(sink_t *k, const char *uri,
                          dm_err_t (*fn)(sink_t *k, const dm_pq_value_t *row, void *ctx,
                                         dm_error_t *err),
                          void *ctx, dm_error_t *err)
{
    file_rows_t f = {0};
    dm_err_t rc = dm_pq_reader_open(dm_ice_local_path(uri), &f.r, err);
    if (rc) return rc;
    int64_t rows = dm_pq_reader_rows(f.r);
    dm_pq_value_t *row = calloc(k->table->schema.n + 1, sizeof(*row));
    rc = row ? map_file(k, &f, err) : dm_error_set(err, DM_ERR_NOMEM, "iceberg: out of memory");
    for (int64_t i = 0; !rc && i < rows; i++) {
        rc = next_row(k, &f, row, err);
        if (!rc) rc = fn(k, row, ctx, err);
    }
    free(row);
    file_rows_free(&f);
    if (rc) dm_error_prefix(err, "compacting %s", uri);
    return rc;
}

/* Records the newest delete sequence number per key. */
static dm_err_t add_delete(sink_t *k, const dm_pq_value_t *row, void *ctx, dm_error_t *err)
{
    uint32_t seq = (uint32_t)(uintptr_t)ctx, *v;
    bool found;
    dm_err_t rc = dm_ice_sink_encode_key(k, row, &k->scratch, err);
    if (rc) return rc;
    if (dm_ice_keymap_find_or_add(&k->deleted, k->scratch.data, k->scratch.len, seq, &v, &found))
        return dm_error_set(err, DM_ERR_NOMEM, "iceberg: out of memory");
    if (*v < seq) *v = seq;
    return DM_OK;
}

typedef struct keep_ctx {
    uint32_t seq;
    int64_t kept;
} keep_ctx_t;

/* Writes a data row unless a newer equality delete removes its key. */
static dm_err_t keep_row_unless_deleted(sink_t *k, const dm_pq_value_t *row, void *ctx,
                                        dm_error_t *err)
{
    keep_ctx_t *kc = ctx;
    if (k->n_key && k->deleted.n) {
        dm_err_t rc = dm_ice_sink_encode_key(k, row, &k->scratch, err);
        if (rc) return rc;
        uint32_t h =
            (uint32_t)dm_hash64(k->scratch.data, k->scratch.len) & (k->deleted.n_slots - 1);
        for (; k->deleted.slots[h]; h = (h + 1) & (k->deleted.n_slots - 1)) {
            uint32_t i = k->deleted.slots[h] - 1;
            if (k->deleted.len[i] == k->scratch.len &&
                !memcmp(k->deleted.bytes.data + k->deleted.off[i], k->scratch.data,
                        k->scratch.len)) {
                if (k->deleted.val[i] > kc->seq) return DM_OK; /* deleted after it was written */
                break;
            }
        }
    }
    kc->kept++;
    return dm_ice_sink_write_row(k, row, err);
}

dm_err_t dm_iceberg_compact(const dm_iceberg_sink_config_t *conf, int64_t *files_in,
                            int64_t *rows_out, dm_error_t *err)
{
    dm_sink_env_t env = {.group = "compaction"};
    sink_t k = {.conf = conf, .env = &env};
    dm_arena_init(&k.rows_arena, 0);
    dm_arena_init(&k.batch_arena, 0);
    dm_arena_init(&k.sort_arena, 0);
    char *ns = NULL, *name = NULL;
    json_t *entries = NULL;
    *files_in = *rows_out = 0;
    dm_err_t rc = dm_ice_sink_open_catalog(&k, &ns, &name, err);
    if (!rc)
        rc = dm_ice_table_open(k.catalog, conf->warehouse, ns, name, NULL, "", NULL, &k.table, err);
    free(ns);
    free(name);
    if (!rc) {
        k.n_key = k.table->schema.n_keys;
        k.key_cols = calloc(k.n_key + 1, sizeof(size_t));
        rc = k.key_cols ? dm_ice_sink_reset_sources(&k, err)
                        : dm_error_set(err, DM_ERR_NOMEM, "iceberg: out of memory");
    }
    if (!rc) rc = dm_ice_table_files(k.table, &entries, err);
    size_t i;
    json_t *e;
    /* Deletes first: the newest sequence number that deleted each key. */
    json_array_foreach(entries, i, e)
    {
        json_t *f = entry_file(e);
        if (rc || json_integer_value(json_object_get(f, "content")) == DM_ICE_CONTENT_DATA)
            continue;
        json_t *ids = json_object_get(json_object_get(f, "equality_ids"), "array");
        bool same =
            json_integer_value(json_object_get(f, "content")) == DM_ICE_CONTENT_EQ_DELETES &&
            json_array_size(ids) == k.n_key;
        for (size_t j = 0; same && j < k.n_key; j++)
            if (json_integer_value(json_array_get(ids, j)) != k.table->schema.key_ids[j])
                same = false;
        if (!same)
            rc = dm_error_set(err, DM_ERR_UNSUPPORTED,
                              "iceberg: compaction applies equality deletes on the table's key "
                              "only; %s is another kind",
                              json_string_value(json_object_get(f, "file_path")));
        else
            rc = read_rows(&k, json_string_value(json_object_get(f, "file_path")), add_delete,
                           (void *)(uintptr_t)entry_seq(e), err);
        (*files_in)++;
    }
    json_array_foreach(entries, i, e)
    {
        json_t *f = entry_file(e);
        if (rc || json_integer_value(json_object_get(f, "content")) != DM_ICE_CONTENT_DATA)
            continue;
        keep_ctx_t kc = {.seq = (uint32_t)entry_seq(e)};
        rc = read_rows(&k, json_string_value(json_object_get(f, "file_path")),
                       keep_row_unless_deleted, &kc, err);
        *rows_out += kc.kept;
        (*files_in)++;
    }
    while (!rc && k.n_writers) {
        rc = dm_ice_sink_close_writer(&k, &k.writers[k.n_writers - 1], err);
        k.n_writers--;
    }
    if (!rc && *files_in) {
        json_t *extra =
            json_pack("{s:s}", "datamesh.compaction", "rewrote live files, applied deletes");
        dm_ice_commit_t c = {.data = k.files, .n_data = k.n_files, .replace = true, .extra = extra};
        rc = dm_ice_table_commit(k.table, &c, err);
        if (rc == DM_ERR_AGAIN)
            dm_error_set(err, rc,
                         "iceberg: %s changed during compaction; nothing was changed, run it again",
                         conf->table);
        json_decref(extra);
    }
    if (rc) dm_ice_sink_discard_files(&k);
    json_decref(entries);
    dm_ice_sink_free(&k);
    return rc;
}
