/* connectors/mysql/my_snapshot.c — the mysql side of DBLog snapshots
 * (connectors/dblog.h has the algorithm): a table's model from
 * information_schema (before its first table map), watermark rows in the
 * signal table, chunks SELECTed in key order (text protocol) and their rows
 * as 'r' events, and the key text both sides compare. */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/mysql/my_internal.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"

/* ---- a table's model from information_schema --------------------------------------------- */

static char *quote_ident(const char *name)
{
    size_t n = strlen(name);
    char *q = malloc(2 * n + 3), *o = q;
    if (!q) return NULL;
    *o++ = '`';
    for (const char *p = name; *p; p++) {
        if (*p == '`') *o++ = '`';
        *o++ = *p;
    }
    *o++ = '`';
    *o = '\0';
    return q;
}

/* The binlog type and metadata a column of this declared type has (what its
 * table map will say), so that the first table map needs no new schema. */
static void column_from_schema(MYSQL_ROW row, dm_my_col_t *c)
{
    const char *dt = row[1], *ct = row[2];
    long long prec = row[3] ? atoll(row[3]) : 0, scale = row[4] ? atoll(row[4]) : 0;
    long long fsp = row[5] ? atoll(row[5]) : 0, octets = row[6] ? atoll(row[6]) : 0;
    c->charset = row[7] ? (uint32_t)atoi(row[7]) : DM_MY_CHARSET_BINARY;
    c->is_unsigned = strstr(ct, "unsigned") != NULL;
    c->nullable = row[8] && !strcmp(row[8], "YES");
    struct {
        const char *name;
        uint8_t type;
        uint16_t meta;
    } map[] = {
        {"tinyint", DM_MYT_TINY, 0},
        {"smallint", DM_MYT_SHORT, 0},
        {"mediumint", DM_MYT_INT24, 0},
        {"int", DM_MYT_LONG, 0},
        {"bigint", DM_MYT_LONGLONG, 0},
        {"float", DM_MYT_FLOAT, 4},
        {"double", DM_MYT_DOUBLE, 8},
        {"date", DM_MYT_DATE, 0},
        {"year", DM_MYT_YEAR, 0},
        {"datetime", DM_MYT_DATETIME2, 0},
        {"timestamp", DM_MYT_TIMESTAMP2, 0},
        {"time", DM_MYT_TIME2, 0},
        {"tinyblob", DM_MYT_BLOB, 1},
        {"tinytext", DM_MYT_BLOB, 1},
        {"blob", DM_MYT_BLOB, 2},
        {"text", DM_MYT_BLOB, 2},
        {"mediumblob", DM_MYT_BLOB, 3},
        {"mediumtext", DM_MYT_BLOB, 3},
        {"longblob", DM_MYT_BLOB, 4},
        {"longtext", DM_MYT_BLOB, 4},
        {"json", DM_MYT_JSON, 4},
        {"geometry", DM_MYT_GEOMETRY, 4},
        {"point", DM_MYT_GEOMETRY, 4},
        {"linestring", DM_MYT_GEOMETRY, 4},
        {"polygon", DM_MYT_GEOMETRY, 4},
    };
    c->type = DM_MYT_STRING;
    c->meta = 0;
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (!strcmp(dt, map[i].name)) {
            c->type = map[i].type;
            c->meta = map[i].meta;
        }
    if (c->type == DM_MYT_DATETIME2 || c->type == DM_MYT_TIMESTAMP2 || c->type == DM_MYT_TIME2)
        c->meta = (uint16_t)fsp;
    if (!strcmp(dt, "decimal")) {
        c->type = DM_MYT_NEWDECIMAL;
        c->meta = (uint16_t)(prec << 8 | scale);
    } else if (!strcmp(dt, "varchar") || !strcmp(dt, "varbinary")) {
        c->type = DM_MYT_VARCHAR;
        c->meta = (uint16_t)octets;
    } else if (!strcmp(dt, "char") || !strcmp(dt, "binary")) {
        c->type = DM_MYT_STRING;
        c->meta = (uint16_t)octets;
    } else if (!strcmp(dt, "bit")) {
        c->type = DM_MYT_BIT;
        c->meta = (uint16_t)((prec / 8) << 8 | (prec % 8));
    } else if (!strcmp(dt, "json") && c->charset != DM_MY_CHARSET_BINARY && row[7]) {
        c->type = DM_MYT_BLOB; /* MariaDB: JSON is LONGTEXT */
    }
    if (!strcmp(dt, "enum") || !strcmp(dt, "set")) {
        bool is_enum = !strcmp(dt, "enum");
        c->type = is_enum ? DM_MYT_ENUM : DM_MYT_SET;
        /* the labels: enum('a','b''c') */
        const char *p = strchr(ct, '(');
        uint32_t n = 0, cap = 8;
        c->symbols = calloc(cap + 1, sizeof(char *));
        while (p && *p && *p != ')' && c->symbols) {
            p = strchr(p, '\'');
            if (!p) break;
            p++;
            char buf[512];
            size_t o = 0;
            while (*p && !(*p == '\'' && p[1] != '\'')) {
                if (*p == '\'') p++;
                if (o < sizeof(buf) - 1) buf[o++] = *p;
                p++;
            }
            buf[o] = '\0';
            if (*p) p++;
            if (n == cap) {
                const char **g = realloc(c->symbols, (2 * cap + 1) * sizeof(char *));
                if (!g) break;
                c->symbols = g;
                cap *= 2;
            }
            c->symbols[n++] = strdup(buf);
        }
        c->n_symbols = n;
        c->meta = is_enum ? (n > 255 ? 2 : 1) : (uint16_t)((n + 7) / 8 > 4 ? 8 : (n + 7) / 8);
    }
    if (c->type == DM_MYT_STRING || c->type == DM_MYT_VARCHAR || c->type == DM_MYT_BLOB) {
        /* binary strings have no character set in information_schema */
        if (!row[7]) c->charset = DM_MY_CHARSET_BINARY;
    }
}

