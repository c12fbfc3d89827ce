"""Checks an Iceberg table's current metadata, manifest list and manifests
with python3-avro (an independent Avro reader): the spec's required metadata
fields, field ids on every Avro field, and the counts in the manifests.
usage: /usr/bin/python3 check_metadata.py METADATA.json [DATA_ROWS]
Prints one JSON line of totals; exits 1 on the first problem."""
import json
import sys

import avro.datafile
import avro.io

REQUIRED = ["format-version", "table-uuid", "location", "last-sequence-number",
            "last-updated-ms", "last-column-id", "schemas", "current-schema-id",
            "partition-specs", "default-spec-id", "last-partition-id", "sort-orders",
            "default-sort-order-id"]
SNAPSHOT = ["snapshot-id", "sequence-number", "timestamp-ms", "manifest-list", "summary"]


def fail(msg):
    print("FAIL " + msg)
    sys.exit(1)


def local(uri):
    return uri[7:] if uri.startswith("file://") else uri


def field_ids(schema, where):
    """Every record field carries a field-id (what Iceberg readers resolve by)."""
    if isinstance(schema, dict):
        if schema.get("type") == "record":
            for f in schema["fields"]:
                if "field-id" not in f:
                    fail(f"{where}: field {f['name']} has no field-id")
                field_ids(f["type"], where)
        elif schema.get("type") == "array":
            field_ids(schema["items"], where)
    elif isinstance(schema, list):
        for b in schema:
            field_ids(b, where)


def read(path):
    with open(path, "rb") as f:
        r = avro.datafile.DataFileReader(f, avro.io.DatumReader())
        meta = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in r.meta.items()}
        field_ids(json.loads(meta["avro.schema"]), path)
        return meta, list(r)


meta_path = sys.argv[1]
md = json.load(open(local(meta_path)))
for k in REQUIRED:
    if k not in md:
        fail(f"metadata lacks {k}")
if md["format-version"] != 2:
    fail("not format v2")
ids = [f["id"] for s in md["schemas"] for f in s["fields"]]
if max(ids) > md["last-column-id"]:
    fail("a field id is above last-column-id")
cur = [s for s in md["schemas"] if s["schema-id"] == md["current-schema-id"]]
if not cur:
    fail("current schema missing")
totals = {"snapshots": len(md.get("snapshots", [])), "data_rows": 0, "data_files": 0,
          "delete_files": 0, "delete_rows": 0, "manifests": 0}
for s in md.get("snapshots", []):
    for k in SNAPSHOT:
        if k not in s:
            fail(f"snapshot lacks {k}")
    if "operation" not in s["summary"]:
        fail("snapshot summary lacks operation")
snap = [s for s in md.get("snapshots", []) if s["snapshot-id"] == md.get("current-snapshot-id")]
if snap:
    lmeta, manifests = read(local(snap[0]["manifest-list"]))
    if lmeta.get("snapshot-id") != str(snap[0]["snapshot-id"]):
        fail("manifest list snapshot-id header")
    for m in manifests:
        totals["manifests"] += 1
        mmeta, entries = read(local(m["manifest_path"]))
        for k in ["schema", "partition-spec", "partition-spec-id", "format-version", "content"]:
            if k not in mmeta:
                fail(f"manifest header lacks {k}")
        want = "deletes" if m["content"] == 1 else "data"
        if mmeta["content"] != want:
            fail(f"manifest content {mmeta['content']} != {want}")
        rows = 0
        for e in entries:
            d = e["data_file"]
            if e["status"] == 2:
                continue
            if e["sequence_number"] is None and m["sequence_number"] is None:
                fail("no sequence number")
            rows += d["record_count"]
            if d["content"] == 0:
                totals["data_rows"] += d["record_count"]
                totals["data_files"] += 1
                if not d["lower_bounds"] or not d["value_counts"]:
                    fail(f"{d['file_path']}: no column statistics")
            else:
                if d["content"] != 2 or not d["equality_ids"]:
                    fail(f"{d['file_path']}: delete file without equality ids")
                totals["delete_files"] += 1
                totals["delete_rows"] += d["record_count"]
        if rows != m["added_rows_count"] + m["existing_rows_count"]:
            fail(f"{m['manifest_path']}: rows {rows} != list's counts")
if len(sys.argv) > 2 and totals["data_rows"] != int(sys.argv[2]):
    fail(f"data rows {totals['data_rows']} != {sys.argv[2]}")
print(json.dumps(totals))
