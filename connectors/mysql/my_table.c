/* connectors/mysql/my_table.c — a captured table's schemas and events. */
#include "connectors/mysql/my_table.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema/wire.h"

/* ---- the model --------------------------------------------------------------------------- */

dm_err_t dm_my_table_from_map(const dm_my_table_map_t *tm, dm_my_table_t *t, dm_error_t *err)
{
    memset(t, 0, sizeof(*t));
    if (!tm->has_names)
        return dm_error_set(err, DM_ERR_CONFIG,
                            "table %s.%s: the binlog's table map has no column names; set "
                            "binlog_row_metadata=FULL (SET GLOBAL binlog_row_metadata = 'FULL')",
                            tm->db, tm->table);
    t->db = strdup(tm->db);
    t->name = strdup(tm->table);
    t->n_cols = (int)tm->n_cols;
    t->cols = calloc(tm->n_cols + 1, sizeof(*t->cols));
    t->key = calloc(tm->n_cols + 1, sizeof(int));
    if (!t->db || !t->name || !t->cols || !t->key) goto nomem;
    for (uint32_t i = 0; i < tm->n_cols; i++) {
        dm_my_col_t *c = &t->cols[i];
        *c = tm->cols[i];
        c->name = strdup(tm->cols[i].name ? tm->cols[i].name : "");
        c->symbols = NULL;
        if (!c->name) goto nomem;
        if (tm->cols[i].n_symbols) {
            c->symbols = calloc(tm->cols[i].n_symbols + 1, sizeof(char *));
            if (!c->symbols) goto nomem;
            for (uint32_t s = 0; s < tm->cols[i].n_symbols; s++)
                if (!(c->symbols[s] = strdup(tm->cols[i].symbols[s]))) goto nomem;
        }
    }
    for (int pos = 1; pos <= t->n_cols; pos++)
        for (int i = 0; i < t->n_cols; i++)
            if (t->cols[i].key_pos == pos) t->key[t->n_key++] = i;
    return DM_OK;
nomem:
    dm_my_table_clear(t);
    return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
}

bool dm_my_table_same(const dm_my_table_t *a, const dm_my_table_t *b)
{
    if (a->n_cols != b->n_cols || a->n_key != b->n_key || strcmp(a->db, b->db) ||
        strcmp(a->name, b->name))
        return false;
    for (int i = 0; i < a->n_cols; i++) {
        const dm_my_col_t *x = &a->cols[i], *y = &b->cols[i];
        if (strcmp(x->name, y->name) || x->type != y->type || x->meta != y->meta ||
            x->is_unsigned != y->is_unsigned || x->key_pos != y->key_pos ||
            (x->charset == DM_MY_CHARSET_BINARY) != (y->charset == DM_MY_CHARSET_BINARY) ||
            x->n_symbols != y->n_symbols)
            return false;
        for (uint32_t s = 0; s < x->n_symbols; s++)
            if (strcmp(x->symbols[s], y->symbols[s])) return false;
    }
    return true;
}

void dm_my_table_clear(dm_my_table_t *t)
{
    for (int i = 0; t->cols && i < t->n_cols; i++) {
        free((char *)t->cols[i].name);
        for (uint32_t s = 0; t->cols[i].symbols && s < t->cols[i].n_symbols; s++)
            free((char *)t->cols[i].symbols[s]);
        free(t->cols[i].symbols);
    }
    free(t->cols);
    free(t->key);
    free(t->db);
    free(t->name);
    dm_avro_schema_free(t->value_schema);
    dm_avro_schema_free(t->key_schema);
    memset(t, 0, sizeof(*t));
}

/* ---- types ------------------------------------------------------------------------------- */

typedef enum {
    K_INT,
    K_LONG,
    K_U64, /* decimal(20,0) */
    K_FLOAT,
    K_DOUBLE,
    K_DECIMAL,
    K_DATE,
    K_TIME,
    K_DATETIME,
    K_TIMESTAMP,
    K_STRING,
    K_BYTES,
    K_BOOL,
    K_UNKNOWN, /* hex string */
} kind_t;

