// The link's scheduling policy alone (gateway/handler/link-scheduler.ts), without sockets:
// credit, the expected-finish pick, the FIFO queue and its timeout, retries when a service
// dies. test/link-gateway-end.test.ts proves the same through a gateway and real DEALERs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as turn } from 'node:timers/promises';
import { LinkScheduler, schedPeer, type LinkJob, type SchedPeer } from '../gateway/handler/link-scheduler.js';

interface NamedPeer extends SchedPeer {
  name: string;
}

function rig(options: { maxQueue?: number; queueTimeoutMs?: number } = {}) {
  let clock = 1000;
  const sent: Array<[number, string]> = [];
  const failed: Array<[number, number]> = [];
  const sched = new LinkScheduler<NamedPeer>(
    { maxQueue: options.maxQueue ?? 8, queueTimeoutMs: options.queueTimeoutMs ?? 500, now: () => clock },
    { dispatch: (job, peer) => sent.push([job.connId, peer.name]), fail: (job, status) => failed.push([job.connId, status]) },
  );
  const peer = (name: string, credit: number, threads = 1): NamedPeer => {
    const p = { ...schedPeer(credit, threads), name };
    sched.addPeer(p);
    return p;
  };
  let nextId = 0;
  const job = (method = 'GET'): LinkJob => ({ connId: ++nextId, message: Buffer.alloc(0), method, peer: undefined, replied: false, attempts: 0, queuedAt: -1 });
  const tick = (ms: number): void => void (clock += ms);
  return { sched, sent, failed, peer, job, tick };
}

test('a request goes to a service with credit and takes one; without credit anywhere it waits', () => {
  const r = rig();
  const a = r.peer('a', 1);
  assert.equal(r.sched.submit(r.job()), true);
  assert.deepEqual(r.sent, [[1, 'a']]);
  assert.equal(a.credit, 0);
  assert.equal(r.sched.submit(r.job()), true);
  assert.equal(r.sent.length, 1);
  assert.equal(r.sched.queued, 1);
});

test('free threads first, then the service expected to finish soonest', () => {
  const r = rig();
  const fast = r.peer('fast', 10);
  const slow = r.peer('slow', 10);
  r.sched.submit(r.job());
  r.sched.submit(r.job());
  assert.deepEqual(r.sent.map(([, p]) => p), ['fast', 'slow'], 'one free thread each');
  fast.msPerCompletion = 10;
  slow.msPerCompletion = 100;
  for (let i = 0; i < 3; i++) r.sched.submit(r.job());
  // fast: (1+1)*10, (2+1)*10, (3+1)*10 all beat slow's (1+1)*100.
  assert.deepEqual(r.sent.slice(2).map(([, p]) => p), ['fast', 'fast', 'fast']);
});

test('a leaving service gets nothing new', () => {
  const r = rig();
  const a = r.peer('a', 4);
  a.leaving = true;
  r.sched.submit(r.job());
  assert.equal(r.sent.length, 0);
  assert.equal(r.sched.queued, 1);
});

test('the queue is bounded: past maxQueue a request is refused and counted', () => {
  const r = rig({ maxQueue: 2 });
  r.peer('a', 0);
  assert.equal(r.sched.submit(r.job()), true);
  assert.equal(r.sched.submit(r.job()), true);
  assert.equal(r.sched.submit(r.job()), false);
  assert.equal(r.sched.stats.queueRejected, 1);
  assert.equal(r.sched.pending, 2);
});

test('credit coming back drains the queue in order, after the current turn', async () => {
  const r = rig();
  const a = r.peer('a', 1, 2);
  r.sched.submit(r.job());
  r.sched.submit(r.job());
  r.sched.submit(r.job());
  r.sched.finish(1);
  assert.equal(r.sched.credit(a, 1), true);
  assert.equal(r.sent.length, 1, 'not from inside the receive loop');
  await turn();
  assert.deepEqual(r.sent, [[1, 'a'], [2, 'a']]);
  assert.equal(r.sched.queued, 1);
});

test('credit beyond what a service announced is capped and reported', () => {
  const r = rig();
  const a = r.peer('a', 2);
  r.sched.submit(r.job());
  assert.equal(r.sched.credit(a, 5), false);
  assert.equal(a.credit, 1, 'announced 2, one in flight');
});

test('requests waiting longer than the queue timeout fail with 503; a finished one leaves the queue', () => {
  const r = rig({ queueTimeoutMs: 500 });
  r.peer('a', 0);
  r.sched.submit(r.job());
  r.tick(200);
  r.sched.submit(r.job());
  r.sched.submit(r.job());
  r.sched.finish(3);
  r.tick(300);
  r.sched.expireQueued();
  assert.deepEqual(r.failed, [[1, 503]]);
  r.tick(200);
  r.sched.expireQueued();
  assert.deepEqual(r.failed, [[1, 503], [2, 503]]);
  assert.equal(r.sched.stats.queueRejected, 2);
  assert.equal(r.sched.pending, 0);
});

test('a dead service: idempotent unanswered requests move to another service, the rest fail with 502', () => {
  const r = rig();
  const a = r.peer('a', 10, 10);
  const get = r.job('GET');
  const post = r.job('POST');
  const answered = r.job('GET');
  for (const j of [get, post, answered]) r.sched.submit(j);
  answered.replied = true;
  r.peer('b', 10, 10);
  assert.deepEqual(r.sched.losePeer(a), { retried: 1, failed: 2 });
  assert.deepEqual(r.sent.slice(3), [[get.connId, 'b']]);
  assert.deepEqual(r.failed.sort(), [[post.connId, 502], [answered.connId, 502]].sort());
  assert.equal(r.sched.pending, 1);
});

test('a retry waits in front of the queue when no service has credit, and is never tried a third time', async () => {
  const r = rig();
  const a = r.peer('a', 1);
  const j = r.job('GET');
  r.sched.submit(j);
  const later = r.job('GET');
  r.sched.submit(later);
  r.sched.losePeer(a);
  assert.equal(r.sched.queued, 2);
  const b = r.peer('b', 1);
  assert.deepEqual(r.sent.at(-1), [j.connId, 'b'], 'the retry went first');
  r.sched.losePeer(b);
  assert.deepEqual(r.failed, [[j.connId, 502]]);
  assert.equal(r.sched.stats.retried, 1);
  await turn();
});

test('close(): queued requests fail with 503 and a service lost afterwards gets no retries', () => {
  const r = rig();
  const a = r.peer('a', 1);
  const held = r.job('GET');
  r.sched.submit(held);
  const queued = r.job('GET');
  r.sched.submit(queued);
  r.sched.close();
  assert.deepEqual(r.failed, [[queued.connId, 503]]);
  r.sched.losePeer(a);
  assert.deepEqual(r.failed, [[queued.connId, 503], [held.connId, 502]]);
});
