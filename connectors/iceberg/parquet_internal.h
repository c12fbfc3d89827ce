/* connectors/iceberg/parquet_internal.h — the Parquet writer's state, shared
 * by parquet.c (the caller's side: buffering values, cutting pages and row
 * groups) and parquet_pages.c (the worker thread that compresses pages and
 * writes row groups, and the footer). Not a public interface.
 *
 * Threads: the caller's thread owns everything except what is marked
 * "worker"; the two meet only through the job queue (mu) and the atomics.
 */
#ifndef DM_CONNECTORS_ICEBERG_PARQUET_INTERNAL_H
#define DM_CONNECTORS_ICEBERG_PARQUET_INTERNAL_H

#include <pthread.h>
#include <zstd.h>

#include "connectors/iceberg/parquet.h"

#define PQ_BOUND_MAX 64 /* longest min/max kept in statistics */

enum { PQ_ENC_PLAIN = 0, PQ_ENC_RLE = 3, PQ_ENC_RLE_DICTIONARY = 8 };
enum { PQ_PAGE_DATA = 0, PQ_PAGE_DICTIONARY = 2 };

typedef struct pq_bound {
    bool set, unbounded; /* unbounded: a value too long to keep was seen */
    uint8_t min[PQ_BOUND_MAX], max[PQ_BOUND_MAX];
    uint32_t min_len, max_len;
} pq_bound_t;

/* What the footer needs about one written column chunk. The caller fills
 * values, nulls, dict and bound; the worker the offsets and sizes. */
typedef struct pq_chunk_meta {
    int64_t offset, data_offset, dict_offset; /* dict_offset -1: none */
    int64_t values, uncompressed, compressed, nulls;
    bool dict;
    pq_bound_t bound;
} pq_chunk_meta_t;

typedef struct pq_column {
    dm_pq_column_t def;
    bool group;                   /* a struct, list or map: no values, no chunk */
    bool container;               /* a list or map: its subtree repeats */
    int parent;                   /* enclosing group's column index, -1 at the top */
    int outer;                    /* the outermost list or map at or above it, -1 if none */
    size_t end;                   /* the column after its subtree */
    uint8_t max_def, max_rep;     /* levels of a present value */
    uint8_t child_def, child_rep; /* groups: what its children start from */
    int width;                    /* bytes of a PLAIN value; 0 for BYTE_ARRAY */
    bool check;                   /* values need check_value (decimals, FIXED) */
    bool number;                  /* INT32 / INT64 / FLOAT / DOUBLE, not a decimal */
    /* Entries and values not yet sent as pages: the whole chunk while its
     * dictionary is undecided, a page's worth at most once it is PLAIN. */
    uint8_t *defs, *reps;
    size_t n_lv, cap_lv;
    dm_buf_t plain;
    uint32_t *offs; /* BYTE_ARRAY: start of each value in plain */
    uint32_t *idx;  /* dictionary index of each value, while dict_on */
    size_t n_vals, cap_vals, cap_idx;
    bool dict_on, dict_allowed, page_due;
    dm_buf_t dict; /* PLAIN encoding of the dictionary's entries */
    uint32_t *dict_off, dict_n, dict_cap;
    uint32_t *slots; /* open addressing: entry + 1, 0 = empty */
    uint32_t *tags;  /* the entry's hash per slot: most misses end without touching dict */
    uint32_t n_slots;
    /* the chunk so far */
    int64_t chunk_lv, nulls, nans;
    bool streamed; /* PLAIN pages of this chunk went to the worker already */
    pq_bound_t bound;
    bool typed_set; /* typed bounds of numbers, folded into bound at the chunk's end */
    int64_t imin, imax;
    double dmin, dmax;
    /* worker: the chunk's compressed pages until its row group is written */
    dm_buf_t out;
    pq_chunk_meta_t wmeta;
} pq_column_t;

enum { PQ_JOB_PAGE, PQ_JOB_GROUP };

/* A page to compress into its column's chunk, or the end of a row group
 * (write every chunk, in column order). */
