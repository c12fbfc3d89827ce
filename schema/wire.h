/* schema/wire.h — the Confluent wire format of keys and values on topics:
 * byte 0x00, the schema id as 4 bytes big-endian, then the Avro binary. Kafka
 * tooling and Confluent-format consumers read datamesh topics as they are. */
#ifndef DM_SCHEMA_WIRE_H
#define DM_SCHEMA_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/error.h"

#define DM_WIRE_MAGIC  0x00
#define DM_WIRE_HEADER 5

/* Appends the 5-byte header for schema id to out. */
static inline dm_err_t dm_wire_put_header(dm_buf_t *out, uint32_t schema_id)
{
    uint8_t h[DM_WIRE_HEADER] = {DM_WIRE_MAGIC, (uint8_t)(schema_id >> 24),
                                 (uint8_t)(schema_id >> 16), (uint8_t)(schema_id >> 8),
                                 (uint8_t)schema_id};
    return dm_buf_append(out, h, sizeof(h));
}

/* Reads the header of [p, p+len): the schema id into *schema_id. DM_ERR_TRUNCATED
 * when shorter than 5 bytes, DM_ERR_SCHEMA_MISMATCH when the magic byte is not 0. */
static inline dm_err_t dm_wire_get_header(const uint8_t *p, size_t len, uint32_t *schema_id)
{
    if (len < DM_WIRE_HEADER) return DM_ERR_TRUNCATED;
    if (p[0] != DM_WIRE_MAGIC) return DM_ERR_SCHEMA_MISMATCH;
    *schema_id = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
    return DM_OK;
}

#endif
