/* engine/state.c — keyed state in memory that spills to RocksDB; timers;
 * values as bytes. */
#include "engine/state.h"

#include <rocksdb/c.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/fs.h"
#include "core/hash.h"

/* An entry of the in-memory map. A removed key stays as a dead entry until
 * the removal is committed, so that it reaches the changelog and shadows a
 * spilled copy. */
typedef struct entry {
    struct entry *next;
    uint64_t hash;
    uint8_t *val;
    uint32_t klen, vlen, vcap;
    bool dirty, dead;
    uint8_t key[];
} entry_t;

struct dm_state {
    entry_t **buckets;
    size_t n_buckets, n_entries;
    size_t mem_bytes, spill_bytes;
    size_t accounted; /* the part of process_bytes that is this store's */
    entry_t **dirty;
    size_t n_dirty, cap_dirty;
    /* spill */
    char *dir;
    rocksdb_t *db;
    rocksdb_options_t *opts;
    rocksdb_readoptions_t *ropts;
    rocksdb_writeoptions_t *wopts;
    char *last_read; /* what dm_state_get returned from RocksDB, freed on the next call */
    size_t n_spilled;
};

/* The process-wide budget: state every store holds in memory, summed at
 * commits, and the most it may reach before committing stores spill. */
static _Atomic size_t process_bytes;
static _Atomic size_t process_budget = (size_t)1 << 30;

void dm_state_set_budget(size_t bytes)
{
    atomic_store(&process_budget, bytes);
}

size_t dm_state_process_bytes(void)
{
    return atomic_load(&process_bytes);
}

/* Brings process_bytes up to date with this store's memory use. */
static void account(dm_state_t *s)
{
    if (s->mem_bytes >= s->accounted)
        atomic_fetch_add(&process_bytes, s->mem_bytes - s->accounted);
    else
        atomic_fetch_sub(&process_bytes, s->accounted - s->mem_bytes);
    s->accounted = s->mem_bytes;
}

static size_t entry_bytes(const entry_t *e)
{
    return sizeof(*e) + e->klen + e->vcap;
}

dm_err_t dm_state_new(const char *spill_dir, size_t spill_bytes, dm_state_t **out, dm_error_t *err)
{
    *out = NULL;
    dm_state_t *s = calloc(1, sizeof(*s));
    if (!s) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    s->n_buckets = 1024;
    s->buckets = calloc(s->n_buckets, sizeof(*s->buckets));
    s->spill_bytes = spill_bytes ? spill_bytes : (size_t)64 << 20;
    if (!s->buckets || (spill_dir && !(s->dir = strdup(spill_dir)))) {
        dm_state_free(s);
        return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    }
    *out = s;
    return DM_OK;
}

static void free_last_read(dm_state_t *s)
{
    if (s->last_read) rocksdb_free(s->last_read);
    s->last_read = NULL;
}

static void close_db(dm_state_t *s)
{
    free_last_read(s);
    if (s->db) {
        rocksdb_close(s->db);
        char *e = NULL;
        rocksdb_destroy_db(s->opts, s->dir, &e);
        if (e) rocksdb_free(e);
    }
    if (s->opts) rocksdb_options_destroy(s->opts);
    if (s->ropts) rocksdb_readoptions_destroy(s->ropts);
    if (s->wopts) rocksdb_writeoptions_destroy(s->wopts);
    s->db = NULL;
    s->opts = NULL;
    s->ropts = NULL;
    s->wopts = NULL;
}

void dm_state_free(dm_state_t *s)
{
    if (!s) return;
    s->mem_bytes = 0;
    account(s);
    for (size_t b = 0; s->buckets && b < s->n_buckets; b++)
        for (entry_t *e = s->buckets[b], *next; e; e = next) {
            next = e->next;
            free(e->val);
            free(e);
        }
    close_db(s);
    free(s->buckets);
    free(s->dirty);
    free(s->dir);
    free(s);
}

/* Opens the spill database the first time it is needed, over a fresh directory:
 * its content is rebuilt from the changelog, never trusted across runs. */
