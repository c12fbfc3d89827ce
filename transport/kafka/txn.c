/* transport/kafka/txn.c — the atomic commit as a Kafka transaction.
 *
 * A transaction collects its records and offsets first, because its transactional id comes
 * from the offsets (group + first input partition: one id per task instance, wherever it
 * runs), and the producer of an id must exist before its first record. Commit then takes
 * that id's producer from the pool (creating it with init_transactions, which fences any
 * older producer of the id and aborts what it left open), and runs begin, produce,
 * send_offsets_to_transaction and commit. Retriable failures are retried; abortable ones
 * abort the transaction (none of its records or offsets count) and are reported; a fenced
 * or otherwise fatal producer is dropped and reported. A transaction without offsets (the
 * ingest API) uses an anonymous id unique to this process.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"
#include "transport/kafka/internal.h"

typedef struct kmsg {
    size_t topic; /* index in topics */
    int32_t partition;
    int64_t timestamp;
    size_t key, value; /* offsets in bytes */
    int32_t key_len, value_len;
    size_t hdr; /* first header in hdrs */
    uint32_t n_hdrs;
} kmsg_t;

typedef struct khdr {
    size_t name, value;
    uint32_t name_len;
    int32_t value_len;
} khdr_t;

typedef struct ktxn {
    dm_buf_t bytes;
    kmsg_t *msgs;
    size_t n_msgs, cap_msgs;
    khdr_t *hdrs;
    size_t n_hdrs, cap_hdrs;
    char **topics;
    size_t n_topics;
    char *group;
    rd_kafka_topic_partition_list_t *offsets;
} ktxn_t;

dm_err_t dm_kafka_txn_begin(void *state, void **txn, dm_error_t *err)
{
    ktxn_t *x = calloc(1, sizeof(*x));
    if (!x) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    x->bytes = (dm_buf_t)DM_BUF_INIT;
    *txn = x;
    return DM_OK;
}

static void txn_free(ktxn_t *x)
{
    dm_buf_free(&x->bytes);
    free(x->msgs);
    free(x->hdrs);
    for (size_t i = 0; i < x->n_topics; i++)
        free(x->topics[i]);
    free(x->topics);
    free(x->group);
    if (x->offsets) rd_kafka_topic_partition_list_destroy(x->offsets);
    free(x);
}

static size_t topic_index(ktxn_t *x, const char *topic)
{
    for (size_t i = 0; i < x->n_topics; i++)
        if (!strcmp(x->topics[i], topic)) return i;
    char **t = realloc(x->topics, (x->n_topics + 1) * sizeof(*t));
    if (!t) return SIZE_MAX;
    x->topics = t;
    if (!(t[x->n_topics] = strdup(topic))) return SIZE_MAX;
    return x->n_topics++;
}

/* Copies bytes (len < 0: null) and returns where they start. */
static size_t keep(ktxn_t *x, const void *p, int32_t len, dm_err_t *rc)
{
    size_t at = x->bytes.len;
    if (len > 0 && dm_buf_append(&x->bytes, p, (size_t)len)) *rc = DM_ERR_NOMEM;
    return at;
}

