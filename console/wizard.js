// hookgate console: the account creation wizard.
// Owns picking a provider, the secret, and choosing paths by clicking the fields of a
// pasted sample payload, with the value each path extracts shown live. Must never keep
// the secret anywhere but its password field until the account is created.

import { api, append, button, clear, field, h, notify, on, select } from './ui.js';

const TARGETS = [
  ['sender', 'Sender'],
  ['source', 'Source'],
  ['event_id', 'Event id'],
  ['event_type', 'Event type'],
  ['param', 'A param'],
];

function customFields() {
  const box = h('fieldset', { class: 'custom' }, h('legend', { text: 'Custom checks' }));
  const f = {
    auth: select('Authenticate key', [['none', 'none'], ['api_key', 'API key header'], ['bearer', 'Bearer token'], ['basic', 'Basic (user and password)'], ['query', 'Token in the query']]),
    authHeader: field('Key header, user name or query parameter', { id: 'custom-auth-name', placeholder: 'X-Api-Key' }),
    authValue: field('Key, token or password', { id: 'custom-auth-value', type: 'password', autocomplete: 'off' }),
    sigHeader: field('Signature header (empty: no signature)', { id: 'custom-sig-header', placeholder: 'X-Signature' }),
    algorithm: select('Algorithm', ['hmac-sha256', 'hmac-sha1', 'hmac-sha512', 'ed25519', 'ecdsa-p256-sha256']),
    encoding: select('Signature encoding', ['hex', 'base64']),
    format: select('Header layout', [['plain', 'one signature'], ['list', 'a list (v1,sig v1,sig)'], ['kv', 'key=value pairs (t=…,v1=…)']]),
    prefix: field('Signature prefix', { placeholder: 'sha256=' }),
    sigKey: field('Signature key in the pairs (key=value layout)', { placeholder: 'v1' }),
    tsKey: field('Timestamp key in the pairs (key=value layout)', { placeholder: 't' }),
    content: field('Signed content', { value: '{body}', spellcheck: 'false' }),
    tsHeader: field('Timestamp header', { placeholder: 'optional' }),
    tolerance: field('Timestamp tolerance (seconds)', { type: 'number', min: '0', value: '300' }),
    secretEncoding: select('Secret encoding', ['text', 'base64', 'hex']),
  };
  append(box, Object.values(f).map((x) => x.row), h('p', { class: 'help', text: 'Signed content placeholders: {body}, {timestamp}, {id}, {url}, {method}, {form_params}.' }));
  return { box, f };
}

function customSpec(c, secret) {
  const spec = {};
  const auth = c.f.auth.input.value;
  const name = c.f.authHeader.input.value.trim();
  const value = c.f.authValue.input.value;
  if (auth === 'api_key') spec.auth = { type: 'api_key', header: name, value };
  else if (auth === 'bearer') spec.auth = { type: 'bearer', token: value };
  else if (auth === 'basic') spec.auth = { type: 'basic', username: name, password: value };
  else if (auth === 'query') spec.auth = { type: 'query', param: name, value };
  if (c.f.sigHeader.input.value.trim()) {
    spec.signature = {
      header: c.f.sigHeader.input.value.trim(),
      algorithm: c.f.algorithm.input.value,
      encoding: c.f.encoding.input.value,
      format: c.f.format.input.value,
      signed_content: c.f.content.input.value || '{body}',
      tolerance_secs: Number(c.f.tolerance.input.value || 300),
      secret_encoding: c.f.secretEncoding.input.value,
      secrets: secret ? [secret] : [],
    };
    if (c.f.prefix.input.value) spec.signature.prefix = c.f.prefix.input.value;
    if (c.f.tsHeader.input.value) spec.signature.timestamp_header = c.f.tsHeader.input.value;
    if (c.f.format.input.value === 'kv') {
      if (c.f.sigKey.input.value) spec.signature.signature_key = c.f.sigKey.input.value;
      if (c.f.tsKey.input.value) spec.signature.timestamp_key = c.f.tsKey.input.value;
    }
  }
  return spec;
}

