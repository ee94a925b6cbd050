// workers/ws-routes.ts with a service joined to two gateways (multi-link-front.ts): connection ids
// are unique only per gateway, so one sender and id on two gateways are two connections, each
// answered on its own gateway; a route broadcast reaches the route's connections on both.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { pino } from 'pino';
import { WsRoutes } from '../workers/ws-routes.js';
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

test('one sender and connection id on two gateways are two connections; a broadcast reaches both gateways', async () => {
  const sent: Array<{ origin: number; ids: number[]; body: string }> = [];
  const ran: WsTask[] = [];
  let pending = 0;
  let settle: (() => void) | undefined;
  const routes = new WsRoutes({
    routes: compileMethodRoutes([{ pattern: 'WS /chat' }]),
    wsRoutes: new Map([[0, { index: 0, open: false, message: true, close: false, timeoutMs: undefined }]]),
    timeoutMs: 5000,
    channel: `test-${randomUUID()}`,
    log: pino({ level: 'silent' }),
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
