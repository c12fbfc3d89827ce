/* core/config.c — declarative configuration tables. */
#include "core/config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
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
    case DM_CFG_NAME: return "name";
    case DM_CFG_EXPR: return "expression";
    case DM_CFG_FIELD_LIST: return "list of fields";
    case DM_CFG_EXPR_LIST: return "list of expressions";
    case DM_CFG_EXPR_MAP: return "mapping of names to expressions";
    case DM_CFG_OBJECT: return "object";
    case DM_CFG_JSON: return "mapping";
    }
    return "?";
}

/* What a value of the type must be, as a message reads it ("an integer"). */
static const char *type_expected(dm_cfg_type_t type)
{
    switch (type) {
    case DM_CFG_BOOL: return "a boolean";
    case DM_CFG_INT: return "an integer";
    case DM_CFG_DOUBLE: return "a number";
    case DM_CFG_STRING:
    case DM_CFG_SECRET: return "a string";
    case DM_CFG_ENUM: return "one of its values as a string";
    case DM_CFG_DURATION:
        return "a duration (\"500ms\", \"10s\", \"5m\", \"1h\", \"1d\") or a number of "
               "milliseconds";
    case DM_CFG_SIZE: return "a size (\"64MiB\") or a number of bytes";
    case DM_CFG_STRING_LIST: return "a list of strings";
    case DM_CFG_NAME: return "a name";
    case DM_CFG_EXPR: return "an expression as a non-empty string";
    case DM_CFG_FIELD_LIST: return "a list of fields";
    case DM_CFG_EXPR_LIST: return "a list of expressions";
    case DM_CFG_EXPR_MAP: return "a mapping of names to expressions";
    case DM_CFG_OBJECT:
    case DM_CFG_JSON: return "a mapping";
    }
    return "?";
}

const char *dm_config_json_kind(const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT: return "a mapping";
    case JSON_ARRAY: return "a list";
    case JSON_STRING: return json_string_length(j) ? "a string" : "an empty string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

bool dm_config_name_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && ((i == 0 || i == n - 1) || (c != '-' && c != '_' && c != '.'))) return false;
    }
    return strstr(s, "..") == NULL;
}

#define NAME_RULE "use 1-63 of a-z 0-9 - _ . starting and ending with a letter or digit"

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

/* "LOCATION: PATH.KEY" for messages. With a shorthand (see
 * dm_config_source_t), the shorthand field is the object's path itself. */
static void where(const dm_config_source_t *src, const char *key, char *out, size_t cap)
{
    char loc[256] = "", full[512];
    const char *path = src && src->path ? src->path : "";
    size_t sl = src && src->shorthand ? strlen(src->shorthand) : 0;
    if (sl && !strncmp(key, src->shorthand, sl) && (!key[sl] || key[sl] == '[' || key[sl] == '.'))
        snprintf(full, sizeof(full), "%s%s", path, key + sl);
    else
        snprintf(full, sizeof(full), "%s%s%s", path, path[0] && key[0] ? "." : "", key);
    if (src && src->locate) src->locate(src->locate_ctx, full, loc, sizeof(loc));
    snprintf(out, cap, "%s%s%s", loc, loc[0] ? ": " : "", full);
}

