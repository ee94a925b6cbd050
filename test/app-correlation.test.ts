// 1,000 concurrent app-route requests, each doing a ctx.call to the slow echo
// service with its own token, through two real `m2gate service` processes on
// one handler pool: every reply must reach the caller that sent the request
// (correlation by CONN_ID, DESIGN.md "Flow of one request" step 6), never
// another one, and nothing may be left pending.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { pino } from 'pino';
import { Agent, request } from 'undici';
import { Gateway } from '../gateway/gateway.js';
import { findServer, parseConfig } from '../protocol/mongrel2-conf.js';
import { confText, handlerConf, tempTree } from './helpers/gateway.js';
import { spawnService, stopAll, ROOT } from './helpers/service.js';

const N = 1000;

const rejections: unknown[] = [];
process.on('unhandledRejection', (reason) => rejections.push(reason));

const SVC = handlerConf('/svc/', '0a1b2c3d-0000-4000-8000-0000corr0svc');
const dir = tempTree();
const config = parseConfig(confText({ handlers: [SVC] }), join(dir, 'mongrel2.conf'));
const app = (await import(pathToFileURL(join(ROOT, 'test/fixtures/apps/call-app.mjs')).href)) as { default: unknown };
const gateway = new Gateway({ config, server: findServer(config), cwd: dir, port: 0, host: '127.0.0.1', logger: pino({ level: 'warn' }), app: app.default });
const port = await gateway.start();
const pool = gateway.pools[0]!;
// Room for the whole burst in each service's queue, so every request is answered 200.
const args = ['--send', SVC.sendSpec, '--recv', SVC.recvSpec, '--workers', '2', '--max-queue', String(N)];
const services = [spawnService(args), spawnService(args)];
await Promise.all([...services.map((s) => s.ready()), pool.whenPeer()]);
const agent = new Agent({ connections: N, keepAliveTimeout: 1000 });

after(async () => {
  await agent.close();
  await gateway.close();
  await stopAll();
});

test(`${N} concurrent app-route calls: each caller gets the reply to its own request`, async (t) => {
  const tokens = Array.from({ length: N }, (_, i) => `tok-${i}-${randomUUID()}`);
  // Different delays (0-3 ms) so the replies come back in another order than the requests went.
  const results = await Promise.all(
    tokens.map(async (token, i) => {
      const res = await request(`http://127.0.0.1:${port}/app/echo/${token}?ms=${i % 4}`, { dispatcher: agent });
      return { token, status: res.statusCode, body: (await res.body.json()) as { token: string; echoed: string; status: number } };
    }),
  );
  const wrong = results.filter((r) => r.status !== 200 || r.body.token !== r.token || r.body.echoed !== r.token || r.body.status !== 200);
  assert.deepEqual(wrong, [], 'every response carries its own token');
  assert.equal(new Set(results.map((r) => r.body.echoed)).size, N);
  assert.equal(pool.pending, 0);
  assert.equal(pool.stats.sent, N);
  assert.equal(pool.stats.unknownIds, 0);
  assert.equal(pool.stats.foreignSender, 0);
  // Stopped, the services have written all their log lines (the pipe may lag the replies).
  await Promise.all(services.map((s) => s.stop()));
  const served = services.map((s) => s.filter((l) => l.msg === 'request' && l.status === 200).length);
  t.diagnostic(`requests served per service process: ${served.join(', ')}`);
  assert.equal(served.reduce((a, b) => a + b, 0), N);
  assert.deepEqual(rejections, []);
});
