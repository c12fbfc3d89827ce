/* connectors/iceberg/sort.h — Iceberg sort orders: the sink's sort_by
 * setting parsed against a table schema, the order's JSON in table metadata,
 * and a stable sort of rows by it (each data file is one sorted run). */
#ifndef DM_CONNECTORS_ICEBERG_SORT_H
#define DM_CONNECTORS_ICEBERG_SORT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "connectors/iceberg/table.h"

typedef struct dm_ice_sort_field {
    size_t col;        /* the column's index in the schema's fields (a row's index) */
    int32_t source_id; /* its field id */
    dm_ice_type_t type;
    bool desc;
    bool nulls_first;
} dm_ice_sort_field_t;

typedef struct dm_ice_sort {
    dm_ice_sort_field_t *f;
    size_t n;
} dm_ice_sort_t;

/* Parses "col [asc|desc] [nulls first|nulls last], …" against the schema's
 * top-level primitive columns. Nulls default as Iceberg's: first when
 * ascending, last when descending. An unknown column, a struct, list or map
 * column, or a stray word is refused naming it (DM_ERR_CONFIG). Empty text
 * gives n = 0. out is freed with dm_ice_sort_free. */
dm_err_t dm_ice_sort_parse(const char *text, const dm_ice_schema_t *schema, dm_ice_sort_t *out,
                           dm_error_t *err);

void dm_ice_sort_free(dm_ice_sort_t *o);

/* The order's "fields" array as table metadata holds it (identity
 * transforms). New reference. */
json_t *dm_ice_sort_fields_json(const dm_ice_sort_t *o);

/* <0, 0, >0 as row a sorts before, with or after row b. */
int dm_ice_sort_compare(const dm_ice_sort_t *o, const dm_pq_value_t *a, const dm_pq_value_t *b);

/* Sorts rows (pointers) by the order, stable: equal rows keep their
 * arrival order. DM_ERR_NOMEM when the scratch array cannot be had. */
dm_err_t dm_ice_sort_rows(const dm_ice_sort_t *o, const dm_pq_value_t **rows, size_t n);

/* Two non-null values of one Iceberg type in Iceberg's order (numbers by value, -0 before
 * +0 and NaN last, decimals signed, strings and binary bytewise): <0, 0 or >0. */
int dm_ice_value_compare(dm_ice_type_t t, const dm_pq_value_t *a, const dm_pq_value_t *b);

#endif
