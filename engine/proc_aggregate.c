/* engine/proc_aggregate.c — windowed aggregation on event time.
 *
 * Settings:
 *   {"window": {"type": "tumbling" | "hopping" | "session",
 *               "size": "1m", "slide": "10s", "gap": "5m", "lateness": "30s"},
 *    "time": "ts",                        (event time; default: the record timestamp)
 *    "group_by": ["country", "lower(city) AS city"],
 *    "aggregates": ["count(*) AS n", "sum(amount) AS total", "min(x)", "max(x)",
 *                   "avg(x)", "count(distinct user) AS users", "count(x)"]}
 *
 * Output: one record per window and group once the watermark passes the
 * window's end plus the allowed lateness: window_start, window_end
 * (timestamp-millis), the group_by columns, then the aggregates. count is a
 * long; sum a long (long input) or double; min and max the input's type; avg
 * a double; sum, min, max and avg are null when no value was non-null.
 * A record whose windows have all been emitted already (event time more than
 * the lateness behind the watermark) goes to the dead letters with the reason.
 *
 * State: one entry per group (key: the group_by values as bytes), holding the
 * group's open windows and their accumulators; a timer per window end. Count
 * distinct keeps the distinct values of each window in its state. Within one
 * batch a group is decoded once and written back once, at the end of the batch
 * (up to GROUPS_CACHED groups at a time), not once per record.
 */
#include "core/hash.h"
#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine/expr.h"
#include "engine/proc_util.h"
#include "engine/processor.h"
#include "engine/schema_out.h"
#include "engine/state.h"

typedef enum { W_TUMBLING, W_HOPPING, W_SESSION } wtype_t;
typedef enum { A_COUNT_ALL, A_COUNT, A_SUM, A_MIN, A_MAX, A_AVG, A_COUNT_DISTINCT } afn_t;

typedef struct agg {
    afn_t fn;
    dm_expr_t *arg; /* NULL for count(*) */
    dm_expr_type_t type;
} agg_t;

/* One accumulator while a group's windows are decoded. */
typedef struct acc {
    int64_t n;         /* count, count(x), avg's count, distinct count */
    int64_t l;         /* sum of longs */
    double d;          /* sum of doubles, avg's sum */
    bool has;          /* sum, min, max: a non-null value was seen */
    dm_expr_value_t v; /* min, max (strings point into set or the batch) */
    dm_buf_t set;      /* count distinct: the distinct values as bytes; min/max: v's string */
} acc_t;

typedef struct window {
    int64_t start, end;
    acc_t *accs;
} window_t;

/* A group's open windows, decoded from its state entry. */
typedef struct group {
    dm_buf_t key; /* the group_by values as bytes: the state key */
    window_t *wins;
    size_t n_wins, cap_wins;
} group_t;

#define GROUPS_CACHED 256
#define GROUP_SLOTS   512 /* the cache's hash index: a power of two, at most half full */

typedef struct aggregate {
    wtype_t type;
    int64_t size, slide, gap, lateness;
    dm_expr_t *time;
    dm_proc_column_t *keys;
    size_t n_keys;
    agg_t *aggs;
    size_t n_aggs;
    const char **paths;
    size_t n_paths;
    dm_timers_t timers;
    dm_buf_t key, val; /* the current record's group key; an encoded group */
    group_t one;       /* the group a watermark or restore works on */
    group_t *cached;   /* the groups this batch touched, GROUPS_CACHED of them */
    size_t n_cached;
    uint16_t index[GROUP_SLOTS]; /* cached group + 1 by key hash; 0 = free */
    dm_expr_value_t *args;       /* per record: the aggregates' argument values */
} aggregate_t;

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static void free_group(aggregate_t *a, group_t *g)
{
    for (size_t w = 0; w < g->cap_wins; w++) {
        for (size_t k = 0; g->wins[w].accs && k < a->n_aggs; k++)
            dm_buf_free(&g->wins[w].accs[k].set);
        free(g->wins[w].accs);
    }
    free(g->wins);
    dm_buf_free(&g->key);
}

static void aggregate_free(aggregate_t *a)
{
    dm_expr_free(a->time);
    dm_proc_columns_free(a->keys, a->n_keys);
    for (size_t i = 0; i < a->n_aggs; i++)
        dm_expr_free(a->aggs[i].arg);
    free(a->aggs);
    free(a->paths);
    dm_timers_free(&a->timers);
    dm_buf_free(&a->key);
    dm_buf_free(&a->val);
    free_group(a, &a->one);
    for (size_t i = 0; a->cached && i < GROUPS_CACHED; i++)
        free_group(a, &a->cached[i]);
    free(a->cached);
    free(a->args);
    free(a);
}

/* ---- settings -------------------------------------------------------------------------- */

typedef struct window_conf {
    int type; /* wtype_t */
    int64_t size, slide, gap, lateness;
} window_conf_t;

typedef struct aggregate_conf {
    window_conf_t window;
    char *time;
    dm_strlist_t group_by, aggregates;
} aggregate_conf_t;

#define YEAR_MS 31536000000.0

static bool given(const json_t *json, const char *key)
{
    const json_t *v = json_object_get(json, key);
    return v && !json_is_null(v);
}

