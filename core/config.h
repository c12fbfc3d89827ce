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
    DM_CFG_NAME,        /* char *: an object's name (a source, an output): 1-63 of a-z 0-9 - _ .,
                           starting and ending with a letter or digit */
    DM_CFG_EXPR,        /* char *: an expression over the input record, a non-empty string; it is
                           compiled by its user against the record schema */
    DM_CFG_FIELD_LIST,  /* dm_strlist_t: field paths ("a.b", "a.b AS c"); one string is a list of
                           one (never split at commas); min/max bound the number of items */
    DM_CFG_EXPR_LIST,   /* dm_strlist_t: expressions ("expr", "expr AS name"); as FIELD_LIST */
    DM_CFG_EXPR_MAP,    /* dm_strmap_t: a mapping of names (as DM_CFG_NAME) to expressions, in the
                           order written; min/max bound the number of entries */
    DM_CFG_OBJECT,      /* a nested struct at offset, declared by .table (e.g. a window) */
    DM_CFG_JSON,        /* json_t *: a mapping of anything (or a string), kept as written (an SDK
                           processor's own settings, which it checks itself); owned by the struct */
} dm_cfg_type_t;

enum {
    DM_CFG_REQUIRED = 1 << 0, /* no default: absence is an error */
};

typedef struct dm_strlist {
    char **items;
    size_t n;
} dm_strlist_t;

/* A mapping of names to text (DM_CFG_EXPR_MAP), in the order written. */
typedef struct dm_strmap {
    char **keys;
    char **values;
    size_t n;
} dm_strmap_t;

typedef struct dm_config_table dm_config_table_t;
typedef struct dm_config_source dm_config_source_t;

typedef struct dm_config_field {
    const char *name;
    dm_cfg_type_t type;
    size_t offset;   /* offsetof the member in the target struct */
    const char *def; /* default as text; NULL = no value (or required) */
    double min, max; /* bounds for numbers, durations and sizes (both 0 = none); for lists and
                        mappings the number of items (max 0 = no upper bound) */
    const char *const *enum_values; /* NULL-terminated, for DM_CFG_ENUM */
    const dm_config_table_t *table; /* DM_CFG_OBJECT: the nested settings */
    const char *help;
    unsigned flags;
    /* Optional: checks this field against the others of its object, once the
     * whole object is applied and its required fields found (a window's type
     * against its size, slide and gap). obj is the struct, json the object as
     * written (NULL when none was: tells a key given from a default), src
     * places messages (dm_config_fail). */
    dm_err_t (*check)(void *obj, const json_t *json, const dm_config_source_t *src,
                      dm_error_t *err);
} dm_config_field_t;

struct dm_config_table {
    const char *name; /* who owns it, for messages: "datagen connector" */
    const dm_config_field_t *fields;
    size_t n_fields;
};

#define DM_CONFIG_TABLE(var, label, fields_array)                                                  \
    static const dm_config_table_t var = {label, fields_array,                                     \
                                          sizeof(fields_array) / sizeof((fields_array)[0])}

/* Tells where the value at a field path ("spec.config.rate") came from
 * ("specs/a.yaml:12:5"), so errors can point at the spec text; for a path that
 * is absent it may name its nearest present parent. Writes an empty string
 * when it does not know. */
typedef void (*dm_config_locate_fn)(void *ctx, const char *path, char *out, size_t cap);

struct dm_config_source {
    const char *path;           /* field path of the object, e.g. "spec.config" ("" = top) */
    dm_config_locate_fn locate; /* optional */
    void *locate_ctx;
    /* Optional: the settings were written as the bare value of this one field
     * (a pipeline step's shorthand, `filter: "x > 1"`), so messages about it
     * name path itself ("spec.steps[0].filter", not "….filter.expr"). */
    const char *shorthand;
};

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

/* Checks that required fields are set. Only fields that hold text, lists or
 * mappings can be told unset here; dm_config_apply_json also finds required
 * numbers, durations, enums and objects missing from the JSON it applies. */
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

/* Sets err to "LOCATION: PATH.KEY: message" for a setting of the object src
 * describes (key may be a dotted path or "list[2]"; "" names the object);
 * returns code. For a table's check function. */
dm_err_t dm_config_fail(const dm_config_source_t *src, const char *key, dm_err_t code,
                        dm_error_t *err, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* True when s is a valid object name: 1-63 of a-z 0-9 - _ . starting and
 * ending with a letter or digit, no "..". Used for sources, pipelines and the
 * outputs processors publish. */
bool dm_config_name_valid(const char *s);

/* The kind of a JSON value as a message reads it: "a mapping", "a list", "a
 * string" ("an empty string"), "an integer", "a number", "a boolean", "null". */
const char *dm_config_json_kind(const json_t *j);

#endif
