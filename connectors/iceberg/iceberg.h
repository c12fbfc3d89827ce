/* connectors/iceberg/iceberg.h — the Iceberg sink: a topic into an Apache
 * Iceberg v2 table with Parquet data files, committed through a catalog at
 * each checkpoint, exactly once. Change events (Debezium-shaped envelopes)
 * land as upserts: inserts as data, updates and deletes as equality delete
 * files on the primary key (merge-on-read). See docs/iceberg.md. */
#ifndef DM_CONNECTORS_ICEBERG_H
#define DM_CONNECTORS_ICEBERG_H

#include <stdbool.h>
#include <stdint.h>

#include "core/config.h"

enum {
    DM_ICEBERG_CATALOG_FILE = 0,
    DM_ICEBERG_CATALOG_SQLITE = 1,
    DM_ICEBERG_CATALOG_POSTGRES = 2
};
enum { DM_ICEBERG_MODE_AUTO = 0, DM_ICEBERG_MODE_APPEND = 1, DM_ICEBERG_MODE_UPSERT = 2 };
enum { DM_ICEBERG_ZSTD = 0, DM_ICEBERG_SNAPPY = 1, DM_ICEBERG_UNCOMPRESSED = 2 };

typedef struct dm_iceberg_sink_config {
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

struct dm_transport;
struct dm_unit_status;
struct dm_avro_schema;

/* Resolves a schema id met in the topic (a newer source schema) to its
 * schema; NULL when unknown. Called on the sink's thread. */
typedef const struct dm_avro_schema *(*dm_iceberg_schema_fn)(void *ctx, uint32_t id);

/* An Iceberg sink reading a topic. */
typedef struct dm_iceberg_sink {
    struct dm_transport *transport;
    const char *topic;
    int32_t partitions;
    const char *group; /* its id in snapshot summaries; its offsets are committed there too */
    const struct dm_avro_schema *schema;
    uint32_t schema_id;
    const char *const *key; /* the source's key fields (primary key unless configured) */
    size_t n_key;
    dm_iceberg_schema_fn schema_lookup; /* optional: schema evolution */
    void *schema_lookup_ctx;
    const dm_iceberg_sink_config_t *conf;
} dm_iceberg_sink_t;

/* Writes the topic into the table until status->stop. Resumes from the
 * offsets recorded in the table's last snapshot by this sink (group), so a
 * crash anywhere neither loses nor duplicates rows; commits when a data file
 * reaches target_file_size or commit_interval passes. Runs on the unit's
 * thread. */
void dm_iceberg_sink_run(const dm_iceberg_sink_t *sink, struct dm_unit_status *status);

/* Compacts the table conf names (datamesh iceberg compact): reads every live
 * data file, drops the rows its equality deletes remove, writes the rest
 * into new files of target_file_size and commits them as one "replace"
 * snapshot in place of all previous files and deletes. *files_in gets the
 * files read, *rows_out the rows kept. DM_ERR_AGAIN when the table changed
 * meanwhile (nothing is changed then; run it again). */
dm_err_t dm_iceberg_compact(const dm_iceberg_sink_config_t *conf, int64_t *files_in,
                            int64_t *rows_out, dm_error_t *err);

#endif
