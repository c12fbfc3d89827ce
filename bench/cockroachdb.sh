#!/usr/bin/env bash
# bench/run cockroachdb — CPU per event of a cockroachdb source taking
# changefeed webhook bodies (documented format: {"payload": [...], "length"},
# 1,000 rows a body, 4 partitions) against the baseline of the same rows POSTed
# to an ingest source's /events (the same HTTP server, JSON → Avro → topic
# without the changefeed envelope, de-duplication or position). Both run in the
# same `datamesh up`, one after the other; CPU is the controller's (utime +
# stime from /proc). ratio = ingest µs per event / cockroachdb µs per event.
set -euo pipefail
bin=${DM_BIN:?}
source "$(dirname "$0")/../tests/harness/lib.sh"
dm_e2e_setup
bodies=${BODIES:-60}
start || exit 1
cat >"$data/s.yaml" <<YAML
kind: Source
metadata: {name: feed, owner: bench}
spec:
  connector: cockroachdb
  schema: {type: record, name: Order, fields: [{name: id, type: long},
           {name: item, type: ["null", string], default: null}, {name: qty, type: int}]}
  key: [id]
  partitions: 4
  config: {dsn: "host=unused", table: shop.public.orders, create: false}
---
kind: Source
metadata: {name: plain, owner: bench}
spec:
  connector: ingest
  schema: {type: record, name: Order, fields: [{name: id, type: long},
           {name: item, type: ["null", string], default: null}, {name: qty, type: int}]}
  key: [id]
  partitions: 4
YAML
"$bin" apply -f "$data/s.yaml" >/dev/null
/usr/bin/python3 - "$data" "$bodies" <<'PY'
import json, sys
d, n = sys.argv[1], int(sys.argv[2])
for b in range(n):
    rows = [{"id": b * 1000 + i, "item": "item %d" % i, "qty": i} for i in range(1000)]
    msgs = [{"after": r, "before": None, "key": [r["id"]], "topic": "orders",
             "updated": "%d.0000000000" % (1700000000000000000 + r["id"])} for r in rows]
    open("%s/c%d.json" % (d, b), "w").write(json.dumps({"payload": msgs, "length": len(msgs)}))
    open("%s/i%d.json" % (d, b), "w").write(json.dumps(rows))
PY
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
post_all() { # post_all PREFIX PATH
  for b in $(seq 0 $((bodies - 1))); do
    code=$(curl -s -o /dev/null -w '%{http_code}' -X POST --data-binary @"$data/$1$b.json" \
      "$DATAMESH_SERVER/api/v1/sources/$2")
    for _ in $(seq 50); do [[ $code == 503 ]] || break; sleep 0.1  # a source still starting
      code=$(curl -s -o /dev/null -w '%{http_code}' -X POST --data-binary @"$data/$1$b.json" \
        "$DATAMESH_SERVER/api/v1/sources/$2"); done
    [[ $code == 200 ]] || { echo "POST $2 body $b: HTTP $code" >&2; exit 1; }
  done
}
tck=$(getconf CLK_TCK)
c0=$(cpu); post_all i plain/events; c1=$(cpu); post_all c feed/changefeed; c2=$(cpu)
stop
/usr/bin/python3 - "$c0" "$c1" "$c2" "$tck" "$bodies" <<'PY'
import sys
c0, c1, c2, tck, bodies = map(float, sys.argv[1:])
n = bodies * 1000
base = (c1 - c0) / tck / n * 1e6
crdb = (c2 - c1) / tck / n * 1e6
print("baseline  ingest /events       %8.2f us CPU per event (%d events)" % (base, n))
print("datamesh  cockroachdb webhook  %8.2f us CPU per event (%d events)" % (crdb, n))
print("cockroachdb ratio=%.2f target=0.5" % (base / crdb if crdb > 0 else 0))
PY
