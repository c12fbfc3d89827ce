/* connectors/file/file_config.c — the file source's and file sink's settings. */
#include <stddef.h>

#include "connectors/file/file.h"

static const char *const formats[] = {"jsonl", "avro", NULL};

static const dm_config_field_t source_fields[] = {
    {.name = "path",
     .type = DM_CFG_STRING,
     .offset = offsetof(dm_file_source_config_t, path),
     .flags = DM_CFG_REQUIRED,
     .help = "file to read"},
    {.name = "format",
     .type = DM_CFG_ENUM,
     .offset = offsetof(dm_file_source_config_t, format),
     .def = "jsonl",
     .enum_values = formats,
     .help = "jsonl or avro (container file)"},
    {.name = "follow",
     .type = DM_CFG_BOOL,
     .offset = offsetof(dm_file_source_config_t, follow),
     .def = "false",
     .help = "keep reading as the file grows"},
};

const dm_config_table_t dm_file_source_config_table = {
    "file connector", source_fields, sizeof(source_fields) / sizeof(source_fields[0])};

static const char *const codecs[] = {"null", "deflate", "snappy", "zstandard", NULL};

static const dm_config_field_t sink_fields[] = {
    DM_SINK_COMMON_FIELDS(dm_file_sink_config_t),
    {.name = "path",
     .type = DM_CFG_STRING,
     .offset = offsetof(dm_file_sink_config_t, path),
     .flags = DM_CFG_REQUIRED,
     .help = "file to write (rolled files get a numeric suffix)"},
    {.name = "format",
     .type = DM_CFG_ENUM,
     .offset = offsetof(dm_file_sink_config_t, format),
     .def = "jsonl",
     .enum_values = formats,
     .help = "jsonl or avro (container file)"},
    {.name = "roll_size",
     .type = DM_CFG_SIZE,
     .offset = offsetof(dm_file_sink_config_t, roll_bytes),
     .def = "128MiB",
     .min = 4096,
     .max = 1099511627776.0,
     .help = "start a new file past this size"},
    {.name = "roll_interval",
     .type = DM_CFG_DURATION,
     .offset = offsetof(dm_file_sink_config_t, roll_ms),
     .def = "1h",
     .min = 1000,
     .max = 604800000.0,
     .help = "start a new file after this long"},
    {.name = "codec",
     .type = DM_CFG_ENUM,
     .offset = offsetof(dm_file_sink_config_t, codec),
     .def = "null",
     .enum_values = codecs,
     .help = "Avro container codec"},
};

const dm_config_table_t dm_file_sink_config_table = {"file sink", sink_fields,
                                                     sizeof(sink_fields) / sizeof(sink_fields[0])};