/* Which of size, slide and gap a window takes depends on its type. */
static dm_err_t check_window(void *obj, const json_t *json, const dm_config_source_t *src,
                             dm_error_t *err)
{
    const window_conf_t *w = obj;
    static const char *const names[] = {"tumbling", "hopping", "session"};
    const char *type = names[w->type];
    if (w->type == W_SESSION) {
        if (!given(json, "gap"))
            return dm_config_fail(src, "gap", DM_ERR_CONFIG_MISSING, err,
                                  "required key 'gap' is missing (a session window closes after "
                                  "this long without records of its group)");
        if (given(json, "size") || given(json, "slide"))
            return dm_config_fail(src, given(json, "size") ? "size" : "slide", DM_ERR_CONFIG, err,
                                  "a session window has no %s (it has a gap)",
                                  given(json, "size") ? "size" : "slide");
        return DM_OK;
    }
    if (!given(json, "size"))
        return dm_config_fail(src, "size", DM_ERR_CONFIG_MISSING, err,
                              "required key 'size' is missing (a %s window's length)", type);
    if (given(json, "gap"))
        return dm_config_fail(src, "gap", DM_ERR_CONFIG, err,
                              "a %s window has no gap (gaps are for session windows)", type);
    if (w->type == W_TUMBLING && given(json, "slide"))
        return dm_config_fail(src, "slide", DM_ERR_CONFIG, err,
                              "a tumbling window has no slide (it moves by its size; a hopping "
                              "window slides)");
    if (w->type == W_HOPPING && !given(json, "slide"))
        return dm_config_fail(src, "slide", DM_ERR_CONFIG_MISSING, err,
                              "required key 'slide' is missing (a hopping window starts every "
                              "slide)");
    if (w->type == W_HOPPING && w->slide > w->size)
        return dm_config_fail(src, "slide", DM_ERR_CONFIG_RANGE, err,
                              "a hopping window's slide (%" PRId64 " ms) must be at most its size "
                              "(%" PRId64 " ms)",
                              w->slide, w->size);
    return DM_OK;
}

static const char *const window_types[] = {"tumbling", "hopping", "session", NULL};

static const dm_config_field_t window_fields[] = {
    {.name = "type",
     .type = DM_CFG_ENUM,
     .offset = offsetof(window_conf_t, type),
     .enum_values = window_types,
     .flags = DM_CFG_REQUIRED,
     .help = "tumbling: back to back; hopping: one starting every slide; session: per group, "
             "while records arrive less than gap apart",
     .check = check_window},
    {.name = "size",
     .type = DM_CFG_DURATION,
     .offset = offsetof(window_conf_t, size),
     .min = 1,
     .max = YEAR_MS,
     .help = "length of a tumbling or hopping window (required for them)"},
    {.name = "slide",
     .type = DM_CFG_DURATION,
     .offset = offsetof(window_conf_t, slide),
     .min = 1,
     .max = YEAR_MS,
     .help = "how often a hopping window starts (required for it; at most its size)"},
    {.name = "gap",
     .type = DM_CFG_DURATION,
     .offset = offsetof(window_conf_t, gap),
     .min = 1,
     .max = YEAR_MS,
     .help = "a session closes after this long without records of its group (required for "
             "session windows)"},
    {.name = "lateness",
     .type = DM_CFG_DURATION,
     .offset = offsetof(window_conf_t, lateness),
     .def = "0",
     .min = 0,
     .max = YEAR_MS,
     .help = "how long after its end a window waits for records out of order before it is "
             "emitted"},
};
DM_CONFIG_TABLE(window_table, "aggregate window", window_fields);

static const dm_config_field_t aggregate_fields[] = {
    {.name = "window",
     .type = DM_CFG_OBJECT,
     .offset = offsetof(aggregate_conf_t, window),
     .table = &window_table,
     .flags = DM_CFG_REQUIRED,
     .help = "the windows records are counted in"},
    {.name = "time",
     .type = DM_CFG_EXPR,
     .offset = offsetof(aggregate_conf_t, time),
     .help = "event-time field (long ms since the epoch, or a timestamp); default: the record "
             "timestamp"},
    {.name = "group_by",
     .type = DM_CFG_EXPR_LIST,
     .offset = offsetof(aggregate_conf_t, group_by),
     .help = "the group columns (\"path\" or \"expr AS name\"); none: one group"},
    {.name = "aggregates",
     .type = DM_CFG_EXPR_LIST,
     .offset = offsetof(aggregate_conf_t, aggregates),
     .min = 1,
     .flags = DM_CFG_REQUIRED,
     .help = "count(*), count(x), count(distinct x), sum(x), min(x), max(x), avg(x), each "
             "optionally \"AS name\""},
};
DM_CONFIG_TABLE(aggregate_table, "aggregate step", aggregate_fields);

static const char *fn_name(afn_t f)
{
    static const char *const names[] = {"count", "count", "sum", "min", "max", "avg", "count"};
    return names[f];
}

