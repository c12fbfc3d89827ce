/* core/metrics.c — metric registry and Prometheus text rendering. */
#include "core/metrics.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct dm_metrics {
    pthread_mutex_t mu;
    dm_metric_t *head; /* newest first; rendering groups by name */
};

dm_metrics_t *dm_metrics_new(void)
{
    dm_metrics_t *m = calloc(1, sizeof(*m));
    if (m) pthread_mutex_init(&m->mu, NULL);
    return m;
}

static void metric_free(dm_metric_t *x)
{
    free(x->name);
    free(x->help);
    free(x->labels);
    free(x);
}

void dm_metrics_free(dm_metrics_t *m)
{
    if (!m) return;
    for (dm_metric_t *x = m->head, *next; x; x = next) {
        next = x->next;
        metric_free(x);
    }
    pthread_mutex_destroy(&m->mu);
    free(m);
}

static dm_metric_t *get(dm_metrics_t *m, dm_metric_kind_t kind, const char *name, const char *help,
                        const char *labels)
{
    if (!labels) labels = "";
    pthread_mutex_lock(&m->mu);
    dm_metric_t *found = NULL;
    bool clash = false;
    for (dm_metric_t *x = m->head; x; x = x->next) {
        if (strcmp(x->name, name) != 0) continue;
        if (x->kind != kind) clash = true;
        if (!strcmp(x->labels, labels)) found = x;
    }
    if (!found && !clash) {
        dm_metric_t *x = calloc(1, sizeof(*x));
        if (x) {
            x->kind = kind;
            x->name = strdup(name);
            x->help = strdup(help ? help : "");
            x->labels = strdup(labels);
            x->scale = 1;
            if (!x->name || !x->help || !x->labels) {
                metric_free(x);
                x = NULL;
            } else {
                x->next = m->head;
                m->head = x;
                found = x;
            }
        }
    }
    pthread_mutex_unlock(&m->mu);
    return clash ? NULL : found;
}

dm_metric_t *dm_metrics_counter(dm_metrics_t *m, const char *name, const char *help,
                                const char *labels)
{
    return get(m, DM_METRIC_COUNTER, name, help, labels);
}

dm_metric_t *dm_metrics_gauge(dm_metrics_t *m, const char *name, const char *help,
                              const char *labels)
{
    return get(m, DM_METRIC_GAUGE, name, help, labels);
}

dm_metric_t *dm_metrics_histogram(dm_metrics_t *m, const char *name, const char *help,
                                  const char *labels, const double *bounds, size_t n_bounds,
                                  double scale)
{
    if (n_bounds > DM_HIST_BUCKETS) return NULL;
    dm_metric_t *h = get(m, DM_METRIC_HISTOGRAM, name, help, labels);
    if (h) {
        h->bounds = bounds;
        h->n_bounds = n_bounds;
        h->scale = scale > 0 ? scale : 1;
    }
    return h;
}

void dm_metric_observe(dm_metric_t *h, uint64_t v)
{
    double x = (double)v / h->scale;
    for (size_t i = 0; i < h->n_bounds; i++)
        if (x <= h->bounds[i]) {
            atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
            break;
        }
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum, v, memory_order_relaxed);
}

void dm_metrics_remove_matching(dm_metrics_t *m, const char *match)
{
    pthread_mutex_lock(&m->mu);
    dm_metric_t **pp = &m->head;
    while (*pp) {
        dm_metric_t *x = *pp;
        if (strstr(x->labels, match)) {
            *pp = x->next;
            metric_free(x);
        } else {
            pp = &x->next;
        }
    }
    pthread_mutex_unlock(&m->mu);
}

void dm_metrics_escape(const char *v, char *out, size_t cap)
{
    size_t o = 0;
    for (; *v && o + 3 < cap; v++) {
        if (*v == '\\' || *v == '"') {
            out[o++] = '\\';
            out[o++] = *v;
        } else if (*v == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else {
            out[o++] = *v;
        }
    }
    out[o] = '\0';
}

static dm_err_t render_one(const dm_metric_t *x, dm_buf_t *out)
{
    const char *l = x->labels;
    bool has = l[0] != '\0';
    switch (x->kind) {
    case DM_METRIC_COUNTER:
        return dm_buf_printf(out, "%s%s%s%s %llu\n", x->name, has ? "{" : "", l, has ? "}" : "",
                             (unsigned long long)atomic_load(&x->count));
    case DM_METRIC_GAUGE:
        return dm_buf_printf(out, "%s%s%s%s %lld\n", x->name, has ? "{" : "", l, has ? "}" : "",
                             (long long)atomic_load(&x->gauge));
    case DM_METRIC_HISTOGRAM: {
        uint64_t cum = 0;
        dm_err_t rc = DM_OK;
        for (size_t i = 0; i < x->n_bounds && !rc; i++) {
            cum += atomic_load(&x->buckets[i]);
            rc = dm_buf_printf(out, "%s_bucket{%s%sle=\"%g\"} %llu\n", x->name, l, has ? "," : "",
                               x->bounds[i], (unsigned long long)cum);
        }
        uint64_t count = atomic_load(&x->count);
        if (!rc)
            rc = dm_buf_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", x->name, l, has ? "," : "",
                               (unsigned long long)count);
        if (!rc)
            rc = dm_buf_printf(out, "%s_sum%s%s%s %.9g\n%s_count%s%s%s %llu\n", x->name,
                               has ? "{" : "", l, has ? "}" : "",
                               (double)atomic_load(&x->sum) / x->scale, x->name, has ? "{" : "", l,
                               has ? "}" : "", (unsigned long long)count);
        return rc;
    }
    }
    return DM_OK;
}

dm_err_t dm_metrics_render(dm_metrics_t *m, dm_buf_t *out)
{
    static const char *const kinds[] = {"counter", "gauge", "histogram"};
    pthread_mutex_lock(&m->mu);
    dm_err_t rc = DM_OK;
    /* One HELP/TYPE block per name, all its label sets under it. */
    for (dm_metric_t *x = m->head; x && !rc; x = x->next) {
        bool first = true;
        for (dm_metric_t *y = m->head; y != x; y = y->next)
            if (!strcmp(y->name, x->name)) first = false;
        if (!first) continue;
        rc = dm_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", x->name, x->help, x->name,
                           kinds[x->kind]);
        for (dm_metric_t *y = x; y && !rc; y = y->next)
            if (!strcmp(y->name, x->name)) rc = render_one(y, out);
    }
    pthread_mutex_unlock(&m->mu);
    return rc;
}
