/* core/metrics.c — metric registry and Prometheus text rendering. */
#include "core/metrics.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"

/* Series are found by (name, labels) in a hash, so registering the metrics of
 * tens of thousands of tasks stays linear; a family (one name) keeps its kind
 * in a second hash, to refuse one name with two kinds. */
typedef struct family {
    char *name; /* shared by its series, as is help: families live as long as the registry */
    char *help;
    dm_metric_kind_t kind;
    struct family *hnext;
} family_t;

struct dm_metrics {
    pthread_mutex_t mu;
    dm_metric_t *head; /* newest first; rendering groups by name */
    dm_metric_t **buckets;
    family_t **fbuckets;
    size_t n_buckets, n; /* n_buckets: a power of two, for both tables */
    uint64_t created;    /* series ever made: gives each its age */
};

static uint64_t str_hash(const char *s, uint64_t h)
{
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static size_t series_slot(const dm_metrics_t *m, const char *name, const char *labels)
{
    return str_hash(labels, str_hash(name, 14695981039346656037ull) * 31) & (m->n_buckets - 1);
}

static size_t family_slot(const dm_metrics_t *m, const char *name)
{
    return str_hash(name, 14695981039346656037ull) & (m->n_buckets - 1);
}

/* Rebuilds the series hash at n_buckets (families move too). False: no memory. */
static bool rehash(dm_metrics_t *m, size_t n_buckets)
{
    dm_metric_t **b = calloc(n_buckets, sizeof(*b));
    family_t **fb = calloc(n_buckets, sizeof(*fb));
    if (!b || !fb) {
        free(b);
        free(fb);
        return false;
    }
    size_t old = m->n_buckets;
    family_t **ofb = m->fbuckets;
    free(m->buckets);
    m->buckets = b;
    m->fbuckets = fb;
    m->n_buckets = n_buckets;
    for (dm_metric_t *x = m->head; x; x = x->next) {
        size_t i = series_slot(m, x->name, x->labels);
        x->hnext = b[i];
        b[i] = x;
    }
    for (size_t i = 0; i < old; i++)
        for (family_t *f = ofb[i], *next; f; f = next) {
            next = f->hnext;
            size_t k = family_slot(m, f->name);
            f->hnext = fb[k];
            fb[k] = f;
        }
    free(ofb);
    return true;
}

static family_t *family_of(dm_metrics_t *m, const char *name)
{
    for (family_t *f = m->fbuckets[family_slot(m, name)]; f; f = f->hnext)
        if (!strcmp(f->name, name)) return f;
    return NULL;
}

dm_metrics_t *dm_metrics_new(void)
{
    dm_metrics_t *m = calloc(1, sizeof(*m));
    if (!m) return NULL;
    if (!rehash(m, 256)) {
        free(m);
        return NULL;
    }
    pthread_mutex_init(&m->mu, NULL);
    return m;
}

static void metric_free(dm_metric_t *x)
{
    free(x->labels); /* name and help are the family's */
    free(x);
}

void dm_metrics_free(dm_metrics_t *m)
{
    if (!m) return;
    for (dm_metric_t *x = m->head, *next; x; x = next) {
        next = x->next;
        metric_free(x);
    }
    for (size_t i = 0; i < m->n_buckets; i++)
        for (family_t *f = m->fbuckets[i], *next; f; f = next) {
            next = f->hnext;
            free(f->name);
            free(f->help);
            free(f);
        }
    free(m->buckets);
    free(m->fbuckets);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

static dm_metric_t *get(dm_metrics_t *m, dm_metric_kind_t kind, const char *name, const char *help,
                        const char *labels)
{
    if (!labels) labels = "";
    pthread_mutex_lock(&m->mu);
    dm_metric_t *found = NULL;
    family_t *fam = family_of(m, name);
    bool clash = fam && fam->kind != kind;
    for (dm_metric_t *x = m->buckets[series_slot(m, name, labels)]; x && !clash; x = x->hnext)
        if (!strcmp(x->name, name) && !strcmp(x->labels, labels)) found = x;
    if (!fam && !clash) {
        fam = calloc(1, sizeof(*fam));
        if (fam && (!(fam->name = strdup(name)) || !(fam->help = strdup(help ? help : "")))) {
            free(fam->name);
            free(fam);
            fam = NULL;
        }
        if (fam) {
            fam->kind = kind;
            size_t k = family_slot(m, name);
            fam->hnext = m->fbuckets[k];
            m->fbuckets[k] = fam;
        }
    }
    if (!found && !clash && fam) {
        dm_metric_t *x = calloc(1, sizeof(*x));
        if (x) {
            x->kind = kind;
            x->name = fam->name;
            x->help = fam->help;
            x->labels = strdup(labels);
            x->scale = 1;
            x->age = ++m->created;
            if (!x->labels) {
                metric_free(x);
                x = NULL;
            } else {
                x->next = m->head;
                m->head = x;
                size_t i = series_slot(m, name, labels);
                x->hnext = m->buckets[i];
                m->buckets[i] = x;
                found = x;
                if (++m->n > m->n_buckets) rehash(m, m->n_buckets * 2);
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

dm_metric_t *dm_metrics_time_gauge(dm_metrics_t *m, const char *name, const char *help,
                                   const char *labels, dm_gauge_form_t form)
{
    dm_metric_t *g = get(m, DM_METRIC_GAUGE, name, help, labels);
    if (g) g->form = form;
    return g;
}

double dm_metric_gauge_value(const dm_metric_t *g, int64_t now_ms)
{
    int64_t v = atomic_load_explicit(&g->gauge, memory_order_relaxed);
    switch (g->form) {
    case DM_GAUGE_TIME_MS: return (double)v / 1e3;
    case DM_GAUGE_AGE_MS: return v > 0 && now_ms > v ? (double)(now_ms - v) / 1e3 : 0.0;
    default: return (double)v;
    }
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

void dm_metric_local_observe(const dm_metric_t *h, dm_metric_local_t *l, uint64_t v)
{
    double x = (double)v / h->scale;
    for (size_t i = 0; i < h->n_bounds; i++)
        if (x <= h->bounds[i]) {
            l->buckets[i]++;
            break;
        }
    l->count++;
    l->sum += v;
}

void dm_metric_observe_local(dm_metric_t *h, const dm_metric_local_t *l)
{
    if (!l->count) return;
    for (size_t i = 0; i < h->n_bounds; i++)
        if (l->buckets[i])
            atomic_fetch_add_explicit(&h->buckets[i], l->buckets[i], memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, l->count, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum, l->sum, memory_order_relaxed);
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
            m->n--;
        } else {
            pp = &x->next;
        }
    }
    rehash(m, m->n_buckets); /* drop the freed series from the chains */
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

static dm_err_t render_one(const dm_metric_t *x, int64_t now_ms, dm_buf_t *out)
{
    const char *l = x->labels;
    bool has = l[0] != '\0';
    switch (x->kind) {
    case DM_METRIC_COUNTER:
        return dm_buf_printf(out, "%s%s%s%s %llu\n", x->name, has ? "{" : "", l, has ? "}" : "",
                             (unsigned long long)atomic_load(&x->count));
    case DM_METRIC_GAUGE:
        if (x->form != DM_GAUGE_PLAIN)
            return dm_buf_printf(out, "%s%s%s%s %.3f\n", x->name, has ? "{" : "", l, has ? "}" : "",
                                 dm_metric_gauge_value(x, now_ms));
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

/* Orders series by name, newest first within a name. */
static int by_name_then_age(const void *a, const void *b)
{
    const dm_metric_t *x = *(const dm_metric_t *const *)a, *y = *(const dm_metric_t *const *)b;
    int c = strcmp(x->name, y->name);
    if (c) return c;
    return x->age < y->age ? 1 : x->age > y->age ? -1 : 0;
}

void dm_metrics_each(dm_metrics_t *m, void (*fn)(void *ctx, const dm_metric_t *x), void *ctx)
{
    pthread_mutex_lock(&m->mu);
    for (dm_metric_t *x = m->head; x; x = x->next)
        fn(ctx, x);
    pthread_mutex_unlock(&m->mu);
}

dm_err_t dm_metrics_render(dm_metrics_t *m, dm_buf_t *out)
{
    static const char *const kinds[] = {"counter", "gauge", "histogram"};
    pthread_mutex_lock(&m->mu);
    dm_err_t rc = DM_OK;
    /* One HELP/TYPE block per name, all its label sets under it: the series
     * sorted by name (stable, so newest first within a name). */
    dm_metric_t **all = malloc((m->n ? m->n : 1) * sizeof(*all));
    int64_t now_ms = dm_wall_ms();
    size_t n = 0;
    if (!all) rc = DM_ERR_NOMEM;
    for (dm_metric_t *x = m->head; x && all; x = x->next)
        all[n++] = x;
    if (all) qsort(all, n, sizeof(*all), by_name_then_age);
    for (size_t i = 0; i < n && !rc; i++) {
        dm_metric_t *x = all[i];
        if (!i || strcmp(all[i - 1]->name, x->name))
            rc = dm_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", x->name, x->help, x->name,
                               kinds[x->kind]);
        if (!rc) rc = render_one(x, now_ms, out);
    }
    free(all);
    pthread_mutex_unlock(&m->mu);
    return rc;
}
