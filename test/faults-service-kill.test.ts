// Issue #8, Faults: SIGKILL one of two services under load, over Mongrel2's PUSH/SUB (a Handler
// without transport='link'; the link variant is test/link-acceptance.test.ts). The gateway runs
// in-process with a short handler timeout; two `m2gate service` processes (dist/, one thread
// each, test/fixtures/routes/faults.mjs) pull from the same Handler; 8 connections keep
// requests flowing, each naming itself (`/t/job/<id>` answers `{ id, pid }`).
//
// Proves: every request gets exactly one answer — 200 with its own id, or 504 at the handler
// timeout for the requests the dead service held — and none hangs; once the gateway has seen
// the peer go, every request is served by the survivor; the in-flight tables end empty.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { Pool } from 'undici';
import { handlerConf, logCapture, startGateway } from './helpers/gateway.js';
import { fixtureRoutes, startService, stopAll } from './helpers/service.js';

const HANDLER_TIMEOUT_MS = 1000;
const CONNECTIONS = 8;

const H = handlerConf('/t/', '51c0b111-0000-4000-8000-0000000kill0');
const log = logCapture();
const rig = await startGateway({ handlers: [H] }, { logger: log.logger, handlerTimeoutMs: HANDLER_TIMEOUT_MS });
const args = [fixtureRoutes('faults.mjs'), '--send', H.sendSpec, '--recv', H.recvSpec, '--workers', '1'];
const [victim, survivor] = await Promise.all([startService(args), startService(args)]);
await log.waitFor((l) => l.msg === 'handler connected' && l.peers === 2, 'two handlers connected');
const http = new Pool(`http://127.0.0.1:${rig.port}`, { connections: CONNECTIONS });
after(async () => {
  await http.close();
  await stopAll();
  await rig.close();
});

interface Outcome {
  id: string;
  status: number | 'error';
  pid?: number;
  startedAt: number;
  ms: number;
  error?: string;
}

test('SIGKILL a service under load (PUSH/SUB): 200 from the survivor or 504 at the handler timeout, none hangs', async () => {
  const outcomes: Outcome[] = [];
  const listeners = new Set<() => void>();
  const until = (pred: () => boolean, what: string, ms = 10_000): Promise<void> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        listeners.delete(check);
        reject(new Error(`${what}: not within ${ms} ms (${outcomes.length} answers)`));
      }, ms);
      const check = (): void => {
        if (!pred()) return;
        clearTimeout(timer);
        listeners.delete(check);
        resolve();
      };
      listeners.add(check);
      check();
    });
  let stopping = false;
  const loop = async (c: number): Promise<void> => {
    for (let n = 0; !stopping; n++) {
      const id = `${c}-${n}`;
      const startedAt = performance.now();
      const o: Outcome = { id, status: 'error', startedAt, ms: 0 };
      try {
        // The guard is far past the handler timeout: a request with no answer by then hangs.
        const res = await http.request({ path: `/t/job/${id}?ms=2`, method: 'GET', headersTimeout: HANDLER_TIMEOUT_MS * 5, bodyTimeout: HANDLER_TIMEOUT_MS * 5 });
        const text = await res.body.text();
        o.status = res.statusCode;
        if (res.statusCode === 200) {
          const body = JSON.parse(text) as { id: string; pid: number };
          assert.equal(body.id, id, 'an answer meant for another request');
          o.pid = body.pid;
        }
      } catch (err) {
        o.error = String(err);
      }
      o.ms = performance.now() - startedAt;
      outcomes.push(o);
      for (const l of [...listeners]) l();
    }
  };
  const loops = Array.from({ length: CONNECTIONS }, (_, c) => loop(c));

  // Under load on both services...
  const servedBy = (pid: number): number => outcomes.filter((o) => o.pid === pid).length;
  await until(() => servedBy(victim.pid) >= 50 && servedBy(survivor.pid) >= 50, 'both services serving');
  const logFrom = log.lines.length;
  const killedAt = performance.now();
  victim.child.kill('SIGKILL');
  await victim.exited;
  // ...until the gateway has seen the peer go, then a good number of requests after that.
  await log.waitFor((l) => l.msg === 'handler disconnected' && l.peers === 1, 'handler disconnected', logFrom);
  const seenAt = performance.now();
  await until(() => outcomes.filter((o) => o.startedAt > seenAt).length >= 200, '200 requests after the kill');
  stopping = true;
  await Promise.all(loops);

  const statuses: Record<string, number> = {};
  for (const o of outcomes) statuses[String(o.status)] = (statuses[String(o.status)] ?? 0) + 1;
  const errors = outcomes.filter((o) => o.status === 'error');
  assert.deepEqual(errors, [], 'requests without an answer (hung or cut)');
  assert.deepEqual(Object.keys(statuses).sort(), statuses['504'] ? ['200', '504'] : ['200']);
  // A 504 is a request the dead service held (or was pushed before the gateway saw it go):
  // it was sent before the gateway saw the disconnect, and answered at the handler timeout.
  const timedOut = outcomes.filter((o) => o.status === 504);
  for (const o of timedOut) {
    assert.ok(o.startedAt < seenAt, `a 504 for ${o.id}, sent after the gateway saw the peer go`);
    assert.ok(o.ms >= HANDLER_TIMEOUT_MS - 5, `a 504 after ${o.ms} ms`);
  }
  // After the gateway saw the peer go, everything is the survivor's.
  const after = outcomes.filter((o) => o.startedAt > seenAt);
  assert.ok(after.every((o) => o.status === 200 && o.pid === survivor.pid));
  assert.equal(new Set(outcomes.map((o) => o.id)).size, outcomes.length);
  assert.equal(rig.pool('/t/').pending, 0);
  assert.equal(rig.gateway.inFlight, 0);
  assert.equal(rig.gateway.stats.timedOut, timedOut.length);
  const maxMs = Math.max(...outcomes.map((o) => o.ms));
  console.log(
    `faults-service-kill: ${outcomes.length} requests, statuses ${JSON.stringify(statuses)}, disconnect seen ${Math.round(seenAt - killedAt)} ms after the kill, max latency ${Math.round(maxMs)} ms`,
  );
});
