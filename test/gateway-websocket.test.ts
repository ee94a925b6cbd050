// The standalone gateway bridges WebSockets to a Handler as Mongrel2 does (§3.9), driven by
// a hand-written handler (fakeHandler: PULL/PUB, the test answers each message) and a raw
// client whose bytes are exact. The fixtures are the real Mongrel2's messages for the same
// client bytes: the handler must see the same header maps.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { parseRequest, type HeaderEncoding } from '../protocol/m2-request.js';
import { closePayload, encodeFrame, OPCODES } from '../protocol/ws-frame.js';
import { fakeHandler, handlerConf, startGateway, type FakeHandler, type GatewayRig } from './helpers/gateway.js';
import { fixture } from './helpers/fixtures.js';
import { clientClose, clientFrame, handshakeBytes, SWITCHING, WsTestClient } from './helpers/ws-client.js';

// The fixtures' own senders, so that the header maps compare whole.
const SENDERS = { json: '54c6755b-9628-40a4-9a2d-cc82a816345e', tnetstring: '8b3c1f0e-5d2a-4c7b-9e61-a0f4d2c3b5e7' } as const;
const LIMIT = 1024;

const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function rig(encoding: HeaderEncoding, handlerTimeoutMs = 10_000): Promise<{ gw: GatewayRig; handler: FakeHandler }> {
  const h = handlerConf('/handler', SENDERS[encoding], encoding);
  const gw = await startGateway({ handlers: [h], settings: { 'limits.websocket_message': LIMIT } }, { handlerTimeoutMs, requestTimeoutMs: 1000, headersTimeoutMs: 1000 });
  const handler = await fakeHandler(h, gw.pool('/handler'));
  cleanups.push(async () => {
    handler.stop();
    await gw.close();
  });
  return { gw, handler };
}

const sides = { json: await rig('json'), tnetstring: await rig('tnetstring') };

/** Opens a connection through the handshake and the handler's 101; returns the handler's connId. */
async function opened(side: { gw: GatewayRig; handler: FakeHandler }): Promise<{ client: WsTestClient; id: number }> {
  const client = await WsTestClient.open(side.gw.port);
  client.write(handshakeBytes('/handler/ws'));
  const hs = await side.handler.next('the handshake');
  assert.equal(hs.msg.kind, 'websocket-handshake');
  await side.handler.reply(hs.msg.connId, SWITCHING);
  assert.equal(await client.head(), SWITCHING);
  return { client, id: hs.msg.connId };
}

for (const encoding of ['json', 'tnetstring'] as const) {
  const ext = encoding === 'json' ? 'json' : 'tnet';

  test(`handshake and a text frame reach the handler as Mongrel2 sends them (fixtures, ${encoding})`, async () => {
    const side = sides[encoding];
    const client = await WsTestClient.open(side.gw.port);
    client.write(fixture('client-req-ws-handshake.http.bin'));
    const hs = await side.handler.next('the handshake');
    const theirs = parseRequest(fixture(`req-ws-handshake.${ext}.bin`));
    assert.equal(hs.msg.kind, 'websocket-handshake');
    assert.equal(hs.msg.path, theirs.path);
    assert.deepEqual(hs.msg.headers, theirs.headers);
    assert.ok(hs.msg.body.equals(theirs.body));
    // Mongrel2 writes nothing to the client before the handler's answer: neither do we.
    assert.equal(client.all.length, 0);
    await side.handler.reply(hs.msg.connId, SWITCHING);
    assert.equal(await client.head(), SWITCHING);

    client.write(fixture('client-ws-text-frame.bin'));
    const frame = await side.handler.next('the text frame');
    const theirFrame = parseRequest(fixture(`req-ws-text-frame.${ext}.bin`));
    assert.equal(frame.msg.kind, 'websocket');
    assert.equal(frame.msg.connId, hs.msg.connId);
    assert.deepEqual(frame.msg.headers, theirFrame.headers);
    assert.ok(frame.msg.body.equals(theirFrame.body));
    // Key order where Mongrel2's is not hash order: FLAGS next to x-forwarded-for.
    const keys = Object.keys(frame.msg.headers);
    assert.equal(keys.indexOf('FLAGS') - keys.indexOf('x-forwarded-for'), encoding === 'json' ? 1 : -1);

    await side.handler.reply(hs.msg.connId, encodeFrame(OPCODES.TEXT, 'world'));
    assert.deepEqual([...(await client.bytes(7))], [0x81, 0x05, 0x77, 0x6f, 0x72, 0x6c, 0x64]);
    client.destroy();
    const gone = await side.handler.notice('the disconnect notice');
    assert.equal(gone.msg.kind, 'disconnect');
    assert.equal(gone.msg.connId, hs.msg.connId);
  });
}

