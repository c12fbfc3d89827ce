/* schema/json_decode.c — JSON text straight into Avro values, without a DOM.
 *
 * One pass over the bytes, directed by the schema: a record's keys are matched
 * against its fields (the field expected next is tried first, so keys in
 * schema order cost one compare), numbers are parsed by hand where the result
 * is exact (integers; decimals of at most 15 digits with a small exponent) and
 * by strtod otherwise, strings are checked for UTF-8 and unescaped while they
 * are copied into the arena. Nothing is malloc'd: values, strings and growing
 * arrays live in the caller's arena.
 *
 * It accepts and refuses what the jansson path (dm_avro_from_json_dom) does
 * and gives the same values, with two deliberate differences: a key given twice
 * in one object is refused (jansson kept the last one, silently dropping the
 * first), and a string with a NUL in it no longer matches an enum symbol or a
 * date that equals its part before the NUL. tests/unit/test_schema_json.c and
 * tests/fuzz/fuzz_avro_json.c hold it to that.
 *
 * A union in plain JSON is decided by trying branches: the decoder remembers
 * where the value starts and reads it again for the next branch. A budget of
 * such retries per document keeps a hostile document over a recursive schema
 * from taking exponential time.
 *
 * Errors name the field path, what was expected and what was found, and the
 * line, column and byte offset where: "$.a.b: expected long, got a string
 * (line 1 column 7, byte 6)". Syntax errors say "JSON line L column C (byte
 * B): why".
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema/internal.h"
#include "schema/json_internal.h"

#define MAX_DEPTH    2048 /* as jansson's parser */
#define UNION_BUDGET 1000 /* branch retries per document, and 16 a byte */

typedef struct jd {
    const uint8_t *p, *start, *end;
    dm_avro_json_mode_t mode;
    dm_arena_t *arena;
    dm_error_t *err;
    int quiet;   /* trying union branches: mismatches are not errors yet */
    bool syntax; /* the text is not JSON: no branch can succeed */
    bool failed; /* an error was recorded (the first one wins) */
    int depth;
    long budget;
    size_t plen;
    char path[512];
} jd_t;

/* ---- errors ------------------------------------------------------------------------- */

static void where(const jd_t *d, const uint8_t *at, int *line, int *col)
{
    int l = 1, c = 1;
    for (const uint8_t *q = d->start; q < at && q < d->end; q++) {
        if (*q == '\n') {
            l++;
            c = 1;
        } else if ((*q & 0xc0) != 0x80) {
            c++;
        }
    }
    *line = l;
    *col = c;
}

/* The text is not JSON: an error whatever branch is being tried. */
static int syntax(jd_t *d, const char *why)
{
    if (!d->syntax) {
        int line, col;
        where(d, d->p, &line, &col);
        dm_error_set(d->err, DM_ERR_INVALID, "JSON line %d column %d (byte %zu): %s", line, col,
                     (size_t)(d->p - d->start), why);
        d->failed = true;
    }
    d->syntax = true;
    return -1;
}

static const char *node_name(const dm_avro_node_t *n)
{
    return n->fullname ? n->fullname : dm_avro_type_name(n->type);
}

typedef enum jkind {
    K_NONE,
    K_OBJECT,
    K_ARRAY,
    K_STRING,
    K_INTEGER,
    K_REAL,
    K_BOOL,
    K_NULL
} jkind_t;

/* What the JSON value at d->p is (by its first bytes; a number by its token). */
static jkind_t peek(const jd_t *d)
{
    const uint8_t *p = d->p;
    if (p >= d->end) return K_NONE;
    switch (*p) {
    case '{': return K_OBJECT;
    case '[': return K_ARRAY;
    case '"': return K_STRING;
    case 't':
    case 'f': return K_BOOL;
    case 'n': return K_NULL;
    default:
        for (; p < d->end && (*p == '-' || *p == '+' || (*p >= '0' && *p <= '9')); p++)
            ;
        return p < d->end && (*p == '.' || *p == 'e' || *p == 'E') ? K_REAL : K_INTEGER;
    }
}

/* The words of the jansson path for a kind. */
static const char *kind_at(const jd_t *d)
{
    static const char *const names[] = {"nothing",    "an object", "an array",  "a string",
                                        "an integer", "a number",  "a boolean", "null"};
    return names[peek(d)];
}

static int mismatch(jd_t *d, const dm_avro_node_t *n, const uint8_t *at, const char *why,
                    const char *got)
{
    if (!d->quiet && !d->failed) {
        int line, col;
        where(d, at, &line, &col);
        dm_error_set(d->err, DM_ERR_SCHEMA_MISMATCH,
                     "%s: expected %s%s%s, got %s (line %d column %d, byte %zu)",
                     d->plen ? d->path : "$", node_name(n), why ? " " : "", why ? why : "", got,
                     line, col, (size_t)(at - d->start));
        d->failed = true;
    }
    return -1;
}

/* The value at at is not of n: read past it (a syntax error in it wins; the
 * value was already counted for depth), then say what it was. */
static int skip(jd_t *d);
static int skip_mismatch(jd_t *d, const dm_avro_node_t *n, const uint8_t *at, const char *why)
{
    const char *got = kind_at(d);
    d->depth--;
    int rc = skip(d);
    d->depth++;
    return rc ? -1 : mismatch(d, n, at, why, got);
}

static int oom(jd_t *d)
{
    if (!d->failed) dm_error_set(d->err, DM_ERR_NOMEM, "%s: out of memory", d->path);
    d->failed = d->syntax = true; /* no branch will do better */
    return -1;
}

static size_t push(jd_t *d, const char *s, size_t len, char lead)
{
    size_t old = d->plen;
    if (d->plen + len + 2 < sizeof(d->path)) {
        d->path[d->plen++] = lead;
        memcpy(d->path + d->plen, s, len);
        d->plen += len;
        d->path[d->plen] = '\0';
    }
    return old;
}

