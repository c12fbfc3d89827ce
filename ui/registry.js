// ui/registry.js — the schema registry (the Confluent-compatible API at the
// root): subjects, their versions and schemas, compatibility levels.
import { api, clear, h, link, table, errorBox } from './lib.js';
import { fieldsOf } from './schema.js';

export async function registryPage(main, params, query, current) {
  const [subjects, global] = await Promise.all([api('/subjects'), api('/config')]);
  if (!current()) return;
  const chosen = query.get('subject') || '';
  const detail = h('div', { class: 'registry-detail' });
  const list = h('ul', { class: 'subjects', id: 'subjects' }, subjects.map(s =>
    h('li', {}, link('/registry?subject=' + encodeURIComponent(s), s))));
  clear(main, h('h1', {}, 'Schema registry'),
    h('p', { class: 'muted' }, `${subjects.length} subjects · global compatibility `, h('strong', {}, global.compatibilityLevel || '–'),
      ' · Confluent clients use this controller\'s URL as schema.registry.url'),
    h('div', { class: 'split' }, list, detail));
  if (!chosen) { clear(detail, h('p', { class: 'muted' }, 'Pick a subject.')); return; }
  try {
    const enc = encodeURIComponent(chosen);
    const [versions, cfg] = await Promise.all([api(`/subjects/${enc}/versions`), api(`/config/${enc}`).catch(() => null)]);
    const v = parseInt(query.get('version') || '', 10) || versions[versions.length - 1];
    const one = await api(`/subjects/${enc}/versions/${v}`);
    if (!current()) return;
    const schema = JSON.parse(one.schema);
    const source = chosen.replace(/-(value|key)$/, '');
    clear(detail, h('h2', {}, chosen),
      h('dl', { class: 'facts' },
        h('dt', {}, 'Compatibility'), h('dd', {}, (cfg && cfg.compatibilityLevel) || `${global.compatibilityLevel} (global)`),
        h('dt', {}, 'Versions'), h('dd', {}, versions.map(x => [' ', x === v ? h('strong', {}, 'v' + x) :
          link(`/registry?subject=${enc}&version=${x}`, 'v' + x)])),
        h('dt', {}, 'Schema id'), h('dd', {}, String(one.id)),
        h('dt', {}, 'Source'), h('dd', {}, link('/sources/' + encodeURIComponent(source), source))),
      table(['Field', 'Type'], fieldsOf(schema).map(f => [h('code', {}, f.path), h('code', {}, f.type)]), { empty: 'not a record schema' }),
      h('details', {}, h('summary', {}, 'Schema JSON'), h('pre', { class: 'code' }, JSON.stringify(schema, null, 2))));
  } catch (e) { clear(detail, errorBox(e)); }
}
