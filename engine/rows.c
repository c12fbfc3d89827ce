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

dm_row_t *dm_rows_push(dm_rows_t *b)
{
    if (b->n == b->cap) {
        uint32_t cap = b->cap ? b->cap * 2 : 1024;
        dm_row_t *r = realloc(b->records, cap * sizeof(*r));
        if (!r) return NULL;
        b->records = r;
        b->cap = cap;
    }
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
