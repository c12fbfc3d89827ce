/* connectors/mysql/my_source.c — the mysql source: the binlog stream (MariaDB
 * Connector/C's replication API), table maps to schemas, row events to
 * change events, and batches committed with their position.
 *
 * Exactly-once: every batch goes to the topics in one transport transaction
 * with a state record holding the position after the last transaction fully
 * written: the GTID state (MariaDB: the last GTID of each domain; MySQL: the
 * last GTID) and the binlog file:pos where the next transaction starts. A
 * large transaction split over batches is recorded as its GTID and how many of
 * its changes are written. A restart asks the server for the binlog after the
 * GTID state (MariaDB's @slave_connect_state), else from file:pos, and skips
 * the changes of a split transaction already written. */
#include <inttypes.h>
#include <mysqld_error.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/emit.h"
#include "connectors/mysql/my_internal.h"
#include "core/clock.h"
#include "core/hash.h"
#include "core/log.h"
#include "core/metrics.h"
#include "engine/task.h"

#define BATCH_EVENTS 10000 /* flush at a transaction's end beyond this */
#define SPLIT_EVENTS 50000 /* flush inside a transaction beyond this */
#define BATCH_BYTES  (16 << 20)
#define HEADER_LEN   19

/* ---- tables ------------------------------------------------------------------------------ */

static int table_index(dm_my_source_t *src, const char *db, const char *name)
{
    for (int i = 0; i < src->n_tables; i++)
        if (!strcmp(src->tables[i].db, db) && !strcmp(src->tables[i].name, name)) return i;
    return -1;
}

static my_map_t *map_of(dm_my_source_t *src, uint64_t table_id)
{
    for (int i = 0; i < src->n_maps; i++)
        if (src->maps[i].table_id == table_id) return &src->maps[i];
    return NULL;
}

static dm_err_t publish_schemas(dm_my_source_t *src, dm_my_table_t *t, dm_error_t *err)
{
    char *vj = NULL, *kj = NULL, subject[300];
    dm_err_t rc = dm_my_table_schema_json(t, &vj, &kj, err);
    snprintf(subject, sizeof(subject), "%s-value", t->topic);
    if (!rc) rc = src->env.ensure_topic(src->env.ctx, t->topic, src->partitions, subject, err);
    if (!rc) rc = src->env.register_schema(src->env.ctx, subject, vj, &t->value_id, err);
    if (!rc) rc = dm_avro_schema_parse(vj, strlen(vj), &t->value_schema, err);
    if (!rc && kj) {
        snprintf(subject, sizeof(subject), "%s-key", t->topic);
        rc = src->env.register_schema(src->env.ctx, subject, kj, &t->key_id, err);
        if (!rc) rc = dm_avro_schema_parse(kj, strlen(kj), &t->key_schema, err);
    }
    free(vj);
    free(kj);
    if (rc) dm_error_prefix(err, "source %s: table %s.%s", src->name, t->db, t->name);
    return rc;
}

/* Adds (or replaces) the model of a captured table, registering its schemas
 * when they changed. Takes t. *index gets its index. */
static dm_err_t put_table(dm_my_source_t *src, dm_my_table_t *t, int *index, dm_error_t *err)
{
    int ti = table_index(src, t->db, t->name);
    if (ti >= 0 && dm_my_table_same(t, &src->tables[ti])) {
        dm_my_table_clear(t);
        *index = ti;
        return DM_OK;
    }
    dm_my_table_topic(src, t->db, t->name, t->topic, sizeof(t->topic));
    for (int i = 0; i < t->n_cols; i++)
        if (t->cols[i].type == DM_MYT_GEOMETRY || t->cols[i].type == DM_MYT_DECIMAL) {
            if (!src->warned_unknown)
                DM_WARN("connector",
                        "source=%s connector=mysql: column %s.%s.%s (binlog type %u) has no Avro "
                        "mapping; its values are sent as hex strings (this warning is shown once)",
                        src->name, t->db, t->name, t->cols[i].name, t->cols[i].type);
            src->warned_unknown = true;
        }
    dm_err_t rc = publish_schemas(src, t, err);
    if (rc) {
        dm_my_table_clear(t);
        return rc;
    }
    if (ti < 0) {
        dm_my_table_t *grown = realloc(src->tables, ((size_t)src->n_tables + 1) * sizeof(*grown));
        if (!grown) {
            dm_my_table_clear(t);
            return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
        }
        src->tables = grown;
        ti = src->n_tables++;
        DM_INFO("connector", "source=%s connector=mysql: capturing %s.%s into %s (schema id %u)",
                src->name, t->db, t->name, t->topic, t->value_id);
    } else {
        DM_INFO("connector", "source=%s connector=mysql: table %s.%s changed; schema id %u",
                src->name, t->db, t->name, t->value_id);
        if (dm_dblog_busy(&src->dblog, ti)) dm_dblog_abort(&src->dblog);
        dm_my_table_clear(&src->tables[ti]);
    }
    src->tables[ti] = *t;
    *index = ti;
    return DM_OK;
}

dm_err_t dm_my_add_table_from_schema(dm_my_source_t *src, const char *db, const char *name,
                                     dm_error_t *err)
{
    if (table_index(src, db, name) >= 0) return DM_OK;
    dm_my_table_t t;
    int ti;
    dm_err_t rc = dm_my_table_from_schema(src, db, name, &t, err);
    return rc ? rc : put_table(src, &t, &ti, err);
}

/* A table map: the table's columns as the binlog has them at this point. A
 * change of columns (DDL earlier in the binlog) is a new schema version,
 * through the registry's compatibility check. */
static dm_err_t on_table_map(dm_my_source_t *src, const uint8_t *body, size_t len, dm_error_t *err)
{
    dm_my_table_map_t tm;
    dm_err_t rc = dm_my_table_map_decode(body, len, &src->arena, &tm, err);
    if (rc) return rc;
    my_map_t *m = map_of(src, tm.table_id);
    if (!m) {
        my_map_t *grown = realloc(src->maps, ((size_t)src->n_maps + 1) * sizeof(*grown));
        if (!grown) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
        src->maps = grown;
        m = &src->maps[src->n_maps++];
        m->table_id = tm.table_id;
    }
    m->table = -1;
    char sdb[130] = "", stable[130] = "";
    const char *dot = strchr(src->conf->signal_table, '.');
    if (dot) {
        snprintf(sdb, sizeof(sdb), "%.*s", (int)(dot - src->conf->signal_table),
                 src->conf->signal_table);
        snprintf(stable, sizeof(stable), "%s", dot + 1);
    }
    if (!strcmp(tm.db, sdb) && !strcmp(tm.table, stable)) { /* watermarks */
        dm_my_table_clear(&src->signal);
        m->table = -2;
        rc = dm_my_table_from_map(&tm, &src->signal, err);
        return rc ? (dm_error_prefix(err, "source %s", src->name), rc) : DM_OK;
    }
    if (!dm_my_captured(src, tm.db, tm.table)) return DM_OK;
    dm_my_table_t t;
    rc = dm_my_table_from_map(&tm, &t, err);
    if (rc) return dm_error_prefix(err, "source %s", src->name), rc;
    return put_table(src, &t, &m->table, err);
}

