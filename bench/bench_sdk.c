/* bench/bench_sdk.c — an SDK processor against the same built-in step.
 *
 * N records of bench_engine's 6-field shape sit in the embedded log. Two
 * tasks run the same chain, exactly once into a topic:
 *   built-in:  filter "flag AND amount > 50.0" → project ["*"]
 *   SDK:       filter "flag AND amount > 50.0" → processor (tests/sdk/passthrough.so)
 * Both pass every kept record through unchanged, so the difference is what a
 * step costs through the SDK's ABI (dlopen'd code, host calls per record)
 * against a built-in. Rounds alternate; the median ratio is the result.
 * Printed too: CPU seconds per event of each (process CPU time).
 * N defaults to 5 M (DM_BENCH_RECORDS); the library is DM_SDK_PASSTHROUGH. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/varint.h"
#include "engine/task.h"
#include "schema/wire.h"

#ifndef DM_SDK_PASSTHROUGH
#define DM_SDK_PASSTHROUGH ""
#endif

#define BENCH_NAME "bench_sdk"
#include "six.h"

/* Runs the chain over the whole input; events/s, *cpu CPU-s per event. */
static double run(long n, bool sdk, int round, const char *out, double *cpu)
{
    char group[32];
    snprintf(group, sizeof(group), "%s-%d", sdk ? "sdk" : "builtin", round);
    json_t *filter = json_pack("{s:s}", "expr", "flag AND amount > 50.0");
    json_t *second = sdk ? json_pack("{s:s, s:s}", "name", "passthrough", "library",
                                     getenv("DM_SDK_PASSTHROUGH") ? getenv("DM_SDK_PASSTHROUGH")
                                                                  : DM_SDK_PASSTHROUGH)
                         : json_pack("{s:[s]}", "columns", "*");
    dm_task_step_spec_t steps[2] = {{&dm_proc_filter, filter},
                                    {sdk ? &dm_proc_sdk : &dm_proc_project, second}};
    dm_error_t err = {0};
    dm_task_config_t c = {.name = "a",
                          .group = group,
                          .input_topic = "in",
                          .input_schema = schema,
                          .input_schema_id = 1,
                          .output_topic = out,
                          .output_schema_id = 1,
                          .dead_letter_topic = "dlq",
                          .steps = steps,
                          .n_steps = 2};
    dm_task_t *task;
    if (dm_task_new(t, &c, &task, &err)) die("task", &err);
    uint64_t t0 = dm_now_ns();
    double c0 = cpu_s();
    while (dm_task_position(task) < n) {
        size_t k;
        if (dm_task_step(task, 0, &k, &err)) die("step", &err);
    }
    double secs = (double)(dm_now_ns() - t0) / 1e9;
    *cpu = (cpu_s() - c0) / (double)n;
    dm_task_free(task);
    json_decref(filter);
    json_decref(second);
    return (double)n / secs;
}

int main(void)
{
    long n = getenv("DM_BENCH_RECORDS") ? atol(getenv("DM_BENCH_RECORDS")) : 5000000;
    char dir[] = "/tmp/dm-bench-sdk-XXXXXX";
    if (!mkdtemp(dir)) die("mkdtemp", NULL);
    char url[128];
    snprintf(url, sizeof(url), "embedded:%s/log", dir);
    dm_error_t err = {0};
    if (dm_transport_open(url, &t, &err)) die("open", &err);
    if (dm_avro_schema_parse(schema_json, strlen(schema_json), &schema, &err)) die("schema", &err);
    create("in");
    create("out-sdk");
    create("out-builtin");
    create("out-warm");
    create("dlq");
    produce(n);
    int rounds = getenv("DM_BENCH_ROUNDS") ? atoi(getenv("DM_BENCH_ROUNDS")) : 3;
    if (rounds < 1 || rounds > 15) rounds = 3;
    double b[15], s[15], bc[15], sc[15];
    int order[15];
    double warm;
    run(n / 10 + 1, false, 99, "out-warm", &warm); /* page cache */
    for (int r = 0; r < rounds; r++) {
        b[r] = run(n, false, r, "out-builtin", &bc[r]);
        s[r] = run(n, true, r, "out-sdk", &sc[r]);
        order[r] = r;
        printf("round %d: built-in project %.2f, SDK processor %.2f M events/s (ratio %.2f)\n",
               r + 1, b[r] / 1e6, s[r] / 1e6, s[r] / b[r]);
    }
    for (int i = 1; i < rounds; i++)
        for (int j = i; j > 0 && s[order[j]] / b[order[j]] < s[order[j - 1]] / b[order[j - 1]];
             j--) {
            int x = order[j];
            order[j] = order[j - 1];
            order[j - 1] = x;
        }
    int m = order[rounds / 2];
    int64_t st, e1, e2;
    dm_transport_offsets(t, "out-sdk", 0, &st, &e1, &err);
    dm_transport_offsets(t, "out-builtin", 0, &st, &e2, &err);
    printf("built-in filter → project [*]:      %.2f M events/s, %.0f ns CPU per event\n",
           b[m] / 1e6, bc[m] * 1e9);
    printf("filter → SDK pass-through processor: %.2f M events/s, %.0f ns CPU per event\n",
           s[m] / 1e6, sc[m] * 1e9);
    dm_avro_schema_free(schema);
    dm_transport_close(t);
    char cmd[200];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "bench_sdk: could not remove %s\n", dir);
    if (e1 != e2 || e1 <= 0) { /* both chains keep the same records */
        fprintf(stderr, "bench_sdk: outputs differ: %lld vs %lld records\n", (long long)e1,
                (long long)e2);
        return 1;
    }
    printf("sdk ratio=%.2f target=0.8\n", s[m] / b[m]);
    return 0;
}
