/* control/plugins.h — every source connector, sink type and processor this
 * build has, with its summary and settings, read from the registries
 * (connectors/registry.c, engine/processor.c) and their config tables.
 *
 * One description serves `datamesh plugins [-o json]`, GET /api/v1/plugins
 * and docs/plugins-reference.md (`datamesh plugins --docs`), so what users
 * read is what the parsers enforce.
 */
#ifndef DM_CONTROL_PLUGINS_H
#define DM_CONTROL_PLUGINS_H

#include <jansson.h>

#include "core/buf.h"
#include "core/error.h"

/* {"sources": [...], "sinks": [...], "processors": [...]}: each item
 * {"name", "summary", "settings": [dm_config_describe_json]}; processors add
 * "shorthand" (the setting a bare step value stands for, or null) and
 * "stateful". New reference. */
json_t *dm_plugins_json(void);

/* Appends the Markdown reference page (docs/plugins-reference.md) to out. */
dm_err_t dm_plugins_markdown(dm_buf_t *out);

#endif
