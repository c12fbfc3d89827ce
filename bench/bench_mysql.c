/* bench/bench_mysql.c — change data capture from the MariaDB binlog: the
 * mysql source against the server's own client on the same binlog, and a
 * snapshot against a hand-written libmariadb reader of the same rows. Runs
 * itself inside tests/harness/with-mariadb (a throwaway server).
 *
 *   1. streaming: N rows (DM_BENCH_ROWS, default 500,000; INSERT … SELECT of
 *      1,000 rows per transaction) are written while the source is stopped;
 *      then the source drains them (Avro change events into an embedded-log
 *      topic, position committed with each batch), and
 *      `mariadb-binlog --read-from-remote-server` reads the same binlog to
 *      /dev/null. changes/s and CPU-seconds per change of both.
 *   2. latency: 10,000 changes/s (100 transactions of 100 rows a second) for
 *      5 s; commit (client side, after COMMIT returned) to record in the
 *      topic: p50 and p99.
 *   3. snapshot: a DBLog snapshot of the N-row table (chunks of 32,768 rows
 *      between watermarks) against mysql_use_result reading every row of
 *      SELECT * once.
 * Ends with `mysql ratio=X.XX target=0.5` (datamesh / mariadb-binlog, changes/s). */
#include <jansson.h>
#include <mysql.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "connectors/mysql/mysql.h"
#include "connectors/unit.h"
#include "core/clock.h"
#include "schema/dm_schema_registry.h"
#include "transport/transport.h"

static MYSQL *db;
static dm_transport_t *t;
static dm_schema_registry_t *reg;
static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;

static void sql(const char *q)
{
    if (mysql_query(db, q)) {
        fprintf(stderr, "bench_mysql: %s: %s\n", q, mysql_error(db));
        exit(1);
    }
    MYSQL_RES *r = mysql_store_result(db);
    if (r) mysql_free_result(r);
}

static double now_s(void)
{
    return (double)dm_now_ns() / 1e9;
}

static double cpu_self(void)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)u.ru_utime.tv_sec + (double)u.ru_utime.tv_usec / 1e6 +
           (double)u.ru_stime.tv_sec + (double)u.ru_stime.tv_usec / 1e6;
}

static dm_err_t ensure_topic(void *ctx, const char *topic, int32_t partitions, const char *subject,
                             dm_error_t *err)
{
    dm_topic_description_t d;
    if (dm_transport_describe_topic(t, topic, &d, NULL) == DM_OK) {
        dm_transport_description_free(&d);
        return DM_OK;
    }
    dm_topic_config_t c = {.name = topic, .partitions = partitions, .schema_subject = subject};
    return dm_transport_create_topic(t, &c, err);
}

static dm_err_t register_schema(void *ctx, const char *subject, const char *json, uint32_t *id,
                                dm_error_t *err)
{
    int64_t sid = 0;
    pthread_mutex_lock(&reg_mu);
    dm_err_t rc = dm_schema_registry_register(reg, subject, json, &sid, NULL, NULL, err);
    pthread_mutex_unlock(&reg_mu);
    *id = (uint32_t)sid;
    return rc;
}

typedef struct run {
    dm_mysql_config_t conf;
    dm_source_env_t env;
    dm_my_source_t *src;
    dm_unit_status_t st;
    pthread_t th;
} run_t;

static void *run_main(void *arg)
{
    run_t *r = arg;
    dm_my_source_run(r->src, &r->st);
    return NULL;
}

static void source_start(run_t *r, const char *name, const char *table, const char *snapshot)
{
    memset(r, 0, sizeof(*r));
    dm_error_t err = {0};
    dm_config_defaults(&dm_mysql_config_table, &r->conf, &err);
    char cfg[600];
    snprintf(cfg, sizeof(cfg),
             "{\"host\": \"%s\", \"port\": %s, \"user\": \"%s\", \"password_env\": "
             "\"DM_MARIADB_PASSWORD\", \"tables\": [\"%s\"], \"snapshot\": \"%s\"}",
             getenv("DM_MARIADB_HOST"), getenv("DM_MARIADB_PORT"), getenv("DM_MARIADB_USER"), table,
             snapshot);
    json_t *c = json_loads(cfg, 0, NULL);
    if (dm_config_apply_json(&dm_mysql_config_table, &r->conf, c, NULL, &err)) {
        fprintf(stderr, "bench_mysql: config: %s\n", err.message);
        exit(1);
    }
    json_decref(c);
    r->env = (dm_source_env_t){.name = name,
                               .transport = t,
                               .topic = name,
                               .partitions = 1,
                               .ensure_topic = ensure_topic,
                               .register_schema = register_schema};
    dm_my_source_new(&r->env, &r->conf, &r->src, &err);
    dm_unit_init(&r->st);
    pthread_create(&r->th, NULL, run_main, r);
}

