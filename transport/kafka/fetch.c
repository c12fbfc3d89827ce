/* transport/kafka/fetch.c — fetch(topic, partition, offset) on a Kafka consumer.
 *
 * A batch owns one read_committed consumer that is assigned (never subscribed) the
 * partitions the batch reads, each with its own queue, so a task reading one partition and
 * a sink visiting several both keep librdkafka's prefetching: a fetch that continues where
 * the previous one ended takes what is already queued; any other offset seeks. Records point
 * into the fetched messages, kept until the next fetch into the batch.
 */
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "transport/kafka/internal.h"

typedef struct kpart {
    char *topic;
    int32_t partition;
    rd_kafka_queue_t *q;
    int64_t next;  /* where the last fetch ended: no seek when the next one starts there */
    int64_t end;   /* end offset when the consumer last reached it */
    bool answered; /* the cluster answered since the last assign or seek */
} kpart_t;

typedef struct kfetch {
    rd_kafka_t *c;
    kpart_t *parts;
    size_t n_parts, cap_parts;
    rd_kafka_message_t **msgs;
    size_t n_msgs, cap_msgs;
    dm_record_t *recs;
    dm_record_header_t *hdrs;
    size_t cap_recs, cap_hdrs;
} kfetch_t;

static void release_messages(kfetch_t *f)
{
    for (size_t i = 0; i < f->n_msgs; i++)
        rd_kafka_message_destroy(f->msgs[i]);
    f->n_msgs = 0;
}

static dm_err_t new_consumer(dm_kafka_t *k, kfetch_t *f, dm_error_t *err)
{
    rd_kafka_conf_t *conf = dm_kafka_conf(k, err);
    if (!conf) return err ? err->code : DM_ERR_CONFIG;
    /* group.id only because librdkafka's assign needs one; this consumer never joins a
     * group or commits: positions are the caller's. */
    if (dm_kafka_set(conf, "group.id", "datamesh.fetch", err) ||
        dm_kafka_set(conf, "enable.auto.commit", "false", err) ||
        dm_kafka_set(conf, "enable.auto.offset.store", "false", err) ||
        dm_kafka_set(conf, "isolation.level", "read_committed", err) ||
        dm_kafka_set(conf, "enable.partition.eof", "true", err) ||
        dm_kafka_set(conf, "auto.offset.reset", "error", err) ||
        dm_kafka_set(conf, "fetch.wait.max.ms", "100", err) ||
        dm_kafka_set(conf, "fetch.error.backoff.ms", "100", err) ||
        dm_kafka_set(conf, "queued.max.messages.kbytes", "16384", err)) {
        rd_kafka_conf_destroy(conf);
        return err ? err->code : DM_ERR_CONFIG;
    }
    char errstr[512];
    f->c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (!f->c) {
        rd_kafka_conf_destroy(conf);
        return dm_error_set(err, DM_ERR_TRANSPORT, "kafka consumer: %s", errstr);
    }
    return DM_OK;
}

/* The batch's partition topic/partition, assigned at offset when new; seeks when the
 * caller asks for another offset than where the last fetch ended. */
