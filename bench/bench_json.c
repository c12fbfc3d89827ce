/* bench/bench_json.c — JSON in and out of Avro against the libraries people
 * would use for it, on the same 8-field lines (~145 bytes, as in issue 25).
 *
 * JSON → Avro: datamesh reads each line with the schema (UTF-8 checked,
 * unescaped, every field typed) and encodes it as Avro binary; the baseline
 * is simdjson's On-Demand API reading the same lines into a struct (parsing
 * only, no validation against a schema, no encoding). The old path (jansson
 * DOM, then the walker) is printed too. Target: >= 0.5x simdjson.
 *
 * Avro → JSON: datamesh decodes each Avro record and writes it as a JSON
 * line; the baseline is jansson's json_dumpb of the same records already built
 * as jansson objects (the dump alone). Target: >= 3x jansson.
 *
 * CPU-seconds of the process (CLOCK_PROCESS_CPUTIME_ID), best of three runs
 * each. Last line: `json ratio=X.XX target=0.5`, JSON → Avro over simdjson.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "schema/dm_avro.h"
#include "schema/json_internal.h"

#define LINES  1000000
#define ROUNDS 3

static const char *const SCHEMA =
    "{\"type\":\"record\",\"name\":\"Event\",\"fields\":["
    "{\"name\":\"id\",\"type\":\"long\"},{\"name\":\"user\",\"type\":\"string\"},"
    "{\"name\":\"country\",\"type\":\"string\"},{\"name\":\"amount\",\"type\":\"double\"},"
    "{\"name\":\"ts\",\"type\":\"long\"},{\"name\":\"device\",\"type\":\"string\"},"
    "{\"name\":\"score\",\"type\":\"double\"},{\"name\":\"active\",\"type\":\"boolean\"}]}";

#ifdef DM_HAVE_SIMDJSON
size_t dm_bench_simdjson_read(const char *buf, size_t len, uint64_t *checksum);
#endif

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rng = 88172645463325252ull;
static uint64_t rnd(uint64_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng % n;
}

/* The lines the issue measured: 8 fields, about 1 in 7 from the US. */
static void make_lines(dm_buf_t *out)
{
    static const char *const countries[] = {"US", "DE", "FR", "BR", "IN", "JP", "GB"};
    static const char *const devices[] = {"android", "ios", "web", "tv"};
    for (int i = 0; i < LINES; i++)
        dm_buf_printf(out,
                      "{\"id\":%d,\"user\":\"user_%06d\",\"country\":\"%s\",\"amount\":%d.%02d,"
                      "\"ts\":%lld,\"device\":\"%s\",\"score\":0.%04d,\"active\":%s}\n",
                      1000000 + i, (int)rnd(1000000), countries[rnd(7)], (int)rnd(1000),
                      (int)rnd(100), 1700000000000LL + i * 37, devices[rnd(4)], (int)rnd(10000),
                      rnd(2) ? "true" : "false");
}

typedef dm_err_t (*reader_fn)(const dm_avro_node_t *, const char *, size_t, dm_avro_json_mode_t,
                              dm_arena_t *, dm_avro_value_t *, dm_error_t *);

static dm_err_t old_path(const dm_avro_node_t *n, const char *t, size_t len,
                         dm_avro_json_mode_t mode, dm_arena_t *a, dm_avro_value_t *v,
                         dm_error_t *err)
{
    return dm_avro_from_json_dom(n, t, len, mode, false, a, v, err);
}

/* JSON lines → Avro binary records; returns CPU-seconds. */
static double to_avro(const dm_avro_schema_t *s, const dm_buf_t *lines, reader_fn rd,
                      dm_buf_t *avro, size_t *offs)
{
    dm_arena_t a;
    dm_arena_init(&a, 0);
    dm_buf_reset(avro);
    double t0 = cpu_now();
    const char *p = (const char *)lines->data, *end = p + lines->len;
    int n = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = (size_t)(nl - p);
        dm_avro_value_t v;
        dm_error_t err = {0};
        if (rd(s->root, p, len, DM_AVRO_JSON_PLAIN, &a, &v, &err) ||
            dm_avro_encode(s->root, &v, avro, &err)) {
            fprintf(stderr, "bench_json: line %d: %s\n", n + 1, err.message);
            exit(1);
        }
        offs[++n] = avro->len;
        if (n % 1000 == 0) dm_arena_reset(&a);
        p = nl + 1;
    }
    double t = cpu_now() - t0;
    dm_arena_destroy(&a);
    return t;
}

/* Avro records → JSON lines; returns CPU-seconds. */
static double to_json(const dm_avro_schema_t *s, const dm_avro_codec_t *c, const dm_buf_t *avro,
                      const size_t *offs, dm_buf_t *out)
{
    dm_arena_t a;
    dm_arena_init(&a, 0);
    dm_buf_reset(out);
    double t0 = cpu_now();
    for (int i = 0; i < LINES; i++) {
        dm_avro_value_t v;
        dm_error_t err = {0};
        if (dm_avro_decode(c, avro->data + offs[i], offs[i + 1] - offs[i], NULL, &a, &v, &err) ||
            dm_avro_to_json(s->root, &v, DM_AVRO_JSON_PLAIN, out, &err)) {
            fprintf(stderr, "bench_json: record %d: %s\n", i, err.message);
            exit(1);
        }
        dm_buf_append_u8(out, '\n');
        if (i % 1000 == 999) dm_arena_reset(&a);
    }
    double t = cpu_now() - t0;
    dm_arena_destroy(&a);
    return t;
}

