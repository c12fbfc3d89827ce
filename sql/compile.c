/* sql/compile.c — a parsed query into pipeline steps (sql/sql.h): names
 * resolved against the catalog, expressions translated into the engine's
 * expression language, joins and windows into enrich, join and aggregate
 * steps. */
#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine/expr.h"
#include "sql/sql.h"
#include "sql/sql_internal.h"

/* ---- a string builder ----------------------------------------------------------------- */

typedef struct sb {
    char *s;
    size_t len, cap;
} sb_t;

static void sb_put(sb_t *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 128;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) abort(); /* a query's text: kilobytes */
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void sb_add(sb_t *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

static void sb_printf(sb_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sb_t *b, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    sb_put(b, buf, n < (int)sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

/* ---- the compile context --------------------------------------------------------------- */

typedef enum { R_STREAM, R_TABLE, R_OTHER } role_t;

#define MAX_RELS  9
#define MAX_NEED  128
#define MAX_GROUP 32

typedef struct rel {
    role_t role;
    const char *name, *alias;
    const dm_avro_node_t *schema; /* NULL: unknown (no catalog) */
    const json_t *key;
    int line, col;
    bool left;
    /* R_TABLE: the table's fields the query reads and their names in the chain */
    const char *need[MAX_NEED], *as[MAX_NEED];
    int n_need;
    const char *key_field;  /* R_TABLE: its key; R_OTHER: the join's key field */
    const char *time_field; /* R_OTHER: the join's event-time field */
} rel_t;

typedef struct cc {
    const char *text;
    dm_error_t *err;
    bool failed;
    const dm_sql_catalog_t *cat;
    bool step;
    const dm_avro_node_t *input;
    dm_arena_t *arena;
    rel_t rels[MAX_RELS];
    int n_rels;
    bool window;
    /* after the aggregate: the group expressions (as emitted before it) and
     * the aggregate calls, with their names in its output */
    bool post_agg, collecting;
    char *group_text[MAX_GROUP];
    const char *group_name[MAX_GROUP];
    int n_group;
    char *agg_text[MAX_GROUP];
    const char *agg_name[MAX_GROUP];
    int n_agg;
    bool only_stream; /* set while emitting: every column read is the stream's */
} cc_t;

static bool fail(cc_t *c, int line, int col, dm_err_t code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static bool fail(cc_t *c, int line, int col, dm_err_t code, const char *fmt, ...)
{
    if (c->failed) return false;
    c->failed = true;
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    dm_sql_error_at(c->text, line, col, c->err, code, "%s", msg);
    return false;
}

/* ---- names ------------------------------------------------------------------------------ */

/* Through a nullable union ["null", T] to T. */
static const dm_avro_node_t *unwrap(const dm_avro_node_t *n)
{
    if (n && n->type == DM_AVRO_UNION) {
        const dm_avro_node_t *only = NULL;
        for (uint32_t i = 0; i < n->n_branches; i++)
            if (n->branches[i]->type != DM_AVRO_NULL) {
                if (only) return n;
                only = n->branches[i];
            }
        return only ? only : n;
    }
    return n;
}

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64) return 99;
    size_t d[65][65];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            size_t sub = d[i - 1][j - 1] +
                         (tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]));
            size_t del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
            d[i][j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
    return d[la][lb];
}

/* The closest field name of record to name, or NULL when none is close. */
static const char *closest(const dm_avro_node_t *record, const char *name, size_t *best)
{
    const char *out = NULL;
    for (uint32_t i = 0; record && record->type == DM_AVRO_RECORD && i < record->n_fields; i++) {
        size_t d = edit_distance(name, record->fields[i].name);
        size_t limit = strlen(name) / 3 + 1;
        if (d <= limit && d < *best) {
            *best = d;
            out = record->fields[i].name;
        }
    }
    return out;
}

static const dm_avro_node_t *field_of(const dm_avro_node_t *record, const char *name)
{
    record = unwrap(record);
    if (!record || record->type != DM_AVRO_RECORD) return NULL;
    int i = dm_avro_field_index(record, name);
    return i < 0 ? NULL : record->fields[i].type;
}

static const char *rel_label(const rel_t *r)
{
    return r->alias ? r->alias : r->name;
}

/* A name the engine reads as one path part: plain, or `quoted`. */
static void put_part(sb_t *b, const char *p)
{
    static const char *const words[] = {"and",  "or",   "not",  "null",    "true", "false",
                                        "is",   "in",   "like", "between", "case", "when",
                                        "then", "else", "end",  "cast",    "as"};
    bool plain = (isalpha((unsigned char)*p) || *p == '_');
    for (const char *q = p; plain && *q; q++)
        plain = isalnum((unsigned char)*q) || *q == '_';
    for (size_t i = 0; plain && i < sizeof(words) / sizeof(words[0]); i++)
        plain = strcasecmp(p, words[i]) != 0;
    if (plain) {
        sb_add(b, p);
    } else {
        sb_add(b, "`");
        sb_add(b, p);
        sb_add(b, "`");
    }
}

/* The name a table's field has in the chain once enriched: its own, or
 * ALIAS_name when the stream (or an earlier table) has that name already. */
static const char *table_name(cc_t *c, rel_t *r, const char *field)
{
    for (int i = 0; i < r->n_need; i++)
        if (!strcmp(r->need[i], field)) return r->as[i];
    if (r->n_need == MAX_NEED) return field;
    bool clash = field_of(c->rels[0].schema, field) != NULL;
    for (int k = 1; k < c->n_rels && !clash; k++)
        for (int i = 0; &c->rels[k] != r && i < c->rels[k].n_need; i++)
            clash |= !strcmp(c->rels[k].as[i], field);
    const char *as = clash ? dm_arena_printf(c->arena, "%s_%s", rel_label(r), field) : field;
    r->need[r->n_need] = field;
    r->as[r->n_need++] = as;
    return as;
}

/* The name an interval join's other side's field has in the join's output. */
static const char *other_name(cc_t *c, rel_t *r, const char *field)
{
    if (r->key_field && !strcmp(field, r->key_field)) return field; /* equal to the stream's */
    return field_of(c->rels[0].schema, field) ? dm_arena_printf(c->arena, "%s_%s", r->name, field)
                                              : field;
}

/* Resolves a column: which relation, and the path in the chain (written to
 * b); *type is its Avro type when known. */
static bool resolve(cc_t *c, const sql_expr_t *e, sb_t *b, const dm_avro_node_t **type,
                    rel_t **which)
{
    *type = NULL;
    int first = 0;
    rel_t *r = NULL;
    if (e->n_parts >= 2)
        for (int k = 0; k < c->n_rels && !r; k++)
            if (!strcmp(rel_label(&c->rels[k]), e->parts[0])) r = &c->rels[k], first = 1;
    const char *name = e->parts[first];
    if (!r) {
        int found = 0;
        for (int k = 0; k < c->n_rels; k++)
            if (field_of(c->rels[k].schema, name)) {
                if (!found) r = &c->rels[k];
                found++;
            }
        if (found > 1)
            return fail(c, e->line, e->col, DM_ERR_INVALID,
                        "column '%s' is in more than one of the joined sources; qualify it "
                        "(%s.%s)",
                        name, rel_label(r), name);
        if (!r) {
            bool unknown = false;
            for (int k = 0; k < c->n_rels; k++)
                unknown |= c->rels[k].schema == NULL;
            if (!unknown) {
                size_t best = 99;
                const char *near = NULL, *in = rel_label(&c->rels[0]);
                for (int k = 0; k < c->n_rels; k++) {
                    const char *n = closest(unwrap(c->rels[k].schema), name, &best);
                    if (n) near = n, in = rel_label(&c->rels[k]);
                }
                if (c->window && (!strcmp(name, "window_start") || !strcmp(name, "window_end")))
                    return fail(c, e->line, e->col, DM_ERR_INVALID,
                                "%s is a column of the aggregate's output: use it in GROUP BY "
                                "and the SELECT list",
                                name);
                if (near)
                    return fail(c, e->line, e->col, DM_ERR_INVALID,
                                "no column '%s' in %s; did you mean '%s'?", name, in, near);
                return fail(c, e->line, e->col, DM_ERR_INVALID, "no column '%s' in %s", name,
                            c->n_rels > 1 ? "the joined sources" : in);
            }
            r = &c->rels[0]; /* unknown schemas: the stream's */
        }
    }
    *which = r;
    /* the nested path, checked against the schema when known */
    const dm_avro_node_t *cur = r->schema;
    for (int i = first; i < e->n_parts && cur; i++) {
        const dm_avro_node_t *f = field_of(cur, e->parts[i]);
        if (!f) {
            size_t best = 99;
            const char *near = closest(unwrap(cur), e->parts[i], &best);
            const char *where = i == first ? rel_label(r) : e->parts[i - 1];
            if (near)
                return fail(c, e->line, e->col, DM_ERR_INVALID,
                            "no column '%s' in %s; did you mean '%s'?", e->parts[i], where, near);
            return fail(c, e->line, e->col, DM_ERR_INVALID, "no column '%s' in %s", e->parts[i],
                        where);
        }
        cur = f;
    }
    *type = cur;
    if (r->role != R_STREAM) c->only_stream = false;
    for (int i = first; i < e->n_parts; i++) {
        if (i > first) sb_add(b, ".");
        const char *part = e->parts[i];
        if (i == first && r->role == R_TABLE) part = table_name(c, r, part);
        if (i == first && r->role == R_OTHER) part = other_name(c, r, part);
        put_part(b, part);
    }
    return true;
}

/* ---- types (for the mismatches the query names) ---------------------------------------- */

typedef enum { T_UNKNOWN, T_NULL, T_BOOL, T_LONG, T_DOUBLE, T_STRING, T_TS } ty_t;

static const char *ty_name(ty_t t)
{
    static const char *const names[] = {"?",      "null",   "boolean",  "long",
                                        "double", "string", "timestamp"};
    return names[t];
}

static ty_t ty_of_node(const dm_avro_node_t *n)
{
    n = unwrap(n);
    if (!n) return T_UNKNOWN;
    switch (n->type) {
    case DM_AVRO_BOOLEAN: return T_BOOL;
    case DM_AVRO_INT:
    case DM_AVRO_LONG:
        if (n->logical == DM_AVRO_LT_TIMESTAMP_MILLIS ||
            n->logical == DM_AVRO_LT_TIMESTAMP_MICROS ||
            n->logical == DM_AVRO_LT_LOCAL_TIMESTAMP_MILLIS ||
            n->logical == DM_AVRO_LT_LOCAL_TIMESTAMP_MICROS)
            return T_TS;
        return T_LONG;
    case DM_AVRO_FLOAT:
    case DM_AVRO_DOUBLE: return T_DOUBLE;
    case DM_AVRO_STRING:
    case DM_AVRO_ENUM: return T_STRING;
    case DM_AVRO_NULL: return T_NULL;
    default: return T_UNKNOWN;
    }
}

static bool numeric(ty_t t)
{
    return t == T_LONG || t == T_DOUBLE;
}

/* ---- expressions: SQL → the engine's language -------------------------------------------- */

static bool is_agg(const sql_expr_t *e)
{
    static const char *const fns[] = {"count", "sum", "min", "max", "avg"};
    if (e->kind != X_FUNC) return false;
    for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++)
        if (!strcmp(e->s, fns[i])) return true;
    return false;
}

