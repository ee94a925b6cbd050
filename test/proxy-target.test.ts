// Proxy routes (§8): a node:http gateway stand-in calls ProxyTarget.serve(); upstreams are real
// node:http / raw TCP servers on port 0; the client is undici (or raw TCP where undici would
// refuse or rewrite the headers under test).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, createServer as createTcpServer, type AddressInfo, type Server as TcpServer, type Socket } from 'node:net';
import { EventEmitter, once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { Agent, request } from 'undici';
import { ProxyTarget } from '../gateway/proxy-target.js';
import { freePort } from './helpers/net.js';

const upstreamEvents = new EventEmitter();
let upstream: Server;
let rawUpstream: TcpServer;
const rawSockets = new Set<Socket>();
let rawRequestHead = '';
let gateway: Server;
let gatewayPort: number;
let agent: Agent;
let main: ProxyTarget;
let slow: ProxyTarget;
let down: ProxyTarget;
let hop: ProxyTarget;
let lastServe: Promise<void> = Promise.resolve();

function upstreamHandler(req: IncomingMessage, res: ServerResponse): void {
  const url = req.url ?? '';
  if (url.startsWith('/app/echo')) {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ method: req.method, url, headers: req.headers }));
  } else if (url === '/app/upload') {
    res.writeHead(200, {
      'x-seen-te': String(req.headers['transfer-encoding']),
      'x-seen-cl': String(req.headers['content-length']),
    });
    req.pipe(res); // echo: the body crosses the proxy in both directions
  } else if (url === '/app/cookies') {
    res.setHeader('Set-Cookie', ['a=1; Path=/', 'b=2; HttpOnly']);
    res.setHeader('Content-Length', '2'); // node omits it on its own for HEAD
    res.end('ok');
  } else if (url === '/slow/hang') {
    upstreamEvents.emit('hang', req, res); // never answers
  } else if (url === '/app/die') {
    res.writeHead(200, { 'content-length': '100000' });
    res.write(Buffer.alloc(10, 0x62), () => res.socket?.destroy());
  } else if (url === '/app/abort-before-head') {
    upstreamEvents.emit('abort-before-head', req, res);
  } else if (url === '/app/abort-mid-body') {
    res.writeHead(200, { 'content-length': '1000000' });
    res.write(Buffer.alloc(1000, 0x63));
    upstreamEvents.emit('abort-mid-body', req, res);
  } else {
    res.statusCode = 404;
    res.end();
  }
}

async function listen(server: Server | TcpServer): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

/** Raw TCP request (Connection: close) so hop-by-hop headers reach the gateway as written. */
async function rawRequest(head: string): Promise<{ head: string; body: string }> {
  const sock = connect(gatewayPort, '127.0.0.1');
  let data = '';
  sock.on('data', (c: Buffer) => { data += c.toString('latin1'); });
  sock.write(head);
  await once(sock, 'end');
  sock.destroy();
  const split = data.indexOf('\r\n\r\n');
  return { head: data.slice(0, split), body: data.slice(split + 4) };
}

before(async () => {
  upstream = createServer(upstreamHandler);
  upstream.keepAliveTimeout = 100;
  const upPort = await listen(upstream);
  rawUpstream = createTcpServer((sock) => {
    rawSockets.add(sock);
    sock.on('close', () => rawSockets.delete(sock));
    let buf = '';
    sock.on('data', (c: Buffer) => {
      buf += c.toString('latin1');
      if (!buf.includes('\r\n\r\n')) return;
      rawRequestHead = buf;
      buf = '';
      sock.write(
        'HTTP/1.1 200 OK\r\nConnection: X-Up-Hop\r\nX-Up-Hop: 1\r\nKeep-Alive: timeout=77\r\n' +
          'Proxy-Agent: up\r\nUpgrade: foo\r\nTrailer: X-T\r\nTransfer-Encoding: chunked\r\nX-Up-Pass: yes\r\n\r\n' +
          '5\r\nhello\r\n0\r\nX-T: t\r\n\r\n',
      );
    });
  });
  const rawPort = await listen(rawUpstream);
  main = new ProxyTarget({ kind: 'proxy', addr: '127.0.0.1', port: upPort });
  slow = new ProxyTarget({ kind: 'proxy', addr: '127.0.0.1', port: upPort }, { headersTimeoutMs: 200 });
  down = new ProxyTarget({ kind: 'proxy', addr: '127.0.0.1', port: await freePort() });
  hop = new ProxyTarget({ kind: 'proxy', addr: '127.0.0.1', port: rawPort });
  gateway = createServer((req, res) => {
    const url = req.url ?? '';
    const target = url.startsWith('/slow/') ? slow : url.startsWith('/down/') ? down : url.startsWith('/hop') ? hop : main;
    lastServe = target.serve(req, res);
  });
  gatewayPort = await listen(gateway);
  agent = new Agent({ keepAliveTimeout: 10, keepAliveMaxTimeout: 10 });
});

