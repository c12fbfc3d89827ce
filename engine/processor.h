/* engine/processor.h — the processor interface, the same for built-ins and
 * for processors users write with the SDK.
 *
 * A processor is one const struct of callbacks (STYLE.md habit 4). The engine
 * opens an instance with the processor's settings and its input schema; the
 * instance answers with its output schema, which the engine registers. Then
 * process() takes a batch and appends to an output batch, without
 * serialization in between when processors are fused. A record that fails goes
 * to the dead-letter list with the reason; nothing is dropped silently.
 *
 * Threads: open and close run on the controller's thread; process runs on one
 * task thread at a time for an instance.
 */
#ifndef DM_ENGINE_PROCESSOR_H
#define DM_ENGINE_PROCESSOR_H

#include <jansson.h>

#include "core/error.h"
#include "engine/rows.h"
#include "schema/dm_avro.h"

typedef struct dm_proc dm_proc_t;
typedef struct dm_table dm_table_t;

/* What the engine offers processors beyond their input: the materialized
 * tables of sources (for enrich). */
typedef struct dm_proc_env {
    /* The table of source name, kept up to date by the engine; NULL with err
     * set when there is none. */
    dm_table_t *(*table)(void *ctx, const char *source, dm_error_t *err);
    void *ctx;
} dm_proc_env_t;

/* Records a processor could not handle: input index in the batch and why. */
typedef struct dm_dead_letter {
    uint32_t index;
    char reason[256];
} dm_dead_letter_t;

typedef struct dm_dead_letters {
    dm_dead_letter_t *items;
    uint32_t n, cap;
} dm_dead_letters_t;

/* Adds a dead letter; returns DM_ERR_NOMEM when it cannot. */
dm_err_t dm_dead_letters_add(dm_dead_letters_t *d, uint32_t index, const char *reason);
void dm_dead_letters_reset(dm_dead_letters_t *d);
void dm_dead_letters_free(dm_dead_letters_t *d);

typedef struct dm_proc_ops {
    const char *name; /* as written in specs: "filter" */
    /* Opens an instance: config is the step's settings (JSON), input the
     * record schema it reads. Sets *output to the schema it writes (new; the
     * engine frees it with dm_avro_schema_free) and may keep state in
     * p->state. Errors name the setting and the problem. */
    dm_err_t (*open)(dm_proc_t *p, const json_t *config, const dm_avro_node_t *input,
                     dm_avro_schema_t **output, dm_error_t *err);
    /* Field paths of the input this processor reads; NULL = all. Lets the
     * engine decode only what the fused chain needs. */
    size_t (*read_paths)(const dm_proc_t *p, const char *const **paths);
    /* Processes in, appending to out (whose schema is the output schema).
     * Per-record failures go to dead; a returned error stops the task. */
    dm_err_t (*process)(dm_proc_t *p, const dm_rows_t *in, dm_rows_t *out, dm_dead_letters_t *dead,
                        dm_error_t *err);
    void (*close)(dm_proc_t *p);
} dm_proc_ops_t;

struct dm_proc {
    const dm_proc_ops_t *ops;
    const dm_proc_env_t *env; /* may be NULL */
    void *state;
    const dm_avro_node_t *input;
    dm_avro_schema_t *output;
};

/* The built-in processor called name, or NULL. */
const dm_proc_ops_t *dm_proc_find(const char *name);

/* Opens a processor instance (env may be NULL). On success *out is ready for
 * process(); free it with dm_proc_close. */
dm_err_t dm_proc_open(const dm_proc_ops_t *ops, const dm_proc_env_t *env, const json_t *config,
                      const dm_avro_node_t *input, dm_proc_t **out, dm_error_t *err);

void dm_proc_close(dm_proc_t *p);

/* Built-ins. */
extern const dm_proc_ops_t dm_proc_filter;
extern const dm_proc_ops_t dm_proc_project;
extern const dm_proc_ops_t dm_proc_enrich;

#endif
