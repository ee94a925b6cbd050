// Self-checks of the report pieces added for issue #7: Markdown tables and
// report, the ratio table, /proc/<pid>/status parsing, the paced wrk script,
// and the fib calibration.
//   node --import tsx --test bench/test/bench-report.test.ts
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { table, type Goal } from '../lib/report.js';
import { markdownReport } from '../lib/markdown.js';
import { ratioTable, totalCpu } from '../lib/ratio-table.js';
import { parseProcStatus } from '../lib/memory.js';
import { pacedScript, type WrkResult } from '../lib/wrk.js';
import { fib, calibrateFib } from '../fib.js';
import type { HttpSample } from '../lib/measure.js';
import type { Outcome } from '../lib/rounds.js';

void test('table writes a Markdown pipe table, right-aligning all but the first column and escaping pipes', () => {
  const lines = table(['name', 'n'], [['a|b', '12'], ['c']]).split('\n');
  assert.equal(lines.length, 4);
  // Columns are at least 3 wide: a Markdown rule needs '--:'.
  assert.equal(lines[0], '| name |   n |');
  assert.equal(lines[1], '| ---- | --: |');
  assert.equal(lines[2], '| a\\|b |  12 |');
  // A short row is padded with empty cells, so every row has the header's column count.
  assert.equal(lines[3]!.split(' | ').length, 2);
});

const wrk = {} as WrkResult;
const sample = (rps: number, cpu: Record<string, number>): HttpSample => ({ rps, p50Ms: 1, p99Ms: 2, requests: 1000, errors: 0, cpuPer1k: cpu, threadsPer1k: {}, otherLoad: 0, wrk });

void test('ratioTable gives throughput and total server CPU as ratios to the baseline, and says what did not run', () => {
  const outcomes: Array<Outcome<HttpSample>> = [
    { key: 'base', label: 'base', samples: [sample(1000, { front: 0.02 })], failures: [] },
    { key: 'two', label: 'two procs', samples: [sample(500, { front: 0.03, handler: 0.05 })], failures: [] },
    { key: 'gone', label: 'gone', samples: [], failures: [], skipped: 'wrk' },
  ];
  const text = ratioTable(outcomes, 'base', ['front', 'handler']);
  const row = text.split('\n').find((l) => l.startsWith('| two procs'))!;
  assert.match(row, /\| +0\.50× \|/);
  assert.match(row, /\| +0\.080 \| +4\.00× \|/);
  assert.match(text, /\| gone +\| +SKIPPED \|/);
  assert.match(text, /- gone: SKIPPED, missing wrk/);
  assert.equal(totalCpu(sample(1, { a: 0.5, b: 0.25 })), 0.75);
});

void test('markdownReport lists every goal with its verdict and every scenario under its own heading', () => {
  const goals: Goal[] = [
    { id: 'x', label: 'x | y', value: 0.5, range: [0.4, 0.6], op: '>=', target: 0.9 },
    { id: 'z', label: 'z', value: 2, range: [2, 2], op: '<=', target: 3 },
  ];
  const md = markdownReport({
    title: 'T',
    header: ['node v20'],
    goals,
    missing: ['mongrel2'],
    chart: 'chart.svg',
    results: [{ name: 'front', status: 'partial', missing: [], text: 'body text', goals, data: {} }],
  });
  assert.match(md, /^# T\n/);
  assert.match(md, /\| x \\\| y \| 0\.50 \(0\.40–0\.60\) \| >= 0\.9 \| \*\*missed\*\* \|/);
  assert.match(md, /\| z \| 2\.00 \| <= 3 \| met \|/);
  assert.match(md, /!\[goal ratios\]\(chart\.svg\)/);
  assert.match(md, /## front \(partial\)\n\nbody text/);
  assert.match(md, /\*\*Missing\*\*[^\n]*mongrel2/);
});

void test('parseProcStatus reads VmRSS and VmHWM in bytes and rejects text without them', () => {
  const status = 'Name:\tnode\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\nThreads:\t11\n';
  assert.deepEqual(parseProcStatus(status), { rss: 102400 * 1024, hwm: 204800 * 1024 });
  assert.throws(() => parseProcStatus('Name:\tnode\nVmRSS:\t1 kB\n'), /VmHWM/);
});

void test('pacedScript defines the delay() hook with a whole number of milliseconds', () => {
  assert.equal(pacedScript(10), 'function delay()\n  return 10\nend\n');
  assert.match(pacedScript(2.6), /return 3\n/);
});

void test('fib matches the sequence, and the calibration returns an n in range with a positive time', () => {
  assert.deepEqual([0, 1, 2, 3, 10, 20].map(fib), [0, 1, 1, 2, 55, 6765]);
  const c = calibrateFib(0.05);
  assert.ok(c.n >= 15 && c.n <= 40, `n ${c.n}`);
  assert.ok(c.ms > 0);
});
