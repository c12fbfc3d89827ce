#!/usr/bin/env bash
# OpenLineage export: `datamesh up --openlineage URL` with the endpoint down at first
# (the pipeline runs meanwhile; events wait and arrive once it is up), RunEvents checked
# against the spec's required members and facet shapes, START → RUNNING → COMPLETE with
# one runId for a pipeline's deployment, and file:// JSON lines; FAIL (with the
# errorMessage facet) when a unit fails, ABORT for what still runs at a clean stop.
set -u
bin=${DM_BIN:?}
source "$(dirname "$0")/../harness/lib.sh"
dm_e2e_setup
olport=$(dm_free_port)
start --openlineage "http://127.0.0.1:$olport/api/v1/lineage" || exit 1
py() { /usr/bin/python3 "$@"; }

cat >"$data/specs.yaml" <<'YAML'
kind: Source
metadata: {name: plays, owner: test}
spec:
  connector: ingest
  key: [id]
  schema: {type: record, name: Play, fields: [{name: id, type: long}, {name: country, type: string}, {name: amount, type: double}]}
---
kind: Pipeline
metadata: {name: us-plays, owner: test}
spec:
  from: [plays]
  steps:
    - filter: "country = 'US'"
    - project: [id, "amount * 100 AS cents"]
  to: [{source: us-plays}]
YAML
r=$("$bin" apply -f "$data/specs.yaml" 2>&1) && ok apply || bad apply "$r"

# the endpoint is down: the pipeline runs all the same
curl -s -X POST --data '[{"id":1,"country":"US","amount":2.5},{"id":2,"country":"FR","amount":1}]' \
  "$DATAMESH_SERVER/api/v1/sources/plays/events" >/dev/null
n=0
for _ in $(seq 100); do
  n=$("$bin" consume us-plays --from-beginning -n 10 2>/dev/null | wc -l)
  [[ $n -ge 1 ]] && break
  sleep 0.1
done
[[ $n -eq 1 ]] && ok pipeline_runs_while_endpoint_down || bad pipeline_runs_while_endpoint_down "$n records"
for _ in $(seq 50); do
  fails=$(curl -s "$DATAMESH_SERVER/metrics" | awk '/^datamesh_openlineage_failures_total/ {print $2}')
  [[ ${fails:-0} -ge 1 ]] && break
  sleep 0.1
done
[[ ${fails:-0} -ge 1 ]] && ok failures_counted || bad failures_counted "failures=${fails:-none}"

# the endpoint comes up: a server recording every POST body as a line
cat >"$data/srv.py" <<'PY'
import http.server, sys
out = sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with open(out, "ab") as f:
            f.write(body + b"\n")
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
/usr/bin/python3 "$data/srv.py" "$olport" "$data/events.jsonl" &
srv=$!
wait_event() { # wait_event TYPE JOB SECONDS
  for _ in $(seq $(($3 * 10))); do
    py - "$data/events.jsonl" "$1" "$2" <<'PY' && return 0
import json, sys
try:
    evs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
except OSError:
    sys.exit(1)
sys.exit(0 if any(e["eventType"] == sys.argv[2] and e["job"]["name"] == sys.argv[3] for e in evs) else 1)
PY
    sleep 0.1
  done
  return 1
}
wait_event START pipeline.us-plays 45 && wait_event START source.plays 5 \
  && ok events_arrive_when_endpoint_up || bad events_arrive_when_endpoint_up "$(cat "$data/events.jsonl" 2>&1 | head -c 600)"

# every event: the spec's required members and facet shapes
r=$(py - "$data/events.jsonl" "$port" <<'PY' 2>&1
import json, re, sys
evs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
ns = "datamesh://127.0.0.1:" + sys.argv[2]
uuid = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
for e in evs:
    for k in ("eventType", "eventTime", "producer", "schemaURL", "run", "job", "inputs", "outputs"):
        assert k in e, "no " + k
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", e["eventTime"]), e["eventTime"]
    assert e["schemaURL"].startswith("https://openlineage.io/spec/"), e["schemaURL"]
    assert uuid.match(e["run"]["runId"]), e["run"]["runId"]
    assert e["job"]["namespace"] == ns, e["job"]
    jt = e["job"]["facets"]["jobType"]
    assert jt["processingType"] == "STREAMING" and "_producer" in jt and "_schemaURL" in jt, jt
    for d in e["inputs"] + e["outputs"]:
        assert d["namespace"] and d["name"], d
        s = d["facets"]["schema"]
        assert "_producer" in s and "_schemaURL" in s and all("name" in f for f in s["fields"]), s
    for d in e["outputs"]:
        cl = d["facets"]["columnLineage"]
        assert "_producer" in cl and "_schemaURL" in cl, cl
        for f, v in cl["fields"].items():
            for i in v["inputFields"]:
                assert i["namespace"] and i["name"] and i["field"], i
                for t in i["transformations"]:
                    assert t["type"] in ("DIRECT", "INDIRECT"), t
start = [e for e in evs if e["eventType"] == "START" and e["job"]["name"] == "pipeline.us-plays"][0]
assert [d["name"] for d in start["inputs"]] == ["plays"], start["inputs"]
out = [d for d in start["outputs"] if d["name"] == "us-plays"][0]
cents = out["facets"]["columnLineage"]["fields"]["cents"]["inputFields"]
assert {"namespace": ns, "name": "plays", "field": "amount"}.items() <= cents[0].items() or any(
    i["name"] == "plays" and i["field"] == "amount" and
    any(t["subtype"] == "TRANSFORMATION" for t in i["transformations"]) for i in cents), cents
assert any(i["field"] == "country" and any(t["subtype"] == "FILTER" and t["type"] == "INDIRECT"
           for t in i["transformations"]) for i in cents), cents
print("ok")
PY
)
[[ $r == ok ]] && ok event_shapes || bad event_shapes "$r"

