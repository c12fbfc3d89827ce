/* tests/unit/test_sql.c — the SQL compiler: queries into steps, and the
 * errors it gives (line:col, caret, did-you-mean, both types). */
#include <string.h>

#include "check.h"
#include "sql/sql.h"

/* ---- a catalog of test sources ---------------------------------------------------------- */

static const char *const schemas[][3] = {
    {"plays",
     "{\"type\":\"record\",\"name\":\"Play\",\"fields\":[{\"name\":\"id\",\"type\":\"long\"},"
     "{\"name\":\"movie_id\",\"type\":\"long\"},{\"name\":\"country\",\"type\":\"string\"},"
     "{\"name\":\"amount\",\"type\":\"long\"},{\"name\":\"user\",\"type\":[\"null\",\"string\"]},"
     "{\"name\":\"ts\",\"type\":{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}}]}",
     "[\"id\"]"},
    {"plays_eu",
     "{\"type\":\"record\",\"name\":\"PlayEu\",\"fields\":[{\"name\":\"ts\",\"type\":{\"type\":"
     "\"long\",\"logicalType\":\"timestamp-millis\"}},{\"name\":\"amount\",\"type\":\"long\"},"
     "{\"name\":\"country\",\"type\":\"string\"},{\"name\":\"movie_id\",\"type\":\"long\"},"
     "{\"name\":\"id\",\"type\":\"long\"}]}",
     "[\"id\"]"},
    {"movies",
     "{\"type\":\"record\",\"name\":\"Movie\",\"fields\":[{\"name\":\"movie_id\",\"type\":\"long\"}"
     ","
     "{\"name\":\"title\",\"type\":\"string\"},{\"name\":\"country\",\"type\":\"string\"}]}",
     "[\"movie_id\"]"},
    {"payments",
     "{\"type\":\"record\",\"name\":\"Payment\",\"fields\":[{\"name\":\"id\",\"type\":\"long\"},"
     "{\"name\":\"paid\",\"type\":\"double\"},{\"name\":\"ts\",\"type\":{\"type\":\"long\","
     "\"logicalType\":\"timestamp-millis\"}}]}",
     "[]"},
    {"orders_cdc",
     "{\"type\":\"record\",\"name\":\"Envelope\",\"fields\":[{\"name\":\"before\",\"type\":["
     "\"null\","
     "{\"type\":\"record\",\"name\":\"Row\",\"fields\":[{\"name\":\"id\",\"type\":\"long\"},{"
     "\"name\":"
     "\"total\",\"type\":\"double\"},{\"name\":\"status\",\"type\":\"string\"}]}]},{\"name\":"
     "\"after\","
     "\"type\":[\"null\",\"Row\"]},{\"name\":\"op\",\"type\":\"string\"},{\"name\":\"ts_ms\","
     "\"type\":"
     "\"long\"}]}",
     "[\"id\"]"},
};
#define N_SCHEMAS (sizeof(schemas) / sizeof(schemas[0]))

static dm_avro_schema_t *parsed[N_SCHEMAS];
static json_t *keys[N_SCHEMAS];

static dm_err_t lookup(void *ctx, const char *name, const dm_avro_node_t **schema,
                       const json_t **key, dm_error_t *err)
{
    (void)ctx;
    for (size_t i = 0; i < N_SCHEMAS; i++)
        if (!strcmp(schemas[i][0], name)) {
            if (!parsed[i]) {
                dm_avro_schema_parse(schemas[i][1], strlen(schemas[i][1]), &parsed[i], NULL);
                keys[i] = json_loads(schemas[i][2], 0, NULL);
            }
            *schema = parsed[i]->root;
            *key = keys[i];
            return DM_OK;
        }
    return dm_error_set(err, DM_ERR_NOT_FOUND, "no source '%s'", name);
}

static const dm_sql_catalog_t cat = {lookup, NULL};

/* Compiles q and compares the steps (compact JSON) with want; on an error,
 * compares the message's first line with want. */
static int same(const char *q, const char *want)
{
    json_t *out = NULL;
    dm_error_t err = {0};
    char *got;
    bool error = false;
    if (dm_sql_compile(q, &cat, false, NULL, &out, &err)) {
        got = strdup(err.message);
        error = true;
    } else {
        got = json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(out);
    }
    int ok = error ? !strncmp(got, want, strlen(want)) : !strcmp(got, want);
    if (!ok) printf("    got:  %s\n    want: %s\n", got, want);
    free(got);
    return ok;
}

static void test_filter_project(void)
{
    CHECK(
        same("SELECT id, amount * 100 AS cents FROM plays WHERE country = 'US' AND amount > 0",
             "{\"from\":[\"plays\"],\"steps\":[{\"filter\":\"(country = 'US') AND (amount > 0)\"},"
             "{\"project\":[\"id AS id\",\"(amount * 100) AS cents\"]}]}"));
    CHECK(same("select * from plays", "{\"from\":[\"plays\"],\"steps\":[]}"));
    CHECK(same("SELECT p.* FROM plays AS p WHERE p.user IS NOT NULL",
               "{\"from\":[\"plays\"],\"steps\":[{\"filter\":\"user IS NOT NULL\"}]}"));
}

