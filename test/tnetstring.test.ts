import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decode, decodePrefix, encode, encodedLength, type EncodableValue } from '../protocol/tnetstring.js';
import { ProtocolError } from '../protocol/errors.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

function rejects(input: Buffer | string, re: RegExp, options?: Parameters<typeof decode>[1]): ProtocolError {
  const buf = typeof input === 'string' ? b(input) : input;
  let caught: unknown;
  try {
    decode(buf, options);
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof ProtocolError, `expected ProtocolError for ${JSON.stringify(buf.toString('latin1').slice(0, 60))}`);
  assert.equal(caught.code, 'M2G_ERR_TNETSTRING');
  assert.match(caught.message, re);
  return caught;
}

test('decodes every type from the reference examples (§2.1)', () => {
  assert.equal(decode(b('5:hello,'), { strings: 'utf8' }), 'hello');
  assert.equal(decode(b('3:-42#')), -42);
  assert.equal(decode(b('4:3.25^')), 3.25);
  assert.equal(decode(b('4:true!')), true);
  assert.equal(decode(b('5:false!')), false);
  assert.equal(decode(b('0:~')), null);
  assert.deepEqual(decode(b('12:1:a,5:hello,}'), { strings: 'utf8' }), { a: 'hello' });
  assert.deepEqual(decode(b('11:1:1#4:true!]')), [1, true]);
  assert.deepEqual(decode(b('26:3:ctl,16:7:credits,3:100#}]'), { strings: 'utf8' }), ['ctl', { credits: 100 }]);
});

test('encodes the nested reference example byte for byte', () => {
  assert.equal(encode(['ctl', { credits: 100 }]).toString('latin1'), '26:3:ctl,16:7:credits,3:100#}]');
  assert.equal(encode(null).toString(), '0:~');
  assert.equal(encode(false).toString(), '5:false!');
  assert.equal(encode(-1.5).toString(), '4:-1.5^');
  assert.equal(encode(2n ** 62n).toString(), `19:${2n ** 62n}#`);
});

test('sizes are bytes, not characters', () => {
  const text = 'José Müller 日本';
  const enc = encode(text);
  assert.equal(enc.toString('latin1', 0, 3), '20:');
  assert.equal(decode(enc, { strings: 'utf8' }), text);
  assert.equal(encodedLength(text), enc.length);
});

test('string data may hold any byte, including tags and NUL', () => {
  const data = Buffer.from([0x00, 0xff, 0x2c, 0x3a, 0x7d, 0x5d, 0x0d, 0x0a]);
  const enc = encode(data);
  const out = decode(enc);
  assert.ok(Buffer.isBuffer(out));
  assert.deepEqual([...out], [...data]);
});

test("'buffer' strings are views into the input, 'latin1' and 'utf8' are text", () => {
  const input = b('3:abc,');
  const view = decode(input) as Buffer;
  input[2] = 0x7a;
  assert.equal(view.toString(), 'zbc');
  assert.equal(decode(b('2:\xe9\xe9,'), { strings: 'latin1' }), 'éé');
});

test('decodePrefix stops after one value and reports where', () => {
  const input = b('1:a,3:xyz,');
  const first = decodePrefix(input, 0, { strings: 'utf8' });
  assert.deepEqual(first, { value: 'a', end: 4 });
  assert.deepEqual(decodePrefix(input, 4, { strings: 'utf8' }), { value: 'xyz', end: 10 });
});

test('integers beyond 2^53 come back as bigint; beyond int64 are rejected', () => {
  assert.equal(decode(b('19:9223372036854775807#')), 9223372036854775807n);
  assert.equal(decode(b('20:-9223372036854775808#')), -9223372036854775808n);
  assert.equal(decode(b('16:9007199254740991#')), 9007199254740991);
  rejects('19:9223372036854775808#', /64 bits/);
});

test('rejects malformed input with the offset of the problem', () => {
  assert.equal(rejects('5:hell,', /exceeds the remaining input/).offset, 0);
  rejects('', /expected a length prefix/);
  rejects('5', /truncated length prefix/);
  rejects('x:', /expected a length prefix/);
  rejects('5x', /expected ':'/);
  rejects('05:hello,', /leading zero/);
  rejects(' 5:hello,', /expected a length prefix/);
  rejects('5:hello?', /unknown type tag 0x3f/);
  rejects('5:hello,x', /trailing bytes/);
  rejects('4:True!', /boolean/);
  rejects('4:tttt!', /boolean/);
  rejects('1:x~', /null must have size 0/);
  rejects('0:#', /no digits/);
  rejects('2:1a#', /non-digit/);
  rejects('3:1.5#', /non-digit/);
  rejects('3:abc^', /invalid float/);
  rejects('3:NaN^', /invalid float/);
  rejects('8:1:5#1:a,}', /dict keys must be strings/);
  rejects('4:1:a,}', /has no value/);
  rejects('16:1:a,1:b,1:a,1:c,}', /duplicate dict key/);
  rejects('10:2:ab,1:x,]', /trailing|exceeds/);
});

