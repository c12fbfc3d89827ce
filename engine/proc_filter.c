/* engine/proc_filter.c — keeps the records for which an expression is TRUE.
 * Settings: {"expr": "country = 'US' AND amount > 0"}. The output schema is
 * the input's; values pass through without a copy. */
#include <stdlib.h>

#include "engine/expr.h"
#include "engine/processor.h"

static dm_err_t filter_open(dm_proc_t *p, const json_t *config, const dm_avro_node_t *input,
                            dm_avro_schema_t **output, dm_error_t *err)
{
    const json_t *expr = json_object_get(config, "expr");
    if (!json_is_string(expr))
        return dm_error_set(err, DM_ERR_CONFIG, "filter needs an expression (\"expr\": \"...\")");
    dm_expr_t *e;
    dm_err_t rc = dm_expr_compile(json_string_value(expr), input, &e, err);
    if (rc) return rc;
    if (dm_expr_result_type(e) != DM_EXPR_BOOL && dm_expr_result_type(e) != DM_EXPR_NULL) {
        dm_error_set(err, DM_ERR_INVALID, "expression '%s': a filter needs a boolean, got %s",
                     json_string_value(expr), dm_expr_type_name(dm_expr_result_type(e)));
        dm_expr_free(e);
        return DM_ERR_INVALID;
    }
    p->state = e;
    *output = NULL; /* same as the input */
    return DM_OK;
}

static size_t filter_paths(const dm_proc_t *p, const char *const **paths)
{
    return dm_expr_paths(p->state, paths);
}

static dm_err_t filter_process(dm_proc_t *p, const dm_rows_t *in, dm_rows_t *out,
                               dm_dead_letters_t *dead, dm_error_t *err)
{
    dm_error_t rec_err;
    for (uint32_t i = 0; i < in->n; i++) {
        bool keep;
        if (dm_expr_eval_filter(p->state, &in->records[i].value, &out->arena, &keep, &rec_err)) {
            if (dm_dead_letters_add(dead, i, rec_err.message))
                return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
            continue;
        }
        if (!keep) continue;
        dm_row_t *r = dm_rows_push(out);
        if (!r) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
        *r = in->records[i];
    }
    return DM_OK;
}

static void filter_close(dm_proc_t *p)
{
    dm_expr_free(p->state);
}

const dm_proc_ops_t dm_proc_filter = {
    .name = "filter",
    .open = filter_open,
    .read_paths = filter_paths,
    .process = filter_process,
    .close = filter_close,
};
