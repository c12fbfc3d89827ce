/* connectors/unit.h — what a running connector, sink or task reports: its
 * state, its last error (in words a user can act on) and its position. Written
 * by the unit's thread, read by the API. */
#ifndef DM_CONNECTORS_UNIT_H
#define DM_CONNECTORS_UNIT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct dm_unit_status {
    pthread_mutex_t mu;
    char state[32]; /* starting, running, retrying, failed, done, stopped */
    char error[512];
    _Atomic int64_t position; /* records produced / next offset read */
    _Atomic int64_t lag;      /* records behind the input's end, when known */
    _Atomic bool stop;        /* set by the runtime: finish the current step and return */
} dm_unit_status_t;

void dm_unit_init(dm_unit_status_t *s);
void dm_unit_destroy(dm_unit_status_t *s);

/* Sets the state and (printf-style, may be NULL) the error. */
void dm_unit_set(dm_unit_status_t *s, const char *state, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Copies state and error out. */
void dm_unit_get(dm_unit_status_t *s, char *state, size_t state_cap, char *error, size_t error_cap);

/* Sleeps up to ms, returning early (true) when stop is set. */
bool dm_unit_sleep(dm_unit_status_t *s, int64_t ms);

#endif
