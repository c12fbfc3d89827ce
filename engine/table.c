/* engine/table.c — latest value per key, behind a read–write lock. */
#include "engine/table.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "schema/wire.h"

typedef struct entry {
    struct entry *next;
    uint64_t hash;
    uint32_t key_len, val_len;
    uint8_t data[]; /* key bytes, then value bytes */
} entry_t;

struct dm_table {
    char *name;
    char *key_field;
    const dm_avro_schema_t *schema;
    int key_index;
    dm_avro_codec_t *key_codec; /* decodes only the key field of a value */
    pthread_rwlock_t lock;
    entry_t **buckets;
    size_t n_buckets, n;
    dm_arena_t scratch; /* decoding, under the write lock */
    dm_buf_t key;
};

dm_err_t dm_table_new(const char *name, const dm_avro_schema_t *schema, const char *key_field,
                      dm_table_t **out, dm_error_t *err)
{
    *out = NULL;
    if (schema->root->type != DM_AVRO_RECORD)
        return dm_error_set(err, DM_ERR_INVALID, "table %s: the source's schema is not a record",
                            name);
    int idx = dm_avro_field_index(schema->root, key_field);
    if (idx < 0)
        return dm_error_set(err, DM_ERR_INVALID, "table %s: no key field '%s' in %s", name,
                            key_field, schema->root->name);
    dm_table_t *t = calloc(1, sizeof(*t));
    if (!t) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    t->name = strdup(name);
    t->key_field = strdup(key_field);
    t->schema = schema;
    t->key_index = idx;
    t->n_buckets = 1024;
    t->buckets = calloc(t->n_buckets, sizeof(*t->buckets));
    pthread_rwlock_init(&t->lock, NULL);
    dm_arena_init(&t->scratch, 0);
    const char *paths[] = {key_field};
    dm_err_t rc = !t->name || !t->key_field || !t->buckets ? DM_ERR_NOMEM : DM_OK;
    if (!rc) rc = dm_avro_codec_new(schema, NULL, paths, 1, &t->key_codec, err);
    if (rc) {
        dm_table_free(t);
        return rc == DM_ERR_NOMEM ? dm_error_set(err, rc, "out of memory") : rc;
    }
    *out = t;
    return DM_OK;
}

void dm_table_free(dm_table_t *t)
{
    if (!t) return;
    for (size_t i = 0; t->buckets && i < t->n_buckets; i++)
        for (entry_t *e = t->buckets[i], *next; e; e = next) {
            next = e->next;
            free(e);
        }
    free(t->buckets);
    dm_avro_codec_free(t->key_codec);
    pthread_rwlock_destroy(&t->lock);
    dm_arena_destroy(&t->scratch);
    dm_buf_free(&t->key);
    free(t->name);
    free(t->key_field);
    free(t);
}

const char *dm_table_name(const dm_table_t *t)
{
    return t->name;
}

const dm_avro_schema_t *dm_table_schema(const dm_table_t *t)
{
    return t->schema;
}

const char *dm_table_key_field(const dm_table_t *t)
{
    return t->key_field;
}

size_t dm_table_size(dm_table_t *t)
{
    pthread_rwlock_rdlock(&t->lock);
    size_t n = t->n;
    pthread_rwlock_unlock(&t->lock);
    return n;
}

dm_err_t dm_table_key_text(const dm_avro_node_t *node, const dm_avro_value_t *v, dm_buf_t *out)
{
    dm_buf_reset(out);
    switch (v->type) {
    case DM_AVRO_INT: return dm_buf_printf(out, "%d", v->u.i);
    case DM_AVRO_LONG: return dm_buf_printf(out, "%lld", (long long)v->u.l);
    case DM_AVRO_STRING:
    case DM_AVRO_BYTES: return dm_buf_append(out, v->u.p, v->len);
    case DM_AVRO_ENUM: {
        const dm_avro_node_t *n = node;
        if (n->type == DM_AVRO_UNION && v->branch < n->n_branches) n = n->branches[v->branch];
        if (n->type == DM_AVRO_ENUM && (uint32_t)v->u.i < n->n_symbols)
            return dm_buf_append_str(out, n->symbols[v->u.i]);
        return dm_buf_printf(out, "%d", v->u.i);
    }
    default: return dm_avro_to_json(node, v, DM_AVRO_JSON_AVRO, out, NULL);
    }
}

/* Finds the entry for key; *slot is where it hangs (or would). Lock held. */
static entry_t **find(dm_table_t *t, const char *key, size_t len, uint64_t h)
{
    entry_t **pp = &t->buckets[h & (t->n_buckets - 1)];
    while (*pp && !((*pp)->hash == h && (*pp)->key_len == len && !memcmp((*pp)->data, key, len)))
        pp = &(*pp)->next;
    return pp;
}

