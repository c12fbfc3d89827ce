/* connectors/sink.h — the common sink runner and the interface of a sink type.
 *
 * A sink type (postgres, elasticsearch, kafka, …) is one const dm_sink_ops_t
 * (STYLE.md habit 4) plus a config table whose struct starts with a
 * dm_sink_common_config_t. The runner does everything that is the same for all
 * of them:
 *
 *   - reads every partition of the input topic from where the sink left off
 *     (positions the destination stored itself, else the group's committed
 *     offsets, else the start of the topic);
 *   - batches by size (records, bytes) and time (linger), without copying
 *     records: a batch points into the transport's last fetch and copies
 *     into its arena only when it needs another fetch first;
 *   - decodes each record (Confluent wire format; keys and values by schema id;
 *     Debezium-shaped envelopes unwrapped into a row and a delete flag);
 *   - hands the batch to write, sends the records it rejected for good to the
 *     dead-letter topic (reason, processor "sink:TYPE", input position in
 *     headers, as engine/task.c does), then flush, then commits the offsets;
 *   - when write or flush fails (destination down, timeout, throttled), keeps the
 *     batch, sets the unit's state to "retrying" with the destination's words
 *     (secrets redacted) and tries again with exponential backoff — nothing is
 *     read past an unwritten batch, so nothing is lost and the topic buffers
 *     what the pipeline keeps producing (that is the backpressure);
 *   - counts records, bytes, retries, dead letters and batch latency.
 *
 * Schema versions: records are decoded by their own writer schema (the id in
 * their wire header), so a topic may hold several versions of its source. A
 * record whose value schema id no earlier batch had starts a batch of its own:
 * a sink meets a new schema version before any other record it is handed in
 * that batch, after everything before it was written (and, for a
 * checkpointing sink, committed). Records that cannot be decoded go to the
 * dead-letter topic and do not count.
 *
 * Delivery: at-least-once with idempotent writes (upsert / index by key); a sink
 * that stores the offsets in its destination atomically with the rows (positions
 * + flush, or positions + checkpoint) is exactly-once.
 */
#ifndef DM_CONNECTORS_SINK_H
#define DM_CONNECTORS_SINK_H

#include <stdbool.h>
#include <stdint.h>

#include "core/config.h"
#include "core/error.h"
#include "transport/transport.h"

struct dm_unit_status;
struct dm_metrics;
struct dm_avro_schema;
struct dm_avro_node;
struct dm_avro_value;

/* Settings every sink type has; the first member of its config struct. */
typedef struct dm_sink_common_config {
    int64_t batch_records; /* write when this many records are waiting */
    int64_t batch_bytes;   /* or this many bytes */
    int64_t linger_ms;     /* or when the oldest waiting record is this old */
    int64_t retry_max_ms;  /* the longest wait between retries */
} dm_sink_common_config_t;

/* The config-table entries of dm_sink_common_config_t for a sink config struct
 * type whose member `common` holds it. */
#define DM_SINK_COMMON_FIELDS(T)                                                                   \
    {.name = "batch_records",                                                                      \
     .type = DM_CFG_INT,                                                                           \
     .offset = offsetof(T, common.batch_records),                                                  \
     .def = "10000",                                                                               \
     .min = 1,                                                                                     \
     .max = 10000000,                                                                              \
     .help = "write a batch when this many records are waiting"},                                  \
        {.name = "batch_bytes",                                                                    \
         .type = DM_CFG_SIZE,                                                                      \
         .offset = offsetof(T, common.batch_bytes),                                                \
         .def = "8MiB",                                                                            \
         .min = 1024,                                                                              \
         .max = 1073741824.0,                                                                      \
         .help = "or when this many bytes are waiting"},                                           \
        {.name = "linger",                                                                         \
         .type = DM_CFG_DURATION,                                                                  \
         .offset = offsetof(T, common.linger_ms),                                                  \
         .def = "500ms",                                                                           \
         .min = 0,                                                                                 \
         .max = 3600000,                                                                           \
         .help = "or when the oldest waiting record is this old"},                                 \
    {                                                                                              \
        .name = "retry_max", .type = DM_CFG_DURATION, .offset = offsetof(T, common.retry_max_ms),  \
        .def = "30s", .min = 100, .max = 3600000,                                                  \
        .help = "longest wait between retries while the destination is down"                       \
    }

/* One record of a batch, decoded. */
typedef struct dm_sink_record {
    const dm_record_t *rec; /* as read (key, value, offset, timestamp) */
    int32_t partition;
    uint32_t value_schema_id;                  /* 0 for tombstones */
    const struct dm_avro_schema *value_schema; /* the whole value's schema, or NULL */
    const struct dm_avro_node *row_schema;     /* the row's record schema, or NULL */
    const struct dm_avro_value *value; /* the whole decoded value (the envelope itself), or NULL */
    const struct dm_avro_value *row; /* flat value, or the envelope's after (before for deletes) */
    const struct dm_avro_node *key_schema; /* the key's record schema, or NULL */
    uint32_t key_schema_id;                /* its registry id (0: none) */
    const struct dm_avro_value *key;       /* the decoded key, or NULL */
    bool is_delete;                        /* a tombstone or an envelope with op 'd' */
} dm_sink_record_t;

/* What write gets. Memory stays valid until flush returns. */
typedef struct dm_sink_batch {
    const dm_sink_record_t *records;
    size_t n;
    const dm_tp_offset_t *offsets; /* next offset per partition once this batch is written */
    size_t n_offsets;
    int64_t bytes;
} dm_sink_batch_t;

