#!/usr/bin/env bash
# The Confluent Schema Registry API: error codes and content type checked with
# curl, then the npm client @kafkajs/confluent-schema-registry (installed here
# from the npm registry into the build directory) registers, encodes, decodes.
set -u
bin=${DM_BIN:?}
source "$(dirname "$0")/../harness/lib.sh"
here=$(cd "$(dirname "$0")" && pwd)
pass=0 fail=0
ok() { echo "ok   $1"; pass=$((pass+1)); }
bad() { echo "FAIL $1: ${2:0:400}"; fail=$((fail+1)); }
expect() { # expect NAME PATTERN -- curl args...
  local name=$1 pat=$2; shift 3
  local out; out=$(curl -s -w ' HTTP%{http_code} %{content_type}' "$@" 2>&1)
  if grep -qE -- "$pat" <<<"$out"; then ok "$name"; else bad "$name" "$out"; fi
}
data=$(mktemp -d)
port=$(dm_free_port)
S=http://127.0.0.1:$port
trap 'kill -9 $dm_pid 2>/dev/null; rm -rf "$data"' EXIT
dm_controller_start "$data" "$port" "$data/out.log"
pid=$dm_pid
J='Content-Type: application/vnd.schemaregistry.v1+json'
V1='{"schema": "{\"type\":\"record\",\"name\":\"T\",\"fields\":[{\"name\":\"a\",\"type\":\"int\"}]}"}'
V2='{"schema": "{\"type\":\"record\",\"name\":\"T\",\"fields\":[{\"name\":\"a\",\"type\":\"int\"},{\"name\":\"b\",\"type\":\"string\",\"default\":\"x\"}]}"}'
BAD='{"schema": "{\"type\":\"record\",\"name\":\"T\",\"fields\":[{\"name\":\"a\",\"type\":\"string\"}]}"}'

expect subjects_empty '^\[\] HTTP200 application/vnd.schemaregistry.v1\+json' -- "$S/subjects"
expect register_v1 '^\{"id":1\} HTTP200' -- -X POST -H "$J" --data "$V1" "$S/subjects/t-value/versions"
expect register_same '^\{"id":1\} HTTP200' -- -X POST -H "$J" --data "$V1" "$S/subjects/t-value/versions"
expect same_schema_other_subject '^\{"id":1\} HTTP200' -- -X POST -H "$J" --data "$V1" "$S/subjects/u-value/versions"
expect register_v2 '^\{"id":2\} HTTP200' -- -X POST -H "$J" --data "$V2" "$S/subjects/t-value/versions"
expect incompatible_409 '"error_code":409.*incompatible.* HTTP409' -- -X POST -H "$J" --data "$BAD" "$S/subjects/t-value/versions"
expect invalid_schema_42201 '"error_code":42201.* HTTP422' -- -X POST -H "$J" --data '{"schema": "{\"type\": \"nope\"}"}' "$S/subjects/t-value/versions"
expect not_json_42201 '"error_code":42201.* HTTP422' -- -X POST -H "$J" --data 'garbage' "$S/subjects/t-value/versions"
expect versions '^\[1,2\] HTTP200' -- "$S/subjects/t-value/versions"
expect latest '"subject":"t-value","id":2,"version":2' -- "$S/subjects/t-value/versions/latest"
expect version_schema '^\{"type":"record".* HTTP200' -- "$S/subjects/t-value/versions/1/schema"
expect subject_404 '"error_code":40401.* HTTP404' -- "$S/subjects/nope/versions"
expect version_404 '"error_code":40402.* HTTP404' -- "$S/subjects/t-value/versions/9"
expect bad_version_42202 '"error_code":42202.* HTTP422' -- "$S/subjects/t-value/versions/zero"
expect schema_by_id '"schema":"\{.*HTTP200' -- "$S/schemas/ids/2"
expect schema_id_404 '"error_code":40403.* HTTP404' -- "$S/schemas/ids/77"
expect lookup '"id":1,"version":1' -- -X POST -H "$J" --data "$V1" "$S/subjects/t-value"
expect lookup_404 '"error_code":40403' -- -X POST -H "$J" --data "$BAD" "$S/subjects/t-value"
expect compat_false '^\{"is_compatible":false' -- -X POST -H "$J" --data "$BAD" "$S/compatibility/subjects/t-value/versions/latest"
expect compat_verbose '"messages":\[".+' -- -X POST -H "$J" --data "$BAD" "$S/compatibility/subjects/t-value/versions/latest?verbose=true"
expect compat_true '^\{"is_compatible":true' -- -X POST -H "$J" --data "$V2" "$S/compatibility/subjects/t-value/versions/1"
expect config_default '"compatibilityLevel":"BACKWARD"' -- "$S/config"
expect config_put '"compatibility":"NONE"' -- -X PUT -H "$J" --data '{"compatibility": "NONE"}' "$S/config/t-value"
expect config_subject '"compatibilityLevel":"NONE"' -- "$S/config/t-value"
expect config_bad_42203 '"error_code":42203' -- -X PUT -H "$J" --data '{"compatibility": "SOMETIMES"}' "$S/config"
expect now_compatible '^\{"id":3\}' -- -X POST -H "$J" --data "$BAD" "$S/subjects/t-value/versions"
expect mode '"mode":"READWRITE"' -- "$S/mode"
expect mode_readonly '"mode":"READONLY"' -- -X PUT -H "$J" --data '{"mode": "READONLY"}' "$S/mode"
expect readonly_42205 '"error_code":42205' -- -X POST -H "$J" --data "$V1" "$S/subjects/w-value/versions"
expect mode_back '"mode":"READWRITE"' -- -X PUT -H "$J" --data '{"mode": "READWRITE"}' "$S/mode"
expect soft_delete_version '^3 HTTP200' -- -X DELETE "$S/subjects/t-value/versions/3"
expect after_soft_delete '^\[1,2\]' -- "$S/subjects/t-value/versions"
expect hard_delete_version '^3 HTTP200' -- -X DELETE "$S/subjects/t-value/versions/3?permanent=true"
expect soft_delete_subject '^\[1\] HTTP200' -- -X DELETE "$S/subjects/u-value"
expect subjects_after '^\["t-value"\]' -- "$S/subjects"
expect subjects_deleted '"u-value"' -- "$S/subjects?deleted=true"
expect id_still_resolves '"schema":' -- "$S/schemas/ids/1"

