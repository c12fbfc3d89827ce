/* cli/output.c — tables, JSON and YAML on stdout. */
#include "cli/output.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int dm_out_parse(const char *text)
{
    if (!strcmp(text, "table")) return DM_OUT_TABLE;
    if (!strcmp(text, "json")) return DM_OUT_JSON;
    if (!strcmp(text, "yaml")) return DM_OUT_YAML;
    return -1;
}

void dm_out_json(FILE *f, const json_t *v)
{
    json_dumpf(v, f, JSON_INDENT(2) | JSON_ENCODE_ANY);
    fputc('\n', f);
}

/* A string that YAML would read back as the same string, unquoted if safe. */
static void yaml_scalar(FILE *f, const json_t *v)
{
    if (!json_is_string(v)) {
        json_dumpf(v, f, JSON_ENCODE_ANY);
        return;
    }
    const char *s = json_string_value(v);
    bool plain = *s && strcspn(s, ":#{}[],&*!|>'\"%@`\n\t\\") == strlen(s) && s[0] != ' ' &&
                 s[0] != '-' && s[0] != '?' && s[strlen(s) - 1] != ' ';
    /* Words YAML would read as another type stay quoted. */
    static const char *const typed[] = {"true", "false", "null", "~", "yes",
                                        "no",   "on",    "off",  NULL};
    for (size_t i = 0; plain && typed[i]; i++)
        if (!strcasecmp(s, typed[i])) plain = false;
    if (plain) {
        char *end;
        strtod(s, &end);
        if (!*end) plain = false;
    }
    if (plain)
        fputs(s, f);
    else
        json_dumpf(v, f, JSON_ENCODE_ANY); /* JSON strings are YAML double-quoted strings */
}

static void yaml_node(FILE *f, const json_t *v, int indent, bool in_seq)
{
    if (json_is_object(v) && json_object_size(v)) {
        const char *k;
        json_t *child;
        bool first = true;
        json_object_foreach((json_t *)v, k, child)
        {
            if (!(first && in_seq)) fprintf(f, "%*s", indent, "");
            first = false;
            fprintf(f, "%s:", k);
            if ((json_is_object(child) && json_object_size(child)) ||
                (json_is_array(child) && json_array_size(child))) {
                fputc('\n', f);
                yaml_node(f, child, json_is_array(child) ? indent : indent + 2, false);
            } else {
                fputc(' ', f);
                if (json_is_object(child))
                    fputs("{}", f);
                else if (json_is_array(child))
                    fputs("[]", f);
                else
                    yaml_scalar(f, child);
                fputc('\n', f);
            }
        }
        return;
    }
    if (json_is_array(v) && json_array_size(v)) {
        size_t i;
        json_t *item;
        json_array_foreach(v, i, item)
        {
            fprintf(f, "%*s- ", indent, "");
            if ((json_is_object(item) && json_object_size(item)) ||
                (json_is_array(item) && json_array_size(item))) {
                if (json_is_array(item)) fputc('\n', f);
                yaml_node(f, item, indent + 2, json_is_object(item));
            } else {
                yaml_scalar(f, item);
                fputc('\n', f);
            }
        }
        return;
    }
    fprintf(f, "%*s", in_seq ? 0 : indent, "");
    if (json_is_object(v))
        fputs("{}", f);
    else if (json_is_array(v))
        fputs("[]", f);
    else
        yaml_scalar(f, v);
    fputc('\n', f);
}

void dm_out_yaml(FILE *f, const json_t *v)
{
    yaml_node(f, v, 0, false);
}

static const json_t *at_path(const json_t *v, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *save, *p = strtok_r(buf, ".", &save); p && v; p = strtok_r(NULL, ".", &save))
        v = json_object_get(v, p);
    return v;
}

static char *cell(const json_t *v)
{
    if (!v || json_is_null(v)) return strdup("-");
    if (json_is_string(v)) return strdup(json_string_value(v));
    if (json_is_array(v)) {
        size_t cap = 256, o = 0;
        char *s = calloc(1, cap);
        size_t i;
        json_t *it;
        json_array_foreach(v, i, it)
        {
            char *c = cell(it);
            size_t need = o + strlen(c) + 3;
            if (need > cap) {
                cap = need * 2;
                s = realloc(s, cap);
            }
            o += (size_t)sprintf(s + o, "%s%s", i ? "," : "", c);
            free(c);
        }
        if (!o) {
            free(s);
            return strdup("-");
        }
        return s;
    }
    return json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
}

void dm_out_table(FILE *f, const json_t *items, const dm_out_column_t *cols, size_t n_cols)
{
    size_t rows = json_array_size(items);
    size_t *width = calloc(n_cols, sizeof(size_t));
    char **cells = calloc((rows + 1) * n_cols, sizeof(char *));
    for (size_t c = 0; c < n_cols; c++) {
        cells[c] = strdup(cols[c].header);
        width[c] = strlen(cols[c].header);
    }
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < n_cols; c++) {
            char *s = cell(at_path(json_array_get(items, r), cols[c].path));
            if (strlen(s) > 60) strcpy(s + 57, "...");
            cells[(r + 1) * n_cols + c] = s;
            if (strlen(s) > width[c]) width[c] = strlen(s);
        }
    for (size_t r = 0; r <= rows; r++) {
        for (size_t c = 0; c < n_cols; c++)
            fprintf(f, c + 1 < n_cols ? "%-*s  " : "%-*s\n", (int)(c + 1 < n_cols ? width[c] : 0),
                    cells[r * n_cols + c]);
    }
    for (size_t i = 0; i < (rows + 1) * n_cols; i++)
        free(cells[i]);
    free(cells);
    free(width);
}
