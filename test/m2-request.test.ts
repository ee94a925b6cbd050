import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { encodeDisconnect, encodeRequest, parseRequest, type HeaderEncoding, type RequestKind } from '../protocol/m2-request.js';
import { ProtocolError } from '../protocol/errors.js';
import { fixture, fixtureIndex } from './helpers/fixtures.js';

const KIND_OF: Record<string, RequestKind> = {
  request: 'http',
  disconnect: 'disconnect',
  credits: 'credits',
  'upload-start': 'upload-start',
  'upload-done': 'upload-done',
  'websocket-handshake': 'websocket-handshake',
  'websocket-frame': 'websocket',
};

const messages = fixtureIndex().filter((e) => e.expect !== undefined);

test('the fixture index lists every kind of Mongrel2 message', () => {
  assert.ok(messages.length >= 29, `only ${messages.length} message fixtures`);
  const kinds = new Set(messages.map((m) => m.kind));
  for (const k of Object.keys(KIND_OF)) assert.ok(kinds.has(k), `no fixture of kind ${k}`);
});

for (const entry of messages) {
  const expect = entry.expect!;
  test(`${entry.file} parses to the fields index.json gives`, () => {
    const raw = fixture(entry.file);
    assert.equal(raw.length, entry.bytes);
    const req = parseRequest(raw);
    assert.equal(req.sender, expect.sender);
    assert.equal(req.connId, expect.conn_id);
    assert.equal(req.path, expect.path);
    assert.equal(req.encoding, expect.headers_encoding);
    assert.deepEqual({ ...req.headers }, expect.headers);
    assert.equal(req.body.length, expect.body_length);
    assert.equal(req.body.toString('base64'), expect.body_base64);
    const kind = expect.path.startsWith('@') && expect.path !== '@*' ? 'json' : KIND_OF[entry.kind];
    assert.equal(req.kind, kind);
  });

  test(`${entry.file} re-encodes to the captured bytes`, () => {
    const raw = fixture(entry.file);
    const req = parseRequest(raw);
    const again = encodeRequest(req, req.encoding);
    assert.equal(again.toString('latin1'), raw.toString('latin1'));
    assert.ok(again.equals(raw));
  });
}

test('the disconnect notification is produced byte for byte in both encodings', () => {
  for (const [file, enc] of [['msg-disconnect.json.bin', 'json'], ['msg-disconnect.tnet.bin', 'tnetstring']] as const) {
    const raw = fixture(file);
    const req = parseRequest(raw);
    assert.ok(encodeDisconnect(req.sender, req.connId, enc).equals(raw));
  }
});

test('JSON header blocks with raw control bytes, as Mongrel2 writes them, still parse', () => {
  const json = '{"METHOD":"GET","x-tab":"a\tb","x-ctl":"\u0001"}';
  const msg = Buffer.from(`s 1 /p ${Buffer.byteLength(json)}:${json},0:,`);
  const req = parseRequest(msg);
  assert.equal(req.headers['x-tab'], 'a\tb');
  assert.equal(req.headers['x-ctl'], '\u0001');
  // ...and we emit valid JSON for them.
  const out = encodeRequest(req, 'json');
  const block = out.toString().split(' ')[3]!;
  assert.doesNotThrow(() => JSON.parse(block.slice(block.indexOf(':') + 1, block.lastIndexOf('},') + 1)));
});

function rejects(text: string | Buffer, re: RegExp): void {
  const buf = typeof text === 'string' ? Buffer.from(text, 'latin1') : text;
  assert.throws(
    () => parseRequest(buf),
    (err: unknown) => err instanceof ProtocolError && err.code === 'M2G_ERR_REQUEST' && re.test(err.message),
    `${buf.toString('latin1')} should fail with ${re}`,
  );
}

