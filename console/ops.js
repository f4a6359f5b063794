// hookgate console: the operations dashboard — outcomes per minute and rejections by
// reason over the last hour, drawn as SVG in the page, and the writer's health,
// readiness and the outbox (how late its oldest waiting delivery is).
// Owns drawing these figures and refreshing them while the page is shown. Must never load
// a chart library or anything else from another origin.

import { api, clear, h, showError, status, table } from './ui.js';

const SVG = 'http://www.w3.org/2000/svg';
const SERIES = [['accepted', 'Accepted'], ['duplicate', 'Duplicate'], ['rejected', 'Rejected']];

function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

// Stacked bars, one per minute.
export function minuteChart(minutes) {
  const width = 720;
  const height = 170;
  const pad = 24;
  const max = Math.max(1, ...minutes.map((m) => m.accepted + m.duplicate + m.rejected));
  const bar = (width - pad * 2) / Math.max(1, minutes.length);
  const total = minutes.reduce((n, m) => n + m.accepted + m.duplicate + m.rejected, 0);
  const svg = s('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', id: 'minute-chart', 'aria-label': `Webhooks per minute over the last hour: ${total} in all, at most ${max} in a minute` });
  svg.append(s('line', { x1: pad, y1: height - pad, x2: width - pad, y2: height - pad, class: 'axis' }));
  svg.append(s('text', { x: 2, y: pad, class: 'tick' }, String(max)));
  svg.append(s('text', { x: 2, y: height - pad, class: 'tick' }, '0'));
  if (minutes.length) {
    const time = (m) => new Date(m.at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    svg.append(s('text', { x: pad, y: height - 6, class: 'tick' }, time(minutes[0])));
    svg.append(s('text', { x: width - pad, y: height - 6, class: 'tick', 'text-anchor': 'end' }, time(minutes[minutes.length - 1])));
  }
  minutes.forEach((m, i) => {
    let y = height - pad;
    for (const [key, label] of SERIES) {
      const v = m[key];
      if (!v) continue;
      const hgt = ((height - pad * 2) * v) / max;
      y -= hgt;
      svg.append(s('rect', { x: pad + i * bar + 1, y, width: Math.max(1, bar - 2), height: hgt, class: `bar ${key}` },
        s('title', {}, `${new Date(m.at).toLocaleTimeString()}: ${v} ${label.toLowerCase()}`)));
    }
  });
  const legend = h('p', { class: 'legend' }, SERIES.map(([key, label]) => h('span', { class: `key ${key}`, text: label })));
  return h('figure', {}, svg, legend);
}

export function reasonChart(rejections) {
  if (!rejections.length) return h('p', { id: 'reason-chart', text: 'No rejections in the last hour.' });
  const width = 720;
  const row = 26;
  const max = Math.max(...rejections.map((r) => r.count));
  const svg = s('svg', { viewBox: `0 0 ${width} ${row * rejections.length + 4}`, role: 'img', id: 'reason-chart', 'aria-label': 'Rejections by reason over the last hour' });
  rejections.forEach((r, i) => {
    const w = ((width - 260) * r.count) / max;
    svg.append(s('text', { x: 0, y: i * row + 18, class: 'label' }, r.reason));
    svg.append(s('rect', { x: 200, y: i * row + 4, width: Math.max(2, w), height: row - 8, class: 'bar rejected' }));
    svg.append(s('text', { x: 206 + w, y: i * row + 18, class: 'label' }, String(r.count)));
  });
  return h('figure', {}, svg, table(['Reason', 'Rejections'], rejections.map((r) => [r.reason, String(r.count)]), { class: 'sr-table' }));
}

// The outbox in words: empty, or how long its oldest waiting delivery has been due.
function backlog(oldestDue) {
  if (!oldestDue) return 'empty';
  const late = Math.round((Date.now() - new Date(oldestDue).getTime()) / 1000);
  return late > 0 ? `waiting, oldest due ${late} s ago` : `waiting, next due at ${new Date(oldestDue).toLocaleTimeString()}`;
}

export function opsView() {
  const node = h('div', { id: 'ops' });
  let timer = null;
  const draw = async () => {
    try {
      const a = await api('GET', '/v1/stats/activity?minutes=60');
      const w = a.writer.counts;
      clear(node).append(
        h('section', { class: 'card' }, h('h1', { text: 'Operations' }),
          h('div', { class: 'tiles' },
            h('div', { class: 'tile' }, h('span', { text: 'Readiness' }), status(a.ready ? 'ready' : 'not ready', a.ready ? 'ok' : 'rejected')),
            h('div', { class: 'tile' }, h('span', { text: 'Writer' }), status(a.writer.healthy ? 'healthy' : 'failing', a.writer.healthy ? 'ok' : 'rejected'),
              h('small', { text: `${w.groups_committed} groups, ${w.groups_failed} failed, ${w.unavailable} answered 503` })),
            h('div', { class: 'tile' }, h('span', { text: 'Outbox' }), h('strong', { id: 'outbox-backlog', text: backlog(a.outbox_oldest_due) })))),
        h('section', { class: 'card' }, h('h2', { text: 'Per minute, last hour' }), minuteChart(a.minutes)),
        h('section', { class: 'card' }, h('h2', { text: 'Rejections by reason, last hour' }), reasonChart(a.rejections)));
    } catch (err) {
      showError(node, err);
    }
  };
  draw();
  timer = setInterval(draw, 10000);
  return { node, stop: () => clearInterval(timer) };
}
