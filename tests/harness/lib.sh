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
