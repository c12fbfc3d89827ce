/* control/reconcile.h — applying specs: desired state against stored state.
 *
 * dm_reconcile_apply validates every document first and checks references
 * across them and the store (a pipeline's inputs exist, a named sink exists,
 * a derived source has one publisher and does not shadow a connector source);
 * then, unless dry_run, it stores all of them in one transaction: all or
 * nothing. Applying the same documents again changes nothing ("unchanged").
 */
#ifndef DM_CONTROL_RECONCILE_H
#define DM_CONTROL_RECONCILE_H

#include <jansson.h>
#include <stdbool.h>

#include "control/spec.h"
#include "control/store.h"

/* Plans and (unless dry_run) applies specs. *plan receives a new JSON array of
 * {action: create|update|unchanged, kind, name[, detail]}. On error nothing
 * is applied and err says which object and why. */
dm_err_t dm_reconcile_apply(dm_store_t *store, const dm_spec_t *specs, size_t n, bool dry_run,
                            json_t **plan, dm_error_t *err);

/* Deletes an object. A source that pipelines read, or a sink they write to, is
 * refused with their names (DM_ERR_EXISTS); a derived source is deleted by
 * deleting the pipeline that publishes it (DM_ERR_INVALID). */
dm_err_t dm_reconcile_delete(dm_store_t *store, dm_kind_t kind, const char *name, dm_error_t *err);

/* The catalog of sources: declared ones from the store plus the ones
 * pipelines publish (derived), each with producers and consumers. New array. */
dm_err_t dm_catalog_sources(dm_store_t *store, json_t **out, dm_error_t *err);

/* The catalog kept between changes: dm_catalog_update gives what
 * dm_catalog_sources would (the same array, entry for entry) but builds only
 * the entries whose source document, publishing pipeline or consumers changed
 * since the last update (replaying dm_store_changed_since onto the last
 * answer; scanning every document, reusing unchanged entries, when the store
 * no longer remembers); the others are shared with the previous answer.
 * Entries are never changed after they are given out. One caller at a time. */
typedef struct dm_catalog dm_catalog_t;
dm_catalog_t *dm_catalog_new(void);
void dm_catalog_free(dm_catalog_t *c);
/* The current catalog of store (new array), reusing what c kept; c then keeps
 * this one. How many entries were built (not reused) in *built when not NULL. */
dm_err_t dm_catalog_update(dm_catalog_t *c, dm_store_t *store, json_t **out, size_t *built,
                           dm_error_t *err);

/* One source of the catalog (declared or derived), with its producers and
 * consumers, without building the whole catalog. */
dm_err_t dm_catalog_source(dm_store_t *store, const char *name, json_t **out, dm_error_t *err);

/* Sources whose name, description, owner, labels or schema field names
 * contain q (case-insensitive). New array. */
dm_err_t dm_catalog_search(dm_store_t *store, const char *q, json_t **out, dm_error_t *err);

/* The sources of catalog all (an array from dm_catalog_sources) that match q
 * as dm_catalog_search does, as a new array sharing all's entries. */
json_t *dm_catalog_match(const json_t *all, const char *q);

#endif
