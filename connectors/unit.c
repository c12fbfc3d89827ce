/* connectors/unit.c — unit status shared between a unit's thread and the API,
 * and the failure policy. */
#include "connectors/unit.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"

static const char *const state_names[] = {
    [DM_UNIT_STARTING] = "starting", [DM_UNIT_RUNNING] = "running", [DM_UNIT_RETRYING] = "retrying",
    [DM_UNIT_FAILED] = "failed",     [DM_UNIT_STOPPED] = "stopped", [DM_UNIT_DONE] = "done",
    [DM_UNIT_EXTERNAL] = "external",
};

const char *dm_unit_state_name(dm_unit_state_t state)
{
    if ((unsigned)state >= sizeof(state_names) / sizeof(state_names[0]) || !state_names[state])
        return "unknown";
    return state_names[state];
}

void dm_unit_init(dm_unit_status_t *s)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    s->state = DM_UNIT_STARTING;
    s->backoff_min_ms = DM_UNIT_BACKOFF_MIN_MS;
    s->backoff_max_ms = DM_UNIT_BACKOFF_MAX_MS;
}

void dm_unit_name(dm_unit_status_t *s, const char *name)
{
    snprintf(s->name, sizeof(s->name), "%s", name);
}

void dm_unit_destroy(dm_unit_status_t *s)
{
    pthread_mutex_destroy(&s->mu);
}

static void set_v(dm_unit_status_t *s, dm_unit_state_t state, const char *fmt, va_list ap)
{
    pthread_mutex_lock(&s->mu);
    /* Every failed attempt is an error; one that is tried again a restart
     * (from the unit's durable position). A unit stays failed once. */
    if (state == DM_UNIT_RETRYING || (state == DM_UNIT_FAILED && s->state != DM_UNIT_FAILED))
        atomic_fetch_add(&s->errors, 1);
    if (state == DM_UNIT_RETRYING) atomic_fetch_add(&s->restarts, 1);
    s->state = state;
    if (fmt)
        vsnprintf(s->error, sizeof(s->error), fmt, ap);
    else
        s->error[0] = '\0';
    pthread_mutex_unlock(&s->mu);
}

void dm_unit_set(dm_unit_status_t *s, dm_unit_state_t state, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_v(s, state, fmt, ap);
    va_end(ap);
}

dm_unit_state_t dm_unit_state(dm_unit_status_t *s)
{
    pthread_mutex_lock(&s->mu);
    dm_unit_state_t st = s->state;
    pthread_mutex_unlock(&s->mu);
    return st;
}

dm_unit_state_t dm_unit_get(dm_unit_status_t *s, char *state, size_t state_cap, char *error,
                            size_t error_cap)
{
    pthread_mutex_lock(&s->mu);
    dm_unit_state_t st = s->state;
    snprintf(state, state_cap, "%s", dm_unit_state_name(st));
    snprintf(error, error_cap, "%s", s->error);
    pthread_mutex_unlock(&s->mu);
    return st;
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

void dm_unit_backoff(dm_unit_status_t *s, int64_t min_ms, int64_t max_ms)
{
    s->backoff_min_ms = min_ms < 1 ? 1 : min_ms;
    s->backoff_max_ms = max_ms < s->backoff_min_ms ? s->backoff_min_ms : max_ms;
}

bool dm_unit_should_retry(const dm_error_t *err)
{
    return err && err->retriable && !err->fatal;
}

static int64_t failure_v(dm_unit_status_t *s, const dm_error_t *err, const char *what, va_list ap)
{
    char prefix[256] = "";
    if (what) vsnprintf(prefix, sizeof(prefix), what, ap);
    const char *sep = prefix[0] ? ": " : "";
    const char *msg = err && err->message[0] ? err->message : "unknown error";
    if (!dm_unit_should_retry(err)) {
        dm_unit_set(s, DM_UNIT_FAILED, "%s%s%s", prefix, sep, msg);
        DM_ERROR("unit", "unit=%s: %s%s%s; stopped (%s)", s->name[0] ? s->name : "-", prefix, sep,
                 msg, err && err->fatal ? "fatal" : "retrying cannot help");
        return -1;
    }
    int64_t wait = s->backoff_ms ? s->backoff_ms : s->backoff_min_ms;
    s->backoff_ms = wait * 2 > s->backoff_max_ms ? s->backoff_max_ms : wait * 2;
    dm_unit_set(s, DM_UNIT_RETRYING, "%s%s%s", prefix, sep, msg);
    DM_WARN("unit", "unit=%s: %s%s%s; retrying in %lld ms", s->name[0] ? s->name : "-", prefix, sep,
            msg, (long long)wait);
    return wait;
}

int64_t dm_unit_failure(dm_unit_status_t *s, const dm_error_t *err, const char *what, ...)
{
    va_list ap;
    va_start(ap, what);
    int64_t wait = failure_v(s, err, what, ap);
    va_end(ap);
    return wait;
}

bool dm_unit_retry(dm_unit_status_t *s, const dm_error_t *err, const char *what, ...)
{
    va_list ap;
    va_start(ap, what);
    int64_t wait = failure_v(s, err, what, ap);
    va_end(ap);
    return wait >= 0 && !dm_unit_sleep(s, wait);
}

void dm_unit_ok(dm_unit_status_t *s)
{
    s->backoff_ms = 0;
    pthread_mutex_lock(&s->mu);
    if (s->state == DM_UNIT_STARTING || s->state == DM_UNIT_RETRYING) {
        s->state = DM_UNIT_RUNNING;
        s->error[0] = '\0';
    }
    pthread_mutex_unlock(&s->mu);
}
