/* core/crc32c.c — CRC-32C with a hardware path and a table fallback. */
#include "core/crc32c.h"

#include <pthread.h>
#include <string.h>

#define POLY 0x82f63b78u /* reflected Castagnoli polynomial */

static uint32_t table[8][256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void table_init(void)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ POLY : c >> 1;
        table[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; n++)
        for (int t = 1; t < 8; t++)
            table[t][n] = (table[t - 1][n] >> 8) ^ table[0][table[t - 1][n] & 0xff];
}

uint32_t dm_crc32c_sw(uint32_t crc, const void *buf, size_t len)
{
    pthread_once(&table_once, table_init);
    const uint8_t *p = buf;
    crc = ~crc;
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8); /* little-endian hosts only, like the rest of the log format */
        w ^= crc;
        crc = table[7][w & 0xff] ^ table[6][(w >> 8) & 0xff] ^ table[5][(w >> 16) & 0xff] ^
              table[4][(w >> 24) & 0xff] ^ table[3][(w >> 32) & 0xff] ^ table[2][(w >> 40) & 0xff] ^
              table[1][(w >> 48) & 0xff] ^ table[0][w >> 56];
        p += 8;
        len -= 8;
    }
    while (len--)
        crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xff];
    return ~crc;
}

#if defined(__x86_64__)
/* Long inputs (log batches, checksummed on every produce and read) run three
 * independent crc32 chains over consecutive 4 KiB blocks: one chain is bound by
 * the instruction's 3-cycle latency, three keep the unit busy. CRC is linear,
 * crc(A||B) = shift_|B|(crc(A)) ^ crc0(B), so the chains are joined with
 * tables that "append BLK zero bytes" to a CRC. */
#define BLK 4096

static uint32_t shift1[4][256], shift2[4][256]; /* append BLK / 2*BLK zero bytes */
static pthread_once_t shift_once = PTHREAD_ONCE_INIT;

__attribute__((target("sse4.2"))) static uint32_t raw_zeros(uint32_t c, size_t n)
{
    uint64_t r = c;
    for (size_t i = 0; i < n / 8; i++)
        r = __builtin_ia32_crc32di(r, 0);
    return (uint32_t)r;
}

static void make_shift(uint32_t t[4][256], size_t n)
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

static void shift_init(void)
{
    make_shift(shift1, BLK);
    make_shift(shift2, 2 * BLK);
}

static inline uint32_t shift(uint32_t t[4][256], uint32_t c)
{
    return t[0][c & 0xff] ^ t[1][(c >> 8) & 0xff] ^ t[2][(c >> 16) & 0xff] ^ t[3][c >> 24];
}

__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const void *buf,
                                                            size_t len)
{
    const uint8_t *p = buf;
    uint64_t c = ~crc;
    if (len >= 3 * BLK) {
        pthread_once(&shift_once, shift_init);
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

int dm_crc32c_hw_available(void)
{
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("sse4.2") ? 1 : 0;
    }
    return cached;
}

uint32_t dm_crc32c(uint32_t crc, const void *buf, size_t len)
{
    return dm_crc32c_hw_available() ? crc32c_hw(crc, buf, len) : dm_crc32c_sw(crc, buf, len);
}
#else
int dm_crc32c_hw_available(void)
{
    return 0;
}

uint32_t dm_crc32c(uint32_t crc, const void *buf, size_t len)
{
    return dm_crc32c_sw(crc, buf, len);
}
#endif
