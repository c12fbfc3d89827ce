/* core/clock.h — clocks and time formatting. */
#ifndef DM_CORE_CLOCK_H
#define DM_CORE_CLOCK_H

#include <stddef.h>
#include <stdint.h>

/* Monotonic nanoseconds, for durations and timeouts. */
uint64_t dm_now_ns(void);

/* Wall-clock milliseconds since the Unix epoch, for event timestamps. */
int64_t dm_wall_ms(void);

/* Wall-clock microseconds since the Unix epoch. */
int64_t dm_wall_us(void);

/* Writes ms since the epoch as ISO 8601 UTC with milliseconds
 * ("2026-11-22T01:02:03.456Z") into out (at least 25 bytes). Returns out. */
char *dm_format_iso8601_ms(int64_t ms, char *out, size_t cap);

/* Sleeps for ms milliseconds (restarts after signals). */
void dm_sleep_ms(uint64_t ms);

#endif
