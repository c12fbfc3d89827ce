/* needs:mariadb — the harness's MariaDB answers on loopback with a row-based
 * binlog, as the MySQL CDC connector will need. */
#include <mysql.h>
#include <stdlib.h>

#include "check.h"

static MYSQL *db;

static const char *query_one(const char *sql, char *out, size_t cap)
{
    if (mysql_query(db, sql)) return NULL;
    MYSQL_RES *res = mysql_store_result(db);
    if (!res) return NULL;
    MYSQL_ROW row = mysql_fetch_row(res);
    const char *v = NULL;
    if (row && row[mysql_num_fields(res) - 1]) {
        snprintf(out, cap, "%s", row[mysql_num_fields(res) - 1]);
        v = out;
    }
    mysql_free_result(res);
    return v;
}

static void test_connects_with_password(void)
{
    const char *host = getenv("DM_MARIADB_HOST"), *port = getenv("DM_MARIADB_PORT");
    REQUIRE(host && port);
    db = mysql_init(NULL);
    REQUIRE(db);
    MYSQL *ok =
        mysql_real_connect(db, host, getenv("DM_MARIADB_USER"), getenv("DM_MARIADB_PASSWORD"), NULL,
                           (unsigned)atoi(port), NULL, 0);
    if (!ok) printf("    connect: %s\n", mysql_error(db));
    REQUIRE(ok);
}

static void test_binlog_is_row_based(void)
{
    REQUIRE(db);
    char v[64];
    CHECK_STR_EQ(query_one("SHOW VARIABLES LIKE 'log_bin'", v, sizeof(v)), "ON");
    CHECK_STR_EQ(query_one("SHOW VARIABLES LIKE 'binlog_format'", v, sizeof(v)), "ROW");
}

static void test_round_trip_rows(void)
{
    REQUIRE(db);
    CHECK(mysql_query(db, "CREATE DATABASE shop") == 0);
    CHECK(mysql_query(db, "CREATE TABLE shop.t (id INT PRIMARY KEY, v VARCHAR(20))") == 0);
    CHECK(mysql_query(db, "INSERT INTO shop.t VALUES (1,'a'),(2,'b'),(3,'c')") == 0);
    char v[64];
    CHECK_STR_EQ(query_one("SELECT count(*) FROM shop.t", v, sizeof(v)), "3");
}

int main(void)
{
    RUN(test_connects_with_password);
    RUN(test_binlog_is_row_based);
    RUN(test_round_trip_rows);
    if (db) mysql_close(db);
    return check_summary();
}
