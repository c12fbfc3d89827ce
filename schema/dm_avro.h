/* schema/dm_avro.h — Avro schemas, values and compiled codecs.
 *
 * A schema is parsed once (dm_avro_schema_parse) into a graph of nodes that
 * lives in the schema's own arena; named types referenced several times (or
 * recursively) are the same node. A codec (dm_avro_codec_new) compiles a
 * writer schema, optionally a different reader schema (schema resolution) and
 * optionally a set of field paths (projection) into a decode plan: decoding
 * follows pointers, never looks names up, and skips what the reader does not
 * want without materializing it.
 *
 * Values (dm_avro_value_t, 16 bytes) are allocated in a caller's arena, one
 * arena per batch; decoding allocates nothing from malloc once the arena has
 * grown to the batch's size. Strings and bytes are not copied: they point into
 * the input buffer (or into the codec, for reader defaults), so a decoded value
 * is valid while its arena, its input bytes and its codec live.
 *
 * Threads: a schema and a codec are immutable after creation and may be shared
 * by threads; arenas and values belong to one thread.
 */
#ifndef DM_SCHEMA_DM_AVRO_H
#define DM_SCHEMA_DM_AVRO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/error.h"

typedef enum dm_avro_type {
    DM_AVRO_NULL = 0,
    DM_AVRO_BOOLEAN,
    DM_AVRO_INT,
    DM_AVRO_LONG,
    DM_AVRO_FLOAT,
    DM_AVRO_DOUBLE,
    DM_AVRO_BYTES,
    DM_AVRO_STRING,
    DM_AVRO_RECORD,
    DM_AVRO_ENUM,
    DM_AVRO_ARRAY,
    DM_AVRO_MAP,
    DM_AVRO_UNION,
    DM_AVRO_FIXED,
    DM_AVRO_ENCODED = 0xfe, /* value type of a field passed through as its bytes (codec_new_raw) */
    DM_AVRO_ABSENT = 0xff,  /* value type of a field left out by projection */
} dm_avro_type_t;

typedef enum dm_avro_logical {
    DM_AVRO_LT_NONE = 0,
    DM_AVRO_LT_DECIMAL,
    DM_AVRO_LT_UUID,
    DM_AVRO_LT_DATE,
    DM_AVRO_LT_TIME_MILLIS,
    DM_AVRO_LT_TIME_MICROS,
    DM_AVRO_LT_TIMESTAMP_MILLIS,
    DM_AVRO_LT_TIMESTAMP_MICROS,
    DM_AVRO_LT_LOCAL_TIMESTAMP_MILLIS,
    DM_AVRO_LT_LOCAL_TIMESTAMP_MICROS,
    DM_AVRO_LT_DURATION,
} dm_avro_logical_t;

typedef enum dm_avro_order {
    DM_AVRO_ORDER_ASC = 0,
    DM_AVRO_ORDER_DESC,
    DM_AVRO_ORDER_IGNORE
} dm_avro_order_t;

typedef struct dm_avro_node dm_avro_node_t;

typedef struct dm_avro_field {
    const char *name;
    const char *doc;
    dm_avro_node_t *type;
    const char **aliases;
    uint32_t n_aliases;
    dm_avro_order_t order;
    bool has_default;
    /* The default, validated against type and kept as Avro binary. */
    const uint8_t *default_bin;
    size_t default_len;
} dm_avro_field_t;

struct dm_avro_node {
    dm_avro_type_t type;
    dm_avro_logical_t logical;
    int precision, scale; /* decimal */
    const char *fullname; /* named types: namespace.name */
    const char *name;     /* named types: the name without namespace */
    const char *space;    /* named types: namespace, "" when none */
    const char *doc;
    const char **aliases; /* named types: full names */
    uint32_t n_aliases;
    dm_avro_field_t *fields; /* record */
    uint32_t n_fields;
    const char **symbols; /* enum */
    uint32_t n_symbols;
    int32_t enum_default;      /* symbol index, -1 when none */
    dm_avro_node_t *items;     /* array items, map values */
    dm_avro_node_t **branches; /* union */
    uint32_t n_branches;
    uint32_t size; /* fixed */
    bool defined;  /* internal: named type seen in full (forward references) */
};

typedef struct dm_avro_schema {
    dm_arena_t arena;
    dm_avro_node_t *root;
    const char *json; /* the text it was parsed from, NUL-terminated */
    size_t json_len;
    dm_avro_node_t **named; /* every named type, in definition order */
    uint32_t n_named;
} dm_avro_schema_t;

