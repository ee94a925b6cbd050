// The m2gate link's envelope (protocol/m2gate-link.md, "Messages"): the exact frame each
// command is, the round trip for every command, and each malformed form a peer must drop
// (another version tag, an unknown command, wrong arguments or payload, a bad number).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeBatchItem, decodeLink, encodeBatch, encodeLink, LINK_VERSION, type LinkMessage } from '../protocol/link-frames.js';
import { ERROR_CODES, ProtocolError } from '../protocol/errors.js';

const b = (s: string): Buffer => Buffer.from(s);
const texts = (frames: readonly Buffer[]): string[] => frames.map((f) => f.toString('latin1'));

function throwsLink(frames: Buffer[], message: RegExp): void {
  assert.throws(
    () => decodeLink(frames),
    (err: unknown) => err instanceof ProtocolError && err.code === ERROR_CODES.LINK && message.test(err.message),
  );
}

test('each command is one frame: "M2GL1 COMMAND args", then LF and the payload where there is one (the spec table)', () => {
  assert.equal(LINK_VERSION, 'M2GL1');
  const msg = b('S 7 /x 2:{},0:,');
  assert.deepEqual(texts(encodeLink({ command: 'READY', credit: 12, threads: 4, name: 'svc-1' })), ['M2GL1 READY 12 4 svc-1']);
  assert.deepEqual(texts(encodeLink({ command: 'REQUEST', message: msg })), ['M2GL1 REQUEST\nS 7 /x 2:{},0:,']);
  assert.deepEqual(texts(encodeLink({ command: 'DISCONNECT', message: msg })), ['M2GL1 DISCONNECT\nS 7 /x 2:{},0:,']);
  assert.deepEqual(texts(encodeLink({ command: 'NOTICE', message: msg })), ['M2GL1 NOTICE\nS 7 /x 2:{},0:,']);
  assert.deepEqual(texts(encodeLink({ command: 'REPLY', credit: 0, message: msg })), ['M2GL1 REPLY 0\nS 7 /x 2:{},0:,']);
  assert.deepEqual(texts(encodeLink({ command: 'CREDIT', credit: 999_999 })), ['M2GL1 CREDIT 999999']);
  assert.deepEqual(texts(encodeLink({ command: 'HEARTBEAT' })), ['M2GL1 HEARTBEAT']);
  assert.deepEqual(texts(encodeLink({ command: 'BYE' })), ['M2GL1 BYE']);
  assert.deepEqual(texts(encodeLink({ command: 'METRICS', report: b('[]') })), ['M2GL1 METRICS\n[]']);
});

test('the READY name is UTF-8 both ways and may hold spaces; payloads are carried byte for byte', () => {
  const ready = encodeLink({ command: 'READY', credit: 1, threads: 1, name: 'dienst ü ✓' });
  assert.deepEqual(ready[0], Buffer.from('M2GL1 READY 1 1 dienst ü ✓', 'utf8'));
  assert.deepEqual(decodeLink(ready), { command: 'READY', credit: 1, threads: 1, name: 'dienst ü ✓' });
  assert.throws(() => encodeLink({ command: 'READY', credit: 1, threads: 1, name: 'a\nb' }), RangeError);
  const binary = Buffer.from([0, 255, 13, 10, 0x80, 44]);
  const reply = decodeLink(encodeLink({ command: 'REPLY', credit: 3, message: binary }));
  assert.equal(reply.command, 'REPLY');
  assert.deepEqual(reply.command === 'REPLY' && reply.message, binary);
  // An empty payload is still a payload: the LF is there.
  assert.deepEqual(decodeLink([b('M2GL1 REQUEST\n')]), { command: 'REQUEST', message: Buffer.alloc(0) });
  // FRAME (a WebSocket connection's later message) carries a payload, like REQUEST.
  assert.deepEqual(decodeLink([b('M2GL1 FRAME\nx')]), { command: 'FRAME', message: b('x') });
  assert.throws(() => decodeLink([b('M2GL1 FRAME')]), /FRAME needs a payload/);
});

