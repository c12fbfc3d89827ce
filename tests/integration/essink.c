/* The elasticsearch sink, contract-tested: Elasticsearch cannot run here, so
 * this test serves the part of its REST API the sink uses, as documented —
 * HEAD/PUT /{index} (create with mappings; resource_already_exists_exception),
 * POST /_bulk (NDJSON action and source lines; an answer with "errors" and one
 * item per action, in order, each with its own status and error {type, reason};
 * 429 for the whole request when overloaded; 404 "not_found" for a delete of a
 * missing document) — on a loopback port, and checks what the sink sent. */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <jansson.h>

#include "check.h"
#include "connectors/essink/essink.h"
#include "core/metrics.h"
#include "engine/task.h"
#include "sink_util.h"

/* ---- the fake cluster ------------------------------------------------------------------ */

typedef struct cluster {
    struct MHD_Daemon *d;
    uint16_t port;
    pthread_mutex_t mu;
    json_t *indices;   /* name -> {"mappings": …, "docs": {id: source}} */
    int mapping_puts;  /* PUT /{index}/_mapping requests answered */
    int fail_bulk_429; /* answer this many _bulk requests with 429 */
    int bulks;
    json_t *busy_once; /* ids whose first index answer is an item-level 429 */
    char auth[512];    /* the last Authorization header */
    char content_type[128];
} cluster_t;

static cluster_t es;

typedef struct upload {
    dm_buf_t body;
} upload_t;

