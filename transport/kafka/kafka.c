/* transport/kafka/kafka.c — the transport interface on a Kafka cluster (librdkafka):
 * opening, topic admin, plain produce, offsets and consumer-group offsets. Fetching is in
 * fetch.c, transactions in txn.c; internal.h says which client does what.
 *
 * librdkafka retries what is retriable (not leader, broker down, timeouts) inside its
 * timeouts; what still fails comes back as a dm error carrying the broker's words, so a
 * unit shows it in its status. Nothing is dropped: a produce returns only when every record
 * is acknowledged or reports the first failure.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/hash.h"
#include "core/log.h"
#include "transport/kafka/internal.h"

/* ---- configuration and errors ------------------------------------------------------ */

dm_err_t dm_kafka_code(rd_kafka_resp_err_t code)
{
    return code == RD_KAFKA_RESP_ERR_PRODUCER_FENCED || code == RD_KAFKA_RESP_ERR__FENCED ||
                   code == RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH
               ? DM_ERR_TRANSPORT_FENCED
           : code == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
                   code == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC
               ? DM_ERR_LOG_TOPIC_NOT_FOUND
           : code == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION ? DM_ERR_LOG_PARTITION
                                                          : DM_ERR_TRANSPORT_BROKER;
}

dm_err_t dm_kafka_error(dm_error_t *err, rd_kafka_resp_err_t code, const char *fmt, ...)
{
    dm_err_t rc = dm_kafka_code(code);
    if (!err) return rc;
    char what[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    dm_error_set(err, rc, "%s: %s", what, rd_kafka_err2str(code));
    /* what the cluster answered may change (a broker back, a leader elected,
     * a new topic's metadata spread): retried by the unit (connectors/unit.h) */
    err->retriable = true;
    return rc;
}

dm_err_t dm_kafka_set(rd_kafka_conf_t *conf, const char *name, const char *value, dm_error_t *err)
{
    char errstr[512];
    if (rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr)) == RD_KAFKA_CONF_OK)
        return DM_OK;
    return dm_error_set(err, DM_ERR_CONFIG, "kafka setting %s: %s", name, errstr);
}

/* librdkafka's log lines go to datamesh's log: warnings and worse (connection losses,
 * leader changes) are what an operator wants to see. Runs on librdkafka's threads. */
static void log_line(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    if (level <= 3)
        DM_ERROR("kafka", "client=%s %s: %s", rd_kafka_name(rk), fac, buf);
    else if (level <= 4)
        DM_WARN("kafka", "client=%s %s: %s", rd_kafka_name(rk), fac, buf);
}

rd_kafka_conf_t *dm_kafka_conf(const dm_kafka_t *k, dm_error_t *err)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (dm_kafka_set(conf, "bootstrap.servers", k->brokers, err) ||
        dm_kafka_set(conf, "client.id", "datamesh", err))
        goto fail;
    rd_kafka_conf_set_log_cb(conf, log_line);
    if (k->settings) {
        /* k=v&k=v: the URL's own librdkafka settings (security, timeouts). */
        char *copy = strdup(k->settings), *save = NULL;
        for (char *kv = strtok_r(copy, "&", &save); kv; kv = strtok_r(NULL, "&", &save)) {
            char *eq = strchr(kv, '=');
            if (!eq) {
                dm_error_set(err, DM_ERR_CONFIG, "kafka URL: setting '%s' has no '=value'", kv);
                free(copy);
                goto fail;
            }
            *eq = '\0';
            if (dm_kafka_set(conf, kv, eq + 1, err)) {
                free(copy);
                goto fail;
            }
        }
        free(copy);
    }
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

/* ---- open and close ----------------------------------------------------------------- */

/* One plain produce call waits on this: how many records are still unacknowledged. */
typedef struct delivery {
    _Atomic size_t pending;
    _Atomic int64_t base;
    _Atomic int err; /* first failure */
} delivery_t;

/* Runs in whichever thread polls the producer. */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    delivery_t *d = m->_private;
    if (!d) return;
    if (m->err) {
        int none = 0;
        atomic_compare_exchange_strong(&d->err, &none, (int)m->err);
    } else {
        int64_t b = atomic_load(&d->base);
        while ((b < 0 || m->offset < b) &&
               !atomic_compare_exchange_weak(&d->base, &b, (int64_t)m->offset))
            ;
    }
    atomic_fetch_sub(&d->pending, 1);
}

