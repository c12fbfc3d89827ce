/* engine/pool.h — the worker pool: a few threads run many jobs (task
 * instances). A job runs a step at a time; between steps it is queued, asleep
 * until a time, or waiting for records on its inputs — then it costs no thread
 * and no CPU: the transport wakes it when a commit makes records visible
 * (dm_transport_watch), or a timeout does.
 *
 *   dm_pool_t *pool; dm_pool_new(t, 2, &pool, &err);
 *   dm_job_t *job = dm_pool_add(pool, "us-plays/task/0", step, ctx);
 *   ...
 *   dm_pool_remove(pool, job);   // returns once the job's step is not running
 *   dm_pool_free(pool);
 */
#ifndef DM_ENGINE_POOL_H
#define DM_ENGINE_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "transport/transport.h"

#define DM_JOB_MAX_INPUTS 16

typedef enum {
    DM_JOB_AGAIN, /* more to do: queue again (behind the others) */
    DM_JOB_SLEEP, /* run again after sleep_ms */
    DM_JOB_WAIT,  /* run again when any input has records at its offset, or after sleep_ms */
    DM_JOB_DONE,  /* never run again (until removed) */
} dm_job_next_t;

/* What a step asks for next. The step fills it when it returns DM_JOB_WAIT. */
typedef struct dm_job_wait {
    int64_t sleep_ms; /* SLEEP: how long; WAIT: the longest to wait (0 = no limit) */
    dm_tp_offset_t inputs[DM_JOB_MAX_INPUTS];
    size_t n_inputs;
} dm_job_wait_t;

/* One step of a job: a bounded piece of work, never a blocking wait. */
typedef dm_job_next_t (*dm_job_step_fn)(void *ctx, dm_job_wait_t *wait);

typedef struct dm_pool dm_pool_t;
typedef struct dm_job dm_job_t;

/* Starts n_threads workers (0 = one per core). t is borrowed; it serves the
 * watches of waiting jobs. */
dm_err_t dm_pool_new(dm_transport_t *t, int n_threads, dm_pool_t **out, dm_error_t *err);

/* Adds a job and queues its first step. name is copied; NULL when out of memory. */
dm_job_t *dm_pool_add(dm_pool_t *pool, const char *name, dm_job_step_fn step, void *ctx);

/* Removes a job: waits for a running step to return, cancels its watches and
 * frees it. The step never runs again. */
void dm_pool_remove(dm_pool_t *pool, dm_job_t *job);

/* Queues a waiting or sleeping job now (for example: its stop flag was set). */
void dm_pool_wake(dm_pool_t *pool, dm_job_t *job);

/* Jobs in the pool and worker threads. */
size_t dm_pool_jobs(dm_pool_t *pool);
int dm_pool_threads(const dm_pool_t *pool);

/* Stops the workers (jobs must have been removed). */
void dm_pool_free(dm_pool_t *pool);

#endif