test('binary, fragmented (a ping in between), ping and close frames; the handler closes, no disconnect notice', async () => {
  const side = sides.json;
  const { client, id } = await opened(side);
  client.write(Buffer.concat([clientFrame(OPCODES.BINARY, Buffer.from([0, 1, 254, 255])), clientFrame(OPCODES.TEXT, 'frag-', false), clientFrame(OPCODES.PING, 'hi'), clientFrame(OPCODES.CONTINUATION, 'ment'), clientClose(1000)]));
  const got: Array<[string, string]> = [];
  for (let i = 0; i < 4; i++) {
    const m = await side.handler.next(`message ${i}`);
    assert.equal(m.msg.connId, id);
    got.push([m.msg.headers.FLAGS as string, m.msg.body.toString('hex')]);
  }
  assert.deepEqual(got, [
    ['0x82', '0001feff'],
    ['0x89', Buffer.from('hi').toString('hex')],
    ['0x81', Buffer.from('frag-ment').toString('hex')],
    ['0x88', '03e8'],
  ]);
  // The handler answers the close and closes the connection (Mongrel2 answers nothing itself).
  const closeFrame = encodeFrame(OPCODES.CLOSE, closePayload(1000));
  await side.handler.reply(id, closeFrame);
  await side.handler.close(id);
  assert.ok((await client.end()).equals(closeFrame));
  // A handler that closed the connection itself is not told it went (§3.6): the next message is the next test's.
  const { client: c2, id: id2 } = await opened(side);
  c2.destroy();
  const gone = await side.handler.notice('the next disconnect');
  assert.deepEqual([gone.msg.kind, gone.msg.connId], ['disconnect', id2]);
});

test('a broken client gets a close frame with the RFC code and the handler a disconnect notice', async () => {
  const side = sides.json;
  for (const [bytes, code] of [
    [encodeFrame(OPCODES.TEXT, 'unmasked'), 1002],
    [clientFrame(OPCODES.TEXT, Buffer.from([0xff])), 1007],
    [clientFrame(OPCODES.BINARY, Buffer.alloc(LIMIT + 1)), 1009],
  ] as const) {
    const { client, id } = await opened(side);
    client.write(bytes);
    const frame = await client.frame();
    assert.equal(frame.first, 0x88);
    assert.equal(frame.payload.readUInt16BE(0), code);
    await client.end();
    const gone = await side.handler.notice('the disconnect notice');
    assert.deepEqual([gone.msg.kind, gone.msg.connId], ['disconnect', id]);
  }
});

test('a handler may refuse the handshake with HTTP: relayed as HTTP, and a malformed refusal is a 502', async () => {
  const side = sides.json;
  const client = await WsTestClient.open(side.gw.port);
  client.write(handshakeBytes('/handler/ws'));
  const hs = await side.handler.next('the handshake');
  await side.handler.reply(hs.msg.connId, 'HTTP/1.1 403 Forbidden\r\nContent-Length: 3\r\n\r\nno\n');
  const head = await client.head();
  assert.match(head, /^HTTP\/1\.1 403 Forbidden\r\n/);
  assert.match(head, /\r\nConnection: close\r\n/i);
  assert.equal((await client.end()).toString(), 'no\n');

  const bad = await WsTestClient.open(side.gw.port);
  bad.write(handshakeBytes('/handler/ws'));
  const hs2 = await side.handler.next('the second handshake');
  await side.handler.reply(hs2.msg.connId, 'garbage\r\n\r\n');
  assert.match(await bad.head(), /^HTTP\/1\.1 502 Bad Gateway\r\n/);
  await bad.end();
});

test('no answer to the handshake within the handler timeout: 504 and a disconnect notice', async () => {
  const side = await rig('json', 300);
  const client = await WsTestClient.open(side.gw.port);
  client.write(handshakeBytes('/handler/ws'));
  const hs = await side.handler.next('the handshake');
  assert.match(await client.head(), /^HTTP\/1\.1 504 /);
  const gone = await side.handler.notice('the disconnect notice');
  assert.deepEqual([gone.msg.kind, gone.msg.connId], ['disconnect', hs.msg.connId]);
});

