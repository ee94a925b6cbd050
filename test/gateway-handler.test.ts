// Handler routes through the whole standalone gateway: HTTP client → node:http → route table →
// handler pool (PUSH/SUB on the Handler's endpoints) → a fake Mongrel2 handler driven by the
// test → reply relay → client. Each test asserts what the client sees on the wire and what the
// handler receives (exact bytes where Mongrel2 fixes them, §3.6), plus the pool's counters.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { encodeDisconnect } from '../protocol/m2-request.js';
import { encodeControl } from '../protocol/m2-reply.js';
import { encode } from '../protocol/tnetstring.js';
import { fakeHandler, handlerConf, logCapture, startGateway, type FakeHandler, type RawClient } from './helpers/gateway.js';

const JSON_H = handlerConf('/h/', '1a2b3c4d-0000-4000-8000-00000000json');
const TNET_H = handlerConf('/t/', '1a2b3c4d-0000-4000-8000-00000000tnet', 'tnetstring');
const NONE_H = handlerConf('/none/', '1a2b3c4d-0000-4000-8000-00000000none');
const LIMIT = 32;

const rig = await startGateway({ handlers: [JSON_H, TNET_H, NONE_H], settings: { 'limits.content_length': LIMIT } });
const json = await fakeHandler(JSON_H, rig.pool('/h/'));
const tnet = await fakeHandler(TNET_H, rig.pool('/t/'));
after(async () => {
  json.stop();
  tnet.stop();
  await rig.close();
});

