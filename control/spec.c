/* control/spec.c — validation of spec documents. */
#include "control/spec.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "connectors/connector.h"
#include "control/alerts.h"
#include "core/config.h"
#include "core/redact.h"
#include "engine/processor.h"
#include "schema/dm_avro.h"
#include "sql/sql.h"

static const char *const kind_names[] = {"Source", "Pipeline", "Processor", "Sink"};
static const char *const kind_plurals[] = {"sources", "pipelines", "processors", "sinks"};

const char *dm_kind_name(dm_kind_t kind)
{
    return kind < DM_KIND_COUNT ? kind_names[kind] : "?";
}

const char *dm_kind_plural(dm_kind_t kind)
{
    return kind < DM_KIND_COUNT ? kind_plurals[kind] : "?";
}

int dm_kind_parse(const char *text)
{
    for (int i = 0; i < DM_KIND_COUNT; i++)
        if (!strcasecmp(text, kind_names[i]) || !strcasecmp(text, kind_plurals[i])) return i;
    return -1;
}

int dm_spec_name_valid(const char *s)
{
    return dm_config_name_valid(s);
}

/* ---- validation context ---- */

typedef struct vctx {
    const dm_spec_doc_t *doc;
    dm_error_t *err;
} vctx_t;

static dm_err_t fail(vctx_t *v, dm_err_t code, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static dm_err_t fail(vctx_t *v, dm_err_t code, const char *path, const char *fmt, ...)
{
    char loc[300], msg[700];
    dm_spec_locate((void *)v->doc, path, loc, sizeof(loc));
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return dm_error_set(v->err, code, "%s: %s: %s", loc, path[0] ? path : "(document)", msg);
}

static void join_list(const char *const *items, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; items[i] && o < cap; i++)
        o += (size_t)snprintf(out + o, cap - o, "%s%s", i ? ", " : "", items[i]);
}

/* Checks obj is a mapping whose keys are all in allowed (NULL-terminated). */
static dm_err_t check_keys(vctx_t *v, const json_t *obj, const char *path,
                           const char *const *allowed)
{
    if (!json_is_object(obj))
        return fail(v, DM_ERR_CONFIG_TYPE, path, "expected a mapping, got %s",
                    dm_config_json_kind(obj));
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)obj, key, val)
    {
        bool ok = false;
        for (size_t i = 0; allowed[i] && !ok; i++)
            ok = !strcmp(key, allowed[i]);
        if (!ok) {
            char p[512], list[512];
            snprintf(p, sizeof(p), "%s%s%s", path, path[0] ? "." : "", key);
            join_list(allowed, list, sizeof(list));
            return fail(v, DM_ERR_CONFIG_UNKNOWN_KEY, p, "unknown key '%s'; allowed: %s", key,
                        list);
        }
    }
    return DM_OK;
}

static dm_err_t need_string(vctx_t *v, const json_t *obj, const char *key, const char *path,
                            bool required, const char **out)
{
    char p[512];
    snprintf(p, sizeof(p), "%s%s%s", path, path[0] ? "." : "", key);
    const json_t *s = json_object_get(obj, key);
    if (!s) {
        if (required) return fail(v, DM_ERR_CONFIG_MISSING, p, "required key '%s' is missing", key);
        if (out) *out = NULL;
        return DM_OK;
    }
    if (!json_is_string(s))
        return fail(v, DM_ERR_CONFIG_TYPE, p, "expected a string, got %s", dm_config_json_kind(s));
    if (required && !json_string_length(s))
        return fail(v, DM_ERR_CONFIG_RANGE, p, "must not be empty");
    if (out) *out = json_string_value(s);
    return DM_OK;
}

static dm_err_t need_string_list(vctx_t *v, const json_t *list, const char *path, bool nonempty)
{
    if (!json_is_array(list))
        return fail(v, DM_ERR_CONFIG_TYPE, path, "expected a list of strings, got %s",
                    dm_config_json_kind(list));
    if (nonempty && !json_array_size(list))
        return fail(v, DM_ERR_CONFIG_RANGE, path, "must list at least one item");
    size_t i;
    json_t *it;
    json_array_foreach(list, i, it)
    {
        char p[512];
        snprintf(p, sizeof(p), "%s[%zu]", path, i);
        if (!json_is_string(it) || !json_string_length(it))
            return fail(v, DM_ERR_CONFIG_TYPE, p, "expected a non-empty string, got %s",
                        dm_config_json_kind(it));
    }
    return DM_OK;
}

