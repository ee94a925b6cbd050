// Mongrel2 forwards pipelined requests at once, with one connection id (§4.4);
// the service answers them in request order even when a later one finishes
// first. Ordering is per connection: other connections are not held up.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { fakeFront, fixtureRoutes, gate, isProbe, isRequestLog, parseHttp, startService, stopAll, type FakeFront, type ServiceProcess } from './helpers/service.js';

const PROBES = fixtureRoutes('probes.mjs');
after(stopAll);

async function setup(): Promise<{ front: FakeFront; svc: ServiceProcess }> {
  const front = await fakeFront();
  const svc = await startService([PROBES, '--send', front.send, '--recv', front.recv, '--workers', '2']);
  return { front, svc };
}

const isLogOf = (connId: number, route: string | null) => (l: Record<string, unknown>) => isRequestLog(connId)(l) && l.route === route;

test('two pipelined requests: the slow first one is answered before the fast second one', async () => {
  const { front, svc } = await setup();
  const slow = gate();
  await front.request(7, '/t/hold', { query: slow.query('slow') });
  await svc.waitFor(isProbe('started', 'slow'));
  await front.request(7, '/t/hello');
  // The second one is done (it is logged when its result arrives)...
  await svc.waitFor(isLogOf(7, 'GET /t/hello'));
  // ...but it is not sent before the first.
  slow.open();
  const first = await front.next();
  const second = await front.next();
  assert.deepEqual([first.ids, second.ids], [[7], [7]]);
  assert.equal((JSON.parse(parseHttp(first.body).body) as { tag: string }).tag, 'slow');
  assert.equal(parseHttp(second.body).body, 'hello');
  // The log shows them finishing in the other order.
  const slowLine = await svc.waitFor(isLogOf(7, 'GET /t/hold'));
  const fastAt = svc.lines.findIndex(isLogOf(7, 'GET /t/hello'));
  assert.ok(fastAt >= 0 && svc.lines.indexOf(slowLine) > fastAt);
});

test("answers decided on the main thread (404, 405) also wait for the connection's earlier requests", async () => {
  const { front, svc } = await setup();
  const slow = gate();
  await front.request(8, '/t/hold', { query: slow.query('slow-8') });
  await svc.waitFor(isProbe('started', 'slow-8'));
  await front.request(8, '/t/nowhere');
  await front.request(8, '/t/hello', { method: 'POST' });
  await front.request(8, '/t/hello');
  await svc.waitFor(isLogOf(8, 'GET /t/hello'));
  slow.open();
  const statuses: number[] = [];
  for (let i = 0; i < 4; i++) {
    const reply = await front.next();
    assert.deepEqual(reply.ids, [8]);
    statuses.push(parseHttp(reply.body).status);
  }
  assert.deepEqual(statuses, [200, 404, 405, 200]);
});

test('a slow request does not hold up other connections', async () => {
  const { front, svc } = await setup();
  const slow = gate();
  await front.request(9, '/t/hold', { query: slow.query('slow-9') });
  await svc.waitFor(isProbe('started', 'slow-9'));
  await front.request(10, '/t/hello');
  const fast = await front.next();
  assert.deepEqual(fast.ids, [10]);
  slow.open();
  assert.deepEqual((await front.next()).ids, [9]);
});
