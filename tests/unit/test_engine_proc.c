/* Unit tests for engine processors: filter and project over decoded batches,
 * derived output schemas, dead letters, and outputs that encode with the
 * output schema (checked by a binary round trip through the Avro codec). */
#include "check.h"
#include "engine/processor.h"

static const char *schema_json =
    "{\"type\": \"record\", \"name\": \"Play\", \"namespace\": \"demo\", \"fields\": ["
    " {\"name\": \"id\", \"type\": \"long\"},"
    " {\"name\": \"movie_id\", \"type\": \"long\"},"
    " {\"name\": \"country\", \"type\": \"string\"},"
    " {\"name\": \"amount\", \"type\": \"double\"},"
    " {\"name\": \"ts\", \"type\": {\"type\": \"long\", \"logicalType\": \"timestamp-millis\"}},"
    " {\"name\": \"device\", \"type\": [\"null\", {\"type\": \"record\", \"name\": \"Device\", "
    "\"fields\": [{\"name\": \"os\", \"type\": \"string\"}, {\"name\": \"kind\", \"type\": "
    "{\"type\": \"enum\", \"name\": \"Kind\", \"symbols\": [\"TV\", \"PHONE\"]}}]}], \"default\": "
    "null}]}";

static const char *rows[] = {
    "{\"id\": 1, \"movie_id\": 10, \"country\": \"US\", \"amount\": 2.5, \"ts\": 1000, \"device\": "
    "{\"os\": \"tvos\", \"kind\": \"TV\"}}",
    "{\"id\": 2, \"movie_id\": 11, \"country\": \"FR\", \"amount\": 1.0, \"ts\": 2000, \"device\": "
    "null}",
    "{\"id\": 3, \"movie_id\": 12, \"country\": \"US\", \"amount\": 0.0, \"ts\": 3000, \"device\": "
    "null}",
    "{\"id\": 4, \"movie_id\": 0, \"country\": \"US\", \"amount\": 4.0, \"ts\": 4000, \"device\": "
    "{\"os\": \"ios\", \"kind\": \"PHONE\"}}",
};

static dm_avro_schema_t *schema;

static void load(dm_rows_t *b)
{
    dm_rows_init(b, schema->root);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        dm_row_t *r = dm_rows_push(b);
        dm_error_t err = {0};
        if (dm_avro_from_json_text(schema->root, rows[i], strlen(rows[i]), DM_AVRO_JSON_PLAIN,
                                   &b->arena, &r->value, &err))
            printf("    row %zu: %s\n", i, err.message);
        r->offset = (int64_t)i;
    }
}

/* Encodes each output record with the output schema, decodes it back and
 * renders it as plain JSON lines. */
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

static void test_filter(void)
{
    json_t *conf = json_pack("{s:s}", "expr", "country = 'US' AND amount > 0");
    dm_proc_t *p;
    dm_error_t err = {0};
    REQUIRE(dm_proc_open(&dm_proc_filter, NULL, conf, schema->root, &p, &err) == DM_OK);
    CHECK(p->output == NULL); /* same schema as the input */
    const char *const *paths;
    size_t n = p->ops->read_paths(p, &paths);
    CHECK_EQ_INT(n, 2);
    dm_rows_t in, out;
    load(&in);
    dm_rows_init(&out, schema->root);
    dm_dead_letters_t dead = {0};
    REQUIRE(p->ops->process(p, &in, &out, &dead, &err) == DM_OK);
    CHECK_EQ_INT(out.n, 2);
    CHECK_EQ_INT(out.records[0].offset, 0);
    CHECK_EQ_INT(out.records[1].offset, 3);
    CHECK_EQ_INT(dead.n, 0);
    dm_rows_free(&in);
    dm_rows_free(&out);
    dm_dead_letters_free(&dead);
    dm_proc_close(p);
    json_decref(conf);
}