static void kafka_close(void *state)
{
    dm_kafka_t *k = state;
    if (!k) return;
    dm_kafka_txn_pool_free(k);
    for (kgroup_t *g = k->groups, *next; g; g = next) {
        next = g->next;
        rd_kafka_destroy(g->rk);
        free(g->name);
        free(g);
    }
    if (k->rk) {
        rd_kafka_flush(k->rk, DM_KAFKA_TIMEOUT_MS);
        rd_kafka_destroy(k->rk);
    }
    pthread_mutex_destroy(&k->mu);
    free(k->brokers);
    free(k->settings);
    free(k);
}

static dm_err_t kafka_open(const char *location, void **state, dm_error_t *err)
{
    dm_error_t local;
    if (!err) err = &local;
    *state = NULL;
    const char *q = strchr(location, '?');
    size_t blen = q ? (size_t)(q - location) : strlen(location);
    if (blen == 0 || location[blen - 1] == ',')
        return dm_error_set(err, DM_ERR_TRANSPORT_BACKEND,
                            "kafka URL: expected kafka://host:port[,host:port...]");
    dm_kafka_t *k = calloc(1, sizeof(*k));
    if (!k) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&k->mu, NULL);
    k->brokers = strndup(location, blen);
    k->settings = q && q[1] ? strdup(q + 1) : NULL;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(k->instance, sizeof(k->instance), "%ld.%lx", (long)getpid(),
             (unsigned long)(ts.tv_nsec ^ (ts.tv_sec << 20)));
    rd_kafka_conf_t *conf = dm_kafka_conf(k, err);
    dm_err_t rc = conf ? DM_OK : err->code;
    if (!rc && ((rc = dm_kafka_set(conf, "enable.idempotence", "true", err)) ||
                (rc = dm_kafka_set(conf, "linger.ms", "5", err)) ||
                (rc = dm_kafka_set(conf, "message.timeout.ms", "60000", err))))
        rd_kafka_conf_destroy(conf);
    if (rc) {
        kafka_close(k);
        return rc;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    char errstr[512];
    k->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!k->rk) {
        rd_kafka_conf_destroy(conf);
        kafka_close(k);
        return dm_error_set(err, DM_ERR_TRANSPORT, "kafka://%.*s: %s", (int)blen, location, errstr);
    }
    /* Reach the cluster now, so a wrong address fails at start with the reason. */
    const rd_kafka_metadata_t *md;
    rd_kafka_resp_err_t e = rd_kafka_metadata(k->rk, 0, NULL, &md, 10000);
    if (e) {
        rc = dm_kafka_error(err, e, "kafka://%.*s: cannot reach the cluster", (int)blen, location);
        kafka_close(k);
        return rc;
    }
    rd_kafka_metadata_destroy(md);
    *state = k;
    return DM_OK;
}

/* ---- topics ------------------------------------------------------------------------------ */

/* Partition count of topic (all-topics metadata: asking for one topic by name could make
 * a broker with auto-creation create it). 0 with err filled when it does not exist. */
static int32_t topic_partitions(dm_kafka_t *k, const char *topic, dm_error_t *err)
{
    const rd_kafka_metadata_t *md;
    rd_kafka_resp_err_t e = rd_kafka_metadata(k->rk, 1, NULL, &md, DM_KAFKA_TIMEOUT_MS);
    if (e) {
        dm_kafka_error(err, e, "topic=%s: reading cluster metadata", topic);
        return 0;
    }
    int32_t n = 0;
    for (int i = 0; i < md->topic_cnt; i++)
        if (!strcmp(md->topics[i].topic, topic) && !md->topics[i].err)
            n = md->topics[i].partition_cnt;
    rd_kafka_metadata_destroy(md);
    if (!n) dm_error_set(err, DM_ERR_LOG_TOPIC_NOT_FOUND, "no topic '%s' in the cluster", topic);
    return n;
}

