/* datamesh/processor.h — the processor SDK: processing logic of your own,
 * built as a shared library and run by datamesh like a built-in step.
 *
 * This header is all a processor needs (no other datamesh header, no
 * datamesh library to link): `datamesh sdk include` prints its directory and
 * `datamesh sdk new NAME DIR` scaffolds a project that builds with make.
 *
 * A library exports one symbol, `dm_processor` (a const dm_processor_t; a
 * Processor object may name another with spec.symbol). The host checks
 * abi_version and size before it calls anything, so a library built against
 * another ABI is refused at apply with a message, never called.
 *
 *   kind: Processor
 *   metadata: {name: my-scorer, owner: growth}
 *   spec: {library: /opt/processors/my-scorer.so, config: {threshold: 10}}
 *
 *   steps:
 *     - processor: {name: my-scorer, config: {threshold: 20}}
 *
 * Life of an instance (one per task, i.e. per partition of the step's input):
 *
 *   open(args, out)      the settings (the Processor's config, overlaid with
 *                        the step's) and the input schema; answers with the
 *                        output schema and the manifest (fields read, and where
 *                        each output field comes from). Also run once at apply
 *                        to check the settings: refusing them refuses the apply
 *                        with the message written to err.
 *   process(self, batch) a batch of records in; emit records out, send a
 *                        record that cannot be handled to the dead letters
 *                        with a reason.
 *   on_timer / on_watermark   optional: time passed.
 *   restore(self)        optional: keyed state was rebuilt after a restart.
 *   close(self)
 *
 * Threads: open and close may run on any thread; every other call of one
 * instance runs on one task thread at a time (no locking needed inside an
 * instance). Different instances run on different threads concurrently: keep
 * no unsynchronized globals.
 *
 * Memory: what the host passes is borrowed for the duration of the call
 * unless said otherwise. Values a processor builds for output live in the
 * batch's arena (host->alloc, host->new_record) and are freed by the host
 * after the batch is written.
 *
 * Exactly-once: keyed state (host->state_*) is written to the pipeline's
 * state topic in the same transaction as the outputs and input offsets, and
 * restored from it after a crash, exactly as built-in aggregates are. Keep
 * everything that must survive a restart there (timers included: after a
 * restart, restore() is called and re-arms the timer from state).
 */
#ifndef DATAMESH_PROCESSOR_H
#define DATAMESH_PROCESSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped when a struct below changes incompatibly. The host runs only
 * libraries of its own version; fields are only ever appended within one
 * (the size members tell the host what a library knows). */
#define DM_PROCESSOR_ABI_VERSION 1

/* ---- values: decoded Avro -------------------------------------------------
 * A record is a DM_VALUE_RECORD whose u.v[0..len) are its fields in schema
 * order (find a field's index once, at open, with host->field_index).
 *   null: nothing         boolean: u.b        int/date/time-millis: u.i
 *   long/timestamp-*: u.l float: u.f           double: u.d
 *   string/bytes/fixed: u.p, len bytes (strings are NOT NUL-terminated)
 *   enum: u.i the symbol  array: u.v[0..len)   map: u.v[0..2*len) key, value, …
 *   a value in a union: its branch index in `branch`.
 * A field the manifest says is not read may arrive as DM_VALUE_ABSENT. */
enum {
    DM_VALUE_NULL = 0,
    DM_VALUE_BOOLEAN,
    DM_VALUE_INT,
    DM_VALUE_LONG,
    DM_VALUE_FLOAT,
    DM_VALUE_DOUBLE,
    DM_VALUE_BYTES,
    DM_VALUE_STRING,
    DM_VALUE_RECORD,
    DM_VALUE_ENUM,
    DM_VALUE_ARRAY,
    DM_VALUE_MAP,
    DM_VALUE_UNION,
    DM_VALUE_FIXED,
    DM_VALUE_ABSENT = 0xff,
};

typedef struct dm_value {
    uint8_t type; /* DM_VALUE_* */
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
        struct dm_value *v;
    } u;
} dm_value_t;

