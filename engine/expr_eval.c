/* engine/expr_eval.c — evaluation of compiled expressions over Avro values. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "engine/expr_internal.h"

typedef struct ectx {
    const dm_expr_t *e;
    const dm_avro_value_t *record;
    dm_arena_t *arena;
    dm_error_t *err;
} ectx_t;

static dm_err_t rt_error(ectx_t *c, const node_t *n, const char *what)
{
    return dm_error_set(c->err, DM_ERR_INVALID, "expression '%s': column %d: %s", c->e->text,
                        n->col, what);
}

#define SET_NULL(out, t) (*(out) = (dm_expr_value_t){.type = (t), .null = true})

static double as_double(const dm_expr_value_t *v)
{
    return v->type == DM_EXPR_DOUBLE ? v->u.d : (double)v->u.l;
}

/* Reads a field value through the precompiled steps. */
static void load_field(ectx_t *c, const node_t *n, dm_expr_value_t *out)
{
    const dm_avro_value_t *v = c->record;
    for (uint32_t i = 0; i < n->n_steps; i++) {
        if (v->type != DM_AVRO_RECORD || n->steps[i] >= v->len) {
            SET_NULL(out, n->type);
            return;
        }
        v = &v->u.v[n->steps[i]];
    }
    if (v->type == DM_AVRO_NULL || v->type == DM_AVRO_ABSENT) {
        SET_NULL(out, n->type);
        return;
    }
    *out = (dm_expr_value_t){.type = n->type};
    switch (n->conv) {
    case CONV_BOOL: out->u.b = v->u.b; break;
    case CONV_INT: out->u.l = v->u.i; break;
    case CONV_LONG:
    case CONV_TS_MILLIS: out->u.l = v->u.l; break;
    case CONV_TS_MICROS: out->u.l = v->u.l >= 0 ? v->u.l / 1000 : -((-v->u.l + 999) / 1000); break;
    case CONV_FLOAT: out->u.d = v->u.f; break;
    case CONV_DOUBLE: out->u.d = v->u.d; break;
    case CONV_STRING:
        out->u.s = (const char *)v->u.p;
        out->len = v->len;
        break;
    case CONV_ENUM: {
        const char *sym = (uint32_t)v->u.i < n->leaf->n_symbols ? n->leaf->symbols[v->u.i] : "";
        out->u.s = sym;
        out->len = (uint32_t)strlen(sym);
        break;
    }
    case CONV_DECIMAL: {
        /* big-endian two's complement unscaled value */
        double d = 0;
        for (uint32_t i = 0; i < v->len; i++)
            d = d * 256 + v->u.p[i];
        if (v->len && (v->u.p[0] & 0x80)) d -= ldexp(1.0, 8 * (int)v->len);
        out->u.d = d / pow(10, n->leaf->scale);
        break;
    }
    }
}

static int cmp_values(const dm_expr_value_t *a, const dm_expr_value_t *b)
{
    if (a->type == DM_EXPR_STRING) {
        uint32_t n = a->len < b->len ? a->len : b->len;
        int r = memcmp(a->u.s, b->u.s, n);
        return r ? (r < 0 ? -1 : 1) : (a->len < b->len ? -1 : a->len > b->len);
    }
    if (a->type == DM_EXPR_BOOL) return (int)a->u.b - (int)b->u.b;
    if (a->type == DM_EXPR_DOUBLE || b->type == DM_EXPR_DOUBLE) {
        double x = as_double(a), y = as_double(b);
        return x < y ? -1 : x > y;
    }
    return a->u.l < b->u.l ? -1 : a->u.l > b->u.l;
}

static dm_err_t eval(ectx_t *c, const node_t *n, dm_expr_value_t *out);

