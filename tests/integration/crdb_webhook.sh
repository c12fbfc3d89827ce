#!/usr/bin/env bash
# needs:postgres — the cockroachdb connector. No CockroachDB server can run
# here (not in Debian; the npm registry has no package shipping one), so:
#  - the receiving side is tested over real HTTP against `datamesh up`, with
#    THIS SCRIPT PLAYING COCKROACHDB'S PART as the webhook client: bodies
#    written from CockroachDB's documented webhook-sink format ({"payload":
#    [{after, before (WITH diff), key, topic, updated}], "length": N} and
#    {"resolved": "..."}), including its at-least-once re-deliveries;
#  - the changefeed-creation side runs against the real PostgreSQL of the
#    harness, which is not CockroachDB: the source must say so clearly.
set -u
bin=${DM_BIN:?}
source "$(dirname "$0")/../harness/lib.sh"
dm_e2e_setup
export DM_E2E_PG_PASSWORD=not-a-real-secret-77c1
export DM_E2E_CRDB_TOKEN=dm-token-secret-4f9a
start || exit 1
api=$DATAMESH_SERVER/api/v1
cat >"$data/specs.yaml" <<YAML
kind: Source
metadata: {name: orders, owner: commerce}
spec:
  connector: cockroachdb
  schema: {type: record, name: Order, fields: [{name: id, type: long},
           {name: item, type: ["null", string], default: null}, {name: qty, type: int}]}
  key: [id]
  partitions: 2
  config: {dsn: "host=crdb.invalid port=26257 dbname=shop", table: shop.public.orders,
           create: false}
YAML
out=$("$bin" apply -f "$data/specs.yaml" 2>&1) && ok apply || bad apply "$out"
state() { curl -s "$api/sources/$1/status" | /usr/bin/python3 -c '
import json, sys
d = json.load(sys.stdin)
for u in d.get("units", []):
    print(u.get("state", ""), u.get("error", "") or u.get("reason", ""))
    break'; }
for _ in $(seq 100); do [[ $(state orders) == running* ]] && break; sleep 0.1; done
[[ $(state orders) == running* ]] && ok source_running || bad source_running "$(state orders)"

post() { # post BODY → "HTTP_CODE BODY"
  curl -s -o "$data/resp" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
    --data-binary "$1" "$api/sources/orders/changefeed"
  echo " $(cat "$data/resp")"
}
T1=1700000000000000001.0000000000 T2=1700000000000000002.0000000000
T3=1700000000000000003.0000000000 T4=1700000001000000000.0000000000
T5=1700000002000000000.0000000001 T6=1700000003000000000.0000000000
T7=1700000004000000000.0000000000
creates='{"payload":[
 {"after":{"id":1,"item":"apple","qty":1},"before":null,"key":[1],"topic":"orders","updated":"'$T1'"},
 {"after":{"id":2,"item":null,"qty":2},"before":null,"key":[2],"topic":"orders","updated":"'$T2'"},
 {"after":{"id":3,"item":"pear","qty":3},"before":null,"key":[3],"topic":"orders","updated":"'$T3'"}],
 "length":3}'
r=$(post "$creates"); [[ $r == '200 {"accepted": 3}' || $r == '200 {"accepted":3}' ]] && ok creates_accepted || bad creates_accepted "$r"
r=$(post "$creates"); [[ $r == 200* ]] && ok redelivery_acknowledged || bad redelivery_acknowledged "$r"
r=$(post '{"payload":[
 {"after":{"id":1,"item":"apple","qty":10},"before":{"id":1,"item":"apple","qty":1},"key":[1],"topic":"orders","updated":"'$T4'"},
 {"after":null,"before":{"id":2,"item":null,"qty":2},"key":[2],"topic":"orders","updated":"'$T5'"},
 {"after":{"id":4,"item":"plum","qty":"many"},"before":null,"key":[4],"topic":"orders","updated":"'$T5'"}],
 "length":3}')
[[ $r == 200* ]] && ok update_delete_and_bad_row || bad update_delete_and_bad_row "$r"
r=$(post '{"resolved":"'$T5'"}'); [[ $r == 200* ]] && ok resolved || bad resolved "$r"
# after the resolved timestamp: an old change re-sent is dropped; a new one
# kept once though sent twice
r=$(post '{"payload":[
 {"after":{"id":1,"item":"apple","qty":10},"before":{"id":1,"item":"apple","qty":1},"key":[1],"topic":"orders","updated":"'$T4'"},
 {"after":{"id":3,"item":"pear","qty":30},"before":{"id":3,"item":"pear","qty":3},"key":[3],"topic":"orders","updated":"'$T7'"},
 {"after":{"id":3,"item":"pear","qty":30},"before":{"id":3,"item":"pear","qty":3},"key":[3],"topic":"orders","updated":"'$T7'"}],
 "length":3}')
[[ $r == 200* ]] && ok redeliveries_in_window || bad redeliveries_in_window "$r"
# bodies that are not changefeed payloads: 400, nothing written
r=$(post 'not json'); [[ $r == 400*"not JSON"* ]] && ok not_json_400 || bad not_json_400 "$r"
r=$(post '{"payload":[],"length":2}'); [[ $r == 400*"length"* ]] && ok length_mismatch_400 || bad length_mismatch_400 "$r"
r=$(post '{"payload":[{"after":{"id":9,"qty":9},"key":[9],"topic":"orders"}],"length":1}')
[[ $r == 400*"WITH updated"* ]] && ok no_updated_400 || bad no_updated_400 "$r"
r=$(post '{"payload":[{"after":{"id":9,"qty":9},"key":[9],"updated":"yesterday"}],"length":1}')
[[ $r == 400*"HLC"* ]] && ok bad_timestamp_400 || bad bad_timestamp_400 "$r"
r=$(post '{"rows":[]}'); [[ $r == 400*"payload"* ]] && ok not_a_payload_400 || bad not_a_payload_400 "$r"
r=$(curl -s -o /dev/null -w '%{http_code}' -X POST --data-binary '{}' "$api/sources/nope/changefeed")
[[ $r == 404 ]] && ok unknown_source_404 || bad unknown_source_404 "$r"