dm_err_t dm_my_table_from_schema(dm_my_source_t *src, const char *db, const char *table,
                                 dm_my_table_t *t, dm_error_t *err)
{
    memset(t, 0, sizeof(*t));
    char edb[270], et[270], sql[1400];
    mysql_real_escape_string(src->q, edb, db, strlen(db));
    mysql_real_escape_string(src->q, et, table, strlen(table));
    snprintf(sql, sizeof(sql),
             "SELECT c.COLUMN_NAME, c.DATA_TYPE, c.COLUMN_TYPE, c.NUMERIC_PRECISION, "
             "c.NUMERIC_SCALE, c.DATETIME_PRECISION, c.CHARACTER_OCTET_LENGTH, l.ID, "
             "c.IS_NULLABLE, (SELECT s.SEQ_IN_INDEX FROM information_schema.STATISTICS s WHERE "
             "s.TABLE_SCHEMA = c.TABLE_SCHEMA AND s.TABLE_NAME = c.TABLE_NAME AND s.INDEX_NAME = "
             "'PRIMARY' AND s.COLUMN_NAME = c.COLUMN_NAME) FROM information_schema.COLUMNS c "
             "LEFT JOIN information_schema.COLLATIONS l ON l.COLLATION_NAME = c.COLLATION_NAME "
             "WHERE c.TABLE_SCHEMA = '%s' AND c.TABLE_NAME = '%s' ORDER BY c.ORDINAL_POSITION",
             edb, et);
    MYSQL_RES *res;
    dm_err_t rc = dm_my_query(src, "reading a captured table's columns", sql, &res, err);
    if (rc) return rc;
    int n = (int)mysql_num_rows(res);
    t->db = strdup(db);
    t->name = strdup(table);
    t->cols = calloc((size_t)n + 1, sizeof(*t->cols));
    t->key = calloc((size_t)n + 1, sizeof(int));
    t->n_cols = n;
    MYSQL_ROW row;
    for (int i = 0; t->cols && (row = mysql_fetch_row(res)); i++) {
        t->cols[i].name = strdup(row[0]);
        column_from_schema(row, &t->cols[i]);
        t->cols[i].key_pos = row[9] ? atoi(row[9]) : 0;
    }
    mysql_free_result(res);
    if (!t->db || !t->name || !t->cols || !t->key) {
        dm_my_table_clear(t);
        return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    }
    for (int pos = 1; pos <= t->n_cols; pos++)
        for (int i = 0; i < t->n_cols; i++)
            if (t->cols[i].key_pos == pos) t->key[t->n_key++] = i;
    return DM_OK;
}