const ok = (body: string, extra = ''): string => `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n${extra}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
const getReq = (path: string, extra = ''): string => `GET ${path} HTTP/1.1\r\nHost: localhost\r\n${extra}\r\n`;

/** Sends a GET on `c` and returns the CONN_ID the handler received it with. */
async function forward(c: RawClient, h: FakeHandler, path: string): Promise<number> {
  c.write(getReq(path));
  const { msg } = await h.next(`request for ${path}`);
  assert.equal(msg.headers.PATH, path);
  return msg.connId;
}

test('one reply naming two pending ids reaches both clients (§4.3 several ids)', async () => {
  const a = await rig.client();
  const b = await rig.client();
  const idA = await forward(a, json, '/h/a');
  const idB = await forward(b, json, '/h/b');
  assert.notEqual(idA, idB);
  await json.reply([idA, idB], ok('both'));
  const [ra, rb] = await Promise.all([a.response(), b.response()]);
  for (const r of [ra, rb]) {
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), 'both');
  }
});

test('a read-until-close response (no length) streams and ends with the empty close reply', async () => {
  const c = await rig.client();
  const id = await forward(c, json, '/h/until-close');
  await json.reply(id, 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\npart one, ');
  // The head and the first part reach the client before the handler sends the rest.
  await c.seen('part one, ');
  await json.reply(id, 'part two');
  await json.close(id);
  const r = await c.response();
  assert.equal(r.status, 200);
  assert.equal(r.headers.connection, 'close');
  assert.equal(r.body.toString(), 'part one, part two');
  assert.equal((await c.end()).length, 0);
});

test('an empty reply before any response closes the connection with one 502', async () => {
  const c = await rig.client();
  const id = await forward(c, json, '/h/close-early');
  await json.close(id);
  const r = await c.response();
  assert.equal(r.status, 502);
  assert.equal((await c.end()).length, 0);
});

test('a reply in several messages: head, then chunks, is streamed and keeps the connection', async () => {
  const c = await rig.client();
  const id = await forward(c, tnet, '/t/stream');
  await tnet.reply(id, 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n');
  await tnet.reply(id, '6\r\nhello \r\n');
  await c.seen('hello ');
  await tnet.reply(id, '5\r\nworld\r\n');
  await tnet.reply(id, '0\r\n\r\n');
  const r = await c.response();
  assert.equal(r.status, 200);
  assert.equal(r.body.toString(), 'hello world');
  // Framing intact: the same connection serves another request.
  const id2 = await forward(c, tnet, '/t/again');
  await tnet.reply(id2, ok('again'));
  assert.equal((await c.response()).body.toString(), 'again');
});

test('a reply to an unknown id is dropped and counted; the known id of the same reply is served', async () => {
  const pool = rig.pool('/h/');
  const before = pool.stats.unknownIds;
  const c = await rig.client();
  const id = await forward(c, json, '/h/unknown');
  await json.reply(987_654_321, ok('nobody'));
  await json.reply([id, 987_654_322], ok('mine'));
  const r = await c.response();
  assert.equal(r.body.toString(), 'mine');
  // PUB → SUB keeps order, so both earlier replies were handled before the client got its answer.
  assert.equal(pool.stats.unknownIds - before, 2);
  // A reply to an id whose response is complete is unknown too, and never reaches the connection.
  await json.reply(id, ok('late'));
  const id2 = await forward(c, json, '/h/after-late');
  await json.reply(id2, ok('next'));
  assert.equal((await c.response()).body.toString(), 'next');
  assert.equal(pool.stats.unknownIds - before, 3);
  // Each is answered as Mongrel2 answers it (§4.6): that id's exact disconnect notice, in order.
  for (const gone of [987_654_321, 987_654_322, id]) {
    const { raw } = await json.notice(`the notice for ${gone}`);
    assert.ok(raw.equals(encodeDisconnect(json.sender, gone, 'json')), raw.toString('latin1'));
  }
});

test('a reply from a foreign sender is ignored and counted (DESIGN: deliberate difference)', async () => {
  const pool = rig.pool('/h/');
  const before = pool.stats.foreignSender;
  const c = await rig.client();
  const id = await forward(c, json, '/h/foreign');
  await json.reply(id, ok('forged'), 'ffffffff-0000-4000-8000-0000000forged');
  await json.reply(id, ok('genuine'));
  const r = await c.response();
  assert.equal(r.body.toString(), 'genuine');
  assert.equal(pool.stats.foreignSender - before, 1);
  c.write(getReq('/h/probe'));
  // The forged bytes never reached the socket: the next bytes are the next response.
  const { msg } = await json.next();
  await json.reply(msg.connId, ok('probe'));
  assert.equal((await c.response()).body.toString(), 'probe');
});

test('a garbage reply becomes one 502 and closes the connection; later bytes for the id go nowhere', async () => {
  const pool = rig.pool('/h/');
  const c = await rig.client();
  const id = await forward(c, json, '/h/garbage');
  await json.reply(id, 'this is not HTTP at all\r\n\r\n');
  const r = await c.response();
  assert.equal(r.status, 502);
  assert.equal(r.headers.connection, 'close');
  const before = pool.stats.unknownIds;
  await json.reply(id, ok('second response'));
  assert.equal((await c.end()).length, 0, 'never a second response');
  // Prove the late reply was processed (and dropped) by routing a later one behind it.
  const d = await rig.client();
  const id2 = await forward(d, json, '/h/after-garbage');
  await json.reply(id2, ok('fine'));
  assert.equal((await d.response()).body.toString(), 'fine');
  assert.equal(pool.stats.unknownIds - before, 1);
  assert.equal((await json.notice('the notice answering the late reply')).msg.connId, id);
});

test('garbage after a valid head cuts the connection: no second status line', async () => {
  const c = await rig.client();
  const id = await forward(c, json, '/h/garbage-body');
  await json.reply(id, 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\ngood\r\n');
  await c.seen('good');
  await json.reply(id, 'zz-not-a-chunk-size\r\n');
  const rest = (await c.end()).toString('latin1');
  assert.match(rest, /^HTTP\/1\.1 200 OK\r\n/);
  assert.equal(rest.match(/HTTP\/1\.1/g)?.length, 1);
  assert.doesNotMatch(rest, /\r\n0\r\n\r\n$/, 'the chunked body must not look complete');
});

test('no handler connected → 503 at once with Retry-After, and the pool sent nothing', async () => {
  const pool = rig.pool('/none/');
  const c = await rig.client();
  c.write(getReq('/none/x'));
  const r = await c.response();
  assert.equal(r.status, 503);
  assert.equal(r.headers['retry-after'], '1');
  assert.equal(pool.stats.sent, 0);
});

test('a body over limits.content_length → 413 (declared or chunked) and the handler sees nothing', async () => {
  const big = 'x'.repeat(LIMIT + 1);
  const c = await rig.client();
  c.write(`POST /h/big HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${big.length}\r\n\r\n${big}`);
  assert.equal((await c.response()).status, 413);
  const d = await rig.client();
  d.write(`POST /h/big-chunked HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n${big.slice(0, 16)}\r\n`);
  d.write(`11\r\n${big.slice(0, 17)}\r\n0\r\n\r\n`);
  assert.equal((await d.response()).status, 413);
  // A body exactly at the limit passes; it is the first thing the handler receives.
  const e = await rig.client();
  const fits = 'y'.repeat(LIMIT);
  e.write(`POST /h/fits HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${LIMIT}\r\n\r\n${fits}`);
  const { msg } = await json.next();
  assert.equal(msg.headers.PATH, '/h/fits');
  assert.equal(msg.body.toString(), fits);
  await json.reply(msg.connId, ok('took it'));
  assert.equal((await e.response()).status, 200);
});

for (const [name, h, path] of [
  ['json', json, '/h/leave'],
  ['tnetstring', tnet, '/t/leave'],
] as const) {
  test(`a client that leaves before its reply → Mongrel2's exact disconnect message (${name}, §3.6)`, async () => {
    const c = await rig.client();
    const id = await forward(c, h, path);
    c.destroy();
    const { raw, msg } = await h.notice('disconnect notice');
    assert.equal(msg.kind, 'disconnect');
    assert.ok(raw.equals(encodeDisconnect(h.sender, id, name)), raw.toString('latin1'));
  });
}

