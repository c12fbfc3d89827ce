/* engine/task.h — a task: one input partition through a fused chain of
 * processors into an output topic, exactly once.
 *
 * Each step fetches a batch of committed records from the input partition,
 * decodes only the fields the chain reads, runs every processor on the batch
 * in memory (no serialization between them), encodes the outputs in the
 * Confluent wire format and commits, in one transport transaction, the output
 * records, the dead letters and the group's next input offset. A crash at any
 * point leaves either all of a step or none of it, so a restarted task resumes
 * exactly where the last commit left it.
 *
 * Processors that keep state have their changes written to the state topic
 * (compacted; key = step index byte + the processor's key, value = the bytes
 * or a tombstone) in the same transaction, so state, outputs and offsets move
 * together; a new task instance reads the state topic back before its first
 * step. A step that fails after state changed restores that state the same
 * way before the next step, so retrying a failed step is always safe.
 *
 * Threads: a task is stepped by one thread at a time.
 */
#ifndef DM_ENGINE_TASK_H
#define DM_ENGINE_TASK_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"
#include "core/metrics.h"
#include "engine/processor.h"
#include "schema/dm_avro.h"
#include "transport/transport.h"

typedef struct dm_task_step_spec {
    const dm_proc_ops_t *ops;
    const json_t *config;
} dm_task_step_spec_t;

/* A further input of a union: its values are read as the task's input
 * schema (fields matched by name, per Avro schema resolution). */
typedef struct dm_task_input {
    const char *topic;
    int32_t partition;
    const dm_avro_schema_t *schema; /* writer schema of its values */
    uint32_t schema_id;
} dm_task_input_t;

/* What a task does with an input value of a schema version newer than any
 * its plan knew (docs/schema-evolution.md). */
typedef enum dm_task_schema_policy {
    DM_TASK_SCHEMA_STOP = 0, /* end the step before it: DM_ERR_SCHEMA_NEW_VERSION */
    DM_TASK_SCHEMA_RESOLVE,  /* read it as the input schema (Avro resolution): freeze */
} dm_task_schema_policy_t;

typedef struct dm_task_config {
    const char *name;  /* for logs and metrics: "us-plays/0" */
    const char *group; /* consumer group holding the input offset */
    const char *input_topic;
    int32_t input_partition;
    const dm_avro_schema_t *input_schema; /* writer schema of the input values */
    uint32_t input_schema_id;             /* the id input values carry */
    const char *output_topic;             /* NULL: the chain's output is not written */
    uint32_t output_schema_id;            /* the id written with output values */
    const char *dead_letter_topic;        /* required: failed records go there */
    const dm_task_step_spec_t *steps;
    size_t n_steps;
    size_t max_batch_bytes;   /* per fetch; 0 = 1 MiB */
    dm_metrics_t *metrics;    /* optional */
    const dm_proc_env_t *env; /* optional: tables for enrich */
    /* State: required when a step keeps state (aggregate, dedupe). */
    const char *state_topic;  /* compacted; partition = input partition */
    const char *state_dir;    /* where state spills to RocksDB; NULL = memory only */
    size_t state_spill_bytes; /* memory per processor before spilling; 0 = 64 MiB */
    /* Event time: a field path of the input (long, or timestamp-millis);
     * NULL = the records' timestamps. The watermark is the largest event time
     * read minus out_of_orderness_ms. */
    const char *event_time;
    int64_t out_of_orderness_ms;
    /* Extra outputs (route): rows a processor sends to output i + 1 go to
     * extra_topics[i], with the same schema id as the main output. */
    const char *const *extra_topics;
    size_t n_extra_topics;
    /* Union: more inputs read into the same chain, each with its own offset
     * in the group; input_topic/partition stays the first. With several
     * inputs (union or join) the watermark follows the slowest input; one
     * that brings no records for idle_timeout_ms stops holding it back. */
    const dm_task_input_t *more_inputs;
    size_t n_more_inputs;
    /* Join: the partitions of the other source the joining step (a processor
     * with two_inputs) reads; all of one schema, decoded as it is. */
    const dm_task_input_t *other_inputs;
    size_t n_other_inputs;
    int64_t idle_timeout_ms; /* 0 = DM_TASK_IDLE_TIMEOUT_MS */
    /* Re-keying (control/plan.h). A task writing a re-key topic sends its
     * watermark with every step that read records, as a marker (no key, no
     * value; headers DM_WM_HEADER and DM_WM_PRODUCER = its input partition)
     * to every partition of its output, in the same transaction. A task
     * reading a re-key topic is told how many tasks write it: its watermark
     * is the smallest of theirs (an idle one, as an idle input, stops holding
     * it back), not its own records' event times. */
    bool watermark_out;
    int32_t watermark_producer; /* this task's number in its markers */
    int32_t watermark_producers;
    /* Schema versions. A value carries the registry id of the schema it was
     * written with; input_schema is what the chain reads. A value of another
     * id is read by Avro resolution into input_schema when its id is at most
     * input_newest_id (a version the plan knew: an older one still unread),
     * or under DM_TASK_SCHEMA_RESOLVE. A newer one under DM_TASK_SCHEMA_STOP
     * ends the step just before it (what came before is committed, so the
     * switch is at an exact position) and dm_task_step returns
     * DM_ERR_SCHEMA_NEW_VERSION naming topic, partition, offset and ids; the
     * caller recompiles the plan (evolve, lenient) or pauses (fail). One that
     * resolution cannot read under RESOLVE stops the same way with
     * DM_ERR_SCHEMA_INCOMPATIBLE. Without schema_by_id, values of another id
     * are dead letters. schema_by_id runs on the task's thread; what it
     * returns must outlive the task. */
    const dm_avro_schema_t *(*schema_by_id)(void *ctx, int64_t id, dm_error_t *err);
    void *schema_ctx;
    dm_task_schema_policy_t schema_policy;
    uint32_t input_newest_id; /* 0 = input_schema_id */
    /* Replay (pipeline.NAME.replay: dead letters put back after a fix): one
     * more input, partition input_partition, read as the first input. It is
     * read from its start, a value of any schema id is read by resolution or
     * dead-lettered again (it never stops the task), and it takes no part in
     * the watermark, as its records are old. NULL: none. */
    const char *replay_topic;
    /* Where an input without an offset in the group starts: false = its
     * earliest record, true = its end (only records appended from then on). */
    bool start_at_end;
} dm_task_config_t;

