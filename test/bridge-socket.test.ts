// gateway/bridge-socket.ts without Mongrel2: with download credits, what is
// outstanding never passes the allowance and the writer waits; without, writes
// are coalesced into few messages.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { BridgeSocket } from '../gateway/bridge-socket.js';
import { DOWNLOAD_CREDITS, PACED_MESSAGE_BYTES } from '../protocol/download-credits.js';

function bridge(): { socket: BridgeSocket; sent: Buffer[]; closed: () => boolean } {
  const sent: Buffer[] = [];
  let closed = false;
  const socket = new BridgeSocket({ remoteAddress: '127.0.0.1', send: (b) => sent.push(b), close: () => (closed = true) });
  return { socket, sent, closed: () => closed };
}

const total = (list: Buffer[]): number => list.reduce((n, b) => n + b.length, 0);

test('paced: never more than the granted credits outstanding, the write acknowledged once all of it went, bytes in order', async () => {
  const { socket, sent, closed } = bridge();
  socket.startCredits(DOWNLOAD_CREDITS);
  const data = Buffer.from(Array.from({ length: 1024 * 1024 }, (_, i) => (i * 7) % 256));
  let acked = false;
  socket.write(data, () => (acked = true));
  let credited = 0;
  for (let round = 0; round < 100 && total(sent) < data.length; round++) {
    const outstanding = total(sent) - credited;
    assert.ok(outstanding <= DOWNLOAD_CREDITS, `${outstanding} bytes outstanding`);
    assert.ok(sent.every((m) => m.length <= PACED_MESSAGE_BYTES));
    assert.equal(acked, false, 'acknowledged before the bytes went');
    // Mongrel2 writes the oldest message not yet credited and says so.
    let seen = 0;
    const next = sent.find((m) => (seen += m.length) > credited)!;
    credited += next.length;
    socket.grant(next.length);
  }
  assert.ok(Buffer.concat(sent).equals(data));
  await new Promise<void>((resolve) => setImmediate(resolve));
  assert.equal(acked, true);
  socket.end();
  await once(socket, 'finish');
  assert.equal(closed(), true);
  socket.destroy();
});

test('paced: a grant beyond the announced allowance does not let more out', () => {
  const { socket, sent } = bridge();
  socket.startCredits(DOWNLOAD_CREDITS);
  socket.grant(10 * DOWNLOAD_CREDITS);
  socket.write(Buffer.alloc(4 * DOWNLOAD_CREDITS));
  assert.equal(total(sent), DOWNLOAD_CREDITS);
  socket.destroy();
});

test('unpaced: a stream of writes goes out in few messages, the bytes in order', async () => {
  const { socket, sent } = bridge();
  const pieces = Array.from({ length: 512 }, (_, i) => Buffer.alloc(64 * 1024, i % 256));
  for (const p of pieces) {
    socket.write(p);
    // A file stream hands over a chunk per event-loop turn.
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  socket.end();
  await once(socket, 'finish');
  assert.ok(Buffer.concat(sent).equals(Buffer.concat(pieces)));
  // 512 writes, 32 MiB: the first chunk at once, then coalesced up to 16 MiB a message
  // (4 messages on a quiet machine); under Mongrel2's 16-message limit in any case.
  assert.ok(sent.length < 16, `${sent.length} messages: ${sent.map((m) => m.length).join(' ')}`);
  socket.destroy();
});

test('unpaced: small replies back to back each go out at the end of their turn, never after the idle timer', async () => {
  const { socket, sent } = bridge();
  const turn = () => new Promise<void>((resolve) => setImmediate(resolve));
  // Twenty keep-alive replies in quick succession, as under a load test: each must be sent by
  // the end of the turn that wrote it (the idle timer is 10 ms: waiting for it would add that to
  // every reply).
  for (let i = 0; i < 20; i++) {
    socket.write(Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n${i % 10}`));
    await turn();
    assert.equal(sent.length, i + 1, `reply ${i} still held`);
  }
  socket.destroy();
});
