/* engine/rows.h — decoded records flowing through a fused chain.
 *
 * A batch owns an arena; every record's decoded value, and whatever the
 * processors of the chain build, lives there until the batch is reset. Values
 * may also point into the input bytes the batch was decoded from (strings are
 * not copied), which the task keeps alive for the batch's lifetime.
 * A batch belongs to one task thread.
 */
#ifndef DM_ENGINE_ROWS_H
#define DM_ENGINE_ROWS_H

#include <stdint.h>

#include "core/arena.h"
#include "core/error.h"
#include "schema/dm_avro.h"

enum {
    DM_ROW_TOMBSTONE = 1 << 0, /* a delete marker: key without value */
};

typedef struct dm_row {
    dm_avro_value_t value; /* a record of the batch's schema */
    const uint8_t *key;    /* key bytes as stored (Avro, wire format), may be NULL */
    uint32_t key_len;
    uint32_t flags;
    int64_t timestamp; /* event time, ms since the epoch */
    int32_t partition; /* input position, for dead letters; -1 when made here */
    uint16_t output;   /* which output of the task: 0 the main one, i + 1 extra output i */
    uint16_t input;    /* 1: a record of a join's other source (of the step's other schema) */
    int64_t offset;
} dm_row_t;

typedef struct dm_rows {
    dm_arena_t arena;
    const dm_avro_node_t *schema; /* the record schema of every value */
    dm_row_t *records;
    uint32_t n, cap;
} dm_rows_t;

/* Prepares an empty batch of records of schema. */
void dm_rows_init(dm_rows_t *b, const dm_avro_node_t *schema);

/* Appends a record slot (zeroed, partition -1) and returns it; NULL when out of memory. */
dm_row_t *dm_rows_push(dm_rows_t *b);

/* Makes room for n more records without pushing them (so a processor can
 * fill out->records[out->n ...] in a loop); DM_ERR_NOMEM when it cannot. */
dm_err_t dm_rows_reserve(dm_rows_t *b, uint32_t n);

/* Forgets the records and everything in the arena; keeps the memory. */
void dm_rows_reset(dm_rows_t *b);

/* Frees everything. */
void dm_rows_free(dm_rows_t *b);

#endif
