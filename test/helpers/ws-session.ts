// One scripted WebSocket session and the echo handler that answers it, shared by the
// differential tests (test/websocket-differential.test.ts, test/behind-mongrel2-websocket.test.ts):
// the same client bytes to any front, the same handler on any handler side.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { encodeRequest, type M2Request } from '../../protocol/m2-request.js';
import { encodeClose, encodeReply } from '../../protocol/m2-reply.js';
import { encodeFrame, flagsOpcode, OPCODES } from '../../protocol/ws-frame.js';
import { clientClose, clientFrame, handshakeBytes, withDeadline, WsTestClient } from './ws-client.js';

/** One front as the echo handler sees it. */
export interface HandlerSide {
  port: number;
  next(): Promise<{ raw: Buffer; msg: M2Request }>;
  send(bytes: Buffer): Promise<void>;
}

/**
 * The echo handler: 101 for the handshake (its body is the accept key), the same opcode back
 * for text and binary, pong for ping, and for close the close frame back and the close
 * message. Runs until it has closed; returns every message it got, in order.
 */
export async function echo(side: HandlerSide, sender: string): Promise<Array<{ raw: Buffer; msg: M2Request }>> {
  const seen: Array<{ raw: Buffer; msg: M2Request }> = [];
  for (let i = 0; i < 50; i++) {
    const got = await side.next();
    seen.push(got);
    const { msg } = got;
    if (msg.kind === 'disconnect') throw new Error(`disconnect notice for ${msg.connId} before the close`);
    const reply = (body: Buffer | string): Promise<void> => side.send(encodeReply(sender, msg.connId, body));
    if (msg.kind === 'websocket-handshake') {
      await reply(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${msg.body.toString('latin1')}\r\n\r\n`);
      continue;
    }
    assert.equal(msg.kind, 'websocket');
    const opcode = flagsOpcode(msg.headers.FLAGS as string);
    if (opcode === OPCODES.PING) await reply(encodeFrame(OPCODES.PONG, msg.body));
    else if (opcode === OPCODES.CLOSE) {
      await reply(encodeFrame(OPCODES.CLOSE, msg.body));
      await side.send(encodeClose(sender, msg.connId));
      return seen;
    } else await reply(encodeFrame(opcode!, msg.body));
  }
  throw new Error('no close within 50 messages');
}

/** The message with its id set to 0 and its headers in sorted order: equal iff the two fronts sent the same thing. */
export function canonical(raw: Buffer, msg: M2Request, drop: string[] = []): string {
  const headers: Record<string, string | string[]> = {};
  for (const key of Object.keys(msg.headers).sort()) if (!drop.includes(key)) headers[key] = msg.headers[key]!;
  const size = drop.length > 0 ? '' : ` (raw ${raw.length - String(msg.connId).length} bytes)`;
  return encodeRequest({ sender: msg.sender, connId: 0, path: msg.path, headers, body: drop.length > 0 ? '' : msg.body }, msg.encoding).toString('latin1') + size;
}

/** The scripted session: each step waits for the echo, so that both fronts see the same byte stream. */
export async function session(port: number): Promise<Buffer> {
  const client = await WsTestClient.open(port);
  client.write(handshakeBytes('/handler/ws', 'Origin: http://localhost\r\n'));
  await client.head();
  const steps: Buffer[] = [
    clientFrame(OPCODES.TEXT, 'Hello'),
    clientFrame(OPCODES.BINARY, Buffer.from([0x00, 0xff, 0x80, 0x2c, 0x3a, 0x0d, 0x0a])),
    Buffer.concat([clientFrame(OPCODES.TEXT, 'frag-', false), clientFrame(OPCODES.PING, 'between'), clientFrame(OPCODES.CONTINUATION, 'ment')]),
    clientFrame(OPCODES.PING, 'ping'),
    clientFrame(OPCODES.TEXT, 'x'.repeat(300)),
  ];
  for (const [i, bytes] of steps.entries()) {
    client.write(bytes);
    // One echo per message (the fragmented step has two: the ping's pong, then the message).
    for (let n = 0; n < (i === 2 ? 2 : 1); n++) await client.frame();
  }
  client.write(clientClose(1000));
  await client.end();
  return client.all;
}


/** Runs test/helpers/ws-echo.py (Debian's python3-websockets) against `url`; resolves with what it printed. */
export async function pythonSession(url: string): Promise<unknown> {
  const script = fileURLToPath(new URL('./ws-echo.py', import.meta.url));
  const child = spawn('/usr/bin/python3', [script, url], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const [code] = (await withDeadline(once(child, 'exit'), 'the python client', 20_000)) as [number];
  assert.equal(code, 0, `python3-websockets failed: ${err}`);
  return JSON.parse(out) as unknown;
}