static bool emit(cc_t *c, const sql_expr_t *e, sb_t *b, ty_t *ty);

/* The text of e as emitted before the aggregate (its identity for GROUP BY). */
static char *pre_text(cc_t *c, const sql_expr_t *e)
{
    bool post = c->post_agg;
    c->post_agg = false;
    sb_t b = {0};
    ty_t t;
    bool ok = emit(c, e, &b, &t);
    c->post_agg = post;
    if (!ok) {
        free(b.s);
        return NULL;
    }
    return b.s ? b.s : strdup("");
}

static bool emit_args(cc_t *c, const sql_expr_t *e, sb_t *b)
{
    for (int i = 0; i < e->n_args; i++) {
        if (i) sb_add(b, ", ");
        ty_t t;
        if (!emit(c, e->args[i], b, &t)) return false;
    }
    return true;
}

static bool mismatch(cc_t *c, const sql_expr_t *e, const char *what, const sb_t *l, ty_t a,
                     const sb_t *r, ty_t bt)
{
    return fail(c, e->line, e->col, DM_ERR_INVALID, "%s %.80s (%s) %s %.80s (%s)", what,
                l->s ? l->s : "", ty_name(a), !strcmp(what, "cannot compare") ? "with" : "and",
                r->s ? r->s : "", ty_name(bt));
}

/* After the aggregate: a group expression or an aggregate by its output name. */
static bool emit_post(cc_t *c, const sql_expr_t *e, sb_t *b, ty_t *ty, bool *done)
{
    *done = false;
    if (e->kind == X_COL && e->n_parts == 1 &&
        (!strcmp(e->parts[0], "window_start") || !strcmp(e->parts[0], "window_end"))) {
        sb_add(b, e->parts[0]);
        *ty = T_TS;
        *done = true;
        return true;
    }
    if (e->kind == X_LIT || e->kind == X_INTERVAL || e->kind == X_TIMESTAMP) return true;
    char *t = pre_text(c, e);
    if (!t) return false;
    for (int i = 0; i < c->n_group; i++)
        if (!strcmp(t, c->group_text[i])) {
            put_part(b, c->group_name[i]);
            *ty = T_UNKNOWN;
            *done = true;
        }
    if (!*done && is_agg(e)) {
        for (int i = 0; i < c->n_agg && !*done; i++)
            if (!strcmp(t, c->agg_text[i])) {
                put_part(b, c->agg_name[i]);
                *done = true;
            }
        if (!*done && c->collecting && c->n_agg < MAX_GROUP) {
            c->agg_text[c->n_agg] = t;
            c->agg_name[c->n_agg] = dm_arena_printf(c->arena, "agg%d", c->n_agg + 1);
            put_part(b, c->agg_name[c->n_agg++]);
            t = NULL;
            *done = true;
        } else if (!*done) {
            free(t);
            return fail(c, e->line, e->col, DM_ERR_UNSUPPORTED, "at most %d aggregates", MAX_GROUP);
        }
        *ty = !strcmp(e->s, "count") ? T_LONG : !strcmp(e->s, "avg") ? T_DOUBLE : T_UNKNOWN;
    }
    free(t);
    if (!*done && e->kind == X_COL)
        return fail(c, e->line, e->col, DM_ERR_INVALID,
                    "column '%s' is neither in GROUP BY nor inside an aggregate (COUNT, SUM, "
                    "MIN, MAX, AVG)",
                    e->parts[e->n_parts - 1]);
    return true;
}

