// The service's end of the m2gate link (workers/link-front.ts inside workers/service.ts), run in
// this process against a ROUTER the test drives by hand: what the service sends (READY, REPLY
// and CREDIT with their credit, HEARTBEAT, BYE), and what it does when the gateway goes away.
// The routes (test/fixtures/routes/link-probes.mjs) report "started" and "aborted" on a
// BroadcastChannel, so abandoned work is awaited as an event.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pathToFileURL } from 'node:url';
import { Service } from '../workers/service.js';
import { encodeDisconnect, encodeRequest } from '../protocol/m2-request.js';
import { parseReply } from '../protocol/m2-reply.js';
import type { LinkMessage } from '../protocol/link-frames.js';
import { logCapture, type LogCapture } from './helpers/gateway.js';
import { fixtureRoutes, parseHttp } from './helpers/service.js';
import { FakeRouter, linkProbes, until, type FromPeer } from './helpers/link.js';

const ROUTES = pathToFileURL(fixtureRoutes('link-probes.mjs')).href;
const SENDER = '6c1f0e2a-0000-4000-8000-0000000front';
const NAME = 'svc-under-test';

const { release, probe } = linkProbes();

type T = { after(fn: () => unknown): void };

async function start(t: T, options: { credit?: number; heartbeatMs?: number; liveness?: number } = {}): Promise<{ router: FakeRouter; svc: Service; log: LogCapture }> {
  const router = await FakeRouter.bind();
  const log = logCapture();
  const svc = new Service({
    connect: router.spec,
    routesModule: ROUTES,
    workers: 1,
    credit: options.credit ?? 3,
    heartbeatMs: options.heartbeatMs ?? 60_000,
    liveness: options.liveness ?? 3,
    senderId: NAME,
    drainTimeoutMs: 5000,
    logger: log.logger,
  });
  await svc.start();
  t.after(async () => {
    await svc.close();
    router.close();
  });
  return { router, svc, log };
}

/**
 * Waits for the service's READY and answers it, as a gateway does. `answeredAt` is taken before
 * the answer is sent: the service last heard the gateway no earlier than that.
 */
async function register(router: FakeRouter, log: LogCapture, from = 0): Promise<FromPeer & { answeredAt: number }> {
  const ready = await router.next('READY', 'READY', from);
  const logFrom = log.lines.length;
  const answeredAt = Date.now();
  await router.send(ready.id, { command: 'HEARTBEAT' });
  await log.waitFor((l) => l.msg === 'connected to the gateway', 'connected to the gateway', logFrom);
  return { ...ready, answeredAt };
}

function request(connId: number, path: string, init: { method?: string; version?: string; query?: string; headers?: Record<string, string> } = {}): Buffer {
  const headers: Record<string, string> = {
    PATH: path,
    METHOD: init.method ?? 'GET',
    VERSION: init.version ?? 'HTTP/1.1',
    URI: init.query ? `${path}?${init.query}` : path,
    ...(init.query ? { QUERY: init.query } : {}),
    PATTERN: '/',
    host: 'localhost',
    ...init.headers,
  };
  return encodeRequest({ sender: SENDER, connId, path, headers, body: '' }, 'json');
}

/** Credit the service has returned (REPLY and CREDIT) in `messages`. */
function creditBack(messages: readonly FromPeer[]): number {
  let n = 0;
  for (const m of messages) if (m.msg?.command === 'REPLY' || m.msg?.command === 'CREDIT') n += m.msg.credit;
  return n;
}

/** The REPLYs for `connId`: HTTP status (0 for the close message) and the credit each carried. */
function repliesFor(messages: readonly FromPeer[], connId: number): Array<{ status: number; credit: number }> {
  const out: Array<{ status: number; credit: number }> = [];
  for (const m of messages) {
    if (m.msg?.command !== 'REPLY') continue;
    const reply = parseReply(m.msg.message);
    if (!reply.ids.includes(connId)) continue;
    assert.equal(reply.sender, SENDER, 'the reply is addressed to the request sender (§4.1)');
    out.push({ status: reply.body.length === 0 ? 0 : parseHttp(reply.body).status, credit: m.msg.credit });
  }
  return out;
}

