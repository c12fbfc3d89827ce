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
 * Time and state: a processor that keeps state (aggregate, dedupe, join) sets
 * .stateful and keeps everything that must survive a restart in its keyed
 * store p->kv. The task writes the store's changes to the pipeline's state
 * topic in the same transaction as the outputs and input offsets (that is the
 * snapshot), and after a restart rebuilds the store from that topic and calls
 * restore() (that is the restore). Event time advances through watermarks:
 * the task tracks the largest event time it has read minus the allowed
 * out-of-orderness, and calls on_watermark when that grows; processing-time
 * timers fire on_timer once the wall clock passes p->timer_at.
 *
 * Threads: open and close run on the controller's thread; process and the
 * callbacks run on one task thread at a time for an instance.
 */
#ifndef DM_ENGINE_PROCESSOR_H
#define DM_ENGINE_PROCESSOR_H

#include <jansson.h>

#include "core/config.h"
#include "core/error.h"
#include "engine/rows.h"
#include "engine/state.h"
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
    /* Where SDK processors' own metrics go (NULL: not exported). */
    struct dm_metrics *metrics;
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

/* ---- lineage: which input fields each output field comes from ----
 * OpenLineage's vocabulary: the first three are DIRECT (the output's value is
 * made of the input's), the others INDIRECT (the input decides which records
 * or groups there are, not the values). */
typedef enum dm_field_dep_kind {
    DM_DEP_IDENTITY,       /* copied unchanged (maybe renamed) */
    DM_DEP_TRANSFORMATION, /* computed from it */
    DM_DEP_AGGREGATION,    /* computed from many records' values */
    DM_DEP_FILTER,         /* decides which records pass */
    DM_DEP_JOIN,           /* decides which records are matched */
    DM_DEP_GROUP_BY,       /* decides the groups */
    DM_DEP_WINDOW,         /* decides the windows (event time) */
    DM_DEP_SORT,           /* decides the order */
} dm_field_dep_kind_t;

/* Which input a dependency reads. */
typedef enum dm_field_dep_side {
    DM_DEP_MAIN,  /* the step's input (the chain's records) */
    DM_DEP_OTHER, /* a two-input step's second source (join) */
    DM_DEP_TABLE, /* the table of source .source (enrich) */
} dm_field_dep_side_t;

/* One dependency: output field `output` (NULL: every output field, as
 * indirect dependencies are) reads input path `input` of `side`. Strings
 * are owned by the list. */
typedef struct dm_field_dep {
    char *output;
    char *input;
    char *source; /* DM_DEP_TABLE: the source whose table it is; else NULL */
    dm_field_dep_side_t side;
    dm_field_dep_kind_t kind;
} dm_field_dep_t;

typedef struct dm_field_deps {
    dm_field_dep_t *items;
    size_t n, cap;
} dm_field_deps_t;

/* Adds a dependency (strings copied; source may be NULL); DM_ERR_NOMEM when
 * it cannot. */
dm_err_t dm_field_deps_add(dm_field_deps_t *d, const char *output, const char *input,
                           dm_field_dep_side_t side, const char *source, dm_field_dep_kind_t kind);

/* Adds one dependency of `kind` on every path expression e reads. */
struct dm_expr;
dm_err_t dm_field_deps_add_expr(dm_field_deps_t *d, const char *output, const struct dm_expr *e,
                                dm_field_dep_side_t side, const char *source,
                                dm_field_dep_kind_t kind);

void dm_field_deps_free(dm_field_deps_t *d);

/* "IDENTITY", "FILTER", …; and whether kind is DIRECT. */
const char *dm_field_dep_kind_name(dm_field_dep_kind_t kind);
bool dm_field_dep_direct(dm_field_dep_kind_t kind);

