/* connectors/datagen/datagen_source.c — the datagen connector's loop. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/datagen/datagen.h"
#include "connectors/unit.h"
#include "core/clock.h"
#include "core/hash.h"
#include "core/log.h"
#include "schema/dm_avro.h"
#include "schema/wire.h"
#include "transport/transport.h"

#define TICK_MS 100

/* Encodes the key record (the key fields of v) with its wire header. */
static dm_err_t encode_key(const dm_datagen_source_t *src, const dm_avro_value_t *v, dm_buf_t *out,
                           dm_error_t *err)
{
    const dm_avro_node_t *kr = src->key_schema->root;
    dm_avro_value_t fields[16];
    if (kr->n_fields > 16) return dm_error_set(err, DM_ERR_RANGE, "more than 16 key fields");
    for (uint32_t i = 0; i < kr->n_fields; i++)
        fields[i] = v->u.v[dm_avro_field_index(src->schema->root, kr->fields[i].name)];
    dm_avro_value_t key = {.type = DM_AVRO_RECORD, .len = kr->n_fields, .u.v = fields};
    dm_err_t rc = dm_wire_put_header(out, src->key_schema_id);
    return rc ? rc : dm_avro_encode(kr, &key, out, err);
}

/* One batch of n events: generated, encoded, produced and committed with the
 * new sequence number. */
static dm_err_t produce_batch(const dm_datagen_source_t *src, dm_datagen_t *g, size_t n,
                              dm_arena_t *arena, dm_buf_t *bytes, dm_error_t *err)
{
    size_t *vstart = calloc(n, sizeof(size_t)), *kstart = calloc(n, sizeof(size_t));
    int32_t *part = calloc(n, sizeof(int32_t));
    dm_record_t *recs = calloc(n, sizeof(dm_record_t)), *group = calloc(n, sizeof(dm_record_t));
    dm_err_t rc = vstart && kstart && part && recs && group ? DM_OK : DM_ERR_NOMEM;
    if (rc) dm_error_set(err, rc, "out of memory");
    dm_buf_reset(bytes);
    dm_arena_reset(arena);
    int64_t now = dm_wall_ms();
    for (size_t i = 0; i < n && !rc; i++) {
        dm_avro_value_t v;
        if ((rc = dm_datagen_next(g, arena, &v, err))) break;
        kstart[i] = bytes->len;
        if (src->key_schema && (rc = encode_key(src, &v, bytes, err))) break;
        vstart[i] = bytes->len;
        if ((rc = dm_wire_put_header(bytes, src->schema_id)) ||
            (rc = dm_avro_encode(src->schema->root, &v, bytes, err)))
            break;
    }
    for (size_t i = 0; i < n && !rc; i++) {
        size_t vend = i + 1 < n ? kstart[i + 1] : bytes->len;
        recs[i] = (dm_record_t){.timestamp = now,
                                .key_len = -1,
                                .value = bytes->data + vstart[i],
                                .value_len = (int32_t)(vend - vstart[i])};
        if (src->key_schema) {
            recs[i].key = bytes->data + kstart[i];
            recs[i].key_len = (int32_t)(vstart[i] - kstart[i]);
            part[i] = (int32_t)(dm_hash64(recs[i].key, (size_t)recs[i].key_len) %
                                (uint64_t)src->partitions);
        } else {
            part[i] = (int32_t)((dm_datagen_count(g) - n + i) % (uint64_t)src->partitions);
        }
    }
    dm_transport_txn_t *txn = NULL;
    if (!rc) rc = dm_transport_txn_begin(src->transport, &txn, err);
    for (int32_t p = 0; p < src->partitions && !rc; p++) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (part[i] == p) group[k++] = recs[i];
        if (k) rc = dm_transport_txn_produce(txn, src->topic, p, group, k, err);
    }
    if (!rc) {
        char gname[300];
        snprintf(gname, sizeof(gname), "connector.%s", src->topic);
        dm_tp_offset_t seq = {src->topic, 0, (int64_t)dm_datagen_count(g)};
        rc = dm_transport_txn_offsets(txn, gname, &seq, 1, err);
    }
    if (txn) {
        if (rc)
            dm_transport_txn_abort(txn);
        else
            rc = dm_transport_txn_commit(txn, err);
    }
    free(vstart);
    free(kstart);
    free(part);
    free(recs);
    free(group);
    return rc;
}

