/* needs:mariadb — integration tests of the mysql connector against a real
 * MariaDB (tests/harness/with-mariadb): settings refused with the statement
 * that fixes them, every type, updates/deletes/truncate, DDL mid-stream,
 * restart and resume exactly once, several partitions, a dead server, a
 * purged binlog position. The connector runs into an embedded log in a
 * temporary directory; the checks decode the topics with the registered
 * schemas. */
#include <jansson.h>
#include <mysql.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "connectors/mysql/mysql.h"
#include "connectors/unit.h"
#include "core/clock.h"
#include "schema/dm_avro.h"
#include "schema/dm_schema_registry.h"
#include "schema/wire.h"
#include "transport/transport.h"

static char dir[256];
static MYSQL *db;

/* ---- fixture -------------------------------------------------------------------------- */

typedef struct fixture {
    dm_transport_t *t;
    dm_schema_registry_t *reg;
    pthread_mutex_t reg_mu;
    dm_mysql_config_t conf;
    dm_source_env_t env;
    dm_my_source_t *src;
    dm_unit_status_t st;
    pthread_t th;
    bool running;
    char name[64];
} fixture_t;

static void db_connect(void)
{
    if (db) mysql_close(db);
    db = mysql_init(NULL);
    for (int i = 0; i < 300; i++) {
        if (mysql_real_connect(db, getenv("DM_MARIADB_HOST"), getenv("DM_MARIADB_USER"),
                               getenv("DM_MARIADB_PASSWORD"), NULL,
                               (unsigned)atoi(getenv("DM_MARIADB_PORT")), NULL, 0))
            return;
        dm_sleep_ms(100);
    }
    printf("    connect: %s\n", mysql_error(db));
}

