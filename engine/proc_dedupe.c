/* engine/proc_dedupe.c — drops repeats of a key within a time window.
 *
 * Settings: {"key": ["order_id"], "within": "10m", "time": "ts"} (key: one
 * field or a list)
 * The first record of a key passes; records with the same key whose event
 * time is less than `within` after that first one are duplicates and do not
 * pass (the processor's records-out metric counts what passed). A key is
 * forgotten once the watermark is `within` past its first record, so a record
 * whose event time is `within` or more behind the watermark can no longer be
 * checked: it goes to the dead letters as late. The output schema is the
 * input's; values pass through without a copy.
 *
 * State: key values as bytes → event time of the first record (8 bytes); a
 * timer per key for when it expires.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/expr.h"
#include "engine/proc_util.h"
#include "engine/processor.h"

typedef struct dedupe {
    dm_proc_column_t *keys;
    size_t n_keys;
    dm_expr_t *time;
    int64_t within;
    const char **paths;
    size_t n_paths;
    dm_timers_t timers;
    dm_buf_t key;
} dedupe_t;

static void dedupe_free(dedupe_t *d)
{
    dm_proc_columns_free(d->keys, d->n_keys);
    dm_expr_free(d->time);
    free(d->paths);
    dm_timers_free(&d->timers);
    dm_buf_free(&d->key);
    free(d);
}

typedef struct dedupe_conf {
    dm_strlist_t key;
    int64_t within;
    char *time;
} dedupe_conf_t;

static const dm_config_field_t dedupe_fields[] = {
    {.name = "key",
     .type = DM_CFG_EXPR_LIST,
     .offset = offsetof(dedupe_conf_t, key),
     .min = 1,
     .flags = DM_CFG_REQUIRED,
     .help = "what makes two records repeats: a field, or a list of fields or expressions"},
    {.name = "within",
     .type = DM_CFG_DURATION,
     .offset = offsetof(dedupe_conf_t, within),
     .min = 1,
     .max = 31536000000.0,
     .flags = DM_CFG_REQUIRED,
     .help = "repeats of a key less than this long (event time) after its first record are "
             "dropped"},
    {.name = "time",
     .type = DM_CFG_EXPR,
     .offset = offsetof(dedupe_conf_t, time),
     .help = "event-time field (long ms or timestamp); default: the record timestamp"},
};
DM_CONFIG_TABLE(dedupe_table, "dedupe step", dedupe_fields);

static dm_err_t dedupe_open(dm_proc_t *p, const void *config, const dm_avro_node_t *input,
                            dm_avro_schema_t **output, dm_error_t *err)
{
    const dedupe_conf_t *c = config;
    dedupe_t *d = calloc(1, sizeof(*d));
    if (!d) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    dm_err_t rc = dm_proc_columns(&c->key, "key", input, &d->keys, &d->n_keys, NULL, err);
    d->within = c->within;
    if (!rc && c->time) {
        if ((rc = dm_expr_compile(c->time, input, &d->time, err)))
            dm_error_prefix(err, "'time'");
        else if (dm_expr_result_type(d->time) != DM_EXPR_LONG &&
                 dm_expr_result_type(d->time) != DM_EXPR_TIMESTAMP)
            rc = dm_error_set(err, DM_ERR_INVALID,
                              "'time': '%s' is a %s; event time must be a long or a timestamp",
                              c->time, dm_expr_type_name(dm_expr_result_type(d->time)));
    }
    for (size_t i = 0; !rc && i < d->n_keys; i++)
        if (dm_proc_add_paths(d->keys[i].expr, &d->paths, &d->n_paths))
            rc = dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    if (!rc && d->time && dm_proc_add_paths(d->time, &d->paths, &d->n_paths))
        rc = dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    if (rc) {
        dedupe_free(d);
        return rc;
    }
    p->state = d;
    *output = NULL;
    return DM_OK;
}

static size_t dedupe_paths(const dm_proc_t *p, const char *const **paths)
{
    const dedupe_t *d = p->state;
    *paths = d->paths;
    return d->n_paths;
}

static void put_i64(uint8_t *b, int64_t v)
{
    for (int i = 7; i >= 0; i--, v = (int64_t)((uint64_t)v >> 8))
        b[i] = (uint8_t)v;
}

static int64_t get_i64(const uint8_t *b)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | b[i];
    return (int64_t)v;
}

/* Whether the row passes; *reason set (and false returned) when it is dead. */
static dm_err_t check_row(dm_proc_t *p, const dm_row_t *row, dm_arena_t *arena, bool *pass,
                          char *reason, size_t cap, dm_error_t *err)
{
    dedupe_t *d = p->state;
    dm_error_t rec_err;
    dm_expr_value_t v;
    int64_t t = row->timestamp;
    *pass = false;
    reason[0] = '\0';
    if (d->time) {
        if (dm_expr_eval(d->time, &row->value, arena, &v, &rec_err)) {
            snprintf(reason, cap, "%s", rec_err.message);
            return DM_OK;
        }
        if (v.null) {
            snprintf(reason, cap, "dedupe: the event time is null");
            return DM_OK;
        }
        t = v.u.l;
    }
    if (p->watermark != INT64_MIN && t + d->within <= p->watermark) {
        snprintf(reason, cap,
                 "late: event time %lld is %lld ms or more behind the watermark %lld; repeats of "
                 "its key are no longer known",
                 (long long)t, (long long)d->within, (long long)p->watermark);
        return DM_OK;
    }
    dm_buf_reset(&d->key);
    for (size_t k = 0; k < d->n_keys; k++) {
        if (dm_expr_eval(d->keys[k].expr, &row->value, arena, &v, &rec_err)) {
            snprintf(reason, cap, "%s", rec_err.message);
            return DM_OK;
        }
        if (dm_state_put_value(&d->key, &v))
            return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    }
    const uint8_t *val;
    size_t vlen;
    bool found;
    dm_err_t rc = dm_state_get(p->kv, d->key.data, d->key.len, &val, &vlen, &found, err);
    if (rc) return rc;
    if (found && vlen == 8) {
        int64_t first = get_i64(val);
        /* Within the window of the first one (either side: events come out of order). */
        if (t < first + d->within && t > first - d->within) return DM_OK;
    }
    uint8_t b[8];
    put_i64(b, t);
    if ((rc = dm_state_put(p->kv, d->key.data, d->key.len, b, 8, err))) return rc;
    if (dm_timers_push(&d->timers, t + d->within, d->key.data, d->key.len))
        return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    *pass = true;
    return DM_OK;
}

