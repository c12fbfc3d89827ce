#!/usr/bin/env bash
# A property of apply (issue 26): for a mutated spec, the controller either
# refuses it with a located error (a 4xx whose message starts with the
# request's line:col or names the object: "Source x: …", "pipeline x reads …")
# and keeps exactly the objects it had, or applies it; it never answers 5xx and
# never crashes. The valid specs of the suite (specs/apply/, specs/) are
# mutated one token at a time (a name, type, number or key replaced by another
# from a pool, a line dropped or repeated). DM_PROPERTY_CASES cases (default
# 2000, ~15 s; the issue's full run is 10000, ~80 s) from DM_PROPERTY_SEED (printed).
set -u
bin=${DM_BIN:?}
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../harness/lib.sh"
dm_e2e_setup
mkdir -p "$data/out" "$data/lake"
cd "$data" # a mutated sink path is relative: keep what it writes in the run's directory
start
cases=${DM_PROPERTY_CASES:-2000}
seed=${DM_PROPERTY_SEED:-$RANDOM$RANDOM}
echo "seed $seed, $cases cases (DM_PROPERTY_SEED=$seed DM_PROPERTY_CASES=$cases to repeat)"
out=$(/usr/bin/python3 - "$here" "$data" "$DATAMESH_SERVER" "$seed" "$cases" <<'PY'
import glob, json, random, re, sys, urllib.request, urllib.error
here, data, server, seed, cases = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
rng = random.Random(seed)
specs = []
for f in sorted(glob.glob(here + "/specs/apply/*.yaml") + glob.glob(here + "/specs/*.yaml")):
    if "/bad-" in f:
        continue
    specs.append((f, open(f).read().replace("@DATA@", data)))
pool = ["nope", "long", "int", "string", "double", "null", "record", "enum", "\"9R\"", "\"\"",
        "-1", "0", "1e400", "99999999999999999999", "[]", "{}", "[x]", "{a: 1}", "true", "id",
        "\"x\"", "Source", "Pipeline", "Sink", "ingest", "datagen", "file", "key", "default",
        "fields", "type", "name", "\"\\u00ff\"", "filter", "project", "plays", "clicks"]
locate = re.compile(r"^(<request>:\d+:\d+: |(Source|Pipeline|Sink|Processor) [\w.-]+: |"
                    r"(source|pipeline|sink|processor|Source|Pipeline|Sink) '?[\w.-]+'? )")

def call(method, path, body=None):
    req = urllib.request.Request(server + path, data=body, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")

def objects():
    return {k: sorted(o["metadata"]["name"] for o in json.loads(call("GET", "/api/v1/" + k)[1])["items"])
            for k in ("sources", "pipelines", "sinks")}

def mutate(text):
    lines = text.split("\n")
    for _ in range(rng.choice((0, 1, 1, 1, 2))):
        r = rng.random()
        i = rng.randrange(len(lines))
        if r < 0.1:
            del lines[i]
        elif r < 0.2:
            lines.insert(i, lines[i])
        else:
            toks = list(re.finditer(r"[\w.\"-]+", lines[i]))
            if toks:
                t = rng.choice(toks)
                lines[i] = lines[i][:t.start()] + rng.choice(pool) + lines[i][t.end():]
    return "\n".join(lines)

bad = refused = applied = 0
for n in range(cases):
    f, text = rng.choice(specs)
    body = mutate(text)
    before = objects()
    status, resp = call("POST", "/api/v1/apply", body.encode())
    problem = None
    if status >= 500:
        problem = "a 5xx"
    elif status >= 400:
        refused += 1
        try:
            msg = json.loads(resp).get("message", "")
        except ValueError:
            msg = None
        if "DM_PROPERTY_VERBOSE" in __import__("os").environ: print("refused:", (msg or resp)[:150])
        if msg is None:
            problem = "a %d without a JSON answer" % status
        elif not locate.match(msg):
            problem = "refused without saying where"
        elif objects() != before:
            problem = "refused, but the objects changed"
    else:
        applied += 1
    if problem:
        bad += 1
        if bad <= 5:
            print("FAIL case %d (%s): %s: %s\n--- spec:\n%s\n---" % (n, f.rsplit("/", 1)[1], problem, resp[:400], body))
print("%d cases: %d refused, %d applied, %d bad" % (cases, refused, applied, bad))
sys.exit(1 if bad else 0)
PY
)
rc=$?
echo "$out" | tail -40
[[ $rc -eq 0 ]] && ok "property: $(tail -1 <<<"$out")" || bad property "seed $seed: $(tail -1 <<<"$out")"
kill -0 "$pid" 2>/dev/null && ok controller_alive || bad controller_alive "$(tail -20 "$data/up.log")"
stop
dm_e2e_summary
