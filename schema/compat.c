/* schema/compat.c — compatibility checks (dm_schema_compat_*).
 *
 * dm_schema_can_read walks reader and writer together and records every
 * reason the reader would fail, with the field path. Pairs of named types
 * already under comparison are assumed compatible, which ends the walk on
 * recursive schemas.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "schema/dm_schema_compat.h"
#include "schema/internal.h"

static const char *const level_names[] = {
    "NONE", "BACKWARD",        "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE",
    "FULL", "FULL_TRANSITIVE",
};

const char *dm_schema_compat_level_name(dm_schema_compat_level_t level)
{
    if ((unsigned)level < sizeof(level_names) / sizeof(level_names[0])) return level_names[level];
    return "?";
}

dm_err_t dm_schema_compat_level_parse(const char *name, dm_schema_compat_level_t *out)
{
    for (unsigned i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
        if (strcasecmp(name, level_names[i]) == 0) {
            *out = (dm_schema_compat_level_t)i;
            return DM_OK;
        }
    return DM_ERR_INVALID;
}

typedef struct pair {
    const dm_avro_node_t *r, *w;
} pair_t;

typedef struct kctx {
    dm_schema_compat_report_t *report;
    const char *prefix;
    size_t found;
    pair_t *stack;
    size_t n_stack, cap_stack;
    char path[512];
    size_t plen;
} kctx_t;

static void add(kctx_t *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(kctx_t *k, const char *fmt, ...)
{
    k->found++;
    if (!k->report) return;
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    char *line = NULL;
    if (asprintf(&line, "%s%s%s: %s", k->prefix ? k->prefix : "", k->prefix ? ": " : "",
                 k->plen ? k->path : "$", msg) < 0)
        return;
    char **m = realloc(k->report->messages, (k->report->n + 1) * sizeof(*m));
    if (!m) {
        free(line);
        return;
    }
    k->report->messages = m;
    m[k->report->n++] = line;
}

static size_t push(kctx_t *k, const char *fmt, const char *s)
{
    size_t old = k->plen;
    if (!old) k->plen = (size_t)snprintf(k->path, sizeof(k->path), "$");
    int n = snprintf(k->path + k->plen, sizeof(k->path) - k->plen, fmt, s);
    if (n > 0) k->plen += (size_t)n;
    if (k->plen >= sizeof(k->path)) k->plen = sizeof(k->path) - 1;
    return old;
}

static void pop(kctx_t *k, size_t old)
{
    k->plen = old;
    k->path[old] = '\0';
}

static const char *desc(const dm_avro_node_t *n)
{
    return n->fullname ? n->fullname : dm_avro_type_name(n->type);
}

static void check(kctx_t *k, const dm_avro_node_t *r, const dm_avro_node_t *w);

/* Runs check without reporting; true when it found nothing. */
static bool quietly(kctx_t *k, const dm_avro_node_t *r, const dm_avro_node_t *w)
{
    dm_schema_compat_report_t *saved = k->report;
    size_t found = k->found;
    k->report = NULL;
    check(k, r, w);
    k->report = saved;
    bool ok = k->found == found;
    k->found = found;
    return ok;
}

static void check_record(kctx_t *k, const dm_avro_node_t *r, const dm_avro_node_t *w)
{
    for (uint32_t i = 0; i < r->n_fields; i++) {
        const dm_avro_field_t *rf = &r->fields[i];
        const dm_avro_field_t *wf = NULL;
        for (uint32_t j = 0; j < w->n_fields && !wf; j++)
            if (strcmp(w->fields[j].name, rf->name) == 0) wf = &w->fields[j];
        for (uint32_t a = 0; a < rf->n_aliases && !wf; a++)
            for (uint32_t j = 0; j < w->n_fields && !wf; j++)
                if (strcmp(w->fields[j].name, rf->aliases[a]) == 0) wf = &w->fields[j];
        size_t mark = push(k, ".%s", rf->name);
        if (wf)
            check(k, rf->type, wf->type);
        else if (!rf->has_default)
            add(k, "reader field \"%s\" has no default value and is missing from the writer's %s",
                rf->name, w->fullname);
        pop(k, mark);
    }
}

