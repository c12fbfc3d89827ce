/* Unit tests for control/lineage: the field-level graph of plans compiled
 * against a small in-memory registry — a filter/project/enrich pipeline into a
 * derived source, an aggregate (group_by, window) reading that source into an
 * iceberg sink, a union, an interval join (re-keyed on both sides), a route, a
 * postgres CDC source with its table's columns — and the queries over it. */
#include "check.h"
#include "control/lineage.h"
#include "control/openlineage.h"

#define DEVICE                                                                                     \
    "{\"name\":\"device\",\"type\":{\"type\":\"record\",\"name\":\"Device\",\"fields\":["          \
    "{\"name\":\"os\",\"type\":\"string\"},{\"name\":\"ver\",\"type\":\"int\"}]}}"
#define PLAY                                                                                       \
    "{\"type\":\"record\",\"name\":\"Play\",\"fields\":[{\"name\":\"id\",\"type\":\"long\"},"      \
    "{\"name\":\"country\",\"type\":\"string\"},{\"name\":\"amount\",\"type\":\"double\"},"        \
    "{\"name\":\"movie_id\",\"type\":\"long\"},{\"name\":\"ts\",\"type\":\"long\"}," DEVICE "]}"
#define MOVIE                                                                                      \
    "{\"type\":\"record\",\"name\":\"Movie\",\"fields\":[{\"name\":\"movie_id\",\"type\":"         \
    "\"long\"},{\"name\":\"title\",\"type\":\"string\"},{\"name\":\"year\",\"type\":\"int\"}]}"
#define ROW                                                                                        \
    "{\"type\":\"record\",\"name\":\"Value\",\"fields\":[{\"name\":\"id\",\"type\":\"long\"},"     \
    "{\"name\":\"amount\",\"type\":[\"null\",\"double\"],\"default\":null},"                       \
    "{\"name\":\"customer\",\"type\":[\"null\",\"string\"],\"default\":null}]}"
#define ENVELOPE                                                                                   \
    "{\"type\":\"record\",\"name\":\"Envelope\",\"namespace\":\"orders\",\"fields\":["             \
    "{\"name\":\"before\",\"type\":[\"null\"," ROW "],\"default\":null},"                          \
    "{\"name\":\"after\",\"type\":[\"null\",\"Value\"],\"default\":null},"                         \
    "{\"name\":\"op\",\"type\":\"string\"},{\"name\":\"ts_ms\",\"type\":\"long\"}]}"

/* ---- a registry and topics in memory ---------------------------------------------- */

typedef struct reg {
    json_t *subjects; /* subject → [id, …] */
    json_t *texts;    /* schema text → id */
    json_t *topics;   /* name → partitions */
    json_t *docs;     /* source name → Source document */
    dm_avro_schema_t *by_id[64];
    int64_t next;
    dm_pipeline_plan_t *plans[16];
    size_t n_plans;
} reg_t;

static int64_t reg_add(reg_t *r, const char *subject, const char *text)
{
    /* one id per text, whatever the subject, as a registry gives */
    json_t *was = json_object_get(r->texts, text);
    int64_t id = was ? json_integer_value(was) : r->next++;
    if (!was && dm_avro_schema_parse(text, strlen(text), &r->by_id[id], NULL)) return 0;
    if (!was) json_object_set_new(r->texts, text, json_integer(id));
    json_t *ids = json_object_get(r->subjects, subject);
    if (!ids) json_object_set_new(r->subjects, subject, ids = json_array());
    json_array_append_new(ids, json_integer(id));
    return id;
}

static int64_t reg_latest(const reg_t *r, const char *subject)
{
    json_t *ids = json_object_get(r->subjects, subject);
    return ids ? json_integer_value(json_array_get(ids, json_array_size(ids) - 1)) : 0;
}

static void reg_source(reg_t *r, const char *name, const char *schema, int parts, const char *doc)
{
    char subject[200];
    snprintf(subject, sizeof(subject), "%s-value", name);
    reg_add(r, subject, schema);
    json_object_set_new(r->topics, name, json_integer(parts));
    json_object_set_new(r->docs, name, json_loads(doc, 0, NULL));
}

static dm_err_t f_latest(void *ctx, const char *subject, int64_t *id,
                         const dm_avro_schema_t **schema, dm_error_t *err)
{
    reg_t *r = ctx;
    *id = reg_latest(r, subject);
    if (!*id) return dm_error_set(err, DM_ERR_NOT_FOUND, "subject %s not found", subject);
    *schema = r->by_id[*id];
    return DM_OK;
}

static dm_err_t f_register(void *ctx, const char *subject, const char *text, int64_t *id,
                           dm_error_t *err)
{
    *id = reg_add(ctx, subject, text);
    return *id ? DM_OK : dm_error_set(err, DM_ERR_SCHEMA_PARSE, "bad schema for %s", subject);
}

static int32_t f_partitions(void *ctx, const char *topic)
{
    return (int32_t)json_integer_value(json_object_get(((reg_t *)ctx)->topics, topic));
}

static const json_t *f_source(void *ctx, const char *name)
{
    return json_object_get(((reg_t *)ctx)->docs, name);
}

