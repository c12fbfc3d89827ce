/* connectors/datagen/datagen.c — schema-driven synthetic values. */
#include "connectors/datagen/datagen.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "schema/dm_avro.h"

#define MAX_DEPTH 8

typedef struct gen gen_t;
struct gen {
    const dm_avro_node_t *node;
    /* hints */
    dm_avro_value_t *options;
    uint32_t n_options;
    bool has_range;
    double min, max;
    bool has_iter;
    double start, step;
    uint32_t len_min, len_max;
    bool sequence; /* key field: 0, 1, 2, … */
    gen_t **kids;  /* record fields, union branches, array/map items */
    uint32_t n_kids;
};

struct dm_datagen {
    dm_arena_t arena; /* the plan and option values */
    gen_t *root;
    uint64_t state; /* xorshift64* */
    uint64_t count;
    int64_t keys;
};

static uint64_t rnd(dm_datagen_t *g)
{
    uint64_t x = g->state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    g->state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static double rnd01(dm_datagen_t *g)
{
    return (double)(rnd(g) >> 11) / 9007199254740992.0;
}

static bool in_list(const dm_strlist_t *l, const char *s)
{
    for (size_t i = 0; l && i < l->n; i++)
        if (!strcmp(l->items[i], s)) return true;
    return false;
}

static dm_err_t hints(dm_datagen_t *g, gen_t *x, const json_t *props, const char *field,
                      dm_error_t *err)
{
    if (!props) return DM_OK;
    if (!json_is_object(props))
        return dm_error_set(err, DM_ERR_CONFIG, "field %s: arg.properties must be an object",
                            field);
    const json_t *options = json_object_get(props, "options");
    if (options) {
        if (!json_is_array(options) || !json_array_size(options))
            return dm_error_set(err, DM_ERR_CONFIG,
                                "field %s: arg.properties.options must be a non-empty list", field);
        x->n_options = (uint32_t)json_array_size(options);
        x->options = dm_arena_calloc(&g->arena, x->n_options, sizeof(*x->options));
        for (uint32_t i = 0; i < x->n_options; i++) {
            char *text = json_dumps(json_array_get(options, i), JSON_ENCODE_ANY);
            dm_err_t rc = dm_avro_from_json_text(x->node, text, strlen(text), DM_AVRO_JSON_PLAIN,
                                                 &g->arena, &x->options[i], err);
            free(text);
            if (rc) return dm_error_prefix(err, "field %s: arg.properties.options[%u]", field, i);
        }
    }
    const json_t *range = json_object_get(props, "range");
    if (range) {
        const json_t *mn = json_object_get(range, "min"), *mx = json_object_get(range, "max");
        if (!json_is_number(mn) || !json_is_number(mx) ||
            json_number_value(mn) > json_number_value(mx))
            return dm_error_set(err, DM_ERR_CONFIG,
                                "field %s: arg.properties.range needs numbers min <= max", field);
        x->has_range = true;
        x->min = json_number_value(mn);
        x->max = json_number_value(mx);
    }
    const json_t *iter = json_object_get(props, "iteration");
    if (iter) {
        const json_t *st = json_object_get(iter, "start"), *sp = json_object_get(iter, "step");
        if (!json_is_number(st))
            return dm_error_set(err, DM_ERR_CONFIG,
                                "field %s: arg.properties.iteration needs a start number", field);
        x->has_iter = true;
        x->start = json_number_value(st);
        x->step = json_is_number(sp) ? json_number_value(sp) : 1;
    }
    const json_t *len = json_object_get(props, "length");
    if (len) {
        const json_t *mn = json_object_get(len, "min"), *mx = json_object_get(len, "max");
        if (!json_is_integer(mn) || !json_is_integer(mx) || json_integer_value(mn) < 0 ||
            json_integer_value(mn) > json_integer_value(mx) || json_integer_value(mx) > 65536)
            return dm_error_set(err, DM_ERR_CONFIG,
                                "field %s: arg.properties.length needs integers 0 <= min <= max",
                                field);
        x->len_min = (uint32_t)json_integer_value(mn);
        x->len_max = (uint32_t)json_integer_value(mx);
    }
    return DM_OK;
}

/* json: the node's JSON in the schema document (for field hints), may be NULL. */
static gen_t *compile(dm_datagen_t *g, const dm_avro_node_t *n, const json_t *json, int depth,
                      dm_error_t *err)
{
    gen_t *x = dm_arena_calloc(&g->arena, 1, sizeof(*x));
    if (!x) {
        dm_error_set(err, DM_ERR_NOMEM, "out of memory");
        return NULL;
    }
    x->node = n;
    x->len_min = 4;
    x->len_max = 10;
    if (depth > MAX_DEPTH) return x; /* recursion: generated as empty / null */
    switch (n->type) {
    case DM_AVRO_RECORD: {
        x->n_kids = n->n_fields;
        x->kids = dm_arena_calloc(&g->arena, n->n_fields ? n->n_fields : 1, sizeof(gen_t *));
        const json_t *jfields = json_is_object(json) ? json_object_get(json, "fields") : NULL;
        for (uint32_t i = 0; i < n->n_fields; i++) {
            const json_t *jf = json_array_get(jfields, i);
            x->kids[i] = compile(g, n->fields[i].type, jf ? json_object_get(jf, "type") : NULL,
                                 depth + 1, err);
            if (!x->kids[i]) return NULL;
            if (hints(g, x->kids[i], jf ? json_object_get(jf, "arg.properties") : NULL,
                      n->fields[i].name, err))
                return NULL;
        }
        break;
    }
    case DM_AVRO_UNION:
        x->n_kids = n->n_branches;
        x->kids = dm_arena_calloc(&g->arena, n->n_branches, sizeof(gen_t *));
        for (uint32_t i = 0; i < n->n_branches; i++)
            if (!(x->kids[i] = compile(g, n->branches[i], json_array_get(json, i), depth + 1, err)))
                return NULL;
        break;
    case DM_AVRO_ARRAY:
    case DM_AVRO_MAP:
        x->n_kids = 1;
        x->kids = dm_arena_calloc(&g->arena, 1, sizeof(gen_t *));
        x->kids[0] =
            compile(g, n->items,
                    json_is_object(json)
                        ? json_object_get(json, n->type == DM_AVRO_ARRAY ? "items" : "values")
                        : NULL,
                    depth + 1, err);
        if (!x->kids[0]) return NULL;
        break;
    default: break;
    }
    return x;
}

dm_err_t dm_datagen_new(const dm_avro_schema_t *schema, const dm_datagen_config_t *conf,
                        const dm_strlist_t *key_fields, dm_datagen_t **out, dm_error_t *err)
{
    *out = NULL;
    if (schema->root->type != DM_AVRO_RECORD)
        return dm_error_set(err, DM_ERR_CONFIG, "datagen needs a record schema");
    dm_datagen_t *g = calloc(1, sizeof(*g));
    if (!g) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    dm_arena_init(&g->arena, 16384);
    g->state = (uint64_t)conf->seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;
    if (!g->state) g->state = 1;
    g->keys = conf->keys;
    json_t *doc = json_loads(schema->json, 0, NULL);
    g->root = compile(g, schema->root, doc, 0, err);
    json_decref(doc);
    if (!g->root) {
        dm_datagen_free(g);
        return err ? err->code : DM_ERR_CONFIG;
    }
    /* Key fields (or "id") count up unless a hint says otherwise. */
    for (uint32_t i = 0; i < schema->root->n_fields; i++) {
        gen_t *f = g->root->kids[i];
        const char *name = schema->root->fields[i].name;
        bool key = key_fields && key_fields->n ? in_list(key_fields, name) : !strcmp(name, "id");
        if (key && !f->n_options && !f->has_range && !f->has_iter) f->sequence = true;
    }
    *out = g;
    return DM_OK;
}

static void random_word(dm_datagen_t *g, const gen_t *x, dm_arena_t *a, dm_avro_value_t *v)
{
    static const char letters[] = "abcdefghijklmnopqrstuvwxyz";
    uint32_t len = x->len_min + (uint32_t)(rnd(g) % (x->len_max - x->len_min + 1));
    char *s = dm_arena_alloc(a, len ? len : 1);
    for (uint32_t i = 0; i < len; i++)
        s[i] = letters[rnd(g) % 26];
    v->u.p = (const uint8_t *)s;
    v->len = len;
}

static int64_t pick_number(dm_datagen_t *g, const gen_t *x, int64_t seq)
{
    if (x->has_iter) return (int64_t)(x->start + x->step * (double)seq);
    if (x->sequence) return g->keys > 0 ? seq % g->keys : seq;
    if (x->has_range)
        return (int64_t)x->min +
               (int64_t)(rnd(g) % (uint64_t)((int64_t)x->max - (int64_t)x->min + 1));
    return (int64_t)(rnd(g) % 1000);
}

static dm_err_t gen(dm_datagen_t *g, const gen_t *x, int64_t seq, dm_arena_t *a, dm_avro_value_t *v,
                    dm_error_t *err)
{
    const dm_avro_node_t *n = x->node;
    memset(v, 0, sizeof(*v));
    if (x->n_options) {
        *v = x->options[rnd(g) % x->n_options];
        return DM_OK;
    }
    v->type = (uint8_t)n->type;
    switch (n->type) {
    case DM_AVRO_NULL: return DM_OK;
    case DM_AVRO_BOOLEAN: v->u.b = rnd(g) & 1; return DM_OK;
    case DM_AVRO_INT:
    case DM_AVRO_LONG: {
        int64_t val;
        if (n->logical == DM_AVRO_LT_TIMESTAMP_MILLIS ||
            n->logical == DM_AVRO_LT_LOCAL_TIMESTAMP_MILLIS)
            val = x->has_iter ? pick_number(g, x, seq) : dm_wall_ms();
        else if (n->logical == DM_AVRO_LT_TIMESTAMP_MICROS ||
                 n->logical == DM_AVRO_LT_LOCAL_TIMESTAMP_MICROS)
            val = x->has_iter ? pick_number(g, x, seq) : dm_wall_us();
        else if (n->logical == DM_AVRO_LT_DATE)
            val = x->has_iter || x->has_range ? pick_number(g, x, seq) : dm_wall_ms() / 86400000;
        else
            val = pick_number(g, x, seq);
        if (n->type == DM_AVRO_INT)
            v->u.i = (int32_t)val;
        else
            v->u.l = val;
        return DM_OK;
    }
    case DM_AVRO_FLOAT:
    case DM_AVRO_DOUBLE: {
        double d;
        if (x->has_iter)
            d = x->start + x->step * (double)seq;
        else if (x->has_range)
            d = x->min + rnd01(g) * (x->max - x->min);
        else
            d = round(rnd01(g) * 100000) / 100;
        if (n->type == DM_AVRO_FLOAT)
            v->u.f = (float)d;
        else
            v->u.d = d;
        return DM_OK;
    }
    case DM_AVRO_STRING:
        if (n->logical == DM_AVRO_LT_UUID) {
            char *s = dm_arena_alloc(a, 37);
            uint64_t h = rnd(g), l = rnd(g);
            snprintf(s, 37, "%08x-%04x-4%03x-%04x-%012llx", (unsigned)(h >> 32),
                     (unsigned)(h >> 16) & 0xffff, (unsigned)h & 0xfff,
                     (unsigned)((l >> 48) & 0x3fff) | 0x8000,
                     (unsigned long long)(l & 0xffffffffffffull));
            v->u.p = (const uint8_t *)s;
            v->len = 36;
        } else if (x->sequence || x->has_iter) {
            char *s = dm_arena_printf(a, "%lld", (long long)pick_number(g, x, seq));
            v->u.p = (const uint8_t *)s;
            v->len = (uint32_t)strlen(s);
        } else {
            random_word(g, x, a, v);
        }
        return DM_OK;
    case DM_AVRO_BYTES:
    case DM_AVRO_FIXED: {
        uint32_t len = n->type == DM_AVRO_FIXED ? n->size : 8;
        uint8_t *b = dm_arena_alloc(a, len ? len : 1);
        for (uint32_t i = 0; i < len; i++)
            b[i] = (uint8_t)rnd(g);
        if (n->logical == DM_AVRO_LT_DECIMAL && len) b[0] &= 0x3f; /* keep it positive */
        v->u.p = b;
        v->len = len;
        return DM_OK;
    }
    case DM_AVRO_ENUM: v->u.i = (int32_t)(rnd(g) % n->n_symbols); return DM_OK;
    case DM_AVRO_RECORD: {
        v->len = x->n_kids;
        v->u.v = dm_arena_calloc(a, x->n_kids ? x->n_kids : 1, sizeof(dm_avro_value_t));
        for (uint32_t i = 0; i < x->n_kids; i++) {
            dm_err_t rc = gen(g, x->kids[i], seq, a, &v->u.v[i], err);
            if (rc) return rc;
        }
        return DM_OK;
    }
    case DM_AVRO_ARRAY:
    case DM_AVRO_MAP: {
        uint32_t len = x->kids ? (uint32_t)(rnd(g) % 4) : 0;
        uint32_t slots = n->type == DM_AVRO_MAP ? len * 2 : len;
        v->len = len;
        v->u.v = dm_arena_calloc(a, slots ? slots : 1, sizeof(dm_avro_value_t));
        for (uint32_t i = 0; i < len; i++) {
            dm_avro_value_t *item = &v->u.v[n->type == DM_AVRO_MAP ? 2 * i + 1 : i];
            if (n->type == DM_AVRO_MAP) {
                char *k = dm_arena_printf(a, "k%u", i);
                v->u.v[2 * i] = (dm_avro_value_t){
                    .type = DM_AVRO_STRING, .len = (uint32_t)strlen(k), .u.p = (const uint8_t *)k};
            }
            dm_err_t rc = gen(g, x->kids[0], seq, a, item, err);
            if (rc) return rc;
        }
        return DM_OK;
    }
    case DM_AVRO_UNION: {
        int null_branch = -1, other = -1;
        for (uint32_t i = 0; i < n->n_branches; i++) {
            if (n->branches[i]->type == DM_AVRO_NULL)
                null_branch = (int)i;
            else if (other < 0)
                other = (int)i;
        }
        uint32_t b;
        if (!x->kids)
            b = null_branch >= 0 ? (uint32_t)null_branch : 0; /* too deep */
        else if (null_branch >= 0 && other >= 0)
            b = rnd(g) % 10 == 0 ? (uint32_t)null_branch : (uint32_t)other;
        else
            b = (uint32_t)(rnd(g) % n->n_branches);
        if (!x->kids) {
            v->type = DM_AVRO_NULL;
            v->branch = (uint16_t)b;
            return DM_OK;
        }
        dm_err_t rc = gen(g, x->kids[b], seq, a, v, err);
        v->branch = (uint16_t)b;
        return rc;
    }
    default: break;
    }
    return dm_error_set(err, DM_ERR_UNSUPPORTED, "datagen: cannot generate %s",
                        dm_avro_type_name(n->type));
}

dm_err_t dm_datagen_next(dm_datagen_t *g, dm_arena_t *arena, dm_avro_value_t *out, dm_error_t *err)
{
    return gen(g, g->root, (int64_t)g->count++, arena, out, err);
}

uint64_t dm_datagen_count(const dm_datagen_t *g)
{
    return g->count;
}

void dm_datagen_free(dm_datagen_t *g)
{
    if (!g) return;
    dm_arena_destroy(&g->arena);
    free(g);
}
