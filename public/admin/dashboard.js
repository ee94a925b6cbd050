// The pool dashboard: polls /status.json once a second and redraws. Plain
// browser JavaScript with no build step and nothing loaded from outside, so
// the page works wherever the admin listener is reachable.
'use strict';

const POLL_MS = 1000;
const SPARK_POINTS = 120;
const KINDS = ['handler', 'app', 'dir', 'proxy'];
const rpsHistory = [];

const $ = (id) => document.getElementById(id);
const ms = (v) => (v === 0 ? '–' : v < 10 ? `${v.toFixed(2)} ms` : v < 1000 ? `${v.toFixed(0)} ms` : `${(v / 1000).toFixed(1)} s`);
const rate = (v) => (v === 0 ? '0' : v < 10 ? v.toFixed(1) : Math.round(v).toLocaleString('en'));
const int = (v) => Math.round(v).toLocaleString('en');

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') node.className = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function stat(label, value, field, extra) {
  const dd = el('dd', { 'data-field': field }, value);
  const div = el('div', {}, el('dt', {}, label), dd);
  if (extra) div.append(extra);
  return div;
}

function duration(seconds) {
  if (seconds < 120) return `${Math.floor(seconds)} s`;
  if (seconds < 7200) return `${Math.floor(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

/** The previous status drawn, for the current rate (requests between two updates). */
let previous;

/** Requests per second since the previous update: "now", where the windows average the last minute. */
function currentRate(s) {
  const prev = previous;
  previous = s;
  if (!prev || prev.pid !== s.pid) return s.window.rps;
  const seconds = (Date.parse(s.now) - Date.parse(prev.now)) / 1000;
  return seconds > 0 ? Math.max(0, s.requests - prev.requests) / seconds : s.window.rps;
}

function drawSpark() {
  const max = Math.max(1, ...rpsHistory);
  // Newest at the right edge, one point per update, as the history fills up.
  const x = (i) => (240 * (SPARK_POINTS - rpsHistory.length + i)) / (SPARK_POINTS - 1);
  const y = (v) => (38 - (v / max) * 34).toFixed(1);
  const line = rpsHistory.map((v, i) => `${x(i).toFixed(1)},${y(v)}`);
  const spark = $('spark');
  spark.querySelector('polyline').setAttribute('points', line.join(' '));
  spark.querySelector('polygon').setAttribute('points', line.length ? `${x(0).toFixed(1)},40 ${line.join(' ')} 240,40` : '');
  document.querySelector('[data-field="spark-max"]').textContent = `· peak ${rate(Math.max(...rpsHistory, 0))}`;
}

function drawSummary(s) {
  const ready = $('ready');
  ready.textContent = s.ready ? 'ready' : 'not ready';
  ready.className = `badge ${s.ready ? 'ok' : 'bad'}`;
  const notReady = $('not-ready');
  notReady.hidden = s.ready;
  notReady.textContent = s.ready ? '' : `Not ready: ${s.notReady.join('; ')}`;
  const now = currentRate(s);
  const fields = {
    rps: rate(now), p50: ms(s.window.p50Ms), p99: ms(s.window.p99Ms), 'in-flight': int(s.inFlight),
    errors: int(s.window.errors), requests: int(s.requests), uptime: duration((Date.parse(s.now) - Date.parse(s.startedAt)) / 1000),
  };
  for (const [field, text] of Object.entries(fields)) document.querySelector(`header [data-field="${field}"]`).textContent = text;
  document.querySelector('header [data-field="errors"]').classList.toggle('alert', s.window.errors > 0);
  rpsHistory.push(now);
  if (rpsHistory.length > SPARK_POINTS) rpsHistory.shift();
  drawSpark();
}

function drawKinds(s) {
  const rows = KINDS.map((kind) => {
    const w = s.byKind[kind];
    return el('tr', { 'data-kind': kind, class: w.count === 0 ? 'idle' : '' },
      el('td', {}, kind), el('td', { 'data-field': 'rps' }, rate(w.rps)), el('td', {}, ms(w.p50Ms)), el('td', {}, ms(w.p99Ms)),
      el('td', { class: w.errors > 0 ? 'alert' : '' }, int(w.errors)));
  });
  $('kinds').replaceChildren(...rows);
}

function drawHandler(h) {
  const capacity = h.creditHeld + h.creditFree;
  const used = capacity > 0 ? (100 * h.creditHeld) / capacity : 0;
  const badge = el('span', { class: `badge ${h.up ? 'ok' : 'bad'}`, 'data-field': 'up' }, h.up ? 'up' : 'down');
  const card = el('article', { class: `handler${h.up ? '' : ' down'}`, 'data-handler': h.name },
    el('div', { class: 'handler-head' }, el('code', {}, h.name), badge, el('span', { class: 'muted' }, h.transport === 'link' ? 'm2gate link' : 'PUSH/SUB'),
      el('span', { class: 'routes' }, ...h.routes.map((r) => el('code', {}, r)))));
  const meter = el('div', { class: 'meter', title: `${h.creditHeld} of ${capacity}` }, el('span', { style: `width:${used.toFixed(1)}%` }));
  const failed = h.errors['502'] + h.errors['503'] + h.errors['504'];
  const errors = stat('502 / 503 / 504', `${h.errors['502']} / ${h.errors['503']} / ${h.errors['504']}`, 'errors');
  if (failed > 0) errors.querySelector('dd').classList.add('alert');
  card.append(el('dl', { class: 'stats' },
    stat('services', int(h.connected), 'connected'),
    stat('threads', int(h.threads), 'threads'),
    stat('credit used', h.transport === 'link' ? `${int(h.creditHeld)} / ${int(capacity)}` : '–', 'credit', meter),
    stat('in flight', int(h.inFlight), 'in-flight'),
    stat('queue', int(h.queueDepth), 'queue'),
    stat('req/s · 1 min', rate(h.window.rps), 'rps'),
    stat('p50', ms(h.window.p50Ms), 'p50'),
    stat('p99', ms(h.window.p99Ms), 'p99'),
    errors,
    stat('retried', int(h.retries), 'retries')));
  if (h.transport === 'link') {
    const rows = h.services.map((svc) => {
      const state = !svc.up ? 'down' : svc.leaving ? 'leaving' : 'up';
      return el('tr', { class: state, 'data-service': svc.name },
        el('td', {}, svc.name), el('td', { 'data-field': 'state' }, state), el('td', {}, int(svc.threads)),
        el('td', {}, svc.up ? `${int(svc.held)} / ${int(svc.held + svc.creditFree)}` : '–'),
        el('td', {}, svc.up ? `${int(svc.lastHeardMs)} ms ago` : `${duration(svc.lastHeardMs / 1000)} ago`));
    });
    card.append(el('table', { class: 'services' },
      el('thead', {}, el('tr', {}, el('th', {}, 'service'), el('th', {}, 'state'), el('th', {}, 'threads'), el('th', {}, 'held / credit'), el('th', {}, 'last heard'))),
      el('tbody', {}, ...(rows.length ? rows : [el('tr', {}, el('td', { colspan: '5', class: 'muted' }, 'no service registered'))]))));
  }
  return card;
}

function drawRestarts(s) {
  const items = s.restarts.map((r) => el('li', {},
    el('time', { datetime: r.at }, new Date(r.at).toLocaleTimeString()),
    el('strong', {}, `pid ${r.pid ?? '?'} ${r.signal ? `killed by ${r.signal}` : `exited ${r.code}`}`),
    el('span', { class: 'muted' }, `restart in ${r.restartInMs} ms`),
    el('code', { class: 'muted' }, r.handler)));
  $('restarts').replaceChildren(...(items.length ? items : [el('li', { class: 'none' }, 'none')]));
}

async function poll() {
  try {
    const res = await fetch('/status.json', { cache: 'no-store' });
    if (!res.ok) throw new Error(`status.json: HTTP ${res.status}`);
    const s = await res.json();
    drawSummary(s);
    drawKinds(s);
    $('handlers').replaceChildren(...s.handlers.map(drawHandler));
    drawRestarts(s);
    document.body.classList.remove('stale');
    $('updated').textContent = `updated ${new Date(s.now).toLocaleTimeString()}`;
  } catch (err) {
    document.body.classList.add('stale');
    $('updated').textContent = `not updating: ${err.message}`;
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

poll();
