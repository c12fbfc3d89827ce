/* core/varint.h — LEB128 varints and zigzag, as Avro and Kafka encode integers.
 *
 * Header-only: these sit on every decode path and must inline.
 */
#ifndef DM_CORE_VARINT_H
#define DM_CORE_VARINT_H

#include <stddef.h>
#include <stdint.h>

#define DM_VARINT_MAX 10 /* bytes of the longest 64-bit varint */

static inline uint64_t dm_zigzag_encode64(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static inline int64_t dm_zigzag_decode64(uint64_t v)
{
    return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

static inline uint32_t dm_zigzag_encode32(int32_t v)
{
    return ((uint32_t)v << 1) ^ (uint32_t)(v >> 31);
}

static inline int32_t dm_zigzag_decode32(uint32_t v)
{
    return (int32_t)(v >> 1) ^ -(int32_t)(v & 1);
}

/* Writes v to out (room for DM_VARINT_MAX bytes); returns the bytes written. */
static inline size_t dm_varint_encode_u64(uint64_t v, uint8_t *out)
{
    size_t n = 0;
    while (v >= 0x80) {
        out[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    return n;
}

/* Reads a varint from [p, end). Returns the bytes consumed; 0 when the input
 * ends before the varint does; -1 when it is longer than 10 bytes or overflows
 * 64 bits. Never reads at or past end. */
static inline int dm_varint_decode_u64(const uint8_t *p, const uint8_t *end, uint64_t *v)
{
    uint64_t result = 0;
    for (int i = 0, shift = 0; i < DM_VARINT_MAX; i++, shift += 7) {
        if (p + i >= end) return 0;
        uint8_t byte = p[i];
        if (i == DM_VARINT_MAX - 1 && byte > 1) return -1;
        result |= (uint64_t)(byte & 0x7f) << shift;
        if (!(byte & 0x80)) {
            *v = result;
            return i + 1;
        }
    }
    return -1;
}

/* Zigzag varint as Avro's long. Same return convention. */
static inline int dm_varint_decode_i64(const uint8_t *p, const uint8_t *end, int64_t *v)
{
    uint64_t u;
    int n = dm_varint_decode_u64(p, end, &u);
    if (n > 0) *v = dm_zigzag_decode64(u);
    return n;
}

static inline size_t dm_varint_encode_i64(int64_t v, uint8_t *out)
{
    return dm_varint_encode_u64(dm_zigzag_encode64(v), out);
}

#endif
