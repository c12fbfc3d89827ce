/* engine/proc_join.c — stream–stream interval join.
 *
 * Settings: {"with": "payments", "on": "order_id", "within": "5m", "time": "ts"}
 * A record of the stream (left) and a record of the other source (right)
 * join when their `on` fields are equal and their event times are at most
 * `within` apart, whichever comes first. Each pair is emitted once, when the
 * second of the two arrives. Output: every left field, then every right field
 * but `on` (named "<with>_<name>" when the left has that name already); the
 * output record's timestamp is the later event time. A record with a null key
 * joins nothing. Records are kept (both sides, keyed state) until the
 * watermark is `within` past them; a record older than that can no longer
 * find its partners and goes to the dead letters as late.
 *
 * State: [side][key bytes] → the side's records of that key: (event time,
 * Avro binary of the record) each; a timer per record for its expiry.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/expr.h"
#include "engine/processor.h"
#include "engine/schema_out.h"
#include "engine/state.h"

typedef struct side {
    const dm_avro_node_t *schema;
    dm_expr_t *on, *time;
} side_t;

typedef struct join {
    side_t s[2]; /* 0: the stream, 1: the other source */
    int64_t within;
    int right_key; /* field index of `on` in the right schema, left out of the output */
    dm_timers_t timers;
    dm_buf_t key, rec, list, other;
} join_t;

static void join_free(join_t *j)
{
    for (int i = 0; i < 2; i++) {
        dm_expr_free(j->s[i].on);
        dm_expr_free(j->s[i].time);
    }
    dm_timers_free(&j->timers);
    dm_buf_free(&j->key);
    dm_buf_free(&j->rec);
    dm_buf_free(&j->list);
    dm_buf_free(&j->other);
    free(j);
}

static dm_err_t compile_side(side_t *s, const char *on, const char *time, const char *what,
                             dm_error_t *err)
{
    dm_err_t rc = dm_expr_compile(on, s->schema, &s->on, err);
    if (rc) return dm_error_prefix(err, "'on' in %s", what);
    if (!time) return DM_OK;
    if ((rc = dm_expr_compile(time, s->schema, &s->time, err)))
        return dm_error_prefix(err, "'time' in %s", what);
    dm_expr_type_t t = dm_expr_result_type(s->time);
    if (t != DM_EXPR_LONG && t != DM_EXPR_TIMESTAMP)
        return dm_error_set(err, DM_ERR_INVALID,
                            "'time': '%s' in %s is a %s; event time must be a long or a timestamp",
                            time, what, dm_expr_type_name(t));
    return DM_OK;
}

typedef struct join_conf {
    char *with, *on, *time;
    int64_t within;
} join_conf_t;

static const dm_config_field_t join_fields[] = {
    {.name = "with",
     .type = DM_CFG_NAME,
     .offset = offsetof(join_conf_t, with),
     .flags = DM_CFG_REQUIRED,
     .help = "the source to join with (its records enter the chain at this step)"},
    {.name = "on",
     .type = DM_CFG_EXPR,
     .offset = offsetof(join_conf_t, on),
     .flags = DM_CFG_REQUIRED,
     .help = "the field both sides match on"},
    {.name = "within",
     .type = DM_CFG_DURATION,
     .offset = offsetof(join_conf_t, within),
     .min = 1,
     .max = 31536000000.0,
     .flags = DM_CFG_REQUIRED,
     .help = "how far apart in event time two records may be and still join"},
    {.name = "time",
     .type = DM_CFG_EXPR,
     .offset = offsetof(join_conf_t, time),
     .help = "event-time field, in both sources (long ms or timestamp); default: record "
             "timestamps"},
};
DM_CONFIG_TABLE(join_table, "join step", join_fields);

