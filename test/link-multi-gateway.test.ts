// A service joined to several gateways (workers/multi-link-front.ts), in this process, against
// ROUTERs the test drives by hand: each gateway gets its own READY with an equal share of the
// credit, connection ids are kept apart per gateway (the same id and sender from two gateways
// are two connections), each reply goes back where its request came from, a lost gateway
// abandons only its own requests, and a reloaded list joins and leaves gateways without
// touching the requests in flight on the kept ones. Then the CLI: --connect twice and
// --connect-file with SIGHUP, against two real gateways.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Service } from '../workers/service.js';
import { gatewayShare, parseGatewayList } from '../workers/gateway-list.js';
import { encodeRequest } from '../protocol/m2-request.js';
import { parseReply } from '../protocol/m2-reply.js';
import { get, logCapture, tempTree, type LogCapture } from './helpers/gateway.js';
import { fixtureRoutes, parseHttp, ROOT } from './helpers/service.js';
import { FakeRouter, linkProbes, isMsg, spawnCli, startLinkGateway, type FromPeer } from './helpers/link.js';

const ROUTES = pathToFileURL(fixtureRoutes('link-probes.mjs')).href;
// The demo routes as built (dist/: npm run build first): WS /svc/chat is a room.
const DEMO = pathToFileURL(join(ROOT, 'dist', 'workers', 'demo-routes.js')).href;
// Both fake gateways use the same sender, as two gateways loaded from one mongrel2.conf do.
const SENDER = '6c1f0e2a-0000-4000-8000-0000000front';

const { probes, release, probe } = linkProbes();

type T = { after(fn: () => unknown): void };

function request(connId: number, path: string, query = ''): Buffer {
  const headers = { PATH: path, METHOD: 'GET', VERSION: 'HTTP/1.1', URI: query ? `${path}?${query}` : path, ...(query ? { QUERY: query } : {}), PATTERN: '/', host: 'localhost' };
  return encodeRequest({ sender: SENDER, connId, path, headers, body: '' }, 'json');
}

async function service(t: T, options: { connect?: string[]; connectFile?: string; credit: number; workers?: number }): Promise<{ svc: Service; log: LogCapture }> {
  const log = logCapture();
  const svc = new Service({ ...options, routesModule: ROUTES, workers: options.workers ?? 1, heartbeatMs: 60_000, senderId: 'multi', drainTimeoutMs: 5000, logger: log.logger });
  await svc.start();
  t.after(() => svc.close());
  return { svc, log };
}

async function router(t: T): Promise<FakeRouter> {
  const r = await FakeRouter.bind();
  t.after(() => r.close());
  return r;
}

/** Answers the service's READY (from index `from`) as a gateway does; returns it. */
async function register(r: FakeRouter, from = 0): Promise<FromPeer & { credit: number }> {
  const ready = await r.next('READY', `READY on ${r.spec}`, from);
  await r.send(ready.id, { command: 'HEARTBEAT' });
  return { ...ready, credit: (ready.msg as { credit: number }).credit };
}

/** The REPLYs `r` got for `connId`, with their HTTP status (0: the close message) and credit. */
function replies(r: FakeRouter, connId: number): Array<{ status: number; body: string; credit: number }> {
  const out: Array<{ status: number; body: string; credit: number }> = [];
  for (const m of r.inbox.items) {
    if (m.msg?.command !== 'REPLY') continue;
    const reply = parseReply(m.msg.message);
    if (!reply.ids.includes(connId)) continue;
    const http = reply.body.length === 0 ? { status: 0, body: '' } : parseHttp(reply.body);
    out.push({ status: http.status, body: http.body, credit: m.msg.credit });
  }
  return out;
}

function creditBack(r: FakeRouter, from = 0): number {
  let n = 0;
  for (const m of r.inbox.items.slice(from)) if (m.msg?.command === 'REPLY' || m.msg?.command === 'CREDIT') n += m.msg.credit;
  return n;
}

