// Reads a Parquet file written by datamesh with hyparquet and compares every
// value with the expected rows (JSON lines; 64-bit integers as strings, bytes
// as hex), the schema's Iceberg field ids and the chunk statistics.
// usage: node read_parquet.mjs FILE.parquet EXPECTED.jsonl
import { readFileSync } from 'node:fs';
import { parquetMetadata, parquetReadObjects } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';

const [file, expectedPath] = process.argv.slice(2);
let failed = 0;
function bad(msg) { failed++; console.log(`FAIL ${file}: ${msg}`); }

function norm(v, col) {
  if (v === null || v === undefined) return null;
  if (typeof v === 'bigint') return v.toString();
  if (v instanceof Date && col && col.logical_type && col.logical_type.type === 'DATE') return v.getTime() / 86400000;
  if (v instanceof Date) return (BigInt(v.getTime()) * 1000n).toString();
  if (v instanceof Uint8Array) return Buffer.from(v).toString('hex');
  return v;
}

const buf = readFileSync(file);
const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
const meta = parquetMetadata(ab);
const rows = await parquetReadObjects({ file: ab, compressors, utf8: false });
const expected = readFileSync(expectedPath, 'utf8').split('\n').filter(Boolean).map(l => JSON.parse(l));
if (rows.length !== expected.length) bad(`rows ${rows.length} != ${expected.length}`);
const cols = meta.schema.slice(1);
cols.forEach((c, i) => { if (c.field_id !== i + 1) bad(`column ${c.name} field_id ${c.field_id} != ${i + 1}`); });
let diffs = 0;
for (let r = 0; r < Math.min(rows.length, expected.length); r++) {
  for (const c of cols) {
    const got = norm(rows[r][c.name], c), want = expected[r][c.name];
    if (got !== want && diffs++ < 10) bad(`row ${r} column ${c.name}: ${JSON.stringify(got)} != ${JSON.stringify(want)}`);
  }
}
// Encodings: dictionary for the repetitive string column (unless the file is
// written without), never for the unique one (its dictionary overflows).
const dictWanted = !file.includes('nodict') && expected.length > 100;
for (const rg of meta.row_groups) {
  rg.columns.forEach((cc, i) => {
    const dict = cc.meta_data.encodings.includes('RLE_DICTIONARY');
    if (cols[i].name === 'name' && expected.length > 100 && dict !== dictWanted) bad(`name chunk encodings ${cc.meta_data.encodings}`);
    if (cols[i].name === 'blob' && dict) bad(`blob chunk uses a dictionary`);
  });
}
// Statistics: every chunk's null count and min/max against the rows it holds.
let start = 0;
for (const rg of meta.row_groups) {
  const n = Number(rg.num_rows);
  const slice = expected.slice(start, start + n);
  rg.columns.forEach((cc, i) => {
    const st = cc.meta_data.statistics, name = cols[i].name;
    const nulls = slice.filter(e => e[name] === null).length;
    if (!st || Number(st.null_count) !== nulls) bad(`row group at ${start} ${name}: null_count ${st && st.null_count} != ${nulls}`);
    const vals = slice.map(e => e[name]).filter(v => v !== null);
    if (vals.length && typeof vals[0] === 'number') {
      const min = Math.min(...vals), max = Math.max(...vals);
      if (Number(norm(st.min_value, cols[i])) !== min || Number(norm(st.max_value, cols[i])) !== max)
        bad(`row group at ${start} ${name}: min/max ${norm(st.min_value, cols[i])}/${norm(st.max_value, cols[i])} != ${min}/${max}`);
    }
  });
  start += n;
}
console.log(`${failed ? 'FAIL' : 'ok  '} ${file}: ${rows.length} rows, ${meta.row_groups.length} row groups, ${diffs} differences`);
process.exit(failed ? 1 : 0);