static kpart_t *position(kfetch_t *f, const char *topic, int32_t partition, int64_t offset,
                         dm_error_t *err)
{
    for (size_t i = 0; i < f->n_parts; i++) {
        kpart_t *p = &f->parts[i];
        if (p->partition != partition || strcmp(p->topic, topic)) continue;
        if (p->next == offset) return p;
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, topic, partition)->offset = offset;
        rd_kafka_error_t *e = rd_kafka_seek_partitions(f->c, l, DM_KAFKA_TIMEOUT_MS);
        rd_kafka_resp_err_t pe = l->elems[0].err;
        rd_kafka_topic_partition_list_destroy(l);
        if (e || pe) {
            dm_error_set(err, DM_ERR_TRANSPORT_BROKER, "topic=%s partition=%d: seeking to %lld: %s",
                         topic, partition, (long long)offset,
                         e ? rd_kafka_error_string(e) : rd_kafka_err2str(pe));
            if (e) rd_kafka_error_destroy(e);
            return NULL;
        }
        p->next = offset;
        p->answered = false;
        return p;
    }
    if (f->n_parts == f->cap_parts) {
        size_t cap = f->cap_parts ? f->cap_parts * 2 : 4;
        kpart_t *np = realloc(f->parts, cap * sizeof(*np));
        if (!np) {
            dm_error_set(err, DM_ERR_NOMEM, "out of memory");
            return NULL;
        }
        f->parts = np;
        f->cap_parts = cap;
    }
    /* Take the partition's messages off the consumer's common queue before assigning, so
     * none arrive there. */
    rd_kafka_queue_t *q = rd_kafka_queue_get_partition(f->c, topic, partition);
    if (!q) {
        dm_error_set(err, DM_ERR_LOG_PARTITION, "topic=%s: no partition %d", topic, partition);
        return NULL;
    }
    rd_kafka_queue_forward(q, NULL);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition)->offset = offset;
    rd_kafka_error_t *e = rd_kafka_incremental_assign(f->c, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e) {
        dm_error_set_retriable(err, DM_ERR_TRANSPORT, "topic=%s partition=%d: assigning: %s", topic,
                               partition, rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        rd_kafka_queue_destroy(q);
        return NULL;
    }
    kpart_t *p = &f->parts[f->n_parts++];
    *p = (kpart_t){
        .topic = strdup(topic), .partition = partition, .q = q, .next = offset, .end = -1};
    return p;
}

/* Room for n more records and h more headers. */
static dm_err_t reserve(kfetch_t *f, size_t n, size_t h)
{
    if (f->n_msgs + n > f->cap_msgs) {
        size_t cap = (f->n_msgs + n) * 2;
        rd_kafka_message_t **m = realloc(f->msgs, cap * sizeof(*m));
        if (!m) return DM_ERR_NOMEM;
        f->msgs = m;
        dm_record_t *r = realloc(f->recs, cap * sizeof(*r));
        if (!r) return DM_ERR_NOMEM;
        f->recs = r;
        f->cap_msgs = f->cap_recs = cap;
    }
    if (h > f->cap_hdrs) {
        size_t cap = h * 2;
        dm_record_header_t *x = realloc(f->hdrs, cap * sizeof(*x));
        if (!x) return DM_ERR_NOMEM;
        f->hdrs = x;
        f->cap_hdrs = cap;
    }
    return DM_OK;
}

/* Points the batch's records (and headers, which need a second pass once the header
 * array stops moving) at the kept messages. */
static dm_err_t fill_records(kfetch_t *f, dm_error_t *err)
{
    size_t total = 0;
    for (size_t i = 0; i < f->n_msgs; i++) {
        rd_kafka_headers_t *h;
        if (rd_kafka_message_headers(f->msgs[i], &h) == RD_KAFKA_RESP_ERR_NO_ERROR)
            total += rd_kafka_header_cnt(h);
    }
    if (reserve(f, 0, total)) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    size_t used = 0;
    for (size_t i = 0; i < f->n_msgs; i++) {
        const rd_kafka_message_t *m = f->msgs[i];
        rd_kafka_timestamp_type_t tt;
        dm_record_t *r = &f->recs[i];
        *r = (dm_record_t){
            .offset = m->offset,
            .timestamp = rd_kafka_message_timestamp(m, &tt),
            .key = m->key,
            .key_len = m->key ? (int32_t)m->key_len : -1,
            .value = m->payload,
            .value_len = m->payload ? (int32_t)m->len : -1,
        };
        rd_kafka_headers_t *h;
        if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR) continue;
        r->headers = &f->hdrs[used];
        const char *name;
        const void *val;
        size_t size;
        for (size_t j = 0; !rd_kafka_header_get_all(h, j, &name, &val, &size); j++) {
            f->hdrs[used++] =
                (dm_record_header_t){name, (uint32_t)strlen(name), val, val ? (int32_t)size : -1};
            r->n_headers++;
        }
    }
    return DM_OK;
}

/* Takes one event off the partition's queue: a record is kept, the end of the partition
 * ends the fetch (*done), an error is returned with the broker's words. */