void dm_datagen_source_run(const dm_datagen_source_t *src, dm_unit_status_t *status)
{
    dm_error_t err = {0};
    dm_datagen_t *g = NULL;
    if (dm_datagen_new(src->schema, &src->conf, src->key_fields, &g, &err)) {
        dm_unit_set(status, "failed", "%s", err.message);
        return;
    }
    dm_arena_t arena;
    dm_arena_init(&arena, 0);
    dm_buf_t bytes = DM_BUF_INIT;
    /* Resume the sequence where the last commit left it. */
    char gname[300];
    snprintf(gname, sizeof(gname), "connector.%s", src->topic);
    int64_t done = 0;
    dm_error_t e2 = {0};
    if (dm_transport_group_offset(src->transport, gname, src->topic, 0, &done, &e2) == DM_OK) {
        for (int64_t i = 0; i < done; i++) {
            dm_avro_value_t v;
            dm_datagen_next(g, &arena, &v, &err);
            if ((i & 1023) == 1023) dm_arena_reset(&arena);
        }
    }
    atomic_store(&status->position, done);
    dm_unit_set(status, "running", NULL);
    int64_t per_tick = src->conf.rate * TICK_MS / 1000;
    if (per_tick < 1) per_tick = 1;
    int64_t tick_ms = src->conf.rate * TICK_MS / 1000 >= 1 ? TICK_MS : 1000 / src->conf.rate;
    uint64_t next = dm_now_ns();
    int64_t backoff = 100;
    while (!atomic_load(&status->stop)) {
        int64_t n = per_tick;
        if (src->conf.max_events && (int64_t)dm_datagen_count(g) + n > src->conf.max_events)
            n = src->conf.max_events - (int64_t)dm_datagen_count(g);
        if (n <= 0) {
            dm_unit_set(status, "done", NULL);
            break;
        }
        uint64_t before = dm_datagen_count(g);
        if (produce_batch(src, g, (size_t)n, &arena, &bytes, &err)) {
            /* Nothing was committed: rewind so the next try makes the same events. */
            dm_datagen_free(g);
            dm_datagen_new(src->schema, &src->conf, src->key_fields, &g, &e2);
            for (uint64_t i = 0; i < before; i++) {
                dm_avro_value_t v;
                dm_datagen_next(g, &arena, &v, &e2);
                if ((i & 1023) == 1023) dm_arena_reset(&arena);
            }
            dm_unit_set(status, "retrying", "writing to topic %s: %s", src->topic, err.message);
            DM_WARN("connector", "source=%s connector=datagen: %s; retrying in %lld ms", src->topic,
                    err.message, (long long)backoff);
            if (dm_unit_sleep(status, backoff)) break;
            if (backoff < 5000) backoff *= 2;
            continue;
        }
        backoff = 100;
        atomic_store(&status->position, (int64_t)dm_datagen_count(g));
        dm_unit_set(status, "running", NULL);
        next += (uint64_t)tick_ms * 1000000;
        uint64_t now = dm_now_ns();
        if (next > now) {
            if (dm_unit_sleep(status, (int64_t)((next - now) / 1000000))) break;
        } else {
            next = now; /* behind: do not try to catch up in a burst */
        }
    }
    if (!strcmp(status->state, "running")) dm_unit_set(status, "stopped", NULL);
    dm_buf_free(&bytes);
    dm_arena_destroy(&arena);
    dm_datagen_free(g);
}