/* ---- values from the text protocol ------------------------------------------------------- */

/* [-]H+:MM:SS[.ffffff] → microseconds (by hand: sscanf was a top cost). */
static int64_t parse_clock(const char *s, const char *end, bool *ok)
{
    bool neg = s < end && *s == '-';
    if (neg) s++;
    int64_t part[3] = {0, 0, 0}, us = 0;
    int k = 0, digits = 0;
    *ok = s < end;
    for (; s < end && *ok; s++) {
        if (*s >= '0' && *s <= '9')
            part[k] = part[k] * 10 + (*s - '0');
        else if (*s == ':' && k < 2)
            k++;
        else if (*s == '.' && k == 2)
            break;
        else
            *ok = false;
    }
    *ok = *ok && k == 2;
    if (s < end && *s == '.')
        for (s++; s < end && digits < 6 && *s >= '0' && *s <= '9'; s++, digits++)
            us = us * 10 + (*s - '0');
    for (; digits < 6; digits++)
        us *= 10;
    int64_t v = ((part[0] * 60 + part[1]) * 60 + part[2]) * 1000000LL + us;
    return neg ? -v : v;
}

dm_err_t dm_my_value_from_text(const dm_my_col_t *c, const char *s, size_t n, dm_my_value_t *v,
                               dm_error_t *err)
{
    memset(v, 0, sizeof(*v));
    if (!s) return DM_OK; /* NULL */
    char buf[128];
    size_t bl = n < sizeof(buf) ? n : sizeof(buf) - 1;
    memcpy(buf, s, bl);
    buf[bl] = '\0';
    bool ok = true;
    switch (c->type) {
    case DM_MYT_TINY:
    case DM_MYT_SHORT:
    case DM_MYT_INT24:
    case DM_MYT_LONG:
    case DM_MYT_LONGLONG:
        if (c->is_unsigned) {
            v->kind = DM_MYV_UINT;
            v->u = strtoull(buf, NULL, 10);
        } else {
            v->kind = DM_MYV_INT;
            v->i = strtoll(buf, NULL, 10);
        }
        return DM_OK;
    case DM_MYT_YEAR:
        v->kind = DM_MYV_INT;
        v->i = strtoll(buf, NULL, 10);
        return DM_OK;
    case DM_MYT_FLOAT:
    case DM_MYT_DOUBLE:
        v->kind = c->type == DM_MYT_FLOAT ? DM_MYV_FLOAT : DM_MYV_DOUBLE;
        v->d = strtod(buf, NULL);
        return DM_OK;
    case DM_MYT_NEWDECIMAL:
        v->kind = DM_MYV_DECIMAL;
        v->s = s;
        v->n = n;
        return DM_OK;
    case DM_MYT_DATE:
    case DM_MYT_DATETIME:
    case DM_MYT_DATETIME2:
    case DM_MYT_TIMESTAMP:
    case DM_MYT_TIMESTAMP2: {
        int y = 0, mo = 0, d = 0;
        /* YYYY-MM-DD by hand: sscanf was a top cost of snapshots */
        ok = n >= 10 && s[4] == '-' && s[7] == '-';
        for (int i = 0; ok && i < 10; i++)
            ok = i == 4 || i == 7 || (s[i] >= '0' && s[i] <= '9');
        if (ok) {
            y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
            mo = (s[5] - '0') * 10 + (s[6] - '0');
            d = (s[8] - '0') * 10 + (s[9] - '0');
        }
        if (ok && (!mo || !d)) {
            v->kind = DM_MYV_ZERO;
            return DM_OK;
        }
        int64_t days = dm_my_days_from_civil(y, mo, d);
        if (c->type == DM_MYT_DATE) {
            v->kind = DM_MYV_DATE;
            v->i = days;
            break;
        }
        const char *sp = strchr(buf, ' ');
        int64_t t = sp ? parse_clock(sp + 1, buf + strlen(buf), &ok) : 0;
        v->kind = c->type == DM_MYT_TIMESTAMP || c->type == DM_MYT_TIMESTAMP2 ? DM_MYV_TIMESTAMP
                                                                              : DM_MYV_DATETIME;
        v->i = days * 86400000000LL + t;
        break;
    }
    case DM_MYT_TIME:
    case DM_MYT_TIME2:
        v->kind = DM_MYV_TIME;
        v->i = parse_clock(buf, buf + strlen(buf), &ok);
        break;
    case DM_MYT_ENUM:
        v->kind = DM_MYV_ENUM;
        for (uint32_t i = 0; i < c->n_symbols; i++)
            if (strlen(c->symbols[i]) == n && !memcmp(c->symbols[i], s, n)) v->u = i + 1;
        return DM_OK;
    case DM_MYT_SET: {
        v->kind = DM_MYV_SET;
        const char *p = s, *end = s + n;
        while (p < end) {
            const char *comma = memchr(p, ',', (size_t)(end - p));
            size_t len = (size_t)((comma ? comma : end) - p);
            for (uint32_t i = 0; i < c->n_symbols && i < 64; i++)
                if (strlen(c->symbols[i]) == len && !memcmp(c->symbols[i], p, len))
                    v->u |= 1ULL << i;
            p += len + 1;
        }
        return DM_OK;
    }
    case DM_MYT_BIT:
        v->kind = DM_MYV_BIT;
        v->s = s;
        v->n = n;
        return DM_OK;
    default:
        v->kind = DM_MYV_BYTES;
        v->s = s;
        v->n = n;
        return DM_OK;
    }
    if (!ok)
        return dm_error_set(err, DM_ERR_INVALID, "column %s: '%.40s' is not a %s value", c->name,
                            buf, c->type == DM_MYT_DATE ? "date" : "time");
    return DM_OK;
}

