/* sql/parser.c — the lexer and the recursive-descent parser of queries
 * (sql/sql_internal.h). Keywords are case-insensitive; names keep their case;
 * "…" and `…` quote names; -- and C-style block comments are comments. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sql/sql_internal.h"

/* ---- errors ------------------------------------------------------------------------- */

/* The message, then the query line holding line:col and a caret under col. */
static void error_vat(const char *text, int line, int col, dm_error_t *err, dm_err_t code,
                      const char *fmt, va_list ap)
{
    char msg[300];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    const char *p = text;
    for (int l = 1; l < line && *p; p++)
        if (*p == '\n') l++;
    const char *e = p;
    while (*e && *e != '\n' && *e != '\r')
        e++;
    /* Show at most 100 characters of a long line, around the column. */
    int c0 = 0, len = (int)(e - p);
    if (col - 1 > 70) c0 = col - 1 - 60;
    if (len - c0 > 100) len = c0 + 100;
    if (c0 > len) c0 = len;
    char caret[128];
    int pad = col - 1 - c0;
    if (pad < 0) pad = 0;
    if (pad > 110) pad = 110;
    for (int i = 0; i < pad; i++) {
        char ch = p[c0 + i];
        caret[i] = ch == '\t' ? '\t' : ' ';
    }
    caret[pad] = '^';
    caret[pad + 1] = '\0';
    dm_error_set(err, code, "SQL line %d, column %d: %s\n    %.*s\n    %s", line, col, msg,
                 len - c0, p + c0, caret);
}

void dm_sql_error_at(const char *text, int line, int col, dm_error_t *err, dm_err_t code,
                     const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    error_vat(text, line, col, err, code, fmt, ap);
    va_end(ap);
}

bool dm_sql_fail_at(sql_parser_t *ps, int line, int col, const char *fmt, ...)
{
    if (ps->failed) return false;
    ps->failed = true;
    va_list ap;
    va_start(ap, fmt);
    error_vat(ps->text, line, col, ps->err, DM_ERR_INVALID, fmt, ap);
    va_end(ap);
    return false;
}

/* ---- lexer -------------------------------------------------------------------------- */

static void advance(sql_parser_t *ps, size_t n)
{
    for (size_t i = 0; i < n && *ps->cur; i++, ps->cur++) {
        if (*ps->cur == '\n') {
            ps->line++;
            ps->col = 1;
        } else {
            ps->col++;
        }
    }
}

void dm_sql_parser_init(sql_parser_t *ps, const char *text, dm_arena_t *arena, dm_error_t *err)
{
    *ps =
        (sql_parser_t){.text = text, .cur = text, .line = 1, .col = 1, .arena = arena, .err = err};
    dm_sql_next(ps);
}

static void skip_space(sql_parser_t *ps)
{
    for (;;) {
        const char *p = ps->cur;
        if (isspace((unsigned char)*p)) {
            advance(ps, 1);
        } else if (p[0] == '-' && p[1] == '-') {
            while (*ps->cur && *ps->cur != '\n')
                advance(ps, 1);
        } else if (p[0] == '/' && p[1] == '*') {
            int line = ps->line, col = ps->col;
            const char *e = strstr(p + 2, "*/");
            if (!e) {
                dm_sql_fail_at(ps, line, col, "comment /* is not closed");
                advance(ps, strlen(p));
                return;
            }
            advance(ps, (size_t)(e + 2 - p));
        } else {
            return;
        }
    }
}

