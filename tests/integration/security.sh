#!/usr/bin/env bash
# Security end to end (docs/security.md): `datamesh up --auth` writes the first
# admin token, the CLI sends --token / $DATAMESH_TOKEN, `token create|list|revoke`,
# roles and owner teams refused with reasons, `datamesh audit`, basic auth for the
# npm Confluent registry client, tokens never in logs, answers or errors, no
# non-loopback listen without --auth, TLS with a self-signed certificate (curl and
# the CLI), and the limit on failed authentication (last: it blocks this client).
set -u
bin=${DM_BIN:?}
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../harness/lib.sh"
dm_e2e_setup
S=$DATAMESH_SERVER
check() { # check NAME WANT_RC PATTERN -- CMD...
  local name=$1 want=$2 pat=$3; shift 4
  local out rc; out=$("$@" 2>&1); rc=$?
  echo "$out" >>"$data/answers"
  if [[ $rc -eq $want ]] && grep -qE -- "$pat" <<<"$out"; then ok "$name"; else bad "$name" "exit $rc: $out"; fi
}
http() { # http METHOD PATH [curl args...]: prints the body and " HTTP<code>"
  local m=$1 p=$2; shift 2
  local out; out=$(curl -s -w ' HTTP%{http_code}' -X "$m" "$@" "$S$p"); echo "$out" >>"$data/answers"; echo "$out"
}

# ---- no --auth: loopback only ----
out=$("$bin" up --data "$data/open" --listen "0.0.0.0:$port" 2>&1); rc=$?
[[ $rc -eq 1 && $out == *'refusing to listen on 0.0.0.0'*'--auth'* ]] && ok refuses_public_without_auth || bad refuses_public_without_auth "$rc $out"
p2=$(dm_free_port)
"$bin" up --data "$data/open" --listen "0.0.0.0:$p2" --insecure >"$data/open.log" 2>&1 &
ipid=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$p2/healthz" >/dev/null && break; sleep 0.05; done
curl -fs "http://127.0.0.1:$p2/healthz" >/dev/null && ok insecure_allows_public || bad insecure_allows_public "$(cat "$data/open.log")"
kill -TERM $ipid; wait $ipid || bad insecure_clean_stop "$(tail -5 "$data/open.log")"
grep -q Sanitizer "$data/open.log" && bad insecure_sanitizer "$(grep -A5 Sanitizer "$data/open.log")"

# ---- first start with --auth ----
start --auth
tokfile=$data/dm/admin.token
[[ -f $tokfile && $(stat -c %a "$tokfile") == 600 ]] && ok admin_token_0600 || bad admin_token_0600 "$(ls -l "$tokfile" 2>&1)"
ADMIN=$(cat "$tokfile")
[[ $ADMIN == dmt_* ]] && ok admin_token_format || bad admin_token_format "$ADMIN"
grep -q "admin.token (mode 0600)" "$data/up.log" && ok logs_token_path || bad logs_token_path "$(cat "$data/up.log")"
check healthz_public 0 '"status":"ok"' -- curl -s "$S/healthz"
r=$(http GET /api/v1/sources -i); [[ $r == *'HTTP/1.1 401'* && $r == *'WWW-Authenticate: Bearer'* && $r == *'authentication required'* ]] && ok no_token_401 || bad no_token_401 "$r"
check cli_without_token 1 'authentication required.*--token or \$DATAMESH_TOKEN' -- "$bin" get sources
check cli_token_flag 0 '^NAME' -- "$bin" --token "$ADMIN" get sources
check cli_token_env 0 '^NAME' -- env DATAMESH_TOKEN="$ADMIN" "$bin" get sources
check cli_bad_token 1 'malformed token' -- "$bin" get sources --token=nope