test('the credit split: an equal share per gateway, never below one per worker thread', () => {
  assert.equal(gatewayShare(64, 2, 1), 64);
  assert.equal(gatewayShare(64, 2, 2), 32);
  assert.equal(gatewayShare(64, 2, 3), 22);
  assert.equal(gatewayShare(4, 4, 3), 4);
  assert.deepEqual(parseGatewayList('# gateways\ntcp://10.0.0.1:9997, tcp://10.0.0.2:9997\n\n  tcp://10.0.0.1:9997 # again\n'), ['tcp://10.0.0.1:9997', 'tcp://10.0.0.2:9997']);
});

test('two gateways: a READY each with half the credit; the same connection id from both is two connections, each answered where it came from', async (t) => {
  const [a, b] = [await router(t), await router(t)];
  await service(t, { connect: [a.spec, b.spec], credit: 6, workers: 2 });
  const [ra, rb] = [await register(a), await register(b)];
  assert.equal(ra.credit, 3);
  assert.equal(rb.credit, 3);
  // Held on both, same sender and id: one connection each, not one pipelined connection.
  await a.send(ra.id, { command: 'REQUEST', message: request(7, '/l/hold', 'tag=on-a') });
  await b.send(rb.id, { command: 'REQUEST', message: request(7, '/l/hold', 'tag=on-b') });
  await probe('started', 'on-a');
  await probe('started', 'on-b');
  release('on-b');
  await b.inbox.waitFor((m) => m.msg?.command === 'REPLY', 'the reply on b');
  release('on-a');
  await a.inbox.waitFor((m) => m.msg?.command === 'REPLY', 'the reply on a');
  assert.deepEqual(replies(a, 7), [{ status: 200, body: 'released on-a', credit: 1 }]);
  assert.deepEqual(replies(b, 7), [{ status: 200, body: 'released on-b', credit: 1 }]);
});

test('a lost gateway abandons only its own requests: the other one still gets its answer', async (t) => {
  const [a, b] = [await router(t), await router(t)];
  const { log } = await service(t, { connect: [a.spec, b.spec], credit: 4, workers: 2 });
  const [ra, rb] = [await register(a), await register(b)];
  await a.send(ra.id, { command: 'REQUEST', message: request(1, '/l/hold', 'tag=lost-a') });
  await b.send(rb.id, { command: 'REQUEST', message: request(1, '/l/hold', 'tag=kept-b') });
  await probe('started', 'lost-a');
  await probe('started', 'kept-b');
  const from = log.lines.length;
  await a.send(ra.id, { command: 'BYE' });
  await probe('aborted', 'lost-a');
  await log.waitFor((l) => l.msg === 'the front went away: the requests it sent are forgotten' && l.abandoned === 1, 'the loss logged', from);
  assert.equal(probes.count((p) => p.event === 'aborted' && p.tag === 'kept-b'), 0, "b's request is not aborted");
  release('kept-b');
  await b.inbox.waitFor((m) => m.msg?.command === 'REPLY', 'the reply on b');
  assert.deepEqual(replies(b, 1), [{ status: 200, body: 'released kept-b', credit: 1 }]);
  assert.deepEqual(replies(a, 1), [], 'nothing for the lost gateway');
  // a is joined again (a new READY), as with one gateway.
  await register(a, a.inbox.items.indexOf(ra) + 1);
});