/* Runs one admin request and returns its result event (NULL with err filled). */
static rd_kafka_event_t *admin_wait(rd_kafka_queue_t *q, const char *what, dm_error_t *err)
{
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, DM_KAFKA_TIMEOUT_MS + 5000);
    if (!ev) {
        dm_error_set(err, DM_ERR_TRANSPORT_BROKER, "%s: no answer from the cluster", what);
        return NULL;
    }
    if (rd_kafka_event_error(ev)) {
        dm_error_set(err, DM_ERR_TRANSPORT_BROKER, "%s: %s", what, rd_kafka_event_error_string(ev));
        rd_kafka_event_destroy(ev);
        return NULL;
    }
    return ev;
}

static dm_err_t topic_result(const rd_kafka_topic_result_t *r, const char *what, dm_error_t *err)
{
    rd_kafka_resp_err_t e = rd_kafka_topic_result_error(r);
    if (!e) return DM_OK;
    const char *msg = rd_kafka_topic_result_error_string(r);
    dm_err_t rc =
        e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS ? DM_ERR_LOG_TOPIC_EXISTS : dm_kafka_code(e);
    dm_error_set(err, rc, "%s: %s", what, msg ? msg : rd_kafka_err2str(e));
    if (err) err->retriable = rc != DM_ERR_LOG_TOPIC_EXISTS;
    return rc;
}

/* The topic settings Kafka has for the transport's: Kafka's own defaults (the broker's)
 * for what is zero. False when librdkafka refuses one. */
static bool topic_settings(rd_kafka_NewTopic_t *nt, const dm_topic_config_t *c)
{
    struct {
        bool set;
        const char *name;
        int64_t value;
    } nums[] = {
        {c->retention_ms != 0, "retention.ms", c->retention_ms < 0 ? -1 : c->retention_ms},
        {c->retention_bytes != 0, "retention.bytes",
         c->retention_bytes < 0 ? -1 : c->retention_bytes},
        {c->delete_retention_ms > 0, "delete.retention.ms", c->delete_retention_ms},
        {c->segment_bytes > 0, "segment.bytes", c->segment_bytes},
        {c->fsync == DM_TRANSPORT_FSYNC_ALWAYS, "flush.messages", 1}, /* fsync every record */
    };
    bool ok = true;
    for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
        char v[32];
        snprintf(v, sizeof(v), "%lld", (long long)nums[i].value);
        if (nums[i].set) ok &= !rd_kafka_NewTopic_set_config(nt, nums[i].name, v);
    }
    if (c->compact) ok &= !rd_kafka_NewTopic_set_config(nt, "cleanup.policy", "compact");
    if (c->compression)
        ok &= !rd_kafka_NewTopic_set_config(
            nt, "compression.type",
            c->compression == DM_TRANSPORT_COMPRESSION_ZSTD ? "zstd" : "lz4");
    return ok;
}

/* Admin options: the broker waits for a new topic to reach its replicas before it answers.
 * (The request timeout stays socket.timeout.ms, which the URL may set.) */
static rd_kafka_AdminOptions_t *admin_options(dm_kafka_t *k, rd_kafka_admin_op_t op)
{
    char errstr[256];
    rd_kafka_AdminOptions_t *o = rd_kafka_AdminOptions_new(k->rk, op);
    rd_kafka_AdminOptions_set_operation_timeout(o, DM_KAFKA_TIMEOUT_MS / 2, errstr, sizeof(errstr));
    return o;
}

