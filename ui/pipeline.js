// ui/pipeline.js — the pipelines list and one pipeline: its graph (sources →
// fused stages → outputs and sinks) with records/s and lag on every edge,
// refreshed live; the status of every unit with its reason; the spec and the
// plan; its dead letters; the schema changes it met.
import { api, clear, h, go, leave, link, every, setQuery, table, tabs, badge, fmtNum, fmtTime, errorBox, lineageLink,
  sourceLink, yamlOf } from './lib.js';
import { drawGraph } from './graph.js';
import { lineChart, rates } from './chart.js';

const PAGE = 50;

export async function pipelinesPage(main, params, query, current) {
  const q = query.get('name') || '';
  const offset = Math.max(0, parseInt(query.get('offset') || '0', 10) || 0);
  const input = h('input', { type: 'search', value: q, id: 'pipelines-q', placeholder: 'name contains…', 'aria-label': 'Filter pipelines by name' });
  const out = h('div');
  let timer = null;
  input.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(() => load(0), 250); });
  clear(main, h('h1', {}, 'Pipelines'), h('div', { class: 'toolbar' }, input, link('/editor', 'New pipeline…')), out);
  async function load(off) {
    const p = new URLSearchParams({ limit: PAGE, offset: off });
    if (input.value.trim()) p.set('name', input.value.trim());
    const data = await api('/api/v1/pipelines?' + p);
    if (!current()) return;
    setQuery({ name: input.value.trim() || null, offset: off || null });
    const rows = data.items.map(pl => {
      const md = pl.metadata || {}, spec = pl.spec || {};
      const st = h('span', { class: 'muted' }, '…');
      api(`/api/v1/pipelines/${encodeURIComponent(md.name)}/status`).then(s => clear(st, badge(s.state)), e => clear(st, e.message));
      return [link('/pipelines/' + encodeURIComponent(md.name), md.name), md.owner || '–', st,
        (spec.from || []).map((f, i) => [i ? ', ' : '', sourceLink(f)]),
        (spec.to || []).map((t, i) => [i ? ', ' : '', t.source ? sourceLink(t.source) : (t.sink && t.sink.type) || '?'])];
    });
    clear(out, table(['Pipeline', 'Owner', 'State', 'From', 'To'], rows, { empty: 'no pipelines' }),
      h('div', { class: 'pager' }, h('span', { class: 'muted' }, `${data.total} pipelines`),
        off > 0 ? h('button', { onclick: () => load(Math.max(0, off - PAGE)) }, '← Previous') : null,
        off + PAGE < data.total ? h('button', { onclick: () => load(off + PAGE) }, 'Next →') : null));
  }
  await load(offset);
}

