/* bench/bench_core.c — what the batch arena buys over malloc/free.
 *
 * The work: batches of 1,000 records, each record allocating three values of
 * 8..200 bytes and touching them, all released at the end of the batch. The
 * baseline does it with glibc malloc/free (the honest default for C code);
 * datamesh with dm_arena_alloc and one dm_arena_reset per batch. Also prints
 * CRC32C throughput of every implementation, for information.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/clock.h"
#include "core/crc32c.h"

#define BATCHES 20000

static volatile uint32_t crc_sink; /* keeps the timed CRCs from being optimized away */
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

    /* CRC32C of a 100 KB log batch, hot in cache (a batch checksummed right after it was
     * encoded), by every implementation this CPU runs; "sse4.2" is the previous default
     * (three interleaved crc32 chains). */
    size_t n = 100000, reps = 20000;
    unsigned char *buf = malloc(n);
    for (size_t i = 0; i < n; i++)
        buf[i] = (unsigned char)(i * 131 + (i >> 9));
    size_t n_impls;
    const dm_crc32c_impl_t *impls = dm_crc32c_impls(&n_impls);
    uint32_t want = dm_crc32c_sw(0, buf, n);
    int mismatch = 0;
    printf("crc32c (100 KB batch, hot), dm_crc32c uses %s:", dm_crc32c_impl_name());
    for (size_t k = 0; k < n_impls; k++) {
        if (!impls[k].available) continue;
        size_t r = impls[k].fn == dm_crc32c_sw ? reps / 20 : reps;
        uint32_t c = impls[k].fn(0, buf, n); /* warm up (tables, constants) */
        uint64_t t0 = dm_now_ns();
        for (size_t i = 0; i < r; i++)
            c ^= impls[k].fn((uint32_t)i & 1, buf, n);
        double gbs = (double)n * (double)r / ((double)(dm_now_ns() - t0) / 1e9) / 1e9;
        if (impls[k].fn(0, buf, n) != want) mismatch = 1;
        crc_sink ^= c;
        printf(" %s %.1f GB/s", impls[k].name, gbs);
    }
    printf("%s\n", mismatch ? " MISMATCH" : " (same results)");
    free(buf);
    printf("core ratio=%.2f target=2\n", dm / base);
    return mismatch;
}
