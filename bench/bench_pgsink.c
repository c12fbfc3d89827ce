/* bench/bench_pgsink.c — the postgres sink against psql \copy.
 *
 * N change events (Debezium-shaped envelopes, op 'c', distinct keys) sit in
 * the embedded log. datamesh runs the postgres sink (default settings: upsert
 * by key through COPY into a staging table and a merge, offsets in the same
 * transaction) into a table. The baseline, in the same run, is the fastest
 * honest way to load the same rows: `psql -c "\copy … FROM file.csv (FORMAT
 * csv)"` of a CSV file holding exactly those rows into an identical table (same
 * columns, same primary key). Both tables are created before timing starts.
 * Ends with `pgsink ratio=X.XX target=0.5` (ratio = baseline time / sink time).
 *
 * usage: bench_pgsink [N]   (default 5000000; DM_BENCH_RECORDS works too)
 * Needs a PostgreSQL server: without DM_PG_DSN it runs itself under
 * tests/harness/with-postgres (a throwaway server on a free loopback port).
 */
#include <libgen.h>
#include <libpq-fe.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "connectors/pgsink/pgsink.h"
#include "connectors/unit.h"
#include "core/clock.h"
#include "schema/dm_avro.h"
#include "schema/wire.h"
#include "transport/transport.h"

static const char *schema_json =
    "{\"type\":\"record\",\"name\":\"Envelope\",\"namespace\":\"shop.orders\",\"fields\":["
    "{\"name\":\"before\",\"type\":[\"null\",{\"type\":\"record\",\"name\":\"Value\",\"fields\":["
    "{\"name\":\"id\",\"type\":\"long\"},{\"name\":\"customer\",\"type\":\"string\"},"
    "{\"name\":\"amount\",\"type\":\"double\"},"
    "{\"name\":\"ts\",\"type\":{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}},"
    "{\"name\":\"paid\",\"type\":\"boolean\"}]}],\"default\":null},"
    "{\"name\":\"after\",\"type\":[\"null\",\"Value\"],\"default\":null},"
    "{\"name\":\"op\",\"type\":\"string\"},{\"name\":\"ts_ms\",\"type\":\"long\"}]}";

static const char *ddl = "(id bigint NOT NULL PRIMARY KEY, customer text, amount double precision, "
                         "ts timestamptz, paid boolean)";

static void die(const char *what, const char *why)
{
    fprintf(stderr, "bench_pgsink: %s: %s\n", what, why ? why : "");
    exit(1);
}

static void sql(PGconn *db, const char *q)
{
    PGresult *r = PQexec(db, q);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        die(q, PQerrorMessage(db));
    PQclear(r);
}

