/* connectors/file/file.h — JSON lines and Avro container files, as a source
 * (read once or followed) and as a sink (rolled by size or time). */
#ifndef DM_CONNECTORS_FILE_H
#define DM_CONNECTORS_FILE_H

#include <stdbool.h>
#include <stdint.h>

#include "connectors/sink.h"
#include "connectors/source.h"
#include "core/config.h"

enum { DM_FILE_JSONL = 0, DM_FILE_AVRO = 1 };

typedef struct dm_file_source_config {
    char *path;
    int format;
    bool follow; /* keep reading as the file grows */
} dm_file_source_config_t;

typedef struct dm_file_sink_config {
    dm_sink_common_config_t common; /* batching and retries (connectors/sink.h) */
    char *path;
    int format;
    int64_t roll_bytes; /* start a new file past this size */
    int64_t roll_ms;    /* start a new file after this long */
    int codec;          /* Avro container codec: null, deflate, snappy, zstandard */
} dm_file_sink_config_t;

extern const dm_config_table_t dm_file_source_config_table;
extern const dm_config_table_t dm_file_sink_config_table;

struct dm_transport;
struct dm_unit_status;
struct dm_avro_schema;

/* A file source writing a source's topic. */
typedef struct dm_file_source {
    struct dm_transport *transport;
    const char *topic;
    int32_t partitions;
    const struct dm_avro_schema *schema; /* value schema */
    uint32_t schema_id;
    const struct dm_avro_schema *key_schema; /* record of the key fields, or NULL */
    uint32_t key_schema_id;
    const char *dead_letter_topic; /* lines that are not records of the schema */
    const dm_file_source_config_t *conf;
} dm_file_source_t;

/* Reads conf->path into the topic until the end (state "done") or, when
 * following, until status->stop. Records commit in batches with the position
 * (group "connector.<topic>"), so a restart resumes after the last committed
 * record. Avro files are resolved to the source's schema; JSON lines are plain
 * JSON objects of it. Runs on the unit's thread. */
void dm_file_source_run(const dm_file_source_t *src, struct dm_unit_status *status);

/* The file connector (registered in connectors/registry.c). */
extern const dm_source_ops_t dm_file_source_ops;

/* The file sink on the common runner: JSON lines (one plain-JSON object of
 * each whole value) or Avro container files (one schema each: a new schema
 * version rolls the file). Each batch is flushed and fsynced before its
 * offsets are committed (at-least-once: after a crash the last batch may be
 * written again; a failed write is cut back off the file first). Files roll
 * to PATH.N by size or age. Callbacks run on the sink unit's thread. */
extern const dm_sink_ops_t dm_file_sink_ops;

#endif
