// hookgate console: event search with paging and export, one event's page, and the live
// tail of the stream.
// Owns turning the search form into the API's filters (kept in the address's hash, never
// the token), and showing what senders sent strictly as text. Must never insert a body,
// header, sender or account label as markup.

import { api, button, clear, download, field, h, isAdmin, localTime, notify, on, pretty, raw, reasonInWords, select, session, status, table } from './ui.js';

const FILTERS = ['account', 'status', 'reason', 'sender', 'source', 'event_type', 'since', 'until', 'limit'];

function toRfc3339(local) {
  if (!local) return '';
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? '' : d.toISOString();
}

function toLocalInput(rfc) {
  if (!rfc) return '';
  const d = new Date(rfc);
  if (Number.isNaN(d.getTime())) return '';
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

export async function eventsView(params) {
  const form = h('form', { class: 'filters', id: 'event-filters', 'aria-label': 'Search events' });
  const f = {
    account: field('Account', { name: 'account', value: params.get('account') || '', autocomplete: 'off' }),
    status: select('Status', [['', 'any'], 'accepted', 'duplicate', 'rejected', 'handshake'], { name: 'status' }),
    reason: select('Reason', [['', 'any'], ...session.reasons], { name: 'reason' }),
    sender: field('Sender', { name: 'sender', value: params.get('sender') || '' }),
    source: field('Source', { name: 'source', value: params.get('source') || '' }),
    event_type: field('Event type', { name: 'event_type', value: params.get('event_type') || '' }),
    since: field('Since', { name: 'since', type: 'datetime-local', value: toLocalInput(params.get('since')) }),
    until: field('Until', { name: 'until', type: 'datetime-local', value: toLocalInput(params.get('until')) }),
    limit: select('Per page', ['50', '20', '100', '500'], { name: 'limit' }),
  };
  f.status.input.value = params.get('status') || '';
  f.reason.input.value = params.get('reason') || '';
  f.limit.input.value = params.get('limit') || '50';
  for (const x of Object.values(f)) form.append(x.row);
  form.append(h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary', text: 'Search' })));
  const query = () => {
    const q = new URLSearchParams();
    for (const k of FILTERS) {
      let v = f[k].input.value.trim();
      if (k === 'since' || k === 'until') v = toRfc3339(v);
      if (v && !(k === 'limit' && v === '50')) q.set(k, v);
    }
    return q;
  };
  on(form, 'submit', (e) => {
    e.preventDefault();
    const q = query().toString();
    const next = `#/events${q ? `?${q}` : ''}`;
    if (location.hash === next) window.dispatchEvent(new HashChangeEvent('hashchange'));
    else location.hash = next;
  });

  const results = h('div', { id: 'event-results', 'aria-live': 'polite' });
  const cursors = [];
  const load = async (cursor) => {
    const q = new URLSearchParams(params);
    if (cursor) q.set('cursor', cursor);
    const page = await api('GET', `/v1/events?${q}`);
    const rows = page.events.map((e) => [
      h('a', { href: `#/events/${e.id}`, text: e.id }),
      localTime(e.received_at),
      e.account,
      status(e.status, e.status),
      e.reason || '',
      e.sender || '',
      e.source || '',
      e.event_type || '',
    ]);
    clear(results).append(rows.length
      ? table(['Id', 'Received', 'Account', 'Status', 'Reason', 'Sender', 'Source', 'Type'], rows, { id: 'events-table' })
      : h('p', { text: 'No events match.' }));
    const nav = h('div', { class: 'actions' });
    if (cursors.length) nav.append(button('Newer', () => { cursors.pop(); load(cursors[cursors.length - 1]); }, { id: 'newer' }));
    if (page.next_cursor) nav.append(button('Older', () => { cursors.push(page.next_cursor); load(page.next_cursor); }, { id: 'older' }));
    results.append(nav);
  };

  const bodies = h('input', { type: 'checkbox', id: 'include-body' });
  const exportAs = (format) => async () => {
    const q = new URLSearchParams(params);
    q.delete('limit');
    q.set('format', format);
    if (bodies.checked) q.set('include_body', 'true');
    try {
      const blob = await download(`/v1/events/export?${q}`, `hookgate-events.${format === 'csv' ? 'csv' : 'ndjson'}`);
      notify(`Exported ${blob.size} bytes as ${format}`);
    } catch (err) {
      notify(err.message);
    }
  };
  const exporter = h('div', { class: 'actions', 'aria-label': 'Export' },
    button('Export NDJSON', exportAs('ndjson'), { id: 'export-ndjson' }),
    button('Export CSV', exportAs('csv'), { id: 'export-csv' }),
    h('span', { class: 'switch' }, bodies, h('label', { for: 'include-body', text: 'with bodies' })));

  await load(null);
  return h('section', { class: 'card' }, h('h1', { text: 'Events' }), form, exporter, results);
}

function kv(obj) {
  const shown = (v) => (v === null || v === undefined ? '(not found)' : typeof v === 'string' ? v : JSON.stringify(v));
  const rows = Object.entries(obj || {}).map(([k, v]) => [h('code', { text: k }), shown(v)]);
  return rows.length ? table(['Name', 'Value'], rows) : h('p', { text: 'None.' });
}

export async function eventView(id) {
  const e = await api('GET', `/v1/events/${id}`);
  const verdict = h('p', { class: 'verdict' }, status(e.status, e.status), ' ',
    e.reason ? h('strong', { text: reasonInWords(e.reason) }) : '', e.detail ? h('span', { class: 'detail', text: ` ${e.detail}` }) : '');
  const extracted = kv({ event_id: e.event_id, event_type: e.event_type, sender: e.sender, source: e.source, ...(e.params || {}) });
  const headers = Array.isArray(e.headers) ? e.headers.map((p) => (Array.isArray(p) ? p : [p.name, p.value])) : Object.entries(e.headers || {});
  const headerTable = table(['Header', 'Value'], headers.map(([k, v]) => [h('code', { text: String(k) }), String(v)]), { id: 'event-headers' });
  const body = h('pre', { id: 'event-body', class: 'body', tabindex: '0' });
  body.textContent = e.body_encoding === 'utf8' ? pretty(e.body) : `(base64) ${e.body}`;
  const attempts = (e.forward_attempts || []).map((a) => [String(a.attempt), localTime(a.at), a.outcome, a.http_status ? String(a.http_status) : '', a.detail || '']);
  const node = h('div', {},
    h('section', { class: 'card' },
      h('h1', {}, `Event ${e.id}`),
      verdict,
      h('p', {}, 'Account ', h('code', { id: 'event-account', text: e.account }), ` · received ${localTime(e.received_at)} · ${e.method} ${e.path}`, e.query ? `?${e.query}` : '', ` from ${e.remote_addr}`),
      h('p', { text: `Body: ${e.body_size} bytes${e.body_truncated ? ' (truncated)' : ''}, ${e.content_type || 'no content type'}, SHA-256 ${e.body_sha256 || ''}` })),
    h('section', { class: 'card' }, h('h2', { text: 'Extracted fields' }), extracted),
    h('section', { class: 'card' }, h('h2', { text: 'Headers (credentials redacted)' }), headerTable),
    h('section', { class: 'card' }, h('h2', { text: 'Body' }), body),
    h('section', { class: 'card' }, h('h2', { text: `Forwarding: ${e.forward_status || 'none'}` }),
      attempts.length ? table(['#', 'At', 'Outcome', 'HTTP', 'Detail'], attempts) : h('p', { text: 'No attempts.' }),
      isAdmin() && ['dead', 'no_session'].includes(e.forward_status)
        ? button('Redeliver', async () => {
          try {
            await api('POST', `/v1/events/${e.id}/redeliver`);
            notify('Queued again');
          } catch (err) {
            notify(err.message);
          }
        }, { id: 'redeliver' })
        : ''));
  return node;
}

export function tailView() {
  const account = field('Account (empty for all)', { id: 'tail-account', autocomplete: 'off' });
  const list = h('ol', { id: 'tail-list', class: 'tail', reversed: true, 'aria-live': 'polite' });
  const state = h('span', { id: 'tail-state', class: 'badge muted', text: 'paused' });
  let controller = null;
  let lastId = null;
  const stop = () => {
    if (controller) controller.abort();
    controller = null;
    state.textContent = 'paused';
    toggle.textContent = 'Resume';
  };
  const show = (data) => {
    let e;
    try {
      e = JSON.parse(data);
    } catch {
      return;
    }
    const item = h('li', {}, h('a', { href: `#/events/${e.id}`, text: e.id || '' }), ' ', e.account || '', ' ',
      e.event_type || '', ' ', e.sender || '', ' ', localTime(e.received_at));
    list.prepend(item);
    while (list.children.length > 200) list.lastChild.remove();
  };
  const run = async () => {
    controller = new AbortController();
    state.textContent = 'live';
    toggle.textContent = 'Pause';
    const q = account.input.value.trim() ? `?account=${encodeURIComponent(account.input.value.trim())}` : '';
    try {
      const res = await raw('GET', `/v1/stream${q}`, undefined, { headers: lastId ? { 'Last-Event-ID': lastId } : {}, signal: controller.signal });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let cut;
        while ((cut = buf.indexOf('\n\n')) >= 0) {
          const frame = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          let data = '';
          for (const line of frame.split('\n')) {
            if (line.startsWith('id:')) lastId = line.slice(3).trim();
            if (line.startsWith('data:')) data += line.slice(5).trim();
          }
          if (data) show(data);
        }
      }
    } catch (err) {
      if (err.name !== 'AbortError') notify(`Stream ended: ${err.message}`);
    }
    if (controller) stop();
  };
  const toggle = button('Start', () => (controller ? stop() : run()), { id: 'tail-toggle' });
  on(account.input, 'change', () => {
    lastId = null;
    clear(list);
    if (controller) {
      stop();
      run();
    }
  });
  const node = h('section', { class: 'card' }, h('h1', { text: 'Live tail' }),
    h('p', { class: 'help', text: 'Accepted events of listening accounts, as they are committed.' }),
    account.row, h('div', { class: 'actions' }, toggle, state), list);
  run();
  return { node, stop };
}
