/* transport/txn_builder.c — group records by (topic, partition), commit them with offsets
 * in one transaction. */
#include "transport/txn_builder.h"

#include <stdlib.h>
#include <string.h>

#include "core/hash.h"

int32_t dm_txn_key_partition(const void *key, size_t len, int32_t partitions)
{
    if (partitions <= 1) return 0;
    return (int32_t)(dm_hash64(key, len) % (uint64_t)partitions);
}

void dm_txn_builder_init(dm_txn_builder_t *b, dm_transport_t *t)
{
    memset(b, 0, sizeof(*b));
    b->t = t;
}

void dm_txn_builder_destroy(dm_txn_builder_t *b)
{
    for (size_t i = 0; i < b->n_topics; i++) {
        free(b->topics[i].name);
        free(b->topics[i].slot);
    }
    free(b->topics);
    for (size_t i = 0; i < b->cap_slots; i++)
        free(b->slots[i].recs);
    free(b->slots);
    free(b->offsets);
    memset(b, 0, sizeof(*b));
}

/* Grows *p (of *cap elements of size) to hold at least need; counts the growth. */
static int grow(dm_txn_builder_t *b, void **p, size_t *cap, size_t need, size_t size, size_t first)
{
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : first;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, c * size);
    if (!q) return -1;
    *p = q;
    *cap = c;
    b->allocations++;
    return 0;
}

dm_err_t dm_txn_builder_topic(dm_txn_builder_t *b, const char *name, int32_t partitions, int *topic,
                              dm_error_t *err)
{
    if (partitions < 1)
        return dm_error_set(err, DM_ERR_INVALID, "topic %s: %d partitions", name, partitions);
    for (size_t i = 0; i < b->n_topics; i++) {
        dm_txn_topic_t *tp = &b->topics[i];
        if (strcmp(tp->name, name)) continue;
        if (partitions > tp->partitions) {
            int32_t *slot = realloc(tp->slot, (size_t)partitions * sizeof(*slot));
            if (!slot) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
            for (int32_t p = tp->partitions; p < partitions; p++)
                slot[p] = -1;
            tp->slot = slot;
            tp->partitions = partitions;
            b->allocations++;
        }
        *topic = (int)i;
        return DM_OK;
    }
    if (grow(b, (void **)&b->topics, &b->cap_topics, b->n_topics + 1, sizeof(*b->topics), 4))
        return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    dm_txn_topic_t *tp = &b->topics[b->n_topics];
    tp->name = strdup(name);
    tp->slot = malloc((size_t)partitions * sizeof(*tp->slot));
    if (!tp->name || !tp->slot) {
        free(tp->name);
        free(tp->slot);
        return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    }
    for (int32_t p = 0; p < partitions; p++)
        tp->slot[p] = -1;
    tp->partitions = partitions;
    *topic = (int)b->n_topics++;
    return DM_OK;
}

/* The slot of (topic, partition) in this transaction, opened on first use. */
static dm_txn_slot_t *slot_of(dm_txn_builder_t *b, int topic, int32_t partition, dm_error_t *err)
{
    if (topic < 0 || (size_t)topic >= b->n_topics) {
        dm_error_set(err, DM_ERR_INVALID, "transaction: no topic %d declared", topic);
        return NULL;
    }
    dm_txn_topic_t *tp = &b->topics[topic];
    if (partition < 0 || partition >= tp->partitions) {
        dm_error_set(err, DM_ERR_LOG_PARTITION, "topic %s has no partition %d (it has %d)",
                     tp->name, partition, tp->partitions);
        return NULL;
    }
    int32_t s = tp->slot[partition];
    if (s >= 0) return &b->slots[s];
    if (b->n_slots == b->cap_slots) {
        size_t cap = b->cap_slots;
        if (grow(b, (void **)&b->slots, &b->cap_slots, b->n_slots + 1, sizeof(*b->slots), 8)) {
            dm_error_set(err, DM_ERR_NOMEM, "out of memory");
            return NULL;
        }
        memset(&b->slots[cap], 0, (b->cap_slots - cap) * sizeof(*b->slots));
    }
    dm_txn_slot_t *sl = &b->slots[b->n_slots]; /* its recs array is kept from earlier use */
    sl->topic = topic;
    sl->partition = partition;
    sl->n = 0;
    sl->lent = NULL;
    sl->n_lent = 0;
    tp->slot[partition] = (int32_t)b->n_slots++;
    return sl;
}

/* Room for more records in a slot; a lent batch becomes copies first (order kept). */
static dm_err_t reserve(dm_txn_builder_t *b, dm_txn_slot_t *sl, size_t more, dm_error_t *err)
{
    size_t need = sl->n + sl->n_lent + more;
    if (grow(b, (void **)&sl->recs, &sl->cap, need, sizeof(*sl->recs), 64))
        return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    if (sl->n_lent) {
        memcpy(sl->recs, sl->lent, sl->n_lent * sizeof(*sl->recs));
        sl->n = sl->n_lent;
        sl->lent = NULL;
        sl->n_lent = 0;
    }
    return DM_OK;
}

