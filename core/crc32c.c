/* core/crc32c.c — CRC-32C: carry-less multiplication folding, the crc32 instruction
 * and a table, picked at run time by what the CPU has.
 *
 * Each accelerated path is compiled with a function-level target attribute, so the
 * build needs no -march flag and a CPU without the instructions never runs them.
 */
#include "core/crc32c.h"

#include <pthread.h>
#include <string.h>

#define POLY 0x82f63b78u /* reflected Castagnoli polynomial (x^32 implied) */

/* ==== table ============================================================================= */

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
#include <immintrin.h>

/* ==== the crc32 instruction ================================================================ */

/* One chain of crc32 instructions over p[0..len): the short-input path, and the tail after
 * folding. c is the raw register (not inverted). */
__attribute__((target("sse4.2"))) static inline uint32_t crc32_run(uint32_t c, const uint8_t *p,
                                                                   size_t len)
{
    uint64_t r = c;
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        r = __builtin_ia32_crc32di(r, w);
        p += 8;
        len -= 8;
    }
    while (len--)
        r = __builtin_ia32_crc32qi((uint32_t)r, *p++);
    return (uint32_t)r;
}

/* Long inputs without carry-less multiplication run three independent crc32 chains over
 * consecutive 4 KiB blocks: one chain is bound by the instruction's 3-cycle latency,
 * three keep the unit busy. CRC is linear, crc(A||B) = shift_|B|(crc(A)) ^ crc0(B), so the
 * chains are joined with tables that "append BLK zero bytes" to a CRC. */
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

__attribute__((target("sse4.2"))) static uint32_t crc32c_sse42(uint32_t crc, const void *buf,
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
    return ~crc32_run((uint32_t)c, p, len);
}

/* ==== folding with carry-less multiplication ===============================================
 *
 * The math (derived here, the constants are computed at first use).
 *
 * Bits go in transmission order: byte 0 first, least significant bit first. A message of
 * N bits m_0..m_{N-1} is the polynomial M = sum m_i x^(N-1-i), and the CRC register after
 * it (raw, before the final inversion) is M * x^32 mod P. The initial register value c
 * contributes c * x^N, which is the same as XORing c into the first 32 message bits.
 *
 * A 128-bit lane V loaded from bytes [s, s+16) holds bit j <-> x^(127-j) relative to its
 * position: poly(V) = sum v_j x^(127-j), and contributes poly(V) * x^(N - 8s - 128). With
 * L its low and H its high 64 bits, poly(V) = poly(L) x^64 + poly(H).
 *
 * Folding V forward by D bits (onto the lane D bits later) needs V' = poly(V) x^D mod P
 * as a 128-bit lane. PCLMULQDQ of two such "reflected" 64-bit operands a, b yields a
 * 128-bit c with poly(c) = x * poly(a) * poly(b) (the product's degrees shift by one in
 * this bit order). With a constant K whose low 32 bits hold r(x) in the 32-bit reflected
 * form of the CRC register (bit j <-> x^(31-j)), poly(K) = r * x^32, so
 *   clmul(L, K_L) = poly(L) * x^33 * r_L  ==  poly(L) x^(D+64)  when r_L = x^(D+31) mod P
 *   clmul(H, K_H) = poly(H) * x^33 * r_H  ==  poly(H) x^D       when r_H = x^(D-33) mod P
 * and V' = clmul(L, K_L) ^ clmul(H, K_H), XORed with the data lane found there.
 *
 * At the end one lane V is left whose last bit is the message's (or the folded prefix's)
 * last: the register is poly(V) x^32 mod P = (poly(L) x^64 + poly(H)) x^32, which is
 * exactly two crc32 instructions from a zero register: crc32q(crc32q(0, L), H). The bytes
 * after the folded prefix (fewer than 16) continue on the crc32 instruction.
 */

/* x^n mod P in the register's reflected form: x^0 is bit 31, multiplying by x is a right
 * shift that reduces by P when x^31 spills over. */
static uint32_t xpow_mod(uint32_t n)
{
    uint32_t v = 0x80000000u;
    while (n--)
        v = v & 1 ? (v >> 1) ^ POLY : v >> 1;
    return v;
}

/* The {K_L, K_H} pair folding a lane forward by d bits. */
typedef struct fold_k {
    uint64_t lo, hi;
} fold_k_t;

static fold_k_t fold_k(uint32_t d)
{
    return (fold_k_t){xpow_mod(d + 31), xpow_mod(d - 33)};
}

