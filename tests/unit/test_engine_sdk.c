/* Unit tests for the `processor` step (engine/proc_sdk.c): SDK libraries from
 * tests/sdk loaded with dlopen — pass-through, a stateful counter with its
 * own output schema, dead letters and metrics, the store the task
 * checkpoints; and the refusals: a missing library, a relative path, no
 * entry symbol, another ABI, settings the processor refuses. */
#include <stdlib.h>

#include "check.h"
#include "core/metrics.h"
#include "engine/processor.h"

static const char *schema_json =
    "{\"type\": \"record\", \"name\": \"Sale\", \"fields\": ["
    " {\"name\": \"user\", \"type\": \"string\"},"
    " {\"name\": \"amount\", \"type\": \"long\"},"
    " {\"name\": \"note\", \"type\": [\"null\", \"string\"], \"default\": null}]}";

static const char *rows[] = {
    "{\"user\": \"a\", \"amount\": 5, \"note\": \"x\"}",
    "{\"user\": \"b\", \"amount\": -1, \"note\": null}",
    "{\"user\": \"a\", \"amount\": 7, \"note\": null}",
    "{\"user\": \"a\", \"amount\": 1, \"note\": \"y\"}",
};

static dm_avro_schema_t *schema;
static char libdir[4096];

static void load_rows(dm_rows_t *b)
{
    dm_rows_init(b, schema->root);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        dm_row_t *r = dm_rows_push(b);
        dm_error_t err = {0};
        if (dm_avro_from_json_text(schema->root, rows[i], strlen(rows[i]), DM_AVRO_JSON_PLAIN,
                                   &b->arena, &r->value, &err))
            printf("    row %zu: %s\n", i, err.message);
        r->offset = (int64_t)i;
        r->timestamp = 1000 + (int64_t)i;
    }
}

static json_t *step(const char *lib, json_t *config)
{
    char path[4300];
    snprintf(path, sizeof(path), "%s/%s", libdir, lib);
    json_t *s = json_pack("{s:s, s:s}", "name", "t", "library", path);
    if (config) json_object_set_new(s, "config", config);
    return s;
}

/* Each output record as plain JSON, one line each (encoded and decoded with
 * the output schema, so a record the processor built wrongly shows). */
static void render(const dm_avro_node_t *node, const dm_rows_t *b, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = '\0';
    for (uint32_t i = 0; i < b->n; i++) {
        dm_buf_t bin = DM_BUF_INIT, json = DM_BUF_INIT;
        dm_error_t err = {0};
        dm_arena_t a;
        dm_arena_init(&a, 0);
        dm_avro_value_t back;
        const char *s = "?";
        if (dm_avro_encode(node, &b->records[i].value, &bin, &err) == DM_OK &&
            dm_avro_decode_node(node, bin.data, bin.len, NULL, &a, &back, &err) == DM_OK &&
            dm_avro_to_json(node, &back, DM_AVRO_JSON_PLAIN, &json, &err) == DM_OK)
            dm_buf_cstr(&json, &s);
        else
            s = err.message;
        o += (size_t)snprintf(out + o, cap - o, "%s\n", s);
        dm_buf_free(&bin);
        dm_buf_free(&json);
        dm_arena_destroy(&a);
    }
}

static void test_passthrough(void)
{
    json_t *conf = step("passthrough.so", NULL);
    dm_proc_t *p = NULL;
    dm_error_t err = {0};
    REQUIRE(dm_proc_open(&dm_proc_sdk, NULL, conf, schema->root, &p, &err) == DM_OK);
    CHECK(p->output == NULL);
    CHECK(!p->ops->stateful && !p->ops->on_timer && !p->ops->on_watermark);
    CHECK(p->ops->read_paths == NULL); /* no manifest of reads: it reads everything */
    dm_rows_t in, out;
    load_rows(&in);
    dm_rows_init(&out, schema->root);
    dm_dead_letters_t dead = {0};
    REQUIRE(p->ops->process(p, &in, &out, &dead, &err) == DM_OK);
    CHECK_EQ_INT(out.n, 4);
    CHECK_EQ_INT(dead.n, 0);
    for (uint32_t i = 0; i < out.n && i < in.n; i++) {
        CHECK(out.records[i].value.u.v == in.records[i].value.u.v); /* not copied */
        CHECK_EQ_INT(out.records[i].offset, i);
    }
    dm_field_deps_t deps = {0};
    REQUIRE(p->ops->field_deps(p, &deps) == DM_OK);
    CHECK_EQ_INT(deps.n, 3); /* user, amount, note: identity */
    dm_field_deps_free(&deps);
    dm_rows_free(&in);
    dm_rows_free(&out);
    dm_dead_letters_free(&dead);
    dm_proc_close(p);
    json_decref(conf);
}

