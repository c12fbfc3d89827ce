#!/usr/bin/env bash
# The iceberg sink wired into a running controller: an ingest source, a
# pipeline writing an Iceberg table through the SQLite catalog, rows counted
# from the snapshot summaries, and a restart that commits nothing twice.
set -u
bin=${DM_BIN:?}
source "$(dirname "$0")/../harness/lib.sh"
dm_e2e_setup
# Rows the table holds, from its snapshots' summaries.
rows() {
  python3 - "$data/lake" <<'PY'
import json, sqlite3, sys, os
db = os.path.join(sys.argv[1], "catalog.db")
if not os.path.exists(db): print(0); sys.exit()
loc = sqlite3.connect(db).execute("select metadata_location from iceberg_tables where table_name='orders'").fetchone()
if not loc: print(0); sys.exit()
m = json.load(open(loc[0].replace("file://", "")))
# append-only table: the rows are the records every snapshot added
print(sum(int(s["summary"].get("added-records", 0)) for s in m.get("snapshots", [])))
PY
}
wait_rows() { for _ in $(seq $(($2 * 5))); do [[ $(rows) -ge $1 ]] && return 0; sleep 0.2; done; return 1; }

cat >"$data/specs.yaml" <<YAML
kind: Source
metadata: {name: orders, owner: shop}
spec:
  connector: ingest
  key: [id]
  schema: {type: record, name: Order, fields: [{name: id, type: long}, {name: amount, type: double}, {name: country, type: string}]}
---
kind: Pipeline
metadata: {name: orders-lake, owner: shop}
spec:
  from: [orders]
  steps:
    - filter: "amount > 0"
  to:
    - sink: {type: iceberg, warehouse: "$data/lake", table: shop.orders, catalog: sqlite, commit_interval: 1s}
YAML
start
out=$("$bin" apply -f "$data/specs.yaml" 2>&1) && ok apply || bad apply "$out"
events() { python3 -c "import json,sys; print(json.dumps([{'id':i,'amount':float(i%5),'country':'NL'} for i in range(int(sys.argv[1]),int(sys.argv[2]))]))" "$1" "$2"; }
curl -fs -X POST -H 'Content-Type: application/json' --data "$(events 0 500)" "$DATAMESH_SERVER/api/v1/sources/orders/events" >/dev/null && ok ingest || bad ingest ""
wait_rows 400 30 && ok table_committed || bad table_committed "rows=$(rows) $(curl -s "$DATAMESH_SERVER/api/v1/pipelines/orders-lake/status")"
[[ $(rows) -eq 400 ]] && ok filtered_rows_only || bad filtered_rows_only "rows=$(rows)"
ls "$data"/lake/shop/orders/data/*.parquet >/dev/null 2>&1 && ok parquet_files || bad parquet_files "$(find "$data/lake" | head)"
stop
start
curl -fs -X POST -H 'Content-Type: application/json' --data "$(events 500 1000)" "$DATAMESH_SERVER/api/v1/sources/orders/events" >/dev/null
wait_rows 800 30
sleep 1.5
[[ $(rows) -eq 800 ]] && ok restart_no_duplicate || bad restart_no_duplicate "rows=$(rows)"
st=$(curl -s "$DATAMESH_SERVER/api/v1/pipelines/orders-lake/status")
[[ $st == *'orders-lake/sink/0'* ]] && ok sink_in_status || bad sink_in_status "$st"
stop
dm_e2e_summary
