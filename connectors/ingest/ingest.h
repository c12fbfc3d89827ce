/* connectors/ingest/ingest.h — events POSTed by applications. */
#ifndef DM_CONNECTORS_INGEST_H
#define DM_CONNECTORS_INGEST_H

#include <stdint.h>

#include "core/config.h"

typedef struct dm_ingest_config {
    int64_t max_records; /* per request */
    int64_t max_bytes;   /* per request body */
} dm_ingest_config_t;

extern const dm_config_table_t dm_ingest_config_table;

#endif
