/* connectors/unit.c — unit status shared between a unit's thread and the API. */
#include "connectors/unit.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/clock.h"

void dm_unit_init(dm_unit_status_t *s)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    snprintf(s->state, sizeof(s->state), "starting");
}

void dm_unit_destroy(dm_unit_status_t *s)
{
    pthread_mutex_destroy(&s->mu);
}

void dm_unit_set(dm_unit_status_t *s, const char *state, const char *fmt, ...)
{
    pthread_mutex_lock(&s->mu);
    snprintf(s->state, sizeof(s->state), "%s", state);
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(s->error, sizeof(s->error), fmt, ap);
        va_end(ap);
    } else {
        s->error[0] = '\0';
    }
    pthread_mutex_unlock(&s->mu);
}

void dm_unit_get(dm_unit_status_t *s, char *state, size_t state_cap, char *error, size_t error_cap)
{
    pthread_mutex_lock(&s->mu);
    snprintf(state, state_cap, "%s", s->state);
    snprintf(error, error_cap, "%s", s->error);
    pthread_mutex_unlock(&s->mu);
}

bool dm_unit_sleep(dm_unit_status_t *s, int64_t ms)
{
    while (ms > 0) {
        if (atomic_load(&s->stop)) return true;
        int64_t step = ms > 20 ? 20 : ms;
        dm_sleep_ms((uint64_t)step);
        ms -= step;
    }
    return atomic_load(&s->stop);
}
