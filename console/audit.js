// hookgate console: audit — verify both hash chains, the heads to write down, and the
// change log with its filters.
// Owns the audit page. Read-only: open to admins and auditors. Must never show a detail
// of the change log as markup.

import { api, button, clear, copy, field, h, localTime, on, status, table } from './ui.js';

export async function auditView() {
  const expect = field('Expected events head (optional)', { id: 'expect-head', spellcheck: 'false', autocomplete: 'off', placeholder: '64 hex digits noted earlier' });
  const verdict = h('div', { id: 'verify-result', 'aria-live': 'polite' });
  const verify = async () => {
    clear(verdict).append(h('p', { text: 'Checking every row…' }));
    const q = expect.input.value.trim() ? `?expect_head=${encodeURIComponent(expect.input.value.trim())}` : '';
    try {
      const r = await api('GET', `/v1/audit/verify${q}`);
      const rows = r.logs.map((l) => [
        l.log,
        status(l.ok ? 'intact' : l.problem || 'broken', l.ok ? 'ok' : 'rejected'),
        String(l.rows),
        String(l.pruned || 0),
        h('span', {}, h('code', { class: 'hash', text: l.head || '' }), ' ', l.head ? button('Copy', () => copy(l.head), { 'aria-label': `Copy the ${l.log} head` }) : ''),
        l.ok ? (l.expected_head_found === false ? 'expected head not found' : '') : `row ${l.broken_at}: ${l.detail || ''}`,
      ]);
      clear(verdict).append(
        h('p', { class: r.ok ? 'ok' : 'error', id: 'verify-verdict', text: r.ok ? 'Both chains verify: no row was edited, removed or reordered.' : 'A chain is broken.' }),
        table(['Log', 'State', 'Rows', 'Pruned', 'Head (write it down)', 'Notes'], r.logs.length ? rows : [], { id: 'verify-table' }));
    } catch (err) {
      clear(verdict).append(h('p', { class: 'error', role: 'alert', text: err.message }));
    }
  };

  const form = h('form', { class: 'filters', id: 'change-filters', 'aria-label': 'Change log filters' });
  const f = {
    account: field('Account', { name: 'account' }),
    action: field('Action', { name: 'action', placeholder: 'account.created' }),
    since: field('Since', { name: 'since', type: 'datetime-local' }),
    until: field('Until', { name: 'until', type: 'datetime-local' }),
  };
  for (const x of Object.values(f)) form.append(x.row);
  form.append(h('div', { class: 'actions' }, h('button', { type: 'submit', text: 'Show changes' })));
  const changes = h('div', { id: 'changes', 'aria-live': 'polite' });
  const cursors = [];
  const load = async (cursor) => {
    const q = new URLSearchParams();
    for (const [k, x] of Object.entries(f)) {
      let v = x.input.value.trim();
      if (v && (k === 'since' || k === 'until')) v = new Date(v).toISOString();
      if (v) q.set(k, v);
    }
    if (cursor) q.set('cursor', cursor);
    try {
      const page = await api('GET', `/v1/changes?${q}`);
      const rows = page.changes.map((c) => [localTime(c.at), c.actor, h('code', { text: c.action }), c.account || '', h('code', { class: 'detail', text: JSON.stringify(c.detail) })]);
      clear(changes).append(rows.length ? table(['At', 'Who', 'Action', 'Account', 'Detail'], rows, { id: 'changes-table' }) : h('p', { text: 'No changes match.' }));
      const nav = h('div', { class: 'actions' });
      if (cursors.length) nav.append(button('Newer', () => { cursors.pop(); load(cursors[cursors.length - 1]); }));
      if (page.next_cursor) nav.append(button('Older', () => { cursors.push(page.next_cursor); load(page.next_cursor); }));
      changes.append(nav);
    } catch (err) {
      clear(changes).append(h('p', { class: 'error', role: 'alert', text: err.message }));
    }
  };
  on(form, 'submit', (e) => {
    e.preventDefault();
    cursors.length = 0;
    load(null);
  });
  await load(null);
  return h('div', {},
    h('section', { class: 'card' }, h('h1', { text: 'Audit' }),
      h('p', { class: 'help', text: 'Every row of the event log and the change log carries the hash of the one before. Verify both, and note the heads somewhere else: a later check against them finds a cut-off tail.' }),
      expect.row, button('Verify both chains', verify, { class: 'primary', id: 'verify' }), verdict,
      h('p', {}, 'Exports of a search are on the ', h('a', { href: '#/events', text: 'Events' }), ' page.')),
    h('section', { class: 'card' }, h('h2', { text: 'Change log' }), form, changes));
}
