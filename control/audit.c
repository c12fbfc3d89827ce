/* control/audit.c — the audit log in an internal topic (control/audit.h). */
#include "control/audit.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define RETENTION_MS    (90LL * 24 * 3600 * 1000)
#define RETENTION_BYTES (1LL << 30)
#define FETCH_BYTES     (1 << 20)

struct dm_audit {
    dm_transport_t *t;
    pthread_mutex_t mu;
};

static json_t *entry_json(const dm_store_audit_t *e)
{
#define S(x) ((x) ? (x) : "")
    return json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:s, s:s}", "at_ms",
                     (json_int_t)e->at_ms, "token", S(e->token), "owner", S(e->owner), "role",
                     S(e->role), "remote", S(e->remote), "method", S(e->method), "path", S(e->path),
                     "detail", S(e->detail), "status", e->status, "outcome", S(e->outcome),
                     "reason", S(e->reason));
#undef S
}

static dm_err_t append_json(dm_audit_t *a, const json_t *entry, dm_error_t *err)
{
    char *text = json_dumps(entry, JSON_COMPACT);
    if (!text) return dm_error_set(err, DM_ERR_NOMEM, "audit: out of memory");
    const char *token = json_string_value(json_object_get(entry, "token"));
    dm_record_t r = {.key = (const uint8_t *)token,
                     .key_len = (int32_t)strlen(token),
                     .value = (const uint8_t *)text,
                     .value_len = (int32_t)strlen(text),
                     .timestamp = json_integer_value(json_object_get(entry, "at_ms"))};
    dm_err_t rc = dm_transport_produce(a->t, DM_AUDIT_TOPIC, 0, &r, 1, NULL, err);
    free(text);
    return rc;
}

dm_err_t dm_audit_move_from_store(dm_audit_t *a, dm_store_t *store, dm_error_t *err)
{
    json_t *old = NULL;
    pthread_mutex_lock(&a->mu);
    dm_err_t rc =
        dm_store_audit_query(store, &(dm_store_audit_filter_t){.limit = 100000}, &old, err);
    size_t i;
    json_t *e;
    json_array_foreach(rc ? NULL : old, i, e)
    {
        json_object_del(e, "seq");
        if ((rc = append_json(a, e, err))) break;
    }
    if (!rc && json_array_size(old)) rc = dm_store_audit_clear(store, err);
    pthread_mutex_unlock(&a->mu);
    json_decref(old);
    return rc;
}

dm_err_t dm_audit_open(dm_transport_t *t, dm_store_t *store, dm_audit_t **out, dm_error_t *err)
{
    *out = NULL;
    dm_audit_t *a = calloc(1, sizeof(*a));
    if (!a) return dm_error_set(err, DM_ERR_NOMEM, "audit: out of memory");
    a->t = t;
    pthread_mutex_init(&a->mu, NULL);
    dm_topic_description_t d;
    dm_error_t e = {0};
    dm_err_t rc = DM_OK;
    if (dm_transport_describe_topic(t, DM_AUDIT_TOPIC, &d, &e) == DM_OK) {
        dm_transport_description_free(&d);
    } else {
        dm_topic_config_t conf = {.name = DM_AUDIT_TOPIC,
                                  .partitions = 1,
                                  .retention_ms = RETENTION_MS,
                                  .retention_bytes = RETENTION_BYTES};
        rc = dm_transport_create_topic(t, &conf, &e);
        if (rc)
            dm_error_set(err, rc, "audit: cannot create topic %s: %s", DM_AUDIT_TOPIC, e.message);
        else if (store && (rc = dm_audit_move_from_store(a, store, &e)))
            dm_error_set(err, rc, "audit: moving the store's entries to topic %s: %s",
                         DM_AUDIT_TOPIC, e.message);
    }
    if (rc) {
        dm_audit_free(a);
        return rc;
    }
    *out = a;
    return DM_OK;
}

dm_err_t dm_audit_add(dm_audit_t *a, const dm_store_audit_t *e, dm_error_t *err)
{
    json_t *j = entry_json(e);
    if (!j) return dm_error_set(err, DM_ERR_NOMEM, "audit: out of memory");
    pthread_mutex_lock(&a->mu);
    dm_err_t rc = append_json(a, j, err);
    pthread_mutex_unlock(&a->mu);
    json_decref(j);
    return rc;
}

static bool matches(const json_t *e, const dm_store_audit_filter_t *f)
{
    if (f->since_ms && json_integer_value(json_object_get(e, "at_ms")) < f->since_ms) return false;
    const char *token = json_string_value(json_object_get(e, "token"));
    const char *owner = json_string_value(json_object_get(e, "owner"));
    const char *outcome = json_string_value(json_object_get(e, "outcome"));
    if (f->who && !((token && !strcmp(token, f->who)) || (owner && !strcmp(owner, f->who))))
        return false;
    return !f->outcome || (outcome && !strcmp(outcome, f->outcome));
}

dm_err_t dm_audit_query(dm_audit_t *a, const dm_store_audit_filter_t *f, json_t **out,
                        dm_error_t *err)
{
    *out = NULL;
    size_t limit = f->limit > 0 ? (size_t)f->limit : 100;
    json_t *found = json_array();
    int64_t offset = 0, start, end;
    dm_transport_batch_t b = {0};
    pthread_mutex_lock(&a->mu);
    dm_err_t rc = dm_transport_offsets(a->t, DM_AUDIT_TOPIC, 0, &start, &end, err);
    if (!rc && f->since_ms > 0)
        rc = dm_transport_offset_for_time(a->t, DM_AUDIT_TOPIC, 0, f->since_ms, &offset, err);
    if (offset < start) offset = start;
    while (!rc && offset < end) {
        if ((rc = dm_transport_fetch(a->t, DM_AUDIT_TOPIC, 0, offset, FETCH_BYTES, 0, &b, err)))
            break;
        if (!b.n) break;
        for (size_t i = 0; i < b.n; i++) {
            const dm_record_t *r = &b.records[i];
            offset = r->offset + 1;
            json_t *e = r->value_len > 0
                            ? json_loadb((const char *)r->value, (size_t)r->value_len, 0, NULL)
                            : NULL;
            if (!json_is_object(e) || !matches(e, f)) {
                json_decref(e);
                continue;
            }
            json_object_set_new(e, "seq", json_integer(r->offset));
            json_array_append_new(found, e);
            /* only the newest limit are answered: drop the oldest as newer come */
            if (json_array_size(found) > limit) json_array_remove(found, 0);
        }
        if (b.next_offset > offset) offset = b.next_offset;
    }
    dm_transport_batch_free(a->t, &b);
    pthread_mutex_unlock(&a->mu);
    if (rc) {
        json_decref(found);
        return rc;
    }
    *out = found;
    return DM_OK;
}

void dm_audit_free(dm_audit_t *a)
{
    if (!a) return;
    pthread_mutex_destroy(&a->mu);
    free(a);
}
