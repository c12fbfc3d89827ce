/* tests/unit/test_log_corrupt.c — damaged segments, indexes and journals; a full disk.
 * Every case: a clear error naming topic/partition/offset or the file, and committed data
 * stays readable wherever its bytes are intact. */
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>

#include "check.h"
#include "log/log.h"
#include "test_log_util.h"

static dm_log_t *open_log(const char *dir, dm_error_t *err)
{
    dm_log_t *log = NULL;
    dm_log_options_t opt = {.no_background = true, .index_interval_bytes = 512};
    dm_log_open(dir, &opt, &log, err);
    return log;
}

/* Topic t: n batches of 100 records "v<offset>" on partition 0. */
static char *setup(int n, int64_t segment_bytes)
{
    char *dir = tu_tmpdir("corrupt");
    dm_error_t err = {0};
    dm_log_t *log = open_log(dir, &err);
    if (!log) return NULL;
    dm_log_topic_create(log, &(dm_log_topic_conf_t){.name = "t", .segment_bytes = segment_bytes},
                        &err);
    char vals[100][32];
    dm_log_record_t r[100];
    for (int b = 0; b < n; b++) {
        for (int i = 0; i < 100; i++) {
            int l = snprintf(vals[i], 32, "v%d", b * 100 + i);
            r[i] = (dm_log_record_t){.key = (const uint8_t *)vals[i],
                                     .key_len = l,
                                     .value = (const uint8_t *)vals[i],
                                     .value_len = l};
        }
        dm_log_produce(log, "t", 0, r, 100, NULL, &err);
    }
    dm_log_close(log);
    return dir;
}

/* Reads [from, to) and checks each record's value; returns records seen. */
static int read_range(dm_log_t *log, int64_t from, int64_t to, dm_error_t *err)
{
    dm_log_fetch_t f;
    dm_log_fetch_init(&f);
    int seen = 0;
    int64_t off = from;
    while (off < to) {
        if (dm_log_read(log, "t", 0, off, 1 << 16, 0, &f, err) || f.n == 0) break;
        for (size_t i = 0; i < f.n; i++) {
            char want[32];
            snprintf(want, sizeof(want), "v%lld", (long long)f.records[i].offset);
            if (f.records[i].value_len == (int)strlen(want) &&
                !memcmp(f.records[i].value, want, strlen(want)) && f.records[i].offset < to)
                seen++;
        }
        off = f.next_offset;
    }
    dm_log_fetch_free(&f);
    return seen;
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) ? -1 : (long)st.st_size;
}

static void flip(const char *path, long at)
{
    int fd = open(path, O_RDWR);
    unsigned char c;
    if (pread(fd, &c, 1, at) == 1) {
        c ^= 0x5a;
        if (pwrite(fd, &c, 1, at) != 1) perror("pwrite");
    }
    close(fd);
}

/* Bytes after the last batch of a closed log, as a crash leaves them: junk_len bytes of
 * junk, then zeros bytes of zeros. Recovery cuts them all, calls them torn when there is
 * junk (a write cut short) and not when there are only zeros (space reserved ahead of the
 * writer), and the log goes on from offset 1000. */
static void check_tail_cut(size_t junk_len, long zeros)
{
    char *dir = setup(10, 0);
    REQUIRE(dir);
    char seg[4096];
    REQUIRE(tu_segment_file(dir, "t", 0, "log", 0, seg, sizeof(seg)) == 0);
    long size = file_size(seg);
    int fd = open(seg, O_WRONLY);
    REQUIRE(fd >= 0);
    const char junk[] = "\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f";
    REQUIRE(pwrite(fd, junk, junk_len, size) == (ssize_t)junk_len);
    REQUIRE(ftruncate(fd, size + (long)junk_len + zeros) == 0);
    close(fd);
    tu_capture_logs();
    dm_error_t err = {0};
    dm_log_t *log = open_log(dir, &err);
    REQUIRE(log);
    int64_t end;
    dm_log_offsets(log, "t", 0, NULL, &end, &err);
    dm_log_set_sink(NULL, NULL);
    CHECK_EQ_INT(end, 1000);
    CHECK_CONTAINS(tu_logbuf, "topic=t partition=0");
    CHECK(junk_len ? strstr(tu_logbuf, "torn") != NULL : strstr(tu_logbuf, "torn") == NULL);
    CHECK_EQ_INT(read_range(log, 0, 1000, &err), 1000);
    CHECK_EQ_INT(file_size(seg), size);
    dm_log_record_t r = {.value = (const uint8_t *)"v1000", .value_len = 5, .key_len = -1};
    int64_t base;
    REQUIRE(dm_log_produce(log, "t", 0, &r, 1, &base, &err) == 0);
    CHECK_EQ_INT(base, 1000);
    CHECK_EQ_INT(read_range(log, 0, 1001, &err), 1001);
    dm_log_close(log);
    tu_rmrf(dir);
    free(dir);
}

