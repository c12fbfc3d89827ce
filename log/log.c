/* log/log.c — the log of a data directory: open/close, topics, groups, transactions and
 * the commit path with group commit, and the background thread.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/hash.h"
#include "core/log.h"
#include "log/internal.h"

/* ==== names and defaults ================================================================ */

dm_err_t dm_log_topic_name_check(const char *name, dm_error_t *err)
{
    if (!name || !*name) return dm_error_set(err, DM_ERR_LOG_BAD_NAME, "topic name is empty");
    size_t l = strlen(name);
    if (l > DM_LOG_TOPIC_NAME_MAX)
        return dm_error_set(err, DM_ERR_LOG_BAD_NAME, "topic name is %zu characters (max %d)", l,
                            DM_LOG_TOPIC_NAME_MAX);
    if (!strcmp(name, ".") || !strcmp(name, ".."))
        return dm_error_set(err, DM_ERR_LOG_BAD_NAME, "topic name '%s' is not allowed", name);
    for (size_t i = 0; i < l; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return dm_error_set(err, DM_ERR_LOG_BAD_NAME,
                                "topic name '%s': character %zu ('%c') is not one of "
                                "[A-Za-z0-9._-]",
                                name, i + 1, (c >= 32 && c < 127) ? c : '?');
    }
    return DM_OK;
}

static dm_err_t group_name_check(const char *g, dm_error_t *err)
{
    size_t l = g ? strlen(g) : 0;
    if (l == 0 || l > 255)
        return dm_error_set(err, DM_ERR_LOG_BAD_NAME, "group name must be 1..255 bytes");
    return DM_OK;
}

const char *dm_log_fsync_name(dm_log_fsync_t f)
{
    switch (f) {
    case DM_LOG_FSYNC_ALWAYS: return "always";
    case DM_LOG_FSYNC_INTERVAL: return "interval";
    case DM_LOG_FSYNC_NEVER: return "never";
    }
    return "?";
}

int dm_log_fsync_parse(const char *name)
{
    if (!strcmp(name, "always")) return DM_LOG_FSYNC_ALWAYS;
    if (!strcmp(name, "interval")) return DM_LOG_FSYNC_INTERVAL;
    if (!strcmp(name, "never")) return DM_LOG_FSYNC_NEVER;
    return -1;
}

static void conf_defaults(dm_log_topic_conf_t *c)
{
    if (c->partitions <= 0) c->partitions = 1;
    if (c->retention_ms == 0) c->retention_ms = -1;
    if (c->retention_bytes == 0) c->retention_bytes = -1;
    if (c->delete_retention_ms <= 0) c->delete_retention_ms = 86400000;
    if (c->flush_ms <= 0) c->flush_ms = 1000;
    if (c->segment_bytes <= 0) c->segment_bytes = 64ll << 20;
    if (c->segment_ms <= 0) c->segment_ms = 7ll * 86400000;
}

/* ==== topics table ======================================================================== */

static uint32_t name_hash(const char *s)
{
    return (uint32_t)dm_hash64(s, strlen(s));
}

static dm_topic_t *find_locked(dm_log_t *log, const char *name)
{
    if (!log->n_buckets) return NULL;
    for (dm_topic_t *t = log->buckets[name_hash(name) & (log->n_buckets - 1)]; t; t = t->hnext)
        if (!strcmp(t->name, name)) return t;
    return NULL;
}

static dm_topic_t *find_topic(dm_log_t *log, const char *name, dm_error_t *err)
{
    pthread_rwlock_rdlock(&log->topics_lock);
    dm_topic_t *t = name ? find_locked(log, name) : NULL;
    pthread_rwlock_unlock(&log->topics_lock);
    if (!t)
        dm_error_set(err, DM_ERR_LOG_TOPIC_NOT_FOUND, "topic=%s: no such topic",
                     name ? name : "(null)");
    return t;
}

static dm_partition_t *find_partition(dm_log_t *log, const char *topic, int32_t partition,
                                      dm_error_t *err)
{
    dm_topic_t *t = find_topic(log, topic, err);
    if (!t) return NULL;
    if (partition < 0 || partition >= t->conf.partitions) {
        dm_error_set(err, DM_ERR_LOG_PARTITION, "topic=%s: no partition %d (it has %d)", topic,
                     partition, t->conf.partitions);
        return NULL;
    }
    return &t->parts[partition];
}

dm_topic_t *dm_log_topic_by_id(dm_log_t *log, uint32_t id)
{
    return id < log->n_ids ? log->by_id[id] : NULL;
}