static enum MHD_Result answer(struct MHD_Connection *c, unsigned status, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : strdup("");
    json_decref(body);
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static json_t *es_error(const char *type, const char *reason, int status)
{
    return json_pack("{s:{s:s, s:s}, s:i}", "error", "type", type, "reason", reason, "status",
                     status);
}

/* The _bulk endpoint: one item per action, in order. */
static enum MHD_Result bulk(struct MHD_Connection *c, const dm_buf_t *body)
{
    if (es.fail_bulk_429 > 0) {
        es.fail_bulk_429--;
        return answer(c, 429,
                      es_error("es_rejected_execution_exception",
                               "rejected execution of coordinating operation", 429));
    }
    json_t *items = json_array();
    bool errors = false;
    const char *p = (const char *)body->data, *end = p + body->len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) break;
        json_t *action = json_loadb(p, (size_t)(nl - p), 0, NULL);
        p = nl + 1;
        const char *kind = json_object_iter_key(json_object_iter(action));
        json_t *meta = json_object_get(action, kind ? kind : "");
        const char *index = json_string_value(json_object_get(meta, "_index"));
        const char *id = json_string_value(json_object_get(meta, "_id"));
        json_t *idx = index ? json_object_get(es.indices, index) : NULL;
        json_t *source = NULL;
        if (kind && !strcmp(kind, "index")) {
            nl = memchr(p, '\n', (size_t)(end - p));
            if (!nl) nl = end;
            source = json_loadb(p, (size_t)(nl - p), 0, NULL);
            p = nl < end ? nl + 1 : end;
        }
        json_t *res = json_pack("{s:s*, s:s*}", "_index", index, "_id", id);
        int status = 200;
        if (!idx) {
            status = 404;
            json_object_set_new(
                res, "error",
                json_object_get(es_error("index_not_found_exception", "no such index", 404),
                                "error"));
        } else if (source && json_is_string(json_object_get(source, "name")) &&
                   !strcmp(json_string_value(json_object_get(source, "name")), "bad")) {
            status = 400;
            json_object_set_new(
                res, "error",
                json_pack("{s:s, s:s}", "type", "mapper_parsing_exception", "reason",
                          "failed to parse field [name] of type [text] in document"));
        } else if (source && id && json_object_get(es.busy_once, id)) {
            json_object_del(es.busy_once, id);
            status = 429;
            json_object_set_new(res, "error",
                                json_pack("{s:s, s:s}", "type", "es_rejected_execution_exception",
                                          "reason", "rejected execution (queue capacity 200)"));
        } else if (source) {
            json_t *docs = json_object_get(idx, "docs");
            status = id && json_object_get(docs, id) ? 200 : 201;
            json_object_set_new(res, "result", json_string(status == 201 ? "created" : "updated"));
            char gen[32];
            snprintf(gen, sizeof(gen), "gen-%zu", json_object_size(docs));
            json_object_set(docs, id ? id : gen, source);
        } else {
            json_t *docs = json_object_get(idx, "docs");
            status = id && json_object_get(docs, id) ? 200 : 404;
            json_object_set_new(res, "result",
                                json_string(status == 200 ? "deleted" : "not_found"));
            if (id) json_object_del(docs, id);
        }
        json_decref(source);
        json_object_set_new(res, "status", json_integer(status));
        if (status >= 300 && status != 404) errors = true;
        json_array_append_new(items, json_pack("{s:o}", kind ? kind : "unknown", res));
        json_decref(action);
    }
    return answer(c, 200,
                  json_pack("{s:i, s:b, s:o}", "took", 3, "errors", errors, "items", items));
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *size, void **con_cls)
{
    (void)cls;
    (void)version;
    upload_t *u = *con_cls;
    if (!u) {
        *con_cls = u = calloc(1, sizeof(*u));
        u->body = (dm_buf_t)DM_BUF_INIT;
        return MHD_YES;
    }
    if (*size) {
        dm_buf_append(&u->body, data, *size);
        *size = 0;
        return MHD_YES;
    }
    pthread_mutex_lock(&es.mu);
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    snprintf(es.auth, sizeof(es.auth), "%s", auth ? auth : "");
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    enum MHD_Result ret;
    const char *name = url + 1;
    if (!strcmp(url, "/_bulk") && !strcmp(method, "POST")) {
        es.bulks++;
        snprintf(es.content_type, sizeof(es.content_type), "%s", ct ? ct : "");
        ret = bulk(c, &u->body);
    } else if (!strcmp(method, "HEAD")) {
        ret = answer(c, json_object_get(es.indices, name) ? 200 : 404, NULL);
    } else if (!strcmp(method, "PUT") && strstr(name, "/_mapping")) {
        /* PUT /{index}/_mapping: new fields join the mapping's properties */
        char idx[256];
        snprintf(idx, sizeof(idx), "%.*s", (int)(strstr(name, "/_mapping") - name), name);
        json_t *doc = json_loadb((const char *)u->body.data, u->body.len, 0, NULL);
        json_t *m = json_object_get(json_object_get(es.indices, idx), "mappings");
        json_t *props = json_object_get(m, "properties");
        if (!props || !json_is_object(json_object_get(doc, "properties"))) {
            ret = answer(c, 404, es_error("index_not_found_exception", "no such index", 404));
        } else {
            json_object_update_missing(props, json_object_get(doc, "properties"));
            es.mapping_puts++;
            ret = answer(c, 200, json_pack("{s:b}", "acknowledged", 1));
        }
        json_decref(doc);
    } else if (!strcmp(method, "PUT")) {
        json_t *doc = json_loadb((const char *)u->body.data, u->body.len, 0, NULL);
        if (json_object_get(es.indices, name)) {
            json_decref(doc);
            ret = answer(
                c, 400, es_error("resource_already_exists_exception", "index already exists", 400));
        } else {
            json_object_set_new(
                es.indices, name,
                json_pack("{s:o, s:o}", "mappings",
                          doc ? json_incref(json_object_get(doc, "mappings")) : json_null(), "docs",
                          json_object()));
            json_decref(doc);
            ret = answer(c, 200,
                         json_pack("{s:b, s:b, s:s}", "acknowledged", 1, "shards_acknowledged", 1,
                                   "index", name));
        }
    } else {
        ret = answer(c, 405, es_error("illegal_argument_exception", "unexpected request", 405));
    }
    pthread_mutex_unlock(&es.mu);
    return ret;
}

static void on_done(void *cls, struct MHD_Connection *c, void **con_cls,
                    enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    upload_t *u = *con_cls;
    if (u) dm_buf_free(&u->body);
    free(u);
    *con_cls = NULL;
}

static int cluster_start(uint16_t port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    es.d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, port, NULL, NULL,
                            on_request, NULL, MHD_OPTION_SOCK_ADDR, &a, MHD_OPTION_NOTIFY_COMPLETED,
                            on_done, NULL, MHD_OPTION_END);
    if (!es.d) return -1;
    es.port = MHD_get_daemon_info(es.d, MHD_DAEMON_INFO_BIND_PORT)->port;
    return 0;
}

static void cluster_stop(void)
{
    if (es.d) MHD_stop_daemon(es.d);
    es.d = NULL;
}