static void sql(const char *fmt, ...)
{
    char q[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(q, sizeof(q), fmt, ap);
    va_end(ap);
    if (mysql_query(db, q)) {
        printf("    SQL failed: %s: %s\n", q, mysql_error(db));
        check_fail(__FILE__, __LINE__, "SQL");
    }
    MYSQL_RES *r = mysql_store_result(db);
    if (r) mysql_free_result(r);
}

static dm_err_t ensure_topic(void *ctx, const char *topic, int32_t partitions, const char *subject,
                             dm_error_t *err)
{
    fixture_t *f = ctx;
    dm_topic_description_t d;
    if (dm_transport_describe_topic(f->t, topic, &d, NULL) == DM_OK) {
        dm_transport_description_free(&d);
        return DM_OK;
    }
    dm_topic_config_t c = {.name = topic, .partitions = partitions, .schema_subject = subject};
    return dm_transport_create_topic(f->t, &c, err);
}

static dm_err_t register_schema(void *ctx, const char *subject, const char *json, uint32_t *id,
                                dm_error_t *err)
{
    fixture_t *f = ctx;
    int64_t sid = 0;
    pthread_mutex_lock(&f->reg_mu);
    dm_err_t rc = dm_schema_registry_register(f->reg, subject, json, &sid, NULL, NULL, err);
    pthread_mutex_unlock(&f->reg_mu);
    *id = (uint32_t)sid;
    return rc;
}

static void fixture_open(fixture_t *f, const char *name, int partitions, const char *config_json)
{
    memset(f, 0, sizeof(*f));
    snprintf(f->name, sizeof(f->name), "%s", name);
    char path[400];
    dm_error_t err = {0};
    snprintf(path, sizeof(path), "embedded:%s/log", dir);
    if (dm_transport_open(path, &f->t, &err)) printf("    %s\n", err.message);
    snprintf(path, sizeof(path), "%s/registry.db", dir);
    dm_schema_registry_open(path, &f->reg, &err);
    pthread_mutex_init(&f->reg_mu, NULL);
    dm_config_defaults(&dm_mysql_config_table, &f->conf, &err);
    json_t *c = json_loads(config_json, 0, NULL);
    json_object_set_new(c, "host", json_string(getenv("DM_MARIADB_HOST")));
    json_object_set_new(c, "port", json_integer(atoi(getenv("DM_MARIADB_PORT"))));
    json_object_set_new(c, "user", json_string(getenv("DM_MARIADB_USER")));
    json_object_set_new(c, "password_env", json_string("DM_MARIADB_PASSWORD"));
    if (!json_object_get(c, "snapshot")) json_object_set_new(c, "snapshot", json_string("never"));
    if (dm_config_apply_json(&dm_mysql_config_table, &f->conf, c, NULL, &err))
        printf("    config: %s\n", err.message);
    json_decref(c);
    f->env = (dm_source_env_t){.name = f->name,
                               .transport = f->t,
                               .topic = f->name,
                               .partitions = partitions,
                               .ensure_topic = ensure_topic,
                               .register_schema = register_schema,
                               .ctx = f};
    dm_my_source_new(&f->env, &f->conf, &f->src, &err);
}

static void *run_main(void *arg)
{
    fixture_t *f = arg;
    dm_my_source_run(f->src, &f->st);
    return NULL;
}

/* Starts the source and waits until it streams (or fails: the state is returned). */
static const char *fixture_start(fixture_t *f, char *error, size_t cap)
{
    static char state[32];
    dm_unit_init(&f->st);
    pthread_create(&f->th, NULL, run_main, f);
    f->running = true;
    state[0] = '\0';
    for (int waited = 0; waited < 20000; waited += 10) {
        dm_sleep_ms(10);
        dm_unit_get(&f->st, state, sizeof(state), error, cap);
        if (!strcmp(state, "running") || !strcmp(state, "failed")) break;
    }
    return state;
}

static void fixture_stop(fixture_t *f)
{
    if (!f->running) return;
    atomic_store(&f->st.stop, true);
    pthread_join(f->th, NULL);
    dm_unit_destroy(&f->st);
    f->running = false;
}

static void fixture_close(fixture_t *f)
{
    fixture_stop(f);
    dm_my_source_free(f->src);
    dm_config_free(&dm_mysql_config_table, &f->conf);
    dm_schema_registry_close(f->reg);
    dm_transport_close(f->t);
    pthread_mutex_destroy(&f->reg_mu);
}

/* Every record of topic (all partitions) as plain JSON events, with
 * _schema_id and _partition added. */
static json_t *read_topic(fixture_t *f, const char *topic, int partitions)
{
    json_t *out = json_array();
    dm_arena_t a;
    dm_arena_init(&a, 0);
    dm_buf_t j = DM_BUF_INIT;
    dm_avro_schema_t *schemas[64] = {0};
    uint32_t ids[64] = {0};
    int n_schemas = 0;
    for (int p = 0; p < partitions; p++) {
        int64_t start, end, off;
        if (dm_transport_offsets(f->t, topic, p, &start, &end, NULL)) continue;
        dm_transport_batch_t b = {0};
        for (off = start; off < end;) {
            if (dm_transport_fetch(f->t, topic, p, off, 1 << 20, 0, &b, NULL) || !b.n) break;
            for (size_t i = 0; i < b.n; i++) {
                const dm_record_t *r = &b.records[i];
                uint32_t id;
                if (dm_wire_get_header(r->value, (size_t)r->value_len, &id)) continue;
                dm_avro_schema_t *s = NULL;
                for (int k = 0; k < n_schemas; k++)
                    if (ids[k] == id) s = schemas[k];
                if (!s && n_schemas < 64) {
                    char *text = NULL;
                    pthread_mutex_lock(&f->reg_mu);
                    dm_schema_registry_get_by_id(f->reg, id, &text, NULL);
                    pthread_mutex_unlock(&f->reg_mu);
                    if (text) dm_avro_schema_parse(text, strlen(text), &s, NULL);
                    free(text);
                    ids[n_schemas] = id;
                    schemas[n_schemas++] = s;
                }
                dm_avro_value_t v;
                dm_error_t err = {0};
                dm_buf_reset(&j);
                if (!s ||
                    dm_avro_decode_node(s->root, r->value + 5, (size_t)r->value_len - 5, NULL, &a,
                                        &v, &err) ||
                    dm_avro_to_json(s->root, &v, DM_AVRO_JSON_PLAIN, &j, &err)) {
                    printf("    undecodable record at %lld: %s\n", (long long)r->offset,
                           err.message);
                    check_fail(__FILE__, __LINE__, "decode");
                    continue;
                }
                json_t *ev = json_loadb((const char *)j.data, j.len, JSON_ALLOW_NUL, NULL);
                if (!ev) check_fail(__FILE__, __LINE__, "event JSON");
                json_object_set_new(ev, "_schema_id", json_integer(id));
                json_object_set_new(ev, "_partition", json_integer(p));
                json_array_append_new(out, ev);
            }
            off = b.next_offset;
            dm_arena_reset(&a);
        }
        dm_transport_batch_free(f->t, &b);
    }
    for (int k = 0; k < n_schemas; k++)
        dm_avro_schema_free(schemas[k]);
    dm_buf_free(&j);
    dm_arena_destroy(&a);
    return out;
}

static int64_t topic_size(fixture_t *f, const char *topic, int partitions)
{
    int64_t total = 0;
    for (int p = 0; p < partitions; p++) {
        int64_t start = 0, end = 0;
        dm_transport_offsets(f->t, topic, p, &start, &end, NULL);
        total += end - start;
    }
    return total;
}

static bool wait_records(fixture_t *f, const char *topic, int partitions, int64_t n, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms; waited += 20) {
        if (topic_size(f, topic, partitions) >= n) return true;
        dm_sleep_ms(20);
    }
    char state[32], error[512];
    dm_unit_get(&f->st, state, sizeof(state), error, sizeof(error));
    printf("    %s: %lld of %lld records after %d ms (state %s %s)\n", topic,
           (long long)topic_size(f, topic, partitions), (long long)n, timeout_ms, state, error);
    return false;
}

static const char *field(const json_t *ev, const char *row, const char *name)
{
    static char buf[8][1024];
    static int k;
    const json_t *v = json_object_get(json_object_get(ev, row), name);
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof(buf[k]), "%s", s ? s : "(absent)");
    free(s);
    return buf[k];
}

static const char *op(const json_t *ev)
{
    return json_string_value(json_object_get(ev, "op"));
}

/* ---- tests ------------------------------------------------------------------------------ */

/* The harness's server writes MINIMAL row metadata: refused, naming the
 * setting, its value and the statement; then fixed for the other tests. */
