/* engine/pool.c — worker threads, a run queue, timers and transport wake-ups. */
#include "engine/pool.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"

#define POLL_MS 20 /* waiting on a transport without watches */

typedef enum { J_QUEUED, J_RUNNING, J_IDLE, J_DONE } job_state_t;

struct dm_job {
    uint64_t id;
    char *name;
    dm_job_step_fn step;
    void *ctx;
    job_state_t state;
    bool rerun;            /* woken while running: run again right after */
    bool removing;         /* dm_pool_remove is waiting for the step to return */
    uint64_t timer;        /* generation of its live timer entry (0: none) */
    dm_job_wait_t watched; /* the inputs it has watches on */
    dm_job_t *prev, *next; /* run queue */
    dm_job_t *hnext;       /* id hash chain */
};

typedef struct timer {
    uint64_t due_ns;
    uint64_t gen;
    uint64_t job; /* by id: a removed job's entries just find nothing */
} timer_t_;

struct dm_pool {
    dm_transport_t *t;
    pthread_mutex_t mu;
    pthread_cond_t work; /* a job is queued or a timer is due sooner */
    pthread_cond_t idle; /* a step returned (for dm_pool_remove) */
    pthread_t *threads;
    int n_threads;
    bool stop;
    dm_job_t *head, *tail; /* run queue */
    dm_job_t **buckets;    /* jobs by id */
    size_t n_buckets, n_jobs;
    uint64_t next_id, next_gen;
    timer_t_ *heap; /* timers, earliest first */
    size_t n_heap, cap_heap;
};

/* ---- run queue and id table (lock held) ----------------------------------------- */

static void enqueue(dm_pool_t *p, dm_job_t *j)
{
    j->state = J_QUEUED;
    j->timer = 0;
    j->next = NULL;
    j->prev = p->tail;
    if (p->tail)
        p->tail->next = j;
    else
        p->head = j;
    p->tail = j;
    pthread_cond_signal(&p->work);
}

static void unqueue(dm_pool_t *p, dm_job_t *j)
{
    if (j->prev)
        j->prev->next = j->next;
    else
        p->head = j->next;
    if (j->next)
        j->next->prev = j->prev;
    else
        p->tail = j->prev;
    j->prev = j->next = NULL;
}

static dm_job_t *find_job(dm_pool_t *p, uint64_t id)
{
    for (dm_job_t *j = p->buckets[id & (p->n_buckets - 1)]; j; j = j->hnext)
        if (j->id == id) return j;
    return NULL;
}

static bool table_grow(dm_pool_t *p)
{
    size_t n = p->n_buckets ? p->n_buckets * 2 : 1024;
    dm_job_t **b = calloc(n, sizeof(*b));
    if (!b) return false;
    for (size_t i = 0; i < p->n_buckets; i++)
        for (dm_job_t *j = p->buckets[i], *next; j; j = next) {
            next = j->hnext;
            j->hnext = b[j->id & (n - 1)];
            b[j->id & (n - 1)] = j;
        }
    free(p->buckets);
    p->buckets = b;
    p->n_buckets = n;
    return true;
}

static void table_del(dm_pool_t *p, dm_job_t *j)
{
    for (dm_job_t **pp = &p->buckets[j->id & (p->n_buckets - 1)]; *pp; pp = &(*pp)->hnext)
        if (*pp == j) {
            *pp = j->hnext;
            return;
        }
}

/* ---- timers: a binary heap with lazy deletion (an entry whose gen is not its
 * job's current timer is stale and skipped) ---------------------------------------- */

static void heap_swap(dm_pool_t *p, size_t a, size_t b)
{
    timer_t_ x = p->heap[a];
    p->heap[a] = p->heap[b];
    p->heap[b] = x;
}

static void heap_push(dm_pool_t *p, dm_job_t *j, uint64_t due_ns)
{
    if (p->n_heap == p->cap_heap) {
        size_t cap = p->cap_heap ? p->cap_heap * 2 : 1024;
        timer_t_ *h = realloc(p->heap, cap * sizeof(*h));
        if (!h) { /* no timer: run it now rather than never */
            enqueue(p, j);
            return;
        }
        p->heap = h;
        p->cap_heap = cap;
    }
    j->timer = ++p->next_gen;
    size_t i = p->n_heap++;
    p->heap[i] = (timer_t_){due_ns, j->timer, j->id};
    while (i && p->heap[(i - 1) / 2].due_ns > p->heap[i].due_ns) {
        heap_swap(p, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
    if (i == 0) pthread_cond_signal(&p->work); /* a worker may sleep past it */
}

static void heap_pop(dm_pool_t *p)
{
    p->heap[0] = p->heap[--p->n_heap];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < p->n_heap && p->heap[l].due_ns < p->heap[m].due_ns) m = l;
        if (r < p->n_heap && p->heap[r].due_ns < p->heap[m].due_ns) m = r;
        if (m == i) break;
        heap_swap(p, i, m);
        i = m;
    }
}

