/* tests/integration/iceberg_e2e.c — the Iceberg sink end to end: records
 * produced to an embedded topic, the sink unit writing a table, and the table
 * read back by independent readers — icebird (npm: metadata, manifests,
 * Parquet via hyparquet, equality deletes) for the rows and python3-avro for
 * every manifest list and manifest; DuckDB (npm) reads every listed Parquet file
 * and applies the equality deletes in SQL.
 *   append: partitioned by bucket(4, i), day(ts), file catalog, a schema
 *           evolution half-way, a restart in between, a replay that is a no-op
 *   upsert: change events (c/u/d) into a bucket-partitioned table through the
 *           SQLite catalog; the table equals the final source state
 *   crash:  SIGKILL of the sink process during commits, 20 times; then no
 *           duplicate and no lost row
 *   versions: v1, v2 (a new column with a default) and v1 again in one topic
 *           through one run: every row lands, the table evolves once; a record
 *           of an incompatible version is a dead letter with the reason */
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "connectors/iceberg/iceberg.h"
#include "iceberg_run.h"
#include "connectors/iceberg/table.h"
#include "connectors/unit.h"
#include "core/clock.h"
#include "engine/task.h"
#include "schema/dm_avro.h"
#include "schema/wire.h"
#include "transport/transport.h"

static char dir[512], readers[512], logdir[600];

static const char *V1 =
    "{\"type\":\"record\",\"name\":\"Play\",\"fields\":["
    "{\"name\":\"i\",\"type\":\"int\"},{\"name\":\"l\",\"type\":\"long\"},"
    "{\"name\":\"s\",\"type\":\"string\"},{\"name\":\"d\",\"type\":\"double\"},"
    "{\"name\":\"b\",\"type\":\"boolean\"},{\"name\":\"n\",\"type\":[\"null\",\"string\"]},"
    "{\"name\":\"ts\",\"type\":{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}}]}";
static const char *V2 =
    "{\"type\":\"record\",\"name\":\"Play\",\"fields\":["
    "{\"name\":\"i\",\"type\":\"int\"},{\"name\":\"l\",\"type\":\"long\"},"
    "{\"name\":\"s\",\"type\":\"string\"},{\"name\":\"d\",\"type\":\"double\"},"
    "{\"name\":\"b\",\"type\":\"boolean\"},{\"name\":\"n\",\"type\":[\"null\",\"string\"]},"
    "{\"name\":\"ts\",\"type\":{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}},"
    "{\"name\":\"extra\",\"type\":[\"null\",\"string\"],\"default\":null}]}";
static const char *CDC =
    "{\"type\":\"record\",\"name\":\"Envelope\",\"fields\":["
    "{\"name\":\"before\",\"type\":[\"null\",{\"type\":\"record\",\"name\":\"Row\",\"fields\":["
    "{\"name\":\"id\",\"type\":\"long\"},{\"name\":\"name\",\"type\":\"string\"},"
    "{\"name\":\"qty\",\"type\":[\"null\",\"int\"]},"
    "{\"name\":\"price\",\"type\":{\"type\":\"bytes\",\"logicalType\":\"decimal\","
    "\"precision\":10,\"scale\":2}}]}]},"
    "{\"name\":\"after\",\"type\":[\"null\",\"Row\"]},"
    "{\"name\":\"op\",\"type\":\"string\"},{\"name\":\"ts_ms\",\"type\":\"long\"}]}";

static dm_avro_schema_t *parse(const char *s)
{
    dm_avro_schema_t *out = NULL;
    dm_avro_schema_parse(s, strlen(s), &out, NULL);
    return out;
}

/* Produces JSON (Avro JSON encoding) values as wire-format records. */
static int produce(dm_transport_t *t, const char *topic, int32_t p, const dm_avro_schema_t *schema,
                   uint32_t id, char **json, size_t n)
{
    dm_buf_t *bufs = calloc(n, sizeof(dm_buf_t));
    dm_record_t *recs = calloc(n, sizeof(dm_record_t));
    dm_arena_t arena;
    dm_arena_init(&arena, 0);
    dm_error_t err = {0};
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        dm_avro_value_t v;
        dm_wire_put_header(&bufs[i], id);
        if (dm_avro_from_json_text(schema->root, json[i], strlen(json[i]), DM_AVRO_JSON_AVRO,
                                   &arena, &v, &err) ||
            dm_avro_encode(schema->root, &v, &bufs[i], &err)) {
            printf("    produce %s: %s\n", json[i], err.message);
            rc = -1;
        }
        recs[i].value = bufs[i].data;
        recs[i].value_len = (int32_t)bufs[i].len;
        recs[i].key_len = -1;
    }
    int64_t base;
    if (!rc && dm_transport_produce(t, topic, p, recs, n, &base, &err)) {
        printf("    produce: %s\n", err.message);
        rc = -1;
    }
    for (size_t i = 0; i < n; i++)
        dm_buf_free(&bufs[i]);
    free(bufs);
    free(recs);
    dm_arena_destroy(&arena);
    return rc;
}

typedef struct schemas {
    uint32_t ids[4];
    dm_avro_schema_t *s[4];
    size_t n;
} schemas_t;

static const dm_avro_schema_t *lookup(void *ctx, uint32_t id)
{
    schemas_t *ss = ctx;
    for (size_t i = 0; i < ss->n; i++)
        if (ss->ids[i] == id) return ss->s[i];
    return NULL;
}

/* The current metadata of a table (URI, malloc'd) and its checkpoint text. */
static char *current(const dm_iceberg_sink_config_t *c, char *checkpoint, size_t cap,
                     int *snapshots)
{
    dm_ice_catalog_t *cat;
    char uri[700], tdir[700], ns[64], name[64];
    snprintf(uri, sizeof(uri), "%s/catalog.db", c->warehouse);
    sscanf(c->table, "%63[^.].%63s", ns, name);
    snprintf(tdir, sizeof(tdir), "%s/%s/%s", c->warehouse, ns, name);
    static const dm_ice_catalog_kind_t kinds[] = {DM_ICE_CATALOG_FILE, DM_ICE_CATALOG_SQLITE,
                                                  DM_ICE_CATALOG_POSTGRES};
    if (dm_ice_catalog_open(kinds[c->catalog], c->catalog == 2 ? c->catalog_dsn : uri,
                            c->catalog_name, &cat, NULL))

        return NULL;
    char *loc = NULL;
    dm_ice_catalog_load(cat, ns, name, tdir, &loc, NULL);
    dm_ice_catalog_close(cat);
    checkpoint[0] = 0;
    if (snapshots) *snapshots = 0;
    if (!loc) return NULL;
    json_t *m = json_load_file(dm_ice_local_path(loc), 0, NULL);
    json_t *snaps = json_object_get(m, "snapshots");
    if (snapshots) *snapshots = (int)json_array_size(snaps);
    json_t *cur = json_object_get(m, "current-snapshot-id");
    size_t i;
    json_t *s;
    json_array_foreach(snaps, i, s) if (json_equal(json_object_get(s, "snapshot-id"), cur))
    {
        const char *cp = json_string_value(
            json_object_get(json_object_get(s, "summary"), "datamesh.checkpoint"));
        snprintf(checkpoint, cap, "%s", cp ? cp : "");
    }
    json_decref(m);
    return loc;
}