# ---- tokens ----
export DATAMESH_TOKEN=$ADMIN
out=$("$bin" token create --owner growth --role editor --expires 30d --description "growth ci" 2>&1)
GROWTH=$(tail -1 <<<"$out")
[[ $GROWTH == dmt_* && $out == *'for team growth, role editor, expires 20'* ]] && ok token_create_last_line || bad token_create_last_line "$out"
VIEWER=$("$bin" token create --owner web --role viewer | tail -1)
WEB=$("$bin" token create --owner web --role editor | tail -1)
check token_create_bad_role 1 'role must be viewer, editor, admin or worker' -- "$bin" token create --owner x --role root
check token_create_bad_expiry 1 'expires must be a duration' -- "$bin" token create --owner x --role viewer --expires soon
check token_create_bad_team 1 'is not a team name' -- "$bin" token create --owner 'Bad Team' --role viewer
check token_list 0 'growth +editor +active .*growth ci' -- "$bin" token list
check token_list_as_editor 1 'needs an admin; token [0-9a-f]+ is editor' -- "$bin" token list --token "$GROWTH"

cat >"$data/growth.yaml" <<'YAML'
kind: Source
metadata: {name: signups, owner: growth, labels: {sensitive: true}}
spec:
  connector: ingest
  schema: {type: record, name: Signup, fields: [{name: id, type: long}, {name: email, type: string}]}
---
kind: Source
metadata: {name: visits, owner: growth, labels: {access: private}}
spec:
  connector: ingest
  schema: {type: record, name: Visit, fields: [{name: id, type: long}]}
YAML
cat >"$data/web.yaml" <<'YAML'
kind: Pipeline
metadata: {name: web-signups, owner: web}
spec:
  from: [signups]
  to: [{source: web-signups}]
YAML
check editor_applies_own 0 'create +Source signups' -- "$bin" apply -f "$data/growth.yaml" --token "$GROWTH"
check viewer_cannot_apply 1 'needs an editor or admin; token [0-9a-f]+ is a viewer' -- "$bin" apply -f "$data/growth.yaml" --token "$VIEWER"
check other_team_cannot_apply 1 "metadata.owner is 'growth'; token [0-9a-f]+ acts for team 'web'" -- "$bin" apply -f "$data/growth.yaml" --token "$WEB"
check other_team_cannot_delete 1 "Source signups is owned by team 'growth'" -- "$bin" delete sources signups --token "$WEB"
check viewer_reads_specs 0 'signups +growth' -- "$bin" get sources --token "$VIEWER"
check mesh_reads_other_team 0 'create +Pipeline web-signups' -- "$bin" apply -f "$data/web.yaml" --token "$WEB"
sed -i 's/from: \[signups\]/from: [visits]/; s/web-signups/web-visits/g' "$data/web.yaml"
check private_source_refused 1 "reads source 'visits', which team 'growth' keeps private" -- "$bin" apply -f "$data/web.yaml" --token "$WEB"
r=$(http POST /api/v1/sources/signups/events -H "Authorization: Bearer $GROWTH" --data '[{"id":1,"email":"a@example.com"}]')
[[ $r == '{"accepted":1} HTTP200' ]] && ok owner_ingests || bad owner_ingests "$r"
r=$(http POST /api/v1/sources/signups/events -H "Authorization: Bearer $WEB" --data '[{"id":2,"email":"b@example.com"}]')
[[ $r == *"owned by team 'growth'"*HTTP403 ]] && ok other_team_cannot_ingest || bad other_team_cannot_ingest "$r"
check sensitive_records_refused 1 "source 'signups' is sensitive: its records are for team 'growth' and admins" -- "$bin" consume signups --from-beginning -n 1 --token "$VIEWER"
check sensitive_records_owner 0 'a@example.com' -- timeout 20 "$bin" consume signups --from-beginning -n 1 --token "$GROWTH"
check sensitive_records_admin 0 'a@example.com' -- timeout 20 "$bin" consume signups --from-beginning -n 1