static void test_torn_tail_garbage(void)
{
    check_tail_cut(15, 0); /* half a batch header */
}

static void test_reserved_tail_after_crash(void)
{
    check_tail_cut(0, 3 << 20);
    check_tail_cut(7, 3 << 20); /* a torn write into the reserved space */
}

/* The space reserved ahead of a busy segment's writer is given back at close, and sizes
 * count data only. */
static void test_reserved_space_given_back(void)
{
    char *dir = setup(1, 0);
    REQUIRE(dir);
    dm_error_t err = {0};
    dm_log_t *log = open_log(dir, &err);
    REQUIRE(log);
    static char val[10000];
    dm_log_record_t r[100];
    for (int i = 0; i < 100; i++)
        r[i] = (dm_log_record_t){
            .value = (const uint8_t *)val, .value_len = sizeof(val), .key_len = -1};
    for (int b = 0; b < 4; b++) /* 4 MB */
        REQUIRE(dm_log_produce(log, "t", 0, r, 100, NULL, &err) == 0);
    dm_log_topic_info_t info;
    REQUIRE(dm_log_topic_describe(log, "t", &info, &err) == 0);
    char seg[4096];
    REQUIRE(tu_segment_file(dir, "t", 0, "log", 0, seg, sizeof(seg)) == 0);
    int64_t data = info.parts[0].size_bytes;
    free(info.parts);
    CHECK(file_size(seg) > data); /* reserved ahead while the writer is busy */
    CHECK(data > 4000000 && data < 4100000);
    dm_log_close(log);
    CHECK_EQ_INT(file_size(seg), data);
    log = open_log(dir, &err);
    REQUIRE(log);
    int64_t end;
    dm_log_offsets(log, "t", 0, NULL, &end, &err);
    CHECK_EQ_INT(end, 500);
    dm_log_close(log);
    tu_rmrf(dir);
    free(dir);
}

static void test_truncated_committed_batch(void)
{
    char *dir = setup(10, 0);
    REQUIRE(dir);
    char seg[4096];
    REQUIRE(tu_segment_file(dir, "t", 0, "log", 0, seg, sizeof(seg)) == 0);
    REQUIRE(truncate(seg, file_size(seg) - 10) == 0);
    tu_capture_logs();
    dm_error_t err = {0};
    dm_log_t *log = open_log(dir, &err);
    REQUIRE(log);
    int64_t end;
    dm_log_offsets(log, "t", 0, NULL, &end, &err);
    dm_log_set_sink(NULL, NULL);
    /* the last committed batch lost its bytes: reported, and the rest stays readable */
    CHECK_EQ_INT(end, 900);
    CHECK_CONTAINS(tu_logbuf, "committed offsets 900..999 are missing");
    CHECK_EQ_INT(read_range(log, 0, 900, &err), 900);
    dm_log_close(log);
    tu_rmrf(dir);
    free(dir);
}

static void test_uncommitted_batch_cut(void)
{
    char *dir = setup(3, 0);
    REQUIRE(dir);
    char seg[4096];
    REQUIRE(tu_segment_file(dir, "t", 0, "log", 0, seg, sizeof(seg)) == 0);
    long size = file_size(seg);
    /* a whole, valid batch (the first one, renumbered) that no journal record commits */
    int fd = open(seg, O_RDWR);
    uint8_t hdr[DM_BATCH_HEADER_SIZE];
    REQUIRE(pread(fd, hdr, sizeof(hdr), 0) == (ssize_t)sizeof(hdr));
    dm_batch_hdr_t h;
    REQUIRE(dm_batch_parse_header(hdr, sizeof(hdr), &h) == 0);
    uint8_t *b = malloc(h.length);
    REQUIRE(pread(fd, b, h.length, 0) == (ssize_t)h.length);
    dm_batch_set_base_offset(b, 300);
    REQUIRE(pwrite(fd, b, h.length, size) == (ssize_t)h.length);
    close(fd);
    free(b);
    tu_capture_logs();
    dm_error_t err = {0};
    dm_log_t *log = open_log(dir, &err);
    REQUIRE(log);
    int64_t end;
    dm_log_offsets(log, "t", 0, NULL, &end, &err);
    dm_log_set_sink(NULL, NULL);
    CHECK_EQ_INT(end, 300);
    CHECK_CONTAINS(tu_logbuf, "uncommitted data (offsets 300..399)");
    CHECK_EQ_INT(file_size(seg), size); /* the space is reclaimed */
    CHECK_EQ_INT(read_range(log, 0, 400, &err), 300);
    dm_log_close(log);
    tu_rmrf(dir);
    free(dir);
}