/* Fold distances used: 128-bit lanes, 4 lanes (512), 4 zmm registers (2048) and the
 * steps that combine registers and lanes. */
static struct {
    fold_k_t k128, k256, k384, k512, k1024, k1536, k2048;
} K;
static pthread_once_t k_once = PTHREAD_ONCE_INIT;

static void k_init(void)
{
    K.k128 = fold_k(128);
    K.k256 = fold_k(256);
    K.k384 = fold_k(384);
    K.k512 = fold_k(512);
    K.k1024 = fold_k(1024);
    K.k1536 = fold_k(1536);
    K.k2048 = fold_k(2048);
}

#define FOLD_TARGET "sse4.2,pclmul"

__attribute__((target(FOLD_TARGET))) static inline __m128i kvec(fold_k_t k)
{
    return _mm_set_epi64x((long long)k.hi, (long long)k.lo);
}

/* v folded forward by the distance of k, XORed with the lane there. */
__attribute__((target(FOLD_TARGET))) static inline __m128i fold128(__m128i v, __m128i k, __m128i at)
{
    __m128i lo = _mm_clmulepi64_si128(v, k, 0x00);
    __m128i hi = _mm_clmulepi64_si128(v, k, 0x11);
    return _mm_xor_si128(_mm_xor_si128(lo, hi), at);
}

/* The register after the lane v that ends the folded prefix. */
__attribute__((target(FOLD_TARGET))) static inline uint32_t lane_to_crc(__m128i v)
{
    uint64_t l = (uint64_t)_mm_cvtsi128_si64(v), h = (uint64_t)_mm_extract_epi64(v, 1);
    return (uint32_t)__builtin_ia32_crc32di(__builtin_ia32_crc32di(0, l), h);
}

static inline __attribute__((always_inline)) __m128i load128(const uint8_t *p)
{
    return _mm_loadu_si128((const __m128i *)p);
}

/* Four 128-bit accumulators (64 bytes a round), for CPUs with PCLMULQDQ only. */
__attribute__((target(FOLD_TARGET))) static uint32_t crc32c_pclmul(uint32_t crc, const void *buf,
                                                                   size_t len)
{
    const uint8_t *p = buf;
    uint32_t c = ~crc;
    if (len < 128) return ~crc32_run(c, p, len);
    pthread_once(&k_once, k_init);
    __m128i x0 = _mm_xor_si128(load128(p), _mm_cvtsi32_si128((int)c));
    __m128i x1 = load128(p + 16), x2 = load128(p + 32), x3 = load128(p + 48);
    p += 64;
    len -= 64;
    __m128i k512 = kvec(K.k512);
    while (len >= 64) {
        x0 = fold128(x0, k512, load128(p));
        x1 = fold128(x1, k512, load128(p + 16));
        x2 = fold128(x2, k512, load128(p + 32));
        x3 = fold128(x3, k512, load128(p + 48));
        p += 64;
        len -= 64;
    }
    __m128i k128 = kvec(K.k128);
    x1 = fold128(x0, k128, x1);
    x2 = fold128(x1, k128, x2);
    x3 = fold128(x2, k128, x3);
    while (len >= 16) {
        x3 = fold128(x3, k128, load128(p));
        p += 16;
        len -= 16;
    }
    return ~crc32_run(lane_to_crc(x3), p, len);
}

/* ==== the same over 512-bit registers ======================================================= */

#define ZMM_TARGET "sse4.2,pclmul,avx512f,vpclmulqdq"

__attribute__((target(ZMM_TARGET))) static inline __m512i zkvec(fold_k_t k)
{
    return _mm512_broadcast_i32x4(_mm_set_epi64x((long long)k.hi, (long long)k.lo));
}

/* Each of the four lanes of v folded forward by the distance of k, XORed with at. */
__attribute__((target(ZMM_TARGET))) static inline __m512i fold512(__m512i v, __m512i k, __m512i at)
{
    __m512i lo = _mm512_clmulepi64_epi128(v, k, 0x00);
    __m512i hi = _mm512_clmulepi64_epi128(v, k, 0x11);
    return _mm512_ternarylogic_epi64(lo, hi, at, 0x96); /* lo ^ hi ^ at */
}

__attribute__((target(ZMM_TARGET))) static inline __m512i load512(const uint8_t *p)
{
    return _mm512_loadu_si512((const void *)p);
}

