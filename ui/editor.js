// ui/editor.js — write or change specs (YAML, several documents), see the
// plan a dry run gives or the error at its line:col, then apply (confirmed).
import { api, clear, h, link, yamlOf, session } from './lib.js';

const EXAMPLE = `kind: Pipeline
metadata: {name: fr-plays, owner: growth, description: "plays from France"}
spec:
  from: [plays]
  steps:
    - filter: "country = 'FR'"
    - project: [id, movie_id, amount]
  to:
    - source: fr-plays
`;

export async function editorPage(main, params, query, current) {
  let text = EXAMPLE;
  const name = query.get('pipeline');
  if (name) {
    const doc = await api(`/api/v1/pipelines/${encodeURIComponent(name)}`);
    text = yamlOf({ kind: doc.kind, metadata: doc.metadata, spec: doc.spec }) + '\n';
  }
  if (!current()) return;
  const area = h('textarea', { id: 'spec', spellcheck: 'false', rows: 22, 'aria-label': 'Spec (YAML)', value: text });
  const gutter = h('pre', { class: 'gutter', 'aria-hidden': 'true' });
  const out = h('div', { id: 'editor-out', 'aria-live': 'polite' });
  const numbers = (bad) => {
    const n = area.value.split('\n').length;
    clear(gutter, Array.from({ length: n }, (_, i) => h('span', { class: i + 1 === bad ? 'bad' : '' }, String(i + 1))));
    gutter.scrollTop = area.scrollTop;
  };
  area.addEventListener('input', () => numbers());
  area.addEventListener('scroll', () => { gutter.scrollTop = area.scrollTop; });
  area.addEventListener('keydown', e => { // Tab indents (Escape then Tab leaves the editor)
    if (e.key === 'Tab' && !e.shiftKey && !area.dataset.escaped) {
      e.preventDefault();
      area.setRangeText('  ', area.selectionStart, area.selectionEnd, 'end');
      numbers();
    }
    area.dataset.escaped = e.key === 'Escape' ? '1' : '';
  });
  const run = async dry => {
    clear(out, h('p', { class: 'muted' }, dry ? 'Checking…' : 'Applying…'));
    numbers();
    if (!dry && !confirm('Apply these specs? Objects with these names are created or replaced.')) { clear(out); return; }
    try {
      const r = await api('/api/v1/apply?' + new URLSearchParams({ file: 'editor.yaml', ...(dry ? { dry_run: 'true' } : {}) }),
        { method: 'POST', body: area.value, headers: { 'Content-Type': 'application/yaml' } });
      clear(out, h('div', { class: 'okbox', id: 'editor-ok' }, dry ? 'Dry run: the plan below would be carried out.' : 'Applied.'),
        h('table', { class: 'grid' }, h('tbody', {}, (r.plan || []).map(a => h('tr', {}, h('td', {}, a.action), h('td', {}, a.kind),
          h('td', {}, a.kind === 'Pipeline' ? link('/pipelines/' + encodeURIComponent(a.name), a.name) : a.kind === 'Source' ? link('/sources/' + encodeURIComponent(a.name), a.name) : a.name),
          h('td', { class: 'muted' }, a.detail || ''))))));
    } catch (e) {
      const at = locate(area.value, e.message);
      numbers(at && at.line);
      clear(out, h('div', { class: 'error', role: 'alert', id: 'editor-error' },
        at ? h('strong', { class: 'at' }, `line ${at.line}${at.col ? ', column ' + at.col : ''}: `) : null, e.message),
        at ? h('pre', { class: 'code excerpt' }, excerpt(area.value, at)) : null);
      if (at) {
        const lines = area.value.split('\n');
        const pos = lines.slice(0, at.line - 1).reduce((a, l) => a + l.length + 1, 0) + Math.max(0, (at.col || 1) - 1);
        area.focus();
        area.setSelectionRange(pos, pos);
      }
    }
  };
  clear(main, h('h1', {}, name ? 'Edit ' + name : 'New spec'),
    h('p', { class: 'muted' }, 'YAML or JSON, several documents separated by ---. Dry run shows the plan or the error at its line; nothing changes until Apply.',
      session.auth ? ` Signed in as ${session.owner} (${session.role}).` : ''),
    h('div', { class: 'editor' }, gutter, area),
    h('div', { class: 'toolbar' }, h('button', { class: 'primary', id: 'dry-run', onclick: () => run(true) }, 'Dry run'),
      h('button', { id: 'apply', onclick: () => run(false) }, 'Apply…')),
    out);
  numbers();
}

// Where an apply error points: "editor.yaml:L:C: …", else the spec path it
// names ("spec.steps[0].filter: … column N") found in the text.
export function locate(text, msg) {
  let m = msg.match(/editor\.yaml:(\d+):(\d+)/);
  if (m) return { line: +m[1], col: +m[2] };
  m = msg.match(/(?:^|: )((?:metadata|spec)(?:\.[\w-]+|\[\d+\])*)(?::|$)/);
  if (!m) return null;
  const line = findPath(text.split('\n'), m[1]);
  if (!line) return null;
  const c = msg.match(/expression '(.*)': column (\d+)/);
  const row = text.split('\n')[line - 1];
  const col = c && row.indexOf(c[1]) >= 0 ? row.indexOf(c[1]) + +c[2] : row.search(/\S/) + 1;
  return { line, col };
}

// The line (1-based) of a path like spec.steps[0].filter in block YAML.
function findPath(lines, path) {
  const parts = path.match(/[\w-]+|\[\d+\]/g) || [];
  let from = 0, indent = -1, line = 0;
  for (const part of parts) {
    let found = -1;
    if (part.startsWith('[')) {
      let k = +part.slice(1, -1);
      for (let i = from; i < lines.length; i++) {
        const ind = lines[i].search(/\S/);
        if (ind >= 0 && ind <= indent && !/^\s*-/.test(lines[i]) && i > from) break;
        if (/^\s*- /.test(lines[i]) && ind > indent - 1) { if (k-- === 0) { found = i; break; } }
      }
      if (found < 0) return line || null;
      from = found; indent = lines[found].search(/\S/); line = found + 1;
      lines = lines.slice(); lines[found] = lines[found].replace('-', ' ');
      continue;
    }
    const re = new RegExp(`^\\s*(- )?${part.replace(/[-]/g, '\\-')}\\s*:`);
    for (let i = from; i < lines.length; i++) {
      if (re.test(lines[i]) && lines[i].search(/\S/) >= indent) { found = i; break; }
      if (new RegExp(`[{,]\\s*${part}\\s*:`).test(lines[i])) { found = i; break; }
    }
    if (found < 0) return line || null;
    from = found; indent = lines[found].search(/\S/) + 1; line = found + 1;
  }
  return line || null;
}

function excerpt(text, at) {
  const lines = text.split('\n');
  const out = [];
  for (let i = Math.max(1, at.line - 2); i <= Math.min(lines.length, at.line + 1); i++) {
    out.push(`${String(i).padStart(4)} | ${lines[i - 1]}\n`);
    if (i === at.line && at.col) out.push(`     | ${' '.repeat(Math.max(0, at.col - 1))}^\n`);
  }
  return out.join('');
}