static bool emit(cc_t *c, const sql_expr_t *e, sb_t *b, ty_t *ty)
{
    if (c->failed) return false;
    *ty = T_UNKNOWN;
    if (c->post_agg) {
        bool done;
        if (!emit_post(c, e, b, ty, &done)) return false;
        if (done) return true;
    }
    sb_t l = {0}, r = {0};
    ty_t a = T_UNKNOWN, bt = T_UNKNOWN;
    bool ok = true;
    switch (e->kind) {
    case X_LIT:
        sb_add(b, e->s);
        *ty = e->s[0] == '\''                                   ? T_STRING
              : !strcmp(e->s, "NULL")                           ? T_NULL
              : !strcmp(e->s, "TRUE") || !strcmp(e->s, "FALSE") ? T_BOOL
              : strpbrk(e->s, ".eE")                            ? T_DOUBLE
                                                                : T_LONG;
        return true;
    case X_INTERVAL:
        sb_printf(b, "%" PRId64, e->ms);
        *ty = T_LONG;
        return true;
    case X_TIMESTAMP:
        sb_printf(b, "CAST(%s AS timestamp)", e->s);
        *ty = T_TS;
        return true;
    case X_STAR:
        return fail(c, e->line, e->col, DM_ERR_INVALID, "* is only a SELECT item or COUNT(*)");
    case X_COL: {
        const dm_avro_node_t *node;
        rel_t *which;
        if (!resolve(c, e, b, &node, &which)) return false;
        *ty = ty_of_node(node);
        return true;
    }
    case X_UNARY:
        sb_add(b, !strcmp(e->op, "NOT") ? "(NOT " : "(-");
        ok = emit(c, e->a, &l, &a);
        if (!ok) break;
        sb_add(b, l.s);
        sb_add(b, ")");
        if (!strcmp(e->op, "NOT")) {
            if (a != T_UNKNOWN && a != T_BOOL && a != T_NULL)
                ok = fail(c, e->line, e->col, DM_ERR_INVALID, "NOT needs a boolean, %.80s is a %s",
                          l.s, ty_name(a));
            *ty = T_BOOL;
        } else {
            if (a != T_UNKNOWN && !numeric(a) && a != T_NULL)
                ok = fail(c, e->line, e->col, DM_ERR_INVALID, "'-' needs a number, %.80s is a %s",
                          l.s, ty_name(a));
            *ty = a;
        }
        break;
    case X_BIN: {
        ok = emit(c, e->a, &l, &a) && emit(c, e->b, &r, &bt);
        if (!ok) break;
        sb_printf(b, "(%s %s %s)", l.s, e->op, r.s);
        bool known = a != T_UNKNOWN && bt != T_UNKNOWN && a != T_NULL && bt != T_NULL;
        if (!strcmp(e->op, "AND") || !strcmp(e->op, "OR")) {
            if (a != T_UNKNOWN && a != T_BOOL && a != T_NULL)
                ok = fail(c, e->a->line, e->a->col, DM_ERR_INVALID,
                          "%s needs booleans, %.80s is a %s", e->op, l.s, ty_name(a));
            else if (bt != T_UNKNOWN && bt != T_BOOL && bt != T_NULL)
                ok = fail(c, e->b->line, e->b->col, DM_ERR_INVALID,
                          "%s needs booleans, %.80s is a %s", e->op, r.s, ty_name(bt));
            *ty = T_BOOL;
        } else if (!strcmp(e->op, "||")) {
            *ty = T_STRING;
        } else if (strchr("=<>", e->op[0])) {
            bool ts_str = (a == T_TS && bt == T_STRING) || (a == T_STRING && bt == T_TS);
            bool ts_num = (a == T_TS && bt == T_LONG) || (a == T_LONG && bt == T_TS);
            if (known && a != bt && !(numeric(a) && numeric(bt)) && !ts_str && !ts_num)
                ok = mismatch(c, e, "cannot compare", &l, a, &r, bt);
            *ty = T_BOOL;
        } else { /* + - * / % */
            bool ts = (a == T_TS && numeric(bt)) || (a == T_TS && bt == T_TS && e->op[0] == '-') ||
                      (numeric(a) && bt == T_TS && e->op[0] == '+');
            if (known && !(numeric(a) && numeric(bt)) && !ts) {
                char what[40];
                snprintf(what, sizeof(what), "cannot apply '%s' to", e->op);
                ok = mismatch(c, e, what, &l, a, &r, bt);
            }
            *ty = a == T_TS && bt == T_TS           ? T_LONG
                  : a == T_TS || bt == T_TS         ? T_TS
                  : a == T_DOUBLE || bt == T_DOUBLE ? T_DOUBLE
                  : numeric(a) && numeric(bt)       ? T_LONG
                                                    : T_UNKNOWN;
        }
        break;
    }
    case X_ISNULL:
        ok = emit(c, e->a, &l, &a);
        if (ok) sb_printf(b, "(%s IS %sNULL)", l.s, e->not ? "NOT " : "");
        *ty = T_BOOL;
        break;
    case X_IN:
        ok = emit(c, e->a, &l, &a);
        if (!ok) break;
        sb_printf(b, "(%s %sIN (", l.s, e->not ? "NOT " : "");
        for (int i = 0; ok && i < e->n_args; i++) {
            sb_t x = {0};
            ty_t xt;
            ok = emit(c, e->args[i], &x, &xt);
            if (ok && a != T_UNKNOWN && xt != T_UNKNOWN && a != T_NULL && xt != T_NULL && a != xt &&
                !(numeric(a) && numeric(xt)) && !(a == T_TS && xt == T_STRING))
                ok = mismatch(c, e->args[i], "cannot compare", &l, a, &x, xt);
            if (ok) sb_printf(b, "%s%s", i ? ", " : "", x.s);
            free(x.s);
        }
        sb_add(b, "))");
        *ty = T_BOOL;
        break;
    case X_LIKE:
        ok = emit(c, e->a, &l, &a) && emit(c, e->b, &r, &bt);
        if (ok && a != T_UNKNOWN && a != T_STRING && a != T_NULL)
            ok = fail(c, e->line, e->col, DM_ERR_INVALID, "LIKE needs a string, %.80s is a %s", l.s,
                      ty_name(a));
        if (ok) sb_printf(b, "(%s %sLIKE %s)", l.s, e->not ? "NOT " : "", r.s);
        *ty = T_BOOL;
        break;
    case X_BETWEEN: {
        sb_t h = {0};
        ty_t ht;
        ok = emit(c, e->a, &l, &a) && emit(c, e->b, &r, &bt) && emit(c, e->c, &h, &ht);
        bool known = a != T_UNKNOWN && bt != T_UNKNOWN && a != T_NULL && bt != T_NULL;
        if (ok && known && a != bt && !(numeric(a) && numeric(bt)) &&
            !(a == T_TS && (bt == T_STRING || bt == T_LONG)))
            ok = mismatch(c, e, "cannot compare", &l, a, &r, bt);
        if (ok) sb_printf(b, "(%s %sBETWEEN %s AND %s)", l.s, e->not ? "NOT " : "", r.s, h.s);
        free(h.s);
        *ty = T_BOOL;
        break;
    }
    case X_CASE:
        sb_add(b, "(CASE");
        for (int i = 0; ok && i + 1 < e->n_args; i += 2) {
            sb_t w = {0}, v = {0};
            ty_t wt, vt;
            if (e->a) {
                /* CASE x WHEN v: x = v */
                sb_t xs = {0};
                ok = emit(c, e->a, &xs, &a) && emit(c, e->args[i], &w, &wt);
                if (ok) {
                    sb_t eq = {0};
                    sb_printf(&eq, "(%s = %s)", xs.s, w.s);
                    free(w.s);
                    w = eq;
                }
                free(xs.s);
            } else {
                ok = emit(c, e->args[i], &w, &wt);
            }
            ok = ok && emit(c, e->args[i + 1], &v, &vt);
            if (ok) sb_printf(b, " WHEN %s THEN %s", w.s, v.s);
            if (ok && *ty == T_UNKNOWN) *ty = vt;
            free(w.s);
            free(v.s);
        }
        if (ok && e->c) {
            ok = emit(c, e->c, &l, &a);
            if (ok) sb_printf(b, " ELSE %s", l.s);
        }
        sb_add(b, " END)");
        break;
    case X_CAST:
        ok = emit(c, e->a, &l, &a);
        if (ok) sb_printf(b, "CAST(%s AS %s)", l.s, e->s);
        *ty = !strcmp(e->s, "long")      ? T_LONG
              : !strcmp(e->s, "double")  ? T_DOUBLE
              : !strcmp(e->s, "string")  ? T_STRING
              : !strcmp(e->s, "boolean") ? T_BOOL
                                         : T_TS;
        break;
    case X_FUNC: {
        if (is_agg(e)) {
            if (!c->post_agg && !c->collecting)
                return fail(c, e->line, e->col, DM_ERR_INVALID,
                            "%s() is an aggregate: it belongs in the SELECT list or HAVING of a "
                            "windowed GROUP BY, not here",
                            e->s);
            /* before the aggregate (its own argument): fn(arg) as the step reads it */
            if (!strcmp(e->s, "count") && e->star) {
                sb_add(b, "count(*)");
                *ty = T_LONG;
                return true;
            }
            if (e->n_args != 1)
                return fail(c, e->line, e->col, DM_ERR_INVALID, "%s takes one argument", e->s);
            for (int i = 0; i < e->n_args; i++)
                if (e->args[i]->kind == X_FUNC && is_agg(e->args[i]))
                    return fail(c, e->args[i]->line, e->args[i]->col, DM_ERR_INVALID,
                                "aggregates do not nest");
            ok = emit(c, e->args[0], &l, &a);
            if (ok && (!strcmp(e->s, "sum") || !strcmp(e->s, "avg")) && a != T_UNKNOWN &&
                !numeric(a) && a != T_NULL)
                ok = fail(c, e->line, e->col, DM_ERR_INVALID, "%s needs a number, %.80s is a %s",
                          e->s, l.s, ty_name(a));
            if (ok && e->distinct && strcmp(e->s, "count"))
                ok = fail(c, e->line, e->col, DM_ERR_INVALID, "DISTINCT works with COUNT only");
            if (ok) sb_printf(b, "%s(%s%s)", e->s, e->distinct ? "distinct " : "", l.s);
            *ty = !strcmp(e->s, "count") ? T_LONG : !strcmp(e->s, "avg") ? T_DOUBLE : a;
            break;
        }
        if (e->star || e->distinct)
            return fail(c, e->line, e->col, DM_ERR_INVALID, "%s(%s…) is not an aggregate", e->s,
                        e->star ? "*" : "DISTINCT ");
        static const struct {
            const char *sql, *engine;
        } names[] = {{"char_length", "length"},
                     {"character_length", "length"},
                     {"substring", "substr"},
                     {"ifnull", "coalesce"}};
        const char *fn = e->s;
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
            if (!strcmp(fn, names[i].sql)) fn = names[i].engine;
        sb_printf(b, "%s(", fn);
        ok = emit_args(c, e, b);
        sb_add(b, ")");
        break;
    }
    }
    free(l.s);
    free(r.s);
    return ok && !c->failed;
}