static dm_err_t need_name(vctx_t *v, const char *name, const char *path)
{
    if (!dm_spec_name_valid(name))
        return fail(v, DM_ERR_CONFIG_RANGE, path,
                    "'%s' is not a valid name: use 1-63 of a-z 0-9 - _ . starting and ending "
                    "with a letter or digit",
                    name);
    return DM_OK;
}

/* Validates settings against a connector's config table. The settings are the
 * mapping at path, minus the keys in skip (e.g. "type" of an inline sink). */
static dm_err_t check_config(vctx_t *v, const dm_connector_def_t *def, const json_t *settings,
                             const char *path, const char *skip)
{
    json_t *copy = json_deep_copy(settings);
    if (!copy) return fail(v, DM_ERR_NOMEM, path, "out of memory");
    if (skip) json_object_del(copy, skip);
    void *scratch = calloc(1, def->config_size);
    dm_config_source_t src = {.path = path, .locate = dm_spec_locate, .locate_ctx = (void *)v->doc};
    dm_err_t rc = scratch ? dm_config_defaults(def->config, scratch, v->err) : DM_ERR_NOMEM;
    if (!rc) rc = dm_config_apply_json(def->config, scratch, copy, &src, v->err);
    /* A DSN must not carry the password: it belongs in password_env/_file. */
    const json_t *dsn = json_object_get(copy, "dsn");
    if (!rc && json_is_string(dsn)) {
        char red[1024];
        dm_redact_dsn(json_string_value(dsn), red, sizeof(red));
        if (strcmp(red, json_string_value(dsn)) != 0) {
            char p[512];
            snprintf(p, sizeof(p), "%s.dsn", path);
            rc = fail(v, DM_ERR_CONFIG, p,
                      "the DSN holds a password (%s); give it through password_env or "
                      "password_file instead",
                      red);
        }
    }
    if (scratch) dm_config_free(def->config, scratch);
    free(scratch);
    json_decref(copy);
    return rc;
}

/* ---- kinds ---- */

/* Where the Avro parser's message points: the first "$…" path in it ("$",
 * "$.fields[1].default"), copied to out; "" when it names none. */
static void avro_path_of(const char *msg, char *out, size_t cap)
{
    out[0] = '\0';
    const char *d = strchr(msg, '$');
    if (!d) return;
    size_t n = 1;
    while (d[n] && (isalnum((unsigned char)d[n]) || strchr("._[]", d[n])))
        n++;
    while (n > 1 && d[n - 1] == '.')
        n--;
    snprintf(out, cap, "%.*s", (int)(n < cap ? n : cap - 1), d);
}

dm_err_t dm_spec_schema_parse(const json_t *schema, dm_avro_schema_t **out, char *avro_path,
                              size_t cap, dm_error_t *err)
{
    *out = NULL;
    if (cap) avro_path[0] = '\0';
    char *text = json_dumps(schema, JSON_COMPACT);
    if (!text) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    dm_error_t e = {0};
    dm_err_t rc = dm_avro_schema_parse(text, strlen(text), out, &e);
    free(text);
    if (!rc) return DM_OK;
    if (cap) avro_path_of(e.message, avro_path, cap);
    if (err) *err = e;
    return rc;
}

/* The full Avro parse (schema/parse.c, as `datamesh schema compat` does it):
 * undefined types, defaults of the wrong type, duplicate fields, invalid
 * names. The error points at the spec's text for the Avro path the parser
 * names ($.fields[1].default -> spec.schema.fields[1].default). */
