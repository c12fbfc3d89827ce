/* control/audit.h — the audit log in an internal topic.
 *
 * Every entry the access guard writes (control/auth.c: mutations, refusals,
 * reads of sensitive records) is one record of the topic _datamesh.audit on
 * the controller's transport (the embedded log, or Kafka): key the token id,
 * value the entry as JSON, timestamp when it happened. The topic keeps 90 days
 * and at most 1 GiB (retention by time and size: an audit log is kept, not
 * compacted — every entry counts). Queries read it from the first entry at or
 * after `since` (the transport's offset for that time) and keep the newest
 * matches. Entries a controller kept in its store before (the `audit` table of
 * controller.db) move into the topic when it is first made.
 *
 * Threads: any; appends and queries serialize on the handle.
 */
#ifndef DM_CONTROL_AUDIT_H
#define DM_CONTROL_AUDIT_H

#include <jansson.h>

#include "control/store.h"
#include "core/error.h"
#include "transport/transport.h"

#define DM_AUDIT_TOPIC "_datamesh.audit"

typedef struct dm_audit dm_audit_t;

/* Opens the audit topic on t (made when missing; the store's entries move
 * into a new one, store may be NULL). t and store must outlive the handle.
 * Errors name the topic and what failed (a Kafka cluster that refuses to
 * create topics, for instance). */
dm_err_t dm_audit_open(dm_transport_t *t, dm_store_t *store, dm_audit_t **out, dm_error_t *err);

/* Moves the entries store holds (oldest first) into the topic, then deletes
 * them from the store. */
dm_err_t dm_audit_move_from_store(dm_audit_t *a, dm_store_t *store, dm_error_t *err);

/* Appends one entry (durable within the topic's flush interval). */
dm_err_t dm_audit_add(dm_audit_t *a, const dm_store_audit_t *e, dm_error_t *err);

/* The newest entries matching f, oldest first, as dm_store_audit_query gives
 * them ({seq, at_ms, token, …}; seq is the record's offset). */
dm_err_t dm_audit_query(dm_audit_t *a, const dm_store_audit_filter_t *f, json_t **out,
                        dm_error_t *err);

void dm_audit_free(dm_audit_t *a);

#endif