dm_err_t dm_kafka_txn_produce(void *state, void *txn, const char *topic, int32_t partition,
                              const dm_record_t *records, size_t n, dm_error_t *err)
{
    ktxn_t *x = txn;
    if (partition < 0)
        return dm_error_set(err, DM_ERR_INVALID,
                            "topic=%s: a transaction writes to a given partition", topic);
    size_t ti = topic_index(x, topic);
    if (ti == SIZE_MAX) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    if (x->n_msgs + n > x->cap_msgs) {
        size_t cap = (x->n_msgs + n) * 2;
        kmsg_t *m = realloc(x->msgs, cap * sizeof(*m));
        if (!m) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
        x->msgs = m;
        x->cap_msgs = cap;
    }
    dm_err_t rc = DM_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        const dm_record_t *r = &records[i];
        if (x->n_hdrs + r->n_headers > x->cap_hdrs) {
            size_t cap = (x->n_hdrs + r->n_headers) * 2;
            khdr_t *h = realloc(x->hdrs, cap * sizeof(*h));
            if (!h) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
            x->hdrs = h;
            x->cap_hdrs = cap;
        }
        kmsg_t *m = &x->msgs[x->n_msgs++];
        *m = (kmsg_t){.topic = ti,
                      .partition = partition,
                      .timestamp = r->timestamp,
                      .key_len = r->key ? r->key_len : -1,
                      .value_len = r->value ? r->value_len : -1,
                      .hdr = x->n_hdrs,
                      .n_hdrs = r->n_headers};
        m->key = keep(x, r->key, m->key_len, &rc);
        m->value = keep(x, r->value, m->value_len, &rc);
        for (uint32_t j = 0; j < r->n_headers; j++) {
            const dm_record_header_t *h = &r->headers[j];
            khdr_t *k = &x->hdrs[x->n_hdrs++];
            k->name_len = h->key_len;
            k->name = keep(x, h->key, (int32_t)h->key_len, &rc);
            k->value_len = h->value ? h->value_len : -1;
            k->value = keep(x, h->value, k->value_len, &rc);
        }
    }
    return rc ? dm_error_set(err, rc, "out of memory") : DM_OK;
}

dm_err_t dm_kafka_txn_offsets(void *state, void *txn, const char *group,
                              const dm_tp_offset_t *offsets, size_t n, dm_error_t *err)
{
    ktxn_t *x = txn;
    if (x->group && strcmp(x->group, group))
        return dm_error_set(err, DM_ERR_INVALID,
                            "a Kafka transaction commits the offsets of one group (%s, not %s)",
                            x->group, group);
    if (!x->group && !(x->group = strdup(group)))
        return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    if (!x->offsets) x->offsets = rd_kafka_topic_partition_list_new((int)n);
    for (size_t i = 0; i < n; i++) {
        rd_kafka_topic_partition_t *tp =
            rd_kafka_topic_partition_list_find(x->offsets, offsets[i].topic, offsets[i].partition);
        if (!tp)
            tp = rd_kafka_topic_partition_list_add(x->offsets, offsets[i].topic,
                                                   offsets[i].partition);
        tp->offset = offsets[i].offset;
    }
    return DM_OK;
}

/* ---- the producer pool ------------------------------------------------------------------- */

static void txp_destroy(ktxp_t *p)
{
    if (p->rk) rd_kafka_destroy(p->rk);
    free(p->id);
    free(p);
}

