/* log/warm.c — space and page cache made ahead of busy writers, off their commit path.
 *
 * prealloc_ahead (log/segment.c) asks for a busy segment's next few MiB; here the data file
 * is extended over them (fallocate: blocks reserved, no per-page allocation when written)
 * and the new 2 MiB pieces are faulted in through the segment's huge-page mapping, so the
 * kernel makes each a single zeroed 2 MiB folio before the writer reaches it, without I/O.
 * The writes then land in those folios — write(2) into a large folio costs about half of
 * writing into 512 small ones — and readers find the data mapped by one page-table entry
 * per 2 MiB instead of faulting 4 KiB pages in. Both steps can
 * take milliseconds — fallocate waits for the file system's journal, a huge page may need
 * zeroing or compaction — which is why a thread of its own does them rather than the
 * committing one. MADV_POPULATE_READ instead of a plain load: a range cut off the file
 * meanwhile gives an error instead of SIGBUS; and the writer's cuts bump prep_gen under
 * prep_mu, so a late request never extends a file again. A request that finds the queue
 * full, or a piece the writer reaches first, costs nothing but the large folio: the writes
 * then go to small ones, as without any of this.
 */
#include <fcntl.h>
#include <sys/mman.h>

#include "log/internal.h"

void dm_warmer_init(dm_warmer_t *w)
{
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cond, NULL);
}

void dm_segment_trim(dm_segment_t *s, uint64_t pos)
{
    if (!s->map || pos <= DM_RESIDENT_WINDOW) return;
    uint64_t keep = (pos - DM_RESIDENT_WINDOW) & ~(uint64_t)(DM_HUGE_PAGE - 1);
    if (keep > s->map_len) keep = s->map_len & ~(uint64_t)(DM_HUGE_PAGE - 1);
    uint64_t done = __atomic_load_n(&s->trimmed, __ATOMIC_RELAXED);
    /* a folio at a time: one madvise per step, whoever gets there first */
    if (keep < done + DM_HUGE_PAGE ||
        !__atomic_compare_exchange_n(&s->trimmed, &done, keep, false, __ATOMIC_RELAXED,
                                     __ATOMIC_RELAXED))
        return;
    /* a shared read-only file mapping: only the page-table entries go, and the
     * pages stay in the page cache; records still pointing here fault them
     * back in */
    madvise(s->map + done, keep - done, MADV_DONTNEED);
}

static void populate(dm_segment_t *s, uint64_t from, uint64_t to)
{
#ifdef MADV_POPULATE_READ
    for (uint64_t c = dm_huge_up(from); c < to && c < s->map_len; c += DM_HUGE_PAGE) {
        if (madvise(s->map + c, 4096, MADV_POPULATE_READ)) break;
        uint64_t done = c + DM_HUGE_PAGE, seen = __atomic_load_n(&s->warm_end, __ATOMIC_RELAXED);
        while (seen < done && !__atomic_compare_exchange_n(&s->warm_end, &seen, done, true,
                                                           __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
        }
    }
#else
    (void)s;
    (void)from;
    (void)to;
#endif
}

void dm_warm_now(dm_segment_t *s, uint64_t from, uint64_t to)
{
    uint64_t done = __atomic_load_n(&s->warm_end, __ATOMIC_RELAXED);
    if (!s->map || done >= to) return;
    populate(s, from > done ? from : done, to);
    dm_segment_trim(s, from);
}

static void *warm_main(void *arg)
{
    dm_log_t *log = arg;
    dm_warmer_t *w = &log->warm;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->n && !w->stopping)
            pthread_cond_wait(&w->cond, &w->mu);
        if (w->stopping) break;
        dm_warm_req_t r = w->q[w->head];
        w->head = (w->head + 1) % DM_WARM_QUEUE;
        w->n--;
        pthread_mutex_unlock(&w->mu);
        pthread_mutex_lock(&r.s->prep_mu);
        bool ok = __atomic_load_n(&r.s->prep_gen, __ATOMIC_RELAXED) == r.gen &&
                  fallocate(r.s->fd, 0, (off_t)r.from, (off_t)(r.to - r.from)) == 0;
        pthread_mutex_unlock(&r.s->prep_mu);
        if (ok) {
            populate(r.s, r.from, r.to);
            dm_segment_trim(r.s, r.from);
        }
        dm_fdcache_unpin(&log->fdcache, r.s);
        dm_segment_unref(log, r.s);
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

void dm_warm_ahead(dm_log_t *log, dm_segment_t *s, uint64_t from, uint64_t to)
{
    uint32_t gen = __atomic_load_n(&s->prep_gen, __ATOMIC_RELAXED);
    if (log->opt.no_background || !s->map) {
        if (fallocate(s->fd, 0, (off_t)from, (off_t)(to - from)) == 0 && s->map)
            populate(s, from, to);
        return;
    }
    dm_warmer_t *w = &log->warm;
    pthread_mutex_lock(&w->mu);
    if (!w->started && !w->stopping) {
        w->started = pthread_create(&w->thread, NULL, warm_main, log) == 0;
        if (w->started) pthread_setname_np(w->thread, "dm-log-warm");
    }
    if (w->started && !w->stopping && w->n < DM_WARM_QUEUE &&
        dm_fdcache_pin(&log->fdcache, s, NULL) == DM_OK) {
        dm_segment_ref(s);
        w->q[(w->head + w->n) % DM_WARM_QUEUE] = (dm_warm_req_t){s, from, to, gen};
        w->n++;
        pthread_cond_signal(&w->cond);
    }
    pthread_mutex_unlock(&w->mu);
}

void dm_warmer_stop(dm_log_t *log)
{
    dm_warmer_t *w = &log->warm;
    pthread_mutex_lock(&w->mu);
    w->stopping = true;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->mu);
    if (w->started) pthread_join(w->thread, NULL);
    w->started = false;
    for (; w->n; w->n--, w->head = (w->head + 1) % DM_WARM_QUEUE) {
        dm_fdcache_unpin(&log->fdcache, w->q[w->head].s);
        dm_segment_unref(log, w->q[w->head].s);
    }
}
