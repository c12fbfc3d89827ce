/* core/crc32c.h — CRC-32C (Castagnoli), the checksum of log batches.
 *
 * Uses the SSE4.2 crc32 instruction when the CPU has it and a slicing-by-8
 * table otherwise; both give identical results (tested against RFC 3720).
 */
#ifndef DM_CORE_CRC32C_H
#define DM_CORE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extends crc (0 to start) over len bytes and returns the new CRC.
 * dm_crc32c(dm_crc32c(0, a, n), b, m) == CRC of a followed by b. Thread-safe. */
uint32_t dm_crc32c(uint32_t crc, const void *buf, size_t len);

/* The portable implementation, exposed for tests and benchmarks. */
uint32_t dm_crc32c_sw(uint32_t crc, const void *buf, size_t len);

/* 1 when dm_crc32c uses the hardware instruction. */
int dm_crc32c_hw_available(void);

#endif
