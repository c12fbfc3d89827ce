/* schema/container.c — Avro object container files (dm_avro_file_*). */
#include <inttypes.h>
#include <snappy-c.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "core/varint.h"
#include "schema/dm_avro_container.h"

#define MAGIC           "Obj\x01"
#define SYNC_SIZE       16
#define MAX_BLOCK_BYTES ((size_t)1 << 30)

static const char *const codec_names[] = {"null", "deflate", "snappy", "zstandard"};

dm_err_t dm_avro_file_codec_parse(const char *name, dm_avro_file_codec_t *out)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(name, codec_names[i]) == 0) {
            *out = (dm_avro_file_codec_t)i;
            return DM_OK;
        }
    if (strcmp(name, "zstd") == 0) {
        *out = DM_AVRO_FILE_ZSTD;
        return DM_OK;
    }
    return DM_ERR_UNSUPPORTED;
}

const char *dm_avro_file_codec_name(dm_avro_file_codec_t codec)
{
    return (unsigned)codec < 4 ? codec_names[codec] : "?";
}

/* ---- compression ------------------------------------------------------------------ */

static dm_err_t compress_block(dm_avro_file_codec_t codec, const uint8_t *in, size_t len,
                               dm_buf_t *out, dm_error_t *err)
{
    dm_buf_reset(out);
    switch (codec) {
    case DM_AVRO_FILE_NULL: return dm_buf_append(out, in, len);
    case DM_AVRO_FILE_DEFLATE: {
        z_stream z = {0};
        if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
            return dm_error_set(err, DM_ERR_INTERNAL, "deflate: init failed");
        size_t bound = deflateBound(&z, (uLong)len);
        dm_err_t rc = dm_buf_reserve(out, bound);
        if (rc) {
            deflateEnd(&z);
            return rc;
        }
        z.next_in = (Bytef *)in;
        z.avail_in = (uInt)len;
        z.next_out = out->data;
        z.avail_out = (uInt)bound;
        int zr = deflate(&z, Z_FINISH);
        out->len = z.total_out;
        deflateEnd(&z);
        return zr == Z_STREAM_END ? DM_OK
                                  : dm_error_set(err, DM_ERR_INTERNAL, "deflate failed (%d)", zr);
    }
    case DM_AVRO_FILE_SNAPPY: {
        size_t bound = snappy_max_compressed_length(len);
        dm_err_t rc = dm_buf_reserve(out, bound + 4);
        if (rc) return rc;
        size_t n = bound;
        if (snappy_compress((const char *)in, len, (char *)out->data, &n) != SNAPPY_OK)
            return dm_error_set(err, DM_ERR_INTERNAL, "snappy compression failed");
        uint32_t crc = (uint32_t)crc32(0, in, (uInt)len);
        out->data[n] = (uint8_t)(crc >> 24);
        out->data[n + 1] = (uint8_t)(crc >> 16);
        out->data[n + 2] = (uint8_t)(crc >> 8);
        out->data[n + 3] = (uint8_t)crc;
        out->len = n + 4;
        return DM_OK;
    }
    case DM_AVRO_FILE_ZSTD: {
        size_t bound = ZSTD_compressBound(len);
        dm_err_t rc = dm_buf_reserve(out, bound);
        if (rc) return rc;
        size_t n = ZSTD_compress(out->data, bound, in, len, 3);
        if (ZSTD_isError(n))
            return dm_error_set(err, DM_ERR_INTERNAL, "zstd: %s", ZSTD_getErrorName(n));
        out->len = n;
        return DM_OK;
    }
    }
    return dm_error_set(err, DM_ERR_UNSUPPORTED, "unknown codec");
}

