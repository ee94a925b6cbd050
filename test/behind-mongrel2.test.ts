// The gateway behind the real Mongrel2 1.12.2, as one of its handlers
// (DESIGN.md topology 3): HTTP → Mongrel2 (route '/' → a Handler whose
// send_spec/recv_spec the gateway connects to) → the gateway's own route table:
// app routes (test/fixtures/apps/call-app.mjs), handler pools (a real
// `m2gate service` with the probe routes on /t/ and the demo routes on /svc/, a
// fake handler on /raw/) and a Dir. Mongrel2 binds; the gateway connects.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import { mkdirSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { pino } from 'pino';
import { Agent, request } from 'undici';
import { Gateway } from '../gateway/gateway.js';
import type { HandlerTarget } from '../gateway/handler/index.js';
import { findServer, parseConfig } from '../protocol/mongrel2-conf.js';
import { confText, fakeHandler, handlerConf, tempTree, RawClient, type FakeHandler, type RawResponse } from './helpers/gateway.js';
import { ipcEndpoint, startMongrel2 } from './helpers/mongrel2.js';
import { fixtureRoutes, isProbe, spawnService, stopAll, ROOT, type LogLine } from './helpers/service.js';

const rejections: unknown[] = [];
process.on('unhandledRejection', (reason) => rejections.push(reason));

// ---- the gateway's log (debug: one line per Mongrel2 connection bridged) -------------------

const logLines: LogLine[] = [];
const logged = new EventEmitter();
const logger = pino({ level: 'debug' }, {
  write(text: string) {
    const line = JSON.parse(text) as LogLine;
    logLines.push(line);
    logged.emit('line', line);
  },
});

/** Mongrel2's CONN_IDs of the connections the adapter bridged from log index `from` on. */
const bridgedIds = (from: number): number[] => logLines.slice(from).filter((l) => l.msg === 'Mongrel2 connection bridged').map((l) => l.connId as number);

// ---- Mongrel2, then the gateway as its handler ----------------------------------------------

const M2_IDENT = '0a1b2c3d-0000-4000-8000-0000behindm2f';
const m2Send = ipcEndpoint('m2-send');
const m2Recv = ipcEndpoint('m2-recv');
const m2 = await startMongrel2({ handlers: [{ route: '/', sendSpec: m2Send, sendIdent: M2_IDENT, recvSpec: m2Recv }] });
const m2Base = `http://127.0.0.1:${m2.port}`;

const SVC = handlerConf('/svc/', '0a1b2c3d-0000-4000-8000-0000behindsvc');
const PROBES = handlerConf('/t/', '0a1b2c3d-0000-4000-8000-0000behindprb');
const RAW = handlerConf('/raw/', '0a1b2c3d-0000-4000-8000-0000behindraw');
const dir = tempTree();
mkdirSync(join(dir, 'static'));
writeFileSync(join(dir, 'static', 'index.html'), 'static page\n');
const config = parseConfig(
  confText({ handlers: [SVC, PROBES, RAW], routes: [`'/static/': Dir(base='static/', index_file='index.html', default_ctype='text/plain')`] }),
  join(dir, 'mongrel2.conf'),
);
const app = (await import(pathToFileURL(join(ROOT, 'test/fixtures/apps/call-app.mjs')).href)) as { default: unknown };
const gateway = new Gateway({
  config,
  server: findServer(config),
  cwd: dir,
  logger,
  app: app.default,
  mongrel2: { sendSpec: m2Send, recvSpec: m2Recv },
});
assert.equal(await gateway.start(), 0, 'behind Mongrel2 the gateway listens on no HTTP port');

function poolFor(h: { sendSpec: string }): HandlerTarget {
  const pool = gateway.pools.find((p) => p.config.sendSpec === h.sendSpec);
  if (!pool) throw new Error(`no pool for ${h.sendSpec}`);
  return pool;
}
const svc = spawnService(['--send', SVC.sendSpec, '--recv', SVC.recvSpec, '--workers', '1']);
const probes = spawnService([fixtureRoutes('probes.mjs'), '--send', PROBES.sendSpec, '--recv', PROBES.recvSpec, '--workers', '2']);
await Promise.all([svc.ready(), probes.ready(), poolFor(SVC).whenPeer(), poolFor(PROBES).whenPeer()]);
const raw: FakeHandler = await fakeHandler(RAW, poolFor(RAW));
const agent = new Agent({ keepAliveTimeout: 500, keepAliveMaxTimeout: 500 });

