/* connectors/mysql/my_setup.c — connections, the settings and privileges the
 * binlog needs (each refusal names the setting, its value and the statement
 * that fixes it), and the captured tables. */
#include <errno.h>
#include <errmsg.h>
#include <mysqld_error.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/mysql/my_internal.h"
#include "core/log.h"

static dm_err_t read_password(dm_my_source_t *src, dm_error_t *err)
{
    if (src->password) memset(src->password, 0, strlen(src->password));
    free(src->password);
    src->password = NULL;
    const dm_mysql_config_t *c = src->conf;
    if (c->password_env && *c->password_env) {
        const char *v = getenv(c->password_env);
        if (!v)
            return dm_error_set(err, DM_ERR_CONFIG,
                                "source %s: environment variable %s (password_env) is not set",
                                src->name, c->password_env);
        src->password = strdup(v);
    } else if (c->password_file && *c->password_file) {
        FILE *f = fopen(c->password_file, "r");
        if (!f)
            return dm_error_set_retriable(err, DM_ERR_IO,
                                          "source %s: cannot read password_file %s: %s", src->name,
                                          c->password_file, strerror(errno));
        char line[1024] = "";
        if (!fgets(line, sizeof(line), f)) line[0] = '\0';
        fclose(f);
        line[strcspn(line, "\r\n")] = '\0';
        src->password = strdup(line);
        memset(line, 0, sizeof(line));
    }
    return DM_OK;
}

/* Errors a retry can fix: the server is down, restarting or unreachable. */
static bool transient(unsigned e)
{
    return e == CR_CONNECTION_ERROR || e == CR_CONN_HOST_ERROR || e == CR_SERVER_GONE_ERROR ||
           e == CR_SERVER_LOST || e == CR_UNKNOWN_HOST || e == ER_SERVER_SHUTDOWN ||
           e == ER_CON_COUNT_ERROR || e == ER_TOO_MANY_USER_CONNECTIONS || e == ER_LOCK_DEADLOCK ||
           e == ER_LOCK_WAIT_TIMEOUT || e == ER_QUERY_INTERRUPTED ||
           e == 1927 /* ER_CONNECTION_KILLED */ || e >= 2000;
}