static dm_err_t decompress_block(dm_avro_file_codec_t codec, const uint8_t *in, size_t len,
                                 dm_buf_t *out, dm_error_t *err)
{
    dm_buf_reset(out);
    switch (codec) {
    case DM_AVRO_FILE_NULL: return DM_OK; /* the caller reads in place */
    case DM_AVRO_FILE_DEFLATE: {
        z_stream z = {0};
        if (inflateInit2(&z, -15) != Z_OK)
            return dm_error_set(err, DM_ERR_INTERNAL, "inflate: init failed");
        z.next_in = (Bytef *)in;
        z.avail_in = (uInt)len;
        int zr = Z_OK;
        while (zr != Z_STREAM_END) {
            if (out->cap - out->len < 4096 && dm_buf_reserve(out, out->len ? out->len : 65536)) {
                inflateEnd(&z);
                return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
            }
            if (out->len > MAX_BLOCK_BYTES) break;
            z.next_out = out->data + out->len;
            z.avail_out = (uInt)(out->cap - out->len);
            zr = inflate(&z, Z_NO_FLUSH);
            out->len = z.total_out;
            if (zr == Z_BUF_ERROR && z.avail_in == 0) break;
            if (zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR) break;
        }
        inflateEnd(&z);
        if (zr != Z_STREAM_END)
            return dm_error_set(err, DM_ERR_CORRUPT, "deflate data is corrupt (%d)", zr);
        return DM_OK;
    }
    case DM_AVRO_FILE_SNAPPY: {
        if (len < 4) return dm_error_set(err, DM_ERR_CORRUPT, "snappy block shorter than its CRC");
        size_t n;
        if (snappy_uncompressed_length((const char *)in, len - 4, &n) != SNAPPY_OK ||
            n > MAX_BLOCK_BYTES)
            return dm_error_set(err, DM_ERR_CORRUPT, "snappy data is corrupt");
        dm_err_t rc = dm_buf_reserve(out, n + 1);
        if (rc) return dm_error_set(err, rc, "out of memory");
        if (snappy_uncompress((const char *)in, len - 4, (char *)out->data, &n) != SNAPPY_OK)
            return dm_error_set(err, DM_ERR_CORRUPT, "snappy data is corrupt");
        out->len = n;
        uint32_t want = (uint32_t)in[len - 4] << 24 | (uint32_t)in[len - 3] << 16 |
                        (uint32_t)in[len - 2] << 8 | in[len - 1];
        if ((uint32_t)crc32(0, out->data, (uInt)n) != want)
            return dm_error_set(err, DM_ERR_CORRUPT, "snappy block CRC32 mismatch");
        return DM_OK;
    }
    case DM_AVRO_FILE_ZSTD: {
        ZSTD_DStream *z = ZSTD_createDStream();
        if (!z) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
        ZSTD_inBuffer ib = {in, len, 0};
        size_t zr = 1;
        dm_err_t rc = DM_OK;
        while (zr != 0) {
            if (out->cap - out->len < 4096 && dm_buf_reserve(out, out->len ? out->len : 65536)) {
                rc = dm_error_set(err, DM_ERR_NOMEM, "out of memory");
                break;
            }
            if (out->len > MAX_BLOCK_BYTES) {
                rc = dm_error_set(err, DM_ERR_CORRUPT, "zstd block too large");
                break;
            }
            ZSTD_outBuffer ob = {out->data, out->cap, out->len};
            size_t before = ib.pos;
            zr = ZSTD_decompressStream(z, &ob, &ib);
            out->len = ob.pos;
            if (ZSTD_isError(zr)) {
                rc = dm_error_set(err, DM_ERR_CORRUPT, "zstd: %s", ZSTD_getErrorName(zr));
                break;
            }
            if (zr != 0 && ib.pos == ib.size && ib.pos == before && ob.pos < ob.size) {
                rc = dm_error_set(err, DM_ERR_CORRUPT, "zstd frame is incomplete");
                break;
            }
        }
        ZSTD_freeDStream(z);
        return rc;
    }
    }
    return dm_error_set(err, DM_ERR_UNSUPPORTED, "unknown codec");
}

/* ---- writer ---------------------------------------------------------------------------- */

struct dm_avro_file_writer {
    FILE *out;
    const dm_avro_schema_t *schema;
    dm_avro_file_codec_t codec;
    size_t block_bytes;
    uint8_t sync[SYNC_SIZE];
    dm_buf_t block;
    dm_buf_t packed;
    int64_t count;
    bool io_error;
};

static void put_long(dm_buf_t *b, int64_t v)
{
    uint8_t tmp[DM_VARINT_MAX];
    dm_buf_append(b, tmp, dm_varint_encode_i64(v, tmp));
}

