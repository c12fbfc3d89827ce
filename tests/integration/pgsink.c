/* needs:postgres — the postgres sink against a real PostgreSQL: column types
 * from Avro, upserts by key, deletes (tombstones and change events), table
 * evolution, dead letters for rows the server refuses, retrying while the
 * destination is unreachable, and SIGKILL during writes with no loss and no
 * duplicate (exactly once through the offsets table). */
#include <libpq-fe.h>
#include <signal.h>
#include <sys/wait.h>

#include "check.h"
#include "connectors/pgsink/pgsink.h"
#include "engine/task.h"
#include "sink_util.h"

static const char *dsn;
static PGconn *db;
static char *dir;
static dm_transport_t *t;
static su_schemas_t schemas;

static const char *ROW =
    "{\"type\":\"record\",\"name\":\"Row\",\"namespace\":\"t\",\"fields\":["
    "{\"name\":\"id\",\"type\":\"long\"},{\"name\":\"name\",\"type\":\"string\"},"
    "{\"name\":\"amount\",\"type\":\"double\"},{\"name\":\"ok\",\"type\":\"boolean\"},"
    "{\"name\":\"day\",\"type\":{\"type\":\"int\",\"logicalType\":\"date\"}},"
    "{\"name\":\"ts\",\"type\":{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}},"
    "{\"name\":\"price\",\"type\":{\"type\":\"bytes\",\"logicalType\":\"decimal\",\"precision\":10,"
    "\"scale\":2}},"
    "{\"name\":\"tags\",\"type\":{\"type\":\"array\",\"items\":\"string\"}},"
    "{\"name\":\"note\",\"type\":[\"null\",\"string\"],\"default\":null},"
    "{\"name\":\"kind\",\"type\":{\"type\":\"enum\",\"name\":\"Kind\",\"symbols\":[\"A\",\"B\"]}}]"
    "}";
static const char *ROW_V2 =
    "{\"type\":\"record\",\"name\":\"Row\",\"namespace\":\"t\",\"fields\":["
    "{\"name\":\"id\",\"type\":\"long\"},{\"name\":\"name\",\"type\":\"string\"},"
    "{\"name\":\"amount\",\"type\":\"double\"},{\"name\":\"ok\",\"type\":\"boolean\"},"
    "{\"name\":\"day\",\"type\":{\"type\":\"int\",\"logicalType\":\"date\"}},"
    "{\"name\":\"ts\",\"type\":{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}},"
    "{\"name\":\"price\",\"type\":{\"type\":\"bytes\",\"logicalType\":\"decimal\",\"precision\":10,"
    "\"scale\":2}},"
    "{\"name\":\"tags\",\"type\":{\"type\":\"array\",\"items\":\"string\"}},"
    "{\"name\":\"note\",\"type\":[\"null\",\"string\"],\"default\":null},"
    "{\"name\":\"kind\",\"type\":{\"type\":\"enum\",\"name\":\"Kind\",\"symbols\":[\"A\",\"B\"]}},"
    "{\"name\":\"extra\",\"type\":[\"null\",\"long\"],\"default\":null}]}";
static const char *KEY = "{\"type\":\"record\",\"name\":\"RowKey\",\"namespace\":\"t\",\"fields\":["
                         "{\"name\":\"id\",\"type\":\"long\"}]}";
static const char *ENVELOPE =
    "{\"type\":\"record\",\"name\":\"Envelope\",\"namespace\":\"cdc\",\"fields\":["
    "{\"name\":\"before\",\"type\":[\"null\",{\"type\":\"record\",\"name\":\"Item\",\"fields\":["
    "{\"name\":\"sku\",\"type\":\"string\"},{\"name\":\"qty\",\"type\":\"int\"}]}],\"default\":"
    "null},"
    "{\"name\":\"after\",\"type\":[\"null\",\"Item\"],\"default\":null},"
    "{\"name\":\"op\",\"type\":\"string\"},{\"name\":\"ts_ms\",\"type\":\"long\"}]}";
static const char *SEQ =
    "{\"type\":\"record\",\"name\":\"Seq\",\"fields\":["
    "{\"name\":\"seq\",\"type\":\"long\"},{\"name\":\"pad\",\"type\":\"string\"}]}";

static dm_avro_schema_t *row, *row2, *key, *env_s, *seq;
static dm_strlist_t id_key = {(char *[]){"id"}, 1};

