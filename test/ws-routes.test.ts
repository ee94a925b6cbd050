// workers/ws-routes.ts without threads or sockets: a service joined to two gateways
// (multi-link-front.ts; connection ids are unique only per gateway, so one sender and id on two
// gateways are two connections, each answered on its own gateway, and a route broadcast reaches
// the route's connections on both), a lost gateway's connections, and a client that floods.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { pino } from 'pino';
import { MAX_QUEUED_MESSAGES, WsRoutes, type WsRoutesDeps } from '../workers/ws-routes.js';
import type { WsResult, WsTask } from '../workers/task.js';
import { compileMethodRoutes } from '../protocol/method-router.js';
import { encodeRequest, parseRequest } from '../protocol/m2-request.js';
import { parseReply } from '../protocol/m2-reply.js';
import { encodeFrame, OPCODES } from '../protocol/ws-frame.js';

const S = 'feed0000-2222-4000-8000-00000000ws02';

function message(method: string, connId: number, body: string, flags?: string) {
  const headers: Record<string, string> = { METHOD: method, PATH: '/chat', PATTERN: '/chat' };
  if (flags !== undefined) headers.FLAGS = flags;
  return parseRequest(encodeRequest({ sender: S, connId, path: '/chat', headers, body }, 'json'));
}

/** WsRoutes with the one route `WS /chat` and the handlers it `has`; the test brings send, refund and run. */
function chatRoutes(has: { open: boolean; message: boolean; close: boolean }, timeoutMs: number, io: Pick<WsRoutesDeps, 'send' | 'refund' | 'run'>): WsRoutes {
  return new WsRoutes({
    routes: compileMethodRoutes([{ pattern: 'WS /chat' }]),
    wsRoutes: new Map([[0, { index: 0, ...has, timeoutMs: undefined }]]),
    timeoutMs,
    channel: `test-${randomUUID()}`,
    log: pino({ level: 'silent' }),
    ...io,
  });
}

test('one sender and connection id on two gateways are two connections; a broadcast reaches both gateways', async () => {
  const sent: Array<{ origin: number; ids: number[]; body: string }> = [];
  const ran: WsTask[] = [];
  let pending = 0;
  let settle: (() => void) | undefined;
  const routes = chatRoutes({ open: false, message: true, close: false }, 5000, {
    send: (m, _credit, origin) => {
      const r = parseReply(m);
      sent.push({ origin, ids: r.ids, body: r.body.toString('latin1') });
    },
    refund: () => {},
    run: (task): Promise<WsResult> => {
      ran.push(task);
      pending++;
      // The handler: a text message is broadcast to the route, and "me" goes back to itself.
      const text = Buffer.from(task.data).toString();
      const out = text === 'me' ? [{ to: 'self' as const, frame: encodeFrame(OPCODES.TEXT, text) }] : [{ to: 'route' as const, frame: encodeFrame(OPCODES.TEXT, text) }];
      return Promise.resolve({ accepted: true, out, thread: 1 }).finally(() => {
        if (--pending === 0) settle?.();
      });
    },
  });
  // The tasks' results are applied in the microtasks after they settle: a macrotask later all is sent.
  const idle = async (): Promise<void> => {
    if (pending > 0) await new Promise<void>((r) => (settle = r));
    await new Promise((r) => setImmediate(r));
  };
  try {
    // Connection 5 on gateway 1 and connection 5 on gateway 2, plus 6 on gateway 2.
    routes.onMessage(message('WEBSOCKET_HANDSHAKE', 5, 'acc1'), true, 1);
    routes.onMessage(message('WEBSOCKET_HANDSHAKE', 5, 'acc2'), true, 2);
    routes.onMessage(message('WEBSOCKET_HANDSHAKE', 6, 'acc3'), true, 2);
    assert.equal(routes.size, 3, 'three connections, not two');
    assert.deepEqual(sent.map((s) => [s.origin, s.ids, s.body.includes('101 Switching')]), [[1, [5], true], [2, [5], true], [2, [6], true]]);
    sent.length = 0;

    routes.onMessage(message('WEBSOCKET', 5, 'hi', '0x81'), false, 1);
    await idle();
    assert.equal(ran[0]!.origin, 1);
    // One multi-id reply per gateway: gateway 1's connection 5, gateway 2's 5 and 6.
    const byOrigin = new Map(sent.map((s) => [s.origin, s.ids.slice().sort()]));
    assert.deepEqual([...byOrigin.entries()].sort(), [[1, [5]], [2, [5, 6]]]);
    sent.length = 0;

    routes.onMessage(message('WEBSOCKET', 5, 'me', '0x81'), false, 2);
    await idle();
    assert.deepEqual(sent.map((s) => [s.origin, s.ids]), [[2, [5]]], "a send to itself goes to its own gateway's connection");
    sent.length = 0;

    // Gateway 2's client 5 goes away: gateway 1's connection 5 stays open.
    routes.gone(S, 5, 2);
    await idle();
    assert.equal(routes.size, 2);
    routes.onMessage(message('WEBSOCKET', 6, 'all', '0x81'), false, 2);
    await idle();
    assert.deepEqual([...new Map(sent.map((s) => [s.origin, s.ids])).entries()].sort(), [[1, [5]], [2, [6]]]);
  } finally {
    routes.close();
  }
});