static const json_t *f_sink(void *ctx, const char *name)
{
    (void)ctx;
    (void)name;
    return NULL;
}

static const dm_avro_schema_t *l_schema(void *ctx, int64_t id, dm_error_t *err)
{
    reg_t *r = ctx;
    if (id > 0 && id < r->next) return r->by_id[id];
    dm_error_set(err, DM_ERR_NOT_FOUND, "no schema %lld", (long long)id);
    return NULL;
}

static const dm_avro_schema_t *l_subject(void *ctx, const char *subject)
{
    reg_t *r = ctx;
    int64_t id = reg_latest(r, subject);
    return id ? r->by_id[id] : NULL;
}

/* Compiles a pipeline as the runtime does and creates the topics it writes. */
static dm_err_t apply(reg_t *r, const char *doc_json)
{
    dm_plan_env_t env = {f_latest, f_register, f_partitions, f_source, f_sink, r, NULL};
    json_t *doc = json_loads(doc_json, 0, NULL);
    dm_error_t err = {0};
    dm_pipeline_plan_t *plan = NULL;
    dm_err_t rc = doc ? dm_plan_compile(doc, &env, &plan, &err) : DM_ERR_INVALID;
    json_decref(doc);
    if (rc) {
        printf("    compile: %s\n", doc ? err.message : "bad test document");
        return rc;
    }
    for (size_t t = 0; t < plan->n_topics; t++)
        if (!json_object_get(r->topics, plan->topics[t].name))
            json_object_set_new(r->topics, plan->topics[t].name,
                                json_integer(plan->topics[t].partitions));
    r->plans[r->n_plans++] = plan;
    return DM_OK;
}

static void reg_free(reg_t *r)
{
    for (size_t i = 0; i < r->n_plans; i++)
        dm_plan_free(r->plans[i]);
    for (int64_t i = 1; i < r->next; i++)
        dm_avro_schema_free(r->by_id[i]);
    json_decref(r->subjects);
    json_decref(r->texts);
    json_decref(r->topics);
    json_decref(r->docs);
}

#define PIPE(name, body)                                                                           \
    "{\"kind\":\"Pipeline\",\"metadata\":{\"name\":\"" name "\"},\"spec\":" body "}"

/* The world every test reads. */
static dm_lineage_t *world(reg_t *r)
{
    *r = (reg_t){.subjects = json_object(),
                 .texts = json_object(),
                 .topics = json_object(),
                 .docs = json_object(),
                 .next = 1};
    reg_source(r, "plays", PLAY, 2, "{\"kind\":\"Source\",\"spec\":{\"connector\":\"datagen\"}}");
    reg_source(r, "clicks", PLAY, 2, "{\"kind\":\"Source\",\"spec\":{\"connector\":\"ingest\"}}");
    reg_source(r, "movies", MOVIE, 1,
               "{\"kind\":\"Source\",\"spec\":{\"connector\":\"datagen\",\"key\":[\"movie_id\"]}}");
    reg_source(
        r, "orders", ENVELOPE, 1,
        "{\"kind\":\"Source\",\"spec\":{\"connector\":\"postgres\",\"config\":{\"dsn\":"
        "\"host=db.example port=5433 dbname=shop user=cdc\",\"tables\":[\"public.orders\"]}}}");
    const char *docs[] = {
        PIPE("us-plays",
             "{\"from\":[\"plays\"],\"steps\":[{\"filter\":\"country = 'US' AND amount > 0\"},"
             "{\"project\":[\"id\",\"movie_id\",\"amount * 100 AS cents\",\"device.os AS os\","
             "\"country\",\"ts\",\"device\"]},"
             "{\"enrich\":{\"with\":\"movies\",\"on\":\"movie_id\",\"fields\":[\"title\"]}}],"
             "\"to\":[{\"source\":\"us-plays\"},{\"sink\":{\"type\":\"file\",\"path\":\"o.jsonl\"}}"
             "]}"),
        PIPE("by-country",
             "{\"from\":[\"us-plays\"],\"steps\":[{\"aggregate\":{\"window\":{\"type\":"
             "\"tumbling\",\"size\":\"1m\"},\"time\":\"ts\",\"group_by\":[\"country\"],"
             "\"aggregates\":[\"count(*) AS n\",\"sum(cents) AS total\"]}}],"
             "\"to\":[{\"sink\":{\"type\":\"iceberg\",\"table\":\"db.by_country\","
             "\"warehouse\":\"/wh\",\"sort_by\":\"country desc nulls last, window_start\"}}]}"),
        PIPE("all-plays", "{\"from\":[\"plays\",\"clicks\"],\"steps\":[{\"project\":[\"id\","
                          "\"country\"]}],\"to\":[{\"source\":\"all-plays\"}]}"),
        PIPE("joined", "{\"from\":[\"plays\"],\"steps\":[{\"join\":{\"with\":\"clicks\",\"on\":"
                       "\"id\",\"within\":\"1m\",\"time\":\"ts\"}}],\"to\":[{\"source\":"
                       "\"joined\"}]}"),
        PIPE("routed", "{\"from\":[\"plays\"],\"steps\":[{\"route\":{\"outputs\":{\"big\":"
                       "\"amount > 100\"},\"default\":\"rest\"}}],\"to\":[{\"source\":\"rest\"}]}"),
        PIPE("route-agg",
             "{\"from\":[\"plays\"],\"steps\":[{\"route\":{\"outputs\":{\"huge\":"
             "\"amount > 1000\"}}},{\"aggregate\":{\"window\":{\"type\":\"tumbling\","
             "\"size\":\"1m\"},\"time\":\"ts\",\"group_by\":[\"country\"],"
             "\"aggregates\":[\"count(*) AS n\"]}}],\"to\":[{\"source\":\"agg-rest\"}]}"),
        PIPE("order-totals",
             "{\"from\":[\"orders\"],\"steps\":[{\"project\":[\"after.id AS order_id\","
             "\"after.amount AS amount\"]}],\"to\":[{\"source\":\"order-totals\"}]}"),
    };
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++)
        if (apply(r, docs[i])) return NULL;
    dm_lineage_env_t env = {l_schema, l_subject, r};
    dm_lineage_t *g = NULL;
    dm_error_t err = {0};
    if (dm_lineage_build(r->docs, r->plans, r->n_plans, &env, &g, &err))
        printf("    build: %s\n", err.message);
    return g;
}