dm_topic_t *dm_log_topic_add(dm_log_t *log, uint32_t id, const dm_log_topic_conf_t *conf,
                             int64_t created_ms)
{
    dm_topic_t *t = calloc(1, sizeof(*t));
    if (!t) return NULL;
    t->id = id;
    t->name = strdup(conf->name);
    t->subject = conf->schema_subject ? strdup(conf->schema_subject) : NULL;
    t->conf = *conf;
    conf_defaults(&t->conf);
    t->conf.name = t->name;
    t->conf.schema_subject = t->subject;
    t->created_ms = created_ms;
    t->parts = calloc((size_t)t->conf.partitions, sizeof(dm_partition_t));
    if (!t->name || !t->parts) goto fail;
    for (int32_t i = 0; i < t->conf.partitions; i++) {
        dm_partition_t *p = &t->parts[i];
        p->topic = t;
        p->id = i;
        p->crc_end = -1;
        p->tomb_min_ts = INT64_MAX;
        if (asprintf(&p->dir, "%s/topics/%s.%u-%d", log->dir, t->name, id, i) < 0) {
            p->dir = NULL;
            goto fail;
        }
        pthread_mutex_init(&p->open_mu, NULL);
        pthread_rwlock_init(&p->seg_lock, NULL);
        pthread_mutex_init(&p->mu, NULL);
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* timeouts ignore clock jumps */
        pthread_cond_init(&p->cond, &ca);
        pthread_condattr_destroy(&ca);
    }
    pthread_rwlock_wrlock(&log->topics_lock);
    if (id >= log->cap_ids) {
        uint32_t ncap = log->cap_ids ? log->cap_ids : 64;
        while (ncap <= id)
            ncap *= 2;
        dm_topic_t **n = realloc(log->by_id, ncap * sizeof(*n));
        if (!n) {
            pthread_rwlock_unlock(&log->topics_lock);
            goto fail;
        }
        memset(n + log->cap_ids, 0, (ncap - log->cap_ids) * sizeof(*n));
        log->by_id = n;
        log->cap_ids = ncap;
    }
    if (log->n_live + 1 > log->n_buckets) {
        uint32_t nb = log->n_buckets ? log->n_buckets * 2 : 1024;
        dm_topic_t **b = calloc(nb, sizeof(*b));
        if (!b) {
            pthread_rwlock_unlock(&log->topics_lock);
            goto fail;
        }
        for (uint32_t i = 0; i < log->n_buckets; i++)
            for (dm_topic_t *x = log->buckets[i], *nx; x; x = nx) {
                nx = x->hnext;
                uint32_t h = name_hash(x->name) & (nb - 1);
                x->hnext = b[h];
                b[h] = x;
            }
        free(log->buckets);
        log->buckets = b;
        log->n_buckets = nb;
    }
    uint32_t h = name_hash(t->name) & (log->n_buckets - 1);
    t->hnext = log->buckets[h];
    log->buckets[h] = t;
    log->n_live++;
    log->by_id[id] = t;
    if (id >= log->n_ids) log->n_ids = id + 1;
    pthread_rwlock_unlock(&log->topics_lock);
    return t;
fail:
    if (t->parts)
        for (int32_t i = 0; i < t->conf.partitions; i++)
            free(t->parts[i].dir);
    free(t->parts);
    free(t->name);
    free(t->subject);
    free(t);
    return NULL;
}

void dm_log_topic_unlink(dm_log_t *log, dm_topic_t *t)
{
    pthread_rwlock_wrlock(&log->topics_lock);
    dm_topic_t **pp = &log->buckets[name_hash(t->name) & (log->n_buckets - 1)];
    while (*pp && *pp != t)
        pp = &(*pp)->hnext;
    if (*pp) {
        *pp = t->hnext;
        log->n_live--;
    }
    t->deleted = true;
    pthread_rwlock_unlock(&log->topics_lock);
}

/* ==== groups ================================================================================ */

static uint64_t group_key_hash(const char *g, size_t gl, uint32_t tid, int32_t pid)
{
    return dm_hash64_seed(g, gl, ((uint64_t)tid << 32) ^ (uint32_t)pid);
}

void dm_log_group_set(dm_log_t *log, const char *group, size_t glen, uint32_t topic_id,
                      int32_t partition, int64_t offset)
{
    pthread_mutex_lock(&log->groups_mu);
    if (log->n_groups + 1 > log->n_gbuckets * 2) {
        uint32_t nb = log->n_gbuckets ? log->n_gbuckets * 2 : 256;
        dm_group_off_t **b = calloc(nb, sizeof(*b));
        if (b) {
            for (uint32_t i = 0; i < log->n_gbuckets; i++)
                for (dm_group_off_t *x = log->gbuckets[i], *nx; x; x = nx) {
                    nx = x->next;
                    uint64_t h =
                        group_key_hash(x->group, strlen(x->group), x->topic_id, x->partition);
                    x->next = b[h & (nb - 1)];
                    b[h & (nb - 1)] = x;
                }
            free(log->gbuckets);
            log->gbuckets = b;
            log->n_gbuckets = nb;
        }
    }
    if (!log->n_gbuckets) {
        pthread_mutex_unlock(&log->groups_mu);
        return;
    }
    uint64_t h = group_key_hash(group, glen, topic_id, partition) & (log->n_gbuckets - 1);
    for (dm_group_off_t *g = log->gbuckets[h]; g; g = g->next)
        if (g->topic_id == topic_id && g->partition == partition && strlen(g->group) == glen &&
            !memcmp(g->group, group, glen)) {
            g->offset = offset;
            pthread_mutex_unlock(&log->groups_mu);
            return;
        }
    dm_group_off_t *g = calloc(1, sizeof(*g));
    if (g) g->group = strndup(group, glen);
    if (g && g->group) {
        g->topic_id = topic_id;
        g->partition = partition;
        g->offset = offset;
        g->next = log->gbuckets[h];
        log->gbuckets[h] = g;
        log->n_groups++;
    } else {
        free(g);
    }
    pthread_mutex_unlock(&log->groups_mu);
}

dm_err_t dm_log_group_offset(dm_log_t *log, const char *group, const char *topic, int32_t partition,
                             int64_t *next_offset, dm_error_t *err)
{
    if (!find_partition(log, topic, partition, err)) return err ? err->code : DM_ERR_NOT_FOUND;
    dm_topic_t *t = find_topic(log, topic, err);
    size_t gl = strlen(group);
    pthread_mutex_lock(&log->groups_mu);
    if (log->n_gbuckets) {
        uint64_t h = group_key_hash(group, gl, t->id, partition) & (log->n_gbuckets - 1);
        for (dm_group_off_t *g = log->gbuckets[h]; g; g = g->next)
            if (g->topic_id == t->id && g->partition == partition && !strcmp(g->group, group)) {
                *next_offset = g->offset;
                pthread_mutex_unlock(&log->groups_mu);
                return DM_OK;
            }
    }
    pthread_mutex_unlock(&log->groups_mu);
    return dm_error_set(err, DM_ERR_NOT_FOUND,
                        "group=%s topic=%s partition=%d: no committed offset", group, topic,
                        partition);
}

/* ==== group commit ========================================================================== */

/* Takes the dirty list into log->sync_buf. Caller holds commit_mu. */
static size_t take_dirty(dm_log_t *log)
{
    size_t n = 0;
    for (dm_partition_t *p = log->dirty_head; p; p = p->dirty_next)
        n++;
    if (n > log->sync_cap) {
        dm_partition_t **nb = realloc(log->sync_buf, n * sizeof(*nb));
        if (!nb) return SIZE_MAX;
        log->sync_buf = nb;
        log->sync_cap = n;
    }
    n = 0;
    for (dm_partition_t *p = log->dirty_head; p; p = p->dirty_next) {
        p->dirty = false;
        dm_partition_flush_index(log, p);
        log->sync_buf[n++] = p;
    }
    log->dirty_head = NULL;
    return n;
}