static dm_err_t kafka_create_topic(void *state, const dm_topic_config_t *c, dm_error_t *err)
{
    dm_kafka_t *k = state;
    dm_error_t local;
    if (!err) err = &local;
    char errstr[512], what[400];
    snprintf(what, sizeof(what), "creating topic %s", c->name);
    rd_kafka_NewTopic_t *nt =
        rd_kafka_NewTopic_new(c->name, c->partitions > 0 ? c->partitions : 1,
                              c->replication > 0 ? c->replication : -1, errstr, sizeof(errstr));
    if (!nt) return dm_error_set(err, DM_ERR_LOG_BAD_NAME, "%s: %s", what, errstr);
    if (!topic_settings(nt, c)) {
        rd_kafka_NewTopic_destroy(nt);
        return dm_error_set(err, DM_ERR_CONFIG, "%s: a topic setting was refused", what);
    }
    dm_err_t rc;
    rd_kafka_queue_t *q = rd_kafka_queue_new(k->rk);
    rd_kafka_AdminOptions_t *o = admin_options(k, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_CreateTopics(k->rk, &nt, 1, o, q);
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_NewTopic_destroy(nt);
    rd_kafka_event_t *ev = admin_wait(q, what, err);
    rc = ev ? DM_OK : err->code;
    if (ev) {
        size_t n;
        const rd_kafka_topic_result_t **res =
            rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
        rc = n == 1 ? topic_result(res[0], what, err)
                    : dm_error_set(err, DM_ERR_TRANSPORT_BROKER, "%s: no result", what);
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_queue_destroy(q);
    return rc;
}

static dm_err_t kafka_delete_topic(void *state, const char *topic, dm_error_t *err)
{
    dm_kafka_t *k = state;
    dm_error_t local;
    if (!err) err = &local;
    char what[400];
    snprintf(what, sizeof(what), "deleting topic %s", topic);
    rd_kafka_DeleteTopic_t *dt = rd_kafka_DeleteTopic_new(topic);
    rd_kafka_queue_t *q = rd_kafka_queue_new(k->rk);
    rd_kafka_AdminOptions_t *o = admin_options(k, RD_KAFKA_ADMIN_OP_DELETETOPICS);
    rd_kafka_DeleteTopics(k->rk, &dt, 1, o, q);
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_DeleteTopic_destroy(dt);
    rd_kafka_event_t *ev = admin_wait(q, what, err);
    dm_err_t rc = ev ? DM_OK : err->code;
    if (ev) {
        size_t n;
        const rd_kafka_topic_result_t **res =
            rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(ev), &n);
        rc = n == 1 ? topic_result(res[0], what, err)
                    : dm_error_set(err, DM_ERR_TRANSPORT_BROKER, "%s: no result", what);
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_queue_destroy(q);
    return rc;
}

static dm_err_t kafka_offsets(void *state, const char *topic, int32_t partition, int64_t *start,
                              int64_t *end, dm_error_t *err)
{
    dm_kafka_t *k = state;
    int64_t lo = 0, hi = 0;
    rd_kafka_resp_err_t e =
        rd_kafka_query_watermark_offsets(k->rk, topic, partition, &lo, &hi, DM_KAFKA_TIMEOUT_MS);
    if (e)
        return dm_kafka_error(err, e, "topic=%s partition=%d: reading offsets", topic, partition);
    if (start) *start = lo;
    if (end) *end = hi;
    return DM_OK;
}

/* Partitions and their offsets. Topic settings stay on the cluster (kafka-configs shows
 * them); the description carries the name and the layout. */
static dm_err_t kafka_describe_topic(void *state, const char *topic, dm_topic_description_t *out,
                                     dm_error_t *err)
{
    dm_kafka_t *k = state;
    memset(out, 0, sizeof(*out));
    int32_t n = topic_partitions(k, topic, err);
    if (!n) return err ? err->code : DM_ERR_LOG_TOPIC_NOT_FOUND;
    out->config.name = strdup(topic);
    out->config.partitions = n;
    out->n_partitions = n;
    out->partitions = calloc((size_t)n, sizeof(*out->partitions));
    if (!out->config.name || !out->partitions) {
        dm_transport_description_free(out);
        return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    }
    for (int32_t p = 0; p < n; p++) {
        dm_partition_description_t *d = &out->partitions[p];
        d->partition = p;
        dm_err_t rc = kafka_offsets(k, topic, p, &d->start_offset, &d->end_offset, err);
        if (rc) {
            dm_transport_description_free(out);
            return rc;
        }
        d->size_bytes = -1; /* not known to clients */
    }
    return DM_OK;
}

static dm_err_t kafka_list_topics(void *state, int (*fn)(void *ctx, const char *topic), void *ctx,
                                  dm_error_t *err)
{
    dm_kafka_t *k = state;
    const rd_kafka_metadata_t *md;
    rd_kafka_resp_err_t e = rd_kafka_metadata(k->rk, 1, NULL, &md, DM_KAFKA_TIMEOUT_MS);
    if (e) return dm_kafka_error(err, e, "listing topics");
    for (int i = 0; i < md->topic_cnt; i++) {
        if (md->topics[i].err || !strncmp(md->topics[i].topic, "__", 2)) continue; /* internal */
        if (fn(ctx, md->topics[i].topic)) break;
    }
    rd_kafka_metadata_destroy(md);
    return DM_OK;
}

/* ---- produce -------------------------------------------------------------------------------- */

rd_kafka_resp_err_t dm_kafka_produce_one(rd_kafka_t *rk, const char *topic, int32_t partition,
                                         const dm_record_t *r, int flags, void *opaque)
{
    for (;;) {
        rd_kafka_headers_t *h = NULL;
        if (r->n_headers) {
            h = rd_kafka_headers_new(r->n_headers);
            for (uint32_t i = 0; i < r->n_headers; i++)
                rd_kafka_header_add(h, r->headers[i].key, (ssize_t)r->headers[i].key_len,
                                    r->headers[i].value_len < 0 ? NULL : r->headers[i].value,
                                    r->headers[i].value_len < 0 ? 0 : r->headers[i].value_len);
        }
        void *key = r->key_len < 0 ? NULL : (void *)r->key;
        void *value = r->value_len < 0 ? NULL : (void *)r->value;
        size_t key_len = r->key_len < 0 ? 0 : (size_t)r->key_len;
        size_t value_len = r->value_len < 0 ? 0 : (size_t)r->value_len;
        rd_kafka_resp_err_t e = rd_kafka_producev(
            rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
            RD_KAFKA_V_KEY(key, key_len), RD_KAFKA_V_VALUE(value, value_len),
            RD_KAFKA_V_TIMESTAMP(r->timestamp > 0 ? r->timestamp : 0), RD_KAFKA_V_MSGFLAGS(flags),
            RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
        if (e && h) rd_kafka_headers_destroy(h); /* owned by the message only on success */
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) return e;
        rd_kafka_poll(rk, 10);
    }
}

static dm_err_t kafka_produce(void *state, const char *topic, int32_t partition,
                              const dm_record_t *records, size_t n, int64_t *base_offset,
                              dm_error_t *err)
{
    dm_kafka_t *k = state;
    if (partition < 0) {
        int32_t parts = topic_partitions(k, topic, err);
        if (!parts) return err ? err->code : DM_ERR_LOG_TOPIC_NOT_FOUND;
        partition = 0;
        if (n && records[0].key && records[0].key_len > 0)
            partition =
                (int32_t)(dm_hash64(records[0].key, (size_t)records[0].key_len) % (uint64_t)parts);
    }
    delivery_t d = {.base = -1};
    rd_kafka_resp_err_t e = 0;
    size_t queued = 0;
    for (; queued < n && !e; queued++) {
        atomic_fetch_add(&d.pending, 1);
        e = dm_kafka_produce_one(k->rk, topic, partition, &records[queued], RD_KAFKA_MSG_F_COPY,
                                 &d);
        if (e) atomic_fetch_sub(&d.pending, 1);
    }
    /* Wait for every queued record, even after a failure: d lives on this stack. */
    while (atomic_load(&d.pending))
        rd_kafka_poll(k->rk, 5);
    if (!e) e = (rd_kafka_resp_err_t)atomic_load(&d.err);
    if (e)
        return dm_kafka_error(err, e, "topic=%s partition=%d: producing %zu record(s)", topic,
                              partition, n);
    if (base_offset) *base_offset = atomic_load(&d.base);
    return DM_OK;
}

static dm_err_t kafka_offset_for_time(void *state, const char *topic, int32_t partition,
                                      int64_t ts_ms, int64_t *offset, dm_error_t *err)
{
    dm_kafka_t *k = state;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition)->offset = ts_ms;
    rd_kafka_resp_err_t e = rd_kafka_offsets_for_times(k->rk, l, DM_KAFKA_TIMEOUT_MS);
    if (!e) e = l->elems[0].err;
    int64_t o = l->elems[0].offset;
    rd_kafka_topic_partition_list_destroy(l);
    if (e)
        return dm_kafka_error(err, e, "topic=%s partition=%d: offset for time %lld", topic,
                              partition, (long long)ts_ms);
    if (o >= 0) {
        *offset = o;
        return DM_OK;
    }
    return kafka_offsets(k, topic, partition, NULL, offset, err); /* none that late: the end */
}

/* ---- consumer-group offsets ------------------------------------------------------------------ */

/* The group's offset client: a consumer with group.id that never joins the group. */
static rd_kafka_t *group_client(dm_kafka_t *k, const char *group, dm_error_t *err)
{
    pthread_mutex_lock(&k->mu);
    kgroup_t *g = k->groups;
    while (g && strcmp(g->name, group))
        g = g->next;
    if (!g) {
        rd_kafka_conf_t *conf = dm_kafka_conf(k, err);
        if (conf && (dm_kafka_set(conf, "group.id", group, err) ||
                     dm_kafka_set(conf, "enable.auto.commit", "false", err) ||
                     dm_kafka_set(conf, "isolation.level", "read_committed", err))) {
            rd_kafka_conf_destroy(conf);
            conf = NULL;
        }
        char errstr[512];
        rd_kafka_t *rk =
            conf ? rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr)) : NULL;
        if (conf && !rk) {
            rd_kafka_conf_destroy(conf);
            dm_error_set(err, DM_ERR_TRANSPORT, "group %s: %s", group, errstr);
        }
        g = rk ? calloc(1, sizeof(*g)) : NULL;
        if (g) {
            g->name = strdup(group);
            g->rk = rk;
            g->next = k->groups;
            k->groups = g;
        } else if (rk) {
            rd_kafka_destroy(rk);
        }
    }
    pthread_mutex_unlock(&k->mu);
    return g ? g->rk : NULL;
}