/* Parses "fn(arg) [AS name]" and adds the output field. */
static dm_err_t parse_agg(aggregate_t *a, size_t i, const char *item, const dm_avro_node_t *input,
                          json_t *fields, dm_error_t *err)
{
    char text[1024], *expr, *alias;
    snprintf(text, sizeof(text), "%s", item);
    dm_proc_split_as(text, &expr, &alias);
    char *open = strchr(expr, '('), *close = strrchr(expr, ')');
    if (!open || !close || close < open || close[1])
        return dm_error_set(err, DM_ERR_CONFIG,
                            "aggregates[%zu]: '%s' is not FUNCTION(argument): use count, sum, "
                            "min, max, avg or count(distinct x)",
                            i, item);
    *open = *close = '\0';
    char *fn = expr, *arg = open + 1;
    while (isspace((unsigned char)*arg))
        arg++;
    for (char *e = arg + strlen(arg); e > arg && isspace((unsigned char)e[-1]);)
        *--e = '\0';
    for (char *e = fn + strlen(fn); e > fn && isspace((unsigned char)e[-1]);)
        *--e = '\0';
    agg_t *g = &a->aggs[i];
    bool distinct = !strncasecmp(arg, "distinct", 8) && isspace((unsigned char)arg[8]);
    if (distinct) {
        arg += 9;
        while (isspace((unsigned char)*arg))
            arg++;
    }
    if (!strcasecmp(fn, "count"))
        g->fn = distinct ? A_COUNT_DISTINCT : !strcmp(arg, "*") ? A_COUNT_ALL : A_COUNT;
    else if (distinct)
        return dm_error_set(err, DM_ERR_CONFIG, "aggregates[%zu]: DISTINCT works with count only",
                            i);
    else if (!strcasecmp(fn, "sum"))
        g->fn = A_SUM;
    else if (!strcasecmp(fn, "min"))
        g->fn = A_MIN;
    else if (!strcasecmp(fn, "max"))
        g->fn = A_MAX;
    else if (!strcasecmp(fn, "avg"))
        g->fn = A_AVG;
    else
        return dm_error_set(err, DM_ERR_CONFIG,
                            "aggregates[%zu]: unknown function '%s' (count, sum, min, max, avg, "
                            "count(distinct x))",
                            i, fn);
    if (g->fn != A_COUNT_ALL) {
        if (!*arg || !strcmp(arg, "*"))
            return dm_error_set(err, DM_ERR_CONFIG, "aggregates[%zu]: %s needs an argument", i,
                                fn_name(g->fn));
        dm_err_t rc = dm_expr_compile(arg, input, &g->arg, err);
        if (rc) return dm_error_prefix(err, "aggregates[%zu]", i);
        g->type = dm_expr_result_type(g->arg);
        bool numeric = g->type == DM_EXPR_LONG || g->type == DM_EXPR_DOUBLE;
        if ((g->fn == A_SUM || g->fn == A_AVG) && !numeric)
            return dm_error_set(err, DM_ERR_INVALID,
                                "aggregates[%zu]: %s(%s) needs a number, '%s' is a %s", i,
                                fn_name(g->fn), arg, arg, dm_expr_type_name(g->type));
        if (g->type == DM_EXPR_NULL)
            return dm_error_set(err, DM_ERR_INVALID, "aggregates[%zu]: the argument is always null",
                                i);
        if (dm_proc_add_paths(g->arg, &a->paths, &a->n_paths))
            return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    }
    char def[300];
    const char *name = alias;
    if (!name) {
        const char *pn = g->fn == A_COUNT_ALL ? "" : dm_proc_path_name(arg);
        if (!pn)
            return dm_error_set(err, DM_ERR_INVALID,
                                "aggregates[%zu]: name '%s' with AS (\"%s AS name\")", i, item,
                                item);
        snprintf(def, sizeof(def), "%s%s%s%s", g->fn == A_COUNT_DISTINCT ? "distinct_" : "",
                 fn_name(g->fn), *pn ? "_" : "", pn);
        name = def;
    }
    if (!dm_proc_valid_name(name))
        return dm_error_set(err, DM_ERR_INVALID,
                            "aggregates[%zu]: '%s' is not an Avro name (letters, digits, _)", i,
                            name);
    json_t *type;
    bool nullable = true;
    switch (g->fn) {
    case A_COUNT_ALL:
    case A_COUNT:
    case A_COUNT_DISTINCT:
        type = json_string("long");
        nullable = false;
        break;
    case A_SUM: type = dm_schema_expr_type_json(g->type, true); break;
    case A_AVG: type = dm_schema_expr_type_json(DM_EXPR_DOUBLE, true); break;
    default: type = dm_schema_expr_type_json(g->type, true); break;
    }
    json_t *jf = json_pack("{s:s, s:o}", "name", name, "type", type);
    if (nullable) json_object_set_new(jf, "default", json_null());
    json_array_append_new(fields, jf);
    return DM_OK;
}

/* Output field names must differ. */
static dm_err_t check_names(const json_t *fields, dm_error_t *err)
{
    for (size_t i = 0; i < json_array_size(fields); i++)
        for (size_t j = 0; j < i; j++) {
            const char *a = json_string_value(json_object_get(json_array_get(fields, i), "name"));
            const char *b = json_string_value(json_object_get(json_array_get(fields, j), "name"));
            if (!strcmp(a, b))
                return dm_error_set(err, DM_ERR_INVALID,
                                    "two output fields are named '%s'; rename one with AS", a);
        }
    return DM_OK;
}

