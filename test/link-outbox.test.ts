// zmq/link-outbox.ts: what one turn writes to a peer leaves as one BATCH once the peer reads
// them, alone before that; a message alone in its turn leaves alone; order always holds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { LinkOutbox } from '../zmq/link-outbox.js';
import { decodeBatchItem, decodeLink, encodeLink } from '../protocol/link-frames.js';

const credit = (n: number): Buffer => encodeLink({ command: 'CREDIT', credit: n })[0]!;

/** An outbox writing into a list; `sent()` reads each write back as the credits it carried, a batch as a list. */
function outbox(): { box: LinkOutbox; sent: () => Array<number | number[]> } {
  const writes: Buffer[] = [];
  const box = new LinkOutbox((f) => writes.push(f));
  const value = (f: Buffer): number => {
    const m = decodeBatchItem(f);
    return m.command === 'CREDIT' ? m.credit : -1;
  };
  return {
    box,
    sent: () =>
      writes.map((w) => {
        const m = decodeLink([w]);
        return m.command === 'BATCH' ? m.frames.map(value) : value(w);
      }),
  };
}

test('before the peer said FEATURES batch, every message is written at once and alone', () => {
  const { box, sent } = outbox();
  box.push(credit(1));
  box.push(credit(2));
  assert.deepEqual(sent(), [1, 2]);
  assert.equal(box.batching, false);
});

test('with batches on, one turn is one BATCH written at the end of the turn; a message alone in its turn goes alone', async () => {
  const { box, sent } = outbox();
  box.enableBatches();
  box.push(credit(1));
  box.push(credit(2));
  box.push(credit(3));
  assert.deepEqual(sent(), [], 'nothing written within the turn');
  await nextTurn();
  assert.deepEqual(sent(), [[1, 2, 3]]);
  box.push(credit(4));
  await nextTurn();
  assert.deepEqual(sent(), [[1, 2, 3], 4], 'alone, not wrapped');
  assert.deepEqual(box.stats, { messages: 4, sends: 2, batches: 1 });
});

test('a large message first sends what is pending, then goes alone; flush() sends now; drop() forgets', async () => {
  const { box, sent } = outbox();
  box.enableBatches();
  box.push(credit(1));
  box.push(credit(2));
  const big = encodeLink({ command: 'REPLY', credit: 7, message: Buffer.alloc(70 * 1024, 0x41) })[0]!;
  box.push(big);
  box.push(credit(3));
  assert.deepEqual(sent(), [[1, 2], -1], 'order kept: the two, then the large one');
  box.flush();
  assert.deepEqual(sent(), [[1, 2], -1, 3]);
  box.push(credit(4));
  box.drop();
  await nextTurn();
  assert.equal(sent().length, 3, 'dropped, never written');
});

test('a batch is written early once it is large: order holds across the split', async () => {
  const { box, sent } = outbox();
  box.enableBatches();
  const n = 1500;
  for (let i = 1; i <= n; i++) box.push(credit(i));
  await nextTurn();
  const writes = sent();
  assert.ok(writes.length >= 2, `${writes.length} writes`);
  assert.deepEqual(writes.flat(), Array.from({ length: n }, (_, i) => i + 1));
});
