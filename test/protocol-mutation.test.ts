// A seeded, time-bounded mutation loop over the Mongrel2 captures: every
// mutant is fed to the decoders, which may only throw our ProtocolError and
// must still decode a clean fixture afterwards. M2GATE_FUZZ_MS lengthens it
// (the soak form); M2GATE_FUZZ_SEED replays a run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { parseRequest } from '../protocol/m2-request.js';
import { parseReply } from '../protocol/m2-reply.js';
import { decode } from '../protocol/tnetstring.js';
import { ProtocolError } from '../protocol/errors.js';
import { FIXTURES_DIR, fixture } from './helpers/fixtures.js';

const SEED = Number(process.env.M2GATE_FUZZ_SEED ?? 0x5eed);
const BUDGET_MS = Number(process.env.M2GATE_FUZZ_MS ?? 1500);
const MIN_CASES = 20_000;

function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const INTERESTING = [0x00, 0x20, 0x2c, 0x3a, 0x23, 0x7d, 0x5d, 0x21, 0x7e, 0x5e, 0x30, 0x39, 0xff, 0x22, 0x5c];

function mutate(input: Buffer, rand: () => number): Buffer {
  const bytes = [...input];
  const edits = 1 + Math.floor(rand() * 4);
  for (let e = 0; e < edits; e++) {
    const at = Math.floor(rand() * (bytes.length + 1));
    switch (Math.floor(rand() * 6)) {
      case 0: bytes[at] = Math.floor(rand() * 256); break;
      case 1: bytes[at] = INTERESTING[Math.floor(rand() * INTERESTING.length)]!; break;
      case 2: bytes.splice(at, 1 + Math.floor(rand() * 8)); break;
      case 3: bytes.splice(at, 0, ...bytes.slice(Math.floor(rand() * bytes.length), Math.floor(rand() * bytes.length))); break;
      case 4: bytes.length = Math.min(bytes.length, at); break;
      default: bytes.splice(at, 0, 0x39, 0x39, 0x39, 0x39, 0x39, 0x39, 0x39, 0x39, 0x39); break;
    }
  }
  return Buffer.from(bytes);
}

test('mutated captures only ever raise ProtocolError, and the decoders stay usable', () => {
  const files = readdirSync(FIXTURES_DIR).filter((f) => /^(req|msg|reply)-.*\.bin$/.test(f));
  assert.ok(files.length >= 30);
  const corpus = files.map((f) => fixture(f));
  const clean = fixture('req-get-query.tnet.bin');
  const rand = prng(SEED);
  const deadline = Date.now() + BUDGET_MS;
  let cases = 0;
  let rejected = 0;
  while (cases < MIN_CASES || Date.now() < deadline) {
    const mutant = mutate(corpus[cases % corpus.length]!, rand);
    for (const decoder of [parseRequest, parseReply, decode] as Array<(b: Buffer) => unknown>) {
      try {
        decoder(mutant);
      } catch (err) {
        rejected++;
        if (!(err instanceof ProtocolError)) {
          assert.fail(`seed ${SEED}, case ${cases}: ${String(err)} for ${mutant.toString('base64')}`);
        }
      }
    }
    cases++;
    if (cases % 1000 === 0) assert.equal(parseRequest(clean).path, '/handler/items');
  }
  assert.ok(rejected > cases, `most mutants should be rejected (${rejected} of ${cases * 3})`);
});
