// Async uploads (mongrel2-protocol.md §3.4), the m2gate gateway against the live Mongrel2 1.12.2:
// the same client bytes go to both, each with the same Handler (`/handler`, same send_ident,
// same header encoding, limits.content_length 1024, upload.temp_store tmp/upload.XXXXXX). The
// upload-start and upload-done messages must be identical byte for byte once the connection
// ids and the temp-file names (each front's own counter and random characters) are aligned;
// the temp files must hold the same bytes with the same mode. The client sends the head and
// 200 body bytes first, then the rest, as the capture did (and as Mongrel2 needs: below
// limits.buffer_size it corrupts body bytes that come with the head past the limit, §3.4).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { once } from 'node:events';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseRequest, type HeaderEncoding } from '../protocol/m2-request.js';
import { encodeClose, encodeReply } from '../protocol/m2-reply.js';
import { connectHandler, ipcEndpoint, requireMongrel2, startMongrel2 } from './helpers/mongrel2.js';
import { fakeHandler, handlerConf, startGateway, type FakeHandler, type GatewayRig, type Received } from './helpers/gateway.js';
import { aligned, uploadHead, UPLOAD_BODY } from './helpers/uploads.js';

const SETTINGS = { 'limits.content_length': 1024, 'upload.temp_store': 'tmp/upload.XXXXXX' };
const SENDERS = { json: 'd1ff0000-5555-4000-8000-0000000000ee', tnetstring: 'd1ff0000-6666-4000-8000-0000000000ff' } as const;
const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});
requireMongrel2(); // fails, never skips, when Mongrel2 is not installed

interface Upload {
  start: Received;
  done: Received;
  file: Buffer;
  mode: number;
}

async function viaMongrel2(encoding: HeaderEncoding, head: string): Promise<Upload> {
  const sendSpec = ipcEndpoint('send');
  const recvSpec = ipcEndpoint('recv');
  const sender = SENDERS[encoding];
  const m2 = await startMongrel2({ handlers: [{ route: '/handler', sendSpec, sendIdent: sender, recvSpec, protocol: encoding }], settings: SETTINGS });
  const h = await connectHandler(sendSpec, recvSpec);
  cleanups.push(async () => {
    h.close();
    await m2.stop();
    m2.cleanup();
  });
  const next = async (): Promise<Received> => {
    for (;;) {
      const [frame] = await h.pull.receive();
      const msg = parseRequest(frame!);
      if (msg.path !== '@*') return { raw: frame!, msg };
    }
  };
  const socket = connect(m2.port, '127.0.0.1');
  socket.on('data', () => {});
  const closed = once(socket, 'close');
  socket.write(Buffer.concat([Buffer.from(head, 'latin1'), UPLOAD_BODY.subarray(0, 200)]));
  const start = await next();
  socket.write(UPLOAD_BODY.subarray(200));
  const done = await next();
  const path = join(m2.dir, done.msg.headers['x-mongrel2-upload-done'] as string);
  const upload = { start, done, file: readFileSync(path), mode: statSync(path).mode & 0o777 };
  await h.pub.send(encodeReply(sender, done.msg.connId, 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'));
  await h.pub.send(encodeClose(sender, done.msg.connId));
  await closed;
  return upload;
}

/** The gateway with SETTINGS and a fake handler on /handler, stopped after the file. */
async function gatewayWithHandler(encoding: HeaderEncoding): Promise<{ rig: GatewayRig; handler: FakeHandler }> {
  const conf = handlerConf('/handler', SENDERS[encoding], encoding);
  const rig = await startGateway({ handlers: [conf], settings: SETTINGS });
  const handler = await fakeHandler(conf, rig.pool('/handler'));
  cleanups.push(async () => {
    handler.stop();
    await rig.close();
  });
  return { rig, handler };
}

async function viaGateway(encoding: HeaderEncoding, head: string): Promise<Upload> {
  const { rig, handler } = await gatewayWithHandler(encoding);
  const c = await rig.client();
  c.write(Buffer.concat([Buffer.from(head, 'latin1'), UPLOAD_BODY.subarray(0, 200)]));
  const start = await handler.next('upload-start');
  c.write(UPLOAD_BODY.subarray(200));
  const done = await handler.next('upload-done');
  const path = join(rig.dir, done.msg.headers['x-mongrel2-upload-done'] as string);
  const upload = { start, done, file: readFileSync(path), mode: statSync(path).mode & 0o777 };
  await handler.reply(done.msg.connId, 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
  assert.equal((await c.response()).status, 200);
  c.destroy();
  return upload;
}

for (const encoding of ['json', 'tnetstring'] as const) {
  test(`Mongrel2 and the gateway announce the same upload with the same bytes (${encoding})`, async () => {
    const head = uploadHead(encoding);
    const theirs = await viaMongrel2(encoding, head);
    const ours = await viaGateway(encoding, head);
    assert.equal(theirs.start.msg.kind, 'upload-start');
    assert.equal(theirs.done.msg.kind, 'upload-done');
    const path = theirs.start.msg.headers['x-mongrel2-upload-start'] as string;
    const id = theirs.start.msg.connId;
    assert.equal(aligned(ours.start, id, path), theirs.start.raw.toString('latin1'), 'upload-start');
    assert.equal(aligned(ours.done, id, path), theirs.done.raw.toString('latin1'), 'upload-done');
    assert.ok(theirs.file.equals(UPLOAD_BODY), "Mongrel2's temp file holds the body");
    assert.ok(ours.file.equals(theirs.file), "the gateway's temp file holds the same bytes");
    assert.equal(ours.mode, theirs.mode);
    assert.equal(ours.mode, 0o600);
  });
}

test("Mongrel2 1.12.2's defect below limits.buffer_size (§3.4): body bytes that come with the head past the limit are corrupted; the gateway's file is exact", async () => {
  const body = Buffer.alloc(5000);
  for (let i = 0; i < body.length; i++) body[i] = (i * 7 + 3) & 0xff;
  const head = `POST /handler/big HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${body.length}\r\n\r\n`;
  const sendSpec = ipcEndpoint('send');
  const recvSpec = ipcEndpoint('recv');
  const m2 = await startMongrel2({ handlers: [{ route: '/handler', sendSpec, sendIdent: SENDERS.json, recvSpec }], settings: SETTINGS });
  const h = await connectHandler(sendSpec, recvSpec);
  cleanups.push(async () => {
    h.close();
    await m2.stop();
    m2.cleanup();
  });
  const socket = connect(m2.port, '127.0.0.1');
  socket.on('data', () => {});
  const closed = once(socket, 'close');
  socket.write(Buffer.concat([Buffer.from(head), body]));
  let done;
  do done = parseRequest((await h.pull.receive())[0]!);
  while (done.kind !== 'upload-done');
  const file = readFileSync(join(m2.dir, done.headers['x-mongrel2-upload-done'] as string));
  assert.equal(file.length, body.length);
  const first = file.findIndex((b, i) => b !== body[i]);
  assert.ok(first >= 1024 - head.length && first < 1024, `first differing byte ${first}`);
  await h.pub.send(encodeClose(SENDERS.json, done.connId));
  await closed;

  const { rig, handler } = await gatewayWithHandler('json');
  const c = await rig.client();
  c.write(Buffer.concat([Buffer.from(head), body]));
  await handler.next('upload-start');
  const ours = await handler.next('upload-done');
  assert.ok(readFileSync(join(rig.dir, ours.msg.headers['x-mongrel2-upload-done'] as string)).equals(body));
  c.destroy();
});