bool dm_my_key_text(const dm_my_table_t *t, const dm_my_value_t *row, dm_buf_t *out)
{
    for (int k = 0; k < t->n_key; k++) {
        const dm_my_value_t *v = &row[t->key[k]];
        if (k) dm_buf_append_u8(out, 0x1f);
        switch (v->kind) {
        case DM_MYV_NULL: return false;
        case DM_MYV_INT:
        case DM_MYV_DATE:
        case DM_MYV_TIME:
        case DM_MYV_DATETIME:
        case DM_MYV_TIMESTAMP: dm_buf_printf(out, "%" PRId64, v->i); break;
        case DM_MYV_UINT:
        case DM_MYV_ENUM:
        case DM_MYV_SET: dm_buf_printf(out, "%" PRIu64, v->u); break;
        case DM_MYV_FLOAT:
        case DM_MYV_DOUBLE: dm_buf_printf(out, "%.17g", v->d); break;
        case DM_MYV_ZERO: dm_buf_append_str(out, "0000"); break;
        default: dm_buf_append(out, v->s, v->n); break;
        }
    }
    return t->n_key > 0;
}

/* ---- what the algorithm asks of mysql ---------------------------------------------------- */

static int ops_table_index(void *ctx, const char *table, int *n_key)
{
    dm_my_source_t *src = ctx;
    for (int i = 0; i < src->n_tables; i++) {
        char q[300];
        snprintf(q, sizeof(q), "%s.%s", src->tables[i].db, src->tables[i].name);
        if (!strcmp(q, table)) {
            *n_key = src->tables[i].n_key;
            return i;
        }
    }
    *n_key = 0;
    return -1;
}

static dm_err_t ops_write_watermark(void *ctx, const char *id, const char *kind, dm_error_t *err)
{
    dm_my_source_t *src = ctx;
    char sql[800], eid[300];
    mysql_real_escape_string(src->q, eid, id, strlen(id));
    snprintf(sql, sizeof(sql), "INSERT INTO %s (id, kind) VALUES ('%s', '%s')", src->signal_sql,
             eid, kind);
    return dm_my_query(src, "writing a snapshot watermark", sql, NULL, err);
}

static void chunk_free(dm_my_source_t *src)
{
    if (src->chunk_res) mysql_free_result(src->chunk_res);
    free(src->chunk_rows);
    free(src->chunk_lens);
    src->chunk_res = NULL;
    src->chunk_rows = NULL;
    src->chunk_lens = NULL;
    src->chunk_n = 0;
}