static dm_err_t check_avro(vctx_t *v, const json_t *schema)
{
    char apath[256];
    dm_avro_schema_t *s = NULL;
    dm_error_t e = {0};
    dm_err_t rc = dm_spec_schema_parse(schema, &s, apath, sizeof(apath), &e);
    dm_avro_schema_free(s);
    if (!rc) return DM_OK;
    char p[300];
    snprintf(p, sizeof(p), "spec.schema%s", apath[0] ? apath + 1 : "");
    return fail(v, rc, p, "not a valid Avro schema: %s", e.message);
}

static dm_err_t check_inline_schema(vctx_t *v, const json_t *schema, const json_t *key)
{
    if (!json_is_object(schema))
        return fail(v, DM_ERR_CONFIG_TYPE, "spec.schema",
                    "expected an Avro record schema (a mapping), got %s",
                    dm_config_json_kind(schema));
    if (json_object_get(schema, "file") && json_object_size(schema) == 1)
        return fail(v, DM_ERR_CONFIG, "spec.schema.file",
                    "schema files are read by `datamesh apply -f`; over the API send the "
                    "schema inline");
    const json_t *type = json_object_get(schema, "type");
    if (!json_is_string(type) || strcmp(json_string_value(type), "record") != 0)
        return fail(v, DM_ERR_CONFIG, "spec.schema.type",
                    "a source's schema must be an Avro record (type: record)");
    const json_t *fields = json_object_get(schema, "fields");
    if (!json_is_array(fields))
        return fail(v, DM_ERR_CONFIG, "spec.schema.fields", "an Avro record needs a fields list");
    size_t i;
    json_t *f;
    json_array_foreach(fields, i, f)
    {
        char p[64];
        snprintf(p, sizeof(p), "spec.schema.fields[%zu]", i);
        if (!json_is_object(f) || !json_is_string(json_object_get(f, "name")))
            return fail(v, DM_ERR_CONFIG, p, "each field needs a name");
        if (!json_object_get(f, "type"))
            return fail(v, DM_ERR_CONFIG, p, "field '%s' needs a type",
                        json_string_value(json_object_get(f, "name")));
    }
    dm_err_t rc = check_avro(v, schema);
    if (rc || !key) return rc;
    json_t *k;
    json_array_foreach(key, i, k)
    {
        bool found = false;
        size_t j;
        json_array_foreach(fields, j, f) if (!strcmp(json_string_value(json_object_get(f, "name")),
                                                     json_string_value(k))) found = true;
        if (!found) {
            char p[64];
            snprintf(p, sizeof(p), "spec.key[%zu]", i);
            return fail(v, DM_ERR_CONFIG, p, "key field '%s' is not a field of the schema",
                        json_string_value(k));
        }
    }
    return DM_OK;
}

/* spec.alerts: the object's overrides of its default alert rules (control/alerts.c). */
static dm_err_t check_alerts(vctx_t *v, const char *kind, const json_t *spec)
{
    const json_t *alerts = json_object_get(spec, "alerts");
    if (!alerts) return DM_OK;
    return dm_alerts_check_spec(kind, alerts, "spec.alerts", dm_spec_locate, (void *)v->doc,
                                v->err);
}

