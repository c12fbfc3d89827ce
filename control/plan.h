/* control/plan.h — a pipeline compiled once: the contract between the
 * control plane and the data plane (DESIGN.md "Runtime model").
 *
 *   spec + registry --dm_plan_compile--> dm_pipeline_plan_t --dm_plan_to_json--> workers
 *                                           |                      (dm_plan_from_json)
 *                                           +-- dm_plan_task_config: one task instance
 *
 * A plan is a list of stages. A stage is one fused chain of the pipeline's
 * steps run as one task instance per partition of its input. A pipeline has
 * one stage unless a stateful step (aggregate, dedupe, join) keys its state by
 * something its input is not partitioned by: then the chain is split before
 * that step, the stage before it writes its records keyed by the step's key to
 * the internal topic `pipeline.NAME.rekey.S` (S: the step's index in
 * spec.steps) and the next stage reads that topic, so every record of a key
 * meets the same task. A join that must be re-keyed has a side stage that
 * re-keys the other source into `pipeline.NAME.rekey.S.with`. Watermarks
 * travel through re-key topics as marker records, so windows downstream close
 * when every upstream task has passed them.
 *
 * Nothing downstream of the plan reads the spec again: the runtime and
 * `datamesh worker` both start tasks from it, `datamesh explain` prints it.
 *
 * Threads: a plan is built and freed by one thread and read-only afterwards.
 */
#ifndef DM_CONTROL_PLAN_H
#define DM_CONTROL_PLAN_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "connectors/unit.h"
#include "core/error.h"
#include "engine/task.h"
#include "schema/dm_avro.h"

/* One topic a stage reads. */
typedef struct dm_plan_input {
    char *topic;
    int64_t schema_id; /* the schema the chain reads its values as (the latest registered,
                          or under lenient / freeze / fail the pipeline's own reader) */
    int32_t partitions;
    int64_t newest_id; /* values of ids above it are schema versions the plan did not know
                          (0: schema_id) */
} dm_plan_input_t;

/* spec.schema_change (docs/schema-evolution.md), as dm_spec_schema_changes names them. */
typedef enum dm_plan_schema_change {
    DM_SCHEMA_CHANGE_LENIENT = 0,
    DM_SCHEMA_CHANGE_EVOLVE,
    DM_SCHEMA_CHANGE_FREEZE,
    DM_SCHEMA_CHANGE_FAIL,
} dm_plan_schema_change_t;

/* One step of the pipeline with its processor settings. */
typedef struct dm_plan_step {
    int index;      /* in spec.steps (or the internal rekey step: -1) */
    char *kind;     /* the processor: "filter", …, "rekey" */
    json_t *config; /* its settings (owned) */
    char **reads;   /* input field paths the step reads (NULL entry-terminated; NULL = all) */
} dm_plan_step_t;

/* A fused chain run as one task instance per input partition. */
typedef struct dm_plan_stage {
    char *name;  /* "main", "rekey.3", "rekey.3.with" */
    char *group; /* the consumer group holding its input offsets */
    dm_plan_input_t input;
    dm_plan_input_t *more; /* union: further sources read into the chain */
    size_t n_more;
    dm_plan_input_t other; /* join: the other source (topic NULL when none) */
    dm_plan_step_t *steps;
    size_t n_steps;
    char *output; /* topic written (the derived source, pipeline.NAME.out or a rekey topic) */
    int64_t output_schema_id;
    char *output_schema; /* its JSON text */
    char **extra;        /* route outputs, same schema as output */
    size_t n_extra;
    char *state_topic;           /* NULL: no step keeps state */
    char *event_time;            /* field path; NULL: record timestamps */
    int32_t watermark_producers; /* reading a rekey topic: tasks writing to it (0: none) */
    bool writes_rekey;           /* output is a rekey topic: emit watermark markers */
    int32_t producer_base;       /* added to its task numbers in those markers */
} dm_plan_stage_t;

/* A table kept up to date from a source, for enrich steps. */
typedef struct dm_plan_table {
    char *source;
    char *key; /* the field it is looked up by */
    int64_t schema_id;
    int32_t partitions;
} dm_plan_table_t;

/* A topic the plan needs. */
typedef struct dm_plan_topic {
    char *name;
    int32_t partitions;
    bool compact;
    char *subject; /* its value subject, NULL when records are not Avro of the registry */
} dm_plan_topic_t;

/* A sink reading the pipeline's output. */
typedef struct dm_plan_sink {
    char *name;       /* the unit: "us-plays/sink/0" */
    char *type;       /* "file", "postgres", … */
    char *group;      /* "sink.PIPELINE.I" */
    json_t *settings; /* the sink's settings without "type" (owned) */
    char **key;       /* the input source's key fields (NULL-terminated, may be empty) */
} dm_plan_sink_t;

