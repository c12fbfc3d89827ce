/* tests/unit/test_log_maint.c — retention by size and time, compaction by key (with
 * tombstones), compaction running while a writer appends, and the merging of the small
 * segments compaction leaves. */
#include <pthread.h>

#include "check.h"
#include "core/clock.h"
#include "log/log.h"
#include "test_log_util.h"

static dm_log_t *open_log(const char *dir)
{
    dm_log_t *log = NULL;
    dm_log_options_t opt = {.no_background = true, .index_interval_bytes = 256};
    dm_log_open(dir, &opt, &log, NULL);
    return log;
}

static void produce_kv(dm_log_t *log, const char *topic, const char *key, const char *value,
                       int64_t ts)
{
    dm_log_record_t r = {.key = (const uint8_t *)key,
                         .key_len = key ? (int32_t)strlen(key) : -1,
                         .value = (const uint8_t *)value,
                         .value_len = value ? (int32_t)strlen(value) : -1,
                         .timestamp = ts};
    dm_error_t err = {0};
    if (dm_log_produce(log, topic, 0, &r, 1, NULL, &err)) printf("    produce: %s\n", err.message);
}

static void test_retention_by_size(void)
{
    char *dir = tu_tmpdir("maint");
    dm_log_t *log = open_log(dir);
    REQUIRE(log);
    dm_error_t err = {0};
    REQUIRE(dm_log_topic_create(
                log,
                &(dm_log_topic_conf_t){.name = "r", .segment_bytes = 2048, .retention_bytes = 8192},
                &err) == 0);
    char v[200];
    memset(v, 'x', sizeof(v) - 1);
    v[sizeof(v) - 1] = 0;
    for (int i = 0; i < 200; i++)
        produce_kv(log, "r", NULL, v, 0);
    dm_log_topic_info_t info;
    REQUIRE(dm_log_topic_describe(log, "r", &info, &err) == 0);
    int segs_before = info.parts[0].segments;
    free(info.parts);
    int deleted = dm_log_maintain(log, dm_wall_ms());
    CHECK(deleted > 0);
    REQUIRE(dm_log_topic_describe(log, "r", &info, &err) == 0);
    CHECK_EQ_INT(info.parts[0].segments, segs_before - deleted);
    CHECK(info.parts[0].size_bytes <= 8192 + 2048);
    CHECK(info.parts[0].start_offset > 0);
    CHECK_EQ_INT(info.parts[0].end_offset, 200);
    int64_t start = info.parts[0].start_offset;
    free(info.parts);
    dm_log_fetch_t f;
    dm_log_fetch_init(&f);
    CHECK(dm_log_read(log, "r", 0, 0, 4096, 0, &f, &err) == DM_ERR_LOG_OFFSET_RANGE);
    CHECK_CONTAINS(err.message, "before the start");
    REQUIRE(dm_log_read(log, "r", 0, start, 4096, 0, &f, &err) == 0);
    CHECK(f.n > 0 && f.records[0].offset == start);
    dm_log_fetch_free(&f);
    dm_log_close(log);
    /* the deletion survives a restart */
    log = open_log(dir);
    REQUIRE(log);
    int64_t s2, e2;
    dm_log_offsets(log, "r", 0, &s2, &e2, &err);
    CHECK_EQ_INT(s2, start);
    CHECK_EQ_INT(e2, 200);
    dm_log_close(log);
    tu_rmrf(dir);
    free(dir);
}

static void test_retention_by_time(void)
{
    char *dir = tu_tmpdir("maint");
    dm_log_t *log = open_log(dir);
    REQUIRE(log);
    dm_error_t err = {0};
    REQUIRE(
        dm_log_topic_create(
            log,
            &(dm_log_topic_conf_t){.name = "t", .segment_bytes = 1024, .retention_ms = 3600 * 1000},
            &err) == 0);
    int64_t now = dm_wall_ms();
    char v[100];
    memset(v, 'y', sizeof(v) - 1);
    v[sizeof(v) - 1] = 0;
    for (int i = 0; i < 50; i++) /* two days old */
        produce_kv(log, "t", NULL, v, now - 2 * 86400000ll + i);
    for (int i = 0; i < 50; i++)
        produce_kv(log, "t", NULL, v, now + i);
    CHECK(dm_log_maintain(log, now) > 0);
    int64_t start, end;
    dm_log_offsets(log, "t", 0, &start, &end, &err);
    CHECK(start > 0 && start <= 50);
    CHECK_EQ_INT(end, 100);
    int64_t off;
    REQUIRE(dm_log_offset_for_time(log, "t", 0, now, &off, &err) == 0);
    CHECK_EQ_INT(off, 50);
    dm_log_close(log);
    tu_rmrf(dir);
    free(dir);
}

