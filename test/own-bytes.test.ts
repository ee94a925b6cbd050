// Bytes that cross to or from a worker thread own their ArrayBuffer. Posting a Buffer view
// copies the view's whole ArrayBuffer: a reply made in Buffer's shared 8 KiB pool crossed as
// 8 KiB, and a REQUEST read out of a link BATCH would take the whole batch to the thread.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pathToFileURL } from 'node:url';
import { pino } from 'pino';
import { ThreadPool, type DescribedRoutes } from '../workers/thread-pool.js';
import { TaskAborts } from '../workers/abort-main.js';
import { LinkFront } from '../workers/link-front.js';
import { encodeRequest } from '../protocol/m2-request.js';
import { encodeBatch, encodeLink } from '../protocol/link-frames.js';
import { fixtureRoutes } from './helpers/service.js';
import { FakeRouter, deadline } from './helpers/link.js';

const SENDER = '6c1f0e2a-0000-4000-8000-0000000front';

function request(connId: number, path: string): Buffer {
  return encodeRequest({ sender: SENDER, connId, path, headers: { PATH: path, METHOD: 'GET', VERSION: 'HTTP/1.1', URI: path, PATTERN: '/', host: 'localhost' }, body: '' }, 'json');
}

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
  const result = await pool.run({ kind: 'run', id: task.id, slot: task.slot, route, params: {}, frame: request(7, '/l/hello'), head: false, upload: undefined });
  assert.equal(result.status, 200);
  assert.ok(Buffer.from(result.reply.buffer, result.reply.byteOffset, result.reply.byteLength).toString('latin1').startsWith(`${SENDER} 1:7, HTTP/1.1 200`));
  assert.equal(result.reply.buffer.byteLength, result.reply.byteLength, 'not a view of a larger (pooled) buffer');
});

test("a WebSocket route's frames come back from its thread in buffers of their own size", async (t) => {
  const { pool, routes } = await threadOf(t, 'ws-probes.mjs');
  const route = routes.findIndex((r) => r.pattern === 'WS /t/order');
  assert.ok(route >= 0);
  const result = await pool.runWs({ kind: 'ws', event: 'message', route, connId: 3, sender: SENDER, origin: 0, path: '/t/order', params: {}, headers: {}, data: Buffer.from('echo me'), binary: false, code: 0, reason: '' });
  assert.equal(result.out.length, 1);
  const { frame } = result.out[0]!;
  assert.deepEqual(Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength), Buffer.concat([Buffer.from([0x81, 7]), Buffer.from('echo me')]));
  assert.equal(frame.buffer.byteLength, frame.byteLength, 'not a view of a larger (pooled) buffer');
});

test('the messages of a BATCH reach the service each in a buffer of its own, in order', async (t) => {
  const router = await FakeRouter.bind();
  t.after(() => router.close());
  const front = new LinkFront({ endpoint: router.spec, credit: 8, threads: 1, name: 'own-bytes', heartbeatMs: 60_000, log: pino({ level: 'silent' }) });
  const got: Buffer[] = [];
  let gotAll: () => void = () => {};
  const allThree = new Promise<void>((resolve) => (gotAll = resolve));
  front.connect({
    onMessage: (frame) => {
      got.push(frame);
      if (got.length === 3) gotAll();
    },
    onLost: () => {},
  });
  t.after(() => front.close());
  const ready = await router.next('READY', 'READY');
  await router.send(ready.id, { command: 'HEARTBEAT' });
  await router.send(ready.id, { command: 'FEATURES', features: ['batch'] });
  await router.next('FEATURES', 'FEATURES answering the offer');
  const messages = [request(1, '/a'), request(2, '/b'), request(3, '/c')];
  await router.sendRaw(ready.id, [encodeBatch(messages.map((m) => encodeLink({ command: 'REQUEST', message: m })[0]!))]);
  await deadline(allThree, 'three REQUESTs delivered');
  assert.deepEqual(got, messages);
  for (const frame of got) assert.equal(frame.buffer.byteLength, frame.byteLength, 'its own bytes, not a view of the batch');
});
