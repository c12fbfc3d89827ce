/* tests/integration/iceberg_sort.c — Iceberg sort orders in the sink: a table
 * with sort_by "country, amount desc nulls last" written from records in
 * random order over several commits, and with a small sort_buffer (files
 * closing early, partitioned); every data file read by hyparquet and DuckDB
 * must follow the order, the metadata's sort-orders / default-sort-order-id
 * and every manifest entry's sort_order_id (python3-avro) must say so, and
 * icebird and DuckDB must read every row. Bad sort_by values and a sort_by
 * that differs from an existing table's order are refused naming them. */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "connectors/iceberg/iceberg.h"
#include "iceberg_run.h"
#include "connectors/iceberg/table.h"
#include "connectors/unit.h"
#include "core/clock.h"
#include "schema/dm_avro.h"
#include "schema/wire.h"
#include "transport/transport.h"

static char dir[512], readers[512], logdir[600];

static const char *SALES =
    "{\"type\":\"record\",\"name\":\"Sale\",\"fields\":["
    "{\"name\":\"id\",\"type\":\"long\"},{\"name\":\"country\",\"type\":[\"null\",\"string\"]},"
    "{\"name\":\"amount\",\"type\":[\"null\",\"long\"]},{\"name\":\"score\",\"type\":\"double\"},"
    "{\"name\":\"ts\",\"type\":{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}},"
    "{\"name\":\"addr\",\"type\":{\"type\":\"record\",\"name\":\"Addr\",\"fields\":["
    "{\"name\":\"city\",\"type\":\"string\"}]}}]}";

/* The order sort_by "country, amount desc nulls last" must give (field ids 2, 3). */
static const char *ORDER_JSON =
    "[{\"transform\":\"identity\",\"source-id\":2,\"direction\":\"asc\",\"null-order\":"
    "\"nulls-first\"},{\"transform\":\"identity\",\"source-id\":3,\"direction\":\"desc\","
    "\"null-order\":\"nulls-last\"}]";
static const char *ORDER_ARG = "country:asc:first,amount:desc:last";

static uint64_t rng = 88172645463325252ULL;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static dm_avro_schema_t *parse(const char *s)
{
    dm_avro_schema_t *out = NULL;
    dm_avro_schema_parse(s, strlen(s), &out, NULL);
    return out;
}

/* Produces ids [from, to) in a random order (shuffled), with null countries
 * and amounts now and then; appends the expected rows to expected. */
