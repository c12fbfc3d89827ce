// ui/sql.js — the SQL editor: a script of statements (EXPLAIN, SHOW SOURCES,
// DESCRIBE, CREATE SOURCE … AS SELECT, DROP SOURCE) run by POST /api/v1/sql,
// each statement's answer shown in order; errors at the script's line:col.
// A script that is one bare SELECT runs as a push query, as `datamesh sql`
// does (cli/cmd_sql.c): checked with POST /api/v1/plan, applied as a
// temporary pipeline sql-query-ui-… publishing its rows, which stream into a
// table until Stop, the row limit, leaving the page or unloading it; then the
// pipeline (and with it its derived output) is deleted.
import { api, clear, h, link, table, setQuery, errorBox, onLeave, session } from './lib.js';

const EXAMPLE = `EXPLAIN SELECT p.id, m.title FROM plays AS p LEFT JOIN movies AS m ON p.movie_id = m.movie_id
WHERE p.country = 'US';
SHOW SOURCES;
`;

export async function sqlPage(main, params, query) {
  const area = h('textarea', { id: 'sql', spellcheck: 'false', rows: 10, 'aria-label': 'SQL script', value: query.get('q') || EXAMPLE });
  const out = h('div', { id: 'sql-out', 'aria-live': 'polite' });
  const beginning = h('input', { type: 'checkbox', id: 'sql-from-beginning' });
  const limit = h('input', { type: 'number', class: 'narrow', id: 'sql-limit', min: 1, max: 100000, value: 200, 'aria-label': 'Row limit' });
  const runBtn = h('button', { class: 'primary', id: 'sql-run' }, 'Run');
  const stopBtn = h('button', { id: 'sql-stop', disabled: true }, 'Stop');
  const asName = h('input', { type: 'text', id: 'sql-as-name', placeholder: 'source name', 'aria-label': 'Name of the source to create', pattern: '[a-z0-9][a-z0-9._-]*' });
  let push = null; // the push query running, if any

  const showError = e => {
    const m = e.message.match(/line (\d+), column (\d+)/);
    clear(out, errorBox(e), m ? h('pre', { class: 'code excerpt', id: 'sql-excerpt' }, excerpt(area.value, +m[1], +m[2])) : null);
    if (m) {
      const lines = area.value.split('\n');
      const pos = lines.slice(0, +m[1] - 1).reduce((a, l) => a + l.length + 1, 0) + +m[2] - 1;
      area.focus();
      area.setSelectionRange(pos, pos);
    }
  };
  const run = async () => {
    if (push) await push.stop();
    clear(out, h('p', { class: 'muted' }, 'Running…'));
    setQuery({ q: area.value.length < 1500 ? area.value : null });
    const select = bareSelect(area.value);
    if (select) {
      push = pushQuery(select, { out, fromBeginning: beginning.checked, limit: Math.max(1, +limit.value || 200), onError: showError,
        onEnd: () => { push = null; stopBtn.disabled = true; runBtn.disabled = false; } });
      runBtn.disabled = true; stopBtn.disabled = false;
      return;
    }
    try {
      const r = await api('/api/v1/sql', { method: 'POST', body: area.value, headers: { 'Content-Type': 'text/plain' } });
      clear(out, (r.results || []).map((x, i) => result(x, i + 1)));
    } catch (e) {
      showError(e);
    }
  };
  const createAs = async () => {
    const select = bareSelect(area.value);
    const name = asName.value.trim();
    if (!select || !name) {
      clear(out, errorBox(!select ? 'Create as source: the script must be one SELECT' : 'Create as source: give the source a name'));
      return;
    }
    area.value = `CREATE SOURCE "${name.replace(/"/g, '""')}" AS ${select.trim()};\n`;
    await run();
  };
  runBtn.addEventListener('click', run);
  stopBtn.addEventListener('click', () => push && push.stop());
  area.addEventListener('keydown', e => { if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); if (!runBtn.disabled) run(); } });
  onLeave(() => { if (push) push.stop(true); });
  clear(main, h('h1', {}, 'SQL'),
    h('p', { class: 'muted' }, 'Statements end with ;. EXPLAIN shows the plan a query compiles to; CREATE SOURCE name AS SELECT … runs it as a pipeline. A lone SELECT is a push query: its rows stream into a table until Stop or the row limit. Ctrl+Enter runs.'),
    h('div', { class: 'editor sql' }, area),
    h('div', { class: 'toolbar' }, runBtn, stopBtn,
      h('label', {}, beginning, ' from beginning'),
      h('label', {}, 'row limit ', limit),
      h('span', { class: 'sep' }, ' · '),
      asName, h('button', { id: 'sql-create-as', onclick: createAs }, 'Create as source')),
    out);
}