/* Reads everything; fills last[] with the latest value per key k0..k9 ("" = none) and
 * counts records per key in seg_counts. */
static int read_all(dm_log_t *log, const char *topic, char last[10][32], int counts[10],
                    int *tombstones)
{
    dm_log_fetch_t f;
    dm_log_fetch_init(&f);
    dm_error_t err = {0};
    int64_t start, end, off;
    dm_log_offsets(log, topic, 0, &start, &end, &err);
    off = start;
    int total = 0;
    int64_t prev = -1;
    memset(counts, 0, 10 * sizeof(int));
    for (int k = 0; k < 10; k++)
        last[k][0] = 0;
    *tombstones = 0;
    while (off < end) {
        if (dm_log_read(log, topic, 0, off, 1024, 0, &f, &err) || f.n == 0) break;
        for (size_t i = 0; i < f.n; i++) {
            dm_log_record_t *r = &f.records[i];
            if (r->offset <= prev)
                printf("    offsets not increasing at %lld\n", (long long)r->offset);
            prev = r->offset;
            int k = r->key[1] - '0';
            counts[k]++;
            total++;
            if (r->value)
                snprintf(last[k], 32, "%.*s", r->value_len, (const char *)r->value);
            else {
                last[k][0] = 0;
                (*tombstones)++;
            }
        }
        off = f.next_offset;
    }
    dm_log_fetch_free(&f);
    return total;
}

static void test_compaction(void)
{
    char *dir = tu_tmpdir("maint");
    dm_log_t *log = open_log(dir);
    REQUIRE(log);
    dm_error_t err = {0};
    REQUIRE(dm_log_topic_create(log,
                                &(dm_log_topic_conf_t){.name = "c",
                                                       .compact = true,
                                                       .segment_bytes = 512,
                                                       .delete_retention_ms = 60000},
                                &err) == 0);
    int64_t now = dm_wall_ms();
    char key[8], val[32];
    for (int round = 0; round < 30; round++)
        for (int k = 0; k < 10; k++) {
            snprintf(key, sizeof(key), "k%d", k);
            snprintf(val, sizeof(val), "r%d-k%d", round, k);
            produce_kv(log, "c", key, val, now - 600000 + round);
        }
    produce_kv(log, "c", "k3", NULL, now - 500000); /* an old tombstone: removed */
    produce_kv(log, "c", "k4", NULL, now);          /* a fresh tombstone: kept */
    for (int i = 0; i < 40; i++)                    /* seal what came before */
        produce_kv(log, "c", "k9", "filler", now);
    char before[10][32], after[10][32];
    int cb[10], ca[10], tb, ta;
    int total_before = read_all(log, "c", before, cb, &tb);
    int rewritten = dm_log_maintain(log, now);
    CHECK(rewritten > 0);
    int total_after = read_all(log, "c", after, ca, &ta);
    printf("    compaction rewrote %d segments: %d records -> %d\n", rewritten, total_before,
           total_after);
    CHECK(total_after < total_before);
    for (int k = 0; k < 10; k++)
        CHECK_STR_EQ(after[k], before[k]); /* the latest value per key is unchanged */
    CHECK_EQ_INT(ca[3], 0);                /* old tombstone and k3's values are gone */
    CHECK_EQ_INT(ca[4], 1);                /* k4: only its fresh tombstone */
    CHECK_EQ_INT(ta, 1);
    for (int k = 0; k < 9; k++)
        if (k != 3 && k != 4) CHECK_EQ_INT(ca[k], 1);
    dm_log_close(log);
    /* compacted segments (and their indexes) read back after a restart, without repairs */
    tu_capture_logs();
    log = open_log(dir);
    REQUIRE(log);
    int total_restart = read_all(log, "c", after, ca, &ta);
    dm_log_set_sink(NULL, NULL);
    CHECK_EQ_INT(total_restart, total_after);
    CHECK(strstr(tu_logbuf, "damaged") == NULL);
    int64_t off;
    REQUIRE(dm_log_offset_for_time(log, "c", 0, now - 600000 + 29, &off, &err) == 0);
    CHECK(off > 0);
    /* a second pass finds nothing more to drop */
    CHECK_EQ_INT(dm_log_maintain(log, now), 0);
    dm_log_close(log);
    tu_rmrf(dir);
    free(dir);
}