/* ---- the batch --------------------------------------------------------------------------- */

static void position_text(const my_position_t *p, bool mariadb, char *out, size_t cap)
{
    char g[400];
    if (mariadb)
        dm_my_gtid_state_text(&p->gtid, g, sizeof(g));
    else
        snprintf(g, sizeof(g), "%s", p->mysql_gtid);
    snprintf(out, cap, "gtid=%s;file=%s:%" PRIu64, g, p->file, p->pos);
}

dm_err_t dm_my_emit(dm_my_source_t *src, int table, const dm_my_event_t *ev, dm_error_t *err)
{
    if (src->n_pend == src->cap_pend) {
        size_t cap = src->cap_pend ? src->cap_pend * 2 : 1024;
        my_pending_t *p = realloc(src->pend, cap * sizeof(*p));
        if (!p) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
        src->pend = p;
        src->cap_pend = cap;
    }
    my_pending_t *p = &src->pend[src->n_pend];
    dm_buf_reset(&src->key);
    p->vstart = src->bytes.len;
    dm_err_t rc = dm_my_event_encode(&src->tables[table], ev, &src->arena, &src->key, &p->has_key,
                                     &src->bytes, err);
    p->vlen = src->bytes.len - p->vstart;
    p->kstart = src->bytes.len;
    if (!rc && p->has_key) rc = dm_buf_append(&src->bytes, src->key.data, src->key.len);
    if (rc) {
        src->bytes.len = p->vstart;
        return rc;
    }
    p->klen = src->key.len;
    p->table = table;
    p->partition = ev->op == 't' ? -1
                   : p->has_key ? dm_txn_key_partition(src->key.data, src->key.len, src->partitions)
                                : 0;
    src->n_pend++;
    return DM_OK;
}

dm_err_t dm_my_dead(dm_my_source_t *src, int table, const void *raw, size_t len, const char *reason,
                    dm_error_t *err)
{
    const dm_my_table_t *t = &src->tables[table];
    char where[900];
    position_text(&src->next, src->mariadb, where, sizeof(where));
    if (!src->env.dead_letter_topic)
        return dm_error_set(err, DM_ERR_CORRUPT, "source %s: a row of %s.%s at %s row %d: %s",
                            src->name, t->db, t->name, where, src->row, reason);
    if (src->n_pend == src->cap_pend) {
        size_t cap = src->cap_pend ? src->cap_pend * 2 : 1024;
        my_pending_t *p = realloc(src->pend, cap * sizeof(*p));
        if (!p) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
        src->pend = p;
        src->cap_pend = cap;
    }
    my_pending_t *p = &src->pend[src->n_pend];
    size_t mark = src->bytes.len;
    p->vstart = src->bytes.len;
    dm_err_t rc = dm_buf_append(&src->bytes, raw, len);
    p->vlen = len;
    p->kstart = src->bytes.len;
    if (!rc) rc = dm_buf_append_str(&src->bytes, reason);
    p->klen = src->bytes.len - p->kstart;
    p->wstart = src->bytes.len;
    if (!rc) rc = dm_buf_printf(&src->bytes, "%s.%s@%s#row=%d", t->db, t->name, where, src->row);
    p->wlen = src->bytes.len - p->wstart;
    if (rc) {
        src->bytes.len = mark;
        return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    }
    p->has_key = false;
    p->table = -1;
    p->partition = 0;
    src->n_pend++;
    src->n_dead++;
    DM_WARN("mysql", "source=%s: a row of %s.%s at %s goes to %s: %s", src->name, t->db, t->name,
            where, src->env.dead_letter_topic, reason);
    return DM_OK;
}

void dm_my_position_text(const dm_my_source_t *src, char *out, size_t cap)
{
    position_text(&src->next, src->mariadb, out, cap);
}

static json_t *position_json(const my_position_t *p)
{
    char g[400];
    dm_my_gtid_state_text(&p->gtid, g, sizeof(g));
    return json_pack("{s:s, s:s, s:s, s:I, s:s, s:I}", "gtid", g, "mysql_gtid", p->mysql_gtid,
                     "file", p->file, "pos", (json_int_t)p->pos, "partial_gtid", p->partial_gtid,
                     "partial_rows", (json_int_t)p->partial_rows);
}

static void update_stats(dm_my_source_t *src)
{
    char pos[700];
    position_text(&src->durable, src->mariadb, pos, sizeof(pos));
    double secs = src->last_commit_ms ? (double)(dm_wall_ms() - src->last_commit_ms) / 1e3 : 0.0;
    json_t *st = json_pack("{s:s, s:s, s:I, s:I, s:I, s:f, s:o}", "position", pos, "flavor",
                           src->mariadb ? "mariadb" : "mysql", "server_id",
                           (json_int_t)src->server_id, "events", (json_int_t)src->events_total,
                           "dead_letters", (json_int_t)src->dead_total, "seconds_since_last_commit",
                           secs < 0 ? 0.0 : secs, "snapshots", dm_dblog_status(&src->dblog));
    pthread_mutex_lock(&src->mu);
    json_decref(src->stats);
    src->stats = st;
    pthread_mutex_unlock(&src->mu);
}

