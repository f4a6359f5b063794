// hookgate console: the accounts list and one account's page.
// Owns the list with its counts, and on an account's page: the webhook URL with copy,
// Try Out, activate/deactivate, the listener switch, the status-message template with a
// live preview, secret rotation, the destinations (add, remove, the circuit breaker's
// state), editing the paths and deleting with confirmation.
// Admin only: the server refuses an auditor regardless. Must never show a secret, but for
// a new destination's signing secret, which the server answers once and which is shown
// once, until the page changes.

import { api, button, clear, copy, field, h, localTime, notify, on, reasonInWords, status, table } from './ui.js';

export { newAccountView } from './wizard.js';

function count(n) {
  return `${n || 0}`;
}

export async function accountsView() {
  const [{ accounts }, counts] = await Promise.all([
    api('GET', '/v1/accounts'),
    api('GET', '/v1/stats/accounts?hours=24'),
  ]);
  const rows = accounts.map((a) => {
    const c = counts.accounts[a.name] || {};
    return [
      h('a', { href: `#/accounts/${a.name}`, text: a.name }),
      a.provider,
      status(a.active ? 'active' : 'off', a.active ? 'ok' : 'muted'),
      status(a.listening ? 'listening' : 'not listening', a.listening ? 'ok' : 'muted'),
      localTime(c.last_event_at) || 'never',
      h('span', { class: 'num', text: count(c.accepted) }),
      h('span', { class: 'num', text: count(c.rejected) }),
    ];
  });
  return h('section', { class: 'card' },
    h('div', { class: 'row' }, h('h1', { text: 'Accounts' }), h('a', { class: 'buttonlike primary', href: '#/accounts/new', text: 'New account' })),
    rows.length
      ? table(['Name', 'Provider', 'Active', 'Listener', 'Last event', 'Accepted 24 h', 'Rejected 24 h'], rows, { id: 'accounts-table' })
      : h('p', { text: 'No accounts yet.' }));
}

function section(title, ...children) {
  return h('section', { class: 'card', 'aria-label': title }, h('h2', { text: title }), ...children);
}

async function tryOutSection(a) {
  const body = field('Test body (JSON)', { rows: 4, spellcheck: 'false', value: JSON.stringify({ id: `try_${Date.now()}`, type: 'console.try_out' }) }, 'textarea');
  const out = h('div', { id: 'try-result', 'aria-live': 'polite' });
  const run = async () => {
    clear(out);
    let payload;
    try {
      payload = JSON.parse(body.input.value);
    } catch {
      payload = body.input.value;
    }
    try {
      const r = await api('POST', `/v1/accounts/${a.name}/try`, { body: payload });
      out.append(h('p', {}, 'HTTP ', h('strong', { text: String(r.status) }), ' ', h('code', { text: JSON.stringify(r.answer) })));
      if (r.id) {
        const ev = await api('GET', `/v1/events/${r.id}`);
        out.append(h('p', {}, 'Audit row ', h('a', { href: `#/events/${ev.id}`, text: ev.id }), ': ', status(ev.status, ev.status),
          ev.reason ? ` ${reasonInWords(ev.reason)}` : '', ev.sender ? ` sender ${ev.sender}` : ''));
      }
    } catch (err) {
      out.append(h('p', { class: 'error', role: 'alert', text: err.message }));
    }
  };
  return section('Try it out', h('p', { class: 'help', text: 'Sends a request signed with this account\'s own key to its webhook URL, as the provider would.' }),
    body.row, button('Send a signed test request', run, { id: 'try-out' }), out);
}

function listenerSection(a, reload) {
  const fwd = a.forward || {};
  const listening = h('input', { type: 'checkbox', id: 'listening', checked: a.listening });
  const types = field('Only these event types (comma-separated; empty for all)', { value: (fwd.event_types || []).join(', '), id: 'listen-types' });
  const save = async () => {
    const event_types = types.input.value.split(',').map((s) => s.trim()).filter(Boolean);
    try {
      await api('POST', `/v1/accounts/${a.name}/listening`, { listening: listening.checked, event_types });
      notify(listening.checked ? 'Listener on' : 'Listener off');
      reload();
    } catch (err) {
      notify(err.message);
    }
  };
  on(listening, 'change', save);
  return section('Listener', h('div', { class: 'switch' }, listening, h('label', { for: 'listening', text: 'Listening: accepted events flow to the stream and the chat' })),
    types.row, button('Save event types', save));
}

