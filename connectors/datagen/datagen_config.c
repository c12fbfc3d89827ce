/* connectors/datagen/datagen_config.c — the datagen connector's settings. */
#include <stddef.h>

#include "connectors/datagen/datagen.h"

static const dm_config_field_t fields[] = {
    {.name = "rate",
     .type = DM_CFG_INT,
     .offset = offsetof(dm_datagen_config_t, rate),
     .def = "1000",
     .min = 1,
     .max = 10000000,
     .help = "events per second"},
    {.name = "seed",
     .type = DM_CFG_INT,
     .offset = offsetof(dm_datagen_config_t, seed),
     .def = "1",
     .help = "random seed; the same seed gives the same events"},
    {.name = "max_events",
     .type = DM_CFG_INT,
     .offset = offsetof(dm_datagen_config_t, max_events),
     .def = "0",
     .min = 0,
     .max = 9e18,
     .help = "stop after this many events (0 = never)"},
    {.name = "keys",
     .type = DM_CFG_INT,
     .offset = offsetof(dm_datagen_config_t, keys),
     .def = "0",
     .min = 0,
     .max = 1e12,
     .help = "draw key fields from this many distinct values (0 = unique)"},
};

const dm_config_table_t dm_datagen_config_table = {"datagen connector", fields,
                                                   sizeof(fields) / sizeof(fields[0])};
