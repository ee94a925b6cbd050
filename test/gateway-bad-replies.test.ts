// Malformed replies from a handler, through the whole gateway (issue #8, "Bad input"). Whatever
// a handler publishes, no byte of it reaches a client unless it is a well-formed reply, from the
// Handler's own send_ident, whose body is one valid HTTP response:
// - replies that cannot be attributed to a client (bad netstring, wrong sender, more than 128
//   ids, a broken control reply) are dropped and counted; the waiting client still gets its
//   genuine reply, or a 504 at the handler timeout if none comes (and the handler a disconnect);
// - replies for ids nobody waits for are dropped and counted;
// - a reply whose HTTP is invalid (bad status line or field, conflicting framing, CR/LF/NUL
//   injection in a value or the reason, a second response after the first) becomes one 502 for
//   the waiting client, or a cut connection if its head already went out — never the bytes.
// Every forged reply carries MARK; the test asserts it never appears on any client socket. At
// the end no pool has a pending reply sink and the gateway has no response in flight.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { encodeDisconnect } from '../protocol/m2-request.js';
import { fakeHandler, handlerConf, startGateway, type RawClient } from './helpers/gateway.js';

const H = handlerConf('/h/', '6a7b8c9d-0000-4000-8000-0badreplies0');
const TIMEOUT_MS = 300;
const rig = await startGateway({ handlers: [H] }, { handlerTimeoutMs: TIMEOUT_MS });
const handler = await fakeHandler(H, rig.pool('/h/'));
const pool = rig.pool('/h/');
after(async () => {
  handler.stop();
  await rig.close();
});

