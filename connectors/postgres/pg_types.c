/* connectors/postgres/pg_types.c — PostgreSQL types to Avro, text values to
 * Avro values. */
#include "connectors/postgres/pg_types.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- types -------------------------------------------------------------------- */

static void decimal_of(int32_t typmod, dm_pg_type_t *t)
{
    if (typmod < 4) return; /* unconstrained numeric: any scale, shown as a string */
    int p = ((typmod - 4) >> 16) & 0xffff;
    int s = (((typmod - 4) & 0x7ff) ^ 1024) - 1024;
    if (s < 0 || s > p || p < 1) return; /* Avro decimals need 0 <= scale <= precision */
    t->kind = DM_PGK_DECIMAL;
    t->precision = p;
    t->scale = s;
}

static bool scalar_builtin(uint32_t oid, int32_t typmod, dm_pg_type_t *t)
{
    memset(t, 0, sizeof(*t));
    switch (oid) {
    case 16: t->kind = DM_PGK_BOOL; return true;
    case 17: t->kind = DM_PGK_BYTEA; return true;
    case 20:
    case 26: t->kind = oid == 20 ? DM_PGK_INT8 : DM_PGK_INT8; return true;
    case 21: t->kind = DM_PGK_INT2; return true;
    case 23: t->kind = DM_PGK_INT4; return true;
    case 18:   /* "char" */
    case 19:   /* name */
    case 25:   /* text */
    case 114:  /* json */
    case 1042: /* char(n) */
    case 1043: /* varchar */
    case 3802: /* jsonb */ t->kind = DM_PGK_STRING; return true;
    case 700: t->kind = DM_PGK_FLOAT4; return true;
    case 701: t->kind = DM_PGK_FLOAT8; return true;
    case 1082: t->kind = DM_PGK_DATE; return true;
    case 1083: t->kind = DM_PGK_TIME; return true;
    case 1114: t->kind = DM_PGK_TIMESTAMP; return true;
    case 1184: t->kind = DM_PGK_TIMESTAMPTZ; return true;
    case 1186: t->kind = DM_PGK_INTERVAL; return true;
    case 1700:
        t->kind = DM_PGK_STRING;
        decimal_of(typmod, t);
        return true;
    case 2950: t->kind = DM_PGK_UUID; return true;
    default: return false;
    }
}

uint32_t dm_pg_array_elem_builtin(uint32_t oid)
{
    static const uint32_t pairs[][2] = {
        {1000, 16},   {1001, 17},   {1002, 18},   {1003, 19},   {1005, 21},   {1007, 23},
        {1009, 25},   {1014, 1042}, {1015, 1043}, {1016, 20},   {1021, 700},  {1022, 701},
        {1028, 26},   {1115, 1114}, {1182, 1082}, {1183, 1083}, {1185, 1184}, {1187, 1186},
        {1231, 1700}, {2951, 2950}, {199, 114},   {3807, 3802},
    };
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++)
        if (pairs[i][0] == oid) return pairs[i][1];
    return 0;
}

bool dm_pg_type_builtin(uint32_t oid, int32_t typmod, dm_pg_type_t *out)
{
    if (scalar_builtin(oid, typmod, out)) return true;
    uint32_t elem = dm_pg_array_elem_builtin(oid);
    dm_pg_type_t e;
    if (!elem || !scalar_builtin(elem, typmod, &e)) return false;
    memset(out, 0, sizeof(*out));
    out->kind = DM_PGK_ARRAY;
    out->elem = e.kind;
    out->elem_precision = e.precision;
    out->elem_scale = e.scale;
    return true;
}

