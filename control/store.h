/* control/store.h — the controller's state in SQLite (data directory's
 * controller.db): every applied object with its generation and timestamps.
 *
 * Thread-safe: one connection guarded by a mutex; a transaction (begin …
 * commit/rollback) holds the mutex, so calls between them come from one thread.
 */
#ifndef DM_CONTROL_STORE_H
#define DM_CONTROL_STORE_H

#include <jansson.h>

#include "control/spec.h"
#include "core/error.h"

typedef struct dm_store dm_store_t;

/* Opens (creating when missing) the database at path. A database that is not a
 * datamesh store, or is corrupt, is an error naming the file; it is never reset. */
dm_store_t *dm_store_open(const char *path, dm_error_t *err);

void dm_store_close(dm_store_t *s);

/* Transactions: begin locks the store for the calling thread until commit or
 * rollback. */
dm_err_t dm_store_begin(dm_store_t *s, dm_error_t *err);
dm_err_t dm_store_commit(dm_store_t *s, dm_error_t *err);
void dm_store_rollback(dm_store_t *s);

/* The stored object {kind, metadata, spec, status: {generation, created_ms,
 * updated_ms}} as a new reference in *out, or DM_ERR_NOT_FOUND. Call inside a
 * transaction or alone (then it locks for itself). */
dm_err_t dm_store_get(dm_store_t *s, dm_kind_t kind, const char *name, json_t **out,
                      dm_error_t *err);

/* Every object of a kind, ordered by name, as a new JSON array. */
dm_err_t dm_store_list(dm_store_t *s, dm_kind_t kind, json_t **out, dm_error_t *err);

/* Every object of a kind as a new JSON object name → document (status
 * included). The documents are shared with the store's cache and must not be
 * changed; they stay as they are when the store later replaces or deletes the
 * object. Cheaper than dm_store_list: no copy per object. */
dm_err_t dm_store_docs(dm_store_t *s, dm_kind_t kind, json_t **out, dm_error_t *err);

/* The names of the pipelines that read (role "reads") or publish (role
 * "publishes"; NULL: either) source, ordered, as a new JSON array of strings.
 * An index lookup: it does not parse any document. */
dm_err_t dm_store_edge_pipelines(dm_store_t *s, const char *source, const char *role, json_t **out,
                                 dm_error_t *err);

/* Inserts or replaces an object (its document: kind, metadata, spec); bumps the
 * generation on replace. Inside a transaction. */
dm_err_t dm_store_put(dm_store_t *s, dm_kind_t kind, const char *name, const json_t *doc,
                      dm_error_t *err);

/* Removes an object; DM_ERR_NOT_FOUND when absent. Inside a transaction. */
dm_err_t dm_store_delete(dm_store_t *s, dm_kind_t kind, const char *name, dm_error_t *err);

#endif