void dm_sql_next(sql_parser_t *ps)
{
    skip_space(ps);
    const char *p = ps->cur;
    sql_tok_t t = {.p = p, .off = (uint32_t)(p - ps->text), .line = ps->line, .col = ps->col};
    size_t n = 0;
    if (!*p || ps->failed) {
        t.kind = K_EOF;
    } else if (isdigit((unsigned char)*p) || (*p == '.' && isdigit((unsigned char)p[1]))) {
        bool flt = false;
        while (isdigit((unsigned char)p[n]))
            n++;
        if (p[n] == '.' && isdigit((unsigned char)p[n + 1])) {
            flt = true;
            n++;
            while (isdigit((unsigned char)p[n]))
                n++;
        }
        if ((p[n] == 'e' || p[n] == 'E') &&
            (isdigit((unsigned char)p[n + 1]) ||
             ((p[n + 1] == '+' || p[n + 1] == '-') && isdigit((unsigned char)p[n + 2])))) {
            flt = true;
            n += 2;
            while (isdigit((unsigned char)p[n]))
                n++;
        }
        t.kind = flt ? K_FLOAT : K_INT;
        if (isalpha((unsigned char)p[n]) || p[n] == '_') {
            dm_sql_fail_at(ps, t.line, t.col, "a number runs into a name ('%.*s')", (int)(n + 1),
                           p);
            t.kind = K_EOF;
        }
    } else if (*p == '\'') {
        n = 1;
        for (;;) {
            if (!p[n]) {
                dm_sql_fail_at(ps, t.line, t.col, "string literal is not closed");
                t.kind = K_EOF;
                break;
            }
            if (p[n] == '\'' && p[n + 1] == '\'') {
                n += 2;
                continue;
            }
            if (p[n] == '\'') {
                n++;
                t.kind = K_STRING;
                t.p = p + 1;
                break;
            }
            n++;
        }
    } else if (*p == '"' || *p == '`') {
        const char *e = strchr(p + 1, *p);
        if (!e || e == p + 1) {
            dm_sql_fail_at(ps, t.line, t.col,
                           e ? "empty quoted name" : "quoted name is not closed");
            t.kind = K_EOF;
        } else {
            t.kind = K_QIDENT;
            t.p = p + 1;
            n = (size_t)(e - p) + 1;
        }
    } else if (isalpha((unsigned char)*p) || *p == '_') {
        while (isalnum((unsigned char)p[n]) || p[n] == '_' || p[n] == '$')
            n++;
        t.kind = K_IDENT;
    } else {
        static const char *const two[] = {"<>", "!=", "<=", ">=", "||"};
        for (size_t i = 0; i < sizeof(two) / sizeof(two[0]); i++)
            if (!strncmp(p, two[i], 2)) n = 2;
        if (!n && strchr("=<>+-*/%(),.;", *p)) n = 1;
        if (!n) {
            dm_sql_fail_at(ps, t.line, t.col, "unexpected character '%c'",
                           isprint((unsigned char)*p) ? *p : '?');
            t.kind = K_EOF;
        } else {
            t.kind = K_OP;
        }
    }
    t.len = (uint32_t)n;
    if (t.kind == K_STRING) t.len = (uint32_t)(n - 2);
    if (t.kind == K_QIDENT) t.len = (uint32_t)(n - 2);
    if (t.kind != K_EOF || !ps->failed) advance(ps, t.kind == K_EOF ? 0 : n);
    ps->t = t;
}

bool dm_sql_is_kw(const sql_tok_t *t, const char *kw)
{
    return t->kind == K_IDENT && strlen(kw) == t->len && !strncasecmp(t->p, kw, t->len);
}

bool dm_sql_is_op(const sql_tok_t *t, const char *op)
{
    return t->kind == K_OP && strlen(op) == t->len && !strncmp(t->p, op, t->len);
}

/* ---- helpers ------------------------------------------------------------------------ */

#define KW(kw) dm_sql_is_kw(&ps->t, kw)
#define OP(op) dm_sql_is_op(&ps->t, op)

static const char *describe(const sql_tok_t *t, char *buf, size_t cap)
{
    if (t->kind == K_EOF) return "the end of the query";
    snprintf(buf, cap, "'%.*s'", (int)(t->len > 40 ? 40 : t->len), t->p);
    return buf;
}

static bool expect_fail(sql_parser_t *ps, const char *what)
{
    char b[64];
    return dm_sql_fail_at(ps, ps->t.line, ps->t.col, "expected %s, found %s", what,
                          describe(&ps->t, b, sizeof(b)));
}

static bool accept_kw(sql_parser_t *ps, const char *kw)
{
    if (ps->failed || !KW(kw)) return false;
    dm_sql_next(ps);
    return true;
}

static bool accept_op(sql_parser_t *ps, const char *op)
{
    if (ps->failed || !OP(op)) return false;
    dm_sql_next(ps);
    return true;
}

static bool expect_kw(sql_parser_t *ps, const char *kw)
{
    if (accept_kw(ps, kw)) return true;
    char w[40];
    snprintf(w, sizeof(w), "%s", kw);
    return ps->failed ? false : expect_fail(ps, w);
}

static bool expect_op(sql_parser_t *ps, const char *op)
{
    if (accept_op(ps, op)) return true;
    char w[16];
    snprintf(w, sizeof(w), "'%s'", op);
    return ps->failed ? false : expect_fail(ps, w);
}

/* Words that end an expression or a FROM item, so never an implicit alias. */
static bool reserved(const sql_tok_t *t)
{
    static const char *const words[] = {
        "select",  "from", "where", "group", "having", "union", "order",   "limit",
        "join",    "left", "right", "full",  "inner",  "cross", "outer",   "on",
        "for",     "as",   "and",   "or",    "not",    "is",    "in",      "like",
        "between", "case", "when",  "then",  "else",   "end",   "by",      "natural",
        "window",  "with", "null",  "true",  "false",  "all",   "distinct"};
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (dm_sql_is_kw(t, words[i])) return true;
    return false;
}