/* Splits e at its top-level ANDs. */
static int conjuncts(sql_expr_t *e, sql_expr_t **out, int n, int cap)
{
    if (e && e->kind == X_BIN && !strcmp(e->op, "AND")) {
        n = conjuncts(e->a, out, n, cap);
        return conjuncts(e->b, out, n, cap);
    }
    if (e && n < cap) out[n++] = e;
    return n;
}

/* Emits e (a condition, a value); NULL after a failure. *stream: whether it
 * reads the stream's columns only. */
static char *emit_text(cc_t *c, const sql_expr_t *e, ty_t *ty, bool *stream)
{
    sb_t b = {0};
    ty_t t;
    c->only_stream = true;
    bool ok = emit(c, e, &b, &t);
    if (stream) *stream = c->only_stream;
    if (ty) *ty = t;
    if (!ok) {
        free(b.s);
        return NULL;
    }
    return b.s;
}

/* Compiles text with the engine against the stream's schema (when known and
 * the expression reads the stream only), for its errors at e's position. */
static bool check_engine(cc_t *c, const sql_expr_t *e, const char *text, bool stream)
{
    if (!stream || !c->rels[0].schema || c->post_agg) return true;
    dm_error_t err = {0};
    dm_expr_t *x = NULL;
    dm_err_t rc = dm_expr_compile(text, unwrap(c->rels[0].schema), &x, &err);
    dm_expr_free(x);
    if (!rc) return true;
    return fail(c, e->line, e->col, rc, "%s", err.message);
}

/* ---- relations ---------------------------------------------------------------------------- */

static bool add_source(cc_t *c, rel_t *r, const char *name, int line, int col)
{
    r->name = name;
    r->line = line;
    r->col = col;
    if (!strcmp(name, "input")) {
        if (!c->step)
            return fail(c, line, col, DM_ERR_INVALID,
                        "FROM input is for a sql step (its input); a pipeline's query names "
                        "sources");
        if (r->role != R_STREAM)
            return fail(c, line, col, DM_ERR_INVALID, "a step's input cannot be joined");
        r->schema = c->input;
        return true;
    }
    if (c->step && r->role == R_STREAM)
        return fail(c, line, col, DM_ERR_INVALID,
                    "a sql step reads its input: FROM input (found '%s'); join sources to it",
                    name);
    if (!c->cat) return true;
    dm_error_t e = {0};
    dm_err_t rc = c->cat->source(c->cat->ctx, name, &r->schema, &r->key, &e);
    if (rc == DM_ERR_AGAIN) {
        c->failed = true;
        dm_error_set(c->err, DM_ERR_AGAIN, "%s", e.message);
        return false;
    }
    if (rc) return fail(c, line, col, rc, "%s", e.message);
    if (!r->schema || unwrap(r->schema)->type != DM_AVRO_RECORD)
        return fail(c, line, col, DM_ERR_INVALID, "source %s has no record schema", name);
    return true;
}

/* The stream's column and the offset of a time bound: a.ts, a.ts ± INTERVAL. */
static bool bound_of(cc_t *c, const sql_expr_t *e, const char **col, int64_t *ms)
{
    *ms = 0;
    if (e->kind == X_BIN && (e->op[0] == '+' || e->op[0] == '-') && e->b->kind == X_INTERVAL) {
        *ms = e->op[0] == '+' ? e->b->ms : -e->b->ms;
        e = e->a;
    }
    if (e->kind != X_COL) return false;
    *col = e->parts[e->n_parts - 1];
    return true;
}

static rel_t *rel_of_col(cc_t *c, const sql_expr_t *e)
{
    if (e->kind != X_COL) return NULL;
    if (e->n_parts >= 2)
        for (int k = 0; k < c->n_rels; k++)
            if (!strcmp(rel_label(&c->rels[k]), e->parts[0])) return &c->rels[k];
    for (int k = 0; k < c->n_rels; k++)
        if (field_of(c->rels[k].schema, e->parts[0])) return &c->rels[k];
    return NULL;
}

