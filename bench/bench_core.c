/* bench/bench_core.c — what the batch arena buys over malloc/free.
 *
 * The work: batches of 1,000 records, each record allocating three values of
 * 8..200 bytes and touching them, all released at the end of the batch. The
 * baseline does it with glibc malloc/free (the honest default for C code);
 * datamesh with dm_arena_alloc and one dm_arena_reset per batch. Also prints
 * CRC32C throughput, hardware vs the portable table, for information.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/clock.h"
#include "core/crc32c.h"

#define BATCHES 20000
#define RECORDS 1000
#define VALUES  3

static size_t sizes[RECORDS * VALUES];

static double run_malloc(void)
{
    static void *ptrs[RECORDS * VALUES];
    uint64_t t0 = dm_now_ns();
    for (int b = 0; b < BATCHES; b++) {
        for (int i = 0; i < RECORDS * VALUES; i++) {
            ptrs[i] = malloc(sizes[i]);
            memset(ptrs[i], i, 8);
        }
        for (int i = 0; i < RECORDS * VALUES; i++)
            free(ptrs[i]);
    }
    return (double)BATCHES * RECORDS / ((double)(dm_now_ns() - t0) / 1e9);
}

static double run_arena(void)
{
    dm_arena_t a;
    dm_arena_init(&a, 0);
    uint64_t t0 = dm_now_ns();
    for (int b = 0; b < BATCHES; b++) {
        for (int i = 0; i < RECORDS * VALUES; i++) {
            void *p = dm_arena_alloc(&a, sizes[i]);
            memset(p, i, 8);
        }
        dm_arena_reset(&a);
    }
    double rate = (double)BATCHES * RECORDS / ((double)(dm_now_ns() - t0) / 1e9);
    printf("arena: %llu chunk mallocs over %d batches\n", (unsigned long long)a.mallocs, BATCHES);
    dm_arena_destroy(&a);
    return rate;
}

int main(void)
{
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < RECORDS * VALUES; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        sizes[i] = 8 + x % 193;
    }
    run_malloc(); /* warm up the allocator's caches */
    double base = run_malloc();
    double dm = run_arena();
    printf("baseline malloc/free: %.2f M records/s\n", base / 1e6);
    printf("datamesh arena:       %.2f M records/s\n", dm / 1e6);

    size_t n = 64 << 20;
    unsigned char *buf = malloc(n);
    memset(buf, 0xa5, n);
    dm_crc32c(0, buf, 1 << 16); /* builds the tables of the long-input path */
    uint64_t t0 = dm_now_ns();
    uint32_t c1 = dm_crc32c(0, buf, n);
    double hw = (double)n / ((double)(dm_now_ns() - t0) / 1e9) / 1e9;
    t0 = dm_now_ns();
    uint32_t c2 = dm_crc32c_sw(0, buf, n);
    double sw = (double)n / ((double)(dm_now_ns() - t0) / 1e9) / 1e9;
    printf("crc32c: %s %.2f GB/s, table %.2f GB/s (%s)\n",
           dm_crc32c_hw_available() ? "sse4.2" : "(no sse4.2)", hw, sw,
           c1 == c2 ? "same result" : "MISMATCH");
    free(buf);
    printf("core ratio=%.2f target=2\n", dm / base);
    return c1 == c2 ? 0 : 1;
}
