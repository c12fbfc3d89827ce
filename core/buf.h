/* core/buf.h — growable byte buffer.
 *
 * Owns its bytes (malloc); dm_buf_free releases them. Appends double the
 * capacity when needed, so building a buffer of n bytes costs O(n).
 */
#ifndef DM_CORE_BUF_H
#define DM_CORE_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/error.h"

typedef struct dm_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
} dm_buf_t;

#define DM_BUF_INIT                                                                                \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

/* Makes room for at least extra more bytes. DM_ERR_NOMEM on failure, and the
 * buffer is left as it was. */
dm_err_t dm_buf_reserve(dm_buf_t *b, size_t extra);

/* Appends len bytes. */
static inline dm_err_t dm_buf_append(dm_buf_t *b, const void *p, size_t len)
{
    if (b->cap - b->len < len) {
        dm_err_t rc = dm_buf_reserve(b, len);
        if (rc) return rc;
    }
    if (len) memcpy(b->data + b->len, p, len);
    b->len += len;
    return DM_OK;
}

static inline dm_err_t dm_buf_append_u8(dm_buf_t *b, uint8_t v)
{
    return dm_buf_append(b, &v, 1);
}

/* Appends a NUL-terminated string without its NUL. */
dm_err_t dm_buf_append_str(dm_buf_t *b, const char *s);

/* Appends formatted text (no NUL counted in len; data stays NUL-terminated). */
dm_err_t dm_buf_printf(dm_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Makes data a NUL-terminated C string (the NUL is not counted in len). */
dm_err_t dm_buf_cstr(dm_buf_t *b, const char **out);

/* Empties the buffer and keeps its capacity. */
static inline void dm_buf_reset(dm_buf_t *b)
{
    b->len = 0;
}

/* Releases the bytes; the buffer is empty and reusable. */
void dm_buf_free(dm_buf_t *b);

/* Hands the bytes to the caller, who frees them with free(); the buffer is emptied. */
uint8_t *dm_buf_detach(dm_buf_t *b, size_t *len);

#endif
