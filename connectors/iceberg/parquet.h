/* connectors/iceberg/parquet.h — the project's Parquet file writer.
 *
 * Columns are primitives, REQUIRED or OPTIONAL, and groups of them given in
 * pre-order: structs, and lists and maps (the 3-level LIST and MAP groups of
 * the LogicalTypes spec: the group, a repeated "list" / "key_value" group,
 * then the element, or the key and the value). A leaf's definition level
 * counts its present optional ancestors and the repeated groups above it;
 * its repetition level, the lists and maps above it. Each column carries its
 * Iceberg field id in the Parquet schema.
 *
 * Rows are buffered per row group (cut when the buffered, uncompressed bytes
 * reach row_group_bytes). A PLAIN column chunk is sent page by page as soon
 * as a page is full; a column whose dictionary is still small waits for the
 * row group's end and is written as a dictionary page plus RLE_DICTIONARY
 * pages, or PLAIN, whichever is smaller. Pages hold RLE/bit-packed
 * repetition and definition levels and are compressed with the file's codec
 * (none, snappy, zstd) by a worker thread, which also writes each row group
 * once its last pages are in. Chunk statistics (min, max, null count) go
 * into the footer and are handed back for Iceberg's manifests.
 *
 * Threads: one writer per calling thread; the writer owns its worker and
 * joins it in close and abort.
 */
#ifndef DM_CONNECTORS_ICEBERG_PARQUET_H
#define DM_CONNECTORS_ICEBERG_PARQUET_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/buf.h"
#include "core/error.h"

/* Physical types, numbered as in parquet.thrift. */
typedef enum dm_pq_type {
    DM_PQ_BOOLEAN = 0,
    DM_PQ_INT32 = 1,
    DM_PQ_INT64 = 2,
    DM_PQ_FLOAT = 4,
    DM_PQ_DOUBLE = 5,
    DM_PQ_BYTE_ARRAY = 6,
    DM_PQ_FIXED = 7,
} dm_pq_type_t;

/* The logical annotations the writer knows. */
typedef enum dm_pq_logical {
    DM_PQ_LT_NONE = 0,
    DM_PQ_LT_STRING,
    DM_PQ_LT_DATE,
    DM_PQ_LT_TIMESTAMP_UTC,   /* INT64 microseconds, adjusted to UTC */
    DM_PQ_LT_TIMESTAMP_LOCAL, /* INT64 microseconds, not adjusted */
    DM_PQ_LT_UUID,            /* FIXED[16] */
    DM_PQ_LT_TIME,            /* INT64 microseconds since midnight, not adjusted */
    DM_PQ_LT_DECIMAL,         /* INT32 / INT64 / FIXED unscaled values; see dm_pq_value_t */
    DM_PQ_LT_LIST,            /* a group: one child, the element */
    DM_PQ_LT_MAP,             /* a group: two children, the key (required) and the value */
} dm_pq_logical_t;

/* Page compression, numbered as parquet.thrift's CompressionCodec. */
typedef enum dm_pq_codec {
    DM_PQ_UNCOMPRESSED = 0,
    DM_PQ_SNAPPY = 1,
    DM_PQ_ZSTD = 6,
} dm_pq_codec_t;

typedef struct dm_pq_column {
    const char *name;
    int32_t field_id; /* Iceberg field id; written into the schema element */
    dm_pq_type_t type;
    dm_pq_logical_t logical;
    int32_t fixed_len; /* DM_PQ_FIXED */
    bool optional;
    int32_t precision, scale; /* DM_PQ_LT_DECIMAL */
    /* A group when > 0: the next n_children columns of its subtree, in
     * pre-order, are its fields; type is unused and logical is NONE (a
     * struct), LIST or MAP. */
    int32_t n_children;
} dm_pq_column_t;

typedef struct dm_pq_options {
    dm_pq_codec_t codec;
    int64_t row_group_bytes; /* 0 = 128 MiB */
    int64_t page_bytes;      /* 0 = 1 MiB */
    int64_t dict_bytes;      /* a chunk's dictionary beyond this falls back to PLAIN; 0 = 1 MiB */
    bool no_dictionary;
    int zstd_level; /* 0 = 3 */
    /* Footer key/value metadata: kv[2i] = key, kv[2i+1] = value, n_kv pairs
     * (copied by dm_pq_writer_new). */
    const char *const *kv;
    size_t n_kv;
} dm_pq_options_t;

struct dm_pq_entry;

/* One cell. Strings and bytes are borrowed until dm_pq_writer_add_row returns
 * (the writer copies them). Timestamps are microseconds, dates days.
 * Decimals, whatever their physical type, are the unscaled value in dec: 16
 * bytes, big-endian two's complement (the writer narrows them to INT32,
 * INT64 or the column's FIXED length; the reader widens them back).
 * A present list or map that no other list or map encloses holds the
 * entries of every leaf under it in rep (see dm_pq_entry_t). */
typedef struct dm_pq_value {
    bool null;
    union {
        bool b;
        int32_t i32;
        int64_t i64;
        float f;
        double d;
        struct {
            const uint8_t *p;
            uint32_t len;
        } s;
        uint8_t dec[16];
        struct {
            const struct dm_pq_entry *e;
            uint32_t n;
        } rep;
    } u;
} dm_pq_value_t;

/* A leaf value under a list or map, striped as Parquet stores it: its
 * column, its repetition level (0 for the first entry of the row, else the
 * depth of the list that repeats) and definition level (the leaf's maximum
 * when v is a value; less when a list, map, struct or value on its path is
 * null or empty). Every leaf under the list gets one entry at least. */
typedef struct dm_pq_entry {
    uint32_t col;
    uint8_t rep, def;
    dm_pq_value_t v;
} dm_pq_entry_t;

