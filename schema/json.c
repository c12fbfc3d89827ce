/* schema/json.c — JSON ↔ Avro values (dm_avro_from_json_*, dm_avro_to_json).
 *
 * Three dialects share one walker: the spec's JSON encoding, schema defaults
 * (the same but a union takes its first branch, unwrapped) and plain JSON
 * (unions unwrapped and inferred from the value, logical types as ISO-8601
 * strings, decimals as strings of digits). Errors name the field path and the
 * type that was expected.
 */
#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema/internal.h"
#include "schema/json_internal.h"

typedef struct jctx {
    dm_avro_json_mode_t mode;
    dm_arena_t *arena;
    dm_error_t *err;
    int quiet; /* trying union branches: failures are not errors yet */
    char path[512];
    size_t plen;
} jctx_t;

static const char *json_kind(const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

static const char *node_name(const dm_avro_node_t *n)
{
    return n->fullname ? n->fullname : dm_avro_type_name(n->type);
}

static int jfail(jctx_t *c, const dm_avro_node_t *n, const json_t *j, const char *why)
{
    if (!c->quiet)
        dm_error_set(c->err, DM_ERR_SCHEMA_MISMATCH, "%s: expected %s%s%s, got %s",
                     c->plen ? c->path : "$", node_name(n), why ? " " : "", why ? why : "",
                     j ? json_kind(j) : "nothing");
    return -1;
}

static size_t jpush(jctx_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static size_t jpush(jctx_t *c, const char *fmt, ...)
{
    size_t old = c->plen;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(c->path + c->plen, sizeof(c->path) - c->plen, fmt, ap);
    va_end(ap);
    if (n > 0) c->plen += (size_t)n;
    if (c->plen >= sizeof(c->path)) c->plen = sizeof(c->path) - 1;
    return old;
}

static void jpop(jctx_t *c, size_t old)
{
    c->plen = old;
    c->path[old] = '\0';
}

/* ---- dates and times ------------------------------------------------------------------ */

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static bool parse_digits(const char **s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*s)[i])) return false;
        v = v * 10 + ((*s)[i] - '0');
    }
    *s += n;
    *out = v;
    return true;
}

bool dm_avro_json_parse_date(const char **s, int64_t *days)
{
    int y, m, d;
    if (!parse_digits(s, 4, &y) || **s != '-') return false;
    (*s)++;
    if (!parse_digits(s, 2, &m) || **s != '-') return false;
    (*s)++;
    if (!parse_digits(s, 2, &d) || m < 1 || m > 12 || d < 1 || d > 31) return false;
    *days = days_from_civil(y, (unsigned)m, (unsigned)d);
    return true;
}

/* HH:MM:SS[.frac] → microseconds of the day. */
bool dm_avro_json_parse_time(const char **s, int64_t *us)
{
    int h, mi, se;
    if (!parse_digits(s, 2, &h) || **s != ':') return false;
    (*s)++;
    if (!parse_digits(s, 2, &mi) || **s != ':') return false;
    (*s)++;
    if (!parse_digits(s, 2, &se) || h > 23 || mi > 59 || se > 60) return false;
    int64_t frac = 0;
    if (**s == '.') {
        (*s)++;
        int nd = 0;
        while (isdigit((unsigned char)**s)) {
            if (nd < 6) frac = frac * 10 + (**s - '0');
            nd++;
            (*s)++;
        }
        if (!nd) return false;
        for (; nd < 6; nd++)
            frac *= 10;
    }
    *us = ((int64_t)h * 3600 + mi * 60 + se) * 1000000 + frac;
    return true;
}

/* ISO-8601 date-time → microseconds since the epoch (UTC unless an offset). */
bool dm_avro_json_parse_timestamp(const char *s, int64_t *us)
{
    int64_t days, tod = 0;
    if (!dm_avro_json_parse_date(&s, &days)) return false;
    if (*s == 'T' || *s == ' ') {
        s++;
        if (!dm_avro_json_parse_time(&s, &tod)) return false;
    }
    int64_t off = 0;
    if (*s == 'Z') {
        s++;
    } else if (*s == '+' || *s == '-') {
        int sign = *s == '-' ? -1 : 1, oh, om;
        s++;
        if (!parse_digits(&s, 2, &oh)) return false;
        if (*s == ':') s++;
        if (!parse_digits(&s, 2, &om)) return false;
        off = sign * ((int64_t)oh * 3600 + om * 60) * 1000000;
    }
    if (*s) return false;
    *us = days * 86400000000LL + tod - off;
    return true;
}