typedef struct run {
    ice_sink_t sink;
    dm_unit_status_t st;
    pthread_t th;
} run_t;

static void *run_main(void *a)
{
    run_t *r = a;
    ice_sink_run(&r->sink, &r->st);
    return NULL;
}

static void run_start(run_t *r, const ice_sink_t *s)
{
    memset(r, 0, sizeof(*r));
    r->sink = *s;
    dm_unit_init(&r->st);
    pthread_create(&r->th, NULL, run_main, r);
}

/* Waits until the table's checkpoint is want (or the unit failed). */
static int run_wait(run_t *r, const char *want, int timeout_ms)
{
    char cp[256];
    int64_t end = dm_wall_ms() + timeout_ms;
    int rc = -1;
    while (dm_wall_ms() < end) {
        char *loc = current(r->sink.conf, cp, sizeof(cp), NULL);
        free(loc);
        if (!strcmp(cp, want)) {
            rc = 0;
            break;
        }
        char state[32], error[512];
        dm_unit_get(&r->st, state, sizeof(state), error, sizeof(error));
        if (!strcmp(state, "failed")) {
            printf("    sink failed: %s\n", error);
            break;
        }
        usleep(50000);
    }
    if (rc) printf("    checkpoint '%s', waited for '%s'\n", cp, want);
    return rc;
}

static void run_stop(run_t *r)
{
    atomic_store(&r->st.stop, true);
    pthread_join(r->th, NULL);
    dm_unit_destroy(&r->st);
}

static int readers_check(const dm_iceberg_sink_config_t *c, const char *expected, const char *key,
                         long data_rows)
{
    char cp[256], ns[64], name[64], cmd[4096];
    int snaps;
    char *loc = current(c, cp, sizeof(cp), &snaps);
    if (!loc) return -1;
    sscanf(c->table, "%63[^.].%63s", ns, name);
    const char *base = strrchr(loc, '/') + 1;
    snprintf(cmd, sizeof(cmd), "cd %s && node read_table.mjs file://%s/%s/%s %s %s %s", readers,
             c->warehouse, ns, name, expected, key, c->catalog ? base : "");
    int rc = system(cmd);
    /* The same table through DuckDB's Parquet reader, deletes applied in SQL. */
    snprintf(cmd, sizeof(cmd), "cd %s && node read_duckdb.mjs file://%s/%s/%s %s %s %s", readers,
             c->warehouse, ns, name, expected, key, c->catalog ? base : "");
    if (system(cmd)) rc = -1;
    if (data_rows >= 0)
        snprintf(cmd, sizeof(cmd), "cd %s && /usr/bin/python3 -W ignore check_metadata.py %s %ld",
                 readers, loc, data_rows);
    else
        snprintf(cmd, sizeof(cmd), "cd %s && /usr/bin/python3 -W ignore check_metadata.py %s",
                 readers, loc);
    int rc2 = system(cmd);
    free(loc);
    return rc || rc2 ? -1 : 0;
}

static dm_transport_t *open_transport(void)
{
    char url[700];
    snprintf(url, sizeof(url), "embedded:%s", logdir);
    dm_transport_t *t = NULL;
    dm_error_t err = {0};
    if (dm_transport_open(url, &t, &err)) printf("    transport: %s\n", err.message);
    return t;
}

/* Plays rows i in [from, to) to partition i % 2; v2 rows carry extra. */
static int play_rows(dm_transport_t *t, const char *topic, int from, int to,
                     const dm_avro_schema_t *s, uint32_t id, bool v2, FILE *expected, int64_t *ends)
{
    for (int p = 0; p < 2; p++) {
        char **json = calloc((size_t)(to - from), sizeof(char *));
        size_t n = 0;
        for (int i = from; i < to; i++) {
            if (i % 2 != p) continue;
            char nbuf[40] = "null", extra[40] = "";
            if (i % 3) snprintf(nbuf, sizeof(nbuf), "{\"string\":\"n%d\"}", i % 17);
            if (v2) snprintf(extra, sizeof(extra), ",\"extra\":{\"string\":\"x%d\"}", i);
            int64_t ts = 1700000000000LL + (int64_t)i * 600000; /* ten minutes apart: some days */
            if (asprintf(&json[n++],
                         "{\"i\":%d,\"l\":%lld,\"s\":\"s-%d\",\"d\":%.17g,\"b\":%s,\"n\":%s,\"ts\":"
                         "%lld%s}",
                         i, (long long)i * 1000003, i % 50, i * 0.5, i % 2 ? "true" : "false", nbuf,
                         (long long)ts, extra) < 0)
                return -1;
            fprintf(expected,
                    "{\"i\":%d,\"l\":\"%lld\",\"s\":\"s-%d\",\"d\":%.17g,\"b\":%s,\"n\":", i,
                    (long long)i * 1000003, i % 50, i * 0.5, i % 2 ? "true" : "false");
            if (i % 3)
                fprintf(expected, "\"n%d\"", i % 17);
            else
                fprintf(expected, "null");
            fprintf(expected, ",\"ts\":\"%lld\",\"extra\":", (long long)ts * 1000);
            if (v2)
                fprintf(expected, "\"x%d\"}\n", i);
            else
                fprintf(expected, "null}\n");
        }
        int rc = produce(t, topic, p, s, id, json, n);
        for (size_t k = 0; k < n; k++)
            free(json[k]);
        free(json);
        if (rc) return rc;
        ends[p] += (int64_t)n;
    }
    return 0;
}