static dm_err_t kafka_group_commit(void *state, const char *group, const dm_tp_offset_t *offsets,
                                   size_t n, dm_error_t *err)
{
    rd_kafka_t *rk = group_client(state, group, err);
    if (!rk) return err ? err->code : DM_ERR_TRANSPORT;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)n);
    for (size_t i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(l, offsets[i].topic, offsets[i].partition)->offset =
            offsets[i].offset;
    rd_kafka_resp_err_t e = rd_kafka_commit(rk, l, 0);
    for (int i = 0; !e && i < l->cnt; i++)
        e = l->elems[i].err;
    rd_kafka_topic_partition_list_destroy(l);
    if (e) return dm_kafka_error(err, e, "group %s: committing offsets", group);
    return DM_OK;
}

static dm_err_t kafka_group_offset(void *state, const char *group, const char *topic,
                                   int32_t partition, int64_t *offset, dm_error_t *err)
{
    rd_kafka_t *rk = group_client(state, group, err);
    if (!rk) return err ? err->code : DM_ERR_TRANSPORT;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition);
    rd_kafka_resp_err_t e = rd_kafka_committed(rk, l, DM_KAFKA_TIMEOUT_MS);
    if (!e) e = l->elems[0].err;
    int64_t o = l->elems[0].offset;
    rd_kafka_topic_partition_list_destroy(l);
    if (e)
        return dm_kafka_error(err, e, "group %s: reading its offset on %s/%d", group, topic,
                              partition);
    if (o < 0)
        return dm_error_set(err, DM_ERR_NOT_FOUND, "group %s has no offset on %s/%d", group, topic,
                            partition);
    *offset = o;
    return DM_OK;
}

const dm_transport_ops_t dm_transport_kafka = {
    .name = "kafka",
    .scheme = "kafka",
    .open = kafka_open,
    .close = kafka_close,
    .create_topic = kafka_create_topic,
    .describe_topic = kafka_describe_topic,
    .delete_topic = kafka_delete_topic,
    .list_topics = kafka_list_topics,
    .produce = kafka_produce,
    .fetch = dm_kafka_fetch,
    .batch_free = dm_kafka_batch_free,
    .offsets = kafka_offsets,
    .offset_for_time = kafka_offset_for_time,
    .group_commit = kafka_group_commit,
    .group_offset = kafka_group_offset,
    .txn_begin = dm_kafka_txn_begin,
    .txn_produce = dm_kafka_txn_produce,
    .txn_offsets = dm_kafka_txn_offsets,
    .txn_commit = dm_kafka_txn_commit,
    .txn_abort = dm_kafka_txn_abort,
};