static bool has_node(const json_t *q, const char *id)
{
    size_t i;
    json_t *n;
    json_array_foreach(json_object_get(q, "nodes"), i, n)
    {
        if (!strcmp(json_string_value(json_object_get(n, "id")), id)) return true;
    }
    return false;
}

/* An edge from → to with subtype (and pipeline, when not NULL). */
static bool has_edge(const json_t *q, const char *from, const char *to, const char *subtype,
                     const char *pipeline)
{
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(q, "edges"), i, e)
    {
        const char *p = json_string_value(json_object_get(e, "pipeline"));
        if (!strcmp(json_string_value(json_object_get(e, "from")), from) &&
            !strcmp(json_string_value(json_object_get(e, "to")), to) &&
            !strcmp(json_string_value(json_object_get(e, "subtype")), subtype) &&
            (!pipeline || (p && !strcmp(p, pipeline))))
            return true;
    }
    return false;
}

static json_t *query(dm_lineage_t *g, const char *node, dm_lineage_dir_t dir, int depth)
{
    dm_error_t err = {0};
    json_t *q = dm_lineage_query(g, node, dir, depth, &err);
    if (!q) printf("    query %s: %s\n", node, err.message);
    return q;
}

/* filter + project (rename, computed from one input, nested path) + enrich. */
static void test_filter_project_enrich(void)
{
    reg_t r;
    dm_lineage_t *g = world(&r);
    REQUIRE(g);
    REQUIRE(json_array_size(dm_lineage_problems(g)) == 0);
    json_t *all = dm_lineage_to_json(g);
    CHECK(has_edge(all, "plays.id", "us-plays.id", "IDENTITY", "us-plays"));
    CHECK(has_edge(all, "plays.amount", "us-plays.cents", "TRANSFORMATION", "us-plays"));
    CHECK(!has_edge(all, "plays.amount", "us-plays.cents", "IDENTITY", NULL));
    CHECK(has_edge(all, "plays.device.os", "us-plays.os", "IDENTITY", "us-plays"));
    /* a record kept whole: its nested fields are linked too */
    CHECK(has_edge(all, "plays.device", "us-plays.device", "IDENTITY", "us-plays"));
    CHECK(has_edge(all, "plays.device.ver", "us-plays.device.ver", "IDENTITY", "us-plays"));
    /* the filter decides which records every output field has */
    CHECK(has_edge(all, "plays.country", "us-plays.id", "FILTER", "us-plays"));
    CHECK(has_edge(all, "plays.amount", "us-plays.title", "FILTER", "us-plays"));
    /* enrich: the table's field, and what decides the match */
    CHECK(has_edge(all, "movies.title", "us-plays.title", "IDENTITY", "us-plays"));
    CHECK(has_edge(all, "plays.movie_id", "us-plays.title", "JOIN", "us-plays"));
    CHECK(has_edge(all, "movies.movie_id", "us-plays.cents", "JOIN", "us-plays"));
    /* dataset level */
    CHECK(has_edge(all, "plays", "pipeline:us-plays", "INPUT", NULL));
    CHECK(has_edge(all, "movies", "pipeline:us-plays", "INPUT", NULL));
    CHECK(has_edge(all, "pipeline:us-plays", "us-plays", "OUTPUT", NULL));
    CHECK(has_edge(all, "pipeline:us-plays", "sink:us-plays/sink/0", "OUTPUT", NULL));
    CHECK(has_edge(all, "us-plays.title", "sink:us-plays/sink/0.title", "IDENTITY", "us-plays"));
    json_decref(all);
    dm_lineage_free(g);
    reg_free(&r);
}

