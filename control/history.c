/* control/history.c — the pipelines' last hour, sampled in memory (history.h). */
#include "control/history.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/api.h"
#include "core/clock.h"
#include "core/log.h"

#define KEEP      120 /* samples per pipeline */
#define MAX_STEPS 32
#define PROC_LEN  32

/* One step's counters in a sample being built. */
typedef struct step_count {
    int step;
    char processor[PROC_LEN];
    int64_t in, out, dead;
} step_count_t;

/* A pipeline's ring of samples: each is width values (t, consumed, lag,
 * lag_ms, e2e_sum_ms, e2e_count, then in, out, dead per step). */
typedef struct series {
    char *name;
    size_t n_steps;
    step_count_t steps[MAX_STEPS]; /* the layout: step and processor of each */
    size_t head, count;
    size_t alloc;  /* rows allocated: grows to KEEP (rows fill in order until then) */
    int64_t *v;    /* alloc * width */
    uint64_t seen; /* the sampling round that last saw the pipeline */
} series_t;

struct dm_history {
    dm_store_t *store;
    dm_runtime_t *rt;
    dm_metrics_t *metrics;
    int64_t interval_ms;
    pthread_t th;
    bool running;
    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t cv;
    bool stop;
    uint64_t round;
    json_t *index; /* name → position in s */
    series_t **s;
    size_t n, cap;
    int64_t saved_ms; /* when the series were last written to the store */
};

#define SPACE         "history"
#define SAVE_EVERY_MS 300000 /* and at stop: a crash loses at most this much */

#define FIXED 6 /* values of a sample before its steps' */

static size_t width_of(size_t n_steps)
{
    return FIXED + 3 * n_steps;
}

/* A pipeline's time numbers in one sample: the age of its oldest unprocessed
 * record (the largest over its tasks and sinks, ms) and its sinks' end-to-end
 * histogram totals (sum in ms, count). */
typedef struct times {
    int64_t lag_ms, e2e_sum_ms, e2e_count;
} times_t;

/* ---- reading the controller's counters ------------------------------------------ */

/* The value of label name in a metric line's {…} (into out), or false. */
static bool label(const char *line, const char *name, char *out, size_t cap)
{
    char key[40];
    snprintf(key, sizeof(key), "%s=\"", name);
    const char *p = strstr(line, key);
    if (!p) return false;
    p += strlen(key);
    const char *end = strchr(p, '"');
    if (!end || (size_t)(end - p) >= cap) return false;
    memcpy(out, p, (size_t)(end - p));
    out[end - p] = '\0';
    return true;
}

/* Adds the processor counters of the metrics text to per: pipeline → array of
 * [step, processor, in, out, dead] summed over the pipeline's tasks. */
static void add_counters(const char *text, json_t *per)
{
    static const char *const names[] = {"datamesh_processor_records_in_total{",
                                        "datamesh_processor_records_out_total{",
                                        "datamesh_processor_dead_letters_total{"};
    for (const char *line = text; line && *line;) {
        const char *nl = strchr(line, '\n');
        int which = -1;
        for (int k = 0; k < 3 && which < 0; k++)
            if (!strncmp(line, names[k], strlen(names[k]))) which = k;
        char task[256], proc[PROC_LEN], step[16];
        const char *close = which >= 0 ? strchr(line, '}') : NULL;
        if (close && (!nl || close < nl) && label(line, "task", task, sizeof(task)) &&
            label(line, "processor", proc, sizeof(proc)) &&
            label(line, "step", step, sizeof(step))) {
            char *slash = strchr(task, '/');
            if (slash) *slash = '\0'; /* "NAME/task/0", "NAME/rekey.1/task/0" */
            long long value = strtoll(close + 1, NULL, 10);
            json_t *list = json_object_get(per, task);
            if (!list) json_object_set_new(per, task, list = json_array());
            json_t *hit = NULL, *e;
            size_t i;
            json_array_foreach(list, i, e)
            {
                if (json_integer_value(json_array_get(e, 0)) == atoi(step) &&
                    !strcmp(json_string_value(json_array_get(e, 1)), proc))
                    hit = e;
            }
            if (!hit) {
                hit = json_pack("[i, s, I, I, I]", atoi(step), proc, (json_int_t)0, (json_int_t)0,
                                (json_int_t)0);
                json_array_append_new(list, hit);
            }
            json_t *slot = json_array_get(hit, 2 + (size_t)which);
            json_integer_set(slot, json_integer_value(slot) + value);
        }
        line = nl ? nl + 1 : NULL;
    }
}