static dm_err_t check_source(vctx_t *v, const json_t *spec)
{
    static const char *const keys[] = {"connector", "schema", "key", "partitions",
                                       "config",    "alerts", NULL};
    dm_err_t rc = check_keys(v, spec, "spec", keys);
    if (rc) return rc;
    if ((rc = check_alerts(v, "Source", spec))) return rc;
    const char *connector;
    if ((rc = need_string(v, spec, "connector", "spec", true, &connector))) return rc;
    /* registered, or named in DESIGN.md (refused below when not built yet) */
    bool known = dm_source_connector_find(connector) != NULL;
    for (size_t i = 0; dm_source_connector_names[i]; i++)
        known |= !strcmp(dm_source_connector_names[i], connector);
    if (!known) {
        char list[256];
        join_list(dm_source_connector_names, list, sizeof(list));
        return fail(v, DM_ERR_CONFIG_RANGE, "spec.connector", "'%s' is not one of: %s", connector,
                    list);
    }
    const dm_connector_def_t *def = dm_source_connector_find(connector);
    if (!def) {
        char list[256];
        dm_source_connectors_available(list, sizeof(list));
        return fail(v, DM_ERR_UNSUPPORTED, "spec.connector",
                    "connector '%s' is not available in this version yet (available: %s)",
                    connector, list);
    }
    const json_t *key = json_object_get(spec, "key");
    if (key && (rc = need_string_list(v, key, "spec.key", true))) return rc;
    const json_t *parts = json_object_get(spec, "partitions");
    if (parts && (!json_is_integer(parts) || json_integer_value(parts) < 1 ||
                  json_integer_value(parts) > 1024))
        return fail(v, DM_ERR_CONFIG_RANGE, "spec.partitions",
                    "expected an integer from 1 to 1024, got %s",
                    json_is_integer(parts) ? "a value out of range" : dm_config_json_kind(parts));
    const json_t *schema = json_object_get(spec, "schema");
    if (!schema && def->needs_schema)
        return fail(v, DM_ERR_CONFIG_MISSING, "spec.schema",
                    "required key 'schema' is missing: a %s source needs an Avro record schema",
                    connector);
    if (schema && (rc = check_inline_schema(v, schema, key))) return rc;
    const json_t *config = json_object_get(spec, "config");
    json_t *none = config ? NULL : json_object();
    rc = check_config(v, def, config ? config : none, "spec.config", NULL);
    json_decref(none);
    return rc;
}

static dm_err_t check_sink_settings(vctx_t *v, const json_t *sink, const char *path)
{
    if (!json_is_object(sink))
        return fail(v, DM_ERR_CONFIG_TYPE, path, "expected a mapping with a type, got %s",
                    dm_config_json_kind(sink));
    const char *type;
    dm_err_t rc = need_string(v, sink, "type", path, true, &type);
    if (rc) return rc;
    char p[512];
    snprintf(p, sizeof(p), "%s.type", path);
    bool known = false;
    for (size_t i = 0; dm_sink_type_names[i]; i++)
        known |= !strcmp(dm_sink_type_names[i], type);
    if (!known) {
        char list[256];
        join_list(dm_sink_type_names, list, sizeof(list));
        return fail(v, DM_ERR_CONFIG_RANGE, p, "'%s' is not one of: %s", type, list);
    }
    if (!strcmp(type, "topic"))
        return fail(v, DM_ERR_CONFIG, p, "publish to a topic with `- source: NAME` in `to`");
    const dm_connector_def_t *def = dm_sink_type_find(type);
    if (!def) {
        char list[256];
        dm_sink_types_available(list, sizeof(list));
        return fail(v, DM_ERR_UNSUPPORTED, p,
                    "sink type '%s' is not available in this version yet (available: %s)", type,
                    list);
    }
    return check_config(v, def, sink, path, "type");
}

/* A duration: "500ms", "10s", "5m", "1h", "1d" or a number of milliseconds. */
static dm_err_t need_duration(vctx_t *v, const json_t *obj, const char *key, const char *path,
                              bool required)
{
    char p[512];
    snprintf(p, sizeof(p), "%s.%s", path, key);
    const json_t *d = json_object_get(obj, key);
    if (!d)
        return required ? fail(v, DM_ERR_CONFIG_MISSING, p, "required key '%s' is missing", key)
                        : DM_OK;
    int64_t ms;
    if ((json_is_integer(d) && json_integer_value(d) >= 0) ||
        (json_is_string(d) && dm_parse_duration_ms(json_string_value(d), &ms) == DM_OK && ms >= 0))
        return DM_OK;
    return fail(v, DM_ERR_CONFIG_TYPE, p,
                "expected a duration (\"500ms\", \"10s\", \"5m\", \"1h\", \"1d\") or a number of "
                "milliseconds");
}

/* A step is validated by its processor's config table (engine/processor.c):
 * the kinds, settings, shorthands and messages are declared there once. */
