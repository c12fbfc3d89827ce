/* connectors/iceberg/table.h — Apache Iceberg v2 table pieces the sink uses:
 * schemas with field ids, partition specs and their transforms, manifests and
 * manifest lists (Avro container files with the spec's schemas and field
 * ids), table metadata JSON and catalogs that swap it atomically.
 *
 * Values are dm_pq_value_t in Iceberg's representation: date = days since
 * 1970-01-01 (i32), timestamp = microseconds (i64), time = microseconds since
 * midnight (i64), decimal = the unscaled value as 16 big-endian two's
 * complement bytes (u.dec, whatever the precision), string/binary/fixed/uuid
 * = bytes. Threads: everything here is used by the sink's own thread.
 */
#ifndef DM_CONNECTORS_ICEBERG_TABLE_H
#define DM_CONNECTORS_ICEBERG_TABLE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "connectors/iceberg/parquet.h"
#include "core/error.h"

/* ---- schemas ----------------------------------------------------------------- */

typedef enum dm_ice_type {
    DM_ICE_BOOLEAN,
    DM_ICE_INT,
    DM_ICE_LONG,
    DM_ICE_FLOAT,
    DM_ICE_DOUBLE,
    DM_ICE_DATE,
    DM_ICE_TIMESTAMP,   /* without zone */
    DM_ICE_TIMESTAMPTZ, /* with zone (stored in UTC) */
    DM_ICE_TIME,        /* microseconds since midnight (i64) */
    DM_ICE_DECIMAL,     /* decimal(precision, scale): the unscaled value in u.dec */
    DM_ICE_STRUCT,      /* its fields follow it; the value's null says the struct is null */
    DM_ICE_LIST,        /* its element follows it (a field named "element") */
    DM_ICE_MAP,         /* its key and value follow it ("key", required, and "value") */
    /* Types from here on hold their bytes in u.s (borrowed); the ones above
     * are inline in the value. */
    DM_ICE_STRING,
    DM_ICE_BINARY,
    DM_ICE_UUID,
    DM_ICE_FIXED,
} dm_ice_type_t;

typedef struct dm_ice_field {
    int32_t id;
    char *name;
    dm_ice_type_t type;
    int32_t fixed_len;
    bool required;
    int32_t precision, scale; /* DM_ICE_DECIMAL */
    int32_t n_children;       /* STRUCT: its fields; LIST: 1 (element); MAP: 2 (key, value) */
} dm_ice_field_t;

/* A schema's fields in pre-order: a struct's n_children fields follow it
 * (each with its own subtree), a list's element, a map's key and value (the
 * element, key and value ids are their field ids), so fields[] is also the
 * list of columns the Parquet writer takes and a row has one value per
 * entry. Names are unique among siblings; dm_ice_schema_find looks at the
 * top level only. */
typedef struct dm_ice_schema {
    int32_t id;
    dm_ice_field_t *fields;
    size_t n;
    int32_t *key_ids; /* identifier-field-ids (the primary key) */
    size_t n_keys;
} dm_ice_schema_t;

/* The field's type name in table metadata ("long", "fixed[16]",
 * "decimal(10, 2)"); buf holds 32. */
const char *dm_ice_type_name(const dm_ice_field_t *f, char buf[32]);

/* Iceberg's largest decimal precision (the unscaled value fits 16 bytes). */
#define DM_ICE_DECIMAL_MAX_PRECISION 38

/* The schema as metadata JSON (a "struct" with schema-id). New reference. */
json_t *dm_ice_schema_to_json(const dm_ice_schema_t *s);

/* Reads a schema object of table metadata (structs, lists and maps
 * included). Unknown types are refused with DM_ERR_UNSUPPORTED naming the
 * field. Free with dm_ice_schema_free. */
dm_err_t dm_ice_schema_from_json(const json_t *j, dm_ice_schema_t *s, dm_error_t *err);

void dm_ice_schema_free(dm_ice_schema_t *s);

/* Deep copy. */
dm_err_t dm_ice_schema_copy(const dm_ice_schema_t *from, dm_ice_schema_t *to);

