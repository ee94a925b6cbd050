import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { acceptKey, closePayload, encodeFrame, flagsHeader, flagsOpcode, FrameParser, OPCODES } from '../protocol/ws-frame.js';
import { parseRequest } from '../protocol/m2-request.js';
import { fixture } from './helpers/fixtures.js';

interface Parsed {
  messages: Array<{ flags: string; payload: Buffer }>;
  errors: Array<{ code: number; reason: string }>;
}

function parse(bytes: Buffer, options: { max?: number; split?: number[]; requireMask?: boolean } = {}): Parsed {
  const out: Parsed = { messages: [], errors: [] };
  const parser = new FrameParser(
    {
      onMessage: (first, payload) => out.messages.push({ flags: flagsHeader(first), payload }),
      onError: (code, reason) => out.errors.push({ code, reason }),
    },
    { maxMessageBytes: options.max ?? 1 << 20, requireMask: options.requireMask ?? true },
  );
  let at = 0;
  for (const cut of [...(options.split ?? []), bytes.length]) {
    parser.push(bytes.subarray(at, cut));
    at = cut;
  }
  return out;
}

const MASK = Buffer.from([0x37, 0xfa, 0x21, 0x3d]);
const masked = (opcode: number, payload: string | Buffer, fin = true): Buffer => encodeFrame(opcode, payload, { mask: MASK, fin });

test('the captured client frame is the message Mongrel2 sent the handler (FLAGS and unmasked body)', () => {
  const theirs = parseRequest(fixture('req-ws-text-frame.json.bin'));
  const got = parse(fixture('client-ws-text-frame.bin'));
  assert.deepEqual(got.errors, []);
  assert.equal(got.messages.length, 1);
  assert.equal(got.messages[0]!.flags, theirs.headers.FLAGS);
  assert.ok(got.messages[0]!.payload.equals(theirs.body));
  // And our encoder writes the client's exact bytes with the client's mask.
  assert.ok(masked(OPCODES.TEXT, 'Hello').equals(fixture('client-ws-text-frame.bin')));
});

test('the handshake body is the Sec-WebSocket-Accept of the key (fixture)', () => {
  for (const file of ['req-ws-handshake.json.bin', 'req-ws-handshake.tnet.bin']) {
    const msg = parseRequest(fixture(file));
    assert.equal(msg.kind, 'websocket-handshake');
    assert.equal(acceptKey(msg.headers['sec-websocket-key'] as string), msg.body.toString('latin1'));
  }
  assert.equal(acceptKey('dGhlIHNhbXBsZSBub25jZQ=='), 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
});

test("a server frame is the handler's raw reply (81 05 world)", () => {
  assert.deepEqual([...encodeFrame(OPCODES.TEXT, 'world')], [0x81, 0x05, 0x77, 0x6f, 0x72, 0x6c, 0x64]);
  assert.deepEqual([...encodeFrame(OPCODES.CLOSE, closePayload(1000))], [0x88, 0x02, 0x03, 0xe8]);
});

test('FLAGS: FIN forced on, upper-case hex; flagsOpcode reads it back', () => {
  assert.equal(flagsHeader(0x01), '0x81');
  assert.equal(flagsHeader(0x8a), '0x8A');
  assert.equal(flagsHeader(0x88), '0x88');
  assert.equal(flagsOpcode('0x8A'), 0xa);
  assert.equal(flagsOpcode('0x82'), 2);
  assert.equal(flagsOpcode('82'), undefined);
  assert.equal(flagsOpcode('0x8'), undefined);
});

test('fragments are reassembled under the first opcode; a ping between them goes first', () => {
  const bytes = Buffer.concat([masked(OPCODES.TEXT, 'frag-', false), masked(OPCODES.PING, 'p'), masked(OPCODES.CONTINUATION, 'ment')]);
  const got = parse(bytes);
  assert.deepEqual(got.errors, []);
  assert.deepEqual(
    got.messages.map((m) => [m.flags, m.payload.toString()]),
    [
      ['0x89', 'p'],
      ['0x81', 'frag-ment'],
    ],
  );
});

test('any slicing of the stream gives the same messages (lengths 0, 125, 126, 65535, 65536)', () => {
  const payloads = [0, 125, 126, 65_535, 65_536].map((n) => Buffer.alloc(n, n & 0xff));
  const bytes = Buffer.concat(payloads.map((p) => masked(OPCODES.BINARY, p)));
  fc.assert(
    fc.property(fc.uniqueArray(fc.integer({ min: 1, max: bytes.length - 1 }), { maxLength: 8 }), (cuts) => {
      const got = parse(bytes, { split: cuts.sort((a, b) => a - b) });
      assert.deepEqual(got.errors, []);
      assert.equal(got.messages.length, payloads.length);
      got.messages.forEach((m, i) => {
        assert.equal(m.flags, '0x82');
        assert.ok(m.payload.equals(payloads[i]!));
      });
    }),
    { numRuns: 50 },
  );
});

test('encodeFrame and the parser agree on every payload (property)', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), fc.uint8Array({ minLength: 4, maxLength: 4 }), (payload, mask) => {
      const got = parse(encodeFrame(OPCODES.BINARY, payload, { mask }));
      assert.equal(got.messages.length, 1);
      assert.ok(got.messages[0]!.payload.equals(Buffer.from(payload)));
    }),
    { numRuns: 200 },
  );
});

