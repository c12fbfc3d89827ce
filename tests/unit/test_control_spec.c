/* Unit tests for control/yaml and control/spec: loading YAML/JSON documents
 * with positions, and the validation messages users see for bad specs. */
#include "check.h"
#include "control/spec.h"
#include "control/yaml.h"
#include "core/clock.h"

#define GOOD_SOURCE                                                                                \
    "kind: Source\n"                                                                               \
    "metadata: {name: plays, owner: playback, description: every play, labels: {tier: gold}}\n"    \
    "spec:\n"                                                                                      \
    "  connector: datagen\n"                                                                       \
    "  schema: {type: record, name: Play, fields: [{name: id, type: long}, {name: country, "       \
    "type: string}]}\n"                                                                            \
    "  key: [id]\n"                                                                                \
    "  partitions: 4\n"                                                                            \
    "  config: {rate: 1000, seed: 7}\n"

static dm_err_t validate_text(const char *text, dm_spec_t *spec, dm_error_t *err)
{
    dm_spec_doc_t *docs;
    size_t n;
    dm_err_t rc = dm_spec_load("t.yaml", text, strlen(text), &docs, &n, err);
    if (rc) return rc;
    if (n != 1) {
        dm_spec_docs_free(docs, n);
        return dm_error_set(err, DM_ERR_INVALID, "expected one document, got %zu", n);
    }
    rc = dm_spec_validate(&docs[0], spec, err);
    dm_spec_docs_free(docs, n);
    return rc;
}

static void test_good_specs(void)
{
    dm_error_t err = {0};
    dm_spec_t s;
    REQUIRE(validate_text(GOOD_SOURCE, &s, &err) == DM_OK);
    CHECK_EQ_INT(s.kind, DM_KIND_SOURCE);
    CHECK_STR_EQ(s.name, "plays");
    dm_spec_clear(&s);
    const char *pipeline = "kind: Pipeline\n"
                           "metadata: {name: us-plays, owner: growth}\n"
                           "spec:\n"
                           "  from: [plays]\n"
                           "  steps:\n"
                           "    - filter: \"country = 'US' AND amount > 0\"\n"
                           "    - project: [id, movie_id, \"amount * 100 AS cents\"]\n"
                           "    - enrich: {with: movies, on: movie_id, fields: [title]}\n"
                           "  to:\n"
                           "    - source: us-plays\n"
                           "    - sink: {type: file, path: out/us-plays.jsonl, format: jsonl}\n";
    REQUIRE(validate_text(pipeline, &s, &err) == DM_OK);
    json_t *in = dm_spec_pipeline_inputs(s.doc), *out = dm_spec_pipeline_outputs(s.doc);
    CHECK_STR_EQ(json_string_value(json_array_get(in, 0)), "plays");
    CHECK_STR_EQ(json_string_value(json_array_get(out, 0)), "us-plays");
    json_decref(in);
    json_decref(out);
    dm_spec_clear(&s);
    const char *windows = "kind: Pipeline\n"
                          "metadata: {name: windows}\n"
                          "spec:\n"
                          "  from: [plays]\n"
                          "  steps:\n"
                          "    - dedupe: {key: [id], within: 10m, time: ts}\n"
                          "    - route: {outputs: {big: \"amount > 100\"}, default: rest}\n"
                          "    - aggregate:\n"
                          "        window: {type: hopping, size: 10m, slide: 1m, lateness: 30s}\n"
                          "        time: ts\n"
                          "        group_by: [country]\n"
                          "        aggregates: [\"count(*) AS n\", \"sum(amount) AS total\"]\n"
                          "  state: {spill: 16MiB}\n"
                          "  idle_timeout: 45s\n"
                          "  start: latest\n"
                          "  to: [{source: per-country}]\n";
    REQUIRE(validate_text(windows, &s, &err) == DM_OK);
    int64_t spill = 0;
    CHECK(dm_spec_state_spill(json_object_get(json_object_get(s.doc, "spec"), "state"), &spill) ==
          DM_OK);
    CHECK_EQ_INT(spill, 16 << 20);
    CHECK(dm_spec_state_spill(NULL, &spill) == DM_OK && spill == 0); /* absent: the default */
    out = dm_spec_pipeline_outputs(s.doc);
    CHECK_EQ_INT(json_array_size(out), 2);
    CHECK_STR_EQ(json_string_value(json_array_get(out, 1)), "big");
    json_decref(out);
    dm_spec_clear(&s);
    /* JSON is accepted as it is. */
    REQUIRE(validate_text("{\"kind\": \"Sink\", \"metadata\": {\"name\": \"archive\"}, \"spec\": "
                          "{\"type\": \"file\", \"path\": \"/tmp/a.avro\", \"format\": \"avro\"}}",
                          &s, &err) == DM_OK);
    CHECK_EQ_INT(s.kind, DM_KIND_SINK);
    dm_spec_clear(&s);
    REQUIRE(validate_text("kind: Source\nmetadata: {name: orders}\nspec:\n  connector: postgres\n"
                          "  config: {dsn: \"host=127.0.0.1 dbname=shop user=cdc\", "
                          "password_env: PGPASS, tables: [public.orders], snapshot: initial}\n",
                          &s, &err) == DM_OK);
    dm_spec_clear(&s);
}

