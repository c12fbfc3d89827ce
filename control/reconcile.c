/* control/reconcile.c — apply, delete and the catalog view of sources. */
#include "control/reconcile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool array_has(const json_t *a, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(a, i,
                       v) if (json_is_string(v) && !strcmp(json_string_value(v), s)) return true;
    return false;
}

/* Sources a pipeline reads: spec.from plus enrich and join tables. */

/* Desired view: stored objects with the new documents laid over them. */
typedef struct view {
    json_t *by_kind[DM_KIND_COUNT]; /* name → doc */
} view_t;

/* The store's own documents (status included, read only), in a map per kind
 * that the new documents are then laid over. */
static dm_err_t view_load(dm_store_t *store, view_t *v, dm_error_t *err)
{
    for (int k = 0; k < DM_KIND_COUNT; k++) {
        dm_err_t rc = dm_store_docs(store, (dm_kind_t)k, &v->by_kind[k], err);
        if (rc) return rc;
    }
    return DM_OK;
}

static void view_free(view_t *v)
{
    for (int k = 0; k < DM_KIND_COUNT; k++)
        json_decref(v->by_kind[k]);
}

/* derived source name → the pipeline publishing it (new reference). A second
 * publisher of one name is an error, reported once here. */
static json_t *publishers(const view_t *v, dm_error_t *err)
{
    json_t *map = json_object();
    const char *pname;
    json_t *p;
    json_object_foreach(v->by_kind[DM_KIND_PIPELINE], pname, p)
    {
        json_t *outs = dm_spec_pipeline_outputs(p);
        size_t i;
        json_t *o;
        json_array_foreach(outs, i, o)
        {
            const char *s = json_string_value(o);
            const json_t *other = json_object_get(map, s);
            if (other) {
                dm_error_set(err, DM_ERR_EXISTS,
                             "pipeline %s publishes source '%s', which pipeline %s already "
                             "publishes",
                             pname, s, json_string_value(other));
                json_decref(outs);
                json_decref(map);
                return NULL;
            }
            json_object_set_new(map, s, json_string(pname));
        }
        json_decref(outs);
    }
    return map;
}

/* Every pipeline reads sources that exist, publishes names no one else
 * declares, and writes to sinks that exist: one pass, with lookups. */
static dm_err_t check_references(const view_t *v, dm_error_t *err)
{
    json_t *pub = publishers(v, err);
    if (!pub) return err->code;
    dm_err_t rc = DM_OK;
    const char *pname;
    json_t *p;
    json_object_foreach(v->by_kind[DM_KIND_PIPELINE], pname, p)
    {
        json_t *reads = dm_spec_pipeline_reads(p);
        size_t i;
        json_t *src;
        json_array_foreach(reads, i, src)
        {
            const char *s = json_string_value(src);
            if (!rc && !json_object_get(v->by_kind[DM_KIND_SOURCE], s) && !json_object_get(pub, s))
                rc = dm_error_set(err, DM_ERR_NOT_FOUND,
                                  "pipeline %s reads source '%s', which does not exist (apply it "
                                  "first or in the same request)",
                                  pname, s);
        }
        json_decref(reads);
        json_t *outs = dm_spec_pipeline_outputs(p);
        json_array_foreach(outs, i, src)
        {
            const char *s = json_string_value(src);
            if (!rc && json_object_get(v->by_kind[DM_KIND_SOURCE], s))
                rc = dm_error_set(err, DM_ERR_EXISTS,
                                  "pipeline %s publishes source '%s', but a Source of that name "
                                  "is declared with a connector",
                                  pname, s);
        }
        json_decref(outs);
        const json_t *to = json_object_get(json_object_get(p, "spec"), "to");
        json_t *out;
        json_array_foreach(to, i, out)
        {
            const json_t *sink = json_object_get(out, "sink");
            if (!rc && json_is_string(sink) &&
                !json_object_get(v->by_kind[DM_KIND_SINK], json_string_value(sink)))
                rc = dm_error_set(err, DM_ERR_NOT_FOUND,
                                  "pipeline %s writes to sink '%s', which does not exist", pname,
                                  json_string_value(sink));
        }
        if (rc) break;
    }
    json_decref(pub);
    return rc;
}

static void step_add(json_t *steps, const char *action, const char *kind, const char *name,
                     const char *detail)
{
    json_array_append_new(steps, json_pack("{s:s, s:s, s:s, s:s}", "action", action, "kind", kind,
                                           "name", name, "detail", detail));
}

/* What a created or updated object means for the data plane: topics, schemas,
 * tasks, and whether positions carry over. */