static kind_t col_kind(const dm_my_col_t *c)
{
    switch (c->type) {
    case DM_MYT_TINY:
    case DM_MYT_SHORT:
    case DM_MYT_INT24:
    case DM_MYT_YEAR: return K_INT;
    case DM_MYT_LONG: return c->is_unsigned ? K_LONG : K_INT;
    case DM_MYT_LONGLONG: return c->is_unsigned ? K_U64 : K_LONG;
    case DM_MYT_FLOAT: return K_FLOAT;
    case DM_MYT_DOUBLE: return K_DOUBLE;
    case DM_MYT_NEWDECIMAL: return K_DECIMAL;
    case DM_MYT_DATE: return K_DATE;
    case DM_MYT_TIME:
    case DM_MYT_TIME2: return K_TIME;
    case DM_MYT_DATETIME:
    case DM_MYT_DATETIME2: return K_DATETIME;
    case DM_MYT_TIMESTAMP:
    case DM_MYT_TIMESTAMP2: return K_TIMESTAMP;
    case DM_MYT_VARCHAR:
    case DM_MYT_VAR_STRING:
    case DM_MYT_STRING:
    case DM_MYT_BLOB:
    case DM_MYT_TINY_BLOB:
    case DM_MYT_MEDIUM_BLOB:
    case DM_MYT_LONG_BLOB: return c->charset == DM_MY_CHARSET_BINARY ? K_BYTES : K_STRING;
    case DM_MYT_ENUM:
    case DM_MYT_SET:
    case DM_MYT_JSON: return K_STRING;
    case DM_MYT_BIT: return (c->meta >> 8) * 8 + (c->meta & 0xff) == 1 ? K_BOOL : K_BYTES;
    default: return K_UNKNOWN;
    }
}

static void put_type(dm_buf_t *b, const dm_my_col_t *c)
{
    switch (col_kind(c)) {
    case K_INT: dm_buf_append_str(b, "\"int\""); return;
    case K_LONG: dm_buf_append_str(b, "\"long\""); return;
    case K_U64:
        dm_buf_append_str(b, "{\"type\":\"bytes\",\"logicalType\":\"decimal\",\"precision\":20,"
                             "\"scale\":0}");
        return;
    case K_FLOAT: dm_buf_append_str(b, "\"float\""); return;
    case K_DOUBLE: dm_buf_append_str(b, "\"double\""); return;
    case K_DECIMAL:
        dm_buf_printf(b,
                      "{\"type\":\"bytes\",\"logicalType\":\"decimal\",\"precision\":%d,"
                      "\"scale\":%d}",
                      c->meta >> 8, c->meta & 0xff);
        return;
    case K_DATE: dm_buf_append_str(b, "{\"type\":\"int\",\"logicalType\":\"date\"}"); return;
    case K_TIME: dm_buf_append_str(b, "\"long\""); return;
    case K_DATETIME:
        dm_buf_append_str(b, "{\"type\":\"long\",\"logicalType\":\"local-timestamp-micros\"}");
        return;
    case K_TIMESTAMP:
        dm_buf_append_str(b, "{\"type\":\"long\",\"logicalType\":\"timestamp-micros\"}");
        return;
    case K_BYTES: dm_buf_append_str(b, "\"bytes\""); return;
    case K_BOOL: dm_buf_append_str(b, "\"boolean\""); return;
    case K_STRING:
    case K_UNKNOWN: dm_buf_append_str(b, "\"string\""); return;
    }
}

/* ---- schemas ----------------------------------------------------------------------------- */

