/* tests/integration/iceberg_types.c — Avro logical types through the
 * Iceberg sink's row mapping into Parquet, read back by independent readers
 * (DuckDB and hyparquet, from npm): decimals of every physical width
 * (bytes and fixed, INT32 / INT64 / FIXED), uuid strings, fixed[16] and
 * times (millis and micros). Values must read back exactly, statistics must
 * be the columns' true bounds, and the manifest bounds must be Iceberg's
 * single-value serialization. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "connectors/iceberg/rows.h"

static char dir[512], readers[512];

static const char *schema_json =
    "{\"type\":\"record\",\"name\":\"t\",\"fields\":["
    "{\"name\":\"id\",\"type\":\"long\"},"
    "{\"name\":\"price\",\"type\":[\"null\",{\"type\":\"bytes\",\"logicalType\":\"decimal\","
    "\"precision\":9,\"scale\":2}]},"
    "{\"name\":\"qty\",\"type\":{\"type\":\"bytes\",\"logicalType\":\"decimal\",\"precision\":18,"
    "\"scale\":4}},"
    "{\"name\":\"big\",\"type\":[\"null\",{\"type\":\"bytes\",\"logicalType\":\"decimal\","
    "\"precision\":38,\"scale\":10}]},"
    "{\"name\":\"fx\",\"type\":{\"type\":\"fixed\",\"name\":\"f9\",\"size\":9,\"logicalType\":"
    "\"decimal\",\"precision\":20,\"scale\":0}},"
    "{\"name\":\"uid\",\"type\":{\"type\":\"string\",\"logicalType\":\"uuid\"}},"
    "{\"name\":\"fuid\",\"type\":{\"type\":\"fixed\",\"name\":\"u16\",\"size\":16}},"
    "{\"name\":\"tms\",\"type\":{\"type\":\"int\",\"logicalType\":\"time-millis\"}},"
    "{\"name\":\"tus\",\"type\":[\"null\",{\"type\":\"long\",\"logicalType\":\"time-micros\"}]}"
    "]}";
enum { NF = 9 };

/* The unscaled value v as n big-endian two's complement bytes. */
static void be_bytes(__int128 v, uint8_t *out, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        out[i] = (uint8_t)(v & 0xff);
}

/* The shortest big-endian encoding, as Avro writers send decimals. */
static uint32_t short_bytes(__int128 v, uint8_t out[16])
{
    uint8_t full[16];
    be_bytes(v, full, 16);
    uint32_t skip = 0;
    while (skip < 15 && ((full[skip] == 0 && !(full[skip + 1] & 0x80)) ||
                         (full[skip] == 0xff && (full[skip + 1] & 0x80))))
        skip++;
    memcpy(out, full + skip, 16 - skip);
    return 16 - skip;
}

/* Decimal text as DuckDB prints it: every scale digit. */
static void dec_text(__int128 v, int scale, char *out)
{
    char digits[64];
    unsigned __int128 u = v < 0 ? -(unsigned __int128)v : (unsigned __int128)v;
    int n = 0;
    do
        digits[n++] = (char)('0' + (int)(u % 10)), u /= 10;
    while (u);
    while (n <= scale)
        digits[n++] = '0';
    char *o = out;
    if (v < 0) *o++ = '-';
    for (int i = n - 1; i >= 0; i--) {
        *o++ = digits[i];
        if (i == scale && scale > 0) *o++ = '.';
    }
    *o = 0;
}

static void dec_unscaled(__int128 v, char *out)
{
    dec_text(v, 0, out);
}

/* Row i's values, chosen to cover signs, extremes of each precision and
 * both sides of zero. */
static __int128 price_of(int i)
{
    return i == 1   ? 999999999
           : i == 2 ? -999999999
                    : (__int128)((int64_t)i * 7919 % 200001) - 100000;
}
static __int128 qty_of(int i)
{
    return i == 3 ? 999999999999999999LL : (__int128)i * 1234567890123LL - 50000000000000LL;
}
static __int128 big_of(int i)
{
    __int128 max38 = 1;
    for (int k = 0; k < 38; k++)
        max38 *= 10;
    max38 -= 1;
    if (i == 4) return max38;
    if (i == 5) return -max38;
    return ((__int128)i * 1000000007 - 3000000000LL) * (__int128)100000000000000LL + i;
}
static __int128 fx_of(int i)
{
    return i % 2 ? -(__int128)i * 98765432109876LL : (__int128)i * 1000000000000000LL;
}

