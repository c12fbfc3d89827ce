/* log/journal.c — the commit journal: DIR/journal.
 *
 * "DMJRNL01", then records [u32 len][u32 crc32c(body)][body], body[0] = type:
 *   CREATE     u32 id, i64 created_ms, str name, str subject, i32 partitions,
 *              i64 retention_ms, i64 retention_bytes, u8 compact, i64 delete_retention_ms,
 *              u8 fsync, i64 flush_ms, i64 segment_bytes, i64 segment_ms, u8 compression
 *   DELETE     u32 id
 *   COMMIT     u64 txn, u32 n, n x {u32 topic_id, i32 partition, i64 start, i64 end},
 *              u32 m, m x {str group, u32 topic_id, i32 partition, i64 offset}
 *   CHECKPOINT u64 next_txn
 * (str = u16 length + bytes). A checkpoint rewrites the file as a snapshot of the state
 * (CREATEs, one COMMIT per partition end and the group offsets, then CHECKPOINT); commits
 * after the CHECKPOINT are checked against the partitions' data on recovery.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/crc32c.h"
#include "core/fs.h"
#include "core/log.h"
#include "log/internal.h"

#define JMAGIC     "DMJRNL01"
#define JMAGIC_LEN 8

/* ==== encoding ========================================================================== */

static void put_u8(dm_buf_t *b, uint8_t v)
{
    dm_buf_append(b, &v, 1);
}
static void put_u16(dm_buf_t *b, uint16_t v)
{
    dm_buf_append(b, &v, 2);
}
static void put_u32(dm_buf_t *b, uint32_t v)
{
    dm_buf_append(b, &v, 4);
}
static void put_u64(dm_buf_t *b, uint64_t v)
{
    dm_buf_append(b, &v, 8);
}
static void put_str(dm_buf_t *b, const char *s)
{
    size_t l = s ? strlen(s) : 0;
    put_u16(b, (uint16_t)l);
    dm_buf_append(b, s, l);
}

void dm_journal_enc_create(dm_buf_t *b, const dm_topic_t *t)
{
    const dm_log_topic_conf_t *c = &t->conf;
    put_u8(b, DM_JREC_CREATE);
    put_u32(b, t->id);
    put_u64(b, (uint64_t)t->created_ms);
    put_str(b, t->name);
    put_str(b, t->subject);
    put_u32(b, (uint32_t)c->partitions);
    put_u64(b, (uint64_t)c->retention_ms);
    put_u64(b, (uint64_t)c->retention_bytes);
    put_u8(b, c->compact);
    put_u64(b, (uint64_t)c->delete_retention_ms);
    put_u8(b, (uint8_t)c->fsync);
    put_u64(b, (uint64_t)c->flush_ms);
    put_u64(b, (uint64_t)c->segment_bytes);
    put_u64(b, (uint64_t)c->segment_ms);
    put_u8(b, (uint8_t)c->compression);
}

void dm_journal_enc_delete(dm_buf_t *b, uint32_t topic_id)
{
    put_u8(b, DM_JREC_DELETE);
    put_u32(b, topic_id);
}

/* Frames body as a record into out. */
static void frame(dm_buf_t *out, const uint8_t *body, size_t len)
{
    put_u32(out, (uint32_t)len);
    put_u32(out, dm_crc32c(0, body, len));
    dm_buf_append(out, body, len);
}

dm_err_t dm_journal_write(dm_log_t *log, const uint8_t *body, size_t len, dm_error_t *err)
{
    uint8_t hdr[8];
    dm_wr32(hdr, (uint32_t)len);
    dm_wr32(hdr + 4, dm_crc32c(0, body, len));
    /* one write(2): header and body together, so a record is never split by another */
    uint8_t stack[512];
    uint8_t *rec = len + 8 <= sizeof(stack) ? stack : malloc(len + 8);
    if (!rec) return dm_error_set(err, DM_ERR_NOMEM, "journal record");
    memcpy(rec, hdr, 8);
    memcpy(rec + 8, body, len);
    size_t done = 0;
    while (done < len + 8) {
        ssize_t w =
            pwrite(log->journal_fd, rec + done, len + 8 - done, (off_t)(log->journal_size + done));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            int e = w < 0 ? errno : ENOSPC;
            if (ftruncate(log->journal_fd, (off_t)log->journal_size)) {
            }
            if (rec != stack) free(rec);
            return dm_error_set(err, e == ENOSPC || e == EFBIG ? DM_ERR_NO_SPACE : DM_ERR_IO,
                                "write %s/journal: %s", log->dir, strerror(e));
        }
        done += (size_t)w;
    }
    if (rec != stack) free(rec);
    log->journal_size += len + 8;
    log->lsn++;
    return DM_OK;
}

