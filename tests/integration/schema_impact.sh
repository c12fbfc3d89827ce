#!/usr/bin/env bash
# The impact of a schema change through chains of derived sources: `datamesh
# schema plan` and `apply --dry-run` of a changed Source name the pipelines
# reading it and, through every derived source whose schema the change alters,
# the pipelines downstream of those (hop 2, 3), but not past a pipeline whose
# projection keeps its output as it was, nor past one that pauses.
set -u
bin=${DM_BIN:?}
source "$(dirname "$0")/../harness/lib.sh"
dm_e2e_setup
start || exit 1

cat >"$data/specs.yaml" <<'YAML'
kind: Source
metadata: {name: orders, owner: test}
spec:
  connector: ingest
  key: [id]
  partitions: 2
  schema: {type: record, name: Order, fields: [{name: id, type: long}, {name: amount, type: double}]}
---
kind: Pipeline
metadata: {name: all-orders, owner: test}
spec:
  from: [orders]
  steps: [{filter: "amount > 0"}]
  to: [{source: paid}]
---
kind: Pipeline
metadata: {name: paid-copy, owner: test}
spec:
  from: [paid]
  to: [{source: paid-copy}]
---
kind: Pipeline
metadata: {name: paid-copy-reader, owner: test}
spec:
  from: [paid-copy]
  schema_change: fail
  to: [{source: last}]
---
kind: Pipeline
metadata: {name: ids-only, owner: test}
spec:
  from: [paid]
  steps: [{project: [id]}]
  to: [{source: ids}]
---
kind: Pipeline
metadata: {name: ids-reader, owner: test}
spec:
  from: [ids]
  to: [{source: ids-copy}]
---
kind: Pipeline
metadata: {name: frozen, owner: test}
spec:
  from: [orders]
  schema_change: freeze
  to: [{source: frozen-out}]
---
kind: Pipeline
metadata: {name: frozen-reader, owner: test}
spec:
  from: [frozen-out]
  to: [{source: frozen-copy}]
YAML
"$bin" apply -f "$data/specs.yaml" >"$data/apply.out" 2>&1 || bad apply "$(cat "$data/apply.out")"
# the derived sources exist once their pipelines have registered them
for _ in $(seq 100); do
  n=$(curl -s "$DATAMESH_SERVER/subjects" | tr ',' '\n' | grep -c -- '-value"' )
  [[ $n -ge 8 ]] && break
  sleep 0.1
done

cat >"$data/new.avsc" <<'JSON'
{"type": "record", "name": "Order", "fields": [{"name": "id", "type": "long"}, {"name": "amount", "type": "double"},
 {"name": "note", "type": ["null", "string"], "default": null}]}
JSON
out=$("$bin" schema plan orders "$data/new.avsc" 2>&1)
json=$("$bin" schema plan orders "$data/new.avsc" -o json 2>&1)
hops=$(python3 -c 'import json,sys; d=json.load(sys.stdin); print(" ".join(sorted("%s:%s:%s" % (p["pipeline"], p.get("via","-"), p.get("hop",0)) for p in d["pipelines"])))' <<<"$json")
want="all-orders:-:0 frozen:-:0 ids-only:paid:1 paid-copy-reader:paid-copy:2 paid-copy:paid:1"
[[ $hops == "$want" ]] && ok impact_follows_derived_sources || bad impact_follows_derived_sources "got '$hops' want '$want': $out"
[[ $out == *"pipeline paid-copy (schema_change: lenient), through derived source paid: restarts on the new version"* \
   && $out == *"pipeline paid-copy-reader (schema_change: fail), through derived source paid-copy: pauses"* ]] \
  && ok impact_printed_with_path || bad impact_printed_with_path "$out"
# the projection keeps ids as it was: nothing downstream of it; frozen keeps its schema
[[ $hops != *ids-reader* && $hops != *frozen-reader* && $out == *"derived source ids keeps its schema"* ]] && ok impact_stops_where_schemas_stay || bad impact_stops_where_schemas_stay "$hops"

# the same in a dry run of the changed Source
python3 - "$data/specs.yaml" "$data/new.avsc" >"$data/changed.yaml" <<'PY'
import sys
first = open(sys.argv[1]).read().split("\n---\n")[0]
print(first.split("  schema:")[0] + "  schema: " + open(sys.argv[2]).read().replace("\n", " "))
PY
dry=$("$bin" apply --dry-run -f "$data/changed.yaml" 2>&1)
[[ $dry == *"paid-copy-reader"*"through derived source paid-copy"* && $dry == *"all-orders"* ]] \
  && ok dry_run_shows_downstream || bad dry_run_shows_downstream "$dry"
# nothing was changed by asking
v=$(curl -s "$DATAMESH_SERVER/subjects/paid-value/versions")
[[ $v == "[1]" ]] && ok nothing_registered || bad nothing_registered "$v"
stop
echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