/* fsyncs the partitions taken by take_dirty. Past a few dozen files one syncfs(2) of the
 * file system is much cheaper than a fdatasync per file. Caller owns log->syncing. */
static dm_err_t sync_partitions(dm_log_t *log, size_t n, dm_error_t *err)
{
    if (n > 32) {
        if (syncfs(log->journal_fd))
            return dm_error_set(err, DM_ERR_IO, "syncfs %s: %s", log->dir, strerror(errno));
        return DM_OK;
    }
    for (size_t i = 0; i < n; i++) {
        dm_err_t rc = dm_partition_fsync(log, log->sync_buf[i], err);
        if (rc) return rc;
    }
    return DM_OK;
}

/* Makes every journal record up to lsn durable, fsyncing the data of every dirty partition
 * first: one caller fsyncs for all who wait meanwhile (group commit). force: run a round
 * even when lsn is durable (dirty data without a journal record). Any thread. */
static dm_err_t wait_durable_ex(dm_log_t *log, uint64_t lsn, bool force, dm_error_t *err)
{
    for (;;) {
        pthread_mutex_lock(&log->sync_mu);
        if (log->sync_error) {
            dm_err_t e = log->sync_error;
            pthread_mutex_unlock(&log->sync_mu);
            return dm_error_set(err, e, "an earlier fsync of %s failed; the log is read-only",
                                log->dir);
        }
        if (log->durable_lsn >= lsn && !force) {
            pthread_mutex_unlock(&log->sync_mu);
            return DM_OK;
        }
        if (log->syncing) {
            pthread_cond_wait(&log->sync_cond, &log->sync_mu);
            pthread_mutex_unlock(&log->sync_mu);
            continue;
        }
        pthread_mutex_unlock(&log->sync_mu);
        pthread_mutex_lock(&log->commit_mu);
        pthread_mutex_lock(&log->sync_mu);
        if (log->syncing || (log->durable_lsn >= lsn && !force)) {
            pthread_mutex_unlock(&log->sync_mu);
            pthread_mutex_unlock(&log->commit_mu);
            continue;
        }
        log->syncing = true;
        uint64_t target = log->lsn;
        size_t n = take_dirty(log);
        int jfd = log->journal_fd;
        pthread_mutex_unlock(&log->sync_mu);
        pthread_mutex_unlock(&log->commit_mu);

        dm_err_t rc = n == SIZE_MAX ? dm_error_set(err, DM_ERR_NOMEM, "sync list")
                                    : sync_partitions(log, n, err);
        if (!rc && fdatasync(jfd))
            rc = dm_error_set(err, DM_ERR_IO, "fsync %s/journal: %s", log->dir, strerror(errno));

        pthread_mutex_lock(&log->sync_mu);
        log->syncing = false;
        if (rc)
            log->sync_error = rc;
        else if (target > log->durable_lsn)
            log->durable_lsn = target;
        pthread_cond_broadcast(&log->sync_cond);
        pthread_mutex_unlock(&log->sync_mu);
        return rc;
    }
}

static dm_err_t wait_durable(dm_log_t *log, uint64_t lsn, dm_error_t *err)
{
    return wait_durable_ex(log, lsn, false, err);
}

dm_err_t dm_log_sync_all(dm_log_t *log, dm_error_t *err)
{
    pthread_mutex_lock(&log->commit_mu);
    uint64_t lsn = log->lsn;
    bool dirty = log->dirty_head != NULL;
    pthread_mutex_unlock(&log->commit_mu);
    return wait_durable_ex(log, lsn, dirty, err);
}

/* Rewrites the journal as a snapshot. Caller holds commit_mu. */
static dm_err_t checkpoint_locked(dm_log_t *log, dm_error_t *err)
{
    pthread_mutex_lock(&log->sync_mu);
    while (log->syncing)
        pthread_cond_wait(&log->sync_cond, &log->sync_mu);
    log->syncing = true;
    pthread_mutex_unlock(&log->sync_mu);
    size_t n = take_dirty(log);
    dm_err_t rc =
        n == SIZE_MAX ? dm_error_set(err, DM_ERR_NOMEM, "sync list") : sync_partitions(log, n, err);
    if (!rc) rc = dm_journal_checkpoint(log, err);
    pthread_mutex_lock(&log->sync_mu);
    log->syncing = false;
    if (!rc) log->durable_lsn = log->lsn;
    pthread_cond_broadcast(&log->sync_cond);
    pthread_mutex_unlock(&log->sync_mu);
    return rc;
}

/* ==== transactions ============================================================================ */

typedef struct txn_part {
    dm_partition_t *p;
    dm_buf_t data;
    int64_t start, end;
} txn_part_t;

typedef struct txn_off {
    char *group;
    uint32_t topic_id;
    int32_t partition;
    int64_t offset;
} txn_off_t;

typedef struct txn_call {
    uint32_t part;   /* index into parts */
    size_t batch_at; /* byte offset of its batch in that part's data */
} txn_call_t;

struct dm_log_txn {
    dm_log_t *log;
    uint64_t id;
    txn_part_t *parts;
    size_t n_parts, cap_parts;
    txn_off_t *offs;
    size_t n_offs, cap_offs;
    txn_call_t *calls;
    size_t n_calls, cap_calls;
    dm_buf_t scratch;
    bool plain; /* a single produce: its batch is not marked transactional */
};

/* One cached transaction per thread keeps its buffers warm across commits. */
static pthread_key_t txn_cache_key;
static pthread_once_t txn_cache_once = PTHREAD_ONCE_INIT;

static void txn_destroy(dm_log_txn_t *t)
{
    for (size_t i = 0; i < t->cap_parts; i++)
        dm_buf_free(&t->parts[i].data);
    free(t->parts);
    for (size_t i = 0; i < t->n_offs; i++)
        free(t->offs[i].group);
    free(t->offs);
    free(t->calls);
    dm_buf_free(&t->scratch);
    free(t);
}

