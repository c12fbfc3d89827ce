/* connectors/emit.c — encode, partition and commit a source's records. */
#include "connectors/emit.h"

#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "engine/task.h"
#include "schema/wire.h"

void dm_emit_init(dm_emit_t *e)
{
    e->bytes = (dm_buf_t)DM_BUF_INIT;
    e->n = e->cap = e->n_dead = e->cap_dead = 0;
    e->start = NULL;
    e->lent = NULL;
    e->ts = NULL;
    e->dead = NULL;
    e->dead_hdrs = NULL;
    e->round_robin = 0;
    dm_txn_builder_init(&e->txn, e->t);
}

static dm_err_t grow(dm_emit_t *e, dm_error_t *err)
{
    size_t cap = e->cap ? e->cap * 2 : 256;
    size_t *start = realloc(e->start, cap * 3 * sizeof(size_t));
    if (start) e->start = start;
    int64_t *ts = start ? realloc(e->ts, cap * sizeof(int64_t)) : NULL;
    if (ts) e->ts = ts;
    const uint8_t **lent = ts ? realloc(e->lent, cap * sizeof(*lent)) : NULL;
    if (!lent) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    e->lent = lent;
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
    e->lent[e->n] = NULL;
    e->ts[e->n++] = ts > 0 ? ts : dm_wall_ms();
    return DM_OK;
}

dm_err_t dm_emit_add_encoded(dm_emit_t *e, const dm_avro_value_t *v, const void *framed, size_t len,
                             int64_t ts, dm_error_t *err)
{
    if (e->n == e->cap && grow(e, err)) return err->code;
    if (e->key_schema && !v)
        return dm_error_set(err, DM_ERR_INTERNAL, "source %s: a keyed record without its value",
                            e->topic);
    size_t mark = e->bytes.len;
    size_t *s = &e->start[e->n * 3];
    s[0] = mark;
    dm_err_t rc = e->key_schema ? encode_key(e, v, err) : DM_OK;
    s[1] = e->bytes.len;
    if (rc) {
        e->bytes.len = mark;
        return rc;
    }
    s[2] = s[1] + len; /* the value is not in bytes: lent */
    e->lent[e->n] = framed;
    e->ts[e->n++] = ts;
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
        if (d) e->dead = d;
        dm_record_header_t *h = realloc(e->dead_hdrs, cap * 2 * sizeof(*h));
        if (h) e->dead_hdrs = h;
        if (!d || !h) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
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

/* Adds the pending records to the transaction: keyed ones by key hash,
 * keyless ones spread round-robin. */
static dm_err_t add_records(dm_emit_t *e, dm_error_t *err)
{
    if (!e->n) return DM_OK;
    int topic;
    dm_err_t rc =
        dm_txn_builder_topic(&e->txn, e->topic, e->partitions > 0 ? e->partitions : 1, &topic, err);
    for (size_t i = 0; i < e->n && !rc; i++) {
        const size_t *s = &e->start[i * 3];
        dm_record_t r = {.timestamp = e->ts[i],
                         .key = s[1] > s[0] ? e->bytes.data + s[0] : NULL,
                         .key_len = s[1] > s[0] ? (int32_t)(s[1] - s[0]) : -1,
                         .value = e->lent[i] ? e->lent[i] : e->bytes.data + s[1],
                         .value_len = (int32_t)(s[2] - s[1])};
        int32_t keyless = 0;
        if (e->partitions > 1 && r.key_len <= 0)
            keyless = (int32_t)(e->round_robin++ % (uint64_t)e->partitions);
        rc = dm_txn_builder_add_keyed(&e->txn, topic, &r, keyless, err);
    }
    return rc;
}

/* Adds the dead letters (partition 0 of the dead-letter topic) with the
 * reason and where each came from in headers. */
static dm_err_t add_dead(dm_emit_t *e, dm_error_t *err)
{
    if (!e->n_dead) return DM_OK;
    int topic;
    dm_err_t rc = dm_txn_builder_topic(&e->txn, e->dead_letter_topic, 1, &topic, err);
    int64_t now = dm_wall_ms();
    for (size_t i = 0; i < e->n_dead && !rc; i++) {
        const size_t *d = &e->dead[i * 4];
        dm_record_header_t *h = &e->dead_hdrs[i * 2];
        h[0] = (dm_record_header_t){DM_DLQ_REASON, (uint32_t)strlen(DM_DLQ_REASON),
                                    e->bytes.data + d[1], (int32_t)(d[2] - d[1])};
        h[1] = (dm_record_header_t){DM_DLQ_SOURCE, (uint32_t)strlen(DM_DLQ_SOURCE),
                                    e->bytes.data + d[2], (int32_t)(d[3] - d[2])};
        dm_record_t r = {.timestamp = now,
                         .key_len = -1,
                         .value = e->bytes.data + d[0],
                         .value_len = (int32_t)(d[1] - d[0]),
                         .headers = h,
                         .n_headers = 2};
        rc = dm_txn_builder_add(&e->txn, topic, 0, &r, err);
    }
    return rc;
}

dm_err_t dm_emit_commit(dm_emit_t *e, const char *group, int64_t position, dm_error_t *err)
{
    if (!dm_emit_pending(e) && !group) return DM_OK;
    uint64_t rr = e->round_robin;
    dm_tp_offset_t pos = {e->topic, 0, position};
    dm_err_t rc = add_records(e, err);
    if (!rc) rc = add_dead(e, err);
    if (!rc && group) rc = dm_txn_builder_offsets(&e->txn, group, &pos, 1, err);
    if (!rc)
        rc = dm_txn_builder_commit(&e->txn, err);
    else
        dm_txn_builder_clear(&e->txn);
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
    free(e->lent);
    free(e->ts);
    free(e->dead);
    free(e->dead_hdrs);
    dm_txn_builder_destroy(&e->txn);
    dm_emit_init(e);
}
