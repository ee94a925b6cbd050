// Issue #18, item 4: an app route that never answers gets a deadline (its own
// `timeoutMs`, else the gateway's handler timeout): the client gets 504
// M2G_ERR_APP_TIMEOUT, `req.signal` fires with that reason (also for a handler
// that reads the signal only later), and a ctx.call still waiting is aborted,
// so the service gets its disconnect notice.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { Agent, request } from 'undici';
import { Gateway } from '../gateway/gateway.js';
import { defineApp, type AppRequest } from '../gateway/app.js';
import { ERROR_CODES, type M2gateError } from '../protocol/errors.js';
import { findServer, parseConfig } from '../protocol/mongrel2-conf.js';
import { confText, fakeHandler, handlerConf } from './helpers/gateway.js';

const never = new Promise<never>(() => {});
/** Each route's request, by route, with when its signal fired (performance.now()) and why. */
const seen = new Map<string, { req: AppRequest; abortedAt?: number; reason?: unknown }>();
const track = (name: string, req: AppRequest, listen: boolean): void => {
  const entry: { req: AppRequest; abortedAt?: number; reason?: unknown } = { req };
  seen.set(name, entry);
  if (listen) {
    req.signal.addEventListener('abort', () => {
      entry.abortedAt = performance.now();
      entry.reason = req.signal.reason;
    });
  }
};

const app = defineApp({
  'GET /app/own': { timeoutMs: 150, handler: (req) => (track('own', req, true), never) },
  'GET /app/default': (req) => (track('default', req, true), never),
  // Never touches req.signal while running: the controller is made lazily, later.
  'GET /app/lazy': { timeoutMs: 100, handler: (req) => (track('lazy', req, false), never) },
  'GET /app/long': { timeoutMs: 1500, handler: (req) => (track('long', req, true), never) },
  'GET /app/call': { timeoutMs: 200, handler: (_req, ctx) => ctx.call('/raw/held', { timeoutMs: 60_000 }) },
});

const handler = handlerConf('/raw/', 'a1b2c3d4-0000-4000-8000-00000deadl1e');
const text = confText({ handlers: [handler] });
const config = parseConfig(text, 'mongrel2.conf');
// The default deadline is the handler timeout; ctx.call in /app/call asks for longer.
const gateway = new Gateway({ config, server: findServer(config), cwd: '.', port: 0, host: '127.0.0.1', logger: pino({ level: 'silent' }), handlerTimeoutMs: 400, app });
const port = await gateway.start();
const fake = await fakeHandler(handler, gateway.pools[0]!);
const agent = new Agent({ keepAliveTimeout: 100, headersTimeout: 10_000, bodyTimeout: 10_000 });
after(async () => {
  fake.stop();
  await agent.close();
  await gateway.close();
});

async function get(path: string): Promise<{ status: number; body: string; ms: number; at: number }> {
  const t0 = performance.now();
  const res = await request(`http://127.0.0.1:${port}${path}`, { dispatcher: agent });
  const body = await res.body.text();
  const at = performance.now();
  return { status: res.statusCode, body, ms: at - t0, at };
}

test("a route that never answers gets 504 at its own timeoutMs, and its signal fires with M2G_ERR_APP_TIMEOUT", async () => {
  const res = await get('/app/own');
  assert.equal(res.status, 504);
  assert.match(res.body, /app route 'GET \/app\/own' did not answer within 150 ms/);
  // Not before the deadline (timer granularity: a millisecond or two).
  assert.ok(res.ms >= 145, `answered after ${res.ms} ms`);
  const entry = seen.get('own')!;
  assert.ok(entry.abortedAt !== undefined && entry.abortedAt <= res.at, 'the signal fired before the 504 arrived');
  assert.equal((entry.reason as M2gateError).code, ERROR_CODES.APP_TIMEOUT);
});

test('without timeoutMs the deadline is the gateway handler timeout', async () => {
  const res = await get('/app/default');
  assert.equal(res.status, 504);
  assert.match(res.body, /within 400 ms/);
  assert.ok(res.ms >= 395, `answered after ${res.ms} ms`);
  assert.equal((seen.get('default')!.reason as M2gateError).code, ERROR_CODES.APP_TIMEOUT);
});

test('a handler that reads req.signal only after the deadline finds it aborted', async () => {
  const res = await get('/app/lazy');
  assert.equal(res.status, 504);
  const { signal } = seen.get('lazy')!.req;
  assert.equal(signal.aborted, true);
  assert.equal((signal.reason as M2gateError).code, ERROR_CODES.APP_TIMEOUT);
});

test('a shorter deadline that starts later still expires first (one timer for all routes)', async () => {
  const long = get('/app/long');
  // Started after /app/long is running, so its deadline is the earlier one.
  while (!seen.has('long')) await new Promise((resolve) => setImmediate(resolve));
  const own = await get('/app/own');
  assert.equal(own.status, 504);
  assert.equal(seen.get('long')!.abortedAt, undefined, 'the 1500 ms route was cut with the 150 ms one');
  const res = await long;
  assert.equal(res.status, 504);
  assert.match(res.body, /within 1500 ms/);
});

test("past the route's deadline its ctx.call is aborted: the service gets a disconnect notice", async () => {
  const pending = get('/app/call');
  const sent = await fake.next('the call');
  assert.equal(sent.msg.kind, 'http');
  const res = await pending;
  assert.equal(res.status, 504);
  assert.match(res.body, /did not answer within 200 ms/);
  const notice = await fake.notice('the disconnect notice');
  assert.equal(notice.msg.kind, 'disconnect');
  assert.equal(notice.msg.connId, sent.msg.connId);
});