/* ---- the tests ------------------------------------------------------------------------------ */

static char *dir;
static dm_transport_t *t;
static su_schemas_t schemas;
static dm_avro_schema_t *row, *key, *row2;
static dm_strlist_t id_key = {(char *[]){"id"}, 1};
static dm_metrics_t *metrics;

static const char *ROW =
    "{\"type\":\"record\",\"name\":\"Doc\",\"fields\":[{\"name\":\"id\",\"type\":\"long\"},"
    "{\"name\":\"name\",\"type\":\"string\"},{\"name\":\"score\",\"type\":\"double\"},"
    "{\"name\":\"ts\",\"type\":{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}},"
    "{\"name\":\"tags\",\"type\":{\"type\":\"array\",\"items\":\"string\"}},"
    "{\"name\":\"color\",\"type\":{\"type\":\"enum\",\"name\":\"Color\",\"symbols\":[\"RED\","
    "\"BLUE\"]}}]}";
static const char *ROW_V2 =
    "{\"type\":\"record\",\"name\":\"Doc\",\"fields\":[{\"name\":\"id\",\"type\":\"long\"},"
    "{\"name\":\"name\",\"type\":\"string\"},{\"name\":\"score\",\"type\":\"double\"},"
    "{\"name\":\"ts\",\"type\":{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}},"
    "{\"name\":\"tags\",\"type\":{\"type\":\"array\",\"items\":\"string\"}},"
    "{\"name\":\"color\",\"type\":{\"type\":\"enum\",\"name\":\"Color\",\"symbols\":[\"RED\","
    "\"BLUE\"]}},{\"name\":\"country\",\"type\":\"string\",\"default\":\"US\"}]}";
static const char *KEY =
    "{\"type\":\"record\",\"name\":\"DocKey\",\"fields\":[{\"name\":\"id\",\"type\":\"long\"}]}";

static void produce(const char *topic_name, int id, const char *name)
{
    char k[64], v[400];
    snprintf(k, sizeof(k), "{\"id\":%d}", id);
    snprintf(v, sizeof(v),
             "{\"id\":%d,\"name\":\"%s\",\"score\":%d.25,\"ts\":\"2024-05-01T10:00:00Z\","
             "\"tags\":[\"x\"],\"color\":\"BLUE\"}",
             id, name, id);
    su_produce(t, topic_name, 0, key, 2, k, name ? row : NULL, 1, name ? v : NULL);
}

static dm_essink_config_t *config(const char *index, const char *k1, const char *v1, const char *k2,
                                  const char *v2)
{
    dm_essink_config_t *c = calloc(1, sizeof(*c));
    dm_error_t err = {0};
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u", es.port);
    dm_config_defaults(&dm_essink_config_table, c, &err);
    dm_config_set_text(&dm_essink_config_table, c, "url", url, &err);
    dm_config_set_text(&dm_essink_config_table, c, "index", index, &err);
    dm_config_set_text(&dm_essink_config_table, c, "linger", "20ms", &err);
    dm_config_set_text(&dm_essink_config_table, c, "retry_max", "200ms", &err);
    if (k1) dm_config_set_text(&dm_essink_config_table, c, k1, v1, &err);
    if (k2) dm_config_set_text(&dm_essink_config_table, c, k2, v2, &err);
    return c;
}

static void runner(su_runner_t *r, const dm_essink_config_t *c, const char *topic_name,
                   const char *group)
{
    memset(r, 0, sizeof(*r));
    r->c = (dm_sink_run_config_t){.transport = t,
                                  .ops = &dm_essink_ops,
                                  .conf = c,
                                  .dead_letter_topic = "dlq",
                                  .metrics = metrics,
                                  .env = {.name = group,
                                          .topic = topic_name,
                                          .partitions = 1,
                                          .group = group,
                                          .value_schema = row,
                                          .value_schema_id = 1,
                                          .key_fields = &id_key,
                                          .schema_by_id = su_lookup,
                                          .schema_ctx = &schemas}};
}

static void free_config(dm_essink_config_t *c)
{
    dm_config_free(&dm_essink_config_table, c);
    free(c);
}

