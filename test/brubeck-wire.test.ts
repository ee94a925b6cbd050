// The brubeck-service codec (protocol/brubeck-wire.ts) against docs/brubeck-service-wire.md:
// the captured response, read from the document itself and re-encoded byte for byte; request
// vectors written from its format lines; fast-check round trips; a seeded mutation fuzz in
// which only ProtocolError may be thrown.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import {
  decodeBrubeckRequest,
  decodeBrubeckResponse,
  encodeBrubeckRequest,
  encodeBrubeckResponse,
  parseBrubeckJson,
  type BrubeckRequestFields,
  type BrubeckResponseFields,
} from '../protocol/brubeck-wire.js';
import { ERROR_CODES, ProtocolError } from '../protocol/errors.js';
import { mutate, prng } from './helpers/mutate.js';

const DOC = readFileSync(new URL('../docs/brubeck-service-wire.md', import.meta.url), 'utf8');

/** The indented block after "Captured behind m2gate", its display lines joined by single spaces. */
function capturedTemplate(): string {
  const after = DOC.slice(DOC.indexOf('Captured behind m2gate'));
  const lines = after.split('\n');
  const start = lines.findIndex((l) => l.startsWith('    '));
  const block: string[] = [];
  for (let i = start; i < lines.length && lines[i]!.startsWith('    '); i++) block.push(lines[i]!.trim());
  return block.join(' ');
}

// The document elides five values with '…'; these fill them with what the length prefixes
// say (a 32-character uuid4 hex, two 13-digit timestamps, the rest of the 163-byte body).
const SENDER = '1ca33d49' + '5e2f4a0b8c7d6e1f2a3b4c5d';
const START_TS = '1796222842090';
const END_TS = '1796222844091';
const BODY_MIDDLE = '"status_msg":"Took a while, but I am back.","timestamp":1796222844091';
const BODY_END = 'and the data made it through intact.';
const FILLS = [SENDER.slice(8), START_TS, END_TS, BODY_MIDDLE, BODY_END];

function capturedVector(): Buffer {
  const pieces = capturedTemplate().split('…');
  assert.equal(pieces.length, FILLS.length + 1, 'the capture in the document has five elisions');
  // "13:…" stands for the digits alone: the template's "13:" is kept, the fill goes after it.
  return Buffer.from(pieces.reduce((acc, piece, i) => acc + FILLS[i - 1]! + piece));
}

const BODY = `{"status_code":200,${BODY_MIDDLE},"RETURN_DATA":"I made a round trip, ${BODY_END}"}`;

test('the captured 0.1.3 response in the document decodes to its fields and re-encodes byte for byte', () => {
  const wire = capturedVector();
  assert.equal(Buffer.byteLength(BODY), 163);
  const r = decodeBrubeckResponse(wire);
  assert.equal(r.version, '0.1.3');
  assert.equal(r.sender, SENDER);
  assert.equal(r.connId, '96d446d2a9694a0aa31e85ac6346e792');
  assert.equal(r.requestTs, '1796222842086');
  assert.equal(r.startTs, START_TS);
  assert.equal(r.endTs, END_TS);
  assert.equal(r.passphrase, 'my_shared_secret');
  assert.equal(r.originSenderId, '0d7e3c1a-2b4f-4e6d-8a9c-1b2c3d4e5f60');
  assert.equal(r.originConnId, '47');
  assert.equal(r.originOutAddr, 'tcp://127.0.0.1:43106');
  assert.equal(r.handleResponse, false);
  assert.equal(r.path, '/service/slow');
  assert.equal(r.method, 'response');
  assert.equal(parseBrubeckJson(r.statusCode, 'status_code'), 200);
  assert.equal(parseBrubeckJson(r.statusMsg, 'status_msg'), 'Took a while, but I am back.');
  assert.deepEqual(parseBrubeckJson(r.arguments, 'arguments'), {});
  assert.deepEqual(parseBrubeckJson(r.headers, 'headers'), {});
  assert.equal(r.body.toString(), BODY);
  assert.equal(encodeBrubeckResponse(r).toString('latin1'), wire.toString('latin1'));
  assert.deepEqual(encodeBrubeckResponse(r), wire);
});

// Written from the document's request format lines, with the capture's values.
const REQUEST_013 =
  `${SENDER} 32:96d446d2a9694a0aa31e85ac6346e792 13:1796222842086 16:my_shared_secret ` +
  '36:0d7e3c1a-2b4f-4e6d-8a9c-1b2c3d4e5f60 2:47 21:tcp://127.0.0.1:43106 1:1 13:/service/slow ' +
  '7:request 38:{"RETURN_DATA": "I made a round trip"}2:{}2:{}';
