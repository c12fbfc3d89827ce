// ui/app.js — the datamesh web UI's entry: finds out who is signed in, then
// draws the page the URL names. Every page has its own URL (shareable; back
// and forward work): the server answers index.html for each of them.
import { api, clear, go, h, leave, session, setRouter, ApiError, errorBox } from './lib.js';
import { catalogPage } from './catalog.js';
import { sourcePage } from './source.js';
import { pipelinesPage, pipelinePage } from './pipeline.js';
import { lineagePage } from './lineage.js';
import { registryPage } from './registry.js';
import { editorPage } from './editor.js';
import { signinPage, signOut } from './signin.js';
import { sqlPage } from './sql.js';

const routes = [
  [/^\/$/, 'catalog', catalogPage],
  [/^\/catalog$/, 'catalog', catalogPage],
  [/^\/sources\/([^/]+)$/, 'catalog', sourcePage],
  [/^\/pipelines$/, 'pipelines', pipelinesPage],
  [/^\/pipelines\/([^/]+)$/, 'pipelines', pipelinePage],
  [/^\/lineage$/, 'lineage', lineagePage],
  [/^\/registry$/, 'registry', registryPage],
  [/^\/editor$/, 'editor', editorPage],
  [/^\/sql$/, 'sql', sqlPage],
  [/^\/signin$/, 'signin', signinPage],
];

const main = document.getElementById('main');
let renderSeq = 0;

async function render() {
  leave();
  const seq = ++renderSeq;
  const path = location.pathname;
  const route = routes.find(([re]) => re.test(path));
  for (const a of document.querySelectorAll('nav a[data-page]'))
    a.setAttribute('aria-current', route && a.dataset.page === route[1] ? 'page' : 'false');
  drawWho();
  if (!route) { clear(main, h('h1', {}, 'Not found'), h('p', {}, 'No page at ' + path + '.')); return; }
  const params = path.match(route[0]).slice(1).map(decodeURIComponent);
  const query = new URLSearchParams(location.search);
  clear(main, h('p', { class: 'muted' }, 'Loading…'));
  try {
    await route[2](main, params, query, () => seq === renderSeq);
  } catch (e) {
    if (seq !== renderSeq) return;
    if (e instanceof ApiError && e.status === 401) return; // lib.js went to /signin
    console.warn(e);
    clear(main, h('h1', {}, 'Something went wrong'), errorBox(e));
  }
}

function drawWho() {
  const who = document.getElementById('who');
  if (!session.auth) { clear(who, h('span', { class: 'muted', title: 'datamesh up without --auth: everyone is admin' }, 'no sign-in (loopback)')); return; }
  if (!session.csrf) { clear(who, location.pathname === '/signin' ? '' : h('a', { href: '/signin', 'data-nav': true }, 'Sign in')); return; }
  clear(who, h('span', { class: 'me' }, `${session.owner} · ${session.role}`),
    h('button', { class: 'link', onclick: signOut }, 'Sign out'));
}

// Whether tokens are required and who this browser is signed in as.
async function whoAmI() {
  try {
    const me = await api('/api/v1/session');
    Object.assign(session, { auth: me.auth, owner: me.owner, role: me.role, csrf: me.csrf || null, token: me.token });
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) { session.auth = true; session.csrf = null; return; }
    throw e;
  }
}

// Links marked data-nav navigate inside the app (plain clicks only: a middle
// click or ctrl-click still opens a new tab).
document.addEventListener('click', e => {
  const a = e.target.closest && e.target.closest('a[data-nav]');
  if (!a || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey || a.target) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin) return;
  e.preventDefault();
  go(url.pathname + url.search + url.hash);
});
window.addEventListener('popstate', render);
setRouter(render);

whoAmI().then(() => {
  if (session.auth && !session.csrf && location.pathname !== '/signin')
    history.replaceState(null, '', '/signin?next=' + encodeURIComponent(location.pathname + location.search));
  if (location.pathname === '/') history.replaceState(null, '', '/catalog' + location.search);
  render();
}, e => clear(main, errorBox(e)));
