/* Unit tests for engine/expr_vec.c: the batch form of expressions gives, on
 * every record it does not leave to the tree walker, exactly what the tree
 * walker gives (values, NULLs, NaN comparisons, three-valued logic), and
 * leaves to it every record that could fail (overflow, division by zero). */
#include <math.h>

#include "check.h"
#include "engine/expr.h"

static const char *schema_json =
    "{\"type\": \"record\", \"name\": \"R\", \"fields\": ["
    " {\"name\": \"i\", \"type\": \"int\"},"
    " {\"name\": \"l\", \"type\": [\"null\", \"long\"]},"
    " {\"name\": \"d\", \"type\": [\"null\", \"double\"]},"
    " {\"name\": \"f\", \"type\": \"float\"},"
    " {\"name\": \"b\", \"type\": [\"null\", \"boolean\"]},"
    " {\"name\": \"s\", \"type\": [\"null\", \"string\"]},"
    " {\"name\": \"ts\", \"type\": {\"type\": \"long\", \"logicalType\": \"timestamp-millis\"}},"
    " {\"name\": \"n\", \"type\": [\"null\", {\"type\": \"record\", \"name\": \"N\", \"fields\": ["
    "   {\"name\": \"x\", \"type\": \"long\"}, {\"name\": \"t\", \"type\": \"boolean\"}]}]}]}";

#define N_RECS 700

typedef struct row {
    char pad[8];
    dm_avro_value_t value;
    char more[24]; /* a stride that is not a value's size */
} row_t;

static dm_avro_schema_t *schema;
static row_t rows[N_RECS];
static dm_arena_t arena;
static uint64_t seed = 0x9e3779b97f4a7c15ULL;

static uint64_t rnd(void)
{
    seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
    return seed;
}

static dm_avro_value_t v_null(void)
{
    return (dm_avro_value_t){.type = DM_AVRO_NULL};
}

static void make_rows(void)
{
    static const int64_t longs[] = {
        0, 1, -1, 7, 50, 100, INT64_MAX, INT64_MIN, 4611686018427387904};
    static const double doubles[] = {0.0, -0.0, 1.5, 50.0, 50.5, -3.25, 1e300, NAN, INFINITY};
    static const char *strings[] = {"", "a", "US", "USA", "FR", "b"};
    for (int r = 0; r < N_RECS; r++) {
        dm_avro_value_t *f = dm_arena_calloc(&arena, 8, sizeof(*f));
        REQUIRE(f);
        f[0] = (dm_avro_value_t){.type = DM_AVRO_INT, .u.i = (int32_t)(rnd() % 7) - 3};
        f[1] = rnd() % 5
                   ? (dm_avro_value_t){.type = DM_AVRO_LONG, .branch = 1, .u.l = longs[rnd() % 9]}
                   : v_null();
        f[2] =
            rnd() % 5
                ? (dm_avro_value_t){.type = DM_AVRO_DOUBLE, .branch = 1, .u.d = doubles[rnd() % 9]}
                : v_null();
        f[3] = (dm_avro_value_t){.type = DM_AVRO_FLOAT, .u.f = (float)doubles[rnd() % 6]};
        f[4] = rnd() % 4 ? (dm_avro_value_t){.type = DM_AVRO_BOOLEAN, .branch = 1, .u.b = rnd() & 1}
                         : v_null();
        const char *s = strings[rnd() % 6];
        f[5] = rnd() % 5 ? (dm_avro_value_t){.type = DM_AVRO_STRING,
                                             .branch = 1,
                                             .len = (uint32_t)strlen(s),
                                             .u.p = (const uint8_t *)s}
                         : v_null();
        f[6] = (dm_avro_value_t){.type = DM_AVRO_LONG, .u.l = 1700000000000 + (int64_t)(rnd() % 3)};
        if (rnd() % 4) {
            dm_avro_value_t *n = dm_arena_calloc(&arena, 2, sizeof(*n));
            n[0] = (dm_avro_value_t){.type = DM_AVRO_LONG, .u.l = longs[rnd() % 9]};
            n[1] = (dm_avro_value_t){.type = DM_AVRO_BOOLEAN, .u.b = rnd() & 1};
            f[7] = (dm_avro_value_t){.type = DM_AVRO_RECORD, .branch = 1, .len = 2, .u.v = n};
        } else {
            f[7] = v_null();
        }
        if (r % 97 == 5) f[1].type = DM_AVRO_ABSENT; /* left out by projection */
        rows[r].value = (dm_avro_value_t){.type = DM_AVRO_RECORD, .len = 8, .u.v = f};
    }
}

static void setup(void)
{
    dm_error_t err = {0};
    REQUIRE(dm_avro_schema_parse(schema_json, strlen(schema_json), &schema, &err) == DM_OK);
    dm_arena_init(&arena, 0);
    make_rows();
}

static bool same(const dm_expr_value_t *a, const dm_expr_value_t *b)
{
    if (a->null || b->null) return a->null == b->null;
    if (a->type != b->type) return false;
    switch (a->type) {
    case DM_EXPR_BOOL: return a->u.b == b->u.b;
    case DM_EXPR_DOUBLE:
        return (isnan(a->u.d) && isnan(b->u.d)) || !memcmp(&a->u.d, &b->u.d, sizeof(double));
    default: return a->u.l == b->u.l;
    }
}

