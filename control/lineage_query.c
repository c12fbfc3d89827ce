/* control/lineage_query.c — reading the lineage graph (control/lineage.h):
 * walks up and down from a node, the whole graph, and what one pipeline or
 * source job reads and writes for OpenLineage. The graph is read-only here;
 * any thread. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/lineage.h"
#include "control/lineage_internal.h"

/* ---- queries ---------------------------------------------------------------------------- */

int dm_lineage_dir_parse(const char *text)
{
    if (!text) return -1;
    if (!strcmp(text, "upstream")) return DM_LINEAGE_UPSTREAM;
    if (!strcmp(text, "downstream")) return DM_LINEAGE_DOWNSTREAM;
    if (!strcmp(text, "both")) return DM_LINEAGE_BOTH;
    return -1;
}

static json_t *node_json(const dm_lineage_t *g, size_t i)
{
    const lnode_t *n = &g->nodes[i];
    json_t *j = json_pack("{s:s, s:s}", "id", n->id, "kind", n->kind);
    if (n->dataset != NONE) {
        json_object_set_new(j, "dataset", json_string(g->nodes[n->dataset].id));
        json_object_set_new(j, "path", json_string(n->path));
    }
    if (n->attrs) json_object_update(j, n->attrs);
    if (!json_object_get(j, "name")) json_object_set_new(j, "name", json_string(n->id));
    return j;
}

static const char *kind_name(int kind)
{
    if (kind == K_INPUT) return "INPUT";
    if (kind == K_OUTPUT) return "OUTPUT";
    if (kind == K_CAPTURE) return "CAPTURE";
    return dm_field_dep_kind_name((dm_field_dep_kind_t)kind);
}

static const char *type_of(int kind)
{
    if (kind >= K_INPUT) return "DATASET";
    return dm_field_dep_direct((dm_field_dep_kind_t)kind) ? "DIRECT" : "INDIRECT";
}

static json_t *edge_json(const dm_lineage_t *g, const ledge_t *e)
{
    json_t *j =
        json_pack("{s:s, s:s, s:s, s:s}", "from", g->nodes[e->from].id, "to", g->nodes[e->to].id,
                  "type", type_of(e->kind), "subtype", kind_name(e->kind));
    if (e->pipeline != NONE) {
        const json_t *pn = json_object_get(g->nodes[e->pipeline].attrs, "name");
        json_object_set_new(j, "pipeline", json_copy((json_t *)pn));
    }
    return j;
}

/* Seeds for node: an id, a source and/or pipeline name, or SOURCE.path. */
static size_t resolve_seeds(const dm_lineage_t *g, const char *node, size_t *seeds, size_t cap,
                            dm_error_t *err)
{
    size_t n = 0, i = dm_lineage_node_lookup(g, node);
    if (i != NONE) seeds[n++] = i;
    char id[700];
    snprintf(id, sizeof(id), "pipeline:%s", node);
    if (strncmp(node, "pipeline:", 9) && (i = dm_lineage_node_lookup(g, id)) != NONE && n < cap)
        seeds[n++] = i;
    if (n) return n;
    /* SOURCE.path where SOURCE is the longest dataset name that fits */
    char buf[700];
    snprintf(buf, sizeof(buf), "%s", node);
    for (char *dot = strrchr(buf, '.'); dot; dot = strrchr(buf, '.')) {
        *dot = '\0';
        size_t ds = dm_lineage_node_lookup(g, buf);
        if (ds == NONE || g->nodes[ds].dataset != NONE) continue;
        dm_error_set(err, DM_ERR_NOT_FOUND, "lineage: %s %s has no field '%s'", g->nodes[ds].kind,
                     buf, node + strlen(buf) + 1);
        return 0;
    }
    dm_error_set(err, DM_ERR_NOT_FOUND,
                 "lineage: no source, field or pipeline named '%s' (a field is SOURCE.FIELD, "
                 "nested SOURCE.a.b)",
                 node);
    return 0;
}

/* Breadth-first from the seeds along out (down) or in (up) edges, at most
 * depth hops; marks reached nodes and the edges followed. */
