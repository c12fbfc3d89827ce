// Reads a Parquet file of logical types written by datamesh with DuckDB and
// hyparquet and compares every value with the expected rows (JSON lines):
// decimals as DuckDB prints them (exact text) and as hyparquet computes them
// from the unscaled value, uuids as text, times as microseconds since
// midnight; DuckDB must see the declared types and chunk statistics that
// match the rows.
// usage: node read_types.mjs FILE.parquet EXPECTED.jsonl
import { readFileSync } from 'node:fs';
import { DuckDBInstance } from '@duckdb/node-api';
import { parquetMetadata, parquetReadObjects } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';

const [file, expectedPath] = process.argv.slice(2);
let failed = 0;
const bad = msg => { if (failed++ < 20) console.log(`FAIL ${file}: ${msg}`); };
const expected = readFileSync(expectedPath, 'utf8').split('\n').filter(Boolean).map(l => JSON.parse(l));
const q = s => `'${s.replace(/'/g, "''")}'`;

// DuckDB: types, then values as text.
const inst = await DuckDBInstance.create(':memory:');
const con = await inst.connect();
const types = Object.fromEntries((await con.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet(${q(file)})`))
  .getRowObjectsJS().map(r => [r.column_name, r.column_type]));
const wantTypes = { id: 'BIGINT', price: 'DECIMAL(9,2)', qty: 'DECIMAL(18,4)', big: 'DECIMAL(38,10)',
  fx: 'DECIMAL(20,0)', uid: 'UUID', fuid: 'BLOB', tms: 'TIME', tus: 'TIME' };
for (const [c, t] of Object.entries(wantTypes)) if (types[c] !== t) bad(`duckdb type of ${c}: ${types[c]} != ${t}`);
const micros = c => `CAST(hour(${c}) AS BIGINT) * 3600000000 + minute(${c}) * 60000000 + microsecond(${c})`;
const rows = (await con.runAndReadAll(`SELECT CAST(id AS VARCHAR) AS id, CAST(price AS VARCHAR) AS price,
    CAST(qty AS VARCHAR) AS qty, CAST(big AS VARCHAR) AS big, CAST(fx AS VARCHAR) AS fx,
    CAST(uid AS VARCHAR) AS uid, lower(hex(fuid)) AS fuid,
    CAST(${micros('tms')} AS VARCHAR) AS tms, CAST(${micros('tus')} AS VARCHAR) AS tus
  FROM read_parquet(${q(file)}) ORDER BY CAST(id AS BIGINT)`)).getRowObjectsJS();
if (rows.length !== expected.length) bad(`duckdb rows ${rows.length} != ${expected.length}`);
for (let r = 0; r < Math.min(rows.length, expected.length); r++)
  for (const c of Object.keys(wantTypes))
    if ((rows[r][c] ?? null) !== expected[r][c]) bad(`duckdb row ${r} ${c}: ${rows[r][c]} != ${expected[r][c]}`);

// DuckDB's view of the chunk statistics: min/max of every decimal chunk
// equal the min/max of its rows (compared as exact decimals).
const stats = (await con.runAndReadAll(`SELECT row_group_id, path_in_schema, stats_min_value, stats_max_value,
    stats_null_count FROM parquet_metadata(${q(file)}) WHERE path_in_schema IN ('price','qty','big','fx')
    ORDER BY row_group_id`)).getRowObjectsJS();
const meta = parquetMetadata((b => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength))(readFileSync(file)));
let start = 0;
const groupStart = meta.row_groups.map(g => { const s = start; start += Number(g.num_rows); return [s, start]; });
const cmp = (a, b) => { const x = BigInt(a), y = BigInt(b); return x < y ? -1 : x > y ? 1 : 0; };
for (const s of stats) {
  const [a, b] = groupStart[Number(s.row_group_id)];
  const vals = expected.slice(a, b).map(e => e[s.path_in_schema + '_u']).filter(v => v !== null).sort(cmp);
  const nulls = b - a - vals.length;
  if (Number(s.stats_null_count) !== nulls) bad(`group ${s.row_group_id} ${s.path_in_schema} nulls ${s.stats_null_count} != ${nulls}`);
  const scale = Number(wantTypes[s.path_in_schema].match(/,(\d+)\)/)[1]);
  const unscaled = t => t === null ? null : BigInt(t.replace('.', '').replace(/^(-?)0+(?=\d)/, '$1')).toString();
  const lo = unscaled(s.stats_min_value), hi = unscaled(s.stats_max_value);
  if (lo !== vals[0] || hi !== vals[vals.length - 1])
    bad(`group ${s.row_group_id} ${s.path_in_schema} min/max ${s.stats_min_value}/${s.stats_max_value} (scale ${scale}) != ${vals[0]}/${vals[vals.length - 1]}`);
}

// hyparquet: decimals are numbers computed from the unscaled value (the
// same computation from the expected unscaled value must give the same
// number), uuids text, times BigInt microseconds.
const buf = readFileSync(file);
const hrows = await parquetReadObjects({ file: buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength), compressors });
const scales = { price: 2, qty: 4, big: 10, fx: 0 };
for (let r = 0; r < Math.min(hrows.length, expected.length); r++) {
  const e = expected[r], h = hrows[r];
  for (const [c, s] of Object.entries(scales)) {
    const want = e[c + '_u'] === null ? null : Number(BigInt(e[c + '_u'])) * 10 ** -s;
    if ((h[c] ?? null) !== want) bad(`hyparquet row ${r} ${c}: ${h[c]} != ${want}`);
  }
  if (Buffer.from(h.fuid).toString('hex') !== e.fuid) bad(`hyparquet row ${r} fuid`);
  for (const c of ['uid']) if (h[c] !== e[c]) bad(`hyparquet row ${r} ${c}: ${h[c]} != ${e[c]}`);
  for (const c of ['tms', 'tus']) if ((h[c] === null || h[c] === undefined ? null : String(h[c])) !== e[c]) bad(`hyparquet row ${r} ${c}: ${h[c]} != ${e[c]}`);
}
if (hrows.length !== expected.length) bad(`hyparquet rows ${hrows.length} != ${expected.length}`);
for (const [i, c] of meta.schema.slice(1).entries()) if (c.field_id !== i + 1) bad(`column ${c.name} field_id ${c.field_id}`);
console.log(`${failed ? 'FAIL' : 'ok  '} ${file}: ${rows.length} rows, ${meta.row_groups.length} row groups, ${stats.length} decimal chunks, ${failed} failures`);
process.exit(failed ? 1 : 0);
