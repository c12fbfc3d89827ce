/* core/hash.h — fast non-cryptographic hashing (xxHash's XXH3), for
 * partitioning keys, hash tables and keyed state. Header-only so it inlines. */
#ifndef DM_CORE_HASH_H
#define DM_CORE_HASH_H

#include <stddef.h>
#include <stdint.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

/* 64-bit hash of len bytes; stable across runs and machines (used on disk and
 * for partition assignment). */
static inline uint64_t dm_hash64(const void *p, size_t len)
{
    return XXH3_64bits(p, len);
}

static inline uint64_t dm_hash64_seed(const void *p, size_t len, uint64_t seed)
{
    return XXH3_64bits_withSeed(p, len, seed);
}

#endif