/* jansson's dump of the same records, built as objects beforehand. */
static double jansson_dump(const dm_buf_t *lines, dm_buf_t *out)
{
    json_t **docs = malloc(sizeof(*docs) * LINES);
    const char *p = (const char *)lines->data;
    for (int i = 0; i < LINES; i++) {
        const char *nl = strchr(p, '\n');
        docs[i] = json_loadb(p, (size_t)(nl - p), 0, NULL);
        p = nl + 1;
    }
    dm_buf_reset(out);
    dm_buf_reserve(out, lines->len * 2);
    double t0 = cpu_now();
    for (int i = 0; i < LINES; i++) {
        size_t n = json_dumpb(docs[i], (char *)out->data + out->len, out->cap - out->len,
                              JSON_COMPACT | JSON_PRESERVE_ORDER);
        out->len += n;
        out->data[out->len++] = '\n';
    }
    double t = cpu_now() - t0;
    for (int i = 0; i < LINES; i++)
        json_decref(docs[i]);
    free(docs);
    return t;
}

static double best(double a, double b)
{
    return a < b || b == 0 ? a : b;
}

int main(void)
{
    dm_avro_schema_t *s;
    dm_avro_codec_t *c;
    dm_error_t err = {0};
    if (dm_avro_schema_parse(SCHEMA, strlen(SCHEMA), &s, &err) ||
        dm_avro_codec_new(s, NULL, NULL, 0, &c, &err)) {
        fprintf(stderr, "bench_json: %s\n", err.message);
        return 1;
    }
    dm_buf_t lines = DM_BUF_INIT, avro = DM_BUF_INIT, out = DM_BUF_INIT;
    make_lines(&lines);
    size_t *offs = calloc(LINES + 1, sizeof(*offs));
    printf("%d JSON lines of 8 fields, %.0f bytes a line on average\n", LINES,
           (double)lines.len / LINES);

    /* DM_BENCH_JSON_PROFILE=in|out: only datamesh's side, for perf record */
    const char *prof = getenv("DM_BENCH_JSON_PROFILE");
    if (prof) {
        for (int r = 0; r < 5; r++) {
            to_avro(s, &lines, dm_avro_from_json_text, &avro, offs);
            if (strcmp(prof, "out") == 0) to_json(s, c, &avro, offs, &out);
        }
        return 0;
    }
    double t_new = 0, t_old = 0, t_simd = 0, t_out = 0, t_jdump = 0;
    uint64_t sum = 0;
    for (int r = 0; r < ROUNDS; r++) {
        t_new = best(to_avro(s, &lines, dm_avro_from_json_text, &avro, offs), t_new);
        t_old = best(to_avro(s, &lines, old_path, &avro, offs), t_old);
#ifdef DM_HAVE_SIMDJSON
        double t0 = cpu_now();
        if (dm_bench_simdjson_read((const char *)lines.data, lines.len, &sum) != LINES) return 1;
        t_simd = best(cpu_now() - t0, t_simd);
#endif
    }
    to_avro(s, &lines, dm_avro_from_json_text, &avro, offs);
    for (int r = 0; r < ROUNDS; r++) {
        t_out = best(to_json(s, c, &avro, offs, &out), t_out);
        t_jdump = best(jansson_dump(&lines, &out), t_jdump);
    }
    to_json(s, c, &avro, offs, &out);
    if (out.len != lines.len || memcmp(out.data, lines.data, lines.len) != 0)
        printf("the JSON written back differs from the input text only where numbers are "
               "written shorter (5.10 as 5.1)\n");
    else
        printf("the JSON written back is the input, byte for byte\n");

    double mb = (double)lines.len / 1e6;
    printf("JSON -> Avro  datamesh (schema-directed, no DOM): %6.0f k lines/CPU-s %7.1f MB/s "
           "%5.0f ns/line\n",
           LINES / t_new / 1e3, mb / t_new, t_new / LINES * 1e9);
    printf("JSON -> Avro  old path (jansson DOM + walker):    %6.0f k lines/CPU-s %7.1f MB/s "
           "%5.0f ns/line\n",
           LINES / t_old / 1e3, mb / t_old, t_old / LINES * 1e9);
    double r_in = 0;
#ifdef DM_HAVE_SIMDJSON
    printf("JSON -> struct simdjson On-Demand (baseline):     %6.0f k lines/CPU-s %7.1f MB/s "
           "%5.0f ns/line (checksum %llu)\n",
           LINES / t_simd / 1e3, mb / t_simd, t_simd / LINES * 1e9, (unsigned long long)sum);
    r_in = t_simd / t_new;
#else
    printf("simdjson not installed (scripts/bootstrap installs libsimdjson-dev): no baseline\n");
#endif
    printf("Avro -> JSON  datamesh (decode + write):          %6.0f k lines/CPU-s %7.1f MB/s "
           "%5.0f ns/line\n",
           LINES / t_out / 1e3, mb / t_out, t_out / LINES * 1e9);
    printf("JSON dump     jansson json_dumpb (baseline):      %6.0f k lines/CPU-s %7.1f MB/s "
           "%5.0f ns/line\n",
           LINES / t_jdump / 1e3, mb / t_jdump, t_jdump / LINES * 1e9);
    printf("JSON -> Avro vs the old path: %.2fx\n", t_old / t_new);
    printf("Avro -> JSON vs jansson's dump: %.2fx (target 3)\n", t_jdump / t_out);
    printf("json ratio=%.2f target=0.5\n", r_in);
    free(offs);
    dm_buf_free(&lines);
    dm_buf_free(&avro);
    dm_buf_free(&out);
    dm_avro_codec_free(c);
    dm_avro_schema_free(s);
    return 0;
}
