/* Unit tests of connectors/cockroachdb: HLC timestamps, the CREATE CHANGEFEED
 * statement (secrets hidden where shown), and webhook bodies written from
 * CockroachDB's documented format received into an embedded log: the
 * envelope, re-deliveries, resolved positions, dead letters and refused
 * bodies. (No CockroachDB server runs here; tests/integration/crdb_webhook.sh
 * does the same over HTTP.) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "connectors/cockroachdb/cockroachdb.h"
#include "connectors/unit.h"
#include "transport/transport.h"

static char dir[] = "/tmp/dm-test-crdb.XXXXXX";
static dm_transport_t *t;
static uint32_t next_id = 1;

static dm_err_t ensure_topic(void *ctx, const char *topic, int32_t partitions, const char *subject,
                             dm_error_t *err)
{
    dm_topic_description_t d;
    if (dm_transport_describe_topic(t, topic, &d, NULL) == DM_OK) {
        dm_transport_description_free(&d);
        return DM_OK;
    }
    dm_topic_config_t c = {.name = topic, .partitions = partitions};
    return dm_transport_create_topic(t, &c, err);
}

/* As the registry: the same text gets the same id. */
static char *texts[64];
static dm_err_t register_schema(void *ctx, const char *subject, const char *json, uint32_t *id,
                                dm_error_t *err)
{
    for (uint32_t i = 1; i < next_id; i++)
        if (!strcmp(texts[i], json)) {
            *id = i;
            return DM_OK;
        }
    if (next_id >= 64) return dm_error_set(err, DM_ERR_RANGE, "too many schemas");
    texts[next_id] = strdup(json);
    *id = next_id++;
    return DM_OK;
}

static int64_t count(const char *topic, int32_t partitions)
{
    int64_t n = 0;
    for (int32_t p = 0; p < partitions; p++) {
        int64_t s = 0, e = 0;
        if (!dm_transport_offsets(t, topic, p, &s, &e, NULL)) n += e - s;
    }
    return n;
}

static const char *ROW = "{\"type\":\"record\",\"name\":\"Order\",\"fields\":[{\"name\":\"id\","
                         "\"type\":\"long\"},{\"name\":\"qty\",\"type\":\"int\"}]}";

typedef struct fixture {
    dm_crdb_config_t conf;
    dm_source_env_t env;
    dm_strlist_t keys;
    char *key_items[1];
    dm_crdb_source_t *src;
} fixture_t;

static dm_err_t open_source(fixture_t *f, const char *name, const char *schema, const char *key,
                            dm_error_t *err)
{
    memset(f, 0, sizeof(*f));
    dm_config_defaults(&dm_crdb_config_table, &f->conf, NULL);
    json_t *c =
        json_pack("{s:s, s:s, s:s, s:s}", "dsn", "host=x", "table", "shop.public.orders",
                  "webhook_url", "https://dm.example:8443", "token_env", "DM_TEST_CRDB_TOKEN");
    dm_config_apply_json(&dm_crdb_config_table, &f->conf, c, NULL, NULL);
    json_decref(c);
    f->key_items[0] = (char *)key;
    f->keys = (dm_strlist_t){.items = f->key_items, .n = key ? 1 : 0};
    f->env = (dm_source_env_t){.name = name,
                               .transport = t,
                               .topic = name,
                               .partitions = 2,
                               .key_fields = &f->keys,
                               .declared_schema = schema,
                               .ensure_topic = ensure_topic,
                               .register_schema = register_schema};
    dm_err_t rc = dm_crdb_source_new(&f->env, &f->conf, &f->src, err);
    return rc ? rc : dm_crdb_source_prepare(f->src, err);
}

static void close_source(fixture_t *f)
{
    dm_crdb_source_free(f->src);
    dm_config_free(&dm_crdb_config_table, &f->conf);
}

static dm_err_t post(fixture_t *f, const char *body, size_t *accepted, dm_error_t *err)
{
    return dm_crdb_receive(f->src, body, strlen(body), accepted, err);
}