/* Per-column results of a whole file, for Iceberg's manifest. Bounds are in
 * Iceberg's single-value serialization (little-endian numbers, raw bytes,
 * decimals as their unscaled value in the fewest big-endian bytes); values
 * and nulls count level entries (an empty or null list counts as a null of
 * each leaf under it). */
typedef struct dm_pq_column_stats {
    int64_t compressed_bytes;
    int64_t values; /* including nulls */
    int64_t nulls;
    int64_t nans;
    bool has_bounds;
    uint8_t min[64], max[64];
    uint32_t min_len, max_len;
    bool bounds_truncated; /* byte arrays longer than 64 bytes get no bounds */
} dm_pq_column_stats_t;

typedef struct dm_pq_writer dm_pq_writer_t;

/* Starts a file on out (borrowed, not closed) and writes the magic. cols is
 * copied. DM_ERR_INVALID for an empty schema or a bad column. */
dm_err_t dm_pq_writer_new(FILE *out, const dm_pq_column_t *cols, size_t n_cols,
                          const dm_pq_options_t *opts, dm_pq_writer_t **w, dm_error_t *err);

/* Adds one row: vals[i] for column i, groups included (a group's null says
 * the struct, list or map is null; the fields under a null group are then
 * ignored, and so are the vals of columns under a list or map: a present
 * one brings its entries). A null in a required column of a present struct,
 * or entries that break the levels' rules, are DM_ERR_INVALID naming the
 * column. May queue pages and a row group. */
dm_err_t dm_pq_writer_add_row(dm_pq_writer_t *w, const dm_pq_value_t *vals, dm_error_t *err);

/* Rows added so far. */
int64_t dm_pq_writer_rows(const dm_pq_writer_t *w);

/* Bytes written to the file plus bytes buffered (uncompressed) — what the
 * file will roughly weigh. */
int64_t dm_pq_writer_size_estimate(const dm_pq_writer_t *w);

/* Writes the last row group and the footer, flushes out, and fills stats
 * (n_cols entries, may be NULL) and *file_bytes (may be NULL). Frees w. */
dm_err_t dm_pq_writer_close(dm_pq_writer_t *w, dm_pq_column_stats_t *stats, int64_t *file_bytes,
                            dm_error_t *err);

/* Frees a writer without finishing the file (after an error). NULL allowed. */
void dm_pq_writer_abort(dm_pq_writer_t *w);

/* Appends the RLE/bit-packed hybrid encoding of n values of bit_width bits
 * (no length prefix). Exposed for tests. */
dm_err_t dm_pq_rle_encode(const uint32_t *vals, size_t n, int bit_width, dm_buf_t *out);

/* Decimal values (dm_pq_value_t.u.dec) from and to other forms. from_be
 * sign-extends n big-endian two's complement bytes (false when the value
 * needs more than 16); to_int gives the low 64 bits; minimal writes the
 * value in the fewest big-endian bytes (Iceberg's serialization) and
 * returns how many; digits_ok says whether |value| < 10^precision. */
bool dm_pq_decimal_from_be(const uint8_t *p, size_t n, uint8_t dec[16]);
void dm_pq_decimal_from_int(int64_t v, uint8_t dec[16]);
int64_t dm_pq_decimal_to_int(const uint8_t dec[16]);
uint32_t dm_pq_decimal_minimal(const uint8_t dec[16], uint8_t out[16]);
bool dm_pq_decimal_digits_ok(const uint8_t dec[16], int precision);

/* ---- reading --------------------------------------------------------------------- */

/* A Parquet file in memory, for compaction: primitives, structs and lists
 * and maps in the LogicalTypes spec's 3-level form (described as the writer
 * takes them: a LIST or MAP group with its element, or key and value, as
 * children), v1 data pages, PLAIN / RLE_DICTIONARY values, RLE repetition
 * and definition levels, uncompressed / snappy / zstd pages — what this
 * writer writes. Anything else is DM_ERR_UNSUPPORTED naming the file and
 * column; bad bytes DM_ERR_CORRUPT. */
typedef struct dm_pq_reader dm_pq_reader_t;

dm_err_t dm_pq_reader_open(const char *path, dm_pq_reader_t **r, dm_error_t *err);
void dm_pq_reader_free(dm_pq_reader_t *r);

int64_t dm_pq_reader_rows(const dm_pq_reader_t *r);
size_t dm_pq_reader_n_columns(const dm_pq_reader_t *r);
/* Column i's description (name and field id; type and optional). */
const dm_pq_column_t *dm_pq_reader_column(const dm_pq_reader_t *r, size_t i);

/* Decodes every value of column i, a leaf with no list or map above it, into
 * out (dm_pq_reader_rows entries). Byte values point into the reader, valid
 * until it is freed. */
dm_err_t dm_pq_reader_read_column(dm_pq_reader_t *r, size_t i, dm_pq_value_t *out, dm_error_t *err);

/* Every level entry of a leaf column: n of them, each with its definition
 * and repetition level and its value (null unless the definition level is
 * max_def). Free with dm_pq_leaf_free. */
typedef struct dm_pq_leaf {
    dm_pq_value_t *vals;
    uint8_t *defs, *reps;
    size_t n;
    uint8_t max_def, max_rep;
} dm_pq_leaf_t;

/* Reads leaf column i (DM_ERR_INVALID for a group). Byte values point into
 * the reader. */
dm_err_t dm_pq_reader_read_leaf(dm_pq_reader_t *r, size_t i, dm_pq_leaf_t *out, dm_error_t *err);
void dm_pq_leaf_free(dm_pq_leaf_t *l);

/* Column i's definition level when present (its optional ancestors and
 * itself, plus one per list or map above it). */
uint8_t dm_pq_reader_max_def(const dm_pq_reader_t *r, size_t i);

#endif