/* Commits the batch and the position in one transaction. */
static dm_err_t flush(dm_my_source_t *src, dm_error_t *err)
{
    if (src->in_txn && src->row > 0) { /* part of a transaction: say how much */
        snprintf(src->next.partial_gtid, sizeof(src->next.partial_gtid), "%s", src->txn_id);
        src->next.partial_rows = src->row;
    }
    if (!src->n_pend && !memcmp(&src->next, &src->durable, sizeof(src->next)) &&
        !src->dblog.dirty && !src->unsaved_start)
        return DM_OK;
    int64_t now = dm_wall_ms();
    dm_err_t rc = DM_OK;
    int topic = -1, topic_of = -1;
    for (size_t i = 0; i < src->n_pend && !rc; i++) {
        const my_pending_t *p = &src->pend[i];
        if (p->table < 0) { /* a dead letter: the reason and where in headers */
            int dlq = -1;
            dm_record_header_t *h = dm_arena_alloc(&src->arena, 3 * sizeof(*h));
            if (!h) {
                rc = dm_error_set(err, DM_ERR_NOMEM, "out of memory");
                break;
            }
            const uint8_t *b = src->bytes.data;
            h[0] = (dm_record_header_t){DM_DLQ_REASON, (uint32_t)strlen(DM_DLQ_REASON),
                                        b + p->kstart, (int32_t)p->klen};
            h[1] = (dm_record_header_t){DM_DLQ_SOURCE, (uint32_t)strlen(DM_DLQ_SOURCE),
                                        b + p->wstart, (int32_t)p->wlen};
            h[2] = (dm_record_header_t){"dm.source.connector", 19, (const uint8_t *)"mysql", 5};
            dm_record_t r = {.timestamp = now,
                             .key_len = -1,
                             .value = b + p->vstart,
                             .value_len = (int32_t)p->vlen,
                             .headers = h,
                             .n_headers = 3};
            if (!(rc = dm_txn_builder_topic(&src->txn, src->env.dead_letter_topic, 1, &dlq, err)))
                rc = dm_txn_builder_add(&src->txn, dlq, 0, &r, err);
            topic_of = -1;
            continue;
        }
        if (p->table != topic_of &&
            (rc = dm_txn_builder_topic(&src->txn, src->tables[p->table].topic, src->partitions,
                                       &topic, err)))
            break;
        topic_of = p->table;
        dm_record_t r = {.timestamp = now,
                         .key = p->has_key ? src->bytes.data + p->kstart : NULL,
                         .key_len = p->has_key ? (int32_t)p->klen : -1,
                         .value = src->bytes.data + p->vstart,
                         .value_len = (int32_t)p->vlen};
        for (int32_t part = p->partition < 0 ? 0 : p->partition;
             !rc && part < (p->partition < 0 ? src->partitions : p->partition + 1); part++)
            rc = dm_txn_builder_add(&src->txn, topic, part, &r, err);
    }
    json_t *state = position_json(&src->next);
    json_object_set_new(state, "snapshots", dm_dblog_json(&src->dblog));
    char *text = state ? json_dumps(state, JSON_COMPACT) : NULL;
    json_decref(state);
    if (!rc && !text) rc = dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    int state_topic = -1;
    if (!rc) rc = dm_txn_builder_topic(&src->txn, src->state_topic, 1, &state_topic, err);
    if (!rc) {
        dm_record_t s = {.timestamp = now,
                         .key_len = -1,
                         .value = (const uint8_t *)text,
                         .value_len = (int32_t)strlen(text)};
        rc = dm_txn_builder_add(&src->txn, state_topic, 0, &s, err);
    }
    if (!rc)
        rc = dm_txn_builder_commit(&src->txn, err);
    else
        dm_txn_builder_clear(&src->txn);
    free(text);
    if (rc) return dm_error_prefix(err, "source %s: writing a batch", src->name), rc;
    if (src->m_events) dm_metric_add(src->m_events, src->n_pend - src->n_dead);
    if (src->m_lag_ms && src->last_commit_ms)
        dm_metric_set(src->m_lag_ms, now - src->last_commit_ms);
    src->events_total += src->n_pend - src->n_dead;
    src->dead_total += src->n_dead;
    src->n_dead = 0;
    src->durable = src->next;
    src->dblog.dirty = false;
    src->unsaved_start = false;
    src->n_pend = 0;
    dm_buf_reset(&src->bytes);
    dm_arena_reset(&src->arena);
    atomic_store(&src->status->position, (int64_t)src->events_total);
    update_stats(src);
    return DM_OK;
}

/* ---- the state record -------------------------------------------------------------------- */

static dm_err_t load_state(dm_my_source_t *src, bool *found, dm_error_t *err)
{
    *found = false;
    memset(&src->durable, 0, sizeof(src->durable));
    dm_dblog_clear(&src->dblog);
    int64_t start, end;
    dm_err_t rc = dm_transport_offsets(src->t, src->state_topic, 0, &start, &end, err);
    if (rc || end <= start) return rc;
    dm_transport_batch_t b = {0};
    rc = dm_transport_fetch(src->t, src->state_topic, 0, end - 1, 1 << 16, 0, &b, err);
    if (!rc && b.n > 0) {
        const dm_record_t *rec = &b.records[b.n - 1];
        json_error_t je;
        json_t *j = json_loadb((const char *)rec->value, (size_t)rec->value_len, 0, &je);
        my_position_t *p = &src->durable;
        if (!j) {
            rc = dm_error_set(err, DM_ERR_CORRUPT, "source %s: state record at %s:%lld: %s",
                              src->name, src->state_topic, (long long)(end - 1), je.text);
        } else {
            const char *g = json_string_value(json_object_get(j, "gtid"));
            rc = dm_my_gtid_state_parse(g ? g : "", &p->gtid, err);
            snprintf(p->mysql_gtid, sizeof(p->mysql_gtid), "%s",
                     json_string_value(json_object_get(j, "mysql_gtid")) ?: "");
            snprintf(p->file, sizeof(p->file), "%s",
                     json_string_value(json_object_get(j, "file")) ?: "");
            p->pos = (uint64_t)json_integer_value(json_object_get(j, "pos"));
            snprintf(p->partial_gtid, sizeof(p->partial_gtid), "%s",
                     json_string_value(json_object_get(j, "partial_gtid")) ?: "");
            p->partial_rows = json_integer_value(json_object_get(j, "partial_rows"));
            dm_dblog_load(&src->dblog, json_object_get(j, "snapshots"));
            json_decref(j);
            *found = !rc;
        }
    }
    dm_transport_batch_free(src->t, &b);
    return rc;
}

/* Where the binlog is now: the start for a source that never committed. */
static dm_err_t current_position(dm_my_source_t *src, dm_error_t *err)
{
    MYSQL_RES *res;
    dm_err_t rc = dm_my_query(src, "reading the binlog position", "SHOW MASTER STATUS", &res, err);
    if (rc) return rc;
    MYSQL_ROW row = mysql_fetch_row(res);
    if (!row || !row[0] || !row[1]) {
        mysql_free_result(res);
        return dm_error_set(err, DM_ERR_CONFIG,
                            "source %s: SHOW MASTER STATUS is empty: the binary log is off",
                            src->name);
    }
    my_position_t *p = &src->durable;
    memset(p, 0, sizeof(*p));
    snprintf(p->file, sizeof(p->file), "%s", row[0]);
    p->pos = strtoull(row[1], NULL, 10);
    if (!src->mariadb && mysql_num_fields(res) >= 5 && row[4])
        snprintf(p->mysql_gtid, sizeof(p->mysql_gtid), "%.79s", row[4]);
    mysql_free_result(res);
    if (!src->mariadb) return DM_OK;
    rc =
        dm_my_query(src, "reading the GTID position", "SELECT @@GLOBAL.gtid_binlog_pos", &res, err);
    if (rc) return rc;
    row = mysql_fetch_row(res);
    if (row && row[0]) rc = dm_my_gtid_state_parse(row[0], &p->gtid, err);
    mysql_free_result(res);
    return rc;
}

