#!/usr/bin/env bash
# needs:postgres-restartable, prometheus — alerts end to end. A pipeline
# writes a datagen source into Postgres; Postgres stops, so the sink cannot
# commit: the lag and stale-commit alerts go pending → firing in datamesh's
# own evaluator (API, CLI, status) and in a real Prometheus scraping /metrics
# with the generated rules loaded; a webhook receiver (answering 500 to its
# first request, so the notifier retries) gets the Alertmanager-format
# firing payload. Postgres comes back: both resolve, the receiver gets the
# resolved payload. Also: promtool check metrics / check rules / test rules on
# what datamesh serves, every metric named in rules and dashboards exists,
# and spec.alerts errors at apply name file:line:col.
set -u
bin=${DM_BIN:?}
source "$(dirname "$0")/../harness/lib.sh"
dm_e2e_setup
command -v promtool >/dev/null && command -v prometheus >/dev/null \
  || { echo "alerts.sh: prometheus and promtool are not installed (run scripts/bootstrap)" >&2; exit 1; }
[[ -n ${DM_PG_RESTART:-} ]] || { echo "alerts.sh: run under tests/harness/with-postgres-restartable" >&2; exit 1; }
pg_stop=${DM_PG_RESTART%% && *}
pg_start=${DM_PG_RESTART#* && }
q() { psql -X -q -t -A "$DM_PG_DSN" -c "$1" 2>&1; }
# until SECONDS COMMAND...: runs COMMAND every 0.2 s until it succeeds or SECONDS pass
until_ok() { local end=$((SECONDS + $1)); shift; until "$@"; do ((SECONDS < end)) || return 1; sleep 0.2; done; }
ppid_=; hpid=
trap 'kill -9 $pid $ppid_ $hpid 2>/dev/null; wait 2>/dev/null; rm -rf "$data"' EXIT

# ---- a webhook receiver on loopback: every body on its own line; the first request gets a 500
hport=$(dm_free_port)
cat >"$data/receiver.py" <<'PY'
import http.server, sys
log, port = sys.argv[1], int(sys.argv[2])
seen = [0]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get('Content-Length', 0)))
        seen[0] += 1
        with open(log + '.requests', 'a') as f: f.write('x\n')
        if seen[0] == 1:
            self.send_response(500); self.end_headers(); return
        with open(log, 'ab') as f: f.write(body.replace(b'\n', b' ') + b'\n')
        self.send_response(200); self.end_headers()
    def log_message(self, *a): pass
http.server.HTTPServer(('127.0.0.1', port), H).serve_forever()
PY
python3 "$data/receiver.py" "$data/hooks" "$hport" & hpid=$!

q "CREATE SCHEMA shop" >/dev/null
q "CREATE TABLE shop.items (id int PRIMARY KEY, name text); INSERT INTO shop.items VALUES (1, 'a')" >/dev/null
cat >"$data/specs.yaml" <<YAML
kind: Source
metadata: {name: items, owner: catalog}
spec:
  connector: postgres
  config: {dsn: "$DM_PG_DSN", tables: [shop.items], snapshot: initial, heartbeat: 500ms}
---
kind: Source
metadata: {name: orders, owner: shop}
spec:
  connector: datagen
  key: [id]
  partitions: 2
  schema: {type: record, name: Order, fields: [{name: id, type: long}, {name: amount, type: double}]}
  config: {rate: 50, keys: 1000, seed: 3}
---
kind: Pipeline
metadata: {name: orders-pg, owner: shop}
spec:
  from: [orders]
  steps: [{filter: "amount >= 0"}]
  to:
    - sink: {type: postgres, dsn: "$DM_PG_DSN", table: shop.orders, linger: 100ms}
  alerts:
    lag_seconds: {warning: 3, critical: 3600}
    stale_commit_seconds: 3
    for: 2s
    window: 10s
    labels: {team: shop-oncall}
---
kind: Pipeline
metadata: {name: order-counts, owner: shop}
spec:
  from: [orders]
  steps:
    - aggregate:
        window: {type: tumbling, size: 2s}
        group_by: [id]
        aggregates: ["count(*) AS n"]
  to: [{source: order-counts}]
