/* tests/integration/crash_log.c — the embedded log survives SIGKILL at any point.
 *
 * usage: crash_log [ITERATIONS] (default 200)
 *
 * Each iteration forks a child that opens the log (recovering what the last child left),
 * then runs transactions as fast as it can: transaction i writes 1 + i%7 records "i:j" to
 * out/(i%2), three to out2/0 and commits group g's offset on in/0 as i+1 — the shape of an
 * exactly-once task; every 4th transaction also writes one 4 KB record "i:0..." to big/0,
 * a topic that grows past the size where space is reserved ahead of the writer (a crash
 * leaves that space as zeros after the data); and one record keyed k<i%50> to kv/0, a
 * compacted topic of small segments that the child compacts and merges every 100
 * transactions (so kills land in compactions too). After each commit it reports i through a pipe.
 * The parent kills it with SIGKILL after a random 0..25 ms (during recovery, appends, journal
 * writes, checkpoints, segment rolls), recovers the log itself and checks:
 *   - every commit the child saw succeed is there (G = group offset > last reported i);
 *   - every record of every transaction i < G is there exactly once, in order;
 *   - no record of a transaction >= G is visible (it was not committed);
 *   - in kv, at most one record per transaction, in order, and for every key the record of
 *     the last committed transaction with that key (compaction keeps the latest).
 * The data directory starts afresh every 25 iterations to keep each check short. The
 * fsync policy alternates between never and always by cycle.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "log/log.h"
#include "../unit/test_log_util.h"

static int cycle_policy;

static void create_topics(dm_log_t *log)
{
    dm_log_fsync_t pol = cycle_policy ? DM_LOG_FSYNC_ALWAYS : DM_LOG_FSYNC_NEVER;
    dm_log_topic_create(log,
                        &(dm_log_topic_conf_t){
                            .name = "out", .partitions = 2, .fsync = pol, .segment_bytes = 16384},
                        NULL);
    dm_log_topic_create(
        log,
        &(dm_log_topic_conf_t){
            .name = "out2", .fsync = pol, .compression = DM_BATCH_COMP_LZ4, .segment_bytes = 65536},
        NULL);
    dm_log_topic_create(log, &(dm_log_topic_conf_t){.name = "in", .fsync = pol}, NULL);
    dm_log_topic_create(log, &(dm_log_topic_conf_t){.name = "big", .fsync = pol}, NULL);
    /* interval fsync whatever the cycle: only fsynced segments are merged */
    dm_log_topic_create(log,
                        &(dm_log_topic_conf_t){.name = "kv",
                                               .compact = true,
                                               .delete_retention_ms = 1,
                                               .flush_ms = 2,
                                               .segment_bytes = 2048},
                        NULL);
}

#define KEYS 50

#define BIG_EVERY 4
#define BIG_BYTES 4096

static dm_log_options_t options(void)
{
    return (dm_log_options_t){
        .journal_max_bytes = 32768, .index_interval_bytes = 1024, .retention_check_ms = 1};
}

static void child(const char *dir, int wfd)
{
    dm_log_set_level(DM_LOG_ERROR);
    dm_log_t *log;
    dm_error_t err = {0};
    dm_log_options_t opt = options();
    if (dm_log_open(dir, &opt, &log, &err)) {
        fprintf(stderr, "child: open: %s\n", err.message);
        _exit(3);
    }
    create_topics(log);
    int64_t next = 0;
    dm_log_group_offset(log, "g", "in", 0, &next, NULL);
    char vals[10][32];
    dm_log_record_t r[10];
    static char big[BIG_BYTES];
    memset(big, 'x', sizeof(big));
    for (int64_t i = next;; i++) {
        int n = 1 + (int)(i % 7);
        for (int j = 0; j < 10; j++) {
            int l = snprintf(vals[j], sizeof(vals[j]), "%lld:%d", (long long)i, j);
            r[j] = (dm_log_record_t){.key = (const uint8_t *)vals[j],
                                     .key_len = l,
                                     .value = (const uint8_t *)vals[j],
                                     .value_len = l};
        }
        char kv_key[16];
        snprintf(kv_key, sizeof(kv_key), "k%d", (int)(i % KEYS));
        int l = snprintf(big, 32, "%lld:0", (long long)i);
        big[l] = 'x';
        dm_log_txn_t *txn;
        if (dm_log_txn_begin(log, &txn, &err) ||
            dm_log_txn_produce(txn, "out", (int32_t)(i % 2), r, (size_t)n, &err) ||
            dm_log_txn_produce(txn, "out2", 0, r, 3, &err) ||
            (i % BIG_EVERY == 0 &&
             dm_log_txn_produce(txn, "big", 0,
                                &(dm_log_record_t){.value = (const uint8_t *)big,
                                                   .value_len = BIG_BYTES,
                                                   .key_len = -1},
                                1, &err)) ||
            dm_log_txn_produce(txn, "kv", 0,
                               &(dm_log_record_t){.key = (const uint8_t *)kv_key,
                                                  .key_len = (int32_t)strlen(kv_key),
                                                  .value = (const uint8_t *)vals[0],
                                                  .value_len = (int32_t)strlen(vals[0])},
                               1, &err) ||
            dm_log_txn_offset(txn, "g", "in", 0, i + 1, &err) ||
            dm_log_txn_commit(txn, NULL, &err)) {
            fprintf(stderr, "child: txn %lld: %s\n", (long long)i, err.message);
            _exit(4);
        }
        if (write(wfd, &i, sizeof(i)) != sizeof(i)) _exit(5);
        if (i % 100 == 99) dm_log_maintain(log, dm_wall_ms()); /* compact and merge kv now */
    }
}

