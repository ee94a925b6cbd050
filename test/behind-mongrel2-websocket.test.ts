// WebSockets through the gateway behind a real Mongrel2 (--mongrel2): Mongrel2 speaks RFC 6455
// to the client and the gateway passes its messages through to its own Handler (rewriting only
// the connection id and PATTERN) and the Handler's bytes back. Differential: the same scripted
// session straight to a Handler of Mongrel2 and via the gateway gives the client the same bytes
// and the handler the same messages; python3-websockets runs through it too.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { pino } from 'pino';
import { Gateway } from '../gateway/gateway.js';
import { findServer, parseConfig } from '../protocol/mongrel2-conf.js';
import { parseRequest } from '../protocol/m2-request.js';
import { confText, fakeHandler, handlerConf, tempTree } from './helpers/gateway.js';
import { connectHandler, ipcEndpoint, requireMongrel2, startMongrel2 } from './helpers/mongrel2.js';
import { canonical, echo, pythonSession, session, type HandlerSide } from './helpers/ws-session.js';
import { handshakeBytes, withDeadline, WsTestClient } from './helpers/ws-client.js';

requireMongrel2(); // fails, never skips, when Mongrel2 is not installed
const cleanups: Array<() => Promise<unknown> | void> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

const SENDER = 'b3b1d000-7777-4000-8000-0000000000aa';
// Two Mongrel2s: one with '/handler' straight to a handler (the reference), one with '/' to the gateway.
const direct = { send: ipcEndpoint('direct-send'), recv: ipcEndpoint('direct-recv') };
const front = { send: ipcEndpoint('m2-send'), recv: ipcEndpoint('m2-recv') };
const m2direct = await startMongrel2({ handlers: [{ route: '/handler', sendSpec: direct.send, sendIdent: SENDER, recvSpec: direct.recv }] });
const m2 = await startMongrel2({ handlers: [{ route: '/', sendSpec: front.send, sendIdent: 'b3b1d000-7777-4000-8000-00000000front', recvSpec: front.recv }] });
for (const m of [m2direct, m2]) {
  cleanups.push(async () => {
    await m.stop();
    m.cleanup();
  });
}
const reference = await connectHandler(direct.send, direct.recv);
cleanups.push(() => reference.close());

// The gateway's own config: the same '/handler' route, its Handler with the same send_ident.
const inner = handlerConf('/handler', SENDER);
const dir = tempTree();
const config = parseConfig(confText({ handlers: [inner] }), join(dir, 'mongrel2.conf'));
const gateway = new Gateway({ config, server: findServer(config), cwd: dir, logger: pino({ level: 'silent' }), mongrel2: { sendSpec: front.send, recvSpec: front.recv } });
await gateway.start();
cleanups.push(() => gateway.close());
const handler = await fakeHandler(inner, gateway.pools[0]!);
cleanups.push(() => handler.stop());

const sides: Record<'direct' | 'gateway', HandlerSide> = {
  direct: {
    port: m2direct.port,
    async next() {
      const [frame] = await withDeadline(reference.pull.receive(), 'a message from Mongrel2');
      return { raw: frame!, msg: parseRequest(frame!) };
    },
    send: (bytes) => reference.pub.send(bytes),
  },
  gateway: { port: m2.port, next: () => handler.next('a message via the gateway'), send: (bytes) => handler.publish(bytes) },
};

test('one session straight to a Mongrel2 handler and through the gateway behind Mongrel2: same bytes, same messages', async () => {
  const results = [];
  for (const side of [sides.direct, sides.gateway]) {
    const handled = echo(side, SENDER);
    const bytes = await session(side.port);
    results.push({ bytes, messages: await handled });
  }
  const [theirs, ours] = results as [(typeof results)[0], (typeof results)[0]];
  assert.equal(ours.messages.length, theirs.messages.length);
  assert.equal(ours.messages.length, 8);
  theirs.messages.forEach((m, i) => assert.equal(canonical(ours.messages[i]!.raw, ours.messages[i]!.msg), canonical(m.raw, m.msg), `message ${i}`));
  assert.equal(ours.bytes.toString('hex'), theirs.bytes.toString('hex'), 'the client got the same bytes');
});

test('python3-websockets through Mongrel2 and the gateway', async () => {
  const handled = echo(sides.gateway, SENDER);
  const printed = await pythonSession(`ws://127.0.0.1:${m2.port}/handler/py`);
  assert.deepEqual(printed, { got: ['hello', [0, 1, 2, 254, 255], 'frag-ment', 'pong'], close_code: 1000, close_reason: '' });
  assert.equal((await handled).length, 6);
});

test('behind Mongrel2: no Handler route → 404, the client going away → a disconnect notice to the handler', async () => {
  const none = await WsTestClient.open(m2.port);
  none.write(handshakeBytes('/elsewhere'));
  assert.match(await none.head(), /^HTTP\/1\.1 404 /);
  await none.end();

  const client = await WsTestClient.open(m2.port);
  client.write(handshakeBytes('/handler/gone'));
  const hs = await handler.next('the handshake');
  assert.equal(hs.msg.kind, 'websocket-handshake');
  assert.equal(hs.msg.headers.PATTERN, '/handler');
  client.destroy();
  const gone = await handler.notice('the disconnect notice');
  assert.deepEqual([gone.msg.kind, gone.msg.connId], ['disconnect', hs.msg.connId]);
});
