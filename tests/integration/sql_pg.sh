#!/usr/bin/env bash
# Streaming SQL over a Postgres CDC source (a real PostgreSQL): queries read
# the Debezium-shaped envelope (`after.x`, `before.x`, `op`), applied in the
# same request as the source (the pipelines wait until its schema exists),
# golden rows for the snapshot, an insert, an update and a delete.
set -u
bin=${DM_BIN:?}
source "$(dirname "$0")/../harness/lib.sh"
dm_e2e_setup
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
psql() { "$pgbin/psql" -X -q -v ON_ERROR_STOP=1 "$DM_PG_DSN" "$@"; }
rows() { # rows SOURCE N SECONDS: until SOURCE has N records, then prints them sorted
  for _ in $(seq $(($3 * 5))); do
    [[ $(timeout 5 "$bin" consume "$1" --from-beginning -n 1000 2>/dev/null | wc -l) -ge $2 ]] && break
    sleep 0.2
  done
  timeout 5 "$bin" consume "$1" --from-beginning -n 1000 2>/dev/null | /usr/bin/python3 -c '
import json, sys
for r in sorted(json.dumps(json.loads(l), sort_keys=True) for l in sys.stdin): print(r)'
}
export DM_E2E_PG_PASSWORD=not-a-real-secret-1b2c
psql -c "CREATE TABLE orders (id int PRIMARY KEY, item text, qty int)" \
     -c "INSERT INTO orders SELECT g, 'item ' || g, g FROM generate_series(1, 5) g" || exit 1
start || exit 1
cat >"$data/specs.yaml" <<YAML
kind: Source
metadata: {name: orders, owner: commerce}
spec:
  connector: postgres
  config: {dsn: "$DM_PG_DSN", password_env: DM_E2E_PG_PASSWORD, tables: [public.orders],
           snapshot: initial, heartbeat: 500ms}
---
kind: Pipeline
metadata: {name: big-orders, owner: commerce}
spec:
  sql: |
    SELECT after.id AS id, after.qty * 10 AS tenfold, op
    FROM orders
    WHERE op IN ('c', 'u', 'r') AND after.qty > 2
  to: [{source: big-orders}]
---
kind: Pipeline
metadata: {name: deleted-orders, owner: commerce}
spec:
  sql: "SELECT before.id AS id, UPPER(op) AS what FROM orders WHERE op = 'd'"
  to: [{source: deleted-orders}]
YAML
out=$("$bin" apply -f "$data/specs.yaml" 2>&1) && ok apply_source_and_sql || bad apply_source_and_sql "$out"
[[ $(rows big-orders 3 60 | wc -l) -ge 3 ]] || bad snapshot_rows "$(tail -5 "$data/up.log")"
psql -c "INSERT INTO orders VALUES (6, 'new', 6)" -c "UPDATE orders SET qty = 7 WHERE id = 1" \
     -c "DELETE FROM orders WHERE id = 2"
got=$(rows big-orders 5 60)
want='{"id": 1, "op": "u", "tenfold": 70}
{"id": 3, "op": "r", "tenfold": 30}
{"id": 4, "op": "r", "tenfold": 40}
{"id": 5, "op": "r", "tenfold": 50}
{"id": 6, "op": "c", "tenfold": 60}'
[[ $got == "$want" ]] && ok cdc_after_fields_and_op || bad cdc_after_fields_and_op "got: $got"
got=$(rows deleted-orders 1 60)
[[ $got == '{"id": 2, "what": "D"}' ]] && ok cdc_before_of_delete || bad cdc_before_of_delete "got: $got"
grep -q "$DM_E2E_PG_PASSWORD" "$data/up.log" && bad password_not_logged "in up.log" || ok password_not_logged
stop
dm_e2e_summary