static void test_multi_document_positions(void)
{
    const char *text = "kind: Source\nmetadata: {name: a}\nspec: {connector: ingest, schema: "
                       "{type: record, name: A, fields: [{name: x, type: int}]}}\n"
                       "---\n"
                       "---\n"
                       "kind: Pipeline\n"
                       "metadata:\n"
                       "  name: p\n"
                       "spec:\n"
                       "  from: a\n"
                       "  to:\n"
                       "    - sink: {type: file, path: x}\n";
    dm_spec_doc_t *docs;
    size_t n;
    dm_error_t err = {0};
    REQUIRE(dm_spec_load("multi.yaml", text, strlen(text), &docs, &n, &err) == DM_OK);
    CHECK_EQ_INT(n, 2); /* the empty document is skipped */
    char loc[128];
    dm_spec_locate(&docs[1], "metadata.name", loc, sizeof(loc));
    CHECK_STR_EQ(loc, "multi.yaml:8:9");
    dm_spec_locate(&docs[1], "spec.to[0].sink.path", loc, sizeof(loc));
    CHECK_STR_EQ(loc, "multi.yaml:12:32");
    dm_spec_locate(&docs[1], "spec.nothing.here", loc, sizeof(loc));
    CHECK_STR_EQ(loc, "multi.yaml:10:3"); /* nearest present parent: spec's value */
    dm_spec_docs_free(docs, n);
}

