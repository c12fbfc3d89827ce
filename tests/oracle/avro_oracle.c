/* tests/oracle/avro_oracle.c — datamesh's Avro codecs against two independent
 * implementations: avro-c (in process) and python3-avro (/usr/bin/python3,
 * tests/oracle/avro_oracle.py).
 *
 * Random schemas (records, enums, fixed, arrays, maps, unions, named and
 * recursive references, namespaces, defaults, logical types) and random values
 * are generated from a seed (printed; DM_ORACLE_SEED replays a run,
 * DM_ORACLE_CASES sets the count, default 1000). For each case:
 *   - datamesh encodes the values; avro-c decodes and re-encodes them and the
 *     bytes must be identical; datamesh decodes avro-c's bytes to equal values;
 *   - some cases go through container files both ways (datamesh writes, avro-c
 *     reads; avro-c writes, datamesh reads), with every codec both support;
 *   - every case is handed to python3-avro, which decodes and re-encodes each
 *     record (bytes must be identical), reads datamesh's container file and
 *     writes its own, which datamesh then reads back;
 *   - schema resolution: the writer schema is evolved into a reader schema
 *     (promotions, dropped and added fields); datamesh and
 *     python3-avro each read the records with it and re-encode them with the
 *     reader schema, and the bytes must be identical.
 * The summary line is "N passed, N failed" like every other test.
 */
#include <avro.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "schema/dm_avro_container.h"
#include "schema/dm_schema_compat.h"
#include "schema/json_internal.h"

#define VALUES_PER_CASE 3

static uint64_t rng;
static unsigned rnd(unsigned n)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return n ? (unsigned)(rng % n) : 0;
}
static uint64_t rnd64(void)
{
    rnd(1);
    return rng;
}