static const char *doc_field(const char *index, const char *id, const char *field)
{
    static char out[256];
    pthread_mutex_lock(&es.mu);
    json_t *d = json_object_get(json_object_get(json_object_get(es.indices, index), "docs"), id);
    json_t *f = json_object_get(d, field);
    if (!d)
        snprintf(out, sizeof(out), "<missing>");
    else if (json_is_string(f))
        snprintf(out, sizeof(out), "%s", json_string_value(f));
    else {
        char *text = json_dumps(f, JSON_ENCODE_ANY | JSON_COMPACT);
        snprintf(out, sizeof(out), "%s", text ? text : "?");
        free(text);
    }
    pthread_mutex_unlock(&es.mu);
    return out;
}

static void test_bulk_index_update_delete_with_throttling(void)
{
    dm_error_t err = {0};
    dm_transport_create_topic(t, &(dm_topic_config_t){.name = "docs", .partitions = 1}, &err);
    produce("docs", 1, "one");
    produce("docs", 2, "two");
    produce("docs", 3, "three");
    es.fail_bulk_429 = 2; /* overloaded: the first two requests are turned away */
    setenv("DM_TEST_ES_KEY", "k3y-s3cret", 1);
    dm_essink_config_t *c = config("docs", "api_key_env", "DM_TEST_ES_KEY", NULL, NULL);
    su_runner_t r;
    runner(&r, c, "docs", "sink.docs");
    su_start(&r);
    CHECK(su_wait_position(&r, 3, 20000));
    CHECK_STR_EQ(es.auth, "ApiKey k3y-s3cret");
    CHECK_CONTAINS(es.content_type, "application/x-ndjson");
    CHECK_EQ_INT(es.bulks, 3);
    CHECK_STR_EQ(doc_field("docs", "2", "name"), "two");
    CHECK_STR_EQ(doc_field("docs", "2", "ts"), "2024-05-01T10:00:00Z");
    CHECK_STR_EQ(doc_field("docs", "2", "tags"), "[\"x\"]");
    /* the mapping comes from the schema */
    pthread_mutex_lock(&es.mu);
    json_t *props = json_object_get(
        json_object_get(json_object_get(es.indices, "docs"), "mappings"), "properties");
    char *m = json_dumps(props, JSON_COMPACT | JSON_SORT_KEYS);
    pthread_mutex_unlock(&es.mu);
    CHECK_STR_EQ(m, "{\"color\":{\"type\":\"keyword\"},\"id\":{\"type\":\"long\"},\"name\":{"
                    "\"fields\":{\"keyword\":{\"ignore_above\":256,\"type\":\"keyword\"}},\"type\":"
                    "\"text\"},\"score\":{\"type\":\"double\"},\"tags\":{\"fields\":{\"keyword\":{"
                    "\"ignore_above\":256,\"type\":\"keyword\"}},\"type\":\"text\"},\"ts\":{"
                    "\"format\":\"strict_date_optional_time\",\"type\":\"date\"}}");
    free(m);
    /* an update and a tombstone */
    produce("docs", 2, "two, updated");
    produce("docs", 3, NULL);
    produce("docs", 99, NULL); /* deleting what is not there is fine */
    CHECK(su_wait_position(&r, 6, 20000));
    CHECK_STR_EQ(doc_field("docs", "2", "name"), "two, updated");
    CHECK_STR_EQ(doc_field("docs", "3", "name"), "<missing>");
    CHECK_STR_EQ(doc_field("docs", "1", "name"), "one");
    su_stop(&r);
    dm_buf_t text = DM_BUF_INIT;
    dm_metrics_render(metrics, &text);
    dm_buf_append_u8(&text, 0);
    CHECK_CONTAINS((const char *)text.data,
                   "datamesh_sink_retries_total{sink=\"sink.docs\",type=\"elasticsearch\"} 2");
    CHECK_CONTAINS((const char *)text.data,
                   "datamesh_sink_records_total{sink=\"sink.docs\",type=\"elasticsearch\"} 6");
    dm_buf_free(&text);
    free_config(c);
}