static size_t push_index(jd_t *d, size_t i)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%zu]", i);
    return push(d, tmp, (size_t)n, '[');
}

static void pop(jd_t *d, size_t old)
{
    d->plen = old;
    d->path[old] = '\0';
}

/* ---- lexing ------------------------------------------------------------------------- */

static inline void ws(jd_t *d)
{
    while (d->p < d->end && (*d->p == ' ' || *d->p == '\n' || *d->p == '\t' || *d->p == '\r'))
        d->p++;
}

static bool literal(jd_t *d, const char *word, size_t len)
{
    if ((size_t)(d->end - d->p) < len || memcmp(d->p, word, len) != 0) return false;
    d->p += len;
    return true;
}

/* Length of a valid UTF-8 sequence at p (p[0] >= 0x80), 0 if invalid. */
static size_t utf8_len(const uint8_t *p, const uint8_t *end)
{
    uint8_t c = p[0];
    size_t n;
    uint8_t lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0) lo = 0xa0;
        if (c == 0xed) hi = 0x9f; /* no UTF-16 surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0) lo = 0x90;
        if (c == 0xf4) hi = 0x8f;
    } else {
        return 0;
    }
    if ((size_t)(end - p) < n) return 0;
    if (p[1] < lo || p[1] > hi) return 0;
    for (size_t i = 2; i < n; i++)
        if ((p[i] & 0xc0) != 0x80) return 0;
    return n;
}

static int hex4(const uint8_t *p, uint32_t *out)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        uint8_t c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (uint32_t)(c - '0');
        else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
            v |= (uint32_t)((c | 0x20) - 'a' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static size_t put_utf8(uint8_t *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (uint8_t)(0xc0 | cp >> 6);
        o[1] = (uint8_t)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (uint8_t)(0xe0 | cp >> 12);
        o[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (uint8_t)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (uint8_t)(0xf0 | cp >> 18);
    o[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (uint8_t)(0x80 | (cp & 0x3f));
    return 4;
}

/* The string at d->p (its opening quote), checked and unescaped into the arena
 * with a NUL after it (not counted). Unescaping never makes a string longer,
 * so the copy is sized by the escaped text. */
static int string(jd_t *d, const uint8_t **out, size_t *out_len, bool borrow)
{
    const uint8_t *s = ++d->p, *q = s;
    /* the common case: plain ASCII without escapes — find the end eight bytes
     * at a time (a quote, a backslash, a control byte or a high bit stops it),
     * then copy once */
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    while (d->end - q >= 8) {
        uint64_t w, quote, bs;
        memcpy(&w, q, 8);
        quote = w ^ (ones * '"');
        bs = w ^ (ones * '\\');
        uint64_t stop =
            (((quote - ones) & ~quote) | ((bs - ones) & ~bs) | ((w - ones * 0x20) & ~w) | w) &
            highs;
        if (stop) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            /* each term's lowest flag is exact (a borrow only flags bytes above
             * a real match), so the lowest flag is the first stop byte: most
             * strings are short and end in their first word */
            q += __builtin_ctzll(stop) >> 3;
#endif
            break;
        }
        q += 8;
    }
    while (q < d->end && *q != '"' && *q != '\\' && *q >= 0x20 && *q < 0x80)
        q++;
    if (q < d->end && *q == '"' && borrow) {
        *out = s; /* in the input, not NUL-terminated: a key to compare */
        *out_len = (size_t)(q - s);
        d->p = q + 1;
        return 0;
    }
    if (q < d->end && *q == '"') {
        uint8_t *b = dm_arena_alloc(d->arena, (size_t)(q - s) + 1);
        if (!b) return oom(d);
        memcpy(b, s, (size_t)(q - s));
        b[q - s] = '\0';
        *out = b;
        *out_len = (size_t)(q - s);
        d->p = q + 1;
        return 0;
    }
    const uint8_t *e = q;
    while (e < d->end && *e != '"') /* the escaped text's extent bounds the copy */
        e += *e == '\\' && e + 1 < d->end ? 2 : 1;
    uint8_t *b = dm_arena_alloc(d->arena, (size_t)(e - s) + 1);
    if (!b) return oom(d);
    size_t k = (size_t)(q - s);
    memcpy(b, s, k);
    d->p = q;
    for (;;) {
        if (d->p >= d->end) return syntax(d, "premature end of input in a string");
        uint8_t c = *d->p;
        if (c == '"') break;
        if (c < 0x20) return syntax(d, "control character in a string (escape it)");
        if (c < 0x80 && c != '\\') {
            b[k++] = c;
            d->p++;
            continue;
        }
        if (c >= 0x80) {
            size_t n = utf8_len(d->p, d->end);
            if (!n) return syntax(d, "invalid UTF-8 in a string");
            memcpy(b + k, d->p, n);
            k += n;
            d->p += n;
            continue;
        }
        if (d->end - d->p < 2) return syntax(d, "premature end of input in a string");
        uint8_t x = d->p[1];
        d->p += 2;
        switch (x) {
        case '"':
        case '\\':
        case '/': b[k++] = x; break;
        case 'b': b[k++] = '\b'; break;
        case 'f': b[k++] = '\f'; break;
        case 'n': b[k++] = '\n'; break;
        case 'r': b[k++] = '\r'; break;
        case 't': b[k++] = '\t'; break;
        case 'u': {
            uint32_t cp, lo;
            d->p -= 2;
            if (d->end - d->p < 6 || hex4(d->p + 2, &cp))
                return syntax(d, "invalid \\u escape in a string");
            d->p += 6;
            if (cp >= 0xdc00 && cp <= 0xdfff)
                return syntax(d, "invalid Unicode escape: a low surrogate alone");
            if (cp >= 0xd800 && cp <= 0xdbff) {
                if (d->end - d->p < 6 || d->p[0] != '\\' || d->p[1] != 'u' || hex4(d->p + 2, &lo) ||
                    lo < 0xdc00 || lo > 0xdfff)
                    return syntax(d,
                                  "invalid Unicode escape: a high surrogate without its low one");
                d->p += 6;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            k += put_utf8(b + k, cp);
            break;
        }
        default: d->p -= 2; return syntax(d, "invalid escape in a string");
        }
    }
    d->p++;
    b[k] = '\0';
    *out = b;
    *out_len = k;
    return 0;
}

