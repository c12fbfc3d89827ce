/* engine/expr.h — expressions for filter, project and (later) SQL.
 *
 * SQL-flavoured syntax over the fields of an Avro record:
 *   literals      42  -7  3.14  'text'  TRUE  FALSE  NULL
 *   field paths   amount   after.title   source.ts_ms   (through nullable unions)
 *   operators     = != <> < <= > >=  AND OR NOT  + - * / %  ||  (string concat)
 *                 x IS [NOT] NULL   x [NOT] IN (a, b)   x [NOT] LIKE 'a%_'
 *                 x [NOT] BETWEEN a AND b
 *                 CASE WHEN c THEN v [...] [ELSE v] END    CAST(x AS type)
 *   functions     lower upper length trim ltrim rtrim substr concat replace
 *                 starts_with ends_with contains coalesce nullif abs round
 *                 floor ceil mod greatest least now epoch_ms
 *                 CDC: op()  is_insert() is_update() is_delete() is_snapshot()
 *                      changed(path)  — true when before.path and after.path differ
 * Compilation type-checks against the input schema once; an error names the
 * expression, the column and what is wrong. Evaluation follows precompiled
 * field indices (no lookups by name per record) and uses SQL three-valued
 * logic: NULL in, NULL out, and a filter keeps a record only when TRUE.
 *
 * Threads: a compiled expression is immutable and may be shared; evaluation
 * allocates (only strings built by functions) in the caller's arena.
 */
#ifndef DM_ENGINE_EXPR_H
#define DM_ENGINE_EXPR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/error.h"
#include "schema/dm_avro.h"

typedef enum dm_expr_type {
    DM_EXPR_NULL = 0, /* the type of the literal NULL */
    DM_EXPR_BOOL,
    DM_EXPR_LONG,
    DM_EXPR_DOUBLE,
    DM_EXPR_STRING,
    DM_EXPR_TIMESTAMP, /* milliseconds since the epoch (UTC) */
} dm_expr_type_t;

/* A result: type, null flag and payload (strings are not NUL-terminated). */
typedef struct dm_expr_value {
    dm_expr_type_t type;
    bool null;
    uint32_t len;
    union {
        bool b;
        int64_t l;
        double d;
        const char *s;
    } u;
} dm_expr_value_t;

typedef struct dm_expr dm_expr_t;

/* Compiles text against record (the input's reader schema node). The result
 * type is in *type (may be NULL). Errors: DM_ERR_INVALID with
 * "expression 'TEXT': column N: what is wrong". Free with dm_expr_free. */
dm_err_t dm_expr_compile(const char *text, const dm_avro_node_t *record, dm_expr_t **out,
                         dm_error_t *err);

void dm_expr_free(dm_expr_t *e);

/* The static result type and whether the result can be NULL. */
dm_expr_type_t dm_expr_result_type(const dm_expr_t *e);
bool dm_expr_nullable(const dm_expr_t *e);

/* The field paths the expression reads ("after.title"), for projection
 * pushdown into the Avro decoder. Valid while e lives. */
size_t dm_expr_paths(const dm_expr_t *e, const char *const **paths);

/* True when e is a field path alone ("after.title"): its value is the
 * field's, unchanged (lineage tells IDENTITY from TRANSFORMATION by it). */
bool dm_expr_is_field(const dm_expr_t *e);

/* Evaluates e on one decoded record value. Errors at run time (division by
 * zero, a CAST that fails) return DM_ERR_INVALID naming the expression; the
 * engine sends such a record to the dead-letter topic. */
dm_err_t dm_expr_eval(const dm_expr_t *e, const dm_avro_value_t *record, dm_arena_t *arena,
                      dm_expr_value_t *out, dm_error_t *err);

/* Evaluates a boolean expression as a filter: *keep is true only when the
 * result is TRUE (NULL and FALSE drop the record). */
dm_err_t dm_expr_eval_filter(const dm_expr_t *e, const dm_avro_value_t *record, dm_arena_t *arena,
                             bool *keep, dm_error_t *err);

/* Batch evaluation (engine/expr_vec.c): the common shapes (fields,
 * literals, comparisons, AND/OR/NOT, IS NULL, arithmetic) run over many
 * records at once. Record i is the value at (const char *)first + i * stride.
 * A record the batch form leaves to the caller (the expression has other
 * parts, or this record could fail: overflow, division by zero) is "slow":
 * evaluate it with dm_expr_eval / dm_expr_eval_filter, which give the same
 * result or name the error. Nothing is allocated. */

/* True when e has a batch form (else every record is slow). */
bool dm_expr_batchable(const dm_expr_t *e);

#define DM_EXPR_KEEP_SLOW 2

/* keep[i]: 1 keep (TRUE), 0 drop (FALSE or NULL), DM_EXPR_KEEP_SLOW. */
void dm_expr_filter_batch(const dm_expr_t *e, const dm_avro_value_t *first, size_t stride,
                          uint32_t n, uint8_t *keep);

/* out[i]: the value of record i (already widened to the static type) unless
 * slow[i] is true. */
void dm_expr_eval_batch(const dm_expr_t *e, const dm_avro_value_t *first, size_t stride, uint32_t n,
                        dm_expr_value_t *out, bool *slow);

/* The name of a type ("long", "string"). */
const char *dm_expr_type_name(dm_expr_type_t t);

#endif
