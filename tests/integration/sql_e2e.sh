#!/usr/bin/env bash
# Streaming SQL end to end, golden rows on deterministic input: a pipeline in
# SQL (filter, projection, a LEFT lookup join with a row that has no match), a
# UNION ALL of two sources whose fields come in another order, a tumbling
# window with a late record (a dead letter, not a silent drop), a `sql` step in
# a steps pipeline, field lineage through SQL, errors at line:col, push queries
# from the sources' end and --from-beginning, HOP and SESSION windows over 2
# partitions, and SELECT * following a field added to its source mid-stream.
set -u
bin=${DM_BIN:?}
source "$(dirname "$0")/../harness/lib.sh"
dm_e2e_setup
post() { curl -s -X POST --data "$2" "$DATAMESH_SERVER/api/v1/sources/$1/events"; }
# rows SOURCE N SECONDS: until SOURCE has N records, then prints them sorted
rows() {
  for _ in $(seq $(($3 * 10))); do
    [[ $("$bin" consume "$1" --from-beginning -n 1000 2>/dev/null | wc -l) -ge $2 ]] && break
    sleep 0.1
  done
  "$bin" consume "$1" --from-beginning -n 1000 2>/dev/null | /usr/bin/python3 -c '
import json, sys
for r in sorted(json.dumps(json.loads(l), sort_keys=True) for l in sys.stdin): print(r)'
}
expect() { # NAME GOT WANT
  if [[ "$2" == "$3" ]]; then ok "$1"; else bad "$1" "got: $2 want: $3 log: $(tail -5 "$data/up.log")"; fi
}

start
cat >"$data/sources.yaml" <<'YAML'
kind: Source
metadata: {name: plays, owner: playback}
spec:
  connector: ingest
  key: [id]
  partitions: 2
  schema: {type: record, name: Play, fields: [{name: id, type: long}, {name: movie_id, type: long}, {name: country, type: string}, {name: amount, type: long}, {name: ts, type: long}]}
---
kind: Source
metadata: {name: plays-eu, owner: playback}
spec:
  connector: ingest
  key: [id]
  partitions: 2
  schema: {type: record, name: PlayEu, namespace: eu, fields: [{name: ts, type: long}, {name: amount, type: long}, {name: country, type: string}, {name: movie_id, type: long}, {name: id, type: long}]}
---
kind: Source
metadata: {name: payments, owner: billing}
spec:
  connector: ingest
  key: [id]
  partitions: 2
  schema: {type: record, name: Payment, fields: [{name: id, type: long}, {name: paid, type: double}, {name: ts, type: long}]}
---
kind: Source
metadata: {name: movies, owner: catalog}
spec:
  connector: ingest
  key: [movie_id]
  schema: {type: record, name: Movie, fields: [{name: movie_id, type: long}, {name: title, type: string}]}
YAML
r=$("$bin" apply -f "$data/sources.yaml" 2>&1) && ok apply_sources || bad apply_sources "$r"
post movies '[{"movie_id":1,"title":"Alien"},{"movie_id":2,"title":"Brazil"}]' >/dev/null
sleep 0.5

cat >"$data/pipelines.yaml" <<'YAML'
kind: Pipeline
metadata: {name: us-titles, owner: growth}
spec:
  sql: |
    -- US plays with the movie's title; a movie not in the table keeps its row
    SELECT p.id, p.amount * 100 AS cents, m.title
    FROM plays AS p LEFT JOIN movies AS m ON p.movie_id = m.movie_id
    WHERE p.country = 'US' AND p.amount > 0
  to: [{source: us-titles}]
---
kind: Pipeline
metadata: {name: all-plays, owner: growth}
spec:
  sql: >
    SELECT id, country FROM plays WHERE amount > 0
    UNION ALL
    SELECT id, country FROM `plays-eu` WHERE amount > 0
  to: [{source: all-plays}]
---
kind: Pipeline
metadata: {name: per-minute, owner: growth}
spec:
  sql: >
    SELECT window_start, window_end, country, COUNT(*) AS n, SUM(amount) AS total
    FROM TABLE(TUMBLE(TABLE plays, DESCRIPTOR(ts), INTERVAL '10' SECOND))
    GROUP BY window_start, window_end, country
  idle_timeout: 5s
  to: [{source: per-minute}]
