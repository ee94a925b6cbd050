import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeControl, encodeClose, encodeControl, encodeReply, isCloseReply, parseReply } from '../protocol/m2-reply.js';
import { encode } from '../protocol/tnetstring.js';
import { ProtocolError } from '../protocol/errors.js';
import { fixture } from './helpers/fixtures.js';

const SENDER = '54c6755b-9628-40a4-9a2d-cc82a816345e';

test('reply fixtures parse and re-encode byte for byte', () => {
  const cases: Array<[string, number[], string]> = [
    ['reply-two-ids.handler.bin', [10, 11], 'reply-two-ids.client-a.bin'],
    ['reply-close.handler-1.bin', [12], 'reply-close.client.bin'],
    ['reply-3part.handler-1.bin', [13], ''],
    ['reply-3part.handler-2.bin', [13], ''],
    ['reply-3part.handler-3.bin', [13], ''],
  ];
  for (const [file, ids, clientFile] of cases) {
    const raw = fixture(file);
    const reply = parseReply(raw);
    assert.equal(reply.sender, SENDER);
    assert.deepEqual(reply.ids, ids);
    assert.equal(reply.extended, false);
    assert.equal(isCloseReply(reply), false);
    if (clientFile) assert.ok(reply.body.equals(fixture(clientFile)), `${file} body is what the client got`);
    assert.ok(encodeReply(reply.sender, reply.ids, reply.body).equals(raw), `${file} re-encodes`);
  }
});

test('the three streamed parts concatenate to what the client received', () => {
  const parts = [1, 2, 3].map((n) => parseReply(fixture(`reply-3part.handler-${n}.bin`)).body);
  assert.ok(Buffer.concat(parts).equals(fixture('reply-3part.client.bin')));
});

test('the empty reply is the close message (43 bytes)', () => {
  const raw = fixture('reply-close.handler-2.bin');
  assert.equal(raw.length, 43);
  const reply = parseReply(raw);
  assert.deepEqual(reply.ids, [12]);
  assert.ok(isCloseReply(reply));
  assert.ok(encodeClose(SENDER, 12).equals(raw));
});

test('the JSON-socket reply fixture parses', () => {
  const reply = parseReply(fixture('reply-jsonsocket.handler.bin'));
  assert.equal(reply.sender, 'c0ffee00-0000-4000-8000-00000000000a');
  assert.deepEqual(reply.ids, [3]);
  assert.equal(reply.body.toString(), '{"type":"ok"}');
  assert.equal(Buffer.from(reply.body.toString()).toString('base64'), fixture('reply-jsonsocket.client.bin').toString());
});

function rejects(text: string, re: RegExp): void {
  assert.throws(
    () => parseReply(Buffer.from(text, 'latin1')),
    (err: unknown) => err instanceof ProtocolError && err.code === 'M2G_ERR_REPLY' && re.test(err.message),
    `${JSON.stringify(text)} should fail with ${re}`,
  );
}

test("Mongrel2's measured acceptance rules (§4.1)", () => {
  rejects('my_handler.v1 1:7, x', /one space/);
  rejects('abc 1:7,x', /space after/);
  rejects('abc 2:7, x', /does not match/);
  rejects('abc 1:78, x', /does not match/);
  rejects('abc  1:7, x', /netstring length/);
  rejects('abc 0:, x', /names no connection id/);
  rejects('abc 3:7 x, x', /connection id/);
  rejects('abc 4:7  8, x', /connection id/);
  rejects(' 1:7, x', /sender/);
  rejects('abc 1:7,', /space after/);
  assert.deepEqual(parseReply(Buffer.from('abc 3:12 , x')).ids, [12]);
  assert.deepEqual(parseReply(Buffer.from('abc 3:012, x')).ids, [12]);
  const ids128 = Array.from({ length: 128 }, (_, i) => i + 1).join(' ');
  assert.equal(parseReply(Buffer.from(`abc ${ids128.length}:${ids128}, x`)).ids.length, 128);
  const ids129 = `${ids128} 129`;
  rejects(`abc ${ids129.length}:${ids129}, x`, /more than 128 ids/);
});

test('extended replies carry a validated [name, args] control message', () => {
  const body = encode(['ctl', { 'keep-alive': true }]);
  const raw = encodeControl('abc', 12, body);
  assert.equal(raw.toString(), 'abc 4:X 12, 31:3:ctl,21:10:keep-alive,4:true!}]');
  const reply = parseReply(raw);
  assert.equal(reply.extended, true);
  assert.equal(isCloseReply(reply), false);
  assert.deepEqual(decodeControl(reply.body), { name: 'ctl', args: { 'keep-alive': true } });
  for (const bad of ['26:3:ctl,16:6:cancel,4:True!}]', '3:1.5^', 'hello', '11:3:ctl,2:ab,]x']) {
    assert.throws(() => decodeControl(Buffer.from(bad)), (e: unknown) => e instanceof ProtocolError && e.code === 'M2G_ERR_REPLY');
  }
  assert.throws(() => decodeControl(encode(['ctl', {}, 1])), /must be a list \[name, args\]/);
});

test('the encoder refuses replies Mongrel2 would drop', () => {
  assert.throws(() => encodeReply('my_handler', 1, 'x'), /must match/);
  assert.throws(() => encodeReply('abc', [], 'x'), /at least one id/);
  assert.throws(() => encodeReply('abc', -1, 'x'), /invalid connection id/);
  assert.throws(() => encodeReply('abc', Array.from({ length: 129 }, (_, i) => i), 'x'), /more than 128/);
  assert.equal(encodeReply('abc', [1, 2], 'héllo').toString(), 'abc 3:1 2, héllo');
});

test('property: parseReply(encodeReply(...)) round trips (10,000 runs)', () => {
  fc.assert(
    fc.property(
      fc.stringMatching(/^[A-Za-z0-9-]{1,40}$/),
      fc.array(fc.nat(), { minLength: 1, maxLength: 128 }),
      fc.uint8Array({ maxLength: 300 }),
      (sender, ids, body) => {
        const reply = parseReply(encodeReply(sender, ids, body));
        assert.equal(reply.sender, sender);
        assert.deepEqual(reply.ids, ids);
        assert.deepEqual([...reply.body], [...body]);
        assert.equal(isCloseReply(reply), body.length === 0);
      },
    ),
    { numRuns: 10_000 },
  );
});

test('property: arbitrary bytes only raise ProtocolError (10,000 runs)', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 80 }), (bytes) => {
      try {
        parseReply(Buffer.from(bytes));
      } catch (err) {
        assert.ok(err instanceof ProtocolError, String(err));
      }
    }),
    { numRuns: 10_000 },
  );
});
