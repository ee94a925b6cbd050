// Self-checks of the suite's pure parts: the wrk report parser, /proc parsing,
// the round statistics, goals and the chart.
//   node --import tsx --test bench/test/bench-lib.test.ts
// (`void test(...)`: the lint exemption for node:test covers test/ only.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseWrk, socketErrorCount } from '../lib/wrk.js';
import { parseProcStatCpu } from '../lib/proc.js';
import { ratio, roundOrder, spread } from '../lib/stats.js';
import { goalMet, goalText, vsBaseline, type Goal } from '../lib/report.js';
import { goalChart } from '../lib/chart.js';
import { areaOf } from '../lib/cpuprofile.js';
import { readMitata } from '../scenarios/protocol.js';

const WRK = `Running 5s test @ http://127.0.0.1:40000/svc/hello
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     7.74ms    3.11ms   1.02s    91.20%
    Req/Sec     5.81k   312.45     6.20k    74.00%
  Latency Distribution
     50%  680.00us
     75%    8.12ms
     90%    9.90ms
     99%   25.95ms
  28976 requests in 5.00s, 2.93MB read
  Socket errors: connect 0, read 3, write 0, timeout 2
  Non-2xx or 3xx responses: 7
Requests/sec:   5795.12
Transfer/sec:    600.12KB
`;

void test('parseWrk reads counts, percentiles in any unit, and errors', () => {
  const r = parseWrk(WRK);
  assert.equal(r.requests, 28976);
  assert.equal(r.seconds, 5);
  assert.equal(r.rps, 5795.12);
  assert.equal(r.p50Ms, 0.68);
  assert.equal(r.p99Ms, 25.95);
  assert.equal(r.maxMs, 1020);
  assert.equal(r.non2xx, 7);
  assert.deepEqual(r.socketErrors, { connect: 0, read: 3, write: 0, timeout: 2 });
  assert.equal(socketErrorCount(r), 5);
});

void test('parseWrk rejects a report without latency percentiles', () => {
  assert.throws(() => parseWrk(WRK.replace(/\s+99%.*\n/, '\n')), /99% latency/);
});

void test('parseProcStatCpu counts fields after the last ")" (names may hold spaces and parentheses)', () => {
  // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime ...
  const stat = '4242 (node (x) y) S 1 4242 4242 0 -1 4194304 100 0 0 0 1234 567 0 0 20 0 11 0';
  assert.equal(parseProcStatCpu(stat), 1234 + 567);
  assert.throws(() => parseProcStatCpu('garbage'), /malformed/);
});

void test('spread gives median, min and max, ignoring non-finite values', () => {
  assert.deepEqual(spread([3, 1, 2]), { median: 2, min: 1, max: 3, n: 3 });
  assert.deepEqual(spread([4, 1, 3, 2]), { median: 2.5, min: 1, max: 4, n: 4 });
  assert.equal(spread([Number.NaN, 5]).median, 5);
  assert.equal(spread([]).n, 0);
  assert.ok(Number.isNaN(ratio(1, 0)));
});

void test('roundOrder reverses every other round', () => {
  assert.deepEqual(roundOrder(['a', 'b', 'c'], 0), ['a', 'b', 'c']);
  assert.deepEqual(roundOrder(['a', 'b', 'c'], 1), ['c', 'b', 'a']);
  assert.deepEqual(roundOrder(['a', 'b', 'c'], 2), ['a', 'b', 'c']);
});

void test('goals are met in the direction their operator says', () => {
  const g: Goal = { id: 'x', label: 'x', value: 0.9, range: [0.8, 1], op: '>=', target: 0.95 };
  assert.equal(goalMet(g), false);
  assert.equal(goalMet({ ...g, op: '<=' }), true);
  assert.equal(goalMet({ ...g, value: Number.NaN }), undefined);
  assert.match(goalText(g), /0\.90 \(0\.80–1\.00\), goal >= 0\.95: MISSED/);
  assert.equal(vsBaseline(110, 100, false), '+10.0%');
  assert.equal(vsBaseline(50, 100, true), 'baseline');
});

void test('the chart draws one bar per goal, coloured by the verdict, with escaped labels', () => {
  const goals: Goal[] = [
    { id: 'a', label: 'a <b>', value: 1.2, range: [1.1, 1.3], op: '>=', target: 1 },
    { id: 'b', label: 'b', value: 3, range: [3, 3], op: '<=', target: 2 },
    { id: 'c', label: 'c', value: Number.NaN, range: [Number.NaN, Number.NaN], op: '<=', target: 2 },
  ];
  const svg = goalChart(goals, 'title & more');
  assert.equal((svg.match(/<rect x=/g) ?? []).length, 2);
  assert.ok(svg.includes('#2e8b57') && svg.includes('#c0392b'));
  assert.ok(svg.includes('a &lt;b&gt;') && svg.includes('title &amp; more'));
  assert.ok(svg.includes('>n/a<'));
});

void test('areaOf names m2gate folders, packages, node internals and V8 frames', () => {
  assert.equal(areaOf('file:///srv/app/dist/zmq/send-queue.js', '#pump'), 'm2gate zmq/');
  assert.equal(areaOf('file:///srv/app/dist/gateway/handler/link-pool.js', '#pick'), 'm2gate gateway/');
  assert.equal(areaOf('file:///srv/app/node_modules/piscina/dist/index.js', 'postTask'), 'piscina');
  assert.equal(areaOf('node:internal/streams/readable', 'push'), 'node internal');
  assert.equal(areaOf('', '(garbage collector)'), 'GC');
});

void test('readMitata takes the first run of each benchmark', () => {
  const text = JSON.stringify({ benchmarks: [{ alias: 'x', group: 1, runs: [{ stats: { avg: 10, p50: 9, p99: 20, min: 1, max: 30 } }] }] });
  assert.deepEqual(readMitata(text), [{ name: 'x', group: 1, avgNs: 10, p50Ns: 9, p99Ns: 20 }]);
});