static dm_err_t aggregate_open(dm_proc_t *p, const void *config, const dm_avro_node_t *input,
                               dm_avro_schema_t **output, dm_error_t *err)
{
    const aggregate_conf_t *c = config;
    aggregate_t *a = calloc(1, sizeof(*a));
    if (!a) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    json_t *fields = json_array();
    dm_err_t rc = DM_OK;
    a->type = (wtype_t)c->window.type;
    a->size = c->window.size;
    a->slide = a->type == W_HOPPING ? c->window.slide : c->window.size;
    a->gap = c->window.gap;
    a->lateness = c->window.lateness;
    if (c->time) {
        if (!(rc = dm_expr_compile(c->time, input, &a->time, err))) {
            dm_expr_type_t t = dm_expr_result_type(a->time);
            if (t != DM_EXPR_LONG && t != DM_EXPR_TIMESTAMP)
                rc = dm_error_set(err, DM_ERR_INVALID,
                                  "'time': '%s' is a %s; event time must be a long (ms since the "
                                  "epoch) or a timestamp",
                                  c->time, dm_expr_type_name(t));
            else if (dm_proc_add_paths(a->time, &a->paths, &a->n_paths))
                rc = dm_error_set(err, DM_ERR_NOMEM, "out of memory");
        } else {
            dm_error_prefix(err, "'time'");
        }
    }
    json_t *ts = json_pack("{s:s, s:s}", "type", "long", "logicalType", "timestamp-millis");
    json_array_append_new(fields, json_pack("{s:s, s:O}", "name", "window_start", "type", ts));
    json_array_append_new(fields, json_pack("{s:s, s:O}", "name", "window_end", "type", ts));
    json_decref(ts);
    if (!rc && c->group_by.n) {
        rc = dm_proc_columns(&c->group_by, "group_by", input, &a->keys, &a->n_keys, fields, err);
        for (size_t i = 0; !rc && i < a->n_keys; i++)
            if (dm_proc_add_paths(a->keys[i].expr, &a->paths, &a->n_paths))
                rc = dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    }
    const dm_strlist_t *aggs = &c->aggregates;
    if (!rc) {
        a->aggs = calloc(aggs->n ? aggs->n : 1, sizeof(*a->aggs));
        a->args = calloc(aggs->n ? aggs->n : 1, sizeof(*a->args));
        a->cached = calloc(GROUPS_CACHED, sizeof(*a->cached));
        if (!a->aggs || !a->args || !a->cached)
            rc = dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; !rc && i < aggs->n; i++) {
        a->n_aggs = i + 1;
        rc = parse_agg(a, i, aggs->items[i], input, fields, err);
    }
    if (!rc) rc = check_names(fields, err);
    if (!rc) {
        const char *space = input->space && *input->space ? input->space : "";
        char ns[512];
        snprintf(ns, sizeof(ns), "%s%saggregated", space, *space ? "." : "");
        json_t *doc =
            json_pack("{s:s, s:s, s:s, s:O}", "type", "record", "name",
                      input->name ? input->name : "Record", "namespace", ns, "fields", fields);
        rc = dm_schema_from_json(doc, "aggregate", output, err);
        json_decref(doc);
    }
    json_decref(fields);
    if (rc) {
        aggregate_free(a);
        return rc;
    }
    p->state = a;
    return DM_OK;
}

static size_t aggregate_paths(const dm_proc_t *p, const char *const **paths)
{
    const aggregate_t *a = p->state;
    *paths = a->paths;
    return a->n_paths;
}

/* ---- a group's windows as bytes ------------------------------------------------------- */

static void put_i64(dm_buf_t *b, int64_t v)
{
    uint8_t x[8];
    for (int i = 7; i >= 0; i--, v = (int64_t)((uint64_t)v >> 8))
        x[i] = (uint8_t)v;
    dm_buf_append(b, x, 8);
}

static bool get_i64(const uint8_t **p, const uint8_t *end, int64_t *v)
{
    if (end - *p < 8) return false;
    uint64_t x = 0;
    for (int i = 0; i < 8; i++)
        x = x << 8 | (*p)[i];
    *p += 8;
    *v = (int64_t)x;
    return true;
}

static void put_f64(dm_buf_t *b, double d)
{
    int64_t v;
    memcpy(&v, &d, 8);
    put_i64(b, v);
}

static bool get_f64(const uint8_t **p, const uint8_t *end, double *d)
{
    int64_t v;
    if (!get_i64(p, end, &v)) return false;
    memcpy(d, &v, 8);
    return true;
}

/* Makes room for n windows in g, each with fresh accumulators. */
static dm_err_t reserve_windows(aggregate_t *a, group_t *g, size_t n)
{
    if (n <= g->cap_wins) return DM_OK;
    size_t cap = g->cap_wins ? g->cap_wins : 4;
    while (cap < n)
        cap *= 2;
    window_t *w = realloc(g->wins, cap * sizeof(*w));
    if (!w) return DM_ERR_NOMEM;
    g->wins = w;
    for (size_t i = g->cap_wins; i < cap; i++) {
        w[i].accs = calloc(a->n_aggs, sizeof(acc_t));
        if (!w[i].accs) {
            g->cap_wins = i;
            return DM_ERR_NOMEM;
        }
    }
    g->cap_wins = cap;
    return DM_OK;
}

static void reset_acc(acc_t *c)
{
    dm_buf_t set = c->set;
    dm_buf_reset(&set);
    memset(c, 0, sizeof(*c));
    c->set = set;
}

/* Keeps a min/max string in the accumulator's own buffer. */
static void own_string(acc_t *c)
{
    if (c->v.null || c->v.type != DM_EXPR_STRING) return;
    if (c->v.u.s == (const char *)c->set.data) return;
    dm_buf_t tmp = DM_BUF_INIT;
    dm_buf_append(&tmp, c->v.u.s, c->v.len);
    dm_buf_free(&c->set);
    c->set = tmp;
    c->v.u.s = (const char *)c->set.data;
}

static dm_err_t decode_windows(aggregate_t *a, group_t *g, const uint8_t *p, size_t len)
{
    const uint8_t *end = p + len;
    g->n_wins = 0;
    int64_t n;
    if (!get_i64(&p, end, &n) || n < 0 || n > 1 << 20) return DM_ERR_CORRUPT;
    if (reserve_windows(a, g, (size_t)n)) return DM_ERR_NOMEM;
    for (int64_t w = 0; w < n; w++) {
        window_t *win = &g->wins[w];
        if (!get_i64(&p, end, &win->start) || !get_i64(&p, end, &win->end)) return DM_ERR_CORRUPT;
        for (size_t k = 0; k < a->n_aggs; k++) {
            acc_t *c = &win->accs[k];
            reset_acc(c);
            int64_t has = 0;
            switch (a->aggs[k].fn) {
            case A_COUNT_ALL:
            case A_COUNT:
                if (!get_i64(&p, end, &c->n)) return DM_ERR_CORRUPT;
                break;
            case A_SUM:
                if (!get_i64(&p, end, &has) || !get_i64(&p, end, &c->l)) return DM_ERR_CORRUPT;
                memcpy(&c->d, &c->l, 8);
                c->has = has != 0;
                break;
            case A_AVG:
                if (!get_i64(&p, end, &c->n) || !get_f64(&p, end, &c->d)) return DM_ERR_CORRUPT;
                break;
            case A_MIN:
            case A_MAX:
                if (dm_state_get_value(&p, end, &c->v)) return DM_ERR_CORRUPT;
                c->has = !c->v.null;
                own_string(c);
                break;
            case A_COUNT_DISTINCT: {
                int64_t bytes;
                if (!get_i64(&p, end, &c->n) || !get_i64(&p, end, &bytes) || bytes < 0 ||
                    end - p < bytes)
                    return DM_ERR_CORRUPT;
                if (dm_buf_append(&c->set, p, (size_t)bytes)) return DM_ERR_NOMEM;
                p += bytes;
                break;
            }
            }
        }
    }
    g->n_wins = (size_t)n;
    return p == end ? DM_OK : DM_ERR_CORRUPT;
}

