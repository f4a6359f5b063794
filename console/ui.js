// hookgate console: DOM helpers and the admin API client.
// Owns building elements (text is always inserted with textContent, never as markup),
// the signed-in token (sessionStorage only, sent as a Bearer header, never in a URL) and
// every request to the API. Must never set an attribute or URL from data it was sent.

const TOKEN_KEY = 'hookgate.token';

export const session = { role: null, name: null, reasons: [] };

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export function isAdmin() {
  return session.role === 'admin';
}

// h('button', {class: 'primary', type: 'button'}, 'Save'): children are nodes or text.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) throw new Error('handlers are added with on()');
    if (k === 'text') el.textContent = String(v);
    else if (k === 'value') el.value = String(v);
    else if (k === 'checked') el.checked = Boolean(v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function on(el, event, handler) {
  el.addEventListener(event, handler);
  return el;
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

// A labelled input: returns {row, input}.
let fieldSeq = 0;
export function field(label, attrs, kind) {
  const id = (attrs && attrs.id) || `f${++fieldSeq}`;
  const input = h(kind || 'input', { ...attrs, id });
  const row = h('div', { class: 'field' }, h('label', { for: id, text: label }), input);
  return { row, input };
}

export function select(label, options, attrs) {
  const f = field(label, attrs, 'select');
  for (const o of options) {
    const [value, text] = Array.isArray(o) ? o : [o, o];
    f.input.append(h('option', { value, text }));
  }
  return f;
}

export function button(text, handler, attrs) {
  return on(h('button', { type: 'button', ...attrs }, text), 'click', handler);
}

// A table from rows of cells (nodes or text).
export function table(headers, rows, attrs) {
  const head = h('tr', {}, headers.map((t) => h('th', { scope: 'col', text: t })));
  const body = rows.map((cells) => h('tr', {}, cells.map((c) => h('td', {}, c))));
  return h('div', { class: 'scroll' }, h('table', attrs || {}, h('thead', {}, head), h('tbody', {}, body)));
}

const BADGES = ['ok', 'muted', 'accepted', 'duplicate', 'rejected', 'handshake'];

// A badge; its colour comes from a closed set, whatever the server sent.
export function status(text, kind) {
  return h('span', { class: `badge ${BADGES.includes(kind) ? kind : ''}`, text });
}

export function pretty(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

export function showError(where, err) {
  clear(where).append(h('p', { class: 'error', role: 'alert', text: err.message || String(err) }));
}

// Announces a short result to screen readers and the eye.
export function notify(text, keepForNextPage) {
  const n = document.getElementById('notice');
  n.textContent = text;
  n.dataset.keep = keepForNextPage ? '1' : '';
}

// A notice belongs to the page it was given on: moving on clears it, unless the action
// that gave it ends by moving to another page (creating or deleting an account).
export function expireNotice() {
  const n = document.getElementById('notice');
  if (n.dataset.keep === '1') n.dataset.keep = '';
  else n.textContent = '';
}

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem && problem.detail ? problem.detail : `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

// One request with the token; `options` may add `headers` and an abort `signal`.
export async function raw(method, path, body, options) {
  const headers = { Authorization: `Bearer ${token() || ''}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  return fetch(path, {
    method,
    headers: { ...headers, ...((options && options.headers) || {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: 'no-store',
    credentials: 'omit',
    redirect: 'error',
    signal: options && options.signal,
  });
}

export async function api(method, path, body) {
  const res = await raw(method, path, body);
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (res.status === 401) {
    window.dispatchEvent(new CustomEvent('hookgate-signed-out'));
  }
  if (!res.ok) throw new ApiError(res.status, json);
  return json;
}

// Fetches with the token and saves the answer as a file (the token stays in a header).
export async function download(path, filename) {
  const res = await raw('GET', path);
  if (!res.ok) throw new ApiError(res.status, await res.json().catch(() => null));
  const blob = await res.blob();
  const url = URL.createObjectURL(blob);
  const a = h('a', { href: url, download: filename, class: 'hidden' });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
  return blob;
}

export async function copy(text) {
  try {
    await navigator.clipboard.writeText(text);
    notify('Copied to the clipboard');
  } catch {
    notify('Copy failed: select the text and copy it by hand');
  }
}

export const REASONS_IN_WORDS = {
  unknown_account: 'No account has this name.',
  inactive_account: 'The account is switched off.',
  method_not_allowed: 'The request used a method the account does not take.',
  bad_auth: 'The authenticate key was missing or wrong.',
  bad_signature: 'The signature was missing or did not match the body.',
  stale_timestamp: 'The signed timestamp was too old or in the future.',
  malformed_payload: 'The body did not parse as its content type.',
  unsupported_media_type: 'The content type is not JSON, text or a form.',
  too_large: 'The body was over the size limit.',
  read_timeout: 'The body did not arrive in time.',
  incomplete_body: 'The body broke off before its end.',
  rate_limited: "The account's rate limit was reached.",
  headers_too_large: 'The request head was over the size limit.',
};

export function reasonInWords(reason) {
  return REASONS_IN_WORDS[reason] || reason || '';
}

export function localTime(rfc3339) {
  if (!rfc3339) return '';
  const d = new Date(rfc3339);
  return Number.isNaN(d.getTime()) ? rfc3339 : d.toLocaleString();
}
