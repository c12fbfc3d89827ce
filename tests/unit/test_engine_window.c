/* Unit tests for the stateful processors at the processor level: aggregate
 * (tumbling, hopping and session windows, window boundaries, out-of-order
 * and late events, allowed lateness), dedupe and route. The test plays the
 * task's part: a batch, then the watermark. */
#include <math.h>

#include "check.h"
#include "engine/processor.h"

static const char *schema_json =
    "{\"type\": \"record\", \"name\": \"Play\", \"namespace\": \"demo\", \"fields\": ["
    " {\"name\": \"id\", \"type\": \"long\"},"
    " {\"name\": \"user\", \"type\": \"string\"},"
    " {\"name\": \"country\", \"type\": \"string\"},"
    " {\"name\": \"amount\", \"type\": [\"null\", \"double\"], \"default\": null},"
    " {\"name\": \"ts\", \"type\": {\"type\": \"long\", \"logicalType\": \"timestamp-millis\"}}]}";

static dm_avro_schema_t *schema;

typedef struct ev {
    int64_t ts;
    const char *country;
    const char *user;
    double amount; /* NAN = null */
} ev_t;

/* One batch of events and then the watermark wm (INT64_MIN: no move), as
 * the task runs them. Dead letters are counted into *dead. */
static void run(dm_proc_t *p, const ev_t *evs, size_t n, int64_t wm, dm_rows_t *out, int *dead)
{
    dm_rows_t in;
    dm_rows_init(&in, schema->root);
    for (size_t i = 0; i < n; i++) {
        char json[300];
        char amount[32];
        if (isnan(evs[i].amount))
            snprintf(amount, sizeof(amount), "null");
        else
            snprintf(amount, sizeof(amount), "%g", evs[i].amount);
        snprintf(json, sizeof(json),
                 "{\"id\": %zu, \"user\": \"%s\", \"country\": \"%s\", \"amount\": %s, "
                 "\"ts\": %lld}",
                 i, evs[i].user ? evs[i].user : "u", evs[i].country ? evs[i].country : "US", amount,
                 (long long)evs[i].ts);
        dm_row_t *r = dm_rows_push(&in);
        dm_error_t err = {0};
        if (dm_avro_from_json_text(schema->root, json, strlen(json), DM_AVRO_JSON_PLAIN, &in.arena,
                                   &r->value, &err))
            printf("    %s: %s\n", json, err.message);
        r->timestamp = evs[i].ts;
        r->offset = (int64_t)i;
    }
    dm_dead_letters_t d = {0};
    dm_error_t err = {0};
    CHECK(p->ops->process(p, &in, out, &d, &err) == DM_OK);
    if (d.n) printf("    dead: %s\n", d.items[0].reason);
    *dead += (int)d.n;
    if (wm > p->watermark) {
        if (p->ops->on_watermark) CHECK(p->ops->on_watermark(p, wm, out, &err) == DM_OK);
        p->watermark = wm;
    }
    dm_dead_letters_free(&d);
    dm_rows_free(&in); /* rows passed through (dedupe, route) pointed into it */
}

static dm_proc_t *open_proc(const dm_proc_ops_t *ops, const char *config_json)
{
    json_error_t je;
    json_t *conf = json_loads(config_json, 0, &je);
    REQUIRE(conf);
    dm_proc_t *p = NULL;
    dm_error_t err = {0};
    if (dm_proc_open(ops, NULL, conf, schema->root, &p, &err))
        printf("    open: %s\n", err.message);
    json_decref(conf);
    return p;
}

static const char *open_error(const dm_proc_ops_t *ops, const char *config_json, char *buf,
                              size_t cap)
{
    json_t *conf = json_loads(config_json, 0, NULL);
    dm_proc_t *p = NULL;
    dm_error_t err = {0};
    buf[0] = '\0';
    if (dm_proc_open(ops, NULL, conf, schema->root, &p, &err) == DM_OK)
        dm_proc_close(p);
    else
        snprintf(buf, cap, "%s", err.message);
    json_decref(conf);
    return buf;
}

/* Output rows as "start-end key n" lines (aggregates after the key as
 * numbers; null as "-"), after an encode/decode round trip through the
 * output schema. */