static int write_file(const char *path, int rows)
{
    dm_error_t err = {0};
    dm_avro_schema_t *as;
    if (dm_avro_schema_parse(schema_json, strlen(schema_json), &as, &err)) {
        printf("    schema: %s\n", err.message);
        return -1;
    }
    dm_ice_schema_t ts;
    if (dm_ice_schema_from_avro(as->root, 1, &ts, &err)) {
        printf("    map: %s\n", err.message);
        return -1;
    }
    ts.id = 0;
    dm_ice_source_t src;
    if (dm_ice_source_init(&src, 1, as, &ts, &err)) return -1;
    dm_pq_column_t cols[NF];
    for (int c = 0; c < NF; c++)
        cols[c] = dm_ice_parquet_column(&ts.fields[c]);
    FILE *f = fopen(path, "wb");
    char exp[600];
    snprintf(exp, sizeof(exp), "%s.jsonl", path);
    FILE *e = fopen(exp, "w");
    if (!f || !e) return -1;
    dm_pq_options_t o = {.codec = DM_PQ_ZSTD, .row_group_bytes = 64 << 10, .page_bytes = 8 << 10};
    dm_pq_writer_t *w;
    if (dm_pq_writer_new(f, cols, NF, &o, &w, &err)) {
        printf("    writer: %s\n", err.message);
        return -1;
    }
    __int128 pmin = 0, pmax = 0;
    for (int i = 0; i < rows; i++) {
        uint8_t pb[16], qb[16], bb[16], fb[9], fu[16];
        char uid[40], t1[64], t2[64], t3[64], t4[64], u1[64], u2[64], u3[64], u4[64];
        dm_avro_value_t fv[NF] = {0};
        fv[0] = (dm_avro_value_t){.type = DM_AVRO_LONG, .u.l = i};
        bool pnull = i % 11 == 7, bnull = i % 13 == 6, tnull = i % 17 == 2;
        __int128 p = price_of(i), q = qty_of(i), b = big_of(i), x = fx_of(i);
        if (!pnull) {
            if (i == 0 || p < pmin) pmin = p;
            if (i == 0 || p > pmax) pmax = p;
        }
        fv[1] = pnull
                    ? (dm_avro_value_t){.type = DM_AVRO_NULL, .branch = 0}
                    : (dm_avro_value_t){
                          .type = DM_AVRO_BYTES, .branch = 1, .len = short_bytes(p, pb), .u.p = pb};
        fv[2] = (dm_avro_value_t){.type = DM_AVRO_BYTES, .len = short_bytes(q, qb), .u.p = qb};
        fv[3] = bnull
                    ? (dm_avro_value_t){.type = DM_AVRO_NULL, .branch = 0}
                    : (dm_avro_value_t){
                          .type = DM_AVRO_BYTES, .branch = 1, .len = short_bytes(b, bb), .u.p = bb};
        be_bytes(x, fb, 9);
        fv[4] = (dm_avro_value_t){.type = DM_AVRO_FIXED, .len = 9, .u.p = fb};
        snprintf(uid, sizeof(uid), "%08x-%04x-4%03x-a%03x-%012" PRIx64, (unsigned)i * 2654435761u,
                 (unsigned)(i & 0xffff), (unsigned)(i % 4096), (unsigned)(i * 7 % 4096),
                 (uint64_t)((uint64_t)i * 0x9e3779b97f4aULL & 0xffffffffffffULL));
        fv[5] = (dm_avro_value_t){.type = DM_AVRO_STRING, .len = 36, .u.p = (uint8_t *)uid};
        for (int k = 0; k < 16; k++)
            fu[k] = (uint8_t)(i * 31 + k * 17);
        fv[6] = (dm_avro_value_t){.type = DM_AVRO_FIXED, .len = 16, .u.p = fu};
        int32_t ms = (int32_t)((int64_t)i * 1234567 % 86400000);
        int64_t us = ((int64_t)i * 987654321LL) % 86400000000LL;
        fv[7] = (dm_avro_value_t){.type = DM_AVRO_INT, .u.i = ms};
        fv[8] = tnull ? (dm_avro_value_t){.type = DM_AVRO_NULL, .branch = 0}
                      : (dm_avro_value_t){.type = DM_AVRO_LONG, .branch = 1, .u.l = us};
        dm_avro_value_t rec = {.type = DM_AVRO_RECORD, .len = NF, .u.v = fv};
        dm_pq_value_t row[NF];
        if (dm_ice_row_convert(&src, &ts, &rec, NULL, row, &err) ||
            dm_pq_writer_add_row(w, row, &err)) {
            printf("    row %d: %s\n", i, err.message);
            return -1;
        }
        dec_text(p, 2, t1), dec_text(q, 4, t2), dec_text(b, 10, t3), dec_text(x, 0, t4);
        dec_unscaled(p, u1), dec_unscaled(q, u2), dec_unscaled(b, u3), dec_unscaled(x, u4);
        fprintf(e, "{\"id\":\"%d\",\"price\":", i);
        if (pnull)
            fprintf(e, "null,\"price_u\":null");
        else
            fprintf(e, "\"%s\",\"price_u\":\"%s\"", t1, u1);
        fprintf(e, ",\"qty\":\"%s\",\"qty_u\":\"%s\",\"big\":", t2, u2);
        if (bnull)
            fprintf(e, "null,\"big_u\":null");
        else
            fprintf(e, "\"%s\",\"big_u\":\"%s\"", t3, u3);
        fprintf(e, ",\"fx\":\"%s\",\"fx_u\":\"%s\",\"uid\":\"%s\",\"fuid\":\"", t4, u4, uid);
        for (int k = 0; k < 16; k++)
            fprintf(e, "%02x", fu[k]);
        fprintf(e, "\",\"tms\":\"%" PRId64 "\",\"tus\":", (int64_t)ms * 1000);
        if (tnull)
            fprintf(e, "null}\n");
        else
            fprintf(e, "\"%" PRId64 "\"}\n", us);
    }
    dm_pq_column_stats_t st[NF];
    if (dm_pq_writer_close(w, st, NULL, &err)) {
        printf("    close: %s\n", err.message);
        return -1;
    }
    fclose(f);
    fclose(e);
    /* Manifest bounds of a decimal: the unscaled value in the fewest
     * big-endian bytes (Iceberg's single-value serialization). */
    uint8_t lo[16], hi[16];
    uint32_t ll = short_bytes(pmin, lo), hl = short_bytes(pmax, hi);
    int rc = 0;
    if (!st[1].has_bounds || st[1].min_len != ll || memcmp(st[1].min, lo, ll) ||
        st[1].max_len != hl || memcmp(st[1].max, hi, hl)) {
        printf("    price bounds are not the minimal big-endian unscaled values\n");
        rc = -2;
    }
    ll = short_bytes(-big_of(4), lo), hl = short_bytes(big_of(4), hi);
    if (!st[3].has_bounds || st[3].min_len != ll || memcmp(st[3].min, lo, ll) ||
        st[3].max_len != hl || memcmp(st[3].max, hi, hl)) {
        printf("    big bounds are not +-(10^38-1)\n");
        rc = -3;
    }
    dm_ice_source_free(&src);
    dm_ice_schema_free(&ts);
    dm_avro_schema_free(as);
    return rc;
}

