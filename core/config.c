/* core/config.c — declarative configuration tables. */
#include "core/config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIELD(obj, f, type)  ((type *)((char *)(obj) + (f)->offset))
#define CFIELD(obj, f, type) ((const type *)((const char *)(obj) + (f)->offset))

const char *dm_cfg_type_name(dm_cfg_type_t type)
{
    switch (type) {
    case DM_CFG_BOOL: return "boolean";
    case DM_CFG_INT: return "integer";
    case DM_CFG_DOUBLE: return "number";
    case DM_CFG_STRING: return "string";
    case DM_CFG_SECRET: return "secret";
    case DM_CFG_ENUM: return "enum";
    case DM_CFG_DURATION: return "duration";
    case DM_CFG_SIZE: return "size";
    case DM_CFG_STRING_LIST: return "list of strings";
    }
    return "?";
}

/* ---- text parsers ---- */

typedef struct unit {
    const char *suffix;
    double scale;
} unit_t;

static dm_err_t parse_scaled(const char *text, const unit_t *units, size_t n_units, int64_t *out)
{
    while (isspace((unsigned char)*text))
        text++;
    if (!*text) return DM_ERR_INVALID;
    errno = 0;
    char *end;
    double v = strtod(text, &end);
    if (end == text || errno || !isfinite(v) || v < 0) return DM_ERR_INVALID;
    while (isspace((unsigned char)*end))
        end++;
    double scale = 0;
    for (size_t i = 0; i < n_units; i++)
        if (strcmp(end, units[i].suffix) == 0) {
            scale = units[i].scale;
            break;
        }
    if (scale == 0) return DM_ERR_INVALID;
    double r = v * scale;
    if (r > 9.2e18) return DM_ERR_RANGE;
    *out = (int64_t)llround(r);
    return DM_OK;
}

dm_err_t dm_parse_duration_ms(const char *text, int64_t *out)
{
    static const unit_t units[] = {{"", 1},     {"ms", 1},     {"s", 1e3},
                                   {"m", 60e3}, {"h", 3600e3}, {"d", 86400e3}};
    return parse_scaled(text, units, sizeof(units) / sizeof(units[0]), out);
}

dm_err_t dm_parse_size(const char *text, int64_t *out)
{
    static const unit_t units[] = {{"", 1},
                                   {"B", 1},
                                   {"KiB", 1024.0},
                                   {"MiB", 1048576.0},
                                   {"GiB", 1073741824.0},
                                   {"TiB", 1099511627776.0},
                                   {"KB", 1e3},
                                   {"MB", 1e6},
                                   {"GB", 1e9},
                                   {"TB", 1e12},
                                   {"k", 1024.0},
                                   {"K", 1024.0},
                                   {"M", 1048576.0},
                                   {"G", 1073741824.0}};
    return parse_scaled(text, units, sizeof(units) / sizeof(units[0]), out);
}

/* ---- helpers ---- */

static void where(const dm_config_source_t *src, const json_t *node, const char *key, char *out,
                  size_t cap)
{
    (void)node;
    char loc[256] = "", full[512];
    const char *path = src && src->path ? src->path : "";
    snprintf(full, sizeof(full), "%s%s%s", path, path[0] && key[0] ? "." : "", key);
    if (src && src->locate) src->locate(src->locate_ctx, full, loc, sizeof(loc));
    snprintf(out, cap, "%s%s%s", loc, loc[0] ? ": " : "", full);
}

static void list_allowed(const dm_config_table_t *t, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < t->n_fields && o < cap; i++)
        o += (size_t)snprintf(out + o, cap - o, "%s%s", i ? ", " : "", t->fields[i].name);
}

static void list_enum(const dm_config_field_t *f, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; f->enum_values[i] && o < cap; i++)
        o += (size_t)snprintf(out + o, cap - o, "%s%s", i ? ", " : "", f->enum_values[i]);
}

