#!/usr/bin/env bash
# needs:kafka-mock — end to end through `datamesh up`: a pipeline with a kafka
# sink writes onto a topic of the mock cluster, registering its schemas in the
# controller's own registry (no registry_url given); kcat reads the records.
# With DM_AUTH=1 the controller runs with --auth: the sink's registry calls then
# carry the controller's in-memory token (control/auth.h).
set -u
bin=${DM_BIN:?}
source "$(dirname "$0")/../harness/lib.sh"
pass=0 fail=0
ok() { echo "ok   $1"; pass=$((pass+1)); }
bad() { echo "FAIL $1: ${2:0:800}"; fail=$((fail+1)); }
data=$(mktemp -d)
port=$(dm_free_port)
export DATAMESH_SERVER=http://127.0.0.1:$port
pid=
trap 'kill -9 $pid 2>/dev/null; rm -rf "$data"' EXIT

echo "topic shop.orders 3 3" >"$DM_KAFKA_MOCK_CTL"
for _ in $(seq 100); do grep -q "created shop.orders" "$DM_KAFKA_MOCK_OUT" && break; sleep 0.05; done

cat >"$data/specs.yaml" <<YAML
kind: Source
metadata: {name: orders, owner: shop}
spec:
  connector: datagen
  key: [id]
  schema: {type: record, name: Order, fields: [{name: id, type: long}, {name: amount, type: double}]}
  config: {rate: 500, max_events: 300, seed: 5}
---
kind: Pipeline
metadata: {name: orders-out, owner: shop}
spec:
  from: [orders]
  to:
    - sink: {type: kafka, brokers: "$DM_KAFKA_BROKERS", topic: shop.orders, linger: 100ms}
YAML

auth=()
if [[ ${DM_AUTH:-} == 1 ]]; then
  dm_controller_start "$data/dm" "$port" "$data/up.log" --auth && pid=$dm_pid
  export DATAMESH_TOKEN=$(cat "$data/dm/admin.token")
  auth=(-H "Authorization: Bearer $DATAMESH_TOKEN")
else
  dm_controller_start "$data/dm" "$port" "$data/up.log" && pid=$dm_pid
fi
"$bin" apply -f "$data/specs.yaml" >"$data/apply.out" 2>&1 && ok apply || bad apply "$(cat "$data/apply.out")"
n=0
for _ in $(seq 100); do
  n=$(kcat -C -b "$DM_KAFKA_BROKERS" -t shop.orders -o beginning -e -q -f '%p\n' 2>/dev/null | wc -l)
  [[ $n -ge 300 ]] && break
  sleep 0.2
done
[[ $n -eq 300 ]] && ok all_records_on_the_external_topic || bad all_records_on_the_external_topic "$n records; $(tail -5 "$data/up.log")"
sub=$(curl -s "${auth[@]}" "$DATAMESH_SERVER/subjects")
[[ $sub == *'"shop.orders-value"'* && $sub == *'"shop.orders-key"'* ]] && ok schemas_in_our_registry || bad schemas_in_our_registry "$sub"
id=$(curl -s "${auth[@]}" "$DATAMESH_SERVER/subjects/shop.orders-value/versions/latest" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
# Every value starts with the wire header: magic 0 and that id, big-endian.
hdr=$(kcat -C -b "$DM_KAFKA_BROKERS" -t shop.orders -o beginning -e -q -c 1 -f '%s' 2>/dev/null | head -c 5 | od -An -tu1 | tr -s ' ')
[[ $hdr == " 0 0 0 0 $id" ]] && ok wire_format_with_registry_id || bad wire_format_with_registry_id "header '$hdr', id $id"
m=$(curl -s "${auth[@]}" "$DATAMESH_SERVER/metrics")
[[ $m == *'datamesh_sink_records_total{sink="orders-out/sink/0",type="kafka"} 300'* ]] && ok sink_metrics || bad sink_metrics "$(grep datamesh_sink <<<"$m" | head -5)"
kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