static char *query1(const char *sql)
{
    static char out[4096];
    PGresult *r = PQexec(db, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) < 1) {
        snprintf(out, sizeof(out), "<%s>", PQresultErrorMessage(r));
    } else {
        out[0] = '\0';
        for (int c = 0; c < PQnfields(r); c++)
            snprintf(out + strlen(out), sizeof(out) - strlen(out), "%s%s", c ? "|" : "",
                     PQgetisnull(r, 0, c) ? "NULL" : PQgetvalue(r, 0, c));
    }
    PQclear(r);
    return out;
}

static void topic(const char *name, int32_t parts)
{
    dm_error_t err = {0};
    dm_transport_create_topic(t, &(dm_topic_config_t){.name = name, .partitions = parts}, &err);
}

static dm_pgsink_config_t *config(const char *table, const char *extra_key, const char *extra_val)
{
    dm_pgsink_config_t *c = calloc(1, sizeof(*c));
    dm_error_t err = {0};
    dm_config_defaults(&dm_pgsink_config_table, c, &err);
    dm_config_set_text(&dm_pgsink_config_table, c, "dsn", dsn, &err);
    dm_config_set_text(&dm_pgsink_config_table, c, "table", table, &err);
    dm_config_set_text(&dm_pgsink_config_table, c, "linger", "20ms", &err);
    if (extra_key) dm_config_set_text(&dm_pgsink_config_table, c, extra_key, extra_val, &err);
    return c;
}

static void runner(su_runner_t *r, const dm_pgsink_config_t *c, const char *topic_name,
                   const char *group, const dm_avro_schema_t *vs, uint32_t vid,
                   const dm_strlist_t *keys)
{
    memset(r, 0, sizeof(*r));
    r->c = (dm_sink_run_config_t){.transport = t,
                                  .ops = &dm_pgsink_ops,
                                  .conf = c,
                                  .dead_letter_topic = "dlq",
                                  .env = {.name = group,
                                          .topic = topic_name,
                                          .partitions = 1,
                                          .group = group,
                                          .value_schema = vs,
                                          .value_schema_id = vid,
                                          .key_fields = keys,
                                          .schema_by_id = su_lookup,
                                          .schema_ctx = &schemas}};
}

static void free_config(dm_pgsink_config_t *c)
{
    dm_config_free(&dm_pgsink_config_table, c);
    free(c);
}

static void row_json(char *out, size_t cap, int id, const char *name)
{
    snprintf(out, cap,
             "{\"id\":%d,\"name\":\"%s\",\"amount\":%d.5,\"ok\":true,\"day\":\"2024-02-29\","
             "\"ts\":\"2024-02-29T12:34:56.789Z\",\"price\":\"12.34\",\"tags\":[\"a\",\"b\"],"
             "\"note\":null,\"kind\":\"B\"}",
             id, name, id);
}

static void produce_row(int id, const char *name)
{
    char v[600], k[64];
    row_json(v, sizeof(v), id, name);
    snprintf(k, sizeof(k), "{\"id\":%d}", id);
    su_produce(t, "rows", 0, key, 2, k, row, 1, v);
}

static void test_types_and_upserts(void)
{
    topic("rows", 1);
    topic("dlq", 1);
    produce_row(1, "first");
    produce_row(2, "second");
    produce_row(1, "first again"); /* same batch: the later one wins */
    dm_pgsink_config_t *c = config("public.rows", NULL, NULL);
    su_runner_t r;
    runner(&r, c, "rows", "sink.rows", row, 1, &id_key);
    su_start(&r);
    CHECK(su_wait_position(&r, 3, 20000));
    CHECK_STR_EQ(
        query1("SELECT id, name, amount, ok, day, ts AT TIME ZONE 'UTC', price, tags, "
               "note, kind FROM rows WHERE id = 1"),
        "1|first again|1.5|t|2024-02-29|2024-02-29 12:34:56.789|12.34|[\"a\", \"b\"]|NULL|B");
    CHECK_STR_EQ(query1("SELECT count(*) FROM rows"), "2");
    CHECK_STR_EQ(
        query1("SELECT string_agg(column_name || ':' || data_type, ',' ORDER BY "
               "ordinal_position) FROM information_schema.columns WHERE table_name = "
               "'rows'"),
        "id:bigint,name:text,amount:double precision,ok:boolean,day:date,ts:timestamp with "
        "time zone,price:numeric,tags:jsonb,note:text,kind:text");
    CHECK_STR_EQ(
        query1("SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = "
               "i.indrelid AND a.attnum = ANY(i.indkey) WHERE i.indrelid = 'rows'::regclass "
               "AND i.indisprimary"),
        "id");
    /* next batches: an update and a tombstone */
    produce_row(2, "second, updated");
    su_produce(t, "rows", 0, key, 2, "{\"id\":1}", NULL, 0, NULL);
    CHECK(su_wait_position(&r, 5, 20000));
    CHECK_STR_EQ(query1("SELECT string_agg(id || '=' || name, ',' ORDER BY id) FROM rows"),
                 "2=second, updated");
    CHECK_STR_EQ(query1("SELECT next_offset FROM datamesh_sink_offsets WHERE sink = 'sink.rows'"),
                 "5");
    su_stop(&r);
    free_config(c);
}

