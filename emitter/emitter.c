/* emitter/emitter.c — libdatamesh_emitter (include/datamesh/emitter.h).
 *
 * Callers validate and encode on their own thread into the open batch; one
 * sender thread delivers sealed batches in order (a FIFO in memory, and a
 * spool file ahead of it once delivery failed with a spool directory) to
 * POST /api/v1/sources/{name}/events/avro, whose body carries the producer id
 * and the batch's first sequence number (connectors/ingest/ingest.h), so a
 * retried batch is written once. Batches are delivered strictly in order: a
 * later batch never overtakes an earlier one of the same producer (the ingest
 * side would take the earlier one for a duplicate).
 *
 * A spool left by an earlier emitter of the same source and directory is
 * drained first, under its own producer id; new events get a new producer id
 * and start at sequence 0.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/arena.h"
#include "core/buf.h"
#include "datamesh/emitter.h"
#include "schema/dm_avro.h"
#include "schema/wire.h"

#define SPOOL_MAGIC "DMSP1\n"

typedef struct batch {
    struct batch *next;
    int64_t first; /* sequence number of its first record */
    uint32_t n;
    dm_buf_t data; /* n × (u32 length, framed value) */
} batch_t;

/* One version of the source's schema. The newest is e->cur; older ones stay
 * (a caller may still be encoding with one) until the emitter is destroyed. */
typedef struct version {
    struct version *older;
    dm_avro_schema_t *schema;
    dm_avro_codec_t *check; /* checks encoded values in place */
    uint32_t id;
} version_t;

struct dm_emitter {
    char *url, *source, *token, *spool_path;
    dm_emitter_options_t o;
    version_t *cur;           /* atomic: the newest version (never NULL once created) */
    pthread_mutex_t fetch_mu; /* one lookup of the latest version at a time */
    int64_t checked_ms;       /* the last periodic lookup (under fetch_mu) */
    int64_t asked_ms;         /* the last lookup for an event that did not fit (fetch_mu) */
    char refresh_said[600];   /* the last lookup's failure, said once (under fetch_mu) */
    char producer[40];

    pthread_mutex_t mu;
    pthread_cond_t wake; /* the sender: a batch is ready, a flush asks, or stop */
    pthread_cond_t room; /* senders waiting for queue space */
    pthread_cond_t done; /* flushers: something was delivered */
    batch_t open;        /* filling; n == 0: empty */
    int64_t open_since_ms;
    batch_t *head, *tail; /* sealed, in memory, oldest first */
    int64_t mem_bytes;    /* bytes of open + sealed batches */
    int64_t next_seq;     /* the next event's sequence number */
    int64_t delivered;    /* events with a sequence number below it are delivered */
    int flushers;         /* flush calls waiting: send the open batch now */
    bool stop;
    dm_emitter_stats_t stats;

    /* the spool (sender thread; spool_len under mu for the bound) */
    int spool_fd;       /* -1: none open */
    int64_t spool_read; /* offset of the next batch to deliver */
    int64_t spool_len;  /* bytes in the file */
    char spool_producer[40];
    bool spool_legacy; /* the spool holds an earlier emitter's batches */

    pthread_t thread;
    bool started;
    CURL *curl;
};

#define TLS_FAST __attribute__((tls_model("initial-exec")))

static __thread char last_error[512] TLS_FAST;

static void set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void set_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof(last_error), fmt, ap);
    va_end(ap);
}

const char *dm_emitter_error(void)
{
    return last_error;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void deadline(struct timespec *ts, int64_t ms)
{
    if (ms < 0) ms = 0;
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000;
    if (ts->tv_nsec >= 1000000000) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000;
    }
}

static void put_be(uint8_t *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t get_be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* ---- HTTP ---------------------------------------------------------------------------- */

static size_t collect(char *p, size_t size, size_t n, void *arg)
{
    dm_buf_t *b = arg;
    return dm_buf_append(b, p, size * n) ? 0 : size * n;
}

/* One request; *status the HTTP status (0: no answer), body the answer. */
static CURLcode request(CURL *c, const char *url, const char *token, const void *post,
                        size_t post_len, int timeout_ms, long *status, dm_buf_t *body)
{
    curl_easy_reset(c);
    struct curl_slist *h = NULL;
    char auth[600];
    if (token) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
        h = curl_slist_append(h, auth);
    }
    if (post) {
        h = curl_slist_append(h, "Content-Type: application/vnd.datamesh.batch");
        h = curl_slist_append(h, "Expect:"); /* no 100-continue round trip */
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, post);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)post_len);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)(timeout_ms < 3000 ? timeout_ms : 3000));
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
    CURLcode rc = curl_easy_perform(c);
    *status = 0;
    if (rc == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    curl_slist_free_all(h);
    return rc;
}

