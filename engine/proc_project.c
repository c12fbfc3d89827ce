/* engine/proc_project.c — select, rename, compute and drop fields.
 *
 * Settings: {"columns": [...]} (in a spec `- project: [...]`, the shorthand)
 * where each column is
 *   "path"             keep a field (nested paths too: "after.title" → title)
 *   "path AS name"     keep it under another name
 *   "expr AS name"     compute a field (its type comes from the expression)
 *   "*"                every input field, in order
 *   "-name"            leave a field out of "*"
 * The output schema is derived once at open; kept fields keep their Avro type
 * (records, arrays and logical types included), nullable when a union on the
 * way may be null. Kept values are not copied.
 */
#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine/expr.h"
#include "engine/processor.h"
#include "engine/schema_out.h"

typedef struct column {
    char *name;
    /* kept field: steps through records, whether to wrap as ["null", T] */
    uint32_t steps[32];
    uint32_t n_steps;
    bool wrap_null;  /* output type is ["null", input type] */
    dm_expr_t *expr; /* computed field, or NULL */
    char *path;      /* kept field: its input path (for lineage) */
    bool expr_nullable;
    dm_expr_type_t expr_type;
} column_t;

typedef struct project {
    column_t *cols;
    size_t n;
    const char **paths; /* read paths, for projection pushdown */
    size_t n_paths;
    const dm_avro_node_t *input;
} project_t;

static bool is_path(const char *s)
{
    if (!*s) return false;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '.') return false;
    return isalpha((unsigned char)*s) || *s == '_';
}

static bool valid_name(const char *s)
{
    if (!*s || !(isalpha((unsigned char)*s) || *s == '_')) return false;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_') return false;
    return true;
}

/* Splits "expr AS name" at the last AS outside quotes. */
static void split_as(char *item, char **expr, char **alias)
{
    *expr = item;
    *alias = NULL;
    char *last = NULL;
    bool quoted = false;
    for (char *p = item; *p; p++) {
        if (*p == '\'') quoted = !quoted;
        if (!quoted && isspace((unsigned char)*p) && !strncasecmp(p + 1, "as", 2) &&
            isspace((unsigned char)p[3]))
            last = p;
    }
    if (!last) return;
    *last = '\0';
    char *a = last + 4;
    while (isspace((unsigned char)*a))
        a++;
    char *end = a + strlen(a);
    while (end > a && isspace((unsigned char)end[-1]))
        *--end = '\0';
    *alias = a;
}

static void trim_in_place(char *s)
{
    char *a = s;
    while (isspace((unsigned char)*a))
        a++;
    memmove(s, a, strlen(a) + 1);
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
}

static void project_free(project_t *pr)
{
    for (size_t i = 0; i < pr->n; i++) {
        free(pr->cols[i].name);
        free(pr->cols[i].path);
        dm_expr_free(pr->cols[i].expr);
    }
    for (size_t i = 0; i < pr->n_paths; i++)
        free((char *)pr->paths[i]);
    free(pr->paths);
    free(pr->cols);
    free(pr);
}

static dm_err_t add_path(project_t *pr, const char *path)
{
    for (size_t i = 0; i < pr->n_paths; i++)
        if (!strcmp(pr->paths[i], path)) return DM_OK;
    const char **p = realloc(pr->paths, (pr->n_paths + 1) * sizeof(*p));
    if (!p) return DM_ERR_NOMEM;
    pr->paths = p;
    pr->paths[pr->n_paths] = strdup(path);
    return pr->paths[pr->n_paths++] ? DM_OK : DM_ERR_NOMEM;
}

/* Resolves a kept path: steps, the leaf type node and nullability on the way. */
static dm_err_t resolve(const dm_avro_node_t *record, const char *path, column_t *c,
                        const dm_avro_node_t **leaf, dm_error_t *err)
{
    char buf[512];
    snprintf(buf, sizeof(buf), "%s", path);
    const dm_avro_node_t *cur = record;
    bool nullable_on_way = false;
    char *save;
    for (char *seg = strtok_r(buf, ".", &save); seg; seg = strtok_r(NULL, ".", &save)) {
        if (cur->type == DM_AVRO_UNION) {
            const dm_avro_node_t *other = NULL;
            for (uint32_t i = 0; i < cur->n_branches; i++) {
                if (cur->branches[i]->type == DM_AVRO_NULL)
                    nullable_on_way = true;
                else if (!other)
                    other = cur->branches[i];
                else
                    return dm_error_set(err, DM_ERR_INVALID,
                                        "column '%s': '%s' is inside a union of several types",
                                        path, seg);
            }
            cur = other ? other : cur;
        }
        if (cur->type != DM_AVRO_RECORD)
            return dm_error_set(err, DM_ERR_INVALID, "column '%s': '%s' is not inside a record",
                                path, seg);
        int idx = dm_avro_field_index(cur, seg);
        if (idx < 0)
            return dm_error_set(err, DM_ERR_INVALID, "column '%s': no field '%s' in %s", path, seg,
                                cur->name);
        if (c->n_steps == 32)
            return dm_error_set(err, DM_ERR_INVALID, "column '%s': nested too deep", path);
        c->steps[c->n_steps++] = (uint32_t)idx;
        cur = cur->fields[idx].type;
    }
    bool leaf_nullable = cur->type == DM_AVRO_NULL;
    if (cur->type == DM_AVRO_UNION)
        for (uint32_t i = 0; i < cur->n_branches; i++)
            leaf_nullable |= cur->branches[i]->type == DM_AVRO_NULL;
    c->wrap_null = nullable_on_way && !leaf_nullable;
    *leaf = cur;
    return DM_OK;
}

