// App routes and Brubeck's two service patterns, in the gateway in-process:
// HTTP client → app route (test/fixtures/apps/call-app.mjs) → ctx.call / ctx.send →
// the gateway's own route table → a handler pool → a real `m2gate service`
// process (demo routes on /svc/, probe routes on /t/) or a fake handler the test
// drives (/raw/) → the correlated reply back to the app route.
//
// Every "exactly once" below is checked after a barrier: a later call answered
// by the same fake handler over the same PUB → SUB link, so anything the
// gateway could still deliver for the earlier call has been delivered by then.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import { mkdirSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { pino } from 'pino';
import { Agent, request } from 'undici';
import { Gateway } from '../gateway/gateway.js';
import type { CallReply, HandlerTarget } from '../gateway/handler/index.js';
import type { M2gateError } from '../protocol/errors.js';
import { findServer, parseConfig } from '../protocol/mongrel2-conf.js';
import { confText, fakeHandler, handlerConf, tempTree, RawClient, type FakeHandler } from './helpers/gateway.js';
import { fixtureRoutes, isMsg, isProbe, spawnService, stopAll, ROOT, type LogLine } from './helpers/service.js';

const rejections: unknown[] = [];
process.on('unhandledRejection', (reason) => rejections.push(reason));

// ---- the gateway's log, captured ------------------------------------------------------------

const logLines: LogLine[] = [];
const logged = new EventEmitter();
const logger = pino({ level: 'info' }, {
  write(text: string) {
    const line = JSON.parse(text) as LogLine;
    logLines.push(line);
    logged.emit('line', line);
  },
});

// ---- the app's events -----------------------------------------------------------------------

interface OnReplyEvent { tag: string; err: M2gateError | null; reply?: CallReply }
interface SettledEvent { tag: string; code: string | null; status: number | undefined }
const app = (await import(pathToFileURL(join(ROOT, 'test/fixtures/apps/call-app.mjs')).href)) as { default: unknown; events: EventEmitter };
const onReplies: OnReplyEvent[] = [];
const settled: SettledEvent[] = [];
app.events.on('onReply', (e: OnReplyEvent) => onReplies.push(e));
app.events.on('settled', (e: SettledEvent) => settled.push(e));

/** Resolves with the first event of `name` (already seen in `seen`, or future) matching `pred`. */
function appEvent<T>(name: string, seen: T[], pred: (e: T) => boolean): Promise<T> {
  const found = seen.find(pred);
  if (found) return Promise.resolve(found);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      app.events.off(name, check);
      reject(new Error(`no '${name}' app event within 10 s`));
    }, 10_000);
    const check = (e: T): void => {
      if (!pred(e)) return;
      clearTimeout(timer);
      app.events.off(name, check);
      resolve(e);
    };
    app.events.on(name, check);
  });
}

function logLine(pred: (line: LogLine) => boolean): Promise<LogLine> {
  const found = logLines.find(pred);
  if (found) return Promise.resolve(found);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      logged.off('line', check);
      reject(new Error('no matching gateway log line within 10 s'));
    }, 10_000);
    const check = (line: LogLine): void => {
      if (!pred(line)) return;
      clearTimeout(timer);
      logged.off('line', check);
      resolve(line);
    };
    logged.on('line', check);
  });
}

// ---- the rig --------------------------------------------------------------------------------

const SVC = handlerConf('/svc/', '0a1b2c3d-0000-4000-8000-0000appsvc01');
const PROBES = handlerConf('/t/', '0a1b2c3d-0000-4000-8000-0000appprobe');
const RAW = handlerConf('/raw/', '0a1b2c3d-0000-4000-8000-0000appraw01');
const NONE = handlerConf('/none/', '0a1b2c3d-0000-4000-8000-0000appnone0');

const dir = tempTree();
mkdirSync(join(dir, 'static'));
writeFileSync(join(dir, 'static', 'index.html'), 'static page\n');
const text = confText({
  handlers: [SVC, PROBES, RAW, NONE],
  routes: [`'/static/': Dir(base='static/', index_file='index.html', default_ctype='text/plain')`],
});
const config = parseConfig(text, join(dir, 'mongrel2.conf'));
const gateway = new Gateway({ config, server: findServer(config), cwd: dir, port: 0, host: '127.0.0.1', logger, app: app.default });
const port = await gateway.start();
const base = `http://127.0.0.1:${port}`;
const agent = new Agent({ keepAliveTimeout: 1000 });