static void config(dm_iceberg_sink_config_t *c, const char *sub, const char *table, int catalog,
                   const char *partition_by)
{
    dm_config_defaults(&dm_iceberg_sink_config_table, c, NULL);
    char wh[700];
    snprintf(wh, sizeof(wh), "%s/%s", dir, sub);
    free(c->warehouse);
    c->warehouse = strdup(wh);
    free(c->table);
    c->table = strdup(table);
    free(c->partition_by);
    c->partition_by = strdup(partition_by);
    c->catalog = catalog;
    c->commit_interval = 150;
    c->common.linger_ms = 20;
    c->target_file_size = 65536;
    c->row_group_size = 65536;
}

static void test_append_evolve_restart(void)
{
    dm_transport_t *t = open_transport();
    REQUIRE(t);
    dm_error_t err = {0};
    REQUIRE(dm_transport_create_topic(t, &(dm_topic_config_t){.name = "plays", .partitions = 2},
                                      &err) == DM_OK);
    schemas_t ss = {.ids = {11, 12}, .s = {parse(V1), parse(V2)}, .n = 2};
    REQUIRE(ss.s[0] && ss.s[1]);
    dm_iceberg_sink_config_t c = {0};
    config(&c, "wh1", "db.plays", DM_ICEBERG_CATALOG_FILE, "bucket(4, i), day(ts)");
    ice_sink_t sink = {.transport = t,
                       .topic = "plays",
                       .partitions = 2,
                       .group = "sink-plays",
                       .schema = ss.s[0],
                       .schema_id = 11,
                       .schema_lookup = lookup,
                       .schema_lookup_ctx = &ss,
                       .conf = &c};
    char expected[700], want[64];
    snprintf(expected, sizeof(expected), "%s/plays.jsonl", dir);
    FILE *e = fopen(expected, "w");
    int64_t ends[2] = {0, 0};
    REQUIRE(play_rows(t, "plays", 0, 3000, ss.s[0], 11, false, e, ends) == 0);
    run_t r;
    run_start(&r, &sink);
    snprintf(want, sizeof(want), "0:%lld,1:%lld", (long long)ends[0], (long long)ends[1]);
    CHECK_EQ_INT(run_wait(&r, want, 60000), 0);
    run_stop(&r);
    /* A newer compatible schema: a new column, a new current schema. */
    REQUIRE(play_rows(t, "plays", 3000, 5000, ss.s[1], 12, true, e, ends) == 0);
    fclose(e);
    run_start(&r, &sink);
    snprintf(want, sizeof(want), "0:%lld,1:%lld", (long long)ends[0], (long long)ends[1]);
    CHECK_EQ_INT(run_wait(&r, want, 60000), 0);
    run_stop(&r);
    /* Running again over the same input commits nothing new. */
    char cp[256];
    int before, after;
    free(current(&c, cp, sizeof(cp), &before));
    run_start(&r, &sink);
    usleep(600000);
    run_stop(&r);
    free(current(&c, cp, sizeof(cp), &after));
    CHECK_EQ_INT(after, before);
    CHECK_EQ_INT(readers_check(&c, expected, "i", 5000), 0);
    /* The command line's compaction: the same rows, fewer files. */
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "%s/datamesh iceberg compact db.plays warehouse=%s",
             getenv("DM_BINARY_DIR"), c.warehouse);
    CHECK_EQ_INT(system(cmd), 0);
    CHECK_EQ_INT(readers_check(&c, expected, "i", 5000), 0);
    /* The new column got the next field id. */
    char *loc = current(&c, cp, sizeof(cp), NULL);
    json_t *m = json_load_file(dm_ice_local_path(loc), 0, NULL);
    CHECK_EQ_INT(json_integer_value(json_object_get(m, "current-schema-id")), 1);
    CHECK_EQ_INT(json_integer_value(json_object_get(m, "last-column-id")), 8);
    json_decref(m);
    free(loc);
    dm_config_free(&dm_iceberg_sink_config_table, &c);
    for (size_t i = 0; i < ss.n; i++)
        dm_avro_schema_free(ss.s[i]);
    dm_transport_close(t);
}

/* One run over a topic holding v1 rows, one row of an incompatible version
 * (s became an int), v2 rows (a new column "extra" with a default) and v1
 * rows again: the table gains the column once, every v1 and v2 row lands
 * (v1 rows with extra null), the incompatible row goes to the dead-letter
 * topic naming the column, and nothing is retried forever. */
static const char *V3_INCOMPATIBLE =
    "{\"type\":\"record\",\"name\":\"Play\",\"fields\":["
    "{\"name\":\"i\",\"type\":\"int\"},{\"name\":\"l\",\"type\":\"long\"},"
    "{\"name\":\"s\",\"type\":\"int\"},{\"name\":\"d\",\"type\":\"double\"},"
    "{\"name\":\"b\",\"type\":\"boolean\"},{\"name\":\"n\",\"type\":[\"null\",\"string\"]},"
    "{\"name\":\"ts\",\"type\":{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}}]}";