/* Batchable expressions: every record agrees with the tree walker. */
static const char *batchable[] = {
    "b",
    "NOT b",
    "b AND d > 50.0",
    "b OR d > 50.0",
    "NOT (b AND l >= 7) OR s = 'US'",
    "i < 0 AND NOT b",
    "d = d",
    "d <> 1.5",
    "f <= 1.5",
    "l > 50.5",
    "i = 1.5 OR i != 2",
    "50 < l",
    "7 = l OR 'US' < s",
    "s >= 'FR' AND s < 'USA'",
    "s = ''",
    "l IS NULL",
    "s IS NOT NULL AND d IS NULL",
    "n.x > 0 OR n.t",
    "n.t = TRUE",
    "b = FALSE",
    "b <> n.t",
    "ts > '2023-11-14T22:13:20.001Z'",
    "ts - 1 > ts",
    "l + 1",
    "l - i",
    "l * 2",
    "l * l",
    "l / i",
    "l % i",
    "-l",
    "d * 2",
    "d / d",
    "i + d",
    "-d + f",
    "(l + 1) > 0 AND b",
    "i / 0 = 1 AND FALSE",
    "FALSE AND i / 0 = 1",
    "TRUE OR l * l > 0",
    "b AND l * l > 0",
    "(l * 3) IS NULL",
    "NULL",
    "TRUE",
    "b = n.t AND l = n.x",
    "i > l",
    "d < l",
};

/* Shapes with no batch form: every record is left to the tree walker. */
static const char *not_batchable[] = {"s LIKE 'U%'", "l IN (1, 7)", "lower(s) = 'us'",
                                      "CASE WHEN b THEN 1 ELSE 2 END", "s || 'x'"};

static void check_expr(const char *text, bool want_batch)
{
    dm_error_t err = {0};
    dm_expr_t *e;
    if (dm_expr_compile(text, schema->root, &e, &err)) {
        printf("    %s: %s\n", text, err.message);
        CHECK(false);
        return;
    }
    if (dm_expr_batchable(e) != want_batch) {
        printf("    %s: batchable is %d\n", text, dm_expr_batchable(e));
        CHECK(false);
    }
    static dm_expr_value_t out[N_RECS];
    static bool slow[N_RECS];
    static uint8_t keep[N_RECS];
    dm_expr_eval_batch(e, &rows[0].value, sizeof(row_t), N_RECS, out, slow);
    bool is_bool = dm_expr_result_type(e) == DM_EXPR_BOOL;
    if (is_bool) dm_expr_filter_batch(e, &rows[0].value, sizeof(row_t), N_RECS, keep);
    int bad = 0, n_slow = 0;
    for (int r = 0; r < N_RECS && bad < 3; r++) {
        dm_expr_value_t want;
        dm_err_t rc = dm_expr_eval(e, &rows[r].value, &arena, &want, &err);
        if (slow[r]) {
            n_slow++;
            if (is_bool && keep[r] != DM_EXPR_KEEP_SLOW) bad++;
            continue;
        }
        if (!want_batch) bad++; /* nothing may be done without a batch form */
        if (rc || !same(&out[r], &want)) {
            printf("    %s: record %d: batch %s%g/%lld, tree %s%s%g/%lld\n", text, r,
                   out[r].null ? "NULL " : "", out[r].u.d, (long long)out[r].u.l,
                   rc ? "error " : "", want.null ? "NULL " : "", want.u.d, (long long)want.u.l);
            bad++;
        }
        if (is_bool && !rc && keep[r] != (!want.null && want.u.b)) bad++;
    }
    CHECK_EQ_INT(bad, 0);
    if (want_batch && !strstr(text, "/") && !strstr(text, "%") && !strstr(text, "*") &&
        !strstr(text, "+") && !strstr(text, "-"))
        CHECK_EQ_INT(n_slow, 0); /* what cannot fail is never left over */
    dm_expr_free(e);
}

static void test_batch_matches_tree(void)
{
    for (size_t i = 0; i < sizeof(batchable) / sizeof(batchable[0]); i++)
        check_expr(batchable[i], true);
    for (size_t i = 0; i < sizeof(not_batchable) / sizeof(not_batchable[0]); i++)
        check_expr(not_batchable[i], false);
}

/* Records that would fail are left over, and the tree walker names the error. */
static void test_failures_left_over(void)
{
    dm_error_t err = {0};
    dm_expr_t *e;
    REQUIRE(dm_expr_compile("l * l > 0", schema->root, &e, &err) == DM_OK);
    static dm_expr_value_t out[N_RECS];
    static bool slow[N_RECS];
    dm_expr_eval_batch(e, &rows[0].value, sizeof(row_t), N_RECS, out, slow);
    int overflow = 0, left = 0;
    for (int r = 0; r < N_RECS; r++) {
        dm_expr_value_t v;
        if (dm_expr_eval(e, &rows[r].value, &arena, &v, &err)) {
            overflow++;
            CHECK(slow[r]);
            CHECK(strstr(err.message, "overflow") != NULL);
        }
        left += slow[r];
    }
    CHECK(overflow > 0);
    CHECK_EQ_INT(left, overflow);
    dm_expr_free(e);
}

int main(void)
{
    RUN(setup);
    RUN(test_batch_matches_tree);
    RUN(test_failures_left_over);
    dm_expr_free(NULL);
    dm_avro_schema_free(schema);
    dm_arena_destroy(&arena);
    return check_summary();
}
