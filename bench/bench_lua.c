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
static double run(long n, bool sdk, int round, const char *out, double *cpu)
{
    char group[32];
    snprintf(group, sizeof(group), "%s-%d", sdk ? "sdk" : "builtin", round);
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
    if (sdk) steps[0] = (dm_task_step_spec_t){&dm_proc_lua, lua};
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
                          .n_steps = sdk ? 1 : 2};
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
    json_decref(project);
    json_decref(lua);
    return (double)n / secs;
}

int main(void)
{
    long n = getenv("DM_BENCH_RECORDS") ? atol(getenv("DM_BENCH_RECORDS")) : 1000000;
    char dir[] = "/tmp/dm-bench-lua-XXXXXX";
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
        printf("round %d: filter+project %.2f, lua %.2f M events/s (ratio %.2f)\n", r + 1,
               b[r] / 1e6, s[r] / 1e6, s[r] / b[r]);
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
    printf("built-in filter → project: %.2f M events/s, %.0f ns CPU per event\n", b[m] / 1e6,
           bc[m] * 1e9);
    printf("the same logic in Lua:     %.2f M events/s, %.0f ns CPU per event\n", s[m] / 1e6,
           sc[m] * 1e9);
    dm_avro_schema_free(schema);
    dm_transport_close(t);
    char cmd[200];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "bench_lua: could not remove %s\n", dir);
    if (e1 != e2 || e1 <= 0) { /* both chains keep the same records */
        fprintf(stderr, "bench_lua: outputs differ: %lld vs %lld records\n", (long long)e1,
                (long long)e2);
        return 1;
    }
    printf("lua ratio=%.2f target=none\n", s[m] / b[m]);
    return 0;
}