function poolFor(h: { sendSpec: string }): HandlerTarget {
  const pool = gateway.pools.find((p) => p.config.sendSpec === h.sendSpec);
  if (!pool) throw new Error(`no pool for ${h.sendSpec}`);
  return pool;
}

const svc = spawnService(['--send', SVC.sendSpec, '--recv', SVC.recvSpec, '--workers', '2']);
const probes = spawnService([fixtureRoutes('probes.mjs'), '--send', PROBES.sendSpec, '--recv', PROBES.recvSpec, '--workers', '1']);
await Promise.all([svc.ready(), probes.ready(), poolFor(SVC).whenPeer(), poolFor(PROBES).whenPeer()]);
const raw: FakeHandler = await fakeHandler(RAW, poolFor(RAW));

after(async () => {
  raw.stop();
  await agent.close();
  await gateway.close();
  await stopAll();
});

async function get(path: string): Promise<{ status: number; body: string }> {
  const res = await request(`${base}${path}`, { dispatcher: agent });
  return { status: res.statusCode, body: await res.body.text() };
}

const q = encodeURIComponent;

/**
 * A barrier on the raw handler's link: a ctx.call answered by the fake handler.
 * When it settles, every message the handler published before it has been
 * processed by the gateway (one PUB → SUB link keeps order).
 */
async function rawBarrier(tag: string): Promise<void> {
  const pending = get(`/app/call?tag=${tag}&path=${q(`/raw/barrier-${tag}`)}`);
  const { msg } = await raw.next('barrier request');
  assert.equal(msg.path, `/raw/barrier-${tag}`);
  await raw.reply(msg.connId, 'HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nbarrier');
  const res = await pending;
  assert.equal(res.status, 200);
  assert.deepEqual(JSON.parse(res.body), { status: 200, text: 'barrier' });
}

// ---- ctx.call -------------------------------------------------------------------------------

test('ctx.call resolves with the service reply: status, reason, headers, body bytes, text(), json()', async () => {
  const res = await get('/app/shape');
  assert.equal(res.status, 200);
  const shape = JSON.parse(res.body) as Record<string, unknown>;
  const body = JSON.stringify({ data: 'shape ✓' });
  assert.equal(shape.status, 200);
  assert.equal(shape.reason, 'OK');
  assert.equal(shape.bodyIsBuffer, true);
  assert.equal(shape.bodyBytes, Buffer.byteLength(body));
  assert.equal(shape.text, body);
  assert.deepEqual(shape.json, { data: 'shape ✓' });
  const headers = shape.headers as Record<string, unknown>;
  assert.equal(headers['content-type'], 'application/json');
  assert.equal(headers['content-length'], String(Buffer.byteLength(body)));
  assert.equal(poolFor(SVC).pending, 0);
});

test('ctx.call hands over non-200 replies as values, not errors', async () => {
  const res = await get(`/app/call?tag=notfound&path=${q('/svc/nothing-here')}`);
  assert.equal(res.status, 200);
  assert.deepEqual(JSON.parse(res.body), { status: 404, text: 'Not Found\n' });
});

test('ctx.call deadline: M2G_ERR_CALL_TIMEOUT, a 504 when unhandled, a disconnect to the handler, the late reply dropped', async () => {
  const pool = poolFor(RAW);
  const unknownBefore = pool.stats.unknownIds;
  const pending = get(`/app/call?tag=deadline&timeout=50&path=${q('/raw/never')}`);
  const { msg } = await raw.next('the timed-out request');
  assert.equal(msg.path, '/raw/never');
  const res = await pending;
  assert.equal(res.status, 504);
  assert.match(res.body, /^no reply from \/raw\/never within 50 ms \(error id [0-9a-f-]{36}\)\n$/);
  // The handler is told to stop, as Mongrel2 tells it about a client that left (§3.6).
  const notice = await raw.notice('the disconnect notice');
  assert.equal(notice.msg.kind, 'disconnect');
  assert.equal(notice.msg.connId, msg.connId);
  // A reply that comes after the deadline goes nowhere and is counted.
  await raw.reply(msg.connId, 'HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlate');
  await rawBarrier('after-deadline');
  assert.equal(pool.stats.unknownIds, unknownBefore + 1);
  // ...and, as Mongrel2 answers a reply to a gone id (§4.6), the handler hears that id is gone.
  assert.equal((await raw.notice('the notice answering the late reply')).msg.connId, msg.connId);
  assert.deepEqual(settled.filter((e) => e.tag === 'deadline'), [{ tag: 'deadline', code: 'M2G_ERR_CALL_TIMEOUT', status: 504 }]);
  assert.equal(pool.pending, 0);
  assert.ok(logLines.some((l) => l.msg === 'app route failed' && l.route === 'GET /app/call'), 'the unhandled error is logged with its route');
});