const char *dm_sql_parse_name(sql_parser_t *ps, const char *what)
{
    if (ps->failed) return NULL;
    if (ps->t.kind == K_QIDENT || (ps->t.kind == K_IDENT && !reserved(&ps->t))) {
        const char *s = dm_arena_strndup(ps->arena, ps->t.p, ps->t.len);
        dm_sql_next(ps);
        return s;
    }
    expect_fail(ps, what);
    return NULL;
}

static sql_expr_t *node(sql_parser_t *ps, sql_xkind_t kind, const sql_tok_t *at)
{
    sql_expr_t *e = dm_arena_calloc(ps->arena, 1, sizeof(*e));
    e->kind = kind;
    e->line = at->line;
    e->col = at->col;
    e->off = at->off;
    return e;
}

/* Appends to an array in the arena: capacity doubles at 4, 8, 16, … (old
 * copies are left to the arena). */
static void *grow(sql_parser_t *ps, void *arr, int n, size_t size)
{
    size_t cap = n ? (size_t)n * 2 : 4;
    void *a = dm_arena_calloc(ps->arena, cap, size);
    if (n) memcpy(a, arr, (size_t)n * size);
    return a;
}

#define PUSH(ps, arr, n, v)                                                                        \
    do {                                                                                           \
        if ((n) == 0 || ((n) >= 4 && ((n) & ((n)-1)) == 0))                                        \
            (arr) = grow((ps), (arr), (n), sizeof(*(arr)));                                        \
        (arr)[(n)++] = (v);                                                                        \
    } while (0)

/* ---- expressions -------------------------------------------------------------------- */

static sql_expr_t *parse_expr(sql_parser_t *ps);
static sql_expr_t *parse_additive(sql_parser_t *ps);

/* INTERVAL '5' MINUTE, INTERVAL '5 minutes', INTERVAL '1.5' SECOND: milliseconds. */
static bool unit_ms(const char *u, size_t len, int64_t *ms)
{
    static const struct {
        const char *name;
        int64_t ms;
    } units[] = {{"millisecond", 1}, {"second", 1000},  {"minute", 60000},
                 {"hour", 3600000},  {"day", 86400000}, {"ms", 1}};
    if (len > 1 && (u[len - 1] == 's' || u[len - 1] == 'S') && len != 2) len--;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (strlen(units[i].name) == len && !strncasecmp(u, units[i].name, len)) {
            *ms = units[i].ms;
            return true;
        }
    return false;
}

static sql_expr_t *parse_interval(sql_parser_t *ps, const sql_tok_t *at)
{
    sql_tok_t lit = ps->t;
    if (lit.kind != K_STRING && lit.kind != K_INT) {
        expect_fail(ps, "a quoted number after INTERVAL ('5')");
        return NULL;
    }
    dm_sql_next(ps);
    char num[64];
    snprintf(num, sizeof(num), "%.*s", (int)(lit.len < 63 ? lit.len : 63), lit.p);
    char *end;
    double v = strtod(num, &end);
    while (*end == ' ')
        end++;
    int64_t unit = 0;
    if (*end) { /* '5 minutes' */
        if (!unit_ms(end, strlen(end), &unit)) {
            dm_sql_fail_at(ps, lit.line, lit.col,
                           "'%s' is not an interval (a number, then MILLISECOND, SECOND, MINUTE, "
                           "HOUR or DAY)",
                           num);
            return NULL;
        }
    } else {
        if (end == num) {
            dm_sql_fail_at(ps, lit.line, lit.col, "'%s' is not a number", num);
            return NULL;
        }
        if (ps->t.kind != K_IDENT || !unit_ms(ps->t.p, ps->t.len, &unit)) {
            expect_fail(ps, "an interval unit (MILLISECOND, SECOND, MINUTE, HOUR or DAY)");
            return NULL;
        }
        dm_sql_next(ps);
    }
    double ms = v * (double)unit;
    if (ms > 9.2e18 || ms < -9.2e18) {
        dm_sql_fail_at(ps, lit.line, lit.col, "interval '%s' is too long", num);
        return NULL;
    }
    sql_expr_t *e = node(ps, X_INTERVAL, at);
    e->ms = (int64_t)ms;
    return e;
}

