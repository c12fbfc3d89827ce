/* engine/expr_vec.c — batch evaluation of the common expression shapes.
 *
 * The tree walker (expr_eval.c) boxes every intermediate result and jumps on
 * every node of every record; on a filter such as "flag AND amount > 50.0"
 * that costs more than decoding the record. The shapes that make up most
 * filters and computed columns — fields, literals, comparisons, AND / OR /
 * NOT, IS [NOT] NULL and arithmetic — compile here into a flat postfix
 * program that runs one instruction over a chunk of records at a time, on
 * plain arrays, without jumps on the data (AND and OR combine both sides
 * with masks, which is safe because nothing here can fail).
 *
 * What could fail (integer overflow, division by zero) is not evaluated
 * here: such a record is marked "slow" and its caller evaluates it with the
 * tree walker, which gives the same result or names the same error. An
 * expression with any other node has no program, and every record is slow.
 */
#include <math.h>
#include <string.h>

#include "engine/expr_internal.h"

#define VEC   256 /* records per chunk: registers stay in L1 */
#define VREGS 10  /* registers (the depth of the postfix program) */

/* A register's state byte per record. Ordered, so that the state of a
 * binary op is the larger of its operands'. A boolean register keeps its
 * value in the state byte too: B_FALSE, B_TRUE, VS_NULL or VS_SLOW, so that
 * AND / OR / NOT are one table lookup. */
enum { VS_VAL = 0, VS_NULL = 2, VS_SLOW = 3 };
enum { B_FALSE = 0, B_TRUE = 1 };
enum { R_BOOL, R_LONG, R_DOUBLE };
enum {
    V_FIELD,   /* push the field (steps, conv) */
    V_LIT,     /* push the literal */
    V_CMP_STR, /* push string field (steps) op string literal */
    V_CMP,     /* pop b, a; push a op b */
    V_AND,
    V_OR,
    V_NOT,
    V_ISNULL, /* negate: IS NOT NULL */
    V_ARITH,
    V_NEG,
    V_CMP_LIT,   /* pop a; push a op literal (in a's representation) */
    V_UNBOX,     /* the top boolean register as a value 0 / 1 (to compare it) */
    V_TO_DOUBLE, /* the top register's longs become doubles */
};

struct vop {
    uint8_t kind;
    uint8_t rep;          /* R_*: what the op pushes */
    uint8_t a_rep, b_rep; /* V_CMP, V_ARITH: representations of the operands */
    uint8_t op;           /* cmp_op_t or arith_op_t */
    uint8_t conv;         /* V_FIELD */
    bool negate;
    const uint32_t *steps;
    uint32_t n_steps;
    dm_expr_value_t lit;
};

typedef struct vreg {
    uint8_t st[VEC];
    union {
        int64_t l[VEC];
        double d[VEC];
    } u;
} vreg_t;

/* ---- compiling ------------------------------------------------------------------ */

typedef struct vbuild {
    dm_expr_t *e;
    struct vop ops[64];
    uint32_t n;
    int depth, max_depth;
    bool ok;
} vbuild_t;

static int rep_of(dm_expr_type_t t)
{
    switch (t) {
    case DM_EXPR_BOOL: return R_BOOL;
    case DM_EXPR_LONG:
    case DM_EXPR_TIMESTAMP: return R_LONG;
    case DM_EXPR_DOUBLE: return R_DOUBLE;
    default: return -1;
    }
}

static void emit(vbuild_t *b, struct vop op, int pops)
{
    if (b->n == sizeof(b->ops) / sizeof(b->ops[0])) {
        b->ok = false;
        return;
    }
    b->ops[b->n++] = op;
    b->depth += 1 - pops;
    if (b->depth > b->max_depth) b->max_depth = b->depth;
}

static bool field_ok(const node_t *n)
{
    if (n->kind != N_FIELD) return false;
    switch (n->conv) {
    case CONV_BOOL:
    case CONV_INT:
    case CONV_LONG:
    case CONV_TS_MILLIS:
    case CONV_FLOAT:
    case CONV_DOUBLE: return n->type != DM_EXPR_NULL;
    default: return false;
    }
}

static const cmp_op_t flipped[] = {[OP_EQ] = OP_EQ, [OP_NE] = OP_NE, [OP_LT] = OP_GT,
                                   [OP_LE] = OP_GE, [OP_GT] = OP_LT, [OP_GE] = OP_LE};