static void test_refuses_missing_settings(void)
{
    sql("CREATE DATABASE shop");
    sql("CREATE TABLE shop.orders (id INT PRIMARY KEY, v VARCHAR(20))");
    fixture_t f;
    fixture_open(&f, "refused", 1, "{\"tables\": [\"shop.orders\"]}");
    char error[512] = "";
    const char *state = fixture_start(&f, error, sizeof(error));
    CHECK_STR_EQ(state, "failed");
    CHECK_CONTAINS(error, "binlog_row_metadata is NO_LOG");
    CHECK_CONTAINS(error, "SET GLOBAL binlog_row_metadata = 'FULL'");
    CHECK(!strstr(error, getenv("DM_MARIADB_PASSWORD")) ||
          strlen(getenv("DM_MARIADB_PASSWORD")) < 3);
    fixture_close(&f);
    sql("SET GLOBAL binlog_row_metadata = 'FULL'");
    sql("SET GLOBAL binlog_format = 'STATEMENT'");
    fixture_open(&f, "refused2", 1, "{\"tables\": [\"shop.orders\"]}");
    state = fixture_start(&f, error, sizeof(error));
    CHECK_STR_EQ(state, "failed");
    CHECK_CONTAINS(error, "binlog_format is STATEMENT");
    CHECK_CONTAINS(error, "SET GLOBAL binlog_format = 'ROW'");
    fixture_close(&f);
    sql("SET GLOBAL binlog_format = 'ROW'");
    sql("SET GLOBAL log_bin_compress = ON");
    fixture_open(&f, "refused3", 1, "{\"tables\": [\"shop.orders\"]}");
    state = fixture_start(&f, error, sizeof(error));
    CHECK_STR_EQ(state, "failed");
    CHECK_CONTAINS(error, "SET GLOBAL log_bin_compress = OFF");
    fixture_close(&f);
    sql("SET GLOBAL log_bin_compress = OFF");
    /* a table that is not there */
    fixture_open(&f, "missing", 1, "{\"tables\": [\"shop.nope\"]}");
    state = fixture_start(&f, error, sizeof(error));
    CHECK_STR_EQ(state, "failed");
    CHECK_CONTAINS(error, "table shop.nope does not exist");
    fixture_close(&f);
    db_connect(); /* binlog_format applies to new sessions */
}

/* A user without replication privileges is told which GRANT it needs. */
static void test_refuses_missing_privileges(void)
{
    sql("CREATE USER 'weak'@'%%' IDENTIFIED BY 'weakpw'");
    sql("GRANT SELECT ON shop.* TO 'weak'@'%%'");
    setenv("DM_WEAK_PW", "weakpw", 1);
    fixture_t f;
    fixture_open(&f, "weak", 1, "{\"tables\": [\"shop.orders\"]}");
    free(f.conf.user);
    f.conf.user = strdup("weak");
    free(f.conf.password_env);
    f.conf.password_env = strdup("DM_WEAK_PW");
    char error[512] = "";
    const char *state = fixture_start(&f, error, sizeof(error));
    CHECK_STR_EQ(state, "failed");
    CHECK_CONTAINS(error, "GRANT BINLOG MONITOR, REPLICATION SLAVE ON *.* TO 'weak'@'%'");
    CHECK(!strstr(error, "weakpw"));
    fixture_close(&f);
}