/* Adds the time numbers of the metrics text to per: pipeline → [lag_ms,
 * e2e_sum_ms, e2e_count] (datamesh_{task,sink}_input_lag_seconds: computed at
 * render, so a stuck pipeline's lag grows; datamesh_sink_end_to_end_seconds:
 * its sinks' _sum and _count). */
static void add_times(const char *text, json_t *per)
{
    static const struct {
        const char *prefix, *label;
        int slot; /* 0: max into lag_ms; 1, 2: add into e2e sum / count */
    } m[] = {
        {"datamesh_task_input_lag_seconds{", "task", 0},
        {"datamesh_sink_input_lag_seconds{", "sink", 0},
        {"datamesh_sink_end_to_end_seconds_sum{", "sink", 1},
        {"datamesh_sink_end_to_end_seconds_count{", "sink", 2},
    };
    for (const char *line = text; line && *line;) {
        const char *nl = strchr(line, '\n');
        int which = -1;
        for (int k = 0; k < 4 && which < 0; k++)
            if (!strncmp(line, m[k].prefix, strlen(m[k].prefix))) which = k;
        char unit[256];
        const char *close = which >= 0 ? strchr(line, '}') : NULL;
        if (close && (!nl || close < nl) && label(line, m[which].label, unit, sizeof(unit))) {
            char *slash = strchr(unit, '/');
            if (slash) *slash = '\0'; /* "NAME/task/0", "NAME/sink/0" */
            double v = strtod(close + 1, NULL);
            json_t *t = json_object_get(per, unit);
            if (!t)
                json_object_set_new(
                    per, unit,
                    t = json_pack("[I, I, I]", (json_int_t)0, (json_int_t)0, (json_int_t)0));
            json_t *slot = json_array_get(t, (size_t)m[which].slot);
            int64_t have = json_integer_value(slot);
            int64_t add = m[which].slot == 2 ? (int64_t)v : (int64_t)(v * 1000 + 0.5);
            json_integer_set(slot, m[which].slot == 0 ? (add > have ? add : have) : have + add);
        }
        line = nl ? nl + 1 : NULL;
    }
}

static int by_step(const void *a, const void *b)
{
    const step_count_t *x = a, *y = b;
    return x->step != y->step ? x->step - y->step : strcmp(x->processor, y->processor);
}

/* ---- the ring ------------------------------------------------------------------- */

/* The series of name with this step layout (a new or reset one when the
 * pipeline is new or its steps changed). Lock held. NULL when out of memory. */
static series_t *series_for(dm_history_t *h, const char *name, const step_count_t *steps,
                            size_t n_steps)
{
    json_t *at = json_object_get(h->index, name);
    series_t *s = at ? h->s[json_integer_value(at)] : NULL;
    bool same = s && s->n_steps == n_steps;
    for (size_t i = 0; same && i < n_steps; i++)
        same =
            s->steps[i].step == steps[i].step && !strcmp(s->steps[i].processor, steps[i].processor);
    if (same) return s;
    int64_t *v = calloc(8 * width_of(n_steps), sizeof(int64_t));
    if (!v) return NULL;
    if (!s) {
        if (h->n == h->cap) {
            size_t cap = h->cap ? h->cap * 2 : 64;
            series_t **grown = realloc(h->s, cap * sizeof(*grown));
            if (!grown) {
                free(v);
                return NULL;
            }
            h->s = grown;
            h->cap = cap;
        }
        s = calloc(1, sizeof(*s));
        if (!s || !(s->name = strdup(name))) {
            free(s);
            free(v);
            return NULL;
        }
        json_object_set_new(h->index, name, json_integer((json_int_t)h->n));
        h->s[h->n++] = s;
    }
    free(s->v);
    s->v = v;
    s->alloc = 8;
    s->n_steps = n_steps;
    memcpy(s->steps, steps, n_steps * sizeof(*steps));
    s->head = s->count = 0;
    return s;
}

/* The row the next sample goes to: rows grow until KEEP, then the oldest is
 * overwritten. NULL when out of memory. Lock held. */
static int64_t *next_row(series_t *s)
{
    size_t w = width_of(s->n_steps);
    if (s->count == s->alloc && s->alloc < KEEP) {
        size_t alloc = s->alloc * 2 < KEEP ? s->alloc * 2 : KEEP;
        int64_t *v = realloc(s->v, alloc * w * sizeof(int64_t));
        if (!v) return NULL;
        s->v = v;
        s->alloc = alloc;
    }
    int64_t *row = s->v + s->head * w;
    s->head = (s->head + 1) % KEEP;
    if (s->count < KEEP) s->count++;
    return row;
}