/* ---- lineage: where an output field comes from ---------------------------- */
enum {
    DM_DEP_KIND_IDENTITY = 0, /* copied unchanged (maybe renamed) */
    DM_DEP_KIND_TRANSFORMATION,
    DM_DEP_KIND_AGGREGATION,
    DM_DEP_KIND_FILTER, /* decides which records pass (output NULL) */
};

typedef struct dm_processor_dep {
    const char *output; /* output field; NULL: every output field (a FILTER) */
    const char *input;  /* input field path */
    int kind;           /* DM_DEP_KIND_* */
} dm_processor_dep_t;

/* ---- what the host lends ------------------------------------------------- */

typedef struct dm_sdk_ctx dm_sdk_ctx_t;     /* one instance's link to the host */
typedef struct dm_sdk_batch dm_sdk_batch_t; /* records in, records out */

enum { DM_LOG_LEVEL_ERROR = 0, DM_LOG_LEVEL_WARN, DM_LOG_LEVEL_INFO, DM_LOG_LEVEL_DEBUG };

/* Every call takes the ctx given at open (valid until close) or the batch
 * given to process/on_timer/on_watermark (valid during that call). Return
 * codes: 0 success, -1 failure (out of memory, a store error: return -1 from
 * process, and the task stops at its last commit). */
typedef struct dm_sdk_host {
    uint32_t abi_version; /* DM_PROCESSOR_ABI_VERSION */
    uint32_t size;        /* sizeof the host's struct: check before using a later member */

    /* A log line under the processor's name (the task's log; never put
     * secrets in it). */
    void (*log)(dm_sdk_ctx_t *ctx, int level, const char *message);
    /* Counter datamesh_sdk_NAME_total{pipeline task, step} += n; gauge
     * datamesh_sdk_NAME = v. name: [a-z0-9_], at most 64 characters. */
    void (*counter_add)(dm_sdk_ctx_t *ctx, const char *name, uint64_t n);
    void (*gauge_set)(dm_sdk_ctx_t *ctx, const char *name, int64_t v);

    /* Keyed state (processors that set DM_PROCESSOR_STATEFUL). get: 1 found
     * (*val, *vlen point into the store until the next state call), 0 not
     * found, -1 error. put copies key and value. */
    int (*state_get)(dm_sdk_ctx_t *ctx, const void *key, size_t klen, const void **val,
                     size_t *vlen);
    int (*state_put)(dm_sdk_ctx_t *ctx, const void *key, size_t klen, const void *val, size_t vlen);
    int (*state_del)(dm_sdk_ctx_t *ctx, const void *key, size_t klen);
    /* Calls fn for every entry until it returns non-zero (fn must not change
     * the store). */
    int (*state_foreach)(dm_sdk_ctx_t *ctx,
                         int (*fn)(void *arg, const void *key, size_t klen, const void *val,
                                   size_t vlen),
                         void *arg);

    /* The processing-time timer: on_timer runs once the wall clock (ms since
     * the epoch) passes at_ms (0 cancels; one timer per instance: keep more
     * in state and arm the earliest). */
    void (*timer_set)(dm_sdk_ctx_t *ctx, int64_t at_ms);
    /* Event time reached so far (INT64_MIN before any). */
    int64_t (*watermark)(dm_sdk_ctx_t *ctx);

    /* Index of a field of the input (which = 0) or output (which = 1) record
     * schema, -1 when there is none. */
    int (*field_index)(dm_sdk_ctx_t *ctx, int which, const char *name);

    /* ---- the batch ---- */
    uint32_t (*count)(const dm_sdk_batch_t *b); /* records in (0 for timers) */
    const dm_value_t *(*value)(const dm_sdk_batch_t *b, uint32_t i);
    const uint8_t *(*key)(const dm_sdk_batch_t *b, uint32_t i, uint32_t *len); /* as stored */
    int64_t (*timestamp)(const dm_sdk_batch_t *b, uint32_t i);
    /* Emits input record i unchanged (output schema = input schema). */
    int (*emit)(dm_sdk_batch_t *b, uint32_t i);
    /* Emits a record of the output schema, with the key and timestamp of
     * input record i (i = UINT32_MAX: no key, the current time). The value
     * must stay valid until the batch is written: input values, or values in
     * the batch arena. */
    int (*emit_value)(dm_sdk_batch_t *b, uint32_t i, const dm_value_t *record);
    /* Sends input record i to the pipeline's dead letters with reason. */
    int (*dead)(dm_sdk_batch_t *b, uint32_t i, const char *reason);
    /* Memory in the batch arena (zeroed, 8-byte aligned); NULL when out of memory. */
    void *(*alloc)(dm_sdk_batch_t *b, size_t n);
    /* A record of the output schema with every field NULL-typed (fill u.v[k]). */
    dm_value_t *(*new_record)(dm_sdk_batch_t *b);
} dm_sdk_host_t;