static void build(vbuild_t *b, const node_t *n)
{
    if (!b->ok) return;
    int rep = rep_of(n->type);
    switch (n->kind) {
    case N_FIELD:
        if (!field_ok(n) || rep < 0) break;
        emit(b,
             (struct vop){.kind = V_FIELD,
                          .rep = (uint8_t)rep,
                          .conv = (uint8_t)n->conv,
                          .steps = n->steps,
                          .n_steps = n->n_steps},
             0);
        return;
    case N_LIT:
        if (n->lit.null) {
            emit(b, (struct vop){.kind = V_LIT, .rep = R_BOOL, .lit = n->lit}, 0);
            return;
        }
        if (rep < 0) break;
        emit(b, (struct vop){.kind = V_LIT, .rep = (uint8_t)rep, .lit = n->lit}, 0);
        return;
    case N_CMP: {
        const node_t *l = n->kids[0], *r = n->kids[1];
        if (l->type == DM_EXPR_STRING || r->type == DM_EXPR_STRING) {
            /* a string field against a string literal, either way round */
            bool lf = l->kind == N_FIELD && l->conv == CONV_STRING && r->kind == N_LIT;
            bool rf = r->kind == N_FIELD && r->conv == CONV_STRING && l->kind == N_LIT;
            const node_t *f = lf ? l : r, *lit = lf ? r : l;
            if ((!lf && !rf) || lit->lit.null || lit->type != DM_EXPR_STRING) break;
            emit(b,
                 (struct vop){.kind = V_CMP_STR,
                              .rep = R_BOOL,
                              .op = (uint8_t)(lf ? (cmp_op_t)n->op : flipped[n->op]),
                              .steps = f->steps,
                              .n_steps = f->n_steps,
                              .lit = lit->lit},
                 0);
            return;
        }
        int ra = rep_of(l->type), rb = rep_of(r->type);
        if (l->kind == N_LIT && l->lit.null) ra = R_BOOL;
        if (r->kind == N_LIT && r->lit.null) rb = R_BOOL;
        if (ra < 0 || rb < 0 || (ra == R_BOOL) != (rb == R_BOOL)) break;
        /* cmp_values compares as doubles when either side is one */
        int as = ra == R_DOUBLE || rb == R_DOUBLE ? R_DOUBLE : ra;
        if (r->kind == N_LIT || l->kind == N_LIT) {
            const node_t *x = r->kind == N_LIT ? l : r, *lit = r->kind == N_LIT ? r : l;
            if (lit->lit.null) break; /* rare: the tree walker does it */
            build(b, x);
            if (as == R_BOOL) emit(b, (struct vop){.kind = V_UNBOX, .rep = R_LONG}, 1);
            if (as == R_DOUBLE && rep_of(x->type) == R_LONG)
                emit(b, (struct vop){.kind = V_TO_DOUBLE, .rep = R_DOUBLE}, 1);
            struct vop o = {.kind = V_CMP_LIT,
                            .rep = R_BOOL,
                            .a_rep = (uint8_t)as,
                            .op = (uint8_t)(r->kind == N_LIT ? (cmp_op_t)n->op : flipped[n->op]),
                            .lit = lit->lit};
            if (as == R_DOUBLE && rep_of(lit->type) == R_LONG) o.lit.u.d = (double)lit->lit.u.l;
            if (as == R_BOOL) o.lit.u.l = lit->lit.u.b, o.a_rep = R_LONG;
            emit(b, o, 1);
            return;
        }
        build(b, l);
        if (as == R_BOOL) emit(b, (struct vop){.kind = V_UNBOX, .rep = R_LONG}, 1);
        if (as == R_DOUBLE && ra == R_LONG)
            emit(b, (struct vop){.kind = V_TO_DOUBLE, .rep = R_DOUBLE}, 1);
        build(b, r);
        if (as == R_BOOL) emit(b, (struct vop){.kind = V_UNBOX, .rep = R_LONG}, 1);
        if (as == R_DOUBLE && rb == R_LONG)
            emit(b, (struct vop){.kind = V_TO_DOUBLE, .rep = R_DOUBLE}, 1);
        emit(b,
             (struct vop){.kind = V_CMP,
                          .rep = R_BOOL,
                          .a_rep = (uint8_t)(as == R_BOOL ? R_LONG : as),
                          .op = (uint8_t)n->op},
             2);
        return;
    }
    case N_AND:
    case N_OR:
        build(b, n->kids[0]);
        build(b, n->kids[1]);
        emit(b, (struct vop){.kind = n->kind == N_AND ? V_AND : V_OR, .rep = R_BOOL}, 2);
        return;
    case N_NOT:
        build(b, n->kids[0]);
        emit(b, (struct vop){.kind = V_NOT, .rep = R_BOOL}, 1);
        return;
    case N_ISNULL:
        if (n->kids[0]->type == DM_EXPR_STRING) {
            const node_t *f = n->kids[0];
            if (f->kind != N_FIELD || f->conv != CONV_STRING) break;
            /* IS NULL needs only the null flag: load it as a boolean field */
            emit(b,
                 (struct vop){.kind = V_FIELD,
                              .rep = R_BOOL,
                              .conv = 0xff,
                              .steps = f->steps,
                              .n_steps = f->n_steps},
                 0);
        } else {
            build(b, n->kids[0]);
        }
        emit(b, (struct vop){.kind = V_ISNULL, .rep = R_BOOL, .negate = n->negate}, 1);
        return;
    case N_ARITH: {
        int ra = rep_of(n->kids[0]->type), rb = rep_of(n->kids[1]->type);
        if (rep != R_LONG && rep != R_DOUBLE) break;
        if (ra != R_LONG && ra != R_DOUBLE) break;
        if (rb != R_LONG && rb != R_DOUBLE) break;
        build(b, n->kids[0]);
        if (rep == R_DOUBLE && ra == R_LONG)
            emit(b, (struct vop){.kind = V_TO_DOUBLE, .rep = R_DOUBLE}, 1);
        build(b, n->kids[1]);
        if (rep == R_DOUBLE && rb == R_LONG)
            emit(b, (struct vop){.kind = V_TO_DOUBLE, .rep = R_DOUBLE}, 1);
        emit(b, (struct vop){.kind = V_ARITH, .rep = (uint8_t)rep, .op = (uint8_t)n->op}, 2);
        return;
    }
    case N_NEG:
        if (rep != R_LONG && rep != R_DOUBLE) break;
        build(b, n->kids[0]);
        emit(b, (struct vop){.kind = V_NEG, .rep = (uint8_t)rep}, 1);
        return;
    default: break;
    }
    b->ok = false;
}

