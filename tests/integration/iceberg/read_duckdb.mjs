// Reads the current snapshot of an Iceberg table written by datamesh with
// DuckDB (@duckdb/node-api): every data file and every equality delete file
// the manifests list (found with icebird's metadata and manifest readers) is
// read by DuckDB's Parquet reader, and the deletes are applied in SQL by the
// spec's rule (a delete removes rows of its key from files with a smaller
// sequence number). The rows must equal the expected ones.
// usage: node read_duckdb.mjs TABLE_URL EXPECTED.jsonl KEY [METADATA_FILE_NAME]
import { readFileSync } from 'node:fs';
import { DuckDBInstance } from '@duckdb/node-api';
import { icebergManifests, icebergMetadata } from 'icebird';
import './file_fetch.mjs';

const [tableUrl, expectedPath, key, metadataFileName] = process.argv.slice(2);
const metadata = await icebergMetadata({ tableUrl, metadataFileName: metadataFileName || undefined });
const manifests = await icebergManifests(metadata);
const data = [], deletes = [];
for (const m of manifests) {
  for (const e of m.entries) {
    if (e.status === 2) continue;
    const seq = Number(e.sequence_number ?? m.sequence_number);
    const f = { path: e.data_file.file_path.replace(/^file:\/\//, ''), seq, ids: e.data_file.equality_ids };
    (e.data_file.content === 0 ? data : deletes).push(f);
  }
}
const schema = metadata.schemas.find(s => s['schema-id'] === metadata['current-schema-id']);
const quote = s => `'${s.replace(/'/g, "''")}'`;
const files = a => `[${a.map(f => quote(f.path)).join(',')}]`;
const seqs = a => `(VALUES ${a.map(f => `(${quote(f.path)}, ${f.seq})`).join(',')}) AS t(f, seq)`;
const inst = await DuckDBInstance.create(':memory:');
const con = await inst.connect();
const cols = schema.fields.map(f => `d."${f.name}"`).join(', ');
let sql = `SELECT ${cols} FROM read_parquet(${files(data)}, filename = true, union_by_name = true) d
           JOIN ${seqs(data)} ON d.filename = t.f`;
if (deletes.length) {
  const keyName = schema.fields.find(f => f.id === Number(deletes[0].ids[0])).name;
  sql = `WITH del AS (SELECT x."${keyName}" AS k, s.seq FROM read_parquet(${files(deletes)}, filename = true) x
                      JOIN (VALUES ${deletes.map(f => `(${quote(f.path)}, ${f.seq})`).join(',')}) AS s(f, seq) ON x.filename = s.f)
         SELECT ${cols} FROM read_parquet(${files(data)}, filename = true, union_by_name = true) d
         JOIN ${seqs(data)} ON d.filename = t.f
         WHERE NOT EXISTS (SELECT 1 FROM del WHERE del.k = d."${keyName}" AND del.seq > t.seq)`;
}
const rows = (await con.runAndReadAll(sql)).getRowObjectsJS();
// Lists as arrays; maps (JS Maps, or DuckDB's [{key, value}] entries) as objects.
const isEntries = v => v.length > 0 && v.every(e => e && typeof e === 'object' && !Array.isArray(e) && Object.keys(e).join() === 'key,value');
const norm = v => (v === undefined || v === null) ? null : typeof v === 'bigint' ? v.toString() : v instanceof Date ? (BigInt(v.getTime()) * 1000n).toString()
  : Array.isArray(v) ? (isEntries(v) ? Object.fromEntries(v.map(e => [String(e.key), norm(e.value)])) : v.map(norm))
  : v instanceof Map ? Object.fromEntries([...v].map(([k, x]) => [String(k), norm(x)]))
  : typeof v === 'object' && !(v instanceof Uint8Array) ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, norm(x)])) : v;
const got = rows.map(r => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, norm(v)])));
const expected = readFileSync(expectedPath, 'utf8').split('\n').filter(Boolean).map(l => JSON.parse(l));
const byKey = a => [...a].sort((x, y) => String(x[key]).localeCompare(String(y[key]), 'en', { numeric: true }));
const g = byKey(got), e = byKey(expected);
let bad = 0;
if (g.length !== e.length) { bad++; console.log(`FAIL duckdb rows: ${g.length} read, ${e.length} expected`); }
for (let i = 0, shown = 0; i < Math.min(g.length, e.length) && shown < 10; i++) {
  for (const c of Object.keys(e[i])) {
    if (JSON.stringify(g[i][c]) !== JSON.stringify(e[i][c])) { bad++; shown++; console.log(`FAIL duckdb row ${i} (${key}=${e[i][key]}) ${c}: ${JSON.stringify(g[i][c])} != ${JSON.stringify(e[i][c])}`); break; }
  }
}
console.log(`${bad ? 'FAIL' : 'ok  '} duckdb read ${g.length} rows from ${data.length} data and ${deletes.length} delete files`);
process.exit(bad ? 1 : 0);
