/* control/runtime_internal.h — what the runtime's files share: the units it
 * runs and the runtime's state. Not for use outside control/runtime*.c. */
#ifndef DM_CONTROL_RUNTIME_INTERNAL_H
#define DM_CONTROL_RUNTIME_INTERNAL_H

#include <pthread.h>

#include "connectors/connector.h"
#include "connectors/file/file.h"
#include "connectors/sink.h"
#include "connectors/source.h"
#include "connectors/unit.h"
#include "core/clock.h"
#include "core/hash.h"
#include "core/log.h"
#include "engine/pool.h"
#include "engine/schema_out.h"
#include "engine/table.h"
#include "engine/task.h"
#include "schema/dm_schema_registry.h"

#include "control/plan.h"
#include "control/runtime.h"

typedef enum { U_SOURCE, U_TASK, U_TABLE, U_SINK } unit_kind_t;

/* A pipeline's plan, shared by its units (they borrow its strings). */
typedef struct plan_ref {
    dm_pipeline_plan_t *plan;
    int refs;
} plan_ref_t;

typedef struct unit {
    unit_kind_t kind;
    char owner[160]; /* "Source/plays", "Pipeline/us-plays" */
    char name[256];
    dm_unit_status_t st;
    pthread_t th;
    bool started;
    dm_job_t *job; /* task: its job in the worker pool (no thread of its own) */
    dm_runtime_t *rt;
    /* source connector (connectors/source.h): the runtime knows only its ops */
    const dm_source_ops_t *src_ops;
    void *src_state;              /* from ops->open, released by ops->close */
    void *src_conf;               /* its config struct (ops->def.config), owned */
    struct source_lent *src_lent; /* the env it was lent and what that points to, owned */
    /* task */
    dm_task_t *task;
    plan_ref_t *plan;   /* tasks, tables and sinks of a pipeline: its plan */
    dm_plan_task_t *pt; /* task: the config it was opened with */
    /* table reader */
    dm_table_t *table;
    char topic[256];
    int32_t partitions;
    /* sinks: every type on the common runner (connectors/sink.h) */
    dm_sink_run_config_t run;
    void *run_conf;                   /* the type's config struct */
    dm_strlist_t run_keys;            /* the input source's key fields */
    dm_schema_registry_t *run_reg;    /* this thread's registry handle */
    struct schema_entry *run_schemas; /* schemas it looked up by id */
    char group[300];
    json_t *owned;          /* JSON the unit's config strings point into */
    _Atomic bool ready;     /* table: caught up with its topic once */
    struct unit *tables[8]; /* task: the tables its enrich steps read */
    int n_tables;
    struct unit *next;
    struct unit *onext; /* next unit in its owner's bucket of dm_runtime.by_owner */
} unit_t;

typedef struct schema_entry {
    int64_t id;
    dm_avro_schema_t *schema;
    struct schema_entry *next;
} schema_entry_t;

#define OWNER_BUCKETS 16384 /* a power of two */

struct dm_runtime {
    char *data_dir;
    dm_store_t *store;
    dm_metrics_t *metrics;
    dm_transport_t *t;
    dm_schema_registry_t *reg;
    pthread_mutex_t mu;
    unit_t *units;
    schema_entry_t *schemas; /* parsed once, kept for the runtime's life */
    json_t *running;         /* "Kind/name" → the document its units run */
    dm_pool_t *pool;         /* runs the task units */
    dm_proc_env_t env;
    pthread_mutex_t url_mu;  /* guards registry_url (sinks read it from their threads) */
    char registry_url[256];  /* the controller's registry API, for sinks */
    char *transport_url;     /* NULL: the embedded log in DATA/log */
    bool external_tasks;     /* pipeline tasks run in `datamesh worker` processes */
    json_t *worker_tasks;    /* "Pipeline/name" → its plan, for workers */
    int64_t plan_generation; /* the last generation given to a plan in worker_tasks */
    json_t *worker_changes;  /* "Pipeline/name" → the generation a schema change was met at */
    json_t *waiting;         /* "Pipeline/name" → why it cannot start yet */
    pthread_t reconciler;    /* syncs again while some pipeline waits */
    bool reconciling;
    _Atomic bool stopping;
    /* Units by a hash of their owner, so the status of one object does not
     * walk the units of every other (tens of thousands at scale). */
    unit_t *by_owner[OWNER_BUCKETS];
    /* Pipelines whose tasks met a new schema version of their input (evolve,
     * lenient): "Pipeline/name" → what they met. The reconciler recompiles
     * and restarts them from their committed positions. */
    pthread_mutex_t restart_mu;
    json_t *restarts;
    json_t *last_restart; /* "Pipeline/name" → what its last restart was for */
    /* Schema changes met and what was done, newest last (capped): served by
     * GET /api/v1/schema-changes. Under restart_mu. */
    json_t *schema_changes;
};

/* Asks the reconciler to recompile and restart owner ("Pipeline/name")
 * because of what (a task's message). False, asking nothing, when the last
 * restart of owner was for the very same what: the recompiled plan did not
 * make that record readable (its schema id is no version of the source's
 * subject), and restarting again would loop. Any thread; takes no lock but
 * restart_mu. */
bool dm_runtime_request_restart(dm_runtime_t *rt, const char *owner, const char *what);

/* Records a schema change met by owner and the action taken (restart,
 * pause, ...). Any thread; takes no lock but restart_mu. */