static dm_err_t add_column(project_t *pr, column_t *c, dm_error_t *err)
{
    for (size_t i = 0; i < pr->n; i++)
        if (!strcmp(pr->cols[i].name, c->name)) {
            dm_error_set(err, DM_ERR_INVALID,
                         "two output columns are named '%s'; rename one with AS", c->name);
            free(c->name);
            free(c->path);
            dm_expr_free(c->expr);
            return DM_ERR_INVALID;
        }
    column_t *cols = realloc(pr->cols, (pr->n + 1) * sizeof(*cols));
    if (!cols) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    pr->cols = cols;
    pr->cols[pr->n++] = *c;
    return DM_OK;
}

typedef struct project_conf {
    dm_strlist_t columns;
} project_conf_t;

static const dm_config_field_t project_fields[] = {
    {.name = "columns",
     .type = DM_CFG_EXPR_LIST,
     .offset = offsetof(project_conf_t, columns),
     .min = 1,
     .flags = DM_CFG_REQUIRED,
     .help = "the output fields in order: \"path\", \"path AS name\", \"expr AS name\", \"*\" "
             "(every input field), \"-name\" (leave one out of *)"},
};
DM_CONFIG_TABLE(project_table, "project step", project_fields);

/* Gives an output field whose type is a union starting with null the default
 * null, so that a later version adding such a field (a column added to the
 * source, passed on by "*") stays compatible with this one. Returns field. */
static json_t *null_default(json_t *field)
{
    const json_t *t = json_object_get(field, "type");
    const json_t *first = json_is_array(t) ? json_array_get(t, 0) : NULL;
    if (json_is_string(first) && !strcmp(json_string_value(first), "null"))
        json_object_set_new(field, "default", json_null());
    return field;
}

/* Whether the columns leave name out of "*" ("-name"). */
static bool dropped(const dm_strlist_t *columns, const char *name)
{
    for (size_t k = 0; k < columns->n; k++) {
        const char *s = columns->items[k];
        while (isspace((unsigned char)*s))
            s++;
        if (s[0] == '-' && !strcmp(s + 1, name)) return true;
    }
    return false;
}

