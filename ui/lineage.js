// ui/lineage.js — lineage from GET /api/v1/lineage: which pipelines read and
// write which sources, down to fields. Pick a node (a source, SOURCE.FIELD or
// pipeline:NAME), a direction and a depth; click a node of the graph to drill
// into it. Every choice is in the URL.
import { api, clear, h, go, table, errorBox, link } from './lib.js';
import { drawGraph } from './graph.js';
import { fieldsOf } from './schema.js';

export async function lineagePage(main, params, query, current) {
  const node = query.get('node') || '';
  const direction = query.get('direction') || 'both';
  const depth = query.get('depth') || '';
  const nodeIn = h('input', { type: 'text', id: 'lineage-node', value: node, size: 32, placeholder: 'plays.country, us-plays or pipeline:us-plays', 'aria-label': 'Node' });
  const dirSel = h('select', { id: 'lineage-direction', 'aria-label': 'Direction' },
    ['both', 'upstream', 'downstream'].map(d => h('option', { value: d, selected: d === direction }, d)));
  const depthIn = h('input', { type: 'number', min: 1, max: 50, id: 'lineage-depth', value: depth, placeholder: 'depth', 'aria-label': 'Depth', class: 'narrow' });
  const submit = () => {
    const q = new URLSearchParams();
    if (nodeIn.value.trim()) q.set('node', nodeIn.value.trim());
    if (dirSel.value !== 'both') q.set('direction', dirSel.value);
    if (depthIn.value) q.set('depth', depthIn.value);
    go('/lineage' + (q.toString() ? '?' + q : ''));
  };
  const form = h('form', { class: 'toolbar', onsubmit: e => { e.preventDefault(); submit(); } },
    nodeIn, dirSel, depthIn, h('button', { type: 'submit', class: 'primary' }, 'Show'));
  const out = h('div', { id: 'lineage-out' }, h('p', { class: 'muted' }, 'Loading…'));
  const side = h('aside', { class: 'side', id: 'lineage-fields' });
  clear(main, h('h1', {}, 'Lineage'), form, h('div', { class: 'split' }, out, side));

  const q = new URLSearchParams();
  if (node) { q.set('node', node); q.set('direction', direction); }
  if (depth) q.set('depth', depth);
  let g;
  try { g = await api('/api/v1/lineage' + (q.toString() ? '?' + q : '')); } catch (e) { clear(out, errorBox(e)); return; }
  if (!current()) return;
  let nodes = g.nodes, edges = g.edges;
  // The whole graph is big: without a node, show datasets and pipelines only.
  if (!node) {
    nodes = nodes.filter(n => n.kind !== 'field' && n.kind !== 'column');
    const ids = new Set(nodes.map(n => n.id));
    edges = edges.filter(e => ids.has(e.from) && ids.has(e.to));
  }
  // Field walks list the pipelines that make their edges among the nodes; the
  // edges say which pipeline, so pipelines without edges are left out of the drawing.
  const linked = new Set(edges.flatMap(e => [e.from, e.to]));
  const drawn = nodes.filter(n => linked.has(n.id) || n.id === g.node || nodes.length === 1 || n.kind !== 'pipeline');
  const vnodes = drawn.map(n => ({ id: n.id, title: title(n), lines: lines(n), kind: 'lin-' + n.kind + (matches(n, node) ? ' focus' : '') }));
  const vedges = edges.map(e => ({ from: e.from, to: e.to, kind: 'lin-' + String(e.type || '').toLowerCase(), label: e.subtype ? e.subtype.toLowerCase() : '',
    title: `${e.type} ${e.subtype || ''}${e.pipeline ? ' in pipeline ' + e.pipeline : ''}` }));
  clear(out,
    g.problems && g.problems.length ? h('div', { class: 'warnbox' }, g.problems.map(p => h('div', {}, typeof p === 'string' ? p : JSON.stringify(p)))) : null,
    vnodes.length ? drawGraph(vnodes, vedges, { ariaLabel: 'lineage graph', selected: node,
      onNode: n => { nodeIn.value = n.id; submit(); } }) : h('p', { class: 'muted' }, 'no lineage'),
    h('h2', {}, 'Edges'),
    table(['From', 'To', 'How', 'Pipeline'], g.edges.map(e => [nodeLink(e.from, direction), nodeLink(e.to, direction), `${e.type} ${e.subtype || ''}`,
      e.pipeline ? link('/pipelines/' + encodeURIComponent(e.pipeline), e.pipeline) : '']), { class: 'lineage-edges', empty: 'no edges' }));
  drawFields(side, node, g, direction);
}

const matches = (n, node) => node && (n.id === node || n.name === node);

function title(n) {
  if (n.kind === 'field') return n.id;
  if (n.kind === 'pipeline') return 'pipeline ' + n.name;
  return n.name || n.id;
}

function lines(n) {
  if (n.kind === 'field') return [n.type ? 'field · ' + n.type : 'field'];
  if (n.kind === 'pipeline') return (n.steps || []).slice(0, 4).map(s => `${s.index}. ${s.kind}`);
  return [n.kind + (n.namespace ? ' · ' + n.namespace : '')];
}

function nodeLink(id, direction) {
  const q = new URLSearchParams({ node: id });
  if (direction && direction !== 'both') q.set('direction', direction);
  return h('a', { href: '/lineage?' + q, 'data-nav': true }, id);
}

// Drill-down: the fields of the source in focus (or of the field's source).
async function drawFields(side, node, g, direction) {
  const n = g.nodes.find(x => matches(x, node));
  const dataset = n && (n.kind === 'field' ? n.dataset : n.kind === 'source' ? n.name || n.id : null);
  if (!dataset) { clear(side); return; }
  try {
    const v = await api(`/subjects/${encodeURIComponent(dataset + '-value')}/versions/latest`);
    const fields = fieldsOf(JSON.parse(v.schema));
    clear(side, h('h2', {}, 'Fields of ', link('/sources/' + encodeURIComponent(dataset), dataset)),
      h('ul', { class: 'fieldlist' }, fields.map(f => h('li', {}, nodeLink(`${dataset}.${f.path}`, direction), ' ', h('span', { class: 'muted' }, f.type)))));
  } catch (e) { clear(side, h('p', { class: 'muted' }, e.message)); }
}
