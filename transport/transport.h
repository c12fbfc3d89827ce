/* transport/transport.h — the topic interface the engine and connectors use, independent
 * of the backend: the embedded log (transport/embedded.c) on one machine, Kafka later.
 *
 * Kafka-shaped on purpose: topics with partitions, records {key, value, timestamp,
 * headers} with offsets per partition, fetches from an offset (or the offset of a
 * timestamp), consumer groups with committed offsets, and transactions that commit output
 * records on several partitions together with a group's input offsets — the exactly-once
 * primitive (Kafka: a transactional producer with sendOffsetsToTransaction; the embedded
 * log: one journal record per commit).
 *
 *   dm_transport_t *t;
 *   dm_transport_open("embedded:/var/lib/datamesh", &t, &err);
 *   dm_transport_create_topic(t, &(dm_topic_config_t){.name = "plays", .partitions = 4}, &err);
 *   dm_transport_batch_t b = {0};
 *   dm_transport_fetch(t, "plays", 0, offset, 1 << 20, 100, &b, &err);  // waits <= 100 ms
 *   for (size_t i = 0; i < b.n; i++) use(&b.records[i]);              // no copies
 *   dm_transport_txn_t *x;
 *   dm_transport_txn_begin(t, &x, &err);
 *   dm_transport_txn_produce(x, "out", -1, recs, n, &err);
 *   dm_transport_txn_offsets(x, "task-1", &(dm_tp_offset_t){"plays", 0, b.next_offset}, 1, &err);
 *   dm_transport_txn_commit(x, &err);                                  // all or nothing
 *   dm_transport_batch_free(t, &b);
 *
 * Sources, tasks and connectors do not call the txn_* functions themselves: they group
 * records by (topic, partition) and commit them with their offsets through one builder,
 * transport/txn_builder.h.
 *
 * Threads: a transport is shared by all threads; a batch and a transaction belong to one
 * thread at a time.
 */
#ifndef DM_TRANSPORT_TRANSPORT_H
#define DM_TRANSPORT_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "log/batch.h"

/* A record. Produce: the caller owns what it points to. Fetch: it points into the batch's
 * buffers, valid until the next fetch into that batch or dm_transport_batch_free. */
typedef dm_log_record_t dm_record_t;
typedef dm_log_header_t dm_record_header_t;

typedef enum {
    DM_TRANSPORT_FSYNC_INTERVAL = 0, /* durable within flush_ms (the default) */
    DM_TRANSPORT_FSYNC_ALWAYS = 1,   /* durable before produce/commit returns */
    DM_TRANSPORT_FSYNC_NEVER = 2,    /* left to the OS */
} dm_transport_fsync_t;

typedef enum {
    DM_TRANSPORT_COMPRESSION_NONE = 0,
    DM_TRANSPORT_COMPRESSION_ZSTD = 1,
    DM_TRANSPORT_COMPRESSION_LZ4 = 2,
} dm_transport_compression_t;

/* Settings of a topic; zero values mean the backend's defaults (embedded: 1 partition,
 * keep forever, interval fsync every 1 s, no compression). */
typedef struct dm_topic_config {
    const char *name;
    int32_t partitions;
    int64_t retention_ms;        /* -1 or 0 = forever */
    int64_t retention_bytes;     /* per partition; -1 or 0 = unlimited */
    bool compact;                /* keep the latest record per key */
    int64_t delete_retention_ms; /* how long tombstones survive compaction */
    dm_transport_fsync_t fsync;
    int64_t flush_ms;
    int64_t segment_bytes;
    dm_transport_compression_t compression;
    const char *schema_subject; /* the Avro subject of the topic's records (may be NULL) */
    int32_t replication;        /* copies of each partition (Kafka); 0 = the cluster's default */
    /* true: create may return before the topic's definition is durable, which
     * dm_transport_sync_topics then makes it (many topics, one fsync). */
    bool defer_durable;
} dm_topic_config_t;

typedef struct dm_partition_description {
    int32_t partition;
    int64_t start_offset; /* first offset still stored */
    int64_t end_offset;   /* last stable offset: one past the last committed record */
    int64_t size_bytes;
} dm_partition_description_t;

/* What describe returns; free with dm_transport_description_free. */
typedef struct dm_topic_description {
    dm_topic_config_t config; /* strings owned by the description */
    dm_partition_description_t *partitions;
    int32_t n_partitions;
} dm_topic_description_t;

/* A fetched batch, reused across fetches (initialize with {0}). */
typedef struct dm_transport_batch {
    const dm_record_t *records;
    size_t n;
    int64_t next_offset;    /* where the next fetch continues */
    int64_t high_watermark; /* end offset of the partition when fetched */
    void *impl;             /* the backend's buffers */
} dm_transport_batch_t;

/* A group offset: the next offset the group will consume on topic/partition. */
typedef struct dm_tp_offset {
    const char *topic;
    int32_t partition;
    int64_t offset;
} dm_tp_offset_t;