static dm_err_t scalar_json(dm_pg_kind_t k, int precision, int scale, bool *interval_defined,
                            dm_buf_t *out)
{
    switch (k) {
    case DM_PGK_STRING: return dm_buf_append_str(out, "\"string\"");
    case DM_PGK_BOOL: return dm_buf_append_str(out, "\"boolean\"");
    case DM_PGK_INT2:
    case DM_PGK_INT4: return dm_buf_append_str(out, "\"int\"");
    case DM_PGK_INT8: return dm_buf_append_str(out, "\"long\"");
    case DM_PGK_FLOAT4: return dm_buf_append_str(out, "\"float\"");
    case DM_PGK_FLOAT8: return dm_buf_append_str(out, "\"double\"");
    case DM_PGK_DECIMAL:
        return dm_buf_printf(out,
                             "{\"type\":\"bytes\",\"logicalType\":\"decimal\",\"precision\":%d,"
                             "\"scale\":%d}",
                             precision, scale);
    case DM_PGK_BYTEA: return dm_buf_append_str(out, "\"bytes\"");
    case DM_PGK_DATE: return dm_buf_append_str(out, "{\"type\":\"int\",\"logicalType\":\"date\"}");
    case DM_PGK_TIME:
        return dm_buf_append_str(out, "{\"type\":\"long\",\"logicalType\":\"time-micros\"}");
    case DM_PGK_TIMESTAMP:
        return dm_buf_append_str(out,
                                 "{\"type\":\"long\",\"logicalType\":\"local-timestamp-micros\"}");
    case DM_PGK_TIMESTAMPTZ:
        return dm_buf_append_str(out, "{\"type\":\"long\",\"logicalType\":\"timestamp-micros\"}");
    case DM_PGK_UUID:
        return dm_buf_append_str(out, "{\"type\":\"string\",\"logicalType\":\"uuid\"}");
    case DM_PGK_INTERVAL:
        if (*interval_defined) return dm_buf_append_str(out, "\"datamesh.postgres.Interval\"");
        *interval_defined = true;
        return dm_buf_append_str(out, "{\"type\":\"record\",\"name\":\"Interval\",\"namespace\":"
                                      "\"datamesh.postgres\",\"fields\":[{\"name\":\"months\","
                                      "\"type\":\"int\"},{\"name\":\"days\",\"type\":\"int\"},{"
                                      "\"name\":\"micros\",\"type\":\"long\"}]}");
    case DM_PGK_ARRAY: break;
    }
    return DM_ERR_INVALID;
}

dm_err_t dm_pg_type_avro_json(const dm_pg_type_t *t, bool *interval_defined, dm_buf_t *out)
{
    if (t->kind != DM_PGK_ARRAY)
        return scalar_json(t->kind, t->precision, t->scale, interval_defined, out);
    dm_err_t rc = dm_buf_append_str(out, "{\"type\":\"array\",\"items\":[\"null\",");
    if (!rc) rc = scalar_json(t->elem, t->elem_precision, t->elem_scale, interval_defined, out);
    return rc ? rc : dm_buf_append_str(out, "]}");
}

/* ---- values ------------------------------------------------------------------- */

static dm_err_t bad(dm_error_t *err, const char *what, const char *text, size_t len)
{
    return dm_error_set(err, DM_ERR_INVALID, "value '%.*s' is not a valid %s",
                        (int)(len > 80 ? 80 : len), text, what);
}

int64_t dm_pg_days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* Reads an unsigned decimal number of at most max digits; -1 when none. */
static int64_t digits(const char **p, const char *end, int max)
{
    int64_t v = 0;
    int n = 0;
    while (*p < end && **p >= '0' && **p <= '9' && n < max) {
        v = v * 10 + (**p - '0');
        (*p)++;
        n++;
    }
    return n ? v : -1;
}

/* ".ffffff" → microseconds (more digits are rounded away). */
static int64_t fraction_us(const char **p, const char *end)
{
    if (*p >= end || **p != '.') return 0;
    (*p)++;
    int64_t us = 0;
    int n = 0;
    while (*p < end && **p >= '0' && **p <= '9') {
        if (n < 6) us = us * 10 + (**p - '0');
        n++;
        (*p)++;
    }
    for (; n < 6; n++)
        us *= 10;
    return us;
}