static dm_err_t encode_windows(aggregate_t *a, const group_t *g, dm_buf_t *out)
{
    dm_buf_reset(out);
    size_t live = 0;
    for (size_t w = 0; w < g->n_wins; w++)
        live += g->wins[w].start != INT64_MIN;
    put_i64(out, (int64_t)live);
    for (size_t w = 0; w < g->n_wins; w++) {
        const window_t *win = &g->wins[w];
        if (win->start == INT64_MIN) continue; /* emitted or merged away */
        put_i64(out, win->start);
        put_i64(out, win->end);
        for (size_t k = 0; k < a->n_aggs; k++) {
            const acc_t *c = &win->accs[k];
            switch (a->aggs[k].fn) {
            case A_COUNT_ALL:
            case A_COUNT: put_i64(out, c->n); break;
            case A_SUM:
                put_i64(out, c->has);
                if (a->aggs[k].type == DM_EXPR_DOUBLE)
                    put_f64(out, c->d);
                else
                    put_i64(out, c->l);
                break;
            case A_AVG:
                put_i64(out, c->n);
                put_f64(out, c->d);
                break;
            case A_MIN:
            case A_MAX: {
                dm_expr_value_t v = c->v;
                v.null = !c->has;
                dm_state_put_value(out, &v);
                break;
            }
            case A_COUNT_DISTINCT:
                put_i64(out, c->n);
                put_i64(out, (int64_t)c->set.len);
                dm_buf_append(out, c->set.data, c->set.len);
                break;
            }
        }
    }
    return out->data || !out->len ? DM_OK : DM_ERR_NOMEM;
}

/* ---- accumulating ------------------------------------------------------------------------ */

static bool distinct_has(const acc_t *c, const uint8_t *v, size_t len)
{
    const uint8_t *p = c->set.data, *end = p + c->set.len;
    while (p < end) {
        const uint8_t *start = p;
        dm_expr_value_t x;
        if (dm_state_get_value(&p, end, &x)) return false;
        if ((size_t)(p - start) == len && !memcmp(start, v, len)) return true;
    }
    return false;
}

static dm_err_t add_distinct(acc_t *c, const uint8_t *v, size_t len)
{
    if (distinct_has(c, v, len)) return DM_OK;
    c->n++;
    return dm_buf_append(&c->set, v, len);
}

static void add_minmax(acc_t *c, const dm_expr_value_t *v, bool min)
{
    if (v->null) return;
    int cmp = c->has ? dm_state_value_cmp(v, &c->v) : -1;
    if (!c->has || (min ? cmp < 0 : cmp > 0)) {
        c->v = *v;
        c->has = true;
        own_string(c);
    }
}

/* Adds one record's argument values to a window's accumulators. */
static dm_err_t accumulate(aggregate_t *a, window_t *win)
{
    for (size_t k = 0; k < a->n_aggs; k++) {
        acc_t *c = &win->accs[k];
        const dm_expr_value_t *v = &a->args[k];
        switch (a->aggs[k].fn) {
        case A_COUNT_ALL: c->n++; break;
        case A_COUNT: c->n += !v->null; break;
        case A_SUM:
            if (v->null) break;
            if (v->type == DM_EXPR_DOUBLE)
                c->d += v->u.d;
            else
                c->l = (int64_t)((uint64_t)c->l + (uint64_t)v->u.l); /* wraps like Java */
            c->has = true;
            break;
        case A_AVG:
            if (v->null) break;
            c->n++;
            c->d += v->type == DM_EXPR_DOUBLE ? v->u.d : (double)v->u.l;
            break;
        case A_MIN: add_minmax(c, v, true); break;
        case A_MAX: add_minmax(c, v, false); break;
        case A_COUNT_DISTINCT: {
            if (v->null) break;
            dm_buf_t b = DM_BUF_INIT;
            dm_err_t rc = dm_state_put_value(&b, v);
            if (!rc) rc = add_distinct(c, b.data, b.len);
            dm_buf_free(&b);
            if (rc) return rc;
            break;
        }
        }
    }
    return DM_OK;
}

/* Folds window src into dst (session merges). */
static dm_err_t merge_window(aggregate_t *a, window_t *dst, window_t *src)
{
    if (src->start < dst->start) dst->start = src->start;
    if (src->end > dst->end) dst->end = src->end;
    for (size_t k = 0; k < a->n_aggs; k++) {
        acc_t *d = &dst->accs[k], *s = &src->accs[k];
        switch (a->aggs[k].fn) {
        case A_COUNT_ALL:
        case A_COUNT: d->n += s->n; break;
        case A_SUM:
            d->l = (int64_t)((uint64_t)d->l + (uint64_t)s->l);
            d->d += s->d;
            d->has |= s->has;
            break;
        case A_AVG:
            d->n += s->n;
            d->d += s->d;
            break;
        case A_MIN:
        case A_MAX:
            if (s->has) add_minmax(d, &s->v, a->aggs[k].fn == A_MIN);
            break;
        case A_COUNT_DISTINCT: {
            const uint8_t *p = s->set.data, *end = p + s->set.len;
            while (p < end) {
                const uint8_t *start = p;
                dm_expr_value_t x;
                if (dm_state_get_value(&p, end, &x)) return DM_ERR_CORRUPT;
                dm_err_t rc = add_distinct(d, start, (size_t)(p - start));
                if (rc) return rc;
            }
            break;
        }
        }
    }
    src->start = INT64_MIN;
    return DM_OK;
}

