/* core/hex.h — bytes as lowercase hexadecimal text. */
#ifndef DM_CORE_HEX_H
#define DM_CORE_HEX_H

#include <stddef.h>

/* Writes the n bytes at p as 2n lowercase hex digits and a NUL to out
 * (which holds 2n + 1 characters). */
void dm_hex_encode(const void *p, size_t n, char *out);

#endif
