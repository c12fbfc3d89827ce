#!/usr/bin/env bash
# Postgres arrays into Iceberg lists, end to end through the datamesh binary:
# a real PostgreSQL table with int[] and text[] columns (NULL arrays, empty
# arrays, NULL elements) is captured by a postgres source (snapshot, then
# inserts, updates and deletes) and landed by an iceberg pipeline in upsert
# mode; icebird and DuckDB read the table, which must equal the final table
# as Postgres itself prints it (row_to_json).
set -u
bin=${DM_BIN:?}
source "$(dirname "$0")/../harness/lib.sh"
dm_e2e_setup
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
psql() { "$pgbin/psql" -X -q -v ON_ERROR_STOP=1 "$DM_PG_DSN" "$@"; }
readers=$(bash "$(dirname "$0")/iceberg/readers.sh") || { echo "FAIL npm readers"; exit 1; }
export DM_E2E_PG_PASSWORD=unused

psql -c "CREATE TABLE arr (id int PRIMARY KEY, nums int[], tags text[])" \
     -c "INSERT INTO arr VALUES (1, '{1,2,3}', '{a,b}'), (2, NULL, '{}'), (3, '{}', '{x,NULL}'), (4, '{NULL,5}', NULL)" || exit 1
start || exit 1
cat >"$data/specs.yaml" <<YAML
kind: Source
metadata: {name: arr, owner: lake}
spec:
  connector: postgres
  config: {dsn: "$DM_PG_DSN", password_env: DM_E2E_PG_PASSWORD, tables: [public.arr],
           snapshot: initial, heartbeat: 500ms}
YAML
out=$("$bin" apply -f "$data/specs.yaml" 2>&1) && ok apply_source || bad apply_source "$out"
# A pipeline starts once its source has registered its schema.
for _ in $(seq 100); do
  [[ $(curl -s "$DATAMESH_SERVER/subjects") == *'"arr-value"'* ]] && break
  sleep 0.2
done
cat >"$data/pipeline.yaml" <<YAML
kind: Pipeline
metadata: {name: arr-lake, owner: lake}
spec:
  from: [arr]
  to:
    - sink: {type: iceberg, warehouse: "$data/lake", table: pg.arr, catalog: sqlite, commit_interval: 500ms, primary_key: [id]}
YAML
out=$("$bin" apply -f "$data/pipeline.yaml" 2>&1) && ok apply_pipeline || bad apply_pipeline "$out"
sleep 1
psql -c "INSERT INTO arr VALUES (5, '{7}', '{q}')" -c "UPDATE arr SET nums = '{9,NULL}' WHERE id = 1" \
     -c "UPDATE arr SET tags = NULL WHERE id = 3" -c "DELETE FROM arr WHERE id = 2" || exit 1
psql -At -c "SELECT row_to_json(t) FROM arr t ORDER BY id" >"$data/expected.jsonl"
metadata() {
  python3 - "$data/lake/catalog.db" <<'PY'
import sqlite3, sys, os
if not os.path.exists(sys.argv[1]): sys.exit()
row = sqlite3.connect(sys.argv[1]).execute("select metadata_location from iceberg_tables where table_name='arr'").fetchone()
print(os.path.basename(row[0]) if row else "")
PY
}
# The table catches up within seconds: read it until it matches (or give up).
got=
for _ in $(seq 60); do
  m=$(metadata)
  if [[ -n $m ]] && got=$(cd "$readers" && node read_table.mjs "file://$data/lake/pg/arr" "$data/expected.jsonl" id "$m" 2>&1); then
    break
  fi
  sleep 0.5
done
[[ $got == ok* ]] && ok icebird_reads_arrays || bad icebird_reads_arrays "$got $(curl -s "$DATAMESH_SERVER/api/v1/pipelines/arr-lake/status") $(curl -s "$DATAMESH_SERVER/api/v1/sources/arr/status")"
out=$(cd "$readers" && node read_duckdb.mjs "file://$data/lake/pg/arr" "$data/expected.jsonl" id "$(metadata)" 2>&1) \
  && ok duckdb_reads_arrays || bad duckdb_reads_arrays "$out"
meta=$(python3 -c "
import json, sys
m = json.load(open(sys.argv[1]))
f = {x['name']: x['type'] for x in m['schemas'][-1]['fields']}
print(f['nums']['type'], f['nums']['element'], f['nums']['element-required'], f['tags']['element'])" \
  "$data/lake/pg/arr/metadata/$(metadata)" 2>&1)
[[ $meta == 'list int False string' ]] && ok list_schema || bad list_schema "$meta"
stop
dm_e2e_summary