test('a reloaded list joins a new gateway, lowers the kept one to its share by withholding credit, and leaves a removed one after its requests are answered', async (t) => {
  const [a, b] = [await router(t), await router(t)];
  const file = join(tempTree({}, 'm2gate-gwlist-'), 'gateways');
  writeFileSync(file, `${a.spec}\n`);
  const { svc } = await service(t, { connectFile: file, credit: 4 });
  const ra = await register(a);
  assert.equal(ra.credit, 4, 'alone, a gateway gets all the credit');

  // A request held on a across the reload: it must be answered, with its credit kept back.
  await a.send(ra.id, { command: 'REQUEST', message: request(1, '/l/hold', 'tag=across') });
  await probe('started', 'across');
  writeFileSync(file, `# two now\n${a.spec}\n${b.spec}\n`);
  assert.deepEqual(svc.reloadGateways(), [a.spec, b.spec]);
  const rb = await register(b);
  assert.equal(rb.credit, 2, 'the new gateway registers with its share');
  const fromA = a.inbox.items.length;
  release('across');
  await a.inbox.waitFor((m) => m.msg?.command === 'REPLY', 'the held reply on a', fromA);
  assert.deepEqual(replies(a, 1), [{ status: 200, body: 'released across', credit: 0 }], 'a holds 2 of its announced 4 back: its share is 2 now');
  for (const id of [2, 3]) await a.send(ra.id, { command: 'REQUEST', message: request(id, '/l/hello') });
  await a.inbox.when(() => (replies(a, 3).length > 0 ? true : undefined), 'replies 2 and 3');
  assert.equal(creditBack(a, fromA), 1, 'one more withheld (2 in all), then credit flows again');

  // b, holding a request, is removed: it gets BYE, its request is still answered, then its link closes.
  await b.send(rb.id, { command: 'REQUEST', message: request(9, '/l/hold', 'tag=on-removed') });
  await probe('started', 'on-removed');
  const fromB = b.inbox.items.length;
  writeFileSync(file, `${a.spec}\n`);
  assert.deepEqual(svc.reloadGateways(), [a.spec]);
  await b.next('BYE', 'BYE to the removed gateway', fromB);
  const released = a.inbox.items.length;
  await a.next('CREDIT', 'the withheld credit given back to a (its share is 4 again)', released);
  assert.equal(creditBack(a, released), 2);
  release('on-removed');
  await b.inbox.waitFor((m) => m.msg?.command === 'REPLY', 'the reply on the removed gateway', fromB);
  assert.deepEqual(replies(b, 9), [{ status: 200, body: 'released on-removed', credit: 1 }]);
});

/** The text frames in the REPLYs `r` got for `connId`, in order (WebSocket routes send raw frames). */
function wsTexts(r: FakeRouter, connId: number): string[] {
  const out: string[] = [];
  for (const m of r.inbox.items) {
    if (m.msg?.command !== 'REPLY') continue;
    const reply = parseReply(m.msg.message);
    // A text frame of a short message: 0x81, its length, the text.
    if (reply.ids.includes(connId) && reply.body[0] === 0x81) out.push(reply.body.subarray(2).toString());
  }
  return out;
}

