/* bench/bench_avro.c — datamesh's compiled Avro codecs against avro-c.
 *
 * The work: 200,000 records of a 6-field schema (int, long, string, double,
 * boolean, nullable string) and 100,000 of a 30-field schema, encoded once into
 * one buffer. Each side decodes every record (full decode; for datamesh also a
 * projection to 2 of the 30 fields) and encodes every record back. The
 * baseline is avro-c 1.11's generic value API (avro_value_read/write into a
 * reused value, the fastest way avro-c offers). datamesh decodes into an arena
 * reset every 1,000 records and counts the arena's mallocs to show that no
 * record allocates. Both sides read the same bytes in the same process.
 */
#include <avro.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "schema/dm_avro.h"

#define BATCH 1000

static const char *schema6 =
    "{\"type\":\"record\",\"name\":\"Small\",\"fields\":["
    "{\"name\":\"i\",\"type\":\"int\"},{\"name\":\"l\",\"type\":\"long\"},"
    "{\"name\":\"s\",\"type\":\"string\"},{\"name\":\"d\",\"type\":\"double\"},"
    "{\"name\":\"b\",\"type\":\"boolean\"},{\"name\":\"n\",\"type\":[\"null\",\"string\"]}]}";

static char schema30[8192];

static void make_schema30(void)
{
    static const char *types[] = {
        "\"long\"",    "\"string\"", "\"double\"", "\"int\"",
        "\"boolean\"", "\"long\"",   "\"string\"", "[\"null\",\"string\"]",
        "\"long\"",    "\"double\""};
    size_t n = (size_t)snprintf(schema30, sizeof(schema30),
                                "{\"type\":\"record\",\"name\":\"Wide\",\"fields\":[");
    for (int i = 0; i < 30; i++)
        n += (size_t)snprintf(schema30 + n, sizeof(schema30) - n,
                              "%s{\"name\":\"f%d\",\"type\":%s}", i ? "," : "", i, types[i % 10]);
    snprintf(schema30 + n, sizeof(schema30) - n, "]}");
}

static uint64_t rng = 88172645463325252ull;
static uint64_t next(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return rng;
}

/* Builds a random value of node in arena (flat records of primitives). */
static void random_value(const dm_avro_node_t *n, dm_avro_value_t *v, dm_arena_t *a)
{
    memset(v, 0, sizeof(*v));
    if (n->type == DM_AVRO_UNION) {
        v->branch = (uint16_t)(next() % n->n_branches);
        random_value(n->branches[v->branch], v, a);
        v->branch = (uint16_t)(n->branches[0]->type == v->type ? 0 : 1);
        return;
    }
    v->type = (uint8_t)n->type;
    switch (n->type) {
    case DM_AVRO_INT: v->u.i = (int32_t)(next() % 100000); break;
    case DM_AVRO_LONG: v->u.l = (int64_t)(next() % 10000000000ull); break;
    case DM_AVRO_DOUBLE: v->u.d = (double)(next() % 1000000) / 7.0; break;
    case DM_AVRO_BOOLEAN: v->u.b = next() & 1; break;
    case DM_AVRO_STRING: {
        uint32_t len = 8 + (uint32_t)(next() % 24);
        uint8_t *p = dm_arena_alloc(a, len);
        for (uint32_t k = 0; k < len; k++)
            p[k] = (uint8_t)('a' + next() % 26);
        v->u.p = p;
        v->len = len;
        break;
    }
    case DM_AVRO_RECORD:
        v->len = n->n_fields;
        v->u.v = dm_arena_alloc(a, n->n_fields * sizeof(dm_avro_value_t));
        for (uint32_t i = 0; i < n->n_fields; i++)
            random_value(n->fields[i].type, &v->u.v[i], a);
        break;
    default: break;
    }
}

typedef struct dataset {
    const char *name;
    dm_avro_schema_t *schema;
    dm_buf_t bytes;
    size_t *offs; /* record i is bytes[offs[i], offs[i+1]) */
    int n;
} dataset_t;

static void make_dataset(dataset_t *d, const char *name, const char *json, int n)
{
    d->name = name;
    d->n = n;
    dm_error_t err = {0};
    if (dm_avro_schema_parse(json, strlen(json), &d->schema, &err)) {
        fprintf(stderr, "bench_avro: %s\n", err.message);
        exit(1);
    }
    d->offs = calloc((size_t)n + 1, sizeof(size_t));
    dm_arena_t a;
    dm_arena_init(&a, 0);
    for (int i = 0; i < n; i++) {
        dm_avro_value_t v;
        random_value(d->schema->root, &v, &a);
        d->offs[i] = d->bytes.len;
        if (dm_avro_encode(d->schema->root, &v, &d->bytes, &err)) {
            fprintf(stderr, "bench_avro: %s\n", err.message);
            exit(1);
        }
        if (i % BATCH == 0) dm_arena_reset(&a);
    }
    d->offs[n] = d->bytes.len;
    dm_arena_destroy(&a);
}