---
kind: Pipeline
metadata: {name: paid-plays, owner: growth}
spec:
  sql: >
    SELECT p.id, y.paid, y.ts AS paid_at
    FROM plays p JOIN payments y
      ON p.id = y.id AND y.ts BETWEEN p.ts - INTERVAL '5' SECOND AND p.ts
  idle_timeout: 5s
  to: [{source: paid-plays}]
---
kind: Pipeline
metadata: {name: doubled, owner: growth}
spec:
  from: [plays]
  steps:
    - filter: "country <> 'XX'"
    - sql: "SELECT id, amount * 2 AS twice FROM input WHERE amount > 1"
  to: [{source: doubled}]
YAML
r=$("$bin" apply -f "$data/pipelines.yaml" 2>&1) && ok apply_sql_pipelines || bad apply_sql_pipelines "$r"
sleep 1
post plays '[{"id":1,"movie_id":1,"country":"US","amount":2,"ts":1000},
             {"id":2,"movie_id":9,"country":"US","amount":3,"ts":2000},
             {"id":3,"movie_id":2,"country":"FR","amount":4,"ts":3000},
             {"id":4,"movie_id":2,"country":"US","amount":0,"ts":4000}]' >/dev/null
post plays-eu '[{"ts":5000,"amount":5,"country":"DE","movie_id":1,"id":5},
                {"ts":6000,"amount":0,"country":"DE","movie_id":1,"id":6}]' >/dev/null
# interval join: a payment at most 5 s before its play joins; one after it does not
post payments '[{"id":1,"paid":1.5,"ts":500},{"id":2,"paid":2.5,"ts":2500},{"id":3,"paid":3.5,"ts":3000},{"id":9,"paid":9.5,"ts":1000}]' >/dev/null
sleep 0.5
# moves event time past the first window on every partition (left out by the other queries)
close=$(/usr/bin/python3 -c 'import json; print(json.dumps([{"id":100+i,"movie_id":1,"country":"ZZ","amount":0,"ts":25000} for i in range(16)]))')
post plays "$close" >/dev/null

expect lookup_join_left "$(rows us-titles 2 20)" '{"cents": 200, "id": 1, "title": "Alien"}
{"cents": 300, "id": 2, "title": null}'
expect union_reordered_fields "$(rows all-plays 4 20)" '{"country": "DE", "id": 5}
{"country": "FR", "id": 3}
{"country": "US", "id": 1}
{"country": "US", "id": 2}'
expect interval_join "$(rows paid-plays 2 20)" '{"id": 1, "paid": 1.5, "paid_at": 500}
{"id": 3, "paid": 3.5, "paid_at": 3000}'
expect sql_step "$(rows doubled 3 20)" '{"id": 1, "twice": 4}
{"id": 2, "twice": 6}
{"id": 3, "twice": 8}'
expect tumbling_window "$(rows per-minute 2 30 | sed 's/T00:00:\([01]\)0[.0-9]*Z*/T00:00:\10/g')" '{"country": "FR", "n": 1, "total": 4, "window_end": "1970-01-01T00:00:10", "window_start": "1970-01-01T00:00:00"}
{"country": "US", "n": 3, "total": 5, "window_end": "1970-01-01T00:00:10", "window_start": "1970-01-01T00:00:00"}'

# a record for the closed window is a dead letter, not a silent drop
post plays '[{"id":20,"movie_id":1,"country":"US","amount":7,"ts":1500},{"id":21,"movie_id":1,"country":"US","amount":7,"ts":1500}]' >/dev/null
found=
for _ in $(seq 100); do
  m=$(curl -s "$DATAMESH_SERVER/metrics")
  grep -q 'datamesh_processor_dead_letters_total{task="per-minute/[^"]*",processor="aggregate"[^}]*} [1-9]' <<<"$m" && { found=1; break; }
  sleep 0.1
done
[[ -n $found ]] && ok late_record_dead_letter || bad late_record_dead_letter "$(grep dead_letters <<<"$m")"