static void source_stop(run_t *r)
{
    atomic_store(&r->st.stop, true);
    pthread_join(r->th, NULL);
    char state[32], error[512];
    if (dm_unit_get(&r->st, state, sizeof(state), error, sizeof(error)) == DM_UNIT_FAILED) {
        fprintf(stderr, "bench_mysql: source failed: %s\n", error);
        exit(1);
    }
    dm_unit_destroy(&r->st);
    dm_my_source_free(r->src);
    dm_config_free(&dm_mysql_config_table, &r->conf);
}

static int64_t topic_size(const char *topic)
{
    int64_t start = 0, end = 0;
    dm_transport_offsets(t, topic, 0, &start, &end, NULL);
    return end - start;
}

static void wait_size(const char *topic, int64_t n, run_t *r)
{
    for (int i = 0; i < 600000 && topic_size(topic) < n; i++) {
        dm_sleep_ms(1);
        if (dm_unit_state(&r->st) == DM_UNIT_FAILED) {
            char state[32], error[512];
            dm_unit_get(&r->st, state, sizeof(state), error, sizeof(error));
            fprintf(stderr, "bench_mysql: source failed: %s\n", error);
            exit(1);
        }
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Commit → topic latency: a writer commits 100 rows 100 times a second and
 * notes when each COMMIT returned; a reader notes when each id reached the
 * topic. */
typedef struct lat {
    double *commit_at; /* by id - base */
    int n;
    int64_t base;
} lat_t;

static void *lat_writer(void *arg)
{
    lat_t *l = arg;
    MYSQL *w = mysql_init(NULL);
    if (!mysql_real_connect(w, getenv("DM_MARIADB_HOST"), getenv("DM_MARIADB_USER"),
                            getenv("DM_MARIADB_PASSWORD"), NULL,
                            (unsigned)atoi(getenv("DM_MARIADB_PORT")), NULL, 0))
        return NULL;
    double start = now_s();
    char q[300];
    for (int txn = 0; txn * 100 < l->n; txn++) {
        double due = start + txn / 100.0;
        while (now_s() < due)
            dm_sleep_ms(1);
        snprintf(q, sizeof(q),
                 "INSERT INTO bench.lat SELECT seq, 'x', seq / 100.0, NOW(6) FROM "
                 "bench.seq_%lld_to_%lld",
                 (long long)(l->base + txn * 100), (long long)(l->base + txn * 100 + 99));
        if (mysql_query(w, q)) fprintf(stderr, "bench_mysql: %s\n", mysql_error(w));
        double at = now_s();
        for (int i = 0; i < 100; i++)
            l->commit_at[txn * 100 + i] = at;
    }
    mysql_close(w);
    return NULL;
}

int main(int argc, char **argv)
{
    if (!getenv("DM_MARIADB_PORT")) { /* run inside a throwaway server */
        char self[1024], harness[1100];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n < 0) return 1;
        self[n] = '\0';
        char root[1024];
        snprintf(root, sizeof(root), "%s", self);
        for (int up = 0; up < 3; up++) {
            char *slash = strrchr(root, '/');
            if (slash) *slash = '\0';
        }
        snprintf(harness, sizeof(harness), "%s/tests/harness/with-mariadb", root);
        execl("/bin/bash", "bash", harness, self, (char *)NULL);
        perror("bench_mysql: with-mariadb");
        return 1;
    }
    (void)argc;
    (void)argv;
    long rows = getenv("DM_BENCH_ROWS") ? atol(getenv("DM_BENCH_ROWS")) : 500000;
    rows = rows < 1000 ? 1000 : rows / 1000 * 1000;
    db = mysql_init(NULL);
    if (!mysql_real_connect(db, getenv("DM_MARIADB_HOST"), getenv("DM_MARIADB_USER"),
                            getenv("DM_MARIADB_PASSWORD"), NULL,
                            (unsigned)atoi(getenv("DM_MARIADB_PORT")), NULL, 0)) {
        fprintf(stderr, "bench_mysql: %s\n", mysql_error(db));
        return 1;
    }
    sql("SET GLOBAL binlog_row_metadata = 'FULL'");
    mysql_close(db);
    db = mysql_init(NULL);
    mysql_real_connect(db, getenv("DM_MARIADB_HOST"), getenv("DM_MARIADB_USER"),
                       getenv("DM_MARIADB_PASSWORD"), NULL,
                       (unsigned)atoi(getenv("DM_MARIADB_PORT")), NULL, 0);
    sql("CREATE DATABASE bench");
    sql("CREATE TABLE bench.t (id BIGINT PRIMARY KEY, name VARCHAR(40), amount DECIMAL(12,2), "
        "at DATETIME(6))");
    sql("CREATE TABLE bench.lat LIKE bench.t");
    char dir[] = "/tmp/dm_bench_mysql.XXXXXX", path[300];
    if (!mkdtemp(dir)) return 1;
    dm_error_t err = {0};
    snprintf(path, sizeof(path), "embedded:%s/log", dir);
    if (dm_transport_open(path, &t, &err)) return fprintf(stderr, "%s\n", err.message), 1;
    snprintf(path, sizeof(path), "%s/registry.db", dir);
    if (dm_schema_registry_open(path, &reg, &err)) return fprintf(stderr, "%s\n", err.message), 1;

    /* 1. streaming: the source commits its position, then is stopped while
     * the workload is written */
    run_t r;
    source_start(&r, "t", "bench.t", "never");
    for (int i = 0; i < 5000 && dm_unit_state(&r.st) != DM_UNIT_RUNNING; i++)
        dm_sleep_ms(1);
    dm_sleep_ms(200);
    source_stop(&r);
    MYSQL_RES *res;
    sql("FLUSH BINARY LOGS");
    mysql_query(db, "SHOW MASTER STATUS");
    res = mysql_store_result(db);
    char first_log[256];
    snprintf(first_log, sizeof(first_log), "%s", mysql_fetch_row(res)[0]);
    mysql_free_result(res);
    double t0 = now_s();
    char q[300];
    for (long done = 0; done < rows; done += 1000) {
        snprintf(q, sizeof(q),
                 "INSERT INTO bench.t SELECT seq, CONCAT('customer ', seq), seq %% 100000 / 100.0, "
                 "NOW(6) FROM bench.seq_%ld_to_%ld",
                 done + 1, done + 1000);
        sql(q);
    }
    printf("workload: %ld rows in %ld transactions in %.2f s\n", rows, rows / 1000, now_s() - t0);

    /* baseline: the server's own client reads the same binlog to /dev/null */
    char cmd[1200];
    snprintf(cmd, sizeof(cmd),
             "mariadb-binlog --no-defaults --read-from-remote-server --host=%s --port=%s "
             "--user=%s --password=%s --to-last-log %s > /dev/null",
             getenv("DM_MARIADB_HOST"), getenv("DM_MARIADB_PORT"), getenv("DM_MARIADB_USER"),
             getenv("DM_MARIADB_PASSWORD"), first_log);
    struct rusage c0, c1;
    getrusage(RUSAGE_CHILDREN, &c0);
    t0 = now_s();
    if (system(cmd)) return fprintf(stderr, "bench_mysql: mariadb-binlog failed\n"), 1;
    double base_s = now_s() - t0;
    getrusage(RUSAGE_CHILDREN, &c1);
    double base_cpu = (double)(c1.ru_utime.tv_sec - c0.ru_utime.tv_sec) +
                      (double)(c1.ru_utime.tv_usec - c0.ru_utime.tv_usec) / 1e6 +
                      (double)(c1.ru_stime.tv_sec - c0.ru_stime.tv_sec) +
                      (double)(c1.ru_stime.tv_usec - c0.ru_stime.tv_usec) / 1e6;
    double base = (double)rows / base_s;
    printf("mariadb-binlog --read-from-remote-server -> /dev/null: %.0f changes/s, %.2f us CPU "
           "per change\n",
           base, base_cpu / (double)rows * 1e6);

    /* for context: the same client decoding the rows (--verbose), as the
     * source must */
    snprintf(cmd, sizeof(cmd),
             "mariadb-binlog --no-defaults --read-from-remote-server --host=%s --port=%s "
             "--user=%s --password=%s --verbose --to-last-log %s > /dev/null",
             getenv("DM_MARIADB_HOST"), getenv("DM_MARIADB_PORT"), getenv("DM_MARIADB_USER"),
             getenv("DM_MARIADB_PASSWORD"), first_log);
    getrusage(RUSAGE_CHILDREN, &c0);
    t0 = now_s();
    if (system(cmd)) return fprintf(stderr, "bench_mysql: mariadb-binlog -v failed\n"), 1;
    double verbose_s = now_s() - t0;
    getrusage(RUSAGE_CHILDREN, &c1);
    double verbose_cpu = (double)(c1.ru_utime.tv_sec - c0.ru_utime.tv_sec) +
                         (double)(c1.ru_utime.tv_usec - c0.ru_utime.tv_usec) / 1e6 +
                         (double)(c1.ru_stime.tv_sec - c0.ru_stime.tv_sec) +
                         (double)(c1.ru_stime.tv_usec - c0.ru_stime.tv_usec) / 1e6;
    printf("mariadb-binlog --verbose (rows decoded to text) -> /dev/null: %.0f changes/s, %.2f us "
           "CPU per change (for context, not the ratio)\n",
           (double)rows / verbose_s, verbose_cpu / (double)rows * 1e6);

    double cpu0 = cpu_self();
    t0 = now_s();
    source_start(&r, "t", "bench.t", "never");
    wait_size("t", rows, &r);
    double dm_s = now_s() - t0, dm_cpu = cpu_self() - cpu0;
    double dmr = (double)rows / dm_s;
    printf("datamesh mysql source -> topic (Avro, position committed): %.0f changes/s, %.2f us CPU "
           "per change\n",
           dmr, dm_cpu / (double)rows * 1e6);
    source_stop(&r);

    /* 2. latency at 10k changes/s */
    lat_t l = {.n = 50000, .base = 10000000};
    l.commit_at = calloc((size_t)l.n, sizeof(double));
    double *seen_at = calloc((size_t)l.n, sizeof(double));
    source_start(&r, "lat", "bench.lat", "never");
    for (int i = 0; i < 5000 && dm_unit_state(&r.st) != DM_UNIT_RUNNING; i++)
        dm_sleep_ms(1);
    pthread_t w;
    pthread_create(&w, NULL, lat_writer, &l);
    int64_t off = 0;
    int got = 0;
    dm_transport_batch_t b = {0};
    for (double until = now_s() + 60; got < l.n && now_s() < until;) {
        int64_t start, end;
        if (dm_transport_offsets(t, "lat", 0, &start, &end, NULL) || end <= off) {
            dm_sleep_ms(1);
            continue;
        }
        if (dm_transport_fetch(t, "lat", 0, off, 1 << 22, 0, &b, NULL)) continue;
        double at = now_s();
        got += (int)b.n;
        for (size_t i = 0; i < b.n; i++) {
            /* the key: wire header, then the Avro long id (zigzag varint) */
            const uint8_t *k = b.records[i].key + 5;
            uint64_t v = 0;
            for (int s = 0; s < 63; s += 7, k++) {
                v |= (uint64_t)(*k & 0x7f) << s;
                if (!(*k & 0x80)) break;
            }
            int64_t id = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
            if (id >= l.base && id < l.base + l.n) seen_at[id - l.base] = at;
        }
        off = b.next_offset;
    }
    dm_transport_batch_free(t, &b);
    pthread_join(w, NULL);
    source_stop(&r);
    double *lat = calloc((size_t)l.n, sizeof(double));
    int nl = 0;
    for (int i = 0; i < l.n; i++)
        if (seen_at[i] > 0 && l.commit_at[i] > 0) lat[nl++] = (seen_at[i] - l.commit_at[i]) * 1e3;
    qsort(lat, (size_t)nl, sizeof(double), cmp_double);
    if (nl)
        printf("latency at 10k changes/s, commit to topic: p50 %.1f ms, p99 %.1f ms (%d changes)\n",
               lat[nl / 2], lat[(int)(nl * 0.99)], nl);

    /* 3. snapshot of the table against a plain reader of the same rows */
    double rc0 = cpu_self();
    t0 = now_s();
    mysql_query(db, "SELECT * FROM bench.t");
    res = mysql_use_result(db);
    long n_read = 0;
    while (mysql_fetch_row(res))
        n_read++;
    mysql_free_result(res);
    double read_s = now_s() - t0, read_cpu = cpu_self() - rc0;
    printf("libmariadb SELECT * (mysql_use_result): %.0f rows/s, %.2f us CPU per row\n",
           (double)n_read / read_s, read_cpu / (double)n_read * 1e6);
    cpu0 = cpu_self();
    t0 = now_s();
    source_start(&r, "snap", "bench.t", "initial");
    wait_size("snap", rows, &r);
    double snap_s = now_s() - t0, snap_cpu = cpu_self() - cpu0;
    printf("datamesh DBLog snapshot -> topic: %.0f rows/s, %.2f us CPU per row\n",
           (double)rows / snap_s, snap_cpu / (double)rows * 1e6);
    source_stop(&r);

    dm_schema_registry_close(reg);
    dm_transport_close(t);
    mysql_close(db);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd)) return 1;
    printf("mysql ratio=%.2f target=0.5\n", dmr / base);
    return 0;
}
