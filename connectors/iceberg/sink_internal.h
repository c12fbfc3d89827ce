/* connectors/iceberg/sink_internal.h — the Iceberg sink's state, shared by
 * the sink unit (iceberg_sink.c) and the compaction action (compact.c), which
 * reuses the sink's writers to write the rows it keeps. Not a public API. */
#ifndef DM_CONNECTORS_ICEBERG_SINK_INTERNAL_H
#define DM_CONNECTORS_ICEBERG_SINK_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "connectors/iceberg/iceberg.h"
#include "connectors/iceberg/rows.h"
#include "connectors/iceberg/sort.h"
#include "connectors/iceberg/table.h"
#include "connectors/sink.h"
#include "core/arena.h"
#include "core/buf.h"

typedef struct part_writer {
    dm_buf_t key;          /* encoded partition tuple */
    dm_pq_value_t *values; /* the tuple, bytes owned by key_copy */
    uint8_t *bytes;        /* copies of byte values */
    char *path;            /* local path */
    FILE *f;
    dm_pq_writer_t *w;
    const dm_pq_value_t **rows; /* sort_by: the file's rows (in sort_arena) until it closes */
    size_t n_rows, cap_rows;
    int64_t row_bytes; /* their size, for target_file_size */
} part_writer_t;

/* A set of byte strings (encoded keys) mapped to an index. */
typedef struct keymap {
    dm_buf_t bytes;
    uint32_t *off, *len, *val;
    size_t n, cap;
    uint32_t *slots, n_slots;
} keymap_t;

/* A source schema id the table cannot take (an incompatible change, an
 * unmapped type): its records are dead letters with the reason. */
typedef struct bad_schema {
    uint32_t id;
    char reason[300];
} bad_schema_t;

typedef struct sink {
    const dm_iceberg_sink_config_t *conf;
    const dm_sink_env_t *env; /* topic, partitions, group (its id in snapshots), schemas, key */
    dm_ice_catalog_t *catalog;
    dm_ice_table_t *table;
    dm_ice_source_t *sources;
    size_t n_sources;
    bool upsert;
    size_t *key_cols; /* table column index of each primary key column */
    size_t n_key;
    size_t *part_cols; /* table column index of each partition source */
    /* the open checkpoint */
    part_writer_t *writers;
    size_t n_writers;
    dm_ice_data_file_t **files;
    size_t n_files;
    dm_arena_t rows_arena; /* upsert: buffered rows and keys */
    dm_pq_value_t **rows;
    size_t n_rows, cap_rows;
    keymap_t row_of_key;      /* key -> buffered row (UINT32_MAX: deleted) */
    keymap_t deleted;         /* keys whose earlier versions must go */
    dm_pq_value_t **del_keys; /* their key columns */
    size_t n_del, cap_del;
    int64_t buffered_bytes;
    bad_schema_t *bad;
    size_t n_bad;
    int64_t *pos; /* next offset per partition once the open checkpoint commits */
    int64_t opened_ms;
    bool pending; /* anything to commit (rows, deletes) */
    dm_arena_t batch_arena;
    dm_buf_t scratch;
    dm_pq_value_t *row; /* one converted row */
    char *schema_kv;    /* the table schema as JSON, for Parquet footers */
    dm_ice_sort_t sort; /* sort_by: the table's default order (n = 0: unsorted) */
    int32_t sort_order_id;
    dm_arena_t sort_arena; /* rows of the open files, while sorting */
    int64_t sort_bytes;
    bool rows_kept; /* the rows being written live in rows_arena until the commit ends */
} sink_t;

/* Finds k in the map or adds it with val; *slot_val points at its value. */
dm_err_t dm_ice_keymap_find_or_add(keymap_t *m, const uint8_t *k, size_t len, uint32_t val,
                                   uint32_t **slot_val, bool *found);

/* Encodes the row's primary key columns into out (a null key is an error). */
dm_err_t dm_ice_sink_encode_key(sink_t *k, const dm_pq_value_t *row, dm_buf_t *out,
                                dm_error_t *err);

/* Writes one row to its partition's open file, rolling it at target_file_size. */
dm_err_t dm_ice_sink_write_row(sink_t *k, const dm_pq_value_t *row, dm_error_t *err);

/* Closes a partition's file into k->files and clears *pw. */
dm_err_t dm_ice_sink_close_writer(sink_t *k, part_writer_t *pw, dm_error_t *err);

/* Deletes the files of the open checkpoint (after a failed commit). */
void dm_ice_sink_discard_files(sink_t *k);

/* Frees everything the sink holds (not k itself). */
void dm_ice_sink_free(sink_t *k);

/* Opens the catalog the settings name and splits the table name; *ns and
 * *name are the caller's to free. */
dm_err_t dm_ice_sink_open_catalog(sink_t *k, char **ns, char **name, dm_error_t *err);

/* Prepares the sources, key and partition columns for the table's current
 * schema. */
dm_err_t dm_ice_sink_reset_sources(sink_t *k, dm_error_t *err);

#endif
