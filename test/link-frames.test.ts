// The m2gate link's envelope (protocol/m2gate-link.md, "Messages"): the exact frames each
// command is made of, the round trip for every command, and each malformed form a peer must
// drop (another version tag, an unknown command, a wrong frame count, a bad number).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeLink, encodeLink, LINK_VERSION, type LinkMessage } from '../protocol/link-frames.js';
import { ERROR_CODES, ProtocolError } from '../protocol/errors.js';

const b = (s: string): Buffer => Buffer.from(s);
const texts = (frames: readonly Buffer[]): string[] => frames.map((f) => f.toString('latin1'));

function throwsLink(frames: Buffer[], message: RegExp): void {
  assert.throws(
    () => decodeLink(frames),
    (err: unknown) => err instanceof ProtocolError && err.code === ERROR_CODES.LINK && message.test(err.message),
  );
}

test('each command is the version tag, the command name, then its frames (the spec table)', () => {
  assert.equal(LINK_VERSION, 'M2GL1');
  const msg = b('S 7 /x 2:{},0:,');
  assert.deepEqual(texts(encodeLink({ command: 'READY', credit: 12, threads: 4, name: 'svc-1' })), ['M2GL1', 'READY', '12', '4', 'svc-1']);
  assert.deepEqual(texts(encodeLink({ command: 'REQUEST', message: msg })), ['M2GL1', 'REQUEST', 'S 7 /x 2:{},0:,']);
  assert.deepEqual(texts(encodeLink({ command: 'DISCONNECT', message: msg })), ['M2GL1', 'DISCONNECT', 'S 7 /x 2:{},0:,']);
  assert.deepEqual(texts(encodeLink({ command: 'REPLY', credit: 0, message: msg })), ['M2GL1', 'REPLY', '0', 'S 7 /x 2:{},0:,']);
  assert.deepEqual(texts(encodeLink({ command: 'CREDIT', credit: 999_999 })), ['M2GL1', 'CREDIT', '999999']);
  assert.deepEqual(texts(encodeLink({ command: 'HEARTBEAT' })), ['M2GL1', 'HEARTBEAT']);
  assert.deepEqual(texts(encodeLink({ command: 'BYE' })), ['M2GL1', 'BYE']);
});

test('the READY name is UTF-8 both ways; payload frames are carried byte for byte', () => {
  const ready = encodeLink({ command: 'READY', credit: 1, threads: 1, name: 'dienst-ü-✓' });
  assert.deepEqual(ready[4], Buffer.from('dienst-ü-✓', 'utf8'));
  assert.deepEqual(decodeLink(ready), { command: 'READY', credit: 1, threads: 1, name: 'dienst-ü-✓' });
  const binary = Buffer.from([0, 255, 13, 10, 0x80, 44]);
  const reply = decodeLink(encodeLink({ command: 'REPLY', credit: 3, message: binary }));
  assert.equal(reply.command, 'REPLY');
  assert.deepEqual(reply.command === 'REPLY' && reply.message, binary);
});

const payload = fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a));
const credit = fc.integer({ min: 0, max: 999_999 });
const positive = fc.integer({ min: 1, max: 999_999 });
const anyMessage: fc.Arbitrary<LinkMessage> = fc.oneof(
  fc.record({ command: fc.constant('READY' as const), credit: positive, threads: positive, name: fc.string({ maxLength: 20 }) }),
  fc.record({ command: fc.constant('REQUEST' as const), message: payload }),
  fc.record({ command: fc.constant('DISCONNECT' as const), message: payload }),
  fc.record({ command: fc.constant('REPLY' as const), credit, message: payload }),
  fc.record({ command: fc.constant('CREDIT' as const), credit }),
  fc.constant({ command: 'HEARTBEAT' as const }),
  fc.constant({ command: 'BYE' as const }),
  // fc.record builds null-prototype objects; decodeLink returns plain ones.
).map((m) => ({ ...m }));

test('decodeLink(encodeLink(m)) is m for every command and value in range', () => {
  fc.assert(
    fc.property(anyMessage, (m) => {
      assert.deepEqual(decodeLink(encodeLink(m)), m);
    }),
    { numRuns: 500 },
  );
});

