/* core/arena.c — chunked region allocator. */
#include "core/arena.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

struct dm_arena_chunk {
    dm_arena_chunk_t *next;
    size_t size; /* bytes of data[] */
    size_t pad;  /* keeps data[] 16-byte aligned */
    _Alignas(DM_ARENA_ALIGN) char data[];
};

void dm_arena_init(dm_arena_t *a, size_t chunk_size)
{
    memset(a, 0, sizeof(*a));
    a->chunk_size = chunk_size ? chunk_size : 64 * 1024;
}

static dm_arena_chunk_t *chunk_new(dm_arena_t *a, size_t size)
{
    dm_arena_chunk_t *c = malloc(sizeof(*c) + size);
    if (!c) return NULL;
    c->size = size;
    c->next = NULL;
    a->mallocs++;
    a->reserved += size;
    return c;
}

void *dm_arena_alloc_slow(dm_arena_t *a, size_t size)
{
    size_t rounded = (size + (DM_ARENA_ALIGN - 1)) & ~(size_t)(DM_ARENA_ALIGN - 1);
    if (rounded < size) return NULL;
    /* Grow geometrically so that many small chunks do not pile up. */
    size_t want = a->chunk_size;
    if (a->head && a->head->size * 2 > want) want = a->head->size * 2;
    if (rounded > want) want = rounded;
    dm_arena_chunk_t *c = chunk_new(a, want);
    if (!c) return NULL;
    c->next = a->head;
    a->head = c;
    a->ptr = c->data + rounded;
    a->end = c->data + c->size;
    a->used += rounded;
    return c->data;
}

void *dm_arena_calloc(dm_arena_t *a, size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size) return NULL;
    void *p = dm_arena_alloc(a, n * size);
    if (p) memset(p, 0, n * size);
    return p;
}

void *dm_arena_memdup(dm_arena_t *a, const void *src, size_t len)
{
    void *p = dm_arena_alloc(a, len ? len : 1);
    if (p && len) memcpy(p, src, len);
    return p;
}

char *dm_arena_strndup(dm_arena_t *a, const char *s, size_t len)
{
    char *p = dm_arena_alloc(a, len + 1);
    if (!p) return NULL;
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

char *dm_arena_strdup(dm_arena_t *a, const char *s)
{
    return dm_arena_strndup(a, s, strlen(s));
}

char *dm_arena_printf(dm_arena_t *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return NULL;
    char *p = dm_arena_alloc(a, (size_t)n + 1);
    if (!p) return NULL;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

void dm_arena_reset(dm_arena_t *a)
{
    dm_arena_chunk_t *c = a->head;
    if (!c) return;
    if (c->next) {
        /* The last cycle needed several chunks: replace them with one that holds
         * it all, so the next cycle of the same size stays in one chunk. */
        size_t total = 0;
        for (dm_arena_chunk_t *it = c; it; it = it->next)
            total += it->size;
        dm_arena_chunk_t *it = c;
        while (it) {
            dm_arena_chunk_t *next = it->next;
            free(it);
            it = next;
        }
        a->head = NULL;
        a->reserved = 0;
        c = chunk_new(a, total);
        if (!c) {
            a->ptr = a->end = NULL;
            a->used = 0;
            return;
        }
        a->head = c;
    }
    a->ptr = c->data;
    a->end = c->data + c->size;
    a->used = 0;
}

void dm_arena_destroy(dm_arena_t *a)
{
    dm_arena_chunk_t *c = a->head;
    while (c) {
        dm_arena_chunk_t *next = c->next;
        free(c);
        c = next;
    }
    size_t chunk_size = a->chunk_size;
    uint64_t mallocs = a->mallocs;
    memset(a, 0, sizeof(*a));
    a->chunk_size = chunk_size;
    a->mallocs = mallocs;
}
