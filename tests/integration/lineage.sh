#!/usr/bin/env bash
# Field-level lineage through a running controller: sources, a pipeline with a
# filter, a project (a rename, a computed field from two inputs) and an enrich into
# a derived source, an aggregate by country reading that source into a file sink.
# `datamesh lineage` and GET /api/v1/lineage answer what depends on a field and
# where one comes from, before and after a schema change.
set -u
bin=${DM_BIN:?}
source "$(dirname "$0")/../harness/lib.sh"
dm_e2e_setup
start || exit 1

cat >"$data/specs.yaml" <<'YAML'
kind: Source
metadata: {name: plays, owner: test}
spec:
  connector: ingest
  key: [id]
  partitions: 2
  schema: {type: record, name: Play, fields: [{name: id, type: long}, {name: country, type: string},
           {name: amount, type: double}, {name: fee, type: double}, {name: movie_id, type: long}, {name: ts, type: long}]}
---
kind: Source
metadata: {name: movies, owner: test}
spec:
  connector: ingest
  key: [movie_id]
  schema: {type: record, name: Movie, fields: [{name: movie_id, type: long}, {name: title, type: string}]}
---
kind: Pipeline
metadata: {name: us-plays, owner: test}
spec:
  from: [plays]
  steps:
    - filter: "country = 'US' AND amount > 0"
    - project: [id, movie_id, country, ts, "amount AS paid", "amount + fee AS gross"]
    - enrich: {with: movies, on: movie_id, fields: [title]}
  to: [{source: us-plays}]
---
kind: Pipeline
metadata: {name: by-country, owner: test}
spec:
  from: [us-plays]
  steps:
    - aggregate: {window: {type: tumbling, size: 1m}, time: ts, group_by: [country], aggregates: ["sum(gross) AS total"]}
  to: [{sink: {type: file, path: out/by-country.jsonl, format: jsonl}}]
YAML
r=$("$bin" apply -f "$data/specs.yaml" 2>&1) && ok apply || bad apply "$r"

# wait until both pipelines compile (derived source registered)
for _ in $(seq 100); do
  out=$("$bin" lineage plays.country --downstream -o json 2>&1)
  [[ $out == *'"pipeline:by-country"'* ]] && break
  sleep 0.1