/* ---- the stream -------------------------------------------------------------------------- */

static dm_err_t begin_txn(dm_my_source_t *src, const char *gtid, uint32_t server, int64_t ts_ms,
                          uint64_t pos)
{
    src->in_txn = true;
    if (gtid != src->gtid) snprintf(src->gtid, sizeof(src->gtid), "%s", gtid);
    src->txn_server = server;
    src->txn_pos = pos;
    src->row = 0;
    src->commit_ms = ts_ms;
    /* A transaction is known by its GTID, or without one by where it starts. */
    if (*gtid)
        snprintf(src->txn_id, sizeof(src->txn_id), "%s", gtid);
    else
        snprintf(src->txn_id, sizeof(src->txn_id), "@%.200s:%" PRIu64, src->file, pos);
    /* Part of this transaction is in the topics already: skip that part. */
    src->skip_rows = *src->next.partial_gtid && !strcmp(src->next.partial_gtid, src->txn_id)
                         ? src->next.partial_rows
                         : 0;
    return DM_OK;
}

static bool socket_idle(dm_my_source_t *src)
{
    struct pollfd pfd = {.fd = (int)mysql_get_socket(src->repl), .events = POLLIN};
    return pfd.fd < 0 || poll(&pfd, 1, 0) == 0;
}

/* Moves snapshot requests from the API into the queue. */
static dm_err_t take_requests(dm_my_source_t *src, dm_error_t *err)
{
    pthread_mutex_lock(&src->mu);
    json_t *reqs = src->requests;
    src->requests = json_array();
    pthread_mutex_unlock(&src->mu);
    dm_err_t rc = DM_OK;
    size_t i;
    json_t *q;
    json_array_foreach(reqs, i, q)
    {
        const char *table = json_string_value(json_object_get(q, "table"));
        const json_t *from = json_object_get(q, "from"), *to = json_object_get(q, "to");
        for (int t = 0; t < src->n_tables && !rc; t++) {
            char name[300];
            snprintf(name, sizeof(name), "%s.%s", src->tables[t].db, src->tables[t].name);
            if (table && strcmp(table, name)) continue;
            rc = dm_dblog_add(&src->dblog, name, src->tables[t].n_key, from, to, 0, err);
            if (rc == DM_ERR_INVALID) { /* a bad range: say so, keep streaming */
                DM_WARN("connector", "%s; snapshot request dropped", err->message);
                rc = DM_OK;
            }
        }
        if (rc) break;
    }
    json_decref(reqs);
    return rc;
}

/* Between transactions: commit the batch, take snapshot requests, start the
 * next snapshot chunk. */
static dm_err_t tick(dm_my_source_t *src, dm_error_t *err)
{
    dm_err_t rc = flush(src, err);
    if (!rc) rc = take_requests(src, err);
    if (!rc && !src->dblog.active && src->dblog.n_snaps) rc = dm_dblog_step(&src->dblog, err);
    return rc;
}

static dm_err_t commit_txn(dm_my_source_t *src, uint64_t next_pos, dm_error_t *err)
{
    if (!src->in_txn) return DM_OK;
    src->in_txn = src->standalone = false;
    my_position_t *n = &src->next;
    if (src->mariadb) {
        uint32_t d = 0, s = 0;
        unsigned long long q = 0;
        if (sscanf(src->gtid, "%u-%u-%llu", &d, &s, &q) == 3)
            dm_my_gtid_state_set(&n->gtid, d, s, q);
    } else if (*src->gtid) {
        snprintf(n->mysql_gtid, sizeof(n->mysql_gtid), "%s", src->gtid);
    }
    snprintf(n->file, sizeof(n->file), "%s", src->file);
    if (next_pos) n->pos = next_pos;
    n->partial_gtid[0] = '\0';
    n->partial_rows = 0;
    src->last_commit_ms = src->commit_ms;
    if (src->n_pend >= BATCH_EVENTS || src->bytes.len >= BATCH_BYTES || socket_idle(src))
        return tick(src, err);
    return DM_OK;
}

/* TRUNCATE of a captured table: a 't' event to every partition. */
static dm_err_t on_truncate(dm_my_source_t *src, const char *db, const char *stmt, dm_error_t *err)
{
    const char *p = stmt + 8;
    while (*p == ' ')
        p++;
    if (!strncasecmp(p, "TABLE ", 6)) p += 6;
    while (*p == ' ')
        p++;
    char a[130] = "", b[130] = "";
    size_t i = 0;
    char *out = a;
    for (; *p && *p != ' ' && *p != ';' && i < 129; p++) {
        if (*p == '`') continue;
        if (*p == '.' && out == a) {
            out[i] = '\0';
            out = b;
            i = 0;
            continue;
        }
        out[i++] = *p;
    }
    out[i] = '\0';
    const char *tdb = *b ? a : db, *tname = *b ? b : a;
    int ti = table_index(src, tdb, tname);
    if (ti < 0) return DM_OK;
    dm_dblog_saw_truncate(&src->dblog, ti);
    char pos[700];
    position_text(&src->next, src->mariadb, pos, sizeof(pos));
    dm_my_event_t ev = {.op = 't',
                        .gtid = src->gtid,
                        .file = src->file,
                        .pos = src->txn_pos,
                        .row = src->row++,
                        .position = pos,
                        .server_id = src->txn_server,
                        .commit_ms = src->commit_ms,
                        .now_ms = dm_wall_ms()};
    return dm_my_emit(src, ti, &ev, err);
}

/* A QUERY event body: thread id, time, schema length, error code, status
 * variables, schema, NUL, statement (up to the end of the body). Parsed here
 * because the library's parse counts the checksum into the statement. */