static dm_err_t open_db(dm_state_t *s, dm_error_t *err)
{
    if (s->db) return DM_OK;
    if (!s->dir) return DM_OK;
    dm_err_t rc = dm_mkdirs(s->dir, false, err);
    if (rc) return rc;
    s->opts = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(s->opts, 1);
    char *e = NULL;
    rocksdb_destroy_db(s->opts, s->dir, &e);
    if (e) rocksdb_free(e), e = NULL;
    s->db = rocksdb_open(s->opts, s->dir, &e);
    if (!s->db) {
        dm_error_set(err, DM_ERR_IO, "state: opening RocksDB in %s: %s", s->dir, e ? e : "?");
        if (e) rocksdb_free(e);
        close_db(s);
        return DM_ERR_IO;
    }
    s->ropts = rocksdb_readoptions_create();
    s->wopts = rocksdb_writeoptions_create();
    rocksdb_writeoptions_disable_WAL(s->wopts, 1); /* a cache: the changelog is durable */
    return DM_OK;
}

static entry_t *find(const dm_state_t *s, const void *key, size_t klen, uint64_t h)
{
    for (entry_t *e = s->buckets[h & (s->n_buckets - 1)]; e; e = e->next)
        if (e->hash == h && e->klen == klen && !memcmp(e->key, key, klen)) return e;
    return NULL;
}

