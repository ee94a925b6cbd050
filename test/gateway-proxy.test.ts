// Proxy routes through the whole gateway (§8): the request reaches the upstream with its full
// original target (route prefix kept), its body and its end-to-end headers; the upstream's
// status, reason, headers and body come back; an upstream that is down gives 502 and close.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { exchange, startGateway } from './helpers/gateway.js';
import { freePort } from './helpers/net.js';

interface Seen {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}
const seen: Seen[] = [];
const upstream = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    seen.push({ method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks).toString() });
    res.statusMessage = 'Fine Indeed';
    res.setHeader('Set-Cookie', ['a=1', 'b=2']);
    res.setHeader('X-Upstream', 'yes');
    res.end(`upstream saw ${req.method!} ${req.url!}`);
  });
});
upstream.listen(0, '127.0.0.1');
await once(upstream, 'listening');
const upPort = (upstream.address() as AddressInfo).port;
const downPort = await freePort();

const rig = await startGateway({
  routes: [`'/up/': Proxy(addr='127.0.0.1', port=${upPort})`, `'/down/': Proxy(addr='127.0.0.1', port=${downPort})`],
});
after(async () => {
  await rig.close();
  upstream.close();
});

test('a Proxy route forwards the full target, headers and body, and relays the answer', async () => {
  const r = await exchange(
    rig.port,
    'POST /up/items?id=7 HTTP/1.1\r\nHost: localhost\r\nX-Client: probe\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello',
  );
  assert.equal(r.status, 200);
  assert.equal(r.reason, 'Fine Indeed');
  assert.equal(r.headers['x-upstream'], 'yes');
  assert.equal(r.headers['set-cookie'], 'a=1, b=2');
  assert.equal(r.body.toString(), 'upstream saw POST /up/items?id=7');
  const s = seen.at(-1)!;
  assert.equal(s.url, '/up/items?id=7');
  assert.equal(s.body, 'hello');
  assert.equal(s.headers.host, 'localhost');
  assert.equal(s.headers['x-client'], 'probe');
});

test('keep-alive through the proxy: two requests on one client connection', async () => {
  const c = await rig.client();
  c.write('GET /up/one HTTP/1.1\r\nHost: localhost\r\n\r\n');
  assert.equal((await c.response()).body.toString(), 'upstream saw GET /up/one');
  c.write('GET /up/two HTTP/1.1\r\nHost: localhost\r\n\r\n');
  assert.equal((await c.response()).body.toString(), 'upstream saw GET /up/two');
});

test('upstream down → 502 and the connection closes', async () => {
  const c = await rig.client();
  c.write('GET /down/x HTTP/1.1\r\nHost: localhost\r\n\r\n');
  const r = await c.response();
  assert.equal(r.status, 502);
  assert.equal(r.headers.connection, 'close');
  await c.end();
});
