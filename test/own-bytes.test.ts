// Bytes that cross to or from a worker thread own their ArrayBuffer (workers/task.ts ownBytes).
// Posting a Buffer view copies the view's whole ArrayBuffer: a reply made in Buffer's shared
// 8 KiB pool crossed as 8 KiB, and a REQUEST read out of a link BATCH would take the whole
// batch to the thread.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pathToFileURL } from 'node:url';
import { pino } from 'pino';
import { ThreadPool, type DescribedRoutes } from '../workers/thread-pool.js';
import { TaskAborts } from '../workers/abort-main.js';
import { ownBytes } from '../workers/task.js';
import { parseReply } from '../protocol/m2-reply.js';
import { encodeBatch, encodeLink, type LinkMessage } from '../protocol/link-frames.js';
import { fixtureRoutes, parseHttp } from './helpers/service.js';
import { FRONT_SENDER, linkGet, serviceOnFakeRouter } from './helpers/link.js';

type T = { after(fn: () => unknown): void };

/** One thread running a fixture routes module, with the abort bookkeeping its tasks need. */
async function threadOf(t: T, fixture: string): Promise<{ pool: ThreadPool; routes: DescribedRoutes; aborts: TaskAborts<{ id: number; slot: number }> }> {
  const aborts = new TaskAborts<{ id: number; slot: number }>(4, 1000, () => {});
  t.after(() => aborts.close());
  const options = { routesModule: pathToFileURL(fixtureRoutes(fixture)).href, workers: 1, batchMs: 1, maxHeapMb: undefined, abort: aborts.shared, wsChannel: `own-bytes-${fixture}`, log: pino({ level: 'silent' }) };
  const { pool, routes } = await ThreadPool.start(options, (r) => r);
  t.after(() => pool.destroy());
  return { pool, routes, aborts };
}

test("a route's reply comes back from its thread in a buffer of its own size", async (t) => {
  const { pool, routes, aborts } = await threadOf(t, 'link-probes.mjs');
  const route = routes.findIndex((r) => r.pattern === 'GET /l/hello');
  assert.ok(route >= 0);
  const task = { id: 1, slot: -1 };
  aborts.claim(task);
  const result = await pool.run({ kind: 'run', id: task.id, slot: task.slot, route, params: {}, frame: linkGet(7, '/l/hello'), head: false, upload: undefined });
  assert.equal(result.status, 200);
  assert.ok(Buffer.from(result.reply.buffer, result.reply.byteOffset, result.reply.byteLength).toString('latin1').startsWith(`${FRONT_SENDER} 1:7, HTTP/1.1 200`));
  assert.equal(result.reply.buffer.byteLength, result.reply.byteLength, 'not a view of a larger (pooled) buffer');
});

test("a WebSocket route's frames come back from its thread in buffers of their own size", async (t) => {
  const { pool, routes } = await threadOf(t, 'ws-probes.mjs');
  const route = routes.findIndex((r) => r.pattern === 'WS /t/order');
  assert.ok(route >= 0);
  const result = await pool.runWs({ kind: 'ws', event: 'message', route, connId: 3, sender: FRONT_SENDER, origin: 0, path: '/t/order', params: {}, headers: {}, data: Buffer.from('echo me'), binary: false, code: 0, reason: '' });
  assert.equal(result.out.length, 1);
  const { frame } = result.out[0]!;
  assert.deepEqual(Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength), Buffer.concat([Buffer.from([0x81, 7]), Buffer.from('echo me')]));
  assert.equal(frame.buffer.byteLength, frame.byteLength, 'not a view of a larger (pooled) buffer');
});

test('ownBytes: a view of a larger buffer becomes a copy of its bytes; a view that is its whole buffer passes as it is', () => {
  const big = Buffer.alloc(4096, 7);
  const view = big.subarray(100, 200);
  const own = ownBytes(view);
  assert.deepEqual(own, view);
  assert.equal(own.buffer.byteLength, 100);
  const exact = Buffer.from(new Uint8Array(50).fill(3).buffer);
  assert.equal(ownBytes(exact), exact, 'not copied');
  // A little slack (a link frame's header in front of its message) is not worth a copy.
  const framed = Buffer.from(new Uint8Array(120).buffer, 14);
  assert.equal(ownBytes(framed).buffer, framed.buffer);
  const plain = new Uint8Array(8).fill(1);
  assert.ok(Buffer.isBuffer(ownBytes(plain)));
  assert.equal(ownBytes(plain).buffer, plain.buffer);
});

test("the messages of a BATCH reach the service's thread each in a buffer of its own, in order", async (t) => {
  const { router, peer: ready } = await serviceOnFakeRouter(t, 'own-bytes');
  await router.send(ready.id, { command: 'FEATURES', features: ['batch'] });
  await router.next('FEATURES', 'FEATURES answering the offer');
  const from = router.inbox.items.length;
  const messages = [linkGet(1, '/l/backing'), linkGet(2, '/l/backing'), linkGet(3, '/l/backing')];
  await router.sendRaw(ready.id, [encodeBatch(messages.map((m) => encodeLink({ command: 'REQUEST', message: m })[0]!))]);
  const replies = await router.replies(3, from);
  const answers = replies.map((m) => parseReply((m.msg as Extract<LinkMessage, { command: 'REPLY' }>).message));
  assert.deepEqual(answers.map((r) => r.ids[0]), [1, 2, 3], 'in order');
  // Each thread saw a buffer the size of its own message, not the batch's.
  for (const [i, r] of answers.entries()) assert.equal(parseHttp(r.body).body.toString(), String(messages[i]!.length));
});
