#!/usr/bin/env bash
# End to end: an ingest source into a dedupe→aggregate pipeline (tumbling
# windows on an event-time field) and a route pipeline writing two derived
# sources; windows close when event time passes their end, a window open at a
# restart keeps what it had counted, and late events go to dead letters.
set -u
bin=${DM_BIN:?}
source "$(dirname "$0")/../harness/lib.sh"
pass=0 fail=0
ok() { echo "ok   $1"; pass=$((pass+1)); }
bad() { echo "FAIL $1: ${2:0:600}"; fail=$((fail+1)); }
data=$(mktemp -d)
port=$(dm_free_port)
export DATAMESH_SERVER=http://127.0.0.1:$port
pid=
start() { dm_controller_start "$data" "$port" "$data/up.log"; pid=$dm_pid; }
stop() {
  kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; local rc=$?
  if [[ $rc -ne 0 ]] || grep -q "Sanitizer" "$data/up.log"; then bad clean_stop "exit $rc: $(grep -A5 Sanitizer "$data/up.log" | head -20)"; fi
}
trap 'kill -9 $pid 2>/dev/null; rm -rf "$data"' EXIT
post() { curl -s -X POST --data "$1" "$DATAMESH_SERVER/api/v1/sources/clicks/events"; }
# wait_count SOURCE N SECONDS: until SOURCE has N records
wait_count() {
  for _ in $(seq $(($3 * 10))); do
    [[ $("$bin" consume "$1" --from-beginning -n 1000 2>/dev/null | wc -l) -ge $2 ]] && return 0
    sleep 0.1
  done
  return 1
}

start
cat >"$data/specs.yaml" <<'YAML'
kind: Source
metadata: {name: clicks, owner: web}
spec:
  connector: ingest
  schema: {type: record, name: Click, fields: [{name: user, type: string}, {name: page, type: string}, {name: ms, type: long}]}
---
kind: Pipeline
metadata: {name: page-counts, owner: web}
spec:
  from: [clicks]
  steps:
    - dedupe: {key: [user, page], within: 10s, time: ms}
    - aggregate:
        window: {type: tumbling, size: 10s}
        time: ms
        group_by: [page]
        aggregates: ["count(*) AS n", "count(distinct user) AS users", "max(ms) AS last"]
  state: {spill: 64KiB}
  to: [{source: page-counts}]
---
kind: Pipeline
metadata: {name: split, owner: web}
spec:
  from: [clicks]
  steps:
    - route: {outputs: {error-clicks: "page LIKE '/err%'"}, default: ok-clicks}
  to: [{source: ok-clicks}]
YAML
r=$("$bin" apply -f "$data/specs.yaml" 2>&1) && ok apply || bad apply "$r"
# a/x twice within 10 s: one counts. The click at 12000 moves event time past 10000.
r=$(post '[{"user":"a","page":"/x","ms":1000},{"user":"a","page":"/x","ms":2000},{"user":"b","page":"/x","ms":3000},{"user":"a","page":"/err","ms":4000}]')
[[ $r == '{"accepted":4}' ]] || bad ingest "$r"
sleep 0.5
post '[{"user":"c","page":"/y","ms":12000}]' >/dev/null
if wait_count page-counts 2 20; then ok windows_close_on_event_time; else bad windows_close_on_event_time "$("$bin" consume page-counts --from-beginning -n 10 2>&1; tail -20 "$data/up.log")"; fi
"$bin" consume page-counts --from-beginning -n 10 >"$data/w1" 2>&1
/usr/bin/python3 -c 'import json,sys
rows={r["page"]: r for r in map(json.loads, open(sys.argv[1]))}
assert set(rows)=={"/x","/err"}, rows
x=rows["/x"]
assert (x["n"], x["users"], x["last"])==(2, 2, 3000), x
assert x["window_start"].startswith("1970-01-01T00:00:00") and x["window_end"].startswith("1970-01-01T00:00:10"), x
assert rows["/err"]["n"]==1, rows' "$data/w1" 2>"$data/err" && ok window_counts_dedupe || bad window_counts_dedupe "$(cat "$data/err") $(cat "$data/w1")"
if wait_count error-clicks 1 10 && wait_count ok-clicks 4 10; then ok route_writes_two_sources; else bad route_writes_two_sources "errors: $("$bin" consume error-clicks --from-beginning -n 9 2>&1) ok: $("$bin" consume ok-clicks --from-beginning -n 9 2>&1)"; fi
n=$("$bin" consume error-clicks --from-beginning -n 100 | wc -l)
[[ $n -eq 1 ]] && ok route_first_match_only || bad route_first_match_only "$n"

