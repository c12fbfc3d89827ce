#!/usr/bin/env bash
# needs:mariadb — end to end through the datamesh binary against a real
# MariaDB: a mysql source (3 partitions) and a pipeline reading it into a file
# sink, applied in one request; the initial snapshot and the changes reach the
# topic and the file; status and metrics; `datamesh snapshot` of a key range;
# two SIGKILLs of datamesh and a MariaDB restart during a workload (split in
# three parts) and the topic still folds to
# exactly the table with no (gtid, row) twice; the password never shows.
set -u
bin=${DM_BIN:?}
source "$(dirname "$0")/../harness/lib.sh"
pass=0 fail=0
ok() { echo "ok   $1"; pass=$((pass+1)); }
bad() { echo "FAIL $1: ${2:0:800}"; fail=$((fail+1)); }
my() { mariadb --no-defaults -h "$DM_MARIADB_HOST" -P "$DM_MARIADB_PORT" -u "$DM_MARIADB_USER" -p"$DM_MARIADB_PASSWORD" -N -B "$@"; }
data=$(mktemp -d)
port=$(dm_free_port)
export DATAMESH_SERVER=http://127.0.0.1:$port
export DM_E2E_MY_PASSWORD=not-a-real-secret-9b2c
pid=
trap 'kill -9 $pid 2>/dev/null; rm -rf "$data"' EXIT
consume_all() { timeout 20 "$bin" consume "$1" --from-beginning -n "$2" -o json 2>/dev/null; }
wait_count() { # wait_count SOURCE N SECONDS
  for _ in $(seq $(($3 * 5))); do
    [[ $(consume_all "$1" "$2" | wc -l) -ge $2 ]] && return 0
    sleep 0.2
  done
  return 1
}

# Durable commits: the server is killed below, and what it acknowledged must
# survive in its tables as in its binlog (the harness starts it lax).
my -e "SET GLOBAL innodb_flush_log_at_trx_commit = 1; SET GLOBAL sync_binlog = 1" || exit 1
my -e "SET GLOBAL binlog_row_metadata = 'FULL'; CREATE USER 'cdc'@'%' IDENTIFIED BY '$DM_E2E_MY_PASSWORD';
       GRANT ALL ON *.* TO 'cdc'@'%'; CREATE DATABASE shop;
       CREATE TABLE shop.orders (id INT PRIMARY KEY, item VARCHAR(40), qty INT, price DECIMAL(8,2));
       INSERT INTO shop.orders SELECT seq, CONCAT('item ', seq), seq, seq / 4 FROM shop.seq_1_to_50" || exit 1
dm_controller_start "$data" "$port" "$data/up.log" || exit 1
pid=$dm_pid
cat >"$data/orders.yaml" <<YAML
kind: Source
metadata: {name: orders, owner: commerce}
spec:
  connector: mysql
  partitions: 3
  config: {host: 127.0.0.1, port: $DM_MARIADB_PORT, user: cdc, password_env: DM_E2E_MY_PASSWORD,
           tables: [shop.orders], snapshot: initial, chunk_size: 20}
---
kind: Pipeline
metadata: {name: big-orders, owner: commerce}
spec:
  from: [orders]
  steps: [{filter: "after.qty >= 40"}]
  to:
    - sink: {type: file, path: $data/big.jsonl, format: jsonl}
YAML
out=$("$bin" apply -f "$data/orders.yaml" 2>&1) && ok apply_source_and_pipeline_together || bad apply_source_and_pipeline_together "$out"
wait_count orders 50 30 && ok initial_snapshot || bad initial_snapshot "$(tail -20 "$data/up.log")"
my -e "INSERT INTO shop.orders VALUES (51, 'new', 77, 1.5); UPDATE shop.orders SET qty = 99 WHERE id = 3;
       DELETE FROM shop.orders WHERE id = 4"
wait_count orders 53 30 && ok streams_changes || bad streams_changes "$(tail -20 "$data/up.log")"
ev=$(consume_all orders 53)
[[ $ev == *'"op":"c"'* && $ev == *'"op":"u"'* && $ev == *'"op":"d"'* && $ev == *'"op":"r"'* && $ev == *'"gtid":"0-1-'* ]] \
  && ok debezium_envelope || bad debezium_envelope "$(tail -3 <<<"$ev")"
n=
for _ in $(seq 100); do
  n=$(wc -l <"$data/big.jsonl" 2>/dev/null)
  [[ ${n:-0} -ge 13 ]] && break
  sleep 0.2