export async function pipelinePage(main, [name], query, current) {
  const enc = encodeURIComponent(name);
  const doc = await api(`/api/v1/pipelines/${enc}`);
  if (!current()) return;
  const tab = query.get('tab') || 'graph';
  const md = doc.metadata || {};
  const body = h('div', { class: 'tab-body' });
  const tabBar = h('div');
  const del = h('button', { class: 'danger', onclick: async () => {
    if (!confirm(`Delete pipeline ${name}? Its tasks stop; its derived source and topics stay.`)) return;
    leave(); // stop this page's polling first: it would ask for what is being deleted
    try { await api(`/api/v1/pipelines/${enc}`, { method: 'DELETE' }); go('/pipelines'); }
    catch (e) { alert(e.message); go(location.pathname + location.search, true); }
  } }, 'Delete…');
  clear(main,
    h('div', { class: 'crumbs' }, link('/pipelines', 'Pipelines'), ' / pipeline'),
    h('h1', {}, name, ' ', h('span', { id: 'pipeline-state' }), ' ', lineageLink('pipeline:' + name, 'lineage →')),
    h('p', { class: 'lead' }, [md.description, md.owner && `owner ${md.owner}`].filter(Boolean).join(' · ')),
    h('div', { class: 'actions' }, link('/editor?pipeline=' + enc, 'Edit spec'), ' ', del),
    tabBar, body);
  const pick = t => { setQuery({ tab: t === 'graph' ? null : t }, true); draw(t); };
  let stopTab = () => {};
  api(`/api/v1/pipelines/${enc}/status`).then(st => clear(document.getElementById('pipeline-state') || h('span'), badge(st.state)), () => {});
  function draw(t) {
    stopTab(); stopTab = () => {};
    clear(tabBar, tabs([['graph', 'Graph'], ['dashboard', 'Dashboard'], ['status', 'Status'], ['spec', 'Spec'], ['plan', 'Plan'], ['dead', 'Dead letters'], ['schema', 'Schema changes']], t, pick));
    clear(body, h('p', { class: 'muted' }, 'Loading…'));
    ({ graph, dashboard, status: statusView, spec: specView, plan: planView, dead: deadView, schema: schemaView }[t] || graph)().catch(e => clear(body, errorBox(e)));
  }

  async function graph() {
    const { plan } = await api(`/api/v1/pipelines/${enc}/plan`);
    const holder = h('div', { id: 'pipeline-graph' });
    const note = h('p', { class: 'muted' }, 'records/s and lag refresh every 2 s');
    clear(body, holder, note);
    const prev = new Map();
    let stopped = false;
    stopTab = () => { stopped = true; };
    let outPrev = null;
    every(2000, async () => {
      if (stopped) return;
      const [st, outParts, dead] = await Promise.all([
        api(`/api/v1/pipelines/${enc}/status`),
        plan.output && !plan.output.startsWith('pipeline.') ? api(`/api/v1/sources/${encodeURIComponent(plan.output)}/partitions`).catch(() => null) : null,
        api(`/api/v1/pipelines/${enc}/deadletters?limit=1`).catch(() => null)]);
      if (stopped || !current()) return;
      const now = performance.now();
      const rate = u => {
        const p = prev.get(u.name);
        return p && now > p.t ? Math.max(0, (u.position - p.position) * 1000 / (now - p.t)) : null;
      };
      const units = st.units || [];
      const rates = new Map(units.map(u => [u.name, rate(u)]));
      units.forEach(u => prev.set(u.name, { position: u.position, t: now }));
      let outRate = null;
      if (outParts) {
        const end = outParts.partitions.reduce((a, p) => a + p.end_offset, 0);
        if (outPrev && now > outPrev.t) outRate = Math.max(0, (end - outPrev.end) * 1000 / (now - outPrev.t));
        outPrev = { end, t: now };
      }
      clear(document.getElementById('pipeline-state') || h('span'), badge(st.state));
      clear(holder, drawGraph(...planGraph(plan, units, rates, outRate, dead), {
        ariaLabel: `graph of pipeline ${name}`,
        onNode: n => n.href && go(n.href),
      }));
    });
  }

  // Charts of the last hour from the controller's own history (no Prometheus).
  async function dashboard() {
    const out = h('div', { id: 'dashboard' });
    clear(body, out);
    let stopped = false;
    stopTab = () => { stopped = true; };
    every(3000, async () => {
      if (stopped) return;
      let hist;
      try { hist = await api(`/api/v1/pipelines/${enc}/history`); }
      catch (e) { if (!stopped) clear(out, h('p', { class: 'muted' }, e.message)); return; }
      if (stopped || !current()) return;
      const sm = hist.samples;
      const steps = sm.length ? sm[sm.length - 1].steps : [];
      const lastStep = steps.length - 1;
      const sumDead = x => x.steps.reduce((a, st) => a + st.dead, 0);
      clear(out,
        h('p', { class: 'muted' }, `${sm.length} samples, one every ${Math.round(hist.interval_ms / 1000)} s (the last ${hist.keep} are kept)`),
        h('div', { class: 'charts' },
          lineChart('Records/s', [
            { name: 'in', points: rates(sm, x => x.consumed) },
            { name: 'out', points: lastStep >= 0 ? rates(sm, x => (x.steps[lastStep] || {}).out || 0) : [] }], { unit: '/s' }),
          lineChart('Lag (records)', [{ name: 'lag', points: sm.map(x => [x.t, x.lag]) }]),
          lineChart('Dead letters/s', [{ name: 'dead', points: rates(sm, sumDead) }], { unit: '/s' })),
        h('h2', {}, 'Processors'),
        h('div', { class: 'charts' }, steps.map((st, i) => lineChart(`${st.step}. ${st.processor}`, [
          { name: 'in', points: rates(sm, x => (x.steps[i] || {}).in || 0) },
          { name: 'out', points: rates(sm, x => (x.steps[i] || {}).out || 0) },
          { name: 'dead', points: rates(sm, x => (x.steps[i] || {}).dead || 0) }], { unit: '/s' }))));
    });
  }

  async function statusView() {
    const out = h('div');
    clear(body, out);
    let stopped = false;
    stopTab = () => { stopped = true; };
    every(2000, async () => {
      if (stopped) return;
      const st = await api(`/api/v1/pipelines/${enc}/status`);
      if (stopped) return;
      clear(out, h('p', {}, 'Pipeline ', badge(st.state), st.reason ? ' — ' + st.reason : ''),
        table(['Unit', 'Kind', 'State', 'Position', 'Lag', 'Reason'], (st.units || []).map(u =>
          [u.name, u.kind, badge(u.state), fmtNum(u.position), fmtNum(u.lag), u.reason || u.error || u.message || '']), { class: 'units' }));
    });
  }

  async function specView() {
    clear(body, h('pre', { class: 'code', id: 'pipeline-spec' }, yamlOf({ kind: doc.kind, metadata: doc.metadata, spec: doc.spec })));
  }

  async function planView() {
    const p = await api(`/api/v1/pipelines/${enc}/plan`);
    clear(body, h('pre', { class: 'code', id: 'pipeline-plan' }, p.explain || JSON.stringify(p.plan, null, 2)),
      h('details', {}, h('summary', {}, 'Plan as JSON'), h('pre', { class: 'code' }, JSON.stringify(p.plan, null, 2))));
  }

  async function deadView() {
    const d = await api(`/api/v1/pipelines/${enc}/deadletters?limit=200`);
    const items = d.items.sort((a, b) => b.timestamp - a.timestamp);
    clear(body, h('p', { class: 'muted' }, `${fmtNum(d.total)} dead letters in ${d.topic}; the newest ${items.length} below`),
      table(['Time', 'Reason', 'Processor', 'Input', 'Key', 'Value'], items.map(x => [fmtTime(x.timestamp), h('span', { class: 'reason' }, x.reason || '–'),
        x.processor || '–', x.input ? `${x.input.topic}[${x.input.partition}]@${x.input.offset}` : '–',
        h('code', {}, JSON.stringify(x.key)), h('code', {}, JSON.stringify(x.value))]), { class: 'dead', empty: 'no dead letters: every record went through' }));
  }
  // What the pipeline did when a source it reads changed its schema
  // (docs/schema-evolution.md), newest first; kept by the controller's store.
  async function schemaView() {
    const items = (await api(`/api/v1/schema-changes?pipeline=${enc}`)).reverse();
    const policy = (doc.spec || {}).schema_change || 'lenient';
    clear(body, h('p', { class: 'muted' }, `spec.schema_change: ${policy}; ${items.length} change${items.length === 1 ? '' : 's'} met`),
      table(['Time', 'Policy', 'Action', 'What'], items.map(x => [fmtTime(x.ts_ms), x.policy, h('span', { class: 'badge st-' + (x.action === 'pause' ? 'failed' : 'running') }, x.action),
        h('span', { class: 'reason' }, x.what)]), { class: 'schema-changes', empty: 'no schema changes met' }));
  }
  draw(tab);
}