#define DM_WM_HEADER   "dm.watermark"
#define DM_WM_PRODUCER "dm.producer"

/* How long an input of several may bring nothing before it stops holding
 * the watermark back, unless the config says otherwise. */
#define DM_TASK_IDLE_TIMEOUT_MS 30000

typedef struct dm_task dm_task_t;

/* Opens the chain's processors against the input schema and compiles the
 * decoder for the fields they read. Errors name the step and the problem.
 * Borrows transport, config strings and schemas, which must outlive the task. */
dm_err_t dm_task_new(dm_transport_t *t, const dm_task_config_t *conf, dm_task_t **out,
                     dm_error_t *err);

/* The schema of the chain's output records (the input's when no processor
 * changes it). */
const dm_avro_node_t *dm_task_output_schema(const dm_task_t *task);

/* Sets the schema id written with output values (when it is known only after
 * the output schema is registered). */
void dm_task_set_output_schema_id(dm_task_t *task, uint32_t id);

/* Runs one batch: waits up to timeout_ms for input (less when a processor's
 * timer is due sooner; 0 never waits), processes and commits. Due
 * processing-time timers run and commit even without input. *processed gets
 * the number of input records consumed (0 when none came). */
dm_err_t dm_task_step(dm_task_t *task, int timeout_ms, size_t *processed, dm_error_t *err);

/* A reader schema for values written with other that yields values of
 * primary's shape: primary renamed to other's record name, so that Avro
 * resolution matches fields by name. Errors name the field path that cannot
 * be read (DM_ERR_SCHEMA_INCOMPATIBLE). The caller frees *reader. */
dm_err_t dm_task_union_reader(const dm_avro_schema_t *primary, const dm_avro_schema_t *other,
                              dm_avro_schema_t **reader, dm_error_t *err);

/* The next input offset the task will read (of its first input). */
int64_t dm_task_position(const dm_task_t *task);

/* Input records committed but not yet read, as of the last fetches (all inputs). */
int64_t dm_task_lag(const dm_task_t *task);

/* What a scheduler needs to park the task until it has work: its inputs at
 * their next offsets (up to max; returns how many there are) ... */
size_t dm_task_inputs(const dm_task_t *task, dm_tp_offset_t *out, size_t max);

/* ... and the wall-clock ms of its next processing-time timer (0 = none). */
int64_t dm_task_next_timer(const dm_task_t *task);

/* The task's event-time watermark (INT64_MIN before any event). */
int64_t dm_task_watermark(const dm_task_t *task);

void dm_task_free(dm_task_t *task);

/* Header names on dead letters. */
#define DM_DLQ_REASON    "dm.error.reason"
#define DM_DLQ_PROCESSOR "dm.error.processor"
#define DM_DLQ_TOPIC     "dm.input.topic"
#define DM_DLQ_PARTITION "dm.input.partition"
#define DM_DLQ_OFFSET    "dm.input.offset"

/* The headers of one dead letter and the text of its numbers; it must live
 * until the record made with it is produced. */
typedef struct dm_dlq_record {
    dm_record_header_t h[5];
    char partition[24], offset[24];
} dm_dlq_record_t;

/* Makes *out the dead letter of src (read from topic/partition): its key,
 * value and timestamp as they were, the reason and the processor in headers. */
void dm_dlq_record_make(dm_record_t *out, dm_dlq_record_t *dl, const dm_record_t *src,
                        const char *reason, const char *processor, const char *topic,
                        int32_t partition);

#endif
