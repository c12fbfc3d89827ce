/* tests/integration/log_cli.c — `datamesh log topics|describe|dump` on a data directory
 * written through the log API (runs $DM_BINARY_DIR/datamesh). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "check.h"
#include "log/log.h"
#include "../unit/test_log_util.h"

static char *dir;
static char bin[4096];

/* Runs the CLI with args; returns its exit status, output in out. */
static int run(const char *args, char *out, size_t cap)
{
    char cmd[8192];
    snprintf(cmd, sizeof(cmd), "%s log %s 2>&1", bin, args);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void setup(void)
{
    dm_log_t *log;
    dm_error_t err = {0};
    if (dm_log_open(dir, NULL, &log, &err)) {
        printf("open: %s\n", err.message);
        exit(1);
    }
    dm_log_topic_create(
        log,
        &(dm_log_topic_conf_t){
            .name = "orders", .partitions = 2, .schema_subject = "orders-value", .compact = true},
        &err);
    dm_log_header_t h = {"src", 3, (const uint8_t *)"cli", 3};
    dm_log_record_t r[3] = {
        {.key = (const uint8_t *)"k1",
         .key_len = 2,
         .value = (const uint8_t *)"{\"a\":1}",
         .value_len = 7,
         .headers = &h,
         .n_headers = 1,
         .timestamp = 1000},
        {.key_len = -1, .value = (const uint8_t *)"\x01\x02", .value_len = 2, .timestamp = 1001},
        {.key = (const uint8_t *)"k1", .key_len = 2, .value_len = -1, .timestamp = 1002},
    };
    dm_log_produce(log, "orders", 1, r, 3, NULL, &err);
    dm_log_close(log);
}

static void test_topics(void)
{
    char out[8192], args[4200];
    snprintf(args, sizeof(args), "topics --data %s", dir);
    CHECK_EQ_INT(run(args, out, sizeof(out)), 0);
    CHECK_CONTAINS(out, "orders");
    CHECK_CONTAINS(out, "subject=orders-value");
    CHECK_CONTAINS(out, "compact");
}

static void test_describe(void)
{
    char out[8192], args[4200];
    snprintf(args, sizeof(args), "describe --data %s orders", dir);
    CHECK_EQ_INT(run(args, out, sizeof(out)), 0);
    CHECK_CONTAINS(out, "partitions           2");
    CHECK_CONTAINS(out, "        1              0              3");
    snprintf(args, sizeof(args), "describe --data %s nope", dir);
    CHECK_EQ_INT(run(args, out, sizeof(out)), 1);
    CHECK_CONTAINS(out, "topic=nope: no such topic");
}

static void test_dump(void)
{
    char out[8192], args[4200];
    snprintf(args, sizeof(args), "dump --data %s orders --partition 1", dir);
    CHECK_EQ_INT(run(args, out, sizeof(out)), 0);
    CHECK_CONTAINS(out, "batch offsets=0..2 count=3");
    CHECK_CONTAINS(out, "offset=0 ts=1000 key=\"k1\" value=\"{\\\"a\\\":1}\" header.src=\"cli\"");
    CHECK_CONTAINS(out, "offset=1 ts=1001 key=null value=\"\\x01\\x02\"");
    CHECK_CONTAINS(out, "offset=2 ts=1002 key=\"k1\" value=null");
    snprintf(args, sizeof(args), "dump --data %s orders --partition 1 --offset 2 --count 1", dir);
    CHECK_EQ_INT(run(args, out, sizeof(out)), 0);
    CHECK(strstr(out, "offset=1 ") == NULL);
    CHECK_CONTAINS(out, "offset=2 ");
    snprintf(args, sizeof(args), "dump --data %s orders --partition 7", dir);
    CHECK_EQ_INT(run(args, out, sizeof(out)), 1);
    CHECK_CONTAINS(out, "no partition 7");
}

static void test_usage(void)
{
    char out[8192];
    CHECK_EQ_INT(run("topics", out, sizeof(out)), 2);
    CHECK_CONTAINS(out, "--data DIR is required");
    CHECK_EQ_INT(run("frobnicate --data /nonexistent", out, sizeof(out)), 2);
    CHECK_EQ_INT(run("topics --data /nonexistent/dm", out, sizeof(out)), 1);
    CHECK_CONTAINS(out, "is not a data directory");
}

int main(void)
{
    const char *bdir = getenv("DM_BINARY_DIR");
    snprintf(bin, sizeof(bin), "%s/datamesh", bdir ? bdir : "build");
    dir = tu_tmpdir("logcli");
    setup();
    RUN(test_topics);
    RUN(test_describe);
    RUN(test_dump);
    RUN(test_usage);
    tu_rmrf(dir);
    free(dir);
    return check_summary();
}