static void test_schema_versions_and_dead_letters(void)
{
    dm_transport_t *t = open_transport();
    REQUIRE(t);
    dm_error_t err = {0};
    REQUIRE(dm_transport_create_topic(t, &(dm_topic_config_t){.name = "vers", .partitions = 2},
                                      &err) == DM_OK);
    REQUIRE(dm_transport_create_topic(t, &(dm_topic_config_t){.name = "vers.dlq", .partitions = 1},
                                      &err) == DM_OK);
    schemas_t ss = {
        .ids = {71, 72, 73}, .s = {parse(V1), parse(V2), parse(V3_INCOMPATIBLE)}, .n = 3};
    REQUIRE(ss.s[0] && ss.s[1] && ss.s[2]);
    dm_iceberg_sink_config_t c = {0};
    config(&c, "wh7", "db.vers", DM_ICEBERG_CATALOG_SQLITE, "bucket(2, i)");
    ice_sink_t sink = {.transport = t,
                       .topic = "vers",
                       .partitions = 2,
                       .group = "sink-vers",
                       .schema = ss.s[0],
                       .schema_id = 71,
                       .schema_lookup = lookup,
                       .schema_lookup_ctx = &ss,
                       .dead_letter_topic = "vers.dlq",
                       .conf = &c};
    char expected[700], want[64];
    snprintf(expected, sizeof(expected), "%s/vers.jsonl", dir);
    FILE *e = fopen(expected, "w");
    REQUIRE(e);
    int64_t ends[2] = {0, 0};
    REQUIRE(play_rows(t, "vers", 0, 400, ss.s[0], 71, false, e, ends) == 0);
    char *bad = "{\"i\":100000,\"l\":1,\"s\":5,\"d\":0.5,\"b\":true,\"n\":null,\"ts\":0}";
    REQUIRE(produce(t, "vers", 0, ss.s[2], 73, &bad, 1) == 0);
    int64_t bad_offset = ends[0]++;
    REQUIRE(play_rows(t, "vers", 400, 800, ss.s[1], 72, true, e, ends) == 0);
    REQUIRE(play_rows(t, "vers", 800, 900, ss.s[0], 71, false, e, ends) == 0);
    fclose(e);
    run_t r;
    run_start(&r, &sink);
    snprintf(want, sizeof(want), "0:%lld,1:%lld", (long long)ends[0], (long long)ends[1]);
    CHECK_EQ_INT(run_wait(&r, want, 60000), 0);
    run_stop(&r);
    CHECK_EQ_INT(readers_check(&c, expected, "i", 900), 0);
    char cp[256];
    char *loc = current(&c, cp, sizeof(cp), NULL);
    REQUIRE(loc);
    json_t *m = json_load_file(dm_ice_local_path(loc), 0, NULL);
    CHECK_EQ_INT(json_integer_value(json_object_get(m, "current-schema-id")), 1);
    CHECK_EQ_INT(json_integer_value(json_object_get(m, "last-column-id")), 8);
    json_decref(m);
    free(loc);
    dm_transport_batch_t b = {0};
    CHECK(!dm_transport_fetch(t, "vers.dlq", 0, 0, 1 << 20, 1000, &b, &err));
    CHECK_EQ_INT(b.n, 1);
    for (size_t i = 0; i < b.n; i++) {
        char reason[512] = "", offset[32] = "", part[32] = "";
        for (uint32_t h = 0; h < b.records[i].n_headers; h++) {
            const dm_record_header_t *hd = &b.records[i].headers[h];
            const char *v = (const char *)hd->value;
            if (!strncmp(hd->key, DM_DLQ_REASON, hd->key_len))
                snprintf(reason, sizeof(reason), "%.*s", hd->value_len, v);
            else if (!strncmp(hd->key, DM_DLQ_OFFSET, hd->key_len))
                snprintf(offset, sizeof(offset), "%.*s", hd->value_len, v);
            else if (!strncmp(hd->key, DM_DLQ_PARTITION, hd->key_len))
                snprintf(part, sizeof(part), "%.*s", hd->value_len, v);
        }
        CHECK_CONTAINS(reason, "schema id 73");
        CHECK_CONTAINS(reason, "column s is string in the table and int in the source");
        CHECK_EQ_INT(atoll(offset), bad_offset);
        CHECK_STR_EQ(part, "0");
    }
    dm_transport_batch_free(t, &b);
    dm_config_free(&dm_iceberg_sink_config_table, &c);
    for (size_t i = 0; i < ss.n; i++)
        dm_avro_schema_free(ss.s[i]);
    dm_transport_close(t);
}

/* A row of the CDC source: state per id. */
typedef struct row {
    bool live;
    char name[24];
    int qty;   /* -1 = null */
    int cents; /* price: a decimal(10, 2) as Postgres numeric columns arrive */
} row_t;

/* A decimal's unscaled value as Avro JSON bytes: big-endian two's
 * complement, fewest bytes, each byte a \u00XX code point. */
static void decimal_json(char *out, size_t cap, int v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    int i = 0;
    while (i < 3 && ((b[i] == 0 && !(b[i + 1] & 0x80)) || (b[i] == 0xff && (b[i + 1] & 0x80))))
        i++;
    size_t o = 0;
    for (; i < 4 && o + 7 < cap; i++)
        o += (size_t)snprintf(out + o, cap - o, "\\u00%02x", b[i]);
}

static void row_json(char *out, size_t cap, long id, const row_t *r)
{
    char q[24] = "null", p[40] = "";
    if (r->qty >= 0) snprintf(q, sizeof(q), "{\"int\":%d}", r->qty);
    decimal_json(p, sizeof(p), r->cents);
    snprintf(out, cap, "{\"Row\":{\"id\":%ld,\"name\":\"%s\",\"qty\":%s,\"price\":\"%s\"}}", id,
             r->name, q, p);
}

/* Nested records through the sink: a nullable struct holding a nullable
 * field, a required struct with a decimal, partitioned by bucket of a
 * top-level column; icebird and DuckDB read the structs, python-avro the
 * manifests (leaf field ids only). */
static const char *NESTED =
    "{\"type\":\"record\",\"name\":\"Person\",\"fields\":["
    "{\"name\":\"id\",\"type\":\"long\"},"
    "{\"name\":\"addr\",\"type\":[\"null\",{\"type\":\"record\",\"name\":\"Addr\",\"fields\":["
    "{\"name\":\"street\",\"type\":\"string\"},{\"name\":\"zip\",\"type\":[\"null\",\"int\"]}]}]},"
    "{\"name\":\"meta\",\"type\":{\"type\":\"record\",\"name\":\"Meta\",\"fields\":["
    "{\"name\":\"price\",\"type\":{\"type\":\"bytes\",\"logicalType\":\"decimal\",\"precision\":9,"
    "\"scale\":2}},{\"name\":\"tag\",\"type\":\"string\"}]}}]}";

