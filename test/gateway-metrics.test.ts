// Issue #13: what the admin listener shows of a real gateway and a real service.
//
// A Gateway in-process with `metrics: true` and an AdminServer on port 0 over its adminSource():
// /svc/ is a link Handler served by a real `m2gate service --connect` (dist/, `npm run build`
// first), /ps/ a PUSH/SUB Handler whose handler the test drives by hand, /www/ a Dir. After a
// known number of requests of each kind, /metrics has exact counts by kind, method and status
// class, refusals and Handler failures by cause, and the link service's own metrics (sent over
// the link as METRICS) with `handler` and `service` labels; /status.json has the Handlers'
// services, threads and last-minute windows; /readyz names a Handler with no service. A gateway
// without `metrics` records nothing per request. A PUSH/SUB `m2gate service --admin` serves
// its own m2gate_service_* metrics and /readyz.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { AdminServer } from '../admin/admin-server.js';
import type { GatewayStatus } from '../admin/status.js';
import { Gateway } from '../gateway/gateway.js';
import { findServer, parseConfig } from '../protocol/mongrel2-conf.js';
import { fakeHandler, get, handlerConf, tempTree, type FakeHandler, type RawResponse } from './helpers/gateway.js';
import { ipcEndpoint } from './helpers/mongrel2.js';
import { fakeFront, isMsg, spawnService, stopAll } from './helpers/service.js';
import { until } from './helpers/link.js';

const HANDLER_TIMEOUT_MS = 1000;
const N_LINK = 5;
const N_PS = 3;
const N_DIR = 2;

const PS = handlerConf('/ps/', '3e7a0000-0000-4000-8000-00000metrics');
const LINK_SPEC = ipcEndpoint('link');
const dir = tempTree({}, 'm2gate-metrics-');
mkdirSync(join(dir, 'www'));
writeFileSync(join(dir, 'www', 'index.html'), 'the dir\n');
const conf = `ps = Handler(send_spec='${PS.sendSpec}', send_ident='${PS.sendIdent}', recv_spec='${PS.recvSpec}', recv_ident='', protocol='json')
ln = Handler(send_spec='${LINK_SPEC}', send_ident='3e7a0000-0000-4000-8000-0000000link0', recv_spec='tcp://127.0.0.1:1', recv_ident='', protocol='json', transport='link')
www = Dir(base='www/', index_file='index.html', default_ctype='text/plain')
main = Server(uuid="3e7a0000-0000-4000-8000-00000server0", name="metrics", port=6767, bind_addr="127.0.0.1",
  access_log="logs/access.log", error_log="logs/error.log", pid_file="run/mongrel2.pid", default_host="localhost",
  hosts=[Host(name="localhost", routes={ '/ps/': ps, '/svc/': ln, '/www/': www })])
settings = { "server.daemonize": 0 }
servers = [main]
`;
const config = parseConfig(conf, join(dir, 'mongrel2.conf'));
const silent = pino({ level: 'silent' });
const gateway = new Gateway({ config, server: findServer(config), cwd: dir, port: 0, host: '127.0.0.1', logger: silent, handlerTimeoutMs: HANDLER_TIMEOUT_MS, metrics: true });
const port = await gateway.start();
const admin = new AdminServer(gateway.adminSource());
const adminPort = (await admin.listen({ host: '127.0.0.1', port: 0 })).port;
const psPool = gateway.pools.find((p) => p.config.sendSpec === PS.sendSpec)!;
let handler: FakeHandler | undefined;
after(async () => {
  handler?.stop();
  await stopAll();
  await gateway.close();
  await admin.close();
});

/** A GET on the admin listener. */
function adminGet(path: string, to = adminPort): Promise<RawResponse> {
  return get(to, path);
}

/** The value of the sample `name{labels}` (exactly those labels) in a Prometheus text body, or undefined. */
function sample(body: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of body.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got: Record<string, string> = {};
    for (const [, k, v] of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) got[k!] = v!;
    if (Object.keys(got).length === Object.keys(labels).length && Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[3]);
  }
  return undefined;
}

async function metrics(): Promise<string> {
  const res = await adminGet('/metrics');
  assert.equal(res.status, 200);
  assert.match(res.headers['content-type'] ?? '', /^text\/plain; version=0\.0\.4/);
  return res.body.toString();
}

/** Every request the gateway took has closed: each close records it (requestDone) before leaving the in-flight set. */
async function settled(): Promise<void> {
  await until(() => (gateway.inFlight === 0 ? true : undefined), 'the gateway has no request in flight');
}

// The link service: the demo routes, one thread.
const service = spawnService(['--connect', LINK_SPEC, '--workers', '1']);
await service.waitFor(isMsg('connected to the gateway'));
const serviceName = `${hostname()}/${service.pid}`;

