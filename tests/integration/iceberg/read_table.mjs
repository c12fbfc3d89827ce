// Reads an Iceberg table written by datamesh with icebird (an independent
// Iceberg reader: metadata, manifests, Parquet through hyparquet, equality
// deletes applied) and compares its rows with the expected ones.
// usage: node read_table.mjs TABLE_URL EXPECTED.jsonl KEY [METADATA_FILE_NAME]
// Expected: JSON lines, 64-bit integers as strings. icebird fetches URLs; the
// table's file:// URLs are served from the local disk by a fetch that knows
// them (range requests included).
import { readFileSync } from 'node:fs';
import { icebergRead } from 'icebird';

import './file_fetch.mjs';

const [tableUrl, expectedPath, key, metadataFileName] = process.argv.slice(2);
// Lists as arrays; maps (JS Maps, or DuckDB's [{key, value}] entries) as objects.
const isEntries = v => v.length > 0 && v.every(e => e && typeof e === 'object' && !Array.isArray(e) && Object.keys(e).join() === 'key,value');
const norm = v => (v === undefined || v === null) ? null : typeof v === 'bigint' ? v.toString() : v instanceof Date ? (BigInt(v.getTime()) * 1000n).toString()
  : Array.isArray(v) ? (isEntries(v) ? Object.fromEntries(v.map(e => [String(e.key), norm(e.value)])) : v.map(norm))
  : v instanceof Map ? Object.fromEntries([...v].map(([k, x]) => [String(k), norm(x)]))
  : typeof v === 'object' && !(v instanceof Uint8Array) ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, norm(x)])) : v;
const rows = await icebergRead({ tableUrl, metadataFileName });
const expected = readFileSync(expectedPath, 'utf8').split('\n').filter(Boolean).map(l => JSON.parse(l));
const got = rows.map(r => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, norm(v)])));
const byKey = a => [...a].sort((x, y) => String(x[key]).localeCompare(String(y[key]), 'en', { numeric: true }));
const g = byKey(got), e = byKey(expected);
let bad = 0;
if (g.length !== e.length) { bad++; console.log(`FAIL rows: ${g.length} read, ${e.length} expected`); }
const keys = new Set(g.map(r => String(r[key])));
if (keys.size !== g.length) { bad++; console.log(`FAIL duplicate keys: ${g.length - keys.size}`); }
for (let i = 0, shown = 0; i < Math.min(g.length, e.length) && shown < 10; i++) {
  for (const c of Object.keys(e[i])) {
    if (JSON.stringify(g[i][c]) !== JSON.stringify(e[i][c])) { bad++; shown++; console.log(`FAIL row ${i} (${key}=${e[i][key]}) ${c}: ${JSON.stringify(g[i][c])} != ${JSON.stringify(e[i][c])}`); break; }
  }
}
console.log(`${bad ? 'FAIL' : 'ok  '} icebird read ${g.length} rows of ${tableUrl}${metadataFileName ? ' @' + metadataFileName : ''}`);
process.exit(bad ? 1 : 0);
