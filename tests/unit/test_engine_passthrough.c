/* Unit tests for fields a task passes through as their bytes: a
 * filter→project chain whose project keeps fields under their own type
 * decodes them as bytes and copies them (dm_avro_codec_new_raw). Its output
 * and its dead letters must be those of the same chain decoding and encoding
 * every field, on random records (nullable unions, strings, big longs, nested
 * records, arrays, renamed fields, a computed field between kept ones) with
 * some of them corrupted. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "engine/task.h"
#include "schema/wire.h"

#define SCHEMA_ID 3

#include "test_raw_util.h"
static dm_transport_t *t;

/* n random records, every 13th cut short and every 17th with bytes overwritten. */
static void produce(int n)
{
    dm_arena_t a;
    dm_arena_init(&a, 0);
    dm_buf_t bytes = DM_BUF_INIT;
    size_t *starts = calloc((size_t)n + 1, sizeof(size_t));
    dm_error_t err = {0};
    for (int i = 0; i < n; i++) {
        dm_arena_reset(&a);
        dm_avro_value_t v = random_record(&a);
        starts[i] = bytes.len;
        dm_wire_put_header(&bytes, SCHEMA_ID);
        REQUIRE(dm_avro_encode(schema->root, &v, &bytes, &err) == DM_OK);
        size_t len = bytes.len - starts[i] - DM_WIRE_HEADER;
        if (i % 13 == 5) bytes.len -= 1 + rnd() % len;
        if (i % 17 == 3)
            for (int k = 0; k < 2; k++)
                bytes.data[starts[i] + DM_WIRE_HEADER + rnd() % len] = (uint8_t)rnd();
    }
    starts[n] = bytes.len;
    dm_record_t *recs = calloc((size_t)n, sizeof(*recs));
    for (int i = 0; i < n; i++)
        recs[i] = (dm_record_t){.value = bytes.data + starts[i],
                                .value_len = (int32_t)(starts[i + 1] - starts[i]),
                                .key_len = -1};
    REQUIRE(dm_transport_produce(t, "in", 0, recs, (size_t)n, NULL, &err) == DM_OK);
    free(recs);
    free(starts);
    dm_buf_free(&bytes);
    dm_arena_destroy(&a);
}

static void create(const char *name)
{
    dm_error_t err = {0};
    dm_topic_config_t c = {.name = name, .partitions = 1, .fsync = DM_TRANSPORT_FSYNC_NEVER};
    REQUIRE(dm_transport_create_topic(t, &c, &err) == DM_OK);
}

static const char *columns =
    "[\"id\", \"name AS label\", \"amount * 2 AS doubled\", \"note\", \"big\", \"inner\","
    " \"tags\", \"n AS num\", \"opt\", \"f\"]";

/* Runs filter → project (→ a filter that passes all, when tail) from "in" to
 * out, with dead letters to out.dlq. */
static void run_chain(const char *out, const char *predicate, bool tail)
{
    char dlq[64];
    snprintf(dlq, sizeof(dlq), "%s.dlq", out);
    create(out);
    create(dlq);
    json_error_t je;
    json_t *filter = json_pack("{s:s}", "expr", predicate);
    json_t *project = json_pack("{s:o}", "columns", json_loads(columns, 0, &je));
    json_t *pass = json_pack("{s:s}", "expr", "num IS NULL OR num IS NOT NULL");
    dm_task_step_spec_t steps[3] = {
        {&dm_proc_filter, filter}, {&dm_proc_project, project}, {&dm_proc_filter, pass}};
    dm_task_config_t conf = {.name = out,
                             .group = out,
                             .input_topic = "in",
                             .input_schema = schema,
                             .input_schema_id = SCHEMA_ID,
                             .output_topic = out,
                             .output_schema_id = SCHEMA_ID + 1,
                             .dead_letter_topic = dlq,
                             .steps = steps,
                             .n_steps = tail ? 3 : 2,
                             .max_batch_bytes = 64 * 1024};
    dm_task_t *task = NULL;
    dm_error_t err = {0};
    if (dm_task_new(t, &conf, &task, &err)) printf("    task: %s\n", err.message);
    REQUIRE(task);
    int64_t start, end;
    REQUIRE(dm_transport_offsets(t, "in", 0, &start, &end, &err) == DM_OK);
    for (int guard = 0; dm_task_position(task) < end && guard < 10000; guard++) {
        size_t k;
        if (dm_task_step(task, 0, &k, &err)) {
            printf("    step: %s\n", err.message);
            REQUIRE(0);
        }
    }
    dm_task_free(task);
    json_decref(filter);
    json_decref(project);
    json_decref(pass);
}

