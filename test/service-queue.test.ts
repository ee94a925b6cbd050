// The service's bounded queue: requests that wait for a thread are served first
// come, first served, and past --max-queue the service answers 503 with
// Retry-After at once.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request } from 'undici';
import {
  fakeFront,
  fixtureRoutes,
  gate,
  isProbe,
  isRequestLog,
  mongrel2Front,
  parseHttp,
  startService,
  stopAll,
} from './helpers/service.js';

const PROBES = fixtureRoutes('probes.mjs');
const agent = new Agent({ connections: 8, keepAliveTimeout: 100, keepAliveMaxTimeout: 100 });
after(async () => {
  await stopAll();
  await agent.close();
});

test('requests waiting for a thread run in arrival order', async () => {
  const front = await fakeFront();
  const svc = await startService([PROBES, '--send', front.send, '--recv', front.recv, '--workers', '1']);
  const g = gate();
  await front.request(100, '/t/hold', { query: g.query('first') });
  await svc.waitFor(isProbe('started', 'first'));
  const queued = [1, 2, 3, 4, 5, 6];
  for (const connId of queued) await front.request(connId, '/t/whoami');
  // Answered on the main thread without a worker, so once this 404 is out the
  // six requests before it are in the queue.
  await front.request(99, '/t/nowhere');
  const notFound = await front.next();
  assert.deepEqual(notFound.ids, [99]);
  assert.equal(parseHttp(notFound.body).status, 404);

  g.open();
  const order: number[] = [];
  for (let i = 0; i <= queued.length; i++) {
    const reply = await front.next();
    assert.equal(parseHttp(reply.body).status, 200);
    order.push(reply.ids[0]!);
  }
  assert.deepEqual(order, [100, ...queued]);
  // They did wait for the thread (the order above is not just arrival order on idle threads).
  const logs = await Promise.all(queued.map((connId) => svc.waitFor(isRequestLog(connId))));
  const held = svc.lines.findIndex(isRequestLog(100));
  assert.ok(logs.every((l) => svc.lines.indexOf(l) > held), 'a queued request finished before the one holding the thread');
});

test('behind Mongrel2, --workers 1 --max-queue 1: the request past the queue gets 503 with Retry-After, then service resumes', async () => {
  const front = await mongrel2Front();
  const svc = await startService([PROBES, '--send', front.send, '--recv', front.recv, '--workers', '1', '--max-queue', '1']);
  const g = gate();
  const holding = request(`${front.base}/t/hold?${g.query('running')}`, { dispatcher: agent });
  await svc.waitFor(isProbe('started', 'running'));

  // One of these waits in the queue (and cannot finish before the gate opens),
  // the other finds the queue full.
  const hello = async (): Promise<{ status: number; retryAfter: unknown; body: string }> => {
    const res = await request(`${front.base}/t/hello`, { dispatcher: agent });
    return { status: res.statusCode, retryAfter: res.headers['retry-after'], body: await res.body.text() };
  };
  const both = [hello(), hello()];
  const first = await Promise.race(both);
  assert.equal(first.status, 503);
  assert.equal(first.retryAfter, '1');
  assert.equal(first.body, 'Service Unavailable\n');
  await svc.waitFor((l) => isRequestLog()(l) && l.status === 503 && l.route === 'GET /t/hello');

  g.open();
  const held = await holding;
  assert.equal(held.statusCode, 200);
  assert.equal(((await held.body.json()) as { tag: string }).tag, 'running');
  const statuses = (await Promise.all(both)).map((r) => r.status).sort();
  assert.deepEqual(statuses, [200, 503]);

  // The queue is free again.
  const again = await hello();
  assert.deepEqual([again.status, again.body], [200, 'hello']);
});

test('abandoned requests still in the thread queue do not count against --max-queue', async () => {
  const front = await fakeFront();
  const svc = await startService([PROBES, '--send', front.send, '--recv', front.recv, '--workers', '1', '--max-queue', '2']);
  const g = gate();
  await front.request(100, '/t/hold', { query: g.query('holder') });
  await svc.waitFor(isProbe('started', 'holder'));
  // Two requests fill the queue, then their clients go away: piscina still
  // holds both tasks until the thread is free.
  await front.request(1, '/t/hello');
  await front.request(2, '/t/hello');
  await front.disconnect(1);
  await front.disconnect(2);
  // Two new requests fit the queue again; a third does not.
  await front.request(3, '/t/hello');
  await front.request(4, '/t/hello');
  await front.request(5, '/t/hello');
  const rejected = await front.next();
  assert.deepEqual(rejected.ids, [5]);
  assert.equal(parseHttp(rejected.body).status, 503);
  g.open();
  const answered: number[] = [];
  for (let i = 0; i < 3; i++) {
    const reply = await front.next();
    assert.equal(parseHttp(reply.body).status, 200);
    answered.push(reply.ids[0]!);
  }
  assert.deepEqual(answered, [100, 3, 4]);
});
