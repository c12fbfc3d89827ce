#!/usr/bin/env bash
# `apply --dry-run` says exactly what `apply` does (issue 26). Every spec file of
# specs/apply/ (the specs the shell tests write, with their variables filled in,
# plus the issue's bad specs) and of specs/ is applied against a fresh
# controller, first with --dry-run and then for real:
#   - refused one way means refused the other, with the same message, and the
#     refused apply leaves no source, pipeline, sink or schema subject behind;
#   - accepted one way means accepted the other, with the same list of actions,
#     and every object the plan creates exists afterwards;
#   - the dry run itself changes nothing.
# A spec whose shell test applied others before it names them on its first
# line ("# after: pipeline_windows-0.yaml"); they are applied first.
set -u
bin=${DM_BIN:?}
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../harness/lib.sh"
dm_e2e_setup

# Only what the controller holds: the objects of each kind and the subjects.
state() {
  local k
  for k in sources pipelines sinks processors; do
    curl -s "$DATAMESH_SERVER/api/v1/$k" | /usr/bin/python3 -c \
      'import json,sys; d=json.load(sys.stdin); d=d.get("items",d) if isinstance(d,dict) else d; print(sorted((o.get("metadata",{}).get("name") if isinstance(o,dict) else o) for o in d))'
  done
  curl -s "$DATAMESH_SERVER/subjects"
}

files=("$here"/specs/apply/*.yaml "$here"/specs/*.yaml)
accepted=0 refused=0
for f in "${files[@]}"; do
  name=$(basename "$f" .yaml)
  spec=$data/$name.yaml
  # the specs' @DATA@ is this run's directory (file sources, sinks and lakes)
  mkdir -p "$data/out" "$data/lake"
  sed "s|@DATA@|$data|g" "$f" >"$spec"
  cp "$here"/specs/*.avsc "$data/" 2>/dev/null
  rm -rf "$data/dm"
  start || { bad "$name: start" "$(tail -5 "$data/up.log")"; continue; }
  # "# after: A.yaml B.yaml" on a spec's first line: what its shell test applied
  # before it (paths relative to the spec), applied here for real first.
  read -r hash word after <"$spec"
  if [[ $hash == "#" && $word == after: ]]; then
    for a in $after; do
      sed "s|@DATA@|$data|g" "$(dirname "$f")/$a" >"$data/before.yaml"
      out=$("$bin" apply -f "$data/before.yaml" 2>&1) || bad "$name: applying $a first" "$out"
    done
  fi
  empty=$(state)
  dry=$("$bin" apply --dry-run -f "$spec" 2>&1); drc=$?
  after_dry=$(state)
  real=$("$bin" apply -f "$spec" 2>&1); rrc=$?
  after=$(state)
  stop
  [[ $after_dry == "$empty" ]] || bad "$name: the dry run changed the controller" "$after_dry"
  if [[ $drc -ne 0 || $rrc -ne 0 ]]; then
    refused=$((refused + 1))
    if [[ $drc -eq 0 ]]; then
      bad "$name: dry run accepted, apply refused" "$real"
    elif [[ $rrc -eq 0 ]]; then
      bad "$name: dry run refused, apply accepted" "$dry"
    elif [[ $dry != "$real" ]]; then
      bad "$name: refused with different messages" "dry: $dry / apply: $real"
    elif [[ $after != "$empty" ]]; then
      bad "$name: refused, but left objects behind" "$after"
    else
      ok "$name: refused both ways: ${real:0:160}"
    fi
    continue
  fi
  accepted=$((accepted + 1))
  plan_dry=$(sed 's/^(dry run) //' <<<"$dry")
  if [[ $plan_dry != "$real" ]]; then
    bad "$name: the dry run's plan differs" "$(diff <(echo "$plan_dry") <(echo "$real") | head -20)"
    continue
  fi
  # every "create Source|Pipeline|Sink NAME" of the plan exists now
  missing=
  while read -r action kind obj _; do
    [[ $action == create ]] || continue
    case $kind in
      Source | Pipeline | Sink) [[ $after == *"'$obj'"* ]] || missing+=" $kind/$obj" ;;
    esac
  done <<<"$real"
  [[ -z $missing ]] && ok "$name: same plan both ways ($(wc -l <<<"$real") actions)" ||
    bad "$name: planned but not created:$missing" "$after"
done
# The set must hold both outcomes, or the comparison proves little.
[[ $accepted -ge 10 && $refused -ge 5 ]] && ok "coverage: $accepted accepted, $refused refused" ||
  bad coverage "$accepted accepted, $refused refused"
dm_e2e_summary
