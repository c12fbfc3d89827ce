/* core/buf.c — growable byte buffer. */
#include "core/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

dm_err_t dm_buf_reserve(dm_buf_t *b, size_t extra)
{
    if (b->cap - b->len >= extra) return DM_OK;
    if (extra > SIZE_MAX - b->len - 1) return DM_ERR_NOMEM;
    size_t need = b->len + extra + 1; /* +1 keeps room for a C-string NUL */
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    uint8_t *p = realloc(b->data, cap);
    if (!p) return DM_ERR_NOMEM;
    b->data = p;
    b->cap = cap;
    return DM_OK;
}

dm_err_t dm_buf_append_str(dm_buf_t *b, const char *s)
{
    return dm_buf_append(b, s, strlen(s));
}

dm_err_t dm_buf_printf(dm_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return DM_ERR_INVALID;
    dm_err_t rc = dm_buf_reserve(b, (size_t)n + 1);
    if (rc) return rc;
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return DM_OK;
}

dm_err_t dm_buf_cstr(dm_buf_t *b, const char **out)
{
    dm_err_t rc = dm_buf_reserve(b, 1);
    if (rc) return rc;
    b->data[b->len] = '\0';
    *out = (const char *)b->data;
    return DM_OK;
}

void dm_buf_free(dm_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

uint8_t *dm_buf_detach(dm_buf_t *b, size_t *len)
{
    uint8_t *p = b->data;
    if (len) *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}
