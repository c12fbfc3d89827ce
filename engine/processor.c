/* engine/processor.c — processor instances, dead letters and the list of
 * built-in processors (one line each). */
#include "engine/processor.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"

static const dm_proc_ops_t *const builtins[] = {
    &dm_proc_filter, &dm_proc_project, &dm_proc_enrich, &dm_proc_aggregate,
    &dm_proc_dedupe, &dm_proc_route,   &dm_proc_join,
};

const dm_proc_ops_t *dm_proc_find(const char *name)
{
    for (size_t i = 0; i < sizeof(builtins) / sizeof(builtins[0]); i++)
        if (!strcmp(builtins[i]->name, name)) return builtins[i];
    return NULL;
}

dm_err_t dm_proc_open(const dm_proc_ops_t *ops, const dm_proc_env_t *env, const json_t *config,
                      const dm_avro_node_t *input, dm_proc_t **out, dm_error_t *err)
{
    return dm_proc_open2(ops, env, config, input, NULL, out, err);
}

dm_err_t dm_proc_open2(const dm_proc_ops_t *ops, const dm_proc_env_t *env, const json_t *config,
                       const dm_avro_node_t *input, const dm_avro_node_t *other, dm_proc_t **out,
                       dm_error_t *err)
{
    *out = NULL;
    dm_proc_t *p = calloc(1, sizeof(*p));
    if (!p) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    p->ops = ops;
    p->env = env;
    p->input = input;
    p->other = other;
    p->watermark = INT64_MIN;
    dm_err_t rc = ops->stateful ? dm_state_new(NULL, 0, &p->kv, err) : DM_OK;
    if (!rc) rc = ops->open(p, config, input, &p->output, err);
    if (rc) {
        dm_error_prefix(err, "processor %s", ops->name);
        dm_state_free(p->kv);
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
    dm_state_free(p->kv);
    free(p);
}

dm_err_t dm_proc_reset_state(dm_proc_t *p, const char *dir, size_t bytes, dm_error_t *err)
{
    if (!p->ops->stateful) return DM_OK;
    dm_state_t *kv;
    dm_err_t rc = dm_state_new(dir, bytes, &kv, err);
    if (rc) return rc;
    dm_state_free(p->kv);
    p->kv = kv;
    return DM_OK;
}

dm_err_t dm_proc_duration(const json_t *config, const char *name, int64_t def, int64_t *out,
                          dm_error_t *err)
{
    const json_t *v = json_object_get(config, name);
    *out = def;
    if (!v || json_is_null(v)) return DM_OK;
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *out = json_integer_value(v);
        return DM_OK;
    }
    if (json_is_string(v) && dm_parse_duration_ms(json_string_value(v), out) == DM_OK && *out >= 0)
        return DM_OK;
    return dm_error_set(err, DM_ERR_CONFIG_TYPE,
                        "'%s': expected a duration (\"500ms\", \"10s\", \"5m\", \"1h\") or "
                        "milliseconds",
                        name);
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
