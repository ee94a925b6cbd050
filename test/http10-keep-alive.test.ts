// HTTP/1.0 keep-alive (RFC 9112 §9.3 and Appendix C.2.2): an HTTP/1.0 client that sends
// `Connection: keep-alive` keeps its connection only if the response says `Connection:
// keep-alive`, so every answer the gateway keeps open must say it, whoever made the answer: a
// handler, an app route, a Dir, the gateway's own short answers. An answer that cannot be kept (no length
// to frame it) says `Connection: close` and ends the connection. Without keep-alive an
// HTTP/1.0 request is answered and its connection closed.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { fakeHandler, handlerConf, startGateway, type RawClient } from './helpers/gateway.js';

const H = handlerConf('/h/', '1a2b3c4d-0000-4000-8000-0000000http10');
const rig = await startGateway(
  { handlers: [H], routes: [`'/static/': Dir(base='static/', index_file='index.html', default_ctype='text/plain')`] },
  { app: { 'GET /app/text': () => 'from the app\n', 'GET /app/json': () => ({ ok: true }) } },
);
const handler = await fakeHandler(H, rig.pool('/h/'));
const { mkdirSync, writeFileSync } = await import('node:fs');
mkdirSync(`${rig.dir}/static`);
writeFileSync(`${rig.dir}/static/index.html`, 'static page\n');
after(async () => {
  handler.stop();
  await rig.close();
});

const ok = (body: string): string => `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n\r\n${body}`;

/** Sends an HTTP/1.0 GET on `c`; a /h/ path is answered by the fake handler with `reply`. */
async function get10(c: RawClient, path: string, keepAlive: boolean, reply = ok('from the handler')): Promise<Awaited<ReturnType<RawClient['response']>>> {
  c.write(`GET ${path} HTTP/1.0\r\nHost: localhost\r\n${keepAlive ? 'Connection: keep-alive\r\n' : ''}\r\n`);
  if (path.startsWith('/h/')) {
    const { msg } = await handler.next(`request for ${path}`);
    assert.equal(msg.headers.VERSION, 'HTTP/1.0');
    await handler.reply(msg.connId, reply);
  }
  return c.response();
}

const KEPT: Array<[string, string, string]> = [
  ['a handler route', '/h/one', 'from the handler'],
  ['an app route returning a string', '/app/text', 'from the app\n'],
  ['an app route returning JSON', '/app/json', '{"ok":true}'],
  ['a Dir route', '/static/index.html', 'static page\n'],
];

test('HTTP/1.0 with Connection: keep-alive: each kind of answer says keep-alive and the connection serves the next request', async () => {
  const c = await rig.client();
  for (const [what, path, body] of KEPT) {
    const r = await get10(c, path, true);
    assert.equal(r.status, 200, what);
    assert.equal(r.body.toString(), body, what);
    assert.equal(r.headers.connection, 'keep-alive', what);
    assert.ok(r.headers['content-length'] !== undefined, `${what}: a kept response is framed by its length`);
  }
  // The gateway's own short answers too (here Dir's 404 for a missing file).
  const missing = await get10(c, '/static/missing.txt', true);
  assert.equal(missing.status, 404);
  assert.equal(missing.headers.connection, 'keep-alive');
  // Every answer above came on one connection, still open.
  assert.equal(c.ended, false);
  c.destroy();
});

test('HTTP/1.0 keep-alive to a path no route matches: 404 with Connection: close, as Mongrel2 closes it (§6.2)', async () => {
  const c = await rig.client();
  const r = await get10(c, '/nowhere', true);
  assert.equal(r.status, 404);
  assert.equal(r.headers.connection, 'close');
  assert.equal((await c.end()).length, 0);
});

test('HTTP/1.0 keep-alive with a handler reply that has no length: Connection: close, and the connection ends after it', async () => {
  const c = await rig.client();
  c.write('GET /h/until-close HTTP/1.0\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n');
  const { msg } = await handler.next('the until-close request');
  await handler.reply(msg.connId, 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close');
  await handler.close(msg.connId);
  const r = await c.response();
  assert.equal(r.body.toString(), 'until close');
  assert.equal(r.headers.connection, 'close');
  assert.equal((await c.end()).length, 0);
});

test('HTTP/1.0 without keep-alive: every kind of answer says Connection: close and ends the connection', async () => {
  for (const [what, path, body] of [...KEPT, ['the 404', '/nowhere', 'Not Found'] as [string, string, string]]) {
    const c = await rig.client();
    const r = await get10(c, path, false);
    assert.equal(r.body.toString(), body, what);
    assert.equal(r.headers.connection, 'close', what);
    assert.equal((await c.end()).length, 0, what);
  }
});
