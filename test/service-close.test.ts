// Mongrel2 never closes a handler-served connection by itself (§4.4): after an
// HTTP/1.0 request (without keep-alive) or a `Connection: close` one the
// service sends the close message (an empty reply, §4.3) right after the
// response. Exact bytes with a fake front; EOF at a raw client behind Mongrel2.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { encodeClose } from '../protocol/m2-reply.js';
import { fakeFront, fixtureRoutes, gate, isProbe, mongrel2Front, parseHttp, startService, stopAll, type FakeFront, type ServiceProcess } from './helpers/service.js';

const PROBES = fixtureRoutes('probes.mjs');
after(stopAll);

let shared: { front: FakeFront; svc: ServiceProcess } | undefined;
async function setup(): Promise<{ front: FakeFront; svc: ServiceProcess }> {
  if (!shared) {
    const front = await fakeFront();
    shared = { front, svc: await startService([PROBES, '--send', front.send, '--recv', front.recv, '--workers', '2']) };
  }
  return shared;
}

/** The reply for `connId`, then asserts the next message is exactly the close message for it. */
async function expectReplyThenClose(front: FakeFront, connId: number): Promise<ReturnType<typeof parseHttp>> {
  const reply = await front.next();
  assert.deepEqual(reply.ids, [connId]);
  assert.ok(reply.body.length > 0);
  const close = await front.nextRaw();
  assert.deepEqual(close, encodeClose(front.sender, connId));
  assert.equal(close.toString('latin1'), `${front.sender} ${String(connId).length}:${connId}, `);
  return parseHttp(reply.body);
}

/** The reply for `connId`, then proves no close followed: the next message is the reply to a later request. */
async function expectReplyNoClose(front: FakeFront, connId: number, probeConnId: number): Promise<void> {
  const reply = await front.next();
  assert.deepEqual(reply.ids, [connId]);
  await front.request(probeConnId, '/t/nowhere');
  const next = await front.next();
  assert.deepEqual(next.ids, [probeConnId], 'a close message followed the reply');
  assert.ok(next.body.length > 0);
}

test('HTTP/1.0 request: reply, then the close message', async () => {
  const { front } = await setup();
  await front.request(1, '/t/hello', { version: 'HTTP/1.0' });
  assert.equal((await expectReplyThenClose(front, 1)).body, 'hello');
});

test('Connection: close (any case): reply, then the close message', async () => {
  const { front } = await setup();
  await front.request(2, '/t/hello', { headers: { connection: 'close' } });
  await expectReplyThenClose(front, 2);
  await front.request(3, '/t/hello', { headers: { connection: 'Keep-Alive, Close' } });
  await expectReplyThenClose(front, 3);
});

test("the service's own answers (404, 504) are followed by the close message too", async () => {
  const { front } = await setup();
  await front.request(4, '/t/nowhere', { version: 'HTTP/1.0' });
  assert.equal((await expectReplyThenClose(front, 4)).status, 404);
  await front.request(5, '/t/hold-briefly', { query: gate().query('close-504'), headers: { connection: 'close' } });
  assert.equal((await expectReplyThenClose(front, 5)).status, 504);
});

test('HTTP/1.1 and HTTP/1.0 with keep-alive: no close message', async () => {
  const { front } = await setup();
  await front.request(6, '/t/hello');
  await expectReplyNoClose(front, 6, 60);
  await front.request(7, '/t/hello', { version: 'HTTP/1.0', headers: { connection: 'keep-alive' } });
  await expectReplyNoClose(front, 7, 70);
});

test('requests pipelined after a closing one are dropped: the connection is gone', async () => {
  const { front, svc } = await setup();
  const slow = gate();
  // Both sent before the first has started: the second is in the service (behind the first,
  // on the same socket) before the gate opens, however loaded the machine is.
  await front.request(8, '/t/hold', { query: slow.query('closing'), headers: { connection: 'close' } });
  await front.request(8, '/t/hello');
  await svc.waitFor(isProbe('started', 'closing'));
  slow.open();
  await expectReplyThenClose(front, 8);
  // Nothing more for 8: the next message is for a later request.
  await front.request(80, '/t/nowhere');
  assert.deepEqual((await front.next()).ids, [80]);
});

/** Writes a raw request and reads until the server closes the connection. */
async function readUntilEof(port: number, raw: string): Promise<string> {
  const socket: Socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  socket.write(raw);
  let data = '';
  socket.setEncoding('latin1').on('data', (d: string) => (data += d));
  await once(socket, 'end');
  socket.destroy();
  return data;
}

test('behind Mongrel2: the client sees EOF after the response to HTTP/1.0 and to Connection: close', async () => {
  const front = await mongrel2Front();
  await startService([PROBES, '--send', front.send, '--recv', front.recv, '--workers', '1']);
  const http10 = await readUntilEof(front.m2.port, 'GET /t/hello HTTP/1.0\r\nHost: localhost\r\n\r\n');
  assert.match(http10, /^HTTP\/1\.1 200 OK\r\n/);
  assert.match(http10, /\r\n\r\nhello$/);
  const close = await readUntilEof(front.m2.port, 'GET /t/hello HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
  assert.match(close, /\r\n\r\nhello$/);

  // Keep-alive: the same socket serves a second request.
  const socket = connect(front.m2.port, '127.0.0.1');
  await once(socket, 'connect');
  socket.setEncoding('latin1');
  let data = '';
  const until = (text: RegExp): Promise<void> =>
    new Promise((resolve) => {
      const check = (): void => {
        if (text.test(data)) {
          socket.off('data', onData);
          resolve();
        }
      };
      const onData = (d: string): void => {
        data += d;
        check();
      };
      socket.on('data', onData);
      check();
    });
  socket.write('GET /t/hello HTTP/1.1\r\nHost: localhost\r\n\r\n');
  await until(/hello$/);
  data = '';
  socket.write('GET /t/whoami HTTP/1.1\r\nHost: localhost\r\n\r\n');
  await until(/"pid":\d+/);
  assert.equal(socket.readyState, 'open');
  socket.destroy();
});
