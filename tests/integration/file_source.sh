#!/usr/bin/env bash
# The file connector end to end: JSON lines read once (a bad line goes to the
# source's dead-letter topic with file:line, a last line without a newline is
# read), a followed file picks up appended lines, a restart repeats nothing,
# and an Avro container file is read and resolved to the source's schema; a
# truncated Avro file keeps the records before the cut and says where it broke.
set -u
bin=${DM_BIN:?}
source "$(dirname "$0")/../harness/lib.sh"
dm_e2e_setup
state_of() { curl -s "$DATAMESH_SERVER/api/v1/sources/$1/status"; }
wait_state() { # wait_state SOURCE STATE SECONDS
  for _ in $(seq $(($3 * 10))); do [[ $(state_of "$1") == *"\"state\":\"$2\""* ]] && return 0; sleep 0.1; done
  return 1
}
count() { "$bin" consume "$1" --from-beginning -n 100000 2>/dev/null | grep -c . ; }
wait_count() { # wait_count SOURCE N SECONDS
  for _ in $(seq $(($3 * 5))); do [[ $(count "$1") -ge $2 ]] && return 0; sleep 0.2; done
  return 1
}

schema='{type: record, name: Reading, fields: [{name: id, type: long}, {name: sensor, type: string}, {name: value, type: double}]}'
printf '{"id":1,"sensor":"a","value":1.5}\n{"id":2,"sensor":"b","value":2.5}\n\n{"id":3,"sensor":"c"}\nnot json at all\n{"id":4,"sensor":"d","value":4.5}' >"$data/once.jsonl"
: >"$data/tail.jsonl"
cat >"$data/specs.yaml" <<YAML
kind: Source
metadata: {name: once, owner: iot}
spec:
  connector: file
  key: [id]
  partitions: 2
  schema: $schema
  config: {path: "$data/once.jsonl", format: jsonl}
---
kind: Source
metadata: {name: tail, owner: iot}
spec:
  connector: file
  schema: $schema
  config: {path: "$data/tail.jsonl", follow: true}
YAML
start
out=$("$bin" apply -f "$data/specs.yaml" 2>&1) && ok apply || bad apply "$out"
wait_state once done 20 && ok once_done || bad once_done "$(state_of once)"
c=$(count once)
[[ $c -eq 3 ]] && ok once_good_lines_in || bad once_good_lines_in "$c records: $("$bin" consume once --from-beginning -n 10)"
"$bin" consume once --from-beginning -n 10 | grep -q '"id":4,' && ok last_line_without_newline || bad last_line_without_newline "$("$bin" consume once --from-beginning -n 10)"
st=$(state_of once)
[[ $st == *once.jsonl:5* ]] && ok status_names_rejected_line || bad status_names_rejected_line "$st"

for i in $(seq 1 50); do echo "{\"id\":$i,\"sensor\":\"t\",\"value\":$i.0}"; done >>"$data/tail.jsonl"
wait_count tail 50 20 && ok follow_reads_appended || bad follow_reads_appended "$(count tail)"
printf '{"id":51,"sensor":"t",' >>"$data/tail.jsonl"
sleep 0.5
c=$(count tail)
[[ $c -eq 50 ]] && ok partial_line_waits || bad partial_line_waits "$c"
printf '"value":51.0}\n' >>"$data/tail.jsonl"
wait_count tail 51 20 && ok partial_line_completed || bad partial_line_completed "$(count tail)"
stop

# Restart: nothing read twice; lines appended while down are read.
for i in $(seq 52 60); do echo "{\"id\":$i,\"sensor\":\"t\",\"value\":$i.0}"; done >>"$data/tail.jsonl"
start
wait_count tail 60 20 && sleep 1
ids=$("$bin" consume tail --from-beginning -n 1000 | python3 -c 'import json,sys; ids=[json.loads(l)["id"] for l in sys.stdin]; print(len(ids), len(set(ids)), min(ids), max(ids))')
[[ $ids == "60 60 1 60" ]] && ok restart_no_loss_no_duplicate || bad restart_no_loss_no_duplicate "$ids"
c=$(count once)
[[ $c -eq 3 ]] && ok once_not_read_again || bad once_not_read_again "$c"

# Avro container file, written with an older schema (no 'value' field): the
# reader's default fills it.
cat >"$data/old.avsc" <<'JSON'
{"type":"record","name":"Reading","fields":[{"name":"id","type":"long"},{"name":"sensor","type":"string"}]}
JSON
for i in $(seq 1 20000); do echo "{\"id\":$i,\"sensor\":\"s$i\"}"; done | "$bin" avro write --schema "$data/old.avsc" --codec deflate >"$data/in.avro"
head -c $(( $(stat -c %s "$data/in.avro") - 100 )) "$data/in.avro" >"$data/cut.avro"
cat >"$data/avro.yaml" <<YAML
kind: Source
metadata: {name: fromavro, owner: iot}
spec:
  connector: file
  schema: {type: record, name: Reading, fields: [{name: id, type: long}, {name: sensor, type: string}, {name: value, type: double, default: -1}]}
  config: {path: "$data/in.avro", format: avro}