static double rate(int n, uint64_t t0)
{
    return (double)n / ((double)(dm_now_ns() - t0) / 1e9);
}

static double dm_decode(const dataset_t *d, const char *const *paths, size_t n_paths,
                        uint64_t *mallocs_after_warmup, uint64_t *checksum)
{
    dm_avro_codec_t *c;
    dm_error_t err = {0};
    if (dm_avro_codec_new(d->schema, NULL, paths, n_paths, &c, &err)) {
        fprintf(stderr, "bench_avro: %s\n", err.message);
        exit(1);
    }
    dm_arena_t a;
    dm_arena_init(&a, 0);
    dm_avro_value_t v;
    /* warm the arena with one batch */
    for (int i = 0; i < BATCH && i < d->n; i++)
        dm_avro_decode(c, d->bytes.data + d->offs[i], d->offs[i + 1] - d->offs[i], NULL, &a, &v,
                       NULL);
    dm_arena_reset(&a);
    uint64_t m0 = a.mallocs, sum = 0;
    /* Records come framed (as on a topic): each one's length is known, so the
     * decoder may stop after the last wanted field. */
    const uint8_t *base = d->bytes.data;
    const size_t *offs = d->offs;
    uint64_t t0 = dm_now_ns();
    for (int i = 0; i < d->n; i++) {
        if (dm_avro_decode(c, base + offs[i], offs[i + 1] - offs[i], NULL, &a, &v, &err)) {
            fprintf(stderr, "bench_avro: record %d: %s\n", i, err.message);
            exit(1);
        }
        sum += v.u.v[0].u.i + v.len;
        if ((i + 1) % BATCH == 0) dm_arena_reset(&a);
    }
    double r = rate(d->n, t0);
    *mallocs_after_warmup = a.mallocs - m0;
    *checksum += sum;
    dm_arena_destroy(&a);
    dm_avro_codec_free(c);
    return r;
}

static double dm_encode(const dataset_t *d)
{
    dm_avro_codec_t *c;
    dm_avro_codec_new(d->schema, NULL, NULL, 0, &c, NULL);
    dm_arena_t a;
    dm_arena_init(&a, 0);
    dm_avro_value_t *vals = malloc(BATCH * sizeof(*vals));
    dm_buf_t out = DM_BUF_INIT;
    dm_buf_reserve(&out, d->bytes.len + 1);
    memset(out.data, 0, out.cap); /* fault the pages in before timing, as for avro-c */
    const uint8_t *p = d->bytes.data, *end = p + d->bytes.len;
    uint64_t spent = 0;
    for (int base = 0; base < d->n; base += BATCH) {
        int cnt = d->n - base < BATCH ? d->n - base : BATCH;
        for (int i = 0; i < cnt; i++) {
            size_t used;
            dm_avro_decode(c, p, (size_t)(end - p), &used, &a, &vals[i], NULL);
            p += used;
        }
        uint64_t t0 = dm_now_ns();
        for (int i = 0; i < cnt; i++)
            dm_avro_encode(d->schema->root, &vals[i], &out, NULL);
        spent += dm_now_ns() - t0;
        dm_arena_reset(&a);
    }
    if (out.len != d->bytes.len || memcmp(out.data, d->bytes.data, out.len) != 0) {
        fprintf(stderr, "bench_avro: datamesh re-encoding differs from the input\n");
        exit(1);
    }
    dm_buf_free(&out);
    free(vals);
    dm_arena_destroy(&a);
    dm_avro_codec_free(c);
    return (double)d->n / ((double)spent / 1e9);
}

static avro_schema_t avroc_schema(const char *json)
{
    avro_schema_t s;
    if (avro_schema_from_json_length(json, strlen(json), &s)) {
        fprintf(stderr, "bench_avro: avro-c: %s\n", avro_strerror());
        exit(1);
    }
    return s;
}

static double avroc_decode(const dataset_t *d, const char *json)
{
    avro_schema_t s = avroc_schema(json);
    avro_value_iface_t *iface = avro_generic_class_from_schema(s);
    avro_value_t v;
    avro_generic_value_new(iface, &v);
    avro_reader_t r = avro_reader_memory((const char *)d->bytes.data, (int64_t)d->bytes.len);
    uint64_t t0 = dm_now_ns();
    for (int i = 0; i < d->n; i++) {
        if (avro_value_read(r, &v)) {
            fprintf(stderr, "bench_avro: avro-c read %d: %s\n", i, avro_strerror());
            exit(1);
        }
    }
    double rt = rate(d->n, t0);
    avro_reader_free(r);
    avro_value_decref(&v);
    avro_value_iface_decref(iface);
    avro_schema_decref(s);
    return rt;
}

