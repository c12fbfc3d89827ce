/* control/runtime_check.c — before an apply is stored: can the runtime run
 * what the specs ask for? Connectors that only validate are refused, and each
 * pipeline's chain is opened once against its input schema (from the request
 * or the registry), so a bad expression or field fails the apply, not a task. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/runtime_internal.h"

static dm_err_t check_one(dm_runtime_t *rt, const json_t *doc, dm_error_t *err)
{
    (void)rt;
    const char *kind = json_string_value(json_object_get(doc, "kind"));
    const char *name = dm_spec_name(doc);
    const json_t *spec = json_object_get(doc, "spec");
    if (!strcmp(kind, "Source")) {
        const char *c = json_string_value(json_object_get(spec, "connector"));
        const dm_source_ops_t *ops = dm_source_ops_find(c);
        if (!ops) {
            char list[256];
            dm_source_connectors_available(list, sizeof(list));
            return dm_error_set(err, DM_ERR_UNSUPPORTED,
                                "Source %s: connector '%s' validates but cannot run in this "
                                "version yet (running connectors: %s)",
                                name, c ? c : "", list);
        }
        if (ops->def.needs_schema && !json_object_get(spec, "schema"))
            return dm_error_set(err, DM_ERR_CONFIG, "Source %s: needs a schema", name);
        return DM_OK;
    }
    if (strcmp(kind, "Pipeline")) return DM_OK;
    size_t i;
    json_t *step;
    json_array_foreach(json_object_get(spec, "steps"), i, step)
    {
        /* The kinds, and the list of available ones, come from engine/processor.c. */
        json_t *conf = dm_proc_step_config(step, NULL, NULL, err);
        json_decref(conf);
        if (!conf) return dm_error_prefix(err, "Pipeline %s: spec.steps[%zu]", name, i);
    }
    int derived = 0;
    json_t *o;
    json_array_foreach(json_object_get(spec, "to"), i, o) derived +=
        json_object_get(o, "source") != NULL;
    if (derived > 1)
        return dm_error_set(err, DM_ERR_UNSUPPORTED,
                            "Pipeline %s: publishing more than one derived source is not available "
                            "in this version yet",
                            name);
    return DM_OK;
}

/* What a dry open of a pipeline's chain needs: source schemas and keys from
 * the request being applied, else from the registry and the store. */
typedef struct check_ctx {
    dm_runtime_t *rt;
    const json_t *batch; /* name → Source document in this apply */
    dm_avro_schema_t *owned[16];
    dm_table_t *tables[8];
    int n_owned, n_tables;
} check_ctx_t;

static const dm_avro_schema_t *check_schema(check_ctx_t *c, const char *source, const json_t **key,
                                            dm_error_t *err)
{
    const json_t *doc = json_object_get(c->batch, source);
    json_t *stored = NULL;
    if (!doc && dm_store_get(c->rt->store, DM_KIND_SOURCE, source, &stored, NULL) == DM_OK)
        doc = stored;
    *key = json_object_get(json_object_get(doc, "spec"), "key");
    const json_t *schema = json_object_get(json_object_get(doc, "spec"), "schema");
    const dm_avro_schema_t *out = NULL;
    if (schema && json_object_get(c->batch, source) && c->n_owned < 16) {
        char *text = json_dumps(schema, JSON_COMPACT);
        if (text && dm_avro_schema_parse(text, strlen(text), &c->owned[c->n_owned], err) == DM_OK)
            out = c->owned[c->n_owned++];
        free(text);
    } else {
        char subject[300];
        int64_t id;
        snprintf(subject, sizeof(subject), "%s-value", source);
        if (dm_schema_registry_get_version(c->rt->reg, subject, -1, &id, NULL, NULL, err) == DM_OK)
            out = dm_runtime_schema_locked(c->rt, id, err);
    }
    json_decref(stored); /* key points into it only while it lives: callers copy at once */
    if (stored) *key = NULL;
    return out;
}

