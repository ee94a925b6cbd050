// The gateway's end of the m2gate link (gateway/handler/link-pool.ts) through the whole in-process
// gateway: HTTP client → node:http → LinkPool (ROUTER) → hand-driven DEALERs speaking
// protocol/m2gate-link.md → reply relay → client. Each test asserts what the services receive
// (frames, counts, order), what the clients see on the wire, and the pool's counters.
//
// "Nothing more arrived" is checked with a barrier, not a pause: the gateway sends a HEARTBEAT
// to a peer it has sent nothing to for one interval, and the link is one ordered pipe per peer,
// so once that HEARTBEAT is in, anything the gateway sent before it is in too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { LinkOptions } from '../gateway/handler/index.js';
import type { RawClient } from './helpers/gateway.js';
import { FakeService, startLinkGateway, until, type LinkRig } from './helpers/link.js';
import { handshakeBytes, WsTestClient } from './helpers/ws-client.js';

/** Short heartbeats so barriers are quick; a liveness no idle fake can outlast in a test. */
const QUIET: LinkOptions = { heartbeatMs: 100, liveness: 1000 };

const ok = (body: string): string => `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
const getReq = (path: string): string => `GET ${path} HTTP/1.1\r\nHost: localhost\r\n\r\n`;
const postReq = (path: string, body: string): string => `POST ${path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${body.length}\r\n\r\n${body}`;

async function rig(t: { after(fn: () => unknown): void }, link: LinkOptions = QUIET, retryAfterSeconds?: number): Promise<LinkRig> {
  const r = await startLinkGateway(retryAfterSeconds === undefined ? { link } : { link, retryAfterSeconds });
  t.after(() => r.close());
  return r;
}

async function service(t: { after(fn: () => unknown): void }, r: LinkRig, credit: number, threads = 1, name = 'fake'): Promise<FakeService> {
  const s = await FakeService.connect(r.spec);
  t.after(() => s.close());
  await s.register(credit, threads, name);
  return s;
}

/** Resolves once the gateway sent `svc` a HEARTBEAT after everything it has received so far. */
async function barrier(svc: FakeService): Promise<void> {
  await svc.inbox.waitFor((g) => g.msg.command === 'HEARTBEAT', 'barrier HEARTBEAT', svc.inbox.items.length);
}

/** Opens a client, sends `raw`, and waits until the pool has taken it (sent or queued). */
async function sendOne(r: LinkRig, raw: string): Promise<RawClient> {
  const before = r.pool.stats.sent;
  const c = await r.client();
  c.write(raw);
  await until(() => (r.pool.stats.sent > before ? true : undefined), `the pool taking ${JSON.stringify(raw.split('\r\n')[0])}`);
  return c;
}

test('a service never holds more REQUESTs than its credit; REPLY and CREDIT return it and drain the queue in order', async (t) => {
  const r = await rig(t);
  const svc = await service(t, r, 2);
  const clients: RawClient[] = [];
  for (let i = 0; i < 5; i++) clients.push(await sendOne(r, getReq(`/svc/${i}`)));
  const [r0, r1] = [await svc.request(), await svc.request()];
  assert.equal(r.pool.queued, 3);
  await barrier(svc);
  assert.equal(svc.count('REQUEST'), 2, 'two credits, two REQUESTs');

  // One credit back with a REPLY: exactly one more.
  await svc.reply(r0.connId, ok('reply 0'), 1);
  const r2 = await svc.request();
  await barrier(svc);
  assert.equal(svc.count('REQUEST'), 3);
  assert.equal(r.pool.queued, 2);

  // Replies that return no credit, then two credits in one CREDIT message: the last two.
  // (Credit never exceeds what READY announced less what the service holds.)
  await svc.reply(r1.connId, ok('reply 1'), 0);
  await svc.reply(r2.connId, ok('reply 2'), 0);
  await svc.send({ command: 'CREDIT', credit: 2 });
  const [r3, r4] = [await svc.request(), await svc.request()];
  await barrier(svc);
  assert.equal(svc.count('REQUEST'), 5);
  assert.equal(r.pool.queued, 0);
  // The queue is FIFO: requests arrive in the order the clients sent them.
  assert.deepEqual([r0, r1, r2, r3, r4].map((q) => q.path), ['/svc/0', '/svc/1', '/svc/2', '/svc/3', '/svc/4']);
  assert.equal(new Set([r0, r1, r2, r3, r4].map((q) => q.connId)).size, 5);
  // The REQUEST carries the Mongrel2 request as PUSH would: the Handler's sender and headers (§3.2).
  assert.equal(r0.sender, r.sendIdent);
  assert.equal(r0.headers.METHOD, 'GET');
  assert.equal(r0.headers.PATTERN, '/svc/');

  for (const [i, q] of [r3, r4].entries()) await svc.reply(q.connId, ok(`reply ${i + 3}`), 1);
  for (const [i, c] of clients.entries()) {
    const res = await c.response();
    assert.equal(res.status, 200);
    assert.equal(res.body.toString(), `reply ${i}`);
  }
  assert.equal(r.pool.pending, 0);
});

test('credit beyond what READY announced is capped and counted: the service never holds more than it said', async (t) => {
  const r = await rig(t);
  const svc = await service(t, r, 1);
  await svc.send({ command: 'CREDIT', credit: 5 });
  const clients: RawClient[] = [];
  for (let i = 0; i < 3; i++) clients.push(await sendOne(r, getReq(`/svc/${i}`)));
  const first = await svc.request();
  await barrier(svc);
  assert.equal(svc.count('REQUEST'), 1, 'announced 1: one REQUEST, however much CREDIT came');
  assert.equal(r.pool.queued, 2);
  assert.ok(r.pool.stats.malformedLink >= 1, 'the excess credit is counted');
  await svc.reply(first.connId, ok('reply 0'), 1);
  const second = await svc.request();
  await svc.reply(second.connId, ok('reply 1'), 1);
  const third = await svc.request();
  await svc.reply(third.connId, ok('reply 2'), 1);
  for (const [i, c] of clients.entries()) assert.equal((await c.response()).body.toString(), `reply ${i}`);
  assert.equal(r.pool.pending, 0);
});

test('with no speed measured yet, a service with a free thread, the least loaded (in flight per thread), gets the next request', async (t) => {
  const r = await rig(t);
  const one = await service(t, r, 10, 1, 'one-thread');
  const two = await service(t, r, 10, 2, 'two-threads');
  const order: string[] = [];
  for (let i = 0; i < 6; i++) {
    await sendOne(r, getReq(`/svc/${i}`));
    await until(() => (one.count('REQUEST') + two.count('REQUEST') === i + 1 ? true : undefined), `request ${i} delivered`);
    order.push(one.requests.some((q) => q.path === `/svc/${i}`) ? 'one' : 'two');
  }
  // Loads before each pick (one/two): 0/0 (tie: the first registered), 1/0, 1/0.5, 1/1 (tie), 2/1, 2/1.5.
  assert.deepEqual(order, ['one', 'two', 'two', 'one', 'two', 'two']);

  // A service without credit is skipped, however lightly loaded.
  const r2 = await rig(t);
  const small = await service(t, r2, 1, 8, 'one-credit');
  const big = await service(t, r2, 10, 1, 'ten-credits');
  for (let i = 0; i < 3; i++) await sendOne(r2, getReq(`/svc/${i}`));
  await until(() => (small.count('REQUEST') + big.count('REQUEST') === 3 ? true : undefined), 'three delivered');
  await barrier(small);
  assert.equal(small.count('REQUEST'), 1);
  assert.equal(big.count('REQUEST'), 2);
});

test('once speeds are measured, a busy fast service is preferred to a busy slow one that holds less', async (t) => {
  const r = await rig(t);
  const fast = await service(t, r, 10, 1, 'fast');
  const slow = await service(t, r, 10, 1, 'slow');
  const delivered = (n: number): Promise<true> => until(() => (fast.count('REQUEST') + slow.count('REQUEST') === n ? true : undefined), `${n} delivered`);
  // Two completions each while every thread is busy give each service a time per completion:
  // fast answers at once, slow only after a heartbeat interval (a barrier, at least 100 ms).
  await sendOne(r, getReq('/svc/0'));
  await sendOne(r, getReq('/svc/1'));
  await delivered(2);
  const [f0, s0] = [await fast.request(), await slow.request()];
  await fast.reply(f0.connId, ok('f0'), 1);
  await sendOne(r, getReq('/svc/2'));
  const f1 = await fast.request();
  await fast.reply(f1.connId, ok('f1'), 1);
  await slow.reply(s0.connId, ok('s0'), 1);
  await sendOne(r, getReq('/svc/3'));
  await sendOne(r, getReq('/svc/4'));
  await delivered(5);
  const [f2, s1] = [await fast.request(), await slow.request()];
  await fast.reply(f2.connId, ok('f2'), 1);
  await barrier(slow);
  await slow.reply(s1.connId, ok('s1'), 1);
  await until(() => (r.pool.pending === 0 ? true : undefined), 'all answered');
  // Both busy (one each), then two more: by load they would alternate; by speed both go to fast.
  await sendOne(r, getReq('/svc/5'));
  await sendOne(r, getReq('/svc/6'));
  await delivered(7);
  const before = { fast: fast.count('REQUEST'), slow: slow.count('REQUEST') };
  await sendOne(r, getReq('/svc/7'));
  await sendOne(r, getReq('/svc/8'));
  await delivered(9);
  assert.deepEqual({ fast: fast.count('REQUEST') - before.fast, slow: slow.count('REQUEST') - before.slow }, { fast: 2, slow: 0 });
});

test('a full queue answers 503 with Retry-After at once; a request that leaves the queue is never sent', async (t) => {
  const r = await rig(t, { ...QUIET, maxQueue: 2, queueTimeoutMs: 10_000 });
  const svc = await service(t, r, 1);
  const c0 = await sendOne(r, getReq('/svc/0'));
  const held = await svc.request();
  const c1 = await sendOne(r, getReq('/svc/1'));
  const gone = await sendOne(r, getReq('/svc/gone'));
  assert.equal(r.pool.queued, 2);
  const c3 = await r.client();
  c3.write(getReq('/svc/3'));
  const rejected = await c3.response();
  assert.equal(rejected.status, 503);
  assert.equal(rejected.headers['retry-after'], '1');
  assert.equal(r.pool.stats.queueRejected, 1);

  // A client that goes away while queued leaves the queue; nobody hears of it.
  gone.destroy();
  await until(() => (r.pool.queued === 1 ? true : undefined), 'the gone request leaving the queue');
  await svc.reply(held.connId, ok('zero'), 1);
  const next = await svc.request();
  assert.equal(next.path, '/svc/1');
  await svc.reply(next.connId, ok('one'), 1);
  await barrier(svc);
  assert.equal(svc.count('REQUEST'), 2, '/svc/gone was never sent');
  assert.equal(svc.count('DISCONNECT'), 0, 'no service held /svc/gone');
  assert.equal((await c0.response()).body.toString(), 'zero');
  assert.equal((await c1.response()).body.toString(), 'one');
});

test('a request that waits for credit longer than the queue timeout gets 503 and is never sent', async (t) => {
  const r = await rig(t, { ...QUIET, queueTimeoutMs: 300 }, 7);
  const svc = await service(t, r, 1);
  const c0 = await sendOne(r, getReq('/svc/0'));
  const held = await svc.request();
  const started = Date.now();
  const c1 = await sendOne(r, getReq('/svc/late'));
  const res = await c1.response();
  const waited = Date.now() - started;
  assert.equal(res.status, 503);
  assert.equal(res.headers['retry-after'], '7');
  assert.ok(waited >= 290, `answered after ${waited} ms, before the 300 ms queue timeout`);
  assert.equal(r.pool.stats.queueRejected, 1);
  assert.equal(r.pool.queued, 0);

  // The credit coming back later must not resurrect the timed-out request.
  await svc.reply(held.connId, ok('zero'), 1);
  assert.equal((await c0.response()).status, 200);
  const c2 = await sendOne(r, getReq('/svc/2'));
  assert.equal((await svc.request()).path, '/svc/2');
  await barrier(svc);
  assert.deepEqual(
    svc.requests.map((q) => q.path),
    ['/svc/0', '/svc/2'],
  );
  c2.destroy();
});

test('a peer that never said READY gets BYE for anything but BYE; malformed messages are counted and dropped', async (t) => {
  const r = await rig(t);
  const stranger = await FakeService.connect(r.spec);
  t.after(() => stranger.close());
  await stranger.send({ command: 'HEARTBEAT' });
  await stranger.inbox.waitFor((g) => g.msg.command === 'BYE', 'BYE for HEARTBEAT');
  await stranger.send({ command: 'CREDIT', credit: 1 });
  await stranger.send({ command: 'REPLY', credit: 1, message: Buffer.from(`${r.sendIdent} 1:1, `) });
  await stranger.send({ command: 'BYE' });
  // READY registers it; the gateway's HEARTBEAT answer comes after any earlier BYE.
  await stranger.register(1);
  assert.equal(stranger.count('BYE'), 3, 'one BYE each for HEARTBEAT, CREDIT and REPLY; none for BYE');
  assert.equal(r.pool.services, 1);

  // Registered: a wrong version tag, a wrong frame count and a gateway-only command are counted, not fatal.
  await stranger.sendRaw([Buffer.from('M2GL2'), Buffer.from('HEARTBEAT')]);
  await stranger.sendRaw([Buffer.from('M2GL1'), Buffer.from('CREDIT')]);
  await stranger.send({ command: 'REQUEST', message: Buffer.from('x') });
  await until(() => (r.pool.stats.malformedLink === 3 ? true : undefined), 'three malformed messages counted');
  const c = await sendOne(r, getReq('/svc/still'));
  const q = await stranger.request();
  await stranger.reply(q.connId, ok('still here'), 1);
  assert.equal((await c.response()).body.toString(), 'still here');
  assert.equal(r.pool.stats.lost, 0);
});

test('READY from a registered peer registers it again: what it held is sent to it again', async (t) => {
  const r = await rig(t);
  const svc = await service(t, r, 1);
  const c0 = await sendOne(r, getReq('/svc/0'));
  const first = await svc.request();
  const lostAt = r.log.lines.length;
  await svc.register(2, 1, 'again');
  const lost = await r.log.waitFor((l) => l.msg === 'handler lost', 'handler lost', lostAt);
  assert.equal(lost.why, 'registered again');
  assert.equal(lost.retried, 1);
  assert.equal(lost.failed, 0);
  const again = await svc.request('the held request, again');
  assert.equal(again.connId, first.connId);
  // The new READY's credit (2) counts from zero: one for the resent request, one free.
  const c1 = await sendOne(r, getReq('/svc/1'));
  const second = await svc.request();
  assert.equal(second.path, '/svc/1');
  await svc.reply(first.connId, ok('zero'), 1);
  await svc.reply(second.connId, ok('one'), 1);
  assert.equal((await c0.response()).body.toString(), 'zero');
  assert.equal((await c1.response()).body.toString(), 'one');
  assert.equal(r.pool.stats.registered, 2);
  assert.equal(r.pool.stats.retried, 1);
  assert.equal(r.pool.services, 1);
  const connected = r.log.lines.filter((l) => l.msg === 'handler connected');
  assert.deepEqual(
    connected.map((l) => [l.service, l.credit]),
    [
      ['fake', 1],
      ['again', 2],
    ],
  );
});

test("a REPLY for a request another service holds is dropped, counted and answered with DISCONNECT to its sender; the holder's reply gets through", async (t) => {
  const r = await rig(t);
  const a = await service(t, r, 1, 1, 'a');
  const b = await service(t, r, 1, 1, 'b');
  const ca = await sendOne(r, getReq('/svc/a'));
  const cb = await sendOne(r, getReq('/svc/b'));
  const qa = await a.request();
  const qb = await b.request();
  assert.equal(qa.path, '/svc/a');
  await b.reply(qa.connId, ok('forged by b'), 0);
  await until(() => (r.pool.stats.unknownIds === 1 ? true : undefined), 'the foreign reply counted');
  await a.reply(qa.connId, ok('from a'), 1);
  await b.reply(qb.connId, ok('from b'), 1);
  // Had the forged reply reached the client it would be the first response on the connection.
  assert.equal((await ca.response()).body.toString(), 'from a');
  assert.equal((await cb.response()).body.toString(), 'from b');
  assert.equal(r.pool.stats.unknownIds, 1);
  // The forger, and only it, hears that the id it named is not one of its own (§4.6).
  const notice = await b.inbox.waitFor((g) => g.msg.command === 'DISCONNECT', 'DISCONNECT to the forger');
  assert.equal(notice.req!.connId, qa.connId);
  assert.equal(notice.req!.body.toString(), '{"type":"disconnect"}');
  await barrier(a);
  assert.equal(a.count('DISCONNECT'), 0);
});

test('a client that goes away: only the service holding its request gets DISCONNECT, which uses no credit', async (t) => {
  const r = await rig(t);
  const a = await service(t, r, 1, 1, 'a');
  const b = await service(t, r, 2, 1, 'b');
  const ca = await sendOne(r, getReq('/svc/a'));
  await sendOne(r, getReq('/svc/b'));
  const qa = await a.request();
  assert.equal(qa.path, '/svc/a');
  await b.request();
  ca.destroy();
  const notice = await a.inbox.waitFor((g) => g.msg.command === 'DISCONNECT', 'DISCONNECT');
  assert.equal(notice.req!.kind, 'disconnect');
  assert.equal(notice.req!.connId, qa.connId);
  assert.equal(notice.req!.sender, r.sendIdent);
  assert.equal(notice.req!.body.toString(), '{"type":"disconnect"}');
  // a has no credit left (the DISCONNECT gave none back): the next request goes to b, and b's
  // next message is that REQUEST, not a DISCONNECT.
  await sendOne(r, getReq('/svc/next'));
  const next = await b.request();
  assert.equal(next.path, '/svc/next');
  assert.equal(b.count('DISCONNECT'), 0);
  await barrier(a);
  assert.equal(a.count('DISCONNECT'), 1);
  assert.equal(a.count('REQUEST'), 1);
  // a gives its credit back for the dropped request: it takes work again.
  await a.send({ command: 'CREDIT', credit: 1 });
  await sendOne(r, getReq('/svc/after'));
  assert.equal((await a.request()).path, '/svc/after');
});

test('a service whose socket closes: idempotent requests are retried elsewhere (once), a POST gets 502, a started reply is cut', async (t) => {
  const r = await rig(t);
  const a = await service(t, r, 10, 1, 'a');
  const cg1 = await sendOne(r, getReq('/svc/g1'));
  const cg2 = await sendOne(r, getReq('/svc/g2'));
  const cp = await sendOne(r, postReq('/svc/p', 'data'));
  const cs = await sendOne(r, getReq('/svc/started'));
  const [g1, g2, p, s] = [await a.request(), await a.request(), await a.request(), await a.request()];
  assert.equal(p.headers.METHOD, 'POST');
  await a.reply(s.connId, 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n', 0);
  await cs.seen('hello');
  const b = await service(t, r, 10, 1, 'b');

  const from = r.log.lines.length;
  a.close();
  const lost = await r.log.waitFor((l) => l.msg === 'handler lost' && l.service === 'a', "a's loss", from);
  assert.equal(lost.retried, 2);
  assert.equal(lost.failed, 2);
  const retried = [await b.request('first retry'), await b.request('second retry')];
  assert.deepEqual(retried.map((q) => q.connId).sort(), [g1.connId, g2.connId].sort());
  // The same Mongrel2 request, byte for byte.
  const raw = b.inbox.items.filter((i) => i.msg.command === 'REQUEST').map((i) => (i.msg as { message: Buffer }).message);
  const original = a.inbox.items.filter((i) => i.msg.command === 'REQUEST').map((i) => (i.msg as { message: Buffer }).message);
  for (const m of raw) assert.ok(original.some((o) => o.equals(m)));

  const post = await cp.response();
  assert.equal(post.status, 502);
  // The response had begun: no second status line, the connection is cut.
  const rest = await cs.end();
  assert.match(rest.toString('latin1'), /^HTTP\/1\.1 200 OK\r\n[\s\S]*hello\r\n$/);

  await b.reply(g1.connId, ok('g1 from b'), 1);
  assert.equal((await cg1.response()).body.toString(), 'g1 from b');

  // g2 already had its one retry: when b dies too it gets 502, though c is there to take it.
  const c = await service(t, r, 10, 1, 'c');
  const from2 = r.log.lines.length;
  b.close();
  const lost2 = await r.log.waitFor((l) => l.msg === 'handler lost' && l.service === 'b', "b's loss", from2);
  assert.equal(lost2.retried, 0);
  assert.equal(lost2.failed, 1);
  assert.equal((await cg2.response()).status, 502);
  await barrier(c);
  assert.equal(c.count('REQUEST'), 0);
  assert.deepEqual(
    { lost: r.pool.stats.lost, retried: r.pool.stats.retried, failed: r.pool.stats.failed },
    { lost: 2, retried: 2, failed: 3 },
  );
});

test('a service that misses its heartbeats is lost (and its requests retried); one that heartbeats is not', async (t) => {
  const r = await rig(t, { heartbeatMs: 50, liveness: 3 });
  // Taken before its READY: the gateway last heard it no earlier than this.
  const registeredAt = Date.now();
  const quiet = await service(t, r, 1, 1, 'quiet');
  const live = await service(t, r, 1, 1, 'live');
  live.heartbeatEvery(20);
  const c = await sendOne(r, getReq('/svc/held'));
  const held = await quiet.request();
  const lost = await r.log.waitFor((l) => l.msg === 'handler lost', 'handler lost');
  const silentFor = Number(lost.time) - registeredAt;
  assert.equal(lost.service, 'quiet');
  assert.equal(lost.why, 'heartbeats missed');
  assert.equal(lost.retried, 1);
  assert.ok(silentFor >= 150, `lost after ${silentFor} ms of silence, liveness is 3 × 50 ms`);
  // While it was idle the gateway heartbeated it (REQUEST aside, nothing else was sent).
  assert.ok(quiet.count('HEARTBEAT') >= 2, `the gateway sent ${quiet.count('HEARTBEAT')} HEARTBEATs`);

  const again = await live.request();
  assert.equal(again.connId, held.connId);
  await live.reply(again.connId, ok('from live'), 1);
  assert.equal((await c.response()).body.toString(), 'from live');
  // The lost peer is unknown now: its late messages get BYE.
  await quiet.send({ command: 'HEARTBEAT' });
  await quiet.inbox.waitFor((g) => g.msg.command === 'BYE', 'BYE to the forgotten peer');
  assert.equal(r.pool.stats.lost, 1);
  assert.equal(r.pool.services, 1);
});

test('through the link: one reply for several ids, a reply in several messages, and the close message (§4.3)', async (t) => {
  const r = await rig(t);
  const svc = await service(t, r, 4);
  const c1 = await sendOne(r, getReq('/svc/1'));
  const c2 = await sendOne(r, getReq('/svc/2'));
  const [q1, q2] = [await svc.request(), await svc.request()];
  await svc.reply([q1.connId, q2.connId], ok('both'), 2);
  for (const c of [c1, c2]) {
    const res = await c.response();
    assert.equal(res.status, 200);
    assert.equal(res.body.toString(), 'both');
  }

  const c3 = await sendOne(r, getReq('/svc/stream'));
  const q3 = await svc.request();
  await svc.reply(q3.connId, 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n', 0);
  await svc.reply(q3.connId, '6\r\nhello \r\n', 0);
  // Streamed: the first part is out before the rest is sent.
  await c3.seen('hello ');
  await svc.reply(q3.connId, '5\r\nworld\r\n0\r\n\r\n', 1);
  const streamed = await c3.response();
  assert.equal(streamed.body.toString(), 'hello world');
  assert.equal(c3.ended, false, 'a complete chunked response keeps the connection');

  const c4 = await sendOne(r, getReq('/svc/until-close'));
  const q4 = await svc.request();
  await svc.reply(q4.connId, 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\npart one, ', 0);
  await c4.seen('part one, ');
  await svc.reply(q4.connId, 'part two', 0);
  await svc.replyClose(q4.connId, 1);
  const closed = await c4.response();
  assert.equal(closed.body.toString(), 'part one, part two');
  assert.equal((await c4.end()).length, 0);

  // Every credit came back (2 + 1 + 1): four requests at once are all sent.
  for (let i = 0; i < 4; i++) await sendOne(r, getReq(`/svc/again-${i}`));
  await until(() => (svc.count('REQUEST') === 8 ? true : undefined), 'four more REQUESTs');
  assert.equal(r.pool.queued, 0);
  assert.equal(r.pool.stats.unknownIds, 0);
});

test('a service that says BYE gets no new requests, its replies still count, and its close is no loss', async (t) => {
  const r = await rig(t);
  const a = await service(t, r, 10, 10, 'a');
  const b = await service(t, r, 5, 1, 'b');
  const c0 = await sendOne(r, getReq('/svc/0'));
  await sendOne(r, getReq('/svc/1'));
  const q0 = await a.request();
  assert.equal(q0.path, '/svc/0');
  assert.equal((await b.request()).path, '/svc/1');
  const from = r.log.lines.length;
  await a.send({ command: 'BYE' });
  const leaving = await r.log.waitFor((l) => l.msg === 'service leaving', 'service leaving', from);
  assert.equal(leaving.service, 'a');
  assert.equal(leaving.inFlight, 1);
  // By load a (0.1 per thread) would win over b (1): it is leaving, so b gets it.
  await sendOne(r, getReq('/svc/2'));
  assert.equal((await b.request()).path, '/svc/2');
  await a.reply(q0.connId, ok('a, leaving'), 1);
  assert.equal((await c0.response()).body.toString(), 'a, leaving');
  a.close();
  const gone = await r.log.waitFor((l) => l.msg === 'handler disconnected' || l.msg === 'handler lost', "a's end", from);
  assert.equal(gone.msg, 'handler disconnected');
  assert.equal(r.pool.stats.lost, 0);
  assert.equal(a.count('REQUEST'), 1);
});

test("a service that says BYE with nothing in flight takes its open WebSockets with it: their clients are cut", async (t) => {
  const r = await rig(t);
  const a = await service(t, r, 1, 1, 'a');
  const client = await WsTestClient.open(r.port);
  t.after(() => client.destroy());
  client.write(handshakeBytes('/svc/chat'));
  const hs = await a.request();
  assert.equal(hs.kind, 'websocket-handshake');
  await a.reply(hs.connId, `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${hs.body.toString('latin1')}\r\n\r\n`, 1);
  assert.match(await client.head(), /^HTTP\/1\.1 101 /);
  // After its 101 a WebSocket is not in flight: the service leaves as if it held nothing.
  const from = r.log.lines.length;
  await a.send({ command: 'BYE' });
  a.close();
  const gone = await r.log.waitFor((l) => l.msg === 'handler disconnected' || l.msg === 'handler lost', "a's end", from);
  assert.equal(gone.msg, 'handler disconnected');
  await client.end();
});

test('a gateway that closes says BYE to every service', async (t) => {
  const r = await startLinkGateway({ link: QUIET });
  const a = await service(t, r, 1, 1, 'a');
  const b = await service(t, r, 1, 1, 'b');
  await r.close();
  await a.inbox.waitFor((g) => g.msg.command === 'BYE', 'BYE to a');
  await b.inbox.waitFor((g) => g.msg.command === 'BYE', 'BYE to b');
});
