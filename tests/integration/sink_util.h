/* tests/integration/sink_util.h — what the sink tests share: a topic in a
 * private embedded log, records produced from JSON through an Avro schema, a
 * sink runner on a thread, a schema lookup by id. */
#ifndef DM_TESTS_SINK_UTIL_H
#define DM_TESTS_SINK_UTIL_H

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "connectors/sink.h"
#include "connectors/unit.h"
#include "core/clock.h"
#include "schema/dm_avro.h"
#include "schema/wire.h"
#include "transport/transport.h"

#define SU_MAX_SCHEMAS 8

typedef struct su_schemas {
    dm_avro_schema_t *s[SU_MAX_SCHEMAS];
    uint32_t id[SU_MAX_SCHEMAS];
    int n;
} su_schemas_t;

static const dm_avro_schema_t *su_lookup(void *ctx, uint32_t id)
{
    su_schemas_t *r = ctx;
    for (int i = 0; i < r->n; i++)
        if (r->id[i] == id) return r->s[i];
    return NULL;
}

/* Parses text as schema id; exits on a bad schema (a bug in the test). */
static dm_avro_schema_t *su_schema(su_schemas_t *r, uint32_t id, const char *text)
{
    dm_error_t err = {0};
    dm_avro_schema_t *s = NULL;
    if (dm_avro_schema_parse(text, strlen(text), &s, &err)) {
        fprintf(stderr, "bad test schema: %s\n", err.message);
        exit(2);
    }
    r->s[r->n] = s;
    r->id[r->n++] = id;
    return s;
}

static void su_schemas_free(su_schemas_t *r)
{
    for (int i = 0; i < r->n; i++)
        dm_avro_schema_free(r->s[i]);
    r->n = 0;
}

/* Encodes JSON (plain mode) as wire-format bytes of schema id into out. */
static int su_encode(const dm_avro_schema_t *s, uint32_t id, const char *json, dm_buf_t *out)
{
    dm_arena_t a;
    dm_arena_init(&a, 0);
    dm_avro_value_t v;
    dm_error_t err = {0};
    int rc = dm_avro_from_json_text(s->root, json, strlen(json), DM_AVRO_JSON_PLAIN, &a, &v, &err);
    if (!rc) rc = dm_wire_put_header(out, id);
    if (!rc) rc = dm_avro_encode(s->root, &v, out, &err);
    if (rc) fprintf(stderr, "cannot encode %s: %s\n", json, err.message);
    dm_arena_destroy(&a);
    return rc;
}

/* Produces one record: key JSON (may be NULL) and value JSON (NULL = tombstone). */
static int su_produce(dm_transport_t *t, const char *topic, int32_t partition,
                      const dm_avro_schema_t *ks, uint32_t kid, const char *key,
                      const dm_avro_schema_t *vs, uint32_t vid, const char *value)
{
    dm_buf_t kb = DM_BUF_INIT, vb = DM_BUF_INIT;
    int rc = 0;
    if (key) rc = su_encode(ks, kid, key, &kb);
    if (!rc && value) rc = su_encode(vs, vid, value, &vb);
    dm_record_t r = {.key = kb.data,
                     .key_len = key ? (int32_t)kb.len : -1,
                     .value = vb.data,
                     .value_len = value ? (int32_t)vb.len : -1};
    dm_error_t err = {0};
    if (!rc && dm_transport_produce(t, topic, partition, &r, 1, NULL, &err)) {
        fprintf(stderr, "produce: %s\n", err.message);
        rc = -1;
    }
    dm_buf_free(&kb);
    dm_buf_free(&vb);
    return rc;
}

typedef struct su_runner {
    dm_sink_run_config_t c;
    dm_unit_status_t st;
    pthread_t th;
} su_runner_t;

static void *su_main(void *arg)
{
    su_runner_t *r = arg;
    dm_sink_run(&r->c, &r->st);
    return NULL;
}

static void su_start(su_runner_t *r)
{
    dm_unit_init(&r->st);
    pthread_create(&r->th, NULL, su_main, r);
}

/* Waits until the runner has written n records (true) or ms passed. */
static int su_wait_position(su_runner_t *r, int64_t n, int64_t ms)
{
    int64_t until = dm_wall_ms() + ms;
    while (dm_wall_ms() < until) {
        if (atomic_load(&r->st.position) >= n) return 1;
        dm_sleep_ms(10);
    }
    return 0;
}

static void su_stop(su_runner_t *r)
{
    atomic_store(&r->st.stop, true);
    pthread_join(r->th, NULL);
    dm_unit_destroy(&r->st);
}

/* A fresh directory under TMPDIR. */
static char *su_tmpdir(const char *prefix)
{
    char *d = malloc(512);
    snprintf(d, 512, "%s/%s.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", prefix);
    return mkdtemp(d);
}

#endif