void dm_expr_vec_compile(dm_expr_t *e)
{
    vbuild_t b = {.e = e, .ok = true};
    build(&b, e->root);
    if (!b.ok || b.max_depth > VREGS || b.depth != 1) return;
    struct vop *ops = dm_arena_memdup(&e->arena, b.ops, b.n * sizeof(*ops));
    if (!ops) return; /* no program: the tree walker does it all */
    e->vec = ops;
    e->n_vec = b.n;
}

/* ---- running ---------------------------------------------------------------------- */

static inline const dm_avro_value_t *rec_at(const dm_avro_value_t *first, size_t stride, uint32_t i)
{
    return (const dm_avro_value_t *)((const char *)first + (size_t)i * stride);
}

/* The field's value in record i, or NULL when it is null or absent (as load_field). */
static inline const dm_avro_value_t *field_at(const dm_avro_value_t *v, const struct vop *o)
{
    for (uint32_t s = 0; s < o->n_steps; s++) {
        if (v->type != DM_AVRO_RECORD || o->steps[s] >= v->len) return NULL;
        v = &v->u.v[o->steps[s]];
    }
    if (v->type == DM_AVRO_NULL || v->type == DM_AVRO_ABSENT) return NULL;
    return v;
}

/* A top-level field (the common case): one step. */
static inline const dm_avro_value_t *field_at1(const dm_avro_value_t *v, uint32_t k)
{
    if (v->type != DM_AVRO_RECORD || k >= v->len) return NULL;
    v = &v->u.v[k];
    if (v->type == DM_AVRO_NULL || v->type == DM_AVRO_ABSENT) return NULL;
    return v;
}

