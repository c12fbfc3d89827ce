// ui/sql.js — the SQL editor: a script of statements (EXPLAIN, SHOW SOURCES,
// DESCRIBE, CREATE SOURCE … AS SELECT, DROP SOURCE) run by POST /api/v1/sql,
// each statement's answer shown in order; errors at the script's line:col.
import { api, clear, h, link, table, setQuery, errorBox } from './lib.js';

const EXAMPLE = `EXPLAIN SELECT p.id, m.title FROM plays AS p LEFT JOIN movies AS m ON p.movie_id = m.movie_id
WHERE p.country = 'US';
SHOW SOURCES;
`;

export async function sqlPage(main, params, query) {
  const area = h('textarea', { id: 'sql', spellcheck: 'false', rows: 10, 'aria-label': 'SQL script', value: query.get('q') || EXAMPLE });
  const out = h('div', { id: 'sql-out', 'aria-live': 'polite' });
  const run = async () => {
    clear(out, h('p', { class: 'muted' }, 'Running…'));
    setQuery({ q: area.value.length < 1500 ? area.value : null });
    try {
      const r = await api('/api/v1/sql', { method: 'POST', body: area.value, headers: { 'Content-Type': 'text/plain' } });
      clear(out, (r.results || []).map((x, i) => result(x, i + 1)));
    } catch (e) {
      const m = e.message.match(/line (\d+), column (\d+)/);
      clear(out, errorBox(e), m ? h('pre', { class: 'code excerpt', id: 'sql-excerpt' }, excerpt(area.value, +m[1], +m[2])) : null);
      if (m) {
        const lines = area.value.split('\n');
        const pos = lines.slice(0, +m[1] - 1).reduce((a, l) => a + l.length + 1, 0) + +m[2] - 1;
        area.focus();
        area.setSelectionRange(pos, pos);
      }
    }
  };
  area.addEventListener('keydown', e => { if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); run(); } });
  clear(main, h('h1', {}, 'SQL'),
    h('p', { class: 'muted' }, 'Statements end with ;. EXPLAIN shows the plan a query compiles to; CREATE SOURCE name AS SELECT … runs it as a pipeline. Ctrl+Enter runs. Push queries (a bare SELECT) stream with `datamesh sql`.'),
    h('div', { class: 'editor sql' }, area),
    h('div', { class: 'toolbar' }, h('button', { class: 'primary', id: 'sql-run', onclick: run }, 'Run')),
    out);
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
      const name = r.name || (r.source && (r.source.name || (r.source.metadata || {}).name));
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