/* ---- open ---------------------------------------------------------------- */

typedef struct dm_processor_open_args {
    uint32_t size;                 /* sizeof the host's struct */
    const char *name;              /* the Processor object's name */
    const char *config_json;       /* the settings: a JSON object */
    const char *input_schema_json; /* the Avro record schema of the input */
    const dm_sdk_host_t *host;     /* valid until close */
    dm_sdk_ctx_t *ctx;             /* valid until close */
    bool check_only;               /* apply checks the settings: no records will come */
} dm_processor_open_args_t;

typedef struct dm_processor_opened {
    void *self; /* the instance, passed back to every call */
    /* The Avro record schema written, as JSON; NULL: the input's. Owned by
     * the instance (read at open, until close). */
    const char *output_schema_json;
    /* Input field paths read, NULL-terminated; NULL: all. Lets the host
     * decode only those (projection pushdown) and draws lineage. Owned by
     * the instance. */
    const char *const *reads;
    /* Where output fields come from (lineage), n_deps of them; NULL: the
     * input's fields pass through and `reads` decide which records pass.
     * Owned by the instance. */
    const dm_processor_dep_t *deps;
    size_t n_deps;
} dm_processor_opened_t;

/* ---- the library's entry --------------------------------------------------- */

enum {
    DM_PROCESSOR_STATEFUL = 1 << 0, /* uses host->state_*: the host checkpoints a store */
};

typedef struct dm_processor {
    uint32_t abi_version; /* DM_PROCESSOR_ABI_VERSION */
    uint32_t size;        /* sizeof(dm_processor_t) */
    const char *name;     /* for messages */
    const char *summary;  /* one line */
    uint32_t flags;       /* DM_PROCESSOR_* */

    /* Opens an instance. Returns 0, or -1 with a message in err (it reaches
     * the user as-is at apply: name the setting and the problem). */
    int (*open)(const dm_processor_open_args_t *args, dm_processor_opened_t *out, char *err,
                size_t errlen);
    /* One batch: for each record, host->emit / emit_value / dead (or nothing:
     * dropped on purpose). Returns 0, or -1 with a message in err: nothing
     * of the batch is written and the task stops at its last commit with the
     * message in its status (a record that cannot be handled belongs in the
     * dead letters instead). A crash in any call (SIGSEGV, SIGABRT, …) stops
     * the task the same way, naming the signal; the library is not called
     * again until the Processor is applied again. */
    int (*process)(void *self, dm_sdk_batch_t *batch, char *err, size_t errlen);
    /* Optional (NULL): the timer passed; may emit (emit_value with UINT32_MAX). */
    int (*on_timer)(void *self, int64_t now_ms, dm_sdk_batch_t *batch, char *err, size_t errlen);
    /* Optional: event time reached wm; may emit. */
    int (*on_watermark)(void *self, int64_t wm, dm_sdk_batch_t *batch, char *err, size_t errlen);
    /* Optional: state was rebuilt from the checkpoint (after a restart):
     * drop what the instance derived from it and re-arm its timer. */
    int (*restore)(void *self, char *err, size_t errlen);
    void (*close)(void *self);
} dm_processor_t;

/* Marks the entry symbol visible in a library built with -fvisibility=hidden. */
#define DM_PROCESSOR_EXPORT __attribute__((visibility("default")))

#ifdef __cplusplus
}
#endif

#endif