static int produce_sales(dm_transport_t *t, const dm_avro_schema_t *schema, long from, long to,
                         FILE *expected)
{
    static const char *countries[] = {"BR", "DE", "FR", "US", "JP"};
    size_t n = (size_t)(to - from);
    long *ids = malloc(n * sizeof(long));
    for (size_t i = 0; i < n; i++)
        ids[i] = from + (long)i;
    for (size_t i = n; i > 1; i--) {
        size_t j = next_rand() % i;
        long x = ids[i - 1];
        ids[i - 1] = ids[j];
        ids[j] = x;
    }
    dm_buf_t *bufs = calloc(n, sizeof(dm_buf_t));
    dm_record_t *recs = calloc(n, sizeof(dm_record_t));
    dm_arena_t arena;
    dm_arena_init(&arena, 0);
    dm_error_t err = {0};
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        long id = ids[i];
        char country[40] = "null", amount[40] = "null", json[400];
        uint64_t r = next_rand();
        if (r % 9) snprintf(country, sizeof(country), "\"%s\"", countries[(r >> 8) % 5]);
        if ((r >> 16) % 7) snprintf(amount, sizeof(amount), "%ld", (long)((r >> 24) % 40) - 5);
        long long ts = 1700000000000LL + (long long)((r >> 32) % 100000) * 1000;
        char av_country[48] = "null", av_amount[48] = "null";
        if (strcmp(country, "null"))
            snprintf(av_country, sizeof(av_country), "{\"string\":%s}", country);
        if (strcmp(amount, "null")) snprintf(av_amount, sizeof(av_amount), "{\"long\":%s}", amount);
        snprintf(json, sizeof(json),
                 "{\"id\":%ld,\"country\":%s,\"amount\":%s,\"score\":%.17g,\"ts\":%lld,"
                 "\"addr\":{\"city\":\"c%ld\"}}",
                 id, av_country, av_amount, id * 0.25, ts, id % 13);
        fprintf(expected,
                "{\"id\":\"%ld\",\"country\":%s,\"amount\":%s%s%s,\"score\":%.17g,\"ts\":\"%lld\","
                "\"addr\":{\"city\":\"c%ld\"}}\n",
                id, country, strcmp(amount, "null") ? "\"" : "", amount,
                strcmp(amount, "null") ? "\"" : "", id * 0.25, ts * 1000, id % 13);
        dm_avro_value_t v;
        dm_wire_put_header(&bufs[i], 7);
        if (dm_avro_from_json_text(schema->root, json, strlen(json), DM_AVRO_JSON_AVRO, &arena, &v,
                                   &err) ||
            dm_avro_encode(schema->root, &v, &bufs[i], &err)) {
            printf("    produce %s: %s\n", json, err.message);
            rc = -1;
        }
        recs[i].value = bufs[i].data;
        recs[i].value_len = (int32_t)bufs[i].len;
        recs[i].key_len = -1;
    }
    int64_t base;
    if (!rc && dm_transport_produce(t, "sales", 0, recs, n, &base, &err)) {
        printf("    produce: %s\n", err.message);
        rc = -1;
    }
    for (size_t i = 0; i < n; i++)
        dm_buf_free(&bufs[i]);
    free(bufs);
    free(recs);
    free(ids);
    dm_arena_destroy(&arena);
    return rc;
}

/* Produces Avro JSON values as wire-format records to partition 0. */
static int produce_values(dm_transport_t *t, const dm_avro_schema_t *schema, char **json, size_t n)
{
    dm_buf_t *bufs = calloc(n, sizeof(dm_buf_t));
    dm_record_t *recs = calloc(n, sizeof(dm_record_t));
    dm_arena_t arena;
    dm_arena_init(&arena, 0);
    dm_error_t err = {0};
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        dm_avro_value_t v;
        dm_wire_put_header(&bufs[i], 7);
        if (!json[i] ||
            dm_avro_from_json_text(schema->root, json[i], strlen(json[i]), DM_AVRO_JSON_AVRO,
                                   &arena, &v, &err) ||
            dm_avro_encode(schema->root, &v, &bufs[i], &err)) {
            printf("    produce %s: %s\n", json[i] ? json[i] : "(null)", err.message);
            rc = -1;
        }
        recs[i].value = bufs[i].data;
        recs[i].value_len = (int32_t)bufs[i].len;
        recs[i].key_len = -1;
    }
    int64_t base;
    if (!rc && dm_transport_produce(t, "sales", 0, recs, n, &base, &err)) {
        printf("    produce: %s\n", err.message);
        rc = -1;
    }
    for (size_t i = 0; i < n; i++)
        dm_buf_free(&bufs[i]);
    free(bufs);
    free(recs);
    dm_arena_destroy(&arena);
    return rc;
}

/* The current metadata file of a file-catalog table (malloc'd local path)
 * and its checkpoint. */
static char *current(const dm_iceberg_sink_config_t *c, char *checkpoint, size_t cap)
{
    dm_ice_catalog_t *cat;
    char tdir[700], ns[64], name[64];
    sscanf(c->table, "%63[^.].%63s", ns, name);
    snprintf(tdir, sizeof(tdir), "%s/%s/%s", c->warehouse, ns, name);
    checkpoint[0] = 0;
    if (dm_ice_catalog_open(DM_ICE_CATALOG_FILE, NULL, c->catalog_name, &cat, NULL)) return NULL;
    char *loc = NULL;
    dm_ice_catalog_load(cat, ns, name, tdir, &loc, NULL);
    dm_ice_catalog_close(cat);
    if (!loc) return NULL;
    json_t *m = json_load_file(dm_ice_local_path(loc), 0, NULL);
    json_t *cur = json_object_get(m, "current-snapshot-id");
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(m, "snapshots"), i, s)
    {
        if (!json_equal(json_object_get(s, "snapshot-id"), cur)) continue;
        const char *cp = json_string_value(
            json_object_get(json_object_get(s, "summary"), "datamesh.checkpoint"));
        snprintf(checkpoint, cap, "%s", cp ? cp : "");
    }
    json_decref(m);
    char *path = strdup(dm_ice_local_path(loc));
    free(loc);
    return path;
}