static window_t *new_window(aggregate_t *a, group_t *g, int64_t start, int64_t end)
{
    if (reserve_windows(a, g, g->n_wins + 1)) return NULL;
    window_t *w = &g->wins[g->n_wins++];
    w->start = start;
    w->end = end;
    for (size_t k = 0; k < a->n_aggs; k++)
        reset_acc(&w->accs[k]);
    return w;
}

/* Adds the current record (time t, arguments in a->args) to g's windows,
 * creating and merging windows and setting timers. */
static dm_err_t add_to_windows(aggregate_t *a, group_t *g, int64_t t, int64_t wm)
{
    const void *key = g->key.data;
    size_t klen = g->key.len;
    if (a->type == W_SESSION) {
        window_t *into = NULL;
        int64_t s = t, e = t + a->gap;
        for (size_t w = 0; w < g->n_wins; w++) {
            window_t *win = &g->wins[w];
            if (win->start == INT64_MIN || win->start > e || win->end < s) continue;
            if (!into) {
                into = win;
                continue;
            }
            dm_err_t rc = merge_window(a, into, win);
            if (rc) return rc;
        }
        bool created = !into;
        if (created && !(into = new_window(a, g, s, e))) return DM_ERR_NOMEM;
        int64_t before = into->end;
        if (s < into->start) into->start = s;
        if (e > into->end) into->end = e;
        /* Merged windows may still overlap others now that this one grew. */
        for (bool again = true; again;) {
            again = false;
            for (size_t w = 0; w < g->n_wins; w++) {
                window_t *win = &g->wins[w];
                if (win == into || win->start == INT64_MIN || win->start > into->end ||
                    win->end < into->start)
                    continue;
                dm_err_t rc = merge_window(a, into, win);
                if (rc) return rc;
                again = true;
            }
        }
        if (created || into->end != before) {
            if (dm_timers_push(&a->timers, into->end + a->lateness, key, klen)) return DM_ERR_NOMEM;
        }
        return accumulate(a, into);
    }
    int64_t last = floor_div(t, a->slide) * a->slide;
    for (int64_t s = last; s > t - a->size; s -= a->slide) {
        int64_t e = s + a->size;
        if (wm != INT64_MIN && e + a->lateness <= wm) continue; /* emitted already */
        window_t *win = NULL;
        for (size_t w = 0; w < g->n_wins && !win; w++)
            if (g->wins[w].start == s) win = &g->wins[w];
        if (!win) {
            if (!(win = new_window(a, g, s, e))) return DM_ERR_NOMEM;
            if (dm_timers_push(&a->timers, e + a->lateness, key, klen)) return DM_ERR_NOMEM;
        }
        dm_err_t rc = accumulate(a, win);
        if (rc) return rc;
    }
    return DM_OK;
}

/* True when every window the record at t belongs to was emitted already. */
static bool too_late(const aggregate_t *a, int64_t t, int64_t wm)
{
    if (wm == INT64_MIN) return false;
    int64_t latest_end =
        a->type == W_SESSION ? t + a->gap : floor_div(t, a->slide) * a->slide + a->size;
    return latest_end + a->lateness <= wm;
}

/* Decodes the windows of the group g->key names from the state. */
static dm_err_t load_group(aggregate_t *a, group_t *g, dm_state_t *kv, dm_error_t *err)
{
    const uint8_t *v;
    size_t vlen;
    bool found;
    g->n_wins = 0;
    dm_err_t rc = dm_state_get(kv, g->key.data, g->key.len, &v, &vlen, &found, err);
    if (rc || !found) return rc;
    rc = decode_windows(a, g, v, vlen);
    if (rc)
        return dm_error_set(err, rc == DM_ERR_NOMEM ? rc : DM_ERR_CORRUPT,
                            rc == DM_ERR_NOMEM ? "out of memory"
                                               : "aggregate: the state of a group is corrupt");
    return DM_OK;
}

static dm_err_t store_group(aggregate_t *a, const group_t *g, dm_state_t *kv, dm_error_t *err)
{
    size_t live = 0;
    for (size_t w = 0; w < g->n_wins; w++)
        live += g->wins[w].start != INT64_MIN;
    if (!live) return dm_state_del(kv, g->key.data, g->key.len, err);
    if (encode_windows(a, g, &a->val)) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    return dm_state_put(kv, g->key.data, g->key.len, a->val.data, a->val.len, err);
}

/* Empties the batch's cache of groups; keeps their memory for the next batch
 * unless a count distinct set grew large. */
static void forget_groups(aggregate_t *a)
{
    for (size_t i = 0; i < a->n_cached; i++) {
        group_t *g = &a->cached[i];
        for (size_t w = 0; w < g->n_wins; w++)
            for (size_t k = 0; k < a->n_aggs; k++)
                if (g->wins[w].accs[k].set.cap > 65536) dm_buf_free(&g->wins[w].accs[k].set);
    }
    a->n_cached = 0;
    memset(a->index, 0, sizeof(a->index));
}

/* Writes the batch's groups back to the state and empties the cache. */
static dm_err_t flush_groups(aggregate_t *a, dm_state_t *kv, dm_error_t *err)
{
    dm_err_t rc = DM_OK;
    for (size_t i = 0; i < a->n_cached && !rc; i++)
        rc = store_group(a, &a->cached[i], kv, err);
    forget_groups(a);
    return rc;
}