static void txn_cache_free(void *p)
{
    txn_destroy(p);
}

static void txn_cache_init(void)
{
    pthread_key_create(&txn_cache_key, txn_cache_free);
}

static void txn_release(dm_log_txn_t *t)
{
    for (size_t i = 0; i < t->n_offs; i++)
        free(t->offs[i].group);
    t->n_offs = 0;
    for (size_t i = 0; i < t->n_parts; i++)
        dm_buf_reset(&t->parts[i].data);
    t->n_parts = 0;
    t->n_calls = 0;
    if (t->scratch.cap > (8u << 20)) dm_buf_free(&t->scratch);
    if (!pthread_getspecific(txn_cache_key))
        pthread_setspecific(txn_cache_key, t);
    else
        txn_destroy(t);
}

dm_err_t dm_log_txn_begin(dm_log_t *log, dm_log_txn_t **out, dm_error_t *err)
{
    pthread_once(&txn_cache_once, txn_cache_init);
    dm_log_txn_t *t = pthread_getspecific(txn_cache_key);
    if (t)
        pthread_setspecific(txn_cache_key, NULL);
    else if (!(t = calloc(1, sizeof(*t))))
        return dm_error_set(err, DM_ERR_NOMEM, "transaction");
    t->log = log;
    t->plain = false;
    t->id = __atomic_fetch_add(&log->next_txn, 1, __ATOMIC_RELAXED);
    *out = t;
    return DM_OK;
}

dm_err_t dm_log_txn_produce(dm_log_txn_t *txn, const char *topic, int32_t partition,
                            const dm_log_record_t *records, size_t n, dm_error_t *err)
{
    dm_topic_t *t = find_topic(txn->log, topic, err);
    if (!t) return DM_ERR_LOG_TOPIC_NOT_FOUND;
    if (partition < 0) {
        partition = 0;
        if (n && records[0].key && records[0].key_len > 0)
            partition = (int32_t)(dm_hash64(records[0].key, (size_t)records[0].key_len) %
                                  (uint64_t)t->conf.partitions);
    }
    if (partition >= t->conf.partitions)
        return dm_error_set(err, DM_ERR_LOG_PARTITION, "topic=%s: no partition %d (it has %d)",
                            topic, partition, t->conf.partitions);
    dm_partition_t *p = &t->parts[partition];
    size_t k = 0;
    while (k < txn->n_parts && txn->parts[k].p != p)
        k++;
    if (k == txn->n_parts) {
        if (k == txn->cap_parts) {
            size_t ncap = txn->cap_parts ? txn->cap_parts * 2 : 4;
            txn_part_t *np = realloc(txn->parts, ncap * sizeof(*np));
            if (!np) return dm_error_set(err, DM_ERR_NOMEM, "transaction");
            memset(np + txn->cap_parts, 0, (ncap - txn->cap_parts) * sizeof(*np));
            txn->parts = np;
            txn->cap_parts = ncap;
        }
        txn->parts[k].p = p;
        dm_buf_reset(&txn->parts[k].data);
        txn->n_parts++;
    }
    if (txn->n_calls == txn->cap_calls) {
        size_t ncap = txn->cap_calls ? txn->cap_calls * 2 : 8;
        txn_call_t *nc = realloc(txn->calls, ncap * sizeof(*nc));
        if (!nc) return dm_error_set(err, DM_ERR_NOMEM, "transaction");
        txn->calls = nc;
        txn->cap_calls = ncap;
    }
    size_t at = txn->parts[k].data.len;
    dm_err_t rc = dm_batch_encode(&txn->parts[k].data, &txn->scratch, records, n,
                                  t->conf.compression, txn->plain ? 0 : txn->id, dm_wall_ms(), err);
    if (rc) return dm_error_prefix(err, "topic=%s partition=%d", topic, partition);
    txn->calls[txn->n_calls++] = (txn_call_t){(uint32_t)k, at};
    return DM_OK;
}

dm_err_t dm_log_txn_offset(dm_log_txn_t *txn, const char *group, const char *topic,
                           int32_t partition, int64_t next_offset, dm_error_t *err)
{
    dm_err_t rc = group_name_check(group, err);
    if (rc) return rc;
    if (!find_partition(txn->log, topic, partition, err)) return err ? err->code : DM_ERR_INVALID;
    dm_topic_t *t = find_topic(txn->log, topic, err);
    if (txn->n_offs == txn->cap_offs) {
        size_t ncap = txn->cap_offs ? txn->cap_offs * 2 : 4;
        txn_off_t *no = realloc(txn->offs, ncap * sizeof(*no));
        if (!no) return dm_error_set(err, DM_ERR_NOMEM, "transaction");
        txn->offs = no;
        txn->cap_offs = ncap;
    }
    char *g = strdup(group);
    if (!g) return dm_error_set(err, DM_ERR_NOMEM, "transaction");
    txn->offs[txn->n_offs++] = (txn_off_t){g, t->id, partition, next_offset};
    return DM_OK;
}

void dm_log_txn_abort(dm_log_txn_t *txn)
{
    if (txn) txn_release(txn);
}

static void jput(dm_buf_t *b, const void *p, size_t n)
{
    dm_buf_append(b, p, n);
}

