// The admin listener (admin/admin-server.ts) over a fake source, on port 0: each route's status,
// content type and body; HEAD, other methods, unknown paths; a source that throws (500, and the
// listener keeps serving); parseAdminAddress's accepted and refused forms; close() with a
// keep-alive connection still open.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AdminServer, parseAdminAddress, type AdminSource, type Readiness } from '../admin/admin-server.js';
import { RawClient, type RawResponse } from './helpers/gateway.js';
import { ROOT } from './helpers/service.js';
import { deadline } from './helpers/link.js';

const METRICS_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
const METRICS_BODY = '# HELP m2gate_fake_total A fake.\n# TYPE m2gate_fake_total counter\nm2gate_fake_total 3\n';

/** A source the test steers: readiness, status and failures are fields. */
class FakeSource implements AdminSource {
  ready: Readiness = { ready: true, reasons: [] };
  statusValue: unknown = { version: 1, role: 'gateway', handlers: [{ name: 'tcp://x', connected: 1 }] };
  fail: 'metrics' | 'status' | 'readiness' | undefined;

  metrics(): Promise<{ contentType: string; body: string }> {
    if (this.fail === 'metrics') return Promise.reject(new Error('metrics broke'));
    return Promise.resolve({ contentType: METRICS_TYPE, body: METRICS_BODY });
  }

  status(): unknown {
    if (this.fail === 'status') throw new Error('status broke');
    return this.statusValue;
  }

  readiness(): Readiness {
    if (this.fail === 'readiness') throw new Error('readiness broke');
    return this.ready;
  }
}

const source = new FakeSource();
const errors: unknown[] = [];
const server = new AdminServer(source, (err) => errors.push(err));
const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
// A service's source: no status(), so no page and no /status.json.
const bare = new AdminServer({ metrics: () => source.metrics(), readiness: () => ({ ready: true, reasons: [] }) });
const barePort = (await bare.listen({ host: '127.0.0.1', port: 0 })).port;
const clients: RawClient[] = [];
after(async () => {
  for (const c of clients) c.destroy();
  await Promise.all([server.close(), bare.close()]);
});

async function request(method: string, path: string, to = port): Promise<RawResponse> {
  const c = await RawClient.open(to);
  clients.push(c);
  c.write(`${method} ${path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n`);
  const res = await c.response({ head: method === 'HEAD' });
  // Everything the server sent is in this one response (HEAD: no body bytes after the head).
  await c.end();
  assert.equal(c.rest().length, 0, `bytes after the ${method} ${path} response: ${JSON.stringify(c.rest().toString('latin1'))}`);
  return res;
}

const page = (name: string): Buffer => readFileSync(join(ROOT, 'public', 'admin', name));

test('/healthz: 200 ok, not cached', async () => {
  const res = await request('GET', '/healthz');
  assert.equal(res.status, 200);
  assert.equal(res.body.toString(), 'ok\n');
  assert.equal(res.headers['content-type'], 'text/plain; charset=utf-8');
  assert.equal(res.headers['cache-control'], 'no-store');
  assert.equal(res.headers['x-content-type-options'], 'nosniff');
});

test('/readyz: 200 when ready, 503 listing each reason when not', async (t) => {
  t.after(() => (source.ready = { ready: true, reasons: [] }));
  const ok = await request('GET', '/readyz');
  assert.equal(ok.status, 200);
  assert.equal(ok.body.toString(), 'ready\n');
  source.ready = { ready: false, reasons: ['draining', 'no service connected to Handler tcp://127.0.0.1:9999'] };
  const not = await request('GET', '/readyz');
  assert.equal(not.status, 503);
  assert.equal(not.headers['content-type'], 'text/plain; charset=utf-8');
  assert.equal(not.body.toString(), 'not ready\n- draining\n- no service connected to Handler tcp://127.0.0.1:9999\n');
});

test("/metrics: the source's content type and body, a query string ignored", async () => {
  for (const path of ['/metrics', '/metrics?name=m2gate_fake_total']) {
    const res = await request('GET', path);
    assert.equal(res.status, 200, path);
    assert.equal(res.headers['content-type'], METRICS_TYPE);
    assert.equal(res.headers['content-length'], String(Buffer.byteLength(METRICS_BODY)));
    assert.equal(res.body.toString(), METRICS_BODY);
  }
});

test('/status.json: the source status as JSON', async () => {
  const res = await request('GET', '/status.json');
  assert.equal(res.status, 200);
  assert.equal(res.headers['content-type'], 'application/json; charset=utf-8');
  assert.deepEqual(JSON.parse(res.body.toString()), source.statusValue);
});

test('the dashboard: /, /dashboard.js and /dashboard.css are the shipped files with their types', async () => {
  const cases = [
    ['/', 'index.html', 'text/html; charset=utf-8'],
    ['/dashboard.js', 'dashboard.js', 'text/javascript; charset=utf-8'],
    ['/dashboard.css', 'dashboard.css', 'text/css; charset=utf-8'],
  ] as const;
  for (const [path, file, type] of cases) {
    const res = await request('GET', path);
    assert.equal(res.status, 200, path);
    assert.equal(res.headers['content-type'], type, path);
    assert.ok(res.body.equals(page(file)), `${path} is not public/admin/${file}`);
  }
});