static version_t *current(dm_emitter_t *e)
{
    return __atomic_load_n(&e->cur, __ATOMIC_ACQUIRE);
}

/* Looks up the source's latest schema in the registry API (at most
 * timeout_ms) and makes it current when its id is new. 0 when the current
 * version is the latest; *changed set when it was replaced. */
static int fetch_schema(dm_emitter_t *e, int timeout_ms, bool *changed, char *err, size_t errlen)
{
    if (changed) *changed = false;
    CURL *c = curl_easy_init();
    if (!c) return snprintf(err, errlen, "cannot start libcurl"), -1;
    char url[1200];
    snprintf(url, sizeof(url), "%s/subjects/%s-value/versions/latest", e->url, e->source);
    dm_buf_t body = DM_BUF_INIT;
    long status;
    CURLcode cr = request(c, url, e->token, NULL, 0, timeout_ms, &status, &body);
    curl_easy_cleanup(c);
    int rc = -1;
    json_t *j = NULL;
    version_t *v = NULL;
    if (cr != CURLE_OK) {
        snprintf(err, errlen, "fetching the schema of source %s from %s: %s", e->source, e->url,
                 curl_easy_strerror(cr));
        goto done;
    }
    j = json_loadb((const char *)body.data, body.len, 0, NULL);
    if (status != 200 || !j) {
        const char *msg = json_string_value(json_object_get(j, "message"));
        snprintf(err, errlen, "fetching the schema of source %s: HTTP %ld%s%s", e->source, status,
                 msg ? ": " : "", msg ? msg : "");
        goto done;
    }
    const char *text = json_string_value(json_object_get(j, "schema"));
    json_int_t id = json_integer_value(json_object_get(j, "id"));
    version_t *cur = current(e);
    if (cur && id == (json_int_t)cur->id) {
        rc = 0;
        goto done;
    }
    dm_error_t perr = {0};
    v = calloc(1, sizeof(*v));
    if (!v) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    if (!text || id <= 0 || dm_avro_schema_parse(text, strlen(text), &v->schema, &perr) ||
        dm_avro_codec_new_check(v->schema, &v->check, &perr)) {
        snprintf(err, errlen, "source %s: the registry's schema does not parse: %s", e->source,
                 text ? perr.message : "no schema in the answer");
        goto done;
    }
    v->id = (uint32_t)id;
    v->older = cur;
    __atomic_store_n(&e->cur, v, __ATOMIC_RELEASE);
    v = NULL;
    if (changed) *changed = true;
    rc = 0;
done:
    if (v) {
        dm_avro_codec_free(v->check);
        dm_avro_schema_free(v->schema);
        free(v);
    }
    json_decref(j);
    dm_buf_free(&body);
    return rc;
}

/* Looks up the latest schema, unless *last_ms (the periodic lookups' time or
 * the sends' own, under fetch_mu) is less than min_age_ms ago: true when the
 * current version is no longer seen (the version the caller used). The
 * periodic lookup (wait_ms 0) skips its turn while a send looks it up; a send
 * waits at most wait_ms for a lookup under way and takes its result. A failure
 * is reported to stderr once; the current version stays. */
static bool refresh_schema(dm_emitter_t *e, const version_t *seen, int64_t *last_ms,
                           int64_t min_age_ms, int timeout_ms, int wait_ms)
{
    if (wait_ms <= 0) {
        if (pthread_mutex_trylock(&e->fetch_mu)) return false;
    } else {
        struct timespec ts;
        deadline(&ts, wait_ms);
        if (pthread_mutex_timedlock(&e->fetch_mu, &ts)) return current(e) != seen;
    }
    int64_t now = now_ms();
    if (current(e) == seen && now - *last_ms >= min_age_ms) {
        char err[600];
        bool changed;
        *last_ms = now;
        if (fetch_schema(e, timeout_ms, &changed, err, sizeof(err))) {
            if (strcmp(err, e->refresh_said))
                fprintf(stderr, "datamesh emitter: source %s: keeping schema id %u: %s\n",
                        e->source, seen->id, err);
            snprintf(e->refresh_said, sizeof(e->refresh_said), "%s", err);
        } else {
            e->refresh_said[0] = '\0';
            if (changed)
                fprintf(stderr,
                        "datamesh emitter: source %s: schema id %u is now %u (a new version; "
                        "events sent from now on use it)\n",
                        e->source, seen->id, current(e)->id);
        }
    }
    pthread_mutex_unlock(&e->fetch_mu);
    return current(e) != seen;
}

