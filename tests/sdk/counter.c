/* tests/sdk/counter.c — a stateful SDK processor for the tests: adds a field
 * `n`, how many records with the same value of the `key` field it has seen
 * (kept in the host's keyed state, so exactly-once shows as 1, 2, 3, … per
 * key across crashes), sends records whose `amount` field is below `min` to
 * the dead letters, and counts what it did in a metric.
 *
 * Settings: {"key": FIELD (required, string or long), "min": NUMBER}. */
#include <datamesh/processor.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct counter {
    const dm_sdk_host_t *host;
    dm_sdk_ctx_t *ctx;
    int key;     /* index of the key field */
    int amount;  /* index of amount, -1 when none */
    int64_t min; /* amount below it: dead letter */
    bool has_min;
    uint32_t n_in;    /* input fields */
    char *out_schema; /* input fields + n */
} counter_t;

static void counter_close(void *self)
{
    counter_t *c = self;
    if (!c) return;
    free(c->out_schema);
    free(c);
}

static int counter_open(const dm_processor_open_args_t *a, dm_processor_opened_t *out, char *err,
                        size_t errlen)
{
    json_error_t je;
    json_t *conf = json_loads(a->config_json, 0, &je);
    json_t *schema = json_loads(a->input_schema_json, 0, &je);
    counter_t *c = calloc(1, sizeof(*c));
    int rc = -1;
    if (!conf || !schema || !c) {
        snprintf(err, errlen, "cannot read the settings or the schema");
        goto done;
    }
    const char *k;
    json_t *v;
    json_object_foreach(conf, k, v) if (strcmp(k, "key") && strcmp(k, "min"))
    {
        snprintf(err, errlen, "config.%s: unknown setting (settings: key, min)", k);
        goto done;
    }
    const char *key = json_string_value(json_object_get(conf, "key"));
    if (!key) {
        snprintf(err, errlen, "config.key: required: the field to count records by");
        goto done;
    }
    c->host = a->host;
    c->ctx = a->ctx;
    c->key = a->host->field_index(a->ctx, 0, key);
    if (c->key < 0) {
        snprintf(err, errlen, "config.key: the input has no field '%s'", key);
        goto done;
    }
    json_t *min = json_object_get(conf, "min");
    if (min && !json_is_integer(min)) {
        snprintf(err, errlen, "config.min: expected an integer");
        goto done;
    }
    c->has_min = min != NULL;
    c->min = json_integer_value(min);
    c->amount = a->host->field_index(a->ctx, 0, "amount");
    json_t *fields = json_object_get(schema, "fields");
    c->n_in = (uint32_t)json_array_size(fields);
    json_array_append_new(fields, json_pack("{s:s, s:s}", "name", "n", "type", "long"));
    c->out_schema = json_dumps(schema, JSON_COMPACT);
    out->self = c;
    out->output_schema_json = c->out_schema;
    c = NULL;
    rc = 0;
done:
    counter_close(c);
    json_decref(conf);
    json_decref(schema);
    return rc;
}

static int counter_process(void *self, dm_sdk_batch_t *b, char *err, size_t errlen)
{
    counter_t *c = self;
    const dm_sdk_host_t *h = c->host;
    uint32_t n = h->count(b);
    for (uint32_t i = 0; i < n; i++) {
        const dm_value_t *v = h->value(b, i);
        const dm_value_t *kv = &v->u.v[c->key];
        if (c->has_min && c->amount >= 0 && v->u.v[c->amount].type == DM_VALUE_LONG &&
            v->u.v[c->amount].u.l < c->min) {
            char why[96];
            snprintf(why, sizeof(why), "amount %lld is below min %lld",
                     (long long)v->u.v[c->amount].u.l, (long long)c->min);
            if (h->dead(b, i, why)) goto oom;
            h->counter_add(c->ctx, "rejected", 1);
            continue;
        }
        const void *key;
        size_t klen;
        if (kv->type == DM_VALUE_STRING) {
            key = kv->u.p;
            klen = kv->len;
        } else if (kv->type == DM_VALUE_LONG) {
            key = &kv->u.l;
            klen = sizeof(kv->u.l);
        } else {
            if (h->dead(b, i, "the key field is neither a string nor a long")) goto oom;
            continue;
        }
        const void *val;
        size_t vlen;
        int64_t count = 0;
        int found = h->state_get(c->ctx, key, klen, &val, &vlen);
        if (found < 0) goto state;
        if (found && vlen == sizeof(count)) memcpy(&count, val, sizeof(count));
        count++;
        if (h->state_put(c->ctx, key, klen, &count, sizeof(count))) goto state;
        dm_value_t *r = h->new_record(b);
        if (!r) goto oom;
        for (uint32_t f = 0; f < c->n_in; f++)
            r->u.v[f] = v->u.v[f];
        r->u.v[c->n_in].type = DM_VALUE_LONG;
        r->u.v[c->n_in].u.l = count;
        if (h->emit_value(b, i, r)) goto oom;
        h->counter_add(c->ctx, "counted", 1);
    }
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
    return -1;
state:
    snprintf(err, errlen, "keyed state failed");
    return -1;
}

DM_PROCESSOR_EXPORT const dm_processor_t dm_processor = {
    .abi_version = DM_PROCESSOR_ABI_VERSION,
    .size = sizeof(dm_processor_t),
    .name = "counter",
    .summary = "numbers the records of each key",
    .flags = DM_PROCESSOR_STATEFUL,
    .open = counter_open,
    .process = counter_process,
    .close = counter_close,
};