dm_err_t dm_config_fail(const dm_config_source_t *src, const char *key, dm_err_t code,
                        dm_error_t *err, const char *fmt, ...)
{
    char at[512], msg[700];
    where(src, key, at, sizeof(at));
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return dm_error_set(err, code, "%s: %s", at, msg);
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

/* Lists and mappings: min and max count items. */
static bool counts_items(const dm_config_field_t *f)
{
    return f->type == DM_CFG_STRING_LIST || f->type == DM_CFG_FIELD_LIST ||
           f->type == DM_CFG_EXPR_LIST || f->type == DM_CFG_EXPR_MAP;
}

static bool is_list(const dm_config_field_t *f)
{
    return f->type == DM_CFG_STRING_LIST || f->type == DM_CFG_FIELD_LIST ||
           f->type == DM_CFG_EXPR_LIST;
}

static bool holds_text(const dm_config_field_t *f)
{
    return f->type == DM_CFG_STRING || f->type == DM_CFG_SECRET || f->type == DM_CFG_NAME ||
           f->type == DM_CFG_EXPR;
}

static const dm_config_field_t *find_field(const dm_config_table_t *t, const char *name)
{
    for (size_t i = 0; i < t->n_fields; i++)
        if (strcmp(t->fields[i].name, name) == 0) return &t->fields[i];
    return NULL;
}

static void free_list(dm_strlist_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

static void free_map(dm_strmap_t *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->keys[i]);
        free(m->values[i]);
    }
    free(m->keys);
    free(m->values);
    memset(m, 0, sizeof(*m));
}

static void free_field(const dm_config_field_t *f, void *obj)
{
    if (holds_text(f)) {
        char **s = FIELD(obj, f, char *);
        free(*s);
        *s = NULL;
    } else if (is_list(f)) {
        free_list(FIELD(obj, f, dm_strlist_t));
    } else if (f->type == DM_CFG_EXPR_MAP) {
        free_map(FIELD(obj, f, dm_strmap_t));
    } else if (f->type == DM_CFG_OBJECT) {
        dm_config_free(f->table, FIELD(obj, f, char));
    } else if (f->type == DM_CFG_JSON) {
        json_decref(*FIELD(obj, f, json_t *));
        *FIELD(obj, f, json_t *) = NULL;
    }
}

static dm_err_t check_range(const dm_config_field_t *f, double v, const char *at, const char *shown,
                            dm_error_t *err)
{
    if (!has_bounds(f) || (v >= f->min && v <= f->max)) return DM_OK;
    return dm_error_set(err, DM_ERR_CONFIG_RANGE, "%s: %s is out of range [%.17g, %.17g]", at,
                        shown, f->min, f->max);
}

static dm_err_t check_count(const dm_config_field_t *f, size_t n, const char *at, dm_error_t *err)
{
    if (f->min > 0 && (double)n < f->min) {
        if (f->min == 1)
            return dm_error_set(err, DM_ERR_CONFIG_RANGE, "%s: must list at least one item", at);
        return dm_error_set(err, DM_ERR_CONFIG_RANGE, "%s: must list at least %.17g items, got %zu",
                            at, f->min, n);
    }
    if (f->max > 0 && (double)n > f->max)
        return dm_error_set(err, DM_ERR_CONFIG_RANGE, "%s: lists %zu items, at most %.17g", at, n,
                            f->max);
    return DM_OK;
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
    case DM_CFG_NAME:
        if (!dm_config_name_valid(text))
            return dm_error_set(err, DM_ERR_CONFIG_RANGE,
                                "%s: '%s' is not a valid name: " NAME_RULE, at, text);
        /* fall through */
    case DM_CFG_EXPR:
        if (!*text)
            return dm_error_set(err, DM_ERR_CONFIG_TYPE, "%s: expected %s, got an empty string", at,
                                type_expected(f->type));
        /* fall through */
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
    case DM_CFG_FIELD_LIST:
    case DM_CFG_EXPR_LIST: {
        /* One item: an expression may hold commas. */
        if (!*text)
            return dm_error_set(err, DM_ERR_CONFIG_TYPE, "%s: expected %s, got an empty string", at,
                                type_expected(f->type));
        dm_strlist_t l = {calloc(1, sizeof(char *)), 0};
        if (l.items) l.items[0] = strdup(text);
        if (!l.items || !l.items[0]) {
            free(l.items);
            return dm_error_set(err, DM_ERR_NOMEM, "%s: out of memory", at);
        }
        l.n = 1;
        dm_err_t rc = check_count(f, 1, at, err);
        if (rc) {
            free_list(&l);
            return rc;
        }
        free_field(f, obj);
        *FIELD(obj, f, dm_strlist_t) = l;
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
                free_list(&l);
                return dm_error_set(err, DM_ERR_NOMEM, "%s: out of memory", at);
            }
            l.items = items;
            l.items[l.n++] = item;
            p = comma ? comma + 1 : p + n;
        }
        dm_err_t rc = check_count(f, l.n, at, err);
        if (rc) {
            free_list(&l);
            return rc;
        }
        free_field(f, obj);
        *FIELD(obj, f, dm_strlist_t) = l;
        return DM_OK;
    }
    case DM_CFG_EXPR_MAP:
    case DM_CFG_OBJECT:
    case DM_CFG_JSON:
        return dm_error_set(err, DM_ERR_CONFIG_TYPE, "%s: expected %s; it cannot be given as text",
                            at, type_expected(f->type));
    }
    return dm_error_set(err, DM_ERR_INTERNAL, "%s: unknown config type", at);
}

