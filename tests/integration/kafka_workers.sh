#!/usr/bin/env bash
# needs:kafka-mock — distributed mode on the mock cluster: `datamesh up --transport kafka://
# --external-workers` runs a datagen source on Kafka; two `datamesh worker` processes share
# the pipeline's four input partitions through its consumer group; one is killed (-9) in
# the middle of the run and the other takes its partitions over; every event reaches the
# derived source (no loss); kcat lists the topics and reads the Confluent wire format.
# (The mock cluster keeps no offsets committed inside transactions, so the survivor
# restarts moved partitions from their start: this test checks for loss, not duplicates.)
set -u
bin=${DM_BIN:?}
source "$(dirname "$0")/../harness/lib.sh"
pass=0 fail=0
ok() { echo "ok   $1"; pass=$((pass+1)); }
bad() { echo "FAIL $1: ${2:0:1500}"; fail=$((fail+1)); }
data=$(mktemp -d)
port=$(dm_free_port)
export DATAMESH_SERVER=http://127.0.0.1:$port
brokers=${DM_KAFKA_BROKERS:?}
pid= wa= wb=
trap 'kill -9 $pid $wa $wb 2>/dev/null; rm -rf "$data"' EXIT
py() { /usr/bin/python3 -c "$@"; }

# the controller's audit log topic too (the mock cannot create topics)
mk_topic plays 4 && mk_topic us 4 && mk_topic pipeline.us.dlq 1 && mk_topic _datamesh.audit 1 || exit 1
mk_topic pipeline.us.replay 4 || exit 1 # dead letters put back (read by the first stage)

N=3000
cat >"$data/spec.yaml" <<YAML
kind: Source
metadata: {name: plays, owner: test}
spec:
  connector: datagen
  key: [id]
  partitions: 4
  schema: {type: record, name: Play, fields: [{name: id, type: long}, {name: amount, type: double}]}
  config: {rate: 250, max_events: $N}
---
kind: Pipeline
metadata: {name: us, owner: test}
spec:
  from: [plays]
  steps:
    - filter: "id >= 0"
    - project: [id, "amount * 100 AS cents"]
  to:
    - source: us
YAML

dm_controller_start "$data" "$port" "$data/up.log" --transport "kafka://$brokers" --external-workers || exit 1
pid=$dm_pid
"$bin" apply -f "$data/spec.yaml" >"$data/apply.out" 2>&1 || bad apply "$(cat "$data/apply.out" "$data/up.log")"

tasks=$(curl -s "$DATAMESH_SERVER/api/v1/workers/tasks")
[[ $tasks == *'"pipeline":"us"'* && $tasks == *'"group":"pipeline.us"'* && $tasks == *"\"transport\":\"kafka://$brokers\""* ]] \
  && ok controller_lists_tasks || bad controller_lists_tasks "$tasks"
code=$(curl -s -o "$data/bad.out" -w '%{http_code}' -X POST --data 'not json' "$DATAMESH_SERVER/api/v1/workers/x/status")
[[ $code == 400 ]] && grep -q 'units' "$data/bad.out" && ok bad_report_refused || bad bad_report_refused "$code $(cat "$data/bad.out")"
st=$(curl -s "$DATAMESH_SERVER/api/v1/pipelines/us/status")
[[ $st == *'"state":"external"'* ]] && ok tasks_left_to_workers || bad tasks_left_to_workers "$st"

"$bin" worker --controller "$DATAMESH_SERVER" --id wa >"$data/wa.log" 2>&1 &
wa=$!
"$bin" worker --controller "$DATAMESH_SERVER" --id wb >"$data/wb.log" 2>&1 &
wb=$!

# Both workers get partitions of the group.
workers_with_tasks() {
  curl -s "$DATAMESH_SERVER/api/v1/workers" | py 'import json,sys
w=json.load(sys.stdin)["workers"]
print(" ".join(sorted("%s:%d" % (x["worker"], sum(1 for u in x["units"] if u.get("state")=="running")) for x in w)))'
}
shared=
for _ in $(seq 600); do # 60 s: a rebalance under ASan on a loaded machine
  s=$(workers_with_tasks)
  if [[ $s =~ wa:([1-9]) && $s =~ wb:([1-9]) ]]; then shared=$s; break; fi
  sleep 0.1
done
st=$(curl -s "$DATAMESH_SERVER/api/v1/pipelines/us/status")
[[ $st == *'"state":"running"'* && $st == *'"worker":"wa"'* && $st == *'"worker":"wb"'* ]] && ok pipeline_status_shows_workers || bad pipeline_status_shows_workers "$st"
[[ -n $shared ]] && ok two_workers_share_partitions || bad two_workers_share_partitions "$(workers_with_tasks) $(tail -n 20 "$data/wa.log" "$data/wb.log")"

