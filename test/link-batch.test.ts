// BATCH and FEATURES on the m2gate link (protocol/m2gate-link.md, "Batches"), from both ends:
// the in-process gateway against a hand-driven DEALER, and a real Service against a hand-driven
// ROUTER. Batches are offered, never assumed: a peer that does not answer FEATURES batch keeps
// getting every message alone. A batch carries what one turn wrote, in order, and one bad
// message in it costs only itself.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeReply } from '../protocol/m2-reply.js';
import { encodeBatch, encodeLink, type LinkMessage } from '../protocol/link-frames.js';
import { parseHttp } from './helpers/service.js';
import { FakeService, linkGet, serviceOnFakeRouter, startLinkGateway, type LinkRig } from './helpers/link.js';

type T = { after(fn: () => unknown): void };

const ok = (body: string): string => `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
const frame = (m: LinkMessage): Buffer => encodeLink(m)[0]!;
const pipelined = (paths: string[]): string => paths.map((p) => `GET ${p} HTTP/1.1\r\nHost: localhost\r\n\r\n`).join('');

async function rig(t: T): Promise<LinkRig> {
  // Long heartbeats: no HEARTBEAT lands between the messages a test counts.
  const r = await startLinkGateway({ link: { heartbeatMs: 60_000, liveness: 3 } });
  t.after(() => r.close());
  return r;
}

async function fake(t: T, r: LinkRig, credit = 16): Promise<FakeService> {
  const s = await FakeService.connect(r.spec);
  t.after(() => s.close());
  await s.register(credit);
  return s;
}

/**
 * The gateway has read everything `s` sent so far: a REPLY for an id it never sent is answered
 * with DISCONNECT (§4.6), and the gateway reads a peer's messages in order.
 */
async function readSoFar(s: FakeService, probeId: number): Promise<void> {
  const from = s.inbox.items.length;
  await s.send({ command: 'REPLY', credit: 0, message: encodeReply(s.sendIdent, probeId, ok('probe')) });
  await s.inbox.waitFor((g) => g.msg.command === 'DISCONNECT' && g.req?.connId === probeId, 'DISCONNECT answering the probe', from);
}

test('gateway: FEATURES batch follows the registration; a service that does not answer it gets every REQUEST alone', async (t) => {
  const r = await rig(t);
  const s = await fake(t, r);
  const offer = await s.inbox.waitFor((g) => g.msg.command === 'FEATURES', 'FEATURES from the gateway');
  assert.deepEqual(offer.msg, { command: 'FEATURES', features: ['batch'] });
  const c = await r.client();
  const paths = ['/svc/a', '/svc/b', '/svc/c', '/svc/d'];
  c.write(pipelined(paths));
  const reqs = [];
  for (let i = 0; i < paths.length; i++) reqs.push(await s.request());
  assert.deepEqual(reqs.map((q) => q.path), paths);
  assert.equal(s.batches.n, 0, 'no BATCH to a service that never said FEATURES batch');
  for (const q of reqs) await s.reply(q.connId, ok(q.path));
  for (const p of paths) assert.equal((await c.response()).body.toString(), p);
});

test('gateway: once the service answers FEATURES batch, the REQUESTs of one turn go as one BATCH, in order; a BATCH of REPLYs reaches every client, a bad message in it costs only itself', async (t) => {
  const r = await rig(t);
  const s = await fake(t, r);
  await s.inbox.waitFor((g) => g.msg.command === 'FEATURES', 'FEATURES from the gateway');
  await s.send({ command: 'FEATURES', features: ['batch', 'something-newer'] });
  await readSoFar(s, 999_001);

  // Pipelined on one connection: node:http emits the six requests in one read, so in one turn.
  const c = await r.client();
  const paths = ['/svc/0', '/svc/1', '/svc/2', '/svc/3', '/svc/4', '/svc/5'];
  c.write(pipelined(paths));
  const got = [];
  for (let i = 0; i < paths.length; i++) got.push(await s.inbox.take((g) => g.msg.command === 'REQUEST', `REQUEST ${i}`));
  assert.deepEqual(got.map((g) => g.req!.path), paths, 'in the order the client sent them');
  assert.ok(s.batches.n >= 1, 'at least one BATCH');
  assert.equal(new Set(got.map((g) => g.batch)).size, 1, `one turn, one BATCH (batches: ${got.map((g) => g.batch).join(',')})`);
  assert.notEqual(got[0]!.batch, undefined);

  // The replies in one BATCH, with three bad messages among them: a malformed header, a READY
  // (it goes alone, never in a batch) and a nested BATCH. The rest is delivered.
  const malformedBefore = r.pool.stats.malformedLink;
  const replies = got.map((g) => frame({ command: 'REPLY', credit: 1, message: encodeReply(s.sendIdent, g.req!.connId, ok(`reply ${g.req!.path}`)) }));
  const bad = [
    Buffer.from('M2GL1 REPLY x\nnot a reply'),
    frame({ command: 'READY', credit: 99, threads: 1, name: 'in a batch' }),
    encodeBatch([frame({ command: 'HEARTBEAT' }), frame({ command: 'HEARTBEAT' })]),
  ];
  await s.sendRaw([encodeBatch([replies[0]!, bad[0]!, replies[1]!, replies[2]!, bad[1]!, replies[3]!, bad[2]!, replies[4]!, replies[5]!])]);
  for (const p of paths) {
    const res = await c.response();
    assert.equal(res.status, 200);
    assert.equal(res.body.toString(), `reply ${p}`);
  }
  assert.equal(r.pool.stats.malformedLink - malformedBefore, 3, 'each bad message counted once');
  assert.equal(r.pool.pending, 0);
  // The six credits came back with the batch: six more requests go out at once.
  assert.equal(r.pool.view().services[0]!.creditFree, 16);
  assert.equal(r.pool.services, 1, 'the READY in the batch did not register anything');
});

test('gateway: a BATCH whose framing is broken is dropped whole and counted once; the link goes on', async (t) => {
  const r = await rig(t);
  const s = await fake(t, r);
  await s.inbox.waitFor((g) => g.msg.command === 'FEATURES', 'FEATURES from the gateway');
  await s.send({ command: 'FEATURES', features: ['batch'] });
  const c = await r.client();
  c.write(pipelined(['/svc/x']));
  const q = await s.request();
  const before = r.pool.stats.malformedLink;
  const reply = frame({ command: 'REPLY', credit: 1, message: encodeReply(s.sendIdent, q.connId, ok('x')) });
  const whole = encodeBatch([reply, reply]);
  // Cut short, and a count that does not match what it holds.
  await s.sendRaw([whole.subarray(0, whole.length - 3)]);
  await s.sendRaw([Buffer.concat([Buffer.from('M2GL1 BATCH 3\n'), whole.subarray(whole.indexOf(0x0a) + 1)])]);
  await readSoFar(s, 999_002);
  assert.equal(r.pool.stats.malformedLink - before, 2);
  await s.reply(q.connId, ok('x'));
  assert.equal((await c.response()).body.toString(), 'x');
});

test('service: sends neither FEATURES nor BATCH until the gateway offers batches; then answers FEATURES batch, serves a BATCH of REQUESTs and returns each credit', async (t) => {
  const { router, log, peer: ready } = await serviceOnFakeRouter(t, 'svc-batch');

  // A gateway that does not know batches: one REQUEST, one REPLY, nothing new on the wire.
  await router.send(ready.id, { command: 'REQUEST', message: linkGet(1, '/l/hello') });
  const first = await router.next('REPLY', 'REPLY to the single REQUEST');
  assert.equal(first.msg?.command === 'REPLY' && first.msg.credit, 1);
  assert.equal(router.inbox.count((m) => m.msg?.command === 'FEATURES'), 0);
  assert.equal(router.batches.n, 0);

  await router.send(ready.id, { command: 'FEATURES', features: ['batch'] });
  const answer = await router.next('FEATURES', 'FEATURES answering the offer');
  assert.deepEqual(answer.msg, { command: 'FEATURES', features: ['batch'] });

  const from = router.inbox.items.length;
  const ids = [11, 12, 13, 14, 15];
  const items = ids.map((id) => frame({ command: 'REQUEST', message: linkGet(id, '/l/hello') }));
  // A bad message in the middle is dropped alone (it held no credit: it was no REQUEST).
  items.splice(2, 0, Buffer.from('M2GL1 REQUEST x\nnope'));
  await router.sendRaw(ready.id, [encodeBatch(items)]);
  const replies = await router.replies(ids.length, from);
  const answered = replies.map((m) => {
    const msg = m.msg as Extract<LinkMessage, { command: 'REPLY' }>;
    const text = msg.message.toString('latin1');
    const id = Number(/^\S+ \d+:(\d+),/.exec(text)![1]);
    return { id, credit: msg.credit, status: parseHttp(Buffer.from(text.slice(text.indexOf(', ') + 2), 'latin1')).status };
  });
  assert.deepEqual(answered.map((a) => a.id).sort(), ids);
  assert.ok(answered.every((a) => a.status === 200));
  assert.equal(answered.reduce((n, a) => n + a.credit, 0), ids.length, 'one credit per REQUEST, none for the bad message');
  assert.equal(log.lines.filter((l) => l.msg === 'malformed link message dropped (further ones are not logged)').length, 1);
});
