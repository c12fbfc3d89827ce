#!/usr/bin/env bash
# needs:kafka-mock — metrics from `datamesh worker`: a pipeline with an SDK
# processor (tests/sdk/counter.c, which counts what it does through the
# host's counter_add) runs on a worker of a controller started with
# --external-workers; the processor's counters and the worker's built-in task
# metrics reach the controller's GET /metrics with worker="ID" added, their
# values those of the records processed, and the text passes promtool; a
# report with a malformed metric, or one of the controller's own series
# (datamesh_unit_failed: a worker must not fire another pipeline's alert), is
# refused naming how many were not taken.
set -u
bin=${DM_BIN:?}
source "$(dirname "$0")/../harness/lib.sh"
lib=${DM_BINARY_DIR:?}/tests/sdk
pass=0 fail=0
ok() { echo "ok   $1"; pass=$((pass+1)); }
bad() { echo "FAIL $1: ${2:0:1500}"; fail=$((fail+1)); }
data=$(mktemp -d)
port=$(dm_free_port)
export DATAMESH_SERVER=http://127.0.0.1:$port
brokers=${DM_KAFKA_BROKERS:?}
pid= w=
trap 'kill -9 $pid $w 2>/dev/null; rm -rf "$data"' EXIT

mk_topic sales 2 && mk_topic counted 2 && mk_topic pipeline.counting.dlq 1 && mk_topic pipeline.counting.state 2 && mk_topic _datamesh.audit 1 || exit 1
mk_topic pipeline.counting.replay 2 || exit 1 # dead letters put back (read by the first stage)

N=400
cat >"$data/spec.yaml" <<YAML
kind: Source
metadata: {name: sales, owner: shop}
spec:
  connector: datagen
  key: [user]
  partitions: 2
  schema: {type: record, name: Sale, fields: [{name: user, type: long}, {name: amount, type: long}]}
  config: {rate: 400, max_events: $N}
---
kind: Processor
metadata: {name: counter, owner: shop}
spec: {library: $lib/counter.so, config: {key: user}}
---
kind: Pipeline
metadata: {name: counting, owner: shop}
spec:
  from: [sales]
  steps:
    - processor: {name: counter, config: {}}
  to:
    - source: counted
YAML

dm_controller_start "$data" "$port" "$data/up.log" --transport "kafka://$brokers" --external-workers || exit 1
pid=$dm_pid
out=$("$bin" apply -f "$data/spec.yaml" 2>&1) && ok apply || bad apply "$out $(tail -5 "$data/up.log")"
"$bin" worker --controller "$DATAMESH_SERVER" --id w1 >"$data/w1.log" 2>&1 &
w=$!

# counted_total over both partitions, as the controller serves it
sum_of() { # sum_of METRIC_PREFIX → the sum of the series starting with it
  curl -s "$DATAMESH_SERVER/metrics" | awk -v p="$1" 'index($0, p) == 1 { s += $NF } END { print s + 0 }'
}
got=0
for _ in $(seq 600); do # 60 s: a worker joins the group and runs the records under ASan
  got=$(sum_of 'datamesh_sdk_counted_total{worker="w1",processor="counter"')
  [[ $got -ge $N ]] && break
  sleep 0.1
done
m=$(curl -s "$DATAMESH_SERVER/metrics")
[[ $got -eq $N ]] && ok sdk_counter_from_worker || bad sdk_counter_from_worker "counted $got of $N: $(grep -E 'sdk_|worker=' <<<"$m" | head; tail -5 "$data/w1.log"; curl -s "$DATAMESH_SERVER/api/v1/workers"; curl -s "$DATAMESH_SERVER/api/v1/pipelines/counting/status"; tail -5 "$data/up.log")"
in=$(sum_of 'datamesh_task_records_in_total{worker="w1"')
[[ $in -ge $N ]] && ok builtin_task_metrics_from_worker || bad builtin_task_metrics_from_worker "records_in $in: $(grep 'task_records_in' <<<"$m" | head)"
promtool check metrics <<<"$m" >"$data/promtool.out" 2>&1 && ok promtool_check_metrics || bad promtool_check_metrics "$(head "$data/promtool.out")"

# A report with metrics that cannot be taken: refused, naming how many.
code=$(curl -s -o "$data/bad.out" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
  --data '{"units":[],"metrics":[{"name":"datamesh_sdk_x_total","kind":"counter","labels":"a=\"1\"","value":5},{"name":"x y","kind":"counter","labels":"","value":1},{"name":"datamesh_sdk_y","kind":"gauge","labels":"worker=\"w1\"","value":1},{"name":"datamesh_unit_failed","kind":"gauge","labels":"object=\"counting\"","value":1}]}' \
  "$DATAMESH_SERVER/api/v1/workers/w9/status")
[[ $code == 400 ]] && grep -q '3 of the report' "$data/bad.out" && ok bad_metrics_refused || bad bad_metrics_refused "$code $(cat "$data/bad.out")"
m=$(curl -s "$DATAMESH_SERVER/metrics")
[[ $m == *'datamesh_sdk_x_total{worker="w9",a="1"} 5'* && $m != *'datamesh_sdk_y'* && $m != *'datamesh_unit_failed{object="counting"}'* ]] && ok good_metric_of_a_bad_report_taken || bad good_metric_of_a_bad_report_taken "$(grep -E 'datamesh_(sdk_x|sdk_y|unit_failed)' <<<"$m")"

grep -q 'reporting status' "$data/w1.log" && bad reports_taken "$(grep 'reporting status' "$data/w1.log" | head -3)" || ok reports_taken
kill -TERM "$w"; wait "$w"; rc=$?
[[ $rc -eq 0 ]] && ok worker_stops_cleanly || bad worker_stops_cleanly "exit $rc: $(tail -20 "$data/w1.log")"
w=
kill -TERM "$pid"; wait "$pid"; rc=$?
[[ $rc -eq 0 ]] && ok controller_stops_cleanly || bad controller_stops_cleanly "exit $rc: $(tail -20 "$data/up.log")"
pid=
echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
