/* connectors/iceberg/thrift.c — Thrift compact protocol writer (see thrift.h). */
#include "connectors/iceberg/thrift.h"

#include <string.h>

#include "core/varint.h"

void dm_thrift_writer_init(dm_thrift_writer_t *w, dm_buf_t *out)
{
    memset(w, 0, sizeof(*w));
    w->out = out;
}

static void put(dm_thrift_writer_t *w, const void *p, size_t len)
{
    if (!w->rc) w->rc = dm_buf_append(w->out, p, len);
}

static void put_varint(dm_thrift_writer_t *w, uint64_t v)
{
    uint8_t tmp[DM_VARINT_MAX];
    put(w, tmp, dm_varint_encode_u64(v, tmp));
}

/* The field header: a one-byte delta form when the id grows by 1..15, the
 * long form (type byte, zigzag id) otherwise. */
static void header(dm_thrift_writer_t *w, int16_t id, uint8_t type)
{
    int delta = id - w->last[w->depth];
    if (delta > 0 && delta <= 15) {
        uint8_t b = (uint8_t)(delta << 4 | type);
        put(w, &b, 1);
    } else {
        put(w, &type, 1);
        put_varint(w, dm_zigzag_encode32(id));
    }
    w->last[w->depth] = id;
}

void dm_thrift_i32(dm_thrift_writer_t *w, int16_t id, int32_t v)
{
    header(w, id, DM_THRIFT_I32);
    put_varint(w, dm_zigzag_encode32(v));
}

void dm_thrift_i64(dm_thrift_writer_t *w, int16_t id, int64_t v)
{
    header(w, id, DM_THRIFT_I64);
    put_varint(w, dm_zigzag_encode64(v));
}

void dm_thrift_bool(dm_thrift_writer_t *w, int16_t id, bool v)
{
    header(w, id, v ? DM_THRIFT_TRUE : DM_THRIFT_FALSE);
}

void dm_thrift_binary(dm_thrift_writer_t *w, int16_t id, const void *p, size_t len)
{
    header(w, id, DM_THRIFT_BINARY);
    dm_thrift_binary_elem(w, p, len);
}

void dm_thrift_string(dm_thrift_writer_t *w, int16_t id, const char *s)
{
    dm_thrift_binary(w, id, s, strlen(s));
}

static void push(dm_thrift_writer_t *w)
{
    if (w->depth + 1 >= DM_THRIFT_MAX_DEPTH) {
        if (!w->rc) w->rc = DM_ERR_RANGE;
        return;
    }
    w->last[++w->depth] = 0;
}

void dm_thrift_struct_begin(dm_thrift_writer_t *w, int16_t id)
{
    header(w, id, DM_THRIFT_STRUCT);
    push(w);
}

void dm_thrift_elem_struct_begin(dm_thrift_writer_t *w)
{
    push(w);
}

void dm_thrift_struct_end(dm_thrift_writer_t *w)
{
    uint8_t stop = DM_THRIFT_STOP;
    put(w, &stop, 1);
    if (w->depth > 0) w->depth--;
}

void dm_thrift_list_begin(dm_thrift_writer_t *w, int16_t id, uint8_t elem_type, uint32_t n)
{
    header(w, id, DM_THRIFT_LIST);
    if (n < 15) {
        uint8_t b = (uint8_t)(n << 4 | elem_type);
        put(w, &b, 1);
    } else {
        uint8_t b = (uint8_t)(0xf0 | elem_type);
        put(w, &b, 1);
        put_varint(w, n);
    }
}

void dm_thrift_i32_elem(dm_thrift_writer_t *w, int32_t v)
{
    put_varint(w, dm_zigzag_encode32(v));
}

void dm_thrift_binary_elem(dm_thrift_writer_t *w, const void *p, size_t len)
{
    put_varint(w, len);
    put(w, p, len);
}

dm_err_t dm_thrift_writer_finish(dm_thrift_writer_t *w)
{
    uint8_t stop = DM_THRIFT_STOP;
    put(w, &stop, 1);
    return w->rc;
}