static dm_table_t *check_table(void *ctx, const char *source, dm_error_t *err)
{
    check_ctx_t *c = ctx;
    const json_t *key;
    json_t *stored = NULL;
    const dm_avro_schema_t *s = check_schema(c, source, &key, err);
    if (!s) {
        if (!err->message[0])
            dm_error_set(err, DM_ERR_NOT_FOUND, "source '%s' has no schema yet", source);
        return NULL;
    }
    if (!key && dm_store_get(c->rt->store, DM_KIND_SOURCE, source, &stored, NULL) == DM_OK)
        key = json_object_get(json_object_get(stored, "spec"), "key");
    const char *k = json_string_value(json_array_get(key, 0));
    dm_table_t *t = NULL;
    if (!k)
        dm_error_set(err, DM_ERR_INVALID,
                     "enrich with %s: the source has no key (spec.key) to look up by", source);
    else if (c->n_tables < 8 && dm_table_new(source, s, k, &t, err) == DM_OK)
        c->tables[c->n_tables++] = t;
    json_decref(stored);
    return t;
}

/* Opens the pipeline's processors once against its input schema, so that a
 * bad expression or field is refused when the spec is applied. */
static dm_err_t check_chain(dm_runtime_t *rt, const json_t *doc, const json_t *batch,
                            dm_error_t *err)
{
    const json_t *spec = json_object_get(doc, "spec");
    const json_t *from = json_object_get(spec, "from");
    const char *input =
        json_is_string(from) ? json_string_value(from) : json_string_value(json_array_get(from, 0));
    check_ctx_t c = {.rt = rt, .batch = batch};
    const json_t *key;
    dm_error_t ignore = {0};
    const dm_avro_schema_t *s = input ? check_schema(&c, input, &key, &ignore) : NULL;
    dm_err_t rc = DM_OK;
    /* A union: every other source must read as the first (fields by name). */
    for (size_t k = 1; s && json_is_array(from) && k < json_array_size(from) && !rc; k++) {
        const char *other = json_string_value(json_array_get(from, k));
        const dm_avro_schema_t *o = check_schema(&c, other, &key, &ignore);
        dm_avro_schema_t *reader = NULL;
        if (o && (rc = dm_task_union_reader(s, o, &reader, err)))
            dm_error_prefix(err, "Pipeline %s: spec.from[%zu]: source %s cannot be read as %s",
                            dm_spec_name(doc), k, other, input);
        dm_avro_schema_free(reader);
    }
    if (!rc && s) {
        dm_proc_env_t env = {check_table, &c};
        const dm_avro_node_t *node = s->root;
        dm_proc_t *procs[64] = {0};
        size_t n = 0, i;
        bool joined = false;
        json_t *step;
        json_array_foreach(json_object_get(spec, "steps"), i, step)
        {
            if (n == 64) break;
            const char *kind;
            json_t *conf = dm_plan_step_settings(step, &kind);
            const char *with = json_string_value(json_object_get(conf, "with"));
            /* the first join reads its source; a second one is refused by its open */
            const dm_avro_schema_t *other = !joined && !strcmp(kind, "join") && with
                                                ? check_schema(&c, with, &key, &ignore)
                                                : NULL;
            joined |= !strcmp(kind, "join");
            rc = dm_proc_open2(dm_proc_find(kind), &env, conf, node, other ? other->root : NULL,
                               &procs[n], err);
            json_decref(conf);
            if (rc) {
                dm_error_prefix(err, "Pipeline %s: spec.steps[%zu].%s", dm_spec_name(doc), i, kind);
                break;
            }
            if (procs[n]->output) node = procs[n]->output->root;
            n++;
        }
        for (size_t k = 0; k < n; k++)
            dm_proc_close(procs[k]);
    }
    for (int k = 0; k < c.n_tables; k++)
        dm_table_free(c.tables[k]);
    for (int k = 0; k < c.n_owned; k++)
        dm_avro_schema_free(c.owned[k]);
    return rc;
}

dm_err_t dm_runtime_check(dm_runtime_t *rt, const json_t *const *docs, size_t n, dm_error_t *err)
{
    json_t *batch = json_object();
    for (size_t i = 0; i < n; i++)
        if (!strcmp(json_string_value(json_object_get(docs[i], "kind")), "Source"))
            json_object_set(batch, dm_spec_name(docs[i]), (json_t *)docs[i]);
    dm_err_t rc = DM_OK;
    pthread_mutex_lock(&rt->mu);
    for (size_t i = 0; i < n && !rc; i++) {
        rc = check_one(rt, docs[i], err);
        if (!rc && !strcmp(json_string_value(json_object_get(docs[i], "kind")), "Pipeline"))
            rc = check_chain(rt, docs[i], batch, err);
    }
    pthread_mutex_unlock(&rt->mu);
    json_decref(batch);
    return rc;
}