/* "YYYY-MM-DD" (with " BC" looked for by the caller) → days since 1970. */
static bool parse_date(const char **p, const char *end, int64_t *days)
{
    int64_t y = digits(p, end, 9);
    if (y < 0 || *p >= end || **p != '-') return false;
    (*p)++;
    int64_t m = digits(p, end, 2);
    if (m < 1 || m > 12 || *p >= end || **p != '-') return false;
    (*p)++;
    int64_t d = digits(p, end, 2);
    if (d < 1 || d > 31) return false;
    bool bc = end - *p >= 3 && !memcmp(end - 3, " BC", 3);
    if (bc) y = 1 - y; /* 1 BC is year 0 */
    *days = dm_pg_days_from_civil(y, (int)m, (int)d);
    return true;
}

static bool parse_time(const char **p, const char *end, int64_t *us)
{
    int64_t h = digits(p, end, 2);
    if (h < 0 || h > 24 || *p >= end || **p != ':') return false;
    (*p)++;
    int64_t mi = digits(p, end, 2);
    if (mi < 0 || mi > 59 || *p >= end || **p != ':') return false;
    (*p)++;
    int64_t s = digits(p, end, 2);
    if (s < 0 || s > 60) return false;
    *us = ((h * 60 + mi) * 60 + s) * 1000000 + fraction_us(p, end);
    return true;
}

/* "+HH[:MM[:SS]]" → seconds east of UTC. */
static bool parse_offset(const char **p, const char *end, int64_t *secs)
{
    *secs = 0;
    if (*p >= end || (**p != '+' && **p != '-')) return true;
    int sign = **p == '-' ? -1 : 1;
    (*p)++;
    int64_t h = digits(p, end, 2), mi = 0, s = 0;
    if (h < 0) return false;
    if (*p < end && **p == ':') {
        (*p)++;
        if ((mi = digits(p, end, 2)) < 0) return false;
        if (*p < end && **p == ':') {
            (*p)++;
            if ((s = digits(p, end, 2)) < 0) return false;
        }
    }
    *secs = sign * (h * 3600 + mi * 60 + s);
    return true;
}

static bool is_word(const char *text, size_t len, const char *w)
{
    return strlen(w) == len && !memcmp(text, w, len);
}

static dm_err_t conv_timestamp(bool tz, const char *text, size_t len, dm_avro_value_t *out,
                               dm_error_t *err)
{
    out->type = DM_AVRO_LONG;
    if (is_word(text, len, "infinity")) return out->u.l = INT64_MAX, DM_OK;
    if (is_word(text, len, "-infinity")) return out->u.l = INT64_MIN, DM_OK;
    const char *p = text, *end = text + len;
    int64_t days, us, off = 0;
    if (!parse_date(&p, end, &days) || p >= end || *p != ' ') goto fail;
    p++;
    if (!parse_time(&p, end, &us)) goto fail;
    if (tz && !parse_offset(&p, end, &off)) goto fail;
    out->u.l = days * 86400000000LL + us - off * 1000000;
    return DM_OK;
fail:
    return bad(err, tz ? "timestamptz (YYYY-MM-DD HH:MM:SS[.f]+HH)" : "timestamp", text, len);
}

/* ISO 8601 intervals as IntervalStyle=iso_8601 writes them: P1Y2M3DT4H5M6.5S,
 * each part with its own sign. */
