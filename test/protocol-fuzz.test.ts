// Fuzzing every byte-level parser the gateway and services expose to a peer (issue #8, "Bad
// input"): tnetstrings (decode, decodePrefix, all string modes), Mongrel2 requests, replies and
// control bodies, and the incremental HTTP response parser (fed in random splits). Two sources:
// a seeded mutation loop over the Mongrel2 1.12.2 captures and the client/handler bytes beside
// them, and fast-check properties that mutate freshly encoded valid messages. Each case may only
// throw our ProtocolError; no case may take long (no hang: the slowest case is measured and
// bounded); and the heap after GC may not grow across the run (nothing retained).
//
// M2GATE_FUZZ_CASES sets the case count of each loop (default 20,000 mutants and 2,000 runs
// per property: a few seconds; `npm run soak` uses 100,000+). M2GATE_FUZZ_SEED replays a run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import fc from 'fast-check';
import { decode, decodePrefix, encode, type EncodableValue } from '../protocol/tnetstring.js';
import { encodeRequest, parseRequest } from '../protocol/m2-request.js';
import { decodeControl, encodeReply, parseReply } from '../protocol/m2-reply.js';
import { buildResponse, ResponseParser } from '../protocol/http-response.js';
import { ProtocolError } from '../protocol/errors.js';
import { FIXTURES_DIR, fixture } from './helpers/fixtures.js';
import { mutate, prng } from './helpers/mutate.js';

