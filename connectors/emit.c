/* connectors/emit.c — encode, partition and commit a source's records. */
#include "connectors/emit.h"

#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/hash.h"
#include "engine/task.h"
#include "schema/wire.h"

void dm_emit_init(dm_emit_t *e)
{
    e->bytes = (dm_buf_t)DM_BUF_INIT;
    e->n = e->cap = e->n_dead = e->cap_dead = 0;
    e->start = NULL;
    e->ts = NULL;
    e->dead = NULL;
    e->round_robin = 0;
}

static dm_err_t grow(dm_emit_t *e, dm_error_t *err)
{
    size_t cap = e->cap ? e->cap * 2 : 256;
    size_t *start = realloc(e->start, cap * 3 * sizeof(size_t));
    if (start) e->start = start;
    int64_t *ts = start ? realloc(e->ts, cap * sizeof(int64_t)) : NULL;
    if (!ts) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    e->ts = ts;
    e->cap = cap;
    return DM_OK;
}

/* Encodes the key record: the key schema's fields taken from v by name. */
static dm_err_t encode_key(dm_emit_t *e, const dm_avro_value_t *v, dm_error_t *err)
{
    const dm_avro_node_t *kr = e->key_schema->root;
    dm_avro_value_t fields[32];
    if (kr->n_fields > 32)
        return dm_error_set(err, DM_ERR_RANGE, "source %s: more than 32 key fields", e->topic);
    for (uint32_t i = 0; i < kr->n_fields; i++) {
        int idx = dm_avro_field_index(e->schema->root, kr->fields[i].name);
        if (idx < 0)
            return dm_error_set(err, DM_ERR_SCHEMA_MISMATCH,
                                "source %s: key field '%s' is not in the value schema", e->topic,
                                kr->fields[i].name);
        fields[i] = v->u.v[idx];
    }
    dm_avro_value_t key = {.type = DM_AVRO_RECORD, .len = kr->n_fields, .u.v = fields};
    dm_err_t rc = dm_wire_put_header(&e->bytes, e->key_schema_id);
    return rc ? dm_error_set(err, rc, "out of memory") : dm_avro_encode(kr, &key, &e->bytes, err);
}

dm_err_t dm_emit_add(dm_emit_t *e, const dm_avro_value_t *v, int64_t ts, dm_error_t *err)
{
    if (e->n == e->cap && grow(e, err)) return err->code;
    size_t mark = e->bytes.len;
    size_t *s = &e->start[e->n * 3];
    s[0] = mark;
    dm_err_t rc = e->key_schema ? encode_key(e, v, err) : DM_OK;
    s[1] = e->bytes.len;
    if (!rc && (rc = dm_wire_put_header(&e->bytes, e->schema_id)))
        dm_error_set(err, rc, "out of memory");
    if (!rc) rc = dm_avro_encode(e->schema->root, v, &e->bytes, err);
    if (rc) {
        e->bytes.len = mark; /* the record is not added */
        return rc;
    }
    s[2] = e->bytes.len;
    e->ts[e->n++] = ts > 0 ? ts : dm_wall_ms();
    return DM_OK;
}

dm_err_t dm_emit_dead(dm_emit_t *e, const void *raw, size_t len, const char *reason,
                      const char *where, dm_error_t *err)
{
    if (!e->dead_letter_topic)
        return dm_error_set(err, DM_ERR_INVALID, "source %s at %s: %s", e->topic, where, reason);
    if (e->n_dead == e->cap_dead) {
        size_t cap = e->cap_dead ? e->cap_dead * 2 : 16;
        size_t *d = realloc(e->dead, cap * 4 * sizeof(size_t));
        if (!d) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
        e->dead = d;
        e->cap_dead = cap;
    }
    size_t *d = &e->dead[e->n_dead * 4];
    d[0] = e->bytes.len;
    dm_err_t rc = dm_buf_append(&e->bytes, raw, len);
    d[1] = e->bytes.len;
    if (!rc) rc = dm_buf_append(&e->bytes, reason, strlen(reason));
    d[2] = e->bytes.len;
    if (!rc) rc = dm_buf_append(&e->bytes, where, strlen(where));
    d[3] = e->bytes.len;
    if (rc) {
        e->bytes.len = d[0];
        return dm_error_set(err, rc, "out of memory");
    }
    e->n_dead++;
    return DM_OK;
}

size_t dm_emit_pending(const dm_emit_t *e)
{
    return e->n + e->n_dead;
}