static dm_err_t conv_interval(const char *text, size_t len, dm_arena_t *arena, dm_avro_value_t *out,
                              dm_error_t *err)
{
    const char *p = text, *end = text + len;
    int64_t months = 0, days = 0, us = 0;
    bool in_time = false;
    if (p >= end || *p++ != 'P') goto fail;
    while (p < end) {
        if (*p == 'T') {
            in_time = true;
            p++;
            continue;
        }
        int sign = 1;
        if (*p == '-' || *p == '+') sign = *p++ == '-' ? -1 : 1;
        int64_t n = digits(&p, end, 18);
        int64_t frac = fraction_us(&p, end);
        if (n < 0 || p >= end) goto fail;
        char unit = *p++;
        if (!in_time && unit == 'Y')
            months += sign * n * 12;
        else if (!in_time && unit == 'M')
            months += sign * n;
        else if (!in_time && unit == 'W')
            days += sign * n * 7;
        else if (!in_time && unit == 'D')
            days += sign * n;
        else if (in_time && unit == 'H')
            us += sign * n * 3600000000LL;
        else if (in_time && unit == 'M')
            us += sign * n * 60000000LL;
        else if (in_time && unit == 'S')
            us += sign * (n * 1000000 + frac);
        else
            goto fail;
    }
    dm_avro_value_t *f = dm_arena_calloc(arena, 3, sizeof(*f));
    if (!f) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    f[0] = (dm_avro_value_t){.type = DM_AVRO_INT, .u.i = (int32_t)months};
    f[1] = (dm_avro_value_t){.type = DM_AVRO_INT, .u.i = (int32_t)days};
    f[2] = (dm_avro_value_t){.type = DM_AVRO_LONG, .u.l = us};
    *out = (dm_avro_value_t){.type = DM_AVRO_RECORD, .len = 3, .u.v = f};
    return DM_OK;
fail:
    return bad(err, "interval (ISO 8601, IntervalStyle=iso_8601)", text, len);
}

/* "-123.45" with scale s → the unscaled integer as big-endian two's complement. */
static dm_err_t conv_decimal(int precision, int scale, const char *text, size_t len,
                             dm_arena_t *arena, dm_avro_value_t *out, dm_error_t *err)
{
    const char *p = text, *end = text + len;
    bool neg = p < end && *p == '-';
    if (p < end && (*p == '-' || *p == '+')) p++;
    size_t cap = (size_t)precision / 2 + 3;
    uint8_t *mag = dm_arena_calloc(arena, cap, 1); /* little-endian magnitude */
    if (!mag) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    int n_int = 0, n_frac = 0;
    bool dot = false;
    for (; p < end; p++) {
        if (*p == '.' && !dot) {
            dot = true;
            continue;
        }
        if (*p < '0' || *p > '9') goto fail;
        if (dot && n_frac == scale) {
            if (*p != '0') goto fail; /* more fraction than the column holds */
            continue;
        }
        dot ? n_frac++ : n_int++;
        unsigned carry = (unsigned)(*p - '0');
        for (size_t i = 0; i < cap; i++) {
            unsigned v = mag[i] * 10u + carry;
            mag[i] = (uint8_t)v;
            carry = v >> 8;
        }
    }
    if (n_int + n_frac == 0 || n_int > precision - scale) goto fail;
    for (; n_frac < scale; n_frac++) {
        unsigned carry = 0;
        for (size_t i = 0; i < cap; i++) {
            unsigned v = mag[i] * 10u + carry;
            mag[i] = (uint8_t)v;
            carry = v >> 8;
        }
    }
    if (neg) { /* two's complement: invert, add one */
        unsigned carry = 1;
        for (size_t i = 0; i < cap; i++) {
            unsigned v = (uint8_t)~mag[i] + carry;
            mag[i] = (uint8_t)v;
            carry = v >> 8;
        }
    }
    /* Shortest big-endian form that keeps the sign. */
    size_t n = cap;
    uint8_t fill = neg ? 0xff : 0x00;
    while (n > 1 && mag[n - 1] == fill && ((mag[n - 2] & 0x80) == (fill & 0x80)))
        n--;
    uint8_t *be = dm_arena_alloc(arena, n);
    if (!be) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        be[i] = mag[n - 1 - i];
    *out = (dm_avro_value_t){.type = DM_AVRO_BYTES, .len = (uint32_t)n, .u.p = be};
    return DM_OK;
fail:;
    char what[64];
    snprintf(what, sizeof(what), "numeric(%d,%d)", precision, scale);
    return bad(err, what, text, len);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static dm_err_t conv_bytea(const char *text, size_t len, dm_arena_t *arena, dm_avro_value_t *out,
                           dm_error_t *err)
{
    if (len < 2 || text[0] != '\\' || text[1] != 'x' || len % 2)
        return bad(err, "bytea in hex form (\\x…)", text, len);
    size_t n = (len - 2) / 2;
    uint8_t *b = dm_arena_alloc(arena, n ? n : 1);
    if (!b) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(text[2 + 2 * i]), lo = hexval(text[3 + 2 * i]);
        if (hi < 0 || lo < 0) return bad(err, "bytea in hex form (\\x…)", text, len);
        b[i] = (uint8_t)(hi << 4 | lo);
    }
    *out = (dm_avro_value_t){.type = DM_AVRO_BYTES, .len = (uint32_t)n, .u.p = b};
    return DM_OK;
}

