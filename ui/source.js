// ui/source.js — one source: overview (owner, producers, consumers,
// partitions), fields, schema versions with a diff, and a live tail.
import { api, clear, h, onLeave, setQuery, table, tabs, fmtNum, fmtBytes, fmtTime, errorBox, badge,
  lineageLink, yamlOf, ApiError } from './lib.js';
import { who } from './catalog.js';
import { fieldsOf, diffSchemas, lineDiff } from './schema.js';

export async function sourcePage(main, [name], query, current) {
  const tab = query.get('tab') || 'overview';
  // The catalog entry (declared or derived) with its producers and consumers.
  const src = await api(`/api/v1/sources/${encodeURIComponent(name)}`);
  if (!current()) return;
  const md = src.metadata || {}, spec = src.spec || {};
  const body = h('div', { class: 'tab-body' });
  const pick = t => { setQuery({ tab: t === 'overview' ? null : t }, true); draw(t); };
  const tabBar = h('div');
  clear(main,
    h('div', { class: 'crumbs' }, h('a', { href: '/catalog', 'data-nav': true }, 'Catalog'), ' / source'),
    h('h1', {}, name, ' ', h('span', { class: 'conn' }, spec.connector || '?'), ' ', lineageLink(name, 'lineage →')),
    md.description ? h('p', { class: 'lead' }, md.description) : null,
    tabBar, body);
  let leaveTab = () => {};
  function draw(t) {
    leaveTab(); leaveTab = () => {};
    clear(tabBar, tabs([['overview', 'Overview'], ['fields', 'Fields'], ['schema', 'Schema versions'], ['tail', 'Live tail']], t, pick));
    clear(body, h('p', { class: 'muted' }, 'Loading…'));
    const views = { overview, fields, schema: schemaView, tail };
    (views[t] || overview)().catch(e => clear(body, errorBox(e)));
  }

  async function overview() {
    const parts = h('div', {}, h('p', { class: 'muted' }, 'Loading partitions…'));
    const status = h('div');
    clear(body,
      h('dl', { class: 'facts' },
        h('dt', {}, 'Owner'), h('dd', {}, md.owner || '–'),
        h('dt', {}, 'Labels'), h('dd', {}, Object.entries(md.labels || {}).map(([k, v]) => h('span', { class: 'label' }, `${k}: ${v}`))),
        h('dt', {}, 'Key'), h('dd', {}, (spec.key || []).join(', ') || '–'),
        h('dt', {}, 'Producers'), h('dd', { id: 'producers' }, who(src.producers)),
        h('dt', {}, 'Consumers'), h('dd', { id: 'consumers' }, who(src.consumers))),
      h('h2', {}, 'Status'), status,
      h('h2', {}, 'Partitions'), parts,
      spec.connector !== 'derived' ? [h('h2', {}, 'Spec'), h('pre', { class: 'code' }, yamlOf({ kind: src.kind, metadata: md, spec }))] : null);
    let stop = false;
    leaveTab = () => { stop = true; };
    const tick = async () => {
      if (stop || !current()) return;
      try {
        const [p, st] = await Promise.all([api(`/api/v1/sources/${encodeURIComponent(name)}/partitions`).catch(e => e),
          api(`/api/v1/sources/${encodeURIComponent(name)}/status`).catch(e => e)]);
        if (stop) return;
        if (p instanceof Error) clear(parts, h('p', { class: 'muted' }, p.message));
        else clear(parts, table(['Partition', 'First offset', 'End offset', 'Records', 'Size'],
          p.partitions.map(x => [String(x.partition), fmtNum(x.start_offset), fmtNum(x.end_offset), fmtNum(x.records), fmtBytes(x.size_bytes)]), { class: 'partitions' }),
          h('p', { class: 'muted' }, `${fmtNum(p.records)} records, ${fmtBytes(p.size_bytes)}${p.compact ? ', compacted' : ''}`));
        if (st instanceof Error) clear(status, h('p', { class: 'muted' }, st.message));
        else clear(status, badge(st.state), ' ', table(['Unit', 'State', 'Position', 'Lag', 'Reason'],
          (st.units || []).map(u => [u.name, badge(u.state), fmtNum(u.position), fmtNum(u.lag), u.reason || u.error || ''])));
      } finally { if (!stop) setTimeout(tick, 3000); }
    };
    onLeave(() => { stop = true; });
    tick();
  }

  async function fields() {
    const sch = spec.schema || (await latestSchema(name)).schema;
    const rows = fieldsOf(sch).map(f => [
      h('code', {}, f.path), h('code', { class: 'type' }, f.type), f.doc || '', f.def === undefined ? '' : h('code', {}, JSON.stringify(f.def)),
      [lineageLink(`${name}.${f.path}`, 'downstream', 'downstream'), ' · ', lineageLink(`${name}.${f.path}`, 'upstream', 'upstream')]]);
    clear(body, table(['Field', 'Type', 'Doc', 'Default', 'Lineage'], rows, { class: 'fields' }));
  }

  async function schemaView() {
    const subject = name + '-value';
    const [versions, level] = await Promise.all([api(`/subjects/${encodeURIComponent(subject)}/versions`),
      api(`/config/${encodeURIComponent(subject)}`).catch(() => api('/config'))]);
    const all = await Promise.all(versions.map(v => api(`/subjects/${encodeURIComponent(subject)}/versions/${v}`)));
    const a = parseInt(query.get('a') || '', 10) || versions[Math.max(0, versions.length - 2)];
    const b = parseInt(query.get('b') || '', 10) || versions[versions.length - 1];
    const selA = h('select', { 'aria-label': 'from version', id: 'diff-a' }, versions.map(v => h('option', { value: v, selected: v === a }, 'v' + v)));
    const selB = h('select', { 'aria-label': 'to version', id: 'diff-b' }, versions.map(v => h('option', { value: v, selected: v === b }, 'v' + v)));
    const out = h('div');
    const show = chosen => {
      const va = all.find(x => x.version === +selA.value), vb = all.find(x => x.version === +selB.value);
      if (chosen) setQuery({ a: selA.value, b: selB.value });
      const sa = JSON.parse(va.schema), sb = JSON.parse(vb.schema);
      const d = diffSchemas(sa, sb);
      clear(out,
        h('h3', {}, `v${va.version} (id ${va.id}) → v${vb.version} (id ${vb.id})`),
        d.length ? table(['Change', 'Field', 'Before', 'After'], d.map(x => [h('span', { class: 'chg-' + x.change }, x.change), h('code', {}, x.path), h('code', {}, x.before || ''), h('code', {}, x.after || '')]))
          : h('p', { class: 'muted' }, 'no field changes'),
        h('pre', { class: 'code diff' }, lineDiff(JSON.stringify(sa, null, 2), JSON.stringify(sb, null, 2)).map(([k, t]) =>
          h('span', { class: 'd' + k }, (k === '+' ? '+ ' : k === '-' ? '- ' : '  ') + t + '\n'))));
    };
    selA.addEventListener('change', () => show(true)); selB.addEventListener('change', () => show(true));
    clear(body,
      h('dl', { class: 'facts' }, h('dt', {}, 'Subject'), h('dd', {}, h('code', {}, subject)),
        h('dt', {}, 'Compatibility'), h('dd', { id: 'compat' }, level.compatibilityLevel || level.compatibility || '–'),
        h('dt', {}, 'Versions'), h('dd', {}, all.map(v => `v${v.version} (id ${v.id})`).join(', '))),
      h('div', { class: 'toolbar' }, 'Diff ', selA, ' → ', selB), out);
    show(false);
  }

  async function tail() {
    let paused = false, positions = null, count = 0;
    const filterIn = h('input', { type: 'text', id: 'tail-filter', value: query.get('filter') || '', size: 40,
      placeholder: "country = 'US' AND amount > 1", 'aria-label': 'Filter expression' });
    const pauseBtn = h('button', { id: 'tail-pause', onclick: () => { paused = !paused; pauseBtn.textContent = paused ? 'Resume' : 'Pause'; info(); } }, 'Pause');
    const info = () => clear(state, paused ? 'paused' : 'live', ` · ${count} records shown`);
    const state = h('span', { class: 'muted', 'aria-live': 'polite' });
    const ferr = h('span', { class: 'error-inline' });
    const list = h('tbody', { id: 'tail-rows' });
    let pred = compileFilter(filterIn.value);
    filterIn.addEventListener('input', () => {
      try { pred = compileFilter(filterIn.value); clear(ferr); setQuery({ filter: filterIn.value || null }); } catch (e) { clear(ferr, e.message); }
    });
    clear(body, h('div', { class: 'toolbar' }, pauseBtn, filterIn, ferr, state),
      h('table', { class: 'grid tail' }, h('thead', {}, h('tr', {}, ['Partition', 'Offset', 'Time', 'Key', 'Value'].map(t => h('th', {}, t)))), list));
    info();
    let stop = false;
    const ctrl = new AbortController();
    leaveTab = () => { stop = true; ctrl.abort(); };
    onLeave(() => { stop = true; ctrl.abort(); });
    while (!stop && current()) {
      if (paused) { await sleep(300); continue; }
      const p = new URLSearchParams({ limit: 200, timeout_ms: 2000 });
      if (positions) p.set('positions', Object.entries(positions).map(([k, v]) => `${k}:${v}`).join(','));
      else p.set('from', 'latest');
      let r;
      try { r = await api(`/api/v1/sources/${encodeURIComponent(name)}/records?` + p, { signal: ctrl.signal }); }
      catch (e) {
        if (stop || e.name === 'AbortError') return;
        clear(state, e.message);
        if (e instanceof ApiError && e.status === 401) return;
        await sleep(2000); continue;
      }
      positions = r.positions;
      if (paused) continue;
      for (const rec of r.records) {
        if (!pred(rec.value)) continue;
        list.prepend(h('tr', {}, h('td', {}, rec.partition), h('td', {}, rec.offset), h('td', {}, fmtTime(rec.timestamp)),
          h('td', {}, h('code', {}, JSON.stringify(rec.key))), h('td', {}, h('code', {}, JSON.stringify(rec.value)))));
        count++;
      }
      while (list.children.length > 200) list.lastChild.remove();
      info();
    }
  }
  draw(tab);
}

