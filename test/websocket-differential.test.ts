// Differential test of WebSockets (§3.9) against the real Mongrel2 1.12.2: the same client
// session (handshake, text, binary, fragmented with a ping between the fragments, ping,
// close) goes through Mongrel2 and through the m2gate gateway, each with the same Handler
// (route, send_ident, header encoding) answered by the same scripted echo handler. The handler
// must get the same messages (connection ids aside: each front has its own counter; header
// order aside where Mongrel2's is its hash table's) and the client the same bytes, to the byte.
// Then a client nobody here wrote (Debian's python3-websockets) runs a session through both.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { encodeRequest, parseRequest, type HeaderEncoding, type M2Request } from '../protocol/m2-request.js';
import { encodeClose, encodeReply } from '../protocol/m2-reply.js';
import { encodeFrame, flagsOpcode, OPCODES } from '../protocol/ws-frame.js';
import { connectHandler, ipcEndpoint, requireMongrel2, startMongrel2 } from './helpers/mongrel2.js';
import { fakeHandler, handlerConf, startGateway } from './helpers/gateway.js';
import { clientClose, clientFrame, handshakeBytes, withDeadline, WsTestClient } from './helpers/ws-client.js';

const PATTERN = '/handler';
const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** One front as the echo handler sees it. */
interface HandlerSide {
  port: number;
  next(): Promise<{ raw: Buffer; msg: M2Request }>;
  send(bytes: Buffer): Promise<void>;
}

async function viaMongrel2(sender: string, protocol: HeaderEncoding): Promise<HandlerSide> {
  const sendSpec = ipcEndpoint('send');
  const recvSpec = ipcEndpoint('recv');
  const m2 = await startMongrel2({ handlers: [{ route: PATTERN, sendSpec, sendIdent: sender, recvSpec, protocol }] });
  const { pull, pub, close } = await connectHandler(sendSpec, recvSpec);
  cleanups.push(async () => {
    close();
    await m2.stop();
    m2.cleanup();
  });
  return {
    port: m2.port,
    async next() {
      const [frame] = await withDeadline(pull.receive(), 'a message from Mongrel2');
      return { raw: frame!, msg: parseRequest(frame!) };
    },
    send: (bytes) => pub.send(bytes),
  };
}

async function viaGateway(sender: string, protocol: HeaderEncoding): Promise<HandlerSide> {
  const h = handlerConf(PATTERN, sender, protocol);
  const rig = await startGateway({ handlers: [h] });
  const handler = await fakeHandler(h, rig.pool(PATTERN));
  cleanups.push(async () => {
    handler.stop();
    await rig.close();
  });
  return { port: rig.port, next: () => handler.next('a message from the gateway'), send: (bytes) => handler.publish(bytes) };
}

/**
 * The echo handler: 101 for the handshake (its body is the accept key), the same opcode back
 * for text and binary, pong for ping, and for close the close frame back and the close
 * message. Runs until it has closed; returns every message it got, in order.
 */