static void grow(dm_state_t *s)
{
    size_t n = s->n_buckets * 2;
    entry_t **b = calloc(n, sizeof(*b));
    if (!b) return; /* longer chains, still correct */
    for (size_t i = 0; i < s->n_buckets; i++)
        for (entry_t *e = s->buckets[i], *next; e; e = next) {
            next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    free(s->buckets);
    s->buckets = b;
    s->n_buckets = n;
}

static dm_err_t mark_dirty(dm_state_t *s, entry_t *e)
{
    if (e->dirty) return DM_OK;
    if (s->n_dirty == s->cap_dirty) {
        size_t cap = s->cap_dirty ? s->cap_dirty * 2 : 256;
        entry_t **d = realloc(s->dirty, cap * sizeof(*d));
        if (!d) return DM_ERR_NOMEM;
        s->dirty = d;
        s->cap_dirty = cap;
    }
    s->dirty[s->n_dirty++] = e;
    e->dirty = true;
    return DM_OK;
}

/* The entry for key, created (dead, no value) when absent. */
static entry_t *upsert_entry(dm_state_t *s, const void *key, size_t klen)
{
    uint64_t h = dm_hash64(key, klen);
    entry_t *e = find(s, key, klen, h);
    if (e) return e;
    if (s->n_entries >= s->n_buckets) grow(s);
    e = calloc(1, sizeof(*e) + klen);
    if (!e) return NULL;
    e->hash = h;
    e->klen = (uint32_t)klen;
    e->dead = true;
    memcpy(e->key, key, klen);
    e->next = s->buckets[h & (s->n_buckets - 1)];
    s->buckets[h & (s->n_buckets - 1)] = e;
    s->n_entries++;
    s->mem_bytes += entry_bytes(e);
    return e;
}

static void unlink_entry(dm_state_t *s, entry_t *e)
{
    entry_t **pp = &s->buckets[e->hash & (s->n_buckets - 1)];
    while (*pp != e)
        pp = &(*pp)->next;
    *pp = e->next;
    s->n_entries--;
    s->mem_bytes -= entry_bytes(e);
    free(e->val);
    free(e);
}

dm_err_t dm_state_get(dm_state_t *s, const void *key, size_t klen, const uint8_t **val,
                      size_t *vlen, bool *found, dm_error_t *err)
{
    if (!key) key = ""; /* the empty key (a group of everything) */
    *found = false;
    free_last_read(s);
    entry_t *e = find(s, key, klen, dm_hash64(key, klen));
    if (e) {
        if (e->dead) return DM_OK;
        *found = true;
        if (val) *val = e->val;
        if (vlen) *vlen = e->vlen;
        return DM_OK;
    }
    if (!s->db) return DM_OK;
    char *e2 = NULL;
    size_t len = 0;
    char *v = rocksdb_get(s->db, s->ropts, key, klen, &len, &e2);
    if (e2) {
        dm_error_set(err, DM_ERR_IO, "state: RocksDB read: %s", e2);
        rocksdb_free(e2);
        return DM_ERR_IO;
    }
    if (!v) return DM_OK;
    s->last_read = v;
    *found = true;
    if (val) *val = (const uint8_t *)v;
    if (vlen) *vlen = len;
    return DM_OK;
}

dm_err_t dm_state_put(dm_state_t *s, const void *key, size_t klen, const void *val, size_t vlen,
                      dm_error_t *err)
{
    if (!key) key = ""; /* the empty key (a group of everything) */
    free_last_read(s);
    entry_t *e = upsert_entry(s, key, klen);
    if (!e) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    if (vlen > e->vcap || !e->val) {
        uint8_t *v = realloc(e->val, vlen ? vlen : 1);
        if (!v) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
        s->mem_bytes += (vlen ? vlen : 1) - e->vcap;
        e->val = v;
        e->vcap = (uint32_t)(vlen ? vlen : 1);
    }
    if (vlen && val) memcpy(e->val, val, vlen);
    e->vlen = (uint32_t)vlen;
    e->dead = false;
    if (mark_dirty(s, e)) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    return DM_OK;
}

dm_err_t dm_state_del(dm_state_t *s, const void *key, size_t klen, dm_error_t *err)
{
    if (!key) key = ""; /* the empty key (a group of everything) */
    free_last_read(s);
    entry_t *e = find(s, key, klen, dm_hash64(key, klen));
    if (!e) {
        bool found = false;
        if (s->db) {
            char *e2 = NULL;
            size_t len;
            char *v = rocksdb_get(s->db, s->ropts, key, klen, &len, &e2);
            found = v != NULL || e2 != NULL; /* when unsure, log the removal */
            if (e2) rocksdb_free(e2);
            if (v) rocksdb_free(v);
        }
        if (!found) return DM_OK; /* nothing to remove, nothing to log */
        if (!(e = upsert_entry(s, key, klen)))
            return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    }
    e->dead = true;
    if (mark_dirty(s, e)) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    return DM_OK;
}

dm_err_t dm_state_foreach(dm_state_t *s, dm_state_fn fn, void *ctx, dm_error_t *err)
{
    free_last_read(s);
    for (size_t b = 0; b < s->n_buckets; b++)
        for (entry_t *e = s->buckets[b]; e; e = e->next)
            if (!e->dead && fn(ctx, e->key, e->klen, e->val, e->vlen)) return DM_OK;
    if (!s->db) return DM_OK;
    rocksdb_iterator_t *it = rocksdb_create_iterator(s->db, s->ropts);
    for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t kl, vl;
        const char *k = rocksdb_iter_key(it, &kl);
        const char *v = rocksdb_iter_value(it, &vl);
        if (find(s, k, kl, dm_hash64(k, kl))) continue; /* memory shadows it */
        if (fn(ctx, (const uint8_t *)k, kl, (const uint8_t *)v, vl)) break;
    }
    char *e = NULL;
    rocksdb_iter_get_error(it, &e);
    rocksdb_iter_destroy(it);
    if (e) {
        dm_error_set(err, DM_ERR_IO, "state: RocksDB iteration: %s", e);
        rocksdb_free(e);
        return DM_ERR_IO;
    }
    return DM_OK;
}

void dm_state_changes(dm_state_t *s, dm_state_fn fn, void *ctx)
{
    for (size_t i = 0; i < s->n_dirty; i++) {
        const entry_t *e = s->dirty[i];
        if (fn(ctx, e->key, e->klen, e->dead ? NULL : e->val, e->dead ? 0 : e->vlen)) break;
    }
}

size_t dm_state_n_changes(const dm_state_t *s)
{
    return s->n_dirty;
}