static int passed, failed;
static void failf(int c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void failf(int c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("FAIL case %d: ", c);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    failed++;
}

/* ---- random schemas ------------------------------------------------------------- */

/* Union groups python3-avro cannot tell apart (it picks the first branch whose
 * type accepts the datum): at most one branch per group in a union. */
enum { G_NULL, G_NUM, G_STR, G_BYTES, G_DICT, G_LIST };

typedef struct named {
    char fullname[32];
    int group;
    bool done; /* false: a record still being defined (recursion) */
} named_t;

typedef struct sgen {
    dm_buf_t *out;
    named_t names[64];
    int n_names;
    int counter;
    char ns[16]; /* namespace of the enclosing definition, "" for none */
} sgen_t;

/* Full name of a type named short_name defined here (the enclosing namespace
 * applies to names without a dot). */
static void define_name(sgen_t *g, named_t *n, const char *prefix, int id)
{
    if (g->ns[0])
        snprintf(n->fullname, sizeof(n->fullname), "%s.%s%d", g->ns, prefix, id);
    else
        snprintf(n->fullname, sizeof(n->fullname), "%s%d", prefix, id);
}

/* A reference is only writable when the name resolves from here: a full name
 * with a namespace always does, a name in no namespace only outside namespaces. */
static bool referable(const sgen_t *g, const named_t *n)
{
    return strchr(n->fullname, '.') || !g->ns[0];
}

static int gen_type(sgen_t *g, int depth, int *group);

static const char *prims[] = {"boolean", "int", "long", "float", "double", "bytes", "string"};
static const int prim_group[] = {G_NUM, G_NUM, G_NUM, G_NUM, G_NUM, G_BYTES, G_STR};

static int gen_primitive(sgen_t *g, int *group)
{
    unsigned k = rnd(7);
    *group = prim_group[k];
    unsigned lt = rnd(10);
    if (k == 1 && lt == 0)
        dm_buf_printf(g->out, "{\"type\":\"int\",\"logicalType\":\"date\"}");
    else if (k == 1 && lt == 1)
        dm_buf_printf(g->out, "{\"type\":\"int\",\"logicalType\":\"time-millis\"}");
    else if (k == 2 && lt == 0)
        dm_buf_printf(g->out, "{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}");
    else if (k == 2 && lt == 1)
        dm_buf_printf(g->out, "{\"type\":\"long\",\"logicalType\":\"timestamp-micros\"}");
    else if (k == 2 && lt == 2)
        dm_buf_printf(g->out, "{\"type\":\"long\",\"logicalType\":\"time-micros\"}");
    else if (rnd(4) == 0)
        dm_buf_printf(g->out, "{\"type\":\"%s\"}", prims[k]);
    else
        dm_buf_printf(g->out, "\"%s\"", prims[k]);
    return 0;
}

static void gen_record(sgen_t *g, int depth, int *group)
{
    int id = g->counter++;
    named_t *n = &g->names[g->n_names++];
    bool ns = rnd(3) == 0;
    char saved_ns[sizeof(g->ns)];
    memcpy(saved_ns, g->ns, sizeof(saved_ns));
    if (ns) snprintf(g->ns, sizeof(g->ns), "ns%d", id);
    define_name(g, n, "R", id);
    n->group = G_DICT;
    n->done = false;
    *group = G_DICT;
    if (ns)
        dm_buf_printf(g->out, "{\"type\":\"record\",\"name\":\"R%d\",\"namespace\":\"ns%d\",", id,
                      id);
    else
        dm_buf_printf(g->out, "{\"type\":\"record\",\"name\":\"R%d\",", id);
    if (rnd(4) == 0)
        dm_buf_printf(g->out, "\"doc\":\"record %d\",\"aliases\":[\"Old%d\"],", id, id);
    dm_buf_printf(g->out, "\"fields\":[");
    int nf = 1 + (int)rnd(5);
    for (int i = 0; i < nf; i++) {
        dm_buf_printf(g->out, "%s{\"name\":\"f%d\",\"type\":", i ? "," : "", i);
        unsigned d = rnd(12);
        int grp;
        if (d == 0) {
            dm_buf_printf(g->out, "[\"null\",\"string\"],\"default\":null}");
        } else if (d == 1) {
            dm_buf_printf(g->out, "\"int\",\"default\":42}");
        } else if (d == 2) {
            dm_buf_printf(g->out, "\"string\",\"default\":\"d\\u00e9f\"}");
        } else {
            gen_type(g, depth + 1, &grp);
            dm_buf_printf(g->out, "}");
        }
    }
    dm_buf_printf(g->out, "]}");
    n->done = true;
    memcpy(g->ns, saved_ns, sizeof(saved_ns));
}

/* A union of 2-4 branches from distinct groups. */
static void gen_union(sgen_t *g, int depth)
{
    bool used[6] = {0};
    dm_buf_printf(g->out, "[");
    int nb = 2 + (int)rnd(3), written = 0;
    /* a recursive reference needs a null branch to end the recursion */
    int rec = -1;
    for (int i = 0; i < g->n_names; i++)
        if (!g->names[i].done && referable(g, &g->names[i]) && rnd(2) == 0) rec = i;
    if (rec >= 0 || rnd(2) == 0) {
        dm_buf_printf(g->out, "\"null\"");
        used[G_NULL] = true;
        written++;
    }
    if (rec >= 0) {
        dm_buf_printf(g->out, ",\"%s\"", g->names[rec].fullname);
        used[G_DICT] = true;
        written++;
    }
    for (int tries = 0; written < nb && tries < 20; tries++) {
        dm_buf_t tmp = DM_BUF_INIT;
        dm_buf_t *saved = g->out;
        g->out = &tmp;
        int grp = -1;
        int saved_names = g->n_names, saved_counter = g->counter;
        unsigned k = rnd(10);
        if (k < 5) {
            gen_primitive(g, &grp);
        } else if (k == 5) {
            dm_buf_printf(g->out, "{\"type\":\"array\",\"items\":");
            int ig;
            gen_type(g, depth + 1, &ig);
            dm_buf_printf(g->out, "}");
            grp = G_LIST;
        } else if (k == 6) {
            dm_buf_printf(g->out, "{\"type\":\"map\",\"values\":");
            int ig;
            gen_type(g, depth + 1, &ig);
            dm_buf_printf(g->out, "}");
            grp = G_DICT;
        } else if (k == 7 && depth < 3) {
            gen_record(g, depth + 1, &grp);
        } else {
            int done_named = 0;
            for (int i = 0; i < g->n_names; i++)
                done_named += g->names[i].done && referable(g, &g->names[i]);
            if (done_named) {
                int pick = (int)rnd((unsigned)done_named);
                for (int i = 0; i < g->n_names; i++) {
                    if (!g->names[i].done || !referable(g, &g->names[i])) continue;
                    if (pick-- == 0) {
                        dm_buf_printf(g->out, "\"%s\"", g->names[i].fullname);
                        grp = g->names[i].group;
                        break;
                    }
                }
            } else {
                gen_primitive(g, &grp);
            }
        }
        g->out = saved;
        if (grp >= 0 && !used[grp]) {
            used[grp] = true;
            dm_buf_printf(g->out, "%s%.*s", written ? "," : "", (int)tmp.len, tmp.data);
            written++;
        } else {
            /* drop what this attempt defined: it never reaches the schema */
            g->n_names = saved_names;
            g->counter = saved_counter;
        }
        dm_buf_free(&tmp);
    }
    if (written == 0) dm_buf_printf(g->out, "\"null\"");
    dm_buf_printf(g->out, "]");
}

static int gen_type(sgen_t *g, int depth, int *group)
{
    unsigned k = depth > 3 ? rnd(4) : rnd(14);
    if (k < 4) return gen_primitive(g, group);
    switch (k) {
    case 4:
    case 5: gen_record(g, depth, group); return 0;
    case 6: {
        int id = g->counter++;
        named_t *n = &g->names[g->n_names++];
        define_name(g, n, "E", id);
        n->group = G_STR;
        n->done = true;
        int ns = 1 + (int)rnd(5);
        dm_buf_printf(g->out, "{\"type\":\"enum\",\"name\":\"E%d\",\"symbols\":[", id);
        for (int i = 0; i < ns; i++)
            dm_buf_printf(g->out, "%s\"S%d\"", i ? "," : "", i);
        dm_buf_printf(g->out, "]%s}", rnd(3) == 0 ? ",\"default\":\"S0\"" : "");
        *group = G_STR;
        return 0;
    }
    case 7: {
        int id = g->counter++;
        named_t *n = &g->names[g->n_names++];
        define_name(g, n, "F", id);
        n->group = G_BYTES;
        n->done = true;
        dm_buf_printf(g->out, "{\"type\":\"fixed\",\"name\":\"F%d\",\"size\":%u}", id, 1 + rnd(16));
        *group = G_BYTES;
        return 0;
    }
    case 8:
    case 9: {
        bool arr = k == 8;
        dm_buf_printf(g->out,
                      arr ? "{\"type\":\"array\",\"items\":" : "{\"type\":\"map\",\"values\":");
        int ig;
        gen_type(g, depth + 1, &ig);
        dm_buf_printf(g->out, "}");
        *group = arr ? G_LIST : G_DICT;
        return 0;
    }
    case 10:
    case 11:
        gen_union(g, depth);
        *group = -1;
        return 0;
    default: {
        for (int i = 0; i < g->n_names; i++)
            if (g->names[i].done && referable(g, &g->names[i]) && rnd(2) == 0) {
                dm_buf_printf(g->out, "\"%s\"", g->names[i].fullname);
                *group = g->names[i].group;
                return 0;
            }
        return gen_primitive(g, group);
    }
    }
}

static void gen_schema(dm_buf_t *out)
{
    sgen_t g = {.out = out};
    int grp;
    gen_record(&g, 0, &grp);
}

/* ---- random values ---------------------------------------------------------------- */

static const char *const utf8_pieces[] = {
    "a", "b", "z", "Q", "0", " ", "\xc3\xa9", "\xe4\xb8\xad", "\xf0\x9f\x98\x80", "\"", "\\", "\n"};

static uint8_t *rand_string(dm_arena_t *a, uint32_t *len)
{
    unsigned n = rnd(12);
    uint8_t *p = dm_arena_alloc(a, n * 4 + 1);
    uint32_t k = 0;
    for (unsigned i = 0; i < n; i++) {
        const char *piece = utf8_pieces[rnd(sizeof(utf8_pieces) / sizeof(utf8_pieces[0]))];
        size_t pl = strlen(piece);
        memcpy(p + k, piece, pl);
        k += (uint32_t)pl;
    }
    *len = k;
    return p;
}

static int64_t rand_int(int64_t lo, int64_t hi)
{
    return lo + (int64_t)(rnd64() % (uint64_t)(hi - lo + 1));
}

static void gen_value(const dm_avro_node_t *n, dm_avro_value_t *v, dm_arena_t *a, int depth)
{
    memset(v, 0, sizeof(*v));
    if (n->type == DM_AVRO_UNION) {
        unsigned b = rnd(n->n_branches);
        if (depth > 5)
            for (unsigned i = 0; i < n->n_branches; i++)
                if (n->branches[i]->type == DM_AVRO_NULL) b = i;
        gen_value(n->branches[b], v, a, depth + 1);
        v->branch = (uint16_t)b;
        return;
    }
    v->type = (uint8_t)n->type;
    switch (n->type) {
    case DM_AVRO_NULL: break;
    case DM_AVRO_BOOLEAN: v->u.b = rnd(2); break;
    case DM_AVRO_INT:
        switch (n->logical) {
        case DM_AVRO_LT_DATE: v->u.i = (int32_t)rand_int(-30000, 30000); break;
        case DM_AVRO_LT_TIME_MILLIS: v->u.i = (int32_t)rand_int(0, 86399999); break;
        default: {
            unsigned k = rnd(4);
            v->u.i = k == 0   ? (int32_t)rand_int(-64, 64)
                     : k == 1 ? (rnd(2) ? INT32_MAX : INT32_MIN)
                              : (int32_t)rnd64();
        }
        }
        break;
    case DM_AVRO_LONG:
        switch (n->logical) {
        case DM_AVRO_LT_TIMESTAMP_MILLIS:
            v->u.l = rand_int(-2000000000000LL, 4000000000000LL);
            break;
        case DM_AVRO_LT_TIMESTAMP_MICROS:
            v->u.l = rand_int(-2000000000000LL, 4000000000000LL) * 1000 + rand_int(0, 999);
            break;
        case DM_AVRO_LT_TIME_MICROS: v->u.l = rand_int(0, 86399999999LL); break;
        default: {
            unsigned k = rnd(4);
            v->u.l = k == 0   ? rand_int(-64, 64)
                     : k == 1 ? (rnd(2) ? INT64_MAX : INT64_MIN)
                              : (int64_t)rnd64();
        }
        }
        break;
    case DM_AVRO_FLOAT: v->u.f = (float)((double)(int64_t)rnd64() / 1e9); break;
    case DM_AVRO_DOUBLE: v->u.d = (double)(int64_t)rnd64() / 1e7; break;
    case DM_AVRO_BYTES: {
        uint32_t len = rnd(10);
        uint8_t *p = dm_arena_alloc(a, len + 1);
        for (uint32_t i = 0; i < len; i++)
            p[i] = (uint8_t)rnd(256);
        v->u.p = p;
        v->len = len;
        break;
    }
    case DM_AVRO_STRING: v->u.p = rand_string(a, &v->len); break;
    case DM_AVRO_FIXED: {
        uint8_t *p = dm_arena_alloc(a, n->size + 1);
        for (uint32_t i = 0; i < n->size; i++)
            p[i] = (uint8_t)rnd(256);
        v->u.p = p;
        v->len = n->size;
        break;
    }
    case DM_AVRO_ENUM: v->u.i = (int32_t)rnd(n->n_symbols); break;
    case DM_AVRO_RECORD:
        v->len = n->n_fields;
        v->u.v = dm_arena_alloc(a, (n->n_fields + 1) * sizeof(dm_avro_value_t));
        for (uint32_t i = 0; i < n->n_fields; i++)
            gen_value(n->fields[i].type, &v->u.v[i], a, depth + 1);
        break;
    case DM_AVRO_ARRAY:
    case DM_AVRO_MAP: {
        bool map = n->type == DM_AVRO_MAP;
        uint32_t cnt = depth > 5 ? 0 : rnd(4);
        v->len = cnt;
        v->u.v = dm_arena_alloc(a, (2 * cnt + 1) * sizeof(dm_avro_value_t));
        for (uint32_t i = 0; i < cnt; i++) {
            if (map) {
                dm_avro_value_t *k = &v->u.v[2 * i];
                memset(k, 0, sizeof(*k));
                k->type = DM_AVRO_STRING;
                char *key = dm_arena_printf(a, "k%u", i); /* unique keys */
                k->u.p = (const uint8_t *)key;
                k->len = (uint32_t)strlen(key);
                gen_value(n->items, &v->u.v[2 * i + 1], a, depth + 1);
            } else {
                gen_value(n->items, &v->u.v[i], a, depth + 1);
            }
        }
        break;
    }
    default: break;
    }
}

/* ---- avro-c ------------------------------------------------------------------------- */

static void hexdump(const char *what, const uint8_t *p, size_t n)
{
    printf("    %s (%zu):", what, n);
    for (size_t i = 0; i < n && i < 64; i++)
        printf(" %02x", p[i]);
    printf("\n");
}

/* avro-c decodes our bytes and encodes them again; the bytes must not change,
 * and we must decode avro-c's bytes to the value we started from. */
static bool avroc_round_trip(int c, avro_value_iface_t *iface, const dm_avro_codec_t *codec,
                             const dm_avro_node_t *root, const dm_avro_value_t *orig,
                             const uint8_t *bin, size_t len)
{
    avro_value_t v;
    avro_generic_value_new(iface, &v);
    avro_reader_t r = avro_reader_memory((const char *)bin, (int64_t)len);
    bool ok = true;
    if (avro_value_read(r, &v)) {
        failf(c, "avro-c cannot read our bytes: %s", avro_strerror());
        hexdump("ours", bin, len);
        ok = false;
    } else {
        size_t size = 0;
        avro_value_sizeof(&v, &size);
        char *buf = malloc(size + 16);
        avro_writer_t w = avro_writer_memory(buf, (int64_t)size + 16);
        if (avro_value_write(w, &v)) {
            failf(c, "avro-c cannot write the value back: %s", avro_strerror());
            ok = false;
        } else if ((size_t)avro_writer_tell(w) != len || memcmp(buf, bin, len) != 0) {
            failf(c, "avro-c re-encodes differently");
            hexdump("ours", bin, len);
            hexdump("avro-c", (const uint8_t *)buf, (size_t)avro_writer_tell(w));
            ok = false;
        } else {
            dm_arena_t a;
            dm_arena_init(&a, 0);
            dm_avro_value_t back;
            dm_error_t err = {0};
            size_t used;
            if (dm_avro_decode(codec, (const uint8_t *)buf, len, &used, &a, &back, &err) ||
                used != len) {
                failf(c, "we cannot decode avro-c's bytes: %s", err.message);
                ok = false;
            } else if (!dm_avro_value_equal(root, orig, &back)) {
                failf(c, "value decoded from avro-c's bytes differs");
                ok = false;
            }
            dm_arena_destroy(&a);
        }
        avro_writer_free(w);
        free(buf);
    }
    avro_reader_free(r);
    avro_value_decref(&v);
    return ok;
}

/* ---- JSON ------------------------------------------------------------------------- */

static int json_checked, json_variants, json_rejected;

/* Both JSON readers on text: the DOM-free one must accept and refuse what the
 * jansson path does (duplicate keys refused by both) and give equal values.
 * Text with a \u0000 escape is left out: there the new reader is stricter on
 * purpose (an enum symbol or a date no longer matches a string cut at the NUL). */
static bool json_agree(int c, const dm_avro_node_t *root, const char *text, size_t len,
                       dm_avro_json_mode_t mode, const char *what)
{
    if (!text) text = ""; /* an empty copy */
    if (memmem(text, len, "\\u0000", 6)) return true;
    dm_arena_t a;
    dm_arena_init(&a, 0);
    dm_avro_value_t vo, vn;
    dm_error_t eo = {0}, en = {0};
    dm_err_t ro = dm_avro_from_json_dom(root, text, len, mode, true, &a, &vo, &eo);
    dm_err_t rn = dm_avro_from_json_text(root, text, len, mode, &a, &vn, &en);
    bool ok = true;
    json_variants++;
    json_rejected += rn != 0;
    if (!ro != !rn) {
        failf(c,
              "%s: jansson path %s, DOM-free reader %s\n    old: %s\n    new: %s\n    text: %.*s",
              what, ro ? "refuses" : "accepts", rn ? "refuses" : "accepts", eo.message, en.message,
              (int)(len < 600 ? len : 600), text);
        ok = false;
    } else if (!ro && !dm_avro_value_equal(root, &vo, &vn)) {
        failf(c, "%s: the two readers give different values\n    text: %.*s", what,
              (int)(len < 600 ? len : 600), text);
        ok = false;
    }
    dm_arena_destroy(&a);
    return ok;
}

/* True when a bytes or fixed value in v holds a zero byte: avro-c's JSON
 * writer ends such a value at its first zero (it treats it as a C string), so
 * its text cannot be compared. */
static bool has_zero_byte(const dm_avro_node_t *n, const dm_avro_value_t *v, int depth)
{
    if (depth > 64) return true;
    if (n->type == DM_AVRO_UNION) n = n->branches[v->branch];
    switch (n->type) {
    case DM_AVRO_BYTES:
    case DM_AVRO_FIXED: return v->len && memchr(v->u.p, 0, v->len) != NULL;
    case DM_AVRO_RECORD:
        for (uint32_t i = 0; i < n->n_fields; i++)
            if (has_zero_byte(n->fields[i].type, &v->u.v[i], depth + 1)) return true;
        return false;
    case DM_AVRO_ARRAY:
        for (uint32_t i = 0; i < v->len; i++)
            if (has_zero_byte(n->items, &v->u.v[i], depth + 1)) return true;
        return false;
    case DM_AVRO_MAP:
        for (uint32_t i = 0; i < v->len; i++)
            if (has_zero_byte(n->items, &v->u.v[2 * i + 1], depth + 1)) return true;
        return false;
    default: return false;
    }
}

/* One value through JSON: our writer's text (the spec's encoding) reads back
 * as the value; avro-c's JSON of the same bytes reads back as the value; the
 * readers agree on that text, on plain JSON and on broken copies of it. */
static bool json_case(int c, avro_value_iface_t *iface, const dm_avro_node_t *root,
                      const dm_avro_value_t *orig, const uint8_t *bin, size_t len)
{
    bool ok = true;
    dm_buf_t text = DM_BUF_INIT, plain = DM_BUF_INIT;
    dm_error_t err = {0};
    dm_arena_t a;
    dm_arena_init(&a, 0);
    dm_avro_value_t back;
    if (dm_avro_to_json(root, orig, DM_AVRO_JSON_AVRO, &text, &err) ||
        dm_avro_to_json(root, orig, DM_AVRO_JSON_PLAIN, &plain, &err)) {
        failf(c, "we cannot write our own value as JSON: %s", err.message);
        ok = false;
        goto out;
    }
    if (dm_avro_from_json_text(root, (const char *)text.data, text.len, DM_AVRO_JSON_AVRO, &a,
                               &back, &err)) {
        failf(c, "our JSON does not read back: %s\n    text: %.*s", err.message, (int)text.len,
              text.data);
        ok = false;
    } else if (!dm_avro_value_equal(root, orig, &back)) {
        failf(c, "our JSON reads back as another value\n    text: %.*s", (int)text.len, text.data);
        ok = false;
    }
    /* avro-c's JSON encoding of the same bytes */
    avro_value_t v;
    avro_generic_value_new(iface, &v);
    avro_reader_t r = avro_reader_memory((const char *)bin, (int64_t)len);
    char *theirs = NULL;
    if (!has_zero_byte(root, orig, 0) && !avro_value_read(r, &v) &&
        !avro_value_to_json(&v, 1, &theirs) && theirs) {
        if (dm_avro_from_json_text(root, theirs, strlen(theirs), DM_AVRO_JSON_AVRO, &a, &back,
                                   &err)) {
            failf(c, "avro-c's JSON does not read: %s\n    text: %s", err.message, theirs);
            ok = false;
        } else if (!dm_avro_value_equal(root, orig, &back)) {
            failf(c, "avro-c's JSON reads as another value\n    text: %s", theirs);
            ok = false;
        }
        ok &= json_agree(c, root, theirs, strlen(theirs), DM_AVRO_JSON_AVRO, "avro-c's JSON");
    }
    free(theirs);
    avro_reader_free(r);
    avro_value_decref(&v);
    json_checked++;
    ok &= json_agree(c, root, (const char *)text.data, text.len, DM_AVRO_JSON_AVRO, "our JSON");
    ok &= json_agree(c, root, (const char *)plain.data, plain.len, DM_AVRO_JSON_PLAIN,
                     "our plain JSON");
    /* broken copies: cut short, a byte replaced, a piece inserted */
    static const char *const pieces[] = {
        "{",         "}",       "[",   "]",       "\"",   ",",
        ":",         "\\",      "\\u", "\\ud800", "\xff", "\xc3",
        "1e999",     "-",       "0.5", "null",    "true", "99999999999999999999",
        "\"k0\":1,", "\\u00e9", " "};
    dm_buf_t *srcs[2] = {&text, &plain};
    for (int i = 0; i < 12 && ok; i++) {
        dm_buf_t *src = srcs[i % 2];
        dm_buf_t m = DM_BUF_INIT;
        size_t at = src->len ? rnd((unsigned)src->len) : 0;
        unsigned how = rnd(3);
        dm_buf_append(&m, src->data, at);
        if (how == 1 || how == 2) {
            const char *pc = pieces[rnd(sizeof(pieces) / sizeof(pieces[0]))];
            dm_buf_append(&m, pc, strlen(pc));
        }
        if (how != 0) {
            size_t from = at + (how == 1 && at < src->len);
            dm_buf_append(&m, src->data + from, src->len - from);
        }
        ok &= json_agree(c, root, (const char *)m.data, m.len,
                         i % 2 ? DM_AVRO_JSON_PLAIN : DM_AVRO_JSON_AVRO, "a broken copy");
        dm_buf_free(&m);
    }
out:
    dm_arena_destroy(&a);
    dm_buf_free(&text);
    dm_buf_free(&plain);
    return ok;
}

/* Container files across: ours → avro-c and avro-c → ours. */
static bool avroc_containers(int c, const char *dir, avro_schema_t as, avro_value_iface_t *iface,
                             const dm_avro_schema_t *s, dm_buf_t *bins, size_t *offs, int n)
{
    static const char *codecs[] = {"null", "deflate", "snappy"};
    const char *cname = codecs[c % 3];
    dm_avro_file_codec_t codec;
    dm_avro_file_codec_parse(cname, &codec);
    char path[512];
    bool ok = true;
    /* ours → avro-c */
    snprintf(path, sizeof(path), "%s/c%d.dm.avro", dir, c);
    FILE *f = fopen(path, "wb");
    dm_avro_file_writer_t *w;
    dm_error_t err = {0};
    if (!f || dm_avro_file_writer_new(f, s, codec, 64, &w, &err)) {
        failf(c, "cannot write %s: %s", path, err.message);
        if (f) fclose(f);
        return false;
    }
    for (int i = 0; i < n; i++)
        dm_avro_file_writer_append_raw(w, bins->data + offs[i], offs[i + 1] - offs[i], &err);
    dm_avro_file_writer_close(w, &err);
    fclose(f);
    avro_file_reader_t fr;
    if (avro_file_reader(path, &fr)) {
        failf(c, "avro-c cannot open our %s container: %s", cname, avro_strerror());
        return false;
    }
    avro_value_t v;
    avro_generic_value_new(iface, &v);
    for (int i = 0; i < n && ok; i++) {
        if (avro_file_reader_read_value(fr, &v)) {
            failf(c, "avro-c cannot read record %d of our %s container: %s", i, cname,
                  avro_strerror());
            ok = false;
            break;
        }
        char buf[65536];
        avro_writer_t bw = avro_writer_memory(buf, sizeof(buf));
        avro_value_write(bw, &v);
        size_t len = (size_t)avro_writer_tell(bw);
        avro_writer_free(bw);
        if (len != offs[i + 1] - offs[i] || memcmp(buf, bins->data + offs[i], len) != 0) {
            failf(c, "record %d read by avro-c from our %s container differs", i, cname);
            ok = false;
        }
    }
    avro_file_reader_close(fr);
    /* avro-c → ours */
    snprintf(path, sizeof(path), "%s/c%d.avroc.avro", dir, c);
    avro_file_writer_t fw;
    remove(path);
    if (avro_file_writer_create_with_codec(path, as, &fw, cname, 0)) {
        failf(c, "avro-c cannot create a %s container: %s", cname, avro_strerror());
        avro_value_decref(&v);
        return false;
    }
    for (int i = 0; i < n; i++) {
        avro_reader_t r = avro_reader_memory((const char *)bins->data + offs[i],
                                             (int64_t)(offs[i + 1] - offs[i]));
        avro_value_read(r, &v);
        avro_reader_free(r);
        avro_file_writer_append_value(fw, &v);
    }
    avro_file_writer_close(fw);
    avro_value_decref(&v);
    FILE *in = fopen(path, "rb");
    dm_buf_t data = DM_BUF_INIT;
    char chunk[8192];
    size_t got;
    while (in && (got = fread(chunk, 1, sizeof(chunk), in)) > 0)
        dm_buf_append(&data, chunk, got);
    if (in) fclose(in);
    dm_avro_file_reader_t *r;
    if (dm_avro_file_reader_new(data.data, data.len, &r, &err)) {
        failf(c, "we cannot open avro-c's %s container: %s", cname, err.message);
        dm_buf_free(&data);
        return false;
    }
    for (int i = 0; i <= n && ok; i++) {
        const uint8_t *rec;
        size_t len;
        bool have;
        if (dm_avro_file_reader_next_raw(r, &rec, &len, &have, &err)) {
            failf(c, "reading avro-c's %s container: %s", cname, err.message);
            ok = false;
        } else if (have != (i < n)) {
            failf(c, "avro-c's %s container has the wrong record count", cname);
            ok = false;
        } else if (have &&
                   (len != offs[i + 1] - offs[i] || memcmp(rec, bins->data + offs[i], len) != 0)) {
            failf(c, "record %d of avro-c's %s container differs", i, cname);
            ok = false;
        }
    }
    dm_avro_file_reader_free(r);
    dm_buf_free(&data);
    return ok;
}

/* ---- reader schemas for resolution ---------------------------------------------- */

static int evolved; /* cases whose reader schema differs from the writer's */

/* Evolves a writer schema into a reader schema the spec says can read it:
 * promotes int/long/float fields, drops primitive fields, adds fields with
 * defaults. Named types keep their names and stay defined before their uses
 * (python3-avro needs that), so fields are not reordered. */
static void mutate(json_t *j, int *added)
{
    if (json_is_array(j)) {
        size_t i;
        json_t *e;
        json_array_foreach(j, i, e) mutate(e, added);
        return;
    }
    if (!json_is_object(j)) return;
    json_t *items = json_object_get(j, "items"), *values = json_object_get(j, "values");
    if (items) mutate(items, added);
    if (values) mutate(values, added);
    const char *type = json_string_value(json_object_get(j, "type"));
    json_t *fields = json_object_get(j, "fields");
    if (!type || strcmp(type, "record") != 0 || !json_is_array(fields)) return;
    size_t i;
    json_t *f;
    json_array_foreach(fields, i, f)
    {
        json_t *t = json_object_get(f, "type");
        const char *ts = json_string_value(t);
        if (ts && strcmp(ts, "int") == 0 && rnd(3) == 0)
            json_object_set_new(f, "type", json_string(rnd(2) ? "long" : "double"));
        else if (ts && (strcmp(ts, "long") == 0 || strcmp(ts, "float") == 0) && rnd(3) == 0)
            json_object_set_new(f, "type", json_string("double"));
        else
            mutate(t, added);
    }
    if (rnd(3) == 0) { /* drop a primitive-typed field */
        size_t n = json_array_size(fields);
        for (size_t k = 0; k < n; k++) {
            const char *ts = json_string_value(json_object_get(json_array_get(fields, k), "type"));
            if (ts && (strcmp(ts, "int") == 0 || strcmp(ts, "string") == 0 ||
                       strcmp(ts, "double") == 0 || strcmp(ts, "boolean") == 0)) {
                json_array_remove(fields, k);
                break;
            }
        }
    }
    if (rnd(3) == 0) { /* a new field the writer never wrote */
        char name[32];
        snprintf(name, sizeof(name), "added%d", (*added)++);
        json_t *nf =
            rnd(2)
                ? json_pack("{s:s, s:s, s:s}", "name", name, "type", "string", "default", "zz")
                : json_pack("{s:s, s:[s,s], s:n}", "name", name, "type", "null", "long", "default");
        json_array_insert_new(fields, rnd((unsigned)json_array_size(fields) + 1), nf);
    }
}

/* Evolves a schema any way, compatible or not: the changes of mutate plus
 * narrowed and changed field types, required fields added, enum symbols
 * removed, fixed sizes changed. For comparing compatibility verdicts. */
static void mutate_any(json_t *j, int *added)
{
    if (json_is_array(j)) {
        size_t i;
        json_t *e;
        json_array_foreach(j, i, e) mutate_any(e, added);
        return;
    }
    if (!json_is_object(j)) return;
    json_t *items = json_object_get(j, "items"), *values = json_object_get(j, "values");
    if (items) mutate_any(items, added);
    if (values) mutate_any(values, added);
    const char *type = json_string_value(json_object_get(j, "type"));
    if (!type) return;
    if (strcmp(type, "enum") == 0 && rnd(3) == 0) {
        json_t *syms = json_object_get(j, "symbols");
        const char *def = json_string_value(json_object_get(j, "default"));
        size_t n = json_array_size(syms);
        const char *last = n ? json_string_value(json_array_get(syms, n - 1)) : NULL;
        if (n >= 2 && (!def || strcmp(def, last) != 0)) json_array_remove(syms, n - 1);
        return;
    }
    if (strcmp(type, "fixed") == 0 && rnd(4) == 0) {
        json_object_set_new(j, "size",
                            json_integer(json_integer_value(json_object_get(j, "size")) + 1));
        return;
    }
    json_t *fields = json_object_get(j, "fields");
    if (strcmp(type, "record") != 0 || !json_is_array(fields)) return;
    size_t i;
    json_t *f;
    json_array_foreach(fields, i, f)
    {
        json_t *t = json_object_get(f, "type");
        const char *ts = json_string_value(t);
        unsigned k = rnd(8);
        if (ts && strcmp(ts, "int") == 0 && k == 0)
            json_object_set_new(f, "type", json_string("long"));
        else if (ts && strcmp(ts, "long") == 0 && k == 0)
            json_object_set_new(f, "type", json_string("int"));
        else if (ts && strcmp(ts, "double") == 0 && k == 0)
            json_object_set_new(f, "type", json_string("float"));
        else if (ts && strcmp(ts, "string") == 0 && k == 0)
            json_object_set_new(f, "type", json_string(rnd(2) ? "bytes" : "int"));
        else
            mutate_any(t, added);
    }
    if (rnd(4) == 0) { /* drop a primitive-typed field */
        size_t n = json_array_size(fields);
        for (size_t k = 0; k < n; k++) {
            const char *ts = json_string_value(json_object_get(json_array_get(fields, k), "type"));
            if (ts && (strcmp(ts, "int") == 0 || strcmp(ts, "string") == 0 ||
                       strcmp(ts, "long") == 0 || strcmp(ts, "boolean") == 0)) {
                json_array_remove(fields, k);
                break;
            }
        }
    }
    if (rnd(4) == 0) { /* a new field, required or defaulted */
        char name[32];
        snprintf(name, sizeof(name), "added%d", (*added)++);
        json_t *nf = rnd(2)
                         ? json_pack("{s:s, s:s}", "name", name, "type", "int")
                         : json_pack("{s:s, s:s, s:i}", "name", name, "type", "int", "default", 1);
        json_array_insert_new(fields, rnd((unsigned)json_array_size(fields) + 1), nf);
    }
}

/* Our compatibility verdicts between the writer schema and an arbitrarily
 * evolved one, both ways, for python3-avro's checker to confirm: writes
 * c.compat.avsc and c.compat.txt ("<evolved reads original> <original reads
 * evolved>", 1 = compatible). */
static int compat_cases, compat_incompatible;
static void compat_case(int c, const char *dir, const dm_avro_schema_t *orig, const dm_buf_t *json)
{
    json_t *j = json_loadb((const char *)json->data, json->len, 0, NULL);
    if (!j) return;
    int added = 0;
    mutate_any(j, &added);
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    dm_avro_schema_t *m;
    if (!text || dm_avro_schema_parse(text, strlen(text), &m, NULL)) {
        free(text); /* e.g. a default no longer valid: not a case */
        return;
    }
    bool fwd = dm_schema_can_read(m->root, orig->root, NULL, NULL);
    bool bwd = dm_schema_can_read(orig->root, m->root, NULL, NULL);
    compat_cases++;
    compat_incompatible += !fwd || !bwd;
    char path[512];
    snprintf(path, sizeof(path), "%s/c%d.compat.avsc", dir, c);
    FILE *f = fopen(path, "wb");
    fputs(text, f);
    fclose(f);
    snprintf(path, sizeof(path), "%s/c%d.compat.txt", dir, c);
    f = fopen(path, "wb");
    fprintf(f, "%d %d\n", fwd, bwd);
    fclose(f);
    free(text);
    dm_avro_schema_free(m);
}

/* Decodes the case's records with (writer, reader) and re-encodes them with
 * reader into out (4-byte length + bytes each); writes the reader schema's
 * JSON to *reader_json (malloc'd). False when the resolution fails. */
static bool resolve_case(int c, const dm_avro_schema_t *w, const dm_buf_t *json,
                         const dm_buf_t *bins, const size_t *offs, int n, char **reader_json,
                         dm_buf_t *out)
{
    json_t *j = json_loadb((const char *)json->data, json->len, 0, NULL);
    if (!j) return false;
    int added = 0;
    char *before = json_dumps(j, JSON_COMPACT);
    mutate(j, &added);
    *reader_json = json_dumps(j, JSON_COMPACT);
    if (before && *reader_json && strcmp(before, *reader_json) != 0) evolved++;
    free(before);
    json_decref(j);
    dm_avro_schema_t *r;
    dm_error_t err = {0};
    if (dm_avro_schema_parse(*reader_json, strlen(*reader_json), &r, &err)) {
        failf(c, "evolved reader schema does not parse: %s\n    %s", err.message, *reader_json);
        return false;
    }
    dm_avro_codec_t *codec = NULL;
    bool ok = true;
    if (dm_avro_codec_new(w, r, NULL, 0, &codec, &err)) {
        failf(c, "cannot resolve writer to evolved reader: %s\n    %s", err.message, *reader_json);
        ok = false;
    }
    dm_arena_t a;
    dm_arena_init(&a, 0);
    for (int i = 0; ok && i < n; i++) {
        dm_avro_value_t v;
        size_t used;
        uint32_t len = 0;
        size_t at = out->len;
        dm_buf_append(out, &len, 4);
        if (dm_avro_decode(codec, bins->data + offs[i], offs[i + 1] - offs[i], &used, &a, &v,
                           &err) ||
            dm_avro_encode(r->root, &v, out, &err)) {
            failf(c, "resolved decode failed: %s", err.message);
            ok = false;
            break;
        }
        len = (uint32_t)(out->len - at - 4);
        memcpy(out->data + at, &len, 4);
    }
    dm_arena_destroy(&a);
    dm_avro_codec_free(codec);
    dm_avro_schema_free(r);
    return ok;
}

/* ---- the run -------------------------------------------------------------------------- */

static bool read_file(const char *path, dm_buf_t *out)
{
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    char chunk[8192];
    size_t got;
    while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0)
        dm_buf_append(out, chunk, got);
    fclose(f);
    return true;
}

