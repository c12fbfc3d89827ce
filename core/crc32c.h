/* core/crc32c.h — CRC-32C (Castagnoli), the checksum of log batches.
 *
 * dm_crc32c picks, once, the fastest implementation the CPU runs: carry-less
 * multiplication folding over 512-bit registers (VPCLMULQDQ + AVX-512), the
 * same over 128-bit registers (PCLMULQDQ), three interleaved chains of the
 * SSE4.2 crc32 instruction, or a slicing-by-8 table. All give identical results
 * (tested against RFC 3720 and against each other).
 */
#ifndef DM_CORE_CRC32C_H
#define DM_CORE_CRC32C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Extends crc (0 to start) over len bytes and returns the new CRC.
 * dm_crc32c(dm_crc32c(0, a, n), b, m) == CRC of a followed by b. Thread-safe. */
uint32_t dm_crc32c(uint32_t crc, const void *buf, size_t len);

/* The portable implementation, exposed for tests and benchmarks. */
uint32_t dm_crc32c_sw(uint32_t crc, const void *buf, size_t len);

/* 1 when dm_crc32c uses a hardware instruction. */
int dm_crc32c_hw_available(void);

/* One implementation of dm_crc32c, for tests and benchmarks: available says
 * whether this CPU runs it (calling fn when it is not is an illegal
 * instruction). */
typedef struct dm_crc32c_impl {
    const char *name;
    uint32_t (*fn)(uint32_t crc, const void *buf, size_t len);
    bool available;
} dm_crc32c_impl_t;

/* Every implementation, fastest first; *n receives the count. The first
 * available one is what dm_crc32c uses. */
const dm_crc32c_impl_t *dm_crc32c_impls(size_t *n);

/* Name of the implementation dm_crc32c uses ("avx512-vpclmul", "pclmul",
 * "sse4.2", "table"). */
const char *dm_crc32c_impl_name(void);

#endif
