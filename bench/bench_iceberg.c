/* bench/bench_iceberg.c — the Iceberg sink against the I/O floor.
 *
 * N records (5 M by default, DM_BENCH_RECORDS) of the 6-field shape (int,
 * long, string, double, boolean, nullable string) sit in the embedded log.
 * datamesh runs the Iceberg sink unit over them: Avro decoding, Parquet
 * (dictionary/PLAIN, zstd pages, statistics), manifests and one commit
 * through the file catalog. The baseline in the same run reads the same
 * records from the log, decodes them by hand and writes the same rows as
 * uncompressed CSV with fwrite (a hand-written formatter, no printf) — what
 * landing the data costs with no table format at all. Printed: rows/s and
 * MB/s (input Avro bytes) of both, output sizes, and `iceberg ratio=X.XX
 * target=0.3` (datamesh rows/s over baseline rows/s).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "connectors/iceberg/iceberg.h"
#include "tests/integration/iceberg_run.h"
#include "connectors/unit.h"
#include "core/clock.h"
#include "core/varint.h"
#include "schema/dm_avro.h"
#include "schema/wire.h"
#include "transport/transport.h"

static const char *schema_json =
    "{\"type\":\"record\",\"name\":\"Six\",\"fields\":[{\"name\":\"n\",\"type\":\"int\"},"
    "{\"name\":\"id\",\"type\":\"long\"},{\"name\":\"name\",\"type\":\"string\"},"
    "{\"name\":\"amount\",\"type\":\"double\"},{\"name\":\"flag\",\"type\":\"boolean\"},"
    "{\"name\":\"note\",\"type\":[\"null\",\"string\"]}]}";

static dm_transport_t *t;

static void die(const char *what, const dm_error_t *err)
{
    fprintf(stderr, "bench_iceberg: %s: %s\n", what, err ? err->message : "");
    exit(1);
}

static int64_t produce(long n)
{
    dm_error_t err = {0};
    const int batch = 1000;
    dm_buf_t b = DM_BUF_INIT;
    dm_record_t *recs = calloc(batch, sizeof(*recs));
    size_t *st = calloc(batch, sizeof(size_t));
    uint64_t x = 12345;
    int64_t bytes = 0;
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
        bytes += (int64_t)b.len;
        if (dm_transport_produce(t, "in", 0, recs, (size_t)k, NULL, &err)) die("produce", &err);
    }
    free(recs);
    free(st);
    dm_buf_free(&b);
    return bytes;
}

static char *put_int(char *p, int64_t v)
{
    char tmp[24];
    int n = 0;
    uint64_t u = v < 0 ? (uint64_t)(-(v + 1)) + 1 : (uint64_t)v;
    if (v < 0) *p++ = '-';
    do
        tmp[n++] = (char)('0' + u % 10);
    while ((u /= 10));
    while (n)
        *p++ = tmp[--n];
    return p;
}

/* The floor: same records from the log, hand decoding, CSV by hand, fwrite. */
static double baseline(long n, const char *path, int64_t *out_bytes)
{
    dm_error_t err = {0};
    dm_transport_batch_t b = {0};
    FILE *f = fopen(path, "wb");
    if (!f) die("baseline file", NULL);
    static char line[256];
    int64_t off = 0;
    uint64_t t0 = dm_now_ns();
    while (off < n) {
        if (dm_transport_fetch(t, "in", 0, off, 1 << 20, 0, &b, &err) || !b.n) die("fetch", &err);
        for (size_t i = 0; i < b.n; i++) {
            const uint8_t *p = b.records[i].value + 5,
                          *end = b.records[i].value + b.records[i].value_len;
            int64_t nn = 0, id = 0, len = 0;
            p += dm_varint_decode_i64(p, end, &nn);
            p += dm_varint_decode_i64(p, end, &id);
            p += dm_varint_decode_i64(p, end, &len);
            const uint8_t *name = p;
            p += len;
            double amount;
            memcpy(&amount, p, 8);
            p += 8;
            bool flag = *p++;
            char *o = line;
            o = put_int(o, nn);
            *o++ = ',';
            o = put_int(o, id);
            *o++ = ',';
            memcpy(o, name, (size_t)len);
            o += len;
            *o++ = ',';
            /* Amounts are cents: print them exactly as d.dd. */
            int64_t cents = (int64_t)(amount * 100.0 + 0.5);
            o = put_int(o, cents / 100);
            *o++ = '.';
            *o++ = (char)('0' + cents % 100 / 10);
            *o++ = (char)('0' + cents % 10);
            *o++ = ',';
            *o++ = flag ? '1' : '0';
            *o++ = ',';
            if (*p == 2) {
                int64_t nl = 0;
                p++;
                p += dm_varint_decode_i64(p, end, &nl);
                memcpy(o, p, (size_t)nl);
                o += nl;
            }
            *o++ = '\n';
            fwrite(line, 1, (size_t)(o - line), f);
        }
        off = b.next_offset;
    }
    fflush(f);
    fsync(fileno(f));
    *out_bytes = ftell(f);
    fclose(f);
    dm_transport_batch_free(t, &b);
    return (double)n / ((double)(dm_now_ns() - t0) / 1e9);
}

