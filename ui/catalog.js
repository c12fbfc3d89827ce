// ui/catalog.js — the catalog: every source (declared and derived) with owner,
// labels, connector, producers and consumers. Search (name, owner, label,
// field) and filters run on the server, a page at a time, so a catalog of tens
// of thousands of sources stays quick. State lives in the URL.
import { api, clear, h, sourceLink, pipelineLink, setQuery, go, table, fmtNum, errorBox } from './lib.js';

const PAGE = 50;

export async function catalogPage(main, params, query, current) {
  const q = query.get('q') || '', connector = query.get('connector') || '', owner = query.get('owner') || '';
  const offset = Math.max(0, parseInt(query.get('offset') || '0', 10) || 0);
  const search = h('input', { type: 'search', id: 'catalog-q', value: q, placeholder: 'name, owner, label or field…',
    'aria-label': 'Search the catalog' });
  const connSel = h('select', { id: 'catalog-connector', 'aria-label': 'Connector' },
    h('option', { value: '' }, 'any connector'),
    ['datagen', 'postgres', 'ingest', 'file', 'derived', 'mysql', 'cockroachdb'].map(c => h('option', { value: c, selected: c === connector }, c)));
  const ownerIn = h('input', { type: 'text', id: 'catalog-owner', value: owner, placeholder: 'owner team', 'aria-label': 'Owner', size: 12 });
  const results = h('div', { id: 'catalog-results' }, h('p', { class: 'muted' }, 'Loading…'));
  const apply = push => go('/catalog?' + new URLSearchParams(Object.entries({ q: search.value.trim(), connector: connSel.value, owner: ownerIn.value.trim() })
    .filter(([, v]) => v)), !push);
  let timer = null;
  search.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(() => load(search.value.trim(), 0), 250); });
  search.addEventListener('keydown', e => { if (e.key === 'Enter') apply(true); });
  connSel.addEventListener('change', () => apply(true));
  ownerIn.addEventListener('change', () => apply(true));

  clear(main,
    h('h1', {}, 'Catalog'),
    h('div', { class: 'toolbar' }, search, connSel, ownerIn),
    results);

  async function load(text, off) {
    const p = new URLSearchParams({ limit: PAGE, offset: off });
    if (text) p.set('q', text);
    if (connSel.value) p.set('connector', connSel.value);
    if (ownerIn.value.trim()) p.set('owner', ownerIn.value.trim());
    let data;
    try { data = await api('/api/v1/catalog?' + p); } catch (e) { clear(results, errorBox(e)); return; }
    if (!current()) return;
    setQuery({ q: text, offset: off || null });
    const rows = data.items.map(src => {
      const md = src.metadata || {}, spec = src.spec || {};
      const fields = ((spec.schema || {}).fields || []).map(f => f.name);
      return [
        sourceLink(md.name),
        md.owner || h('span', { class: 'muted' }, '–'),
        h('span', { class: 'conn' }, spec.connector || '?'),
        labels(md.labels),
        who(src.producers),
        who(src.consumers),
        h('span', { class: 'fields', title: fields.join(', ') }, fields.length ? fields.slice(0, 6).join(', ') + (fields.length > 6 ? ', …' : '') : '–'),
      ];
    });
    const pager = h('div', { class: 'pager' },
      h('span', { class: 'muted' }, data.total ? `${fmtNum(off + 1)}–${fmtNum(off + data.items.length)} of ${fmtNum(data.total)} sources` : 'no sources match'),
      off > 0 ? h('button', { onclick: () => load(text, Math.max(0, off - PAGE)) }, '← Previous') : null,
      off + PAGE < data.total ? h('button', { onclick: () => load(text, off + PAGE) }, 'Next →') : null);
    clear(results, table(['Source', 'Owner', 'Connector', 'Labels', 'Producers', 'Consumers', 'Fields'], rows,
      { class: 'catalog', empty: text ? `no source matches “${text}”` : 'the catalog is empty: apply a Source spec' }), pager);
  }
  await load(q, offset);
}

function labels(l) {
  const e = Object.entries(l || {});
  return e.length ? e.map(([k, v]) => h('span', { class: 'label' }, `${k}: ${v}`)) : h('span', { class: 'muted' }, '–');
}

// "pipeline:us-plays" → a link; "connector:datagen" → text.
export function who(list) {
  if (!list || !list.length) return h('span', { class: 'muted' }, '–');
  return list.map((x, i) => {
    const [kind, name] = String(x).split(/:(.*)/s);
    const el = kind === 'pipeline' ? pipelineLink(name) : h('span', {}, x);
    return [i ? ', ' : '', el];
  });
}