typedef struct run {
    ice_sink_t sink;
    dm_unit_status_t st;
    pthread_t th;
} run_t;

static void *run_main(void *a)
{
    run_t *r = a;
    ice_sink_run(&r->sink, &r->st);
    return NULL;
}

static void run_start(run_t *r, const ice_sink_t *s)
{
    memset(r, 0, sizeof(*r));
    r->sink = *s;
    dm_unit_init(&r->st);
    pthread_create(&r->th, NULL, run_main, r);
}

/* Waits until the table's checkpoint is "0:want" (0), or the unit failed
 * (-1, its error in error). */
static int run_wait(run_t *r, long want, char *error, size_t cap)
{
    char cp[256], w[64], state[32];
    snprintf(w, sizeof(w), "0:%ld", want);
    int64_t end = dm_wall_ms() + 60000;
    error[0] = 0;
    while (dm_wall_ms() < end) {
        free(current(r->sink.conf, cp, sizeof(cp)));
        if (!strcmp(cp, w)) return 0;
        dm_unit_get(&r->st, state, sizeof(state), error, cap);
        if (!strcmp(state, "failed")) return -1;
        usleep(50000);
    }
    printf("    checkpoint '%s', waited for '%s'\n", cp, w);
    return -1;
}

static void run_stop(run_t *r)
{
    atomic_store(&r->st.stop, true);
    pthread_join(r->th, NULL);
    dm_unit_destroy(&r->st);
}

static void config(dm_iceberg_sink_config_t *c, const char *sub, const char *partition_by,
                   const char *sort_by)
{
    dm_config_defaults(&dm_iceberg_sink_config_table, c, NULL);
    char wh[700];
    snprintf(wh, sizeof(wh), "%s/%s", dir, sub);
    free(c->warehouse);
    c->warehouse = strdup(wh);
    free(c->table);
    c->table = strdup("shop.sales");
    free(c->partition_by);
    c->partition_by = strdup(partition_by);
    free(c->sort_by);
    c->sort_by = strdup(sort_by);
    c->commit_interval = 150;
    c->common.linger_ms = 20;
}

/* Every data file sorted (hyparquet and DuckDB), the order in metadata and
 * manifests, every row read by icebird and DuckDB (deletes applied); the
 * data files hold data_rows rows unless it is -1. Returns the number of data
 * files, -1 on a failure. */
