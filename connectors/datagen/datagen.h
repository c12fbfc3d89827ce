/* connectors/datagen/datagen.h — synthetic events from a source's Avro schema. */
#ifndef DM_CONNECTORS_DATAGEN_H
#define DM_CONNECTORS_DATAGEN_H

#include <stdint.h>

#include "connectors/source.h"
#include "core/config.h"

typedef struct dm_datagen_config {
    int64_t rate;       /* events per second */
    int64_t seed;       /* same seed, same events */
    int64_t max_events; /* 0 = unbounded */
    int64_t keys;       /* distinct key values to draw from (0 = unique keys) */
} dm_datagen_config_t;

extern const dm_config_table_t dm_datagen_config_table;

/* The generator: values of a record schema, the same sequence for the same
 * seed. Fields may carry Confluent-datagen style hints in the schema:
 *   "arg.properties": {"options": ["US", "FR"]}        pick one of these
 *   "arg.properties": {"range": {"min": 1, "max": 100}} numbers in [min, max]
 *   "arg.properties": {"iteration": {"start": 1, "step": 1}} a sequence
 *   "arg.properties": {"length": {"min": 4, "max": 12}}  string length
 * Without hints: key fields (or a field named id) count 0, 1, 2, … (modulo
 * `keys` when set), timestamp-millis/-micros fields take the current time,
 * uuid strings are random UUIDs, other numbers are uniform in [0, 1000),
 * strings are random words, nullable unions are null one time in ten. */
typedef struct dm_datagen dm_datagen_t;

struct dm_avro_schema;
struct dm_avro_value;
struct dm_arena;

/* Compiles a generator for schema (a record). key_fields (may be NULL) names
 * the source's key fields. Errors name the field whose hint is wrong. */
dm_err_t dm_datagen_new(const struct dm_avro_schema *schema, const dm_datagen_config_t *conf,
                        const dm_strlist_t *key_fields, dm_datagen_t **out, dm_error_t *err);

/* Generates the next value into arena. */
dm_err_t dm_datagen_next(dm_datagen_t *g, struct dm_arena *arena, struct dm_avro_value *out,
                         dm_error_t *err);

/* How many values were generated. */
uint64_t dm_datagen_count(const dm_datagen_t *g);

void dm_datagen_free(dm_datagen_t *g);

/* A datagen source running into a topic. */
struct dm_transport;
struct dm_unit_status;
typedef struct dm_datagen_source {
    struct dm_transport *transport;
    const char *topic;
    int32_t partitions;
    const struct dm_avro_schema *schema; /* value schema */
    uint32_t schema_id;
    const struct dm_avro_schema *key_schema; /* record of the key fields, or NULL */
    uint32_t key_schema_id;
    const dm_strlist_t *key_fields;
    dm_datagen_config_t conf;
} dm_datagen_source_t;

/* Produces events until status->stop is set or max_events are out: batches
 * every 100 ms at the configured rate, each committed together with the
 * generator's sequence number (as the offset of group "connector.TOPIC"), so
 * a restart continues the same sequence with no gap and no duplicate. Runs on
 * the unit's thread; errors are retried and shown in status. */
void dm_datagen_source_run(const dm_datagen_source_t *src, struct dm_unit_status *status);

/* The datagen connector (registered in connectors/registry.c). */
extern const dm_source_ops_t dm_datagen_source_ops;

#endif