static dm_err_t check_step(vctx_t *v, const json_t *step, size_t i)
{
    char path[64];
    snprintf(path, sizeof(path), "spec.steps[%zu]", i);
    const json_t *sql = json_object_get(step, "sql");
    if (sql && json_object_size(step) == 1) {
        /* A sql step: its syntax and names here, its columns when the plan compiles. */
        snprintf(path, sizeof(path), "spec.steps[%zu].sql", i);
        if (!json_is_string(sql))
            return fail(v, DM_ERR_CONFIG_TYPE, path, "expected a query (SELECT … FROM input …)");
        dm_error_t e = {0};
        json_t *out = NULL;
        dm_err_t rc = dm_sql_compile(json_string_value(sql), NULL, true, NULL, &out, &e);
        json_decref(out);
        return rc ? fail(v, rc, path, "%s", e.message) : DM_OK;
    }
    return dm_proc_step_check(step, path, dm_spec_locate, (void *)v->doc, v->err);
}

/* spec.state: {spill: SIZE} — memory each stateful step's store may hold
 * before it spills to RocksDB ("64MiB", "512KiB", or bytes). */
#define SPILL_MIN ((int64_t)64 << 10)
#define SPILL_MAX ((int64_t)1 << 40)

static dm_err_t check_state(vctx_t *v, const json_t *state)
{
    static const char *const keys[] = {"spill", NULL};
    dm_err_t rc = check_keys(v, state, "spec.state", keys);
    if (rc) return rc;
    int64_t bytes;
    rc = dm_spec_state_spill(state, &bytes);
    if (rc == DM_ERR_CONFIG_TYPE)
        return fail(v, rc, "spec.state.spill", "expected a size (\"64MiB\") or a number of bytes");
    if (rc == DM_ERR_CONFIG_RANGE)
        return fail(v, rc, "spec.state.spill", "must be between 64KiB and 1TiB");
    return rc;
}

dm_err_t dm_spec_state_spill(const json_t *state, int64_t *bytes)
{
    *bytes = 0;
    const json_t *spill = json_object_get(state, "spill");
    if (!spill) return DM_OK;
    if (json_is_integer(spill))
        *bytes = json_integer_value(spill);
    else if (!json_is_string(spill) || dm_parse_size(json_string_value(spill), bytes))
        return DM_ERR_CONFIG_TYPE;
    if (*bytes < SPILL_MIN || *bytes > SPILL_MAX) return DM_ERR_CONFIG_RANGE;
    return DM_OK;
}

const char *const dm_spec_schema_changes[] = {"lenient", "evolve", "freeze", "fail", NULL};

int dm_spec_schema_change(const char *policy)
{
    if (!policy) return 0; /* lenient, the default */
    for (int i = 0; dm_spec_schema_changes[i]; i++)
        if (!strcmp(policy, dm_spec_schema_changes[i])) return i;
    return -1;
}

