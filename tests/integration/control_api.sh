#!/usr/bin/env bash
# End to end through HTTP and the CLI against a started controller: apply
# (dry run, create, idempotent re-apply, update), get/describe in every format,
# catalog search, refused and allowed deletes, bad specs with positions,
# secrets never echoed, hostile requests, and state surviving a restart.
set -u
bin=${DM_BIN:?}
source "$(dirname "$0")/../harness/lib.sh"
src_specs=$(cd "$(dirname "$0")/specs" && pwd)
pass=0 fail=0
ok() { echo "ok   $1"; pass=$((pass+1)); }
bad() { echo "FAIL $1: ${2:0:400}"; fail=$((fail+1)); }
check() { # check NAME WANT_RC PATTERN -- CMD...
  local name=$1 want=$2 pat=$3; shift 4
  local out rc; out=$("$@" 2>&1); rc=$?
  if [[ $rc -eq $want ]] && grep -qE -- "$pat" <<<"$out"; then ok "$name"; else bad "$name" "exit $rc: $out"; fi
}
data=$(mktemp -d)
port=$(dm_free_port)
export DATAMESH_SERVER=http://127.0.0.1:$port
pid=
start() { dm_controller_start "$data" "$port" "$data/out.log"; pid=$dm_pid; }
stop() { # a clean stop: exit 0 and no sanitizer report in the log
  kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; local rc=$?
  if [[ $rc -ne 0 ]] || grep -q "Sanitizer" "$data/out.log"; then bad clean_stop "exit $rc: $(grep -A5 Sanitizer "$data/out.log" | head -20)"; fi
}
trap 'kill -9 $pid 2>/dev/null; rm -rf "$data"' EXIT
# The specs, with the file sink writing inside the test's directory.
specs=$data/specs
mkdir -p "$specs"
cp "$src_specs"/* "$specs/"
sed -i "s|path: out/us-plays.jsonl|path: $data/out/us-plays.jsonl|" "$specs/demo.yaml"
start

check dry_run_plan 0 '\(dry run\) create +Source us-plays — derived: published by pipeline us-plays' -- "$bin" apply -f "$specs/demo.yaml" --dry-run
check dry_run_topics 0 'create +Topic plays — 4 partition\(s\)' -- "$bin" apply -f "$specs/demo.yaml" --dry-run
check dry_run_schemas 0 'register +Schema plays-key — the key fields' -- "$bin" apply -f "$specs/demo.yaml" --dry-run
check dry_run_tasks 0 'create +Tasks us-plays — one per partition of plays' -- "$bin" apply -f "$specs/demo.yaml" --dry-run
check dry_run_changes_nothing 0 '^NAME' -- "$bin" get sources
[[ $("$bin" get sources | wc -l) -eq 1 ]] && ok dry_run_empty || bad dry_run_empty "$("$bin" get sources)"
check apply_creates 0 'create +Pipeline us-plays' -- "$bin" apply -f "$specs/demo.yaml"
check apply_idempotent 0 'unchanged Pipeline us-plays' -- "$bin" apply -f "$specs/demo.yaml"
out=$("$bin" apply -f "$specs/demo.yaml")
grep -q create <<<"$out" && bad reapply_no_create "$out" || ok reapply_no_create
check apply_dir 0 'unchanged Source plays' -- "$bin" apply -f "$specs"
check get_sources_table 0 'us-plays +growth +derived +pipeline:us-plays' -- "$bin" get sources
check consumers_listed 0 'plays +playback-team +datagen +connector:datagen +pipeline:us-plays' -- "$bin" get sources
check schema_file_inlined 0 '"name": "device"' -- "$bin" get sources plays -o json
check describe_yaml 0 '^  name: us-plays' -- "$bin" describe pipelines us-plays
check get_yaml 0 'filter: "country = .US. AND amount > 0"' -- "$bin" get pipelines -o yaml
# The plugins endpoint answers what `datamesh plugins -o json` prints.
check plugins_api 0 '"name":"route"' -- curl -s "$DATAMESH_SERVER/api/v1/plugins"
if diff <(curl -s "$DATAMESH_SERVER/api/v1/plugins" | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin), sort_keys=True))') \
        <("$bin" plugins -o json | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin), sort_keys=True))') >/dev/null; then
  ok plugins_api_equals_cli
else
  bad plugins_api_equals_cli "GET /api/v1/plugins differs from datamesh plugins -o json"
fi
# A step kind this version refuses names the ones it has, from the registry.
cat > "$data/sqlstep.yaml" <<'YAML'
kind: Pipeline
metadata: {name: sqlstep}
spec:
  from: [plays]
  steps:
    - processor: {name: my-scorer}
  to: [{source: sqlstep-out}]
YAML
check processor_step_needs_its_object 1 "spec.steps\[0\]\.processor\.name: no Processor named my-scorer" -- "$bin" apply -f "$data/sqlstep.yaml"
check search_field 0 '"name":"movies"' -- curl -s "$DATAMESH_SERVER/api/v1/catalog?q=title"
out=$(curl -s "$DATAMESH_SERVER/api/v1/catalog?q=gold")
[[ $out == *'"plays"'* && $out != *'"movies"'* ]] && ok search_label || bad search_label "$out"
check search_owner 0 'catalog-team' -- curl -s "$DATAMESH_SERVER/api/v1/catalog?q=CATALOG"

sed 's/every play event/every play, worldwide/' "$specs/demo.yaml" >"$data/demo2.yaml"
cp "$specs/play.avsc" "$data/"
check apply_update 0 'restart +Pipeline us-plays — reads the updated source plays; keeps its position' -- "$bin" apply -f "$data/demo2.yaml"
check generation_bumped 0 '"generation": 2' -- "$bin" get sources plays -o json

check delete_refused 1 "Source 'plays' is still used by pipelines: us-plays" -- "$bin" delete sources plays
check delete_derived_refused 1 "derived: it is published by pipeline us-plays" -- "$bin" delete sources us-plays
check delete_missing 1 "Pipeline 'nope' not found" -- "$bin" delete pipelines nope
check get_unknown_kind 2 "unknown kind 'widgets'" -- "$bin" get widgets

printf 'kind: Source\nmetadata: {name: bad}\nspec:\n  connector: datagen\n  schema: {type: record, name: B, fields: []}\n  config: {rate: -5}\n' >"$data/bad.yaml"
check bad_spec_position 1 "bad.yaml:6:18: spec.config.rate: -5 is out of range" -- "$bin" apply -f "$data/bad.yaml"
cat "$data/demo2.yaml" >"$data/mixed.yaml"; printf -- '---\nkind: Pipeline\nmetadata: {name: orphan}\nspec: {from: [ghost], to: [{source: o2}]}\n' >>"$data/mixed.yaml"
check all_or_nothing 1 "pipeline orphan reads source 'ghost', which does not exist" -- "$bin" apply -f "$data/mixed.yaml"
check nothing_applied 1 "Pipeline 'orphan' not found" -- "$bin" get pipelines orphan
check missing_schema_file 1 "spec.schema.file: .*nope.avsc: No such file" -- bash -c "sed 's/play.avsc/nope.avsc/' '$specs/demo.yaml' >'$data/ns.yaml'; '$bin' apply -f '$data/ns.yaml'"

# Secrets: a password in a DSN is refused without being echoed; DSNs come back redacted.
out=$(curl -s -X POST --data-binary $'kind: Source\nmetadata: {name: pg}\nspec: {connector: postgres, config: {dsn: "host=db user=cdc password=hunter2", tables: [public.t]}}' "$DATAMESH_SERVER/api/v1/apply")
[[ $out == *'error_code'* && $out == *'password=***'* && $out != *hunter2* ]] && ok secret_in_dsn_refused || bad secret_in_dsn_refused "$out"
# A postgres source runs (docs/postgres.md); an unreachable server shows in its status, redacted.
printf 'kind: Source\nmetadata: {name: pg}\nspec: {connector: postgres, config: {dsn: "host=127.0.0.1 port=1 user=cdc", password_env: PGPASS, tables: [public.t]}}\n' >"$data/pg.yaml"
PGPASS=hunter2 check postgres_applied 0 "" -- "$bin" apply -f "$data/pg.yaml"
for _ in $(seq 50); do st=$(curl -s "$DATAMESH_SERVER/api/v1/sources/pg/status"); [[ $st == *PGPASS* ]] && break; sleep 0.1; done
[[ $st == *'environment variable PGPASS'* && $st != *hunter2* ]] && ok postgres_status_error || bad postgres_status_error "$st"
check postgres_deleted 0 "deleted Source pg" -- "$bin" delete sources pg
grep -q hunter2 "$data/out.log" && bad secret_not_logged "found in log" || ok secret_not_logged

# Hostile requests.
check malformed_body_400 0 '"error_code":400' -- curl -s -X POST --data-binary '{"kind": [' "$DATAMESH_SERVER/api/v1/apply"
check empty_body_400 0 'no spec document' -- curl -s -X POST "$DATAMESH_SERVER/api/v1/apply"
check binary_body_400 0 'error_code' -- bash -c "head -c 4096 /dev/urandom | curl -s -X POST --data-binary @- '$DATAMESH_SERVER/api/v1/apply'"
check unknown_path_404 0 '"error_code":40400' -- curl -s "$DATAMESH_SERVER/api/v1/sources/plays/nothing/here"

# Metrics: Prometheus text that promtool accepts, with the default series.
curl -s "$DATAMESH_SERVER/metrics" >"$data/metrics.txt"
if promtool check metrics <"$data/metrics.txt" >"$data/promtool.txt" 2>&1; then ok metrics_promtool; else bad metrics_promtool "$(cat "$data/promtool.txt")"; fi
check metrics_objects 0 'datamesh_objects\{kind="Pipeline"\} 1' -- cat "$data/metrics.txt"
check metrics_requests 0 'datamesh_http_requests_total\{code="4xx"\} [1-9]' -- cat "$data/metrics.txt"

# Restart: everything applied is still there.
stop; start
check restart_keeps_state 0 'unchanged Pipeline us-plays' -- "$bin" apply -f "$data/demo2.yaml"
check delete_pipeline 0 'deleted Pipeline us-plays' -- "$bin" delete pipelines us-plays
check derived_gone 1 "Source 'us-plays' not found" -- "$bin" get sources us-plays
check delete_source_now 0 'deleted Source plays' -- "$bin" delete sources plays
check server_down 1 'cannot reach the controller .*is `datamesh up` running' -- "$bin" get sources --server http://127.0.0.1:1
stop
echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
