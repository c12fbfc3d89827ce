/* connectors/kafkasink/kafkasink.h — the kafka sink: records of a topic onto a
 * topic of an external Kafka cluster (librdkafka; idempotent producer,
 * acks=all) in the Confluent wire format, with their schemas registered in a
 * schema registry it is pointed at (the controller's own by default). */
#ifndef DM_CONNECTORS_KAFKASINK_H
#define DM_CONNECTORS_KAFKASINK_H

#include "connectors/sink.h"
#include "core/config.h"

typedef struct dm_kafkasink_config {
    dm_sink_common_config_t common;
    char *brokers;        /* bootstrap servers host:port,… */
    char *topic;          /* the external topic */
    char *registry_url;   /* Confluent-compatible registry; default: the controller's */
    char *value_subject;  /* default TOPIC-value */
    char *key_subject;    /* default TOPIC-key */
    int compression;      /* none, gzip, snappy, lz4, zstd */
    char *sasl_mechanism; /* PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 (empty: no SASL) */
    char *sasl_username;
    char *sasl_password_env; /* the SASL password: environment variable */
    char *sasl_password_file;
    bool tls;           /* SASL_SSL / SSL instead of plaintext */
    int64_t timeout_ms; /* how long a batch may take to be acknowledged */
} dm_kafkasink_config_t;

extern const dm_config_table_t dm_kafkasink_config_table;
extern const dm_sink_ops_t dm_kafkasink_ops;

#endif