static dm_err_t check_pipeline(vctx_t *v, const json_t *spec)
{
    static const char *const keys[] = {"from", "steps",         "to",     "state", "idle_timeout",
                                       "sql",  "schema_change", "alerts", "start", NULL};
    dm_err_t rc = check_keys(v, spec, "spec", keys);
    if (rc) return rc;
    const char *policy = NULL;
    if ((rc = need_string(v, spec, "schema_change", "spec", false, &policy))) return rc;
    if (policy && dm_spec_schema_change(policy) < 0) {
        char list[200];
        join_list(dm_spec_schema_changes, list, sizeof(list));
        return fail(v, DM_ERR_CONFIG_RANGE, "spec.schema_change", "unknown policy '%s'; one of: %s",
                    policy, list);
    }
    if ((rc = check_alerts(v, "Pipeline", spec))) return rc;
    const char *start = NULL;
    if ((rc = need_string(v, spec, "start", "spec", false, &start))) return rc;
    if (start && strcmp(start, "earliest") && strcmp(start, "latest"))
        return fail(v, DM_ERR_CONFIG_RANGE, "spec.start",
                    "unknown start '%s'; one of: earliest, latest", start);
    if ((rc = need_duration(v, spec, "idle_timeout", "spec", false))) return rc;
    const json_t *state = json_object_get(spec, "state");
    if (state && (rc = check_state(v, state))) return rc;
    const json_t *from = json_object_get(spec, "from");
    const json_t *sql = json_object_get(spec, "sql");
    if (sql) {
        /* A pipeline in SQL: the query stands for from and steps. */
        if (from || json_object_get(spec, "steps"))
            return fail(v, DM_ERR_CONFIG, from ? "spec.from" : "spec.steps",
                        "spec.sql stands for from and steps: give one or the other");
        if (!json_is_string(sql))
            return fail(v, DM_ERR_CONFIG_TYPE, "spec.sql", "expected a query (SELECT …)");
        dm_error_t e = {0};
        json_t *out = NULL;
        rc = dm_sql_compile(json_string_value(sql), NULL, false, NULL, &out, &e);
        json_decref(out);
        if (rc) return fail(v, rc, "spec.sql", "%s", e.message);
    } else if (!from) {
        return fail(v, DM_ERR_CONFIG_MISSING, "spec.from", "required key 'from' is missing");
    } else if (json_is_string(from)) {
        if ((rc = need_name(v, json_string_value(from), "spec.from"))) return rc;
    } else {
        if ((rc = need_string_list(v, from, "spec.from", true))) return rc;
        size_t i;
        json_t *it;
        json_array_foreach(from, i, it)
        {
            char p[64];
            snprintf(p, sizeof(p), "spec.from[%zu]", i);
            if ((rc = need_name(v, json_string_value(it), p))) return rc;
        }
    }
    const json_t *steps = json_object_get(spec, "steps");
    if (steps) {
        if (!json_is_array(steps))
            return fail(v, DM_ERR_CONFIG_TYPE, "spec.steps", "expected a list, got %s",
                        dm_config_json_kind(steps));
        size_t i;
        json_t *step;
        json_array_foreach(steps, i, step) if ((rc = check_step(v, step, i))) return rc;
    }
    const json_t *to = json_object_get(spec, "to");
    if (!to) return fail(v, DM_ERR_CONFIG_MISSING, "spec.to", "required key 'to' is missing");
    if (!json_is_array(to) || !json_array_size(to))
        return fail(v, DM_ERR_CONFIG_TYPE, "spec.to", "expected a non-empty list of outputs");
    size_t i;
    json_t *out;
    json_array_foreach(to, i, out)
    {
        char p[64];
        snprintf(p, sizeof(p), "spec.to[%zu]", i);
        static const char *const out_keys[] = {"source", "sink", NULL};
        if ((rc = check_keys(v, out, p, out_keys))) return rc;
        if (json_object_size(out) != 1)
            return fail(v, DM_ERR_CONFIG, p,
                        "each output is either `source: NAME` or `sink: {type: ...}`");
        const json_t *src = json_object_get(out, "source");
        char q[96];
        if (src) {
            snprintf(q, sizeof(q), "%s.source", p);
            if (!json_is_string(src))
                return fail(v, DM_ERR_CONFIG_TYPE, q, "expected a source name, got %s",
                            dm_config_json_kind(src));
            if ((rc = need_name(v, json_string_value(src), q))) return rc;
            continue;
        }
        const json_t *sink = json_object_get(out, "sink");
        snprintf(q, sizeof(q), "%s.sink", p);
        if (json_is_string(sink)) {
            if ((rc = need_name(v, json_string_value(sink), q))) return rc;
            continue;
        }
        if ((rc = check_sink_settings(v, sink, q))) return rc;
    }
    return DM_OK;
}

static dm_err_t check_processor(vctx_t *v, const json_t *spec)
{
    static const char *const keys[] = {"library", "symbol", "config", NULL};
    dm_err_t rc = check_keys(v, spec, "spec", keys);
    if (rc) return rc;
    if ((rc = need_string(v, spec, "library", "spec", true, NULL))) return rc;
    if ((rc = need_string(v, spec, "symbol", "spec", false, NULL))) return rc;
    const json_t *config = json_object_get(spec, "config");
    if (config && !json_is_object(config))
        return fail(v, DM_ERR_CONFIG_TYPE, "spec.config", "expected a mapping, got %s",
                    dm_config_json_kind(config));
    return DM_OK;
}