static void plan_data_plane(json_t *steps, const view_t *v, const dm_spec_t *s, const json_t *old)
{
    char name[320], detail[600];
    const json_t *spec = json_object_get(s->doc, "spec");
    if (s->kind == DM_KIND_SOURCE) {
        const json_t *parts = json_object_get(spec, "partitions");
        snprintf(name, sizeof(name), "%s-value", s->name);
        if (!old) {
            snprintf(detail, sizeof(detail), "%lld partition(s)",
                     json_is_integer(parts) ? (long long)json_integer_value(parts) : 1LL);
            step_add(steps, "create", "Topic", s->name, detail);
            step_add(steps, "register", "Schema", name, "version 1 of the source's schema");
            if (json_array_size(json_object_get(spec, "key"))) {
                snprintf(name, sizeof(name), "%s-key", s->name);
                step_add(steps, "register", "Schema", name, "the key fields");
            }
            return;
        }
        const json_t *old_spec = json_object_get(old, "spec");
        if (!json_equal(json_object_get(spec, "schema"), json_object_get(old_spec, "schema")))
            step_add(steps, "register", "Schema", name,
                     "a new version, checked for compatibility with the earlier ones");
        /* Pipelines reading it restart with its new schema, keeping their position. */
        const char *pname;
        json_t *p;
        json_object_foreach(v->by_kind[DM_KIND_PIPELINE], pname, p)
        {
            json_t *reads = dm_spec_pipeline_reads(p);
            if (array_has(reads, s->name)) {
                snprintf(detail, sizeof(detail), "reads the updated source %s; keeps its position",
                         s->name);
                step_add(steps, "restart", "Pipeline", pname, detail);
            }
            json_decref(reads);
        }
        return;
    }
    if (s->kind == DM_KIND_PROCESSOR && old) {
        /* Pipelines with a step of it restart with the new library (control/runtime.c). */
        const char *pname;
        json_t *p;
        json_object_foreach(v->by_kind[DM_KIND_PIPELINE], pname, p)
        {
            size_t i;
            json_t *st;
            bool uses = false;
            json_array_foreach(json_object_get(json_object_get(p, "spec"), "steps"), i, st)
            {
                const char *n =
                    json_string_value(json_object_get(json_object_get(st, "processor"), "name"));
                uses |= n && !strcmp(n, s->name);
            }
            if (!uses) continue;
            snprintf(detail, sizeof(detail),
                     "uses the updated Processor %s; resumes from its last commit with it",
                     s->name);
            step_add(steps, "restart", "Pipeline", pname, detail);
        }
        return;
    }
    if (s->kind != DM_KIND_PIPELINE) return;
    json_t *in = dm_spec_pipeline_inputs(s->doc);
    const char *input = json_string_value(json_array_get(in, 0));
    if (!old) {
        snprintf(name, sizeof(name), "pipeline.%s.dlq", s->name);
        step_add(steps, "create", "Topic", name, "dead letters, with the reason in headers");
        json_t *outs = dm_spec_pipeline_outputs(s->doc);
        if (!json_array_size(outs)) {
            snprintf(name, sizeof(name), "pipeline.%s.out", s->name);
            step_add(steps, "create", "Topic", name, "the pipeline's output, which its sinks read");
        }
        json_decref(outs);
        snprintf(detail, sizeof(detail),
                 "one per partition of %s, fused, reading from the start of %s",
                 input ? input : "?", input ? input : "?");
        step_add(steps, "create", "Tasks", s->name, detail);
    } else {
        json_t *old_in = dm_spec_pipeline_inputs(old);
        const char *was = json_string_value(json_array_get(old_in, 0));
        if (was && input && strcmp(was, input) != 0)
            snprintf(detail, sizeof(detail),
                     "the input changed from %s to %s: positions in %s do not apply, the tasks "
                     "read %s from its start",
                     was, input, was, input);
        else
            snprintf(detail, sizeof(detail),
                     "restarted with the new steps; they keep their "
                     "position in %s",
                     input ? input : "?");
        step_add(steps, "restart", "Tasks", s->name, detail);
        json_decref(old_in);
    }
    json_decref(in);
}

