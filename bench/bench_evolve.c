/* bench/bench_evolve.c — what a schema change costs a pipeline's task.
 *
 * N change-event-shaped records (a Debezium-like envelope whose after row has
 * 6 columns) of schema version 1 sit in the embedded log. A filter task
 * (every record passes, all fields written) reads them three ways:
 *   direct    with version 1 as its reader: the pipeline before the change;
 *   resolved  with version 2 (version 1 + an added nullable column) as its
 *             reader: the old records a pipeline recompiled on the new version
 *             still reads after the switch, by Avro resolution;
 *   switch    1000 records of v1 then v2 in one partition: the time from the
 *             task stopping at the first v2 record to a new task on v2 having
 *             committed its first batch (the data plane's part of a switch;
 *             the controller's recompile is logged as "restarted on the new
 *             schema version in N ms").
 * Printed: CPU-seconds per record (process CPU time, one thread) of each,
 * and the ratio direct / resolved (1.00: resolution costs nothing).
 * N defaults to 2 M (DM_BENCH_RECORDS).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "engine/task.h"
#include "schema/wire.h"

#define ROW_V1                                                                                     \
    "{\"type\":\"record\",\"name\":\"Value\",\"fields\":[{\"name\":\"id\",\"type\":\"long\"},"     \
    "{\"name\":\"country\",\"type\":[\"null\",\"string\"],\"default\":null},"                      \
    "{\"name\":\"amount\",\"type\":[\"null\",\"int\"],\"default\":null},"                          \
    "{\"name\":\"price\",\"type\":[\"null\",\"double\"],\"default\":null},"                        \
    "{\"name\":\"note\",\"type\":[\"null\",\"string\"],\"default\":null},"                         \
    "{\"name\":\"paid\",\"type\":[\"null\",\"boolean\"],\"default\":null}"
#define ENVELOPE(row)                                                                              \
    "{\"type\":\"record\",\"name\":\"Envelope\",\"fields\":[{\"name\":\"before\",\"type\":["       \
    "\"null\"," row "],\"default\":null},{\"name\":\"after\",\"type\":[\"null\",\"Value\"],"       \
    "\"default\":null},{\"name\":\"op\",\"type\":\"string\"},{\"name\":\"ts_ms\",\"type\":"        \
    "\"long\"}]}"

static const char *v1_json = ENVELOPE(ROW_V1 "]}");
static const char *v2_json =
    ENVELOPE(ROW_V1 ",{\"name\":\"tier\",\"type\":[\"null\",\"string\"],\"default\":null}]}");

static dm_transport_t *t;
static dm_avro_schema_t *v1, *v2;

static void die(const char *what, const dm_error_t *err)
{
    fprintf(stderr, "bench_evolve: %s: %s\n", what, err ? err->message : "");
    exit(1);
}

static const dm_avro_schema_t *by_id(void *ctx, int64_t id, dm_error_t *err)
{
    (void)ctx;
    if (id == 1) return v1;
    if (id == 2) return v2;
    dm_error_set(err, DM_ERR_NOT_FOUND, "no schema %lld", (long long)id);
    return NULL;
}

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void create(const char *name)
{
    dm_error_t err = {0};
    dm_topic_config_t c = {.name = name, .partitions = 1, .fsync = DM_TRANSPORT_FSYNC_NEVER};
    if (dm_transport_create_topic(t, &c, &err)) die(name, &err);
}

/* n records of version ver into topic, ids from first. */
static void produce(const char *topic, long first, long n, int ver)
{
    const dm_avro_schema_t *s = ver == 1 ? v1 : v2;
    dm_error_t err = {0};
    const int batch = 1000;
    dm_buf_t b = DM_BUF_INIT;
    dm_record_t *recs = calloc(batch, sizeof(*recs));
    size_t *st = calloc(batch + 1, sizeof(size_t));
    dm_arena_t a;
    dm_arena_init(&a, 0);
    for (long i = 0; i < n; i += batch) {
        dm_buf_reset(&b);
        dm_arena_reset(&a);
        int k = (int)(n - i < batch ? n - i : batch);
        for (int j = 0; j < k; j++) {
            long id = first + i + j;
            char json[400];
            snprintf(json, sizeof(json),
                     "{\"before\":null,\"after\":{\"Value\":{\"id\":%ld,\"country\":{\"string\":"
                     "\"US\"},\"amount\":{\"int\":%ld},\"price\":{\"double\":%ld.5},\"note\":{"
                     "\"string\":\"note %ld\"},\"paid\":{\"boolean\":true}%s}},\"op\":\"c\","
                     "\"ts_ms\":%ld}",
                     id, id % 1000, id % 97, id, ver == 2 ? ",\"tier\":{\"string\":\"gold\"}" : "",
                     id);
            dm_avro_value_t v;
            st[j] = b.len;
            dm_wire_put_header(&b, (uint32_t)ver);
            if (dm_avro_from_json_text(s->root, json, strlen(json), DM_AVRO_JSON_AVRO, &a, &v,
                                       &err) ||
                dm_avro_encode(s->root, &v, &b, &err))
                die("encoding", &err);
        }
        st[k] = b.len;
        for (int j = 0; j < k; j++)
            recs[j] = (dm_record_t){
                .value = b.data + st[j], .value_len = (int32_t)(st[j + 1] - st[j]), .key_len = -1};
        if (dm_transport_produce(t, topic, 0, recs, (size_t)k, NULL, &err)) die("produce", &err);
    }
    dm_arena_destroy(&a);
    dm_buf_free(&b);
    free(recs);
    free(st);
}

