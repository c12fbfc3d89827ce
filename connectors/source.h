/* connectors/source.h — the interface of a source connector.
 *
 * A source connector (datagen, file, postgres, ingest, …) is one const
 * dm_source_ops_t (STYLE.md habit 4) plus a config table, listed by one line in
 * connectors/registry.c. The runtime (control/runtime_source.c) never names a
 * connector; for each Source spec it does what is the same for all of them:
 *
 *   1. looks the connector up (dm_source_ops_find) and parses spec.config into
 *      a config struct of ops->def.config_size through ops->def.config;
 *   2. when ops->def.needs_schema, registers spec.schema under NAME-value (and
 *      a record of the key fields under NAME-key) and creates the topic NAME;
 *      a connector that reads its schemas from elsewhere (postgres) registers
 *      them itself through env->register_schema;
 *   3. when ops->dead_letters, creates the topic source.NAME.dlq;
 *   4. when ops->runs_thread: open(conf, env) → state, then run(state) on a
 *      thread of the source's own, and close(state) once run has returned
 *      (the spec changed or was deleted, or the runtime stops). A source
 *      without a thread (ingest) is filled by the API through push.
 *
 * Usage sketch (what the runtime does; see runtime_source.c):
 *
 *     const dm_source_ops_t *ops = dm_source_ops_find("datagen");
 *     void *conf = calloc(1, ops->def.config_size), *state;
 *     dm_config_defaults(ops->def.config, conf, &err);
 *     dm_config_apply_json(ops->def.config, conf, spec_config, NULL, &err);
 *     ops->open(conf, &env, &state, &err);          // controller thread
 *     ops->run(state, &status);                     // the unit's thread, until status.stop
 *     ops->close(state);                            // after run returned
 *     dm_config_free(ops->def.config, conf); free(conf);
 *
 * Positions: a connector commits its position with the records it produced
 * (connectors/emit.h: one transaction), so a restart resumes exactly there.
 */
#ifndef DM_CONNECTORS_SOURCE_H
#define DM_CONNECTORS_SOURCE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "connectors/connector.h"
#include "core/config.h"
#include "core/error.h"

struct dm_transport;
struct dm_avro_schema;
struct dm_metrics;
struct dm_unit_status;

/* What the runtime lends a source. Every pointer is borrowed and stays valid
 * until close returns (for push: until push returns). */
typedef struct dm_source_env {
    const char *name; /* the source's catalog name: "orders" */
    struct dm_transport *transport;
    const char *topic; /* the source's topic (its name) */
    int32_t partitions;
    /* The registered value schema and its id, and the record of the key fields
     * and its id (NULL / 0 without spec.key). Both NULL when the connector
     * does not need a schema in the spec (ops->def.needs_schema false). */
    const struct dm_avro_schema *value_schema;
    uint32_t value_schema_id;
    const struct dm_avro_schema *key_schema;
    uint32_t key_schema_id;
    const dm_strlist_t *key_fields; /* spec.key (never NULL; may be empty) */
    struct dm_metrics *metrics;     /* where the source's metrics go; may be NULL */
    const char *dead_letter_topic;  /* source.NAME.dlq when ops->dead_letters, else NULL */
    /* spec.schema as JSON text for a connector that builds its own schemas
     * around it (ops->def.needs_schema false, e.g. cockroachdb); NULL when
     * the spec has none. */
    const char *declared_schema;
    /* Creates topic (partitions, values registered under subject, which may be
     * NULL) unless it exists. Any thread. */
    dm_err_t (*ensure_topic)(void *ctx, const char *topic, int32_t partitions, const char *subject,
                             dm_error_t *err);
    /* Registers the schema text json under subject through the registry's
     * compatibility check and sets *id; an incompatible schema fails with the
     * registry's reasons. Called on the source's thread; fails with
     * DM_ERR_AGAIN when the runtime is stopping the source meanwhile (the
     * source then returns from run). */
    dm_err_t (*register_schema)(void *ctx, const char *subject, const char *json, uint32_t *id,
                                dm_error_t *err);
    void *ctx; /* the callbacks' first argument */
    /* The parsed schema registered as id when it is a live version of subject
     * (an older one a producer still writes with), else NULL; alive as long
     * as the runtime. May be NULL (only the current schema is known). Any
     * thread. */
    const struct dm_avro_schema *(*schema_version)(void *ctx, const char *subject, uint32_t id);
} dm_source_env_t;

/* A source connector. Threads: open and close run on the controller's thread
 * (under the runtime's lock); run on the unit's own thread; status_json and
 * snapshot on API threads while run is running (the state must guard what
 * they share with run); push on API threads, concurrently. */
typedef struct dm_source_ops {
    /* name (as written in specs), summary, config table and size of its config
     * struct, needs_schema: what spec validation reads (control/spec.c). */
    dm_connector_def_t def;
    /* The source runs a thread (run); false for a source filled by the API
     * (push). */
    bool runs_thread;
    /* The runtime creates source.NAME.dlq before open, for records the source
     * cannot turn into its schema (env->dead_letter_topic). */
    bool dead_letters;
    /* dm_runtime_sync waits (up to 3 s) for the source's first commit
     * (status->position > 0) before it starts pipelines, so that the tables
     * enrich keeps start with rows: for sources that produce at once. */
    bool await_first_commit;
    /* Prepares the source; conf is the parsed config struct, borrowed until
     * close. Sets *state (owned by the source, released by close). An error
     * (named setting, secret-free) shows as the unit's failed state. */
    dm_err_t (*open)(const void *conf, const dm_source_env_t *env, void **state, dm_error_t *err);
    /* Produces until status->stop is set (or the source is done: state
     * "done"); retries what can be retried, with the reason in status. */
    void (*run)(void *state, struct dm_unit_status *status);
    /* Releases state (after run returned, or when run never started). */
    void (*close)(void *state);
    /* Optional: the connector's details for status (a new reference), shown
     * under the connector's name in the unit of GET …/sources/{name}/status. */
    json_t *(*status_json)(void *state);
    /* Optional: asks for a snapshot of table ("schema.table", NULL: every
     * table), optionally of the key range [from, to] (either NULL: open).
     * DM_ERR_NOT_FOUND for a table the source does not capture. */
    dm_err_t (*snapshot)(void *state, const char *table, const char *from, const char *to,
                         dm_error_t *err);
    /* A source without a thread: writes the records of a request body (JSON)
     * into env->topic, all or none, and sets *accepted. conf as in open.
     * Errors: DM_ERR_RANGE when the request is larger than the source accepts,
     * DM_ERR_INVALID for a malformed request, DM_ERR_SCHEMA_MISMATCH for a
     * record that is not one of the schema (the message names the record's
     * index and the field), DM_ERR_AGAIN when nothing could be written now. */
    dm_err_t (*push)(const void *conf, const dm_source_env_t *env, const void *body, size_t len,
                     size_t *accepted, dm_error_t *err);
    /* Optional, for a source with a thread that also takes requests (the
     * cockroachdb webhook at POST /api/v1/sources/{name}/changefeed): hands
     * it a request body; errors as push. The runtime calls it on API threads
     * while the source is open (under the runtime's lock, so close waits). */
    dm_err_t (*receive)(void *state, const void *body, size_t len, size_t *accepted,
                        dm_error_t *err);
} dm_source_ops_t;

/* The source connector called name, or NULL (the list is in
 * connectors/registry.c). */
const dm_source_ops_t *dm_source_ops_find(const char *name);

/* Every available source connector, in registry order; *n gets how many. */
const dm_source_ops_t *const *dm_source_ops_list(size_t *n);

#endif