/* Each bad spec and the message it must produce (a substring). */
static const struct {
    const char *text;
    const char *want;
} bad[] = {
    /* text-level */
    {"kind: [unclosed", "t.yaml:2:1: did not find expected ',' or ']'"},
    {"kind: Source\nkind: Sink\n", "t.yaml:2:1: kind: duplicate key"},
    {"- a\n- b\n", "(document): expected a mapping, got a list"},
    {"{\"kind\": \"Source\",}", "t.yaml:1:"},
    {"a: &x [1]\nb: *y\n", "t.yaml:2:"},
    /* top level */
    {"kind: Source\nmetadata: {name: a}\nspec: {}\nstate: {}\n",
     "t.yaml:4:8: state: unknown key 'state'; allowed: kind, metadata, spec, status"},
    {"metadata: {name: a}\nspec: {}\n", "kind: required key 'kind' is missing"},
    {"kind: Table\nmetadata: {name: a}\nspec: {}\n",
     "t.yaml:1:7: kind: 'Table' is not one of: Source, Pipeline, Processor, Sink"},
    {"kind: 7\nmetadata: {name: a}\nspec: {}\n", "kind: expected a string, got an integer"},
    {"kind: Source\nspec: {}\n", "metadata: required key 'metadata' is missing"},
    {"kind: Source\nmetadata: {name: a}\n", "spec: required key 'spec' is missing"},
    /* metadata */
    {"kind: Source\nmetadata: {owner: x}\nspec: {}\n",
     "metadata.name: required key 'name' is missing"},
    {"kind: Source\nmetadata: {name: Plays}\nspec: {}\n",
     "t.yaml:2:18: metadata.name: 'Plays' is not a valid name"},
    {"kind: Source\nmetadata: {name: ../etc}\nspec: {}\n", "'../etc' is not a valid name"},
    {"kind: Source\nmetadata: {name: a/b}\nspec: {}\n", "'a/b' is not a valid name"},
    {"kind: Source\nmetadata: {name: a, team: x}\nspec: {}\n",
     "metadata.team: unknown key 'team'; allowed: name, owner, description, labels"},
    {"kind: Source\nmetadata: {name: a, labels: [x]}\nspec: {}\n",
     "metadata.labels: expected a mapping, got a list"},
    {"kind: Source\nmetadata: {name: a, labels: {tier: 1}}\nspec: {}\n",
     "metadata.labels.tier: label values are strings or booleans, got an integer"},
    /* sources */
    {"kind: Source\nmetadata: {name: a}\nspec: {}\n",
     "spec.connector: required key 'connector' is missing"},
    {"kind: Source\nmetadata: {name: a}\nspec: {connector: oracle}\n",
     "t.yaml:3:19: spec.connector: 'oracle' is not one of: postgres, mysql, cockroachdb, "
     "ingest, datagen, file"},
    {"kind: Source\nmetadata: {name: a}\nspec: {connector: cockroachdb, config: {table: t}}\n",
     "spec.config.dsn: required key 'dsn' is missing (libpq connection string"},
    {"kind: Source\nmetadata: {name: a}\nspec: {connector: datagen}\n",
     "spec.schema: required key 'schema' is missing: a datagen source needs an Avro record"},
    {"kind: Source\nmetadata: {name: a}\nspec: {connector: datagen, schema: {type: string}}\n",
     "spec.schema.type: a source's schema must be an Avro record"},
    {"kind: Source\nmetadata: {name: a}\nspec: {connector: datagen, schema: {file: a.avsc}}\n",
     "spec.schema.file: schema files are read by `datamesh apply -f`"},
    {"kind: Source\nmetadata: {name: a}\nspec: {connector: datagen, schema: {type: record, "
     "name: A, fields: [{name: x, type: int}]}, key: [y]}\n",
     "spec.key[0]: key field 'y' is not a field of the schema"},
    {"kind: Source\nmetadata: {name: a}\nspec: {connector: datagen, schema: {type: record, "
     "name: A, fields: [{type: int}]}}\n",
     "spec.schema.fields[0]: each field needs a name"},
    {"kind: Source\nmetadata: {name: a}\nspec: {connector: datagen, partitions: 0, schema: "
     "{type: record, name: A, fields: []}}\n",
     "spec.partitions: expected an integer from 1 to 1024"},
    {"kind: Source\nmetadata: {name: a}\nspec: {connector: datagen, replicas: 3}\n",
     "spec.replicas: unknown key 'replicas'; allowed: connector, schema, key, partitions, config"},
    {"kind: Source\nmetadata: {name: a}\nspec:\n  connector: datagen\n  schema: {type: record, "
     "name: A, fields: []}\n  config: {rate: 0}\n",
     "t.yaml:6:18: spec.config.rate: 0 is out of range [1, 10000000]"},
    {"kind: Source\nmetadata: {name: a}\nspec:\n  connector: datagen\n  schema: {type: record, "
     "name: A, fields: []}\n  config: {speed: 5}\n",
     "t.yaml:6:19: spec.config.speed: unknown key 'speed' for datagen connector; allowed: rate, "
     "seed, max_events, keys"},
    {"kind: Source\nmetadata: {name: a}\nspec: {connector: postgres, config: {tables: [t]}}\n",
     "spec.config.dsn: required key 'dsn' is missing"},
    {"kind: Source\nmetadata: {name: a}\nspec: {connector: postgres, config: {dsn: \"host=x "
     "password=hunter2\", tables: [t]}}\n",
     "the DSN holds a password (host=x password=***)"},
    {"kind: Source\nmetadata: {name: a}\nspec: {connector: postgres, config: {dsn: x, tables: "
     "[t], snapshot: sometimes}}\n",
     "spec.config.snapshot: 'sometimes' is not one of: initial, never, on_demand"},
    /* pipelines */
    {"kind: Pipeline\nmetadata: {name: p}\nspec: {to: [{source: b}]}\n",
     "spec.from: required key 'from' is missing"},
    {"kind: Pipeline\nmetadata: {name: p}\nspec: {from: [a]}\n",
     "spec.to: required key 'to' is missing"},
    {"kind: Pipeline\nmetadata: {name: p}\nspec: {from: [], to: [{source: b}]}\n",
     "spec.from: must list at least one item"},
    {"kind: Pipeline\nmetadata: {name: p}\nspec: {from: [a], state: {spill: 1KiB}, to: [{source: "
     "b}]}\n",
     "t.yaml:3:34: spec.state.spill: must be between 64KiB and 1TiB"},
    {"kind: Pipeline\nmetadata: {name: p}\nspec: {from: [a], state: {spill: lots}, to: [{source: "
     "b}]}\n",
     "spec.state.spill: expected a size (\"64MiB\") or a number of bytes"},
    {"kind: Pipeline\nmetadata: {name: p}\nspec: {from: [a], state: {ttl: 5m}, to: [{source: "
     "b}]}\n",
     "spec.state.ttl: unknown key 'ttl'; allowed: spill"},
    {"kind: Pipeline\nmetadata: {name: p}\nspec: {from: [a, b], idle_timeout: soon, to: [{source: "
     "c}]}\n",
     "spec.idle_timeout: expected a duration"},
    {"kind: Pipeline\nmetadata: {name: p}\nspec: {from: [a], start: now, to: [{source: b}]}\n",
     "t.yaml:3:26: spec.start: unknown start 'now'; one of: earliest, latest"},
    /* SQL: spec.sql stands for from and steps; its syntax is checked at apply */
    {"kind: Pipeline\nmetadata: {name: p}\nspec: {sql: \"SELECT * FROM a\", from: [a], to: "
     "[{source: b}]}\n",
     "spec.from: spec.sql stands for from and steps: give one or the other"},
    {"kind: Pipeline\nmetadata: {name: p}\nspec: {sql: \"SELECT id FROM a WHERE\", to: [{source: "
     "b}]}\n",
     "spec.sql: SQL line 1, column 23: expected an expression, found the end of the query"},
    {"kind: Pipeline\nmetadata: {name: p}\nspec: {sql: \"SELECT id FROM a ORDER BY id\", to: "
     "[{source: b}]}\n",
     "spec.sql: SQL line 1, column 18: ORDER BY on a stream"},
    {"kind: Pipeline\nmetadata: {name: p}\nspec: {from: [a], steps: [{sql: \"SELECT id FROM a\"}], "
     "to: [{source: b}]}\n",
     "spec.steps[0].sql: SQL line 1, column 16: a sql step reads its input: FROM input"},
    {"kind: Pipeline\nmetadata: {name: p}\nspec: {from: [a], steps: [{map: x}], to: [{source: "
     "b}]}\n",
     "spec.steps[0].map: unknown key 'map'; allowed: filter, project, enrich, aggregate, dedupe, "
     "route, join, processor, lua, sql"},
    {"kind: Pipeline\nmetadata: {name: p}\nspec: {from: [a], steps: [{join: {with: b, on: id}}], "
     "to: [{source: c}]}\n",
     "spec.steps[0].join.within: required key 'within' is missing"},
    {"kind: Pipeline\nmetadata: {name: p}\nspec: {from: [a], steps: [{aggregate: {window: {type: "
     "sliding, size: 1m}, aggregates: [count(*)]}}], to: [{source: b}]}\n",
     "spec.steps[0].aggregate.window.type: 'sliding' is not one of: tumbling, hopping, session"},
    {"kind: Pipeline\nmetadata: {name: p}\nspec: {from: [a], steps: [{aggregate: {window: {type: "
     "hopping, size: 1m}, aggregates: [count(*)]}}], to: [{source: b}]}\n",
     "spec.steps[0].aggregate.window.slide: required key 'slide' is missing"},
    {"kind: Pipeline\nmetadata: {name: p}\nspec: {from: [a], steps: [{aggregate: {window: {type: "
     "session, gap: 5m, size: 1m}, aggregates: [count(*)]}}], to: [{source: b}]}\n",
     "spec.steps[0].aggregate.window.size: a session window has no size"},
    {"kind: Pipeline\nmetadata: {name: p}\nspec: {from: [a], steps: [{aggregate: {window: {type: "
     "tumbling, size: soon}, aggregates: [count(*)]}}], to: [{source: b}]}\n",
     "spec.steps[0].aggregate.window.size: expected a duration"},
    {"kind: Pipeline\nmetadata: {name: p}\nspec: {from: [a], steps: [{aggregate: {window: {type: "
     "tumbling, size: 1m}}}], to: [{source: b}]}\n",
     "spec.steps[0].aggregate.aggregates: required key 'aggregates' is missing"},
    {"kind: Pipeline\nmetadata: {name: p}\nspec: {from: [a], steps: [{dedupe: {key: [id]}}], to: "
     "[{source: b}]}\n",
     "spec.steps[0].dedupe.within: required key 'within' is missing"},
    {"kind: Pipeline\nmetadata: {name: p}\nspec: {from: [a], steps: [{route: {outputs: {Big: "
     "\"x > 1\"}}}], to: [{source: b}]}\n",
     "spec.steps[0].route.outputs.Big: 'Big' is not a valid name"},
    {"kind: Pipeline\nmetadata: {name: p}\nspec: {from: [a], steps: [{route: {outputs: {big: "
     "3}}}], "
     "to: [{source: b}]}\n",
     "spec.steps[0].route.outputs.big: expected an expression, got an integer"},
    {"kind: Pipeline\nmetadata: {name: p}\nspec: {from: [a], steps: [{filter: x, project: [a]}], "
     "to: [{source: b}]}\n",
     "spec.steps[0]: each step is a mapping with one key"},
    {"kind: Pipeline\nmetadata: {name: p}\nspec: {from: [a], steps: [{filter: 3}], to: [{source: "
     "b}]}\n",
     "spec.steps[0].filter: expected an expression as a non-empty string, got an integer"},
    {"kind: Pipeline\nmetadata: {name: p}\nspec: {from: [a], steps: [{project: []}], to: "
     "[{source: b}]}\n",
     "spec.steps[0].project: must list at least one item"},
    {"kind: Pipeline\nmetadata: {name: p}\nspec: {from: [a], steps: [{enrich: {with: m}}], to: "
     "[{source: b}]}\n",
     "spec.steps[0].enrich.on: required key 'on' is missing"},
    {"kind: Pipeline\nmetadata: {name: p}\nspec: {from: [a], to: [{source: b, sink: {type: "
     "file}}]}\n",
     "spec.to[0]: each output is either `source: NAME` or `sink: {type: ...}`"},
    {"kind: Pipeline\nmetadata: {name: p}\nspec: {from: [a], to: [{sink: {type: s3}}]}\n",
     "spec.to[0].sink.type: 's3' is not one of: topic, kafka, iceberg, elasticsearch, postgres, "
     "file"},
    {"kind: Pipeline\nmetadata: {name: p}\nspec: {from: [a], to: [{sink: {type: file, path: x, "
     "format: csv}}]}\n",
     "spec.to[0].sink.format: 'csv' is not one of: jsonl, avro"},
    {"kind: Pipeline\nmetadata: {name: p}\nspec: {from: [a], to: [{sink: {type: file}}]}\n",
     "spec.to[0].sink.path: required key 'path' is missing"},
    {"kind: Pipeline\nmetadata: {name: p}\nspec: {from: [a], to: [{sink: {type: file, path: x, "
     "roll_size: 10}}]}\n",
     "spec.to[0].sink.roll_size: 10 is out of range"},
    /* processors and sinks */
    {"kind: Processor\nmetadata: {name: scorer}\nspec: {}\n",
     "spec.library: required key 'library' is missing"},
    {"kind: Sink\nmetadata: {name: s}\nspec: {type: topic}\n",
     "publish to a topic with `- source: NAME` in `to`"},
    /* the full Avro parse of an inline schema (issue 26): located at the field */
    {"kind: Source\nmetadata: {name: a}\nspec:\n  connector: ingest\n  schema:\n    type: record\n"
     "    name: R\n    fields:\n      - {name: a, type: long}\n      - {name: b, type: nope}\n",
     "t.yaml:10:25: spec.schema.fields[1].type: not a valid Avro schema: $.fields[1].type: type "
     "\"nope\" is used but never defined"},
    {"kind: Source\nmetadata: {name: a}\nspec:\n  connector: ingest\n  schema:\n    type: record\n"
     "    name: R\n    fields:\n      - {name: a, type: long}\n"
     "      - {name: b, type: long, default: \"x\"}\n",
     "t.yaml:10:40: spec.schema.fields[1].default: not a valid Avro schema: invalid default for "
     "field \"b\" ($.fields[1].default): $.fields[1].default: expected long, got a string"},
    {"kind: Source\nmetadata: {name: a}\nspec:\n  connector: ingest\n  schema:\n    type: record\n"
     "    name: R\n    fields:\n      - {name: a, type: long}\n      - {name: a, type: int}\n",
     "t.yaml:10:16: spec.schema.fields[1].name: not a valid Avro schema: $.fields[1].name: field "
     "\"a\" appears twice in record R (first as fields[0])"},
    {"kind: Source\nmetadata: {name: a}\nspec:\n  connector: ingest\n  schema:\n    type: record\n"
     "    name: \"9R\"\n    fields: [{name: a, type: long}]\n",
     "t.yaml:7:11: spec.schema.name: not a valid Avro schema: $.name: \"9R\" is not a valid name"},
    {"kind: Source\nmetadata: {name: a}\nspec: {connector: ingest, key: [a], schema: {type: "
     "record, "
     "name: R, fields: [{name: a, type: {type: enum, name: E, symbols: [X, X]}}]}}\n",
     "spec.schema.fields[0].type"},
    {"kind: Sink\nmetadata: {name: s}\nspec: {type: elasticsearch, url: \"http://h:9200\"}\n",
     "required key 'index' is missing"},
    {"kind: Pipeline\nmetadata: {name: p}\nspec: {from: [a], to: [{sink: {type: postgres, dsn: x, "
     "table: t, linger: 2h}}]}\n",
     "spec.to[0].sink.linger: "},
    {"kind: Pipeline\nmetadata: {name: p}\nspec:\n  from: [a]\n  alerts:\n"
     "    lag_seconds: {warning: 900, critical: 60}\n",
     "t.yaml:6:18: spec.alerts.lag_seconds: warning (900) is above critical (60)"},
    {"kind: Source\nmetadata: {name: a}\nspec:\n  connector: datagen\n  alerts: {disabled: "
     "[lag, stalled]}\n",
     "spec.alerts.disabled[1]: 'stalled' is not a rule of a Source; rules: lag, slot_wal, "
     "stopped, restart_loop"},
};