done
[[ ${n:-0} -ge 13 ]] && ok pipeline_to_file_sink || bad pipeline_to_file_sink "lines: $n; $(curl -s "$DATAMESH_SERVER/api/v1/pipelines/big-orders/status")"
st=$(curl -s "$DATAMESH_SERVER/api/v1/sources/orders/status")
[[ $st == *'"flavor":"mariadb"'* && $st == *'"state":"running"'* && $st == *'gtid=0-1-'* ]] && ok status || bad status "$st"
m=$(curl -s "$DATAMESH_SERVER/metrics")
[[ $m == *'datamesh_mysql_events_total{mysql_source="orders"}'* ]] && ok metrics || bad metrics "$(grep mysql <<<"$m")"
out=$("$bin" snapshot orders --table shop.orders --from 10 --to 19 --wait 2>&1) && [[ $out == *"done"* ]] \
  && ok snapshot_key_range_cli || bad snapshot_key_range_cli "$out"
wait_count orders 63 30 && ok key_range_snapshot || bad key_range_snapshot "$(tail -5 "$data/up.log")"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$DATAMESH_SERVER/api/v1/sources/orders/snapshot?table=shop.nope")
[[ $code == 404 ]] && ok snapshot_unknown_table_404 || bad snapshot_unknown_table_404 "$code"

# A workload with two SIGKILLs of datamesh and a MariaDB restart in the middle.
( for i in $(seq 1 300); do
    echo "INSERT INTO shop.orders VALUES ($((1000 + i)), 'w', $i, 1); UPDATE shop.orders SET qty = qty + 1 WHERE id = $((i % 50 + 1));"
    [[ $((i % 7)) -eq 0 ]] && echo "DELETE FROM shop.orders WHERE id = $((1000 + i - 3));"
  done ) >"$data/work.sql"
split -n l/3 "$data/work.sql" "$data/work."
k=0
for part in "$data"/work.a?; do
  my <"$part" || bad workload "$part"
  k=$((k + 1))
  if [[ $k -eq 2 ]]; then # the server dies and comes back
    bash -c "$DM_MARIADB_KILL" &&
      DM_MARIADB_OPTS="--binlog-row-metadata=FULL --innodb-flush-log-at-trx-commit=1 --sync-binlog=1" \
        bash -c "$DM_MARIADB_START" \
      || bad mariadb_restart "$(tail -5 "$data/up.log")"
    continue
  fi
  kill -9 "$pid"; wait "$pid" 2>/dev/null
  dm_controller_start "$data" "$port" "$data/up.log" || exit 1
  pid=$dm_pid
done
my -e "INSERT INTO shop.orders VALUES (99999, 'last', 0, 0)"
for _ in $(seq 150); do
  consume_all orders 100000 >"$data/all.jsonl"
  grep -q '"id":99999' "$data/all.jsonl" && break
  sleep 0.2
done
python3 - "$data/all.jsonl" >"$data/fold.txt" 2>"$data/fold.err" <<'PY'
import json, sys
state, seen, dup = {}, set(), 0
for line in open(sys.argv[1]):
    e = json.loads(line)
    v = e.get("value", e)
    src = v["source"]
    if v["op"] != "r":
        k = (src["gtid"], src["row"], v["op"])
        dup += k in seen
        seen.add(k)
    row = v["after"] if v["op"] != "d" else v["before"]
    if v["op"] == "d":
        state.pop(row["id"], None)
    else:
        state[row["id"]] = row["qty"]
for k in sorted(state):
    print(k, state[k])
print("dup", dup, file=sys.stderr)
PY
my -e "SELECT id, qty FROM shop.orders ORDER BY id" | tr '\t' ' ' >"$data/table.txt"
if cmp -s "$data/fold.txt" "$data/table.txt" && grep -q "dup 0" "$data/fold.err"; then
  ok killed_twice_folds_to_table
else
  bad killed_twice_folds_to_table "$(cat "$data/fold.err"; wc -l "$data/fold.txt" "$data/table.txt" "$data/all.jsonl"; diff "$data/fold.txt" "$data/table.txt" | head -10; grep -E "WARN|ERROR" "$data/up.log" | tail -5)"
fi

all=$(cat "$data/up.log"; curl -s "$DATAMESH_SERVER/api/v1/sources/orders"; curl -s "$DATAMESH_SERVER/api/v1/sources/orders/status")
[[ $all != *"$DM_E2E_MY_PASSWORD"* ]] && ok password_never_shown || bad password_never_shown "found in logs or API"

kill -TERM "$pid"; wait "$pid"; rc=$?
if [[ $rc -eq 0 ]] && ! grep -q Sanitizer "$data/up.log"; then ok clean_stop; else bad clean_stop "exit $rc: $(grep -A8 Sanitizer "$data/up.log" | head -30)"; fi
echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