static int check_table(const dm_iceberg_sink_config_t *c, const char *expected, long data_rows)
{
    char cp[256], cmd[8192], line[1024];
    char *loc = current(c, cp, sizeof(cp));
    if (!loc) return -1;
    snprintf(cmd, sizeof(cmd), "cd %s && /usr/bin/python3 -W ignore check_sort.py %s '%s'", readers,
             loc, ORDER_JSON);
    FILE *p = popen(cmd, "r");
    int files = 0;
    size_t len =
        (size_t)snprintf(cmd, sizeof(cmd), "cd %s && node check_sorted.mjs %s", readers, ORDER_ARG);
    while (p && fgets(line, sizeof(line), p)) {
        line[strcspn(line, "\n")] = 0;
        if (len + strlen(line) + 2 < sizeof(cmd)) len += (size_t)sprintf(cmd + len, " %s", line);
        files++;
    }
    int rc = p && pclose(p) == 0 && files ? 0 : -1;
    if (rc) printf("    check_sort.py failed\n");
    long total = -1;
    if (!rc && (p = popen(cmd, "r"))) {
        while (fgets(line, sizeof(line), p)) {
            if (!strncmp(line, "FAIL", 4)) printf("    %s", line);
            total = strtol(line, NULL, 10);
        }
        if (pclose(p)) rc = -1;
    }
    if (data_rows >= 0 && total != data_rows) {
        printf("    sorted files hold %ld rows, want %ld\n", total, data_rows);
        rc = -1;
    }
    char tdir[700];
    snprintf(tdir, sizeof(tdir), "%s/shop/sales", c->warehouse);
    snprintf(cmd, sizeof(cmd), "cd %s && node read_table.mjs file://%s %s id", readers, tdir,
             expected);
    if (system(cmd)) rc = -1;
    snprintf(cmd, sizeof(cmd), "cd %s && node read_duckdb.mjs file://%s %s id", readers, tdir,
             expected);
    if (system(cmd)) rc = -1;
    if (data_rows >= 0)
        snprintf(cmd, sizeof(cmd), "cd %s && /usr/bin/python3 -W ignore check_metadata.py %s %ld",
                 readers, loc, data_rows);
    else
        snprintf(cmd, sizeof(cmd), "cd %s && /usr/bin/python3 -W ignore check_metadata.py %s",
                 readers, loc);
    if (system(cmd)) rc = -1;
    free(loc);
    return rc ? -1 : files;
}

static dm_transport_t *open_transport(const char *sub)
{
    char url[700];
    snprintf(url, sizeof(url), "embedded:%s/%s", logdir, sub);
    dm_transport_t *t = NULL;
    dm_error_t err = {0};
    if (dm_transport_open(url, &t, &err)) printf("    transport: %s\n", err.message);
    if (t && dm_transport_create_topic(t, &(dm_topic_config_t){.name = "sales", .partitions = 1},
                                       &err)) {
        printf("    topic: %s\n", err.message);
        dm_transport_close(t);
        t = NULL;
    }
    return t;
}

static ice_sink_t sink_of(dm_transport_t *t, const dm_avro_schema_t *s,
                          const dm_iceberg_sink_config_t *c)
{
    return (ice_sink_t){.transport = t,
                        .topic = "sales",
                        .partitions = 1,
                        .group = "sink-sales",
                        .schema = s,
                        .schema_id = 7,
                        .conf = c};
}

/* Random order over three commits: three sorted files; then a sort_by that
 * is not the table's order is refused naming it. */
static void test_sorted_commits(void)
{
    dm_transport_t *t = open_transport("a");
    REQUIRE(t);
    dm_avro_schema_t *s = parse(SALES);
    REQUIRE(s);
    dm_iceberg_sink_config_t c = {0};
    config(&c, "wh1", "", "country, amount DESC NULLS LAST");
    ice_sink_t sink = sink_of(t, s, &c);
    char expected[700], error[512];
    snprintf(expected, sizeof(expected), "%s/sales1.jsonl", dir);
    FILE *e = fopen(expected, "w");
    REQUIRE(e);
    run_t r;
    run_start(&r, &sink);
    for (long part = 0; part < 3; part++) {
        if (part == 2) {
            /* A restart with the same order, spelled otherwise: the table's order. */
            run_stop(&r);
            free(c.sort_by);
            c.sort_by = strdup("country asc nulls first,amount desc nulls last");
            run_start(&r, &sink);
        }
        CHECK_EQ_INT(produce_sales(t, s, part * 700, (part + 1) * 700, e), 0);
        fflush(e);
        CHECK_EQ_INT(run_wait(&r, (part + 1) * 700, error, sizeof(error)), 0);
        if (error[0]) printf("    %s\n", error);
    }
    run_stop(&r);
    fclose(e);
    int files = check_table(&c, expected, 2100);
    CHECK(files >= 3);
    /* The table keeps its order: another sort_by is refused, naming both. */
    free(c.sort_by);
    c.sort_by = strdup("amount");
    run_start(&r, &sink);
    CHECK_EQ_INT(run_wait(&r, 999999, error, sizeof(error)), -1);
    run_stop(&r);
    CHECK_CONTAINS(error, "default sort order 1");
    CHECK_CONTAINS(error, "'amount'");
    dm_config_free(&dm_iceberg_sink_config_table, &c);
    dm_avro_schema_free(s);
    dm_transport_close(t);
}

