/* control/lineage.c — the lineage graph computed from plans (control/lineage.h).
 *
 * Building walks each plan's stages the way a task runs them: the records'
 * state is, per top-level field, the list of graph fields it comes from and
 * how (an "origin"), plus the fields that decided which records there are
 * (indirect origins). A step opened against the current schema answers
 * field_deps; each output field's origins are its inputs' origins composed
 * with the dependency's kind. Where a stage writes a dataset (the derived
 * source, the output topic, route outputs) the origins become edges; re-key
 * topics only carry the state to the stage that reads them.
 */
#include "control/lineage.h"
#include "control/lineage_internal.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/sink.h"
#include "core/hash.h"
#include "engine/processor.h"
#include "engine/table.h"

/* ---- fragments: what adding one plan did, to be done again ---------------------
 *
 * Adding a plan reads the graph (does node X exist, its kind, dataset, path,
 * nested fields, a sink's sort order) and changes it (nodes, nested-field
 * links, attributes, edges, problems). The fragment is both lists: a "dep"
 * per node id the plan looked up, with a hash of that node as it was before
 * the plan touched it (1: absent), then the changes in order, by node id.
 * Replaying is exact: when every dep still hashes the same, the plan would
 * read the same graph and so make the same changes, in the same order (the
 * first-seen field types and nested-field fallbacks included). A node is
 * always looked up before the plan changes it or anything under it, so the
 * hash at the first look-up is the hash before. */

enum { OP_END, OP_NODE, OP_KID, OP_ATTR, OP_EDGE, OP_PROBLEM, OP_ATTR_STR };

typedef struct lbuf {
    unsigned char *p;
    size_t n, cap;
    bool failed;
} lbuf_t;

typedef struct lrec {
    lbuf_t deps, ops;
    uint32_t n_deps;
    json_t *looked; /* node ids already looked up by this plan */
} lrec_t;

static void buf_put(lbuf_t *b, const void *data, size_t n)
{
    if (b->failed) return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->n + n)
            cap *= 2;
        unsigned char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, data, n);
    b->n += n;
}

static void buf_u32(lbuf_t *b, uint32_t v)
{
    buf_put(b, &v, sizeof(v));
}

/* A string; NULL is written as length 0xffffffff. */
static void buf_str(lbuf_t *b, const char *s)
{
    uint32_t n = s ? (uint32_t)strlen(s) : UINT32_MAX;
    buf_u32(b, n);
    if (s) buf_put(b, s, n);
}

static void buf_op(lbuf_t *b, int op)
{
    unsigned char c = (unsigned char)op;
    buf_put(b, &c, 1);
}

static uint64_t node_hash(const dm_lineage_t *g, size_t i);

/* ---- nodes and edges ------------------------------------------------------------- */

static size_t node_lookup(const dm_lineage_t *g, const char *id)
{
    return dm_lineage_node_lookup(g, id);
}

/* A node looked up while a plan is added: the first look-up of each id is a
 * dep of its fragment. */
static size_t node_find(const dm_lineage_t *g, const char *id)
{
    size_t i = node_lookup(g, id);
    lrec_t *r = g->rec;
    if (r && !json_object_get(r->looked, id)) {
        if (json_object_set_new(r->looked, id, json_true())) r->deps.failed = true;
        buf_str(&r->deps, id);
        uint64_t h = node_hash(g, i);
        buf_put(&r->deps, &h, sizeof(h));
        r->n_deps++;
    }
    return i;
}

/* The node id, added with kind unless it exists; NONE when out of memory. */
static size_t node_add(dm_lineage_t *g, const char *id, const char *kind, size_t dataset,
                       const char *path)
{
    size_t i = node_find(g, id);
    if (i != NONE) return i;
    if (g->n_nodes == g->cap_nodes) {
        size_t cap = g->cap_nodes ? g->cap_nodes * 2 : 64;
        lnode_t *n = realloc(g->nodes, cap * sizeof(*n));
        if (!n) return NONE;
        g->nodes = n;
        g->cap_nodes = cap;
    }
    lnode_t *n = &g->nodes[g->n_nodes];
    *n = (lnode_t){strdup(id), kind, dataset, path ? strdup(path) : NULL, NULL, NULL, 0};
    if (!n->id || json_object_set_new(g->index, id, json_integer((json_int_t)g->n_nodes))) {
        free(n->id);
        free(n->path);
        return NONE;
    }
    if (g->rec) {
        buf_op(&g->rec->ops, OP_NODE);
        buf_str(&g->rec->ops, id);
        buf_str(&g->rec->ops, kind);
        buf_str(&g->rec->ops, dataset != NONE ? g->nodes[dataset].id : NULL);
        buf_str(&g->rec->ops, path);
    }
    return g->n_nodes++;
}

static void node_attr(dm_lineage_t *g, size_t i, const char *key, json_t *value)
{
    if (g->rec && json_is_string(value)) {
        /* most attributes are strings: no JSON to parse when replayed */
        buf_op(&g->rec->ops, OP_ATTR_STR);
        buf_str(&g->rec->ops, g->nodes[i].id);
        buf_str(&g->rec->ops, key);
        buf_str(&g->rec->ops, json_string_value(value));
    } else if (g->rec) {
        char *text = value ? json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        if (!text) g->rec->ops.failed = true;
        buf_op(&g->rec->ops, OP_ATTR);
        buf_str(&g->rec->ops, g->nodes[i].id);
        buf_str(&g->rec->ops, key);
        buf_str(&g->rec->ops, text ? text : "null");
        free(text);
    }
    if (!g->nodes[i].attrs) g->nodes[i].attrs = json_object();
    json_object_set_new(g->nodes[i].attrs, key, value);
}

static dm_err_t edge_add(dm_lineage_t *g, size_t from, size_t to, int kind, size_t pipeline)
{
    if (from == NONE || to == NONE || from == to) return DM_OK;
    char key[96];
    snprintf(key, sizeof(key), "%zu,%zu,%d,%zu", from, to, kind, pipeline);
    if (g->rec) {
        buf_op(&g->rec->ops, OP_EDGE);
        buf_str(&g->rec->ops, g->nodes[from].id);
        buf_str(&g->rec->ops, g->nodes[to].id);
        buf_u32(&g->rec->ops, (uint32_t)kind);
        buf_str(&g->rec->ops, pipeline != NONE ? g->nodes[pipeline].id : NULL);
    }
    if (json_object_get(g->seen, key)) return DM_OK;
    if (g->n_edges == g->cap_edges) {
        size_t cap = g->cap_edges ? g->cap_edges * 2 : 128;
        ledge_t *e = realloc(g->edges, cap * sizeof(*e));
        if (!e) return DM_ERR_NOMEM;
        g->edges = e;
        g->cap_edges = cap;
    }
    g->edges[g->n_edges++] = (ledge_t){from, to, kind, pipeline};
    return json_object_set_new(g->seen, key, json_true()) ? DM_ERR_NOMEM : DM_OK;
}

