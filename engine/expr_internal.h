/* engine/expr_internal.h — the compiled form of an expression, shared by
 * engine/expr_compile.c and engine/expr_eval.c (not public). */
#ifndef DM_ENGINE_EXPR_INTERNAL_H
#define DM_ENGINE_EXPR_INTERNAL_H

#include "engine/expr.h"

typedef enum {
    N_LIT,
    N_FIELD,
    N_NOT,
    N_NEG,
    N_AND,
    N_OR,
    N_CMP,
    N_ARITH,
    N_CONCAT,
    N_ISNULL,
    N_IN,
    N_LIKE,
    N_BETWEEN,
    N_CASE, /* kids: cond, value, cond, value, ..., [else] */
    N_CAST,
    N_CALL,
} node_kind_t;

typedef enum { OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE } cmp_op_t;
typedef enum { OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_MOD } arith_op_t;

typedef enum {
    F_LOWER,
    F_UPPER,
    F_LENGTH,
    F_TRIM,
    F_LTRIM,
    F_RTRIM,
    F_SUBSTR,
    F_CONCAT,
    F_REPLACE,
    F_STARTS_WITH,
    F_ENDS_WITH,
    F_CONTAINS,
    F_COALESCE,
    F_NULLIF,
    F_ABS,
    F_ROUND,
    F_FLOOR,
    F_CEIL,
    F_MOD,
    F_GREATEST,
    F_LEAST,
    F_NOW,
    F_EPOCH_MS,
    F_OP,
    F_IS_INSERT,
    F_IS_UPDATE,
    F_IS_DELETE,
    F_IS_SNAPSHOT,
    F_CHANGED,
} func_t;

/* How a field's Avro value becomes an expression value. */
typedef enum {
    CONV_BOOL,
    CONV_INT,
    CONV_LONG,
    CONV_FLOAT,
    CONV_DOUBLE,
    CONV_STRING,
    CONV_ENUM,
    CONV_TS_MILLIS,
    CONV_TS_MICROS,
    CONV_DECIMAL, /* bytes or fixed, unscaled two's complement → double */
} conv_t;

typedef struct node node_t;
struct node {
    node_kind_t kind;
    dm_expr_type_t type;
    bool nullable;
    bool negate; /* NOT IN, NOT LIKE, IS NOT NULL, NOT BETWEEN */
    int col;     /* 1-based column in the text */
    int op;      /* cmp_op_t, arith_op_t, func_t or the CAST target type */
    dm_expr_value_t lit;
    /* N_FIELD */
    const uint32_t *steps;
    uint32_t n_steps;
    conv_t conv;
    const dm_avro_node_t *leaf; /* enum symbols, decimal scale */
    node_t **kids;
    uint32_t n_kids;
};

struct vop; /* expr_vec.c */

struct dm_expr {
    dm_arena_t arena;
    char *text;
    node_t *root;
    const char **paths;
    size_t n_paths;
    const struct vop *vec; /* the batch program, NULL when the shape has none */
    uint32_t n_vec;
};

/* Compiles e's batch program when its shape has one (expr_vec.c). */
void dm_expr_vec_compile(dm_expr_t *e);

/* Parses an ISO-8601 date or timestamp ("2026-11-22", "2026-11-22T01:02:03.5Z",
 * "... +02:00") into ms since the epoch. False when it is not one. */
bool dm_expr_parse_timestamp(const char *s, size_t len, int64_t *ms);

#endif
