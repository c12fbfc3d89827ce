#!/usr/bin/env bash
# Hostile HTTP: slow clients holding connections (slowloris), oversized
# headers and bodies, garbage requests and many connections at once; then
# hostile bodies on the data endpoints (ingest, apply, plan, the registry,
# records: nesting 100k deep, invalid UTF-8, numbers out of range, 16 MiB + 1,
# truncated chunked bodies, wrong content types, bad query arguments). The
# controller answers each with a 4xx naming the problem or closes it, writes
# nothing of them, keeps its memory bounded and keeps serving /healthz.
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

# Hostile bodies on the data endpoints: each answered 4xx naming the problem
# (never a 5xx, a crash or a hang), and nothing half-written: the source holds
# exactly the one good batch sent at the end.
cat >"$data/src.yaml" <<'YAML'
kind: Source
metadata: {name: plays, owner: t}
spec:
  connector: ingest
  schema: {type: record, name: Play, fields: [{name: id, type: long}, {name: n, type: int}, {name: country, type: string}]}
  key: [id]
  partitions: 2
YAML
"$bin" apply -f "$data/src.yaml" --server "http://127.0.0.1:$port" >"$data/apply.txt" 2>&1 || bad apply_source "$(cat "$data/apply.txt")"
/usr/bin/python3 - "$port" >"$data/py2.txt" 2>&1 <<'PY'
import json, socket, sys, time
port = int(sys.argv[1])
def raw(data, timeout=30):
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(timeout)
    try:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
    except OSError:
        pass  # the server may answer and close before reading all of it
    out = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
    except socket.timeout:
        out += b"<no answer within %d s>" % timeout
    except OSError:
        pass
    s.close()
    head, _, body = out.partition(b"\r\n\r\n")
    line = head.split(b"\r\n")[0].decode("latin1")
    status = int(line.split()[1]) if line.startswith("HTTP/1.1 ") else 0
    return status, body, out
def request(method, path, body=b"", ctype="application/json", chunked=False, extra=""):
    h = f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: {ctype}\r\n{extra}"
    if chunked:
        h += "Transfer-Encoding: chunked\r\n\r\n"
        return raw(h.encode() + body)
    return raw(h.encode() + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
def result(name, cond, detail=""):
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else ": " + str(detail)[:400]))
def clear_4xx(name, r, *words):
    status, body, out = r
    msg = ""
    try:
        msg = json.loads(body).get("message", "")
    except Exception:
        pass
    # each word may be "a|b": one of them
    ok = 400 <= status < 500 and msg and all(any(a.lower() in msg.lower() for a in w.split("|")) for w in words)
    result(name, ok, f"HTTP {status}: {out[:300]!r}")
posts = {
    "ingest": "/api/v1/sources/plays/events",
    "apply": "/api/v1/apply",
    "plan": "/api/v1/plan",
    "register": "/subjects/plays-value/versions",
    "compat": "/compatibility/subjects/plays-value/versions/latest",
}
deep = b"[" * 100000 + b"]" * 100000
deep_obj = b'{"a":' * 100000 + b"1" + b"}" * 100000
for name, path in posts.items():
    t0 = time.time()
    clear_4xx(f"{name}_nested_arrays_100k", request("POST", path, deep), "deep|depth")
    clear_4xx(f"{name}_nested_objects_100k", request("POST", path, deep_obj), "deep|depth")
    result(f"{name}_nesting_answered_fast", time.time() - t0 < 20, time.time() - t0)
    clear_4xx(f"{name}_invalid_utf8", request("POST", path, b'[{"id": 1, "n": 1, "country": "\xff\xfe\xc3\x28"}]'), "utf-8|decode byte 0xff")
    clear_4xx(f"{name}_wrong_content_type", request("POST", path, b"<a/>", "application/xml"), "content-type", "application/xml")
    clear_4xx(f"{name}_multipart", request("POST", path, b"--x\r\n\r\n--x--", "multipart/form-data; boundary=x"), "multipart/form-data")
    big = b" " * (16 * 1024 * 1024 + 1)
    clear_4xx(f"{name}_16MiB_plus_1", request("POST", path, big), "larger than")
    clear_4xx(f"{name}_16MiB_plus_1_chunked", request("POST", path, b"%x\r\n" % len(big) + big + b"\r\n0\r\n\r\n", chunked=True), "larger than")
    # a chunked body cut off in the middle: the client goes away; no answer is owed
    st, _, out = request("POST", path, b"100\r\n[{\"id\": 1", chunked=True)
    result(f"{name}_truncated_chunked_no_5xx", st < 500 and b"<no answer" not in out, out[:200])
# numbers out of range: JSON cannot hold them, or the schema's type cannot
clear_4xx("ingest_integer_beyond_64_bits", request("POST", posts["ingest"], b'[{"id": 99999999999999999999999, "n": 1, "country": "US"}]'), "integer")
clear_4xx("ingest_real_overflow", request("POST", posts["ingest"], b'[{"id": 1e400, "n": 1, "country": "US"}]'), "overflow")
clear_4xx("ingest_int_out_of_range", request("POST", posts["ingest"], b'[{"id": 1, "n": 4294967296, "country": "US"}]'), "n")
clear_4xx("ingest_long_as_float", request("POST", posts["ingest"], b'[{"id": 1.5, "n": 1, "country": "US"}]'), "id")
# the records endpoint: arguments it cannot use are named
for q, word in [("limit=abc", "limit"), ("limit=-1", "limit"), ("timeout_ms=99999999999999999999", "timeout_ms"),
                ("from=yesterday", "from"), ("positions=0:x", "positions"), ("positions=7:0", "positions"),
                ("positions=0:-5", "positions")]:
    clear_4xx(f"records_bad_{q.split('=')[0]}_{q.split('=')[1][:8]}", request("GET", f"/api/v1/sources/plays/records?{q}"), word)
# nothing of the above was written; a good batch is, whole
st, body, _ = request("POST", posts["ingest"], b'[{"id": 1, "n": 1, "country": "US"}, {"id": 2, "n": 2, "country": "FR"}]')
result("good_batch_after_hostile_ones", st == 200 and json.loads(body).get("accepted") == 2, body[:200])
st, body, _ = request("GET", "/api/v1/sources/plays/records?from=earliest&limit=100&timeout_ms=2000")
recs = json.loads(body).get("records", []) if st == 200 else []
result("only_the_good_batch_stored", sorted(r["value"]["id"] for r in recs) == [1, 2], body[:300])
PY
while read -r line; do
  case $line in
    ok*) ok "${line#ok   }" ;;
    FAIL*) bad "${line#FAIL }" "" ;;
    *) echo "$line" ;;
  esac
done <"$data/py2.txt"
curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && ok serves_after_hostile_bodies || bad serves_after_hostile_bodies ""
# bodies of 16 MiB pass through memory (and stay in ASan's quarantine of freed memory)
rss2=$(rss)
limit=$((100 * 1024))
nm -D "$bin" 2>/dev/null | grep -q __asan_init && limit=$((600 * 1024))
if [[ -n $rss2 && -n $rss1 && $((rss2 - rss1)) -lt $limit ]]; then ok bounded_memory_after_bodies; else bad bounded_memory_after_bodies "rss $rss1 -> $rss2 KiB"; fi
kill -TERM $pid; wait $pid; rc=$?
[[ $rc -eq 0 ]] && ok clean_stop || bad clean_stop "exit $rc"
echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
