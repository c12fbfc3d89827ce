/* engine/proc_rekey.c — gives every record a new key: the values of a
 * stateful step's key, so that the task writes it to the partition of a
 * re-key topic that holds that key (control/plan.h). Internal: plans insert
 * it; specs do not name it.
 *
 * Settings: {"by": ["country", "lower(city) AS city"]} — the expressions of
 * the step's key (its group_by, dedupe key or join `on`), evaluated against
 * the input. An empty list (a global aggregate) gives every record the same
 * key: one partition holds them all. The key bytes are the values as the
 * state stores encode them (dm_state_put_value), so the two sides of a join
 * re-keyed by fields of the same type land together. The record's own key
 * travels behind them (engine/rekey.h), so what a pipeline finally writes
 * keeps its source's keys. Values pass through
 * unchanged; a key that cannot be evaluated sends the record to the dead
 * letters with the reason.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "engine/expr.h"
#include "engine/proc_util.h"
#include "engine/processor.h"
#include "engine/rekey.h"
#include "engine/state.h"

typedef struct rekey {
    dm_proc_column_t *by;
    size_t n_by;
    const char **paths;
    size_t n_paths;
    dm_buf_t key;
} rekey_t;

static void rekey_free(rekey_t *r)
{
    if (!r) return;
    dm_proc_columns_free(r->by, r->n_by);
    free(r->paths);
    dm_buf_free(&r->key);
    free(r);
}

typedef struct rekey_conf {
    dm_strlist_t by;
} rekey_conf_t;

static const dm_config_field_t rekey_fields[] = {
    {.name = "by",
     .type = DM_CFG_EXPR_LIST,
     .offset = offsetof(rekey_conf_t, by),
     .flags = DM_CFG_REQUIRED,
     .help = "the key's expressions (the stateful step's group_by, key or on); [] = one key"},
};
DM_CONFIG_TABLE(rekey_table, "rekey step", rekey_fields);

static dm_err_t rekey_open(dm_proc_t *p, const void *config, const dm_avro_node_t *input,
                           dm_avro_schema_t **output, dm_error_t *err)
{
    const rekey_conf_t *c = config;
    rekey_t *r = calloc(1, sizeof(*r));
    if (!r) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    dm_err_t rc =
        c->by.n ? dm_proc_columns(&c->by, "by", input, &r->by, &r->n_by, NULL, err) : DM_OK;
    for (size_t i = 0; !rc && i < r->n_by; i++)
        if (dm_proc_add_paths(r->by[i].expr, &r->paths, &r->n_paths))
            rc = dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    if (rc) {
        rekey_free(r);
        return rc;
    }
    p->state = r;
    *output = NULL; /* the input's */
    return DM_OK;
}

static size_t rekey_paths(const dm_proc_t *p, const char *const **paths)
{
    const rekey_t *r = p->state;
    *paths = r->paths;
    return r->n_paths;
}

static dm_err_t rekey_process(dm_proc_t *p, const dm_rows_t *in, dm_rows_t *out,
                              dm_dead_letters_t *dead, dm_error_t *err)
{
    rekey_t *r = p->state;
    if (dm_rows_reserve(out, in->n)) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    dm_error_t rec_err;
    for (uint32_t i = 0; i < in->n; i++) {
        dm_buf_reset(&r->key);
        bool bad = false;
        for (size_t k = 0; k < r->n_by && !bad; k++) {
            dm_expr_value_t v;
            if (dm_expr_eval(r->by[k].expr, &in->records[i].value, &out->arena, &v, &rec_err)) {
                if (dm_dead_letters_add(dead, i, rec_err.message))
                    return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
                bad = true;
            } else if (dm_state_put_value(&r->key, &v)) {
                return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
            }
        }
        if (bad) continue;
        /* A global key is one byte, so that it is a key (hashed to one partition). */
        uint32_t n = r->key.len ? (uint32_t)r->key.len : 1;
        const dm_row_t *row = &in->records[i];
        uint8_t *key = dm_arena_alloc(&out->arena, DM_REKEY_PREFIX + n + row->key_len);
        if (!key) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
        dm_rekey_put_len(key, n);
        if (r->key.len)
            memcpy(key + DM_REKEY_PREFIX, r->key.data, n);
        else
            key[DM_REKEY_PREFIX] = 0;
        if (row->key_len) memcpy(key + DM_REKEY_PREFIX + n, row->key, row->key_len);
        dm_row_t *o = &out->records[out->n++];
        *o = *row;
        o->key = key;
        o->key_len = DM_REKEY_PREFIX + n + row->key_len;
    }
    return DM_OK;
}

static void rekey_close(dm_proc_t *p)
{
    rekey_free(p->state);
}

const dm_proc_ops_t dm_proc_rekey = {
    .name = "rekey",
    .summary = "internal: keys records by a stateful step's key before a re-key topic",
    .config = &rekey_table,
    .config_size = sizeof(rekey_conf_t),
    .open = rekey_open,
    .read_paths = rekey_paths,
    .process = rekey_process,
    .close = rekey_close,
};