static void test_types(void)
{
    sql("CREATE TABLE shop.types (id INT UNSIGNED PRIMARY KEY, ti TINYINT, tu TINYINT UNSIGNED, "
        "si SMALLINT, su SMALLINT UNSIGNED, mi MEDIUMINT, mu MEDIUMINT UNSIGNED, i INT, "
        "bi BIGINT, bu BIGINT UNSIGNED, d DECIMAL(12,3), dn DECIMAL(30,10), f FLOAT, "
        "db DOUBLE, dt DATE, tm TIME(6), tn TIME, dtm DATETIME(3), ts TIMESTAMP(6) NULL, "
        "y YEAR, c CHAR(4), vc VARCHAR(300), tx TEXT, l1 VARCHAR(10) CHARACTER SET latin1, "
        "bn BINARY(3), vb VARBINARY(10), bl BLOB, e ENUM('red','green','blue'), "
        "st SET('a','b','c'), js JSON, b1 BIT(1), b12 BIT(12), g GEOMETRY)");
    fixture_t f;
    fixture_open(&f, "types", 1, "{\"tables\": [\"shop.types\"]}");
    char error[512] = "";
    const char *state = fixture_start(&f, error, sizeof(error));
    CHECK_STR_EQ(state, "running");
    if (strcmp(state, "running")) printf("    %s\n", error);
    sql("SET time_zone = '+00:00'");
    sql("INSERT INTO shop.types VALUES (4294967295, -128, 255, -32768, 65535, -8388608, 16777215, "
        "-2147483648, -9223372036854775808, 18446744073709551615, -123456789.125, "
        "12345678901234567890.0123456789, 0.5, -1.25e-300, '2024-02-29', '-838:59:58.999999', "
        "'23:59:59', '1999-12-31 23:59:59.500', '2038-01-19 03:14:07.999999', 2155, 'ab', "
        "REPEAT('x', 300), 'héllo wörld', 'café', 'a\\0b', X'00FF', X'DEADBEEF', 'green', 'a,c', "
        "'{\"k\": [1, 2.5, \"s\"]}', b'1', b'101010101010', ST_GeomFromText('POINT(1 2)'))");
    sql("INSERT INTO shop.types (id) VALUES (2)");
    sql("UPDATE shop.types SET vc = 'changed', d = 0.001 WHERE id = 2");
    sql("DELETE FROM shop.types WHERE id = 2");
    sql("UPDATE shop.types SET id = 3 WHERE id = 4294967295");
    REQUIRE(wait_records(&f, "types", 1, 6, 15000));
    json_t *evs = read_topic(&f, "types", 1);
    REQUIRE(json_array_size(evs) == 6);
    json_t *e = json_array_get(evs, 0);
    CHECK_STR_EQ(op(e), "c");
    CHECK_STR_EQ(field(e, "after", "id"), "4294967295");
    CHECK_STR_EQ(field(e, "after", "ti"), "-128");
    CHECK_STR_EQ(field(e, "after", "tu"), "255");
    CHECK_STR_EQ(field(e, "after", "si"), "-32768");
    CHECK_STR_EQ(field(e, "after", "su"), "65535");
    CHECK_STR_EQ(field(e, "after", "mi"), "-8388608");
    CHECK_STR_EQ(field(e, "after", "mu"), "16777215");
    CHECK_STR_EQ(field(e, "after", "i"), "-2147483648");
    CHECK_STR_EQ(field(e, "after", "bi"), "-9223372036854775808");
    CHECK_STR_EQ(field(e, "after", "bu"), "\"18446744073709551615\"");
    CHECK_STR_EQ(field(e, "after", "d"), "\"-123456789.125\"");
    CHECK_STR_EQ(field(e, "after", "dn"), "\"12345678901234567890.0123456789\"");
    CHECK_STR_EQ(field(e, "after", "f"), "0.5");
    CHECK_STR_EQ(field(e, "after", "db"), "-1.25e-300");
    CHECK_STR_EQ(field(e, "after", "dt"), "\"2024-02-29\"");
    CHECK_STR_EQ(field(e, "after", "tm"), "-3020398999999");
    CHECK_STR_EQ(field(e, "after", "tn"), "86399000000");
    CHECK_STR_EQ(field(e, "after", "dtm"), "\"1999-12-31T23:59:59.500000\"");
    CHECK_STR_EQ(field(e, "after", "ts"), "\"2038-01-19T03:14:07.999999Z\"");
    CHECK_STR_EQ(field(e, "after", "y"), "2155");
    CHECK_STR_EQ(field(e, "after", "c"), "\"ab\"");
    CHECK_CONTAINS(field(e, "after", "vc"), "\"xxxxxxxxxx");
    CHECK_STR_EQ(field(e, "after", "tx"), "\"héllo wörld\"");
    CHECK_STR_EQ(field(e, "after", "l1"), "\"café\"");
    CHECK_STR_EQ(field(e, "after", "bn"), "\"a\\u0000b\"");
    CHECK_STR_EQ(field(e, "after", "vb"), "\"\\u0000ÿ\"");
    CHECK_STR_EQ(field(e, "after", "e"), "\"green\"");
    CHECK_STR_EQ(field(e, "after", "st"), "\"a,c\"");
    CHECK_STR_EQ(field(e, "after", "js"), "\"{\\\"k\\\": [1, 2.5, \\\"s\\\"]}\"");
    CHECK_STR_EQ(field(e, "after", "b1"), "true");
    CHECK_STR_EQ(field(e, "after", "b12"), "\"\\nª\"");
    CHECK_CONTAINS(field(e, "after", "g"), "0101000000000000000000f03f");
    CHECK_STR_EQ(field(e, "source", "connector"), "\"mysql\"");
    CHECK_STR_EQ(field(e, "source", "db"), "\"shop\"");
    CHECK_STR_EQ(field(e, "source", "table"), "\"types\"");
    CHECK_STR_EQ(field(e, "source", "snapshot"), "\"false\"");
    CHECK_CONTAINS(field(e, "source", "gtid"), "0-1-");
    CHECK_CONTAINS(field(e, "source", "position"), "file=binlog.");
    json_t *n = json_array_get(evs, 1);
    CHECK_STR_EQ(field(n, "after", "d"), "null");
    CHECK_STR_EQ(field(n, "after", "js"), "null");
    json_t *u = json_array_get(evs, 2);
    CHECK_STR_EQ(op(u), "u");
    CHECK_STR_EQ(field(u, "before", "vc"), "null");
    CHECK_STR_EQ(field(u, "after", "vc"), "\"changed\"");
    CHECK_STR_EQ(field(u, "after", "d"), "\"0.001\"");
    CHECK_STR_EQ(op(json_array_get(evs, 3)), "d");
    CHECK_STR_EQ(field(json_array_get(evs, 3), "before", "id"), "2");
    /* a key change: delete of the old key, create of the new */
    CHECK_STR_EQ(op(json_array_get(evs, 4)), "d");
    CHECK_STR_EQ(field(json_array_get(evs, 4), "before", "id"), "4294967295");
    CHECK_STR_EQ(op(json_array_get(evs, 5)), "c");
    CHECK_STR_EQ(field(json_array_get(evs, 5), "after", "id"), "3");
    json_decref(evs);
    fixture_close(&f);
}

/* DDL mid-stream: the next rows carry the new column under a new schema
 * version; TRUNCATE is a 't' event. */