const is =
  (command: LinkMessage['command']) =>
  (m: FromPeer): boolean =>
    m.msg?.command === command;

test('the service announces itself with READY (credit, threads, name) and counts as connected only once answered', async (t) => {
  const { router, svc, log } = await start(t, { credit: 3 });
  const ready = await router.next('READY', 'READY');
  assert.deepEqual(
    ready.frames.map((f) => f.toString()),
    [`M2GL1 READY 3 1 ${NAME}`],
  );
  assert.equal(router.inbox.items.length, 1, 'nothing before READY');
  assert.equal(log.lines.filter((l) => l.msg === 'connected to the gateway').length, 0);
  await router.send(ready.id, { command: 'HEARTBEAT' });
  const connected = await log.waitFor((l) => l.msg === 'connected to the gateway', 'connected to the gateway');
  assert.equal(connected.credit, 3);
  const r2 = await FakeRouter.bind();
  t.after(() => r2.close());
  const other = new Service({ connect: r2.spec, routesModule: ROUTES, workers: 2, logger: logCapture().logger });
  await other.start();
  t.after(() => other.close());
  const ready2 = await r2.next('READY', 'READY with default credit');
  // The default credit is the threads plus a small queue (protocol/m2gate-link.md, "Credit").
  const announced = ready2.msg as { command: string; credit: number; threads: number };
  assert.equal(announced.threads, 2);
  assert.ok(announced.credit > announced.threads, `default credit ${announced.credit} for 2 threads`);
  assert.equal(svc.inFlight, 0);
});

test('every REQUEST returns exactly one credit: replies, 404, 405, malformed, ignored, abandoned and dropped pipelined requests', async (t) => {
  const { router, svc, log } = await start(t, { credit: 20 });
  const { id } = await register(router, log);
  const send = (message: Buffer): Promise<void> => router.send(id, { command: 'REQUEST', message });

  await send(request(1, '/l/hello'));
  await send(request(2, '/nope'));
  await send(request(3, '/l/hello', { method: 'POST' }));
  // The start of an upload (§3.4) to a service without --upload-store is refused at once, with
  // the close (the front then stops writing its file): 413 carrying its credit, the close none.
  await send(request(10, '/l/hello', { headers: { 'x-mongrel2-upload-start': '/tmp/upload' } }));
  await send(Buffer.from('not a mongrel2 message'));
  await send(encodeRequest({ sender: SENDER, connId: 5, path: '@*', headers: { METHOD: 'JSON' }, body: '{"type":"credits"}' }, 'json'));
  await send(request(6, '/l/hello', { version: 'HTTP/1.0' }));
  // Abandoned: held, then the client goes away. The DISCONNECT itself uses no credit.
  await send(request(7, '/l/hold', { query: 'tag=abandoned' }));
  await probe('started', 'abandoned');
  await router.send(id, { command: 'DISCONNECT', message: encodeDisconnect(SENDER, 7, 'json') });
  await probe('aborted', 'abandoned');
  // Pipelined on one connection: the first asks to close it, so the second can never be answered.
  await send(request(8, '/l/hold', { query: 'tag=first', headers: { connection: 'close' } }));
  await send(request(8, '/l/hello'));
  await probe('started', 'first');
  release('first');
  const requests = 10;

  await router.inbox.when(() => (creditBack(router.inbox.items) >= requests ? true : undefined), `${requests} credits back`);
  // A barrier: one more request; its REPLY comes after any stray credit for the earlier ones.
  await send(request(9, '/l/hello'));
  await router.inbox.when(() => (repliesFor(router.inbox.items, 9).length > 0 ? true : undefined), 'the reply to the barrier request');
  assert.equal(creditBack(router.inbox.items), requests + 1, 'one credit per REQUEST, no more');

  assert.deepEqual(repliesFor(router.inbox.items, 1), [{ status: 200, credit: 1 }]);
  assert.deepEqual(repliesFor(router.inbox.items, 2), [{ status: 404, credit: 1 }]);
  assert.deepEqual(repliesFor(router.inbox.items, 3), [{ status: 405, credit: 1 }]);
  // HTTP/1.0: the reply carries the credit, the close message that follows carries none (§4.3).
  assert.deepEqual(repliesFor(router.inbox.items, 6), [
    { status: 200, credit: 1 },
    { status: 0, credit: 0 },
  ]);
  assert.deepEqual(repliesFor(router.inbox.items, 7), [], 'nothing is sent for an abandoned request');
  assert.deepEqual(
    repliesFor(router.inbox.items, 8).map((r) => r.status),
    [200, 0],
  );
  assert.deepEqual(repliesFor(router.inbox.items, 10), [
    { status: 413, credit: 1 },
    { status: 0, credit: 0 },
  ]);
  // Malformed, ignored, abandoned and the dropped pipelined request came back as CREDIT.
  assert.equal(
    router.inbox.items.filter(is('CREDIT')).reduce((n, m) => n + (m.msg as { credit: number }).credit, 0),
    4,
  );
  assert.equal(svc.stats.malformed, 1);
  assert.equal(svc.stats.ignored, 1);
  assert.equal(svc.stats.aborted, 1);
  assert.equal(svc.inFlight, 0);
});

