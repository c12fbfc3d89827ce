/* connectors/postgres/pg_types.h — PostgreSQL types as Avro types, and values
 * from their text output form (what pgoutput sends and what a text-format
 * SELECT returns) to Avro values.
 *
 * The text forms assume the session settings both connections of the
 * connector set: DateStyle=ISO, TimeZone=UTC, IntervalStyle=iso_8601,
 * bytea_output=hex, extra_float_digits=3 (DM_PG_SESSION_OPTIONS). They also
 * commit synchronously: the walsender only sends flushed WAL, so a watermark or
 * heartbeat committed asynchronously would come back only after the WAL
 * writer's delay.
 *
 *   smallint, integer      int          real     float
 *   bigint, oid            long         double   double
 *   numeric(p,s)           bytes decimal(p,s)   numeric (no typmod) string
 *   boolean                boolean      bytea    bytes
 *   text, varchar, char, name, json, jsonb, enums, unknown types   string
 *   uuid                   string uuid
 *   date                   int date (±infinity: INT32_MAX / INT32_MIN)
 *   time                   long time-micros
 *   timestamp              long local-timestamp-micros (±infinity: INT64_MAX / MIN)
 *   timestamptz            long timestamp-micros (±infinity: INT64_MAX / MIN)
 *   interval               record Interval {months int, days int, micros long}
 *   T[] (one dimension)    array of [null, T]
 *   domains                their base type
 */
#ifndef DM_CONNECTORS_PG_TYPES_H
#define DM_CONNECTORS_PG_TYPES_H

#include <stdbool.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/error.h"
#include "schema/dm_avro.h"

#define DM_PG_SESSION_OPTIONS                                                                      \
    "-c DateStyle=ISO -c TimeZone=UTC -c IntervalStyle=iso_8601 -c bytea_output=hex "              \
    "-c extra_float_digits=3 -c synchronous_commit=on"

typedef enum dm_pg_kind {
    DM_PGK_STRING = 0, /* text and anything shown as text */
    DM_PGK_BOOL,
    DM_PGK_INT2,
    DM_PGK_INT4,
    DM_PGK_INT8,
    DM_PGK_FLOAT4,
    DM_PGK_FLOAT8,
    DM_PGK_DECIMAL, /* numeric(p,s) */
    DM_PGK_BYTEA,
    DM_PGK_DATE,
    DM_PGK_TIME,
    DM_PGK_TIMESTAMP,
    DM_PGK_TIMESTAMPTZ,
    DM_PGK_INTERVAL,
    DM_PGK_UUID,
    DM_PGK_ARRAY,
} dm_pg_kind_t;

/* A column's type as the connector maps it. */
typedef struct dm_pg_type {
    dm_pg_kind_t kind;
    int precision, scale; /* DM_PGK_DECIMAL */
    dm_pg_kind_t elem;    /* DM_PGK_ARRAY: the element's kind */
    int elem_precision, elem_scale;
    bool unknown; /* mapped to string for want of a better type */
} dm_pg_type_t;

/* Maps a built-in type oid (with its typmod) to *out; false when the oid is
 * not a built-in type this table knows (look it up in the catalog). */
bool dm_pg_type_builtin(uint32_t oid, int32_t typmod, dm_pg_type_t *out);

/* The element oid of a built-in array type, 0 when oid is not one. */
uint32_t dm_pg_array_elem_builtin(uint32_t oid);

/* Appends the Avro JSON of the type to out. *interval_defined tracks the named
 * Interval record (defined once per schema, referenced after). */
dm_err_t dm_pg_type_avro_json(const dm_pg_type_t *t, bool *interval_defined, dm_buf_t *out);

/* Converts the text form of a value of type t into *out (the plain value, not
 * wrapped in a union), allocating in arena. DM_ERR_INVALID names the value
 * and the expected form when the text cannot be this type. */
dm_err_t dm_pg_value_from_text(const dm_pg_type_t *t, const char *text, size_t len,
                               dm_arena_t *arena, dm_avro_value_t *out, dm_error_t *err);

/* Whether a server error of SQLSTATE sqlstate (may be NULL) names a condition
 * that passes (connection, resources, shutdown, serialization, an object in
 * use): the postgres source and sink retry those and fail on the others. */
bool dm_pg_sqlstate_transient(const char *sqlstate);

/* Days since 1970-01-01 of a proleptic Gregorian date. */
int64_t dm_pg_days_from_civil(int64_t y, int m, int d);

#endif