events() {
  timeout 10 "$bin" consume orders --from-beginning -n 100 2>/dev/null | /usr/bin/python3 -c '
import json, sys
for l in sys.stdin:
    e = json.loads(l)
    row = e["after"] or e["before"]
    print(row["id"], e["op"], (e["after"] or {}).get("qty"), e["source"]["position"])' | sort
}
got=$(events)
want="1 c 1 $T1
1 u 10 $T4
2 c 2 $T2
2 d None $T5
3 c 3 $T3
3 u 30 $T7"
[[ $got == "$want" ]] && ok envelope_rows_once || bad envelope_rows_once "got: $got"
status=$(curl -s "$api/sources/orders/status")
echo "$status" | grep -q "\"position\": *\"$T5\"" && ok position_is_resolved || bad position_is_resolved "$status"
echo "$status" | grep -q '"dead_letters": *1' && ok bad_row_dead_lettered || bad bad_row_dead_lettered "$status"

# a restart resumes at the committed resolved timestamp: re-deliveries at or
# below it are still dropped
stop; start || exit 1
for _ in $(seq 100); do [[ $(state orders) == running* ]] && break; sleep 0.1; done
status=$(curl -s "$api/sources/orders/status")
echo "$status" | grep -q "\"position\": *\"$T5\"" && ok position_after_restart || bad position_after_restart "$status"
r=$(post "$creates"); [[ $r == 200* ]] && ok redelivery_after_restart || bad redelivery_after_restart "$r"
# above the resolved timestamp too: the window is read back from the topic
r=$(post '{"payload":[
 {"after":{"id":3,"item":"pear","qty":30},"before":{"id":3,"item":"pear","qty":3},"key":[3],"topic":"orders","updated":"'$T7'"}],
 "length":1}')
[[ $r == 200* ]] && ok window_redelivery_after_restart || bad window_redelivery_after_restart "$r"
got=$(events)
[[ $got == "$want" ]] && ok no_duplicates_after_restart || bad no_duplicates_after_restart "got: $got"

# the creation side against a real server that is not CockroachDB
cat >"$data/pg.yaml" <<YAML
kind: Source
metadata: {name: pgfeed, owner: commerce}
spec:
  connector: cockroachdb
  schema: {type: record, name: Row, fields: [{name: id, type: long}]}
  key: [id]
  config: {dsn: "$DM_PG_DSN", password_env: DM_E2E_PG_PASSWORD, table: public.t,
           webhook_url: "https://127.0.0.1:$port", token_env: DM_E2E_CRDB_TOKEN}
---
kind: Source
metadata: {name: nodb, owner: commerce}
spec:
  connector: cockroachdb
  schema: {type: record, name: Row, fields: [{name: id, type: long}]}
  key: [id]
  config: {dsn: "$DM_PG_DSN dbname=no_such_db", password_env: DM_E2E_PG_PASSWORD, table: t,
           webhook_url: "https://127.0.0.1:$port"}
YAML
out=$("$bin" apply -f "$data/pg.yaml" 2>&1) && ok apply_pg || bad apply_pg "$out"
for _ in $(seq 100); do [[ $(state pgfeed) == failed* ]] && break; sleep 0.1; done
s=$(state pgfeed)
[[ $s == failed*"reaches 'PostgreSQL"*"not CockroachDB"* ]] && ok postgres_is_not_cockroachdb || bad postgres_is_not_cockroachdb "$s"
for _ in $(seq 100); do [[ $(state nodb) == retrying*no_such_db* || $(state nodb) == failed*no_such_db* ]] && break; sleep 0.1; done
s=$(state nodb)
[[ $s == *"cannot connect to CockroachDB"*no_such_db* ]] && ok connection_error_named || bad connection_error_named "$s"
all=$(cat "$data/up.log"; curl -s "$api/sources/pgfeed/status"; curl -s "$api/sources/nodb/status")
grep -q -e "$DM_E2E_PG_PASSWORD" -e "$DM_E2E_CRDB_TOKEN" <<<"$all" && bad secrets_not_shown "found" || ok secrets_not_shown
stop

# with --auth the webhook needs a token (what token_env puts in
# webhook_auth_header): without one 401, with one taken
start --auth || exit 1
r=$(post '{"resolved":"'$T7'"}'); [[ $r == 401* ]] && ok auth_needs_token || bad auth_needs_token "$r"
r=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $(cat "$data/dm/admin.token")" \
  --data-binary '{"resolved":"'$T7'"}' "$api/sources/orders/changefeed")
for _ in $(seq 50); do [[ $r != 503 ]] && break; sleep 0.1
  r=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $(cat "$data/dm/admin.token")" \
    --data-binary '{"resolved":"'$T7'"}' "$api/sources/orders/changefeed"); done
[[ $r == 200 ]] && ok auth_token_taken || bad auth_token_taken "$r"
stop
dm_e2e_summary