/* ---- public API ---- */

dm_err_t dm_config_defaults(const dm_config_table_t *t, void *obj, dm_error_t *err)
{
    for (size_t i = 0; i < t->n_fields; i++) {
        const dm_config_field_t *f = &t->fields[i];
        if (f->type == DM_CFG_OBJECT) {
            dm_err_t rc = dm_config_defaults(f->table, FIELD(obj, f, char), err);
            if (rc) return rc;
            continue;
        }
        if (!f->def) continue;
        char at[160];
        snprintf(at, sizeof(at), "%s default of %s", t->name, f->name);
        dm_err_t rc = set_from_text(f, obj, f->def, at, err);
        if (rc) return rc;
    }
    return DM_OK;
}

/* A JSON array (or, for field and expression lists, one string) as a list. */
static dm_err_t apply_list(const dm_config_field_t *f, void *obj, const json_t *v,
                           const dm_config_source_t *src, const char *key, const char *at,
                           dm_error_t *err)
{
    if (json_is_string(v)) return set_from_text(f, obj, json_string_value(v), at, err);
    size_t n = json_array_size(v);
    dm_strlist_t l = {calloc(n ? n : 1, sizeof(char *)), 0};
    if (!l.items) return dm_error_set(err, DM_ERR_NOMEM, "%s: out of memory", at);
    for (size_t i = 0; i < n; i++) {
        const json_t *item = json_array_get(v, i);
        bool ok =
            json_is_string(item) && (f->type == DM_CFG_STRING_LIST || json_string_length(item));
        if (!ok) {
            free_list(&l);
            char ik[300];
            snprintf(ik, sizeof(ik), "%s[%zu]", key, i);
            if (f->type == DM_CFG_STRING_LIST)
                return dm_config_fail(src, ik, DM_ERR_CONFIG_TYPE, err, "expected a string");
            return dm_config_fail(src, ik, DM_ERR_CONFIG_TYPE, err,
                                  "expected a non-empty string, got %s", dm_config_json_kind(item));
        }
        l.items[l.n] = strdup(json_string_value(item));
        if (!l.items[l.n++]) {
            free_list(&l);
            return dm_error_set(err, DM_ERR_NOMEM, "%s: out of memory", at);
        }
    }
    dm_err_t rc = check_count(f, l.n, at, err);
    if (rc) {
        free_list(&l);
        return rc;
    }
    free_field(f, obj);
    *FIELD(obj, f, dm_strlist_t) = l;
    return DM_OK;
}