const REQUEST_010 =
  `${SENDER} 32:96d446d2a9694a0aa31e85ac6346e792 13:1796222842086 16:my_shared_secret ` +
  '36:0d7e3c1a-2b4f-4e6d-8a9c-1b2c3d4e5f60 2:47 21:tcp://127.0.0.1:43106 13:/service/slow ' +
  '7:request 38:{"RETURN_DATA": "I made a round trip"}2:{}2:{}';

test('requests in both versions: decode, and re-encode byte for byte', () => {
  for (const [wire, version, handle] of [
    [REQUEST_013, '0.1.3', true],
    [REQUEST_010, '0.1.0', false],
  ] as const) {
    const r = decodeBrubeckRequest(Buffer.from(wire));
    assert.equal(r.version, version);
    assert.equal(r.handleResponse, handle);
    assert.equal(r.path, '/service/slow');
    assert.equal(r.method, 'request');
    assert.equal(r.passphrase, 'my_shared_secret');
    assert.deepEqual(parseBrubeckJson(r.arguments, 'arguments'), { RETURN_DATA: 'I made a round trip' });
    assert.equal(encodeBrubeckRequest(r).toString(), wire);
    assert.throws(() => decodeBrubeckRequest(Buffer.from(wire), { version: version === '0.1.3' ? '0.1.0' : '0.1.3' }), isBrubeckError);
  }
  // A request is not a response, and the other way round.
  assert.throws(() => decodeBrubeckResponse(Buffer.from(REQUEST_013)), isBrubeckError);
  assert.throws(() => decodeBrubeckRequest(capturedVector()), isBrubeckError);
});

test('a value with a space: decoded by its length (what a real peer writes), refused by the encoders', () => {
  const wire = REQUEST_013.replace('13:/service/slow', '14:/service/ slow');
  const r = decodeBrubeckRequest(Buffer.from(wire));
  assert.equal(r.path, '/service/ slow');
  assert.equal(r.method, 'request');
  assert.throws(() => encodeBrubeckRequest(r), (err: unknown) => isBrubeckError(err) && /path contains a space/.test((err as Error).message));
  assert.throws(() => encodeBrubeckRequest({ ...r, path: '/x', passphrase: 'a b' }), /passphrase contains a space/);
  assert.throws(() => encodeBrubeckRequest({ ...r, path: '/caf\u{1F600}' }), /above U\+00FF/);
  // Tail fields may hold anything: they are parsed by length on both sides.
  const spaced = encodeBrubeckRequest({ ...r, path: '/x', body: '{"a b": " c "}' });
  assert.equal(decodeBrubeckRequest(spaced).body.toString(), '{"a b": " c "}');
});

const MALFORMED: Array<[string, string]> = [
  ['empty', ''],
  ['no sender', ' 1:a'],
  ['sender only', 'abc'],
  ['trailing space', `${REQUEST_013} `],
  ['one field short (0.1.0 less one)', REQUEST_010.replace(' 2:47', '')],
  ['one field more (0.1.3 plus one)', REQUEST_013.replace(' 2:47', ' 2:47 2:47')],
  ['length too long', REQUEST_013.replace('2:{}2:{}', '2:{}9:{}')],
  ['length too short', REQUEST_013.replace('13:/service/slow', '12:/service/slow')],
  ['leading zero', REQUEST_013.replace('2:47', '02:47')],
  ['ten digits', REQUEST_013.replace('2:47', '0000000002:47')],
  ['no colon', REQUEST_013.replace('2:47', '247')],
  ['handle_response not 0/1', REQUEST_013.replace(' 1:1 ', ' 1:x ')],
  ['bytes after the tail', `${REQUEST_013}x`],
  ['space inside the tail', REQUEST_013.replace('2:{}2:{}', '2:{} 2:{}')],
];

test('malformed messages raise ProtocolError M2G_ERR_BRUBECK with an offset', () => {
  for (const [name, text] of MALFORMED) {
    assert.throws(() => decodeBrubeckRequest(Buffer.from(text)), isBrubeckError, name);
    assert.throws(() => decodeBrubeckResponse(Buffer.from(text)), isBrubeckError, name);
  }
  assert.throws(() => decodeBrubeckRequest(Buffer.from(REQUEST_013), { maxBytes: 100 }), /maxBytes/);
  for (const json of ['{', '{"__proto__": {}}', '{"a": {"constructor": 1}}']) {
    assert.throws(() => parseBrubeckJson(Buffer.from(json), 'body'), isBrubeckError, json);
  }
  assert.throws(() => parseBrubeckJson(Buffer.from([0x22, 0xff, 0x22]), 'body'), /UTF-8/);
});