/* Formats a value as text (for CAST and concat). */
static dm_err_t to_text(ectx_t *c, const dm_expr_value_t *v, const char **s, uint32_t *len)
{
    char buf[64];
    int n = 0;
    switch (v->type) {
    case DM_EXPR_STRING:
        *s = v->u.s;
        *len = v->len;
        return DM_OK;
    case DM_EXPR_BOOL: n = snprintf(buf, sizeof(buf), "%s", v->u.b ? "true" : "false"); break;
    case DM_EXPR_LONG: n = snprintf(buf, sizeof(buf), "%lld", (long long)v->u.l); break;
    case DM_EXPR_DOUBLE:
        n = snprintf(buf, sizeof(buf), "%.15g", v->u.d);
        if (strtod(buf, NULL) != v->u.d) n = snprintf(buf, sizeof(buf), "%.17g", v->u.d);
        break;
    case DM_EXPR_TIMESTAMP:
        dm_format_iso8601_ms(v->u.l, buf, sizeof(buf));
        n = (int)strlen(buf);
        break;
    case DM_EXPR_NULL: n = 0; break;
    }
    char *p = dm_arena_memdup(c->arena, buf, (size_t)n);
    if (!p) return dm_error_set(c->err, DM_ERR_NOMEM, "out of memory");
    *s = p;
    *len = (uint32_t)n;
    return DM_OK;
}

/* SQL LIKE with % and _ (one UTF-8 character) and backslash escapes. */
static bool like(const char *s, const char *se, const char *p, const char *pe)
{
    while (p < pe) {
        if (*p == '%') {
            while (p < pe && *p == '%')
                p++;
            if (p == pe) return true;
            for (const char *t = s; t <= se; t++)
                if (like(t, se, p, pe)) return true;
            return false;
        }
        if (s == se) return false;
        if (*p == '_') {
            s++;
            while (s < se && ((unsigned char)*s & 0xc0) == 0x80)
                s++;
            p++;
            continue;
        }
        if (*p == '\\' && p + 1 < pe) p++;
        if (*p != *s) return false;
        p++;
        s++;
    }
    return s == se;
}

static dm_err_t cast(ectx_t *c, const node_t *n, const dm_expr_value_t *v, dm_expr_value_t *out)
{
    dm_expr_type_t to = (dm_expr_type_t)n->op;
    if (v->null) {
        SET_NULL(out, to);
        return DM_OK;
    }
    *out = (dm_expr_value_t){.type = to};
    char buf[128];
    switch (to) {
    case DM_EXPR_STRING: return to_text(c, v, &out->u.s, &out->len);
    case DM_EXPR_BOOL:
        if (v->type == DM_EXPR_BOOL)
            out->u.b = v->u.b;
        else if (v->type == DM_EXPR_LONG)
            out->u.b = v->u.l != 0;
        else if (v->type == DM_EXPR_STRING && v->len == 4 && !strncasecmp(v->u.s, "true", 4))
            out->u.b = true;
        else if (v->type == DM_EXPR_STRING && v->len == 5 && !strncasecmp(v->u.s, "false", 5))
            out->u.b = false;
        else
            return rt_error(c, n, "value cannot be cast to boolean");
        return DM_OK;
    case DM_EXPR_LONG:
    case DM_EXPR_DOUBLE:
    case DM_EXPR_TIMESTAMP:
        if (v->type == DM_EXPR_STRING) {
            if (v->len >= sizeof(buf)) return rt_error(c, n, "string too long to cast");
            memcpy(buf, v->u.s, v->len);
            buf[v->len] = '\0';
            char *end;
            errno = 0;
            if (to == DM_EXPR_TIMESTAMP) {
                if (!dm_expr_parse_timestamp(buf, v->len, &out->u.l))
                    return rt_error(c, n, "string is not an ISO-8601 timestamp");
            } else if (to == DM_EXPR_LONG) {
                out->u.l = strtoll(buf, &end, 10);
                if (end == buf || *end || errno) return rt_error(c, n, "string is not an integer");
            } else {
                out->u.d = strtod(buf, &end);
                if (end == buf || *end || errno) return rt_error(c, n, "string is not a number");
            }
        } else if (v->type == DM_EXPR_BOOL) {
            if (to == DM_EXPR_DOUBLE)
                out->u.d = v->u.b;
            else
                out->u.l = v->u.b;
        } else if (to == DM_EXPR_DOUBLE) {
            out->u.d = as_double(v);
        } else if (v->type == DM_EXPR_DOUBLE) {
            if (!isfinite(v->u.d) || fabs(v->u.d) > 9.2e18)
                return rt_error(c, n, "number out of range for long");
            out->u.l = (int64_t)v->u.d;
        } else {
            out->u.l = v->u.l;
        }
        return DM_OK;
    case DM_EXPR_NULL: break;
    }
    SET_NULL(out, to);
    return DM_OK;
}