static void test_ddl_mid_stream(void)
{
    sql("CREATE TABLE shop.evolve (id INT PRIMARY KEY, a VARCHAR(10))");
    fixture_t f;
    fixture_open(&f, "evolve", 1, "{\"tables\": [\"shop.evolve\"]}");
    char error[512];
    CHECK_STR_EQ(fixture_start(&f, error, sizeof(error)), "running");
    sql("INSERT INTO shop.evolve VALUES (1, 'one')");
    sql("ALTER TABLE shop.evolve ADD COLUMN b INT NULL");
    sql("INSERT INTO shop.evolve VALUES (2, 'two', 22)");
    sql("TRUNCATE TABLE shop.evolve");
    sql("INSERT INTO shop.evolve VALUES (3, 'three', 33)");
    REQUIRE(wait_records(&f, "evolve", 1, 4, 15000));
    json_t *evs = read_topic(&f, "evolve", 1);
    REQUIRE(json_array_size(evs) == 4);
    json_t *a = json_array_get(evs, 0), *b = json_array_get(evs, 1);
    CHECK_STR_EQ(field(a, "after", "b"), "(absent)");
    CHECK_STR_EQ(field(b, "after", "b"), "22");
    CHECK(json_integer_value(json_object_get(a, "_schema_id")) !=
          json_integer_value(json_object_get(b, "_schema_id")));
    CHECK_STR_EQ(op(json_array_get(evs, 2)), "t");
    CHECK_STR_EQ(field(json_array_get(evs, 3), "after", "b"), "33");
    json_decref(evs);
    /* an incompatible change (a column's type to another family) is refused
     * by the registry's check: the source fails with the reason */
    sql("ALTER TABLE shop.evolve MODIFY COLUMN b VARCHAR(5) NOT NULL DEFAULT 'x'");
    sql("INSERT INTO shop.evolve VALUES (4, 'four', 'x')");
    char state[32] = "";
    for (int i = 0; i < 1000 && strcmp(state, "failed"); i++) {
        dm_sleep_ms(10);
        dm_unit_get(&f.st, state, sizeof(state), error, sizeof(error));
    }
    CHECK_STR_EQ(state, "failed");
    CHECK_CONTAINS(error, "shop.evolve");
    fixture_close(&f);
}

/* Stop, write, start: exactly the changes made meanwhile, once. Then a large
 * transaction split over batches, with a stop in between. */
static void test_resume_exactly_once(void)
{
    sql("CREATE TABLE shop.resume (id INT PRIMARY KEY, n INT)");
    fixture_t f;
    fixture_open(&f, "resume", 1, "{\"tables\": [\"shop.resume\"]}");
    char error[512];
    /* stopped before it saw any change: the changes made while it was
     * stopped are not skipped */
    CHECK_STR_EQ(fixture_start(&f, error, sizeof(error)), "running");
    fixture_stop(&f);
    sql("INSERT INTO shop.resume VALUES (-1, -1)");
    CHECK_STR_EQ(fixture_start(&f, error, sizeof(error)), "running");
    REQUIRE(wait_records(&f, "resume", 1, 1, 15000));
    for (int i = 0; i < 50; i++)
        sql("INSERT INTO shop.resume VALUES (%d, %d)", i, i);
    REQUIRE(wait_records(&f, "resume", 1, 51, 15000));
    fixture_stop(&f);
    for (int i = 50; i < 100; i++)
        sql("INSERT INTO shop.resume VALUES (%d, %d)", i, i);
    sql("UPDATE shop.resume SET n = n + 1000 WHERE id < 10") /* ids -1..9 */;
    CHECK_STR_EQ(fixture_start(&f, error, sizeof(error)), "running");
    REQUIRE(wait_records(&f, "resume", 1, 112, 15000)); /* 1 + 50 + 50 + 11 updated */
    dm_sleep_ms(300);
    json_t *evs = read_topic(&f, "resume", 1);
    CHECK_EQ_INT(json_array_size(evs), 112);
    /* no (gtid, row) twice */
    json_t *seen = json_object();
    size_t i;
    json_t *e;
    json_array_foreach(evs, i, e)
    {
        char k[200];
        snprintf(k, sizeof(k), "%s/%s", field(e, "source", "gtid"), field(e, "source", "row"));
        CHECK(!json_object_get(seen, k));
        json_object_set_new(seen, k, json_true());
    }
    json_decref(seen);
    json_decref(evs);
    fixture_close(&f);
}

/* 120,000 rows in one transaction are split over batches (50,000 changes
 * each); a restart after the first part must not repeat it. */
static void test_large_transaction(void)
{
    sql("CREATE TABLE shop.big (id INT PRIMARY KEY, pad VARCHAR(20))");
    fixture_t f;
    fixture_open(&f, "big", 1, "{\"tables\": [\"shop.big\"]}");
    char error[512];
    CHECK_STR_EQ(fixture_start(&f, error, sizeof(error)), "running");
    sql("INSERT INTO shop.big SELECT seq, 'p' FROM shop.seq_0_to_119999");
    REQUIRE(wait_records(&f, "big", 1, 50000, 30000));
    fixture_stop(&f); /* most likely mid-transaction */
    CHECK_STR_EQ(fixture_start(&f, error, sizeof(error)), "running");
    REQUIRE(wait_records(&f, "big", 1, 120000, 60000));
    dm_sleep_ms(500);
    CHECK_EQ_INT(topic_size(&f, "big", 1), 120000);
    fixture_close(&f);
}

/* Several partitions and a multi-table source: records keyed, every key in
 * one partition, folding the topic gives the table. */