test('ctx.call deadline caught by the route: the error carries code M2G_ERR_CALL_TIMEOUT and statusCode 504', async () => {
  const pending = get(`/app/call?tag=deadline-caught&catch=1&timeout=50&path=${q('/raw/never-again')}`);
  const { msg } = await raw.next('the timed-out request');
  const res = await pending;
  assert.equal(res.status, 200);
  assert.deepEqual(JSON.parse(res.body), { code: 'M2G_ERR_CALL_TIMEOUT', statusCode: 504, name: 'M2gateError' });
  assert.equal((await raw.notice('the disconnect notice')).msg.connId, msg.connId);
});

test('ctx.call errors without a handler reply: M2G_ERR_NO_HANDLER → 503, M2G_ERR_NO_ROUTE → 404 (unmatched and Dir paths), M2G_ERR_REQUEST → 400', async () => {
  const cases = [
    { tag: 'nohandler', path: '/none/x', code: 'M2G_ERR_NO_HANDLER', status: 503 },
    { tag: 'noroute', path: '/nowhere', code: 'M2G_ERR_NO_ROUTE', status: 404 },
    { tag: 'dirroute', path: '/static/index.html', code: 'M2G_ERR_NO_ROUTE', status: 404 },
    // A path a Mongrel2 message cannot carry is the caller's mistake: 400, nothing sent.
    { tag: 'badpath', path: '/svc/a b', code: 'M2G_ERR_REQUEST', status: 400 },
  ];
  for (const c of cases) {
    const unhandled = await get(`/app/call?tag=${c.tag}&path=${q(c.path)}`);
    assert.equal(unhandled.status, c.status, c.tag);
    const caught = await get(`/app/call?tag=${c.tag}-caught&catch=1&path=${q(c.path)}`);
    assert.deepEqual(JSON.parse(caught.body), { code: c.code, statusCode: c.status, name: 'M2gateError' }, c.tag);
  }
  assert.equal(poolFor(NONE).stats.sent, 0);
});

// ---- ctx.send -------------------------------------------------------------------------------

