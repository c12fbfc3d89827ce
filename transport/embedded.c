/* transport/embedded.c — the transport interface over the embedded log (log/log.h).
 *
 * A thin mapping: topics, fetches, groups and transactions are the log's own. Fetched
 * records point into the log's read buffer held by the batch (no copy per record).
 */
#include <stdlib.h>
#include <string.h>

#include "log/log.h"
#include "transport/transport.h"

static dm_err_t emb_open(const char *location, void **state, dm_error_t *err)
{
    dm_log_t *log;
    dm_err_t rc = dm_log_open(location, NULL, &log, err);
    if (rc) return rc;
    *state = log;
    return DM_OK;
}

static void emb_close(void *state)
{
    dm_log_close(state);
}

static dm_err_t emb_create_topic(void *state, const dm_topic_config_t *c, dm_error_t *err)
{
    dm_log_topic_conf_t lc = {
        .name = c->name,
        .partitions = c->partitions,
        .retention_ms = c->retention_ms,
        .retention_bytes = c->retention_bytes,
        .compact = c->compact,
        .delete_retention_ms = c->delete_retention_ms,
        .fsync = (dm_log_fsync_t)c->fsync,
        .flush_ms = c->flush_ms,
        .segment_bytes = c->segment_bytes,
        .compression = (dm_batch_comp_t)c->compression,
        .schema_subject = c->schema_subject,
    };
    return c->defer_durable ? dm_log_topic_create_deferred(state, &lc, err)
                            : dm_log_topic_create(state, &lc, err);
}

static dm_err_t emb_sync_topics(void *state, dm_error_t *err)
{
    return dm_log_journal_sync(state, err);
}

static dm_err_t emb_describe_topic(void *state, const char *topic, dm_topic_description_t *out,
                                   dm_error_t *err)
{
    dm_log_topic_info_t info;
    dm_err_t rc = dm_log_topic_describe(state, topic, &info, err);
    if (rc) return rc;
    memset(out, 0, sizeof(*out));
    const dm_log_topic_conf_t *c = &info.conf;
    out->config = (dm_topic_config_t){
        .name = strdup(c->name),
        .partitions = c->partitions,
        .retention_ms = c->retention_ms,
        .retention_bytes = c->retention_bytes,
        .compact = c->compact,
        .delete_retention_ms = c->delete_retention_ms,
        .fsync = (dm_transport_fsync_t)c->fsync,
        .flush_ms = c->flush_ms,
        .segment_bytes = c->segment_bytes,
        .compression = (dm_transport_compression_t)c->compression,
        .schema_subject = c->schema_subject ? strdup(c->schema_subject) : NULL,
    };
    out->n_partitions = c->partitions;
    out->partitions = calloc((size_t)c->partitions, sizeof(*out->partitions));
    if (!out->partitions || !out->config.name) {
        free(info.parts);
        dm_transport_description_free(out);
        return dm_error_set(err, DM_ERR_NOMEM, "describe");
    }
    for (int32_t i = 0; i < c->partitions; i++)
        out->partitions[i] = (dm_partition_description_t){
            .partition = info.parts[i].partition,
            .start_offset = info.parts[i].start_offset,
            .end_offset = info.parts[i].end_offset,
            .size_bytes = info.parts[i].size_bytes,
        };
    free(info.parts);
    return DM_OK;
}

static dm_err_t emb_delete_topic(void *state, const char *topic, dm_error_t *err)
{
    return dm_log_topic_delete(state, topic, err);
}

typedef struct list_ctx {
    int (*fn)(void *ctx, const char *topic);
    void *ctx;
} list_ctx_t;

static int list_one(void *ctx, const dm_log_topic_conf_t *conf)
{
    list_ctx_t *l = ctx;
    return l->fn(l->ctx, conf->name);
}

static dm_err_t emb_list_topics(void *state, int (*fn)(void *ctx, const char *topic), void *ctx,
                                dm_error_t *err)
{
    list_ctx_t l = {fn, ctx};
    dm_log_topic_list(state, list_one, &l);
    return DM_OK;
}

static dm_err_t emb_produce(void *state, const char *topic, int32_t partition,
                            const dm_record_t *records, size_t n, int64_t *base_offset,
                            dm_error_t *err)
{
    return dm_log_produce(state, topic, partition, records, n, base_offset, err);
}