static void put_bytes(dm_buf_t *b, const void *p, size_t len)
{
    put_long(b, (int64_t)len);
    dm_buf_append(b, p, len);
}

dm_err_t dm_avro_file_writer_new(FILE *out, const dm_avro_schema_t *schema,
                                 dm_avro_file_codec_t codec, size_t block_bytes,
                                 dm_avro_file_writer_t **wp, dm_error_t *err)
{
    return dm_avro_file_writer_new_meta(out, schema, codec, block_bytes, NULL, 0, wp, err);
}

dm_err_t dm_avro_file_writer_new_meta(FILE *out, const dm_avro_schema_t *schema,
                                      dm_avro_file_codec_t codec, size_t block_bytes,
                                      const dm_avro_file_meta_t *meta, size_t n_meta,
                                      dm_avro_file_writer_t **wp, dm_error_t *err)
{
    *wp = NULL;
    if ((unsigned)codec > DM_AVRO_FILE_ZSTD)
        return dm_error_set(err, DM_ERR_UNSUPPORTED, "unknown codec %d", (int)codec);
    for (size_t i = 0; i < n_meta; i++)
        if (strncmp(meta[i].key, "avro.", 5) == 0)
            return dm_error_set(err, DM_ERR_INVALID, "metadata key \"%s\" is reserved",
                                meta[i].key);
    dm_avro_file_writer_t *w = calloc(1, sizeof(*w));
    if (!w) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    w->out = out;
    w->schema = schema;
    w->codec = codec;
    w->block_bytes = block_bytes ? block_bytes : 65536;
    if (getrandom(w->sync, SYNC_SIZE, 0) != SYNC_SIZE) {
        uint64_t seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ (uintptr_t)w;
        for (int i = 0; i < SYNC_SIZE; i++) {
            seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
            w->sync[i] = (uint8_t)(seed >> 56);
        }
    }
    dm_buf_t h = DM_BUF_INIT;
    dm_buf_append(&h, MAGIC, 4);
    put_long(&h, 2 + (int64_t)n_meta);
    put_bytes(&h, "avro.schema", 11);
    put_bytes(&h, schema->json, schema->json_len);
    put_bytes(&h, "avro.codec", 10);
    put_bytes(&h, codec_names[codec], strlen(codec_names[codec]));
    for (size_t i = 0; i < n_meta; i++) {
        put_bytes(&h, meta[i].key, strlen(meta[i].key));
        put_bytes(&h, meta[i].value, meta[i].len);
    }
    put_long(&h, 0);
    dm_buf_append(&h, w->sync, SYNC_SIZE);
    bool ok = fwrite(h.data, 1, h.len, out) == h.len;
    dm_buf_free(&h);
    if (!ok) {
        free(w);
        return dm_error_set(err, DM_ERR_IO, "writing the container header failed");
    }
    *wp = w;
    return DM_OK;
}

dm_err_t dm_avro_file_writer_flush(dm_avro_file_writer_t *w, dm_error_t *err)
{
    if (w->count) {
        dm_err_t rc = compress_block(w->codec, w->block.data, w->block.len, &w->packed, err);
        if (rc) return rc;
        dm_buf_t h = DM_BUF_INIT;
        put_long(&h, w->count);
        put_long(&h, (int64_t)w->packed.len);
        bool ok = fwrite(h.data, 1, h.len, w->out) == h.len &&
                  fwrite(w->packed.data, 1, w->packed.len, w->out) == w->packed.len &&
                  fwrite(w->sync, 1, SYNC_SIZE, w->out) == SYNC_SIZE;
        dm_buf_free(&h);
        dm_buf_reset(&w->block);
        w->count = 0;
        if (!ok) {
            w->io_error = true;
            return dm_error_set(err, DM_ERR_IO, "writing a container block failed");
        }
    }
    if (fflush(w->out) != 0) {
        w->io_error = true;
        return dm_error_set(err, DM_ERR_IO, "flushing the container file failed");
    }
    return DM_OK;
}

static dm_err_t after_append(dm_avro_file_writer_t *w, dm_error_t *err)
{
    w->count++;
    if (w->block.len >= w->block_bytes) return dm_avro_file_writer_flush(w, err);
    return DM_OK;
}

