/* bench/six.h — what the engine, sql, sdk and lua benchmarks share: the
 * six-field record (int, long, string, double, boolean, optional string),
 * the embedded log they run on (t) in a temporary directory, producing N such
 * records into topic "in", running a task over them, process CPU time, and
 * the alternating built-in-against-another-way comparison of the sdk and lua
 * benchmarks. Each benchmark is one file: define BENCH_NAME (its name, for
 * error messages), then include this. */
#ifndef DM_BENCH_SIX_H
#define DM_BENCH_SIX_H

#ifndef BENCH_NAME
#error "define BENCH_NAME before including bench/six.h"
#endif

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *schema_json =
    "{\"type\":\"record\",\"name\":\"Six\",\"fields\":[{\"name\":\"n\",\"type\":\"int\"},"
    "{\"name\":\"id\",\"type\":\"long\"},{\"name\":\"name\",\"type\":\"string\"},"
    "{\"name\":\"amount\",\"type\":\"double\"},{\"name\":\"flag\",\"type\":\"boolean\"},"
    "{\"name\":\"note\",\"type\":[\"null\",\"string\"]}]}";

static dm_transport_t *t;
static dm_avro_schema_t *schema;

static void die(const char *what, const dm_error_t *err)
{
    fprintf(stderr, "%s: %s: %s\n", BENCH_NAME, what, err ? err->message : "");
    exit(1);
}

static void create(const char *name)
{
    dm_error_t err = {0};
    dm_topic_config_t c = {.name = name, .partitions = 1, .fsync = DM_TRANSPORT_FSYNC_NEVER};
    if (dm_transport_create_topic(t, &c, &err)) die(name, &err);
}

static void produce(long n)
{
    dm_error_t err = {0};
    const int batch = 1000;
    dm_buf_t b = DM_BUF_INIT;
    dm_record_t *recs = calloc(batch, sizeof(*recs));
    size_t *st = calloc(batch, sizeof(size_t));
    uint64_t x = 12345;
    for (long i = 0; i < n; i += batch) {
        dm_buf_reset(&b);
        int k = 0;
        for (; k < batch && i + k < n; k++) {
            uint8_t v[DM_VARINT_MAX];
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            st[k] = b.len;
            dm_wire_put_header(&b, 1);
            dm_buf_append(&b, v, dm_varint_encode_i64((int32_t)(x & 0xffff), v));
            dm_buf_append(&b, v, dm_varint_encode_i64(i + k, v));
            char name[16];
            int len = snprintf(name, sizeof(name), "user%05d", (int)(x % 100000));
            dm_buf_append(&b, v, dm_varint_encode_i64(len, v));
            dm_buf_append(&b, name, (size_t)len);
            double amount = (double)(x % 10000) / 100.0;
            dm_buf_append(&b, &amount, 8);
            dm_buf_append_u8(&b, (x >> 20) & 1);
            if (x & (1 << 21)) {
                dm_buf_append_u8(&b, 2);
                dm_buf_append(&b, v, dm_varint_encode_i64(4, v));
                dm_buf_append(&b, "note", 4);
            } else {
                dm_buf_append_u8(&b, 0);
            }
        }
        for (int j = 0; j < k; j++) {
            size_t end = j + 1 < k ? st[j + 1] : b.len;
            recs[j] = (dm_record_t){
                .value = b.data + st[j], .value_len = (int32_t)(end - st[j]), .key_len = -1};
        }
        if (dm_transport_produce(t, "in", 0, recs, (size_t)k, NULL, &err)) die("produce", &err);
    }
    free(recs);
    free(st);
    dm_buf_free(&b);
}

static inline double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
/* Makes the temporary directory (dir: a mkdtemp template), opens the
 * embedded log in it as t and parses the schema. */