dm_err_t dm_reconcile_apply(dm_store_t *store, const dm_spec_t *specs, size_t n, bool dry_run,
                            json_t **plan, dm_error_t *err)
{
    *plan = NULL;
    dm_err_t rc = dm_store_begin(store, err);
    if (rc) return rc;
    view_t v = {{0}};
    json_t *steps = json_array();
    if ((rc = view_load(store, &v, err))) goto out;

    /* The same object twice in one request is ambiguous. */
    json_t *seen = json_object();
    for (size_t i = 0; i < n && !rc; i++) {
        char key[600];
        snprintf(key, sizeof(key), "%s/%s", dm_kind_name(specs[i].kind), specs[i].name);
        if (json_object_get(seen, key))
            rc = dm_error_set(err, DM_ERR_INVALID, "%s %s appears twice in one apply",
                              dm_kind_name(specs[i].kind), specs[i].name);
        json_object_set_new(seen, key, json_true());
    }
    json_decref(seen);
    if (rc) goto out;

    for (size_t i = 0; i < n; i++) {
        const dm_spec_t *s = &specs[i];
        json_t *old = json_object_get(v.by_kind[s->kind], s->name);
        const char *action = !old                             ? "create"
                             : dm_spec_doc_equal(old, s->doc) ? "unchanged"
                                                              : "update";
        json_t *item = json_pack("{s:s, s:s, s:s}", "action", action, "kind", dm_kind_name(s->kind),
                                 "name", s->name);
        if (s->kind == DM_KIND_PIPELINE) {
            /* Derived sources it starts publishing. */
            json_t *outs = dm_spec_pipeline_outputs(s->doc);
            json_t *old_outs = old ? dm_spec_pipeline_outputs(old) : json_array();
            size_t k;
            json_t *o;
            json_array_foreach(outs, k, o) if (!array_has(old_outs, json_string_value(o)))
                json_array_append_new(steps, json_pack("{s:s, s:s, s:O, s:s+}", "action", "create",
                                                       "kind", "Source", "name", o, "detail",
                                                       "derived: published by pipeline ", s->name));
            json_decref(outs);
            json_decref(old_outs);
        }
        json_array_append_new(steps, item);
        if (strcmp(action, "unchanged") != 0) plan_data_plane(steps, &v, s, old);
        json_object_set(v.by_kind[s->kind], s->name, s->doc);
    }
    if ((rc = check_references(&v, err))) goto out;
    if (!dry_run)
        for (size_t i = 0; i < n && !rc; i++) {
            json_t *old;
            if (dm_store_get(store, specs[i].kind, specs[i].name, &old, NULL) == DM_OK) {
                json_object_del(old, "status");
                bool same = json_equal(old, specs[i].doc);
                json_decref(old);
                if (same) continue;
            }
            rc = dm_store_put(store, specs[i].kind, specs[i].name, specs[i].doc, err);
        }
out:
    view_free(&v);
    if (rc || dry_run) {
        dm_store_rollback(store);
    } else {
        rc = dm_store_commit(store, err);
    }
    if (rc)
        json_decref(steps);
    else
        *plan = steps;
    return rc;
}

/* Adds the pipelines (other than self) reading source to the array users, once each. */
static dm_err_t add_readers(dm_store_t *store, const char *source, const char *self, json_t *users,
                            dm_error_t *err)
{
    json_t *names;
    dm_err_t rc = dm_store_edge_pipelines(store, source, "reads", &names, err);
    if (rc) return rc;
    size_t i;
    json_t *n;
    json_array_foreach(names, i, n)
    {
        const char *p = json_string_value(n);
        if ((!self || strcmp(p, self)) && !array_has(users, p)) json_array_append(users, n);
    }
    json_decref(names);
    return DM_OK;
}

/* Pipelines writing to sink, by a pass over the pipelines (sinks are not in
 * the edges index: few pipelines have sinks, and deleting one is rare). */
static dm_err_t add_sink_users(dm_store_t *store, const char *sink, json_t *users, dm_error_t *err)
{
    json_t *pipelines;
    dm_err_t rc = dm_store_docs(store, DM_KIND_PIPELINE, &pipelines, err);
    if (rc) return rc;
    const char *pname;
    json_t *p;
    json_object_foreach(pipelines, pname, p)
    {
        const json_t *to = json_object_get(json_object_get(p, "spec"), "to");
        size_t i;
        json_t *out;
        bool uses = false;
        json_array_foreach(to, i, out)
        {
            const json_t *s = json_object_get(out, "sink");
            uses |= json_is_string(s) && !strcmp(json_string_value(s), sink);
        }
        if (uses) json_array_append_new(users, json_string(pname));
    }
    json_decref(pipelines);
    return DM_OK;
}

dm_err_t dm_reconcile_delete(dm_store_t *store, dm_kind_t kind, const char *name, dm_error_t *err)
{
    dm_err_t rc = dm_store_begin(store, err);
    if (rc) return rc;
    json_t *doc = NULL;
    bool exists = dm_store_get(store, kind, name, &doc, NULL) == DM_OK;
    if (kind == DM_KIND_SOURCE && !exists) {
        json_t *pubs;
        if (!(rc = dm_store_edge_pipelines(store, name, "publishes", &pubs, err))) {
            if (json_array_size(pubs))
                rc = dm_error_set(err, DM_ERR_INVALID,
                                  "source '%s' is derived: it is published by pipeline %s; "
                                  "delete or change that pipeline",
                                  name, json_string_value(json_array_get(pubs, 0)));
            json_decref(pubs);
        }
        if (rc) goto out;
    }
    if (!exists) {
        rc = dm_error_set(err, DM_ERR_NOT_FOUND, "%s '%s' not found", dm_kind_name(kind), name);
        goto out;
    }
    /* Who still uses it? For a pipeline: who reads what it publishes. */
    json_t *users = json_array();
    if (kind == DM_KIND_SOURCE) {
        rc = add_readers(store, name, NULL, users, err);
    } else if (kind == DM_KIND_PIPELINE) {
        json_t *outs = dm_spec_pipeline_outputs(doc);
        size_t i;
        json_t *t;
        json_array_foreach(outs, i, t) if (!rc) rc =
            add_readers(store, json_string_value(t), name, users, err);
        json_decref(outs);
    } else if (kind == DM_KIND_SINK) {
        rc = add_sink_users(store, name, users, err);
    }
    if (!rc && json_array_size(users)) {
        char list[1024] = "";
        size_t o = 0, i;
        json_t *u;
        json_array_foreach(users, i, u) if (o < sizeof(list)) o += (size_t)snprintf(
            list + o, sizeof(list) - o, "%s%s", o ? ", " : "", json_string_value(u));
        rc = dm_error_set(err, DM_ERR_EXISTS, "%s '%s' is still used by pipelines: %s",
                          dm_kind_name(kind), name, list);
    }
    json_decref(users);
    if (rc) goto out;
    rc = dm_store_delete(store, kind, name, err);
out:
    json_decref(doc);
    if (rc)
        dm_store_rollback(store);
    else
        rc = dm_store_commit(store, err);
    return rc;
}