static void test_append_structs(void)
{
    dm_transport_t *t = open_transport();
    REQUIRE(t);
    dm_error_t err = {0};
    REQUIRE(dm_transport_create_topic(t, &(dm_topic_config_t){.name = "people", .partitions = 1},
                                      &err) == DM_OK);
    dm_avro_schema_t *schema = parse(NESTED);
    REQUIRE(schema);
    dm_iceberg_sink_config_t c = {0};
    config(&c, "wh5", "db.people", DM_ICEBERG_CATALOG_FILE, "bucket(2, id)");
    ice_sink_t sink = {.transport = t,
                       .topic = "people",
                       .partitions = 1,
                       .group = "sink-people",
                       .schema = schema,
                       .schema_id = 51,
                       .conf = &c};
    enum { N = 600 };
    char *json[N];
    char expected[700];
    snprintf(expected, sizeof(expected), "%s/people.jsonl", dir);
    FILE *e = fopen(expected, "w");
    REQUIRE(e);
    for (int i = 0; i < N; i++) {
        char addr[128] = "null", zip[32] = "null", wzip[32] = "null", p[40],
             want_addr[128] = "null";
        int cents = (i * 37 % 4001 - 2000) * 25;
        if (i % 3) {
            snprintf(zip, sizeof(zip), "{\"int\":%d}", 10000 + i);
            snprintf(wzip, sizeof(wzip), "%d", 10000 + i);
        }
        if (i % 4 != 1) {
            snprintf(addr, sizeof(addr), "{\"Addr\":{\"street\":\"s%d\",\"zip\":%s}}", i % 50, zip);
            snprintf(want_addr, sizeof(want_addr), "{\"street\":\"s%d\",\"zip\":%s}", i % 50, wzip);
        }
        decimal_json(p, sizeof(p), cents);
        if (asprintf(&json[i],
                     "{\"id\":%d,\"addr\":%s,\"meta\":{\"price\":\"%s\",\"tag\":\"t%d\"}}", i, addr,
                     p, i % 7) < 0)
            json[i] = NULL;
        fprintf(e, "{\"id\":\"%d\",\"addr\":%s,\"meta\":{\"price\":%s%d.%02d,\"tag\":\"t%d\"}}\n",
                i, want_addr, cents < 0 ? "-" : "", abs(cents) / 100, abs(cents) % 100, i % 7);
    }
    fclose(e);
    CHECK_EQ_INT(produce(t, "people", 0, schema, 51, json, N), 0);
    for (int i = 0; i < N; i++)
        free(json[i]);
    run_t r;
    run_start(&r, &sink);
    char want[64];
    snprintf(want, sizeof(want), "0:%d", N);
    CHECK_EQ_INT(run_wait(&r, want, 60000), 0);
    run_stop(&r);
    CHECK_EQ_INT(readers_check(&c, expected, "id", N), 0);
    /* Compaction reads the structs back: the same rows, fewer files. */
    int64_t files_in = 0, kept = 0;
    CHECK_EQ_INT(dm_iceberg_compact(&c, &files_in, &kept, &err), DM_OK);
    CHECK_EQ_INT(kept, N);
    CHECK_EQ_INT(readers_check(&c, expected, "id", N), 0);
    dm_config_free(&dm_iceberg_sink_config_table, &c);
    dm_avro_schema_free(schema);
    dm_transport_close(t);
}

/* ---- lists and maps ---------------------------------------------------------------- */

/* Change events whose rows hold lists and maps (as Postgres arrays arrive):
 * a nullable list of nullable strings, a list of structs, a nullable map of
 * nullable longs, a map of structs holding a list, a nullable struct holding
 * a nullable list. */
static const char *LISTS =
    "{\"type\":\"record\",\"name\":\"Env\",\"fields\":["
    "{\"name\":\"before\",\"type\":[\"null\",{\"type\":\"record\",\"name\":\"Row\",\"fields\":["
    "{\"name\":\"id\",\"type\":\"long\"},"
    "{\"name\":\"tags\",\"type\":[\"null\",{\"type\":\"array\",\"items\":[\"null\",\"string\"]}]},"
    "{\"name\":\"pts\",\"type\":{\"type\":\"array\",\"items\":{\"type\":\"record\",\"name\":\"Pt\","
    "\"fields\":[{\"name\":\"x\",\"type\":\"int\"},{\"name\":\"y\",\"type\":[\"null\",\"double\"]}]"
    "}}},"
    "{\"name\":\"attrs\",\"type\":[\"null\",{\"type\":\"map\",\"values\":[\"null\",\"long\"]}]},"
    "{\"name\":\"m2\",\"type\":{\"type\":\"map\",\"values\":{\"type\":\"record\",\"name\":\"MV\","
    "\"fields\":[{\"name\":\"a\",\"type\":\"string\"},{\"name\":\"b\",\"type\":{\"type\":\"array\","
    "\"items\":\"int\"}}]}}},"
    "{\"name\":\"s\",\"type\":[\"null\",{\"type\":\"record\",\"name\":\"S\",\"fields\":["
    "{\"name\":\"name\",\"type\":\"string\"},"
    "{\"name\":\"nums\",\"type\":[\"null\",{\"type\":\"array\",\"items\":\"long\"}]}]}]}]}]},"
    "{\"name\":\"after\",\"type\":[\"null\",\"Row\"]},"
    "{\"name\":\"op\",\"type\":\"string\"},{\"name\":\"ts_ms\",\"type\":\"long\"}]}";

/* Version ver of row id as Avro JSON (unions wrapped) and as readers show
 * it (64-bit integers as strings): every shape by turns — null, empty and
 * full lists, null elements, null and full maps, null values. */
static void list_row(long id, int ver, char *avro, size_t acap, char *want, size_t wcap)
{
    int k = (int)((id + ver) % 12);
    const char *tags[] = {"null", "{\"array\":[]}", "{\"array\":[{\"string\":\"a\"},null]}",
                          "{\"array\":[{\"string\":\"x\"},{\"string\":\"y\"},{\"string\":\"z\"}]}"};
    const char *wtags[] = {"null", "[]", "[\"a\",null]", "[\"x\",\"y\",\"z\"]"};
    char pts[160], wpts[160], attrs[96] = "null", wattrs[96] = "null", m2[200], wm2[200],
                              s[128] = "null", ws[128] = "null";
    if (k % 3 == 0)
        snprintf(pts, sizeof(pts), "[]"), snprintf(wpts, sizeof(wpts), "[]");
    else {
        snprintf(pts, sizeof(pts), "[{\"x\":%ld,\"y\":{\"double\":0.5}},{\"x\":%d,\"y\":null}]", id,
                 ver);
        snprintf(wpts, sizeof(wpts), "[{\"x\":%ld,\"y\":0.5},{\"x\":%d,\"y\":null}]", id, ver);
    }
    if (k % 3 == 1) {
        snprintf(attrs, sizeof(attrs), "{\"map\":{\"k1\":{\"long\":%ld},\"k2\":null}}", id);
        snprintf(wattrs, sizeof(wattrs), "{\"k1\":\"%ld\",\"k2\":null}", id);
    } else if (k % 3 == 2) {
        snprintf(attrs, sizeof(attrs), "{\"map\":{\"only\":{\"long\":%d}}}", ver);
        snprintf(wattrs, sizeof(wattrs), "{\"only\":\"%d\"}", ver);
    }
    snprintf(m2, sizeof(m2), "{\"p\":{\"a\":\"a%d\",\"b\":[%ld,%d]}%s}", ver, id, ver,
             k % 2 ? ",\"q\":{\"a\":\"q\",\"b\":[]}" : "");
    snprintf(wm2, sizeof(wm2), "{\"p\":{\"a\":\"a%d\",\"b\":[%ld,%d]}%s}", ver, id, ver,
             k % 2 ? ",\"q\":{\"a\":\"q\",\"b\":[]}" : "");
    if (k % 4 == 1) {
        snprintf(s, sizeof(s), "{\"S\":{\"name\":\"n%ld\",\"nums\":null}}", id);
        snprintf(ws, sizeof(ws), "{\"name\":\"n%ld\",\"nums\":null}", id);
    } else if (k % 4 == 2) {
        snprintf(s, sizeof(s), "{\"S\":{\"name\":\"m\",\"nums\":{\"array\":[]}}}");
        snprintf(ws, sizeof(ws), "{\"name\":\"m\",\"nums\":[]}");
    } else if (k % 4 == 3) {
        snprintf(s, sizeof(s), "{\"S\":{\"name\":\"o\",\"nums\":{\"array\":[%d,%ld]}}}", ver, id);
        snprintf(ws, sizeof(ws), "{\"name\":\"o\",\"nums\":[\"%d\",\"%ld\"]}", ver, id);
    }
    snprintf(avro, acap,
             "{\"Row\":{\"id\":%ld,\"tags\":%s,\"pts\":%s,\"attrs\":%s,\"m2\":%s,\"s\":%s}}", id,
             tags[k % 4], pts, attrs, m2, s);
    snprintf(want, wcap, "{\"id\":\"%ld\",\"tags\":%s,\"pts\":%s,\"attrs\":%s,\"m2\":%s,\"s\":%s}",
             id, wtags[k % 4], wpts, wattrs, wm2, ws);
}