static dm_err_t project_open(dm_proc_t *p, const void *config, const dm_avro_node_t *input,
                             dm_avro_schema_t **output, dm_error_t *err)
{
    const dm_strlist_t *columns = &((const project_conf_t *)config)->columns;
    project_t *pr = calloc(1, sizeof(*pr));
    if (!pr) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    json_t *seen = json_object(), *fields = json_array();
    dm_err_t rc = DM_OK;
    for (size_t i = 0; i < columns->n; i++) {
        char text[1024];
        snprintf(text, sizeof(text), "%s", columns->items[i]);
        trim_in_place(text);
        if (text[0] == '-') continue;
        if (!strcmp(text, "*")) {
            for (uint32_t f = 0; f < input->n_fields && !rc; f++) {
                if (dropped(columns, input->fields[f].name)) continue;
                column_t c = {.name = strdup(input->fields[f].name),
                              .path = strdup(input->fields[f].name),
                              .n_steps = 1};
                c.steps[0] = f;
                rc = add_column(pr, &c, err);
                if (!rc) rc = add_path(pr, input->fields[f].name);
                if (!rc)
                    json_array_append_new(
                        fields,
                        null_default(json_pack("{s:s, s:o}", "name", input->fields[f].name, "type",
                                               dm_schema_type_json(input->fields[f].type, seen))));
            }
            if (rc) goto out;
            continue;
        }
        char *expr, *alias;
        split_as(text, &expr, &alias);
        trim_in_place(expr);
        column_t c = {0};
        if (is_path(expr)) {
            const dm_avro_node_t *leaf = NULL;
            if ((rc = resolve(input, expr, &c, &leaf, err))) goto out;
            const char *dot = strrchr(expr, '.');
            c.name = strdup(alias ? alias : dot ? dot + 1 : expr);
            c.path = strdup(expr);
            json_t *type = dm_schema_type_json(leaf, seen);
            if (c.wrap_null) type = json_pack("[s, o]", "null", type);
            json_t *jf = json_pack("{s:s, s:o}", "name", c.name, "type", type);
            json_array_append_new(fields, null_default(jf));
            if ((rc = add_path(pr, expr))) goto out;
        } else {
            if (!alias) {
                rc = dm_error_set(err, DM_ERR_INVALID,
                                  "column '%s' is computed: name it with AS (\"%s AS name\")", expr,
                                  expr);
                goto out;
            }
            if ((rc = dm_expr_compile(expr, input, &c.expr, err))) goto out;
            c.expr_type = dm_expr_result_type(c.expr);
            c.expr_nullable = dm_expr_nullable(c.expr) || c.expr_type == DM_EXPR_NULL;
            c.name = strdup(alias);
            json_t *jf = json_pack("{s:s, s:o}", "name", c.name, "type",
                                   dm_schema_expr_type_json(c.expr_type, c.expr_nullable));
            if (c.expr_nullable) json_object_set_new(jf, "default", json_null());
            json_array_append_new(fields, jf);
            const char *const *paths;
            size_t np = dm_expr_paths(c.expr, &paths);
            for (size_t k = 0; k < np && !rc; k++)
                rc = add_path(pr, paths[k]);
            if (rc) goto out;
        }
        if (!valid_name(c.name)) {
            rc = dm_error_set(err, DM_ERR_INVALID,
                              "column name '%s' is not an Avro name (letters, digits, _)", c.name);
            free(c.name);
            free(c.path);
            dm_expr_free(c.expr);
            goto out;
        }
        if ((rc = add_column(pr, &c, err))) goto out;
    }
    {
        const char *space = input->space && *input->space ? input->space : "";
        char ns[512];
        snprintf(ns, sizeof(ns), "%s%sprojected", space, *space ? "." : "");
        json_t *doc =
            json_pack("{s:s, s:s, s:s, s:O}", "type", "record", "name",
                      input->name ? input->name : "Record", "namespace", ns, "fields", fields);
        rc = dm_schema_from_json(doc, "project", output, err);
        json_decref(doc);
    }
out:
    json_decref(seen);
    json_decref(fields);
    if (rc) {
        project_free(pr);
        return rc;
    }
    pr->input = input;
    p->state = pr;
    return DM_OK;
}

static size_t project_paths(const dm_proc_t *p, const char *const **paths)
{
    const project_t *pr = p->state;
    *paths = pr->paths;
    return pr->n_paths;
}

static void expr_to_avro(const dm_expr_value_t *v, bool nullable, dm_avro_value_t *out)
{
    memset(out, 0, sizeof(*out));
    if (v->null) {
        out->type = DM_AVRO_NULL;
        out->branch = 0;
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
        out->u.p = (const uint8_t *)v->u.s;
        out->len = v->len;
        break;
    case DM_EXPR_NULL: out->type = DM_AVRO_NULL; break;
    }
}

/* Computed columns of the whole batch, one column at a time (the batch form
 * of engine/expr_vec.c); the records it leaves over are evaluated per record
 * in project_process. NULL columns for kept fields. */
static dm_err_t compute_columns(const project_t *pr, const dm_rows_t *in, dm_rows_t *out,
                                dm_expr_value_t **vals, bool **slow)
{
    for (size_t c = 0; c < pr->n; c++) {
        vals[c] = NULL;
        slow[c] = NULL;
        if (!pr->cols[c].expr || !dm_expr_batchable(pr->cols[c].expr)) continue;
        vals[c] = dm_arena_alloc(&out->arena, in->n * sizeof(**vals));
        slow[c] = dm_arena_alloc(&out->arena, in->n * sizeof(**slow));
        if (!vals[c] || !slow[c]) return DM_ERR_NOMEM;
        dm_expr_eval_batch(pr->cols[c].expr, &in->records[0].value, sizeof(dm_row_t), in->n,
                           vals[c], slow[c]);
    }
    return DM_OK;
}