/* The catalog entry of output o (a string) that pipeline p publishes: a
 * derived source owned by the pipeline's owner (new reference). */
static json_t *derived_entry(const json_t *p, json_t *o)
{
    json_t *meta = json_pack("{s:O}", "name", o);
    const json_t *md = json_object_get(p, "metadata");
    if (json_object_get(md, "owner")) json_object_set(meta, "owner", json_object_get(md, "owner"));
    json_object_set_new(meta, "description",
                        json_pack("s+", "published by pipeline ", dm_spec_name(p)));
    return json_pack("{s:s, s:o, s:{s:s, s:s}}", "kind", "Source", "metadata", meta, "spec",
                     "connector", "derived", "derived_from", dm_spec_name(p));
}

/* Derived sources (what pipelines publish), owned by their pipeline's owner,
 * appended to sources; only the one called only, when only is not NULL. */
static void add_derived(json_t *sources, const json_t *pipelines, const char *only)
{
    size_t i;
    json_t *p;
    json_array_foreach(pipelines, i, p)
    {
        json_t *outs = dm_spec_pipeline_outputs(p);
        size_t k;
        json_t *o;
        json_array_foreach(outs, k, o)
        {
            if (only && strcmp(only, json_string_value(o))) continue;
            json_array_append_new(sources, derived_entry(p, o));
        }
        json_decref(outs);
    }
}

/* Sets producers and consumers (an array, shared; NULL: none) on source entry s. */
static void set_lineage(json_t *s, json_t *consumers)
{
    const json_t *spec = json_object_get(s, "spec");
    const char *derived = json_string_value(json_object_get(spec, "derived_from"));
    json_object_set_new(s, "producers",
                        derived ? json_pack("[s+]", "pipeline:", derived)
                                : json_pack("[s+]", "connector:",
                                            json_string_value(json_object_get(spec, "connector"))));
    json_object_set_new(s, "consumers", consumers ? json_incref(consumers) : json_array());
}

/* Sets producers and consumers on each source, from one pass over the pipelines. */
static void add_lineage(json_t *sources, const json_t *pipelines)
{
    json_t *consumers_of = json_object();
    size_t i;
    json_t *p;
    json_array_foreach(pipelines, i, p)
    {
        json_t *reads = dm_spec_pipeline_reads(p);
        size_t k;
        json_t *r;
        json_array_foreach(reads, k, r)
        {
            json_t *list = json_object_get(consumers_of, json_string_value(r));
            if (!list) {
                list = json_array();
                json_object_set_new(consumers_of, json_string_value(r), list);
            }
            json_array_append_new(list, json_pack("s+", "pipeline:", dm_spec_name(p)));
        }
        json_decref(reads);
    }
    json_t *s;
    json_array_foreach(sources, i, s)
        set_lineage(s, json_object_get(consumers_of, dm_spec_name(s)));
    json_decref(consumers_of);
}

dm_err_t dm_catalog_sources(dm_store_t *store, json_t **out, dm_error_t *err)
{
    *out = NULL;
    json_t *sources, *pipelines;
    dm_err_t rc = dm_store_list(store, DM_KIND_SOURCE, &sources, err);
    if (rc) return rc;
    if ((rc = dm_store_list(store, DM_KIND_PIPELINE, &pipelines, err))) {
        json_decref(sources);
        return rc;
    }
    add_derived(sources, pipelines, NULL);
    add_lineage(sources, pipelines);
    json_decref(pipelines);
    *out = sources;
    return DM_OK;
}

/* ---- the catalog kept between changes ----------------------------------------
 * What each entry was built from is kept with it: the store's document (held,
 * so its address cannot come back as another document's) and the consumers
 * the entry carries. The store replaces a document on put rather than changing
 * it, so the same address means the same document. */
struct dm_catalog {
    json_t *pipes;   /* pipeline name → [doc, reads, outputs, "pipeline:NAME"] */
    json_t *entries; /* "s:SOURCE" or "d:PIPELINE:K" → [doc, entry] (the scan's reuse) */
    /* The last answer and what replaying the store's changes onto it needs. */
    json_t *all;       /* declared entries by name, then derived by pipeline */
    size_t ndeclared;  /* how many of all are declared */
    json_t *consumers; /* source name → ["pipeline:NAME", …] by name (never changed: replaced) */
    uint64_t seq;      /* the store's change number all is as of */
    bool valid;        /* all, consumers and seq go together */
};

