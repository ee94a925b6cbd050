// Request hygiene through the whole gateway (DESIGN: requests that could desynchronise a front
// and a handler are rejected before a handler sees them). For each request the client gets the
// status, and the handler receives nothing: a valid request sent afterwards is the very first
// message the handler gets, and the pool's `sent` counter moved by exactly that one.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { fakeHandler, handlerConf, startGateway } from './helpers/gateway.js';

const H = handlerConf('/h/', '5e6f7a8b-0000-4000-8000-0000hygiene0');
const MAX_HEADERS = 8;
const rig = await startGateway({ handlers: [H], settings: { 'limits.header_count': MAX_HEADERS } });
const handler = await fakeHandler(H, rig.pool('/h/'));
after(async () => {
  handler.stop();
  await rig.close();
});

let probes = 0;

/** The request is answered `status` (connection closed), and the handler never saw it. */
async function refused(bytes: string, status: number): Promise<void> {
  const pool = rig.pool('/h/');
  const sentBefore = pool.stats.sent;
  const c = await rig.client();
  c.write(bytes);
  const r = await c.response();
  assert.equal(r.status, status, JSON.stringify(bytes));
  assert.equal(r.headers.connection, 'close');
  await c.end();

  const probe = `/h/probe/${++probes}`;
  const d = await rig.client();
  d.write(`GET ${probe} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
  const { msg } = await handler.next('the probe request');
  assert.equal(msg.path, probe, 'the refused request must not reach the handler');
  assert.equal(pool.stats.sent - sentBefore, 1);
  await handler.reply(msg.connId, 'HTTP/1.1 204 No Content\r\n\r\n');
  assert.equal((await d.response()).status, 204);
}

const CASES: Array<[string, string, number]> = [
  ['duplicate Host', 'GET /h/a HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\n\r\n', 400],
  ['Transfer-Encoding on HTTP/1.0', 'POST /h/a HTTP/1.0\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n', 400],
  ['Transfer-Encoding gzip, chunked (not only chunked)', 'POST /h/a HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n', 501],
  ['Transfer-Encoding identity', 'POST /h/a HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: identity\r\n\r\nhello', 400],
  ['Content-Length with Transfer-Encoding', 'POST /h/a HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n', 400],
  ['Content-Length twice', 'POST /h/a HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello', 400],
  [
    `more header lines than limits.header_count (${MAX_HEADERS})`,
    `GET /h/a HTTP/1.1\r\nHost: localhost\r\n${Array.from({ length: MAX_HEADERS }, (_, i) => `X-H${i}: v\r\n`).join('')}\r\n`,
    431,
  ],
  ['asterisk-form target', 'OPTIONS * HTTP/1.1\r\nHost: localhost\r\n\r\n', 400],
  ['a raw # in the target', 'GET /h/a#frag HTTP/1.1\r\nHost: localhost\r\n\r\n', 400],
  ['absolute-form target', 'GET http://localhost/h/a HTTP/1.1\r\nHost: localhost\r\n\r\n', 400],
  ['a bad percent-escape', 'GET /h/%zz HTTP/1.1\r\nHost: localhost\r\n\r\n', 400],
];

for (const [name, bytes, status] of CASES) {
  test(`refused before the handler: ${name} → ${status}`, () => refused(bytes, status));
}

test(`exactly limits.header_count (${MAX_HEADERS}) header lines still pass`, async () => {
  const c = await rig.client();
  const lines = Array.from({ length: MAX_HEADERS - 1 }, (_, i) => `X-H${i}: v\r\n`).join('');
  c.write(`GET /h/at-limit HTTP/1.1\r\nHost: localhost\r\n${lines}\r\n`);
  const { msg } = await handler.next();
  assert.equal(msg.path, '/h/at-limit');
  assert.equal(msg.headers['x-h6'], 'v');
  await handler.reply(msg.connId, 'HTTP/1.1 204 No Content\r\n\r\n');
  assert.equal((await c.response()).status, 204);
});