/* Compaction's reader gives every decimal back in its 16-byte form. */
static int own_reader(const char *path, int rows)
{
    dm_pq_reader_t *r;
    dm_error_t err = {0};
    if (dm_pq_reader_open(path, &r, &err)) return -1;
    dm_pq_value_t *v = calloc((size_t)rows + 1, sizeof(*v));
    int bad = 0;
    for (size_t c = 1; c <= 4 && v; c++) {
        if (dm_pq_reader_read_column(r, c, v, &err)) {
            printf("    own reader: %s\n", err.message);
            bad++;
            break;
        }
        for (int i = 0; i < rows; i++) {
            __int128 want = c == 1   ? price_of(i)
                            : c == 2 ? qty_of(i)
                            : c == 3 ? big_of(i)
                                     : fx_of(i);
            uint8_t w[16];
            be_bytes(want, w, 16);
            if (!v[i].null && memcmp(v[i].u.dec, w, 16) && bad++ < 5)
                printf("    own reader: column %zu row %d differs\n", c, i);
        }
    }
    free(v);
    dm_pq_reader_free(r);
    return bad ? -1 : 0;
}

static void test_logical_types_read_back(void)
{
    char path[600], cmd[2048];
    snprintf(path, sizeof(path), "%s/types.parquet", dir);
    CHECK_EQ_INT(write_file(path, 3000), 0);
    snprintf(cmd, sizeof(cmd), "cd %s && node read_types.mjs %s %s.jsonl", readers, path, path);
    CHECK_EQ_INT(system(cmd), 0);
    CHECK_EQ_INT(own_reader(path, 3000), 0);
}

/* The table schema as metadata spells it, and back. */
static void test_schema_json(void)
{
    dm_error_t err = {0};
    dm_avro_schema_t *as;
    REQUIRE(dm_avro_schema_parse(schema_json, strlen(schema_json), &as, &err) == DM_OK);
    dm_ice_schema_t ts, back;
    REQUIRE(dm_ice_schema_from_avro(as->root, 1, &ts, &err) == DM_OK);
    json_t *j = dm_ice_schema_to_json(&ts);
    char *text = json_dumps(j, JSON_COMPACT);
    CHECK_CONTAINS(text, "\"type\":\"decimal(9, 2)\"");
    CHECK_CONTAINS(text, "\"type\":\"decimal(38, 10)\"");
    CHECK_CONTAINS(text, "\"name\":\"uid\",\"required\":true,\"type\":\"uuid\"");
    CHECK_CONTAINS(text, "\"type\":\"time\"");
    CHECK_EQ_INT(dm_ice_schema_from_json(j, &back, &err), DM_OK);
    CHECK_EQ_INT(back.fields[3].precision, 38);
    CHECK_EQ_INT(back.fields[3].scale, 10);
    CHECK_EQ_INT(dm_ice_parquet_column(&back.fields[4]).fixed_len, 9);
    CHECK_EQ_INT(dm_ice_parquet_column(&back.fields[3]).fixed_len, 16);
    CHECK_EQ_INT(dm_ice_parquet_column(&back.fields[1]).type, DM_PQ_INT32);
    CHECK_EQ_INT(dm_ice_parquet_column(&back.fields[2]).type, DM_PQ_INT64);
    free(text);
    json_decref(j);
    dm_ice_schema_free(&back);
    dm_ice_schema_free(&ts);
    dm_avro_schema_free(as);
}

/* Bad input: a decimal beyond Iceberg's 38 digits is refused naming the
 * field; a value with more digits than its precision and a malformed uuid
 * are refused naming the column. */
static void test_refusals(void)
{
    dm_error_t err = {0};
    const char *wide = "{\"type\":\"record\",\"name\":\"w\",\"fields\":[{\"name\":\"n\",\"type\":"
                       "{\"type\":\"bytes\",\"logicalType\":\"decimal\",\"precision\":60,"
                       "\"scale\":2}}]}";
    dm_avro_schema_t *as;
    REQUIRE(dm_avro_schema_parse(wide, strlen(wide), &as, &err) == DM_OK);
    dm_ice_schema_t ts;
    CHECK_EQ_INT(dm_ice_schema_from_avro(as->root, 1, &ts, &err), DM_ERR_UNSUPPORTED);
    CHECK_CONTAINS(err.message, "field n is a decimal of precision 60");
    dm_avro_schema_free(as);

    REQUIRE(dm_avro_schema_parse(schema_json, strlen(schema_json), &as, &err) == DM_OK);
    REQUIRE(dm_ice_schema_from_avro(as->root, 1, &ts, &err) == DM_OK);
    dm_ice_source_t src;
    REQUIRE(dm_ice_source_init(&src, 1, as, &ts, &err) == DM_OK);
    uint8_t ten_digits[5];
    be_bytes(1000000000, ten_digits, 5); /* 10 digits into decimal(9, 2) */
    uint8_t fx[9] = {0}, fu[16] = {0};
    dm_avro_value_t fv[NF] = {
        {.type = DM_AVRO_LONG},
        {.type = DM_AVRO_BYTES, .branch = 1, .len = 5, .u.p = ten_digits},
        {.type = DM_AVRO_BYTES, .len = 1, .u.p = fx},
        {.type = DM_AVRO_NULL},
        {.type = DM_AVRO_FIXED, .len = 9, .u.p = fx},
        {.type = DM_AVRO_STRING,
         .len = 36,
         .u.p = (const uint8_t *)"0000000-0000-0000-0000-0000000000000"},
        {.type = DM_AVRO_FIXED, .len = 16, .u.p = fu},
        {.type = DM_AVRO_INT},
        {.type = DM_AVRO_NULL},
    };
    dm_avro_value_t rec = {.type = DM_AVRO_RECORD, .len = NF, .u.v = fv};
    dm_pq_value_t row[NF];
    CHECK_EQ_INT(dm_ice_row_convert(&src, &ts, &rec, NULL, row, &err), DM_ERR_SCHEMA_MISMATCH);
    CHECK_CONTAINS(err.message, "column price: decimal value has more than 9 digits");
    be_bytes(-999999999, ten_digits, 5);
    CHECK_EQ_INT(dm_ice_row_convert(&src, &ts, &rec, NULL, row, &err), DM_ERR_SCHEMA_MISMATCH);
    CHECK_CONTAINS(err.message, "column uid:");
    CHECK_CONTAINS(err.message, "is not a uuid");
    dm_ice_source_free(&src);
    dm_ice_schema_free(&ts);
    dm_avro_schema_free(as);
}