static void test_hlc(void)
{
    dm_crdb_hlc_t a, b;
    dm_error_t err = {0};
    CHECK_EQ_INT(dm_crdb_hlc_parse("1631648624419853000.0000000002", &a, &err), DM_OK);
    CHECK(a.wall == 1631648624419853000LL && a.logical == 2);
    CHECK_EQ_INT(dm_crdb_hlc_parse("1631648624419853000", &b, &err), DM_OK);
    CHECK(dm_crdb_hlc_cmp(b, a) < 0 && dm_crdb_hlc_cmp(a, b) > 0 && dm_crdb_hlc_cmp(a, a) == 0);
    const char *bad[] = {"", "x", "1.", ".5", "1.2.3", "12 ", "-5", "99999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK_EQ_INT(dm_crdb_hlc_parse(bad[i], &a, &err), DM_ERR_INVALID);
    CHECK_CONTAINS(err.message, "HLC");
}

static void test_changefeed_sql(void)
{
    setenv("DM_TEST_CRDB_TOKEN", "tok-secret-91", 1);
    fixture_t f;
    dm_error_t err = {0};
    REQUIRE(open_source(&f, "sqlsrc", ROW, "id", &err) == DM_OK);
    char *shown = dm_crdb_changefeed_sql(f.src, false), *real = dm_crdb_changefeed_sql(f.src, true);
    CHECK_CONTAINS(shown, "CREATE CHANGEFEED FOR TABLE shop.public.orders INTO "
                          "'webhook-https://dm.example:8443/api/v1/sources/sqlsrc/changefeed'");
    CHECK_CONTAINS(shown,
                   "WITH updated, resolved = '10s', format = json, envelope = wrapped, diff");
    CHECK_CONTAINS(shown, "webhook_auth_header = 'Bearer ***'");
    CHECK(!strstr(shown, "tok-secret-91"));
    CHECK(!strstr(shown, "cursor"));
    CHECK_CONTAINS(real, "webhook_auth_header = 'Bearer tok-secret-91'");
    free(shown);
    free(real);
    size_t n;
    REQUIRE(post(&f, "{\"resolved\":\"1700000000000000000.0000000001\"}", &n, &err) == DM_OK);
    shown = dm_crdb_changefeed_sql(f.src, false);
    CHECK_CONTAINS(shown, "cursor = '1700000000000000000.0000000001'");
    free(shown);
    close_source(&f);
}

static void test_receive(void)
{
    fixture_t f;
    dm_error_t err = {0};
    REQUIRE(open_source(&f, "orders", ROW, "id", &err) == DM_OK);
    size_t n = 0;
    const char *creates =
        "{\"payload\":[{\"after\":{\"id\":1,\"qty\":1},\"before\":null,\"key\":[1],\"topic\":"
        "\"orders\",\"updated\":\"100.0000000000\"},{\"after\":{\"id\":2,\"qty\":2},\"before\":"
        "null,\"key\":[2],\"topic\":\"orders\",\"updated\":\"101.0000000000\"}],\"length\":2}";
    CHECK_EQ_INT(post(&f, creates, &n, &err), DM_OK);
    CHECK_EQ_INT((int)n, 2);
    CHECK_EQ_INT((int)count("orders", 2), 2);
    CHECK_EQ_INT(post(&f, creates, &n, &err), DM_OK); /* re-delivered */
    CHECK_EQ_INT((int)count("orders", 2), 2);
    /* a bad row among good ones: dead-lettered, the others written */
    CHECK_EQ_INT(post(&f,
                      "{\"payload\":[{\"after\":{\"id\":3,\"qty\":\"lots\"},\"key\":[3],"
                      "\"updated\":\"102\"},{\"after\":null,\"before\":{\"id\":1,\"qty\":1},"
                      "\"key\":[1],\"updated\":\"103\"},{\"after\":{\"id\":4,\"qty\":4},\"key\":"
                      "[4,5],\"updated\":\"103\"}],\"length\":3}",
                      &n, &err),
                 DM_OK);
    CHECK_EQ_INT((int)count("orders", 2), 3);
    CHECK_EQ_INT((int)count("source.orders.dlq", 1), 2);
    dm_transport_batch_t b = {0};
    REQUIRE(dm_transport_fetch(t, "source.orders.dlq", 0, 0, 1 << 20, 0, &b, NULL) == DM_OK);
    REQUIRE(b.n == 2);
    char reason[400] = "", where[400] = "";
    for (uint32_t h = 0; h < b.records[0].n_headers; h++) {
        const dm_record_header_t *x = &b.records[0].headers[h];
        if (!strncmp(x->key, "dm.error.reason", x->key_len))
            snprintf(reason, sizeof(reason), "%.*s", (int)x->value_len, (const char *)x->value);
        if (!strncmp(x->key, "dm.source.position", x->key_len))
            snprintf(where, sizeof(where), "%.*s", (int)x->value_len, (const char *)x->value);
    }
    CHECK_CONTAINS(reason, "does not fit spec.schema");
    CHECK_CONTAINS(reason, "qty");
    CHECK_STR_EQ(where, "shop.public.orders@102");
    CHECK_CONTAINS((const char *)b.records[0].value, "\"lots\"");
    dm_transport_batch_free(t, &b);
    /* resolved: the position; then anything at or below it is dropped */
    CHECK_EQ_INT(post(&f, "{\"resolved\":\"103.0000000000\"}", &n, &err), DM_OK);
    CHECK_EQ_INT(post(&f,
                      "{\"payload\":[{\"after\":{\"id\":2,\"qty\":20},\"key\":[2],"
                      "\"updated\":\"103.0000000000\"}],\"length\":1}",
                      &n, &err),
                 DM_OK);
    CHECK_EQ_INT((int)count("orders", 2), 3);
    json_t *st = dm_crdb_source_status(f.src);
    CHECK_STR_EQ(json_string_value(json_object_get(st, "position")), "103.0000000000");
    CHECK_EQ_INT((int)json_integer_value(json_object_get(st, "dead_letters")), 2);
    CHECK_EQ_INT((int)json_integer_value(json_object_get(st, "redeliveries_dropped")), 3);
    json_decref(st);
    /* refused bodies write nothing */
    int64_t before = count("orders", 2);
    const char *refused[] = {"",
                             "[1]",
                             "{\"payload\":{}}",
                             "{\"payload\":[1],\"length\":1}",
                             "{\"payload\":[],\"length\":1}",
                             "{\"payload\":[{\"after\":{\"id\":9,\"qty\":9},\"key\":[9],"
                             "\"updated\":\"200\"},{\"after\":{\"id\":8,\"qty\":8},\"key\":[8]}],"
                             "\"length\":2}",
                             "{\"payload\":[{\"after\":5,\"key\":[9],\"updated\":\"200\"}]}",
                             "{\"resolved\":\"soon\"}"};
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        dm_error_t e = {0};
        CHECK_EQ_INT(post(&f, refused[i], &n, &e), DM_ERR_INVALID);
        CHECK(e.message[0] != '\0');
    }
    CHECK_EQ_INT((int)count("orders", 2), (int)before);
    st = dm_crdb_source_status(f.src);
    CHECK_STR_EQ(json_string_value(json_object_get(st, "position")), "103.0000000000");
    json_decref(st);
    const char *above = "{\"payload\":[{\"after\":{\"id\":7,\"qty\":7},\"key\":[7],"
                        "\"updated\":\"150\"}],\"length\":1}";
    CHECK_EQ_INT(post(&f, above, &n, &err), DM_OK);
    CHECK_EQ_INT((int)count("orders", 2), 4);
    close_source(&f);
    /* a new source object on the same topics (a restart) resumes the position */
    REQUIRE(open_source(&f, "orders", ROW, "id", &err) == DM_OK);
    st = dm_crdb_source_status(f.src);
    CHECK_STR_EQ(json_string_value(json_object_get(st, "position")), "103.0000000000");
    json_decref(st);
    CHECK_EQ_INT(post(&f, creates, &n, &err), DM_OK);
    CHECK_EQ_INT((int)count("orders", 2), 4);
    /* above the resolved position: the window was read back from the topic */
    CHECK_EQ_INT(post(&f, above, &n, &err), DM_OK);
    CHECK_EQ_INT((int)count("orders", 2), 4);
    CHECK_EQ_INT(post(&f,
                      "{\"payload\":[{\"after\":{\"id\":7,\"qty\":8},\"key\":[7],"
                      "\"updated\":\"151\"}],\"length\":1}",
                      &n, &err),
                 DM_OK);
    CHECK_EQ_INT((int)count("orders", 2), 5);
    st = dm_crdb_source_status(f.src);
    CHECK_EQ_INT((int)json_integer_value(json_object_get(st, "keys_in_window")), 1);
    json_decref(st);
    close_source(&f);
}

