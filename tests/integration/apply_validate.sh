#!/usr/bin/env bash
# Apply refuses what cannot run (issue 26): a Source whose inline schema the
# full Avro parser rejects (an undefined type, a default of the wrong type, two
# fields with one name, an invalid record name, a key field that is not a
# field), or a schema file that does, is refused by `apply`, `apply --dry-run`
# and the API alike, with the file:line:col of the offending field and its
# Avro path, and nothing is created. A schema (or key record) incompatible with
# the subject's live versions is refused naming the subject and the reason,
# and the source stays as it was; a compatible change is applied.
set -u
bin=${DM_BIN:?}
source "$(dirname "$0")/../harness/lib.sh"
dm_e2e_setup
start

# spec_with NAME FIELDS [KEY]: a Source spec with its schema in block style,
# so that each field sits on a line of its own (line 10 onwards).
spec_with() {
  printf 'kind: Source\nmetadata: {name: %s}\nspec:\n  connector: ingest\n  key: [%s]\n' "$1" "${3:-id}"
  printf '  schema:\n    type: record\n    name: %s\n    fields:\n' "${4:-R}"
  printf '%s\n' "$2"
}

# refused CASE FILE WANT: apply and apply --dry-run both exit non-zero with
# WANT in the message, the same message both ways.
refused() {
  local name=$1 file=$2 want=$3 dry real
  dry=$("$bin" apply --dry-run -f "$file" 2>&1) && { bad "$name: dry-run" "accepted: $dry"; return; }
  real=$("$bin" apply -f "$file" 2>&1) && { bad "$name: apply" "accepted: $real"; return; }
  [[ $real == *"$want"* ]] || { bad "$name" "got: $real; wanted: $want"; return; }
  [[ $dry == "$real" ]] || { bad "$name: dry-run says otherwise" "$dry / $real"; return; }
  ok "$name"
}

f=$data/undefined.yaml
spec_with x1 '      - {name: id, type: long}
      - {name: b, type: nope}' >"$f"
refused undefined_type "$f" "undefined.yaml:11:25: spec.schema.fields[1].type: not a valid Avro schema: \$.fields[1].type: type \"nope\" is used but never defined"

f=$data/default.yaml
spec_with x2 '      - {name: id, type: long}
      - {name: b, type: long, default: "x"}' >"$f"
refused wrong_default "$f" "default.yaml:11:40: spec.schema.fields[1].default: not a valid Avro schema: invalid default for field \"b\""

f=$data/twice.yaml
spec_with x3 '      - {name: id, type: long}
      - {name: id, type: int}' >"$f"
refused duplicate_field "$f" "twice.yaml:11:16: spec.schema.fields[1].name: not a valid Avro schema: \$.fields[1].name: field \"id\" appears twice"

f=$data/name.yaml
spec_with x4 '      - {name: id, type: long}' id '"9R"' >"$f"
refused invalid_record_name "$f" "name.yaml:8:11: spec.schema.name: not a valid Avro schema: \$.name: \"9R\" is not a valid name"

f=$data/key.yaml
spec_with x5 '      - {name: id, type: long}' nope >"$f"
refused missing_key_field "$f" "key.yaml:5:9: spec.key[0]: key field 'nope' is not a field of the schema"

printf '{"type": "record", "name": "F", "fields": [{"name": "id", "type": "long"}, {"name": "t", "type": "nope"}]}\n' >"$data/bad.avsc"
printf 'kind: Source\nmetadata: {name: x6}\nspec:\n  connector: ingest\n  schema: {file: bad.avsc}\n' >"$data/file.yaml"
refused schema_file "$data/file.yaml" "file.yaml:5:18: spec.schema.file: $data/bad.avsc: not a valid Avro schema: \$.fields[1].type: type \"nope\" is used but never defined"

# The API alone (no CLI validation in front): the same checks, at the request's text.
r=$(curl -s -w ' %{http_code}' -X POST --data-binary @"$data/undefined.yaml" "$DATAMESH_SERVER/api/v1/apply")
[[ $r == *'<request>:11:25: spec.schema.fields[1].type: not a valid Avro schema'*' 400' ]] && ok api_refuses || bad api_refuses "$r"

# A sink setting naming a column the pipeline's records do not have: refused at
# the sink, with the setting named (the sink would stop on it when it opens).
cat >"$data/sortby.yaml" <<'YAML'
kind: Source
metadata: {name: x7}
spec:
  connector: ingest
  schema: {type: record, name: X7, fields: [{name: id, type: long}]}
---
kind: Pipeline
metadata: {name: x7-lake}
spec:
  from: [x7]
  to: [{sink: {type: iceberg, warehouse: lake, table: db.x7, sort_by: "nope desc"}}]
YAML
refused iceberg_sort_by_column "$data/sortby.yaml" "sortby.yaml:11:15: Pipeline x7-lake: spec.to[0].sink: sort_by: iceberg: sort_by column nope is not a column of the table"
sed 's/sort_by: "nope desc"/primary_key: [nope]/' "$data/sortby.yaml" >"$data/pk.yaml"
refused iceberg_primary_key_column "$data/pk.yaml" "Pipeline x7-lake: spec.to[0].sink: primary_key[0]: iceberg: column nope is not in the rows"
# partition_by naming a column the records do not have: refused naming the
# column and the columns they have (a new table would not be created).
sed 's/sort_by: "nope desc"/partition_by: "day(nope)"/' "$data/sortby.yaml" >"$data/part.yaml"
refused iceberg_partition_by_column "$data/part.yaml" "part.yaml:11:15: Pipeline x7-lake: spec.to[0].sink: partition_by: iceberg: partition column 'nope' is not in the schema; the records have the columns id (partition by one of them, or leave partition_by empty)"
# An upsert key column the records may leave null: refused, saying how to fix it.
cat >"$data/nullkey.yaml" <<'YAML'
kind: Source
metadata: {name: x8}
spec:
  connector: ingest
  schema: {type: record, name: X8, fields: [{name: id, type: ["null", long]}, {name: v, type: string}]}