dm_catalog_t *dm_catalog_new(void)
{
    dm_catalog_t *c = calloc(1, sizeof(*c));
    if (!c) return NULL;
    c->pipes = json_object();
    c->entries = json_object();
    if (!c->pipes || !c->entries) {
        dm_catalog_free(c);
        return NULL;
    }
    return c;
}

void dm_catalog_free(dm_catalog_t *c)
{
    if (!c) return;
    json_decref(c->pipes);
    json_decref(c->entries);
    json_decref(c->all);
    json_decref(c->consumers);
    free(c);
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The keys of object o in strcmp order (the store's list order); free() it. */
static const char **sorted_keys(const json_t *o, size_t *n)
{
    *n = json_object_size(o);
    const char **names = malloc((*n ? *n : 1) * sizeof(*names));
    if (!names) return NULL;
    size_t i = 0;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)o, k, v) names[i++] = k;
    qsort(names, *n, sizeof(*names), cmp_name);
    return names;
}

/* The kept entry under key when it was built from doc with these consumers
 * (NULL: none), else NULL. Borrowed. */
static json_t *kept_entry(const dm_catalog_t *c, const char *key, const json_t *doc,
                          const json_t *consumers)
{
    const json_t *k = json_object_get(c->entries, key);
    if (!k || json_array_get(k, 0) != doc) return NULL;
    json_t *entry = json_array_get(k, 1);
    const json_t *had = json_object_get(entry, "consumers");
    bool same = consumers ? json_equal(had, consumers) : json_array_size(had) == 0;
    return same ? entry : NULL;
}

/* Puts entry (built from doc, or kept) into the answer and the new keep. */
static void take_entry(json_t *all, json_t *keep, const char *key, json_t *doc, json_t *entry)
{
    json_array_append(all, entry);
    json_object_set_new(keep, key, json_pack("[O,O]", doc, entry));
}

/* The whole catalog from every document, reusing the entries kept whose
 * document and consumers are the same. */
static dm_err_t catalog_scan(dm_catalog_t *c, dm_store_t *store, json_t **out, size_t *built,
                             dm_error_t *err)
{
    *out = NULL;
    if (built) *built = 0;
    c->valid = false;
    uint64_t seq = dm_store_changes(store); /* before reading: later changes replay next time */
    json_t *sdocs = NULL, *pdocs = NULL;
    dm_err_t rc = dm_store_docs(store, DM_KIND_SOURCE, &sdocs, err);
    if (!rc) rc = dm_store_docs(store, DM_KIND_PIPELINE, &pdocs, err);
    size_t np = 0, ns = 0, made = 0;
    const char **pnames = rc ? NULL : sorted_keys(pdocs, &np);
    const char **snames = rc ? NULL : sorted_keys(sdocs, &ns);
    json_t *pipes = json_object(), *entries = json_object(), *consumers_of = json_object();
    json_t *all = json_array();
    if (!rc && (!pnames || !snames || !pipes || !entries || !consumers_of || !all))
        rc = dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    char key[600];
    /* Each pipeline's reads and outputs: kept while its document is the same. */
    for (size_t i = 0; !rc && i < np; i++) {
        json_t *doc = json_object_get(pdocs, pnames[i]);
        json_t *p = json_object_get(c->pipes, pnames[i]);
        if (!p || json_array_get(p, 0) != doc)
            p = json_pack("[O, o, o, s+]", doc, dm_spec_pipeline_reads(doc),
                          dm_spec_pipeline_outputs(doc), "pipeline:", dm_spec_name(doc));
        else
            json_incref(p);
        if (!p) {
            rc = dm_error_set(err, DM_ERR_NOMEM, "catalog: pipeline '%s' gives no lineage",
                              pnames[i]);
            break;
        }
        json_object_set_new(pipes, pnames[i], p);
        size_t k;
        json_t *r;
        json_array_foreach(json_array_get(p, 1), k, r)
        {
            json_t *list = json_object_get(consumers_of, json_string_value(r));
            if (!list) json_object_set_new(consumers_of, json_string_value(r), list = json_array());
            json_array_append(list, json_array_get(p, 3));
        }
    }
    /* Declared sources, ordered by name, then what each pipeline publishes. */
    for (size_t i = 0; !rc && i < ns; i++) {
        json_t *doc = json_object_get(sdocs, snames[i]);
        json_t *consumers = json_object_get(consumers_of, dm_spec_name(doc));
        snprintf(key, sizeof(key), "s:%s", snames[i]);
        json_t *entry = kept_entry(c, key, doc, consumers);
        if (entry) {
            json_incref(entry);
        } else {
            entry = json_object();
            json_object_update(entry, doc);
            set_lineage(entry, consumers);
            made++;
        }
        take_entry(all, entries, key, doc, entry);
        json_decref(entry);
    }
    for (size_t i = 0; !rc && i < np; i++) {
        json_t *p = json_object_get(pipes, pnames[i]);
        json_t *doc = json_array_get(p, 0);
        size_t k;
        json_t *o;
        json_array_foreach(json_array_get(p, 2), k, o)
        {
            json_t *consumers = json_object_get(consumers_of, json_string_value(o));
            snprintf(key, sizeof(key), "d:%s:%zu", pnames[i], k);
            json_t *entry = kept_entry(c, key, doc, consumers);
            if (entry) {
                json_incref(entry);
            } else {
                entry = derived_entry(doc, o);
                set_lineage(entry, consumers);
                made++;
            }
            take_entry(all, entries, key, doc, entry);
            json_decref(entry);
        }
    }
    if (!rc && json_array_size(all) != json_object_size(entries))
        rc = dm_error_set(err, DM_ERR_NOMEM, "out of memory building the catalog");
    free(pnames);
    free(snames);
    json_decref(sdocs);
    json_decref(pdocs);
    if (rc) {
        json_decref(consumers_of);
        json_decref(pipes);
        json_decref(entries);
        json_decref(all);
        return rc;
    }
    json_decref(c->pipes);
    json_decref(c->entries);
    json_decref(c->consumers);
    json_decref(c->all);
    c->pipes = pipes;
    c->entries = entries;
    c->consumers = consumers_of;
    c->all = json_incref(all);
    c->ndeclared = ns;
    c->seq = seq;
    c->valid = true;
    if (built) *built = made;
    *out = all;
    return DM_OK;
}