/* The records of a batch the destination refused for good, with its reason. */
typedef struct dm_sink_rejects dm_sink_rejects_t;

/* Marks batch record index as refused for good (it goes to the dead-letter
 * topic with reason; the sink must not write it). */
dm_err_t dm_sink_reject(dm_sink_rejects_t *r, size_t index, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* True when index was rejected (in this attempt). */
bool dm_sink_rejected(const dm_sink_rejects_t *r, size_t index);

/* Looks up a schema by registry id; NULL when unknown. Borrowed: it must live
 * as long as the runner. */
typedef const struct dm_avro_schema *(*dm_sink_schema_fn)(void *ctx, uint32_t id);

/* What a sink knows about where it runs. */
typedef struct dm_sink_env {
    const char *name;  /* the unit, for logs: "us-plays/sink/0" */
    const char *topic; /* the input topic */
    int32_t partitions;
    const char *group;                         /* the sink's id (its consumer group) */
    const struct dm_avro_schema *value_schema; /* the topic's current value schema */
    uint32_t value_schema_id;
    const dm_strlist_t *key_fields; /* key fields of the input source (may be NULL) */
    /* Copies the controller's schema registry address (http://host:port) into
     * out, "" while it is not known yet; may be NULL. Any thread. */
    void (*registry_url)(void *ctx, char *out, size_t cap);
    void *registry_ctx;
    dm_sink_schema_fn schema_by_id;
    void *schema_ctx;
} dm_sink_env_t;

/* A sink type. Every callback runs on the sink unit's thread. */
typedef struct dm_sink_ops {
    const char *name; /* as written in specs: "postgres" */
    const dm_config_table_t *config;
    size_t config_size;
    /* Prepares the sink; should not fail only because the destination is down
     * (connect lazily in write) unless the runner may retry it. An error with
     * err->fatal set (settings that can never work) stops the unit as
     * "failed"; any other is retried with backoff. */
    dm_err_t (*open)(const void *conf, const dm_sink_env_t *env, void **state, dm_error_t *err);
    /* Optional: the next offset of each partition that the destination itself
     * stored (next[p] = -1 when it holds none). Called after open, before reading. */
    dm_err_t (*positions)(void *state, int64_t *next, dm_error_t *err);
    /* Writes the batch (skipping records rejected before) and rejects records the
     * destination refuses for good. An error means "not written, try again later". */
    dm_err_t (*write)(void *state, const dm_sink_batch_t *b, dm_sink_rejects_t *rejects,
                      dm_error_t *err);
    /* Optional: makes the written batch durable together with b->offsets. An
     * error means the batch will be written again. */
    dm_err_t (*flush)(void *state, const dm_sink_batch_t *b, dm_error_t *err);
    /* Optional, instead of flush, for a sink that gathers several batches into
     * one open checkpoint and commits it atomically with the offsets of the
     * last batch written (iceberg: files and positions in one snapshot). The
     * runner calls it after every written batch and when no record came for
     * a while (force false: commit if due by the sink's own measure: size,
     * age), and before a batch bringing a new schema version and at a clean
     * stop (force true: commit what is open). *committed tells whether
     * everything written so far is now durable (true also when nothing was
     * open). An error here, or from write, means the open checkpoint is gone
     * (the sink dropped it): the runner reads again from positions. */
    dm_err_t (*checkpoint)(void *state, bool force, bool *committed, dm_error_t *err);
    void (*close)(void *state);
    /* Optional, for lineage (control/lineage.c; any thread, no I/O): names
     * the dataset the sink writes per OpenLineage's naming spec from its
     * settings as the plan holds them — sets "namespace" and "name" on
     * dataset (never a secret: no password, no user) — and "sort": [column,
     * …] when the destination keeps its rows ordered by those columns. */
    void (*lineage)(const json_t *settings, json_t *dataset);
    /* Optional, at apply (any thread, no I/O): whether settings that name
     * columns name columns of the records the sink will get (value: their
     * schema), so that what would stop the sink when it opens refuses the
     * apply instead. The error names the setting ("sort_by: …"). */
    dm_err_t (*check)(const json_t *settings, const struct dm_avro_schema *value, dm_error_t *err);
} dm_sink_ops_t;

/* Reads a secret (password, API key) from the environment variable env or,
 * when env is NULL, from file (first line); out gets "" when both are NULL.
 * Errors name the variable or file, never the value; they are retriable (a
 * secret may be provided after the sink started). */
dm_err_t dm_sink_read_secret(const char *env, const char *file, char *out, size_t cap,
                             dm_error_t *err);

/* The sink type called name, or NULL (the list is in connectors/registry.c). */
const dm_sink_ops_t *dm_sink_ops_find(const char *name);

/* One running sink. */
typedef struct dm_sink_run_config {
    dm_transport_t *transport;
    const dm_sink_ops_t *ops;
    const void *conf; /* the type's config struct (starts with dm_sink_common_config_t) */
    dm_sink_env_t env;
    const char *dead_letter_topic; /* NULL: rejected records stop the sink (state failed) */
    struct dm_metrics *metrics;    /* may be NULL */
} dm_sink_run_config_t;

/* Runs the sink until status->stop: reads, batches, writes, retries, dead
 * letters, commits. Runs on the unit's thread; returns when stopped, or when
 * open failed for good (state "failed" with the reason). */
void dm_sink_run(const dm_sink_run_config_t *c, struct dm_unit_status *status);

#endif
