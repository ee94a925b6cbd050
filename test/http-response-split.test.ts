// ResponseParser fed in pieces: every split point (two and three pieces, and byte by byte) gives
// the same head and body, body chunks are views of the pushed buffers, and the pushed buffers
// can be overwritten right after push(). Property tests: builder → parser round trip, and
// arbitrary input only ever throws ProtocolError.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { buildResponse, ResponseParser, type ParsedHead, type ResponseParserOptions } from '../protocol/http-response.js';
import { ERROR_CODES, ProtocolError } from '../protocol/errors.js';

interface Result { head: ParsedHead | undefined; body: Buffer; order: string; upgrade: Buffer }

/**
 * Pushes each piece from a fresh unpooled buffer, checks every onBody chunk is a non-empty view
 * of the buffer being pushed, then overwrites that buffer before the next push.
 */
function run(pieces: Buffer[], options?: ResponseParserOptions, close = false): Result {
  const parts: Buffer[] = [], raw: Buffer[] = [];
  let head: ParsedHead | undefined, order = '', current: Buffer | undefined;
  const parser = new ResponseParser({
    onHead(h) { head = h; order += 'H'; },
    onBody(b) {
      assert.ok(b.length > 0, 'no empty body chunks');
      assert.equal(b.buffer, current?.buffer, 'body chunk is a view of the pushed buffer');
      parts.push(Buffer.from(b));
      order += 'B';
    },
    onEnd() { order += 'E'; },
    onUpgrade(b) { raw.push(Buffer.from(b)); },
  }, options);
  for (const piece of pieces) {
    current = Buffer.alloc(piece.length); // Buffer.alloc never uses the shared pool
    piece.copy(current);
    parser.push(current);
    current.fill(0xee); // the parser must not have kept a reference to these bytes
  }
  if (close) parser.close();
  assert.ok(parser.done);
  return { head, body: Buffer.concat(parts), order: order.replace(/B+/, 'B'), upgrade: Buffer.concat(raw) };
}

const latin1 = (s: string): Buffer => Buffer.from(s, 'latin1');
const BINARY = Buffer.from([0, 13, 10, 13, 10, 0xff, 0x80, 0x3a, 0x20, 0x30]);

const samples: Array<{ name: string; input: Buffer; close?: boolean; options?: ResponseParserOptions; head: Partial<ParsedHead>; body: Buffer; upgrade?: string }> = [
  {
    name: 'Content-Length with a binary body',
    input: Buffer.concat([latin1('HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nX-Latin:  caf\xe9 \r\nContent-Length: 10\r\n\r\n'), BINARY]),
    head: { status: 200, framing: 'length', contentLength: 10, keepAlive: true, headers: [['Content-Type', 'application/octet-stream'], ['X-Latin', 'caf\u00e9'], ['Content-Length', '10']] },
    body: BINARY,
  },
  {
    name: 'chunked with extensions and trailers',
    input: Buffer.concat([
      latin1('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A:  spaced  \r\n\r\n5;name=value;q="a;b"\r\nhello\r\n00A ; ext\r\n'),
      BINARY,
      latin1('\r\n1\r\n\n\r\n0;last\r\nTrailer-One: x\r\nTrailer-Two:y\r\n\r\n'),
    ]),
    head: { status: 200, framing: 'chunked', keepAlive: true, headers: [['Transfer-Encoding', 'chunked'], ['X-A', 'spaced']] },
    body: Buffer.concat([latin1('hello'), BINARY, latin1('\n')]),
  },
  {
    name: 'chunked with bare LF line endings',
    input: latin1('HTTP/1.1 201 Created\nTransfer-Encoding: chunked\n\n3\nabc\n0\n\n'),
    head: { status: 201, reason: 'Created', framing: 'chunked' },
    body: latin1('abc'),
  },
  {
    name: 'close-delimited HTTP/1.0 whose body looks like another response',
    input: latin1('HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n\0\xff'),
    close: true,
    head: { status: 200, version: '1.0', framing: 'close', keepAlive: false },
    body: latin1('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n\0\xff'),
  },
  {
    name: '101 followed by raw bytes',
    input: latin1('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x05world'),
    head: { status: 101, framing: 'none', keepAlive: false },
    body: Buffer.alloc(0),
    upgrade: '\x81\x05world',
  },
  {
    name: 'response to HEAD with Content-Length',
    input: latin1('HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n'),
    options: { expectNoBody: true },
    head: { framing: 'none', contentLength: 1234 },
    body: Buffer.alloc(0),
  },
];

for (const sample of samples) {
  test(`every split point: ${sample.name}`, () => {
    const { input, options, close } = sample;
    const whole = run([input], options, close);
    for (const [key, value] of Object.entries(sample.head)) assert.deepEqual(whole.head?.[key as keyof ParsedHead], value, key);
    assert.deepEqual(whole.body, sample.body);
    assert.equal(whole.order, sample.body.length > 0 ? 'HBE' : 'HE');
    assert.equal(whole.upgrade.toString('latin1'), sample.upgrade ?? '');
    const same = (pieces: Buffer[], label: string) => assert.deepEqual(run(pieces, options, close), whole, label);
    same([...input].map((b) => Buffer.from([b])), 'one byte at a time');
    for (let i = 0; i <= input.length; i++) {
      same([input.subarray(0, i), input.subarray(i)], `split at ${i}`);
      for (let j = i; j <= input.length; j++) same([input.subarray(0, i), input.subarray(i, j), input.subarray(j)], `split at ${i}, ${j}`);
    }
  });
}

// ---- properties ------------------------------------------------------------------------------

