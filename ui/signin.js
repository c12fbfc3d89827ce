// ui/signin.js — signing in with an API token (datamesh up --auth) and out.
// The token is sent once, in the Authorization header of POST /api/v1/session;
// the answer sets an HttpOnly session cookie and gives the page the session's
// CSRF token. The token itself is never stored by the page.
import { api, clear, go, h, session, errorBox } from './lib.js';

export async function signinPage(main, params, query) {
  const next = safeNext(query.get('next'));
  if (!session.auth) { clear(main, h('h1', {}, 'Sign in'), h('p', {}, 'This controller runs without --auth: there is nothing to sign in to.')); return; }
  const input = h('input', { type: 'password', id: 'token', name: 'token', autocomplete: 'off', spellcheck: 'false',
    placeholder: 'dmt_…', required: true, 'aria-describedby': 'token-help' });
  const msg = h('div', { 'aria-live': 'polite' });
  const form = h('form', { class: 'signin', onsubmit: async e => {
    e.preventDefault();
    const token = input.value.trim();
    input.value = '';
    clear(msg);
    try {
      const me = await api('/api/v1/session', { method: 'POST', headers: { Authorization: 'Bearer ' + token } });
      Object.assign(session, { owner: me.owner, role: me.role, csrf: me.csrf, token: me.token });
      go(next, true);
    } catch (err) {
      clear(msg, errorBox(err));
      input.focus();
    }
  } },
  h('h1', {}, 'Sign in'),
  h('label', { for: 'token' }, 'API token'),
  input,
  h('p', { id: 'token-help', class: 'muted' }, 'A token from `datamesh token create`, or the first admin token in DATA/admin.token. It is sent once; the browser keeps only a session cookie.'),
  h('button', { type: 'submit', class: 'primary' }, 'Sign in'),
  msg);
  clear(main, form);
  input.focus();
}

// Only a path of this site (no //host, no scheme) is a place to go back to.
function safeNext(n) {
  return n && n.startsWith('/') && !n.startsWith('//') && !n.startsWith('/\\') && !n.startsWith('/signin') ? n : '/catalog';
}

export async function signOut() {
  try { await api('/api/v1/session', { method: 'DELETE' }); } catch (e) { console.warn(e.message); }
  session.csrf = null; session.owner = '-'; session.role = 'none';
  go('/signin', false);
}
