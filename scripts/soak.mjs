// `npm run soak`: the long forms of the reliability checks of issue #8 (the test suite runs
// bounded forms of the same checks). Run `npm run build` first: the load parts start
// `m2gate start` from dist/. Each part prints its figures; the exit code is 1 if any failed.
//
//   node scripts/soak.mjs [--only fuzz,load,heap,overload] [--fuzz-cases N] [--fuzz-ms MS]
//                         [--duration S] [--connections C] [--heap-requests N]
//                         [--overload-seconds S] [--workers N]
//
// fuzz      the protocol fuzz tests (tnetstring, Mongrel2 request/reply, HTTP response parser,
//           Dir traversal property) with M2GATE_FUZZ_CASES=N (default 100,000) and the
//           time-bounded mutation loop with M2GATE_FUZZ_MS (default 30,000)
// load      C connections (default 100) for S seconds (default 60) on /app/hello, /svc/hello
//           and / (Dir): zero errors, zero non-2xx, every body exact
// heap      the gateway's heap after GC (scripts/heap-probe.mjs) before and after N requests
//           (default 1,000,000) of that mix: at most 1 KiB of growth per 1,000 requests
// overload  10x the workers' capacity on /svc/fib/30 for S seconds (default 30): only 200 and
//           503 (with Retry-After), 503 p99 under 1 s, heap growth under 16 MiB, then the
//           full rate again with every request a 200
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { register } from 'tsx/esm/api';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const { values } = parseArgs({
  options: {
    only: { type: 'string', default: 'fuzz,load,heap,overload' },
    'fuzz-cases': { type: 'string', default: '100000' },
    'fuzz-ms': { type: 'string', default: '30000' },
    duration: { type: 'string', default: '60' },
    connections: { type: 'string', default: '100' },
    'heap-requests': { type: 'string', default: '1000000' },
    'overload-seconds': { type: 'string', default: '30' },
    workers: { type: 'string', default: '1' },
  },
});
const parts = new Set(values.only.split(',').map((s) => s.trim()));
const failures = [];
const figures = [];

function check(ok, what) {
  if (!ok) failures.push(what);
  console.log(`  ${ok ? 'ok  ' : 'FAIL'} ${what}`);
}

function figure(part, text) {
  figures.push(`${part}: ${text}`);
  console.log(`  ${text}`);
}

