#!/usr/bin/env bash
# needs:kafka-mock — a schema change reaches `datamesh worker`s (docs/schema-evolution.md):
# a datagen source on Kafka over 2 partitions feeds an `evolve` and a `fail` pipeline run by
# one worker; a new version of the source's schema is registered (as Postgres DDL or an
# emitter would, no spec re-applied) and records of it are written to both partitions (kcat).
# The evolve pipeline's tasks stop just before them, the worker reports it, the controller
# recompiles the plan and lists it with a new generation, and the same worker process loads
# it: every record reaches the derived source (the new ones with the new field), none is a
# dead letter. The fail pipeline pauses at the change, with the reason. (The mock cluster
# keeps no offsets committed inside transactions, so a reloaded task starts its partition
# again: this test checks for loss and for the new field, not for duplicates.) The history
# of schema changes survives a restart of the controller.
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
pid= wa=
trap 'kill -9 $pid $wa 2>/dev/null; rm -rf "$data"' EXIT
py() { /usr/bin/python3 -c "$@"; }

for t in "plays 2" "ev 2" "fa 2" "pipeline.ev.dlq 1" "pipeline.fa.dlq 1" "pipeline.ev.replay 2" "pipeline.fa.replay 2" "_datamesh.audit 1"; do
  mk_topic $t || exit 1
done

N=200
cat >"$data/spec.yaml" <<YAML
kind: Source
metadata: {name: plays, owner: test}
spec:
  connector: datagen
  partitions: 2
  schema: {type: record, name: Play, fields: [{name: id, type: long}, {name: amount, type: double}]}
  config: {rate: 1000, max_events: $N}
---
kind: Pipeline
metadata: {name: ev, owner: test}
spec:
  from: [plays]
  schema_change: evolve
  steps: [{filter: "id >= 0"}]
  to: [{source: ev}]
---
kind: Pipeline
metadata: {name: fa, owner: test}
spec:
  from: [plays]
  schema_change: fail
  steps: [{filter: "id >= 0"}]
  to: [{source: fa}]
YAML

dm_controller_start "$data" "$port" "$data/up.log" --transport "kafka://$brokers" --external-workers || exit 1
pid=$dm_pid
"$bin" apply -f "$data/spec.yaml" >"$data/apply.out" 2>&1 || bad apply "$(cat "$data/apply.out" "$data/up.log")"
"$bin" worker --controller "$DATAMESH_SERVER" --id wa >"$data/wa.log" 2>&1 &
wa=$!

# ids SOURCE: "DISTINCT TIERED" — distinct ids, and records with tier "gold"
ids() {
  timeout 30 "$bin" consume "$1" --from-beginning 2>/dev/null | py 'import json,sys
rs=[json.loads(l) for l in sys.stdin if l.strip()]
print(len({r["id"] for r in rs}), sum(1 for r in rs if r.get("tier") == "gold"))'
}
wait_ids() { # wait_ids SOURCE WANT: up to 90 s (ASan on a loaded machine)
  for _ in $(seq 90); do
    got=$(ids "$1")
    [[ $got == "$2" ]] && return 0
    sleep 1
  done
  return 1
}
generation() {
  curl -s "$DATAMESH_SERVER/api/v1/workers/tasks" | py 'import json,sys
print([t["generation"] for t in json.load(sys.stdin)["tasks"] if t["pipeline"] == sys.argv[1]][0])' "$1"
}
wait_ids ev "$N 0" && ok worker_runs_v1 || bad worker_runs_v1 "$got; $(tail -20 "$data/wa.log")"
wait_ids fa "$N 0" || bad fail_pipeline_runs_v1 "$got"
gen1=$(generation ev)

# A new version registered without a spec change, then records of it in both partitions.
v2='{"type":"record","name":"Play","fields":[{"name":"id","type":"long"},{"name":"amount","type":"double"},{"name":"tier","type":["null","string"],"default":null}]}'
reg=$(curl -s -X POST -H 'Content-Type: application/vnd.schemaregistry.v1+json' \
  --data "$(py 'import json,sys; print(json.dumps({"schema": sys.argv[1]}))' "$v2")" \
  "$DATAMESH_SERVER/subjects/plays-value/versions")
id=$(echo "$reg" | py 'import json,sys; print(json.load(sys.stdin)["id"])') || { bad register_v2 "$reg"; exit 1; }
mkdir -p "$data/v2"
py '
import struct, sys
def zz(n):
    n = (n << 1) ^ (n >> 63); out = b""
    while True:
        b = n & 0x7f; n >>= 7
        if n: out += bytes([b | 0x80])
        else: return out + bytes([b])
