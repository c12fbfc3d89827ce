/* schema/dm_avro_container.h — Avro object container files.
 *
 * A file is a header (magic, metadata with the writer schema and the codec,
 * a 16-byte sync marker) followed by blocks of records, each compressed with
 * the file's codec: null, deflate, snappy (with the CRC32 of the uncompressed
 * bytes the spec asks for) or zstandard.
 *
 * The reader works on bytes in memory (a whole file, read or mapped by the
 * caller) and checks every length against them: a file whose last block is
 * cut short yields the records of the blocks before it, then DM_ERR_TRUNCATED
 * naming the block and its offset. Threads: one reader or writer per thread.
 */
#ifndef DM_SCHEMA_DM_AVRO_CONTAINER_H
#define DM_SCHEMA_DM_AVRO_CONTAINER_H

#include <stdio.h>

#include "schema/dm_avro.h"

typedef enum dm_avro_file_codec {
    DM_AVRO_FILE_NULL = 0,
    DM_AVRO_FILE_DEFLATE,
    DM_AVRO_FILE_SNAPPY,
    DM_AVRO_FILE_ZSTD,
} dm_avro_file_codec_t;

/* Parses a codec name as the spec spells it ("null", "deflate", "snappy",
 * "zstandard"; "zstd" is accepted too). DM_ERR_UNSUPPORTED if unknown. */
dm_err_t dm_avro_file_codec_parse(const char *name, dm_avro_file_codec_t *out);

/* The spec's name of a codec. */
const char *dm_avro_file_codec_name(dm_avro_file_codec_t codec);

typedef struct dm_avro_file_writer dm_avro_file_writer_t;

/* Starts a container file on out (which the writer borrows and never closes)
 * and writes the header. schema is borrowed and must outlive the writer; its
 * original JSON text goes into the header. Blocks are cut when they hold
 * block_bytes of encoded records (0 = 64 KiB). */
dm_err_t dm_avro_file_writer_new(FILE *out, const dm_avro_schema_t *schema,
                                 dm_avro_file_codec_t codec, size_t block_bytes,
                                 dm_avro_file_writer_t **w, dm_error_t *err);

/* User metadata for the file header; keys starting with "avro." are the
 * spec's and cannot be set this way. */
typedef struct dm_avro_file_meta {
    const char *key;
    const uint8_t *value;
    size_t len;
} dm_avro_file_meta_t;

/* Like dm_avro_file_writer_new, with n_meta extra header entries (copied).
 * DM_ERR_INVALID for a reserved key. */
dm_err_t dm_avro_file_writer_new_meta(FILE *out, const dm_avro_schema_t *schema,
                                      dm_avro_file_codec_t codec, size_t block_bytes,
                                      const dm_avro_file_meta_t *meta, size_t n_meta,
                                      dm_avro_file_writer_t **w, dm_error_t *err);

/* Encodes v (a value of the writer's schema) into the current block. */
dm_err_t dm_avro_file_writer_append(dm_avro_file_writer_t *w, const dm_avro_value_t *v,
                                    dm_error_t *err);

/* Appends one record that is already Avro binary of the writer's schema
 * (checked with dm_avro_skip). */
dm_err_t dm_avro_file_writer_append_raw(dm_avro_file_writer_t *w, const uint8_t *bytes, size_t len,
                                        dm_error_t *err);

/* Writes the current block, if any, and flushes out. */
dm_err_t dm_avro_file_writer_flush(dm_avro_file_writer_t *w, dm_error_t *err);

/* Flushes and frees the writer (NULL allowed). DM_ERR_IO if the last write failed. */
dm_err_t dm_avro_file_writer_close(dm_avro_file_writer_t *w, dm_error_t *err);

typedef struct dm_avro_file_reader dm_avro_file_reader_t;

/* Reads the header of the container file in [data, data+len), which the
 * reader borrows. Errors: DM_ERR_CORRUPT (not an Avro file, bad metadata),
 * DM_ERR_TRUNCATED, DM_ERR_SCHEMA_PARSE (bad schema), DM_ERR_UNSUPPORTED
 * (unknown codec). Free with dm_avro_file_reader_free. */
dm_err_t dm_avro_file_reader_new(const uint8_t *data, size_t len, dm_avro_file_reader_t **r,
                                 dm_error_t *err);

/* Frees a reader. NULL is allowed. */
void dm_avro_file_reader_free(dm_avro_file_reader_t *r);

/* The writer schema of the file (owned by the reader). */
const dm_avro_schema_t *dm_avro_file_reader_schema(const dm_avro_file_reader_t *r);

/* The file's codec. */
dm_avro_file_codec_t dm_avro_file_reader_codec(const dm_avro_file_reader_t *r);

/* A metadata value by key, or NULL; *len gets its length. */
const uint8_t *dm_avro_file_reader_meta(const dm_avro_file_reader_t *r, const char *key,
                                        size_t *len);

/* Makes dm_avro_file_reader_next decode records as reader (NULL = the file's
 * schema; resolved per the spec) and only the given field paths (n_paths = 0:
 * all). reader is borrowed and must outlive r. Errors as dm_avro_codec_new;
 * on error the reader keeps its previous plan. */
dm_err_t dm_avro_file_reader_set_reader(dm_avro_file_reader_t *r, const dm_avro_schema_t *reader,
                                        const char *const *paths, size_t n_paths, dm_error_t *err);

/* The node values from dm_avro_file_reader_next conform to. */
const dm_avro_node_t *dm_avro_file_reader_value_node(const dm_avro_file_reader_t *r);

/* Decodes the next record into *out (allocated in arena) and sets *got; at
 * the end of the file *got is false and DM_OK is returned. Strings and bytes
 * in *out point into the reader's current block: they stay valid until the
 * next call that moves to a new block. Errors name the block and offset:
 * DM_ERR_TRUNCATED for a cut block, DM_ERR_CORRUPT for a bad sync marker,
 * checksum or compressed data, DM_ERR_SCHEMA_MISMATCH for records that do not
 * decode. */
dm_err_t dm_avro_file_reader_next(dm_avro_file_reader_t *r, dm_arena_t *arena, dm_avro_value_t *out,
                                  bool *got, dm_error_t *err);

/* Like dm_avro_file_reader_next, but hands out the record's binary encoding
 * (pointing into the current block) instead of decoding it. */
dm_err_t dm_avro_file_reader_next_raw(dm_avro_file_reader_t *r, const uint8_t **bytes, size_t *len,
                                      bool *got, dm_error_t *err);

#endif
