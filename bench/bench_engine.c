/* bench/bench_engine.c — a fused filter+project task against the floor.
 *
 * N records of a 6-field shape (int, long, string, double, boolean, nullable
 * string) sit in the embedded log. datamesh runs a task with
 *   filter "flag AND amount > 50.0"   →   project [id, name, "amount * 2 AS doubled"]
 * into another topic, exactly once (one transaction per batch). The baseline,
 * in the same run, is the floor of the same work: it fetches the same segment
 * bytes from the log, decodes the same fields by hand, applies the same
 * predicate, encodes the projected records and appends them to a file with
 * write(2). Also printed: the same chain unfused (a topic between filter and
 * project), to show what fusion buys. N defaults to 10 M (DM_BENCH_RECORDS).
 *
 * The machine is shared, so one side of a comparison may run while another
 * process takes the core. The two run back to back in rounds (baseline, then
 * datamesh over the whole input again); every round is printed and the
 * result is the round with the median ratio (DM_BENCH_ROUNDS, default 3).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/varint.h"
#include "engine/task.h"
#include "schema/wire.h"

#define BENCH_NAME "bench_engine"
#include "six.h"

/* The floor: same bytes, hand decoding, same predicate, hand encoding, write(2). */
static double baseline(long n, const char *out_path, long *kept)
{
    dm_error_t err = {0};
    dm_transport_batch_t b = {0};
    int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dm_buf_t out = DM_BUF_INIT;
    int64_t off = 0;
    *kept = 0;
    uint64_t t0 = dm_now_ns();
    while (off < n) {
        if (dm_transport_fetch(t, "in", 0, off, 1 << 20, 0, &b, &err) || !b.n) die("fetch", &err);
        dm_buf_reset(&out);
        for (size_t i = 0; i < b.n; i++) {
            const uint8_t *p = b.records[i].value + 5,
                          *end = b.records[i].value + b.records[i].value_len;
            int64_t nn = 0, id = 0, len = 0;
            p += dm_varint_decode_i64(p, end, &nn);
            p += dm_varint_decode_i64(p, end, &id);
            p += dm_varint_decode_i64(p, end, &len);
            const uint8_t *name = p;
            p += len;
            double amount;
            memcpy(&amount, p, 8);
            p += 8;
            bool flag = *p;
            if (!(flag && amount > 50.0)) continue;
            uint8_t v[DM_VARINT_MAX];
            dm_wire_put_header(&out, 2);
            dm_buf_append(&out, v, dm_varint_encode_i64(id, v));
            dm_buf_append(&out, v, dm_varint_encode_i64(len, v));
            dm_buf_append(&out, name, (size_t)len);
            double doubled = amount * 2;
            dm_buf_append(&out, &doubled, 8);
            (*kept)++;
        }
        if (write(fd, out.data, out.len) != (ssize_t)out.len) die("write", NULL);
        off = b.next_offset;
    }
    double secs = (double)(dm_now_ns() - t0) / 1e9;
    close(fd);
    dm_transport_batch_free(t, &b);
    dm_buf_free(&out);
    return (double)n / secs;
}