const SEED = Number(process.env.M2GATE_FUZZ_SEED ?? 0x5eed8);
const CASES = Number(process.env.M2GATE_FUZZ_CASES ?? 20_000);
const RUNS = Number(process.env.M2GATE_FUZZ_CASES ?? 2_000);
/** No single input may take this long: a parser that loops or backtracks would. */
const SLOW_CASE_MS = 500;
/** A case slower than this is timed again (see loop). */
const RETIME_MS = 20;
/** Heap growth after GC allowed across a whole loop. */
const HEAP_BOUND = 8 * 1024 * 1024;

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
function heapAfterGc(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

/** Feeds `bytes` to a fresh ResponseParser in random pieces, then close(). */
function parseResponseInPieces(bytes: Buffer, rand: () => number, expectNoBody: boolean): void {
  const parser = new ResponseParser({ onHead() {}, onBody() {}, onEnd() {} }, { expectNoBody, maxHeadBytes: 4096, maxHeaders: 32 });
  let pos = 0;
  while (pos < bytes.length) {
    const n = 1 + Math.floor(rand() * (bytes.length - pos));
    parser.push(bytes.subarray(pos, pos + n));
    pos += n;
  }
  parser.close();
}

type Decoder = (b: Buffer, rand: () => number) => unknown;
const DECODERS: Array<[string, Decoder]> = [
  ['tnetstring decode (buffer)', (b) => decode(b)],
  ['tnetstring decode (utf8, depth 8)', (b) => decode(b, { strings: 'utf8', maxDepth: 8 })],
  ['tnetstring decode (latin1, 64-byte limit)', (b) => decode(b, { strings: 'latin1', maxBytes: 64 })],
  ['tnetstring decodePrefix at a random offset', (b, rand) => decodePrefix(b, Math.floor(rand() * (b.length + 1)))],
  ['parseRequest', (b) => parseRequest(b)],
  ['parseRequest (small limits)', (b) => parseRequest(b, { maxHeaderBytes: 256, maxBodyBytes: 64 })],
  ['parseReply', (b) => parseReply(b)],
  ['parseReply (maxIds 2)', (b) => parseReply(b, { maxIds: 2 })],
  ['decodeControl', (b) => decodeControl(b)],
  ['ResponseParser', (b, rand) => parseResponseInPieces(b, rand, false)],
  ['ResponseParser (HEAD)', (b, rand) => parseResponseInPieces(b, rand, true)],
];

function timeOnce(fn: () => unknown): number {
  const t0 = performance.now();
  try {
    fn();
  } catch {
    // judged by the first run
  }
  return performance.now() - t0;
}

interface LoopStats {
  cases: number;
  rejected: number;
  slowestMs: number;
  heapGrowth: number;
}

/** Runs every decoder on `inputs()`; any throw but ProtocolError fails with a replayable case. */
function loop(label: string, count: number, next: (i: number) => Buffer, rand: () => number): LoopStats {
  const before = heapAfterGc();
  let rejected = 0;
  let slowest = 0;
  for (let i = 0; i < count; i++) {
    const input = next(i);
    for (const [name, decoder] of DECODERS) {
      const t0 = performance.now();
      try {
        decoder(input, rand);
      } catch (err) {
        rejected++;
        if (!(err instanceof ProtocolError)) {
          assert.fail(`${label}, seed ${SEED}, case ${i}, ${name}: ${String(err)} for base64 ${input.toString('base64')}`);
        }
      }
      let ms = performance.now() - t0;
      // A GC pause or another process can stall any one case; a parser that loops or
      // backtracks is slow every time. Time a slow case again before judging it.
      if (ms > RETIME_MS) ms = Math.min(ms, timeOnce(() => decoder(input, rand)));
      if (ms > slowest) slowest = ms;
      assert.ok(ms < SLOW_CASE_MS, `${label}, case ${i}, ${name} took ${ms.toFixed(1)} ms on base64 ${input.toString('base64')}`);
    }
  }
  const heapGrowth = heapAfterGc() - before;
  assert.ok(heapGrowth < HEAP_BOUND, `${label}: heap grew ${heapGrowth} bytes after GC`);
  return { cases: count, rejected, slowestMs: slowest, heapGrowth };
}

function report(label: string, s: LoopStats): void {
  // One line per loop, read by scripts/soak.mjs and docs/reliability.md.
  console.log(`fuzz ${label}: ${s.cases} cases x ${DECODERS.length} decoders, ${s.rejected} rejections, slowest case ${s.slowestMs.toFixed(2)} ms, heap after GC ${(s.heapGrowth / 1024).toFixed(0)} KiB`);
}

test(`seeded mutation of every capture (${CASES} mutants, each through ${DECODERS.length} decoders): only ProtocolError, no slow case, bounded heap`, () => {
  const files = readdirSync(FIXTURES_DIR).filter((f) => f.endsWith('.bin'));
  assert.ok(files.length >= 40, `fixtures in ${FIXTURES_DIR}`);
  const corpus = files.map((f) => fixture(f));
  const rand = prng(SEED);
  // Mutants of mutants too: a few rounds deep reaches states one edit does not.
  let last = corpus[0]!;
  const stats = loop('captures', CASES, (i) => (last = mutate(i % 3 === 2 ? last : corpus[i % corpus.length]!, rand)), rand);
  report('captures', stats);
  assert.ok(stats.rejected > stats.cases, 'most mutants are rejected: the loop really exercises the error paths');
  // The decoders are still usable: a clean capture decodes as before.
  assert.equal(parseRequest(fixture('req-get-query.tnet.bin')).path, '/handler/items');
});

const senderArb = fc.stringMatching(/^[A-Za-z0-9-]{1,36}$/);
const editsArb = fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.nat({ max: 2 })), { minLength: 1, maxLength: 4 });

/** Applies fast-check's edits: overwrite, insert or delete at a position. */
function applyEdits(buf: Buffer, edits: Array<[number, number, number]>): Buffer {
  const bytes = [...buf];
  for (const [pos, byte, op] of edits) {
    const at = bytes.length === 0 ? 0 : pos % (bytes.length + 1);
    if (op === 0) bytes[at] = byte;
    else if (op === 1) bytes.splice(at, 0, byte);
    else bytes.splice(at, 1);
  }
  return Buffer.from(bytes);
}

