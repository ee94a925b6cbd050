// Aborting work: Mongrel2's disconnect notice (§3.6) for a connection whose
// request is running or queued aborts that task (the handler sees its signal
// aborted; a queued one never starts) and nothing is sent for it. A handler
// that ignores its signal past the timeout loses its thread after the grace
// period, and the pool is whole again.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request } from 'undici';
import { ABORT_MESSAGE } from '../workers/abort-protocol.js';
import {
  fakeFront,
  fixtureRoutes,
  gate,
  isMsg,
  isProbe,
  isRequestLog,
  mongrel2Front,
  parseHttp,
  startService,
  stopAll,
  type FakeFront,
} from './helpers/service.js';

const PROBES = fixtureRoutes('probes.mjs');
const agent = new Agent({ connections: 4, keepAliveTimeout: 100, keepAliveMaxTimeout: 100 });
after(async () => {
  await stopAll();
  await agent.close();
});

/** Pushes a request answered on the main thread and waits for it: every message pushed before it has been handled. */
async function barrier(front: FakeFront, connId: number): Promise<void> {
  await front.request(connId, '/t/nowhere');
  const reply = await front.next();
  assert.deepEqual([reply.ids, parseHttp(reply.body).status], [[connId], 404]);
}

test('behind Mongrel2: a client that goes away aborts its running task', async () => {
  const front = await mongrel2Front();
  const svc = await startService([PROBES, '--send', front.send, '--recv', front.recv, '--workers', '1']);
  const controller = new AbortController();
  const g = gate();
  const abandoned = request(`${front.base}/t/hold?${g.query('gone')}`, { dispatcher: agent, signal: controller.signal });
  const started = await svc.waitFor(isProbe('started', 'gone'));
  controller.abort();
  await assert.rejects(abandoned);
  const aborted = await svc.waitFor(isProbe('aborted', 'gone'));
  assert.equal(aborted.aborted, true);
  assert.equal(aborted.connId, started.connId);
  // The thread is free again.
  const res = await request(`${front.base}/t/hello`, { dispatcher: agent });
  assert.equal(await res.body.text(), 'hello');
  // No reply and no request line for the abandoned one.
  const stopped = svc.stop();
  const stats = (await svc.waitFor(isMsg('service stopped'))).stats as Record<string, number>;
  assert.equal((await stopped).code, 0);
  assert.deepEqual([stats.received, stats.replied, stats.aborted], [2, 1, 1]);
  assert.equal(svc.filter((l) => isRequestLog()(l) && l.path === '/t/hold').length, 0);
});

test('a disconnect for a running task aborts it and no reply is sent', async () => {
  const front = await fakeFront();
  const svc = await startService([PROBES, '--send', front.send, '--recv', front.recv, '--workers', '1']);
  const g = gate();
  await front.request(1, '/t/hold', { query: g.query('running') });
  await svc.waitFor(isProbe('started', 'running'));
  await front.disconnect(1);
  const aborted = await svc.waitFor(isProbe('aborted', 'running'));
  assert.equal(aborted.aborted, true);
  // The aborted handler returned a value; a later request on the same single
  // thread finishes after it, so a reply to 1, had one been sent, would come first.
  await front.request(2, '/t/hello');
  const next = await front.next();
  assert.deepEqual(next.ids, [2]);
  assert.equal(parseHttp(next.body).body, 'hello');
});

test('a handler that first reads its signal after the disconnect gets it already aborted, and nothing is sent', async () => {
  const front = await fakeFront();
  const svc = await startService([PROBES, '--send', front.send, '--recv', front.recv, '--workers', '1']);
  const g = gate();
  await front.request(1, '/t/late-signal', { query: g.query('late') });
  await svc.waitFor(isProbe('started', 'late'));
  await front.disconnect(1);
  // Answered on the main thread after the disconnect: the abort notice went to the thread
  // (whose event loop is idle, awaiting the gate) a ZeroMQ round trip before the gate opens.
  await barrier(front, 98);
  g.open();
  const late = await svc.waitFor(isProbe('late-signal', 'late'));
  assert.deepEqual([late.aborted, late.reason], [true, ABORT_MESSAGE]);
  await front.request(2, '/t/hello');
  const next = await front.next();
  assert.deepEqual([next.ids, parseHttp(next.body).body], [[2], 'hello']);
});

test('a disconnect for a queued task removes it: it never starts and nothing is sent', async () => {
  const front = await fakeFront();
  const svc = await startService([PROBES, '--send', front.send, '--recv', front.recv, '--workers', '1']);
  const first = gate();
  const queued = gate();
  await front.request(1, '/t/hold', { query: first.query('first') });
  await svc.waitFor(isProbe('started', 'first'));
  await front.request(2, '/t/hold', { query: queued.query('queued') });
  // Pipelined on the same connection: dropped with it.
  await front.request(2, '/t/hello');
  await front.disconnect(2);
  await barrier(front, 98);

  first.open();
  const one = await front.next();
  assert.deepEqual([one.ids, parseHttp(one.body).status], [[1], 200]);
  await front.request(3, '/t/hello');
  const three = await front.next();
  assert.deepEqual(three.ids, [3]);
  // One thread, first come first served: the queued task's turn came before 3's.
  assert.equal(queued.started(), false, 'the aborted queued task ran');
  // Log lines come in order: had 2 been answered, its line would precede 3's.
  await svc.waitFor(isRequestLog(3));
  assert.equal(svc.filter(isRequestLog(2)).length, 0);
});

test('a handler that ignores its signal past the timeout: 504, then its thread is terminated and replaced', async () => {
  const front = await fakeFront();
  const svc = await startService([PROBES, '--send', front.send, '--recv', front.recv, '--workers', '1']);
  await front.request(1, '/t/spin-briefly', { query: 'tag=spin&ms=10000' });
  const timedOut = await front.next();
  assert.deepEqual([timedOut.ids, parseHttp(timedOut.body).status], [[1], 504]);
  // The next request waits for the spinning thread's replacement, not for the spin to end.
  await front.request(2, '/t/whoami');
  const terminated = await svc.waitFor(isMsg('aborted task ignored its signal: terminating its thread'));
  assert.equal(terminated.connId, 1);
  const next = await front.next();
  assert.deepEqual([next.ids, parseHttp(next.body).status], [[2], 200]);
  const spin = await svc.waitFor(isProbe('started', 'spin'));
  assert.notEqual((JSON.parse(parseHttp(next.body).body) as { thread: number }).thread, spin.thread);
  const line = await svc.waitFor(isRequestLog(2));
  assert.ok((line.ms as number) < 5000, `waited ${String(line.ms)} ms`);
});

test('a task aborted while its fresh thread is still loading the routes module sees its signal aborted', async () => {
  const front = await fakeFront();
  const svc = await startService([fixtureRoutes('slow-load.mjs'), '--send', front.send, '--recv', front.recv, '--workers', '1']);
  // Kill the only thread so the next task runs on a new one, which loads the routes first.
  await front.request(1, '/t/exit', { query: 'tag=exit' });
  const crashed = await front.next();
  assert.equal(parseHttp(crashed.body).status, 500);
  // The first thread loaded the routes for the start-up check; the new one has not.
  const isLoading = (l: Record<string, unknown>): boolean => l.probe === 'loading';
  await svc.waitForCount(isLoading, 1);
  await front.request(2, '/t/hold', { query: gate().query('loading') });
  await svc.waitForCount(isLoading, 2);
  await front.disconnect(2);
  const aborted = await svc.waitFor(isProbe('aborted', 'loading'));
  assert.equal(aborted.aborted, true);
});
