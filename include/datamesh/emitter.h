/* datamesh/emitter.h — emitting application events into a datamesh source.
 *
 *   char err[256];
 *   dm_emitter_t *e = dm_emitter_new("http://127.0.0.1:8080", "clicks", err, sizeof(err));
 *   if (!e) { fprintf(stderr, "%s\n", err); ... }
 *   dm_emitter_send_json(e, "{\"user\": \"a\", \"page\": \"/\"}", 28);
 *   dm_emitter_flush(e, 5000);      // every event sent so far is in the source
 *   dm_emitter_destroy(e);
 *
 * Link with `pkg-config --cflags --libs datamesh-emitter` (libdatamesh_emitter,
 * shared or static).
 *
 * What it does: at creation it fetches the source's current schema from the
 * controller's schema registry (and newer versions later: schema_check_ms);
 * each event is validated against it and
 * encoded to Avro (Confluent wire format) on the caller's thread, so a bad
 * event is refused at once with the field named. Events are batched (by
 * count, bytes and linger time) and sent by one background thread to the
 * controller's binary ingest endpoint. A batch that cannot be delivered is
 * retried with backoff (100 ms doubling to 5 s) for as long as it takes —
 * nothing is dropped — and, with a spool directory, written to a bounded
 * local file, so events survive this process too and are sent when it
 * starts again. Every event carries the emitter's producer id and a
 * sequence number; the controller writes a batch once however often it is
 * retried (the producer's position is committed with the events), so a
 * controller killed mid-stream and restarted ends with every event exactly
 * once.
 *
 * Threads: every call is thread-safe, except dm_emitter_destroy (call it
 * once, when no other call is running). No call blocks longer than
 * max_block_ms (send, when the queue and spool are full) or the flush's own
 * timeout.
 */
#ifndef DATAMESH_EMITTER_H
#define DATAMESH_EMITTER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dm_emitter dm_emitter_t;

/* The library's calls stay visible when it is built with hidden visibility. */
#define DM_EMITTER_API __attribute__((visibility("default")))

/* Return codes (0 is success). */
enum {
    DM_EMITTER_OK = 0,
    DM_EMITTER_ERR_INVALID =
        -1, /* the event is not JSON of the source's schema (see dm_emitter_error) */
    DM_EMITTER_ERR_FULL = -2,    /* queue and spool full for max_block_ms: not accepted */
    DM_EMITTER_ERR_TIMEOUT = -3, /* flush: not everything was delivered in time (nothing lost) */
    DM_EMITTER_ERR_CLOSED = -4,  /* the emitter is being destroyed */
};

typedef struct dm_emitter_options {
    uint32_t size;          /* sizeof(dm_emitter_options_t) */
    const char *token;      /* API token (a controller started with --auth); NULL: none */
    int batch_records;      /* a batch is sent at this many events (0: 10000) */
    int batch_bytes;        /* … or this many encoded bytes (0: 4 MiB) */
    int linger_ms;          /* … or when its first event is this old (0: 5 ms; -1: no wait) */
    int64_t queue_bytes;    /* events held in memory, not yet delivered (0: 64 MiB) */
    int max_block_ms;       /* send waits at most this long for room (0: 1000; -1: never) */
    const char *spool_dir;  /* where undelivered batches are kept on disk; NULL: memory only */
    int64_t spool_bytes;    /* the spool file's bound (0: 1 GiB) */
    int request_timeout_ms; /* one HTTP request (0: 10000) */
    /* How often the source's latest schema is looked up (0: 10000 ms; -1:
     * never): a newer version (a re-applied Source spec, a schema registered
     * in the registry) is used for the events sent after it is seen, without
     * a restart. An event that does not fit the current version also looks it
     * up at once (at most once a second, within max_block_ms) before it is
     * refused. Events queued before keep the version they were encoded with;
     * the controller takes every version of the source's subject. */
    int schema_check_ms;
} dm_emitter_options_t;

/* A new emitter of events into source through the controller at
 * controller_url (http://host:port), with default options. NULL when the
 * source's schema cannot be fetched or the options are wrong, with why in
 * err (errlen bytes, may be 0). Starts one background thread. */
DM_EMITTER_API dm_emitter_t *dm_emitter_new(const char *controller_url, const char *source,
                                            char *err, size_t errlen);

/* As dm_emitter_new, with options (NULL: defaults; copied, strings too). */
DM_EMITTER_API dm_emitter_t *dm_emitter_new_with(const char *controller_url, const char *source,
                                                 const dm_emitter_options_t *options, char *err,
                                                 size_t errlen);

/* Queues one event: a JSON object of the source's schema (len bytes; the
 * text is copied). DM_EMITTER_OK once it is validated and queued (not yet
 * delivered: see flush), else a DM_EMITTER_ERR_* code. */
DM_EMITTER_API int dm_emitter_send_json(dm_emitter_t *e, const char *record_json, size_t len);

/* Queues one event already encoded: the Avro binary of a record of the
 * source's schema (without the Confluent header; len bytes, copied). Every
 * byte is checked here against the schema (nothing is built); the bytes are
 * sent as they are. Return codes as send_json. */
DM_EMITTER_API int dm_emitter_send_avro(dm_emitter_t *e, const void *avro, size_t len);

/* Waits until every event queued before the call is in the source, at most
 * timeout_ms (-1: no limit). DM_EMITTER_OK or DM_EMITTER_ERR_TIMEOUT. */
DM_EMITTER_API int dm_emitter_flush(dm_emitter_t *e, int timeout_ms);

/* The calling thread's last error message from this library ("" when none);
 * valid until its next call into it. */
DM_EMITTER_API const char *dm_emitter_error(void);

/* Counters: events accepted, delivered, and batches retried. */
typedef struct dm_emitter_stats {
    uint64_t queued, delivered, retries, spooled;
} dm_emitter_stats_t;
DM_EMITTER_API void dm_emitter_stats(dm_emitter_t *e, dm_emitter_stats_t *out);

/* Sends what is queued (waiting for it as long as the options' max_block_ms
 * allows), stops the thread and frees everything. Events not delivered by
 * then stay in the spool (with a spool directory) for the next emitter of
 * the same source and directory; without one they are lost, and the count is
 * logged to stderr. NULL is fine. */
DM_EMITTER_API void dm_emitter_destroy(dm_emitter_t *e);

#ifdef __cplusplus
}
#endif

#endif