static void test_upsert_lists(void)
{
    dm_transport_t *t = open_transport();
    REQUIRE(t);
    dm_error_t err = {0};
    REQUIRE(dm_transport_create_topic(t, &(dm_topic_config_t){.name = "lists", .partitions = 1},
                                      &err) == DM_OK);
    dm_avro_schema_t *schema = parse(LISTS);
    REQUIRE(schema);
    dm_iceberg_sink_config_t c = {0};
    config(&c, "wh6", "db.lists", DM_ICEBERG_CATALOG_SQLITE, "bucket(3, id)");
    static const char *const key[] = {"id"};
    ice_sink_t sink = {.transport = t,
                       .topic = "lists",
                       .partitions = 1,
                       .group = "sink-lists",
                       .schema = schema,
                       .schema_id = 61,
                       .key = key,
                       .n_key = 1,
                       .conf = &c};
    enum { KEYS = 96, WAVES = 3 };
    int ver[KEYS];
    bool live[KEYS] = {0};
    char avro[1024], before[1024], want[1024];
    int64_t end = 0;
    run_t r;
    run_start(&r, &sink);
    /* Wave 0 creates every row; later waves update some and delete others
     * (the buffered rows' lists are kept across records until the commit). */
    for (int w = 0; w < WAVES; w++) {
        char *json[KEYS];
        size_t n = 0;
        for (long id = 0; id < KEYS; id++) {
            const char *op = "c";
            if (w > 0 && !live[id]) continue;
            if (w > 0 && (id + w) % 5 == 0)
                op = "d";
            else if (w > 0 && (id + w) % 2 == 0)
                op = "u";
            else if (w > 0)
                continue;
            char b[1100] = "null", a[1100] = "null";
            if (live[id]) list_row(id, ver[id], before, sizeof(before), want, sizeof(want));
            if (live[id]) snprintf(b, sizeof(b), "%s", before);
            if (*op != 'd') {
                ver[id] = w * 7 + (int)id % 5;
                list_row(id, ver[id], avro, sizeof(avro), want, sizeof(want));
                snprintf(a, sizeof(a), "%s", avro);
            }
            live[id] = *op != 'd';
            if (asprintf(&json[n++], "{\"before\":%s,\"after\":%s,\"op\":\"%s\",\"ts_ms\":0}", b, a,
                         op) < 0)
                json[n - 1] = NULL;
        }
        CHECK_EQ_INT(produce(t, "lists", 0, schema, 61, json, n), 0);
        for (size_t k = 0; k < n; k++)
            free(json[k]);
        end += (int64_t)n;
        char cp[64];
        snprintf(cp, sizeof(cp), "0:%lld", (long long)end);
        CHECK_EQ_INT(run_wait(&r, cp, 60000), 0);
    }
    run_stop(&r);
    char expected[700];
    snprintf(expected, sizeof(expected), "%s/lists.jsonl", dir);
    FILE *e = fopen(expected, "w");
    REQUIRE(e);
    for (long id = 0; id < KEYS; id++) {
        if (!live[id]) continue;
        list_row(id, ver[id], avro, sizeof(avro), want, sizeof(want));
        fprintf(e, "%s\n", want);
    }
    fclose(e);
    CHECK_EQ_INT(readers_check(&c, expected, "id", -1), 0);
    /* The schema JSON as the spec writes lists and maps. */
    char cp[256];
    char *loc = current(&c, cp, sizeof(cp), NULL);
    REQUIRE(loc);
    json_t *m = json_load_file(dm_ice_local_path(loc), 0, NULL);
    json_t *fields = json_object_get(json_array_get(json_object_get(m, "schemas"), 0), "fields");
    json_t *tags = json_object_get(json_array_get(fields, 1), "type"),
           *attrs = json_object_get(json_array_get(fields, 3), "type");
    CHECK_STR_EQ(json_string_value(json_object_get(tags, "type")), "list");
    CHECK_EQ_INT(json_integer_value(json_object_get(tags, "element-id")), 3);
    CHECK_STR_EQ(json_string_value(json_object_get(tags, "element")), "string");
    CHECK(json_is_false(json_object_get(tags, "element-required")));
    CHECK_STR_EQ(json_string_value(json_object_get(attrs, "type")), "map");
    CHECK_EQ_INT(json_integer_value(json_object_get(attrs, "key-id")), 9);
    CHECK_EQ_INT(json_integer_value(json_object_get(attrs, "value-id")), 10);
    CHECK_STR_EQ(json_string_value(json_object_get(attrs, "value")), "long");
    CHECK_EQ_INT(json_integer_value(json_object_get(m, "last-column-id")), 20);
    json_decref(m);
    free(loc);
    /* Compaction reads the lists and maps back and applies the deletes: the
     * same rows and values, no delete files left. */
    int64_t files_in = 0, kept = 0, n_live = 0;
    for (long id = 0; id < KEYS; id++)
        n_live += live[id];
    CHECK_EQ_INT(dm_iceberg_compact(&c, &files_in, &kept, &err), DM_OK);
    CHECK_EQ_INT(kept, n_live);
    CHECK_EQ_INT(readers_check(&c, expected, "id", n_live), 0);
    dm_config_free(&dm_iceberg_sink_config_table, &c);
    dm_avro_schema_free(schema);
    dm_transport_close(t);
}