static dm_err_t on_query(dm_my_source_t *src, const MARIADB_RPL_EVENT *ev, const uint8_t *body,
                         size_t len, dm_error_t *err)
{
    if (len < 13)
        return dm_error_set(err, DM_ERR_CORRUPT, "source %s: short QUERY event", src->name);
    size_t db_len = body[8], status_len = (size_t)(body[11] | body[12] << 8);
    size_t off = 13 + status_len;
    if (off + db_len + 1 > len)
        return dm_error_set(err, DM_ERR_CORRUPT, "source %s: QUERY event is cut short", src->name);
    char db[300];
    snprintf(db, sizeof(db), "%.*s", (int)db_len, (const char *)body + off);
    const char *s = (const char *)body + off + db_len + 1;
    size_t n = len - (off + db_len + 1);
    while (n && (*s == ' ' || *s == '\n'))
        s++, n--;
    if (n == 5 && !strncasecmp(s, "BEGIN", 5)) {
        if (!src->in_txn) begin_txn(src, "", ev->server_id, (int64_t)ev->timestamp * 1000, 0);
        return DM_OK;
    }
    if ((n == 6 && !strncasecmp(s, "COMMIT", 6)) || (n == 8 && !strncasecmp(s, "ROLLBACK", 8)))
        return commit_txn(src, ev->next_event_pos, err);
    dm_err_t rc = DM_OK;
    if (n > 8 && !strncasecmp(s, "TRUNCATE", 8)) {
        char *stmt = strndup(s, n);
        if (!stmt) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
        rc = on_truncate(src, db, stmt, err);
        free(stmt);
    } else if (n > 5 && (!strncasecmp(s, "ALTER", 5) || !strncasecmp(s, "CREATE", 6) ||
                         !strncasecmp(s, "DROP", 4) || !strncasecmp(s, "RENAME", 6))) {
        /* The next table map of a changed table carries its new columns (and
         * registers the new schema); here the DDL is only noted. */
        DM_INFO("connector", "source=%s connector=mysql: DDL in %s: %.*s", src->name,
                *db ? db : "-", (int)(n > 200 ? 200 : n), s);
    }
    if (!rc && (src->standalone || !src->in_txn)) {
        if (!src->in_txn)
            begin_txn(src, src->gtid, ev->server_id, (int64_t)ev->timestamp * 1000, 0);
        rc = commit_txn(src, ev->next_event_pos, err);
    }
    return rc;
}

/* Rows written to the signal table: snapshot watermarks. */
static dm_err_t on_signal_rows(dm_my_source_t *src, const dm_my_rows_t *rows, dm_error_t *err)
{
    if (rows->op != 'c' || !src->signal.n_cols) return DM_OK;
    dm_my_table_map_t tm = {.db = src->signal.db,
                            .table = src->signal.name,
                            .n_cols = (uint32_t)src->signal.n_cols,
                            .cols = src->signal.cols,
                            .has_names = true};
    const uint8_t *p = rows->rows;
    while (p < rows->end) {
        dm_my_value_t *v = dm_arena_calloc(&src->arena, tm.n_cols + 1, sizeof(*v));
        uint32_t missing;
        if (!v) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
        dm_err_t rc =
            dm_my_row_decode(&tm, rows->present, &p, rows->end, &src->arena, v, &missing, err);
        if (rc) return rc;
        if (v[0].kind != DM_MYV_BYTES) continue;
        char id[200];
        snprintf(id, sizeof(id), "%.*s", (int)v[0].n, v[0].s);
        bool done;
        if ((rc = dm_dblog_signal(&src->dblog, id, &done, err))) return rc;
    }
    return DM_OK;
}

static dm_err_t on_rows(dm_my_source_t *src, const MARIADB_RPL_EVENT *ev, const uint8_t *body,
                        size_t len, dm_error_t *err)
{
    dm_my_rows_t rows;
    dm_err_t rc = dm_my_rows_decode((uint8_t)ev->event_type, body, len, &rows, err);
    if (rc) return rc;
    my_map_t *m = map_of(src, rows.table_id);
    if (!m)
        return dm_error_set(err, DM_ERR_CORRUPT,
                            "source %s: rows of table id %" PRIu64 " without its table map",
                            src->name, rows.table_id);
    if (m->table == -2) return on_signal_rows(src, &rows, err);
    if (m->table < 0) return DM_OK;
    dm_my_table_t *t = &src->tables[m->table];
    char why[700];
    if (rows.n_cols != (uint32_t)t->n_cols) { /* the whole event: its rows cannot be split */
        snprintf(why, sizeof(why), "a rows event of %u columns, its table map has %d", rows.n_cols,
                 t->n_cols);
        return dm_my_dead(src, m->table, rows.rows, (size_t)(rows.end - rows.rows), why, err);
    }
    /* the table map as the decoder reads it (types, metadata, signedness) */
    dm_my_table_map_t tm = {.db = t->db,
                            .table = t->name,
                            .n_cols = (uint32_t)t->n_cols,
                            .cols = t->cols,
                            .has_names = true};
    char pos[700];
    position_text(&src->next, src->mariadb, pos, sizeof(pos));
    char *position = dm_arena_strdup(&src->arena, pos);
    const uint8_t *p = rows.rows;
    while (p < rows.end) {
        dm_my_value_t *before = NULL, *after = NULL;
        uint32_t missing = 0, missing_after = 0;
        const uint8_t *row_start = p;
        dm_my_value_t *a = dm_arena_calloc(&src->arena, (size_t)t->n_cols + 1, sizeof(*a));
        if (!a) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
        rc = dm_my_row_decode(&tm, rows.present, &p, rows.end, &src->arena, a, &missing, err);
        if (!rc && rows.op == 'u') {
            before = a;
            after = dm_arena_calloc(&src->arena, (size_t)t->n_cols + 1, sizeof(*after));
            if (!after) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
            rc = dm_my_row_decode(&tm, rows.present_after, &p, rows.end, &src->arena, after,
                                  &missing_after, err);
        }
        if (rc == DM_ERR_NOMEM) return rc;
        if (rc) { /* where the next row starts is unknown: the rest of the event */
            snprintf(why, sizeof(why), "cannot be decoded: %s", err ? err->message : "");
            return dm_my_dead(src, m->table, row_start, (size_t)(rows.end - row_start), why, err);
        }
        if ((missing || missing_after) && src->skip_rows > 0) { /* dead-lettered before */
            src->skip_rows--;
            src->row++;
            continue;
        }
        if (missing || missing_after) { /* a session with binlog_row_image other than FULL */
            snprintf(why, sizeof(why),
                     "the row lacks %u of its %d columns (written with binlog_row_image other "
                     "than FULL: SET GLOBAL binlog_row_image = 'FULL' and in that session)",
                     missing ? missing : missing_after, t->n_cols);
            if ((rc = dm_my_dead(src, m->table, row_start, (size_t)(p - row_start), why, err)))
                return rc;
            src->row++;
            continue;
        }
        if (rows.op == 'u') {
            /* decoded above */
        } else if (rows.op == 'd') {
            before = a;
        } else {
            after = a;
        }
        if (src->skip_rows > 0) { /* written before a restart */
            src->skip_rows--;
            src->row++;
            continue;
        }
        dm_my_event_t e = {.op = rows.op,
                           .before = before,
                           .after = after,
                           .gtid = src->gtid,
                           .file = src->file,
                           .pos = src->txn_pos,
                           .position = position,
                           .server_id = src->txn_server,
                           .commit_ms = src->commit_ms,
                           .now_ms = dm_wall_ms()};
        /* An update that changed the key: a delete of the old key and a create
         * of the new, so keyed consumers stay right. */
        bool moved = false;
        for (int k = 0; rows.op == 'u' && k < t->n_key; k++) {
            const dm_my_value_t *x = &before[t->key[k]], *y = &after[t->key[k]];
            moved |= x->kind != y->kind || x->i != y->i || x->u != y->u || x->n != y->n ||
                     x->d != y->d || (x->n && memcmp(x->s, y->s, x->n));
        }
        if (moved) {
            dm_my_event_t del = e;
            del.op = 'd';
            del.after = NULL;
            del.row = src->row;
            if ((rc = dm_my_emit(src, m->table, &del, err))) return rc;
            e.op = 'c';
            e.before = NULL;
        }
        e.row = src->row++;
        if ((rc = dm_my_emit(src, m->table, &e, err))) {
            if (rc == DM_ERR_NOMEM) return rc;
            snprintf(why, sizeof(why), "does not fit its schema: %s", err ? err->message : "");
            src->row--;
            rc = dm_my_dead(src, m->table, row_start, (size_t)(p - row_start), why, err);
            src->row++;
            if (rc) return rc;
            continue;
        }
        for (int side = 0; side < 2 && dm_dblog_busy(&src->dblog, m->table); side++) {
            const dm_my_value_t *r = side ? after : before;
            dm_buf_reset(&src->key); /* free between events */
            if (r && dm_my_key_text(t, r, &src->key))
                dm_dblog_saw(&src->dblog, m->table, src->key.data, src->key.len);
        }
        if (src->n_pend >= SPLIT_EVENTS || src->bytes.len >= 4 * BATCH_BYTES) {
            if ((rc = flush(src, err))) return rc;
            position = dm_arena_strdup(&src->arena, pos);
        }
    }
    return DM_OK;
}

