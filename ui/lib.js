// ui/lib.js — what every page of the UI uses: building DOM safely (text is
// always text, never parsed as HTML), the API client with the session's CSRF
// header, navigation with history, and formatting.

export const session = { auth: false, owner: '-', role: 'admin', csrf: null, token: '-' };

// h('a', {href: '/x', class: 'c', onclick: fn}, 'text', child, [more]) → an element.
export function h(tag, attrs, ...children) {
  const e = document.createElement(tag);
  setAttrs(e, attrs);
  append(e, children);
  return e;
}

const SVGNS = 'http://www.w3.org/2000/svg';
export function s(tag, attrs, ...children) {
  const e = document.createElementNS(SVGNS, tag);
  setAttrs(e, attrs);
  append(e, children);
  return e;
}

function setAttrs(e, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') e.addEventListener(k.slice(2), v);
    else if (k === 'value') e.value = v;
    else e.setAttribute(k, v === true ? '' : String(v));
  }
}

export function append(e, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

export function clear(e, ...children) {
  e.replaceChildren();
  return append(e, children);
}

// A link that navigates inside the app (history, no reload).
export function link(href, ...children) {
  return h('a', { href, 'data-nav': true }, ...children);
}

export function sourceLink(name) { return link('/sources/' + encodeURIComponent(name), name); }
export function pipelineLink(name) { return link('/pipelines/' + encodeURIComponent(name), name); }
export function lineageLink(node, text, dir) {
  const q = new URLSearchParams({ node });
  if (dir) q.set('direction', dir);
  return h('a', { href: '/lineage?' + q, 'data-nav': true, class: 'lineage-link', title: 'lineage of ' + node }, text || 'lineage');
}

export class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

// Calls the API; JSON in and out. Throws ApiError with the server's message.
// Requests of the page shown; leaving it aborts those still in flight.
let pageCtrl = new AbortController();

export async function api(path, { method = 'GET', body, headers = {}, raw = false, signal = pageCtrl.signal } = {}) {
  const hdrs = { Accept: 'application/json', ...headers };
  if (method !== 'GET' && method !== 'HEAD' && session.csrf) hdrs['X-CSRF-Token'] = session.csrf;
  if (body !== undefined && typeof body !== 'string') { body = JSON.stringify(body); hdrs['Content-Type'] = 'application/json'; }
  const res = await fetch(path, { method, body, headers: hdrs, credentials: 'same-origin', signal });
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = raw ? text : null; }
  if (!res.ok) {
    const msg = (data && data.message) || `${method} ${path}: HTTP ${res.status}`;
    if (res.status === 401 && session.auth !== null && location.pathname !== '/signin' && !path.endsWith('/session')) {
      go('/signin?next=' + encodeURIComponent(location.pathname + location.search), true);
    }
    throw new ApiError(res.status, msg);
  }
  return raw ? text : data;
}

// ---- navigation ---------------------------------------------------------------

let router = null;
export function setRouter(fn) { router = fn; }

// Goes to url inside the app (a new history entry unless replace).
export function go(url, replace = false) {
  if (replace) history.replaceState(null, '', url); else history.pushState(null, '', url);
  if (router) router();
}

// Changes the query string of the current page without a new render.
export function setQuery(params, push = false) {
  const q = new URLSearchParams(location.search);
  for (const [k, v] of Object.entries(params)) {
    if (v === null || v === undefined || v === '') q.delete(k); else q.set(k, v);
  }
  const url = location.pathname + (q.toString() ? '?' + q : '');
  if (url === location.pathname + location.search) return;
  if (push) history.pushState(null, '', url); else history.replaceState(null, '', url);
}

// Cleanups of the current page (timers, live tails), run when it is left.
let cleanups = [];
export function onLeave(fn) { cleanups.push(fn); }
export function leave() {
  pageCtrl.abort();
  pageCtrl = new AbortController();
  const c = cleanups; cleanups = [];
  for (const f of c) { try { f(); } catch (e) { console.warn(e); } }
}

// Runs fn every ms while the page is shown (and once now).
export function every(ms, fn) {
  let stop = false, timer = null;
  const tick = async () => {
    if (stop) return;
    try { await fn(); } catch (e) { if (!(e instanceof ApiError) && e.name !== 'AbortError') console.warn(e); }
    if (!stop) timer = setTimeout(tick, ms);
  };
  tick();
  onLeave(() => { stop = true; clearTimeout(timer); });
}

// ---- formatting -----------------------------------------------------------------

export function fmtNum(n, digits = 0) {
  if (n === null || n === undefined || Number.isNaN(n)) return '–';
  return Number(n).toLocaleString('en-US', { maximumFractionDigits: digits });
}

export function fmtTime(ms) {
  if (!ms) return '–';
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

export function fmtBytes(n) {
  if (n === null || n === undefined) return '–';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${u[i]}`;
}

export function errorBox(e) {
  return h('div', { class: 'error', role: 'alert' }, e instanceof Error ? e.message : String(e));
}

export function badge(state) {
  return h('span', { class: 'badge st-' + String(state || 'unknown').replace(/[^a-z-]/g, '') }, state || 'unknown');
}

export function table(headers, rows, opts = {}) {
  return h('table', { class: 'grid ' + (opts.class || '') },
    h('thead', {}, h('tr', {}, headers.map(t => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, rows.length ? rows.map(r => h('tr', {}, r.map(c => h('td', {}, c))))
      : h('tr', {}, h('td', { colspan: headers.length, class: 'muted' }, opts.empty || 'nothing here'))));
}

// Tabs whose choice lives in the URL (?tab=…), so a tab can be shared.
export function tabs(names, current, onPick) {
  return h('div', { class: 'tabs', role: 'tablist' }, names.map(([id, label]) =>
    h('button', { role: 'tab', 'aria-selected': id === current ? 'true' : 'false', class: id === current ? 'on' : '',
      onclick: () => onPick(id) }, label)));
}

export function yamlOf(v, indent = '') {
  // A small YAML writer for showing specs (block style; strings quoted when needed).
  const scalar = x => {
    if (x === null) return 'null';
    if (typeof x === 'string') return /^[\w./@-][\w ./@:-]*$/.test(x) && !/^(true|false|null|yes|no|~|-?\d[\d.e+-]*)$/i.test(x) && !x.endsWith(' ') && !x.includes(': ') ? x : JSON.stringify(x);
    return String(x);
  };
  if (Array.isArray(v)) {
    if (!v.length) return '[]';
    return v.map(x => {
      if (x && typeof x === 'object' && !Array.isArray(x) && Object.keys(x).length) {
        const body = yamlOf(x, indent + '  ');
        return indent + '- ' + body.slice(indent.length + 2);
      }
      return indent + '- ' + (x && typeof x === 'object' ? yamlOf(x, indent + '  ').trimStart() : scalar(x));
    }).join('\n');
  }
  if (v && typeof v === 'object') {
    const keys = Object.keys(v);
    if (!keys.length) return '{}';
    return keys.map(k => {
      const x = v[k];
      const key = indent + (/^[\w.-]+$/.test(k) ? k : JSON.stringify(k)) + ':';
      if (x && typeof x === 'object' && (Array.isArray(x) ? x.length : Object.keys(x).length))
        return key + '\n' + yamlOf(x, indent + '  ');
      return key + ' ' + (x && typeof x === 'object' ? (Array.isArray(x) ? '[]' : '{}') : scalar(x));
    }).join('\n');
  }
  return indent + scalar(v);
}
