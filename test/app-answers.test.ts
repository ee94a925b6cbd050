// What an app route's handler gives back, however it gives it: a value at once, a promise,
// a thenable that is not a Promise, a synchronous throw, a rejection, a value that cannot be
// sent (a cycle, a bad header). Each request gets exactly one answer; a failure is a 500 with
// an error id, logged, and the connection serves the next request.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request } from 'undici';
import { Gateway } from '../gateway/gateway.js';
import { defineApp } from '../gateway/app.js';
import { findServer, parseConfig } from '../protocol/mongrel2-conf.js';
import { confText, logCapture } from './helpers/gateway.js';

const cyclic: Record<string, unknown> = {};
cyclic.self = cyclic;

const app = defineApp({
  'GET /app/now': () => 'at once\n',
  'GET /app/promise': () => new Promise((resolve) => setImmediate(() => resolve({ status: 201, body: 'later\n' }))),
  'GET /app/thenable': () => ({ then: (resolve: (v: unknown) => void) => resolve({ data: 'thenable' }) }),
  'GET /app/throws': () => {
    throw new Error('thrown at once');
  },
  'GET /app/rejects': () => Promise.reject(new Error('rejected later')),
  'GET /app/then-throws': () => ({
    get then(): never {
      throw new Error('then getter threw');
    },
  }),
  'GET /app/cycle': () => cyclic,
  'GET /app/bad-header': () => ({ status: 200, headers: { 'X-Bad': 'a\r\nb' }, body: 'x' }),
});

const logs = logCapture();
const config = parseConfig(confText({ handlers: [] }), 'mongrel2.conf');
const gateway = new Gateway({ config, server: findServer(config), cwd: '.', port: 0, host: '127.0.0.1', logger: logs.logger, app });
const port = await gateway.start();
// One connection for every request: a failed answer must leave it usable.
const agent = new Agent({ connections: 1, keepAliveTimeout: 10_000 });
after(async () => {
  await agent.close();
  await gateway.close();
});

async function get(path: string): Promise<{ status: number; body: string; type: string | undefined }> {
  const res = await request(`http://127.0.0.1:${port}${path}`, { dispatcher: agent });
  return { status: res.statusCode, body: await res.body.text(), type: res.headers['content-type'] as string | undefined };
}

test('a value returned at once, a promise and a thenable are each answered once', async () => {
  assert.deepEqual(await get('/app/now'), { status: 200, body: 'at once\n', type: 'text/plain; charset=utf-8' });
  assert.deepEqual(await get('/app/promise'), { status: 201, body: 'later\n', type: 'text/plain; charset=utf-8' });
  assert.deepEqual(await get('/app/thenable'), { status: 200, body: '{"data":"thenable"}', type: 'application/json' });
});

test('a throw, a rejection, a throwing then, a cycle and a bad header each give one 500 with an error id, logged', async () => {
  const paths = ['/app/throws', '/app/rejects', '/app/then-throws', '/app/cycle', '/app/bad-header'];
  for (const path of paths) {
    const res = await get(path);
    assert.equal(res.status, 500, path);
    assert.match(res.body, /^Internal Server Error \(error id [0-9a-f-]{36}\)\n$/, path);
    const id = /error id ([0-9a-f-]{36})/.exec(res.body)![1];
    assert.ok(logs.lines.some((l) => l.msg === 'app route failed' && l.errorId === id), `${path}: its error id is in the log`);
  }
  // The same connection still serves.
  assert.equal((await get('/app/now')).body, 'at once\n');
});
