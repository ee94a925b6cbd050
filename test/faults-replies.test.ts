// Issue #8, Faults: handlers that misbehave in time rather than in bytes, against the standalone
// gateway (in-process) and a fake Mongrel2 handler driven by the test (PULL/PUB, §5.1):
// - a handler that replies slowly, after other clients have been served and close to the handler
//   timeout: its reply is relayed whole to the right client;
// - a handler that replies twice to the same request (seeded random schedules over many
//   clients, the duplicate sometimes before other clients' first replies): the first reply is
//   the answer, the second is dropped and counted (pool stats.unknownIds), and no duplicate
//   byte reaches any client, not even a later request on the same keep-alive connection.
// (A handler that never replies → 504 is test/gateway-handler.test.ts → `no reply within the
// handler timeout → 504 …`.)
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { fakeHandler, handlerConf, startGateway, type RawClient } from './helpers/gateway.js';
import { prng } from './helpers/mutate.js';

const TIMEOUT_MS = 600;
const H = handlerConf('/h/', '7e91e5a0-0000-4000-8000-00000replies');
const rig = await startGateway({ handlers: [H] }, { handlerTimeoutMs: TIMEOUT_MS });
const handler = await fakeHandler(H, rig.pool('/h/'));
after(async () => {
  handler.stop();
  await rig.close();
});