/* A derived source read by an aggregate (re-keyed: group_by, window) into iceberg. */
static void test_chained_aggregate(void)
{
    reg_t r;
    dm_lineage_t *g = world(&r);
    REQUIRE(g);
    json_t *all = dm_lineage_to_json(g);
    /* no derived source: the pipeline's own topic, which its sink reads */
    const char *out = "pipeline.by-country.out", *sink = "sink:by-country/sink/0";
    char col[200], sc[200];
    snprintf(col, sizeof(col), "%s.country", out);
    snprintf(sc, sizeof(sc), "%s.country", sink);
    CHECK(has_edge(all, "us-plays.country", col, "IDENTITY", "by-country"));
    CHECK(has_edge(all, col, sc, "IDENTITY", "by-country"));
    /* the table's sort order (sort_by) decides the order of every column written */
    snprintf(sc, sizeof(sc), "%s.total", sink);
    CHECK(has_edge(all, col, sc, "SORT", "by-country"));
    char ws[200];
    snprintf(ws, sizeof(ws), "%s.window_start", out);
    CHECK(has_edge(all, ws, sc, "SORT", "by-country"));
    snprintf(ws, sizeof(ws), "%s.n", out);
    CHECK(!has_edge(all, ws, sc, "SORT", "by-country")); /* not in sort_by */
    /* named as OpenLineage names a table's location: namespace file, its directory */
    size_t ni;
    json_t *nd;
    bool named = false;
    json_array_foreach(json_object_get(all, "nodes"), ni, nd)
    {
        if (strcmp(json_string_value(json_object_get(nd, "id")), sink)) continue;
        named = true;
        CHECK_STR_EQ(json_string_value(json_object_get(nd, "namespace")), "file");
        CHECK_STR_EQ(json_string_value(json_object_get(nd, "dataset_name")), "/wh/db/by_country");
        CHECK_EQ_INT(json_array_size(json_object_get(nd, "sort")), 2);
    }
    CHECK(named);
    snprintf(sc, sizeof(sc), "%s.country", sink);
    CHECK(has_edge(all, "pipeline:by-country", out, "OUTPUT", NULL));
    snprintf(col, sizeof(col), "%s.total", out);
    CHECK(has_edge(all, "us-plays.cents", col, "AGGREGATION", "by-country"));
    CHECK(has_edge(all, "us-plays.country", col, "GROUP_BY", "by-country"));
    CHECK(has_edge(all, "us-plays.ts", col, "WINDOW", "by-country"));
    snprintf(col, sizeof(col), "%s.window_start", out);
    CHECK(has_edge(all, "us-plays.ts", col, "TRANSFORMATION", "by-country"));
    /* count(*) reads no field: only indirect edges lead to it */
    snprintf(col, sizeof(col), "%s.n", out);
    CHECK(!has_edge(all, "us-plays.cents", col, "AGGREGATION", NULL));
    CHECK(has_edge(all, "us-plays.country", col, "GROUP_BY", "by-country"));
    json_decref(all);

    /* what breaks if plays.country changes: both pipelines, the derived field, the sink column */
    json_t *q = query(g, "plays.country", DM_LINEAGE_DOWNSTREAM, -1);
    REQUIRE(q);
    CHECK(has_node(q, "us-plays.country"));
    CHECK(has_node(q, "sink:by-country/sink/0.country"));
    CHECK(has_node(q, "sink:by-country/sink/0.total")); /* grouped by it, through us-plays */
    CHECK(has_node(q, "pipeline:us-plays"));
    CHECK(has_node(q, "pipeline:by-country"));
    CHECK(has_node(q, "all-plays.country"));
    CHECK(!has_node(q, "plays.amount"));
    CHECK(!has_node(q, "order-totals.amount"));
    json_decref(q);
    /* one edge away: the first pipeline's fields only */
    q = query(g, "plays.country", DM_LINEAGE_DOWNSTREAM, 1);
    REQUIRE(q);
    CHECK(has_node(q, "us-plays.country"));
    CHECK(!has_node(q, "sink:by-country/sink/0.country"));
    json_decref(q);
    /* where the sink's total comes from, back to the first source */
    q = query(g, "sink:by-country/sink/0.total", DM_LINEAGE_UPSTREAM, -1);
    REQUIRE(q);
    CHECK(has_node(q, "us-plays.cents"));
    CHECK(has_node(q, "plays.amount"));
    CHECK(has_node(q, "plays.country"));
    CHECK(!has_node(q, "movies.year"));
    CHECK(!has_node(q, "sink:by-country/sink/0.n"));
    json_decref(q);
    dm_lineage_free(g);
    reg_free(&r);
}

