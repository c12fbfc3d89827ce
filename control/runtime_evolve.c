/* control/runtime_evolve.c — the impact of a source's schema change before it
 * happens (docs/schema-evolution.md): the registry's verdict, which fields
 * change, and what every pipeline reading the source will do under its
 * spec.schema_change, from the plans they compile to (what lineage is
 * computed from: the fields each step reads, the derived sources and sinks
 * they write). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/runtime_internal.h"
#include "control/spec.h"
#include "schema/dm_schema_compat.h"

/* The record a field type holds: the type, the record branch of a union, or
 * a record named earlier (named: name → record; a change event's after is
 * ["null", "Value"], defined in before). */
static const json_t *record_of(const json_t *type, const json_t *named)
{
    if (json_is_object(type) && json_is_string(json_object_get(type, "type")) &&
        !strcmp(json_string_value(json_object_get(type, "type")), "record"))
        return type;
    if (json_is_string(type) && named) return json_object_get(named, json_string_value(type));
    if (!json_is_array(type)) return NULL;
    size_t i;
    json_t *b;
    json_array_foreach(type, i, b) if (record_of(b, named)) return record_of(b, named);
    return NULL;
}

/* path → type text of every field not itself a record, through records. */
static void leaves(const json_t *record, const char *prefix, json_t *out, json_t *named, int depth)
{
    size_t i;
    json_t *f;
    if (depth > 16) return;
    const char *rname = json_string_value(json_object_get(record, "name"));
    if (rname) json_object_set(named, rname, (json_t *)record);
    json_array_foreach(json_object_get(record, "fields"), i, f)
    {
        const char *name = json_string_value(json_object_get(f, "name"));
        if (!name) continue;
        char path[512];
        snprintf(path, sizeof(path), "%s%s%s", prefix, prefix[0] ? "." : "", name);
        const json_t *type = json_object_get(f, "type");
        const json_t *r = record_of(type, named);
        if (r) {
            leaves(r, path, out, named, depth + 1);
            continue;
        }
        char *text = json_dumps(type, JSON_COMPACT | JSON_ENCODE_ANY);
        json_object_set_new(out, path, json_string(text ? text : "?"));
        free(text);
    }
}

/* [{field, change: added | dropped | type, from, to}] between two schemas. */
static json_t *field_changes(const char *old_text, const char *new_text)
{
    json_t *o = json_loads(old_text, 0, NULL), *n = json_loads(new_text, 0, NULL);
    json_t *ol = json_object(), *nl = json_object(), *out = json_array();
    json_t *on = json_object(), *nn = json_object();
    if (record_of(o, NULL)) leaves(record_of(o, NULL), "", ol, on, 0);
    if (record_of(n, NULL)) leaves(record_of(n, NULL), "", nl, nn, 0);
    json_decref(on);
    json_decref(nn);
    const char *k;
    json_t *v;
    json_object_foreach(nl, k, v)
    {
        json_t *was = json_object_get(ol, k);
        if (!was)
            json_array_append_new(
                out, json_pack("{s:s, s:s, s:O}", "field", k, "change", "added", "to", v));
        else if (!json_equal(was, v))
            json_array_append_new(out, json_pack("{s:s, s:s, s:O, s:O}", "field", k, "change",
                                                 "type", "from", was, "to", v));
    }
    json_object_foreach(ol, k, v) if (!json_object_get(nl, k)) json_array_append_new(
        out, json_pack("{s:s, s:s, s:O}", "field", k, "change", "dropped", "from", v));
    json_decref(o);
    json_decref(n);
    json_decref(ol);
    json_decref(nl);
    return out;
}

/* The first step of plan that reads field (or a field inside it): "steps[I]
 * (KIND)"; NULL when none. */
static const char *step_reading(const json_t *plan, const char *field, char *out, size_t cap)
{
    size_t i, j, k;
    json_t *st, *step, *r;
    size_t len = strlen(field);
    json_array_foreach(json_object_get(plan, "stages"), i, st)
        json_array_foreach(json_object_get(st, "steps"), j, step)
            json_array_foreach(json_object_get(step, "reads"), k, r)
    {
        const char *p = json_string_value(r);
        if (p && !strncmp(p, field, len) && (p[len] == '\0' || p[len] == '.')) {
            snprintf(out, cap, "steps[%lld] (%s)",
                     (long long)json_integer_value(json_object_get(step, "index")),
                     json_string_value(json_object_get(step, "kind")));
            return out;
        }
    }
    return NULL;
}