test('ctx.send: 202 at once, onReply called exactly once for a reply, a timeout, no handler, no route', async () => {
  const rawPool = poolFor(RAW);
  const unknownBefore = rawPool.stats.unknownIds;
  const repliesBefore = gateway.stats.asyncReplies;
  const errorsBefore = gateway.stats.asyncErrors;

  // A reply from the real service.
  const r1 = await get(`/app/send?tag=s-reply&path=${q('/svc/slow?ms=0&data=async-one')}`);
  assert.equal(r1.status, 202);
  assert.deepEqual(JSON.parse(r1.body), { sent: '/svc/slow?ms=0&data=async-one' });
  const e1 = await appEvent('onReply', onReplies, (e) => e.tag === 's-reply');
  assert.equal(e1.err, null);
  assert.equal(e1.reply?.status, 200);
  assert.deepEqual(e1.reply?.json(), { data: 'async-one' });

  // A reply from the fake handler in three messages, then the close message
  // (§4.3): the reply settles on the body's end; the close finds no sink.
  const r2 = await get(`/app/send?tag=s-parts&path=${q('/raw/parts')}`);
  assert.equal(r2.status, 202);
  const parts = await raw.next('the send request');
  await raw.reply(parts.msg.connId, 'HTTP/1.1 201 Created\r\nContent-Length: 6\r\n\r\n');
  await raw.reply(parts.msg.connId, 'abc');
  await raw.reply(parts.msg.connId, 'def');
  await raw.close(parts.msg.connId);
  const e2 = await appEvent('onReply', onReplies, (e) => e.tag === 's-parts');
  assert.equal(e2.err, null);
  assert.equal(e2.reply?.status, 201);
  assert.equal(e2.reply?.text(), 'abcdef');

  // A reply framed by the close message only (no length): settles on the close.
  await get(`/app/send?tag=s-until-close&path=${q('/raw/until-close')}`);
  const untilClose = await raw.next('the send request');
  await raw.reply(untilClose.msg.connId, 'HTTP/1.1 200 OK\r\n\r\nuntil ');
  await raw.reply(untilClose.msg.connId, 'close');
  await raw.close(untilClose.msg.connId);
  const e3 = await appEvent('onReply', onReplies, (e) => e.tag === 's-until-close');
  assert.equal(e3.err, null);
  assert.equal(e3.reply?.text(), 'until close');

  // A timeout, then the late reply.
  await get(`/app/send?tag=s-timeout&timeout=50&path=${q('/raw/slow')}`);
  const slow = await raw.next('the send request');
  const e4 = await appEvent('onReply', onReplies, (e) => e.tag === 's-timeout');
  assert.equal(e4.err?.code, 'M2G_ERR_CALL_TIMEOUT');
  assert.equal(e4.err?.statusCode, 504);
  assert.equal(e4.reply, undefined);
  assert.equal((await raw.notice('the disconnect notice')).msg.connId, slow.msg.connId);
  await raw.reply(slow.msg.connId, 'HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlate');
  assert.equal((await raw.notice('the notice answering the late reply')).msg.connId, slow.msg.connId);

  // Errors before anything is sent; a response handler that throws.
  await get(`/app/send?tag=s-nohandler&path=${q('/none/x')}`);
  await get(`/app/send?tag=s-noroute&path=${q('/nowhere')}`);
  await get(`/app/send?tag=s-throws&throw=1&path=${q('/static/index.html')}`);
  const e5 = await appEvent('onReply', onReplies, (e) => e.tag === 's-nohandler');
  assert.equal(e5.err?.code, 'M2G_ERR_NO_HANDLER');
  assert.equal(e5.err?.statusCode, 503);
  const e6 = await appEvent('onReply', onReplies, (e) => e.tag === 's-noroute');
  assert.equal(e6.err?.code, 'M2G_ERR_NO_ROUTE');
  assert.equal(e6.err?.statusCode, 404);
  await appEvent('onReply', onReplies, (e) => e.tag === 's-throws');
  await logLine((l) => l.msg === 'response handler threw');

  await rawBarrier('after-send');
  const tags = ['s-reply', 's-parts', 's-until-close', 's-timeout', 's-nohandler', 's-noroute', 's-throws'];
  for (const tag of tags) assert.equal(onReplies.filter((e) => e.tag === tag).length, 1, `onReply calls for ${tag}`);
  assert.equal(gateway.stats.asyncReplies, repliesBefore + 3);
  assert.equal(gateway.stats.asyncErrors, errorsBefore + 4);
  // The late reply found no sink; close messages after complete replies are expected, not counted.
  assert.equal(rawPool.stats.unknownIds, unknownBefore + 1);
  assert.equal(rawPool.pending, 0);
  assert.equal(poolFor(SVC).pending, 0);
  assert.deepEqual(rejections, []);
});

test('ctx.send without onReply: the reply is dropped and counted in gateway.stats.asyncDropped', async () => {
  const droppedBefore = gateway.stats.asyncDropped;
  const repliesBefore = gateway.stats.asyncReplies;
  const pending = get(`/app/send-then-call?first=${q('/raw/fire-and-forget')}&second=${q('/raw/then-call')}`);
  const first = await raw.next('the send');
  const second = await raw.next('the call');
  assert.equal(first.msg.path, '/raw/fire-and-forget');
  assert.equal(second.msg.path, '/raw/then-call');
  // The send's reply first: the gateway has dropped it when the call's reply arrives.
  await raw.reply(first.msg.connId, 'HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\ndropped');
  await raw.reply(second.msg.connId, 'HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nkept');
  const res = await pending;
  assert.deepEqual(JSON.parse(res.body), { status: 200, text: 'kept' });
  assert.equal(gateway.stats.asyncDropped, droppedBefore + 1);
  assert.equal(gateway.stats.asyncReplies, repliesBefore);

  // An error with no response handler is counted and logged, never thrown.
  const errorsBefore = gateway.stats.asyncErrors;
  const r = await get(`/app/send?tag=s-drop-error&handler=0&path=${q('/none/y')}`);
  assert.equal(r.status, 202);
  const warn = await logLine((l) => l.msg === 'async call failed (no response handler)' && l.path === '/none/y');
  assert.equal(warn.route, 'GET /app/send');
  assert.equal(gateway.stats.asyncErrors, errorsBefore + 1);
  assert.equal(poolFor(RAW).pending, 0);
  assert.deepEqual(rejections, []);
});