static void test_errors(void)
{
    CHECK(same("SELECT id\nFROM plays\nWHERE amout > 0",
               "SQL line 3, column 7: no column 'amout' in plays; did you mean 'amount'?"));
    CHECK(same("SELECT id FROM plays WHERE country > 3",
               "SQL line 1, column 36: cannot compare country (string) with 3 (long)"));
    CHECK(same("SELECT id FROM plays ORDER BY ts",
               "SQL line 1, column 22: ORDER BY on a stream would wait for its end"));
}

static void test_joins(void)
{
    /* lookup join: LEFT keeps unmatched rows; the stream's own conditions run first */
    CHECK(same("SELECT p.id, m.title FROM plays AS p LEFT JOIN movies AS m "
               "FOR SYSTEM_TIME AS OF p.ts ON p.movie_id = m.movie_id "
               "WHERE p.country = 'US' AND m.title <> 'x'",
               "{\"from\":[\"plays\"],\"steps\":[{\"filter\":\"country = 'US'\"},{\"enrich\":"
               "{\"fields\":[\"title\"],\"on\":\"movie_id\",\"with\":\"movies\"}},{\"filter\":"
               "\"title <> 'x'\"},{\"project\":[\"id AS id\",\"title AS title\"]}]}"));
    /* inner: only matched rows; a clashing name gets the alias as prefix */
    CHECK(same("SELECT p.id, m.country AS made_in FROM plays p JOIN movies m ON p.movie_id = "
               "m.movie_id",
               "{\"from\":[\"plays\"],\"steps\":[{\"enrich\":{\"fields\":[\"country AS "
               "m_country\",\"movie_id AS m_movie_id\"],\"on\":\"movie_id\",\"with\":\"movies\"}},"
               "{\"filter\":\"m_movie_id IS NOT NULL\"},{\"project\":[\"id AS id\",\"m_country AS "
               "made_in\"]}]}"));
    /* interval join */
    CHECK(same("SELECT p.id, y.paid FROM plays p JOIN payments y ON p.id = y.id AND y.ts "
               "BETWEEN p.ts - INTERVAL '5' SECOND AND p.ts",
               "{\"from\":[\"plays\"],\"steps\":[{\"join\":{\"on\":\"id\",\"time\":\"ts\","
               "\"with\":\"payments\",\"within\":5000}},{\"filter\":\"payments_ts BETWEEN (ts + "
               "-5000) AND (ts + 0)\"},{\"project\":[\"id AS id\",\"paid AS paid\"]}]}"));
    /* a regular join of streams is refused with a hint */
    CHECK(same("SELECT * FROM plays p JOIN payments y ON p.id = y.id",
               "SQL line 1, column 28: payments is not keyed, so this is a regular join"));
    CHECK(same("SELECT * FROM plays p JOIN movies m ON p.country = m.country",
               "SQL line 1, column 52: movies is keyed by movie_id, and a lookup join equates "
               "that key (found country)"));
}

static void test_windows(void)
{
    CHECK(same("SELECT window_start, window_end, country, COUNT(*) AS plays, SUM(amount) AS "
               "total FROM TABLE(TUMBLE(TABLE plays, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) "
               "GROUP BY window_start, window_end, country HAVING COUNT(*) > 1",
               "{\"from\":[\"plays\"],\"steps\":[{\"aggregate\":{\"aggregates\":[\"count(*) AS "
               "plays\",\"sum(amount) AS total\"],\"group_by\":[\"country AS country\"],\"time\":"
               "\"ts\",\"window\":{\"size\":60000,\"type\":\"tumbling\"}}},{\"filter\":\"plays > "
               "1\"}]}"));
    /* expressions over aggregates and another order: a project after the aggregate */
    CHECK(same("SELECT country, window_start, SUM(amount) * 2 AS twice, CAST(country AS VARCHAR) "
               "AS c FROM TABLE(TUMBLE(TABLE plays, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) "
               "GROUP BY window_start, window_end, country",
               "{\"from\":[\"plays\"],\"steps\":[{\"aggregate\":{\"aggregates\":[\"sum(amount) AS "
               "agg1\"],\"group_by\":[\"country AS country\"],\"time\":\"ts\",\"window\":{\"size\":"
               "60000,\"type\":\"tumbling\"}}},{\"project\":[\"country AS country\",\"window_start "
               "AS window_start\",\"(agg1 * 2) AS twice\",\"CAST(country AS string) AS c\"]}]}"));
    CHECK(same("SELECT window_start, window_end, COUNT(DISTINCT user) AS users FROM "
               "TABLE(HOP(TABLE plays, DESCRIPTOR(ts), INTERVAL '10' SECONDS, INTERVAL '1' "
               "MINUTE)) GROUP BY window_start, window_end",
               "{\"from\":[\"plays\"],\"steps\":[{\"aggregate\":{\"aggregates\":[\"count(distinct "
               "user) AS users\"],\"group_by\":[],\"time\":\"ts\",\"window\":{\"size\":60000,"
               "\"slide\":10000,\"type\":\"hopping\"}}}]}"));
    CHECK(same("SELECT country, COUNT(*) FROM plays GROUP BY country",
               "SQL line 1, column 1: an aggregate over a stream without a window never ends"));
    CHECK(same("SELECT window_start, window_end, amount, COUNT(*) AS n FROM "
               "TABLE(SESSION(TABLE plays, DESCRIPTOR(ts), INTERVAL '5' MINUTE)) GROUP BY "
               "window_start, window_end",
               "SQL line 1, column 34: column 'amount' is neither in GROUP BY"));
}

