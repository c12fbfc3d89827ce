#!/usr/bin/env bash
# SDK processors end to end: a Processor object and a `processor` step applied
# in one request; records flow through a stateful library (tests/sdk/counter.c)
# over 2 partitions into a derived source; its keyed state is exactly-once
# across a SIGKILL (every user's count runs 1, 2, 3, … with no gap or repeat);
# its dead letters carry the processor's reason; its metrics are exported;
# and apply refuses a missing library, another ABI, settings the processor
# refuses and an unknown Processor, naming where.
set -u
source "$(dirname "$0")/../harness/lib.sh"
bin=${DM_BIN:?}
lib=${DM_BINARY_DIR:?}/tests/sdk
dm_e2e_setup
py() { /usr/bin/python3 -c "$@"; }

start || exit 1
cat >"$data/specs.yaml" <<YAML
kind: Source
metadata: {name: sales, owner: shop}
spec:
  connector: ingest
  key: [user]
  partitions: 2
  schema: {type: record, name: Sale, fields: [{name: user, type: string}, {name: amount, type: long}, {name: seq, type: long}]}
---
kind: Processor
metadata: {name: counter, owner: shop}
spec: {library: $lib/counter.so, config: {key: user}}
---
kind: Pipeline
metadata: {name: counted, owner: shop}
spec:
  from: [sales]
  steps:
    - processor: {name: counter, config: {min: 0}}
  to: [{source: sales-counted}]
YAML
out=$("$bin" apply -f "$data/specs.yaml" 2>&1) && ok apply_processor_and_pipeline || bad apply_processor_and_pipeline "$out"

seq_no=0
post() { # post N: N events over users u0..u4; every 10th has a negative amount
  local body="[" i
  for ((i = 0; i < $1; i++)); do
    seq_no=$((seq_no + 1))
    local amount=$((seq_no % 10 == 0 ? -1 : seq_no))
    body+="{\"user\":\"u$((seq_no % 5))\",\"amount\":$amount,\"seq\":$seq_no},"
  done
  body="${body%,}]"
  curl -s -X POST --data "$body" "$DATAMESH_SERVER/api/v1/sources/sales/events"
}
wait_count() { # wait_count N SECONDS: the derived source holds N records
  local n
  for _ in $(seq $(($2 * 5))); do
    n=$("$bin" consume sales-counted --from-beginning -n 100000 2>/dev/null | wc -l)
    [[ $n -ge $1 ]] && return 0
    sleep 0.2
  done
  return 1
}
check_counts() { # every user's n runs 1..k in the order of seq, none twice
  "$bin" consume sales-counted --from-beginning -n 100000 >"$data/out" 2>&1
  py 'import json,sys
rows=[json.loads(l) for l in open(sys.argv[1])]
by={}
for r in rows: by.setdefault(r["user"],[]).append(r)
for u,rs in by.items():
    rs.sort(key=lambda r:r["seq"])
    ns=[r["n"] for r in rs]
    assert ns==list(range(1,len(ns)+1)), "%s: %s" % (u, ns[:40])
    assert all(r["amount"]>=0 for r in rs), "a negative amount passed"
seqs=[r["seq"] for r in rows]
assert len(seqs)==len(set(seqs)), "duplicates"
assert len(seqs)==int(sys.argv[2]), "%d records, want %s" % (len(seqs), sys.argv[2])' "$data/out" "$1" 2>"$data/err"
}

for _ in 1 2 3 4 5; do post 40 >/dev/null; done
if wait_count 180 30 && check_counts 180; then ok records_flow_stateful; else bad records_flow_stateful "$(cat "$data/err"; tail -5 "$data/up.log")"; fi
m=$(curl -s "$DATAMESH_SERVER/metrics")
[[ $m == *'datamesh_sdk_counted_total{processor="counter"}'* && $m == *'datamesh_sdk_rejected_total{processor="counter"}'* && $m == *'datamesh_processor_records_in_total'* ]] && ok metrics || bad metrics "$(grep -E 'sdk|processor_records' <<<"$m" | head)"