static void test_upsert_cdc(void)
{
    dm_transport_t *t = open_transport();
    REQUIRE(t);
    dm_error_t err = {0};
    REQUIRE(dm_transport_create_topic(t, &(dm_topic_config_t){.name = "orders", .partitions = 1},
                                      &err) == DM_OK);
    dm_avro_schema_t *schema = parse(CDC);
    REQUIRE(schema);
    dm_iceberg_sink_config_t c = {0};
    config(&c, "wh2", "shop.orders", DM_ICEBERG_CATALOG_SQLITE, "bucket(8, id)");
    static const char *const key[] = {"id"};
    ice_sink_t sink = {.transport = t,
                       .topic = "orders",
                       .partitions = 1,
                       .group = "sink-orders",
                       .schema = schema,
                       .schema_id = 21,
                       .key = key,
                       .n_key = 1,
                       .conf = &c};
    enum { KEYS = 300, WAVES = 6, OPS = 400 };
    row_t state[KEYS] = {0};
    uint64_t seed = 42;
    int64_t end = 0;
    run_t r;
    run_start(&r, &sink);
    for (int w = 0; w < WAVES; w++) {
        char *json[OPS];
        for (int k = 0; k < OPS; k++) {
            seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
            long id = (long)((seed >> 33) % KEYS);
            row_t *s = &state[id], old = *s;
            char b[256] = "null", a[256] = "null";
            const char *op;
            if (!s->live) {
                op = "c";
                s->live = true;
            } else if ((seed >> 20) % 4 == 0) {
                op = "d";
                s->live = false;
            } else {
                op = "u";
            }
            if (s->live) {
                snprintf(s->name, sizeof(s->name), "n%d-%d", w, k);
                s->qty = (int)((seed >> 40) % 7) - 1;
                /* Quarters: exact as doubles, so readers' numbers compare exactly. */
                s->cents = ((int)((seed >> 8) % 80001) - 40000) * 25;
                row_json(a, sizeof(a), id, s);
            }
            if (old.live) row_json(b, sizeof(b), id, &old);
            if (asprintf(&json[k], "{\"before\":%s,\"after\":%s,\"op\":\"%s\",\"ts_ms\":%d}", b, a,
                         op, k) < 0)
                json[k] = NULL;
        }
        CHECK_EQ_INT(produce(t, "orders", 0, schema, 21, json, OPS), 0);
        for (int k = 0; k < OPS; k++)
            free(json[k]);
        end += OPS;
        usleep(200000);
    }
    /* A re-snapshot: every live row read again ('r') must not duplicate it. */
    char *again[KEYS];
    size_t n_again = 0;
    for (long id = 0; id < KEYS; id++) {
        if (!state[id].live) continue;
        char a[256];
        row_json(a, sizeof(a), id, &state[id]);
        if (asprintf(&again[n_again++], "{\"before\":null,\"after\":%s,\"op\":\"r\",\"ts_ms\":0}",
                     a) < 0)
            again[n_again - 1] = NULL;
    }
    CHECK_EQ_INT(produce(t, "orders", 0, schema, 21, again, n_again), 0);
    for (size_t k = 0; k < n_again; k++)
        free(again[k]);
    end += (int64_t)n_again;
    char want[64];
    snprintf(want, sizeof(want), "0:%lld", (long long)end);
    CHECK_EQ_INT(run_wait(&r, want, 60000), 0);
    run_stop(&r);
    char expected[700];
    snprintf(expected, sizeof(expected), "%s/orders.jsonl", dir);
    FILE *e = fopen(expected, "w");
    for (long id = 0; id < KEYS; id++) {
        if (!state[id].live) continue;
        fprintf(e, "{\"id\":\"%ld\",\"name\":\"%s\",\"qty\":", id, state[id].name);
        if (state[id].qty >= 0)
            fprintf(e, "%d", state[id].qty);
        else
            fprintf(e, "null");
        fprintf(e, ",\"price\":%s%d.%02d}\n", state[id].cents < 0 ? "-" : "",
                abs(state[id].cents) / 100, abs(state[id].cents) % 100);
    }
    fclose(e);
    CHECK_EQ_INT(readers_check(&c, expected, "id", -1), 0);
    /* Compaction: deletes applied, the same rows in new files, no delete files left. */
    int64_t files_in = 0, kept = 0;
    long live = 0;
    for (long id = 0; id < KEYS; id++)
        live += state[id].live;
    CHECK_EQ_INT(dm_iceberg_compact(&c, &files_in, &kept, &err), DM_OK);
    if (err.code) printf("    compact: %s\n", err.message);
    CHECK(files_in > 2);
    CHECK_EQ_INT(kept, live);
    CHECK_EQ_INT(readers_check(&c, expected, "id", live), 0);
    dm_config_free(&dm_iceberg_sink_config_table, &c);
    dm_avro_schema_free(schema);
    dm_transport_close(t);
}