static void grow(dm_table_t *t)
{
    size_t n = t->n_buckets * 2;
    entry_t **b = calloc(n, sizeof(*b));
    if (!b) return; /* keep the longer chains */
    for (size_t i = 0; i < t->n_buckets; i++)
        for (entry_t *e = t->buckets[i], *next; e; e = next) {
            next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    free(t->buckets);
    t->buckets = b;
    t->n_buckets = n;
}

/* Stores value under key. Write lock held. */
static dm_err_t put_locked(dm_table_t *t, const char *key, size_t klen, const uint8_t *val,
                           size_t vlen)
{
    uint64_t h = dm_hash64(key, klen);
    entry_t **pp = find(t, key, klen, h);
    entry_t *e = malloc(sizeof(*e) + klen + vlen);
    if (!e) return DM_ERR_NOMEM;
    e->hash = h;
    e->key_len = (uint32_t)klen;
    e->val_len = (uint32_t)vlen;
    memcpy(e->data, key, klen);
    memcpy(e->data + klen, val, vlen);
    if (*pp) {
        e->next = (*pp)->next;
        free(*pp);
    } else {
        e->next = NULL;
        t->n++;
    }
    *pp = e;
    if (t->n > t->n_buckets) grow(t);
    return DM_OK;
}

dm_err_t dm_table_put(dm_table_t *t, const uint8_t *avro, size_t len, dm_error_t *err)
{
    pthread_rwlock_wrlock(&t->lock);
    dm_arena_reset(&t->scratch);
    dm_avro_value_t v;
    dm_err_t rc = dm_avro_decode(t->key_codec, avro, len, NULL, &t->scratch, &v, err);
    if (!rc) {
        const dm_avro_field_t *f = &t->schema->root->fields[t->key_index];
        rc = dm_table_key_text(f->type, &v.u.v[t->key_index], &t->key);
        if (!rc) rc = put_locked(t, (const char *)t->key.data, t->key.len, avro, len);
        if (rc == DM_ERR_NOMEM) dm_error_set(err, rc, "table %s: out of memory", t->name);
    } else {
        dm_error_prefix(err, "table %s", t->name);
    }
    pthread_rwlock_unlock(&t->lock);
    return rc;
}

void dm_table_remove(dm_table_t *t, const char *key, size_t key_len)
{
    pthread_rwlock_wrlock(&t->lock);
    entry_t **pp = find(t, key, key_len, dm_hash64(key, key_len));
    if (*pp) {
        entry_t *e = *pp;
        *pp = e->next;
        free(e);
        t->n--;
    }
    pthread_rwlock_unlock(&t->lock);
}

dm_err_t dm_table_get(dm_table_t *t, const char *key, size_t key_len, dm_buf_t *out, bool *found)
{
    pthread_rwlock_rdlock(&t->lock);
    entry_t **pp = find(t, key, key_len, dm_hash64(key, key_len));
    dm_err_t rc = DM_OK;
    *found = *pp != NULL;
    dm_buf_reset(out);
    if (*found) rc = dm_buf_append(out, (*pp)->data + (*pp)->key_len, (*pp)->val_len);
    pthread_rwlock_unlock(&t->lock);
    return rc;
}

dm_err_t dm_table_apply(dm_table_t *t, const dm_record_t *rec, dm_error_t *err)
{
    uint32_t id;
    if (rec->value_len >= 0) {
        dm_err_t rc = dm_wire_get_header(rec->value, (size_t)rec->value_len, &id);
        if (rc)
            return dm_error_set(err, DM_ERR_SCHEMA_MISMATCH,
                                "table %s: offset %lld: value is not in the wire format", t->name,
                                (long long)rec->offset);
        return dm_table_put(t, rec->value + DM_WIRE_HEADER, (size_t)rec->value_len - DM_WIRE_HEADER,
                            err);
    }
    /* A tombstone: the key record's first field is the key. */
    if (rec->key_len < DM_WIRE_HEADER || dm_wire_get_header(rec->key, (size_t)rec->key_len, &id))
        return dm_error_set(err, DM_ERR_SCHEMA_MISMATCH,
                            "table %s: offset %lld: tombstone without a wire-format key", t->name,
                            (long long)rec->offset);
    const dm_avro_node_t *kt = t->schema->root->fields[t->key_index].type;
    pthread_rwlock_wrlock(&t->lock);
    dm_arena_reset(&t->scratch);
    dm_avro_value_t v;
    dm_err_t rc =
        dm_avro_decode_node(kt, rec->key + DM_WIRE_HEADER, (size_t)rec->key_len - DM_WIRE_HEADER,
                            NULL, &t->scratch, &v, err);
    if (!rc) rc = dm_table_key_text(kt, &v, &t->key);
    pthread_rwlock_unlock(&t->lock);
    if (rc) return rc;
    /* The key record holds one field: decoding its type directly reads that field. */
    dm_table_remove(t, (const char *)t->key.data, t->key.len);
    return DM_OK;
}
