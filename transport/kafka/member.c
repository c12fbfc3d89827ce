/* transport/kafka/member.c — consumer-group membership for distributed workers.
 *
 * Kafka balances the partitions; datamesh runs a task instance per partition it is given.
 * The member is a consumer subscribed to the task's input topic with the cooperative-sticky
 * assignor, so a rebalance moves only the partitions that must move and the others keep
 * running. Its partitions are paused at once: the tasks fetch through their own consumers
 * and commit their offsets in their transactions, which the next owner resumes from.
 */
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "transport/kafka/internal.h"
#include "transport/kafka/kafka.h"

struct dm_kafka_member {
    rd_kafka_t *rk;
    char *group;
    dm_kafka_member_fn fn; /* set for the duration of a poll */
    void *ctx;
};

void dm_kafka_txn_counts(const dm_transport_t *t, uint64_t *commits, uint64_t *aborts)
{
    *commits = *aborts = 0;
    if (strcmp(dm_transport_backend(t), "kafka")) return;
    dm_kafka_t *k = dm_transport_state(t);
    *commits = atomic_load(&k->commits);
    *aborts = atomic_load(&k->aborts);
}

static void notify(dm_kafka_member_t *m, int change, const rd_kafka_topic_partition_list_t *l)
{
    for (int i = 0; i < l->cnt; i++) {
        DM_INFO("kafka", "group=%s: partition %s/%d %s", m->group, l->elems[i].topic,
                l->elems[i].partition, change > 0 ? "assigned" : "revoked");
        if (m->fn) m->fn(m->ctx, change, l->elems[i].partition);
    }
}

/* Runs inside rd_kafka_consumer_poll / rd_kafka_consumer_close, on the polling thread. */
static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t e,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    dm_kafka_member_t *m = opaque;
    rd_kafka_error_t *x = NULL;
    if (e == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        x = rd_kafka_incremental_assign(rk, parts);
        if (!x) {
            rd_kafka_pause_partitions(rk, parts);
            notify(m, +1, parts);
        }
    } else {
        /* Stop the tasks first: the partitions are free only once they stopped. */
        notify(m, -1, parts);
        x = rd_kafka_incremental_unassign(rk, parts);
    }
    if (x) {
        DM_WARN("kafka", "group=%s: rebalance: %s", m->group, rd_kafka_error_string(x));
        rd_kafka_error_destroy(x);
    }
}

dm_err_t dm_kafka_member_new(dm_transport_t *t, const char *group, const char *topic,
                             dm_kafka_member_t **out, dm_error_t *err)
{
    dm_error_t local;
    if (!err) err = &local;
    *out = NULL;
    if (strcmp(dm_transport_backend(t), "kafka"))
        return dm_error_set(err, DM_ERR_TRANSPORT_BACKEND,
                            "workers share partitions through Kafka consumer groups; the "
                            "transport is %s",
                            dm_transport_backend(t));
    dm_kafka_t *k = dm_transport_state(t);
    dm_kafka_member_t *m = calloc(1, sizeof(*m));
    if (!m || !(m->group = strdup(group))) {
        free(m);
        return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    }
    rd_kafka_conf_t *conf = dm_kafka_conf(k, err);
    dm_err_t rc = conf ? DM_OK : err->code;
    /* A member that dies is noticed within the session timeout; its partitions then move. */
    if (!rc &&
        ((rc = dm_kafka_set(conf, "group.id", group, err)) ||
         (rc = dm_kafka_set(conf, "partition.assignment.strategy", "cooperative-sticky", err)) ||
         (rc = dm_kafka_set(conf, "enable.auto.commit", "false", err)) ||
         (rc = dm_kafka_set(conf, "session.timeout.ms", "6000", err)) ||
         (rc = dm_kafka_set(conf, "heartbeat.interval.ms", "500", err)) ||
         (rc = dm_kafka_set(conf, "queued.max.messages.kbytes", "1024", err))))
        rd_kafka_conf_destroy(conf);
    char errstr[512];
    if (!rc) {
        rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
        rd_kafka_conf_set_opaque(conf, m);
        m->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
        if (!m->rk) {
            rd_kafka_conf_destroy(conf);
            rc = dm_error_set(err, DM_ERR_TRANSPORT, "group %s: %s", group, errstr);
        }
    }
    if (!rc) {
        rd_kafka_poll_set_consumer(m->rk);
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, topic, RD_KAFKA_PARTITION_UA);
        rd_kafka_resp_err_t e = rd_kafka_subscribe(m->rk, l);
        rd_kafka_topic_partition_list_destroy(l);
        if (e) rc = dm_kafka_error(err, e, "group %s: subscribing to %s", group, topic);
    }
    if (rc) {
        dm_kafka_member_free(m, NULL, NULL);
        return rc;
    }
    *out = m;
    return DM_OK;
}

dm_err_t dm_kafka_member_poll(dm_kafka_member_t *m, int timeout_ms, dm_kafka_member_fn fn,
                              void *ctx, dm_error_t *err)
{
    m->fn = fn;
    m->ctx = ctx;
    dm_err_t rc = DM_OK;
    rd_kafka_message_t *msg = rd_kafka_consumer_poll(m->rk, timeout_ms);
    if (msg) {
        if (msg->err && rd_kafka_fatal_error(m->rk, NULL, 0))
            rc = dm_kafka_error(err, msg->err, "group %s: %s", m->group,
                                rd_kafka_message_errstr(msg));
        else if (msg->err)
            DM_WARN("kafka", "group=%s: %s", m->group, rd_kafka_message_errstr(msg));
        rd_kafka_message_destroy(msg); /* records before the pause: the tasks read them */
    }
    m->fn = NULL;
    return rc;
}

void dm_kafka_member_free(dm_kafka_member_t *m, dm_kafka_member_fn fn, void *ctx)
{
    if (!m) return;
    if (m->rk) {
        m->fn = fn;
        m->ctx = ctx;
        rd_kafka_consumer_close(m->rk); /* revokes through the callback, then leaves */
        rd_kafka_destroy(m->rk);
    }
    free(m->group);
    free(m);
}
