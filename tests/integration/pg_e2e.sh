#!/usr/bin/env bash
# End to end through the datamesh binary against a real PostgreSQL: a postgres
# source applied to a running controller takes an initial snapshot and
# streams changes into its topic (consume reads them), status shows the slot
# and snapshot progress, `datamesh snapshot` re-reads a table on demand, the
# password never shows in logs or API answers, and a role without privileges
# gets an error naming the missing one.
set -u
bin=${DM_BIN:?}
source "$(dirname "$0")/../harness/lib.sh"
pass=0 fail=0
ok() { echo "ok   $1"; pass=$((pass+1)); }
bad() { echo "FAIL $1: ${2:0:800}"; fail=$((fail+1)); }
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
psql() { "$pgbin/psql" -X -q -v ON_ERROR_STOP=1 "$DM_PG_DSN" "$@"; }
data=$(mktemp -d)
port=$(dm_free_port)
export DATAMESH_SERVER=http://127.0.0.1:$port
export DM_E2E_PG_PASSWORD=not-a-real-secret-7f3a
pid=
trap 'kill -9 $pid 2>/dev/null; rm -rf "$data"' EXIT
consume_count() { "$bin" consume "$1" --from-beginning -n "$2" 2>/dev/null | wc -l; }
wait_count() { # wait_count SOURCE N SECONDS
  for _ in $(seq $(($3 * 5))); do
    [[ $(timeout 5 "$bin" consume "$1" --from-beginning -n "$2" 2>/dev/null | wc -l) -ge $2 ]] && return 0
    sleep 0.2
  done
  return 1
}

psql -c "CREATE TABLE orders (id int PRIMARY KEY, item text, qty int)" \
     -c "INSERT INTO orders SELECT g, 'item ' || g, g FROM generate_series(1, 50) g" \
     -c "CREATE ROLE limited LOGIN" || exit 1
dm_controller_start "$data" "$port" "$data/up.log" || exit 1
pid=$dm_pid
cat >"$data/orders.yaml" <<YAML
kind: Source
metadata: {name: orders, owner: commerce}
spec:
  connector: postgres
  config: {dsn: "$DM_PG_DSN", password_env: DM_E2E_PG_PASSWORD, tables: [public.orders],
           snapshot: initial, heartbeat: 500ms, chunk_size: 20}
YAML
out=$("$bin" apply -f "$data/orders.yaml" 2>&1) && ok apply_postgres_source || bad apply_postgres_source "$out"
wait_count orders 50 30 && ok initial_snapshot || bad initial_snapshot "$(tail -20 "$data/up.log")"
psql -c "INSERT INTO orders VALUES (51, 'new', 1)" -c "UPDATE orders SET qty = 99 WHERE id = 3" \
     -c "DELETE FROM orders WHERE id = 4"
wait_count orders 53 30 && ok streams_changes || bad streams_changes "$(tail -20 "$data/up.log")"
ev=$("$bin" consume orders --from-beginning -n 53 2>&1 | tail -3)
[[ $ev == *'"op":"c"'* && $ev == *'"op":"u"'* && $ev == *'"op":"d"'* && $ev == *'"lsn":'* ]] \
  && ok debezium_envelope || bad debezium_envelope "$ev"
st=$(curl -s "$DATAMESH_SERVER/api/v1/sources/orders/status")
[[ $st == *'"slot_lag_bytes"'* && $st == *'"state":"running"'* ]] && ok status_slot_lag || bad status_slot_lag "$st"
m=$(curl -s "$DATAMESH_SERVER/metrics")
[[ $m == *'datamesh_postgres_slot_lag_bytes{pg_source="orders"}'* && $m == *'datamesh_postgres_events_total{pg_source="orders"}'* ]] \
  && ok slot_lag_metrics || bad slot_lag_metrics "$(grep postgres <<<"$m")"
out=$("$bin" snapshot orders --table public.orders 2>&1) && ok snapshot_cli || bad snapshot_cli "$out"
wait_count orders 103 30 && ok on_demand_snapshot || bad on_demand_snapshot "$(tail -20 "$data/up.log")"
out=$("$bin" snapshot orders --table public.orders --from 10 --to 19 --wait 2>&1) && [[ $out == *"done"* ]] \
  && ok snapshot_key_range_cli_wait || bad snapshot_key_range_cli_wait "$out"
