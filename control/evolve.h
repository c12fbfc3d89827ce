/* control/evolve.h — schema evolution of the pipelines reading a source
 * (docs/schema-evolution.md): the reader schema a pipeline keeps under its
 * spec.schema_change policy.
 *
 * A pipeline reads its first source with a reader schema. Under `evolve` it
 * is the source's latest version. Under `freeze` and `fail` it is the version
 * the pipeline started with; under `lenient` the latest version with the
 * fields later versions dropped kept (nullable, default null), so a step or a
 * sink column that names one sees NULL instead of failing. Those readers are
 * kept in the registry under the subject `pipeline.NAME.input`, so they
 * survive restarts and workers find them by id.
 *
 * Threads: pure functions; any thread.
 */
#ifndef DM_CONTROL_EVOLVE_H
#define DM_CONTROL_EVOLVE_H

#include "core/error.h"

/* The subject holding a pipeline's own reader schema: "pipeline.NAME.input". */
void dm_evolve_reader_subject(const char *pipeline, char *out, size_t cap);

/* The lenient reader: latest (an Avro record schema's JSON) with every field
 * of older (the pipeline's previous reader) that latest no longer has added
 * back as nullable with default null, in records nested through fields (a
 * change event's before/after) too. *out (malloc'd) is latest's text itself,
 * re-serialized, when nothing was dropped; *dropped counts the fields added
 * back. Errors name the schema that is not JSON or not a record. */
dm_err_t dm_evolve_lenient_reader(const char *latest, const char *older, char **out, int *dropped,
                                  dm_error_t *err);

#endif