/* SQL type names → the engine's (boolean, long, double, string, timestamp). */
static const char *parse_type(sql_parser_t *ps)
{
    static const struct {
        const char *sql, *engine;
    } types[] = {{"boolean", "boolean"},
                 {"bool", "boolean"},
                 {"tinyint", "long"},
                 {"smallint", "long"},
                 {"int", "long"},
                 {"integer", "long"},
                 {"bigint", "long"},
                 {"long", "long"},
                 {"float", "double"},
                 {"real", "double"},
                 {"double", "double"},
                 {"decimal", "double"},
                 {"numeric", "double"},
                 {"varchar", "string"},
                 {"char", "string"},
                 {"string", "string"},
                 {"text", "string"},
                 {"timestamp", "timestamp"},
                 {"timestamp_ltz", "timestamp"}};
    sql_tok_t t = ps->t;
    if (t.kind != K_IDENT) {
        expect_fail(ps, "a type name");
        return NULL;
    }
    const char *engine = NULL;
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (dm_sql_is_kw(&t, types[i].sql)) engine = types[i].engine;
    if (!engine) {
        dm_sql_fail_at(ps, t.line, t.col,
                       "unknown type '%.*s' (BOOLEAN, INT, BIGINT, DOUBLE, DECIMAL, VARCHAR, "
                       "STRING, TIMESTAMP)",
                       (int)t.len, t.p);
        return NULL;
    }
    dm_sql_next(ps);
    if (dm_sql_is_kw(&t, "double")) accept_kw(ps, "precision");
    if (accept_op(ps, "(")) { /* VARCHAR(10), DECIMAL(10, 2), TIMESTAMP(3) */
        do {
            if (ps->t.kind != K_INT) {
                expect_fail(ps, "a number");
                return NULL;
            }
            dm_sql_next(ps);
        } while (accept_op(ps, ","));
        if (!expect_op(ps, ")")) return NULL;
    }
    if (accept_kw(ps, "with")) { /* TIMESTAMP WITH LOCAL TIME ZONE */
        accept_kw(ps, "local");
        if (!expect_kw(ps, "time") || !expect_kw(ps, "zone")) return NULL;
    }
    return engine;
}

static sql_expr_t *parse_case(sql_parser_t *ps, const sql_tok_t *at)
{
    sql_expr_t *e = node(ps, X_CASE, at);
    if (!KW("when")) e->a = parse_expr(ps);
    while (!ps->failed && accept_kw(ps, "when")) {
        sql_expr_t *w = parse_expr(ps);
        if (!expect_kw(ps, "then")) return NULL;
        sql_expr_t *v = parse_expr(ps);
        PUSH(ps, e->args, e->n_args, w);
        PUSH(ps, e->args, e->n_args, v);
    }
    if (!ps->failed && !e->n_args) {
        expect_fail(ps, "WHEN");
        return NULL;
    }
    if (accept_kw(ps, "else")) e->c = parse_expr(ps);
    if (!expect_kw(ps, "end")) return NULL;
    return ps->failed ? NULL : e;
}