static dm_err_t dedupe_process(dm_proc_t *p, const dm_rows_t *in, dm_rows_t *out,
                               dm_dead_letters_t *dead, dm_error_t *err)
{
    char reason[256];
    for (uint32_t i = 0; i < in->n; i++) {
        bool pass;
        dm_err_t rc =
            check_row(p, &in->records[i], &out->arena, &pass, reason, sizeof(reason), err);
        if (rc) return rc;
        if (reason[0]) {
            if (dm_dead_letters_add(dead, i, reason))
                return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
            continue;
        }
        if (!pass) continue;
        dm_row_t *r = dm_rows_push(out);
        if (!r) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
        *r = in->records[i];
    }
    return DM_OK;
}

/* Forgets keys whose window the watermark passed. */
static dm_err_t dedupe_watermark(dm_proc_t *p, int64_t wm, dm_rows_t *out, dm_error_t *err)
{
    (void)out;
    dedupe_t *d = p->state;
    dm_timer_t t;
    while (dm_timers_pop_due(&d->timers, wm, &t)) {
        const uint8_t *val;
        size_t vlen;
        bool found;
        dm_err_t rc = dm_state_get(p->kv, t.key, t.klen, &val, &vlen, &found, err);
        /* A later first record of the key re-armed its own timer. */
        if (!rc && found && vlen == 8 && get_i64(val) + d->within <= wm)
            rc = dm_state_del(p->kv, t.key, t.klen, err);
        free(t.key);
        if (rc) return rc;
    }
    return DM_OK;
}

typedef struct restore_ctx {
    dedupe_t *d;
    dm_err_t rc;
} restore_ctx_t;

static int restore_key(void *ctx, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
    restore_ctx_t *c = ctx;
    if (vlen != 8) return c->rc = DM_ERR_CORRUPT;
    return (c->rc = dm_timers_push(&c->d->timers, get_i64(val) + c->d->within, key, klen)) != 0;
}

static dm_err_t dedupe_restore(dm_proc_t *p, dm_error_t *err)
{
    dedupe_t *d = p->state;
    dm_timers_free(&d->timers);
    restore_ctx_t c = {d, DM_OK};
    dm_err_t rc = dm_state_foreach(p->kv, restore_key, &c, err);
    if (!rc && c.rc) rc = dm_error_set(err, c.rc, "dedupe: restoring keys: corrupt state");
    return rc;
}

static void dedupe_close(dm_proc_t *p)
{
    if (p->state) dedupe_free(p->state);
}

const dm_proc_ops_t dm_proc_dedupe = {
    .name = "dedupe",
    .summary = "drops repeats of a key within a time window",
    .config = &dedupe_table,
    .config_size = sizeof(dedupe_conf_t),
    .open = dedupe_open,
    .read_paths = dedupe_paths,
    .process = dedupe_process,
    .close = dedupe_close,
    .stateful = true,
    .on_watermark = dedupe_watermark,
    .restore = dedupe_restore,
};
