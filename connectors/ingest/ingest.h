/* connectors/ingest/ingest.h — events POSTed by applications
 * (POST /api/v1/sources/{name}/events, the emitter library, `datamesh
 * produce`). The source has no thread: the API hands each request body to
 * dm_ingest_push, which validates every record against the source's schema
 * and writes them all in one transaction, or none. */
#ifndef DM_CONNECTORS_INGEST_H
#define DM_CONNECTORS_INGEST_H

#include <stddef.h>
#include <stdint.h>

#include "connectors/source.h"
#include "core/config.h"

typedef struct dm_ingest_config {
    int64_t max_records; /* per request */
    int64_t max_bytes;   /* per request body */
} dm_ingest_config_t;

extern const dm_config_table_t dm_ingest_config_table;

/* Writes the records of body (a JSON array of records, or one record object)
 * to env->topic: each is validated and encoded against env->value_schema (key
 * from env->key_schema), spread over the partitions by key, and all are
 * committed in one transaction; on any error nothing is written. *accepted
 * gets the number written. Errors: DM_ERR_RANGE for a body larger than
 * conf->max_bytes; DM_ERR_INVALID when body is not JSON or not 1 to
 * conf->max_records records; DM_ERR_SCHEMA_MISMATCH for a record that is not
 * one of the schema ("record I: " and the field path); DM_ERR_AGAIN when the
 * source is not ready or the write failed (retry). Any thread; nothing is
 * kept after it returns. */
dm_err_t dm_ingest_push(const dm_ingest_config_t *conf, const dm_source_env_t *env,
                        const void *body, size_t len, size_t *accepted, dm_error_t *err);

/* A body starting with these 4 bytes is a binary batch (what the emitter
 * library sends, POST /api/v1/sources/{name}/events/avro), all integers
 * big-endian:
 *   "DMB1" | u8 n, n bytes producer id (a-z 0-9 - _) | u64 first sequence
 *   number | u32 count | count × (u32 length, a Confluent-framed Avro value:
 *   0x00, u32 schema id, the value)
 * The values carry the source's current schema id (checked in place and
 * written as they are) or the id of an older live version of its value
 * subject (read as the current schema and written with it: a producer that
 * has not yet seen a new version). The producer's next
 * sequence number is committed as group producer.ID's offset with the
 * records, in one transaction: records numbered below it were delivered
 * before and are skipped, so a producer retrying a batch writes it once.
 * One producer sends one batch at a time. */
#define DM_INGEST_BATCH_MAGIC "DMB1"

/* The ingest connector (registered in connectors/registry.c). */
extern const dm_source_ops_t dm_ingest_source_ops;

#endif
