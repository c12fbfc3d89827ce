#!/usr/bin/env bash
# The datamesh command line: help, version, per-command help, exit codes.
set -u
bin=${DM_BIN:?}
pass=0 fail=0
t() { # t NAME EXPECTED_EXIT PATTERN -- CMD...
  local name=$1 want=$2 pat=$3; shift 4
  local out rc
  out=$("$@" 2>&1); rc=$?
  if [[ $rc -eq $want ]] && grep -qE -- "$pat" <<<"$out"; then
    echo "ok   $name"; pass=$((pass+1))
  else
    echo "FAIL $name (exit $rc, wanted $want; output: ${out:0:300})"; fail=$((fail+1))
  fi
}
t version 0 '^datamesh [0-9]+\.[0-9]+\.[0-9]+$' -- "$bin" --version
t help 0 'commands:' -- "$bin" --help
t help_lists_all 0 'worker' -- "$bin" --help
t no_args 2 'usage: datamesh' -- "$bin"
t unknown 2 "unknown command 'frobnicate'" -- "$bin" frobnicate
for c in up apply get describe delete produce consume sql lineage schema avro bench worker log plugins; do
  t "help_$c" 0 "usage: datamesh $c" -- "$bin" "$c" --help
done
for c in $("$bin" --help | awk '/not implemented yet/ {print $1}'); do
  t "stub_$c" 2 "datamesh $c: not implemented yet" -- "$bin" "$c"
done
# plugins: offline, every kind with its settings; JSON; the Markdown reference.
t plugins_sources 0 '^  datagen — synthetic events' -- "$bin" plugins
t plugins_window 0 '^    window\.type +enum +required +tumbling, hopping, session' -- "$bin" plugins
t plugins_shorthand 0 'shorthand: - project: VALUE  =  \{columns: VALUE\}' -- "$bin" plugins
t plugins_json 0 '"name": "aggregate"' -- "$bin" plugins -o json
t plugins_docs 0 '^### elasticsearch$' -- "$bin" plugins --docs
t plugins_bad_format 2 "-o xml: expected table, json or yaml" -- "$bin" plugins -o xml
if [[ -n ${DM_SOURCE_DIR:-} ]]; then
  if "$bin" plugins --docs | cmp -s - "$DM_SOURCE_DIR/docs/plugins-reference.md"; then
    echo "ok   plugins_docs_fresh"; pass=$((pass+1))
  else
    echo "FAIL plugins_docs_fresh (docs/plugins-reference.md differs from datamesh plugins --docs)"; fail=$((fail+1))
  fi
fi
t up_bad_flag 2 'unrecognized option' -- "$bin" up --bogus
t up_bad_listen 1 'listen' -- "$bin" up --listen nonsense --data "$(mktemp -d)"
echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