---
kind: Source
metadata: {name: cut, owner: iot}
spec:
  connector: file
  schema: {type: record, name: Reading, fields: [{name: id, type: long}, {name: sensor, type: string}]}
  config: {path: "$data/cut.avro", format: avro}
YAML
out=$("$bin" apply -f "$data/avro.yaml" 2>&1) && ok apply_avro || bad apply_avro "$out"
wait_state fromavro done 20 && ok avro_done || bad avro_done "$(state_of fromavro)"
c=$(count fromavro)
[[ $c -eq 20000 ]] && ok avro_all_records || bad avro_all_records "$c"
"$bin" consume fromavro --from-beginning -n 1 | grep -q '"value":-1' && ok avro_resolved_default || bad avro_resolved_default "$("$bin" consume fromavro --from-beginning -n 1)"
wait_state cut failed 20
st=$(state_of cut)
[[ $st == *"cut short"* ]] && ok truncated_avro_named || bad truncated_avro_named "$st"
c=$(count cut)
[[ $c -gt 0 && $c -lt 20000 ]] && ok truncated_avro_keeps_blocks_before || bad truncated_avro_keeps_blocks_before "$c"
# The catalog keeps every schema version of a source.
sed 's/{name: value, type: double}]}/{name: value, type: double}, {name: unit, type: string, default: "C"}]}/' "$data/specs.yaml" >"$data/specs2.yaml"
out=$("$bin" apply -f "$data/specs2.yaml" 2>&1) && ok apply_new_schema || bad apply_new_schema "$out"
got=$(curl -s "$DATAMESH_SERVER/api/v1/sources/once" | python3 -c 'import json,sys; d=json.load(sys.stdin); print([v["version"] for v in d["schemas"]], [f["name"] for f in d["schemas"][-1]["schema"]["fields"]][-1])')
[[ $got == "[1, 2] unit" ]] && ok catalog_schema_versions || bad catalog_schema_versions "$got"
# consume streams the controller's lines (format=values / jsonl) unparsed: the
# same values as the JSON answer, the positions line last, -n exact.
api="$DATAMESH_SERVER/api/v1/sources/once/records?from=earliest&limit=100"
got=$(python3 - "$api" <<'PY'
import json, sys, urllib.request
get = lambda q: urllib.request.urlopen(sys.argv[1] + q).read().decode()
whole = json.loads(get(""))
vals, recs = get("&format=values").split("\n"), get("&format=jsonl").split("\n")
assert vals[-1] == "" and recs[-1] == "", "answers end with a newline"
vals, recs = vals[:-1], recs[:-1]
assert json.loads(vals[-1]) == {"positions": whole["positions"]}, vals[-1]
assert json.loads(recs[-1]) == {"positions": whole["positions"]}, recs[-1]
assert [json.loads(l) for l in vals[:-1]] == [r["value"] for r in whole["records"]], vals
assert [json.loads(l) for l in recs[:-1]] == whole["records"], recs
print("same", len(vals) - 1)
PY
)
[[ $got == "same 3" ]] && ok records_api_lines_match_json || bad records_api_lines_match_json "$got"
st=$(curl -s -o "$data/bad_format" -w '%{http_code}' "$api&format=xml")
[[ $st == 400 ]] && grep -q 'format=xml' "$data/bad_format" && ok records_api_bad_format || bad records_api_bad_format "$st $(cat "$data/bad_format")"
got=$("$bin" consume once --from-beginning -n 10 --with-metadata | python3 -c 'import json,sys; r=[json.loads(l) for l in sys.stdin]; print(len(r), all({"partition", "offset", "timestamp", "key"} <= x.keys() for x in r), sorted(x["value"]["id"] for x in r))')
[[ $got == "3 True [1, 2, 4]" ]] && ok consume_with_metadata || bad consume_with_metadata "$got"
c=$("$bin" consume fromavro --from-beginning -n 1500 | grep -c .)
[[ $c -eq 1500 ]] && ok consume_n_across_answers || bad consume_n_across_answers "$c"
stop

# The dead-letter topic holds the two bad lines with their reason and place.
dump=$("$bin" log dump --data "$data/dm/log" source.once.dlq 2>&1)
[[ $dump == *"once.jsonl:4"* && $dump == *"once.jsonl:5"* && $dump == *"dm.error.reason"* ]] && ok dead_letters_with_place || bad dead_letters_with_place "$dump"
dm_e2e_summary