static bool has_bounds(const dm_config_field_t *f)
{
    return f->min != 0 || f->max != 0;
}

static const dm_config_field_t *find_field(const dm_config_table_t *t, const char *name)
{
    for (size_t i = 0; i < t->n_fields; i++)
        if (strcmp(t->fields[i].name, name) == 0) return &t->fields[i];
    return NULL;
}

static void free_field(const dm_config_field_t *f, void *obj)
{
    if (f->type == DM_CFG_STRING || f->type == DM_CFG_SECRET) {
        char **s = FIELD(obj, f, char *);
        free(*s);
        *s = NULL;
    } else if (f->type == DM_CFG_STRING_LIST) {
        dm_strlist_t *l = FIELD(obj, f, dm_strlist_t);
        for (size_t i = 0; i < l->n; i++)
            free(l->items[i]);
        free(l->items);
        l->items = NULL;
        l->n = 0;
    }
}

static dm_err_t check_range(const dm_config_field_t *f, double v, const char *at, const char *shown,
                            dm_error_t *err)
{
    if (!has_bounds(f) || (v >= f->min && v <= f->max)) return DM_OK;
    return dm_error_set(err, DM_ERR_CONFIG_RANGE, "%s: %s is out of range [%.17g, %.17g]", at,
                        shown, f->min, f->max);
}

/* Sets f from text. `at` names the place for messages. */
static dm_err_t set_from_text(const dm_config_field_t *f, void *obj, const char *text,
                              const char *at, dm_error_t *err)
{
    const char *shown = f->type == DM_CFG_SECRET ? "***" : text;
    switch (f->type) {
    case DM_CFG_BOOL: {
        bool v;
        if (!strcmp(text, "true") || !strcmp(text, "1") || !strcmp(text, "yes") ||
            !strcmp(text, "on"))
            v = true;
        else if (!strcmp(text, "false") || !strcmp(text, "0") || !strcmp(text, "no") ||
                 !strcmp(text, "off"))
            v = false;
        else
            return dm_error_set(err, DM_ERR_CONFIG_TYPE, "%s: expected a boolean, got '%s'", at,
                                text);
        *FIELD(obj, f, bool) = v;
        return DM_OK;
    }
    case DM_CFG_INT: {
        errno = 0;
        char *end;
        long long v = strtoll(text, &end, 10);
        if (end == text || *end || errno)
            return dm_error_set(err, DM_ERR_CONFIG_TYPE, "%s: expected an integer, got '%s'", at,
                                text);
        dm_err_t rc = check_range(f, (double)v, at, text, err);
        if (rc) return rc;
        *FIELD(obj, f, int64_t) = v;
        return DM_OK;
    }
    case DM_CFG_DOUBLE: {
        errno = 0;
        char *end;
        double v = strtod(text, &end);
        if (end == text || *end || errno || !isfinite(v))
            return dm_error_set(err, DM_ERR_CONFIG_TYPE, "%s: expected a number, got '%s'", at,
                                text);
        dm_err_t rc = check_range(f, v, at, text, err);
        if (rc) return rc;
        *FIELD(obj, f, double) = v;
        return DM_OK;
    }
    case DM_CFG_STRING:
    case DM_CFG_SECRET: {
        char *copy = strdup(text);
        if (!copy) return dm_error_set(err, DM_ERR_NOMEM, "%s: out of memory", at);
        free_field(f, obj);
        *FIELD(obj, f, char *) = copy;
        return DM_OK;
    }
    case DM_CFG_ENUM: {
        for (int i = 0; f->enum_values[i]; i++)
            if (strcmp(f->enum_values[i], text) == 0) {
                *FIELD(obj, f, int) = i;
                return DM_OK;
            }
        char allowed[512];
        list_enum(f, allowed, sizeof(allowed));
        return dm_error_set(err, DM_ERR_CONFIG_RANGE, "%s: '%s' is not one of: %s", at, shown,
                            allowed);
    }
    case DM_CFG_DURATION:
    case DM_CFG_SIZE: {
        int64_t v;
        dm_err_t rc =
            f->type == DM_CFG_DURATION ? dm_parse_duration_ms(text, &v) : dm_parse_size(text, &v);
        if (rc)
            return dm_error_set(err, DM_ERR_CONFIG_TYPE,
                                f->type == DM_CFG_DURATION
                                    ? "%s: expected a duration like 250ms, 5s, 2m, 1h, got '%s'"
                                    : "%s: expected a size like 4096, 64KiB, 16MiB, 1GiB, got '%s'",
                                at, text);
        rc = check_range(f, (double)v, at, text, err);
        if (rc) return rc;
        *FIELD(obj, f, int64_t) = v;
        return DM_OK;
    }
    case DM_CFG_STRING_LIST: {
        dm_strlist_t l = {0};
        const char *p = text;
        while (*p) {
            const char *comma = strchr(p, ',');
            size_t n = comma ? (size_t)(comma - p) : strlen(p);
            while (n && isspace((unsigned char)*p))
                p++, n--;
            while (n && isspace((unsigned char)p[n - 1]))
                n--;
            char **items = realloc(l.items, (l.n + 1) * sizeof(char *));
            char *item = items ? strndup(p, n) : NULL;
            if (!item) {
                if (items) l.items = items;
                for (size_t i = 0; i < l.n; i++)
                    free(l.items[i]);
                free(l.items);
                return dm_error_set(err, DM_ERR_NOMEM, "%s: out of memory", at);
            }
            l.items = items;
            l.items[l.n++] = item;
            p = comma ? comma + 1 : p + n;
        }
        free_field(f, obj);
        *FIELD(obj, f, dm_strlist_t) = l;
        return DM_OK;
    }
    }
    return dm_error_set(err, DM_ERR_INTERNAL, "%s: unknown config type", at);
}