/* ==== decoding ========================================================================== */

typedef struct cur {
    const uint8_t *p, *end;
    bool bad;
} cur_t;

static uint64_t get_n(cur_t *c, int n)
{
    if (c->bad || c->end - c->p < n) {
        c->bad = true;
        return 0;
    }
    uint64_t v = 0;
    memcpy(&v, c->p, (size_t)n);
    c->p += n;
    return v;
}

static const char *get_str(cur_t *c, size_t *len)
{
    size_t l = (size_t)get_n(c, 2);
    if (c->bad || (size_t)(c->end - c->p) < l) {
        c->bad = true;
        *len = 0;
        return "";
    }
    const char *s = (const char *)c->p;
    c->p += l;
    *len = l;
    return s;
}

static dm_err_t apply_create(dm_log_t *log, cur_t *c)
{
    dm_log_topic_conf_t conf = {0};
    uint32_t id = (uint32_t)get_n(c, 4);
    int64_t created = (int64_t)get_n(c, 8);
    size_t nl, sl;
    const char *name = get_str(c, &nl);
    const char *subj = get_str(c, &sl);
    conf.partitions = (int32_t)get_n(c, 4);
    conf.retention_ms = (int64_t)get_n(c, 8);
    conf.retention_bytes = (int64_t)get_n(c, 8);
    conf.compact = get_n(c, 1) != 0;
    conf.delete_retention_ms = (int64_t)get_n(c, 8);
    conf.fsync = (dm_log_fsync_t)get_n(c, 1);
    conf.flush_ms = (int64_t)get_n(c, 8);
    conf.segment_bytes = (int64_t)get_n(c, 8);
    conf.segment_ms = (int64_t)get_n(c, 8);
    conf.compression = (dm_batch_comp_t)get_n(c, 1);
    if (c->bad || nl == 0 || nl > DM_LOG_TOPIC_NAME_MAX || conf.partitions <= 0 ||
        dm_log_topic_by_id(log, id))
        return DM_ERR_LOG_META;
    char nbuf[DM_LOG_TOPIC_NAME_MAX + 1], sbuf[DM_LOG_SUBJECT_MAX + 1];
    memcpy(nbuf, name, nl);
    nbuf[nl] = 0;
    if (sl > DM_LOG_SUBJECT_MAX) return DM_ERR_LOG_META;
    memcpy(sbuf, subj, sl);
    sbuf[sl] = 0;
    conf.name = nbuf;
    conf.schema_subject = sl ? sbuf : NULL;
    if (dm_log_topic_name_check(nbuf, NULL)) return DM_ERR_LOG_META;
    return dm_log_topic_add(log, id, &conf, created) ? DM_OK : DM_ERR_NOMEM;
}

/* Applies (verify = false) or checks (verify = true) a COMMIT body. When checking,
 * *bad_* name the first partition whose data is short. */