after(async () => {
  try {
    raw.stop();
    await agent.close();
    await gateway.close();
  } finally {
    // A Mongrel2 left running would keep the test process alive.
    await m2.stop();
    m2.cleanup();
    await stopAll();
  }
});

async function get(path: string): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  const res = await request(`${m2Base}${path}`, { dispatcher: agent });
  return { status: res.statusCode, headers: res.headers, body: await res.body.text() };
}

const q = encodeURIComponent;

/** One request on a fresh raw connection to Mongrel2: the response, then whether the connection ended. */
async function once(text: string): Promise<{ res: RawResponse; client: RawClient }> {
  const client = await RawClient.open(m2.port);
  client.write(text);
  return { res: await client.response(), client };
}

// ---- serving through Mongrel2 ----------------------------------------------------------------

test('through Mongrel2: an app route (with ctx.call), handler-pool routes and a Dir route', async () => {
  const echo = await get('/app/echo/via-mongrel2');
  assert.equal(echo.status, 200);
  assert.deepEqual(JSON.parse(echo.body), { token: 'via-mongrel2', echoed: 'via-mongrel2', status: 200 });

  const svcHello = await get('/svc/hello');
  assert.equal(svcHello.status, 200);
  assert.equal(svcHello.body, 'hello');
  const slow = await get('/svc/slow?ms=0&data=handler%20pool');
  assert.deepEqual(JSON.parse(slow.body), { data: 'handler pool' });
  const probe = await get('/t/items/42');
  assert.deepEqual(JSON.parse(probe.body), { id: '42' });

  const page = await get('/static/index.html');
  assert.equal(page.status, 200);
  assert.equal(page.body, 'static page\n');
  assert.match(String(page.headers['content-type']), /^text\/html/);
  const index = await get('/static/');
  assert.equal(index.body, 'static page\n');

  // The gateway's own 404 for a path no route serves, still through Mongrel2.
  const missing = await get('/no/such/route');
  assert.equal(missing.status, 404);

  assert.ok((gateway.adapter?.stats.requests ?? 0) >= 7);
  assert.equal(gateway.adapter?.stats.malformed, 0);
});

test('through Mongrel2: keep-alive requests share one connection; HTTP/1.0 and Connection: close end it after the response', async () => {
  // HTTP/1.1 keep-alive: two requests, one connection, still open afterwards.
  const kept = await RawClient.open(m2.port);
  kept.write('GET /app/echo/k1 HTTP/1.1\r\nHost: localhost\r\n\r\n');
  const k1 = await kept.response();
  kept.write('GET /static/index.html HTTP/1.1\r\nHost: localhost\r\n\r\n');
  const k2 = await kept.response();
  assert.deepEqual(JSON.parse(k1.body.toString()), { token: 'k1', echoed: 'k1', status: 200 });
  assert.equal(k2.body.toString(), 'static page\n');
  assert.equal(kept.ended, false);
  kept.destroy();

  // HTTP/1.0 with Connection: keep-alive: kept, and every answer says so (else the client closes).
  const kept10 = await RawClient.open(m2.port);
  for (const path of ['/app/echo/k10', '/svc/hello', '/static/index.html']) {
    kept10.write(`GET ${path} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n`);
    const r = await kept10.response();
    assert.equal(r.status, 200, path);
    assert.equal(r.headers.connection, 'keep-alive', path);
  }
  assert.equal(kept10.ended, false);
  kept10.destroy();

  const requests = [
    { name: 'app route, HTTP/1.0', text: 'GET /app/echo/h10 HTTP/1.0\r\n\r\n', body: JSON.stringify({ token: 'h10', echoed: 'h10', status: 200 }) },
    { name: 'app route, Connection: close', text: 'GET /app/echo/cc HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n', body: JSON.stringify({ token: 'cc', echoed: 'cc', status: 200 }) },
    { name: 'handler pool, HTTP/1.0', text: 'GET /svc/hello HTTP/1.0\r\n\r\n', body: 'hello' },
    { name: 'handler pool, Connection: close', text: 'GET /t/hello HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n', body: 'hello' },
    { name: 'Dir, HTTP/1.0', text: 'GET /static/index.html HTTP/1.0\r\n\r\n', body: 'static page\n' },
    { name: 'Dir, Connection: close', text: 'GET /static/index.html HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n', body: 'static page\n' },
  ];
  for (const r of requests) {
    const { res, client } = await once(r.text);
    assert.equal(res.status, 200, r.name);
    assert.equal(res.body.toString(), r.body, r.name);
    // The connection ends after the response, with nothing more on it (§4.4: the
    // gateway's close message is what makes Mongrel2 close).
    const rest = await client.end();
    assert.equal(rest.length, 0, r.name);
    client.destroy();
  }
});

