/* tests/integration/iceberg_run.h — runs the iceberg sink type on the common
 * sink runner (dm_sink_run) from what the iceberg tests and the benchmark
 * describe: a topic, its schema, the source's key and the sink's settings. */
#ifndef DM_TESTS_ICEBERG_RUN_H
#define DM_TESTS_ICEBERG_RUN_H

#include "connectors/iceberg/iceberg.h"
#include "connectors/sink.h"
#include "connectors/unit.h"
#include "schema/dm_avro.h"
#include "transport/transport.h"

typedef struct ice_sink {
    dm_transport_t *transport;
    const char *topic;
    int32_t partitions;
    const char *group; /* the sink's id in snapshot summaries */
    const dm_avro_schema_t *schema;
    uint32_t schema_id;
    const char *const *key; /* the source's key fields */
    size_t n_key;
    dm_sink_schema_fn schema_lookup; /* newer schema versions by id (may be NULL) */
    void *schema_lookup_ctx;
    const dm_iceberg_sink_config_t *conf;
    const char *dead_letter_topic; /* NULL: a refused record stops the sink (retrying) */
} ice_sink_t;

/* Runs the sink until status->stop, on the caller's thread. */
static inline void ice_sink_run(const ice_sink_t *s, dm_unit_status_t *status)
{
    dm_strlist_t keys = {(char **)s->key, s->n_key};
    dm_sink_run_config_t c = {.transport = s->transport,
                              .ops = &dm_iceberg_sink_ops,
                              .conf = s->conf,
                              .dead_letter_topic = s->dead_letter_topic,
                              .env = {.name = s->group,
                                      .topic = s->topic,
                                      .partitions = s->partitions,
                                      .group = s->group,
                                      .value_schema = s->schema,
                                      .value_schema_id = s->schema_id,
                                      .key_fields = &keys,
                                      .schema_by_id = s->schema_lookup,
                                      .schema_ctx = s->schema_lookup_ctx}};
    dm_sink_run(&c, status);
}

#endif