const ok = (body: string): string => `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
const getReq = (path: string): string => `GET ${path} HTTP/1.1\r\nHost: localhost\r\n\r\n`;

/** The in-flight tables are empty: nothing waits for a reply, no response is open. */
function assertIdle(): void {
  assert.equal(rig.pool('/h/').pending, 0, 'pool.pending');
  assert.equal(rig.gateway.inFlight, 0, 'gateway.inFlight');
}

test('a slow reply (after others were served, near the handler timeout) is relayed whole to its client', async () => {
  const slow = await rig.client();
  const started = performance.now();
  slow.write(getReq('/h/slow'));
  const { msg: slowMsg } = await handler.next('slow request');
  // Meanwhile three other clients are served.
  for (let i = 0; i < 3; i++) {
    const c = await rig.client();
    c.write(getReq(`/h/quick/${i}`));
    const { msg } = await handler.next('quick request');
    await handler.reply(msg.connId, ok(`quick ${i}`));
    assert.equal((await c.response()).body.toString(), `quick ${i}`);
  }
  assert.equal(slow.rest().length, 0, 'nothing for the slow client yet');
  // The delay is the subject: the reply comes at about 2/3 of the handler timeout, in two parts.
  await delay(TIMEOUT_MS * 0.6);
  await handler.reply(slowMsg.connId, 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\nslow ');
  await handler.reply(slowMsg.connId, 'body');
  const r = await slow.response();
  const ms = performance.now() - started;
  assert.equal(r.status, 200);
  assert.equal(r.body.toString(), 'slow body');
  assert.ok(ms >= TIMEOUT_MS * 0.6, `answered after ${ms} ms`);
  assert.equal(rig.gateway.stats.timedOut, 0);
  // The connection stays in sync for its next request.
  slow.write(getReq('/h/slow-next'));
  const { msg } = await handler.next();
  await handler.reply(msg.connId, ok('next'));
  assert.equal((await slow.response()).body.toString(), 'next');
  assert.equal(slow.rest().length, 0);
  assertIdle();
});

for (const seed of [1, 2, 3, 4, 5]) {
  test(`a handler that replies twice (seed ${seed}): the first reply answers, the second is dropped and counted, never reaches anyone`, async () => {
    const random = prng(seed);
    const pool = rig.pool('/h/');
    const unknownBefore = pool.stats.unknownIds;
    const N = 24;
    // N keep-alive clients, one request each, all waiting at once.
    const clients: RawClient[] = [];
    const ids = new Map<number, number>(); // connId → client index
    for (let i = 0; i < N; i++) {
      const c = await rig.client();
      c.write(getReq(`/h/twice/${seed}/${i}`));
      const { msg } = await handler.next(`request ${i}`);
      assert.equal(msg.headers.PATH, `/h/twice/${seed}/${i}`);
      ids.set(msg.connId, i);
      clients.push(c);
    }
    // A schedule of replies: every client's genuine reply once, and for about half of them a
    // duplicate somewhere after its genuine one (possibly before other clients' replies). The
    // duplicate names the same id with another body: a full response, a bare body part, or a
    // close.
    type Step = { connId: number; kind: 'genuine' | 'dup-response' | 'dup-part' | 'dup-close' };
    const steps: Step[] = [];
    for (const connId of [...ids.keys()].sort(() => random() - 0.5)) steps.push({ connId, kind: 'genuine' });
    let duplicates = 0;
    for (const connId of ids.keys()) {
      if (random() < 0.5) continue;
      const genuineAt = steps.findIndex((s) => s.connId === connId && s.kind === 'genuine');
      const at = genuineAt + 1 + Math.floor(random() * (steps.length - genuineAt));
      const kind = (['dup-response', 'dup-part', 'dup-close'] as const)[Math.floor(random() * 3)]!;
      steps.splice(at, 0, { connId, kind });
      duplicates++;
    }
    assert.ok(duplicates > 0);
    for (const s of steps) {
      const i = ids.get(s.connId)!;
      if (s.kind === 'genuine') await handler.reply(s.connId, ok(`genuine ${seed}/${i}`));
      else if (s.kind === 'dup-response') await handler.reply(s.connId, ok(`DUPLICATE ${seed}/${i}`));
      else if (s.kind === 'dup-part') await handler.reply(s.connId, `DUPLICATE-PART ${seed}/${i}`);
      else await handler.close(s.connId);
    }
    // Each client gets exactly its own genuine answer.
    for (let i = 0; i < N; i++) {
      const r = await clients[i]!.response();
      assert.equal(r.status, 200);
      assert.equal(r.body.toString(), `genuine ${seed}/${i}`);
    }
    // A barrier: each client sends a second request on the same connection; its reply comes
    // after every duplicate (PUB → SUB keeps order), so the duplicates have been handled.
    for (let i = 0; i < N; i++) clients[i]!.write(getReq(`/h/twice-next/${seed}/${i}`));
    const seconds = new Map<number, number>();
    for (let i = 0; i < N; i++) {
      const { msg } = await handler.next(`second request ${i}`);
      seconds.set(msg.connId, Number(/\/(\d+)$/.exec(msg.headers.PATH as string)![1]));
    }
    for (const connId of seconds.keys()) assert.ok(!ids.has(connId), 'connection ids are never reused');
    for (const [connId, i] of seconds) await handler.reply(connId, ok(`second ${seed}/${i}`));
    for (let i = 0; i < N; i++) {
      const r = await clients[i]!.response();
      assert.equal(r.body.toString(), `second ${seed}/${i}`);
      assert.equal(clients[i]!.rest().length, 0, 'no extra bytes after the answers');
      assert.ok(!clients[i]!.ended, 'the connection is still open');
    }
    // Every duplicate is counted once: a reply to an id whose response is complete is unknown.
    // A close right after the genuine complete response is the expected end of that id and is
    // not counted (test/gateway-handler.test.ts); every other duplicate is.
    const expectedUnknown = steps.filter((s, k) => s.kind !== 'genuine' && !(s.kind === 'dup-close' && firstAfterGenuine(steps, k))).length;
    assert.equal(pool.stats.unknownIds - unknownBefore, expectedUnknown);
    assertIdle();
    for (const c of clients) c.destroy();
  });
}

/** True when step k is the first message for its id after the genuine reply. */
function firstAfterGenuine(steps: Array<{ connId: number; kind: string }>, k: number): boolean {
  const id = steps[k]!.connId;
  for (let j = k - 1; j >= 0; j--) {
    if (steps[j]!.connId !== id) continue;
    return steps[j]!.kind === 'genuine';
  }
  return false;
}