dm_err_t dm_log_txn_commit(dm_log_txn_t *txn, int64_t *first_offsets, dm_error_t *err)
{
    dm_log_t *log = txn->log;
    dm_err_t rc = DM_OK;
    bool need_sync = false;
    for (size_t i = 0; i < txn->n_parts && !rc; i++) {
        rc = dm_partition_ensure_open(log, txn->parts[i].p, err);
        if (txn->parts[i].p->topic->conf.fsync == DM_LOG_FSYNC_ALWAYS) need_sync = true;
    }
    if (rc) goto out;
    for (size_t i = 0; i < txn->n_parts; i++)
        if (txn->parts[i].p->topic->deleted) {
            rc = dm_error_set(err, DM_ERR_LOG_TOPIC_NOT_FOUND, "topic=%s: deleted",
                              txn->parts[i].p->topic->name);
            goto out;
        }
    pthread_mutex_lock(&log->commit_mu);
    size_t written = 0;
    for (; written < txn->n_parts; written++) {
        txn_part_t *tp = &txn->parts[written];
        tp->start = tp->p->next;
        rc = dm_partition_append(log, tp->p, tp->data.data, tp->data.len, NULL, err);
        if (rc) break;
        tp->end = tp->p->next;
    }
    if (!rc) {
        dm_buf_t *b = &log->jbuf;
        dm_buf_reset(b);
        uint8_t type = DM_JREC_COMMIT;
        uint32_t n = (uint32_t)txn->n_parts;
        jput(b, &type, 1);
        jput(b, &txn->id, 8);
        jput(b, &n, 4);
        for (size_t i = 0; i < txn->n_parts; i++) {
            txn_part_t *tp = &txn->parts[i];
            jput(b, &tp->p->topic->id, 4);
            jput(b, &tp->p->id, 4);
            jput(b, &tp->start, 8);
            jput(b, &tp->end, 8);
        }
        n = (uint32_t)txn->n_offs;
        jput(b, &n, 4);
        for (size_t i = 0; i < txn->n_offs; i++) {
            uint16_t gl = (uint16_t)strlen(txn->offs[i].group);
            jput(b, &gl, 2);
            jput(b, txn->offs[i].group, gl);
            jput(b, &txn->offs[i].topic_id, 4);
            jput(b, &txn->offs[i].partition, 4);
            jput(b, &txn->offs[i].offset, 8);
        }
        rc = b->data ? dm_journal_write(log, b->data, b->len, err)
                     : dm_error_set(err, DM_ERR_NOMEM, "journal record");
    }
    if (rc) {
        /* undo: nothing of the transaction may survive */
        for (size_t i = 0; i < written + (written < txn->n_parts); i++) {
            txn_part_t *tp = &txn->parts[i];
            if (tp->p->next != tp->start) dm_partition_truncate(log, tp->p, tp->start, NULL);
        }
        pthread_mutex_unlock(&log->commit_mu);
        goto out;
    }
    uint64_t lsn = log->lsn;
    for (size_t i = 0; i < txn->n_parts; i++)
        txn->parts[i].p->journal_end = txn->parts[i].end;
    for (size_t i = 0; i < txn->n_offs; i++)
        dm_log_group_set(log, txn->offs[i].group, strlen(txn->offs[i].group), txn->offs[i].topic_id,
                         txn->offs[i].partition, txn->offs[i].offset);
    bool big = (int64_t)log->journal_size > log->opt.journal_max_bytes;
    pthread_mutex_unlock(&log->commit_mu);

    if (need_sync) rc = wait_durable(log, lsn, err);
    if (rc) goto out;
    for (size_t i = 0; i < txn->n_parts; i++)
        dm_partition_publish(txn->parts[i].p, txn->parts[i].end);
    if (first_offsets)
        for (size_t i = 0; i < txn->n_calls; i++)
            first_offsets[i] =
                (int64_t)dm_rd64(txn->parts[txn->calls[i].part].data.data + txn->calls[i].batch_at);
    if (big) {
        pthread_mutex_lock(&log->commit_mu);
        if ((int64_t)log->journal_size > log->opt.journal_max_bytes) {
            dm_error_t cerr = {0};
            if (checkpoint_locked(log, &cerr))
                DM_ERROR("log", "dir=%s: journal checkpoint failed: %s", log->dir, cerr.message);
        }
        pthread_mutex_unlock(&log->commit_mu);
    }
out:
    txn_release(txn);
    return rc;
}

dm_err_t dm_log_produce(dm_log_t *log, const char *topic, int32_t partition,
                        const dm_log_record_t *records, size_t n, int64_t *base_offset,
                        dm_error_t *err)
{
    dm_log_txn_t *txn;
    dm_err_t rc = dm_log_txn_begin(log, &txn, err);
    if (rc) return rc;
    txn->plain = true;
    rc = dm_log_txn_produce(txn, topic, partition, records, n, err);
    if (rc) {
        dm_log_txn_abort(txn);
        return rc;
    }
    int64_t first;
    rc = dm_log_txn_commit(txn, &first, err);
    if (!rc && base_offset) *base_offset = first;
    return rc;
}

dm_err_t dm_log_group_commit(dm_log_t *log, const char *group, const char *topic, int32_t partition,
                             int64_t next_offset, dm_error_t *err)
{
    dm_log_txn_t *txn;
    dm_err_t rc = dm_log_txn_begin(log, &txn, err);
    if (rc) return rc;
    rc = dm_log_txn_offset(txn, group, topic, partition, next_offset, err);
    if (rc) {
        dm_log_txn_abort(txn);
        return rc;
    }
    return dm_log_txn_commit(txn, NULL, err);
}

/* ==== topics API ============================================================================== */

static dm_err_t conf_check(const dm_log_topic_conf_t *conf, dm_error_t *err)
{
    dm_err_t rc = dm_log_topic_name_check(conf->name, err);
    if (rc) return rc;
    if (conf->partitions < 0 || conf->partitions > 100000)
        return dm_error_set(err, DM_ERR_INVALID, "topic=%s: %d partitions", conf->name,
                            conf->partitions);
    if (conf->schema_subject && strlen(conf->schema_subject) > DM_LOG_SUBJECT_MAX)
        return dm_error_set(err, DM_ERR_INVALID, "topic=%s: schema subject too long", conf->name);
    return DM_OK;
}

static dm_err_t create_topics(dm_log_t *log, const dm_log_topic_conf_t *confs, size_t n, bool wait,
                              dm_error_t *err);

dm_err_t dm_log_topic_create_many(dm_log_t *log, const dm_log_topic_conf_t *confs, size_t n,
                                  dm_error_t *err)
{
    return create_topics(log, confs, n, true, err);
}

dm_err_t dm_log_topic_create_deferred(dm_log_t *log, const dm_log_topic_conf_t *conf,
                                      dm_error_t *err)
{
    return create_topics(log, conf, 1, false, err);
}