/* ---- public API ---- */

dm_err_t dm_config_defaults(const dm_config_table_t *t, void *obj, dm_error_t *err)
{
    for (size_t i = 0; i < t->n_fields; i++) {
        const dm_config_field_t *f = &t->fields[i];
        if (!f->def) continue;
        char at[160];
        snprintf(at, sizeof(at), "%s default of %s", t->name, f->name);
        dm_err_t rc = set_from_text(f, obj, f->def, at, err);
        if (rc) return rc;
    }
    return DM_OK;
}

static dm_err_t apply_value(const dm_config_field_t *f, void *obj, const json_t *v, const char *at,
                            dm_error_t *err)
{
    char num[64];
    switch (json_typeof(v)) {
    case JSON_STRING:
        if (f->type == DM_CFG_BOOL || f->type == DM_CFG_INT || f->type == DM_CFG_DOUBLE)
            return dm_error_set(err, DM_ERR_CONFIG_TYPE, "%s: expected %s %s, got a string", at,
                                f->type == DM_CFG_INT ? "an" : "a", dm_cfg_type_name(f->type));
        return set_from_text(f, obj, json_string_value(v), at, err);
    case JSON_INTEGER:
        if (f->type == DM_CFG_STRING || f->type == DM_CFG_SECRET || f->type == DM_CFG_ENUM ||
            f->type == DM_CFG_BOOL || f->type == DM_CFG_STRING_LIST)
            break;
        snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return set_from_text(f, obj, num, at, err);
    case JSON_REAL:
        if (f->type == DM_CFG_INT) {
            double d = json_real_value(v);
            if (d != floor(d))
                return dm_error_set(err, DM_ERR_CONFIG_TYPE, "%s: expected an integer, got %.17g",
                                    at, d);
            snprintf(num, sizeof(num), "%.0f", d);
            return set_from_text(f, obj, num, at, err);
        }
        if (f->type != DM_CFG_DOUBLE && f->type != DM_CFG_DURATION && f->type != DM_CFG_SIZE) break;
        snprintf(num, sizeof(num), "%.17g", json_real_value(v));
        return set_from_text(f, obj, num, at, err);
    case JSON_TRUE:
    case JSON_FALSE:
        if (f->type != DM_CFG_BOOL) break;
        *FIELD(obj, f, bool) = json_is_true(v);
        return DM_OK;
    case JSON_ARRAY: {
        if (f->type != DM_CFG_STRING_LIST) break;
        size_t n = json_array_size(v);
        dm_strlist_t l = {calloc(n ? n : 1, sizeof(char *)), 0};
        if (!l.items) return dm_error_set(err, DM_ERR_NOMEM, "%s: out of memory", at);
        for (size_t i = 0; i < n; i++) {
            const json_t *item = json_array_get(v, i);
            if (!json_is_string(item)) {
                for (size_t j = 0; j < l.n; j++)
                    free(l.items[j]);
                free(l.items);
                return dm_error_set(err, DM_ERR_CONFIG_TYPE, "%s[%zu]: expected a string", at, i);
            }
            l.items[l.n++] = strdup(json_string_value(item));
        }
        free_field(f, obj);
        *FIELD(obj, f, dm_strlist_t) = l;
        return DM_OK;
    }
    case JSON_NULL: free_field(f, obj); return DM_OK;
    case JSON_OBJECT: break;
    }
    return dm_error_set(err, DM_ERR_CONFIG_TYPE, "%s: expected %s", at, dm_cfg_type_name(f->type));
}