test('HEAD: the handler sees METHOD HEAD; the client gets the head only and the connection stays in sync', async () => {
  const c = await rig.client();
  c.write('HEAD /h/head HTTP/1.1\r\nHost: localhost\r\n\r\n');
  const { msg } = await json.next();
  assert.equal(msg.headers.METHOD, 'HEAD');
  await json.reply(msg.connId, 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\n');
  const r = await c.response({ head: true });
  assert.equal(r.status, 200);
  assert.equal(r.headers['content-length'], '11');
  const id = await forward(c, json, '/h/after-head');
  await json.reply(id, ok('after head'));
  const r2 = await c.response();
  assert.equal(r2.body.toString(), 'after head');
  assert.equal(c.rest().length, 0);
});

test('HEAD answered with a body (a handler that ignores HEAD): the body is dropped, the connection lives', async () => {
  // Regression: the body bytes after the complete HEAD head used to count as garbage and
  // destroyed the connection, so the next keep-alive request never got an answer.
  const c = await rig.client();
  c.write('HEAD /h/head-body HTTP/1.1\r\nHost: localhost\r\n\r\n');
  const { msg } = await json.next();
  await json.reply(msg.connId, ok('hello body'));
  const r = await c.response({ head: true });
  assert.equal(r.status, 200);
  assert.equal(r.headers['content-length'], '10');
  const id = await forward(c, json, '/h/after-head-body');
  await json.reply(id, ok('still here'));
  assert.equal((await c.response()).body.toString(), 'still here');
  assert.equal(c.rest().length, 0, 'the HEAD body never reached the client');
});

for (const [what, head] of [
  ['a control byte in the reason phrase', 'HTTP/1.1 200 O\x01K\r\nContent-Length: 0\r\n\r\n'],
  ['a control byte in a header value', 'HTTP/1.1 200 OK\r\nX-Bad: a\x01b\r\nContent-Length: 0\r\n\r\n'],
] as const) {
  test(`a head node:http refuses to write (${what}) → 502 Bad Gateway, and the pool keeps relaying`, async () => {
    // Regression: writeHead threw, the 502 writeHead reused the handler's statusMessage and
    // threw again, and the exception ended the pool's reply loop: every later reply was lost.
    const c = await rig.client();
    const id = await forward(c, json, '/h/refused-head');
    await json.reply(id, Buffer.from(head, 'latin1'));
    const r = await c.response();
    assert.equal(r.status, 502);
    assert.equal(r.reason, 'Bad Gateway');
    await c.end();
    const d = await rig.client();
    const id2 = await forward(d, json, '/h/after-refused-head');
    await json.reply(id2, ok('alive'));
    assert.equal((await d.response()).body.toString(), 'alive');
  });
}

test('keep-alive: sequential requests on one connection get distinct, increasing CONN_IDs', async () => {
  const c = await rig.client();
  const ids: number[] = [];
  for (let i = 0; i < 4; i++) {
    const id = await forward(c, json, `/h/seq/${i}`);
    ids.push(id);
    await json.reply(id, ok(`seq ${i}`));
    assert.equal((await c.response()).body.toString(), `seq ${i}`);
  }
  assert.equal(new Set(ids).size, ids.length);
  for (let i = 1; i < ids.length; i++) assert.ok(ids[i]! > ids[i - 1]!, `ids never reused: ${ids.join(',')}`);
  // A new connection does not restart the counter either.
  const d = await rig.client();
  const next = await forward(d, tnet, '/t/new-conn');
  assert.ok(next > ids.at(-1)!);
  await tnet.reply(next, ok('x'));
  await d.response();
});

test('pipelined requests reach the handler at once and are answered in request order', async () => {
  const c = await rig.client();
  c.write(getReq('/h/p/1') + getReq('/h/p/2') + getReq('/h/p/3'));
  const msgs = [await json.next(), await json.next(), await json.next()].map((r) => r.msg);
  assert.deepEqual(
    msgs.map((m) => m.headers.PATH),
    ['/h/p/1', '/h/p/2', '/h/p/3'],
  );
  assert.equal(new Set(msgs.map((m) => m.connId)).size, 3);
  // Answered in reverse order; the client still gets them in request order.
  for (const m of [...msgs].reverse()) await json.reply(m.connId, ok(`answer ${m.headers.PATH as string}`));
  const bodies = [];
  for (let i = 0; i < 3; i++) bodies.push((await c.response()).body.toString());
  assert.deepEqual(bodies, ['answer /h/p/1', 'answer /h/p/2', 'answer /h/p/3']);
});

test('a pipelined request without a body does not overtake an earlier one still reading its body', async () => {
  // One write: node parses all three before the POST's stream ends (ticks later), so a
  // bodiless request sent at once would reach the handler first.
  const c = await rig.client();
  c.write(`POST /h/o/1 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello${getReq('/h/o/2')}${getReq('/h/o/3')}`);
  const msgs = [await json.next(), await json.next(), await json.next()].map((r) => r.msg);
  assert.deepEqual(
    msgs.map((m) => `${m.headers.METHOD as string} ${m.headers.PATH as string} ${m.body.toString()}`),
    ['POST /h/o/1 hello', 'GET /h/o/2 ', 'GET /h/o/3 '],
  );
  for (const m of msgs) await json.reply(m.connId, ok(`answer ${m.headers.PATH as string}`));
  for (const path of ['/h/o/1', '/h/o/2', '/h/o/3']) assert.equal((await c.response()).body.toString(), `answer ${path}`);
});

test('no reply within the handler timeout → 504, a disconnect message to the handler, late reply dropped', async () => {
  const h = handlerConf('/slow/', '1a2b3c4d-0000-4000-8000-0000000slow0');
  const quick = await startGateway({ handlers: [h] }, { handlerTimeoutMs: 150 });
  const slow = await fakeHandler(h, quick.pool('/slow/'));
  try {
    const c = await quick.client();
    const id = await forward(c, slow, '/slow/x');
    const r = await c.response();
    assert.equal(r.status, 504);
    const { raw } = await slow.notice('disconnect after timeout');
    assert.ok(raw.equals(encodeDisconnect(h.sendIdent, id, 'json')), raw.toString('latin1'));
    assert.equal(quick.gateway.stats.timedOut, 1);
    // The late reply never reaches the (kept-alive) connection; the next request's reply does.
    await slow.reply(id, ok('too late'));
    const id2 = await forward(c, slow, '/slow/y');
    await slow.reply(id2, ok('in time'));
    assert.equal((await c.response()).body.toString(), 'in time');
    assert.equal(quick.pool('/slow/').stats.unknownIds, 1);
  } finally {
    slow.stop();
    await quick.close();
  }
});

test('the handler timeout is an idle deadline: a stream that keeps sending outlives it', async () => {
  const h = handlerConf('/stream/', '1a2b3c4d-0000-4000-8000-000000stream');
  const quick = await startGateway({ handlers: [h] }, { handlerTimeoutMs: 150 });
  const handler = await fakeHandler(h, quick.pool('/stream/'));
  try {
    const c = await quick.client();
    const id = await forward(c, handler, '/stream/long');
    await handler.reply(id, 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n');
    // Six parts 60 ms apart: 360 ms in all, more than twice the 150 ms deadline.
    // The pacing is the subject of the test, not a way to wait for something.
    for (let i = 0; i < 6; i++) {
      await delay(60);
      await handler.reply(id, `1\r\n${i}\r\n`);
    }
    await handler.reply(id, '0\r\n\r\n');
    const r = await c.response();
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), '012345');
    assert.equal(quick.gateway.stats.timedOut, 0);
  } finally {
    handler.stop();
    await quick.close();
  }
});

