/* bench/bench_lua.c — a Lua step against the same logic as filter + project.
 *
 * N records of bench_engine's 6-field shape sit in the embedded log. Two
 * tasks do the same work, exactly once into a topic:
 *   built-in:  filter "flag AND amount > 50.0" → project [id, name, "amount * 2 AS doubled"]
 *   Lua:       lua: function process(r) if r.flag and r.amount > 50 then
 *                     return {id = r.id, name = r.name, doubled = r.amount * 2} end end
 * Rounds alternate; the median ratio is the result. Printed too: CPU per
 * event of each. N defaults to 1 M (DM_BENCH_RECORDS). No target: the issue
 * asks for the comparison. */
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

#define BENCH_NAME "bench_lua"
#include "six.h"

/* Runs the chain over the whole input; events/s, *cpu CPU-s per event. */
static double run(long n, bool other, int round, const char *out, double *cpu)
{
    char group[32];
    snprintf(group, sizeof(group), "%s-%d", other ? "other" : "builtin", round);
    json_t *filter = json_pack("{s:s}", "expr", "flag AND amount > 50.0");
    json_t *project = json_pack("{s:[s,s,s]}", "columns", "id", "name", "amount * 2 AS doubled");
    json_t *lua =
        json_pack("{s:s, s:{s:s, s:s, s:[{s:s, s:s}, {s:s, s:s}, {s:s, s:s}]}}", "script",
                  "function process(r)\n"
                  "  if r.flag and r.amount > 50.0 then\n"
                  "    return {id = r.id, name = r.name, doubled = r.amount * 2}\n"
                  "  end\n"
                  "end",
                  "output", "type", "record", "name", "Out", "fields", "name", "id", "type", "long",
                  "name", "name", "type", "string", "name", "doubled", "type", "double");
    dm_task_step_spec_t steps[2] = {{&dm_proc_filter, filter}, {&dm_proc_project, project}};
    if (other) steps[0] = (dm_task_step_spec_t){&dm_proc_lua, lua};
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
                          .n_steps = other ? 1 : 2};
    dm_task_t *task;
    if (dm_task_new(t, &c, &task, &err)) die("task", &err);
    uint64_t t0 = dm_now_ns();
    double c0 = cpu_s();
    six_drain(task, n);
    double secs = (double)(dm_now_ns() - t0) / 1e9;
    *cpu = (cpu_s() - c0) / (double)n;
    dm_task_free(task);
    json_decref(filter);
    json_decref(project);
    json_decref(lua);
    return (double)n / secs;
}

int main(void)
{
    return six_versus(run, 1000000, "built-in filter → project", "the same logic in Lua", "lua",
                      "none");
}