/* The entry after field i's subtree (its next sibling, or the end). */
size_t dm_ice_schema_skip(const dm_ice_schema_t *s, size_t i);

/* Whether a type nests other fields (struct, list, map). */
static inline bool dm_ice_type_nested(dm_ice_type_t t)
{
    return t == DM_ICE_STRUCT || t == DM_ICE_LIST || t == DM_ICE_MAP;
}

/* The top-level field with this name / any field with this id, or NULL. */
const dm_ice_field_t *dm_ice_schema_find(const dm_ice_schema_t *s, const char *name);
const dm_ice_field_t *dm_ice_schema_find_id(const dm_ice_schema_t *s, int32_t id);

/* Bytes of a FIXED that holds every decimal of this precision. */
int32_t dm_ice_decimal_bytes(int32_t precision);

/* The Parquet column for a field (physical type, annotation, field id). */
dm_pq_column_t dm_ice_parquet_column(const dm_ice_field_t *f);

/* A value in Iceberg's single-value binary serialization (bounds, partition
 * summaries); out holds 64 bytes, longer byte values are refused (false). */
bool dm_ice_value_bytes(dm_ice_type_t t, const dm_pq_value_t *v, uint8_t out[64], uint32_t *len);

/* ---- partitioning ----------------------------------------------------------- */

typedef enum dm_ice_transform {
    DM_ICE_IDENTITY,
    DM_ICE_BUCKET,
    DM_ICE_TRUNCATE,
    DM_ICE_YEAR,
    DM_ICE_MONTH,
    DM_ICE_DAY,
    DM_ICE_HOUR,
} dm_ice_transform_t;

typedef struct dm_ice_part_field {
    int32_t source_id, field_id;
    char *name;
    dm_ice_transform_t transform;
    int32_t param; /* bucket count, truncate width */
} dm_ice_part_field_t;

typedef struct dm_ice_spec {
    int32_t id;
    dm_ice_part_field_t *fields;
    size_t n;
} dm_ice_spec_t;

/* The spec's 32-bit Murmur3 (x86 variant, seed 0). */
uint32_t dm_ice_murmur3(const void *data, size_t len);

/* The hash the bucket transform takes of a value of type t (ints and dates
 * as 8-byte longs, timestamps as microseconds, strings as UTF-8 bytes). */
int32_t dm_ice_hash_value(dm_ice_type_t t, const dm_pq_value_t *v);

/* Parses a transform as metadata spells it: identity, bucket[N],
 * truncate[W], year, month, day, hour. */
dm_err_t dm_ice_transform_parse(const char *text, dm_ice_transform_t *t, int32_t *param,
                                dm_error_t *err);

/* The transform in metadata spelling; buf holds 32. */
const char *dm_ice_transform_name(dm_ice_transform_t t, int32_t param, char buf[32]);

/* The type of a transform's result for a source type; DM_ERR_INVALID when
 * the transform does not apply to it (bucket of a double, day of a string). */
dm_err_t dm_ice_transform_result(dm_ice_transform_t t, dm_ice_type_t src, dm_ice_type_t *out);

/* Applies a partition field's transform. String results point into in. */
void dm_ice_transform_apply(const dm_ice_part_field_t *pf, dm_ice_type_t src,
                            const dm_pq_value_t *in, dm_pq_value_t *out);

/* Parses a partition spec as users write it — "day(ts), bucket(16, id),
 * truncate(4, name), country" — against schema; field ids from 1000.
 * Errors name the term. Free with dm_ice_spec_free. */
dm_err_t dm_ice_spec_parse(const char *text, const dm_ice_schema_t *schema, dm_ice_spec_t *spec,
                           dm_error_t *err);

json_t *dm_ice_spec_to_json(const dm_ice_spec_t *spec);
/* The fields array alone, as manifests' "partition-spec" header wants it. */
json_t *dm_ice_spec_fields_json(const dm_ice_spec_t *spec);
dm_err_t dm_ice_spec_from_json(const json_t *j, dm_ice_spec_t *spec, dm_error_t *err);
void dm_ice_spec_free(dm_ice_spec_t *spec);

/* The directory part of a data file path for partition values ("id_bucket=3/
 * ts_day=2024-01-02"), appended to out. */
