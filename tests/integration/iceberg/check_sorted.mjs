// Reads every Parquet file given with hyparquet and with DuckDB
// (@duckdb/node-api) in file order and checks that its rows follow the sort
// order: "col:asc|desc:first|last,…" (nulls first or last). Prints the
// total rows; exits 1 on the first file out of order.
// usage: node check_sorted.mjs ORDER FILE.parquet…
import { readFileSync } from 'node:fs';
import { parquetReadObjects } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { DuckDBInstance } from '@duckdb/node-api';

const [orderText, ...files] = process.argv.slice(2);
const order = orderText.split(',').map(s => { const [col, dir, nulls] = s.split(':'); return { col, desc: dir === 'desc', nullsFirst: nulls === 'first' }; });
const val = v => typeof v === 'bigint' ? v : v instanceof Date ? BigInt(v.getTime()) : v;
function compare(a, b) {
  for (const o of order) {
    const x = a[o.col] ?? null, y = b[o.col] ?? null;
    if (x === null && y === null) continue;
    if (x === null || y === null) return (x === null ? -1 : 1) * (o.nullsFirst ? 1 : -1);
    const p = val(x), q = val(y);
    const c = p < q ? -1 : p > q ? 1 : 0;
    if (c) return o.desc ? -c : c;
  }
  return 0;
}
function check(rows, who, file) {
  for (let i = 1; i < rows.length; i++)
    if (compare(rows[i - 1], rows[i]) > 0) {
      console.log(`FAIL ${who} ${file}: row ${i - 1} ${JSON.stringify(rows[i - 1], (k, v) => typeof v === 'bigint' ? v.toString() : v)} sorts after row ${i} ${JSON.stringify(rows[i], (k, v) => typeof v === 'bigint' ? v.toString() : v)}`);
      process.exit(1);
    }
}
const inst = await DuckDBInstance.create(':memory:');
const con = await inst.connect();
let total = 0;
for (const file of files) {
  const buf = readFileSync(file);
  const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
  const rows = await parquetReadObjects({ file: ab, compressors });
  check(rows, 'hyparquet', file);
  const drows = (await con.runAndReadAll(`SELECT * FROM read_parquet('${file.replace(/'/g, "''")}')`)).getRowObjectsJS();
  if (drows.length !== rows.length) { console.log(`FAIL duckdb ${file}: ${drows.length} rows, hyparquet ${rows.length}`); process.exit(1); }
  check(drows, 'duckdb', file);
  total += rows.length;
}
console.log(total);