dm_err_t dm_avro_file_writer_append(dm_avro_file_writer_t *w, const dm_avro_value_t *v,
                                    dm_error_t *err)
{
    dm_err_t rc = dm_avro_encode(w->schema->root, v, &w->block, err);
    return rc ? rc : after_append(w, err);
}

dm_err_t dm_avro_file_writer_append_raw(dm_avro_file_writer_t *w, const uint8_t *bytes, size_t len,
                                        dm_error_t *err)
{
    size_t used;
    dm_err_t rc = dm_avro_skip(w->schema->root, bytes, len, &used, err);
    if (rc) return rc;
    if (used != len)
        return dm_error_set(err, DM_ERR_SCHEMA_MISMATCH, "%zu bytes left over after the record",
                            len - used);
    if ((rc = dm_buf_append(&w->block, bytes, len))) return rc;
    return after_append(w, err);
}

dm_err_t dm_avro_file_writer_close(dm_avro_file_writer_t *w, dm_error_t *err)
{
    if (!w) return DM_OK;
    dm_err_t rc = dm_avro_file_writer_flush(w, err);
    dm_buf_free(&w->block);
    dm_buf_free(&w->packed);
    free(w);
    return rc;
}

/* ---- reader ---------------------------------------------------------------------------- */

typedef struct meta {
    const char *key;
    size_t key_len;
    const uint8_t *val;
    size_t val_len;
} meta_t;

struct dm_avro_file_reader {
    const uint8_t *data, *end, *p;
    dm_avro_schema_t *schema;
    dm_avro_codec_t *codec_plan;
    dm_avro_file_codec_t codec;
    uint8_t sync[SYNC_SIZE];
    meta_t *meta;
    size_t n_meta;
    dm_buf_t block;
    const uint8_t *bp, *bend; /* records left in the current block */
    int64_t left;             /* records left in the current block */
    uint64_t block_no;
    size_t block_off;
    bool done;
};

static int rd_long(const uint8_t **p, const uint8_t *end, int64_t *v)
{
    int n = dm_varint_decode_i64(*p, end, v);
    if (n > 0) *p += n;
    return n;
}