static void test_evolution_adds_columns(void)
{
    char v[700];
    snprintf(v, sizeof(v),
             "{\"id\":7,\"name\":\"v2\",\"amount\":1,\"ok\":false,\"day\":\"2024-01-01\","
             "\"ts\":\"2024-01-01T00:00:00Z\",\"price\":\"0.01\",\"tags\":[],\"note\":\"n\","
             "\"kind\":\"A\",\"extra\":42}");
    su_produce(t, "rows", 0, key, 2, "{\"id\":7}", row2, 3, v);
    dm_pgsink_config_t *c = config("public.rows", NULL, NULL);
    su_runner_t r;
    runner(&r, c, "rows", "sink.rows", row, 1, &id_key);
    su_start(&r);
    CHECK(su_wait_position(&r, 1, 20000)); /* resumes after the 5 written before */
    CHECK_STR_EQ(query1("SELECT id, extra, note FROM rows WHERE id = 7"), "7|42|n");
    CHECK_STR_EQ(query1("SELECT id, extra FROM rows WHERE id = 2"), "2|NULL");
    su_stop(&r);
    free_config(c);
}

static void test_change_events(void)
{
    topic("cdc", 1);
    const char *evs[] = {
        "{\"before\":null,\"after\":{\"sku\":\"a\",\"qty\":1},\"op\":\"c\",\"ts_ms\":1}",
        "{\"before\":null,\"after\":{\"sku\":\"b\",\"qty\":2},\"op\":\"r\",\"ts_ms\":2}",
        "{\"before\":{\"sku\":\"a\",\"qty\":1},\"after\":{\"sku\":\"a\",\"qty\":5},\"op\":\"u\","
        "\"ts_ms\":3}",
        "{\"before\":{\"sku\":\"b\",\"qty\":2},\"after\":null,\"op\":\"d\",\"ts_ms\":4}",
    };
    for (int i = 0; i < 4; i++)
        su_produce(t, "cdc", 0, NULL, 0, NULL, env_s, 4, evs[i]);
    dm_pgsink_config_t *c = config("items", "key", "sku");
    su_runner_t r;
    runner(&r, c, "cdc", "sink.cdc", env_s, 4, NULL);
    su_start(&r);
    CHECK(su_wait_position(&r, 4, 20000));
    CHECK_STR_EQ(query1("SELECT string_agg(sku || '=' || qty, ',' ORDER BY sku) FROM items"),
                 "a=5");
    /* a delete in a later batch of its own */
    su_produce(t, "cdc", 0, NULL, 0, NULL, env_s, 4,
               "{\"before\":{\"sku\":\"a\",\"qty\":5},\"after\":null,\"op\":\"d\",\"ts_ms\":5}");
    CHECK(su_wait_position(&r, 5, 20000));
    CHECK_STR_EQ(query1("SELECT count(*) FROM items"), "0");
    su_stop(&r);
    free_config(c);
}

