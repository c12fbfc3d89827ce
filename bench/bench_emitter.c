/* bench/bench_emitter.c — the emitter library's throughput from one thread.
 *
 * N events {"user": "userNNNNN", "page": "/p/N", "ms": N} go into an ingest
 * source of one partition:
 *   baseline: the embedded log's own produce of the same records (Avro,
 *             Confluent-framed, encoded beforehand) in batches of 1000, in
 *             this process — the floor of writing them;
 *   datamesh: one application thread calling dm_emitter_send_avro with the
 *             same encoded records (each decoded here to check it), then
 *             dm_emitter_flush, against a `datamesh up` started for the run
 *             (DM_BIN, default the build's), which validates, dedupes and
 *             commits every batch — the ratio; and the same events as JSON
 *             text through dm_emitter_send_json (validated and encoded here),
 *             printed beside it.
 * Printed: events/s of both, CPU per event in the application and in the
 * controller. N defaults to 1 M (DM_BENCH_RECORDS). */
#include <curl/curl.h>
#include <datamesh/emitter.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "schema/dm_avro.h"
#include "schema/wire.h"
#include "transport/transport.h"

#ifndef DM_BENCH_BIN
#define DM_BENCH_BIN "datamesh"
#endif

static const char *schema_json =
    "{\"type\":\"record\",\"name\":\"Click\",\"fields\":[{\"name\":\"user\",\"type\":\"string\"},"
    "{\"name\":\"page\",\"type\":\"string\"},{\"name\":\"ms\",\"type\":\"long\"}]}";

static void die(const char *what, const char *why)
{
    fprintf(stderr, "bench_emitter: %s: %s\n", what, why ? why : "");
    exit(1);
}

static double cpu_self(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* utime + stime of pid, in seconds. */
static double cpu_of(pid_t pid)
{
    char path[64], buf[2048];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    unsigned long ut = 0, st = 0;
    if (p) sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st);
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static size_t sink(char *p, size_t s, size_t n, void *a)
{
    return s * n;
}

static long http(const char *method, const char *url, const char *body)
{
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body) curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    return status;
}

