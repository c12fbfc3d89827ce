/* engine/expr_compile.c — lexer, parser and type checker for expressions. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "engine/expr_internal.h"

/* ---- lexer -------------------------------------------------------------------- */

typedef enum {
    T_EOF,
    T_INT,
    T_FLOAT,
    T_STRING,
    T_IDENT,
    T_LPAREN,
    T_RPAREN,
    T_COMMA,
    T_DOT,
    T_OP, /* = != <> < <= > >= + - * / % || */
} tok_kind_t;

typedef struct tok {
    tok_kind_t kind;
    const char *p; /* start in the text */
    size_t len;
    int col;
} tok_t;

typedef struct parser {
    dm_expr_t *e;
    const dm_avro_node_t *record;
    const char *text;
    const char *cur;
    tok_t t; /* current token */
    dm_error_t *err;
    bool failed;
    /* paths read, gathered for projection */
    const char **paths;
    size_t n_paths, cap_paths;
} parser_t;

static void fail(parser_t *ps, int col, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void fail(parser_t *ps, int col, const char *fmt, ...)
{
    if (ps->failed) return;
    ps->failed = true;
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    dm_error_set(ps->err, DM_ERR_INVALID, "expression '%s': column %d: %s", ps->text, col, msg);
}

static void next(parser_t *ps)
{
    const char *p = ps->cur;
    while (isspace((unsigned char)*p))
        p++;
    tok_t t = {.p = p, .col = (int)(p - ps->text) + 1};
    if (!*p) {
        t.kind = T_EOF;
    } else if (isdigit((unsigned char)*p) || (*p == '.' && isdigit((unsigned char)p[1]))) {
        const char *q = p;
        bool is_float = false;
        while (isdigit((unsigned char)*q))
            q++;
        if (*q == '.' && isdigit((unsigned char)q[1])) {
            is_float = true;
            q++;
            while (isdigit((unsigned char)*q))
                q++;
        }
        if ((*q == 'e' || *q == 'E') &&
            (isdigit((unsigned char)q[1]) ||
             ((q[1] == '+' || q[1] == '-') && isdigit((unsigned char)q[2])))) {
            is_float = true;
            q += 2;
            while (isdigit((unsigned char)*q))
                q++;
        }
        t.kind = is_float ? T_FLOAT : T_INT;
        t.len = (size_t)(q - p);
    } else if (*p == '\'') {
        const char *q = p + 1;
        for (;;) {
            if (!*q) {
                fail(ps, t.col, "string literal is not closed");
                break;
            }
            if (*q == '\'' && q[1] == '\'') {
                q += 2;
                continue;
            }
            if (*q == '\'') {
                q++;
                break;
            }
            q++;
        }
        t.kind = T_STRING;
        t.len = (size_t)(q - p);
    } else if (isalpha((unsigned char)*p) || *p == '_' || *p == '`' || *p == '"') {
        const char *q = p;
        if (*p == '`' || *p == '"') { /* quoted identifier */
            char close = *p;
            q = strchr(p + 1, close);
            if (!q) {
                fail(ps, t.col, "quoted name is not closed");
                q = p + strlen(p) - 1;
            }
            q++;
        } else {
            while (isalnum((unsigned char)*q) || *q == '_')
                q++;
        }
        t.kind = T_IDENT;
        t.len = (size_t)(q - p);
    } else {
        static const char *const ops[] = {"!=", "<>", "<=", ">=", "||", "=", "<",
                                          ">",  "+",  "-",  "*",  "/",  "%", NULL};
        t.len = 1;
        switch (*p) {
        case '(': t.kind = T_LPAREN; break;
        case ')': t.kind = T_RPAREN; break;
        case ',': t.kind = T_COMMA; break;
        case '.': t.kind = T_DOT; break;
        default:
            t.kind = T_EOF;
            for (int i = 0; ops[i]; i++)
                if (!strncmp(p, ops[i], strlen(ops[i]))) {
                    t.kind = T_OP;
                    t.len = strlen(ops[i]);
                    break;
                }
            if (t.kind == T_EOF) fail(ps, t.col, "unexpected character '%c'", *p);
        }
    }
    ps->cur = t.p + t.len;
    ps->t = t;
}

static bool is_kw(const tok_t *t, const char *kw)
{
    return t->kind == T_IDENT && t->len == strlen(kw) && !strncasecmp(t->p, kw, t->len);
}

static bool is_op(const tok_t *t, const char *op)
{
    return t->kind == T_OP && t->len == strlen(op) && !strncmp(t->p, op, t->len);
}

static bool accept_kw(parser_t *ps, const char *kw)
{
    if (!is_kw(&ps->t, kw)) return false;
    next(ps);
    return true;
}

static void expect_kw(parser_t *ps, const char *kw)
{
    if (!accept_kw(ps, kw)) fail(ps, ps->t.col, "expected %s", kw);
}

static void expect(parser_t *ps, tok_kind_t k, const char *what)
{
    if (ps->t.kind != k)
        fail(ps, ps->t.col, "expected %s", what);
    else
        next(ps);
}

/* ---- nodes ---------------------------------------------------------------------- */

static node_t *mk(parser_t *ps, node_kind_t kind, int col)
{
    node_t *n = dm_arena_calloc(&ps->e->arena, 1, sizeof(*n));
    if (!n) {
        fail(ps, col, "out of memory");
        return NULL;
    }
    n->kind = kind;
    n->col = col;
    return n;
}

static void add_kid(parser_t *ps, node_t *n, node_t *kid)
{
    if (!n || !kid) return;
    node_t **k = dm_arena_alloc(&ps->e->arena, (n->n_kids + 1) * sizeof(*k));
    if (!k) return fail(ps, n->col, "out of memory");
    if (n->n_kids) memcpy(k, n->kids, n->n_kids * sizeof(*k));
    k[n->n_kids++] = kid;
    n->kids = k;
}

static bool numeric(dm_expr_type_t t)
{
    return t == DM_EXPR_LONG || t == DM_EXPR_DOUBLE;
}

const char *dm_expr_type_name(dm_expr_type_t t)
{
    switch (t) {
    case DM_EXPR_NULL: return "null";
    case DM_EXPR_BOOL: return "boolean";
    case DM_EXPR_LONG: return "long";
    case DM_EXPR_DOUBLE: return "double";
    case DM_EXPR_STRING: return "string";
    case DM_EXPR_TIMESTAMP: return "timestamp";
    }
    return "?";
}

/* The type two operands meet at, or -1 when they cannot. */
static int unify(dm_expr_type_t a, dm_expr_type_t b)
{
    if (a == DM_EXPR_NULL) return (int)b;
    if (b == DM_EXPR_NULL) return (int)a;
    if (a == b) return (int)a;
    if (numeric(a) && numeric(b)) return DM_EXPR_DOUBLE;
    if ((a == DM_EXPR_TIMESTAMP && b == DM_EXPR_LONG) ||
        (a == DM_EXPR_LONG && b == DM_EXPR_TIMESTAMP))
        return DM_EXPR_TIMESTAMP;
    return -1;
}

/* A string literal compared with a timestamp becomes a timestamp literal. */
static void coerce_literal(parser_t *ps, node_t *lit, dm_expr_type_t want)
{
    if (!lit || lit->kind != N_LIT || lit->type != DM_EXPR_STRING || want != DM_EXPR_TIMESTAMP)
        return;
    int64_t ms;
    if (!dm_expr_parse_timestamp(lit->lit.u.s, lit->lit.len, &ms))
        return fail(ps, lit->col, "'%.*s' is not an ISO-8601 timestamp", (int)lit->lit.len,
                    lit->lit.u.s);
    lit->type = lit->lit.type = DM_EXPR_TIMESTAMP;
    lit->lit.u.l = ms;
}

/* ---- fields ---------------------------------------------------------------------- */

static void add_path(parser_t *ps, const char *path)
{
    for (size_t i = 0; i < ps->n_paths; i++)
        if (!strcmp(ps->paths[i], path)) return;
    if (ps->n_paths == ps->cap_paths) {
        size_t cap = ps->cap_paths ? ps->cap_paths * 2 : 8;
        const char **p = dm_arena_alloc(&ps->e->arena, cap * sizeof(*p));
        if (!p) return fail(ps, 1, "out of memory");
        if (ps->n_paths) memcpy(p, ps->paths, ps->n_paths * sizeof(*p));
        ps->paths = p;
        ps->cap_paths = cap;
    }
    ps->paths[ps->n_paths++] = dm_arena_strdup(&ps->e->arena, path);
}

/* A union of null and one other type reads as that type, nullable. */
static const dm_avro_node_t *unwrap(const dm_avro_node_t *n, bool *nullable, bool *ambiguous)
{
    if (n->type != DM_AVRO_UNION) return n;
    const dm_avro_node_t *other = NULL;
    for (uint32_t i = 0; i < n->n_branches; i++) {
        if (n->branches[i]->type == DM_AVRO_NULL) {
            *nullable = true;
        } else if (other) {
            *ambiguous = true;
        } else {
            other = n->branches[i];
        }
    }
    return other ? other : n->branches[0];
}

/* Resolves a dotted path against the record; fills n's steps, type and conv. */
static void resolve_field(parser_t *ps, node_t *n, const char *path)
{
    uint32_t steps[32];
    uint32_t n_steps = 0;
    const dm_avro_node_t *cur = ps->record;
    bool nullable = false;
    char buf[512];
    snprintf(buf, sizeof(buf), "%s", path);
    char *save = NULL;
    for (char *seg = strtok_r(buf, ".", &save); seg; seg = strtok_r(NULL, ".", &save)) {
        bool ambiguous = false;
        cur = unwrap(cur, &nullable, &ambiguous);
        if (cur->type != DM_AVRO_RECORD) {
            return fail(ps, n->col, "'%s': '%s' is not inside a record (%s)", path, seg,
                        dm_avro_type_name(cur->type));
        }
        int idx = dm_avro_field_index(cur, seg);
        if (idx < 0) {
            char names[300] = "";
            size_t o = 0;
            for (uint32_t i = 0; i < cur->n_fields && o < sizeof(names); i++)
                o += (size_t)snprintf(names + o, sizeof(names) - o, "%s%s", i ? ", " : "",
                                      cur->fields[i].name);
            return fail(ps, n->col, "no field '%s' in %s (fields: %s)", seg,
                        cur->name ? cur->name : "record", names);
        }
        if (n_steps == 32) return fail(ps, n->col, "'%s' is nested too deep", path);
        steps[n_steps++] = (uint32_t)idx;
        cur = cur->fields[idx].type;
    }
    bool ambiguous = false;
    cur = unwrap(cur, &nullable, &ambiguous);
    if (ambiguous)
        return fail(ps, n->col, "'%s' is a union of several types; CAST is not possible on it",
                    path);
    n->leaf = cur;
    switch (cur->type) {
    case DM_AVRO_BOOLEAN: n->type = DM_EXPR_BOOL, n->conv = CONV_BOOL; break;
    case DM_AVRO_INT:
    case DM_AVRO_LONG:
        n->conv = cur->type == DM_AVRO_INT ? CONV_INT : CONV_LONG;
        n->type = DM_EXPR_LONG;
        if (cur->logical == DM_AVRO_LT_TIMESTAMP_MILLIS ||
            cur->logical == DM_AVRO_LT_LOCAL_TIMESTAMP_MILLIS)
            n->type = DM_EXPR_TIMESTAMP, n->conv = CONV_TS_MILLIS;
        if (cur->logical == DM_AVRO_LT_TIMESTAMP_MICROS ||
            cur->logical == DM_AVRO_LT_LOCAL_TIMESTAMP_MICROS)
            n->type = DM_EXPR_TIMESTAMP, n->conv = CONV_TS_MICROS;
        break;
    case DM_AVRO_FLOAT: n->type = DM_EXPR_DOUBLE, n->conv = CONV_FLOAT; break;
    case DM_AVRO_DOUBLE: n->type = DM_EXPR_DOUBLE, n->conv = CONV_DOUBLE; break;
    case DM_AVRO_STRING: n->type = DM_EXPR_STRING, n->conv = CONV_STRING; break;
    case DM_AVRO_ENUM: n->type = DM_EXPR_STRING, n->conv = CONV_ENUM; break;
    case DM_AVRO_BYTES:
    case DM_AVRO_FIXED:
        if (cur->logical == DM_AVRO_LT_DECIMAL) {
            n->type = DM_EXPR_DOUBLE, n->conv = CONV_DECIMAL;
        } else {
            n->type = DM_EXPR_STRING, n->conv = CONV_STRING;
        }
        break;
    case DM_AVRO_NULL: n->type = DM_EXPR_NULL; break;
    default:
        return fail(ps, n->col, "'%s' is %s %s; name a field inside it", path,
                    cur->type == DM_AVRO_ARRAY ? "an" : "a", dm_avro_type_name(cur->type));
    }
    n->nullable = nullable || cur->type == DM_AVRO_NULL;
    uint32_t *s = dm_arena_memdup(&ps->e->arena, steps, n_steps * sizeof(uint32_t));
    n->steps = s;
    n->n_steps = n_steps;
    add_path(ps, path);
}

/* ---- grammar ---------------------------------------------------------------------- */

static node_t *parse_expr(parser_t *ps);

static node_t *field_node(parser_t *ps, const char *path, int col)
{
    node_t *n = mk(ps, N_FIELD, col);
    if (n) resolve_field(ps, n, path);
    return n;
}

static const struct {
    const char *name;
    func_t fn;
    int min_args, max_args; /* max -1 = any */
} funcs[] = {
    {"lower", F_LOWER, 1, 1},
    {"upper", F_UPPER, 1, 1},
    {"length", F_LENGTH, 1, 1},
    {"char_length", F_LENGTH, 1, 1},
    {"trim", F_TRIM, 1, 1},
    {"ltrim", F_LTRIM, 1, 1},
    {"rtrim", F_RTRIM, 1, 1},
    {"substr", F_SUBSTR, 2, 3},
    {"substring", F_SUBSTR, 2, 3},
    {"concat", F_CONCAT, 1, -1},
    {"replace", F_REPLACE, 3, 3},
    {"starts_with", F_STARTS_WITH, 2, 2},
    {"ends_with", F_ENDS_WITH, 2, 2},
    {"contains", F_CONTAINS, 2, 2},
    {"coalesce", F_COALESCE, 1, -1},
    {"nullif", F_NULLIF, 2, 2},
    {"abs", F_ABS, 1, 1},
    {"round", F_ROUND, 1, 2},
    {"floor", F_FLOOR, 1, 1},
    {"ceil", F_CEIL, 1, 1},
    {"ceiling", F_CEIL, 1, 1},
    {"mod", F_MOD, 2, 2},
    {"greatest", F_GREATEST, 1, -1},
    {"least", F_LEAST, 1, -1},
    {"now", F_NOW, 0, 0},
    {"epoch_ms", F_EPOCH_MS, 1, 1},
    {"op", F_OP, 0, 0},
    {"is_insert", F_IS_INSERT, 0, 0},
    {"is_update", F_IS_UPDATE, 0, 0},
    {"is_delete", F_IS_DELETE, 0, 0},
    {"is_snapshot", F_IS_SNAPSHOT, 0, 0},
    {"changed", F_CHANGED, 1, 1},
};

static void need_type(parser_t *ps, node_t *arg, const char *fname, const char *what, bool ok)
{
    if (arg && !ok)
        fail(ps, arg->col, "%s() needs %s, got %s", fname, what, dm_expr_type_name(arg->type));
}

/* Types a function call once its arguments are parsed. */
static void type_call(parser_t *ps, node_t *n, const char *fname)
{
    node_t **a = n->kids;
    bool any_null = false;
    for (uint32_t i = 0; i < n->n_kids; i++)
        any_null |= a[i]->nullable;
    n->nullable = any_null;
    switch ((func_t)n->op) {
    case F_LOWER:
    case F_UPPER:
    case F_TRIM:
    case F_LTRIM:
    case F_RTRIM:
        need_type(ps, a[0], fname, "a string",
                  a[0]->type == DM_EXPR_STRING || a[0]->type == DM_EXPR_NULL);
        n->type = DM_EXPR_STRING;
        break;
    case F_LENGTH:
        need_type(ps, a[0], fname, "a string",
                  a[0]->type == DM_EXPR_STRING || a[0]->type == DM_EXPR_NULL);
        n->type = DM_EXPR_LONG;
        break;
    case F_SUBSTR:
        need_type(ps, a[0], fname, "a string",
                  a[0]->type == DM_EXPR_STRING || a[0]->type == DM_EXPR_NULL);
        for (uint32_t i = 1; i < n->n_kids; i++)
            need_type(ps, a[i], fname, "integer positions", a[i]->type == DM_EXPR_LONG);
        n->type = DM_EXPR_STRING;
        break;
    case F_CONCAT:
        n->type = DM_EXPR_STRING;
        n->nullable = false; /* NULL arguments are skipped, as in PostgreSQL */
        break;
    case F_REPLACE:
    case F_STARTS_WITH:
    case F_ENDS_WITH:
    case F_CONTAINS:
        for (uint32_t i = 0; i < n->n_kids; i++)
            need_type(ps, a[i], fname, "strings",
                      a[i]->type == DM_EXPR_STRING || a[i]->type == DM_EXPR_NULL);
        n->type = (func_t)n->op == F_REPLACE ? DM_EXPR_STRING : DM_EXPR_BOOL;
        break;
    case F_COALESCE:
    case F_GREATEST:
    case F_LEAST: {
        int t = DM_EXPR_NULL;
        bool all_nullable = true;
        for (uint32_t i = 0; i < n->n_kids; i++) {
            int u = unify((dm_expr_type_t)t, a[i]->type);
            if (u < 0)
                return fail(ps, a[i]->col, "%s() arguments mix %s and %s", fname,
                            dm_expr_type_name((dm_expr_type_t)t), dm_expr_type_name(a[i]->type));
            t = u;
            all_nullable &= a[i]->nullable;
        }
        n->type = (dm_expr_type_t)t;
        n->nullable = (func_t)n->op == F_COALESCE ? all_nullable : any_null;
        break;
    }
    case F_NULLIF:
        if (unify(a[0]->type, a[1]->type) < 0)
            return fail(ps, a[1]->col, "nullif() compares %s with %s",
                        dm_expr_type_name(a[0]->type), dm_expr_type_name(a[1]->type));
        n->type = a[0]->type;
        n->nullable = true;
        break;
    case F_ABS:
    case F_FLOOR:
    case F_CEIL:
        need_type(ps, a[0], fname, "a number", numeric(a[0]->type) || a[0]->type == DM_EXPR_NULL);
        n->type = a[0]->type == DM_EXPR_NULL ? DM_EXPR_LONG : a[0]->type;
        break;
    case F_ROUND:
        need_type(ps, a[0], fname, "a number", numeric(a[0]->type) || a[0]->type == DM_EXPR_NULL);
        if (n->n_kids == 2)
            need_type(ps, a[1], fname, "integer digits", a[1]->type == DM_EXPR_LONG);
        n->type = n->n_kids == 2 ? DM_EXPR_DOUBLE
                                 : (a[0]->type == DM_EXPR_NULL ? DM_EXPR_LONG : a[0]->type);
        break;
    case F_MOD:
        for (uint32_t i = 0; i < 2; i++)
            need_type(ps, a[i], fname, "integers",
                      a[i]->type == DM_EXPR_LONG || a[i]->type == DM_EXPR_NULL);
        n->type = DM_EXPR_LONG;
        break;
    case F_NOW: n->type = DM_EXPR_TIMESTAMP; break;
    case F_EPOCH_MS:
        need_type(ps, a[0], fname, "a timestamp",
                  a[0]->type == DM_EXPR_TIMESTAMP || a[0]->type == DM_EXPR_NULL);
        n->type = DM_EXPR_LONG;
        break;
    case F_OP:
    case F_IS_INSERT:
    case F_IS_UPDATE:
    case F_IS_DELETE:
    case F_IS_SNAPSHOT: {
        /* CDC helpers read the change envelope's op field. */
        node_t *f = field_node(ps, "op", n->col);
        if (ps->failed) {
            ps->failed = false;
            dm_error_clear(ps->err);
            return fail(ps, n->col,
                        "%s() needs a change-event input (a field 'op' with c, u, d, r)", fname);
        }
        if (f->type != DM_EXPR_STRING)
            return fail(ps, n->col, "%s(): field 'op' is %s, not a string", fname,
                        dm_expr_type_name(f->type));
        add_kid(ps, n, f);
        n->type = (func_t)n->op == F_OP ? DM_EXPR_STRING : DM_EXPR_BOOL;
        n->nullable = f->nullable;
        break;
    }
    case F_CHANGED: break; /* typed where it is parsed */
    }
}

static node_t *parse_call(parser_t *ps, const char *name, int col)
{
    int found = -1;
    for (size_t i = 0; i < sizeof(funcs) / sizeof(funcs[0]); i++)
        if (!strcasecmp(funcs[i].name, name)) found = (int)i;
    if (found < 0) {
        fail(ps, col, "unknown function %s()", name);
        return NULL;
    }
    node_t *n = mk(ps, N_CALL, col);
    if (!n) return NULL;
    n->op = funcs[found].fn;
    next(ps); /* ( */
    if (funcs[found].fn == F_CHANGED) {
        /* changed(path): before.path IS DISTINCT FROM after.path */
        if (ps->t.kind != T_IDENT) {
            fail(ps, ps->t.col, "changed() takes a field path");
            return n;
        }
        char path[256] = "";
        size_t o = 0;
        int pcol = ps->t.col;
        for (;;) {
            o += (size_t)snprintf(path + o, sizeof(path) - o, "%s%.*s", o ? "." : "",
                                  (int)ps->t.len, ps->t.p);
            next(ps);
            if (ps->t.kind != T_DOT) break;
            next(ps);
            if (ps->t.kind != T_IDENT) {
                fail(ps, ps->t.col, "expected a field name after '.'");
                return n;
            }
        }
        expect(ps, T_RPAREN, "')'");
        char full[300];
        snprintf(full, sizeof(full), "before.%s", path);
        add_kid(ps, n, field_node(ps, full, pcol));
        snprintf(full, sizeof(full), "after.%s", path);
        add_kid(ps, n, field_node(ps, full, pcol));
        n->type = DM_EXPR_BOOL;
        return n;
    }
    if (ps->t.kind != T_RPAREN) {
        for (;;) {
            add_kid(ps, n, parse_expr(ps));
            if (ps->failed) return n;
            if (ps->t.kind != T_COMMA) break;
            next(ps);
        }
    }
    expect(ps, T_RPAREN, "')' after the arguments");
    if (ps->failed) return n;
    int min = funcs[found].min_args, max = funcs[found].max_args;
    if ((int)n->n_kids < min || (max >= 0 && (int)n->n_kids > max)) {
        if (min == max)
            fail(ps, col, "%s() takes %d argument%s, got %u", funcs[found].name, min,
                 min == 1 ? "" : "s", n->n_kids);
        else
            fail(ps, col, "%s() takes %d%s%s arguments, got %u", funcs[found].name, min,
                 max < 0 ? " or more" : " to ", max < 0 ? "" : (max == 2 ? "2" : "3"), n->n_kids);
        return n;
    }
    type_call(ps, n, funcs[found].name);
    return n;
}

static int cast_target(const tok_t *t)
{
    static const struct {
        const char *name;
        dm_expr_type_t type;
    } names[] = {
        {"boolean", DM_EXPR_BOOL},       {"bool", DM_EXPR_BOOL},      {"int", DM_EXPR_LONG},
        {"integer", DM_EXPR_LONG},       {"bigint", DM_EXPR_LONG},    {"long", DM_EXPR_LONG},
        {"double", DM_EXPR_DOUBLE},      {"float", DM_EXPR_DOUBLE},   {"real", DM_EXPR_DOUBLE},
        {"string", DM_EXPR_STRING},      {"varchar", DM_EXPR_STRING}, {"text", DM_EXPR_STRING},
        {"timestamp", DM_EXPR_TIMESTAMP}};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (is_kw(t, names[i].name)) return (int)names[i].type;
    return -1;
}

/* A THEN or ELSE value of CASE: the branches' types must meet. */
static node_t *parse_case_branch(parser_t *ps, int *type, bool *nullable)
{
    node_t *v = parse_expr(ps);
    if (ps->failed) return v;
    int u = unify((dm_expr_type_t)*type, v->type);
    if (u < 0)
        fail(ps, v->col, "CASE branches mix %s and %s", dm_expr_type_name((dm_expr_type_t)*type),
             dm_expr_type_name(v->type));
    *type = u;
    *nullable |= v->nullable;
    return v;
}

static node_t *parse_primary(parser_t *ps)
{
    tok_t t = ps->t;
    if (ps->failed) return NULL;
    switch (t.kind) {
    case T_INT:
    case T_FLOAT: {
        node_t *n = mk(ps, N_LIT, t.col);
        if (!n) return NULL;
        char buf[64];
        snprintf(buf, sizeof(buf), "%.*s", (int)t.len, t.p);
        errno = 0;
        if (t.kind == T_INT) {
            n->type = n->lit.type = DM_EXPR_LONG;
            n->lit.u.l = strtoll(buf, NULL, 10);
            if (errno) fail(ps, t.col, "integer %s is too large", buf);
        } else {
            n->type = n->lit.type = DM_EXPR_DOUBLE;
            n->lit.u.d = strtod(buf, NULL);
        }
        next(ps);
        return n;
    }
    case T_STRING: {
        node_t *n = mk(ps, N_LIT, t.col);
        if (!n) return NULL;
        char *s = dm_arena_alloc(&ps->e->arena, t.len);
        size_t o = 0;
        for (size_t i = 1; i + 1 < t.len; i++) {
            s[o++] = t.p[i];
            if (t.p[i] == '\'') i++; /* '' is one quote */
        }
        n->type = n->lit.type = DM_EXPR_STRING;
        n->lit.u.s = s;
        n->lit.len = (uint32_t)o;
        next(ps);
        return n;
    }
    case T_LPAREN: {
        next(ps);
        node_t *n = parse_expr(ps);
        expect(ps, T_RPAREN, "')'");
        return n;
    }
    case T_IDENT: break;
    default:
        fail(ps, t.col, t.kind == T_EOF ? "expression ends too early" : "expected a value");
        return NULL;
    }
    if (is_kw(&t, "true") || is_kw(&t, "false") || is_kw(&t, "null")) {
        node_t *n = mk(ps, N_LIT, t.col);
        if (!n) return NULL;
        if (is_kw(&t, "null")) {
            n->type = n->lit.type = DM_EXPR_NULL;
            n->lit.null = n->nullable = true;
        } else {
            n->type = n->lit.type = DM_EXPR_BOOL;
            n->lit.u.b = is_kw(&t, "true");
        }
        next(ps);
        return n;
    }
    if (is_kw(&t, "case")) {
        next(ps);
        node_t *n = mk(ps, N_CASE, t.col);
        int type = DM_EXPR_NULL;
        bool has_else = false;
        bool nullable = false;
        while (accept_kw(ps, "when")) {
            node_t *c = parse_expr(ps);
            if (c && c->type != DM_EXPR_BOOL && c->type != DM_EXPR_NULL)
                fail(ps, c->col, "WHEN needs a boolean condition, got %s",
                     dm_expr_type_name(c->type));
            expect_kw(ps, "then");
            node_t *v = parse_case_branch(ps, &type, &nullable);
            if (ps->failed) return n;
            add_kid(ps, n, c);
            add_kid(ps, n, v);
        }
        if (n && !n->n_kids && !ps->failed) fail(ps, ps->t.col, "CASE needs at least one WHEN");
        if (accept_kw(ps, "else")) {
            node_t *v = parse_case_branch(ps, &type, &nullable);
            if (ps->failed) return n;
            add_kid(ps, n, v);
            has_else = true;
        }
        expect_kw(ps, "end");
        if (n) {
            n->type = (dm_expr_type_t)type;
            n->nullable = nullable || !has_else;
            n->negate = has_else; /* marks the trailing ELSE kid */
        }
        return n;
    }
    if (is_kw(&t, "cast")) {
        next(ps);
        expect(ps, T_LPAREN, "'(' after CAST");
        node_t *n = mk(ps, N_CAST, t.col);
        add_kid(ps, n, parse_expr(ps));
        expect_kw(ps, "as");
        int target = cast_target(&ps->t);
        if (target < 0 && !ps->failed)
            fail(ps, ps->t.col,
                 "CAST to unknown type; types: boolean, long, double, string, timestamp");
        next(ps);
        expect(ps, T_RPAREN, "')' after the CAST type");
        if (n && !ps->failed) {
            n->type = (dm_expr_type_t)target;
            n->op = target;
            n->nullable = n->kids[0]->nullable; /* a failed conversion is an error, not NULL */
            coerce_literal(ps, n->kids[0], (dm_expr_type_t)target);
        }
        return n;
    }
    /* identifier: function call or field path */
    char name[256];
    if (t.p[0] == '`' || t.p[0] == '"')
        snprintf(name, sizeof(name), "%.*s", (int)t.len - 2, t.p + 1);
    else
        snprintf(name, sizeof(name), "%.*s", (int)t.len, t.p);
    next(ps);
    if (ps->t.kind == T_LPAREN) return parse_call(ps, name, t.col);
    char path[512];
    snprintf(path, sizeof(path), "%s", name);
    while (ps->t.kind == T_DOT) {
        next(ps);
        if (ps->t.kind != T_IDENT) {
            fail(ps, ps->t.col, "expected a field name after '.'");
            return NULL;
        }
        size_t o = strlen(path);
        if (ps->t.p[0] == '`' || ps->t.p[0] == '"')
            snprintf(path + o, sizeof(path) - o, ".%.*s", (int)ps->t.len - 2, ps->t.p + 1);
        else
            snprintf(path + o, sizeof(path) - o, ".%.*s", (int)ps->t.len, ps->t.p);
        next(ps);
    }
    return field_node(ps, path, t.col);
}

static node_t *parse_unary(parser_t *ps)
{
    if (is_op(&ps->t, "-")) {
        int col = ps->t.col;
        next(ps);
        node_t *a = parse_unary(ps);
        if (!a || ps->failed) return a;
        if (a->kind == N_LIT && a->type == DM_EXPR_LONG) {
            a->lit.u.l = -a->lit.u.l;
            return a;
        }
        if (a->kind == N_LIT && a->type == DM_EXPR_DOUBLE) {
            a->lit.u.d = -a->lit.u.d;
            return a;
        }
        if (!numeric(a->type) && a->type != DM_EXPR_NULL)
            fail(ps, col, "cannot negate %s", dm_expr_type_name(a->type));
        node_t *n = mk(ps, N_NEG, col);
        add_kid(ps, n, a);
        if (n) n->type = a->type, n->nullable = a->nullable;
        return n;
    }
    return parse_primary(ps);
}

static node_t *binary_arith(parser_t *ps, node_t *l, node_t *r, int op, int col)
{
    if (!l || !r || ps->failed) return l;
    node_t *n = mk(ps, N_ARITH, col);
    if (!n) return l;
    n->op = op;
    add_kid(ps, n, l);
    add_kid(ps, n, r);
    n->nullable = l->nullable || r->nullable;
    dm_expr_type_t a = l->type, b = r->type;
    static const char *const names[] = {"+", "-", "*", "/", "%"};
    if (a == DM_EXPR_NULL || b == DM_EXPR_NULL) {
        n->type = a == DM_EXPR_NULL ? b : a;
        if (n->type == DM_EXPR_NULL) n->type = DM_EXPR_LONG;
        n->nullable = true;
    } else if (numeric(a) && numeric(b)) {
        n->type = (a == DM_EXPR_DOUBLE || b == DM_EXPR_DOUBLE) ? DM_EXPR_DOUBLE : DM_EXPR_LONG;
        if (op == OP_MOD && n->type == DM_EXPR_DOUBLE)
            fail(ps, col, "%% needs integers, got %s and %s", dm_expr_type_name(a),
                 dm_expr_type_name(b));
    } else if (a == DM_EXPR_TIMESTAMP && b == DM_EXPR_LONG && (op == OP_ADD || op == OP_SUB)) {
        n->type = DM_EXPR_TIMESTAMP; /* timestamp ± milliseconds */
    } else if (a == DM_EXPR_TIMESTAMP && b == DM_EXPR_TIMESTAMP && op == OP_SUB) {
        n->type = DM_EXPR_LONG; /* difference in milliseconds */
    } else {
        fail(ps, col, "cannot apply '%s' to %s and %s%s", names[op], dm_expr_type_name(a),
             dm_expr_type_name(b),
             a == DM_EXPR_STRING && op == OP_ADD ? " (use || to join strings)" : "");
    }
    return n;
}

static node_t *parse_mul(parser_t *ps)
{
    node_t *l = parse_unary(ps);
    for (;;) {
        int op = is_op(&ps->t, "*")   ? OP_MUL
                 : is_op(&ps->t, "/") ? OP_DIV
                 : is_op(&ps->t, "%") ? OP_MOD
                                      : -1;
        if (op < 0 || ps->failed) return l;
        int col = ps->t.col;
        next(ps);
        l = binary_arith(ps, l, parse_unary(ps), op, col);
    }
}

static node_t *parse_add(parser_t *ps)
{
    node_t *l = parse_mul(ps);
    for (;;) {
        if (ps->failed) return l;
        int col = ps->t.col;
        if (is_op(&ps->t, "||")) {
            next(ps);
            node_t *r = parse_mul(ps);
            node_t *n = mk(ps, N_CONCAT, col);
            add_kid(ps, n, l);
            add_kid(ps, n, r);
            if (n && l && r) n->type = DM_EXPR_STRING, n->nullable = l->nullable || r->nullable;
            l = n;
            continue;
        }
        int op = is_op(&ps->t, "+") ? OP_ADD : is_op(&ps->t, "-") ? OP_SUB : -1;
        if (op < 0) return l;
        next(ps);
        l = binary_arith(ps, l, parse_mul(ps), op, col);
    }
}

static void check_comparable(parser_t *ps, node_t *a, node_t *b, int col)
{
    if (!a || !b || ps->failed) return;
    if (a->type == DM_EXPR_TIMESTAMP) coerce_literal(ps, b, DM_EXPR_TIMESTAMP);
    if (b->type == DM_EXPR_TIMESTAMP) coerce_literal(ps, a, DM_EXPR_TIMESTAMP);
    if (unify(a->type, b->type) < 0)
        fail(ps, col, "cannot compare %s with %s", dm_expr_type_name(a->type),
             dm_expr_type_name(b->type));
}

static node_t *parse_cmp(parser_t *ps)
{
    node_t *l = parse_add(ps);
    if (ps->failed || !l) return l;
    int col = ps->t.col;
    static const struct {
        const char *op;
        cmp_op_t cmp;
    } ops[] = {{"=", OP_EQ},  {"!=", OP_NE}, {"<>", OP_NE}, {"<", OP_LT},
               {"<=", OP_LE}, {">", OP_GT},  {">=", OP_GE}};
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
        if (is_op(&ps->t, ops[i].op)) {
            next(ps);
            node_t *r = parse_add(ps);
            node_t *n = mk(ps, N_CMP, col);
            if (!n || !r) return n;
            n->op = ops[i].cmp;
            check_comparable(ps, l, r, col);
            add_kid(ps, n, l);
            add_kid(ps, n, r);
            n->type = DM_EXPR_BOOL;
            n->nullable = l->nullable || r->nullable;
            return n;
        }
    if (accept_kw(ps, "is")) {
        node_t *n = mk(ps, N_ISNULL, col);
        if (n) n->negate = accept_kw(ps, "not");
        expect_kw(ps, "null");
        add_kid(ps, n, l);
        if (n) n->type = DM_EXPR_BOOL;
        return n;
    }
    bool negate = false;
    if (is_kw(&ps->t, "not")) {
        negate = true;
        next(ps);
        if (!is_kw(&ps->t, "in") && !is_kw(&ps->t, "like") && !is_kw(&ps->t, "between")) {
            fail(ps, ps->t.col, "expected IN, LIKE or BETWEEN after NOT");
            return l;
        }
    }
    if (accept_kw(ps, "in")) {
        node_t *n = mk(ps, N_IN, col);
        if (!n) return l;
        n->negate = negate;
        add_kid(ps, n, l);
        expect(ps, T_LPAREN, "'(' after IN");
        for (;;) {
            node_t *v = parse_expr(ps);
            if (ps->failed) return n;
            check_comparable(ps, l, v, v->col);
            add_kid(ps, n, v);
            n->nullable |= v->nullable;
            if (ps->t.kind != T_COMMA) break;
            next(ps);
        }
        expect(ps, T_RPAREN, "')' after the IN list");
        n->type = DM_EXPR_BOOL;
        n->nullable |= l->nullable;
        return n;
    }
    if (accept_kw(ps, "like")) {
        node_t *n = mk(ps, N_LIKE, col);
        node_t *pat = parse_add(ps);
        if (!n || !pat) return n;
        n->negate = negate;
        if (l->type != DM_EXPR_STRING && l->type != DM_EXPR_NULL)
            fail(ps, col, "LIKE needs a string, got %s", dm_expr_type_name(l->type));
        if (pat->type != DM_EXPR_STRING && pat->type != DM_EXPR_NULL)
            fail(ps, pat->col, "LIKE needs a string pattern, got %s", dm_expr_type_name(pat->type));
        add_kid(ps, n, l);
        add_kid(ps, n, pat);
        n->type = DM_EXPR_BOOL;
        n->nullable = l->nullable || pat->nullable;
        return n;
    }
    if (accept_kw(ps, "between")) {
        node_t *n = mk(ps, N_BETWEEN, col);
        node_t *lo = parse_add(ps);
        expect_kw(ps, "and");
        node_t *hi = parse_add(ps);
        if (!n || !lo || !hi) return n;
        n->negate = negate;
        check_comparable(ps, l, lo, lo->col);
        check_comparable(ps, l, hi, hi->col);
        add_kid(ps, n, l);
        add_kid(ps, n, lo);
        add_kid(ps, n, hi);
        n->type = DM_EXPR_BOOL;
        n->nullable = l->nullable || lo->nullable || hi->nullable;
        return n;
    }
    return l;
}

static node_t *logical(parser_t *ps, node_kind_t kind, node_t *l, node_t *r, int col)
{
    const char *name = kind == N_AND ? "AND" : kind == N_OR ? "OR" : "NOT";
    node_t *sides[2] = {l, r};
    for (int i = 0; i < 2; i++)
        if (sides[i] && sides[i]->type != DM_EXPR_BOOL && sides[i]->type != DM_EXPR_NULL)
            fail(ps, sides[i]->col, "%s needs booleans, got %s", name,
                 dm_expr_type_name(sides[i]->type));
    node_t *n = mk(ps, kind, col);
    add_kid(ps, n, l);
    if (r) add_kid(ps, n, r);
    if (n) n->type = DM_EXPR_BOOL, n->nullable = (l && l->nullable) || (r && r->nullable);
    return n;
}

static node_t *parse_not(parser_t *ps)
{
    if (is_kw(&ps->t, "not")) {
        int col = ps->t.col;
        next(ps);
        return logical(ps, N_NOT, parse_not(ps), NULL, col);
    }
    return parse_cmp(ps);
}

static node_t *parse_and(parser_t *ps)
{
    node_t *l = parse_not(ps);
    while (!ps->failed && is_kw(&ps->t, "and")) {
        int col = ps->t.col;
        next(ps);
        l = logical(ps, N_AND, l, parse_not(ps), col);
    }
    return l;
}

static node_t *parse_expr(parser_t *ps)
{
    node_t *l = parse_and(ps);
    while (!ps->failed && is_kw(&ps->t, "or")) {
        int col = ps->t.col;
        next(ps);
        l = logical(ps, N_OR, l, parse_and(ps), col);
    }
    return l;
}

/* ---- public --------------------------------------------------------------------- */

dm_err_t dm_expr_compile(const char *text, const dm_avro_node_t *record, dm_expr_t **out,
                         dm_error_t *err)
{
    *out = NULL;
    dm_expr_t *e = calloc(1, sizeof(*e));
    if (!e) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    /* Sized from the text (growing geometrically when that is short): one
     * compiled expression per filter/project step of every pipeline. */
    size_t text_len = strlen(text);
    dm_arena_init(&e->arena, text_len < 256 ? text_len * 8 + 512 : 4096);
    e->text = dm_arena_strdup(&e->arena, text);
    parser_t ps = {.e = e, .record = record, .text = e->text, .cur = e->text, .err = err};
    if (!record || record->type != DM_AVRO_RECORD) {
        fail(&ps, 1, "the input is not a record");
    } else if (strlen(text) > 65536) {
        fail(&ps, 1, "longer than 65536 characters");
    } else {
        next(&ps);
        e->root = parse_expr(&ps);
        if (!ps.failed && ps.t.kind != T_EOF)
            fail(&ps, ps.t.col, "unexpected '%.*s'", (int)ps.t.len, ps.t.p);
        if (!ps.failed && !e->root) fail(&ps, 1, "empty expression");
    }
    if (ps.failed) {
        dm_expr_free(e);
        return DM_ERR_INVALID;
    }
    e->paths = ps.paths;
    e->n_paths = ps.n_paths;
    dm_expr_vec_compile(e);
    *out = e;
    return DM_OK;
}

void dm_expr_free(dm_expr_t *e)
{
    if (!e) return;
    dm_arena_destroy(&e->arena);
    free(e);
}

dm_expr_type_t dm_expr_result_type(const dm_expr_t *e)
{
    return e->root->type;
}

bool dm_expr_nullable(const dm_expr_t *e)
{
    return e->root->nullable;
}

bool dm_expr_is_field(const dm_expr_t *e)
{
    return e->root->kind == N_FIELD && e->n_paths == 1;
}

size_t dm_expr_paths(const dm_expr_t *e, const char *const **paths)
{
    *paths = e->paths;
    return e->n_paths;
}

bool dm_expr_parse_timestamp(const char *s, size_t len, int64_t *ms)
{
    char buf[64];
    if (len >= sizeof(buf)) return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    int y, mo, d, h = 0, mi = 0, sec = 0, n = 0;
    if (sscanf(buf, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || n != 10) return false;
    const char *p = buf + n;
    int64_t frac_ms = 0;
    if (*p == 'T' || *p == ' ') {
        int m = 0;
        if (sscanf(p + 1, "%2d:%2d%n", &h, &mi, &m) != 2 || m != 5) return false;
        p += 1 + m;
        if (*p == ':') {
            if (sscanf(p + 1, "%2d%n", &sec, &m) != 1 || m != 2) return false;
            p += 1 + m;
            if (*p == '.') {
                p++;
                int digits = 0;
                while (isdigit((unsigned char)*p)) {
                    if (digits < 3) frac_ms = frac_ms * 10 + (*p - '0');
                    digits++;
                    p++;
                }
                if (!digits) return false;
                for (; digits < 3; digits++)
                    frac_ms *= 10;
            }
        }
    }
    int64_t offset_min = 0;
    if (*p == 'Z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om, m = 0;
        if (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &m) != 2 || m != 5) return false;
        offset_min = (oh * 60 + om) * (*p == '-' ? -1 : 1);
        p += 1 + m;
    }
    if (*p) return false;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return false;
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = sec};
    time_t t = timegm(&tm);
    *ms = (int64_t)t * 1000 + frac_ms - offset_min * 60000;
    return true;
}
