// ui/graph.js — draws a directed acyclic graph as SVG: nodes in columns by
// their distance from the inputs (longest path), ordered in each column by
// the mean row of their parents to keep edges from crossing, edges as curves
// with an optional label. No layout library: pipelines and lineage graphs are
// small and layered by nature.
import { s, h } from './lib.js';

const W = 182, GAPX = 130, GAPY = 26, PAD = 16, LINE = 16;

// nodes: [{id, title, lines: [text], kind, href, col?}], edges: [{from, to, label, kind}]
export function drawGraph(nodes, edges, { onNode, selected, ariaLabel = 'graph' } = {}) {
  const byId = new Map(nodes.map(n => [n.id, n]));
  edges = edges.filter(e => byId.has(e.from) && byId.has(e.to) && e.from !== e.to);
  const parents = new Map(nodes.map(n => [n.id, []]));
  for (const e of edges) parents.get(e.to).push(e.from);
  // Columns: longest path from a node without parents (cycles cut by depth).
  const col = new Map();
  const colOf = (id, depth = 0) => {
    if (col.has(id)) return col.get(id);
    const n = byId.get(id);
    let c = n.col !== undefined ? n.col : 0;
    if (n.col === undefined && depth < 64) for (const p of parents.get(id)) c = Math.max(c, colOf(p, depth + 1) + 1);
    col.set(id, c);
    return c;
  };
  nodes.forEach(n => colOf(n.id));
  const cols = [];
  for (const n of nodes) (cols[col.get(n.id)] ||= []).push(n);
  // Heights and order (barycenter of the parents' rows).
  const height = n => 30 + LINE * Math.max(0, (n.lines || []).length);
  const pos = new Map();
  let maxH = 0;
  cols.forEach((list, c) => {
    if (!list) return;
    if (c > 0) list.sort((a, b) => bary(a) - bary(b));
    let y = PAD;
    for (const n of list) { pos.set(n.id, { x: PAD + c * (W + GAPX), y, h: height(n) }); y += height(n) + GAPY; }
    maxH = Math.max(maxH, y);
  });
  function bary(n) {
    const ps = parents.get(n.id).map(p => pos.get(p)).filter(Boolean);
    return ps.length ? ps.reduce((a, p) => a + p.y, 0) / ps.length : 1e9;
  }
  const width = PAD * 2 + cols.length * W + (cols.length - 1) * GAPX;
  const svg = s('svg', { class: 'graph', viewBox: `0 0 ${width} ${maxH + PAD}`, width, height: maxH + PAD, role: 'img', 'aria-label': ariaLabel },
    s('defs', {}, s('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' },
      s('path', { d: 'M0 0 L10 5 L0 10 z', class: 'arrowhead' }))));
  for (const e of edges) {
    const a = pos.get(e.from), b = pos.get(e.to);
    const x1 = a.x + W, y1 = a.y + a.h / 2, x2 = b.x, y2 = b.y + b.h / 2, mx = (x1 + x2) / 2;
    const g = s('g', { class: 'edge ' + (e.kind || ''), 'data-from': e.from, 'data-to': e.to });
    g.append(s('path', { d: `M${x1} ${y1} C${mx} ${y1} ${mx} ${y2} ${x2 - 2} ${y2}`, 'marker-end': 'url(#arrow)' }));
    if (e.label) { // by the edge's start: fanned-in edges keep their labels apart, clear of the target
      const ly = y1 + (y2 - y1) * 0.2 - 5;
      g.append(s('text', { x: x1 + 6, y: ly, 'text-anchor': 'start', class: 'edge-label' }, e.label));
    }
    if (e.title) g.append(s('title', {}, e.title));
    svg.append(g);
  }
  for (const n of nodes) {
    const p = pos.get(n.id);
    const g = s('g', { class: `node ${n.kind || ''}${selected === n.id ? ' selected' : ''}`, transform: `translate(${p.x} ${p.y})`,
      tabindex: onNode || n.href ? 0 : null, role: onNode || n.href ? 'link' : null, 'data-id': n.id, 'aria-label': `${n.kind || 'node'} ${n.title}` });
    g.append(s('rect', { width: W, height: p.h, rx: 6 }),
      s('text', { x: 10, y: 19, class: 'node-title' }, clip(n.title, 24)),
      ...(n.lines || []).map((l, i) => s('text', { x: 10, y: 37 + i * LINE, class: 'node-line' }, clip(l, 29))),
      s('title', {}, [n.title, ...(n.lines || [])].join('\n')));
    const act = () => onNode ? onNode(n) : null;
    if (onNode) {
      g.addEventListener('click', act);
      g.addEventListener('keydown', e => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); act(); } });
    }
    svg.append(g);
  }
  return h('div', { class: 'graph-wrap' }, svg);
}

const clip = (t, n) => (String(t).length > n ? String(t).slice(0, n - 1) + '…' : String(t));