/* A key: as string(), but a NUL in it is refused (as jansson does). borrow:
 * a key without escapes may point into the input (it is only compared). */
static int key_of(jd_t *d, const uint8_t **k, size_t *kl, bool borrow)
{
    if (d->p >= d->end || *d->p != '"') return syntax(d, "expected a string as an object key");
    const uint8_t *at = d->p;
    if (string(d, k, kl, borrow)) return -1;
    /* only an unescaped copy can hold a NUL */
    if ((*k < d->start || *k >= d->end || !borrow) && memchr(*k, 0, *kl)) {
        d->p = at;
        return syntax(d, "NUL byte in an object key");
    }
    ws(d);
    if (d->p >= d->end || *d->p != ':') return syntax(d, "expected ':' after an object key");
    d->p++;
    ws(d);
    return 0;
}

static int key(jd_t *d, const uint8_t **k, size_t *kl)
{
    return key_of(d, k, kl, true);
}

typedef struct num {
    bool real;
    int64_t i; /* !real */
    double d;  /* both */
    const uint8_t *text;
    size_t len;
} num_t;

static const double pow10_exact[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* A number token, with JSON's grammar. Integers must fit in int64 and reals
 * must be finite, as with jansson. A real of at most 15 significant digits and
 * a power of ten of at most 22 is computed exactly by one multiplication or
 * division (both operands are exact doubles, and IEEE rounds the result
 * correctly); anything else goes to strtod. */
static int number(jd_t *d, num_t *n)
{
    const uint8_t *p = d->p, *s = p;
    bool neg = false;
    if (p < d->end && *p == '-') {
        neg = true;
        p++;
    }
    if (p >= d->end || *p < '0' || *p > '9') return syntax(d, "invalid token");
    uint64_t m = 0;
    int digits = 0, drop = 0; /* significant digits kept; integer digits past 19 */
    bool big = false;
    if (*p == '0') {
        p++;
        if (p < d->end && *p >= '0' && *p <= '9') return syntax(d, "a number with a leading zero");
    } else {
        for (; p < d->end && *p >= '0' && *p <= '9'; p++) {
            if (digits < 19) {
                m = m * 10 + (uint64_t)(*p - '0');
                digits++;
            } else {
                big = true;
                drop++;
            }
        }
    }
    int frac = 0;
    bool real = false;
    if (p < d->end && *p == '.') {
        real = true;
        p++;
        if (p >= d->end || *p < '0' || *p > '9') return syntax(d, "invalid number");
        for (; p < d->end && *p >= '0' && *p <= '9'; p++) {
            if (m == 0 && *p == '0') {
                frac++; /* a leading zero: scales, is no digit */
            } else if (digits < 19) {
                m = m * 10 + (uint64_t)(*p - '0');
                digits++;
                frac++;
            } else {
                big = true; /* more digits than we keep: strtod */
            }
        }
    }
    long ex = 0;
    if (p < d->end && (*p == 'e' || *p == 'E')) {
        real = true;
        p++;
        bool eneg = false;
        if (p < d->end && (*p == '+' || *p == '-')) eneg = *p++ == '-';
        if (p >= d->end || *p < '0' || *p > '9') return syntax(d, "invalid number");
        for (; p < d->end && *p >= '0' && *p <= '9'; p++)
            if (ex < 100000) ex = ex * 10 + (*p - '0');
        if (eneg) ex = -ex;
    }
    n->text = s;
    n->len = (size_t)(p - s);
    n->real = real;
    if (!real) {
        if (big || m > (uint64_t)INT64_MAX + neg) {
            d->p = s;
            return syntax(d, neg ? "too big negative integer" : "too big integer");
        }
        n->i = neg ? (int64_t)(0 - m) : (int64_t)m;
        n->d = (double)n->i;
        d->p = p;
        return 0;
    }
    long e10 = ex - frac + drop;
    if (!big && m < (1ULL << 53) && e10 >= -22 && e10 <= 22) {
        double v = (double)m;
        v = e10 < 0 ? v / pow10_exact[-e10] : v * pow10_exact[e10];
        n->d = neg ? -v : v;
    } else {
        char tmp[128], *heap = NULL, *t = tmp;
        if (n->len >= sizeof(tmp)) {
            heap = dm_arena_alloc(d->arena, n->len + 1);
            if (!heap) return oom(d);
            t = heap;
        }
        memcpy(t, s, n->len);
        t[n->len] = '\0';
        n->d = strtod(t, NULL);
    }
    if (isinf(n->d)) {
        d->p = s;
        return syntax(d, "real number overflow");
    }
    d->p = p;
    return 0;
}

/* Skips one value, checking it is JSON (values no field asks for). */
static int skip(jd_t *d)
{
    if (++d->depth > MAX_DEPTH) return syntax(d, "maximum parsing depth reached");
    ws(d);
    if (d->p >= d->end) return syntax(d, "premature end of input");
    int rc = 0;
    const uint8_t *k;
    size_t kl;
    num_t n;
    switch (*d->p) {
    case '{':
        d->p++;
        ws(d);
        if (d->p < d->end && *d->p == '}') {
            d->p++;
            break;
        }
        for (;;) {
            if (key(d, &k, &kl) || skip(d)) return -1;
            ws(d);
            if (d->p < d->end && *d->p == ',') {
                d->p++;
                ws(d);
                continue;
            }
            if (d->p < d->end && *d->p == '}') {
                d->p++;
                break;
            }
            return syntax(d, "expected ',' or '}'");
        }
        break;
    case '[':
        d->p++;
        ws(d);
        if (d->p < d->end && *d->p == ']') {
            d->p++;
            break;
        }
        for (;;) {
            if (skip(d)) return -1;
            ws(d);
            if (d->p < d->end && *d->p == ',') {
                d->p++;
                continue;
            }
            if (d->p < d->end && *d->p == ']') {
                d->p++;
                break;
            }
            return syntax(d, "expected ',' or ']'");
        }
        break;
    case '"': rc = string(d, &k, &kl, true); break;
    case 't': rc = literal(d, "true", 4) ? 0 : syntax(d, "invalid token"); break;
    case 'f': rc = literal(d, "false", 5) ? 0 : syntax(d, "invalid token"); break;
    case 'n': rc = literal(d, "null", 4) ? 0 : syntax(d, "invalid token"); break;
    default: rc = number(d, &n); break;
    }
    d->depth--;
    return rc;
}

/* ---- values ------------------------------------------------------------------------- */

static int value(jd_t *d, const dm_avro_node_t *n, dm_avro_value_t *out);
static int field_value(jd_t *d, const dm_avro_node_t *t, dm_avro_value_t *out);

/* A whole string value, for the types that read one. */
static int string_value(jd_t *d, const dm_avro_node_t *n, const uint8_t **s, size_t *len)
{
    if (d->p >= d->end || *d->p != '"') {
        if (d->p < d->end) {
            /* read the value (a syntax error in it wins), then say what it was */
            return skip_mismatch(d, n, d->p, NULL);
        }
        return syntax(d, "premature end of input");
    }
    return string(d, s, len, false);
}

static int latin1(jd_t *d, const dm_avro_node_t *n, const uint8_t *at, const uint8_t *s, size_t sl,
                  dm_avro_value_t *out)
{
    uint8_t *b = (uint8_t *)s; /* decoding never lengthens: in place */
    size_t k = 0;
    for (size_t i = 0; i < sl; i++) {
        if (s[i] < 0x80) {
            b[k++] = s[i];
        } else if ((s[i] == 0xc2 || s[i] == 0xc3) && i + 1 < sl) {
            b[k++] = (uint8_t)(((s[i] & 0x03) << 6) | (s[i + 1] & 0x3f));
            i++;
        } else {
            return mismatch(d, n, at, "(bytes: code points above U+00FF)", "a string");
        }
    }
    out->u.p = b;
    out->len = (uint32_t)k;
    return 0;
}

static int int_value(jd_t *d, const dm_avro_node_t *n, dm_avro_value_t *out)
{
    const uint8_t *at = d->p;
    int64_t v;
    if (at < d->end && *at == '"' && d->mode == DM_AVRO_JSON_PLAIN && n->logical) {
        const uint8_t *s;
        size_t sl;
        if (string(d, &s, &sl, false)) return -1;
        const char *c = (const char *)s;
        bool whole = strlen(c) == sl;
        int64_t x;
        switch (n->logical) {
        case DM_AVRO_LT_DATE:
            if (!whole || !dm_avro_json_parse_date(&c, &x) || *c)
                return mismatch(d, n, at, "(date as YYYY-MM-DD)", "a string");
            v = x;
            break;
        case DM_AVRO_LT_TIME_MILLIS:
        case DM_AVRO_LT_TIME_MICROS:
            if (!whole || !dm_avro_json_parse_time(&c, &x) || *c)
                return mismatch(d, n, at, "(time as HH:MM:SS[.fff])", "a string");
            v = n->logical == DM_AVRO_LT_TIME_MILLIS ? x / 1000 : x;
            break;
        case DM_AVRO_LT_TIMESTAMP_MILLIS:
        case DM_AVRO_LT_LOCAL_TIMESTAMP_MILLIS:
        case DM_AVRO_LT_TIMESTAMP_MICROS:
        case DM_AVRO_LT_LOCAL_TIMESTAMP_MICROS:
            if (!whole || !dm_avro_json_parse_timestamp(c, &x))
                return mismatch(d, n, at, "(ISO-8601 timestamp)", "a string");
            v = (n->logical == DM_AVRO_LT_TIMESTAMP_MILLIS ||
                 n->logical == DM_AVRO_LT_LOCAL_TIMESTAMP_MILLIS)
                    ? dm_avro_json_floordiv(x, 1000)
                    : x;
            break;
        default: return mismatch(d, n, at, NULL, "a string");
        }
    } else if (at < d->end && (*at == '-' || (*at >= '0' && *at <= '9'))) {
        num_t num;
        if (number(d, &num)) return -1;
        if (num.real) return mismatch(d, n, at, NULL, "a number");
        v = num.i;
    } else {
        return skip_mismatch(d, n, at, NULL);
    }
    if (n->type == DM_AVRO_INT) {
        if (v < INT32_MIN || v > INT32_MAX)
            return mismatch(d, n, at, "(out of int range)", "an integer");
        out->u.i = (int32_t)v;
    } else {
        out->u.l = v;
    }
    return 0;
}

static int real_value(jd_t *d, const dm_avro_node_t *n, dm_avro_value_t *out)
{
    const uint8_t *at = d->p;
    double v;
    if (at < d->end && (*at == '-' || (*at >= '0' && *at <= '9'))) {
        num_t num;
        if (number(d, &num)) return -1;
        v = num.d;
    } else if (at < d->end && *at == '"') {
        const uint8_t *s;
        size_t sl;
        if (string(d, &s, &sl, false)) return -1;
        if (sl == 3 && memcmp(s, "NaN", 3) == 0)
            v = NAN;
        else if (sl == 8 && memcmp(s, "Infinity", 8) == 0)
            v = INFINITY;
        else if (sl == 9 && memcmp(s, "-Infinity", 9) == 0)
            v = -INFINITY;
        else
            return mismatch(d, n, at, NULL, "a string");
    } else {
        return skip_mismatch(d, n, at, NULL);
    }
    if (n->type == DM_AVRO_FLOAT)
        out->u.f = (float)v;
    else
        out->u.d = v;
    return 0;
}

/* {"months": m, "days": d, "millis": ms}: three little-endian u32; other keys
 * are read and ignored, as the jansson path did. */
static int duration_value(jd_t *d, const dm_avro_node_t *n, dm_avro_value_t *out)
{
    static const char *const parts[] = {"months", "days", "millis"};
    const uint8_t *at = d->p;
    uint8_t *b = dm_arena_alloc(d->arena, 12);
    if (!b) return oom(d);
    memset(b, 0, 12);
    bool seen[3] = {false, false, false}, bad = false;
    d->p++;
    ws(d);
    if (d->p < d->end && *d->p == '}') {
        d->p++;
    } else {
        for (;;) {
            const uint8_t *k;
            size_t kl;
            if (key(d, &k, &kl)) return -1;
            int which = -1;
            for (int i = 0; i < 3; i++)
                if (strlen(parts[i]) == kl && memcmp(parts[i], k, kl) == 0) which = i;
            if (which >= 0) {
                if (seen[which]) return syntax(d, "duplicate object key");
                seen[which] = true;
                const uint8_t *vat = d->p;
                num_t num;
                if (vat < d->end && (*vat == '-' || (*vat >= '0' && *vat <= '9'))) {
                    if (number(d, &num)) return -1;
                    if (num.real || num.i < 0 || num.i > (int64_t)UINT32_MAX)
                        bad = true;
                    else
                        for (int i = 0; i < 4; i++)
                            b[4 * which + i] = (uint8_t)((uint64_t)num.i >> (8 * i));
                } else {
                    if (skip(d)) return -1;
                    bad = true;
                }
            } else if (skip(d)) {
                return -1;
            }
            ws(d);
            if (d->p < d->end && *d->p == ',') {
                d->p++;
                ws(d);
                continue;
            }
            if (d->p < d->end && *d->p == '}') {
                d->p++;
                break;
            }
            return syntax(d, "expected ',' or '}'");
        }
    }
    if (bad)
        return mismatch(d, n, at, "(duration {months, days, millis} of unsigned ints)",
                        "an object");
    out->u.p = b;
    out->len = 12;
    return 0;
}

static int decimal_value(jd_t *d, const dm_avro_node_t *n, dm_avro_value_t *out)
{
    const uint8_t *at = d->p;
    char tmp[64];
    const char *s = tmp;
    if (*at == '"') {
        const uint8_t *str;
        size_t sl;
        if (string(d, &str, &sl, false)) return -1;
        if (strlen((const char *)str) != sl)
            return mismatch(d, n, at, "(decimal digits, no NUL)", "a string");
        s = (const char *)str;
    } else {
        num_t num;
        if (number(d, &num)) return -1;
        if (num.real)
            snprintf(tmp, sizeof(tmp), "%.*f", n->scale, num.d);
        else
            snprintf(tmp, sizeof(tmp), "%lld", (long long)num.i);
    }
    __int128 v;
    if (!dm_avro_json_parse_decimal(s, n->scale, &v))
        return mismatch(d, n, at, "(decimal digits within the scale)",
                        *at == '"' ? "a string" : "a number");
    out->u.p =
        dm_avro_json_decimal_bytes(d->arena, v, n->type == DM_AVRO_FIXED ? n->size : 0, &out->len);
    return out->u.p ? 0 : oom(d);
}

/* Grows an arena array of values: the old one stays in the arena (at most as
 * much again as the final array). */
static dm_avro_value_t *grow(jd_t *d, dm_avro_value_t *v, size_t have, size_t *cap)
{
    size_t ncap = *cap ? *cap * 2 : 8;
    dm_avro_value_t *nv = dm_arena_alloc(d->arena, ncap * sizeof(*nv));
    if (!nv) return NULL;
    if (have) memcpy(nv, v, have * sizeof(*nv));
    *cap = ncap;
    return nv;
}

static int array_value(jd_t *d, const dm_avro_node_t *n, dm_avro_value_t *out)
{
    d->p++;
    ws(d);
    dm_avro_value_t *v = NULL;
    size_t len = 0, cap = 0;
    if (d->p < d->end && *d->p == ']') {
        d->p++;
    } else {
        for (;;) {
            if (len == cap && !(v = grow(d, v, len, &cap))) return oom(d);
            size_t mark = push_index(d, len);
            if (value(d, n->items, &v[len])) return -1;
            pop(d, mark);
            len++;
            ws(d);
            if (d->p < d->end && *d->p == ',') {
                d->p++;
                ws(d);
                continue;
            }
            if (d->p < d->end && *d->p == ']') {
                d->p++;
                break;
            }
            return syntax(d, "expected ',' or ']'");
        }
    }
    if (!v && !(v = dm_arena_alloc(d->arena, sizeof(*v)))) return oom(d);
    out->len = (uint32_t)len;
    out->u.v = v;
    return 0;
}

static int map_value(jd_t *d, const dm_avro_node_t *n, dm_avro_value_t *out)
{
    d->p++;
    ws(d);
    dm_avro_value_t *v = NULL;
    size_t len = 0, cap = 0; /* in values: two an entry */
    if (d->p < d->end && *d->p == '}') {
        d->p++;
    } else {
        for (;;) {
            if (len + 2 > cap && !(v = grow(d, v, len, &cap))) return oom(d);
            const uint8_t *k, *kat = d->p;
            size_t kl;
            if (key_of(d, &k, &kl, false)) return -1;
            for (size_t i = 0; i < len; i += 2)
                if (v[i].len == kl && memcmp(v[i].u.p, k, kl) == 0) {
                    d->p = kat;
                    return syntax(d, "duplicate object key");
                }
            v[len] = (dm_avro_value_t){.type = DM_AVRO_STRING, .len = (uint32_t)kl};
            v[len].u.p = k;
            size_t mark = push(d, (const char *)k, kl, '.');
            if (value(d, n->items, &v[len + 1])) return -1;
            pop(d, mark);
            len += 2;
            ws(d);
            if (d->p < d->end && *d->p == ',') {
                d->p++;
                ws(d);
                continue;
            }
            if (d->p < d->end && *d->p == '}') {
                d->p++;
                break;
            }
            return syntax(d, "expected ',' or '}'");
        }
    }
    if (!v && !(v = dm_arena_alloc(d->arena, sizeof(*v)))) return oom(d);
    out->len = (uint32_t)(len / 2);
    out->u.v = v;
    return 0;
}

/* A field's value: plain strings, longs, doubles and booleans (most fields of
 * most events) read directly, everything else through value(). Same checks,
 * same results. */
static int field_value(jd_t *d, const dm_avro_node_t *t, dm_avro_value_t *out)
{
    if (d->p < d->end && d->depth < MAX_DEPTH) {
        uint8_t c = *d->p;
        if (t->type == DM_AVRO_STRING && c == '"') {
            const uint8_t *s;
            size_t sl;
            if (string(d, &s, &sl, false)) return -1;
            *out = (dm_avro_value_t){.type = DM_AVRO_STRING, .len = (uint32_t)sl};
            out->u.p = s;
            return 0;
        }
        if (t->type == DM_AVRO_LONG && !t->logical && (c == '-' || (c >= '0' && c <= '9'))) {
            const uint8_t *at = d->p;
            num_t num;
            if (number(d, &num)) return -1;
            if (num.real) return mismatch(d, t, at, NULL, "a number");
            *out = (dm_avro_value_t){.type = DM_AVRO_LONG};
            out->u.l = num.i;
            return 0;
        }
        if (t->type == DM_AVRO_DOUBLE && (c == '-' || (c >= '0' && c <= '9'))) {
            num_t num;
            if (number(d, &num)) return -1;
            *out = (dm_avro_value_t){.type = DM_AVRO_DOUBLE};
            out->u.d = num.d;
            return 0;
        }
        if (t->type == DM_AVRO_BOOLEAN && (c == 't' || c == 'f') &&
            (c == 't' ? literal(d, "true", 4) : literal(d, "false", 5))) {
            *out = (dm_avro_value_t){.type = DM_AVRO_BOOLEAN};
            out->u.b = c == 't';
            return 0;
        }
    }
    return value(d, t, out);
}

/* The field of record n named k: the one expected next first. */
static int field_index(const dm_avro_node_t *n, const uint8_t *k, size_t kl, uint32_t hint)
{
    for (uint32_t j = 0; j < n->n_fields; j++) {
        uint32_t i = hint + j < n->n_fields ? hint + j : hint + j - n->n_fields;
        const char *name = n->fields[i].name;
        size_t j = 0; /* k holds no NUL: a shorter name stops at its own */
        while (j < kl && name[j] == (char)k[j])
            j++;
        if (j == kl && name[kl] == '\0') return (int)i;
    }
    return -1;
}

static int record_value(jd_t *d, const dm_avro_node_t *n, dm_avro_value_t *out)
{
    const uint8_t *at = d->p;
    uint32_t nf = n->n_fields;
    dm_avro_value_t *v = dm_arena_alloc(d->arena, (nf ? nf : 1) * sizeof(*v));
    uint8_t seen_small[64],
        *seen = nf <= sizeof(seen_small) ? seen_small : dm_arena_alloc(d->arena, nf);
    if (!v || !seen) return oom(d);
    memset(seen, 0, nf);
    d->p++;
    ws(d);
    uint32_t next = 0;
    if (d->p < d->end && *d->p == '}') {
        d->p++;
    } else {
        for (;;) {
            const uint8_t *k, *kat = d->p;
            size_t kl;
            if (key(d, &k, &kl)) return -1;
            int i = field_index(n, k, kl, next);
            size_t mark = push(d, (const char *)k, kl, '.');
            if (i < 0) {
                /* read the rest (a syntax error later wins), then refuse the key */
                if (skip(d)) return -1;
                if (!d->quiet && !d->failed) {
                    int line, col;
                    where(d, kat, &line, &col);
                    dm_error_set(
                        d->err, DM_ERR_SCHEMA_MISMATCH,
                        "%s: record %s has no field \"%.*s\" (line %d column %d, byte %zu)",
                        d->path, n->fullname, (int)kl, (const char *)k, line, col,
                        (size_t)(kat - d->start));
                    d->failed = true;
                }
                return -1;
            }
            if (seen[i]) {
                d->p = kat;
                return syntax(d, "duplicate object key");
            }
            seen[i] = 1;
            if (field_value(d, n->fields[i].type, &v[i])) return -1;
            pop(d, mark);
            next = (uint32_t)i + 1;
            ws(d);
            if (d->p < d->end && *d->p == ',') {
                d->p++;
                ws(d);
                continue;
            }
            if (d->p < d->end && *d->p == '}') {
                d->p++;
                break;
            }
            return syntax(d, "expected ',' or '}'");
        }
    }
    for (uint32_t i = 0; i < nf; i++) {
        if (seen[i]) continue;
        const dm_avro_field_t *f = &n->fields[i];
        size_t mark = push(d, f->name, strlen(f->name), '.');
        if (f->has_default && f->default_bin) {
            if (dm_avro_decode_node(f->type, f->default_bin, f->default_len, NULL, d->arena, &v[i],
                                    NULL))
                return mismatch(d, n, at, "(a usable default)", "an object");
        } else {
            if (!d->quiet && !d->failed) {
                int line, col;
                where(d, at, &line, &col);
                dm_error_set(d->err, DM_ERR_SCHEMA_MISMATCH,
                             "%s: missing field of type %s (record %s has no default for it; "
                             "the object at line %d column %d, byte %zu)",
                             d->path, node_name(f->type), n->fullname, line, col,
                             (size_t)(at - d->start));
                d->failed = true;
            }
            return -1;
        }
        pop(d, mark);
    }
    out->len = nf;
    out->u.v = v;
    return 0;
}

/* Tries branch b of a union on the value at d->p; on failure puts d->p back.
 * same: the value is the union's own (already counted for depth), not one
 * inside a {"type": value} wrapper. */
static int try_branch(jd_t *d, const dm_avro_node_t *b, dm_avro_value_t *out, bool same)
{
    if (--d->budget < 0)
        return syntax(d, "too many union alternatives to try (the document nests unions too "
                         "deeply for its size)");
    const uint8_t *at = d->p;
    size_t plen = d->plen;
    int depth = d->depth;
    d->depth -= same;
    d->quiet++;
    int rc = value(d, b, out);
    d->quiet--;
    d->depth = depth;
    if (rc) {
        d->p = at;
        pop(d, plen);
    }
    return rc;
}

static bool kind_matches(const jd_t *d, const dm_avro_node_t *b)
{
    jkind_t k = peek(d);
    switch (b->type) {
    case DM_AVRO_BOOLEAN: return k == K_BOOL;
    case DM_AVRO_INT:
    case DM_AVRO_LONG: return k == K_INTEGER && !b->logical;
    case DM_AVRO_FLOAT:
    case DM_AVRO_DOUBLE: return k == K_REAL;
    case DM_AVRO_STRING:
    case DM_AVRO_ENUM: return k == K_STRING;
    case DM_AVRO_RECORD:
    case DM_AVRO_MAP: return k == K_OBJECT;
    case DM_AVRO_ARRAY: return k == K_ARRAY;
    default: return false;
    }
}

static int union_value(jd_t *d, const dm_avro_node_t *n, dm_avro_value_t *out)
{
    const uint8_t *at = d->p;
    if (literal(d, "null", 4)) {
        for (uint32_t i = 0; i < n->n_branches; i++)
            if (n->branches[i]->type == DM_AVRO_NULL) {
                out->type = DM_AVRO_NULL;
                out->branch = (uint16_t)i;
                return 0;
            }
        return mismatch(d, n, at, "(union without null)", "null");
    }
    if (*at == '{') {
        /* {"type name": value}: the spec's form, and accepted in plain JSON too */
        d->p++;
        ws(d);
        const uint8_t *k;
        size_t kl;
        bool wrapped = false;
        if (d->p < d->end && *d->p == '"') {
            if (key(d, &k, &kl)) return -1;
            for (uint32_t i = 0; i < n->n_branches && !wrapped; i++) {
                const dm_avro_node_t *b = n->branches[i];
                const char *name = node_name(b);
                if (!(strlen(name) == kl && memcmp(name, k, kl) == 0) &&
                    !(b->name && strlen(b->name) == kl && memcmp(b->name, k, kl) == 0))
                    continue;
                const uint8_t *vat = d->p;
                int rc;
                if (d->mode == DM_AVRO_JSON_PLAIN) {
                    rc = try_branch(d, b, out, false);
                } else if (value(d, b, out)) {
                    return -1;
                } else {
                    rc = 0;
                }
                if (d->syntax) return -1;
                if (!rc) {
                    ws(d);
                    if (d->p < d->end && *d->p == '}') {
                        d->p++;
                        out->branch = (uint16_t)i;
                        wrapped = true;
                    } else if (d->mode == DM_AVRO_JSON_AVRO) {
                        return syntax(d, "expected '}' after a union's one key");
                    } else {
                        d->p = vat; /* more keys: not the wrapped form */
                        break;
                    }
                }
            }
        }
        if (wrapped) return 0;
        d->p = at;
        if (d->mode == DM_AVRO_JSON_AVRO) {
            return skip_mismatch(d, n, at, "(a union value as {\"type\": value})");
        }
    } else if (d->mode == DM_AVRO_JSON_AVRO) {
        return skip_mismatch(d, n, at, "(a union value as {\"type\": value})");
    }
    /* Plain JSON: first the branches whose kind matches the JSON value exactly,
     * then any branch that accepts it. */
    for (int pass = 0; pass < 2; pass++) {
        for (uint32_t i = 0; i < n->n_branches; i++) {
            const dm_avro_node_t *b = n->branches[i];
            if (pass == 0 && !kind_matches(d, b)) continue;
            if (!try_branch(d, b, out, true)) {
                out->branch = (uint16_t)i;
                return 0;
            }
            if (d->syntax) return -1;
        }
    }
    const char *got = kind_at(d);
    d->depth--;
    if (skip(d)) return -1;
    d->depth++;
    if (!d->quiet && !d->failed) {
        char expected[256] = "";
        size_t k = 0;
        for (uint32_t i = 0; i < n->n_branches && k < sizeof(expected); i++) {
            int w = snprintf(expected + k, sizeof(expected) - k, "%s%s", i ? ", " : "",
                             node_name(n->branches[i]));
            if (w > 0) k += (size_t)w;
        }
        int line, col;
        where(d, at, &line, &col);
        dm_error_set(d->err, DM_ERR_SCHEMA_MISMATCH,
                     "%s: expected one of [%s], got %s (line %d column %d, byte %zu)",
                     d->plen ? d->path : "$", expected, got, line, col, (size_t)(at - d->start));
        d->failed = true;
    }
    return -1;
}

static int value(jd_t *d, const dm_avro_node_t *n, dm_avro_value_t *out)
{
    ws(d);
    if (d->p >= d->end) return syntax(d, "premature end of input");
    if (++d->depth > MAX_DEPTH) return syntax(d, "maximum parsing depth reached");
    out->flags = 0;
    out->branch = 0;
    out->len = 0;
    out->type = (uint8_t)n->type;
    const uint8_t *at = d->p;
    uint8_t c = *at;
    int rc;
    switch (n->type) {
    case DM_AVRO_NULL:
        if (literal(d, "null", 4)) {
            rc = 0;
        } else {
            rc = skip_mismatch(d, n, at, NULL);
        }
        break;
    case DM_AVRO_BOOLEAN:
        if (literal(d, "true", 4)) {
            out->u.b = true;
            rc = 0;
        } else if (literal(d, "false", 5)) {
            out->u.b = false;
            rc = 0;
        } else {
            rc = skip_mismatch(d, n, at, NULL);
        }
        break;
    case DM_AVRO_INT:
    case DM_AVRO_LONG: rc = int_value(d, n, out); break;
    case DM_AVRO_FLOAT:
    case DM_AVRO_DOUBLE: rc = real_value(d, n, out); break;
    case DM_AVRO_BYTES:
    case DM_AVRO_FIXED: {
        bool plain = d->mode == DM_AVRO_JSON_PLAIN;
        if (plain && n->logical == DM_AVRO_LT_DURATION && c == '{') {
            rc = duration_value(d, n, out);
        } else if (plain && n->logical == DM_AVRO_LT_DECIMAL &&
                   (c == '"' || c == '-' || (c >= '0' && c <= '9'))) {
            rc = decimal_value(d, n, out);
        } else {
            const uint8_t *s;
            size_t sl;
            rc = string_value(d, n, &s, &sl);
            if (!rc) rc = latin1(d, n, at, s, sl, out);
            if (!rc && n->type == DM_AVRO_FIXED && out->len != n->size)
                rc = mismatch(d, n, at, "(string of exactly size bytes)", "a string");
        }
        break;
    }
    case DM_AVRO_STRING: {
        const uint8_t *s;
        size_t sl;
        rc = string_value(d, n, &s, &sl);
        if (!rc) {
            out->u.p = s;
            out->len = (uint32_t)sl;
        }
        break;
    }
    case DM_AVRO_ENUM: {
        const uint8_t *s;
        size_t sl;
        rc = string_value(d, n, &s, &sl);
        if (rc) break;
        rc = -1;
        for (uint32_t i = 0; i < n->n_symbols; i++)
            if (strlen(n->symbols[i]) == sl && memcmp(n->symbols[i], s, sl) == 0) {
                out->u.i = (int32_t)i;
                rc = 0;
                break;
            }
        if (rc) rc = mismatch(d, n, at, "(one of its symbols)", "a string");
        break;
    }
    case DM_AVRO_ARRAY:
        if (c == '[') {
            rc = array_value(d, n, out);
        } else {
            rc = skip_mismatch(d, n, at, NULL);
        }
        break;
    case DM_AVRO_MAP:
        if (c == '{') {
            rc = map_value(d, n, out);
        } else {
            rc = skip_mismatch(d, n, at, NULL);
        }
        break;
    case DM_AVRO_RECORD:
        if (c == '{') {
            rc = record_value(d, n, out);
        } else {
            rc = skip_mismatch(d, n, at, NULL);
        }
        break;
    case DM_AVRO_UNION: rc = union_value(d, n, out); break;
    default: rc = mismatch(d, n, at, NULL, kind_at(d)); break;
    }
    d->depth--;
    return rc;
}

dm_err_t dm_avro_json_decode(const dm_avro_node_t *node, const char *json, size_t len,
                             dm_avro_json_mode_t mode, dm_arena_t *arena, dm_avro_value_t *out,
                             dm_error_t *err)
{
    jd_t d = {.p = (const uint8_t *)json,
              .start = (const uint8_t *)json,
              .end = (const uint8_t *)json + len,
              .mode = mode,
              .arena = arena,
              .err = err,
              .budget = UNION_BUDGET + 16 * (long)(len < (1u << 26) ? len : (1u << 26))};
    d.path[0] = '$';
    d.plen = 1;
    if (err) err->code = DM_OK;
    if (!value(&d, node, out)) {
        ws(&d);
        if (d.p == d.end) return DM_OK;
        syntax(&d, "end of file expected");
    }
    if (!d.failed) dm_error_set(err, DM_ERR_SCHEMA_MISMATCH, "$: mismatch");
    return err && err->code ? err->code : DM_ERR_SCHEMA_MISMATCH;
}

dm_err_t dm_avro_json_each(const char *json, size_t len,
                           dm_err_t (*fn)(void *ctx, size_t i, const char *elem, size_t elem_len,
                                          dm_error_t *err),
                           void *ctx, size_t *count, dm_error_t *err)
{
    jd_t d = {.p = (const uint8_t *)json,
              .start = (const uint8_t *)json,
              .end = (const uint8_t *)json + len,
              .err = err};
    dm_arena_t scratch; /* escaped keys and strings being checked */
    dm_arena_init(&scratch, 0);
    d.arena = &scratch;
    size_t n = 0;
    dm_err_t rc = DM_OK;
    ws(&d);
    bool array = d.p < d.end && *d.p == '[';
    if (array) {
        d.p++;
        ws(&d);
        if (d.p < d.end && *d.p == ']') {
            d.p++;
            goto end;
        }
    }
    for (;;) {
        ws(&d);
        const uint8_t *at = d.p;
        if (skip(&d)) goto fail;
        if ((rc = fn(ctx, n, (const char *)at, (size_t)(d.p - at), err))) goto out;
        n++;
        dm_arena_reset(&scratch);
        if (!array) break;
        ws(&d);
        if (d.p < d.end && *d.p == ',') {
            d.p++;
            continue;
        }
        if (d.p < d.end && *d.p == ']') {
            d.p++;
            break;
        }
        syntax(&d, "expected ',' or ']'");
        goto fail;
    }
end:
    ws(&d);
    if (d.p == d.end) goto out;
    syntax(&d, "end of file expected");
fail:
    rc = err && err->code ? err->code : DM_ERR_INVALID;
out:
    dm_arena_destroy(&scratch);
    if (count) *count = n;
    return rc;
}