typedef struct joinplan {
    const sql_expr_t *stream_key; /* lookup: the stream side of the equality */
    int64_t lo, hi;               /* interval: other.ts BETWEEN ts + lo AND ts + hi */
    bool interval;
} joinplan_t;

#define HINT_JOIN                                                                                  \
    "hint: JOIN a keyed source ON its whole key (a lookup join), or bound the join in time: "      \
    "… AND b.ts BETWEEN a.ts - INTERVAL '5' MINUTE AND a.ts"

/* A join is a lookup join (the right side keyed, ON equating its whole key)
 * or an interval join (ON equal keys AND the right side's time between two
 * bounds of the stream's); anything else is refused. */
static bool classify_join(cc_t *c, const sql_join_t *j, rel_t *r, joinplan_t *jp)
{
    sql_expr_t *conj[16];
    int n = conjuncts(j->on, conj, 0, 16);
    const sql_expr_t *eq_stream = NULL, *eq_right = NULL;
    int n_eq = 0, n_time = 0;
    const char *t_stream = NULL, *t_right = NULL;
    bool have_lo = false, have_hi = false;
    *jp = (joinplan_t){0};
    for (int i = 0; i < n; i++) {
        sql_expr_t *e = conj[i];
        if (e->kind == X_BIN && !strcmp(e->op, "=")) {
            rel_t *ra = rel_of_col(c, e->a), *rb = rel_of_col(c, e->b);
            const sql_expr_t *s = NULL, *o = NULL;
            if (rb == r && ra != r) s = e->a, o = e->b;
            if (ra == r && rb != r) s = e->b, o = e->a;
            if (!r->schema && !o && e->b->kind == X_COL && e->b->n_parts >= 2 &&
                !strcmp(e->b->parts[0], rel_label(r)))
                s = e->a, o = e->b;
            if (!r->schema && !o && e->a->kind == X_COL && e->a->n_parts >= 2 &&
                !strcmp(e->a->parts[0], rel_label(r)))
                s = e->b, o = e->a;
            if (o) {
                eq_stream = s, eq_right = o, n_eq++;
                continue;
            }
        }
        /* time bounds: r.ts BETWEEN a.ts - X AND a.ts + Y, or r.ts >= / <= a.ts ± X */
        const char *sc;
        int64_t ms;
        if (e->kind == X_BETWEEN && !e->not &&e->a->kind == X_COL && rel_of_col(c, e->a) == r &&
            bound_of(c, e->b, &sc, &jp->lo) && bound_of(c, e->c, &t_stream, &jp->hi) &&
            !strcmp(sc, t_stream)) {
            t_right = e->a->parts[e->a->n_parts - 1];
            have_lo = have_hi = true;
            n_time++;
            continue;
        }
        if (e->kind == X_BIN && e->a->kind == X_COL && rel_of_col(c, e->a) == r &&
            (!strcmp(e->op, ">=") || !strcmp(e->op, "<=") || !strcmp(e->op, ">") ||
             !strcmp(e->op, "<")) &&
            bound_of(c, e->b, &sc, &ms)) {
            t_right = e->a->parts[e->a->n_parts - 1];
            t_stream = sc;
            if (e->op[0] == '>')
                jp->lo = ms, have_lo = true;
            else
                jp->hi = ms, have_hi = true;
            n_time++;
            continue;
        }
        return fail(c, e->line, e->col, DM_ERR_UNSUPPORTED,
                    "a join's ON holds key equalities and time bounds only; move this condition "
                    "to WHERE");
    }
    if (n_time) {
        if (!have_lo || !have_hi)
            return fail(c, j->on->line, j->on->col, DM_ERR_UNSUPPORTED,
                        "an interval join bounds the other side's time from both sides (BETWEEN "
                        "a.ts - INTERVAL … AND a.ts + INTERVAL …)");
        if (j->left)
            return fail(c, j->line, j->col, DM_ERR_UNSUPPORTED,
                        "an interval join is inner (LEFT is for lookup joins of keyed sources)");
        if (n_eq != 1)
            return fail(c, j->on->line, j->on->col, DM_ERR_UNSUPPORTED,
                        "an interval join matches one key: a.k = b.k AND b.ts BETWEEN …");
        if (jp->lo > jp->hi)
            return fail(c, j->on->line, j->on->col, DM_ERR_INVALID,
                        "the time bounds are empty (the lower is above the upper)");
        const char *ks = eq_stream->kind == X_COL ? eq_stream->parts[eq_stream->n_parts - 1] : "";
        const char *kr = eq_right->parts[eq_right->n_parts - 1];
        if (eq_stream->kind != X_COL || strcmp(ks, kr))
            return fail(c, eq_right->line, eq_right->col, DM_ERR_UNSUPPORTED,
                        "an interval join matches a field of the same name on both sides (%s = "
                        "%s); hint: publish one side with the field renamed (CREATE SOURCE … AS "
                        "SELECT %s AS %s, …)",
                        ks, kr, kr, ks);
        if (strcmp(t_stream, t_right))
            return fail(c, j->on->line, j->on->col, DM_ERR_UNSUPPORTED,
                        "an interval join's event time is a field of the same name on both "
                        "sides (%s, %s)",
                        t_stream, t_right);
        r->role = R_OTHER;
        r->key_field = kr;
        r->time_field = t_right;
        jp->interval = true;
        return true;
    }
    /* a lookup join */
    size_t nk = json_array_size(r->key);
    if (c->cat && !nk)
        return fail(c, j->item.line, j->item.col, DM_ERR_UNSUPPORTED,
                    "%s is not keyed, so this is a regular join of two streams, which keeps "
                    "every record of both forever; " HINT_JOIN,
                    r->name);
    if (n_eq != 1 || (nk > 1))
        return fail(c, j->on->line, j->on->col, DM_ERR_UNSUPPORTED,
                    "a lookup join equates the whole key of %s (%s) with one stream value; "
                    "%s",
                    r->name, nk ? json_string_value(json_array_get(r->key, 0)) : "its key",
                    nk > 1 ? "keys of several fields are not supported yet" : HINT_JOIN);
    const char *kr = eq_right->parts[eq_right->n_parts - 1];
    const char *key = nk ? json_string_value(json_array_get(r->key, 0)) : kr;
    if (eq_right->n_parts > 2 ||
        (eq_right->n_parts == 2 && strcmp(eq_right->parts[0], rel_label(r))) || strcmp(kr, key))
        return fail(c, eq_right->line, eq_right->col, DM_ERR_UNSUPPORTED,
                    "%s is keyed by %s, and a lookup join equates that key (found %s); " HINT_JOIN,
                    r->name, key, kr);
    r->role = R_TABLE;
    r->left = j->left;
    r->key_field = key;
    jp->stream_key = eq_stream;
    return true;
}

/* Whether e reads window_start / window_end or calls an aggregate (it has
 * no text before the aggregate then). */
static bool post_only(const sql_expr_t *e)
{
    if (!e) return false;
    if (is_agg(e) || e->kind == X_STAR) return true;
    if (e->kind == X_COL && e->n_parts == 1 &&
        (!strcmp(e->parts[0], "window_start") || !strcmp(e->parts[0], "window_end")))
        return true;
    if (post_only(e->a) || post_only(e->b) || post_only(e->c)) return true;
    for (int i = 0; i < e->n_args; i++)
        if (post_only(e->args[i])) return true;
    return false;
}