function handshake(connId: number): Buffer {
  const headers = { PATH: '/svc/chat', METHOD: 'WEBSOCKET_HANDSHAKE', VERSION: 'HTTP/1.1', URI: '/svc/chat', PATTERN: '/svc/', host: 'localhost', upgrade: 'websocket', connection: 'Upgrade' };
  return encodeRequest({ sender: SENDER, connId, path: '/svc/chat', headers, body: 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=' }, 'json');
}

test("a WebSocket room spans the service's gateways; a gateway removed from the list ends its connections there, and the room hears them leave", async (t) => {
  const [a, b] = [await router(t), await router(t)];
  const file = join(tempTree({}, 'm2gate-gwlist-'), 'gateways');
  writeFileSync(file, `${a.spec}\n${b.spec}\n`);
  const svc = new Service({ connectFile: file, credit: 4, routesModule: DEMO, workers: 1, heartbeatMs: 60_000, senderId: 'multi', drainTimeoutMs: 5000, logger: logCapture().logger });
  await svc.start();
  t.after(() => svc.close());
  const [ra, rb] = [await register(a), await register(b)];
  // Connection 5 on a, then connection 6 on b: the demo chat says "#6 joined" to a's connection too.
  await a.send(ra.id, { command: 'REQUEST', message: handshake(5) });
  await a.inbox.when(() => (wsTexts(a, 5).includes('welcome #5') ? true : undefined), "a's welcome");
  await b.send(rb.id, { command: 'REQUEST', message: handshake(6) });
  await a.inbox.when(() => (wsTexts(a, 5).includes('#6 joined') ? true : undefined), "b's join heard on a");
  const heads = b.inbox.items.flatMap((m) => (m.msg?.command === 'REPLY' && parseReply(m.msg.message).body.subarray(0, 12).toString() === 'HTTP/1.1 101' ? [m.msg.credit] : []));
  assert.deepEqual(heads, [1], "the handshake's 101 goes to b, with its credit");
  // b leaves the list: it gets BYE, and its connection ends with its close handler.
  const fromB = b.inbox.items.length;
  writeFileSync(file, `${a.spec}\n`);
  svc.reloadGateways();
  await b.next('BYE', 'BYE to the removed gateway', fromB);
  await a.inbox.when(() => (wsTexts(a, 5).includes('#6 left') ? true : undefined), "b's connection leaving, heard on a");
  assert.deepEqual(wsTexts(b, 6).filter((t) => t.includes('left')), [], 'nothing more goes to the removed gateway');
});

test('a gateway list that does not load fails the start, naming the file', async () => {
  const file = join(tempTree({}, 'm2gate-gwlist-'), 'missing');
  const svc = new Service({ connectFile: file, routesModule: ROUTES, workers: 1, logger: logCapture().logger });
  await assert.rejects(svc.start(), (err: Error) => err.message.includes(`cannot read the gateway list ${file}`));
  const empty = join(tempTree({ empty: '# none yet\n' }, 'm2gate-gwlist-'), 'empty');
  const svc2 = new Service({ connectFile: empty, routesModule: ROUTES, workers: 1, logger: logCapture().logger });
  await assert.rejects(svc2.start(), /names no endpoint/);
});

test('CLI: --connect with --connect-file serves both gateways; SIGHUP joins a third added to the file; a broken list on SIGHUP keeps the current one', async (t) => {
  const rigs = [await startLinkGateway(), await startLinkGateway(), await startLinkGateway()];
  t.after(() => Promise.all(rigs.map((r) => r.close())));
  const file = join(tempTree({}, 'm2gate-gwlist-'), 'gateways');
  writeFileSync(file, `${rigs[1]!.spec}\n`);
  const svc = spawnCli(['service', '--connect', rigs[0]!.spec, '--connect-file', file, '--workers', '1']);
  t.after(() => svc.stop());
  await Promise.all(rigs.slice(0, 2).map((r) => r.pool.whenPeer()));
  for (const r of rigs.slice(0, 2)) {
    const res = await get(r.port, '/svc/hello');
    assert.equal(res.status, 200);
  }
  assert.equal(rigs[2]!.pool.services, 0);

  writeFileSync(file, `${rigs[1]!.spec}\n${rigs[2]!.spec}\n`);
  const from = svc.log.items.length;
  svc.child.kill('SIGHUP');
  const reloaded = await svc.waitFor(isMsg('gateway list reloaded'), 'gateway list reloaded', from);
  assert.deepEqual(reloaded.added, [rigs[2]!.spec]);
  await rigs[2]!.pool.whenPeer();
  assert.equal((await get(rigs[2]!.port, '/svc/hello')).status, 200);

  writeFileSync(file, 'not-an-endpoint\n');
  const from2 = svc.log.items.length;
  svc.child.kill('SIGHUP');
  const refused = await svc.waitFor((l) => l.msg === 'SIGHUP: the gateway list was not reloaded (the current one is kept)', 'refused', from2);
  assert.match(String(refused.err), /invalid endpoint 'not-an-endpoint'/);
  for (const r of rigs) assert.equal((await get(r.port, '/svc/hello')).status, 200);
  assert.equal((await svc.stop()).code, 0);
});

test('CLI: M2GATE_CONNECT with a comma-separated list joins every gateway on it', async (t) => {
  const rigs = [await startLinkGateway(), await startLinkGateway()];
  t.after(() => Promise.all(rigs.map((r) => r.close())));
  const svc = spawnCli(['service', '--workers', '1'], { M2GATE_CONNECT: rigs.map((r) => r.spec).join(',') });
  t.after(() => svc.stop());
  await Promise.all(rigs.map((r) => r.pool.whenPeer()));
  for (const r of rigs) assert.equal((await get(r.port, '/svc/hello')).status, 200);
  assert.equal((await svc.stop()).code, 0);
});