/* The record inside a node: itself, or the one non-null branch of a union. */
static const dm_avro_node_t *record_of(const dm_avro_node_t *n)
{
    if (n && n->type == DM_AVRO_UNION) {
        const dm_avro_node_t *r = NULL;
        for (uint32_t i = 0; i < n->n_branches; i++)
            if (n->branches[i]->type != DM_AVRO_NULL) {
                if (r) return NULL;
                r = n->branches[i];
            }
        n = r;
    }
    return n && n->type == DM_AVRO_RECORD ? n : NULL;
}

static const char *type_name(const dm_avro_node_t *n)
{
    static const char *const names[] = {"null",   "boolean", "int",    "long",   "float",
                                        "double", "bytes",   "string", "record", "enum",
                                        "array",  "map",     "union",  "fixed"};
    if (n->type == DM_AVRO_UNION && n->n_branches == 2 && n->branches[0]->type == DM_AVRO_NULL)
        n = n->branches[1];
    if (n->logical == DM_AVRO_LT_TIMESTAMP_MILLIS || n->logical == DM_AVRO_LT_TIMESTAMP_MICROS)
        return "timestamp";
    return (unsigned)n->type < sizeof(names) / sizeof(names[0]) ? names[n->type] : "?";
}

/* Adds the fields of record (nested records too) under node ds. */
static dm_err_t add_fields(dm_lineage_t *g, size_t ds, const dm_avro_node_t *record,
                           const char *prefix, size_t parent, int depth)
{
    const char *kind = strcmp(g->nodes[ds].kind, "source") && strcmp(g->nodes[ds].kind, "topic")
                           ? "column"
                           : "field";
    for (uint32_t f = 0; record && f < record->n_fields && depth < 16; f++) {
        char path[1024], id[1600];
        snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "." : "", record->fields[f].name);
        snprintf(id, sizeof(id), "%s.%s", g->nodes[ds].id, path);
        bool fresh = node_find(g, id) == NONE;
        size_t i = node_add(g, id, kind, ds, path);
        if (i == NONE) return DM_ERR_NOMEM;
        if (!fresh) continue;
        node_attr(g, i, "type", json_string(type_name(record->fields[f].type)));
        if (parent != NONE) {
            lnode_t *p = &g->nodes[parent];
            size_t *k = realloc(p->kids, (p->n_kids + 1) * sizeof(*k));
            if (!k) return DM_ERR_NOMEM;
            p->kids = k;
            p->kids[p->n_kids++] = i;
            if (g->rec) {
                buf_op(&g->rec->ops, OP_KID);
                buf_str(&g->rec->ops, p->id);
                buf_str(&g->rec->ops, g->nodes[i].id);
            }
        }
        dm_err_t rc = add_fields(g, ds, record_of(record->fields[f].type), path, i, depth + 1);
        if (rc) return rc;
    }
    return DM_OK;
}

/* A dataset node (source, topic, sink, table) with the fields of record. */
static size_t dataset_add(dm_lineage_t *g, const char *id, const char *kind,
                          const dm_avro_node_t *record)
{
    size_t i = node_add(g, id, kind, NONE, NULL);
    if (i != NONE && add_fields(g, i, record_of(record), "", NONE, 0)) return NONE;
    return i;
}

/* The field node at path of dataset ds, or its nearest enclosing field. */
static size_t field_at(const dm_lineage_t *g, size_t ds, const char *path)
{
    char id[1600];
    snprintf(id, sizeof(id), "%s.%s", g->nodes[ds].id, path);
    for (;;) {
        size_t i = node_find(g, id);
        if (i != NONE) return i;
        char *dot = strrchr(id + strlen(g->nodes[ds].id) + 1, '.');
        if (!dot) return NONE;
        *dot = '\0';
    }
}

/* Edge from → to, and when it copies a record unchanged, the same between
 * their nested fields of the same names. */
static dm_err_t field_edge(dm_lineage_t *g, size_t from, size_t to, int kind, size_t pipeline)
{
    dm_err_t rc = edge_add(g, from, to, kind, pipeline);
    if (rc || kind != DM_DEP_IDENTITY) return rc;
    const lnode_t *a = &g->nodes[from], *b = &g->nodes[to];
    for (size_t i = 0; i < a->n_kids && !rc; i++) {
        const char *an = strrchr(g->nodes[a->kids[i]].path, '.');
        an = an ? an + 1 : g->nodes[a->kids[i]].path;
        for (size_t j = 0; j < b->n_kids && !rc; j++) {
            const char *bn = strrchr(g->nodes[b->kids[j]].path, '.');
            if (!strcmp(an, bn ? bn + 1 : g->nodes[b->kids[j]].path))
                rc = field_edge(g, a->kids[i], b->kids[j], kind, pipeline);
        }
    }
    return rc;
}

/* ---- records as they flow through a plan ---------------------------------------------- */

typedef struct origin {
    size_t node;
    int kind;
} origin_t;

typedef struct olist {
    origin_t *v;
    size_t n, cap;
} olist_t;

static dm_err_t olist_add(olist_t *l, size_t node, int kind)
{
    if (node == NONE) return DM_OK;
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i].node == node && l->v[i].kind == kind) return DM_OK;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4;
        origin_t *v = realloc(l->v, cap * sizeof(*v));
        if (!v) return DM_ERR_NOMEM;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = (origin_t){node, kind};
    return DM_OK;
}

/* Per top-level field of the records, where it comes from. */
typedef struct fstate {
    const dm_avro_node_t *schema;
    char **names;
    olist_t *from;
    size_t n;
    olist_t indirect; /* fields that decided which records there are */
} fstate_t;

static void fstate_clear(fstate_t *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->names[i]);
        free(s->from[i].v);
    }
    free(s->names);
    free(s->from);
    free(s->indirect.v);
    *s = (fstate_t){0};
}

/* An empty state with one (origin-less) entry per field of schema. */
static dm_err_t fstate_init(fstate_t *s, const dm_avro_node_t *schema)
{
    *s = (fstate_t){.schema = schema};
    const dm_avro_node_t *r = record_of(schema);
    size_t n = r ? r->n_fields : 0;
    s->names = calloc(n ? n : 1, sizeof(*s->names));
    s->from = calloc(n ? n : 1, sizeof(*s->from));
    if (!s->names || !s->from) return DM_ERR_NOMEM;
    for (size_t i = 0; i < n; i++)
        if (!(s->names[s->n++] = strdup(r->fields[i].name))) return DM_ERR_NOMEM;
    return DM_OK;
}

