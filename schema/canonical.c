/* schema/canonical.c — Parsing Canonical Form and fingerprints.
 *
 * The canonical form keeps only what affects how bytes parse (type, name,
 * fields, symbols, items, values, size), in that order, with full names and
 * no whitespace; a named type is spelled out once and referred to by full
 * name after that. Fingerprints are taken over its UTF-8 bytes.
 */
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "schema/internal.h"

#define RABIN_EMPTY 0xc15d213aa4d7a795ULL

static uint64_t rabin_table[256];
static int rabin_ready;

static void rabin_init(void)
{
    for (int i = 0; i < 256; i++) {
        uint64_t fp = (uint64_t)i;
        for (int j = 0; j < 8; j++)
            fp = (fp >> 1) ^ (RABIN_EMPTY & (uint64_t)(-(int64_t)(fp & 1)));
        rabin_table[i] = fp;
    }
    __atomic_store_n(&rabin_ready, 1, __ATOMIC_RELEASE);
}

uint64_t dm_avro_rabin64(const void *data, size_t len)
{
    if (!__atomic_load_n(&rabin_ready, __ATOMIC_ACQUIRE)) rabin_init();
    const uint8_t *p = data;
    uint64_t fp = RABIN_EMPTY;
    for (size_t i = 0; i < len; i++)
        fp = (fp >> 8) ^ rabin_table[(fp ^ p[i]) & 0xff];
    return fp;
}

typedef struct cctx {
    dm_buf_t *out;
    const dm_avro_node_t **seen;
    size_t n_seen, cap_seen;
    dm_err_t rc;
} cctx_t;

static void put(cctx_t *c, const char *s)
{
    if (!c->rc) c->rc = dm_buf_append_str(c->out, s);
}

static void put_json_string(cctx_t *c, const char *s)
{
    put(c, "\"");
    for (; *s && !c->rc; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            char esc[3] = {'\\', (char)ch, 0};
            put(c, esc);
        } else if (ch < 0x20) {
            c->rc = dm_buf_printf(c->out, "\\u%04x", ch);
        } else {
            c->rc = dm_buf_append_u8(c->out, ch);
        }
    }
    put(c, "\"");
}

static bool seen(cctx_t *c, const dm_avro_node_t *n)
{
    for (size_t i = 0; i < c->n_seen; i++)
        if (c->seen[i] == n) return true;
    if (c->n_seen == c->cap_seen) {
        size_t cap = c->cap_seen ? c->cap_seen * 2 : 16;
        const dm_avro_node_t **s = realloc(c->seen, cap * sizeof(*s));
        if (!s) {
            c->rc = DM_ERR_NOMEM;
            return true;
        }
        c->seen = s;
        c->cap_seen = cap;
    }
    c->seen[c->n_seen++] = n;
    return false;
}

static void canon(cctx_t *c, const dm_avro_node_t *n)
{
    if (c->rc) return;
    switch (n->type) {
    case DM_AVRO_RECORD:
    case DM_AVRO_ENUM:
    case DM_AVRO_FIXED:
        if (seen(c, n)) {
            put_json_string(c, n->fullname);
            return;
        }
        put(c, "{\"name\":");
        put_json_string(c, n->fullname);
        put(c, ",\"type\":\"");
        put(c, dm_avro_type_name(n->type));
        put(c, "\"");
        if (n->type == DM_AVRO_RECORD) {
            put(c, ",\"fields\":[");
            for (uint32_t i = 0; i < n->n_fields; i++) {
                put(c, i ? ",{\"name\":" : "{\"name\":");
                put_json_string(c, n->fields[i].name);
                put(c, ",\"type\":");
                canon(c, n->fields[i].type);
                put(c, "}");
            }
            put(c, "]");
        } else if (n->type == DM_AVRO_ENUM) {
            put(c, ",\"symbols\":[");
            for (uint32_t i = 0; i < n->n_symbols; i++) {
                if (i) put(c, ",");
                put_json_string(c, n->symbols[i]);
            }
            put(c, "]");
        } else if (!c->rc) {
            c->rc = dm_buf_printf(c->out, ",\"size\":%u", n->size);
        }
        put(c, "}");
        return;
    case DM_AVRO_ARRAY:
    case DM_AVRO_MAP:
        put(c, n->type == DM_AVRO_ARRAY ? "{\"type\":\"array\",\"items\":"
                                        : "{\"type\":\"map\",\"values\":");
        canon(c, n->items);
        put(c, "}");
        return;
    case DM_AVRO_UNION:
        put(c, "[");
        for (uint32_t i = 0; i < n->n_branches; i++) {
            if (i) put(c, ",");
            canon(c, n->branches[i]);
        }
        put(c, "]");
        return;
    default:
        put(c, "\"");
        put(c, dm_avro_type_name(n->type));
        put(c, "\"");
        return;
    }
}

dm_err_t dm_avro_canonical(const dm_avro_node_t *node, dm_buf_t *out)
{
    cctx_t c = {.out = out};
    canon(&c, node);
    free(c.seen);
    return c.rc;
}

static int digest(const char *alg, const void *data, size_t len, uint8_t *out)
{
    unsigned int n = 0;
    return EVP_Digest(data, len, out, &n, EVP_get_digestbyname(alg), NULL) == 1 ? 0 : -1;
}

dm_err_t dm_avro_fingerprint(const dm_avro_node_t *node, dm_avro_fingerprints_t *out)
{
    dm_buf_t b = DM_BUF_INIT;
    dm_err_t rc = dm_avro_canonical(node, &b);
    if (!rc) {
        const void *data = b.data ? (const void *)b.data : "";
        out->rabin = dm_avro_rabin64(data, b.len);
        if (digest("MD5", data, b.len, out->md5) || digest("SHA256", data, b.len, out->sha256))
            rc = DM_ERR_INTERNAL;
    }
    dm_buf_free(&b);
    return rc;
}