/* What pipeline doc does when source's schema goes from old_text to new_text. */
static json_t *pipeline_impact(dm_runtime_t *rt, const json_t *doc, const json_t *changes,
                               const dm_avro_schema_t *old_s, const dm_avro_schema_t *new_s)
{
    const char *name = dm_spec_name(doc);
    const char *policy_text =
        json_string_value(json_object_get(json_object_get(doc, "spec"), "schema_change"));
    int policy = dm_spec_schema_change(policy_text);
    if (policy < 0) policy = DM_SCHEMA_CHANGE_LENIENT;
    json_t *out = json_pack("{s:s, s:s}", "pipeline", name ? name : "", "policy",
                            dm_spec_schema_changes[policy]);
    dm_error_t err = {0};
    json_t *plan = dm_runtime_plan(rt, doc, NULL, NULL, NULL, &err);
    json_t *effects = json_array();
    char msg[900], step[120];
    /* Steps naming a field that goes away or changes type. */
    bool pauses = false;
    size_t i;
    json_t *c;
    json_array_foreach(changes, i, c)
    {
        const char *field = json_string_value(json_object_get(c, "field"));
        const char *change = json_string_value(json_object_get(c, "change"));
        if (!plan || !strcmp(change, "added") || !step_reading(plan, field, step, sizeof(step)))
            continue;
        if (!strcmp(change, "dropped") && policy == DM_SCHEMA_CHANGE_EVOLVE) {
            snprintf(msg, sizeof(msg), "pauses: %s reads %s, which the new version drops", step,
                     field);
            pauses = true;
        } else if (!strcmp(change, "dropped") && policy == DM_SCHEMA_CHANGE_LENIENT) {
            snprintf(msg, sizeof(msg), "%s reads %s as null from the change on", step, field);
        } else if (!strcmp(change, "type")) {
            snprintf(msg, sizeof(msg), "%s reads %s, whose type changes", step, field);
        } else {
            continue;
        }
        json_array_append_new(effects, json_string(msg));
    }
    const char *action;
    if (policy == DM_SCHEMA_CHANGE_FAIL) {
        action = "pauses at the first record of the new version";
    } else if (policy == DM_SCHEMA_CHANGE_FREEZE) {
        dm_schema_compat_report_t rep = {0};
        bool can = dm_schema_can_read(old_s->root, new_s->root, &rep, "$");
        snprintf(msg, sizeof(msg), "%s%s",
                 can ? "keeps reading with the schema it started with; outputs unchanged"
                     : "pauses at the first record of the new version: its reader cannot read "
                       "it: ",
                 can || !rep.n ? "" : rep.messages[0]);
        dm_schema_compat_report_free(&rep);
        action = msg;
    } else if (pauses) {
        action = "restarts on the new version, then pauses (see effects)";
    } else {
        action = "restarts on the new version at its first record (nothing lost or repeated)";
    }
    json_object_set_new(out, "action", json_string(action));
    if (!plan) {
        json_object_set_new(out, "plan_error", json_string(err.message));
    } else if (policy != DM_SCHEMA_CHANGE_FAIL && policy != DM_SCHEMA_CHANGE_FREEZE && !pauses) {
        /* what its outputs do: a derived source's new version, sink columns */
        const char *output = json_string_value(json_object_get(plan, "output"));
        bool derived = output && strncmp(output, "pipeline.", 9);
        json_t *added = json_array();
        json_array_foreach(
            changes, i, c) if (strcmp(json_string_value(json_object_get(c, "change")), "dropped") ||
                               policy == DM_SCHEMA_CHANGE_LENIENT)
            json_array_append(added, json_object_get(c, "field"));
        if (derived && json_array_size(changes)) {
            snprintf(msg, sizeof(msg),
                     "derived source %s registers a new version (compatibility-checked)", output);
            json_array_append_new(effects, json_string(msg));
        }
        json_t *sink;
        json_array_foreach(json_object_get(plan, "sinks"), i, sink)
        {
            const char *type = json_string_value(json_object_get(sink, "type"));
            char *fields = json_dumps(added, JSON_COMPACT);
            snprintf(msg, sizeof(msg), "sink %s (%s): %s %s",
                     json_string_value(json_object_get(sink, "name")), type ? type : "?",
                     type && !strcmp(type, "postgres")  ? "adds or widens columns for"
                     : type && !strcmp(type, "iceberg") ? "evolves its table (new column ids) for"
                     : type && !strcmp(type, "elasticsearch") ? "adds to its mapping"
                                                              : "writes records with",
                     fields ? fields : "[]");
            free(fields);
            json_array_append_new(effects, json_string(msg));
        }
        json_decref(added);
    }
    json_object_set_new(out, "effects", effects);
    json_decref(plan);
    return out;
}