/* A JSON object of names to expressions, in the order written. */
static dm_err_t apply_map(const dm_config_field_t *f, void *obj, const json_t *v,
                          const dm_config_source_t *src, const char *key, const char *at,
                          dm_error_t *err)
{
    size_t n = json_object_size(v);
    dm_strmap_t m = {calloc(n ? n : 1, sizeof(char *)), calloc(n ? n : 1, sizeof(char *)), 0};
    dm_err_t rc =
        m.keys && m.values ? DM_OK : dm_error_set(err, DM_ERR_NOMEM, "%s: out of memory", at);
    const char *name;
    json_t *e;
    json_object_foreach((json_t *)v, name, e)
    {
        if (rc) break;
        char ek[300];
        snprintf(ek, sizeof(ek), "%s.%s", key, name);
        if (!dm_config_name_valid(name))
            rc = dm_config_fail(src, ek, DM_ERR_CONFIG_RANGE, err,
                                "'%s' is not a valid name: " NAME_RULE, name);
        else if (!json_is_string(e) || !json_string_length(e))
            rc = dm_config_fail(src, ek, DM_ERR_CONFIG_TYPE, err, "expected an expression, got %s",
                                dm_config_json_kind(e));
        else {
            m.keys[m.n] = strdup(name);
            m.values[m.n] = strdup(json_string_value(e));
            if (!m.keys[m.n++] || !m.values[m.n - 1])
                rc = dm_error_set(err, DM_ERR_NOMEM, "%s: out of memory", at);
        }
    }
    if (!rc) rc = check_count(f, m.n, at, err);
    if (rc) {
        free_map(&m);
        return rc;
    }
    free_field(f, obj);
    *FIELD(obj, f, dm_strmap_t) = m;
    return DM_OK;
}

static dm_err_t apply_object(const dm_config_table_t *t, void *obj, const json_t *json,
                             const dm_config_source_t *src, dm_error_t *err);

/* Applies the value v of field f, found under key in the object src places. */
static dm_err_t apply_value(const dm_config_field_t *f, void *obj, const json_t *v,
                            const dm_config_source_t *src, const char *key, dm_error_t *err)
{
    char at[512], num[64];
    where(src, key, at, sizeof(at));
    switch (json_typeof(v)) {
    case JSON_STRING:
        if (f->type == DM_CFG_BOOL || f->type == DM_CFG_INT || f->type == DM_CFG_DOUBLE ||
            f->type == DM_CFG_EXPR_MAP || f->type == DM_CFG_OBJECT)
            break;
        if (f->type == DM_CFG_JSON) { /* a word in place of the mapping ("same") */
            json_t *copy = json_deep_copy(v);
            if (!copy) return dm_error_set(err, DM_ERR_NOMEM, "%s: out of memory", at);
            free_field(f, obj);
            *FIELD(obj, f, json_t *) = copy;
            return DM_OK;
        }
        if (is_list(f)) return apply_list(f, obj, v, src, key, at, err);
        return set_from_text(f, obj, json_string_value(v), at, err);
    case JSON_INTEGER:
        if (f->type != DM_CFG_INT && f->type != DM_CFG_DOUBLE && f->type != DM_CFG_DURATION &&
            f->type != DM_CFG_SIZE)
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
    case JSON_ARRAY:
        if (!is_list(f)) break;
        return apply_list(f, obj, v, src, key, at, err);
    case JSON_NULL:
        free_field(f, obj);
        if (f->type == DM_CFG_OBJECT) return dm_config_defaults(f->table, FIELD(obj, f, char), err);
        return DM_OK;
    case JSON_OBJECT: {
        if (f->type == DM_CFG_EXPR_MAP) return apply_map(f, obj, v, src, key, at, err);
        if (f->type == DM_CFG_JSON) {
            json_t *copy = json_deep_copy(v);
            if (!copy) return dm_error_set(err, DM_ERR_NOMEM, "%s: out of memory", at);
            free_field(f, obj);
            *FIELD(obj, f, json_t *) = copy;
            return DM_OK;
        }
        if (f->type != DM_CFG_OBJECT) break;
        char path[512];
        where(&(dm_config_source_t){.path = src ? src->path : NULL,
                                    .shorthand = src ? src->shorthand : NULL},
              key, path, sizeof(path));
        dm_config_source_t sub = {.path = path,
                                  .locate = src ? src->locate : NULL,
                                  .locate_ctx = src ? src->locate_ctx : NULL};
        return apply_object(f->table, FIELD(obj, f, char), v, &sub, err);
    }
    }
    return dm_error_set(err, DM_ERR_CONFIG_TYPE, "%s: expected %s, got %s", at,
                        type_expected(f->type), dm_config_json_kind(v));
}