static dm_err_t fstate_copy(fstate_t *dst, const fstate_t *src)
{
    dm_err_t rc = fstate_init(dst, src->schema);
    for (size_t i = 0; i < dst->n && !rc; i++)
        for (size_t k = 0; k < src->from[i].n && !rc; k++)
            rc = olist_add(&dst->from[i], src->from[i].v[k].node, src->from[i].v[k].kind);
    for (size_t k = 0; k < src->indirect.n && !rc; k++)
        rc = olist_add(&dst->indirect, src->indirect.v[k].node, src->indirect.v[k].kind);
    return rc;
}

/* Records read from dataset ds: every field is the dataset's own. */
static dm_err_t fstate_of_dataset(const dm_lineage_t *g, fstate_t *s, size_t ds,
                                  const dm_avro_node_t *schema)
{
    dm_err_t rc = fstate_init(s, schema);
    for (size_t i = 0; i < s->n && !rc; i++)
        rc = olist_add(&s->from[i], field_at(g, ds, s->names[i]), DM_DEP_IDENTITY);
    return rc;
}

/* Where input path comes from in state s: the origins of its top-level
 * field, or, for a nested path of a field copied unchanged, the nested field. */
static dm_err_t resolve(const dm_lineage_t *g, const fstate_t *s, const char *path, olist_t *out)
{
    const char *dot = strchr(path, '.');
    size_t head = dot ? (size_t)(dot - path) : strlen(path);
    for (size_t i = 0; i < s->n; i++) {
        if (strlen(s->names[i]) != head || strncmp(s->names[i], path, head)) continue;
        for (size_t k = 0; k < s->from[i].n; k++) {
            origin_t o = s->from[i].v[k];
            if (dot && o.kind == DM_DEP_IDENTITY && g->nodes[o.node].dataset != NONE) {
                char sub[1400];
                snprintf(sub, sizeof(sub), "%s.%s", g->nodes[o.node].path, dot + 1);
                size_t nested = field_at(g, g->nodes[o.node].dataset, sub);
                if (nested != NONE) o.node = nested;
            }
            dm_err_t rc = olist_add(out, o.node, o.kind);
            if (rc) return rc;
        }
        return DM_OK;
    }
    return DM_OK;
}

/* ---- building from plans -------------------------------------------------------------- */

/* A topic a plan's stage wrote, for the stages reading it. */
typedef struct saved {
    const char *topic;
    fstate_t st;
} saved_t;

typedef struct builder {
    dm_lineage_t *g;
    const dm_lineage_env_t *env;
    const dm_pipeline_plan_t *plan;
    size_t pnode;
    saved_t saved[64];
    size_t n_saved;
    dm_proc_t *opened[128];
    size_t n_opened;
    dm_table_t *tables[8];
    int n_tables;
} builder_t;

static const dm_avro_schema_t *schema_of(builder_t *b, const char *topic, int64_t id)
{
    dm_error_t e = {0};
    const dm_avro_schema_t *s = id > 0 ? b->env->schema(b->env->ctx, id, &e) : NULL;
    if (!s) {
        char subject[400];
        snprintf(subject, sizeof(subject), "%s-value", topic);
        s = b->env->subject_schema(b->env->ctx, subject);
    }
    return s;
}

static const saved_t *saved_find(const builder_t *b, const char *topic)
{
    for (size_t i = 0; i < b->n_saved; i++)
        if (!strcmp(b->saved[i].topic, topic)) return &b->saved[i];
    return NULL;
}

/* Whether a stage of the plan writes topic. */
static bool plan_writes(const dm_pipeline_plan_t *plan, const char *topic)
{
    for (size_t s = 0; s < plan->n_stages; s++)
        if (plan->stages[s].output && !strcmp(plan->stages[s].output, topic)) return true;
    return false;
}

/* The dataset node of an outside topic the plan reads (a source). */
static size_t input_dataset(builder_t *b, const char *topic, int64_t id)
{
    const dm_avro_schema_t *s = schema_of(b, topic, id);
    size_t ds = dataset_add(b->g, topic, "source", s ? s->root : NULL);
    if (ds != NONE) edge_add(b->g, ds, b->pnode, K_INPUT, NONE);
    return ds;
}

/* The records of a topic a stage reads: from an earlier stage, else a source. */
static dm_err_t topic_state(builder_t *b, const dm_plan_input_t *in, fstate_t *st, bool *ready,
                            dm_error_t *err)
{
    *ready = true;
    if (plan_writes(b->plan, in->topic)) {
        const saved_t *sv = saved_find(b, in->topic);
        if (!sv) {
            *ready = false;
            return DM_OK;
        }
        return fstate_copy(st, &sv->st) ? dm_error_set(err, DM_ERR_NOMEM, "out of memory") : DM_OK;
    }
    const dm_avro_schema_t *s = schema_of(b, in->topic, in->schema_id);
    if (!s)
        return dm_error_set(err, DM_ERR_NOT_FOUND, "source %s has no registered schema", in->topic);
    size_t ds = input_dataset(b, in->topic, in->schema_id);
    if (ds == NONE) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    return fstate_of_dataset(b->g, st, ds, s->root)
               ? dm_error_set(err, DM_ERR_NOMEM, "out of memory")
               : DM_OK;
}

static dm_table_t *builder_table(void *ctx, const char *source, dm_error_t *err)
{
    builder_t *b = ctx;
    for (int i = 0; i < b->n_tables; i++)
        if (!strcmp(dm_table_name(b->tables[i]), source)) return b->tables[i];
    for (size_t i = 0; i < b->plan->n_tables && b->n_tables < 8; i++) {
        const dm_plan_table_t *t = &b->plan->tables[i];
        if (strcmp(t->source, source)) continue;
        const dm_avro_schema_t *s = schema_of(b, t->source, t->schema_id);
        if (!s) break;
        if (dm_table_new(source, s, t->key, &b->tables[b->n_tables], err)) return NULL;
        input_dataset(b, t->source, t->schema_id);
        return b->tables[b->n_tables++];
    }
    dm_error_set(err, DM_ERR_NOT_FOUND, "the plan has no table of source %s", source);
    return NULL;
}