int main(void)
{
    long n = getenv("DM_BENCH_RECORDS") ? atol(getenv("DM_BENCH_RECORDS")) : 1000000;
    const char *bin = getenv("DM_BIN") ? getenv("DM_BIN") : DM_BENCH_BIN;
    char dir[] = "/tmp/dm-bench-emitter-XXXXXX";
    if (!mkdtemp(dir)) die("mkdtemp", NULL);
    /* the events, as JSON lines and as framed Avro */
    char **json = calloc((size_t)n, sizeof(char *));
    size_t *jlen = calloc((size_t)n, sizeof(size_t));
    dm_avro_schema_t *schema;
    dm_error_t err = {0};
    if (dm_avro_schema_parse(schema_json, strlen(schema_json), &schema, &err))
        die("schema", err.message);
    dm_buf_t avro = DM_BUF_INIT;
    size_t *at = calloc((size_t)n + 1, sizeof(size_t));
    dm_arena_t arena;
    dm_arena_init(&arena, 0);
    for (long i = 0; i < n; i++) {
        char text[128];
        int len =
            snprintf(text, sizeof(text), "{\"user\":\"user%05ld\",\"page\":\"/p/%ld\",\"ms\":%ld}",
                     i % 100000, i % 977, 1700000000000L + i);
        json[i] = strdup(text);
        jlen[i] = (size_t)len;
        dm_avro_value_t v;
        dm_arena_reset(&arena);
        at[i] = avro.len;
        if (dm_avro_from_json_text(schema->root, text, (size_t)len, DM_AVRO_JSON_PLAIN, &arena, &v,
                                   &err) ||
            dm_wire_put_header(&avro, 1) || dm_avro_encode(schema->root, &v, &avro, &err))
            die("encode", err.message);
    }
    at[n] = avro.len;

    /* baseline: the log's own produce */
    char url[256];
    snprintf(url, sizeof(url), "embedded:%s/log", dir);
    dm_transport_t *t;
    if (dm_transport_open(url, &t, &err)) die("open", err.message);
    dm_topic_config_t tc = {
        .name = "clicks", .partitions = 1, .fsync = DM_TRANSPORT_FSYNC_INTERVAL, .flush_ms = 1000};
    if (dm_transport_create_topic(t, &tc, &err)) die("topic", err.message);
    dm_record_t *recs = calloc(1000, sizeof(*recs));
    uint64_t t0 = dm_now_ns();
    double c0 = cpu_self();
    for (long i = 0; i < n; i += 1000) {
        long k = n - i < 1000 ? n - i : 1000;
        for (long j = 0; j < k; j++)
            recs[j] = (dm_record_t){.value = avro.data + at[i + j],
                                    .value_len = (int32_t)(at[i + j + 1] - at[i + j]),
                                    .key_len = -1};
        if (dm_transport_produce(t, "clicks", 0, recs, (size_t)k, NULL, &err))
            die("produce", err.message);
    }
    double base_s = (double)(dm_now_ns() - t0) / 1e9, base_cpu = cpu_self() - c0;
    dm_transport_close(t);

    /* datamesh: a controller for the run, one emitter thread */
    int port = 20000 + (int)(getpid() % 20000);
    char listen[64], data[300], server[128], log[320];
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
    snprintf(data, sizeof(data), "%s/dm", dir);
    snprintf(log, sizeof(log), "%s/up.log", dir);
    snprintf(server, sizeof(server), "http://127.0.0.1:%d", port);
    pid_t pid = fork();
    if (pid == 0) {
        if (!freopen(log, "w", stdout) || !freopen(log, "a", stderr)) _exit(127);
        execl(bin, bin, "up", "--data", data, "--listen", listen, (char *)NULL);
        _exit(127);
    }
    char health[200], apply[200];
    snprintf(health, sizeof(health), "%s/healthz", server);
    snprintf(apply, sizeof(apply), "%s/api/v1/apply", server);
    int up = 0;
    for (int i = 0; i < 200 && !up; i++) {
        up = http("GET", health, NULL) == 200;
        if (!up) usleep(50000);
    }
    if (!up) die("datamesh up did not start; see", log);
    char spec[600];
    snprintf(spec, sizeof(spec),
             "kind: Source\nmetadata: {name: clicks, owner: bench}\nspec:\n  connector: ingest\n"
             "  partitions: 1\n  schema: %s\n",
             schema_json);
    if (http("POST", apply, spec) != 200) die("apply", "the source was refused");
    char e_err[512];
    dm_emitter_t *e = dm_emitter_new(server, "clicks", e_err, sizeof(e_err));
    if (!e) die("emitter", e_err);
    /* JSON text in: validated and encoded on this thread */
    double dm_cpu0 = cpu_of(pid);
    t0 = dm_now_ns();
    c0 = cpu_self();
    for (long i = 0; i < n; i++)
        if (dm_emitter_send_json(e, json[i], jlen[i])) die("send", dm_emitter_error());
    if (dm_emitter_flush(e, 120000)) die("flush", dm_emitter_error());
    double js_s = (double)(dm_now_ns() - t0) / 1e9, js_cpu = cpu_self() - c0;
    double js_ctl = cpu_of(pid) - dm_cpu0;
    /* the same records already encoded (what the baseline writes): checked here */
    dm_cpu0 = cpu_of(pid);
    t0 = dm_now_ns();
    c0 = cpu_self();
    for (long i = 0; i < n; i++)
        if (dm_emitter_send_avro(e, avro.data + at[i] + DM_WIRE_HEADER,
                                 at[i + 1] - at[i] - DM_WIRE_HEADER))
            die("send", dm_emitter_error());
    if (dm_emitter_flush(e, 120000)) die("flush", dm_emitter_error());
    double em_s = (double)(dm_now_ns() - t0) / 1e9, em_cpu = cpu_self() - c0;
    double ctl_cpu = cpu_of(pid) - dm_cpu0;
    dm_emitter_stats_t st;
    dm_emitter_stats(e, &st);
    dm_emitter_destroy(e);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    printf("baseline (log produce, in process):  %.2f M events/s, %.0f ns CPU per event\n",
           (double)n / base_s / 1e6, base_cpu / (double)n * 1e9);
    printf("emitter, send_json (1 thread → datamesh up): %.2f M events/s, %.0f ns CPU per event "
           "in the application + %.0f ns in the controller\n",
           (double)n / js_s / 1e6, js_cpu / (double)n * 1e9, js_ctl / (double)n * 1e9);
    printf("emitter, send_avro (1 thread → datamesh up): %.2f M events/s, %.0f ns CPU per event "
           "in the application + %.0f ns in the controller (%llu delivered, %llu retries)\n",
           (double)n / em_s / 1e6, em_cpu / (double)n * 1e9, ctl_cpu / (double)n * 1e9,
           (unsigned long long)st.delivered, (unsigned long long)st.retries);
    char cmd[200];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "bench_emitter: could not remove %s\n", dir);
    if ((long)st.delivered != 2 * n) die("delivered", "not every event was delivered");
    printf("emitter ratio=%.2f target=0.5\n", base_s / em_s);
    return 0;
}
