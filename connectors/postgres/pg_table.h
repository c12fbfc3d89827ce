/* connectors/postgres/pg_table.h — a captured table: its columns as Avro, and
 * its change events encoded in the Debezium-shaped envelope (DESIGN.md).
 *
 * Value schema (subject <topic>-value), a record Envelope:
 *   before, after   [null, Value]  the row before / after the change; Value has
 *                                  one field per column (primary-key columns
 *                                  plain, the others [null, T] with default null)
 *   op              string         c insert, u update, d delete, t truncate,
 *                                  r snapshot read
 *   source          record Source  connector, db, schema, table, lsn (of this
 *                                  change; of the high watermark for snapshot
 *                                  rows), commit_lsn, txid, ts_ms (commit
 *                                  time), snapshot ("true" / "false")
 *   ts_ms           long           when the connector wrote the event
 *   unchanged       array<string>  columns whose value the server did not send
 *                                  (TOASTed and unchanged by an UPDATE); their
 *                                  field in after is null
 * Key (subject <topic>-key): a record of the primary-key columns; tables without
 * a primary key have records without a key.
 * Names that are not Avro names (spaces, leading digits…) are rewritten with
 * '_' for every character Avro does not allow.
 */
#ifndef DM_CONNECTORS_PG_TABLE_H
#define DM_CONNECTORS_PG_TABLE_H

#include <stdbool.h>
#include <stdint.h>

#include "connectors/postgres/pg_types.h"
#include "connectors/postgres/pgoutput.h"
#include "core/buf.h"
#include "schema/dm_avro.h"

typedef struct dm_pg_column {
    char *name;
    uint32_t type_oid;
    int32_t typmod;
    dm_pg_type_t type;
    int key_pos; /* 1-based position in the primary key, 0 when not a key column */
} dm_pg_column_t;

typedef struct dm_pg_table {
    uint32_t relid;
    char *schema, *name;
    dm_pg_column_t *cols;
    int n_cols;
    int *key; /* column indexes of the primary key, in key order */
    int n_key;
    char topic[256];
    dm_avro_schema_t *value_schema, *key_schema; /* parsed from what was registered */
    uint32_t value_id, key_id;
} dm_pg_table_t;

/* What an event says besides the rows. */
typedef struct dm_pg_event {
    char op;                           /* c u d t r */
    const dm_pgoutput_datum_t *before; /* n_cols datums or NULL */
    const dm_pgoutput_datum_t *after;  /* n_cols datums or NULL */
    const char *db;
    uint64_t lsn, commit_lsn;
    uint32_t txid;
    int64_t commit_ms, now_ms;
} dm_pg_event_t;

/* Builds the value and key schemas (JSON text, malloc'd; *key_json NULL when
 * the table has no primary key). */
dm_err_t dm_pg_table_schema_json(const dm_pg_table_t *t, const char *db, char **value_json,
                                 char **key_json, dm_error_t *err);

/* Appends the wire-format value (and key, when the table has one and the event
 * has a row) of ev to value / key. *has_key tells whether a key was written.
 * Errors name the table and column. */
dm_err_t dm_pg_event_encode(const dm_pg_table_t *t, const dm_pg_event_t *ev, dm_arena_t *arena,
                            dm_buf_t *key, bool *has_key, dm_buf_t *value, dm_error_t *err);

/* Appends the primary key of a row as text (values joined by 0x1f) to out, for
 * matching snapshot rows with changes; false when a key column is not in row. */
bool dm_pg_row_key_text(const dm_pg_table_t *t, const dm_pgoutput_datum_t *row, dm_buf_t *out);

/* Frees what a table owns (not t itself). */
void dm_pg_table_clear(dm_pg_table_t *t);

#endif
