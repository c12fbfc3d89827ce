/* control/plan.c — compiling a Pipeline document into a plan (control/plan.h).
 * The plan's JSON form and explain are in plan_json.c, running one in
 * plan_task.c. */
#include "control/plan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/evolve.h"
#include "control/spec.h"
#include "core/config.h"
#include "engine/schema_out.h"
#include "engine/table.h"
#include "sql/sql.h"

/* ---- small owned strings and lists ------------------------------------------------ */

static char *dup(const char *s)
{
    return s ? strdup(s) : NULL;
}

static char *fmt(const char *f, const char *a, const char *b)
{
    char buf[600];
    snprintf(buf, sizeof(buf), f, a, b);
    return strdup(buf);
}

static void free_strv(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

/* A NULL-terminated copy of a JSON array of strings (NULL when it is not one). */
static char **strv_of(const json_t *a)
{
    if (!json_is_array(a)) return NULL;
    char **v = calloc(json_array_size(a) + 1, sizeof(char *));
    size_t i;
    json_t *x;
    json_array_foreach(a, i, x) v[i] = strdup(json_is_string(x) ? json_string_value(x) : "");
    return v;
}

static void free_input(dm_plan_input_t *in)
{
    free(in->topic);
}

static void free_stage(dm_plan_stage_t *s)
{
    free(s->name);
    free(s->group);
    free_input(&s->input);
    for (size_t i = 0; i < s->n_more; i++)
        free_input(&s->more[i]);
    free(s->more);
    free_input(&s->other);
    for (size_t i = 0; i < s->n_steps; i++) {
        free(s->steps[i].kind);
        json_decref(s->steps[i].config);
        free_strv(s->steps[i].reads);
    }
    free(s->steps);
    free(s->output);
    free(s->output_schema);
    for (size_t i = 0; i < s->n_extra; i++)
        free(s->extra[i]);
    free(s->extra);
    free(s->state_topic);
    free(s->event_time);
}

void dm_plan_free(dm_pipeline_plan_t *plan)
{
    if (!plan) return;
    free(plan->name);
    free(plan->dead_letter);
    free(plan->replay);
    free(plan->output);
    for (size_t i = 0; i < plan->n_stages; i++)
        free_stage(&plan->stages[i]);
    free(plan->stages);
    for (size_t i = 0; i < plan->n_tables; i++) {
        free(plan->tables[i].source);
        free(plan->tables[i].key);
    }
    free(plan->tables);
    for (size_t i = 0; i < plan->n_topics; i++) {
        free(plan->topics[i].name);
        free(plan->topics[i].subject);
    }
    free(plan->topics);
    for (size_t i = 0; i < plan->n_sinks; i++) {
        dm_plan_sink_t *k = &plan->sinks[i];
        free(k->name);
        free(k->type);
        free(k->group);
        json_decref(k->settings);
        free_strv(k->key);
    }
    free(plan->sinks);
    free(plan);
}

/* Grows an array of plan members by one zeroed element; NULL when out of memory. */
static void *push(void *arr, size_t *n, size_t size)
{
    void **a = arr;
    char *p = realloc(*a, (*n + 1) * size);
    if (!p) return NULL;
    memset(p + *n * size, 0, size);
    *a = p;
    return p + (*n)++ * size;
}

/* ---- compiling ---------------------------------------------------------------------- */

const dm_proc_ops_t *dm_plan_proc_find(const char *kind)
{
    if (kind && !strcmp(kind, "rekey")) return &dm_proc_rekey;
    return kind ? dm_proc_find(kind) : NULL;
}

typedef struct compiler compiler_t;
static dm_err_t add_step(compiler_t *c, dm_plan_stage_t *s, int index, const char *kind,
                         json_t *config);
static char **reads_of(const dm_proc_t *p);

struct compiler {
    const dm_plan_env_t *env;
    dm_pipeline_plan_t *plan;
    dm_table_t *tables[8];         /* for opening enrich steps (schemas only) */
    const dm_avro_node_t *ins[16]; /* the record schema each stage reads */
    dm_avro_schema_t *reader;      /* the pipeline's own reader of its first source, if parsed */
    int n_tables;
    dm_error_t *err;
};

/* The latest schema of a source and its partitions; DM_ERR_AGAIN while the
 * source has neither yet. */
static dm_err_t source_input(compiler_t *c, const char *source, dm_plan_input_t *in,
                             const dm_avro_schema_t **schema)
{
    char subject[300];
    snprintf(subject, sizeof(subject), "%s-value", source);
    dm_error_t e = {0};
    dm_err_t rc = c->env->latest(c->env->ctx, subject, &in->schema_id, schema, &e);
    if (rc == DM_ERR_NOT_FOUND)
        return dm_error_set(c->err, DM_ERR_AGAIN,
                            "waiting for source %s: it has no registered schema yet", source);
    if (rc) return dm_error_set(c->err, rc, "source %s: %s", source, e.message);
    in->partitions = c->env->partitions(c->env->ctx, source);
    if (in->partitions <= 0)
        return dm_error_set(c->err, DM_ERR_AGAIN,
                            "waiting for source %s: its topic does not exist yet", source);
    in->topic = strdup(source);
    return DM_OK;
}

/* The pipeline's own reader of its first source under lenient, freeze and
 * fail (control/evolve.h): kept under pipeline.NAME.input, registered through
 * the compatibility check (freeze and fail: at the first compile; lenient:
 * by the runtime before it restarts the pipeline on a new version, so a
 * pipeline that never met a change costs no subject). in and *schema hold the source's latest
 * version and get the reader. newest_id: under lenient the latest version's id (only later versions
 * are new), under freeze and fail the reader's. A dry run that would register a new reader keeps
 * the latest. */
static dm_err_t pipeline_reader(compiler_t *c, dm_plan_input_t *in, const dm_avro_schema_t **schema)
{
    in->newest_id = in->schema_id;
    if (c->plan->schema_change == DM_SCHEMA_CHANGE_EVOLVE) return DM_OK;
    char subject[300];
    dm_evolve_reader_subject(c->plan->name, subject, sizeof(subject));
    const dm_avro_schema_t *pinned = NULL;
    int64_t pid = 0;
    dm_error_t e = {0};
    dm_err_t rc = c->env->latest(c->env->ctx, subject, &pid, &pinned, &e);
    if (rc && rc != DM_ERR_NOT_FOUND) return dm_error_set(c->err, rc, "%s: %s", subject, e.message);
    if (pinned && c->plan->schema_change != DM_SCHEMA_CHANGE_LENIENT) {
        /* every later version is new to it, registered before this compile or not */
        in->schema_id = in->newest_id = pid;
        *schema = pinned;
        return DM_OK;
    }
    if (!pinned && c->plan->schema_change == DM_SCHEMA_CHANGE_LENIENT)
        return DM_OK; /* pinned by the runtime when a change first comes (runtime.c) */
    char *text = NULL;
    int dropped = 0;
    if ((rc = dm_evolve_lenient_reader((*schema)->json, pinned ? pinned->json : NULL, &text,
                                       &dropped, c->err)))
        return dm_error_prefix(c->err, "the reader schema of source %s", in->topic);
    int64_t id = 0;
    rc = c->env->register_schema(c->env->ctx, subject, text, &id, c->err);
    if (!rc && id > 0 && id != in->schema_id) {
        rc = dm_avro_schema_parse(text, strlen(text), &c->reader, c->err);
        if (!rc) {
            in->schema_id = id;
            *schema = c->reader;
            if (id > in->newest_id) in->newest_id = id;
        }
    }
    free(text);
    return rc;
}

static dm_table_t *compile_table(void *ctx, const char *source, dm_error_t *err)
{
    compiler_t *c = ctx;
    for (int i = 0; i < c->n_tables; i++)
        if (!strcmp(dm_table_name(c->tables[i]), source)) return c->tables[i];
    dm_error_set(err, DM_ERR_NOT_FOUND, "no table for source '%s'", source);
    return NULL;
}

/* An enrich step's table: the source's key, schema and partitions. */
static dm_err_t add_table(compiler_t *c, const char *source)
{
    for (size_t i = 0; i < c->plan->n_tables; i++)
        if (!strcmp(c->plan->tables[i].source, source)) return DM_OK;
    const json_t *doc = c->env->source_doc(c->env->ctx, source);
    const json_t *key = json_object_get(json_object_get(doc, "spec"), "key");
    if (!json_array_size(key))
        return dm_error_set(c->err, DM_ERR_INVALID,
                            "enrich with %s: the source has no key (spec.key) to look up by",
                            source);
    dm_plan_input_t in = {0};
    const dm_avro_schema_t *schema = NULL;
    dm_err_t rc = source_input(c, source, &in, &schema);
    if (rc) return rc;
    free(in.topic);
    const char *k = json_string_value(json_array_get(key, 0));
    if (c->n_tables == 8)
        return dm_error_set(c->err, DM_ERR_UNSUPPORTED,
                            "a pipeline enriches from 8 tables at most");
    if ((rc = dm_table_new(source, schema, k, &c->tables[c->n_tables], c->err))) return rc;
    c->n_tables++;
    dm_plan_table_t *t = push(&c->plan->tables, &c->plan->n_tables, sizeof(*t));
    if (!t) return dm_error_set(c->err, DM_ERR_NOMEM, "out of memory");
    *t = (dm_plan_table_t){strdup(source), strdup(k), in.schema_id, in.partitions};
    return DM_OK;
}

static dm_err_t add_topic(compiler_t *c, const char *name, int32_t partitions, bool compact,
                          bool subject)
{
    for (size_t i = 0; i < c->plan->n_topics; i++)
        if (!strcmp(c->plan->topics[i].name, name)) return DM_OK;
    dm_plan_topic_t *t = push(&c->plan->topics, &c->plan->n_topics, sizeof(*t));
    if (!t) return dm_error_set(c->err, DM_ERR_NOMEM, "out of memory");
    *t = (dm_plan_topic_t){strdup(name), partitions > 0 ? partitions : 1, compact,
                           subject ? fmt("%s-value", name, NULL) : NULL};
    return DM_OK;
}

/* The JSON text of a record schema: the source's own text when the chain
 * leaves the input's schema as it was. */
static char *schema_text(const dm_avro_node_t *node, const dm_avro_schema_t *source)
{
    if (source && node == source->root) return strdup(source->json);
    json_t *seen = json_object();
    json_t *j = dm_schema_type_json(node, seen);
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    json_decref(seen);
    return text;
}

/* Registers what stage s writes under its output's subject. */
static dm_err_t register_output(compiler_t *c, dm_plan_stage_t *s, const dm_avro_node_t *node,
                                const dm_avro_schema_t *source)
{
    s->output_schema = schema_text(node, source);
    if (!s->output_schema) return dm_error_set(c->err, DM_ERR_NOMEM, "out of memory");
    char subject[400];
    snprintf(subject, sizeof(subject), "%s-value", s->output);
    dm_err_t rc = c->env->register_schema(c->env->ctx, subject, s->output_schema,
                                          &s->output_schema_id, c->err);
    /* Route outputs carry the same records: the same schema and id. */
    for (size_t x = 0; !rc && x < s->n_extra; x++) {
        int64_t id = 0;
        snprintf(subject, sizeof(subject), "%s-value", s->extra[x]);
        rc = c->env->register_schema(c->env->ctx, subject, s->output_schema, &id, c->err);
        if (!rc && id != s->output_schema_id)
            rc = dm_error_set(c->err, DM_ERR_SCHEMA_INCOMPATIBLE,
                              "route output %s already has another schema (id %lld, the "
                              "pipeline writes id %lld)",
                              s->extra[x], (long long)id, (long long)s->output_schema_id);
    }
    return rc;
}

/* The expressions a stateful step keys its state by (new JSON array). */
static json_t *step_key(const char *kind, const json_t *conf)
{
    if (!strcmp(kind, "aggregate")) {
        const json_t *g = json_object_get(conf, "group_by");
        return json_is_array(g)    ? json_deep_copy(g)
               : json_is_string(g) ? json_pack("[O]", g)
                                   : json_array();
    }
    const char *field = !strcmp(kind, "join") ? "on" : "key";
    const json_t *k = json_object_get(conf, field);
    return json_is_string(k)  ? json_pack("[O]", k)
           : json_is_array(k) ? json_deep_copy(k)
                              : json_array();
}

/* Whether records partitioned by key (JSON array of field names) already
 * hold together every value of by (expressions): the same plain fields. */
static bool same_key(const json_t *key, const json_t *by)
{
    if (!json_is_array(key) || !json_array_size(by) || json_array_size(key) != json_array_size(by))
        return false;
    for (size_t i = 0; i < json_array_size(by); i++) {
        const char *b = json_string_value(json_array_get(by, i));
        const char *k = json_string_value(json_array_get(key, i));
        if (!b || !k || strcmp(b, k)) return false;
    }
    return true;
}

static dm_plan_stage_t *new_stage(compiler_t *c, const char *name, const char *group)
{
    dm_plan_stage_t *s = push(&c->plan->stages, &c->plan->n_stages, sizeof(*s));
    if (!s) return NULL;
    s->name = strdup(name);
    s->group = strdup(group);
    return s;
}

/* The internal re-key step by `by`, read against node (the fields it reads). */
static dm_err_t add_rekey(compiler_t *c, dm_plan_stage_t *s, const json_t *by,
                          const dm_avro_node_t *node)
{
    json_t *conf = json_pack("{s:O}", "by", by);
    dm_proc_t *p = NULL;
    dm_err_t rc = dm_proc_open(&dm_proc_rekey, NULL, conf, node, &p, c->err);
    if (!rc)
        rc = add_step(c, s, -1, "rekey", conf);
    else
        json_decref(conf);
    if (!rc) s->steps[s->n_steps - 1].reads = reads_of(p);
    dm_proc_close(p);
    return rc;
}

static dm_err_t add_step(compiler_t *c, dm_plan_stage_t *s, int index, const char *kind,
                         json_t *config)
{
    dm_plan_step_t *st = push(&s->steps, &s->n_steps, sizeof(*st));
    if (!st) {
        json_decref(config);
        return dm_error_set(c->err, DM_ERR_NOMEM, "out of memory");
    }
    *st = (dm_plan_step_t){index, strdup(kind), config, NULL};
    return DM_OK;
}

/* The fields a step reads, from the opened processor (NULL = all). */
static char **reads_of(const dm_proc_t *p)
{
    const char *const *paths = NULL;
    size_t n = p->ops->read_paths ? p->ops->read_paths(p, &paths) : 0;
    if (!p->ops->read_paths || !paths) return NULL;
    char **v = calloc(n + 1, sizeof(char *));
    for (size_t i = 0; v && i < n; i++)
        v[i] = strdup(paths[i]);
    return v;
}

/* A `processor` step's settings made complete from its Processor object:
 * the library and symbol, and the object's config with the step's laid over
 * it, so the plan runs anywhere without the catalog. */
static dm_err_t resolve_sdk_step(compiler_t *c, size_t i, json_t *conf)
{
    const char *name = json_string_value(json_object_get(conf, "name"));
    if (json_object_get(conf, "library") || json_object_get(conf, "symbol"))
        return dm_error_set(c->err, DM_ERR_CONFIG,
                            "spec.steps[%zu].processor: library and symbol come from the "
                            "Processor object, not the step",
                            i);
    const json_t *doc =
        name && c->env->processor_doc ? c->env->processor_doc(c->env->ctx, name) : NULL;
    if (!doc)
        return dm_error_set(c->err, DM_ERR_NOT_FOUND,
                            "spec.steps[%zu].processor.name: no Processor named %s (apply a "
                            "`kind: Processor` object first, or in the same request)",
                            i, name ? name : "(none)");
    const json_t *spec = json_object_get(doc, "spec");
    const json_t *defaults = json_object_get(spec, "config");
    json_t *merged = json_is_object(defaults) ? json_deep_copy(defaults) : json_object();
    const json_t *own = json_object_get(conf, "config");
    if (json_is_object(own)) json_object_update(merged, (json_t *)own);
    json_object_set_new(conf, "config", merged);
    json_object_set(conf, "library", json_object_get(spec, "library"));
    const json_t *sym = json_object_get(spec, "symbol");
    if (json_is_string(sym)) json_object_set(conf, "symbol", (json_t *)sym);
    return DM_OK;
}

/* The state topic of stage cur (made once). */
static dm_err_t stage_state_topic(compiler_t *c, size_t cur, int32_t tasks)
{
    dm_plan_stage_t *s = &c->plan->stages[cur];
    if (s->state_topic) return DM_OK;
    char st[400];
    if (cur == 0)
        snprintf(st, sizeof(st), "pipeline.%s.state", c->plan->name);
    else
        snprintf(st, sizeof(st), "pipeline.%s.state.%s", c->plan->name, s->name);
    s->state_topic = strdup(st);
    return add_topic(c, st, tasks, true, false);
}

/* Splits the chain before step index (a stateful step keyed by `by`): the
 * current stage re-keys into pipeline.NAME.rekey.S and a new stage reads it.
 * *cur, *node and *tasks move to the new stage. */
static dm_err_t split(compiler_t *c, size_t *cur, int index, const json_t *by,
                      const dm_avro_node_t *node, const dm_avro_schema_t *source, int32_t *tasks)
{
    dm_pipeline_plan_t *plan = c->plan;
    char topic[400], sname[64];
    snprintf(topic, sizeof(topic), "pipeline.%s.rekey.%d", plan->name, index);
    snprintf(sname, sizeof(sname), "rekey.%d", index);
    dm_plan_stage_t *s = &plan->stages[*cur];
    int32_t parts = s->input.partitions;
    for (size_t i = 0; i < s->n_more; i++)
        if (s->more[i].partitions > parts) parts = s->more[i].partitions;
    if (!json_array_size(by)) parts = 1; /* a global aggregate: one task sees everything */
    dm_err_t rc = add_rekey(c, s, by, node);
    if (rc) return rc;
    s->output = strdup(topic);
    s->writes_rekey = true;
    if ((rc = register_output(c, s, node, source))) return rc;
    if ((rc = add_topic(c, topic, parts, false, true))) return rc;
    int32_t producers = *tasks;
    int64_t id = s->output_schema_id;
    dm_plan_stage_t *n = new_stage(c, sname, topic);
    if (!n) return dm_error_set(c->err, DM_ERR_NOMEM, "out of memory");
    n->input = (dm_plan_input_t){strdup(topic), id, parts, 0};
    n->watermark_producers = producers;
    *cur = plan->n_stages - 1;
    if (*cur < 16) c->ins[*cur] = node;
    *tasks = parts;
    return DM_OK;
}

/* A join that is re-keyed: a side stage re-keys the other source by the
 * join's key into pipeline.NAME.rekey.S.with, which the joining stage reads. */
static dm_err_t split_join_side(compiler_t *c, size_t cur, int index, const char *with,
                                const json_t *by, const dm_avro_schema_t *with_schema,
                                const dm_plan_input_t *with_in)
{
    dm_pipeline_plan_t *plan = c->plan;
    char topic[400], sname[64];
    snprintf(topic, sizeof(topic), "pipeline.%s.rekey.%d.with", plan->name, index);
    snprintf(sname, sizeof(sname), "rekey.%d.with", index);
    int32_t parts = plan->stages[cur].input.partitions;
    dm_plan_stage_t *w = new_stage(c, sname, topic);
    if (!w) return dm_error_set(c->err, DM_ERR_NOMEM, "out of memory");
    w->input = (dm_plan_input_t){strdup(with), with_in->schema_id, with_in->partitions, 0};
    if (plan->n_stages - 1 < 16) c->ins[plan->n_stages - 1] = with_schema->root;
    dm_err_t rc = add_rekey(c, w, by, with_schema->root);
    if (rc) return rc;
    w->output = strdup(topic);
    w->writes_rekey = true;
    if ((rc = register_output(c, w, with_schema->root, with_schema))) return rc;
    if ((rc = add_topic(c, topic, parts, false, true))) return rc;
    dm_plan_stage_t *s = &plan->stages[cur];
    s->other = (dm_plan_input_t){strdup(topic), w->output_schema_id, parts, 0};
    /* the joining stage hears watermarks from both sides' writers, the other
     * side's numbered after the stream's */
    plan->stages[plan->n_stages - 1].producer_base = s->watermark_producers;
    s->watermark_producers += with_in->partitions;
    return DM_OK;
}

static dm_err_t compile_sinks(compiler_t *c, const json_t *spec, const json_t *key)
{
    size_t i, k = 0;
    json_t *o;
    json_array_foreach(json_object_get(spec, "to"), i, o)
    {
        const json_t *sink = json_object_get(o, "sink");
        if (!sink) continue;
        if (json_is_string(sink)) {
            const json_t *doc = c->env->sink_doc(c->env->ctx, json_string_value(sink));
            if (!doc)
                return dm_error_set(c->err, DM_ERR_NOT_FOUND, "spec.to[%zu]: no Sink named %s", i,
                                    json_string_value(sink));
            sink = json_object_get(doc, "spec");
        }
        dm_plan_sink_t *s = push(&c->plan->sinks, &c->plan->n_sinks, sizeof(*s));
        if (!s) return dm_error_set(c->err, DM_ERR_NOMEM, "out of memory");
        char name[400], group[400], idx[24];
        snprintf(idx, sizeof(idx), "%zu", k++);
        snprintf(name, sizeof(name), "%s/sink/%s", c->plan->name, idx);
        snprintf(group, sizeof(group), "sink.%s.%s", c->plan->name, idx);
        s->name = strdup(name);
        s->group = strdup(group);
        s->type = dup(json_string_value(json_object_get(sink, "type")));
        s->settings = json_deep_copy(sink);
        json_object_del(s->settings, "type");
        json_t *none = json_array();
        s->key = strv_of(json_is_array(key) ? key : none);
        json_decref(none);
    }
    return DM_OK;
}

/* The SQL catalog at compile time: a source's latest schema and its key. */
static dm_err_t sql_source(void *ctx, const char *name, const dm_avro_node_t **schema,
                           const json_t **key, dm_error_t *err)
{
    const dm_plan_env_t *env = ctx;
    char subject[300];
    snprintf(subject, sizeof(subject), "%s-value", name);
    const json_t *doc = env->source_doc(env->ctx, name);
    int64_t id = 0;
    const dm_avro_schema_t *s = NULL;
    dm_error_t e = {0};
    dm_err_t rc = env->latest(env->ctx, subject, &id, &s, &e);
    if (rc == DM_ERR_NOT_FOUND && doc)
        return dm_error_set(err, DM_ERR_AGAIN,
                            "waiting for source %s: it has no registered schema yet", name);
    if (rc == DM_ERR_NOT_FOUND) return dm_error_set(err, rc, "no source '%s'", name);
    if (rc) return dm_error_set(err, rc, "source %s: %s", name, e.message);
    *schema = s->root;
    *key = json_object_get(json_object_get(doc, "spec"), "key");
    return DM_OK;
}

/* Replaces the sql step at steps[i] by the steps it compiles to against the
 * chain's records there (node). */
static dm_err_t expand_sql_step(compiler_t *c, json_t *steps, size_t i, const dm_avro_node_t *node)
{
    const char *q = json_string_value(json_object_get(json_array_get(steps, i), "sql"));
    if (!q)
        return dm_error_set(c->err, DM_ERR_CONFIG_TYPE,
                            "spec.steps[%zu].sql: expected a query (SELECT … FROM input …)", i);
    dm_sql_catalog_t cat = {sql_source, (void *)c->env};
    json_t *out = NULL;
    dm_err_t rc = dm_sql_compile(q, &cat, true, node, &out, c->err);
    if (rc) return rc == DM_ERR_AGAIN ? rc : dm_error_prefix(c->err, "spec.steps[%zu].sql", i);
    json_array_remove(steps, i);
    size_t k;
    json_t *st;
    json_array_foreach(json_object_get(out, "steps"), k, st) json_array_insert(steps, i + k, st);
    json_decref(out);
    return DM_OK;
}

static dm_err_t compile(compiler_t *c, const json_t *doc)
{
    dm_pipeline_plan_t *plan = c->plan;
    const json_t *spec = json_object_get(doc, "spec");
    const char *name = plan->name;
    json_t *from = dm_spec_pipeline_inputs(doc);
    size_t n_from = json_array_size(from);
    dm_err_t rc = DM_OK;
    if (!n_from) rc = dm_error_set(c->err, DM_ERR_INVALID, "spec.from names no source");
    if (!rc && n_from > 16)
        rc = dm_error_set(c->err, DM_ERR_UNSUPPORTED, "a union reads at most 16 sources");
    char group[400];
    snprintf(group, sizeof(group), "pipeline.%s", name);
    dm_plan_stage_t *s0 = rc ? NULL : new_stage(c, "main", group);
    if (!rc && !s0) rc = dm_error_set(c->err, DM_ERR_NOMEM, "out of memory");
    const dm_avro_schema_t *in_schema = NULL;
    if (!rc)
        rc = source_input(c, json_string_value(json_array_get(from, 0)), &s0->input, &in_schema);
    if (!rc) rc = pipeline_reader(c, &s0->input, &in_schema);
    /* A union: every other source must read as the first (fields by name). */
    for (size_t k = 1; !rc && k < n_from; k++) {
        dm_plan_input_t *m = push(&s0->more, &s0->n_more, sizeof(*m));
        const dm_avro_schema_t *other = NULL;
        const char *src = json_string_value(json_array_get(from, k));
        rc = m ? source_input(c, src, m, &other)
               : dm_error_set(c->err, DM_ERR_NOMEM, "out of memory");
        dm_avro_schema_t *reader = NULL;
        if (!rc && (rc = dm_task_union_reader(in_schema, other, &reader, c->err)))
            dm_error_prefix(c->err, "spec.from[%zu]: source %s cannot be read as %s", k, src,
                            json_string_value(json_array_get(from, 0)));
        dm_avro_schema_free(reader);
    }
    if (rc) {
        json_decref(from);
        return rc;
    }
    int32_t in_parts = s0->input.partitions;
    const json_t *src_doc =
        c->env->source_doc(c->env->ctx, json_string_value(json_array_get(from, 0)));
    const json_t *src_key = json_object_get(json_object_get(src_doc, "spec"), "key");
    /* What the records are partitioned by as they flow: the source's key, for one source. */
    json_t *part_key = n_from == 1 && json_is_array(src_key) ? json_deep_copy(src_key) : NULL;
    const dm_avro_node_t *node = in_schema->root;
    const dm_avro_schema_t *same = in_schema;
    c->ins[0] = node; /* node is still this source's own schema */
    size_t cur = 0;
    int32_t tasks = in_parts;
    dm_proc_env_t penv = {compile_table, c, NULL};
    dm_proc_t *opened[64] = {0};
    size_t n_opened = 0;
    bool joined = false;
    /* sql steps are replaced by their steps as the chain reaches them */
    json_t *steps = json_is_array(json_object_get(spec, "steps"))
                        ? json_deep_copy(json_object_get(spec, "steps"))
                        : json_array();
    for (size_t i = 0; !rc && i < json_array_size(steps); i++) {
        while (!rc && i < json_array_size(steps) &&
               json_object_get(json_array_get(steps, i), "sql") &&
               json_object_size(json_array_get(steps, i)) == 1)
            rc = expand_sql_step(c, steps, i, node);
        if (rc || i >= json_array_size(steps)) break;
        const char *kind = NULL;
        const dm_proc_ops_t *ops = NULL;
        json_t *conf = dm_proc_step_config(json_array_get(steps, i), &kind, &ops, c->err);
        if (!conf) {
            rc = dm_error_prefix(c->err, "spec.steps[%zu]", i);
            break;
        }
        if (!strcmp(kind, "enrich") &&
            (rc = add_table(c, json_string_value(json_object_get(conf, "with"))))) {
            json_decref(conf);
            break;
        }
        if (ops == &dm_proc_sdk && (rc = resolve_sdk_step(c, i, conf))) {
            json_decref(conf);
            break;
        }
        const dm_avro_schema_t *other = NULL;
        dm_plan_input_t other_in = {0};
        const char *with = json_string_value(json_object_get(conf, "with"));
        if (ops->two_inputs && !joined && with) {
            if ((rc = source_input(c, with, &other_in, &other))) {
                json_decref(conf);
                break;
            }
        }
        if (ops->stateful) {
            json_t *by = step_key(kind, conf);
            bool two = ops->two_inputs && other;
            /* A join needs both sides partitioned alike, which two sources' keys
             * (their own schema ids in the key bytes) never are: re-key both. */
            bool need = tasks > 1 && (two || !same_key(part_key, by));
            if (need) {
                rc = split(c, &cur, (int)i, by, node, same, &tasks);
                if (!rc && two) rc = split_join_side(c, cur, (int)i, with, by, other, &other_in);
            } else if (two) {
                plan->stages[cur].other = other_in;
                other_in.topic = NULL;
            }
            json_decref(part_key);
            part_key = !strcmp(kind, "dedupe") ? json_incref(by) : NULL;
            json_decref(by);
            dm_plan_stage_t *s = &plan->stages[cur];
            if (rc) {
                free(other_in.topic);
                json_decref(conf);
                break;
            }
            rc = stage_state_topic(c, cur, tasks);
            /* Event time: the first stateful step's `time`, where a stage's input
             * has it; the stages re-keying into this one need it too, for the
             * watermarks they send. */
            const char *time = json_string_value(json_object_get(conf, "time"));
            for (size_t k = 0; !rc && time && k < plan->n_stages && k < 16; k++) {
                dm_plan_stage_t *w = &plan->stages[k];
                bool feeds = k == cur || (w->writes_rekey && w->output &&
                                          (!strcmp(w->output, s->input.topic) ||
                                           (s->other.topic && !strcmp(w->output, s->other.topic))));
                dm_expr_t *e = NULL;
                if (feeds && !w->event_time && c->ins[k] &&
                    dm_expr_compile(time, c->ins[k], &e, NULL) == DM_OK)
                    w->event_time = strdup(time);
                dm_expr_free(e);
            }
        }
        free(other_in.topic);
        if (rc) {
            json_decref(conf);
            break;
        }
        joined |= ops->two_inputs;
        dm_proc_t *p = NULL;
        rc = dm_proc_open2(ops, &penv, conf, node, other ? other->root : NULL, &p, c->err);
        if (rc) {
            dm_error_prefix(c->err, "spec.steps[%zu].%s", i, kind);
            json_decref(conf);
            break;
        }
        dm_plan_stage_t *s = &plan->stages[cur];
        /* An SDK processor that keeps state (its library says so at open)
         * keeps it per task, by the records' partition: no re-key. */
        if (p->ops->stateful && !ops->stateful && (rc = stage_state_topic(c, cur, tasks))) {
            dm_proc_close(p);
            json_decref(conf);
            break;
        }
        if ((rc = add_step(c, s, (int)i, kind, conf))) break;
        s->steps[s->n_steps - 1].reads = reads_of(p);
        /* Route outputs. */
        const char *const *names;
        size_t n_out = ops->outputs ? ops->outputs(p, &names) : 0;
        for (size_t x = 0; x < n_out && !rc; x++) {
            char **e = push(&s->extra, &s->n_extra, sizeof(char *));
            if (!e)
                rc = dm_error_set(c->err, DM_ERR_NOMEM, "out of memory");
            else
                *e = strdup(names[x]);
            if (!rc) rc = add_topic(c, names[x], in_parts, false, true);
        }
        if (s->n_extra > 8)
            rc = dm_error_set(c->err, DM_ERR_UNSUPPORTED, "a route has more than 8 outputs");
        if (p->output) {
            node = p->output->root;
            same = NULL;
        }
        if (n_opened < 64)
            opened[n_opened++] = p;
        else
            dm_proc_close(p);
    }
    /* The last stage writes the derived source, else the pipeline's own output topic. */
    dm_plan_stage_t *last = rc ? NULL : &plan->stages[cur];
    if (last) {
        char out[400] = "";
        size_t i;
        json_t *o;
        json_array_foreach(json_object_get(spec, "to"), i,
                           o) if (json_is_string(json_object_get(o, "source")))
            snprintf(out, sizeof(out), "%s", json_string_value(json_object_get(o, "source")));
        if (!out[0]) snprintf(out, sizeof(out), "pipeline.%s.out", name);
        last->output = strdup(out);
        plan->output = strdup(out);
        rc = add_topic(c, out, in_parts, false, true);
        if (!rc) rc = register_output(c, last, node, same);
        plan->output_schema_id = last->output_schema_id;
    }
    for (size_t k = 0; k < n_opened; k++)
        dm_proc_close(opened[k]);
    if (!rc) rc = add_topic(c, plan->dead_letter, 1, false, false);
    if (!rc && plan->replay) rc = add_topic(c, plan->replay, in_parts, false, false);
    if (!rc) rc = compile_sinks(c, spec, src_key);
    json_decref(part_key);
    json_decref(from);
    json_decref(steps);
    return rc;
}

dm_err_t dm_plan_compile(const json_t *doc, const dm_plan_env_t *env, dm_pipeline_plan_t **out,
                         dm_error_t *err)
{
    *out = NULL;
    dm_pipeline_plan_t *plan = calloc(1, sizeof(*plan));
    if (!plan) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    const char *name = dm_spec_name(doc);
    plan->name = strdup(name ? name : "");
    plan->dead_letter = fmt("pipeline.%s.dlq", plan->name, NULL);
    plan->replay = fmt("pipeline.%s.replay", plan->name, NULL);
    const json_t *spec = json_object_get(doc, "spec");
    /* spec.idle_timeout (validated at apply): 0 = an input holds the watermark
     * back only while it brings records */
    const json_t *idle = json_object_get(spec, "idle_timeout");
    int64_t idle_ms = json_is_integer(idle) ? json_integer_value(idle) : 0;
    if (json_is_string(idle) && dm_parse_duration_ms(json_string_value(idle), &idle_ms))
        idle_ms = 0;
    if (idle) plan->idle_timeout_ms = idle_ms > 0 ? idle_ms : 1;
    int64_t spill = 0;
    if (!dm_spec_state_spill(json_object_get(spec, "state"), &spill))
        plan->state_spill_bytes = spill;
    int policy = dm_spec_schema_change(json_string_value(json_object_get(spec, "schema_change")));
    plan->schema_change = policy > 0 ? (dm_plan_schema_change_t)policy : DM_SCHEMA_CHANGE_LENIENT;
    const char *start = json_string_value(json_object_get(spec, "start"));
    plan->start_latest = start && !strcmp(start, "latest");
    compiler_t c = {.env = env, .plan = plan, .err = err};
    dm_err_t rc = DM_OK;
    json_t *sql_doc = NULL;
    const json_t *sql = json_object_get(spec, "sql");
    if (json_is_string(sql)) {
        /* A pipeline in SQL compiles into from and steps, then as any other. */
        dm_sql_catalog_t cat = {sql_source, (void *)env};
        json_t *out = NULL;
        rc = dm_sql_compile(json_string_value(sql), &cat, false, NULL, &out, err);
        if (rc && rc != DM_ERR_AGAIN) dm_error_prefix(err, "spec.sql");
        if (!rc) {
            sql_doc = json_deep_copy(doc);
            json_t *sp = json_object_get(sql_doc, "spec");
            json_object_set(sp, "from", json_object_get(out, "from"));
            json_object_set(sp, "steps", json_object_get(out, "steps"));
            json_object_del(sp, "sql");
        }
        json_decref(out);
    }
    if (!rc) rc = compile(&c, sql_doc ? sql_doc : doc);
    json_decref(sql_doc);
    for (int i = 0; i < c.n_tables; i++)
        dm_table_free(c.tables[i]);
    dm_avro_schema_free(c.reader);
    if (rc) {
        if (rc != DM_ERR_AGAIN) dm_error_prefix(err, "Pipeline %s", plan->name);
        dm_plan_free(plan);
        return rc;
    }
    *out = plan;
    return DM_OK;
}