/* Four 512-bit accumulators (256 bytes a round), then one, then 128-bit lanes. */
__attribute__((target(ZMM_TARGET))) static uint32_t crc32c_avx512(uint32_t crc, const void *buf,
                                                                  size_t len)
{
    const uint8_t *p = buf;
    uint32_t c = ~crc;
    if (len < 512) return len < 128 ? ~crc32_run(c, p, len) : crc32c_pclmul(crc, buf, len);
    pthread_once(&k_once, k_init);
    __m512i init = _mm512_inserti32x4(_mm512_setzero_si512(), _mm_cvtsi32_si128((int)c), 0);
    __m512i x0 = _mm512_xor_si512(load512(p), init);
    __m512i x1 = load512(p + 64), x2 = load512(p + 128), x3 = load512(p + 192);
    p += 256;
    len -= 256;
    __m512i k2048 = zkvec(K.k2048);
    while (len >= 256) {
        x0 = fold512(x0, k2048, load512(p));
        x1 = fold512(x1, k2048, load512(p + 64));
        x2 = fold512(x2, k2048, load512(p + 128));
        x3 = fold512(x3, k2048, load512(p + 192));
        p += 256;
        len -= 256;
    }
    /* x0..x2 onto x3: 192, 128 and 64 bytes forward */
    x3 = _mm512_ternarylogic_epi64(fold512(x0, zkvec(K.k1536), x3),
                                   fold512(x1, zkvec(K.k1024), _mm512_setzero_si512()),
                                   fold512(x2, zkvec(K.k512), _mm512_setzero_si512()), 0x96);
    __m512i k512 = zkvec(K.k512);
    while (len >= 64) {
        x3 = fold512(x3, k512, load512(p));
        p += 64;
        len -= 64;
    }
    /* the four lanes onto the last: 48, 32 and 16 bytes forward */
    __m128i l0 = _mm512_extracti32x4_epi32(x3, 0), l1 = _mm512_extracti32x4_epi32(x3, 1);
    __m128i l2 = _mm512_extracti32x4_epi32(x3, 2), v = _mm512_extracti32x4_epi32(x3, 3);
    v = fold128(l0, kvec(K.k384), v);
    v = fold128(l1, kvec(K.k256), v);
    __m128i k128 = kvec(K.k128);
    v = fold128(l2, k128, v);
    while (len >= 16) {
        v = fold128(v, k128, load128(p));
        p += 16;
        len -= 16;
    }
    return ~crc32_run(lane_to_crc(v), p, len);
}

/* ==== dispatch ================================================================================ */

static dm_crc32c_impl_t impls[] = {
    {"avx512-vpclmul", crc32c_avx512, false},
    {"pclmul", crc32c_pclmul, false},
    {"sse4.2", crc32c_sse42, false},
    {"table", dm_crc32c_sw, true},
};

static void detect(void)
{
    __builtin_cpu_init();
    bool sse42 = __builtin_cpu_supports("sse4.2");
    bool pclmul = sse42 && __builtin_cpu_supports("pclmul");
    impls[0].available =
        pclmul && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("vpclmulqdq");
    impls[1].available = pclmul;
    impls[2].available = sse42;
}
#else
static dm_crc32c_impl_t impls[] = {
    {"table", dm_crc32c_sw, true},
};

static void detect(void) {}
#endif

#define N_IMPLS (sizeof(impls) / sizeof(impls[0]))

static pthread_once_t detect_once = PTHREAD_ONCE_INIT;
static const dm_crc32c_impl_t *chosen;

static void choose(void)
{
    detect();
    for (size_t i = 0; i < N_IMPLS && !chosen; i++)
        if (impls[i].available) chosen = &impls[i];
}

static uint32_t (*crc_fn)(uint32_t, const void *, size_t);

const dm_crc32c_impl_t *dm_crc32c_impls(size_t *n)
{
    pthread_once(&detect_once, choose);
    *n = N_IMPLS;
    return impls;
}

const char *dm_crc32c_impl_name(void)
{
    pthread_once(&detect_once, choose);
    return chosen->name;
}

int dm_crc32c_hw_available(void)
{
    pthread_once(&detect_once, choose);
    return chosen->fn != dm_crc32c_sw;
}

uint32_t dm_crc32c(uint32_t crc, const void *buf, size_t len)
{
    uint32_t (*fn)(uint32_t, const void *, size_t) = __atomic_load_n(&crc_fn, __ATOMIC_ACQUIRE);
    if (__builtin_expect(!fn, 0)) {
        pthread_once(&detect_once, choose);
        fn = chosen->fn;
        __atomic_store_n(&crc_fn, fn, __ATOMIC_RELEASE);
    }
    return fn(crc, buf, len);
}
