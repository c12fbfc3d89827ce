#!/usr/bin/env bash
# Hostile HTTP: slow clients holding connections (slowloris), oversized
# headers and bodies, garbage requests and many connections at once; the
# controller answers each with a 4xx or closes it, keeps its memory bounded and
# keeps serving /healthz throughout.
set -u
bin=${DM_BIN:?}
source "$(dirname "$0")/../harness/lib.sh"
pass=0 fail=0
ok() { echo "ok   $1"; pass=$((pass+1)); }
bad() { echo "FAIL $1: ${2:0:400}"; fail=$((fail+1)); }
data=$(mktemp -d)
port=$(dm_free_port)
trap 'kill -9 $dm_pid 2>/dev/null; rm -rf "$data"' EXIT
dm_controller_start "$data" "$port" "$data/up.txt"
pid=$dm_pid
rss() { awk '/VmRSS/ {print $2}' /proc/$pid/status; }
rss0=$(rss)

/usr/bin/python3 - "$port" >"$data/py.txt" 2>&1 <<'PY'
import socket, sys, time, urllib.request
port = int(sys.argv[1])
def healthy():
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).status == 200
    except Exception as e:
        return False
def result(name, cond, detail=""):
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else ": " + str(detail)))
# 1. slowloris: 200 connections that send half a request and stall
slow = []
for i in range(200):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    slow.append(s)
result("serves_during_slowloris", healthy())
# 2. a header larger than the connection's memory limit
s = socket.create_connection(("127.0.0.1", port))
s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200000 + b"\r\n\r\n")
s.settimeout(5)
try:
    reply = s.recv(100)
except Exception as e:
    reply = b""
result("huge_header_refused", reply[:12] in (b"HTTP/1.1 431", b"HTTP/1.1 413", b"HTTP/1.1 400") or reply == b"", reply[:40])
s.close()
# 3. garbage instead of HTTP
s = socket.create_connection(("127.0.0.1", port))
s.sendall(bytes(range(256)) * 8 + b"\r\n\r\n")
s.settimeout(5)
try:
    reply = s.recv(100)
except Exception:
    reply = b""
result("garbage_refused", reply[:10] == b"HTTP/1.1 4" or reply == b"", reply[:40])
s.close()
# 4. a body that claims more than it sends, then stalls
s = socket.create_connection(("127.0.0.1", port))
s.sendall(b"POST /api/v1/apply HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\nkind: So")
result("serves_with_stalled_body", healthy())
s.close()
# 5. many short requests in a row
good = sum(1 for _ in range(300) if healthy())
result("serves_300_requests", good == 300, good)
for s in slow:
    s.close()
result("serves_after_slow_clients_leave", healthy())
PY
while read -r line; do
  case $line in
    ok*) ok "${line#ok   }" ;;
    FAIL*) bad "${line#FAIL }" "" ;;
  esac
done <"$data/py.txt"
rss1=$(rss)
# bounded memory: well under 100 MiB more than at start
if [[ -n $rss0 && -n $rss1 && $((rss1 - rss0)) -lt 102400 ]]; then ok bounded_memory; else bad bounded_memory "rss $rss0 -> $rss1 KiB"; fi
kill -TERM $pid; wait $pid; rc=$?
[[ $rc -eq 0 ]] && ok clean_stop || bad clean_stop "exit $rc"
echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