static dm_err_t arith(ectx_t *c, const node_t *n, dm_expr_value_t *out)
{
    dm_expr_value_t a, b;
    dm_err_t rc = eval(c, n->kids[0], &a);
    if (!rc) rc = eval(c, n->kids[1], &b);
    if (rc) return rc;
    if (a.null || b.null) {
        SET_NULL(out, n->type);
        return DM_OK;
    }
    *out = (dm_expr_value_t){.type = n->type};
    if (n->type == DM_EXPR_DOUBLE) {
        double x = as_double(&a), y = as_double(&b);
        switch ((arith_op_t)n->op) {
        case OP_ADD: out->u.d = x + y; break;
        case OP_SUB: out->u.d = x - y; break;
        case OP_MUL: out->u.d = x * y; break;
        case OP_DIV:
            if (y == 0) return rt_error(c, n, "division by zero");
            out->u.d = x / y;
            break;
        case OP_MOD: out->u.d = fmod(x, y); break;
        }
        return DM_OK;
    }
    int64_t x = a.u.l, y = b.u.l, r = 0;
    bool overflow = false;
    switch ((arith_op_t)n->op) {
    case OP_ADD: overflow = __builtin_add_overflow(x, y, &r); break;
    case OP_SUB: overflow = __builtin_sub_overflow(x, y, &r); break;
    case OP_MUL: overflow = __builtin_mul_overflow(x, y, &r); break;
    case OP_DIV:
    case OP_MOD:
        if (y == 0) return rt_error(c, n, n->op == OP_DIV ? "division by zero" : "modulo by zero");
        if (x == INT64_MIN && y == -1) {
            overflow = true;
            break;
        }
        r = n->op == OP_DIV ? x / y : x % y;
        break;
    }
    if (overflow) return rt_error(c, n, "integer overflow");
    out->u.l = r;
    return DM_OK;
}

/* Trims spaces: which = 0 both, 1 left, 2 right. */
static void trim(const char **s, uint32_t *len, int which)
{
    while (which != 2 && *len && isspace((unsigned char)**s))
        (*s)++, (*len)--;
    while (which != 1 && *len && isspace((unsigned char)(*s)[*len - 1]))
        (*len)--;
}

/* Byte offset of the i-th (0-based) UTF-8 character, or len. */
static uint32_t utf8_offset(const char *s, uint32_t len, int64_t i)
{
    uint32_t o = 0;
    while (o < len && i > 0) {
        o++;
        while (o < len && ((unsigned char)s[o] & 0xc0) == 0x80)
            o++;
        i--;
    }
    return o;
}