static void render(const dm_proc_t *p, const dm_rows_t *out, char *s, size_t cap)
{
    const dm_avro_node_t *node = p->output->root;
    size_t o = 0;
    s[0] = '\0';
    for (uint32_t i = 0; i < out->n && o < cap; i++) {
        dm_buf_t bin = DM_BUF_INIT;
        dm_error_t err = {0};
        dm_arena_t a;
        dm_arena_init(&a, 0);
        dm_avro_value_t v;
        if (dm_avro_encode(node, &out->records[i].value, &bin, &err) ||
            dm_avro_decode_node(node, bin.data, bin.len, NULL, &a, &v, &err)) {
            o += (size_t)snprintf(s + o, cap - o, "[%s]", err.message);
        } else {
            for (uint32_t f = 0; f < v.len && o < cap; f++) {
                const dm_avro_value_t *x = &v.u.v[f];
                const char *sep = f == 0 ? "" : f == 1 ? "-" : " ";
                switch (x->type) {
                case DM_AVRO_LONG:
                    o += (size_t)snprintf(s + o, cap - o, "%s%lld", sep, (long long)x->u.l);
                    break;
                case DM_AVRO_DOUBLE:
                    o += (size_t)snprintf(s + o, cap - o, "%s%g", sep, x->u.d);
                    break;
                case DM_AVRO_STRING:
                    o += (size_t)snprintf(s + o, cap - o, "%s%.*s", sep, (int)x->len,
                                          (const char *)x->u.p);
                    break;
                case DM_AVRO_NULL: o += (size_t)snprintf(s + o, cap - o, "%s-", sep); break;
                default: o += (size_t)snprintf(s + o, cap - o, "%s?", sep); break;
                }
            }
        }
        if (o < cap) o += (size_t)snprintf(s + o, cap - o, "\n");
        dm_buf_free(&bin);
        dm_arena_destroy(&a);
    }
}

static void test_tumbling_boundaries_late_and_out_of_order(void)
{
    dm_proc_t *p = open_proc(&dm_proc_aggregate,
                             "{\"window\": {\"type\": \"tumbling\", \"size\": \"10s\"}, \"time\": "
                             "\"ts\", \"group_by\": [\"country\"], \"aggregates\": [\"count(*) AS "
                             "n\", \"sum(amount) AS total\", \"min(amount)\", \"max(user)\", "
                             "\"avg(amount)\", \"count(distinct user) AS users\", "
                             "\"count(amount)\"]}");
    REQUIRE(p);
    const dm_avro_node_t *o = p->output->root;
    REQUIRE(o->n_fields == 10);
    CHECK_STR_EQ(o->fields[0].name, "window_start");
    CHECK_STR_EQ(o->fields[2].name, "country");
    CHECK_STR_EQ(o->fields[5].name, "min_amount");
    CHECK_STR_EQ(o->fields[6].name, "max_user");
    CHECK_STR_EQ(o->fields[8].name, "users");
    CHECK_STR_EQ(o->fields[9].name, "count_amount");
    dm_rows_t out;
    dm_rows_init(&out, o);
    int dead = 0;
    char s[2048];
    /* 9999 is the last instant of [0, 10000); 10000 opens the next window. */
    ev_t b1[] = {{1000, "US", "a", 2},
                 {9999, "US", "b", 3},
                 {2000, "FR", "a", NAN},
                 {10000, "US", "a", 7},
                 {5000, "US", "a", 1}};
    run(p, b1, 5, INT64_MIN, &out, &dead);
    CHECK_EQ_INT(out.n, 0); /* nothing before the watermark */
    run(p, NULL, 0, 9999, &out, &dead);
    CHECK_EQ_INT(out.n, 0); /* the watermark has not passed the end yet */
    run(p, NULL, 0, 10000, &out, &dead);
    render(p, &out, s, sizeof(s));
    CHECK_CONTAINS(s, "0-10000 US 3 6 1 b 2 2 3\n");
    CHECK_CONTAINS(s, "0-10000 FR 1 - - a - 1 0\n");
    CHECK_EQ_INT(out.n, 2);
    dm_rows_reset(&out);
    /* Late: [0, 10000) was emitted; 15000 is on time, out of order after 19000. */
    ev_t b2[] = {{9000, "US", "z", 1}, {19000, "US", "c", 1}, {15000, "US", "c", 1}};
    run(p, b2, 3, 20000, &out, &dead);
    CHECK_EQ_INT(dead, 1);
    render(p, &out, s, sizeof(s));
    CHECK_STR_EQ(s, "10000-20000 US 3 9 1 c 3 2 3\n");
    dm_rows_free(&out);
    dm_proc_close(p);
}