/* ---- the spool file ------------------------------------------------------------------- */

/* Opens (or creates) dir/SOURCE.spool. An existing one with batches left is
 * an earlier emitter's: drained first under its producer id. */
static int spool_open(dm_emitter_t *e, char *err, size_t errlen)
{
    if (mkdir(e->o.spool_dir, 0700) && errno != EEXIST)
        return snprintf(err, errlen, "spool directory %s: %s", e->o.spool_dir, strerror(errno)), -1;
    size_t n = strlen(e->o.spool_dir) + strlen(e->source) + 16;
    e->spool_path = malloc(n);
    if (!e->spool_path) return snprintf(err, errlen, "out of memory"), -1;
    snprintf(e->spool_path, n, "%s/%s.spool", e->o.spool_dir, e->source);
    e->spool_fd = open(e->spool_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (e->spool_fd < 0)
        return snprintf(err, errlen, "spool %s: %s", e->spool_path, strerror(errno)), -1;
    struct stat st;
    fstat(e->spool_fd, &st);
    char head[64] = "";
    ssize_t got = pread(e->spool_fd, head, sizeof(head) - 1, 0);
    size_t ml = strlen(SPOOL_MAGIC);
    char *nl = got > (ssize_t)ml ? memchr(head + ml, '\n', (size_t)got - ml) : NULL;
    if (st.st_size > 0 && (!nl || memcmp(head, SPOOL_MAGIC, ml)))
        return snprintf(err, errlen,
                        "spool %s is not an emitter spool (move it away; nothing was read)",
                        e->spool_path),
               -1;
    /* The reading position is kept in the file name's sibling .pos. */
    if (nl && st.st_size > nl + 1 - head) {
        *nl = '\0';
        snprintf(e->spool_producer, sizeof(e->spool_producer), "%s", head + ml);
        e->spool_read = nl + 1 - head;
        e->spool_len = st.st_size;
        e->spool_legacy = true;
        char pos[4200];
        snprintf(pos, sizeof(pos), "%s.pos", e->spool_path);
        FILE *f = fopen(pos, "r");
        long long at = 0;
        if (f && fscanf(f, "%lld", &at) == 1 && at > e->spool_read && at <= e->spool_len)
            e->spool_read = at;
        if (f) fclose(f);
    } else if (ftruncate(e->spool_fd, 0) == 0) {
        e->spool_len = e->spool_read = 0;
    }
    return 0;
}

/* Starts an empty spool under this emitter's producer id. */
static int spool_reset(dm_emitter_t *e)
{
    if (ftruncate(e->spool_fd, 0)) return -1;
    char head[64];
    int n = snprintf(head, sizeof(head), "%s%s\n", SPOOL_MAGIC, e->producer);
    if (pwrite(e->spool_fd, head, (size_t)n, 0) != n) return -1;
    snprintf(e->spool_producer, sizeof(e->spool_producer), "%s", e->producer);
    e->spool_read = e->spool_len = n;
    e->spool_legacy = false;
    char pos[4200];
    snprintf(pos, sizeof(pos), "%s.pos", e->spool_path);
    unlink(pos);
    return 0;
}

/* Appends a batch (sender thread). -1 when it would pass the bound or the
 * write fails: the batch stays in memory. */
static int spool_append(dm_emitter_t *e, const batch_t *b)
{
    if (e->spool_len == 0 && spool_reset(e)) return -1;
    if (e->spool_legacy) return -1; /* an earlier emitter's batches first */
    int64_t need = 16 + (int64_t)b->data.len;
    if (e->spool_len + need > e->o.spool_bytes) return -1;
    uint8_t h[16];
    put_be(h, (uint64_t)b->first, 8);
    put_be(h + 8, b->n, 4);
    put_be(h + 12, b->data.len, 4);
    if (pwrite(e->spool_fd, h, 16, e->spool_len) != 16 ||
        pwrite(e->spool_fd, b->data.data, b->data.len, e->spool_len + 16) != (ssize_t)b->data.len)
        return -1;
    if (fdatasync(e->spool_fd)) return -1;
    e->spool_len += need;
    return 0;
}

/* Reads the next spooled batch into b (its data reset first). */
static int spool_next(dm_emitter_t *e, batch_t *b)
{
    uint8_t h[16];
    if (pread(e->spool_fd, h, 16, e->spool_read) != 16) return -1;
    b->first = (int64_t)get_be(h, 8);
    b->n = (uint32_t)get_be(h + 8, 4);
    size_t len = (size_t)get_be(h + 12, 4);
    dm_buf_reset(&b->data);
    if (dm_buf_reserve(&b->data, len)) return -1;
    if (pread(e->spool_fd, b->data.data, len, e->spool_read + 16) != (ssize_t)len) return -1;
    b->data.len = len;
    return 0;
}

/* The spooled batch at spool_read was delivered. */
static void spool_advance(dm_emitter_t *e, size_t data_len)
{
    e->spool_read += 16 + (int64_t)data_len;
    char pos[4200];
    snprintf(pos, sizeof(pos), "%s.pos", e->spool_path);
    if (e->spool_read >= e->spool_len) {
        if (ftruncate(e->spool_fd, 0) == 0) unlink(pos);
        pthread_mutex_lock(&e->mu);
        e->spool_len = e->spool_read = 0;
        e->spool_legacy = false;
        pthread_mutex_unlock(&e->mu);
        return;
    }
    FILE *f = fopen(pos, "w");
    if (f) {
        fprintf(f, "%lld\n", (long long)e->spool_read);
        fclose(f);
    }
}

/* ---- delivering ------------------------------------------------------------------------ */

/* POSTs one batch under producer; 0 once the controller took it. */
static int deliver(dm_emitter_t *e, const char *producer, const batch_t *b, char *why,
                   size_t whylen)
{
    size_t pl = strlen(producer);
    dm_buf_t body = DM_BUF_INIT, answer = DM_BUF_INIT;
    uint8_t h[17];
    int rc = -1;
    if (dm_buf_reserve(&body, 4 + 1 + pl + 12 + b->data.len)) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    dm_buf_append(&body, "DMB1", 4);
    dm_buf_append_u8(&body, (uint8_t)pl);
    dm_buf_append(&body, producer, pl);
    put_be(h, (uint64_t)b->first, 8);
    put_be(h + 8, b->n, 4);
    dm_buf_append(&body, h, 12);
    dm_buf_append(&body, b->data.data, b->data.len);
    char url[1200];
    snprintf(url, sizeof(url), "%s/api/v1/sources/%s/events/avro", e->url, e->source);
    long status;
    CURLcode cr = request(e->curl, url, e->token, body.data, body.len, e->o.request_timeout_ms,
                          &status, &answer);
    if (cr != CURLE_OK) {
        snprintf(why, whylen, "%s", curl_easy_strerror(cr));
    } else if (status == 200) {
        rc = 0;
    } else {
        json_t *j = json_loadb((const char *)answer.data, answer.len, 0, NULL);
        const char *msg = json_string_value(json_object_get(j, "message"));
        snprintf(why, whylen, "HTTP %ld%s%s", status, msg ? ": " : "", msg ? msg : "");
        json_decref(j);
    }
    dm_buf_free(&body);
    dm_buf_free(&answer);
    return rc;
}

static void batch_free(batch_t *b)
{
    dm_buf_free(&b->data);
    free(b);
}

/* Moves the open batch to the sealed list (mu held). */
static void seal(dm_emitter_t *e)
{
    if (!e->open.n) return;
    batch_t *b = malloc(sizeof(*b));
    if (!b) return; /* stays open; sealed on the next try */
    *b = e->open;
    b->next = NULL;
    e->open = (batch_t){.data = DM_BUF_INIT};
    if (e->tail)
        e->tail->next = b;
    else
        e->head = b;
    e->tail = b;
    pthread_cond_signal(&e->wake);
}

/* A batch was delivered up to sequence number end (mu held). */
static void delivered(dm_emitter_t *e, int64_t end, uint32_t n)
{
    if (end > e->delivered) e->delivered = end;
    e->stats.delivered += n;
    pthread_cond_broadcast(&e->done);
}

static void *sender(void *arg)
{
    dm_emitter_t *e = arg;
    int64_t backoff = 0;
    char why[600], said[600] = "";
    batch_t spooled = {.data = DM_BUF_INIT};
    int64_t schema_at = now_ms(); /* the latest schema's last lookup from here */
    pthread_mutex_lock(&e->mu);
    for (;;) {
        int64_t check = e->o.schema_check_ms;
        if (check > 0 && !e->stop && now_ms() - schema_at >= check) {
            pthread_mutex_unlock(&e->mu);
            refresh_schema(e, current(e), &e->checked_ms, check, e->o.request_timeout_ms, 0);
            pthread_mutex_lock(&e->mu);
            schema_at = now_ms();
        }
        /* what to deliver next: the spool (older), else the oldest sealed batch */
        bool from_spool = e->spool_fd >= 0 && e->spool_read < e->spool_len;
        if (!from_spool && !e->head && e->open.n &&
            (e->flushers || e->stop || e->o.linger_ms < 0 ||
             now_ms() - e->open_since_ms >= e->o.linger_ms))
            seal(e);
        if (!from_spool && !e->head) {
            if (e->stop) break;
            if (e->open.n) {
                struct timespec ts;
                deadline(&ts, e->o.linger_ms - (now_ms() - e->open_since_ms));
                pthread_cond_timedwait(&e->wake, &e->mu, &ts);
            } else if (check > 0) { /* idle: up to the next schema lookup */
                struct timespec ts;
                deadline(&ts, check - (now_ms() - schema_at));
                pthread_cond_timedwait(&e->wake, &e->mu, &ts);
            } else {
                pthread_cond_wait(&e->wake, &e->mu);
            }
            continue;
        }
        if (backoff) { /* the last try failed: wait, unless stopping */
            struct timespec ts;
            deadline(&ts, backoff);
            if (!e->stop) pthread_cond_timedwait(&e->wake, &e->mu, &ts);
            if (e->stop) break; /* destroy spools the rest (or says what is lost) */
        }
        /* With a spool, after a failure: sealed batches move to it (order kept),
         * freeing memory for callers. */
        while (e->spool_fd >= 0 && backoff && e->head) {
            batch_t *b = e->head;
            if (spool_append(e, b)) break;
            e->head = b->next;
            if (!e->head) e->tail = NULL;
            e->mem_bytes -= (int64_t)b->data.len;
            e->stats.spooled += b->n;
            batch_free(b);
            pthread_cond_broadcast(&e->room);
            from_spool = true;
        }
        const batch_t *b = NULL;
        char producer[40];
        if (from_spool) {
            snprintf(producer, sizeof(producer), "%s", e->spool_producer);
            pthread_mutex_unlock(&e->mu);
            if (spool_next(e, &spooled)) {
                fprintf(stderr, "datamesh emitter: spool %s unreadable at %lld; kept as it is\n",
                        e->spool_path, (long long)e->spool_read);
                pthread_mutex_lock(&e->mu);
                e->spool_fd = -1; /* memory only from here on; the file stays */
                continue;
            }
            b = &spooled;
        } else {
            snprintf(producer, sizeof(producer), "%s", e->producer);
            b = e->head;
            pthread_mutex_unlock(&e->mu);
        }
        int rc = deliver(e, producer, b, why, sizeof(why));
        if (rc && strcmp(why, said)) {
            fprintf(stderr, "datamesh emitter: source %s: delivery failed, retrying: %s\n",
                    e->source, why);
            snprintf(said, sizeof(said), "%s", why);
        }
        if (!rc && from_spool) spool_advance(e, b->data.len);
        pthread_mutex_lock(&e->mu);
        if (rc) {
            e->stats.retries++;
            backoff = backoff ? (backoff * 2 > 5000 ? 5000 : backoff * 2) : 100;
            continue;
        }
        backoff = 0;
        said[0] = '\0';
        if (from_spool) {
            if (!strcmp(producer, e->producer)) delivered(e, b->first + b->n, b->n);
            continue;
        }
        batch_t *done = e->head;
        e->head = done->next;
        if (!e->head) e->tail = NULL;
        e->mem_bytes -= (int64_t)done->data.len;
        delivered(e, done->first + done->n, done->n);
        batch_free(done);
        pthread_cond_broadcast(&e->room);
    }
    pthread_mutex_unlock(&e->mu);
    dm_buf_free(&spooled.data);
    return NULL;
}

/* ---- the API --------------------------------------------------------------------------- */

static int check_options(dm_emitter_options_t *o, char *err, size_t errlen)
{
    if (!o->batch_records) o->batch_records = 10000; /* an ingest source's max_records */
    if (!o->batch_bytes) o->batch_bytes = 4 << 20;   /* half its max_bytes */
    if (!o->linger_ms) o->linger_ms = 5;
    if (!o->queue_bytes) o->queue_bytes = 64 << 20;
    if (!o->max_block_ms) o->max_block_ms = 1000;
    if (!o->spool_bytes) o->spool_bytes = (int64_t)1 << 30;
    if (!o->request_timeout_ms) o->request_timeout_ms = 10000;
    if (!o->schema_check_ms) o->schema_check_ms = 10000;
    const char *bad = o->batch_records < 1 || o->batch_records > 100000
                          ? "batch_records (1..100000)"
                      : o->batch_bytes < 1024           ? "batch_bytes (>= 1024)"
                      : o->queue_bytes < o->batch_bytes ? "queue_bytes (>= batch_bytes)"
                      : o->request_timeout_ms < 100     ? "request_timeout_ms (>= 100)"
                      : o->spool_bytes < 4096           ? "spool_bytes (>= 4096)"
                      : o->schema_check_ms < -1         ? "schema_check_ms (-1 or >= 0)"
                                                        : NULL;
    if (bad) return snprintf(err, errlen, "option %s is out of range", bad), -1;
    return 0;
}

dm_emitter_t *dm_emitter_new(const char *controller_url, const char *source, char *err,
                             size_t errlen)
{
    return dm_emitter_new_with(controller_url, source, NULL, err, errlen);
}

dm_emitter_t *dm_emitter_new_with(const char *controller_url, const char *source,
                                  const dm_emitter_options_t *options, char *err, size_t errlen)
{
    char scratch[8];
    if (!err || !errlen) err = scratch, errlen = sizeof(scratch);
    err[0] = '\0';
    if (!controller_url || !*controller_url || !source || !*source) {
        snprintf(err, errlen, "a controller URL and a source name are required");
        return NULL;
    }
    for (const char *p = source; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || strchr("-_.", *p))) {
            snprintf(err, errlen, "'%s' is not a source name", source);
            return NULL;
        }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    dm_emitter_t *e = calloc(1, sizeof(*e));
    if (!e) return snprintf(err, errlen, "out of memory"), NULL;
    if (options)
        memcpy(&e->o, options, options->size < sizeof(e->o) ? options->size : sizeof(e->o));
    e->o.size = sizeof(e->o);
    e->spool_fd = -1;
    e->open.data = (dm_buf_t)DM_BUF_INIT;
    pthread_mutex_init(&e->mu, NULL);
    pthread_mutex_init(&e->fetch_mu, NULL);
    pthread_cond_init(&e->wake, NULL);
    pthread_cond_init(&e->room, NULL);
    pthread_cond_init(&e->done, NULL);
    e->url = strdup(controller_url);
    e->source = strdup(source);
    e->token = e->o.token ? strdup(e->o.token) : NULL;
    size_t ul = e->url ? strlen(e->url) : 0;
    while (ul && e->url[ul - 1] == '/')
        e->url[--ul] = '\0';
    uint8_t rnd[12];
    if (!e->url || !e->source || (e->o.token && !e->token) ||
        getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        snprintf(err, errlen, "out of memory or no randomness for the producer id");
        goto fail;
    }
    for (int i = 0; i < 12; i++)
        snprintf(e->producer + 2 * i, 3, "%02x", rnd[i]);
    if (check_options(&e->o, err, errlen) ||
        fetch_schema(e, e->o.request_timeout_ms, NULL, err, errlen))
        goto fail;
    e->checked_ms = now_ms();
    if (e->o.spool_dir && spool_open(e, err, errlen)) goto fail;
    e->o.spool_dir = NULL; /* not kept: the path is in spool_path */
    e->o.token = NULL;
    if (!(e->curl = curl_easy_init())) {
        snprintf(err, errlen, "cannot start libcurl");
        goto fail;
    }
    if (pthread_create(&e->thread, NULL, sender, e)) {
        snprintf(err, errlen, "cannot start the sender thread");
        goto fail;
    }
    e->started = true;
    return e;
fail:
    dm_emitter_destroy(e);
    return NULL;
}