/* Writes N envelopes to the topic and the same rows to the CSV file. */
static void make_events(dm_transport_t *t, const dm_avro_schema_t *s, long n, const char *csv_path)
{
    FILE *csv = fopen(csv_path, "w");
    if (!csv) die(csv_path, "cannot write");
    const int batch = 2000;
    dm_buf_t b = DM_BUF_INIT;
    dm_record_t *recs = calloc((size_t)batch, sizeof(*recs));
    size_t *offs = calloc((size_t)batch + 1, sizeof(size_t));
    int64_t base_ms = 1700000000000;
    dm_error_t err = {0};
    for (long i = 0; i < n; i += batch) {
        int m = n - i < batch ? (int)(n - i) : batch;
        b.len = 0;
        for (int j = 0; j < m; j++) {
            long id = i + j;
            double amount = (double)(id % 100000) / 100.0;
            int64_t ts = base_ms + id * 7;
            bool paid = id % 3 != 0;
            offs[j] = b.len;
            dm_wire_put_header(&b, 1);
            /* before: null; after: Value; op "c"; ts_ms */
            dm_avro_value_t fields[5] = {
                {.type = DM_AVRO_LONG, .u.l = id},       {.type = DM_AVRO_STRING},
                {.type = DM_AVRO_DOUBLE, .u.d = amount}, {.type = DM_AVRO_LONG, .u.l = ts},
                {.type = DM_AVRO_BOOLEAN, .u.b = paid},
            };
            char customer[32];
            int cl = snprintf(customer, sizeof(customer), "customer-%ld", id % 50000);
            fields[1].u.p = (const uint8_t *)customer;
            fields[1].len = (uint32_t)cl;
            dm_avro_value_t top[4] = {
                {.type = DM_AVRO_NULL, .branch = 0},
                {.type = DM_AVRO_RECORD, .branch = 1, .len = 5, .u.v = fields},
                {.type = DM_AVRO_STRING, .len = 1, .u.p = (const uint8_t *)"c"},
                {.type = DM_AVRO_LONG, .u.l = ts},
            };
            dm_avro_value_t v = {.type = DM_AVRO_RECORD, .len = 4, .u.v = top};
            if (dm_avro_encode(s->root, &v, &b, &err)) die("encode", err.message);
            char when[40];
            dm_format_iso8601_ms(ts, when, sizeof(when));
            fprintf(csv, "%ld,%s,%.17g,%s,%s\n", id, customer, amount, when, paid ? "t" : "f");
        }
        offs[m] = b.len;
        for (int j = 0; j < m; j++)
            recs[j] = (dm_record_t){.key_len = -1,
                                    .value = b.data + offs[j],
                                    .value_len = (int32_t)(offs[j + 1] - offs[j])};
        if (dm_transport_produce(t, "orders", 0, recs, (size_t)m, NULL, &err))
            die("produce", err.message);
    }
    fclose(csv);
    free(recs);
    free(offs);
    dm_buf_free(&b);
}

typedef struct run {
    dm_sink_run_config_t c;
    dm_unit_status_t st;
} run_t;

static void *sink_thread(void *arg)
{
    run_t *r = arg;
    dm_sink_run(&r->c, &r->st);
    return NULL;
}