/* ---- structs ------------------------------------------------------------------ */

static const char *nested_json =
    "{\"type\":\"record\",\"name\":\"n\",\"fields\":["
    "{\"name\":\"id\",\"type\":\"long\"},"
    "{\"name\":\"addr\",\"type\":[\"null\",{\"type\":\"record\",\"name\":\"Addr\",\"fields\":["
    "{\"name\":\"street\",\"type\":\"string\"},{\"name\":\"zip\",\"type\":\"int\"},"
    "{\"name\":\"geo\",\"type\":{\"type\":\"record\",\"name\":\"Geo\",\"fields\":["
    "{\"name\":\"lat\",\"type\":\"double\"},{\"name\":\"lon\",\"type\":[\"null\",\"double\"]}]}}"
    "]}]},"
    "{\"name\":\"meta\",\"type\":{\"type\":\"record\",\"name\":\"Meta\",\"fields\":["
    "{\"name\":\"price\",\"type\":{\"type\":\"bytes\",\"logicalType\":\"decimal\",\"precision\":9,"
    "\"scale\":2}},{\"name\":\"tag\",\"type\":[\"null\",\"string\"]}]}},"
    "{\"name\":\"id2\",\"type\":\"string\"}"
    "]}";

/* Rows with a nullable struct (holding a required struct with a nullable
 * field), a required struct and columns after them, through the row mapping
 * into Parquet groups; DuckDB and hyparquet read every value and the field
 * id of every schema element. */
static int write_nested(const char *path, int rows)
{
    dm_error_t err = {0};
    dm_avro_schema_t *as;
    if (dm_avro_schema_parse(nested_json, strlen(nested_json), &as, &err)) {
        printf("    schema: %s\n", err.message);
        return -1;
    }
    dm_ice_schema_t ts;
    if (dm_ice_schema_from_avro(as->root, 1, &ts, &err)) {
        printf("    map: %s\n", err.message);
        return -1;
    }
    /* id addr street zip geo lat lon meta price tag id2 */
    if (ts.n != 11 || ts.fields[1].type != DM_ICE_STRUCT || ts.fields[1].n_children != 3 ||
        ts.fields[4].n_children != 2 || ts.fields[7].n_children != 2 || ts.fields[10].id != 11) {
        printf("    unexpected table schema (%zu entries)\n", ts.n);
        return -1;
    }
    dm_ice_source_t src;
    if (dm_ice_source_init(&src, 1, as, &ts, &err)) return -1;
    dm_pq_column_t cols[11];
    for (size_t c = 0; c < ts.n; c++)
        cols[c] = dm_ice_parquet_column(&ts.fields[c]);
    FILE *f = fopen(path, "wb");
    char exp[600];
    snprintf(exp, sizeof(exp), "%s.jsonl", path);
    FILE *e = fopen(exp, "w");
    if (!f || !e) return -1;
    dm_pq_options_t o = {.codec = DM_PQ_SNAPPY, .row_group_bytes = 32 << 10, .page_bytes = 4 << 10};
    dm_pq_writer_t *w;
    if (dm_pq_writer_new(f, cols, ts.n, &o, &w, &err)) {
        printf("    writer: %s\n", err.message);
        return -1;
    }
    for (int i = 0; i < rows; i++) {
        char street[32], tag[32], id2[32];
        uint8_t pb[16];
        int sl = snprintf(street, sizeof(street), "street %d", i % 97);
        int tl = snprintf(tag, sizeof(tag), "tag-%d", i % 5);
        int il = snprintf(id2, sizeof(id2), "k%d", i);
        bool anull = i % 4 == 1, lnull = i % 3 == 0, tnull = i % 5 == 2;
        double lat = (i % 180) - 89.5, lon = (i % 360) * 0.5 - 90;
        __int128 price = (__int128)((int64_t)i * 7919 % 100001) - 50000;
        dm_avro_value_t geo[2] = {
            {.type = DM_AVRO_DOUBLE, .u.d = lat},
            lnull ? (dm_avro_value_t){.type = DM_AVRO_NULL}
                  : (dm_avro_value_t){.type = DM_AVRO_DOUBLE, .branch = 1, .u.d = lon}};
        dm_avro_value_t addr[3] = {
            {.type = DM_AVRO_STRING, .len = (uint32_t)sl, .u.p = (uint8_t *)street},
            {.type = DM_AVRO_INT, .u.i = 10000 + i},
            {.type = DM_AVRO_RECORD, .len = 2, .u.v = geo}};
        dm_avro_value_t meta[2] = {
            {.type = DM_AVRO_BYTES, .len = short_bytes(price, pb), .u.p = pb},
            tnull ? (dm_avro_value_t){.type = DM_AVRO_NULL}
                  : (dm_avro_value_t){.type = DM_AVRO_STRING,
                                      .branch = 1,
                                      .len = (uint32_t)tl,
                                      .u.p = (uint8_t *)tag}};
        dm_avro_value_t fv[4] = {
            {.type = DM_AVRO_LONG, .u.l = i},
            anull ? (dm_avro_value_t){.type = DM_AVRO_NULL}
                  : (dm_avro_value_t){.type = DM_AVRO_RECORD, .branch = 1, .len = 3, .u.v = addr},
            {.type = DM_AVRO_RECORD, .len = 2, .u.v = meta},
            {.type = DM_AVRO_STRING, .len = (uint32_t)il, .u.p = (uint8_t *)id2}};
        dm_avro_value_t rec = {.type = DM_AVRO_RECORD, .len = 4, .u.v = fv};
        dm_pq_value_t row[11];
        if (dm_ice_row_convert(&src, &ts, &rec, NULL, row, &err) ||
            dm_pq_writer_add_row(w, row, &err)) {
            printf("    row %d: %s\n", i, err.message);
            return -1;
        }
        char pt[64], pu[64];
        dec_text(price, 2, pt), dec_unscaled(price, pu);
        fprintf(e, "{\"id\":\"%d\",\"addr\":", i);
        if (anull)
            fprintf(e, "null");
        else {
            fprintf(e, "{\"street\":\"%s\",\"zip\":%d,\"geo\":{\"lat\":%.17g,\"lon\":", street,
                    10000 + i, lat);
            if (lnull)
                fprintf(e, "null}}");
            else
                fprintf(e, "%.17g}}", lon);
        }
        fprintf(e, ",\"price\":\"%s\",\"price_u\":\"%s\",\"tag\":", pt, pu);
        if (tnull)
            fprintf(e, "null");
        else
            fprintf(e, "\"%s\"", tag);
        fprintf(e, ",\"id2\":\"%s\"}\n", id2);
    }
    dm_pq_column_stats_t st[11];
    int rc = dm_pq_writer_close(w, st, NULL, &err) ? -1 : 0;
    if (rc) printf("    close: %s\n", err.message);
    fclose(f);
    fclose(e);
    /* Leaf statistics count every row; the nulls of a field under a null
     * struct count as nulls. */
    if (!rc && (st[2].values != rows || st[2].nulls != (rows + 2) / 4 || st[1].values != 0)) {
        printf("    street stats: %lld values, %lld nulls\n", (long long)st[2].values,
               (long long)st[2].nulls);
        rc = -2;
    }
    dm_ice_source_free(&src);
    dm_ice_schema_free(&ts);
    dm_avro_schema_free(as);
    return rc;
}