const TCHARS = [...'!#$%&\'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'];
const FRAMING_NAMES = new Set(['content-length', 'transfer-encoding', 'connection']);
const fieldName = fc.string({ unit: fc.constantFrom(...TCHARS), minLength: 1, maxLength: 12 }).filter((n) => !FRAMING_NAMES.has(n.toLowerCase()));
const textChar = fc.oneof(
  fc.integer({ min: 0x20, max: 0xff }).filter((c) => c !== 0x7f).map((c) => String.fromCharCode(c)),
  fc.constant('\t'),
);
const text = fc.string({ unit: textChar, maxLength: 30 });
const OWS = /^[ \t]+|[ \t]+$/g;

test('property: buildResponse output re-parses to the same fields, fed in random pieces', () => {
  fc.assert(fc.property(
    fc.oneof(fc.integer({ min: 200, max: 599 }), fc.constantFrom(101, 204, 304)),
    fc.option(text, { nil: undefined }),
    fc.array(fc.tuple(fieldName, text), { maxLength: 8 }),
    fc.uint8Array({ maxLength: 300 }),
    fc.boolean(),
    fc.array(fc.nat(), { maxLength: 5 }),
    (status, reason, headers, bodyBytes, isHead, cuts) => {
      const noBody = status < 200 || status === 204 || status === 304;
      const body = noBody ? new Uint8Array(0) : bodyBytes;
      const built = buildResponse({ status, headers, body, ...(reason !== undefined && { reason }) }, { head: isHead });
      const points = [...new Set(cuts.map((c) => c % (built.length + 1)))].sort((a, b) => a - b);
      const pieces = [0, ...points].map((start, k) => built.subarray(start, points[k] ?? built.length));
      const result = run(pieces, { expectNoBody: isHead });
      const expectedHeaders = headers.map(([n, v]): [string, string] => [n, v.replace(OWS, '')]);
      if (!noBody) expectedHeaders.push(['Content-Length', String(body.length)]);
      assert.equal(result.head?.status, status);
      assert.equal(result.head?.reason, reason ?? ({ 101: 'Switching Protocols', 204: 'No Content', 304: 'Not Modified' }[status] ?? result.head?.reason));
      assert.equal(result.head?.version, '1.1');
      assert.deepEqual(result.head?.headers, expectedHeaders);
      assert.equal(result.head?.framing, noBody || isHead ? 'none' : 'length');
      assert.equal(result.head?.keepAlive, status !== 101);
      assert.deepEqual(result.body, isHead ? Buffer.alloc(0) : Buffer.from(body));
    },
  ), { numRuns: 10_000 });
});

test('property: default reason phrases match node:http STATUS_CODES', async () => {
  const { STATUS_CODES } = await import('node:http');
  for (let status = 100; status <= 599; status++) {
    const built = buildResponse({ status }).toString('latin1');
    assert.ok(built.startsWith(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n`), built);
  }
});

const VALID = [
  'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello',
  'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nT: 1\r\n\r\n',
  'HTTP/1.0 404 Not Found\r\nConnection: keep-alive\r\n\r\nbody',
  'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05world',
  'HTTP/1.1 204 No Content\r\n\r\n',
];
const TOKENS = [
  'HTTP/1.1 ', 'HTTP/1.0 ', '200 OK', '101 S', '204', '304', '100', '999', ' ', '\t', '\r\n', '\n', '\r', '\0', ':',
  'Content-Length: ', 'Transfer-Encoding: ', 'chunked', 'gzip', 'Connection: close', '5', '0', 'ff', 'fffffffffffffffff',
  ';ext=1', 'X-A: v', 'hello', '\xff', ',',
];
const anyInput = fc.oneof(
  fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)),
  fc.array(fc.constantFrom(...TOKENS), { maxLength: 30 }).map((t) => latin1(t.join(''))),
  fc.tuple(fc.constantFrom(...VALID), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }))
    .map(([s, edits]) => {
      const b = latin1(s);
      for (const [at, byte] of edits) b[at % b.length] = byte;
      return b;
    }),
  fc.tuple(fc.constantFrom(...VALID), fc.uint8Array({ maxLength: 40 })).map(([s, tail]) => Buffer.concat([latin1(s), tail])),
);

test('property: arbitrary input only ever throws ProtocolError, and the parser then stays failed', () => {
  fc.assert(fc.property(
    anyInput,
    fc.nat(),
    fc.record({ maxHeadBytes: fc.integer({ min: 1, max: 120 }), maxHeaders: fc.integer({ min: 0, max: 4 }), expectNoBody: fc.boolean() }, { requiredKeys: [] }),
    fc.boolean(),
    (input, cut, options, withUpgrade) => {
      let order = '';
      const parser = new ResponseParser({
        onHead() { order += 'H'; }, onBody() { order += 'B'; }, onEnd() { order += 'E'; },
        ...(withUpgrade && { onUpgrade() { order += 'U'; } }),
      }, options);
      const at = cut % (input.length + 1);
      try {
        parser.push(input.subarray(0, at));
        parser.push(input.subarray(at));
        parser.close();
      } catch (err) {
        assert.ok(err instanceof ProtocolError, `not a ProtocolError: ${String(err)}`);
        assert.equal(err.code, ERROR_CODES.HTTP_RESPONSE);
        assert.ok(Number.isInteger(err.offset) && err.offset >= 0 && err.offset <= input.length, `offset ${err.offset}`);
        assert.throws(() => parser.push(latin1('x')), (e: unknown) => e instanceof ProtocolError && e.code === ERROR_CODES.HTTP_RESPONSE);
        assert.throws(() => parser.close(), ProtocolError);
        assert.equal(parser.done, false);
      }
      assert.match(order, /^(HB*(E|EU*)?)?$/, 'events: head, body..., end (then upgrade bytes)');
    },
  ), { numRuns: 10_000 });
});