const payload = fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a));
const credit = fc.integer({ min: 0, max: 999_999 });
const positive = fc.integer({ min: 1, max: 999_999 });
const anyMessage: fc.Arbitrary<LinkMessage> = fc.oneof(
  fc.record({ command: fc.constant('READY' as const), credit: positive, threads: positive, name: fc.string({ maxLength: 20 }).filter((n) => !n.includes('\n')) }),
  fc.record({ command: fc.constant('REQUEST' as const), message: payload }),
  fc.record({ command: fc.constant('DISCONNECT' as const), message: payload }),
  fc.record({ command: fc.constant('NOTICE' as const), message: payload }),
  fc.record({ command: fc.constant('FRAME' as const), message: payload }),
  fc.record({ command: fc.constant('REPLY' as const), credit, message: payload }),
  fc.record({ command: fc.constant('CREDIT' as const), credit }),
  fc.constant({ command: 'HEARTBEAT' as const }),
  fc.constant({ command: 'BYE' as const }),
  fc.record({ command: fc.constant('METRICS' as const), report: payload }),
  fc.record({ command: fc.constant('FEATURES' as const), features: fc.array(fc.stringMatching(/^[a-z0-9-]{1,32}$/), { minLength: 1, maxLength: 4 }) }),
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
  assert.deepEqual(decodeLink([b('M2GL1 CREDIT 000007')]), { command: 'CREDIT', credit: 7 });
  for (const bad of ['1234567', '-1', '+1', '1.0', '0x10', '１', 'x']) {
    throwsLink([b(`M2GL1 CREDIT ${bad}`)], /CREDIT credit must be 1 to 6 ASCII digits/);
  }
  throwsLink([b('M2GL1 CREDIT ')], /CREDIT credit must be 1 to 6 ASCII digits/);
  throwsLink([b('M2GL1 REPLY x\nS 1:1, ')], /REPLY credit must be 1 to 6 ASCII digits/);
  throwsLink([b('M2GL1 READY 2  n')], /READY threads must be 1 to 6 ASCII digits/);
});

test('READY must offer at least one credit and one thread', () => {
  throwsLink([b('M2GL1 READY 0 1 n')], /at least 1/);
  throwsLink([b('M2GL1 READY 1 0 n')], /at least 1/);
  assert.throws(() => encodeLink({ command: 'READY', credit: 1_000_000, threads: 1, name: '' }), RangeError);
});

test('another version tag, or none, is refused before the command is looked at', () => {
  throwsLink([b('M2GL2 HEARTBEAT')], /not an M2GL1 message \(version tag 'M2GL2'\)/);
  throwsLink([b('m2gl1 HEARTBEAT')], /version tag/);
  throwsLink([b('')], /version tag ''/);
  // A Mongrel2 request sent to the link by mistake (a PUSH/SUB handler pointed at a ROUTER).
  throwsLink([b('54c9 1 /x 2:{},0:,')], /not an M2GL1 message/);
});

test('unknown commands and lower-case or inherited names are refused', () => {
  for (const name of ['PING', 'ready', 'toString', 'constructor', '__proto__', '']) {
    throwsLink([b(`M2GL1 ${name}`)], /unknown command/);
  }
});

