// Differential test of WebSockets (§3.9) against the real Mongrel2 1.12.2: the same client
// session (handshake, text, binary, fragmented with a ping between the fragments, ping,
// close) goes through Mongrel2 and through the m2gate gateway, each with the same Handler
// (route, send_ident, header encoding) answered by the same scripted echo handler. The handler
// must get the same messages (connection ids aside: each front has its own counter; header
// order aside where Mongrel2's is its hash table's) and the client the same bytes, to the byte.
// Then a client nobody here wrote (Debian's python3-websockets) runs a session through both.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { parseRequest, type HeaderEncoding } from '../protocol/m2-request.js';
import { requireMongrel2, startMongrel2Handler } from './helpers/mongrel2.js';
import { fakeHandler, handlerConf, startGateway } from './helpers/gateway.js';
import { withDeadline } from './helpers/ws-client.js';
import { canonical, echo, pythonSession, session, type HandlerSide } from './helpers/ws-session.js';

const PATTERN = '/handler';
const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function viaMongrel2(sender: string, protocol: HeaderEncoding): Promise<HandlerSide> {
  const { m2, pull, pub, stop } = await startMongrel2Handler({ route: PATTERN, sendIdent: sender, protocol });
  cleanups.push(stop);
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
  const run = (port: number): Promise<unknown> => pythonSession(`ws://127.0.0.1:${port}/handler/py`);
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
