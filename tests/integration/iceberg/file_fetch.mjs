// Serves file:// URLs from the local disk to fetch() (range requests too):
// icebird fetches URLs, and the tables' locations are file:// URIs.
import { readFileSync } from 'node:fs';

const realFetch = globalThis.fetch;
globalThis.fetch = async (url, init) => {
  const u = String(url);
  if (!u.startsWith('file://')) return realFetch(url, init);
  let data;
  try { data = readFileSync(decodeURIComponent(u.slice(7))); } catch { return new Response('not found', { status: 404, statusText: 'Not Found' }); }
  const range = new Headers(init && init.headers).get('range');
  if (range) {
    const m = /bytes=(\d+)-(\d*)/.exec(range);
    const end = m[2] ? Number(m[2]) + 1 : data.length;
    return new Response(data.subarray(Number(m[1]), end), { status: 206, headers: { 'content-length': String(end - Number(m[1])) } });
  }
  if (init && init.method === 'HEAD') return new Response(null, { status: 200, headers: { 'content-length': String(data.length) } });
  return new Response(data, { status: 200, headers: { 'content-length': String(data.length) } });
};

