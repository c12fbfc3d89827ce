/* connectors/mysql/my_table.h — a captured MySQL/MariaDB table: its columns
 * (from the binlog's table map with binlog_row_metadata=FULL), their Avro
 * types, and change events in the Debezium-shaped envelope (DESIGN.md) that
 * the postgres connector writes too.
 *
 * Types:
 *   TINYINT, SMALLINT, MEDIUMINT (signed or not), INT     int
 *   INT UNSIGNED, BIGINT                                   long
 *   BIGINT UNSIGNED                                        bytes decimal(20,0)
 *   DECIMAL(p,s)                                           bytes decimal(p,s)
 *   FLOAT / DOUBLE                                         float / double
 *   DATE                                                   int date
 *   TIME(fsp)                                              long (microseconds, may be < 0 or >= 24
 * h) DATETIME(fsp)                                          long local-timestamp-micros
 *   TIMESTAMP(fsp)                                         long timestamp-micros
 *   YEAR                                                   int
 *   CHAR, VARCHAR, TEXT (any character set)                string (latin1 converted to UTF-8)
 *   BINARY, VARBINARY, BLOB                                bytes
 *   ENUM, SET                                              string (a SET's members joined by ',')
 *   JSON (MySQL's binary JSON, MariaDB's text)             string (JSON text)
 *   BIT(1) / BIT(n)                                        boolean / bytes (big-endian)
 *   anything else (GEOMETRY…)                              string (hex), with one warning
 * Zero dates ('0000-00-00') are null (a key column with one is an error).
 *
 * Value schema (subject <topic>-value): record Envelope {before, after:
 * [null, Value], op, source: Source, ts_ms, unchanged: array<string>} — the
 * same shape as postgres; Source (namespace datamesh.mysql) holds connector,
 * db, table, server_id, gtid (of the transaction), file, pos (of the
 * transaction's start event), row (index of the change in the transaction),
 * position (the GTID state and file:pos after the transaction), ts_ms
 * (commit time), snapshot. Key (subject <topic>-key): the primary key. */
#ifndef DM_CONNECTORS_MY_TABLE_H
#define DM_CONNECTORS_MY_TABLE_H

#include "connectors/mysql/my_binlog.h"
#include "schema/dm_avro.h"

typedef struct dm_my_table {
    char *db, *name;
    dm_my_col_t *cols; /* names and symbols owned (strdup'd) */
    int n_cols;
    int *key; /* column indexes of the primary key, in key order */
    int n_key;
    bool unknown; /* a column of a type without a mapping */
    char topic[256];
    dm_avro_schema_t *value_schema, *key_schema;
    uint32_t value_id, key_id;
} dm_my_table_t;

/* What an event says besides the rows. */
typedef struct dm_my_event {
    char op; /* c u d t r */
    const dm_my_value_t *before, *after;
    const char *gtid, *file, *position;
    uint64_t pos;
    int32_t row;
    uint32_t server_id;
    int64_t commit_ms, now_ms;
} dm_my_event_t;

/* Copies a table map into t (owned copies). DM_ERR_CONFIG when the map has no
 * column names (binlog_row_metadata is not FULL). */
dm_err_t dm_my_table_from_map(const dm_my_table_map_t *tm, dm_my_table_t *t, dm_error_t *err);

/* Same columns, types, keys and symbols (no new schema needed)? */
bool dm_my_table_same(const dm_my_table_t *a, const dm_my_table_t *b);

/* The value and key schemas (JSON text, malloc'd; *key_json NULL without a
 * primary key). */
dm_err_t dm_my_table_schema_json(const dm_my_table_t *t, char **value_json, char **key_json,
                                 dm_error_t *err);

/* Appends the wire-format value (and key when the table has one) of ev.
 * Errors name the table and column. */
dm_err_t dm_my_event_encode(const dm_my_table_t *t, const dm_my_event_t *ev, dm_arena_t *arena,
                            dm_buf_t *key, bool *has_key, dm_buf_t *value, dm_error_t *err);

/* Frees what t owns (not t). */
void dm_my_table_clear(dm_my_table_t *t);

#endif