// The plan as nodes and edges, with the live numbers on the edges.
export function planGraph(plan, units, rates, outRate, dead) {
  const nodes = [], edges = [];
  const name = plan.pipeline;
  const seen = new Set();
  const addSource = (topic, kind = 'source') => {
    if (seen.has(topic)) return;
    seen.add(topic);
    nodes.push({ id: 't:' + topic, title: topic, lines: [kind], kind, href: topic.startsWith('pipeline.') ? null : '/sources/' + encodeURIComponent(topic) });
  };
  const stageUnits = st => units.filter(u => u.kind === 'task' && (st.name === 'main' ? /\/task\/\d+$/.test(u.name) && u.name.split('/').length === 3
    : u.name.startsWith(`${name}/${st.name}/task/`)));
  const sum = (list, f) => list.reduce((a, u) => a + (f(u) || 0), 0);
  const label = (r, lag) => `${r === null ? '…' : fmtNum(r, 1)} rec/s · lag ${fmtNum(lag)}`;
  for (const st of plan.stages) {
    const tasks = stageUnits(st);
    const r = tasks.some(u => rates.get(u.name) !== null && rates.get(u.name) !== undefined) ? sum(tasks, u => rates.get(u.name)) : null;
    const lag = sum(tasks, u => u.lag);
    const failing = tasks.filter(u => u.state !== 'running');
    nodes.push({ id: 's:' + st.name, title: `stage ${st.name} · ${tasks.length} task${tasks.length === 1 ? '' : 's'}`, kind: 'stage' + (failing.length ? ' warn' : ''),
      lines: st.steps.map(x => `${x.index}. ${x.kind} ${stepText(x)}`).concat(failing.length ? [`${failing.length} not running: ${failing[0].state}`] : []) });
    const inputs = [st.input, ...(st.more || []), st.other].filter(x => x && x.topic);
    for (const inp of inputs) {
      const internal = inp.topic.startsWith(`pipeline.${name}.`);
      const from = internal ? plan.stages.find(s => s.output === inp.topic || inp.topic.startsWith(s.output + '.')) : null;
      if (!from) addSource(inp.topic);
      edges.push({ from: from ? 's:' + from.name : 't:' + inp.topic, to: 's:' + st.name, label: label(r, lag), kind: 'data' });
    }
    const isRekey = plan.stages.some(s => s !== st && [s.input, ...(s.more || []), s.other].some(x => x && x.topic && (x.topic === st.output || x.topic.startsWith(st.output + '.'))));
    if (!isRekey && st.output) {
      addSource(st.output, st.output.startsWith('pipeline.') ? 'topic' : 'derived source');
      edges.push({ from: 's:' + st.name, to: 't:' + st.output, label: outRate === null || st.output !== plan.output ? '' : `${fmtNum(outRate, 1)} rec/s`, kind: 'data' });
    }
    for (const x of st.extra || []) { addSource(x, 'route output'); edges.push({ from: 's:' + st.name, to: 't:' + x, kind: 'data' }); }
    if (plan.dead_letter) edges.push({ from: 's:' + st.name, to: 'dlq', kind: 'dead' });
  }
  for (const t of plan.tables || []) {
    addSource(t.source, 'table (enrich)');
    const u = units.find(x => x.name === `${name}/table/${t.source}`);
    const users = plan.stages.filter(s => s.steps.some(x => x.kind === 'enrich' || x.kind === 'join'));
    for (const s of users.length ? users : plan.stages.slice(0, 1))
      edges.push({ from: 't:' + t.source, to: 's:' + s.name, kind: 'table', label: u ? `table · lag ${fmtNum(u.lag)}` : 'table' });
  }
  if (plan.dead_letter)
    nodes.push({ id: 'dlq', title: 'dead letters', lines: [dead ? `${fmtNum(dead.total)} records` : plan.dead_letter], kind: 'dlq' + (dead && dead.total ? ' warn' : ''),
      href: `/pipelines/${encodeURIComponent(name)}?tab=dead` });
  for (const sk of plan.sinks || []) {
    const u = units.find(x => x.name === sk.name);
    nodes.push({ id: 'k:' + sk.name, title: `${sk.type} sink`, lines: [sk.name, u ? u.state : ''].filter(Boolean), kind: 'sink' + (u && u.state !== 'running' ? ' warn' : '') });
    edges.push({ from: 't:' + plan.output, to: 'k:' + sk.name, label: u ? label(rates.get(u.name) ?? null, u.lag) : '', kind: 'data' });
  }
  return [nodes, edges];
}

function stepText(x) {
  const c = x.config || {};
  if (x.kind === 'filter') return c.expr || '';
  if (x.kind === 'project') return (c.columns || []).join(', ');
  if (x.kind === 'enrich') return `with ${c.with} on ${c.on}`;
  if (x.kind === 'aggregate') return (c.group_by || []).join(', ');
  return '';
}