static void test_union_join_route(void)
{
    reg_t r;
    dm_lineage_t *g = world(&r);
    REQUIRE(g);
    json_t *all = dm_lineage_to_json(g);
    CHECK(has_edge(all, "plays.country", "all-plays.country", "IDENTITY", "all-plays"));
    CHECK(has_edge(all, "clicks.country", "all-plays.country", "IDENTITY", "all-plays"));
    CHECK(has_edge(all, "clicks", "pipeline:all-plays", "INPUT", NULL));
    /* the join ran in a stage after re-keying both sides */
    CHECK(has_edge(all, "plays.country", "joined.country", "IDENTITY", "joined"));
    CHECK(has_edge(all, "clicks.country", "joined.clicks_country", "IDENTITY", "joined"));
    CHECK(has_edge(all, "plays.id", "joined.clicks_amount", "JOIN", "joined"));
    CHECK(has_edge(all, "clicks.id", "joined.country", "JOIN", "joined"));
    CHECK(has_edge(all, "clicks.ts", "joined.id", "WINDOW", "joined"));
    CHECK(has_edge(all, "clicks", "pipeline:joined", "INPUT", NULL));
    /* a route writes its outputs with the same fields; its predicate filters */
    CHECK(has_edge(all, "plays.amount", "big.amount", "IDENTITY", "routed"));
    CHECK(has_edge(all, "plays.amount", "big.id", "FILTER", "routed"));
    CHECK(has_edge(all, "plays.id", "rest.id", "IDENTITY", "routed"));
    CHECK(has_edge(all, "pipeline:routed", "big", "OUTPUT", NULL));
    /* a route in a stage before a re-key: its output has the routed records' fields */
    CHECK(has_edge(all, "plays.country", "huge.country", "IDENTITY", "route-agg"));
    CHECK(has_edge(all, "plays.amount", "huge.id", "FILTER", "route-agg"));
    CHECK(has_edge(all, "plays.country", "agg-rest.country", "IDENTITY", "route-agg"));
    CHECK(has_edge(all, "pipeline:route-agg", "huge", "OUTPUT", NULL));
    json_decref(all);
    dm_lineage_free(g);
    reg_free(&r);
}

static void test_cdc_table_columns(void)
{
    reg_t r;
    dm_lineage_t *g = world(&r);
    REQUIRE(g);
    const char *col = "table:orders/public.orders.amount";
    json_t *q = query(g, col, DM_LINEAGE_DOWNSTREAM, -1);
    REQUIRE(q);
    CHECK(has_edge(q, col, "orders.after.amount", "IDENTITY", NULL));
    CHECK(has_edge(q, col, "orders.before.amount", "IDENTITY", NULL));
    CHECK(has_edge(q, "orders.after.amount", "order-totals.amount", "IDENTITY", "order-totals"));
    CHECK(!has_node(q, "order-totals.order_id"));
    json_decref(q);
    /* the table node names the database as OpenLineage does */
    q = query(g, "table:orders/public.orders", DM_LINEAGE_DOWNSTREAM, 1);
    REQUIRE(q);
    size_t i;
    json_t *n;
    bool seen = false;
    json_array_foreach(json_object_get(q, "nodes"), i, n)
    {
        if (strcmp(json_string_value(json_object_get(n, "id")), "table:orders/public.orders"))
            continue;
        seen = true;
        CHECK(!strcmp(json_string_value(json_object_get(n, "namespace")),
                      "postgres://db.example:5433"));
        CHECK(!strcmp(json_string_value(json_object_get(n, "name")), "shop.public.orders"));
    }
    CHECK(seen);
    CHECK(has_edge(q, "table:orders/public.orders", "orders", "CAPTURE", NULL));
    json_decref(q);
    dm_lineage_free(g);
    reg_free(&r);
}

static void test_queries(void)
{
    reg_t r;
    dm_lineage_t *g = world(&r);
    REQUIRE(g);
    /* a source: datasets and pipelines only */
    json_t *q = query(g, "plays", DM_LINEAGE_DOWNSTREAM, -1);
    REQUIRE(q);
    CHECK(has_edge(q, "plays", "pipeline:us-plays", "INPUT", NULL));
    CHECK(has_edge(q, "us-plays", "pipeline:by-country", "INPUT", NULL));
    CHECK(has_edge(q, "pipeline:by-country", "sink:by-country/sink/0", "OUTPUT", NULL));
    CHECK(!has_node(q, "plays.country"));
    CHECK(!has_node(q, "movies"));
    json_decref(q);
    /* a bare name that is a source and a pipeline means both */
    q = query(g, "us-plays", DM_LINEAGE_UPSTREAM, -1);
    REQUIRE(q);
    CHECK(has_node(q, "pipeline:us-plays"));
    CHECK(has_node(q, "movies"));
    CHECK(has_node(q, "plays"));
    CHECK(!has_node(q, "clicks"));
    json_decref(q);
    /* a record field stands for its nested fields */
    q = query(g, "plays.device", DM_LINEAGE_DOWNSTREAM, -1);
    REQUIRE(q);
    CHECK(has_node(q, "us-plays.os"));
    json_decref(q);
    /* errors name what is missing */
    dm_error_t err = {0};
    CHECK(dm_lineage_query(g, "plays.nope", DM_LINEAGE_BOTH, -1, &err) == NULL);
    CHECK_EQ_INT(err.code, DM_ERR_NOT_FOUND);
    CHECK(strstr(err.message, "source plays has no field 'nope'") != NULL);
    CHECK(dm_lineage_query(g, "nothing", DM_LINEAGE_BOTH, -1, &err) == NULL);
    CHECK(strstr(err.message, "'nothing'") != NULL);
    CHECK_EQ_INT(dm_lineage_dir_parse("downstream"), DM_LINEAGE_DOWNSTREAM);
    CHECK_EQ_INT(dm_lineage_dir_parse("sideways"), -1);
    /* column lineage per pipeline, for OpenLineage */
    json_t *cl = dm_lineage_column_lineage(g, "us-plays");
    REQUIRE(cl);
    json_t *cents = json_object_get(json_object_get(cl, "us-plays"), "cents");
    bool direct = false;
    size_t i;
    json_t *x;
    json_array_foreach(cents, i, x)
    {
        if (!strcmp(json_string_value(json_object_get(x, "dataset")), "plays") &&
            !strcmp(json_string_value(json_object_get(x, "field")), "amount") &&
            !strcmp(json_string_value(json_object_get(x, "subtype")), "TRANSFORMATION"))
            direct = true;
    }
    CHECK(direct);
    json_decref(cl);
    CHECK(dm_lineage_column_lineage(g, "nope") == NULL);
    dm_lineage_free(g);
    reg_free(&r);
}