/* The reason header of dead letter i of topic. */
static void dlq_reason(const char *topic, int64_t i, char *out, size_t cap)
{
    dm_transport_batch_t b = {0};
    out[0] = '\0';
    if (dm_transport_fetch(t, topic, 0, i, 1 << 20, 0, &b, NULL) || !b.n) return;
    for (uint32_t h = 0; h < b.records[0].n_headers; h++) {
        const dm_record_header_t *x = &b.records[0].headers[h];
        if (!strncmp(x->key, "dm.error.reason", x->key_len))
            snprintf(out, cap, "%.*s", (int)x->value_len, (const char *)x->value);
    }
    dm_transport_batch_free(t, &b);
}

/* Whether some record of topic holds the bytes s (n of them). */
static bool topic_holds(const char *topic, int32_t partitions, const void *s, size_t n)
{
    bool found = false;
    for (int32_t p = 0; p < partitions && !found; p++) {
        dm_transport_batch_t b = {0};
        if (dm_transport_fetch(t, topic, p, 0, 1 << 20, 0, &b, NULL)) continue;
        for (size_t i = 0; i < b.n && !found; i++)
            found = b.records[i].value_len > 0 &&
                    memmem(b.records[i].value, (size_t)b.records[i].value_len, s, n);
        dm_transport_batch_free(t, &b);
    }
    return found;
}

