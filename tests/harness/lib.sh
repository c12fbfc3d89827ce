# tests/harness/lib.sh — shared pieces of the server wrappers.

# Prints a TCP port on 127.0.0.1 that is free right now.
dm_free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Runs a command as a service user when we are root (servers refuse root),
# as ourselves otherwise.
dm_as() {
  local user=$1; shift
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u "$user" -- "$@"
  else
    "$@"
  fi
}

# A temporary directory the service user can write.
dm_service_tmpdir() {
  local user=$1 dir
  dir=$(mktemp -d "${TMPDIR:-/tmp}/dm-$user.XXXXXX")
  if [[ $(id -u) -eq 0 ]]; then chown "$user" "$dir"; fi
  echo "$dir"
}

# Starts `$DM_BIN up` on 127.0.0.1:$2 with data directory $1 (more arguments are
# passed on), logging to $3, and waits until /healthz answers. Sets dm_pid.
dm_controller_start() {
  local data=$1 port=$2 log=$3
  shift 3
  "${DM_BIN:?}" up --data "$data" --listen "127.0.0.1:$port" "$@" >>"$log" 2>&1 &
  dm_pid=$!
  for _ in $(seq 200); do
    curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return 0
    kill -0 "$dm_pid" 2>/dev/null || break
    sleep 0.05
  done
  echo "controller did not start:"; cat "$log"
  return 1
}

# The common frame of an end-to-end script: ok/bad with pass/fail counts, a
# temporary $data directory, a free $port with DATAMESH_SERVER pointing at it,
# start [ARGS] / stop of a controller on $data/dm (a clean stop: exit 0 and no
# sanitizer report), and cleanup on exit. End the script with dm_e2e_summary.
dm_e2e_setup() {
  pass=0 fail=0
  data=$(mktemp -d)
  port=$(dm_free_port)
  export DATAMESH_SERVER=http://127.0.0.1:$port
  pid=
  trap 'kill -9 $pid 2>/dev/null; rm -rf "$data"' EXIT
}
ok() { echo "ok   $1"; pass=$((pass+1)); }
bad() { echo "FAIL $1: ${2:0:800}"; fail=$((fail+1)); }
start() { dm_controller_start "$data/dm" "$port" "$data/up.log" "$@"; pid=$dm_pid; }
stop() {
  kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; local rc=$?
  if [[ $rc -ne 0 ]] || grep -q "Sanitizer" "$data/up.log"; then
    bad clean_stop "exit $rc: $(grep -A5 Sanitizer "$data/up.log" | head -20)"
  fi
}
dm_e2e_summary() {
  printf '%d passed, %d failed\n' "$pass" "$fail"
  [[ $fail -eq 0 ]]
}

# A topic on the librdkafka mock cluster (it has no CreateTopics): made through
# the harness's control pipe (tests/harness/with-kafka-mock), NAME PARTITIONS.
mk_topic() {
  echo "topic $1 $2 3" >"$DM_KAFKA_MOCK_CTL"
  for _ in $(seq 100); do grep -q "^created $1\$" "$DM_KAFKA_MOCK_OUT" && return 0; sleep 0.05; done
  echo "mock did not create $1"; return 1
}