dm_err_t dm_avro_file_reader_new(const uint8_t *data, size_t len, dm_avro_file_reader_t **rp,
                                 dm_error_t *err)
{
    *rp = NULL;
    if (len < 4 || memcmp(data, MAGIC, 4) != 0)
        return dm_error_set(err, DM_ERR_CORRUPT, "not an Avro container file (bad magic)");
    dm_avro_file_reader_t *r = calloc(1, sizeof(*r));
    if (!r) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    r->data = data;
    r->end = data + len;
    const uint8_t *p = data + 4;
    dm_err_t rc = DM_OK;
    size_t cap = 0;
    for (;;) {
        int64_t cnt;
        int n = rd_long(&p, r->end, &cnt);
        if (n <= 0) {
            rc = dm_error_set(err, n ? DM_ERR_CORRUPT : DM_ERR_TRUNCATED,
                              "header metadata at byte %zu: bad block count", (size_t)(p - data));
            goto fail;
        }
        if (cnt == 0) break;
        if (cnt < 0) {
            int64_t sz;
            cnt = cnt == INT64_MIN ? 0 : -cnt;
            if (rd_long(&p, r->end, &sz) <= 0) cnt = 0;
        }
        if (cnt <= 0 || cnt > r->end - p) {
            rc = dm_error_set(err, DM_ERR_CORRUPT, "header metadata at byte %zu: bad count",
                              (size_t)(p - data));
            goto fail;
        }
        for (int64_t i = 0; i < cnt; i++) {
            int64_t kl, vl;
            if (rd_long(&p, r->end, &kl) <= 0 || kl < 0) goto bad_entry;
            if (kl > r->end - p) goto cut;
            const uint8_t *key = p;
            p += kl;
            if (rd_long(&p, r->end, &vl) <= 0 || vl < 0) goto bad_entry;
            if (vl > r->end - p) goto cut;
            if (r->n_meta == cap) {
                cap = cap ? cap * 2 : 8;
                meta_t *m = realloc(r->meta, cap * sizeof(*m));
                if (!m) {
                    rc = dm_error_set(err, DM_ERR_NOMEM, "out of memory");
                    goto fail;
                }
                r->meta = m;
            }
            r->meta[r->n_meta++] = (meta_t){(const char *)key, (size_t)kl, p, (size_t)vl};
            p += vl;
        }
    }
    if (r->end - p < SYNC_SIZE) {
        rc = dm_error_set(err, DM_ERR_TRUNCATED, "file ends inside the header's sync marker");
        goto fail;
    }
    memcpy(r->sync, p, SYNC_SIZE);
    p += SYNC_SIZE;
    r->p = p;
    size_t sl, cl;
    const uint8_t *schema = dm_avro_file_reader_meta(r, "avro.schema", &sl);
    const uint8_t *codec = dm_avro_file_reader_meta(r, "avro.codec", &cl);
    if (!schema) {
        rc = dm_error_set(err, DM_ERR_CORRUPT, "header has no avro.schema");
        goto fail;
    }
    if (codec) {
        char name[32];
        if (cl >= sizeof(name)) cl = sizeof(name) - 1;
        memcpy(name, codec, cl);
        name[cl] = '\0';
        if (dm_avro_file_codec_parse(name, &r->codec)) {
            rc = dm_error_set(err, DM_ERR_UNSUPPORTED, "unsupported codec \"%s\"", name);
            goto fail;
        }
    }
    if ((rc = dm_avro_schema_parse((const char *)schema, sl, &r->schema, err))) {
        dm_error_prefix(err, "avro.schema in the file header");
        goto fail;
    }
    if ((rc = dm_avro_codec_new(r->schema, NULL, NULL, 0, &r->codec_plan, err))) goto fail;
    *rp = r;
    return DM_OK;
cut:
    rc = dm_error_set(err, DM_ERR_TRUNCATED,
                      "header metadata at byte %zu: the file is truncated inside the header",
                      (size_t)(p - data));
    goto fail;
bad_entry:
    rc = dm_error_set(err, DM_ERR_CORRUPT, "header metadata at byte %zu: bad entry",
                      (size_t)(p - data));
fail:
    dm_avro_file_reader_free(r);
    return rc;
}

void dm_avro_file_reader_free(dm_avro_file_reader_t *r)
{
    if (!r) return;
    dm_avro_codec_free(r->codec_plan);
    dm_avro_schema_free(r->schema);
    dm_buf_free(&r->block);
    free(r->meta);
    free(r);
}

const dm_avro_schema_t *dm_avro_file_reader_schema(const dm_avro_file_reader_t *r)
{
    return r->schema;
}

dm_avro_file_codec_t dm_avro_file_reader_codec(const dm_avro_file_reader_t *r)
{
    return r->codec;
}

const uint8_t *dm_avro_file_reader_meta(const dm_avro_file_reader_t *r, const char *key,
                                        size_t *len)
{
    size_t kl = strlen(key);
    for (size_t i = 0; i < r->n_meta; i++)
        if (r->meta[i].key_len == kl && memcmp(r->meta[i].key, key, kl) == 0) {
            if (len) *len = r->meta[i].val_len;
            return r->meta[i].val;
        }
    return NULL;
}

dm_err_t dm_avro_file_reader_set_reader(dm_avro_file_reader_t *r, const dm_avro_schema_t *reader,
                                        const char *const *paths, size_t n_paths, dm_error_t *err)
{
    dm_avro_codec_t *c;
    dm_err_t rc = dm_avro_codec_new(r->schema, reader, paths, n_paths, &c, err);
    if (rc) return rc;
    dm_avro_codec_free(r->codec_plan);
    r->codec_plan = c;
    return DM_OK;
}

const dm_avro_node_t *dm_avro_file_reader_value_node(const dm_avro_file_reader_t *r)
{
    return dm_avro_codec_reader(r->codec_plan);
}

