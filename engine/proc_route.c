/* engine/proc_route.c — sends each record to one of several outputs by
 * predicate.
 *
 * Settings: {"outputs": {"big": "amount > 100", "fr": "country = 'FR'"},
 *            "default": "rest"}
 * Outputs are tried in the order written; a record goes to the first whose
 * expression is TRUE, else to the default (the task's main output; "default"
 * names it for specs and lineage). The output schema is the input's; values
 * pass through without a copy, marked with their output (row->output).
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/expr.h"
#include "engine/proc_util.h"
#include "engine/processor.h"

typedef struct route {
    dm_expr_t **exprs;
    char **names;
    size_t n;
    const char **paths;
    size_t n_paths;
} route_t;

static void route_free(route_t *r)
{
    for (size_t i = 0; i < r->n; i++) {
        dm_expr_free(r->exprs[i]);
        free(r->names[i]);
    }
    free(r->exprs);
    free(r->names);
    free(r->paths);
    free(r);
}

typedef struct route_conf {
    dm_strmap_t outputs;
    char *def;
} route_conf_t;

/* The default output takes what no expression matches: it has none. */
static dm_err_t check_default(void *obj, const json_t *json, const dm_config_source_t *src,
                              dm_error_t *err)
{
    const route_conf_t *c = obj;
    for (size_t i = 0; c->def && i < c->outputs.n; i++)
        if (!strcmp(c->outputs.keys[i], c->def)) {
            char key[300];
            snprintf(key, sizeof(key), "outputs.%s", c->def);
            return dm_config_fail(src, key, DM_ERR_CONFIG, err,
                                  "'%s' is the default output, which takes what no expression "
                                  "matches; it has no expression",
                                  c->def);
        }
    return DM_OK;
}

static const dm_config_field_t route_fields[] = {
    {.name = "outputs",
     .type = DM_CFG_EXPR_MAP,
     .offset = offsetof(route_conf_t, outputs),
     .min = 1,
     .max = 0xfffe,
     .flags = DM_CFG_REQUIRED,
     .help = "output name → condition, tried in the order written; each output is published as "
             "a derived source of that name"},
    {.name = "default",
     .type = DM_CFG_NAME,
     .offset = offsetof(route_conf_t, def),
     .help = "names the main output (`to:`), which takes records no condition matches",
     .check = check_default},
};
DM_CONFIG_TABLE(route_table, "route step", route_fields);

static dm_err_t route_open(dm_proc_t *p, const void *config, const dm_avro_node_t *input,
                           dm_avro_schema_t **output, dm_error_t *err)
{
    const dm_strmap_t *outputs = &((const route_conf_t *)config)->outputs;
    route_t *r = calloc(1, sizeof(*r));
    size_t n = outputs->n;
    if (r) {
        r->exprs = calloc(n ? n : 1, sizeof(*r->exprs));
        r->names = calloc(n ? n : 1, sizeof(*r->names));
    }
    if (!r || !r->exprs || !r->names) {
        if (r) route_free(r);
        return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    }
    dm_err_t rc = DM_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        const char *name = outputs->keys[i], *text = outputs->values[i];
        dm_expr_t *x;
        if ((rc = dm_expr_compile(text, input, &x, err))) {
            dm_error_prefix(err, "outputs.%s", name);
            break;
        }
        r->exprs[r->n] = x;
        r->names[r->n++] = strdup(name);
        if (dm_expr_result_type(x) != DM_EXPR_BOOL && dm_expr_result_type(x) != DM_EXPR_NULL)
            rc = dm_error_set(err, DM_ERR_INVALID,
                              "outputs.%s: expression '%s' must be a boolean, it is a %s", name,
                              text, dm_expr_type_name(dm_expr_result_type(x)));
        else if (dm_proc_add_paths(x, &r->paths, &r->n_paths))
            rc = dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    }
    if (rc) {
        route_free(r);
        return rc;
    }
    p->state = r;
    *output = NULL;
    return DM_OK;
}

static size_t route_paths(const dm_proc_t *p, const char *const **paths)
{
    const route_t *r = p->state;
    *paths = r->paths;
    return r->n_paths;
}

static size_t route_outputs(const dm_proc_t *p, const char *const **names)
{
    const route_t *r = p->state;
    *names = (const char *const *)r->names;
    return r->n;
}

static dm_err_t route_process(dm_proc_t *p, const dm_rows_t *in, dm_rows_t *out,
                              dm_dead_letters_t *dead, dm_error_t *err)
{
    const route_t *r = p->state;
    dm_error_t rec_err;
    for (uint32_t i = 0; i < in->n; i++) {
        uint16_t to = 0;
        bool failed = false;
        for (size_t k = 0; k < r->n && !to && !failed; k++) {
            bool match;
            if (dm_expr_eval_filter(r->exprs[k], &in->records[i].value, &out->arena, &match,
                                    &rec_err))
                failed = true;
            else if (match)
                to = (uint16_t)(k + 1);
        }
        if (failed) {
            if (dm_dead_letters_add(dead, i, rec_err.message))
                return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
            continue;
        }
        dm_row_t *row = dm_rows_push(out);
        if (!row) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
        *row = in->records[i];
        row->output = to;
    }
    return DM_OK;
}

static void route_close(dm_proc_t *p)
{
    if (p->state) route_free(p->state);
}

const dm_proc_ops_t dm_proc_route = {
    .name = "route",
    .summary = "sends each record to the first output whose condition it meets",
    .config = &route_table,
    .config_size = sizeof(route_conf_t),
    .open = route_open,
    .read_paths = route_paths,
    .process = route_process,
    .close = route_close,
    .outputs = route_outputs,
};