static void check(kctx_t *k, const dm_avro_node_t *r, const dm_avro_node_t *w)
{
    for (size_t i = 0; i < k->n_stack; i++)
        if (k->stack[i].r == r && k->stack[i].w == w) return;
    if (k->n_stack == k->cap_stack) {
        size_t cap = k->cap_stack ? k->cap_stack * 2 : 16;
        pair_t *s = realloc(k->stack, cap * sizeof(*s));
        if (!s) {
            add(k, "out of memory");
            return;
        }
        k->stack = s;
        k->cap_stack = cap;
    }
    k->stack[k->n_stack++] = (pair_t){r, w};

    if (w->type == DM_AVRO_UNION) {
        for (uint32_t i = 0; i < w->n_branches; i++) {
            const dm_avro_node_t *wb = w->branches[i];
            if (r->type == DM_AVRO_UNION) {
                bool ok = false;
                const dm_avro_node_t *same = NULL; /* the branch meant to read it */
                for (uint32_t j = 0; j < r->n_branches && !ok; j++) {
                    ok = quietly(k, r->branches[j], wb);
                    if (r->branches[j]->type == wb->type && wb->type == DM_AVRO_RECORD &&
                        r->branches[j]->fullname && wb->fullname &&
                        !strcmp(r->branches[j]->fullname, wb->fullname))
                        same = r->branches[j];
                }
                if (!ok && same) /* say which of its fields cannot be read */
                    check(k, same, wb);
                else if (!ok)
                    add(k, "reader union has no branch that can read writer union branch %s",
                        desc(wb));
            } else {
                check(k, r, wb);
            }
        }
    } else if (r->type == DM_AVRO_UNION) {
        bool ok = false;
        for (uint32_t j = 0; j < r->n_branches && !ok; j++)
            ok = quietly(k, r->branches[j], w);
        if (!ok) add(k, "writer type %s matches no branch of the reader union", desc(w));
    } else if (r->type != w->type) {
        if (!dm_avro_promotable(w->type, r->type))
            add(k, "type mismatch: reader %s cannot read writer %s", desc(r), desc(w));
    } else {
        bool named =
            r->type == DM_AVRO_RECORD || r->type == DM_AVRO_ENUM || r->type == DM_AVRO_FIXED;
        if (named && !dm_avro_names_match(w, r)) {
            add(k, "name mismatch: reader %s, writer %s", r->fullname, w->fullname);
        } else {
            switch (r->type) {
            case DM_AVRO_FIXED:
                if (r->size != w->size)
                    add(k, "fixed size mismatch: reader %s has %u bytes, writer %u", r->fullname,
                        r->size, w->size);
                break;
            case DM_AVRO_ENUM:
                if (r->enum_default < 0) {
                    char missing[256] = "";
                    size_t n = 0, cnt = 0;
                    for (uint32_t i = 0; i < w->n_symbols; i++) {
                        bool has = false;
                        for (uint32_t j = 0; j < r->n_symbols && !has; j++)
                            has = strcmp(r->symbols[j], w->symbols[i]) == 0;
                        if (has) continue;
                        cnt++;
                        int x = snprintf(missing + n, sizeof(missing) - n, "%s%s", n ? ", " : "",
                                         w->symbols[i]);
                        if (x > 0 && n + (size_t)x < sizeof(missing)) n += (size_t)x;
                    }
                    if (cnt)
                        add(k, "reader enum %s lacks writer symbols [%s] and has no default",
                            r->fullname, missing);
                }
                break;
            case DM_AVRO_RECORD: check_record(k, r, w); break;
            case DM_AVRO_ARRAY:
            case DM_AVRO_MAP: {
                size_t mark = push(k, "%s", r->type == DM_AVRO_ARRAY ? "[]" : "{}");
                check(k, r->items, w->items);
                pop(k, mark);
                break;
            }
            default: break;
            }
        }
    }
    /* Keep the pair while its subtree is checked, then forget it, so a later,
     * unrelated occurrence is checked in its own context. */
    k->n_stack--;
}

bool dm_schema_can_read(const dm_avro_node_t *reader, const dm_avro_node_t *writer,
                        dm_schema_compat_report_t *report, const char *prefix)
{
    kctx_t k = {.report = report, .prefix = prefix};
    check(&k, reader, writer);
    free(k.stack);
    return k.found == 0;
}

dm_err_t dm_schema_compat_check(dm_schema_compat_level_t level, const dm_avro_schema_t *newer,
                                const dm_avro_schema_t *const *olders, size_t n_olders,
                                dm_schema_compat_report_t *report)
{
    bool backward = level == DM_COMPAT_BACKWARD || level == DM_COMPAT_BACKWARD_TRANSITIVE ||
                    level == DM_COMPAT_FULL || level == DM_COMPAT_FULL_TRANSITIVE;
    bool forward = level == DM_COMPAT_FORWARD || level == DM_COMPAT_FORWARD_TRANSITIVE ||
                   level == DM_COMPAT_FULL || level == DM_COMPAT_FULL_TRANSITIVE;
    bool transitive = level == DM_COMPAT_BACKWARD_TRANSITIVE ||
                      level == DM_COMPAT_FORWARD_TRANSITIVE || level == DM_COMPAT_FULL_TRANSITIVE;
    size_t n = transitive ? n_olders : (n_olders ? 1 : 0);
    bool ok = true;
    for (size_t i = 0; i < n; i++) {
        char prefix[96];
        if (backward) {
            snprintf(prefix, sizeof(prefix), "BACKWARD: new schema reading old schema #%zu", i + 1);
            ok &= dm_schema_can_read(newer->root, olders[i]->root, report, prefix);
        }
        if (forward) {
            snprintf(prefix, sizeof(prefix), "FORWARD: old schema #%zu reading new schema", i + 1);
            ok &= dm_schema_can_read(olders[i]->root, newer->root, report, prefix);
        }
    }
    return ok ? DM_OK : DM_ERR_SCHEMA_INCOMPATIBLE;
}

void dm_schema_compat_report_free(dm_schema_compat_report_t *report)
{
    if (!report) return;
    for (size_t i = 0; i < report->n; i++)
        free(report->messages[i]);
    free(report->messages);
    report->messages = NULL;
    report->n = 0;
}
