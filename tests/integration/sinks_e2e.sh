#!/usr/bin/env bash
# needs:postgres — end to end through `datamesh up`: a datagen source, a
# pipeline with a postgres sink (upserts by the source's key, exactly once
# across a restart), a second postgres sink whose server is unreachable
# (status "retrying" with the reason, no password anywhere), sink metrics, and
# sink settings checked at apply.
set -u
bin=${DM_BIN:?}
source "$(dirname "$0")/../harness/lib.sh"
dm_e2e_setup
export DM_E2E_PG_PASSWORD=e2e-s3cret-pw
q() { psql -X -q -t -A "$DM_PG_DSN" -c "$1" 2>&1; }

cat >"$data/specs.yaml" <<YAML
kind: Source
metadata: {name: orders, owner: shop}
spec:
  connector: datagen
  key: [id]
  schema: {type: record, name: Order, fields: [{name: id, type: long}, {name: amount, type: double}, {name: note, type: string}]}
  config: {rate: 400, keys: 40, max_events: 2000, seed: 3}
---
kind: Pipeline
metadata: {name: orders-pg, owner: shop}
spec:
  from: [orders]
  steps:
    - filter: "amount >= 0"
  to:
    - sink: {type: postgres, dsn: "$DM_PG_DSN", table: shop.orders, password_env: DM_E2E_PG_PASSWORD, linger: 100ms}
---
kind: Pipeline
metadata: {name: orders-down, owner: shop}
spec:
  from: [orders]
  to:
    - sink: {type: postgres, dsn: "host=127.0.0.1 port=1 dbname=x user=y", table: t, password_env: DM_E2E_PG_PASSWORD}
YAML

q "CREATE SCHEMA shop" >/dev/null
start
"$bin" apply -f "$data/specs.yaml" >"$data/apply.out" 2>&1 && ok apply || bad apply "$(cat "$data/apply.out")"

# The datagen source stops after 2000 events over 40 keys: the table ends with 40 rows.
for _ in $(seq 300); do
  [[ $(q "SELECT next_offset FROM datamesh_sink_offsets WHERE sink = 'sink.orders-pg.0'" | awk '{s += $1} END {print s}') == 2000 ]] && break
  sleep 0.1
done
n=$(q "SELECT count(*), count(DISTINCT id) FROM shop.orders")
[[ $n == "40|40" ]] && ok upserts_by_source_key || bad upserts_by_source_key "$n; $(tail -20 "$data/up.log")"
cols=$(q "SELECT string_agg(column_name || ':' || data_type, ',' ORDER BY ordinal_position) FROM information_schema.columns WHERE table_schema = 'shop' AND table_name = 'orders'")
[[ $cols == "id:bigint,amount:double precision,note:text" ]] && ok table_from_schema || bad table_from_schema "$cols"

st=$(curl -s "$DATAMESH_SERVER/api/v1/pipelines/orders-pg/status")
[[ $st == *'orders-pg/sink/0'* && $st == *'"state":"running"'* ]] && ok sink_status || bad sink_status "$st"
down=$(curl -s "$DATAMESH_SERVER/api/v1/pipelines/orders-down/status")
[[ $down == *'"state":"retrying"'* && $down == *'port 1 failed'* ]] && ok unreachable_is_retrying || bad unreachable_is_retrying "$down"
m=$(curl -s "$DATAMESH_SERVER/metrics")
[[ $m == *'datamesh_sink_records_total{sink="orders-pg/sink/0",type="postgres"} 2000'* && $m == *'datamesh_sink_retries_total{sink="orders-down/sink/0",type="postgres"}'* ]] \
  && ok sink_metrics || bad sink_metrics "$(grep datamesh_sink <<<"$m" | head -8)"
if grep -q "e2e-s3cret-pw" "$data/up.log" || [[ "$down$st$m" == *e2e-s3cret-pw* ]]; then
  bad no_password_leak "found in the log or the API"
else ok no_password_leak; fi

# A restart continues from the offsets stored with the rows: nothing written twice.
before=$(q "SELECT xmin::text FROM shop.orders ORDER BY id LIMIT 1")
stop
start
sleep 2
after=$(q "SELECT xmin::text FROM shop.orders ORDER BY id LIMIT 1")
[[ -n $before && $before == "$after" ]] && ok restart_writes_nothing_again || bad restart_writes_nothing_again "xmin $before -> $after"

# Sink settings are checked at apply.
sed 's/linger: 100ms/lingr: 100ms/' "$data/specs.yaml" >"$data/bad.yaml"
r=$("$bin" apply -f "$data/bad.yaml" 2>&1)
[[ $r == *lingr* && $r == *linger* ]] && ok unknown_setting_refused || bad unknown_setting_refused "$r"
stop
dm_e2e_summary
