/* tests/fuzz/fuzz_control_spec.c — libFuzzer target: the spec reader (YAML or
 * JSON documents with positions), validation of every document it loads (a
 * source's schema through the full Avro parser included), and the plan
 * compiler over the pipelines that validate: the path every `datamesh apply`
 * body takes. The pipelines compile against the input's own sources and sinks,
 * as a dry-run apply compiles them against the request's (nothing is
 * registered; a source's schema is its inline one), and a compiled plan goes
 * through its JSON form and back, as it does to a worker. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/plan.h"
#include "control/spec.h"
#include "control/yaml.h"

#define MAX_SCHEMAS 64

typedef struct fuzz_env {
    json_t *sources; /* name -> Source document of the input */
    json_t *sinks;   /* name -> Sink document of the input */
    dm_avro_schema_t *schemas[MAX_SCHEMAS];
    size_t n_schemas;
} fuzz_env_t;

/* NAME-value of a source of the input: its inline schema, parsed (kept until
 * the input is done: the plan borrows it). */
static dm_err_t env_latest(void *ctx, const char *subject, int64_t *id,
                           const dm_avro_schema_t **schema, dm_error_t *err)
{
    fuzz_env_t *e = ctx;
    size_t len = strlen(subject);
    if (len < 7 || strcmp(subject + len - 6, "-value") || e->n_schemas == MAX_SCHEMAS)
        return dm_error_set(err, DM_ERR_NOT_FOUND, "subject %s not found", subject);
    char name[300];
    snprintf(name, sizeof(name), "%.*s", (int)(len - 6), subject);
    const json_t *s =
        json_object_get(json_object_get(json_object_get(e->sources, name), "spec"), "schema");
    if (!s) return dm_error_set(err, DM_ERR_NOT_FOUND, "subject %s not found", subject);
    dm_avro_schema_t *parsed = NULL;
    dm_err_t rc = dm_spec_schema_parse(s, &parsed, NULL, 0, err);
    if (rc) return rc;
    e->schemas[e->n_schemas++] = parsed;
    *id = (int64_t)e->n_schemas;
    *schema = parsed;
    return DM_OK;
}

/* A dry run: nothing is registered; a new version would get an id later. */
static dm_err_t env_register(void *ctx, const char *subject, const char *text, int64_t *id,
                             dm_error_t *err)
{
    (void)ctx, (void)subject, (void)text, (void)err;
    *id = 0;
    return DM_OK;
}

static int32_t env_partitions(void *ctx, const char *topic)
{
    fuzz_env_t *e = ctx;
    const json_t *src = json_object_get(e->sources, topic);
    if (!src) return 0;
    const json_t *p = json_object_get(json_object_get(src, "spec"), "partitions");
    return json_is_integer(p) ? (int32_t)json_integer_value(p) : 1;
}

static const json_t *env_source_doc(void *ctx, const char *name)
{
    return json_object_get(((fuzz_env_t *)ctx)->sources, name);
}

static const json_t *env_sink_doc(void *ctx, const char *name)
{
    return json_object_get(((fuzz_env_t *)ctx)->sinks, name);
}

static void compile(const json_t *doc, fuzz_env_t *e)
{
    dm_plan_env_t env = {.latest = env_latest,
                         .register_schema = env_register,
                         .partitions = env_partitions,
                         .source_doc = env_source_doc,
                         .sink_doc = env_sink_doc,
                         .ctx = e};
    dm_pipeline_plan_t *plan = NULL, *back = NULL;
    dm_error_t err = {0};
    dm_err_t rc = dm_plan_compile(doc, &env, &plan, &err);
    /* DM_FUZZ_VERBOSE=1 shows what the seeds reach (run them with -runs=0). */
    if (getenv("DM_FUZZ_VERBOSE"))
        fprintf(stderr, "pipeline %s: %s\n", dm_spec_name(doc), rc ? err.message : "compiled");
    if (rc) return;
    json_t *j = dm_plan_to_json(plan);
    /* What a worker receives must read back: the compiler wrote it. */
    if (!j || dm_plan_from_json(j, &back, &err) != DM_OK) {
        fprintf(stderr, "a compiled plan does not read back: %s\n", err.message);
        abort();
    }
    free(dm_plan_explain(plan));
    dm_plan_free(back);
    dm_plan_free(plan);
    json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dm_spec_doc_t *docs = NULL;
    size_t n = 0;
    dm_error_t err = {0};
    if (dm_spec_load("<fuzz>", (const char *)data, size, &docs, &n, &err)) return 0;
    fuzz_env_t e = {.sources = json_object(), .sinks = json_object()};
    json_t *pipelines = json_array();
    for (size_t i = 0; i < n; i++) {
        dm_spec_t spec;
        if (dm_spec_validate(&docs[i], &spec, &err) != DM_OK) continue;
        json_t *reads = dm_spec_pipeline_reads(spec.doc);
        json_decref(reads);
        if (spec.kind == DM_KIND_SOURCE) json_object_set(e.sources, spec.name, spec.doc);
        if (spec.kind == DM_KIND_SINK) json_object_set(e.sinks, spec.name, spec.doc);
        if (spec.kind == DM_KIND_PIPELINE) json_array_append(pipelines, spec.doc);
        dm_spec_clear(&spec);
    }
    size_t i;
    json_t *p;
    json_array_foreach(pipelines, i, p) compile(p, &e);
    for (size_t k = 0; k < e.n_schemas; k++)
        dm_avro_schema_free(e.schemas[k]);
    json_decref(pipelines);
    json_decref(e.sources);
    json_decref(e.sinks);
    dm_spec_docs_free(docs, n);
    return 0;
}