/* Moves every live entry to RocksDB and removes committed removals there. */
static dm_err_t spill(dm_state_t *s, dm_error_t *err)
{
    dm_err_t rc = open_db(s, err);
    if (rc || !s->db) return rc;
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    size_t moved = 0, removed = 0;
    for (size_t b = 0; b < s->n_buckets; b++)
        for (entry_t *e = s->buckets[b]; e; e = e->next) {
            if (e->dead) {
                rocksdb_writebatch_delete(wb, (const char *)e->key, e->klen);
                removed++;
            } else {
                rocksdb_writebatch_put(wb, (const char *)e->key, e->klen, (const char *)e->val,
                                       e->vlen);
                moved++;
            }
        }
    char *e2 = NULL;
    rocksdb_write(s->db, s->wopts, wb, &e2);
    rocksdb_writebatch_destroy(wb);
    if (e2) {
        dm_error_set(err, DM_ERR_IO, "state: spilling to RocksDB in %s: %s", s->dir, e2);
        rocksdb_free(e2);
        return DM_ERR_IO;
    }
    for (size_t b = 0; b < s->n_buckets; b++) {
        for (entry_t *e = s->buckets[b], *next; e; e = next) {
            next = e->next;
            free(e->val);
            free(e);
        }
        s->buckets[b] = NULL;
    }
    s->n_entries = 0;
    s->mem_bytes = 0;
    s->n_spilled += moved; /* an estimate: moved keys may have been there already */
    s->n_spilled = removed > s->n_spilled ? 0 : s->n_spilled - removed;
    return DM_OK;
}

dm_err_t dm_state_commit(dm_state_t *s, dm_error_t *err)
{
    free_last_read(s);
    for (size_t i = 0; i < s->n_dirty; i++)
        s->dirty[i]->dirty = false;
    /* Removed keys no longer need their entry unless RocksDB may hold a copy. */
    for (size_t i = 0; i < s->n_dirty; i++) {
        entry_t *e = s->dirty[i];
        if (!e->dead) continue;
        if (s->db) {
            char *e2 = NULL;
            rocksdb_delete(s->db, s->wopts, (const char *)e->key, e->klen, &e2);
            if (e2) {
                dm_error_set(err, DM_ERR_IO, "state: RocksDB delete: %s", e2);
                rocksdb_free(e2);
                s->n_dirty = 0;
                return DM_ERR_IO;
            }
        }
        unlink_entry(s, e);
    }
    s->n_dirty = 0;
    account(s);
    /* Spill past the store's own limit, or while the process is past its
     * budget (a store with little in memory is left alone: spilling it frees
     * nothing worth a RocksDB write). */
    size_t budget = atomic_load(&process_budget);
    bool over = budget && atomic_load(&process_bytes) > budget && s->mem_bytes > (64u << 10);
    dm_err_t rc = s->dir && (s->mem_bytes > s->spill_bytes || over) ? spill(s, err) : DM_OK;
    account(s);
    return rc;
}

size_t dm_state_memory_bytes(const dm_state_t *s)
{
    return s->mem_bytes;
}

size_t dm_state_spilled(const dm_state_t *s)
{
    return s->n_spilled;
}

/* ---- timers ---------------------------------------------------------------------------- */

dm_err_t dm_timers_push(dm_timers_t *h, int64_t at, const void *key, size_t klen)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        dm_timer_t *t = realloc(h->items, cap * sizeof(*t));
        if (!t) return DM_ERR_NOMEM;
        h->items = t;
        h->cap = cap;
    }
    uint8_t *k = malloc(klen ? klen : 1);
    if (!k) return DM_ERR_NOMEM;
    if (klen) memcpy(k, key, klen);
    size_t i = h->n++;
    while (i > 0 && h->items[(i - 1) / 2].at > at) {
        h->items[i] = h->items[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h->items[i] = (dm_timer_t){at, k, (uint32_t)klen};
    return DM_OK;
}

bool dm_timers_pop_due(dm_timers_t *h, int64_t now, dm_timer_t *out)
{
    if (!h->n || h->items[0].at > now) return false;
    *out = h->items[0];
    dm_timer_t last = h->items[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && h->items[c + 1].at < h->items[c].at) c++;
        if (h->items[c].at >= last.at) break;
        h->items[i] = h->items[c];
        i = c;
    }
    if (h->n) h->items[i] = last;
    return true;
}

