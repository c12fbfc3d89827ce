#!/usr/bin/env bash
# needs:kafka-mock — one set of pipelines (filter+project, a union of two sources, an
# interval join, a tumbling-window aggregate on an event-time field, a route to two
# outputs, enrich with a table, dedupe) runs in `datamesh up` on the embedded log and
# with `--transport kafka:// --external-workers` plus two `datamesh worker`s on the mock
# cluster; both run the same plan, so every output is the same multiset of records.
# The stateful pipelines give an upstream task 10 s (idle_timeout) before it stops
# holding windows back: a worker that is slow to get its partitions (ASan, a rebalance)
# must not have its records arrive after the windows closed.
# Then one worker is killed (-9) while more events arrive: the other takes its
# partitions over and nothing is lost. (The mock keeps no offsets committed inside
# transactions, so after a failover the survivor replays moved partitions from their
# start: that phase checks for loss, not duplicates; see kafka_workers.sh.)
set -u
bin=${DM_BIN:?}
source "$(dirname "$0")/../harness/lib.sh"
dm_e2e_setup
brokers=${DM_KAFKA_BROKERS:?}
wa= wb=
trap 'kill -9 $pid $wa $wb 2>/dev/null; rm -rf "$data"' EXIT
py() { /usr/bin/python3 -c "$@"; }

cat >"$data/spec.yaml" <<'YAML'
kind: Source
metadata: {name: orders, owner: shop}
spec:
  connector: ingest
  key: [id]
  partitions: 2
  schema: {type: record, name: Order, fields: [{name: id, type: long}, {name: country, type: string}, {name: amount, type: double}, {name: ts, type: long}]}
---
kind: Source
metadata: {name: orders2, owner: shop}
spec:
  connector: ingest
  key: [id]
  partitions: 2
  schema: {type: record, name: Order2, fields: [{name: id, type: long}, {name: country, type: string}, {name: amount, type: double}, {name: ts, type: long}]}
---
kind: Source
metadata: {name: pays, owner: shop}
spec:
  connector: ingest
  key: [pid]
  partitions: 2
  schema: {type: record, name: Pay, fields: [{name: pid, type: long}, {name: id, type: long}, {name: ts, type: long}]}
---
kind: Source
metadata: {name: countries, owner: shop}
spec:
  connector: ingest
  key: [country]
  schema: {type: record, name: Country, fields: [{name: country, type: string}, {name: cname, type: string}]}
---
kind: Pipeline
metadata: {name: fp, owner: shop}
spec:
  from: [orders]
  steps: [{filter: "amount > 10"}, {project: [id, country, "amount * 2 AS dbl"]}]
  to: [{source: fp-out}]
---
kind: Pipeline
metadata: {name: un, owner: shop}
spec:
  from: [orders, orders2]
  steps: [{filter: "amount >= 0"}]
  to: [{source: un-out}]
---
kind: Pipeline
metadata: {name: jn, owner: shop}
spec:
  from: [orders]
  idle_timeout: 10s
  steps: [{join: {with: pays, on: id, within: 1h, time: ts}}]
  to: [{source: jn-out}]
---
kind: Pipeline
metadata: {name: ag, owner: shop}
spec:
  from: [orders]
  idle_timeout: 10s
  steps: [{aggregate: {window: {type: tumbling, size: 10s}, time: ts, group_by: [country], aggregates: ["count(*) AS n", "sum(amount) AS total"]}}]
  to: [{source: ag-out}]
---
kind: Pipeline
metadata: {name: rt, owner: shop}
spec:
  from: [orders]
  steps: [{route: {outputs: {rt-big: "amount > 50"}, default: rt-small}}]
  to: [{source: rt-small}]
---
kind: Pipeline
metadata: {name: en, owner: shop}
spec:
  from: [orders]
  steps: [{enrich: {with: countries, on: country, fields: [cname]}}]
  to: [{source: en-out}]
---
kind: Pipeline
metadata: {name: dd, owner: shop}
spec:
  from: [orders]
  idle_timeout: 10s
  steps: [{dedupe: {key: [country], within: 1h, time: ts}}, {project: [country]}]
  to: [{source: dd-out}]
YAML
outputs="fp-out:49 un-out:128 jn-out:60 ag-out:3 rt-small:59 rt-big:9 en-out:68 dd-out:4"