# SIGKILL right after more events were accepted; the restarted tasks restore
# the counts from the state topic and resume exactly after the last commit.
for _ in 1 2 3; do post 40 >/dev/null; done
kill -9 "$pid"; wait "$pid" 2>/dev/null
start || exit 1
for _ in 1 2; do post 40 >/dev/null; done
if wait_count 360 40 && check_counts 360; then ok exactly_once_across_sigkill; else bad exactly_once_across_sigkill "$(cat "$data/err"; tail -5 "$data/up.log")"; fi

# Refusals, each naming the Processor and the place.
sed "s|$lib/counter.so|$lib/missing.so|" "$data/specs.yaml" >"$data/missing.yaml"
out=$("$bin" apply -f "$data/missing.yaml" 2>&1)
[[ $? -ne 0 && $out == *'Processor counter: cannot load library'*'missing.so'* ]] && ok missing_library_refused || bad missing_library_refused "$out"
sed "s|$lib/counter.so|$lib/badabi.so|" "$data/specs.yaml" >"$data/badabi.yaml"
out=$("$bin" apply -f "$data/badabi.yaml" 2>&1)
[[ $? -ne 0 && $out == *'built for processor ABI version 42; this datamesh runs version 1'* ]] && ok wrong_abi_refused || bad wrong_abi_refused "$out"
sed 's|config: {min: 0}|config: {min: "zero"}|' "$data/specs.yaml" >"$data/badconf.yaml"
out=$("$bin" apply -f "$data/badconf.yaml" 2>&1)
[[ $? -ne 0 && $out == *'spec.steps[0].processor'*'Processor counter refused its settings: config.min: expected an integer'* ]] && ok bad_config_refused || bad bad_config_refused "$out"
sed 's|name: counter, config|name: nosuch, config|' "$data/specs.yaml" >"$data/unknown.yaml"
out=$("$bin" apply -f "$data/unknown.yaml" 2>&1)
[[ $? -ne 0 && $out == *'spec.steps[0].processor.name: no Processor named nosuch'* ]] && ok unknown_processor_refused || bad unknown_processor_refused "$out"
# nothing refused was stored: records still flow through the running one
post 40 >/dev/null
if wait_count 396 30 && check_counts 396; then ok still_running_after_refusals; else bad still_running_after_refusals "$(cat "$data/err")"; fi

# The scaffold: sdk new → make → apply → the records pass through unchanged.
out=$("$bin" sdk new pass-all "$data/pass-all" 2>&1 && make -s -C "$data/pass-all" 2>&1 && make -s -C "$data/pass-all" test 2>&1)
[[ $? -eq 0 && -f $data/pass-all/pass-all.so && $out == *'ok: 3 records in, 3 out'* ]] && ok scaffold_builds_and_tests || bad scaffold_builds_and_tests "$out"
out=$("$bin" sdk new pass-all "$data/pass-all" 2>&1)
[[ $? -ne 0 && $out == *'pass-all.c: File exists'* ]] && ok scaffold_never_overwrites || bad scaffold_never_overwrites "$out"
out=$("$bin" sdk new 'Bad Name' "$data/bad" 2>&1)
[[ $? -eq 2 && $out == *"'Bad Name' is not a processor name"* ]] && ok scaffold_bad_name || bad scaffold_bad_name "$out"
[[ -f $("$bin" sdk include)/datamesh/processor.h && -f $("$bin" sdk include)/datamesh/emitter.h ]] && ok sdk_include || bad sdk_include "$("$bin" sdk include 2>&1)"
cat >"$data/pass.yaml" <<YAML
kind: Processor
metadata: {name: pass-all, owner: shop}
spec: {library: $data/pass-all/pass-all.so}
---
kind: Pipeline
metadata: {name: passed, owner: shop}
spec:
  from: [sales]
  steps: [{processor: {name: pass-all}}]
  to: [{source: sales-passed}]
YAML
out=$("$bin" apply -f "$data/pass.yaml" 2>&1) && ok scaffold_applied || bad scaffold_applied "$out"
"$bin" consume sales --from-beginning -n 100000 | sort >"$data/sales"
for _ in $(seq 100); do
  "$bin" consume sales-passed --from-beginning -n 100000 | sort >"$data/passed"
  cmp -s "$data/sales" "$data/passed" && break
  sleep 0.2
