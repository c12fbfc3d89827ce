/* schema/internal.h — helpers shared by the files of schema/ (not public). */
#ifndef DM_SCHEMA_INTERNAL_H
#define DM_SCHEMA_INTERNAL_H

#include <jansson.h>

#include "schema/dm_avro.h"

/* Converts a parsed JSON value to a value of node (see dm_avro_from_json_text).
 * path is the JSON path of j for error messages. */
dm_err_t dm_avro_from_json_value(const dm_avro_node_t *node, const json_t *j,
                                 dm_avro_json_mode_t mode, dm_arena_t *arena, dm_avro_value_t *out,
                                 const char *path, dm_error_t *err);

/* True when a writer of type w can be read as r by promotion or identity
 * (primitive types only). */
bool dm_avro_promotable(dm_avro_type_t w, dm_avro_type_t r);

/* True when two named types match for resolution: same unqualified name or
 * fullname, or r lists w's full name among its aliases. */
bool dm_avro_names_match(const dm_avro_node_t *w, const dm_avro_node_t *r);

#endif
