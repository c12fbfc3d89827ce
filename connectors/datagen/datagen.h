/* connectors/datagen/datagen.h — synthetic events from a source's Avro schema. */
#ifndef DM_CONNECTORS_DATAGEN_H
#define DM_CONNECTORS_DATAGEN_H

#include <stdint.h>

#include "core/config.h"

typedef struct dm_datagen_config {
    int64_t rate;       /* events per second */
    int64_t seed;       /* same seed, same events */
    int64_t max_events; /* 0 = unbounded */
    int64_t keys;       /* distinct key values to draw from (0 = unique keys) */
} dm_datagen_config_t;

extern const dm_config_table_t dm_datagen_config_table;

#endif