for i in range(1000, 1020):
    tier = b"gold"
    body = zz(i) + struct.pack("<d", i / 2) + zz(1) + zz(len(tier)) + tier
    open("%s/%d" % (sys.argv[1], i), "wb").write(b"\0" + struct.pack(">I", int(sys.argv[2])) + body)
' "$data/v2" "$id"
kcat -P -b "$brokers" -t plays -p 0 "$data"/v2/100? >/dev/null 2>&1 &&
  kcat -P -b "$brokers" -t plays -p 1 "$data"/v2/101? >/dev/null 2>&1 || bad produce_v2 "kcat failed"

wait_ids ev "$((N + 20)) 20" && ok worker_reloads_recompiled_plan \
  || bad worker_reloads_recompiled_plan "$got; $(tail -30 "$data/wa.log" "$data/up.log")"
kill -0 "$wa" 2>/dev/null && ok same_worker_process || bad same_worker_process "worker exited: $(tail -20 "$data/wa.log")"
gen2=$(generation ev)
[[ -n $gen1 && -n $gen2 && $gen1 != "$gen2" ]] && ok task_list_new_generation || bad task_list_new_generation "$gen1 -> $gen2"
grep -q "pipeline=ev: loaded plan generation $gen2 in place" "$data/wa.log" && ok worker_reloads_in_place || bad worker_reloads_in_place "$(tail -20 "$data/wa.log")"
dead=$(kcat -C -b "$brokers" -t pipeline.ev.dlq -o beginning -e -q 2>/dev/null | wc -l)
[[ $dead == 0 ]] && ok no_dead_letters || bad no_dead_letters "$dead"
ch=$(curl -s "$DATAMESH_SERVER/api/v1/schema-changes")
[[ $ch == *'"pipeline":"ev"'*'"action":"restart"'* || $ch == *'"action":"restart"'*'"pipeline":"ev"'* ]] \
  && ok schema_change_history || bad schema_change_history "$ch"

# A late report of the old generation (or of a pipeline the controller does not list) is
# ignored: no second restart.
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST --data \
  "{\"units\":[{\"name\":\"ev/task/0\",\"pipeline\":\"ev\",\"generation\":$gen1,\"schema_change\":{\"message\":\"late\"}},
               {\"name\":\"no/task/0\",\"pipeline\":\"no\",\"generation\":$gen2,\"schema_change\":{\"message\":\"none\"}}]}" \
  "$DATAMESH_SERVER/api/v1/workers/wz/status")
sleep 1
after=$(curl -s "$DATAMESH_SERVER/api/v1/schema-changes?pipeline=ev")
[[ $code == 204 && $after != *late* && $(curl -s "$DATAMESH_SERVER/api/v1/schema-changes") != *none* \
   && $(generation ev) == "$gen2" ]] && ok stale_report_ignored || bad stale_report_ignored "$code $after"

# The fail pipeline pauses at the change, the reason in its status.
st=
for _ in $(seq 300); do
  st=$(curl -s "$DATAMESH_SERVER/api/v1/pipelines/fa/status")
  [[ $st == *'paused (schema_change: fail)'* ]] && break
  sleep 0.2
done
[[ $st == *'paused (schema_change: fail)'*"has schema id $id"* ]] && ok fail_pauses_on_worker || bad fail_pauses_on_worker "$st"
[[ $(ids fa) == "$N 0" ]] && ok fail_reads_nothing_new || bad fail_reads_nothing_new "$(ids fa)"
[[ $(curl -s "$DATAMESH_SERVER/api/v1/schema-changes?pipeline=fa") == *'"action":"pause"'* ]] \
  && ok fail_pause_in_history || bad fail_pause_in_history "$(curl -s "$DATAMESH_SERVER/api/v1/schema-changes")"

kill -TERM "$wa"; wait "$wa"; wa=
# The history is kept with the catalog: a restarted controller still has it.
kill -TERM "$pid"; wait "$pid"; pid=
dm_controller_start "$data" "$port" "$data/up2.log" --transport "kafka://$brokers" --external-workers || exit 1
pid=$dm_pid
ch2=$(curl -s "$DATAMESH_SERVER/api/v1/schema-changes")
[[ $ch2 == "$ch"* && $ch2 == *'"pipeline":"fa"'*'"action":"pause"'* ]] \
  && ok history_survives_restart || bad history_survives_restart "before: $ch; after: $ch2"
kill -TERM "$pid"; wait "$pid"; pid=
grep -q Sanitizer "$data"/*.log && bad no_sanitizer_reports "$(grep -A10 Sanitizer "$data"/*.log | head -30)"
echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