/* A decoded or to-be-encoded value. Scalars are inline; records, arrays and
 * maps point to arrays of values in an arena:
 *   record: u.v[0..len) one value per reader field, in schema order
 *   array:  u.v[0..len) the items
 *   map:    u.v[0..2*len) key (a STRING value), value, key, value, ...
 *   enum:   u.i is the symbol index
 *   bytes/string/fixed: u.p with len bytes (strings are not NUL-terminated)
 * A value that sits in a union carries the branch index it took in branch. */
typedef struct dm_avro_value {
    uint8_t type; /* dm_avro_type_t */
    uint8_t flags;
    uint16_t branch;
    uint32_t len;
    union {
        int64_t l;
        int32_t i;
        double d;
        float f;
        bool b;
        const uint8_t *p;
        struct dm_avro_value *v;
    } u;
} dm_avro_value_t;

/* ---- schemas ---------------------------------------------------------------- */

/* Parses an Avro schema (Avro 1.11 JSON). Defaults are validated against their
 * types; names resolve across the whole document (forward references and
 * recursion are allowed). On error returns DM_ERR_SCHEMA_PARSE with a message
 * naming the JSON path ("$.fields[2].type") and the rule broken; *out is NULL.
 * The caller frees *out with dm_avro_schema_free. */
dm_err_t dm_avro_schema_parse(const char *json, size_t len, dm_avro_schema_t **out,
                              dm_error_t *err);

/* Reads and parses a schema file (.avsc). Errors as dm_avro_schema_parse, plus
 * DM_ERR_IO when the file cannot be read. */
dm_err_t dm_avro_schema_parse_file(const char *path, dm_avro_schema_t **out, dm_error_t *err);

/* Frees a schema and everything in it. NULL is allowed. */
void dm_avro_schema_free(dm_avro_schema_t *s);

/* Name of a type as the spec spells it ("record", "int"). */
const char *dm_avro_type_name(dm_avro_type_t t);

/* Index of a record's field named name (or with an alias name), -1 if none. */
int dm_avro_field_index(const dm_avro_node_t *record, const char *name);

/* Appends the Parsing Canonical Form of node to out (not NUL-terminated). */
dm_err_t dm_avro_canonical(const dm_avro_node_t *node, dm_buf_t *out);

/* The spec's 64-bit Rabin fingerprint (CRC-64-AVRO) of len bytes. */
uint64_t dm_avro_rabin64(const void *data, size_t len);

/* Fingerprints of a schema's canonical form. */
typedef struct dm_avro_fingerprints {
    uint64_t rabin;
    uint8_t md5[16];
    uint8_t sha256[32];
} dm_avro_fingerprints_t;

/* Computes all three fingerprints of node's canonical form. */
dm_err_t dm_avro_fingerprint(const dm_avro_node_t *node, dm_avro_fingerprints_t *out);

/* ---- codecs ------------------------------------------------------------------- */

typedef struct dm_avro_codec dm_avro_codec_t;

/* Compiles a decode plan. writer: the schema the bytes were written with.
 * reader: the schema values should have (NULL = writer; otherwise resolved per
 * the spec's Schema Resolution rules). paths: field paths ("a.b.c", through
 * arrays, maps and unions transparently) to decode; every other reader field is
 * skipped and its value is DM_AVRO_ABSENT (n_paths = 0: everything).
 * Errors: DM_ERR_SCHEMA_INCOMPATIBLE when reader cannot read writer,
 * DM_ERR_INVALID for a path that names no field. The codec borrows both
 * schemas, which must outlive it; free it with dm_avro_codec_free. */
dm_err_t dm_avro_codec_new(const dm_avro_schema_t *writer, const dm_avro_schema_t *reader,
                           const char *const *paths, size_t n_paths, dm_avro_codec_t **out,
                           dm_error_t *err);

/* As dm_avro_codec_new, and the top-level fields named in raw (reader names,
 * also wanted by paths) come out as DM_AVRO_ENCODED values: u.p and len hold
 * the field's bytes as written, checked as a decode would check them but not
 * converted, so that dm_avro_encode copies them instead of encoding again
 * (a record passed through with a few fields kept). A raw name is decoded as
 * usual when its writer and reader types are not the same node (schema
 * resolution would change the bytes) or when the root record recurs inside
 * itself. Nothing but dm_avro_encode understands an ENCODED value: only ask
 * for fields that no one reads. Errors as dm_avro_codec_new. */
dm_err_t dm_avro_codec_new_raw(const dm_avro_schema_t *writer, const dm_avro_schema_t *reader,
                               const char *const *paths, size_t n_paths, const char *const *raw,
                               size_t n_raw, dm_avro_codec_t **out, dm_error_t *err);

/* A codec that wants no field: dm_avro_decode with it and a consumed pointer
 * checks every byte of one value of writer as a full decode would (through
 * the compiled skip runs, several times faster than dm_avro_skip) and gives a
 * record whose fields are all DM_AVRO_ABSENT — for taking encoded values as
 * they are once they are known to be valid. Errors as dm_avro_codec_new. */
