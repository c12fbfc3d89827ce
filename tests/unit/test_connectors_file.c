/* The file sink on the common runner, found by its name in the registry:
 * a topic holding two versions of a source's schema (v2 adds a field with a
 * default) becomes JSON lines each in its own version's shape, or Avro
 * container files that roll at each change of schema (one schema per file);
 * a record that cannot be written (a schema id the registry does not have)
 * goes to the dead-letter topic with the reason while the rest land; the
 * sink reports records, bytes and dead letters like every other sink. */
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../integration/sink_util.h"
#include "check.h"
#include "connectors/file/file.h"
#include "core/metrics.h"
#include "engine/task.h"
#include "schema/dm_avro_container.h"

static dm_transport_t *t;
static su_schemas_t schemas;
static dm_avro_schema_t *v1, *v2, *key;
static char *dir;

static const char *V1 =
    "{\"type\":\"record\",\"name\":\"Play\",\"fields\":["
    "{\"name\":\"id\",\"type\":\"long\"},{\"name\":\"name\",\"type\":\"string\"}]}";
static const char *V2 =
    "{\"type\":\"record\",\"name\":\"Play\",\"fields\":["
    "{\"name\":\"id\",\"type\":\"long\"},{\"name\":\"name\",\"type\":\"string\"},"
    "{\"name\":\"country\",\"type\":\"string\",\"default\":\"US\"}]}";

static void topic(const char *name, int32_t parts)
{
    dm_error_t err = {0};
    dm_transport_create_topic(t, &(dm_topic_config_t){.name = name, .partitions = parts}, &err);
}

/* Row id of version ver into partition p. */
static void produce(const char *topic_name, int32_t p, int id, int ver)
{
    char v[200];
    if (ver == 1)
        snprintf(v, sizeof(v), "{\"id\":%d,\"name\":\"n%d\"}", id, id);
    else
        snprintf(v, sizeof(v), "{\"id\":%d,\"name\":\"n%d\",\"country\":\"NO\"}", id, id);
    su_produce(t, topic_name, p, NULL, 0, NULL, ver == 1 ? v1 : v2, (uint32_t)ver, v);
}

/* A value whose schema id (77) the registry does not hold. */
static void produce_unknown_schema(const char *topic_name, int32_t p)
{
    uint8_t bytes[] = {0, 0, 0, 0, 77, 2, 2, 'x'};
    dm_record_t r = {.key_len = -1, .value = bytes, .value_len = sizeof(bytes)};
    dm_error_t err = {0};
    dm_transport_produce(t, topic_name, p, &r, 1, NULL, &err);
}

static void *conf_new(const char *path, const char *format)
{
    const dm_sink_ops_t *ops = dm_sink_ops_find("file");
    void *c = calloc(1, ops->config_size);
    dm_error_t err = {0};
    dm_config_defaults(ops->config, c, &err);
    dm_config_set_text(ops->config, c, "path", path, &err);
    dm_config_set_text(ops->config, c, "format", format, &err);
    dm_config_set_text(ops->config, c, "linger", "20ms", &err);
    return c;
}

static void conf_free(void *c)
{
    dm_config_free(dm_sink_ops_find("file")->config, c);
    free(c);
}

static void runner(su_runner_t *r, void *conf, const char *topic_name, int32_t parts,
                   dm_metrics_t *m)
{
    memset(r, 0, sizeof(*r));
    r->c = (dm_sink_run_config_t){.transport = t,
                                  .ops = dm_sink_ops_find("file"),
                                  .conf = conf,
                                  .dead_letter_topic = "dlq",
                                  .metrics = m,
                                  .env = {.name = topic_name,
                                          .topic = topic_name,
                                          .partitions = parts,
                                          .group = topic_name,
                                          .value_schema = v1,
                                          .value_schema_id = 1,
                                          .schema_by_id = su_lookup,
                                          .schema_ctx = &schemas}};
}

/* The value of a dead letter's header key, "" when missing. */
static void header(const dm_record_t *r, const char *key, char *out, size_t cap)
{
    out[0] = '\0';
    for (uint32_t h = 0; h < r->n_headers; h++)
        if (r->headers[h].key_len == strlen(key) && !strncmp(r->headers[h].key, key, strlen(key)))
            snprintf(out, cap, "%.*s", r->headers[h].value_len, (const char *)r->headers[h].value);
}