/* The state of the records an enrich step looks up: the table source's own fields. */
static dm_err_t table_state(builder_t *b, const char *source, fstate_t *st)
{
    for (size_t i = 0; i < b->plan->n_tables; i++) {
        const dm_plan_table_t *t = &b->plan->tables[i];
        if (strcmp(t->source, source)) continue;
        const dm_avro_schema_t *s = schema_of(b, t->source, t->schema_id);
        size_t ds = s ? input_dataset(b, t->source, t->schema_id) : NONE;
        if (ds != NONE) return fstate_of_dataset(b->g, st, ds, s->root);
    }
    return fstate_init(st, NULL);
}

/* One step: opens it against st's schema and replaces st with what it writes. */
static dm_err_t run_step(builder_t *b, const dm_plan_stage_t *s, const dm_plan_step_t *step,
                         fstate_t *st, fstate_t *other, dm_error_t *err)
{
    const dm_proc_ops_t *ops = dm_plan_proc_find(step->kind);
    if (!ops)
        return dm_error_set(err, DM_ERR_UNSUPPORTED, "step '%s' is not available", step->kind);
    if (b->n_opened == sizeof(b->opened) / sizeof(b->opened[0]))
        return dm_error_set(err, DM_ERR_UNSUPPORTED, "more than 128 steps");
    dm_proc_env_t penv = {builder_table, b, NULL};
    dm_proc_t *p = NULL;
    const dm_avro_node_t *other_node = ops->two_inputs && s->other.topic ? other->schema : NULL;
    dm_err_t rc = dm_proc_open2(ops, &penv, step->config, st->schema, other_node, &p, err);
    if (rc) return dm_error_prefix(err, "step %d (%s)", step->index, step->kind);
    b->opened[b->n_opened++] = p;
    const dm_avro_node_t *out = p->output ? p->output->root : st->schema;
    fstate_t next;
    if (fstate_init(&next, out)) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    for (size_t k = 0; k < st->indirect.n && !rc; k++)
        rc = olist_add(&next.indirect, st->indirect.v[k].node, st->indirect.v[k].kind);
    if (ops->field_deps) {
        dm_field_deps_t deps = {0};
        rc = rc ? rc : ops->field_deps(p, &deps);
        for (size_t d = 0; d < deps.n && !rc; d++) {
            const dm_field_dep_t *dep = &deps.items[d];
            fstate_t table = {0};
            const fstate_t *side = st;
            if (dep->side == DM_DEP_OTHER) side = other;
            if (dep->side == DM_DEP_TABLE) {
                rc = table_state(b, dep->source ? dep->source : "", &table);
                side = &table;
            }
            olist_t from = {0};
            if (!rc) rc = resolve(b->g, side, dep->input, &from);
            for (size_t k = 0; k < from.n && !rc; k++) {
                if (!dm_field_dep_direct(dep->kind)) {
                    rc = olist_add(&next.indirect, from.v[k].node, dep->kind);
                    continue;
                }
                int kind = (int)dep->kind > from.v[k].kind ? (int)dep->kind : from.v[k].kind;
                for (size_t i = 0; i < next.n && !rc; i++)
                    if (dep->output && !strcmp(next.names[i], dep->output))
                        rc = olist_add(&next.from[i], from.v[k].node, kind);
            }
            free(from.v);
            fstate_clear(&table);
        }
        dm_field_deps_free(&deps);
    } else {
        /* Fields pass through unchanged (by name); what it reads picks records. */
        for (size_t i = 0; i < next.n && !rc; i++)
            rc = resolve(b->g, st, next.names[i], &next.from[i]);
        const char *const *paths = NULL;
        size_t n = step->index >= 0 && ops->read_paths ? ops->read_paths(p, &paths) : 0;
        for (size_t k = 0; k < n && !rc; k++) {
            olist_t from = {0};
            rc = resolve(b->g, st, paths[k], &from);
            for (size_t j = 0; j < from.n && !rc; j++)
                rc = olist_add(&next.indirect, from.v[j].node, DM_DEP_FILTER);
            free(from.v);
        }
    }
    fstate_clear(st);
    *st = next;
    return rc ? dm_error_set(err, rc, "out of memory") : DM_OK;
}

/* Edges into the fields of dataset ds from where st's fields come from. */
static dm_err_t write_dataset(builder_t *b, size_t ds, const fstate_t *st)
{
    dm_lineage_t *g = b->g;
    dm_err_t rc = DM_OK;
    for (size_t i = 0; i < st->n && !rc; i++) {
        size_t to = field_at(g, ds, st->names[i]);
        if (to == NONE) continue;
        for (size_t k = 0; k < st->from[i].n && !rc; k++)
            rc = field_edge(g, st->from[i].v[k].node, to, st->from[i].v[k].kind, b->pnode);
        for (size_t k = 0; k < st->indirect.n && !rc; k++)
            rc = edge_add(g, st->indirect.v[k].node, to, st->indirect.v[k].kind, b->pnode);
    }
    return rc;
}

/* Runs stage s when the topics it reads are known; *done says whether it ran. */
static dm_err_t run_stage(builder_t *b, const dm_plan_stage_t *s, bool *done, dm_error_t *err)
{
    fstate_t st = {0}, other = {0};
    bool ready = true, r2 = true;
    dm_err_t rc = topic_state(b, &s->input, &st, &ready, err);
    if (!rc && ready && s->other.topic) rc = topic_state(b, &s->other, &other, &r2, err);
    *done = !rc && ready && r2;
    /* union: further sources give their fields of the same names */
    for (size_t m = 0; *done && m < s->n_more && !rc; m++) {
        fstate_t more = {0};
        bool r3 = true;
        rc = topic_state(b, &s->more[m], &more, &r3, err);
        for (size_t i = 0; !rc && i < st.n; i++)
            rc = resolve(b->g, &more, st.names[i], &st.from[i]);
        for (size_t k = 0; !rc && k < more.indirect.n; k++)
            rc = olist_add(&st.indirect, more.indirect.v[k].node, more.indirect.v[k].kind);
        fstate_clear(&more);
    }
    for (size_t i = 0; *done && i < s->n_steps && !rc; i++)
        rc = run_step(b, s, &s->steps[i], &st, &other, err);
    if (!rc && *done) {
        const char *outs[17] = {s->output};
        size_t n_outs = s->output ? 1 : 0;
        for (size_t x = 0; x < s->n_extra && n_outs < 17; x++)
            outs[n_outs++] = s->extra[x];
        for (size_t o = 0; o < n_outs && !rc; o++) {
            if (b->n_saved < 64 && !saved_find(b, outs[o])) {
                b->saved[b->n_saved].topic = outs[o];
                rc = fstate_copy(&b->saved[b->n_saved++].st, &st);
            }
            bool dataset = o > 0 || (b->plan->output && !strcmp(outs[o], b->plan->output));
            if (!dataset || rc) continue;
            size_t ds = node_find(b->g, outs[o]);
            if (ds != NONE) rc = write_dataset(b, ds, &st);
        }
        if (rc) rc = dm_error_set(err, rc, "out of memory");
    }
    fstate_clear(&st);
    fstate_clear(&other);
    return rc;
}