test('numbers are plain ASCII decimal, leading zeros allowed, at most 6 digits', () => {
  assert.deepEqual(decodeLink([b('M2GL1'), b('CREDIT'), b('000007')]), { command: 'CREDIT', credit: 7 });
  for (const bad of ['', '1234567', '-1', '+1', ' 1', '1 ', '1.0', '0x10', '１']) {
    throwsLink([b('M2GL1'), b('CREDIT'), b(bad)], /CREDIT credit must be 1 to 6 ASCII digits/);
  }
  throwsLink([b('M2GL1'), b('REPLY'), b('x'), b('S 1:1, ')], /REPLY credit must be 1 to 6 ASCII digits/);
  throwsLink([b('M2GL1'), b('READY'), b('2'), b(''), b('n')], /READY threads must be 1 to 6 ASCII digits/);
});

test('READY must offer at least one credit and one thread', () => {
  throwsLink([b('M2GL1'), b('READY'), b('0'), b('1'), b('n')], /at least 1/);
  throwsLink([b('M2GL1'), b('READY'), b('1'), b('0'), b('n')], /at least 1/);
  assert.throws(() => encodeLink({ command: 'READY', credit: 1_000_000, threads: 1, name: '' }), RangeError);
});

test('another version tag, or none, is refused before the command is looked at', () => {
  throwsLink([b('M2GL2'), b('HEARTBEAT')], /not an M2GL1 message \(version tag 'M2GL2'\)/);
  throwsLink([b('m2gl1'), b('HEARTBEAT')], /version tag/);
  throwsLink([], /version tag ''/);
  // A Mongrel2 request sent to the link by mistake (a PUSH/SUB handler pointed at a ROUTER).
  throwsLink([b('54c9 1 /x 2:{},0:,')], /not an M2GL1 message/);
});

test('unknown commands and lower-case or inherited names are refused', () => {
  for (const name of ['PING', 'ready', 'toString', 'constructor', '__proto__', '']) {
    throwsLink([b('M2GL1'), b(name)], /unknown command/);
  }
});

test('each command takes exactly its number of frames', () => {
  throwsLink([b('M2GL1'), b('HEARTBEAT'), b('')], /HEARTBEAT takes 0 frame\(s\) after the command, got 1/);
  throwsLink([b('M2GL1'), b('BYE'), b('x')], /BYE takes 0/);
  throwsLink([b('M2GL1'), b('READY'), b('1'), b('1')], /READY takes 3 frame\(s\) after the command, got 2/);
  throwsLink([b('M2GL1'), b('REQUEST')], /REQUEST takes 1/);
  throwsLink([b('M2GL1'), b('REQUEST'), b('a'), b('b')], /REQUEST takes 1/);
  throwsLink([b('M2GL1'), b('REPLY'), b('1')], /REPLY takes 2/);
  throwsLink([b('M2GL1'), b('CREDIT')], /CREDIT takes 1/);
});

test('encodeLink refuses numbers that cannot be written in 1 to 6 digits', () => {
  for (const n of [-1, 1_000_000, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
    assert.throws(() => encodeLink({ command: 'CREDIT', credit: n }), RangeError, String(n));
    assert.throws(() => encodeLink({ command: 'REPLY', credit: n, message: b('') }), RangeError, String(n));
    assert.throws(() => encodeLink({ command: 'READY', credit: 1, threads: n, name: '' }), RangeError, String(n));
  }
});

test('no sequence of frames makes decodeLink throw anything but a link ProtocolError', () => {
  const frame = fc.oneof(
    fc.constantFrom(...['M2GL1', 'READY', 'REQUEST', 'DISCONNECT', 'REPLY', 'CREDIT', 'HEARTBEAT', 'BYE', '0', '1', '999999', '1000000', ''].map(b)),
    payload,
  );
  fc.assert(
    fc.property(fc.array(frame, { maxLength: 6 }), (frames) => {
      try {
        const m = decodeLink(frames);
        // Whatever decodes re-encodes to the same frames (numbers may lose leading zeros).
        assert.equal(encodeLink(m).length, frames.length);
      } catch (err) {
        assert.ok(err instanceof ProtocolError && err.code === ERROR_CODES.LINK, String(err));
      }
    }),
    { numRuns: 1000 },
  );
});
