/* engine/proc_util.c — helpers the built-in processors share. */
#include "engine/proc_util.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine/schema_out.h"

static void trim(char **s)
{
    while (isspace((unsigned char)**s))
        (*s)++;
    char *end = *s + strlen(*s);
    while (end > *s && isspace((unsigned char)end[-1]))
        *--end = '\0';
}

void dm_proc_split_as(char *item, char **expr, char **alias)
{
    *expr = item;
    *alias = NULL;
    char *last = NULL;
    bool quoted = false;
    int depth = 0;
    for (char *p = item; *p; p++) {
        if (*p == '\'') quoted = !quoted;
        if (quoted) continue;
        depth += *p == '(' ? 1 : *p == ')' ? -1 : 0;
        if (!depth && isspace((unsigned char)*p) && !strncasecmp(p + 1, "as", 2) &&
            isspace((unsigned char)p[3]))
            last = p;
    }
    if (last) {
        *last = '\0';
        *alias = last + 4;
        trim(alias);
    }
    trim(expr);
}

const char *dm_proc_path_name(const char *text)
{
    if (!*text || !(isalpha((unsigned char)*text) || *text == '_')) return NULL;
    for (const char *p = text; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '.') return NULL;
    const char *dot = strrchr(text, '.');
    return dot ? dot + 1 : text;
}

bool dm_proc_valid_name(const char *s)
{
    if (!*s || !(isalpha((unsigned char)*s) || *s == '_')) return false;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_') return false;
    return true;
}

void dm_proc_expr_to_avro(const dm_expr_value_t *v, bool nullable, dm_arena_t *arena, bool copy,
                          dm_avro_value_t *out)
{
    memset(out, 0, sizeof(*out));
    if (v->null || v->type == DM_EXPR_NULL) {
        out->type = DM_AVRO_NULL;
        return;
    }
    out->branch = nullable ? 1 : 0;
    switch (v->type) {
    case DM_EXPR_BOOL: out->type = DM_AVRO_BOOLEAN, out->u.b = v->u.b; break;
    case DM_EXPR_LONG:
    case DM_EXPR_TIMESTAMP: out->type = DM_AVRO_LONG, out->u.l = v->u.l; break;
    case DM_EXPR_DOUBLE: out->type = DM_AVRO_DOUBLE, out->u.d = v->u.d; break;
    case DM_EXPR_STRING:
        out->type = DM_AVRO_STRING;
        out->u.p =
            copy ? dm_arena_memdup(arena, v->u.s, v->len ? v->len : 1) : (const uint8_t *)v->u.s;
        out->len = v->len;
        break;
    case DM_EXPR_NULL: break;
    }
}

dm_err_t dm_proc_columns(const dm_strlist_t *list, const char *what, const dm_avro_node_t *input,
                         dm_proc_column_t **cols, size_t *n, json_t *fields_out, dm_error_t *err)
{
    *cols = NULL;
    *n = 0;
    if (!list->n) return dm_error_set(err, DM_ERR_CONFIG, "'%s': expected a non-empty list", what);
    dm_proc_column_t *c = calloc(list->n, sizeof(*c));
    if (!c) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    dm_err_t rc = DM_OK;
    for (size_t i = 0; i < list->n; i++) {
        char text[1024], *expr, *alias;
        snprintf(text, sizeof(text), "%s", list->items[i]);
        dm_proc_split_as(text, &expr, &alias);
        const char *name = alias ? alias : dm_proc_path_name(expr);
        if (!name) {
            rc = dm_error_set(err, DM_ERR_INVALID,
                              "%s[%zu]: '%s' is computed: name it with AS (\"%s AS name\")", what,
                              i, expr, expr);
            break;
        }
        if (!dm_proc_valid_name(name)) {
            rc = dm_error_set(err, DM_ERR_INVALID,
                              "%s[%zu]: '%s' is not an Avro name (letters, digits, _)", what, i,
                              name);
            break;
        }
        if ((rc = dm_expr_compile(expr, input, &c[i].expr, err))) {
            dm_error_prefix(err, "%s[%zu]", what, i);
            break;
        }
        c[i].name = strdup(name);
        c[i].type = dm_expr_result_type(c[i].expr);
        c[i].nullable = dm_expr_nullable(c[i].expr) || c[i].type == DM_EXPR_NULL;
        *n = i + 1;
        if (fields_out) {
            json_t *jf = json_pack("{s:s, s:o}", "name", name, "type",
                                   dm_schema_expr_type_json(c[i].type, c[i].nullable));
            if (c[i].nullable) json_object_set_new(jf, "default", json_null());
            json_array_append_new(fields_out, jf);
        }
    }
    if (rc) {
        dm_proc_columns_free(c, list->n);
        *n = 0;
        return rc;
    }
    *cols = c;
    return DM_OK;
}

void dm_proc_columns_free(dm_proc_column_t *cols, size_t n)
{
    for (size_t i = 0; cols && i < n; i++) {
        free(cols[i].name);
        dm_expr_free(cols[i].expr);
    }
    free(cols);
}

dm_err_t dm_proc_add_paths(const dm_expr_t *e, const char ***paths, size_t *n)
{
    const char *const *ps;
    size_t k = dm_expr_paths(e, &ps);
    for (size_t j = 0; j < k; j++) {
        bool dup = false;
        for (size_t q = 0; q < *n && !dup; q++)
            dup = !strcmp((*paths)[q], ps[j]);
        if (dup) continue;
        const char **np = realloc(*paths, (*n + 1) * sizeof(*np));
        if (!np) return DM_ERR_NOMEM;
        *paths = np;
        (*paths)[(*n)++] = ps[j];
    }
    return DM_OK;
}