/* One loop per conversion and path depth, so that the loop body does not switch. */
#define LOAD_LOOP(dst, expr)                                                                       \
    if (o->n_steps == 1) {                                                                         \
        uint32_t k = o->steps[0];                                                                  \
        for (uint32_t i = 0; i < m; i++) {                                                         \
            const dm_avro_value_t *v = field_at1(rec_at(first, stride, i), k);                     \
            r->st[i] = v ? VS_VAL : VS_NULL;                                                       \
            r->u.dst[i] = v ? (expr) : 0;                                                          \
        }                                                                                          \
    } else {                                                                                       \
        for (uint32_t i = 0; i < m; i++) {                                                         \
            const dm_avro_value_t *v = field_at(rec_at(first, stride, i), o);                      \
            r->st[i] = v ? VS_VAL : VS_NULL;                                                       \
            r->u.dst[i] = v ? (expr) : 0;                                                          \
        }                                                                                          \
    }

static void load(const struct vop *o, const dm_avro_value_t *first, size_t stride, uint32_t m,
                 vreg_t *r)
{
    switch (o->conv) {
    case CONV_BOOL: /* a boolean's value is its state */
        for (uint32_t i = 0; i < m; i++) {
            const dm_avro_value_t *v = o->n_steps == 1
                                           ? field_at1(rec_at(first, stride, i), o->steps[0])
                                           : field_at(rec_at(first, stride, i), o);
            r->st[i] = v ? (uint8_t)v->u.b : (uint8_t)VS_NULL;
        }
        break;
    case CONV_INT: LOAD_LOOP(l, v->u.i) break;
    case CONV_LONG:
    case CONV_TS_MILLIS: LOAD_LOOP(l, v->u.l) break;
    case CONV_FLOAT: LOAD_LOOP(d, v->u.f) break;
    case CONV_DOUBLE: LOAD_LOOP(d, v->u.d) break;
    default: LOAD_LOOP(l, 0) break; /* the null flag only */
    }
}

static inline bool cmp_holds(int c, uint8_t op)
{
    switch ((cmp_op_t)op) {
    case OP_EQ: return c == 0;
    case OP_NE: return c != 0;
    case OP_LT: return c < 0;
    case OP_LE: return c <= 0;
    case OP_GT: return c > 0;
    case OP_GE: return c >= 0;
    }
    return false;
}

static void cmp_str(const struct vop *o, const dm_avro_value_t *first, size_t stride, uint32_t m,
                    vreg_t *r)
{
    const char *ls = o->lit.u.s;
    uint32_t ll = o->lit.len;
    for (uint32_t i = 0; i < m; i++) {
        const dm_avro_value_t *v = field_at(rec_at(first, stride, i), o);
        if (!v) {
            r->st[i] = VS_NULL;
            continue;
        }
        uint32_t n = v->len < ll ? v->len : ll;
        int c = n ? memcmp(v->u.p, ls, n) : 0;
        c = c ? (c < 0 ? -1 : 1) : (v->len < ll ? -1 : v->len > ll);
        r->st[i] = cmp_holds(c, o->op);
    }
}

/* The three-way compare of cmp_values (NaN compares equal there, and here)
 * turned into the operator's verdict, one loop per operator. */
#define CMP_LOOPS(X, Y)                                                                            \
    switch ((cmp_op_t)o->op) {                                                                     \
    case OP_EQ: CMP_LOOP(X, Y, c == 0) break;                                                      \
    case OP_NE: CMP_LOOP(X, Y, c != 0) break;                                                      \
    case OP_LT: CMP_LOOP(X, Y, c < 0) break;                                                       \
    case OP_LE: CMP_LOOP(X, Y, c <= 0) break;                                                      \
    case OP_GT: CMP_LOOP(X, Y, c > 0) break;                                                       \
    case OP_GE: CMP_LOOP(X, Y, c >= 0) break;                                                      \
    }
#define CMP_LOOP(X, Y, verdict)                                                                    \
    for (uint32_t i = 0; i < m; i++) {                                                             \
        int c = ((X) > (Y)) - ((X) < (Y));                                                         \
        unsigned st = a->st[i];                                                                    \
        a->st[i] = (uint8_t)(st ? st : (unsigned)(verdict));                                       \
    }

/* a op b into a; a slow side makes the record slow, else a null one null. */
static void cmp(const struct vop *o, vreg_t *a, const vreg_t *b, uint32_t m)
{
    for (uint32_t i = 0; i < m; i++)
        a->st[i] = a->st[i] > b->st[i] ? a->st[i] : b->st[i];
    if (o->a_rep == R_DOUBLE) {
        CMP_LOOPS(a->u.d[i], b->u.d[i])
    } else {
        CMP_LOOPS(a->u.l[i], b->u.l[i])
    }
}