/* The job of a timer entry that is still meant, or NULL. */
static dm_job_t *timer_job(dm_pool_t *p, const timer_t_ *t)
{
    dm_job_t *j = find_job(p, t->job);
    return j && j->timer == t->gen && j->state == J_IDLE ? j : NULL;
}

/* Queues the jobs whose timers are due; returns ns until the next one (or -1). */
static int64_t run_timers(dm_pool_t *p)
{
    uint64_t now = dm_now_ns();
    while (p->n_heap) {
        timer_t_ top = p->heap[0];
        dm_job_t *j = timer_job(p, &top);
        if (!j) {
            heap_pop(p);
            continue;
        }
        if (top.due_ns > now) return (int64_t)(top.due_ns - now);
        heap_pop(p);
        enqueue(p, j);
    }
    return -1;
}

/* ---- wake-ups ------------------------------------------------------------------------ */

static void wake_id(void *ctx, uint64_t id)
{
    dm_pool_t *p = ctx;
    pthread_mutex_lock(&p->mu);
    dm_job_t *j = find_job(p, id);
    if (j && j->state == J_IDLE)
        enqueue(p, j);
    else if (j && j->state == J_RUNNING)
        j->rerun = true;
    pthread_mutex_unlock(&p->mu);
}

void dm_pool_wake(dm_pool_t *pool, dm_job_t *job)
{
    wake_id(pool, job->id);
}

static void unwatch_all(dm_pool_t *p, dm_job_t *j)
{
    for (size_t i = 0; i < j->watched.n_inputs; i++)
        dm_transport_unwatch(p->t, j->watched.inputs[i].topic, j->watched.inputs[i].partition,
                             wake_id, p, j->id);
    j->watched.n_inputs = 0;
}

/* Registers watches on the inputs the step named. True when one already has
 * records (run again now). Lock not held. */
static bool watch_inputs(dm_pool_t *p, dm_job_t *j, const dm_job_wait_t *w, bool *polling)
{
    bool ready = false;
    *polling = false;
    for (size_t i = 0; i < w->n_inputs && !ready; i++) {
        dm_error_t err = {0};
        const dm_tp_offset_t *in = &w->inputs[i];
        if (dm_transport_watch(p->t, in->topic, in->partition, in->offset, wake_id, p, j->id,
                               &ready, &err)) {
            *polling = true; /* no watches here (or the topic is gone): poll */
            break;
        }
        j->watched.inputs[j->watched.n_inputs++] = *in;
    }
    return ready;
}

/* ---- workers ------------------------------------------------------------------------- */

/* After a step: queue, sleep or wait as it asked. Lock held on entry and exit. */
static void after_step(dm_pool_t *p, dm_job_t *j, dm_job_next_t next, dm_job_wait_t *w)
{
    if (j->removing) {
        j->state = J_IDLE;
        pthread_cond_broadcast(&p->idle);
        return;
    }
    if (next == DM_JOB_AGAIN || (j->rerun && next != DM_JOB_DONE)) {
        j->rerun = false;
        enqueue(p, j);
        return;
    }
    if (next == DM_JOB_DONE) {
        j->state = J_DONE;
        return;
    }
    int64_t ms = w->sleep_ms;
    if (next == DM_JOB_WAIT) {
        /* Watches go in without the lock: a wake-up that comes meanwhile finds
         * the job running and sets rerun. */
        pthread_mutex_unlock(&p->mu);
        bool polling;
        bool ready = watch_inputs(p, j, w, &polling);
        pthread_mutex_lock(&p->mu);
        if (j->removing) {
            j->state = J_IDLE;
            pthread_cond_broadcast(&p->idle);
            return;
        }
        if (ready || j->rerun) {
            j->rerun = false;
            enqueue(p, j);
            return;
        }
        if (polling && (ms <= 0 || ms > POLL_MS)) ms = POLL_MS;
    }
    j->state = J_IDLE;
    if (ms > 0) heap_push(p, j, dm_now_ns() + (uint64_t)ms * 1000000u);
}

