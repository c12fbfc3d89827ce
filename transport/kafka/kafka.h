/* transport/kafka/kafka.h — what only the Kafka backend offers, beyond transport.h.
 *
 * The backend itself is dm_transport_kafka, opened by dm_transport_open("kafka://…").
 * Here: transaction counts (status, tests) and group membership — how `datamesh worker`
 * processes share the partitions of a task through a Kafka consumer group.
 *
 *   dm_kafka_member_t *m;
 *   dm_kafka_member_new(t, "pipeline.us-plays", "plays", &m, &err);   // joins the group
 *   for (;;) {
 *       dm_kafka_member_poll(m, 200, on_change, ctx);  // on_change(ctx, +1/-1, partition)
 *   }
 *   dm_kafka_member_free(m);   // leaves: the others take its partitions over
 */
#ifndef DM_TRANSPORT_KAFKA_KAFKA_H
#define DM_TRANSPORT_KAFKA_KAFKA_H

#include <stdint.h>

#include "core/error.h"
#include "transport/transport.h"

/* Transactions committed and aborted through t since it opened (0 for other backends). */
void dm_kafka_txn_counts(const dm_transport_t *t, uint64_t *commits, uint64_t *aborts);

/* A member of a consumer group on one topic, with the cooperative-sticky assignor: when a
 * member joins or leaves, only the partitions that move are revoked and assigned. The
 * member itself reads nothing (its partitions are paused): the tasks it starts read them. */
typedef struct dm_kafka_member dm_kafka_member_t;

/* Called from dm_kafka_member_poll: change +1 when partition was assigned to this member,
 * -1 when it is taken away (the callback must stop its task for it before returning: the
 * new owner starts from the committed offsets). */
typedef void (*dm_kafka_member_fn)(void *ctx, int change, int32_t partition);

/* Joins group on topic through t's cluster. DM_ERR_TRANSPORT_BACKEND when t is not Kafka. */
dm_err_t dm_kafka_member_new(dm_transport_t *t, const char *group, const char *topic,
                             dm_kafka_member_t **out, dm_error_t *err);

/* Serves the group protocol for up to timeout_ms, calling fn for assignment changes.
 * A non-zero return is a fatal group error (in err). */
dm_err_t dm_kafka_member_poll(dm_kafka_member_t *m, int timeout_ms, dm_kafka_member_fn fn,
                              void *ctx, dm_error_t *err);

/* Leaves the group (revoking through fn, may be NULL) and frees m. */
void dm_kafka_member_free(dm_kafka_member_t *m, dm_kafka_member_fn fn, void *ctx);

#endif
