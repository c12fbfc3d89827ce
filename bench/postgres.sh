#!/usr/bin/env bash
# bench/postgres.sh — change data capture throughput: datamesh's postgres
# source against pg_recvlogical (the server's own client) on the same WAL.
#
# 1 M single-row INSERTs, committed every 1,000 rows, are written while two
# slots hold the WAL: a pgoutput slot for datamesh and a test_decoding slot
# for pg_recvlogical. Then each drains its slot to the same end LSN, one after
# the other: pg_recvlogical writing to /dev/null without fsync (the floor: the
# server decoding and sending), datamesh producing Avro change events into
# its topic with the LSN committed atomically. changes/s = 1 M / drain time.
# Then the latency from commit to topic at 10k changes/s (p50, p99).
# Then (DM_BENCH_PG_SNAPSHOT=0 skips it) a snapshot of a 5 M-row table (rows/s
# and the controller's peak RSS, with the peaks of RssAnon and RssFile sampled
# apart).
# Ends with `postgres ratio=X.XX target=0.8` (datamesh / pg_recvlogical).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [[ -z ${DM_PG_DSN:-} ]]; then
  exec "$root/tests/harness/with-postgres" bash "$0" "$@"
fi
bin=${DM_BIN:-$root/build/datamesh}
source "$root/tests/harness/lib.sh"
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
rows=${DM_BENCH_PG_ROWS:-1000000}
psql() { "$pgbin/psql" -X -q -t -A -v ON_ERROR_STOP=1 "$DM_PG_DSN" "$@"; }
now() { date +%s.%N; }
data=$(mktemp -d)
port=$(dm_free_port)
pid=
trap 'kill -9 $pid 2>/dev/null; rm -rf "$data"' EXIT
export DATAMESH_SERVER=http://127.0.0.1:$port

psql >/dev/null <<SQL
CREATE TABLE bench (id bigint PRIMARY KEY, name text, amount numeric(12,2), at timestamptz);
CREATE TABLE datamesh_signal (id text PRIMARY KEY, kind text NOT NULL, ts timestamptz NOT NULL DEFAULT now());
CREATE PUBLICATION bench FOR TABLE bench, datamesh_signal;
SELECT 1 FROM pg_create_logical_replication_slot('dm', 'pgoutput');
SELECT 1 FROM pg_create_logical_replication_slot('recv', 'test_decoding');
CREATE PROCEDURE load(n int) LANGUAGE plpgsql AS \$\$
BEGIN
  FOR i IN 1..n LOOP
    INSERT INTO bench VALUES (i, 'customer ' || i, i % 100000 / 100.0, now());
    IF i % 1000 = 0 THEN COMMIT; END IF;
  END LOOP;
END \$\$;
SQL
t0=$(now)
psql -c "CALL load($rows)"
end=$(psql -c "SELECT pg_current_wal_lsn()")
t1=$(now)
echo "workload: $rows single-row inserts in $(echo "$t1 - $t0" | bc) s, WAL end $end"

# Baseline: pg_recvlogical drains the test_decoding slot to the end LSN.
t0=$(now)
"$pgbin/pg_recvlogical" -d "$DM_PG_DSN" --slot recv --start --endpos "$end" --fsync-interval 0 \
  --no-loop -f /dev/null
t1=$(now)
base=$(echo "$rows / ($t1 - $t0)" | bc -l)
printf 'pg_recvlogical (test_decoding -> /dev/null): %.0f changes/s\n' "$base"

# datamesh: the postgres source drains the pgoutput slot into its topic.
dm_controller_start "$data" "$port" "$data/up.log" >/dev/null
pid=$dm_pid
cat >"$data/src.yaml" <<YAML
kind: Source
metadata: {name: bench, owner: bench}
spec:
  connector: postgres
  config: {dsn: "$DM_PG_DSN", tables: [public.bench], slot: dm, publication: bench, snapshot: never, heartbeat: 100ms}
YAML
target=$(psql -c "SELECT '$end'::pg_lsn - '0/0'::pg_lsn")
t0=$(now)
"$bin" apply -f "$data/src.yaml" >/dev/null
while :; do
  pos=$(curl -s "$DATAMESH_SERVER/api/v1/sources/bench/status" |
        python3 -c 'import json,sys; u=json.load(sys.stdin)["units"]; print(u[0]["position"] if u else 0)')
  [[ $pos -ge $target ]] && break
  kill -0 "$pid" || { cat "$data/up.log"; exit 1; }
  sleep 0.02
done
t1=$(now)
dm=$(echo "$rows / ($t1 - $t0)" | bc -l)
printf 'datamesh postgres source (pgoutput -> Avro events in the topic, LSN committed): %.0f changes/s\n' "$dm"
# Every change is in the topic once: the record at offset rows-1 is the last insert and is the last record.
last=$(curl -s "$DATAMESH_SERVER/api/v1/sources/bench/records?positions=0:$((rows - 1))&limit=5&timeout_ms=0")
python3 -c 'import json,sys; r=json.loads(sys.argv[1])["records"]; n=int(sys.argv[2])
assert len(r)==1 and r[0]["value"]["after"]["id"]==n, "topic does not end with insert %d: %s" % (n, sys.argv[1][:300])' "$last" "$rows"

