#!/usr/bin/env bash
# End to end: `datamesh up --demo` runs datagen sources, a filter→project→enrich
# pipeline into a derived source and a file sink; consume reads it; an ingest
# source takes validated events; a restart resumes with no loss and no
# duplicate; an updated pipeline keeps its position.
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
start() { dm_controller_start "$data" "$port" "$data/up.log" --demo; pid=$dm_pid; }
stop() { # a clean stop: exit 0 and no sanitizer report in the log
  kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; local rc=$?
  if [[ $rc -ne 0 ]] || grep -q "Sanitizer" "$data/up.log"; then bad clean_stop "exit $rc: $(grep -A5 Sanitizer "$data/up.log" | head -20)"; fi
}
trap 'kill -9 $pid 2>/dev/null; rm -rf "$data"' EXIT
out=$data/out/us-plays.jsonl
wait_lines() { # wait_lines FILE N SECONDS
  for _ in $(seq $(($3 * 10))); do [[ -f $1 && $(wc -l <"$1") -ge $2 ]] && return 0; sleep 0.1; done
  return 1
}
py() { /usr/bin/python3 -c "$@"; }

start
if wait_lines "$out" 8 30; then ok demo_writes_file; else bad demo_writes_file "$(cat "$data/up.log")"; fi
py 'import json,sys
rows=[json.loads(l) for l in open(sys.argv[1])]
assert rows, "no rows"
for r in rows:
    assert set(r)=={"id","movie_id","cents","device","ts","title"}, r
    assert r["cents"]>0, r
    assert r["title"] is not None, r
ids=[r["id"] for r in rows]
assert len(ids)==len(set(ids)), "duplicate ids"' "$out" 2>"$data/err" && ok file_rows_filtered_projected_enriched || bad file_rows_filtered_projected_enriched "$(cat "$data/err")"

n=$("$bin" consume us-plays --from-beginning -n 5 | tee "$data/consumed" | wc -l)
[[ $n -eq 5 ]] && ok consume_n || bad consume_n "$n lines: $(cat "$data/consumed")"
grep -q '"title":' "$data/consumed" && ok consume_plain_json || bad consume_plain_json "$(cat "$data/consumed")"
"$bin" consume plays --from-beginning -n 3 --with-metadata >"$data/meta" 2>&1
grep -q '"partition":' "$data/meta" && grep -q '"key":{"id":' "$data/meta" && ok consume_metadata_and_key || bad consume_metadata_and_key "$(cat "$data/meta")"
st=$(curl -s "$DATAMESH_SERVER/api/v1/pipelines/us-plays/status")
[[ $st == *'"state":"running"'* && $st == *'us-plays/table/movies'* ]] && ok pipeline_status || bad pipeline_status "$st"
m=$(curl -s "$DATAMESH_SERVER/metrics")
[[ $m == *'datamesh_task_records_in_total{task="us-plays/task/0"}'* && $m == *'datamesh_processor_records_out_total'* ]] && ok processor_metrics || bad processor_metrics "$(grep datamesh_task <<<"$m" | head -5)"
sub=$(curl -s "$DATAMESH_SERVER/subjects")
[[ $sub == *'"us-plays-value"'* && $sub == *'"plays-key"'* ]] && ok schemas_registered || bad schemas_registered "$sub"

# Ingest: validated events, all or nothing.
cat >"$data/clicks.yaml" <<'YAML'
kind: Source
metadata: {name: clicks, owner: web}
spec:
  connector: ingest
  key: [user]
  schema: {type: record, name: Click, fields: [{name: user, type: string}, {name: page, type: string}, {name: ms, type: long}]}