typedef struct dm_proc_ops {
    const char *name;    /* as written in specs: "filter" */
    const char *summary; /* one line for `datamesh plugins`, the API and the docs */
    /* Its settings, declared once (core/config.h): they drive parsing,
     * validation at apply, the API's description and docs/plugins-reference.md.
     * config_size is sizeof the struct the table fills. NULL: it takes no
     * settings (open gets an empty struct). */
    const dm_config_table_t *config;
    size_t config_size;
    /* The setting a step written as a bare value stands for: `- filter: "x"`
     * is {"expr": "x"} when shorthand is "expr". NULL: the step's value must
     * be a mapping of settings. */
    const char *shorthand;
    /* Opens an instance: config is the step's settings parsed by the table
     * (the struct .config fills; valid until close), input the record schema
     * it reads. Sets *output to the schema it writes (new; the engine frees it
     * with dm_avro_schema_free) and may keep state in p->state. Errors name
     * the setting and the problem. */
    dm_err_t (*open)(dm_proc_t *p, const void *config, const dm_avro_node_t *input,
                     dm_avro_schema_t **output, dm_error_t *err);
    /* Field paths of the input this processor reads; NULL = all. Lets the
     * engine decode only what the fused chain needs. */
    size_t (*read_paths)(const dm_proc_t *p, const char *const **paths);
    /* Processes in, appending to out (whose schema is the output schema).
     * Per-record failures go to dead; a returned error stops the task. */
    dm_err_t (*process)(dm_proc_t *p, const dm_rows_t *in, dm_rows_t *out, dm_dead_letters_t *dead,
                        dm_error_t *err);
    void (*close)(dm_proc_t *p);
    /* The engine gives the instance a keyed store (p->kv), checkpointed with
     * every commit and restored after a restart. */
    bool stateful;
    /* Optional: event time reached wm (p->watermark still holds the previous
     * one); may append rows to out, e.g. the windows that close. */
    dm_err_t (*on_watermark)(dm_proc_t *p, int64_t wm, dm_rows_t *out, dm_error_t *err);
    /* Optional: the wall clock (ms since the epoch) passed p->timer_at, which
     * the engine has reset to 0; may append rows to out and set a new timer. */
    dm_err_t (*on_timer)(dm_proc_t *p, int64_t now_ms, dm_rows_t *out, dm_error_t *err);
    /* Optional: p->kv and p->watermark were rebuilt from the state topic;
     * rebuild what the instance derives from them (its timers), dropping what
     * it had. */
    dm_err_t (*restore)(dm_proc_t *p, dm_error_t *err);
    /* Optional: names of the extra outputs a row may go to; a row with
     * output = i + 1 goes to extra output i, output 0 to the main output. */
    size_t (*outputs)(const dm_proc_t *p, const char *const **names);
    /* Reads a second source too (join): open gets its schema in p->other and
     * process gets its records marked input = 1 (they enter the chain at
     * this step: the steps before it see only the first source's). One
     * step of a chain at most. */
    bool two_inputs;
    /* Optional: where each output field of the open instance comes from, for
     * lineage: appends to deps, per output field, the input paths it is made of
     * (IDENTITY, TRANSFORMATION, AGGREGATION), and with output NULL the paths
     * that decide which records, groups or windows there are (FILTER, JOIN,
     * GROUP_BY, WINDOW). NULL: the processor passes its input's fields through
     * unchanged (filter, dedupe, route) and the paths read_paths gives decide
     * which records pass (FILTER). Controller's thread. */
    dm_err_t (*field_deps)(const dm_proc_t *p, dm_field_deps_t *deps);
} dm_proc_ops_t;

struct dm_proc {
    const dm_proc_ops_t *ops;
    const dm_proc_env_t *env; /* may be NULL */
    void *conf;               /* the settings parsed by ops->config (owned) */
    void *state;
    const dm_avro_node_t *input;
    const dm_avro_node_t *other; /* two_inputs: the second source's record schema */
    dm_avro_schema_t *output;
    dm_state_t *kv;    /* stateful processors: the keyed store */
    int64_t watermark; /* event time reached so far; INT64_MIN before any */
    int64_t timer_at;  /* wall-clock ms of the processing-time timer; 0 = none */
};

/* ---- the registry: one list of step kinds (engine/processor.c) ---- */

/* The built-in processor called name, or NULL. */
const dm_proc_ops_t *dm_proc_find(const char *name);

/* The built-in processors, in the order docs and messages list them; *n gets
 * how many. */
const dm_proc_ops_t *const *dm_proc_list(size_t *n);

/* Comma-separated names of the step kinds this version runs ("filter,
 * project, …"), and of every step kind a spec may name (those plus the ones
 * DESIGN.md plans and this version refuses: sql, processor). */
void dm_proc_kinds_available(char *out, size_t cap);
void dm_proc_kinds_all(char *out, size_t cap);

