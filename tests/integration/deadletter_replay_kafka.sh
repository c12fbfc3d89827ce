#!/usr/bin/env bash
# Dead-letter replay with the data plane on Kafka (a librdkafka mock cluster;
# control/api_replay.c, docs/deadletters.md): a 2-partition ingest source and a
# filter that fails on n = 0; both dead letters are listed (records past a
# transaction's marker included), replayed in one Kafka transaction through
# the replay topic the first stage reads, fail again (the new dead letters name
# pipeline.rp.replay), and a second replay skips them as replayed already.
# (No re-apply here: the fix-then-replay path is test_deadletter_replay's.)
set -u
bin=${DM_BIN:?}
source "$(dirname "$0")/../harness/lib.sh"
dm_e2e_setup
py() { /usr/bin/python3 -c "$@"; }
for t in ev:2 rp-out:2 pipeline.rp.dlq:1 pipeline.rp.replay:2 _datamesh.audit:1; do mk_topic "${t%:*}" "${t#*:}" || exit 1; done
dm_controller_start "$data/dm" "$port" "$data/up.log" --transport "kafka://$DM_KAFKA_BROKERS" || exit 1
pid=$dm_pid
api=$DATAMESH_SERVER/api/v1
cat >"$data/spec.yaml" <<YAML
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
    - filter: "100 / n > 0"
  to: [{source: rp-out}]
YAML
r=$("$bin" apply -f "$data/spec.yaml" 2>&1) && ok apply || bad apply "$r"
r=$(curl -s -X POST --data '[{"id":1,"n":1},{"id":2,"n":0},{"id":3,"n":0},{"id":4,"n":4}]' "$api/sources/ev/events")
[[ $r == '{"accepted":4}' ]] && ok ingest || bad ingest "$r"
# dead letters: how many, from which input topic, replayed or not
dl() { curl -s "$api/pipelines/rp/deadletters?limit=100" | py 'import json,sys
d=json.load(sys.stdin)["items"]
print(" ".join(sorted("%s:%d:%s" % (x["input"]["topic"], x["value"]["id"], "r" if x["replayed"] else "-") for x in d)))'; }
for _ in $(seq 150); do [[ $(dl) == "ev:2:- ev:3:-" ]] && break; sleep 0.2; done
r=$(dl); [[ $r == "ev:2:- ev:3:-" ]] && ok two_dead_letters_listed || bad two_dead_letters_listed "$r; $(tail -5 "$data/up.log")"
r=$(curl -s -w ' %{http_code}' -X POST --data '{"all":true}' "$api/pipelines/rp/deadletters/replay")
[[ $r == *'"count":2'*' 200' ]] && ok replay_all || bad replay_all "$r"
want="ev:2:r ev:3:r pipeline.rp.replay:2:- pipeline.rp.replay:3:-"
for _ in $(seq 150); do [[ $(dl) == "$want" ]] && break; sleep 0.2; done
r=$(dl); [[ $r == "$want" ]] && ok dead_again_through_replay_topic || bad dead_again_through_replay_topic "$r; $(tail -5 "$data/up.log")"
r=$(curl -s -w ' %{http_code}' -X POST --data '{"reason":"division by zero"}' "$api/pipelines/rp/deadletters/replay")
py 'import json,sys
d=json.loads(sys.argv[1].rsplit(" ",1)[0])
assert d["count"]==2 and d["skipped_total"]==2 and all("replayed already" in s["why"] for s in d["skipped"]), d' "$r" \
  && ok replays_the_new_skips_the_old || bad replays_the_new_skips_the_old "$r"
n=$("$bin" consume rp-out --from-beginning -n 100 2>/dev/null | wc -l)
[[ $n == 2 ]] && ok output_untouched || bad output_untouched "$n records"
stop
dm_e2e_summary