static dm_err_t check_metadata(vctx_t *v, const json_t *md, const char **name)
{
    static const char *const keys[] = {"name", "owner", "description", "labels", NULL};
    if (!md)
        return fail(v, DM_ERR_CONFIG_MISSING, "metadata", "required key 'metadata' is missing");
    dm_err_t rc = check_keys(v, md, "metadata", keys);
    if (rc) return rc;
    if ((rc = need_string(v, md, "name", "metadata", true, name))) return rc;
    if ((rc = need_name(v, *name, "metadata.name"))) return rc;
    if ((rc = need_string(v, md, "owner", "metadata", false, NULL))) return rc;
    if ((rc = need_string(v, md, "description", "metadata", false, NULL))) return rc;
    const json_t *labels = json_object_get(md, "labels");
    if (!labels) return DM_OK;
    if (!json_is_object(labels))
        return fail(v, DM_ERR_CONFIG_TYPE, "metadata.labels", "expected a mapping, got %s",
                    dm_config_json_kind(labels));
    const char *k;
    json_t *val;
    json_object_foreach((json_t *)labels, k, val)
    {
        char p[512];
        snprintf(p, sizeof(p), "metadata.labels.%s", k);
        /* Booleans too: `sensitive: true` (control/auth.h) reads as YAML writes it. */
        if (!json_is_string(val) && !json_is_boolean(val))
            return fail(v, DM_ERR_CONFIG_TYPE, p, "label values are strings or booleans, got %s",
                        dm_config_json_kind(val));
    }
    return DM_OK;
}

dm_err_t dm_spec_validate(const dm_spec_doc_t *doc, dm_spec_t *out, dm_error_t *err)
{
    vctx_t v = {doc, err};
    memset(out, 0, sizeof(*out));
    const json_t *root = doc->root;
    /* "status" is what `get -o yaml` shows; applying such output again works. */
    static const char *const top[] = {"kind", "metadata", "spec", "status", NULL};
    dm_err_t rc = check_keys(&v, root, "", top);
    if (rc) return rc;
    const char *kind;
    if ((rc = need_string(&v, root, "kind", "", true, &kind))) return rc;
    int k = -1;
    for (int i = 0; i < DM_KIND_COUNT; i++)
        if (!strcmp(kind, kind_names[i])) k = i;
    if (k < 0)
        return fail(&v, DM_ERR_CONFIG_RANGE, "kind", "'%s' is not one of: %s", kind,
                    "Source, Pipeline, Processor, Sink");
    const char *name;
    if ((rc = check_metadata(&v, json_object_get(root, "metadata"), &name))) return rc;
    const json_t *spec = json_object_get(root, "spec");
    if (!spec) return fail(&v, DM_ERR_CONFIG_MISSING, "spec", "required key 'spec' is missing");
    switch ((dm_kind_t)k) {
    case DM_KIND_SOURCE: rc = check_source(&v, spec); break;
    case DM_KIND_PIPELINE: rc = check_pipeline(&v, spec); break;
    case DM_KIND_PROCESSOR: rc = check_processor(&v, spec); break;
    case DM_KIND_SINK: rc = check_sink_settings(&v, spec, "spec"); break;
    case DM_KIND_COUNT: break;
    }
    if (rc) return rc;
    out->kind = (dm_kind_t)k;
    out->doc = json_deep_copy(root);
    json_object_del(out->doc, "status");
    out->name = json_string_value(json_object_get(json_object_get(out->doc, "metadata"), "name"));
    return DM_OK;
}

void dm_spec_clear(dm_spec_t *spec)
{
    json_decref(spec->doc);
    memset(spec, 0, sizeof(*spec));
}

const char *dm_spec_name(const json_t *doc)
{
    return json_string_value(json_object_get(json_object_get(doc, "metadata"), "name"));
}

static json_t *inputs_of_expanded(const json_t *doc);