static dm_err_t join_open(dm_proc_t *p, const void *config, const dm_avro_node_t *input,
                          dm_avro_schema_t **output, dm_error_t *err)
{
    const join_conf_t *c = config;
    const char *with = c->with, *on = c->on, *time = c->time;
    if (!p->other)
        return dm_error_set(err, DM_ERR_INVALID,
                            "join reads the records of %s too: the source must exist and the join "
                            "be the pipeline's only one",
                            with);
    join_t *j = calloc(1, sizeof(*j));
    if (!j) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    j->s[0].schema = input;
    j->s[1].schema = p->other;
    j->within = c->within;
    dm_err_t rc = DM_OK;
    char what[300];
    snprintf(what, sizeof(what), "source %s", with);
    if (!rc) rc = compile_side(&j->s[0], on, time, "the stream", err);
    if (!rc) rc = compile_side(&j->s[1], on, time, what, err);
    if (!rc && dm_expr_result_type(j->s[0].on) != dm_expr_result_type(j->s[1].on) &&
        dm_expr_result_type(j->s[0].on) != DM_EXPR_NULL &&
        dm_expr_result_type(j->s[1].on) != DM_EXPR_NULL)
        rc = dm_error_set(err, DM_ERR_INVALID,
                          "'on': '%s' is a %s in the stream and a %s in %s; they never match", on,
                          dm_expr_type_name(dm_expr_result_type(j->s[0].on)),
                          dm_expr_type_name(dm_expr_result_type(j->s[1].on)), with);
    j->right_key = dm_avro_field_index(p->other, on);
    json_t *seen = json_object(), *fields = json_array();
    for (uint32_t i = 0; !rc && i < input->n_fields; i++)
        json_array_append_new(fields, json_pack("{s:s, s:o}", "name", input->fields[i].name, "type",
                                                dm_schema_type_json(input->fields[i].type, seen)));
    for (uint32_t i = 0; !rc && i < p->other->n_fields; i++) {
        if ((int)i == j->right_key) continue;
        const char *name = p->other->fields[i].name;
        char renamed[300];
        if (dm_avro_field_index(input, name) >= 0) {
            snprintf(renamed, sizeof(renamed), "%s_%s", with, name);
            for (char *c = renamed; *c; c++)
                if (*c == '-' || *c == '.') *c = '_';
            name = renamed;
        }
        json_array_append_new(fields,
                              json_pack("{s:s, s:o}", "name", name, "type",
                                        dm_schema_type_json(p->other->fields[i].type, seen)));
    }
    if (!rc) {
        const char *space = input->space && *input->space ? input->space : "";
        char ns[512];
        snprintf(ns, sizeof(ns), "%s%sjoined", space, *space ? "." : "");
        json_t *doc =
            json_pack("{s:s, s:s, s:s, s:O}", "type", "record", "name",
                      input->name ? input->name : "Record", "namespace", ns, "fields", fields);
        rc = dm_schema_from_json(doc, "join", output, err);
        json_decref(doc);
    }
    json_decref(seen);
    json_decref(fields);
    if (rc) {
        join_free(j);
        return rc;
    }
    p->state = j;
    return DM_OK;
}

static void put_i64(dm_buf_t *b, int64_t v)
{
    uint8_t x[8];
    for (int i = 7; i >= 0; i--, v = (int64_t)((uint64_t)v >> 8))
        x[i] = (uint8_t)v;
    dm_buf_append(b, x, 8);
}

static int64_t get_i64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return (int64_t)v;
}

/* Walks a list of (time, len, bytes) entries; false at its end or when corrupt. */
static bool next_entry(const uint8_t **p, const uint8_t *end, int64_t *t, const uint8_t **rec,
                       uint32_t *len)
{
    if (end - *p < 12) return false;
    *t = get_i64(*p);
    *len = (uint32_t)(*p)[8] << 24 | (uint32_t)(*p)[9] << 16 | (uint32_t)(*p)[10] << 8 | (*p)[11];
    if ((size_t)(end - *p) < 12 + (size_t)*len) return false;
    *rec = *p + 12;
    *p += 12 + *len;
    return true;
}

/* Emits left ⋈ right: the left values, then the right ones but the key. */
static dm_err_t emit(join_t *j, const dm_avro_value_t *left, const dm_avro_value_t *right,
                     int64_t t, dm_rows_t *out, dm_error_t *err)
{
    uint32_t nl = j->s[0].schema->n_fields, nr = j->s[1].schema->n_fields;
    uint32_t n = nl + nr - (j->right_key >= 0 ? 1 : 0);
    dm_avro_value_t *vals = dm_arena_alloc(&out->arena, n * sizeof(*vals));
    dm_row_t *r = vals ? dm_rows_push(out) : NULL;
    if (!r) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    memcpy(vals, left->u.v, nl * sizeof(*vals));
    uint32_t k = nl;
    for (uint32_t i = 0; i < nr; i++)
        if ((int)i != j->right_key) vals[k++] = right->u.v[i];
    r->value = (dm_avro_value_t){.type = DM_AVRO_RECORD, .len = n, .u.v = vals};
    r->timestamp = t;
    return DM_OK;
}