/* The group of the current record's key (a->key): from the batch's cache, or
 * loaded from the state into it (writing the cache back first when full). */
static dm_err_t find_group(aggregate_t *a, dm_state_t *kv, group_t **out, dm_error_t *err)
{
    size_t slot = dm_hash64(a->key.data, a->key.len) & (GROUP_SLOTS - 1);
    for (; a->index[slot]; slot = (slot + 1) & (GROUP_SLOTS - 1)) {
        group_t *g = &a->cached[a->index[slot] - 1];
        if (g->key.len == a->key.len &&
            (!a->key.len || !memcmp(g->key.data, a->key.data, a->key.len))) { /* "": no group_by */
            *out = g;
            return DM_OK;
        }
    }
    if (a->n_cached == GROUPS_CACHED) {
        dm_err_t rc = flush_groups(a, kv, err);
        if (rc) return rc;
        return find_group(a, kv, out, err);
    }
    group_t *g = &a->cached[a->n_cached];
    dm_buf_reset(&g->key);
    if (a->key.len && dm_buf_append(&g->key, a->key.data, a->key.len))
        return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    dm_err_t rc = load_group(a, g, kv, err);
    if (rc) return rc;
    a->index[slot] = (uint16_t)++a->n_cached;
    *out = g;
    return DM_OK;
}

static dm_err_t aggregate_process(dm_proc_t *p, const dm_rows_t *in, dm_rows_t *out,
                                  dm_dead_letters_t *dead, dm_error_t *err)
{
    aggregate_t *a = p->state;
    dm_error_t rec_err;
    char reason[256];
    forget_groups(a); /* what a batch that failed half-way left */
    for (uint32_t i = 0; i < in->n; i++) {
        const dm_row_t *row = &in->records[i];
        int64_t t = row->timestamp;
        bool bad = false;
        dm_expr_value_t v;
        if (a->time) {
            if (dm_expr_eval(a->time, &row->value, &out->arena, &v, &rec_err)) {
                snprintf(reason, sizeof(reason), "%s", rec_err.message);
                bad = true;
            } else if (v.null) {
                snprintf(reason, sizeof(reason), "aggregate: the event time is null");
                bad = true;
            } else {
                t = v.u.l;
            }
        }
        if (!bad && too_late(a, t, p->watermark)) {
            snprintf(reason, sizeof(reason),
                     "late: event time %lld is behind the watermark %lld by more than the allowed "
                     "lateness of %lld ms; its windows were emitted already",
                     (long long)t, (long long)p->watermark, (long long)a->lateness);
            bad = true;
        }
        dm_buf_reset(&a->key);
        for (size_t k = 0; k < a->n_keys && !bad; k++) {
            if (dm_expr_eval(a->keys[k].expr, &row->value, &out->arena, &v, &rec_err)) {
                snprintf(reason, sizeof(reason), "%s", rec_err.message);
                bad = true;
            } else if (dm_state_put_value(&a->key, &v)) {
                return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
            }
        }
        for (size_t k = 0; k < a->n_aggs && !bad; k++) {
            if (!a->aggs[k].arg) continue;
            if (dm_expr_eval(a->aggs[k].arg, &row->value, &out->arena, &a->args[k], &rec_err)) {
                snprintf(reason, sizeof(reason), "%s", rec_err.message);
                bad = true;
            }
        }
        if (bad) {
            if (dm_dead_letters_add(dead, i, reason))
                return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
            continue;
        }
        group_t *g = NULL;
        dm_err_t rc = find_group(a, p->kv, &g, err);
        if (!rc && (rc = add_to_windows(a, g, t, p->watermark)))
            return dm_error_set(err, rc, "aggregate: out of memory or corrupt state");
        if (rc) return rc;
    }
    return flush_groups(a, p->kv, err);
}

/* ---- emitting ------------------------------------------------------------------------------ */

static dm_err_t emit(aggregate_t *a, const group_t *g, const window_t *win, dm_rows_t *out,
                     dm_error_t *err)
{
    uint32_t n = (uint32_t)(2 + a->n_keys + a->n_aggs);
    dm_avro_value_t *vals = dm_arena_calloc(&out->arena, n, sizeof(*vals));
    dm_row_t *r = vals ? dm_rows_push(out) : NULL;
    if (!r) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    vals[0] = (dm_avro_value_t){.type = DM_AVRO_LONG, .u.l = win->start};
    vals[1] = (dm_avro_value_t){.type = DM_AVRO_LONG, .u.l = win->end};
    const uint8_t *p = g->key.data, *end = p + g->key.len;
    for (size_t k = 0; k < a->n_keys; k++) {
        dm_expr_value_t v;
        if (dm_state_get_value(&p, end, &v))
            return dm_error_set(err, DM_ERR_CORRUPT, "aggregate: a group key in state is corrupt");
        dm_proc_expr_to_avro(&v, a->keys[k].nullable, &out->arena, true, &vals[2 + k]);
    }
    for (size_t k = 0; k < a->n_aggs; k++) {
        const acc_t *c = &win->accs[k];
        dm_avro_value_t *o = &vals[2 + a->n_keys + k];
        dm_expr_value_t v = {.null = true};
        switch (a->aggs[k].fn) {
        case A_COUNT_ALL:
        case A_COUNT:
        case A_COUNT_DISTINCT: *o = (dm_avro_value_t){.type = DM_AVRO_LONG, .u.l = c->n}; continue;
        case A_SUM:
            v = (dm_expr_value_t){.type = a->aggs[k].type, .null = !c->has};
            if (v.type == DM_EXPR_DOUBLE)
                v.u.d = c->d;
            else
                v.u.l = c->l;
            break;
        case A_AVG:
            v = (dm_expr_value_t){
                .type = DM_EXPR_DOUBLE, .null = !c->n, .u.d = c->n ? c->d / (double)c->n : 0};
            break;
        case A_MIN:
        case A_MAX:
            v = c->v;
            v.null = !c->has;
            break;
        }
        dm_proc_expr_to_avro(&v, true, &out->arena, true, o);
    }
    r->value = (dm_avro_value_t){.type = DM_AVRO_RECORD, .len = n, .u.v = vals};
    r->timestamp = win->end - 1; /* the window's last instant: event time of the result */
    return DM_OK;
}