# Restart while [10000, 20000) holds c's click: it keeps it.
stop
start
post '[{"user":"d","page":"/y","ms":15000},{"user":"c","page":"/y","ms":16000}]' >/dev/null
sleep 0.5
post '[{"user":"e","page":"/z","ms":25000}]' >/dev/null
if wait_count page-counts 3 20; then ok window_after_restart; else bad window_after_restart "$(tail -20 "$data/up.log")"; fi
"$bin" consume page-counts --from-beginning -n 10 >"$data/w2" 2>&1
/usr/bin/python3 -c 'import json,sys
rows=[json.loads(l) for l in open(sys.argv[1])]
y=[r for r in rows if r["page"]=="/y"]
assert len(y)==1, rows
assert (y[0]["n"], y[0]["users"], y[0]["last"])==(2, 2, 15000), y' "$data/w2" 2>"$data/err" && ok state_restored_across_restart || bad state_restored_across_restart "$(cat "$data/err") $(cat "$data/w2")"

# A click for a window emitted long ago is a dead letter, not a silent drop.
post '[{"user":"f","page":"/x","ms":500}]' >/dev/null
found=
for _ in $(seq 50); do
  m=$(curl -s "$DATAMESH_SERVER/metrics")
  if grep -q 'datamesh_processor_dead_letters_total{task="page-counts/task/0",processor="dedupe",step="0"} 1' <<<"$m"; then found=1; break; fi
  sleep 0.1
done
[[ -n $found ]] && ok late_event_dead_letter || bad late_event_dead_letter "$(grep dead_letters <<<"$m")"
# Union: taps (another record name and field order) and clicks into one source.
cat >"$data/union.yaml" <<'YAML'
kind: Source
metadata: {name: taps, owner: mobile}
spec:
  connector: ingest
  schema: {type: record, name: Tap, namespace: mobile, fields: [{name: ms, type: long}, {name: page, type: string}, {name: user, type: string}, {name: finger, type: string}]}
---
kind: Pipeline
metadata: {name: all-clicks, owner: web}
spec:
  from: [clicks, taps]
  steps: [{filter: "page != '/err'"}]
  to: [{source: all-clicks}]
YAML
r=$("$bin" apply -f "$data/union.yaml" 2>&1) && ok apply_union || bad apply_union "$r"
r=$(curl -s -X POST --data '[{"ms":1,"page":"/t","user":"t1","finger":"left"},{"ms":2,"page":"/t","user":"t2","finger":"right"}]' "$DATAMESH_SERVER/api/v1/sources/taps/events")
[[ $r == '{"accepted":2}' ]] || bad ingest_taps "$r"
# clicks so far: 8 records, one on /err; taps: 2.
if wait_count all-clicks 9 20; then ok union_reads_both; else bad union_reads_both "$("$bin" consume all-clicks --from-beginning -n 20 2>&1; tail -5 "$data/up.log")"; fi
n=$("$bin" consume all-clicks --from-beginning -n 100 | grep -c '"user":"t')
[[ $n -eq 2 ]] && ok union_taps_as_clicks || bad union_taps_as_clicks "$n"
cat >"$data/bad-union.yaml" <<'YAML'
kind: Source
metadata: {name: pings, owner: mobile}
spec:
  connector: ingest
  schema: {type: record, name: Ping, fields: [{name: ms, type: long}, {name: user, type: string}]}
