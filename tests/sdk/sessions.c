/* tests/sdk/sessions.c — a stateful SDK processor with a timer, for the
 * tests: counts records per value of the string field `key` in keyed state
 * and, `gap` ms (default 300) after the first record of a round, emits one
 * record {user, n} per key and clears them. The counts live only in state,
 * so after a crash restore() re-arms the timer and the flush happens once:
 * summed over the output, every key's n equals its records in.
 *
 * Settings: {"key": FIELD (a string field), "gap": MS}. */
#include <datamesh/processor.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct sessions {
    const dm_sdk_host_t *h;
    dm_sdk_ctx_t *ctx;
    int key;
    int64_t gap;
    bool armed;
} sessions_t;

static const char *out_schema = "{\"type\":\"record\",\"name\":\"Session\",\"fields\":["
                                "{\"name\":\"user\",\"type\":\"string\"},"
                                "{\"name\":\"n\",\"type\":\"long\"}]}";

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int s_open(const dm_processor_open_args_t *a, dm_processor_opened_t *out, char *err,
                  size_t errlen)
{
    json_t *conf = json_loads(a->config_json, 0, NULL);
    const char *key = json_string_value(json_object_get(conf, "key"));
    json_t *gap = json_object_get(conf, "gap");
    int k = key ? a->host->field_index(a->ctx, 0, key) : -1;
    if (k < 0 || (gap && !json_is_integer(gap))) {
        snprintf(err, errlen,
                 k < 0 ? "config.key: a string field of the input is required"
                       : "config.gap: expected milliseconds");
        json_decref(conf);
        return -1;
    }
    sessions_t *s = calloc(1, sizeof(*s));
    if (!s) {
        json_decref(conf);
        return snprintf(err, errlen, "out of memory"), -1;
    }
    *s = (sessions_t){a->host, a->ctx, k, gap ? json_integer_value(gap) : 300, false};
    json_decref(conf);
    out->self = s;
    out->output_schema_json = out_schema;
    return 0;
}

static int s_process(void *self, dm_sdk_batch_t *b, char *err, size_t errlen)
{
    sessions_t *s = self;
    const dm_sdk_host_t *h = s->h;
    for (uint32_t i = 0, n = h->count(b); i < n; i++) {
        const dm_value_t *k = &h->value(b, i)->u.v[s->key];
        if (k->type != DM_VALUE_STRING) {
            if (h->dead(b, i, "the key is not a string")) goto fail;
            continue;
        }
        const void *val;
        size_t vlen;
        int64_t c = 0;
        int found = h->state_get(s->ctx, k->u.p, k->len, &val, &vlen);
        if (found < 0) goto fail;
        if (found && vlen == sizeof(c)) memcpy(&c, val, sizeof(c));
        c++;
        if (h->state_put(s->ctx, k->u.p, k->len, &c, sizeof(c))) goto fail;
        if (!s->armed) {
            h->timer_set(s->ctx, wall_ms() + s->gap);
            s->armed = true;
        }
    }
    return 0;
fail:
    snprintf(err, errlen, "keyed state failed");
    return -1;
}

typedef struct flush {
    sessions_t *s;
    dm_sdk_batch_t *b;
    char **keys;
    size_t *lens, n, cap;
    int failed;
} flush_t;

static int emit_one(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    flush_t *f = arg;
    const dm_sdk_host_t *h = f->s->h;
    dm_value_t *r = h->new_record(f->b);
    char *copy = h->alloc(f->b, klen + 1);
    int64_t n = 0;
    if (vlen == sizeof(n)) memcpy(&n, val, sizeof(n));
    if (f->n == f->cap) {
        f->cap = f->cap ? 2 * f->cap : 64;
        f->keys = realloc(f->keys, f->cap * sizeof(char *));
        f->lens = realloc(f->lens, f->cap * sizeof(size_t));
    }
    if (!r || !copy || !f->keys || !f->lens) return f->failed = 1;
    memcpy(copy, key, klen);
    f->keys[f->n] = copy;
    f->lens[f->n++] = klen;
    r->u.v[0] =
        (dm_value_t){.type = DM_VALUE_STRING, .len = (uint32_t)klen, .u.p = (uint8_t *)copy};
    r->u.v[1] = (dm_value_t){.type = DM_VALUE_LONG, .u.l = n};
    if (h->emit_value(f->b, UINT32_MAX, r)) return f->failed = 1;
    return 0;
}

static int s_timer(void *self, int64_t now, dm_sdk_batch_t *b, char *err, size_t errlen)
{
    sessions_t *s = self;
    flush_t f = {.s = s, .b = b};
    int rc = s->h->state_foreach(s->ctx, emit_one, &f);
    for (size_t i = 0; !rc && !f.failed && i < f.n; i++)
        rc = s->h->state_del(s->ctx, f.keys[i], f.lens[i]);
    free(f.keys);
    free(f.lens);
    s->armed = false;
    if (rc || f.failed) return snprintf(err, errlen, "flushing failed"), -1;
    return 0;
}

static int any(void *arg, const void *k, size_t kl, const void *v, size_t vl)
{
    *(bool *)arg = true;
    return 1;
}

static int s_restore(void *self, char *err, size_t errlen)
{
    sessions_t *s = self;
    bool pending = false;
    s->h->state_foreach(s->ctx, any, &pending);
    s->armed = pending;
    if (pending) s->h->timer_set(s->ctx, wall_ms() + s->gap);
    return 0;
}

static void s_close(void *self)
{
    free(self);
}

DM_PROCESSOR_EXPORT const dm_processor_t dm_processor = {
    .abi_version = DM_PROCESSOR_ABI_VERSION,
    .size = sizeof(dm_processor_t),
    .name = "sessions",
    .summary = "per-key counts flushed by a processing-time timer",
    .flags = DM_PROCESSOR_STATEFUL,
    .open = s_open,
    .process = s_process,
    .on_timer = s_timer,
    .restore = s_restore,
    .close = s_close,
};
