/* sql/sql_internal.h — the lexer, the syntax tree and the parser shared by
 * sql/parser.c (text → tree), sql/compile.c (tree → steps) and sql/script.c
 * (statements). Every node lives in the parse's arena. */
#ifndef DM_SQL_INTERNAL_H
#define DM_SQL_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/error.h"

/* ---- tokens ------------------------------------------------------------------------ */

typedef enum {
    K_EOF,
    K_IDENT,  /* a name or a keyword (keywords are matched case-insensitively) */
    K_QIDENT, /* "quoted" or `quoted`: always a name; text without the quotes */
    K_INT,
    K_FLOAT,
    K_STRING, /* 'text' ('' inside): text without quotes, '' kept as is */
    K_OP,     /* = <> != < <= > >= + - * / % || ( ) , . ; */
} sql_tok_kind_t;

typedef struct sql_tok {
    sql_tok_kind_t kind;
    const char *p; /* in the query text */
    uint32_t len;
    uint32_t off; /* offset of the token's first character */
    int line, col;
} sql_tok_t;

/* ---- expressions -------------------------------------------------------------------- */

typedef enum {
    X_LIT,       /* s: the literal as the engine reads it (42, 'x', TRUE, NULL) */
    X_COL,       /* parts[0..n_parts): a.b.c */
    X_STAR,      /* * or t.* (parts: the qualifier) */
    X_UNARY,     /* op: NOT or -; a */
    X_BIN,       /* op: AND OR = <> < <= > >= + - * / % ||; a, b */
    X_ISNULL,    /* a IS [NOT] NULL */
    X_IN,        /* a [NOT] IN (args) */
    X_LIKE,      /* a [NOT] LIKE b */
    X_BETWEEN,   /* a [NOT] BETWEEN b AND c */
    X_CASE,      /* CASE [a] WHEN args[2i] THEN args[2i+1] … [ELSE c] END */
    X_CAST,      /* CAST(a AS s) — s the engine's type name */
    X_FUNC,      /* s(args) [DISTINCT] / s(*) */
    X_INTERVAL,  /* ms */
    X_TIMESTAMP, /* TIMESTAMP 'text': s */
} sql_xkind_t;

typedef struct sql_expr sql_expr_t;
struct sql_expr {
    sql_xkind_t kind;
    int line, col;
    uint32_t off, end; /* the span in the query text */
    const char *op;
    const char *s;
    const char **parts;
    int n_parts;
    sql_expr_t *a, *b, *c;
    sql_expr_t **args;
    int n_args;
    bool not, distinct, star;
    int64_t ms;
};

/* ---- queries ------------------------------------------------------------------------ */

typedef enum { W_NONE, W_TUMBLE, W_HOP, W_SESSION } sql_window_t;

typedef struct sql_query sql_query_t;

typedef struct sql_from {
    const char *name;  /* the source (or input) */
    const char *alias; /* NULL: the name */
    int line, col;
    sql_window_t window;
    sql_expr_t *time; /* DESCRIPTOR(col) */
    int64_t size, slide, gap;
    sql_query_t *sub; /* (SELECT * FROM a UNION ALL …) */
} sql_from_t;

typedef struct sql_join {
    bool left;
    sql_from_t item;
    sql_expr_t *on;
    sql_expr_t *system_time; /* FOR SYSTEM_TIME AS OF …, may be NULL */
    int line, col;
} sql_join_t;

typedef struct sql_item {
    sql_expr_t *e;
    const char *alias;
} sql_item_t;

typedef struct sql_select {
    int line, col;
    sql_item_t *items;
    int n_items;
    sql_from_t from;
    sql_join_t *joins;
    int n_joins;
    sql_expr_t *where;
    sql_expr_t **group;
    int n_group;
    sql_expr_t *having;
} sql_select_t;

struct sql_query {
    sql_select_t **branches; /* UNION ALL */
    int n_branches;
};

/* ---- parsing ------------------------------------------------------------------------ */

typedef struct sql_parser {
    const char *text; /* the whole script */
    const char *cur;
    int line, col; /* of cur */
    sql_tok_t t;   /* the current token */
    dm_arena_t *arena;
    dm_error_t *err;
    bool failed;
    int depth; /* nesting, bounded so that a hostile query cannot exhaust the stack */
} sql_parser_t;

/* Starts parsing text at its beginning. */
void dm_sql_parser_init(sql_parser_t *ps, const char *text, dm_arena_t *arena, dm_error_t *err);
void dm_sql_next(sql_parser_t *ps);
bool dm_sql_is_kw(const sql_tok_t *t, const char *kw);
bool dm_sql_is_op(const sql_tok_t *t, const char *op);
/* Fails at token t (first failure wins): "SQL line L, column C: …" with the
 * line and a caret. Returns false for `return fail(...)` chains. */
bool dm_sql_fail_at(sql_parser_t *ps, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The same for a query compiled apart from its parser. */
void dm_sql_error_at(const char *text, int line, int col, dm_error_t *err, dm_err_t code,
                     const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* A query: SELECT … [UNION ALL SELECT …]; NULL after a failure. */
sql_query_t *dm_sql_parse_query(sql_parser_t *ps);
/* A name (identifier or quoted), arena copy; NULL (and failed) when not one. */
const char *dm_sql_parse_name(sql_parser_t *ps, const char *what);

#endif