static dm_err_t take(kfetch_t *f, kpart_t *p, rd_kafka_message_t *m, size_t *bytes, bool *done,
                     dm_error_t *err)
{
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        /* The end offset also counts the transaction markers after the last record. */
        p->end = m->offset;
        if (m->offset > p->next) p->next = m->offset;
        rd_kafka_message_destroy(m);
        *done = true;
        return DM_OK;
    }
    if (m->err) {
        dm_err_t rc =
            dm_kafka_error(err, m->err, "topic=%s partition=%d at offset %lld: %s", p->topic,
                           p->partition, (long long)p->next, rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
        return rc;
    }
    if (m->offset < p->next) { /* left from before a seek */
        rd_kafka_message_destroy(m);
        return DM_OK;
    }
    if (reserve(f, 1, 0)) {
        rd_kafka_message_destroy(m);
        return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    }
    f->msgs[f->n_msgs++] = m;
    p->next = m->offset + 1;
    *bytes += m->len + m->key_len;
    return DM_OK;
}

dm_err_t dm_kafka_fetch(void *state, const char *topic, int32_t partition, int64_t offset,
                        size_t max_bytes, int timeout_ms, dm_transport_batch_t *b, dm_error_t *err)
{
    kfetch_t *f = b->impl;
    if (!f) {
        f = calloc(1, sizeof(*f));
        if (!f) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
        b->impl = f;
    }
    release_messages(f);
    b->records = NULL;
    b->n = 0;
    b->next_offset = offset;
    b->high_watermark = offset;
    dm_err_t rc = f->c ? DM_OK : new_consumer(state, f, err);
    if (rc) return rc;
    kpart_t *p = position(f, topic, partition, offset, err);
    if (!p) return err ? err->code : DM_ERR_TRANSPORT;
    size_t bytes = 0;
    bool done = false;
    /* Wait for the first record; reaching the end before it is not an answer yet. Right
     * after an assign or a seek nothing is known locally, so even a caller that does not
     * want to wait (timeout 0: "what is there now?") waits for the cluster's first answer. */
    uint64_t now = dm_now_ns();
    uint64_t deadline = now + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000;
    uint64_t first = now + (uint64_t)DM_KAFKA_TIMEOUT_MS * 1000000;
    for (;;) {
        uint64_t until = !p->answered && first > deadline ? first : deadline;
        now = dm_now_ns();
        int left = timeout_ms < 0 ? -1 : now >= until ? 0 : (int)((until - now) / 1000000);
        rd_kafka_message_t *m = rd_kafka_consume_queue(p->q, left);
        if (!m) break;
        p->answered = true;
        done = false;
        if ((rc = take(f, p, m, &bytes, &done, err)) || f->n_msgs) break;
        if (timeout_ms >= 0 && dm_now_ns() >= deadline) break;
    }
    rd_kafka_message_t *more[256];
    while (!rc && !done && bytes < max_bytes) {
        ssize_t got = rd_kafka_consume_batch_queue(p->q, 0, more, 256);
        if (got <= 0) break;
        /* Records after an end-of-partition event are newer ones: keep them too. */
        for (ssize_t i = 0; i < got; i++) {
            if (rc) { /* after an error: drop the rest, the next fetch seeks back */
                rd_kafka_message_destroy(more[i]);
                continue;
            }
            rc = take(f, p, more[i], &bytes, &done, err);
        }
    }
    if (!rc) rc = fill_records(f, err);
    if (rc) {
        release_messages(f);
        p->next = -1; /* the next fetch seeks to what the caller asks */
        return rc;
    }
    b->records = f->recs;
    b->n = f->n_msgs;
    b->next_offset = p->next;
    int64_t lo = 0, hi = -1;
    rd_kafka_get_watermark_offsets(f->c, topic, partition, &lo, &hi);
    if (p->end > hi) hi = p->end;
    b->high_watermark = hi > p->next ? hi : p->next;
    return DM_OK;
}

void dm_kafka_batch_free(void *state, dm_transport_batch_t *b)
{
    kfetch_t *f = b->impl;
    if (f) {
        release_messages(f);
        for (size_t i = 0; i < f->n_parts; i++) {
            rd_kafka_queue_destroy(f->parts[i].q);
            free(f->parts[i].topic);
        }
        if (f->c) {
            rd_kafka_consumer_close(f->c);
            rd_kafka_destroy(f->c);
        }
        free(f->parts);
        free(f->msgs);
        free(f->recs);
        free(f->hdrs);
        free(f);
    }
    memset(b, 0, sizeof(*b));
}