static void put_avro_name(dm_buf_t *b, const char *name)
{
    if (!*name || (*name >= '0' && *name <= '9')) dm_buf_append_u8(b, '_');
    for (const char *p = name; *p; p++) {
        char c = *p;
        bool ok =
            (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
        dm_buf_append_u8(b, ok ? (uint8_t)c : '_');
    }
}

static const char source_record[] =
    "{\"type\":\"record\",\"name\":\"Source\",\"namespace\":\"datamesh.mysql\",\"fields\":["
    "{\"name\":\"connector\",\"type\":\"string\"},{\"name\":\"db\",\"type\":\"string\"},"
    "{\"name\":\"table\",\"type\":\"string\"},{\"name\":\"server_id\",\"type\":\"long\"},"
    "{\"name\":\"gtid\",\"type\":\"string\"},{\"name\":\"file\",\"type\":\"string\"},"
    "{\"name\":\"pos\",\"type\":\"long\"},{\"name\":\"row\",\"type\":\"int\"},"
    "{\"name\":\"position\",\"type\":\"string\"},{\"name\":\"ts_ms\",\"type\":\"long\"},"
    "{\"name\":\"snapshot\",\"type\":\"string\"}]}";

static char *take(dm_buf_t *b)
{
    const char *s;
    if (dm_buf_cstr(b, &s)) {
        dm_buf_free(b);
        return NULL;
    }
    return (char *)b->data;
}

static void put_namespace(dm_buf_t *b, const dm_my_table_t *t)
{
    put_avro_name(b, t->db);
    dm_buf_append_u8(b, '.');
    put_avro_name(b, t->name);
}

dm_err_t dm_my_table_schema_json(const dm_my_table_t *t, char **value_json, char **key_json,
                                 dm_error_t *err)
{
    *value_json = *key_json = NULL;
    dm_buf_t b = DM_BUF_INIT, k = DM_BUF_INIT;
    dm_buf_append_str(&b, "{\"type\":\"record\",\"name\":\"Envelope\",\"namespace\":\"");
    put_namespace(&b, t);
    dm_buf_append_str(&b, "\",\"fields\":[{\"name\":\"before\",\"type\":[\"null\",{\"type\":"
                          "\"record\",\"name\":\"Value\",\"fields\":[");
    for (int i = 0; i < t->n_cols; i++) {
        const dm_my_col_t *c = &t->cols[i];
        dm_buf_append_str(&b, i ? ",{\"name\":\"" : "{\"name\":\"");
        put_avro_name(&b, c->name);
        dm_buf_append_str(&b, "\",\"type\":");
        if (!c->key_pos) dm_buf_append_str(&b, "[\"null\",");
        put_type(&b, c);
        dm_buf_append_str(&b, c->key_pos ? "}" : "],\"default\":null}");
    }
    dm_buf_append_str(&b, "]}],\"default\":null},{\"name\":\"after\",\"type\":[\"null\","
                          "\"Value\"],\"default\":null},{\"name\":\"op\",\"type\":\"string\"},"
                          "{\"name\":\"source\",\"type\":");
    dm_buf_append_str(&b, source_record);
    dm_buf_append_str(&b, "},{\"name\":\"ts_ms\",\"type\":\"long\"},{\"name\":\"unchanged\","
                          "\"type\":{\"type\":\"array\",\"items\":\"string\"},\"default\":[]}]}");
    if (!(*value_json = take(&b))) goto fail;
    if (!t->n_key) return DM_OK;
    dm_buf_append_str(&k, "{\"type\":\"record\",\"name\":\"Key\",\"namespace\":\"");
    put_namespace(&k, t);
    dm_buf_append_str(&k, "\",\"fields\":[");
    for (int i = 0; i < t->n_key; i++) {
        const dm_my_col_t *c = &t->cols[t->key[i]];
        dm_buf_append_str(&k, i ? ",{\"name\":\"" : "{\"name\":\"");
        put_avro_name(&k, c->name);
        dm_buf_append_str(&k, "\",\"type\":");
        put_type(&k, c);
        dm_buf_append_str(&k, "}");
    }
    dm_buf_append_str(&k, "]}");
    if ((*key_json = take(&k))) return DM_OK;
    free(*value_json);
    *value_json = NULL;
fail:
    dm_buf_free(&b);
    return dm_error_set(err, DM_ERR_NOMEM, "out of memory building the schema of %s.%s", t->db,
                        t->name);
}

/* ---- values ------------------------------------------------------------------------------ */

/* Decimal digits ("-12.50", scale s) as the unscaled integer in big-endian
 * two's complement (Avro's decimal bytes). */
/* The unscaled value as big-endian two's complement, shortest form. */
static dm_err_t put_unscaled(int64_t v, dm_arena_t *arena, dm_avro_value_t *out, dm_error_t *err)
{
    uint8_t tmp[8];
    int n = 8;
    for (int i = 7; i >= 0; i--, v >>= 8)
        tmp[i] = (uint8_t)v;
    int start = 0;
    while (start < 7 && ((tmp[start] == 0x00 && !(tmp[start + 1] & 0x80)) ||
                         (tmp[start] == 0xff && (tmp[start + 1] & 0x80))))
        start++;
    n -= start;
    uint8_t *be = dm_arena_alloc(arena, (size_t)n);
    if (!be) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    memcpy(be, tmp + start, (size_t)n);
    *out = (dm_avro_value_t){.type = DM_AVRO_BYTES, .len = (uint32_t)n, .u.p = be};
    return DM_OK;
}

static dm_err_t decimal_bytes(const char *text, size_t len, int scale, dm_arena_t *arena,
                              dm_avro_value_t *out, dm_error_t *err)
{
    /* The common case: at most 18 digits fit an int64 (a profile of the
     * benchmark showed the general loop below as the top cost). */
    if (len <= 19) {
        const char *p = text, *end = text + len;
        bool neg = p < end && *p == '-', dot = false, ok = p < end;
        if (neg) p++;
        int64_t v = 0;
        int frac = 0, digits = 0;
        for (; p < end && ok; p++) {
            if (*p == '.' && !dot) {
                dot = true;
            } else if (*p >= '0' && *p <= '9') {
                if (dot && frac == scale) continue;
                v = v * 10 + (*p - '0');
                digits++;
                if (dot) frac++;
            } else {
                ok = false;
            }
        }
        for (; ok && frac < scale; frac++, digits++)
            v *= 10;
        if (ok && digits <= 18) return put_unscaled(neg ? -v : v, arena, out, err);
    }
    uint8_t mag[40] = {0}; /* little-endian magnitude; 65 digits fit in 28 bytes */
    const char *p = text, *end = text + len;
    bool neg = p < end && *p == '-', dot = false;
    if (neg) p++;
    int frac = 0;
    for (; p <= end; p++) {
        int digit;
        if (p == end) {
            if (frac >= scale) break;
            digit = 0; /* pad the fraction up to the scale */
            frac++;
            p--;
        } else if (*p == '.') {
            dot = true;
            continue;
        } else if (*p >= '0' && *p <= '9') {
            if (dot && frac == scale) continue;
            digit = *p - '0';
            if (dot) frac++;
        } else {
            return dm_error_set(err, DM_ERR_INVALID, "'%.*s' is not a decimal number", (int)len,
                                text);
        }
        unsigned carry = (unsigned)digit;
        for (size_t i = 0; i < sizeof(mag); i++) {
            unsigned v = mag[i] * 10u + carry;
            mag[i] = (uint8_t)v;
            carry = v >> 8;
        }
    }
    if (neg) {
        unsigned carry = 1;
        for (size_t i = 0; i < sizeof(mag); i++) {
            unsigned v = (uint8_t)~mag[i] + carry;
            mag[i] = (uint8_t)v;
            carry = v >> 8;
        }
    }
    /* Shortest big-endian form that keeps the sign. */
    size_t n = sizeof(mag);
    uint8_t fill = neg ? 0xff : 0x00;
    while (n > 1 && mag[n - 1] == fill && ((mag[n - 2] & 0x80) == (fill & 0x80)))
        n--;
    uint8_t *be = dm_arena_alloc(arena, n);
    if (!be) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        be[i] = mag[n - 1 - i];
    *out = (dm_avro_value_t){.type = DM_AVRO_BYTES, .len = (uint32_t)n, .u.p = be};
    return DM_OK;
}

static bool is_latin1(uint32_t cs)
{
    return cs == 5 || cs == 8 || cs == 15 || cs == 31 || cs == 47 || cs == 48 || cs == 49 ||
           cs == 94;
}

static dm_avro_value_t str_value(const char *s, size_t n)
{
    return (dm_avro_value_t){.type = DM_AVRO_STRING, .len = (uint32_t)n, .u.p = (const uint8_t *)s};
}

static dm_err_t text_value(const dm_my_col_t *c, const dm_my_value_t *v, dm_arena_t *a,
                           dm_avro_value_t *out, dm_error_t *err)
{
    if (v->kind == DM_MYV_ENUM) {
        const char *s = v->u >= 1 && v->u <= c->n_symbols ? c->symbols[v->u - 1] : "";
        *out = str_value(s, strlen(s));
        return DM_OK;
    }
    if (v->kind == DM_MYV_SET) {
        dm_buf_t b = DM_BUF_INIT;
        for (uint32_t i = 0; i < c->n_symbols && i < 64; i++)
            if (v->u & (1ULL << i)) {
                if (b.len) dm_buf_append_u8(&b, ',');
                dm_buf_append_str(&b, c->symbols[i]);
            }
        char *s = dm_arena_alloc(a, b.len + 1);
        if (s && b.len) memcpy(s, b.data, b.len);
        *out = str_value(s ? s : "", s ? b.len : 0);
        dm_buf_free(&b);
        return s ? DM_OK : dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    }
    if (v->kind != DM_MYV_BYTES)
        return dm_error_set(err, DM_ERR_INVALID, "a string column with a value of kind %d",
                            v->kind);
    if (!is_latin1(c->charset)) {
        *out = str_value(v->s, v->n);
        return DM_OK;
    }
    char *s = dm_arena_alloc(a, 2 * v->n + 1), *o = s; /* latin1 → UTF-8 */
    if (!s) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < v->n; i++) {
        uint8_t ch = (uint8_t)v->s[i];
        if (ch < 0x80) {
            *o++ = (char)ch;
        } else {
            *o++ = (char)(0xc0 | ch >> 6);
            *o++ = (char)(0x80 | (ch & 0x3f));
        }
    }
    *out = str_value(s, (size_t)(o - s));
    return DM_OK;
}