static sql_expr_t *parse_primary(sql_parser_t *ps)
{
    if (ps->failed) return NULL;
    sql_tok_t t = ps->t;
    switch (t.kind) {
    case K_INT:
    case K_FLOAT: {
        sql_expr_t *e = node(ps, X_LIT, &t);
        e->s = dm_arena_strndup(ps->arena, t.p, t.len);
        dm_sql_next(ps);
        return e;
    }
    case K_STRING: {
        sql_expr_t *e = node(ps, X_LIT, &t);
        e->s = dm_arena_printf(ps->arena, "'%.*s'", (int)t.len, t.p);
        dm_sql_next(ps);
        return e;
    }
    case K_OP:
        if (accept_op(ps, "(")) {
            if (KW("select")) {
                dm_sql_fail_at(ps, ps->t.line, ps->t.col,
                               "subqueries in expressions are not supported (a stream has no "
                               "end to run them to); hint: join a keyed source instead");
                return NULL;
            }
            sql_expr_t *e = parse_expr(ps);
            return expect_op(ps, ")") ? e : NULL;
        }
        if (OP("*")) {
            sql_expr_t *e = node(ps, X_STAR, &t);
            dm_sql_next(ps);
            return e;
        }
        expect_fail(ps, "an expression");
        return NULL;
    case K_IDENT:
        if (dm_sql_is_kw(&t, "null") || dm_sql_is_kw(&t, "true") || dm_sql_is_kw(&t, "false")) {
            sql_expr_t *e = node(ps, X_LIT, &t);
            e->s = dm_arena_strndup(ps->arena, t.p, t.len);
            for (char *c = (char *)e->s; *c; c++)
                *c = (char)toupper((unsigned char)*c);
            dm_sql_next(ps);
            return e;
        }
        if (dm_sql_is_kw(&t, "case")) {
            dm_sql_next(ps);
            return parse_case(ps, &t);
        }
        if (dm_sql_is_kw(&t, "interval")) {
            dm_sql_next(ps);
            return parse_interval(ps, &t);
        }
        if (dm_sql_is_kw(&t, "current_timestamp") || dm_sql_is_kw(&t, "localtimestamp")) {
            dm_sql_next(ps);
            sql_expr_t *e = node(ps, X_FUNC, &t);
            e->s = "now";
            if (accept_op(ps, "(") && !expect_op(ps, ")")) return NULL;
            return e;
        }
        if (dm_sql_is_kw(&t, "timestamp")) {
            dm_sql_next(ps);
            if (ps->t.kind != K_STRING) {
                expect_fail(ps, "a quoted timestamp ('2024-01-01 00:00:00')");
                return NULL;
            }
            sql_expr_t *e = node(ps, X_TIMESTAMP, &t);
            e->s = dm_arena_printf(ps->arena, "'%.*s'", (int)ps->t.len, ps->t.p);
            dm_sql_next(ps);
            return e;
        }
        if (dm_sql_is_kw(&t, "cast")) {
            dm_sql_next(ps);
            if (!expect_op(ps, "(")) return NULL;
            sql_expr_t *e = node(ps, X_CAST, &t);
            e->a = parse_expr(ps);
            if (!expect_kw(ps, "as")) return NULL;
            e->s = parse_type(ps);
            return expect_op(ps, ")") ? e : NULL;
        }
        if (reserved(&t)) {
            expect_fail(ps, "an expression");
            return NULL;
        }
        __attribute__((fallthrough)); /* a name */
    case K_QIDENT: {
        sql_expr_t *e = node(ps, X_COL, &t);
        const char *first = dm_arena_strndup(ps->arena, t.p, t.len);
        dm_sql_next(ps);
        if (t.kind == K_IDENT && OP("(")) { /* a function call */
            dm_sql_next(ps);
            e->kind = X_FUNC;
            char *lower = (char *)first;
            for (char *c = lower; *c; c++)
                *c = (char)tolower((unsigned char)*c);
            e->s = lower;
            if (accept_op(ps, ")")) return e;
            if (OP("*")) {
                dm_sql_next(ps);
                e->star = true;
                return expect_op(ps, ")") ? e : NULL;
            }
            if (accept_kw(ps, "distinct"))
                e->distinct = true;
            else
                accept_kw(ps, "all");
            do {
                sql_expr_t *a = parse_expr(ps);
                if (!a) return NULL;
                PUSH(ps, e->args, e->n_args, a);
            } while (accept_op(ps, ","));
            return expect_op(ps, ")") ? e : NULL;
        }
        PUSH(ps, e->parts, e->n_parts, first);
        while (!ps->failed && OP(".")) {
            dm_sql_next(ps);
            if (OP("*")) {
                dm_sql_next(ps);
                e->kind = X_STAR;
                return e;
            }
            if (ps->t.kind != K_IDENT && ps->t.kind != K_QIDENT) {
                expect_fail(ps, "a field name after '.'");
                return NULL;
            }
            PUSH(ps, e->parts, e->n_parts, dm_arena_strndup(ps->arena, ps->t.p, ps->t.len));
            dm_sql_next(ps);
        }
        return e;
    }
    case K_EOF: break;
    }
    expect_fail(ps, "an expression");
    return NULL;
}

static sql_expr_t *binary(sql_parser_t *ps, const sql_tok_t *at, const char *op, sql_expr_t *a,
                          sql_expr_t *b)
{
    if (!a || !b) return NULL;
    sql_expr_t *e = node(ps, X_BIN, at);
    e->op = op;
    e->a = a;
    e->b = b;
    return e;
}

static sql_expr_t *parse_unary(sql_parser_t *ps)
{
    sql_tok_t t = ps->t;
    if (OP("-") || OP("+")) {
        dm_sql_next(ps);
        if (++ps->depth > 200) {
            ps->depth = 0;
            dm_sql_fail_at(ps, t.line, t.col, "expression nested too deeply");
            return NULL;
        }
        sql_expr_t *a = parse_unary(ps);
        ps->depth--;
        if (!a || dm_sql_is_op(&t, "+")) return a;
        sql_expr_t *e = node(ps, X_UNARY, &t);
        e->op = "-";
        e->a = a;
        return e;
    }
    return parse_primary(ps);
}

static sql_expr_t *parse_mul(sql_parser_t *ps)
{
    sql_expr_t *a = parse_unary(ps);
    while (a && !ps->failed && (OP("*") || OP("/") || OP("%"))) {
        sql_tok_t t = ps->t;
        const char *op = OP("*") ? "*" : OP("/") ? "/" : "%";
        dm_sql_next(ps);
        a = binary(ps, &t, op, a, parse_unary(ps));
    }
    return a;
}