int main(int argc, char **argv)
{
    const char *seed_env = getenv("DM_ORACLE_SEED"), *cases_env = getenv("DM_ORACLE_CASES");
    uint64_t seed = seed_env ? strtoull(seed_env, NULL, 0) : (uint64_t)time(NULL) * 2654435761u;
    int cases = cases_env ? atoi(cases_env) : 1000;
    const char *src = getenv("DM_SOURCE_DIR");
    char script[1024];
    snprintf(script, sizeof(script), "%s/tests/oracle/avro_oracle.py",
             argc > 1 ? argv[1]
             : src    ? src
                      : ".");
    printf("avro oracle: seed=%llu cases=%d (replay with DM_ORACLE_SEED=%llu)\n",
           (unsigned long long)seed, cases, (unsigned long long)seed);
    char dir[] = "/tmp/dm-avro-oracle-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    int avroc_ok = 0, containers_ok = 0;
    for (int c = 0; c < cases; c++) {
        rng = seed ^ (0x9E3779B97F4A7C15ull * (uint64_t)(c + 1));
        if (!rng) rng = 1;
        dm_buf_t json = DM_BUF_INIT;
        gen_schema(&json);
        dm_avro_schema_t *s;
        dm_error_t err = {0};
        if (dm_avro_schema_parse((const char *)json.data, json.len, &s, &err)) {
            failf(c, "we reject our own random schema: %s\n    %.*s", err.message, (int)json.len,
                  json.data);
            dm_buf_free(&json);
            continue;
        }
        dm_avro_codec_t *codec;
        dm_avro_codec_new(s, NULL, NULL, 0, &codec, &err);
        dm_arena_t a;
        dm_arena_init(&a, 0);
        dm_buf_t bins = DM_BUF_INIT;
        size_t offs[VALUES_PER_CASE + 1];
        dm_avro_value_t vals[VALUES_PER_CASE];
        for (int i = 0; i < VALUES_PER_CASE; i++) {
            offs[i] = bins.len;
            gen_value(s->root, &vals[i], &a, 0);
            if (dm_avro_encode(s->root, &vals[i], &bins, &err))
                failf(c, "we cannot encode our own value: %s", err.message);
        }
        offs[VALUES_PER_CASE] = bins.len;

        avro_schema_t as;
        bool ok = true;
        if (avro_schema_from_json_length((const char *)json.data, json.len, &as)) {
            failf(c, "avro-c rejects the schema: %s\n    %.*s", avro_strerror(), (int)json.len,
                  json.data);
            ok = false;
        } else {
            avro_value_iface_t *iface = avro_generic_class_from_schema(as);
            for (int i = 0; i < VALUES_PER_CASE && ok; i++)
                ok = avroc_round_trip(c, iface, codec, s->root, &vals[i], bins.data + offs[i],
                                      offs[i + 1] - offs[i]) &&
                     json_case(c, iface, s->root, &vals[i], bins.data + offs[i],
                               offs[i + 1] - offs[i]);
            if (ok) avroc_ok++;
            if (ok && c % 10 == 0) {
                if (avroc_containers(c, dir, as, iface, s, &bins, offs, VALUES_PER_CASE))
                    containers_ok++;
                else
                    ok = false;
            }
            if (!ok) printf("    schema: %.*s\n", (int)json.len, json.data);
            avro_value_iface_decref(iface);
            avro_schema_decref(as);
        }

        /* resolution: our reading of the records with an evolved reader
         * schema, for python to compare with its own */
        char path[512];
        char *reader_json = NULL;
        dm_buf_t resolved = DM_BUF_INIT;
        if (resolve_case(c, s, &json, &bins, offs, VALUES_PER_CASE, &reader_json, &resolved)) {
            snprintf(path, sizeof(path), "%s/c%d.reader.avsc", dir, c);
            FILE *rf = fopen(path, "wb");
            fputs(reader_json, rf);
            fclose(rf);
            snprintf(path, sizeof(path), "%s/c%d.resolved.bin", dir, c);
            rf = fopen(path, "wb");
            fwrite(resolved.data, 1, resolved.len, rf);
            fclose(rf);
        } else {
            ok = false;
        }
        free(reader_json);
        dm_buf_free(&resolved);

        compat_case(c, dir, s, &json);

        /* for python: the schema, the records, and our container file */
        snprintf(path, sizeof(path), "%s/c%d.avsc", dir, c);
        FILE *f = fopen(path, "wb");
        fwrite(json.data, 1, json.len, f);
        fclose(f);
        snprintf(path, sizeof(path), "%s/c%d.bin", dir, c);
        f = fopen(path, "wb");
        for (int i = 0; i < VALUES_PER_CASE; i++) {
            uint32_t len = (uint32_t)(offs[i + 1] - offs[i]);
            fwrite(&len, 4, 1, f);
            fwrite(bins.data + offs[i], 1, len, f);
        }
        fclose(f);
        snprintf(path, sizeof(path), "%s/c%d.py-in.avro", dir, c);
        f = fopen(path, "wb");
        dm_avro_file_writer_t *w;
        dm_avro_file_writer_new(f, s, c % 2 ? DM_AVRO_FILE_DEFLATE : DM_AVRO_FILE_NULL, 0, &w,
                                &err);
        for (int i = 0; i < VALUES_PER_CASE; i++)
            dm_avro_file_writer_append(w, &vals[i], &err);
        dm_avro_file_writer_close(w, &err);
        fclose(f);
        if (ok) passed++;
        dm_buf_free(&bins);
        dm_arena_destroy(&a);
        dm_avro_codec_free(codec);
        dm_avro_schema_free(s);
        dm_buf_free(&json);
    }
    printf("avro-c: %d/%d cases identical, %d container round trips\n", avroc_ok, cases,
           containers_ok);
    printf("json: %d values through JSON both ways (ours and avro-c's text), %d texts read by "
           "both readers (%d refused by both)\n",
           json_checked, json_variants, json_rejected);
    printf("resolution: %d cases read with an evolved reader schema (compared by python3-avro)\n",
           evolved);
    printf("compatibility: %d evolved schemas (%d incompatible one way or both), verdicts "
           "compared with python3-avro's checker\n",
           compat_cases, compat_incompatible);

    /* python3-avro over the whole directory */
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "/usr/bin/python3 %s %s %d", script, dir, cases);
    fflush(stdout);
    int st = system(cmd);
    if (st != 0) {
        printf("FAIL python3-avro oracle (exit %d)\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        failed++;
    } else {
        /* the containers python wrote: every record must be ours, byte for byte */
        int py_ok = 0;
        for (int c = 0; c < cases; c++) {
            char path[512];
            snprintf(path, sizeof(path), "%s/c%d.py-out.avro", dir, c);
            dm_buf_t data = DM_BUF_INIT, bins = DM_BUF_INIT;
            snprintf(path, sizeof(path), "%s/c%d.py-out.avro", dir, c);
            bool have_file = read_file(path, &data);
            snprintf(path, sizeof(path), "%s/c%d.bin", dir, c);
            read_file(path, &bins);
            dm_avro_file_reader_t *r = NULL;
            dm_error_t err = {0};
            bool ok = have_file && dm_avro_file_reader_new(data.data, data.len, &r, &err) == DM_OK;
            size_t pos = 0;
            for (int i = 0; ok && i <= VALUES_PER_CASE; i++) {
                const uint8_t *rec;
                size_t len;
                bool got;
                if (dm_avro_file_reader_next_raw(r, &rec, &len, &got, &err) ||
                    got != (i < VALUES_PER_CASE)) {
                    ok = false;
                } else if (got) {
                    uint32_t want;
                    memcpy(&want, bins.data + pos, 4);
                    ok = want == len && memcmp(bins.data + pos + 4, rec, len) == 0;
                    pos += 4 + want;
                }
            }
            if (ok)
                py_ok++;
            else
                failf(c, "python3-avro's container file does not read back as our records%s%s",
                      err.code ? ": " : "", err.code ? err.message : "");
            dm_avro_file_reader_free(r);
            dm_buf_free(&data);
            dm_buf_free(&bins);
        }
        printf("python3-avro containers read back: %d/%d\n", py_ok, cases);
    }
    if (!failed) {
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        if (system(cmd) != 0) printf("could not remove %s\n", dir);
    } else {
        printf("files kept in %s\n", dir);
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