static void test_bad_specs(void)
{
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        dm_error_t err = {0};
        dm_spec_t s;
        dm_err_t rc = validate_text(bad[i].text, &s, &err);
        if (rc == DM_OK) {
            printf("    case %zu: accepted, wanted: %s\n", i, bad[i].want);
            dm_spec_clear(&s);
            CHECK(rc != DM_OK);
            continue;
        }
        if (!strstr(err.message, bad[i].want)) {
            printf("    case %zu: got: %s\n             wanted: %s\n", i, err.message, bad[i].want);
            CHECK(!"message mismatch");
        }
    }
    CHECK(sizeof(bad) / sizeof(bad[0]) >= 30);
}

static void test_hostile_yaml_is_bounded(void)
{
    /* Alias expansion ("billion laughs") stops at the node limit. */
    const char *bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
                       "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                       "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                       "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                       "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
                       "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
                       "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n";
    dm_spec_doc_t *docs;
    size_t n;
    dm_error_t err = {0};
    CHECK(dm_spec_load("bomb.yaml", bomb, strlen(bomb), &docs, &n, &err) != DM_OK);
    CHECK_CONTAINS(err.message, "document too large");
    char deep[400];
    memset(deep, '[', 200);
    memset(deep + 200, ']', 200);
    CHECK(dm_spec_load("deep.yaml", deep, sizeof(deep), &docs, &n, &err) != DM_OK);
    CHECK_CONTAINS(err.message, "nested deeper than");
    /* 100,000 open brackets (flow mappings too): refused at once, at the
     * bracket past the limit (libyaml alone takes minutes over them) */
    size_t big = 200000;
    char *flow = malloc(big + 4);
    REQUIRE(flow);
    const char *openers[] = {"[", "{a: "};
    for (int o = 0; o < 2; o++) {
        size_t w = strlen(openers[o]), at = 0;
        memcpy(flow, "x: ", 3);
        at = 3;
        while (at + w <= big) {
            memcpy(flow + at, openers[o], w);
            at += w;
        }
        uint64_t t0 = dm_now_ns();
        CHECK(dm_spec_load("flow.yaml", flow, at, &docs, &n, &err) != DM_OK);
        CHECK(dm_now_ns() - t0 < 1000000000ull);
        CHECK_CONTAINS(err.message, "nested deeper than");
        CHECK_CONTAINS(err.message, "flow.yaml:1:");
    }
    free(flow);
    /* brackets in quoted scalars and comments do not count */
    char quoted[2000];
    int q = snprintf(quoted, sizeof(quoted), "a: \"");
    for (int i = 0; i < 300; i++)
        quoted[q++] = '[';
    q += snprintf(quoted + q, sizeof(quoted) - (size_t)q, "\"\nb: 1 # ");
    for (int i = 0; i < 300; i++)
        quoted[q++] = '{';
    quoted[q++] = '\n';
    CHECK(dm_spec_load("quoted.yaml", quoted, (size_t)q, &docs, &n, &err) == DM_OK);
    dm_spec_docs_free(docs, n);
    /* Binary garbage is an error with a position, not a crash. */
    char junk[256];
    for (int i = 0; i < 256; i++)
        junk[i] = (char)(i * 37);
    CHECK(dm_spec_load("junk.bin", junk, sizeof(junk), &docs, &n, &err) != DM_OK);
    CHECK_CONTAINS(err.message, "junk.bin:");
}

