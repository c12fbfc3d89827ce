/* tests/integration/iceberg_parquet.c — Parquet files from the project's
 * writer, read back by an independent reader (hyparquet, from npm): every
 * value, the field ids and the chunk statistics, for each codec, with nulls,
 * dictionary and PLAIN chunks, several row groups and pages. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "connectors/iceberg/parquet.h"

static char dir[512], readers[512];

static const dm_pq_column_t cols[] = {
    {.name = "id", .field_id = 1, .type = DM_PQ_INT64},
    {.name = "name",
     .field_id = 2,
     .type = DM_PQ_BYTE_ARRAY,
     .logical = DM_PQ_LT_STRING,
     .optional = true},
    {.name = "amount", .field_id = 3, .type = DM_PQ_DOUBLE},
    {.name = "flag", .field_id = 4, .type = DM_PQ_BOOLEAN, .optional = true},
    {.name = "day", .field_id = 5, .type = DM_PQ_INT32, .logical = DM_PQ_LT_DATE},
    {.name = "ts",
     .field_id = 6,
     .type = DM_PQ_INT64,
     .logical = DM_PQ_LT_TIMESTAMP_UTC,
     .optional = true},
    {.name = "blob", .field_id = 7, .type = DM_PQ_BYTE_ARRAY},
    {.name = "small", .field_id = 8, .type = DM_PQ_INT32, .optional = true},
};
#define NCOLS (sizeof(cols) / sizeof(cols[0]))

/* Writes rows of every shape into PATH and the expected JSON lines next to it. */
static int write_file(const char *path, dm_pq_codec_t codec, int rows, bool dict)
{
    FILE *f = fopen(path, "wb");
    char exp[600];
    snprintf(exp, sizeof(exp), "%s.jsonl", path);
    FILE *e = fopen(exp, "w");
    if (!f || !e) return -1;
    dm_pq_options_t o = {.codec = codec,
                         .row_group_bytes = 256 << 10,
                         .page_bytes = 16 << 10,
                         .dict_bytes = 64 << 10,
                         .no_dictionary = !dict};
    dm_pq_writer_t *w;
    dm_error_t err = {0};
    if (dm_pq_writer_new(f, cols, NCOLS, &o, &w, &err)) return -1;
    for (int i = 0; i < rows; i++) {
        char name[32], blob[40];
        int nl = snprintf(name, sizeof(name), "name-%d", (i * 7) % 23);
        /* Unique blobs overflow the dictionary limit: PLAIN fallback. */
        int bl = snprintf(blob, sizeof(blob), "blob-%08d-%d", i, i * 31);
        dm_pq_value_t v[NCOLS] = {0};
        v[0].u.i64 = (int64_t)i * 1000003 - 5000000;
        v[1].null = i % 5 == 0;
        v[1].u.s.p = (const uint8_t *)name, v[1].u.s.len = (uint32_t)nl;
        v[2].u.d = (i % 100) * 0.25 - 3;
        v[3].null = i % 3 == 0;
        v[3].u.b = i % 2;
        v[4].u.i32 = 19000 + i / 100;
        v[5].null = i % 7 == 3;
        v[5].u.i64 = 1700000000000000LL + (int64_t)i * 1000;
        v[6].u.s.p = (const uint8_t *)blob, v[6].u.s.len = (uint32_t)bl;
        v[7].null = i < rows / 2; /* a long run of nulls, then values */
        v[7].u.i32 = i % 4;
        if (dm_pq_writer_add_row(w, v, &err)) {
            printf("    add_row: %s\n", err.message);
            return -1;
        }
        fprintf(e, "{\"id\":\"%" PRId64 "\",\"name\":", v[0].u.i64);
        if (v[1].null)
            fprintf(e, "null");
        else
            fprintf(e, "\"%s\"", name);
        fprintf(e, ",\"amount\":%.17g,\"flag\":%s,\"day\":%d,\"ts\":", v[2].u.d,
                v[3].null  ? "null"
                : v[3].u.b ? "true"
                           : "false",
                v[4].u.i32);
        if (v[5].null)
            fprintf(e, "null");
        else
            fprintf(e, "\"%" PRId64 "\"", v[5].u.i64);
        fprintf(e, ",\"blob\":\"");
        for (int k = 0; k < bl; k++)
            fprintf(e, "%02x", (unsigned char)blob[k]);
        fprintf(e, "\",\"small\":");
        if (v[7].null)
            fprintf(e, "null}\n");
        else
            fprintf(e, "%d}\n", v[7].u.i32);
    }
    dm_pq_column_stats_t st[NCOLS];
    int64_t bytes = 0;
    if (dm_pq_writer_close(w, st, &bytes, &err)) {
        printf("    close: %s\n", err.message);
        return -1;
    }
    fclose(f);
    fclose(e);
    /* File-level statistics for the manifest: id's bounds and the null counts. */
    int64_t lo, hi;
    memcpy(&lo, st[0].min, 8), memcpy(&hi, st[0].max, 8);
    if (!st[0].has_bounds || lo != -5000000 || hi != (int64_t)(rows - 1) * 1000003 - 5000000)
        return -2;
    if (st[1].nulls != (rows + 4) / 5 || st[0].values != rows) return -3;
    if (!st[6].has_bounds || st[6].min_len != 15 || memcmp(st[6].min, "blob-00000000-0", 15))
        return -4;
    return 0;
}