# Kill one in the middle of the run; the other takes all four partitions.
sleep 2
kill -9 "$wa"; wait "$wa" 2>/dev/null; wa=
took=
for _ in $(seq 900); do # 90 s: the dead member's session ends, then a rebalance
  grep -c "partition [0-9] is mine" "$data/wb.log" | grep -q '^4$' && { took=1; break; }
  sleep 0.1
done
[[ -n $took ]] && ok survivor_takes_over || bad survivor_takes_over "$(tail -30 "$data/wb.log")"

# Every event reaches the derived source.
count_ids() {
  "$bin" consume us --from-beginning 2>/dev/null | py 'import json,sys
ids=set()
for l in sys.stdin:
    ids.add(json.loads(l)["id"])
print(len(ids), min(ids) if ids else -1, max(ids) if ids else -1)'
}
got=
for _ in $(seq 60); do
  got=$(count_ids)
  [[ $got == "$N 0 $((N - 1))" ]] && break
  sleep 1
done
[[ $got == "$N 0 $((N - 1))" ]] && ok no_loss_after_failover || bad no_loss_after_failover "distinct/min/max: $got; $(tail -20 "$data/wb.log")"

# kcat: the topics are listed and the records carry the Confluent header (magic 0, id).
meta=$(kcat -b "$brokers" -L 2>&1)
[[ $meta == *'topic "us" with 4 partitions'* && $meta == *'topic "plays" with 4 partitions'* ]] && ok kcat_lists || bad kcat_lists "$meta"
hdr=$(kcat -b "$brokers" -C -t us -p 0 -o beginning -c 1 -e -f '%s' 2>/dev/null | od -An -tx1 -N5 | tr -d ' \n')
[[ $hdr == 000000* && ${#hdr} -eq 10 ]] && ok kcat_reads_wire_format || bad kcat_reads_wire_format "header bytes: '$hdr'"

# A worker leaves cleanly on SIGTERM.
kill -TERM "$wb"; wait "$wb"; rc=$?
[[ $rc -eq 0 ]] && ok worker_stops_cleanly || bad worker_stops_cleanly "exit $rc: $(tail -20 "$data/wb.log")"
wb=
kill -TERM "$pid"; wait "$pid"; rc=$?
[[ $rc -eq 0 ]] && ok controller_stops_cleanly || bad controller_stops_cleanly "exit $rc: $(tail -20 "$data/up.log")"
pid=
# Without --external-workers the controller runs the tasks itself, every topic on Kafka.
mk_topic plays2 2 && mk_topic us2 2 && mk_topic pipeline.us2.dlq 1 || exit 1
mk_topic pipeline.us2.replay 2 || exit 1
sed -e 's/name: plays,/name: plays2,/; s/from: \[plays\]/from: [plays2]/; s/name: us,/name: us2,/; s/source: us$/source: us2/' \
    -e 's/partitions: 4/partitions: 2/; s/max_events: [0-9]*/max_events: 500/' "$data/spec.yaml" >"$data/spec2.yaml"
mkdir -p "$data/in"
dm_controller_start "$data/in" "$port" "$data/up2.log" --transport "kafka://$brokers" || exit 1
pid=$dm_pid
"$bin" apply -f "$data/spec2.yaml" >"$data/apply2.out" 2>&1 || bad apply_in_process "$(cat "$data/apply2.out")"
n=
for _ in $(seq 60); do
  n=$("$bin" consume us2 --from-beginning 2>/dev/null | py 'import json,sys
print(len({json.loads(l)["id"] for l in sys.stdin}))')
  [[ $n == 500 ]] && break
  sleep 0.5
done
st=$(curl -s "$DATAMESH_SERVER/api/v1/pipelines/us2/status")
[[ $n == 500 && $st == *'"state":"running"'* ]] && ok up_runs_tasks_on_kafka || bad up_runs_tasks_on_kafka "ids $n; $st; $(tail -20 "$data/up2.log")"
kill -TERM "$pid"; wait "$pid"; rc=$?
[[ $rc -eq 0 ]] && ok in_process_stops_cleanly || bad in_process_stops_cleanly "exit $rc: $(tail -20 "$data/up2.log")"
pid=
grep -q Sanitizer "$data"/*.log && bad no_sanitizer_reports "$(grep -A10 Sanitizer "$data"/*.log | head -30)"
echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
