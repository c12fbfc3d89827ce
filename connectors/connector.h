/* connectors/connector.h — the registry of source connectors and sink types.
 *
 * Each connector declares its settings once as a config table (core/config.h);
 * the control plane validates `spec.config` of a Source, and the flattened
 * settings of a `sink: {type: …}`, against it, so unknown keys and bad values
 * are refused when a spec is applied, not when a task starts. The lists are in
 * connectors/registry.c, one line per connector: a source connector's
 * definition is the `def` of its dm_source_ops_t (connectors/source.h).
 */
#ifndef DM_CONNECTORS_CONNECTOR_H
#define DM_CONNECTORS_CONNECTOR_H

#include <stdbool.h>
#include <stddef.h>

#include "core/config.h"

typedef struct dm_connector_def {
    const char *name;                /* as written in specs: "datagen" */
    const char *summary;             /* one line for docs and the API */
    const dm_config_table_t *config; /* its settings */
    size_t config_size;              /* sizeof its config struct */
    bool needs_schema;               /* a Source must give spec.schema (not read from a database) */
} dm_connector_def_t;

/* Every connector name a Source spec may use (DESIGN.md), NULL-terminated;
 * some may not be available in this build yet. */
extern const char *const dm_source_connector_names[];

/* Every sink type a Pipeline may write to (DESIGN.md), NULL-terminated. */
extern const char *const dm_sink_type_names[];

/* The available source connector called name (the def of its ops), or NULL. */
const dm_connector_def_t *dm_source_connector_find(const char *name);

/* The available sink type called name, or NULL. */
const dm_connector_def_t *dm_sink_type_find(const char *name);

/* Comma-separated names of the available source connectors / sink types. */
void dm_source_connectors_available(char *out, size_t cap);
void dm_sink_types_available(char *out, size_t cap);

#endif
