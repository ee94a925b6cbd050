// Request smuggling and desync vectors through the whole gateway (issue #8, "Bad input"), sent as
// raw bytes over node:net so no client library normalises them. For each vector:
// - rejected: the client reads its documented status with `Connection: close`, then the
//   connection ends with no second response (a request hidden in the body is never answered),
//   and the handler receives nothing at all: a probe sent afterwards on a fresh connection is the
//   very next message it gets and the pool's `sent` counter moved by exactly that one;
// - accepted: the handler receives exactly the messages the client's framing says, one per
//   request, with the right PATH and body bytes, and nothing more (same probe).
// At the end the gateway holds nothing in flight. The statuses are those README lists under
// the gateway's deliberate differences (400 for framing llhttp or request-hygiene refuses, 501
// for a coding before `chunked`, 431 for too many header lines).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { fakeHandler, handlerConf, startGateway, type RawClient } from './helpers/gateway.js';

const H = handlerConf('/h/', '5e6f7a8b-0000-4000-8000-00smuggling0');
const MAX_HEADERS = 16;
const rig = await startGateway({ handlers: [H], settings: { 'limits.header_count': MAX_HEADERS } });
const handler = await fakeHandler(H, rig.pool('/h/'));
after(async () => {
  handler.stop();
  await rig.close();
});