# lineage through SQL: cents is computed from plays.amount; title comes from movies
"$bin" lineage us-titles.cents --upstream -o json >"$data/l.json" 2>&1
/usr/bin/python3 -c '
import json, sys
g = json.load(open(sys.argv[1]))
e = {(x["from"], x["to"], x["subtype"]) for x in g["edges"]}
assert ("plays.amount", "us-titles.cents", "TRANSFORMATION") in e, e' "$data/l.json" 2>"$data/err" \
  && ok lineage_through_sql || bad lineage_through_sql "$(cat "$data/err") $(head -c 600 "$data/l.json")"
"$bin" lineage us-titles.title --upstream -o json >"$data/t.json" 2>&1
grep -q '"movies.title"' "$data/t.json" && ok lineage_join_field || bad lineage_join_field "$(head -c 600 "$data/t.json")"

# errors: an unknown column at line:col with the closest name, the line and a caret
cat >"$data/bad.yaml" <<'YAML'
kind: Pipeline
metadata: {name: bad, owner: growth}
spec:
  sql: |
    SELECT id
    FROM plays WHERE amout > 0
  to: [{source: bad}]
YAML
r=$("$bin" apply -f "$data/bad.yaml" 2>&1)
st=$(curl -s "$DATAMESH_SERVER/api/v1/pipelines/bad/status")
for _ in $(seq 50); do
  grep -q 'amout' <<<"$st" && break; sleep 0.1; st=$(curl -s "$DATAMESH_SERVER/api/v1/pipelines/bad/status")
done
[[ "$st$r" == *"SQL line 2, column 18: no column 'amout' in plays; did you mean 'amount'?"* ]] \
  && ok error_did_you_mean || bad error_did_you_mean "$r $st"
cat >"$data/bad2.yaml" <<'YAML'
kind: Pipeline
metadata: {name: bad2, owner: growth}
spec:
  sql: "SELECT id FROM plays ORDER BY ts"
  to: [{source: bad2}]
YAML
r=$("$bin" apply -f "$data/bad2.yaml" 2>&1) && bad error_order_by "accepted" || { [[ $r == *"ORDER BY on a stream"* && $r == *"hint"* ]] && ok error_order_by || bad error_order_by "$r"; }
# datamesh sql: a push query printing rows as they come, cleaned up on exit
out=$(timeout 60 "$bin" sql "SELECT id, amount * 2 AS twice FROM plays WHERE country = 'FR'" -n 1 -o json --from-beginning 2>&1)
[[ $out == '{"id":3,"twice":8}' ]] && ok push_query_from_beginning || bad push_query_from_beginning "$out"
left=$(curl -s "$DATAMESH_SERVER/api/v1/pipelines")
[[ $left != *sql-query-* ]] && ok push_query_cleaned_up || bad push_query_cleaned_up "$left"
# without --from-beginning a push query reads its sources from their end: the
# NL play already there (id 41) is not its row, one appended once it runs is
post plays '[{"id":41,"movie_id":1,"country":"NL","amount":10,"ts":30000}]' >/dev/null
timeout 60 "$bin" sql "SELECT id, amount * 2 AS twice FROM plays WHERE country = 'NL'" -n 1 -o json \
  >"$data/push.out" 2>&1 &
push=$!
q=
for _ in $(seq 300); do
  q=$(curl -s "$DATAMESH_SERVER/api/v1/pipelines" | grep -o 'sql-query-[0-9-]*' | head -1)
  [[ -n $q ]] && [[ $(curl -s "$DATAMESH_SERVER/api/v1/pipelines/$q/status") == *'"state":"running"'* ]] && break
  sleep 0.1
done
sleep 1 # its tasks have taken their positions
post plays '[{"id":40,"movie_id":1,"country":"NL","amount":20,"ts":30000}]' >/dev/null
wait "$push"
[[ $(cat "$data/push.out") == '{"id":40,"twice":40}' ]] && ok push_query_from_latest \
  || bad push_query_from_latest "$q $(cat "$data/push.out")"
cat >"$data/script.sql" <<'SQL'
-- a derived source in SQL, then its plan
CREATE SOURCE fr_plays WITH (owner = 'growth', description = 'plays in France')
  AS SELECT id, amount FROM plays WHERE country = 'FR';