static void test_refused_rows_become_dead_letters(void)
{
    /* 40 rows from offset 6 on; ids 13 and 41 hold a NUL, which text cannot */
    for (int id = 10; id < 50; id++) {
        if (id != 13 && id != 41) {
            produce_row(id, "fine");
            continue;
        }
        char v[600], k[64];
        row_json(v, sizeof(v), id, "nul \\u0000 inside");
        snprintf(k, sizeof(k), "{\"id\":%d}", id);
        su_produce(t, "rows", 0, key, 2, k, row, 1, v);
    }
    dm_pgsink_config_t *c = config("public.rows", NULL, NULL);
    su_runner_t r;
    runner(&r, c, "rows", "sink.rows", row, 1, &id_key);
    su_start(&r);
    CHECK(su_wait_position(&r, 40, 20000));
    CHECK_STR_EQ(query1("SELECT count(*), bool_and(id NOT IN (13, 41)) FROM rows WHERE id >= 10"),
                 "38|t");
    su_stop(&r);
    dm_transport_batch_t b = {0};
    dm_error_t err = {0};
    CHECK(!dm_transport_fetch(t, "dlq", 0, 0, 1 << 20, 1000, &b, &err));
    CHECK_EQ_INT(b.n, 2);
    const char *offsets[2] = {"9", "37"};
    for (size_t i = 0; i < b.n && i < 2; i++) {
        bool reason = false, where = false;
        for (uint32_t h = 0; h < b.records[i].n_headers; h++) {
            const dm_record_header_t *hd = &b.records[i].headers[h];
            char val[400];
            snprintf(val, sizeof(val), "%.*s", hd->value_len, (const char *)hd->value);
            if (!strncmp(hd->key, DM_DLQ_REASON, hd->key_len))
                reason = strstr(val, "0x00") || strstr(val, "invalid byte");
            if (!strncmp(hd->key, DM_DLQ_OFFSET, hd->key_len)) where = !strcmp(val, offsets[i]);
        }
        CHECK(reason);
        CHECK(where);
    }
    dm_transport_batch_free(t, &b);
    free_config(c);
}

/* A topic holding two versions of the source (v2 adds "extra" with a
 * default) interleaved, through the type the registry names: every row
 * lands, the table gains the column, v2 rows fill it and v1 rows leave it
 * NULL; a v2 row the server refuses (a NUL in text) is a dead letter with
 * the server's words while the rest land. */
static void test_two_schema_versions_and_a_dead_letter(void)
{
    topic("vers", 1);
    topic("vers.dlq", 1);
    char v[700], k[64];
    for (int id = 100; id < 113; id++) {
        snprintf(k, sizeof(k), "{\"id\":%d}", id);
        if (id < 105 || id > 110) {
            row_json(v, sizeof(v), id, "v1");
            su_produce(t, "vers", 0, key, 2, k, row, 1, v);
            continue;
        }
        snprintf(v, sizeof(v),
                 "{\"id\":%d,\"name\":\"%s\",\"amount\":1,\"ok\":false,\"day\":\"2024-01-01\","
                 "\"ts\":\"2024-01-01T00:00:00Z\",\"price\":\"0.01\",\"tags\":[],\"note\":null,"
                 "\"kind\":\"A\",\"extra\":%d}",
                 id, id == 108 ? "nul \\u0000 inside" : "v2", id * 2);
        su_produce(t, "vers", 0, key, 2, k, row2, 3, v);
    }
    dm_pgsink_config_t *c = config("public.vers", NULL, NULL);
    su_runner_t r;
    runner(&r, c, "vers", "sink.vers", row, 1, &id_key);
    r.c.ops = dm_sink_ops_find("postgres");
    r.c.dead_letter_topic = "vers.dlq";
    su_start(&r);
    CHECK(su_wait_position(&r, 13, 20000));
    su_stop(&r);
    CHECK_STR_EQ(query1("SELECT count(*), count(extra), sum(extra) FROM vers"), "12|5|1074");
    CHECK_STR_EQ(query1("SELECT string_agg(name, ',' ORDER BY id) FROM vers WHERE extra IS NULL"),
                 "v1,v1,v1,v1,v1,v1,v1");
    CHECK_STR_EQ(query1("SELECT count(*) FROM vers WHERE id = 108"), "0");
    dm_transport_batch_t b = {0};
    dm_error_t err = {0};
    CHECK(!dm_transport_fetch(t, "vers.dlq", 0, 0, 1 << 20, 1000, &b, &err));
    CHECK_EQ_INT(b.n, 1);
    for (size_t i = 0; i < b.n; i++) {
        bool reason = false, where = false;
        for (uint32_t h = 0; h < b.records[i].n_headers; h++) {
            const dm_record_header_t *hd = &b.records[i].headers[h];
            char val[400];
            snprintf(val, sizeof(val), "%.*s", hd->value_len, (const char *)hd->value);
            if (!strncmp(hd->key, DM_DLQ_REASON, hd->key_len))
                reason = strstr(val, "0x00") || strstr(val, "invalid byte");
            if (!strncmp(hd->key, DM_DLQ_OFFSET, hd->key_len)) where = !strcmp(val, "8");
        }
        CHECK(reason);
        CHECK(where);
    }
    dm_transport_batch_free(t, &b);
    free_config(c);
}