static void test_sigkill_during_commits(void)
{
    dm_transport_t *t = open_transport();
    REQUIRE(t);
    dm_error_t err = {0};
    REQUIRE(dm_transport_create_topic(t, &(dm_topic_config_t){.name = "crash", .partitions = 2},
                                      &err) == DM_OK);
    dm_transport_close(t);
    dm_avro_schema_t *s1 = parse(V2);
    REQUIRE(s1);
    char expected[700], want[64];
    snprintf(expected, sizeof(expected), "%s/crash.jsonl", dir);
    FILE *e = fopen(expected, "w");
    int64_t ends[2] = {0, 0};
    dm_iceberg_sink_config_t c = {0};
    config(&c, "wh3", "db.crash", DM_ICEBERG_CATALOG_FILE, "");
    c.commit_interval = 20;
    c.common.batch_records = 500; /* a commit every batch or so: kills land in commits */
    uint64_t seed = 7;
    int progressed = 0, last_snaps = 0;
    /* Each round adds input and kills the sink a few milliseconds into it,
     * while it writes files and commits them. */
    for (int it = 0; it < 20; it++) {
        /* One process has the embedded log open at a time. */
        t = open_transport();
        REQUIRE(t);
        REQUIRE(play_rows(t, "crash", it * 2000, (it + 1) * 2000, s1, 31, true, e, ends) == 0);
        dm_transport_close(t);
        pid_t pid = fork();
        if (pid == 0) {
            dm_transport_t *ct = open_transport();
            ice_sink_t sink = {.transport = ct,
                               .topic = "crash",
                               .partitions = 2,
                               .group = "sink-crash",
                               .schema = s1,
                               .schema_id = 31,
                               .conf = &c};
            dm_unit_status_t st;
            dm_unit_init(&st);
            ice_sink_run(&sink, &st);
            _exit(0);
        }
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        usleep((useconds_t)(10000 + (seed >> 33) % 140000));
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        char cp[256];
        int snaps;
        free(current(&c, cp, sizeof(cp), &snaps));
        if (snaps > last_snaps) progressed++;
        last_snaps = snaps;
    }
    fclose(e);
    printf("    %d of 20 killed runs had committed something; %d snapshots\n", progressed,
           last_snaps);
    /* Kills that never reach a commit would test nothing. */
    CHECK(progressed > 0);
    t = open_transport();
    REQUIRE(t);
    ice_sink_t sink = {.transport = t,
                       .topic = "crash",
                       .partitions = 2,
                       .group = "sink-crash",
                       .schema = s1,
                       .schema_id = 31,
                       .conf = &c};
    run_t r;
    run_start(&r, &sink);
    snprintf(want, sizeof(want), "0:%lld,1:%lld", (long long)ends[0], (long long)ends[1]);
    CHECK_EQ_INT(run_wait(&r, want, 120000), 0);
    run_stop(&r);
    CHECK_EQ_INT(readers_check(&c, expected, "i", 40000), 0);
    dm_config_free(&dm_iceberg_sink_config_table, &c);
    dm_avro_schema_free(s1);
    dm_transport_close(t);
}

/* needs:postgres — the JDBC layout in PostgreSQL: a sink commits through it,
 * a stale writer loses the compare-and-swap, and a password never shows in
 * an error. */
static void test_postgres_catalog(void)
{
    const char *dsn = getenv("DM_PG_DSN");
    REQUIRE(dsn);
    dm_transport_t *t = open_transport();
    REQUIRE(t);
    dm_error_t err = {0};
    REQUIRE(dm_transport_create_topic(t, &(dm_topic_config_t){.name = "pgplays", .partitions = 2},
                                      &err) == DM_OK);
    dm_avro_schema_t *s1 = parse(V2);
    REQUIRE(s1);
    dm_iceberg_sink_config_t c = {0};
    config(&c, "whpg", "pg.plays", DM_ICEBERG_CATALOG_POSTGRES, "bucket(2, i)");
    c.catalog_dsn = strdup(dsn);
    char expected[700], want[64];
    snprintf(expected, sizeof(expected), "%s/pgplays.jsonl", dir);
    FILE *e = fopen(expected, "w");
    int64_t ends[2] = {0, 0};
    REQUIRE(play_rows(t, "pgplays", 0, 2000, s1, 41, true, e, ends) == 0);
    fclose(e);
    ice_sink_t sink = {.transport = t,
                       .topic = "pgplays",
                       .partitions = 2,
                       .group = "sink-pg",
                       .schema = s1,
                       .schema_id = 41,
                       .conf = &c};
    run_t r;
    run_start(&r, &sink);
    snprintf(want, sizeof(want), "0:%lld,1:%lld", (long long)ends[0], (long long)ends[1]);
    CHECK_EQ_INT(run_wait(&r, want, 60000), 0);
    run_stop(&r);
    CHECK_EQ_INT(readers_check(&c, expected, "i", 2000), 0);

    /* Two writers from the same metadata: the second swap must fail. */
    dm_ice_catalog_t *c1, *c2;
    REQUIRE(dm_ice_catalog_open(DM_ICE_CATALOG_POSTGRES, dsn, "datamesh", &c1, &err) == DM_OK);
    REQUIRE(dm_ice_catalog_open(DM_ICE_CATALOG_POSTGRES, dsn, "datamesh", &c2, &err) == DM_OK);
    dm_ice_table_t *t1, *t2;
    REQUIRE(dm_ice_table_open(c1, c.warehouse, "pg", "plays", NULL, "", NULL, &t1, &err) == DM_OK);
    REQUIRE(dm_ice_table_open(c2, c.warehouse, "pg", "plays", NULL, "", NULL, &t2, &err) == DM_OK);
    dm_ice_commit_t empty = {0};
    CHECK_EQ_INT(dm_ice_table_commit(t1, &empty, &err), DM_OK);
    CHECK_EQ_INT(dm_ice_table_commit(t2, &empty, &err), DM_ERR_AGAIN);
    CHECK_EQ_INT(dm_ice_table_refresh(t2, &err), DM_OK);
    CHECK_EQ_INT(dm_ice_table_commit(t2, &empty, &err), DM_OK);
    dm_ice_table_free(t1);
    dm_ice_table_free(t2);
    dm_ice_catalog_close(c1);
    dm_ice_catalog_close(c2);
    dm_ice_catalog_t *bad = NULL;
    CHECK(dm_ice_catalog_open(DM_ICE_CATALOG_POSTGRES,
                              "host=127.0.0.1 port=1 user=x password=hunter2 connect_timeout=2",
                              "datamesh", &bad, &err) != DM_OK);
    CHECK(strstr(err.message, "hunter2") == NULL);
    CHECK_CONTAINS(err.message, "***");
    dm_config_free(&dm_iceberg_sink_config_table, &c);
    dm_avro_schema_free(s1);
    dm_transport_close(t);
}

int main(int argc, char **argv)
{
    snprintf(dir, sizeof(dir), "%s/iceberg_e2e.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir)) return 1;
    snprintf(logdir, sizeof(logdir), "%s/log", dir);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "bash %s/tests/integration/iceberg/readers.sh",
             getenv("DM_SOURCE_DIR"));
    FILE *p = popen(cmd, "r");
    if (!p || !fgets(readers, sizeof(readers), p) || pclose(p) != 0) {
        printf("FAIL cannot install the npm readers\n");
        return 1;
    }
    readers[strcspn(readers, "\n")] = 0;
    if (argc > 1 && !strcmp(argv[1], "postgres")) {
        RUN(test_postgres_catalog);
    } else {
        RUN(test_append_evolve_restart);
        RUN(test_schema_versions_and_dead_letters);
        RUN(test_upsert_cdc);
        RUN(test_append_structs);
        RUN(test_upsert_lists);
        RUN(test_sigkill_during_commits);
    }
    int rc = check_summary();
    if (rc == 0) {
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        if (system(cmd)) {
        }
    }
    return rc;
}