static dm_err_t dead_letter(dm_dead_letters_t *dead, uint32_t index, const char *reason,
                            dm_error_t *err)
{
    if (dm_dead_letters_add(dead, index, reason))
        return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    return DM_OK;
}

static dm_err_t process_row(dm_proc_t *p, const dm_row_t *row, uint32_t index, dm_rows_t *out,
                            dm_dead_letters_t *dead, dm_error_t *err)
{
    join_t *j = p->state;
    int me = row->input ? 1 : 0;
    side_t *s = &j->s[me];
    dm_expr_value_t v;
    dm_error_t rec_err;
    char reason[256];
    int64_t t = row->timestamp;
    if (s->time) {
        if (dm_expr_eval(s->time, &row->value, &out->arena, &v, &rec_err))
            return dead_letter(dead, index, rec_err.message, err);
        if (v.null) return dead_letter(dead, index, "join: the event time is null", err);
        t = v.u.l;
    }
    if (p->watermark != INT64_MIN && t + j->within < p->watermark) {
        snprintf(reason, sizeof(reason),
                 "late: event time %lld is more than %lld ms behind the watermark %lld; the "
                 "records it could join are gone",
                 (long long)t, (long long)j->within, (long long)p->watermark);
        return dead_letter(dead, index, reason, err);
    }
    if (dm_expr_eval(s->on, &row->value, &out->arena, &v, &rec_err))
        return dead_letter(dead, index, rec_err.message, err);
    if (v.null) return DM_OK; /* a null key joins nothing (SQL semantics) */
    dm_buf_reset(&j->key);
    dm_buf_reset(&j->rec);
    if (dm_buf_append_u8(&j->key, (uint8_t)(1 - me)) || dm_state_put_value(&j->key, &v))
        return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    if (dm_avro_encode(s->schema, &row->value, &j->rec, err))
        return err ? err->code : DM_ERR_INVALID;
    /* The partners waiting on the other side. */
    const uint8_t *val;
    size_t vlen;
    bool found;
    dm_err_t rc = dm_state_get(p->kv, j->key.data, j->key.len, &val, &vlen, &found, err);
    if (rc) return rc;
    if (found) {
        uint8_t *copy = dm_arena_memdup(&out->arena, val, vlen ? vlen : 1);
        if (!copy) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
        const uint8_t *q = copy, *end = copy + vlen, *bytes;
        int64_t ot;
        uint32_t len;
        while (next_entry(&q, end, &ot, &bytes, &len)) {
            if (ot > t + j->within || ot < t - j->within) continue;
            dm_avro_value_t other;
            if (dm_avro_decode_node(j->s[1 - me].schema, bytes, len, NULL, &out->arena, &other,
                                    err))
                return dm_error_prefix(err, "join: a kept record is corrupt");
            rc = me ? emit(j, &other, &row->value, ot > t ? ot : t, out, err)
                    : emit(j, &row->value, &other, ot > t ? ot : t, out, err);
            if (rc) return rc;
        }
    }
    /* Keep this record for the partners still to come. */
    j->key.data[0] = (uint8_t)me;
    rc = dm_state_get(p->kv, j->key.data, j->key.len, &val, &vlen, &found, err);
    if (rc) return rc;
    dm_buf_reset(&j->list);
    if (found && dm_buf_append(&j->list, val, vlen))
        return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    put_i64(&j->list, t);
    uint8_t l4[4] = {(uint8_t)(j->rec.len >> 24), (uint8_t)(j->rec.len >> 16),
                     (uint8_t)(j->rec.len >> 8), (uint8_t)j->rec.len};
    if (dm_buf_append(&j->list, l4, 4) || dm_buf_append(&j->list, j->rec.data, j->rec.len))
        return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    if ((rc = dm_state_put(p->kv, j->key.data, j->key.len, j->list.data, j->list.len, err)))
        return rc;
    if (dm_timers_push(&j->timers, t + j->within + 1, j->key.data, j->key.len))
        return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    return DM_OK;
}

static dm_err_t join_process(dm_proc_t *p, const dm_rows_t *in, dm_rows_t *out,
                             dm_dead_letters_t *dead, dm_error_t *err)
{
    for (uint32_t i = 0; i < in->n; i++) {
        dm_err_t rc = process_row(p, &in->records[i], i, out, dead, err);
        if (rc) return rc;
    }
    return DM_OK;
}

