// The batching policy of the thread hop alone (workers/task-batcher.ts), with fake threads:
// which tasks go alone, which together, in what order, and how failures spread.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TaskBatcher } from '../workers/task-batcher.js';
import type { BatchResult, RunResult, RunTask } from '../workers/task.js';

interface Call {
  tasks: RunTask[];
  settle(results: Array<RunResult | { failed: string }>): void;
  fail(err: Error): void;
}

/** A batcher over fake threads: each submission waits until the test settles it. */
function rig(threads: number, budgetMs = 1, maxBatch = 64) {
  const calls: Call[] = [];
  const submit = (tasks: RunTask[]) =>
    new Promise<BatchResult>((resolve, reject) => calls.push({ tasks, settle: (results) => resolve({ results }), fail: reject }));
  const batcher = new TaskBatcher({
    threads,
    budgetMs,
    maxBatch,
    runOne: async (task) => {
      const r = (await submit([task])).results[0]!;
      if ('failed' in r) throw new Error(r.failed);
      return r;
    },
    runBatch: (tasks) => submit(tasks),
  });
  return { batcher, calls };
}

const task = (id: number, route = 0): RunTask => ({ kind: 'run', id, slot: id, route, params: {}, frame: new Uint8Array(0), head: false });
const result = (id: number, ms: number): RunResult => ({ status: 200, reply: new Uint8Array([id]), thread: 1, startedAt: 1000, finishedAt: 1000 + ms });
const flush = () => new Promise<void>((resolve) => setImmediate(resolve));
const ids = (c: Call) => c.tasks.map((t) => t.id);

test('a task goes at once and alone while a thread is free; the waiting go together when one frees', async () => {
  const { batcher, calls } = rig(1);
  const first = batcher.run(task(1));
  assert.deepEqual(calls.map(ids), [[1]]);
  calls[0]!.settle([result(1, 0.01)]);
  await first;
  // Measured now (0.01 ms). The thread busy again, then three more wait for it.
  const held = batcher.run(task(2));
  const waiting = [3, 4, 5].map((id) => batcher.run(task(id)));
  assert.equal(batcher.queued, 3);
  assert.deepEqual(calls.map(ids), [[1], [2]]);
  calls[1]!.settle([result(2, 0.01)]);
  await held;
  await flush();
  assert.deepEqual(calls.map(ids), [[1], [2], [3, 4, 5]]);
  assert.equal(batcher.queued, 0);
  calls[2]!.settle([result(3, 0.01), result(4, 0.01), result(5, 0.01)]);
  assert.deepEqual((await Promise.all(waiting)).map((r) => r.reply[0]), [3, 4, 5]);
  assert.deepEqual(batcher.stats, { single: 2, batches: 1, batchedTasks: 3 });
});

test('a batch holds what fits the time budget by measured cost, at most maxBatch; an unmeasured route goes alone', async () => {
  const { batcher, calls } = rig(1, 1, 3);
  const cost = (t: RunTask): number => (t.route === 1 ? 0.8 : 0.3);
  // Measure route 0 at 0.3 ms and route 1 at 0.8 ms.
  for (const [id, route] of [[1, 0], [2, 1]] as const) {
    const p = batcher.run(task(id, route));
    calls.at(-1)!.settle([result(id, cost(task(id, route)))]);
    await p;
  }
  const all = [
    task(10, 0), // takes the thread
    task(11, 0), task(12, 0), task(13, 1), // 0.3 + 0.3 = 0.6, + 0.8 > 1: two go
    task(14, 1), // 0.8, and nothing fits after it
    task(15, 0), task(16, 0), task(17, 0), task(18, 0), // four at 0.3: maxBatch 3 takes three
    task(19, 2), // never measured: alone
    task(20, 0),
  ].map((t) => batcher.run(t));
  // One thread: settle each submission as it comes, until none is left.
  for (let settled = 2; settled < calls.length; settled++) {
    const c = calls[settled]!;
    c.settle(c.tasks.map((t) => result(t.id, cost(t))));
    await flush();
  }
  await Promise.all(all);
  assert.deepEqual(calls.slice(2).map(ids), [[10], [11, 12], [13], [14], [15, 16, 17], [18], [19], [20]]);
});

test('a batch whose thread dies fails each of its tasks once; a task failing on its own fails alone', async () => {
  const { batcher, calls } = rig(1);
  const warm = batcher.run(task(1));
  calls[0]!.settle([result(1, 0.01)]);
  await warm;
  const hold = batcher.run(task(2));
  const batch = [3, 4, 5].map((id) => batcher.run(task(id)));
  calls[1]!.settle([result(2, 0.01)]);
  await hold;
  await flush();
  calls[2]!.fail(new Error('worker exited'));
  const outcomes = await Promise.allSettled(batch);
  assert.deepEqual(outcomes.map((o) => o.status === 'rejected' && (o.reason as Error).message), ['worker exited', 'worker exited', 'worker exited']);

  const hold2 = batcher.run(task(6));
  const mixed = [7, 8, 9].map((id) => batcher.run(task(id)));
  calls[3]!.settle([result(6, 0.01)]);
  await hold2;
  await flush();
  calls[4]!.settle([result(7, 0.01), { failed: 'no route #0' }, result(9, 0.01)]);
  const second = await Promise.allSettled(mixed);
  assert.deepEqual(second.map((o) => o.status), ['fulfilled', 'rejected', 'fulfilled']);
});

test('failWaiting rejects what waits and leaves running tasks alone', async () => {
  const { batcher, calls } = rig(1);
  const running = batcher.run(task(1));
  const waiting = batcher.run(task(2));
  batcher.failWaiting(new Error('closing'));
  await assert.rejects(waiting, /closing/);
  assert.equal(batcher.queued, 0);
  calls[0]!.settle([result(1, 0.01)]);
  assert.equal((await running).reply[0], 1);
  assert.equal(calls.length, 1);
});

test('budget 0: every task alone, however cheap', async () => {
  const { batcher, calls } = rig(1, 0);
  for (let id = 1; id <= 4; id++) void batcher.run(task(id));
  for (let i = 0; i < 4; i++) {
    calls[i]!.settle([result(calls[i]!.tasks[0]!.id, 0)]);
    await flush();
  }
  assert.deepEqual(calls.map(ids), [[1], [2], [3], [4]]);
});