static void test_structs_read_back(void)
{
    char path[600], cmd[2048];
    snprintf(path, sizeof(path), "%s/nested.parquet", dir);
    CHECK_EQ_INT(write_nested(path, 3000), 0);
    snprintf(cmd, sizeof(cmd), "cd %s && node read_nested.mjs %s %s.jsonl", readers, path, path);
    CHECK_EQ_INT(system(cmd), 0);
}

/* The nested table schema as metadata writes it ("struct" types with their
 * fields and ids) and back; a changed struct is refused by evolution. */
static void test_struct_schema_json(void)
{
    dm_error_t err = {0};
    dm_avro_schema_t *as;
    REQUIRE(dm_avro_schema_parse(nested_json, strlen(nested_json), &as, &err) == DM_OK);
    dm_ice_schema_t ts, back, evolved;
    REQUIRE(dm_ice_schema_from_avro(as->root, 1, &ts, &err) == DM_OK);
    json_t *j = dm_ice_schema_to_json(&ts);
    char *text = json_dumps(j, JSON_COMPACT);
    CHECK_CONTAINS(text,
                   "{\"id\":5,\"name\":\"geo\",\"required\":true,\"type\":{\"type\":\"struct\","
                   "\"fields\":[{\"id\":6,\"name\":\"lat\"");
    CHECK_EQ_INT(dm_ice_schema_from_json(j, &back, &err), DM_OK);
    CHECK_EQ_INT((int)back.n, 11);
    CHECK_EQ_INT(back.fields[4].n_children, 2);
    CHECK_EQ_INT(back.fields[10].id, 11);
    CHECK(dm_ice_schema_find(&back, "lat") == NULL); /* top level only */
    CHECK(dm_ice_schema_find(&back, "id2") == &back.fields[10]);
    bool changed = true;
    CHECK_EQ_INT(dm_ice_schema_evolve(&back, 11, &ts, &evolved, &changed, &err), DM_OK);
    CHECK(!changed);
    dm_ice_schema_free(&evolved);
    back.fields[6].type = DM_ICE_FLOAT; /* geo.lat differs */
    CHECK_EQ_INT(dm_ice_schema_evolve(&back, 11, &ts, &evolved, &changed, &err),
                 DM_ERR_SCHEMA_INCOMPATIBLE);
    CHECK_CONTAINS(err.message, "nested column addr");
    free(text);
    json_decref(j);
    dm_ice_schema_free(&back);
    dm_ice_schema_free(&ts);
    dm_avro_schema_free(as);
}

/* A table widened by one partition's sink (int -> long) still takes records
 * of the older, narrower version from another's: nothing changes, the values
 * are written widened; a narrowing or another type is refused. */
static void test_evolve_older_narrower_source(void)
{
    dm_error_t err = {0};
    const char *wide = "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"id\","
                       "\"type\":\"long\"},{\"name\":\"amount\",\"type\":\"long\"},"
                       "{\"name\":\"price\",\"type\":\"double\"}]}";
    const char *narrow = "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"id\","
                         "\"type\":\"long\"},{\"name\":\"amount\",\"type\":\"int\"},"
                         "{\"name\":\"price\",\"type\":\"float\"}]}";
    const char *other = "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"id\","
                        "\"type\":\"long\"},{\"name\":\"amount\",\"type\":\"string\"}]}";
    dm_avro_schema_t *aw, *an, *ao;
    REQUIRE(dm_avro_schema_parse(wide, strlen(wide), &aw, &err) == DM_OK);
    REQUIRE(dm_avro_schema_parse(narrow, strlen(narrow), &an, &err) == DM_OK);
    REQUIRE(dm_avro_schema_parse(other, strlen(other), &ao, &err) == DM_OK);
    dm_ice_schema_t tw, tn, to, out;
    REQUIRE(dm_ice_schema_from_avro(aw->root, 1, &tw, &err) == DM_OK);
    REQUIRE(dm_ice_schema_from_avro(an->root, 1, &tn, &err) == DM_OK);
    REQUIRE(dm_ice_schema_from_avro(ao->root, 1, &to, &err) == DM_OK);
    bool changed = true;
    CHECK_EQ_INT(dm_ice_schema_evolve(&tw, 3, &tn, &out, &changed, &err), DM_OK);
    CHECK(!changed); /* the wide table stays */
    CHECK_EQ_INT(out.fields[1].type, DM_ICE_LONG);
    dm_ice_schema_free(&out);
    CHECK_EQ_INT(dm_ice_schema_evolve(&tn, 3, &tw, &out, &changed, &err), DM_OK);
    CHECK(changed); /* a narrow table widens */
    CHECK_EQ_INT(out.fields[1].type, DM_ICE_LONG);
    CHECK_EQ_INT(out.fields[2].type, DM_ICE_DOUBLE);
    dm_ice_schema_free(&out);
    CHECK_EQ_INT(dm_ice_schema_evolve(&tw, 3, &to, &out, &changed, &err),
                 DM_ERR_SCHEMA_INCOMPATIBLE);
    CHECK_CONTAINS(err.message, "column amount is long in the table and string in the source");
    dm_ice_schema_free(&tw);
    dm_ice_schema_free(&tn);
    dm_ice_schema_free(&to);
    dm_avro_schema_free(aw);
    dm_avro_schema_free(an);
    dm_avro_schema_free(ao);
}