static void test_allowed_lateness(void)
{
    dm_proc_t *p = open_proc(&dm_proc_aggregate,
                             "{\"window\": {\"type\": \"tumbling\", \"size\": 10000, \"lateness\": "
                             "\"5s\"}, \"aggregates\": [\"count(*)\"]}");
    REQUIRE(p);
    dm_rows_t out;
    dm_rows_init(&out, p->output->root);
    int dead = 0;
    char s[512];
    ev_t b1[] = {{1000, NULL, NULL, 0}, {12000, NULL, NULL, 0}};
    run(p, b1, 2, 12000, &out, &dead);
    CHECK_EQ_INT(out.n, 0);              /* [0, 10000) waits for 15000 */
    ev_t b2[] = {{3000, NULL, NULL, 0}}; /* late but within the lateness: counted */
    run(p, b2, 1, 14999, &out, &dead);
    CHECK_EQ_INT(out.n, 0);
    CHECK_EQ_INT(dead, 0);
    run(p, NULL, 0, 15000, &out, &dead);
    render(p, &out, s, sizeof(s));
    CHECK_STR_EQ(s, "0-10000 2\n");
    ev_t b3[] = {{4000, NULL, NULL, 0}, {13000, NULL, NULL, 0}}; /* 4000: beyond the lateness now */
    run(p, b3, 2, 25000, &out, &dead);
    CHECK_EQ_INT(dead, 1);
    render(p, &out, s, sizeof(s));
    CHECK_STR_EQ(s, "0-10000 2\n10000-20000 2\n");
    dm_rows_free(&out);
    dm_proc_close(p);
}

static void test_hopping(void)
{
    dm_proc_t *p = open_proc(&dm_proc_aggregate,
                             "{\"window\": {\"type\": \"hopping\", \"size\": \"10s\", \"slide\": "
                             "\"5s\"}, \"time\": \"ts\", \"aggregates\": [\"count(*) AS n\", "
                             "\"sum(id) AS ids\"]}");
    REQUIRE(p);
    dm_rows_t out;
    dm_rows_init(&out, p->output->root);
    int dead = 0;
    char s[512];
    ev_t b[] = {{7000, NULL, NULL, 0}, {12000, NULL, NULL, 0}, {5000, NULL, NULL, 0}};
    run(p, b, 3, 20000, &out, &dead);
    render(p, &out, s, sizeof(s));
    /* 7000 and 5000 in [0,10000) and [5000,15000); 12000 in [5000,15000) and [10000,20000). */
    CHECK_STR_EQ(s, "0-10000 2 2\n5000-15000 3 3\n10000-20000 1 1\n");
    dm_rows_free(&out);
    dm_proc_close(p);
}

static void test_session_merges(void)
{
    dm_proc_t *p = open_proc(&dm_proc_aggregate,
                             "{\"window\": {\"type\": \"session\", \"gap\": \"5s\"}, \"time\": "
                             "\"ts\", \"group_by\": [\"lower(country) AS c\"], \"aggregates\": "
                             "[\"count(*) AS n\", \"count(distinct user) AS users\"]}");
    REQUIRE(p);
    dm_rows_t out;
    dm_rows_init(&out, p->output->root);
    int dead = 0;
    char s[512];
    ev_t b1[] = {{1000, NULL, "a", 0}, {3000, NULL, "b", 0}, {14000, NULL, "a", 0}};
    run(p, b1, 3, INT64_MIN, &out, &dead);
    ev_t b2[] = {{9000, NULL, "c", 0}, {20000, NULL, "d", 0}, {8500, NULL, "a", 0}};
    run(p, b2, 3, INT64_MIN, &out, &dead);
    CHECK_EQ_INT(out.n, 0);
    /* 7000 bridges [1000,8000) and [8500,19000). */
    ev_t b3[] = {{7000, NULL, "a", 0}, {2000, "FR", "x", 0}};
    run(p, b3, 2, 24999, &out, &dead);
    render(p, &out, s, sizeof(s));
    CHECK_CONTAINS(s, "1000-19000 us 6 3\n");
    CHECK_CONTAINS(s, "2000-7000 fr 1 1\n");
    CHECK_EQ_INT(out.n, 2); /* [20000, 25000) is still open at 24999 */
    run(p, NULL, 0, 30000, &out, &dead);
    render(p, &out, s, sizeof(s));
    CHECK_CONTAINS(s, "20000-25000 us 1 1\n");
    CHECK_EQ_INT(out.n, 3);
    CHECK_EQ_INT(dead, 0);
    ev_t late[] = {{24000, NULL, NULL, 0}}; /* its session would end at 29000 <= 30000 */
    run(p, late, 1, INT64_MIN, &out, &dead);
    CHECK_EQ_INT(dead, 1);
    dm_rows_free(&out);
    dm_proc_close(p);
}

