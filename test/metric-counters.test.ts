// The hot-path metric stores (admin/prom.ts, admin/gateway-metrics.ts): plain counters that
// prom-client reads when scraped must print exactly what a prom-client metric would.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { BucketHistogram } from '../admin/prom.js';
import { GatewayMetrics } from '../admin/gateway-metrics.js';

test('BucketHistogram: cumulative buckets with le, +Inf, _sum and _count, as Prometheus reads them', async () => {
  const r = new Registry();
  const h = new BucketHistogram(r, 'x_seconds', 'x', [0.1, 1]);
  const a = h.series({ route: 'GET /a' });
  for (const v of [0.05, 0.1, 0.5, 3]) a.observe(v);
  const text = await r.metrics();
  assert.match(text, /# TYPE x_seconds histogram/);
  const lines = text.split('\n').filter((l) => l.startsWith('x_seconds'));
  assert.deepEqual(lines, [
    'x_seconds_bucket{route="GET /a",le="0.1"} 2',
    'x_seconds_bucket{route="GET /a",le="1"} 3',
    'x_seconds_bucket{route="GET /a",le="+Inf"} 4',
    'x_seconds_sum{route="GET /a"} 3.65',
    'x_seconds_count{route="GET /a"} 4',
  ]);
  // The same series object comes back for the same labels.
  h.series({ route: 'GET /a' }).observe(0.2);
  assert.match(await r.metrics(), /x_seconds_count\{route="GET \/a"\} 5/);
});

test('requests_total counts by kind, method (unknown → other) and status class; windows see each request', async () => {
  const m = new GatewayMetrics({ scrape: () => ({ inFlight: 0, handlers: [], bytes: { in: 0, out: 0 }, refused: {} as never, failures: [], queueWait: [], linkServices: [] }) });
  for (let i = 0; i < 3; i++) m.requestDone('app', 'GET', 200, 0.001);
  m.requestDone('handler', 'POST', 503, 0.002, 'tcp://h');
  m.requestDone('none', 'BREW', 404, 0.0001);
  const text = (await m.metrics()).body;
  const counts = text.split('\n').filter((l) => l.startsWith('m2gate_requests_total{'));
  assert.deepEqual(counts, [
    'm2gate_requests_total{kind="app",method="GET",status="2xx"} 3',
    'm2gate_requests_total{kind="handler",method="POST",status="5xx"} 1',
    'm2gate_requests_total{kind="none",method="other",status="4xx"} 1',
  ]);
  assert.match(text, /m2gate_request_duration_seconds_count\{kind="app"\} 3/);
  assert.equal(m.all.snapshot().count, 5);
  assert.equal(m.byKind.app.snapshot().count, 3);
  assert.equal(m.handlerWindow('tcp://h').snapshot().errors, 1);
});
