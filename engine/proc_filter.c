/* engine/proc_filter.c — keeps the records for which an expression is TRUE.
 * Settings: {"expr": "country = 'US' AND amount > 0"}, or in a spec
 * `- filter: "country = 'US'"` (the shorthand). The output schema is the
 * input's; values pass through without a copy. */
#include <stddef.h>
#include <stdlib.h>

#include "engine/expr.h"
#include "engine/processor.h"

typedef struct filter_conf {
    char *expr;
} filter_conf_t;

static const dm_config_field_t filter_fields[] = {
    {.name = "expr",
     .type = DM_CFG_EXPR,
     .offset = offsetof(filter_conf_t, expr),
     .flags = DM_CFG_REQUIRED,
     .help = "the condition a record must meet to pass (TRUE; FALSE and NULL drop it)"},
};
DM_CONFIG_TABLE(filter_table, "filter step", filter_fields);

static dm_err_t filter_open(dm_proc_t *p, const void *config, const dm_avro_node_t *input,
                            dm_avro_schema_t **output, dm_error_t *err)
{
    const filter_conf_t *c = config;
    dm_expr_t *e;
    dm_err_t rc = dm_expr_compile(c->expr, input, &e, err);
    if (rc) return rc;
    if (dm_expr_result_type(e) != DM_EXPR_BOOL && dm_expr_result_type(e) != DM_EXPR_NULL) {
        dm_error_set(err, DM_ERR_INVALID, "expression '%s': a filter needs a boolean, got %s",
                     c->expr, dm_expr_type_name(dm_expr_result_type(e)));
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

/* The predicate runs over the whole batch first (engine/expr_vec.c); the
 * records it leaves to the tree walker are evaluated one by one. Rows are
 * copied whether kept or not and the output count advanced by the verdict,
 * so the copy does not jump on the data. */
static dm_err_t filter_process(dm_proc_t *p, const dm_rows_t *in, dm_rows_t *out,
                               dm_dead_letters_t *dead, dm_error_t *err)
{
    if (!in->n) return DM_OK;
    uint8_t *keep = dm_arena_alloc(&out->arena, in->n);
    if (!keep || dm_rows_reserve(out, in->n))
        return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    dm_expr_filter_batch(p->state, &in->records[0].value, sizeof(dm_row_t), in->n, keep);
    dm_error_t rec_err;
    for (uint32_t i = 0; i < in->n; i++) {
        unsigned k = keep[i];
        if (__builtin_expect(k == DM_EXPR_KEEP_SLOW, 0)) {
            bool yes;
            if (dm_expr_eval_filter(p->state, &in->records[i].value, &out->arena, &yes, &rec_err)) {
                if (dm_dead_letters_add(dead, i, rec_err.message))
                    return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
                continue;
            }
            k = yes;
        }
        out->records[out->n] = in->records[i];
        out->n += k;
    }
    return DM_OK;
}

static void filter_close(dm_proc_t *p)
{
    dm_expr_free(p->state);
}

const dm_proc_ops_t dm_proc_filter = {
    .name = "filter",
    .summary = "keeps the records for which an expression is TRUE",
    .config = &filter_table,
    .config_size = sizeof(filter_conf_t),
    .shorthand = "expr",
    .open = filter_open,
    .read_paths = filter_paths,
    .process = filter_process,
    .close = filter_close,
};