test('never creates __proto__ or constructor keys', () => {
  rejects('19:9:__proto__,4:true!}', /forbidden dict key '__proto__'/);
  rejects('22:11:constructor,4:true!}', /forbidden dict key 'constructor'/);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});

test('limits: depth, digits, total size', () => {
  let deep = '0:]';
  for (let i = 0; i < 40; i++) deep = `${Buffer.byteLength(deep)}:${deep}]`;
  rejects(deep, /maxDepth 32/);
  assert.ok(Array.isArray(decode(b(deep), { maxDepth: 64 })));
  rejects('1000000000:x', /longer than 9 digits/);
  rejects('12345:abc,', /longer than 3 digits/, { maxLengthDigits: 3 });
  rejects('5:hello,', /exceeds maxBytes 4/, { maxBytes: 4 });
});

test('a declared size of 999,999,999 bytes is rejected without allocating', () => {
  const before = process.memoryUsage().arrayBuffers;
  rejects('999999999:abc,', /exceeds the remaining input/);
  assert.ok(process.memoryUsage().arrayBuffers - before < 1024 * 1024);
});

test('10,000 levels of nesting are rejected without recursing that deep', () => {
  let deep = '0:]';
  for (let i = 0; i < 10_000; i++) deep = `${deep.length}:${deep}]`;
  const err = rejects(deep, /maxDepth 32/);
  // The 33rd list prefix trips the limit: every outer level is "N:" with N of 5 or 6 digits.
  assert.ok(err.offset >= 32 * 6 && err.offset <= 32 * 7, `offset ${err.offset}`);
});

test('encoder rejects what has no tnetstring form', () => {
  for (const v of [Number.NaN, Number.POSITIVE_INFINITY, 2n ** 64n]) {
    assert.throws(() => encode(v), (err: unknown) => err instanceof ProtocolError);
  }
  assert.throws(() => encode(undefined as unknown as EncodableValue), ProtocolError);
  assert.throws(() => encode({ f: (() => 1) as unknown as EncodableValue }), ProtocolError);
});

const key = fc.string({ unit: 'grapheme', maxLength: 12 }).filter((k) => k !== '__proto__' && k !== 'constructor');
const { value: arbValue } = fc.letrec<{ value: EncodableValue }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.string({ unit: 'grapheme', maxLength: 20 }),
    fc.integer(),
    fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('value'), { maxLength: 5 }),
    fc.dictionary(key, tie('value'), { maxKeys: 5 }),
  ),
}));

function normalise(v: EncodableValue): unknown {
  if (typeof v === 'bigint') return Number.isSafeInteger(Number(v)) ? Number(v) : v;
  if (typeof v === 'number' && Object.is(v, -0)) return 0;
  if (Array.isArray(v)) return (v as EncodableValue[]).map(normalise);
  if (v !== null && typeof v === 'object' && !(v instanceof Uint8Array)) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, normalise(x)]));
  }
  return v;
}

test('property: decode(encode(v)) == v for every value (10,000 runs)', () => {
  fc.assert(
    fc.property(arbValue, (v) => {
      const enc = encode(v);
      assert.equal(enc.length, encodedLength(v));
      assert.deepEqual(decode(enc, { strings: 'utf8', maxDepth: 100 }), normalise(v));
    }),
    { numRuns: 10_000 },
  );
});

test('property: arbitrary bytes only ever raise ProtocolError (10,000 runs)', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
      try {
        decode(Buffer.from(bytes));
      } catch (err) {
        assert.ok(err instanceof ProtocolError, String(err));
      }
    }),
    { numRuns: 10_000 },
  );
});

test('property: mutated valid encodings only raise ProtocolError and the decoder stays usable', () => {
  fc.assert(
    fc.property(arbValue, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }), (v, edits) => {
      const enc = Buffer.from(encode(v));
      for (const [at, byte] of edits) if (enc.length > 0) enc[at % enc.length] = byte;
      try {
        decode(enc, { maxDepth: 100 });
      } catch (err) {
        assert.ok(err instanceof ProtocolError, String(err));
      }
      assert.equal(decode(b('2:ok,'), { strings: 'utf8' }), 'ok');
    }),
    { numRuns: 10_000 },
  );
});