/* a op literal into a (null and slow stay as they are). */
static void cmp_lit(const struct vop *o, vreg_t *a, uint32_t m)
{
    if (o->a_rep == R_DOUBLE) {
        double y = o->lit.u.d;
        CMP_LOOPS(a->u.d[i], y)
    } else {
        int64_t y = o->lit.u.l;
        CMP_LOOPS(a->u.l[i], y)
    }
}

/* Three-valued AND / OR as tables over (left, right) boolean states. A
 * record where the left side is slow is slow; where the right side is slow
 * it is slow unless the left side decides alone (the tree walker would not
 * evaluate the right side). */
static const uint8_t and_table[16] = {
    /* left FALSE */ B_FALSE, B_FALSE, B_FALSE, B_FALSE,
    /* left TRUE  */ B_FALSE, B_TRUE,  VS_NULL, VS_SLOW,
    /* left NULL  */ B_FALSE, VS_NULL, VS_NULL, VS_SLOW,
    /* left SLOW  */ VS_SLOW, VS_SLOW, VS_SLOW, VS_SLOW,
};
static const uint8_t or_table[16] = {
    /* left FALSE */ B_FALSE, B_TRUE,  VS_NULL, VS_SLOW,
    /* left TRUE  */ B_TRUE,  B_TRUE,  B_TRUE,  B_TRUE,
    /* left NULL  */ VS_NULL, B_TRUE,  VS_NULL, VS_SLOW,
    /* left SLOW  */ VS_SLOW, VS_SLOW, VS_SLOW, VS_SLOW,
};
static const uint8_t not_table[4] = {B_TRUE, B_FALSE, VS_NULL, VS_SLOW};

static void logic(const uint8_t *table, vreg_t *a, const vreg_t *b, uint32_t m)
{
    for (uint32_t i = 0; i < m; i++)
        a->st[i] = table[(a->st[i] << 2) | b->st[i]];
}

/* a op b into a; a record whose result the tree walker would reject
 * (overflow, division by zero) is slow. Operands are both doubles or both
 * longs (V_TO_DOUBLE widened what had to be). */
static void arith(const struct vop *o, vreg_t *a, const vreg_t *b, uint32_t m)
{
    for (uint32_t i = 0; i < m; i++) {
        unsigned st = a->st[i] > b->st[i] ? a->st[i] : b->st[i];
        if (o->rep == R_DOUBLE) {
            double x = a->u.d[i], y = b->u.d[i], z = 0;
            switch ((arith_op_t)o->op) {
            case OP_ADD: z = x + y; break;
            case OP_SUB: z = x - y; break;
            case OP_MUL: z = x * y; break;
            case OP_DIV:
                if (y == 0 && st == VS_VAL) st = VS_SLOW;
                z = y == 0 ? 0 : x / y;
                break;
            case OP_MOD: z = fmod(x, y); break;
            }
            a->u.d[i] = z;
        } else {
            int64_t x = a->u.l[i], y = b->u.l[i], z = 0;
            bool bad = false;
            switch ((arith_op_t)o->op) {
            case OP_ADD: bad = __builtin_add_overflow(x, y, &z); break;
            case OP_SUB: bad = __builtin_sub_overflow(x, y, &z); break;
            case OP_MUL: bad = __builtin_mul_overflow(x, y, &z); break;
            case OP_DIV:
            case OP_MOD:
                bad = y == 0 || (x == INT64_MIN && y == -1);
                z = bad ? 0 : o->op == OP_DIV ? x / y : x % y;
                break;
            }
            if (bad && st == VS_VAL) st = VS_SLOW;
            a->u.l[i] = z;
        }
        a->st[i] = (uint8_t)st;
    }
}