dm_err_t dm_ice_partition_path(const dm_ice_spec_t *spec, const dm_ice_schema_t *schema,
                               const dm_pq_value_t *vals, dm_buf_t *out);

/* ---- files, manifests, snapshots -------------------------------------------- */

enum { DM_ICE_CONTENT_DATA = 0, DM_ICE_CONTENT_EQ_DELETES = 2 };

/* A written data or delete file, as its manifest entry describes it. */
typedef struct dm_ice_data_file {
    int content;
    char *path; /* URI: file:///… */
    int64_t records, bytes;
    dm_pq_value_t *partition; /* spec->n values */
    bool *partition_owned;    /* byte values the file owns (malloc) */
    size_t n_partition;
    size_t n_cols;
    int32_t *col_ids;
    dm_pq_column_stats_t *stats;
    int32_t *eq_ids; /* equality delete files: the key's field ids */
    size_t n_eq;
    int32_t sort_order_id; /* data files: the order their rows follow (0: unsorted) */
} dm_ice_data_file_t;

void dm_ice_data_file_free(dm_ice_data_file_t *f);

/* One entry of a manifest list, as Avro JSON (unions wrapped) — new ones are
 * built by dm_ice_manifest_write, old ones are read from the parent's list. */
typedef struct dm_ice_manifest {
    json_t *entry;
} dm_ice_manifest_t;

/* Writes a manifest of files (all ADDED by snapshot_id with sequence number
 * seq) at local_path, known to readers as uri, and returns its manifest-list
 * entry in *out (a new reference). content: 0 data, 1 deletes. */
dm_err_t dm_ice_manifest_write(const char *local_path, const char *uri,
                               const dm_ice_schema_t *schema, const dm_ice_spec_t *spec,
                               int content, int64_t snapshot_id, int64_t seq,
                               dm_ice_data_file_t *const *files, size_t n, json_t **out,
                               dm_error_t *err);

/* Reads the manifest-list entries of a manifest list file (a JSON array, new
 * reference, in *out). */
dm_err_t dm_ice_manifest_list_read(const char *local_path, json_t **out, dm_error_t *err);

/* Writes a manifest list of entries (JSON array of Avro-JSON entries). */
dm_err_t dm_ice_manifest_list_write(const char *local_path, int64_t snapshot_id, int64_t parent_id,
                                    int64_t seq, const json_t *entries, dm_error_t *err);

/* Reads the files of a manifest (live entries only: status ADDED or
 * EXISTING) into a JSON array of Avro-JSON manifest entries. */
dm_err_t dm_ice_manifest_read(const char *local_path, json_t **out, dm_error_t *err);

/* The local path of a file:// URI (the URI itself otherwise). */
const char *dm_ice_local_path(const char *uri);

/* A random (version 4) UUID, 36 characters and a NUL. */
void dm_ice_uuid(char out[37]);

/* Writes len bytes to path atomically: a temporary file, fsync, rename. */
dm_err_t dm_ice_write_file(const char *path, const void *data, size_t len, dm_error_t *err);

/* Reads a whole file (NUL-terminated, malloc'd) into *out. */
dm_err_t dm_ice_read_file(const char *path, char **out, size_t *len, dm_error_t *err);

/* ---- catalogs ----------------------------------------------------------------- */

typedef enum dm_ice_catalog_kind {
    DM_ICE_CATALOG_FILE = 0, /* version files: vN.metadata.json + version-hint.text */
    DM_ICE_CATALOG_SQLITE,   /* the JDBC catalog's iceberg_tables in SQLite */
    DM_ICE_CATALOG_POSTGRES, /* the same tables in PostgreSQL */
} dm_ice_catalog_kind_t;

typedef struct dm_ice_catalog dm_ice_catalog_t;

/* Opens a catalog. uri: the SQLite database file (sqlite), a libpq DSN
 * (postgres; never echoed in errors), unused for file.
 * name: the catalog_name column. */
dm_err_t dm_ice_catalog_open(dm_ice_catalog_kind_t kind, const char *uri, const char *name,
                             dm_ice_catalog_t **out, dm_error_t *err);
void dm_ice_catalog_close(dm_ice_catalog_t *c);

