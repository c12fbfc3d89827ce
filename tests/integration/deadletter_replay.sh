#!/usr/bin/env bash
# Replay of dead letters after a fix (control/api_replay.c): a pipeline over a
# 2-partition source whose filter fails (division by zero) on some records
# dead-letters them; replaying one before the fix dead-letters it again through
# the replay topic; after the fix (re-apply) replaying the rest brings every
# record to the output exactly once; a second replay skips what was replayed,
# also after a controller restart; force replays again; bad requests are
# refused with what and where, nothing replayed.
set -u
bin=${DM_BIN:?}
source "$(dirname "$0")/../harness/lib.sh"
dm_e2e_setup
start || exit 1
py() { /usr/bin/python3 -c "$@"; }
api=$DATAMESH_SERVER/api/v1
replay() { curl -s -w ' %{http_code}' -X POST --data "$1" "$api/pipelines/rp/deadletters/replay"; }
ids() { "$bin" consume rp-out --from-beginning -n 100000 2>/dev/null | py 'import json,sys; print(" ".join(str(i) for i in sorted(json.loads(l)["id"] for l in sys.stdin)))'; }
# wait_for SECONDS CMD…: until CMD succeeds
wait_for() {
  local s=$1; shift
  for _ in $(seq $((s * 10))); do "$@" && return 0; sleep 0.1; done
  return 1
}
dl_total() { curl -s "$api/pipelines/rp/deadletters?limit=1000" | py 'import json,sys; print(json.load(sys.stdin)["total"])'; }
has_ids() { [[ $(ids) == "$1" ]]; }
dl_is() { [[ $(dl_total) == "$1" ]]; }

spec() {
  cat <<YAML
kind: Source
metadata: {name: ev, owner: test}
spec:
  connector: ingest
  key: [id]
  partitions: 2
  schema: {type: record, name: Ev, fields: [{name: id, type: long}, {name: n, type: long}]}
---
kind: Pipeline
metadata: {name: rp, owner: test}
spec:
  from: [ev]
  steps:
    - filter: "$1"
  to: [{source: rp-out}]
YAML
}
spec "100 / n > 0" >"$data/broken.yaml"
spec "n >= 0" >"$data/fixed.yaml"
r=$("$bin" apply -f "$data/broken.yaml" 2>&1) && ok apply_broken || bad apply_broken "$r"
# ids 0..11; n = 0 (division by zero) for 2, 5, 8, 11
ev=$(py 'import json; print(json.dumps([{"id":i,"n":0 if i%3==2 else i+1} for i in range(12)]))')
r=$(curl -s -X POST --data "$ev" "$api/sources/ev/events")
[[ $r == '{"accepted":12}' ]] && ok ingest || bad ingest "$r"
wait_for 30 dl_is 4 && ok four_dead_letters || bad four_dead_letters "$(curl -s "$api/pipelines/rp/deadletters")"
wait_for 30 has_ids "0 1 3 4 6 7 9 10" && ok eight_pass || bad eight_pass "$(ids)"
dl=$(curl -s "$api/pipelines/rp/deadletters?limit=1000")
py 'import json,sys
d=json.loads(sys.argv[1])["items"]
assert len(d)==4 and all("division by zero" in x["reason"] and x["input"]["topic"]=="ev" and not x["replayed"] for x in d), d
assert sorted(x["value"]["id"] for x in d)==[2,5,8,11]
assert len({x["input"]["partition"] for x in d})==2, "dead letters from both partitions"' "$dl" 2>"$data/err" \
  && ok dead_letters_listed || bad dead_letters_listed "$(cat "$data/err")"
pos() { py 'import json,sys; d=json.loads(sys.argv[1])["items"]; print(json.dumps(["%d:%d"%(x["partition"],x["offset"]) for x in d if x["value"]["id"] in map(int,sys.argv[2].split(","))]))' "$dl" "$1"; }

# ---- refused, nothing replayed ------------------------------------------------
r=$(replay 'nope'); [[ $r == *'the body must be a JSON object'*' 400' ]] && ok bad_json_400 || bad bad_json_400 "$r"
r=$(replay '{"positions":["0:x"]}'); [[ $r == *'positions[0]: expected'*' 400' ]] && ok bad_position_400 || bad bad_position_400 "$r"
r=$(replay '{"all":true,"reason":"x"}'); [[ $r == *'exactly one of positions, reason or all'*' 400' ]] && ok two_choices_400 || bad two_choices_400 "$r"
r=$(replay '{"positions":["0:999"]}'); [[ $r == *'no dead letter at 0:999'*' 404' ]] && ok unknown_position_404 || bad unknown_position_404 "$r"
r=$(curl -s -w ' %{http_code}' -X POST --data '{"all":true}' "$api/pipelines/nope/deadletters/replay")
[[ $r == *' 404' ]] && ok unknown_pipeline_404 || bad unknown_pipeline_404 "$r"