/* ---- lists and maps --------------------------------------------------------------- */

static const char *lists_json =
    "{\"type\":\"record\",\"name\":\"L\",\"fields\":["
    "{\"name\":\"id\",\"type\":\"long\"},"
    "{\"name\":\"tags\",\"type\":[\"null\",{\"type\":\"array\",\"items\":[\"null\",\"string\"]}]},"
    "{\"name\":\"pts\",\"type\":{\"type\":\"array\",\"items\":{\"type\":\"record\",\"name\":\"P\","
    "\"fields\":[{\"name\":\"x\",\"type\":\"int\"},{\"name\":\"y\",\"type\":[\"null\",\"double\"]}]"
    "}}},"
    "{\"name\":\"attrs\",\"type\":[\"null\",{\"type\":\"map\",\"values\":[\"null\",\"long\"]}]},"
    "{\"name\":\"nest\",\"type\":{\"type\":\"array\",\"items\":{\"type\":\"array\",\"items\":"
    "\"int\"}}},"
    "{\"name\":\"s\",\"type\":[\"null\",{\"type\":\"record\",\"name\":\"S\",\"fields\":["
    "{\"name\":\"name\",\"type\":\"string\"},"
    "{\"name\":\"m\",\"type\":{\"type\":\"map\",\"values\":\"string\"}}]}]}]}";

/* Row i as plain JSON: null, empty and full lists and maps by turns, null
 * elements and values, a list of lists, a map in a struct. */
static void lists_row(int i, char *out, size_t cap)
{
    const char *tags[] = {"null", "[]", "[\"a\",null]", NULL};
    char t[32], pts[96] = "[]", attrs[64] = "null", nest[64], s[96] = "null";
    snprintf(t, sizeof(t), "[\"t%d\"]", i);
    if (i % 3) snprintf(pts, sizeof(pts), "[{\"x\":%d,\"y\":0.5},{\"x\":%d,\"y\":null}]", i, -i);
    if (i % 3 == 1) snprintf(attrs, sizeof(attrs), "{}");
    if (i % 3 == 2) snprintf(attrs, sizeof(attrs), "{\"k\":%d,\"z\":null}", i);
    const char *nests[] = {"[]", "[[]]", "[[1,2],[3]]", NULL};
    snprintf(nest, sizeof(nest), "[[%d],[],[%d,%d]]", i, i, i);
    if (i % 5 && i % 2) snprintf(s, sizeof(s), "{\"name\":\"n%d\",\"m\":{}}", i);
    if (i % 5 && !(i % 2)) snprintf(s, sizeof(s), "{\"name\":\"n%d\",\"m\":{\"a\":\"x%d\"}}", i, i);
    snprintf(out, cap, "{\"id\":%d,\"tags\":%s,\"pts\":%s,\"attrs\":%s,\"nest\":%s,\"s\":%s}", i,
             tags[i % 4] ? tags[i % 4] : t, pts, attrs, nests[i % 4] ? nests[i % 4] : nest, s);
}

/* Rows with lists and maps through the row mapping (striping) into the
 * Parquet writer's 3-level groups, with small pages and row groups; hyparquet
 * and DuckDB read every value and the schema elements. */
static int write_lists(const char *path, int rows, bool no_dict, dm_pq_column_stats_t *st)
{
    dm_error_t err = {0};
    dm_avro_schema_t *as;
    dm_ice_schema_t ts;
    if (dm_avro_schema_parse(lists_json, strlen(lists_json), &as, &err) ||
        dm_ice_schema_from_avro(as->root, 1, &ts, &err)) {
        printf("    schema: %s\n", err.message);
        return -1;
    }
    if (ts.n != 18) {
        printf("    unexpected table schema (%zu entries)\n", ts.n);
        return -1;
    }
    dm_ice_source_t src;
    if (dm_ice_source_init(&src, 1, as, &ts, &err)) return -1;
    dm_pq_column_t cols[18];
    for (size_t c = 0; c < ts.n; c++)
        cols[c] = dm_ice_parquet_column(&ts.fields[c]);
    FILE *f = fopen(path, "wb");
    char exp[600];
    snprintf(exp, sizeof(exp), "%s.jsonl", path);
    FILE *e = fopen(exp, "w");
    if (!f || !e) return -1;
    dm_pq_options_t o = {.codec = DM_PQ_ZSTD,
                         .row_group_bytes = 8 << 10,
                         .page_bytes = 256,
                         .no_dictionary = no_dict};
    dm_pq_writer_t *w;
    if (dm_pq_writer_new(f, cols, ts.n, &o, &w, &err)) {
        printf("    writer: %s\n", err.message);
        return -1;
    }
    dm_arena_t arena;
    dm_arena_init(&arena, 0);
    int rc = 0;
    for (int i = 0; i < rows && !rc; i++) {
        char json[512];
        lists_row(i, json, sizeof(json));
        fprintf(e, "%s\n", json);
        dm_avro_value_t v;
        dm_pq_value_t row[18];
        if (dm_avro_from_json_text(as->root, json, strlen(json), DM_AVRO_JSON_PLAIN, &arena, &v,
                                   &err) ||
            dm_ice_row_convert(&src, &ts, &v, NULL, row, &err) ||
            dm_pq_writer_add_row(w, row, &err)) {
            printf("    row %d %s: %s\n", i, json, err.message);
            rc = -1;
        }
        dm_arena_reset(&arena);
    }
    if (!rc && dm_pq_writer_close(w, st, NULL, &err)) {
        printf("    close: %s\n", err.message);
        rc = -1;
    } else if (rc) {
        dm_pq_writer_abort(w);
    }
    fclose(f);
    fclose(e);
    dm_arena_destroy(&arena);
    dm_ice_source_free(&src);
    dm_ice_schema_free(&ts);
    dm_avro_schema_free(as);
    return rc;
}