// ---- the outer client going away -------------------------------------------------------------

test('an outer client that disconnects aborts the inner call and the service task (probe route)', async () => {
  const pool = poolFor(PROBES);
  const client = await RawClient.open(port);
  const inner = `/t/hold-long?tag=outer-gone`;
  client.write(`GET /app/call?tag=outer-gone&path=${q(inner)} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
  const started = await probes.waitFor(isProbe('started', 'outer-gone'));
  assert.equal(pool.pending, 1);
  client.destroy();
  const aborted = await probes.waitFor(isProbe('aborted', 'outer-gone'));
  // The same task (the inner request's CONN_ID) saw its abort signal.
  assert.equal(aborted.connId, started.connId);
  assert.equal(aborted.aborted, true);
  const e = await appEvent('settled', settled, (s) => s.tag === 'outer-gone');
  assert.equal(e.code, 'M2G_ERR_CALL_ABORTED');
  assert.equal(pool.pending, 0);
  // The service never answered it: its per-request log has no line for that id.
  const next = await get(`/app/call?tag=after-abort&path=${q('/t/hello')}`);
  assert.deepEqual(JSON.parse(next.body), { status: 200, text: 'hello' });
  assert.equal(probes.filter((l) => l.msg === 'request' && l.connId === started.connId).length, 0);
  assert.deepEqual(rejections, []);
});

test('an outer client that disconnects aborts ctx.call("/svc/slow?ms=30000") and the demo slow task', async () => {
  const pool = poolFor(SVC);
  const client = await RawClient.open(port);
  client.write(`GET /app/call?tag=slow-gone&path=${q('/svc/slow?ms=30000&data=never')} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
  await appEvent<{ tag: string }>('calling', [], (e) => e.tag === 'slow-gone');
  assert.equal(pool.pending, 1);
  client.destroy();
  const e = await appEvent('settled', settled, (s) => s.tag === 'slow-gone');
  assert.equal(e.code, 'M2G_ERR_CALL_ABORTED');
  assert.equal(pool.pending, 0);
  // A later request on the same PUSH → PULL link: once it is answered, the
  // service has read the disconnect notice sent before it.
  const later = await get(`/app/call?tag=after-slow&path=${q('/svc/hello')}`);
  assert.deepEqual(JSON.parse(later.body), { status: 200, text: 'hello' });
  // The demo slow route rejects on its abort signal; the service counts the
  // disconnect it got (stats.aborted) and sends nothing (replied stays at the
  // count of answered requests). SIGTERM drains at once: nothing is in flight.
  await svc.stop();
  const answered = svc.filter((l) => l.msg === 'request').length;
  const stopped = svc.filter(isMsg('service stopped'))[0];
  assert.ok(stopped, 'the service logs its final stats');
  assert.equal(stopped.drained, true);
  const stats = stopped.stats as { aborted: number; replied: number; received: number };
  assert.equal(stats.aborted, 1);
  assert.equal(stats.replied, answered);
  assert.equal(stats.received, answered + 1);
  assert.deepEqual(rejections, []);
});

// ---- shutdown (last: it closes the gateway) -------------------------------------------------

test('close() settles the ctx.send calls still waiting: onReply gets M2G_ERR_CALL_ABORTED, the handler its disconnect notice', async () => {
  const pool = poolFor(RAW);
  const r = await get(`/app/send?tag=s-at-close&path=${q('/raw/pending-at-close')}`);
  assert.equal(r.status, 202);
  const pending = await raw.next('the send request');
  assert.equal(pool.pending, 1);
  // The handler timeout is the default 30 s: without the shutdown abort the
  // call would keep its timer (and the process) that long, and onReply would
  // run after the gateway had stopped.
  assert.equal(await gateway.close(), true);
  const e = await appEvent('onReply', onReplies, (x) => x.tag === 's-at-close');
  assert.equal(e.err?.code, 'M2G_ERR_CALL_ABORTED');
  const notice = await raw.notice('the disconnect notice');
  assert.equal(notice.msg.kind, 'disconnect');
  assert.equal(notice.msg.connId, pending.msg.connId);
  assert.equal(pool.pending, 0);
  assert.equal(onReplies.filter((x) => x.tag === 's-at-close').length, 1);
});

test('no unhandled promise rejection happened in the gateway process', () => {
  assert.deepEqual(rejections, []);
});