if (parts.has('fuzz')) {
  console.log(`fuzz: ${values['fuzz-cases']} cases per loop, ${values['fuzz-ms']} ms mutation loop`);
  const t0 = Date.now();
  const run = spawnSync(
    process.execPath,
    ['--import', 'tsx', '--test', '--test-reporter=tap', 'test/protocol-fuzz.test.ts', 'test/protocol-mutation.test.ts', 'test/gateway-dir-traversal.test.ts'],
    { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, env: { ...process.env, M2GATE_FUZZ_CASES: values['fuzz-cases'], M2GATE_FUZZ_MS: values['fuzz-ms'] } },
  );
  const out = run.stdout ?? '';
  for (const line of out.split('\n')) {
    if (/^# fuzz /.test(line)) figure('fuzz', line.slice(2));
    if (/^not ok /.test(line)) console.log(`  ${line}`);
  }
  const pass = /^# pass (\d+)/m.exec(out)?.[1];
  const fail = /^# fail (\d+)/m.exec(out)?.[1];
  figure('fuzz', `${pass} tests passed, ${fail} failed in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  check(run.status === 0, 'fuzz tests pass (only ProtocolError, no slow case, heap bounded, no secret byte)');
  if (run.status !== 0) console.log(out.split('\n').filter((l) => /error|expected|actual|Counterexample/.test(l)).slice(0, 40).join('\n'));
}

if (parts.has('load') || parts.has('heap') || parts.has('overload')) {
  register();
  const { closedLoop, describe, openLoop, startStack } = await import('../test/helpers/load.ts');
  const connections = Number(values.connections);
  const workers = Number(values.workers);
  const MIX = ['/app/hello', '/svc/hello', '/'];

  if (parts.has('load') || parts.has('heap')) {
    const stack = await startStack({ services: 1, workers });
    try {
      await closedLoop(stack.origin, { connections, paths: MIX, requests: 20_000, expected: stack.expected });
      if (parts.has('load')) {
        const seconds = Number(values.duration);
        console.log(`load: ${connections} connections for ${seconds} s on ${MIX.join(', ')}`);
        const r = await closedLoop(stack.origin, { connections, paths: MIX, durationMs: seconds * 1000, expected: stack.expected });
        figure('load', describe(r));
        check(r.errors === 0, `zero errors (${r.errors}${r.firstError ? `: ${r.firstError}` : ''})`);
        check(Object.keys(r.statuses).every((s) => s === '200'), `zero non-2xx (${JSON.stringify(r.statuses)})`);
        check(r.wrongBodies === 0, `every body exact (${r.wrongBodies} wrong)`);
      }
      if (parts.has('heap')) {
        const n = Number(values['heap-requests']);
        console.log(`heap: gateway heap after GC around ${n} requests of the mix`);
        const before = await stack.heap();
        const r = await closedLoop(stack.origin, { connections, paths: MIX, requests: n, expected: stack.expected });
        const after = await stack.heap();
        const perThousand = ((after - before) / r.requests) * 1000;
        figure('heap', `${describe(r)}`);
        figure('heap', `heap after GC ${(before / 1048576).toFixed(2)} → ${(after / 1048576).toFixed(2)} MiB: ${(after - before) / 1024 >= 0 ? '+' : ''}${((after - before) / 1024).toFixed(0)} KiB, ${perThousand.toFixed(1)} B per 1,000 requests`);
        check(r.errors === 0 && Object.keys(r.statuses).every((s) => s === '200'), 'all 200 during the heap run');
        check(perThousand <= 1024, `heap growth ≤ 1 KiB per 1,000 requests (${perThousand.toFixed(1)} B)`);
      }
    } finally {
      const exit = await stack.stop();
      const stopped = stack.notable().find((l) => l.msg === 'gateway stopped');
      check(exit.code === 0 && stopped?.drained === true, `SIGTERM drains and exits 0 (${JSON.stringify(exit)})`);
      const warnings = stack.notable().filter((l) => typeof l.level === 'number' && l.level >= 40);
      check(warnings.length === 0, `no warning or error logged (${warnings.length})`);
    }
  }

  if (parts.has('overload')) {
    const seconds = Number(values['overload-seconds']);
    const stack = await startStack({ services: 1, workers, maxQueue: 16 * workers });
    try {
      const base = await closedLoop(stack.origin, { connections: workers, paths: ['/svc/fib/30'], durationMs: 3000 });
      const capacity = base.requests / base.seconds;
      console.log(`overload: capacity ${capacity.toFixed(0)}/s (${workers} worker(s), queue ${16 * workers}); offering ${(capacity * 10).toFixed(0)}/s for ${seconds} s`);
      const heapBefore = await stack.heap();
      const over = await openLoop(stack.origin, { rate: capacity * 10, durationMs: seconds * 1000, path: '/svc/fib/30', maxOutstanding: 1024 });
      const heapAfter = await stack.heap();
      const q = over.latencyByStatus.get(503);
      const ok200 = over.latencyByStatus.get(200);
      figure('overload', describe(over));
      figure('overload', `503: ${q?.summary() ?? 'none'}; 200: ${ok200?.summary() ?? 'none'}; goodput ${((over.statuses[200] ?? 0) / over.seconds).toFixed(0)}/s of ${capacity.toFixed(0)}/s; peak outstanding ${over.peakOutstanding}; heap after GC ${((heapAfter - heapBefore) / 1024).toFixed(0)} KiB`);
      check(over.errors === 0, `no connection error (${over.errors}${over.firstError ? `: ${over.firstError}` : ''})`);
      check(Object.keys(over.statuses).every((s) => s === '200' || s === '503'), `only 200 and 503 (${JSON.stringify(over.statuses)})`);
      check(over.missingRetryAfter === 0, 'every 503 has Retry-After');
      check(q !== undefined && q.percentile(99) < 1000, `503 p99 under 1 s (${q?.percentile(99).toFixed(1)} ms)`);
      check(heapAfter - heapBefore < 16 * 1024 * 1024, 'gateway heap growth under 16 MiB');
      const rec = await closedLoop(stack.origin, { connections: workers, paths: ['/svc/fib/30'], durationMs: 3000 });
      figure('overload', `recovery: ${describe(rec)}`);
      check(rec.errors === 0 && Object.keys(rec.statuses).every((s) => s === '200'), 'after the overload every request is a 200');
      check(rec.requests / rec.seconds > capacity * 0.7, `full rate again (${(rec.requests / rec.seconds).toFixed(0)}/s of ${capacity.toFixed(0)}/s)`);
    } finally {
      const exit = await stack.stop();
      check(exit.code === 0, `SIGTERM exits 0 after the overload (${JSON.stringify(exit)})`);
    }
  }
}

console.log(`\n${figures.length} figures; ${failures.length === 0 ? 'all checks passed' : `FAILED: ${failures.join('; ')}`}`);
process.exit(failures.length === 0 ? 0 : 1);