static double avroc_encode(const dataset_t *d, const char *json)
{
    avro_schema_t s = avroc_schema(json);
    avro_value_iface_t *iface = avro_generic_class_from_schema(s);
    avro_value_t *vals = malloc(BATCH * sizeof(*vals));
    for (int i = 0; i < BATCH; i++)
        avro_generic_value_new(iface, &vals[i]);
    avro_reader_t r = avro_reader_memory((const char *)d->bytes.data, (int64_t)d->bytes.len);
    char *out = malloc(d->bytes.len + 1);
    memset(out, 0, d->bytes.len + 1); /* fault the pages in before timing */
    avro_writer_t w = avro_writer_memory(out, (int64_t)d->bytes.len + 1);
    uint64_t spent = 0;
    for (int base = 0; base < d->n; base += BATCH) {
        int cnt = d->n - base < BATCH ? d->n - base : BATCH;
        for (int i = 0; i < cnt; i++)
            avro_value_read(r, &vals[i]);
        uint64_t t0 = dm_now_ns();
        for (int i = 0; i < cnt; i++)
            avro_value_write(w, &vals[i]);
        spent += dm_now_ns() - t0;
    }
    if ((size_t)avro_writer_tell(w) != d->bytes.len ||
        memcmp(out, d->bytes.data, d->bytes.len) != 0) {
        fprintf(stderr, "bench_avro: avro-c re-encoding differs from the input\n");
        exit(1);
    }
    avro_writer_free(w);
    free(out);
    avro_reader_free(r);
    for (int i = 0; i < BATCH; i++)
        avro_value_decref(&vals[i]);
    free(vals);
    avro_value_iface_decref(iface);
    avro_schema_decref(s);
    return (double)d->n / ((double)spent / 1e9);
}

static double best(double a, double b)
{
    return a > b ? a : b;
}

int main(void)
{
    make_schema30();
    dataset_t small = {0}, wide = {0};
    make_dataset(&small, "6-field", schema6, 200000);
    make_dataset(&wide, "30-field", schema30, 100000);
    uint64_t sum = 0, m_small = 0, m_wide = 0, m_proj = 0;
    const char *two[] = {"f7", "f22"};

    /* best of three runs each, interleaved, to damp noise */
    double dm6 = 0, ac6 = 0, dm30 = 0, ac30 = 0, dmp = 0, dme6 = 0, ace6 = 0, dme30 = 0, ace30 = 0;
    for (int run = 0; run < 3; run++) {
        dm6 = best(dm6, dm_decode(&small, NULL, 0, &m_small, &sum));
        ac6 = best(ac6, avroc_decode(&small, schema6));
        dm30 = best(dm30, dm_decode(&wide, NULL, 0, &m_wide, &sum));
        ac30 = best(ac30, avroc_decode(&wide, schema30));
        dmp = best(dmp, dm_decode(&wide, two, 2, &m_proj, &sum));
        dme6 = best(dme6, dm_encode(&small));
        ace6 = best(ace6, avroc_encode(&small, schema6));
        dme30 = best(dme30, dm_encode(&wide));
        ace30 = best(ace30, avroc_encode(&wide, schema30));
    }
    printf("%-34s %14s %14s %8s\n", "work (records/s)", "avro-c", "datamesh", "ratio");
    printf("%-34s %14.0f %14.0f %7.2fx\n", "decode 6-field", ac6, dm6, dm6 / ac6);
    printf("%-34s %14.0f %14.0f %7.2fx\n", "decode 30-field", ac30, dm30, dm30 / ac30);
    printf("%-34s %14.0f %14.0f %7.2fx  (target 15x)\n", "decode 2 of 30 (avro-c: full)", ac30, dmp,
           dmp / ac30);
    printf("%-34s %14.0f %14.0f %7.2fx\n", "encode 6-field", ace6, dme6, dme6 / ace6);
    printf("%-34s %14.0f %14.0f %7.2fx\n", "encode 30-field", ace30, dme30, dme30 / ace30);
    printf("datamesh arena mallocs per %d-record batch after warm-up: 6-field %llu, 30-field "
           "%llu, projected %llu (checksum %llu)\n",
           BATCH, (unsigned long long)m_small, (unsigned long long)m_wide,
           (unsigned long long)m_proj, (unsigned long long)(sum & 0xffff));
    /* the headline: full decode, both schemas together */
    double ratio = (dm6 / ac6 + dm30 / ac30) / 2;
    printf("avro ratio=%.2f target=5\n", ratio);
    dm_buf_free(&small.bytes);
    dm_buf_free(&wide.bytes);
    free(small.offs);
    free(wide.offs);
    dm_avro_schema_free(small.schema);
    dm_avro_schema_free(wide.schema);
    return 0;
}