static dm_err_t call(ectx_t *c, const node_t *n, dm_expr_value_t *out)
{
    dm_expr_value_t a[3];
    func_t fn = (func_t)n->op;
    /* Variadic and null-tolerant functions evaluate their arguments themselves. */
    if (fn == F_COALESCE) {
        for (uint32_t i = 0; i < n->n_kids; i++) {
            dm_err_t rc = eval(c, n->kids[i], out);
            if (rc) return rc;
            if (!out->null) {
                if (n->type == DM_EXPR_DOUBLE && out->type == DM_EXPR_LONG)
                    out->u.d = (double)out->u.l;
                out->type = n->type;
                return DM_OK;
            }
        }
        SET_NULL(out, n->type);
        return DM_OK;
    }
    if (fn == F_CONCAT) {
        dm_buf_t tmp = DM_BUF_INIT;
        for (uint32_t i = 0; i < n->n_kids; i++) {
            dm_expr_value_t v;
            dm_err_t rc = eval(c, n->kids[i], &v);
            const char *s;
            uint32_t len;
            if (!rc && !v.null) rc = to_text(c, &v, &s, &len);
            if (!rc && !v.null) rc = dm_buf_append(&tmp, s, len);
            if (rc) {
                dm_buf_free(&tmp);
                return rc;
            }
        }
        *out = (dm_expr_value_t){.type = DM_EXPR_STRING, .len = (uint32_t)tmp.len};
        out->u.s = dm_arena_memdup(c->arena, tmp.data ? (const char *)tmp.data : "", tmp.len);
        dm_buf_free(&tmp);
        return DM_OK;
    }
    if (fn == F_GREATEST || fn == F_LEAST) {
        bool have = false;
        for (uint32_t i = 0; i < n->n_kids; i++) {
            dm_expr_value_t v;
            dm_err_t rc = eval(c, n->kids[i], &v);
            if (rc) return rc;
            if (v.null) {
                SET_NULL(out, n->type);
                return DM_OK;
            }
            if (!have || (fn == F_GREATEST ? cmp_values(&v, out) > 0 : cmp_values(&v, out) < 0))
                *out = v;
            have = true;
        }
        if (n->type == DM_EXPR_DOUBLE && out->type == DM_EXPR_LONG) out->u.d = (double)out->u.l;
        out->type = n->type;
        return DM_OK;
    }
    if (fn == F_CHANGED) {
        dm_err_t rc = eval(c, n->kids[0], &a[0]);
        if (!rc) rc = eval(c, n->kids[1], &a[1]);
        if (rc) return rc;
        *out = (dm_expr_value_t){.type = DM_EXPR_BOOL};
        out->u.b = a[0].null != a[1].null || (!a[0].null && cmp_values(&a[0], &a[1]) != 0);
        return DM_OK;
    }
    if (fn == F_NOW) {
        *out = (dm_expr_value_t){.type = DM_EXPR_TIMESTAMP};
        out->u.l = dm_wall_ms();
        return DM_OK;
    }
    for (uint32_t i = 0; i < n->n_kids && i < 3; i++) {
        dm_err_t rc = eval(c, n->kids[i], &a[i]);
        if (rc) return rc;
        if (a[i].null && fn != F_NULLIF) {
            SET_NULL(out, n->type);
            return DM_OK;
        }
    }
    *out = (dm_expr_value_t){.type = n->type};
    switch (fn) {
    case F_LOWER:
    case F_UPPER: {
        char *s = dm_arena_alloc(c->arena, a[0].len ? a[0].len : 1);
        for (uint32_t i = 0; i < a[0].len; i++)
            s[i] = (char)(fn == F_LOWER ? tolower((unsigned char)a[0].u.s[i])
                                        : toupper((unsigned char)a[0].u.s[i]));
        out->u.s = s;
        out->len = a[0].len;
        return DM_OK;
    }
    case F_LENGTH: /* characters, not bytes */
        for (uint32_t i = 0; i < a[0].len; i++)
            out->u.l += ((unsigned char)a[0].u.s[i] & 0xc0) != 0x80;
        return DM_OK;
    case F_TRIM:
    case F_LTRIM:
    case F_RTRIM:
        out->u.s = a[0].u.s;
        out->len = a[0].len;
        trim(&out->u.s, &out->len, fn == F_TRIM ? 0 : fn == F_LTRIM ? 1 : 2);
        return DM_OK;
    case F_SUBSTR: {
        int64_t start = a[1].u.l < 1 ? 1 : a[1].u.l; /* 1-based */
        uint32_t from = utf8_offset(a[0].u.s, a[0].len, start - 1);
        uint32_t to = a[0].len;
        if (n->n_kids == 3) {
            if (a[2].u.l < 0) return rt_error(c, n, "substr length is negative");
            to = from + utf8_offset(a[0].u.s + from, a[0].len - from, a[2].u.l);
        }
        out->u.s = a[0].u.s + from;
        out->len = to - from;
        return DM_OK;
    }
    case F_REPLACE: {
        dm_buf_t tmp = DM_BUF_INIT;
        const char *s = a[0].u.s, *end = s + a[0].len;
        dm_err_t rc = DM_OK;
        while (s < end && !rc) {
            if (a[1].len && (size_t)(end - s) >= a[1].len && !memcmp(s, a[1].u.s, a[1].len)) {
                rc = dm_buf_append(&tmp, a[2].u.s, a[2].len);
                s += a[1].len;
            } else {
                rc = dm_buf_append(&tmp, s++, 1);
            }
        }
        out->len = (uint32_t)tmp.len;
        out->u.s = dm_arena_memdup(c->arena, tmp.data ? (const char *)tmp.data : "", tmp.len);
        dm_buf_free(&tmp);
        return rc;
    }
    case F_STARTS_WITH:
        out->u.b = a[1].len <= a[0].len && !memcmp(a[0].u.s, a[1].u.s, a[1].len);
        return DM_OK;
    case F_ENDS_WITH:
        out->u.b =
            a[1].len <= a[0].len && !memcmp(a[0].u.s + a[0].len - a[1].len, a[1].u.s, a[1].len);
        return DM_OK;
    case F_CONTAINS:
        out->u.b = memmem(a[0].u.s, a[0].len, a[1].u.s, a[1].len) != NULL;
        return DM_OK;
    case F_NULLIF:
        if (a[0].null || (!a[1].null && cmp_values(&a[0], &a[1]) == 0))
            SET_NULL(out, n->type);
        else
            *out = a[0];
        return DM_OK;
    case F_ABS:
        if (n->type == DM_EXPR_DOUBLE)
            out->u.d = fabs(a[0].u.d);
        else if (a[0].u.l == INT64_MIN)
            return rt_error(c, n, "integer overflow");
        else
            out->u.l = a[0].u.l < 0 ? -a[0].u.l : a[0].u.l;
        return DM_OK;
    case F_ROUND:
        if (n->n_kids == 2) {
            double scale = pow(10, (double)a[1].u.l);
            out->u.d = round(as_double(&a[0]) * scale) / scale;
        } else if (n->type == DM_EXPR_DOUBLE) {
            out->u.d = round(a[0].u.d);
        } else {
            out->u.l = a[0].u.l;
        }
        return DM_OK;
    case F_FLOOR:
    case F_CEIL:
        if (n->type == DM_EXPR_DOUBLE)
            out->u.d = fn == F_FLOOR ? floor(a[0].u.d) : ceil(a[0].u.d);
        else
            out->u.l = a[0].u.l;
        return DM_OK;
    case F_MOD:
        if (a[1].u.l == 0) return rt_error(c, n, "modulo by zero");
        out->u.l = a[1].u.l == -1 ? 0 : a[0].u.l % a[1].u.l;
        return DM_OK;
    case F_EPOCH_MS: out->u.l = a[0].u.l; return DM_OK;
    case F_OP: *out = a[0]; return DM_OK;
    case F_IS_INSERT: out->u.b = a[0].len == 1 && a[0].u.s[0] == 'c'; return DM_OK;
    case F_IS_UPDATE: out->u.b = a[0].len == 1 && a[0].u.s[0] == 'u'; return DM_OK;
    case F_IS_DELETE: out->u.b = a[0].len == 1 && a[0].u.s[0] == 'd'; return DM_OK;
    case F_IS_SNAPSHOT: out->u.b = a[0].len == 1 && a[0].u.s[0] == 'r'; return DM_OK;
    default: break;
    }
    return rt_error(c, n, "internal: unknown function");
}