# a spec change: RUNNING, same run; a delete: COMPLETE, same run
sed "s/filter: \"country = 'US'\"/filter: \"country = 'US' AND amount > 0\"/" "$data/specs.yaml" >"$data/specs2.yaml"
grep -q "amount > 0" "$data/specs2.yaml" || bad spec_change_made "sed left the spec as it was"
r=$("$bin" apply -f "$data/specs2.yaml" 2>&1) && ok apply_change || bad apply_change "$r"
wait_event RUNNING pipeline.us-plays 10 && ok running_on_change || bad running_on_change "$(tail -c 600 "$data/events.jsonl")"
r=$("$bin" delete pipelines us-plays 2>&1) && ok delete || bad delete "$r"
wait_event COMPLETE pipeline.us-plays 10 && ok complete_on_delete || bad complete_on_delete "$(tail -c 600 "$data/events.jsonl")"
r=$(py - "$data/events.jsonl" <<'PY' 2>&1
import json, sys
evs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
runs = {e["run"]["runId"] for e in evs if e["job"]["name"] == "pipeline.us-plays"}
types = [e["eventType"] for e in evs if e["job"]["name"] == "pipeline.us-plays"]
assert len(runs) == 1, runs
assert types[0] == "START" and "RUNNING" in types and types[-1] == "COMPLETE", types
print("ok")
PY
)
[[ $r == ok ]] && ok one_run_per_deployment || bad one_run_per_deployment "$r"
sent=$(curl -s "$DATAMESH_SERVER/metrics" | awk '/^datamesh_openlineage_events_total/ {print $2}')
[[ ${sent:-0} -ge 4 ]] && ok sent_counted || bad sent_counted "sent=${sent:-none}"
stop
kill "$srv" 2>/dev/null; wait "$srv" 2>/dev/null

# file:// — JSON lines; what is deployed is reported when the controller starts
start --openlineage "file://$data/ol.jsonl" || exit 1
for _ in $(seq 50); do grep -q '"source.plays"' "$data/ol.jsonl" 2>/dev/null && break; sleep 0.1; done
r=$(py - "$data/ol.jsonl" <<'PY' 2>&1
import json, sys
evs = [json.loads(l) for l in open(sys.argv[1])]
assert any(e["eventType"] == "START" and e["job"]["name"] == "source.plays" and
           e["outputs"][0]["name"] == "plays" for e in evs), evs
print("ok")
PY
)
[[ $r == ok ]] && ok file_url || bad file_url "$r"

# a unit that fails (upserts into a table partitioned by a column outside the
# key: the iceberg sink stops when it opens, retrying cannot help): FAIL with
# the errorMessage facet; its sink is named as OpenLineage names a table
# location (namespace file, the table's directory). A clean stop: ABORT for what still ran.
cat >"$data/lake.yaml" <<YAML
kind: Source
metadata: {name: tags, owner: test}
spec:
  connector: ingest
  key: [id]
  schema: {type: record, name: Tag, fields: [{name: id, type: long}, {name: tag, type: ["null", string]}]}
---
kind: Pipeline
metadata: {name: lake, owner: test}
spec:
  from: [tags]
  to: [{sink: {type: iceberg, warehouse: $data/wh, table: db.plays, mode: upsert, primary_key: [id], partition_by: tag}}]
YAML
r=$("$bin" apply -f "$data/lake.yaml" 2>&1) && ok apply_failing_sink || bad apply_failing_sink "$r"
curl -s -X POST --data '[{"id":3,"tag":"a"}]' "$DATAMESH_SERVER/api/v1/sources/tags/events" >/dev/null
failed=
for _ in $(seq 100); do grep -q '"FAIL"' "$data/ol.jsonl" && { failed=1; break; }; sleep 0.1; done
[[ -n $failed ]] && ok fail_event || bad fail_event "$(tail -c 600 "$data/ol.jsonl")"
stop
r=$(py - "$data/ol.jsonl" "$data/wh/db/plays" <<'PY' 2>&1
import json, sys
evs = [json.loads(l) for l in open(sys.argv[1])]
fail = [e for e in evs if e["eventType"] == "FAIL"]
assert len(fail) == 1 and fail[0]["job"]["name"] == "pipeline.lake", [e["eventType"] for e in evs]
f = fail[0]["run"]["facets"]["errorMessage"]
assert "need that column in the primary key" in f["message"] and f["programmingLanguage"] and f["_schemaURL"].endswith("ErrorMessageRunFacet"), f
start = [e for e in evs if e["eventType"] == "START" and e["job"]["name"] == "pipeline.lake"][0]
assert fail[0]["run"]["runId"] == start["run"]["runId"]
outs = {(o["namespace"], o["name"]) for o in fail[0]["outputs"]}
assert ("file", sys.argv[2]) in outs, outs
aborted = {e["job"]["name"] for e in evs if e["eventType"] == "ABORT"}
assert "source.plays" in aborted and "source.tags" in aborted and "pipeline.lake" not in aborted, aborted
print("ok")
PY
)
[[ $r == ok ]] && ok fail_then_abort_on_stop || bad fail_then_abort_on_stop "$r"
start || exit 1
out=$("$bin" up --data "$data/x" --listen 127.0.0.1:0 --openlineage ftp://nowhere 2>&1); rc=$?
[[ $rc -ne 0 && $out == *"expected http://"* ]] && ok bad_url_refused || bad bad_url_refused "$rc $out"
stop
dm_e2e_summary
