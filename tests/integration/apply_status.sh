#!/usr/bin/env bash
# Nothing applied is left in a state it cannot leave by itself without saying
# why (issue 26). Every spec file of the suite that applies (specs/apply/ and
# specs/, as apply_dry_parity.sh uses them) is applied, all at once, to a
# fresh controller; within 15 s every source, pipeline and sink it holds must
# have settled:
#   - every unit is running, done, or run by workers — or starting, retrying
#     or failed with an error a person can act on (a non-empty message);
#   - an object without running units ("ready", "pending", "idle") says why
#     (its status has a reason), and a failed or degraded one has a unit that
#     says why.
# Servers the specs name but this test does not start (Postgres, Kafka) leave
# their units retrying with the connection error: that is a reason.
set -u
bin=${DM_BIN:?}
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../harness/lib.sh"
dm_e2e_setup

# The objects of a kind as "kind/name" lines.
objects() {
  local k
  for k in sources pipelines sinks; do
    curl -s "$DATAMESH_SERVER/api/v1/$k" | /usr/bin/python3 -c '
import json, sys
d = json.load(sys.stdin)
d = d.get("items", d) if isinstance(d, dict) else d
for o in d:
    n = o.get("metadata", {}).get("name") if isinstance(o, dict) else o
    print(sys.argv[1] + "/" + n)' "$k"
  done
}

# Prints what is unsettled about one object's status (nothing when settled).
unsettled() {
  curl -s "$DATAMESH_SERVER/api/v1/$1/status" | /usr/bin/python3 -c '
import json, sys
what = sys.argv[1]
try:
    s = json.load(sys.stdin)
except ValueError:
    print(what + ": status is not JSON"); sys.exit()
state, units = s.get("state"), s.get("units", [])
bad = []
for u in units:
    us, err = u.get("state"), (u.get("error") or "").strip()
    if us in ("running", "done", "external", "stopped"):
        continue
    if us in ("starting", "retrying", "failed") and len(err) >= 8:
        continue
    bad.append("unit %s is %s%s" % (u.get("name"), us, " without a reason" if not err else ": " + err))
if state in ("failed", "degraded") and not any((u.get("error") or "").strip() for u in units):
    bad.append("%s without a unit that says why" % state)
if state not in ("running", "failed", "degraded") and not (s.get("reason") or "").strip() \
        and not any((u.get("error") or "").strip() for u in units):
    bad.append("%s without a reason" % state)
if bad:
    print(what + ": " + "; ".join(bad) + " -- " + json.dumps(s)[:400])' "$1"
}

files=("$here"/specs/apply/*.yaml "$here"/specs/*.yaml)
applied=0 refused=0 objects_seen=0
for f in "${files[@]}"; do
  name=$(basename "$f" .yaml)
  rm -rf "$data/dm" "$data/out" "$data/lake"
  mkdir -p "$data/out" "$data/lake"
  cp "$here"/specs/*.avsc "$data/" 2>/dev/null
  # the specs' @DATA@ is this run's directory (file sources, sinks and lakes)
  sed "s|@DATA@|$data|g" "$f" >"$data/$name.yaml"
  start || { bad "$name: start" "$(tail -5 "$data/up.log")"; continue; }
  # "# after: A.yaml B.yaml" on a spec's first line: what its shell test applied first
  read -r hash word after <"$data/$name.yaml"
  if [[ $hash == "#" && $word == after: ]]; then
    for a in $after; do
      sed "s|@DATA@|$data|g" "$(dirname "$f")/$a" >"$data/before.yaml"
      (cd "$data" && "$bin" apply -f "$data/before.yaml" >"$data/before.out" 2>&1) ||
        bad "$name: applying $a first" "$(cat "$data/before.out")"
    done
  fi
  # run in $data: sinks and lakes with relative paths land there
  if ! (cd "$data" && "$bin" apply -f "$data/$name.yaml" >"$data/$name.out" 2>&1); then
    refused=$((refused + 1))
    # refused specs are the suite's bad ones; apply_dry_parity.sh checks their messages
    ok "$name: refused: $(head -c 120 "$data/$name.out")"
    stop
    continue
  fi
  applied=$((applied + 1))
  all=$(objects)
  objects_seen=$((objects_seen + $(wc -l <<<"$all")))
  left=
  for _ in $(seq 30); do
    left=
    while read -r o; do
      [[ -n $o ]] && left+=$(unsettled "$o")$'\n'
    done <<<"$all"
    left=$(sed '/^$/d' <<<"$left")
    [[ -z $left ]] && break
    sleep 0.5
  done
  if [[ -z $left ]]; then
    ok "$name: $(wc -l <<<"$all") objects settled (running, or retrying/failed with a reason)"
  else
    while read -r l; do bad "$name: ${l%%:*}" "${l#*: }"; done <<<"$left"
  fi
  stop
done
[[ $applied -ge 15 && $objects_seen -ge 40 ]] && ok "coverage: $applied spec files, $objects_seen objects" \
  || bad coverage "$applied spec files applied, $objects_seen objects"
dm_e2e_summary