/* A pipeline whose steps no longer open against its input is left out, with why. */
static void test_problem_reported(void)
{
    reg_t r;
    dm_lineage_t *g = world(&r);
    REQUIRE(g);
    dm_lineage_free(g);
    /* plays loses `amount` after us-plays was compiled */
    char subject[] = "plays-value";
    const char *narrow = "{\"type\":\"record\",\"name\":\"Play\",\"fields\":[{\"name\":\"id\","
                         "\"type\":\"long\"},{\"name\":\"country\",\"type\":\"string\"}]}";
    int64_t id = reg_add(&r, subject, narrow);
    REQUIRE(id > 0);
    r.plans[0]->stages[0].input.schema_id = id;
    dm_lineage_env_t env = {l_schema, l_subject, &r};
    dm_error_t err = {0};
    REQUIRE(dm_lineage_build(r.docs, r.plans, r.n_plans, &env, &g, &err) == DM_OK);
    const json_t *p = dm_lineage_problems(g);
    CHECK(json_array_size(p) >= 1);
    const char *msg = json_string_value(json_object_get(json_array_get(p, 0), "error"));
    CHECK(msg && strstr(msg, "amount") != NULL);
    CHECK(
        !strcmp(json_string_value(json_object_get(json_array_get(p, 0), "pipeline")), "us-plays"));
    dm_lineage_free(g);
    reg_free(&r);
}

/* The place of i in order[0..n), or n when absent. */
static size_t place_of(const size_t *order, size_t n, size_t i)
{
    for (size_t k = 0; k < n; k++)
        if (order[k] == i) return k;
    return n;
}

/* Two graphs are the same: every node (attributes included) and edge in the
 * same order, the same problems, and the same answers from nested fields. */
static bool same_graph(const dm_lineage_t *a, const dm_lineage_t *b)
{
    json_t *ja = dm_lineage_to_json(a), *jb = dm_lineage_to_json(b);
    bool same = json_equal(ja, jb) && json_equal(dm_lineage_problems(a), dm_lineage_problems(b));
    json_decref(ja);
    json_decref(jb);
    const char *nodes[] = {"plays.device", "us-plays.device", "us-plays", "dev.device", "joined"};
    for (size_t i = 0; same && i < sizeof(nodes) / sizeof(nodes[0]); i++) {
        dm_error_t ea = {0}, eb = {0};
        json_t *qa = dm_lineage_query(a, nodes[i], DM_LINEAGE_BOTH, -1, &ea);
        json_t *qb = dm_lineage_query(b, nodes[i], DM_LINEAGE_BOTH, -1, &eb);
        same = qa ? json_equal(qa, qb) : !qb && !strcmp(ea.message, eb.message);
        json_decref(qa);
        json_decref(qb);
    }
    return same;
}

/* Fragments replayed in store order give exactly the graph a full build
 * gives, over a random sequence of applies (new, or a new generation: its
 * fragment recomputed), deletes and orders; the order-dependent cases
 * (first-seen fields of derived sources, nested-field fallbacks) included. */