static void test_flipped_byte_in_sealed_segment(void)
{
    char *dir = setup(20, 4096);
    REQUIRE(dir);
    char seg[4096];
    REQUIRE(tu_segment_file(dir, "t", 0, "log", 1, seg, sizeof(seg)) == 0);
    /* the second segment's first batch: damage one byte of a record */
    flip(seg, 200);
    dm_error_t err = {0};
    dm_log_t *log = open_log(dir, &err);
    REQUIRE(log);
    const char *name = strrchr(seg, '/') + 1;
    long long base = atoll(name);
    dm_log_fetch_t f;
    dm_log_fetch_init(&f);
    CHECK(dm_log_read(log, "t", 0, base, 1 << 20, 0, &f, &err) == DM_ERR_LOG_CORRUPT);
    CHECK_CONTAINS(err.message, "topic=t partition=0");
    CHECK_CONTAINS(err.message, "fails its CRC");
    char want[64];
    snprintf(want, sizeof(want), "offsets %lld..", base);
    CHECK_CONTAINS(err.message, want);
    dm_log_fetch_free(&f);
    /* everything before and after the damaged batch is readable */
    CHECK_EQ_INT(read_range(log, 0, base, &err), base);
    CHECK_EQ_INT(read_range(log, base + 100, 2000, &err), 2000 - base - 100);
    dm_log_close(log);
    tu_rmrf(dir);
    free(dir);
}

static void test_damaged_indexes(void)
{
    char *dir = setup(20, 4096);
    REQUIRE(dir);
    char idx0[4096], idx1[4096], idx_last[4096];
    REQUIRE(tu_segment_file(dir, "t", 0, "idx", 0, idx0, sizeof(idx0)) == 0);
    REQUIRE(tu_segment_file(dir, "t", 0, "idx", 1, idx1, sizeof(idx1)) == 0);
    int nseg = 0;
    while (tu_segment_file(dir, "t", 0, "idx", nseg, idx_last, sizeof(idx_last)) == 0)
        nseg++;
    REQUIRE(nseg > 3);
    tu_segment_file(dir, "t", 0, "idx", nseg - 1, idx_last, sizeof(idx_last));
    /* garbage over one sealed index, another truncated to nothing, the active one torn */
    int fd = open(idx0, O_WRONLY);
    REQUIRE(write(fd, "garbage garbage garbage garbage!", 32) == 32);
    close(fd);
    REQUIRE(truncate(idx1, 0) == 0);
    REQUIRE(truncate(idx_last, file_size(idx_last) > 8 ? file_size(idx_last) - 8 : 0) == 0);
    char idx2[4096];
    REQUIRE(tu_segment_file(dir, "t", 0, "idx", 2, idx2, sizeof(idx2)) == 0);
    if (file_size(idx2) > 20) flip(idx2, 20); /* a position in the second entry */
    tu_capture_logs();
    dm_error_t err = {0};
    dm_log_t *log = open_log(dir, &err);
    REQUIRE(log);
    CHECK_EQ_INT(read_range(log, 0, 2000, &err), 2000);
    for (int64_t o = 0; o < 2000; o += 137)
        CHECK_EQ_INT(read_range(log, o, o + 1, &err), 1);
    int64_t off;
    CHECK(dm_log_offset_for_time(log, "t", 0, 0, &off, &err) == 0);
    CHECK_EQ_INT(off, 0);
    dm_log_set_sink(NULL, NULL);
    CHECK_CONTAINS(tu_logbuf, "index damaged, rebuilding");
    dm_log_close(log);
    tu_rmrf(dir);
    free(dir);
}

