#!/usr/bin/env bash
# bench/json-pipeline.sh — issue 25's measurement made repeatable: a JSON lines
# file (2 M lines of 8 fields, ~130 bytes a line; DM_BENCH_JSON_LINES sets the
# count) through `connector: file` (jsonl, 2 partitions) → filter
# "country = 'US'" → project (one field dropped) → file sink (jsonl).
#
# Reported: events (input lines) per CPU-second of the whole datamesh process
# (utime + stime from /proc/PID/stat, from apply until the sink holds every US
# line), its peak RSS (VmHWM) and where that RSS is (RssAnon, RssFile at the
# end), and `grep -c` over the same file as the floor (CPU-seconds of grep).
# The issue's baseline, Fluent Bit, is not in Debian 12's packages, so it is
# not run here; its figure from the issue (477k events/CPU-s, 16 MiB RSS) is
# printed for reference only.
# DM_BENCH_PERF=FILE records a profile of the datamesh process meanwhile.
# Ends with `json-pipeline ratio=X.XX target=1` where ratio = events per
# CPU-second / 2.4 M (the issue's target).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${DM_BIN:-$root/build/datamesh}
export DM_BIN=$bin
source "$root/tests/harness/lib.sh"
lines=${DM_BENCH_JSON_LINES:-2000000}
data=$(mktemp -d)
port=$(dm_free_port)
pid=
trap '[[ -n $pid ]] && kill -9 $pid 2>/dev/null; rm -rf "$data"' EXIT
export DATAMESH_SERVER=http://127.0.0.1:$port

awk -v n="$lines" 'BEGIN {
  srand(7); split("US DE FR BR IN JP GB", c, " "); split("android ios web tv", d, " ");
  for (i = 0; i < n; i++)
    printf "{\"id\":%d,\"user\":\"user_%06d\",\"country\":\"%s\",\"amount\":%d.%02d,\"ts\":%d,\"device\":\"%s\",\"score\":0.%04d,\"active\":%s}\n",
      1000000 + i, int(rand() * 1000000), c[1 + int(rand() * 7)], int(rand() * 1000), int(rand() * 100),
      1700000000000 + i * 37, d[1 + int(rand() * 4)], int(rand() * 10000), rand() < 0.5 ? "true" : "false"
}' >"$data/in.jsonl"
bytes=$(stat -c %s "$data/in.jsonl")
us=$(grep -c '"country":"US"' "$data/in.jsonl")
echo "input: $lines lines, $((bytes / lines)) bytes a line, $us with country US"

# The floor: grep -c over the same file, CPU-seconds of the child.
python3 - "$data/in.jsonl" "$lines" <<'PY'
import resource, subprocess, sys
subprocess.run(["grep", "-c", '"country":"US"', sys.argv[1]], stdout=subprocess.DEVNULL, check=True)
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = ru.ru_utime + ru.ru_stime
print(f"floor: grep -c over the file: {int(sys.argv[2]) / cpu / 1e6:.1f} M lines per CPU-second ({cpu:.2f} CPU-s)")
PY
echo "reference (issue 25, not run here: Fluent Bit is not packaged in Debian 12): Fluent Bit 5.1.1 477k events/CPU-s, 16 MiB RSS"

dm_controller_start "$data/dm" "$port" "$data/up.log" >/dev/null
pid=$dm_pid
mkdir -p "$data/out"
cat >"$data/specs.yaml" <<YAML
kind: Source
metadata: {name: events, owner: bench}
spec:
  connector: file
  partitions: 2
  key: [id]
  schema: {type: record, name: Event, fields: [{name: id, type: long}, {name: user, type: string},
           {name: country, type: string}, {name: amount, type: double}, {name: ts, type: long},
           {name: device, type: string}, {name: score, type: double}, {name: active, type: boolean}]}
  config: {path: "$data/in.jsonl", format: jsonl}
---
kind: Pipeline
metadata: {name: us-events, owner: bench}
spec:
  from: [events]
  steps:
    - filter: "country = 'US'"
    - project: [id, user, country, amount, ts, device, active]
  to:
    - sink: {type: file, path: "$data/out/us.jsonl", format: jsonl}
YAML
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)
c0=$(ticks)
t0=$(date +%s.%N)
perf_pid=
if [[ -n ${DM_BENCH_PERF:-} ]]; then # DM_BENCH_PERF=FILE: perf record -g of the run
  perf record -g -o "$DM_BENCH_PERF" -p "$pid" >/dev/null 2>&1 &
  perf_pid=$!
  sleep 0.5
fi
"$bin" apply -f "$data/specs.yaml" >/dev/null
for _ in $(seq 6000); do
  got=$(find "$data/out" -type f -exec cat {} + | wc -l)
  [[ $got -ge $us ]] && break
  kill -0 "$pid" || { tail -20 "$data/up.log"; exit 1; }
  sleep 0.1
done
t1=$(date +%s.%N)
c1=$(ticks)
[[ -n $perf_pid ]] && { kill -INT "$perf_pid"; wait "$perf_pid" || true; }
[[ $got -eq $us ]] || { echo "sink has $got lines, expected $us"; tail -20 "$data/up.log"; exit 1; }
cpu=$(echo "($c1 - $c0) / $hz" | bc -l)
eps=$(echo "$lines / $cpu" | bc -l)
hwm=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
anon=$(awk '/RssAnon/ {print $2}' /proc/$pid/status)
file=$(awk '/RssFile/ {print $2}' /proc/$pid/status)
echo "a line out: $(find "$data/out" -type f -exec head -1 {} + | head -1 | head -c 300)"
printf 'datamesh file -> filter -> project -> file: %.0f k events per CPU-second (%.2f CPU-s, %.2f s wall), peak RSS %d MiB (now RssAnon %d MiB, RssFile %d MiB)\n' \
  "$(echo "$eps / 1000" | bc -l)" "$cpu" "$(echo "$t1 - $t0" | bc -l)" $((hwm / 1024)) $((anon / 1024)) $((file / 1024))
kill -TERM "$pid"; wait "$pid" || true
pid=
printf 'json-pipeline ratio=%.2f target=1\n' "$(echo "$eps / 2400000" | bc -l)"