#define IMPACT_MAX_HOPS 8

/* The schema (JSON text, malloc'd) pipeline doc would publish to its derived
 * source (*derived, malloc'd) if source had new_text; NULL when it publishes
 * none or does not compile against it. */
static char *derived_schema(dm_runtime_t *rt, const json_t *doc, const json_t *sources,
                            const char *source, const char *new_text, char **derived)
{
    *derived = NULL;
    json_t *schema = json_loads(new_text, 0, NULL);
    json_t *fake = json_deep_copy(json_object_get(sources, source));
    if (!fake)
        fake =
            json_pack("{s:s, s:{s:s}, s:{}}", "kind", "Source", "metadata", "name", source, "spec");
    json_t *spec = json_object_get(fake, "spec");
    char *out = NULL;
    if (schema && json_is_object(spec)) {
        json_object_set_new(spec, "schema", schema);
        schema = NULL;
        json_t *batch = json_pack("{s:O}", source, fake);
        dm_error_t e = {0};
        json_t *plan = batch ? dm_runtime_plan(rt, doc, batch, NULL, NULL, &e) : NULL;
        json_t *stages = json_object_get(plan, "stages");
        const json_t *last = json_array_get(stages, json_array_size(stages) - 1);
        const char *output = json_string_value(json_object_get(plan, "output"));
        const char *text = json_string_value(json_object_get(last, "output_schema"));
        if (output && text && strncmp(output, "pipeline.", 9)) {
            out = strdup(text);
            *derived = strdup(output);
        }
        json_decref(plan);
        json_decref(batch);
    }
    json_decref(schema);
    json_decref(fake);
    return out;
}

/* entry's pipeline publishes derived with the schema it has: its effect
 * says so instead of a new version. */
static void keeps_schema(json_t *entry, const char *derived)
{
    size_t i;
    json_t *e;
    char msg[400];
    snprintf(msg, sizeof(msg),
             "derived source %s keeps its schema (the steps do not pass the "
             "change on)",
             derived);
    json_array_foreach(json_object_get(entry, "effects"), i, e)
    {
        const char *text = json_string_value(e);
        if (text && !strncmp(text, "derived source ", 15)) json_string_set(e, msg);
    }
}

/* Appends to pipes what every pipeline reading source does when its schema
 * goes from old_s to new_s (new_text; changes between them), then follows the
 * derived sources those pipelines publish whose schema the change alters:
 * their readers are affected too ("via": the derived source, "hop": how far
 * downstream). Each source once; at most IMPACT_MAX_HOPS deep. */
