/* control/lineage_internal.h — the lineage graph's representation, shared by
 * building (control/lineage.c: plans, sources, fragments) and reading it
 * (control/lineage_query.c: queries, OpenLineage jobs). Not for other modules. */
#ifndef DM_CONTROL_LINEAGE_INTERNAL_H
#define DM_CONTROL_LINEAGE_INTERNAL_H

#include <jansson.h>
#include <stdint.h>

#include "control/lineage.h"
#include "engine/processor.h"

#define NONE SIZE_MAX

/* Edge kinds beyond the field dependencies of engine/processor.h. */
enum { K_INPUT = DM_DEP_SORT + 1, K_OUTPUT, K_CAPTURE };

typedef struct lnode {
    char *id;
    const char *kind; /* source, topic, field, pipeline, sink, column, table */
    size_t dataset;   /* fields and columns: their dataset; else NONE */
    char *path;       /* fields and columns: the path inside it */
    json_t *attrs;    /* more members of its JSON (owned; may be NULL) */
    size_t *kids;     /* nested fields, one level down */
    size_t n_kids;
} lnode_t;

typedef struct ledge {
    size_t from, to;
    int kind;
    size_t pipeline; /* the pipeline's node, NONE for none */
} ledge_t;

struct dm_lineage {
    lnode_t *nodes;
    size_t n_nodes, cap_nodes;
    ledge_t *edges;
    size_t n_edges, cap_edges;
    json_t *index; /* id → node index */
    json_t *seen;  /* edge keys already added */
    size_t *out_off, *out_list, *in_off, *in_list;
    json_t *problems;
    struct lrec *rec; /* while dm_lineage_add records a fragment; else NULL */
};

/* The node id's index, NONE when there is none. */
static inline size_t dm_lineage_node_lookup(const dm_lineage_t *g, const char *id)
{
    json_t *i = json_object_get(g->index, id);
    return i ? (size_t)json_integer_value(i) : NONE;
}

#endif
