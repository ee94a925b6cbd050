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
import { mutate, prng } from './helpers/mutate.js';

const SEED = Number(process.env.M2GATE_FUZZ_SEED ?? 0x5eed);
const BUDGET_MS = Number(process.env.M2GATE_FUZZ_MS ?? 1500);
const MIN_CASES = 20_000;

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
