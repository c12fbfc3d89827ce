/* transport/txn_builder.h — records grouped by (topic, partition) and group offsets,
 * committed in one transport transaction. The one place where sources (connectors/emit.c),
 * tasks (engine/task.c: outputs, dead letters, state, watermarks) and CDC connectors
 * (connectors/postgres) turn "these records go there, and the input moved to here" into
 * begin, one produce per partition, offsets, commit — abort on any error.
 *
 *   dm_txn_builder_t b;
 *   dm_txn_builder_init(&b, t);
 *   int out, dlq;
 *   dm_txn_builder_topic(&b, "plays", 4, &out, &err);      // once; the name is copied
 *   dm_txn_builder_topic(&b, "plays.dlq", 1, &dlq, &err);
 *   dm_txn_builder_add_keyed(&b, out, &rec, 0, &err);      // partition by key hash
 *   dm_txn_builder_add(&b, dlq, 0, &dead, &err);           // a given partition
 *   dm_txn_builder_offsets(&b, "task-1", &(dm_tp_offset_t){"in", 0, 42}, 1, &err);
 *   dm_txn_builder_commit(&b, &err);                       // all or nothing; b is empty after
 *   dm_txn_builder_destroy(&b);
 *
 * Ownership: the builder copies record structs (not the bytes they point to) and offsets
 * (not the group or topic strings); what they point to must stay valid until the commit or
 * clear. dm_txn_builder_add_batch lends a whole array instead of copying it. Memory (record
 * arrays per partition) is kept across commits, so a steady stream allocates nothing.
 *
 * Partitioning: a keyed record goes to dm_hash64(key) % partitions, the same function as
 * every producer used before, so no record moves.
 *
 * Threads: a builder belongs to one thread at a time; the transport is shared.
 */
#ifndef DM_TRANSPORT_TXN_BUILDER_H
#define DM_TRANSPORT_TXN_BUILDER_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "transport/transport.h"

/* A topic the builder writes to (private). */
typedef struct dm_txn_topic {
    char *name;
    int32_t partitions;
    int32_t *slot; /* per partition: its slot in this transaction, -1 when none */
} dm_txn_topic_t;

/* The records of one (topic, partition) in this transaction (private). */
typedef struct dm_txn_slot {
    int topic;
    int32_t partition;
    dm_record_t *recs; /* copies, capacity kept across commits */
    size_t n, cap;
    const dm_record_t *lent; /* a batch added whole and not copied (while n == 0) */
    size_t n_lent;
} dm_txn_slot_t;

typedef struct dm_txn_group_offset {
    const char *group;
    dm_tp_offset_t off;
} dm_txn_group_offset_t;

/* The builder; the fields are private (embed it, initialise with dm_txn_builder_init). */
typedef struct dm_txn_builder {
    dm_transport_t *t;
    dm_txn_topic_t *topics;
    size_t n_topics, cap_topics;
    dm_txn_slot_t *slots; /* in the order of their first record */
    size_t n_slots, cap_slots;
    dm_txn_group_offset_t *offsets;
    size_t n_offsets, cap_offsets;
    size_t n_records;
    uint64_t allocations; /* how many times it grew its memory (tests read it) */
} dm_txn_builder_t;

/* The partition of a record with key bytes [key, key + len) in a topic of partitions
 * partitions (dm_hash64 % partitions); 0 when partitions <= 1. */
int32_t dm_txn_key_partition(const void *key, size_t len, int32_t partitions);

/* Sets up an empty builder over transport t (borrowed for the builder's life). Allocates
 * nothing. */
void dm_txn_builder_init(dm_txn_builder_t *b, dm_transport_t *t);

/* Releases what the builder holds (pending records are dropped). */
void dm_txn_builder_destroy(dm_txn_builder_t *b);

/* Declares topic name with partitions partitions (>= 1) and sets *topic to its handle for
 * the add calls; the name is copied. Declaring the same name again returns the same handle
 * (and takes the new partition count when it grew). DM_ERR_INVALID for partitions < 1,
 * DM_ERR_NOMEM. */
dm_err_t dm_txn_builder_topic(dm_txn_builder_t *b, const char *name, int32_t partitions, int *topic,
                              dm_error_t *err);

/* Adds one record to partition of topic, after those added there before (the record
 * struct is copied, its bytes are borrowed until commit). DM_ERR_LOG_PARTITION naming the
 * topic when partition is out of range, DM_ERR_NOMEM. */
dm_err_t dm_txn_builder_add(dm_txn_builder_t *b, int topic, int32_t partition,
                            const dm_record_t *rec, dm_error_t *err);

/* Adds a record by its key: to dm_txn_key_partition(key) when it has one (key_len >= 0
 * and a key), else to partition keyless. Errors as dm_txn_builder_add. */
dm_err_t dm_txn_builder_add_keyed(dm_txn_builder_t *b, int topic, const dm_record_t *rec,
                                  int32_t keyless, dm_error_t *err);

/* Adds n records to partition of topic. The array is lent, not copied, when nothing else
 * went to that partition yet: it must stay valid until commit or clear. Errors as
 * dm_txn_builder_add. */
dm_err_t dm_txn_builder_add_batch(dm_txn_builder_t *b, int topic, int32_t partition,
                                  const dm_record_t *recs, size_t n, dm_error_t *err);

/* Adds offsets of group (group and topic strings borrowed until commit). DM_ERR_NOMEM. */
dm_err_t dm_txn_builder_offsets(dm_txn_builder_t *b, const char *group,
                                const dm_tp_offset_t *offsets, size_t n, dm_error_t *err);

/* Records pending. */
size_t dm_txn_builder_records(const dm_txn_builder_t *b);

/* Commits what was added in one transaction: begin, one produce per (topic, partition) in
 * the order their first record came, the offsets, commit. On any error the transaction is
 * aborted, so nothing of it is visible now or after a restart, and err says what failed
 * (the topic and partition of a failed produce). Nothing added: DM_OK without a
 * transaction. The builder is empty afterwards either way (its memory kept). */
dm_err_t dm_txn_builder_commit(dm_txn_builder_t *b, dm_error_t *err);

/* Drops what was added (memory kept). */
void dm_txn_builder_clear(dm_txn_builder_t *b);

#endif