done
cmp -s "$data/sales" "$data/passed" && ok scaffold_passes_records_through || bad scaffold_passes_records_through "$(wc -l "$data/sales" "$data/passed")"

# Hot upgrade: the Processor re-applied with another library; the pipeline
# restarts from its last commit with it (the old one unloaded), and records
# posted meanwhile and after pass exactly once.
grep -q 'pass-all.so' "/proc/$pid/maps" && ok old_library_loaded || bad old_library_loaded "$(grep '\.so' /proc/$pid/maps | grep -c sdk)"
post 40 >/dev/null
sed "s|$data/pass-all/pass-all.so|$lib/passthrough.so|" "$data/pass.yaml" >"$data/pass2.yaml"
out=$("$bin" apply -f "$data/pass2.yaml" 2>&1)
[[ $? -eq 0 && $out == *'restart   Pipeline passed — uses the updated Processor pass-all'* ]] && ok upgrade_applied || bad upgrade_applied "$out"
post 40 >/dev/null
"$bin" consume sales --from-beginning -n 100000 | sort >"$data/sales"
for _ in $(seq 100); do
  "$bin" consume sales-passed --from-beginning -n 100000 | sort >"$data/passed"
  cmp -s "$data/sales" "$data/passed" && break
  sleep 0.2
done
cmp -s "$data/sales" "$data/passed" && ok upgrade_exactly_once || bad upgrade_exactly_once "$(wc -l "$data/sales" "$data/passed")"
maps=$(grep -o '[^ /]*\.so' "/proc/$pid/maps" | sort -u | tr '\n' ' ')
[[ $maps == *passthrough.so* && $maps != *pass-all.so* ]] && ok upgrade_swapped_library || bad upgrade_swapped_library "$maps"

# A Lua step over the same source: drops even amounts, upper-cases users,
# sends negative amounts to the dead letters with the Lua error; a script
# that does not compile is refused at apply with Lua's message.
cat >"$data/lua.yaml" <<'YAML'
kind: Pipeline
metadata: {name: lua-odd, owner: shop}
spec:
  from: [sales]
  steps:
    - lua: |
        function process(r)
          if r.amount < 0 then error("negative amount " .. r.amount) end
          if r.amount % 2 == 0 then return nil end
          r.user = string.upper(r.user)
          return r
        end
  to: [{source: sales-odd}]
YAML
out=$("$bin" apply -f "$data/lua.yaml" 2>&1) && ok lua_applied || bad lua_applied "$out"
"$bin" consume sales --from-beginning -n 100000 >"$data/sales.json"
want=$(py 'import json,sys; print(sum(1 for l in open(sys.argv[1]) if json.loads(l)["amount"]>=0 and json.loads(l)["amount"]%2==1))' "$data/sales.json")
for _ in $(seq 100); do
  n=$("$bin" consume sales-odd --from-beginning -n 100000 | tee "$data/odd" | wc -l)
  [[ $n -ge $want ]] && break
  sleep 0.2
done
py 'import json,sys
rows=[json.loads(l) for l in open(sys.argv[1])]
assert len(rows)==int(sys.argv[2]), "%d rows, want %s" % (len(rows), sys.argv[2])
assert all(r["user"].isupper() and r["amount"]%2==1 for r in rows), rows[:3]' "$data/odd" "$want" 2>"$data/err" && ok lua_records || bad lua_records "$(cat "$data/err")"
out=$("$bin" apply -f <(sed 's/return r$/return r +/' "$data/lua.yaml") 2>&1)
[[ $? -ne 0 && $out == *'spec.steps[0].lua'*'unexpected symbol'* ]] && ok lua_bad_script_refused || bad lua_bad_script_refused "$out"