/* The name in "expr AS name" (the last AS: expressions hold CAST(x AS t)). */
static const char *last_as(const char *item)
{
    const char *found = NULL;
    for (const char *p = strstr(item, " AS "); p; p = strstr(p + 1, " AS "))
        found = p;
    return found;
}

/* ---- one SELECT ----------------------------------------------------------------------------- */

static json_t *step1(const char *kind, json_t *conf)
{
    json_t *s = json_object();
    json_object_set_new(s, kind, conf);
    return s;
}

static void add_filter(json_t *steps, char **conds, int n)
{
    if (!n) return;
    sb_t b = {0};
    for (int i = 0; i < n; i++) {
        if (i) sb_add(&b, " AND ");
        sb_add(&b, conds[i]);
    }
    /* a lone condition loses its outer parentheses */
    char *t = b.s;
    if (n == 1 && t[0] == '(' && t[strlen(t) - 1] == ')') {
        int depth = 0;
        bool outer = true;
        for (size_t i = 0; t[i] && outer; i++) {
            if (t[i] == '\'') {
                for (i++; t[i] && t[i] != '\''; i++) {
                }
                continue;
            }
            depth += t[i] == '(' ? 1 : t[i] == ')' ? -1 : 0;
            if (!depth && t[i + 1]) outer = false;
        }
        if (outer) {
            memmove(t, t + 1, strlen(t) - 2);
            t[strlen(t) - 2] = '\0';
        }
    }
    json_array_append_new(steps, json_pack("{s:s}", "filter", t));
    free(b.s);
}

static const char *item_name(cc_t *c, const sql_item_t *it, int i)
{
    if (it->alias) return it->alias;
    if (it->e->kind == X_COL) return it->e->parts[it->e->n_parts - 1];
    if (it->e->kind == X_FUNC && is_agg(it->e)) {
        if (it->e->star) return it->e->s; /* count */
        if (it->e->n_args == 1 && it->e->args[0]->kind == X_COL)
            return dm_arena_printf(c->arena, "%s%s_%s", it->e->distinct ? "distinct_" : "",
                                   it->e->s, it->e->args[0]->parts[it->e->args[0]->n_parts - 1]);
    }
    return dm_arena_printf(c->arena, "expr%d", i + 1);
}