/* Our own reader (compaction's) gives back the same rows: printed the way
 * write_file printed the expected ones, the texts must be equal. */
static int own_reader(const char *path)
{
    dm_pq_reader_t *r;
    dm_error_t err = {0};
    if (dm_pq_reader_open(path, &r, &err)) {
        printf("    reader: %s\n", err.message);
        return -1;
    }
    int64_t rows = dm_pq_reader_rows(r);
    dm_pq_value_t *cv[NCOLS];
    for (size_t c = 0; c < NCOLS; c++) {
        cv[c] = calloc((size_t)rows + 1, sizeof(dm_pq_value_t));
        if (dm_pq_reader_column(r, c)->field_id != (int32_t)c + 1 ||
            dm_pq_reader_read_column(r, c, cv[c], &err)) {
            printf("    reader column %zu: %s\n", c, err.message);
            return -1;
        }
    }
    dm_buf_t b = DM_BUF_INIT;
    for (int64_t i = 0; i < rows; i++) {
        dm_buf_printf(&b, "{\"id\":\"%" PRId64 "\",\"name\":", cv[0][i].u.i64);
        if (cv[1][i].null)
            dm_buf_printf(&b, "null");
        else
            dm_buf_printf(&b, "\"%.*s\"", (int)cv[1][i].u.s.len, cv[1][i].u.s.p);
        dm_buf_printf(&b, ",\"amount\":%.17g,\"flag\":%s,\"day\":%d,\"ts\":", cv[2][i].u.d,
                      cv[3][i].null  ? "null"
                      : cv[3][i].u.b ? "true"
                                     : "false",
                      cv[4][i].u.i32);
        if (cv[5][i].null)
            dm_buf_printf(&b, "null");
        else
            dm_buf_printf(&b, "\"%" PRId64 "\"", cv[5][i].u.i64);
        dm_buf_printf(&b, ",\"blob\":\"");
        for (uint32_t k = 0; k < cv[6][i].u.s.len; k++)
            dm_buf_printf(&b, "%02x", cv[6][i].u.s.p[k]);
        dm_buf_printf(&b, "\",\"small\":");
        if (cv[7][i].null)
            dm_buf_printf(&b, "null}\n");
        else
            dm_buf_printf(&b, "%d}\n", cv[7][i].u.i32);
    }
    char exp[600];
    snprintf(exp, sizeof(exp), "%s.jsonl", path);
    FILE *f = fopen(exp, "rb");
    char *want = calloc(b.len + 2, 1);
    size_t n = f ? fread(want, 1, b.len + 1, f) : 0;
    if (f) fclose(f);
    int rc = n == b.len && !memcmp(want, b.data, b.len) ? 0 : -1;
    if (rc) printf("    own reader: %zu bytes of rows, expected %zu\n", b.len, n);
    free(want);
    dm_buf_free(&b);
    for (size_t c = 0; c < NCOLS; c++)
        free(cv[c]);
    dm_pq_reader_free(r);
    return rc;
}

static int read_back(const char *path)
{
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "cd %s && node read_parquet.mjs %s %s.jsonl", readers, path, path);
    return system(cmd);
}

static void run_case(const char *name, dm_pq_codec_t codec, int rows, bool dict)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/%s.parquet", dir, name);
    CHECK_EQ_INT(write_file(path, codec, rows, dict), 0);
    CHECK_EQ_INT(read_back(path), 0);
    CHECK_EQ_INT(own_reader(path), 0);
}

