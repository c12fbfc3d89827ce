/* connectors/emit.h — what every source connector does with the records it
 * makes: encode key and value in the Confluent wire format, spread them over
 * the topic's partitions by key, and commit them in one transaction together
 * with the connector's position (so a restart resumes exactly after the last
 * committed record). Records the source cannot turn into its schema go to a
 * dead-letter topic in the same transaction, with the reason and where they
 * came from in headers. */
#ifndef DM_CONNECTORS_EMIT_H
#define DM_CONNECTORS_EMIT_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/error.h"
#include "schema/dm_avro.h"
#include "transport/transport.h"
#include "transport/txn_builder.h"

/* Header names on a source's dead letters (beside the engine's dm.error.reason). */
#define DM_DLQ_SOURCE "dm.source.position" /* "path:line" or "path#record" */

typedef struct dm_emit {
    dm_transport_t *t;
    const char *topic;
    int32_t partitions;
    const dm_avro_schema_t *schema; /* value schema */
    uint32_t schema_id;
    const dm_avro_schema_t *key_schema; /* record of the key fields, or NULL */
    uint32_t key_schema_id;
    const char *dead_letter_topic; /* NULL: a record that fails is an error */
    /* pending records, private */
    dm_buf_t bytes;
    size_t n, cap, n_dead, cap_dead;
    size_t *start;        /* per record: key start, value start, end */
    const uint8_t **lent; /* per record: its value when borrowed (end - start bytes), else NULL */
    int64_t *ts;
    size_t *dead; /* per dead letter: payload start, end, reason start, where start, end */
    uint64_t round_robin;
    dm_txn_builder_t txn;          /* the commit's transaction, memory reused */
    dm_record_header_t *dead_hdrs; /* two per dead letter, cap_dead of them */
} dm_emit_t;

/* Sets up e with the fields above filled by the caller (bytes, lists and the
 * transaction builder are initialised here; e->t must be set). */
void dm_emit_init(dm_emit_t *e);

/* Adds one record (v conforms to e->schema); ts in ms since the epoch, 0 = now. */
dm_err_t dm_emit_add(dm_emit_t *e, const dm_avro_value_t *v, int64_t ts, dm_error_t *err);

/* Adds one record whose value is already encoded: framed (len bytes) is a
 * Confluent-framed value of e->schema under e->schema_id, written as it is
 * and borrowed, not copied: it must stay valid until commit or clear.
 * v is the same value decoded, needed only for the key (NULL when e has no
 * key schema); ts as dm_emit_add, except that 0 is not replaced by now (a
 * caller adding many records reads the clock once). */
dm_err_t dm_emit_add_encoded(dm_emit_t *e, const dm_avro_value_t *v, const void *framed, size_t len,
                             int64_t ts, dm_error_t *err);

/* Adds a dead letter: the raw input, the reason and where it came from.
 * DM_ERR_INVALID when e has no dead-letter topic. */
dm_err_t dm_emit_dead(dm_emit_t *e, const void *raw, size_t len, const char *reason,
                      const char *where, dm_error_t *err);

/* Records and dead letters pending. */
size_t dm_emit_pending(const dm_emit_t *e);

/* Writes everything pending and (when group is not NULL) the position as the
 * group's offset of partition 0 of e->topic, in one transaction. On success
 * the pending list is empty; on failure nothing was written and the records
 * stay pending, so the caller can retry. */
dm_err_t dm_emit_commit(dm_emit_t *e, const char *group, int64_t position, dm_error_t *err);

/* Drops what is pending. */
void dm_emit_clear(dm_emit_t *e);

/* Releases what e holds (pending records are dropped); e may be set up again. */
void dm_emit_free(dm_emit_t *e);

#endif
