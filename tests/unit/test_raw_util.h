/* tests/unit/test_raw_util.h — the random records of one schema shared by the raw-field
 * codec tests and the pass-through task tests. */
#ifndef DM_TESTS_TEST_RAW_UTIL_H
#define DM_TESTS_TEST_RAW_UTIL_H

#include <stdint.h>
#include <string.h>

#include "core/arena.h"
#include "schema/dm_avro.h"

static const char *schema_json =
    "{\"type\": \"record\", \"name\": \"R\", \"fields\": ["
    " {\"name\": \"n\", \"type\": \"int\"}, {\"name\": \"id\", \"type\": \"long\"},"
    " {\"name\": \"name\", \"type\": \"string\"}, {\"name\": \"amount\", \"type\": \"double\"},"
    " {\"name\": \"flag\", \"type\": \"boolean\"},"
    " {\"name\": \"note\", \"type\": [\"null\", \"string\"]},"
    " {\"name\": \"big\", \"type\": \"long\"},"
    " {\"name\": \"inner\", \"type\": {\"type\": \"record\", \"name\": \"In\", \"fields\": ["
    "   {\"name\": \"x\", \"type\": \"long\"}, {\"name\": \"s\", \"type\": [\"string\", "
    "\"null\"]}]}},"
    " {\"name\": \"tags\", \"type\": {\"type\": \"array\", \"items\": \"string\"}},"
    " {\"name\": \"f\", \"type\": \"float\"},"
    " {\"name\": \"opt\", \"type\": [\"null\", \"long\"]}]}";

static uint64_t seed = 0x9e3779b97f4a7c15ULL;

static uint64_t rnd(void)
{
    seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
    return seed;
}

static const char *words[] = {"", "a", "user00042", "élan", "a longer string of some bytes"};

static dm_avro_value_t str_value(void)
{
    const char *w = words[rnd() % 5];
    return (dm_avro_value_t){
        .type = DM_AVRO_STRING, .len = (uint32_t)strlen(w), .u.p = (const uint8_t *)w};
}

/* A random record of the schema, in arena a. */
static dm_avro_value_t random_record(dm_arena_t *a)
{
    dm_avro_value_t *f = dm_arena_alloc(a, 11 * sizeof(*f));
    dm_avro_value_t *in = dm_arena_alloc(a, 2 * sizeof(*in));
    dm_avro_value_t *tags = dm_arena_alloc(a, 3 * sizeof(*tags));
    int64_t bigs[] = {INT64_MAX, INT64_MIN, -1, 1LL << 62, (int64_t)rnd()};
    f[0] = (dm_avro_value_t){.type = DM_AVRO_INT, .u.i = (int32_t)rnd()};
    f[1] = (dm_avro_value_t){.type = DM_AVRO_LONG, .u.l = (int64_t)(rnd() % 100000)};
    f[2] = str_value();
    f[3] = (dm_avro_value_t){.type = DM_AVRO_DOUBLE, .u.d = (double)(rnd() % 10000) / 100.0};
    f[4] = (dm_avro_value_t){.type = DM_AVRO_BOOLEAN, .u.b = rnd() & 1};
    if (rnd() & 1) {
        f[5] = str_value();
        f[5].branch = 1;
    } else {
        f[5] = (dm_avro_value_t){.type = DM_AVRO_NULL};
    }
    f[6] = (dm_avro_value_t){.type = DM_AVRO_LONG, .u.l = bigs[rnd() % 5]};
    in[0] = (dm_avro_value_t){.type = DM_AVRO_LONG, .u.l = (int64_t)rnd()};
    if (rnd() & 1)
        in[1] = str_value();
    else
        in[1] = (dm_avro_value_t){.type = DM_AVRO_NULL, .branch = 1};
    f[7] = (dm_avro_value_t){.type = DM_AVRO_RECORD, .len = 2, .u.v = in};
    uint32_t nt = (uint32_t)(rnd() % 4);
    for (uint32_t i = 0; i < nt; i++)
        tags[i] = str_value();
    f[8] = (dm_avro_value_t){.type = DM_AVRO_ARRAY, .len = nt, .u.v = tags};
    f[9] = (dm_avro_value_t){.type = DM_AVRO_FLOAT, .u.f = (float)(rnd() % 1000) / 8.0f};
    if (rnd() & 1)
        f[10] = (dm_avro_value_t){.type = DM_AVRO_LONG, .branch = 1, .u.l = (int64_t)rnd()};
    else
        f[10] = (dm_avro_value_t){.type = DM_AVRO_NULL};
    return (dm_avro_value_t){.type = DM_AVRO_RECORD, .len = 11, .u.v = f};
}

static dm_avro_schema_t *schema;

#endif