async function templateSection(a, reload) {
  const fwd = a.forward || {};
  const tpl = field('Status message template', { value: fwd.template || '', rows: 2, id: 'template' }, 'textarea');
  const send = h('input', { type: 'checkbox', id: 'send-to-user', checked: fwd.send_to_user });
  const preview = h('output', { id: 'template-preview', for: tpl.input.id });
  let example = { sender: '+255700000001', source: 'src_1', event_type: 'payment.succeeded', event_id: 'ev_1', account: a.name, params: {} };
  // The latest accepted event, when there is one, fills the preview.
  try {
    const { events } = await api('GET', `/v1/events?account=${a.name}&status=accepted&limit=1`);
    if (events[0]) example = { ...events[0], account: a.name, params: events[0].params || {} };
  } catch {
    // The preview keeps its made-up example.
  }
  // The gateway renders the preview, so it is exactly the message a listener would send.
  let timer = null;
  let asked = 0;
  const draw = () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const mine = ++asked;
      try {
        const out = await api('POST', '/v1/templates/preview', { template: tpl.input.value, event: example });
        if (mine === asked) {
          preview.textContent = out.text;
          preview.className = '';
        }
      } catch (err) {
        if (mine === asked) {
          preview.textContent = err.message;
          preview.className = 'error';
        }
      }
    }, 120);
  };
  on(tpl.input, 'input', draw);
  draw();
  const save = async () => {
    try {
      await api('PATCH', `/v1/accounts/${a.name}`, { forward: { template: tpl.input.value || null, send_to_user: send.checked } });
      notify('Template saved');
      reload();
    } catch (err) {
      notify(err.message);
    }
  };
  // Templates by event type and the channel are set through the API; the console names them.
  const types = Object.keys(fwd.templates || {});
  const more = [];
  if (types.length) more.push(h('p', { id: 'templates-by-type' }, `Own templates (API: forward.templates) for: ${types.join(', ')}; other event types get the template above.`));
  if (fwd.channel) more.push(h('p', { id: 'forward-channel' }, `Sent through the ${fwd.channel} channel (forward.channel).`));
  return section('Status message', tpl.row, h('p', {}, 'Preview: ', preview), ...more,
    h('div', { class: 'switch' }, send, h('label', { for: 'send-to-user', text: "Send it to the sender's chat" })),
    button('Save template', save, { id: 'save-template' }));
}

function secretsSection(a, reload) {
  const secrets = (a.signature && a.signature.secrets) || [];
  const rows = secrets.map((s, i) => [String(i), h('code', { text: String(s) }),
    button('Retire', async () => {
      try {
        await api('DELETE', `/v1/accounts/${a.name}/secrets/${i}`);
        notify('Secret retired');
        reload();
      } catch (err) {
        notify(err.message);
      }
    }, { 'aria-label': `Retire secret ${i}`, disabled: secrets.length < 2 })]);
  const add = field('New secret', { type: 'password', autocomplete: 'off', id: 'new-secret' });
  const addIt = async () => {
    try {
      await api('POST', `/v1/accounts/${a.name}/secrets`, { secret: add.input.value });
      add.input.value = '';
      notify('Secret added');
      reload();
    } catch (err) {
      notify(err.message);
    }
  };
  return section('Secrets (rotation)', rows.length ? table(['#', 'Secret', ''], rows) : h('p', { text: 'This account has no signing secret.' }),
    add.row, button('Add secret', addIt, { id: 'add-secret' }));
}

async function destinationsSection(a, reload) {
  let list;
  try {
    list = (await api('GET', `/v1/accounts/${a.name}/destinations`)).destinations || [];
  } catch (err) {
    return section('Destinations', h('p', { text: err.message }));
  }
  const rows = list.map((d) => [d.name, h('code', { text: String(d.url) }),
    status(d.enabled ? 'on' : 'off', d.enabled ? 'ok' : 'muted'),
    status(`breaker ${d.breaker && d.breaker.state}`, d.breaker && d.breaker.state === 'closed' ? 'ok' : 'rejected'),
    button('Remove', async () => {
      try {
        await api('DELETE', `/v1/accounts/${a.name}/destinations/${d.name}`);
        notify(`Destination ${d.name} removed`);
        reload();
      } catch (err) {
        notify(err.message);
      }
    }, { 'aria-label': `Remove destination ${d.name}` })]);
  const name = field('Destination name', { id: 'dest-name', autocomplete: 'off', spellcheck: 'false' });
  const url = field('Destination URL', { id: 'dest-url', autocomplete: 'off', spellcheck: 'false', placeholder: 'https://' });
  const add = async () => {
    try {
      const d = await api('POST', `/v1/accounts/${a.name}/destinations`, { name: name.input.value.trim(), url: url.input.value.trim() });
      await reload();
      const place = document.getElementById('dest-secret');
      if (place) {
        const shown = h('input', { readonly: true, value: d.secret, id: 'dest-secret-value', 'aria-label': 'Signing secret' });
        clear(place).append(h('p', { text: `Signing secret of ${d.name}: shown this once, give it to the receiver now.` }),
          h('div', { class: 'row' }, shown, button('Copy', () => copy(d.secret), { id: 'copy-dest-secret' })));
      }
      notify(`Destination ${d.name} added`);
    } catch (err) {
      notify(err.message);
    }
  };
  return section('Destinations',
    rows.length ? table(['Name', 'URL', '', '', ''], rows, { id: 'destinations' }) : h('p', { text: 'Events go to no endpoint of the account\'s own yet.' }),
    h('div', { id: 'dest-secret' }),
    name.row, url.row, button('Add destination', add, { id: 'add-destination' }));
}

