#!/usr/bin/python3
"""python3-avro as an oracle for datamesh (driven by tests/oracle/avro_oracle.c).

usage: avro_oracle.py DIR CASES

For every case c in DIR: c.avsc (schema), c.bin (records, each a 4-byte
little-endian length and the Avro binary datamesh wrote), c.py-in.avro (the same
records in a container file datamesh wrote). Checks that python3-avro decodes
each record and re-encodes it to the same bytes, reads the records with the
evolved reader schema c.reader.avsc and re-encodes them as datamesh did
(c.resolved.bin), checks datamesh's compatibility verdicts for an arbitrarily
evolved schema c.compat.avsc (c.compat.txt) with its own checker, and reads
datamesh's container
file to the same records; then writes c.py-out.avro (its own container file of
the records) for datamesh to read back. Prints one line per failure and a
summary; exits 1 when anything failed.
"""
import io
import struct
import sys

import avro.compatibility
import avro.datafile
import avro.io
import avro.schema


def encode(schema, datum):
    buf = io.BytesIO()
    avro.io.DatumWriter(schema).write(datum, avro.io.BinaryEncoder(buf))
    return buf.getvalue()


def main():
    d, cases = sys.argv[1], int(sys.argv[2])
    failed = 0
    for c in range(cases):
        try:
            with open(f"{d}/c{c}.avsc") as f:
                schema = avro.schema.parse(f.read())
            recs = []
            with open(f"{d}/c{c}.bin", "rb") as f:
                raw = f.read()
            pos = 0
            while pos < len(raw):
                (n,) = struct.unpack_from("<I", raw, pos)
                recs.append(raw[pos + 4 : pos + 4 + n])
                pos += 4 + n
            datums = []
            reader = avro.io.DatumReader(schema)
            for i, rec in enumerate(recs):
                datum = reader.read(avro.io.BinaryDecoder(io.BytesIO(rec)))
                again = encode(schema, datum)
                if again != rec:
                    raise AssertionError(f"record {i} re-encodes differently: {rec.hex()} vs {again.hex()}")
                datums.append(datum)
            try:
                with open(f"{d}/c{c}.reader.avsc") as f:
                    rschema = avro.schema.parse(f.read())
                with open(f"{d}/c{c}.resolved.bin", "rb") as f:
                    ours = f.read()
            except FileNotFoundError:
                rschema = None
            if rschema is not None:
                rreader = avro.io.DatumReader(schema, rschema)
                theirs = b""
                for rec in recs:
                    datum = rreader.read(avro.io.BinaryDecoder(io.BytesIO(rec)))
                    enc = encode(rschema, datum)
                    theirs += struct.pack("<I", len(enc)) + enc
                if theirs != ours:
                    raise AssertionError(f"resolution differs: ours {ours.hex()} theirs {theirs.hex()}")
            try:
                with open(f"{d}/c{c}.compat.avsc") as f:
                    evolved = avro.schema.parse(f.read())
                with open(f"{d}/c{c}.compat.txt") as f:
                    fwd, bwd = (int(x) for x in f.read().split())
            except FileNotFoundError:
                evolved = None
            if evolved is not None:
                ok = avro.compatibility.SchemaCompatibilityType.compatible
                checker = avro.compatibility.ReaderWriterCompatibilityChecker
                py_fwd = checker().get_compatibility(evolved, schema).compatibility is ok
                py_bwd = checker().get_compatibility(schema, evolved).compatibility is ok
                if (py_fwd, py_bwd) != (bool(fwd), bool(bwd)):
                    raise AssertionError(
                        f"compatibility verdicts differ: ours (evolved reads original, original "
                        f"reads evolved) = {bool(fwd), bool(bwd)}, python3-avro = {py_fwd, py_bwd}")
            with open(f"{d}/c{c}.py-in.avro", "rb") as f:
                got = [encode(schema, x) for x in avro.datafile.DataFileReader(f, avro.io.DatumReader())]
            if got != recs:
                raise AssertionError("our container file reads back differently")
            with open(f"{d}/c{c}.py-out.avro", "wb") as f:
                w = avro.datafile.DataFileWriter(f, avro.io.DatumWriter(), schema,
                                                 codec="deflate" if c % 2 else "null")
                for x in datums:
                    w.append(x)
                w.close()
        except Exception as e:  # report and go on: one line per failing case
            failed += 1
            print(f"FAIL python3-avro case {c}: {type(e).__name__}: {e}")
            if failed > 20:
                break
    print(f"python3-avro: {cases - failed}/{cases} cases identical")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