static void test_fragments_replay_exactly(void)
{
    reg_t r;
    dm_lineage_t *g = world(&r);
    REQUIRE(g);
    dm_lineage_free(g);
    REQUIRE(apply(&r, PIPE("dev", "{\"from\":[\"us-plays\"],\"steps\":[{\"project\":[\"id\","
                                  "\"device.ver AS ver\",\"device\"]}],\"to\":[{\"source\":"
                                  "\"dev\"}]}")) == DM_OK);
    REQUIRE(apply(&r, PIPE("dev-os", "{\"from\":[\"dev\"],\"steps\":[{\"filter\":\"device.os = "
                                     "'ios'\"}],\"to\":[{\"sink\":{\"type\":\"file\",\"path\":"
                                     "\"d.jsonl\"}}]}")) == DM_OK);
    REQUIRE(apply(&r, PIPE("narrowed", "{\"from\":[\"plays\"],\"steps\":[{\"project\":[\"id\","
                                       "\"amount\"]}],\"to\":[{\"source\":\"narrowed\"}]}")) ==
            DM_OK);
    /* narrowed reads a version of plays without `amount`: a problem, recorded too */
    int64_t narrow = reg_add(&r, "plays-narrow-value",
                             "{\"type\":\"record\",\"name\":\"Play\",\"fields\":[{\"name\":\"id\","
                             "\"type\":\"long\"}]}");
    r.plans[r.n_plans - 1]->stages[0].input.schema_id = narrow;
    dm_lineage_env_t env = {l_schema, l_subject, &r};
    size_t n = r.n_plans;
    void *frag[16] = {0};
    size_t frag_len[16] = {0};
    size_t order[16], n_order = 0, replayed = 0, stale = 0, recomputed = 0, differ = 0;
    uint64_t seed = 0x5eed;
    for (int step = 0; step < 300; step++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        size_t i = (size_t)(seed >> 33) % n, at = place_of(order, n_order, i);
        if (at < n_order && (seed >> 20) % 2) { /* delete */
            memmove(&order[at], &order[at + 1], (n_order - at - 1) * sizeof(order[0]));
            n_order--;
            free(frag[i]);
            frag[i] = NULL;
        } else if (at < n_order) { /* a new generation */
            free(frag[i]);
            frag[i] = NULL;
        } else { /* new, at a random place */
            size_t pos = n_order ? (size_t)(seed >> 40) % (n_order + 1) : 0;
            memmove(&order[pos + 1], &order[pos], (n_order - pos) * sizeof(order[0]));
            order[pos] = i;
            n_order++;
        }
        dm_lineage_t *inc = NULL, *full = NULL;
        dm_error_t err = {0};
        REQUIRE(dm_lineage_new(r.docs, &env, &inc, &err) == DM_OK);
        for (size_t k = 0; k < n_order; k++) {
            size_t p = order[k];
            int got = frag[p] ? dm_lineage_replay(inc, frag[p], frag_len[p]) : 0;
            REQUIRE(got >= 0);
            if (got) {
                replayed++;
                continue;
            }
            stale += frag[p] != NULL;
            recomputed++;
            free(frag[p]);
            REQUIRE(dm_lineage_add(inc, &env, r.plans[p], &frag[p], &frag_len[p], &err) == DM_OK);
        }
        REQUIRE(dm_lineage_finish(inc, &err) == DM_OK);
        dm_pipeline_plan_t *plans[16];
        for (size_t k = 0; k < n_order; k++)
            plans[k] = r.plans[order[k]];
        REQUIRE(dm_lineage_build(r.docs, plans, n_order, &env, &full, &err) == DM_OK);
        if (!same_graph(inc, full)) differ++;
        dm_lineage_free(inc);
        dm_lineage_free(full);
    }
    printf("    %zu replayed, %zu recomputed (%zu of them stale: the graph they read had "
           "changed), %zu differing\n",
           replayed, recomputed, stale, differ);
    CHECK(differ == 0);
    CHECK(replayed > recomputed);
    CHECK(stale > 0); /* the order-dependent cases did happen */
    /* a damaged fragment is never replayed */
    dm_lineage_t *inc = NULL;
    dm_error_t err = {0};
    REQUIRE(dm_lineage_new(r.docs, &env, &inc, &err) == DM_OK);
    void *f = NULL;
    size_t len = 0;
    dm_lineage_t *tmp = NULL;
    REQUIRE(dm_lineage_new(r.docs, &env, &tmp, &err) == DM_OK);
    REQUIRE(dm_lineage_add(tmp, &env, r.plans[0], &f, &len, &err) == DM_OK);
    dm_lineage_free(tmp);
    unsigned char *bad = malloc(len);
    memcpy(bad, f, len);
    bad[len / 2] ^= 0x20;
    CHECK(dm_lineage_replay(inc, bad, len) == 0);
    CHECK(dm_lineage_replay(inc, f, len / 2) == 0);
    CHECK(dm_lineage_replay(inc, "DMLF", 4) == 0);
    CHECK(dm_lineage_replay(inc, f, len) == 1);
    free(bad);
    free(f);
    dm_lineage_free(inc);
    for (size_t i = 0; i < n; i++)
        free(frag[i]);
    reg_free(&r);
}

static const json_t *at(const json_t *j, const char *path)
{
    char buf[300];
    snprintf(buf, sizeof(buf), "%s", path);
    char *save;
    for (char *k = strtok_r(buf, ".", &save); k && j; k = strtok_r(NULL, ".", &save))
        j = json_is_array(j) ? json_array_get(j, (size_t)atoi(k)) : json_object_get(j, k);
    return j;
}

static bool str_at(const json_t *j, const char *path, const char *want)
{
    const char *v = json_string_value(at(j, path));
    if (!v || strcmp(v, want))
        printf("    %s: '%s', expected '%s'\n", path, v ? v : "(none)", want);
    return v && !strcmp(v, want);
}

