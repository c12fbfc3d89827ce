/* control/runtime_internal.h — what the runtime's files share: the units it
 * runs and the runtime's state. Not for use outside control/runtime*.c. */
#ifndef DM_CONTROL_RUNTIME_INTERNAL_H
#define DM_CONTROL_RUNTIME_INTERNAL_H

#include <pthread.h>

#include "connectors/connector.h"
#include "connectors/datagen/datagen.h"
#include "connectors/file/file.h"
#include "connectors/postgres/postgres.h"
#include "connectors/sink.h"
#include "connectors/unit.h"
#include "core/clock.h"
#include "core/hash.h"
#include "core/log.h"
#include "engine/pool.h"
#include "engine/schema_out.h"
#include "engine/table.h"
#include "engine/task.h"
#include "schema/dm_schema_registry.h"

#include "control/runtime.h"

typedef enum { U_DATAGEN, U_TASK, U_TABLE, U_SINK, U_FILE_SOURCE, U_PGSOURCE } unit_kind_t;

typedef struct unit {
    unit_kind_t kind;
    char owner[160]; /* "Source/plays", "Pipeline/us-plays" */
    char name[256];
    dm_unit_status_t st;
    pthread_t th;
    bool started;
    dm_job_t *job;   /* task: its job in the worker pool (no thread of its own) */
    int64_t backoff; /* task: ms before the next try after a failed step */
    dm_runtime_t *rt;
    /* datagen */
    dm_datagen_source_t dg;
    /* task */
    dm_task_t *task;
    /* table reader */
    dm_table_t *table;
    char topic[256];
    int32_t partitions;
    /* file source */
    dm_file_source_t fsrc;
    dm_file_source_config_t fsrc_conf;
    /* sinks: every type on the common runner (connectors/sink.h) */
    dm_sink_run_config_t run;
    void *run_conf;                   /* the type's config struct */
    dm_strlist_t run_keys;            /* the input source's key fields */
    dm_schema_registry_t *run_reg;    /* this thread's registry handle */
    struct schema_entry *run_schemas; /* schemas it looked up by id */
    /* postgres source */
    dm_pg_source_t *pg;
    dm_postgres_config_t pg_conf;
    dm_pg_callbacks_t pg_cb;
    char group[300];
    json_t *owned;          /* JSON the unit's config strings point into */
    _Atomic bool ready;     /* table: caught up with its topic once */
    struct unit *tables[8]; /* task: the tables its enrich steps read */
    int n_tables;
    const char *extra[8]; /* task: topics of route outputs (strings in owned) */
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
    pthread_mutex_t url_mu; /* guards registry_url (sinks read it from their threads) */
    char registry_url[256]; /* the controller's registry API, for sinks */
    char *transport_url;    /* NULL: the embedded log in DATA/log */
    bool external_tasks;    /* pipeline tasks run in `datamesh worker` processes */
    json_t *worker_tasks;   /* "Pipeline/name" → what a worker needs to run it */
    /* Units by a hash of their owner, so the status of one object does not
     * walk the units of every other (tens of thousands at scale). */
    unit_t *by_owner[OWNER_BUCKETS];
};

/* The parsed schema of a registry id, cached for the runtime's life (lock held). */
dm_avro_schema_t *dm_runtime_schema_locked(dm_runtime_t *rt, int64_t id, dm_error_t *err);

/* A pipeline step of the spec ({"filter": "expr"}, {"project": [...]}, …) as
 * its processor's settings (new reference); *kind gets the step's name. */
json_t *dm_runtime_step_config(const json_t *step, const char **kind);

/* ---- shared by runtime*.c (the lock held unless said otherwise) ---------------- */

/* Registers text under subject; returns the parsed schema (cached for the
 * runtime's life) and its id, or NULL with err (incompatibility explained). */
dm_avro_schema_t *dm_runtime_register_schema(dm_runtime_t *rt, const char *subject,
                                             const char *text, int64_t *id, dm_error_t *err);

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

/* Starts the units of a Source document. */
void dm_runtime_start_source(dm_runtime_t *rt, const json_t *doc);

/* Starts the units of a Pipeline document; stored_sources/sinks: name → doc. */
void dm_runtime_start_pipeline(dm_runtime_t *rt, const json_t *doc, const json_t *stored_sources,
                               const json_t *stored_sinks);

#endif