# Keyed state and a processing-time timer (tests/sdk/sessions.c): per-user
# counts flushed 300 ms after a round starts. A SIGKILL while counts are
# pending: the restarted task restores them and re-arms the timer, and the
# flushes sum to every user's records exactly.
cat >"$data/sessions.yaml" <<YAML
kind: Processor
metadata: {name: sessions, owner: shop}
spec: {library: $lib/sessions.so, config: {key: user, gap: 300}}
---
kind: Pipeline
metadata: {name: sessioned, owner: shop}
spec:
  from: [sales]
  steps: [{processor: {name: sessions}}]
  to: [{source: sales-sessions}]
YAML
out=$("$bin" apply -f "$data/sessions.yaml" 2>&1) && ok timers_applied || bad timers_applied "$out"
sleep 1
post 40 >/dev/null
kill -9 "$pid"; wait "$pid" 2>/dev/null
start || exit 1
post 40 >/dev/null
"$bin" consume sales --from-beginning -n 100000 >"$data/sales.json"
check_sessions() {
  "$bin" consume sales-sessions --from-beginning -n 100000 >"$data/sess" 2>&1
  py 'import json,sys,collections
want=collections.Counter(json.loads(l)["user"] for l in open(sys.argv[1]))
got=collections.Counter()
for l in open(sys.argv[2]):
    r=json.loads(l); got[r["user"]]+=r["n"]
assert got==want, "flushed %s, records %s" % (dict(got), dict(want))' "$data/sales.json" "$data/sess" 2>"$data/err"
}
for _ in $(seq 60); do check_sessions && break; sleep 0.25; done
check_sessions && ok timers_state_exactly_once_across_sigkill || bad timers_state_exactly_once_across_sigkill "$(cat "$data/err")"

# A library that crashes (tests/sdk/crasher.c: SIGSEGV on amount 666): its
# task stops at its last commit with the signal in the pipeline's status; the
# controller and the other pipelines keep running.
cat >"$data/crash.yaml" <<YAML
kind: Processor
metadata: {name: crasher, owner: shop}
spec: {library: $lib/crasher.so}
---
kind: Pipeline
metadata: {name: crashy, owner: shop}
spec:
  from: [sales]
  steps: [{processor: {name: crasher}}]
  to: [{source: sales-crashy}]
YAML
out=$("$bin" apply -f "$data/crash.yaml" 2>&1) && ok crasher_applied || bad crasher_applied "$out"
curl -s -X POST --data '[{"user":"crash","amount":666,"seq":-5}]' "$DATAMESH_SERVER/api/v1/sources/sales/events" >/dev/null
for _ in $(seq 100); do
  st=$(curl -s "$DATAMESH_SERVER/api/v1/pipelines/crashy/status")
  [[ $st == *'crashed (SEGV) in process()'* ]] && break
  sleep 0.2
done
[[ $st == *'Processor crasher crashed (SEGV) in process(): the task stopped at its last commit'* ]] && ok crash_shown_in_status || bad crash_shown_in_status "$st"
curl -fs "$DATAMESH_SERVER/healthz" >/dev/null && kill -0 "$pid" && ok controller_survives_crash || bad controller_survives_crash "$(tail -5 "$data/up.log")"
post 40 >/dev/null
"$bin" consume sales --from-beginning -n 100000 | sort >"$data/sales"
for _ in $(seq 100); do
  "$bin" consume sales-passed --from-beginning -n 100000 | sort >"$data/passed"
  cmp -s "$data/sales" "$data/passed" && break
  sleep 0.2
done
[[ -s $data/sales ]] && cmp -s "$data/sales" "$data/passed" && ok others_run_after_crash || bad others_run_after_crash "$(wc -l "$data/sales" "$data/passed")"
stop

dump=$("$bin" log dump --data "$data/dm/log" pipeline.counted.dlq 2>&1)
[[ $dump == *'processor counter: amount -1 is below min 0'* ]] && ok dead_letters_with_reason || bad dead_letters_with_reason "${dump:0:600}"
dump=$("$bin" log dump --data "$data/dm/log" pipeline.lua-odd.dlq 2>&1)
[[ $dump == *'lua: script:2: negative amount -1'* ]] && ok lua_dead_letters_with_error || bad lua_dead_letters_with_error "${dump:0:600}"
dm_e2e_summary
