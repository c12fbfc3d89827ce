/* connectors/unit.h — what a running connector, sink, table or task reports:
 * its state, its last error (in words a user can act on) and its position;
 * and the one failure policy every unit follows.
 *
 * The failure policy, driven by dm_error_t (core/error.h):
 *   - err->retriable (and not err->fatal): the unit shows "retrying" with the
 *     reason and tries again after an exponential backoff (min, 2·min, … up
 *     to max), reset by its next success;
 *   - otherwise (fatal, or not known to be transient): the unit shows
 *     "failed" with the reason and stops; a change of its spec starts it
 *     again.
 * A record that can never succeed is not an error of the unit: it goes to a
 * dead-letter topic with the reason and the unit goes on.
 *
 *   dm_error_t err = {0};
 *   while (!atomic_load(&st->stop)) {
 *       if (work(&err)) {
 *           if (!dm_unit_retry(st, &err, "writing to topic %s", topic)) break; // failed or stop
 *           continue;
 *       }
 *       dm_unit_ok(st);   // "running", backoff reset
 *   }
 *
 * Threads: the status is written by the unit's thread (the backoff only
 * there) and read by the API's threads (dm_unit_get). */
#ifndef DM_CONNECTORS_UNIT_H
#define DM_CONNECTORS_UNIT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

/* The states of a unit; dm_unit_state_name gives the word the API shows. */
typedef enum dm_unit_state {
    DM_UNIT_STARTING = 0, /* "starting": opening, or waiting for what it needs (reason says) */
    DM_UNIT_RUNNING,      /* "running" */
    DM_UNIT_RETRYING,     /* "retrying": a transient error, tried again after a backoff */
    DM_UNIT_FAILED,       /* "failed": stopped by an error that retrying cannot fix */
    DM_UNIT_STOPPED,      /* "stopped": asked to stop */
    DM_UNIT_DONE,         /* "done": a finite source read everything */
    DM_UNIT_EXTERNAL,     /* "external": run by `datamesh worker` processes */
} dm_unit_state_t;

/* Backoff bounds of the failure policy unless a unit sets its own. */
#define DM_UNIT_BACKOFF_MIN_MS 100
#define DM_UNIT_BACKOFF_MAX_MS 10000

typedef struct dm_unit_status {
    pthread_mutex_t mu;
    dm_unit_state_t state;
    char error[512];
    _Atomic int64_t position; /* records produced / next offset read */
    _Atomic int64_t lag;      /* records behind the input's end, when known */
    _Atomic bool stop;        /* set by the runtime: finish the current step and return */
    char name[200];           /* for logs: "p/task/0" (dm_unit_name; empty until set) */
    /* the failure policy (the unit's thread only) */
    int64_t backoff_min_ms, backoff_max_ms;
    int64_t backoff_ms; /* the next wait; 0 after a success */

    /* counted by dm_unit_set for the alert rules (datamesh_unit_*; any thread reads) */
    _Atomic uint64_t errors;   /* failed attempts (set to retrying or failed) */
    _Atomic uint64_t restarts; /* of them, those tried again (retrying) */
} dm_unit_status_t;

/* The state's name as the API and `datamesh worker` show it ("retrying");
 * never NULL. */
const char *dm_unit_state_name(dm_unit_state_t state);

/* Initialises s: "starting", no error, the default backoff bounds. */
void dm_unit_init(dm_unit_status_t *s);
void dm_unit_destroy(dm_unit_status_t *s);

/* Names the unit in the policy's log lines (the runtime does, before the
 * unit's thread starts). */
void dm_unit_name(dm_unit_status_t *s, const char *name);

/* Sets the state and (printf-style, may be NULL) the error. Any thread. */
void dm_unit_set(dm_unit_status_t *s, dm_unit_state_t state, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The current state. Any thread. */
dm_unit_state_t dm_unit_state(dm_unit_status_t *s);

/* Copies the state's name and the error out; returns the state. Any thread. */
dm_unit_state_t dm_unit_get(dm_unit_status_t *s, char *state, size_t state_cap, char *error,
                            size_t error_cap);

/* Sleeps up to ms, returning early (true) when stop is set. */
bool dm_unit_sleep(dm_unit_status_t *s, int64_t ms);

/* Sets the unit's backoff bounds (min >= 1, max >= min). The unit's thread. */
void dm_unit_backoff(dm_unit_status_t *s, int64_t min_ms, int64_t max_ms);

/* The failure policy's decision alone: whether err may pass when tried again
 * (retriable and not fatal). For loops that keep their own backoff. */
bool dm_unit_should_retry(const dm_error_t *err);

/* The failure policy for err (see the top of this file), with what (printf-
 * style, may be NULL) put before the reason: sets "retrying" and returns the
 * ms to wait before the next try, growing with each failure in a row; or sets
 * "failed" and returns -1 (the unit must stop). Logs either way. The unit's
 * thread. */
int64_t dm_unit_failure(dm_unit_status_t *s, const dm_error_t *err, const char *what, ...)
    __attribute__((format(printf, 3, 4)));

/* dm_unit_failure, then the wait, for a unit with a thread of its own. True:
 * try again; false: stop (the unit failed, or stop was set while waiting). */
bool dm_unit_retry(dm_unit_status_t *s, const dm_error_t *err, const char *what, ...)
    __attribute__((format(printf, 3, 4)));

/* After a success: the backoff starts over, and a unit that was starting or
 * retrying shows "running" without a reason (one that runs already keeps its
 * note). The unit's thread. */
void dm_unit_ok(dm_unit_status_t *s);

#endif