post() { curl -s -X POST --data "$2" "$DATAMESH_SERVER/api/v1/sources/$1/events"; }
# feed FIRST LAST: orders (and orders2, pays) with ids FIRST..LAST-1, all in [0, 10 s)
feed() {
  post orders "$(py "import json; print(json.dumps([{'id':i,'country':['US','FR','DE'][i%3],'amount':float(i%80),'ts':i*10} for i in range($1,$2)]))")" >/dev/null
  post orders2 "$(py "import json; print(json.dumps([{'id':i,'country':'NL','amount':1.0,'ts':i*10} for i in range($1,$2)]))")" >/dev/null
  post pays "$(py "import json; print(json.dumps([{'pid':i,'id':i,'ts':i*10+5} for i in range($1,$2)]))")" >/dev/null
}
# Event time past the window on every partition.
close_windows() {
  post orders "$(py "import json; print(json.dumps([{'id':5000+i,'country':'ZZ','amount':0.5,'ts':900000} for i in range(8)]))")" >/dev/null
  post pays "$(py "import json; print(json.dumps([{'pid':5000+i,'id':9000+i,'ts':900000} for i in range(8)]))")" >/dev/null
}
wait_count() { # SOURCE N SECONDS
  for _ in $(seq $(($3 * 5))); do
    [[ $("$bin" consume "$1" --from-beginning -n 100000 2>/dev/null | wc -l) -ge $2 ]] && return 0
    sleep 0.2
  done
  return 1
}
# run_all DIR: ingest, wait for every output, save each sorted
run_all() {
  post countries '[{"country":"US","cname":"United States"},{"country":"FR","cname":"France"},{"country":"DE","cname":"Germany"}]' >/dev/null
  sleep 1
  feed 0 60
  sleep 1
  close_windows
  mkdir -p "$1"
  for o in $outputs; do
    name=${o%%:*} n=${o##*:}
    wait_count "$name" "$n" 90 || echo "$name: fewer than $n records" >>"$1/short"
    sleep 0.3
    "$bin" consume "$name" --from-beginning -n 100000 2>/dev/null | sort >"$1/$name"
  done
}

# ---- embedded ----
start || exit 1
r=$("$bin" apply -f "$data/spec.yaml" 2>&1) && ok apply_embedded || bad apply_embedded "$r"
run_all "$data/embedded"
[[ ! -s $data/embedded/short ]] && ok embedded_outputs || bad embedded_outputs "$(cat "$data/embedded/short"; tail -5 "$data/up.log")"
stop

mkdir -p "$data/k"
mk_topic _datamesh.audit 1 || bad mk_topic _datamesh.audit # the controller's audit log
dm_controller_start "$data/k" "$port" "$data/upk.log" --transport "kafka://$brokers" --external-workers || exit 1
pid=$dm_pid
# The mock cannot create topics: make every topic the plans name (explain -f, nothing applied).
"$bin" explain -f "$data/spec.yaml" -o json >"$data/plans.json" 2>&1 || bad explain_f "$(cat "$data/plans.json")"
py 'import json,sys
text=open(sys.argv[1]).read()
dec=json.JSONDecoder(); i=0; topics={}
while i < len(text):
    while i < len(text) and text[i].isspace(): i+=1
    if i>=len(text): break
    p,i=dec.raw_decode(text,i)
    for t in p["topics"]: topics[t["name"]]=t["partitions"]
for s in ("orders","orders2","pays"): topics[s]=2
topics["countries"]=1
for n,k in sorted(topics.items()): print(n,k)' "$data/plans.json" >"$data/topics" 2>"$data/err" || bad explain_f_json "$(cat "$data/err" "$data/plans.json")"
grep -q "^pipeline.ag.rekey.0 2$" "$data/topics" && ok explain_f_lists_rekey_topics || bad explain_f_lists_rekey_topics "$(cat "$data/topics")"
while read -r t n; do mk_topic "$t" "$n" || bad mk_topic "$t"; done <"$data/topics"
r=$("$bin" apply -f "$data/spec.yaml" 2>&1) && ok apply_kafka || bad apply_kafka "$r"
"$bin" worker --controller "$DATAMESH_SERVER" --id wa >"$data/wa.log" 2>&1 &
wa=$!
"$bin" worker --controller "$DATAMESH_SERVER" --id wb >"$data/wb.log" 2>&1 &
wb=$!
sleep 3
run_all "$data/kafka"
[[ ! -s $data/kafka/short ]] && ok kafka_outputs || bad kafka_outputs "$(cat "$data/kafka/short"; tail -n 5 "$data/wa.log" "$data/wb.log")"
grep -q "is mine" "$data/wa.log" && grep -q "is mine" "$data/wb.log" && ok both_workers_run_tasks \
  || bad both_workers_run_tasks "$(tail -n 5 "$data/wa.log" "$data/wb.log")"
grep -q "group pipeline.ag.rekey.0" "$data/wa.log" "$data/wb.log" && ok workers_run_rekey_stages || bad workers_run_rekey_stages "$(grep joined "$data/wa.log")"
for o in $outputs; do
  name=${o%%:*}
  if cmp -s "$data/embedded/$name" "$data/kafka/$name"; then ok "same_$name"
  else bad "same_$name" "$(diff "$data/embedded/$name" "$data/kafka/$name" | head -8)"; fi
done

# ---- a worker dies mid-run ----
feed 100 130 &
fpid=$!
sleep 0.2
kill -9 "$wa"; wait "$wa" 2>/dev/null; wa=
wait "$fpid"
ids() { "$bin" consume "$1" --from-beginning -n 100000 2>/dev/null | py 'import json,sys
print(len({json.loads(l)["id"] for l in sys.stdin if json.loads(l)["id"] < 5000}))'; }
got=
for _ in $(seq 100); do
  got="$(ids fp-out) $(ids un-out) $(ids en-out)"
  [[ $got == "79 90 90" ]] && break
  sleep 0.3
done
[[ $got == "79 90 90" ]] && ok no_loss_after_worker_killed || bad no_loss_after_worker_killed "distinct ids fp/un/en: $got; $(tail -10 "$data/wb.log")"
kill -TERM "$wb"; wait "$wb"; rc=$?; wb=
[[ $rc -eq 0 ]] && ok worker_stops_cleanly || bad worker_stops_cleanly "exit $rc"
stop
dm_e2e_summary