# Latency: 10k changes/s (100-row transactions every 10 ms) for 5 s; commit
# time (source.ts_ms) to the record's write time in the topic.
psql >/dev/null <<SQL
CREATE TABLE lat (id int PRIMARY KEY, at timestamptz);
CREATE PROCEDURE paced(total int) LANGUAGE plpgsql AS \$\$
DECLARE t0 timestamptz := clock_timestamp(); i int := 0;
BEGIN
  WHILE i < total LOOP
    FOR k IN 1..100 LOOP i := i + 1; INSERT INTO lat VALUES (i, now()); END LOOP;
    COMMIT;
    PERFORM pg_sleep(GREATEST(0, extract(epoch FROM t0 + i / 10000.0 * interval '1 second' - clock_timestamp())));
  END LOOP;
END \$\$;
SQL
cat >"$data/lat.yaml" <<YAML
kind: Source
metadata: {name: lat, owner: bench}
spec:
  connector: postgres
  config: {dsn: "$DM_PG_DSN", tables: [public.lat], slot: lat, publication: lat, snapshot: never}
YAML
"$bin" apply -f "$data/lat.yaml" >/dev/null
for _ in $(seq 100); do
  [[ $(curl -s "$DATAMESH_SERVER/api/v1/sources/lat/status") == *'"state":"running"'* ]] && break
  sleep 0.1
done
psql -c "SET synchronous_commit = on" -c "CALL paced(50000)" # the walsender sends flushed WAL only
python3 - "$DATAMESH_SERVER" <<'PY'
import json, sys, time, urllib.request
server, lat, pos, deadline = sys.argv[1], [], 0, time.time() + 60
while len(lat) < 50000 and time.time() < deadline:
    with urllib.request.urlopen(f"{server}/api/v1/sources/lat/records?positions=0:{pos}&limit=5000&timeout_ms=500") as r:
        page = json.load(r)
    for rec in page["records"]:
        lat.append(rec["timestamp"] - rec["value"]["source"]["ts_ms"])
    pos = int(page["positions"]["0"])
lat.sort()
if len(lat) < 50000:
    sys.exit(f"latency run: only {len(lat)} of 50000 events")
p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
print(f"latency at 10k changes/s, commit to topic: p50 {p(0.5)} ms, p99 {p(0.99)} ms (target p99 < 50 ms)")
PY

if [[ ${DM_BENCH_PG_SNAPSHOT:-1} == 1 ]]; then
  snap_rows=${DM_BENCH_PG_SNAP_ROWS:-5000000}
  psql -c "CREATE TABLE big (id bigint PRIMARY KEY, name text, amount numeric(12,2))" \
       -c "INSERT INTO big SELECT g, 'name ' || g, g % 1000 FROM generate_series(1, $snap_rows) g" -c "ANALYZE big"
  cat >"$data/big.yaml" <<YAML
kind: Source
metadata: {name: big, owner: bench}
spec:
  connector: postgres
  config: {dsn: "$DM_PG_DSN", tables: [public.big], slot: big, publication: big, snapshot: initial, chunk_size: ${DM_BENCH_PG_CHUNK:-32768}}
YAML
  t0=$(now)
  "$bin" apply -f "$data/big.yaml" >/dev/null
  # RssAnon (heap, stacks) and RssFile (mapped files: the log's segments) are
  # sampled as it runs; the kernel keeps a peak (VmHWM) of their sum only.
  anon_peak=0 file_peak=0
  while :; do
    st=$(curl -s "$DATAMESH_SERVER/api/v1/sources/big/status")
    read -r a f < <(awk '/RssAnon/ {a=$2} /RssFile/ {f=$2} END {print a, f}' /proc/$pid/status)
    ((a > anon_peak)) && anon_peak=$a
    ((f > file_peak)) && file_peak=$f
    [[ $st == *'"snapshots":[]'* && $st == *'"state":"running"'* ]] && grep -q "snapshot of public.big done" "$data/up.log" && break
    sleep 0.1
  done
  t1=$(now)
  rss=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
  printf 'snapshot of %d rows: %.0f rows/s (target 300000), controller peak RSS %d MiB (target < 200): peak RssAnon %d MiB, peak RssFile %d MiB\n' \
    "$snap_rows" "$(echo "$snap_rows / ($t1 - $t0)" | bc -l)" "$((rss / 1024))" "$((anon_peak / 1024))" "$((file_peak / 1024))"
fi
kill -TERM "$pid"; wait "$pid" || true
pid=
printf 'postgres ratio=%.2f target=0.8\n' "$(echo "$dm / $base" | bc -l)"