/* Reads every record of topic/partition; checks each belongs to a committed transaction and
 * appears once; counts[i] accumulates. Returns -1 on a violation. */
static int scan(dm_log_t *log, const char *topic, int32_t part, int64_t G, int *counts,
                int64_t *last_i)
{
    dm_log_fetch_t f;
    dm_log_fetch_init(&f);
    dm_error_t err = {0};
    int64_t start = 0, end = 0, off = 0;
    dm_log_offsets(log, topic, part, &start, &end, &err);
    off = start;
    int rc = 0;
    while (off < end && !rc) {
        if (dm_log_read(log, topic, part, off, 1 << 20, 0, &f, &err)) {
            printf("    read %s/%d at %lld: %s\n", topic, part, (long long)off, err.message);
            rc = -1;
            break;
        }
        if (f.n == 0) {
            printf("    read %s/%d at %lld: nothing below the end %lld\n", topic, part,
                   (long long)off, (long long)end);
            rc = -1;
            break;
        }
        for (size_t k = 0; k < f.n; k++) {
            long long i;
            int j;
            char buf[32];
            int l = f.records[k].value_len < 31 ? f.records[k].value_len : 31;
            memcpy(buf, f.records[k].value, (size_t)l);
            buf[l] = 0;
            if (sscanf(buf, "%lld:%d", &i, &j) != 2 || i < 0 || i >= G) {
                printf("    %s/%d offset %lld: record '%s' is not of a committed transaction "
                       "(G=%lld)\n",
                       topic, part, (long long)f.records[k].offset, buf, (long long)G);
                rc = -1;
                break;
            }
            if (i < *last_i) {
                printf("    %s/%d: transaction %lld after %lld (out of order)\n", topic, part, i,
                       (long long)*last_i);
                rc = -1;
                break;
            }
            *last_i = i;
            counts[i]++;
        }
        off = f.next_offset;
    }
    dm_log_fetch_free(&f);
    return rc;
}

static long cuts_uncommitted, cuts_torn, cuts_journal, cuts_reserved, merges_finished;
static long long kv_written, kv_kept;

static void count_logs(void)
{
    for (const char *p = tu_logbuf; (p = strstr(p, "uncommitted data")); p++)
        cuts_uncommitted++;
    for (const char *p = tu_logbuf; (p = strstr(p, "are torn")); p++)
        cuts_torn++;
    for (const char *p = tu_logbuf; (p = strstr(p, "torn bytes")); p++)
        cuts_journal++;
    for (const char *p = tu_logbuf; (p = strstr(p, "reserved ahead of the writer")); p++)
        cuts_reserved++;
    for (const char *p = tu_logbuf; (p = strstr(p, "finished merging")); p++)
        merges_finished++;
}