/* Queues one event: value (len bytes of Avro, already checked against the
 * schema) framed as u32 length, Confluent header, value, written straight
 * into the open batch. */
static int enqueue(dm_emitter_t *e, uint32_t schema_id, const void *value, size_t len)
{
    size_t framed = 4 + DM_WIRE_HEADER + len;
    pthread_mutex_lock(&e->mu);
    if (e->o.max_block_ms >= 0 && e->mem_bytes + (int64_t)framed > e->o.queue_bytes) {
        struct timespec ts;
        deadline(&ts, e->o.max_block_ms);
        while (!e->stop && e->mem_bytes + (int64_t)framed > e->o.queue_bytes)
            if (pthread_cond_timedwait(&e->room, &e->mu, &ts) == ETIMEDOUT) break;
    }
    int rc = DM_EMITTER_OK;
    if (e->stop) {
        rc = DM_EMITTER_ERR_CLOSED;
        set_error("the emitter is being destroyed");
    } else if (e->mem_bytes + (int64_t)framed > e->o.queue_bytes && e->o.max_block_ms >= 0) {
        rc = DM_EMITTER_ERR_FULL;
        set_error("source %s: %lld bytes wait for delivery (queue_bytes) for %d ms; not accepted",
                  e->source, (long long)e->mem_bytes, e->o.max_block_ms);
    } else if (dm_buf_reserve(&e->open.data, framed)) {
        rc = DM_EMITTER_ERR_FULL;
        set_error("out of memory");
    } else {
        uint8_t *p = e->open.data.data + e->open.data.len;
        put_be(p, DM_WIRE_HEADER + len, 4);
        p[4] = DM_WIRE_MAGIC;
        put_be(p + 5, schema_id, 4);
        memcpy(p + 4 + DM_WIRE_HEADER, value, len);
        e->open.data.len += framed;
        if (!e->open.n) {
            e->open.first = e->next_seq;
            e->open_since_ms = now_ms();
            pthread_cond_signal(&e->wake);
        }
        e->open.n++;
        e->next_seq++;
        e->mem_bytes += (int64_t)framed;
        e->stats.queued++;
        if (e->open.n >= (uint32_t)e->o.batch_records ||
            e->open.data.len >= (size_t)e->o.batch_bytes)
            seal(e);
    }
    pthread_mutex_unlock(&e->mu);
    return rc;
}

