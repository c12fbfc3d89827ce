/* Unit tests of the connector-neutral DBLog algorithm (connectors/dblog.c)
 * with an in-memory "database": rows changed by the log between a chunk's
 * watermarks are dropped from it, the rest go out at the high watermark,
 * progress and the queue survive a JSON round trip, truncate voids a chunk,
 * a table that is gone is dropped from the queue. */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "connectors/dblog.h"

/* The table: ids 1..n (text keys), read in key order. */
typedef struct fake {
    int n_table;
    int chunk[64], n_chunk; /* ids of the chunk in flight */
    char marks[8][96];      /* watermarks written */
    int n_marks;
    int emitted[256], n_emitted;
    bool gone;
} fake_t;

static int f_table_index(void *ctx, const char *table, int *n_key)
{
    fake_t *f = ctx;
    *n_key = 1;
    return !f->gone && !strcmp(table, "db.t") ? 0 : -1;
}

static dm_err_t f_watermark(void *ctx, const char *id, const char *kind, dm_error_t *err)
{
    fake_t *f = ctx;
    if (f->n_marks < 8) snprintf(f->marks[f->n_marks++], 96, "%s", id);
    return DM_OK;
}

static dm_err_t f_select(void *ctx, int table, const json_t *after, const json_t *from,
                         const json_t *until, int64_t limit, int *n_rows, dm_error_t *err)
{
    fake_t *f = ctx;
    int lo = after  ? atoi(json_string_value(json_array_get(after, 0))) + 1
             : from ? atoi(json_string_value(json_array_get(from, 0)))
                    : 1;
    int hi = until ? atoi(json_string_value(json_array_get(until, 0))) : f->n_table;
    f->n_chunk = 0;
    for (int id = lo; id <= hi && f->n_chunk < limit && f->n_chunk < 64; id++)
        f->chunk[f->n_chunk++] = id;
    *n_rows = f->n_chunk;
    return DM_OK;
}

static bool f_row_key(void *ctx, int r, dm_buf_t *out)
{
    fake_t *f = ctx;
    dm_buf_printf(out, "%d", f->chunk[r]);
    return true;
}

static json_t *f_row_key_json(void *ctx, int r)
{
    fake_t *f = ctx;
    char k[16];
    snprintf(k, sizeof(k), "%d", f->chunk[r]);
    return json_pack("[s]", k);
}

static dm_err_t f_emit(void *ctx, int table, int r, dm_error_t *err)
{
    fake_t *f = ctx;
    if (f->n_emitted < 256) f->emitted[f->n_emitted++] = f->chunk[r];
    return DM_OK;
}

static void f_release(void *ctx)
{
    ((fake_t *)ctx)->n_chunk = 0;
}

static const dm_dblog_ops_t ops = {f_table_index,  f_watermark, f_select, f_row_key,
                                   f_row_key_json, f_emit,      f_release};

static void test_window_drops_changed_rows(void)
{
    fake_t f = {.n_table = 10};
    dm_dblog_t d;
    dm_error_t err = {0};
    dm_dblog_init(&d, &ops, &f, "test", "tag", 4);
    REQUIRE(dm_dblog_add(&d, "db.t", 1, NULL, NULL, 10, &err) == DM_OK);
    REQUIRE(dm_dblog_step(&d, &err) == DM_OK);
    CHECK_EQ_INT(f.n_marks, 2);
    CHECK(strstr(f.marks[0], "tag:") == f.marks[0]);
    CHECK_EQ_INT(f.n_chunk, 4);
    bool done;
    dm_dblog_saw(&d, 0, "2", 1); /* before the low watermark: not newer than the SELECT */
    dm_dblog_signal(&d, "other:low", &done, &err);
    CHECK(!done);
    dm_dblog_signal(&d, f.marks[0], &done, &err); /* low */
    CHECK(!done);
    dm_dblog_saw(&d, 0, "3", 1);  /* in the window: dropped */
    dm_dblog_saw(&d, 0, "33", 2); /* not a row of the chunk */
    REQUIRE(dm_dblog_signal(&d, f.marks[1], &done, &err) == DM_OK);
    CHECK(done);
    CHECK_EQ_INT(f.n_emitted, 3);
    CHECK_EQ_INT(f.emitted[0], 1);
    CHECK_EQ_INT(f.emitted[1], 2);
    CHECK_EQ_INT(f.emitted[2], 4);
    CHECK(d.dirty);
    /* the queue as committed, and back: the next chunk starts after 4 */
    json_t *j = dm_dblog_json(&d);
    dm_dblog_t e;
    dm_dblog_init(&e, &ops, &f, "test", "tag", 4);
    dm_dblog_load(&e, j);
    json_decref(j);
    f.n_marks = f.n_emitted = 0;
    REQUIRE(dm_dblog_step(&e, &err) == DM_OK);
    CHECK_EQ_INT(f.chunk[0], 5);
    dm_dblog_signal(&e, f.marks[0], &done, &err);
    dm_dblog_signal(&e, f.marks[1], &done, &err);
    CHECK_EQ_INT(f.n_emitted, 4);
    f.n_marks = 0;
    dm_dblog_step(&e, &err); /* 9, 10: fewer than a chunk, the snapshot is done */
    dm_dblog_signal(&e, f.marks[0], &done, &err);
    dm_dblog_signal(&e, f.marks[1], &done, &err);
    CHECK_EQ_INT(f.n_emitted, 6);
    CHECK_EQ_INT(e.n_snaps, 0);
    dm_dblog_destroy(&d);
    dm_dblog_destroy(&e);
}

static void test_truncate_range_and_gone(void)
{
    fake_t f = {.n_table = 100};
    dm_dblog_t d;
    dm_error_t err = {0};
    bool done;
    dm_dblog_init(&d, &ops, &f, "test", "tag", 50);
    /* a key range, and a bound with the wrong number of values */
    json_t *from = json_string("20"), *to = json_string("24"), *bad = json_pack("[ss]", "1", "2");
    CHECK_EQ_INT(dm_dblog_add(&d, "db.t", 1, bad, NULL, 0, &err), DM_ERR_INVALID);
    REQUIRE(dm_dblog_add(&d, "db.t", 1, from, to, 0, &err) == DM_OK);
    CHECK_EQ_INT(dm_dblog_add(&d, "db.t", 1, NULL, NULL, 0, &err), DM_OK); /* under way: no-op */
    CHECK_EQ_INT(d.n_snaps, 1);
    dm_dblog_step(&d, &err);
    CHECK_EQ_INT(f.n_chunk, 5);
    dm_dblog_signal(&d, f.marks[0], &done, &err);
    dm_dblog_saw_truncate(&d, 0);
    dm_dblog_signal(&d, f.marks[1], &done, &err);
    CHECK(done);
    CHECK_EQ_INT(f.n_emitted, 0); /* the chunk is void */
    /* a table without a key is skipped; one that is gone is dropped */
    CHECK_EQ_INT(dm_dblog_add(&d, "db.nokey", 0, NULL, NULL, 0, &err), DM_OK);
    CHECK_EQ_INT(d.n_snaps, 0);
    dm_dblog_add(&d, "db.t", 1, NULL, NULL, 0, &err);
    f.gone = true;
    CHECK_EQ_INT(dm_dblog_step(&d, &err), DM_OK);
    CHECK_EQ_INT(d.n_snaps, 0);
    json_decref(from);
    json_decref(to);
    json_decref(bad);
    dm_dblog_destroy(&d);
}

int main(void)
{
    RUN(test_window_drops_changed_rows);
    RUN(test_truncate_range_and_gone);
    return check_summary();
}
