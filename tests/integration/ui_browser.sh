#!/usr/bin/env bash
# The web UI in a real browser (tests/ui/ui.test.mjs): playwright-core drives
# Debian's chromium headless against `datamesh up --demo`, and against a second
# controller with --auth for signing in. Screenshots of every page land in
# $DM_BINARY_DIR/ui-screenshots.
set -u
source "$(dirname "$0")/../harness/lib.sh"
dm_e2e_setup
bash "$DM_SOURCE_DIR/tests/ui/install" || { echo "FAIL install: playwright-core or chromium missing"; exit 1; }
export DATAMESH_HISTORY_INTERVAL_MS=500 # dashboards move within the test
start --demo || exit 1
port2=$(dm_free_port)
dm_controller_start "$data/auth" "$port2" "$data/auth.log" --auth --demo || exit 1
pid2=$dm_pid
trap 'kill -9 $pid $pid2 2>/dev/null; rm -rf "$data"' EXIT
shots=${DM_BINARY_DIR:-$data}/ui-screenshots
rm -rf "$shots"
node "$DM_SOURCE_DIR/tests/ui/ui.test.mjs" "http://127.0.0.1:$port" "http://127.0.0.1:$port2" "$data/auth/admin.token" "$shots"
rc=$?
[[ $rc -eq 0 ]] && ok browser || bad browser "ui.test.mjs failed (see above); screenshots in $shots"
kill -TERM "$pid2"; wait "$pid2" 2>/dev/null
stop
echo "screenshots: $shots"
dm_e2e_summary