YAML
start --alert-webhook "http://127.0.0.1:$hport/hook?token=hook-s3cret" --alert-interval 500ms
out=$("$bin" apply -f "$data/specs.yaml" 2>&1) && ok apply || bad apply "$out"
# rows in shop.orders, 0 until the sink has created it
rows() { local n; n=$(q "SELECT count(*) FROM shop.orders"); [[ $n =~ ^[0-9]+$ ]] && echo "$n" || echo 0; }
for _ in $(seq 200); do
  (($(rows) > 20)) && break; sleep 0.1
done
(($(rows) > 20)) && ok sink_writes || bad sink_writes "$(q "SELECT count(*) FROM shop.orders")"

# ---- what datamesh serves passes Prometheus's own checks
slot_metrics() { curl -fs "$DATAMESH_SERVER/metrics" | grep -q 'datamesh_postgres_slot_lag_bytes{pg_source="items"}'; }
wm_metrics() { curl -fs "$DATAMESH_SERVER/metrics" | grep -q 'datamesh_task_watermark_lag_seconds{task="order-counts/'; }
until_ok 30 wm_metrics || bad watermark_metrics "$(curl -fs "$DATAMESH_SERVER/api/v1/pipelines/order-counts/status")"
until_ok 30 slot_metrics || bad postgres_source_metrics "$(tail -5 "$data/up.log")"
curl -fs "$DATAMESH_SERVER/metrics" >"$data/metrics.txt"
out=$(promtool check metrics <"$data/metrics.txt" 2>&1) && ok promtool_check_metrics || bad promtool_check_metrics "$out"
for m in datamesh_task_input_lag_seconds datamesh_sink_input_lag_seconds datamesh_sink_last_commit_timestamp_seconds \
         datamesh_sink_end_to_end_seconds_bucket datamesh_unit_errors_total datamesh_unit_restarts_total datamesh_unit_failed; do
  grep -q "^$m{" "$data/metrics.txt" || bad "metric_$m" "not in /metrics"
done
"$bin" alerts rules >"$data/rules.yml" 2>&1 && ok cli_alerts_rules || bad cli_alerts_rules "$(head -5 "$data/rules.yml")"
cmp -s "$data/rules.yml" <(curl -fs "$DATAMESH_SERVER/api/v1/alerts/rules") && ok rules_cli_equals_api || bad rules_cli_equals_api ""
out=$(promtool check rules "$data/rules.yml" 2>&1) && ok promtool_check_rules || bad promtool_check_rules "$out"
grep -q 'name: "datamesh.source.items"' "$data/rules.yml" && grep -q DatameshPostgresSlotWalRetained "$data/rules.yml" \
  && ok source_rules || bad source_rules "$(grep name: "$data/rules.yml")"
grep -q 'owner: "shop"' "$data/rules.yml" && grep -q 'team: "shop-oncall"' "$data/rules.yml" && grep -q 'severity: critical' "$data/rules.yml" \
  && ok rules_labelled || bad rules_labelled "$(head -30 "$data/rules.yml")"
grep -q '> 3$\|> 3"' "$data/rules.yml" && grep -q 'for: 2s' "$data/rules.yml" && ok rules_overridden || bad rules_overridden "$(grep -m3 expr "$data/rules.yml")"
curl -fs "$DATAMESH_SERVER/api/v1/pipelines/orders-pg/dashboard" >"$data/dash.json" && python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["templating"]["list"][0]["type"] == "datasource", d["templating"]
assert len(d["panels"]) >= 8, len(d["panels"])
assert all(t["datasource"]["uid"] == "${datasource}" for p in d["panels"] for t in p["targets"])
 ' "$data/dash.json" && ok dashboard || bad dashboard "$(head -c 400 "$data/dash.json")"