static sql_expr_t *parse_additive(sql_parser_t *ps)
{
    sql_expr_t *a = parse_mul(ps);
    while (a && !ps->failed && (OP("+") || OP("-") || OP("||"))) {
        sql_tok_t t = ps->t;
        const char *op = OP("+") ? "+" : OP("-") ? "-" : "||";
        dm_sql_next(ps);
        a = binary(ps, &t, op, a, parse_mul(ps));
    }
    return a;
}

static sql_expr_t *parse_compare(sql_parser_t *ps)
{
    sql_expr_t *a = parse_additive(ps);
    if (!a || ps->failed) return NULL;
    static const char *const cmp[] = {"=", "<>", "!=", "<=", ">=", "<", ">"};
    for (size_t i = 0; i < sizeof(cmp) / sizeof(cmp[0]); i++)
        if (OP(cmp[i])) {
            sql_tok_t t = ps->t;
            dm_sql_next(ps);
            return binary(ps, &t, !strcmp(cmp[i], "!=") ? "<>" : cmp[i], a, parse_additive(ps));
        }
    sql_tok_t t = ps->t;
    if (accept_kw(ps, "is")) {
        sql_expr_t *e = node(ps, X_ISNULL, &t);
        e->not = accept_kw(ps, "not");
        if (!expect_kw(ps, "null")) return NULL;
        e->a = a;
        return e;
    }
    bool not = false;
    if (KW("not")) {
        dm_sql_next(ps);
        not = true;
        if (!KW("in") && !KW("like") && !KW("between")) {
            expect_fail(ps, "IN, LIKE or BETWEEN after NOT");
            return NULL;
        }
    }
    t = ps->t;
    if (accept_kw(ps, "in")) {
        sql_expr_t *e = node(ps, X_IN, &t);
        e->a = a;
        e->not = not ;
        if (!expect_op(ps, "(")) return NULL;
        if (KW("select")) {
            dm_sql_fail_at(ps, ps->t.line, ps->t.col,
                           "IN (SELECT …) is not supported on streams; hint: join a keyed "
                           "source");
            return NULL;
        }
        do {
            sql_expr_t *x = parse_expr(ps);
            if (!x) return NULL;
            PUSH(ps, e->args, e->n_args, x);
        } while (accept_op(ps, ","));
        return expect_op(ps, ")") ? e : NULL;
    }
    if (accept_kw(ps, "like")) {
        sql_expr_t *e = node(ps, X_LIKE, &t);
        e->a = a;
        e->not = not ;
        e->b = parse_additive(ps);
        return e->b ? e : NULL;
    }
    if (accept_kw(ps, "between")) {
        sql_expr_t *e = node(ps, X_BETWEEN, &t);
        e->a = a;
        e->not = not ;
        accept_kw(ps, "asymmetric");
        e->b = parse_additive(ps);
        if (!expect_kw(ps, "and")) return NULL;
        e->c = parse_additive(ps);
        return e->b && e->c ? e : NULL;
    }
    return a;
}

static sql_expr_t *parse_not(sql_parser_t *ps)
{
    sql_tok_t t = ps->t;
    if (accept_kw(ps, "not")) {
        if (++ps->depth > 200) {
            ps->depth = 0;
            dm_sql_fail_at(ps, t.line, t.col, "expression nested too deeply");
            return NULL;
        }
        sql_expr_t *a = parse_not(ps);
        ps->depth--;
        if (!a) return NULL;
        sql_expr_t *e = node(ps, X_UNARY, &t);
        e->op = "NOT";
        e->a = a;
        return e;
    }
    return parse_compare(ps);
}

static sql_expr_t *parse_and(sql_parser_t *ps)
{
    sql_expr_t *a = parse_not(ps);
    while (a && !ps->failed && KW("and")) {
        sql_tok_t t = ps->t;
        dm_sql_next(ps);
        a = binary(ps, &t, "AND", a, parse_not(ps));
    }
    return a;
}

static sql_expr_t *parse_expr(sql_parser_t *ps)
{
    if (ps->failed) return NULL;
    if (++ps->depth > 100) {
        ps->depth = 0;
        dm_sql_fail_at(ps, ps->t.line, ps->t.col, "expression nested too deeply (100 levels)");
        return NULL;
    }
    sql_expr_t *a = parse_and(ps);
    while (a && !ps->failed && KW("or")) {
        sql_tok_t t = ps->t;
        dm_sql_next(ps);
        a = binary(ps, &t, "OR", a, parse_and(ps));
    }
    ps->depth--;
    return ps->failed ? NULL : a;
}

/* ---- FROM ---------------------------------------------------------------------------- */

static bool parse_alias(sql_parser_t *ps, const char **alias)
{
    if (accept_kw(ps, "as")) {
        *alias = dm_sql_parse_name(ps, "a name after AS");
        return *alias != NULL;
    }
    if (ps->t.kind == K_QIDENT || (ps->t.kind == K_IDENT && !reserved(&ps->t)))
        *alias = dm_sql_parse_name(ps, "a name");
    return !ps->failed;
}