static void test_partitions(void)
{
    sql("CREATE TABLE shop.p1 (id INT PRIMARY KEY, n INT)");
    sql("CREATE TABLE shop.p2 (k VARCHAR(10) PRIMARY KEY, n INT)");
    fixture_t f;
    fixture_open(&f, "parts", 4, "{\"tables\": [\"shop.p1\", \"shop.p2\"]}");
    char error[512];
    CHECK_STR_EQ(fixture_start(&f, error, sizeof(error)), "running");
    for (int i = 0; i < 200; i++)
        sql("INSERT INTO shop.p1 VALUES (%d, %d)", i, i);
    sql("UPDATE shop.p1 SET n = -n WHERE id %% 3 = 0"); /* 66 rows change: -0 is 0 */
    sql("DELETE FROM shop.p1 WHERE id %% 7 = 0");
    sql("INSERT INTO shop.p2 VALUES ('a', 1), ('b', 2)");
    REQUIRE(wait_records(&f, "parts.shop.p1", 4, 200 + 66 + 29, 15000));
    REQUIRE(wait_records(&f, "parts.shop.p2", 4, 2, 15000));
    json_t *evs = read_topic(&f, "parts.shop.p1", 4);
    json_t *state = json_object(), *part_of = json_object();
    size_t i;
    json_t *e;
    int used[4] = {0};
    json_array_foreach(evs, i, e)
    {
        const char *k = field(e, strcmp(op(e), "d") ? "after" : "before", "id");
        int p = (int)json_integer_value(json_object_get(e, "_partition"));
        used[p]++;
        json_t *prev = json_object_get(part_of, k);
        if (prev) CHECK_EQ_INT(json_integer_value(prev), p);
        json_object_set_new(part_of, k, json_integer(p));
        if (!strcmp(op(e), "d"))
            json_object_del(state, k);
        else
            json_object_set(state, k, json_object_get(json_object_get(e, "after"), "n"));
    }
    CHECK_EQ_INT(json_object_size(state), 200 - 29);
    CHECK_EQ_INT(json_integer_value(json_object_get(state, "3")), -3);
    CHECK_EQ_INT(json_integer_value(json_object_get(state, "4")), 4);
    CHECK(!json_object_get(state, "14"));
    for (int p = 0; p < 4; p++)
        CHECK(used[p] > 0);
    json_decref(state);
    json_decref(part_of);
    json_decref(evs);
    fixture_close(&f);
}

/* The server is killed mid-stream: the source says why it retries, and when
 * the server is back it goes on from its position, losing nothing and
 * repeating nothing. */
static void test_dead_server(void)
{
    const char *restart = getenv("DM_MARIADB_KILL"), *start = getenv("DM_MARIADB_START");
    REQUIRE(restart && start);
    sql("SET GLOBAL innodb_flush_log_at_trx_commit = 1"); /* what was acknowledged survives */
    sql("SET GLOBAL sync_binlog = 1");
    sql("CREATE TABLE shop.dead (id INT PRIMARY KEY)");
    fixture_t f;
    fixture_open(&f, "dead", 2, "{\"tables\": [\"shop.dead\"]}");
    char error[512];
    CHECK_STR_EQ(fixture_start(&f, error, sizeof(error)), "running");
    for (int i = 0; i < 100; i++)
        sql("INSERT INTO shop.dead VALUES (%d)", i);
    REQUIRE(wait_records(&f, "dead", 2, 100, 15000));
    CHECK(system(restart) == 0);
    char state[32] = "";
    for (int i = 0; i < 1500 && strcmp(state, "retrying"); i++) {
        dm_sleep_ms(10);
        dm_unit_get(&f.st, state, sizeof(state), error, sizeof(error));
    }
    CHECK_STR_EQ(state, "retrying");
    CHECK(strstr(error, "binlog stream ended") || strstr(error, "cannot connect"));
    setenv("DM_MARIADB_OPTS",
           "--binlog-row-metadata=FULL --innodb-flush-log-at-trx-commit=1 --sync-binlog=1", 1);
    CHECK(system(start) == 0);
    db_connect();
    for (int i = 100; i < 200; i++)
        sql("INSERT INTO shop.dead VALUES (%d)", i);
    REQUIRE(wait_records(&f, "dead", 2, 200, 30000));
    dm_sleep_ms(300);
    json_t *evs = read_topic(&f, "dead", 2);
    CHECK_EQ_INT(json_array_size(evs), 200);
    json_decref(evs);
    fixture_close(&f);
}

/* The binlog the source would resume from is purged: a clear error, no retry. */
static void test_purged_position(void)
{
    sql("CREATE TABLE shop.purged (id INT PRIMARY KEY)");
    fixture_t f;
    fixture_open(&f, "purged", 1, "{\"tables\": [\"shop.purged\"]}");
    char error[512];
    CHECK_STR_EQ(fixture_start(&f, error, sizeof(error)), "running");
    sql("INSERT INTO shop.purged VALUES (1)");
    REQUIRE(wait_records(&f, "purged", 1, 1, 15000));
    fixture_stop(&f);
    sql("INSERT INTO shop.purged VALUES (2)");
    sql("FLUSH BINARY LOGS");
    sql("INSERT INTO shop.purged VALUES (3)");
    sql("FLUSH BINARY LOGS");
    MYSQL_RES *r;
    mysql_query(db, "SHOW MASTER STATUS");
    r = mysql_store_result(db);
    MYSQL_ROW row = mysql_fetch_row(r);
    char last[256];
    snprintf(last, sizeof(last), "%s", row[0]);
    mysql_free_result(r);
    /* The server keeps a file a dump thread reads; the stopped source's
     * thread goes when the server next writes to it (a heartbeat). */
    for (int i = 0; i < 100; i++) {
        mysql_query(db, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE COMMAND LIKE "
                        "'Binlog Dump%'");
        r = mysql_store_result(db);
        row = mysql_fetch_row(r);
        bool gone = row && row[0] && !strcmp(row[0], "0");
        mysql_free_result(r);
        if (gone) break;
        dm_sleep_ms(100);
    }
    /* MariaDB purges a file only once a binlog checkpoint in a later file
     * says the engines are done with it: retry until the purge took. */
    bool purged = false;
    for (int i = 0; i < 100 && !purged; i++) {
        sql("PURGE BINARY LOGS TO '%s'", last);
        mysql_query(db, "SHOW BINARY LOGS");
        r = mysql_store_result(db);
        row = mysql_fetch_row(r);
        purged = row && !strcmp(row[0], last);
        mysql_free_result(r);
        if (!purged) {
            sql("FLUSH ENGINE LOGS");
            dm_sleep_ms(100);
        }
    }
    REQUIRE(purged);
    fixture_start(&f, error, sizeof(error));
    char state[32] = "";
    for (int i = 0; i < 1000 && strcmp(state, "failed"); i++) {
        dm_sleep_ms(10);
        dm_unit_get(&f.st, state, sizeof(state), error, sizeof(error));
    }
    CHECK_STR_EQ(state, "failed");
    CHECK_CONTAINS(error, "no longer has the binlog");
    CHECK_CONTAINS(error, "on_purged: snapshot");
    fixture_stop(&f);
    /* on_purged: snapshot starts over with a snapshot: the table is whole again */
    f.conf.on_purged = DM_MY_PURGED_SNAPSHOT;
    int64_t before = topic_size(&f, "purged", 1);
    CHECK_STR_EQ(fixture_start(&f, error, sizeof(error)), "running");
    REQUIRE(wait_records(&f, "purged", 1, before + 3, 15000)); /* r events of ids 1, 2, 3 */
    json_t *evs = read_topic(&f, "purged", 1);
    json_t *final = json_array_get(evs, json_array_size(evs) - 1);
    CHECK_STR_EQ(op(final), "r");
    CHECK_STR_EQ(field(final, "after", "id"), "3");
    json_decref(evs);
    fixture_close(&f);
}

