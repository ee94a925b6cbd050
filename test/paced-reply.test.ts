// workers/paced-reply.ts without sockets: what a paced connection sends for
// the credits it has, what waits, and what becomes of link credit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { PacedFront } from '../workers/paced-reply.js';
import type { Front } from '../workers/front.js';
import { encodeClose, encodeReply, parseReply } from '../protocol/m2-reply.js';
import { DOWNLOAD_CREDITS, PACED_MESSAGE_BYTES } from '../protocol/download-credits.js';

const S = 'c0ffee00-0000-4000-8000-00000000000a';

function fakeFront(): Front & { sent: Array<{ ids: number[]; body: Buffer; credit: number }>; given: number } {
  return {
    sent: [],
    given: 0,
    connect() {},
    send(message: Buffer, credit: number) {
      const r = parseReply(message);
      this.sent.push({ ids: r.ids, body: Buffer.from(r.body), credit });
    },
    giveBack(credit: number) {
      this.given += credit;
    },
    stopTaking() {},
    close: () => Promise.resolve(),
    describe: {},
  };
}

const body = (n: number): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => i % 251));

test('a paced reply goes out within the credits, the rest as credits come back; link credit rides on the last piece', () => {
  const inner = fakeFront();
  const paced = new PacedFront(inner, { stallMs: 60_000, log: pino({ level: 'silent' }) });
  paced.announce(S, 7, DOWNLOAD_CREDITS);
  const reply = body(300 * 1024);
  paced.send(encodeReply(S, 7, reply), 1);
  // 100 KiB of credits: two messages of half of it, nothing more.
  assert.deepEqual(inner.sent.map((m) => m.body.length), [PACED_MESSAGE_BYTES, PACED_MESSAGE_BYTES]);
  assert.ok(inner.sent.every((m) => m.credit === 0 && m.ids.length === 1 && m.ids[0] === 7));
  // A close queued behind it waits too.
  paced.send(encodeClose(S, 7), 0);
  assert.equal(inner.sent.length, 2);
  // A credit too small to be worth a message is kept until more comes.
  assert.equal(paced.grant(S, 7, 100), true);
  assert.equal(inner.sent.length, 2);
  paced.grant(S, 7, PACED_MESSAGE_BYTES - 100);
  assert.equal(inner.sent.length, 3);
  paced.grant(S, 7, 2 * PACED_MESSAGE_BYTES);
  paced.grant(S, 7, 2 * PACED_MESSAGE_BYTES);
  const data = inner.sent.filter((m) => m.body.length > 0);
  assert.ok(Buffer.concat(data.map((m) => m.body)).equals(reply), 'the pieces are the reply, in order');
  assert.deepEqual(data.map((m) => m.credit), [0, 0, 0, 0, 0, 1]);
  const last = inner.sent.at(-1)!;
  assert.equal(last.body.length, 0, 'the close message comes last');
  assert.equal(paced.paced, 0, 'the closed connection is forgotten');
  assert.equal(paced.grant(S, 7, 10), false);
});

test('a connection without DOWNLOAD_CREDITS, or a reply to several ids, goes out whole at once', () => {
  const inner = fakeFront();
  const paced = new PacedFront(inner, { stallMs: 60_000, log: pino({ level: 'silent' }) });
  paced.send(encodeReply(S, 1, body(500 * 1024)), 1);
  paced.announce(S, 2, DOWNLOAD_CREDITS);
  paced.send(encodeReply(S, [2, 3], body(200 * 1024)), 0);
  paced.send(encodeReply(S, 3, body(200 * 1024)), 1);
  assert.deepEqual(inner.sent.map((m) => m.body.length), [500 * 1024, 200 * 1024, 200 * 1024]);
});

test('a client gone, or no credits for stallMs, drops what waits and gives its link credit back; the stall closes the connection', async () => {
  const inner = fakeFront();
  let warned: (line: { msg: string; connId: number }) => void = () => {};
  const warning = new Promise<{ msg: string; connId: number }>((resolve) => (warned = resolve));
  const log = pino({ level: 'warn' }, { write: (text: string) => warned(JSON.parse(text) as { msg: string; connId: number }) });
  const paced = new PacedFront(inner, { stallMs: 20, log });
  paced.announce(S, 4, DOWNLOAD_CREDITS);
  paced.send(encodeReply(S, 4, body(400 * 1024)), 1);
  paced.send(encodeReply(S, 4, body(10)), 1);
  paced.forget(S, 4);
  assert.equal(inner.given, 2);
  assert.equal(paced.paced, 0);

  paced.announce(S, 5, DOWNLOAD_CREDITS);
  paced.send(encodeReply(S, 5, body(400 * 1024)), 1);
  const sentBefore = inner.sent.length;
  const line = await warning;
  assert.match(line.msg, /^no download credits came/);
  assert.equal(line.connId, 5);
  assert.equal(paced.stalled, 1);
  assert.equal(inner.given, 3);
  assert.equal(inner.sent.length, sentBefore + 1);
  assert.deepEqual(inner.sent.at(-1), { ids: [5], body: Buffer.alloc(0), credit: 0 });
});

test('with several gateways the same sender and connection id are two connections: each paced, answered and forgotten on its own gateway', () => {
  const sent: Array<{ origin: number | undefined; bytes: number }> = [];
  const given: Array<{ origin: number | undefined; credit: number }> = [];
  let events: Parameters<Front['connect']>[0] | undefined;
  const inner: Front = {
    connect(e) {
      events = e;
    },
    send(message, _credit, origin) {
      sent.push({ origin, bytes: parseReply(message).body.length });
    },
    giveBack(credit, origin) {
      given.push({ origin, credit });
    },
    stopTaking() {},
    close: () => Promise.resolve(),
    describe: {},
  };
  const paced = new PacedFront(inner, { stallMs: 60_000, log: pino({ level: 'silent' }) });
  const lost: Array<number | undefined> = [];
  paced.connect({ onMessage() {}, onLost: (origin) => lost.push(origin) });
  // Gateway 1 paces connection 7; gateway 2's connection 7 announced nothing.
  paced.announce(S, 7, DOWNLOAD_CREDITS, 1);
  paced.send(encodeReply(S, 7, body(300 * 1024)), 1, 2);
  assert.deepEqual(sent, [{ origin: 2, bytes: 300 * 1024 }], "gateway 2's reply goes whole, to gateway 2");
  paced.send(encodeReply(S, 7, body(300 * 1024)), 1, 1);
  assert.deepEqual(sent.slice(1), [{ origin: 1, bytes: PACED_MESSAGE_BYTES }, { origin: 1, bytes: PACED_MESSAGE_BYTES }]);
  assert.equal(paced.grant(S, 7, 1000, 2), false, "credits from gateway 2 are not gateway 1's");
  // Losing gateway 2 leaves gateway 1's window; losing gateway 1 gives its held link credit back there.
  events!.onLost(2);
  assert.equal(paced.paced, 1);
  events!.onLost(1);
  assert.equal(paced.paced, 0);
  assert.deepEqual(given, [{ origin: 1, credit: 1 }]);
  assert.deepEqual(lost, [2, 1]);
});