static dm_err_t eval(ectx_t *c, const node_t *n, dm_expr_value_t *out)
{
    dm_err_t rc;
    switch (n->kind) {
    case N_LIT: *out = n->lit; return DM_OK;
    case N_FIELD: load_field(c, n, out); return DM_OK;
    case N_NOT:
        if ((rc = eval(c, n->kids[0], out))) return rc;
        out->type = DM_EXPR_BOOL;
        if (!out->null) out->u.b = !out->u.b;
        return DM_OK;
    case N_NEG:
        if ((rc = eval(c, n->kids[0], out))) return rc;
        if (out->null) return DM_OK;
        if (out->type == DM_EXPR_DOUBLE)
            out->u.d = -out->u.d;
        else if (out->u.l == INT64_MIN)
            return rt_error(c, n, "integer overflow");
        else
            out->u.l = -out->u.l;
        return DM_OK;
    case N_AND:
    case N_OR: {
        /* Three-valued logic with short circuit. */
        bool is_and = n->kind == N_AND;
        dm_expr_value_t a, b;
        if ((rc = eval(c, n->kids[0], &a))) return rc;
        if (!a.null && a.u.b != is_and) {
            *out = (dm_expr_value_t){.type = DM_EXPR_BOOL, .u.b = !is_and};
            return DM_OK;
        }
        if ((rc = eval(c, n->kids[1], &b))) return rc;
        if (!b.null && b.u.b != is_and) {
            *out = (dm_expr_value_t){.type = DM_EXPR_BOOL, .u.b = !is_and};
            return DM_OK;
        }
        if (a.null || b.null)
            SET_NULL(out, DM_EXPR_BOOL);
        else
            *out = (dm_expr_value_t){.type = DM_EXPR_BOOL, .u.b = is_and};
        return DM_OK;
    }
    case N_CMP: {
        dm_expr_value_t a, b;
        if ((rc = eval(c, n->kids[0], &a)) || (rc = eval(c, n->kids[1], &b))) return rc;
        if (a.null || b.null) {
            SET_NULL(out, DM_EXPR_BOOL);
            return DM_OK;
        }
        int r = cmp_values(&a, &b);
        bool v = false;
        switch ((cmp_op_t)n->op) {
        case OP_EQ: v = r == 0; break;
        case OP_NE: v = r != 0; break;
        case OP_LT: v = r < 0; break;
        case OP_LE: v = r <= 0; break;
        case OP_GT: v = r > 0; break;
        case OP_GE: v = r >= 0; break;
        }
        *out = (dm_expr_value_t){.type = DM_EXPR_BOOL, .u.b = v};
        return DM_OK;
    }
    case N_ARITH: return arith(c, n, out);
    case N_CONCAT: {
        dm_expr_value_t a, b;
        if ((rc = eval(c, n->kids[0], &a)) || (rc = eval(c, n->kids[1], &b))) return rc;
        if (a.null || b.null) {
            SET_NULL(out, DM_EXPR_STRING);
            return DM_OK;
        }
        const char *sa, *sb;
        uint32_t la, lb;
        if ((rc = to_text(c, &a, &sa, &la)) || (rc = to_text(c, &b, &sb, &lb))) return rc;
        char *s = dm_arena_alloc(c->arena, (size_t)la + lb + 1);
        if (!s) return dm_error_set(c->err, DM_ERR_NOMEM, "out of memory");
        memcpy(s, sa, la);
        memcpy(s + la, sb, lb);
        *out = (dm_expr_value_t){.type = DM_EXPR_STRING, .len = la + lb, .u.s = s};
        return DM_OK;
    }
    case N_ISNULL: {
        dm_expr_value_t a;
        if ((rc = eval(c, n->kids[0], &a))) return rc;
        *out = (dm_expr_value_t){.type = DM_EXPR_BOOL, .u.b = a.null != n->negate};
        return DM_OK;
    }
    case N_IN: {
        dm_expr_value_t a;
        if ((rc = eval(c, n->kids[0], &a))) return rc;
        if (a.null) {
            SET_NULL(out, DM_EXPR_BOOL);
            return DM_OK;
        }
        bool saw_null = false;
        for (uint32_t i = 1; i < n->n_kids; i++) {
            dm_expr_value_t b;
            if ((rc = eval(c, n->kids[i], &b))) return rc;
            if (b.null) {
                saw_null = true;
            } else if (cmp_values(&a, &b) == 0) {
                *out = (dm_expr_value_t){.type = DM_EXPR_BOOL, .u.b = !n->negate};
                return DM_OK;
            }
        }
        if (saw_null)
            SET_NULL(out, DM_EXPR_BOOL);
        else
            *out = (dm_expr_value_t){.type = DM_EXPR_BOOL, .u.b = n->negate};
        return DM_OK;
    }
    case N_LIKE: {
        dm_expr_value_t a, p;
        if ((rc = eval(c, n->kids[0], &a)) || (rc = eval(c, n->kids[1], &p))) return rc;
        if (a.null || p.null) {
            SET_NULL(out, DM_EXPR_BOOL);
            return DM_OK;
        }
        bool m = like(a.u.s, a.u.s + a.len, p.u.s, p.u.s + p.len);
        *out = (dm_expr_value_t){.type = DM_EXPR_BOOL, .u.b = m != n->negate};
        return DM_OK;
    }
    case N_BETWEEN: {
        dm_expr_value_t a, lo, hi;
        if ((rc = eval(c, n->kids[0], &a)) || (rc = eval(c, n->kids[1], &lo)) ||
            (rc = eval(c, n->kids[2], &hi)))
            return rc;
        if (a.null || lo.null || hi.null) {
            SET_NULL(out, DM_EXPR_BOOL);
            return DM_OK;
        }
        bool in = cmp_values(&a, &lo) >= 0 && cmp_values(&a, &hi) <= 0;
        *out = (dm_expr_value_t){.type = DM_EXPR_BOOL, .u.b = in != n->negate};
        return DM_OK;
    }
    case N_CASE: {
        uint32_t pairs = n->negate ? n->n_kids - 1 : n->n_kids;
        for (uint32_t i = 0; i < pairs; i += 2) {
            dm_expr_value_t cond;
            if ((rc = eval(c, n->kids[i], &cond))) return rc;
            if (!cond.null && cond.u.b) {
                if ((rc = eval(c, n->kids[i + 1], out))) return rc;
                goto widen;
            }
        }
        if (n->negate) {
            if ((rc = eval(c, n->kids[n->n_kids - 1], out))) return rc;
        } else {
            SET_NULL(out, n->type);
        }
    widen:
        if (n->type == DM_EXPR_DOUBLE && out->type == DM_EXPR_LONG && !out->null)
            out->u.d = (double)out->u.l;
        out->type = n->type;
        return DM_OK;
    }
    case N_CAST: {
        dm_expr_value_t a;
        if ((rc = eval(c, n->kids[0], &a))) return rc;
        return cast(c, n, &a, out);
    }
    case N_CALL: return call(c, n, out);
    }
    return rt_error(c, n, "internal: unknown node");
}

dm_err_t dm_expr_eval(const dm_expr_t *e, const dm_avro_value_t *record, dm_arena_t *arena,
                      dm_expr_value_t *out, dm_error_t *err)
{
    ectx_t c = {e, record, arena, err};
    dm_err_t rc = eval(&c, e->root, out);
    /* Widen to the static type (LONG literal where DOUBLE is expected, …). */
    if (!rc && !out->null && e->root->type == DM_EXPR_DOUBLE && out->type == DM_EXPR_LONG) {
        out->u.d = (double)out->u.l;
        out->type = DM_EXPR_DOUBLE;
    }
    return rc;
}

dm_err_t dm_expr_eval_filter(const dm_expr_t *e, const dm_avro_value_t *record, dm_arena_t *arena,
                             bool *keep, dm_error_t *err)
{
    dm_expr_value_t v;
    dm_err_t rc = dm_expr_eval(e, record, arena, &v, err);
    *keep = !rc && !v.null && v.type == DM_EXPR_BOOL && v.u.b;
    return rc;
}