/* Drops the series of pipelines the last round did not see (deleted). Lock held. */
static void forget_unseen(dm_history_t *h)
{
    size_t kept = 0;
    for (size_t i = 0; i < h->n; i++) {
        series_t *s = h->s[i];
        if (s->seen == h->round) {
            h->s[kept] = s;
            json_object_set_new(h->index, s->name, json_integer((json_int_t)kept));
            kept++;
        } else {
            json_object_del(h->index, s->name);
            free(s->v);
            free(s->name);
            free(s);
        }
    }
    h->n = kept;
}

void dm_history_sample(dm_history_t *h)
{
    json_t *docs = NULL;
    if (dm_store_docs(h->store, DM_KIND_PIPELINE, &docs, NULL)) return;
    dm_buf_t text = DM_BUF_INIT;
    json_t *per = json_object(), *per_times = json_object();
    if (!dm_metrics_render(h->metrics, &text) && dm_buf_append(&text, "", 1) == DM_OK) {
        add_counters((const char *)text.data, per);
        add_times((const char *)text.data, per_times);
    }
    dm_buf_free(&text);
    int64_t now = dm_wall_ms();
    pthread_mutex_lock(&h->mu);
    h->round++;
    pthread_mutex_unlock(&h->mu);
    const char *name;
    json_t *doc;
    json_object_foreach(docs, name, doc)
    {
        /* Outside the lock: the runtime's status takes its own. */
        json_t *st = dm_runtime_status(h->rt, "Pipeline", name);
        int64_t consumed = 0, lag = 0;
        size_t i;
        json_t *u;
        json_array_foreach(json_object_get(st, "units"), i, u)
        {
            const char *kind = json_string_value(json_object_get(u, "kind"));
            if (!kind || strcmp(kind, "task")) continue;
            consumed += json_integer_value(json_object_get(u, "position"));
            lag += json_integer_value(json_object_get(u, "lag"));
        }
        json_decref(st);
        step_count_t steps[MAX_STEPS];
        size_t n_steps = 0;
        json_t *e;
        json_array_foreach(json_object_get(per, name), i, e)
        {
            if (n_steps == MAX_STEPS) break;
            step_count_t *c = &steps[n_steps++];
            c->step = (int)json_integer_value(json_array_get(e, 0));
            snprintf(c->processor, sizeof(c->processor), "%s",
                     json_string_value(json_array_get(e, 1)));
            c->in = json_integer_value(json_array_get(e, 2));
            c->out = json_integer_value(json_array_get(e, 3));
            c->dead = json_integer_value(json_array_get(e, 4));
        }
        qsort(steps, n_steps, sizeof(steps[0]), by_step);
        const json_t *tm = json_object_get(per_times, name);
        times_t times = {json_integer_value(json_array_get(tm, 0)),
                         json_integer_value(json_array_get(tm, 1)),
                         json_integer_value(json_array_get(tm, 2))};
        pthread_mutex_lock(&h->mu);
        series_t *s = series_for(h, name, steps, n_steps);
        int64_t *row = s ? next_row(s) : NULL;
        if (s) s->seen = h->round;
        if (row) {
            row[0] = now;
            row[1] = consumed;
            row[2] = lag;
            row[3] = times.lag_ms;
            row[4] = times.e2e_sum_ms;
            row[5] = times.e2e_count;
            for (size_t k = 0; k < n_steps; k++) {
                row[FIXED + 3 * k] = steps[k].in;
                row[FIXED + 1 + 3 * k] = steps[k].out;
                row[FIXED + 2 + 3 * k] = steps[k].dead;
            }
        }
        pthread_mutex_unlock(&h->mu);
    }
    pthread_mutex_lock(&h->mu);
    forget_unseen(h);
    pthread_mutex_unlock(&h->mu);
    json_decref(per);
    json_decref(per_times);
    json_decref(docs);
}

