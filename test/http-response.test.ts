// buildResponse and ResponseParser: Mongrel2 reply fixtures, builder output and validation,
// every parser rejection rule, keep-alive/framing decisions, 101 upgrades and body views.
// Split-point and fast-check properties live in http-response-split.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildResponse, ResponseParser, type ParsedHead, type ResponseParserOptions } from '../protocol/http-response.js';
import { ERROR_CODES, M2gateError, ProtocolError } from '../protocol/errors.js';
import { fixture } from './helpers/fixtures.js';

const bytes = (s: string): Buffer => Buffer.from(s, 'latin1');

/** Strips the `SENDER LEN:IDS, ` envelope (§4.1) without the reply codec. */
function replyBody(message: Buffer): Buffer {
  const sp = message.indexOf(0x20);
  const colon = message.indexOf(0x3a, sp);
  const end = colon + 1 + Number(message.toString('latin1', sp + 1, colon)); // the netstring's ','
  assert.equal(message.indexOf(', ', end, 'latin1'), end);
  return message.subarray(end + 2);
}

function collect(options?: ResponseParserOptions, upgrade?: Buffer[]) {
  const out = { head: undefined as ParsedHead | undefined, parts: [] as Buffer[], ends: 0, order: '' };
  const parser = new ResponseParser({
    onHead(h) { out.head = h; out.order += 'H'; },
    onBody(b) { out.parts.push(Buffer.from(b)); out.order += 'B'; }, // copy: views are only valid now
    onEnd() { out.ends++; out.order += 'E'; },
    ...(upgrade && { onUpgrade(b: Buffer) { upgrade.push(Buffer.from(b)); } }),
  }, options);
  return { parser, out, body: () => Buffer.concat(out.parts).toString('latin1') };
}

function parseAll(input: string, options?: ResponseParserOptions) {
  const c = collect(options);
  c.parser.push(bytes(input));
  return c;
}

function isResponseError(pattern: RegExp, offset?: number, label?: string) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof ProtocolError, `expected ProtocolError, got ${String(err)}`);
    assert.equal(err.code, ERROR_CODES.HTTP_RESPONSE);
    assert.match(err.message, pattern, label);
    if (offset !== undefined) assert.equal(err.offset, offset, label);
    return true;
  };
}

test('fixture reply-close: a Content-Length response, then the empty close reply', () => {
  const first = replyBody(fixture('reply-close.handler-1.bin'));
  const close = replyBody(fixture('reply-close.handler-2.bin'));
  assert.equal(close.length, 0);
  assert.deepEqual(first, fixture('reply-close.client.bin')); // Mongrel2 wrote it verbatim (§4.3)
  const { parser, out, body } = collect();
  parser.push(first);
  assert.deepEqual(out.head, {
    status: 200, reason: 'OK', version: '1.1', framing: 'length', contentLength: 3, keepAlive: true,
    headers: [['Content-Type', 'text/plain'], ['Content-Length', '3']],
  });
  assert.equal(body(), 'bye');
  assert.equal(out.order, 'HBE');
  assert.ok(parser.done);
  parser.close(); // the close reply after a complete response is a no-op
  assert.equal(out.ends, 1);
});

test('fixture reply-3part: a chunked response streamed over three reply messages', () => {
  const parts = [1, 2, 3].map((n) => replyBody(fixture(`reply-3part.handler-${n}.bin`)));
  assert.deepEqual(Buffer.concat(parts), fixture('reply-3part.client.bin'));
  const { parser, out, body } = collect();
  parser.push(parts[0]!);
  assert.equal(out.head?.framing, 'chunked');
  assert.deepEqual(out.head?.headers, [['Content-Type', 'text/plain'], ['Transfer-Encoding', 'chunked']]);
  assert.equal(out.order, 'H');
  parser.push(parts[1]!);
  assert.equal(body(), 'hello ');
  assert.equal(parser.done, false);
  parser.push(parts[2]!);
  assert.equal(body(), 'hello world');
  assert.equal(out.order, 'HBBE');
  assert.ok(parser.done);
});