# ---- basic auth: the Confluent registry clients ----
r=$(http GET /subjects -u "anyone:$VIEWER"); [[ $r == *'signups-value'*HTTP200 ]] && ok basic_auth_registry || bad basic_auth_registry "$r"
r=$(http GET /subjects); [[ $r == *HTTP401 ]] && ok registry_needs_auth || bad registry_needs_auth "$r"
r=$(http POST /subjects/signups-value/versions -u "x:$WEB" -H 'Content-Type: application/vnd.schemaregistry.v1+json' --data '{"schema":"\"string\""}')
[[ $r == *"owned by team 'growth'"*HTTP403 ]] && ok registry_subject_owner || bad registry_subject_owner "$r"
npm_dir=${DM_BINARY_DIR:-/tmp}/registry_client
mkdir -p "$npm_dir"
cp "$here/registry_client/package.json" "$here/registry_client/test.js" "$npm_dir/"
if [[ ! -d $npm_dir/node_modules/@kafkajs/confluent-schema-registry ]]; then
  (cd "$npm_dir" && npm install --no-audit --no-fund --loglevel=error >"$npm_dir/install.log" 2>&1) \
    || bad npm_install "$(tail -5 "$npm_dir/install.log")"
fi
if out=$(cd "$npm_dir" && DATAMESH_SERVER=$S DATAMESH_REGISTRY_TOKEN=$GROWTH node test.js 2>&1); then ok npm_client_basic_auth; else bad npm_client_basic_auth "$out"; fi
out=$(cd "$npm_dir" && DATAMESH_SERVER=$S node test.js 2>&1) && bad npm_client_without_token "$out" || ok npm_client_without_token

# ---- revoke and expiry ----
gid=$("$bin" token list -o json | python3 -c 'import json,sys; print([t["id"] for t in json.load(sys.stdin) if t["owner"]=="growth"][0])')
check token_revoke 0 "revoked token $gid" -- "$bin" token revoke "$gid"
check revoked_refused 1 "token $gid was revoked" -- "$bin" get sources --token "$GROWTH"
check revoke_twice 1 'not found \(or already revoked\)' -- "$bin" token revoke "$gid"
check token_list_revoked 0 "$gid +growth +editor +revoked" -- "$bin" token list
SHORT=$("$bin" token create --owner web --role viewer --expires 1s | tail -1)
sleep 1.5
check expired_refused 1 'token [0-9a-f]+ expired' -- "$bin" get sources --token "$SHORT"

# ---- audit ----
check audit_apply 0 'growth +editor +127\.0\.0\.1 +POST +/api/v1/apply +200 +ok +apply Source signups, Source visits' -- "$bin" audit
check audit_denied 0 "web +editor .* +403 +denied .*owned by team 'growth'" -- "$bin" audit --outcome denied --who web
check audit_sensitive_read 0 'read records of sensitive source signups' -- "$bin" audit --who growth
check audit_revoke 0 "revoke token $gid" -- "$bin" audit --since 1h
check audit_json 0 '"outcome": "ok"' -- "$bin" audit -o json -n 5
check audit_unknown_token 0 '^[0-9TZ:-]+ +- +- +none +127\.0\.0\.1 +GET +/api/v1/sources +401 +denied +malformed token' -- "$bin" audit --outcome denied
check audit_viewer_refused 1 'needs an admin' -- "$bin" audit --token "$VIEWER"