const MARK = 'INJECTED-9c1e';
const ok = (body: string): string => `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
/** Every byte any client of this file received. */
const seen: Buffer[] = [];

async function forward(path: string): Promise<{ c: RawClient; id: number }> {
  const c = await rig.client();
  c.socket.on('data', (d: Buffer) => seen.push(d));
  c.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
  const { msg } = await handler.next(`request for ${path}`);
  assert.equal(msg.path, path);
  return { c, id: msg.connId };
}

/** The reply lines of a raw reply: `SENDER LEN:IDS, BODY`. */
const rawReply = (sender: string, idList: string, body: string): Buffer => Buffer.from(`${sender} ${idList.length}:${idList}, ${body}`, 'latin1');

/** [name, bytes given the waiting id]: dropped before any client, counted as malformed. */
const UNPARSEABLE: Array<[string, (id: number) => Buffer]> = [
  ['id netstring length too long', (id) => Buffer.from(`${H.sendIdent} ${String(id).length + 5}:${id}, ${ok(MARK)}`, 'latin1')],
  ['id netstring length too short', (id) => Buffer.from(`${H.sendIdent} ${String(id).length - 1}:${id}, ${ok(MARK)}`, 'latin1')],
  ['id netstring length 999999999', (id) => Buffer.from(`${H.sendIdent} 999999999:${id}, ${ok(MARK)}`, 'latin1')],
  ['no space after the comma', (id) => Buffer.from(`${H.sendIdent} ${String(id).length}:${id},${ok(MARK)}`, 'latin1')],
  ['ids that are not digits', (id) => rawReply(H.sendIdent, `${id} x1`, ok(MARK))],
  ['two spaces between ids', (id) => rawReply(H.sendIdent, `${id}  ${id + 1}`, ok(MARK))],
  ['a negative id', (id) => rawReply(H.sendIdent, `-${id}`, ok(MARK))],
  ['an empty id list', () => rawReply(H.sendIdent, '', ok(MARK))],
  ['a sender with a space', (id) => rawReply(`${H.sendIdent} x`, String(id), ok(MARK))],
  ['a sender with a NUL byte', (id) => rawReply(`${H.sendIdent}\x00`, String(id), ok(MARK))],
  ['no sender', (id) => rawReply('', String(id), ok(MARK))],
  ['129 ids (Mongrel2 limits.handler_targets is 128)', (id) => rawReply(H.sendIdent, [id, ...Array.from({ length: 128 }, (_, i) => 5_000_000 + i)].join(' '), ok(MARK))],
  ['an id of 16 digits', (id) => rawReply(H.sendIdent, `${id} 1234567890123456`, ok(MARK))],
  ['a tnetstring-looking frame', () => Buffer.from(`${MARK.length}:${MARK},`, 'latin1')],
  ['an empty frame', () => Buffer.alloc(0)],
];

for (const [name, make] of UNPARSEABLE) {
  test(`dropped and counted, the client gets its genuine reply: ${name}`, async () => {
    const malformed = pool.stats.malformedReplies;
    const { c, id } = await forward('/h/unparseable');
    await handler.publish(make(id));
    await handler.reply(id, ok('genuine'));
    const r = await c.response();
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), 'genuine');
    // PUB → SUB keeps order: the bad frame was handled before the genuine reply.
    assert.equal(pool.stats.malformedReplies - malformed, 1);
    assert.ok(!r.raw.includes(MARK));
  });
}

test('a reply from a foreign sender (valid in every other way) is ignored and counted; the genuine reply wins', async () => {
  const foreign = pool.stats.foreignSender;
  const forger = 'ffffffff-0000-4000-8000-00000forged00';
  const { c, id } = await forward('/h/foreign');
  await handler.reply(id, ok(MARK), forger);
  await handler.publish(rawReply(forger, String(id), '')); // a forged close
  await handler.reply(id, ok('genuine'));
  const r = await c.response();
  assert.equal(r.body.toString(), 'genuine');
  assert.equal(pool.stats.foreignSender - foreign, 2);
});

test('an extended (X) reply whose body is not a [name, args] tnetstring is dropped; the connection lives', async () => {
  const { c, id } = await forward('/h/control');
  for (const body of ['not a tnetstring', `${MARK.length}:${MARK},`, '3:abc]', '999999999:x]', '0:]']) {
    await handler.publish(rawReply(H.sendIdent, `X ${id}`, body));
  }
  await handler.reply(id, ok('after control'));
  const r = await c.response();
  assert.equal(r.body.toString(), 'after control');
});

test('replies for unknown ids are dropped and counted, also when mixed with a known one', async () => {
  const unknown = pool.stats.unknownIds;
  const { c, id } = await forward('/h/unknown');
  await handler.reply([987_654_321, 0], ok(MARK));
  await handler.reply([id, 987_654_322], ok('mine'));
  assert.equal((await c.response()).body.toString(), 'mine');
  assert.equal(pool.stats.unknownIds - unknown, 3);
  // Each unknown id is answered with Mongrel2's exact disconnect notice, in order (§4.6).
  for (const gone of [987_654_321, 0, 987_654_322]) {
    const { raw } = await handler.notice(`the notice for ${gone}`);
    assert.ok(raw.equals(encodeDisconnect(H.sendIdent, gone, 'json')), raw.toString('latin1'));
  }
});

test('a malformed reply and nothing else: 504 at the handler timeout, a disconnect to the handler, the late reply dropped', async () => {
  const { c, id } = await forward('/h/only-garbage');
  await handler.publish(rawReply(H.sendIdent, `${id} ${'9'.repeat(20)}`, ok(MARK)));
  const r = await c.response();
  assert.equal(r.status, 504);
  const { raw } = await handler.notice('disconnect after the timeout');
  assert.ok(raw.equals(encodeDisconnect(H.sendIdent, id, 'json')), raw.toString('latin1'));
  const unknown = pool.stats.unknownIds;
  await handler.reply(id, ok(MARK));
  // A later request on the same connection gets its own answer, not the late one.
  c.write('GET /h/after-late HTTP/1.1\r\nHost: localhost\r\n\r\n');
  const { msg } = await handler.next();
  await handler.reply(msg.connId, ok('next'));
  assert.equal((await c.response()).body.toString(), 'next');
  assert.equal(pool.stats.unknownIds - unknown, 1);
  const late = await handler.notice('the notice answering the late reply');
  assert.ok(late.raw.equals(encodeDisconnect(H.sendIdent, id, 'json')), late.raw.toString('latin1'));
});

/** [name, reply body]: invalid HTTP before any head went out → 502. */
const BAD_HTTP: Array<[string, string]> = [
  ['not HTTP at all', `${MARK}\r\n\r\n`],
  ['status 2000', `HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n`],
  ['status 099', `HTTP/1.1 099 Early\r\nContent-Length: 0\r\n\r\n`],
  ['an interim 100 (a handler sends one response)', `HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n`],
  ['HTTP/2.0 status line', `HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n`],
  ['lower-case http', `http/1.1 200 OK\r\nContent-Length: 0\r\n\r\n`],
  ['a field without a colon', `HTTP/1.1 200 OK\r\n${MARK}\r\nContent-Length: 0\r\n\r\n`],
  ['a space before the colon', `HTTP/1.1 200 OK\r\nX-A : ${MARK}\r\nContent-Length: 0\r\n\r\n`],
  ['a field name with a control byte', `HTTP/1.1 200 OK\r\nX\x01A: ${MARK}\r\nContent-Length: 0\r\n\r\n`],
  ['obs-fold', `HTTP/1.1 200 OK\r\nX-A: a\r\n ${MARK}\r\nContent-Length: 0\r\n\r\n`],
  ['Content-Length not a number', `HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n${MARK}`],
  ['two different Content-Lengths', `HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 20\r\n\r\nok${MARK}`],
  ['Content-Length and chunked', `HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n`],
  ['Transfer-Encoding not ending in chunked', `HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n${MARK}`],
  ['CR injection in a value (bare CR)', `HTTP/1.1 200 OK\r\nX-User: a\rSet-Cookie: ${MARK}=1\r\nContent-Length: 0\r\n\r\n`],
  ['CRLF injection ending the head early is a second response', `HTTP/1.1 200 OK\r\nX-User: a\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nSet-Cookie: ${MARK}=1\r\nContent-Length: 0\r\n\r\n`],
  ['NUL in a value', `HTTP/1.1 200 OK\r\nX-A: a\x00${MARK}\r\nContent-Length: 0\r\n\r\n`],
  ['NUL in the reason', `HTTP/1.1 200 O\x00K ${MARK}\r\nContent-Length: 0\r\n\r\n`],
  ['DEL in a value (node:http refuses to write it)', `HTTP/1.1 200 OK\r\nX-A: a\x7f${MARK}\r\nContent-Length: 0\r\n\r\n`],
  ['a bad chunk size before any body byte', `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n${MARK}\r\n0\r\n\r\n`],
];

for (const [name, body] of BAD_HTTP) {
  test(`invalid HTTP from the handler → 502 Bad Gateway, none of its bytes: ${name}`, async () => {
    const { c, id } = await forward('/h/bad-http');
    await handler.reply(id, Buffer.from(body, 'latin1'));
    const r = await c.response();
    if (name === 'CRLF injection ending the head early is a second response') {
      // The first response is valid and complete: it is relayed (framed by node:http), the
      // appended one is dropped, and the connection stays in sync for the next request.
      assert.equal(r.status, 200);
      assert.equal(r.headers['set-cookie'], undefined);
      c.write('GET /h/after-split HTTP/1.1\r\nHost: localhost\r\n\r\n');
      const { msg } = await handler.next();
      await handler.reply(msg.connId, ok('next'));
      assert.equal((await c.response()).body.toString(), 'next');
      c.destroy();
    } else {
      assert.equal(r.status, 502);
      assert.equal(r.reason, 'Bad Gateway');
      assert.equal(r.headers.connection, 'close');
      await c.end();
    }
    assert.ok(!r.raw.includes(MARK), `handler bytes reached the client: ${JSON.stringify(r.raw.toString('latin1'))}`);
  });
}

test('one invalid reply naming two waiting clients → one 502 each', async () => {
  const a = await forward('/h/two-a');
  const b = await forward('/h/two-b');
  await handler.reply([a.id, b.id], `HTTP/1.1 200 OK\r\nX-A: a\rSet-Cookie: ${MARK}\r\nContent-Length: 0\r\n\r\n`);
  const [ra, rb] = await Promise.all([a.c.response(), b.c.response()]);
  assert.deepEqual([ra.status, rb.status], [502, 502]);
});

test('invalid bytes after a valid head and body bytes: the connection is cut, never a second status line, never the bytes', async () => {
  const { c, id } = await forward('/h/bad-after-head');
  await handler.reply(id, 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\ngood\r\n');
  await c.seen('good');
  await handler.reply(id, `zz\r\n${MARK}\r\n`);
  const rest = (await c.end()).toString('latin1');
  assert.equal(rest.match(/HTTP\/1\.1/g)?.length, 1);
  assert.ok(!rest.includes(MARK));
  assert.doesNotMatch(rest, /\r\n0\r\n\r\n$/, 'the chunked body must not look complete');
});

test('a complete response with a second one appended in a later message: the first stands, the second is dropped', async () => {
  const { c, id } = await forward('/h/append');
  await handler.reply(id, 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\ngood\r\n');
  await c.seen('good');
  await handler.reply(id, `0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: ${MARK.length}\r\n\r\n${MARK}`);
  const r = await c.response();
  assert.equal(r.body.toString(), 'good');
  c.write('GET /h/after-append HTTP/1.1\r\nHost: localhost\r\n\r\n');
  const { msg } = await handler.next();
  await handler.reply(msg.connId, ok('next'));
  const next = await c.response();
  assert.equal(next.body.toString(), 'next');
  assert.ok(!next.raw.includes(MARK));
  c.destroy();
});

test('the pool keeps relaying after all that; nothing is pending, nothing in flight, MARK never on any socket', async () => {
  const { c, id } = await forward('/h/alive');
  await handler.reply(id, ok('alive'));
  assert.equal((await c.response()).body.toString(), 'alive');
  c.destroy();
  await c.closed;
  assert.equal(pool.pending, 0);
  for (const p of rig.gateway.pools) assert.equal(p.pending, 0);
  // A response is untracked on its 'close', which follows the socket's; give it that turn.
  await new Promise<void>((resolve) => setImmediate(resolve));
  assert.equal(rig.gateway.inFlight, 0);
  assert.ok(!Buffer.concat(seen).includes(MARK), 'forged bytes reached a client');
});
