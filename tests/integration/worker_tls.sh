#!/usr/bin/env bash
# needs:kafka-mock — `datamesh worker` against a controller that serves HTTPS (a
# self-signed certificate) with --auth, authenticated by a token of the narrow
# worker role: the worker trusts only the certificate it is given, fetches only
# its team's pipelines' tasks, runs them to the end (every event reaches the
# derived source), and its token can do nothing else (apply, records, tokens,
# deleting schemas: 403). Without the certificate or the token the worker stops
# with an error that says which; the token never appears in any log.
set -u
bin=${DM_BIN:?}
source "$(dirname "$0")/../harness/lib.sh"
pass=0 fail=0
ok() { echo "ok   $1"; pass=$((pass+1)); }
bad() { echo "FAIL $1: ${2:0:1500}"; fail=$((fail+1)); }
data=$(mktemp -d)
port=$(dm_free_port)
S=https://127.0.0.1:$port
brokers=${DM_KAFKA_BROKERS:?}
pid= w=
trap 'kill -9 $pid $w 2>/dev/null; rm -rf "$data"' EXIT
py() { /usr/bin/python3 -c "$@"; }

for t in plays us others; do mk_topic $t 2 || exit 1; done
mk_topic pipeline.us.dlq 1 && mk_topic pipeline.others.dlq 1 || exit 1
mk_topic pipeline.us.replay 2 && mk_topic pipeline.others.replay 2 || exit 1 # dead letters put back
mk_topic _datamesh.audit 1 || exit 1 # the controller's audit log (the mock cannot create topics)

openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
  -addext "subjectAltName=IP:127.0.0.1" -keyout "$data/key.pem" -out "$data/cert.pem" 2>"$data/openssl.log" \
  || { bad self_signed_cert "$(cat "$data/openssl.log")"; exit 1; }
"$bin" up --data "$data/dm" --listen "127.0.0.1:$port" --auth --tls-cert "$data/cert.pem" \
  --tls-key "$data/key.pem" --transport "kafka://$brokers" --external-workers >"$data/up.log" 2>&1 &
pid=$!
for _ in $(seq 200); do curl -fs --cacert "$data/cert.pem" "$S/healthz" >/dev/null && break; sleep 0.05; done
ADMIN=$(cat "$data/dm/admin.token")
export DATAMESH_SERVER=$S DATAMESH_CACERT=$data/cert.pem

N=1000
cat >"$data/spec.yaml" <<YAML
kind: Source
metadata: {name: plays, owner: growth}
spec:
  connector: datagen
  key: [id]
  partitions: 2
  schema: {type: record, name: Play, fields: [{name: id, type: long}, {name: amount, type: double}]}
  config: {rate: 500, max_events: $N}
---
kind: Pipeline
metadata: {name: us, owner: growth}
spec:
  from: [plays]
  steps: [{project: [id, "amount * 100 AS cents"]}]
  to: [{source: us}]
---
kind: Pipeline
metadata: {name: others, owner: web}
spec:
  from: [plays]
  steps: [{filter: "id < 0"}]
  to: [{source: others}]
YAML
DATAMESH_TOKEN=$ADMIN "$bin" apply -f "$data/spec.yaml" >"$data/apply.out" 2>&1 \
  && ok apply_over_tls || bad apply_over_tls "$(cat "$data/apply.out" "$data/up.log")"
WT=$(DATAMESH_TOKEN=$ADMIN "$bin" token create --owner growth --role worker 2>"$data/tok.err" | tail -1)
[[ $WT == dmt_* ]] && ok worker_token_created || bad worker_token_created "$WT $(cat "$data/tok.err")"

# What the worker token may and may not do.
code() { curl -s -o "$data/body" -w '%{http_code}' --cacert "$data/cert.pem" -H "Authorization: Bearer $WT" "$@"; }
tasks=$(curl -s --cacert "$data/cert.pem" -H "Authorization: Bearer $WT" "$S/api/v1/workers/tasks")
[[ $tasks == *'"pipeline":"us"'* && $tasks != *'"pipeline":"others"'* ]] \
  && ok worker_gets_only_its_teams_tasks || bad worker_gets_only_its_teams_tasks "$tasks"