after(async () => {
  await agent.close();
  for (const s of [gateway, upstream]) s.closeAllConnections();
  for (const sock of rawSockets) sock.destroy();
  await Promise.all([main, slow, down, hop].map((t) => t.destroy()));
  await Promise.all([gateway, upstream, rawUpstream].map(async (s) => { s.close(); await once(s, 'close'); }));
});

// A regression here would hang on an event that never comes: fail instead (not a sleep).
const HANG_GUARD = { timeout: 10_000 };

const url = (path: string): string => `http://127.0.0.1:${gatewayPort}${path}`;

test('GET: path kept with prefix and query, Host and X-Forwarded-For passed through', async () => {
  const r = await request(url('/app/echo/x?y=1&z=%2F'), {
    dispatcher: agent,
    headers: { host: 'example.test', 'x-forwarded-for': '10.1.2.3', 'x-custom': 'v' },
  });
  assert.equal(r.statusCode, 200);
  const seen = (await r.body.json()) as { method: string; url: string; headers: Record<string, string> };
  assert.equal(seen.method, 'GET');
  assert.equal(seen.url, '/app/echo/x?y=1&z=%2F');
  assert.equal(seen.headers.host, 'example.test');
  assert.equal(seen.headers['x-forwarded-for'], '10.1.2.3');
  assert.equal(seen.headers['x-custom'], 'v');
});

test('POST: a 256 KiB streamed (chunked) body goes up and comes back intact', async () => {
  const chunks = Array.from({ length: 16 }, () => randomBytes(16 * 1024));
  const r = await request(url('/app/upload'), { dispatcher: agent, method: 'POST', body: Readable.from(chunks) });
  assert.equal(r.statusCode, 200);
  assert.equal(r.headers['x-seen-te'], 'chunked');
  const body = Buffer.from(await r.body.arrayBuffer());
  assert.ok(body.equals(Buffer.concat(chunks)));
});

test('POST with Content-Length: the length reaches the upstream and the body round-trips', async () => {
  const data = randomBytes(256 * 1024);
  const r = await request(url('/app/upload'), { dispatcher: agent, method: 'POST', body: data });
  assert.equal(r.headers['x-seen-cl'], String(data.length));
  assert.equal(r.headers['x-seen-te'], 'undefined');
  assert.ok(Buffer.from(await r.body.arrayBuffer()).equals(data));
});

test('HEAD: the upstream Content-Length is kept and no body follows', async () => {
  const r = await request(url('/app/cookies'), { dispatcher: agent, method: 'HEAD' });
  assert.equal(r.statusCode, 200);
  assert.equal(r.headers['content-length'], '2');
  assert.equal(await r.body.text(), '');
});

test('several Set-Cookie headers stay several', async () => {
  const r = await request(url('/app/cookies'), { dispatcher: agent });
  assert.deepEqual(r.headers['set-cookie'], ['a=1; Path=/', 'b=2; HttpOnly']);
  assert.equal(await r.body.text(), 'ok');
});

