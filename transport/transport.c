/* transport/transport.c — backend selection and the dispatching front of transport.h. */
#include "transport/transport.h"

#include <stdlib.h>
#include <string.h>

struct dm_transport {
    const dm_transport_ops_t *ops;
    void *state;
};

struct dm_transport_txn {
    dm_transport_t *t;
    void *impl;
};

/* The backends, in one list (a Kafka backend adds one line). */
static const dm_transport_ops_t *const backends[] = {
    &dm_transport_embedded,
    &dm_transport_kafka,
};

dm_err_t dm_transport_open(const char *url, dm_transport_t **out, dm_error_t *err)
{
    *out = NULL;
    if (!url || !*url) return dm_error_set(err, DM_ERR_TRANSPORT_BACKEND, "empty transport URL");
    const dm_transport_ops_t *ops = NULL;
    const char *location = url;
    const char *colon = strchr(url, ':');
    const char *slash = strchr(url, '/');
    if (colon && (!slash || colon < slash)) {
        size_t sl = (size_t)(colon - url);
        for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
            if (strlen(backends[i]->scheme) == sl && !strncmp(backends[i]->scheme, url, sl))
                ops = backends[i];
        if (!ops)
            return dm_error_set(err, DM_ERR_TRANSPORT_BACKEND,
                                "transport '%.*s' is not available (have: embedded, kafka)",
                                (int)sl, url);
        location = colon + 1;
        if (!strncmp(location, "//", 2)) location += 2;
    } else {
        ops = &dm_transport_embedded; /* a plain directory */
    }
    dm_transport_t *t = calloc(1, sizeof(*t));
    if (!t) return dm_error_set(err, DM_ERR_NOMEM, "transport");
    t->ops = ops;
    dm_err_t rc = ops->open(location, &t->state, err);
    if (rc) {
        free(t);
        return rc;
    }
    *out = t;
    return DM_OK;
}

void dm_transport_close(dm_transport_t *t)
{
    if (!t) return;
    t->ops->close(t->state);
    free(t);
}

const char *dm_transport_backend(const dm_transport_t *t)
{
    return t->ops->name;
}

void *dm_transport_state(const dm_transport_t *t)
{
    return t->state;
}

dm_err_t dm_transport_create_topic(dm_transport_t *t, const dm_topic_config_t *conf,
                                   dm_error_t *err)
{
    return t->ops->create_topic(t->state, conf, err);
}

dm_err_t dm_transport_sync_topics(dm_transport_t *t, dm_error_t *err)
{
    return t->ops->sync_topics ? t->ops->sync_topics(t->state, err) : DM_OK;
}

dm_err_t dm_transport_describe_topic(dm_transport_t *t, const char *topic,
                                     dm_topic_description_t *out, dm_error_t *err)
{
    return t->ops->describe_topic(t->state, topic, out, err);
}

void dm_transport_description_free(dm_topic_description_t *d)
{
    free((char *)d->config.name);
    free((char *)d->config.schema_subject);
    free(d->partitions);
    memset(d, 0, sizeof(*d));
}

dm_err_t dm_transport_delete_topic(dm_transport_t *t, const char *topic, dm_error_t *err)
{
    return t->ops->delete_topic(t->state, topic, err);
}

dm_err_t dm_transport_list_topics(dm_transport_t *t, int (*fn)(void *ctx, const char *topic),
                                  void *ctx, dm_error_t *err)
{
    return t->ops->list_topics(t->state, fn, ctx, err);
}

dm_err_t dm_transport_produce(dm_transport_t *t, const char *topic, int32_t partition,
                              const dm_record_t *records, size_t n, int64_t *base_offset,
                              dm_error_t *err)
{
    return t->ops->produce(t->state, topic, partition, records, n, base_offset, err);
}

dm_err_t dm_transport_fetch(dm_transport_t *t, const char *topic, int32_t partition, int64_t offset,
                            size_t max_bytes, int timeout_ms, dm_transport_batch_t *batch,
                            dm_error_t *err)
{
    return t->ops->fetch(t->state, topic, partition, offset, max_bytes, timeout_ms, batch, err);
}

void dm_transport_batch_free(dm_transport_t *t, dm_transport_batch_t *batch)
{
    t->ops->batch_free(t->state, batch);
}

dm_err_t dm_transport_offsets(dm_transport_t *t, const char *topic, int32_t partition,
                              int64_t *start, int64_t *end, dm_error_t *err)
{
    return t->ops->offsets(t->state, topic, partition, start, end, err);
}

dm_err_t dm_transport_watch(dm_transport_t *t, const char *topic, int32_t partition, int64_t offset,
                            dm_transport_wake_fn fn, void *ctx, uint64_t id, bool *ready,
                            dm_error_t *err)
{
    *ready = false;
    if (!t->ops->watch)
        return dm_error_set(err, DM_ERR_UNSUPPORTED, "the %s transport cannot wake readers",
                            t->ops->name);
    return t->ops->watch(t->state, topic, partition, offset, fn, ctx, id, ready, err);
}

void dm_transport_unwatch(dm_transport_t *t, const char *topic, int32_t partition,
                          dm_transport_wake_fn fn, void *ctx, uint64_t id)
{
    if (t->ops->unwatch) t->ops->unwatch(t->state, topic, partition, fn, ctx, id);
}

dm_err_t dm_transport_offset_for_time(dm_transport_t *t, const char *topic, int32_t partition,
                                      int64_t ts_ms, int64_t *offset, dm_error_t *err)
{
    return t->ops->offset_for_time(t->state, topic, partition, ts_ms, offset, err);
}

dm_err_t dm_transport_group_commit(dm_transport_t *t, const char *group,
                                   const dm_tp_offset_t *offsets, size_t n, dm_error_t *err)
{
    return t->ops->group_commit(t->state, group, offsets, n, err);
}

dm_err_t dm_transport_group_offset(dm_transport_t *t, const char *group, const char *topic,
                                   int32_t partition, int64_t *offset, dm_error_t *err)
{
    return t->ops->group_offset(t->state, group, topic, partition, offset, err);
}

dm_err_t dm_transport_txn_begin(dm_transport_t *t, dm_transport_txn_t **out, dm_error_t *err)
{
    dm_transport_txn_t *x = calloc(1, sizeof(*x));
    if (!x) return dm_error_set(err, DM_ERR_NOMEM, "transaction");
    x->t = t;
    dm_err_t rc = t->ops->txn_begin(t->state, &x->impl, err);
    if (rc) {
        free(x);
        return rc;
    }
    *out = x;
    return DM_OK;
}

dm_err_t dm_transport_txn_produce(dm_transport_txn_t *txn, const char *topic, int32_t partition,
                                  const dm_record_t *records, size_t n, dm_error_t *err)
{
    return txn->t->ops->txn_produce(txn->t->state, txn->impl, topic, partition, records, n, err);
}

dm_err_t dm_transport_txn_offsets(dm_transport_txn_t *txn, const char *group,
                                  const dm_tp_offset_t *offsets, size_t n, dm_error_t *err)
{
    return txn->t->ops->txn_offsets(txn->t->state, txn->impl, group, offsets, n, err);
}

dm_err_t dm_transport_txn_commit(dm_transport_txn_t *txn, dm_error_t *err)
{
    dm_err_t rc = txn->t->ops->txn_commit(txn->t->state, txn->impl, err);
    free(txn);
    return rc;
}

void dm_transport_txn_abort(dm_transport_txn_t *txn)
{
    if (!txn) return;
    txn->t->ops->txn_abort(txn->t->state, txn->impl);
    free(txn);
}