test('a source without status() (a service): no page and no /status.json, the rest served', async () => {
  for (const path of ['/', '/dashboard.js', '/status.json']) assert.equal((await request('GET', path, barePort)).status, 404, path);
  assert.equal((await request('GET', '/metrics', barePort)).body.toString(), METRICS_BODY);
  assert.equal((await request('GET', '/readyz', barePort)).status, 200);
});

test('HEAD: the same status and headers, no body', async () => {
  for (const path of ['/metrics', '/healthz', '/', '/status.json', '/nope']) {
    const [get, head] = [await request('GET', path), await request('HEAD', path)];
    assert.equal(head.status, get.status, path);
    assert.equal(head.headers['content-type'], get.headers['content-type'], path);
    assert.equal(head.headers['content-length'], get.headers['content-length'], path);
    assert.equal(head.body.length, 0, path);
  }
});

test('other methods: 405 with Allow: GET, HEAD', async () => {
  for (const method of ['POST', 'PUT', 'DELETE', 'OPTIONS']) {
    const res = await request(method, '/metrics');
    assert.equal(res.status, 405, method);
    assert.equal(res.headers.allow, 'GET, HEAD', method);
  }
});

test('an unknown path: 404 naming what the listener serves', async () => {
  for (const path of ['/nope', '/metrics/', '/index.html', '/../package.json']) {
    const res = await request('GET', path);
    assert.equal(res.status, 404, path);
    assert.match(res.body.toString(), /serves \/, \/metrics, \/status\.json, \/healthz, \/readyz/);
  }
});

test('a source that throws: 500, the error reported, and the listener keeps serving', async (t) => {
  t.after(() => (source.fail = undefined));
  const before = errors.length;
  for (const [fail, path] of [['metrics', '/metrics'], ['status', '/status.json'], ['readiness', '/readyz']] as const) {
    source.fail = fail;
    const res = await request('GET', path);
    assert.equal(res.status, 500, path);
    assert.equal(res.body.toString(), 'admin error\n');
    assert.equal((await request('GET', '/healthz')).status, 200, `after a failing ${path}`);
  }
  assert.deepEqual(
    errors.slice(before).map((e) => (e as Error).message),
    ['metrics broke', 'status broke', 'readiness broke'],
  );
  source.fail = undefined;
  assert.equal((await request('GET', '/metrics')).status, 200);
});

test('parseAdminAddress: HOST:PORT, :PORT, PORT and [IPv6]:PORT', () => {
  assert.deepEqual(parseAdminAddress('127.0.0.1:0'), { host: '127.0.0.1', port: 0 });
  assert.deepEqual(parseAdminAddress('0.0.0.0:6768'), { host: '0.0.0.0', port: 6768 });
  assert.deepEqual(parseAdminAddress(':9090'), { host: '127.0.0.1', port: 9090 });
  assert.deepEqual(parseAdminAddress('9090'), { host: '127.0.0.1', port: 9090 });
  assert.deepEqual(parseAdminAddress('[::1]:9090'), { host: '::1', port: 9090 });
  assert.deepEqual(parseAdminAddress('localhost:65535'), { host: 'localhost', port: 65_535 });
});

test('parseAdminAddress: refuses a bad port or no port, naming --admin', () => {
  for (const text of ['x:99999', 'host', '1.2.3.4:-1', '', ':', '1.2.3.4:', '::1:9090', '[::1]', '1.2.3.4:90a', '65536']) {
    assert.throws(
      () => parseAdminAddress(text),
      (err: Error) => err instanceof RangeError && err.message.includes('--admin') && err.message.includes(`'${text}'`),
      JSON.stringify(text),
    );
  }
});

test('close() resolves with keep-alive connections open, one idle and one mid-scrape, and ends both', async () => {
  // A scrape the test holds: the source has it (seen) and answers only when let go.
  let seen!: () => void;
  const scraped = new Promise<void>((resolve) => (seen = resolve));
  let letGo!: () => void;
  const held = new Promise<void>((resolve) => (letGo = resolve));
  const holding = new FakeSource();
  holding.metrics = async () => {
    seen();
    await held;
    return { contentType: METRICS_TYPE, body: METRICS_BODY };
  };
  const own = new AdminServer(holding);
  const bound = await own.listen({ host: '127.0.0.1', port: 0 });
  const [idle, busy] = [await RawClient.open(bound.port), await RawClient.open(bound.port)];
  clients.push(idle, busy);
  idle.write('GET /healthz HTTP/1.1\r\nHost: admin\r\n\r\n');
  const res = await idle.response();
  assert.equal(res.status, 200);
  assert.notEqual(res.headers.connection, 'close');
  busy.write('GET /metrics HTTP/1.1\r\nHost: admin\r\n\r\n');
  await deadline(scraped, 'the held scrape reached the source');
  try {
    await deadline(own.close(), 'close() with a scrape in progress');
    await deadline(Promise.all([idle.end(), busy.end()]), 'both connections ended');
    assert.equal(busy.rest().length, 0, 'the cut scrape sent nothing');
  } finally {
    letGo();
  }
  // A second close() (and one on a server that never listened) resolves too.
  await own.close();
  await new AdminServer(new FakeSource()).close();
});

test('listen() on a port in use rejects with EADDRINUSE', async () => {
  const other = new AdminServer(new FakeSource());
  await assert.rejects(other.listen({ host: '127.0.0.1', port }), { code: 'EADDRINUSE' });
  await other.close();
});