test('through Mongrel2: pipelined requests on one connection are answered in order', async () => {
  // Mongrel2 forwards pipelined requests at once with one CONN_ID (§4.4); they
  // reach node:http on the same bridged connection, which answers them in order.
  const c = await RawClient.open(m2.port);
  c.write('GET /app/echo/p1 HTTP/1.1\r\nHost: localhost\r\n\r\nGET /svc/hello HTTP/1.1\r\nHost: localhost\r\n\r\nGET /static/index.html HTTP/1.1\r\nHost: localhost\r\n\r\n');
  const [a, b, d] = [await c.response(), await c.response(), await c.response()];
  assert.deepEqual(JSON.parse(a.body.toString()), { token: 'p1', echoed: 'p1', status: 200 });
  assert.equal(b.body.toString(), 'hello');
  assert.equal(d.body.toString(), 'static page\n');
  c.destroy();
});

test("a client that leaves through Mongrel2 aborts the service task: handler-pool route and an app route's ctx.call", async () => {
  const pool = poolFor(PROBES);
  const disconnectsBefore = gateway.adapter?.stats.disconnects ?? 0;
  const direct = await RawClient.open(m2.port);
  direct.write('GET /t/hold-long?tag=m2-gone-direct HTTP/1.1\r\nHost: localhost\r\n\r\n');
  const directStarted = await probes.waitFor(isProbe('started', 'm2-gone-direct'));
  const viaApp = await RawClient.open(m2.port);
  viaApp.write(`GET /app/call?tag=m2-gone-app&path=${q('/t/hold-long?tag=m2-gone-app')} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
  const appStarted = await probes.waitFor(isProbe('started', 'm2-gone-app'));
  assert.equal(pool.pending, 2);
  // Mongrel2 tells its handler (the gateway) about each client that left (§3.6);
  // the gateway passes it on to the service behind it.
  direct.destroy();
  viaApp.destroy();
  assert.equal((await probes.waitFor(isProbe('aborted', 'm2-gone-direct'))).connId, directStarted.connId);
  assert.equal((await probes.waitFor(isProbe('aborted', 'm2-gone-app'))).connId, appStarted.connId);
  assert.equal(pool.pending, 0);
  // (Notices for clients of earlier tests may still be on their way: at least these two.)
  assert.ok((gateway.adapter?.stats.disconnects ?? 0) >= disconnectsBefore + 2);
});

// ---- Mongrel2 restarting under the gateway ---------------------------------------------------

test('Mongrel2 restarts: in-flight work is cut and aborted, the gateway reconnects by itself, recycled ids get their own answers', async () => {
  const rawPool = poolFor(RAW);
  const probesPool = poolFor(PROBES);
  const from = logLines.length;

  // Before the restart: one request held by a real service (probe route), one
  // held by an app route's ctx.call, one held by the fake handler.
  const old = await RawClient.open(m2.port);
  old.write('GET /raw/old HTTP/1.1\r\nHost: localhost\r\n\r\n');
  const oldReq = await raw.next('the pre-restart request');
  assert.equal(oldReq.msg.path, '/raw/old');
  const held = await RawClient.open(m2.port);
  held.write('GET /t/hold-long?tag=held-before-restart HTTP/1.1\r\nHost: localhost\r\n\r\n');
  const heldStarted = await probes.waitFor(isProbe('started', 'held-before-restart'));
  const appHeld = await RawClient.open(m2.port);
  appHeld.write(`GET /app/call?tag=app-before-restart&path=${q('/t/hold-long?tag=app-before-restart')} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
  const appStarted = await probes.waitFor(isProbe('started', 'app-before-restart'));
  const idsBefore = bridgedIds(from);
  assert.equal(idsBefore.length, 3);

  await m2.restart();

  // Mongrel2 went away with its clients: they see the connection end with no response.
  for (const c of [held, appHeld, old]) {
    assert.equal((await c.end()).length, 0);
    c.destroy();
  }
  // The gateway cut the bridged connections, so the work behind them is aborted:
  // the services get the disconnect notice (§3.6) and abort the tasks.
  const heldAborted = await probes.waitFor(isProbe('aborted', 'held-before-restart'));
  assert.equal(heldAborted.connId, heldStarted.connId);
  const appAborted = await probes.waitFor(isProbe('aborted', 'app-before-restart'));
  assert.equal(appAborted.connId, appStarted.connId);
  const notice = await raw.notice('the disconnect notice for the pre-restart request');
  assert.equal(notice.msg.kind, 'disconnect');
  assert.equal(notice.msg.connId, oldReq.msg.connId);
  assert.equal(probesPool.pending, 0);
  assert.equal(rawPool.pending, 0);
  assert.ok((gateway.adapter?.stats.reset ?? 0) >= 3);

  // After the restart (no action from the test: the gateway reconnects by
  // itself), Mongrel2 numbers connections from 1 again (§3.1): connections
  // answered by the Dir route use up the ids below the old request's, then a
  // new connection gets exactly the id the old request had.
  const oldM2Id = idsBefore[0]!;
  let lastId = 0;
  while (lastId + 1 < oldM2Id) {
    const mark = logLines.length;
    const { res, client } = await once('GET /static/index.html HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
    assert.equal(res.body.toString(), 'static page\n');
    client.destroy();
    const ids = bridgedIds(mark);
    assert.equal(ids.length, 1);
    assert.ok(ids[0]! > lastId && ids[0]! < oldM2Id, `Mongrel2 numbers from 1 again after a restart (got ${ids[0]}, old request had ${oldM2Id})`);
    lastId = ids[0]!;
  }
  const afterFrom = logLines.length;
  const fresh = await RawClient.open(m2.port);
  fresh.write('GET /raw/new HTTP/1.1\r\nHost: localhost\r\n\r\n');
  const newReq = await raw.next('the post-restart request');
  assert.equal(newReq.msg.path, '/raw/new');
  assert.notEqual(newReq.msg.connId, oldReq.msg.connId, 'the gateway never reuses its own CONN_IDs');
  assert.deepEqual(bridgedIds(afterFrom), [oldM2Id], 'the new connection has the recycled Mongrel2 id');
  // The fake handler ignores the disconnect notice and answers the old request
  // late, then the new one: the late answer goes nowhere, the new client gets its own.
  const unknownBefore = rawPool.stats.unknownIds;
  await raw.reply(oldReq.msg.connId, 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nOLD');
  await raw.reply(newReq.msg.connId, 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nNEW');
  const got = await fresh.response();
  assert.equal(got.body.toString(), 'NEW');
  assert.equal(rawPool.stats.unknownIds, unknownBefore + 1);
  fresh.write('GET /t/hello HTTP/1.1\r\nHost: localhost\r\n\r\n');
  assert.equal((await fresh.response()).body.toString(), 'hello');
  assert.equal(fresh.rest().length, 0, 'nothing else reached the new connection');
  fresh.destroy();

  // Every kind of route serves again, each request its own answer.
  const answers = await Promise.all(['a', 'b', 'c'].map((t) => get(`/app/echo/after-${t}`)));
  assert.deepEqual(
    answers.map((a) => JSON.parse(a.body) as unknown),
    ['a', 'b', 'c'].map((t) => ({ token: `after-${t}`, echoed: `after-${t}`, status: 200 })),
  );
  assert.equal((await get('/svc/hello')).body, 'hello');
  assert.equal((await get('/static/index.html')).body, 'static page\n');
  assert.deepEqual(rejections, []);
});