static dm_err_t emb_fetch(void *state, const char *topic, int32_t partition, int64_t offset,
                          size_t max_bytes, int timeout_ms, dm_transport_batch_t *b,
                          dm_error_t *err)
{
    dm_log_fetch_t *f = b->impl;
    if (!f) {
        f = malloc(sizeof(*f));
        if (!f) return dm_error_set(err, DM_ERR_NOMEM, "fetch buffers");
        dm_log_fetch_init(f);
        b->impl = f;
    }
    dm_err_t rc = dm_log_read(state, topic, partition, offset, max_bytes, timeout_ms, f, err);
    b->records = f->records;
    b->n = rc ? 0 : f->n;
    b->next_offset = f->next_offset;
    b->high_watermark = f->high_watermark;
    return rc;
}

static void emb_batch_free(void *state, dm_transport_batch_t *b)
{
    if (b->impl) {
        dm_log_fetch_free(b->impl);
        free(b->impl);
    }
    memset(b, 0, sizeof(*b));
}

static dm_err_t emb_watch(void *state, const char *topic, int32_t partition, int64_t offset,
                          dm_transport_wake_fn fn, void *ctx, uint64_t id, bool *ready,
                          dm_error_t *err)
{
    return dm_log_watch(state, topic, partition, offset, fn, ctx, id, ready, err);
}

static void emb_unwatch(void *state, const char *topic, int32_t partition, dm_transport_wake_fn fn,
                        void *ctx, uint64_t id)
{
    dm_log_unwatch(state, topic, partition, fn, ctx, id);
}

static dm_err_t emb_offsets(void *state, const char *topic, int32_t partition, int64_t *start,
                            int64_t *end, dm_error_t *err)
{
    return dm_log_offsets(state, topic, partition, start, end, err);
}

static dm_err_t emb_offset_for_time(void *state, const char *topic, int32_t partition,
                                    int64_t ts_ms, int64_t *offset, dm_error_t *err)
{
    return dm_log_offset_for_time(state, topic, partition, ts_ms, offset, err);
}

static dm_err_t emb_txn_offsets(void *state, void *txn, const char *group,
                                const dm_tp_offset_t *offsets, size_t n, dm_error_t *err)
{
    for (size_t i = 0; i < n; i++) {
        dm_err_t rc = dm_log_txn_offset(txn, group, offsets[i].topic, offsets[i].partition,
                                        offsets[i].offset, err);
        if (rc) return rc;
    }
    return DM_OK;
}

static dm_err_t emb_group_commit(void *state, const char *group, const dm_tp_offset_t *offsets,
                                 size_t n, dm_error_t *err)
{
    dm_log_txn_t *txn;
    dm_err_t rc = dm_log_txn_begin(state, &txn, err);
    if (rc) return rc;
    rc = emb_txn_offsets(state, txn, group, offsets, n, err);
    if (rc) {
        dm_log_txn_abort(txn);
        return rc;
    }
    return dm_log_txn_commit(txn, NULL, err);
}

static dm_err_t emb_group_offset(void *state, const char *group, const char *topic,
                                 int32_t partition, int64_t *offset, dm_error_t *err)
{
    return dm_log_group_offset(state, group, topic, partition, offset, err);
}

static dm_err_t emb_txn_begin(void *state, void **txn, dm_error_t *err)
{
    return dm_log_txn_begin(state, (dm_log_txn_t **)txn, err);
}

static dm_err_t emb_txn_produce(void *state, void *txn, const char *topic, int32_t partition,
                                const dm_record_t *records, size_t n, dm_error_t *err)
{
    return dm_log_txn_produce(txn, topic, partition, records, n, err);
}

static dm_err_t emb_txn_commit(void *state, void *txn, dm_error_t *err)
{
    return dm_log_txn_commit(txn, NULL, err);
}

static void emb_txn_abort(void *state, void *txn)
{
    dm_log_txn_abort(txn);
}

const dm_transport_ops_t dm_transport_embedded = {
    .name = "embedded",
    .scheme = "embedded",
    .open = emb_open,
    .close = emb_close,
    .create_topic = emb_create_topic,
    .describe_topic = emb_describe_topic,
    .delete_topic = emb_delete_topic,
    .list_topics = emb_list_topics,
    .produce = emb_produce,
    .fetch = emb_fetch,
    .batch_free = emb_batch_free,
    .offsets = emb_offsets,
    .watch = emb_watch,
    .unwatch = emb_unwatch,
    .offset_for_time = emb_offset_for_time,
    .group_commit = emb_group_commit,
    .group_offset = emb_group_offset,
    .txn_begin = emb_txn_begin,
    .txn_produce = emb_txn_produce,
    .txn_offsets = emb_txn_offsets,
    .txn_commit = emb_txn_commit,
    .txn_abort = emb_txn_abort,
    .sync_topics = emb_sync_topics,
};