static void walk(const dm_lineage_t *g, const size_t *seeds, size_t n_seeds, bool down, int depth,
                 char *node_in, char *edge_in)
{
    size_t *queue = malloc((g->n_nodes + 1) * sizeof(size_t));
    int *dist = malloc((g->n_nodes + 1) * sizeof(int));
    if (!queue || !dist) {
        free(queue);
        free(dist);
        return;
    }
    for (size_t i = 0; i < g->n_nodes; i++)
        dist[i] = -1;
    size_t head = 0, tail = 0;
    for (size_t s = 0; s < n_seeds; s++)
        if (dist[seeds[s]] < 0) {
            dist[seeds[s]] = 0;
            queue[tail++] = seeds[s];
            node_in[seeds[s]] = 1;
        }
    while (head < tail) {
        size_t u = queue[head++];
        if (depth >= 0 && dist[u] >= depth) continue;
        const size_t *off = down ? g->out_off : g->in_off, *list = down ? g->out_list : g->in_list;
        for (size_t k = off[u]; k < off[u + 1]; k++) {
            const ledge_t *e = &g->edges[list[k]];
            size_t v = down ? e->to : e->from;
            edge_in[list[k]] = 1;
            node_in[v] = 1;
            if (dist[v] < 0) {
                dist[v] = dist[u] + 1;
                queue[tail++] = v;
            }
        }
    }
    free(queue);
    free(dist);
}

/* Adds i's nested fields (all levels) to seeds. */
static void add_nested(const dm_lineage_t *g, size_t i, size_t *seeds, size_t *n, size_t cap)
{
    for (size_t k = 0; k < g->nodes[i].n_kids && *n < cap; k++) {
        seeds[(*n)++] = g->nodes[i].kids[k];
        add_nested(g, g->nodes[i].kids[k], seeds, n, cap);
    }
}

json_t *dm_lineage_query(const dm_lineage_t *g, const char *node, dm_lineage_dir_t dir, int depth,
                         dm_error_t *err)
{
    size_t cap = g->n_nodes + 2;
    size_t *seeds = malloc(cap * sizeof(size_t));
    char *node_in = calloc(g->n_nodes + 1, 1), *edge_in = calloc(g->n_edges + 1, 1);
    if (!seeds || !node_in || !edge_in) {
        free(seeds);
        free(node_in);
        free(edge_in);
        dm_error_set(err, DM_ERR_NOMEM, "out of memory");
        return NULL;
    }
    size_t n = resolve_seeds(g, node, seeds, cap, err);
    json_t *out = NULL;
    if (n) {
        for (size_t s = 0, n0 = n; s < n0; s++)
            add_nested(g, seeds[s], seeds, &n, cap);
        if (dir != DM_LINEAGE_UPSTREAM) walk(g, seeds, n, true, depth, node_in, edge_in);
        if (dir != DM_LINEAGE_DOWNSTREAM) walk(g, seeds, n, false, depth, node_in, edge_in);
        /* the pipelines that make the field edges followed */
        for (size_t e = 0; e < g->n_edges; e++)
            if (edge_in[e] && g->edges[e].pipeline != NONE) node_in[g->edges[e].pipeline] = 1;
        json_t *nodes = json_array(), *edges = json_array();
        for (size_t i = 0; i < g->n_nodes; i++)
            if (node_in[i]) json_array_append_new(nodes, node_json(g, i));
        for (size_t e = 0; e < g->n_edges; e++)
            if (edge_in[e]) json_array_append_new(edges, edge_json(g, &g->edges[e]));
        static const char *const dirs[] = {"upstream", "downstream", "both"};
        out = json_pack("{s:s, s:s, s:i, s:o, s:o}", "node", node, "direction", dirs[dir], "depth",
                        depth, "nodes", nodes, "edges", edges);
    }
    free(seeds);
    free(node_in);
    free(edge_in);
    return out;
}

json_t *dm_lineage_to_json(const dm_lineage_t *g)
{
    json_t *nodes = json_array(), *edges = json_array();
    for (size_t i = 0; i < g->n_nodes; i++)
        json_array_append_new(nodes, node_json(g, i));
    for (size_t e = 0; e < g->n_edges; e++)
        json_array_append_new(edges, edge_json(g, &g->edges[e]));
    return json_pack("{s:o, s:o}", "nodes", nodes, "edges", edges);
}

json_t *dm_lineage_column_lineage(const dm_lineage_t *g, const char *pipeline)
{
    char id[600];
    snprintf(id, sizeof(id), "pipeline:%s", pipeline);
    size_t p = dm_lineage_node_lookup(g, id);
    if (p == NONE) return NULL;
    json_t *out = json_object();
    for (size_t e = 0; e < g->n_edges; e++) {
        const ledge_t *x = &g->edges[e];
        const lnode_t *from = &g->nodes[x->from], *to = &g->nodes[x->to];
        if (x->pipeline != p || from->dataset == NONE || to->dataset == NONE) continue;
        const char *ds = g->nodes[to->dataset].id;
        json_t *fields = json_object_get(out, ds);
        if (!fields) json_object_set_new(out, ds, fields = json_object());
        json_t *list = json_object_get(fields, to->path);
        if (!list) json_object_set_new(fields, to->path, list = json_array());
        json_array_append_new(
            list, json_pack("{s:s, s:s, s:s, s:s}", "dataset", g->nodes[from->dataset].id, "field",
                            from->path, "type", type_of(x->kind), "subtype", kind_name(x->kind)));
    }
    return out;
}

