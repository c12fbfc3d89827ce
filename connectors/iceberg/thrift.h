/* connectors/iceberg/thrift.h — the Thrift compact protocol, write side only,
 * as Parquet encodes its page headers and file footer.
 *
 * Fields carry a delta from the previous field id of the same struct (one
 * nibble when 1..15), integers are zigzag varints, booleans live in the field
 * header's type nibble, lists start with a size/type byte. Nested structs keep
 * their own "previous field id", hence the small stack. Errors are sticky: the
 * first allocation failure is kept in rc and later calls do nothing.
 */
#ifndef DM_CONNECTORS_ICEBERG_THRIFT_H
#define DM_CONNECTORS_ICEBERG_THRIFT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"

enum {
    DM_THRIFT_STOP = 0,
    DM_THRIFT_TRUE = 1,
    DM_THRIFT_FALSE = 2,
    DM_THRIFT_BYTE = 3,
    DM_THRIFT_I16 = 4,
    DM_THRIFT_I32 = 5,
    DM_THRIFT_I64 = 6,
    DM_THRIFT_DOUBLE = 7,
    DM_THRIFT_BINARY = 8,
    DM_THRIFT_LIST = 9,
    DM_THRIFT_SET = 10,
    DM_THRIFT_MAP = 11,
    DM_THRIFT_STRUCT = 12,
};

#define DM_THRIFT_MAX_DEPTH 16

typedef struct dm_thrift_writer {
    dm_buf_t *out;
    int16_t last[DM_THRIFT_MAX_DEPTH]; /* previous field id per open struct */
    int depth;
    dm_err_t rc;
} dm_thrift_writer_t;

/* Starts writing a top-level struct into out (appended to, not reset). */
void dm_thrift_writer_init(dm_thrift_writer_t *w, dm_buf_t *out);

/* Field writers: the field header, then the value. */
void dm_thrift_i32(dm_thrift_writer_t *w, int16_t id, int32_t v);
void dm_thrift_i64(dm_thrift_writer_t *w, int16_t id, int64_t v);
void dm_thrift_bool(dm_thrift_writer_t *w, int16_t id, bool v);
void dm_thrift_binary(dm_thrift_writer_t *w, int16_t id, const void *p, size_t len);
void dm_thrift_string(dm_thrift_writer_t *w, int16_t id, const char *s);

/* A struct-typed field: begin, its fields, end (writes the stop byte). */
void dm_thrift_struct_begin(dm_thrift_writer_t *w, int16_t id);
void dm_thrift_struct_end(dm_thrift_writer_t *w);

/* A list-typed field of n elements of elem_type. Elements follow: i32 and
 * binary elements through the *_elem writers, struct elements through
 * dm_thrift_elem_struct_begin / dm_thrift_struct_end. */
void dm_thrift_list_begin(dm_thrift_writer_t *w, int16_t id, uint8_t elem_type, uint32_t n);
void dm_thrift_i32_elem(dm_thrift_writer_t *w, int32_t v);
void dm_thrift_binary_elem(dm_thrift_writer_t *w, const void *p, size_t len);
void dm_thrift_elem_struct_begin(dm_thrift_writer_t *w);

/* Ends the top-level struct (its stop byte). Returns the sticky error. */
dm_err_t dm_thrift_writer_finish(dm_thrift_writer_t *w);

#endif