static int cmp_start(const void *x, const void *y)
{
    const window_t *a = x, *b = y;
    return a->start < b->start ? -1 : a->start > b->start;
}

/* Emits the windows the watermark closed, oldest first per group. */
static dm_err_t aggregate_watermark(dm_proc_t *p, int64_t wm, dm_rows_t *out, dm_error_t *err)
{
    aggregate_t *a = p->state;
    group_t *g = &a->one;
    dm_timer_t t;
    while (dm_timers_pop_due(&a->timers, wm, &t)) {
        dm_buf_reset(&g->key);
        dm_err_t rc = dm_buf_append(&g->key, t.key, t.klen) ? DM_ERR_NOMEM : DM_OK;
        free(t.key);
        if (rc) return dm_error_set(err, rc, "out of memory");
        if ((rc = load_group(a, g, p->kv, err))) return rc;
        if (!g->n_wins) continue; /* a timer of windows emitted or merged already */
        qsort(g->wins, g->n_wins, sizeof(*g->wins), cmp_start);
        bool changed = false;
        for (size_t w = 0; w < g->n_wins; w++) {
            window_t *win = &g->wins[w];
            if (win->end + a->lateness > wm) continue;
            if ((rc = emit(a, g, win, out, err))) return rc;
            win->start = INT64_MIN;
            changed = true;
        }
        if (changed && (rc = store_group(a, g, p->kv, err))) return rc;
    }
    return DM_OK;
}

typedef struct restore_ctx {
    aggregate_t *a;
    dm_err_t rc;
} restore_ctx_t;

static int restore_group(void *ctx, const uint8_t *key, size_t klen, const uint8_t *val,
                         size_t vlen)
{
    restore_ctx_t *c = ctx;
    aggregate_t *a = c->a;
    group_t *g = &a->one;
    if ((c->rc = decode_windows(a, g, val, vlen))) return 1;
    for (size_t w = 0; w < g->n_wins; w++)
        if ((c->rc = dm_timers_push(&a->timers, g->wins[w].end + a->lateness, key, klen))) return 1;
    return 0;
}

/* Timers are derived from the state: one per open window. */
static dm_err_t aggregate_restore(dm_proc_t *p, dm_error_t *err)
{
    aggregate_t *a = p->state;
    dm_timers_free(&a->timers);
    restore_ctx_t c = {a, DM_OK};
    dm_err_t rc = dm_state_foreach(p->kv, restore_group, &c, err);
    if (rc) return rc;
    if (c.rc)
        return dm_error_set(err, c.rc == DM_ERR_NOMEM ? c.rc : DM_ERR_CORRUPT,
                            "aggregate: restoring windows: %s",
                            c.rc == DM_ERR_NOMEM ? "out of memory" : "corrupt state");
    return DM_OK;
}

/* Output fields in order: window_start, window_end, the group_by columns,
 * then the aggregates (as open lays them out). The windows are made of the
 * event time; the group columns decide the groups. */
static dm_err_t aggregate_field_deps(const dm_proc_t *p, dm_field_deps_t *deps)
{
    const aggregate_t *a = p->state;
    const dm_avro_node_t *out = p->output->root;
    dm_err_t rc = DM_OK;
    for (int w = 0; w < 2 && !rc; w++)
        rc = dm_field_deps_add_expr(deps, out->fields[w].name, a->time, DM_DEP_MAIN, NULL,
                                    DM_DEP_TRANSFORMATION);
    if (!rc) rc = dm_field_deps_add_expr(deps, NULL, a->time, DM_DEP_MAIN, NULL, DM_DEP_WINDOW);
    for (size_t k = 0; k < a->n_keys && !rc; k++) {
        const dm_expr_t *e = a->keys[k].expr;
        rc = dm_field_deps_add_expr(deps, a->keys[k].name, e, DM_DEP_MAIN, NULL,
                                    dm_expr_is_field(e) ? DM_DEP_IDENTITY : DM_DEP_TRANSFORMATION);
        if (!rc) rc = dm_field_deps_add_expr(deps, NULL, e, DM_DEP_MAIN, NULL, DM_DEP_GROUP_BY);
    }
    for (size_t i = 0; i < a->n_aggs && !rc; i++)
        rc = dm_field_deps_add_expr(deps, out->fields[2 + a->n_keys + i].name, a->aggs[i].arg,
                                    DM_DEP_MAIN, NULL, DM_DEP_AGGREGATION);
    return rc;
}

static void aggregate_close(dm_proc_t *p)
{
    if (p->state) aggregate_free(p->state);
}

const dm_proc_ops_t dm_proc_aggregate = {
    .name = "aggregate",
    .summary = "windowed aggregation on event time (tumbling, hopping, session windows)",
    .config = &aggregate_table,
    .config_size = sizeof(aggregate_conf_t),
    .open = aggregate_open,
    .read_paths = aggregate_paths,
    .process = aggregate_process,
    .close = aggregate_close,
    .stateful = true,
    .on_watermark = aggregate_watermark,
    .restore = aggregate_restore,
    .field_deps = aggregate_field_deps,
};