all=$(curl -s --cacert "$data/cert.pem" -H "Authorization: Bearer $ADMIN" "$S/api/v1/workers/tasks")
[[ $all == *'"pipeline":"us"'* && $all == *'"pipeline":"others"'* ]] && ok admin_gets_every_task || bad admin_gets_every_task "$all"
c=$(code -X POST --data-binary @"$data/spec.yaml" "$S/api/v1/apply")
[[ $c == 403 ]] && grep -q "worker" "$data/body" && ok worker_cannot_apply || bad worker_cannot_apply "$c $(cat "$data/body")"
c=$(code "$S/api/v1/sources/plays/records")
[[ $c == 403 ]] && ok worker_cannot_read_records || bad worker_cannot_read_records "$c $(cat "$data/body")"
c=$(code "$S/api/v1/sources")
[[ $c == 403 ]] && ok worker_cannot_list_catalog || bad worker_cannot_list_catalog "$c $(cat "$data/body")"
c=$(code -X DELETE "$S/subjects/plays-value")
[[ $c == 403 ]] && ok worker_cannot_delete_subjects || bad worker_cannot_delete_subjects "$c $(cat "$data/body")"
c=$(code "$S/schemas/ids/1")
[[ $c == 200 ]] && ok worker_reads_schemas || bad worker_reads_schemas "$c $(cat "$data/body")"

# Without the certificate, and without a token: the worker says which.
out=$(env -u DATAMESH_CACERT DATAMESH_TOKEN=$WT timeout 60 "$bin" worker --controller "$S" --id nocert 2>&1)
rc=$?
[[ $rc -ne 0 && $rc -ne 124 && $out =~ (SSL|certificate) ]] && ok worker_untrusted_cert_refused || bad worker_untrusted_cert_refused "rc=$rc $out"
out=$(env -u DATAMESH_TOKEN timeout 60 "$bin" worker --controller "$S" --id notoken 2>&1)
rc=$?
[[ $rc -ne 0 && $rc -ne 124 && ( $out == *401* || $out == *token* ) ]] && ok worker_without_token_refused || bad worker_without_token_refused "rc=$rc $out"

# The worker runs its pipeline over TLS to the end.
DATAMESH_TOKEN=$WT "$bin" worker --controller "$S" --id wt >"$data/w.log" 2>&1 &
w=$!
running=
for _ in $(seq 300); do
  st=$(curl -s --cacert "$data/cert.pem" -H "Authorization: Bearer $ADMIN" "$S/api/v1/pipelines/us/status")
  [[ $st == *'"state":"running"'* && $st == *'"worker":"wt"'* ]] && { running=1; break; }
  sleep 0.1
done
[[ -n $running ]] && ok worker_runs_over_tls || bad worker_runs_over_tls "$st $(tail -20 "$data/w.log")"
st=$(curl -s --cacert "$data/cert.pem" -H "Authorization: Bearer $ADMIN" "$S/api/v1/pipelines/others/status")
[[ $st != *'"worker":"wt"'* ]] && ok other_teams_pipeline_not_run || bad other_teams_pipeline_not_run "$st"
got=
for _ in $(seq 60); do
  got=$(DATAMESH_TOKEN=$ADMIN "$bin" consume us --from-beginning 2>/dev/null | py 'import json,sys
ids=set(json.loads(l)["id"] for l in sys.stdin)
print(len(ids))')
  [[ $got == "$N" ]] && break
  sleep 1
done
[[ $got == "$N" ]] && ok every_event_through_worker || bad every_event_through_worker "distinct ids: $got; $(tail -20 "$data/w.log")"
kill -TERM "$w"; wait "$w"; rc=$?; w=
[[ $rc -eq 0 ]] && ok worker_stops_cleanly || bad worker_stops_cleanly "exit $rc: $(tail -20 "$data/w.log")"

# Tokens in no log.
leak=$(grep -lF -e "$WT" -e "$ADMIN" "$data/up.log" "$data/w.log" "$data/apply.out" 2>/dev/null)
[[ -z $leak ]] && ok no_token_in_logs || bad no_token_in_logs "$leak"
kill -TERM "$pid"; wait "$pid"; rc=$?; pid=
[[ $rc -eq 0 ]] && ! grep -q Sanitizer "$data/up.log" && ok controller_stops_cleanly || bad controller_stops_cleanly "exit $rc $(tail -20 "$data/up.log")"
echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