/* A new transactional producer for id, initialized (which fences older ones). */
static ktxp_t *txp_new(dm_kafka_t *k, const char *id, dm_error_t *err)
{
    rd_kafka_conf_t *conf = dm_kafka_conf(k, err);
    if (!conf) return NULL;
    if (dm_kafka_set(conf, "transactional.id", id, err) ||
        dm_kafka_set(conf, "linger.ms", "5", err) ||
        dm_kafka_set(conf, "transaction.timeout.ms", "60000", err)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    char errstr[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        dm_error_set(err, DM_ERR_TRANSPORT, "transactional producer %s: %s", id, errstr);
        return NULL;
    }
    rd_kafka_error_t *e;
    for (int attempt = 0;; attempt++) {
        e = rd_kafka_init_transactions(rk, DM_KAFKA_TIMEOUT_MS);
        if (!e || !rd_kafka_error_is_retriable(e) || attempt == 3) break;
        DM_WARN("kafka", "txn=%s: init_transactions: %s; retrying", id, rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    }
    if (e) {
        dm_error_set(err, DM_ERR_TRANSPORT_BROKER, "transactional id %s: init_transactions: %s", id,
                     rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        rd_kafka_destroy(rk);
        return NULL;
    }
    ktxp_t *p = calloc(1, sizeof(*p));
    if (!p || !(p->id = strdup(id))) {
        free(p);
        rd_kafka_destroy(rk);
        dm_error_set(err, DM_ERR_NOMEM, "out of memory");
        return NULL;
    }
    p->rk = rk;
    return p;
}

/* The producer for id (NULL: any idle anonymous one, else a new anonymous id), marked busy. */
static ktxp_t *txp_acquire(dm_kafka_t *k, const char *id, dm_error_t *err)
{
    char anon[160];
    for (;;) {
        pthread_mutex_lock(&k->mu);
        ktxp_t *p = k->txps;
        bool wait = false;
        for (; p; p = p->next) {
            if (id ? strcmp(p->id, id) != 0 : !p->anonymous) continue;
            if (!p->busy) break;
            wait = id != NULL; /* the same task instance twice at once: wait for it */
        }
        if (p) p->busy = true;
        if (!p && !wait && !id)
            snprintf(anon, sizeof(anon), "datamesh.%s.%d", k->instance, k->anon_next++);
        pthread_mutex_unlock(&k->mu);
        if (p) return p;
        if (wait) {
            dm_sleep_ms(5);
            continue;
        }
        /* Created outside the lock: init_transactions talks to the cluster. */
        p = txp_new(k, id ? id : anon, err);
        if (!p) return NULL;
        p->anonymous = !id;
        p->busy = true;
        pthread_mutex_lock(&k->mu);
        p->next = k->txps;
        k->txps = p;
        pthread_mutex_unlock(&k->mu);
        return p;
    }
}

/* Returns p to the pool, or (drop) removes and destroys it. */
static void txp_release(dm_kafka_t *k, ktxp_t *p, bool drop)
{
    pthread_mutex_lock(&k->mu);
    p->busy = false;
    if (drop)
        for (ktxp_t **pp = &k->txps; *pp; pp = &(*pp)->next)
            if (*pp == p) {
                *pp = p->next;
                break;
            }
    pthread_mutex_unlock(&k->mu);
    if (drop) txp_destroy(p);
}

void dm_kafka_txn_pool_free(dm_kafka_t *k)
{
    for (ktxp_t *p = k->txps, *next; p; p = next) {
        next = p->next;
        txp_destroy(p);
    }
    k->txps = NULL;
}

/* ---- commit -------------------------------------------------------------------------------- */

/* Handles a failed transactional call: aborts when the transaction must be, reports the
 * broker's words, and says (via *drop) when the producer cannot go on. */
static dm_err_t failed(dm_kafka_t *k, ktxp_t *p, rd_kafka_error_t *e, const char *what, bool *drop,
                       dm_error_t *err)
{
    rd_kafka_resp_err_t code = rd_kafka_error_code(e);
    dm_err_t rc = dm_kafka_code(code);
    if (rc != DM_ERR_TRANSPORT_FENCED && rc != DM_ERR_LOG_TOPIC_NOT_FOUND &&
        rc != DM_ERR_LOG_PARTITION)
        rc = DM_ERR_TRANSPORT_BROKER;
    dm_error_set(err, rc, "kafka transaction %s: %s: %s", p->id, what, rd_kafka_error_string(e));
    if (rd_kafka_error_is_fatal(e)) {
        *drop = true;
    } else {
        /* Abortable or not, end the transaction so that none of it counts and the
         * producer can start the next one. */
        rd_kafka_error_t *a = rd_kafka_abort_transaction(p->rk, DM_KAFKA_TIMEOUT_MS);
        if (a) {
            DM_WARN("kafka", "txn=%s: abort after %s failed: %s", p->id, what,
                    rd_kafka_error_string(a));
            rd_kafka_error_destroy(a);
            *drop = true;
        }
        atomic_fetch_add(&k->aborts, 1);
    }
    rd_kafka_error_destroy(e);
    return rc;
}

/* Retries a transactional call while librdkafka says it may succeed when retried. */
#define RETRY(call)                                                                                \
    ({                                                                                             \
        rd_kafka_error_t *e_;                                                                      \
        for (int a_ = 0; (e_ = (call)) && rd_kafka_error_is_retriable(e_) && a_ < 5; a_++) {       \
            DM_WARN("kafka", "txn=%s: %s; retrying", p->id, rd_kafka_error_string(e_));            \
            rd_kafka_error_destroy(e_);                                                            \
        }                                                                                          \
        e_;                                                                                        \
    })

static dm_err_t run(dm_kafka_t *k, ktxp_t *p, ktxn_t *x, bool *drop, dm_error_t *err)
{
    rd_kafka_error_t *e = rd_kafka_begin_transaction(p->rk);
    if (e) {
        dm_error_set(err, DM_ERR_TRANSPORT_BROKER, "kafka transaction %s: begin: %s", p->id,
                     rd_kafka_error_string(e));
        *drop = true; /* a producer that cannot begin is in a state we do not reuse */
        rd_kafka_error_destroy(e);
        return DM_ERR_TRANSPORT_BROKER;
    }
    dm_record_header_t hbuf[64];
    for (size_t i = 0; i < x->n_msgs; i++) {
        const kmsg_t *m = &x->msgs[i];
        const uint8_t *base = x->bytes.data;
        dm_record_t r = {.timestamp = m->timestamp,
                         .key = m->key_len >= 0 ? base + m->key : NULL,
                         .key_len = m->key_len,
                         .value = m->value_len >= 0 ? base + m->value : NULL,
                         .value_len = m->value_len,
                         .headers = hbuf,
                         .n_headers = m->n_hdrs};
        if (m->n_hdrs > 64)
            return failed(k, p,
                          rd_kafka_error_new(RD_KAFKA_RESP_ERR__INVALID_ARG,
                                             "a record has %u headers (at most 64)", m->n_hdrs),
                          "producing", drop, err);
        for (uint32_t j = 0; j < r.n_headers; j++) {
            const khdr_t *h = &x->hdrs[m->hdr + j];
            hbuf[j] =
                (dm_record_header_t){(const char *)base + h->name, h->name_len,
                                     h->value_len >= 0 ? base + h->value : NULL, h->value_len};
        }
        /* No copy: the bytes live until commit returns, and commit waits for every record. */
        rd_kafka_resp_err_t pe =
            dm_kafka_produce_one(p->rk, x->topics[m->topic], m->partition, &r, 0, NULL);
        if (pe) {
            char what[400];
            snprintf(what, sizeof(what), "producing to %s/%d", x->topics[m->topic], m->partition);
            return failed(k, p, rd_kafka_error_new(pe, "%s", rd_kafka_err2str(pe)), what, drop,
                          err);
        }
    }
    if (x->offsets) {
        rd_kafka_consumer_group_metadata_t *g = rd_kafka_consumer_group_metadata_new(x->group);
        e = RETRY(rd_kafka_send_offsets_to_transaction(p->rk, x->offsets, g, DM_KAFKA_TIMEOUT_MS));
        rd_kafka_consumer_group_metadata_destroy(g);
        if (e) return failed(k, p, e, "sending the input offsets", drop, err);
    }
    e = RETRY(rd_kafka_commit_transaction(p->rk, DM_KAFKA_TIMEOUT_MS));
    if (e) return failed(k, p, e, "commit", drop, err);
    atomic_fetch_add(&k->commits, 1);
    return DM_OK;
}

dm_err_t dm_kafka_txn_commit(void *state, void *txn, dm_error_t *err)
{
    dm_kafka_t *k = state;
    ktxn_t *x = txn;
    char id[700];
    if (x->offsets && x->offsets->cnt)
        snprintf(id, sizeof(id), "datamesh.%s.%s.%d", x->group, x->offsets->elems[0].topic,
                 x->offsets->elems[0].partition);
    ktxp_t *p = txp_acquire(k, x->offsets && x->offsets->cnt ? id : NULL, err);
    if (!p) {
        txn_free(x);
        return err ? err->code : DM_ERR_TRANSPORT;
    }
    bool drop = false;
    dm_err_t rc = run(k, p, x, &drop, err);
    txp_release(k, p, drop);
    txn_free(x);
    return rc;
}

void dm_kafka_txn_abort(void *state, void *txn)
{
    txn_free(txn); /* nothing reached the cluster yet */
}
