# tests/integration/iceberg/readers.sh — installs the independent readers
# (hyparquet, icebird, @duckdb/node-api from npm) into $DM_BINARY_DIR/iceberg_readers once, copies
# the reader scripts next to them and prints that directory.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dir=${DM_BINARY_DIR:-/tmp}/iceberg_readers
mkdir -p "$dir"
cp "$here"/package.json "$here"/*.mjs "$here"/*.py "$dir/"
if [[ ! -d $dir/node_modules/icebird || ! -d $dir/node_modules/hyparquet-compressors || ! -d $dir/node_modules/@duckdb/node-api ]]; then
  if ! (cd "$dir" && npm install --no-audit --no-fund --loglevel=error >"$dir/install.log" 2>&1); then
    echo "npm install failed:" >&2
    tail -5 "$dir/install.log" >&2
    exit 1
  fi
fi
echo "$dir"