curl -fs "$DATAMESH_SERVER/api/v1/pipelines/order-counts/dashboard" >"$data/dash2.json"
grep -q 'Watermark lag' "$data/dash2.json" && ! grep -q 'Watermark lag' "$data/dash.json" && ! grep -q 'datamesh_sink' "$data/dash2.json" \
  && ok dashboard_only_present_metrics || bad dashboard_only_present_metrics "$(grep -o '"title": *"[^"]*"' "$data/dash2.json")"
out=$("$bin" alerts dashboard nosuch 2>&1) && bad dashboard_unknown_pipeline "$out" || ok dashboard_unknown_pipeline
# Every metric a rule or a panel names is in /metrics (a typo in a rule fails here).
names=$(grep -oh 'datamesh_[a-z_]*{' "$data/rules.yml" "$data/dash.json" "$data/dash2.json" | tr -d '{' | sort -u)
missing=
for n in $names; do grep -q "^$n[{ ]" "$data/metrics.txt" || missing="$missing $n"; done
[[ -z $missing && $(wc -w <<<"$names") -ge 10 ]] && ok every_named_metric_exists || bad every_named_metric_exists "missing:$missing"

# ---- promtool test rules: series that fire and resolve each rule of the pipeline
cat >"$data/rules_test.yml" <<'YAML'
rule_files: [rules.yml]
evaluation_interval: 1s
tests:
  - interval: 1s
    input_series:
      - series: 'datamesh_task_input_lag_seconds{task="orders-pg/task/0"}'
        values: '0x2 5x6 0x14'
      - series: 'datamesh_unit_failed{kind="Pipeline",object="orders-pg",unit="orders-pg/sink/0"}'
        values: '0x2 1x6 0x14'
      - series: 'datamesh_sink_last_commit_timestamp_seconds{sink="orders-pg/sink/0",type="postgres"}'
        values: '0+1x2 2x6 10+1x14'
      - series: 'datamesh_sink_input_lag_seconds{sink="orders-pg/sink/0",type="postgres"}'
        values: '0x2 1x6 0x14'
      - series: 'datamesh_unit_restarts_total{kind="Pipeline",object="orders-pg",unit="orders-pg/sink/0"}'
        values: '0x2 1+1x6 7x14'
      - series: 'datamesh_task_records_in_total{task="orders-pg/task/0"}'
        values: '0+100x24'
      - series: 'datamesh_task_dead_letters_total{task="orders-pg/task/0"}'
        values: '0x2 0+50x6 300x14'
    alert_rule_test:
YAML
python3 - "$data/rules.yml" >>"$data/rules_test.yml" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
summary = dict(re.findall(r'alert: (\w+)\n(?:.*\n)*?\s+summary: (".*")', text))
cases = [  # alert, severity, rule, when it fires (all have resolved at 22 s)
    ("DatameshPipelineLagHigh", "warning", "lag", 6),
    ("DatameshPipelineFailed", "critical", "failed", 6),
    ("DatameshSinkCommitStale", "critical", "stale_commit", 9),
    ("DatameshPipelineRestartLoop", "warning", "restart_loop", 9),
    ("DatameshPipelineDeadLetters", "warning", "dead_letter_ratio", 9),
]
for alert, sev, rule, at in cases:
    print(f"      - eval_time: {at}s\n        alertname: {alert}\n        exp_alerts:")
    print(f"          - exp_labels: {{severity: {sev}, owner: shop, pipeline: orders-pg, "
          f"datamesh_rule: {rule}, team: shop-oncall}}")
    print(f"            exp_annotations: {{summary: {summary[alert]}}}")
    print(f"      - eval_time: 22s\n        alertname: {alert}\n        exp_alerts: []")
PY
out=$(cd "$data" && promtool test rules rules_test.yml 2>&1) && ok promtool_test_rules || bad promtool_test_rules "$out"

# ---- a real Prometheus scraping datamesh with the generated rules
pport=$(dm_free_port)
cat >"$data/prometheus.yml" <<YAML
global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [$data/rules.yml]
scrape_configs:
  - job_name: datamesh
    static_configs: [{targets: ["127.0.0.1:$port"]}]
YAML
prometheus --config.file="$data/prometheus.yml" --storage.tsdb.path="$data/tsdb" \
  --web.listen-address="127.0.0.1:$pport" >"$data/prometheus.log" 2>&1 & ppid_=$!
for _ in $(seq 300); do
  curl -fs "http://127.0.0.1:$pport/api/v1/targets" 2>/dev/null | grep -q '"health":"up"' && break; sleep 0.1
done
curl -fs "http://127.0.0.1:$pport/api/v1/targets" | grep -q '"health":"up"' && ok prometheus_scrapes || bad prometheus_scrapes "$(tail -5 "$data/prometheus.log")"
sleep 3
st=$(curl -fs "$DATAMESH_SERVER/api/v1/alerts")
[[ $st != *'"state":"firing"'* ]] && ok quiet_while_healthy || bad quiet_while_healthy "$st"

# ---- the sink's database goes away
eval "$pg_stop"
ours() { curl -fs "$DATAMESH_SERVER/api/v1/alerts" | python3 -c '
import json, sys
for a in json.load(sys.stdin)["alerts"]:
    if a["object"] == "orders-pg" and a["alert"] == sys.argv[1] and a["severity"] == sys.argv[2]: print(a["state"])
' "$1" "$2"; }
prom() { curl -fs "http://127.0.0.1:$pport/api/v1/alerts" | python3 -c '
import json, sys
for a in json.load(sys.stdin)["data"]["alerts"]:
    l = a["labels"]
    if l.get("pipeline") == "orders-pg" and l["alertname"] == sys.argv[1] and l["severity"] == sys.argv[2]: print(a["state"])
' "$1" "$2"; }
seen_pending= end=$((SECONDS + 40))
while ((SECONDS < end)); do
  s=$(ours DatameshPipelineLagHigh warning)
  [[ $s == pending ]] && seen_pending=1
  [[ $s == firing ]] && break; sleep 0.05
done
[[ -n $seen_pending ]] && ok datamesh_pending_first || bad datamesh_pending_first "never pending"
[[ $s == firing ]] && ok datamesh_lag_firing || bad datamesh_lag_firing "$(curl -s "$DATAMESH_SERVER/api/v1/alerts")"
is() { [[ $($1 "$2" "$3") == "$4" ]]; }
until_ok 30 is ours DatameshSinkCommitStale critical firing
[[ $(ours DatameshSinkCommitStale critical) == firing ]] && ok datamesh_stale_commit_firing || bad datamesh_stale_commit_firing "$(curl -s "$DATAMESH_SERVER/api/v1/alerts")"
until_ok 30 is prom DatameshPipelineLagHigh warning firing
[[ $(prom DatameshPipelineLagHigh warning) == firing ]] && ok prometheus_lag_firing || bad prometheus_lag_firing "$(curl -s "http://127.0.0.1:$pport/api/v1/alerts")"
until_ok 30 is prom DatameshSinkCommitStale critical firing
[[ $(prom DatameshSinkCommitStale critical) == firing ]] && ok prometheus_stale_commit_firing || bad prometheus_stale_commit_firing "$(curl -s "http://127.0.0.1:$pport/api/v1/alerts")"
# the sink starts over again and again (backoff 200 ms, 400 ms, ...): more than 3 in the 10 s window
s=$(ours DatameshPipelineRestartLoop warning)
[[ $s == firing || $s == resolved ]] && ok datamesh_restart_loop_fired || bad datamesh_restart_loop_fired "state '$s'"
out=$("$bin" alerts --state firing 2>&1)
[[ $out == *DatameshPipelineLagHigh*orders-pg*shop*firing* ]] && ok cli_alerts || bad cli_alerts "$out"
st=$(curl -fs "$DATAMESH_SERVER/api/v1/pipelines/orders-pg/status")
[[ $st == *'"alerts":'*DatameshPipelineLagHigh* ]] && ok status_shows_alerts || bad status_shows_alerts "$st"
until_ok 20 grep -q '"status":"firing"' "$data/hooks" 2>/dev/null
python3 - "$data/hooks" <<'PY' && ok webhook_firing || bad webhook_firing "$(cat "$data/hooks" 2>/dev/null)"
import json, sys
ps = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
f = [a for p in ps if p["status"] == "firing" for a in p["alerts"] if a["labels"]["alertname"] == "DatameshPipelineLagHigh"]
assert f, ps
p = next(p for p in ps if p["status"] == "firing")
assert p["version"] == "4" and p["receiver"] and "groupKey" in p, p
a = f[0]
assert a["status"] == "firing" and a["labels"]["owner"] == "shop" and a["labels"]["pipeline"] == "orders-pg", a
assert a["labels"]["team"] == "shop-oncall" and a["startsAt"] and a["annotations"]["summary"], a
PY
[[ $(wc -l <"$data/hooks.requests") -ge 2 ]] && grep -q "sending a notification failed (attempt 1" "$data/up.log" \
  && ok webhook_retried || bad webhook_retried "$(grep -i webhook "$data/up.log" | head -3)"
grep -q "hook-s3cret" "$data/up.log" && bad webhook_token_not_logged "$(grep hook-s3cret "$data/up.log" | head -2)" || ok webhook_token_not_logged

# ---- it comes back: everything resolves
eval "$pg_start"
both_resolved() { is ours DatameshPipelineLagHigh warning resolved && is ours DatameshSinkCommitStale critical resolved; }
until_ok 60 both_resolved
[[ $(ours DatameshPipelineLagHigh warning) == resolved ]] && ok datamesh_lag_resolved || bad datamesh_lag_resolved "$(curl -s "$DATAMESH_SERVER/api/v1/alerts")"
[[ $(ours DatameshSinkCommitStale critical) == resolved ]] && ok datamesh_stale_commit_resolved || bad datamesh_stale_commit_resolved "$(curl -s "$DATAMESH_SERVER/api/v1/alerts")"
until_ok 20 grep -q '"status":"resolved"' "$data/hooks"
python3 - "$data/hooks" <<'PY' && ok webhook_resolved || bad webhook_resolved "$(tail -2 "$data/hooks")"
import json, sys
ps = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
r = [a for p in ps if p["status"] == "resolved" for a in p["alerts"] if a["labels"]["alertname"] == "DatameshPipelineLagHigh"]
assert r and r[0]["status"] == "resolved" and not r[0]["endsAt"].startswith("0001"), ps
PY
prom_quiet() { [[ -z $(prom DatameshPipelineLagHigh warning) && -z $(prom DatameshSinkCommitStale critical) ]]; }
until_ok 30 prom_quiet
[[ -z $(prom DatameshPipelineLagHigh warning) && -z $(prom DatameshSinkCommitStale critical) ]] && ok prometheus_resolved || bad prometheus_resolved "$(curl -s "http://127.0.0.1:$pport/api/v1/alerts")"

# ---- new thresholds apply with the next read of the rules
sed -i 's/lag_seconds: {warning: 3, critical: 3600}/lag_seconds: {warning: 7, critical: 3600}/' "$data/specs.yaml"
out=$("$bin" apply -f "$data/specs.yaml" 2>&1) && "$bin" alerts rules | grep -q 'lag_seconds{sink=~\\"orders-pg/.\*\\"}) > 7"' \
  && ok thresholds_reapplied || bad thresholds_reapplied "$out $("$bin" alerts rules | grep -m2 LagHigh -A1)"

# ---- spec.alerts is checked at apply, located in the file
cat >"$data/bad.yaml" <<'YAML'
kind: Pipeline
metadata: {name: orders-bad, owner: shop}
spec:
  from: [orders]
  to: [{sink: {type: file, path: out/x.jsonl}}]
  alerts:
    lag_seconds: {warning: 900, critical: 300}
YAML
out=$("$bin" apply -f "$data/bad.yaml" 2>&1) && bad bad_alerts_refused "$out" || {
  [[ $out == *bad.yaml:7:* && $out == *spec.alerts.lag_seconds* && $out == *"above critical"* ]] && ok bad_alerts_refused || bad bad_alerts_refused "$out"; }
sed -i 's/lag_seconds: {warning: 900, critical: 300}/disabled: [lag, nosuchrule]/' "$data/bad.yaml"
out=$("$bin" apply -f "$data/bad.yaml" 2>&1) && bad unknown_rule_refused "$out" || {
  [[ $out == *bad.yaml:7:* && $out == *"spec.alerts.disabled[1]"* && $out == *nosuchrule* && $out == *stale_commit* ]] && ok unknown_rule_refused || bad unknown_rule_refused "$out"; }

kill "$ppid_" 2>/dev/null; wait "$ppid_" 2>/dev/null; ppid_=
stop
dm_e2e_summary