/* The state alone (as a restarted task rebuilds it) carries the windows on. */
typedef struct copy_ctx {
    dm_state_t *to;
} copy_ctx_t;

static int copy_entry(void *ctx, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    copy_ctx_t *c = ctx;
    return dm_state_put(c->to, k, kl, v, vl, NULL) != DM_OK;
}

static void test_restore_from_state(void)
{
    const char *conf = "{\"window\": {\"type\": \"tumbling\", \"size\": \"10s\"}, \"group_by\": "
                       "[\"country\"], \"aggregates\": [\"count(*) AS n\", \"max(amount)\", "
                       "\"count(distinct user)\"]}";
    dm_proc_t *p = open_proc(&dm_proc_aggregate, conf);
    REQUIRE(p);
    dm_rows_t out;
    dm_rows_init(&out, p->output->root);
    int dead = 0;
    ev_t b1[] = {{1000, "US", "a", 5}, {2000, "US", "b", 9}, {12000, "FR", "a", 1}};
    run(p, b1, 3, 5000, &out, &dead);
    dm_proc_t *q = open_proc(&dm_proc_aggregate, conf);
    REQUIRE(q);
    copy_ctx_t c = {q->kv};
    dm_error_t err = {0};
    CHECK(dm_state_foreach(p->kv, copy_entry, &c, &err) == DM_OK);
    q->watermark = 5000;
    CHECK(q->ops->restore(q, &err) == DM_OK);
    dm_proc_close(p);
    ev_t b2[] = {{3000, "US", "a", 4}};
    run(q, b2, 1, 30000, &out, &dead);
    char s[512];
    render(q, &out, s, sizeof(s));
    CHECK_CONTAINS(s, "0-10000 US 3 9 2\n");
    CHECK_CONTAINS(s, "10000-20000 FR 1 1 1\n");
    CHECK_EQ_INT(out.n, 2);
    dm_rows_free(&out);
    dm_proc_close(q);
}

static void test_aggregate_settings_errors(void)
{
    char e[512];
    CHECK_CONTAINS(open_error(&dm_proc_aggregate,
                              "{\"window\": {\"type\": \"sliding\", \"size\": 5}, \"aggregates\": "
                              "[\"count(*)\"]}",
                              e, sizeof(e)),
                   "'sliding' is not one of: tumbling, hopping, session");
    CHECK_CONTAINS(
        open_error(&dm_proc_aggregate,
                   "{\"window\": {\"type\": \"tumbling\"}, \"aggregates\": [\"count(*)\"]}", e,
                   sizeof(e)),
        "window.size: required key 'size' is missing");
    CHECK_CONTAINS(open_error(&dm_proc_aggregate,
                              "{\"window\": {\"type\": \"tumbling\", \"size\": \"1x\"}, "
                              "\"aggregates\": [\"count(*)\"]}",
                              e, sizeof(e)),
                   "window.size: expected a duration");
    CHECK_CONTAINS(open_error(&dm_proc_aggregate,
                              "{\"window\": {\"type\": \"session\", \"gap\": \"1m\"}, "
                              "\"aggregates\": [\"sum(country)\"]}",
                              e, sizeof(e)),
                   "sum(country) needs a number, 'country' is a string");
    CHECK_CONTAINS(open_error(&dm_proc_aggregate,
                              "{\"window\": {\"type\": \"session\", \"gap\": \"1m\"}, \"time\": "
                              "\"country\", \"aggregates\": [\"count(*)\"]}",
                              e, sizeof(e)),
                   "event time must be a long");
    CHECK_CONTAINS(open_error(&dm_proc_aggregate,
                              "{\"window\": {\"type\": \"hopping\", \"size\": \"1m\", \"slide\": "
                              "\"2m\"}, \"aggregates\": [\"count(*)\"]}",
                              e, sizeof(e)),
                   "window.slide: a hopping window's slide (120000 ms) must be at most its size");
    CHECK_CONTAINS(open_error(&dm_proc_aggregate,
                              "{\"window\": {\"type\": \"tumbling\", \"size\": \"1m\"}, "
                              "\"aggregates\": [\"median(amount)\"]}",
                              e, sizeof(e)),
                   "unknown function 'median'");
    CHECK_CONTAINS(open_error(&dm_proc_aggregate,
                              "{\"window\": {\"type\": \"tumbling\", \"size\": \"1m\"}, "
                              "\"group_by\": [\"country\"], \"aggregates\": [\"count(*) AS "
                              "country\"]}",
                              e, sizeof(e)),
                   "two output fields are named 'country'");
    CHECK_CONTAINS(open_error(&dm_proc_aggregate,
                              "{\"window\": {\"type\": \"tumbling\", \"size\": \"1m\"}, "
                              "\"aggregates\": [\"sum(nope)\"]}",
                              e, sizeof(e)),
                   "nope");
}

