// Stopping: the first SIGTERM (or SIGINT) stops pulling requests and lets the
// ones in flight finish, then the process exits 0; past --drain-timeout the rest
// get 503 and the exit code is 1; a second signal exits at once. Behind the real Mongrel2.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request } from 'undici';
import { fixtureRoutes, gate, isMsg, isProbe, mongrel2Front, startService, stopAll } from './helpers/service.js';

const PROBES = fixtureRoutes('probes.mjs');
const agent = new Agent({ connections: 4, keepAliveTimeout: 100, keepAliveMaxTimeout: 100 });
after(async () => {
  await stopAll();
  await agent.close();
});

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  test(`${signal} with a request in flight: it is answered, then the process exits 0`, async () => {
    const front = await mongrel2Front();
    const svc = await startService([PROBES, '--send', front.send, '--recv', front.recv, '--workers', '1']);
    const g = gate();
    const inFlight = request(`${front.base}/t/hold?${g.query('in-flight')}`, { dispatcher: agent });
    await svc.waitFor(isProbe('started', 'in-flight'));

    svc.child.kill(signal);
    const draining = await svc.waitFor(isMsg('draining'));
    assert.equal(draining.signal, signal);
    assert.equal(svc.child.exitCode, null, 'exited before the in-flight request finished');

    g.open();
    const res = await inFlight;
    assert.equal(res.statusCode, 200);
    assert.equal(((await res.body.json()) as { tag: string }).tag, 'in-flight');
    const exit = await svc.exited;
    assert.deepEqual(exit, { code: 0, signal: null });
    const stopped = svc.filter(isMsg('service stopped'))[0]!;
    assert.equal(stopped.drained, true);
    assert.equal((stopped.stats as { replied: number }).replied, 1);
  });
}

test('a second signal exits at once, without waiting for the drain', async () => {
  const front = await mongrel2Front();
  const svc = await startService([PROBES, '--send', front.send, '--recv', front.recv, '--workers', '1', '--drain-timeout', '60000']);
  const client = new AbortController();
  const held = request(`${front.base}/t/hold?${gate().query('stuck')}`, { dispatcher: agent, signal: client.signal }).catch(() => undefined);
  await svc.waitFor(isProbe('started', 'stuck'));

  svc.child.kill('SIGTERM');
  await svc.waitFor(isMsg('draining'));
  svc.child.kill('SIGTERM');
  const exit = await svc.exited;
  assert.deepEqual(exit, { code: 1, signal: null });
  assert.equal(svc.filter(isMsg('second signal: exiting now')).length, 1);
  assert.equal(svc.filter(isMsg('service stopped')).length, 0);
  client.abort();
  await held;
});

test('past --drain-timeout the unfinished request gets 503 with Retry-After and the exit code is 1', async () => {
  const front = await mongrel2Front();
  const svc = await startService([PROBES, '--send', front.send, '--recv', front.recv, '--workers', '1', '--drain-timeout', '200']);
  const held = request(`${front.base}/t/hold?${gate().query('too-slow')}`, { dispatcher: agent });
  await svc.waitFor(isProbe('started', 'too-slow'));

  svc.child.kill('SIGTERM');
  const res = await held;
  assert.equal(res.statusCode, 503);
  assert.equal(res.headers['retry-after'], '1');
  await res.body.text();
  const exit = await svc.exited;
  assert.deepEqual(exit, { code: 1, signal: null });
  const stopped = svc.filter(isMsg('service stopped'))[0]!;
  assert.equal(stopped.drained, false);
});

test('SIGTERM when idle exits 0 at once', async () => {
  const front = await mongrel2Front();
  const svc = await startService([PROBES, '--send', front.send, '--recv', front.recv, '--workers', '2']);
  const res = await request(`${front.base}/t/hello`, { dispatcher: agent });
  assert.equal(await res.body.text(), 'hello');
  assert.deepEqual(await svc.stop('SIGTERM'), { code: 0, signal: null });
  assert.equal(svc.filter(isMsg('service stopped'))[0]!.drained, true);
});
