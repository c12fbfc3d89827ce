/* core/log.h — structured, leveled logging.
 *
 * One line per event: `<ISO time> <LEVEL> component=<c> <key=value…>: <message>`.
 * The caller writes the key=value context that names the instance and what it
 * was doing (`topic=plays partition=3: recovered, cut 112 bytes`). Lines are
 * written with one write(2), so lines from several threads never interleave.
 * Never log secrets: pass DSNs through dm_redact_dsn first.
 */
#ifndef DM_CORE_LOG_H
#define DM_CORE_LOG_H

#include <stdarg.h>
#include <stddef.h>

typedef enum {
    DM_LOG_ERROR = 0,
    DM_LOG_WARN = 1,
    DM_LOG_INFO = 2,
    DM_LOG_DEBUG = 3,
    DM_LOG_TRACE = 4,
} dm_log_level_t;

/* Receives each formatted line (without newline); for tests and embedding. */
typedef void (*dm_log_sink_fn)(void *ctx, dm_log_level_t level, const char *line, size_t len);

/* Sets the threshold; lines above it are skipped cheaply. Default: INFO, or the
 * DM_LOG_LEVEL environment variable (error|warn|info|debug|trace). */
void dm_log_set_level(dm_log_level_t level);
dm_log_level_t dm_log_get_level(void);

/* Parses a level name; returns -1 when it is not one. */
int dm_log_level_parse(const char *name);

/* Replaces the output (default: stderr). NULL restores stderr. Not thread-safe:
 * call at start-up or in tests. */
void dm_log_set_sink(dm_log_sink_fn fn, void *ctx);

/* Writes one line. component is a short module name ("log", "control"). */
void dm_log(dm_log_level_t level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void dm_logv(dm_log_level_t level, const char *component, const char *fmt, va_list ap);

#define dm_log_enabled(level) ((level) <= dm_log_get_level())

#define DM_ERROR(component, ...) dm_log(DM_LOG_ERROR, component, __VA_ARGS__)
#define DM_WARN(component, ...)  dm_log(DM_LOG_WARN, component, __VA_ARGS__)
#define DM_INFO(component, ...)  dm_log(DM_LOG_INFO, component, __VA_ARGS__)
#define DM_DEBUG(component, ...)                                                                   \
    do {                                                                                           \
        if (dm_log_enabled(DM_LOG_DEBUG)) dm_log(DM_LOG_DEBUG, component, __VA_ARGS__);            \
    } while (0)

#endif