static int count_entries(void *ctx, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    (void)k, (void)kl, (void)v, (void)vl;
    (*(int *)ctx)++;
    return 0;
}

/* More groups in one batch than the aggregate keeps decoded (256): groups
 * written back half-way through a batch are read again by their later records,
 * and every group's totals still come out whole. */
static void test_many_groups_in_one_batch(void)
{
    dm_proc_t *p = open_proc(&dm_proc_aggregate,
                             "{\"window\": {\"type\": \"tumbling\", \"size\": \"10s\"}, \"time\": "
                             "\"ts\", \"group_by\": [\"country\"], \"aggregates\": [\"count(*) AS "
                             "n\", \"sum(amount) AS total\", \"max(user) AS last\"]}");
    REQUIRE(p);
    enum { GROUPS = 700, ROUNDS = 3 };
    static char names[GROUPS][8], users[ROUNDS][8];
    static ev_t evs[GROUPS * ROUNDS];
    for (int r = 0; r < ROUNDS; r++)
        snprintf(users[r], sizeof(users[r]), "u%d", r);
    for (int r = 0; r < ROUNDS; r++)
        for (int g = 0; g < GROUPS; g++) {
            snprintf(names[g], sizeof(names[g]), "c%03d", g);
            evs[r * GROUPS + g] = (ev_t){1000 + r, names[g], users[r], g + r};
        }
    dm_rows_t out;
    dm_rows_init(&out, p->output->root);
    int dead = 0;
    run(p, evs, GROUPS * ROUNDS, 20000, &out, &dead);
    CHECK(dead == 0);
    CHECK(out.n == GROUPS);
    static char text[GROUPS * 64];
    render(p, &out, text, sizeof(text));
    for (int g = 0; g < GROUPS; g += 99) {
        char line[64];
        snprintf(line, sizeof(line), "0-10000 c%03d 3 %d u2\n", g, 3 * g + 3);
        CHECK(strstr(text, line) != NULL);
    }
    int entries = 0;
    dm_error_t err = {0};
    CHECK(dm_state_foreach(p->kv, count_entries, &entries, &err) == DM_OK);
    CHECK(entries == 0); /* every window emitted: no group left in the state */
    dm_rows_free(&out);
    dm_proc_close(p);
}

