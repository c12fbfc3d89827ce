/* control/runtime_check.c — before an apply is stored: can the runtime run
 * what the specs ask for? Connectors that only validate are refused, and each
 * pipeline compiles to its plan against its input schemas (from the request
 * or the registry), so what cannot run fails the apply, not a task. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/runtime_internal.h"

/* The record a field's type holds: the type itself, or the record branch of
 * a union (["null", {record}]); NULL when there is none in the spec's text. */
static const json_t *record_in(const json_t *type)
{
    if (json_is_object(type) && json_is_array(json_object_get(type, "fields"))) return type;
    size_t i;
    const json_t *b;
    json_array_foreach(type, i, b) if (record_in(b)) return record_in(b);
    return NULL;
}

/* The spec path of the field an incompatibility names (the report's "$.a.b",
 * field names from the top record) into out, appended to base: for a schema
 * "spec.schema.fields[2]" (nested records: ".type.fields[0]", or
 * ".type[1].fields[0]" in a union), for a key "spec.key[1]" (the key field it
 * starts with). Stops at the deepest field the spec's text shows; out is base
 * when the path names none. */
static void field_spec_path(const json_t *schema, const json_t *key, const char *apath,
                            const char *base, char *out, size_t cap)
{
    size_t o = (size_t)snprintf(out, cap, "%s", base);
    if (strncmp(apath, "$.", 2)) return;
    const char *seg = apath + 2;
    size_t n = strcspn(seg, ".[");
    if (key) {
        size_t i;
        const json_t *k;
        json_array_foreach(key, i, k)
        {
            const char *kn = json_string_value(k);
            if (kn && strlen(kn) == n && !strncmp(kn, seg, n)) {
                snprintf(out + o, cap - o, "[%zu]", i);
                return;
            }
        }
        return;
    }
    const json_t *rec = record_in(schema);
    const char *prefix = "";
    char branch[32];
    while (rec && n && o < cap) {
        const json_t *fields = json_object_get(rec, "fields"), *f, *found = NULL;
        size_t i, at = 0;
        json_array_foreach(fields, i, f)
        {
            const char *fn = json_string_value(json_object_get(f, "name"));
            if (fn && strlen(fn) == n && !strncmp(fn, seg, n)) found = f, at = i;
        }
        if (!found) return;
        o += (size_t)snprintf(out + o, cap - o, "%s.fields[%zu]", prefix, at);
        if (seg[n] != '.') return;
        seg += n + 1;
        n = strcspn(seg, ".[");
        const json_t *type = json_object_get(found, "type");
        rec = record_in(type);
        prefix = ".type";
        if (rec && json_is_array(type)) {
            size_t b;
            const json_t *br;
            json_array_foreach(type, b, br) if (br == rec) break;
            snprintf(branch, sizeof(branch), ".type[%zu]", b);
            prefix = branch;
        }
    }
}

/* The registry's verdict on text under subject, as apply's error: the
 * reasons of an incompatibility listed after the subject's level, at the
 * spec path of the first field they name (schema: the spec's schema JSON;
 * key: its key list, for the key's subject). */
static dm_err_t check_subject(dm_runtime_t *rt, const char *name, const char *what,
                              const char *subject, const char *text, const json_t *schema,
                              const json_t *key, dm_error_t *err)
{
    dm_schema_compat_report_t report = {0};
    dm_error_t e = {0};
    dm_err_t rc = dm_schema_registry_check(rt->reg, subject, text, &report, &e);
    if (rc) {
        char reasons[900] = "";
        size_t o = 0;
        for (size_t i = 0; i < report.n && o < sizeof(reasons); i++)
            o += (size_t)snprintf(reasons + o, sizeof(reasons) - o, "%s%s", i ? "; " : "",
                                  report.messages[i]);
        /* "LEVEL: new schema reading old schema #1: $.n: reason": the field path */
        char where[400];
        const char *ap = report.n ? strstr(report.messages[0], ": $") : NULL;
        char apath[300] = "";
        if (ap) snprintf(apath, sizeof(apath), "%.*s", (int)strcspn(ap + 2, ": "), ap + 2);
        field_spec_path(schema, key, apath, what, where, sizeof(where));
        dm_error_set(err, rc, "Source %s: %s: %s%s%s", name, where, e.message, o ? ": " : "",
                     reasons);
    }
    dm_schema_compat_report_free(&report);
    return rc;
}

/* A source that carries its schema registers it under NAME-value, and the
 * record of its key fields under NAME-key, when it starts: whatever the
 * registry would refuse then (a schema the full Avro parser rejects, or one
 * incompatible with the subject's live versions at its level) fails the
 * apply now, naming the subject and the reasons (lock held). */