static dm_err_t project_process(dm_proc_t *p, const dm_rows_t *in, dm_rows_t *out,
                                dm_dead_letters_t *dead, dm_error_t *err)
{
    const project_t *pr = p->state;
    if (!in->n) return DM_OK;
    dm_expr_value_t **batch = dm_arena_alloc(&out->arena, pr->n * sizeof(*batch));
    bool **slow = dm_arena_alloc(&out->arena, pr->n * sizeof(*slow));
    dm_avro_value_t *all = dm_arena_alloc(&out->arena, (size_t)in->n * pr->n * sizeof(*all));
    if (!batch || !slow || !all || dm_rows_reserve(out, in->n) ||
        compute_columns(pr, in, out, batch, slow))
        return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    dm_error_t rec_err;
    for (uint32_t i = 0; i < in->n; i++) {
        const dm_row_t *src = &in->records[i];
        dm_avro_value_t *vals = all + (size_t)i * pr->n;
        bool failed = false;
        for (size_t c = 0; c < pr->n && !failed; c++) {
            const column_t *col = &pr->cols[c];
            if (col->expr) {
                if (batch[c] && !slow[c][i]) {
                    expr_to_avro(&batch[c][i], col->expr_nullable, &vals[c]);
                    continue;
                }
                dm_expr_value_t v;
                if (dm_expr_eval(col->expr, &src->value, &out->arena, &v, &rec_err)) {
                    failed = true;
                    break;
                }
                expr_to_avro(&v, col->expr_nullable, &vals[c]);
                continue;
            }
            const dm_avro_value_t *v = &src->value;
            bool null = false;
            for (uint32_t s = 0; s < col->n_steps; s++) {
                if (v->type != DM_AVRO_RECORD || col->steps[s] >= v->len) {
                    null = true;
                    break;
                }
                v = &v->u.v[col->steps[s]];
            }
            if (null || (col->wrap_null && v->type == DM_AVRO_NULL)) {
                memset(&vals[c], 0, sizeof(vals[c]));
                vals[c].type = DM_AVRO_NULL;
                continue;
            }
            vals[c] = *v;
            if (col->wrap_null) vals[c].branch = 1;
        }
        if (failed) {
            if (dm_dead_letters_add(dead, i, rec_err.message))
                return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
            continue;
        }
        dm_row_t *r = &out->records[out->n++];
        *r = *src;
        r->value = (dm_avro_value_t){.type = DM_AVRO_RECORD, .len = (uint32_t)pr->n, .u.v = vals};
    }
    return DM_OK;
}

/* Whether path (a column's path or an expression's) starts at field name. */
static bool path_in(const char *path, const char *name)
{
    size_t n = strlen(name);
    return !strncmp(path, name, n) && (path[n] == '\0' || path[n] == '.');
}

size_t dm_proc_project_passthrough(const dm_proc_t *p, const char **names, size_t cap)
{
    const project_t *pr = p->state;
    size_t n = 0;
    for (size_t c = 0; c < pr->n && n < cap; c++) {
        const column_t *col = &pr->cols[c];
        if (col->expr || col->n_steps != 1 || col->wrap_null) continue;
        const char *name = pr->input->fields[col->steps[0]].name;
        bool read = false;
        for (size_t k = 0; k < pr->n && !read; k++) {
            const column_t *o = &pr->cols[k];
            if (o->expr) {
                const char *const *paths;
                size_t np = dm_expr_paths(o->expr, &paths);
                for (size_t j = 0; j < np && !read; j++)
                    read = path_in(paths[j], name);
            } else {
                read = o->n_steps > 1 && o->steps[0] == col->steps[0];
            }
        }
        for (size_t k = 0; k < n && !read; k++)
            read = !strcmp(names[k], name);
        if (!read) names[n++] = name;
    }
    return n;
}

/* A kept column is its input path unchanged; a computed one is made of the
 * paths its expression reads (a path alone, "x AS y" spelled as an
 * expression, is still unchanged). */
static dm_err_t project_field_deps(const dm_proc_t *p, dm_field_deps_t *deps)
{
    const project_t *pr = p->state;
    dm_err_t rc = DM_OK;
    for (size_t c = 0; c < pr->n && !rc; c++) {
        const column_t *col = &pr->cols[c];
        if (!col->expr)
            rc = dm_field_deps_add(deps, col->name, col->path, DM_DEP_MAIN, NULL, DM_DEP_IDENTITY);
        else
            rc = dm_field_deps_add_expr(deps, col->name, col->expr, DM_DEP_MAIN, NULL,
                                        dm_expr_is_field(col->expr) ? DM_DEP_IDENTITY
                                                                    : DM_DEP_TRANSFORMATION);
    }
    return rc;
}

static void project_close(dm_proc_t *p)
{
    if (p->state) project_free(p->state);
}

const dm_proc_ops_t dm_proc_project = {
    .name = "project",
    .summary = "selects, renames, computes and drops fields",
    .config = &project_table,
    .config_size = sizeof(project_conf_t),
    .shorthand = "columns",
    .open = project_open,
    .read_paths = project_paths,
    .process = project_process,
    .close = project_close,
    .field_deps = project_field_deps,
};