static dm_err_t ops_select_chunk(void *ctx, int table, const json_t *after, const json_t *from,
                                 const json_t *until, int64_t limit, int *n_rows, dm_error_t *err)
{
    dm_my_source_t *src = ctx;
    const dm_my_table_t *t = &src->tables[table];
    dm_buf_t sql = DM_BUF_INIT, keys = DM_BUF_INIT;
    dm_buf_append_str(&sql, "SELECT ");
    for (int i = 0; i < t->n_cols; i++) {
        char *q = quote_ident(t->cols[i].name);
        dm_buf_printf(&sql, "%s%s", i ? ", " : "", q);
        free(q);
    }
    for (int k = 0; k < t->n_key; k++) {
        char *q = quote_ident(t->cols[t->key[k]].name);
        dm_buf_printf(&keys, "%s%s", k ? ", " : "", q);
        free(q);
    }
    const char *kt;
    dm_buf_cstr(&keys, &kt);
    char *qd = quote_ident(t->db), *qt = quote_ident(t->name);
    dm_buf_printf(&sql, " FROM %s.%s", qd, qt);
    free(qd);
    free(qt);
    const json_t *bounds[3] = {after, from, until};
    static const char *const ops[3] = {">", ">=", "<="};
    int n = 0;
    for (int b = 0; b < 3; b++) {
        if (!bounds[b] || json_array_size(bounds[b]) != (size_t)t->n_key) continue;
        dm_buf_printf(&sql, " %s (%s) %s (", n++ ? "AND" : "WHERE", kt, ops[b]);
        for (int k = 0; k < t->n_key; k++) {
            const char *v = json_string_value(json_array_get(bounds[b], (size_t)k));
            size_t len = v ? strlen(v) : 0;
            char *e = malloc(2 * len + 1);
            if (e) mysql_real_escape_string(src->q, e, v ? v : "", len);
            dm_buf_printf(&sql, "%s'%s'", k ? ", " : "", e ? e : "");
            free(e);
        }
        dm_buf_append_str(&sql, ")");
    }
    dm_buf_printf(&sql, " ORDER BY %s LIMIT %lld", kt, (long long)limit);
    const char *text;
    dm_buf_cstr(&sql, &text);
    MYSQL_RES *res = NULL;
    dm_err_t rc = dm_my_query(src, "reading a snapshot chunk", text, &res, err);
    dm_buf_free(&sql);
    dm_buf_free(&keys);
    if (rc) return rc == DM_ERR_CONNECTOR ? DM_ERR_INVALID : rc;
    chunk_free(src);
    src->chunk_res = res;
    src->chunk_table = table;
    size_t rows = res ? (size_t)mysql_num_rows(res) : 0;
    size_t cols = (size_t)t->n_cols;
    src->chunk_rows = calloc(rows + 1, sizeof(MYSQL_ROW));
    src->chunk_lens = calloc((rows + 1) * cols + 1, sizeof(unsigned long));
    if (!src->chunk_rows || !src->chunk_lens)
        return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    for (size_t r = 0; r < rows; r++) { /* the lengths array is reused by each fetch: copied */
        src->chunk_rows[r] = mysql_fetch_row(res);
        unsigned long *lens = mysql_fetch_lengths(res);
        if (lens && mysql_num_fields(res) == cols)
            memcpy(src->chunk_lens + r * cols, lens, cols * sizeof(unsigned long));
    }
    src->chunk_n = (int)rows;
    *n_rows = (int)rows;
    return DM_OK;
}

/* Row r of the chunk as values (allocated in the batch arena). */
static dm_my_value_t *chunk_values(dm_my_source_t *src, int r, dm_error_t *err)
{
    const dm_my_table_t *t = &src->tables[src->chunk_table];
    dm_my_value_t *v = dm_arena_calloc(&src->arena, (size_t)t->n_cols + 1, sizeof(*v));
    if (!v) return dm_error_set(err, DM_ERR_NOMEM, "out of memory"), NULL;
    MYSQL_ROW row = src->chunk_rows[r];
    const unsigned long *lens = src->chunk_lens + (size_t)r * (size_t)t->n_cols;
    for (int i = 0; i < t->n_cols; i++)
        if (dm_my_value_from_text(&t->cols[i], row[i], row[i] ? lens[i] : 0, &v[i], err)) {
            dm_error_prefix(err, "source %s: snapshot of %s.%s", src->name, t->db, t->name);
            return NULL;
        }
    return v;
}