static const dm_avro_schema_t *stage_output_schema(const dm_plan_stage_t *s,
                                                   dm_avro_schema_t **owned)
{
    *owned = NULL;
    if (!s->output_schema) return NULL;
    dm_error_t e = {0};
    dm_avro_schema_parse(s->output_schema, strlen(s->output_schema), owned, &e);
    return *owned;
}

/* The pipeline node, its datasets and sinks, then its field edges. */
static dm_err_t add_plan(dm_lineage_t *g, const dm_lineage_env_t *env,
                         const dm_pipeline_plan_t *plan)
{
    char id[600];
    snprintf(id, sizeof(id), "pipeline:%s", plan->name);
    size_t pnode = node_add(g, id, "pipeline", NONE, NULL);
    if (pnode == NONE) return DM_ERR_NOMEM;
    node_attr(g, pnode, "name", json_string(plan->name));
    json_t *steps = json_array();
    for (size_t s = 0; s < plan->n_stages; s++)
        for (size_t i = 0; i < plan->stages[s].n_steps; i++) {
            const dm_plan_step_t *st = &plan->stages[s].steps[i];
            if (st->index < 0) continue;
            json_t *reads = json_array();
            for (char **r = st->reads; r && *r; r++)
                json_array_append_new(reads, json_string(*r));
            json_array_append_new(steps, json_pack("{s:i, s:s, s:o, s:s}", "index", st->index,
                                                   "kind", st->kind, "reads", reads, "stage",
                                                   plan->stages[s].name));
        }
    node_attr(g, pnode, "steps", steps);

    /* What it writes: the last stage's output (a source, or its own topic), route
     * outputs, sinks. Their fields are the schema the stage writes. */
    const dm_plan_stage_t *last = plan->n_stages ? &plan->stages[plan->n_stages - 1] : NULL;
    for (size_t s = 0; s < plan->n_stages; s++)
        if (plan->stages[s].output && !strcmp(plan->stages[s].output, plan->output))
            last = &plan->stages[s];
    dm_avro_schema_t *owned = NULL;
    const dm_avro_schema_t *out_schema = last ? stage_output_schema(last, &owned) : NULL;
    const dm_avro_node_t *out_root = out_schema ? out_schema->root : NULL;
    dm_err_t rc = DM_OK;
    size_t out_ds = NONE;
    if (plan->output) {
        char own[600];
        snprintf(own, sizeof(own), "pipeline.%s.out", plan->name);
        out_ds =
            dataset_add(g, plan->output, strcmp(plan->output, own) ? "source" : "topic", out_root);
        rc = out_ds == NONE ? DM_ERR_NOMEM : edge_add(g, pnode, out_ds, K_OUTPUT, NONE);
    }
    /* route outputs: the records of the stage that routes them, with its schema */
    for (size_t s = 0; s < plan->n_stages && !rc; s++) {
        const dm_plan_stage_t *st = &plan->stages[s];
        dm_avro_schema_t *mine = NULL;
        const dm_avro_schema_t *sch = st == last    ? out_schema
                                      : st->n_extra ? stage_output_schema(st, &mine)
                                                    : NULL;
        for (size_t x = 0; x < st->n_extra && !rc; x++) {
            size_t ds = dataset_add(g, st->extra[x], "source", sch ? sch->root : NULL);
            rc = ds == NONE ? DM_ERR_NOMEM : edge_add(g, pnode, ds, K_OUTPUT, NONE);
        }
        dm_avro_schema_free(mine);
    }
    for (size_t k = 0; k < plan->n_sinks && !rc; k++) {
        const dm_plan_sink_t *sk = &plan->sinks[k];
        snprintf(id, sizeof(id), "sink:%s", sk->name);
        size_t ds = dataset_add(g, id, "sink", out_root);
        if (ds == NONE) {
            rc = DM_ERR_NOMEM;
            break;
        }
        node_attr(g, ds, "name", json_string(sk->name));
        node_attr(g, ds, "type", json_string(sk->type ? sk->type : ""));
        node_attr(g, ds, "pipeline", json_string(plan->name));
        /* where it writes, in OpenLineage's naming, and the order it keeps */
        const dm_sink_ops_t *ops = sk->type ? dm_sink_ops_find(sk->type) : NULL;
        if (ops && ops->lineage) {
            json_t *named = json_object();
            ops->lineage(sk->settings, named);
            const char *keys[][2] = {
                {"namespace", "namespace"}, {"name", "dataset_name"}, {"sort", "sort"}};
            for (int k = 0; k < 3; k++)
                if (json_object_get(named, keys[k][0]))
                    node_attr(g, ds, keys[k][1], json_incref(json_object_get(named, keys[k][0])));
            json_decref(named);
        }
        rc = edge_add(g, pnode, ds, K_OUTPUT, NONE);
        /* a sink writes the output's fields as they are */
        const dm_avro_node_t *r = out_root ? record_of(out_root) : NULL;
        for (uint32_t f = 0; out_ds != NONE && r && f < r->n_fields && !rc; f++)
            rc = field_edge(g, field_at(g, out_ds, r->fields[f].name),
                            field_at(g, ds, r->fields[f].name), DM_DEP_IDENTITY, pnode);
        /* a sort order: its columns decide the order of every row written */
        size_t si;
        json_t *col;
        json_array_foreach(json_object_get(g->nodes[ds].attrs, "sort"), si, col)
        {
            const char *c = json_string_value(col);
            int at = c && r ? dm_avro_field_index(r, c) : -1;
            for (uint32_t f = 0; at >= 0 && f < r->n_fields && !rc; f++)
                rc = edge_add(g, field_at(g, out_ds, c), field_at(g, ds, r->fields[f].name),
                              DM_DEP_SORT, pnode);
        }
    }
    dm_avro_schema_free(owned);
    if (rc) return rc;

    /* Field edges: stages in the order their inputs become known. */
    builder_t b = {.g = g, .env = env, .plan = plan, .pnode = pnode};
    bool *ran = calloc(plan->n_stages ? plan->n_stages : 1, sizeof(bool));
    if (!ran) return DM_ERR_NOMEM;
    dm_error_t err = {0};
    size_t n_ran = 0;
    for (bool progress = true; progress && n_ran < plan->n_stages && !rc;) {
        progress = false;
        for (size_t s = 0; s < plan->n_stages && !rc; s++) {
            if (ran[s]) continue;
            rc = run_stage(&b, &plan->stages[s], &ran[s], &err);
            if (ran[s]) progress = true, n_ran++;
        }
    }
    if (!rc && n_ran < plan->n_stages)
        rc = dm_error_set(&err, DM_ERR_INVALID, "a stage reads a topic no stage writes");
    if (rc && rc != DM_ERR_NOMEM) {
        json_array_append_new(
            g->problems, json_pack("{s:s, s:s}", "pipeline", plan->name, "error", err.message));
        if (g->rec) {
            buf_op(&g->rec->ops, OP_PROBLEM);
            buf_str(&g->rec->ops, plan->name);
            buf_str(&g->rec->ops, err.message);
        }
        rc = DM_OK;
    }
    free(ran);
    for (size_t i = 0; i < b.n_opened; i++)
        dm_proc_close(b.opened[i]);
    for (int i = 0; i < b.n_tables; i++)
        dm_table_free(b.tables[i]);
    for (size_t i = 0; i < b.n_saved; i++)
        fstate_clear(&b.saved[i].st);
    return rc;
}

