/* connectors/iceberg/parquet_pages.c — the Parquet writer's worker thread and
 * its footer (see parquet_internal.h).
 *
 * The caller's thread encodes pages as soon as a column has a page's worth
 * (PLAIN columns) or at the row group's end (dictionary columns) and queues
 * them; this thread compresses each into its column's chunk and, at a row
 * group's end, writes the chunks in column order. So compression runs while
 * the caller decodes the next records, and the caller's buffers stay about a
 * page large instead of a row group.
 */
#include <errno.h>
#include <snappy-c.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/iceberg/parquet_internal.h"
#include "connectors/iceberg/thrift.h"

#define QUEUE_BYTES (16 << 20) /* page bytes queued before the caller waits */

/* ---- compressing pages ------------------------------------------------------ */

static dm_err_t write_out(dm_pq_writer_t *w, const void *p, size_t len, dm_error_t *err)
{
    if (len && fwrite(p, 1, len, w->out) != len)
        return dm_error_set(err, DM_ERR_IO, "parquet: write failed: %s", strerror(errno));
    __atomic_fetch_add(&w->pos, (int64_t)len, __ATOMIC_RELAXED);
    return DM_OK;
}

static dm_err_t compress(dm_pq_writer_t *w, const dm_buf_t *in, dm_buf_t *out, dm_error_t *err)
{
    dm_buf_reset(out);
    if (w->opts.codec == DM_PQ_SNAPPY) {
        size_t n = snappy_max_compressed_length(in->len);
        if (dm_buf_reserve(out, n))
            return dm_error_set(err, DM_ERR_NOMEM, "parquet: out of memory");
        if (snappy_compress((const char *)in->data, in->len, (char *)out->data, &n) != SNAPPY_OK)
            return dm_error_set(err, DM_ERR_INTERNAL, "parquet: snappy compression failed");
        out->len = n;
    } else if (w->opts.codec == DM_PQ_ZSTD) {
        size_t n = ZSTD_compressBound(in->len);
        if (dm_buf_reserve(out, n) || (!w->zctx && !(w->zctx = ZSTD_createCCtx())))
            return dm_error_set(err, DM_ERR_NOMEM, "parquet: out of memory");
        n = ZSTD_compressCCtx(w->zctx, out->data, n, in->data, in->len, w->opts.zstd_level);
        if (ZSTD_isError(n))
            return dm_error_set(err, DM_ERR_INTERNAL, "parquet: zstd: %s", ZSTD_getErrorName(n));
        out->len = n;
    } else if (dm_buf_append(out, in->data, in->len)) {
        return dm_error_set(err, DM_ERR_NOMEM, "parquet: out of memory");
    }
    return DM_OK;
}

/* Appends levels as v1 pages want them: a 4-byte length, then RLE. */
static dm_err_t put_levels(dm_pq_writer_t *w, dm_buf_t *pg, const dm_buf_t *lv, int max)
{
    if (w->cap_wlv32 < lv->len + 1) {
        uint32_t *p = realloc(w->wlv32, (lv->len + 1) * sizeof(uint32_t));
        if (!p) return DM_ERR_NOMEM;
        w->wlv32 = p;
        w->cap_wlv32 = lv->len + 1;
    }
    uint8_t zero[4] = {0};
    dm_err_t rc = dm_buf_append(pg, zero, 4);
    if (rc) return rc;
    size_t at = pg->len;
    for (size_t i = 0; i < lv->len; i++)
        w->wlv32[i] = lv->data[i];
    if ((rc = dm_pq_rle_encode(w->wlv32, lv->len, pq_bit_width((uint32_t)max), pg))) return rc;
    uint32_t len = (uint32_t)(pg->len - at);
    uint8_t l[4] = {(uint8_t)len, (uint8_t)(len >> 8), (uint8_t)(len >> 16), (uint8_t)(len >> 24)};
    memcpy(pg->data + at - 4, l, 4);
    return DM_OK;
}