out=$("$bin" snapshot orders --status 2>&1) && [[ $out == *"no snapshot in progress"* ]] && ok snapshot_status_cli || bad snapshot_status_cli "$out"
wait_count orders 113 30 && ok key_range_snapshot || bad key_range_snapshot "$(tail -20 "$data/up.log")"
sleep 1
n=$("$bin" consume orders --from-beginning -n 120 2>/dev/null | tail -n +104 | grep -c '"op":"r"')
range=$("$bin" consume orders --from-beginning -n 113 2>/dev/null | tail -n 10 | grep -o '"after":{"id":[0-9]*' | cut -d: -f3 | sort -n | tr '\n' ' ')
[[ $n -eq 10 && $range == "10 11 12 13 14 15 16 17 18 19 " ]] && ok key_range_rows || bad key_range_rows "$n: $range"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$DATAMESH_SERVER/api/v1/sources/orders/snapshot?table=public.nope")
[[ $code == 404 ]] && ok snapshot_unknown_table_404 || bad snapshot_unknown_table_404 "$code"
sub=$(curl -s "$DATAMESH_SERVER/subjects")
[[ $sub == *'"orders-value"'* && $sub == *'"orders-key"'* ]] && ok schemas_registered || bad schemas_registered "$sub"

# A role that may not create the signal table, the publication or the slot.
cat >"$data/limited.yaml" <<YAML
kind: Source
metadata: {name: limited, owner: commerce}
spec:
  connector: postgres
  config: {dsn: "${DM_PG_DSN/user=postgres/user=limited}", tables: [public.orders],
           slot: limited, publication: limited, signal_table: public.limited_signal}
YAML
"$bin" apply -f "$data/limited.yaml" >/dev/null 2>&1
for _ in $(seq 50); do
  st=$(curl -s "$DATAMESH_SERVER/api/v1/sources/limited/status")
  [[ $st == *privilege* || $st == *REPLICATION* ]] && break
  sleep 0.2
done
[[ $st == *'"state":"failed"'* && ( $st == *"CREATE privilege"* || $st == *REPLICATION* ) ]] \
  && ok missing_privilege_named || bad missing_privilege_named "$st"

# A postgres source and a pipeline reading it into a postgres sink, applied in one
# request: the pipeline waits (saying why) until the connector has made the source's
# topic and schema, then starts by itself, and the rows land.
psql -c "CREATE TABLE items (id int PRIMARY KEY, name text, price int)" \
     -c "INSERT INTO items SELECT g, 'n' || g, g * 10 FROM generate_series(1, 20) g" \
     -c "CREATE SCHEMA copies" || exit 1
cat >"$data/together.yaml" <<YAML
kind: Source
metadata: {name: items, owner: commerce}
spec:
  connector: postgres
  config: {dsn: "$DM_PG_DSN", password_env: DM_E2E_PG_PASSWORD, tables: [public.items],
           slot: items, publication: items, snapshot: initial, heartbeat: 500ms}
---
kind: Pipeline
metadata: {name: items-copy, owner: commerce}
spec:
  from: [items]
  steps: [{filter: "after.price >= 50"}]
  to:
    - sink: {type: postgres, dsn: "$DM_PG_DSN", table: copies.items, password_env: DM_E2E_PG_PASSWORD, linger: 100ms}
YAML
out=$("$bin" apply -f "$data/together.yaml" 2>&1) && ok apply_source_and_pipeline_together || bad apply_source_and_pipeline_together "$out"
st=$(curl -s "$DATAMESH_SERVER/api/v1/pipelines/items-copy/status")
[[ $st == *'"state":"pending"'* && $st == *'waiting for source items'* ]] || [[ $st == *'"state":"running"'* ]] \
  && ok pending_says_why || bad pending_says_why "$st"
for _ in $(seq 100); do
  st=$(curl -s "$DATAMESH_SERVER/api/v1/pipelines/items-copy/status")
  [[ $st == *'"state":"running"'* ]] && break
  sleep 0.2
done
[[ $st == *'"state":"running"'* ]] && ok pipeline_starts_when_source_exists || bad pipeline_starts_when_source_exists "$st"
n=
for _ in $(seq 100); do
  n=$(psql -tA -c "SELECT count(*) FROM copies.items" 2>/dev/null)
  [[ $n == 16 ]] && break
  sleep 0.2
done
[[ $n == 16 ]] && ok rows_land_in_sink || bad rows_land_in_sink "rows: '$n'; $(curl -s "$DATAMESH_SERVER/api/v1/pipelines/items-copy/status")"

all=$(cat "$data/up.log"; curl -s "$DATAMESH_SERVER/api/v1/sources/orders"; curl -s "$DATAMESH_SERVER/api/v1/sources/orders/status")
[[ $all != *"$DM_E2E_PG_PASSWORD"* ]] && ok password_never_shown || bad password_never_shown "found in logs or API"

kill -TERM "$pid"; wait "$pid"; rc=$?
if [[ $rc -eq 0 ]] && ! grep -q Sanitizer "$data/up.log"; then ok clean_stop; else bad clean_stop "exit $rc: $(grep -A8 Sanitizer "$data/up.log" | head -30)"; fi
echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