dm_err_t dm_avro_codec_new_check(const dm_avro_schema_t *writer, dm_avro_codec_t **out,
                                 dm_error_t *err);

/* Frees a codec. NULL is allowed. */
void dm_avro_codec_free(dm_avro_codec_t *c);

/* The reader node values decoded by c conform to. */
const dm_avro_node_t *dm_avro_codec_reader(const dm_avro_codec_t *c);

/* Decodes one value from [buf, buf+len) into *out, allocating in arena.
 * *consumed gets the bytes read. consumed may be NULL when the caller knows
 * where the record ends (a topic record, a container block entry): the decoder
 * then stops after the last field the codec wants and neither reads nor checks
 * the top-level fields after it (what makes projections cheap). Bounds-checked: bytes that end
 * early give DM_ERR_TRUNCATED, bytes that cannot be this schema give
 * DM_ERR_SCHEMA_MISMATCH; both messages name the byte offset and field path. */
dm_err_t dm_avro_decode(const dm_avro_codec_t *c, const uint8_t *buf, size_t len, size_t *consumed,
                        dm_arena_t *arena, dm_avro_value_t *out, dm_error_t *err);

/* Decodes one value written with node directly from the schema graph, without
 * a compiled codec (slower; for one-off values such as defaults). Errors and
 * lifetimes as dm_avro_decode. */
dm_err_t dm_avro_decode_node(const dm_avro_node_t *node, const uint8_t *buf, size_t len,
                             size_t *consumed, dm_arena_t *arena, dm_avro_value_t *out,
                             dm_error_t *err);

/* Checks that [buf, buf+len) holds one value of node and returns its length in
 * *consumed, without materializing anything. Errors as dm_avro_decode. */
dm_err_t dm_avro_skip(const dm_avro_node_t *node, const uint8_t *buf, size_t len, size_t *consumed,
                      dm_error_t *err);

/* Appends the Avro binary encoding of v, which must conform to node, to out.
 * DM_ERR_SCHEMA_MISMATCH names the field path when it does not. */
dm_err_t dm_avro_encode(const dm_avro_node_t *node, const dm_avro_value_t *v, dm_buf_t *out,
                        dm_error_t *err);

/* True when a and b (values of node) are equal. */
bool dm_avro_value_equal(const dm_avro_node_t *node, const dm_avro_value_t *a,
                         const dm_avro_value_t *b);

/* ---- JSON --------------------------------------------------------------------- */

typedef enum dm_avro_json_mode {
    /* The spec's JSON encoding: unions as {"type": value}, bytes as strings
     * of code points 0-255. */
    DM_AVRO_JSON_AVRO = 0,
    /* Plain JSON for ingest and sinks: unions unwrapped (branch inferred from
     * the value), logical types as ISO-8601 strings (date, time, timestamps),
     * decimals as strings of digits, uuid as string. */
    DM_AVRO_JSON_PLAIN,
    /* Field defaults in a schema: like AVRO, but a union's value is its first
     * branch's, unwrapped. */
    DM_AVRO_JSON_DEFAULT,
} dm_avro_json_mode_t;

/* Converts JSON text to a value of node, allocated in arena, in one pass
 * without a DOM (schema/json_decode.c). A mismatch returns
 * DM_ERR_SCHEMA_MISMATCH naming the field path, the expected type and the
 * line, column and byte; text that is not JSON DM_ERR_INVALID, with where.
 * A key given twice in an object is refused. Strings are copied into arena. */
dm_err_t dm_avro_from_json_text(const dm_avro_node_t *node, const char *json, size_t len,
                                dm_avro_json_mode_t mode, dm_arena_t *arena, dm_avro_value_t *out,
                                dm_error_t *err);

/* Walks JSON text holding an array of values (or one value that is not an
 * array) without building it: fn gets each element's own bytes, checked to be
 * JSON, in order, with its index; a non-zero return stops the walk and is
 * returned. Syntax errors (DM_ERR_INVALID) name the line, column and byte.
 * *count (may be NULL) gets the number of elements handed to fn. */
dm_err_t dm_avro_json_each(const char *json, size_t len,
                           dm_err_t (*fn)(void *ctx, size_t i, const char *elem, size_t elem_len,
                                          dm_error_t *err),
                           void *ctx, size_t *count, dm_error_t *err);

/* Appends v (a value of node) to out as JSON text. Projected-out fields are
 * left out of records. */
dm_err_t dm_avro_to_json(const dm_avro_node_t *node, const dm_avro_value_t *v,
                         dm_avro_json_mode_t mode, dm_buf_t *out, dm_error_t *err);

#endif
