// Load and overload through `m2gate start` (dist/), bounded to a few seconds for CI (issue #8,
// "Load"); `npm run soak` (scripts/soak.mjs) runs the same checks for 60 s and 1,000,000
// requests. The gateway runs with scripts/heap-probe.mjs preloaded, so its heap after a full
// GC is read from the process itself.
// 1. Mixed load: 100 keep-alive connections on an app route, a handler route and a Dir route:
//    every answer is a 200 with the exact body, no connection error, and the gateway's heap
//    after GC does not grow with the request count.
// 2. Overload: ten times what the worker can do on /svc/fib/30, at a fixed rate: only 200s and
//    503s (with Retry-After), the 503s quick, the gateway's heap bounded; afterwards the stack
//    serves at its full rate again with no error.
// 3. SIGTERM: the gateway drains (nothing left in flight), exits 0 and logged no error.
// Run `npm run build` first.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { closedLoop, describe, openLoop, startStack, type Stack } from './helpers/load.js';

const LOAD_MS = Number(process.env.M2GATE_LOAD_MS ?? 3000);
// The mixed load runs with the service's default queue (256): 100 connections never fill it, so
// every answer must be a 200. The overload runs on its own stack with a short queue (16), as
// an operator who wants quick 503s would configure it.
let stack: Stack = await startStack({ services: 1, workers: 1 });
const stacks: Stack[] = [stack];
after(async () => {
  for (const s of stacks) await s.stop();
});

const MIX = ['/app/hello', '/svc/hello', '/'];

test(`mixed load: 100 connections for ${LOAD_MS} ms on app, handler and Dir routes → all 200 with the exact body, heap flat`, async () => {
  // Warm up (JIT, pools, caches) before the first heap reading.
  const warm = await closedLoop(stack.origin, { connections: 100, paths: MIX, requests: 3000, expected: stack.expected });
  assert.equal(warm.errors, 0, warm.firstError);
  const heapBefore = await stack.heap();
  const r = await closedLoop(stack.origin, { connections: 100, paths: MIX, durationMs: LOAD_MS, expected: stack.expected });
  const heapAfter = await stack.heap();
  const growth = heapAfter - heapBefore;
  const perThousand = (growth / r.requests) * 1000;
  console.log(`load: ${describe(r)}; gateway heap after GC ${(heapBefore / 1048576).toFixed(2)} → ${(heapAfter / 1048576).toFixed(2)} MiB (${perThousand.toFixed(0)} B per 1,000 requests)`);
  assert.equal(r.errors, 0, r.firstError);
  assert.deepEqual(Object.keys(r.statuses), ['200'], JSON.stringify(r.statuses));
  assert.equal(r.wrongBodies, 0);
  assert.ok(r.requests > 1000, `only ${r.requests} requests`);
  // The soak asserts ≤ 1 KiB per 1,000 requests over 1,000,000; a few seconds' worth of
  // requests is too few to resolve that, so here: no more than 1 MiB in all.
  assert.ok(growth < 1024 * 1024, `gateway heap grew ${growth} bytes over ${r.requests} requests`);
});

test(`overload: 10x the worker's capacity on /svc/fib/30 → only 200 and quick 503 with Retry-After, bounded heap, full recovery`, async () => {
  const first = await stack.stop();
  assert.equal(first.code, 0);
  stack = await startStack({ services: 1, workers: 1, maxQueue: 16 });
  stacks.push(stack);
  // Capacity: one request at a time per worker thread.
  const base = await closedLoop(stack.origin, { connections: 1, paths: ['/svc/fib/30'], durationMs: 1000 });
  assert.equal(base.errors, 0, base.firstError);
  assert.deepEqual(Object.keys(base.statuses), ['200']);
  const capacity = base.requests / base.seconds;
  const heapBefore = await stack.heap();
  const over = await openLoop(stack.origin, { rate: capacity * 10, durationMs: LOAD_MS, path: '/svc/fib/30', maxOutstanding: 512 });
  const heapAfter = await stack.heap();
  const quick = over.latencyByStatus.get(503);
  console.log(`overload: capacity ${capacity.toFixed(0)}/s, offered ${(capacity * 10).toFixed(0)}/s: ${describe(over)}; 503 ${quick?.summary() ?? 'none'}; 200 ${over.latencyByStatus.get(200)?.summary() ?? 'none'}; peak outstanding ${over.peakOutstanding}; heap ${((heapAfter - heapBefore) / 1024).toFixed(0)} KiB`);
  assert.equal(over.errors, 0, over.firstError);
  assert.deepEqual(Object.keys(over.statuses).sort(), ['200', '503'], JSON.stringify(over.statuses));
  assert.equal(over.missingRetryAfter, 0);
  // Most of the offered load is refused, and refused quickly: a 503 never waits for a thread.
  // (A CI machine running other tests beside this one makes the capacity estimate noisy, so
  // the shares asserted here are well below the ~90 % an exact 10x gives; soak.mjs reports it.)
  assert.ok(over.statuses[503]! > over.requests * 0.3, JSON.stringify(over.statuses));
  // Quick means the 503 never waits for a worker: well inside the handler timeout (30 s) even
  // on a loaded CI machine. How quick is measured by the soak, not asserted here.
  assert.ok(quick!.percentile(99) < 5000, `503 p99 ${quick!.percentile(99)} ms`);
  // The accepted ones still complete (the worker is not starved). On a 2-core machine shared
  // with the load generator, the 503 traffic takes CPU from the worker, so goodput under
  // overload is measured (docs/reliability.md), and only starvation fails here.
  assert.ok(over.statuses[200]! >= capacity * (LOAD_MS / 1000) * 0.1, `only ${over.statuses[200]} served under overload`);
  assert.ok(heapAfter - heapBefore < 16 * 1024 * 1024, `gateway heap grew ${heapAfter - heapBefore} bytes`);

  // Load drops: the same single connection gets its full rate back, every request a 200.
  const recovered = await closedLoop(stack.origin, { connections: 1, paths: ['/svc/fib/30'], durationMs: 1000 });
  console.log(`recovery: ${describe(recovered)}`);
  assert.equal(recovered.errors, 0, recovered.firstError);
  assert.deepEqual(Object.keys(recovered.statuses), ['200']);
  assert.ok(recovered.requests / recovered.seconds > capacity * 0.5, `recovered to ${(recovered.requests / recovered.seconds).toFixed(0)}/s of ${capacity.toFixed(0)}/s`);
});

test('SIGTERM after the overload: drained, exit 0, no warning or error logged', async () => {
  const exit = await stack.stop();
  assert.deepEqual(exit, { code: 0, signal: null });
  const lines = stack.notable();
  const stopped = lines.find((l) => l.msg === 'gateway stopped');
  assert.ok(stopped, 'the gateway logged its stop');
  assert.equal(stopped.drained, true);
  const stats = stopped.stats as Record<string, number>;
  assert.equal(stats.timedOut, 0);
  const bad = lines.filter((l) => typeof l.level === 'number' && l.level >= 40);
  assert.deepEqual(bad, []);
});