static void impact_readers(dm_runtime_t *rt, const json_t *docs, const json_t *sources,
                           const char *source, const char *via, const json_t *changes,
                           const dm_avro_schema_t *old_s, const dm_avro_schema_t *new_s,
                           const char *new_text, json_t *pipes, json_t *seen, int hop)
{
    const char *name;
    json_t *doc;
    json_object_foreach((json_t *)docs, name, doc)
    {
        json_t *reads = dm_spec_pipeline_inputs(doc);
        bool reading = false;
        size_t i;
        json_t *s;
        json_array_foreach(reads, i, s) reading |= !strcmp(json_string_value(s), source);
        json_decref(reads);
        if (!reading) continue;
        json_t *entry = pipeline_impact(rt, doc, changes, old_s, new_s);
        if (via) {
            json_object_set_new(entry, "via", json_string(via));
            json_object_set_new(entry, "hop", json_integer(hop));
        }
        json_array_append_new(pipes, entry);
        /* does what it publishes change too? (not when it pauses or keeps its schema) */
        const char *action = json_string_value(json_object_get(entry, "action"));
        if (hop + 1 >= IMPACT_MAX_HOPS || !action || strncmp(action, "restarts", 8) ||
            strstr(action, "pauses"))
            continue;
        char *derived = NULL;
        char *next_text = derived_schema(rt, doc, sources, source, new_text, &derived);
        char *cur_text = NULL;
        int64_t cur_id = 0;
        dm_error_t e = {0};
        dm_avro_schema_t *cur_s = NULL, *next_s = NULL;
        if (next_text && derived && !json_object_get(seen, derived) &&
            !dm_runtime_source_schema(rt, derived, &cur_text, &cur_id, &e) &&
            !dm_avro_schema_parse(cur_text, strlen(cur_text), &cur_s, &e) &&
            !dm_avro_schema_parse(next_text, strlen(next_text), &next_s, &e)) {
            json_t *next_changes = field_changes(cur_text, next_text);
            if (!json_array_size(next_changes)) { /* its steps do not pass the change on */
                keeps_schema(entry, derived);
            } else {
                json_object_set_new(seen, derived, json_true());
                impact_readers(rt, docs, sources, derived, derived, next_changes, cur_s, next_s,
                               next_text, pipes, seen, hop + 1);
            }
            json_decref(next_changes);
        }
        dm_avro_schema_free(cur_s);
        dm_avro_schema_free(next_s);
        free(cur_text);
        free(next_text);
        free(derived);
    }
}

json_t *dm_runtime_schema_plan(dm_runtime_t *rt, const char *source, const char *new_schema,
                               dm_error_t *err)
{
    char subject[300];
    snprintf(subject, sizeof(subject), "%s-value", source);
    dm_avro_schema_t *new_s = NULL;
    if (dm_avro_schema_parse(new_schema, strlen(new_schema), &new_s, err)) {
        dm_error_prefix(err, "the new schema of %s", source);
        return NULL;
    }
    char *old_text = NULL;
    int64_t old_id = 0;
    if (dm_runtime_source_schema(rt, source, &old_text, &old_id, err)) {
        dm_avro_schema_free(new_s);
        return NULL;
    }
    dm_avro_schema_t *old_s = NULL;
    dm_schema_compat_report_t report = {0};
    dm_error_t e = {0};
    pthread_mutex_lock(&rt->mu);
    dm_err_t crc = dm_schema_registry_check(rt->reg, subject, new_schema, &report, &e);
    pthread_mutex_unlock(&rt->mu);
    json_t *reasons = json_array();
    for (size_t i = 0; i < report.n; i++)
        json_array_append_new(reasons, json_string(report.messages[i]));
    dm_schema_compat_report_free(&report);
    if (crc && crc != DM_ERR_SCHEMA_INCOMPATIBLE)
        json_array_append_new(reasons, json_string(e.message));
    json_t *changes = field_changes(old_text, new_schema);
    json_t *out = json_pack("{s:s, s:s, s:I, s:b, s:o, s:o}", "source", source, "subject", subject,
                            "current_id", (json_int_t)old_id, "compatible", crc == DM_OK, "reasons",
                            reasons, "changes", changes);
    json_t *pipes = json_array();
    json_t *docs = NULL, *sources = NULL;
    if (crc == DM_OK && !dm_avro_schema_parse(old_text, strlen(old_text), &old_s, err) &&
        !dm_store_docs(rt->store, DM_KIND_PIPELINE, &docs, err) &&
        !dm_store_docs(rt->store, DM_KIND_SOURCE, &sources, err)) {
        json_t *seen = json_pack("{s:b}", source, 1);
        impact_readers(rt, docs, sources, source, NULL, changes, old_s, new_s, new_schema, pipes,
                       seen, 0);
        json_decref(seen);
    } else if (crc != DM_OK) {
        json_object_set_new(out, "action",
                            json_string("refused: the source stops with the registry's reasons; "
                                        "pipelines reading it keep what they read"));
    }
    json_object_set_new(out, "pipelines", pipes);
    json_decref(docs);
    json_decref(sources);
    free(old_text);
    dm_avro_schema_free(old_s);
    dm_avro_schema_free(new_s);
    return out;
}