/* One column's value as its Avro type (plain, not yet in a union). */
static dm_err_t avro_value(const dm_my_col_t *c, const dm_my_value_t *v, dm_arena_t *a,
                           dm_avro_value_t *out, dm_error_t *err)
{
    switch (col_kind(c)) {
    case K_INT:
        *out = (dm_avro_value_t){.type = DM_AVRO_INT,
                                 .u.i = (int32_t)(v->kind == DM_MYV_UINT ? (int64_t)v->u : v->i)};
        return DM_OK;
    case K_LONG:
        *out = (dm_avro_value_t){.type = DM_AVRO_LONG,
                                 .u.l = v->kind == DM_MYV_UINT ? (int64_t)v->u : v->i};
        return DM_OK;
    case K_U64: {
        char digits[24];
        int n = snprintf(digits, sizeof(digits), "%llu", (unsigned long long)v->u);
        return decimal_bytes(digits, (size_t)n, 0, a, out, err);
    }
    case K_FLOAT: *out = (dm_avro_value_t){.type = DM_AVRO_FLOAT, .u.f = (float)v->d}; return DM_OK;
    case K_DOUBLE: *out = (dm_avro_value_t){.type = DM_AVRO_DOUBLE, .u.d = v->d}; return DM_OK;
    case K_DECIMAL: return decimal_bytes(v->s, v->n, c->meta & 0xff, a, out, err);
    case K_DATE: *out = (dm_avro_value_t){.type = DM_AVRO_INT, .u.i = (int32_t)v->i}; return DM_OK;
    case K_TIME:
    case K_DATETIME:
    case K_TIMESTAMP: *out = (dm_avro_value_t){.type = DM_AVRO_LONG, .u.l = v->i}; return DM_OK;
    case K_STRING: return text_value(c, v, a, out, err);
    case K_BYTES:
        *out = (dm_avro_value_t){
            .type = DM_AVRO_BYTES, .len = (uint32_t)v->n, .u.p = (const uint8_t *)v->s};
        return DM_OK;
    case K_BOOL:
        *out = (dm_avro_value_t){.type = DM_AVRO_BOOLEAN, .u.b = v->n && (v->s[v->n - 1] & 1)};
        return DM_OK;
    case K_UNKNOWN: {
        char *s = dm_arena_alloc(a, 2 * v->n + 1);
        if (!s) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < v->n; i++)
            snprintf(s + 2 * i, 3, "%02x", (uint8_t)v->s[i]);
        *out = str_value(s, 2 * v->n);
        return DM_OK;
    }
    }
    return DM_OK;
}