/* The JSON path's scratch, per calling thread (initial-exec: no
 * __tls_get_addr call per event in the shared library). */
static __thread dm_buf_t enc TLS_FAST;
static __thread dm_arena_t arena TLS_FAST;
static __thread bool arena_ready TLS_FAST;

/* Validates and encodes a JSON event with version v into enc. */
static int encode_json(version_t *v, const char *record_json, size_t len, dm_error_t *err)
{
    dm_avro_value_t val;
    dm_arena_reset(&arena);
    dm_buf_reset(&enc);
    return dm_avro_from_json_text(v->schema->root, record_json, len, DM_AVRO_JSON_PLAIN, &arena,
                                  &val, err) ||
           dm_avro_encode(v->schema->root, &val, &enc, err);
}

/* How long a send may wait for a lookup of the latest schema. */
static int lookup_budget(const dm_emitter_t *e)
{
    int t = e->o.request_timeout_ms;
    return e->o.max_block_ms >= 0 && e->o.max_block_ms < t ? e->o.max_block_ms : t;
}

int dm_emitter_send_json(dm_emitter_t *e, const char *record_json, size_t len)
{
    if (!arena_ready) {
        dm_arena_init(&arena, 16384);
        arena_ready = true;
    }
    last_error[0] = '\0';
    if (!e || !record_json) return set_error("no emitter or no record"), DM_EMITTER_ERR_INVALID;
    version_t *v = current(e);
    dm_error_t err; /* not zeroed whole: that is a 500-byte memset per event */
    err.code = DM_OK;
    err.message[0] = '\0';
    if (encode_json(v, record_json, len, &err)) {
        /* Perhaps written for a newer version of the source (a field added):
         * look it up (at most once a second) and try that. */
        if (err.code != DM_ERR_NOMEM && e->o.schema_check_ms >= 0 &&
            refresh_schema(e, v, &e->asked_ms, 1000, lookup_budget(e), lookup_budget(e))) {
            v = current(e);
            err.code = DM_OK;
            err.message[0] = '\0';
            if (!encode_json(v, record_json, len, &err))
                return enqueue(e, v->id, enc.data, enc.len);
        }
        set_error("source %s: %s", e->source, err.message[0] ? err.message : "out of memory");
        return DM_EMITTER_ERR_INVALID;
    }
    return enqueue(e, v->id, enc.data, enc.len);
}

