// Reads a Parquet file with struct columns written by datamesh with DuckDB
// and hyparquet and compares every value with the expected rows (JSON
// lines): a nullable struct addr {street, zip, geo {lat, lon}}, a required
// struct meta {price decimal(9,2), tag}, and the columns around them. The
// Parquet schema must carry Iceberg field ids 1..n in pre-order.
// usage: node read_nested.mjs FILE.parquet EXPECTED.jsonl
import { readFileSync } from 'node:fs';
import { DuckDBInstance } from '@duckdb/node-api';
import { parquetMetadata, parquetReadObjects } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';

const [file, expectedPath] = process.argv.slice(2);
let failed = 0;
const bad = msg => { if (failed++ < 20) console.log(`FAIL ${file}: ${msg}`); };
const expected = readFileSync(expectedPath, 'utf8').split('\n').filter(Boolean).map(l => JSON.parse(l));
const q = s => `'${s.replace(/'/g, "''")}'`;

const inst = await DuckDBInstance.create(':memory:');
const con = await inst.connect();
const rows = (await con.runAndReadAll(`SELECT CAST(id AS VARCHAR) AS id, addr IS NULL AS addr_null,
    addr.street AS street, addr.zip AS zip, addr.geo IS NULL AS geo_null, addr.geo.lat AS lat, addr.geo.lon AS lon,
    CAST(meta.price AS VARCHAR) AS price, meta.tag AS tag, id2
  FROM read_parquet(${q(file)}) ORDER BY CAST(id AS BIGINT)`)).getRowObjectsJS();
if (rows.length !== expected.length) bad(`duckdb rows ${rows.length} != ${expected.length}`);
for (let r = 0; r < Math.min(rows.length, expected.length); r++) {
  const e = expected[r], g = rows[r], a = e.addr;
  const want = { id: e.id, addr_null: a === null, street: a ? a.street : null, zip: a ? a.zip : null,
    geo_null: a === null, lat: a ? a.geo.lat : null, lon: a ? a.geo.lon : null, price: e.price, tag: e.tag, id2: e.id2 };
  for (const [c, v] of Object.entries(want)) if ((g[c] ?? null) !== v) bad(`duckdb row ${r} ${c}: ${JSON.stringify(g[c])} != ${JSON.stringify(v)}`);
}

const buf = readFileSync(file);
const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
const meta = parquetMetadata(ab);
const names = meta.schema.slice(1).map(s => s.name).join(',');
if (names !== 'id,addr,street,zip,geo,lat,lon,meta,price,tag,id2') bad(`schema ${names}`);
meta.schema.slice(1).forEach((s, i) => { if (s.field_id !== i + 1) bad(`element ${s.name} field_id ${s.field_id} != ${i + 1}`); });
const hrows = await parquetReadObjects({ file: ab, compressors });
if (hrows.length !== expected.length) bad(`hyparquet rows ${hrows.length} != ${expected.length}`);
const n = v => v === undefined ? null : v;
for (let r = 0; r < Math.min(hrows.length, expected.length); r++) {
  const e = expected[r], h = hrows[r];
  const got = JSON.stringify({ id: String(h.id), addr: h.addr ? { street: h.addr.street, zip: h.addr.zip, geo: { lat: h.addr.geo.lat, lon: n(h.addr.geo.lon) } } : null,
    price: h.meta.price, tag: n(h.meta.tag), id2: h.id2 });
  const want = JSON.stringify({ id: e.id, addr: e.addr, price: Number(BigInt(e.price_u)) * 10 ** -2, tag: e.tag, id2: e.id2 });
  if (got !== want) bad(`hyparquet row ${r}: ${got} != ${want}`);
}
console.log(`${failed ? 'FAIL' : 'ok  '} ${file}: ${rows.length} rows with structs, ${meta.row_groups.length} row groups, ${failed} failures`);
process.exit(failed ? 1 : 0);
