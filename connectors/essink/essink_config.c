/* connectors/essink/essink_config.c — the elasticsearch sink's settings.
 * Passwords and API keys come from environment variables or files, never from
 * the spec, so specs, the API and logs cannot leak them. */
#include <stddef.h>

#include "connectors/essink/essink.h"

static const dm_config_field_t fields[] = {
    DM_SINK_COMMON_FIELDS(dm_essink_config_t),
    {.name = "url",
     .type = DM_CFG_STRING,
     .offset = offsetof(dm_essink_config_t, url),
     .flags = DM_CFG_REQUIRED,
     .help = "http(s)://host:port of the cluster"},
    {.name = "index",
     .type = DM_CFG_STRING,
     .offset = offsetof(dm_essink_config_t, index),
     .flags = DM_CFG_REQUIRED,
     .help = "index to write (created with a mapping from the schema when missing)"},
    {.name = "key",
     .type = DM_CFG_STRING_LIST,
     .offset = offsetof(dm_essink_config_t, key),
     .help = "fields making the document id (default: the source's key; none: ids are generated)"},
    {.name = "username",
     .type = DM_CFG_STRING,
     .offset = offsetof(dm_essink_config_t, username),
     .help = "basic authentication user"},
    {.name = "password_env",
     .type = DM_CFG_STRING,
     .offset = offsetof(dm_essink_config_t, password_env),
     .help = "environment variable holding the basic authentication password"},
    {.name = "password_file",
     .type = DM_CFG_STRING,
     .offset = offsetof(dm_essink_config_t, password_file),
     .help = "file holding the basic authentication password"},
    {.name = "api_key_env",
     .type = DM_CFG_STRING,
     .offset = offsetof(dm_essink_config_t, api_key_env),
     .help = "environment variable holding an API key (Authorization: ApiKey)"},
    {.name = "api_key_file",
     .type = DM_CFG_STRING,
     .offset = offsetof(dm_essink_config_t, api_key_file),
     .help = "file holding an API key"},
    {.name = "timeout",
     .type = DM_CFG_DURATION,
     .offset = offsetof(dm_essink_config_t, timeout_ms),
     .def = "30s",
     .min = 100,
     .max = 600000,
     .help = "time limit of one request"},
};

const dm_config_table_t dm_essink_config_table = {"elasticsearch sink", fields,
                                                  sizeof(fields) / sizeof(fields[0])};