static bool parse_interval_arg(sql_parser_t *ps, int64_t *ms, const char *what)
{
    sql_tok_t t = ps->t;
    if (!accept_kw(ps, "interval")) return expect_fail(ps, what);
    sql_expr_t *e = parse_interval(ps, &t);
    if (!e) return false;
    if (e->ms <= 0) return dm_sql_fail_at(ps, t.line, t.col, "%s must be positive", what);
    *ms = e->ms;
    return true;
}

/* TABLE(TUMBLE(TABLE s, DESCRIPTOR(ts), INTERVAL …)) after "TABLE(". */
static bool parse_window(sql_parser_t *ps, sql_from_t *f)
{
    sql_tok_t t = ps->t;
    if (accept_kw(ps, "tumble"))
        f->window = W_TUMBLE;
    else if (accept_kw(ps, "hop"))
        f->window = W_HOP;
    else if (accept_kw(ps, "session"))
        f->window = W_SESSION;
    else if (ps->t.kind == K_IDENT && !reserved(&ps->t))
        return dm_sql_fail_at(ps, t.line, t.col,
                              "unknown table function '%.*s' (TUMBLE, HOP or SESSION)", (int)t.len,
                              t.p);
    else
        return expect_fail(ps, "TUMBLE, HOP or SESSION");
    if (!expect_op(ps, "(")) return false;
    if (!expect_kw(ps, "table")) return false;
    f->line = ps->t.line;
    f->col = ps->t.col;
    if (!(f->name = dm_sql_parse_name(ps, "a source name"))) return false;
    if (f->window == W_SESSION && accept_kw(ps, "partition")) { /* Flink's PARTITION BY keys */
        if (!expect_kw(ps, "by")) return false;
        do {
            if (!parse_expr(ps)) return false;
        } while (accept_op(ps, ","));
    }
    if (!expect_op(ps, ",")) return false;
    if (!expect_kw(ps, "descriptor") || !expect_op(ps, "(")) return false;
    f->time = parse_primary(ps);
    if (!f->time) return false;
    if (f->time->kind != X_COL)
        return dm_sql_fail_at(ps, f->time->line, f->time->col,
                              "DESCRIPTOR names the event-time column");
    if (!expect_op(ps, ")") || !expect_op(ps, ",")) return false;
    if (f->window == W_TUMBLE) {
        if (!parse_interval_arg(ps, &f->size, "the window size (INTERVAL '1' MINUTE)"))
            return false;
    } else if (f->window == W_HOP) {
        if (!parse_interval_arg(ps, &f->slide, "the slide (INTERVAL '10' SECOND)")) return false;
        if (!expect_op(ps, ",")) return false;
        if (!parse_interval_arg(ps, &f->size, "the window size (INTERVAL '1' MINUTE)"))
            return false;
    } else if (!parse_interval_arg(ps, &f->gap, "the session gap (INTERVAL '5' MINUTE)")) {
        return false;
    }
    return expect_op(ps, ")") && expect_op(ps, ")");
}

static bool parse_from_item(sql_parser_t *ps, sql_from_t *f)
{
    f->line = ps->t.line;
    f->col = ps->t.col;
    if (accept_kw(ps, "table")) {
        if (!expect_op(ps, "(") || !parse_window(ps, f)) return false;
    } else if (accept_op(ps, "(")) {
        if (!KW("select")) return expect_fail(ps, "SELECT");
        f->sub = dm_sql_parse_query(ps);
        if (!f->sub || !expect_op(ps, ")")) return false;
    } else if (KW("lateral") || KW("unnest")) {
        return dm_sql_fail_at(ps, f->line, f->col, "%.*s is not supported", (int)ps->t.len,
                              ps->t.p);
    } else if (!(f->name = dm_sql_parse_name(ps, "a source name"))) {
        return false;
    }
    return parse_alias(ps, &f->alias);
}