/* ---- sources: their fields, and the tables a change-data source captures ------------ */

/* Value of key in a libpq-style "k=v k=v" connection string (into out). */
static bool dsn_get(const char *dsn, const char *key, char *out, size_t cap)
{
    size_t kl = strlen(key);
    for (const char *p = dsn; p && *p;) {
        while (*p == ' ')
            p++;
        if (!strncmp(p, key, kl) && p[kl] == '=') {
            const char *v = p + kl + 1, *end = strchr(v, ' ');
            size_t n = end ? (size_t)(end - v) : strlen(v);
            snprintf(out, cap, "%.*s", (int)(n < cap ? n : cap - 1), v);
            return true;
        }
        p = strchr(p, ' ');
    }
    return false;
}

/* The topic of a captured table: the source's own for one table, else
 * SOURCE.schema.table with characters a topic cannot hold as '_'. */
static void table_topic(const char *source, const char *table, size_t n_tables, char *out,
                        size_t cap)
{
    if (n_tables == 1) {
        snprintf(out, cap, "%s", source);
        return;
    }
    snprintf(out, cap, "%s.%s", source, table);
    for (char *c = out + strlen(source) + 1; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '.' || *c == '_' || *c == '-'))
            *c = '_';
}

/* A source capturing database tables (spec.config.tables, records with an
 * `after` row): a table node per table with its columns, each feeding the
 * `before` and `after` fields of the same name. */
static dm_err_t add_tables(dm_lineage_t *g, const dm_lineage_env_t *env, const char *name,
                           const json_t *spec)
{
    const json_t *conf = json_object_get(spec, "config");
    const json_t *tables = json_object_get(conf, "tables");
    const char *connector = json_string_value(json_object_get(spec, "connector"));
    const char *dsn = json_string_value(json_object_get(conf, "dsn"));
    char host[256] = "localhost", port[32] = "5432", db[256] = "";
    if (dsn) {
        dsn_get(dsn, "host", host, sizeof(host));
        dsn_get(dsn, "port", port, sizeof(port));
        dsn_get(dsn, "dbname", db, sizeof(db));
    }
    size_t i;
    json_t *t;
    json_array_foreach(tables, i, t)
    {
        const char *table = json_string_value(t);
        if (!table || strchr(table, '*'))
            continue; /* which tables a pattern matches is the
                        database's to say */
        char topic[600], subject[700], id[800];
        table_topic(name, table, json_array_size(tables), topic, sizeof(topic));
        snprintf(subject, sizeof(subject), "%s-value", topic);
        const dm_avro_schema_t *s = env->subject_schema(env->ctx, subject);
        const dm_avro_node_t *env_rec = s ? record_of(s->root) : NULL;
        int after = env_rec ? dm_avro_field_index(env_rec, "after") : -1;
        if (after < 0) continue;
        size_t src = dataset_add(g, topic, "source", s->root);
        snprintf(id, sizeof(id), "table:%s/%s", name, table);
        size_t tn = dataset_add(g, id, "table", env_rec->fields[after].type);
        if (src == NONE || tn == NONE) return DM_ERR_NOMEM;
        char ns[400], full[600];
        snprintf(ns, sizeof(ns), "%s://%s:%s", connector ? connector : "db", host, port);
        snprintf(full, sizeof(full), "%s%s%s", db, *db ? "." : "", table);
        node_attr(g, tn, "namespace", json_string(ns));
        node_attr(g, tn, "name", json_string(full));
        node_attr(g, tn, "source", json_string(name));
        dm_err_t rc = edge_add(g, tn, src, K_CAPTURE, NONE);
        const dm_avro_node_t *row = record_of(env_rec->fields[after].type);
        for (uint32_t f = 0; row && f < row->n_fields && !rc; f++) {
            char col[400];
            snprintf(col, sizeof(col), "%s.%s", id, row->fields[f].name);
            size_t c = node_find(g, col);
            const char *sides[] = {"before", "after"};
            for (int sd = 0; sd < 2 && !rc; sd++) {
                char path[400];
                snprintf(path, sizeof(path), "%s.%s", sides[sd], row->fields[f].name);
                size_t to = field_at(g, src, path);
                if (to != NONE && strcmp(g->nodes[to].path, path)) to = NONE;
                rc = edge_add(g, c, to, DM_DEP_IDENTITY, NONE);
            }
        }
        if (rc) return rc;
    }
    return DM_OK;
}

static dm_err_t add_source(dm_lineage_t *g, const dm_lineage_env_t *env, const char *name,
                           const json_t *doc)
{
    char subject[400];
    snprintf(subject, sizeof(subject), "%s-value", name);
    const dm_avro_schema_t *s = env->subject_schema(env->ctx, subject);
    size_t i = dataset_add(g, name, "source", s ? s->root : NULL);
    if (i == NONE) return DM_ERR_NOMEM;
    const json_t *spec = json_object_get(doc, "spec");
    const json_t *meta = json_object_get(doc, "metadata");
    const char *connector = json_string_value(json_object_get(spec, "connector"));
    const char *owner = json_string_value(json_object_get(meta, "owner"));
    if (connector) node_attr(g, i, "connector", json_string(connector));
    if (owner) node_attr(g, i, "owner", json_string(owner));
    if (json_is_array(json_object_get(json_object_get(spec, "config"), "tables")))
        return add_tables(g, env, name, spec);
    return DM_OK;
}

/* ---- adjacency ------------------------------------------------------------------------ */

