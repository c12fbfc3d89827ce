/* engine/state.h — keyed state for processors, event-time timers, and the
 * byte form of expression values that state keys and values are made of.
 *
 * A store maps byte keys to byte values. It lives in memory and, past a
 * configured size, spills to a RocksDB database in a local directory. The
 * local copy is only a cache: the task writes every change (the store's
 * dirty set) to the pipeline's compacted state topic in the same transaction
 * as the outputs and input offsets, and a restarted task rebuilds the store
 * from that topic. So the RocksDB directory is wiped at open and never needs
 * to survive a crash.
 *
 * Threads: a store belongs to one task; one thread at a time.
 */
#ifndef DM_ENGINE_STATE_H
#define DM_ENGINE_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/error.h"
#include "engine/expr.h"

typedef struct dm_state dm_state_t;

/* A new empty store. spill_dir: where RocksDB keeps what does not fit (NULL:
 * everything stays in memory); spill_bytes: memory use past which committed
 * entries move there (0 = 64 MiB). Whatever was in spill_dir is deleted. */
dm_err_t dm_state_new(const char *spill_dir, size_t spill_bytes, dm_state_t **out, dm_error_t *err);

void dm_state_free(dm_state_t *s);

/* Looks key up. *val (may be NULL when only presence matters) points into the
 * store and stays valid until the next call on the store. */
dm_err_t dm_state_get(dm_state_t *s, const void *key, size_t klen, const uint8_t **val,
                      size_t *vlen, bool *found, dm_error_t *err);

/* Inserts or replaces (copies both). */
dm_err_t dm_state_put(dm_state_t *s, const void *key, size_t klen, const void *val, size_t vlen,
                      dm_error_t *err);

/* Removes key; no error when absent. */
dm_err_t dm_state_del(dm_state_t *s, const void *key, size_t klen, dm_error_t *err);

/* Calls fn for every entry (memory and spilled, in no particular order);
 * stops when fn returns non-zero. fn must not modify the store. */
typedef int (*dm_state_fn)(void *ctx, const uint8_t *key, size_t klen, const uint8_t *val,
                           size_t vlen);
dm_err_t dm_state_foreach(dm_state_t *s, dm_state_fn fn, void *ctx, dm_error_t *err);

/* Calls fn for every key changed since the last dm_state_commit, with val
 * NULL for a removed key: what the changelog records. */
void dm_state_changes(dm_state_t *s, dm_state_fn fn, void *ctx);

/* Number of changed keys since the last commit. */
size_t dm_state_n_changes(const dm_state_t *s);

/* The changes are durable (or, while restoring, came from the changelog):
 * forgets them, and spills to RocksDB when memory use is past the limit. */
dm_err_t dm_state_commit(dm_state_t *s, dm_error_t *err);

/* The process-wide memory budget for state (default 1 GiB; 0 = none): when
 * the stores together hold more at a commit, the committing store spills to
 * RocksDB (when it has a spill directory), so state memory stays near the
 * budget however many tasks keep state. */
void dm_state_set_budget(size_t bytes);

/* State bytes all stores of the process hold in memory, as of their last commit. */
size_t dm_state_process_bytes(void);

/* Bytes of keys and values held in memory. */
size_t dm_state_memory_bytes(const dm_state_t *s);

/* Entries moved to RocksDB so far (minus those removed since). */
size_t dm_state_spilled(const dm_state_t *s);

/* ---- event-time timers --------------------------------------------------------- */

/* A min-heap of (time, key): what a processor must look at when the watermark
 * reaches time. The same pair may be pushed twice; consumers re-check state. */
typedef struct dm_timer {
    int64_t at;
    uint8_t *key;
    uint32_t klen;
} dm_timer_t;

typedef struct dm_timers {
    dm_timer_t *items;
    size_t n, cap;
} dm_timers_t;

/* Adds a timer (copies key). */
dm_err_t dm_timers_push(dm_timers_t *h, int64_t at, const void *key, size_t klen);

/* The earliest timer when it is due (at <= now): moves it to *out (the caller
 * frees out->key) and returns true. */
bool dm_timers_pop_due(dm_timers_t *h, int64_t now, dm_timer_t *out);

void dm_timers_free(dm_timers_t *h);

/* ---- values as bytes --------------------------------------------------------------- */

/* Appends a self-describing byte form of v (type tag and payload); equal
 * values give equal bytes, so the form serves as a state key. */
dm_err_t dm_state_put_value(dm_buf_t *out, const dm_expr_value_t *v);

/* Reads one value written by dm_state_put_value from *p (advancing it);
 * strings point into the bytes. DM_ERR_CORRUPT when they are not one. */
dm_err_t dm_state_get_value(const uint8_t **p, const uint8_t *end, dm_expr_value_t *v);

/* Orders two values of the same type (strings bytewise): <0, 0, >0. */
int dm_state_value_cmp(const dm_expr_value_t *a, const dm_expr_value_t *b);

#endif