EXPLAIN SELECT id FROM plays WHERE amount > 1;
SQL
out=$("$bin" sql -f "$data/script.sql" 2>&1)
[[ $out == *"created source fr_plays"* && $out == *"fused chain"* && $out == *'filter {"expr":"amount > 1"}'* ]] \
  && ok sql_script || bad sql_script "$out"
expect create_source_as "$(rows fr_plays 1 20)" '{"amount": 4, "id": 3}'
out=$("$bin" sql "SELECT id FROM plays WHERE amout > 1" 2>&1)
[[ $out == *"SQL line 1, column 28: no column 'amout' in plays; did you mean 'amount'?"* && $out == *"^"* ]] \
  && ok push_query_error || bad push_query_error "$out"
out=$("$bin" sql "DROP SOURCE fr_plays; SHOW SOURCES" 2>&1)
[[ $out == *"dropped source fr_plays"* && $out == *plays-eu*playback* ]] && ok drop_and_show || bad drop_and_show "$out"
# POST /api/v1/sql: statements in order; an error names the statement, line and column
r=$(curl -s -X POST --data "EXPLAIN SELECT id FROM plays WHERE amount > 1; DESCRIBE movies" "$DATAMESH_SERVER/api/v1/sql")
/usr/bin/python3 -c '
import json, sys
r = json.loads(sys.argv[1])["results"]
assert [x["kind"] for x in r] == ["explain", "describe"], r
assert "fused chain" in r[0]["explain"] and r[0]["plan"]["stages"], r[0]
assert json.dumps(r[1]["source"]).find("title") > 0, r[1]' "$r" 2>"$data/err" && ok api_sql || bad api_sql "$(cat "$data/err") $r"
code=$(curl -s -o "$data/e.json" -w '%{http_code}' -X POST --data '{"sql": "SHOW SOURCES;\nSELECT id FROM plays WHERE amout = 1"}' "$DATAMESH_SERVER/api/v1/sql")
[[ $code == 400 ]] && grep -q "SQL line 2, column 28: no column 'amout'" "$data/e.json" && ok api_sql_error_position || bad api_sql_error_position "$code $(cat "$data/e.json")"

# HOP and SESSION windows on deterministic input over 2 partitions (grouped by
# user: re-keyed, so a user's records meet from both partitions)
cat >"$data/windows.yaml" <<'YAML'
kind: Source
metadata: {name: clicks, owner: web}
spec:
  connector: ingest
  key: [id]
  partitions: 2
  schema: {type: record, name: Click, fields: [{name: id, type: long}, {name: user, type: string}, {name: n, type: long}, {name: ts, type: long}]}
---
kind: Pipeline
metadata: {name: hops, owner: web}
spec:
  sql: >
    SELECT window_start, window_end, `user`, COUNT(*) AS c, SUM(n) AS total
    FROM TABLE(HOP(TABLE clicks, DESCRIPTOR(ts), INTERVAL '5' SECOND, INTERVAL '10' SECOND))
    WHERE `user` <> 'zz'
    GROUP BY window_start, window_end, `user`
  idle_timeout: 5s
  to: [{source: hops}]
---
kind: Pipeline
metadata: {name: sessions, owner: web}
spec:
  sql: >
    SELECT window_start, window_end, `user`, COUNT(*) AS c, SUM(n) AS total
    FROM TABLE(SESSION(TABLE clicks, DESCRIPTOR(ts), INTERVAL '3' SECOND))
    WHERE `user` <> 'zz'
    GROUP BY window_start, window_end, `user`
  idle_timeout: 5s
  to: [{source: sessions}]
YAML
r=$("$bin" apply -f "$data/windows.yaml" 2>&1) && ok apply_windows || bad apply_windows "$r"
sleep 1
post clicks '[{"id":1,"user":"a","n":1,"ts":1000},{"id":2,"user":"b","n":2,"ts":1500},
              {"id":3,"user":"a","n":4,"ts":2000},{"id":4,"user":"b","n":8,"ts":3500},
              {"id":5,"user":"a","n":16,"ts":6000},{"id":6,"user":"a","n":32,"ts":12000}]' >/dev/null