static void test_journal_damage(void)
{
    char *dir = setup(3, 0);
    REQUIRE(dir);
    char jpath[4096];
    snprintf(jpath, sizeof(jpath), "%s/journal", dir);
    dm_error_t err = {0};
    /* a torn tail is cut with a warning */
    int fd = open(jpath, O_WRONLY | O_APPEND);
    REQUIRE(write(fd, "\x30\x00\x00\x00\x01\x02", 6) == 6);
    close(fd);
    tu_capture_logs();
    dm_log_t *log = open_log(dir, &err);
    dm_log_set_sink(NULL, NULL);
    REQUIRE(log);
    CHECK_CONTAINS(tu_logbuf, "torn bytes");
    int64_t end;
    dm_log_offsets(log, "t", 0, NULL, &end, &err);
    CHECK_EQ_INT(end, 300);
    dm_log_close(log);
    /* a damaged record in the middle is an error, never a silent reset */
    flip(jpath, 20);
    log = open_log(dir, &err);
    CHECK(log == NULL);
    CHECK_EQ_INT(err.code, DM_ERR_LOG_META);
    CHECK_CONTAINS(err.message, "journal");
    CHECK_CONTAINS(err.message, "byte 8");
    flip(jpath, 20);
    log = open_log(dir, &err);
    REQUIRE(log);
    dm_log_close(log);
    /* a missing journal next to topic data is an error too */
    char moved[4200];
    snprintf(moved, sizeof(moved), "%s.away", jpath);
    REQUIRE(rename(jpath, moved) == 0);
    log = open_log(dir, &err);
    CHECK(log == NULL);
    CHECK_EQ_INT(err.code, DM_ERR_LOG_META);
    CHECK_CONTAINS(err.message, "missing");
    REQUIRE(rename(moved, jpath) == 0);
    /* not a journal at all */
    flip(jpath, 0);
    log = open_log(dir, &err);
    CHECK(log == NULL);
    CHECK_CONTAINS(err.message, "not a datamesh journal");
    tu_rmrf(dir);
    free(dir);
}

static void test_full_disk(void)
{
    char *dir = setup(1, 0);
    REQUIRE(dir);
    dm_error_t err = {0};
    dm_log_t *log = open_log(dir, &err);
    REQUIRE(log);
    char seg[4096];
    REQUIRE(tu_segment_file(dir, "t", 0, "log", 0, seg, sizeof(seg)) == 0);
    long size = file_size(seg);
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = (rlim_t)size + 4096;
    REQUIRE(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    static char big[20000];
    memset(big, 'x', sizeof(big));
    dm_log_record_t r = {.value = (const uint8_t *)big, .value_len = sizeof(big), .key_len = -1};
    dm_err_t rc = dm_log_produce(log, "t", 0, &r, 1, NULL, &err);
    setrlimit(RLIMIT_FSIZE, &old);
    CHECK_EQ_INT(rc, DM_ERR_NO_SPACE);
    CHECK_CONTAINS(err.message, "topic=t partition=0");
    CHECK_EQ_INT(file_size(seg), size); /* nothing half-written stays */
    int64_t end;
    dm_log_offsets(log, "t", 0, NULL, &end, &err);
    CHECK_EQ_INT(end, 100);
    dm_log_record_t small = {.value = (const uint8_t *)"v100", .value_len = 4, .key_len = -1};
    int64_t base;
    REQUIRE(dm_log_produce(log, "t", 0, &small, 1, &base, &err) == 0);
    CHECK_EQ_INT(base, 100);
    dm_log_close(log);
    log = open_log(dir, &err);
    REQUIRE(log);
    CHECK_EQ_INT(read_range(log, 0, 101, &err), 101);
    dm_log_close(log);
    tu_rmrf(dir);
    free(dir);
}

int main(void)
{
    dm_log_set_level(DM_LOG_INFO);
    RUN(test_torn_tail_garbage);
    RUN(test_reserved_tail_after_crash);
    RUN(test_reserved_space_given_back);
    RUN(test_truncated_committed_batch);
    RUN(test_uncommitted_batch_cut);
    RUN(test_flipped_byte_in_sealed_segment);
    RUN(test_damaged_indexes);
    RUN(test_journal_damage);
    RUN(test_full_disk);
    return check_summary();
}