/* A writer changing the table while it is snapshotted. */
static void *writer_main(void *arg)
{
    int *rounds = arg;
    MYSQL *w = mysql_init(NULL);
    if (!mysql_real_connect(w, getenv("DM_MARIADB_HOST"), getenv("DM_MARIADB_USER"),
                            getenv("DM_MARIADB_PASSWORD"), NULL,
                            (unsigned)atoi(getenv("DM_MARIADB_PORT")), NULL, 0))
        return NULL;
    char q[200];
    for (int i = 0; i < *rounds; i++) {
        int id = (i * 7919) % 5000;
        snprintf(q, sizeof(q), "UPDATE shop.snap SET n = n + 1, s = 'w%d' WHERE id = %d", i, id);
        mysql_query(w, q);
        if (i % 5 == 0) {
            snprintf(q, sizeof(q), "DELETE FROM shop.snap WHERE id = %d", (id + 13) % 5000);
            mysql_query(w, q);
        }
        if (i % 3 == 0) {
            snprintf(q, sizeof(q), "INSERT INTO shop.snap VALUES (%d, %d, 'new')", 5000 + i, i);
            mysql_query(w, q);
        }
        dm_sleep_ms(2);
    }
    mysql_close(w);
    return NULL;
}

static int snapshots_pending(fixture_t *f)
{
    json_t *st = dm_my_source_status(f->src);
    int n = (int)json_array_size(json_object_get(st, "snapshots"));
    json_decref(st);
    return n;
}

/* The initial snapshot (DBLog: chunks between watermarks, no locks) of a
 * table written to meanwhile, stopped and resumed halfway: the topic folds to
 * exactly the table. Then a snapshot on demand of a key range. */
static void test_snapshot_concurrent(void)
{
    sql("CREATE TABLE shop.snap (id INT PRIMARY KEY, n INT, s VARCHAR(20))");
    sql("INSERT INTO shop.snap SELECT seq, seq, 'init' FROM shop.seq_0_to_4999");
    fixture_t f;
    fixture_open(&f, "snap", 1,
                 "{\"tables\": [\"shop.snap\"], \"snapshot\": \"initial\", \"chunk_size\": 400}");
    char error[512];
    CHECK_STR_EQ(fixture_start(&f, error, sizeof(error)), "running");
    int rounds = 600;
    pthread_t w;
    pthread_create(&w, NULL, writer_main, &rounds);
    REQUIRE(wait_records(&f, "snap", 1, 1500, 20000));
    fixture_stop(&f); /* halfway: resumes from the last chunk committed */
    CHECK_STR_EQ(fixture_start(&f, error, sizeof(error)), "running");
    pthread_join(w, NULL);
    for (int i = 0; i < 3000 && snapshots_pending(&f); i++)
        dm_sleep_ms(10);
    CHECK_EQ_INT(snapshots_pending(&f), 0);
    sql("INSERT INTO shop.snap VALUES (99999, 0, 'last')");
    dm_sleep_ms(100);
    json_t *evs = NULL;
    json_t *state = json_object();
    for (int tries = 0; tries < 100; tries++) { /* until the last insert is in */
        json_decref(evs);
        evs = read_topic(&f, "snap", 1);
        json_t *last = json_array_get(evs, json_array_size(evs) - 1);
        if (last && !strcmp(field(last, "after", "id"), "99999")) break;
        dm_sleep_ms(100);
    }
    size_t i;
    json_t *e;
    int reads = 0;
    json_array_foreach(evs, i, e)
    {
        const char *o = op(e);
        if (!strcmp(o, "r")) reads++;
        const char *k = field(e, strcmp(o, "d") ? "after" : "before", "id");
        if (!strcmp(o, "d"))
            json_object_del(state, k);
        else {
            char v[100];
            snprintf(v, sizeof(v), "%s/%s", field(e, "after", "n"), field(e, "after", "s"));
            json_object_set_new(state, k, json_string(v));
        }
    }
    CHECK(reads >= 4000);
    /* the table as it is */
    mysql_query(db, "SELECT id, n, s FROM shop.snap");
    MYSQL_RES *r = mysql_store_result(db);
    MYSQL_ROW row;
    int rows = 0, wrong = 0;
    while ((row = mysql_fetch_row(r))) {
        rows++;
        char v[100];
        snprintf(v, sizeof(v), "%s/\"%s\"", row[1], row[2]);
        const char *got = json_string_value(json_object_get(state, row[0]));
        if (!got || strcmp(got, v)) {
            if (wrong++ < 5) printf("    id %s: table %s, topic %s\n", row[0], v, got ? got : "-");
        }
    }
    mysql_free_result(r);
    CHECK_EQ_INT(wrong, 0);
    CHECK_EQ_INT(json_object_size(state), rows);
    json_decref(evs);
    json_decref(state);
    /* on demand: ids 10..19 */
    int64_t before = topic_size(&f, "snap", 1);
    dm_error_t err = {0};
    CHECK_EQ_INT(dm_my_source_request_snapshot(f.src, "shop.snap", "10", "19", &err), DM_OK);
    CHECK_EQ_INT(dm_my_source_request_snapshot(f.src, "shop.other", NULL, NULL, &err),
                 DM_ERR_NOT_FOUND);
    REQUIRE(wait_records(&f, "snap", 1, before + 8, 15000)); /* 10..19 less those deleted */
    fixture_close(&f);
}