/* Moves to the next non-empty block; false at the end of the file. */
static dm_err_t next_block(dm_avro_file_reader_t *r, bool *have, dm_error_t *err)
{
    *have = false;
    while (!r->done) {
        if (r->p == r->end) {
            r->done = true;
            return DM_OK;
        }
        size_t off = (size_t)(r->p - r->data);
        uint64_t no = r->block_no + 1;
        const uint8_t *p = r->p;
        int64_t cnt, size;
        int n = rd_long(&p, r->end, &cnt);
        if (n > 0) n = rd_long(&p, r->end, &size);
        if (n == 0)
            return dm_error_set(err, DM_ERR_TRUNCATED,
                                "block %" PRIu64 " at byte %zu: file ends inside the block header",
                                no, off);
        if (n < 0 || cnt < 0 || size < 0)
            return dm_error_set(err, DM_ERR_CORRUPT,
                                "block %" PRIu64 " at byte %zu: bad block header", no, off);
        if ((uint64_t)size + SYNC_SIZE > (uint64_t)(r->end - p))
            return dm_error_set(err, DM_ERR_TRUNCATED,
                                "block %" PRIu64 " at byte %zu is truncated: it needs %" PRId64
                                " bytes, the file has %zu",
                                no, off, size + SYNC_SIZE, (size_t)(r->end - p));
        if (memcmp(p + size, r->sync, SYNC_SIZE) != 0)
            return dm_error_set(err, DM_ERR_CORRUPT,
                                "block %" PRIu64 " at byte %zu: sync marker mismatch", no, off);
        r->block_no = no;
        r->block_off = off;
        r->p = p + size + SYNC_SIZE;
        if (cnt == 0) continue;
        if (r->codec == DM_AVRO_FILE_NULL) {
            r->bp = p;
            r->bend = p + size;
        } else {
            dm_err_t rc = decompress_block(r->codec, p, (size_t)size, &r->block, err);
            if (rc) {
                dm_error_prefix(err, "block %" PRIu64 " at byte %zu", no, off);
                return rc;
            }
            r->bp = r->block.data ? r->block.data : p;
            r->bend = r->bp + r->block.len;
        }
        if ((uint64_t)cnt > (uint64_t)(r->bend - r->bp) + 1 && (uint64_t)cnt > MAX_BLOCK_BYTES)
            return dm_error_set(err, DM_ERR_CORRUPT,
                                "block %" PRIu64 " at byte %zu: record count too large", no, off);
        r->left = cnt;
        *have = true;
        return DM_OK;
    }
    return DM_OK;
}

static dm_err_t block_done_check(dm_avro_file_reader_t *r, dm_error_t *err)
{
    if (r->left == 0 && r->bp != r->bend)
        return dm_error_set(err, DM_ERR_CORRUPT,
                            "block %" PRIu64 " at byte %zu: %zu bytes left after its records",
                            r->block_no, r->block_off, (size_t)(r->bend - r->bp));
    return DM_OK;
}

dm_err_t dm_avro_file_reader_next_raw(dm_avro_file_reader_t *r, const uint8_t **bytes, size_t *len,
                                      bool *got, dm_error_t *err)
{
    *got = false;
    if (r->left == 0) {
        bool have;
        dm_err_t rc = next_block(r, &have, err);
        if (rc || !have) return rc;
    }
    size_t used;
    dm_err_t rc = dm_avro_skip(r->schema->root, r->bp, (size_t)(r->bend - r->bp), &used, err);
    if (rc) {
        dm_error_prefix(err, "block %" PRIu64 " at byte %zu", r->block_no, r->block_off);
        return rc;
    }
    *bytes = r->bp;
    *len = used;
    r->bp += used;
    r->left--;
    *got = true;
    return block_done_check(r, err);
}

dm_err_t dm_avro_file_reader_next(dm_avro_file_reader_t *r, dm_arena_t *arena, dm_avro_value_t *out,
                                  bool *got, dm_error_t *err)
{
    *got = false;
    if (r->left == 0) {
        bool have;
        dm_err_t rc = next_block(r, &have, err);
        if (rc || !have) return rc;
    }
    size_t used;
    dm_err_t rc =
        dm_avro_decode(r->codec_plan, r->bp, (size_t)(r->bend - r->bp), &used, arena, out, err);
    if (rc) {
        dm_error_prefix(err, "block %" PRIu64 " at byte %zu", r->block_no, r->block_off);
        return rc;
    }
    r->bp += used;
    r->left--;
    *got = true;
    return block_done_check(r, err);
}