/* Turns a pipeline step of a spec ({"filter": "x > 1"}, {"project": [...]},
 * {"aggregate": {...}}) into its processor's settings object (new reference)
 * through the shorthand. *kind gets the step's name and *ops its processor
 * (both optional). NULL with err set when the step is not a one-key mapping,
 * names no step kind, a kind not available in this version yet ("…(available:
 * filter, …)", DM_ERR_UNSUPPORTED), or a value neither a mapping nor the
 * processor's shorthand. err may be NULL. */
json_t *dm_proc_step_config(const json_t *step, const char **kind, const dm_proc_ops_t **ops,
                            dm_error_t *err);

/* Validates a spec step against its processor's config table without an input
 * schema: unknown keys, types, bounds, required keys and the checks the table
 * declares. path names the step ("spec.steps[2]"); messages read
 * "LOCATION: spec.steps[2].aggregate.window: …" with locate (optional)
 * placing paths in the spec text. */
dm_err_t dm_proc_step_check(const json_t *step, const char *path, dm_config_locate_fn locate,
                            void *locate_ctx, dm_error_t *err);

/* Parses settings (a JSON object; NULL = none) with ops' table into a new
 * struct (*conf; release with dm_proc_settings_free). src places messages
 * (NULL: keys named bare). */
dm_err_t dm_proc_settings_parse(const dm_proc_ops_t *ops, const json_t *settings,
                                const dm_config_source_t *src, void **conf, dm_error_t *err);

/* Frees what dm_proc_settings_parse made (NULL is fine). */
void dm_proc_settings_free(const dm_proc_ops_t *ops, void *conf);

/* ---- instances ---- */

/* Opens a processor instance (env may be NULL): config is the step's settings
 * object (as dm_proc_step_config gives), parsed with ops' table first. On
 * success *out is ready for process(); free it with dm_proc_close. */
dm_err_t dm_proc_open(const dm_proc_ops_t *ops, const dm_proc_env_t *env, const json_t *config,
                      const dm_avro_node_t *input, dm_proc_t **out, dm_error_t *err);

/* Opens a processor that reads two sources (ops->two_inputs): other is the
 * second one's record schema. Otherwise as dm_proc_open. */
dm_err_t dm_proc_open2(const dm_proc_ops_t *ops, const dm_proc_env_t *env, const json_t *config,
                       const dm_avro_node_t *input, const dm_avro_node_t *other, dm_proc_t **out,
                       dm_error_t *err);

void dm_proc_close(dm_proc_t *p);

/* Gives a stateful instance an empty store that spills to RocksDB in dir past
 * bytes (dir NULL: memory only), replacing the one it has. */
dm_err_t dm_proc_reset_state(dm_proc_t *p, const char *dir, size_t bytes, dm_error_t *err);

/* Built-ins. */
extern const dm_proc_ops_t dm_proc_filter;
extern const dm_proc_ops_t dm_proc_project;

/* The input fields an open project step p keeps whole under their own type
 * (selected or renamed, top level, not wrapped as nullable) and that none of
 * its computed or nested columns reads: the fields a task may decode as their
 * bytes and copy into the output (dm_avro_codec_new_raw). Fills up to cap
 * names (owned by p's input schema); returns how many. */
size_t dm_proc_project_passthrough(const dm_proc_t *p, const char **names, size_t cap);
extern const dm_proc_ops_t dm_proc_enrich;
extern const dm_proc_ops_t dm_proc_aggregate;
extern const dm_proc_ops_t dm_proc_dedupe;
extern const dm_proc_ops_t dm_proc_route;
extern const dm_proc_ops_t dm_proc_join;
/* The `processor` step: an SDK processor's library (engine/proc_sdk.c). */
extern const dm_proc_ops_t dm_proc_sdk;

/* The `lua` step: a sandboxed Lua function per record (engine/proc_lua.c). */
extern const dm_proc_ops_t dm_proc_lua;

/* Whether the library of Processor name loads and exports symbol (NULL: the
 * default) for this ABI version; err says why not. Calls nothing in it. */
dm_err_t dm_proc_sdk_check(const char *name, const char *library, const char *symbol,
                           dm_error_t *err);
/* Internal (plans insert it before a re-key topic; specs cannot name it). */
extern const dm_proc_ops_t dm_proc_rekey;

#endif