typedef struct writer {
    dm_log_t *log;
    volatile int stop;
    int written;
    uint64_t max_ns;
} writer_t;

static void *writer_main(void *arg)
{
    writer_t *w = arg;
    char key[8], val[32];
    while (!w->stop && w->written < 20000) {
        snprintf(key, sizeof(key), "k%d", w->written % 10);
        snprintf(val, sizeof(val), "w%d", w->written);
        uint64_t t0 = dm_now_ns();
        produce_kv(w->log, "cc", key, val, 0);
        uint64_t d = dm_now_ns() - t0;
        if (d > w->max_ns) w->max_ns = d;
        w->written++;
    }
    return NULL;
}

static void test_compaction_with_writer(void)
{
    char *dir = tu_tmpdir("maint");
    dm_log_t *log = open_log(dir);
    REQUIRE(log);
    dm_error_t err = {0};
    REQUIRE(dm_log_topic_create(log,
                                &(dm_log_topic_conf_t){.name = "cc",
                                                       .compact = true,
                                                       .segment_bytes = 1024,
                                                       .fsync = DM_LOG_FSYNC_NEVER},
                                &err) == 0);
    writer_t w = {.log = log};
    pthread_t th;
    pthread_create(&th, NULL, writer_main, &w);
    int rewritten = 0;
    for (int i = 0; i < 20; i++) {
        dm_sleep_ms(5);
        rewritten += dm_log_maintain(log, dm_wall_ms());
    }
    while (w.written < 20000 && rewritten < 1000)
        rewritten += dm_log_maintain(log, dm_wall_ms());
    w.stop = 1;
    pthread_join(th, NULL);
    printf("    %d records written during %d segment rewrites; slowest produce %.1f ms\n",
           w.written, rewritten, (double)w.max_ns / 1e6);
    CHECK(rewritten > 0);
    char last[10][32];
    int counts[10], tombs;
    read_all(log, "cc", last, counts, &tombs);
    for (int k = 0; k < 10; k++) {
        /* the last value written for key k survives */
        int lastw = -1;
        for (int i = w.written - 1; i >= 0; i--)
            if (i % 10 == k) {
                lastw = i;
                break;
            }
        char want[32];
        snprintf(want, sizeof(want), "w%d", lastw);
        if (lastw >= 0) CHECK_STR_EQ(last[k], want);
    }
    dm_log_close(log);
    tu_rmrf(dir);
    free(dir);
}

/* ---- merging small segments ---------------------------------------------------------- */

typedef struct mwriter {
    dm_log_t *log;
    volatile int stop;
    int written, failed;
    int64_t last_off;
} mwriter_t;

static void *mwriter_main(void *arg)
{
    mwriter_t *w = arg;
    while (!w->stop || w->written < 50) {
        char val[32];
        snprintf(val, sizeof(val), "w%d", w->written);
        dm_log_record_t r = {.key = (const uint8_t *)"w",
                             .key_len = 1,
                             .value = (const uint8_t *)val,
                             .value_len = (int32_t)strlen(val)};
        int64_t off;
        if (dm_log_produce(w->log, "m", 0, &r, 1, &off, NULL))
            w->failed++;
        else
            w->last_off = off;
        w->written++;
    }
    return NULL;
}

/* The value at off must be want. */
static int read_at(dm_log_t *log, int64_t off, const char *want)
{
    dm_log_fetch_t f;
    dm_log_fetch_init(&f);
    int ok = dm_log_read(log, "m", 0, off, 1, 0, &f, NULL) == 0 && f.n > 0 &&
             f.records[0].offset == off && f.records[0].value_len == (int32_t)strlen(want) &&
             !memcmp(f.records[0].value, want, strlen(want));
    dm_log_fetch_free(&f);
    return ok;
}