static void test_lists_read_back(void)
{
    char path[600], cmd[2600];
    dm_pq_column_stats_t st[18];
    /* PLAIN pages sent as they fill (a page ends where a row does). */
    snprintf(path, sizeof(path), "%s/lists_plain.parquet", dir);
    CHECK_EQ_INT(write_lists(path, 400, true, st), 0);
    snprintf(cmd, sizeof(cmd),
             "cd %s && node read_lists.mjs %s %s.jsonl "
             "id:REQUIRED:1,tags:OPTIONAL:2:LIST,list:REPEATED:-,element:OPTIONAL:3:UTF8,"
             "pts:REQUIRED:4:LIST,list:REPEATED:-,element:REQUIRED:5,x:REQUIRED:6,y:OPTIONAL:7,"
             "attrs:OPTIONAL:8:MAP,key_value:REPEATED:-,key:REQUIRED:9:UTF8,value:OPTIONAL:10,"
             "nest:REQUIRED:11:LIST,list:REPEATED:-,element:REQUIRED:12:LIST,list:REPEATED:-,"
             "element:REQUIRED:13,s:OPTIONAL:14,name:REQUIRED:15:UTF8,m:REQUIRED:16:MAP,"
             "key_value:REPEATED:-,key:REQUIRED:17:UTF8,value:REQUIRED:18:UTF8",
             readers, path, path);
    CHECK_EQ_INT(system(cmd), 0);
    /* Dictionary chunks (small ones: the values repeat). */
    snprintf(path, sizeof(path), "%s/lists.parquet", dir);
    CHECK_EQ_INT(write_lists(path, 400, false, st), 0);
    snprintf(cmd, sizeof(cmd),
             "cd %s && node read_lists.mjs %s %s.jsonl "
             "id:REQUIRED:1,tags:OPTIONAL:2:LIST,list:REPEATED:-,element:OPTIONAL:3:UTF8,"
             "pts:REQUIRED:4:LIST,list:REPEATED:-,element:REQUIRED:5,x:REQUIRED:6,y:OPTIONAL:7,"
             "attrs:OPTIONAL:8:MAP,key_value:REPEATED:-,key:REQUIRED:9:UTF8,value:OPTIONAL:10,"
             "nest:REQUIRED:11:LIST,list:REPEATED:-,element:REQUIRED:12:LIST,list:REPEATED:-,"
             "element:REQUIRED:13,s:OPTIONAL:14,name:REQUIRED:15:UTF8,m:REQUIRED:16:MAP,"
             "key_value:REPEATED:-,key:REQUIRED:17:UTF8,value:REQUIRED:18:UTF8",
             readers, path, path);
    CHECK_EQ_INT(system(cmd), 0);
    /* Manifest metrics: leaves under lists and maps count their entries
     * (tags.element: 1 null list + 1 empty + 2 + 1 per 4 rows) and get no
     * bounds; leaves through structs only keep theirs. */
    CHECK(st[0].has_bounds);
    CHECK(st[14].has_bounds); /* s.name */
    CHECK(!st[2].has_bounds && !st[9].has_bounds && !st[12].has_bounds);
    CHECK_EQ_INT(st[2].values, 400 / 4 * 5);
    CHECK_EQ_INT(st[2].nulls, 400 / 4 * 3);
    CHECK_EQ_INT(st[1].values, 0); /* the list itself has no chunk */
    /* datamesh's own reader (compaction's) gives the same levels back. */
    dm_error_t err = {0};
    dm_pq_reader_t *r;
    REQUIRE(dm_pq_reader_open(path, &r, &err) == DM_OK);
    CHECK_EQ_INT((int)dm_pq_reader_n_columns(r), 18);
    dm_pq_leaf_t l;
    REQUIRE(dm_pq_reader_read_leaf(r, 12, &l, &err) == DM_OK); /* nest.element.element */
    CHECK_EQ_INT(l.max_rep, 2);
    CHECK_EQ_INT(l.max_def, 2);
    /* per 4 rows: [] 1 entry, [[]] 1, [[1,2],[3]] 3, [[i],[],[i,i]] 4 */
    CHECK_EQ_INT((int)l.n, 400 / 4 * 9);
    CHECK(l.reps[0] == 0 && l.defs[0] == 0 && l.defs[1] == 1 && l.reps[2] == 0 && l.reps[3] == 2 &&
          l.reps[4] == 1 && l.vals[4].u.i32 == 3);
    dm_pq_leaf_free(&l);
    CHECK_EQ_INT(dm_pq_reader_read_column(r, 12, (dm_pq_value_t[1]){{0}}, &err), DM_ERR_INVALID);
    dm_pq_reader_free(r);
}

/* Entries that break the levels' rules are refused before anything of the
 * row is buffered, naming the column. */