json_t *dm_spec_pipeline_expand(const json_t *doc)
{
    /* most pipelines hold no SQL: the document itself, not a copy */
    const json_t *sp = json_object_get(doc, "spec");
    bool has_sql = json_object_get(sp, "sql") != NULL;
    for (size_t i = 0; !has_sql && i < json_array_size(json_object_get(sp, "steps")); i++)
        has_sql = json_object_get(json_array_get(json_object_get(sp, "steps"), i), "sql") != NULL;
    if (!has_sql) return json_incref((json_t *)doc);
    json_t *x = json_deep_copy(doc);
    json_t *spec = json_object_get(x, "spec");
    const json_t *sql = json_object_get(spec, "sql");
    if (json_is_string(sql)) {
        json_t *out = NULL;
        if (!dm_sql_compile(json_string_value(sql), NULL, false, NULL, &out, NULL)) {
            json_object_set(spec, "from", json_object_get(out, "from"));
            json_object_set(spec, "steps", json_object_get(out, "steps"));
            json_object_del(spec, "sql");
        }
        json_decref(out);
    }
    json_t *steps = json_object_get(spec, "steps");
    for (size_t i = 0; i < json_array_size(steps);) {
        const json_t *q = json_object_get(json_array_get(steps, i), "sql");
        json_t *out = NULL;
        if (!json_is_string(q) ||
            dm_sql_compile(json_string_value(q), NULL, true, NULL, &out, NULL)) {
            i++;
            continue;
        }
        json_array_remove(steps, i);
        size_t k;
        json_t *st;
        json_array_foreach(json_object_get(out, "steps"), k, st) json_array_insert(steps, i++, st);
        json_decref(out);
    }
    return x;
}

json_t *dm_spec_pipeline_inputs(const json_t *doc)
{
    const json_t *sql = json_object_get(json_object_get(doc, "spec"), "sql");
    if (json_is_string(sql)) {
        json_t *x = dm_spec_pipeline_expand(doc);
        json_t *in = inputs_of_expanded(x);
        json_decref(x);
        return in;
    }
    return inputs_of_expanded(doc);
}

static json_t *inputs_of_expanded(const json_t *doc)
{
    const json_t *from = json_object_get(json_object_get(doc, "spec"), "from");
    if (json_is_string(from)) return json_pack("[O]", from);
    return json_is_array(from) ? json_deep_copy(from) : json_array();
}

json_t *dm_spec_pipeline_outputs(const json_t *doc)
{
    json_t *names = json_array();
    const json_t *to = json_object_get(json_object_get(doc, "spec"), "to");
    size_t i;
    json_t *out;
    json_array_foreach(to, i, out)
    {
        const json_t *src = json_object_get(out, "source");
        if (json_is_string(src)) json_array_append(names, (json_t *)src);
    }
    /* A route step publishes each of its named outputs as a derived source. */
    const json_t *step;
    json_array_foreach(json_object_get(json_object_get(doc, "spec"), "steps"), i, step)
    {
        const char *name;
        json_t *e;
        json_object_foreach(json_object_get(json_object_get(step, "route"), "outputs"), name, e)
            json_array_append_new(names, json_string(name));
    }
    return names;
}

/* Whether array a holds the string s. */
static bool names_have(const json_t *a, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(a, i,
                       v) if (json_is_string(v) && !strcmp(json_string_value(v), s)) return true;
    return false;
}

json_t *dm_spec_pipeline_reads(const json_t *given)
{
    json_t *doc = dm_spec_pipeline_expand(given);
    json_t *names = dm_spec_pipeline_inputs(doc);
    const json_t *steps = json_object_get(json_object_get(doc, "spec"), "steps");
    size_t i;
    json_t *step;
    json_array_foreach(steps, i, step)
    {
        static const char *const with_steps[] = {"enrich", "join"};
        for (size_t k = 0; k < 2; k++) {
            const json_t *with = json_object_get(json_object_get(step, with_steps[k]), "with");
            if (json_is_string(with) && !names_have(names, json_string_value(with)))
                json_array_append(names, (json_t *)with);
        }
    }
    json_decref(doc);
    return names;
}

bool dm_spec_doc_equal(const json_t *a, const json_t *b)
{
    if (a == b) return true;
    size_t na = 0, nb = 0;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)a, k, v)
    {
        if (!strcmp(k, "status")) continue;
        na++;
        if (!json_equal(v, json_object_get(b, k))) return false;
    }
    json_object_foreach((json_t *)b, k, v) nb += strcmp(k, "status") != 0;
    return na == nb;
}
