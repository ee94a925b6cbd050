// The standalone gateway with `download.flow_control=1` (§3.7): the request
// carries DOWNLOAD_CREDITS and each reply message comes back as a credits
// notice once the client socket has taken it, byte for byte what Mongrel2
// 1.12.2 sends (fixtures req-flow-control-first.* and msg-credits.*, only the
// connection id differs: the gateway numbers requests itself).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { once } from 'node:events';
import { fixture } from './helpers/fixtures.js';
import { fakeHandler, handlerConf, startGateway, type FakeHandler } from './helpers/gateway.js';
import type { HeaderEncoding } from '../protocol/m2-request.js';

const JSON_H = handlerConf('/json', 'c0ffee00-0000-4000-8000-00000000000a', 'json');
const TNET_H = handlerConf('/tnet', 'c0ffee00-0000-4000-8000-00000000000b', 'tnetstring');
const rig = await startGateway({ handlers: [JSON_H, TNET_H], settings: { 'download.flow_control': 1 } });
const handlers: Record<HeaderEncoding, FakeHandler> = {
  json: await fakeHandler(JSON_H, rig.pool('/json')),
  tnetstring: await fakeHandler(TNET_H, rig.pool('/tnet')),
};

after(async () => {
  for (const h of Object.values(handlers)) h.stop();
  await rig.close();
});

/** A captured message with its connection id replaced by `connId` (the field after the sender). */
function withConnId(captured: Buffer, connId: number): Buffer {
  const first = captured.indexOf(0x20);
  const second = captured.indexOf(0x20, first + 1);
  return Buffer.concat([captured.subarray(0, first + 1), Buffer.from(String(connId)), captured.subarray(second)]);
}

// 66 bytes, as the reply whose credits notice was captured.
const REPLY_66 = 'HTTP/1.1 200 OK\r\nContent-Length: 27\r\n\r\nsixty-six bytes in all, ok!';

for (const [encoding, suffix, client] of [
  ['json', 'json', 'client-req-flow-control-json.http.bin'],
  ['tnetstring', 'tnet', 'client-req-flow-control-tnet.http.bin'],
] as const) {
  test(`${encoding}: DOWNLOAD_CREDITS on the request and the credits notice after the reply are Mongrel2's bytes`, async () => {
    assert.equal(REPLY_66.length, 66);
    const h = handlers[encoding];
    const c = await rig.client();
    c.write(fixture(client));
    const req = await h.next('the request');
    assert.deepEqual(req.raw, withConnId(fixture(`req-flow-control-first.${suffix}.bin`), req.msg.connId));
    await h.reply(req.msg.connId, REPLY_66);
    const res = await c.response();
    assert.equal(res.status, 200);
    assert.equal(res.body.toString(), 'sixty-six bytes in all, ok!');
    const notice = await h.notice('the credits notice');
    assert.deepEqual(notice.raw, withConnId(fixture(`msg-credits.${suffix}.bin`), req.msg.connId));
  });
}

test('credits come back only as the client reads: a reply message the client has not taken is not credited', async () => {
  const h = handlers.json;
  const size = 32 * 1024 * 1024;
  const socket = connect(rig.port, '127.0.0.1');
  await once(socket, 'connect');
  let received = 0;
  socket.on('data', (d: Buffer) => (received += d.length));
  socket.pause();
  socket.write('GET /json/big HTTP/1.1\r\nHost: localhost\r\n\r\n');
  const req = await h.next('the request');
  const head = `HTTP/1.1 200 OK\r\nContent-Length: ${size}\r\n\r\n`;
  await h.reply(req.msg.connId, Buffer.concat([Buffer.from(head), Buffer.alloc(size, 0x61)]));
  // The client starts reading later; the notice must not come before it has read most of it
  // (what loopback socket buffers can hold stays unread, well under half of it).
  const resume = setTimeout(() => socket.resume(), 300);
  const notice = await h.notice('the credits notice');
  clearTimeout(resume);
  socket.resume();
  assert.equal(notice.msg.kind, 'credits');
  assert.equal(notice.msg.headers.DOWNLOAD_CREDITS, String(head.length + size));
  assert.ok(received > size / 2, `credited with only ${received} of ${size} bytes read`);
  socket.destroy();
});