json_t *dm_history_get(dm_history_t *h, const char *name)
{
    json_t *out = NULL;
    pthread_mutex_lock(&h->mu);
    json_t *at = json_object_get(h->index, name);
    series_t *s = at ? h->s[json_integer_value(at)] : NULL;
    if (s) {
        json_t *samples = json_array();
        size_t w = width_of(s->n_steps);
        for (size_t k = 0; k < s->count; k++) {
            const int64_t *row = s->v + ((s->head + KEEP - s->count + k) % KEEP) * w;
            json_t *steps = json_array();
            for (size_t i = 0; i < s->n_steps; i++)
                json_array_append_new(steps, json_pack("{s:i, s:s, s:I, s:I, s:I}", "step",
                                                       s->steps[i].step, "processor",
                                                       s->steps[i].processor, "in",
                                                       (json_int_t)row[FIXED + 3 * i], "out",
                                                       (json_int_t)row[FIXED + 1 + 3 * i], "dead",
                                                       (json_int_t)row[FIXED + 2 + 3 * i]));
            json_array_append_new(
                samples,
                json_pack("{s:I, s:I, s:I, s:f, s:f, s:I, s:o}", "t", (json_int_t)row[0],
                          "consumed", (json_int_t)row[1], "lag", (json_int_t)row[2], "lag_seconds",
                          (double)row[3] / 1000, "e2e_sum_seconds", (double)row[4] / 1000,
                          "e2e_count", (json_int_t)row[5], "steps", steps));
        }
        out = json_pack("{s:s, s:I, s:i, s:o}", "pipeline", name, "interval_ms",
                        (json_int_t)h->interval_ms, "keep", KEEP, "samples", samples);
    }
    pthread_mutex_unlock(&h->mu);
    return out;
}

/* ---- kept in the store ----------------------------------------------------------- */

/* A series as JSON: {steps: [[step, processor], …], rows: "v,v,…;v,v,…"}
 * oldest first (rows as text: a full hour of 20,000 pipelines is tens of
 * millions of numbers, too many for a JSON value each). Lock held. */
static json_t *series_json(const series_t *s)
{
    json_t *steps = json_array();
    for (size_t i = 0; i < s->n_steps; i++)
        json_array_append_new(steps, json_pack("[i, s]", s->steps[i].step, s->steps[i].processor));
    size_t w = width_of(s->n_steps);
    dm_buf_t rows = DM_BUF_INIT;
    for (size_t k = 0; k < s->count; k++) {
        const int64_t *row = s->v + ((s->head + KEEP - s->count + k) % KEEP) * w;
        for (size_t i = 0; i < w; i++) {
            char num[24];
            int n =
                snprintf(num, sizeof(num), "%s%lld", i ? "," : (k ? ";" : ""), (long long)row[i]);
            dm_buf_append(&rows, num, (size_t)n);
        }
    }
    json_t *out = json_pack("{s:o, s:s%}", "steps", steps, "rows",
                            rows.data ? (char *)rows.data : "", rows.len);
    dm_buf_free(&rows);
    return out;
}

/* Writes every series to the store in one transaction, and drops the kept
 * ones of pipelines no longer sampled. Called by the history thread (and at
 * stop); errors are logged: the history is a convenience, not state. */
static void save(dm_history_t *h)
{
    dm_error_t err = {0};
    json_t *all = json_object();
    pthread_mutex_lock(&h->mu);
    for (size_t i = 0; i < h->n; i++)
        json_object_set_new(all, h->s[i]->name, series_json(h->s[i]));
    pthread_mutex_unlock(&h->mu);
    dm_err_t rc = dm_store_begin(h->store, &err);
    if (!rc) rc = dm_store_kv_delete(h->store, SPACE, NULL, &err);
    const char *name;
    json_t *v;
    json_object_foreach(all, name, v) if (!rc) rc = dm_store_kv_put(h->store, SPACE, name, v, &err);
    if (!rc)
        rc = dm_store_commit(h->store, &err);
    else
        dm_store_rollback(h->store);
    if (rc) DM_WARN("control", "history: not kept for a restart: %s", err.message);
    json_decref(all);
}

/* Reads the series kept by the last controller (before the thread starts). */
static void load(dm_history_t *h)
{
    json_t *all = NULL;
    dm_error_t err = {0};
    if (dm_store_kv_list(h->store, SPACE, &all, &err)) {
        DM_WARN("control", "history: the kept history cannot be read: %s", err.message);
        return;
    }
    const char *name;
    json_t *v;
    json_object_foreach(all, name, v)
    {
        const json_t *steps = json_object_get(v, "steps");
        const char *rows = json_string_value(json_object_get(v, "rows"));
        size_t n_steps = json_array_size(steps);
        if (n_steps > MAX_STEPS || !rows) continue;
        step_count_t layout[MAX_STEPS];
        memset(layout, 0, sizeof(layout));
        for (size_t i = 0; i < n_steps; i++) {
            const json_t *st = json_array_get(steps, i);
            layout[i].step = (int)json_integer_value(json_array_get(st, 0));
            snprintf(layout[i].processor, sizeof(layout[i].processor), "%s",
                     json_is_string(json_array_get(st, 1))
                         ? json_string_value(json_array_get(st, 1))
                         : "");
        }
        size_t w = width_of(n_steps);
        series_t *s = series_for(h, name, layout, n_steps);
        int64_t vals[FIXED + 3 * MAX_STEPS];
        for (const char *p = rows; s && *p;) { /* rows of w numbers: "v,v,…;v,v,…" */
            size_t n = 0;
            char *end = (char *)p;
            for (;;) {
                vals[n++] = strtoll(p, &end, 10);
                if (end == p) n = 0; /* not a number */
                if (!n || *end != ',' || n == w) break;
                p = end + 1;
            }
            if (n != w || (*end && *end != ';')) break; /* not of this layout: the rest goes */
            int64_t *r = next_row(s);
            if (r) memcpy(r, vals, w * sizeof(int64_t));
            p = *end ? end + 1 : end;
        }
    }
    json_decref(all);
}

