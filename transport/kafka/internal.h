/* transport/kafka/internal.h — what the Kafka backend's files share (not a public header).
 *
 * One backend state per open transport:
 *   - an idempotent producer for plain produce; it also serves metadata, watermarks,
 *     offsets-for-times and the admin calls (create, delete);
 *   - one consumer per consumer group that never joins: it reads and commits the group's
 *     offsets (rd_kafka_committed / rd_kafka_commit);
 *   - a pool of transactional producers, one per transactional id. A transaction's id is
 *     derived from the group and the first input partition it commits offsets for, so every
 *     task instance (group, input topic, partition) has its own id wherever it runs: the
 *     instance that starts it later fences the earlier one (a zombie).
 * Fetch batches own their consumer (transport/kafka/fetch.c).
 */
#ifndef DM_TRANSPORT_KAFKA_INTERNAL_H
#define DM_TRANSPORT_KAFKA_INTERNAL_H

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "transport/transport.h"

typedef struct kgroup {
    char *name;
    rd_kafka_t *rk;
    struct kgroup *next;
} kgroup_t;

typedef struct ktxp {
    char *id;
    rd_kafka_t *rk;
    bool busy; /* a transaction runs on it */
    bool anonymous;
    struct ktxp *next;
} ktxp_t;

typedef struct dm_kafka {
    char *brokers;  /* host:port,... (no settings: safe to show) */
    char *settings; /* the URL's ?k=v&k=v librdkafka settings, or NULL */
    rd_kafka_t *rk; /* idempotent producer, metadata and admin */
    pthread_mutex_t mu;
    kgroup_t *groups;
    ktxp_t *txps;
    char instance[48]; /* unique per open: prefix of anonymous transactional ids */
    int anon_next;
    _Atomic uint64_t commits, aborts; /* transactions, for status and tests */
} dm_kafka_t;

/* How long a call waits for the cluster before it reports the broker's last words. */
#define DM_KAFKA_TIMEOUT_MS 30000

/* A new client configuration: brokers, the URL's settings, logging into core/log. */
rd_kafka_conf_t *dm_kafka_conf(const dm_kafka_t *k, dm_error_t *err);

/* Sets one librdkafka setting; on failure fills err naming it. */
dm_err_t dm_kafka_set(rd_kafka_conf_t *conf, const char *name, const char *value, dm_error_t *err);

/* The dm_err_t of a librdkafka error code. */
dm_err_t dm_kafka_code(rd_kafka_resp_err_t code);

/* dm_err_t for a librdkafka error code, and err filled with "what: the broker's words". */
dm_err_t dm_kafka_error(dm_error_t *err, rd_kafka_resp_err_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Queues one record on rk (flags: RD_KAFKA_MSG_F_COPY or 0 when the bytes outlive the
 * delivery), waiting for room when the local queue is full. Headers are copied. */
rd_kafka_resp_err_t dm_kafka_produce_one(rd_kafka_t *rk, const char *topic, int32_t partition,
                                         const dm_record_t *r, int flags, void *opaque);

/* fetch.c */
dm_err_t dm_kafka_fetch(void *state, const char *topic, int32_t partition, int64_t offset,
                        size_t max_bytes, int timeout_ms, dm_transport_batch_t *batch,
                        dm_error_t *err);
void dm_kafka_batch_free(void *state, dm_transport_batch_t *batch);

/* txn.c */
dm_err_t dm_kafka_txn_begin(void *state, void **txn, dm_error_t *err);
dm_err_t dm_kafka_txn_produce(void *state, void *txn, const char *topic, int32_t partition,
                              const dm_record_t *records, size_t n, dm_error_t *err);
dm_err_t dm_kafka_txn_offsets(void *state, void *txn, const char *group,
                              const dm_tp_offset_t *offsets, size_t n, dm_error_t *err);
dm_err_t dm_kafka_txn_commit(void *state, void *txn, dm_error_t *err);
void dm_kafka_txn_abort(void *state, void *txn);
void dm_kafka_txn_pool_free(dm_kafka_t *k);

#endif