static double cpu_seconds(void)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           (double)(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

typedef struct run {
    ice_sink_t sink;
    dm_unit_status_t st;
} run_t;

static void *run_main(void *a)
{
    run_t *r = a;
    ice_sink_run(&r->sink, &r->st);
    return NULL;
}

static int64_t du(const char *dir)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "du -sb %s/data | cut -f1", dir);
    FILE *p = popen(cmd, "r");
    long long v = 0;
    if (p && fscanf(p, "%lld", &v) != 1) v = 0;
    if (p) pclose(p);
    return v;
}

int main(void)
{
    long n = getenv("DM_BENCH_RECORDS") ? atol(getenv("DM_BENCH_RECORDS")) : 5000000;
    char dir[512], url[600], path[700];
    snprintf(dir, sizeof(dir), "%s/bench_iceberg.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir)) die("mkdtemp", NULL);
    snprintf(url, sizeof(url), "embedded:%s/log", dir);
    dm_error_t err = {0};
    if (dm_transport_open(url, &t, &err)) die("open", &err);
    dm_topic_config_t c = {.name = "in", .partitions = 1, .fsync = DM_TRANSPORT_FSYNC_NEVER};
    if (dm_transport_create_topic(t, &c, &err)) die("topic", &err);
    uint64_t t0 = dm_now_ns();
    int64_t in_bytes = produce(n);
    printf("produced %ld records (%.1f MB of Avro) in %.1f s\n", n, in_bytes / 1e6,
           (double)(dm_now_ns() - t0) / 1e9);
    snprintf(path, sizeof(path), "%s/baseline.csv", dir);
    int64_t csv_bytes;
    double base = baseline(n, path, &csv_bytes);
    unlink(path);

    dm_avro_schema_t *schema = NULL;
    if (dm_avro_schema_parse(schema_json, strlen(schema_json), &schema, &err)) die("schema", &err);
    dm_iceberg_sink_config_t conf = {0};
    dm_config_defaults(&dm_iceberg_sink_config_table, &conf, NULL);
    snprintf(path, sizeof(path), "%s/warehouse", dir);
    conf.warehouse = strdup(path);
    conf.table = strdup("bench.six");
    conf.compression = getenv("DM_BENCH_CODEC") ? atoi(getenv("DM_BENCH_CODEC")) : 0;
    conf.commit_interval = 3600000; /* one checkpoint: the file-size rolls and the final one */
    conf.common.linger_ms = 50;     /* the last batch waits no longer than the old loop did */
    run_t r = {.sink = {.transport = t,
                        .topic = "in",
                        .partitions = 1,
                        .group = "bench",
                        .schema = schema,
                        .schema_id = 1,
                        .conf = &conf}};
    dm_unit_init(&r.st);
    pthread_t th;
    double cpu0 = cpu_seconds();
    t0 = dm_now_ns();
    pthread_create(&th, NULL, run_main, &r);
    while (atomic_load(&r.st.position) < n)
        usleep(2000);
    atomic_store(&r.st.stop, true); /* a stop commits what is pending */
    pthread_join(th, NULL);
    double secs = (double)(dm_now_ns() - t0) / 1e9, dm = (double)n / secs;
    double cpu = cpu_seconds() - cpu0;
    char state[32], error[512];
    dm_unit_get(&r.st, state, sizeof(state), error, sizeof(error));
    if (error[0]) fprintf(stderr, "bench_iceberg: sink reported: %s\n", error);
    snprintf(path, sizeof(path), "%s/warehouse/bench/six", dir);
    int64_t pq_bytes = du(path);
    printf("baseline (decode by hand, CSV by hand, fwrite): %6.2f M rows/s %7.1f MB/s in, %.1f MB "
           "of CSV\n",
           base / 1e6, base * (double)in_bytes / n / 1e6, csv_bytes / 1e6);
    printf("datamesh iceberg sink (Parquet zstd, commit):    %6.2f M rows/s %7.1f MB/s in, %.1f MB "
           "of Parquet\n",
           dm / 1e6, dm * (double)in_bytes / n / 1e6, pq_bytes / 1e6);
    /* CPU seconds of all the sink's threads: steadier than rows/s on a shared machine. */
    printf("datamesh cpu: %.2f s for %.2f s wall (%.2f M rows per cpu-second)\n", cpu, secs,
           (double)n / cpu / 1e6);
    dm_unit_destroy(&r.st);
    dm_config_free(&dm_iceberg_sink_config_table, &conf);
    dm_avro_schema_free(schema);
    dm_transport_close(t);
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "bench_iceberg: could not remove %s\n", dir);
    printf("iceberg ratio=%.2f target=0.3\n", dm / base);
    return 0;
}
