/* connectors/mysql/my_binlog.c — decoding of table maps, row images, MySQL's
 * binary JSON and GTIDs (see my_binlog.h). */
#include "connectors/mysql/my_binlog.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- little readers ---------------------------------------------------------------------- */

typedef struct rd {
    const uint8_t *p, *end;
    const char *what; /* for errors: what is being read */
} rd_t;

static dm_err_t short_input(dm_error_t *err, const char *what)
{
    return dm_error_set(err, DM_ERR_CORRUPT, "binlog: %s is cut short", what);
}

static uint64_t le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint64_t be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

static bool need(rd_t *r, size_t n)
{
    return (size_t)(r->end - r->p) >= n;
}

/* A length-encoded integer (the client/server protocol's). */
static bool lenenc(rd_t *r, uint64_t *v)
{
    if (!need(r, 1)) return false;
    uint8_t b = *r->p++;
    int n = b < 0xfb ? 0 : b == 0xfc ? 2 : b == 0xfd ? 3 : b == 0xfe ? 8 : -1;
    if (n < 0) return false;
    if (!n) {
        *v = b;
        return true;
    }
    if (!need(r, (size_t)n)) return false;
    *v = le(r->p, n);
    r->p += n;
    return true;
}

static char *arena_strndup(dm_arena_t *a, const uint8_t *p, size_t n)
{
    char *s = dm_arena_alloc(a, n + 1);
    if (s) {
        memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

/* ---- table maps -------------------------------------------------------------------------- */

static bool is_numeric(uint8_t t)
{
    switch (t) {
    case DM_MYT_TINY:
    case DM_MYT_SHORT:
    case DM_MYT_INT24:
    case DM_MYT_LONG:
    case DM_MYT_LONGLONG:
    case DM_MYT_FLOAT:
    case DM_MYT_DOUBLE:
    case DM_MYT_NEWDECIMAL:
    case DM_MYT_DECIMAL: return true;
    default: return false;
    }
}

static bool is_character(uint8_t t)
{
    switch (t) {
    case DM_MYT_STRING:
    case DM_MYT_VARCHAR:
    case DM_MYT_VAR_STRING:
    case DM_MYT_BLOB:
    case DM_MYT_TINY_BLOB:
    case DM_MYT_MEDIUM_BLOB:
    case DM_MYT_LONG_BLOB: return true;
    default: return false;
    }
}

/* Reads a column's metadata from the table map's metadata block and unwraps
 * the real type of STRING columns. meta afterwards:
 *   FLOAT/DOUBLE/BLOB/JSON/GEOMETRY: bytes of the length (blobs) or the value
 *   TIMESTAMP2/DATETIME2/TIME2: fractional digits (0-6)
 *   VARCHAR/VAR_STRING/STRING: the maximum length in bytes
 *   NEWDECIMAL: precision << 8 | scale
 *   BIT: bytes << 8 | bits
 *   ENUM/SET: bytes of the value */
static bool column_meta(rd_t *r, dm_my_col_t *c)
{
    switch (c->type) {
    case DM_MYT_FLOAT:
    case DM_MYT_DOUBLE:
    case DM_MYT_BLOB:
    case DM_MYT_TINY_BLOB:
    case DM_MYT_MEDIUM_BLOB:
    case DM_MYT_LONG_BLOB:
    case DM_MYT_GEOMETRY:
    case DM_MYT_JSON:
    case DM_MYT_TIMESTAMP2:
    case DM_MYT_DATETIME2:
    case DM_MYT_TIME2:
        if (!need(r, 1)) return false;
        c->meta = *r->p++;
        return true;
    case DM_MYT_VARCHAR:
    case DM_MYT_VAR_STRING:
        if (!need(r, 2)) return false;
        c->meta = (uint16_t)le(r->p, 2);
        r->p += 2;
        return true;
    case DM_MYT_BIT:
        if (!need(r, 2)) return false;
        c->meta = (uint16_t)(r->p[1] << 8 | r->p[0]);
        r->p += 2;
        return true;
    case DM_MYT_NEWDECIMAL:
        if (!need(r, 2)) return false;
        c->meta = (uint16_t)(r->p[0] << 8 | r->p[1]);
        r->p += 2;
        return true;
    case DM_MYT_STRING:
    case DM_MYT_ENUM:
    case DM_MYT_SET: {
        if (!need(r, 2)) return false;
        uint8_t b0 = r->p[0], b1 = r->p[1];
        r->p += 2;
        if (b0 == DM_MYT_ENUM || b0 == DM_MYT_SET) {
            c->type = b0;
            c->meta = b1;
        } else if ((b0 & 0x30) != 0x30) { /* CHAR longer than 255 bytes */
            c->type = DM_MYT_STRING;
            c->meta = (uint16_t)((((b0 & 0x30) ^ 0x30) << 4) | b1);
        } else {
            c->type = DM_MYT_STRING;
            c->meta = b1;
        }
        return true;
    }
    default: return true;
    }
}

/* Reads n_sym length-prefixed strings into c's symbols. */
static bool read_symbols(rd_t *r, dm_arena_t *a, dm_my_col_t *c)
{
    uint64_t n;
    if (!lenenc(r, &n) || n > 65535) return false;
    c->symbols = dm_arena_calloc(a, (size_t)n + 1, sizeof(char *));
    if (!c->symbols) return false;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t l;
        if (!lenenc(r, &l) || !need(r, l)) return false;
        c->symbols[i] = arena_strndup(a, r->p, (size_t)l);
        r->p += l;
    }
    c->n_symbols = (uint32_t)n;
    return true;
}

/* One field of the optional metadata (type, length, value). */
static bool optional_field(dm_my_table_map_t *tm, uint8_t type, rd_t *v, dm_arena_t *a)
{
    uint64_t x;
    switch (type) {
    case 1: { /* SIGNEDNESS: one bit per numeric column, most significant first */
        uint32_t k = 0;
        for (uint32_t i = 0; i < tm->n_cols; i++) {
            if (!is_numeric(tm->cols[i].type)) continue;
            if (!need(v, k / 8 + 1)) return false;
            tm->cols[i].is_unsigned = v->p[k / 8] & (0x80 >> (k % 8));
            k++;
        }
        return true;
    }
    case 2: { /* DEFAULT_CHARSET: the default, then (character column, charset) pairs */
        if (!lenenc(v, &x)) return false;
        for (uint32_t i = 0; i < tm->n_cols; i++)
            if (is_character(tm->cols[i].type)) tm->cols[i].charset = (uint32_t)x;
        while (v->p < v->end) {
            uint64_t idx, cs;
            if (!lenenc(v, &idx) || !lenenc(v, &cs)) return false;
            uint64_t k = 0;
            for (uint32_t i = 0; i < tm->n_cols; i++)
                if (is_character(tm->cols[i].type) && k++ == idx)
                    tm->cols[i].charset = (uint32_t)cs;
        }
        return true;
    }
    case 3: /* COLUMN_CHARSET: one per character column */
        for (uint32_t i = 0; i < tm->n_cols; i++) {
            if (!is_character(tm->cols[i].type)) continue;
            if (!lenenc(v, &x)) return false;
            tm->cols[i].charset = (uint32_t)x;
        }
        return true;
    case 4: /* COLUMN_NAME */
        for (uint32_t i = 0; i < tm->n_cols; i++) {
            if (!lenenc(v, &x) || !need(v, x)) return false;
            tm->cols[i].name = arena_strndup(a, v->p, (size_t)x);
            v->p += x;
        }
        tm->has_names = true;
        return true;
    case 5: /* SET_STR_VALUE */
    case 6: /* ENUM_STR_VALUE */
        for (uint32_t i = 0; i < tm->n_cols; i++)
            if (tm->cols[i].type == (type == 5 ? DM_MYT_SET : DM_MYT_ENUM) &&
                !read_symbols(v, a, &tm->cols[i]))
                return false;
        return true;
    case 8: { /* SIMPLE_PRIMARY_KEY */
        int pos = 0;
        while (v->p < v->end) {
            if (!lenenc(v, &x)) return false;
            if (x < tm->n_cols) tm->cols[x].key_pos = ++pos;
        }
        return true;
    }
    case 9: { /* PRIMARY_KEY_WITH_PREFIX: (column, prefix length) */
        int pos = 0;
        while (v->p < v->end) {
            uint64_t pre;
            if (!lenenc(v, &x) || !lenenc(v, &pre)) return false;
            if (x < tm->n_cols) tm->cols[x].key_pos = ++pos;
        }
        return true;
    }
    default: return true; /* geometry types, enum/set charsets: not needed */
    }
}

dm_err_t dm_my_table_map_decode(const uint8_t *body, size_t len, dm_arena_t *arena,
                                dm_my_table_map_t *out, dm_error_t *err)
{
    memset(out, 0, sizeof(*out));
    rd_t r = {body, body + len, "table map"};
    if (!need(&r, 9)) return short_input(err, "table map header");
    out->table_id = le(r.p, 6);
    r.p += 8;
    for (int part = 0; part < 2; part++) {
        uint8_t n = *r.p++;
        if (!need(&r, (size_t)n + 1U + (part ? 0U : 1U))) return short_input(err, "table map name");
        const char *s = arena_strndup(arena, r.p, n);
        if (part)
            out->table = s;
        else
            out->db = s;
        r.p += n + 1;
    }
    uint64_t n;
    if (!lenenc(&r, &n) || n > 4096 || !need(&r, n)) return short_input(err, "table map columns");
    out->n_cols = (uint32_t)n;
    out->cols = dm_arena_calloc(arena, (size_t)n + 1, sizeof(*out->cols));
    if (!out->cols || !out->db || !out->table)
        return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    for (uint32_t i = 0; i < n; i++)
        out->cols[i].type = r.p[i];
    r.p += n;
    uint64_t mlen;
    if (!lenenc(&r, &mlen) || !need(&r, mlen)) return short_input(err, "table map metadata");
    rd_t m = {r.p, r.p + mlen, "metadata"};
    for (uint32_t i = 0; i < n; i++)
        if (!column_meta(&m, &out->cols[i])) return short_input(err, "table map column metadata");
    r.p += mlen;
    if (!need(&r, (n + 7) / 8)) return short_input(err, "table map null bitmap");
    for (uint32_t i = 0; i < n; i++)
        out->cols[i].nullable = r.p[i / 8] & (1 << (i % 8));
    r.p += (n + 7) / 8;
    while (r.p < r.end) { /* optional metadata: type, length, value */
        uint8_t type = *r.p++;
        uint64_t flen;
        if (!lenenc(&r, &flen) || !need(&r, flen))
            return short_input(err, "table map optional metadata");
        rd_t v = {r.p, r.p + flen, "optional metadata"};
        if (!optional_field(out, type, &v, arena))
            return dm_error_set(
                err, DM_ERR_CORRUPT,
                "binlog: table map of %s.%s: optional metadata field %u is malformed", out->db,
                out->table, type);
        r.p += flen;
    }
    return DM_OK;
}

/* ---- rows -------------------------------------------------------------------------------- */

dm_err_t dm_my_rows_decode(uint8_t type, const uint8_t *body, size_t len, dm_my_rows_t *out,
                           dm_error_t *err)
{
    memset(out, 0, sizeof(*out));
    bool v2 = type >= 30 && type <= 32;
    int kind = v2 ? type - 30 : type - 23;
    if (kind < 0 || kind > 2)
        return dm_error_set(err, DM_ERR_INVALID, "binlog: event type %u is not a rows event", type);
    out->op = "cud"[kind];
    rd_t r = {body, body + len, "rows"};
    if (!need(&r, 8)) return short_input(err, "rows event header");
    out->table_id = le(r.p, 6);
    out->flags = (uint16_t)le(r.p + 6, 2);
    r.p += 8;
    if (v2) {
        if (!need(&r, 2)) return short_input(err, "rows event extra data");
        uint16_t extra = (uint16_t)le(r.p, 2);
        if (extra < 2 || !need(&r, extra)) return short_input(err, "rows event extra data");
        r.p += extra;
    }
    uint64_t n;
    if (!lenenc(&r, &n) || n > 4096) return short_input(err, "rows event column count");
    out->n_cols = (uint32_t)n;
    size_t bm = (n + 7) / 8;
    if (!need(&r, bm * (kind == 1 ? 2 : 1))) return short_input(err, "rows event bitmaps");
    out->present = r.p;
    r.p += bm;
    if (kind == 1) {
        out->present_after = r.p;
        r.p += bm;
    }
    out->rows = r.p;
    out->end = r.end;
    return DM_OK;
}

static const int dig2bytes[10] = {0, 1, 1, 2, 2, 3, 3, 4, 4, 4};

/* v as exactly width decimal digits (zero-padded; snprintf here was a top
 * cost of decoding DECIMAL columns). */
static void put_digits(char *out, int width, uint32_t v)
{
    for (int i = width - 1; i >= 0; i--, v /= 10)
        out[i] = (char)('0' + v % 10);
}

/* A binary DECIMAL(precision, scale) as text. *used gets its size. */
static dm_err_t decimal_text(const uint8_t *p, size_t avail, int precision, int scale,
                             dm_arena_t *a, const char **out, size_t *out_len, size_t *used,
                             dm_error_t *err)
{
    if (precision < 1 || precision > 65 || scale < 0 || scale > precision)
        return dm_error_set(err, DM_ERR_CORRUPT, "binlog: DECIMAL(%d,%d) is not valid", precision,
                            scale);
    int intg = precision - scale, intg0 = intg / 9, intg0x = intg % 9;
    int frac0 = scale / 9, frac0x = scale % 9;
    size_t size = (size_t)(intg0 * 4 + dig2bytes[intg0x] + frac0 * 4 + dig2bytes[frac0x]);
    if (avail < size) return short_input(err, "a DECIMAL value");
    uint8_t buf[40];
    memcpy(buf, p, size);
    bool neg = !(buf[0] & 0x80);
    buf[0] ^= 0x80;
    if (neg)
        for (size_t i = 0; i < size; i++)
            buf[i] ^= 0xff;
    char *s = dm_arena_alloc(a, (size_t)precision + 4);
    if (!s) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    size_t o = 0, q = 0;
    if (neg) s[o++] = '-';
    size_t digits_start = o;
    char group[16];
    /* The integer part: a partial group of intg0x digits, then groups of 9. */
    for (int g = -1; g < intg0; g++) {
        int bytes = g < 0 ? dig2bytes[intg0x] : 4, width = g < 0 ? intg0x : 9;
        if (!bytes) continue;
        uint32_t v = (uint32_t)be(buf + q, bytes);
        q += (size_t)bytes;
        put_digits(group, width, v);
        for (int c = 0; c < width; c++)
            if (o > digits_start || group[c] != '0') s[o++] = group[c]; /* no leading zeros */
    }
    if (o == digits_start) s[o++] = '0';
    if (scale) {
        s[o++] = '.';
        for (int g = 0; g <= frac0; g++) {
            int bytes = g < frac0 ? 4 : dig2bytes[frac0x], width = g < frac0 ? 9 : frac0x;
            if (!bytes) continue;
            uint32_t v = (uint32_t)be(buf + q, bytes);
            q += (size_t)bytes;
            put_digits(s + o, width, v);
            o += (size_t)width;
        }
    }
    s[o] = '\0';
    if (neg && !strcmp(s, "-0")) memmove(s, s + 1, o--);
    *out = s;
    *out_len = o;
    *used = size;
    return DM_OK;
}

int64_t dm_my_days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int64_t datetime_micros(int64_t y, int mo, int d, int h, int mi, int s, int64_t us)
{
    return ((dm_my_days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60000000LL +
           (int64_t)s * 1000000LL + us;
}

/* The fractional part of TIMESTAMP2 / DATETIME2 in microseconds. */
static bool frac_micros(rd_t *r, int fsp, int64_t *us)
{
    int n = (fsp + 1) / 2;
    if (!need(r, (size_t)n)) return false;
    uint64_t v = be(r->p, n);
    r->p += n;
    *us = n == 1 ? (int64_t)v * 10000 : n == 2 ? (int64_t)v * 100 : (int64_t)v;
    return true;
}

/* TIME2 (MySQL's my_time_packed_from_binary) as signed microseconds. */
static bool time2_micros(rd_t *r, int fsp, int64_t *out)
{
    int n = 3 + (fsp + 1) / 2;
    if (!need(r, (size_t)n)) return false;
    const uint8_t *p = r->p;
    r->p += n;
    int64_t packed;
    if (fsp >= 5) {
        packed = (int64_t)be(p, 6) - 0x800000000000LL;
    } else {
        int64_t intpart = (int64_t)be(p, 3) - 0x800000;
        int64_t frac = 0;
        if (fsp >= 1 && fsp <= 2) {
            frac = (int8_t)p[3];
            if (intpart < 0 && frac) {
                intpart++;
                frac -= 0x100;
            }
            frac *= 10000;
        } else if (fsp >= 3) {
            frac = (int16_t)be(p + 3, 2);
            if (intpart < 0 && frac) {
                intpart++;
                frac -= 0x10000;
            }
            frac *= 100;
        }
        packed = intpart * (1LL << 24) + frac;
    }
    bool neg = packed < 0;
    uint64_t a = neg ? (uint64_t)-packed : (uint64_t)packed;
    uint64_t hms = a >> 24, us = a % (1ULL << 24);
    int64_t v =
        (int64_t)(((hms >> 12) % 1024) * 3600 + ((hms >> 6) % 64) * 60 + hms % 64) * 1000000LL +
        (int64_t)us;
    *out = neg ? -v : v;
    return true;
}

static dm_err_t value(const dm_my_col_t *c, rd_t *r, dm_arena_t *a, dm_my_value_t *v,
                      dm_error_t *err)
{
    uint64_t x;
    int n;
    switch (c->type) {
    case DM_MYT_TINY: n = 1; goto integer;
    case DM_MYT_SHORT: n = 2; goto integer;
    case DM_MYT_INT24: n = 3; goto integer;
    case DM_MYT_LONG: n = 4; goto integer;
    case DM_MYT_LONGLONG:
        n = 8;
    integer:
        if (!need(r, (size_t)n)) break;
        x = le(r->p, n);
        r->p += n;
        if (c->is_unsigned) {
            v->kind = DM_MYV_UINT;
            v->u = x;
        } else {
            v->kind = DM_MYV_INT;
            v->i = n == 8 ? (int64_t)x : (int64_t)(x << (64 - 8 * n)) >> (64 - 8 * n);
        }
        return DM_OK;
    case DM_MYT_YEAR:
        if (!need(r, 1)) break;
        v->kind = DM_MYV_INT;
        v->i = *r->p ? 1900 + *r->p : 0;
        r->p++;
        return DM_OK;
    case DM_MYT_FLOAT: {
        if (!need(r, 4)) break;
        uint32_t bits = (uint32_t)le(r->p, 4);
        float f;
        memcpy(&f, &bits, 4);
        r->p += 4;
        v->kind = DM_MYV_FLOAT;
        v->d = f;
        return DM_OK;
    }
    case DM_MYT_DOUBLE: {
        if (!need(r, 8)) break;
        uint64_t bits = le(r->p, 8);
        memcpy(&v->d, &bits, 8);
        r->p += 8;
        v->kind = DM_MYV_DOUBLE;
        return DM_OK;
    }
    case DM_MYT_NEWDECIMAL: {
        size_t used;
        dm_err_t rc = decimal_text(r->p, (size_t)(r->end - r->p), c->meta >> 8, c->meta & 0xff, a,
                                   &v->s, &v->n, &used, err);
        if (rc) return rc;
        r->p += used;
        v->kind = DM_MYV_DECIMAL;
        return DM_OK;
    }
    case DM_MYT_DATE: {
        if (!need(r, 3)) break;
        x = le(r->p, 3);
        r->p += 3;
        int d = (int)(x & 31), m = (int)(x >> 5 & 15);
        int64_t y = (int64_t)(x >> 9);
        if (!d || !m) {
            v->kind = DM_MYV_ZERO;
            return DM_OK;
        }
        v->kind = DM_MYV_DATE;
        v->i = dm_my_days_from_civil(y, m, d);
        return DM_OK;
    }
    case DM_MYT_TIMESTAMP:
    case DM_MYT_TIMESTAMP2: {
        if (!need(r, 4)) break;
        int64_t secs = c->type == DM_MYT_TIMESTAMP ? (int64_t)le(r->p, 4) : (int64_t)be(r->p, 4);
        r->p += 4;
        int64_t us = 0;
        if (c->type == DM_MYT_TIMESTAMP2 && !frac_micros(r, c->meta, &us)) break;
        if (!secs && !us) {
            v->kind = DM_MYV_ZERO;
            return DM_OK;
        }
        v->kind = DM_MYV_TIMESTAMP;
        v->i = secs * 1000000LL + us;
        return DM_OK;
    }
    case DM_MYT_DATETIME2: {
        if (!need(r, 5)) break;
        int64_t packed = (int64_t)be(r->p, 5) - 0x8000000000LL;
        r->p += 5;
        int64_t us = 0;
        if (!frac_micros(r, c->meta, &us)) break;
        int64_t ymd = packed >> 17, ym = ymd >> 5, hms = packed % (1 << 17);
        int day = (int)(ymd % 32), month = (int)(ym % 13);
        if (!day || !month) {
            v->kind = DM_MYV_ZERO;
            return DM_OK;
        }
        v->kind = DM_MYV_DATETIME;
        v->i = datetime_micros(ym / 13, month, day, (int)(hms >> 12), (int)(hms >> 6 & 63),
                               (int)(hms & 63), us);
        return DM_OK;
    }
    case DM_MYT_DATETIME: { /* the old format: YYYYMMDDhhmmss as a number */
        if (!need(r, 8)) break;
        x = le(r->p, 8);
        r->p += 8;
        uint64_t date = x / 1000000, time = x % 1000000;
        int d = (int)(date % 100), m = (int)(date / 100 % 100);
        if (!d || !m) {
            v->kind = DM_MYV_ZERO;
            return DM_OK;
        }
        v->kind = DM_MYV_DATETIME;
        v->i = datetime_micros((int64_t)(date / 10000), m, d, (int)(time / 10000),
                               (int)(time / 100 % 100), (int)(time % 100), 0);
        return DM_OK;
    }
    case DM_MYT_TIME2:
        if (!time2_micros(r, c->meta, &v->i)) break;
        v->kind = DM_MYV_TIME;
        return DM_OK;
    case DM_MYT_TIME: { /* the old format: HHMMSS as a signed 3-byte number */
        if (!need(r, 3)) break;
        int64_t t = (int64_t)(le(r->p, 3) << 40) >> 40;
        r->p += 3;
        int64_t a2 = t < 0 ? -t : t;
        int64_t us = ((a2 / 10000) * 3600 + (a2 / 100 % 100) * 60 + a2 % 100) * 1000000LL;
        v->kind = DM_MYV_TIME;
        v->i = t < 0 ? -us : us;
        return DM_OK;
    }
    case DM_MYT_VARCHAR:
    case DM_MYT_VAR_STRING:
    case DM_MYT_STRING: n = c->meta > 255 ? 2 : 1; goto prefixed;
    case DM_MYT_BLOB:
    case DM_MYT_TINY_BLOB:
    case DM_MYT_MEDIUM_BLOB:
    case DM_MYT_LONG_BLOB:
    case DM_MYT_GEOMETRY:
    case DM_MYT_JSON:
        n = c->meta;
        if (n < 1 || n > 4)
            return dm_error_set(err, DM_ERR_CORRUPT, "binlog: blob length size %d", n);
    prefixed:
        if (!need(r, (size_t)n)) break;
        x = le(r->p, n);
        r->p += n;
        if (!need(r, x)) break;
        v->kind = DM_MYV_BYTES;
        v->s = (const char *)r->p;
        v->n = (size_t)x;
        r->p += x;
        if (c->type == DM_MYT_JSON) { /* MySQL's binary JSON; an empty value is JSON null */
            dm_buf_t text = DM_BUF_INIT;
            dm_err_t rc = x ? dm_my_json_to_text((const uint8_t *)v->s, v->n, &text, err)
                            : dm_buf_append_str(&text, "null");
            if (!rc) {
                char *s = dm_arena_alloc(a, text.len + 1);
                if (!s)
                    rc = dm_error_set(err, DM_ERR_NOMEM, "out of memory");
                else {
                    memcpy(s, text.data, text.len);
                    s[text.len] = '\0';
                    v->s = s;
                    v->n = text.len;
                }
            }
            dm_buf_free(&text);
            return rc;
        }
        return DM_OK;
    case DM_MYT_ENUM:
    case DM_MYT_SET:
        n = c->meta;
        if (n < 1 || n > 8) return dm_error_set(err, DM_ERR_CORRUPT, "binlog: enum/set size %d", n);
        if (!need(r, (size_t)n)) break;
        v->kind = c->type == DM_MYT_ENUM ? DM_MYV_ENUM : DM_MYV_SET;
        v->u = le(r->p, n);
        r->p += n;
        return DM_OK;
    case DM_MYT_BIT: {
        size_t bytes = (size_t)(c->meta >> 8) + ((c->meta & 0xff) ? 1 : 0);
        if (!need(r, bytes)) break;
        v->kind = DM_MYV_BIT;
        v->s = (const char *)r->p;
        v->n = bytes;
        r->p += bytes;
        return DM_OK;
    }
    default:
        return dm_error_set(err, DM_ERR_UNSUPPORTED, "binlog: column type %u cannot be decoded",
                            c->type);
    }
    return short_input(err, "a row value");
}

dm_err_t dm_my_row_decode(const dm_my_table_map_t *tm, const uint8_t *present, const uint8_t **p,
                          const uint8_t *end, dm_arena_t *arena, dm_my_value_t *vals,
                          uint32_t *missing, dm_error_t *err)
{
    rd_t r = {*p, end, "row"};
    uint32_t n_present = 0;
    for (uint32_t i = 0; i < tm->n_cols; i++)
        if (present[i / 8] & (1 << (i % 8))) n_present++;
    size_t nb = (n_present + 7) / 8;
    if (!need(&r, nb)) return short_input(err, "a row's null bitmap");
    const uint8_t *nulls = r.p;
    r.p += nb;
    *missing = 0;
    uint32_t k = 0;
    for (uint32_t i = 0; i < tm->n_cols; i++) {
        memset(&vals[i], 0, sizeof(vals[i]));
        if (!(present[i / 8] & (1 << (i % 8)))) {
            (*missing)++;
            continue;
        }
        bool is_null = nulls[k / 8] & (1 << (k % 8));
        k++;
        if (is_null) continue;
        dm_err_t rc = value(&tm->cols[i], &r, arena, &vals[i], err);
        if (rc)
            return dm_error_prefix(err, "table %s.%s column %s", tm->db, tm->table,
                                   tm->cols[i].name ? tm->cols[i].name : "?"),
                   rc;
    }
    *p = r.p;
    return DM_OK;
}

/* ---- MySQL binary JSON ------------------------------------------------------------------- */

enum {
    JT_SMALL_OBJ = 0,
    JT_LARGE_OBJ,
    JT_SMALL_ARR,
    JT_LARGE_ARR,
    JT_LITERAL,
    JT_INT16,
    JT_UINT16,
    JT_INT32,
    JT_UINT32,
    JT_INT64,
    JT_UINT64,
    JT_DOUBLE,
    JT_STRING,
    JT_OPAQUE = 15,
};

static dm_err_t json_value(uint8_t type, const uint8_t *p, size_t len, int depth, dm_buf_t *out,
                           dm_error_t *err);

static bool varlen(const uint8_t *p, size_t len, size_t *v, size_t *used)
{
    *v = 0;
    for (size_t i = 0; i < 5 && i < len; i++) {
        *v |= (size_t)(p[i] & 0x7f) << (7 * i);
        if (!(p[i] & 0x80)) {
            *used = i + 1;
            return true;
        }
    }
    return false;
}

static void json_string(dm_buf_t *out, const uint8_t *s, size_t n)
{
    dm_buf_append_u8(out, '"');
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        if (c == '"' || c == '\\') {
            dm_buf_append_u8(out, '\\');
            dm_buf_append_u8(out, c);
        } else if (c < 0x20) {
            dm_buf_printf(out, "\\u%04x", c);
        } else {
            dm_buf_append_u8(out, c);
        }
    }
    dm_buf_append_u8(out, '"');
}

static bool inlined(uint8_t type, bool large)
{
    return type == JT_LITERAL || type == JT_INT16 || type == JT_UINT16 ||
           (large && (type == JT_INT32 || type == JT_UINT32));
}

static dm_err_t json_container(uint8_t type, const uint8_t *p, size_t len, int depth, dm_buf_t *out,
                               dm_error_t *err)
{
    bool large = type == JT_LARGE_OBJ || type == JT_LARGE_ARR;
    bool obj = type == JT_SMALL_OBJ || type == JT_LARGE_OBJ;
    size_t w = large ? 4 : 2;
    if (len < 2 * w) return short_input(err, "a JSON container");
    size_t count = (size_t)le(p, (int)w), size = (size_t)le(p + w, (int)w);
    if (size > len) return short_input(err, "a JSON container");
    size_t key_entry = w + 2, value_entry = 1 + w;
    size_t header = 2 * w + count * ((obj ? key_entry : 0) + value_entry);
    if (header > size) return short_input(err, "a JSON container's entries");
    dm_buf_append_u8(out, obj ? '{' : '[');
    for (size_t i = 0; i < count; i++) {
        if (i) dm_buf_append_u8(out, ',');
        if (obj) {
            const uint8_t *ke = p + 2 * w + i * key_entry;
            size_t koff = (size_t)le(ke, (int)w), klen = (size_t)le(ke + w, 2);
            if (koff + klen > size) return short_input(err, "a JSON key");
            json_string(out, p + koff, klen);
            dm_buf_append_u8(out, ':');
        }
        const uint8_t *ve = p + 2 * w + count * (obj ? key_entry : 0) + i * value_entry;
        uint8_t vt = ve[0];
        dm_err_t rc;
        if (inlined(vt, large)) {
            rc = json_value(vt, ve + 1, w, depth + 1, out, err);
        } else {
            size_t off = (size_t)le(ve + 1, (int)w);
            if (off >= size) return short_input(err, "a JSON value");
            rc = json_value(vt, p + off, size - off, depth + 1, out, err);
        }
        if (rc) return rc;
    }
    return dm_buf_append_u8(out, obj ? '}' : ']');
}

/* An opaque value: DECIMAL and temporal types MySQL keeps in their own format. */
static dm_err_t json_opaque(const uint8_t *p, size_t len, dm_buf_t *out, dm_error_t *err)
{
    if (len < 1) return short_input(err, "a JSON opaque value");
    uint8_t ft = p[0];
    size_t n, used;
    if (!varlen(p + 1, len - 1, &n, &used) || 1 + used + n > len)
        return short_input(err, "a JSON opaque value");
    const uint8_t *d = p + 1 + used;
    if (ft == DM_MYT_NEWDECIMAL && n >= 2) {
        dm_arena_t a;
        dm_arena_init(&a, 0);
        const char *s;
        size_t sl, u;
        dm_err_t rc = decimal_text(d + 2, n - 2, d[0], d[1], &a, &s, &sl, &u, err);
        if (!rc) dm_buf_append(out, s, sl);
        dm_arena_destroy(&a);
        return rc;
    }
    if ((ft == DM_MYT_DATE || ft == DM_MYT_DATETIME || ft == DM_MYT_TIMESTAMP ||
         ft == DM_MYT_TIME) &&
        n >= 8) {
        int64_t packed = (int64_t)le(d, 8);
        bool neg = packed < 0;
        uint64_t a = neg ? (uint64_t)-packed : (uint64_t)packed;
        uint64_t us = a % (1ULL << 24), ymdhms = a >> 24;
        char text[64];
        if (ft == DM_MYT_TIME) {
            uint64_t h = (ymdhms >> 12) % 1024, mi = (ymdhms >> 6) % 64, s = ymdhms % 64;
            snprintf(text, sizeof(text), "%s%02" PRIu64 ":%02" PRIu64 ":%02" PRIu64 ".%06" PRIu64,
                     neg ? "-" : "", h, mi, s, us);
        } else {
            uint64_t ymd = ymdhms >> 17, hms = ymdhms % (1 << 17), ym = ymd >> 5;
            if (ft == DM_MYT_DATE)
                snprintf(text, sizeof(text), "%04" PRIu64 "-%02" PRIu64 "-%02" PRIu64, ym / 13,
                         ym % 13, ymd % 32);
            else
                snprintf(text, sizeof(text),
                         "%04" PRIu64 "-%02" PRIu64 "-%02" PRIu64 " %02" PRIu64 ":%02" PRIu64
                         ":%02" PRIu64 ".%06" PRIu64,
                         ym / 13, ym % 13, ymd % 32, hms >> 12, (hms >> 6) % 64, hms % 64, us);
        }
        json_string(out, (const uint8_t *)text, strlen(text));
        return DM_OK;
    }
    /* Anything else (BLOB, BIT, GEOMETRY…) as "base16:typeN:HEX". */
    dm_buf_printf(out, "\"base16:type%u:", ft);
    for (size_t i = 0; i < n; i++)
        dm_buf_printf(out, "%02x", d[i]);
    return dm_buf_append_u8(out, '"');
}

static dm_err_t json_value(uint8_t type, const uint8_t *p, size_t len, int depth, dm_buf_t *out,
                           dm_error_t *err)
{
    if (depth > 100)
        return dm_error_set(err, DM_ERR_CORRUPT, "binlog: JSON value nested deeper than 100");
    switch (type) {
    case JT_SMALL_OBJ:
    case JT_LARGE_OBJ:
    case JT_SMALL_ARR:
    case JT_LARGE_ARR: return json_container(type, p, len, depth, out, err);
    case JT_LITERAL:
        if (len < 1) break;
        if (p[0] > 2) return dm_error_set(err, DM_ERR_CORRUPT, "binlog: JSON literal %u", p[0]);
        return dm_buf_append_str(out, p[0] == 0 ? "null" : p[0] == 1 ? "true" : "false");
    case JT_INT16:
        if (len < 2) break;
        return dm_buf_printf(out, "%d", (int16_t)le(p, 2));
    case JT_UINT16:
        if (len < 2) break;
        return dm_buf_printf(out, "%u", (unsigned)le(p, 2));
    case JT_INT32:
        if (len < 4) break;
        return dm_buf_printf(out, "%d", (int32_t)le(p, 4));
    case JT_UINT32:
        if (len < 4) break;
        return dm_buf_printf(out, "%u", (uint32_t)le(p, 4));
    case JT_INT64:
        if (len < 8) break;
        return dm_buf_printf(out, "%" PRId64, (int64_t)le(p, 8));
    case JT_UINT64:
        if (len < 8) break;
        return dm_buf_printf(out, "%" PRIu64, le(p, 8));
    case JT_DOUBLE: {
        if (len < 8) break;
        uint64_t bits = le(p, 8);
        double d;
        memcpy(&d, &bits, 8);
        char text[40];
        snprintf(text, sizeof(text), "%.17g", d);
        if (!strpbrk(text, ".eEni")) strcat(text, ".0");
        return dm_buf_append_str(out, text);
    }
    case JT_STRING: {
        size_t n, used;
        if (!varlen(p, len, &n, &used) || used + n > len) break;
        json_string(out, p + used, n);
        return DM_OK;
    }
    case JT_OPAQUE: return json_opaque(p, len, out, err);
    default: return dm_error_set(err, DM_ERR_CORRUPT, "binlog: JSON value type %u", type);
    }
    return short_input(err, "a JSON value");
}

dm_err_t dm_my_json_to_text(const uint8_t *data, size_t len, dm_buf_t *out, dm_error_t *err)
{
    if (len < 1) return short_input(err, "a JSON document");
    return json_value(data[0], data + 1, len - 1, 0, out, err);
}

/* ---- GTIDs ------------------------------------------------------------------------------- */

static void uuid_text(const uint8_t *u, dm_buf_t *out)
{
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) dm_buf_append_u8(out, '-');
        dm_buf_printf(out, "%02x", u[i]);
    }
}

