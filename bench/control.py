#!/usr/bin/env python3
"""Controller scale: apply N pipelines over M topics through the API, then
list / get / status. Prints apply time, RSS and API latency percentiles, and
`control ratio=X target=1` where ratio = 60 s / apply time (the issue's target:
everything applied in under 60 s)."""
import json, os, random, subprocess, sys, time, urllib.request, socket, shutil, tempfile

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0

def cpu_s(pid):
    """User + system CPU seconds of a process (apply time on a shared machine
    depends on the load; its CPU time does less)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

def req(base, method, path, body=None, ctype="application/json"):
    r = urllib.request.Request(base + path, data=body, method=method, headers={"Content-Type": ctype})
    with urllib.request.urlopen(r, timeout=600) as resp:
        return resp.status, resp.read()

def main():
    binary = os.environ.get("DM_BIN") or sys.argv[1]
    pipelines = int(os.environ.get("DM_BENCH_PIPELINES", "20000"))
    topics = int(os.environ.get("DM_BENCH_TOPICS", "50000"))
    sources = topics - pipelines  # every pipeline publishes one derived source
    chunk = 1000
    data = tempfile.mkdtemp(prefix="dm-bench-control-")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = open(os.path.join(data, "up.log"), "w")
    proc = subprocess.Popen([binary, "up", "--data", os.path.join(data, "dm"), "--listen",
                             f"127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(400):
            try:
                if req(base, "GET", "/healthz")[0] == 200: break
            except Exception:
                time.sleep(0.05)
        schema = {"type": "record", "name": "Order", "fields": [
            {"name": "id", "type": "long"}, {"name": "amount", "type": "double"},
            {"name": "country", "type": "string"}]}
        docs = []
        for i in range(sources):
            docs.append({"kind": "Source", "metadata": {"name": f"src-{i}", "owner": f"team-{i % 50}"},
                         "spec": {"connector": "ingest", "schema": schema, "key": ["id"]}})
        for i in range(pipelines):
            docs.append({"kind": "Pipeline", "metadata": {"name": f"p-{i}", "owner": f"team-{i % 50}"},
                         "spec": {"from": [f"src-{i % sources}"],
                                  "steps": [{"filter": "amount > 0"},
                                            {"project": ["id", "amount * 100 AS cents"]}],
                                  "to": [{"source": f"derived-{i}"}]}})
        t0, c0 = time.time(), cpu_s(proc.pid)
        for k in range(0, len(docs), chunk):
            body = "\n---\n".join(json.dumps(d) for d in docs[k:k + chunk]).encode()
            st, out = req(base, "POST", "/api/v1/apply", body, "application/yaml")
            if st != 200:
                raise SystemExit(f"apply failed: {st} {out[:300]}")
        apply_s = time.time() - t0
        apply_cpu = cpu_s(proc.pid) - c0
        rss = rss_mib(proc.pid)
        lat = []
        by_kind = {"get": [], "status": [], "source": []}
        t1 = time.time()
        st, out = req(base, "GET", "/api/v1/pipelines")
        list_ms = (time.time() - t1) * 1000
        n_listed = len(json.loads(out).get("items", json.loads(out)) if out.startswith(b"{") else json.loads(out))
        rnd = random.Random(7)
        for _ in range(2000):
            i = rnd.randrange(pipelines)
            kind, path = rnd.choice([("get", f"/api/v1/pipelines/p-{i}"),
                                     ("status", f"/api/v1/pipelines/p-{i}/status"),
                                     ("source", f"/api/v1/sources/src-{i % sources}")])
            t1 = time.perf_counter()
            req(base, "GET", path)
            ms = (time.perf_counter() - t1) * 1000
            lat.append(ms)
            by_kind[kind].append(ms)
        lat.sort()
        p50, p99 = lat[len(lat) // 2], lat[int(len(lat) * 0.99)]
        print(f"applied {sources} sources + {pipelines} pipelines ({topics} topics and their "
              f"dead-letter topics) in {apply_s:.1f} s ({len(docs) / apply_s:.0f} specs/s)")
        print(f"controller CPU during apply: {apply_cpu:.1f} s")
        print(f"controller RSS after apply: {rss:.0f} MiB (target < 1024)")
        print(f"list of {n_listed} pipelines: {list_ms:.0f} ms")
        for kind, v in by_kind.items():
            v.sort()
            print(f"  {kind}: p50 {v[len(v) // 2]:.2f} ms, p99 {v[int(len(v) * 0.99)]:.2f} ms")
        print(f"get/status API over 2000 requests: p50 {p50:.2f} ms, p99 {p99:.2f} ms (target < 50)")
        # Lineage of every pipeline: the first query computes the graph (a plan
        # compile per pipeline), later ones reuse it until something changes.
        def lineage(node, direction="downstream"):
            t = time.perf_counter()
            st, out = req(base, "GET", f"/api/v1/lineage?node={node}&direction={direction}")
            if st != 200:
                raise SystemExit(f"lineage {node}: {st} {out[:300]}")
            return (time.perf_counter() - t) * 1000, json.loads(out)
        rss0, c0 = rss_mib(proc.pid), cpu_s(proc.pid)
        first_ms, q = lineage("src-0.amount")
        first_cpu = cpu_s(proc.pid) - c0
        rss1 = rss_mib(proc.pid)
        lq = sorted(lineage(node)[0] for node in
                    [f"src-{rnd.randrange(sources)}.amount" for _ in range(20)] +
                    [f"p-{rnd.randrange(pipelines)}" for _ in range(20)])
        st, out = req(base, "POST", "/api/v1/apply", json.dumps(
            {"kind": "Pipeline", "metadata": {"name": "p-extra", "owner": "team-0"},
             "spec": {"from": ["src-1"], "steps": [{"project": ["id", "country"]}],
                      "to": [{"source": "derived-extra"}]}}).encode(), "application/yaml")
        c0 = cpu_s(proc.pid)
        again_ms, _ = lineage("src-1.country")
        again_cpu = cpu_s(proc.pid) - c0
        print(f"lineage of {pipelines} pipelines: first query (computes the graph) {first_ms:.0f} ms, "
              f"{first_cpu:.1f} CPU-s; RSS {rss0:.0f} -> {rss1:.0f} MiB "
              f"(graph: {len(q.get('nodes', []))} nodes in the answer)")
        print(f"  lineage queries over the kept graph (40, fields and pipelines): "
              f"p50 {lq[len(lq) // 2]:.2f} ms, p99 {lq[int(len(lq) * 0.99)]:.2f} ms")
        print(f"  after one more apply: recomputed in {again_ms:.0f} ms, {again_cpu:.1f} CPU-s")
        # The graph is kept with the catalog (a fragment per pipeline): after a
        # restart the first query replays the fragments instead of compiling.
        proc.terminate()
        proc.wait(timeout=300)
        t0 = time.time()
        proc = subprocess.Popen([binary, "up", "--data", os.path.join(data, "dm"), "--listen",
                                 f"127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
        for _ in range(6000):
            try:
                if req(base, "GET", "/healthz")[0] == 200: break
            except Exception:
                time.sleep(0.05)
        ready_s = time.time() - t0
        rss0, c0 = rss_mib(proc.pid), cpu_s(proc.pid)
        restart_ms, _ = lineage("src-0.amount")
        restart_cpu = cpu_s(proc.pid) - c0
        rss1 = rss_mib(proc.pid)
        lq2 = sorted(lineage(node)[0] for node in
                     [f"src-{rnd.randrange(sources)}.amount" for _ in range(20)] +
                     [f"p-{rnd.randrange(pipelines)}" for _ in range(20)])
        st, out = req(base, "POST", "/api/v1/apply", json.dumps(
            {"kind": "Pipeline", "metadata": {"name": "p-extra", "owner": "team-0"},
             "spec": {"from": ["src-2"], "steps": [{"project": ["id", "country"]}],
                      "to": [{"source": "derived-extra"}]}}).encode(), "application/yaml")
        c0 = cpu_s(proc.pid)
        again2_ms, _ = lineage("src-2.country")
        again2_cpu = cpu_s(proc.pid) - c0
        print(f"  after a restart (ready in {ready_s:.1f} s): first query {restart_ms:.0f} ms, "
              f"{restart_cpu:.1f} CPU-s; RSS {rss0:.0f} -> {rss1:.0f} MiB")
        print(f"  lineage queries after the restart (40): p50 {lq2[len(lq2) // 2]:.2f} ms, "
              f"p99 {lq2[int(len(lq2) * 0.99)]:.2f} ms")
        print(f"  after one more apply: {again2_ms:.0f} ms, {again2_cpu:.1f} CPU-s")
        with open(os.path.join(data, "up.log")) as f:
            for line in f:
                if "component=lineage graph of" in line:
                    print("  " + line.split("component=lineage ", 1)[1].rstrip())
        print(f"control ratio={60.0 / apply_s:.2f} target=1")
    finally:
        proc.terminate()
        try: proc.wait(timeout=120)
        except subprocess.TimeoutExpired: proc.kill()
        shutil.rmtree(data, ignore_errors=True)

if __name__ == "__main__":
    main()