dm_err_t dm_log_journal_sync(dm_log_t *log, dm_error_t *err)
{
    pthread_mutex_lock(&log->commit_mu);
    uint64_t lsn = log->lsn;
    pthread_mutex_unlock(&log->commit_mu);
    return wait_durable(log, lsn, err);
}

/* Journals confs[0..n); wait: returns once the records are durable (one fsync for all). */
static dm_err_t create_topics(dm_log_t *log, const dm_log_topic_conf_t *confs, size_t n, bool wait,
                              dm_error_t *err)
{
    for (size_t i = 0; i < n; i++) {
        dm_err_t rc = conf_check(&confs[i], err);
        if (rc) return rc;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(confs[i].name, confs[j].name))
                return dm_error_set(err, DM_ERR_LOG_TOPIC_EXISTS, "topic=%s: named twice",
                                    confs[i].name);
    }
    pthread_mutex_lock(&log->commit_mu);
    for (size_t i = 0; i < n; i++)
        if (find_topic(log, confs[i].name, NULL)) {
            pthread_mutex_unlock(&log->commit_mu);
            return dm_error_set(err, DM_ERR_LOG_TOPIC_EXISTS, "topic=%s: already exists",
                                confs[i].name);
        }
    dm_err_t rc = DM_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        uint32_t id = log->n_ids ? log->n_ids : 1;
        dm_topic_t *t = dm_log_topic_add(log, id, &confs[i], dm_wall_ms());
        if (!t) {
            rc = dm_error_set(err, DM_ERR_NOMEM, "topic=%s", confs[i].name);
            break;
        }
        dm_buf_reset(&log->jbuf);
        dm_journal_enc_create(&log->jbuf, t);
        rc = dm_journal_write(log, log->jbuf.data, log->jbuf.len, err);
        if (rc) {
            dm_log_topic_unlink(log, t); /* stays in by_id as deleted; freed at close */
            dm_error_prefix(err, "topic=%s", confs[i].name);
        }
    }
    uint64_t lsn = log->lsn;
    pthread_mutex_unlock(&log->commit_mu);
    if (!wait) return rc; /* the caller's dm_log_journal_sync makes them durable */
    /* one fsync for all of them (and for the ones written before a failure) */
    dm_err_t src = wait_durable(log, lsn, rc ? NULL : err);
    return rc ? rc : src;
}

dm_err_t dm_log_topic_create(dm_log_t *log, const dm_log_topic_conf_t *conf, dm_error_t *err)
{
    return dm_log_topic_create_many(log, conf, 1, err);
}

static void remove_tree(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d))) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
            char sub[4096];
            snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
            unlink(sub);
        }
        closedir(d);
    }
    rmdir(path);
}

dm_err_t dm_log_topic_delete(dm_log_t *log, const char *name, dm_error_t *err)
{
    pthread_mutex_lock(&log->bg_mu); /* no maintenance pass while the data goes */
    pthread_mutex_lock(&log->commit_mu);
    dm_topic_t *t = find_topic(log, name, err);
    if (!t) {
        pthread_mutex_unlock(&log->commit_mu);
        pthread_mutex_unlock(&log->bg_mu);
        return DM_ERR_LOG_TOPIC_NOT_FOUND;
    }
    dm_buf_reset(&log->jbuf);
    dm_journal_enc_delete(&log->jbuf, t->id);
    dm_err_t rc = dm_journal_write(log, log->jbuf.data, log->jbuf.len, err);
    if (rc) {
        pthread_mutex_unlock(&log->commit_mu);
        pthread_mutex_unlock(&log->bg_mu);
        return rc;
    }
    uint64_t lsn = log->lsn;
    dm_log_topic_unlink(log, t);
    pthread_mutex_unlock(&log->commit_mu);
    rc = wait_durable(log, lsn, err);
    /* The delete is durable: drop the data. Segments are unlinked as their last reference
     * goes; the directory entries go now. */
    for (int32_t i = 0; i < t->conf.partitions; i++) {
        dm_partition_t *p = &t->parts[i];
        pthread_mutex_lock(&p->open_mu);
        pthread_rwlock_wrlock(&p->seg_lock);
        for (size_t k = 0; k < p->n_segs; k++) {
            p->segs[k]->unlink_on_free = true;
            dm_segment_unref(log, p->segs[k]);
        }
        p->n_segs = 0;
        pthread_rwlock_unlock(&p->seg_lock);
        p->opened = true;
        pthread_mutex_unlock(&p->open_mu);
        remove_tree(p->dir);
        dm_partition_wake_all(p);
    }
    pthread_mutex_unlock(&log->bg_mu);
    return rc;
}

dm_err_t dm_log_topic_describe(dm_log_t *log, const char *name, dm_log_topic_info_t *info,
                               dm_error_t *err)
{
    dm_topic_t *t = find_topic(log, name, err);
    if (!t) return DM_ERR_LOG_TOPIC_NOT_FOUND;
    memset(info, 0, sizeof(*info));
    info->conf = t->conf;
    info->id = t->id;
    info->created_ms = t->created_ms;
    info->parts = calloc((size_t)t->conf.partitions, sizeof(*info->parts));
    if (!info->parts) return dm_error_set(err, DM_ERR_NOMEM, "describe");
    for (int32_t i = 0; i < t->conf.partitions; i++)
        dm_partition_info(log, &t->parts[i], &info->parts[i]);
    return DM_OK;
}

void dm_log_topic_list(dm_log_t *log, int (*fn)(void *ctx, const dm_log_topic_conf_t *conf),
                       void *ctx)
{
    pthread_rwlock_rdlock(&log->topics_lock);
    uint32_t n = log->n_ids;
    pthread_rwlock_unlock(&log->topics_lock);
    for (uint32_t id = 1; id < n; id++) {
        pthread_rwlock_rdlock(&log->topics_lock);
        dm_topic_t *t = log->by_id[id];
        bool live = t && !t->deleted;
        pthread_rwlock_unlock(&log->topics_lock);
        if (live && fn(ctx, &t->conf)) break;
    }
}

