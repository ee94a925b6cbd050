// Issue #8, Faults: the real Mongrel2 1.12.2 restarted in front of `m2gate service` (services
// behind Mongrel2: they connect, Mongrel2 binds; the gateway variant is
// test/behind-mongrel2.test.ts). Two things must hold across a restart:
// - ZeroMQ reconnects by itself: requests to the new Mongrel2 are served, each with its own
//   answer;
// - nothing reaches a wrong client. Mongrel2 numbers connections from 1 in every process
//   (mongrel2-protocol.md, CONN_ID), so a request the service still holds when Mongrel2 dies
//   has an id that a client of the new Mongrel2 gets too. Its late reply must not be delivered
//   to that client (the new Mongrel2 would: it routes by id alone, §4.3).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { RawClient } from './helpers/gateway.js';
import { fixtureRoutes, gate, isProbe, mongrel2Front, startService, stopAll, type LogLine } from './helpers/service.js';

const front = await mongrel2Front({ route: '/t/' });
const svc = await startService([fixtureRoutes('faults.mjs'), '--send', front.send, '--recv', front.recv, '--workers', '2']);
after(stopAll);

/** `GET path` on an open keep-alive connection; the response. */
async function ask(c: RawClient, path: string): Promise<{ status: number; body: string }> {
  c.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
  const r = await c.response();
  return { status: r.status, body: r.body.toString() };
}

const isRequestFor = (path: string) => (l: LogLine) => l.msg === 'request' && l.path === path;

test('Mongrel2 restarted: the service reconnects by itself and serves the new clients, each its own answer', async () => {
  const before = await RawClient.open(front.m2.port);
  assert.deepEqual(JSON.parse((await ask(before, '/t/items/before')).body), { id: 'before' });
  const t0 = performance.now();
  await front.m2.restart();
  await before.closed;
  // Requests to the new Mongrel2 wait there until the service's PULL has reconnected (§5.2).
  const clients = await Promise.all(Array.from({ length: 10 }, () => RawClient.open(front.m2.port)));
  const answers = await Promise.all(clients.map((c, i) => ask(c, `/t/items/after-${i}`)));
  console.log(`faults-mongrel2-restart: 10 answers ${Math.round(performance.now() - t0)} ms after the restart began`);
  answers.forEach((a, i) => {
    assert.equal(a.status, 200);
    assert.deepEqual(JSON.parse(a.body), { id: `after-${i}` });
  });
  for (const c of clients) c.destroy();
});

/**
 * A client of a fresh Mongrel2 whose request the service holds; Mongrel2 goes (SIGTERM: its
 * graceful stop; SIGKILL: a crash) and starts again; clients of the new one, kept open, until
 * one has the held request's id (the twin). Returns what a test needs to finish the story.
 */
async function holdAcrossRestart(signal: 'SIGTERM' | 'SIGKILL', tag: string): Promise<{ held: ReturnType<typeof gate>; twin: RawClient; twinPath: string; clients: RawClient[]; from: number }> {
  // A fresh Mongrel2 process: ids start again from 1.
  await front.m2.restart();
  const a = await RawClient.open(front.m2.port);
  const held = gate();
  const from = svc.lines.length;
  a.write(`GET /t/hold?${held.query(tag)} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
  const started = await svc.waitFor(isProbe('started', tag), { from });
  const oldId = started.connId as number;

  if (signal === 'SIGKILL') {
    const pidFile = join(front.m2.dir, 'run', 'mongrel2.pid');
    process.kill(Number(readFileSync(pidFile, 'utf8')), 'SIGKILL');
    // A killed Mongrel2 leaves its pid file; the restart waits for the new one's.
    rmSync(pidFile);
  }
  await front.m2.restart();
  await a.closed;
  assert.equal(a.rest().length, 0, 'the old client got no answer (its Mongrel2 went)');

  const clients: RawClient[] = [];
  for (let i = 0; i < oldId + 5; i++) {
    const c = await RawClient.open(front.m2.port);
    clients.push(c);
    const path = `/t/items/${tag}-new-${i}`;
    c.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
    // The service logs a request when its route has answered, whether or not the reply has
    // gone out: the twin's reply may wait behind the held one (the service keeps replies in
    // request order per id, and takes the twin for a pipelined request of the old client).
    const line = await svc.waitFor(isRequestFor(path), { from });
    if (line.connId === oldId) return { held, twin: c, twinPath: path, clients, from };
    assert.deepEqual(JSON.parse((await c.response()).body.toString()), { id: `${tag}-new-${i}` });
  }
  throw new Error(`no client of the new Mongrel2 got id ${oldId}`);
}

/** The twin's next request gets its own answer and nothing else reached any client. */
async function assertNothingMisdelivered(twin: RawClient, twinPath: string, clients: RawClient[], tag: string): Promise<void> {
  const first = await twin.response();
  assert.equal(first.body.toString(), JSON.stringify({ id: twinPath.slice('/t/items/'.length) }), "the twin got the old request's answer in place of its own");
  // PUB → SUB keeps order: once the twin's next answer is here, anything the service sent
  // before it was handled by Mongrel2.
  const next = await ask(twin, `/t/items/${tag}-twin-next`);
  assert.deepEqual(JSON.parse(next.body), { id: `${tag}-twin-next` });
  assert.equal(twin.rest().length, 0, `extra bytes on the twin: ${twin.rest().toString('latin1')}`);
  for (const c of clients) assert.equal(c.rest().length, 0, 'an answer reached a client that had not asked');
}

/**
 * The whole story for one way of going: hold, restart, find the twin, let the held request
 * finish (if it was not aborted by then), and check the twin got only its own answers.
 */
async function restartWhileHeld(signal: 'SIGTERM' | 'SIGKILL', tag: string): Promise<void> {
  const { held, twin, twinPath, clients, from } = await holdAcrossRestart(signal, tag);
  try {
    // Unless a disconnect notice aborted it, the held request finishes now, with a reply for
    // the old id.
    held.open();
    const done = await svc.waitFor((l) => isRequestFor('/t/hold')(l) || isProbe('aborted', tag)(l), { from });
    console.log(`faults-mongrel2-restart: ${signal}: the held request was ${done.probe === 'aborted' ? 'aborted (forgotten)' : `answered ${String(done.status)} for the old id`}`);
    await assertNothingMisdelivered(twin, twinPath, clients, tag);
  } finally {
    held.open();
    for (const c of clients) c.destroy();
  }
}

// Mongrel2's graceful stop sends a disconnect notice for each open connection (§3.6), which
// aborts the held task — when the notice makes it out before Mongrel2 exits: under load it
// often does not (measured: lost in 4 of 6 runs of the faults set in parallel).
test('Mongrel2 stopped (SIGTERM) while the service holds a request: the client of the new Mongrel2 with the same id gets only its own answers', () =>
  restartWhileHeld('SIGTERM', 'graceful'));

test('Mongrel2 killed (SIGKILL) while the service holds a request: the client of the new Mongrel2 with the same id gets only its own answers', () =>
  restartWhileHeld('SIGKILL', 'crash'));
