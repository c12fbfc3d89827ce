/* connectors/ingest/ingest_config.c — the ingest connector's settings. */
#include <stddef.h>

#include "connectors/ingest/ingest.h"

static const dm_config_field_t fields[] = {
    {.name = "max_records",
     .type = DM_CFG_INT,
     .offset = offsetof(dm_ingest_config_t, max_records),
     .def = "10000",
     .min = 1,
     .max = 1000000,
     .help = "records accepted per request"},
    {.name = "max_bytes",
     .type = DM_CFG_SIZE,
     .offset = offsetof(dm_ingest_config_t, max_bytes),
     .def = "8MiB",
     .min = 1024,
     .max = 16 * 1048576.0,
     .help = "largest request body"},
};

const dm_config_table_t dm_ingest_config_table = {"ingest connector", fields,
                                                  sizeof(fields) / sizeof(fields[0])};