async function echo(side: HandlerSide, sender: string): Promise<Array<{ raw: Buffer; msg: M2Request }>> {
  const seen: Array<{ raw: Buffer; msg: M2Request }> = [];
  for (let i = 0; i < 50; i++) {
    const got = await side.next();
    seen.push(got);
    const { msg } = got;
    if (msg.kind === 'disconnect') throw new Error(`disconnect notice for ${msg.connId} before the close`);
    const reply = (body: Buffer | string): Promise<void> => side.send(encodeReply(sender, msg.connId, body));
    if (msg.kind === 'websocket-handshake') {
      await reply(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${msg.body.toString('latin1')}\r\n\r\n`);
      continue;
    }
    assert.equal(msg.kind, 'websocket');
    const opcode = flagsOpcode(msg.headers.FLAGS as string);
    if (opcode === OPCODES.PING) await reply(encodeFrame(OPCODES.PONG, msg.body));
    else if (opcode === OPCODES.CLOSE) {
      await reply(encodeFrame(OPCODES.CLOSE, msg.body));
      await side.send(encodeClose(sender, msg.connId));
      return seen;
    } else await reply(encodeFrame(opcode!, msg.body));
  }
  throw new Error('no close within 50 messages');
}

/** The message with its id set to 0 and its headers in sorted order: equal iff the two fronts sent the same thing. */
function canonical(raw: Buffer, msg: M2Request, drop: string[] = []): string {
  const headers: Record<string, string | string[]> = {};
  for (const key of Object.keys(msg.headers).sort()) if (!drop.includes(key)) headers[key] = msg.headers[key]!;
  const size = drop.length > 0 ? '' : ` (raw ${raw.length - String(msg.connId).length} bytes)`;
  return encodeRequest({ sender: msg.sender, connId: 0, path: msg.path, headers, body: drop.length > 0 ? '' : msg.body }, msg.encoding).toString('latin1') + size;
}

/** The scripted session: each step waits for the echo, so that both fronts see the same byte stream. */
async function session(port: number): Promise<Buffer> {
  const client = await WsTestClient.open(port);
  client.write(handshakeBytes('/handler/ws', 'Origin: http://localhost\r\n'));
  await client.head();
  const steps: Buffer[] = [
    clientFrame(OPCODES.TEXT, 'Hello'),
    clientFrame(OPCODES.BINARY, Buffer.from([0x00, 0xff, 0x80, 0x2c, 0x3a, 0x0d, 0x0a])),
    Buffer.concat([clientFrame(OPCODES.TEXT, 'frag-', false), clientFrame(OPCODES.PING, 'between'), clientFrame(OPCODES.CONTINUATION, 'ment')]),
    clientFrame(OPCODES.PING, 'ping'),
    clientFrame(OPCODES.TEXT, 'x'.repeat(300)),
  ];
  for (const [i, bytes] of steps.entries()) {
    client.write(bytes);
    // One echo per message (the fragmented step has two: the ping's pong, then the message).
    for (let n = 0; n < (i === 2 ? 2 : 1); n++) await client.frame();
  }
  client.write(clientClose(1000));
  await client.end();
  return client.all;
}

requireMongrel2(); // fails, never skips, when Mongrel2 is not installed
const SENDERS = { json: 'd1ff0000-5555-4000-8000-0000000000ee', tnetstring: 'd1ff0000-6666-4000-8000-0000000000ff' } as const;
const fronts = {
  json: { m2: await viaMongrel2(SENDERS.json, 'json'), gw: await viaGateway(SENDERS.json, 'json') },
  tnetstring: { m2: await viaMongrel2(SENDERS.tnetstring, 'tnetstring'), gw: await viaGateway(SENDERS.tnetstring, 'tnetstring') },
};

for (const encoding of ['json', 'tnetstring'] as const) {
  test(`one WebSocket session through Mongrel2 and through the gateway: same handler messages, same client bytes (${encoding})`, async () => {
    const sender = SENDERS[encoding];
    const results = [];
    for (const side of [fronts[encoding].m2, fronts[encoding].gw]) {
      const handled = echo(side, sender);
      const bytes = await session(side.port);
      results.push({ bytes, messages: await handled });
    }
    const [theirs, ours] = results as [(typeof results)[0], (typeof results)[0]];
    assert.equal(ours.messages.length, theirs.messages.length);
    assert.deepEqual(
      theirs.messages.map((m) => m.msg.headers.FLAGS ?? m.msg.headers.METHOD),
      ['WEBSOCKET_HANDSHAKE', '0x81', '0x82', '0x89', '0x81', '0x89', '0x81', '0x88'],
      'what Mongrel2 sends for the session',
    );
    theirs.messages.forEach((m, i) => assert.equal(canonical(ours.messages[i]!.raw, ours.messages[i]!.msg), canonical(m.raw, m.msg), `message ${i}`));
    // Every message of a connection carries its one id.
    assert.equal(new Set(ours.messages.map((m) => m.msg.connId)).size, 1);
    assert.equal(ours.bytes.toString('hex'), theirs.bytes.toString('hex'), 'the client got the same bytes');
  });
}

test('a real client (python3-websockets) through Mongrel2 and through the gateway: same results, same handler messages', async () => {
  const script = fileURLToPath(new URL('./helpers/ws-echo.py', import.meta.url));
  const run = async (port: number): Promise<unknown> => {
    const child = spawn('/usr/bin/python3', [script, `ws://127.0.0.1:${port}/handler/py`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const [code] = (await withDeadline(once(child, 'exit'), 'the python client', 20_000)) as [number];
    assert.equal(code, 0, `python3-websockets failed: ${err}`);
    return JSON.parse(out) as unknown;
  };
  const sender = SENDERS.json;
  const results = [];
  for (const side of [fronts.json.m2, fronts.json.gw]) {
    const handled = echo(side, sender);
    const printed = await run(side.port);
    results.push({ printed, messages: await handled });
  }
  const [theirs, ours] = results as [(typeof results)[0], (typeof results)[0]];
  assert.deepEqual(theirs.printed, { got: ['hello', [0, 1, 2, 254, 255], 'frag-ment', 'pong'], close_code: 1000, close_reason: '' });
  assert.deepEqual(ours.printed, theirs.printed);
  assert.equal(ours.messages.length, theirs.messages.length);
  // The client's key is random per connection, and its Host names each front's own port: both
  // are left out (and so is the handshake's body, the accept key).
  theirs.messages.forEach((m, i) => {
    const drop = ['sec-websocket-key', 'host'];
    assert.equal(canonical(ours.messages[i]!.raw, ours.messages[i]!.msg, drop), canonical(m.raw, m.msg, drop), `message ${i}`);
    assert.equal(ours.messages[i]!.msg.headers.host, `127.0.0.1:${fronts.json.gw.port}`);
    assert.equal(ours.messages[i]!.msg.body.length, m.msg.body.length, `message ${i} body length`);
    if (m.msg.kind === 'websocket') assert.ok(ours.messages[i]!.msg.body.equals(m.msg.body), `message ${i} body`);
  });
});
