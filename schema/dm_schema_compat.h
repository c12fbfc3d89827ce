/* schema/dm_schema_compat.h — schema compatibility checks with Confluent
 * Schema Registry's meaning.
 *
 *   BACKWARD   the new schema can read data written with the latest old one
 *   FORWARD    the latest old schema can read data written with the new one
 *   FULL       both
 *   *_TRANSITIVE  the same against every old schema, not only the latest
 *   NONE       no check
 *
 * "Can read" follows the spec's Schema Resolution rules, strictly: every
 * writer union branch and enum symbol must be readable (or the reader enum
 * must have a default), as Avro's Java SchemaCompatibility judges it.
 */
#ifndef DM_SCHEMA_DM_SCHEMA_COMPAT_H
#define DM_SCHEMA_DM_SCHEMA_COMPAT_H

#include "schema/dm_avro.h"

typedef enum dm_schema_compat_level {
    DM_COMPAT_NONE = 0,
    DM_COMPAT_BACKWARD,
    DM_COMPAT_BACKWARD_TRANSITIVE,
    DM_COMPAT_FORWARD,
    DM_COMPAT_FORWARD_TRANSITIVE,
    DM_COMPAT_FULL,
    DM_COMPAT_FULL_TRANSITIVE,
} dm_schema_compat_level_t;

/* One line per incompatibility: "<direction>: <field path>: <reason>". */
typedef struct dm_schema_compat_report {
    char **messages;
    size_t n;
} dm_schema_compat_report_t;

/* "BACKWARD", ...; never NULL. */
const char *dm_schema_compat_level_name(dm_schema_compat_level_t level);

/* Parses a level name (case-insensitive); DM_ERR_INVALID if unknown. */
dm_err_t dm_schema_compat_level_parse(const char *name, dm_schema_compat_level_t *out);

/* Adds to report (may be NULL) every reason reader cannot read data written
 * with writer. Returns true when it can. */
bool dm_schema_can_read(const dm_avro_node_t *reader, const dm_avro_node_t *writer,
                        dm_schema_compat_report_t *report, const char *prefix);

/* Checks newer against olders (newest first) at level. DM_OK when compatible,
 * DM_ERR_SCHEMA_INCOMPATIBLE when not, with the reasons in report (may be NULL;
 * release with dm_schema_compat_report_free). */
dm_err_t dm_schema_compat_check(dm_schema_compat_level_t level, const dm_avro_schema_t *newer,
                                const dm_avro_schema_t *const *olders, size_t n_olders,
                                dm_schema_compat_report_t *report);

/* Frees the messages of a report and empties it. */
void dm_schema_compat_report_free(dm_schema_compat_report_t *report);

#endif