static void test_project_schema_and_values(void)
{
    json_t *conf = json_pack("{s:[s,s,s,s,s,s]}", "columns", "id", "movie_id AS movie",
                             "amount * 100 AS cents", "device.os", "device.kind AS kind",
                             "upper(country) || '-' || CAST(ts AS string) AS tag");
    dm_proc_t *p;
    dm_error_t err = {0};
    if (dm_proc_open(&dm_proc_project, NULL, conf, schema->root, &p, &err))
        printf("    %s\n", err.message);
    REQUIRE(p);
    REQUIRE(p->output);
    dm_buf_t canon = DM_BUF_INIT;
    dm_avro_canonical(p->output->root, &canon);
    const char *cs;
    dm_buf_cstr(&canon, &cs);
    CHECK_STR_EQ(cs,
                 "{\"name\":\"demo.projected.Play\",\"type\":\"record\",\"fields\":["
                 "{\"name\":\"id\",\"type\":\"long\"},{\"name\":\"movie\",\"type\":\"long\"},"
                 "{\"name\":\"cents\",\"type\":\"double\"},"
                 "{\"name\":\"os\",\"type\":[\"null\",\"string\"]},"
                 "{\"name\":\"kind\",\"type\":[\"null\",{\"name\":\"demo.Kind\",\"type\":\"enum\","
                 "\"symbols\":[\"TV\",\"PHONE\"]}]},"
                 "{\"name\":\"tag\",\"type\":\"string\"}]}");
    dm_buf_free(&canon);
    const char *const *paths;
    size_t n = p->ops->read_paths(p, &paths);
    CHECK_EQ_INT(n, 7); /* id movie_id amount device.os device.kind country ts */
    dm_rows_t in, out;
    load(&in);
    dm_rows_init(&out, p->output->root);
    dm_dead_letters_t dead = {0};
    REQUIRE(p->ops->process(p, &in, &out, &dead, &err) == DM_OK);
    REQUIRE(out.n == 4);
    char text[4096];
    render(p->output->root, &out, text, sizeof(text));
    CHECK_CONTAINS(text, "{\"id\":1,\"movie\":10,\"cents\":250.0,\"os\":\"tvos\",\"kind\":\"TV\","
                         "\"tag\":\"US-1970-01-01T00:00:01.000Z\"}\n");
    CHECK_CONTAINS(text, "{\"id\":2,\"movie\":11,\"cents\":100.0,\"os\":null,\"kind\":null,\"tag\":"
                         "\"FR-1970-01-01T00:00:02.000Z\"}\n");
    CHECK_CONTAINS(text, "\"os\":\"ios\",\"kind\":\"PHONE\"");
    dm_rows_free(&in);
    dm_rows_free(&out);
    dm_dead_letters_free(&dead);
    dm_proc_close(p);
    json_decref(conf);
}

static void test_project_star_drop_and_dead_letters(void)
{
    json_t *conf = json_pack("{s:[s,s,s]}", "columns", "*", "-device", "amount / movie_id AS per");
    dm_proc_t *p;
    dm_error_t err = {0};
    if (dm_proc_open(&dm_proc_project, NULL, conf, schema->root, &p, &err))
        printf("    %s\n", err.message);
    REQUIRE(p);
    CHECK_EQ_INT(p->output->root->n_fields, 6);
    CHECK_STR_EQ(p->output->root->fields[4].name, "ts");
    CHECK_EQ_INT(p->output->root->fields[4].type->logical, DM_AVRO_LT_TIMESTAMP_MILLIS);
    dm_rows_t in, out;
    load(&in);
    dm_rows_init(&out, p->output->root);
    dm_dead_letters_t dead = {0};
    REQUIRE(p->ops->process(p, &in, &out, &dead, &err) == DM_OK);
    /* amount / movie_id: 4.0 / 0 → division by zero, the 4th record is a dead letter */
    CHECK_EQ_INT(out.n, 3);
    REQUIRE(dead.n == 1);
    CHECK_EQ_INT(dead.items[0].index, 3);
    CHECK_CONTAINS(dead.items[0].reason, "division by zero");
    dm_rows_free(&in);
    dm_rows_free(&out);
    dm_dead_letters_free(&dead);
    dm_proc_close(p);
    json_decref(conf);
}

static void test_open_errors(void)
{
    const struct {
        const dm_proc_ops_t *ops;
        const char *conf;
        const char *want;
    } cases[] = {
        {&dm_proc_filter, "{}", "expr: required key 'expr' is missing"},
        {&dm_proc_filter, "{\"expr\": \"amount + 1\"}", "a filter needs a boolean, got double"},
        {&dm_proc_filter, "{\"expr\": \"colour = 'red'\"}", "no field 'colour' in Play"},
        {&dm_proc_project, "{\"columns\": []}", "columns: must list at least one item"},
        {&dm_proc_project, "{\"columns\": [\"amount * 2\"]}",
         "column 'amount * 2' is computed: name it with AS"},
        {&dm_proc_project, "{\"columns\": [\"id\", \"movie_id AS id\"]}",
         "two output columns are named 'id'"},
        {&dm_proc_project, "{\"columns\": [\"device.nope\"]}",
         "column 'device.nope': no field 'nope' in Device"},
        {&dm_proc_project, "{\"columns\": [\"id AS 9lives\"]}",
         "column name '9lives' is not an Avro name"},
        {&dm_proc_project, "{\"columns\": [\"country.x\"]}", "'x' is not inside a record"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *conf = json_loads(cases[i].conf, 0, NULL);
        dm_proc_t *p = NULL;
        dm_error_t err = {0};
        dm_err_t rc = dm_proc_open(cases[i].ops, NULL, conf, schema->root, &p, &err);
        CHECK(rc != DM_OK);
        if (!strstr(err.message, cases[i].want)) {
            printf("    case %zu: got %s\n      want %s\n", i, err.message, cases[i].want);
            CHECK(!"wrong message");
        }
        dm_proc_close(p);
        json_decref(conf);
    }
    CHECK(dm_proc_find("filter") == &dm_proc_filter);
    CHECK(dm_proc_find("nope") == NULL);
}

int main(void)
{
    dm_error_t err = {0};
    if (dm_avro_schema_parse(schema_json, strlen(schema_json), &schema, &err)) {
        printf("schema: %s\n", err.message);
        return 1;
    }
    RUN(test_filter);
    RUN(test_project_schema_and_values);
    RUN(test_project_star_drop_and_dead_letters);
    RUN(test_open_errors);
    dm_avro_schema_free(schema);
    return check_summary();
}
