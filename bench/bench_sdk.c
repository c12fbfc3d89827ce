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
static double run(long n, bool other, int round, const char *out, double *cpu)
{
    char group[32];
    snprintf(group, sizeof(group), "%s-%d", other ? "other" : "builtin", round);
    json_t *filter = json_pack("{s:s}", "expr", "flag AND amount > 50.0");
    json_t *second = other ? json_pack("{s:s, s:s}", "name", "passthrough", "library",
                                       getenv("DM_SDK_PASSTHROUGH") ? getenv("DM_SDK_PASSTHROUGH")
                                                                    : DM_SDK_PASSTHROUGH)
                           : json_pack("{s:[s]}", "columns", "*");
    dm_task_step_spec_t steps[2] = {{&dm_proc_filter, filter},
                                    {other ? &dm_proc_sdk : &dm_proc_project, second}};
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
    six_drain(task, n);
    double secs = (double)(dm_now_ns() - t0) / 1e9;
    *cpu = (cpu_s() - c0) / (double)n;
    dm_task_free(task);
    json_decref(filter);
    json_decref(second);
    return (double)n / secs;
}

int main(void)
{
    return six_versus(run, 5000000, "built-in filter → project [*]",
                      "filter → SDK pass-through processor", "sdk", "0.8");
}