static dm_err_t build_adjacency(dm_lineage_t *g)
{
    size_t n = g->n_nodes, m = g->n_edges;
    g->out_off = calloc(n + 1, sizeof(size_t));
    g->in_off = calloc(n + 1, sizeof(size_t));
    g->out_list = calloc(m ? m : 1, sizeof(size_t));
    g->in_list = calloc(m ? m : 1, sizeof(size_t));
    if (!g->out_off || !g->in_off || !g->out_list || !g->in_list) return DM_ERR_NOMEM;
    for (size_t e = 0; e < m; e++) {
        g->out_off[g->edges[e].from + 1]++;
        g->in_off[g->edges[e].to + 1]++;
    }
    for (size_t i = 0; i < n; i++) {
        g->out_off[i + 1] += g->out_off[i];
        g->in_off[i + 1] += g->in_off[i];
    }
    size_t *fo = calloc(n ? n : 1, sizeof(size_t)), *fi = calloc(n ? n : 1, sizeof(size_t));
    if (!fo || !fi) {
        free(fo);
        free(fi);
        return DM_ERR_NOMEM;
    }
    for (size_t e = 0; e < m; e++) {
        size_t a = g->edges[e].from, b = g->edges[e].to;
        g->out_list[g->out_off[a] + fo[a]++] = e;
        g->in_list[g->in_off[b] + fi[b]++] = e;
    }
    free(fo);
    free(fi);
    return DM_OK;
}

dm_err_t dm_lineage_new(const json_t *sources, const dm_lineage_env_t *env, dm_lineage_t **out,
                        dm_error_t *err)
{
    *out = NULL;
    dm_lineage_t *g = calloc(1, sizeof(*g));
    if (!g) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    g->index = json_object();
    g->seen = json_object();
    g->problems = json_array();
    dm_err_t rc = g->index && g->seen && g->problems ? DM_OK : DM_ERR_NOMEM;
    const char *name;
    json_t *doc;
    json_object_foreach((json_t *)sources, name, doc)
    {
        if (!rc) rc = add_source(g, env, name, doc);
    }
    if (rc) {
        dm_lineage_free(g);
        return dm_error_set(err, rc, "lineage: out of memory while building the graph");
    }
    *out = g;
    return DM_OK;
}

dm_err_t dm_lineage_add(dm_lineage_t *g, const dm_lineage_env_t *env,
                        const dm_pipeline_plan_t *plan, void **frag, size_t *frag_len,
                        dm_error_t *err)
{
    lrec_t rec = {0};
    if (frag) {
        *frag = NULL;
        *frag_len = 0;
        if (!(rec.looked = json_object()))
            return dm_error_set(err, DM_ERR_NOMEM, "lineage: out of memory");
        g->rec = &rec;
    }
    dm_err_t rc = add_plan(g, env, plan);
    g->rec = NULL;
    if (frag && !rc) {
        /* "DMLF", version 1, the deps, then the changes */
        lbuf_t out = {0};
        buf_put(&out, "DMLF\1", 5);
        buf_u32(&out, rec.n_deps);
        buf_put(&out, rec.deps.p, rec.deps.n);
        buf_op(&rec.ops, OP_END);
        buf_put(&out, rec.ops.p, rec.ops.n);
        /* a damaged fragment (a bad disk, a hand edit) is never replayed */
        uint64_t sum = out.failed ? 0 : dm_hash64(out.p, out.n);
        buf_put(&out, &sum, sizeof(sum));
        if (out.failed || rec.deps.failed || rec.ops.failed) {
            free(out.p);
            rc = DM_ERR_NOMEM;
        } else {
            *frag = out.p;
            *frag_len = out.n;
        }
    }
    free(rec.deps.p);
    free(rec.ops.p);
    json_decref(rec.looked);
    return rc ? dm_error_set(err, rc, "lineage: out of memory while adding pipeline %s", plan->name)
              : DM_OK;
}

/* What a node is to a plan reading it: its kind, dataset, path, nested
 * fields (all levels) and a sink's sort order; 1 when there is no node. */
static uint64_t node_hash_at(const dm_lineage_t *g, size_t i, int depth)
{
    if (i == NONE) return 1;
    const lnode_t *n = &g->nodes[i];
    uint64_t h = dm_hash64_seed(n->kind, strlen(n->kind), 0x9e3779b97f4a7c15ull);
    const char *ds = n->dataset != NONE ? g->nodes[n->dataset].id : "";
    h = dm_hash64_seed(ds, strlen(ds) + 1, h);
    if (n->path) h = dm_hash64_seed(n->path, strlen(n->path) + 1, h);
    const json_t *sort = json_object_get(n->attrs, "sort");
    if (sort) {
        char *text = json_dumps(sort, JSON_COMPACT | JSON_ENCODE_ANY);
        if (text) h = dm_hash64_seed(text, strlen(text), h);
        free(text);
    }
    for (size_t k = 0; k < n->n_kids && depth < 32; k++) {
        uint64_t kh = node_hash_at(g, n->kids[k], depth + 1);
        h = dm_hash64_seed(&kh, sizeof(kh), h);
    }
    return h;
}

static uint64_t node_hash(const dm_lineage_t *g, size_t i)
{
    return node_hash_at(g, i, 0);
}

/* A bounds-checked reader of a fragment. */
typedef struct lread {
    const unsigned char *p, *end;
    bool bad;
} lread_t;

static bool rd(lread_t *r, void *out, size_t n)
{
    if (r->bad || (size_t)(r->end - r->p) < n) return !(r->bad = true);
    memcpy(out, r->p, n);
    r->p += n;
    return true;
}

/* A string as a pointer into the fragment (not terminated) and its length;
 * *null for a NULL one. */
static const char *rd_str(lread_t *r, uint32_t *len, bool *null)
{
    uint32_t n = 0;
    *null = false;
    if (!rd(r, &n, sizeof(n))) return NULL;
    if (n == UINT32_MAX) {
        *null = true;
        *len = 0;
        return "";
    }
    if ((size_t)(r->end - r->p) < n) {
        r->bad = true;
        return NULL;
    }
    const char *s = (const char *)r->p;
    r->p += n;
    *len = n;
    return s;
}

/* The same as a terminated copy in buf (cap bytes); NULL when it does not fit. */
static const char *rd_cstr(lread_t *r, char *buf, size_t cap, bool *null)
{
    uint32_t n;
    const char *s = rd_str(r, &n, null);
    if (!s || n >= cap) {
        r->bad = true;
        return NULL;
    }
    memcpy(buf, s, n);
    buf[n] = '\0';
    return *null ? NULL : buf;
}