/* A small sort_buffer closes files early: several files per run, each sorted. */
static void test_small_sort_buffer(void)
{
    dm_transport_t *t = open_transport("b");
    REQUIRE(t);
    dm_avro_schema_t *s = parse(SALES);
    REQUIRE(s);
    dm_iceberg_sink_config_t c = {0};
    config(&c, "wh2", "bucket(2, id)", "country asc nulls first, amount desc nulls last");
    c.sort_buffer = 65536;
    ice_sink_t sink = sink_of(t, s, &c);
    char expected[700], error[512];
    snprintf(expected, sizeof(expected), "%s/sales2.jsonl", dir);
    FILE *e = fopen(expected, "w");
    REQUIRE(e);
    CHECK_EQ_INT(produce_sales(t, s, 0, 3000, e), 0);
    fclose(e);
    run_t r;
    run_start(&r, &sink);
    CHECK_EQ_INT(run_wait(&r, 3000, error, sizeof(error)), 0);
    run_stop(&r);
    int files = check_table(&c, expected, 3000);
    printf("    %d sorted files\n", files);
    CHECK(files >= 6);
    dm_config_free(&dm_iceberg_sink_config_table, &c);
    dm_avro_schema_free(s);
    dm_transport_close(t);
}

static const char *CDC =
    "{\"type\":\"record\",\"name\":\"Envelope\",\"fields\":["
    "{\"name\":\"before\",\"type\":[\"null\",{\"type\":\"record\",\"name\":\"Row\",\"fields\":["
    "{\"name\":\"id\",\"type\":\"long\"},{\"name\":\"country\",\"type\":[\"null\",\"string\"]},"
    "{\"name\":\"amount\",\"type\":[\"null\",\"long\"]}]}]},"
    "{\"name\":\"after\",\"type\":[\"null\",\"Row\"]},"
    "{\"name\":\"op\",\"type\":\"string\"},{\"name\":\"ts_ms\",\"type\":\"long\"}]}";

typedef struct cdc_row {
    bool live;
    int country; /* -1: null */
    int amount;  /* -100: null */
} cdc_row_t;

static void cdc_row_json(char *out, size_t cap, long id, const cdc_row_t *r, bool avro)
{
    static const char *countries[] = {"BR", "DE", "FR", "US"};
    char c[40] = "null", a[40] = "null";
    if (r->country >= 0)
        snprintf(c, sizeof(c), avro ? "{\"string\":\"%s\"}" : "\"%s\"", countries[r->country]);
    if (r->amount != -100) snprintf(a, sizeof(a), avro ? "{\"long\":%d}" : "\"%d\"", r->amount);
    if (avro)
        snprintf(out, cap, "{\"Row\":{\"id\":%ld,\"country\":%s,\"amount\":%s}}", id, c, a);
    else
        snprintf(out, cap, "{\"id\":\"%ld\",\"country\":%s,\"amount\":%s}", id, c, a);
}

/* Change events in random key order, upserted: data files sorted, equality
 * deletes applied as before, the table equals the final source state. */