dm_err_t dm_config_apply_json(const dm_config_table_t *t, void *obj, const json_t *json,
                              const dm_config_source_t *src, dm_error_t *err)
{
    char at[512];
    if (json && !json_is_object(json)) {
        where(src, json, "", at, sizeof(at));
        return dm_error_set(err, DM_ERR_CONFIG_TYPE, "%s: %s settings must be an object", at,
                            t->name);
    }
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)json, key, value)
    {
        where(src, value, key, at, sizeof(at));
        const dm_config_field_t *f = find_field(t, key);
        if (!f) {
            char allowed[1024];
            list_allowed(t, allowed, sizeof(allowed));
            return dm_error_set(err, DM_ERR_CONFIG_UNKNOWN_KEY,
                                "%s: unknown key '%s' for %s; allowed: %s", at, key, t->name,
                                allowed);
        }
        dm_err_t rc = apply_value(f, obj, value, at, err);
        if (rc) return rc;
    }
    return dm_config_check_required(t, obj, src, err);
}

static bool is_unset(const dm_config_field_t *f, const void *obj)
{
    switch (f->type) {
    case DM_CFG_STRING:
    case DM_CFG_SECRET: return *CFIELD(obj, f, char *) == NULL;
    case DM_CFG_STRING_LIST: return CFIELD(obj, f, dm_strlist_t)->items == NULL;
    default: return false;
    }
}

dm_err_t dm_config_check_required(const dm_config_table_t *t, const void *obj,
                                  const dm_config_source_t *src, dm_error_t *err)
{
    for (size_t i = 0; i < t->n_fields; i++) {
        const dm_config_field_t *f = &t->fields[i];
        if ((f->flags & DM_CFG_REQUIRED) && is_unset(f, obj)) {
            char at[512];
            where(src, NULL, f->name, at, sizeof(at));
            return dm_error_set(err, DM_ERR_CONFIG_MISSING, "%s: required key '%s' is missing (%s)",
                                at, f->name, f->help ? f->help : dm_cfg_type_name(f->type));
        }
    }
    return DM_OK;
}

