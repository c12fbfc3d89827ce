/* engine/processor.c — processor instances, dead letters and the list of
 * built-in processors (one line each). */
#include "engine/processor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const dm_proc_ops_t *const builtins[] = {&dm_proc_filter, &dm_proc_project, &dm_proc_enrich};

const dm_proc_ops_t *dm_proc_find(const char *name)
{
    for (size_t i = 0; i < sizeof(builtins) / sizeof(builtins[0]); i++)
        if (!strcmp(builtins[i]->name, name)) return builtins[i];
    return NULL;
}

dm_err_t dm_proc_open(const dm_proc_ops_t *ops, const dm_proc_env_t *env, const json_t *config,
                      const dm_avro_node_t *input, dm_proc_t **out, dm_error_t *err)
{
    *out = NULL;
    dm_proc_t *p = calloc(1, sizeof(*p));
    if (!p) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    p->ops = ops;
    p->env = env;
    p->input = input;
    dm_err_t rc = ops->open(p, config, input, &p->output, err);
    if (rc) {
        dm_error_prefix(err, "processor %s", ops->name);
        free(p);
        return rc;
    }
    *out = p;
    return DM_OK;
}

void dm_proc_close(dm_proc_t *p)
{
    if (!p) return;
    if (p->ops->close) p->ops->close(p);
    dm_avro_schema_free(p->output);
    free(p);
}

dm_err_t dm_dead_letters_add(dm_dead_letters_t *d, uint32_t index, const char *reason)
{
    if (d->n == d->cap) {
        uint32_t cap = d->cap ? d->cap * 2 : 16;
        dm_dead_letter_t *items = realloc(d->items, cap * sizeof(*items));
        if (!items) return DM_ERR_NOMEM;
        d->items = items;
        d->cap = cap;
    }
    d->items[d->n].index = index;
    snprintf(d->items[d->n].reason, sizeof(d->items[d->n].reason), "%s", reason);
    d->n++;
    return DM_OK;
}

void dm_dead_letters_reset(dm_dead_letters_t *d)
{
    d->n = 0;
}

void dm_dead_letters_free(dm_dead_letters_t *d)
{
    free(d->items);
    memset(d, 0, sizeof(*d));
}