static bool compile_select(cc_t *c, sql_select_t *s, json_t *from, json_t *steps)
{
    c->n_rels = 0;
    c->window = s->from.window != W_NONE;
    rel_t *st = &c->rels[c->n_rels++];
    *st = (rel_t){.role = R_STREAM, .alias = s->from.alias};
    if (s->from.sub) { /* (SELECT * FROM a UNION ALL SELECT * FROM b) */
        sql_query_t *q = s->from.sub;
        for (int i = 0; i < q->n_branches; i++) {
            sql_select_t *b = q->branches[i];
            if (b->n_items != 1 || b->items[0].e->kind != X_STAR || b->items[0].e->n_parts ||
                b->from.sub || b->from.window || b->n_joins || b->where || b->n_group || b->having)
                return fail(c, b->line, b->col, DM_ERR_UNSUPPORTED,
                            "a subquery in FROM is a UNION ALL of SELECT * FROM a source; hint: "
                            "publish other queries with CREATE SOURCE … AS SELECT and read that");
            rel_t tmp = {.role = R_STREAM};
            if (!add_source(c, i ? &tmp : st, b->from.name, b->from.line, b->from.col))
                return false;
            json_array_append_new(from, json_string(b->from.name));
        }
    } else {
        if (!add_source(c, st, s->from.name, s->from.line, s->from.col)) return false;
        if (!c->step) json_array_append_new(from, json_string(s->from.name));
    }
    if (c->n_rels + s->n_joins > MAX_RELS)
        return fail(c, s->line, s->col, DM_ERR_UNSUPPORTED, "at most %d joins", MAX_RELS - 1);
    joinplan_t jps[MAX_RELS];
    for (int i = 0; i < s->n_joins; i++) {
        sql_join_t *j = &s->joins[i];
        rel_t *r = &c->rels[c->n_rels++];
        *r = (rel_t){.role = R_TABLE, .alias = j->item.alias};
        if (!add_source(c, r, j->item.name, j->item.line, j->item.col)) return false;
        for (int k = 0; k < c->n_rels - 1; k++)
            if (!strcmp(rel_label(&c->rels[k]), rel_label(r)))
                return fail(c, j->item.line, j->item.col, DM_ERR_INVALID,
                            "'%s' names two sources of the query; give one an alias (AS)",
                            rel_label(r));
        if (!classify_join(c, j, r, &jps[i])) return false;
    }
    bool agg = s->n_group > 0 || s->having;
    for (int i = 0; i < s->n_items && !agg; i++) {
        /* any aggregate call in the SELECT list */
        sql_expr_t *stack[64];
        int n = 0;
        stack[n++] = s->items[i].e;
        while (n && !agg) {
            sql_expr_t *e = stack[--n];
            if (!e) continue;
            if (is_agg(e)) agg = true;
            if (n < 60) stack[n++] = e->a, stack[n++] = e->b, stack[n++] = e->c;
            for (int k = 0; k < e->n_args && n < 63; k++)
                stack[n++] = e->args[k];
        }
    }
    if (agg && !c->window)
        return fail(c, s->line, s->col, DM_ERR_UNSUPPORTED,
                    "an aggregate over a stream without a window never ends, so it never "
                    "emits; hint: FROM TABLE(TUMBLE(TABLE %s, DESCRIPTOR(ts), INTERVAL '1' "
                    "MINUTE)) … GROUP BY window_start, window_end, …",
                    s->from.name ? s->from.name : "src");
    if (c->window && !agg)
        return fail(c, s->from.line, s->from.col, DM_ERR_UNSUPPORTED,
                    "a window table function is for aggregates: GROUP BY window_start, "
                    "window_end, … with COUNT, SUM, MIN, MAX or AVG");

    /* WHERE: conditions on the stream alone run before the joins */
    sql_expr_t *conj[64];
    int n_conj = conjuncts(s->where, conj, 0, 64);
    char *pre[64], *post[64];
    int n_pre = 0, n_post = 0;
    bool ok = true;
    for (int i = 0; ok && i < n_conj; i++) {
        bool stream;
        ty_t t;
        char *x = emit_text(c, conj[i], &t, &stream);
        if (!x) {
            ok = false;
            break;
        }
        if (t != T_UNKNOWN && t != T_BOOL && t != T_NULL)
            ok = fail(c, conj[i]->line, conj[i]->col, DM_ERR_INVALID,
                      "WHERE needs a condition, %.80s is a %s", x, ty_name(t));
        ok = ok && check_engine(c, conj[i], x, stream);
        if (stream)
            pre[n_pre++] = x;
        else
            post[n_post++] = x;
    }
    /* the join steps' fields are known once every expression is emitted, so
     * the steps are put together after that */
    char *time = NULL;
    if (ok && c->window) {
        ty_t t;
        if (s->from.time->n_parts > 1 && s->from.alias &&
            strcmp(s->from.time->parts[0], s->from.alias))
            ok = fail(c, s->from.time->line, s->from.time->col, DM_ERR_INVALID,
                      "DESCRIPTOR names a column of %s", s->from.name);
        time = ok ? emit_text(c, s->from.time, &t, NULL) : NULL;
        if (!time)
            ok = false;
        else if (t != T_UNKNOWN && t != T_LONG && t != T_TS)
            ok = fail(c, s->from.time->line, s->from.time->col, DM_ERR_INVALID,
                      "a window's time column is a timestamp or a long (ms), %s is a %s", time,
                      ty_name(t));
    }
    json_t *group = json_array(), *aggs = json_array(), *cols = json_array();
    char *having = NULL;
    bool star = false;
    if (ok && agg) {
        bool ws = false, we = false;
        for (int i = 0; ok && i < s->n_group; i++) {
            sql_expr_t *g = s->group[i];
            if (g->kind == X_COL && g->n_parts == 1 && !strcmp(g->parts[0], "window_start")) {
                ws = true;
                continue;
            }
            if (g->kind == X_COL && g->n_parts == 1 && !strcmp(g->parts[0], "window_end")) {
                we = true;
                continue;
            }
            if (c->n_group == MAX_GROUP) {
                ok = fail(c, g->line, g->col, DM_ERR_UNSUPPORTED, "at most %d GROUP BY columns",
                          MAX_GROUP);
                break;
            }
            bool stream;
            char *x = emit_text(c, g, NULL, &stream);
            if (!x) {
                ok = false;
                break;
            }
            const char *name = NULL;
            for (int k = 0; k < s->n_items && !name; k++) {
                char *it = post_only(s->items[k].e) ? NULL : pre_text(c, s->items[k].e);
                if (it && !strcmp(it, x)) name = item_name(c, &s->items[k], k);
                free(it);
            }
            if (!name)
                name = g->kind == X_COL ? g->parts[g->n_parts - 1]
                                        : dm_arena_printf(c->arena, "group%d", i + 1);
            c->group_text[c->n_group] = x;
            c->group_name[c->n_group++] = name;
            json_array_append_new(group, json_pack("s++", x, " AS ", name));
        }
        if (ok && (!ws || !we))
            ok = fail(c, s->line, s->col, DM_ERR_INVALID,
                      "a windowed aggregate groups by window_start and window_end (GROUP BY "
                      "window_start, window_end, …)");
        /* the aggregates: those the SELECT list is made of, named after it */
        for (int i = 0; ok && i < s->n_items; i++) {
            sql_expr_t *e = s->items[i].e;
            if (e->kind != X_FUNC || !is_agg(e)) continue;
            c->collecting = true;
            char *x = pre_text(c, e);
            c->collecting = false;
            if (!x) {
                ok = false;
                break;
            }
            bool dup = false;
            for (int k = 0; k < c->n_agg; k++)
                dup |= !strcmp(c->agg_text[k], x);
            if (dup || c->n_agg == MAX_GROUP) {
                free(x);
                continue;
            }
            c->agg_text[c->n_agg] = x;
            c->agg_name[c->n_agg++] = item_name(c, &s->items[i], i);
        }
        c->post_agg = true;
        c->collecting = true;
        for (int i = 0; ok && i < s->n_items; i++) {
            sql_item_t *it = &s->items[i];
            if (it->e->kind == X_STAR) {
                ok = fail(c, it->e->line, it->e->col, DM_ERR_INVALID,
                          "SELECT * with GROUP BY: name the columns (window_start, window_end, "
                          "the groups and the aggregates)");
                break;
            }
            char *x = emit_text(c, it->e, NULL, NULL);
            if (!x) {
                ok = false;
                break;
            }
            json_array_append_new(cols, json_pack("s++", x, " AS ", item_name(c, it, i)));
            free(x);
        }
        if (ok && s->having) {
            ty_t t;
            having = emit_text(c, s->having, &t, NULL);
            if (!having) ok = false;
        }
        c->post_agg = false;
        c->collecting = false;
        for (int k = 0; ok && k < c->n_agg; k++) {
            /* the aggregate step's argument is read before it */
            json_array_append_new(aggs, json_pack("s++", c->agg_text[k], " AS ", c->agg_name[k]));
        }
    } else if (ok) {
        for (int i = 0; ok && i < s->n_items; i++) {
            sql_item_t *it = &s->items[i];
            if (it->e->kind == X_STAR) {
                rel_t *r = NULL;
                if (it->e->n_parts) {
                    for (int k = 0; k < c->n_rels && !r; k++)
                        if (!strcmp(rel_label(&c->rels[k]), it->e->parts[0])) r = &c->rels[k];
                    if (!r) {
                        ok = fail(c, it->e->line, it->e->col, DM_ERR_INVALID,
                                  "'%s' names no source of the query", it->e->parts[0]);
                        break;
                    }
                }
                if (!r || (r->role == R_STREAM && c->n_rels == 1)) {
                    json_array_append_new(cols, json_string("*"));
                    star = true;
                    if (!r) /* every joined table's fields */
                        for (int k = 1; k < c->n_rels; k++) {
                            const dm_avro_node_t *rs = unwrap(c->rels[k].schema);
                            for (uint32_t f = 0;
                                 rs && c->rels[k].role == R_TABLE && f < rs->n_fields; f++)
                                table_name(c, &c->rels[k], rs->fields[f].name);
                        }
                    continue;
                }
                const dm_avro_node_t *rs = unwrap(r->schema);
                if (!rs) {
                    ok = fail(c, it->e->line, it->e->col, DM_ERR_UNSUPPORTED,
                              "%s.* needs the source's schema", rel_label(r));
                    break;
                }
                for (uint32_t f = 0; f < rs->n_fields; f++) {
                    const char *fn = rs->fields[f].name;
                    const char *cn = r->role == R_STREAM  ? fn
                                     : r->role == R_TABLE ? table_name(c, r, fn)
                                                          : other_name(c, r, fn);
                    sb_t b = {0};
                    put_part(&b, cn);
                    json_array_append_new(cols, json_pack("s++", b.s, " AS ", fn));
                    free(b.s);
                }
                continue;
            }
            ty_t t;
            bool stream;
            char *x = emit_text(c, it->e, &t, &stream);
            if (!x) {
                ok = false;
                break;
            }
            ok = check_engine(c, it->e, x, stream);
            json_array_append_new(cols, json_pack("s++", x, " AS ", item_name(c, it, i)));
            free(x);
        }
    }
    /* output names are unique */
    for (size_t i = 0; ok && i < json_array_size(cols); i++) {
        const char *a = last_as(json_string_value(json_array_get(cols, i)));
        for (size_t k = 0; a && k < i; k++) {
            const char *b = last_as(json_string_value(json_array_get(cols, k)));
            if (b && !strcmp(a, b)) {
                ok = fail(c, s->items[i < (size_t)s->n_items ? i : 0].e->line,
                          s->items[i < (size_t)s->n_items ? i : 0].e->col, DM_ERR_INVALID,
                          "two columns are named '%s'; rename one with AS", a + 4);
                break;
            }
        }
    }

    /* the steps, in the order records meet them */
    if (ok) {
        add_filter(steps, pre, n_pre);
        for (int i = 0; i < s->n_joins; i++) {
            rel_t *r = &c->rels[i + 1];
            if (jps[i].interval) {
                json_t *conf =
                    json_pack("{s:s, s:s, s:I, s:s}", "with", r->name, "on", r->key_field, "within",
                              (json_int_t)(-jps[i].lo > jps[i].hi ? -jps[i].lo : jps[i].hi), "time",
                              r->time_field);
                json_array_append_new(steps, step1("join", conf));
                if (jps[i].lo != -jps[i].hi) {
                    char *cond[1];
                    sb_t b = {0};
                    sb_t tn = {0};
                    put_part(&tn, other_name(c, r, r->time_field));
                    sb_printf(&b, "(%s BETWEEN (", tn.s);
                    put_part(&b, r->time_field);
                    sb_printf(&b, " + %" PRId64 ") AND (", jps[i].lo);
                    put_part(&b, r->time_field);
                    sb_printf(&b, " + %" PRId64 "))", jps[i].hi);
                    cond[0] = b.s;
                    add_filter(steps, cond, 1);
                    free(b.s);
                    free(tn.s);
                }
                continue;
            }
            char *on = emit_text(c, jps[i].stream_key, NULL, NULL);
            if (!on) {
                ok = false;
                break;
            }
            if (!r->left) table_name(c, r, r->key_field); /* an inner join: matched rows */
            json_t *fields = json_array();
            for (int k = 0; k < r->n_need; k++)
                json_array_append_new(fields, strcmp(r->need[k], r->as[k])
                                                  ? json_pack("s++", r->need[k], " AS ", r->as[k])
                                                  : json_string(r->need[k]));
            json_t *conf = json_pack("{s:s, s:s}", "with", r->name, "on", on);
            free(on);
            if (json_array_size(fields))
                json_object_set_new(conf, "fields", fields);
            else
                json_decref(fields);
            json_array_append_new(steps, step1("enrich", conf));
            if (!r->left) {
                sb_t b = {0};
                put_part(&b, table_name(c, r, r->key_field));
                sb_add(&b, " IS NOT NULL");
                json_array_append_new(steps, json_pack("{s:s}", "filter", b.s));
                free(b.s);
            }
        }
    }
    if (ok) {
        add_filter(steps, post, n_post);
        if (agg) {
            json_t *w = json_object();
            static const char *const types[] = {"", "tumbling", "hopping", "session"};
            json_object_set_new(w, "type", json_string(types[s->from.window]));
            if (s->from.size) json_object_set_new(w, "size", json_integer(s->from.size));
            if (s->from.slide) json_object_set_new(w, "slide", json_integer(s->from.slide));
            if (s->from.gap) json_object_set_new(w, "gap", json_integer(s->from.gap));
            json_t *conf = json_pack("{s:o, s:s, s:O, s:O}", "window", w, "time", time, "group_by",
                                     group, "aggregates", aggs);
            json_array_append_new(steps, step1("aggregate", conf));
            if (having) add_filter(steps, &having, 1);
        }
        bool identity = star && json_array_size(cols) == 1;
        if (agg) { /* the aggregate's own output, in its order: no project */
            json_t *same = json_array();
            json_array_append_new(same, json_string("window_start AS window_start"));
            json_array_append_new(same, json_string("window_end AS window_end"));
            for (size_t k = 0; k < json_array_size(group); k++) {
                const char *g = last_as(json_string_value(json_array_get(group, k)));
                json_array_append_new(same, json_pack("s++", g + 4, " AS ", g + 4));
            }
            for (size_t k = 0; k < json_array_size(aggs); k++) {
                const char *g = last_as(json_string_value(json_array_get(aggs, k)));
                json_array_append_new(same, json_pack("s++", g + 4, " AS ", g + 4));
            }
            identity = json_equal(same, cols);
            json_decref(same);
        }
        if (json_array_size(cols) && !identity)
            json_array_append_new(steps, json_pack("{s:O}", "project", cols));
    }
    for (int i = 0; i < n_pre; i++)
        free(pre[i]);
    for (int i = 0; i < n_post; i++)
        free(post[i]);
    for (int i = 0; i < c->n_group; i++)
        free(c->group_text[i]);
    for (int i = 0; i < c->n_agg; i++)
        free(c->agg_text[i]);
    c->n_group = c->n_agg = 0;
    free(time);
    free(having);
    json_decref(group);
    json_decref(aggs);
    json_decref(cols);
    return ok && !c->failed;
}

