#!/usr/bin/env python3
"""The first GET /api/v1/catalog after a change, end to end against
`datamesh up` (docs/ui.md "A big catalog"): applies DM_BENCH_SOURCES (30000)
sources and DM_BENCH_PIPELINES (20000) pipelines (each publishing a derived
source: 50,000 catalog entries), then five times: apply one pipeline again,
time the first catalog page after it (wall ms and controller CPU-s), then the
next one (kept). usage: bench/catalog_http.py build/datamesh"""
import json, os, shutil, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from control import cpu_s, free_port, req  # the controller bench's helpers

def main():
    binary = os.environ.get("DM_BIN") or sys.argv[1]
    sources = int(os.environ.get("DM_BENCH_SOURCES", "30000"))
    pipelines = int(os.environ.get("DM_BENCH_PIPELINES", "20000"))
    data = tempfile.mkdtemp(prefix="dm-bench-catalog-")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = open(os.path.join(data, "up.log"), "w")
    proc = subprocess.Popen([binary, "up", "--data", os.path.join(data, "dm"), "--listen",
                             f"127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(600):
            try:
                if req(base, "GET", "/healthz")[0] == 200: break
            except Exception:
                time.sleep(0.05)
        schema = {"type": "record", "name": "Order", "fields": [
            {"name": "id", "type": "long"}, {"name": "amount", "type": "double"},
            {"name": "country", "type": "string"}]}
        docs = [{"kind": "Source", "metadata": {"name": f"src-{i}", "owner": f"team-{i % 50}"},
                 "spec": {"connector": "ingest", "schema": schema, "key": ["id"]}}
                for i in range(sources)]
        def pipe(i, frm):
            return {"kind": "Pipeline", "metadata": {"name": f"p-{i}", "owner": f"team-{i % 50}"},
                    "spec": {"from": [f"src-{frm}"],
                             "steps": [{"filter": "amount > 0"},
                                       {"project": ["id", "amount * 100 AS cents"]}],
                             "to": [{"source": f"derived-{i}"}]}}
        docs += [pipe(i, i % sources) for i in range(pipelines)]
        t0 = time.time()
        for k in range(0, len(docs), 1000):
            st, out = req(base, "POST", "/api/v1/apply",
                          "\n---\n".join(json.dumps(d) for d in docs[k:k + 1000]).encode(),
                          "application/yaml")
            if st != 200: raise SystemExit(f"apply failed: {st} {out[:300]}")
        print(f"applied {len(docs)} specs in {time.time() - t0:.1f} s")
        def page():
            c0, t = cpu_s(proc.pid), time.perf_counter()
            st, out = req(base, "GET", "/api/v1/catalog?limit=50")
            if st != 200: raise SystemExit(f"catalog: {st} {out[:300]}")
            total = json.loads(out)["total"]
            return (time.perf_counter() - t) * 1000, cpu_s(proc.pid) - c0, total
        ms, cpu, total = page()
        print(f"first catalog request (builds all {total} entries): {ms:.0f} ms, {cpu:.2f} CPU-s")
        first, kept = [], []
        for r in range(5):
            st, out = req(base, "POST", "/api/v1/apply",
                          json.dumps(pipe(7, 100 + r)).encode(), "application/yaml")
            if st != 200: raise SystemExit(f"apply failed: {st} {out[:300]}")
            first.append(page())
            kept.append(page())
        first.sort(); kept.sort()
        print(f"first request after one apply ({total} entries), median of 5: "
              f"{first[2][0]:.0f} ms, {first[2][1]:.2f} CPU-s")
        print(f"next request (kept), median of 5: {kept[2][0]:.0f} ms, {kept[2][1]:.2f} CPU-s")
    finally:
        proc.terminate()
        proc.wait(timeout=300)
        shutil.rmtree(data, ignore_errors=True)

if __name__ == "__main__":
    main()