static inline void six_open(char *dir)
{
    if (!mkdtemp(dir)) die("mkdtemp", NULL);
    char url[160];
    snprintf(url, sizeof(url), "embedded:%s/log", dir);
    dm_error_t err = {0};
    if (dm_transport_open(url, &t, &err)) die("open", &err);
    if (dm_avro_schema_parse(schema_json, strlen(schema_json), &schema, &err)) die("schema", &err);
}

/* Closes what six_open opened and removes dir. */
static inline void six_close(const char *dir)
{
    dm_avro_schema_free(schema);
    dm_transport_close(t);
    char cmd[200];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "%s: could not remove %s\n", BENCH_NAME, dir);
}

/* Steps task until it has read n records of "in". */
static inline void six_drain(dm_task_t *task, long n)
{
    dm_error_t err = {0};
    while (dm_task_position(task) < n) {
        size_t k;
        if (dm_task_step(task, 0, &k, &err)) die("step", &err);
    }
}

/* One round of a comparison: runs the chain the built-in way (other false)
 * or the other way over n records into topic out; events/s, *cpu CPU-s per
 * event. */
typedef double (*six_run_fn)(long n, bool other, int round, const char *out, double *cpu);

/* The sdk and lua benchmarks: n records (DM_BENCH_RECORDS, default
 * default_n), rounds alternating built-in and the other way into topics
 * out-builtin and out-other, the round with the median ratio printed with
 * each one's label, both outputs checked to hold the same records, and the
 * line "NAME ratio=X target=T". Returns the exit status. */
static inline int six_versus(six_run_fn run, long default_n, const char *builtin_label,
                             const char *other_label, const char *name, const char *target)
{
    long n = getenv("DM_BENCH_RECORDS") ? atol(getenv("DM_BENCH_RECORDS")) : default_n;
    char dir[] = "/tmp/dm-bench-six-XXXXXX";
    six_open(dir);
    create("in");
    create("out-other");
    create("out-builtin");
    create("out-warm");
    create("dlq");
    produce(n);
    int rounds = getenv("DM_BENCH_ROUNDS") ? atoi(getenv("DM_BENCH_ROUNDS")) : 3;
    if (rounds < 1 || rounds > 15) rounds = 3;
    double b[15], s[15], bc[15], sc[15];
    int order[15];
    double warm;
    run(n / 10 + 1, false, 99, "out-warm", &warm); /* page cache */
    for (int r = 0; r < rounds; r++) {
        b[r] = run(n, false, r, "out-builtin", &bc[r]);
        s[r] = run(n, true, r, "out-other", &sc[r]);
        order[r] = r;
        printf("round %d: %s %.2f, %s %.2f M events/s (ratio %.2f)\n", r + 1, builtin_label,
               b[r] / 1e6, other_label, s[r] / 1e6, s[r] / b[r]);
    }
    for (int i = 1; i < rounds; i++)
        for (int j = i; j > 0 && s[order[j]] / b[order[j]] < s[order[j - 1]] / b[order[j - 1]];
             j--) {
            int x = order[j];
            order[j] = order[j - 1];
            order[j - 1] = x;
        }
    int m = order[rounds / 2];
    int64_t st, e1, e2;
    dm_error_t err = {0};
    dm_transport_offsets(t, "out-other", 0, &st, &e1, &err);
    dm_transport_offsets(t, "out-builtin", 0, &st, &e2, &err);
    printf("%-36s %.2f M events/s, %.0f ns CPU per event\n", builtin_label, b[m] / 1e6,
           bc[m] * 1e9);
    printf("%-36s %.2f M events/s, %.0f ns CPU per event\n", other_label, s[m] / 1e6, sc[m] * 1e9);
    six_close(dir);
    if (e1 != e2 || e1 <= 0) { /* both chains keep the same records */
        fprintf(stderr, "%s: outputs differ: %lld vs %lld records\n", BENCH_NAME, (long long)e1,
                (long long)e2);
        return 1;
    }
    printf("%s ratio=%.2f target=%s\n", name, s[m] / b[m], target);
    return 0;
}
#endif
