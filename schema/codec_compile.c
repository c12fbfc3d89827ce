/* schema/codec_compile.c — dm_avro_codec_new: (writer, reader, projection) compiled
 * once into the plan graph that codec.c walks (see codec.c for what a plan holds). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema/codec_internal.h"

/* ---- compiling -------------------------------------------------------------------- */

static dm_err_t cerr(dm_avro_codec_t *c, dm_err_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static dm_err_t cerr(dm_avro_codec_t *c, dm_err_t code, const char *fmt, ...)
{
    char msg[DM_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return dm_error_set(c->err, code, "%s: %s", c->plen ? c->path : "$", msg);
}

static size_t cpath_push(dm_avro_codec_t *c, const char *name)
{
    size_t old = c->plen;
    int n = snprintf(c->path + c->plen, sizeof(c->path) - c->plen, "%s.%s", old ? "" : "$", name);
    if (n > 0) c->plen += (size_t)n;
    if (c->plen >= sizeof(c->path)) c->plen = sizeof(c->path) - 1;
    return old;
}

static void cpath_pop(dm_avro_codec_t *c, size_t old)
{
    c->plen = old;
    c->path[old] = '\0';
}

static const char *node_desc(const dm_avro_node_t *n)
{
    return n->fullname ? n->fullname : dm_avro_type_name(n->type);
}

static dm_err_t compile(dm_avro_codec_t *c, const dm_avro_node_t *w, const dm_avro_node_t *r,
                        const proj_t *proj, const plan_t **out);

static const proj_t *proj_kid(const proj_t *p, const char *name)
{
    for (uint32_t i = 0; i < p->n_kids; i++)
        if (strcmp(p->kids[i].name, name) == 0) return &p->kids[i];
    return NULL;
}

/* The skip op of a writer type, false when it is not simple enough for a
 * skip run (records, arrays, maps, unions of those). */
static bool skop_of(dm_avro_codec_t *c, const dm_avro_node_t *n, bool in_union, skop_t *op)
{
    op->br = NULL;
    op->len_branch = 0;
    op->n = 0;
    switch (n->type) {
    case DM_AVRO_NULL: op->kind = SR_FIXED; return true;
    case DM_AVRO_FLOAT: op->kind = SR_FIXED, op->n = 4; return true;
    case DM_AVRO_DOUBLE: op->kind = SR_FIXED, op->n = 8; return true;
    case DM_AVRO_FIXED: op->kind = SR_FIXED, op->n = n->size; return true;
    case DM_AVRO_BOOLEAN: op->kind = SR_BOOL; return true;
    case DM_AVRO_INT: op->kind = SR_INT; return true;
    case DM_AVRO_LONG: op->kind = SR_VARINT; return true;
    case DM_AVRO_BYTES:
    case DM_AVRO_STRING: op->kind = SR_LEN; return true;
    case DM_AVRO_ENUM: op->kind = SR_ENUM, op->n = n->n_symbols; return true;
    case DM_AVRO_UNION: {
        if (in_union || n->n_branches == 0) return false;
        skop_t *br = dm_arena_calloc(&c->arena, n->n_branches, sizeof(*br));
        if (!br) return false;
        for (uint32_t i = 0; i < n->n_branches; i++)
            if (!skop_of(c, n->branches[i], true, &br[i])) return false;
        op->kind = SR_UNION, op->n = n->n_branches, op->br = br;
        for (uint32_t i = 0; n->n_branches == 2 && i < 2; i++)
            if (br[i].kind == SR_LEN && br[1 - i].kind == SR_FIXED && br[1 - i].n == 0)
                op->kind = SR_OPT_LEN, op->len_branch = (uint8_t)i;
        return true;
    }
    default: return false;
    }
}

/* Compiles each stretch of two or more skipped writer fields of simple types
 * into a skip run on its first step. Runs never cross a field the reader
 * wants, so a lazy-tail decode that stops after the last wanted field never
 * starts one it should not. */
static dm_err_t compile_skip_runs(dm_avro_codec_t *c, plan_t *pl, const dm_avro_node_t *w)
{
    skop_t *ops = dm_arena_calloc(&c->arena, w->n_fields + 1, sizeof(*ops));
    if (!ops) return DM_ERR_NOMEM;
    for (uint32_t i = 0; i < pl->n_steps;) {
        uint32_t j = i, n_ops = 0;
        skop_t op;
        while (j < pl->n_steps && pl->steps[j].slot < 0 &&
               skop_of(c, w->fields[j].type, false, &op)) {
            if (n_ops && op.kind == SR_FIXED && ops[n_ops - 1].kind == SR_FIXED &&
                op.n <= UINT32_MAX - ops[n_ops - 1].n)
                ops[n_ops - 1].n += op.n; /* adjacent fixed sizes: one jump */
            else
                ops[n_ops++] = op;
            j++;
        }
        if (j - i >= 2) {
            step_t *s = &pl->steps[i];
            s->run_fields = j - i;
            ops[n_ops].kind = SR_END;
            s->ops = dm_arena_memdup(&c->arena, ops, (n_ops + 1) * sizeof(*ops));
            if (!s->ops) return DM_ERR_NOMEM;
        }
        i = j > i ? j : i + 1;
    }
    return DM_OK;
}

/* The reader branch and plan a writer union branch decodes as. */
static const plan_t *union_target(const plan_t *b, uint16_t *rb)
{
    *rb = 0;
    if (b && b->op == P_TO_UNION) {
        *rb = (uint16_t)b->inner_branch;
        return b->inner;
    }
    return b;
}

/* Marks a step P_OPT_STRING when its writer is a two-branch union of null
 * and string that decodes as null and string (as itself, or into a reader
 * union): the commonest nullable column gets a jump-free fast path. */
static void opt_string_step(step_t *s)
{
    const plan_t *pu = s->plan;
    if (s->op != P_UNION || pu->n_branches != 2) return;
    uint16_t rb[2];
    const plan_t *t0 = union_target(pu->branches[0], &rb[0]);
    const plan_t *t1 = union_target(pu->branches[1], &rb[1]);
    if (!t0 || !t1) return;
    for (unsigned i = 0; i < 2; i++) {
        const plan_t *ts = i ? t1 : t0, *tn = i ? t0 : t1;
        if (ts->op == P_STRING && tn->op == P_NULL) {
            s->op = P_OPT_STRING;
            s->str_branch = (uint8_t)i;
            s->rb_str = rb[i];
            s->rb_null = rb[1 - i];
        }
    }
}

/* The slots of a projected record that decoding leaves absent: only those
 * are written per record (a copy of the whole record's worth of absent
 * values cost more than the fields it decoded). */
static dm_err_t absent_slots(dm_avro_codec_t *c, plan_t *pl)
{
    if (!pl->projected) return DM_OK;
    bool *filled = dm_arena_calloc(&c->arena, pl->n_out ? pl->n_out : 1, sizeof(bool));
    pl->absent = dm_arena_calloc(&c->arena, pl->n_out ? pl->n_out : 1, sizeof(uint32_t));
    if (!filled || !pl->absent) return DM_ERR_NOMEM;
    for (uint32_t i = 0; i < pl->n_steps; i++)
        if (pl->steps[i].slot >= 0) filled[pl->steps[i].slot] = true;
    for (uint32_t i = 0; i < pl->n_fills; i++)
        filled[pl->fills[i].slot] = true;
    for (uint32_t k = 0; k < pl->n_out; k++)
        if (!filled[k]) pl->absent[pl->n_absent++] = k;
    return DM_OK;
}

/* The flat form of a record's needed steps (dec_flat), when every one is a
 * primitive or a simple skip; none otherwise. */
static dm_err_t flat_ops(dm_avro_codec_t *c, plan_t *pl)
{
    fop_t *ops = dm_arena_calloc(&c->arena, pl->n_needed + 1, sizeof(*ops));
    if (!ops) return DM_ERR_NOMEM;
    for (uint32_t i = 0; i < pl->n_needed; i++) {
        const step_t *s = &pl->steps[i];
        fop_t *f = &ops[i];
        if (s->slot < 0) {
            switch (s->skip) {
            case SK_INT: f->kind = F_SKIP_INT; break;
            case SK_VARINT: f->kind = F_SKIP_LONG; break;
            case SK_LEN: f->kind = F_SKIP_LEN; break;
            case SK_FIXED: f->kind = F_SKIP_FIXED, f->size = s->size; break;
            case SK_BOOL: f->kind = F_SKIP_BOOL; break;
            default: return DM_OK; /* not flat */
            }
            continue;
        }
        f->slot = (uint32_t)s->slot;
        if (s->raw) {
            switch (s->op) {
            case P_INT: f->kind = F_RAW_INT; break;
            case P_LONG: f->kind = F_RAW_LONG; break;
            case P_FLOAT: f->kind = F_RAW_FIXED, f->size = 4; break;
            case P_DOUBLE: f->kind = F_RAW_FIXED, f->size = 8; break;
            case P_STRING:
            case P_BYTES: f->kind = F_RAW_LEN; break;
            case P_BOOL: f->kind = F_RAW_BOOL; break;
            case P_OPT_STRING:
                f->kind = F_RAW_OPT_STRING;
                f->str_branch = s->str_branch;
                break;
            default: return DM_OK; /* not flat */
            }
            continue;
        }
        switch (s->op) {
        case P_INT: f->kind = F_INT; break;
        case P_LONG: f->kind = F_LONG; break;
        case P_FLOAT: f->kind = F_FLOAT; break;
        case P_DOUBLE: f->kind = F_DOUBLE; break;
        case P_STRING: f->kind = F_STRING; break;
        case P_BYTES: f->kind = F_BYTES; break;
        case P_BOOL: f->kind = F_BOOL; break;
        case P_OPT_STRING:
            f->kind = F_OPT_STRING;
            f->str_branch = s->str_branch;
            f->rb_null = s->rb_null;
            f->rb_str = s->rb_str;
            break;
        default: return DM_OK; /* not flat */
        }
    }
    ops[pl->n_needed].kind = F_END;
    pl->flat = ops;
    return DM_OK;
}

static dm_err_t compile_record(dm_avro_codec_t *c, plan_t *pl, const dm_avro_node_t *w,
                               const dm_avro_node_t *r, const proj_t *proj)
{
    if (proj) {
        for (uint32_t i = 0; i < proj->n_kids; i++)
            if (dm_avro_field_index(r, proj->kids[i].name) < 0)
                return cerr(c, DM_ERR_INVALID, "projection: record %s has no field \"%s\"",
                            r->fullname, proj->kids[i].name);
    }
    pl->op = P_RECORD;
    pl->n_out = r->n_fields;
    pl->n_steps = w->n_fields;
    pl->steps = dm_arena_calloc(&c->arena, w->n_fields ? w->n_fields : 1, sizeof(step_t));
    pl->fills = dm_arena_calloc(&c->arena, r->n_fields ? r->n_fields : 1, sizeof(fill_t));
    bool *matched = dm_arena_calloc(&c->arena, r->n_fields ? r->n_fields : 1, sizeof(bool));
    if (!pl->steps || !pl->fills || !matched) return DM_ERR_NOMEM;
    dm_err_t rc;
    for (uint32_t i = 0; i < w->n_fields; i++) {
        const dm_avro_field_t *wf = &w->fields[i];
        step_t *s = &pl->steps[i];
        s->w = wf->type;
        s->name = wf->name;
        s->slot = -1;
        s->op = P_SKIP;
        switch (wf->type->type) {
        case DM_AVRO_INT: s->skip = SK_INT; break;
        case DM_AVRO_LONG: s->skip = SK_VARINT; break;
        case DM_AVRO_BYTES:
        case DM_AVRO_STRING: s->skip = SK_LEN; break;
        case DM_AVRO_BOOLEAN: s->skip = SK_BOOL; break;
        case DM_AVRO_UNION: s->skip = SK_UNION; break;
        case DM_AVRO_NULL:
        case DM_AVRO_FLOAT:
        case DM_AVRO_DOUBLE:
        case DM_AVRO_FIXED:
            s->skip = SK_FIXED;
            s->size = wf->type->type == DM_AVRO_FIXED    ? wf->type->size
                      : wf->type->type == DM_AVRO_FLOAT  ? 4
                      : wf->type->type == DM_AVRO_DOUBLE ? 8
                                                         : 0;
            break;
        default: s->skip = SK_NODE; break;
        }
        int ri = -1;
        for (uint32_t k = 0; k < r->n_fields && ri < 0; k++)
            if (strcmp(r->fields[k].name, wf->name) == 0) ri = (int)k;
        for (uint32_t k = 0; k < r->n_fields && ri < 0; k++)
            for (uint32_t a = 0; a < r->fields[k].n_aliases; a++)
                if (strcmp(r->fields[k].aliases[a], wf->name) == 0) ri = (int)k;
        if (ri < 0) continue;
        matched[ri] = true;
        const proj_t *sub = NULL;
        if (proj) {
            sub = proj_kid(proj, r->fields[ri].name);
            if (!sub) {
                pl->projected = true;
                continue;
            }
            if (sub->all) sub = NULL;
        }
        size_t mark = cpath_push(c, r->fields[ri].name);
        rc = compile(c, wf->type, r->fields[ri].type, sub, &s->plan);
        if (rc) return rc;
        cpath_pop(c, mark);
        s->slot = ri;
        s->op = s->plan->op;
        opt_string_step(s);
        pl->n_needed = i + 1;
    }
    if ((rc = compile_skip_runs(c, pl, w))) return rc;
    for (uint32_t k = 0; k < r->n_fields; k++) {
        if (matched[k]) continue;
        const dm_avro_field_t *rf = &r->fields[k];
        if (proj && !proj_kid(proj, rf->name)) {
            pl->projected = true;
            continue;
        }
        if (!rf->has_default)
            return cerr(c, DM_ERR_SCHEMA_INCOMPATIBLE,
                        "reader field \"%s\" of %s is missing from the writer and has no default",
                        rf->name, r->fullname);
        const plan_t *dp;
        if ((rc = compile(c, rf->type, rf->type, NULL, &dp))) return rc;
        fill_t *f = &pl->fills[pl->n_fills++];
        f->slot = (int32_t)k;
        dctx_t d = {.start = rf->default_bin,
                    .p = rf->default_bin,
                    .end = rf->default_bin + rf->default_len,
                    .arena = &c->arena};
        if (dm_codec_decode_plan(&d, dp, &f->value)) return cerr(c, DM_ERR_INTERNAL, "bad default");
    }
    dm_err_t arc = absent_slots(c, pl);
    return arc ? arc : flat_ops(c, pl);
}

static int find_reader_branch(const dm_avro_node_t *w, const dm_avro_node_t *r, bool exact)
{
    for (uint32_t i = 0; i < r->n_branches; i++) {
        const dm_avro_node_t *b = r->branches[i];
        bool named =
            w->type == DM_AVRO_RECORD || w->type == DM_AVRO_ENUM || w->type == DM_AVRO_FIXED;
        if (exact) {
            if (b->type != w->type) continue;
            if (named && strcmp(b->fullname, w->fullname) != 0) continue;
            return (int)i;
        }
        if (named) {
            if (b->type == w->type && dm_avro_names_match(w, b)) return (int)i;
        } else if (dm_avro_promotable(w->type, b->type)) {
            return (int)i;
        }
    }
    return -1;
}

static dm_err_t compile(dm_avro_codec_t *c, const dm_avro_node_t *w, const dm_avro_node_t *r,
                        const proj_t *proj, const plan_t **out)
{
    for (size_t i = 0; i < c->n_memo; i++) {
        memo_t *m = &c->memo[i];
        if (m->w == w && m->r == r && m->proj == proj) {
            if (i == 0) c->root_recurs = true;
            if (m->plan->failed)
                return cerr(c, DM_ERR_SCHEMA_INCOMPATIBLE, "%s cannot be read as %s", node_desc(w),
                            node_desc(r));
            *out = m->plan;
            return DM_OK;
        }
    }
    if (c->n_memo == c->cap_memo) {
        size_t cap = c->cap_memo ? c->cap_memo * 2 : 32;
        memo_t *m = realloc(c->memo, cap * sizeof(*m));
        if (!m) return DM_ERR_NOMEM;
        c->memo = m;
        c->cap_memo = cap;
    }
    plan_t *pl = dm_arena_calloc(&c->arena, 1, sizeof(*pl));
    if (!pl) return DM_ERR_NOMEM;
    pl->w = w;
    pl->r = r;
    pl->proj = proj;
    c->memo[c->n_memo++] = (memo_t){w, r, proj, pl};
    *out = pl;
    dm_err_t rc = DM_OK;

    if (w->type == DM_AVRO_UNION) {
        pl->op = P_UNION;
        pl->n_branches = w->n_branches;
        pl->branches = dm_arena_calloc(&c->arena, w->n_branches + 1, sizeof(plan_t *));
        if (!pl->branches) return DM_ERR_NOMEM;
        bool any = false;
        dm_error_t first = {0};
        for (uint32_t i = 0; i < w->n_branches; i++) {
            const plan_t *b;
            dm_error_t *saved = c->err;
            dm_error_t tmp = {0};
            c->err = &tmp;
            rc = compile(c, w->branches[i], r, proj, &b);
            c->err = saved;
            if (rc == DM_ERR_SCHEMA_INCOMPATIBLE) {
                if (!first.code) first = tmp;
                continue; /* only an error if a record takes this branch */
            }
            if (rc) {
                if (c->err) *c->err = tmp;
                return rc;
            }
            pl->branches[i] = b;
            any = true;
        }
        if (!any) {
            pl->failed = true;
            if (c->err) *c->err = first;
            return DM_ERR_SCHEMA_INCOMPATIBLE;
        }
        return DM_OK;
    }
    if (r->type == DM_AVRO_UNION) {
        int bi = find_reader_branch(w, r, true);
        if (bi < 0) bi = find_reader_branch(w, r, false);
        if (bi < 0) {
            pl->failed = true;
            return cerr(c, DM_ERR_SCHEMA_INCOMPATIBLE,
                        "writer type %s matches no branch of the reader union", node_desc(w));
        }
        pl->op = P_TO_UNION;
        pl->inner_branch = bi;
        rc = compile(c, w, r->branches[bi], proj, &pl->inner);
        if (rc) pl->failed = true;
        return rc;
    }
    bool ok = true;
    switch (w->type) {
    case DM_AVRO_NULL: ok = r->type == DM_AVRO_NULL, pl->op = P_NULL; break;
    case DM_AVRO_BOOLEAN: ok = r->type == DM_AVRO_BOOLEAN, pl->op = P_BOOL; break;
    case DM_AVRO_INT:
        pl->op = r->type == DM_AVRO_INT      ? P_INT
                 : r->type == DM_AVRO_LONG   ? P_INT_LONG
                 : r->type == DM_AVRO_FLOAT  ? P_INT_FLOAT
                 : r->type == DM_AVRO_DOUBLE ? P_INT_DOUBLE
                                             : (ok = false, 0);
        break;
    case DM_AVRO_LONG:
        pl->op = r->type == DM_AVRO_LONG     ? P_LONG
                 : r->type == DM_AVRO_FLOAT  ? P_LONG_FLOAT
                 : r->type == DM_AVRO_DOUBLE ? P_LONG_DOUBLE
                                             : (ok = false, 0);
        break;
    case DM_AVRO_FLOAT:
        pl->op = r->type == DM_AVRO_FLOAT    ? P_FLOAT
                 : r->type == DM_AVRO_DOUBLE ? P_FLOAT_DOUBLE
                                             : (ok = false, 0);
        break;
    case DM_AVRO_DOUBLE: ok = r->type == DM_AVRO_DOUBLE, pl->op = P_DOUBLE; break;
    case DM_AVRO_BYTES:
        pl->op = r->type == DM_AVRO_BYTES    ? P_BYTES
                 : r->type == DM_AVRO_STRING ? P_BYTES_STRING
                                             : (ok = false, 0);
        break;
    case DM_AVRO_STRING:
        pl->op = r->type == DM_AVRO_STRING  ? P_STRING
                 : r->type == DM_AVRO_BYTES ? P_STRING_BYTES
                                            : (ok = false, 0);
        break;
    case DM_AVRO_FIXED:
        ok = r->type == DM_AVRO_FIXED && dm_avro_names_match(w, r) && w->size == r->size;
        pl->op = P_FIXED;
        pl->size = w->size;
        break;
    case DM_AVRO_ENUM:
        ok = r->type == DM_AVRO_ENUM && dm_avro_names_match(w, r);
        pl->op = P_ENUM;
        pl->n_enum = w->n_symbols;
        if (ok && w != r) {
            pl->enum_map = dm_arena_calloc(&c->arena, w->n_symbols + 1, sizeof(int32_t));
            if (!pl->enum_map) return DM_ERR_NOMEM;
            for (uint32_t i = 0; i < w->n_symbols; i++) {
                pl->enum_map[i] = r->enum_default;
                for (uint32_t k = 0; k < r->n_symbols; k++)
                    if (strcmp(w->symbols[i], r->symbols[k]) == 0) pl->enum_map[i] = (int32_t)k;
            }
        }
        break;
    case DM_AVRO_RECORD:
        ok = r->type == DM_AVRO_RECORD && dm_avro_names_match(w, r);
        if (ok) rc = compile_record(c, pl, w, r, proj);
        break;
    case DM_AVRO_ARRAY:
    case DM_AVRO_MAP:
        ok = r->type == w->type;
        pl->op = w->type == DM_AVRO_ARRAY ? P_ARRAY : P_MAP;
        pl->item_min = dm_codec_min_size(w->items) + (w->type == DM_AVRO_MAP);
        if (ok) {
            size_t mark = cpath_push(c, w->type == DM_AVRO_ARRAY ? "[]" : "{}");
            rc = compile(c, w->items, r->items, proj, &pl->items);
            if (!rc) cpath_pop(c, mark);
        }
        break;
    default: ok = false; break;
    }
    if (!ok) {
        pl->failed = true;
        if (w->type == r->type && w->type == DM_AVRO_FIXED && dm_avro_names_match(w, r))
            return cerr(c, DM_ERR_SCHEMA_INCOMPATIBLE,
                        "fixed %s has size %u in the writer, %u in the reader", w->fullname,
                        w->size, r->size);
        if (w->type == r->type && w->fullname)
            return cerr(c, DM_ERR_SCHEMA_INCOMPATIBLE,
                        "writer type %s and reader type %s have different names", w->fullname,
                        r->fullname);
        return cerr(c, DM_ERR_SCHEMA_INCOMPATIBLE, "writer type %s cannot be read as %s",
                    node_desc(w), node_desc(r));
    }
    if (rc) pl->failed = true;
    return rc;
}

static dm_err_t proj_add(dm_avro_codec_t *c, proj_t *root, const char *path)
{
    proj_t *cur = root;
    const char *s = path;
    for (;;) {
        const char *dot = strchr(s, '.');
        size_t n = dot ? (size_t)(dot - s) : strlen(s);
        if (n == 0) return cerr(c, DM_ERR_INVALID, "projection path \"%s\" is malformed", path);
        proj_t *kid = NULL;
        for (uint32_t i = 0; i < cur->n_kids; i++)
            if (strlen(cur->kids[i].name) == n && strncmp(cur->kids[i].name, s, n) == 0)
                kid = &cur->kids[i];
        if (!kid) {
            if (cur->n_kids == cur->cap_kids) {
                uint32_t cap = cur->cap_kids ? cur->cap_kids * 2 : 4;
                proj_t *k = dm_arena_calloc(&c->arena, cap, sizeof(*k));
                if (!k) return DM_ERR_NOMEM;
                if (cur->n_kids) memcpy(k, cur->kids, cur->n_kids * sizeof(*k));
                cur->kids = k;
                cur->cap_kids = cap;
            }
            kid = &cur->kids[cur->n_kids++];
            memset(kid, 0, sizeof(*kid));
            kid->name = dm_arena_strndup(&c->arena, s, n);
        }
        if (!dot) {
            kid->all = true;
            return DM_OK;
        }
        cur = kid;
        s = dot + 1;
    }
}

/* Marks the root record's steps of the fields named in raw, where the
 * writer's bytes are the reader's (the same type node), and recompiles its
 * flat loop. */
static dm_err_t mark_raw(dm_avro_codec_t *c, plan_t *root, const char *const *raw, size_t n_raw)
{
    if (!n_raw || root->op != P_RECORD || c->root_recurs) return DM_OK;
    bool any = false;
    for (uint32_t i = 0; i < root->n_steps; i++) {
        step_t *s = &root->steps[i];
        if (s->slot < 0) continue;
        const dm_avro_field_t *rf = &root->r->fields[s->slot];
        for (size_t k = 0; k < n_raw && !s->raw; k++)
            s->raw = !strcmp(raw[k], rf->name) && rf->type == s->w;
        any |= s->raw;
    }
    if (!any) return DM_OK;
    root->flat = NULL;
    return flat_ops(c, root);
}

dm_err_t dm_avro_codec_new(const dm_avro_schema_t *writer, const dm_avro_schema_t *reader,
                           const char *const *paths, size_t n_paths, dm_avro_codec_t **out,
                           dm_error_t *err)
{
    return dm_avro_codec_new_raw(writer, reader, paths, n_paths, NULL, 0, out, err);
}

/* none: decode no field (an empty projection), for dm_avro_codec_new_check. */
static dm_err_t codec_new(const dm_avro_schema_t *writer, const dm_avro_schema_t *reader,
                          const char *const *paths, size_t n_paths, const char *const *raw,
                          size_t n_raw, bool none, dm_avro_codec_t **out, dm_error_t *err)
{
    *out = NULL;
    dm_avro_codec_t *c = calloc(1, sizeof(*c));
    if (!c) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    /* Small first chunk, growing geometrically: one codec per task, and a
     * controller runs thousands of tasks over small schemas. */
    dm_arena_init(&c->arena, 1024);
    c->writer = writer;
    c->reader = reader ? reader : writer;
    c->rroot = c->reader->root;
    c->err = err;
    dm_err_t rc = DM_OK;
    proj_t *proj = NULL;
    if (n_paths || none) {
        proj = dm_arena_calloc(&c->arena, 1, sizeof(*proj));
        if (!proj) rc = DM_ERR_NOMEM;
        for (size_t i = 0; !rc && i < n_paths; i++)
            rc = proj_add(c, proj, paths[i]);
    }
    const plan_t *root = NULL;
    if (!rc) rc = compile(c, writer->root, c->rroot, proj, &root);
    if (!rc) rc = mark_raw(c, (plan_t *)root, raw, n_raw);
    free(c->memo);
    c->memo = NULL;
    c->err = NULL;
    if (rc) {
        if (rc == DM_ERR_NOMEM) dm_error_set(err, rc, "out of memory");
        dm_avro_codec_free(c);
        return rc;
    }
    c->root = (plan_t *)root;
    *out = c;
    return DM_OK;
}

dm_err_t dm_avro_codec_new_raw(const dm_avro_schema_t *writer, const dm_avro_schema_t *reader,
                               const char *const *paths, size_t n_paths, const char *const *raw,
                               size_t n_raw, dm_avro_codec_t **out, dm_error_t *err)
{
    return codec_new(writer, reader, paths, n_paths, raw, n_raw, false, out, err);
}

dm_err_t dm_avro_codec_new_check(const dm_avro_schema_t *writer, dm_avro_codec_t **out,
                                 dm_error_t *err)
{
    return codec_new(writer, NULL, NULL, 0, NULL, 0, true, out, err);
}

void dm_avro_codec_free(dm_avro_codec_t *c)
{
    if (!c) return;
    free(c->memo);
    dm_arena_destroy(&c->arena);
    free(c);
}

const dm_avro_node_t *dm_avro_codec_reader(const dm_avro_codec_t *c)
{
    return c->rroot;
}