/* The body is walked from its bytes: any JSON spacing and escapes, the op from
 * before/after, keys and rows decoded in place, wrappers refused whole. */
static void test_wire_forms(void)
{
    fixture_t f;
    dm_error_t err = {0};
    REQUIRE(open_source(&f, "forms", ROW, "id", &err) == DM_OK);
    size_t n = 0;
    /* spaced out, keys escaped, fields in any order, a topic with a quote in it */
    CHECK_EQ_INT(post(&f,
                      "\n{ \"payload\" : [ { \"upd\\u0061ted\" : \"300.0000000000\" ,\n"
                      "  \"after\" : { \"qty\" : 5 , \"id\" : 10 } , \"before\" : null ,"
                      " \"key\" : [ 10 ] , \"topic\" : \"ord\\\"ers\" , \"extra\": [{\"x\":[]}] } ]"
                      " , \"length\" : 1 }\n",
                      &n, &err),
                 DM_OK);
    CHECK_EQ_INT((int)n, 1);
    CHECK_EQ_INT((int)count("forms", 2), 1);
    CHECK(topic_holds("forms", 2, "\x0eord\"ers", 8)); /* source.table */
    CHECK(topic_holds("forms", 2,
                      "\x02"
                      "c\x16"
                      "cockroachdb",
                      14)); /* op c (before null) */
    CHECK_EQ_INT(post(&f,
                      "{\"payload\":[{\"after\":{\"id\":10,\"qty\":6},\"before\":{\"id\":10,"
                      "\"qty\":5},\"key\":[10],\"updated\":\"301\"},{\"after\":null,\"before\":"
                      "{\"id\":10,\"qty\":6},\"key\":[10],\"updated\":\"302\"}],\"length\":2}",
                      &n, &err),
                 DM_OK);
    CHECK_EQ_INT((int)count("forms", 2), 3);
    CHECK(topic_holds("forms", 2,
                      "\x02"
                      "u\x16"
                      "cockroachdb",
                      14));
    CHECK(topic_holds("forms", 2,
                      "\x02"
                      "d\x16"
                      "cockroachdb",
                      14));
    /* a key or a before image that does not fit: dead letters naming the field */
    CHECK_EQ_INT(post(&f,
                      "{\"payload\":[{\"after\":{\"id\":11,\"qty\":1},\"key\":[\"eleven\"],"
                      "\"updated\":\"303\"},{\"after\":{\"id\":12,\"qty\":1},\"before\":{\"id\":"
                      "12,\"qty\":\"one\"},\"key\":[12],\"updated\":\"304\"}],\"length\":2}",
                      &n, &err),
                 DM_OK);
    CHECK_EQ_INT((int)count("forms", 2), 3);
    CHECK_EQ_INT((int)count("source.forms.dlq", 1), 2);
    char reason[400];
    dlq_reason("source.forms.dlq", 0, reason, sizeof(reason));
    CHECK_CONTAINS(reason, "does not fit spec.key");
    CHECK_CONTAINS(reason, "$.id");
    dlq_reason("source.forms.dlq", 1, reason, sizeof(reason));
    CHECK_CONTAINS(reason, "does not fit spec.schema");
    CHECK_CONTAINS(reason, "qty");
    CHECK(topic_holds("source.forms.dlq", 1, "\"one\"", 5)); /* the message as received */
    /* refused whole, nothing written */
    const char *refused[] = {
        "{\"payload\":[],\"payload\":[]}",
        "{\"payload\":[{\"after\":{\"id\":13,\"qty\":1},\"after\":null,\"key\":[13],"
        "\"updated\":\"400\"}],\"length\":1}",
        "{\"payload\":[{\"after\":{\"id\":13,\"qty\":1},\"key\":[13],\"updated\":\"400\"}],"
        "\"length\":1.0}",
        "{\"payload\":[{\"after\":{\"id\":13,\"qty\":1},\"key\":[13],\"updated\":\"400\"}],"
        "\"length\":-1}",
        "{\"payload\":[{\"after\":{\"id\":13,\"qty\":1},\"key\":[13],\"updated\":\"400\"}",
        "{\"payload\":[{\"after\":{\"id\":13,\"qty\":1},\"key\":[13],\"updated\":400}]}",
        "{\"payload\":[{\"after\":{\"id\":13,\"qty\":1},\"key\":13,\"updated\":\"400\"}]}",
        "{\"payload\":[{\"after\":{\"id\":13,\"qty\":1},\"key\":[13],\"updated\":\"4\xff\"}]}"};
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        dm_error_t e = {0};
        CHECK_EQ_INT(post(&f, refused[i], &n, &e), DM_ERR_INVALID);
        CHECK(e.message[0] != '\0');
    }
    dm_error_t e = {0};
    CHECK_EQ_INT(post(&f, "{\"payload\":[],\"payload\":[]}", &n, &e), DM_ERR_INVALID);
    CHECK_CONTAINS(e.message, "duplicate");
    e = (dm_error_t){0};
    CHECK_EQ_INT(post(&f, refused[4], &n, &e), DM_ERR_INVALID);
    CHECK_CONTAINS(e.message, "body is not JSON");
    CHECK_EQ_INT((int)count("forms", 2), 3);
    CHECK_EQ_INT((int)count("source.forms.dlq", 1), 2);
    close_source(&f);
}

