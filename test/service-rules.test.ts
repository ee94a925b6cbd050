// The service's own answers, behind the real Mongrel2: 404 for an unknown path,
// 405 with Allow for a known path and another method, 500 with an error id (in
// the log, never a stack in the body) when a handler throws, 504 when a task
// runs past its route's or the service's timeout, with the task aborted.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request } from 'undici';
import {
  fixtureRoutes,
  gate,
  isMsg,
  isProbe,
  isRequestLog,
  mongrel2Front,
  startService,
  stopAll,
  type LogLine,
  type Mongrel2Front,
  type ServiceProcess,
} from './helpers/service.js';

const SERVICE_TIMEOUT_MS = 300;
const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/;

const agent = new Agent({ connections: 8, keepAliveTimeout: 100, keepAliveMaxTimeout: 100 });
let front: Mongrel2Front;
let svc: ServiceProcess;

before(async () => {
  front = await mongrel2Front();
  svc = await startService([fixtureRoutes('probes.mjs'), '--send', front.send, '--recv', front.recv, '--workers', '2', '--timeout', String(SERVICE_TIMEOUT_MS)]);
});
after(async () => {
  await stopAll();
  await agent.close();
});

async function get(path: string, method = 'GET'): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  const res = await request(`${front.base}${path}`, { dispatcher: agent, method: method as 'GET' });
  return { status: res.statusCode, headers: res.headers, body: await res.body.text() };
}

/** The service's log line for the request with this path (the next one from `from`). */
function logFor(path: string, from: number): Promise<LogLine> {
  return svc.waitFor((l) => isRequestLog()(l) && l.path === path, { from });
}


/** How early, by the log's clock, a timer may fire (libuv's cached loop time). */
const TIMER_SLACK_MS = 2;
test('a known route answers 200', async () => {
  const res = await get('/t/hello');
  assert.deepEqual([res.status, res.body], [200, 'hello']);
});

test('unknown path → 404', async () => {
  const from = svc.lines.length;
  for (const path of ['/nowhere', '/t/hello/extra', '/t']) {
    const res = await get(path);
    assert.equal(res.status, 404, path);
    assert.equal(res.body, 'Not Found\n');
    const line = await logFor(path, from);
    assert.deepEqual([line.status, line.route], [404, null]);
  }
});

test('known path, wrong method → 405 with Allow', async () => {
  const del = await get('/t/items', 'DELETE');
  assert.equal(del.status, 405);
  assert.equal(del.body, 'Method Not Allowed\n');
  assert.deepEqual(String(del.headers.allow).split(', ').sort(), ['GET', 'HEAD', 'PUT']);

  const post = await get('/t/hello', 'POST');
  assert.equal(post.status, 405);
  assert.equal(post.headers.allow, 'GET, HEAD');
});

test('HEAD is served by the GET route, without the body', async () => {
  const res = await get('/t/hello', 'HEAD');
  assert.equal(res.status, 200);
  assert.equal(res.headers['content-length'], '5');
  assert.equal(res.body, '');
});

test('a :param that is not valid percent-encoding → 400', async () => {
  const res = await get('/t/items/%E0%A4%A');
  assert.equal(res.status, 400);
  const ok = await get('/t/items/caf%C3%A9');
  assert.deepEqual(JSON.parse(ok.body), { id: 'café' });
});

test('a handler that throws → 500 with an error id that is in the log, and no stack or message in the body', async () => {
  const from = svc.lines.length;
  const res = await get('/t/throw');
  assert.equal(res.status, 500);
  const id = UUID.exec(res.body)?.[0];
  assert.ok(id, `no error id in ${JSON.stringify(res.body)}`);
  assert.doesNotMatch(res.body, /secret detail|\bat |probes\.mjs|Error:/);

  const logged = await svc.waitFor((l) => l.msg === 'route handler threw', { from });
  assert.equal(logged.errorId, id);
  assert.equal(logged.route, 'GET /t/throw');
  assert.match(String(logged.err), /secret detail 4242/);
  assert.match(String(logged.err), /probes\.mjs/, 'the stack goes to the log');
  assert.equal((await logFor('/t/throw', from)).status, 500);
});

test('a handler whose response would split the HTTP head → 500 with an error id, nothing injected', async () => {
  const from = svc.lines.length;
  const res = await get('/t/bad-header');
  assert.equal(res.status, 500);
  assert.equal(res.headers.injected, undefined);
  const id = UUID.exec(res.body)?.[0];
  const logged = await svc.waitFor(isMsg('route handler threw'), { from });
  assert.equal(logged.errorId, id);
});

test("a task past its route's timeout → 504, and the handler sees its signal aborted", async () => {
  const from = svc.lines.length;
  const g = gate();
  const res = await get(`/t/hold-briefly?${g.query('route-timeout')}`);
  assert.equal(res.status, 504);
  assert.equal(res.body, 'Gateway Timeout\n');
  const probe = await svc.waitFor(isProbe('aborted', 'route-timeout'), { from });
  assert.equal(probe.aborted, true);
  const line = await logFor('/t/hold-briefly', from);
  assert.equal(line.status, 504);
  // libuv starts timers from its cached loop time, which can lag performance.now() (the log's
  // clock) by a millisecond or so: the timeout fired if the answer came no earlier than that.
  assert.ok((line.ms as number) >= 150 - TIMER_SLACK_MS, `answered after ${String(line.ms)} ms, before the route's 150 ms`);
  assert.ok((line.ms as number) < SERVICE_TIMEOUT_MS, 'the route timeout did not apply');
});

test('a task past the service --timeout → 504, and the handler sees its signal aborted', async () => {
  const from = svc.lines.length;
  const g = gate();
  const res = await get(`/t/hold?${g.query('service-timeout')}`);
  assert.equal(res.status, 504);
  const probe = await svc.waitFor(isProbe('aborted', 'service-timeout'), { from });
  assert.equal(probe.aborted, true);
  const line = await logFor('/t/hold', from);
  assert.ok((line.ms as number) >= SERVICE_TIMEOUT_MS - TIMER_SLACK_MS, `answered after ${String(line.ms)} ms`);
});

test("a route's longer timeout overrides the service's", async () => {
  const from = svc.lines.length;
  const long = gate();
  const holding = get(`/t/hold-long?${long.query('long')}`);
  await svc.waitFor(isProbe('started', 'long'), { from });
  // A request started after it on the other thread times out at the service's timeout...
  const short = await get(`/t/hold?${gate().query('short')}`);
  assert.equal(short.status, 504);
  // ...while the long one is still held, and answers once released.
  long.open();
  const res = await holding;
  assert.equal(res.status, 200);
  assert.equal((JSON.parse(res.body) as { tag: string }).tag, 'long');
  assert.equal(svc.filter(isProbe('aborted', 'long')).length, 0);
});
