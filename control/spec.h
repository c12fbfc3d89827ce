/* control/spec.h — the user's contract (DESIGN.md "Specs"): validation of
 * Source, Pipeline, Processor and Sink documents.
 *
 * Validation is strict: unknown keys are errors that list the allowed keys,
 * enumerations list their values, and every message starts with the
 * file:line:column of the offending text and its field path. Connector and sink
 * settings are checked against the connector's declared config table.
 */
#ifndef DM_CONTROL_SPEC_H
#define DM_CONTROL_SPEC_H

#include <jansson.h>
#include <stdbool.h>

#include "control/yaml.h"
#include "core/error.h"
#include "schema/dm_avro.h"

typedef enum {
    DM_KIND_SOURCE = 0,
    DM_KIND_PIPELINE = 1,
    DM_KIND_PROCESSOR = 2,
    DM_KIND_SINK = 3,
    DM_KIND_COUNT
} dm_kind_t;

/* "Source", "Pipeline", … */
const char *dm_kind_name(dm_kind_t kind);

/* "sources", "pipelines", … as in /api/v1/<plural>. */
const char *dm_kind_plural(dm_kind_t kind);

/* Accepts "Source", "source", "sources" (any case); -1 when none. */
int dm_kind_parse(const char *text);

typedef struct dm_spec {
    dm_kind_t kind;
    const char *name; /* points into doc */
    json_t *doc;      /* the whole document {kind, metadata, spec}; owned */
} dm_spec_t;

/* Validates one loaded document. On success out holds a new reference to the
 * document. Errors name file:line:col and the field path. */
dm_err_t dm_spec_validate(const dm_spec_doc_t *doc, dm_spec_t *out, dm_error_t *err);

/* Releases out->doc. */
void dm_spec_clear(dm_spec_t *spec);

/* A Pipeline document (new reference, read-only: the document itself when it
 * holds no SQL, else a copy) whose spec.sql and sql steps are replaced by the
 * from and steps they compile to (by syntax alone: what is read and in which
 * steps, not the columns); a query that does not parse is left as it is
 * (validation names its error). */
json_t *dm_spec_pipeline_expand(const json_t *pipeline_doc);

/* The names of the sources a pipeline reads (spec.from), as a new JSON array. */
json_t *dm_spec_pipeline_inputs(const json_t *pipeline_doc);

/* metadata.name of a stored document (NULL when it has none). */
const char *dm_spec_name(const json_t *doc);

/* The names of the sources a pipeline publishes (to[].source), new JSON array. */
json_t *dm_spec_pipeline_outputs(const json_t *pipeline_doc);

/* Whether two documents say the same, their "status" (what the store adds)
 * aside. */
bool dm_spec_doc_equal(const json_t *a, const json_t *b);

/* Every source a pipeline reads: its inputs plus the sources its enrich and
 * join steps look up, each once (new JSON array of strings). */
json_t *dm_spec_pipeline_reads(const json_t *pipeline_doc);

/* A pipeline's spec.state.spill in bytes (0 when absent). DM_ERR_CONFIG_TYPE
 * when it is not a size, DM_ERR_CONFIG_RANGE outside 64KiB..1TiB. */
dm_err_t dm_spec_state_spill(const json_t *state, int64_t *bytes);

/* True when name is a valid object name: 1–63 characters of a-z, 0-9, '-',
 * '_' and '.', starting and ending with a letter or digit. */
int dm_spec_name_valid(const char *name);

/* Parses a source's schema (spec.schema, a JSON value) with the full Avro
 * parser. On success *out holds it (free with dm_avro_schema_free). On
 * DM_ERR_SCHEMA_PARSE avro_path (cap bytes, may be 0) receives the Avro path
 * the parser's message names ("$.fields[1].default", "" when none) and err
 * the parser's message. */
dm_err_t dm_spec_schema_parse(const json_t *schema, dm_avro_schema_t **out, char *avro_path,
                              size_t cap, dm_error_t *err);

#endif