/* The uncompressed page of a job: levels, then values encoded. */
static dm_err_t build_page(dm_pq_writer_t *w, const pq_column_t *c, const pq_job_t *j)
{
    dm_buf_t *pg = &w->page;
    dm_buf_reset(pg);
    if (j->page_type == PQ_PAGE_DICTIONARY) return dm_buf_append(pg, j->body.data, j->body.len);
    dm_err_t rc = DM_OK;
    if (c->max_rep) rc = put_levels(w, pg, &j->reps, c->max_rep);
    if (!rc && c->max_def) rc = put_levels(w, pg, &j->defs, c->max_def);
    if (rc) return rc;
    if (j->encoding == PQ_ENC_RLE_DICTIONARY) {
        uint8_t bw = (uint8_t)j->bit_width;
        rc = dm_buf_append(pg, &bw, 1);
        if (!rc)
            rc = dm_pq_rle_encode((const uint32_t *)(const void *)j->body.data,
                                  j->body.len / sizeof(uint32_t), j->bit_width, pg);
        return rc;
    }
    if (c->def.type == DM_PQ_BOOLEAN) {
        size_t n = j->body.len, nb = (n + 7) / 8;
        if ((rc = dm_buf_reserve(pg, nb))) return rc;
        memset(pg->data + pg->len, 0, nb);
        for (size_t v = 0; v < n; v++)
            if (j->body.data[v]) pg->data[pg->len + v / 8] |= (uint8_t)(1 << (v % 8));
        pg->len += nb;
        return DM_OK;
    }
    return dm_buf_append(pg, j->body.data, j->body.len);
}

/* Bounds of the byte, FIXED and boolean values of a PLAIN data or
 * dictionary page (numbers were bounded as they came). */