function isBrubeckError(err: unknown): boolean {
  return err instanceof ProtocolError && err.code === ERROR_CODES.BRUBECK && Number.isInteger(err.offset);
}

// ---- properties -----------------------------------------------------------------------------

const RUNS = 500;
/** Header values: any bytes but the space (latin1 strings). */
const tokenArb = fc.string({ unit: fc.integer({ min: 0, max: 0xff }).filter((c) => c !== 0x20).map((c) => String.fromCharCode(c)), maxLength: 40 });
const jsonArb = fc.jsonValue().map((v) => JSON.stringify(v));
const versionArb = fc.constantFrom('0.1.0' as const, '0.1.3' as const);

const requestArb = fc.record({
  version: versionArb,
  sender: tokenArb.filter((s) => s.length > 0),
  connId: tokenArb,
  requestTs: tokenArb,
  passphrase: tokenArb,
  originSenderId: tokenArb,
  originConnId: tokenArb,
  originOutAddr: tokenArb,
  handleResponse: fc.boolean(),
  path: tokenArb,
  method: tokenArb,
  arguments: jsonArb,
  headers: jsonArb,
  body: jsonArb,
});

test(`property: decode(encode(request)) round-trips, both versions (${RUNS} runs)`, () => {
  fc.assert(
    fc.property(requestArb, (fields: BrubeckRequestFields) => {
      const r = decodeBrubeckRequest(encodeBrubeckRequest(fields));
      assert.equal(r.version, fields.version);
      assert.deepEqual(
        { ...r, arguments: r.arguments.toString(), headers: r.headers.toString(), body: r.body.toString() },
        { ...fields, handleResponse: fields.version === '0.1.3' && fields.handleResponse },
      );
    }),
    { numRuns: RUNS },
  );
});

test(`property: decode(encode(response)) round-trips, both versions (${RUNS} runs)`, () => {
  const arb = fc.tuple(requestArb, tokenArb, tokenArb, fc.integer({ min: 100, max: 599 }), fc.string()).map(
    ([req, startTs, endTs, status, msg]): BrubeckResponseFields => ({ ...req, startTs, endTs, statusCode: String(status), statusMsg: JSON.stringify(msg) }),
  );
  fc.assert(
    fc.property(arb, (fields) => {
      const wire = encodeBrubeckResponse(fields);
      const r = decodeBrubeckResponse(wire);
      assert.deepEqual(encodeBrubeckResponse(r), wire);
      assert.equal(r.statusMsg.toString(), fields.statusMsg);
    }),
    { numRuns: RUNS },
  );
});

const FUZZ_MS = Number(process.env.M2GATE_FUZZ_MS ?? 0);
const FUZZ_CASES = FUZZ_MS > 0 ? Number.POSITIVE_INFINITY : 20_000;

test(`fuzz: mutated requests and responses only raise ProtocolError, and the decoder stays usable (${FUZZ_MS > 0 ? `${FUZZ_MS} ms` : FUZZ_CASES})`, () => {
  const seed = 0xb2b3c4;
  const rand = prng(seed);
  const corpus = [Buffer.from(REQUEST_013), Buffer.from(REQUEST_010), capturedVector()];
  const until = FUZZ_MS > 0 ? Date.now() + FUZZ_MS : Number.POSITIVE_INFINITY;
  let accepted = 0;
  for (let i = 0; i < FUZZ_CASES && Date.now() < until; i++) {
    const input = mutate(corpus[i % corpus.length]!, rand);
    for (const decode of [decodeBrubeckRequest, decodeBrubeckResponse]) {
      try {
        const r = decode(input);
        accepted++;
        for (const [name, view] of Object.entries(r)) if (Buffer.isBuffer(view)) tryJson(view, name);
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw new Error(`case ${i} (seed ${seed}): ${String(err)} for ${input.toString('latin1')}`, { cause: err });
      }
    }
  }
  assert.ok(accepted > 0, 'some mutations are still valid messages');
  assert.equal(decodeBrubeckRequest(Buffer.from(REQUEST_013)).path, '/service/slow');
});

function tryJson(view: Buffer, name: string): void {
  try {
    parseBrubeckJson(view, name);
  } catch (err) {
    if (!(err instanceof ProtocolError)) throw err;
  }
}