static dm_err_t check_source_schemas(dm_runtime_t *rt, const char *name, const json_t *spec,
                                     dm_error_t *err)
{
    const json_t *schema = json_object_get(spec, "schema");
    if (!schema) return DM_OK;
    dm_avro_schema_t *s = NULL;
    char apath[256];
    dm_error_t e = {0};
    if (dm_spec_schema_parse(schema, &s, apath, sizeof(apath), &e))
        return dm_error_set(err, e.code, "Source %s: spec.schema%s: not a valid Avro schema: %s",
                            name, apath[0] ? apath + 1 : "", e.message);
    char subject[300];
    char *text = json_dumps(schema, JSON_COMPACT);
    snprintf(subject, sizeof(subject), "%s-value", name);
    dm_err_t rc = text ? check_subject(rt, name, "spec.schema", subject, text, schema, NULL, err)
                       : dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    free(text);
    const json_t *key = json_object_get(spec, "key");
    if (!rc && json_array_size(key)) {
        char *kt = dm_runtime_key_schema_json(s, key);
        snprintf(subject, sizeof(subject), "%s-key", name);
        rc = kt ? check_subject(rt, name, "spec.key", subject, kt, NULL, key, err)
                : dm_error_set(err, DM_ERR_NOMEM, "out of memory");
        free(kt);
    }
    dm_avro_schema_free(s);
    return rc;
}

/* Whether two members say the same (both absent counts). */
static bool same(const json_t *a, const json_t *b)
{
    return a == b || (a && b && json_equal(a, b));
}

static dm_err_t check_one(dm_runtime_t *rt, const json_t *doc, const json_t *stored_sources,
                          dm_error_t *err)
{
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
        /* A source whose schema and key stay as stored registers nothing
         * (it is unchanged, or only its config changes): nothing to check,
         * and a large re-apply costs no registry lookups. */
        const json_t *old = json_object_get(json_object_get(stored_sources, name), "spec");
        if (old && same(json_object_get(old, "schema"), json_object_get(spec, "schema")) &&
            same(json_object_get(old, "key"), json_object_get(spec, "key")))
            return DM_OK;
        return check_source_schemas(rt, name, spec, err);
    }
    if (!strcmp(kind, "Processor"))
        return dm_proc_sdk_check(name, json_string_value(json_object_get(spec, "library")),
                                 json_string_value(json_object_get(spec, "symbol")), err);
    if (strcmp(kind, "Pipeline")) return DM_OK;
    size_t i;
    json_t *step;
    json_array_foreach(json_object_get(spec, "steps"), i, step)
    {
        if (json_object_get(step, "sql") && json_object_size(step) == 1)
            continue; /* checked when the plan compiles, against its input */
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

/* Compiles the pipeline's plan as apply would run it (dry: nothing is
 * registered or created), with the sources and sinks of the request in place
 * of the stored ones: a bad expression or field, an enrich source without a
 * key, a union source that cannot be read as the first, an output schema the
 * registry would refuse all fail the apply, not a task. A pipeline reading a
 * source that does not exist yet (its connector makes it) is accepted: it
 * waits for it. */
static dm_err_t check_plan(dm_runtime_t *rt, const json_t *doc, const json_t *stored_sources,
                           const json_t *stored_sinks, const json_t *batch,
                           const json_t *batch_sinks, const json_t *batch_processors,
                           dm_error_t *err)
{
    dm_error_t e = {0};
    dm_err_t rc = dm_runtime_plan_check_locked(rt, doc, stored_sources, stored_sinks, batch,
                                               batch_sinks, batch_processors, &e);
    if (rc == DM_ERR_AGAIN || !rc) return DM_OK;
    *err = e;
    return rc;
}

dm_err_t dm_runtime_check(dm_runtime_t *rt, const json_t *const *docs, size_t n, dm_error_t *err)
{
    json_t *batch = json_object(), *batch_sinks = json_object(), *batch_procs = json_object();
    json_t *sources = NULL, *sinks = NULL;
    for (size_t i = 0; i < n; i++) {
        const char *kind = json_string_value(json_object_get(docs[i], "kind"));
        if (!strcmp(kind, "Source"))
            json_object_set(batch, dm_spec_name(docs[i]), (json_t *)docs[i]);
        if (!strcmp(kind, "Sink"))
            json_object_set(batch_sinks, dm_spec_name(docs[i]), (json_t *)docs[i]);
        if (!strcmp(kind, "Processor"))
            json_object_set(batch_procs, dm_spec_name(docs[i]), (json_t *)docs[i]);
    }
    dm_err_t rc = dm_store_docs(rt->store, DM_KIND_SOURCE, &sources, err);
    if (!rc) rc = dm_store_docs(rt->store, DM_KIND_SINK, &sinks, err);
    pthread_mutex_lock(&rt->mu);
    for (size_t i = 0; i < n && !rc; i++) {
        rc = check_one(rt, docs[i], sources, err);
        if (!rc && !strcmp(json_string_value(json_object_get(docs[i], "kind")), "Pipeline"))
            rc = check_plan(rt, docs[i], sources, sinks, batch, batch_sinks, batch_procs, err);
    }
    pthread_mutex_unlock(&rt->mu);
    json_decref(sources);
    json_decref(sinks);
    json_decref(batch);
    json_decref(batch_sinks);
    json_decref(batch_procs);
    return rc;
}