static bool ops_row_key(void *ctx, int r, dm_buf_t *out)
{
    dm_my_source_t *src = ctx;
    const dm_my_table_t *t = &src->tables[src->chunk_table];
    dm_my_value_t v[64];
    if (t->n_cols > 64) { /* wide tables: the whole row */
        dm_error_t err = {0};
        dm_my_value_t *all = chunk_values(src, r, &err);
        return all && dm_my_key_text(t, all, out);
    }
    MYSQL_ROW row = src->chunk_rows[r];
    const unsigned long *lens = src->chunk_lens + (size_t)r * (size_t)t->n_cols;
    for (int k = 0; k < t->n_key; k++) { /* only the key columns are converted */
        int c = t->key[k];
        if (dm_my_value_from_text(&t->cols[c], row[c], row[c] ? lens[c] : 0, &v[c], NULL))
            return false;
    }
    return dm_my_key_text(t, v, out);
}

static json_t *ops_row_key_json(void *ctx, int r)
{
    dm_my_source_t *src = ctx;
    const dm_my_table_t *t = &src->tables[src->chunk_table];
    json_t *a = json_array();
    for (int k = 0; k < t->n_key; k++) {
        int col = t->key[k];
        const char *v = src->chunk_rows[r][col];
        json_array_append_new(
            a,
            json_stringn(v ? v : "", v ? src->chunk_lens[(size_t)r * (size_t)t->n_cols + col] : 0));
    }
    return a;
}

static dm_err_t ops_emit_row(void *ctx, int table, int r, dm_error_t *err)
{
    dm_my_source_t *src = ctx;
    dm_my_value_t *v = chunk_values(src, r, err);
    if (!v) return err->code ? err->code : DM_ERR_NOMEM;
    char pos[700];
    dm_my_position_text(src, pos, sizeof(pos));
    dm_my_event_t ev = {.op = 'r',
                        .after = v,
                        .gtid = src->gtid,
                        .file = src->file,
                        .pos = src->txn_pos,
                        .row = -1,
                        .position = dm_arena_strdup(&src->arena, pos),
                        .server_id = src->txn_server,
                        .commit_ms = src->commit_ms,
                        .now_ms = dm_wall_ms()};
    return dm_my_emit(src, table, &ev, err);
}

static void ops_release_chunk(void *ctx)
{
    chunk_free(ctx);
}

const dm_dblog_ops_t dm_my_dblog_ops = {
    .table_index = ops_table_index,
    .write_watermark = ops_write_watermark,
    .select_chunk = ops_select_chunk,
    .row_key = ops_row_key,
    .row_key_json = ops_row_key_json,
    .emit_row = ops_emit_row,
    .release_chunk = ops_release_chunk,
};

/* ---- the signal table -------------------------------------------------------------------- */

dm_err_t dm_my_ensure_signal_table(dm_my_source_t *src, dm_error_t *err)
{
    char db[130], table[130], sql[1000];
    const char *dot = strchr(src->conf->signal_table, '.');
    if (!dot)
        return dm_error_set(err, DM_ERR_CONFIG, "source %s: signal_table %s: write it as db.table",
                            src->name, src->conf->signal_table);
    snprintf(db, sizeof(db), "%.*s", (int)(dot - src->conf->signal_table), src->conf->signal_table);
    snprintf(table, sizeof(table), "%s", dot + 1);
    char *qd = quote_ident(db), *qt = quote_ident(table);
    snprintf(src->signal_sql, sizeof(src->signal_sql), "%s.%s", qd, qt);
    snprintf(sql, sizeof(sql), "CREATE DATABASE IF NOT EXISTS %s", qd);
    dm_err_t rc = dm_my_query(src, "creating the signal table's database", sql, NULL, err);
    if (!rc) {
        snprintf(sql, sizeof(sql),
                 "CREATE TABLE IF NOT EXISTS %s.%s (id VARCHAR(190) PRIMARY KEY, kind VARCHAR(16) "
                 "NOT NULL, ts TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6))",
                 qd, qt);
        rc = dm_my_query(src, "creating the signal table", sql, NULL, err);
    }
    if (rc == DM_ERR_PERMISSION)
        dm_error_set(err, rc,
                     "source %s: creating the signal table %s.%s needs CREATE on %s (or create "
                     "it: CREATE TABLE %s.%s (id VARCHAR(190) PRIMARY KEY, kind VARCHAR(16) NOT "
                     "NULL, ts TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)) and GRANT "
                     "INSERT ON it)",
                     src->name, db, table, db, qd, qt);
    free(qd);
    free(qt);
    return rc;
}