function onlyProtocolError(fn: () => unknown): void {
  const t0 = performance.now();
  try {
    fn();
  } catch (err) {
    if (!(err instanceof ProtocolError)) throw err;
  }
  let ms = performance.now() - t0;
  if (ms > RETIME_MS) ms = Math.min(ms, timeOnce(fn));
  assert.ok(ms < SLOW_CASE_MS, `a case took ${ms.toFixed(1)} ms twice`);
}

const requestArb = fc.record({
  sender: senderArb,
  connId: fc.nat({ max: 2 ** 31 - 1 }),
  path: fc.stringMatching(/^\/[!-~]{0,30}$/),
  headers: fc.dictionary(fc.stringMatching(/^[a-zA-Z][a-zA-Z0-9_-]{0,10}$/).filter((k) => k !== 'constructor'), fc.oneof(fc.string({ maxLength: 20 }), fc.array(fc.string({ maxLength: 8 }), { minLength: 1, maxLength: 3 })), { maxKeys: 8 }),
  body: fc.uint8Array({ maxLength: 64 }),
});

test(`property: mutated Mongrel2 requests (both encodings) only raise ProtocolError (${RUNS} runs)`, () => {
  const before = heapAfterGc();
  fc.assert(
    fc.property(requestArb, fc.constantFrom('json', 'tnetstring' as const), editsArb, (fields, encoding, edits) => {
      const mutant = applyEdits(encodeRequest(fields, encoding), edits);
      onlyProtocolError(() => parseRequest(mutant));
      onlyProtocolError(() => parseRequest(mutant, { maxHeaderBytes: 64, maxBodyBytes: 16 }));
    }),
    { numRuns: RUNS, seed: SEED },
  );
  assert.ok(heapAfterGc() - before < HEAP_BOUND);
});

test(`property: mutated replies and control bodies only raise ProtocolError (${RUNS} runs)`, () => {
  const before = heapAfterGc();
  fc.assert(
    fc.property(senderArb, fc.array(fc.nat({ max: 2 ** 40 }), { minLength: 1, maxLength: 130 }), fc.uint8Array({ maxLength: 64 }), editsArb, (sender, ids, body, edits) => {
      const valid = ids.length <= 128;
      const message = valid ? encodeReply(sender, ids, body) : Buffer.from(`${sender} ${ids.join(' ').length}:${ids.join(' ')}, `);
      if (!valid) assert.throws(() => parseReply(message), ProtocolError);
      onlyProtocolError(() => parseReply(applyEdits(message, edits)));
      onlyProtocolError(() => decodeControl(applyEdits(encode(['ctl', { 'keep-alive': true }]), edits)));
    }),
    { numRuns: RUNS, seed: SEED },
  );
  assert.ok(heapAfterGc() - before < HEAP_BOUND);
});

const tnetArb: fc.Arbitrary<EncodableValue> = fc.letrec<{ v: EncodableValue }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small' },
    fc.string({ maxLength: 12 }),
    fc.integer(),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('v'), { maxLength: 4 }),
    fc.dictionary(fc.string({ maxLength: 6 }).filter((k) => k !== '__proto__' && k !== 'constructor'), tie('v'), { maxKeys: 4 }),
  ),
})).v;

test(`property: mutated tnetstrings only raise ProtocolError in every string mode (${RUNS} runs)`, () => {
  const before = heapAfterGc();
  fc.assert(
    fc.property(tnetArb, editsArb, fc.nat(), (value, edits, offset) => {
      const mutant = applyEdits(encode(value), edits);
      for (const strings of ['buffer', 'utf8', 'latin1'] as const) onlyProtocolError(() => decode(mutant, { strings, maxDepth: 16 }));
      onlyProtocolError(() => decodePrefix(mutant, offset % (mutant.length + 1)));
    }),
    { numRuns: RUNS, seed: SEED },
  );
  assert.ok(heapAfterGc() - before < HEAP_BOUND);
});