/* Segment files of topic m holding offsets below end (the concurrent producer adds
 * segments past it). */
static int segments_below(const char *dir, int64_t end)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/topics", dir);
    DIR *d = opendir(path);
    struct dirent *de;
    while (d && (de = readdir(d)))
        if (!strncmp(de->d_name, "m.", 2)) break;
    if (!d || !de) {
        if (d) closedir(d);
        return -1;
    }
    snprintf(path + strlen(path), sizeof(path) - strlen(path), "/%s", de->d_name);
    closedir(d);
    d = opendir(path);
    int n = 0;
    while (d && (de = readdir(d)))
        if (strlen(de->d_name) == 24 && !strcmp(de->d_name + 20, ".log") &&
            strtoll(de->d_name, NULL, 10) < end)
            n++;
    if (d) closedir(d);
    return n;
}

/* After compaction by key leaves many small segments, a maintenance pass merges
 * neighbours: the segment count drops, every key's latest value reads back at the offset
 * it was written at (before and after a restart), and a producer on the same partition
 * keeps committing throughout. */
static void test_compaction_merges_small_segments(void)
{
    char *dir = tu_tmpdir("maint");
    dm_log_t *log = open_log(dir);
    REQUIRE(log);
    dm_error_t err = {0};
    REQUIRE(dm_log_topic_create(log,
                                &(dm_log_topic_conf_t){.name = "m",
                                                       .compact = true,
                                                       .segment_bytes = 4096,
                                                       .delete_retention_ms = 60000},
                                &err) == 0);
    enum { KEYS = 20, ROUNDS = 40 };
    int64_t latest[KEYS];
    char want[KEYS][48];
    for (int round = 0; round < ROUNDS; round++)
        for (int k = 0; k < KEYS; k++) {
            char key[8];
            snprintf(key, sizeof(key), "k%02d", k);
            snprintf(want[k], sizeof(want[k]), "round %d of key %d, some padding", round, k);
            dm_log_record_t r = {.key = (const uint8_t *)key,
                                 .key_len = 3,
                                 .value = (const uint8_t *)want[k],
                                 .value_len = (int32_t)strlen(want[k])};
            REQUIRE(dm_log_produce(log, "m", 0, &r, 1, &latest[k], &err) == 0);
        }
    REQUIRE(dm_log_journal_sync(log, &err) == 0); /* sealed segments synced: mergeable */
    int64_t end;
    REQUIRE(dm_log_offsets(log, "m", 0, NULL, &end, &err) == 0);
    int before = segments_below(dir, end);
    mwriter_t w = {.log = log};
    pthread_t th;
    pthread_create(&th, NULL, mwriter_main, &w);
    int n = dm_log_maintain(log, dm_wall_ms());
    w.stop = 1;
    pthread_join(th, NULL);
    int after = segments_below(dir, end);
    printf("    %d segments -> %d (maintenance: %d), %d records produced meanwhile\n", before,
           after, n, w.written);
    CHECK(before > 10);
    CHECK(after > 0 && after <= before / 3);
    CHECK_EQ_INT(w.failed, 0);
    int bad = 0;
    for (int k = 0; k < KEYS; k++)
        bad += !read_at(log, latest[k], want[k]);
    CHECK_EQ_INT(bad, 0);
    char last_w[32];
    snprintf(last_w, sizeof(last_w), "w%d", w.written - 1);
    CHECK(read_at(log, w.last_off, last_w));
    dm_log_close(log);
    tu_capture_logs();
    log = open_log(dir);
    REQUIRE(log);
    bad = 0;
    for (int k = 0; k < KEYS; k++)
        bad += !read_at(log, latest[k], want[k]);
    dm_log_set_sink(NULL, NULL);
    CHECK_EQ_INT(bad, 0);
    CHECK(read_at(log, w.last_off, last_w));
    CHECK_EQ_INT(segments_below(dir, end), after);
    CHECK(strstr(tu_logbuf, "damaged") == NULL);
    dm_log_close(log);
    tu_rmrf(dir);
    free(dir);
}

