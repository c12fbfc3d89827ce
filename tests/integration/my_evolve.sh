#!/usr/bin/env bash
# needs:mariadb — schema evolution from MySQL DDL: a mysql source over 2
# partitions; ALTER TABLE ADD COLUMN and DROP COLUMN mid-stream while rows are
# written; a lenient pipeline (`*`) into a derived source and a file sink picks
# the new column up from the change on and keeps the dropped one as null, an
# evolve pipeline too, a fail pipeline pauses exactly at the first row of the
# new version with the reason; no record is dead-lettered or lost.
set -u
bin=${DM_BIN:?}
source "$(dirname "$0")/../harness/lib.sh"
pass=0 fail=0
ok() { echo "ok   $1"; pass=$((pass+1)); }
bad() { echo "FAIL $1: ${2:0:1200}"; fail=$((fail+1)); }
my() { mariadb --no-defaults -h "$DM_MARIADB_HOST" -P "$DM_MARIADB_PORT" -u "$DM_MARIADB_USER" -p"$DM_MARIADB_PASSWORD" -N -B "$@"; }
data=$(mktemp -d)
port=$(dm_free_port)
export DATAMESH_SERVER=http://127.0.0.1:$port
export DM_EV_MY_PASSWORD=not-a-real-secret-4e1a
pid=
trap 'kill -9 $pid 2>/dev/null; rm -rf "$data"' EXIT
count() { timeout 20 "$bin" consume "$1" --from-beginning -n "$2" 2>/dev/null | wc -l; }
wait_count() { # wait_count SOURCE N SECONDS
  for _ in $(seq $(($3 * 5))); do
    [[ $(count "$1" "$2") -ge $2 ]] && return 0
    sleep 0.2
  done
  return 1
}

my -e "SET GLOBAL binlog_row_metadata = 'FULL'; CREATE USER 'evo'@'%' IDENTIFIED BY '$DM_EV_MY_PASSWORD';
       GRANT ALL ON *.* TO 'evo'@'%'; CREATE DATABASE evo;
       CREATE TABLE evo.plays (id INT PRIMARY KEY, country VARCHAR(8), amount INT, extra VARCHAR(20));
       INSERT INTO evo.plays SELECT seq, 'US', seq, 'x' FROM evo.seq_1_to_100" || exit 1
dm_controller_start "$data" "$port" "$data/up.log" || exit 1
pid=$dm_pid
cat >"$data/specs.yaml" <<YAML
kind: Source
metadata: {name: plays, owner: test}
spec:
  connector: mysql
  partitions: 2
  config: {host: 127.0.0.1, port: $DM_MARIADB_PORT, user: evo, password_env: DM_EV_MY_PASSWORD,
           tables: [evo.plays], snapshot: initial, server_id: 5471}
---
kind: Pipeline
metadata: {name: le, owner: test}
spec:
  from: [plays]
  schema_change: lenient
  steps: [{project: ["*"]}]
  to:
    - source: le-out
    - sink: {type: file, path: $data/le.jsonl, format: jsonl}
---
kind: Pipeline
metadata: {name: ev, owner: test}
spec:
  from: [plays]
  schema_change: evolve
  to: [{source: ev-out}]
---
kind: Pipeline
metadata: {name: fa, owner: test}
spec:
  from: [plays]
  schema_change: fail
  to: [{source: fa-out}]
YAML
out=$("$bin" apply -f "$data/specs.yaml" 2>&1) || bad apply "$out"
wait_count le-out 100 60 && ok snapshot_through_pipelines || bad snapshot_through_pipelines "$(tail -20 "$data/up.log")"
# ADD COLUMN between two batches of rows, then DROP COLUMN
my -e "INSERT INTO evo.plays SELECT seq, 'FR', seq, 'y' FROM evo.seq_101_to_150;
       ALTER TABLE evo.plays ADD COLUMN note VARCHAR(20);
       INSERT INTO evo.plays SELECT seq, 'DE', seq, 'z', CONCAT('n', seq) FROM evo.seq_151_to_200;
       ALTER TABLE evo.plays DROP COLUMN extra;
       INSERT INTO evo.plays SELECT seq, 'IT', seq, CONCAT('m', seq) FROM evo.seq_201_to_250" || bad ddl "mariadb refused"
wait_count le-out 250 90 && ok lenient_gets_every_row || bad lenient_gets_every_row "$(count le-out 300) rows; $(curl -s "$DATAMESH_SERVER/api/v1/pipelines/le/status")"
wait_count ev-out 250 90 && ok evolve_gets_every_row || bad evolve_gets_every_row "$(count ev-out 300) rows; $(curl -s "$DATAMESH_SERVER/api/v1/pipelines/ev/status")"
rows=$(timeout 20 "$bin" consume le-out --from-beginning -n 250 2>/dev/null)
py=$(python3 -c '
import json, sys
ids, notes, extra_after_drop, dup = set(), 0, 0, 0
for l in sys.stdin:
    r = json.loads(l); a = r.get("after") or {}
    if a.get("id") in ids: dup += 1
    ids.add(a.get("id"))
    if a.get("note"): notes += 1
    if a.get("id", 0) > 200 and a.get("extra") is not None: extra_after_drop += 1
print(len(ids), notes, extra_after_drop, dup)' <<<"$rows")
[[ $py == "250 100 0 0" ]] && ok lenient_new_column_and_dropped_null || bad lenient_new_column_and_dropped_null "ids/notes/extra-after-drop/dups: $py; $(tail -2 <<<"$rows")"
n=
for _ in $(seq 300); do
  n=$(wc -l <"$data/le.jsonl" 2>/dev/null)
  [[ ${n:-0} -ge 250 ]] && break
  sleep 0.2
done
[[ ${n:-0} -ge 250 ]] && grep -q '"note":"m250"' "$data/le.jsonl" && ok file_sink_across_versions \
  || bad file_sink_across_versions "lines ${n:-0}; $(curl -s "$DATAMESH_SERVER/api/v1/pipelines/le/status"); $(grep -i "le/\|sink" "$data/up.log" | tail -8)"
st=$(curl -s "$DATAMESH_SERVER/api/v1/pipelines/fa/status")
r=$(count fa-out 400)
[[ $st == *"paused"* && $st == *"schema"* && $r == 150 ]] && ok fail_pauses_at_the_change || bad fail_pauses_at_the_change "$r rows; $st"
dl=0
for p in le ev; do
  d=$(curl -s "$DATAMESH_SERVER/api/v1/pipelines/$p/deadletters" | python3 -c 'import json,sys; print(len(json.load(sys.stdin).get("items", [])))' 2>/dev/null)
  dl=$((dl + ${d:-99}))
done
[[ $dl == 0 ]] && ok no_dead_letters || bad no_dead_letters "$dl"
v=$(curl -s "$DATAMESH_SERVER/subjects/plays-value/versions")
[[ $v == "[1,2,3]" ]] && ok source_versions || bad source_versions "$v"
kill -TERM "$pid"; wait "$pid"; rc=$?; pid=
[[ $rc -eq 0 ]] && ! grep -q Sanitizer "$data/up.log" && ok clean_stop || bad clean_stop "exit $rc $(grep -A5 Sanitizer "$data/up.log" | head)"
grep -q "$DM_EV_MY_PASSWORD" "$data/up.log" && bad password_in_log "$(grep -c "$DM_EV_MY_PASSWORD" "$data/up.log")"
echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