/* ---- a query ------------------------------------------------------------------------------- */

static bool compile_query(cc_t *c, sql_query_t *q, json_t *out)
{
    json_t *from = json_array(), *steps = NULL;
    bool ok = true;
    for (int i = 0; ok && i < q->n_branches; i++) {
        sql_select_t *s = q->branches[i];
        json_t *bs = json_array();
        ok = compile_select(c, s, from, bs);
        if (ok && q->n_branches > 1 && (s->n_joins || s->from.window || s->from.sub))
            ok = fail(c, s->line, s->col, DM_ERR_UNSUPPORTED,
                      "the branches of a UNION ALL read one source each, without joins or "
                      "windows; hint: FROM (SELECT * FROM a UNION ALL SELECT * FROM b) with "
                      "the joins and windows outside");
        if (ok && c->step && q->n_branches > 1)
            ok = fail(c, s->line, s->col, DM_ERR_UNSUPPORTED,
                      "a sql step has one input; UNION ALL belongs in the pipeline's query");
        if (ok && steps && !json_equal(steps, bs))
            ok = fail(c, s->line, s->col, DM_ERR_UNSUPPORTED,
                      "the branches of a UNION ALL run as one chain over the union of their "
                      "sources (fields matched by name), so they must select and filter alike");
        if (!steps)
            steps = bs;
        else
            json_decref(bs);
    }
    if (ok) {
        json_object_set_new(out, "from", from);
        json_object_set_new(out, "steps", steps);
    } else {
        json_decref(from);
        json_decref(steps);
    }
    return ok;
}

dm_err_t dm_sql_compile(const char *query, const dm_sql_catalog_t *cat, bool step,
                        const dm_avro_node_t *input, json_t **out, dm_error_t *err)
{
    *out = NULL;
    dm_arena_t arena;
    dm_arena_init(&arena, 0);
    sql_parser_t ps;
    dm_error_t local = {0};
    if (!err) err = &local;
    dm_sql_parser_init(&ps, query, &arena, err);
    sql_query_t *q = ps.failed ? NULL : dm_sql_parse_query(&ps);
    if (q && !ps.failed) {
        dm_sql_is_op(&ps.t, ";") ? dm_sql_next(&ps) : (void)0;
        if (ps.t.kind != K_EOF)
            dm_sql_fail_at(&ps, ps.t.line, ps.t.col, "expected the end of the query, found '%.*s'",
                           (int)(ps.t.len > 40 ? 40 : ps.t.len), ps.t.p);
    }
    if (ps.failed || !q) {
        dm_arena_destroy(&arena);
        return err->code ? err->code : DM_ERR_INVALID;
    }
    cc_t c = {.text = query, .err = err, .cat = cat, .step = step, .input = input, .arena = &arena};
    json_t *o = json_object();
    bool ok = compile_query(&c, q, o);
    dm_arena_destroy(&arena);
    if (!ok) {
        json_decref(o);
        return err->code ? err->code : DM_ERR_INVALID;
    }
    *out = o;
    return DM_OK;
}

json_t *dm_sql_reads(const char *query, bool step, dm_error_t *err)
{
    json_t *o = NULL;
    if (dm_sql_compile(query, NULL, step, NULL, &o, err)) return NULL;
    json_t *names = json_deep_copy(json_object_get(o, "from"));
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(o, "steps"), i, s)
    {
        const char *k;
        json_t *v;
        json_object_foreach(s, k, v)
        {
            const char *with = json_string_value(json_object_get(v, "with"));
            bool seen = false;
            for (size_t x = 0; with && x < json_array_size(names); x++)
                seen |= !strcmp(json_string_value(json_array_get(names, x)), with);
            if (with && !seen) json_array_append_new(names, json_string(with));
        }
    }
    json_decref(o);
    return names;
}
