#!/usr/bin/env bash
# End-to-end: `datamesh schema compat|fingerprint` and `datamesh avro write|cat`
# through the binary, with python3-avro reading what we write.
set -euo pipefail
bin=${DM_BIN:-${DM_BINARY_DIR:-build}/datamesh}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
ok() { echo "ok   $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1"; fail=$((fail + 1)); }
expect_rc() { # name want_rc cmd...
  local name=$1 want=$2; shift 2
  local rc=0; "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
  if [[ $rc == "$want" ]]; then ok "$name"; else bad "$name (rc=$rc, want $want)"; cat "$tmp/out" "$tmp/err"; fi
}

cat >"$tmp/v1.avsc" <<'J'
{"type":"record","name":"Play","namespace":"demo","fields":[
 {"name":"id","type":"long"},{"name":"country","type":"string"},
 {"name":"amount","type":["null","double"],"default":null},
 {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}}]}
J
sed 's/"default":null}/"default":null},{"name":"device","type":"string"}/' "$tmp/v1.avsc" >"$tmp/v2.avsc"
sed 's/"default":null}/"default":null},{"name":"device","type":"string","default":"web"}/' "$tmp/v1.avsc" >"$tmp/v3.avsc"
echo '{"type":' >"$tmp/broken.avsc"

expect_rc "compat BACKWARD incompatible exits 1" 1 "$bin" schema compat --level BACKWARD "$tmp/v2.avsc" "$tmp/v1.avsc"
grep -q 'device' "$tmp/out" && ok "compat names the field" || bad "compat names the field"
expect_rc "compat FORWARD compatible exits 0" 0 "$bin" schema compat --level FORWARD "$tmp/v2.avsc" "$tmp/v1.avsc"
expect_rc "compat FULL_TRANSITIVE with default exits 0" 0 "$bin" schema compat --level FULL_TRANSITIVE "$tmp/v3.avsc" "$tmp/v1.avsc" "$tmp/v1.avsc"
expect_rc "compat bad schema exits 2" 2 "$bin" schema compat --level FULL "$tmp/v1.avsc" "$tmp/broken.avsc"
expect_rc "compat bad level exits 2" 2 "$bin" schema compat --level SIDEWAYS "$tmp/v1.avsc" "$tmp/v1.avsc"
expect_rc "fingerprint" 0 "$bin" schema fingerprint "$tmp/v1.avsc"
grep -q '^rabin ' "$tmp/out" && grep -q '"name":"demo.Play"' "$tmp/out" && ok "fingerprint output" || bad "fingerprint output"

printf '%s\n' '{"id":1,"country":"US","amount":2.5,"at":"2024-01-02T03:04:05Z"}' \
  '{"id":2,"country":"FR","at":0}' >"$tmp/in.jsonl"
for codec in null deflate snappy zstandard; do
  rc=0; "$bin" avro write --schema "$tmp/v1.avsc" --codec $codec <"$tmp/in.jsonl" >"$tmp/$codec.avro" || rc=$?
  [[ $rc == 0 ]] && ok "avro write --codec $codec" || bad "avro write --codec $codec"
  "$bin" avro cat "$tmp/$codec.avro" >"$tmp/cat.jsonl"
  if grep -q '"at":"2024-01-02T03:04:05Z"' "$tmp/cat.jsonl" && [[ $(wc -l <"$tmp/cat.jsonl") == 2 ]]; then
    ok "avro cat $codec"; else bad "avro cat $codec"; cat "$tmp/cat.jsonl"; fi
done
if /usr/bin/python3 -c 'import avro' 2>/dev/null; then
  n=$(/usr/bin/python3 -c "
import avro.datafile, avro.io, sys
r = avro.datafile.DataFileReader(open(sys.argv[1], 'rb'), avro.io.DatumReader())
print(sum(1 for _ in r))" "$tmp/deflate.avro")
  [[ $n == 2 ]] && ok "python3-avro reads our deflate file" || bad "python3-avro reads our deflate file"
fi
"$bin" avro cat --fields country,id "$tmp/deflate.avro" >"$tmp/proj.jsonl"
[[ $(head -1 "$tmp/proj.jsonl") == '{"id":1,"country":"US"}' ]] && ok "avro cat --fields" || bad "avro cat --fields"
"$bin" avro cat --reader-schema "$tmp/v3.avsc" "$tmp/deflate.avro" >"$tmp/res.jsonl"
grep -q '"device":"web"' "$tmp/res.jsonl" && ok "avro cat --reader-schema fills defaults" || bad "avro cat --reader-schema fills defaults"
expect_rc "avro cat --reader-schema incompatible exits 1" 1 "$bin" avro cat --reader-schema "$tmp/v2.avsc" "$tmp/deflate.avro"
grep -q 'device' "$tmp/err" && ok "resolution error names the field" || bad "resolution error names the field"
printf '{"id":"x"}\n' >"$tmp/bad.jsonl"
expect_rc "avro write rejects a mismatched record" 1 "$bin" avro write --schema "$tmp/v1.avsc" <"$tmp/bad.jsonl"
grep -q 'line 1: \$.id: expected long' "$tmp/err" && ok "error names line and field" || bad "error names line and field"
head -c $(($(stat -c %s "$tmp/deflate.avro") - 10)) "$tmp/deflate.avro" >"$tmp/cut.avro"
expect_rc "avro cat reports a truncated file" 1 "$bin" avro cat "$tmp/cut.avro"
grep -q 'truncated' "$tmp/err" && ok "truncation reported" || bad "truncation reported"

echo "$pass passed, $fail failed"
[[ $fail == 0 ]]