const responseArb = fc.record({
  status: fc.integer({ min: 200, max: 599 }).filter((s) => s !== 204 && s !== 304),
  headers: fc.array(fc.tuple(fc.stringMatching(/^X-[A-Za-z0-9]{1,8}$/), fc.stringMatching(/^[ -~]{0,16}$/)), { maxLength: 5 }),
  body: fc.uint8Array({ maxLength: 64 }),
  chunked: fc.boolean(),
});

test(`property: mutated HTTP responses, fed in random pieces, only raise ProtocolError (${RUNS} runs)`, () => {
  const before = heapAfterGc();
  fc.assert(
    fc.property(responseArb, editsArb, fc.integer(), (r, edits, seed) => {
      const rand = prng(seed);
      const headers: Array<[string, string]> = [...r.headers];
      let body: Buffer | Uint8Array = r.body;
      if (r.chunked) {
        headers.push(['Transfer-Encoding', 'chunked']);
        body = r.body.length === 0 ? Buffer.from('0\r\n\r\n') : Buffer.concat([Buffer.from(`${r.body.length.toString(16)}\r\n`), r.body, Buffer.from('\r\n0\r\n\r\n')]);
      }
      const valid = buildResponse({ status: r.status, headers, body });
      parseResponseInPieces(valid, rand, false); // the unmutated response parses
      onlyProtocolError(() => parseResponseInPieces(applyEdits(valid, edits), rand, false));
    }),
    { numRuns: RUNS, seed: SEED },
  );
  assert.ok(heapAfterGc() - before < HEAP_BOUND);
});

test('declared sizes of 999,999,999 bytes and 10,000 levels of nesting are rejected at once, without allocating', () => {
  const sender = 'f0f0f0f0-0000-4000-8000-000000000000';
  const nested = (levels: number): string => {
    let s = '0:~';
    for (let i = 0; i < levels; i++) s = `${Buffer.byteLength(s)}:${s}]`;
    return s;
  };
  const deep = nested(10_000);
  const deepHeaders = (d: string): Buffer => Buffer.from(`${sender} 1 / ${Buffer.byteLength(d) + 9}:6:METHOD,${d}}0:,`);
  const cases: Array<[string, () => unknown, RegExp]> = [
    ['tnetstring of 999,999,999 bytes', () => decode(Buffer.from('999999999:abc,')), /exceeds the remaining input/],
    ['tnetstring nested 10,000 levels', () => decode(Buffer.from(deep)), /maxDepth/],
    ['request headers of 999,999,999 bytes', () => parseRequest(Buffer.from(`${sender} 1 / 999999999:{},0:,`)), /./],
    ['request body of 999,999,999 bytes', () => parseRequest(Buffer.from(`${sender} 1 / 2:{},999999999:x,`)), /999999999/],
    ['request headers nested 10,000 levels (over the header size limit)', () => parseRequest(deepHeaders(deep)), /maxHeaderBytes/],
    ['request headers nested 1,000 levels (inside the size limit)', () => parseRequest(deepHeaders(nested(1000))), /maxDepth|must be strings/],
    ['reply id list of 999,999,999 bytes', () => parseReply(Buffer.from(`${sender} 999999999:1, x`)), /length/],
    ['control body nested 10,000 levels', () => decodeControl(Buffer.from(deep)), /maxDepth/],
  ];
  for (const [name, run, message] of cases) {
    const before = process.memoryUsage();
    const t0 = performance.now();
    assert.throws(run, (err: unknown) => err instanceof ProtocolError && message.test(err.message), name);
    const ms = performance.now() - t0;
    const after = process.memoryUsage();
    assert.ok(ms < 100, `${name} took ${ms} ms`);
    // A 999,999,999-byte allocation (or a copy of the input per level) would show here.
    assert.ok(after.arrayBuffers - before.arrayBuffers < 1024 * 1024, `${name} allocated ${after.arrayBuffers - before.arrayBuffers} bytes`);
    assert.ok(after.rss - before.rss < 64 * 1024 * 1024, `${name} grew the RSS by ${after.rss - before.rss} bytes`);
  }
});