static void test_counter_state_dead_letters_metrics(void)
{
    dm_metrics_t *m = dm_metrics_new();
    dm_proc_env_t env = {NULL, NULL, m};
    json_t *conf = step("counter.so", json_pack("{s:s, s:i}", "key", "user", "min", 0));
    dm_proc_t *p = NULL;
    dm_error_t err = {0};
    REQUIRE(dm_proc_open(&dm_proc_sdk, &env, conf, schema->root, &p, &err) == DM_OK);
    REQUIRE(p->output != NULL);
    CHECK(p->ops->stateful);
    CHECK(p->kv != NULL);
    CHECK_EQ_INT(p->output->root->n_fields, 4);
    dm_rows_t in, out;
    load_rows(&in);
    dm_rows_init(&out, p->output->root);
    dm_dead_letters_t dead = {0};
    REQUIRE(p->ops->process(p, &in, &out, &dead, &err) == DM_OK);
    char text[2048];
    render(p->output->root, &out, text, sizeof(text));
    CHECK_STR_EQ(text, "{\"user\":\"a\",\"amount\":5,\"note\":\"x\",\"n\":1}\n"
                       "{\"user\":\"a\",\"amount\":7,\"note\":null,\"n\":2}\n"
                       "{\"user\":\"a\",\"amount\":1,\"note\":\"y\",\"n\":3}\n");
    REQUIRE(dead.n == 1);
    CHECK_EQ_INT(dead.items[0].index, 1);
    CHECK_CONTAINS(dead.items[0].reason, "processor t: amount -1 is below min 0");
    /* the store the task checkpoints holds the counts */
    CHECK_EQ_INT(dm_state_n_changes(p->kv), 1);
    /* a second batch continues from the state */
    dm_rows_reset(&out);
    dm_dead_letters_reset(&dead);
    REQUIRE(p->ops->process(p, &in, &out, &dead, &err) == DM_OK);
    render(p->output->root, &out, text, sizeof(text));
    CHECK_CONTAINS(text, "\"n\":6}");
    dm_buf_t b = DM_BUF_INIT;
    const char *s = "";
    dm_metrics_render(m, &b);
    dm_buf_cstr(&b, &s);
    CHECK_CONTAINS(s, "datamesh_sdk_counted_total{processor=\"t\"} 6");
    CHECK_CONTAINS(s, "datamesh_sdk_rejected_total{processor=\"t\"} 2");
    dm_buf_free(&b);
    dm_rows_free(&in);
    dm_rows_free(&out);
    dm_dead_letters_free(&dead);
    dm_proc_close(p);
    json_decref(conf);
    dm_metrics_free(m);
}

/* A timer: counts per user in state, flushed by on_timer (sessions.so). */
static void test_timer_and_restore(void)
{
    json_t *conf = step("sessions.so", json_pack("{s:s, s:i}", "key", "user", "gap", 50));
    dm_proc_t *p = NULL;
    dm_error_t err = {0};
    REQUIRE(dm_proc_open(&dm_proc_sdk, NULL, conf, schema->root, &p, &err) == DM_OK);
    CHECK(p->ops->stateful && p->ops->on_timer && !p->ops->on_watermark && p->ops->restore);
    dm_rows_t in, out;
    load_rows(&in);
    dm_rows_init(&out, p->output->root);
    dm_dead_letters_t dead = {0};
    REQUIRE(p->ops->process(p, &in, &out, &dead, &err) == DM_OK);
    CHECK_EQ_INT(out.n, 0);
    CHECK(p->timer_at > 0);
    /* a restart: the store as the task rebuilds it, then restore re-arms the timer */
    p->timer_at = 0;
    REQUIRE(p->ops->restore(p, &err) == DM_OK);
    CHECK(p->timer_at > 0);
    REQUIRE(p->ops->on_timer(p, p->timer_at, &out, &err) == DM_OK);
    char text[1024];
    render(p->output->root, &out, text, sizeof(text));
    CHECK_CONTAINS(text, "{\"user\":\"a\",\"n\":3}\n");
    CHECK_CONTAINS(text, "{\"user\":\"b\",\"n\":1}\n");
    CHECK_EQ_INT(out.n, 2);
    bool found = true;
    REQUIRE(dm_state_get(p->kv, "a", 1, NULL, NULL, &found, &err) == DM_OK);
    CHECK(!found); /* flushed: cleared in the same commit */
    dm_rows_free(&in);
    dm_rows_free(&out);
    dm_dead_letters_free(&dead);
    dm_proc_close(p);
    json_decref(conf);
}