---
kind: Pipeline
metadata: {name: x8-lake}
spec:
  from: [x8]
  to: [{sink: {type: iceberg, warehouse: lake, table: db.x8, mode: upsert, primary_key: [id]}}]
YAML
refused iceberg_nullable_upsert_key "$data/nullkey.yaml" "nullkey.yaml:11:15: Pipeline x8-lake: spec.to[0].sink: primary_key[0]: iceberg: column id is nullable in the records, and upserts need a key that is never null: make id required in the schema (a type without null), or set primary_key to required columns"

# Nothing of the refused specs exists: no source, no subject, no topic.
srcs=$(curl -s "$DATAMESH_SERVER/api/v1/sources")
subj=$(curl -s "$DATAMESH_SERVER/subjects")
[[ $srcs != *'"x'[1-8]'"'* && $subj == '[]' ]] && ok nothing_created || bad nothing_created "$srcs $subj"

# Compatibility with the subject's live versions (BACKWARD by default).
spec_with g1 '      - {name: id, type: long}
      - {name: s, type: string}' >"$data/g1.yaml"
out=$("$bin" apply -f "$data/g1.yaml" 2>&1) && ok apply_v1 || bad apply_v1 "$out"
spec_with g1 '      - {name: id, type: long}
      - {name: s, type: string}
      - {name: n, type: int}' >"$data/g2.yaml"
# at the offending field's line:col (the third field), with the Avro path
refused incompatible_value "$data/g2.yaml" "g2.yaml:12:9: Source g1: spec.schema.fields[2]: schema is not BACKWARD compatible with subject \"g1-value\": BACKWARD: new schema reading old schema #1: \$.n: reader field \"n\" has no default value"
spec_with g1 '      - {name: id, type: long}
      - {name: s, type: string}' 'id, s' >"$data/g3.yaml"
refused incompatible_key "$data/g3.yaml" "g3.yaml:5:13: Source g1: spec.key[1]: schema is not BACKWARD compatible with subject \"g1-key\""
# a nested record's field: the line:col of that field
spec_with h1 '      - {name: id, type: long}
      - name: dev
        type: {type: record, name: Dev, fields: [{name: os, type: string}]}' >"$data/h1.yaml"
out=$("$bin" apply -f "$data/h1.yaml" 2>&1) && ok apply_nested_v1 || bad apply_nested_v1 "$out"
spec_with h1 '      - {name: id, type: long}
      - name: dev
        type:
          type: record
          name: Dev
          fields:
            - {name: os, type: string}
            - {name: ver, type: int}' >"$data/h2.yaml"
refused incompatible_nested_field "$data/h2.yaml" "h2.yaml:17:15: Source h1: spec.schema.fields[1].type.fields[1]: schema is not BACKWARD compatible"
v=$(curl -s "$DATAMESH_SERVER/subjects/g1-value/versions") k=$(curl -s "$DATAMESH_SERVER/subjects/g1-key/versions")
doc=$("$bin" get source g1 -o json 2>&1)
[[ $v == '[1]' && $k == '[1]' && $doc != *'"n"'* ]] && ok refused_changes_nothing || bad refused_changes_nothing "$v $k $doc"
spec_with g1 '      - {name: id, type: long}
      - {name: s, type: string}
      - {name: n, type: int, default: 0}' >"$data/g4.yaml"
out=$("$bin" apply -f "$data/g4.yaml" 2>&1) && [[ $out == *'register  Schema g1-value'* ]] && ok compatible_change || bad compatible_change "$out"
[[ $(curl -s "$DATAMESH_SERVER/subjects/g1-value/versions") == '[1,2]' ]] && ok second_version || bad second_version "$(curl -s "$DATAMESH_SERVER/subjects/g1-value/versions")"

# Only what apply registers is checked: the registry moves on (a version without
# s, registered beside datamesh at level NONE), and re-applying the unchanged
# source, which registers nothing, is still accepted; changing its schema is
# checked against that latest version and refused.
reg() { curl -s -X "$1" -H 'Content-Type: application/vnd.schemaregistry.v1+json' --data "$3" "$DATAMESH_SERVER$2"; }
reg PUT /config/g1-value '{"compatibility": "NONE"}' >/dev/null
reg POST /subjects/g1-value/versions '{"schema": "{\"type\": \"record\", \"name\": \"R\", \"fields\": [{\"name\": \"id\", \"type\": \"long\"}, {\"name\": \"n\", \"type\": \"int\", \"default\": 0}]}"}' >/dev/null
reg PUT /config/g1-value '{"compatibility": "BACKWARD"}' >/dev/null
[[ $(curl -s "$DATAMESH_SERVER/subjects/g1-value/versions") == '[1,2,3]' ]] || bad registry_moved_on "$(curl -s "$DATAMESH_SERVER/subjects/g1-value/versions")"
out=$("$bin" apply -f "$data/g4.yaml" 2>&1) && [[ $out == *'unchanged Source g1'* ]] && ok unchanged_source_not_checked || bad unchanged_source_not_checked "$out"
sed 's/default: 0}/default: 1}/' "$data/g4.yaml" >"$data/g5.yaml"
refused checked_against_latest "$data/g5.yaml" 'subject "g1-value": BACKWARD: new schema reading old schema #1: $.s: reader field "s" has no default value'

stop
dm_e2e_summary