dm_err_t dm_my_connect(dm_my_source_t *src, MYSQL **out, dm_error_t *err)
{
    *out = NULL;
    dm_err_t rc = read_password(src, err);
    if (rc) return rc;
    MYSQL *m = mysql_init(NULL);
    if (!m) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    unsigned timeout = 10, rtimeout = (unsigned)(src->conf->heartbeat_ms * 3 / 1000) + 10;
    mysql_optionsv(m, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
    mysql_optionsv(m, MYSQL_OPT_READ_TIMEOUT, &rtimeout);
    mysql_optionsv(m, MYSQL_OPT_WRITE_TIMEOUT, &timeout);
    mysql_optionsv(m, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    if (!mysql_real_connect(m, src->conf->host, src->conf->user, src->password, NULL,
                            (unsigned)src->conf->port, NULL, 0)) {
        unsigned e = mysql_errno(m);
        bool denied = e == ER_ACCESS_DENIED_ERROR || e == ER_DBACCESS_DENIED_ERROR;
        rc = dm_error_set(err, denied ? DM_ERR_PERMISSION : DM_ERR_AGAIN,
                          "source %s: cannot connect to %s:%lld as %s: %s", src->name,
                          src->conf->host, (long long)src->conf->port, src->conf->user,
                          mysql_error(m));
        if (!denied) err->retriable = true;
        mysql_close(m);
        return rc;
    }
    *out = m;
    return DM_OK;
}

dm_err_t dm_my_query(dm_my_source_t *src, const char *what, const char *sql, MYSQL_RES **res,
                     dm_error_t *err)
{
    if (res) *res = NULL;
    if (mysql_query(src->q, sql)) {
        unsigned e = mysql_errno(src->q);
        dm_err_t code = e == ER_SPECIFIC_ACCESS_DENIED_ERROR || e == ER_TABLEACCESS_DENIED_ERROR ||
                                e == ER_DBACCESS_DENIED_ERROR || e == ER_ACCESS_DENIED_ERROR
                            ? DM_ERR_PERMISSION
                        : transient(e) ? DM_ERR_AGAIN
                                       : DM_ERR_CONNECTOR;
        dm_err_t rc = dm_error_set(err, code, "source %s: %s: %s (error %u)", src->name, what,
                                   mysql_error(src->q), e);
        if (code == DM_ERR_AGAIN) err->retriable = true;
        return rc;
    }
    if (res) {
        *res = mysql_store_result(src->q);
        if (!*res && mysql_field_count(src->q))
            return dm_error_set_retriable(err, DM_ERR_AGAIN, "source %s: %s: %s", src->name, what,
                                          mysql_error(src->q));
    }
    return DM_OK;
}

/* ---- settings ---------------------------------------------------------------------------- */

static const char *variable(MYSQL_RES *res, const char *name)
{
    mysql_data_seek(res, 0);
    MYSQL_ROW row;
    while ((row = mysql_fetch_row(res)))
        if (row[0] && !strcasecmp(row[0], name)) return row[1] ? row[1] : "";
    return NULL;
}

dm_err_t dm_my_check_settings(dm_my_source_t *src, dm_error_t *err)
{
    MYSQL_RES *res;
    dm_err_t rc = dm_my_query(src, "reading the binlog settings",
                              "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('log_bin', "
                              "'binlog_format', 'binlog_row_image', 'binlog_row_metadata', "
                              "'version', 'gtid_mode', 'log_bin_compress', "
                              "'binlog_transaction_compression')",
                              &res, err);
    if (rc) return rc;
    const char *version = variable(res, "version");
    src->mariadb = version && strstr(version, "MariaDB");
    struct {
        const char *name, *want, *fix;
    } need[] = {
        {"log_bin", "ON",
         "the binary log cannot be switched on at runtime: start the server with --log-bin "
         "--binlog-format=ROW --binlog-row-image=FULL --binlog-row-metadata=FULL"},
        {"binlog_format", "ROW",
         "SET GLOBAL binlog_format = 'ROW' (and binlog_format=ROW in the server's configuration)"},
        {"binlog_row_image", "FULL",
         "SET GLOBAL binlog_row_image = 'FULL' (and binlog_row_image=FULL in the server's "
         "configuration)"},
        {"binlog_row_metadata", "FULL",
         "SET GLOBAL binlog_row_metadata = 'FULL' (and binlog_row_metadata=FULL in the server's "
         "configuration; MariaDB 10.5+ or MySQL 8.0.1+)"},
    };
    for (size_t i = 0; i < sizeof(need) / sizeof(need[0]) && !rc; i++) {
        const char *v = variable(res, need[i].name);
        if (v && !strcasecmp(v, need[i].want)) continue;
        rc = dm_error_set(err, DM_ERR_CONFIG,
                          "source %s: the server's %s is %s, the binlog connector needs %s: %s",
                          src->name, need[i].name, v ? v : "not available", need[i].want,
                          need[i].fix);
    }
    const char *compress[] = {"log_bin_compress", "binlog_transaction_compression"};
    for (int i = 0; i < 2 && !rc; i++) {
        const char *v = variable(res, compress[i]);
        if (v && !strcasecmp(v, "ON"))
            rc = dm_error_set(err, DM_ERR_CONFIG,
                              "source %s: the server's %s is ON; the binlog connector reads "
                              "uncompressed events: SET GLOBAL %s = OFF",
                              src->name, compress[i], compress[i]);
    }
    mysql_free_result(res);
    if (rc) return rc;
    /* REPLICATION CLIENT (BINLOG MONITOR on MariaDB 10.5+) lets us read the
     * binlog position; REPLICATION SLAVE is checked when the dump starts. */
    rc = dm_my_query(src, "reading the binlog position", "SHOW MASTER STATUS", &res, err);
    if (rc == DM_ERR_PERMISSION)
        return dm_error_set(err, DM_ERR_PERMISSION,
                            "source %s: user %s may not read the binlog position: GRANT %s, "
                            "REPLICATION SLAVE ON *.* TO '%s'@'%%'",
                            src->name, src->conf->user,
                            src->mariadb ? "BINLOG MONITOR" : "REPLICATION CLIENT",
                            src->conf->user);
    if (rc) return rc;
    mysql_free_result(res);
    return DM_OK;
}

/* ---- tables ------------------------------------------------------------------------------ */

static void split_name(const char *q, char *db, size_t dcap, char *table, size_t tcap)
{
    const char *dot = strchr(q, '.');
    if (!dot) {
        snprintf(db, dcap, "%s", "");
        snprintf(table, tcap, "%s", q);
        return;
    }
    snprintf(db, dcap, "%.*s", (int)(dot - q), q);
    snprintf(table, tcap, "%s", dot + 1);
}

bool dm_my_captured(const dm_my_source_t *src, const char *db, const char *table)
{
    char sdb[130], stable[130];
    split_name(src->conf->signal_table, sdb, sizeof(sdb), stable, sizeof(stable));
    if (!strcmp(db, sdb) && !strcmp(table, stable)) return false;
    for (size_t i = 0; i < src->conf->tables.n; i++) {
        char d[130], t[130];
        split_name(src->conf->tables.items[i], d, sizeof(d), t, sizeof(t));
        if (!strcmp(d, db) && (!strcmp(t, "*") || !strcmp(t, table))) return true;
    }
    return false;
}

void dm_my_table_topic(const dm_my_source_t *src, const char *db, const char *table, char *out,
                       size_t cap)
{
    bool single = src->conf->tables.n == 1 && !strchr(src->conf->tables.items[0], '*');
    if (single) {
        snprintf(out, cap, "%s", src->name);
        return;
    }
    snprintf(out, cap, "%s.%s.%s", src->name, db, table);
    for (char *p = out; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '-'))
            *p = '_';
}

dm_err_t dm_my_check_tables(dm_my_source_t *src, dm_error_t *err)
{
    dm_err_t rc = DM_OK;
    for (size_t i = 0; i < src->conf->tables.n && !rc; i++) {
        char db[130], table[130], edb[270], etable[270], sql[800];
        split_name(src->conf->tables.items[i], db, sizeof(db), table, sizeof(table));
        if (!*db)
            return dm_error_set(err, DM_ERR_CONFIG,
                                "source %s: table %s: write it as db.table (or db.*)", src->name,
                                table);
        mysql_real_escape_string(src->q, edb, db, strlen(db));
        mysql_real_escape_string(src->q, etable, table, strlen(table));
        snprintf(sql, sizeof(sql),
                 "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE "
                 "TABLE_SCHEMA = '%s' AND ('%s' = '*' OR TABLE_NAME = '%s') AND TABLE_TYPE = "
                 "'BASE TABLE'",
                 edb, etable, etable);
        MYSQL_RES *res;
        rc = dm_my_query(src, "listing captured tables", sql, &res, err);
        if (rc) break;
        if (!mysql_num_rows(res) && strcmp(table, "*"))
            rc = dm_error_set(err, DM_ERR_NOT_FOUND,
                              "source %s: table %s.%s does not exist, or user %s may not see it "
                              "(GRANT SELECT ON %s.%s TO '%s'@'%%')",
                              src->name, db, table, src->conf->user, db, table, src->conf->user);
        MYSQL_ROW row;
        while (!rc && (row = mysql_fetch_row(res))) {
            char topic[256], subject[300];
            dm_my_table_topic(src, row[0], row[1], topic, sizeof(topic));
            snprintf(subject, sizeof(subject), "%s-value", topic);
            rc = src->env.ensure_topic(src->env.ctx, topic, src->partitions, subject, err);
            if (!rc) rc = dm_my_add_table_from_schema(src, row[0], row[1], err);
        }
        mysql_free_result(res);
    }
    return rc;
}