test('malformed link messages from the gateway are dropped and the service keeps serving', async (t) => {
  const { router, log } = await start(t);
  const { id } = await register(router, log);
  await router.sendRaw(id, [Buffer.from('M2GL2'), Buffer.from('REQUEST'), request(1, '/l/hello')]);
  await router.sendRaw(id, [Buffer.from('M2GL1 REQUEST')]);
  await router.send(id, { command: 'READY', credit: 1, threads: 1, name: 'a gateway confused' });
  await router.send(id, { command: 'REQUEST', message: request(2, '/l/hello') });
  await router.inbox.when(() => (repliesFor(router.inbox.items, 2).length === 1 ? true : undefined), 'the reply to request 2');
  assert.deepEqual(repliesFor(router.inbox.items, 1), []);
  assert.equal(creditBack(router.inbox.items), 1, 'dropped messages used no credit');
  const warned = log.lines.filter((l) => l.level === 40).map((l) => l.msg);
  assert.ok(warned.some((m) => String(m).startsWith('malformed link message dropped')), JSON.stringify(warned));
  assert.ok(warned.includes('a service-only command from the gateway dropped'), JSON.stringify(warned));
  assert.equal(log.lines.filter((l) => l.msg === 'lost the gateway').length, 0);
});

test('BYE from the gateway: held work is abandoned without credit, and the service registers again on a new connection', async (t) => {
  const { router, svc, log } = await start(t, { credit: 2 });
  const first = await register(router, log);
  await router.send(first.id, { command: 'REQUEST', message: request(1, '/l/hold', { query: 'tag=bye' }) });
  await probe('started', 'bye');
  const from = router.inbox.items.length;
  const logFrom = log.lines.length;
  const byeAt = Date.now();
  await router.send(first.id, { command: 'BYE' });
  const lost = await log.waitFor((l) => l.msg === 'lost the gateway', 'lost the gateway', logFrom);
  assert.equal(lost.why, 'the gateway said BYE');
  await probe('aborted', 'bye');
  const again = await register(router, log, from);
  assert.notEqual(again.peer, first.peer, 'a new DEALER, so a new routing id');
  assert.ok(again.at - byeAt >= 90, `READY again after ${again.at - byeAt} ms; the first backoff is 100 ms`);
  assert.deepEqual(again.msg, { command: 'READY', credit: 2, threads: 1, name: NAME });

  // The new registration starts with full credit: the abandoned request's credit is not returned.
  await router.send(again.id, { command: 'REQUEST', message: request(2, '/l/hello') });
  await router.inbox.when(() => (repliesFor(router.inbox.items, 2).length === 1 ? true : undefined), 'the reply on the new connection');
  assert.deepEqual(repliesFor(router.inbox.items, 1), []);
  assert.equal(router.inbox.count(is('CREDIT')), 0);
  assert.ok(router.inbox.items.slice(from).every((m) => m.peer === again.peer), 'nothing more from the old connection');
  assert.equal(svc.inFlight, 0);
});