static int32_t partition_of(dm_emit_t *e, const dm_record_t *r)
{
    if (e->partitions <= 1) return 0;
    if (r->key_len > 0)
        return (int32_t)(dm_hash64(r->key, (size_t)r->key_len) % (uint64_t)e->partitions);
    return (int32_t)(e->round_robin++ % (uint64_t)e->partitions);
}

/* Produces the pending records, grouped by partition, into txn. */
static dm_err_t produce_records(dm_emit_t *e, dm_transport_txn_t *txn, dm_error_t *err)
{
    dm_record_t *recs = calloc(e->n ? e->n : 1, sizeof(*recs));
    int32_t *part = calloc(e->n ? e->n : 1, sizeof(*part));
    dm_record_t *group = calloc(e->n ? e->n : 1, sizeof(*group));
    dm_err_t rc = recs && part && group ? DM_OK : dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < e->n && !rc; i++) {
        const size_t *s = &e->start[i * 3];
        recs[i] = (dm_record_t){.timestamp = e->ts[i],
                                .key = s[1] > s[0] ? e->bytes.data + s[0] : NULL,
                                .key_len = s[1] > s[0] ? (int32_t)(s[1] - s[0]) : -1,
                                .value = e->bytes.data + s[1],
                                .value_len = (int32_t)(s[2] - s[1])};
        part[i] = partition_of(e, &recs[i]);
    }
    for (int32_t p = 0; p < e->partitions && !rc; p++) {
        size_t k = 0;
        for (size_t i = 0; i < e->n; i++)
            if (part[i] == p) group[k++] = recs[i];
        if (k) rc = dm_transport_txn_produce(txn, e->topic, p, group, k, err);
    }
    free(recs);
    free(part);
    free(group);
    return rc;
}

static dm_err_t produce_dead(dm_emit_t *e, dm_transport_txn_t *txn, dm_error_t *err)
{
    if (!e->n_dead) return DM_OK;
    dm_record_t *recs = calloc(e->n_dead, sizeof(*recs));
    dm_record_header_t *h = calloc(e->n_dead * 2, sizeof(*h));
    if (!recs || !h) {
        free(recs);
        free(h);
        return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    }
    int64_t now = dm_wall_ms();
    for (size_t i = 0; i < e->n_dead; i++) {
        const size_t *d = &e->dead[i * 4];
        h[i * 2] = (dm_record_header_t){DM_DLQ_REASON, (uint32_t)strlen(DM_DLQ_REASON),
                                        e->bytes.data + d[1], (int32_t)(d[2] - d[1])};
        h[i * 2 + 1] = (dm_record_header_t){DM_DLQ_SOURCE, (uint32_t)strlen(DM_DLQ_SOURCE),
                                            e->bytes.data + d[2], (int32_t)(d[3] - d[2])};
        recs[i] = (dm_record_t){.timestamp = now,
                                .key_len = -1,
                                .value = e->bytes.data + d[0],
                                .value_len = (int32_t)(d[1] - d[0]),
                                .headers = &h[i * 2],
                                .n_headers = 2};
    }
    dm_err_t rc = dm_transport_txn_produce(txn, e->dead_letter_topic, 0, recs, e->n_dead, err);
    free(recs);
    free(h);
    return rc;
}

dm_err_t dm_emit_commit(dm_emit_t *e, const char *group, int64_t position, dm_error_t *err)
{
    if (!dm_emit_pending(e) && !group) return DM_OK;
    dm_transport_txn_t *txn = NULL;
    uint64_t rr = e->round_robin;
    dm_err_t rc = dm_transport_txn_begin(e->t, &txn, err);
    if (!rc) rc = produce_records(e, txn, err);
    if (!rc) rc = produce_dead(e, txn, err);
    if (!rc && group) {
        dm_tp_offset_t pos = {e->topic, 0, position};
        rc = dm_transport_txn_offsets(txn, group, &pos, 1, err);
    }
    if (txn) {
        if (rc)
            dm_transport_txn_abort(txn);
        else
            rc = dm_transport_txn_commit(txn, err);
    }
    if (rc) {
        e->round_robin = rr; /* a retry spreads the same way */
        return rc;
    }
    dm_emit_clear(e);
    return DM_OK;
}

void dm_emit_clear(dm_emit_t *e)
{
    dm_buf_reset(&e->bytes);
    e->n = e->n_dead = 0;
}

void dm_emit_free(dm_emit_t *e)
{
    dm_buf_free(&e->bytes);
    free(e->start);
    free(e->ts);
    free(e->dead);
    dm_emit_init(e);
}