async function latestSchema(name) {
  const v = await api(`/subjects/${encodeURIComponent(name + '-value')}/versions/latest`);
  return { ...v, schema: JSON.parse(v.schema) };
}

const sleep = ms => new Promise(r => setTimeout(r, ms));

// A filter over record values: `field op literal` joined by AND / OR (AND
// binds tighter); ops = != < <= > >= and `contains`; literals 'text', numbers,
// true, false, null. Anything else is plain text searched in the record.
export function compileFilter(text) {
  text = (text || '').trim();
  if (!text) return () => true;
  const cond = /^([A-Za-z_][\w.]*)\s*(=|!=|<=|>=|<|>|contains)\s*('(?:[^']|'')*'|-?\d+(?:\.\d+)?|true|false|null)$/i;
  const ors = text.split(/\s+OR\s+/i).map(part => part.split(/\s+AND\s+/i).map(c => {
    const m = c.trim().match(cond);
    if (!m) return null;
    const [, path, op, lit] = m;
    const v = lit.startsWith("'") ? lit.slice(1, -1).replace(/''/g, "'") : JSON.parse(lit.toLowerCase());
    return rec => {
      const x = path.split('.').reduce((o, k) => (o && typeof o === 'object' ? o[k] : undefined), rec);
      switch (op.toLowerCase()) {
        case '=': return x === v; case '!=': return x !== v;
        case '<': return x < v; case '<=': return x <= v; case '>': return x > v; case '>=': return x >= v;
        default: return typeof x === 'string' && x.includes(String(v));
      }
    };
  }));
  if (ors.some(a => a.some(c => !c))) {
    if (/(=|<|>|\bAND\b|\bOR\b)/i.test(text)) throw new Error("not a filter: write field = 'text' AND field > 1");
    const needle = text.toLowerCase();
    return rec => JSON.stringify(rec).toLowerCase().includes(needle);
  }
  return rec => ors.some(ands => ands.every(c => c(rec)));
}