static double run_tasks(long n, bool fused, int round)
{
    char group[32];
    snprintf(group, sizeof(group), "fused-%d", round); /* each round reads from the start */
    json_t *filter = json_pack("{s:s}", "expr", "flag AND amount > 50.0");
    json_t *project = json_pack("{s:[s,s,s]}", "columns", "id", "name", "amount * 2 AS doubled");
    dm_task_step_spec_t both[2] = {{&dm_proc_filter, filter}, {&dm_proc_project, project}};
    dm_error_t err = {0};
    const char *out = fused ? "out" : "out2";
    dm_task_config_t a = {.name = "a",
                          .group = fused ? group : "unfused-a",
                          .input_topic = "in",
                          .input_schema = schema,
                          .input_schema_id = 1,
                          .output_topic = fused ? out : "mid",
                          .output_schema_id = 2,
                          .dead_letter_topic = "dlq",
                          .steps = both,
                          .n_steps = fused ? 2 : 1};
    dm_task_t *ta, *tb = NULL;
    if (dm_task_new(t, &a, &ta, &err)) die("task", &err);
    if (!fused) {
        dm_task_config_t b2 = {.name = "b",
                               .group = "unfused-b",
                               .input_topic = "mid",
                               .input_schema = schema,
                               .input_schema_id = 2,
                               .output_topic = out,
                               .output_schema_id = 3,
                               .dead_letter_topic = "dlq",
                               .steps = &both[1],
                               .n_steps = 1};
        if (dm_task_new(t, &b2, &tb, &err)) die("task", &err);
    }
    uint64_t t0 = dm_now_ns();
    int64_t mid_end = 0;
    while (dm_task_position(ta) < n || (tb && dm_task_position(tb) < mid_end)) {
        size_t k;
        if (dm_task_position(ta) < n && dm_task_step(ta, 0, &k, &err)) die("step", &err);
        if (tb) {
            int64_t s;
            dm_transport_offsets(t, "mid", 0, &s, &mid_end, &err);
            if (dm_task_position(tb) < mid_end && dm_task_step(tb, 0, &k, &err)) die("step", &err);
        }
    }
    double secs = (double)(dm_now_ns() - t0) / 1e9;
    dm_task_free(ta);
    dm_task_free(tb);
    json_decref(filter);
    json_decref(project);
    return (double)n / secs;
}

int main(void)
{
    long n = getenv("DM_BENCH_RECORDS") ? atol(getenv("DM_BENCH_RECORDS")) : 10000000;
    char dir[] = "/tmp/dm-bench-engine-XXXXXX";
    six_open(dir);
    char path[160];
    dm_error_t err = {0};
    create("in");
    create("out");
    create("out2");
    create("mid");
    create("dlq");
    uint64_t t0 = dm_now_ns();
    produce(n);
    printf("produced %ld records in %.1f s\n", n, (double)(dm_now_ns() - t0) / 1e9);
    snprintf(path, sizeof(path), "%s/baseline.out", dir);
    long kept;
    baseline(n, path, &kept); /* warm the page cache the same way for both */
    int rounds = getenv("DM_BENCH_ROUNDS") ? atoi(getenv("DM_BENCH_ROUNDS")) : 3;
    if (rounds < 1 || rounds > 15) rounds = 3;
    double base[15], fused[15];
    int order[15];
    for (int r = 0; r < rounds; r++) {
        base[r] = baseline(n, path, &kept);
        fused[r] = run_tasks(n, true, r);
        order[r] = r;
        printf("round %d: baseline %.2f, datamesh fused %.2f M events/s (ratio %.2f)\n", r + 1,
               base[r] / 1e6, fused[r] / 1e6, fused[r] / base[r]);
    }
    for (int i = 1; i < rounds; i++) /* by ratio, for the median */
        for (int j = i;
             j > 0 && fused[order[j]] / base[order[j]] < fused[order[j - 1]] / base[order[j - 1]];
             j--) {
            int x = order[j];
            order[j] = order[j - 1];
            order[j - 1] = x;
        }
    int m = order[rounds / 2];
    double unfused = run_tasks(n, false, 0);
    int64_t s, out_end;
    dm_transport_offsets(t, "out", 0, &s, &out_end, &err);
    printf("baseline (hand-written loop, write(2)):  %.2f M events/s per core (%ld kept)\n",
           base[m] / 1e6, kept);
    printf("datamesh fused filter+project task:      %.2f M events/s per core (%lld kept)\n",
           fused[m] / 1e6, (long long)(out_end / rounds));
    printf("datamesh unfused (topic in between):     %.2f M events/s\n", unfused / 1e6);
    printf("fusion gain: %.2fx\n", fused[m] / unfused);
    six_close(dir);
    if (out_end != (int64_t)kept * rounds) {
        fprintf(stderr, "bench_engine: outputs differ: %lld vs %d x %ld\n", (long long)out_end,
                rounds, kept);
        return 1;
    }
    printf("engine ratio=%.2f target=0.5\n", fused[m] / base[m]);
    return 0;
}