static bool is_unset(const dm_config_field_t *f, const void *obj)
{
    if (holds_text(f)) return *CFIELD(obj, f, char *) == NULL;
    if (is_list(f)) return CFIELD(obj, f, dm_strlist_t)->items == NULL;
    if (f->type == DM_CFG_EXPR_MAP) return CFIELD(obj, f, dm_strmap_t)->keys == NULL;
    if (f->type == DM_CFG_JSON) return *CFIELD(obj, f, json_t *) == NULL;
    return false;
}

/* Required fields: text, lists and mappings must be set; the others (numbers,
 * durations, enums, objects) must have been given in json when it is known. */
static dm_err_t check_required(const dm_config_table_t *t, const void *obj, const json_t *json,
                               bool json_known, const dm_config_source_t *src, dm_error_t *err)
{
    for (size_t i = 0; i < t->n_fields; i++) {
        const dm_config_field_t *f = &t->fields[i];
        if (!(f->flags & DM_CFG_REQUIRED)) continue;
        const json_t *v = json_object_get(json, f->name);
        bool missing = is_unset(f, obj) || (json_known && !holds_text(f) && !is_list(f) &&
                                            f->type != DM_CFG_EXPR_MAP && (!v || json_is_null(v)));
        if (missing)
            return dm_config_fail(src, f->name, DM_ERR_CONFIG_MISSING, err,
                                  "required key '%s' is missing (%s)", f->name,
                                  f->help ? f->help : dm_cfg_type_name(f->type));
    }
    return DM_OK;
}

static dm_err_t apply_object(const dm_config_table_t *t, void *obj, const json_t *json,
                             const dm_config_source_t *src, dm_error_t *err)
{
    if (json && !json_is_object(json)) {
        char at[512];
        where(src, "", at, sizeof(at));
        return dm_error_set(err, DM_ERR_CONFIG_TYPE, "%s: %s settings must be an object", at,
                            t->name);
    }
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)json, key, value)
    {
        const dm_config_field_t *f = find_field(t, key);
        if (!f) {
            char allowed[1024];
            list_allowed(t, allowed, sizeof(allowed));
            return dm_config_fail(src, key, DM_ERR_CONFIG_UNKNOWN_KEY, err,
                                  "unknown key '%s' for %s; allowed: %s", key, t->name, allowed);
        }
        dm_err_t rc = apply_value(f, obj, value, src, key, err);
        if (rc) return rc;
    }
    dm_err_t rc = check_required(t, obj, json, true, src, err);
    for (size_t i = 0; !rc && i < t->n_fields; i++)
        if (t->fields[i].check) rc = t->fields[i].check(obj, json, src, err);
    return rc;
}

dm_err_t dm_config_apply_json(const dm_config_table_t *t, void *obj, const json_t *json,
                              const dm_config_source_t *src, dm_error_t *err)
{
    return apply_object(t, obj, json, src, err);
}