function editSection(a, reload) {
  const p = a.paths || {};
  const fields = ['sender', 'source', 'event_id', 'event_type'].map((k) => [k, field(`${k} path`, { value: p[k] || '', 'data-edit': k, spellcheck: 'false' })]);
  const params = field('params (JSON object of name to path)', { value: JSON.stringify(p.params || {}), spellcheck: 'false' });
  const save = async () => {
    try {
      const paths = {};
      for (const [k, f] of fields) paths[k] = f.input.value.trim() || null;
      paths.params = JSON.parse(params.input.value || '{}');
      for (const k of Object.keys(p.params || {})) if (!(k in paths.params)) paths.params[k] = null;
      await api('PATCH', `/v1/accounts/${a.name}`, { paths });
      notify('Paths saved');
      reload();
    } catch (err) {
      notify(err.message);
    }
  };
  return section('Edit paths', ...fields.map(([, f]) => f.row), params.row, button('Save paths', save, { id: 'save-paths' }));
}

function deleteSection(a) {
  const confirmName = field(`Type ${a.name} to confirm`, { autocomplete: 'off', id: 'confirm-delete' });
  const dialog = h('dialog', { id: 'delete-dialog', 'aria-label': 'Delete account' },
    h('p', { text: `Delete ${a.name}? Its URL stops working; its audit rows stay.` }), confirmName.row);
  const yes = button('Delete', async () => {
    if (confirmName.input.value !== a.name) {
      notify('The name does not match');
      return;
    }
    try {
      await api('DELETE', `/v1/accounts/${a.name}`);
      dialog.close();
      notify(`Account ${a.name} deleted`, true);
      location.hash = '#/accounts';
    } catch (err) {
      notify(err.message);
    }
  }, { class: 'danger', id: 'confirm-delete-button' });
  dialog.append(h('div', { class: 'actions' }, yes, button('Cancel', () => dialog.close())));
  return section('Delete', button('Delete account…', () => dialog.showModal(), { class: 'danger', id: 'delete-account' }), dialog);
}

export async function accountView(name) {
  const node = h('div', { class: 'account' });
  const reload = async () => {
    const a = await api('GET', `/v1/accounts/${name}`);
    const url = h('input', { readonly: true, value: a.webhook_url, id: 'webhook-url', 'aria-label': 'Webhook URL' });
    const toggle = button(a.active ? 'Deactivate' : 'Activate', async () => {
      try {
        await api('POST', `/v1/accounts/${name}/${a.active ? 'deactivate' : 'activate'}`);
        notify(a.active ? 'Deactivated' : 'Activated');
        reload();
      } catch (err) {
        notify(err.message);
      }
    }, { id: 'toggle-active' });
    clear(node).append(
      h('section', { class: 'card' },
        h('h1', {}, a.name, ' ', status(a.active ? 'active' : 'off', a.active ? 'ok' : 'muted'), ' ', status(a.listening ? 'listening' : 'not listening', a.listening ? 'ok' : 'muted')),
        h('p', { text: `Provider: ${a.provider}` }),
        h('div', { class: 'row' }, url, button('Copy', () => copy(a.webhook_url), { id: 'copy-url' })),
        h('div', { class: 'actions' }, toggle, h('a', { class: 'buttonlike', href: `#/events?account=${name}`, text: 'Its events' }))),
      await tryOutSection(a),
      listenerSection(a, reload),
      await templateSection(a, reload),
      secretsSection(a, reload),
      await destinationsSection(a, reload),
      editSection(a, reload),
      deleteSection(a));
  };
  await reload();
  return node;
}