sleep 0.5
close=$(/usr/bin/python3 -c 'import json; print(json.dumps([{"id":100+i,"user":"zz","n":0,"ts":40000} for i in range(16)]))')
post clicks "$close" >/dev/null
# window bounds as seconds, so the golden rows read plainly
secs() { /usr/bin/python3 -c '
import datetime, json, sys
def s(v):
    if isinstance(v, str):
        v = datetime.datetime.fromisoformat(v.rstrip("Z")).replace(tzinfo=datetime.timezone.utc).timestamp() * 1000
    return int(v) // 1000
for l in sys.stdin:
    r = json.loads(l); r["window_start"] = s(r["window_start"]); r["window_end"] = s(r["window_end"])
    print(json.dumps(r, sort_keys=True))' | sort; }
expect hop_window "$(rows hops 6 30 | secs)" '{"c": 1, "total": 32, "user": "a", "window_end": 20, "window_start": 10}
{"c": 2, "total": 10, "user": "b", "window_end": 10, "window_start": 0}
{"c": 2, "total": 10, "user": "b", "window_end": 5, "window_start": -5}
{"c": 2, "total": 48, "user": "a", "window_end": 15, "window_start": 5}
{"c": 2, "total": 5, "user": "a", "window_end": 5, "window_start": -5}
{"c": 3, "total": 21, "user": "a", "window_end": 10, "window_start": 0}'
expect session_window "$(rows sessions 4 30 | secs)" '{"c": 1, "total": 16, "user": "a", "window_end": 9, "window_start": 6}
{"c": 1, "total": 32, "user": "a", "window_end": 15, "window_start": 12}
{"c": 2, "total": 10, "user": "b", "window_end": 6, "window_start": 1}
{"c": 2, "total": 5, "user": "a", "window_end": 5, "window_start": 1}'

# SELECT * follows the source's schema: a nullable field added mid-stream
# shows up in the rows after it; an explicit column list stays as it was
cat >"$data/events.yaml" <<'YAML'
kind: Source
metadata: {name: events, owner: web}
spec:
  connector: ingest
  key: [id]
  partitions: 2
  schema: {type: record, name: Event, fields: [{name: id, type: long}, {name: v, type: long}]}
---
kind: Pipeline
metadata: {name: all-events, owner: web}
spec:
  sql: "SELECT * FROM events WHERE v > 0"
  to: [{source: all-events}]
---
kind: Pipeline
metadata: {name: some-events, owner: web}
spec:
  sql: "SELECT id, v FROM events WHERE v > 0"
  to: [{source: some-events}]
YAML
r=$("$bin" apply -f "$data/events.yaml" 2>&1) && ok apply_events || bad apply_events "$r"
sleep 1
post events '[{"id":1,"v":1},{"id":2,"v":0},{"id":3,"v":3}]' >/dev/null
rows all-events 2 20 >/dev/null
sed -i 's/{name: v, type: long}]}/{name: v, type: long}, {name: tag, type: ["null", string], default: null}]}/' "$data/events.yaml"
r=$("$bin" apply -f "$data/events.yaml" 2>&1) && ok reapply_events_added_field || bad reapply_events_added_field "$r"
sleep 1
r=$(post events '[{"id":4,"v":4,"tag":"x"},{"id":5,"v":5,"tag":null},{"id":6,"v":0,"tag":"y"},{"id":7,"v":7,"tag":"z"}]')
[[ $r == '{"accepted":4}' ]] || bad ingest_events_v2 "$r"
expect select_star_follows_schema "$(rows all-events 5 30)" '{"id": 1, "v": 1}
{"id": 3, "v": 3}
{"id": 4, "tag": "x", "v": 4}
{"id": 5, "tag": null, "v": 5}
{"id": 7, "tag": "z", "v": 7}'
expect column_list_stays "$(rows some-events 5 30)" '{"id": 1, "v": 1}
{"id": 3, "v": 3}
{"id": 4, "v": 4}
{"id": 5, "v": 5}
{"id": 7, "v": 7}'
stop
dm_e2e_summary