/* The static kind names nodes point at. */
static const char *kind_intern(const char *kind)
{
    static const char *const kinds[] = {"source", "topic",  "field", "pipeline",
                                        "sink",   "column", "table"};
    for (size_t i = 0; kind && i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (!strcmp(kinds[i], kind)) return kinds[i];
    return NULL;
}

/* Walks the changes of a fragment; applies them when apply, else only checks
 * that they are well formed. */
static bool replay_ops(dm_lineage_t *g, lread_t r, bool apply)
{
    char a[2048], b[2048], c[2048], d[2048];
    for (;;) {
        unsigned char op;
        bool null, n2, n3, n4;
        if (!rd(&r, &op, 1)) return false;
        if (op == OP_END) return true;
        if (op == OP_NODE) {
            const char *id = rd_cstr(&r, a, sizeof(a), &null);
            const char *kind = rd_cstr(&r, b, sizeof(b), &n2);
            const char *ds = rd_cstr(&r, c, sizeof(c), &n3);
            const char *path = rd_cstr(&r, d, sizeof(d), &n4);
            if (r.bad || !id || !kind_intern(kind)) return false;
            if (!apply) continue;
            size_t dsi = ds ? node_lookup(g, ds) : NONE;
            if ((ds && dsi == NONE) || node_add(g, id, kind_intern(kind), dsi, path) == NONE)
                return false;
        } else if (op == OP_KID) {
            const char *parent = rd_cstr(&r, a, sizeof(a), &null);
            const char *kid = rd_cstr(&r, b, sizeof(b), &n2);
            if (r.bad || !parent || !kid) return false;
            if (!apply) continue;
            size_t pi = node_lookup(g, parent), ki = node_lookup(g, kid);
            if (pi == NONE || ki == NONE) return false;
            lnode_t *p = &g->nodes[pi];
            size_t *k = realloc(p->kids, (p->n_kids + 1) * sizeof(*k));
            if (!k) return false;
            p->kids = k;
            p->kids[p->n_kids++] = ki;
        } else if (op == OP_ATTR || op == OP_ATTR_STR) {
            const char *id = rd_cstr(&r, a, sizeof(a), &null);
            const char *key = rd_cstr(&r, b, sizeof(b), &n2);
            uint32_t len;
            const char *text = rd_str(&r, &len, &n3);
            if (r.bad || !id || !key || n3) return false;
            if (!apply) continue;
            size_t i = node_lookup(g, id);
            json_t *v = op == OP_ATTR_STR ? json_stringn(text, len)
                                          : json_loadb(text, len, JSON_DECODE_ANY, NULL);
            if (i == NONE || !v) {
                json_decref(v);
                return false;
            }
            node_attr(g, i, key, v);
        } else if (op == OP_EDGE) {
            const char *from = rd_cstr(&r, a, sizeof(a), &null);
            const char *to = rd_cstr(&r, b, sizeof(b), &n2);
            uint32_t kind = 0;
            rd(&r, &kind, sizeof(kind));
            const char *pipe = rd_cstr(&r, c, sizeof(c), &n3);
            if (r.bad || !from || !to || kind > K_CAPTURE) return false;
            if (!apply) continue;
            size_t fi = node_lookup(g, from), ti = node_lookup(g, to);
            size_t pi = pipe ? node_lookup(g, pipe) : NONE;
            if (fi == NONE || ti == NONE || (pipe && pi == NONE) ||
                edge_add(g, fi, ti, (int)kind, pi))
                return false;
        } else if (op == OP_PROBLEM) {
            const char *pipe = rd_cstr(&r, a, sizeof(a), &null);
            const char *msg = rd_cstr(&r, b, sizeof(b), &n2);
            if (r.bad || !pipe || !msg) return false;
            if (apply && json_array_append_new(
                             g->problems, json_pack("{s:s, s:s}", "pipeline", pipe, "error", msg)))
                return false;
        } else {
            return false;
        }
    }
}

int dm_lineage_replay(dm_lineage_t *g, const void *frag, size_t len)
{
    uint64_t sum;
    if (!frag || len < 5 + 4 + sizeof(sum)) return 0;
    len -= sizeof(sum);
    memcpy(&sum, (const unsigned char *)frag + len, sizeof(sum));
    if (dm_hash64(frag, len) != sum) return 0;
    lread_t r = {frag, (const unsigned char *)frag + len, false};
    char magic[5];
    uint32_t n_deps = 0;
    if (!frag || !rd(&r, magic, 5) || memcmp(magic, "DMLF\1", 5) || !rd(&r, &n_deps, 4)) return 0;
    char id[2048];
    for (uint32_t k = 0; k < n_deps; k++) {
        bool null;
        uint64_t h = 0;
        const char *s = rd_cstr(&r, id, sizeof(id), &null);
        if (!s || !rd(&r, &h, sizeof(h))) return 0;
        if (node_hash(g, node_lookup(g, s)) != h) return 0;
    }
    /* well formed first, so that a damaged fragment changes nothing */
    if (!replay_ops(g, r, false)) return 0;
    return replay_ops(g, r, true) ? 1 : -1;
}

dm_err_t dm_lineage_finish(dm_lineage_t *g, dm_error_t *err)
{
    dm_err_t rc = build_adjacency(g);
    json_decref(g->seen);
    g->seen = NULL;
    return rc ? dm_error_set(err, rc, "lineage: out of memory while building the graph") : DM_OK;
}

dm_err_t dm_lineage_build(const json_t *sources, dm_pipeline_plan_t *const *plans, size_t n_plans,
                          const dm_lineage_env_t *env, dm_lineage_t **out, dm_error_t *err)
{
    dm_lineage_t *g = NULL;
    dm_err_t rc = dm_lineage_new(sources, env, &g, err);
    for (size_t i = 0; i < n_plans && !rc; i++)
        if (plans[i]) rc = dm_lineage_add(g, env, plans[i], NULL, NULL, err);
    if (!rc) rc = dm_lineage_finish(g, err);
    if (rc) {
        dm_lineage_free(g);
        return rc;
    }
    *out = g;
    return DM_OK;
}

void dm_lineage_free(dm_lineage_t *g)
{
    if (!g) return;
    for (size_t i = 0; i < g->n_nodes; i++) {
        free(g->nodes[i].id);
        free(g->nodes[i].path);
        free(g->nodes[i].kids);
        json_decref(g->nodes[i].attrs);
    }
    free(g->nodes);
    free(g->edges);
    json_decref(g->index);
    json_decref(g->seen);
    json_decref(g->problems);
    free(g->out_off);
    free(g->out_list);
    free(g->in_off);
    free(g->in_list);
    free(g);
}

const json_t *dm_lineage_problems(const dm_lineage_t *g)
{
    return g->problems;
}
