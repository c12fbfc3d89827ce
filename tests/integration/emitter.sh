#!/usr/bin/env bash
# The emitter library end to end (examples/emitter/emit.c over
# libdatamesh_emitter): events validated locally and delivered in binary
# batches; the controller SIGKILLed mid-stream and restarted → every event
# exactly once in the source (the ingest side skips what a producer's retry
# repeats), the undelivered batches kept in the spool meanwhile; a bad event
# refused with its field named; an unreachable controller at creation named.
set -u
source "$(dirname "$0")/../harness/lib.sh"
bin=${DM_BIN:?}
emit=${DM_BINARY_DIR:?}/emitter_example
dm_e2e_setup
py() { /usr/bin/python3 -c "$@"; }

start || exit 1
cat >"$data/clicks.yaml" <<'YAML'
kind: Source
metadata: {name: clicks, owner: web}
spec:
  connector: ingest
  key: [user]
  partitions: 2
  schema: {type: record, name: Click, fields: [{name: user, type: string}, {name: seq, type: long}]}
YAML
out=$("$bin" apply -f "$data/clicks.yaml" 2>&1) && ok apply_source || bad apply_source "$out"

out=$(printf '{"user":"a","seq":-1}\n{"user":5,"seq":-2}\n' | "$emit" "$DATAMESH_SERVER" clicks 2>&1)
[[ $out == *'line 2: source clicks: $.user: expected string, got an integer'* && $out == *'1 delivered'* ]] && ok bad_event_refused_locally || bad bad_event_refused_locally "$out"
out=$("$emit" http://127.0.0.1:1 clicks </dev/null 2>&1)
[[ $out == *'fetching the schema of source clicks from http://127.0.0.1:1'* ]] && ok unreachable_at_creation_named || bad unreachable_at_creation_named "$out"

# The binary endpoint: a producer's retried batch is written once, an
# overlapping one only for its new records (sequence numbers), a wrong schema
# id refused naming it.
id=$(curl -s "$DATAMESH_SERVER/subjects/clicks-value/versions/latest" | py 'import json,sys; print(json.load(sys.stdin)["id"])')
batch() { # batch FIRST SEQ... → a binary body on stdout (seq values -100-SEQ, user "dup")
  py 'import sys,struct
def varint(n):
    n=(n<<1)^(n>>63); b=b""
    while True:
        if n<0x80: return b+bytes([n])
        b+=bytes([(n&0x7f)|0x80]); n>>=7
sid=int(sys.argv[1]); first=int(sys.argv[2]); seqs=[int(x) for x in sys.argv[3:]]
body=b"DMB1"+bytes([8])+b"testprod"+struct.pack(">QI",first,len(seqs))
for q in seqs:
    v=varint(3)+b"dup"+varint(-100-q)
    rec=b"\x00"+struct.pack(">I",sid)+v
    body+=struct.pack(">I",len(rec))+rec
sys.stdout.buffer.write(body)' "$id" "$@"
}
post_batch() { curl -s -X POST --data-binary @- -H 'Content-Type: application/vnd.datamesh.batch' "$DATAMESH_SERVER/api/v1/sources/clicks/events/avro"; }
r1=$(batch 0 0 1 | post_batch); r2=$(batch 0 0 1 | post_batch); r3=$(batch 1 1 2 | post_batch)
n=$("$bin" consume clicks --from-beginning -n 100000 | grep -c '"user":"dup"')
[[ $r1 == '{"accepted":2}' && $r2 == '{"accepted":2}' && $r3 == '{"accepted":2}' && $n -eq 3 ]] && ok binary_batches_deduplicated || bad binary_batches_deduplicated "$r1 $r2 $r3, $n written"
r=$(py 'import sys,struct; sys.stdout.buffer.write(b"DMB1"+bytes([8])+b"testprod"+struct.pack(">QI",9,1)+struct.pack(">I",6)+b"\x00\x00\x00\x03\xe7\x02")' | post_batch)
[[ $r == *'record 0: schema id 999 is not source clicks'* ]] && ok wrong_schema_id_refused || bad wrong_schema_id_refused "$r"

# 30000 events paced over ~3 s; the controller is SIGKILLed after ~1 s and
# restarted 1.5 s later on the same port and data.
total=30000
py 'import sys,time
for i in range(30000):
    sys.stdout.write("{\"user\":\"u%d\",\"seq\":%d}\n" % (i % 13, i))
    if i % 500 == 499:
        sys.stdout.flush(); time.sleep(0.05)' | "$emit" "$DATAMESH_SERVER" clicks "$data/spool" >"$data/emit.out" 2>"$data/emit.err" &
epid=$!
sleep 1
kill -9 "$pid"; wait "$pid" 2>/dev/null
sleep 1.5
start || exit 1
wait "$epid"; erc=$?
[[ $erc -eq 0 ]] && ok emitter_delivered_all || bad emitter_delivered_all "rc $erc: $(cat "$data/emit.out" "$data/emit.err" | tail -5)"
grep -q 'delivery failed, retrying' "$data/emit.err" && ok retried_while_down || bad retried_while_down "$(cat "$data/emit.err")"
grep -Eq "$total delivered, [1-9][0-9]* retries, [1-9][0-9]* spooled" "$data/emit.out" && ok counted_retried_spooled || bad counted "$(cat "$data/emit.out")"
"$bin" consume clicks --from-beginning -n 1000000 >"$data/all" 2>&1
py 'import json,sys
seqs=[json.loads(l)["seq"] for l in open(sys.argv[1]) if l.startswith("{")]
seqs=[s for s in seqs if s >= 0]
want=set(range(int(sys.argv[2])))
dup=len(seqs)-len(set(seqs))
missing=len(want-set(seqs))
assert dup==0 and missing==0, "%d duplicates, %d missing of %d" % (dup, missing, len(want))' "$data/all" "$total" 2>"$data/err" && ok exactly_once_across_controller_kill || bad exactly_once_across_controller_kill "$(cat "$data/err")"
[[ ! -s $data/spool/clicks.spool ]] && ok spool_drained || bad spool_drained "$(ls -la "$data/spool")"

# Spool bounds: the controller down, a 64 KiB queue and a 128 KiB spool fill
# up; the next event is refused after max_block_ms (not lost: the emitter
# says so and stops taking events), the spool never passes its bound, and
# once the controller is back every accepted event is delivered once.
before=$("$bin" consume clicks --from-beginning -n 1000000 | wc -l)
mkfifo "$data/fifo"
EMIT_QUEUE_BYTES=65536 EMIT_SPOOL_BYTES=131072 EMIT_MAX_BLOCK_MS=300 EMIT_BATCH_RECORDS=100 EMIT_BATCH_BYTES=8192 \
  "$emit" "$DATAMESH_SERVER" clicks "$data/spool2" <"$data/fifo" >"$data/emit2.out" 2>"$data/emit2.err" &
epid=$!
exec 7>"$data/fifo"
sleep 0.5 # the emitter has its schema
kill -9 "$pid"; wait "$pid" 2>/dev/null
py 'import sys
for i in range(100000, 140000):
    try:
        sys.stdout.write("{\"user\":\"spool\",\"seq\":%d}\n" % i); sys.stdout.flush()
    except BrokenPipeError:
        break' >&7 2>/dev/null &
wpid=$!
exec 7>&-
for _ in $(seq 100); do grep -q 'not accepted' "$data/emit2.err" && break; sleep 0.1; done
grep -q 'bytes wait for delivery (queue_bytes) for 300 ms; not accepted' "$data/emit2.err" && ok full_refused_after_max_block || bad full_refused_after_max_block "$(tail -3 "$data/emit2.err")"
size=$(stat -c %s "$data/spool2/clicks.spool" 2>/dev/null || echo 0)
[[ $size -gt 0 && $size -le 131072 ]] && ok spool_within_bound || bad spool_within_bound "spool is $size bytes"
start || exit 1
wait "$epid"
kill "$wpid" 2>/dev/null; wait "$wpid" 2>/dev/null
accepted=$(grep -o '^[0-9]* events queued' "$data/emit2.out" | grep -o '^[0-9]*')
"$bin" consume clicks --from-beginning -n 1000000 >"$data/all2" 2>&1
got=$(grep -c '"user":"spool"' "$data/all2")
uniq=$(grep '"user":"spool"' "$data/all2" | sort -u | wc -l)
[[ -n $accepted && $accepted -gt 0 && $got -eq $accepted && $uniq -eq $got ]] && ok spooled_delivered_once || bad spooled_delivered_once "accepted ${accepted:-?}, in the source $got ($uniq distinct): $(cat "$data/emit2.out"; tail -5 "$data/emit2.err")"

# A new schema version without a restart: an emitter running on version 1
# of "views" sees the source re-applied with a field added. An event with
# the new field is taken at once (it does not fit version 1, so the emitter
# looks the latest version up before refusing it); the periodic lookup
# (EMIT_SCHEMA_CHECK_MS) says so; events queued under version 1 and sent
# after the change are still taken (the ingest side reads an older version
# of the subject as the current one). Nothing refused, nothing lost.
views() { # views EXTRA_FIELDS
  cat >"$data/views.yaml" <<YAML
kind: Source
metadata: {name: views, owner: web}
spec:
  connector: ingest
  partitions: 2
  schema: {type: record, name: View, fields: [{name: user, type: string}, {name: n, type: long}$1]}
YAML
  "$bin" apply -f "$data/views.yaml" 2>&1
}
out=$(views "") && ok apply_views_v1 || bad apply_views_v1 "$out"
mkfifo "$data/vfifo"
EMIT_SCHEMA_CHECK_MS=300 EMIT_BATCH_RECORDS=1 \
  "$emit" "$DATAMESH_SERVER" views <"$data/vfifo" >"$data/v.out" 2>"$data/v.err" &
epid=$!
exec 8>"$data/vfifo"
for i in 1 2 3; do echo "{\"user\":\"old\",\"n\":$i}" >&8; done
sleep 0.5
out=$(views ', {name: country, type: string, default: "?"}') && ok apply_views_v2 || bad apply_views_v2 "$out"
echo '{"user":"new","n":4,"country":"fr"}' >&8 # does not fit version 1: looked up at once
for _ in $(seq 50); do grep -q 'is now' "$data/v.err" && break; sleep 0.1; done
echo '{"user":"new","n":5}' >&8 # version 2, its default
exec 8>&-
wait "$epid"; erc=$?
[[ $erc -eq 0 ]] && grep -q '^5 events queued, 5 delivered, .* 0 refused' "$data/v.out" && ok new_version_without_restart || bad new_version_without_restart "rc $erc: $(cat "$data/v.out" "$data/v.err")"
grep -q 'source views: schema id [0-9]* is now [0-9]*' "$data/v.err" && ok new_version_said || bad new_version_said "$(cat "$data/v.err")"
"$bin" consume views --from-beginning -n 100 >"$data/vall" 2>&1
[[ $(grep -c '"user"' "$data/vall") -eq 5 && $(grep -c '"country":"fr"' "$data/vall") -eq 1 ]] && ok new_field_in_source || bad new_field_in_source "$(cat "$data/vall")"
# the periodic lookup alone: version 3 registered while the emitter idles
mkfifo "$data/vfifo3"
EMIT_SCHEMA_CHECK_MS=200 "$emit" "$DATAMESH_SERVER" views <"$data/vfifo3" >"$data/v3.out" 2>"$data/v3.err" &
epid=$!
exec 8>"$data/vfifo3"
sleep 0.5
out=$(views ', {name: country, type: string, default: "?"}, {name: lang, type: string, default: "en"}') && ok apply_views_v3 || bad apply_views_v3 "$out"
for _ in $(seq 50); do grep -q 'is now' "$data/v3.err" && break; sleep 0.1; done
grep -q 'source views: schema id [0-9]* is now [0-9]*' "$data/v3.err" && ok periodic_lookup || bad periodic_lookup "$(cat "$data/v3.err")"
exec 8>&-
wait "$epid"
stop
dm_e2e_summary