# ---- hostile Authorization headers: answered, never a crash ----
big=$(head -c 60000 /dev/zero | tr '\0' 'a')
r=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $big" "$S/api/v1/sources")
[[ $r == 401 || $r == 431 || $r == 413 || $r == 400 ]] && ok huge_token_refused || bad huge_token_refused "$r"
r=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Basic $(head -c 3000 /dev/zero | tr '\0' 'A')" "$S/api/v1/sources")
[[ $r == 401 ]] && ok huge_basic_refused || bad huge_basic_refused "$r"
r=$(printf 'GET /api/v1/sources HTTP/1.1\r\nHost: x\r\nAuthorization: Basic \x01\xff\x00zz\r\n\r\n' | timeout 5 python3 -c '
import socket,sys; s=socket.create_connection(("127.0.0.1",'"$port"')); s.sendall(sys.stdin.buffer.read()); print(s.recv(100).decode(errors="replace").split("\r\n")[0])')
[[ $r == 'HTTP/1.1 4'* ]] && ok binary_header_refused || bad binary_header_refused "$r"
check alive_after_hostile 0 '"status":"ok"' -- curl -s "$S/healthz"

# ---- tokens never in logs, answers or errors ----
leaks=""
for t in "$ADMIN" "$GROWTH" "$VIEWER" "$WEB" "$SHORT"; do
  grep -qF "$t" "$data/up.log" && leaks+=" log"
  grep -qF "$t" "$data/answers" && leaks+=" answers"
  curl -s -H "Authorization: Bearer $ADMIN" "$S/api/v1/audit?limit=10000" | grep -qF "$t" && leaks+=" audit"
  curl -s -H "Authorization: Bearer $ADMIN" "$S/api/v1/tokens" | grep -qF "$t" && leaks+=" list"
done
[[ -z $leaks ]] && ok tokens_never_leak || bad tokens_never_leak "$leaks"
grep -qF "$ADMIN" "$data/dm/controller.db" && bad token_not_stored "admin token in controller.db" || ok token_not_stored
stop

# ---- TLS with a self-signed certificate ----
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
  -addext "subjectAltName=IP:127.0.0.1" -keyout "$data/key.pem" -out "$data/cert.pem" 2>"$data/openssl.log" \
  || bad self_signed_cert "$(cat "$data/openssl.log")"
tport=$(dm_free_port)
"$bin" up --data "$data/dm" --listen "127.0.0.1:$tport" --auth --tls-cert "$data/cert.pem" --tls-key "$data/key.pem" >"$data/tls.log" 2>&1 &
tpid=$!
T=https://127.0.0.1:$tport
for _ in $(seq 100); do curl -fs --cacert "$data/cert.pem" "$T/healthz" >/dev/null && break; sleep 0.05; done
check tls_curl 0 '"status":"ok"' -- curl -fs --cacert "$data/cert.pem" "$T/healthz"
check tls_untrusted_refused 60 '' -- curl -s "$T/healthz"
out=$(curl -s -m 5 "http://127.0.0.1:$tport/healthz" 2>&1); [[ $out != *'"status":"ok"'* ]] && ok tls_no_plain_http || bad tls_no_plain_http "$out"
check tls_cli 0 'signups +growth' -- "$bin" get sources --server "$T" --cacert "$data/cert.pem"
check tls_cli_env 0 'signups +growth' -- env DATAMESH_CACERT="$data/cert.pem" "$bin" get sources --server "$T"
check tls_cli_untrusted 1 'cannot reach the controller at https://127.0.0.1:[0-9]+: .*(SSL|certificate)' -- "$bin" get sources --server "$T"
check tls_bad_key 1 'tls-key .*not a PEM file' -- "$bin" up --data "$data/x" --listen 127.0.0.1:0 --tls-cert "$data/cert.pem" --tls-key "$data/up.log"
check tls_half 1 '--tls-cert and --tls-key go together' -- "$bin" up --data "$data/x" --listen 127.0.0.1:0 --tls-cert "$data/cert.pem"
kill -TERM $tpid; wait $tpid || bad tls_clean_stop "$(tail -5 "$data/tls.log")"
grep -qF "$ADMIN" "$data/tls.log" && bad tls_log_no_token "leak" || ok tls_log_no_token
grep -q Sanitizer "$data/tls.log" && bad tls_sanitizer "$(grep -A5 Sanitizer "$data/tls.log")"

# ---- failed authentication is limited (last: it blocks 127.0.0.1 for a minute) ----
start --auth
codes=""
for i in $(seq 11); do codes+=" $(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer dmt_000000000000_0000000000000000000000000000000000000000000000000000000000000000' "$S/api/v1/sources")"; done
[[ $codes == ' 401 401 401 401 401 401 401 401 401 401 429' ]] && ok failed_auth_limited || bad failed_auth_limited "$codes"
r=$(curl -s -i -H "Authorization: Bearer $ADMIN" "$S/api/v1/sources")
[[ $r == *'HTTP/1.1 429'* && $r == *'Retry-After: '* && $r == *'too many failed authentications from 127.0.0.1'* ]] && ok limit_blocks_client || bad limit_blocks_client "$r"
check healthz_still_public 0 '"status":"ok"' -- curl -s "$S/healthz"
stop
dm_e2e_summary
