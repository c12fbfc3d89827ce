#!/usr/bin/env bash
# `datamesh up` serves GET /healthz, refuses a second controller on the same
# data directory, answers unknown paths with a JSON 404, refuses an oversized
# body, and stops cleanly on SIGTERM.
set -u
bin=${DM_BIN:?}
source "$(dirname "$0")/../harness/lib.sh"
pass=0 fail=0
ok() { echo "ok   $1"; pass=$((pass+1)); }
bad() { echo "FAIL $1: $2"; fail=$((fail+1)); }
data=$(mktemp -d)
port=$(dm_free_port)
trap 'kill -9 $dm_pid 2>/dev/null; rm -rf "$data"' EXIT
dm_controller_start "$data" "$port" "$data/out.log"
pid=$dm_pid

body=$(curl -s -w ' %{http_code}' "http://127.0.0.1:$port/healthz")
[[ $body == *'"status":"ok"'*' 200' ]] && ok healthz || bad healthz "$body"

body=$(curl -s -w ' %{http_code}' "http://127.0.0.1:$port/nope")
[[ $body == *'"error_code":40400'*' 404' ]] && ok unknown_path_404 || bad unknown_path_404 "$body"

body=$(curl -s -w ' %{http_code}' -X POST "http://127.0.0.1:$port/healthz")
[[ $body == *' 405' ]] && ok wrong_method_405 || bad wrong_method_405 "$body"

code=$(head -c 20000000 /dev/zero | curl -s -o /dev/null -w '%{http_code}' -X POST --data-binary @- "http://127.0.0.1:$port/api/v1/apply")
[[ $code == 413 ]] && ok huge_body_413 || bad huge_body_413 "$code"

out=$("$bin" up --data "$data" --listen "127.0.0.1:0" 2>&1); rc=$?
[[ $rc -eq 1 && $out == *"in use by another datamesh controller"* ]] && ok second_controller_refused || bad second_controller_refused "$rc $out"

out=$("$bin" up --data "$(mktemp -d)" --listen "127.0.0.1:$port" 2>&1); rc=$?
[[ $rc -eq 1 && $out == *"cannot listen on 127.0.0.1:$port"* ]] && ok port_in_use || bad port_in_use "$rc $out"

kill -TERM $pid
for _ in $(seq 100); do kill -0 $pid 2>/dev/null || break; sleep 0.05; done
if kill -0 $pid 2>/dev/null; then bad clean_stop "still running"; else wait $pid; rc=$?; [[ $rc -eq 0 ]] && ok clean_stop || bad clean_stop "exit $rc"; fi
grep -q 'stopping' "$data/out.log" && ok stop_logged || bad stop_logged "$(cat "$data/out.log")"
echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