static void test_uncompressed(void)
{
    run_case("plain", DM_PQ_UNCOMPRESSED, 20000, true);
}
static void test_snappy(void)
{
    run_case("snappy", DM_PQ_SNAPPY, 20000, true);
}
static void test_zstd(void)
{
    run_case("zstd", DM_PQ_ZSTD, 20000, true);
}
static void test_no_dictionary(void)
{
    run_case("nodict", DM_PQ_ZSTD, 5000, false);
}
static void test_one_row(void)
{
    run_case("one", DM_PQ_SNAPPY, 1, true);
}

/* A chunk that gives up its dictionary, then a row group that keeps one for
 * more values than the first held: the index array must grow again. */
static void test_dictionary_again_after_fallback(void)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/redict.parquet", dir);
    FILE *f = fopen(path, "wb");
    REQUIRE(f);
    dm_pq_column_t col = {
        .name = "s", .field_id = 1, .type = DM_PQ_BYTE_ARRAY, .logical = DM_PQ_LT_STRING};
    dm_pq_options_t o = {.codec = DM_PQ_SNAPPY, .row_group_bytes = 400000};
    dm_pq_writer_t *w;
    dm_error_t err = {0};
    REQUIRE(dm_pq_writer_new(f, &col, 1, &o, &w, &err) == DM_OK);
    enum { N = 60000 };
    for (int i = 0; i < N; i++) {
        char b[32];
        int n = i < 20000 ? snprintf(b, sizeof(b), "unique-%d", i)
                          : snprintf(b, sizeof(b), "few-%d", i % 7);
        dm_pq_value_t v = {.u.s = {(const uint8_t *)b, (uint32_t)n}};
        REQUIRE(dm_pq_writer_add_row(w, &v, &err) == DM_OK);
    }
    REQUIRE(dm_pq_writer_close(w, NULL, NULL, &err) == DM_OK);
    fclose(f);
    dm_pq_reader_t *r;
    REQUIRE(dm_pq_reader_open(path, &r, &err) == DM_OK);
    dm_pq_value_t *v = calloc(N, sizeof(*v));
    CHECK_EQ_INT(dm_pq_reader_rows(r), N);
    CHECK_EQ_INT(dm_pq_reader_read_column(r, 0, v, &err), DM_OK);
    if (err.code) printf("    %s\n", err.message);
    CHECK(v[19999].u.s.len == 12 && !memcmp(v[19999].u.s.p, "unique-19999", 12));
    CHECK(v[N - 1].u.s.len == 5 && !memcmp(v[N - 1].u.s.p, "few-", 4));
    free(v);
    dm_pq_reader_free(r);
}

static void test_null_in_required_refused(void)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/bad.parquet", dir);
    FILE *f = fopen(path, "wb");
    REQUIRE(f);
    dm_pq_options_t o = {0};
    dm_pq_writer_t *w;
    dm_error_t err = {0};
    REQUIRE(dm_pq_writer_new(f, cols, NCOLS, &o, &w, &err) == DM_OK);
    dm_pq_value_t v[NCOLS] = {0};
    v[0].null = true;
    CHECK_EQ_INT(dm_pq_writer_add_row(w, v, &err), DM_ERR_INVALID);
    CHECK(strstr(err.message, "id") != NULL);
    dm_pq_writer_abort(w);
    fclose(f);
}

int main(void)
{
    snprintf(dir, sizeof(dir), "%s/iceberg_parquet.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir)) return 1;
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "bash %s/tests/integration/iceberg/readers.sh",
             getenv("DM_SOURCE_DIR"));
    FILE *p = popen(cmd, "r");
    if (!p || !fgets(readers, sizeof(readers), p) || pclose(p) != 0) {
        printf("FAIL cannot install the npm readers\n");
        return 1;
    }
    readers[strcspn(readers, "\n")] = 0;
    RUN(test_uncompressed);
    RUN(test_snappy);
    RUN(test_zstd);
    RUN(test_no_dictionary);
    RUN(test_one_row);
    RUN(test_dictionary_again_after_fallback);
    RUN(test_null_in_required_refused);
    int rc = check_summary();
    if (rc == 0) {
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        if (system(cmd)) {
        }
    }
    return rc;
}