/* The top-level fields of dataset node ds: [{name, type}]. */
static json_t *dataset_fields(const dm_lineage_t *g, size_t ds)
{
    json_t *fields = json_array();
    char prefix[700];
    snprintf(prefix, sizeof(prefix), "%s.", g->nodes[ds].id);
    for (size_t i = 0; i < g->n_nodes; i++) {
        const lnode_t *n = &g->nodes[i];
        if (n->dataset != ds || strchr(n->path, '.')) continue;
        json_array_append_new(fields, json_pack("{s:s, s:O}", "name", n->path, "type",
                                                json_object_get(n->attrs, "type")
                                                    ? json_object_get(n->attrs, "type")
                                                    : json_null()));
    }
    return fields;
}

json_t *dm_lineage_job(const dm_lineage_t *g, const char *pipeline)
{
    char id[600];
    snprintf(id, sizeof(id), "pipeline:%s", pipeline);
    size_t p = dm_lineage_node_lookup(g, id);
    if (p == NONE) return NULL;
    json_t *inputs = json_array(), *outputs = json_array();
    for (size_t k = g->in_off[p]; k < g->in_off[p + 1]; k++) {
        const ledge_t *e = &g->edges[g->in_list[k]];
        if (e->kind != K_INPUT) continue;
        json_t *d = node_json(g, e->from);
        json_object_set_new(d, "fields", dataset_fields(g, e->from));
        json_array_append_new(inputs, d);
    }
    json_t *columns = dm_lineage_column_lineage(g, pipeline);
    for (size_t k = g->out_off[p]; k < g->out_off[p + 1]; k++) {
        const ledge_t *e = &g->edges[g->out_list[k]];
        if (e->kind != K_OUTPUT) continue;
        json_t *d = node_json(g, e->to);
        json_object_set_new(d, "fields", dataset_fields(g, e->to));
        json_t *cl = json_object_get(columns, g->nodes[e->to].id);
        json_object_set_new(d, "columns", cl ? json_incref(cl) : json_object());
        json_array_append_new(outputs, d);
    }
    json_decref(columns);
    return json_pack("{s:s, s:o, s:o}", "pipeline", pipeline, "inputs", inputs, "outputs", outputs);
}

json_t *dm_lineage_source_job(const dm_lineage_t *g, const char *source)
{
    size_t s = dm_lineage_node_lookup(g, source);
    if (s == NONE || strcmp(g->nodes[s].kind, "source")) return NULL;
    json_t *inputs = json_array(), *columns = json_object();
    for (size_t k = g->in_off[s]; k < g->in_off[s + 1]; k++) {
        const ledge_t *e = &g->edges[g->in_list[k]];
        if (e->kind != K_CAPTURE) continue;
        json_t *d = node_json(g, e->from);
        json_object_set_new(d, "fields", dataset_fields(g, e->from));
        json_array_append_new(inputs, d);
    }
    /* the captured columns feeding the source's fields */
    for (size_t i = 0; i < g->n_nodes; i++) {
        if (g->nodes[i].dataset != s) continue;
        for (size_t k = g->in_off[i]; k < g->in_off[i + 1]; k++) {
            const ledge_t *e = &g->edges[g->in_list[k]];
            const lnode_t *from = &g->nodes[e->from];
            if (from->dataset == NONE || strcmp(g->nodes[from->dataset].kind, "table")) continue;
            json_t *list = json_object_get(columns, g->nodes[i].path);
            if (!list) json_object_set_new(columns, g->nodes[i].path, list = json_array());
            json_array_append_new(list,
                                  json_pack("{s:s, s:s, s:s, s:s}", "dataset",
                                            g->nodes[from->dataset].id, "field", from->path, "type",
                                            type_of(e->kind), "subtype", kind_name(e->kind)));
        }
    }
    json_t *out = node_json(g, s);
    json_object_set_new(out, "fields", dataset_fields(g, s));
    json_object_set_new(out, "columns", columns);
    return json_pack("{s:s, s:o, s:[o]}", "source", source, "inputs", inputs, "outputs", out);
}