static dm_err_t commit_walk(dm_log_t *log, cur_t c, bool verify, dm_error_t *err, uint64_t *txn_out)
{
    uint64_t txn = get_n(&c, 8);
    if (txn_out) *txn_out = txn;
    if (txn >= log->next_txn) log->next_txn = txn + 1;
    uint32_t n = (uint32_t)get_n(&c, 4);
    for (uint32_t i = 0; i < n && !c.bad; i++) {
        uint32_t tid = (uint32_t)get_n(&c, 4);
        int32_t pid = (int32_t)get_n(&c, 4);
        get_n(&c, 8);
        int64_t end = (int64_t)get_n(&c, 8);
        if (c.bad) break;
        dm_topic_t *t = dm_log_topic_by_id(log, tid);
        if (!t || t->deleted || pid < 0 || pid >= t->conf.partitions) continue;
        dm_partition_t *p = &t->parts[pid];
        if (verify) {
            dm_err_t rc = dm_partition_scan(log, p, err);
            if (rc) return rc;
            if (p->crc_end < end)
                return dm_error_set(err, DM_ERR_LOG_CORRUPT,
                                    "topic=%s partition=%d end=%" PRId64 ", data ends at %" PRId64,
                                    t->name, pid, end, p->crc_end);
        } else if (end > p->journal_end) {
            p->journal_end = end;
        }
    }
    uint32_t m = (uint32_t)get_n(&c, 4);
    for (uint32_t i = 0; i < m && !c.bad; i++) {
        size_t gl;
        const char *g = get_str(&c, &gl);
        uint32_t tid = (uint32_t)get_n(&c, 4);
        int32_t pid = (int32_t)get_n(&c, 4);
        int64_t off = (int64_t)get_n(&c, 8);
        if (c.bad) break;
        dm_topic_t *t = dm_log_topic_by_id(log, tid);
        if (!verify && t && !t->deleted) dm_log_group_set(log, g, gl, tid, pid, off);
    }
    if (c.bad) return dm_error_set(err, DM_ERR_LOG_META, "commit record does not parse");
    return DM_OK;
}

/* ==== recovery ============================================================================ */

static bool topics_dir_has_data(dm_log_t *log)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/topics", log->dir);
    DIR *d = opendir(path);
    if (!d) return false;
    struct dirent *de;
    bool any = false;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.') {
            any = true;
            break;
        }
    closedir(d);
    return any;
}

static dm_err_t create_journal(dm_log_t *log, dm_error_t *err)
{
    log->next_txn = log->next_txn ? log->next_txn : 1;
    return dm_journal_checkpoint(log, err);
}

typedef struct pending {
    uint64_t pos;
    uint32_t len;
} pending_t;