static void test_list_entries_refused(void)
{
    dm_pq_column_t cols[2] = {
        {.name = "l", .field_id = 1, .optional = true, .n_children = 1, .logical = DM_PQ_LT_LIST},
        {.name = "element", .field_id = 2, .type = DM_PQ_INT32}};
    char path[600];
    snprintf(path, sizeof(path), "%s/bad_list.parquet", dir);
    FILE *f = fopen(path, "wb");
    REQUIRE(f);
    dm_error_t err = {0};
    dm_pq_writer_t *w;
    dm_pq_options_t o = {.codec = DM_PQ_UNCOMPRESSED};
    REQUIRE(dm_pq_writer_new(f, cols, 2, &o, &w, &err) == DM_OK);
    dm_pq_entry_t e[2] = {{.col = 1, .rep = 1, .def = 2, .v.u.i32 = 5},
                          {.col = 1, .rep = 0, .def = 2, .v.u.i32 = 6}};
    dm_pq_value_t row[2] = {{.u.rep = {e, 2}}, {.null = true}};
    CHECK_EQ_INT(dm_pq_writer_add_row(w, row, &err), DM_ERR_INVALID);
    CHECK_CONTAINS(err.message, "column element");
    e[0].rep = 0, e[1].rep = 1;
    CHECK_EQ_INT(dm_pq_writer_add_row(w, row, &err), DM_OK);
    row[0].u.rep.n = 0; /* a present list with no entry for its leaf */
    CHECK_EQ_INT(dm_pq_writer_add_row(w, row, &err), DM_ERR_INVALID);
    CHECK_EQ_INT(dm_pq_writer_rows(w), 1);
    CHECK_EQ_INT(dm_pq_writer_close(w, NULL, NULL, &err), DM_OK);
    fclose(f);
    /* Evolution: a new list column gets fresh ids; a change inside one is refused. */
    dm_avro_schema_t *as;
    REQUIRE(dm_avro_schema_parse(lists_json, strlen(lists_json), &as, &err) == DM_OK);
    dm_ice_schema_t ts, evolved, small = {0};
    REQUIRE(dm_ice_schema_from_avro(as->root, 1, &ts, &err) == DM_OK);
    REQUIRE(dm_ice_schema_copy(&ts, &small) == DM_OK);
    for (size_t i = 3; i < small.n; i++) /* keep id, tags */
        free(small.fields[i].name);
    small.n = 3;
    bool changed = false;
    CHECK_EQ_INT(dm_ice_schema_evolve(&small, 3, &ts, &evolved, &changed, &err), DM_OK);
    CHECK(changed);
    CHECK_EQ_INT((int)evolved.n, 18);
    CHECK_EQ_INT(evolved.fields[3].id, 4);
    CHECK_EQ_INT(evolved.fields[17].id, 18);
    CHECK(!evolved.fields[3].required); /* a new column is optional */
    dm_ice_schema_free(&evolved);
    small.fields[2].type = DM_ICE_LONG; /* tags.element differs */
    CHECK_EQ_INT(dm_ice_schema_evolve(&small, 3, &ts, &evolved, &changed, &err),
                 DM_ERR_SCHEMA_INCOMPATIBLE);
    CHECK_CONTAINS(err.message, "nested column tags");
    dm_ice_schema_free(&small);
    dm_ice_schema_free(&ts);
    dm_avro_schema_free(as);
}

/* Damaged files (bytes flipped, tails cut) of the list and map file: the
 * reader answers with an error or values, never a crash (ASan watches). */
static void test_lists_reader_damage(void)
{
    char path[600], bad[620];
    snprintf(path, sizeof(path), "%s/lists.parquet", dir);
    snprintf(bad, sizeof(bad), "%s/damaged.parquet", dir);
    char *orig = NULL;
    size_t len = 0;
    dm_error_t err = {0};
    REQUIRE(dm_ice_read_file(path, &orig, &len, &err) == DM_OK);
    uint64_t seed = 7;
    int opened = 0;
    for (int round = 0; round < 400; round++) {
        uint8_t *b = malloc(len);
        memcpy(b, orig, len);
        size_t n = len;
        for (int k = 0; k < 1 + round % 4; k++) {
            seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
            /* Mostly the footer (the schema, the chunk offsets), some pages. */
            size_t at = round % 3 ? n - 8 - (size_t)(seed >> 33) % (n < 600 ? n - 8 : 600)
                                  : (size_t)(seed >> 33) % n;
            b[at] ^= (uint8_t)(1 + (seed >> 20) % 255);
        }
        if (round % 7 == 0) n -= (size_t)(seed >> 40) % (n / 2);
        FILE *f = fopen(bad, "wb");
        fwrite(b, 1, n, f);
        fclose(f);
        free(b);
        dm_pq_reader_t *r;
        if (dm_pq_reader_open(bad, &r, &err)) continue;
        opened++;
        for (size_t c = 0; c < dm_pq_reader_n_columns(r); c++) {
            dm_pq_leaf_t l;
            if (dm_pq_reader_column(r, c)->n_children) continue;
            if (dm_pq_reader_read_leaf(r, c, &l, &err) == DM_OK) dm_pq_leaf_free(&l);
        }
        dm_pq_reader_free(r);
    }
    free(orig);
    CHECK(opened > 0); /* some damage leaves the footer readable: the pages get read */
}

int main(void)
{
    snprintf(dir, sizeof(dir), "%s/iceberg_types.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir)) return 1;
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "bash %s/tests/integration/iceberg/readers.sh",
             getenv("DM_SOURCE_DIR"));
    FILE *p = popen(cmd, "r");
    if (!p || !fgets(readers, sizeof(readers), p) || pclose(p) != 0) {
        printf("FAIL cannot install the npm readers\n");
        return 1;
    }
    readers[strcspn(readers, "\n")] = 0;
    RUN(test_schema_json);
    RUN(test_refusals);
    RUN(test_logical_types_read_back);
    RUN(test_struct_schema_json);
    RUN(test_structs_read_back);
    RUN(test_evolve_older_narrower_source);
    RUN(test_lists_read_back);
    RUN(test_list_entries_refused);
    RUN(test_lists_reader_damage);
    int rc = check_summary();
    if (rc == 0) {
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        if (system(cmd)) {
        }
    }
    return rc;
}