/* ---- the thread ------------------------------------------------------------------ */

/* Runs on the history thread: a sample every interval until stopped. */
static void *run(void *arg)
{
    dm_history_t *h = arg;
    for (;;) {
        dm_history_sample(h);
        if (dm_wall_ms() - h->saved_ms >= SAVE_EVERY_MS) {
            save(h);
            h->saved_ms = dm_wall_ms();
        }
        pthread_mutex_lock(&h->mu);
        uint64_t until = dm_now_ns() + (uint64_t)h->interval_ms * 1000000ull;
        while (!h->stop && dm_now_ns() < until) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            uint64_t left = until - dm_now_ns();
            if (left > 200000000ull) left = 200000000ull; /* re-check the clock often */
            ts.tv_sec += (time_t)((uint64_t)ts.tv_nsec + left) / 1000000000;
            ts.tv_nsec = (long)(((uint64_t)ts.tv_nsec + left) % 1000000000);
            pthread_cond_timedwait(&h->cv, &h->mu, &ts);
        }
        bool stop = h->stop;
        pthread_mutex_unlock(&h->mu);
        if (stop) return NULL;
    }
}

dm_history_t *dm_history_start(dm_store_t *store, dm_runtime_t *rt, dm_metrics_t *metrics,
                               dm_error_t *err)
{
    dm_history_t *h = calloc(1, sizeof(*h));
    if (!h || !(h->index = json_object())) {
        free(h);
        dm_error_set(err, DM_ERR_NOMEM, "history: out of memory");
        return NULL;
    }
    h->store = store;
    h->rt = rt;
    h->metrics = metrics;
    const char *iv = getenv("DATAMESH_HISTORY_INTERVAL_MS");
    h->interval_ms = iv ? strtoll(iv, NULL, 10) : 30000;
    if (h->interval_ms < 100 || h->interval_ms > 3600000) h->interval_ms = 30000;
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    load(h); /* what the last controller kept: charts go on across a restart */
    h->saved_ms = dm_wall_ms();
    if (pthread_create(&h->th, NULL, run, h)) {
        dm_error_set(err, DM_ERR_INTERNAL, "history: cannot start its thread");
        dm_history_stop(h);
        return NULL;
    }
    h->running = true;
    return h;
}

void dm_history_stop(dm_history_t *h)
{
    if (!h) return;
    if (h->running) {
        pthread_mutex_lock(&h->mu);
        h->stop = true;
        pthread_cond_signal(&h->cv);
        pthread_mutex_unlock(&h->mu);
        pthread_join(h->th, NULL);
        save(h);
    }
    for (size_t i = 0; i < h->n; i++) {
        free(h->s[i]->v);
        free(h->s[i]->name);
        free(h->s[i]);
    }
    free(h->s);
    json_decref(h->index);
    pthread_cond_destroy(&h->cv);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

/* ---- the endpoint ----------------------------------------------------------------- */

static void on_history(void *ctx, const dm_http_request_t *req, dm_http_response_t *res)
{
    dm_history_t *h = ctx;
    const char *name = dm_http_param(req, "name");
    json_t *j = dm_history_get(h, name);
    if (!j) {
        dm_http_error(res, 404, 40403,
                      "no history of pipeline '%s' yet (it is sampled every %lld ms; a new "
                      "pipeline shows after the next sample)",
                      name, (long long)h->interval_ms);
        return;
    }
    dm_http_json(res, 200, j);
}

dm_err_t dm_history_register(dm_http_server_t *http, dm_history_t *h)
{
    return dm_http_route(http, "GET", "/api/v1/pipelines/{name}/history", on_history, h);
}