---
kind: Pipeline
metadata: {name: bad-union, owner: web}
spec:
  from: [clicks, pings]
  to: [{source: bad-union}]
YAML
r=$("$bin" apply -f "$data/bad-union.yaml" 2>&1)
[[ $r == *'spec.from[1]: source pings cannot be read as clicks'*'page'* ]] && ok union_mismatch_named || bad union_mismatch_named "$r"
# Join: clicks with payments of the same user within 10 s of event time.
cat >"$data/join.yaml" <<'YAML'
kind: Source
metadata: {name: payments, owner: shop}
spec:
  connector: ingest
  schema: {type: record, name: Payment, fields: [{name: user, type: string}, {name: paid, type: double}, {name: ms, type: long}]}
---
kind: Pipeline
metadata: {name: paid-clicks, owner: shop}
spec:
  from: [clicks]
  steps:
    - filter: "page != '/none'"
    - join: {with: payments, on: user, within: 10s, time: ms}
    - project: [user, page, paid, "payments_ms - ms AS delay"]
  to: [{source: paid-clicks}]
YAML
r=$("$bin" apply -f "$data/join.yaml" 2>&1) && ok apply_join || bad apply_join "$r"
r=$(curl -s -X POST --data '[{"user":"e","paid":9.5,"ms":26000},{"user":"a","paid":1,"ms":26000}]' "$DATAMESH_SERVER/api/v1/sources/payments/events")
[[ $r == '{"accepted":2}' ]] || bad ingest_payments "$r"
if wait_count paid-clicks 1 20; then ok join_emits; else bad join_emits "$(tail -5 "$data/up.log")"; fi
sleep 0.5
"$bin" consume paid-clicks --from-beginning -n 10 >"$data/j" 2>&1
/usr/bin/python3 -c 'import json,sys
rows=[json.loads(l) for l in open(sys.argv[1])]
assert rows==[{"user":"e","page":"/z","paid":9.5,"delay":1000}], rows' "$data/j" 2>"$data/err" && ok join_pairs_within_bound || bad join_pairs_within_bound "$(cat "$data/err")"
# A compatible change of the joined source restarts the join with its new schema.
sed -i 's/{name: ms, type: long}]}/{name: ms, type: long}, {name: card, type: ["null", string], default: null}]}/' "$data/join.yaml"
r=$("$bin" apply -f "$data/join.yaml" 2>&1) || bad reapply_join "$r"
sleep 1
r=$(curl -s -X POST --data '[{"user":"e","paid":2,"ms":26500,"card":"visa"}]' "$DATAMESH_SERVER/api/v1/sources/payments/events")
[[ $r == '{"accepted":1}' ]] || bad ingest_payments_v2 "$r"
if wait_count paid-clicks 2 20; then ok join_follows_joined_source_schema; else bad join_follows_joined_source_schema "$(curl -s "$DATAMESH_SERVER/api/v1/pipelines/paid-clicks/status"; tail -5 "$data/up.log")"; fi
printf 'kind: Pipeline\nmetadata: {name: bad-join}\nspec:\n  from: [clicks]\n  steps: [{filter: "ms > 0"}, {join: {with: payments, on: user, within: 10s}}, {join: {with: payments, on: user, within: 10s}}]\n  to: [{source: bad-join}]\n' >"$data/bad-join.yaml"
r=$("$bin" apply -f "$data/bad-join.yaml" 2>&1)
[[ $r == *'only one'* ]] && ok one_join_per_pipeline || bad one_join_per_pipeline "$r"
st=$(curl -s "$DATAMESH_SERVER/api/v1/pipelines/page-counts/status")
[[ $st == *'"state":"running"'* ]] && ok pipeline_running || bad pipeline_running "$st"
stop
echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