static void test_partial_item_failures(void)
{
    dm_error_t err = {0};
    dm_transport_create_topic(t, &(dm_topic_config_t){.name = "mixed", .partitions = 1}, &err);
    pthread_mutex_lock(&es.mu);
    json_object_set_new(es.busy_once, "12", json_true());
    pthread_mutex_unlock(&es.mu);
    produce("mixed", 11, "fine");
    produce("mixed", 12, "busy the first time");
    produce("mixed", 13, "bad");
    produce("mixed", 14, "fine too");
    dm_essink_config_t *c = config("mixed", NULL, NULL, NULL, NULL);
    su_runner_t r;
    runner(&r, c, "mixed", "sink.mixed");
    su_start(&r);
    CHECK(su_wait_position(&r, 4, 20000));
    su_stop(&r);
    CHECK_STR_EQ(doc_field("mixed", "11", "name"), "fine");
    CHECK_STR_EQ(doc_field("mixed", "12", "name"), "busy the first time");
    CHECK_STR_EQ(doc_field("mixed", "13", "name"), "<missing>");
    CHECK_STR_EQ(doc_field("mixed", "14", "name"), "fine too");
    dm_transport_batch_t b = {0};
    CHECK(!dm_transport_fetch(t, "dlq", 0, 0, 1 << 20, 1000, &b, &err));
    CHECK_EQ_INT(b.n, 1);
    for (size_t i = 0; i < b.n; i++)
        for (uint32_t h = 0; h < b.records[i].n_headers; h++) {
            const dm_record_header_t *hd = &b.records[i].headers[h];
            char val[400];
            snprintf(val, sizeof(val), "%.*s", hd->value_len, (const char *)hd->value);
            if (!strncmp(hd->key, DM_DLQ_REASON, hd->key_len)) {
                CHECK_CONTAINS(val, "mapper_parsing_exception");
                CHECK_CONTAINS(val, "failed to parse field [name]");
            }
            if (!strncmp(hd->key, DM_DLQ_OFFSET, hd->key_len)) CHECK_STR_EQ(val, "2");
            if (!strncmp(hd->key, DM_DLQ_PROCESSOR, hd->key_len))
                CHECK_STR_EQ(val, "sink:elasticsearch");
        }
    dm_transport_batch_free(t, &b);
    free_config(c);
}

/* A topic holding two versions of the source (v2 adds "country" with a
 * default), through the type the registry names: v1 documents keep their
 * shape, v2 documents carry the new field, and a v2 document the index
 * refuses is a dead letter with Elasticsearch's reason while the rest land. */
static void test_two_schema_versions_and_a_dead_letter(void)
{
    dm_error_t err = {0};
    dm_transport_create_topic(t, &(dm_topic_config_t){.name = "vers", .partitions = 1}, &err);
    dm_transport_create_topic(t, &(dm_topic_config_t){.name = "vers.dlq", .partitions = 1}, &err);
    for (int id = 21; id < 29; id++) {
        if (id < 24 || id == 28) {
            produce("vers", id, "v1");
            continue;
        }
        char k[64], v[400];
        snprintf(k, sizeof(k), "{\"id\":%d}", id);
        snprintf(v, sizeof(v),
                 "{\"id\":%d,\"name\":\"%s\",\"score\":1.5,\"ts\":\"2024-05-01T10:00:00Z\","
                 "\"tags\":[],\"color\":\"RED\",\"country\":\"SE\"}",
                 id, id == 26 ? "bad" : "v2");
        su_produce(t, "vers", 0, key, 2, k, row2, 3, v);
    }
    dm_essink_config_t *c = config("vers", NULL, NULL, NULL, NULL);
    su_runner_t r;
    runner(&r, c, "vers", "sink.vers");
    r.c.ops = dm_sink_ops_find("elasticsearch");
    r.c.dead_letter_topic = "vers.dlq";
    su_start(&r);
    CHECK(su_wait_position(&r, 8, 20000));
    su_stop(&r);
    for (int id = 21; id < 29; id++) {
        char sid[16];
        snprintf(sid, sizeof(sid), "%d", id);
        bool v2 = id >= 24 && id < 28;
        CHECK_STR_EQ(doc_field("vers", sid, "name"), id == 26 ? "<missing>" : v2 ? "v2" : "v1");
        if (id == 26) continue;
        pthread_mutex_lock(&es.mu);
        json_t *d =
            json_object_get(json_object_get(json_object_get(es.indices, "vers"), "docs"), sid);
        json_t *country = json_object_get(d, "country");
        bool shape = v2 ? json_is_string(country) && !strcmp(json_string_value(country), "SE")
                        : country == NULL && json_object_size(d) == 6;
        pthread_mutex_unlock(&es.mu);
        CHECK(shape);
    }
    /* the new version's field joined the mapping */
    pthread_mutex_lock(&es.mu);
    json_t *props = json_object_get(
        json_object_get(json_object_get(json_object_get(es.indices, "vers"), "mappings"),
                        "properties"),
        "country");
    CHECK(props != NULL);
    CHECK(es.mapping_puts >= 1);
    pthread_mutex_unlock(&es.mu);
    dm_transport_batch_t b = {0};
    CHECK(!dm_transport_fetch(t, "vers.dlq", 0, 0, 1 << 20, 1000, &b, &err));
    CHECK_EQ_INT(b.n, 1);
    for (size_t i = 0; i < b.n; i++)
        for (uint32_t h = 0; h < b.records[i].n_headers; h++) {
            const dm_record_header_t *hd = &b.records[i].headers[h];
            char val[400];
            snprintf(val, sizeof(val), "%.*s", hd->value_len, (const char *)hd->value);
            if (!strncmp(hd->key, DM_DLQ_REASON, hd->key_len))
                CHECK_CONTAINS(val, "mapper_parsing_exception");
            if (!strncmp(hd->key, DM_DLQ_OFFSET, hd->key_len)) CHECK_STR_EQ(val, "5");
        }
    dm_transport_batch_free(t, &b);
    free_config(c);
}