# ---- before the fix: the replayed record fails again, through the replay topic ----
one=$(pos 2)
r=$(replay "{\"positions\":$one}")
[[ $r == *'"count":1'*' 200' ]] && ok replay_before_fix || bad replay_before_fix "$r"
wait_for 30 dl_is 5 && ok dead_again_through_replay || bad dead_again_through_replay "$(dl_total)"
r=$(curl -s "$api/pipelines/rp/deadletters?limit=1000")
py 'import json,sys
d=json.loads(sys.argv[1])["items"]
again=[x for x in d if x["input"]["topic"]=="pipeline.rp.replay"]
assert len(again)==1 and again[0]["value"]["id"]==2 and "division by zero" in again[0]["reason"], d
assert sum(1 for x in d if x["replayed"])==1' "$r" 2>"$data/err" && ok replayed_flag_and_origin || bad replayed_flag_and_origin "$(cat "$data/err")"

# ---- the fix, then replay of every division-by-zero dead letter --------------
r=$("$bin" apply -f "$data/fixed.yaml" 2>&1) && ok apply_fixed || bad apply_fixed "$r"
sleep 1
r=$(replay '{"reason":"division by zero"}')
py 'import json,sys
d=json.loads(sys.argv[1].rsplit(" ",1)[0])
assert sys.argv[1].endswith(" 200"), sys.argv[1]
assert d["count"]==4, d   # 5, 8, 11 and the re-dead-lettered 2 (from the replay topic)
assert [s for s in d["skipped"] if "replayed already" in s["why"]] and len(d["skipped"])==1, d' "$r" 2>"$data/err" \
  && ok replay_after_fix || bad replay_after_fix "$(cat "$data/err")"
wait_for 30 has_ids "0 1 2 3 4 5 6 7 8 9 10 11" && ok every_record_once || bad every_record_once "$(ids)"
r=$(replay '{"all":true}')
[[ $r == *'"count":0'* && $r == *'replayed already'*' 200' ]] && ok second_replay_skips || bad second_replay_skips "$r"

# ---- a restart keeps what was replayed ------------------------------------------
stop
start || exit 1
wait_for 30 bash -c "curl -s $api/pipelines/rp/status | grep -q running" || true
r=$(replay '{"all":true}')
[[ $r == *'"count":0'*' 200' ]] && ok skips_after_restart || bad skips_after_restart "$r"
sleep 2
[[ $(ids) == "0 1 2 3 4 5 6 7 8 9 10 11" ]] && ok still_once_after_restart || bad still_once_after_restart "$(ids)"
r=$(replay "{\"positions\":$(pos 5),\"force\":true}")
[[ $r == *'"count":1'*' 200' ]] && ok force_replays_again || bad force_replays_again "$r"
wait_for 30 has_ids "0 1 2 3 4 5 5 6 7 8 9 10 11" && ok forced_arrives || bad forced_arrives "$(ids)"

# ---- the CLI -------------------------------------------------------------------------------
out=$("$bin" deadletters rp 2>/dev/null)
[[ $(grep -c "division by zero" <<<"$out") -eq 5 && $(grep -c " replayed *$" <<<"$out") -eq 5 && $out == POSITION*REPLAYED* ]] \
  && ok cli_lists || bad cli_lists "$out"
out=$("$bin" deadletters replay rp --reason "division by zero" 2>&1)
[[ $out == "0 replayed into pipeline.rp.replay"* && $(grep -c "^skipped .*replayed already" <<<"$out") -eq 5 ]] && ok cli_replay_skips || bad cli_replay_skips "$out"
out=$("$bin" deadletters replay rp 2>&1) && bad cli_replay_usage "exit 0" || { [[ $out == *"exactly one"* ]] && ok cli_replay_usage || bad cli_replay_usage "$out"; }
out=$("$bin" deadletters replay rp 9:9 2>&1) && bad cli_replay_404 "exit 0" || { [[ $out == *"no dead letter at 9:9"* ]] && ok cli_replay_404 || bad cli_replay_404 "$out"; }
stop
dm_e2e_summary