test('each command takes exactly its arguments, a payload exactly when it has one, and one frame', () => {
  throwsLink([b('M2GL1 HEARTBEAT x')], /HEARTBEAT takes 0 argument\(s\), got 1/);
  throwsLink([b('M2GL1 HEARTBEAT\n')], /HEARTBEAT takes no payload/);
  throwsLink([b('M2GL1 BYE\nx')], /BYE takes no payload/);
  throwsLink([b('M2GL1 METRICS')], /METRICS needs a payload/);
  throwsLink([b('M2GL1 READY 1 1')], /READY takes 3 argument\(s\), got 2/);
  throwsLink([b('M2GL1 REQUEST')], /REQUEST needs a payload after a line feed/);
  throwsLink([b('M2GL1 REQUEST x\nS')], /REQUEST takes 0 argument/);
  throwsLink([b('M2GL1 REPLY\nS')], /REPLY takes 1 argument/);
  throwsLink([b('M2GL1 REPLY 1')], /REPLY needs a payload/);
  throwsLink([b('M2GL1 CREDIT')], /CREDIT takes 1/);
  throwsLink([b('M2GL1 HEARTBEAT'), b('')], /a link message is one frame, got 2/);
  throwsLink([], /a link message is one frame, got 0/);
  throwsLink([b(`M2GL1 READY 1 1 ${'n'.repeat(600)}`)], /header longer than 512 bytes/);
});

