/* connectors/iceberg/rows.h — from Avro source records to table rows: the
 * Iceberg schema a source schema maps to, schema evolution by name, and the
 * conversion of decoded values (and Debezium-shaped change events). */
#ifndef DM_CONNECTORS_ICEBERG_ROWS_H
#define DM_CONNECTORS_ICEBERG_ROWS_H

#include "connectors/iceberg/table.h"
#include "core/arena.h"
#include "schema/dm_avro.h"

/* How one source (writer) schema feeds the table. */
typedef struct dm_ice_source {
    uint32_t id;
    const dm_avro_schema_t *schema;
    dm_avro_codec_t *codec;
    const dm_avro_node_t *row;      /* the record rows come from (root, or the envelope's after) */
    bool envelope;                  /* op / before / after change events */
    int op, before, after;          /* envelope field indexes */
    int *field_of;                  /* table column -> field index in its record, -1 when absent */
    int *parent_of;                 /* table column -> its struct's column, -1 at the top */
    const dm_avro_node_t **node_of; /* table column -> the Avro field's type */
    const dm_avro_value_t **val_of; /* scratch: a struct column's record value */
    int *outer_of;                  /* table column -> the list or map enclosing it, -1 if none */
    uint8_t *level_of;              /* scratch: a column's definition level in the row */
    uint8_t *fast_of;               /* a top-level column copied as is (see rows.c), 0 if not */
    uint8_t *scratch;               /* 16 bytes per column: a converted uuid of the last row */
    size_t n_cols;
    /* scratch of a row's lists and maps: their striped entries, and the
     * bytes of values under them (both valid until the next conversion) */
    dm_pq_entry_t *entries;
    size_t n_entries, cap_entries;
    dm_arena_t arena;
} dm_ice_source_t;

/* Builds the Iceberg schema of a source's rows: fields become columns with
 * ids from next_id in pre-order (a nullable union is an optional column, a
 * nested record a struct followed by its fields); durations and other
 * unmapped types are refused with DM_ERR_UNSUPPORTED naming the field.
 * Arrays become lists (element), maps maps (key: string, value). */
dm_err_t dm_ice_schema_from_avro(const dm_avro_node_t *row, int32_t next_id, dm_ice_schema_t *out,
                                 dm_error_t *err);

/* The row record of a source schema, and whether it is a change envelope
 * (a record with op and a nullable record after). */
const dm_avro_node_t *dm_ice_row_node(const dm_avro_node_t *root, bool *envelope);

/* Evolves table (by name): columns the source has and the table lacks are
 * added as optional with fresh ids after last_id; a changed type that is not
 * a widening (int->long, float->double) is DM_ERR_SCHEMA_INCOMPATIBLE. *out
 * is the new schema when *changed. */
dm_err_t dm_ice_schema_evolve(const dm_ice_schema_t *table, int32_t last_id,
                              const dm_ice_schema_t *source, dm_ice_schema_t *out, bool *changed,
                              dm_error_t *err);

/* Prepares a source against the table's current schema (codec, column
 * mapping). Free with dm_ice_source_free. */
dm_err_t dm_ice_source_init(dm_ice_source_t *src, uint32_t id, const dm_avro_schema_t *schema,
                            const dm_ice_schema_t *table, dm_error_t *err);
void dm_ice_source_free(dm_ice_source_t *src);

/* Converts a row record value into table columns (out: table->n cells; a
 * list or map that no other encloses holds its leaves' entries, striped
 * with Parquet's repetition and definition levels; cells under it are
 * null).
 * copy_arena: when not NULL, strings are copied there (rows kept past the
 * batch); without it, values may point into the batch and into src's
 * scratch (valid until the next conversion). A missing or null value in a required column is
 * DM_ERR_SCHEMA_MISMATCH naming it. */
dm_err_t dm_ice_row_convert(dm_ice_source_t *src, const dm_ice_schema_t *table,
                            const dm_avro_value_t *row, dm_arena_t *copy_arena, dm_pq_value_t *out,
                            dm_error_t *err);

#endif
