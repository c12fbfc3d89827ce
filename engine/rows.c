/* engine/rows.c — batches of decoded records. */
#include "engine/rows.h"

#include <stdlib.h>
#include <string.h>

void dm_rows_init(dm_rows_t *b, const dm_avro_node_t *schema)
{
    memset(b, 0, sizeof(*b));
    dm_arena_init(&b->arena, 256 * 1024);
    b->schema = schema;
}

dm_err_t dm_rows_reserve(dm_rows_t *b, uint32_t n)
{
    if (b->cap - b->n >= n) return DM_OK;
    uint64_t cap = b->cap ? b->cap : 1024;
    while (cap - b->n < n)
        cap *= 2;
    if (cap > UINT32_MAX) return DM_ERR_NOMEM;
    dm_row_t *r = realloc(b->records, cap * sizeof(*r));
    if (!r) return DM_ERR_NOMEM;
    b->records = r;
    b->cap = (uint32_t)cap;
    return DM_OK;
}

dm_row_t *dm_rows_push(dm_rows_t *b)
{
    if (b->n == b->cap && dm_rows_reserve(b, 1)) return NULL;
    dm_row_t *r = &b->records[b->n++];
    memset(r, 0, sizeof(*r));
    r->partition = -1;
    r->offset = -1;
    return r;
}

void dm_rows_reset(dm_rows_t *b)
{
    b->n = 0;
    dm_arena_reset(&b->arena);
}

void dm_rows_free(dm_rows_t *b)
{
    free(b->records);
    dm_arena_destroy(&b->arena);
    memset(b, 0, sizeof(*b));
}
