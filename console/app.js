// hookgate console: sign-in, navigation and the router.
// Owns the page's life cycle: signing in with a token (checked against /v1/whoami),
// showing only the sections the role may use, and drawing the view the address's hash
// names. Must never put the token in a URL, a cookie or local storage.

import { api, clear, expireNotice, h, isAdmin, on, session, setToken, showError, token } from './ui.js';
import { accountsView, accountView, newAccountView } from './accounts.js';
import { eventsView, eventView, tailView } from './events.js';
import { auditView } from './audit.js';
import { opsView } from './ops.js';

const view = () => document.getElementById('view');
let signinSection = null;
let stopView = null;
let renders = 0;

async function signIn(value) {
  setToken(value);
  const me = await api('GET', '/v1/whoami');
  session.role = me.role;
  session.name = me.name;
  session.reasons = me.reasons || [];
  document.body.dataset.role = me.role;
  document.getElementById('who').textContent = `${me.name} (${me.role})`;
  document.getElementById('nav').hidden = false;
  document.getElementById('signout').hidden = false;
  for (const a of document.querySelectorAll('#nav [data-admin]')) a.hidden = !isAdmin();
}

function signOut() {
  setToken(null);
  session.role = null;
  session.name = null;
  delete document.body.dataset.role;
  document.getElementById('who').textContent = '';
  document.getElementById('nav').hidden = true;
  document.getElementById('signout').hidden = true;
  if (stopView) stopView();
  stopView = null;
  clear(view()).append(signinSection);
  if (location.hash) history.replaceState(null, '', location.pathname);
  document.getElementById('token').value = '';
  document.getElementById('token').focus();
}

const routes = [
  [/^#\/accounts\/new$/, () => newAccountView()],
  [/^#\/accounts\/([a-z0-9_]{1,64})$/, (m) => accountView(m[1])],
  [/^#\/accounts$/, () => accountsView()],
  [/^#\/events\/(evt_[0-9]+)$/, (m) => eventView(m[1])],
  [/^#\/events(\?.*)?$/, (m) => eventsView(new URLSearchParams((m[1] || '').slice(1)))],
  [/^#\/tail$/, () => tailView()],
  [/^#\/audit$/, () => auditView()],
  [/^#\/ops$/, () => opsView()],
];

async function render() {
  if (!session.role) return;
  expireNotice();
  if (stopView) stopView();
  stopView = null;
  const hash = location.hash || (isAdmin() ? '#/accounts' : '#/events');
  for (const a of document.querySelectorAll('#nav a')) {
    const current = hash.startsWith(a.getAttribute('href'));
    if (current) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const main = clear(view());
  const route = routes.find(([re]) => re.test(hash));
  if (!route) {
    main.append(h('p', { class: 'error', text: 'There is no such page.' }));
    return;
  }
  const mine = ++renders;
  try {
    const drawn = await route[1](hash.match(route[0]));
    // A later navigation started while this page loaded: it draws instead.
    if (mine !== renders) {
      if (drawn && drawn.stop) drawn.stop();
      return;
    }
    if (drawn && drawn.node) {
      main.append(drawn.node);
      stopView = drawn.stop || null;
    } else if (drawn) {
      main.append(drawn);
    }
  } catch (err) {
    if (mine !== renders) return;
    showError(main, err);
  }
  document.body.dataset.view = hash.split(/[/?]/)[1] || '';
}

function start() {
  signinSection = document.getElementById('signin');
  on(document.getElementById('signin-form'), 'submit', async (e) => {
    e.preventDefault();
    const out = document.getElementById('signin-error');
    out.textContent = '';
    try {
      await signIn(document.getElementById('token').value.trim());
      document.getElementById('token').value = '';
      await render();
      view().focus();
    } catch (err) {
      setToken(null);
      out.textContent = err.status === 401 ? 'That token is not valid.' : err.message;
    }
  });
  on(document.getElementById('signout'), 'click', signOut);
  window.addEventListener('hookgate-signed-out', () => {
    if (session.role) signOut();
  });
  window.addEventListener('hashchange', async () => {
    await render();
    // Keyboard and screen-reader users start reading the new page at its top.
    if (!view().contains(document.activeElement)) view().focus({ preventScroll: true });
  });
  if (token()) {
    signIn(token()).then(render, () => signOut());
  } else {
    document.getElementById('token').focus();
  }
}

start();