/* Drops the kept records the watermark is `within` past. */
static dm_err_t join_watermark(dm_proc_t *p, int64_t wm, dm_rows_t *out, dm_error_t *err)
{
    (void)out;
    join_t *j = p->state;
    dm_timer_t tm;
    while (dm_timers_pop_due(&j->timers, wm, &tm)) {
        const uint8_t *val;
        size_t vlen;
        bool found;
        dm_err_t rc = dm_state_get(p->kv, tm.key, tm.klen, &val, &vlen, &found, err);
        if (!rc && found) {
            dm_buf_reset(&j->list);
            const uint8_t *q = val, *end = val + vlen, *bytes, *start = val;
            int64_t t;
            uint32_t len;
            bool dropped = false;
            while (next_entry(&q, end, &t, &bytes, &len)) {
                if (t + j->within < wm)
                    dropped = true;
                else if (dm_buf_append(&j->list, start, (size_t)(q - start)))
                    rc = dm_error_set(err, DM_ERR_NOMEM, "out of memory");
                start = q;
            }
            if (!rc && dropped)
                rc = j->list.len
                         ? dm_state_put(p->kv, tm.key, tm.klen, j->list.data, j->list.len, err)
                         : dm_state_del(p->kv, tm.key, tm.klen, err);
        }
        free(tm.key);
        if (rc) return rc;
    }
    return DM_OK;
}

typedef struct restore_ctx {
    join_t *j;
    dm_err_t rc;
} restore_ctx_t;

static int restore_key(void *ctx, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
    restore_ctx_t *c = ctx;
    const uint8_t *q = val, *end = val + vlen, *bytes;
    int64_t t;
    uint32_t len;
    while (next_entry(&q, end, &t, &bytes, &len))
        if ((c->rc = dm_timers_push(&c->j->timers, t + c->j->within + 1, key, klen))) return 1;
    return 0;
}

static dm_err_t join_restore(dm_proc_t *p, dm_error_t *err)
{
    join_t *j = p->state;
    dm_timers_free(&j->timers);
    restore_ctx_t c = {j, DM_OK};
    dm_err_t rc = dm_state_foreach(p->kv, restore_key, &c, err);
    if (!rc && c.rc) rc = dm_error_set(err, c.rc, "out of memory");
    return rc;
}

static void join_close(dm_proc_t *p)
{
    if (p->state) join_free(p->state);
}

/* Output fields: every field of the stream, then every field of the other
 * source but its `on` (as open lays them out), each unchanged; which pairs
 * there are depends on `on` of both sides and their event times. */
static dm_err_t join_field_deps(const dm_proc_t *p, dm_field_deps_t *deps)
{
    const join_t *j = p->state;
    const dm_avro_node_t *out = p->output->root;
    uint32_t o = 0;
    dm_err_t rc = DM_OK;
    for (uint32_t i = 0; i < p->input->n_fields && !rc && o < out->n_fields; i++, o++)
        rc = dm_field_deps_add(deps, out->fields[o].name, p->input->fields[i].name, DM_DEP_MAIN,
                               NULL, DM_DEP_IDENTITY);
    for (uint32_t i = 0; i < p->other->n_fields && !rc && o < out->n_fields; i++) {
        if ((int)i == j->right_key) continue;
        rc = dm_field_deps_add(deps, out->fields[o++].name, p->other->fields[i].name, DM_DEP_OTHER,
                               NULL, DM_DEP_IDENTITY);
    }
    for (int side = 0; side < 2 && !rc; side++) {
        dm_field_dep_side_t sd = side ? DM_DEP_OTHER : DM_DEP_MAIN;
        rc = dm_field_deps_add_expr(deps, NULL, j->s[side].on, sd, NULL, DM_DEP_JOIN);
        if (!rc) rc = dm_field_deps_add_expr(deps, NULL, j->s[side].time, sd, NULL, DM_DEP_WINDOW);
    }
    return rc;
}

const dm_proc_ops_t dm_proc_join = {
    .name = "join",
    .summary = "stream–stream interval join with another source",
    .config = &join_table,
    .config_size = sizeof(join_conf_t),
    .open = join_open,
    .field_deps = join_field_deps,
    .read_paths = NULL, /* every field of both sides flows out */
    .process = join_process,
    .close = join_close,
    .stateful = true,
    .on_watermark = join_watermark,
    .restore = join_restore,
    .two_inputs = true,
};