# The CLI on the same registry.
printf '{"type":"record","name":"C","fields":[{"name":"a","type":"int"}]}' >"$data/c1.avsc"
printf '{"type":"record","name":"C","fields":[{"name":"a","type":"string"}]}' >"$data/c2.avsc"
out=$("$bin" schema register c-value "$data/c1.avsc" --server "$S" 2>&1)
[[ $out == 'registered c-value: id '* ]] && ok cli_register || bad cli_register "$out"
out=$("$bin" schema list --server "$S" 2>&1)
[[ $out == *c-value* ]] && ok cli_list || bad cli_list "$out"
out=$("$bin" schema show c-value --server "$S" 2>&1)
[[ $out == *'version: 1'* && $out == *'"name": "C"'* ]] && ok cli_show || bad cli_show "$out"
out=$("$bin" schema check c-value "$data/c2.avsc" --server "$S" 2>&1); rc=$?
[[ $rc -eq 1 && $out == incompatible* ]] && ok cli_check_incompatible || bad cli_check_incompatible "$rc $out"
out=$("$bin" schema check c-value "$data/c1.avsc" --server "$S" 2>&1); rc=$?
[[ $rc -eq 0 && $out == compatible* ]] && ok cli_check_compatible || bad cli_check_compatible "$rc $out"
out=$("$bin" schema show nope --server "$S" 2>&1); rc=$?
[[ $rc -eq 1 && $out == *"Subject 'nope' not found"* ]] && ok cli_show_missing || bad cli_show_missing "$rc $out"

# The npm client, as applications use it.
npm_dir=${DM_BINARY_DIR:-/tmp}/registry_client
mkdir -p "$npm_dir"
cp "$here/registry_client/package.json" "$here/registry_client/test.js" "$npm_dir/"
if [[ ! -d $npm_dir/node_modules/@kafkajs/confluent-schema-registry ]]; then
  (cd "$npm_dir" && npm install --no-audit --no-fund --loglevel=error >"$npm_dir/install.log" 2>&1) \
    || bad npm_install "$(tail -5 "$npm_dir/install.log")"
fi
if out=$(cd "$npm_dir" && DATAMESH_SERVER=$S node test.js 2>&1); then ok npm_client; else bad npm_client "$out"; fi
echo "$out" | sed 's/^/    /'

kill -TERM $pid; wait $pid
echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