int64_t dm_avro_json_floordiv(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

/* v as exactly n decimal digits at o (v < 10^n). */
static void put_digits(char *o, unsigned v, int n)
{
    for (int i = n - 1; i >= 0; i--, v /= 10)
        o[i] = (char)('0' + v % 10);
}

static void fmt_timestamp(dm_buf_t *out, int64_t us, bool zone)
{
    /* floor division without overflow, even at INT64_MIN */
    int64_t days = us / 86400000000LL, tod = us % 86400000000LL;
    if (tod < 0) {
        tod += 86400000000LL;
        days -= 1;
    }
    int64_t y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    int64_t secs = tod / 1000000, frac = tod % 1000000;
    if (y < 0 || y > 9999) {
        dm_buf_printf(out, "\"%04" PRId64 "-%02u-%02uT%02d:%02d:%02d", y, m, d, (int)(secs / 3600),
                      (int)(secs / 60 % 60), (int)(secs % 60));
    } else {
        char t[24] = "\"YYYY-MM-DDTHH:MM:SS";
        put_digits(t + 1, (unsigned)y, 4);
        put_digits(t + 6, m, 2);
        put_digits(t + 9, d, 2);
        put_digits(t + 12, (unsigned)(secs / 3600), 2);
        put_digits(t + 15, (unsigned)(secs / 60 % 60), 2);
        put_digits(t + 18, (unsigned)(secs % 60), 2);
        dm_buf_append(out, t, 20);
    }
    if (frac) {
        char f[8] = ".";
        put_digits(f + 1, (unsigned)frac, 6);
        dm_buf_append(out, f, 7);
    }
    dm_buf_append_str(out, zone ? "Z\"" : "\"");
}

/* ---- decimals --------------------------------------------------------------------------- */

/* Parses "[-]digits[.digits]" into an unscaled integer at the given scale. */
bool dm_avro_json_parse_decimal(const char *s, int scale, __int128 *out)
{
    bool neg = false;
    if (*s == '-' || *s == '+') neg = *s++ == '-';
    __int128 v = 0;
    int frac = -1, digits = 0;
    for (; *s; s++) {
        if (*s == '.' && frac < 0) {
            frac = 0;
            continue;
        }
        if (!isdigit((unsigned char)*s)) return false;
        if (frac >= 0 && frac == scale) {
            if (*s != '0') return false; /* would lose digits */
            continue;
        }
        if (++digits > 38) return false;
        v = v * 10 + (*s - '0');
        if (frac >= 0) frac++;
    }
    if (!digits || digits + scale - (frac < 0 ? 0 : frac) > 38) return false;
    for (int f = frac < 0 ? 0 : frac; f < scale; f++)
        v *= 10;
    *out = neg ? -v : v;
    return true;
}

uint8_t *dm_avro_json_decimal_bytes(dm_arena_t *arena, __int128 v, uint32_t fixed, uint32_t *len)
{
    uint8_t tmp[16];
    for (int i = 15; i >= 0; i--, v >>= 8)
        tmp[i] = (uint8_t)(v & 0xff);
    uint32_t start = 0;
    if (!fixed) {
        /* shortest two's complement */
        while (start < 15 && ((tmp[start] == 0 && !(tmp[start + 1] & 0x80)) ||
                              (tmp[start] == 0xff && (tmp[start + 1] & 0x80))))
            start++;
        *len = 16 - start;
        return dm_arena_memdup(arena, tmp + start, *len);
    }
    uint8_t *b = dm_arena_alloc(arena, fixed);
    if (!b) return NULL;
    uint8_t sign = (tmp[0] & 0x80) ? 0xff : 0;
    for (uint32_t i = 0; i < fixed; i++) {
        int src = 16 - (int)fixed + (int)i;
        b[i] = src >= 0 ? tmp[src] : sign;
    }
    *len = fixed;
    return b;
}

static void fmt_decimal(dm_buf_t *out, const uint8_t *p, uint32_t len, int scale)
{
    /* two's complement, big-endian, sign-extended to 128 bits */
    unsigned __int128 raw = (len && (p[0] & 0x80)) ? ~(unsigned __int128)0 : 0;
    for (uint32_t i = 0; i < len; i++)
        raw = (raw << 8) | p[i];
    bool neg = len && (p[0] & 0x80);
    unsigned __int128 u = neg ? ~raw + 1 : raw;
    char digits[64];
    int n = 0;
    do {
        digits[n++] = (char)('0' + (int)(u % 10));
        u /= 10;
    } while (u);
    while (n <= scale)
        digits[n++] = '0';
    dm_buf_append_str(out, neg ? "\"-" : "\"");
    for (int i = n - 1; i >= 0; i--) {
        dm_buf_append_u8(out, (uint8_t)digits[i]);
        if (i == scale && scale > 0) dm_buf_append_u8(out, '.');
    }
    dm_buf_append_u8(out, '"');
}

/* ---- JSON → value ------------------------------------------------------------------------- */

static int conv(jctx_t *c, const dm_avro_node_t *n, const json_t *j, dm_avro_value_t *out);

/* Bytes as the spec encodes them in JSON: one code point 0-255 per byte. */
static int latin1_bytes(jctx_t *c, const dm_avro_node_t *n, const json_t *j, dm_avro_value_t *out)
{
    const unsigned char *s = (const unsigned char *)json_string_value(j);
    size_t sl = json_string_length(j);
    uint8_t *b = dm_arena_alloc(c->arena, sl + 1);
    if (!b) return jfail(c, n, j, "(out of memory)");
    size_t k = 0;
    for (size_t i = 0; i < sl; i++) {
        if (s[i] < 0x80) {
            b[k++] = s[i];
        } else if ((s[i] == 0xc2 || s[i] == 0xc3) && i + 1 < sl) {
            b[k++] = (uint8_t)(((s[i] & 0x03) << 6) | (s[i + 1] & 0x3f));
            i++;
        } else {
            return jfail(c, n, j, "(bytes: code points above U+00FF)");
        }
    }
    out->u.p = b;
    out->len = (uint32_t)k;
    return 0;
}

static int conv_int(jctx_t *c, const dm_avro_node_t *n, const json_t *j, dm_avro_value_t *out)
{
    int64_t v;
    if (json_is_integer(j)) {
        v = json_integer_value(j);
    } else if (json_is_string(j) && c->mode == DM_AVRO_JSON_PLAIN && n->logical) {
        const char *s = json_string_value(j);
        int64_t x;
        switch (n->logical) {
        case DM_AVRO_LT_DATE:
            if (!dm_avro_json_parse_date(&s, &x) || *s)
                return jfail(c, n, j, "(date as YYYY-MM-DD)");
            v = x;
            break;
        case DM_AVRO_LT_TIME_MILLIS:
        case DM_AVRO_LT_TIME_MICROS:
            if (!dm_avro_json_parse_time(&s, &x) || *s)
                return jfail(c, n, j, "(time as HH:MM:SS[.fff])");
            v = n->logical == DM_AVRO_LT_TIME_MILLIS ? x / 1000 : x;
            break;
        case DM_AVRO_LT_TIMESTAMP_MILLIS:
        case DM_AVRO_LT_LOCAL_TIMESTAMP_MILLIS:
        case DM_AVRO_LT_TIMESTAMP_MICROS:
        case DM_AVRO_LT_LOCAL_TIMESTAMP_MICROS:
            if (!dm_avro_json_parse_timestamp(s, &x)) return jfail(c, n, j, "(ISO-8601 timestamp)");
            v = (n->logical == DM_AVRO_LT_TIMESTAMP_MILLIS ||
                 n->logical == DM_AVRO_LT_LOCAL_TIMESTAMP_MILLIS)
                    ? dm_avro_json_floordiv(x, 1000)
                    : x;
            break;
        default: return jfail(c, n, j, NULL);
        }
    } else {
        return jfail(c, n, j, NULL);
    }
    if (n->type == DM_AVRO_INT) {
        if (v < INT32_MIN || v > INT32_MAX) return jfail(c, n, j, "(out of int range)");
        out->u.i = (int32_t)v;
    } else {
        out->u.l = v;
    }
    return 0;
}

static int conv_union(jctx_t *c, const dm_avro_node_t *n, const json_t *j, dm_avro_value_t *out)
{
    if (c->mode == DM_AVRO_JSON_DEFAULT) {
        if (!n->n_branches || conv(c, n->branches[0], j, out)) return jfail(c, n, j, NULL);
        out->branch = 0;
        return 0;
    }
    if (json_is_null(j)) {
        for (uint32_t i = 0; i < n->n_branches; i++)
            if (n->branches[i]->type == DM_AVRO_NULL) {
                out->type = DM_AVRO_NULL;
                out->branch = (uint16_t)i;
                return 0;
            }
        return jfail(c, n, j, "(union without null)");
    }
    if (c->mode == DM_AVRO_JSON_AVRO && !(json_is_object(j) && json_object_size(j) == 1))
        return jfail(c, n, j, "(a union value as {\"type\": value})");
    if (json_is_object(j) && json_object_size(j) == 1) {
        const char *key = json_object_iter_key(json_object_iter((json_t *)j));
        for (uint32_t i = 0; key && i < n->n_branches; i++) {
            const dm_avro_node_t *b = n->branches[i];
            if (strcmp(node_name(b), key) != 0 && !(b->name && strcmp(b->name, key) == 0)) continue;
            c->quiet += c->mode == DM_AVRO_JSON_PLAIN;
            int rc = conv(c, b, json_object_get(j, key), out);
            c->quiet -= c->mode == DM_AVRO_JSON_PLAIN;
            if (rc && c->mode == DM_AVRO_JSON_AVRO) return -1;
            if (!rc) {
                out->branch = (uint16_t)i;
                return 0;
            }
        }
        if (c->mode == DM_AVRO_JSON_AVRO)
            return jfail(c, n, j, "(a union value as {\"type\": value})");
    }
    /* Plain JSON: first the branches whose kind matches the JSON value exactly,
     * then any branch that accepts it. */
    for (int pass = 0; pass < 2; pass++) {
        for (uint32_t i = 0; i < n->n_branches; i++) {
            const dm_avro_node_t *b = n->branches[i];
            if (pass == 0) {
                bool match = false;
                switch (b->type) {
                case DM_AVRO_BOOLEAN: match = json_is_boolean(j); break;
                case DM_AVRO_INT:
                case DM_AVRO_LONG: match = json_is_integer(j) && !b->logical; break;
                case DM_AVRO_FLOAT:
                case DM_AVRO_DOUBLE: match = json_is_real(j); break;
                case DM_AVRO_STRING:
                case DM_AVRO_ENUM: match = json_is_string(j); break;
                case DM_AVRO_RECORD:
                case DM_AVRO_MAP: match = json_is_object(j); break;
                case DM_AVRO_ARRAY: match = json_is_array(j); break;
                default: break;
                }
                if (!match) continue;
            }
            c->quiet++;
            int rc = conv(c, b, j, out);
            c->quiet--;
            if (!rc) {
                out->branch = (uint16_t)i;
                return 0;
            }
        }
    }
    if (!c->quiet) {
        char expected[256] = "";
        size_t k = 0;
        for (uint32_t i = 0; i < n->n_branches && k < sizeof(expected); i++) {
            int w = snprintf(expected + k, sizeof(expected) - k, "%s%s", i ? ", " : "",
                             node_name(n->branches[i]));
            if (w > 0) k += (size_t)w;
        }
        dm_error_set(c->err, DM_ERR_SCHEMA_MISMATCH, "%s: expected one of [%s], got %s",
                     c->plen ? c->path : "$", expected, json_kind(j));
    }
    return -1;
}

static int conv(jctx_t *c, const dm_avro_node_t *n, const json_t *j, dm_avro_value_t *out)
{
    out->flags = 0;
    out->branch = 0;
    out->len = 0;
    out->type = (uint8_t)n->type;
    switch (n->type) {
    case DM_AVRO_NULL: return json_is_null(j) ? 0 : jfail(c, n, j, NULL);
    case DM_AVRO_BOOLEAN:
        if (!json_is_boolean(j)) return jfail(c, n, j, NULL);
        out->u.b = json_is_true(j);
        return 0;
    case DM_AVRO_INT:
    case DM_AVRO_LONG: return conv_int(c, n, j, out);
    case DM_AVRO_FLOAT:
    case DM_AVRO_DOUBLE: {
        double d;
        if (json_is_number(j)) {
            d = json_number_value(j);
        } else if (json_is_string(j) && strcmp(json_string_value(j), "NaN") == 0) {
            d = NAN;
        } else if (json_is_string(j) && strcmp(json_string_value(j), "Infinity") == 0) {
            d = INFINITY;
        } else if (json_is_string(j) && strcmp(json_string_value(j), "-Infinity") == 0) {
            d = -INFINITY;
        } else {
            return jfail(c, n, j, NULL);
        }
        if (n->type == DM_AVRO_FLOAT)
            out->u.f = (float)d;
        else
            out->u.d = d;
        return 0;
    }
    case DM_AVRO_BYTES:
    case DM_AVRO_FIXED:
        if (n->logical == DM_AVRO_LT_DURATION && c->mode == DM_AVRO_JSON_PLAIN &&
            json_is_object(j)) {
            /* {"months": m, "days": d, "millis": ms}: three little-endian u32 */
            static const char *const parts[] = {"months", "days", "millis"};
            uint8_t *b = dm_arena_alloc(c->arena, 12);
            if (!b) return jfail(c, n, j, "(out of memory)");
            for (int i = 0; i < 3; i++) {
                json_t *pj = json_object_get(j, parts[i]);
                json_int_t x = pj ? json_integer_value(pj) : 0;
                if ((pj && !json_is_integer(pj)) || x < 0 || x > UINT32_MAX)
                    return jfail(c, n, j, "(duration {months, days, millis} of unsigned ints)");
                for (int k = 0; k < 4; k++)
                    b[4 * i + k] = (uint8_t)((uint64_t)x >> (8 * k));
            }
            out->u.p = b;
            out->len = 12;
            return 0;
        }
        if (n->logical == DM_AVRO_LT_DECIMAL && c->mode == DM_AVRO_JSON_PLAIN &&
            (json_is_number(j) || json_is_string(j))) {
            char tmp[64];
            const char *s = tmp;
            if (json_is_integer(j))
                snprintf(tmp, sizeof(tmp), "%" JSON_INTEGER_FORMAT, json_integer_value(j));
            else if (json_is_real(j))
                snprintf(tmp, sizeof(tmp), "%.*f", n->scale, json_real_value(j));
            else
                s = json_string_value(j);
            __int128 v;
            if (!dm_avro_json_parse_decimal(s, n->scale, &v))
                return jfail(c, n, j, "(decimal digits within the scale)");
            out->u.p = dm_avro_json_decimal_bytes(
                c->arena, v, n->type == DM_AVRO_FIXED ? n->size : 0, &out->len);
            return out->u.p ? 0 : jfail(c, n, j, "(out of memory)");
        }
        if (!json_is_string(j)) return jfail(c, n, j, NULL);
        if (latin1_bytes(c, n, j, out)) return -1;
        if (n->type == DM_AVRO_FIXED && out->len != n->size)
            return jfail(c, n, j, "(string of exactly size bytes)");
        return 0;
    case DM_AVRO_STRING: {
        if (!json_is_string(j)) return jfail(c, n, j, NULL);
        size_t len = json_string_length(j);
        out->u.p = dm_arena_memdup(c->arena, json_string_value(j), len + 1);
        out->len = (uint32_t)len;
        return out->u.p ? 0 : jfail(c, n, j, "(out of memory)");
    }
    case DM_AVRO_ENUM: {
        const char *s = json_string_value(j);
        for (uint32_t i = 0; s && i < n->n_symbols; i++)
            if (strcmp(s, n->symbols[i]) == 0) {
                out->u.i = (int32_t)i;
                return 0;
            }
        return jfail(c, n, j, "(one of its symbols)");
    }
    case DM_AVRO_ARRAY: {
        if (!json_is_array(j)) return jfail(c, n, j, NULL);
        size_t cnt = json_array_size(j);
        dm_avro_value_t *v = dm_arena_alloc(c->arena, (cnt ? cnt : 1) * sizeof(*v));
        if (!v) return jfail(c, n, j, "(out of memory)");
        for (size_t i = 0; i < cnt; i++) {
            size_t mark = jpush(c, "[%zu]", i);
            if (conv(c, n->items, json_array_get(j, i), &v[i])) return -1;
            jpop(c, mark);
        }
        out->type = DM_AVRO_ARRAY;
        out->len = (uint32_t)cnt;
        out->u.v = v;
        return 0;
    }
    case DM_AVRO_MAP: {
        if (!json_is_object(j)) return jfail(c, n, j, NULL);
        size_t cnt = json_object_size(j), i = 0;
        dm_avro_value_t *v = dm_arena_alloc(c->arena, (cnt ? 2 * cnt : 1) * sizeof(*v));
        if (!v) return jfail(c, n, j, "(out of memory)");
        const char *key;
        json_t *val;
        json_object_foreach((json_t *)j, key, val)
        {
            size_t kl = strlen(key);
            v[2 * i] = (dm_avro_value_t){.type = DM_AVRO_STRING, .len = (uint32_t)kl};
            v[2 * i].u.p = dm_arena_memdup(c->arena, key, kl + 1);
            size_t mark = jpush(c, ".%s", key);
            if (conv(c, n->items, val, &v[2 * i + 1])) return -1;
            jpop(c, mark);
            i++;
        }
        out->type = DM_AVRO_MAP;
        out->len = (uint32_t)cnt;
        out->u.v = v;
        return 0;
    }
    case DM_AVRO_RECORD: {
        if (!json_is_object(j)) return jfail(c, n, j, NULL);
        dm_avro_value_t *v = dm_arena_alloc(c->arena, (n->n_fields ? n->n_fields : 1) * sizeof(*v));
        if (!v) return jfail(c, n, j, "(out of memory)");
        if (c->mode != DM_AVRO_JSON_DEFAULT) {
            const char *key;
            json_t *val;
            json_object_foreach((json_t *)j, key, val)
            {
                bool known = false;
                for (uint32_t i = 0; i < n->n_fields && !known; i++)
                    known = strcmp(n->fields[i].name, key) == 0;
                if (!known) {
                    if (!c->quiet)
                        dm_error_set(c->err, DM_ERR_SCHEMA_MISMATCH,
                                     "%s.%s: record %s has no field \"%s\"",
                                     c->plen ? c->path : "$", key, n->fullname, key);
                    return -1;
                }
            }
        }
        for (uint32_t i = 0; i < n->n_fields; i++) {
            const dm_avro_field_t *f = &n->fields[i];
            json_t *fj = json_object_get(j, f->name);
            size_t mark = jpush(c, ".%s", f->name);
            if (fj) {
                if (conv(c, f->type, fj, &v[i])) return -1;
            } else if (f->has_default && f->default_bin) {
                if (dm_avro_decode_node(f->type, f->default_bin, f->default_len, NULL, c->arena,
                                        &v[i], NULL))
                    return jfail(c, n, j, "(a usable default)");
            } else {
                if (!c->quiet)
                    dm_error_set(c->err, DM_ERR_SCHEMA_MISMATCH,
                                 "%s: missing field of type %s (record %s has no default for it)",
                                 c->path, node_name(f->type), n->fullname);
                return -1;
            }
            jpop(c, mark);
        }
        out->type = DM_AVRO_RECORD;
        out->len = n->n_fields;
        out->u.v = v;
        return 0;
    }
    case DM_AVRO_UNION: return conv_union(c, n, j, out);
    default: return jfail(c, n, j, NULL);
    }
}

dm_err_t dm_avro_from_json_value(const dm_avro_node_t *node, const json_t *j,
                                 dm_avro_json_mode_t mode, dm_arena_t *arena, dm_avro_value_t *out,
                                 const char *path, dm_error_t *err)
{
    jctx_t c = {.mode = mode, .arena = arena, .err = err};
    jpush(&c, "%s", path ? path : "$");
    if (conv(&c, node, j, out)) {
        if (err && !err->code) dm_error_set(err, DM_ERR_SCHEMA_MISMATCH, "%s: mismatch", c.path);
        return DM_ERR_SCHEMA_MISMATCH;
    }
    return DM_OK;
}

dm_err_t dm_avro_from_json_dom(const dm_avro_node_t *node, const char *json, size_t len,
                               dm_avro_json_mode_t mode, bool reject_duplicates, dm_arena_t *arena,
                               dm_avro_value_t *out, dm_error_t *err)
{
    json_error_t jerr;
    json_t *j = json_loadb(
        json, len,
        JSON_DECODE_ANY | JSON_ALLOW_NUL | (reject_duplicates ? JSON_REJECT_DUPLICATES : 0), &jerr);
    if (!j)
        return dm_error_set(err, DM_ERR_INVALID, "JSON line %d column %d: %s", jerr.line,
                            jerr.column, jerr.text);
    if (err) err->code = DM_OK;
    dm_err_t rc = dm_avro_from_json_value(node, j, mode, arena, out, "$", err);
    json_decref(j);
    return rc;
}

dm_err_t dm_avro_from_json_text(const dm_avro_node_t *node, const char *json, size_t len,
                                dm_avro_json_mode_t mode, dm_arena_t *arena, dm_avro_value_t *out,
                                dm_error_t *err)
{
    /* defaults are small, rare and parsed once: the DOM path reads them */
    if (mode == DM_AVRO_JSON_DEFAULT)
        return dm_avro_from_json_dom(node, json, len, mode, false, arena, out, err);
    return dm_avro_json_decode(node, json, len, mode, arena, out, err);
}

/* ---- value → JSON ----------------------------------------------------------------------- */

/* Bytes that need no escaping in a JSON string (UTF-8 passes through; bytes
 * and fixed, written as code points 0-255, escape their high half). */
static const uint8_t plain_byte[256] = {
    [0x20 ... 0x21] = 3, /* safe in both, '"' and '\\' excepted */
    [0x23 ... 0x5b] = 3,
    [0x5d ... 0x7e] = 3,
    [0x80 ... 0xff] = 1, /* safe in strings only */
};

static void put_string(dm_buf_t *out, const uint8_t *p, size_t len, bool latin1)
{
    static const char hex[] = "0123456789abcdef";
    uint8_t need = latin1 ? 2 : 1;
    if (dm_buf_reserve(out, len + 2)) return;
    out->data[out->len++] = '"';
    size_t i = 0;
    while (i < len) {
        size_t run = i;
        while (run < len && (plain_byte[p[run]] & need))
            run++;
        if (run > i) {
            dm_buf_append(out, p + i, run - i);
            i = run;
            if (i == len) break;
        }
        uint8_t ch = p[i++];
        if (ch == '"' || ch == '\\') {
            uint8_t esc[2] = {'\\', ch};
            dm_buf_append(out, esc, 2);
        } else if (ch == '\n' || ch == '\t' || ch == '\r') {
            uint8_t esc[2] = {'\\', ch == '\n' ? 'n' : ch == '\t' ? 't' : 'r'};
            dm_buf_append(out, esc, 2);
        } else {
            char esc[6] = {'\\', 'u', '0', '0', hex[ch >> 4], hex[ch & 15]};
            dm_buf_append(out, esc, 6);
        }
    }
    dm_buf_append_u8(out, '"');
}

static void put_double(dm_buf_t *out, double d, bool single)
{
    if (isnan(d)) {
        dm_buf_append_str(out, "\"NaN\"");
    } else if (isinf(d)) {
        dm_buf_append_str(out, d > 0 ? "\"Infinity\"" : "\"-Infinity\"");
    } else {
        char tmp[40];
        dm_buf_append(out, tmp, dm_avro_json_format_double(d, single, tmp));
    }
}

static void put_i64(dm_buf_t *out, int64_t x)
{
    char tmp[24];
    dm_buf_append(out, tmp, dm_avro_json_format_i64(x, tmp));
}

static int emit(const dm_avro_node_t *n, const dm_avro_value_t *v, dm_avro_json_mode_t mode,
                dm_buf_t *out, int depth)
{
    if (depth > 600) return -1;
    if (n->type == DM_AVRO_UNION) {
        if (v->branch >= n->n_branches) return -1;
        const dm_avro_node_t *b = n->branches[v->branch];
        if (mode == DM_AVRO_JSON_AVRO && b->type != DM_AVRO_NULL) {
            dm_buf_append_u8(out, '{');
            put_string(out, (const uint8_t *)node_name(b), strlen(node_name(b)), false);
            dm_buf_append_u8(out, ':');
            if (emit(b, v, mode, out, depth + 1)) return -1;
            dm_buf_append_u8(out, '}');
            return 0;
        }
        n = b;
    }
    if (v->type != n->type) return -1;
    bool plain = mode == DM_AVRO_JSON_PLAIN;
    switch (n->type) {
    case DM_AVRO_NULL: dm_buf_append_str(out, "null"); return 0;
    case DM_AVRO_BOOLEAN: dm_buf_append_str(out, v->u.b ? "true" : "false"); return 0;
    case DM_AVRO_INT:
    case DM_AVRO_LONG: {
        int64_t x = n->type == DM_AVRO_INT ? v->u.i : v->u.l;
        if (plain && n->logical == DM_AVRO_LT_DATE) {
            int64_t y;
            unsigned m, d;
            civil_from_days(x, &y, &m, &d);
            dm_buf_printf(out, "\"%04" PRId64 "-%02u-%02u\"", y, m, d);
        } else if (plain &&
                   (n->logical == DM_AVRO_LT_TIME_MILLIS || n->logical == DM_AVRO_LT_TIME_MICROS) &&
                   x >= 0 && x < 86400000000LL) {
            int64_t us = n->logical == DM_AVRO_LT_TIME_MILLIS ? x * 1000 : x;
            int64_t s = us / 1000000;
            dm_buf_printf(out, "\"%02d:%02d:%02d", (int)(s / 3600), (int)(s / 60 % 60),
                          (int)(s % 60));
            if (us % 1000000) dm_buf_printf(out, ".%06d", (int)(us % 1000000));
            dm_buf_append_u8(out, '"');
        } else if (plain &&
                   (n->logical == DM_AVRO_LT_TIMESTAMP_MILLIS ||
                    n->logical == DM_AVRO_LT_LOCAL_TIMESTAMP_MILLIS) &&
                   x > INT64_MIN / 1000 && x < INT64_MAX / 1000) {
            fmt_timestamp(out, x * 1000, n->logical == DM_AVRO_LT_TIMESTAMP_MILLIS);
        } else if (plain && (n->logical == DM_AVRO_LT_TIMESTAMP_MICROS ||
                             n->logical == DM_AVRO_LT_LOCAL_TIMESTAMP_MICROS)) {
            fmt_timestamp(out, x, n->logical == DM_AVRO_LT_TIMESTAMP_MICROS);
        } else {
            put_i64(out, x);
        }
        return 0;
    }
    case DM_AVRO_FLOAT: put_double(out, v->u.f, true); return 0;
    case DM_AVRO_DOUBLE: put_double(out, v->u.d, false); return 0;
    case DM_AVRO_BYTES:
    case DM_AVRO_FIXED:
        if (plain && n->logical == DM_AVRO_LT_DECIMAL && v->len <= 16) {
            fmt_decimal(out, v->u.p, v->len, n->scale);
        } else if (plain && n->logical == DM_AVRO_LT_DURATION && v->len == 12) {
            uint32_t x[3];
            for (int i = 0; i < 3; i++)
                x[i] = (uint32_t)v->u.p[4 * i] | (uint32_t)v->u.p[4 * i + 1] << 8 |
                       (uint32_t)v->u.p[4 * i + 2] << 16 | (uint32_t)v->u.p[4 * i + 3] << 24;
            dm_buf_printf(out, "{\"months\":%u,\"days\":%u,\"millis\":%u}", x[0], x[1], x[2]);
        } else {
            put_string(out, v->u.p, v->len, true);
        }
        return 0;
    case DM_AVRO_STRING: put_string(out, v->u.p, v->len, false); return 0;
    case DM_AVRO_ENUM:
        if (v->u.i < 0 || (uint32_t)v->u.i >= n->n_symbols) return -1;
        put_string(out, (const uint8_t *)n->symbols[v->u.i], strlen(n->symbols[v->u.i]), false);
        return 0;
    case DM_AVRO_RECORD: {
        if (v->len != n->n_fields) return -1;
        dm_buf_append_u8(out, '{');
        bool first = true;
        for (uint32_t i = 0; i < n->n_fields; i++) {
            if (v->u.v[i].type == DM_AVRO_ABSENT) continue;
            if (!first) dm_buf_append_u8(out, ',');
            first = false;
            put_string(out, (const uint8_t *)n->fields[i].name, strlen(n->fields[i].name), false);
            dm_buf_append_u8(out, ':');
            if (emit(n->fields[i].type, &v->u.v[i], mode, out, depth + 1)) return -1;
        }
        dm_buf_append_u8(out, '}');
        return 0;
    }
    case DM_AVRO_ARRAY:
    case DM_AVRO_MAP: {
        bool map = n->type == DM_AVRO_MAP;
        dm_buf_append_u8(out, map ? '{' : '[');
        for (uint32_t i = 0; i < v->len; i++) {
            if (i) dm_buf_append_u8(out, ',');
            const dm_avro_value_t *it = map ? &v->u.v[2 * i] : &v->u.v[i];
            if (map) {
                put_string(out, it->u.p, it->len, false);
                dm_buf_append_u8(out, ':');
                it++;
            }
            if (emit(n->items, it, mode, out, depth + 1)) return -1;
        }
        dm_buf_append_u8(out, map ? '}' : ']');
        return 0;
    }
    default: return -1;
    }
}

dm_err_t dm_avro_to_json(const dm_avro_node_t *node, const dm_avro_value_t *v,
                         dm_avro_json_mode_t mode, dm_buf_t *out, dm_error_t *err)
{
    size_t start = out->len;
    if (emit(node, v, mode, out, 0)) {
        out->len = start;
        return dm_error_set(err, DM_ERR_SCHEMA_MISMATCH, "value does not match its schema");
    }
    return DM_OK;
}
