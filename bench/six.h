/* bench/six.h — what the engine, sql, sdk and lua benchmarks share: the
 * six-field record (int, long, string, double, boolean, optional string),
 * the embedded log they run on (t), producing N such records into topic
 * "in", and process CPU time. Each benchmark is one file: define BENCH_NAME
 * (its name, for error messages), set t and schema, then include this. */
#ifndef DM_BENCH_SIX_H
#define DM_BENCH_SIX_H

#ifndef BENCH_NAME
#error "define BENCH_NAME before including bench/six.h"
#endif

#include <stdio.h>
#include <stdlib.h>
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
#endif