/* A wake-up for an idle reader: called once, from whatever thread made the
 * records visible and without transport locks held. */
typedef void (*dm_transport_wake_fn)(void *ctx, uint64_t id);

/* A backend: one const struct of callbacks (STYLE.md habit 4). state is what open made;
 * txn what txn_begin made. Semantics are those of the dm_transport_* functions below. */
typedef struct dm_transport_ops {
    const char *name;   /* "embedded" */
    const char *scheme; /* URL scheme it serves: "embedded" */
    dm_err_t (*open)(const char *location, void **state, dm_error_t *err);
    void (*close)(void *state);
    dm_err_t (*create_topic)(void *state, const dm_topic_config_t *conf, dm_error_t *err);
    dm_err_t (*describe_topic)(void *state, const char *topic, dm_topic_description_t *out,
                               dm_error_t *err);
    dm_err_t (*delete_topic)(void *state, const char *topic, dm_error_t *err);
    dm_err_t (*list_topics)(void *state, int (*fn)(void *ctx, const char *topic), void *ctx,
                            dm_error_t *err);
    dm_err_t (*produce)(void *state, const char *topic, int32_t partition,
                        const dm_record_t *records, size_t n, int64_t *base_offset,
                        dm_error_t *err);
    dm_err_t (*fetch)(void *state, const char *topic, int32_t partition, int64_t offset,
                      size_t max_bytes, int timeout_ms, dm_transport_batch_t *batch,
                      dm_error_t *err);
    void (*batch_free)(void *state, dm_transport_batch_t *batch);
    dm_err_t (*offsets)(void *state, const char *topic, int32_t partition, int64_t *start,
                        int64_t *end, dm_error_t *err);
    dm_err_t (*offset_for_time)(void *state, const char *topic, int32_t partition, int64_t ts_ms,
                                int64_t *offset, dm_error_t *err);
    dm_err_t (*group_commit)(void *state, const char *group, const dm_tp_offset_t *offsets,
                             size_t n, dm_error_t *err);
    dm_err_t (*group_offset)(void *state, const char *group, const char *topic, int32_t partition,
                             int64_t *offset, dm_error_t *err);
    dm_err_t (*txn_begin)(void *state, void **txn, dm_error_t *err);
    dm_err_t (*txn_produce)(void *state, void *txn, const char *topic, int32_t partition,
                            const dm_record_t *records, size_t n, dm_error_t *err);
    dm_err_t (*txn_offsets)(void *state, void *txn, const char *group,
                            const dm_tp_offset_t *offsets, size_t n, dm_error_t *err);
    dm_err_t (*txn_commit)(void *state, void *txn, dm_error_t *err); /* frees txn */
    void (*txn_abort)(void *state, void *txn);                       /* frees txn */
    /* optional (NULL: readers poll) */
    dm_err_t (*watch)(void *state, const char *topic, int32_t partition, int64_t offset,
                      dm_transport_wake_fn fn, void *ctx, uint64_t id, bool *ready,
                      dm_error_t *err);
    void (*unwatch)(void *state, const char *topic, int32_t partition, dm_transport_wake_fn fn,
                    void *ctx, uint64_t id);
    /* optional (NULL: every create is durable when it returns) */
    dm_err_t (*sync_topics)(void *state, dm_error_t *err);
} dm_transport_ops_t;

typedef struct dm_transport dm_transport_t;
typedef struct dm_transport_txn dm_transport_txn_t;

/* The embedded-log backend. */
extern const dm_transport_ops_t dm_transport_embedded;

/* The Kafka backend (transport/kafka/, librdkafka): "kafka://host:port[,host:port…]". */
extern const dm_transport_ops_t dm_transport_kafka;

/* Opens a transport from a URL: "embedded:DIR" (or a plain directory path) for the embedded
 * log in DIR, "kafka://host:port[,host:port…][?setting=value&…]" for a Kafka cluster (the
 * settings are librdkafka's). DM_ERR_TRANSPORT_BACKEND for schemes no backend serves. Free
 * with dm_transport_close. */
dm_err_t dm_transport_open(const char *url, dm_transport_t **out, dm_error_t *err);

/* Closes the backend (flushing what it must) and frees t. No call may run concurrently, and
 * every batch must have been released with dm_transport_batch_free before (the embedded
 * backend's batches point into the log's segment mappings). */
void dm_transport_close(dm_transport_t *t);

/* Name of the backend ("embedded", "kafka"). */
const char *dm_transport_backend(const dm_transport_t *t);

/* The backend's own state (what its open made): for backend-specific calls such as the
 * Kafka group membership of workers (transport/kafka/kafka.h). */
void *dm_transport_state(const dm_transport_t *t);