YAML
"$bin" apply -f "$data/clicks.yaml" >/dev/null || bad apply_ingest "$("$bin" apply -f "$data/clicks.yaml" 2>&1)"
r=$(curl -s -X POST --data '[{"user":"a","page":"/","ms":1},{"user":"b","page":"/x","ms":2},{"user":"a","page":"/y","ms":3}]' "$DATAMESH_SERVER/api/v1/sources/clicks/events")
[[ $r == '{"accepted":3}' ]] && ok ingest_accepts || bad ingest_accepts "$r"
r=$(curl -s -w ' %{http_code}' -X POST --data '[{"user":"c","page":"/","ms":4},{"user":"d","ms":5}]' "$DATAMESH_SERVER/api/v1/sources/clicks/events")
[[ $r == *'record 1: '*'page'*' 400' ]] && ok ingest_names_record_and_field || bad ingest_names_record_and_field "$r"
r=$(curl -s -w ' %{http_code}' -X POST --data '{"user": 5}' "$DATAMESH_SERVER/api/v1/sources/clicks/events")
[[ $r == *'record 0: '*' 400' ]] && ok ingest_type_mismatch || bad ingest_type_mismatch "$r"
r=$(curl -s -w ' %{http_code}' -X POST --data '[{"user":' "$DATAMESH_SERVER/api/v1/sources/clicks/events")
[[ $r == *'not JSON'*' 400' ]] && ok ingest_bad_json || bad ingest_bad_json "$r"
r=$(curl -s -w ' %{http_code}' -X POST --data '[]' "$DATAMESH_SERVER/api/v1/sources/plays/events")
[[ $r == *'filled by its datagen connector'*' 409' ]] && ok ingest_refused_on_datagen || bad ingest_refused_on_datagen "$r"
n=$("$bin" consume clicks --from-beginning -n 100 | wc -l)
[[ $n -eq 3 ]] && ok ingest_nothing_partial || bad ingest_nothing_partial "$n records"
for i in $(seq 1 1200); do echo "{\"user\":\"u$i\",\"page\":\"/p\",\"ms\":$i}"; done >"$data/clicks.jsonl"
r=$("$bin" produce clicks <"$data/clicks.jsonl" 2>&1)
[[ $r == *'1200 record(s) written to clicks'* ]] && ok produce_cli || bad produce_cli "$r"
r=$(printf '{"user":"x","page":"/","ms":1}\n{"user":"y"}\n' | "$bin" produce clicks 2>&1)
[[ $r == *'lines 1-2: record 1: '* ]] && ok produce_cli_names_line || bad produce_cli_names_line "$r"
n=$("$bin" consume clicks --from-beginning -n 5000 | wc -l)
[[ $n -eq 1203 ]] && ok produce_all_or_nothing || bad produce_all_or_nothing "$n records"

# Restart: positions resume; the derived source has each play once.
stop
before=$(wc -l <"$out")
start
wait_lines "$out" $((before + 5)) 30 || bad resumes_after_restart "file stuck at $before lines"
"$bin" consume us-plays --from-beginning -n 10000 >"$data/all1"
py 'import json,sys
ids=[json.loads(l)["id"] for l in open(sys.argv[1])]
assert len(ids)==len(set(ids)), "duplicates: %d of %d" % (len(ids)-len(set(ids)), len(ids))
rows=[json.loads(l)["id"] for l in open(sys.argv[2])]
assert len(rows)==len(set(rows)), "file duplicates"' "$data/all1" "$out" 2>"$data/err" && ok exactly_once_across_restart || bad exactly_once_across_restart "$(cat "$data/err")"
"$bin" consume plays --from-beginning -n 100000 >"$data/plays"
py 'import json,sys
ids=sorted(json.loads(l)["id"] for l in open(sys.argv[1]))
assert ids==list(range(len(ids))), "datagen sequence has gaps or repeats"' "$data/plays" 2>"$data/err" && ok datagen_sequence_continues || bad datagen_sequence_continues "$(cat "$data/err")"

# Update: a new filter; the pipeline keeps its position (no reprocessing).
"$bin" get pipelines us-plays -o yaml | sed -n '/^kind/,$p' >/dev/null
cat >"$data/p2.yaml" <<YAML
kind: Pipeline
metadata: {name: us-plays, owner: growth, description: "paid plays from the US, with the movie title"}
spec:
  from: [plays]
  steps:
    - filter: "country = 'US' AND amount > 3"
    - project: [id, movie_id, "amount * 100 AS cents", device, ts]
    - enrich: {with: movies, on: movie_id, fields: [title]}
  to:
    - source: us-plays
    - sink: {type: file, path: "$data/out/us-plays.jsonl", format: jsonl}
YAML
"$bin" apply -f "$data/p2.yaml" | grep -Eq 'update +Pipeline us-plays' && ok pipeline_update || bad pipeline_update "$("$bin" apply -f "$data/p2.yaml" 2>&1)"
sleep 2
"$bin" consume us-plays --from-beginning -n 10000 >"$data/all2"
py 'import json,sys
ids=[json.loads(l)["id"] for l in open(sys.argv[1])]
assert len(ids)==len(set(ids)), "reprocessed after update"' "$data/all2" 2>"$data/err" && ok update_keeps_position || bad update_keeps_position "$(cat "$data/err")"
r=$("$bin" apply -f <(sed 's/amount > 3/amount >/' "$data/p2.yaml") 2>&1)
[[ $r == *'expression ends too early'* ]] && ok bad_expression_refused || bad bad_expression_refused "$r"
stop
echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