/* A row that does not fit its table's schema (here: written by a session with
 * binlog_row_image = MINIMAL, so its images lack columns) goes to the
 * source's dead letters with the table, the binlog position and the reason,
 * in the batch's transaction; the source goes on with the next rows. */
static void test_dead_letters(void)
{
    sql("CREATE TABLE shop.bad (id INT PRIMARY KEY, a VARCHAR(10), n INT)");
    fixture_t f;
    fixture_open(&f, "bad", 2, "{\"tables\": [\"shop.bad\"]}");
    f.env.dead_letter_topic = "source.bad.dlq";
    dm_error_t err = {0};
    CHECK_EQ_INT(ensure_topic(&f, "source.bad.dlq", 1, NULL, &err), DM_OK);
    dm_my_source_free(f.src);
    CHECK_EQ_INT(dm_my_source_new(&f.env, &f.conf, &f.src, &err), DM_OK);
    char error[512];
    CHECK_STR_EQ(fixture_start(&f, error, sizeof(error)), "running");
    sql("INSERT INTO shop.bad VALUES (1, 'one', 1), (2, 'two', 2)");
    sql("SET SESSION binlog_row_image = 'MINIMAL'");
    sql("UPDATE shop.bad SET n = 10 WHERE id = 1");
    sql("SET SESSION binlog_row_image = 'FULL'");
    sql("UPDATE shop.bad SET n = 20 WHERE id = 2");
    sql("DELETE FROM shop.bad WHERE id = 1");
    REQUIRE(wait_records(&f, "bad", 2, 4, 15000));
    REQUIRE(wait_records(&f, "source.bad.dlq", 1, 1, 15000));
    char state[32];
    dm_unit_get(&f.st, state, sizeof(state), error, sizeof(error));
    CHECK_STR_EQ(state, "running");
    json_t *evs = read_topic(&f, "bad", 2);
    CHECK_EQ_INT((int)json_array_size(evs), 4); /* 2 creates, the FULL update, the delete */
    int updates = 0;
    for (size_t i = 0; i < json_array_size(evs); i++)
        if (!strcmp(op(json_array_get(evs, i)), "u")) {
            updates++;
            CHECK_STR_EQ(field(json_array_get(evs, i), "after", "n"), "20");
        }
    CHECK_EQ_INT(updates, 1);
    json_decref(evs);
    CHECK_EQ_INT((int)topic_size(&f, "source.bad.dlq", 1), 1);
    dm_transport_batch_t b = {0};
    REQUIRE(dm_transport_fetch(f.t, "source.bad.dlq", 0, 0, 1 << 20, 0, &b, NULL) == DM_OK);
    REQUIRE(b.n == 1);
    char reason[700] = "", where[700] = "";
    for (size_t h = 0; h < b.records[0].n_headers; h++) {
        const dm_record_header_t *x = &b.records[0].headers[h];
        char *out = !strncmp(x->key, "dm.error.reason", x->key_len)      ? reason
                    : !strncmp(x->key, "dm.source.position", x->key_len) ? where
                                                                         : NULL;
        if (out) snprintf(out, 700, "%.*s", (int)x->value_len, (const char *)x->value);
    }
    CHECK_CONTAINS(reason, "binlog_row_image");
    CHECK_CONTAINS(reason, "lacks");
    CHECK_CONTAINS(where, "shop.bad@");
    CHECK_CONTAINS(where, "file=");
    CHECK(b.records[0].value_len > 0); /* the row's raw binlog bytes */
    dm_transport_batch_free(f.t, &b);
    json_t *st = dm_my_source_status(f.src);
    CHECK_EQ_INT((int)json_integer_value(json_object_get(st, "dead_letters")), 1);
    json_decref(st);
    fixture_close(&f);
}

int main(void)
{
    snprintf(dir, sizeof(dir), "/tmp/dm_my_cdc.XXXXXX");
    if (!mkdtemp(dir)) return 1;
    db_connect();
    RUN(test_refuses_missing_settings);
    RUN(test_refuses_missing_privileges);
    RUN(test_types);
    RUN(test_ddl_mid_stream);
    RUN(test_dead_letters);
    RUN(test_resume_exactly_once);
    RUN(test_large_transaction);
    RUN(test_partitions);
    RUN(test_snapshot_concurrent);
    RUN(test_dead_server);
    RUN(test_purged_position);
    mysql_close(db);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd)) return 1;
    return check_summary();
}