const HOST = 'Host: localhost\r\n';
/** A request hidden where a lenient or differently-framing parser would see a second request. */
const SMUGGLED = `GET /h/smuggled HTTP/1.1\r\n${HOST}\r\n`;
const ok = (body: string): string => `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;

let probes = 0;

/** A fresh connection's GET reaches the handler as its very next message; answers it. */
async function probe(): Promise<void> {
  const path = `/h/probe/${++probes}`;
  const d = await rig.client();
  d.write(`GET ${path} HTTP/1.1\r\n${HOST}\r\n`);
  const { msg } = await handler.next('the probe request');
  assert.equal(msg.path, path, `the handler got ${msg.path} before the probe: a rejected or extra request reached it`);
  await handler.reply(msg.connId, ok('probe'));
  assert.equal((await d.response()).body.toString(), 'probe');
  d.destroy();
}

/** Nothing in flight: no pending reply sink in any pool, no open response in the gateway. */
async function settled(): Promise<void> {
  // The last response's 'close' (which untracks it) is emitted after the client read it; one
  // more round trip through the gateway orders it before this check.
  await probe();
  for (const pool of rig.gateway.pools) assert.equal(pool.pending, 0, `pool ${pool.config.sendIdent} still has pending replies`);
  await new Promise<void>((resolve) => setImmediate(resolve));
  assert.equal(rig.gateway.inFlight, 0, 'responses still in flight');
}

async function refused(bytes: string, status: number): Promise<void> {
  const pool = rig.pool('/h/');
  const sentBefore = pool.stats.sent;
  const c = await rig.client();
  c.write(bytes);
  const r = await c.response();
  assert.equal(r.status, status, JSON.stringify(bytes));
  assert.equal(r.headers.connection, 'close');
  const rest = await c.end();
  assert.equal(rest.length, 0, `bytes after the refusal: ${JSON.stringify(rest.toString('latin1'))}`);
  await probe();
  assert.equal(pool.stats.sent - sentBefore, 1, 'only the probe was sent to the handler');
  assert.equal(handler.queued, 0);
}

interface Expect {
  path: string;
  body: string;
}

/** The handler receives exactly `expected`, in order; the client gets one 200 per request. */
async function accepted(bytes: string, expected: Expect[], c?: RawClient): Promise<void> {
  const pool = rig.pool('/h/');
  const sentBefore = pool.stats.sent;
  const client = c ?? (await rig.client());
  client.write(bytes);
  for (const [i, e] of expected.entries()) {
    const { msg } = await handler.next(`request ${i + 1} of ${expected.length}`);
    assert.equal(msg.path, e.path);
    assert.equal(msg.body.toString('latin1'), e.body, `body of ${e.path}`);
    await handler.reply(msg.connId, ok(`echo ${msg.body.length}`));
  }
  for (const e of expected) {
    const r = await client.response();
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), `echo ${Buffer.byteLength(e.body, 'latin1')}`);
  }
  await probe();
  assert.equal(pool.stats.sent - sentBefore, expected.length + 1, 'one handler message per request, no more');
  client.destroy();
}

const post = (head: string, body: string, version = '1.1', path = '/h/a'): string => `POST ${path} HTTP/${version}\r\n${HOST}${head}\r\n${body}`;
const getWith = (head: string, target = '/h/a'): string => `GET ${target} HTTP/1.1\r\n${HOST}${head}\r\n`;

/** [name, bytes, status]: refused before any handler sees them. */
const REFUSED: Array<[string, string, number]> = [
  // CL.TE / TE.CL: a front reading one and a back end the other disagree on where the body ends.
  ['CL+TE (Content-Length first), request hidden after the chunked end', post('Content-Length: 4\r\nTransfer-Encoding: chunked\r\n', `0\r\n\r\n${SMUGGLED}`), 400],
  ['TE+CL (Transfer-Encoding first), request hidden in the chunk', post('Transfer-Encoding: chunked\r\nContent-Length: 3\r\n', `${(SMUGGLED.length + 2).toString(16)}\r\n\r\n${SMUGGLED}\r\n0\r\n\r\n`), 400],
  ['duplicate Content-Length, equal values', post('Content-Length: 5\r\nContent-Length: 5\r\n', 'hello'), 400],
  ['duplicate Content-Length, different values', post('Content-Length: 5\r\nContent-Length: 41\r\n', `hello${SMUGGLED}`), 400],
  ['Content-Length as a list "5, 5"', post('Content-Length: 5, 5\r\n', 'hello'), 400],
  ['Content-Length with a sign "+5"', post('Content-Length: +5\r\n', 'hello'), 400],
  ['Content-Length in hex "0x5"', post('Content-Length: 0x5\r\n', 'hello'), 400],
  ['duplicate Host', getWith('Host: evil.example\r\n'), 400],
  ['duplicate Host, different case', `GET /h/a HTTP/1.1\r\nhost: localhost\r\nHOST: localhost\r\n\r\n`, 400],
  ['Transfer-Encoding on HTTP/1.0', post('Transfer-Encoding: chunked\r\n', `5\r\nhello\r\n0\r\n\r\n${SMUGGLED}`, '1.0'), 400],
  ['Transfer-Encoding: identity, chunked (a coding before chunked)', post('Transfer-Encoding: identity, chunked\r\n', '5\r\nhello\r\n0\r\n\r\n'), 501],
  ['Transfer-Encoding: gzip, chunked', post('Transfer-Encoding: gzip, chunked\r\n', '5\r\nhello\r\n0\r\n\r\n'), 501],
  ['Transfer-Encoding gzip then chunked on two lines', post('Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n', '5\r\nhello\r\n0\r\n\r\n'), 501],
  ['Transfer-Encoding: identity', post('Transfer-Encoding: identity\r\n', 'hello'), 400],
  ['Transfer-Encoding: chunked, identity', post('Transfer-Encoding: chunked, identity\r\n', '5\r\nhello\r\n0\r\n\r\n'), 400],
  ['Transfer-Encoding: chunked twice', post('Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n', '5\r\nhello\r\n0\r\n\r\n'), 400],
  ['Transfer-Encoding: xchunked', post('Transfer-Encoding: xchunked\r\n', `5\r\nhello\r\n0\r\n\r\n${SMUGGLED}`), 400],
  ['space before the colon: "Transfer-Encoding : chunked"', post('Transfer-Encoding : chunked\r\n', '5\r\nhello\r\n0\r\n\r\n'), 400],
  ['obs-fold of an ordinary header', getWith('X-Folded: a\r\n b\r\n'), 400],
  ['obs-fold hiding Transfer-Encoding', post('X-Folded: a\r\n Transfer-Encoding: chunked\r\nContent-Length: 5\r\n', 'hello'), 400],
  ['obs-fold continuing Transfer-Encoding', post('Transfer-Encoding:\r\n chunked\r\n', '5\r\nhello\r\n0\r\n\r\n'), 400],
  ['bare CR inside a header value', getWith('X-A: a\rTransfer-Encoding: chunked\r\n'), 400],
  ['bare CR ending a header line', getWith('X-A: a\rX-B: b\r\n'), 400],
  ['bare LF ending every line', 'GET /h/a HTTP/1.1\nHost: localhost\n\n', 400],
  ['bare LF ending one header line', `GET /h/a HTTP/1.1\r\n${HOST}X-A: a\nX-B: b\r\n\r\n`, 400],
  ['bare CR in the request line', 'GET /h/a\r HTTP/1.1\r\nHost: localhost\r\n\r\n', 400],
  ['NUL in a header value', getWith('X-N: a\x00b\r\n'), 400],
  ['NUL in a header name', getWith('X\x00N: a\r\n'), 400],
  ['NUL in the target', 'GET /h/a\x00b HTTP/1.1\r\nHost: localhost\r\n\r\n', 400],
  ['0x01 in a header value', getWith('X-N: a\x01b\r\n'), 400],
  ['a chunk size that overflows', post('Transfer-Encoding: chunked\r\n', 'ffffffffffffffffff\r\nhello\r\n0\r\n\r\n'), 400],
  ['a chunk size that is not hex', post('Transfer-Encoding: chunked\r\n', `zz\r\nhello\r\n0\r\n\r\n${SMUGGLED}`), 400],
  ['a chunk without its CRLF', post('Transfer-Encoding: chunked\r\n', `5\r\nhelloXX0\r\n\r\n${SMUGGLED}`), 400],
  [`more header lines than limits.header_count (${MAX_HEADERS})`, getWith('X-H: v\r\n'.repeat(MAX_HEADERS)), 431],
  // Invalid targets.
  ['asterisk-form target', 'OPTIONS * HTTP/1.1\r\nHost: localhost\r\n\r\n', 400],
  ['absolute-form target', 'GET http://localhost/h/a HTTP/1.1\r\nHost: localhost\r\n\r\n', 400],
  ['authority-form target (CONNECT)', 'CONNECT localhost:80 HTTP/1.1\r\nHost: localhost\r\n\r\n', 400],
  ['a raw # in the target', 'GET /h/a#frag HTTP/1.1\r\nHost: localhost\r\n\r\n', 400],
  ['a bad percent-escape', 'GET /h/%zz HTTP/1.1\r\nHost: localhost\r\n\r\n', 400],
  ['a truncated percent-escape', 'GET /h/%4 HTTP/1.1\r\nHost: localhost\r\n\r\n', 400],
  ['a raw backslash in the target', 'GET /h/..\\a HTTP/1.1\r\nHost: localhost\r\n\r\n', 400],
  ['a raw space in the target', 'GET /h/a b HTTP/1.1\r\nHost: localhost\r\n\r\n', 400],
  ['raw UTF-8 in the target', 'GET /h/caf\xc3\xa9 HTTP/1.1\r\nHost: localhost\r\n\r\n', 400],
  ['a target not starting with /', 'GET h/a HTTP/1.1\r\nHost: localhost\r\n\r\n', 400],
  ['HTTP/0.9 version', 'GET /h/a HTTP/0.9\r\nHost: localhost\r\n\r\n', 400],
  ['HTTP/2.0 version', 'GET /h/a HTTP/2.0\r\nHost: localhost\r\n\r\n', 400],
  ['lower-case method', 'get /h/a HTTP/1.1\r\nHost: localhost\r\n\r\n', 400],
];

for (const [name, bytes, status] of REFUSED) {
  test(`refused, nothing reaches the handler: ${name} → ${status}`, () => refused(bytes, status));
}

test('accepted: Content-Length body → exactly one message with those bytes; the next request is its own', () =>
  accepted(post('Content-Length: 5\r\n', `hello${SMUGGLED}`), [
    { path: '/h/a', body: 'hello' },
    { path: '/h/smuggled', body: '' },
  ]));

test('accepted: chunked body with extensions and a trailer → one message, de-chunked', () =>
  accepted(post('Transfer-Encoding: chunked\r\n', '5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n'), [{ path: '/h/a', body: 'hello world' }]));

test('accepted: Transfer-Encoding CHUNKED (coding names are case-insensitive) → one message', () =>
  accepted(post('Transfer-Encoding: CHUNKED\r\n', '5\r\nhello\r\n0\r\n\r\n'), [{ path: '/h/a', body: 'hello' }]));

test('accepted: a chunked body that looks like a request stays body', () =>
  accepted(post('Transfer-Encoding: chunked\r\n', `${SMUGGLED.length.toString(16)}\r\n${SMUGGLED}\r\n0\r\n\r\n`), [{ path: '/h/a', body: SMUGGLED }]));

test('accepted: HTTP/1.0 with Content-Length → one message; the connection then closes', async () => {
  const c = await rig.client();
  await accepted(post('Content-Length: 5\r\n', 'hello', '1.0'), [{ path: '/h/a', body: 'hello' }], c);
  await c.closed;
});

test('accepted: Content-Length 0 and a GET without a body → one empty-bodied message each', () =>
  accepted(post('Content-Length: 0\r\n', '') + getWith(''), [
    { path: '/h/a', body: '' },
    { path: '/h/a', body: '' },
  ]));

test('accepted: a body with NUL, CR and LF bytes is carried intact (they only matter in the head)', () =>
  accepted(post('Content-Length: 9\r\n', 'a\x00b\rc\nd\r\n'), [{ path: '/h/a', body: 'a\x00b\rc\nd\r\n' }]));

test('accepted: three pipelined requests with bodies → three messages, in order, bodies intact', () =>
  accepted(
    post('Content-Length: 3\r\n', 'one', '1.1', '/h/1') +
      post('Transfer-Encoding: chunked\r\n', '3\r\ntwo\r\n0\r\n\r\n', '1.1', '/h/2') +
      post('Content-Length: 5\r\n', 'three', '1.1', '/h/3'),
    [
      { path: '/h/1', body: 'one' },
      { path: '/h/2', body: 'two' },
      { path: '/h/3', body: 'three' },
    ],
  ));

test('a valid request followed by a refused one on the same connection: the first is served, the second never reaches the handler', async () => {
  const pool = rig.pool('/h/');
  const sentBefore = pool.stats.sent;
  const c = await rig.client();
  c.write(post('Content-Length: 2\r\n', 'ok', '1.1', '/h/first') + post('Content-Length: 3\r\nTransfer-Encoding: chunked\r\n', `0\r\n\r\n${SMUGGLED}`));
  const { msg } = await handler.next('the valid first request');
  assert.equal(msg.path, '/h/first');
  assert.equal(msg.body.toString(), 'ok');
  await handler.reply(msg.connId, ok('first'));
  const first = await c.response();
  assert.equal(first.status, 200);
  assert.equal(first.body.toString(), 'first');
  const second = await c.response();
  assert.equal(second.status, 400);
  assert.equal((await c.end()).length, 0);
  await probe();
  assert.equal(pool.stats.sent - sentBefore, 2);
});

test('after every vector: no pending reply sink, no response in flight', () => settled());