static void test_registered_on_the_runner(void)
{
    const dm_sink_ops_t *ops = dm_sink_ops_find("file");
    REQUIRE(ops);
    CHECK(ops->write && ops->flush && !ops->checkpoint);
    CHECK(dm_sink_ops_find("iceberg") && dm_sink_ops_find("iceberg")->checkpoint);
}

static void test_jsonl_two_versions_and_a_dead_letter(void)
{
    topic("jl", 2);
    /* v1 rows 0..9, v2 rows 10..19, v1 again 20..24, spread over 2 partitions;
     * a record of an unknown schema and a tombstone in between. */
    for (int i = 0; i < 10; i++)
        produce("jl", i % 2, i, 1);
    produce_unknown_schema("jl", 0);
    for (int i = 10; i < 20; i++)
        produce("jl", i % 2, i, 2);
    su_produce(t, "jl", 1, key, 3, "{\"id\":3}", NULL, 0, NULL); /* nothing to write */
    for (int i = 20; i < 25; i++)
        produce("jl", i % 2, i, 1);
    char path[600];
    snprintf(path, sizeof(path), "%s/out/plays.jsonl", dir);
    void *c = conf_new(path, "jsonl");
    dm_metrics_t *m = dm_metrics_new();
    su_runner_t r;
    runner(&r, c, "jl", 2, m);
    su_start(&r);
    CHECK(su_wait_position(&r, 27, 10000));
    su_stop(&r);
    /* Every row once, in its own version's shape, in order per partition. */
    FILE *f = fopen(path, "r");
    REQUIRE(f);
    char line[512];
    int seen[25] = {0}, last[2] = {-1, -1}, lines = 0;
    while (fgets(line, sizeof(line), f)) {
        json_t *j = json_loads(line, 0, NULL);
        CHECK(j != NULL);
        if (!j) continue;
        lines++;
        int id = (int)json_integer_value(json_object_get(j, "id"));
        if (id < 0 || id >= 25) {
            CHECK(!"an id that was never produced");
            json_decref(j);
            continue;
        }
        seen[id]++;
        CHECK(id > last[id % 2]);
        last[id % 2] = id;
        const char *country = json_string_value(json_object_get(j, "country"));
        if (id >= 10 && id < 20) {
            CHECK_STR_EQ(country ? country : "(none)", "NO");
            CHECK_EQ_INT(json_object_size(j), 3);
        } else {
            CHECK(json_object_get(j, "country") == NULL);
            CHECK_EQ_INT(json_object_size(j), 2);
        }
        json_decref(j);
    }
    fclose(f);
    CHECK_EQ_INT(lines, 25);
    for (int i = 0; i < 25; i++)
        CHECK_EQ_INT(seen[i], 1);
    /* The record of an unknown schema is a dead letter with the reason. */
    dm_transport_batch_t b = {0};
    dm_error_t err = {0};
    CHECK(!dm_transport_fetch(t, "dlq", 0, 0, 1 << 20, 1000, &b, &err));
    CHECK_EQ_INT(b.n, 1);
    if (b.n == 1) {
        char v[400];
        header(&b.records[0], DM_DLQ_REASON, v, sizeof(v));
        CHECK_CONTAINS(v, "schema id 77");
        header(&b.records[0], DM_DLQ_PROCESSOR, v, sizeof(v));
        CHECK_STR_EQ(v, "sink:file");
        header(&b.records[0], DM_DLQ_OFFSET, v, sizeof(v));
        CHECK_STR_EQ(v, "5"); /* after rows 0, 2, 4, 6, 8 of partition 0 */
        CHECK_EQ_INT(b.records[0].value_len, 8);
    }
    dm_transport_batch_free(t, &b);
    /* Metrics like every sink's. */
    dm_buf_t text = DM_BUF_INIT;
    dm_metrics_render(m, &text);
    dm_buf_append_u8(&text, 0);
    const char *mt = (const char *)text.data;
    CHECK_CONTAINS(mt, "datamesh_sink_records_total{sink=\"jl\",type=\"file\"} 26");
    CHECK_CONTAINS(mt, "datamesh_sink_dead_letters_total{sink=\"jl\",type=\"file\"} 1");
    CHECK_CONTAINS(mt, "datamesh_sink_bytes_total{sink=\"jl\",type=\"file\"} ");
    CHECK_CONTAINS(mt, "datamesh_sink_retries_total{sink=\"jl\",type=\"file\"} 0");
    CHECK_CONTAINS(mt, "datamesh_sink_batch_seconds_count{sink=\"jl\",type=\"file\"} ");
    dm_buf_free(&text);
    dm_metrics_free(m);
    conf_free(c);
}