static void test_dedupe(void)
{
    dm_proc_t *p =
        open_proc(&dm_proc_dedupe, "{\"key\": [\"user\"], \"within\": \"10s\", \"time\": \"ts\"}");
    REQUIRE(p);
    CHECK(p->output == NULL);
    dm_rows_t out;
    dm_rows_init(&out, schema->root);
    int dead = 0;
    ev_t b1[] = {{1000, NULL, "a", 0}, {5000, NULL, "a", 0},  {5000, NULL, "b", 0},
                 {500, NULL, "b", 0},  {11000, NULL, "a", 0}, {10999, NULL, "b", 0}};
    run(p, b1, 6, 11000, &out, &dead);
    /* a@1000 passes, a@5000 repeats, b@5000 passes, b@500 repeats (out of order),
     * a@11000 is 10 s after the first a: a new window; b@10999 repeats. */
    CHECK_EQ_INT(out.n, 3);
    CHECK_EQ_INT(out.records[0].timestamp, 1000);
    CHECK_EQ_INT(out.records[1].timestamp, 5000);
    CHECK_EQ_INT(out.records[2].timestamp, 11000);
    CHECK_EQ_INT(dead, 0);
    /* The watermark past 15000 forgets b (first at 5000) but not a (11000). */
    run(p, NULL, 0, 16000, &out, &dead);
    int n = 0;
    dm_error_t err = {0};
    CHECK(dm_state_foreach(p->kv, count_entries, &n, &err) == DM_OK);
    CHECK_EQ_INT(n, 1);
    ev_t b2[] = {{6000, NULL, "c", 0}, {16500, NULL, "b", 0}, {20000, NULL, "a", 0}};
    run(p, b2, 3, 16000, &out, &dead);
    CHECK_EQ_INT(dead, 1);  /* c@6000: 10 s behind the watermark, unknowable */
    CHECK_EQ_INT(out.n, 4); /* b@16500 passes again; a@20000 repeats a@11000 */
    dm_rows_free(&out);
    dm_proc_close(p);
    char e[512];
    CHECK_CONTAINS(open_error(&dm_proc_dedupe, "{\"key\": [\"user\"]}", e, sizeof(e)),
                   "within: required key 'within' is missing");
    CHECK_CONTAINS(
        open_error(&dm_proc_dedupe, "{\"key\": [\"nope\"], \"within\": 5}", e, sizeof(e)), "nope");
}

static void test_route(void)
{
    dm_proc_t *p = open_proc(&dm_proc_route, "{\"outputs\": {\"big\": \"amount > 3\", \"fr\": "
                                             "\"country = 'FR'\"}, \"default\": \"rest\"}");
    REQUIRE(p);
    const char *const *names;
    REQUIRE(p->ops->outputs(p, &names) == 2);
    CHECK_STR_EQ(names[0], "big");
    CHECK_STR_EQ(names[1], "fr");
    dm_rows_t out;
    dm_rows_init(&out, schema->root);
    int dead = 0;
    ev_t b[] = {{1, "US", "a", 5},
                {2, "FR", "a", 1},
                {3, "FR", "a", 9},
                {4, "US", "a", 1},
                {5, "US", "a", NAN}};
    run(p, b, 5, INT64_MIN, &out, &dead);
    REQUIRE(out.n == 5);
    CHECK_EQ_INT(out.records[0].output, 1);
    CHECK_EQ_INT(out.records[1].output, 2);
    CHECK_EQ_INT(out.records[2].output, 1); /* the first match wins */
    CHECK_EQ_INT(out.records[3].output, 0);
    CHECK_EQ_INT(out.records[4].output, 0); /* NULL > 3 is not TRUE */
    dm_rows_free(&out);
    dm_proc_close(p);
    char e[512];
    CHECK_CONTAINS(
        open_error(&dm_proc_route, "{\"outputs\": {\"x\": \"amount + 1\"}}", e, sizeof(e)),
        "outputs.x: expression 'amount + 1' must be a boolean");
    CHECK_CONTAINS(open_error(&dm_proc_route,
                              "{\"outputs\": {\"x\": \"id > 1\"}, \"default\": "
                              "\"x\"}",
                              e, sizeof(e)),
                   "the default output");
}

/* ---- join ------------------------------------------------------------------------------- */

static const char *pay_json =
    "{\"type\": \"record\", \"name\": \"Pay\", \"fields\": [{\"name\": \"user\", \"type\": "
    "\"string\"}, {\"name\": \"paid\", \"type\": \"double\"}, {\"name\": \"ts\", \"type\": "
    "\"long\"}]}";

static void run_pay(dm_proc_t *p, const dm_avro_schema_t *pay, const char *user, int64_t ts,
                    dm_rows_t *out, int *dead)
{
    dm_rows_t in;
    dm_rows_init(&in, pay->root);
    char json[200];
    snprintf(json, sizeof(json), "{\"user\": \"%s\", \"paid\": 1.5, \"ts\": %lld}", user,
             (long long)ts);
    dm_row_t *r = dm_rows_push(&in);
    dm_error_t err = {0};
    CHECK(dm_avro_from_json_text(pay->root, json, strlen(json), DM_AVRO_JSON_PLAIN, &in.arena,
                                 &r->value, &err) == DM_OK);
    r->input = 1;
    dm_dead_letters_t d = {0};
    uint32_t n0 = out->n;
    CHECK(p->ops->process(p, &in, out, &d, &err) == DM_OK);
    *dead += (int)d.n;
    dm_dead_letters_free(&d);
    /* Joined rows point into their input batches: render the new ones while
     * this one lives (the left side's are in the arena of out's rows). */
    char s[1024];
    dm_rows_t view = *out;
    view.records += n0;
    view.n -= n0;
    render(p, &view, s, sizeof(s));
    CHECK(!strchr(s, '[')); /* every joined row encodes with the output schema */
    if (view.n) CHECK_CONTAINS(s, " 1.5 ");
    dm_rows_free(&in);
}