static json_t *filter_conf;

static dm_task_t *task(const char *in, const char *group, const char *out,
                       const dm_avro_schema_t *reader, uint32_t id)
{
    static dm_task_step_spec_t steps[1];
    steps[0] = (dm_task_step_spec_t){&dm_proc_filter, filter_conf};
    dm_task_config_t conf = {.name = group,
                             .group = group,
                             .input_topic = in,
                             .input_schema = reader,
                             .input_schema_id = id,
                             .output_topic = out,
                             .output_schema_id = id,
                             .dead_letter_topic = "dlq",
                             .steps = steps,
                             .n_steps = 1,
                             .schema_by_id = by_id,
                             .schema_policy = DM_TASK_SCHEMA_STOP};
    dm_task_t *k = NULL;
    dm_error_t err = {0};
    if (dm_task_new(t, &conf, &k, &err)) die("task", &err);
    return k;
}

/* Steps until nothing is left; returns CPU seconds. */
static double drain(dm_task_t *k, long *records)
{
    dm_error_t err = {0};
    double c0 = cpu_seconds();
    *records = 0;
    for (;;) {
        size_t n = 0;
        if (dm_task_step(k, 0, &n, &err)) die("step", &err);
        if (!n) break;
        *records += (long)n;
    }
    return cpu_seconds() - c0;
}

int main(void)
{
    long n = getenv("DM_BENCH_RECORDS") ? atol(getenv("DM_BENCH_RECORDS")) : 2000000;
    dm_error_t err = {0};
    if (dm_avro_schema_parse(v1_json, strlen(v1_json), &v1, &err) ||
        dm_avro_schema_parse(v2_json, strlen(v2_json), &v2, &err))
        die("schema", &err);
    char dir[] = "/tmp/dm_bench_evolve_XXXXXX", url[300];
    if (!mkdtemp(dir)) die("mkdtemp", NULL);
    snprintf(url, sizeof(url), "embedded:%s", dir);
    if (dm_transport_open(url, &t, &err)) die("open", &err);
    filter_conf = json_pack("{s:s}", "expr", "after.id >= 0");
    const char *topics[] = {"in", "out1", "out2", "dlq", "sw", "swout"};
    for (int i = 0; i < 6; i++)
        create(topics[i]);
    produce("in", 0, n, 1);

    long got1, got2;
    dm_task_t *k = task("in", "direct", "out1", v1, 1);
    double direct = drain(k, &got1);
    dm_task_free(k);
    k = task("in", "resolved", "out2", v2, 2);
    double resolved = drain(k, &got2);
    dm_task_free(k);
    if (got1 != n || got2 != n) {
        fprintf(stderr, "bench_evolve: read %ld and %ld of %ld records\n", got1, got2, n);
        return 1;
    }

    produce("sw", 0, 1000, 1);
    produce("sw", 1000, 1000, 2);
    k = task("sw", "switch", "swout", v1, 1);
    size_t step_n = 0;
    while (dm_task_step(k, 0, &step_n, &err) == DM_OK)
        ;
    if (err.code != DM_ERR_SCHEMA_NEW_VERSION) die("switch", &err);
    uint64_t t0 = dm_now_ns();
    dm_task_free(k);
    k = task("sw", "switch", "swout", v2, 2);
    if (dm_task_step(k, 0, &step_n, &err) || !step_n) die("after the switch", &err);
    double switch_ms = (double)(dm_now_ns() - t0) / 1e6;
    dm_task_free(k);

    printf("records: %ld (CDC envelope, 6 columns), filter task, one thread\n", n);
    printf("direct   (reader = writer, before the change): %.0f ns CPU per record, %.2f M/s\n",
           direct / (double)n * 1e9, (double)n / direct / 1e6);
    printf("resolved (old records read as the new version): %.0f ns CPU per record, %.2f M/s\n",
           resolved / (double)n * 1e9, (double)n / resolved / 1e6);
    printf("switch: task stopped at the new version to the new task's first commit: %.2f ms\n",
           switch_ms);
    printf("evolve ratio=%.2f target=0.5\n", direct / resolved);
    dm_transport_close(t);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0) return 1;
    json_decref(filter_conf);
    dm_avro_schema_free(v1);
    dm_avro_schema_free(v2);
    return 0;
}
