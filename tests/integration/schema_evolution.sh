#!/usr/bin/env bash
# Schema evolution end to end against a real PostgreSQL (docs/schema-evolution.md):
# a postgres source over 2 partitions feeds pipelines under each spec.schema_change
# policy while ALTER TABLE ADD COLUMN, DROP COLUMN and a type widening happen
# mid-stream, with a SIGKILL of the controller right after the first change.
# Derived sources (exactly once) must hold every row exactly once, under the
# schema their policy says; the postgres sink's table must equal the source
# table (the new column filled from the change on); `fail` pauses at the first
# record of the new version; a filter naming a dropped column pauses an
# `evolve` pipeline naming the field and keeps a `lenient` one running; an
# incompatible change stops only the source with the registry's reason.
set -u
bin=${DM_BIN:?}
source "$(dirname "$0")/../harness/lib.sh"
dm_e2e_setup
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
psql() { "$pgbin/psql" -X -q -v ON_ERROR_STOP=1 "$DM_PG_DSN" "$@"; }

# ids SOURCE N: "COUNT DISTINCT" of the after.id values among the first N records
# (waits up to 150 s for them), one line.
ids() {
  for _ in $(seq 300); do # the derived source's topic may not exist yet
    "$bin" consume "$1" --from-beginning -n 1 >/dev/null 2>&1 && break
    sleep 0.2
  done
  for _ in $(seq 450); do # until N are there, or 90 s (ASan on a loaded machine)
    [[ $("$bin" consume "$1" --from-beginning -n "$2" 2>/dev/null | wc -l) -ge $2 ]] && break
    sleep 0.2
  done
  "$bin" consume "$1" --from-beginning -n "$2" 2>/dev/null | python3 -c '
import json, sys
ids = [json.loads(l)["after"]["id"] for l in sys.stdin if l.strip()]
print(len(ids), len(set(ids)))'
}
# records SOURCE N: the records themselves
records() { timeout 60 "$bin" consume "$1" --from-beginning -n "$2" 2>/dev/null; }
# count SOURCE N PYEXPR: how many of the first N records' "after" (a) make PYEXPR true
count() {
  records "$1" "$2" | python3 -c '
import json, sys
print(sum(1 for l in sys.stdin if l.strip() and (lambda a: '"$3"')(json.loads(l)["after"])))'
}
# wait_status PIPELINE TEXT: until its status contains TEXT (60 s)
wait_status() {
  for _ in $(seq 300); do
    st=$(curl -s "$DATAMESH_SERVER/api/v1/pipelines/$1/status")
    [[ $st == *"$2"* ]] && return 0
    sleep 0.2
  done
  return 1
}

psql -c "CREATE TABLE plays (id int PRIMARY KEY, country text, amount int, note text)" \
     -c "INSERT INTO plays SELECT g, 'US', g, 'n' || g FROM generate_series(1, 200) g" \
     -c "CREATE SCHEMA copies" || exit 1
start || exit 1

