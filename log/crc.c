/* log/crc.c — CRC-32C of batches, three streams at a time.
 *
 * core/crc32c.c runs the crc32 instruction as one dependency chain, which its 3-cycle
 * latency limits to a third of what the CPU can do. Batches are checksummed twice on their
 * way through the log (produce and every read), so this version runs three independent
 * chains over consecutive 4 KiB blocks and joins them with precomputed "append n zero
 * bytes" tables (CRC is linear: crc(A||B) = shift_|B|(crc(A)) ^ crc0(B)). Results equal
 * dm_crc32c's exactly (tests/unit/test_log_basic.c checks), bench/bench_log shows the gain.
 */
#include <pthread.h>
#include <string.h>

#include "core/crc32c.h"
#include "log/batch.h"

#define BLK 4096

#if defined(__x86_64__)
static uint32_t shift1[4][256], shift2[4][256]; /* append BLK / 2*BLK zero bytes */
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int hw;

__attribute__((target("sse4.2"))) static uint32_t raw_zeros(uint32_t c, size_t n)
{
    uint64_t r = c;
    for (size_t i = 0; i < n / 8; i++)
        r = __builtin_ia32_crc32di(r, 0);
    return (uint32_t)r;
}

static void make_table(uint32_t t[4][256], size_t n)
{
    uint32_t basis[32];
    for (int j = 0; j < 32; j++)
        basis[j] = raw_zeros(1u << j, n);
    for (int k = 0; k < 4; k++)
        for (int b = 0; b < 256; b++) {
            uint32_t v = 0;
            for (int bit = 0; bit < 8; bit++)
                if (b & (1 << bit)) v ^= basis[8 * k + bit];
            t[k][b] = v;
        }
}

static void init(void)
{
    hw = dm_crc32c_hw_available();
    if (!hw) return;
    make_table(shift1, BLK);
    make_table(shift2, 2 * BLK);
}

static inline uint32_t shift(uint32_t t[4][256], uint32_t c)
{
    return t[0][c & 0xff] ^ t[1][(c >> 8) & 0xff] ^ t[2][(c >> 16) & 0xff] ^ t[3][c >> 24];
}

__attribute__((target("sse4.2"))) static uint32_t crc3(uint32_t crc, const uint8_t *p, size_t len)
{
    uint64_t c = (uint32_t)~crc;
    while (len >= 3 * BLK) {
        uint64_t a = c, b = 0, d = 0;
        for (size_t i = 0; i < BLK; i += 8) {
            uint64_t wa, wb, wd;
            memcpy(&wa, p + i, 8);
            memcpy(&wb, p + BLK + i, 8);
            memcpy(&wd, p + 2 * BLK + i, 8);
            a = __builtin_ia32_crc32di(a, wa);
            b = __builtin_ia32_crc32di(b, wb);
            d = __builtin_ia32_crc32di(d, wd);
        }
        c = shift(shift2, (uint32_t)a) ^ shift(shift1, (uint32_t)b) ^ (uint32_t)d;
        p += 3 * BLK;
        len -= 3 * BLK;
    }
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c = __builtin_ia32_crc32di(c, w);
        p += 8;
        len -= 8;
    }
    while (len--)
        c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
    return ~(uint32_t)c;
}

uint32_t dm_batch_crc32c(uint32_t crc, const void *buf, size_t len)
{
    pthread_once(&once, init);
    if (!hw || len < 3 * BLK) return dm_crc32c(crc, buf, len);
    return crc3(crc, buf, len);
}
#else
uint32_t dm_batch_crc32c(uint32_t crc, const void *buf, size_t len)
{
    return dm_crc32c(crc, buf, len);
}
#endif