test('malformed requests are rejected with M2G_ERR_REQUEST', () => {
  rejects('', /missing sender/);
  rejects('sender', /missing sender|missing connection id/);
  rejects('s 12', /missing connection id/);
  rejects('s 1x /p 2:{},0:,', /decimal digits/);
  rejects('s 1 /p', /missing path/);
  rejects('s  /p 2:{},0:,', /empty connection id/);
  rejects('s 1 /p 2:{}', /exceeds the remaining input|truncated/);
  rejects('s 1 /p 2:{}#0:,', /must be a tnetstring dict or a JSON netstring/);
  rejects('s 1 /p 2:[],0:,', /must be an object/);
  rejects('s 1 /p 7:{"a":1},0:,', /must be a string or a list/);
  rejects('s 1 /p 3:{x},0:,', /not JSON/);
  rejects('s 1 /p 2:{},0:,extra', /trailing bytes/);
  rejects('s 1 /p 2:{},5:ab,', /exceeds the remaining input/);
  rejects('s 1 /p 2:{},2:ab}', /body must be a netstring/);
  rejects('s 1 /p 8:1:a,1:1#}0:,', /must be a string or a list/);
  rejects('s 1 /p 16:9:__proto__,1:x,}0:,', /forbidden/);
  rejects('s 1 /p 17:{"__proto__":"x"},0:,', /forbidden/);
  rejects('s 1 /p 16:1:a,1:x,1:a,1:y,}0:,', /duplicate header key/);
  rejects('s 1 @* 17:{"METHOD":"JSON"},10:{"type":1},', /unknown notification/);
});

test('limits on header block and body size are options', () => {
  const msg = encodeRequest({ sender: 's', connId: 1, path: '/p', headers: { METHOD: 'POST' }, body: 'x'.repeat(100) }, 'tnetstring');
  assert.throws(() => parseRequest(msg, { maxBodyBytes: 99 }), /maxBodyBytes 99/);
  assert.throws(() => parseRequest(msg, { maxHeaderBytes: 10 }), /maxHeaderBytes 10/);
  assert.equal(parseRequest(msg, { maxBodyBytes: 100 }).body.length, 100);
});

const headerName = fc.stringMatching(/^[a-zA-Z][a-zA-Z0-9_-]{0,15}$/).filter((k) => k !== 'constructor');
const headerValue = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 30 }),
  fc.array(fc.string({ unit: 'grapheme', maxLength: 10 }), { minLength: 1, maxLength: 5 }),
);
const requestFields = fc.record({
  sender: fc.stringMatching(/^[A-Za-z0-9-]{1,36}$/),
  connId: fc.nat({ max: 2 ** 31 - 1 }),
  path: fc.stringMatching(/^[/@][!-~]{0,40}$/).filter((p) => p !== '@*'),
  headers: fc.dictionary(headerName, headerValue, { maxKeys: 12 }),
  body: fc.uint8Array({ maxLength: 200 }),
});

for (const encoding of ['json', 'tnetstring'] as HeaderEncoding[]) {
  test(`property: parseRequest(encodeRequest(r)) == r with ${encoding} headers (10,000 runs)`, () => {
    fc.assert(
      fc.property(requestFields, (r) => {
        const headers = { ...r.headers, METHOD: 'GET' };
        const parsed = parseRequest(encodeRequest({ ...r, headers }, encoding));
        assert.equal(parsed.sender, r.sender);
        assert.equal(parsed.connId, r.connId);
        assert.equal(parsed.path, r.path);
        assert.deepEqual({ ...parsed.headers }, headers);
        assert.deepEqual([...parsed.body], [...r.body]);
        assert.equal(parsed.encoding, encoding);
      }),
      { numRuns: 10_000 },
    );
  });
}

test('property: arbitrary bytes only raise ProtocolError (10,000 runs)', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 120 }), (bytes) => {
      try {
        parseRequest(Buffer.from(bytes));
      } catch (err) {
        assert.ok(err instanceof ProtocolError, String(err));
      }
    }),
    { numRuns: 10_000 },
  );
});