pipe() { # pipe NAME POLICY FILTER [more "to" entries]
  cat <<YAML
---
kind: Pipeline
metadata: {name: $1, owner: t}
spec:
  from: [plays]
  schema_change: $2
  steps: [{filter: "$3"}]
  to:
    - source: $1-out
$4
YAML
}
{
  cat <<YAML
kind: Source
metadata: {name: plays, owner: t}
spec:
  connector: postgres
  partitions: 2
  config: {dsn: "$DM_PG_DSN", tables: [public.plays], snapshot: initial, heartbeat: 200ms}
YAML
  pipe ev evolve "after.amount >= 0" "    - sink: {type: postgres, dsn: \"$DM_PG_DSN\", table: copies.ev, linger: 100ms}"
  pipe le lenient "after.amount >= 0" "    - sink: {type: file, path: \"$data/le.jsonl\", format: jsonl}
    - sink: {type: file, path: \"$data/le.avro\", format: avro}
    - sink: {type: iceberg, warehouse: \"$data/lake\", table: shop.plays, catalog: sqlite, commit_interval: 1s, primary_key: [id]}"
  pipe fr freeze "after.amount >= 0" ""
  pipe fa fail "after.amount >= 0" ""
  pipe nd evolve "after.note IS NULL OR after.note <> 'x'" ""
  pipe nl lenient "after.note IS NULL OR after.note <> 'x'" ""
} >"$data/specs.yaml"
pipe bad sometimes "after.amount >= 0" "" >"$data/bad.yaml"
out=$("$bin" apply -f "$data/bad.yaml" 2>&1)
[[ $? != 0 && $out == *"bad.yaml:6:"*"spec.schema_change: unknown policy 'sometimes'; one of: lenient, evolve, freeze, fail"* ]] \
  && ok unknown_policy_refused || bad unknown_policy_refused "$out"
out=$("$bin" apply -f "$data/specs.yaml" 2>&1) && ok apply || bad apply "$out"
bads=$fail
for p in ev le fr fa nd nl; do
  r=$(ids $p-out 200)
  [[ $r == "200 200" ]] || bad "snapshot_$p" "$r $(tail -5 "$data/up.log")"
done
[[ $fail == "$bads" ]] && ok snapshot_through_every_pipeline

# ADD COLUMN mid-stream: rows before it, the change, rows after it, then the
# controller is killed while the pipelines switch.
psql -c "INSERT INTO plays SELECT g, 'US', g, 'n' || g FROM generate_series(201, 300) g" \
     -c "ALTER TABLE plays ADD COLUMN tier text" \
     -c "INSERT INTO plays SELECT g, 'US', g, 'n' || g, 'gold' FROM generate_series(301, 400) g"
sleep 0.3
kill -9 "$pid"
wait "$pid" 2>/dev/null
start || exit 1

r=$(ids ev-out 400) && [[ $r == "400 400" ]] && ok evolve_add_column_exactly_once || bad evolve_add_column_exactly_once "$r"
n=$(records ev-out 400 | grep -c '"tier":"gold"')
[[ $n == 100 ]] && ok evolve_new_column_from_the_change_on || bad evolve_new_column_from_the_change_on "$n"
r=$(ids le-out 400) && [[ $r == "400 400" ]] && ok lenient_add_column_exactly_once || bad lenient_add_column_exactly_once "$r"
r=$(ids fr-out 400) && [[ $r == "400 400" ]] && ok freeze_exactly_once || bad freeze_exactly_once "$r"
n=$(records fr-out 400 | grep -c 'tier')
[[ $n == 0 ]] && ok freeze_keeps_its_schema || bad freeze_keeps_its_schema "$n records have tier"
wait_status fa 'paused (schema_change: fail)' && [[ $st == *"has schema id"* ]] \
  && ok fail_pauses_with_reason || bad fail_pauses_with_reason "$st"
r=$(timeout 5 "$bin" consume fa-out --from-beginning -n 400 2>/dev/null | wc -l)
[[ $r == 300 ]] && ok fail_stops_exactly_at_the_change || bad fail_stops_exactly_at_the_change "$r records"
sub=$(curl -s "$DATAMESH_SERVER/subjects/ev-out-value/versions")
[[ $sub == "[1,2]" ]] && ok derived_source_new_version || bad derived_source_new_version "$sub"

# The impact of dropping note, before it happens (schema plan asks the controller).
curl -s "$DATAMESH_SERVER/subjects/plays-value/versions/latest/schema" | python3 -c '
import json, sys
s = json.load(sys.stdin)
for f in s["fields"]:
    if f["name"] in ("before", "after"):
        for b in f["type"]:
            if isinstance(b, dict):
                b["fields"] = [x for x in b["fields"] if x["name"] != sys.argv[1]]
                if sys.argv[2]:
                    for x in b["fields"]:
                        if x["name"] == "country": x["type"] = ["null", "int"]
json.dump(s, open(sys.argv[3], "w"))' note "" "$data/drop.avsc"
out=$("$bin" schema plan plays "$data/drop.avsc" 2>&1)
[[ $out == *"dropped  after.note"* && $out == *"pipeline nd (schema_change: evolve): restarts on the new version, then pauses"* \
   && $out == *"pauses: steps[0] (filter) reads after.note, which the new version drops"* \
   && $out == *"steps[0] (filter) reads after.note as null from the change on"* \
   && $out == *"pipeline ev (schema_change: evolve): restarts on the new version at its first record"* \
   && $out == *"sink ev/sink/0 (postgres)"* && $out == *"pipeline fa (schema_change: fail): pauses"* ]] \
  && ok schema_plan_impact || bad schema_plan_impact "$out $("$bin" schema plan plays "$data/drop.avsc" -o json 2>&1 | tr -d ' \n')"
curl -s "$DATAMESH_SERVER/subjects/plays-value/versions/latest/schema" | python3 -c '
import json, sys
s = json.load(sys.stdin)
for f in s["fields"]:
    if f["name"] in ("before", "after"):
        for b in f["type"]:
            if isinstance(b, dict):
                for x in b["fields"]:
                    if x["name"] == "country": x["type"] = ["null", "int"]
json.dump(s, open(sys.argv[1], "w"))' "$data/bad.avsc"
out=$("$bin" schema plan plays "$data/bad.avsc" 2>&1); rc=$?
[[ $rc != 0 && $out == *"REFUSED by the registry"* && $out == *"after.country"* ]] \
  && ok schema_plan_refused || bad schema_plan_refused "rc $rc: $out"

# DROP COLUMN and a type widening.
psql -c "ALTER TABLE plays DROP COLUMN note" \
     -c "INSERT INTO plays SELECT g, 'US', g, 'gold' FROM generate_series(401, 500) g" \
     -c "ALTER TABLE plays ALTER COLUMN amount TYPE bigint" \
     -c "INSERT INTO plays SELECT g, 'US', 5000000000 + g, 'gold' FROM generate_series(501, 600) g"
r=$(ids ev-out 600) && [[ $r == "600 600" ]] && ok evolve_drop_and_widen_exactly_once || bad evolve_drop_and_widen_exactly_once "$r"
n=$(count ev-out 600 'a["id"] > 500 and a["amount"] == 5000000000 + a["id"]')
[[ $n == 100 ]] && ok widened_values || bad widened_values "$n"
r=$(ids le-out 600) && [[ $r == "600 600" ]] && ok lenient_drop_exactly_once || bad lenient_drop_exactly_once "$r"
n=$(count le-out 600 'a["id"] > 400 and "note" in a and a["note"] is None')
[[ $n == 200 ]] && ok lenient_keeps_dropped_as_null || bad lenient_keeps_dropped_as_null "$n"
# freeze reads the version without note as its old reader (note: null), but
# no int reader reads a long: it pauses at the widening, naming the field
r=$(ids fr-out 500) && [[ $r == "500 500" ]] && ok freeze_reads_later_versions || bad freeze_reads_later_versions "$r"
wait_status fr 'paused (schema_change: freeze)' && [[ $st == *amount* ]] \
  && ok freeze_pauses_where_resolution_cannot_read || bad freeze_pauses_where_resolution_cannot_read "$st"
r=$(ids nl-out 600) && [[ $r == "600 600" ]] && ok lenient_filter_on_dropped_field || bad lenient_filter_on_dropped_field "$r"
wait_status nd '"state":"failed"' && [[ $st == *note* ]] \
  && ok evolve_filter_on_dropped_field_pauses || bad evolve_filter_on_dropped_field_pauses "$st"
r=$(timeout 5 "$bin" consume nd-out --from-beginning -n 600 2>/dev/null | wc -l)
[[ $r == 400 ]] && ok dropped_field_pause_is_exact || bad dropped_field_pause_is_exact "$r records"

# The postgres sink's table equals the source table.
for _ in $(seq 450); do
  [[ $(psql -tA -c "SELECT count(*) FROM copies.ev" 2>/dev/null) == 600 ]] && break
  sleep 0.2
done
d=$(psql -tA -c "SELECT count(*) FROM (SELECT id, country, amount::bigint, tier FROM plays
                 EXCEPT SELECT id, country, amount::bigint, tier FROM copies.ev) x" 2>&1)
c=$(psql -tA -c "SELECT count(*), count(tier) FROM copies.ev" 2>&1)
[[ $d == 0 && $c == "600|300" ]] && ok postgres_sink_equals_source || bad postgres_sink_equals_source "diff $d, $c"

# The file sink wrote every record (a new schema id is no retry loop).
n=$(python3 -c '
import json, sys
print(len({json.loads(l)["after"]["id"] for l in open(sys.argv[1]) if l.strip()}))' "$data/le.jsonl" 2>&1)
st=$(curl -s "$DATAMESH_SERVER/api/v1/pipelines/le/status")
[[ $n == 600 && $st != *retrying* && $st != *failed* ]] && ok file_sink_follows_versions || bad file_sink_follows_versions "$n: $st"

# Avro container files: one per schema version, every record in one of them.
n=0
for f in "$data"/le.avro*; do n=$((n + $("$bin" avro cat "$f" 2>/dev/null | wc -l))); done
[[ $n -ge 600 && $(ls "$data"/le.avro* | wc -l) -ge 3 ]] && ok avro_file_sink_rolls_per_version || bad avro_file_sink_rolls_per_version "$n records in $(ls "$data"/le.avro*)"

# The Iceberg table evolved: new column ids for tier, note kept (lenient), every row.
ice() {
  python3 - "$data/lake" <<'PY'
import json, sqlite3, sys, os
db = os.path.join(sys.argv[1], "catalog.db")
loc = sqlite3.connect(db).execute("select metadata_location from iceberg_tables where table_name='plays'").fetchone()
m = json.load(open(loc[0].replace("file://", "")))
cur = [s for s in m["schemas"] if s["schema-id"] == m["current-schema-id"]][0]
names = []
def walk(fields, prefix):
    for f in fields:
        names.append(prefix + f["name"])
        t = f["type"]
        if isinstance(t, dict) and t.get("type") == "struct": walk(t["fields"], prefix + f["name"] + ".")
walk(cur["fields"], "")
rows = sum(int(s["summary"].get("added-records", 0)) for s in m.get("snapshots", []))
print(len(m["schemas"]), rows, " ".join(n for n in names if n.endswith(("tier", "note", "amount"))))
PY
}
for _ in $(seq 450); do [[ $(ice 2>/dev/null | cut -d' ' -f2) -ge 600 ]] && break; sleep 0.2; done
r=$(ice 2>&1)
[[ $r == [2-9]" 600 "* && $r == *tier* && $r == *note* ]] && ok iceberg_table_evolves || bad iceberg_table_evolves "$r; $(curl -s "$DATAMESH_SERVER/api/v1/pipelines/le/status"; curl -s "$DATAMESH_SERVER/api/v1/pipelines/le/deadletters?limit=3" | head -c 1500; grep -i iceberg "$data/up.log" | tail -n 5)"

h=$(curl -s "$DATAMESH_SERVER/api/v1/schema-changes")
[[ $h == *'"pipeline":"ev"'*'"action":"restart"'* && $h == *'"pipeline":"fa"'* ]] \
  && ok schema_change_history || bad schema_change_history "$h"
m=$(curl -s "$DATAMESH_SERVER/metrics" | grep datamesh_pipeline_schema_changes_total)
[[ $m == *'{pipeline="fa",policy="fail",action="pause"}'* && $m == *'{pipeline="ev",policy="evolve",action="restart"}'* ]] \
  && ok schema_change_metrics || bad schema_change_metrics "$m"

# A re-applied Source spec: the dry run says what each pipeline will do; a
# lenient pipeline whose filter names the dropped field keeps running (NULL).
src() {
  cat <<YAML
kind: Source
metadata: {name: clicks, owner: t}
spec:
  connector: ingest
  schema: {type: record, name: Click, fields: [{name: user, type: string}$1]}
YAML
}
src ', {name: note, type: ["null", string], default: null}' >"$data/clicks1.yaml"
src ', {name: page, type: ["null", string], default: null}' >"$data/clicks2.yaml"
cat >"$data/cl.yaml" <<YAML
kind: Pipeline
metadata: {name: cl, owner: t}
spec:
  from: [clicks]
  steps: [{filter: "note IS NULL OR note <> 'x'"}]
  to: [{source: cl-out}]
---
kind: Pipeline
metadata: {name: pj, owner: t}
spec:
  from: [clicks]
  schema_change: evolve
  steps: [{project: ["*"]}]
  to: [{source: pj-out}]
YAML
"$bin" apply -f "$data/clicks1.yaml" >/dev/null && "$bin" apply -f "$data/cl.yaml" >/dev/null
curl -s -X POST --data '[{"user":"a","note":"n"},{"user":"b","note":null}]' "$DATAMESH_SERVER/api/v1/sources/clicks/events" >/dev/null
out=$("$bin" apply -f "$data/clicks2.yaml" --dry-run 2>&1)
[[ $out == *"impact    Pipeline cl — schema_change: lenient: restarts on the new version"* && $out == *"reads note as null"* ]] \
  && ok dry_run_prints_impact || bad dry_run_prints_impact "$out"
"$bin" apply -f "$data/clicks2.yaml" >/dev/null
sleep 1
curl -s -X POST --data '[{"user":"c","page":"p1"},{"user":"d","page":"p2"}]' "$DATAMESH_SERVER/api/v1/sources/clicks/events" >/dev/null
for _ in $(seq 300); do
  n=$(timeout 5 "$bin" consume cl-out --from-beginning -n 4 2>/dev/null | wc -l)
  [[ $n -ge 4 ]] && break
  sleep 0.2
done
got=$(timeout 5 "$bin" consume cl-out --from-beginning -n 4 2>/dev/null | tr -d '\n')
st=$(curl -s "$DATAMESH_SERVER/api/v1/pipelines/cl/status")
[[ $got == *'"user":"d","page":"p2","note":null'* && $st == *'"state":"running"'* ]] \
  && ok reapplied_source_lenient_keeps_dropped || bad reapplied_source_lenient_keeps_dropped "$got $st"
for _ in $(seq 300); do
  [[ $(timeout 5 "$bin" consume pj-out --from-beginning -n 4 2>/dev/null | wc -l) -ge 4 ]] && break
  sleep 0.2
done
got=$(timeout 5 "$bin" consume pj-out --from-beginning -n 4 2>/dev/null | tr -d '\n')
[[ $got == *'"user":"a","note":"n"'* && $got == *'"user":"d","page":"p2"}'* ]] \
  && ok project_star_picks_up_added_fields || bad project_star_picks_up_added_fields "$got $(curl -s "$DATAMESH_SERVER/api/v1/pipelines/pj/status")"

# A rename is seen as a drop and an add.
psql -c "ALTER TABLE plays RENAME COLUMN country TO region" \
     -c "INSERT INTO plays SELECT g, 'EU', g, 'gold' FROM generate_series(601, 650) g"
r=$(ids ev-out 650) && [[ $r == "650 650" ]] && ok rename_exactly_once || bad rename_exactly_once "$r"
n=$(count ev-out 650 'a["id"] > 600 and a.get("region") == "EU" and "country" not in a')
[[ $n == 50 ]] && ok evolve_rename_is_drop_and_add || bad evolve_rename_is_drop_and_add "$n"
n=$(count le-out 650 'a["id"] > 600 and a.get("region") == "EU" and a["country"] is None')
[[ $n == 50 ]] && ok lenient_rename_keeps_old_name_as_null || bad lenient_rename_keeps_old_name_as_null "$n"
for _ in $(seq 150); do
  [[ $(psql -tA -c "SELECT count(*) FROM copies.ev" 2>/dev/null) == 650 ]] && break
  sleep 0.2
done
c=$(psql -tA -c "SELECT count(*), count(region), count(country) FROM copies.ev" 2>&1)
[[ $c == "650|50|600" ]] && ok postgres_sink_rename_adds_column || bad postgres_sink_rename_adds_column "$c"

# An incompatible change stops only the source, with the registry's reason.
psql -c "ALTER TABLE plays ALTER COLUMN region TYPE int USING 1" \
     -c "INSERT INTO plays VALUES (651, 1, 1, 'gold')"
for _ in $(seq 150); do
  st=$(curl -s "$DATAMESH_SERVER/api/v1/sources/plays/status")
  [[ $st == *incompatible* ]] && break
  sleep 0.2
done
[[ $st == *incompatible* && $st == *"ALTER COLUMN region TYPE integer (was text)"* ]] && ok incompatible_change_stops_source || bad incompatible_change_stops_source "$st"
st=$(curl -s "$DATAMESH_SERVER/api/v1/pipelines/ev/status")
[[ $st != *failed* ]] && ok pipelines_unaffected || bad pipelines_unaffected "$st"
# No pipeline dead-lettered a record on any of these changes: a switch loses nothing (a
# lookup failing while the pipeline was stopped for a restart once did, under ASan's timing).
dl=
for p in ev le fr fa nd nl cl pj; do
  t=$(curl -s "$DATAMESH_SERVER/api/v1/pipelines/$p/deadletters?limit=3" | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(d.get("total"), json.dumps([x.get("reason") for x in d.get("items", [])]) if d.get("total") else "")')
  [[ $t == "0 " ]] || dl+="$p: $t; "
done
[[ -z $dl ]] && ok no_dead_letters_on_schema_changes || bad no_dead_letters_on_schema_changes "$dl"
stop
# what a switch cost (docs/schema-evolution.md, "Cost of the switch")
grep -o "Pipeline/[a-z]*: restarted on the new schema version in .*" "$data/up.log" | sed 's/^/info: /'
[[ $fail == 0 ]] || grep -E "WARN|ERROR" "$data/up.log" | tail -30
dm_e2e_summary