test('gateway: exact counts by kind and cause on /metrics, the link service its own, /status.json and /readyz agree', async () => {
  // The PUSH/SUB Handler has no handler yet: not ready, naming it (and only it), and a request gets 503.
  const notReady = await adminGet('/readyz');
  assert.equal(notReady.status, 503);
  assert.equal(notReady.body.toString(), `not ready\n- no service connected to Handler ${PS.sendSpec}\n`);
  assert.equal((await get(port, '/ps/early')).status, 503);

  handler = await fakeHandler(PS, psPool);
  const ready = await adminGet('/readyz');
  assert.equal(ready.status, 200, ready.body.toString());

  for (let i = 0; i < N_LINK; i++) {
    const res = await get(port, '/svc/hello');
    assert.equal(res.status, 200);
    assert.equal(res.body.toString(), 'hello');
  }
  const h = handler;
  const viaHandler = async (path: string, answer: (connId: number) => Promise<void>): Promise<RawResponse> => {
    const pending = get(port, path);
    const got = await h.next(`the request for ${path}`);
    await answer(Number(got.msg.connId));
    return pending;
  };
  for (let i = 0; i < N_PS; i++) {
    const res = await viaHandler(`/ps/ok/${i}`, (id) => h.reply(id, 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'));
    assert.equal(res.status, 200);
  }
  assert.equal((await viaHandler('/ps/garbage', (id) => h.reply(id, 'this is not HTTP\r\n\r\n'))).status, 502);
  // No reply: 504 at the handler timeout (and a disconnect notice the handler takes below).
  assert.equal((await viaHandler('/ps/silent', () => Promise.resolve())).status, 504);
  for (let i = 0; i < N_DIR; i++) {
    const res = await get(port, '/www/');
    assert.equal(res.status, 200);
    assert.equal(res.body.toString(), 'the dir\n');
  }
  assert.equal((await get(port, '/nowhere')).status, 404);
  await settled();

  const body = await metrics();
  const requests = (kind: string, status: string): number | undefined => sample(body, 'm2gate_requests_total', { kind, method: 'GET', status });
  assert.equal(requests('handler', '2xx'), N_LINK + N_PS);
  // The 503 without a service, the 502 and the 504.
  assert.equal(requests('handler', '5xx'), 3);
  assert.equal(requests('dir', '2xx'), N_DIR);
  assert.equal(requests('none', '4xx'), 1);
  assert.equal(requests('app', '2xx'), undefined, 'no app route was asked');
  assert.equal(sample(body, 'm2gate_refused_total', { cause: 'not_found' }), 1);
  const failures = (cause: string, status: string, spec = PS.sendSpec): number | undefined => sample(body, 'm2gate_handler_failures_total', { handler: spec, status, cause });
  assert.equal(failures('no_service', '503'), 1);
  assert.equal(failures('bad_reply', '502'), 1);
  assert.equal(failures('timeout', '504'), 1);
  // Counters read at scrape time leave out zeros.
  assert.equal(failures('no_service', '503', LINK_SPEC), undefined);
  assert.equal(sample(body, 'm2gate_handler_services', { handler: LINK_SPEC }), 1);
  assert.equal(sample(body, 'm2gate_handler_services', { handler: PS.sendSpec }), 1);
  assert.equal(sample(body, 'm2gate_handler_threads', { handler: LINK_SPEC }), 1);
  assert.equal(sample(body, 'm2gate_requests_in_flight'), 0);
  const durations = sample(body, 'm2gate_request_duration_seconds_count', { kind: 'handler' });
  assert.equal(durations, N_LINK + N_PS + 3);

  // The link service's own numbers, from its METRICS report (on registering, then every 5 s).
  // A report has no event here, so scrape until it shows, with a bound past two report periods.
  let replied: string;
  for (const end = Date.now() + 12_000; ; ) {
    replied = await metrics();
    if (sample(replied, 'm2gate_service_tasks_replied_total', { handler: LINK_SPEC, service: serviceName }) === N_LINK) break;
    assert.ok(Date.now() < end, `no METRICS report with ${N_LINK} replies from ${serviceName}:\n${replied.split('\n').filter((l) => l.startsWith('m2gate_service_tasks')).join('\n')}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.equal(sample(replied, 'm2gate_service_tasks_received_total', { handler: LINK_SPEC, service: serviceName }), N_LINK);
  assert.equal(sample(replied, 'm2gate_service_threads', { handler: LINK_SPEC, service: serviceName }), 1);
  // Only the link service reports; the PUSH/SUB handler cannot.
  assert.doesNotMatch(replied, new RegExp(`m2gate_service_\\w+\\{[^}]*handler="${PS.sendSpec.replace(/[/.]/g, '\\$&')}"`));

  const statusRes = await adminGet('/status.json');
  assert.equal(statusRes.status, 200);
  const status = JSON.parse(statusRes.body.toString()) as GatewayStatus;
  assert.equal(status.ready, true);
  assert.deepEqual(status.notReady, []);
  // The 503, 502 and 504 of /ps/ and the 404 besides the 200s.
  assert.equal(status.requests, N_LINK + N_PS + 3 + N_DIR + 1);
  assert.equal(status.byKind.dir.count, N_DIR);
  const link = status.handlers.find((x) => x.name === LINK_SPEC)!;
  assert.equal(link.transport, 'link');
  assert.deepEqual(link.routes, ['/svc/']);
  assert.equal(link.connected, 1);
  assert.equal(link.threads, 1);
  assert.equal(link.window.count, N_LINK);
  assert.equal(link.window.errors, 0);
  assert.deepEqual(
    link.services.map((s) => [s.name, s.up, s.threads]),
    [[serviceName, true, 1]],
  );
  const ps = status.handlers.find((x) => x.name === PS.sendSpec)!;
  assert.equal(ps.transport, 'mongrel2');
  assert.equal(ps.connected, 1);
  assert.equal(ps.window.count, N_PS + 3);
  assert.equal(ps.window.errors, 3);
  assert.deepEqual(ps.errors, { '502': 1, '503': 1, '504': 1 });

  // The handler goes away: not ready again, naming it.
  const notice = await h.notice('the disconnect notice of the 504');
  assert.equal(notice.msg.path, '@*');
  handler.stop();
  handler = undefined;
  await until(() => (psPool.hasPeers ? undefined : true), 'the gateway has seen the handler go');
  const gone = await adminGet('/readyz');
  assert.equal(gone.status, 503);
  assert.match(gone.body.toString(), new RegExp(`no service connected to Handler ${PS.sendSpec}`));
});

test('a gateway without metrics records nothing per request, and has no admin source', async (t) => {
  const text = `www = Dir(base='www/', index_file='index.html', default_ctype='text/plain')
main = Server(uuid="3e7a0000-0000-4000-8000-00000server1", name="plain", port=6767, bind_addr="127.0.0.1",
  access_log="logs/access.log", error_log="logs/error.log", pid_file="run/mongrel2.pid", default_host="localhost",
  hosts=[Host(name="localhost", routes={ '/www/': www })])
settings = { "server.daemonize": 0 }
servers = [main]
`;
  const plainConfig = parseConfig(text, join(dir, 'plain.conf'));
  const plain = new Gateway({ config: plainConfig, server: findServer(plainConfig), cwd: dir, port: 0, host: '127.0.0.1', logger: silent });
  const plainPort = await plain.start();
  t.after(() => plain.close());
  assert.throws(() => plain.adminSource(), /metrics: true/);
  assert.equal((await get(plainPort, '/www/')).status, 200);
  assert.equal((await get(plainPort, '/nowhere')).status, 404);
  const status = plain.status();
  assert.equal(status.requests, 2, 'the plain counters still count');
  assert.equal(status.window.count, 0);
  assert.equal(status.byKind.dir.count, 0);
});

test('service: m2gate service --send/--recv --admin serves its own m2gate_service_* metrics and /readyz', async () => {
  const front = await fakeFront();
  const svc = spawnService(['--send', front.send, '--recv', front.recv, '--workers', '1', '--admin', '127.0.0.1:0']);
  const listening = await svc.waitFor(isMsg('admin listening'));
  const m = /^http:\/\/127\.0\.0\.1:(\d+)\/$/.exec(String(listening.admin));
  assert.ok(m, String(listening.admin));
  const svcAdmin = Number(m[1]);
  await svc.ready();
  const ready = await adminGet('/readyz', svcAdmin);
  assert.equal(ready.status, 200, ready.body.toString());
  await front.request(7, '/svc/hello');
  const reply = await front.next();
  assert.equal(reply.body.toString().endsWith('hello'), true, reply.body.toString());
  await svc.waitFor((l) => l.msg === 'request' && l.connId === 7);
  const res = await adminGet('/metrics', svcAdmin);
  assert.equal(res.status, 200);
  const body = res.body.toString();
  assert.equal(sample(body, 'm2gate_service_tasks_received_total'), 1);
  assert.equal(sample(body, 'm2gate_service_tasks_replied_total'), 1);
  assert.equal(sample(body, 'm2gate_service_threads'), 1);
  assert.equal(sample(body, 'm2gate_service_task_duration_seconds_count', { route: 'GET /svc/hello' }), 1);
  assert.ok(sample(body, 'm2gate_service_process_cpu_seconds_total') !== undefined, 'default metrics carry the service prefix');
  assert.doesNotMatch(body, /^m2gate_requests_total/m, 'a service has no gateway metrics');
  // A service has no dashboard.
  assert.equal((await adminGet('/status.json', svcAdmin)).status, 404);
  front.close();
});
