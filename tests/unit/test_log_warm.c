/* tests/unit/test_log_warm.c — space and page cache made ahead of busy writers by the
 * warmer thread (log/warm.c): a tailing reader sees every record while segments grow, roll
 * and are cut back; sealed segments hold no reserved tail; topics deleted with requests in
 * flight leave nothing behind. */
#include <glob.h>
#include <pthread.h>
#include <sys/stat.h>

#include "check.h"
#include "log/log.h"
#include "test_log_util.h"

#define VAL   1000
#define BATCH 100

static dm_log_t *open_bg(const char *dir)
{
    dm_log_t *log = NULL;
    dm_error_t err = {0};
    if (dm_log_open(dir, &(dm_log_options_t){0}, &log, &err)) printf("    open: %s\n", err.message);
    return log;
}

/* Record o's value: its offset, then bytes that follow from it. */
static void fill(uint8_t *v, int64_t o)
{
    memcpy(v, &o, 8);
    for (int i = 8; i < VAL; i++)
        v[i] = (uint8_t)(o * 7 + i);
}

static bool value_ok(const dm_log_record_t *r)
{
    static __thread uint8_t want[VAL];
    if (r->value_len != VAL) return false;
    fill(want, r->offset);
    return !memcmp(r->value, want, VAL);
}

typedef struct tail {
    dm_log_t *log;
    int64_t want;
    int64_t seen, bad;
} tail_t;

static void *tailer(void *arg)
{
    tail_t *t = arg;
    dm_log_fetch_t f;
    dm_log_fetch_init(&f);
    int64_t off = 0;
    while (off < t->want) {
        dm_error_t err = {0};
        if (dm_log_read(t->log, "busy", 0, off, 1 << 20, 1000, &f, &err)) {
            printf("    tail read at %lld: %s\n", (long long)off, err.message);
            t->bad++;
            break;
        }
        for (size_t i = 0; i < f.n; i++) {
            t->bad += f.records[i].offset != off + (int64_t)i || !value_ok(&f.records[i]);
            t->seen++;
        }
        if (f.n) off = f.next_offset;
    }
    dm_log_fetch_free(&f);
    return NULL;
}

static int64_t produce(dm_log_t *log, const char *topic, int64_t from, int batches)
{
    static uint8_t vals[BATCH][VAL];
    dm_log_record_t r[BATCH];
    dm_error_t err = {0};
    for (int b = 0; b < batches; b++) {
        for (int i = 0; i < BATCH; i++) {
            fill(vals[i], from + i);
            r[i] = (dm_log_record_t){.value = vals[i], .value_len = VAL, .key_len = -1};
        }
        int64_t base;
        if (dm_log_produce(log, topic, 0, r, BATCH, &base, &err) || base != from) {
            printf("    produce at %lld: %s\n", (long long)from, err.message);
            return -1;
        }
        from += BATCH;
    }
    return from;
}

static void test_tailing_reader_across_rolls(void)
{
    char *dir = tu_tmpdir("warm");
    dm_log_t *log = open_bg(dir);
    REQUIRE(log);
    dm_error_t err = {0};
    /* 6 MiB segments: several rolls (each cuts the reserved tail) while the warmer works */
    REQUIRE(dm_log_topic_create(
                log, &(dm_log_topic_conf_t){.name = "busy", .segment_bytes = 6 << 20}, &err) == 0);
    tail_t t = {.log = log, .want = 300 * BATCH};
    pthread_t th;
    REQUIRE(pthread_create(&th, NULL, tailer, &t) == 0);
    CHECK_EQ_INT(produce(log, "busy", 0, 300), 300 * BATCH); /* ~31 MB */
    pthread_join(th, NULL);
    CHECK_EQ_INT(t.seen, 300 * BATCH);
    CHECK_EQ_INT(t.bad, 0);
    dm_log_close(log);

    /* every segment file holds exactly its batches: nothing reserved is left behind */
    log = open_bg(dir);
    REQUIRE(log);
    dm_log_topic_info_t info;
    REQUIRE(dm_log_topic_describe(log, "busy", &info, &err) == 0);
    CHECK(info.parts[0].segments >= 5);
    int64_t data = info.parts[0].size_bytes;
    free(info.parts);
    char pattern[4096];
    snprintf(pattern, sizeof(pattern), "%s/topics/busy.*/*.log", dir);
    glob_t g;
    REQUIRE(glob(pattern, 0, NULL, &g) == 0);
    int64_t files = 0;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        struct stat st;
        if (stat(g.gl_pathv[i], &st) == 0) files += st.st_size;
    }
    globfree(&g);
    CHECK_EQ_INT(files, data);
    t = (tail_t){.log = log, .want = 300 * BATCH};
    tailer(&t);
    CHECK_EQ_INT(t.seen, 300 * BATCH);
    CHECK_EQ_INT(t.bad, 0);
    dm_log_close(log);
    tu_rmrf(dir);
    free(dir);
}

/* Topics deleted right after a burst, with warm requests still queued: no use after free
 * (the ASan build watches), no files left, and the log still works. */
static void test_delete_with_requests_in_flight(void)
{
    char *dir = tu_tmpdir("warm-del");
    dm_log_t *log = open_bg(dir);
    REQUIRE(log);
    dm_error_t err = {0};
    for (int round = 0; round < 6; round++) {
        REQUIRE(dm_log_topic_create(log, &(dm_log_topic_conf_t){.name = "burst"}, &err) == 0);
        CHECK_EQ_INT(produce(log, "burst", 0, 40), 40 * BATCH); /* 4 MB */
        REQUIRE(dm_log_topic_delete(log, "burst", &err) == 0);
    }
    REQUIRE(dm_log_topic_create(log, &(dm_log_topic_conf_t){.name = "busy"}, &err) == 0);
    CHECK_EQ_INT(produce(log, "busy", 0, 30), 30 * BATCH);
    dm_log_close_dirty(log); /* a crash: reserved space stays as zeros */
    log = open_bg(dir);
    REQUIRE(log);
    tail_t t = {.log = log, .want = 30 * BATCH};
    tailer(&t);
    CHECK_EQ_INT(t.seen, 30 * BATCH);
    CHECK_EQ_INT(t.bad, 0);
    CHECK_EQ_INT(produce(log, "busy", 30 * BATCH, 10), 40 * BATCH);
    dm_log_close(log);
    tu_rmrf(dir);
    free(dir);
}

int main(void)
{
    dm_log_set_level(DM_LOG_WARN);
    RUN(test_tailing_reader_across_rolls);
    RUN(test_delete_with_requests_in_flight);
    return check_summary();
}