/* The event's body: after the common header, without the checksum. */
static const uint8_t *event_body(dm_my_source_t *src, const MARIADB_RPL_EVENT *ev, size_t *len)
{
    const uint8_t *e = ev->raw_data + ev->raw_data_ofs;
    size_t total = ev->raw_data_size - ev->raw_data_ofs;
    size_t declared =
        total >= HEADER_LEN ? (size_t)(e[9] | e[10] << 8 | e[11] << 16 | (uint32_t)e[12] << 24) : 0;
    if (declared > total || declared < HEADER_LEN) declared = total;
    size_t crc = src->rpl->use_checksum ? 4 : 0;
    *len = declared >= HEADER_LEN + crc ? declared - HEADER_LEN - crc : 0;
    return e + HEADER_LEN;
}

static dm_err_t on_event(dm_my_source_t *src, const MARIADB_RPL_EVENT *ev, dm_error_t *err)
{
    size_t len;
    const uint8_t *body = event_body(src, ev, &len);
    switch ((int)ev->event_type) {
    case ROTATE_EVENT:
        snprintf(src->file, sizeof(src->file), "%.*s", (int)ev->event.rotate.filename.length,
                 ev->event.rotate.filename.str);
        return DM_OK;
    case GTID_EVENT: { /* MariaDB */
        char g[80];
        snprintf(g, sizeof(g), "%u-%u-%llu", ev->event.gtid.domain_id, ev->server_id,
                 (unsigned long long)ev->event.gtid.sequence_nr);
        begin_txn(src, g, ev->server_id, (int64_t)ev->timestamp * 1000,
                  ev->next_event_pos - ev->event_length);
        src->standalone = ev->event.gtid.flags & FL_STANDALONE;
        return DM_OK;
    }
    case GTID_LOG_EVENT: { /* MySQL */
        char g[80];
        dm_err_t rc = dm_my_gtid_mysql_decode(body, len, g, sizeof(g), err);
        if (rc) return rc;
        begin_txn(src, g, ev->server_id, (int64_t)ev->timestamp * 1000,
                  ev->next_event_pos - ev->event_length);
        return DM_OK;
    }
    case QUERY_EVENT: return on_query(src, ev, body, len, err);
    case TABLE_MAP_EVENT: return on_table_map(src, body, len, err);
    case WRITE_ROWS_EVENT_V1:
    case UPDATE_ROWS_EVENT_V1:
    case DELETE_ROWS_EVENT_V1:
    case WRITE_ROWS_EVENT:
    case UPDATE_ROWS_EVENT:
    case DELETE_ROWS_EVENT:
        if (!src->in_txn) begin_txn(src, "", ev->server_id, (int64_t)ev->timestamp * 1000, 0);
        return on_rows(src, ev, body, len, err);
    case XID_EVENT:
        src->commit_ms = (int64_t)ev->timestamp * 1000;
        return commit_txn(src, ev->next_event_pos, err);
    case HEARTBEAT_LOG_EVENT: return src->in_txn ? DM_OK : tick(src, err);
    case WRITE_ROWS_COMPRESSED_EVENT_V1:
    case UPDATE_ROWS_COMPRESSED_EVENT_V1:
    case DELETE_ROWS_COMPRESSED_EVENT_V1:
    case WRITE_ROWS_COMPRESSED_EVENT:
    case UPDATE_ROWS_COMPRESSED_EVENT:
    case DELETE_ROWS_COMPRESSED_EVENT:
    case QUERY_COMPRESSED_EVENT:
    case 40: /* MySQL's TRANSACTION_PAYLOAD_EVENT: a compressed transaction */
        return dm_error_set(
            err, DM_ERR_CONFIG,
            "source %s: the binlog is compressed (log_bin_compress=ON); the "
            "connector reads uncompressed events: SET GLOBAL log_bin_compress = OFF",
            src->name);
    default: return DM_OK;
    }
}

/* ---- a session --------------------------------------------------------------------------- */

static void session_end(dm_my_source_t *src)
{
    dm_dblog_abort(&src->dblog);
    dm_my_table_clear(&src->signal);
    if (src->rpl) mariadb_rpl_close(src->rpl);
    if (src->repl) mysql_close(src->repl);
    if (src->q) mysql_close(src->q);
    src->rpl = NULL;
    src->repl = src->q = NULL;
    for (int i = 0; i < src->n_tables; i++)
        dm_my_table_clear(&src->tables[i]);
    free(src->tables);
    free(src->maps);
    src->tables = NULL;
    src->maps = NULL;
    src->n_tables = src->n_maps = 0;
    src->n_pend = 0;
    dm_buf_reset(&src->bytes);
    dm_arena_reset(&src->arena);
    src->in_txn = src->standalone = false;
}