/* consumers with every "pipeline:NAME" equal to pstr taken out (a new array). */
static json_t *consumers_without(const json_t *consumers, const json_t *pstr)
{
    json_t *a = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(consumers, i, v) if (!json_equal(v, pstr)) json_array_append(a, v);
    return a;
}

/* consumers with pstr put in its place by name (a new array). */
static json_t *consumers_with(const json_t *consumers, json_t *pstr)
{
    json_t *a = json_array();
    size_t i;
    json_t *v;
    bool in = false;
    json_array_foreach(consumers, i, v)
    {
        if (!in && strcmp(json_string_value(v), json_string_value(pstr)) > 0) {
            json_array_append(a, pstr);
            in = true;
        }
        json_array_append(a, v);
    }
    if (!in) json_array_append(a, pstr);
    return a;
}

/* Replaces source's consumers in c (an empty list is no entry) and marks it dirty. */
static void consumers_set(dm_catalog_t *c, const char *source, json_t *list, json_t *dirty)
{
    if (json_array_size(list))
        json_object_set_new(c->consumers, source, list);
    else {
        json_object_del(c->consumers, source);
        json_decref(list);
    }
    json_object_set_new(dirty, source, json_true());
}

/* The names (strings) of set (an object), sorted, as a new array. */
static json_t *sorted_names(const json_t *set)
{
    size_t n = 0;
    const char **keys = sorted_keys(set, &n);
    json_t *a = json_array();
    for (size_t i = 0; keys && i < n; i++)
        json_array_append_new(a, json_string(keys[i]));
    free(keys);
    return a;
}

/* The declared entry of source doc (new reference). */
static json_t *declared_entry(dm_catalog_t *c, const json_t *doc)
{
    json_t *entry = json_object();
    json_object_update(entry, (json_t *)doc);
    set_lineage(entry, json_object_get(c->consumers, dm_spec_name(doc)));
    return entry;
}

/* Appends pipeline p's derived entries (p: [doc, reads, outputs, pstr]) to all. */
static size_t append_group(dm_catalog_t *c, json_t *all, const json_t *p)
{
    size_t k;
    json_t *o;
    json_array_foreach(json_array_get(p, 2), k, o)
    {
        json_t *entry = derived_entry(json_array_get(p, 0), o);
        set_lineage(entry, json_object_get(c->consumers, json_string_value(o)));
        json_array_append_new(all, entry);
    }
    return k;
}

/* The pipeline a derived entry was published by ("" when none). */
static const char *derived_of(const json_t *e)
{
    const char *g = json_string_value(json_object_get(json_object_get(e, "spec"), "derived_from"));
    return g ? g : "";
}

/* The first index in [lo, hi) of all whose name (derived: publishing
 * pipeline) is not below key; the range is ordered by it. */