/* Truncated and byte-flipped bodies: refused or taken, never read past their
 * end (ASan), a truncated body writes nothing. */
static void test_mangled_bodies(void)
{
    fixture_t f;
    dm_error_t err = {0};
    REQUIRE(open_source(&f, "mangled", ROW, "id", &err) == DM_OK);
    const char *good = "{\"payload\":[{\"after\":{\"id\":1,\"qty\":1},\"before\":null,\"key\":[1],"
                       "\"topic\":\"o\\\\\\\"x\",\"updated\":\"500.0000000001\"},{\"resolved\":"
                       "\"400.0\"},{\"after\":null,\"before\":{\"id\":2,\"qty\":2},\"key\":[2],"
                       "\"updated\":\"501\"}],\"length\":3}";
    size_t len = strlen(good), n;
    for (size_t cut = 0; cut < len; cut++) {
        char *b = malloc(cut ? cut : 1); /* exactly cut bytes: ASan sees any read past them */
        memcpy(b, good, cut);
        dm_error_t e = {0};
        CHECK_EQ_INT(dm_crdb_receive(f.src, b, cut, &n, &e), DM_ERR_INVALID);
        free(b);
    }
    CHECK_EQ_INT((int)count("mangled", 2), 0);
    uint32_t seed = 12345;
    int taken = 0;
    for (int i = 0; i < 3000; i++) {
        char *b = malloc(len);
        memcpy(b, good, len);
        for (int k = 0; k < 1 + i % 3; k++) {
            seed = seed * 1103515245u + 12345u;
            size_t at = (seed >> 8) % len;
            static const char alphabet[] = "{}[]\",:\\ 0a-.e";
            b[at] = alphabet[(seed >> 20) % (sizeof(alphabet) - 1)];
        }
        dm_error_t e = {0};
        dm_err_t rc = dm_crdb_receive(f.src, b, len, &n, &e);
        CHECK(rc == DM_OK || rc == DM_ERR_INVALID);
        taken += rc == DM_OK;
        free(b);
    }
    CHECK_EQ_INT(dm_crdb_receive(f.src, good, len, &n, &err), DM_OK);
    CHECK_EQ_INT((int)n, 3);
    CHECK(taken > 0);
    close_source(&f);
}

