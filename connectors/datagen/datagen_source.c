/* connectors/datagen/datagen_source.c — the datagen connector's loop. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/datagen/datagen.h"
#include "connectors/emit.h"
#include "connectors/unit.h"
#include "core/clock.h"
#include "core/hash.h"
#include "core/log.h"
#include "schema/dm_avro.h"
#include "schema/wire.h"
#include "transport/transport.h"

#define TICK_MS 100

/* One batch of n events: generated, encoded, produced and committed with the
 * new sequence number. */
static dm_err_t produce_batch(const dm_datagen_source_t *src, dm_datagen_t *g, size_t n,
                              dm_arena_t *arena, dm_emit_t *emit, dm_error_t *err)
{
    dm_arena_reset(arena);
    dm_emit_clear(emit);
    int64_t now = dm_wall_ms();
    for (size_t i = 0; i < n; i++) {
        dm_avro_value_t v;
        dm_err_t rc = dm_datagen_next(g, arena, &v, err);
        if (!rc) rc = dm_emit_add(emit, &v, now, err);
        if (rc) return rc;
    }
    char gname[300];
    snprintf(gname, sizeof(gname), "connector.%s", src->topic);
    return dm_emit_commit(emit, gname, (int64_t)dm_datagen_count(g), err);
}

void dm_datagen_source_run(const dm_datagen_source_t *src, dm_unit_status_t *status)
{
    dm_error_t err = {0};
    dm_datagen_t *g = NULL;
    if (dm_datagen_new(src->schema, &src->conf, src->key_fields, &g, &err)) {
        dm_unit_set(status, DM_UNIT_FAILED, "%s", err.message);
        return;
    }
    dm_arena_t arena;
    dm_arena_init(&arena, 0);
    dm_emit_t emit = {.t = src->transport,
                      .topic = src->topic,
                      .partitions = src->partitions,
                      .schema = src->schema,
                      .schema_id = src->schema_id,
                      .key_schema = src->key_schema,
                      .key_schema_id = src->key_schema_id};
    dm_emit_init(&emit);
    /* Resume the sequence where the last commit left it. */
    char gname[300];
    snprintf(gname, sizeof(gname), "connector.%s", src->topic);
    int64_t done = 0;
    dm_error_t e2 = {0};
    if (dm_transport_group_offset(src->transport, gname, src->topic, 0, &done, &e2) == DM_OK) {
        for (int64_t i = 0; i < done; i++) {
            dm_avro_value_t v;
            dm_datagen_next(g, &arena, &v, &err);
            if ((i & 1023) == 1023) dm_arena_reset(&arena);
        }
    }
    atomic_store(&status->position, done);
    dm_unit_set(status, DM_UNIT_RUNNING, NULL);
    int64_t per_tick = src->conf.rate * TICK_MS / 1000;
    if (per_tick < 1) per_tick = 1;
    int64_t tick_ms = src->conf.rate * TICK_MS / 1000 >= 1 ? TICK_MS : 1000 / src->conf.rate;
    uint64_t next = dm_now_ns();
    dm_unit_backoff(status, 100, 5000);
    while (!atomic_load(&status->stop)) {
        int64_t n = per_tick;
        if (src->conf.max_events && (int64_t)dm_datagen_count(g) + n > src->conf.max_events)
            n = src->conf.max_events - (int64_t)dm_datagen_count(g);
        if (n <= 0) {
            dm_unit_set(status, DM_UNIT_DONE, NULL);
            break;
        }
        uint64_t before = dm_datagen_count(g);
        if (produce_batch(src, g, (size_t)n, &arena, &emit, &err)) {
            /* Nothing was committed: rewind so the next try makes the same events. */
            dm_datagen_free(g);
            dm_datagen_new(src->schema, &src->conf, src->key_fields, &g, &e2);
            for (uint64_t i = 0; i < before; i++) {
                dm_avro_value_t v;
                dm_datagen_next(g, &arena, &v, &e2);
                if ((i & 1023) == 1023) dm_arena_reset(&arena);
            }
            if (!dm_unit_retry(status, &err, "writing to topic %s", src->topic)) break;
            continue;
        }
        atomic_store(&status->position, (int64_t)dm_datagen_count(g));
        dm_unit_ok(status);
        next += (uint64_t)tick_ms * 1000000;
        uint64_t now = dm_now_ns();
        if (next > now) {
            if (dm_unit_sleep(status, (int64_t)((next - now) / 1000000))) break;
        } else {
            next = now; /* behind: do not try to catch up in a burst */
        }
    }
    if (dm_unit_state(status) == DM_UNIT_RUNNING) dm_unit_set(status, DM_UNIT_STOPPED, NULL);
    dm_emit_free(&emit);
    dm_arena_destroy(&arena);
    dm_datagen_free(g);
}

/* ---- the connector ------------------------------------------------------------ */

static dm_err_t datagen_open(const void *conf, const dm_source_env_t *env, void **state,
                             dm_error_t *err)
{
    dm_datagen_source_t *src = calloc(1, sizeof(*src));
    if (!src) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    *src = (dm_datagen_source_t){.transport = env->transport,
                                 .topic = env->topic,
                                 .partitions = env->partitions,
                                 .schema = env->value_schema,
                                 .schema_id = env->value_schema_id,
                                 .key_schema = env->key_schema,
                                 .key_schema_id = env->key_schema_id,
                                 .key_fields = env->key_fields,
                                 .conf = *(const dm_datagen_config_t *)conf};
    *state = src;
    return DM_OK;
}

static void datagen_run(void *state, dm_unit_status_t *status)
{
    dm_datagen_source_run(state, status);
}

static void datagen_close(void *state)
{
    free(state);
}

const dm_source_ops_t dm_datagen_source_ops = {
    .def = {.name = "datagen",
            .summary = "synthetic events from the source's schema",
            .config = &dm_datagen_config_table,
            .config_size = sizeof(dm_datagen_config_t),
            .needs_schema = true},
    .runs_thread = true,
    /* it produces at once: pipelines and their enrich tables start with rows */
    .await_first_commit = true,
    .open = datagen_open,
    .run = datagen_run,
    .close = datagen_close,
};