static void test_sorted_upserts(void)
{
    dm_transport_t *t = open_transport("d");
    REQUIRE(t);
    dm_avro_schema_t *s = parse(CDC);
    REQUIRE(s);
    dm_iceberg_sink_config_t c = {0};
    config(&c, "wh4", "", "country, amount desc nulls last");
    static const char *const key[] = {"id"};
    ice_sink_t sink = sink_of(t, s, &c);
    sink.key = key;
    sink.n_key = 1;
    enum { KEYS = 300, WAVES = 3, OPS = 400 };
    static cdc_row_t state[KEYS];
    char error[512];
    run_t r;
    run_start(&r, &sink);
    long end = 0;
    for (int w = 0; w < WAVES; w++) {
        char *json[OPS];
        for (int k = 0; k < OPS; k++) {
            uint64_t x = next_rand();
            long id = (long)(x % KEYS);
            cdc_row_t *st = &state[id], old = *st;
            const char *op = !st->live ? "c" : (x >> 20) % 4 == 0 ? "d" : "u";
            st->live = strcmp(op, "d") != 0;
            if (st->live) {
                st->country = (x >> 24) % 6 == 0 ? -1 : (int)((x >> 28) % 4);
                st->amount = (x >> 32) % 6 == 0 ? -100 : (int)((x >> 36) % 30) - 5;
            }
            char b[200] = "null", a[200] = "null";
            if (old.live) cdc_row_json(b, sizeof(b), id, &old, true);
            if (st->live) cdc_row_json(a, sizeof(a), id, st, true);
            if (asprintf(&json[k], "{\"before\":%s,\"after\":%s,\"op\":\"%s\",\"ts_ms\":1}", b, a,
                         op) < 0)
                json[k] = NULL;
        }
        CHECK_EQ_INT(produce_values(t, s, json, OPS), 0);
        for (int k = 0; k < OPS; k++)
            free(json[k]);
        end += OPS;
        CHECK_EQ_INT(run_wait(&r, end, error, sizeof(error)), 0);
        if (error[0]) printf("    %s\n", error);
    }
    run_stop(&r);
    char expected[700], line[200];
    snprintf(expected, sizeof(expected), "%s/sales4.jsonl", dir);
    FILE *e = fopen(expected, "w");
    REQUIRE(e);
    for (long id = 0; id < KEYS; id++) {
        if (!state[id].live) continue;
        cdc_row_json(line, sizeof(line), id, &state[id], false);
        fprintf(e, "%s\n", line);
    }
    fclose(e);
    CHECK(check_table(&c, expected, -1) >= WAVES);
    dm_config_free(&dm_iceberg_sink_config_table, &c);
    dm_avro_schema_free(s);
    dm_transport_close(t);
}

/* sort_by values that cannot be: refused at start naming the column or word. */
static void test_bad_sort_by(void)
{
    static const char *bad[][2] = {{"nope", "nope"},
                                   {"country, addr", "addr"},
                                   {"amount sideways", "sideways"},
                                   {"amount nulls middle", "middle"}};
    dm_transport_t *t = open_transport("c");
    REQUIRE(t);
    dm_avro_schema_t *s = parse(SALES);
    REQUIRE(s);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        dm_iceberg_sink_config_t c = {0};
        config(&c, "wh3", "", bad[i][0]);
        ice_sink_t sink = sink_of(t, s, &c);
        char error[512];
        run_t r;
        run_start(&r, &sink);
        CHECK_EQ_INT(run_wait(&r, 1, error, sizeof(error)), -1);
        run_stop(&r);
        CHECK_CONTAINS(error, bad[i][1]);
        CHECK_CONTAINS(error, "sort_by");
        dm_config_free(&dm_iceberg_sink_config_table, &c);
    }
    dm_avro_schema_free(s);
    dm_transport_close(t);
}

int main(void)
{
    snprintf(dir, sizeof(dir), "%s/iceberg_sort.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir)) return 1;
    snprintf(logdir, sizeof(logdir), "%s/log", dir);
    if (mkdir(logdir, 0755)) return 1;
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "bash %s/tests/integration/iceberg/readers.sh",
             getenv("DM_SOURCE_DIR"));
    FILE *p = popen(cmd, "r");
    if (!p || !fgets(readers, sizeof(readers), p) || pclose(p) != 0) {
        printf("FAIL cannot install the npm readers\n");
        return 1;
    }
    readers[strcspn(readers, "\n")] = 0;
    RUN(test_sorted_commits);
    RUN(test_small_sort_buffer);
    RUN(test_sorted_upserts);
    RUN(test_bad_sort_by);
    int rc = check_summary();
    if (rc == 0) {
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        if (system(cmd)) {
        }
    }
    return rc;
}