static dm_err_t repl_error(dm_my_source_t *src, dm_error_t *err)
{
    unsigned e = mysql_errno(src->repl);
    const char *msg = mysql_error(src->repl);
    /* 1236 also says "a replica with the same server_id connected": only a
     * position the server cannot find is final. */
    if (e == ER_MASTER_FATAL_ERROR_READING_BINLOG &&
        (strstr(msg, "purged") || strstr(msg, "Could not find") || strstr(msg, "could not find"))) {
        char pos[700];
        position_text(&src->durable, src->mariadb, pos, sizeof(pos));
        src->purged = true;
        return dm_error_set(err, DM_ERR_NOT_FOUND,
                            "source %s: the server no longer has the binlog at the source's "
                            "position (%s): %s. The changes since are lost to this source; "
                            "set on_purged: snapshot to start from the current position with "
                            "a new snapshot",
                            src->name, pos, msg);
    }
    if (e == ER_SPECIFIC_ACCESS_DENIED_ERROR || e == ER_ACCESS_DENIED_ERROR)
        return dm_error_set(err, DM_ERR_PERMISSION,
                            "source %s: user %s may not read the binlog: GRANT REPLICATION SLAVE "
                            "ON *.* TO '%s'@'%%' (%s)",
                            src->name, src->conf->user, src->conf->user, msg);
    return dm_error_set_retriable(err, DM_ERR_AGAIN,
                                  "source %s: binlog stream ended: %s (error %u)", src->name,
                                  *msg ? msg : "connection lost", e);
}

static dm_err_t start_stream(dm_my_source_t *src, dm_error_t *err)
{
    dm_err_t rc = dm_my_connect(src, &src->repl, err);
    if (rc) return rc;
    char sql[600], gtid[400] = "";
    if (src->mariadb) dm_my_gtid_state_text(&src->durable.gtid, gtid, sizeof(gtid));
    bool by_gtid = src->mariadb && *gtid;
    snprintf(sql, sizeof(sql),
             "SET @master_binlog_checksum = @@global.binlog_checksum, "
             "@master_heartbeat_period = %lld%s",
             (long long)src->conf->heartbeat_ms * 1000000LL,
             src->mariadb ? ", @mariadb_slave_capability = 4" : "");
    if (mysql_query(src->repl, sql)) return repl_error(src, err);
    if (by_gtid) {
        snprintf(sql, sizeof(sql),
                 "SET @slave_connect_state = '%s', @slave_gtid_strict_mode = 0, "
                 "@slave_gtid_ignore_duplicates = 0",
                 gtid);
        if (mysql_query(src->repl, sql)) return repl_error(src, err);
    }
    src->rpl = mariadb_rpl_init(src->repl);
    if (!src->rpl) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    const char *file = by_gtid ? "" : src->durable.file;
    mariadb_rpl_optionsv(src->rpl, MARIADB_RPL_SERVER_ID, (unsigned)src->server_id);
    mariadb_rpl_optionsv(src->rpl, MARIADB_RPL_FLAGS, (unsigned)0);
    mariadb_rpl_optionsv(src->rpl, MARIADB_RPL_FILENAME, file, strlen(file));
    mariadb_rpl_optionsv(src->rpl, MARIADB_RPL_START,
                         (unsigned long)(by_gtid || !src->durable.pos ? 4 : src->durable.pos));
    if (mariadb_rpl_open(src->rpl)) return repl_error(src, err);
    snprintf(src->file, sizeof(src->file), "%s", src->durable.file);
    DM_INFO("connector", "source=%s connector=mysql: reading the binlog from %s%s", src->name,
            by_gtid ? "GTID " : "", by_gtid ? gtid : src->durable.file);
    return DM_OK;
}

static dm_err_t session(dm_my_source_t *src, bool *streamed, dm_error_t *err)
{
    dm_err_t rc = dm_my_connect(src, &src->q, err);
    if (!rc) rc = dm_my_check_settings(src, err);
    if (!rc)
        rc = dm_my_query(src, "setting the session time zone", "SET time_zone = '+00:00'", NULL,
                         err);
    if (!rc) rc = dm_my_ensure_signal_table(src, err);
    if (!rc) rc = dm_my_check_tables(src, err);
    if (!rc) rc = src->env.ensure_topic(src->env.ctx, src->state_topic, 1, NULL, err);
    bool found = false, fresh = src->purged && src->conf->on_purged == DM_MY_PURGED_SNAPSHOT;
    if (!rc) rc = load_state(src, &found, err);
    if (!rc && fresh) { /* on_purged: snapshot — start over where the binlog is now */
        DM_WARN("connector",
                "source=%s connector=mysql: the binlog at the source's position was purged; "
                "starting from the current position with a new snapshot of every table",
                src->name);
        found = false;
        dm_dblog_clear(&src->dblog);
    }
    src->purged = false;
    if (!rc && !found) rc = current_position(src, err);
    /* A first start commits where it starts at once: a restart before the
     * first change must not skip the changes made meanwhile. */
    src->unsaved_start = !found;
    if (!rc && !found && (src->conf->snapshot == DM_MY_SNAPSHOT_INITIAL || fresh))
        for (int i = 0; i < src->n_tables && !rc; i++) {
            char q[300];
            snprintf(q, sizeof(q), "%s.%s", src->tables[i].db, src->tables[i].name);
            rc = dm_dblog_add(&src->dblog, q, src->tables[i].n_key, NULL, NULL, 0, err);
        }
    src->next = src->durable;
    if (!rc) rc = start_stream(src, err);
    if (!rc) rc = tick(src, err); /* the first snapshot chunk */
    if (rc) return rc;
    *streamed = true;
    dm_unit_set(src->status, DM_UNIT_RUNNING, NULL);
    update_stats(src);
    MARIADB_RPL_EVENT *ev = NULL;
    while (!rc && !atomic_load(&src->status->stop)) {
        ev = mariadb_rpl_fetch(src->rpl, ev);
        if (!ev) {
            rc = repl_error(src, err);
            break;
        }
        rc = on_event(src, ev, err);
    }
    mariadb_free_rpl_event(ev);
    if (!rc) rc = flush(src, err); /* stopping: keep what is complete */
    return rc;
}

void dm_my_source_run(dm_my_source_t *src, dm_unit_status_t *status)
{
    src->status = status;
    dm_unit_backoff(status, 250, 30000);
    while (!atomic_load(&status->stop)) {
        dm_error_t err = {0};
        bool streamed = false;
        dm_err_t rc = session(src, &streamed, &err);
        session_end(src);
        if (!rc || atomic_load(&status->stop)) break;
        if (streamed) status->backoff_ms = 0;
        if (src->purged && src->conf->on_purged == DM_MY_PURGED_SNAPSHOT) continue;
        /* The failure policy (connectors/unit.h): a server down or restarting
         * is retried; a missing setting, privilege or purged position is not
         * (the status names it and the statement that fixes it). */
        if (!dm_unit_retry(status, &err, NULL)) break;
    }
    if (dm_unit_state(status) != DM_UNIT_FAILED) dm_unit_set(status, DM_UNIT_STOPPED, NULL);
}