/* The records of one container file: its field count and the ids in order. */
static int read_container(const char *path, size_t *fields, int *ids, int cap)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    static uint8_t data[1 << 16];
    size_t len = fread(data, 1, sizeof(data), f);
    fclose(f);
    dm_avro_file_reader_t *rd = NULL;
    dm_error_t err = {0};
    if (dm_avro_file_reader_new(data, len, &rd, &err)) return -1;
    *fields = dm_avro_file_reader_schema(rd)->root->n_fields;
    dm_arena_t a;
    dm_arena_init(&a, 0);
    int n = 0;
    bool got = true;
    while (n < cap) {
        dm_avro_value_t v;
        if (dm_avro_file_reader_next(rd, &a, &v, &got, &err) || !got) break;
        ids[n++] = (int)v.u.v[0].u.l;
    }
    dm_arena_destroy(&a);
    dm_avro_file_reader_free(rd);
    return n;
}

static void test_avro_rolls_at_each_schema_change(void)
{
    topic("av", 1);
    for (int i = 0; i < 5; i++)
        produce("av", 0, i, 1);
    for (int i = 5; i < 10; i++)
        produce("av", 0, i, 2);
    for (int i = 10; i < 13; i++)
        produce("av", 0, i, 1);
    char path[600];
    snprintf(path, sizeof(path), "%s/out/plays.avro", dir);
    void *c = conf_new(path, "avro");
    su_runner_t r;
    runner(&r, c, "av", 1, NULL);
    su_start(&r);
    CHECK(su_wait_position(&r, 13, 10000));
    su_stop(&r);
    /* PATH.1: v1 rows 0..4; PATH.2: v2 rows 5..9; PATH: v1 rows 10..12. */
    const char *suffix[3] = {".1", ".2", ""};
    const size_t want_fields[3] = {2, 3, 2};
    const int first[3] = {0, 5, 10}, count[3] = {5, 5, 3};
    for (int k = 0; k < 3; k++) {
        char p[700];
        snprintf(p, sizeof(p), "%s%s", path, suffix[k]);
        size_t fields = 0;
        int ids[32];
        int n = read_container(p, &fields, ids, 32);
        CHECK_EQ_INT(n, count[k]);
        CHECK_EQ_INT(fields, want_fields[k]);
        for (int i = 0; i < n && i < count[k]; i++)
            CHECK_EQ_INT(ids[i], first[k] + i);
    }
    char p[700];
    snprintf(p, sizeof(p), "%s.3", path);
    CHECK(access(p, F_OK) != 0);
    conf_free(c);
}

int main(void)
{
    dir = su_tmpdir("dm-test-file");
    REQUIRE(dir);
    char url[600];
    snprintf(url, sizeof(url), "embedded:%s/log", dir);
    dm_error_t err = {0};
    REQUIRE(!dm_transport_open(url, &t, &err));
    topic("dlq", 1);
    v1 = su_schema(&schemas, 1, V1);
    v2 = su_schema(&schemas, 2, V2);
    key = su_schema(&schemas, 3,
                    "{\"type\":\"record\",\"name\":\"K\",\"fields\":[{\"name\":\"id\","
                    "\"type\":\"long\"}]}");
    RUN(test_registered_on_the_runner);
    RUN(test_jsonl_two_versions_and_a_dead_letter);
    RUN(test_avro_rolls_at_each_schema_change);
    dm_transport_close(t);
    su_schemas_free(&schemas);
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd)) {
    }
    free(dir);
    return check_summary();
}
