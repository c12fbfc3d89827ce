/* connectors/postgres/pgoutput.c — pgoutput (protocol v1) message decoder. */
#include "connectors/postgres/pgoutput.h"

#include <string.h>

typedef struct reader {
    const uint8_t *p;
    size_t len, off;
    dm_arena_t *arena;
    dm_error_t *err;
    dm_err_t rc;
} reader_t;

static bool need(reader_t *r, size_t n, const char *what)
{
    if (r->rc) return false;
    if (r->len - r->off >= n) return true;
    r->rc = dm_error_set(r->err, DM_ERR_TRUNCATED,
                         "pgoutput message '%c': ends at byte %zu inside %s (needs %zu more)",
                         r->len ? r->p[0] : '?', r->len, what, n - (r->len - r->off));
    return false;
}

static uint64_t get_be(reader_t *r, size_t n, const char *what)
{
    if (!need(r, n, what)) return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | r->p[r->off + i];
    r->off += n;
    return v;
}

static const char *get_string(reader_t *r, const char *what)
{
    if (r->rc) return "";
    const uint8_t *end = memchr(r->p + r->off, 0, r->len - r->off);
    if (!end) {
        r->rc = dm_error_set(r->err, DM_ERR_TRUNCATED,
                             "pgoutput message '%c': %s at byte %zu has no terminating NUL",
                             r->p[0], what, r->off);
        return "";
    }
    size_t n = (size_t)(end - (r->p + r->off));
    char *s = dm_arena_strndup(r->arena, (const char *)r->p + r->off, n);
    r->off += n + 1;
    return s ? s : "";
}

static void get_tuple(reader_t *r, dm_pgoutput_tuple_t *t)
{
    t->n = (uint16_t)get_be(r, 2, "tuple column count");
    if (r->rc) return;
    t->cols = dm_arena_calloc(r->arena, t->n ? t->n : 1, sizeof(*t->cols));
    for (uint16_t i = 0; i < t->n && !r->rc; i++) {
        size_t at = r->off;
        char kind = (char)get_be(r, 1, "tuple column kind");
        t->cols[i].kind = kind;
        if (kind == 'n' || kind == 'u' || r->rc) continue;
        if (kind != 't') {
            r->rc = dm_error_set(r->err, DM_ERR_CORRUPT,
                                 "pgoutput message '%c': column %u at byte %zu has kind 0x%02x "
                                 "(expected n, u or t; binary values are not requested)",
                                 r->p[0], i, at, (unsigned)(uint8_t)kind);
            return;
        }
        uint32_t n = (uint32_t)get_be(r, 4, "column length");
        if (!need(r, n, "column value")) return;
        t->cols[i].len = n;
        t->cols[i].text = dm_arena_strndup(r->arena, (const char *)r->p + r->off, n);
        r->off += n;
    }
}

static void get_relation(reader_t *r, dm_pgoutput_msg_t *m)
{
    m->relid = (uint32_t)get_be(r, 4, "relation id");
    m->nspname = get_string(r, "namespace");
    m->relname = get_string(r, "relation name");
    m->replident = (char)get_be(r, 1, "replica identity");
    m->n_cols = (uint16_t)get_be(r, 2, "column count");
    if (r->rc) return;
    m->cols = dm_arena_calloc(r->arena, m->n_cols ? m->n_cols : 1, sizeof(*m->cols));
    for (uint16_t i = 0; i < m->n_cols && !r->rc; i++) {
        m->cols[i].key = get_be(r, 1, "column flags") & 1;
        m->cols[i].name = get_string(r, "column name");
        m->cols[i].type_oid = (uint32_t)get_be(r, 4, "column type");
        m->cols[i].typmod = (int32_t)(uint32_t)get_be(r, 4, "column type modifier");
    }
}

/* INSERT, UPDATE and DELETE: relation id, optional old tuple ('K'/'O'), new tuple ('N'). */
static void get_change(reader_t *r, dm_pgoutput_msg_t *m)
{
    m->relid = (uint32_t)get_be(r, 4, "relation id");
    char k = (char)get_be(r, 1, "tuple marker");
    if (r->rc) return;
    if (k == 'K' || k == 'O') {
        m->old_kind = k;
        get_tuple(r, &m->old_tuple);
        if (m->type == 'D' || r->rc) return;
        k = (char)get_be(r, 1, "tuple marker");
        if (r->rc) return;
    }
    if (k != 'N' || m->type == 'D') {
        r->rc = dm_error_set(r->err, DM_ERR_CORRUPT,
                             "pgoutput message '%c': unexpected tuple marker 0x%02x at byte %zu",
                             m->type, (unsigned)(uint8_t)k, r->off - 1);
        return;
    }
    get_tuple(r, &m->new_tuple);
}

dm_err_t dm_pgoutput_decode(const uint8_t *buf, size_t len, dm_arena_t *arena,
                            dm_pgoutput_msg_t *out, dm_error_t *err)
{
    memset(out, 0, sizeof(*out));
    reader_t r = {.p = buf, .len = len, .arena = arena, .err = err};
    if (len == 0) return dm_error_set(err, DM_ERR_TRUNCATED, "empty pgoutput message");
    out->type = (char)buf[0];
    r.off = 1;
    switch (out->type) {
    case 'B':
        out->lsn = get_be(&r, 8, "final LSN");
        out->ts_us = (int64_t)get_be(&r, 8, "commit time");
        out->xid = (uint32_t)get_be(&r, 4, "xid");
        break;
    case 'C':
        get_be(&r, 1, "flags");
        out->lsn = get_be(&r, 8, "commit LSN");
        out->end_lsn = get_be(&r, 8, "end LSN");
        out->ts_us = (int64_t)get_be(&r, 8, "commit time");
        break;
    case 'O':
        out->lsn = get_be(&r, 8, "origin LSN");
        out->relname = get_string(&r, "origin name");
        break;
    case 'R': get_relation(&r, out); break;
    case 'Y':
        out->relid = (uint32_t)get_be(&r, 4, "type id");
        out->nspname = get_string(&r, "type namespace");
        out->relname = get_string(&r, "type name");
        break;
    case 'I':
    case 'U':
    case 'D': get_change(&r, out); break;
    case 'T':
        out->n_relids = (uint32_t)get_be(&r, 4, "relation count");
        out->truncate_options = (uint8_t)get_be(&r, 1, "options");
        if (r.rc) break;
        if (out->n_relids > (len - r.off) / 4 + 1) {
            need(&r, (size_t)out->n_relids * 4, "relation ids");
            break;
        }
        out->relids = dm_arena_calloc(arena, out->n_relids ? out->n_relids : 1, sizeof(uint32_t));
        for (uint32_t i = 0; i < out->n_relids && !r.rc; i++)
            out->relids[i] = (uint32_t)get_be(&r, 4, "relation id");
        break;
    case 'M': break; /* logical decoding messages: not requested, ignored */
    default:
        return dm_error_set(err, DM_ERR_CORRUPT, "unknown pgoutput message type 0x%02x",
                            (unsigned)buf[0]);
    }
    return r.rc;
}