test('protocol errors close with 1002, bad UTF-8 with 1007, a large message with 1009; nothing after', () => {
  const cases: Array<[string, Buffer, number]> = [
    ['unmasked client frame', encodeFrame(OPCODES.TEXT, 'x'), 1002],
    ['fragmented control frame', masked(OPCODES.PING, 'x', false), 1002],
    ['control frame of 126 bytes', masked(OPCODES.PING, Buffer.alloc(126)), 1002],
    ['RSV1 set', Buffer.from([0xc1, 0x80, 0, 0, 0, 0]), 1002],
    ['reserved opcode 3', masked(3, 'x'), 1002],
    ['continuation with nothing to continue', masked(OPCODES.CONTINUATION, 'x'), 1002],
    ['a new message inside a fragmented one', Buffer.concat([masked(OPCODES.TEXT, 'a', false), masked(OPCODES.TEXT, 'b')]), 1002],
    ['close with a 1-byte payload', masked(OPCODES.CLOSE, Buffer.from([3])), 1002],
    ['text that is not UTF-8', masked(OPCODES.TEXT, Buffer.from([0xc3, 0x28])), 1007],
    ['message over the limit', masked(OPCODES.BINARY, Buffer.alloc(101)), 1009],
    ['fragments over the limit together', Buffer.concat([masked(OPCODES.BINARY, Buffer.alloc(60), false), masked(OPCODES.CONTINUATION, Buffer.alloc(60))]), 1009],
  ];
  for (const [name, bytes, code] of cases) {
    const got = parse(Buffer.concat([bytes, masked(OPCODES.TEXT, 'after')]), { max: 100 });
    assert.equal(got.errors.length, 1, name);
    assert.equal(got.errors[0]!.code, code, name);
    assert.deepEqual(got.messages, [], name);
  }
});

test('the size limit is checked from the declared length, before the payload arrives', () => {
  // A 2^40-byte frame header alone: refused at once, nothing buffered waiting for it.
  const head = Buffer.from([0x82, 0xff, 0, 0, 0x01, 0, 0, 0, 0, 0, 1, 2, 3, 4]);
  const got = parse(head, { max: 1 << 20 });
  assert.equal(got.errors[0]?.code, 1009);
});

test('a client-side parser reads unmasked server frames and refuses masked ones', () => {
  assert.equal(parse(encodeFrame(OPCODES.TEXT, 'world'), { requireMask: false }).messages[0]?.payload.toString(), 'world');
  assert.equal(parse(masked(OPCODES.TEXT, 'world'), { requireMask: false }).errors[0]?.code, 1002);
});
