/* needs:postgres — the harness's PostgreSQL answers on loopback with logical
 * replication enabled, as the CDC connector will need. */
#include <libpq-fe.h>
#include <stdlib.h>

#include "check.h"

static PGconn *conn;

static void test_connects_on_loopback(void)
{
    const char *dsn = getenv("DM_PG_DSN");
    REQUIRE(dsn);
    CHECK_CONTAINS(dsn, "host=127.0.0.1");
    conn = PQconnectdb(dsn);
    REQUIRE(PQstatus(conn) == CONNECTION_OK);
    PGresult *r = PQexec(conn, "SELECT current_setting('server_version_num')::int");
    REQUIRE(PQresultStatus(r) == PGRES_TUPLES_OK);
    CHECK(atoi(PQgetvalue(r, 0, 0)) >= 150000);
    PQclear(r);
}

static void test_logical_replication_enabled(void)
{
    REQUIRE(conn);
    PGresult *r = PQexec(conn, "SHOW wal_level");
    REQUIRE(PQresultStatus(r) == PGRES_TUPLES_OK);
    CHECK_STR_EQ(PQgetvalue(r, 0, 0), "logical");
    PQclear(r);
    r = PQexec(conn,
               "SELECT slot_name FROM pg_create_logical_replication_slot('dm_probe', 'pgoutput')");
    CHECK(PQresultStatus(r) == PGRES_TUPLES_OK);
    PQclear(r);
    r = PQexec(conn, "SELECT pg_drop_replication_slot('dm_probe')");
    CHECK(PQresultStatus(r) == PGRES_TUPLES_OK);
    PQclear(r);
}

static void test_round_trip_rows(void)
{
    REQUIRE(conn);
    PGresult *r = PQexec(conn, "CREATE TABLE t (id int primary key, v text);"
                               "INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 1000) g");
    CHECK(PQresultStatus(r) == PGRES_COMMAND_OK);
    PQclear(r);
    r = PQexec(conn, "SELECT count(*), max(v) FROM t");
    REQUIRE(PQresultStatus(r) == PGRES_TUPLES_OK);
    CHECK_STR_EQ(PQgetvalue(r, 0, 0), "1000");
    CHECK_STR_EQ(PQgetvalue(r, 0, 1), "v999");
    PQclear(r);
}

int main(void)
{
    RUN(test_connects_on_loopback);
    RUN(test_logical_replication_enabled);
    RUN(test_round_trip_rows);
    if (conn) PQfinish(conn);
    return check_summary();
}