int32_t dm_log_topic_partitions(dm_log_t *log, const char *name, dm_error_t *err)
{
    dm_topic_t *t = find_topic(log, name, err);
    return t ? t->conf.partitions : DM_ERR_LOG_TOPIC_NOT_FOUND;
}

/* ==== reads ====================================================================================
 */

void dm_log_fetch_init(dm_log_fetch_t *f)
{
    memset(f, 0, sizeof(*f));
    dm_arena_init(&f->arena, 0);
}

void dm_log_fetch_free(dm_log_fetch_t *f)
{
    dm_partition_fetch_release(f);
    dm_buf_free(&f->buf);
    dm_arena_destroy(&f->arena);
    f->records = NULL;
    f->n = 0;
}

dm_err_t dm_log_read(dm_log_t *log, const char *topic, int32_t partition, int64_t offset,
                     size_t max_bytes, int timeout_ms, dm_log_fetch_t *f, dm_error_t *err)
{
    f->n = 0;
    dm_partition_t *p = find_partition(log, topic, partition, err);
    if (!p) return err ? err->code : DM_ERR_NOT_FOUND;
    return dm_partition_read(log, p, offset, max_bytes, timeout_ms, f, err);
}

dm_err_t dm_log_offset_for_time(dm_log_t *log, const char *topic, int32_t partition, int64_t ts_ms,
                                int64_t *offset, dm_error_t *err)
{
    dm_partition_t *p = find_partition(log, topic, partition, err);
    if (!p) return err ? err->code : DM_ERR_NOT_FOUND;
    return dm_partition_offset_for_time(log, p, ts_ms, offset, err);
}

dm_err_t dm_log_offsets(dm_log_t *log, const char *topic, int32_t partition, int64_t *start,
                        int64_t *end, dm_error_t *err)
{
    dm_partition_t *p = find_partition(log, topic, partition, err);
    if (!p) return err ? err->code : DM_ERR_NOT_FOUND;
    dm_log_partition_info_t info;
    dm_partition_info(log, p, &info);
    if (start) *start = info.start_offset;
    if (end) *end = info.end_offset;
    return DM_OK;
}

dm_err_t dm_log_watch(dm_log_t *log, const char *topic, int32_t partition, int64_t offset,
                      dm_log_wake_fn fn, void *ctx, uint64_t id, bool *ready, dm_error_t *err)
{
    dm_partition_t *p = find_partition(log, topic, partition, err);
    if (!p) return err ? err->code : DM_ERR_NOT_FOUND;
    return dm_partition_watch(log, p, offset, fn, ctx, id, ready, err);
}

void dm_log_unwatch(dm_log_t *log, const char *topic, int32_t partition, dm_log_wake_fn fn,
                    void *ctx, uint64_t id)
{
    dm_partition_t *p = find_partition(log, topic, partition, NULL);
    if (p) dm_partition_unwatch(p, fn, ctx, id);
}

int dm_log_open_files(dm_log_t *log)
{
    pthread_mutex_lock(&log->fdcache.mu);
    int n = log->fdcache.n_open;
    pthread_mutex_unlock(&log->fdcache.mu);
    return n;
}

/* ==== maintenance and the background thread ======================================================
 */

static int maintain_locked(dm_log_t *log, int64_t now_ms)
{
    int n = 0;
    pthread_rwlock_rdlock(&log->topics_lock);
    uint32_t n_ids = log->n_ids;
    pthread_rwlock_unlock(&log->topics_lock);
    for (uint32_t id = 1; id < n_ids && !log->stopping; id++) {
        pthread_rwlock_rdlock(&log->topics_lock);
        dm_topic_t *t = log->by_id[id];
        pthread_rwlock_unlock(&log->topics_lock);
        if (!t || t->deleted) continue;
        for (int32_t i = 0; i < t->conf.partitions; i++) {
            n += dm_partition_retention(log, &t->parts[i], now_ms);
            if (t->conf.compact) n += dm_compact_partition(log, &t->parts[i], now_ms);
        }
    }
    return n;
}

int dm_log_maintain(dm_log_t *log, int64_t now_ms)
{
    pthread_mutex_lock(&log->bg_mu);
    int n = maintain_locked(log, now_ms);
    pthread_mutex_unlock(&log->bg_mu);
    return n;
}

/* Interval fsyncs, retention and compaction. Holds bg_mu except while sleeping. */
static void *bg_main(void *arg)
{
    dm_log_t *log = arg;
    uint64_t last_maint = dm_now_ns();
    pthread_mutex_lock(&log->bg_mu);
    while (!log->stopping) {
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_nsec += 20 * 1000000L;
        if (dl.tv_nsec >= 1000000000L) {
            dl.tv_sec++;
            dl.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&log->bg_cond, &log->bg_mu, &dl);
        if (log->stopping) break;
        uint64_t now = dm_now_ns();
        bool due = false;
        pthread_mutex_lock(&log->commit_mu);
        for (dm_partition_t *p = log->dirty_head; p; p = p->dirty_next)
            if (p->topic->conf.fsync != DM_LOG_FSYNC_NEVER &&
                now - p->dirty_ns >= (uint64_t)p->topic->conf.flush_ms * 1000000ull) {
                due = true;
                break;
            }
        pthread_mutex_unlock(&log->commit_mu);
        if (due) {
            dm_error_t err = {0};
            if (dm_log_sync_all(log, &err))
                DM_ERROR("log", "dir=%s: interval fsync failed: %s", log->dir, err.message);
        }
        if (now - last_maint >= (uint64_t)log->opt.retention_check_ms * 1000000ull) {
            maintain_locked(log, dm_wall_ms());
            last_maint = dm_now_ns();
        }
    }
    pthread_mutex_unlock(&log->bg_mu);
    return NULL;
}

/* ==== open and close ============================================================================
 */

/* Removes partition directories that belong to no live topic (a delete that crashed
 * half-way, or a create that never reached the journal). */
