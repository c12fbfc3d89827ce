/* control/plan_json.c — a plan as JSON (what workers get) and as text for
 * people (`datamesh explain`). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/plan.h"
#include "control/spec.h"
#include "core/buf.h"

/* ---- to JSON --------------------------------------------------------------------------- */

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *strv_json(char *const *v)
{
    if (!v) return json_null();
    json_t *a = json_array();
    for (size_t i = 0; v[i]; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

static json_t *input_json(const dm_plan_input_t *in)
{
    if (!in->topic) return json_null();
    json_t *j = json_pack("{s:s, s:I, s:i}", "topic", in->topic, "schema_id",
                          (json_int_t)in->schema_id, "partitions", (int)in->partitions);
    if (in->newest_id && in->newest_id != in->schema_id)
        json_object_set_new(j, "newest_id", json_integer(in->newest_id));
    return j;
}

static json_t *stage_json(const dm_plan_stage_t *s)
{
    json_t *more = json_array(), *steps = json_array(), *extra = json_array();
    for (size_t i = 0; i < s->n_more; i++)
        json_array_append_new(more, input_json(&s->more[i]));
    for (size_t i = 0; i < s->n_steps; i++)
        json_array_append_new(steps,
                              json_pack("{s:i, s:s, s:O, s:o}", "index", s->steps[i].index, "kind",
                                        s->steps[i].kind, "config", s->steps[i].config, "reads",
                                        strv_json(s->steps[i].reads)));
    for (size_t i = 0; i < s->n_extra; i++)
        json_array_append_new(extra, json_string(s->extra[i]));
    return json_pack("{s:s, s:s, s:o, s:o, s:o, s:o, s:s, s:I, s:s, s:o, s:o, s:o, s:i, s:b, s:i}",
                     "name", s->name, "group", s->group, "input", input_json(&s->input), "more",
                     more, "other", input_json(&s->other), "steps", steps, "output", s->output,
                     "output_schema_id", (json_int_t)s->output_schema_id, "output_schema",
                     s->output_schema, "extra", extra, "state_topic", str_or_null(s->state_topic),
                     "event_time", str_or_null(s->event_time), "watermark_producers",
                     (int)s->watermark_producers, "writes_rekey", s->writes_rekey, "producer_base",
                     (int)s->producer_base);
}

json_t *dm_plan_to_json(const dm_pipeline_plan_t *plan)
{
    json_t *stages = json_array(), *tables = json_array(), *topics = json_array(),
           *sinks = json_array();
    for (size_t i = 0; i < plan->n_stages; i++)
        json_array_append_new(stages, stage_json(&plan->stages[i]));
    for (size_t i = 0; i < plan->n_tables; i++) {
        const dm_plan_table_t *t = &plan->tables[i];
        json_array_append_new(tables, json_pack("{s:s, s:s, s:I, s:i}", "source", t->source, "key",
                                                t->key, "schema_id", (json_int_t)t->schema_id,
                                                "partitions", (int)t->partitions));
    }
    for (size_t i = 0; i < plan->n_topics; i++) {
        const dm_plan_topic_t *t = &plan->topics[i];
        json_array_append_new(topics, json_pack("{s:s, s:i, s:b, s:o}", "name", t->name,
                                                "partitions", (int)t->partitions, "compact",
                                                t->compact, "subject", str_or_null(t->subject)));
    }
    for (size_t i = 0; i < plan->n_sinks; i++) {
        const dm_plan_sink_t *k = &plan->sinks[i];
        json_array_append_new(sinks, json_pack("{s:s, s:o, s:s, s:O, s:o}", "name", k->name, "type",
                                               str_or_null(k->type), "group", k->group, "settings",
                                               k->settings, "key", strv_json(k->key)));
    }
    return json_pack(
        "{s:s, s:s, s:o, s:s, s:I, s:I, s:I, s:s, s:b, s:o, s:o, s:o, s:o}", "pipeline", plan->name,
        "dead_letter", plan->dead_letter, "replay", str_or_null(plan->replay), "output",
        plan->output, "output_schema_id", (json_int_t)plan->output_schema_id, "idle_timeout_ms",
        (json_int_t)plan->idle_timeout_ms, "state_spill_bytes", (json_int_t)plan->state_spill_bytes,
        "schema_change", dm_spec_schema_changes[plan->schema_change], "start_latest",
        plan->start_latest, "stages", stages, "tables", tables, "topics", topics, "sinks", sinks);
}

/* ---- from JSON --------------------------------------------------------------------------- */

typedef struct reader {
    dm_error_t *err;
    dm_err_t rc;
} reader_t;

/* A required string member (copied); sets the error naming path.name. */
static char *get_str(reader_t *r, const json_t *o, const char *path, const char *name,
                     bool optional)
{
    const json_t *v = json_object_get(o, name);
    if (json_is_string(v)) return strdup(json_string_value(v));
    if (optional && (!v || json_is_null(v))) return NULL;
    if (!r->rc)
        r->rc = dm_error_set(r->err, DM_ERR_INVALID, "plan: %s.%s must be a string", path, name);
    return NULL;
}

static int64_t get_int(reader_t *r, const json_t *o, const char *path, const char *name)
{
    const json_t *v = json_object_get(o, name);
    if (json_is_integer(v)) return json_integer_value(v);
    if (!r->rc)
        r->rc = dm_error_set(r->err, DM_ERR_INVALID, "plan: %s.%s must be an integer", path, name);
    return 0;
}

static const json_t *get_array(reader_t *r, const json_t *o, const char *path, const char *name)
{
    const json_t *v = json_object_get(o, name);
    if (json_is_array(v)) return v;
    if (!r->rc)
        r->rc = dm_error_set(r->err, DM_ERR_INVALID, "plan: %s.%s must be an array", path, name);
    return NULL;
}

static char **get_strv(reader_t *r, const json_t *o, const char *path, const char *name)
{
    const json_t *v = json_object_get(o, name);
    if (!v || json_is_null(v)) return NULL;
    if (!json_is_array(v)) {
        if (!r->rc)
            r->rc = dm_error_set(r->err, DM_ERR_INVALID, "plan: %s.%s must be a list", path, name);
        return NULL;
    }
    char **out = calloc(json_array_size(v) + 1, sizeof(char *));
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x)
    {
        if (!json_is_string(x) && !r->rc)
            r->rc = dm_error_set(r->err, DM_ERR_INVALID, "plan: %s.%s[%zu] must be a string", path,
                                 name, i);
        if (out) out[i] = strdup(json_is_string(x) ? json_string_value(x) : "");
    }
    return out;
}

static void get_input(reader_t *r, const json_t *v, const char *path, dm_plan_input_t *in)
{
    if (!v || json_is_null(v)) return;
    in->topic = get_str(r, v, path, "topic", false);
    in->schema_id = get_int(r, v, path, "schema_id");
    in->partitions = (int32_t)get_int(r, v, path, "partitions");
    if (json_object_get(v, "newest_id")) in->newest_id = get_int(r, v, path, "newest_id");
    if (!r->rc && in->partitions <= 0)
        r->rc = dm_error_set(r->err, DM_ERR_INVALID, "plan: %s.partitions must be positive", path);
}

static void get_stage(reader_t *r, const json_t *j, size_t idx, dm_plan_stage_t *s)
{
    char path[64], sub[96];
    snprintf(path, sizeof(path), "stages[%zu]", idx);
    s->name = get_str(r, j, path, "name", false);
    s->group = get_str(r, j, path, "group", false);
    snprintf(sub, sizeof(sub), "%s.input", path);
    const json_t *in = json_object_get(j, "input");
    if (!json_is_object(in) && !r->rc)
        r->rc = dm_error_set(r->err, DM_ERR_INVALID, "plan: %s must be an object", sub);
    get_input(r, in, sub, &s->input);
    const json_t *more = get_array(r, j, path, "more");
    s->more = calloc(json_array_size(more) + 1, sizeof(*s->more));
    for (size_t i = 0; s->more && i < json_array_size(more); i++, s->n_more++) {
        snprintf(sub, sizeof(sub), "%s.more[%zu]", path, i);
        get_input(r, json_array_get(more, i), sub, &s->more[i]);
    }
    snprintf(sub, sizeof(sub), "%s.other", path);
    get_input(r, json_object_get(j, "other"), sub, &s->other);
    const json_t *steps = get_array(r, j, path, "steps");
    s->steps = calloc(json_array_size(steps) + 1, sizeof(*s->steps));
    for (size_t i = 0; s->steps && i < json_array_size(steps); i++, s->n_steps++) {
        const json_t *x = json_array_get(steps, i);
        snprintf(sub, sizeof(sub), "%s.steps[%zu]", path, i);
        dm_plan_step_t *st = &s->steps[i];
        st->index = (int)get_int(r, x, sub, "index");
        st->kind = get_str(r, x, sub, "kind", false);
        st->config = json_incref(json_object_get(x, "config"));
        st->reads = get_strv(r, x, sub, "reads");
        if (!r->rc && st->kind && !dm_plan_proc_find(st->kind))
            r->rc =
                dm_error_set(r->err, DM_ERR_UNSUPPORTED,
                             "plan: %s: step '%s' is not available in this version", sub, st->kind);
    }
    s->output = get_str(r, j, path, "output", false);
    s->output_schema_id = get_int(r, j, path, "output_schema_id");
    s->output_schema = get_str(r, j, path, "output_schema", true);
    char **extra = get_strv(r, j, path, "extra");
    for (size_t i = 0; extra && extra[i]; i++)
        s->n_extra++;
    s->extra = extra;
    s->state_topic = get_str(r, j, path, "state_topic", true);
    s->event_time = get_str(r, j, path, "event_time", true);
    s->watermark_producers = (int32_t)json_integer_value(json_object_get(j, "watermark_producers"));
    s->writes_rekey = json_is_true(json_object_get(j, "writes_rekey"));
    s->producer_base = (int32_t)json_integer_value(json_object_get(j, "producer_base"));
}

dm_err_t dm_plan_from_json(const json_t *j, dm_pipeline_plan_t **out, dm_error_t *err)
{
    *out = NULL;
    if (!json_is_object(j)) return dm_error_set(err, DM_ERR_INVALID, "plan: not a JSON object");
    dm_pipeline_plan_t *plan = calloc(1, sizeof(*plan));
    if (!plan) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    reader_t r = {err, DM_OK};
    plan->name = get_str(&r, j, "plan", "pipeline", false);
    plan->dead_letter = get_str(&r, j, "plan", "dead_letter", false);
    plan->replay = get_str(&r, j, "plan", "replay", true);
    plan->output = get_str(&r, j, "plan", "output", false);
    plan->output_schema_id = get_int(&r, j, "plan", "output_schema_id");
    plan->idle_timeout_ms = get_int(&r, j, "plan", "idle_timeout_ms");
    plan->state_spill_bytes = get_int(&r, j, "plan", "state_spill_bytes");
    char *policy = get_str(&r, j, "plan", "schema_change", true);
    int pi = dm_spec_schema_change(policy);
    if (pi < 0 && !r.rc)
        r.rc = dm_error_set(err, DM_ERR_INVALID, "plan: schema_change '%s' is no policy", policy);
    plan->schema_change = pi < 0 ? DM_SCHEMA_CHANGE_LENIENT : (dm_plan_schema_change_t)pi;
    free(policy);
    plan->start_latest = json_is_true(json_object_get(j, "start_latest"));
    const json_t *stages = get_array(&r, j, "plan", "stages");
    if (!r.rc && !json_array_size(stages))
        r.rc = dm_error_set(err, DM_ERR_INVALID, "plan: stages is empty");
    plan->stages = calloc(json_array_size(stages) + 1, sizeof(*plan->stages));
    for (size_t i = 0; plan->stages && i < json_array_size(stages); i++, plan->n_stages++)
        get_stage(&r, json_array_get(stages, i), i, &plan->stages[i]);
    const json_t *tables = get_array(&r, j, "plan", "tables");
    plan->tables = calloc(json_array_size(tables) + 1, sizeof(*plan->tables));
    for (size_t i = 0; plan->tables && i < json_array_size(tables); i++, plan->n_tables++) {
        const json_t *x = json_array_get(tables, i);
        char path[64];
        snprintf(path, sizeof(path), "tables[%zu]", i);
        dm_plan_table_t *t = &plan->tables[i];
        t->source = get_str(&r, x, path, "source", false);
        t->key = get_str(&r, x, path, "key", false);
        t->schema_id = get_int(&r, x, path, "schema_id");
        t->partitions = (int32_t)get_int(&r, x, path, "partitions");
    }
    const json_t *topics = get_array(&r, j, "plan", "topics");
    plan->topics = calloc(json_array_size(topics) + 1, sizeof(*plan->topics));
    for (size_t i = 0; plan->topics && i < json_array_size(topics); i++, plan->n_topics++) {
        const json_t *x = json_array_get(topics, i);
        char path[64];
        snprintf(path, sizeof(path), "topics[%zu]", i);
        dm_plan_topic_t *t = &plan->topics[i];
        t->name = get_str(&r, x, path, "name", false);
        t->partitions = (int32_t)get_int(&r, x, path, "partitions");
        t->compact = json_is_true(json_object_get(x, "compact"));
        t->subject = get_str(&r, x, path, "subject", true);
    }
    const json_t *sinks = get_array(&r, j, "plan", "sinks");
    plan->sinks = calloc(json_array_size(sinks) + 1, sizeof(*plan->sinks));
    for (size_t i = 0; plan->sinks && i < json_array_size(sinks); i++, plan->n_sinks++) {
        const json_t *x = json_array_get(sinks, i);
        char path[64];
        snprintf(path, sizeof(path), "sinks[%zu]", i);
        dm_plan_sink_t *k = &plan->sinks[i];
        k->name = get_str(&r, x, path, "name", false);
        k->type = get_str(&r, x, path, "type", true);
        k->group = get_str(&r, x, path, "group", false);
        k->settings = json_incref(json_object_get(x, "settings"));
        k->key = get_strv(&r, x, path, "key");
    }
    if (!r.rc && (!plan->stages || !plan->tables || !plan->topics || !plan->sinks))
        r.rc = dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    if (r.rc) {
        dm_plan_free(plan);
        return r.rc;
    }
    *out = plan;
    return DM_OK;
}

/* ---- explain ------------------------------------------------------------------------------ */

static void put(dm_buf_t *b, const char *f, ...) __attribute__((format(printf, 2, 3)));

static void put(dm_buf_t *b, const char *f, ...)
{
    char line[2048];
    va_list ap;
    va_start(ap, f);
    int n = vsnprintf(line, sizeof(line), f, ap);
    va_end(ap);
    if (n > 0) dm_buf_append(b, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

/* A schema id, or "new" where a dry run would register a new version. */
static const char *id_text(int64_t id, char *buf, size_t cap)
{
    if (id <= 0) return "new";
    snprintf(buf, cap, "%lld", (long long)id);
    return buf;
}

static void put_input(dm_buf_t *b, const char *what, const dm_plan_input_t *in)
{
    char id[24];
    put(b, "    %-7s %s (%d partition%s, schema id %s)\n", what, in->topic, (int)in->partitions,
        in->partitions == 1 ? "" : "s", id_text(in->schema_id, id, sizeof(id)));
}

char *dm_plan_explain(const dm_pipeline_plan_t *plan)
{
    dm_buf_t b = {0};
    put(&b, "Pipeline %s: %zu stage%s\n", plan->name, plan->n_stages,
        plan->n_stages == 1 ? "" : "s");
    for (size_t i = 0; i < plan->n_stages; i++) {
        const dm_plan_stage_t *s = &plan->stages[i];
        put(&b, "\nstage %s: %d task%s (one per partition of %s), group %s\n", s->name,
            (int)s->input.partitions, s->input.partitions == 1 ? "" : "s", s->input.topic,
            s->group);
        put_input(&b, "reads", &s->input);
        for (size_t k = 0; k < s->n_more; k++)
            put_input(&b, "union", &s->more[k]);
        if (s->other.topic) put_input(&b, "joins", &s->other);
        if (s->event_time) put(&b, "    event time: %s\n", s->event_time);
        if (s->watermark_producers)
            put(&b, "    watermark: the smallest of %d upstream tasks'\n",
                (int)s->watermark_producers);
        put(&b, "    fused chain:\n");
        for (size_t k = 0; k < s->n_steps; k++) {
            const dm_plan_step_t *st = &s->steps[k];
            char *conf = json_dumps(st->config, JSON_COMPACT);
            if (st->index >= 0)
                put(&b, "      steps[%d] %s %s\n", st->index, st->kind, conf ? conf : "");
            else
                put(&b, "      re-key %s\n", conf ? conf : "");
            free(conf);
            put(&b, "        reads: ");
            if (!st->reads) put(&b, "every field\n");
            for (size_t f = 0; st->reads && st->reads[f]; f++)
                put(&b, "%s%s", f ? ", " : "", st->reads[f]);
            if (st->reads) put(&b, "%s\n", st->reads[0] ? "" : "nothing");
        }
        if (!s->n_steps) put(&b, "      (none: records pass as they are)\n");
        if (s->state_topic) put(&b, "    state: %s (compacted)\n", s->state_topic);
        char buf[24];
        const char *id = id_text(s->output_schema_id, buf, sizeof(buf));
        put(&b, "    writes %s%s, schema id %s\n", s->output, s->writes_rekey ? " (re-keyed)" : "",
            id);
        for (size_t k = 0; k < s->n_extra; k++)
            put(&b, "    route output %s, schema id %s\n", s->extra[k], id);
    }
    if (plan->n_tables) put(&b, "\ntables (enrich):\n");
    for (size_t i = 0; i < plan->n_tables; i++)
        put(&b, "    %s by %s (schema id %lld, %d partitions)\n", plan->tables[i].source,
            plan->tables[i].key, (long long)plan->tables[i].schema_id,
            (int)plan->tables[i].partitions);
    put(&b, "\ntopics:\n");
    for (size_t i = 0; i < plan->n_topics; i++)
        put(&b, "    %s: %d partition%s%s\n", plan->topics[i].name, (int)plan->topics[i].partitions,
            plan->topics[i].partitions == 1 ? "" : "s",
            plan->topics[i].compact ? ", compacted" : "");
    if (plan->n_sinks) put(&b, "\nsinks (reading %s):\n", plan->output);
    for (size_t i = 0; i < plan->n_sinks; i++)
        put(&b, "    %s: %s, group %s\n", plan->sinks[i].name,
            plan->sinks[i].type ? plan->sinks[i].type : "?", plan->sinks[i].group);
    const dm_plan_stage_t *last = &plan->stages[plan->n_stages - 1];
    char oid[24];
    if (last->output_schema)
        put(&b, "\noutput schema (id %s):\n    %s\n",
            id_text(plan->output_schema_id, oid, sizeof(oid)), last->output_schema);
    dm_buf_append(&b, "", 1);
    return (char *)b.data;
}
