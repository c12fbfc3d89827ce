/* core/config.h — declarative configuration tables (STYLE.md habit 5).
 *
 * A component declares its settings once, as an array of dm_config_field_t
 * (name, type, where in its struct, default, bounds, allowed values, help).
 * That one declaration drives parsing from JSON (specs arrive as YAML or JSON
 * and are turned into jansson values), parsing of `key=value` text (CLI flags),
 * validation messages, the API's description of the settings and the docs.
 *
 *   typedef struct { int64_t rate; char *format; int64_t flush_ms; } my_conf_t;
 *   static const char *const formats[] = {"jsonl", "avro", NULL};
 *   static const dm_config_field_t my_fields[] = {
 *       {.name = "rate", .type = DM_CFG_INT, .offset = offsetof(my_conf_t, rate),
 *        .def = "1000", .min = 1, .max = 1e7, .help = "events per second"},
 *       {.name = "format", .type = DM_CFG_ENUM, .offset = offsetof(my_conf_t, format),
 *        .def = "jsonl", .enum_values = formats, .help = "file format"},
 *       ...
 *   };
 *   DM_CONFIG_TABLE(my_table, "file sink", my_fields);
 */
#ifndef DM_CORE_CONFIG_H
#define DM_CORE_CONFIG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/error.h"

typedef enum {
    DM_CFG_BOOL,     /* bool */
    DM_CFG_INT,      /* int64_t */
    DM_CFG_DOUBLE,   /* double */
    DM_CFG_STRING,   /* char * (owned by the struct; freed by dm_config_free) */
    DM_CFG_SECRET,   /* char *, never echoed by describe/dump or in errors */
    DM_CFG_ENUM,     /* int: index into enum_values */
    DM_CFG_DURATION, /* int64_t milliseconds; "250ms", "5s", "2m", "1h", "1d" or a number of ms */
    DM_CFG_SIZE,     /* int64_t bytes; "512", "64KiB", "16MiB", "1GiB", "1GB" */
    DM_CFG_STRING_LIST, /* dm_strlist_t; a JSON array of strings or comma-separated text */
} dm_cfg_type_t;

enum {
    DM_CFG_REQUIRED = 1 << 0, /* no default: absence is an error */
};

typedef struct dm_strlist {
    char **items;
    size_t n;
} dm_strlist_t;

typedef struct dm_config_field {
    const char *name;
    dm_cfg_type_t type;
    size_t offset;                  /* offsetof the member in the target struct */
    const char *def;                /* default as text; NULL = no value (or required) */
    double min, max;                /* bounds for numbers, durations and sizes; both 0 = none */
    const char *const *enum_values; /* NULL-terminated, for DM_CFG_ENUM */
    const char *help;
    unsigned flags;
} dm_config_field_t;

typedef struct dm_config_table {
    const char *name; /* who owns it, for messages: "datagen connector" */
    const dm_config_field_t *fields;
    size_t n_fields;
} dm_config_table_t;

#define DM_CONFIG_TABLE(var, label, fields_array)                                                  \
    static const dm_config_table_t var = {label, fields_array,                                     \
                                          sizeof(fields_array) / sizeof((fields_array)[0])}

/* Tells where the value at a field path ("spec.config.rate") came from
 * ("specs/a.yaml:12:5"), so errors can point at the spec text; for a path that
 * is absent it may name its nearest present parent. Writes an empty string
 * when it does not know. */
typedef void (*dm_config_locate_fn)(void *ctx, const char *path, char *out, size_t cap);

typedef struct dm_config_source {
    const char *path;           /* field path of the object, e.g. "spec.config" ("" = top) */
    dm_config_locate_fn locate; /* optional */
    void *locate_ctx;
} dm_config_source_t;

/* Sets every field of obj to its default (fields without one are zeroed). */
dm_err_t dm_config_defaults(const dm_config_table_t *t, void *obj, dm_error_t *err);

/* Applies a JSON object onto obj, after defaults. Rejects unknown keys (listing
 * the allowed ones), wrong types, values out of bounds (naming the bounds),
 * values outside an enum (listing them) and missing required keys. The first
 * problem is reported; obj keeps whatever was already applied and must still be
 * released with dm_config_free. */
dm_err_t dm_config_apply_json(const dm_config_table_t *t, void *obj, const json_t *json,
                              const dm_config_source_t *src, dm_error_t *err);

/* Sets one field from text, as given on a command line ("rate=500"). */
dm_err_t dm_config_set_text(const dm_config_table_t *t, void *obj, const char *name,
                            const char *text, dm_error_t *err);

/* Checks that required fields are set. */
dm_err_t dm_config_check_required(const dm_config_table_t *t, const void *obj,
                                  const dm_config_source_t *src, dm_error_t *err);

/* Releases the strings and lists obj owns; leaves the fields zeroed. */
void dm_config_free(const dm_config_table_t *t, void *obj);

/* The current values as a JSON object; secrets appear as "***". New reference. */
json_t *dm_config_dump_json(const dm_config_table_t *t, const void *obj);

/* The declaration as JSON (name, type, default, bounds, values, help), for the
 * API and the UI. New reference. */
json_t *dm_config_describe_json(const dm_config_table_t *t);

/* The declaration as a Markdown table, for generated docs. */
dm_err_t dm_config_describe_markdown(const dm_config_table_t *t, dm_buf_t *out);

/* Parses "5s", "250ms", "2m", "1h", "1d" or a bare number of ms. */
dm_err_t dm_parse_duration_ms(const char *text, int64_t *out);

/* Parses "512", "64KiB", "16MiB", "1GiB", "10KB", "1GB". */
dm_err_t dm_parse_size(const char *text, int64_t *out);

/* Name of a type as users read it ("integer", "duration"). */
const char *dm_cfg_type_name(dm_cfg_type_t type);

#endif