static const char *PLAIN =
    "{\"type\":\"record\",\"name\":\"Plain\",\"fields\":[{\"name\":\"id\",\"type\":\"long\"},"
    "{\"name\":\"ts\",\"type\":{\"type\":\"long\",\"logicalType\":\"timestamp-micros\"}},"
    "{\"name\":\"day\",\"type\":{\"type\":\"int\",\"logicalType\":\"date\"}},"
    "{\"name\":\"at\",\"type\":{\"type\":\"int\",\"logicalType\":\"time-millis\"}},"
    "{\"name\":\"f\",\"type\":\"float\"},{\"name\":\"d\",\"type\":\"double\"},"
    "{\"name\":\"ok\",\"type\":\"boolean\"},{\"name\":\"n\",\"type\":\"int\"},"
    "{\"name\":\"tags\",\"type\":{\"type\":\"map\",\"values\":\"long\"}},"
    "{\"name\":\"e\",\"type\":{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"X\",\"Y\"]}},"
    "{\"name\":\"raw\",\"type\":\"bytes\"},{\"name\":\"note\",\"type\":[\"null\",\"string\"]}]}";

/* A table without decimals or uuids goes by binary COPY: the same values. */
static void test_binary_copy_types(void)
{
    topic("plain", 1);
    dm_avro_schema_t *plain = su_schema(&schemas, 6, PLAIN);
    const char *rows[] = {
        "{\"id\":1,\"ts\":\"1999-12-31T23:59:59.123456Z\",\"day\":\"1969-07-20\",\"at\":"
        "\"12:34:56.789\",\"f\":1.5,\"d\":-2.25e-300,\"ok\":true,\"n\":-7,\"tags\":{\"a\":1},"
        "\"e\":\"Y\",\"raw\":\"\\u0001\\u00ff\",\"note\":\"tab\\there\"}",
        "{\"id\":2,\"ts\":\"2024-02-29T12:00:00Z\",\"day\":\"2024-02-29\",\"at\":\"00:00:00\","
        "\"f\":0,\"d\":1e308,\"ok\":false,\"n\":2147483647,\"tags\":{},\"e\":\"X\",\"raw\":\"\","
        "\"note\":null}",
        "{\"id\":3,\"ts\":\"2024-02-29T12:00:00Z\",\"day\":\"2024-02-29\",\"at\":\"00:00:00\","
        "\"f\":0,\"d\":0,\"ok\":false,\"n\":0,\"tags\":{},\"e\":\"X\",\"raw\":\"\","
        "\"note\":\"nul \\u0000\"}",
    };
    for (int i = 0; i < 3; i++)
        su_produce(t, "plain", 0, NULL, 0, NULL, plain, 6, rows[i]);
    dm_pgsink_config_t *c = config("plain", "key", "id");
    su_runner_t r;
    runner(&r, c, "plain", "sink.plain", plain, 6, NULL);
    su_start(&r);
    CHECK(su_wait_position(&r, 3, 20000));
    su_stop(&r);
    PQclear(PQexec(db, "SET TIME ZONE 'UTC'"));
    CHECK_STR_EQ(
        query1("SELECT ts, day, at, f, d, ok, n, tags, e, raw, note FROM plain WHERE id = 1"),
        "1999-12-31 23:59:59.123456+00|1969-07-20|12:34:56.789|1.5|-2.25e-300|t|-7|"
        "{\"a\": 1}|Y|\\x01ff|tab\there");
    CHECK_STR_EQ(query1("SELECT ts, d, n, note FROM plain WHERE id = 2"),
                 "2024-02-29 12:00:00+00|1e+308|2147483647|NULL");
    CHECK_STR_EQ(query1("SELECT count(*) FROM plain"), "2"); /* the NUL one is a dead letter */
    CHECK_STR_EQ(query1("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid "
                        "= 'plain'::regclass AND attname = 'at'"),
                 "time without time zone");
    free_config(c);
}