static dm_err_t conv_integer(dm_pg_kind_t k, const char *text, size_t len, dm_avro_value_t *out,
                             dm_error_t *err)
{
    char *endp;
    errno = 0;
    long long v = strtoll(text, &endp, 10);
    int64_t lo = k == DM_PGK_INT2 ? INT16_MIN : k == DM_PGK_INT4 ? INT32_MIN : INT64_MIN;
    int64_t hi = k == DM_PGK_INT2 ? INT16_MAX : k == DM_PGK_INT4 ? INT32_MAX : INT64_MAX;
    if (errno || endp != text + len || len == 0 || v < lo || v > hi)
        return bad(err, k == DM_PGK_INT8 ? "bigint" : "integer", text, len);
    if (k == DM_PGK_INT8)
        *out = (dm_avro_value_t){.type = DM_AVRO_LONG, .u.l = v};
    else
        *out = (dm_avro_value_t){.type = DM_AVRO_INT, .u.i = (int32_t)v};
    return DM_OK;
}

static dm_err_t conv_scalar(dm_pg_kind_t k, int precision, int scale, const char *text, size_t len,
                            dm_arena_t *arena, dm_avro_value_t *out, dm_error_t *err);

/* "{a,"b c",NULL}" → an array of [null, T]; one dimension only. */
static dm_err_t conv_array(const dm_pg_type_t *t, const char *text, size_t len, dm_arena_t *arena,
                           dm_avro_value_t *out, dm_error_t *err)
{
    const char *p = text, *end = text + len;
    if (p < end && *p == '[') { /* explicit bounds: "[0:2]={...}" */
        while (p < end && *p != '=')
            p++;
        p++;
    }
    if (p >= end || *p != '{' || end[-1] != '}') return bad(err, "array", text, len);
    p++;
    end--;
    size_t n = 0, cap = 8;
    dm_avro_value_t *items = dm_arena_alloc(arena, cap * sizeof(*items));
    char *tmp = dm_arena_alloc(arena, len + 1);
    if (!items || !tmp) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    while (p < end) {
        if (*p == '{')
            return dm_error_set(err, DM_ERR_UNSUPPORTED,
                                "value '%.*s': multi-dimensional arrays are not supported",
                                (int)(len > 80 ? 80 : len), text);
        size_t tl = 0;
        bool quoted = *p == '"';
        if (quoted) {
            p++;
            while (p < end && *p != '"') {
                if (*p == '\\' && p + 1 < end) p++;
                tmp[tl++] = *p++;
            }
            if (p >= end) return bad(err, "array", text, len);
            p++;
        } else {
            while (p < end && *p != ',')
                tmp[tl++] = *p++;
        }
        if (p < end && *p != ',') return bad(err, "array", text, len);
        if (p < end) p++;
        if (n == cap) {
            dm_avro_value_t *bigger = dm_arena_alloc(arena, 2 * cap * sizeof(*items));
            if (!bigger) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
            memcpy(bigger, items, n * sizeof(*items));
            items = bigger;
            cap *= 2;
        }
        dm_avro_value_t *it = &items[n++];
        if (!quoted && tl == 4 && !strncasecmp(tmp, "NULL", 4)) {
            *it = (dm_avro_value_t){.type = DM_AVRO_NULL, .branch = 0};
            continue;
        }
        char *s = dm_arena_strndup(arena, tmp, tl);
        if (!s) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
        dm_err_t rc = conv_scalar(t->elem, t->elem_precision, t->elem_scale, s, tl, arena, it, err);
        if (rc) return rc;
        it->branch = 1;
    }
    *out = (dm_avro_value_t){.type = DM_AVRO_ARRAY, .len = (uint32_t)n, .u.v = items};
    return DM_OK;
}

