/* engine/schema_out.h — building the output schemas processors derive. */
#ifndef DM_ENGINE_SCHEMA_OUT_H
#define DM_ENGINE_SCHEMA_OUT_H

#include <jansson.h>

#include "engine/expr.h"
#include "schema/dm_avro.h"

/* The JSON of an Avro type, with logical types and named types defined at
 * their first appearance (seen: an object of full names already defined; pass
 * the same one for one schema document). New reference. */
json_t *dm_schema_type_json(const dm_avro_node_t *n, json_t *seen);

/* The Avro type of an expression result ("long", {"type": "long",
 * "logicalType": "timestamp-millis"}, …); nullable wraps it as ["null", T]. */
json_t *dm_schema_expr_type_json(dm_expr_type_t t, bool nullable);

/* Parses a schema document built as JSON. Errors name what (the processor) and
 * the parser's reason. */
dm_err_t dm_schema_from_json(const json_t *doc, const char *what, dm_avro_schema_t **out,
                             dm_error_t *err);

#endif