test('fixture reply-two-ids: one response addressed to two connections', () => {
  const message = replyBody(fixture('reply-two-ids.handler.bin'));
  assert.deepEqual(message, fixture('reply-two-ids.client-a.bin'));
  const { out, body } = parseAll(message.toString('latin1'));
  assert.equal(out.head?.status, 200);
  assert.equal(out.head?.contentLength, 6);
  assert.equal(body(), 'shared');
  assert.equal(out.ends, 1);
});

test('buildResponse reproduces the fixture bytes Mongrel2 clients received', () => {
  const built = buildResponse({ status: 200, headers: { 'Content-Type': 'text/plain' }, body: 'bye' });
  assert.deepEqual(built, fixture('reply-close.client.bin'));
  const chunkedHead = buildResponse({ status: 200, headers: [['Content-Type', 'text/plain'], ['Transfer-Encoding', 'chunked']] });
  assert.deepEqual(chunkedHead, replyBody(fixture('reply-3part.handler-1.bin')));
  const upgrade = buildResponse({
    status: 101,
    headers: { Upgrade: 'websocket', Connection: 'Upgrade', 'Sec-WebSocket-Accept': 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=' },
  });
  assert.equal(upgrade.toString('latin1'), 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n');
});

test('buildResponse: header forms, byte lengths, reasons, HEAD and no-body statuses', () => {
  const text = (init: Parameters<typeof buildResponse>[0], options?: { head?: boolean }) => buildResponse(init, options).toString('latin1');
  assert.equal(text({ status: 200, headers: { 'Set-Cookie': ['a=1', 'b=2'], 'X-N': 7 }, body: 'h\u00e9' }),
    'HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nX-N: 7\r\nContent-Length: 3\r\n\r\nh\u00c3\u00a9');
  assert.equal(text({ status: 201, reason: '', headers: new Map([['X-A', 'b']]), body: new Uint8Array([0, 13, 10]) }),
    'HTTP/1.1 201 \r\nX-A: b\r\nContent-Length: 3\r\n\r\n\0\r\n');
  assert.equal(text({ status: 599 }), 'HTTP/1.1 599 \r\nContent-Length: 0\r\n\r\n'); // no STATUS_CODES entry
  assert.equal(text({ status: 404, reason: 'Nicht gefunden \u00fc' }), 'HTTP/1.1 404 Nicht gefunden \u00fc\r\nContent-Length: 0\r\n\r\n');
  assert.equal(text({ status: 200, body: 'hello' }, { head: true }), 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n');
  assert.equal(text({ status: 200, headers: { 'content-length': '1234' } }, { head: true }), 'HTTP/1.1 200 OK\r\ncontent-length: 1234\r\n\r\n');
  assert.equal(text({ status: 200, headers: { 'Content-Length': ' 2 ' }, body: 'ok' }), 'HTTP/1.1 200 OK\r\nContent-Length:  2 \r\n\r\nok');
  assert.equal(text({ status: 204 }), 'HTTP/1.1 204 No Content\r\n\r\n');
  assert.equal(text({ status: 304, headers: { 'Content-Length': '99' } }), 'HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n');
  assert.equal(text({ status: 200, headers: { 'Transfer-Encoding': 'gzip, chunked' }, body: '0\r\n\r\n' }),
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n');
});

test('buildResponse rejects anything that could split or misframe a response', () => {
  const bad: Array<[string, Parameters<typeof buildResponse>[0], RegExp]> = [
    ['status 99', { status: 99 }, /status must be an integer 100-599/],
    ['status 600', { status: 600 }, /status/],
    ['status 200.5', { status: 200.5 }, /status/],
    ['status NaN', { status: Number.NaN }, /status/],
    ['CRLF in reason', { status: 200, reason: 'OK\r\nX-Injected: 1' }, /reason phrase/],
    ['name with space', { status: 200, headers: { 'Bad Name': 'x' } }, /not an RFC 7230 token/],
    ['empty name', { status: 200, headers: [['', 'x']] }, /token/],
    ['name with colon', { status: 200, headers: { 'X:Y': 'x' } }, /token/],
    ['non-ASCII name', { status: 200, headers: { 'X-\u00e9': 'x' } }, /token/],
    ['CR in value', { status: 200, headers: { 'X-A': 'a\rb' } }, /contains CR, LF, NUL/],
    ['LF in value', { status: 200, headers: { 'X-A': 'a\nb' } }, /contains CR, LF, NUL/],
    ['CRLF injection', { status: 200, headers: { Location: '/\r\nSet-Cookie: evil=1' } }, /contains CR, LF, NUL/],
    ['NUL in value', { status: 200, headers: { 'X-A': 'a\0b' } }, /contains CR, LF, NUL/],
    ['DEL in value', { status: 200, headers: { 'X-A': 'a\x7f' } }, /control character/],
    ['U+010D (latin1 would truncate it to CR)', { status: 200, headers: { 'X-A': 'a\u010d\u010aX: y' } }, /above U\+00FF/],
    ['CR inside an array value', { status: 200, headers: { 'X-A': ['ok', 'b\r'] } }, /contains CR/],
    ['non-string value', { status: 200, headers: { 'X-A': undefined as unknown as string } }, /not a string or finite number/],
    ['Content-Length mismatch', { status: 200, headers: { 'Content-Length': '4' }, body: 'abc' }, /differs from the body length 3/],
    ['Content-Length counts bytes, not chars', { status: 200, headers: { 'Content-Length': '1' }, body: '\u00e9' }, /differs/],
    ['Content-Length not decimal', { status: 200, headers: { 'Content-Length': '0x3' }, body: 'abc' }, /not a decimal number/],
    ['Content-Length with Transfer-Encoding', { status: 200, headers: { 'Content-Length': '0', 'Transfer-Encoding': 'chunked' } }, /both/],
    ['Transfer-Encoding not ending in chunked', { status: 200, headers: { 'Transfer-Encoding': 'gzip' } }, /must end with chunked/],
    ['body on 204', { status: 204, body: 'x' }, /204 response cannot have a body/],
    ['body on 304', { status: 304, body: Buffer.from('x') }, /304 response cannot have a body/],
    ['body on 101', { status: 101, body: 'x' }, /101 response cannot have a body/],
    ['Content-Length on 204', { status: 204, headers: { 'Content-Length': '0' } }, /cannot carry Content-Length/],
  ];
  for (const [name, init, pattern] of bad) {
    assert.throws(() => buildResponse(init), (err: unknown) => {
      assert.ok(err instanceof M2gateError, name);
      assert.equal(err.code, ERROR_CODES.HTTP_RESPONSE, name);
      assert.match(err.message, pattern, name);
      return true;
    }, name);
  }
});

test('parser: status line forms, OWS trimming, raw names in order, latin1 values, bare LF', () => {
  const { out } = parseAll('HTTP/1.1 200\r\nX-Empty:\r\nx-lower:  \t spaced value \t \r\nX-Latin: caf\xe9\r\nContent-Length: 0\r\n\r\n');
  assert.equal(out.head?.reason, '');
  assert.deepEqual(out.head?.headers, [['X-Empty', ''], ['x-lower', 'spaced value'], ['X-Latin', 'caf\u00e9'], ['Content-Length', '0']]);
  assert.equal(out.order, 'HE');
  assert.equal(parseAll('HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n').out.head?.reason, '');
  assert.equal(parseAll('HTTP/1.1 418 I\'m a  teapot\tyes\r\nContent-Length: 0\r\n\r\n').out.head?.reason, 'I\'m a  teapot\tyes');
  const lf = parseAll('HTTP/1.0 200 OK\nContent-Length: 2\n\nok');
  assert.equal(lf.out.head?.version, '1.0');
  assert.equal(lf.body(), 'ok');
});

test('parser: framing and keep-alive decisions', () => {
  const head = (s: string, options?: ResponseParserOptions) => {
    const c = parseAll(`${s}\r\n\r\n`, options);
    return { framing: c.out.head?.framing, keepAlive: c.out.head?.keepAlive, cl: c.out.head?.contentLength, done: c.parser.done };
  };
  assert.deepEqual(head('HTTP/1.1 200 OK\r\nContent-Length: 5'), { framing: 'length', keepAlive: true, cl: 5, done: false });
  assert.deepEqual(head('HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: Keep-Alive, CLOSE'), { framing: 'length', keepAlive: false, cl: 0, done: true });
  assert.deepEqual(head('HTTP/1.0 200 OK\r\nContent-Length: 0'), { framing: 'length', keepAlive: false, cl: 0, done: true });
  assert.deepEqual(head('HTTP/1.0 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive'), { framing: 'length', keepAlive: true, cl: 0, done: true });
  assert.deepEqual(head('HTTP/1.1 200 OK'), { framing: 'close', keepAlive: false, cl: undefined, done: false });
  assert.deepEqual(head('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: Chunked'), { framing: 'chunked', keepAlive: true, cl: undefined, done: false });
  assert.deepEqual(head('HTTP/1.1 204 No Content\r\nContent-Length: 10'), { framing: 'none', keepAlive: true, cl: 10, done: true });
  assert.deepEqual(head('HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked'), { framing: 'none', keepAlive: true, cl: undefined, done: true });
  assert.deepEqual(head('HTTP/1.1 200 OK\r\nContent-Length: 10', { expectNoBody: true }), { framing: 'none', keepAlive: true, cl: 10, done: true });
  assert.deepEqual(head('HTTP/1.1 200 OK\r\nContent-Length: 7\r\nContent-Length: 7'), { framing: 'length', keepAlive: true, cl: 7, done: false });
  assert.deepEqual(head('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade'), { framing: 'none', keepAlive: false, cl: undefined, done: true });
  const three = parseAll('HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nContent-Length: 0\r\n\r\n', { maxHeaders: 3 });
  assert.equal(three.out.head?.headers.length, 3); // exactly maxHeaders is fine
});

test('parser: close() ends a read-until-close body; bytesRemaining tracks length bodies', () => {
  const c = collect();
  c.parser.push(bytes('HTTP/1.1 200 OK\r\n\r\npart one, '));
  c.parser.push(bytes('part two'));
  assert.equal(c.out.ends, 0);
  assert.equal(c.parser.bytesRemaining, undefined);
  c.parser.close();
  assert.equal(c.body(), 'part one, part two');
  assert.equal(c.out.order, 'HBBE');
  assert.ok(c.parser.done);
  c.parser.close();
  assert.equal(c.out.ends, 1);
  const l = collect();
  l.parser.push(bytes('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n1234'));
  assert.equal(l.parser.bytesRemaining, 6);
});

test('parser: 101 hands the following raw bytes to onUpgrade', () => {
  const raw: Buffer[] = [];
  const c = collect(undefined, raw);
  c.parser.push(Buffer.concat([bytes('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n'), bytes('\x81\x05wor')]));
  c.parser.push(bytes('ld'));
  c.parser.close();
  assert.equal(c.out.order, 'HE');
  assert.ok(c.parser.upgraded);
  assert.equal(Buffer.concat(raw).toString('latin1'), '\x81\x05world');
  const without = collect();
  assert.throws(() => { without.parser.push(bytes('HTTP/1.1 101 Switching Protocols\r\n\r\n\x81')); }, isResponseError(/no onUpgrade handler/, 36));
});

test('parser: onBody chunks are views of the pushed buffer (consume synchronously or copy)', () => {
  const views: Buffer[] = [];
  const parser = new ResponseParser({ onHead() {}, onBody(b) { views.push(b); }, onEnd() {} });
  const head = Buffer.alloc(64);
  const headText = 'HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n';
  head.write(headText, 'latin1');
  parser.push(head.subarray(0, headText.length + 3).fill('abc', headText.length));
  const tail = Buffer.alloc(3, 'def');
  parser.push(tail);
  assert.equal(views.length, 2); // one per push: a body spanning pushes is emitted in parts
  assert.equal(views[0]?.buffer, head.buffer);
  assert.equal(views[1]?.buffer, tail.buffer);
  assert.equal(Buffer.concat(views).toString(), 'abcdef');
  head.fill('X');
  tail.fill('Y');
  assert.equal(Buffer.concat(views).toString(), 'XXXYYY'); // proof that no body byte was copied
});

test('parser: an exception thrown by an event handler leaves the parser failed', () => {
  const parser = new ResponseParser({ onHead() { throw new Error('boom'); }, onBody() {}, onEnd() {} });
  assert.throws(() => parser.push(bytes('HTTP/1.1 200 OK\r\n\r\n')), /boom/);
  assert.throws(() => parser.push(bytes('x')), isResponseError(/already failed: boom/));
});

interface Rejection { name: string; input: string; pattern: RegExp; offset?: number; options?: ResponseParserOptions; close?: boolean }
const OK = 'HTTP/1.1 200 OK\r\n';
const CHUNKED = `${OK}Transfer-Encoding: chunked\r\n\r\n`;
const rejections: Rejection[] = [
  { name: 'HTTP/2.0', input: 'HTTP/2.0 200 OK\r\n\r\n', pattern: /bad status line/, offset: 0 },
  { name: 'two-digit status', input: 'HTTP/1.1 20 OK\r\n\r\n', pattern: /bad status line/ },
  { name: 'no space after status', input: 'HTTP/1.1 200OK\r\n\r\n', pattern: /bad status line/ },
  { name: 'lower-case protocol', input: 'http/1.1 200 OK\r\n\r\n', pattern: /bad status line/ },
  { name: 'double space', input: 'HTTP/1.1  200 OK\r\n\r\n', pattern: /bad status line/ },
  { name: 'not HTTP at all', input: 'hello\n', pattern: /bad status line/ },
  { name: 'status 600', input: 'HTTP/1.1 600 Nope\r\n\r\n', pattern: /status 600 outside 100-599/, offset: 9 },
  { name: 'status 099', input: 'HTTP/1.1 099 x\r\n\r\n', pattern: /outside 100-599/ },
  { name: 'interim 100', input: 'HTTP/1.1 100 Continue\r\n\r\n', pattern: /interim 100 response not supported/, offset: 9 },
  { name: 'interim 103', input: 'HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n', pattern: /interim 103/ },
  { name: 'NUL in reason', input: 'HTTP/1.1 200 O\0K\r\n\r\n', pattern: /NUL in reason phrase/, offset: 14 },
  { name: 'bare CR in reason', input: 'HTTP/1.1 200 O\rK\r\n\r\n', pattern: /bare CR/, offset: 14 },
  { name: 'bare CR as line end', input: 'HTTP/1.1 200 OK\rContent-Length: 0\r\n\r\n', pattern: /bare CR/, offset: 15 },
  { name: 'bare CR in value', input: `${OK}X-A: a\rb\r\n\r\n`, pattern: /bare CR/, offset: 23 },
  { name: 'CR CR LF', input: `${OK}X-A: a\r\r\n\r\n`, pattern: /bare CR/, offset: 23 },
  { name: 'space in name', input: `${OK}Bad Name: x\r\n\r\n`, pattern: /not a token followed by ":"/, offset: 20 },
  { name: 'delimiter in name', input: `${OK}Bad(: x\r\n\r\n`, pattern: /not a token/, offset: 20 },
  { name: 'empty name', input: `${OK}: x\r\n\r\n`, pattern: /not a token/, offset: 17 },
  { name: 'no colon', input: `${OK}NoColon\r\n\r\n`, pattern: /not a token/, offset: 24 },
  { name: 'space before colon', input: `${OK}X-A : x\r\n\r\n`, pattern: /not a token/, offset: 20 },
  { name: 'UTF-8 in name', input: `${OK}Jos\xc3\xa9: x\r\n\r\n`, pattern: /not a token/, offset: 20 },
  { name: 'NUL in value', input: `${OK}X-A: a\0b\r\n\r\n`, pattern: /NUL in a field value/, offset: 23 },
  { name: 'obs-fold with spaces', input: `${OK}X-A: a\r\n  b\r\n\r\n`, pattern: /obs-fold/, offset: 25 },
  { name: 'obs-fold with tab', input: `${OK}X-A: a\r\n\tb\r\n\r\n`, pattern: /obs-fold/, offset: 25 },
  { name: 'obs-fold before the first field', input: `${OK} X-A: a\r\n\r\n`, pattern: /obs-fold/, offset: 17 },
  ...['1x', '-1', '+5', '', '0x10', '1e3', '1,1', '1 1', '1234567890123456'].map((v) => (
    { name: `Content-Length ${JSON.stringify(v)}`, input: `${OK}Content-Length: ${v}\r\n\r\n`, pattern: /is not a decimal number/ })),
  { name: 'Content-Length repeated differently', input: `${OK}Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd`, pattern: /repeated Content-Length with different values/, offset: 55 },
  { name: 'Content-Length and Transfer-Encoding', input: `${OK}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n`, pattern: /conflicting framing/ },
  { name: 'Content-Length and Transfer-Encoding on HEAD', input: `${OK}Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n`, pattern: /conflicting framing/, options: { expectNoBody: true } },
  ...['gzip', 'chunked, gzip', 'chunked;x=1', 'chunked, chunked', 'identity', ''].map((v) => (
    { name: `Transfer-Encoding ${JSON.stringify(v)}`, input: `${OK}Transfer-Encoding: ${v}\r\n\r\n`, pattern: /must end with a single chunked/ })),
  { name: 'head over maxHeadBytes', input: `${OK}X-Long: ${'a'.repeat(60)}\r\n\r\n`, pattern: /response head larger than maxHeadBytes \(64\)/, options: { maxHeadBytes: 64 } },
  { name: 'head over maxHeadBytes by the final CRLF', input: `${OK}X: ${'a'.repeat(40)}\r\n\r\n`, pattern: /response head larger/, options: { maxHeadBytes: 63 } },
  { name: 'unterminated line over the default 64 KiB', input: `${OK}X: ${'a'.repeat(65536)}`, pattern: /response head larger than maxHeadBytes \(65536\)/ },
  { name: 'more than maxHeaders', input: `${OK}A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n`, pattern: /more than maxHeaders \(3\) fields/, offset: 35, options: { maxHeaders: 3 } },
  ...['zz', '', '5x', ' 5', '-1', '0x5', '5 x'].map((v) => (
    { name: `chunk size ${JSON.stringify(v)}`, input: `${CHUNKED}${v}\r\n`, pattern: /chunk size is not hexadecimal|bad chunk size line/ })),
  { name: 'chunk size above 2^53', input: `${CHUNKED}20000000000000\r\n`, pattern: /chunk size too large/ },
  { name: 'control byte in chunk extension', input: `${CHUNKED}5;a=\x01\r\nhello\r\n`, pattern: /control character in chunk extension/, offset: 51 },
  { name: 'bare CR in chunk size line', input: `${CHUNKED}5\rx\r\n`, pattern: /bare CR/, offset: 48 },
  { name: 'chunk size line over maxHeadBytes', input: `${CHUNKED}5;${'e'.repeat(100)}\r\n`, pattern: /chunk size line larger than maxHeadBytes/, options: { maxHeadBytes: 100 } },
  { name: 'chunk data then X', input: `${CHUNKED}3\r\nabcX\r\n`, pattern: /chunk data not followed by CRLF/, offset: 53 },
  { name: 'chunk data then CR X', input: `${CHUNKED}3\r\nabc\rX`, pattern: /chunk data not followed by CRLF/, offset: 54 },
  { name: 'bad trailer name', input: `${CHUNKED}0\r\nBad Trailer: x\r\n\r\n`, pattern: /not a token/ },
  { name: 'obs-fold in trailers', input: `${CHUNKED}0\r\nT: x\r\n y\r\n\r\n`, pattern: /obs-fold/ },
  { name: 'too many trailers', input: `${CHUNKED}0\r\nT: 1\r\nU: 2\r\n\r\n`, pattern: /more than maxHeaders \(1\)/, options: { maxHeaders: 1 } },
  { name: 'trailers over maxHeadBytes', input: `${CHUNKED}0\r\nT: ${'t'.repeat(70)}\r\n\r\n`, pattern: /trailer section larger than maxHeadBytes \(64\)/, options: { maxHeadBytes: 64 } },
  { name: 'second response after Content-Length body', input: `${OK}Content-Length: 3\r\n\r\nabcHTTP/1.1 200 OK\r\n\r\n`, pattern: /bytes after a complete response/, offset: 41 },
  { name: 'bytes after the last chunk', input: `${CHUNKED}0\r\n\r\nX`, pattern: /bytes after a complete response/, offset: 52 },
  { name: 'body on 204', input: 'HTTP/1.1 204 No Content\r\n\r\nx', pattern: /bytes after a complete response/, offset: 27 },
  { name: 'body on a response to HEAD', input: `${OK}Content-Length: 1\r\n\r\nx`, pattern: /bytes after a complete response/, options: { expectNoBody: true } },
  { name: 'close() before any byte', input: '', pattern: /closed before a complete response head/, offset: 0, close: true },
  { name: 'close() inside the head', input: `${OK}X-A: b\r\n`, pattern: /closed before a complete response head/, offset: 25, close: true },
  { name: 'close() inside a length body', input: `${OK}Content-Length: 5\r\n\r\nabc`, pattern: /closed before the end/, close: true },
  { name: 'close() inside a chunk', input: `${CHUNKED}5\r\nabc`, pattern: /closed before the end/, close: true },
  { name: 'close() before the last chunk', input: `${CHUNKED}5\r\nabcde\r\n`, pattern: /closed before the end/, close: true },
  { name: 'close() inside the trailers', input: `${CHUNKED}0\r\nT: 1\r\n`, pattern: /closed before the end/, close: true },
];

test('parser rejections: each throws HTTP_RESPONSE with an offset, then refuses further input', () => {
  for (const r of rejections) {
    const { parser } = collect(r.options);
    const trigger = r.close === true ? () => { parser.push(bytes(r.input)); parser.close(); } : () => parser.push(bytes(r.input));
    assert.throws(trigger, isResponseError(r.pattern, r.offset, r.name), r.name);
    assert.throws(() => parser.push(bytes('HTTP/1.1 200 OK\r\n\r\n')), isResponseError(/parser already failed/, r.offset), r.name);
    assert.throws(() => parser.close(), isResponseError(/parser already failed/), r.name);
  }
});

test('parser rejections also fire when the input arrives one byte at a time', () => {
  for (const r of rejections) {
    const { parser } = collect(r.options);
    const input = bytes(r.input);
    assert.throws(() => {
      for (let i = 0; i < input.length; i++) parser.push(input.subarray(i, i + 1));
      if (r.close === true) parser.close();
    }, isResponseError(r.pattern, r.offset, r.name), r.name);
    assert.throws(() => parser.push(bytes('x')), isResponseError(/parser already failed/), r.name);
  }
});

test('bytes pushed after a complete response in a later push are rejected too', () => {
  const { parser } = parseAll(`${OK}Content-Length: 2\r\n\r\nok`);
  parser.push(Buffer.alloc(0)); // nothing new: fine
  assert.throws(() => parser.push(bytes('HTTP/1.1 200 OK\r\n')), isResponseError(/a handler may send only one response per request/, 40));
  assert.throws(() => parser.push(bytes('x')), isResponseError(/already failed/));
});
