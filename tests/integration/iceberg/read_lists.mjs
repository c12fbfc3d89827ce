// Reads a Parquet file with list and map columns written by datamesh with
// hyparquet and DuckDB and compares every row with the expected ones (plain
// JSON lines); the Parquet schema elements (name, repetition, field id,
// converted type) must be the ones given.
// usage: node read_lists.mjs FILE.parquet EXPECTED.jsonl SCHEMA
import { readFileSync } from 'node:fs';
import { DuckDBInstance } from '@duckdb/node-api';
import { parquetMetadata, parquetReadObjects } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';

const [file, expectedPath, wantSchema] = process.argv.slice(2);
let failed = 0;
const bad = msg => { if (failed++ < 20) console.log(`FAIL ${file}: ${msg}`); };
const expected = readFileSync(expectedPath, 'utf8').split('\n').filter(Boolean);
const norm = v => v === undefined || v === null ? null : typeof v === 'bigint' ? Number(v)
  : Array.isArray(v) ? v.map(norm)
  : v instanceof Map ? Object.fromEntries([...v].map(([k, x]) => [String(k), norm(x)]))
  : typeof v === 'object' ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, norm(x)])) : v;

const buf = readFileSync(file);
const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
const meta = parquetMetadata(ab);
const schema = meta.schema.slice(1).map(s => `${s.name}:${s.repetition_type}:${s.field_id ?? '-'}${s.converted_type ? ':' + s.converted_type : ''}`).join(',');
if (schema !== wantSchema) bad(`schema\n  ${schema}\n  != ${wantSchema}`);
const hrows = await parquetReadObjects({ file: ab, compressors });
if (hrows.length !== expected.length) bad(`hyparquet rows ${hrows.length} != ${expected.length}`);
for (let r = 0; r < Math.min(hrows.length, expected.length); r++) {
  const got = JSON.stringify(norm(hrows[r])), want = JSON.stringify(JSON.parse(expected[r]));
  if (got !== want) bad(`hyparquet row ${r}: ${got} != ${want}`);
}

const inst = await DuckDBInstance.create(':memory:');
const con = await inst.connect();
const q = s => `'${s.replace(/'/g, "''")}'`;
const rows = (await con.runAndReadAll(`SELECT CAST(to_json(t) AS VARCHAR) AS j FROM read_parquet(${q(file)}) t ORDER BY id`)).getRowObjectsJS();
if (rows.length !== expected.length) bad(`duckdb rows ${rows.length} != ${expected.length}`);
for (let r = 0; r < Math.min(rows.length, expected.length); r++) {
  const got = JSON.stringify(JSON.parse(rows[r].j)), want = JSON.stringify(JSON.parse(expected[r]));
  if (got !== want) bad(`duckdb row ${r}: ${got} != ${want}`);
}
console.log(`${failed ? 'FAIL' : 'ok  '} ${file}: ${hrows.length} rows with lists and maps, ${meta.row_groups.length} row groups, ${failed} failures`);
process.exit(failed ? 1 : 0);
