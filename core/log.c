/* core/log.c — structured, leveled logging. */
#include "core/log.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/clock.h"

static _Atomic int log_level = -1;
static dm_log_sink_fn log_sink;
static void *log_sink_ctx;

static const char *level_names[] = {"ERROR", "WARN", "INFO", "DEBUG", "TRACE"};

int dm_log_level_parse(const char *name)
{
    for (int i = 0; i < 5; i++)
        if (strcasecmp(name, level_names[i]) == 0) return i;
    return -1;
}

dm_log_level_t dm_log_get_level(void)
{
    int l = atomic_load_explicit(&log_level, memory_order_relaxed);
    if (l < 0) {
        const char *env = getenv("DM_LOG_LEVEL");
        l = env ? dm_log_level_parse(env) : -1;
        if (l < 0) l = DM_LOG_INFO;
        atomic_store(&log_level, l);
    }
    return (dm_log_level_t)l;
}

void dm_log_set_level(dm_log_level_t level)
{
    atomic_store(&log_level, (int)level);
}

void dm_log_set_sink(dm_log_sink_fn fn, void *ctx)
{
    log_sink = fn;
    log_sink_ctx = ctx;
}

void dm_logv(dm_log_level_t level, const char *component, const char *fmt, va_list ap)
{
    if (level > dm_log_get_level()) return;
    char line[2048];
    char ts[32];
    dm_format_iso8601_ms(dm_wall_ms(), ts, sizeof(ts));
    int n = snprintf(line, sizeof(line), "%s %s component=%s ", ts, level_names[level],
                     component ? component : "-");
    if (n < 0) return;
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    if (m < 0) return;
    size_t len = (size_t)n + (size_t)m;
    if (len >= sizeof(line) - 1) {
        len = sizeof(line) - 2;
        memcpy(line + len - 3, "...", 3);
    }
    if (log_sink) {
        line[len] = '\0';
        log_sink(log_sink_ctx, level, line, len);
        return;
    }
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

void dm_log(dm_log_level_t level, const char *component, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    dm_logv(level, component, fmt, ap);
    va_end(ap);
}