/** WsRoutes with a route whose handlers run only when the test says (`release`). */
function heldRig() {
  const sent: Array<{ origin: number; ids: number[]; body: Buffer; credit: number }> = [];
  const refunds: Array<{ origin: number; credit: number }> = [];
  const ran: WsTask[] = [];
  const waiting: Array<() => void> = [];
  const routes = chatRoutes({ open: true, message: true, close: true }, 60_000, {
    send: (m, credit, origin) => {
      const r = parseReply(m);
      sent.push({ origin, ids: r.ids, body: Buffer.from(r.body), credit });
    },
    refund: (credit, origin) => refunds.push({ origin, credit }),
    run: (task): Promise<WsResult> => {
      ran.push(task);
      return new Promise((resolve) => waiting.push(() => resolve({ accepted: true, out: [], thread: 1 })));
    },
  });
  /** Lets every handler started so far finish, then waits until their results are applied. */
  const release = async (): Promise<void> => {
    for (const go of waiting.splice(0)) go();
    await new Promise((r) => setImmediate(r));
  };
  return { routes, sent, refunds, ran, release };
}

test("a lost gateway's connections end with 1006 and their close handlers, with nothing sent to it; the other gateway's stay", async () => {
  const { routes, sent, refunds, ran, release } = heldRig();
  try {
    routes.onMessage(message('WEBSOCKET_HANDSHAKE', 1, 'a'), true, 1);
    routes.onMessage(message('WEBSOCKET_HANDSHAKE', 2, 'b'), true, 2);
    await release();
    assert.deepEqual(sent.map((s) => [s.origin, s.credit, s.body.toString('latin1').startsWith('HTTP/1.1 101')]), [[1, 1, true], [2, 1, true]]);
    // Gateway 1 has a second handshake whose open is still running when its link goes.
    routes.onMessage(message('WEBSOCKET_HANDSHAKE', 3, 'c'), true, 1);
    sent.length = 0;
    routes.lost(1);
    await release();
    await release();
    const closes = ran.filter((t) => t.event === 'close');
    assert.deepEqual(closes.map((t) => [t.origin, t.connId, t.code]).sort(), [[1, 1, 1006], [1, 3, 1006]]);
    assert.deepEqual(sent, [], 'nothing goes to the lost gateway: a new link there reuses the ids');
    assert.deepEqual(refunds, [], "the pending handshake's credit died with its link");
    assert.equal(routes.size, 1, "gateway 2's connection stays");
    routes.onMessage(message('WEBSOCKET', 2, 'still', '0x81'), false, 2);
    assert.equal(ran.at(-1)!.origin, 2);
    assert.equal(Buffer.from(ran.at(-1)!.data).toString(), 'still');
  } finally {
    routes.close();
  }
});

test(`a client with ${MAX_QUEUED_MESSAGES} messages waiting for its handler is closed with 1013 once more come`, async () => {
  const { routes, sent, ran, release } = heldRig();
  try {
    routes.onMessage(message('WEBSOCKET_HANDSHAKE', 9, 'k'), true, 0);
    await release();
    sent.length = 0;
    // The first message runs (and is held); the rest wait, up to the bound.
    for (let i = 0; i <= MAX_QUEUED_MESSAGES; i++) routes.onMessage(message('WEBSOCKET', 9, `m${i}`, '0x81'), false, 0);
    assert.equal(sent.length, 0, 'at the bound nothing is refused yet');
    routes.onMessage(message('WEBSOCKET', 9, 'one too many', '0x81'), false, 0);
    assert.equal(sent.length, 2);
    assert.equal(sent[0]!.body.readUInt16BE(2), 1013, 'a close frame with 1013');
    assert.equal(sent[0]!.body[0], 0x88);
    assert.equal(sent[1]!.body.length, 0, 'then the close message');
    assert.equal(routes.stats.overrun, 1);
    await release();
    await release();
    // The waiting messages were dropped: the close handler runs next, no other message.
    assert.deepEqual(ran.slice(1).map((t) => [t.event, t.code]), [['message', 0], ['close', 1013]]);
  } finally {
    routes.close();
  }
});

test('shutdown: open connections get close 1001, a handshake whose open still runs gets 503 with its credit, and what open returns later is dropped', async () => {
  const { routes, sent, refunds, release } = heldRig();
  routes.onMessage(message('WEBSOCKET_HANDSHAKE', 1, 'a'), true, 0);
  await release();
  routes.onMessage(message('WEBSOCKET_HANDSHAKE', 2, 'b'), true, 0);
  sent.length = 0;
  routes.close();
  const byId = (id: number) => sent.filter((s) => s.ids[0] === id);
  assert.deepEqual(byId(1).map((s) => [s.body.length > 0 ? s.body.readUInt16BE(2) : 'close', s.credit]), [[1001, 0], ['close', 0]]);
  assert.deepEqual(byId(2).map((s) => [s.body.toString('latin1').split('\r\n')[0] || 'close', s.credit]), [['HTTP/1.1 503 Service Unavailable', 1], ['close', 0]]);
  const before = sent.length;
  await release();
  assert.equal(sent.length, before, 'the late 101 is not sent');
  assert.deepEqual(refunds, [], 'the credit went back once, with the 503');
});