static dm_err_t conv_scalar(dm_pg_kind_t k, int precision, int scale, const char *text, size_t len,
                            dm_arena_t *arena, dm_avro_value_t *out, dm_error_t *err)
{
    memset(out, 0, sizeof(*out));
    const char *p = text, *end = text + len;
    switch (k) {
    case DM_PGK_STRING:
    case DM_PGK_UUID:
        *out = (dm_avro_value_t){
            .type = DM_AVRO_STRING, .len = (uint32_t)len, .u.p = (const uint8_t *)text};
        return DM_OK;
    case DM_PGK_BOOL:
        if (len != 1 || (*text != 't' && *text != 'f')) return bad(err, "boolean", text, len);
        *out = (dm_avro_value_t){.type = DM_AVRO_BOOLEAN, .u.b = *text == 't'};
        return DM_OK;
    case DM_PGK_INT2:
    case DM_PGK_INT4:
    case DM_PGK_INT8: return conv_integer(k, text, len, out, err);
    case DM_PGK_FLOAT4:
    case DM_PGK_FLOAT8: {
        char *endp;
        double d = strtod(text, &endp);
        if (endp != end || len == 0) return bad(err, "floating-point number", text, len);
        if (k == DM_PGK_FLOAT4)
            *out = (dm_avro_value_t){.type = DM_AVRO_FLOAT, .u.f = strtof(text, NULL)};
        else
            *out = (dm_avro_value_t){.type = DM_AVRO_DOUBLE, .u.d = d};
        return DM_OK;
    }
    case DM_PGK_DECIMAL: return conv_decimal(precision, scale, text, len, arena, out, err);
    case DM_PGK_BYTEA: return conv_bytea(text, len, arena, out, err);
    case DM_PGK_DATE: {
        out->type = DM_AVRO_INT;
        if (is_word(text, len, "infinity")) return out->u.i = INT32_MAX, DM_OK;
        if (is_word(text, len, "-infinity")) return out->u.i = INT32_MIN, DM_OK;
        int64_t days;
        if (!parse_date(&p, end, &days) || (p != end && strcmp(p, " BC")) || days < INT32_MIN ||
            days > INT32_MAX)
            return bad(err, "date (YYYY-MM-DD)", text, len);
        out->u.i = (int32_t)days;
        return DM_OK;
    }
    case DM_PGK_TIME: {
        int64_t us;
        if (!parse_time(&p, end, &us) || p != end)
            return bad(err, "time (HH:MM:SS[.f])", text, len);
        *out = (dm_avro_value_t){.type = DM_AVRO_LONG, .u.l = us};
        return DM_OK;
    }
    case DM_PGK_TIMESTAMP:
    case DM_PGK_TIMESTAMPTZ: return conv_timestamp(k == DM_PGK_TIMESTAMPTZ, text, len, out, err);
    case DM_PGK_INTERVAL: return conv_interval(text, len, arena, out, err);
    case DM_PGK_ARRAY: break;
    }
    return dm_error_set(err, DM_ERR_INTERNAL, "unexpected type kind %d", (int)k);
}

dm_err_t dm_pg_value_from_text(const dm_pg_type_t *t, const char *text, size_t len,
                               dm_arena_t *arena, dm_avro_value_t *out, dm_error_t *err)
{
    if (t->kind == DM_PGK_ARRAY) return conv_array(t, text, len, arena, out, err);
    return conv_scalar(t->kind, t->precision, t->scale, text, len, arena, out, err);
}

bool dm_pg_sqlstate_transient(const char *sqlstate)
{
    if (!sqlstate) return false;
    /* 08 connection exception, 40 transaction rollback (serialization,
     * deadlock), 53 insufficient resources, 57 operator intervention
     * (shutdown, cancel), 58 system error, 55006 object in use (a slot held
     * by another session) */
    static const char *const classes[] = {"08", "40", "53", "57", "58"};
    for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++)
        if (!strncmp(sqlstate, classes[i], 2)) return true;
    return !strcmp(sqlstate, "55006");
}