/* A library that crashes: the call is cut short, the step fails naming the
 * signal, the library is not called again, and the test process lives. */
static void crash_on(const char *row_json, const char *want)
{
    json_t *conf = step("crasher.so", NULL);
    dm_proc_t *p = NULL;
    dm_error_t err = {0};
    REQUIRE(dm_proc_open(&dm_proc_sdk, NULL, conf, schema->root, &p, &err) == DM_OK);
    dm_rows_t in, out;
    dm_rows_init(&in, schema->root);
    dm_row_t *r = dm_rows_push(&in);
    REQUIRE(dm_avro_from_json_text(schema->root, row_json, strlen(row_json), DM_AVRO_JSON_PLAIN,
                                   &in.arena, &r->value, &err) == DM_OK);
    dm_rows_init(&out, schema->root);
    dm_dead_letters_t dead = {0};
    CHECK(p->ops->process(p, &in, &out, &dead, &err) != DM_OK);
    CHECK_CONTAINS(err.message, want);
    err = (dm_error_t){0};
    CHECK(p->ops->process(p, &in, &out, &dead, &err) != DM_OK); /* not called again */
    CHECK_CONTAINS(err.message, want);
    dm_rows_free(&in);
    dm_rows_free(&out);
    dm_dead_letters_free(&dead);
    dm_proc_close(p);
    json_decref(conf);
}

static void test_crash_contained(void)
{
    crash_on("{\"user\": \"a\", \"amount\": 666, \"note\": null}",
             "Processor t crashed (SEGV) in process(): the task stopped at its last commit");
    crash_on("{\"user\": \"a\", \"amount\": 667, \"note\": null}",
             "Processor t crashed (ABRT) in process()");
    /* a crash elsewhere than in a library call is not swallowed: checked by
     * the guard's design (a thread-local jump target), not here */
}

static void refused(json_t *conf, const char *want)
{
    dm_proc_t *p = NULL;
    dm_error_t err = {0};
    CHECK(dm_proc_open(&dm_proc_sdk, NULL, conf, schema->root, &p, &err) != DM_OK);
    CHECK(p == NULL);
    CHECK_CONTAINS(err.message, want);
    json_decref(conf);
}

static void test_refusals(void)
{
    refused(step("nothere.so", NULL), "cannot load library");
    refused(json_pack("{s:s, s:s}", "name", "t", "library", "passthrough.so"),
            "is not an absolute path");
    refused(step("badabi.so", NULL), "built for processor ABI version 42; this datamesh runs "
                                     "version 1");
    json_t *c = step("passthrough.so", NULL);
    json_object_set_new(c, "symbol", json_string("other_entry"));
    refused(c, "has no symbol other_entry");
    refused(step("counter.so", json_pack("{s:s}", "key", "nope")),
            "Processor t refused its settings: config.key: the input has no field 'nope'");
    refused(step("counter.so", json_pack("{s:s, s:i}", "key", "user", "colour", 1)),
            "config.colour: unknown setting");
    refused(step("counter.so", NULL), "config.key: required");
    /* the step's own settings are checked by its table */
    dm_error_t err = {0};
    json_t *bad = json_pack("{s:{s:i}}", "processor", "name", 5);
    CHECK(dm_proc_step_check(bad, "spec.steps[0]", NULL, NULL, &err) != DM_OK);
    CHECK_CONTAINS(err.message, "spec.steps[0].processor.name");
    json_decref(bad);
    json_t *good = json_pack("{s:{s:s, s:{s:s}}}", "processor", "name", "t", "config", "key", "x");
    CHECK(dm_proc_step_check(good, "spec.steps[0]", NULL, NULL, &err) == DM_OK);
    json_decref(good);
}

int main(void)
{
    dm_error_t err = {0};
    if (dm_avro_schema_parse(schema_json, strlen(schema_json), &schema, &err)) {
        printf("schema: %s\n", err.message);
        return 1;
    }
    const char *bin = getenv("DM_BINARY_DIR");
    snprintf(libdir, sizeof(libdir), "%s/tests/sdk", bin ? bin : "build");
    RUN(test_passthrough);
    RUN(test_counter_state_dead_letters_metrics);
    RUN(test_timer_and_restore);
    RUN(test_crash_contained);
    RUN(test_refusals);
    dm_avro_schema_free(schema);
    return check_summary();
}