static dm_err_t row_value(const dm_my_table_t *t, const dm_my_value_t *row, dm_arena_t *arena,
                          dm_avro_value_t *out, dm_error_t *err)
{
    if (!row) {
        *out = (dm_avro_value_t){.type = DM_AVRO_NULL, .branch = 0};
        return DM_OK;
    }
    dm_avro_value_t *f = dm_arena_calloc(arena, (size_t)t->n_cols + 1, sizeof(*f));
    if (!f) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    for (int i = 0; i < t->n_cols; i++) {
        const dm_my_col_t *c = &t->cols[i];
        const dm_my_value_t *v = &row[i];
        if (v->kind == DM_MYV_NULL || v->kind == DM_MYV_ZERO) {
            if (c->key_pos)
                return dm_error_set(err, DM_ERR_INVALID, "table %s.%s: key column %s is %s", t->db,
                                    t->name, c->name,
                                    v->kind == DM_MYV_ZERO ? "a zero date" : "missing");
            f[i] = (dm_avro_value_t){.type = DM_AVRO_NULL, .branch = 0};
            continue;
        }
        dm_err_t rc = avro_value(c, v, arena, &f[i], err);
        if (rc) return dm_error_prefix(err, "table %s.%s column %s", t->db, t->name, c->name), rc;
        f[i].branch = c->key_pos ? 0 : 1;
    }
    *out = (dm_avro_value_t){
        .type = DM_AVRO_RECORD, .branch = 1, .len = (uint32_t)t->n_cols, .u.v = f};
    return DM_OK;
}