static void test_waits_while_the_cluster_is_down(void)
{
    dm_error_t err = {0};
    dm_transport_create_topic(t, &(dm_topic_config_t){.name = "later", .partitions = 1}, &err);
    for (int i = 0; i < 30; i++)
        produce("later", 100 + i, "later");
    uint16_t port = es.port;
    cluster_stop();
    setenv("DM_TEST_ES_PW", "pa55-w0rd", 1);
    dm_essink_config_t *c = config("later", "username", "elastic", "password_env", "DM_TEST_ES_PW");
    su_runner_t r;
    runner(&r, c, "later", "sink.later");
    su_start(&r);
    char state[32] = "", error[512] = "";
    for (int i = 0; i < 300 && strcmp(state, "retrying"); i++) {
        dm_sleep_ms(20);
        dm_unit_get(&r.st, state, sizeof(state), error, sizeof(error));
    }
    CHECK_STR_EQ(state, "retrying");
    CHECK_CONTAINS(error, "elasticsearch sink");
    CHECK(!strstr(error, "pa55-w0rd"));
    dm_sleep_ms(300);
    REQUIRE(cluster_start(port) == 0); /* back on the same port */
    CHECK(su_wait_position(&r, 30, 20000));
    dm_unit_get(&r.st, state, sizeof(state), error, sizeof(error));
    CHECK_STR_EQ(state, "running");
    CHECK_STR_EQ(es.auth, "Basic ZWxhc3RpYzpwYTU1LXcwcmQ="); /* elastic:pa55-w0rd */
    pthread_mutex_lock(&es.mu);
    CHECK_EQ_INT(json_object_size(json_object_get(json_object_get(es.indices, "later"), "docs")),
                 30);
    pthread_mutex_unlock(&es.mu);
    su_stop(&r);
    free_config(c);
}

int main(void)
{
    pthread_mutex_init(&es.mu, NULL);
    es.indices = json_object();
    es.busy_once = json_object();
    if (cluster_start(0)) {
        fprintf(stderr, "cannot start the HTTP server\n");
        return 1;
    }
    metrics = dm_metrics_new();
    dir = su_tmpdir("dm-essink");
    char url[600];
    snprintf(url, sizeof(url), "embedded:%s", dir);
    dm_error_t err = {0};
    if (dm_transport_open(url, &t, &err)) return 1;
    dm_transport_create_topic(t, &(dm_topic_config_t){.name = "dlq", .partitions = 1}, &err);
    row = su_schema(&schemas, 1, ROW);
    key = su_schema(&schemas, 2, KEY);
    row2 = su_schema(&schemas, 3, ROW_V2);
    RUN(test_bulk_index_update_delete_with_throttling);
    RUN(test_partial_item_failures);
    RUN(test_two_schema_versions_and_a_dead_letter);
    RUN(test_waits_while_the_cluster_is_down);
    cluster_stop();
    dm_transport_close(t);
    su_schemas_free(&schemas);
    dm_metrics_free(metrics);
    json_decref(es.indices);
    json_decref(es.busy_once);
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd)) {
    }
    free(dir);
    return check_summary();
}