test('a close message after a complete response is expected, not counted as an unknown id', async () => {
  const pool = rig.pool('/h/');
  const before = pool.stats.unknownIds;
  const c = await rig.client();
  const id = await forward(c, json, '/h/then-close');
  await json.reply(id, ok('done'));
  assert.equal((await c.response()).body.toString(), 'done');
  await json.close(id);
  // A second close for the same id is unknown again: the id is forgotten once its close came.
  await json.close(id);
  const id2 = await forward(c, json, '/h/barrier');
  await json.reply(id2, ok('barrier'));
  assert.equal((await c.response()).body.toString(), 'barrier');
  assert.equal(pool.stats.unknownIds - before, 1);
  // Only the second close is answered with a notice; a ctl cancel to a gone id gets nothing
  // (§4.7): the next notice is the one for a reply to a made-up id sent after the cancel.
  await json.publish(encodeControl(json.sender, id, encode(['ctl', { cancel: true }])));
  await json.reply(987_000_001, ok('nobody'));
  assert.equal((await json.notice('the notice for the second close')).msg.connId, id);
  assert.equal((await json.notice('the notice for the made-up id')).msg.connId, 987_000_001);
});

test('a handler that goes away: 503 at once while none is connected, served again when one returns', async () => {
  const h = handlerConf('/gone/', '1a2b3c4d-0000-4000-8000-0000000gone0');
  const log = logCapture();
  const g = await startGateway({ handlers: [h] }, { logger: log.logger });
  try {
    const first = await fakeHandler(h, g.pool('/gone/'));
    const c = await g.client();
    const id = await forward(c, first, '/gone/a');
    await first.reply(id, ok('first'));
    assert.equal((await c.response()).body.toString(), 'first');
    first.stop();
    await log.waitFor((l) => l.msg === 'handler disconnected' && l.peers === 0, 'handler disconnected');
    c.write(getReq('/gone/b'));
    const r = await c.response();
    assert.equal(r.status, 503);
    assert.equal(r.headers['retry-after'], '1');
    const second = await fakeHandler(h, g.pool('/gone/'));
    try {
      const id2 = await forward(c, second, '/gone/c');
      await second.reply(id2, ok('second'));
      assert.equal((await c.response()).body.toString(), 'second');
    } finally {
      second.stop();
    }
  } finally {
    await g.close();
  }
});
