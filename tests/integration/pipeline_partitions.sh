#!/usr/bin/env bash
# Stateful steps keyed by something the input is not partitioned by, with 1, 2 and 4
# partitions per input: an aggregate over a union of two sources grouped by country, a
# dedupe on country and a join on country of two sources keyed by id. The plan re-keys
# them (pipeline.NAME.rekey.S) and carries watermarks across, so every run gives the
# same answer: one row per group and window, each repeat dropped once, every pair joined.
# explain shows the split.
set -u
bin=${DM_BIN:?}
source "$(dirname "$0")/../harness/lib.sh"
dm_e2e_setup
start || exit 1
py() { /usr/bin/python3 -c "$@"; }
# wait_count SOURCE N SECONDS: until SOURCE has at least N records
wait_count() {
  for _ in $(seq $(($3 * 10))); do
    [[ $("$bin" consume "$1" --from-beginning -n 100000 2>/dev/null | wc -l) -ge $2 ]] && return 0
    sleep 0.1
  done
  return 1
}
post() { curl -s -X POST --data "$2" "$DATAMESH_SERVER/api/v1/sources/$1/events"; }

for P in 1 2 4; do
  cat >"$data/p$P.yaml" <<YAML
kind: Source
metadata: {name: a$P, owner: test}
spec:
  connector: ingest
  key: [id]
  partitions: $P
  schema: {type: record, name: Ev, fields: [{name: id, type: long}, {name: country, type: string}, {name: ts, type: long}]}
---
kind: Source
metadata: {name: b$P, owner: test}
spec:
  connector: ingest
  key: [id]
  partitions: $P
  schema: {type: record, name: Ev, fields: [{name: id, type: long}, {name: country, type: string}, {name: ts, type: long}]}
---
kind: Pipeline
metadata: {name: agg$P, owner: test}
spec:
  from: [a$P, b$P]
  idle_timeout: 2s
  steps:
    - aggregate: {window: {type: tumbling, size: 10s}, time: ts, group_by: [country], aggregates: ["count(*) AS n"]}
  to: [{source: agg$P-out}]
---
kind: Pipeline
metadata: {name: dd$P, owner: test}
spec:
  from: [a$P]
  idle_timeout: 2s
  steps:
    - dedupe: {key: [country], within: 1h, time: ts}
  to: [{source: dd$P-out}]
---
kind: Pipeline
metadata: {name: jn$P, owner: test}
spec:
  from: [a$P]
  idle_timeout: 2s
  steps:
    - join: {with: b$P, on: country, within: 1h, time: ts}
  to: [{source: jn$P-out}]
YAML
  r=$("$bin" apply -f "$data/p$P.yaml" 2>&1) && ok "apply_p$P" || bad "apply_p$P" "$r"
  # 60 events, ids 0..59, three countries, all in the window [0, 10 s): even ids to a, odd to b.
  ea=$(py 'import json; print(json.dumps([{"id":i,"country":["US","FR","DE"][i%3],"ts":i*100} for i in range(0,60,2)]))')
  eb=$(py 'import json; print(json.dumps([{"id":i,"country":["US","FR","DE"][i%3],"ts":i*100} for i in range(1,60,2)]))')
  [[ $(post a$P "$ea") == '{"accepted":30}' && $(post b$P "$eb") == '{"accepted":30}' ]] || bad "ingest_p$P" "refused"
  sleep 1
  # Event time moves past the window on every partition of both sources.
  close=$(py 'import json; print(json.dumps([{"id":1000+i,"country":"ZZ","ts":100000} for i in range(16)]))')
  post a$P "$close" >/dev/null; post b$P "$close" >/dev/null
  if wait_count agg$P-out 3 20; then
    sleep 0.5
    "$bin" consume agg$P-out --from-beginning -n 1000 >"$data/agg$P" 2>&1
    py 'import json,sys
rows=[json.loads(l) for l in open(sys.argv[1])]
got=sorted((r["country"], r["n"]) for r in rows if r["window_start"].startswith("1970-01-01T00:00:00"))
assert got==[("DE",20),("FR",20),("US",20)], got' "$data/agg$P" 2>"$data/err" \
      && ok "aggregate_one_row_per_group_p$P" || bad "aggregate_one_row_per_group_p$P" "$(cat "$data/err" "$data/agg$P")"
  else
    bad "aggregate_one_row_per_group_p$P" "$("$bin" consume agg$P-out --from-beginning -n 10 2>&1; curl -s $DATAMESH_SERVER/api/v1/pipelines/agg$P/status; tail -5 "$data/up.log")"
  fi
  wait_count dd$P-out 4 10
  n=$("$bin" consume dd$P-out --from-beginning -n 1000 2>/dev/null | wc -l)
  [[ $n -eq 4 ]] && ok "dedupe_once_per_key_p$P" || bad "dedupe_once_per_key_p$P" "$n records: $("$bin" consume dd$P-out --from-beginning -n 20 2>&1)"
  # 10 x 10 pairs per country, and the closing events: 16 x 16 of ZZ.
  wait_count jn$P-out 556 20
  n=$("$bin" consume jn$P-out --from-beginning -n 100000 2>/dev/null | wc -l)
  [[ $n -eq 556 ]] && ok "join_every_pair_p$P" || bad "join_every_pair_p$P" "$n pairs; $(curl -s $DATAMESH_SERVER/api/v1/pipelines/jn$P/status)"
done

# explain shows the split: a stage re-keying into pipeline.agg2.rekey.0 and one reading it.
out=$("$bin" explain agg2 2>&1)
[[ $out == *"stage main: 2 tasks"* && $out == *"writes pipeline.agg2.rekey.0 (re-keyed)"* && $out == *"stage rekey.0"* && $out == *"watermark: the smallest of 2 upstream tasks"* ]] \
  && ok explain_shows_rekey || bad explain_shows_rekey "$out"
# one partition: nothing to re-key
out=$("$bin" explain agg1 2>&1)
[[ $out == *"Pipeline agg1: 1 stage"* ]] && ok explain_one_partition_no_split || bad explain_one_partition_no_split "$out"
stop
dm_e2e_summary