dm_err_t dm_config_set_text(const dm_config_table_t *t, void *obj, const char *name,
                            const char *text, dm_error_t *err)
{
    const dm_config_field_t *f = find_field(t, name);
    if (!f) {
        char allowed[1024];
        list_allowed(t, allowed, sizeof(allowed));
        return dm_error_set(err, DM_ERR_CONFIG_UNKNOWN_KEY, "unknown key '%s' for %s; allowed: %s",
                            name, t->name, allowed);
    }
    return set_from_text(f, obj, text, name, err);
}

void dm_config_free(const dm_config_table_t *t, void *obj)
{
    for (size_t i = 0; i < t->n_fields; i++)
        free_field(&t->fields[i], obj);
}

static json_t *value_json(const dm_config_field_t *f, const void *obj)
{
    switch (f->type) {
    case DM_CFG_BOOL: return json_boolean(*CFIELD(obj, f, bool));
    case DM_CFG_INT:
    case DM_CFG_DURATION:
    case DM_CFG_SIZE: return json_integer(*CFIELD(obj, f, int64_t));
    case DM_CFG_DOUBLE: return json_real(*CFIELD(obj, f, double));
    case DM_CFG_STRING: {
        const char *s = *CFIELD(obj, f, char *);
        return s ? json_string(s) : json_null();
    }
    case DM_CFG_SECRET: return *CFIELD(obj, f, char *) ? json_string("***") : json_null();
    case DM_CFG_ENUM: return json_string(f->enum_values[*CFIELD(obj, f, int)]);
    case DM_CFG_STRING_LIST: {
        const dm_strlist_t *l = CFIELD(obj, f, dm_strlist_t);
        json_t *a = json_array();
        for (size_t i = 0; i < l->n; i++)
            json_array_append_new(a, json_string(l->items[i]));
        return a;
    }
    }
    return json_null();
}

json_t *dm_config_dump_json(const dm_config_table_t *t, const void *obj)
{
    json_t *o = json_object();
    for (size_t i = 0; i < t->n_fields; i++)
        json_object_set_new(o, t->fields[i].name, value_json(&t->fields[i], obj));
    return o;
}

json_t *dm_config_describe_json(const dm_config_table_t *t)
{
    json_t *a = json_array();
    for (size_t i = 0; i < t->n_fields; i++) {
        const dm_config_field_t *f = &t->fields[i];
        json_t *o = json_pack("{s:s, s:s, s:b}", "name", f->name, "type", dm_cfg_type_name(f->type),
                              "required", (f->flags & DM_CFG_REQUIRED) != 0);
        if (f->def) json_object_set_new(o, "default", json_string(f->def));
        if (has_bounds(f)) {
            json_object_set_new(o, "min", json_real(f->min));
            json_object_set_new(o, "max", json_real(f->max));
        }
        if (f->enum_values) {
            json_t *vals = json_array();
            for (size_t j = 0; f->enum_values[j]; j++)
                json_array_append_new(vals, json_string(f->enum_values[j]));
            json_object_set_new(o, "values", vals);
        }
        if (f->help) json_object_set_new(o, "help", json_string(f->help));
        json_array_append_new(a, o);
    }
    return a;
}

dm_err_t dm_config_describe_markdown(const dm_config_table_t *t, dm_buf_t *out)
{
    dm_err_t rc = dm_buf_printf(out, "| key | type | default | range / values | description |\n"
                                     "|---|---|---|---|---|\n");
    for (size_t i = 0; i < t->n_fields && !rc; i++) {
        const dm_config_field_t *f = &t->fields[i];
        char range[512] = "";
        if (f->enum_values)
            list_enum(f, range, sizeof(range));
        else if (has_bounds(f))
            snprintf(range, sizeof(range), "%.17g … %.17g", f->min, f->max);
        rc =
            dm_buf_printf(out, "| `%s` | %s | %s | %s | %s |\n", f->name, dm_cfg_type_name(f->type),
                          f->flags & DM_CFG_REQUIRED ? "required"
                          : f->def                   ? f->def
                                                     : "",
                          range, f->help ? f->help : "");
    }
    return rc;
}