/* Checks an encoded event against version v. */
static int check_avro(version_t *v, const void *avro, size_t len, dm_error_t *err)
{
    size_t used = 0;
    dm_avro_value_t val;
    dm_arena_reset(&arena);
    if (dm_avro_decode(v->check, avro, len, &used, &arena, &val, err)) return -1;
    if (used != len)
        return dm_error_set(err, DM_ERR_SCHEMA_MISMATCH, "%zu bytes after the value", len - used),
               -1;
    return 0;
}

int dm_emitter_send_avro(dm_emitter_t *e, const void *avro, size_t len)
{
    if (!arena_ready) {
        dm_arena_init(&arena, 16384);
        arena_ready = true;
    }
    last_error[0] = '\0';
    if (!e || !avro) return set_error("no emitter or no record"), DM_EMITTER_ERR_INVALID;
    /* checked in place (nothing built) and queued as it is */
    version_t *v = current(e);
    dm_error_t err; /* not zeroed whole: that is a 500-byte memset per event */
    err.code = DM_OK;
    err.message[0] = '\0';
    if (check_avro(v, avro, len, &err)) {
        if (err.code != DM_ERR_NOMEM && e->o.schema_check_ms >= 0 &&
            refresh_schema(e, v, &e->asked_ms, 1000, lookup_budget(e), lookup_budget(e))) {
            v = current(e);
            err.code = DM_OK;
            err.message[0] = '\0';
            if (!check_avro(v, avro, len, &err)) return enqueue(e, v->id, avro, len);
        }
        set_error("source %s: not an Avro record of its schema (id %u): %s", e->source, v->id,
                  err.message);
        return DM_EMITTER_ERR_INVALID;
    }
    return enqueue(e, v->id, avro, len);
}