/* The RunEvent's required members and facet shapes (OpenLineage 2-0-2). */
static void test_openlineage_event(void)
{
    reg_t r;
    dm_lineage_t *g = world(&r);
    REQUIRE(g);
    dm_openlineage_options_t opt = {.ns = "datamesh://127.0.0.1:8080"};
    char run[37], again[37], other[37];
    dm_openlineage_uuid("Pipeline/us-plays/1", run);
    dm_openlineage_uuid("Pipeline/us-plays/1", again);
    dm_openlineage_uuid("Pipeline/us-plays/2", other);
    CHECK(!strcmp(run, again) && strcmp(run, other));
    CHECK(strlen(run) == 36 && run[8] == '-' && run[13] == '-' && run[14] == '5' &&
          run[18] == '-' && strchr("89ab", run[19]) && run[23] == '-');
    json_t *job = dm_lineage_job(g, "us-plays");
    REQUIRE(job);
    json_t *ev = dm_openlineage_event(&opt, "START", "pipeline.us-plays", "PIPELINE", run, job,
                                      1796658000123LL);
    json_decref(job);
    REQUIRE(ev);
    CHECK(str_at(ev, "eventType", "START"));
    CHECK(str_at(ev, "eventTime", "2026-12-07T15:40:00.123Z"));
    CHECK(json_is_string(at(ev, "producer")));
    CHECK(str_at(ev, "schemaURL",
                 "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"));
    CHECK(str_at(ev, "run.runId", run));
    CHECK(str_at(ev, "job.namespace", "datamesh://127.0.0.1:8080"));
    CHECK(str_at(ev, "job.name", "pipeline.us-plays"));
    CHECK(str_at(ev, "job.facets.jobType.processingType", "STREAMING"));
    CHECK(str_at(ev, "job.facets.jobType.jobType", "PIPELINE"));
    CHECK(json_is_string(at(ev, "job.facets.jobType._producer")));
    CHECK(json_is_string(at(ev, "job.facets.jobType._schemaURL")));
    /* inputs: plays and the enrich table's source, with their schema */
    const json_t *inputs = at(ev, "inputs");
    CHECK_EQ_INT(json_array_size(inputs), 2);
    bool plays = false;
    size_t i;
    json_t *d;
    json_array_foreach(inputs, i, d)
    {
        if (strcmp(json_string_value(at(d, "name")), "plays")) continue;
        plays = true;
        CHECK(str_at(d, "namespace", "datamesh://127.0.0.1:8080"));
        CHECK(str_at(d, "facets.schema.fields.0.name", "id"));
        CHECK(str_at(d, "facets.schema.fields.0.type", "long"));
        CHECK(json_is_string(at(d, "facets.schema._schemaURL")));
    }
    CHECK(plays);
    /* outputs: the derived source and the file sink, with column lineage */
    const json_t *out = NULL;
    json_array_foreach(at(ev, "outputs"), i, d)
    {
        if (!strcmp(json_string_value(at(d, "name")), "us-plays")) out = d;
    }
    REQUIRE(out);
    CHECK_EQ_INT(json_array_size(at(ev, "outputs")), 2);
    /* the file sink, named per OpenLineage's naming spec: namespace file, its absolute path */
    bool file_sink = false;
    json_array_foreach(at(ev, "outputs"), i, d)
    {
        const char *name = json_string_value(at(d, "name"));
        if (strcmp(json_string_value(at(d, "namespace")), "file")) continue;
        file_sink =
            name[0] == '/' && strlen(name) > 8 && !strcmp(name + strlen(name) - 8, "/o.jsonl");
    }
    CHECK(file_sink);
    CHECK(json_is_string(at(out, "facets.columnLineage._schemaURL")));
    const json_t *cents = at(out, "facets.columnLineage.fields.cents.inputFields");
    bool amount = false;
    json_array_foreach(cents, i, d)
    {
        if (strcmp(json_string_value(at(d, "field")), "amount")) continue;
        CHECK(str_at(d, "namespace", "datamesh://127.0.0.1:8080"));
        CHECK(str_at(d, "name", "plays"));
        size_t k;
        json_t *t;
        json_array_foreach(at(d, "transformations"), k, t)
        {
            if (!strcmp(json_string_value(at(t, "subtype")), "TRANSFORMATION")) {
                amount = true;
                CHECK(str_at(t, "type", "DIRECT"));
                CHECK(json_is_boolean(at(t, "masking")));
            }
        }
    }
    CHECK(amount);
    json_decref(ev);
    /* a CDC source's connector job: the table, named as OpenLineage names Postgres tables */
    job = dm_lineage_source_job(g, "orders");
    REQUIRE(job);
    opt.topic_ns = "kafka://127.0.0.1:9092";
    ev = dm_openlineage_event(&opt, "RUNNING", "source.orders", "CONNECTOR", run, job, 0);
    json_decref(job);
    CHECK(str_at(ev, "inputs.0.namespace", "postgres://db.example:5433"));
    CHECK(str_at(ev, "inputs.0.name", "shop.public.orders"));
    CHECK(str_at(ev, "outputs.0.namespace", "kafka://127.0.0.1:9092"));
    CHECK(str_at(ev, "outputs.0.name", "orders"));
    /* field names hold dots: look "after.amount" up as one key */
    CHECK(str_at(json_object_get(at(ev, "outputs.0.facets.columnLineage.fields"), "after.amount"),
                 "inputFields.0.field", "amount"));
    json_decref(ev);
    CHECK(dm_lineage_source_job(g, "nope") == NULL);
    dm_lineage_free(g);
    reg_free(&r);
}

int main(void)
{
    RUN(test_filter_project_enrich);
    RUN(test_chained_aggregate);
    RUN(test_union_join_route);
    RUN(test_cdc_table_columns);
    RUN(test_queries);
    RUN(test_problem_reported);
    RUN(test_fragments_replay_exactly);
    RUN(test_openlineage_event);
    return check_summary();
}