dm_err_t dm_journal_recover(dm_log_t *log, dm_error_t *err)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/journal", log->dir);
    log->next_txn = 1;
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT)
            return dm_error_set(err, DM_ERR_LOG_META, "open %s: %s", path, strerror(errno));
        if (topics_dir_has_data(log))
            return dm_error_set(err, DM_ERR_LOG_META,
                                "%s is missing but %s/topics holds data; refusing to start "
                                "with empty metadata",
                                path, log->dir);
        return create_journal(log, err);
    }
    struct stat st;
    if (fstat(fd, &st)) {
        close(fd);
        return dm_error_set(err, DM_ERR_IO, "fstat %s: %s", path, strerror(errno));
    }
    size_t size = (size_t)st.st_size;
    uint8_t *data = malloc(size ? size : 1);
    if (!data) {
        close(fd);
        return dm_error_set(err, DM_ERR_NOMEM, "reading %s (%zu bytes)", path, size);
    }
    size_t got = 0;
    while (got < size) {
        ssize_t r = pread(fd, data + got, size - got, (off_t)got);
        if (r <= 0) break;
        got += (size_t)r;
    }
    dm_err_t rc = DM_OK;
    pending_t *pend = NULL;
    size_t n_pend = 0, cap_pend = 0;
    if (got != size || size < JMAGIC_LEN || memcmp(data, JMAGIC, JMAGIC_LEN)) {
        rc = dm_error_set(err, DM_ERR_LOG_META, "%s: not a datamesh journal (bad header)", path);
        goto out;
    }
    size_t pos = JMAGIC_LEN;
    bool torn = false;
    while (pos < size) {
        if (size - pos < 8) {
            torn = true;
            break;
        }
        uint32_t len = dm_rd32(data + pos), crc = dm_rd32(data + pos + 4);
        if (len == 0 || len > size - pos - 8) {
            torn = true;
            break;
        }
        const uint8_t *body = data + pos + 8;
        if (dm_crc32c(0, body, len) != crc) {
            if (pos + 8 + len == size) {
                torn = true;
                break;
            }
            rc = dm_error_set(err, DM_ERR_LOG_META,
                              "%s: record at byte %zu fails its CRC (the journal is corrupt; "
                              "restore it or remove the data directory)",
                              path, pos);
            goto out;
        }
        cur_t c = {body + 1, body + len, false};
        switch (body[0]) {
        case DM_JREC_CREATE: rc = apply_create(log, &c); break;
        case DM_JREC_DELETE: {
            dm_topic_t *t = dm_log_topic_by_id(log, (uint32_t)get_n(&c, 4));
            if (!t || c.bad)
                rc = DM_ERR_LOG_META;
            else
                dm_log_topic_unlink(log, t);
            break;
        }
        case DM_JREC_COMMIT:
            if (n_pend == cap_pend) {
                cap_pend = cap_pend ? cap_pend * 2 : 64;
                pending_t *np = realloc(pend, cap_pend * sizeof(*np));
                if (!np) {
                    rc = DM_ERR_NOMEM;
                    break;
                }
                pend = np;
            }
            pend[n_pend++] = (pending_t){pos, len};
            break;
        case DM_JREC_CHECKPOINT: {
            uint64_t nt = get_n(&c, 8);
            if (c.bad) {
                rc = DM_ERR_LOG_META;
                break;
            }
            if (nt > log->next_txn) log->next_txn = nt;
            /* everything before the checkpoint is durable: apply without checks */
            for (size_t i = 0; i < n_pend && !rc; i++) {
                cur_t cc = {data + pend[i].pos + 9, data + pend[i].pos + 8 + pend[i].len, 0};
                rc = commit_walk(log, cc, false, err, NULL);
            }
            n_pend = 0;
            break;
        }
        default: rc = DM_ERR_LOG_META; break;
        }
        if (rc) {
            rc = dm_error_set(err, rc == DM_ERR_NOMEM ? rc : DM_ERR_LOG_META,
                              "%s: record at byte %zu (type %u) is invalid", path, pos, body[0]);
            goto out;
        }
        pos += 8 + len;
    }
    if (torn) {
        DM_WARN("log", "journal=%s: cut %zu torn bytes at byte %zu (a write the crash interrupted)",
                path, size - pos, pos);
        if (ftruncate(fd, (off_t)pos)) {
            rc = dm_error_set(err, DM_ERR_IO, "truncate %s: %s", path, strerror(errno));
            goto out;
        }
        size = pos;
    }
    /* Commits since the last checkpoint: apply each only if all its data is intact; the
     * first one that is not ends the committed history. */
    size_t applied = 0;
    for (; applied < n_pend; applied++) {
        cur_t cc = {data + pend[applied].pos + 9, data + pend[applied].pos + 8 + pend[applied].len,
                    0};
        dm_error_t verr = {0};
        uint64_t txn = 0;
        rc = commit_walk(log, cc, true, &verr, &txn);
        if (rc == DM_ERR_LOG_CORRUPT) {
            DM_WARN("log",
                    "journal=%s: commit txn=%" PRIu64 " at byte %" PRIu64
                    " is not fully on disk (%s); dropping it and %zu later commits",
                    path, txn, pend[applied].pos, verr.message, n_pend - applied - 1);
            rc = DM_OK;
            break;
        }
        if (rc) {
            if (err) *err = verr;
            goto out;
        }
        rc = commit_walk(log, cc, false, err, NULL);
        if (rc) goto out;
    }
    log->journal_fd = fd;
    fd = -1;
    log->journal_size = size;
    if (n_pend > 0 || torn) {
        /* Make what recovery decided the new durable truth: the data it accepted is fsynced
         * (it may only have been in the page cache), then the journal is rewritten. */
        for (uint32_t id = 1; id < log->n_ids; id++) {
            dm_topic_t *t = log->by_id[id];
            if (!t || t->deleted) continue;
            for (int32_t i = 0; i < t->conf.partitions; i++)
                if (t->parts[i].crc_end >= 0) {
                    rc = dm_partition_ensure_open(log, &t->parts[i], err);
                    if (!rc) rc = dm_partition_fsync(log, &t->parts[i], err);
                    if (rc) goto out;
                }
        }
        rc = dm_journal_checkpoint(log, err);
    }
