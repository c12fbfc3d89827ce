/* engine/rekey.h — the key of a record in a re-key topic (control/plan.h):
 * [4-byte little-endian length n][n bytes of the new key][the source's key].
 * The task writing the topic partitions by the new key; the task reading it
 * gives rows the source's key back, so a derived source keeps its keys.
 * engine/proc_rekey.c writes it; engine/task.c reads it. */
#ifndef DM_ENGINE_REKEY_H
#define DM_ENGINE_REKEY_H

#include <stdbool.h>
#include <stdint.h>

#define DM_REKEY_PREFIX 4

/* Writes the new key's length n in front of it (p has DM_REKEY_PREFIX bytes). */
static inline void dm_rekey_put_len(uint8_t *p, uint32_t n)
{
    p[0] = (uint8_t)n;
    p[1] = (uint8_t)(n >> 8);
    p[2] = (uint8_t)(n >> 16);
    p[3] = (uint8_t)(n >> 24);
}

/* Splits a re-keyed key into the new key and the source's key behind it;
 * false (outputs untouched) when key is not in that layout. */
static inline bool dm_rekey_split(const uint8_t *key, uint32_t len, const uint8_t **new_key,
                                  uint32_t *new_len, const uint8_t **old_key, uint32_t *old_len)
{
    if (!key || len < DM_REKEY_PREFIX) return false;
    uint32_t n =
        (uint32_t)key[0] | (uint32_t)key[1] << 8 | (uint32_t)key[2] << 16 | (uint32_t)key[3] << 24;
    if (n > len - DM_REKEY_PREFIX) return false;
    *new_key = key + DM_REKEY_PREFIX;
    *new_len = n;
    *old_len = len - DM_REKEY_PREFIX - n;
    *old_key = *old_len ? key + DM_REKEY_PREFIX + n : NULL;
    return true;
}

#endif