test('encodeLink refuses numbers that cannot be written in 1 to 6 digits', () => {
  for (const n of [-1, 1_000_000, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
    assert.throws(() => encodeLink({ command: 'CREDIT', credit: n }), RangeError, String(n));
    assert.throws(() => encodeLink({ command: 'REPLY', credit: n, message: b('') }), RangeError, String(n));
    assert.throws(() => encodeLink({ command: 'READY', credit: 1, threads: n, name: '' }), RangeError, String(n));
  }
});

test('no frame makes decodeLink throw anything but a link ProtocolError', () => {
  const words = fc.constantFrom('M2GL1', 'READY', 'REQUEST', 'DISCONNECT', 'NOTICE', 'REPLY', 'CREDIT', 'HEARTBEAT', 'BYE', 'FEATURES', 'BATCH', 'batch', '0', '1', '2', '999999', '1000000', '', ' ', '\n', '5:', ',');
  const frame = fc.oneof(
    fc.array(words, { maxLength: 6 }).map((w) => b(w.join(' '))),
    fc.tuple(fc.array(words, { maxLength: 4 }), payload).map(([w, p]) => Buffer.concat([b(w.join(' ')), p])),
    payload,
  );
  fc.assert(
    fc.property(fc.array(frame, { minLength: 1, maxLength: 2 }), (frames) => {
      try {
        const m = decodeLink(frames);
        // Whatever decodes re-encodes to one frame that decodes the same.
        assert.deepEqual(decodeLink(encodeLink(m)), m);
      } catch (err) {
        assert.ok(err instanceof ProtocolError && err.code === ERROR_CODES.LINK, String(err));
      }
    }),
    { numRuns: 2000 },
  );
});

test('FEATURES lists one or more lower-case words; unknown ones are carried (the reader ignores them)', () => {
  assert.deepEqual(texts(encodeLink({ command: 'FEATURES', features: ['batch'] })), ['M2GL1 FEATURES batch']);
  assert.deepEqual(decodeLink([b('M2GL1 FEATURES batch zstd-2')]), { command: 'FEATURES', features: ['batch', 'zstd-2'] });
  throwsLink([b('M2GL1 FEATURES')], /FEATURES takes at least 1 argument/);
  throwsLink([b('M2GL1 FEATURES Batch')], /a feature is 1 to 32/);
  throwsLink([b('M2GL1 FEATURES batch\n')], /FEATURES takes no payload/);
  assert.throws(() => encodeLink({ command: 'FEATURES', features: [] }), RangeError);
  assert.throws(() => encodeLink({ command: 'FEATURES', features: ['a b'] }), RangeError);
});

test('BATCH: "M2GL1 BATCH n", LF, then n netstrings each holding one whole link message, byte for byte', () => {
  const items = [encodeLink({ command: 'REQUEST', message: b('S 7 /x 2:{},0:,') })[0]!, encodeLink({ command: 'CREDIT', credit: 2 })[0]!];
  const batch = encodeBatch(items);
  assert.equal(batch.toString('latin1'), 'M2GL1 BATCH 2\n29:M2GL1 REQUEST\nS 7 /x 2:{},0:,,14:M2GL1 CREDIT 2,');
  assert.deepEqual(encodeLink({ command: 'BATCH', frames: items }), [batch]);
  const decoded = decodeLink([batch]);
  assert.equal(decoded.command, 'BATCH');
  const frames = decoded.command === 'BATCH' ? decoded.frames : [];
  assert.deepEqual(frames, items);
  assert.deepEqual(frames.map(decodeBatchItem), [
    { command: 'REQUEST', message: b('S 7 /x 2:{},0:,') },
    { command: 'CREDIT', credit: 2 },
  ]);
  // Binary payloads, empty ones, and commas and colons inside are carried as they are.
  const odd = [b('M2GL1 REPLY 0\n'), Buffer.concat([b('M2GL1 REPLY 1\n'), Buffer.from([0, 44, 58, 255, 10])])];
  const back = decodeLink([encodeBatch(odd)]);
  assert.deepEqual(back.command === 'BATCH' && back.frames, odd);
});

test('BATCH framing is checked whole: count, lengths, colons and commas; READY, FEATURES and BATCH never travel inside one', () => {
  const hb = 'M2GL1 HEARTBEAT';
  const ok2 = `15:${hb},15:${hb},`;
  assert.equal(decodeLink([b(`M2GL1 BATCH 2\n${ok2}`)]).command, 'BATCH');
  throwsLink([b(`M2GL1 BATCH 3\n${ok2}`)], /BATCH says 3 messages and holds 2/);
  throwsLink([b(`M2GL1 BATCH 2\n${ok2}15:${hb},`)], /BATCH says 2 messages and holds more/);
  throwsLink([b(`M2GL1 BATCH 1\n15:${hb},`)], /at least 2 messages/);
  throwsLink([b(`M2GL1 BATCH 2\n15:${hb},16:${hb},`)], /cut short or lacks its trailing comma/);
  throwsLink([b(`M2GL1 BATCH 2\n15:${hb},14:${hb},`)], /cut short or lacks its trailing comma/);
  throwsLink([b(`M2GL1 BATCH 2\n15:${hb},x:${hb},`)], /LEN:BYTES/);
  throwsLink([b(`M2GL1 BATCH 2\n15:${hb},15${hb},`)], /LEN:BYTES/);
  throwsLink([b('M2GL1 BATCH 2')], /BATCH needs a payload/);
  throwsLink([b('M2GL1 BATCH\n')], /BATCH takes 1 argument/);
  for (const inner of [encodeLink({ command: 'READY', credit: 1, threads: 1, name: 'n' })[0]!, encodeLink({ command: 'FEATURES', features: ['batch'] })[0]!, b(`M2GL1 BATCH 2\n${ok2}`)]) {
    assert.throws(
      () => decodeBatchItem(inner),
      (err: unknown) => err instanceof ProtocolError && err.code === ERROR_CODES.LINK && /cannot be part of a BATCH/.test(err.message),
    );
  }
  // An item is read as decodeLink reads a frame: its errors are the same.
  throwsLink([b('x')], /not an M2GL1 message/);
  assert.throws(() => decodeBatchItem(b('x')), /not an M2GL1 message/);
  assert.throws(() => encodeBatch([b(hb)]), RangeError);
});

test('a batch of any link messages decodes to those messages, in order', () => {
  const inBatch = anyMessage.filter((m) => m.command !== 'READY' && m.command !== 'FEATURES');
  fc.assert(
    fc.property(fc.array(inBatch, { minLength: 2, maxLength: 8 }), (messages) => {
      const batch = decodeLink([encodeBatch(messages.map((m) => encodeLink(m)[0]!))]);
      assert.equal(batch.command, 'BATCH');
      assert.deepEqual(batch.command === 'BATCH' && batch.frames.map(decodeBatchItem), messages);
    }),
    { numRuns: 300 },
  );
});