static void test_union_cdc(void)
{
    CHECK(same("SELECT id, amount FROM plays WHERE amount > 0 UNION ALL SELECT id, amount FROM "
               "plays_eu WHERE amount > 0",
               "{\"from\":[\"plays\",\"plays_eu\"],\"steps\":[{\"filter\":\"amount > 0\"},"
               "{\"project\":[\"id AS id\",\"amount AS amount\"]}]}"));
    CHECK(same("SELECT id FROM plays UNION ALL SELECT amount AS id FROM plays_eu",
               "SQL line 1, column 32: the branches of a UNION ALL run as one chain"));
    CHECK(same("SELECT after.id, after.total * 2 AS twice FROM orders_cdc WHERE op IN ('c', 'u') "
               "AND after.status = 'paid'",
               "{\"from\":[\"orders_cdc\"],\"steps\":[{\"filter\":\"(op IN ('c', 'u')) AND "
               "(after.status = 'paid')\"},{\"project\":[\"after.id AS id\",\"(after.total * 2) AS "
               "twice\"]}]}"));
    CHECK(same("SELECT after.totl FROM orders_cdc",
               "SQL line 1, column 8: no column 'totl' in after; did you mean 'total'?"));
}

static void test_step(void)
{
    json_t *out = NULL;
    dm_error_t err = {0};
    const dm_avro_node_t *in;
    const json_t *key;
    lookup(NULL, "plays", &in, &key, NULL);
    CHECK(dm_sql_compile("SELECT id, upper(country) AS c FROM input WHERE amount > 1", &cat, true,
                         in, &out, &err) == DM_OK);
    char *s = json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS);
    CHECK(!strcmp(s, "{\"from\":[],\"steps\":[{\"filter\":\"amount > 1\"},{\"project\":[\"id "
                     "AS id\",\"upper(country) AS c\"]}]}"));
    free(s);
    json_decref(out);
    CHECK(dm_sql_compile("SELECT id FROM plays", &cat, true, in, &out, &err) == DM_ERR_INVALID);
    CHECK(strstr(err.message, "FROM input") != NULL);
    json_t *reads = dm_sql_reads(
        "SELECT * FROM input i LEFT JOIN movies m ON i.movie_id = m.movie_id", true, &err);
    s = json_dumps(reads, JSON_COMPACT);
    CHECK(!strcmp(s, "[\"movies\"]"));
    free(s);
    json_decref(reads);
}

static void test_script(void)
{
    dm_sql_stmt_t *st;
    size_t n;
    dm_error_t err = {0};
    CHECK(dm_sql_script_parse("-- a script\nCREATE SOURCE us_plays WITH (owner = 'growth', "
                              "description = 'it''s US') AS SELECT * FROM plays WHERE country = "
                              "'US';\n/* x */ SHOW SOURCES; describe us_plays; EXPLAIN SELECT id "
                              "FROM plays; DROP SOURCE us_plays",
                              &st, &n, &err) == DM_OK);
    REQUIRE(n == 5);
    CHECK(st[0].kind == DM_SQL_CREATE_SOURCE && !strcmp(st[0].name, "us_plays") &&
          !strcmp(st[0].owner, "growth") && !strcmp(st[0].description, "it's US") &&
          !strcmp(st[0].query, "SELECT * FROM plays WHERE country = 'US'") && st[0].line == 2);
    CHECK(st[1].kind == DM_SQL_SHOW_SOURCES && st[2].kind == DM_SQL_DESCRIBE &&
          st[3].kind == DM_SQL_EXPLAIN && !strcmp(st[3].query, "SELECT id FROM plays") &&
          st[4].kind == DM_SQL_DROP_SOURCE);
    dm_sql_stmts_free(st, n);
    CHECK(dm_sql_script_parse("SHOW SOURCES;\nSELEC * FROM x", &st, &n, &err) == DM_ERR_INVALID);
    CHECK(!strncmp(err.message, "SQL line 2, column 1: expected SELECT", 37));
    CHECK(dm_sql_script_parse("SELECT 'abc FROM x", &st, &n, &err) == DM_ERR_INVALID);
    CHECK(strstr(err.message, "not closed") != NULL);
}

int main(void)
{
    RUN(test_joins);
    RUN(test_windows);
    RUN(test_union_cdc);
    RUN(test_step);
    RUN(test_script);
    RUN(test_filter_project);
    RUN(test_errors);
    return check_summary();
}