static void test_refused_specs(void)
{
    fixture_t f;
    dm_error_t err = {0};
    CHECK(open_source(&f, "nosch", NULL, "id", &err) != DM_OK);
    CHECK_CONTAINS(err.message, "spec.schema is missing");
    close_source(&f);
    err = (dm_error_t){0};
    CHECK(open_source(&f, "nokey", ROW, NULL, &err) != DM_OK);
    CHECK_CONTAINS(err.message, "spec.key is missing");
    close_source(&f);
    err = (dm_error_t){0};
    CHECK(open_source(&f, "badkey", ROW, "nope", &err) != DM_OK);
    CHECK_CONTAINS(err.message, "'nope' is not a field");
    close_source(&f);
    /* before prepare: 503-style, retried by the sender */
    memset(&f, 0, sizeof(f));
    dm_config_defaults(&dm_crdb_config_table, &f.conf, NULL);
    f.env = (dm_source_env_t){.name = "early", .transport = t, .partitions = 1};
    REQUIRE(dm_crdb_source_new(&f.env, &f.conf, &f.src, &err) == DM_OK);
    size_t n;
    CHECK_EQ_INT(post(&f, "{\"resolved\":\"1\"}", &n, &err), DM_ERR_AGAIN);
    close_source(&f);
}

int main(void)
{
    if (!mkdtemp(dir)) return 1;
    char path[300];
    snprintf(path, sizeof(path), "embedded:%s", dir);
    if (dm_transport_open(path, &t, NULL)) return 1;
    RUN(test_hlc);
    RUN(test_changefeed_sql);
    RUN(test_receive);
    RUN(test_wire_forms);
    RUN(test_mangled_bodies);
    RUN(test_refused_specs);
    dm_transport_close(t);
    for (uint32_t i = 1; i < next_id; i++)
        free(texts[i]);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd)) return 1;
    return check_summary();
}