static bool parse_join(sql_parser_t *ps, sql_join_t *j)
{
    j->line = ps->t.line;
    j->col = ps->t.col;
    if (KW("right") || KW("full") || KW("cross") || KW("natural"))
        return dm_sql_fail_at(ps, j->line, j->col,
                              "%.*s JOIN is not supported on streams; hint: a [LEFT] JOIN of a "
                              "keyed source on its key (a lookup join), or an interval join",
                              (int)ps->t.len, ps->t.p);
    if (accept_kw(ps, "left")) {
        j->left = true;
        accept_kw(ps, "outer");
    } else {
        accept_kw(ps, "inner");
    }
    if (!expect_kw(ps, "join") || !parse_from_item(ps, &j->item)) return false;
    if (j->item.sub || j->item.window)
        return dm_sql_fail_at(ps, j->item.line, j->item.col,
                              "a join's right side is a source (by name)");
    if (accept_kw(ps, "for")) { /* FOR SYSTEM_TIME AS OF p.proc_time */
        if (!expect_kw(ps, "system_time") || !expect_kw(ps, "as") || !expect_kw(ps, "of"))
            return false;
        if (!(j->system_time = parse_additive(ps))) return false;
        if (!j->item.alias && !parse_alias(ps, &j->item.alias)) return false;
    }
    if (!expect_kw(ps, "on")) return false;
    j->on = parse_expr(ps);
    return j->on != NULL;
}

/* ---- SELECT ------------------------------------------------------------------------- */

static sql_select_t *parse_select(sql_parser_t *ps)
{
    sql_select_t *s = dm_arena_calloc(ps->arena, 1, sizeof(*s));
    s->line = ps->t.line;
    s->col = ps->t.col;
    if (!expect_kw(ps, "select")) return NULL;
    if (KW("distinct")) {
        dm_sql_fail_at(ps, ps->t.line, ps->t.col,
                       "SELECT DISTINCT over a stream keeps every value forever; hint: count "
                       "distinct values per window (COUNT(DISTINCT x) with TUMBLE)");
        return NULL;
    }
    accept_kw(ps, "all");
    do {
        sql_item_t it = {0};
        if (!(it.e = parse_expr(ps))) return NULL;
        if (it.e->kind == X_STAR && accept_kw(ps, "as"))
            return dm_sql_fail_at(ps, ps->t.line, ps->t.col, "* cannot be renamed") ? NULL : NULL;
        if (it.e->kind != X_STAR && !parse_alias(ps, &it.alias)) return NULL;
        PUSH(ps, s->items, s->n_items, it);
    } while (accept_op(ps, ","));
    if (!expect_kw(ps, "from")) return NULL;
    if (!parse_from_item(ps, &s->from)) return NULL;
    if (OP(","))
        return dm_sql_fail_at(ps, ps->t.line, ps->t.col,
                              "FROM a, b is a regular join of streams and is not supported; "
                              "hint: JOIN a keyed source ON its key")
                   ? NULL
                   : NULL;
    while (!ps->failed && (KW("join") || KW("left") || KW("inner") || KW("right") || KW("full") ||
                           KW("cross") || KW("natural"))) {
        sql_join_t j = {0};
        if (!parse_join(ps, &j)) return NULL;
        PUSH(ps, s->joins, s->n_joins, j);
    }
    if (accept_kw(ps, "where") && !(s->where = parse_expr(ps))) return NULL;
    if (accept_kw(ps, "group")) {
        if (!expect_kw(ps, "by")) return NULL;
        do {
            sql_expr_t *g = parse_expr(ps);
            if (!g) return NULL;
            PUSH(ps, s->group, s->n_group, g);
        } while (accept_op(ps, ","));
    }
    if (accept_kw(ps, "having") && !(s->having = parse_expr(ps))) return NULL;
    return ps->failed ? NULL : s;
}

sql_query_t *dm_sql_parse_query(sql_parser_t *ps)
{
    sql_query_t *q = dm_arena_calloc(ps->arena, 1, sizeof(*q));
    for (;;) {
        sql_select_t *s = parse_select(ps);
        if (!s) return NULL;
        PUSH(ps, q->branches, q->n_branches, s);
        sql_tok_t t = ps->t;
        if (!accept_kw(ps, "union")) break;
        if (!accept_kw(ps, "all")) {
            dm_sql_fail_at(ps, t.line, t.col,
                           "UNION without ALL removes duplicates, which on a stream means "
                           "keeping every record forever; hint: UNION ALL");
            return NULL;
        }
    }
    if (KW("order")) {
        dm_sql_fail_at(ps, ps->t.line, ps->t.col,
                       "ORDER BY on a stream would wait for its end, which never comes; hint: "
                       "leave it out (records keep their order per key), or sort in the sink");
        return NULL;
    }
    if (KW("limit") || KW("fetch")) {
        dm_sql_fail_at(ps, ps->t.line, ps->t.col,
                       "LIMIT is not part of a continuous query; hint: `datamesh sql -n N` "
                       "stops after N rows");
        return NULL;
    }
    if (KW("intersect") || KW("except") || KW("minus")) {
        dm_sql_fail_at(ps, ps->t.line, ps->t.col,
                       "%.*s over streams is not supported (only UNION ALL)", (int)ps->t.len,
                       ps->t.p);
        return NULL;
    }
    return ps->failed ? NULL : q;
}