static void test_retries_until_the_destination_answers(void)
{
    topic("later", 1);
    for (int i = 0; i < 50; i++) {
        char v[600], k[64];
        row_json(v, sizeof(v), i, "x");
        snprintf(k, sizeof(k), "{\"id\":%d}", i);
        su_produce(t, "later", 0, key, 2, k, row, 1, v);
    }
    /* Unreachable: the status says so, in the destination's words, without the password. */
    setenv("DM_TEST_PGSINK_PW", "s3cret-pw", 1);
    char bad[300];
    snprintf(bad, sizeof(bad),
             "host=127.0.0.1 port=1 user=postgres dbname=postgres password=s3cret-pw");
    dm_pgsink_config_t *c = config("later", "password_env", "DM_TEST_PGSINK_PW");
    free(c->dsn);
    c->dsn = strdup(bad);
    su_runner_t r;
    runner(&r, c, "later", "sink.later", row, 1, &id_key);
    su_start(&r);
    char state[32] = "", error[512] = "";
    for (int i = 0; i < 200 && strcmp(state, "retrying"); i++) {
        dm_sleep_ms(20);
        dm_unit_get(&r.st, state, sizeof(state), error, sizeof(error));
    }
    CHECK_STR_EQ(state, "retrying");
    CHECK_CONTAINS(error, "connect");
    CHECK(!strstr(error, "s3cret-pw"));
    su_stop(&r);
    free_config(c);
    /* A missing password variable is retried too, until it is there. */
    c = config("later", "password_env", "DM_TEST_PGSINK_LATER");
    unsetenv("DM_TEST_PGSINK_LATER");
    state[0] = '\0';
    runner(&r, c, "later", "sink.later", row, 1, &id_key);
    su_start(&r);
    for (int i = 0; i < 200 && strcmp(state, "retrying"); i++) {
        dm_sleep_ms(20);
        dm_unit_get(&r.st, state, sizeof(state), error, sizeof(error));
    }
    CHECK_CONTAINS(error, "DM_TEST_PGSINK_LATER");
    setenv("DM_TEST_PGSINK_LATER", "any", 1); /* trust authentication ignores it */
    CHECK(su_wait_position(&r, 50, 30000));
    CHECK_STR_EQ(query1("SELECT count(*) FROM later"), "50");
    dm_unit_get(&r.st, state, sizeof(state), error, sizeof(error));
    CHECK_STR_EQ(state, "running");
    /* The server drops the sink's connection: it reconnects and goes on. */
    PQclear(PQexec(db, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                       "application_name = 'datamesh-sink'"));
    for (int i = 50; i < 80; i++) {
        char v[600], k[64];
        row_json(v, sizeof(v), i, "after the drop");
        snprintf(k, sizeof(k), "{\"id\":%d}", i);
        su_produce(t, "later", 0, key, 2, k, row, 1, v);
    }
    CHECK(su_wait_position(&r, 80, 30000));
    CHECK_STR_EQ(
        query1("SELECT count(*), count(*) FILTER (WHERE name = 'after the drop') FROM later"),
        "80|30");
    su_stop(&r);
    free_config(c);
}

/* ---- SIGKILL during writes ---------------------------------------------------------- */

#define KILL_RECORDS 150000
#define KILL_ROUNDS  20

static void child_run(void)
{
    dm_transport_t *ct;
    dm_error_t err = {0};
    char url[600];
    snprintf(url, sizeof(url), "embedded:%s", dir);
    if (dm_transport_open(url, &ct, &err)) _exit(3);
    t = ct;
    dm_pgsink_config_t *c = config("appended", "batch_records", "100");
    su_runner_t r;
    runner(&r, c, "seq", "sink.seq", seq, 5, NULL);
    su_start(&r);
    PGconn *mine = PQconnectdb(dsn); /* the parent's connection is not ours to use */
    for (int i = 0; i < 12000; i++) {
        PGresult *res = PQexec(mine, "SELECT count(*) FROM appended");
        int n = PQresultStatus(res) == PGRES_TUPLES_OK ? atoi(PQgetvalue(res, 0, 0)) : 0;
        PQclear(res);
        if (n >= KILL_RECORDS) _exit(0);
        dm_sleep_ms(10);
    }
    _exit(4);
}