static void bound_page(pq_column_t *c, const pq_job_t *j)
{
    if (c->def.type != DM_PQ_BYTE_ARRAY && c->def.type != DM_PQ_FIXED &&
        c->def.type != DM_PQ_BOOLEAN)
        return;
    if (j->page_type == PQ_PAGE_DATA && j->encoding != PQ_ENC_PLAIN) return;
    const uint8_t *p = j->body.data, *end = p + j->body.len;
    while (p < end) {
        uint32_t len = (uint32_t)c->width;
        if (c->def.type == DM_PQ_BYTE_ARRAY) {
            len =
                (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
            p += 4;
        }
        pq_bound_add(c, &c->wmeta.bound, p, len);
        p += len;
    }
}

/* Appends a page to its column's chunk: header, then the compressed body.
 * Offsets are relative to the chunk until the row group is written. */
static dm_err_t run_page(dm_pq_writer_t *w, pq_job_t *j, dm_error_t *err)
{
    pq_column_t *c = &w->cols[j->col];
    pq_chunk_meta_t *m = &c->wmeta;
    if (build_page(w, c, j)) return dm_error_set(err, DM_ERR_NOMEM, "parquet: out of memory");
    bound_page(c, j);
    const dm_buf_t *body = &w->page;
    dm_err_t rc = compress(w, body, &w->packed, err);
    if (rc) return rc;
    if (body->len > INT32_MAX || w->packed.len > INT32_MAX)
        return dm_error_set(err, DM_ERR_RANGE, "parquet: page larger than 2 GiB");
    dm_buf_reset(&w->header);
    dm_thrift_writer_t t;
    dm_thrift_writer_init(&t, &w->header);
    dm_thrift_i32(&t, 1, j->page_type);
    dm_thrift_i32(&t, 2, (int32_t)body->len);
    dm_thrift_i32(&t, 3, (int32_t)w->packed.len);
    if (j->page_type == PQ_PAGE_DATA) {
        dm_thrift_struct_begin(&t, 5);
        dm_thrift_i32(&t, 1, j->num_values);
        dm_thrift_i32(&t, 2, j->encoding);
        dm_thrift_i32(&t, 3, PQ_ENC_RLE);
        dm_thrift_i32(&t, 4, PQ_ENC_RLE);
        dm_thrift_struct_end(&t);
    } else {
        dm_thrift_struct_begin(&t, 7);
        dm_thrift_i32(&t, 1, j->num_values);
        dm_thrift_i32(&t, 2, PQ_ENC_PLAIN);
        dm_thrift_struct_end(&t);
    }
    if ((rc = dm_thrift_writer_finish(&t)))
        return dm_error_set(err, rc, "parquet: page header: %s", dm_err_str(rc));
    if (j->page_type == PQ_PAGE_DATA && m->data_offset < 0) m->data_offset = (int64_t)c->out.len;
    if (j->page_type == PQ_PAGE_DICTIONARY) m->dict_offset = (int64_t)c->out.len;
    if (dm_buf_append(&c->out, w->header.data, w->header.len) ||
        dm_buf_append(&c->out, w->packed.data, w->packed.len))
        return dm_error_set(err, DM_ERR_NOMEM, "parquet: out of memory");
    m->uncompressed += (int64_t)(w->header.len + body->len);
    m->compressed += (int64_t)(w->header.len + w->packed.len);
    return DM_OK;
}

/* Writes a row group's chunks in column order and keeps their metadata for
 * the footer. */
static dm_err_t run_group(dm_pq_writer_t *w, pq_job_t *j, dm_error_t *err)
{
    size_t g = w->n_groups;
    if (g == w->cap_groups) {
        size_t cap = g ? g * 2 : 8;
        pq_chunk_meta_t *ch = realloc(w->chunks, cap * w->n_cols * sizeof(*ch));
        if (ch) w->chunks = ch;
        int64_t *gr = realloc(w->group_rows, cap * sizeof(int64_t));
        if (gr) w->group_rows = gr;
        int64_t *go = realloc(w->group_offset, cap * sizeof(int64_t));
        if (go) w->group_offset = go;
        if (!ch || !gr || !go) return dm_error_set(err, DM_ERR_NOMEM, "parquet: out of memory");
        w->cap_groups = cap;
    }
    w->group_offset[g] = w->pos;
    w->group_rows[g] = j->rows;
    for (size_t i = 0; i < w->n_cols; i++) {
        pq_column_t *c = &w->cols[i];
        pq_chunk_meta_t *m = &w->chunks[g * w->n_cols + i];
        *m = j->metas[i];
        if (c->group) continue;
        m->offset = w->pos;
        m->data_offset = w->pos + c->wmeta.data_offset;
        m->dict_offset = c->wmeta.dict_offset >= 0 ? w->pos + c->wmeta.dict_offset : -1;
        m->uncompressed = c->wmeta.uncompressed;
        m->compressed = c->wmeta.compressed;
        pq_bound_merge(c, &m->bound, &c->wmeta.bound);
        pq_bound_merge(c, &w->file_bound[i], &c->wmeta.bound);
        w->file_stats[i].compressed_bytes += m->compressed;
        dm_err_t rc = write_out(w, c->out.data, c->out.len, err);
        if (rc) return rc;
        dm_buf_reset(&c->out);
        memset(&c->wmeta, 0, sizeof(c->wmeta));
        c->wmeta.data_offset = c->wmeta.dict_offset = -1;
    }
    w->n_groups++;
    w->total_rows += j->rows;
    __atomic_fetch_sub(&w->inflight, j->bytes, __ATOMIC_RELAXED);
    return DM_OK;
}

static dm_err_t run_job(dm_pq_writer_t *w, pq_job_t *j, dm_error_t *err)
{
    return j->kind == PQ_JOB_PAGE ? run_page(w, j, err) : run_group(w, j, err);
}

/* ---- the queue ---------------------------------------------------------------- */

/* Keeps a finished job's buffer for the next one (under mu). */
static void recycle(dm_pq_writer_t *w, pq_job_t *j)
{
    free(j->metas);
    j->metas = NULL;
    dm_buf_reset(&j->body);
    dm_buf_reset(&j->reps);
    dm_buf_reset(&j->defs);
    j->next = w->spare;
    w->spare = j;
}

static void *worker_main(void *arg)
{
    dm_pq_writer_t *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->head && !w->stop)
            pthread_cond_wait(&w->cv_work, &w->mu);
        pq_job_t *j = w->head;
        if (!j) break;
        w->head = j->next;
        if (!w->head) w->tail = NULL;
        bool skip = w->bg_rc || w->abandon;
        pthread_mutex_unlock(&w->mu);
        dm_error_t e = {0};
        dm_err_t rc = skip ? DM_OK : run_job(w, j, &e);
        pthread_mutex_lock(&w->mu);
        if (rc && !w->bg_rc) {
            w->bg_rc = rc;
            w->bg_err = e;
        }
        if (j->kind == PQ_JOB_PAGE) w->queued_bytes -= (int64_t)(j->body.len + j->defs.len);
        recycle(w, j);
        pthread_cond_broadcast(&w->cv_room);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

pq_job_t *pq_job_get(dm_pq_writer_t *w)
{
    pthread_mutex_lock(&w->mu);
    pq_job_t *j = w->spare;
    if (j) w->spare = j->next;
    pthread_mutex_unlock(&w->mu);
    if (!j) j = calloc(1, sizeof(*j));
    if (j) j->next = NULL;
    return j;
}

void pq_job_discard(pq_job_t *j)
{
    if (!j) return;
    free(j->metas);
    dm_buf_free(&j->body);
    dm_buf_free(&j->reps);
    dm_buf_free(&j->defs);
    free(j);
}

dm_err_t pq_enqueue(dm_pq_writer_t *w, pq_job_t *j, dm_error_t *err)
{
    if (!w->th_running && !w->th_failed) {
        if (pthread_create(&w->th, NULL, worker_main, w) == 0)
            w->th_running = true;
        else
            w->th_failed = true;
    }
    if (!w->th_running) {
        /* No thread: the caller does the work. */
        dm_err_t rc = w->bg_rc ? DM_OK : run_job(w, j, &w->bg_err);
        if (rc) w->bg_rc = rc;
        recycle(w, j);
        if (w->bg_rc && err) *err = w->bg_err;
        return w->bg_rc;
    }
    pthread_mutex_lock(&w->mu);
    while (w->queued_bytes > QUEUE_BYTES && !w->bg_rc)
        pthread_cond_wait(&w->cv_room, &w->mu);
    dm_err_t rc = w->bg_rc;
    if (rc) {
        if (err) *err = w->bg_err;
        recycle(w, j);
    } else {
        if (w->tail)
            w->tail->next = j;
        else
            w->head = j;
        w->tail = j;
        if (j->kind == PQ_JOB_PAGE) w->queued_bytes += (int64_t)(j->body.len + j->defs.len);
        pthread_cond_signal(&w->cv_work);
    }
    pthread_mutex_unlock(&w->mu);
    return rc;
}

dm_err_t pq_worker_stop(dm_pq_writer_t *w, bool abandon, dm_error_t *err)
{
    if (w->th_running) {
        pthread_mutex_lock(&w->mu);
        w->stop = true;
        if (abandon) w->abandon = true;
        pthread_cond_signal(&w->cv_work);
        pthread_mutex_unlock(&w->mu);
        pthread_join(w->th, NULL);
        w->th_running = false;
        w->th_failed = true; /* never restarted */
    }
    if (w->bg_rc && err) *err = w->bg_err;
    return w->bg_rc;
}

void pq_worker_free(dm_pq_writer_t *w)
{
    for (pq_job_t *j = w->head; j;) {
        pq_job_t *n = j->next;
        recycle(w, j);
        j = n;
    }
    w->head = w->tail = NULL;
    while (w->spare) {
        pq_job_t *j = w->spare;
        w->spare = j->next;
        pq_job_discard(j);
    }
    ZSTD_freeCCtx(w->zctx);
    free(w->wlv32);
    dm_buf_free(&w->page);
    dm_buf_free(&w->packed);
    dm_buf_free(&w->header);
}

/* ---- footer ----------------------------------------------------------------- */

/* The repeated group between a list or map and its children. */
static const char *middle_name(const pq_column_t *c)
{
    return c->def.logical == DM_PQ_LT_MAP ? "key_value" : "list";
}

static void group_element(dm_thrift_writer_t *t, const pq_column_t *c)
{
    const dm_pq_column_t *d = &c->def;
    dm_thrift_elem_struct_begin(t);
    dm_thrift_i32(t, 3, d->optional ? 1 : 0);
    dm_thrift_string(t, 4, d->name);
    dm_thrift_i32(t, 5, c->container ? 1 : d->n_children);
    /* converted_type MAP 1 / LIST 3 for older readers; logicalType MAP 2 / LIST 3 */
    if (c->container) dm_thrift_i32(t, 6, d->logical == DM_PQ_LT_MAP ? 1 : 3);
    dm_thrift_i32(t, 9, d->field_id);
    if (c->container) {
        dm_thrift_struct_begin(t, 10);
        dm_thrift_struct_begin(t, d->logical == DM_PQ_LT_MAP ? 2 : 3);
        dm_thrift_struct_end(t);
        dm_thrift_struct_end(t);
    }
    dm_thrift_struct_end(t);
    if (!c->container) return;
    /* repeated group list / key_value: no field id of its own */
    dm_thrift_elem_struct_begin(t);
    dm_thrift_i32(t, 3, 2);
    dm_thrift_string(t, 4, middle_name(c));
    dm_thrift_i32(t, 5, d->n_children);
    dm_thrift_struct_end(t);
}

static void schema_element(dm_thrift_writer_t *t, const pq_column_t *col)
{
    const dm_pq_column_t *c = &col->def;
    if (col->group) {
        group_element(t, col);
        return;
    }
    dm_thrift_elem_struct_begin(t);
    dm_thrift_i32(t, 1, c->type);
    if (c->type == DM_PQ_FIXED) dm_thrift_i32(t, 2, c->fixed_len);
    dm_thrift_i32(t, 3, c->optional ? 1 : 0);
    dm_thrift_string(t, 4, c->name);
    /* converted_type for older readers: UTF8 0, DECIMAL 5 (with scale and
     * precision), DATE 6, TIME_MICROS 8, TIMESTAMP_MICROS 10. */
    if (c->logical == DM_PQ_LT_STRING) dm_thrift_i32(t, 6, 0);
    if (c->logical == DM_PQ_LT_DECIMAL) {
        dm_thrift_i32(t, 6, 5);
        dm_thrift_i32(t, 7, c->scale);
        dm_thrift_i32(t, 8, c->precision);
    }
    if (c->logical == DM_PQ_LT_DATE) dm_thrift_i32(t, 6, 6);
    if (c->logical == DM_PQ_LT_TIME) dm_thrift_i32(t, 6, 8);
    if (c->logical == DM_PQ_LT_TIMESTAMP_UTC) dm_thrift_i32(t, 6, 10);
    dm_thrift_i32(t, 9, c->field_id);
    if (c->logical != DM_PQ_LT_NONE) {
        dm_thrift_struct_begin(t, 10); /* LogicalType union */
        switch (c->logical) {
        case DM_PQ_LT_STRING: dm_thrift_struct_begin(t, 1); break;
        case DM_PQ_LT_DATE: dm_thrift_struct_begin(t, 6); break;
        case DM_PQ_LT_UUID: dm_thrift_struct_begin(t, 14); break;
        case DM_PQ_LT_DECIMAL: /* DECIMAL {scale, precision} */
            dm_thrift_struct_begin(t, 5);
            dm_thrift_i32(t, 1, c->scale);
            dm_thrift_i32(t, 2, c->precision);
            break;
        default: /* TIME (7) or TIMESTAMP (8) {isAdjustedToUTC, unit: MICROS} */
            dm_thrift_struct_begin(t, c->logical == DM_PQ_LT_TIME ? 7 : 8);
            dm_thrift_bool(t, 1, c->logical == DM_PQ_LT_TIMESTAMP_UTC);
            dm_thrift_struct_begin(t, 2);
            dm_thrift_struct_begin(t, 2);
            dm_thrift_struct_end(t);
            dm_thrift_struct_end(t);
            break;
        }
        dm_thrift_struct_end(t);
        dm_thrift_struct_end(t);
    }
    dm_thrift_struct_end(t);
}

static void column_chunk(dm_thrift_writer_t *t, const dm_pq_writer_t *w, const pq_column_t *c,
                         const pq_chunk_meta_t *m)
{
    dm_thrift_elem_struct_begin(t);
    dm_thrift_i64(t, 2, m->offset);
    dm_thrift_struct_begin(t, 3); /* ColumnMetaData */
    dm_thrift_i32(t, 1, c->def.type);
    dm_thrift_list_begin(t, 2, DM_THRIFT_I32, m->dict ? 3 : 2);
    dm_thrift_i32_elem(t, PQ_ENC_PLAIN);
    dm_thrift_i32_elem(t, PQ_ENC_RLE);
    if (m->dict) dm_thrift_i32_elem(t, PQ_ENC_RLE_DICTIONARY);
    /* path_in_schema: the names from the top group down to the leaf, with
     * the repeated group under each list or map. */
    const char *path[128];
    uint32_t depth = 0;
    for (const pq_column_t *p = c; depth < 127; p = &w->cols[p->parent]) {
        path[depth++] = p->def.name;
        if (p->parent < 0) break;
        if (w->cols[p->parent].container) path[depth++] = middle_name(&w->cols[p->parent]);
    }
    dm_thrift_list_begin(t, 3, DM_THRIFT_BINARY, depth);
    while (depth--)
        dm_thrift_binary_elem(t, path[depth], strlen(path[depth]));
    dm_thrift_i32(t, 4, w->opts.codec);
    dm_thrift_i64(t, 5, m->values);
    dm_thrift_i64(t, 6, m->uncompressed);
    dm_thrift_i64(t, 7, m->compressed);
    dm_thrift_i64(t, 9, m->data_offset);
    if (m->dict_offset >= 0) dm_thrift_i64(t, 11, m->dict_offset);
    dm_thrift_struct_begin(t, 12); /* Statistics */
    dm_thrift_i64(t, 3, m->nulls);
    if (m->bound.set && !m->bound.unbounded) {
        dm_thrift_binary(t, 5, m->bound.max, m->bound.max_len);
        dm_thrift_binary(t, 6, m->bound.min, m->bound.min_len);
    }
    dm_thrift_struct_end(t);
    dm_thrift_struct_end(t);
    dm_thrift_struct_end(t);
}

dm_err_t pq_write_footer(dm_pq_writer_t *w, dm_error_t *err)
{
    dm_buf_t *b = &w->footer;
    dm_buf_reset(b);
    dm_thrift_writer_t t;
    dm_thrift_writer_init(&t, b);
    dm_thrift_i32(&t, 1, 1);
    int32_t top = 0, leaves = 0, elements = 1;
    for (size_t i = 0; i < w->n_cols; i++) {
        top += w->cols[i].parent < 0;
        leaves += !w->cols[i].group;
        elements += w->cols[i].container ? 2 : 1;
    }
    dm_thrift_list_begin(&t, 2, DM_THRIFT_STRUCT, (uint32_t)elements);
    dm_thrift_elem_struct_begin(&t);
    dm_thrift_string(&t, 4, "schema");
    dm_thrift_i32(&t, 5, top);
    dm_thrift_struct_end(&t);
    for (size_t i = 0; i < w->n_cols; i++)
        schema_element(&t, &w->cols[i]);
    dm_thrift_i64(&t, 3, w->total_rows);
    dm_thrift_list_begin(&t, 4, DM_THRIFT_STRUCT, (uint32_t)w->n_groups);
    for (size_t g = 0; g < w->n_groups; g++) {
        dm_thrift_elem_struct_begin(&t);
        dm_thrift_list_begin(&t, 1, DM_THRIFT_STRUCT, (uint32_t)leaves);
        int64_t unc = 0, comp = 0;
        for (size_t i = 0; i < w->n_cols; i++) {
            if (w->cols[i].group) continue;
            const pq_chunk_meta_t *m = &w->chunks[g * w->n_cols + i];
            column_chunk(&t, w, &w->cols[i], m);
            unc += m->uncompressed;
            comp += m->compressed;
        }
        dm_thrift_i64(&t, 2, unc);
        dm_thrift_i64(&t, 3, w->group_rows[g]);
        dm_thrift_i64(&t, 5, w->group_offset[g]);
        dm_thrift_i64(&t, 6, comp);
        dm_thrift_struct_end(&t);
    }
    if (w->opts.n_kv) {
        dm_thrift_list_begin(&t, 5, DM_THRIFT_STRUCT, (uint32_t)w->opts.n_kv);
        for (size_t i = 0; i < w->opts.n_kv; i++) {
            dm_thrift_elem_struct_begin(&t);
            dm_thrift_string(&t, 1, w->opts.kv[2 * i]);
            dm_thrift_string(&t, 2, w->opts.kv[2 * i + 1]);
            dm_thrift_struct_end(&t);
        }
    }
    dm_thrift_string(&t, 6, "datamesh version " DM_VERSION);
    dm_err_t rc = dm_thrift_writer_finish(&t);
    if (rc) return dm_error_set(err, rc, "parquet: footer: %s", dm_err_str(rc));
    uint32_t n = (uint32_t)b->len;
    uint8_t tail[8] = {
        (uint8_t)n, (uint8_t)(n >> 8), (uint8_t)(n >> 16), (uint8_t)(n >> 24), 'P', 'A', 'R', '1'};
    if (dm_buf_append(b, tail, 8)) return dm_error_set(err, DM_ERR_NOMEM, "parquet: out of memory");
    return write_out(w, b->data, b->len, err);
}

dm_err_t pq_write_magic(dm_pq_writer_t *w, dm_error_t *err)
{
    return write_out(w, "PAR1", 4, err);
}