static void collect_garbage(dm_log_t *log)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/topics", log->dir);
    DIR *d = opendir(path);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.' && (!de->d_name[1] || de->d_name[1] == '.')) continue;
        char *dash = strrchr(de->d_name, '-');
        bool keep = false;
        if (dash) {
            *dash = 0;
            char *dot = strrchr(de->d_name, '.');
            if (dot) {
                *dot = 0;
                unsigned long id = strtoul(dot + 1, NULL, 10);
                long part = strtol(dash + 1, NULL, 10);
                dm_topic_t *t = dm_log_topic_by_id(log, (uint32_t)id);
                keep = t && !t->deleted && !strcmp(t->name, de->d_name) && part >= 0 &&
                       part < t->conf.partitions;
                *dot = '.';
            }
            *dash = '-';
        }
        if (!keep) {
            char sub[4096];
            snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
            DM_INFO("log", "dir=%s: removing %s (no live topic owns it)", log->dir, sub);
            remove_tree(sub);
        }
    }
    closedir(d);
}

static void log_free(dm_log_t *log)
{
    for (uint32_t id = 0; id < log->n_ids; id++) {
        dm_topic_t *t = log->by_id[id];
        if (!t) continue;
        for (int32_t i = 0; i < t->conf.partitions; i++)
            dm_partition_destroy(log, &t->parts[i]);
        free(t->parts);
        free(t->name);
        free(t->subject);
        free(t);
    }
    free(log->by_id);
    free(log->buckets);
    for (uint32_t b = 0; b < log->n_gbuckets; b++)
        for (dm_group_off_t *g = log->gbuckets[b], *n; g; g = n) {
            n = g->next;
            free(g->group);
            free(g);
        }
    free(log->gbuckets);
    free(log->sync_buf);
    if (log->journal_fd >= 0) close(log->journal_fd);
    if (log->lock_fd >= 0) close(log->lock_fd);
    dm_buf_free(&log->jbuf);
    dm_fdcache_destroy(&log->fdcache);
    pthread_rwlock_destroy(&log->topics_lock);
    pthread_mutex_destroy(&log->commit_mu);
    pthread_mutex_destroy(&log->sync_mu);
    pthread_cond_destroy(&log->sync_cond);
    pthread_mutex_destroy(&log->groups_mu);
    pthread_mutex_destroy(&log->bg_mu);
    pthread_cond_destroy(&log->bg_cond);
    pthread_mutex_destroy(&log->warm.mu);
    pthread_cond_destroy(&log->warm.cond);
    free(log->dir);
    free(log);
}

dm_err_t dm_log_open(const char *dir, const dm_log_options_t *opt, dm_log_t **out, dm_error_t *err)
{
    *out = NULL;
    if (mkdir(dir, 0755) && errno != EEXIST)
        return dm_error_set(err, DM_ERR_IO, "mkdir %s: %s", dir, strerror(errno));
    char path[4096];
    snprintf(path, sizeof(path), "%s/topics", dir);
    if (mkdir(path, 0755) && errno != EEXIST)
        return dm_error_set(err, DM_ERR_IO, "mkdir %s: %s", path, strerror(errno));
    dm_log_t *log = calloc(1, sizeof(*log));
    if (!log || !(log->dir = strdup(dir))) {
        free(log);
        return dm_error_set(err, DM_ERR_NOMEM, "log");
    }
    if (opt) log->opt = *opt;
    if (log->opt.max_open_files <= 0) log->opt.max_open_files = 256;
    if (log->opt.journal_max_bytes <= 0) log->opt.journal_max_bytes = 64ll << 20;
    if (log->opt.retention_check_ms <= 0) log->opt.retention_check_ms = 5000;
    if (log->opt.index_interval_bytes <= 0) log->opt.index_interval_bytes = 4096;
    log->journal_fd = -1;
    dm_fdcache_init(&log->fdcache, log->opt.max_open_files);
    pthread_rwlock_init(&log->topics_lock, NULL);
    pthread_mutex_init(&log->commit_mu, NULL);
    pthread_mutex_init(&log->sync_mu, NULL);
    pthread_cond_init(&log->sync_cond, NULL);
    pthread_mutex_init(&log->groups_mu, NULL);
    pthread_mutex_init(&log->bg_mu, NULL);
    pthread_cond_init(&log->bg_cond, NULL);
    dm_warmer_init(&log->warm);
    snprintf(path, sizeof(path), "%s/LOCK", dir);
    log->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (log->lock_fd < 0) {
        dm_err_t rc = dm_error_set(err, DM_ERR_IO, "open %s: %s", path, strerror(errno));
        log_free(log);
        return rc;
    }
    if (flock(log->lock_fd, LOCK_EX | LOCK_NB)) {
        dm_err_t rc = dm_error_set(err, DM_ERR_AGAIN, "%s is in use by another process", dir);
        log_free(log);
        return rc;
    }
    dm_err_t rc = dm_journal_recover(log, err);
    if (rc) {
        dm_error_prefix(err, "dir=%s", dir);
        log_free(log);
        return rc;
    }
    collect_garbage(log);
    if (!log->opt.no_background) {
        if (pthread_create(&log->bg, NULL, bg_main, log)) {
            log_free(log);
            return dm_error_set(err, DM_ERR_INTERNAL, "cannot start the log's thread");
        }
        log->bg_started = true;
    }
    *out = log;
    return DM_OK;
}

static void stop_bg(dm_log_t *log)
{
    pthread_mutex_lock(&log->bg_mu);
    log->stopping = true;
    pthread_cond_broadcast(&log->bg_cond);
    pthread_mutex_unlock(&log->bg_mu);
    if (log->bg_started) pthread_join(log->bg, NULL);
    log->bg_started = false;
    dm_warmer_stop(log);
}

void dm_log_close(dm_log_t *log)
{
    if (!log) return;
    stop_bg(log);
    pthread_mutex_lock(&log->commit_mu);
    dm_error_t err = {0};
    if (!log->sync_error && checkpoint_locked(log, &err))
        DM_ERROR("log", "dir=%s: final checkpoint failed: %s", log->dir, err.message);
    pthread_mutex_unlock(&log->commit_mu);
    log_free(log);
}

void dm_log_close_dirty(dm_log_t *log)
{
    if (!log) return;
    stop_bg(log);
    log_free(log);
}
