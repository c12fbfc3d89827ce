/* tests/unit/test_log_deferred.c — topics created with a deferred fsync: not
 * durable until dm_log_journal_sync, durable after it, and there after a
 * reopen; plain creates stay durable when they return. */
#include "check.h"
#include "log/internal.h"
#include "log/log.h"
#include "test_log_util.h"

static uint64_t durable(dm_log_t *log)
{
    pthread_mutex_lock(&log->sync_mu);
    uint64_t d = log->durable_lsn;
    pthread_mutex_unlock(&log->sync_mu);
    return d;
}

static void test_deferred_then_sync(void)
{
    char *dir = tu_tmpdir("logdefer");
    REQUIRE(dir);
    dm_log_t *log;
    dm_error_t err = {0};
    dm_log_options_t opt = {.no_background = true}; /* no interval fsync in between */
    REQUIRE(dm_log_open(dir, &opt, &log, &err) == DM_OK);
    CHECK(dm_log_topic_create(log, &(dm_log_topic_conf_t){.name = "plain", .partitions = 1},
                              &err) == DM_OK);
    CHECK(durable(log) >= log->lsn); /* a plain create waits for its fsync */
    for (int i = 0; i < 50; i++) {
        char name[32];
        snprintf(name, sizeof(name), "t%d", i);
        CHECK(dm_log_topic_create_deferred(
                  log, &(dm_log_topic_conf_t){.name = name, .partitions = 2}, &err) == DM_OK);
    }
    CHECK(durable(log) < log->lsn); /* journaled, not yet fsynced */
    CHECK(dm_log_topic_create_deferred(log, &(dm_log_topic_conf_t){.name = "t3", .partitions = 1},
                                       &err) == DM_ERR_LOG_TOPIC_EXISTS);
    CHECK(dm_log_journal_sync(log, &err) == DM_OK);
    CHECK(durable(log) >= log->lsn);
    dm_log_close_dirty(log);
    REQUIRE(dm_log_open(dir, &opt, &log, &err) == DM_OK);
    dm_log_topic_info_t info;
    CHECK(dm_log_topic_describe(log, "t49", &info, &err) == DM_OK && info.conf.partitions == 2);
    free(info.parts);
    dm_log_close(log);
    tu_rmrf(dir);
    free(dir);
}

int main(void)
{
    RUN(test_deferred_then_sync);
    return check_summary();
}