static void test_scalar_types(void)
{
    const char *text = "a: 12\nb: -3.5\nc: true\nd: ~\ne: '12'\nf: 0x1f\ng: yes\nh: \"\"\n";
    dm_spec_doc_t *docs;
    size_t n;
    dm_error_t err = {0};
    REQUIRE(dm_spec_load("s.yaml", text, strlen(text), &docs, &n, &err) == DM_OK);
    json_t *r = docs[0].root;
    CHECK(json_is_integer(json_object_get(r, "a")) &&
          json_integer_value(json_object_get(r, "a")) == 12);
    CHECK(json_is_real(json_object_get(r, "b")));
    CHECK(json_is_true(json_object_get(r, "c")));
    CHECK(json_is_null(json_object_get(r, "d")));
    CHECK_STR_EQ(json_string_value(json_object_get(r, "e")), "12");
    CHECK_EQ_INT(json_integer_value(json_object_get(r, "f")), 31);
    CHECK_STR_EQ(json_string_value(json_object_get(r, "g")), "yes"); /* YAML 1.2: not a boolean */
    CHECK_STR_EQ(json_string_value(json_object_get(r, "h")), "");
    dm_spec_docs_free(docs, n);
}

int main(void)
{
    RUN(test_good_specs);
    RUN(test_multi_document_positions);
    RUN(test_bad_specs);
    RUN(test_hostile_yaml_is_bounded);
    RUN(test_scalar_types);
    return check_summary();
}