static void *worker_main(void *arg)
{
    dm_pool_t *p = arg;
    pthread_mutex_lock(&p->mu);
    while (!p->stop) {
        int64_t wait_ns = run_timers(p);
        dm_job_t *j = p->head;
        if (!j) {
            if (wait_ns < 0) {
                pthread_cond_wait(&p->work, &p->mu);
            } else {
                struct timespec dl;
                clock_gettime(CLOCK_MONOTONIC, &dl);
                dl.tv_sec += wait_ns / 1000000000;
                dl.tv_nsec += wait_ns % 1000000000;
                if (dl.tv_nsec >= 1000000000) {
                    dl.tv_sec++;
                    dl.tv_nsec -= 1000000000;
                }
                pthread_cond_timedwait(&p->work, &p->mu, &dl);
            }
            continue;
        }
        unqueue(p, j);
        j->state = J_RUNNING;
        j->rerun = false;
        pthread_mutex_unlock(&p->mu);
        unwatch_all(p, j);
        dm_job_wait_t w = {0};
        dm_job_next_t next = j->step(j->ctx, &w);
        pthread_mutex_lock(&p->mu);
        after_step(p, j, next, &w);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* ---- public ---------------------------------------------------------------------------- */

dm_err_t dm_pool_new(dm_transport_t *t, int n_threads, dm_pool_t **out, dm_error_t *err)
{
    *out = NULL;
    if (n_threads <= 0) n_threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (n_threads <= 0) n_threads = 1;
    dm_pool_t *p = calloc(1, sizeof(*p));
    if (!p || !(p->threads = calloc((size_t)n_threads, sizeof(pthread_t))) || !table_grow(p)) {
        if (p) free(p->threads);
        free(p);
        return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    }
    p->t = t;
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->work, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&p->idle, NULL);
    for (int i = 0; i < n_threads; i++) {
        if (pthread_create(&p->threads[i], NULL, worker_main, p) != 0) break;
        char tn[16];
        snprintf(tn, sizeof(tn), "dm-worker-%u", (unsigned)i);
        pthread_setname_np(p->threads[i], tn);
        p->n_threads++;
    }
    if (!p->n_threads) {
        dm_pool_free(p);
        return dm_error_set(err, DM_ERR_ENGINE, "cannot start worker threads");
    }
    *out = p;
    return DM_OK;
}

dm_job_t *dm_pool_add(dm_pool_t *pool, const char *name, dm_job_step_fn step, void *ctx)
{
    dm_job_t *j = calloc(1, sizeof(*j));
    if (!j || !(j->name = strdup(name))) {
        free(j);
        return NULL;
    }
    j->step = step;
    j->ctx = ctx;
    pthread_mutex_lock(&pool->mu);
    if (pool->n_jobs + 1 > pool->n_buckets && !table_grow(pool)) {
        pthread_mutex_unlock(&pool->mu);
        free(j->name);
        free(j);
        return NULL;
    }
    j->id = ++pool->next_id;
    j->hnext = pool->buckets[j->id & (pool->n_buckets - 1)];
    pool->buckets[j->id & (pool->n_buckets - 1)] = j;
    pool->n_jobs++;
    enqueue(pool, j);
    pthread_mutex_unlock(&pool->mu);
    return j;
}

void dm_pool_remove(dm_pool_t *pool, dm_job_t *job)
{
    if (!job) return;
    pthread_mutex_lock(&pool->mu);
    job->removing = true;
    while (job->state == J_RUNNING)
        pthread_cond_wait(&pool->idle, &pool->mu);
    if (job->state == J_QUEUED) unqueue(pool, job);
    job->timer = 0; /* its heap entry, if any, is stale now */
    job->state = J_DONE;
    table_del(pool, job);
    pool->n_jobs--;
    pthread_mutex_unlock(&pool->mu);
    unwatch_all(pool, job); /* a wake-up in flight finds no job by its id */
    free(job->name);
    free(job);
}

size_t dm_pool_jobs(dm_pool_t *pool)
{
    pthread_mutex_lock(&pool->mu);
    size_t n = pool->n_jobs;
    pthread_mutex_unlock(&pool->mu);
    return n;
}

int dm_pool_threads(const dm_pool_t *pool)
{
    return pool->n_threads;
}

void dm_pool_free(dm_pool_t *pool)
{
    if (!pool) return;
    pthread_mutex_lock(&pool->mu);
    pool->stop = true;
    pthread_cond_broadcast(&pool->work);
    pthread_mutex_unlock(&pool->mu);
    for (int i = 0; i < pool->n_threads; i++)
        pthread_join(pool->threads[i], NULL);
    if (pool->n_jobs) DM_WARN("engine", "worker pool freed with %zu jobs", pool->n_jobs);
    pthread_mutex_destroy(&pool->mu);
    pthread_cond_destroy(&pool->work);
    pthread_cond_destroy(&pool->idle);
    free(pool->threads);
    free(pool->buckets);
    free(pool->heap);
    free(pool);
}