void dm_runtime_note_schema_change(dm_runtime_t *rt, const char *owner, const char *policy,
                                   const char *action, const char *what);

/* The parsed schema of a registry id, cached for the runtime's life (lock held). */
dm_avro_schema_t *dm_runtime_schema_locked(dm_runtime_t *rt, int64_t id, dm_error_t *err);

/* ---- shared by runtime*.c (the lock held unless said otherwise) ---------------- */

/* Registers text under subject; returns the parsed schema (cached for the
 * runtime's life) and its id, or NULL with err (incompatibility explained). */
dm_avro_schema_t *dm_runtime_register_schema(dm_runtime_t *rt, const char *subject,
                                             const char *text, int64_t *id, dm_error_t *err);

/* Sets err to subject's incompatibility, the report's reasons joined. */
dm_err_t dm_runtime_incompatible(dm_error_t *err, const char *subject,
                                 const dm_schema_compat_report_t *report);

/* The JSON of the record that holds a source's key fields (spec.key) of its
 * value schema s, as it is registered under NAME-key (malloc'd; NULL when out
 * of memory). Key names that are not fields of s are skipped. */
char *dm_runtime_key_schema_json(const dm_avro_schema_t *s, const json_t *key);

/* Creates topic name unless it exists. */
dm_err_t dm_runtime_ensure_topic(dm_runtime_t *rt, const char *name, int32_t partitions,
                                 const char *subject, dm_error_t *err);

/* Partitions of topic name; 0 when it does not exist. */
int32_t dm_runtime_topic_partitions(dm_runtime_t *rt, const char *name);

/* A new unit of owner, linked into the runtime's lists (not started). */
unit_t *dm_runtime_unit_new(dm_runtime_t *rt, unit_kind_t kind, const char *owner,
                            const char *name);

/* Starts u on a thread of its own running thread_main(u), or, when
 * thread_main is NULL, as a job of the worker pool (a task). */
void dm_runtime_unit_start(unit_t *u, void *(*thread_main)(void *));

/* A failed unit that only carries the reason, so status shows it. */
void dm_runtime_unit_failed(dm_runtime_t *rt, const char *owner, const char *what, const char *msg);

/* Takes the runtime's lock from a unit's own thread; false when the unit is
 * asked to stop meanwhile (the runtime may hold the lock while joining it). */
bool dm_runtime_lock_unless_stopping(unit_t *u);

/* One step of a task unit on a pool worker (engine/pool.h). */
dm_job_next_t dm_runtime_task_step(void *arg, dm_job_wait_t *w);

/* The table an enrich step reads (dm_proc_env_t.table). */
dm_table_t *dm_runtime_env_table(void *ctx, const char *source, dm_error_t *err);

/* Releases what a sink unit on the common runner holds. */
void dm_runtime_free_runner_sink(unit_t *u);

/* Closes a source unit's connector and frees its config (its thread, if it
 * had one, has returned). */
void dm_runtime_free_source(unit_t *u);

/* Starts the units of a Source document. */
void dm_runtime_start_source(dm_runtime_t *rt, const json_t *doc);

/* Compiles a Pipeline document against the registry (registering what it
 * writes) and starts its units; stored_sources/sinks: name → doc.
 * DM_ERR_AGAIN (err says why) when it cannot start yet: nothing started. */
dm_err_t dm_runtime_start_pipeline(dm_runtime_t *rt, const json_t *doc,
                                   const json_t *stored_sources, const json_t *stored_sinks,
                                   dm_error_t *err);

/* The plan compiler's view of the runtime: the registry, topics and the
 * given documents (name → doc). dry: look schemas up without registering. */
typedef struct dm_runtime_plan_ctx {
    dm_runtime_t *rt;
    const json_t *sources, *sinks;
    bool dry;
    const json_t *batch;       /* a dry run: name → Source document being applied (may be NULL) */
    json_t *owned;             /* a dry run: schemas it parsed, freed after */
    const json_t *batch_sinks; /* a dry run: name → Sink document being applied (may be NULL) */
    const json_t *batch_processors; /* name → Processor document being applied (may be NULL) */
    json_t *processors;             /* stored Processor documents, loaded when first asked for */
    json_t *registered; /* a dry run: subject → schema text it would register (or NULL) */
    json_t *deps;       /* a dry run: what the compile read (dm_runtime_plan_deps), or NULL */
} dm_runtime_plan_ctx_t;
dm_plan_env_t dm_runtime_plan_env(dm_runtime_plan_ctx_t *c);

/* dm_runtime_plan with the lock held and the stored documents given (name →
 * doc): DM_OK with *plan_json (and *text, when not NULL), or the error. */
/* The same, and each sink's settings checked against the records it will get
 * (dm_sink_ops_t.check): what apply runs. */
dm_err_t dm_runtime_plan_check_locked(dm_runtime_t *rt, const json_t *doc,
                                      const json_t *stored_sources, const json_t *stored_sinks,
                                      const json_t *batch_sources, const json_t *batch_sinks,
                                      const json_t *batch_processors, dm_error_t *err);
dm_err_t dm_runtime_plan_locked(dm_runtime_t *rt, const json_t *doc, const json_t *stored_sources,
                                const json_t *stored_sinks, const json_t *batch_sources,
                                const json_t *batch_sinks, const json_t *batch_processors,
                                json_t **plan_json, char **text, dm_error_t *err);

/* Drops a unit's hold on its pipeline's plan (freed with the last one). */
void dm_runtime_plan_unref(plan_ref_t *ref);

#endif