dm_err_t dm_config_check_required(const dm_config_table_t *t, const void *obj,
                                  const dm_config_source_t *src, dm_error_t *err)
{
    return check_required(t, obj, NULL, false, src, err);
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
    case DM_CFG_STRING:
    case DM_CFG_NAME:
    case DM_CFG_EXPR: {
        const char *s = *CFIELD(obj, f, char *);
        return s ? json_string(s) : json_null();
    }
    case DM_CFG_SECRET: return *CFIELD(obj, f, char *) ? json_string("***") : json_null();
    case DM_CFG_ENUM: return json_string(f->enum_values[*CFIELD(obj, f, int)]);
    case DM_CFG_STRING_LIST:
    case DM_CFG_FIELD_LIST:
    case DM_CFG_EXPR_LIST: {
        const dm_strlist_t *l = CFIELD(obj, f, dm_strlist_t);
        if (!l->items && f->type != DM_CFG_STRING_LIST) return json_null();
        json_t *a = json_array();
        for (size_t i = 0; i < l->n; i++)
            json_array_append_new(a, json_string(l->items[i]));
        return a;
    }
    case DM_CFG_EXPR_MAP: {
        const dm_strmap_t *m = CFIELD(obj, f, dm_strmap_t);
        if (!m->keys) return json_null();
        json_t *o = json_object();
        for (size_t i = 0; i < m->n; i++)
            json_object_set_new(o, m->keys[i], json_string(m->values[i]));
        return o;
    }
    case DM_CFG_OBJECT: return dm_config_dump_json(f->table, CFIELD(obj, f, char));
    case DM_CFG_JSON: {
        json_t *j = (json_t *)*CFIELD(obj, f, json_t *);
        return j ? json_incref(j) : json_null();
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
        if (counts_items(f)) {
            if (f->min > 0) json_object_set_new(o, "min_items", json_integer((json_int_t)f->min));
            if (f->max > 0) json_object_set_new(o, "max_items", json_integer((json_int_t)f->max));
        } else if (has_bounds(f)) {
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
        if (f->type == DM_CFG_OBJECT)
            json_object_set_new(o, "fields", dm_config_describe_json(f->table));
        json_array_append_new(a, o);
    }
    return a;
}

/* Writes text into a Markdown table cell: "|" escaped, newlines as spaces. */
static dm_err_t cell(dm_buf_t *out, const char *text)
{
    dm_err_t rc = DM_OK;
    for (const char *p = text; *p && !rc; p++)
        rc =
            *p == '|' ? dm_buf_printf(out, "\\|") : dm_buf_printf(out, "%c", *p == '\n' ? ' ' : *p);
    return rc;
}

static dm_err_t describe_rows(const dm_config_table_t *t, const char *prefix, dm_buf_t *out)
{
    dm_err_t rc = DM_OK;
    for (size_t i = 0; i < t->n_fields && !rc; i++) {
        const dm_config_field_t *f = &t->fields[i];
        char range[512] = "";
        if (f->enum_values)
            list_enum(f, range, sizeof(range));
        else if (counts_items(f) && f->max > 0)
            snprintf(range, sizeof(range), "%.17g … %.17g items", f->min, f->max);
        else if (counts_items(f) && f->min > 0)
            snprintf(range, sizeof(range), "at least %.17g item%s", f->min, f->min == 1 ? "" : "s");
        else if (!counts_items(f) && has_bounds(f))
            snprintf(range, sizeof(range), "%.17g … %.17g", f->min, f->max);
        rc = dm_buf_printf(out, "| `%s%s` | %s | ", prefix, f->name, dm_cfg_type_name(f->type));
        if (!rc) rc = cell(out, f->flags & DM_CFG_REQUIRED ? "required" : f->def ? f->def : "");
        if (!rc) rc = dm_buf_printf(out, " | ");
        if (!rc) rc = cell(out, range);
        if (!rc) rc = dm_buf_printf(out, " | ");
        if (!rc) rc = cell(out, f->help ? f->help : "");
        if (!rc) rc = dm_buf_printf(out, " |\n");
        if (!rc && f->type == DM_CFG_OBJECT) {
            char sub[256];
            snprintf(sub, sizeof(sub), "%s%s.", prefix, f->name);
            rc = describe_rows(f->table, sub, out);
        }
    }
    return rc;
}

dm_err_t dm_config_describe_markdown(const dm_config_table_t *t, dm_buf_t *out)
{
    dm_err_t rc = dm_buf_printf(out, "| key | type | default | range / values | description |\n"
                                     "|---|---|---|---|---|\n");
    return rc ? rc : describe_rows(t, "", out);
}