typedef struct dm_pipeline_plan {
    char *name;
    char *dead_letter; /* pipeline.NAME.dlq */
    char *replay;      /* pipeline.NAME.replay: dead letters put back after a fix, read by
                          the first stage as one more input (one partition per its task);
                          NULL in plans of older controllers */
    char *output;      /* the topic sinks read (the last stage's output) */
    int64_t output_schema_id;
    int64_t idle_timeout_ms;   /* 0: DM_TASK_IDLE_TIMEOUT_MS */
    int64_t state_spill_bytes; /* 0: the engine's default */
    dm_plan_schema_change_t schema_change;
    bool start_latest; /* spec.start: latest — sources read from their end, not their beginning */
    dm_plan_stage_t *stages;
    size_t n_stages;
    dm_plan_table_t *tables;
    size_t n_tables;
    dm_plan_topic_t *topics;
    size_t n_topics;
    dm_plan_sink_t *sinks;
    size_t n_sinks;
} dm_pipeline_plan_t;

/* What compiling needs from where it runs (the runtime, or a dry run). */
typedef struct dm_plan_env {
    /* The latest schema under subject: its id and parsed schema (borrowed:
     * it must live as long as the plan is used). DM_ERR_NOT_FOUND when none. */
    dm_err_t (*latest)(void *ctx, const char *subject, int64_t *id, const dm_avro_schema_t **schema,
                       dm_error_t *err);
    /* Registers (or, in a dry run, only looks up) text under subject; *id = 0
     * when a dry run would register a new version. Incompatibility is an error. */
    dm_err_t (*register_schema)(void *ctx, const char *subject, const char *text, int64_t *id,
                                dm_error_t *err);
    /* Partitions of topic; 0 when it does not exist (yet). */
    int32_t (*partitions)(void *ctx, const char *topic);
    /* The stored (or applied) document of Source / Sink name; NULL when none. */
    const json_t *(*source_doc)(void *ctx, const char *name);
    const json_t *(*sink_doc)(void *ctx, const char *name);
    void *ctx;
    /* The stored (or applied) document of Processor name; NULL when none (or
     * when the callback is NULL). A `processor` step's plan settings carry
     * its library, symbol and config. */
    const json_t *(*processor_doc)(void *ctx, const char *name);
} dm_plan_env_t;

/* The processor of a plan step's kind (the built-ins and the internal rekey). */
const dm_proc_ops_t *dm_plan_proc_find(const char *kind);

/* Compiles a Pipeline document. DM_ERR_AGAIN when it cannot be compiled yet
 * because something it reads does not exist yet (a source without a
 * registered schema or topic: err says which); other errors are for good.
 * The caller frees *out with dm_plan_free. */
dm_err_t dm_plan_compile(const json_t *doc, const dm_plan_env_t *env, dm_pipeline_plan_t **out,
                         dm_error_t *err);

void dm_plan_free(dm_pipeline_plan_t *plan);

/* The plan as JSON (new reference) and back; from_json checks every member
 * and names the one that is wrong. */
json_t *dm_plan_to_json(const dm_pipeline_plan_t *plan);
dm_err_t dm_plan_from_json(const json_t *j, dm_pipeline_plan_t **out, dm_error_t *err);

/* The plan for people: stages with their fused chains, topics, schemas with
 * ids, fields read, state, sinks (text, several lines). malloc'd. */
char *dm_plan_explain(const dm_pipeline_plan_t *plan);

/* ---- running a plan (the runtime and `datamesh worker`) ----------------------- */

/* Looks up a parsed schema by registry id (borrowed; lives as long as the caller). */
typedef const dm_avro_schema_t *(*dm_plan_schema_fn)(void *ctx, int64_t id, dm_error_t *err);

/* One task instance's config and what it points to (each allocated to size:
 * a controller holds one per partition of tens of thousands of pipelines). */
typedef struct dm_plan_task {
    dm_task_config_t conf;
    char *name;      /* "PIPELINE/task/P", "PIPELINE/STAGE/task/P" */
    char *state_dir; /* NULL: state in memory only */
    dm_task_step_spec_t *steps;
    dm_task_input_t *more, *other;
    const char **extra;
} dm_plan_task_t;

/* Fills t with the task config of partition p of stage s (p < its input's
 * partitions). Strings and settings point into plan, which must outlive the
 * task; schemas come from schema (by id). data_dir: where state spills (NULL:
 * memory only). Release with dm_plan_task_release, also after an error. */
dm_err_t dm_plan_task_config(const dm_pipeline_plan_t *plan, size_t s, int32_t p,
                             dm_plan_schema_fn schema, void *schema_ctx, const char *data_dir,
                             dm_plan_task_t *t, dm_error_t *err);

void dm_plan_task_release(dm_plan_task_t *t);

/* Keeps table up to date with every partition of topic until st->stop, on
 * the caller's thread (a table unit's); sets *ready once it caught up with
 * what the topic held. name is for logs. */
void dm_plan_table_follow(struct dm_table *table, dm_transport_t *t, const char *topic,
                          int32_t partitions, const char *name, dm_unit_status_t *st,
                          _Atomic bool *ready);

#endif