static int verify(const char *dir, int64_t acked, int64_t *G_out)
{
    dm_log_set_level(DM_LOG_INFO);
    tu_capture_logs();
    dm_log_t *log;
    dm_error_t err = {0};
    dm_log_options_t opt = options();
    if (dm_log_open(dir, &opt, &log, &err)) {
        printf("    recover: %s\n", err.message);
        return -1;
    }
    create_topics(log);
    for (int32_t p = 0; p < 2; p++) /* open (recover) every partition now */
        dm_log_offsets(log, "out", p, NULL, NULL, NULL);
    dm_log_offsets(log, "out2", 0, NULL, NULL, NULL);
    dm_log_offsets(log, "big", 0, NULL, NULL, NULL);
    dm_log_offsets(log, "kv", 0, NULL, NULL, NULL);
    count_logs();
    dm_log_set_sink(NULL, NULL);
    dm_log_set_level(DM_LOG_ERROR);
    int64_t G = 0;
    dm_log_group_offset(log, "g", "in", 0, &G, NULL);
    *G_out = G;
    int rc = 0;
    if (G < acked + 1) {
        printf("    commit %lld was acknowledged but the group offset is %lld\n", (long long)acked,
               (long long)G);
        rc = -1;
    }
    int *c_out = calloc((size_t)G + 1, sizeof(int)), *c_out2 = calloc((size_t)G + 1, sizeof(int));
    int *c_big = calloc((size_t)G + 1, sizeof(int)), *c_kv = calloc((size_t)G + 1, sizeof(int));
    int64_t l0 = 0, l1 = 0, l2 = 0, l3 = 0, l4 = 0;
    if (!rc) rc = scan(log, "out", 0, G, c_out, &l0);
    if (!rc) rc = scan(log, "out", 1, G, c_out, &l1);
    if (!rc) rc = scan(log, "out2", 0, G, c_out2, &l2);
    if (!rc) rc = scan(log, "big", 0, G, c_big, &l3);
    if (!rc) rc = scan(log, "kv", 0, G, c_kv, &l4);
    for (int64_t i = G - 1; i >= 0 && i >= G - KEYS && !rc; i--)
        if (c_kv[i] != 1) { /* the last transaction of each key */
            printf("    kv: the record of transaction %lld (the latest of key k%d) is %s\n",
                   (long long)i, (int)(i % KEYS), c_kv[i] ? "there twice" : "gone");
            rc = -1;
        }
    kv_written += G;
    for (int64_t i = 0; i < G; i++)
        kv_kept += c_kv[i];
    for (int64_t i = 0; i < G && !rc; i++)
        if (c_kv[i] > 1) {
            printf("    kv: transaction %lld appears %d times\n", (long long)i, c_kv[i]);
            rc = -1;
        }
    for (int64_t i = 0; i < G && !rc; i++) {
        int want_big = i % BIG_EVERY == 0;
        if (c_out[i] != 1 + i % 7 || c_out2[i] != 3 || c_big[i] != want_big) {
            printf("    transaction %lld: %d+%d+%d records, want %lld+3+%d\n", (long long)i,
                   c_out[i], c_out2[i], c_big[i], (long long)(1 + i % 7), want_big);
            rc = -1;
        }
    }
    free(c_out);
    free(c_out2);
    free(c_big);
    free(c_kv);
    if (rand() % 2)
        dm_log_close(log);
    else
        dm_log_close_dirty(log); /* the next child recovers from a non-checkpointed journal */
    return rc;
}

int main(int argc, char **argv)
{
    int iterations = argc > 1 ? atoi(argv[1]) : 200;
    unsigned seed = argc > 2 ? (unsigned)atoi(argv[2]) : (unsigned)dm_now_ns();
    srand(seed);
    printf("crash_log: %d iterations, seed %u\n", iterations, seed);
    dm_log_set_level(DM_LOG_ERROR);
    char *dir = NULL;
    int failed = 0;
    long long total_commits = 0;
    uint64_t t0 = dm_now_ns();
    for (int it = 0; it < iterations && !failed; it++) {
        if (it % 25 == 0) {
            if (dir) {
                tu_rmrf(dir);
                free(dir);
            }
            dir = tu_tmpdir("crash");
            cycle_policy = (it / 25) % 2;
        }
        int pfd[2];
        if (pipe(pfd)) return 2;
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            close(pfd[0]);
            child(dir, pfd[1]);
            _exit(0);
        }
        close(pfd[1]);
        dm_sleep_ms((uint64_t)(rand() % 26));
        kill(pid, SIGKILL);
        int st;
        waitpid(pid, &st, 0);
        int64_t acked = -1, v;
        while (read(pfd[0], &v, sizeof(v)) == sizeof(v))
            acked = v;
        close(pfd[0]);
        if (WIFEXITED(st)) {
            printf("FAIL iteration %d: child exited with %d before the kill\n", it,
                   WEXITSTATUS(st));
            failed = 1;
            break;
        }
        int64_t G = 0;
        if (verify(dir, acked, &G)) {
            printf("FAIL iteration %d (seed %u, dir %s kept)\n", it, seed, dir);
            failed = 1;
            break;
        }
        total_commits += G;
    }
    double secs = (double)(dm_now_ns() - t0) / 1e9;
    if (!failed) {
        tu_rmrf(dir);
        printf("ok   crash_log: %d iterations, %lld committed transactions checked, %.1f s\n",
               iterations, total_commits, secs);
        printf("     recoveries cut: %ld uncommitted tails, %ld torn segment tails, %ld torn "
               "journal tails, %ld tails of space reserved ahead\n",
               cuts_uncommitted, cuts_torn, cuts_journal, cuts_reserved);
        printf("     compaction: kv kept %lld of %lld records; %ld merges finished by recovery\n",
               kv_kept, kv_written, merges_finished);
    }
    free(dir);
    printf("%d passed, %d failed\n", failed ? 0 : 1, failed);
    return failed;
}
