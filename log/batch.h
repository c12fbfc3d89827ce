/* log/batch.h — record batch framing: the unit written to and read from a segment.
 *
 * A batch on disk (all integers little-endian):
 *
 *   [0]  i64 base_offset       offset of the first record (patched at commit, not in the CRC)
 *   [8]  u32 length            bytes of the whole batch, header included
 *   [12] u32 crc               CRC32C of bytes [16, length)
 *   [16] u8  magic (1)
 *   [17] u8  attributes        bits 0-2 compression (0 none, 1 zstd, 2 lz4), bit 4 transactional,
 *                              bit 5 uniform (below)
 *   [18] u16 reserved (0)
 *   [20] u32 count             records in the batch
 *   [24] i64 first_timestamp   ms since the epoch
 *   [32] i64 last_timestamp    the largest timestamp in the batch
 *   [40] u64 txn_id            the commit that wrote it (0 = none)
 *   [48] u32 payload_len       uncompressed bytes of the records section
 *   [52] u32 last_offset_delta offset of the last record minus base_offset
 *   [56] records section (compressed when attributes say so)
 *
 * A record: zigzag ts_delta (from first_timestamp), varint offset_delta, zigzag key_len (-1 =
 * null), key, zigzag value_len (-1 = null: a tombstone), value, varint n_headers, then per
 * header zigzag key_len, key, zigzag value_len, value. Decoding points into the batch bytes;
 * nothing is copied per record.
 *
 * A uniform batch (attribute bit 5, set by the encoder when it holds) has records of one
 * shape: offset deltas 0..count-1, one timestamp (ts_delta 0), the same key length and the
 * same value length, no headers. Record i then starts at a place computed from i alone, so
 * a reader fills the records without walking the chain of lengths. The bit only promises
 * what the bytes already say: a reader that ignores it decodes the same records.
 */
#ifndef DM_LOG_BATCH_H
#define DM_LOG_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/error.h"

#define DM_BATCH_HEADER_SIZE 56
#define DM_BATCH_MAGIC       1
#define DM_BATCH_MAX_BYTES   (256u << 20)

typedef enum {
    DM_BATCH_COMP_NONE = 0,
    DM_BATCH_COMP_ZSTD = 1,
    DM_BATCH_COMP_LZ4 = 2,
} dm_batch_comp_t;

#define DM_BATCH_COMP_MASK    0x07
#define DM_BATCH_ATTR_TXN     0x10
#define DM_BATCH_ATTR_UNIFORM 0x20

/* One header of a record; points into batch bytes (or the producer's memory). */
typedef struct dm_log_header {
    const char *key;
    uint32_t key_len;
    const uint8_t *value;
    int32_t value_len; /* -1 = null */
} dm_log_header_t;

/* One record. On the produce side the caller owns the memory it points to; on the
 * consume side it points into the fetch buffer and lives until the next fetch. */
typedef struct dm_log_record {
    int64_t offset;    /* assigned by the log; ignored on produce */
    int64_t timestamp; /* ms since the epoch; <= 0 on produce = now */
    const uint8_t *key;
    int32_t key_len; /* -1 = null key */
    const uint8_t *value;
    int32_t value_len; /* -1 = null value (a tombstone for compaction) */
    const dm_log_header_t *headers;
    uint32_t n_headers;
} dm_log_record_t;

/* The decoded fixed header of a batch. */
typedef struct dm_batch_hdr {
    int64_t base_offset;
    uint32_t length;
    uint32_t crc;
    uint8_t magic;
    uint8_t attributes;
    uint32_t count;
    int64_t first_ts;
    int64_t last_ts;
    uint64_t txn_id;
    uint32_t payload_len;
    uint32_t last_offset_delta;
} dm_batch_hdr_t;

/* Appends one complete batch holding records[0..n) to out, base_offset 0 (the log patches
 * it when it assigns offsets). Record offsets are 0..n-1 relative. Timestamps <= 0 become
 * now_ms. scratch is a caller-owned buffer reused for compression. Any thread. */
dm_err_t dm_batch_encode(dm_buf_t *out, dm_buf_t *scratch, const dm_log_record_t *records, size_t n,
                         dm_batch_comp_t comp, uint64_t txn_id, int64_t now_ms, dm_error_t *err);

/* Like dm_batch_encode but keeps each record's offset (relative to base_offset, which must
 * be the first record's offset): used by compaction, which leaves gaps. */
dm_err_t dm_batch_encode_at(dm_buf_t *out, dm_buf_t *scratch, int64_t base_offset,
                            const dm_log_record_t *records, size_t n, dm_batch_comp_t comp,
                            uint64_t txn_id, dm_error_t *err);

/* Parses the fixed header from p[0..avail). DM_ERR_TRUNCATED when fewer than
 * DM_BATCH_HEADER_SIZE bytes, DM_ERR_CORRUPT when magic or length are impossible.
 * Does not check the CRC. */
dm_err_t dm_batch_parse_header(const uint8_t *p, size_t avail, dm_batch_hdr_t *h);

/* True when the CRC of a complete batch (length bytes at p) matches. */
bool dm_batch_crc_ok(const uint8_t *p, const dm_batch_hdr_t *h);

/* Overwrites the base offset of the encoded batch at p (outside the CRC). */
void dm_batch_set_base_offset(uint8_t *p, int64_t base_offset);

/* Decodes the records of one complete, CRC-checked batch at p. Records with an offset below
 * min_offset are skipped. Record structs (and headers, and decompressed bytes) come from
 * arena; keys and values point into p or into the arena. Appends to *recs (capacity *cap,
 * grown from the arena) and advances *n. DM_ERR_CORRUPT when the records do not parse. */
dm_err_t dm_batch_decode(const uint8_t *p, const dm_batch_hdr_t *h, int64_t min_offset,
                         dm_arena_t *arena, dm_log_record_t **recs, size_t *n, size_t *cap,
                         dm_error_t *err);

/* dm_batch_decode of a complete batch whose CRC is not checked yet, checking it on the way
 * (one pass over the bytes instead of two). On a CRC mismatch *crc_bad is set and it
 * returns DM_ERR_CORRUPT without a message: the caller names the batch's place. */
dm_err_t dm_batch_check_decode(const uint8_t *p, const dm_batch_hdr_t *h, int64_t min_offset,
                               dm_arena_t *arena, dm_log_record_t **recs, size_t *n, size_t *cap,
                               bool *crc_bad, dm_error_t *err);

/* Name of a compression ("none", "zstd", "lz4"); parse returns -1 for unknown names. */
const char *dm_batch_comp_name(dm_batch_comp_t c);
int dm_batch_comp_parse(const char *name);

static inline uint32_t dm_rd32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static inline uint64_t dm_rd64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}
static inline void dm_wr32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, 4);
}
static inline void dm_wr64(uint8_t *p, uint64_t v)
{
    memcpy(p, &v, 8);
}

#endif