out:
    if (fd >= 0) close(fd);
    free(pend);
    free(data);
    return rc;
}

/* ==== checkpoint ========================================================================= */

dm_err_t dm_journal_checkpoint(dm_log_t *log, dm_error_t *err)
{
    dm_buf_t out = DM_BUF_INIT, body = DM_BUF_INIT;
    dm_buf_append(&out, JMAGIC, JMAGIC_LEN);
    for (uint32_t id = 1; id < log->n_ids; id++) {
        dm_topic_t *t = log->by_id[id];
        if (!t || t->deleted) continue;
        dm_buf_reset(&body);
        dm_journal_enc_create(&body, t);
        frame(&out, body.data, body.len);
        for (int32_t i = 0; i < t->conf.partitions; i++) {
            if (t->parts[i].journal_end <= 0) continue;
            dm_buf_reset(&body);
            put_u8(&body, DM_JREC_COMMIT);
            put_u64(&body, 0);
            put_u32(&body, 1);
            put_u32(&body, t->id);
            put_u32(&body, (uint32_t)i);
            put_u64(&body, (uint64_t)t->parts[i].journal_end);
            put_u64(&body, (uint64_t)t->parts[i].journal_end);
            put_u32(&body, 0);
            frame(&out, body.data, body.len);
        }
    }
    pthread_mutex_lock(&log->groups_mu);
    for (uint32_t b = 0; b < log->n_gbuckets; b++)
        for (dm_group_off_t *g = log->gbuckets[b]; g; g = g->next) {
            dm_topic_t *t = dm_log_topic_by_id(log, g->topic_id);
            if (!t || t->deleted) continue;
            dm_buf_reset(&body);
            put_u8(&body, DM_JREC_COMMIT);
            put_u64(&body, 0);
            put_u32(&body, 0);
            put_u32(&body, 1);
            put_str(&body, g->group);
            put_u32(&body, g->topic_id);
            put_u32(&body, (uint32_t)g->partition);
            put_u64(&body, (uint64_t)g->offset);
            frame(&out, body.data, body.len);
        }
    pthread_mutex_unlock(&log->groups_mu);
    dm_buf_reset(&body);
    put_u8(&body, DM_JREC_CHECKPOINT);
    put_u64(&body, log->next_txn);
    frame(&out, body.data, body.len);
    dm_buf_free(&body);
    if (!out.data) return dm_error_set(err, DM_ERR_NOMEM, "journal checkpoint");

    char tmp[4096], path[4096];
    snprintf(tmp, sizeof(tmp), "%s/journal.tmp", log->dir);
    snprintf(path, sizeof(path), "%s/journal", log->dir);
    dm_err_t rc = DM_OK;
    int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = dm_error_set(err, DM_ERR_IO, "create %s: %s", tmp, strerror(errno));
        goto out;
    }
    size_t done = 0;
    while (done < out.len) {
        ssize_t w = write(fd, out.data + done, out.len - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            int e = w < 0 ? errno : ENOSPC;
            rc = dm_error_set(err, e == ENOSPC ? DM_ERR_NO_SPACE : DM_ERR_IO, "write %s: %s", tmp,
                              strerror(e));
            close(fd);
            unlink(tmp);
            goto out;
        }
        done += (size_t)w;
    }
    if (fsync(fd) || rename(tmp, path)) {
        rc = dm_error_set(err, DM_ERR_IO, "checkpoint %s: %s", path, strerror(errno));
        close(fd);
        unlink(tmp);
        goto out;
    }
    dm_fsync_dir(log->dir);
    if (log->journal_fd >= 0) close(log->journal_fd);
    log->journal_fd = fd;
    log->journal_size = out.len;
out:
    dm_buf_free(&out);
    return rc;
}