dm_err_t dm_my_gtid_mysql_decode(const uint8_t *body, size_t len, char *out, size_t cap,
                                 dm_error_t *err)
{
    if (len < 25) return short_input(err, "a GTID event");
    dm_buf_t b = DM_BUF_INIT;
    uuid_text(body + 1, &b);
    dm_buf_printf(&b, ":%" PRIu64, le(body + 17, 8));
    snprintf(out, cap, "%.*s", (int)b.len, (const char *)b.data);
    dm_buf_free(&b);
    return DM_OK;
}

dm_err_t dm_my_gtid_set_decode(const uint8_t *body, size_t len, dm_buf_t *out, dm_error_t *err)
{
    rd_t r = {body, body + len, "gtid set"};
    if (!need(&r, 8)) return short_input(err, "a GTID set");
    uint64_t n_sids = le(r.p, 8);
    r.p += 8;
    for (uint64_t s = 0; s < n_sids; s++) {
        if (!need(&r, 24)) return short_input(err, "a GTID set");
        if (s) dm_buf_append_u8(out, ',');
        uuid_text(r.p, out);
        uint64_t n_iv = le(r.p + 16, 8);
        r.p += 24;
        for (uint64_t i = 0; i < n_iv; i++) {
            if (!need(&r, 16)) return short_input(err, "a GTID interval");
            uint64_t start = le(r.p, 8), end = le(r.p + 8, 8); /* end exclusive */
            r.p += 16;
            if (end <= start)
                return dm_error_set(err, DM_ERR_CORRUPT,
                                    "binlog: GTID interval %" PRIu64 "-%" PRIu64 " is empty", start,
                                    end);
            if (end - 1 == start)
                dm_buf_printf(out, ":%" PRIu64, start);
            else
                dm_buf_printf(out, ":%" PRIu64 "-%" PRIu64, start, end - 1);
        }
    }
    return DM_OK;
}

