import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LatencyWindow } from '../admin/latency-window.js';

function clockAt(start: number): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => { t += ms; } };
}

test('latency window: quantiles fall within one bucket (25 %) above the true value', () => {
  const c = clockAt(1_000_000);
  const w = new LatencyWindow(c.now);
  for (let i = 1; i <= 1000; i++) w.record(i / 10, 200); // 0.1 … 100 ms
  c.advance(1000);
  const s = w.snapshot();
  assert.equal(s.count, 1000);
  assert.ok(s.p50Ms >= 50 && s.p50Ms <= 50 * 1.25, `p50 ${s.p50Ms}`);
  assert.ok(s.p99Ms >= 99 && s.p99Ms <= 99 * 1.25, `p99 ${s.p99Ms}`);
  assert.equal(s.errors, 0);
});

test('latency window: rate over the seconds covered, errors are 5xx only', () => {
  const c = clockAt(5_000_000);
  const w = new LatencyWindow(c.now);
  for (let sec = 0; sec < 10; sec++) {
    for (let i = 0; i < 100; i++) w.record(1, i < 3 ? 503 : i < 5 ? 404 : 200);
    c.advance(1000);
  }
  const s = w.snapshot();
  assert.equal(s.count, 1000);
  assert.equal(s.errors, 30);
  assert.ok(Math.abs(s.rps - 100) < 0.01, `rps ${s.rps}`);
});

test('latency window: requests older than 60 s drop out, and a reused slot starts empty', () => {
  const c = clockAt(7_000_000);
  const w = new LatencyWindow(c.now);
  for (let i = 0; i < 50; i++) w.record(2000, 500);
  c.advance(30_000);
  for (let i = 0; i < 10; i++) w.record(1, 200);
  c.advance(30_500); // the first second is now 60.5 s old; its slot is reused below
  assert.equal(w.snapshot().count, 10);
  w.record(1, 200);
  const s = w.snapshot();
  assert.equal(s.count, 11);
  assert.equal(s.errors, 0);
  assert.ok(s.p99Ms < 2, `p99 ${s.p99Ms}`);
  c.advance(120_000);
  assert.deepEqual(w.snapshot(), { rps: 0, count: 0, errors: 0, p50Ms: 0, p99Ms: 0 });
});

test('latency window: zero, negative, NaN and huge latencies land in the end buckets', () => {
  const c = clockAt(9_000_000);
  const w = new LatencyWindow(c.now);
  for (const ms of [0, -1, Number.NaN, 1e9]) w.record(ms, 200);
  const s = w.snapshot();
  assert.equal(s.count, 4);
  assert.ok(s.p50Ms <= 0.05);
  assert.ok(s.p99Ms > 60_000);
});

test('latency window: one made later over the same traffic divides by the same seconds when given its start', () => {
  const c = clockAt(7_000_000);
  const early = new LatencyWindow(c.now);
  c.advance(9000);
  const late = new LatencyWindow(c.now, 7_000_000);
  for (let i = 0; i < 100; i++) {
    early.record(1, 200);
    late.record(1, 200);
  }
  c.advance(1000);
  assert.equal(early.snapshot().rps, 10);
  assert.equal(late.snapshot().rps, early.snapshot().rps);
});