/* ---- life and the API -------------------------------------------------------------------- */

dm_err_t dm_my_source_new(const dm_source_env_t *env, const dm_mysql_config_t *conf,
                          dm_my_source_t **out, dm_error_t *err)
{
    dm_my_source_t *src = calloc(1, sizeof(*src));
    if (!src) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    src->t = env->transport;
    dm_txn_builder_init(&src->txn, src->t);
    src->name = strdup(env->name);
    src->partitions = env->partitions > 0 ? env->partitions : 1;
    src->conf = conf;
    src->env = *env;
    src->server_id = conf->server_id
                         ? (uint32_t)conf->server_id
                         : 5400u + (uint32_t)(dm_hash64(env->name, strlen(env->name)) % 1000000u);
    if (asprintf(&src->state_topic, "__dm_mysql_state.%s", env->name) < 0) src->state_topic = NULL;
    if (asprintf(&src->group, "connector.%s", env->name) < 0) src->group = NULL;
    pthread_mutex_init(&src->mu, NULL);
    dm_arena_init(&src->arena, 0);
    char who[300], tag[64];
    snprintf(who, sizeof(who), "source=%s connector=mysql", env->name);
    snprintf(tag, sizeof(tag), "dm%u", src->server_id);
    dm_dblog_init(&src->dblog, &dm_my_dblog_ops, src, who, tag, conf->chunk_size);
    src->stats = json_object();
    src->requests = json_array();
    if (env->metrics) {
        char labels[300], esc[256];
        dm_metrics_escape(env->name, esc, sizeof(esc));
        snprintf(labels, sizeof(labels), "mysql_source=\"%s\"", esc);
        src->m_events = dm_metrics_counter(env->metrics, "datamesh_mysql_events_total",
                                           "change events committed to the topics", labels);
        src->m_lag_ms =
            dm_metrics_gauge(env->metrics, "datamesh_mysql_lag_milliseconds",
                             "commit time of the last change in the topics, behind now", labels);
    }
    *out = src;
    return DM_OK;
}

dm_err_t dm_my_source_request_snapshot(dm_my_source_t *src, const char *table, const char *from,
                                       const char *to, dm_error_t *err)
{
    if (table) {
        const char *dot = strchr(table, '.');
        char db[130] = "", name[130] = "";
        if (dot) {
            snprintf(db, sizeof(db), "%.*s", (int)(dot - table), table);
            snprintf(name, sizeof(name), "%s", dot + 1);
        }
        if (!dot || !dm_my_captured(src, db, name) || !strcmp(name, "*"))
            return dm_error_set(err, DM_ERR_NOT_FOUND,
                                "source %s does not capture table %s (write it as db.table)",
                                src->name, table);
    }
    json_t *bounds[2] = {NULL, NULL};
    const char *text[2] = {from, to};
    for (int b = 0; b < 2; b++) {
        if (!text[b] || !*text[b]) continue;
        if (text[b][0] != '[') {
            bounds[b] = json_string(text[b]);
            continue;
        }
        json_error_t je;
        if (!(bounds[b] = json_loads(text[b], 0, &je))) {
            json_decref(bounds[0]);
            return dm_error_set(err, DM_ERR_INVALID, "key bound '%.60s': not a JSON array: %s",
                                text[b], je.text);
        }
    }
    json_t *req =
        json_pack("{s:o, s:o, s:o}", "table", table ? json_string(table) : json_null(), "from",
                  bounds[0] ? bounds[0] : json_null(), "to", bounds[1] ? bounds[1] : json_null());
    dm_err_t rc = DM_OK;
    pthread_mutex_lock(&src->mu);
    if (json_array_size(src->requests) >= 64)
        rc = dm_error_set(err, DM_ERR_AGAIN, "source %s: too many snapshot requests waiting",
                          src->name);
    else
        json_array_append(src->requests, req);
    pthread_mutex_unlock(&src->mu);
    json_decref(req);
    return rc;
}

json_t *dm_my_source_status(dm_my_source_t *src)
{
    pthread_mutex_lock(&src->mu);
    json_t *j = json_deep_copy(src->stats);
    pthread_mutex_unlock(&src->mu);
    return j;
}

void dm_my_source_free(dm_my_source_t *src)
{
    if (!src) return;
    if (src->env.metrics) {
        char labels[300], esc[256];
        dm_metrics_escape(src->name, esc, sizeof(esc));
        snprintf(labels, sizeof(labels), "mysql_source=\"%s\"", esc);
        dm_metrics_remove_matching(src->env.metrics, labels);
    }
    session_end(src);
    dm_dblog_destroy(&src->dblog);
    json_decref(src->requests);
    if (src->password) memset(src->password, 0, strlen(src->password));
    free(src->password);
    free(src->pend);
    dm_txn_builder_destroy(&src->txn);
    dm_buf_free(&src->bytes);
    dm_buf_free(&src->key);
    dm_arena_destroy(&src->arena);
    json_decref(src->stats);
    pthread_mutex_destroy(&src->mu);
    free(src->state_topic);
    free(src->group);
    free(src->name);
    free(src);
}

/* ---- the connector ----------------------------------------------------------------------- */

static dm_err_t my_open(const void *conf, const dm_source_env_t *env, void **state, dm_error_t *err)
{
    dm_my_source_t *src = NULL;
    dm_err_t rc = dm_my_source_new(env, conf, &src, err);
    *state = src;
    return rc;
}

static void my_run(void *state, struct dm_unit_status *status)
{
    dm_my_source_run(state, status);
}

static void my_close(void *state)
{
    dm_my_source_free(state);
}

static json_t *my_status(void *state)
{
    return dm_my_source_status(state);
}

static dm_err_t my_snapshot(void *state, const char *table, const char *from, const char *to,
                            dm_error_t *err)
{
    return dm_my_source_request_snapshot(state, table, from, to, err);
}

const dm_source_ops_t dm_mysql_source_ops = {
    .def = {.name = "mysql",
            .summary = "change data capture from the MySQL / MariaDB row-based binlog",
            .config = &dm_mysql_config_table,
            .config_size = sizeof(dm_mysql_config_t),
            .needs_schema = false /* its schemas come from the binlog's table maps */},
    .runs_thread = true,
    .dead_letters = true,
    .open = my_open,
    .run = my_run,
    .close = my_close,
    .status_json = my_status,
    .snapshot = my_snapshot,
};