test('hop-by-hop headers are removed in both directions, end-to-end ones kept', async () => {
  const r = await rawRequest(
    'GET /hop/x HTTP/1.1\r\nHost: example.test:8080\r\nConnection: close, X-Hop-Custom\r\n' +
      'Keep-Alive: timeout=99\r\nTE: trailers\r\nProxy-Authorization: Basic eA==\r\nX-Hop-Custom: 1\r\nX-Pass: yes\r\n\r\n',
  );
  const up = rawRequestHead.toLowerCase();
  assert.match(up, /^get \/hop\/x http\/1\.1\r\n/);
  assert.match(up, /\r\nhost: example\.test:8080\r\n/);
  assert.match(up, /\r\nx-pass: yes\r\n/);
  for (const gone of ['x-hop-custom', 'timeout=99', '\r\nte:', 'proxy-authorization', 'close']) {
    assert.ok(!up.includes(gone), `upstream saw ${gone}`);
  }
  const down = r.head.toLowerCase();
  assert.match(down, /^http\/1\.1 200 ok\r\n/);
  assert.match(down, /\r\nx-up-pass: yes\r\n/);
  for (const gone of ['x-up-hop', 'timeout=77', 'proxy-agent', 'upgrade', 'trailer', 'x-t:']) {
    assert.ok(!down.includes(gone), `client saw ${gone}`);
  }
  assert.ok(!r.body.includes('X-T'), 'upstream trailer leaked');
  assert.ok(r.body.includes('hello'));
});

test('a request undici refuses to send (duplicate Host) → 400, not 502', async () => {
  const r = await rawRequest('GET /app/echo HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\nConnection: close\r\n\r\n');
  assert.match(r.head, /^HTTP\/1\.1 400 Bad Request\r\n/);
  assert.equal(r.body, 'Bad Request');
});

test('upstream down → 502 Bad Gateway, text/plain, connection closed (GET and POST with body)', async () => {
  const r = await request(url('/down/x'), { dispatcher: agent });
  assert.equal(r.statusCode, 502);
  assert.equal(r.headers['content-type'], 'text/plain; charset=utf-8');
  assert.equal(r.headers.connection, 'close');
  assert.equal(await r.body.text(), 'Bad Gateway');
  const post = await request(url('/down/x'), { dispatcher: agent, method: 'POST', body: randomBytes(64 * 1024) });
  assert.equal(post.statusCode, 502);
  assert.equal(await post.body.text(), 'Bad Gateway');
});

test('upstream silent past headersTimeoutMs → 504 Gateway Timeout', HANG_GUARD, async () => {
  const hung = once(upstreamEvents, 'hang');
  const r = await request(url('/slow/hang'), { dispatcher: agent });
  assert.equal(r.statusCode, 504);
  assert.equal(await r.body.text(), 'Gateway Timeout');
  const [, ures] = (await hung) as [IncomingMessage, ServerResponse];
  if (!ures.destroyed) await once(ures, 'close'); // the timed-out upstream request was dropped
});

test('upstream dies mid-body → the client sees an error, not a hang', HANG_GUARD, async () => {
  await assert.rejects(async () => {
    const r = await request(url('/app/die'), { dispatcher: agent });
    assert.equal(r.statusCode, 200);
    await r.body.arrayBuffer();
  });
  await lastServe;
});

test('client abort before the response head aborts the upstream request', HANG_GUARD, async () => {
  const seen = once(upstreamEvents, 'abort-before-head');
  const ac = new AbortController();
  const pending = request(url('/app/abort-before-head'), { dispatcher: agent, signal: ac.signal });
  const [, ures] = (await seen) as [IncomingMessage, ServerResponse];
  const closed = once(ures, 'close');
  ac.abort();
  await assert.rejects(pending);
  await closed;
  assert.equal(ures.writableFinished, false);
  await lastServe;
});

test('client abort mid-body aborts the upstream request', HANG_GUARD, async () => {
  const seen = once(upstreamEvents, 'abort-mid-body');
  const ac = new AbortController();
  const r = await request(url('/app/abort-mid-body'), { dispatcher: agent, signal: ac.signal });
  assert.equal(r.statusCode, 200);
  const [, ures] = (await seen) as [IncomingMessage, ServerResponse];
  const closed = once(ures, 'close');
  await once(r.body, 'data');
  ac.abort();
  await assert.rejects(r.body.arrayBuffer());
  await closed;
  assert.equal(ures.writableFinished, false);
});
