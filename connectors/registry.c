/* connectors/registry.c — the one list of connectors and sink types. Adding
 * one is a line here plus its folder. */
#include <stdio.h>
#include <string.h>

#include "connectors/cockroachdb/cockroachdb.h"
#include "connectors/connector.h"
#include "connectors/datagen/datagen.h"
#include "connectors/essink/essink.h"
#include "connectors/file/file.h"
#include "connectors/iceberg/iceberg.h"
#include "connectors/ingest/ingest.h"
#include "connectors/kafkasink/kafkasink.h"
#include "connectors/mysql/mysql.h"
#include "connectors/pgsink/pgsink.h"
#include "connectors/postgres/postgres.h"
#include "connectors/sink.h"
#include "connectors/source.h"

const char *const dm_source_connector_names[] = {"postgres", "mysql", "cockroachdb", "ingest",
                                                 "datagen",  "file",  NULL};

const char *const dm_sink_type_names[] = {"topic",    "kafka", "iceberg", "elasticsearch",
                                          "postgres", "file",  NULL};

/* Source connectors: one line each (connectors/source.h). */
static const dm_source_ops_t *const sources[] = {
    &dm_datagen_source_ops,  &dm_ingest_source_ops, &dm_file_source_ops,
    &dm_postgres_source_ops, &dm_mysql_source_ops,  &dm_cockroachdb_source_ops,
};

static const dm_connector_def_t sinks[] = {
    {"file", "JSON lines or Avro container files, rolled by size or time",
     &dm_file_sink_config_table, sizeof(dm_file_sink_config_t), false},
    {"postgres", "rows upserted by key into a table it creates and evolves, exactly once",
     &dm_pgsink_config_table, sizeof(dm_pgsink_config_t), false},
    {"elasticsearch", "documents indexed by key through the _bulk API", &dm_essink_config_table,
     sizeof(dm_essink_config_t), false},
    {"kafka", "records onto an external Kafka topic, schemas in its registry",
     &dm_kafkasink_config_table, sizeof(dm_kafkasink_config_t), false},
    {"iceberg", "Apache Iceberg v2 tables (Parquet), exactly-once commits, CDC upserts",
     &dm_iceberg_sink_config_table, sizeof(dm_iceberg_sink_config_t), false},
};

/* Every sink type: each runs on the common runner (connectors/sink.h). */
static const dm_sink_ops_t *const sink_ops[] = {
    &dm_pgsink_ops, &dm_essink_ops, &dm_kafkasink_ops, &dm_file_sink_ops, &dm_iceberg_sink_ops,
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const dm_connector_def_t *find(const dm_connector_def_t *defs, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(defs[i].name, name)) return &defs[i];
    return NULL;
}

const dm_source_ops_t *dm_source_ops_find(const char *name)
{
    for (size_t i = 0; name && i < N(sources); i++)
        if (!strcmp(sources[i]->def.name, name)) return sources[i];
    return NULL;
}

const dm_source_ops_t *const *dm_source_ops_list(size_t *n)
{
    *n = N(sources);
    return sources;
}

const dm_connector_def_t *dm_source_connector_find(const char *name)
{
    const dm_source_ops_t *ops = dm_source_ops_find(name);
    return ops ? &ops->def : NULL;
}

const dm_connector_def_t *dm_sink_type_find(const char *name)
{
    return find(sinks, N(sinks), name);
}

const dm_sink_ops_t *dm_sink_ops_find(const char *name)
{
    for (size_t i = 0; name && i < N(sink_ops); i++)
        if (!strcmp(sink_ops[i]->name, name)) return sink_ops[i];
    return NULL;
}

static void names(const dm_connector_def_t *defs, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && o < cap; i++)
        o += (size_t)snprintf(out + o, cap - o, "%s%s", i ? ", " : "", defs[i].name);
}

void dm_source_connectors_available(char *out, size_t cap)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < N(sources) && o < cap; i++)
        o += (size_t)snprintf(out + o, cap - o, "%s%s", i ? ", " : "", sources[i]->def.name);
}

void dm_sink_types_available(char *out, size_t cap)
{
    names(sinks, N(sinks), out, cap);
}
