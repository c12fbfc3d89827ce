/* schema/dm_schema_registry.h — the schema registry's store, in SQLite.
 *
 * Subjects hold versions 1, 2, ... of schemas; every distinct schema (by
 * Parsing Canonical Form) gets one global id, shared by every subject and
 * version that registers it, and stable for the life of the database. Each
 * registration is checked against the subject's live versions at the
 * subject's compatibility level (falling back to the global level, BACKWARD
 * by default), as Confluent Schema Registry does. Deletes are soft (the
 * version stays, hidden from reads and compatibility checks) or, after a soft
 * delete, hard (the version is gone; its id keeps resolving while any version
 * or the schemas table still holds it).
 *
 * Threads: one registry handle per thread (SQLite serializes writers across
 * handles on the same file). Strings returned are malloc'd; the caller frees
 * them.
 */
#ifndef DM_SCHEMA_DM_SCHEMA_REGISTRY_H
#define DM_SCHEMA_DM_SCHEMA_REGISTRY_H

#include <jansson.h>
#include <stdint.h>

#include "schema/dm_schema_compat.h"

typedef struct dm_schema_registry dm_schema_registry_t;

/* Opens (creating if needed) the registry database at path (":memory:" for a
 * private in-memory one). DM_ERR_IO when SQLite cannot open or migrate it. */
dm_err_t dm_schema_registry_open(const char *path, dm_schema_registry_t **out, dm_error_t *err);

/* Closes the database. NULL is allowed. */
void dm_schema_registry_close(dm_schema_registry_t *r);

/* Registers schema_json under subject. When the subject already has a live
 * version with the same canonical form, returns it and changes nothing.
 * Otherwise checks compatibility (DM_ERR_SCHEMA_INCOMPATIBLE with the reasons
 * in report, which may be NULL) and adds the next version. id and version
 * (either may be NULL) receive the result. DM_ERR_SCHEMA_PARSE for a bad
 * schema. */
dm_err_t dm_schema_registry_register(dm_schema_registry_t *r, const char *subject,
                                     const char *schema_json, int64_t *id, int *version,
                                     dm_schema_compat_report_t *report, dm_error_t *err);

/* Checks schema_json against subject's live versions at its level without
 * registering it. DM_OK when compatible. */
dm_err_t dm_schema_registry_check(dm_schema_registry_t *r, const char *subject,
                                  const char *schema_json, dm_schema_compat_report_t *report,
                                  dm_error_t *err);

/* The schema text for a global id (*schema malloc'd). DM_ERR_NOT_FOUND. */
dm_err_t dm_schema_registry_get_by_id(dm_schema_registry_t *r, int64_t id, char **schema,
                                      dm_error_t *err);

/* Every subject's latest (not deleted) schema id, as a new JSON object
 * subject → id: one query for many subjects (lineage checks thousands). */
dm_err_t dm_schema_registry_latest_ids(dm_schema_registry_t *r, json_t **out, dm_error_t *err);

/* A live version of subject (version -1 = latest): its id, number and text
 * (any output may be NULL; *schema malloc'd). DM_ERR_NOT_FOUND. */
dm_err_t dm_schema_registry_get_version(dm_schema_registry_t *r, const char *subject, int version,
                                        int64_t *id, int *version_out, char **schema,
                                        dm_error_t *err);

/* The live version of subject whose schema has schema_json's canonical form.
 * DM_ERR_NOT_FOUND when none. */
dm_err_t dm_schema_registry_lookup(dm_schema_registry_t *r, const char *subject,
                                   const char *schema_json, int64_t *id, int *version,
                                   dm_error_t *err);

/* Subjects with at least one version (live ones only unless include_deleted),
 * sorted. *subjects is a malloc'd array of malloc'd strings; free with
 * dm_schema_registry_free_list. */
dm_err_t dm_schema_registry_subjects(dm_schema_registry_t *r, bool include_deleted,
                                     char ***subjects, size_t *n, dm_error_t *err);

/* Frees a list from dm_schema_registry_subjects. */
void dm_schema_registry_free_list(char **list, size_t n);

/* Version numbers of subject, ascending (*versions malloc'd). DM_ERR_NOT_FOUND
 * when the subject has none. */
dm_err_t dm_schema_registry_versions(dm_schema_registry_t *r, const char *subject,
                                     bool include_deleted, int **versions, size_t *n,
                                     dm_error_t *err);

/* Deletes one version (-1 = latest live). Soft unless permanent; a permanent
 * delete needs a soft delete first (DM_ERR_INVALID otherwise). */
dm_err_t dm_schema_registry_delete_version(dm_schema_registry_t *r, const char *subject,
                                           int version, bool permanent, dm_error_t *err);

/* Deletes every version of subject (soft, or permanent after a soft delete);
 * *count (may be NULL) gets how many versions were affected. */
dm_err_t dm_schema_registry_delete_subject(dm_schema_registry_t *r, const char *subject,
                                           bool permanent, size_t *count, dm_error_t *err);

/* Sets the compatibility level of subject, or the global one when subject is
 * NULL. */
dm_err_t dm_schema_registry_set_level(dm_schema_registry_t *r, const char *subject,
                                      dm_schema_compat_level_t level, dm_error_t *err);

/* The level in force for subject (its own, else the global one, else
 * BACKWARD); subject NULL asks for the global level. */
dm_err_t dm_schema_registry_get_level(dm_schema_registry_t *r, const char *subject,
                                      dm_schema_compat_level_t *level, dm_error_t *err);

/* A number that changes whenever the database changes, through this handle
 * or any other (a cheap "has anything changed" for caches). Any thread. */
uint64_t dm_schema_registry_changes(dm_schema_registry_t *r);

#endif