test("an open WebSocket outlives the gateway's request and headers timeouts", async () => {
  const side = sides.tnetstring;
  const { client, id } = await opened(side);
  // requestTimeoutMs is 1000 in this rig; node's check runs every 250 ms.
  await new Promise((resolve) => setTimeout(resolve, 1600));
  client.write(clientFrame(OPCODES.TEXT, 'still here'));
  const m = await side.handler.next('the late frame');
  assert.deepEqual([m.msg.connId, m.msg.body.toString()], [id, 'still here']);
  client.destroy();
  assert.equal((await side.handler.notice('disconnect')).msg.kind, 'disconnect');
});

test('an Upgrade that is not a WebSocket one is plain HTTP, closed after its answer; one with a body is 400', async () => {
  const side = sides.json;
  const client = await WsTestClient.open(side.gw.port);
  client.write(Buffer.from('GET /handler/h2c HTTP/1.1\r\nHost: localhost\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n'));
  const m = await side.handler.next('the plain request');
  assert.deepEqual([m.msg.kind, m.msg.headers.METHOD, m.msg.headers.upgrade], ['http', 'GET', 'h2c']);
  await side.handler.reply(m.msg.connId, 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
  assert.match(await client.head(), /^HTTP\/1\.1 200 OK\r\n/);
  assert.equal((await client.end()).toString(), 'ok');

  const withBody = await WsTestClient.open(side.gw.port);
  withBody.write(Buffer.from('POST /handler/x HTTP/1.1\r\nHost: localhost\r\nUpgrade: h2c\r\nConnection: Upgrade\r\nContent-Length: 2\r\n\r\nhi'));
  assert.match(await withBody.head(), /^HTTP\/1\.1 400 /);
  await withBody.end();
  assert.equal(side.handler.queued, 0);
});

test('a WebSocket upgrade to a route with no Handler connected is 503; shutdown sends 1001 and a disconnect', async () => {
  const h = handlerConf('/handler', SENDERS.json);
  const gw = await startGateway({ handlers: [h] });
  const client = await WsTestClient.open(gw.port);
  client.write(handshakeBytes('/handler/ws'));
  assert.match(await client.head(), /^HTTP\/1\.1 503 /);
  await client.end();

  const handler = await fakeHandler(h, gw.pool('/handler'));
  const { client: open, id } = await opened({ gw, handler });
  const closing = gw.gateway.close();
  const frame = await open.frame();
  assert.deepEqual([frame.first, frame.payload.readUInt16BE(0)], [0x88, 1001]);
  const gone = await handler.notice('the disconnect notice');
  assert.deepEqual([gone.msg.kind, gone.msg.connId], ['disconnect', id]);
  open.destroy();
  assert.equal(await closing, true);
  handler.stop();
  await gw.close();
});

test("after the client's close frame the handler has the handler timeout to close; then the gateway closes and tells it", async () => {
  const side = await rig('json', 300);
  const { client, id } = await opened(side);
  client.write(clientClose(1000));
  const close = await side.handler.next('the close frame');
  assert.equal(close.msg.headers.FLAGS, '0x88');
  await client.end();
  const gone = await side.handler.notice('the disconnect notice');
  assert.deepEqual([gone.msg.kind, gone.msg.connId], ['disconnect', id]);
});

test('a client that does not read is cut once 8 MiB wait for it, and the handler is told', async () => {
  const side = sides.tnetstring;
  const { client, id } = await opened(side);
  client.socket.pause();
  const chunk = encodeFrame(OPCODES.BINARY, Buffer.alloc(512 * 1024));
  const before = side.gw.gateway.webSockets.stats.slowClients;
  // 40 × 512 KiB: more than the limit plus what the kernel's socket buffers hold.
  for (let i = 0; i < 40; i++) await side.handler.reply(id, chunk);
  const gone = await side.handler.notice('the disconnect notice');
  assert.deepEqual([gone.msg.kind, gone.msg.connId], ['disconnect', id]);
  assert.equal(side.gw.gateway.webSockets.stats.slowClients, before + 1);
  client.destroy();
});
