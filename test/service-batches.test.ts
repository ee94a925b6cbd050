// The batched thread hop (workers/task-batcher.ts) through a real `m2gate service --workers 1`:
// while the one thread is held, requests queue; when it comes free they go to it as one batch.
// What holds for single tasks holds in a batch: a route that throws costs only its own request
// (500), an abort of one request in a batch sends nothing for it alone, and a thread that dies
// in the middle of a batch gives each request of that batch exactly one 500. The 'service
// stopped' log line says how many batches there were, so each test proves a batch formed.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { fakeFront, fixtureRoutes, gate, isMsg, isProbe, parseHttp, startService, stopAll, type FakeFront, type ServiceProcess } from './helpers/service.js';

after(stopAll);

interface Answer {
  status: number;
  body: string;
}

async function rig(): Promise<{ front: FakeFront; svc: ServiceProcess }> {
  const front = await fakeFront();
  // A wide budget: which requests batch must not hang on how fast this machine runs them today.
  const svc = await startService([fixtureRoutes('batch.mjs'), '--send', front.send, '--recv', front.recv, '--workers', '1', '--batch-ms', '1000']);
  return { front, svc };
}

/** Collects replies until every id in `ids` has one; fails on a reply for any other id or a second one. */
async function answers(front: FakeFront, ids: number[]): Promise<Map<number, Answer>> {
  const got = new Map<number, Answer>();
  while (got.size < ids.length) {
    const reply = await front.next();
    assert.equal(reply.ids.length, 1);
    const id = reply.ids[0]!;
    assert.ok(ids.includes(id), `a reply for ${id}, not one of ${ids.join(', ')}`);
    assert.ok(!got.has(id), `a second reply for ${id}`);
    const { status, body } = parseHttp(reply.body);
    got.set(id, { status, body });
  }
  return got;
}

/** A request answered on the main thread (404): once its reply is back, every earlier message was taken. */
async function barrier(front: FakeFront, connId: number): Promise<void> {
  await front.request(connId, '/t/nowhere');
  const reply = await front.next();
  assert.deepEqual([reply.ids, parseHttp(reply.body).status], [[connId], 404]);
}

/** Runs each route once alone, so the service has measured it (a route never run goes alone). */
async function measure(front: FakeFront, paths: string[]): Promise<void> {
  let id = 9000;
  for (const path of paths) {
    const [p, q] = path.split('?');
    await front.request(++id, p!, q === undefined ? {} : { query: q });
    await answers(front, [id]);
  }
}

/** Holds the thread with /t/hold, queues `queued` behind it, lets it go; returns the gate's conn id. */
async function holdThenQueue(front: FakeFront, svc: ServiceProcess, holdId: number, queued: Array<[number, string]>, between?: () => Promise<void>): Promise<void> {
  const g = gate();
  await front.request(holdId, '/t/hold', { query: g.query(`hold-${holdId}`) });
  await svc.waitFor(isProbe('started', `hold-${holdId}`));
  for (const [id, path] of queued) {
    const [p, q] = path.split('?');
    await front.request(id, p!, q === undefined ? {} : { query: q });
  }
  await barrier(front, holdId + 50);
  await between?.();
  g.open();
}

async function hops(svc: ServiceProcess): Promise<{ single: number; batches: number; batchedTasks: number }> {
  const stopped = svc.stop();
  const line = await svc.waitFor(isMsg('service stopped'));
  assert.equal((await stopped).code, 0);
  return line.hops as { single: number; batches: number; batchedTasks: number };
}

test('a route that throws inside a batch costs only its own request', async () => {
  const { front, svc } = await rig();
  await measure(front, ['/t/hello', '/t/throw']);
  await holdThenQueue(front, svc, 100, [[101, '/t/hello'], [102, '/t/throw'], [103, '/t/hello'], [104, '/t/hello']]);
  const got = await answers(front, [100, 101, 102, 103, 104]);
  assert.deepEqual([101, 103, 104].map((id) => got.get(id)), [1, 2, 3].map(() => ({ status: 200, body: 'hello' })));
  assert.equal(got.get(102)?.status, 500);
  assert.equal(got.get(100)?.status, 200);
  const h = await hops(svc);
  assert.equal(h.batches, 1);
  assert.equal(h.batchedTasks, 4);
});

test('an abort of one request in a batch: nothing is sent for it, the others are answered', async () => {
  const { front, svc } = await rig();
  await measure(front, ['/t/hello']);
  // The barrier after the disconnect: it is taken before the gate opens, so 202 is aborted while
  // it waits for the batch (a disconnect still in flight when the batch finished would come too late).
  await holdThenQueue(front, svc, 200, [[201, '/t/hello'], [202, '/t/hello'], [203, '/t/hello']], async () => {
    await front.disconnect(202);
    await barrier(front, 251);
  });
  const got = await answers(front, [200, 201, 203]);
  assert.deepEqual([got.get(201)?.status, got.get(203)?.status], [200, 200]);
  // Had 202 been answered, its reply would have come before the barrier's.
  await barrier(front, 299);
  const h = await hops(svc);
  assert.equal(h.batches, 1);
  assert.equal(h.batchedTasks, 3);
});

test('a thread that dies in the middle of a batch: each request of the batch gets one 500, and the pool serves again', async () => {
  const { front, svc } = await rig();
  await measure(front, ['/t/hello', '/t/maybe-exit?exit=0']);
  await holdThenQueue(front, svc, 300, [[301, '/t/hello'], [302, '/t/maybe-exit?exit=1'], [303, '/t/hello']]);
  const got = await answers(front, [300, 301, 302, 303]);
  assert.equal(got.get(300)?.status, 200);
  for (const id of [301, 302, 303]) {
    assert.equal(got.get(id)?.status, 500, `request ${id}`);
    assert.match(got.get(id)!.body, /^Internal Server Error \(error id [0-9a-f-]{36}\)\n$/);
  }
  // piscina replaced the thread: the next request is served.
  await front.request(304, '/t/hello');
  assert.deepEqual((await answers(front, [304])).get(304), { status: 200, body: 'hello' });
  assert.equal(front.pending, 0);
  const h = await hops(svc);
  assert.equal(h.batches, 1);
  assert.equal(h.batchedTasks, 3);
});

test('with --batch-ms 0 nothing is batched', async () => {
  const front = await fakeFront();
  const svc = await startService([fixtureRoutes('batch.mjs'), '--send', front.send, '--recv', front.recv, '--workers', '1', '--batch-ms', '0']);
  await measure(front, ['/t/hello']);
  await holdThenQueue(front, svc, 500, [[501, '/t/hello'], [502, '/t/hello']]);
  await answers(front, [500, 501, 502]);
  const h = await hops(svc);
  assert.deepEqual([h.batches, h.single], [0, 4]);
});

test('a route not measured yet never joins a batch; a request alone goes at once', async () => {
  const { front, svc } = await rig();
  // /t/items has never run: queued behind the hold, each goes alone.
  await holdThenQueue(front, svc, 400, [[401, '/t/items'], [402, '/t/items']]);
  const got = await answers(front, [400, 401, 402]);
  assert.deepEqual([got.get(401)?.status, got.get(402)?.status], [200, 200]);
  const h = await hops(svc);
  assert.equal(h.batches, 0);
  // The hold, then /t/items twice: three tasks, each alone (and no 404 barrier reached a thread).
  assert.equal(h.single, 3);
});