static dm_avro_value_t cstr(const char *s)
{
    return str_value(s ? s : "", s ? strlen(s) : 0);
}

dm_err_t dm_my_event_encode(const dm_my_table_t *t, const dm_my_event_t *ev, dm_arena_t *arena,
                            dm_buf_t *key, bool *has_key, dm_buf_t *value, dm_error_t *err)
{
    *has_key = false;
    dm_avro_value_t env[6];
    dm_err_t rc = row_value(t, ev->before, arena, &env[0], err);
    if (!rc) rc = row_value(t, ev->after, arena, &env[1], err);
    if (rc) return rc;
    static const char *const ops[] = {"c", "u", "d", "t", "r"};
    const char *op = ev->op == 'c'   ? ops[0]
                     : ev->op == 'u' ? ops[1]
                     : ev->op == 'd' ? ops[2]
                     : ev->op == 't' ? ops[3]
                                     : ops[4];
    env[2] = cstr(op);
    dm_avro_value_t *src = dm_arena_calloc(arena, 11, sizeof(*src));
    if (!src) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    src[0] = cstr("mysql");
    src[1] = cstr(t->db);
    src[2] = cstr(t->name);
    src[3] = (dm_avro_value_t){.type = DM_AVRO_LONG, .u.l = ev->server_id};
    src[4] = cstr(ev->gtid);
    src[5] = cstr(ev->file);
    src[6] = (dm_avro_value_t){.type = DM_AVRO_LONG, .u.l = (int64_t)ev->pos};
    src[7] = (dm_avro_value_t){.type = DM_AVRO_INT, .u.i = ev->row};
    src[8] = cstr(ev->position);
    src[9] = (dm_avro_value_t){.type = DM_AVRO_LONG, .u.l = ev->commit_ms};
    src[10] = cstr(ev->op == 'r' ? "true" : "false");
    env[3] = (dm_avro_value_t){.type = DM_AVRO_RECORD, .len = 11, .u.v = src};
    env[4] = (dm_avro_value_t){.type = DM_AVRO_LONG, .u.l = ev->now_ms};
    env[5] = (dm_avro_value_t){.type = DM_AVRO_ARRAY, .len = 0, .u.v = NULL};
    dm_avro_value_t v = {.type = DM_AVRO_RECORD, .len = 6, .u.v = env};
    if ((rc = dm_wire_put_header(value, t->value_id)) ||
        (rc = dm_avro_encode(t->value_schema->root, &v, value, err)))
        return dm_error_prefix(err, "table %s.%s", t->db, t->name), rc;
    const dm_my_value_t *row = ev->after ? ev->after : ev->before;
    if (!t->n_key || !row || !t->key_schema) return DM_OK;
    const dm_avro_value_t *cols = ev->after ? env[1].u.v : env[0].u.v;
    dm_avro_value_t *kf = dm_arena_calloc(arena, (size_t)t->n_key, sizeof(*kf));
    if (!kf) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    for (int i = 0; i < t->n_key; i++)
        kf[i] = cols[t->key[i]];
    dm_avro_value_t kv = {.type = DM_AVRO_RECORD, .len = (uint32_t)t->n_key, .u.v = kf};
    if ((rc = dm_wire_put_header(key, t->key_id)) ||
        (rc = dm_avro_encode(t->key_schema->root, &kv, key, err)))
        return dm_error_prefix(err, "table %s.%s key", t->db, t->name), rc;
    *has_key = true;
    return DM_OK;
}
