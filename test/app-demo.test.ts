// The built-in demo app (gateway/demo-app.ts, after Brubeck's
// demo_service_client.py) in the gateway in-process, with a real `m2gate
// service` running the demo routes behind /svc/: one route answered in the
// gateway, one that waits for the slow echo service (ctx.call), one that
// answers 202 at once and logs the service's reply later (ctx.send).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import { pino } from 'pino';
import { Agent, request } from 'undici';
import { Gateway } from '../gateway/gateway.js';
import demoApp from '../gateway/demo-app.js';
import { findServer, parseConfig } from '../protocol/mongrel2-conf.js';
import { confText, handlerConf, tempTree } from './helpers/gateway.js';
import { spawnService, stopAll, type LogLine } from './helpers/service.js';

const HANDLER_TIMEOUT_MS = 2500;

const rejections: unknown[] = [];
process.on('unhandledRejection', (reason) => rejections.push(reason));

const logLines: LogLine[] = [];
const logged = new EventEmitter();
const logger = pino({ level: 'info' }, {
  write(text: string) {
    const line = JSON.parse(text) as LogLine;
    logLines.push(line);
    logged.emit('line', line);
  },
});

function logLine(pred: (line: LogLine) => boolean, what: string): Promise<LogLine> {
  const found = logLines.find(pred);
  if (found) return Promise.resolve(found);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      logged.off('line', check);
      reject(new Error(`no gateway log line '${what}' within 10 s`));
    }, 10_000);
    const check = (line: LogLine): void => {
      if (!pred(line)) return;
      clearTimeout(timer);
      logged.off('line', check);
      resolve(line);
    };
    logged.on('line', check);
  });
}

const SVC = handlerConf('/svc/', '0a1b2c3d-0000-4000-8000-0000demoapp01');
const dir = tempTree();
const config = parseConfig(confText({ handlers: [SVC] }), join(dir, 'mongrel2.conf'));
const gateway = new Gateway({
  config,
  server: findServer(config),
  cwd: dir,
  port: 0,
  host: '127.0.0.1',
  logger,
  app: demoApp,
  handlerTimeoutMs: HANDLER_TIMEOUT_MS,
});
const port = await gateway.start();
const pool = gateway.pools[0]!;
const svc = spawnService(['--send', SVC.sendSpec, '--recv', SVC.recvSpec, '--workers', '2']);
await Promise.all([svc.ready(), pool.whenPeer()]);
const agent = new Agent({ keepAliveTimeout: 1000 });

after(async () => {
  await agent.close();
  await gateway.close();
  await stopAll();
});

async function get(path: string): Promise<{ status: number; type: string; body: string }> {
  const res = await request(`http://127.0.0.1:${port}${path}`, { dispatcher: agent });
  return { status: res.statusCode, type: String(res.headers['content-type']), body: await res.body.text() };
}

test('GET /app/hello is answered by the gateway itself', async () => {
  const sentBefore = pool.stats.sent;
  const res = await get('/app/hello');
  assert.equal(res.status, 200);
  assert.equal(res.type, 'text/plain; charset=utf-8');
  assert.equal(res.body, 'hello from the gateway\n');
  assert.equal(pool.stats.sent, sentBefore, 'no service call');
});

test("GET /service/sync returns the slow service's data (ctx.call)", async () => {
  const res = await get('/service/sync?ms=0&data=sync%20data%20%E2%9C%93');
  assert.equal(res.status, 200);
  assert.deepEqual(JSON.parse(res.body), { data: 'sync data ✓', via: 'ctx.call' });
  // The defaults: 500 ms and Brubeck's greeting.
  const defaults = await get('/service/sync');
  assert.deepEqual(JSON.parse(defaults.body), { data: 'hello from the slow service', via: 'ctx.call' });
  // A service answer other than 200 becomes the app's 502.
  const bad = await get('/service/sync?ms=oops');
  assert.equal(bad.status, 502);
  assert.equal(bad.body, 'the service answered 400\n');
  assert.equal(pool.pending, 0);
});

test('GET /service/async answers 202 at once; the response handler logs the reply later (ctx.send)', async () => {
  const res = await get('/service/async?ms=0&data=async%20data');
  assert.equal(res.status, 202);
  assert.deepEqual(JSON.parse(res.body), { sent: '/svc/slow?ms=0&data=async+data', via: 'ctx.send' });
  const line = await logLine((l) => l.msg === 'async service reply' && l.data === 'async data', 'async service reply');
  assert.equal(line.status, 200);
  assert.equal(line.route, 'GET /service/async');
  assert.equal(logLines.filter((l) => l.msg === 'async service reply' && l.data === 'async data').length, 1);
  assert.equal(gateway.stats.asyncReplies, 1);
});

test('GET /service/async for work longer than the deadline: 202 first, then the response handler logs the timeout', async () => {
  // The service holds the task for 10 s and the call's deadline is 2.5 s, so
  // the 202 cannot have waited for the reply: there is none.
  const res = await get('/service/async?ms=10000&data=too%20slow');
  assert.equal(res.status, 202);
  const line = await logLine((l) => l.msg === 'async service call failed', 'async service call failed');
  assert.equal(line.code, 'M2G_ERR_CALL_TIMEOUT');
  assert.equal(line.path, '/svc/slow?ms=10000&data=too+slow');
  assert.equal(logLines.filter((l) => l.msg === 'async service reply' && l.data === 'too slow').length, 0);
  assert.equal(pool.pending, 0);
  assert.deepEqual(rejections, []);
});