export async function newAccountView() {
  const { providers } = await api('GET', '/v1/providers');
  const node = h('section', { class: 'card wizard' }, h('h1', { text: 'New account' }));

  // Step 1: provider and secret.
  const name = field('Account name', { id: 'account-name', required: true, pattern: '[a-z0-9_]{1,64}', placeholder: 'shop_payments', autocomplete: 'off' });
  const provider = select('Provider', providers.map((p) => [p.name, p.title || p.name]), { id: 'provider' });
  const help = h('p', { class: 'help', id: 'provider-help' });
  const secret = field('Secret', { id: 'secret', type: 'password', autocomplete: 'off' });
  const settingsBox = h('div', { class: 'settings' });
  const custom = customFields();
  const describe = () => {
    const p = providers.find((x) => x.name === provider.input.value);
    clear(help);
    clear(settingsBox);
    custom.box.hidden = p.name !== 'custom';
    if (p.name === 'custom') {
      help.append('Give the checks yourself: an authenticate key, a signature, or both.');
      return;
    }
    help.append(h('strong', { text: 'Paste: ' }), p.needs || '');
    if (p.docs) help.append(h('br'), 'Where the provider shows it: ', h('code', { text: p.docs }));
    if (p.checks) help.append(h('br'), 'Checked: ', Array.isArray(p.checks) ? p.checks.join('; ') : String(p.checks));
    for (const s of (p.settings || []).filter((s) => s.field !== 'secret')) {
      const f = field(`${s.field}${s.required ? ' (required)' : ''}`, { 'data-setting': s.field, type: 'password', autocomplete: 'off' });
      settingsBox.append(f.row, h('p', { class: 'help', text: s.help || '' }));
    }
  };
  on(provider.input, 'change', describe);
  const step1 = h('fieldset', {}, h('legend', { text: '1. Provider and secret' }), name.row, provider.row, help, secret.row, settingsBox, custom.box);

  // Step 2: paths from a sample payload.
  const sample = field('Sample payload', { id: 'sample', rows: 8, spellcheck: 'false', placeholder: '{"id": "...", "type": "...", ...}' }, 'textarea');
  const fieldsList = h('ul', { class: 'fields', id: 'sample-fields', 'aria-label': 'Fields of the sample' });
  const target = h('div', { class: 'targets', role: 'radiogroup', 'aria-label': 'Clicking a field sets' });
  for (const [value, label] of TARGETS) {
    const id = `target-${value}`;
    target.append(h('input', { type: 'radio', name: 'target', id, value, checked: value === 'sender' }), h('label', { for: id, text: label }));
  }
  const paths = {};
  const pathRows = h('div', { class: 'paths' });
  const params = {};
  const paramRows = h('div', { class: 'paths' });
  let sampleValue = null;
  let timer = null;
  const refresh = () => {
    clearTimeout(timer);
    timer = setTimeout(showExtracted, 150);
  };
  for (const [key, label] of TARGETS.slice(0, 4)) {
    const f = field(`${label} path`, { 'data-path': key, spellcheck: 'false', autocomplete: 'off' });
    const shown = h('output', { 'data-extracted': key, for: f.input.id });
    on(f.input, 'input', refresh);
    paths[key] = { input: f.input, shown };
    pathRows.append(h('div', { class: 'path' }, f.row, shown));
  }
  const addParam = (pname, path) => {
    if (params[pname]) {
      params[pname].input.value = path;
      return;
    }
    const f = field(`Param ${pname}`, { 'data-param': pname, value: path, spellcheck: 'false' });
    const shown = h('output', { 'data-extracted': `params.${pname}`, for: f.input.id });
    on(f.input, 'input', refresh);
    const row = h('div', { class: 'path' }, f.row, shown);
    params[pname] = { input: f.input, shown, row };
    row.append(button('Remove', () => {
      row.remove();
      delete params[pname];
    }, { 'aria-label': `Remove param ${pname}` }));
    paramRows.append(row);
  };
  async function showExtracted() {
    if (sampleValue === null) return;
    const all = {};
    for (const [k, p] of Object.entries(paths)) if (p.input.value.trim()) all[k] = p.input.value.trim();
    for (const [k, p] of Object.entries(params)) if (p.input.value.trim()) all[`params.${k}`] = p.input.value.trim();
    try {
      const out = await api('POST', '/v1/paths/suggest', { sample: sampleValue, paths: all });
      const show = (p, key) => {
        const x = out.extracted[key];
        p.shown.textContent = !x ? '' : x.error ? `error: ${x.error}` : `= ${JSON.stringify(x.value)}`;
        p.shown.className = x && x.error ? 'error' : '';
      };
      for (const [k, p] of Object.entries(paths)) show(p, k);
      for (const [k, p] of Object.entries(params)) show(p, `params.${k}`);
    } catch (err) {
      notify(err.message);
    }
  }
  const pick = (path) => {
    const t = target.querySelector('input:checked').value;
    if (t === 'param') {
      const last = path.split(/[.[\]']+/).filter(Boolean).pop() || 'param';
      addParam(last.replace(/[^a-z0-9_]/gi, '_').toLowerCase(), path);
    } else {
      paths[t].input.value = path;
    }
    notify(`${t} set to ${path}`);
    refresh();
  };
  const readSample = async () => {
    clear(fieldsList);
    let body;
    try {
      body = JSON.parse(sample.input.value);
    } catch {
      body = sample.input.value;
    }
    try {
      const out = await api('POST', '/v1/paths/suggest', { sample: body });
      sampleValue = body;
      for (const c of out.candidates) {
        const b = button([h('code', { text: c.path }), ' ', h('span', { class: 'value', text: JSON.stringify(c.value) })], () => pick(c.path), { 'data-pick': c.path });
        fieldsList.append(h('li', {}, b));
      }
      for (const [k, p] of Object.entries(out.guesses || {})) if (paths[k] && !paths[k].input.value) paths[k].input.value = p;
      refresh();
    } catch (err) {
      fieldsList.append(h('li', { class: 'error', role: 'alert', text: err.message }));
    }
  };
  const step2 = h('fieldset', {}, h('legend', { text: '2. Paths from a sample payload' }), sample.row,
    button('Read the fields', readSample, { id: 'read-sample' }),
    h('p', { class: 'help', text: 'Choose what a click sets, then click a field of the sample.' }),
    target, fieldsList, pathRows, paramRows);

  // Step 3: create.
  const result = h('div', { id: 'create-result' });
  const create = async () => {
    clear(result);
    const p = provider.input.value;
    let spec = { name: name.input.value.trim(), provider: p };
    if (p === 'custom') Object.assign(spec, customSpec(custom, secret.input.value));
    else if (secret.input.value) spec.secret = secret.input.value;
    for (const input of settingsBox.querySelectorAll('[data-setting]')) {
      if (!input.value) continue;
      const [top, sub] = input.dataset.setting.split('.');
      if (sub) spec[top] = { ...(spec[top] || {}), [sub]: input.value };
      else spec[top] = input.value;
    }
    const chosen = {};
    for (const [k, x] of Object.entries(paths)) if (x.input.value.trim()) chosen[k] = x.input.value.trim();
    const ps = {};
    for (const [k, x] of Object.entries(params)) if (x.input.value.trim()) ps[k] = x.input.value.trim();
    if (Object.keys(ps).length) chosen.params = ps;
    if (Object.keys(chosen).length) spec.paths = chosen;
    try {
      const made = await api('POST', '/v1/accounts', spec);
      secret.input.value = '';
      notify(`Account ${made.name} created`, true);
      location.hash = `#/accounts/${made.name}`;
    } catch (err) {
      const where = err.problem && err.problem.field ? ` (${err.problem.field})` : '';
      result.append(h('p', { class: 'error', role: 'alert', text: `${err.message}${where}` }));
    }
  };
  node.append(step1, step2, h('div', { class: 'actions' }, button('Create account', create, { class: 'primary', id: 'create-account' })), result);
  describe();
  return node;
}