/* Creates a topic. DM_ERR_LOG_TOPIC_EXISTS / DM_ERR_LOG_BAD_NAME from the embedded log. */
dm_err_t dm_transport_create_topic(dm_transport_t *t, const dm_topic_config_t *conf,
                                   dm_error_t *err);

/* Makes the topics created with defer_durable so far durable (a crash after
 * this returns keeps them). */
dm_err_t dm_transport_sync_topics(dm_transport_t *t, dm_error_t *err);

/* Describes a topic; free out with dm_transport_description_free. */
dm_err_t dm_transport_describe_topic(dm_transport_t *t, const char *topic,
                                     dm_topic_description_t *out, dm_error_t *err);
void dm_transport_description_free(dm_topic_description_t *d);

/* Deletes a topic and its data. */
dm_err_t dm_transport_delete_topic(dm_transport_t *t, const char *topic, dm_error_t *err);

/* Calls fn with each topic name; stops when fn returns non-zero. */
dm_err_t dm_transport_list_topics(dm_transport_t *t, int (*fn)(void *ctx, const char *topic),
                                  void *ctx, dm_error_t *err);

/* Appends records as one batch (partition -1: by hash of the first record's key) and
 * commits it; *base_offset (may be NULL) gets the first offset. */
dm_err_t dm_transport_produce(dm_transport_t *t, const char *topic, int32_t partition,
                              const dm_record_t *records, size_t n, int64_t *base_offset,
                              dm_error_t *err);

/* Fetches committed records from offset, about max_bytes; when there are none yet waits up
 * to timeout_ms (-1 forever, 0 not at all) for a commit, returning batch->n == 0 on timeout.
 * The batch is reused: records stay valid until the next fetch into it. */
dm_err_t dm_transport_fetch(dm_transport_t *t, const char *topic, int32_t partition, int64_t offset,
                            size_t max_bytes, int timeout_ms, dm_transport_batch_t *batch,
                            dm_error_t *err);

/* Releases the batch's buffers (it may be fetched into again afterwards). */
void dm_transport_batch_free(dm_transport_t *t, dm_transport_batch_t *batch);

/* First stored offset and end (last stable) offset of a partition. */
dm_err_t dm_transport_offsets(dm_transport_t *t, const char *topic, int32_t partition,
                              int64_t *start, int64_t *end, dm_error_t *err);

/* Asks for fn(ctx, id) once records at offset or later are committed, so an
 * idle reader needs no thread of its own. *ready true: they already are and
 * nothing was registered. DM_ERR_UNSUPPORTED when the backend cannot (the
 * reader then polls with dm_transport_fetch's wait). A new watch with the same
 * (fn, ctx, id) replaces the old one. */
dm_err_t dm_transport_watch(dm_transport_t *t, const char *topic, int32_t partition, int64_t offset,
                            dm_transport_wake_fn fn, void *ctx, uint64_t id, bool *ready,
                            dm_error_t *err);

/* Cancels a watch that has not fired. */
void dm_transport_unwatch(dm_transport_t *t, const char *topic, int32_t partition,
                          dm_transport_wake_fn fn, void *ctx, uint64_t id);

/* First offset with a timestamp >= ts_ms (the end offset when none): consume from a time. */
dm_err_t dm_transport_offset_for_time(dm_transport_t *t, const char *topic, int32_t partition,
                                      int64_t ts_ms, int64_t *offset, dm_error_t *err);

/* Commits a group's offsets (outside a transaction: at-least-once consumers). */
dm_err_t dm_transport_group_commit(dm_transport_t *t, const char *group,
                                   const dm_tp_offset_t *offsets, size_t n, dm_error_t *err);

/* The committed offset of group on topic/partition; DM_ERR_NOT_FOUND when none. */
dm_err_t dm_transport_group_offset(dm_transport_t *t, const char *group, const char *topic,
                                   int32_t partition, int64_t *offset, dm_error_t *err);

/* Starts a transaction. It belongs to the calling thread until commit or abort frees it. */
dm_err_t dm_transport_txn_begin(dm_transport_t *t, dm_transport_txn_t **out, dm_error_t *err);

/* Adds a batch of output records to the transaction. */
dm_err_t dm_transport_txn_produce(dm_transport_txn_t *txn, const char *topic, int32_t partition,
                                  const dm_record_t *records, size_t n, dm_error_t *err);

/* Adds the group's input offsets to the transaction. */
dm_err_t dm_transport_txn_offsets(dm_transport_txn_t *txn, const char *group,
                                  const dm_tp_offset_t *offsets, size_t n, dm_error_t *err);

/* Commits outputs and offsets atomically: after success all are visible (and survive a
 * crash, per the topics' fsync policy); after failure none are, now or after a restart.
 * Frees txn either way. */
dm_err_t dm_transport_txn_commit(dm_transport_txn_t *txn, dm_error_t *err);

/* Drops the transaction; frees txn. */
void dm_transport_txn_abort(dm_transport_txn_t *txn);

#endif
