/* schema/codec_internal.h — the compiled plan shared by the decoder (codec.c) and its
 * compiler (codec_compile.c). */
#ifndef DM_SCHEMA_CODEC_INTERNAL_H
#define DM_SCHEMA_CODEC_INTERNAL_H

#include "schema/internal.h"

#define MAX_DEPTH           512
#define MAX_ZERO_SIZE_ITEMS (1u << 20)

enum {
    P_NULL,
    P_BOOL,
    P_INT,
    P_LONG,
    P_FLOAT,
    P_DOUBLE,
    P_BYTES,
    P_STRING,
    P_FIXED,
    P_ENUM,
    P_RECORD,
    P_ARRAY,
    P_MAP,
    P_UNION,    /* writer is a union */
    P_TO_UNION, /* writer is not a union, reader is */
    P_INT_LONG,
    P_INT_FLOAT,
    P_INT_DOUBLE,
    P_LONG_FLOAT,
    P_LONG_DOUBLE,
    P_FLOAT_DOUBLE,
    P_STRING_BYTES,
    P_BYTES_STRING,
    P_SKIP,
    P_OPT_STRING, /* record step only: a nullable string, read without a jump on the branch */
};

typedef struct plan plan_t;

enum { SK_NONE, SK_VARINT, SK_INT, SK_FIXED, SK_LEN, SK_BOOL, SK_UNION, SK_NODE };

/* One op of a skip run. A skip run is a stretch of consecutive writer fields
 * the reader does not want, all of simple types, compiled to ops that one
 * tight loop walks (runs of fixed-size fields merge into one op). */
enum { SR_END, SR_FIXED, SR_VARINT, SR_INT, SR_LEN, SR_BOOL, SR_ENUM, SR_UNION, SR_OPT_LEN };

typedef struct skop {
    uint8_t kind;          /* SR_* */
    uint8_t len_branch;    /* SR_OPT_LEN: which of the two branches is the string */
    uint32_t n;            /* SR_FIXED: bytes; SR_ENUM: symbols; SR_*UNION: branches */
    const struct skop *br; /* SR_UNION, SR_OPT_LEN: one op per writer branch, none a union */
} skop_t;

typedef struct step {
    const plan_t *plan; /* NULL: skip writer field of type w */
    const dm_avro_node_t *w;
    int32_t slot;
    uint8_t op;               /* plan->op, copied here so the record loop inlines primitives */
    uint8_t skip;             /* SK_*: how to skip the writer field when slot < 0 */
    uint32_t size;            /* SK_FIXED: bytes to skip */
    uint32_t run_fields;      /* first step of a skip run: the writer fields it covers */
    const skop_t *ops;        /* ... and its ops, ending with SR_END */
    uint8_t str_branch;       /* P_OPT_STRING: writer branch of the string; */
    uint16_t rb_null, rb_str; /* ... reader branches of null and of the string */
    bool raw;                 /* the value is the field's bytes (DM_AVRO_ENCODED) */
    const char *name;         /* for error paths */
} step_t;

/* One op of a flat record (see dec_flat): a primitive decoded into a slot or
 * a simple field skipped. */
enum {
    F_END,
    F_SKIP_INT,
    F_SKIP_LONG,
    F_SKIP_LEN,
    F_SKIP_FIXED,
    F_SKIP_BOOL,
    F_INT,
    F_LONG,
    F_FLOAT,
    F_DOUBLE,
    F_STRING,
    F_BYTES,
    F_BOOL,
    F_OPT_STRING,
    /* a raw field (step_t.raw): stepped over as checked as its decode, kept as its bytes */
    F_RAW_INT,
    F_RAW_LONG,
    F_RAW_FIXED,
    F_RAW_LEN,
    F_RAW_BOOL,
    F_RAW_OPT_STRING,
};

typedef struct fop {
    uint8_t kind;             /* F_* */
    uint8_t str_branch;       /* F_OPT_STRING: as step_t */
    uint16_t rb_null, rb_str; /* ... */
    uint32_t slot;
    uint32_t size; /* F_SKIP_FIXED */
} fop_t;

typedef struct fill {
    int32_t slot;
    dm_avro_value_t value;
} fill_t;

typedef struct proj {
    const char *name;
    struct proj *kids;
    uint32_t n_kids, cap_kids;
    bool all;
} proj_t;

struct plan {
    uint8_t op;
    uint8_t out_type;
    bool projected; /* record with slots left absent */
    bool failed;
    const dm_avro_node_t *w, *r;
    const proj_t *proj;
    uint32_t n_out;
    uint32_t n_steps;
    uint32_t n_needed; /* steps up to the last one that fills a slot */
    uint32_t *absent;  /* projected record: the slots no step or default fills */
    uint32_t n_absent;
    step_t *steps;
    const fop_t *flat; /* steps [0, n_needed) as flat ops when all are simple */
    fill_t *fills;
    uint32_t n_fills;
    const plan_t *items;
    size_t item_min; /* fewest bytes one writer item can take */
    const plan_t **branches;
    uint32_t n_branches;
    const plan_t *inner;
    int32_t inner_branch;
    int32_t *enum_map;
    uint32_t n_enum;
    uint32_t size;
};

typedef struct memo {
    const dm_avro_node_t *w, *r;
    const proj_t *proj;
    plan_t *plan;
} memo_t;

struct dm_avro_codec {
    dm_arena_t arena;
    const dm_avro_schema_t *writer, *reader;
    const dm_avro_node_t *rroot;
    plan_t *root;
    memo_t *memo;
    size_t n_memo, cap_memo;
    bool root_recurs; /* the root plan is reached again from inside itself */
    dm_error_t *err;
    char path[512];
    size_t plen;
};

/* ---- decoding context ------------------------------------------------------- */

typedef struct dctx {
    const uint8_t *start, *p, *end;
    dm_arena_t *arena;
    int depth;
    bool lazy_tail; /* the caller knows the record's end: stop after the last wanted field */
    dm_err_t code;
    const char *msg;
    size_t pos;
    const char *trail[16];
    int n_trail;
} dctx_t;

/* For the compiler: decoding a reader default with its plan, and the fewest bytes a
 * value of a writer type takes (bounds array and map counts before allocating). */
int dm_codec_decode_plan(dctx_t *c, const plan_t *pl, dm_avro_value_t *out);
size_t dm_codec_min_size(const dm_avro_node_t *n);

#endif