typedef struct pq_job {
    struct pq_job *next;
    int kind;
    size_t col;
    int page_type, encoding, bit_width;
    int32_t num_values;
    /* A page's parts as the caller buffered them; the worker encodes the
     * levels (RLE), bit-packs booleans and dictionary indexes (body holds
     * them as uint32), and joins the parts. */
    dm_buf_t body;          /* values: PLAIN bytes, one byte per boolean, or indexes */
    dm_buf_t reps, defs;    /* one byte per entry; empty when the column has none */
    pq_chunk_meta_t *metas; /* PQ_JOB_GROUP: the caller's part, per column */
    int64_t rows, bytes;    /* PQ_JOB_GROUP */
} pq_job_t;

struct dm_pq_writer {
    FILE *out;
    int64_t pos; /* bytes written; advanced by the worker (atomically) */
    dm_pq_options_t opts;
    pq_column_t *cols;
    char **names;
    size_t n_cols;
    size_t rows;         /* in the current row group */
    int64_t group_bytes; /* its uncompressed bytes */
    int64_t inflight;    /* uncompressed bytes of cut row groups not yet written (atomic) */
    int64_t added_rows;
    bool page_due; /* some column has a full page */
    bool flat;     /* no groups: rows take the short path */
    uint8_t *row_levels;
    bool *row_present, *row_seen;
    char **kv; /* owned copies of opts.kv */
    dm_error_t *err;
    /* the worker and its queue */
    pthread_t th;
    bool th_running, th_failed;
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_room;
    pq_job_t *head, *tail, *spare;
    int64_t queued_bytes; /* page bytes waiting (under mu) */
    bool stop, abandon;   /* under mu */
    dm_err_t bg_rc;       /* under mu */
    dm_error_t bg_err;
    /* worker: scratch and the row groups written */
    dm_buf_t page, packed, header;
    uint32_t *wlv32; /* levels widened for the RLE encoder */
    size_t cap_wlv32;
    ZSTD_CCtx *zctx;
    int64_t total_rows;
    pq_chunk_meta_t *chunks; /* n_cols per written row group */
    int64_t *group_rows, *group_offset;
    size_t n_groups, cap_groups;
    dm_pq_column_stats_t *file_stats; /* compressed_bytes: worker; the rest: caller */
    pq_bound_t *file_bound;
    dm_buf_t footer;
};

/* parquet.c: bounds in Parquet's order for the column's type (signed
 * numbers, unsigned bytes, signed FIXED decimals). */
void pq_bound_add(const pq_column_t *c, pq_bound_t *bd, const uint8_t *p, uint32_t len);
void pq_bound_merge(const pq_column_t *c, pq_bound_t *into, const pq_bound_t *from);

/* parquet_pages.c */

/* A job to fill (recycled when one is spare). NULL when out of memory. */
pq_job_t *pq_job_get(dm_pq_writer_t *w);

/* Frees a job that was never queued. NULL allowed. */
void pq_job_discard(pq_job_t *j);

/* Hands a job to the worker (starting it on first use; without a thread the
 * job runs here). Waits while too many page bytes are queued. Returns the
 * worker's first error, if any. */
dm_err_t pq_enqueue(dm_pq_writer_t *w, pq_job_t *job, dm_error_t *err);

/* Stops the worker after the queued jobs (abandon: without running them)
 * and returns its first error. */
dm_err_t pq_worker_stop(dm_pq_writer_t *w, bool abandon, dm_error_t *err);

/* Frees the worker's jobs and scratch. */
void pq_worker_free(dm_pq_writer_t *w);

/* Writes the magic at the start of the file (before any job runs). */
dm_err_t pq_write_magic(dm_pq_writer_t *w, dm_error_t *err);

/* Writes the footer and the tail after the last row group. */
dm_err_t pq_write_footer(dm_pq_writer_t *w, dm_error_t *err);

/* Bits that hold every value up to max (at least 1): the width of levels and indexes. */
static inline int pq_bit_width(uint32_t max)
{
    int w = 1;
    while (w < 32 && (max >> w))
        w++;
    return w;
}

#endif
