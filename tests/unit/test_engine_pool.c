/* Unit tests for engine/pool: many waiting jobs cost no CPU and all wake on a
 * commit to their input; sleeping jobs run on time; removing a running job
 * waits for its step; jobs that always have work share the threads. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include "check.h"
#include "core/clock.h"
#include "engine/pool.h"

#define N_WAITERS 2000

typedef struct waiter {
    atomic_int runs;
    int64_t offset; /* next record it wants */
    int32_t partition;
    dm_transport_t *t;
} waiter_t;

static dm_transport_t *open_log(char *dir)
{
    REQUIRE(mkdtemp(dir));
    char url[300];
    snprintf(url, sizeof(url), "embedded:%s", dir);
    dm_transport_t *t = NULL;
    dm_error_t err = {0};
    REQUIRE(dm_transport_open(url, &t, &err) == DM_OK);
    REQUIRE(dm_transport_create_topic(t, &(dm_topic_config_t){.name = "in", .partitions = 4},
                                      &err) == DM_OK);
    return t;
}

static void close_log(dm_transport_t *t, const char *dir)
{
    dm_transport_close(t);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
}

static void produce_one(dm_transport_t *t, int32_t partition)
{
    dm_record_t r = {.key_len = -1, .value = (const uint8_t *)"x", .value_len = 1};
    dm_error_t err = {0};
    CHECK(dm_transport_produce(t, "in", partition, &r, 1, NULL, &err) == DM_OK);
}

static dm_job_next_t wait_step(void *ctx, dm_job_wait_t *w)
{
    waiter_t *wt = ctx;
    atomic_fetch_add(&wt->runs, 1);
    /* "Reads" everything there is, then waits for what comes next. */
    dm_transport_offsets(wt->t, "in", wt->partition, NULL, &wt->offset, NULL);
    w->inputs[0] = (dm_tp_offset_t){"in", wt->partition, wt->offset};
    w->n_inputs = 1;
    return DM_JOB_WAIT;
}

static double cpu_ms(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

static bool wait_runs(waiter_t *w, size_t n, int want, int ms)
{
    for (int i = 0; i < ms; i++) {
        size_t ok = 0;
        for (size_t k = 0; k < n; k++)
            ok += atomic_load(&w[k].runs) >= want;
        if (ok == n) return true;
        usleep(1000);
    }
    return false;
}

static void test_waiting_jobs_idle_then_wake(void)
{
    char dir[] = "/tmp/dm-pool-XXXXXX";
    dm_transport_t *t = open_log(dir);
    dm_pool_t *pool;
    REQUIRE(dm_pool_new(t, 2, &pool, NULL) == DM_OK);
    waiter_t *w = calloc(N_WAITERS, sizeof(*w));
    dm_job_t **jobs = calloc(N_WAITERS, sizeof(*jobs));
    for (int i = 0; i < N_WAITERS; i++) {
        w[i].partition = i % 4;
        w[i].t = t;
        jobs[i] = dm_pool_add(pool, "waiter", wait_step, &w[i]);
        REQUIRE(jobs[i]);
    }
    CHECK_EQ_INT(dm_pool_jobs(pool), N_WAITERS);
    CHECK(wait_runs(w, N_WAITERS, 1, 5000)); /* each ran once and now waits */
    double before = cpu_ms();
    usleep(300 * 1000);
    double idle = cpu_ms() - before;
    CHECK(idle < 30.0); /* 2000 idle jobs: no polling */
    int ran = 0;
    for (int i = 0; i < N_WAITERS; i++)
        ran += atomic_load(&w[i].runs);
    CHECK_EQ_INT(ran, N_WAITERS);
    /* A commit to partition 1 wakes exactly the jobs waiting on it, promptly. */
    uint64_t t0 = dm_now_ns();
    produce_one(t, 1);
    waiter_t *p1 = calloc(N_WAITERS / 4, sizeof(*p1));
    bool woke = false;
    while (!woke && dm_now_ns() - t0 < 5000000000ull) {
        woke = true;
        for (int i = 1; i < N_WAITERS; i += 4)
            woke &= atomic_load(&w[i].runs) == 2;
        if (!woke) usleep(200);
    }
    CHECK(woke);
    CHECK(dm_now_ns() - t0 < 1000000000ull);
    usleep(20 * 1000);
    ran = 0;
    for (int i = 0; i < N_WAITERS; i++)
        ran += atomic_load(&w[i].runs);
    CHECK_EQ_INT(ran, N_WAITERS + N_WAITERS / 4);
    free(p1);
    for (int i = 0; i < N_WAITERS; i++)
        dm_pool_remove(pool, jobs[i]);
    CHECK_EQ_INT(dm_pool_jobs(pool), 0);
    produce_one(t, 2); /* wakes nothing: the jobs and their watches are gone */
    dm_pool_free(pool);
    free(w);
    free(jobs);
    close_log(t, dir);
}

typedef struct sleeper {
    atomic_int runs;
    int sleep_ms;
    int work_ms;
} sleeper_t;

static dm_job_next_t sleep_step(void *ctx, dm_job_wait_t *w)
{
    sleeper_t *s = ctx;
    atomic_fetch_add(&s->runs, 1);
    if (s->work_ms) usleep((useconds_t)s->work_ms * 1000);
    w->sleep_ms = s->sleep_ms;
    return s->sleep_ms ? DM_JOB_SLEEP : DM_JOB_AGAIN;
}

static void test_sleep_again_and_remove(void)
{
    char dir[] = "/tmp/dm-pool-XXXXXX";
    dm_transport_t *t = open_log(dir);
    dm_pool_t *pool;
    REQUIRE(dm_pool_new(t, 2, &pool, NULL) == DM_OK);
    sleeper_t slow = {.sleep_ms = 50}, busy[3] = {{0}, {0}, {0}}, long_step = {.work_ms = 100};
    dm_job_t *js = dm_pool_add(pool, "sleeper", sleep_step, &slow);
    dm_job_t *jb[3];
    for (int i = 0; i < 3; i++)
        jb[i] = dm_pool_add(pool, "busy", sleep_step, &busy[i]);
    usleep(500 * 1000);
    int r = atomic_load(&slow.runs);
    CHECK(r >= 5 && r <= 12); /* every ~50 ms, even beside three busy jobs */
    for (int i = 0; i < 3; i++)
        CHECK(atomic_load(&busy[i].runs) > 100); /* all progress */
    for (int i = 0; i < 3; i++)
        dm_pool_remove(pool, jb[i]);
    dm_job_t *jl = dm_pool_add(pool, "long", sleep_step, &long_step);
    while (atomic_load(&long_step.runs) == 0)
        usleep(1000);
    uint64_t t0 = dm_now_ns();
    dm_pool_remove(pool, jl); /* waits for the running step */
    int after = atomic_load(&long_step.runs);
    usleep(150 * 1000);
    CHECK_EQ_INT(atomic_load(&long_step.runs), after);
    CHECK(dm_now_ns() - t0 < 1000000000ull);
    dm_pool_remove(pool, js);
    dm_pool_free(pool);
    close_log(t, dir);
}

int main(void)
{
    RUN(test_waiting_jobs_idle_then_wake);
    RUN(test_sleep_again_and_remove);
    return check_summary();
}