static size_t lower_bound(const json_t *all, size_t lo, size_t hi, const char *key, bool derived)
{
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const json_t *e = json_array_get(all, mid);
        const char *k = derived ? derived_of(e) : dm_spec_name(e);
        if (strcmp(k ? k : "", key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Appends from[lo, hi) to to (shared). */
static void copy_range(json_t *to, const json_t *from, size_t lo, size_t hi)
{
    for (size_t i = lo; i < hi; i++)
        json_array_append(to, json_array_get(from, i));
}

/* The catalog from the last answer and the store's changes since: the changed
 * pipelines' reads move their consumers, then only the entries of changed
 * sources, of sources whose consumers moved and of changed pipelines are built;
 * the rest of the last answer is taken as it is, in the same order. */
static dm_err_t catalog_replay(dm_catalog_t *c, dm_store_t *store, const json_t *changed,
                               uint64_t now, json_t **out, size_t *built, dm_error_t *err)
{
    c->valid = false; /* until the state is whole again */
    json_t *dirty = json_object();
    json_t *cps = sorted_names(json_object_get(changed, "Pipeline"));
    json_t *fresh = json_object(); /* changed pipeline → new [doc, …] (absent: deleted) */
    dm_err_t rc = DM_OK;
    size_t i, made = 0;
    json_t *n;
    json_array_foreach(cps, i, n)
    {
        const char *name = json_string_value(n);
        json_t *doc = NULL;
        dm_err_t g = dm_store_get(store, DM_KIND_PIPELINE, name, &doc, NULL);
        if (g && g != DM_ERR_NOT_FOUND) {
            rc = dm_error_set(err, g, "catalog: cannot read pipeline '%s'", name);
            break;
        }
        if (doc)
            json_object_set_new(fresh, name,
                                json_pack("[o, o, o, s+]", doc, dm_spec_pipeline_reads(doc),
                                          dm_spec_pipeline_outputs(doc),
                                          "pipeline:", dm_spec_name(doc)));
        const json_t *old = json_object_get(c->pipes, name);
        size_t k;
        json_t *r;
        json_array_foreach(json_array_get(old, 1), k, r)
        {
            const char *src = json_string_value(r);
            consumers_set(
                c, src,
                consumers_without(json_object_get(c->consumers, src), json_array_get(old, 3)),
                dirty);
        }
    }
    json_array_foreach(cps, i, n)
    {
        const char *name = json_string_value(n);
        json_t *p = json_object_get(fresh, name);
        if (!p) {
            json_object_del(c->pipes, name);
            continue;
        }
        json_object_set(c->pipes, name, p);
        size_t k;
        json_t *r;
        json_array_foreach(json_array_get(p, 1), k, r)
        {
            const char *src = json_string_value(r);
            consumers_set(c, src,
                          consumers_with(json_object_get(c->consumers, src), json_array_get(p, 3)),
                          dirty);
        }
    }
    const char *name;
    json_t *v;
    json_object_foreach((json_t *)json_object_get(changed, "Source"), name, v)
        json_object_set_new(dirty, name, json_true());

    /* Declared: the last answer's ranges between the dirty names (found by
     * binary search: the section is ordered by name), each dirty name's entry
     * built again when the source exists. */
    json_t *all = json_array(), *ds = sorted_names(dirty);
    size_t prev = 0;
    json_array_foreach(ds, i, n)
    {
        if (rc) break;
        const char *d = json_string_value(n);
        size_t pos = lower_bound(c->all, prev, c->ndeclared, d, false);
        copy_range(all, c->all, prev, pos);
        prev = pos;
        const char *at = pos < c->ndeclared ? dm_spec_name(json_array_get(c->all, pos)) : NULL;
        if (at && !strcmp(at, d)) prev++;
        json_t *doc = NULL;
        dm_err_t g = dm_store_get(store, DM_KIND_SOURCE, d, &doc, NULL);
        if (g && g != DM_ERR_NOT_FOUND)
            rc = dm_error_set(err, g, "catalog: cannot read source '%s'", d);
        if (doc) {
            json_array_append_new(all, declared_entry(c, doc));
            json_decref(doc);
            made++;
        }
    }
    copy_range(all, c->all, prev, c->ndeclared);
    size_t ndeclared = json_array_size(all);

    /* Derived: groups by pipeline name. Changed pipelines' groups are built
     * from their new documents; the groups of pipelines publishing a dirty
     * name (from the edges index) have those entries built again. */
    json_t *groups = json_object();
    json_object_foreach((json_t *)json_object_get(changed, "Pipeline"), name, v)
        json_object_set_new(groups, name, json_true());
    json_array_foreach(ds, i, n)
    {
        json_t *pubs = NULL;
        if (rc) break;
        rc = dm_store_edge_pipelines(store, json_string_value(n), "publishes", &pubs, err);
        size_t k;
        json_t *pn;
        json_array_foreach(pubs, k, pn)
            json_object_set_new(groups, json_string_value(pn), json_true());
        json_decref(pubs);
    }
    json_t *gs = sorted_names(groups);
    size_t total = json_array_size(c->all);
    prev = c->ndeclared;
    json_array_foreach(gs, i, n)
    {
        if (rc) break;
        const char *g = json_string_value(n);
        size_t pos = lower_bound(c->all, prev, total, g, true), end = pos;
        while (end < total && !strcmp(derived_of(json_array_get(c->all, end)), g))
            end++;
        copy_range(all, c->all, prev, pos);
        prev = end;
        if (json_object_get(json_object_get(changed, "Pipeline"), g)) {
            const json_t *p = json_object_get(fresh, g);
            if (p) made += append_group(c, all, p);
            continue;
        }
        for (size_t k = pos; k < end; k++) {
            json_t *e = json_array_get(c->all, k);
            const char *en = dm_spec_name(e);
            if (!json_object_get(dirty, en)) {
                json_array_append(all, e);
                continue;
            }
            json_t *entry = derived_entry(json_array_get(json_object_get(c->pipes, g), 0),
                                          json_object_get(json_object_get(e, "metadata"), "name"));
            set_lineage(entry, json_object_get(c->consumers, en));
            json_array_append_new(all, entry);
            made++;
        }
    }
    copy_range(all, c->all, prev, total);
    json_decref(groups);
    json_decref(gs);
    json_decref(cps);
    json_decref(fresh);
    json_decref(ds);
    json_decref(dirty);
    if (rc) {
        json_decref(all);
        return rc;
    }
    json_decref(c->all);
    c->all = json_incref(all);
    c->ndeclared = ndeclared;
    c->seq = now;
    c->valid = true;
    if (built) *built = made;
    *out = all;
    return DM_OK;
}

dm_err_t dm_catalog_update(dm_catalog_t *c, dm_store_t *store, json_t **out, size_t *built,
                           dm_error_t *err)
{
    json_t *changed = NULL;
    uint64_t now = 0;
    if (c->valid && !dm_store_changed_since(store, c->seq, &changed, &now, NULL)) {
        dm_err_t rc = catalog_replay(c, store, changed, now, out, built, err);
        json_decref(changed);
        if (!rc) return rc;
    }
    return catalog_scan(c, store, out, built, err);
}

/* The stored pipelines that read or publish source, found through the edges
 * index (new array of documents, ordered by name). */
static dm_err_t pipelines_using(dm_store_t *store, const char *source, json_t **out,
                                dm_error_t *err)
{
    json_t *names;
    dm_err_t rc = dm_store_edge_pipelines(store, source, NULL, &names, err);
    if (rc) return rc;
    json_t *docs = json_array();
    size_t i;
    json_t *n;
    json_array_foreach(names, i, n)
    {
        json_t *doc;
        if (dm_store_get(store, DM_KIND_PIPELINE, json_string_value(n), &doc, NULL) == DM_OK)
            json_array_append_new(docs, doc);
    }
    json_decref(names);
    *out = docs;
    return DM_OK;
}

dm_err_t dm_catalog_source(dm_store_t *store, const char *name, json_t **out, dm_error_t *err)
{
    *out = NULL;
    json_t *pipelines = NULL, *sources = json_array(), *doc = NULL;
    dm_err_t rc = pipelines_using(store, name, &pipelines, err);
    if (!rc && dm_store_get(store, DM_KIND_SOURCE, name, &doc, NULL) == DM_OK)
        json_array_append_new(sources, doc);
    else if (!rc)
        add_derived(sources, pipelines, name);
    if (!rc && !json_array_size(sources))
        rc = dm_error_set(err, DM_ERR_NOT_FOUND, "Source '%s' not found", name);
    if (!rc) {
        add_lineage(sources, pipelines);
        *out = json_incref(json_array_get(sources, 0));
    }
    json_decref(pipelines);
    json_decref(sources);
    return rc;
}

static bool contains_ci(const char *hay, const char *needle)
{
    return hay && strcasestr(hay, needle) != NULL;
}

/* Field names anywhere in an Avro schema (nested records included). */
static bool schema_has_field(const json_t *schema, const char *q, int depth)
{
    if (depth > 32) return false;
    if (json_is_array(schema)) {
        size_t i;
        json_t *b;
        json_array_foreach(schema, i, b) if (schema_has_field(b, q, depth + 1)) return true;
        return false;
    }
    if (!json_is_object(schema)) return false;
    const json_t *fields = json_object_get(schema, "fields");
    size_t i;
    json_t *f;
    json_array_foreach(fields, i, f)
    {
        if (contains_ci(json_string_value(json_object_get(f, "name")), q)) return true;
        if (schema_has_field(json_object_get(f, "type"), q, depth + 1)) return true;
    }
    return schema_has_field(json_object_get(schema, "items"), q, depth + 1) ||
           schema_has_field(json_object_get(schema, "values"), q, depth + 1);
}

dm_err_t dm_catalog_search(dm_store_t *store, const char *q, json_t **out, dm_error_t *err)
{
    json_t *all;
    dm_err_t rc = dm_catalog_sources(store, &all, err);
    if (rc) return rc;
    *out = dm_catalog_match(all, q);
    json_decref(all);
    return DM_OK;
}

json_t *dm_catalog_match(const json_t *all, const char *q)
{
    json_t *hits = json_array();
    size_t i;
    json_t *s;
    json_array_foreach(all, i, s)
    {
        const json_t *md = json_object_get(s, "metadata");
        bool hit = contains_ci(json_string_value(json_object_get(md, "name")), q) ||
                   contains_ci(json_string_value(json_object_get(md, "description")), q) ||
                   contains_ci(json_string_value(json_object_get(md, "owner")), q);
        const char *k;
        json_t *val;
        json_object_foreach((json_t *)json_object_get(md, "labels"), k, val) hit |=
            contains_ci(k, q) || contains_ci(json_string_value(val), q);
        hit |= schema_has_field(json_object_get(json_object_get(s, "spec"), "schema"), q, 0);
        if (hit) json_array_append(hits, s);
    }
    return hits;
}