// The SELECT when the script is one bare SELECT (comments and a final ;
// aside), with what stands before it kept so errors keep the script's
// line:col; else null.
export function bareSelect(text) {
  const stmts = [];
  let start = 0, i = 0;
  const n = text.length;
  while (i < n) {
    const c = text[i];
    if (c === "'" || c === '"') { // a string or a quoted name; '' and "" escape
      for (i++; i < n; i++) if (text[i] === c) { if (text[i + 1] === c) i++; else break; }
      i++;
    } else if (c === '-' && text[i + 1] === '-') { while (i < n && text[i] !== '\n') i++; }
    else if (c === '/' && text[i + 1] === '*') { const e = text.indexOf('*/', i + 2); i = e < 0 ? n : e + 2; }
    else if (c === ';') { stmts.push(text.slice(start, i)); start = ++i; }
    else i++;
  }
  stmts.push(text.slice(start));
  const bare = s => s.replace(/--[^\n]*|\/\*[\s\S]*?\*\//g, ' ').trim();
  const real = stmts.filter(s => bare(s));
  if (real.length !== 1 || !/^select\b/i.test(bare(real[0]))) return null;
  // in place: the lines before it kept as blank lines, so positions match
  const at = text.indexOf(real[0]);
  return text.slice(0, at).replace(/[^\n]/g, ' ') + real[0];
}

// Runs a push query: applies the temporary pipeline and streams its rows into
// out. Returns { stop(leaving) } which deletes the pipeline, and with it its
// derived output (keepalive, so it still goes when the page is left or unloaded).
function pushQuery(query, { out, fromBeginning, limit, onError, onEnd }) {
  const name = 'sql-query-ui-' + Date.now().toString(36) + '-' + Math.random().toString(36).slice(2, 7);
  const ctrl = new AbortController();
  const status = h('p', { class: 'muted', id: 'sql-push-status' }, 'Checking…');
  const head = h('tr', {});
  const body = h('tbody', { id: 'sql-rows' });
  let columns = [], rows = 0, applied = false, stopped = false;
  const doc = sql => JSON.stringify({ kind: 'Pipeline',
    metadata: { name, owner: 'sql', description: 'a push query of the UI SQL page (deleted when it ends)' },
    spec: { sql, to: [{ source: name }], start: fromBeginning ? 'earliest' : 'latest' } });
  const drop = () => {
    if (!applied) return;
    applied = false;
    const headers = session.csrf ? { 'X-CSRF-Token': session.csrf } : {};
    // its output is a derived source: it goes with the pipeline
    fetch('/api/v1/pipelines/' + encodeURIComponent(name), { method: 'DELETE', headers, credentials: 'same-origin', keepalive: true }).catch(() => {});
  };
  const onUnload = () => drop();
  const stop = async leaving => {
    if (stopped) return;
    stopped = true;
    ctrl.abort();
    drop();
    window.removeEventListener('pagehide', onUnload);
    if (!leaving) status.textContent = `${rows} row${rows === 1 ? '' : 's'} · stopped; pipeline ${name} deleted`;
    onEnd();
  };
  const addRow = value => {
    const v = value && typeof value === 'object' ? value : { value };
    for (const k of Object.keys(v)) if (!columns.includes(k)) { columns.push(k); head.append(h('th', { scope: 'col' }, k)); }
    body.append(h('tr', {}, columns.map(k => h('td', {}, k in v ? (typeof v[k] === 'string' ? v[k] : JSON.stringify(v[k])) : ''))));
    rows++;
  };
  clear(out, h('section', { class: 'sql-result sql-push' }, h('h3', {}, 'push query'), status,
    h('table', { class: 'grid sql-rows' }, h('thead', {}, head), body)));
  (async () => {
    try {
      await api('/api/v1/plan', { method: 'POST', body: doc(query), signal: ctrl.signal });
      window.addEventListener('pagehide', onUnload);
      applied = true; // from here on, stopping deletes it (even while the apply is in flight)
      try {
        await api('/api/v1/apply?file=sql.yaml', { method: 'POST', body: doc(query.trim()), headers: { 'Content-Type': 'application/yaml' }, signal: ctrl.signal });
      } catch (e) {
        if (e.name !== 'AbortError') applied = false; // refused: nothing to delete
        throw e;
      }
      status.replaceChildren('Waiting for rows of ', link('/pipelines/' + encodeURIComponent(name), name), '…');
      let positions = null;
      while (!stopped && rows < limit) {
        const q = new URLSearchParams({ limit: String(Math.min(500, limit - rows)), timeout_ms: '500', from: 'earliest' });
        if (positions) q.set('positions', positions);
        let r;
        try {
          r = await api(`/api/v1/sources/${encodeURIComponent(name)}/records?${q}`, { signal: ctrl.signal });
        } catch (e) {
          if (e.status !== 404 && e.status !== 409) throw e;
          await new Promise(res => setTimeout(res, 200)); // its output (or its topic) is not there yet
          continue;
        }
        for (const rec of r.records || []) if (rows < limit) addRow(rec.value);
        positions = Object.entries(r.positions || {}).map(([p, o]) => `${p}:${o}`).join(',') || positions;
        if (!stopped) status.replaceChildren(`${rows} row${rows === 1 ? '' : 's'} · streaming from `, link('/pipelines/' + encodeURIComponent(name), name),
          fromBeginning ? ' (from the beginning)' : ' (from now on)');
      }
      if (!stopped) await stop();
    } catch (e) {
      if (stopped || e.name === 'AbortError') return;
      await stop();
      onError(e);
    }
  })();
  return { stop };
}

function result(r, n) {
  const head = h('h3', {}, `${r.statement || n}. ${r.kind}`);
  switch (r.kind) {
    case 'explain': return h('section', { class: 'sql-result' }, head, h('pre', { class: 'code' }, r.explain || JSON.stringify(r.plan, null, 2)));
    case 'show sources': return h('section', { class: 'sql-result' }, head, table(['Source', 'Owner', 'Connector'], (r.sources || []).map(s => {
      const name = typeof s === 'string' ? s : s.name || (s.metadata || {}).name;
      return [link('/sources/' + encodeURIComponent(name), name), s.owner || (s.metadata || {}).owner || '', s.connector || (s.spec || {}).connector || ''];
    }), { class: 'sql-sources' }));
    default: {
      const name = r.name || (typeof r.source === 'string' ? r.source : r.source && (r.source.name || (r.source.metadata || {}).name));
      return h('section', { class: 'sql-result' }, head,
        name ? h('p', {}, link('/sources/' + encodeURIComponent(name), name), r.pipeline ? [' · pipeline ', link('/pipelines/' + encodeURIComponent(r.pipeline), r.pipeline)] : null) : null,
        h('details', {}, h('summary', {}, 'Answer'), h('pre', { class: 'code' }, JSON.stringify(r, null, 2))));
    }
  }
}

function excerpt(text, line, col) {
  const lines = text.split('\n');
  const out = [];
  for (let i = Math.max(1, line - 1); i <= Math.min(lines.length, line + 1); i++) {
    out.push(`${String(i).padStart(4)} | ${lines[i - 1]}\n`);
    if (i === line) out.push(`     | ${' '.repeat(Math.max(0, col - 1))}^\n`);
  }
  return out.join('');
}