/* The current metadata file of a table (*location malloc'd, NULL when the
 * table does not exist). table_dir is the table's local directory. */
dm_err_t dm_ice_catalog_load(dm_ice_catalog_t *c, const char *ns, const char *name,
                             const char *table_dir, char **location, dm_error_t *err);

/* Writes metadata (text) as the table's next metadata file and makes it
 * current if the current one is still expected (NULL: the table must not
 * exist yet). DM_ERR_AGAIN when another writer got there first; nothing is
 * changed then. *location gets the new file's path (malloc'd). */
dm_err_t dm_ice_catalog_commit(dm_ice_catalog_t *c, const char *ns, const char *name,
                               const char *table_dir, const char *expected, const char *metadata,
                               int64_t version, char **location, dm_error_t *err);

/* ---- tables ---------------------------------------------------------------------- */

/* An open table: where it lives, its current metadata and what the sink
 * needs out of it (current schema, default spec). */
typedef struct dm_ice_table {
    dm_ice_catalog_t *catalog; /* borrowed */
    char *ns, *name;
    char *dir;      /* local directory: warehouse/ns/name */
    char *location; /* its URI: file:///… */
    char *metadata_location;
    json_t *meta;
    dm_ice_schema_t schema;
    dm_ice_spec_t spec;
} dm_ice_table_t;

/* Opens ns.name in warehouse through catalog, creating it (schema, the
 * partition spec parsed from partition_by, properties) when the catalog does
 * not know it (schema NULL: DM_ERR_NOT_FOUND then). An existing table keeps
 * its own schema and spec. */
dm_err_t dm_ice_table_open(dm_ice_catalog_t *catalog, const char *warehouse, const char *ns,
                           const char *name, const dm_ice_schema_t *schema,
                           const char *partition_by, json_t *properties, dm_ice_table_t **out,
                           dm_error_t *err);

/* dm_ice_table_open, and a new table gets the sort order sort_fields (an
 * Iceberg sort order's "fields" array; NULL or empty: unsorted) as order 1
 * and its default-sort-order-id. An existing table keeps its own order. */
dm_err_t dm_ice_table_open_sorted(dm_ice_catalog_t *catalog, const char *warehouse, const char *ns,
                                  const char *name, const dm_ice_schema_t *schema,
                                  const char *partition_by, const json_t *sort_fields,
                                  json_t *properties, dm_ice_table_t **out, dm_error_t *err);

void dm_ice_table_free(dm_ice_table_t *t);

/* Reloads the current metadata from the catalog. */
dm_err_t dm_ice_table_refresh(dm_ice_table_t *t, dm_error_t *err);

/* The value of key in the summary of the newest snapshot (current, then its
 * ancestors) whose summary has "datamesh.sink" = sink; NULL when none. */
const char *dm_ice_table_sink_summary(const dm_ice_table_t *t, const char *sink, const char *key);

typedef struct dm_ice_commit {
    dm_ice_data_file_t *const *data;
    size_t n_data;
    dm_ice_data_file_t *const *deletes; /* equality delete files */
    size_t n_deletes;
    bool replace;  /* compaction: the new files replace every live file */
    json_t *extra; /* more summary entries (strings), borrowed */
} dm_ice_commit_t;

/* Commits one snapshot on top of the current metadata: manifests, manifest
 * list, metadata file, catalog swap. DM_ERR_AGAIN when another writer
 * committed first (refresh and decide again); the table is unchanged then. */
dm_err_t dm_ice_table_commit(dm_ice_table_t *t, const dm_ice_commit_t *c, dm_error_t *err);

/* Makes schema (which must keep every existing field id) the current schema,
 * with a new schema id, in a metadata-only commit. DM_ERR_AGAIN as above. */
dm_err_t dm_ice_table_set_schema(dm_ice_table_t *t, const dm_ice_schema_t *schema, dm_error_t *err);

/* The live data and delete files of the current snapshot: a JSON array of
 * Avro-JSON manifest entries, each with "sequence_number" resolved. */
dm_err_t dm_ice_table_files(const dm_ice_table_t *t, json_t **out, dm_error_t *err);

#endif