/* Runs the program over records [0, m) of a chunk; the result is in regs[0]. */
static void run(const dm_expr_t *e, const dm_avro_value_t *first, size_t stride, uint32_t m,
                vreg_t *regs)
{
    int sp = 0;
    for (uint32_t k = 0; k < e->n_vec; k++) {
        const struct vop *o = &e->vec[k];
        vreg_t *top = &regs[sp - 1], *under = &regs[sp - 2];
        switch (o->kind) {
        case V_FIELD: load(o, first, stride, m, &regs[sp++]); break;
        case V_LIT: {
            vreg_t *r = &regs[sp++];
            memset(r->st, o->lit.null ? VS_NULL : o->rep == R_BOOL ? o->lit.u.b : VS_VAL, m);
            for (uint32_t i = 0; i < m && o->rep != R_BOOL; i++) {
                if (o->rep == R_DOUBLE)
                    r->u.d[i] = o->lit.u.d;
                else
                    r->u.l[i] = o->lit.u.l;
            }
            break;
        }
        case V_CMP_STR: cmp_str(o, first, stride, m, &regs[sp++]); break;
        case V_CMP:
            cmp(o, under, top, m);
            sp--;
            break;
        case V_CMP_LIT: cmp_lit(o, top, m); break;
        case V_TO_DOUBLE:
            for (uint32_t i = 0; i < m; i++)
                top->u.d[i] = (double)top->u.l[i];
            break;
        case V_AND:
        case V_OR:
            logic(o->kind == V_AND ? and_table : or_table, under, top, m);
            sp--;
            break;
        case V_NOT:
            for (uint32_t i = 0; i < m; i++)
                top->st[i] = not_table[top->st[i]];
            break;
        case V_ISNULL:
            for (uint32_t i = 0; i < m; i++) {
                unsigned st = top->st[i];
                top->st[i] = (uint8_t)(st == VS_SLOW ? VS_SLOW : (st == VS_NULL) != o->negate);
            }
            break;
        case V_UNBOX:
            for (uint32_t i = 0; i < m; i++) {
                unsigned st = top->st[i];
                top->u.l[i] = st == B_TRUE;
                top->st[i] = (uint8_t)(st <= B_TRUE ? VS_VAL : st);
            }
            break;
        case V_ARITH:
            arith(o, under, top, m);
            sp--;
            break;
        case V_NEG:
            for (uint32_t i = 0; i < m; i++) {
                if (o->rep == R_DOUBLE) {
                    top->u.d[i] = -top->u.d[i];
                } else if (top->u.l[i] == INT64_MIN) {
                    if (top->st[i] == VS_VAL) top->st[i] = VS_SLOW;
                } else {
                    top->u.l[i] = -top->u.l[i];
                }
            }
            break;
        }
    }
}

bool dm_expr_batchable(const dm_expr_t *e)
{
    return e->vec != NULL;
}

void dm_expr_filter_batch(const dm_expr_t *e, const dm_avro_value_t *first, size_t stride,
                          uint32_t n, uint8_t *keep)
{
    if (!e->vec) {
        memset(keep, DM_EXPR_KEEP_SLOW, n);
        return;
    }
    vreg_t regs[VREGS];
    for (uint32_t base = 0; base < n; base += VEC) {
        uint32_t m = n - base < VEC ? n - base : VEC;
        run(e, rec_at(first, stride, base), stride, m, regs);
        for (uint32_t i = 0; i < m; i++) {
            unsigned st = regs[0].st[i];
            keep[base + i] = st == VS_SLOW ? DM_EXPR_KEEP_SLOW : (uint8_t)(st == B_TRUE);
        }
    }
}

void dm_expr_eval_batch(const dm_expr_t *e, const dm_avro_value_t *first, size_t stride, uint32_t n,
                        dm_expr_value_t *out, bool *slow)
{
    if (!e->vec) {
        memset(slow, 1, n * sizeof(*slow));
        return;
    }
    vreg_t regs[VREGS];
    dm_expr_type_t type = e->root->type;
    int rep = e->vec[e->n_vec - 1].rep;
    for (uint32_t base = 0; base < n; base += VEC) {
        uint32_t m = n - base < VEC ? n - base : VEC;
        run(e, rec_at(first, stride, base), stride, m, regs);
        for (uint32_t i = 0; i < m; i++) {
            dm_expr_value_t *v = &out[base + i];
            unsigned st = regs[0].st[i];
            slow[base + i] = st == VS_SLOW;
            *v = (dm_expr_value_t){.type = type, .null = st == VS_NULL};
            if (st >= VS_NULL || type == DM_EXPR_NULL)
                ;
            else if (type == DM_EXPR_DOUBLE)
                v->u.d = rep == R_DOUBLE ? regs[0].u.d[i] : (double)regs[0].u.l[i];
            else if (type == DM_EXPR_BOOL)
                v->u.b = st == B_TRUE;
            else
                v->u.l = regs[0].u.l[i];
        }
    }
}