test('the service heartbeats when idle, and a gateway silent for liveness intervals is lost', async (t) => {
  const { router, log } = await start(t, { heartbeatMs: 50, liveness: 3 });
  const first = await register(router, log);
  const heardAt = first.answeredAt;
  const from = router.inbox.items.length;
  const logFrom = log.lines.length;
  // Silent gateway: heartbeats from the service, then it gives up and starts over.
  const lost = await log.waitFor((l) => l.msg === 'lost the gateway', 'lost the gateway', logFrom);
  assert.equal(lost.why, 'heartbeats missed');
  assert.ok(Number(lost.time) - heardAt >= 150, `lost after ${Number(lost.time) - heardAt} ms; liveness is 3 × 50 ms`);
  const beats = router.inbox.items.filter((m) => m.peer === first.peer && m.msg?.command === 'HEARTBEAT');
  assert.ok(beats.length >= 2, `${beats.length} HEARTBEATs while idle`);
  const again = await register(router, log, from);
  assert.notEqual(again.peer, first.peer);

  // A gateway that keeps talking keeps the service: six of its heartbeat intervals pass
  // (twice the liveness) with no second loss.
  const keepAlive = setInterval(() => void router.send(again.id, { command: 'HEARTBEAT' }).catch(() => {}), 20);
  t.after(() => clearInterval(keepAlive));
  const beatsFrom = router.inbox.items.length;
  await router.inbox.when(() => (router.inbox.count((m) => m.peer === again.peer && m.msg?.command === 'HEARTBEAT', beatsFrom) >= 6 ? true : undefined), 'six more HEARTBEATs');
  clearInterval(keepAlive);
  assert.equal(log.lines.filter((l) => l.msg === 'lost the gateway').length, 1);
});

test('stopping says BYE first, still sends the replies of held requests, and serves REQUESTs sent before the gateway saw BYE', async (t) => {
  const { router, svc, log } = await start(t);
  const { id } = await register(router, log);
  await router.send(id, { command: 'REQUEST', message: request(1, '/l/hold', { query: 'tag=drain' }) });
  await probe('started', 'drain');
  const closed = svc.close();
  const bye = await router.next('BYE', 'BYE from the stopping service');
  // A REQUEST the gateway sent before it saw the BYE.
  await router.send(id, { command: 'REQUEST', message: request(2, '/l/hello') });
  await until(() => (svc.stats.received === 2 ? true : undefined), 'the late REQUEST received');
  release('drain');
  assert.equal(await closed, true, 'drained');
  // Served, not refused: the drain was still running (a rolling restart must not turn these into 503s).
  assert.deepEqual(repliesFor(router.inbox.items, 2), [{ status: 200, credit: 1 }]);
  const replies = repliesFor(router.inbox.items, 1);
  assert.deepEqual(replies, [{ status: 200, credit: 1 }]);
  const replyAt = router.inbox.items.findIndex((m) => m.msg?.command === 'REPLY' && parseReply(m.msg.message).ids.includes(1));
  assert.ok(router.inbox.items.indexOf(bye) < replyAt, 'BYE went out before the held reply');
  assert.equal(router.inbox.count(is('READY')), 1, 'a stopping service does not register again');
});
