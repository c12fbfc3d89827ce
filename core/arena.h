/* core/arena.h — region allocator for batches, requests and parse trees.
 *
 * Memory is carved from large chunks and released all at once by reset or
 * destroy; nothing is freed one object at a time. After a reset the arena keeps
 * one chunk as large as everything the last cycle used, so a steady stream of
 * same-sized batches allocates nothing from malloc after the first one.
 * An arena is not thread-safe: one owner thread at a time.
 */
#ifndef DM_CORE_ARENA_H
#define DM_CORE_ARENA_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct dm_arena_chunk dm_arena_chunk_t;

typedef struct dm_arena {
    dm_arena_chunk_t *head; /* current chunk; older chunks follow through ->next */
    char *ptr;              /* next free byte in head */
    char *end;              /* end of head's space */
    size_t chunk_size;      /* minimum size of a new chunk */
    size_t used;            /* bytes handed out since the last reset */
    size_t reserved;        /* bytes held in chunks */
    uint64_t mallocs;       /* chunks taken from malloc over the arena's life */
} dm_arena_t;

#define DM_ARENA_ALIGN 16

/* Prepares an arena whose chunks are at least chunk_size bytes (0 = 64 KiB).
 * Allocates nothing until the first dm_arena_alloc. */
void dm_arena_init(dm_arena_t *a, size_t chunk_size);

/* Slow path of dm_arena_alloc: takes a new chunk. Returns NULL when out of memory. */
void *dm_arena_alloc_slow(dm_arena_t *a, size_t size);

/* Returns size bytes aligned to DM_ARENA_ALIGN, valid until the next reset or
 * destroy; NULL when out of memory. */
static inline void *dm_arena_alloc(dm_arena_t *a, size_t size)
{
    size_t rounded = (size + (DM_ARENA_ALIGN - 1)) & ~(size_t)(DM_ARENA_ALIGN - 1);
    if (rounded < size) return NULL; /* overflow */
    if ((size_t)(a->end - a->ptr) >= rounded && a->ptr) {
        void *p = a->ptr;
        a->ptr += rounded;
        a->used += rounded;
        return p;
    }
    return dm_arena_alloc_slow(a, size);
}

/* Like dm_arena_alloc, zero-filled. */
void *dm_arena_calloc(dm_arena_t *a, size_t n, size_t size);

/* Copies len bytes into the arena. */
void *dm_arena_memdup(dm_arena_t *a, const void *src, size_t len);

/* Copies len bytes of s and a terminating NUL into the arena. */
char *dm_arena_strndup(dm_arena_t *a, const char *s, size_t len);

/* Copies a NUL-terminated string into the arena. */
char *dm_arena_strdup(dm_arena_t *a, const char *s);

/* Formats into the arena. */
char *dm_arena_printf(dm_arena_t *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Forgets every allocation. Keeps one chunk big enough for what the last cycle
 * used, so the next cycle of the same size does not call malloc. */
void dm_arena_reset(dm_arena_t *a);

/* Frees every chunk. The arena may be initialized again afterwards. */
void dm_arena_destroy(dm_arena_t *a);

#endif