bool dm_my_gtid_state_set(dm_my_gtid_state_t *s, uint32_t domain, uint32_t server, uint64_t seq)
{
    int i = 0;
    while (i < s->n && s->g[i].domain != domain)
        i++;
    if (i == s->n) {
        if (s->n == (int)(sizeof(s->g) / sizeof(s->g[0]))) return false;
        s->n++;
    }
    s->g[i].domain = domain;
    s->g[i].server = server;
    s->g[i].seq = seq;
    return true;
}

void dm_my_gtid_state_text(const dm_my_gtid_state_t *s, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = '\0';
    uint32_t last = 0;
    for (int k = 0; k < s->n; k++) { /* by domain: the smallest above the last written */
        int best = -1;
        for (int i = 0; i < s->n; i++)
            if ((k == 0 || s->g[i].domain > last) &&
                (best < 0 || s->g[i].domain < s->g[best].domain))
                best = i;
        if (best < 0) break;
        last = s->g[best].domain;
        if (o < cap)
            o += (size_t)snprintf(out + o, cap - o, "%s%u-%u-%" PRIu64, k ? "," : "",
                                  s->g[best].domain, s->g[best].server, s->g[best].seq);
    }
}

dm_err_t dm_my_gtid_state_parse(const char *text, dm_my_gtid_state_t *s, dm_error_t *err)
{
    memset(s, 0, sizeof(*s));
    const char *p = text;
    while (p && *p) {
        while (*p == ' ' || *p == ',')
            p++;
        if (!*p) break;
        unsigned d, sv;
        unsigned long long q;
        int used = 0;
        if (sscanf(p, "%u-%u-%llu%n", &d, &sv, &q, &used) != 3 || !used ||
            (p[used] && p[used] != ','))
            return dm_error_set(err, DM_ERR_INVALID,
                                "GTID position '%.60s': expected domain-server-sequence at '%.20s'",
                                text, p);
        if (!dm_my_gtid_state_set(s, d, sv, q))
            return dm_error_set(err, DM_ERR_RANGE, "GTID position '%.60s': more than 16 domains",
                                text);
        p += used;
    }
    return DM_OK;
}