int main(int argc, char **argv)
{
    long n = argc > 1                     ? atol(argv[1])
             : getenv("DM_BENCH_RECORDS") ? atol(getenv("DM_BENCH_RECORDS"))
                                          : 5000000;
    const char *dsn = getenv("DM_PG_DSN");
    if (!dsn) {
        /* Run under the harness: a throwaway server on a free port. */
        char self[PATH_MAX], harness[PATH_MAX + 64];
        ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (len < 0) die("readlink", "cannot find myself");
        self[len] = '\0';
        char *bin = dirname(dirname(strdup(self))); /* build/ */
        snprintf(harness, sizeof(harness), "%s/../tests/harness/with-postgres", bin);
        char count[32];
        snprintf(count, sizeof(count), "%ld", n);
        execl("/bin/bash", "bash", harness, self, count, (char *)NULL);
        die("exec", harness);
    }
    printf("pgsink: %ld change events (Debezium envelopes, op c) into a Postgres table\n", n);
    PGconn *db = PQconnectdb(dsn);
    if (PQstatus(db) != CONNECTION_OK) die("connect", PQerrorMessage(db));
    char dir[] = "/tmp/dm-bench-pgsink.XXXXXX";
    if (!mkdtemp(dir)) die("mkdtemp", dir);
    char url[128], csv[128], q[600];
    snprintf(url, sizeof(url), "embedded:%s/log", dir);
    snprintf(csv, sizeof(csv), "%s/orders.csv", dir);
    dm_transport_t *t;
    dm_error_t err = {0};
    if (dm_transport_open(url, &t, &err)) die("transport", err.message);
    dm_topic_config_t tc = {.name = "orders", .partitions = 1, .fsync = DM_TRANSPORT_FSYNC_NEVER};
    if (dm_transport_create_topic(t, &tc, &err)) die("topic", err.message);
    tc.name = "dlq";
    dm_transport_create_topic(t, &tc, &err);
    dm_avro_schema_t *s;
    if (dm_avro_schema_parse(schema_json, strlen(schema_json), &s, &err))
        die("schema", err.message);
    make_events(t, s, n, csv);
    snprintf(q, sizeof(q),
             "DROP TABLE IF EXISTS base, orders; CREATE TABLE base %s; CREATE TABLE orders %s", ddl,
             ddl);
    sql(db, q);

    /* baseline: psql \copy of the same rows */
    char cmd[1200];
    snprintf(cmd, sizeof(cmd),
             "psql -q -X -v ON_ERROR_STOP=1 '%s' -c \"\\copy base FROM '%s' WITH (FORMAT csv)\"",
             dsn, csv);
    uint64_t t0 = dm_now_ns();
    if (system(cmd) != 0) die("psql \\copy", cmd);
    double base_s = (double)(dm_now_ns() - t0) / 1e9;
    printf("  baseline  psql \\copy from CSV    %8.2f s  %10.0f rows/s\n", base_s, n / base_s);

    /* datamesh: the postgres sink with its default settings */
    dm_pgsink_config_t conf;
    dm_config_defaults(&dm_pgsink_config_table, &conf, &err);
    dm_config_set_text(&dm_pgsink_config_table, &conf, "dsn", dsn, &err);
    dm_config_set_text(&dm_pgsink_config_table, &conf, "table", "orders", &err);
    dm_config_set_text(&dm_pgsink_config_table, &conf, "key", "id", &err);
    run_t r = {.c = {.transport = t,
                     .ops = &dm_pgsink_ops,
                     .conf = &conf,
                     .dead_letter_topic = "dlq",
                     .env = {.name = "bench",
                             .topic = "orders",
                             .partitions = 1,
                             .group = "bench",
                             .value_schema = s,
                             .value_schema_id = 1}}};
    dm_unit_init(&r.st);
    pthread_t th;
    t0 = dm_now_ns();
    pthread_create(&th, NULL, sink_thread, &r);
    uint64_t stalled_since = 0;
    while (atomic_load(&r.st.position) < n) {
        char state[32], error[512];
        dm_unit_get(&r.st, state, sizeof(state), error, sizeof(error));
        /* a sink that cannot write is a failed benchmark, not a hang */
        if (strcmp(state, "retrying"))
            stalled_since = 0;
        else if (!stalled_since)
            stalled_since = dm_now_ns();
        if (stalled_since && dm_now_ns() - stalled_since > 60000000000ull) die("sink", error);
        dm_sleep_ms(5);
    }
    double sink_s = (double)(dm_now_ns() - t0) / 1e9;
    atomic_store(&r.st.stop, true);
    pthread_join(th, NULL);
    printf("  datamesh  postgres sink (upsert)  %8.2f s  %10.0f rows/s\n", sink_s, n / sink_s);

    /* the same rows landed */
    PGresult *res = PQexec(db, "SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM base), "
                               "(SELECT count(*) FROM orders o JOIN base b USING (id) WHERE "
                               "o.customer = b.customer AND o.amount = b.amount AND o.ts = b.ts "
                               "AND o.paid = b.paid)");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) die("check", PQerrorMessage(db));
    long got = atol(PQgetvalue(res, 0, 0)), want = atol(PQgetvalue(res, 0, 1)),
         same = atol(PQgetvalue(res, 0, 2));
    PQclear(res);
    if (got != n || want != n || same != n) {
        fprintf(stderr,
                "bench_pgsink: tables differ: sink %ld, baseline %ld, equal rows %ld of %ld\n", got,
                want, same, n);
        return 1;
    }
    dm_unit_destroy(&r.st);
    dm_config_free(&dm_pgsink_config_table, &conf);
    dm_avro_schema_free(s);
    dm_transport_close(t);
    PQfinish(db);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd)) {
    }
    printf("pgsink ratio=%.2f target=0.5\n", base_s / sink_s);
    return 0;
}