done
has() { /usr/bin/python3 -c '
import json, sys
g = json.load(open(sys.argv[1]))
want = sys.argv[2:]
ids = {n["id"] for n in g["nodes"]}
edges = {(e["from"], e["to"], e["subtype"], e.get("pipeline", "")) for e in g["edges"]}
for w in want:
    if w.startswith("!"):
        if w[1:] in ids: sys.exit("unexpected node " + w[1:])
    elif "|" in w:
        f, t, s, p = (w.split("|") + [""])[:4]
        if not any(e[0] == f and e[1] == t and e[2] == s and (not p or e[3] == p) for e in edges):
            sys.exit("no edge " + w)
    elif w not in ids:
        sys.exit("no node " + w)
' "$@"; }

# what breaks if plays.country changes
echo "$out" >"$data/down.json"
r=$(has "$data/down.json" us-plays.country pipeline:us-plays pipeline:by-country \
      sink:by-country/sink/0.country sink:by-country/sink/0.total \
      "plays.country|us-plays.country|IDENTITY|us-plays" "plays.country|us-plays.title|FILTER|us-plays" \
      "us-plays.country|pipeline.by-country.out.total|GROUP_BY|by-country" '!plays.amount' '!movies.title' 2>&1) \
  && ok downstream_of_field || bad downstream_of_field "$r: $out"

# where the gross amount comes from: both inputs of the computed field
"$bin" lineage us-plays.gross --upstream -o json >"$data/up.json" 2>&1
r=$(has "$data/up.json" plays.amount plays.fee "plays.amount|us-plays.gross|TRANSFORMATION|us-plays" \
      "plays.fee|us-plays.gross|TRANSFORMATION|us-plays" '!sink:by-country/sink/0.total' 2>&1) \
  && ok upstream_computed_field || bad upstream_computed_field "$r: $(cat "$data/up.json")"
"$bin" lineage us-plays.paid --upstream -o json >"$data/paid.json" 2>&1
r=$(has "$data/paid.json" "plays.amount|us-plays.paid|IDENTITY|us-plays" '!plays.fee' 2>&1) \
  && ok upstream_renamed_field || bad upstream_renamed_field "$r"

# the sink's aggregate, back to the first source, through the derived source
"$bin" lineage sink:by-country/sink/0.total --upstream -o json >"$data/sink.json" 2>&1
r=$(has "$data/sink.json" plays.amount plays.fee us-plays.gross "us-plays.gross|pipeline.by-country.out.total|AGGREGATION|by-country" 2>&1) \
  && ok upstream_of_sink_column || bad upstream_of_sink_column "$r"

# table output and dot
out=$("$bin" lineage plays.country --downstream 2>&1)
[[ $out == *NODE*KIND* && $out == *"us-plays.country"*field* && $out == *FROM*TO*SUBTYPE*PIPELINE* && $out == *IDENTITY*us-plays* ]] \
  && ok table_output || bad table_output "$out"
out=$("$bin" lineage us-plays -o dot 2>&1)
[[ $out == "digraph lineage {"* && $out == *'"plays" -> "pipeline:us-plays"'* && $out == *'shape=box'* ]] \
  && ok dot_output || bad dot_output "$out"

# datasets and pipelines: one edge from plays is the pipeline reading it, no further
curl -s "$DATAMESH_SERVER/api/v1/lineage?node=plays&direction=downstream&depth=1" >"$data/d1.json"
r=$(has "$data/d1.json" plays pipeline:us-plays "plays|pipeline:us-plays|INPUT" '!us-plays' '!pipeline:by-country' 2>&1) \
  && ok api_depth || bad api_depth "$r: $(cat "$data/d1.json")"
code=$(curl -s -o "$data/e.json" -w '%{http_code}' "$DATAMESH_SERVER/api/v1/lineage?node=plays&direction=sideways")
[[ $code == 400 && $(cat "$data/e.json") == *"upstream, downstream or both"* ]] && ok api_bad_direction || bad api_bad_direction "$code $(cat "$data/e.json")"

# unknown names say what is missing
out=$("$bin" lineage plays.nope 2>&1); rc=$?
[[ $rc -ne 0 && $out == *"source plays has no field 'nope'"* ]] && ok unknown_field || bad unknown_field "$rc $out"
out=$("$bin" lineage nothing-here 2>&1); rc=$?
[[ $rc -ne 0 && $out == *"'nothing-here'"* ]] && ok unknown_node || bad unknown_node "$rc $out"

# a schema change: plays gains a field (a new version of its schema), a new pipeline
# reads it; lineage follows at once and what was there stays
sed -e 's/{name: ts, type: long}\]}/{name: ts, type: long}, {name: city, type: string, default: ""}]}/' "$data/specs.yaml" >"$data/specs2.yaml"
cat >>"$data/specs2.yaml" <<'YAML'
---
kind: Pipeline
metadata: {name: cities, owner: test}
spec:
  from: [plays]
  steps:
    - project: [id, "city AS town"]
  to: [{source: cities}]
YAML
r=$("$bin" apply -f "$data/specs2.yaml" 2>&1) && ok apply_schema_change || bad apply_schema_change "$r"
for _ in $(seq 50); do
  "$bin" lineage plays.city --downstream -o json >"$data/city.json" 2>&1 && grep -q cities.town "$data/city.json" && break
  sleep 0.1
done
r=$(has "$data/city.json" "plays.city|cities.town|IDENTITY|cities" pipeline:cities '!us-plays.country' 2>&1) \
  && ok lineage_after_schema_change || bad lineage_after_schema_change "$r: $(cat "$data/city.json")"
"$bin" lineage plays.country --downstream -o json >"$data/down2.json" 2>&1
r=$(has "$data/down2.json" "plays.country|us-plays.country|IDENTITY|us-plays" sink:by-country/sink/0.country 2>&1) \
  && ok lineage_kept_after_schema_change || bad lineage_kept_after_schema_change "$r"
[[ $(/usr/bin/python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["problems"]))' "$data/down2.json") == 0 ]] \
  && ok no_problems || bad no_problems "$(cat "$data/down2.json")"

# Kept with the catalog: after a restart the graph is replayed from the stored
# fragments (no pipeline compiled) and is exactly the graph it was; one apply
# recompiles only that pipeline; a deleted pipeline leaves the graph.
curl -s "$DATAMESH_SERVER/api/v1/lineage" >"$data/before.json"
stop
start || exit 1
curl -s "$DATAMESH_SERVER/api/v1/lineage" >"$data/after.json"
# the same nodes and edges (their order follows the store's, which a restart reads by name)
same() { /usr/bin/python3 -c '
import json, sys
def norm(f):
    g = json.load(open(f))
    return (sorted(json.dumps(n, sort_keys=True) for n in g["nodes"]),
            sorted(json.dumps(e, sort_keys=True) for e in g["edges"]), g["problems"])
a, b = norm(sys.argv[1]), norm(sys.argv[2])
if a != b: sys.exit("differ: %d/%d nodes, %d/%d edges" % (len(a[0]), len(b[0]), len(a[1]), len(b[1])))
' "$@"; }
r=$(same "$data/before.json" "$data/after.json" 2>&1) && ok same_graph_after_restart || bad same_graph_after_restart "$r"
line=$(grep "component=lineage graph of" "$data/up.log" | tail -1)
[[ $line == *"graph of 3 pipelines: "[123]" replayed from kept fragments"* ]] \
  && ok replayed_after_restart || bad replayed_after_restart "$line"
sed -i 's/"amount + fee AS gross"/"amount - fee AS gross"/' "$data/specs2.yaml"
r=$("$bin" apply -f "$data/specs2.yaml" 2>&1) && ok apply_one_change || bad apply_one_change "$r"
"$bin" lineage us-plays.gross --upstream -o json >"$data/up2.json" 2>&1
line=$(grep "component=lineage graph of" "$data/up.log" | tail -1)
[[ $line == *"graph of 3 pipelines: 2 replayed from kept fragments, 1 compiled"* ]] \
  && ok one_compiled_after_apply || bad one_compiled_after_apply "$line"
r=$(has "$data/up2.json" "plays.fee|us-plays.gross|TRANSFORMATION|us-plays" 2>&1) \
  && ok lineage_after_one_change || bad lineage_after_one_change "$r"
r=$("$bin" delete pipeline cities 2>&1) && ok delete_pipeline || bad delete_pipeline "$r"
"$bin" lineage plays.city --downstream -o json >"$data/city2.json" 2>&1
r=$(has "$data/city2.json" '!pipeline:cities' '!cities.town' 2>&1) \
  && ok deleted_pipeline_gone || bad deleted_pipeline_gone "$r: $(cat "$data/city2.json")"
stop
start || exit 1
"$bin" lineage plays.city --downstream -o json >"$data/city3.json" 2>&1
line=$(grep "component=lineage graph of" "$data/up.log" | tail -1)
r=$(has "$data/city3.json" '!pipeline:cities' 2>&1) && [[ $line == *"graph of 2 pipelines: 2 replayed from kept fragments, 0 compiled"* ]] \
  && ok deleted_stays_gone_after_restart || bad deleted_stays_gone_after_restart "$r $line"

# a new schema version of movies: only the pipeline reading it (us-plays, its enrich) is
# compiled again; by-country reads the same graph and is replayed
cat >"$data/movies2.yaml" <<'YAML'
kind: Source
metadata: {name: movies, owner: test}
spec:
  connector: ingest
  key: [movie_id]
  schema: {type: record, name: Movie, fields: [{name: movie_id, type: long}, {name: title, type: string},
           {name: year, type: int, default: 0}]}
YAML
r=$("$bin" apply -f "$data/movies2.yaml" 2>&1) && ok apply_movies_v2 || bad apply_movies_v2 "$r"
"$bin" lineage movies.year --downstream -o json >"$data/year.json" 2>&1
line=$(grep "component=lineage graph of" "$data/up.log" | tail -1)
r=$(has "$data/year.json" movies.year 2>&1) \
  && [[ $line == *"graph of 2 pipelines: 1 replayed from kept fragments, 1 compiled"* ]] \
  && ok schema_version_recompiles_its_reader || bad schema_version_recompiles_its_reader "$r $line"

stop
dm_e2e_summary