dm_err_t dm_txn_builder_add(dm_txn_builder_t *b, int topic, int32_t partition,
                            const dm_record_t *rec, dm_error_t *err)
{
    dm_txn_slot_t *sl = slot_of(b, topic, partition, err);
    if (!sl) return err ? err->code : DM_ERR_INVALID;
    if ((sl->n_lent || sl->n == sl->cap) && reserve(b, sl, 1, err)) return err->code;
    sl->recs[sl->n++] = *rec;
    b->n_records++;
    return DM_OK;
}

dm_err_t dm_txn_builder_add_keyed(dm_txn_builder_t *b, int topic, const dm_record_t *rec,
                                  int32_t keyless, dm_error_t *err)
{
    int32_t p = keyless;
    if (rec->key && rec->key_len >= 0 && topic >= 0 && (size_t)topic < b->n_topics)
        p = dm_txn_key_partition(rec->key, (size_t)rec->key_len, b->topics[topic].partitions);
    return dm_txn_builder_add(b, topic, p, rec, err);
}

dm_err_t dm_txn_builder_add_batch(dm_txn_builder_t *b, int topic, int32_t partition,
                                  const dm_record_t *recs, size_t n, dm_error_t *err)
{
    if (!n) return DM_OK;
    dm_txn_slot_t *sl = slot_of(b, topic, partition, err);
    if (!sl) return err ? err->code : DM_ERR_INVALID;
    b->n_records += n;
    if (!sl->n && !sl->n_lent) { /* the common case: one batch per partition, not copied */
        sl->lent = recs;
        sl->n_lent = n;
        return DM_OK;
    }
    if (reserve(b, sl, n, err)) {
        b->n_records -= n;
        return err->code;
    }
    memcpy(sl->recs + sl->n, recs, n * sizeof(*recs));
    sl->n += n;
    return DM_OK;
}

dm_err_t dm_txn_builder_offsets(dm_txn_builder_t *b, const char *group,
                                const dm_tp_offset_t *offsets, size_t n, dm_error_t *err)
{
    if (grow(b, (void **)&b->offsets, &b->cap_offsets, b->n_offsets + n, sizeof(*b->offsets), 4))
        return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        b->offsets[b->n_offsets++] = (dm_txn_group_offset_t){group, offsets[i]};
    return DM_OK;
}

size_t dm_txn_builder_records(const dm_txn_builder_t *b)
{
    return b->n_records;
}

void dm_txn_builder_clear(dm_txn_builder_t *b)
{
    for (size_t i = 0; i < b->n_slots; i++) {
        dm_txn_slot_t *sl = &b->slots[i];
        b->topics[sl->topic].slot[sl->partition] = -1;
        sl->n = 0;
        sl->lent = NULL;
        sl->n_lent = 0;
    }
    b->n_slots = 0;
    b->n_offsets = 0;
    b->n_records = 0;
}

/* The produces and offsets of the transaction, in order. */
static dm_err_t fill(dm_txn_builder_t *b, dm_transport_txn_t *txn, dm_error_t *err)
{
    for (size_t i = 0; i < b->n_slots; i++) {
        const dm_txn_slot_t *sl = &b->slots[i];
        const dm_record_t *recs = sl->n_lent ? sl->lent : sl->recs;
        size_t n = sl->n_lent ? sl->n_lent : sl->n;
        const char *topic = b->topics[sl->topic].name;
        dm_err_t rc = dm_transport_txn_produce(txn, topic, sl->partition, recs, n, err);
        if (rc) return dm_error_prefix(err, "producing to %s/%d", topic, sl->partition);
    }
    for (size_t i = 0; i < b->n_offsets;) { /* one call per run of the same group */
        size_t j = i + 1;
        while (j < b->n_offsets && b->offsets[j].group == b->offsets[i].group)
            j++;
        dm_tp_offset_t run[16];
        for (size_t k = i; k < j; k += 16) {
            size_t m = j - k < 16 ? j - k : 16;
            for (size_t q = 0; q < m; q++)
                run[q] = b->offsets[k + q].off;
            dm_err_t rc = dm_transport_txn_offsets(txn, b->offsets[i].group, run, m, err);
            if (rc) return dm_error_prefix(err, "offsets of group %s", b->offsets[i].group);
        }
        i = j;
    }
    return DM_OK;
}

dm_err_t dm_txn_builder_commit(dm_txn_builder_t *b, dm_error_t *err)
{
    if (!b->n_slots && !b->n_offsets) return DM_OK;
    dm_transport_txn_t *txn = NULL;
    dm_err_t rc = dm_transport_txn_begin(b->t, &txn, err);
    if (!rc) rc = fill(b, txn, err);
    if (txn) {
        if (rc)
            dm_transport_txn_abort(txn);
        else
            rc = dm_transport_txn_commit(txn, err);
    }
    dm_txn_builder_clear(b);
    return rc;
}
