/* schema/json_internal.h — what schema/json.c (the jansson walker, logical
 * types, the writer) and schema/json_decode.c (the DOM-free reader) share.
 * Not public. */
#ifndef DM_SCHEMA_JSON_INTERNAL_H
#define DM_SCHEMA_JSON_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "schema/dm_avro.h"

/* "YYYY-MM-DD" at *s → days since the epoch; *s moves past it. */
bool dm_avro_json_parse_date(const char **s, int64_t *days);

/* "HH:MM:SS[.frac]" at *s → microseconds of the day; *s moves past it. */
bool dm_avro_json_parse_time(const char **s, int64_t *us);

/* A NUL-terminated ISO-8601 date-time → microseconds since the epoch. */
bool dm_avro_json_parse_timestamp(const char *s, int64_t *us);

/* a / b rounded toward negative infinity. */
int64_t dm_avro_json_floordiv(int64_t a, int64_t b);

/* "[-]digits[.digits]" (NUL-terminated) → unscaled integer at scale. */
bool dm_avro_json_parse_decimal(const char *s, int scale, __int128 *out);

/* v as a decimal's two's complement bytes in arena: shortest for bytes
 * (fixed = 0), sign-extended to fixed bytes otherwise. NULL when out of memory. */
uint8_t *dm_avro_json_decimal_bytes(dm_arena_t *arena, __int128 v, uint32_t fixed, uint32_t *len);

/* The jansson path kept as the oracle of the DOM-free reader (tests and the
 * fuzzer compare the two): parses text into a DOM, then walks it. With
 * reject_duplicates, an object with a key twice is refused (as the new reader
 * does); without it the last value wins (as the old path did). */
dm_err_t dm_avro_from_json_dom(const dm_avro_node_t *node, const char *json, size_t len,
                               dm_avro_json_mode_t mode, bool reject_duplicates, dm_arena_t *arena,
                               dm_avro_value_t *out, dm_error_t *err);

/* The DOM-free reader behind dm_avro_from_json_text for the AVRO and PLAIN
 * modes (schema/json_decode.c). */
dm_err_t dm_avro_json_decode(const dm_avro_node_t *node, const char *json, size_t len,
                             dm_avro_json_mode_t mode, dm_arena_t *arena, dm_avro_value_t *out,
                             dm_error_t *err);

/* Writes d as the shortest decimal that reads back as the same double
 * (single: the same float) into out (at least 32 bytes), with ".0" added
 * when it would read as an integer. Finite values only. Returns the length. */
size_t dm_avro_json_format_double(double d, bool single, char *out);

/* Writes v in decimal into out (at least 21 bytes); returns the length. */
size_t dm_avro_json_format_i64(int64_t v, char *out);

#endif