/* A merge decided before a crash (its <first>.log.merged-<end> complete, the old segments
 * still there) is finished by the next open: one segment instead of the run, every
 * record readable once at its offset. A .merging file (not decided) is dropped. */
static void test_merge_finished_by_recovery(void)
{
    char *dir = tu_tmpdir("maint");
    dm_log_t *log = open_log(dir);
    REQUIRE(log);
    dm_error_t err = {0};
    REQUIRE(dm_log_topic_create(log, &(dm_log_topic_conf_t){.name = "m", .segment_bytes = 1024},
                                &err) == 0);
    char want[60][48];
    for (int i = 0; i < 60; i++) {
        snprintf(want[i], sizeof(want[i]), "record %d with some padding", i);
        dm_log_record_t r = {.key_len = -1,
                             .value = (const uint8_t *)want[i],
                             .value_len = (int32_t)strlen(want[i])};
        REQUIRE(dm_log_produce(log, "m", 0, &r, 1, NULL, &err) == 0);
    }
    dm_log_close(log);
    /* the run: every segment file but the active (last) one */
    char pdir[4200];
    snprintf(pdir, sizeof(pdir), "%s/topics", dir);
    DIR *d = opendir(pdir);
    struct dirent *de;
    while ((de = readdir(d)) && strncmp(de->d_name, "m.", 2))
        ;
    REQUIRE(de);
    snprintf(pdir + strlen(pdir), sizeof(pdir) - strlen(pdir), "/%s", de->d_name);
    closedir(d);
    int before = segments_below(dir, INT64_MAX);
    REQUIRE(before >= 4);
    int64_t bases[64];
    int nb = 0;
    d = opendir(pdir);
    while ((de = readdir(d)) && nb < 64)
        if (strlen(de->d_name) == 24 && !strcmp(de->d_name + 20, ".log"))
            bases[nb++] = strtoll(de->d_name, NULL, 10);
    closedir(d);
    for (int i = 0; i < nb; i++) /* sort */
        for (int j = i + 1; j < nb; j++)
            if (bases[j] < bases[i]) {
                int64_t t = bases[i];
                bases[i] = bases[j];
                bases[j] = t;
            }
    char out[4400], in[4400], cmd[9000];
    snprintf(out, sizeof(out), "%s/%020lld.log.merged-%020lld", pdir, (long long)bases[0],
             (long long)bases[nb - 1]);
    for (int i = 0; i < nb - 1; i++) {
        snprintf(in, sizeof(in), "%s/%020lld.log", pdir, (long long)bases[i]);
        snprintf(cmd, sizeof(cmd), "cat %s >> %s", in, out);
        REQUIRE(system(cmd) == 0);
    }
    snprintf(cmd, sizeof(cmd), "echo junk > %s/%020lld.log.merging", pdir, (long long)bases[0]);
    REQUIRE(system(cmd) == 0);
    tu_capture_logs();
    log = open_log(dir);
    REQUIRE(log);
    int bad = 0;
    for (int i = 0; i < 60; i++)
        bad += !read_at(log, i, want[i]);
    int64_t start, end;
    dm_log_offsets(log, "m", 0, &start, &end, &err);
    dm_log_set_sink(NULL, NULL);
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(start, 0);
    CHECK_EQ_INT(end, 60);
    CHECK_EQ_INT(segments_below(dir, INT64_MAX), 2);
    CHECK(strstr(tu_logbuf, "finished merging") != NULL);
    d = opendir(pdir);
    int leftovers = 0;
    while ((de = readdir(d)))
        leftovers += strstr(de->d_name, "merg") != NULL;
    closedir(d);
    CHECK_EQ_INT(leftovers, 0);
    dm_log_close(log);
    tu_rmrf(dir);
    free(dir);
}

int main(void)
{
    dm_log_set_level(DM_LOG_WARN);
    RUN(test_retention_by_size);
    RUN(test_retention_by_time);
    RUN(test_compaction);
    RUN(test_compaction_with_writer);
    RUN(test_compaction_merges_small_segments);
    RUN(test_merge_finished_by_recovery);
    return check_summary();
}
