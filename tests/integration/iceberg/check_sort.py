"""Checks a sorted Iceberg table with python3-avro: the metadata's sort-orders
hold the unsorted order 0 and order ORDER_JSON as order 1, which is the
default-sort-order-id, and every live data file's manifest entry carries
sort_order_id 1. Prints the data files (local paths), one a line.
usage: /usr/bin/python3 check_sort.py METADATA.json ORDER_JSON"""
import json
import sys

import avro.datafile
import avro.io


def fail(msg):
    print("FAIL " + msg, file=sys.stderr)
    sys.exit(1)


def local(uri):
    return uri[7:] if uri.startswith("file://") else uri


def read(path):
    with open(local(path), "rb") as f:
        return list(avro.datafile.DataFileReader(f, avro.io.DatumReader()))


meta = json.load(open(local(sys.argv[1])))
want = json.loads(sys.argv[2])
if meta.get("default-sort-order-id") != 1:
    fail(f"default-sort-order-id {meta.get('default-sort-order-id')} != 1")
orders = {o["order-id"]: o["fields"] for o in meta["sort-orders"]}
if orders.get(0) != []:
    fail(f"order 0 is not the unsorted order: {orders.get(0)}")
if orders.get(1) != want:
    fail(f"order 1 is {json.dumps(orders.get(1))}, want {json.dumps(want)}")
cur = meta["current-snapshot-id"]
snap = next(s for s in meta["snapshots"] if s["snapshot-id"] == cur)
n = 0
for m in read(snap["manifest-list"]):
    for e in read(m["manifest_path"]):
        if e["status"] == 2 or e["data_file"]["content"] != 0:
            continue
        if e["data_file"].get("sort_order_id") != 1:
            fail(f"{e['data_file']['file_path']}: sort_order_id {e['data_file'].get('sort_order_id')} != 1")
        print(local(e["data_file"]["file_path"]))
        n += 1
if not n:
    fail("no data files")