int dm_emitter_flush(dm_emitter_t *e, int timeout_ms)
{
    if (!e) return DM_EMITTER_OK;
    pthread_mutex_lock(&e->mu);
    int64_t want = e->next_seq;
    e->flushers++;
    pthread_cond_signal(&e->wake);
    struct timespec ts;
    if (timeout_ms >= 0) deadline(&ts, timeout_ms);
    int rc = DM_EMITTER_OK;
    while (e->delivered < want) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&e->done, &e->mu);
        } else if (pthread_cond_timedwait(&e->done, &e->mu, &ts) == ETIMEDOUT) {
            rc = e->delivered < want ? DM_EMITTER_ERR_TIMEOUT : DM_EMITTER_OK;
            break;
        }
    }
    e->flushers--;
    pthread_mutex_unlock(&e->mu);
    if (rc)
        set_error("source %s: %lld events not delivered yet", e->source,
                  (long long)(want - e->delivered));
    return rc;
}

void dm_emitter_stats(dm_emitter_t *e, dm_emitter_stats_t *out)
{
    pthread_mutex_lock(&e->mu);
    *out = e->stats;
    pthread_mutex_unlock(&e->mu);
}

void dm_emitter_destroy(dm_emitter_t *e)
{
    if (!e) return;
    if (e->started) {
        dm_emitter_flush(e, e->o.max_block_ms < 0 ? -1 : e->o.max_block_ms);
        pthread_mutex_lock(&e->mu);
        e->stop = true;
        pthread_cond_broadcast(&e->wake);
        pthread_cond_broadcast(&e->room);
        pthread_mutex_unlock(&e->mu);
        pthread_join(e->thread, NULL);
    }
    /* What is left goes to the spool for the next emitter, else it is lost: said. */
    seal(e);
    uint64_t lost = 0;
    while (e->head) {
        batch_t *b = e->head;
        e->head = b->next;
        if (e->spool_fd < 0 || spool_append(e, b)) lost += b->n;
        batch_free(b);
    }
    if (lost)
        fprintf(stderr,
                "datamesh emitter: source %s: %llu events were not delivered and are dropped "
                "(%s)\n",
                e->source ? e->source : "?", (unsigned long long)lost,
                e->spool_fd < 0 ? "no spool directory" : "the spool is full or cannot be written");
    dm_buf_free(&e->open.data);
    if (e->spool_fd >= 0) close(e->spool_fd);
    if (e->curl) curl_easy_cleanup(e->curl);
    for (version_t *v = e->cur, *older; v; v = older) {
        older = v->older;
        dm_avro_codec_free(v->check);
        dm_avro_schema_free(v->schema);
        free(v);
    }
    pthread_mutex_destroy(&e->fetch_mu);
    free(e->url);
    free(e->source);
    free(e->token);
    free(e->spool_path);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->wake);
    pthread_cond_destroy(&e->room);
    pthread_cond_destroy(&e->done);
    free(e);
}
