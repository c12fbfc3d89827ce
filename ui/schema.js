// ui/schema.js — Avro schemas for people: fields flattened with their types,
// what changed between two versions, and a line diff.

// A type as a short text: "long", "string?" (a union with null), "record Movie", "array<int>".
export function typeText(t) {
  if (typeof t === 'string') return t;
  if (Array.isArray(t)) {
    const rest = t.filter(x => x !== 'null');
    const inner = rest.map(typeText).join(' | ');
    return rest.length < t.length ? (rest.length > 1 ? `(${inner})?` : inner + '?') : inner;
  }
  if (!t || typeof t !== 'object') return String(t);
  if (t.logicalType) return `${t.logicalType} (${typeText(t.type)})`;
  switch (t.type) {
    case 'record': return 'record ' + (t.name || '');
    case 'array': return `array<${typeText(t.items)}>`;
    case 'map': return `map<${typeText(t.values)}>`;
    case 'enum': return `enum {${(t.symbols || []).join(', ')}}`;
    case 'fixed': return `fixed(${t.size})`;
    default: return typeText(t.type);
  }
}

// Every field, nested record fields too, as {path, type, doc, def}.
export function fieldsOf(schema, prefix = '', out = [], depth = 0) {
  if (!schema || depth > 32) return out;
  for (const f of schema.fields || []) {
    const path = prefix + f.name;
    out.push({ path, type: typeText(f.type), doc: f.doc, def: f.default });
    for (const r of records(f.type)) fieldsOf(r, path + '.', out, depth + 1);
  }
  return out;
}

function records(t) {
  if (Array.isArray(t)) return t.flatMap(records);
  if (t && typeof t === 'object' && t.type === 'record') return [t];
  return [];
}

// Field-level changes from schema a to b: added, removed, changed (type, default).
export function diffSchemas(a, b) {
  const fa = new Map(fieldsOf(a).map(f => [f.path, f])), fb = new Map(fieldsOf(b).map(f => [f.path, f]));
  const out = [];
  for (const [p, f] of fa) {
    const g = fb.get(p);
    if (!g) out.push({ change: 'removed', path: p, before: f.type });
    else if (g.type !== f.type || JSON.stringify(g.def) !== JSON.stringify(f.def))
      out.push({ change: 'changed', path: p, before: f.type + defText(f), after: g.type + defText(g) });
  }
  for (const [p, g] of fb) if (!fa.has(p)) out.push({ change: 'added', path: p, after: g.type + defText(g) });
  return out;
}

const defText = f => (f.def === undefined ? '' : ` = ${JSON.stringify(f.def)}`);

// Lines of a and b as [op, line] with op ' ', '-' or '+' (longest common subsequence).
export function lineDiff(a, b) {
  const x = a.split('\n'), y = b.split('\n');
  const n = x.length, m = y.length;
  if (n * m > 4e6) return [...x.map(l => ['-', l]), ...y.map(l => ['+', l])];
  const L = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--)
    for (let j = m - 1; j >= 0; j--) L[i][j] = x[i] === y[j] ? L[i + 1][j + 1] + 1 : Math.max(L[i + 1][j], L[i][j + 1]);
  const out = [];
  let i = 0, j = 0;
  while (i < n && j < m) {
    if (x[i] === y[j]) { out.push([' ', x[i]]); i++; j++; }
    else if (L[i + 1][j] >= L[i][j + 1]) out.push(['-', x[i++]]);
    else out.push(['+', y[j++]]);
  }
  while (i < n) out.push(['-', x[i++]]);
  while (j < m) out.push(['+', y[j++]]);
  return out;
}
