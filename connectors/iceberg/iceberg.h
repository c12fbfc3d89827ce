/* connectors/iceberg/iceberg.h — the Iceberg sink: a topic into an Apache
 * Iceberg v2 table with Parquet data files, committed through a catalog at
 * each checkpoint, exactly once. Change events (Debezium-shaped envelopes)
 * land as upserts: inserts as data, updates and deletes as equality delete
 * files on the primary key (merge-on-read). See docs/iceberg.md. */
#ifndef DM_CONNECTORS_ICEBERG_H
#define DM_CONNECTORS_ICEBERG_H

#include <stdbool.h>
#include <stdint.h>

#include "connectors/sink.h"
#include "core/config.h"

enum {
    DM_ICEBERG_CATALOG_FILE = 0,
    DM_ICEBERG_CATALOG_SQLITE = 1,
    DM_ICEBERG_CATALOG_POSTGRES = 2
};
enum { DM_ICEBERG_MODE_AUTO = 0, DM_ICEBERG_MODE_APPEND = 1, DM_ICEBERG_MODE_UPSERT = 2 };
enum { DM_ICEBERG_ZSTD = 0, DM_ICEBERG_SNAPPY = 1, DM_ICEBERG_UNCOMPRESSED = 2 };

typedef struct dm_iceberg_sink_config {
    dm_sink_common_config_t common; /* batching and retries (connectors/sink.h) */
    int catalog;        /* file (version files), sqlite or postgres (JDBC catalog layout) */
    char *catalog_uri;  /* sqlite: the database file (default WAREHOUSE/catalog.db) */
    char *catalog_dsn;  /* postgres: libpq connection string (a secret) */
    char *catalog_name; /* the JDBC catalog's catalog_name */
    char *warehouse;    /* directory tables live under: WAREHOUSE/NAMESPACE/TABLE */
    char *table;        /* NAMESPACE.TABLE */
    char *partition_by; /* "day(ts), bucket(16, id), truncate(4, name), country" */
    dm_strlist_t primary_key;
    int mode;                 /* auto: upsert when values are change events */
    int64_t target_file_size; /* roll a data file (and commit) past this */
    int64_t row_group_size;
    int64_t commit_interval; /* checkpoint at least this often (ms) */
    int compression;
    int64_t compression_level; /* zstd level */
    char *sort_by;             /* "country, amount desc nulls last": a new table's sort order */
    int64_t sort_buffer;       /* rows buffered for sorting before a data file closes early */
} dm_iceberg_sink_config_t;

extern const dm_config_table_t dm_iceberg_sink_config_table;

/* The Iceberg sink on the common runner. It keeps one open checkpoint over
 * several batches (ops->checkpoint) and commits it — data and delete files
 * with the next input offsets in the snapshot summary — when a data file
 * reaches target_file_size, when commit_interval passed, before a new schema
 * version and at a clean stop. Its positions are read from this sink's
 * (env->group) last snapshot, so a crash anywhere neither loses nor
 * duplicates rows. A record of a new schema id evolves the table (new
 * columns, widened types); records the table can never take (an
 * incompatible schema, a value its column cannot hold) are dead letters.
 * Settings that can never work (a bad table name, sort_by, primary key) stop
 * the unit at open (err->fatal). Callbacks run on the sink unit's thread. */
extern const dm_sink_ops_t dm_iceberg_sink_ops;

/* Compacts the table conf names (datamesh iceberg compact): reads every live
 * data file, drops the rows its equality deletes remove, writes the rest
 * into new files of target_file_size and commits them as one "replace"
 * snapshot in place of all previous files and deletes. *files_in gets the
 * files read, *rows_out the rows kept. DM_ERR_AGAIN when the table changed
 * meanwhile (nothing is changed then; run it again). */
dm_err_t dm_iceberg_compact(const dm_iceberg_sink_config_t *conf, int64_t *files_in,
                            int64_t *rows_out, dm_error_t *err);

#endif