void dm_timers_free(dm_timers_t *h)
{
    for (size_t i = 0; i < h->n; i++)
        free(h->items[i].key);
    free(h->items);
    memset(h, 0, sizeof(*h));
}

/* ---- values as bytes ------------------------------------------------------------------- */

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

dm_err_t dm_state_put_value(dm_buf_t *out, const dm_expr_value_t *v)
{
    uint8_t tag = v->null ? 0 : (uint8_t)(v->type + 1);
    dm_err_t rc = dm_buf_append_u8(out, tag);
    if (rc || v->null) return rc;
    uint8_t b[8];
    switch (v->type) {
    case DM_EXPR_BOOL: return dm_buf_append_u8(out, v->u.b);
    case DM_EXPR_LONG:
    case DM_EXPR_TIMESTAMP: put_u64(b, (uint64_t)v->u.l); return dm_buf_append(out, b, 8);
    case DM_EXPR_DOUBLE: {
        uint64_t bits;
        memcpy(&bits, &v->u.d, 8);
        put_u64(b, bits);
        return dm_buf_append(out, b, 8);
    }
    case DM_EXPR_STRING:
        put_u64(b, v->len);
        if ((rc = dm_buf_append(out, b + 4, 4))) return rc;
        return dm_buf_append(out, v->u.s, v->len);
    case DM_EXPR_NULL: break;
    }
    return DM_OK;
}

dm_err_t dm_state_get_value(const uint8_t **p, const uint8_t *end, dm_expr_value_t *v)
{
    memset(v, 0, sizeof(*v));
    if (*p >= end) return DM_ERR_CORRUPT;
    uint8_t tag = *(*p)++;
    if (tag == 0) {
        v->null = true;
        return DM_OK;
    }
    if (tag > DM_EXPR_TIMESTAMP + 1) return DM_ERR_CORRUPT;
    v->type = (dm_expr_type_t)(tag - 1);
    size_t need = v->type == DM_EXPR_BOOL ? 1 : v->type == DM_EXPR_STRING ? 4 : 8;
    if ((size_t)(end - *p) < need) return DM_ERR_CORRUPT;
    switch (v->type) {
    case DM_EXPR_BOOL: v->u.b = **p != 0; break;
    case DM_EXPR_LONG:
    case DM_EXPR_TIMESTAMP: v->u.l = (int64_t)get_u64(*p); break;
    case DM_EXPR_DOUBLE: {
        uint64_t bits = get_u64(*p);
        memcpy(&v->u.d, &bits, 8);
        break;
    }
    case DM_EXPR_STRING: {
        uint32_t len =
            (uint32_t)(*p)[0] << 24 | (uint32_t)(*p)[1] << 16 | (uint32_t)(*p)[2] << 8 | (*p)[3];
        if ((size_t)(end - *p) < 4 + (size_t)len) return DM_ERR_CORRUPT;
        v->len = len;
        v->u.s = (const char *)*p + 4;
        need = 4 + len;
        break;
    }
    case DM_EXPR_NULL: break;
    }
    *p += need;
    return DM_OK;
}

int dm_state_value_cmp(const dm_expr_value_t *a, const dm_expr_value_t *b)
{
    if (a->null || b->null) return (int)b->null - (int)a->null;
    switch (a->type) {
    case DM_EXPR_BOOL: return (int)a->u.b - (int)b->u.b;
    case DM_EXPR_LONG:
    case DM_EXPR_TIMESTAMP: return a->u.l < b->u.l ? -1 : a->u.l > b->u.l;
    case DM_EXPR_DOUBLE: return a->u.d < b->u.d ? -1 : a->u.d > b->u.d;
    case DM_EXPR_STRING: {
        uint32_t n = a->len < b->len ? a->len : b->len;
        int c = memcmp(a->u.s, b->u.s, n);
        return c ? c : (a->len < b->len ? -1 : a->len > b->len);
    }
    case DM_EXPR_NULL: break;
    }
    return 0;
}