/* Every record of topic a equals the one at the same offset of b: value
 * bytes, and headers (the dead letters' reason, processor, position). */
static int same_topic(const char *a, const char *b, int *n_out)
{
    dm_transport_batch_t ba = {0}, bb = {0};
    dm_error_t err = {0};
    int64_t s, end_a, end_b;
    REQUIRE(dm_transport_offsets(t, a, 0, &s, &end_a, &err) == DM_OK);
    REQUIRE(dm_transport_offsets(t, b, 0, &s, &end_b, &err) == DM_OK);
    int differ = end_a != end_b;
    *n_out = (int)end_a;
    for (int64_t off = 0; off < end_a && !differ;) {
        REQUIRE(dm_transport_fetch(t, a, 0, off, 1 << 20, 0, &ba, &err) == DM_OK);
        REQUIRE(dm_transport_fetch(t, b, 0, off, 1 << 20, 0, &bb, &err) == DM_OK);
        size_t n = ba.n < bb.n ? ba.n : bb.n;
        REQUIRE(n > 0);
        for (size_t i = 0; i < n; i++) {
            const dm_record_t *x = &ba.records[i], *y = &bb.records[i];
            bool same = x->value_len == y->value_len && x->n_headers == y->n_headers &&
                        (x->value_len <= 0 || !memcmp(x->value, y->value, (size_t)x->value_len));
            for (uint32_t h = 0; same && h < x->n_headers; h++) {
                const dm_record_header_t *hx = &x->headers[h], *hy = &y->headers[h];
                same = hx->value_len == hy->value_len &&
                       !memcmp(hx->value, hy->value, (size_t)hx->value_len);
            }
            if (!same && differ++ < 3)
                printf("    %s vs %s: offset %lld differs\n", a, b, (long long)x->offset);
        }
        off += (int64_t)n;
    }
    dm_transport_batch_free(t, &ba);
    dm_transport_batch_free(t, &bb);
    return differ;
}

static void test_passthrough_equals_decode_encode(void)
{
    char dir[] = "/tmp/dm-passthrough-XXXXXX";
    REQUIRE(mkdtemp(dir));
    char url[128];
    snprintf(url, sizeof(url), "embedded:%s", dir);
    dm_error_t err = {0};
    REQUIRE(dm_transport_open(url, &t, &err) == DM_OK);
    create("in");
    produce(4000);
    /* raw: id, label, note, big, inner, tags, num, opt, f copied as bytes */
    run_chain("raw", "flag AND amount > 20.0", false);
    /* decoded: a filter after the project makes the task decode and encode all */
    run_chain("decoded", "flag AND amount > 20.0", true);
    /* mixed: the filter reads some kept fields, which are then decoded */
    run_chain("mixed",
              "flag AND amount > 20.0 AND (id >= 0 OR id < 0) AND name IS NOT NULL AND "
              "(note IS NULL OR note IS NOT NULL) AND inner.x IS NOT NULL AND big IS NOT NULL",
              false);
    int n_raw, n_mixed, d_raw, d_mixed;
    CHECK_EQ_INT(same_topic("raw", "decoded", &n_raw), 0);
    CHECK_EQ_INT(same_topic("mixed", "decoded", &n_mixed), 0);
    CHECK_EQ_INT(same_topic("raw.dlq", "decoded.dlq", &d_raw), 0);
    CHECK_EQ_INT(same_topic("mixed.dlq", "decoded.dlq", &d_mixed), 0);
    CHECK(n_raw > 1000); /* about half flagged, four fifths over 20 */
    CHECK(d_raw > 300);  /* the cut and overwritten ones */
    CHECK(n_mixed == n_raw && d_mixed == d_raw);
    dm_transport_close(t);
    char cmd[200];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
}

int main(void)
{
    dm_error_t err = {0};
    REQUIRE(dm_avro_schema_parse(schema_json, strlen(schema_json), &schema, &err) == DM_OK);
    RUN(test_passthrough_equals_decode_encode);
    dm_avro_schema_free(schema);
    return check_summary();
}