static void test_interval_join(void)
{
    dm_avro_schema_t *pay;
    dm_error_t err = {0};
    REQUIRE(dm_avro_schema_parse(pay_json, strlen(pay_json), &pay, &err) == DM_OK);
    json_t *conf = json_loads("{\"with\": \"payments\", \"on\": \"user\", \"within\": \"5s\", "
                              "\"time\": \"ts\"}",
                              0, NULL);
    dm_proc_t *p = NULL;
    REQUIRE(dm_proc_open2(&dm_proc_join, NULL, conf, schema->root, pay->root, &p, &err) == DM_OK);
    const dm_avro_node_t *o = p->output->root;
    REQUIRE(o->n_fields == 7);
    CHECK_STR_EQ(o->fields[5].name, "paid");
    CHECK_STR_EQ(o->fields[6].name, "payments_ts");
    dm_rows_t out;
    dm_rows_init(&out, o);
    int dead = 0;
    ev_t l1[] = {{1000, NULL, "a", 1}, {2000, NULL, "b", 2}};
    run(p, l1, 2, INT64_MIN, &out, &dead);
    CHECK_EQ_INT(out.n, 0);
    run_pay(p, pay, "a", 3000, &out, &dead); /* a@1000 is 2 s away: joins */
    CHECK_EQ_INT(out.n, 1);
    CHECK_EQ_INT(out.records[0].timestamp, 3000);
    run_pay(p, pay, "c", 3000, &out, &dead);
    CHECK_EQ_INT(out.n, 1);
    ev_t l2[] = {{9000, NULL, "a", 3}, {7000, NULL, "a", 4}}; /* 6 s and 4 s from the payment */
    run(p, l2, 2, 9000, &out, &dead);
    CHECK_EQ_INT(out.n, 2);
    run_pay(p, pay, "a", 3500, &out, &dead); /* 5.5 s behind the watermark: late */
    CHECK_EQ_INT(dead, 1);
    run_pay(p, pay, "a", 8000, &out, &dead); /* joins a@9000 and a@7000 */
    CHECK_EQ_INT(out.n, 4);
    /* What the watermark expired is gone: a@1000, b@2000 and the payments at 3000. */
    int n = 0;
    CHECK(dm_state_foreach(p->kv, count_entries, &n, &err) == DM_OK);
    CHECK_EQ_INT(n, 2); /* the stream's a (7000, 9000) and the payments' a (8000) */
    char e[512];
    CHECK_CONTAINS(open_error(&dm_proc_join,
                              "{\"with\": \"payments\", \"on\": \"user\", "
                              "\"within\": \"5s\"}",
                              e, sizeof(e)),
                   "the join be the pipeline's only one");
    json_t *bad = json_loads("{\"with\": \"payments\", \"on\": \"paid\", \"within\": 10}", 0, NULL);
    dm_proc_t *q = NULL;
    CHECK(dm_proc_open2(&dm_proc_join, NULL, bad, schema->root, pay->root, &q, &err) != DM_OK);
    CHECK_CONTAINS(err.message, "paid");
    json_decref(bad);
    dm_rows_free(&out);
    dm_proc_close(p);
    json_decref(conf);
    dm_avro_schema_free(pay);
}

int main(void)
{
    dm_error_t err = {0};
    if (dm_avro_schema_parse(schema_json, strlen(schema_json), &schema, &err)) {
        printf("schema: %s\n", err.message);
        return 1;
    }
    RUN(test_tumbling_boundaries_late_and_out_of_order);
    RUN(test_allowed_lateness);
    RUN(test_hopping);
    RUN(test_session_merges);
    RUN(test_restore_from_state);
    RUN(test_many_groups_in_one_batch);
    RUN(test_aggregate_settings_errors);
    RUN(test_dedupe);
    RUN(test_route);
    RUN(test_interval_join);
    dm_avro_schema_free(schema);
    return check_summary();
}