static void test_sigkill_loses_nothing_duplicates_nothing(void)
{
    topic("seq", 1);
    dm_buf_t vb = DM_BUF_INIT;
    dm_record_t *recs = calloc(1000, sizeof(*recs));
    size_t *offs = calloc(1000, sizeof(size_t));
    for (int i = 0; i < KILL_RECORDS; i += 1000) {
        vb.len = 0;
        for (int j = 0; j < 1000; j++) {
            char v[200];
            snprintf(v, sizeof(v), "{\"seq\":%d,\"pad\":\"row %d of the kill test\"}", i + j,
                     i + j);
            offs[j] = vb.len;
            su_encode(seq, 5, v, &vb);
        }
        for (int j = 0; j < 1000; j++)
            recs[j] =
                (dm_record_t){.key_len = -1,
                              .value = vb.data + offs[j],
                              .value_len = (int32_t)((j < 999 ? offs[j + 1] : vb.len) - offs[j])};
        dm_error_t err = {0};
        REQUIRE(!dm_transport_produce(t, "seq", 0, recs, 1000, NULL, &err));
    }
    free(recs);
    free(offs);
    dm_buf_free(&vb);
    dm_transport_close(t); /* the children open the log themselves */
    t = NULL;
    srand(7);
    /* Kill until KILL_ROUNDS kills have landed while rows were being written
     * (how many rounds that takes depends on the machine's speed); a child
     * that finishes before its kill must have written everything. */
    int killed_mid = 0, last_n = 0, rounds = 0;
    while (killed_mid < KILL_ROUNDS && rounds < 4 * KILL_ROUNDS) {
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) child_run();
        int status;
        dm_sleep_ms(30 + (uint64_t)(rand() % 120));
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        rounds++;
        int n = atoi(query1("SELECT count(*) FROM appended"));
        if (!WIFSIGNALED(status)) {
            CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0 && n == KILL_RECORDS);
            break;
        }
        if (n > last_n && n < KILL_RECORDS) killed_mid++;
        last_n = n;
    }
    pid_t pid = fork(); /* the last run goes to the end */
    REQUIRE(pid >= 0);
    if (pid == 0) child_run();
    int status;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    printf("    %d of %d kills landed while rows were being written\n", killed_mid, rounds);
    CHECK(killed_mid >= KILL_ROUNDS / 2);
    char want[64];
    snprintf(want, sizeof(want), "%d|%d|0|%d", KILL_RECORDS, KILL_RECORDS, KILL_RECORDS - 1);
    CHECK_STR_EQ(query1("SELECT count(*), count(DISTINCT seq), min(seq), max(seq) FROM appended"),
                 want);
    char url[600];
    snprintf(url, sizeof(url), "embedded:%s", dir);
    dm_error_t err = {0};
    REQUIRE(!dm_transport_open(url, &t, &err));
}

int main(void)
{
    dsn = getenv("DM_PG_DSN");
    if (!dsn) {
        fprintf(stderr, "DM_PG_DSN is not set (run under tests/harness/with-postgres)\n");
        return 1;
    }
    db = PQconnectdb(dsn);
    if (PQstatus(db) != CONNECTION_OK) return 1;
    dir = su_tmpdir("dm-pgsink");
    char url[600];
    snprintf(url, sizeof(url), "embedded:%s", dir);
    dm_error_t err = {0};
    if (dm_transport_open(url, &t, &err)) return 1;
    row = su_schema(&schemas, 1, ROW);
    key = su_schema(&schemas, 2, KEY);
    row2 = su_schema(&schemas, 3, ROW_V2);
    env_s = su_schema(&schemas, 4, ENVELOPE);
    seq = su_schema(&schemas, 5, SEQ);
    RUN(test_types_and_upserts);
    RUN(test_evolution_adds_columns);
    RUN(test_change_events);
    RUN(test_refused_rows_become_dead_letters);
    RUN(test_two_schema_versions_and_a_dead_letter);
    RUN(test_binary_copy_types);
    RUN(test_retries_until_the_destination_answers);
    RUN(test_sigkill_loses_nothing_duplicates_nothing);
    if (t) dm_transport_close(t);
    su_schemas_free(&schemas);
    PQfinish(db);
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd)) {
    }
    free(dir);
    return check_summary();
}
