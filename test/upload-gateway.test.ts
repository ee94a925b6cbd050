// The standalone gateway's async uploads (mongrel2-protocol.md §3.4): bodies over
// limits.content_length go to upload.temp_store and are announced with x-mongrel2-upload-start
// and x-mongrel2-upload-done, byte for byte as Mongrel2 1.12.2 sent them in the captures
// (req-upload-start.*, req-upload-done.*) but for the connection id and the 6 random characters
// of the file name; limits.upload_max refuses with 413 before anything is written; a client
// that leaves midway, a chunked body past the limit and a handler that answers early each
// leave no file behind.
//
// Mongrel2 lists client headers in hash order, the gateway in arrival order (m2-request-builder.ts):
// the client sends its headers in the order Mongrel2's capture lists them (helpers/uploads.ts),
// the only order in which the two can agree byte for byte. test/upload-differential.test.ts
// compares with a live Mongrel2.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { aligned, gone, uploadHead, UPLOAD_BODY } from './helpers/uploads.js';
import { fixture } from './helpers/fixtures.js';
import { fakeHandler, handlerConf, logCapture, startGateway, tempTree, type FakeHandler, type GatewayRig } from './helpers/gateway.js';
import type { HeaderEncoding, M2Request } from '../protocol/m2-request.js';

const SENDERS = { json: '54c6755b-9628-40a4-9a2d-cc82a816345e', tnetstring: '8b3c1f0e-5d2a-4c7b-9e61-a0f4d2c3b5e7' } as const;
const UPLOAD_MAX = 64 * 1024;
const BODY = UPLOAD_BODY;

interface Side {
  rig: GatewayRig;
  handler: FakeHandler;
}
const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function side(encoding: HeaderEncoding): Promise<Side> {
  const h = handlerConf('/handler', SENDERS[encoding], encoding);
  const rig = await startGateway({
    handlers: [h],
    settings: { 'limits.content_length': 1024, 'upload.temp_store': 'tmp/upload.XXXXXX', 'limits.upload_max': UPLOAD_MAX },
  });
  const handler = await fakeHandler(h, rig.pool('/handler'));
  cleanups.push(async () => {
    handler.stop();
    await rig.close();
  });
  return { rig, handler };
}
const sides = { json: await side('json'), tnetstring: await side('tnetstring') };

const expectedFile = (s: Side, msg: M2Request): string => join(s.rig.dir, msg.headers['x-mongrel2-upload-start'] as string);

for (const encoding of ['json', 'tnetstring'] as const) {
  test(`an upload's two messages are Mongrel2's captured bytes (${encoding}); the file holds the body, mode 0600`, async () => {
    const s = sides[encoding];
    const ext = encoding === 'json' ? 'json' : 'tnet';
    const theirStart = fixture(`req-upload-start.${ext}.bin`);
    const theirDone = fixture(`req-upload-done.${ext}.bin`);
    const theirPath = /tmp\/upload\.[A-Za-z0-9]{6}/.exec(theirStart.toString('latin1'))![0];
    const theirId = Number(theirStart.toString('latin1').split(' ')[1]);

    const c = await s.rig.client();
    c.write(uploadHead(encoding));
    c.write(BODY.subarray(0, 200));
    const start = await s.handler.next('upload-start');
    assert.equal(start.msg.kind, 'upload-start');
    assert.match(start.msg.headers['x-mongrel2-upload-start'] as string, /^tmp\/upload\.[A-Za-z0-9]{6}$/);
    assert.equal(aligned(start, theirId, theirPath), theirStart.toString('latin1'));
    // Nothing more until the body is complete (§3.4 step 2).
    assert.equal(s.handler.queued, 0);
    c.write(BODY.subarray(200));
    const done = await s.handler.next('upload-done');
    assert.equal(done.msg.kind, 'upload-done');
    assert.equal(done.msg.connId, start.msg.connId);
    assert.equal(done.msg.headers['x-mongrel2-upload-done'], start.msg.headers['x-mongrel2-upload-start']);
    assert.equal(aligned(done, theirId, theirPath), theirDone.toString('latin1'));

    const file = expectedFile(s, done.msg);
    assert.ok(readFileSync(file).equals(BODY));
    assert.equal(statSync(file).mode & 0o777, 0o600);
    await s.handler.reply(done.msg.connId, 'HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok');
    const r = await c.response();
    assert.equal(r.status, 201);
    assert.equal(r.body.toString(), 'ok');
    // The handler owns the file, as behind Mongrel2 (which never removes a completed upload).
    assert.ok(existsSync(file));
    c.destroy();
  });
}

test('a declared length over limits.upload_max gets 413 before a file is made or a handler hears of it', async () => {
  const s = sides.json;
  const before = readdirSync(join(s.rig.dir, 'tmp'));
  const c = await s.rig.client();
  c.write(`POST /handler/big HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${UPLOAD_MAX + 1}\r\n\r\n`);
  c.write(Buffer.alloc(4096));
  const r = await c.response();
  assert.equal(r.status, 413);
  assert.equal(r.headers.connection, 'close');
  c.destroy();
  // A barrier: the next request's message is the first the handler gets.
  const c2 = await s.rig.client();
  c2.write('GET /handler/next HTTP/1.1\r\nHost: localhost\r\n\r\n');
  const next = await s.handler.next('the barrier request');
  assert.equal(next.msg.path, '/handler/next');
  await s.handler.reply(next.msg.connId, 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
  assert.equal((await c2.response()).status, 200);
  c2.destroy();
  assert.deepEqual(readdirSync(join(s.rig.dir, 'tmp')), before, 'no temp file was made');
});

test('a client that leaves midway: the partial file is removed, then the handler gets the disconnect notice', async () => {
  const s = sides.tnetstring;
  const c = await s.rig.client();
  c.write('POST /handler/left HTTP/1.1\r\nHost: localhost\r\nContent-Length: 50000\r\n\r\n');
  c.write(Buffer.alloc(10_000, 7));
  const start = await s.handler.next('upload-start');
  assert.equal(start.msg.kind, 'upload-start');
  const file = expectedFile(s, start.msg);
  assert.ok(existsSync(file));
  c.destroy();
  const notice = await s.handler.notice('the disconnect notice');
  assert.equal(notice.msg.kind, 'disconnect');
  assert.equal(notice.msg.connId, start.msg.connId);
  assert.equal(existsSync(file), false, 'removed before the handler was told');
});

test('a chunked body is spooled as Mongrel2 does; one past limits.upload_max gets 413, its file removed, the handler a disconnect', async () => {
  const s = sides.json;
  const c = await s.rig.client();
  c.write('POST /handler/chunked HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n');
  const start = await s.handler.next('upload-start of a small chunked body');
  assert.equal(start.msg.kind, 'upload-start');
  assert.equal(start.msg.headers['transfer-encoding'], 'chunked');
  const done = await s.handler.next('its upload-done');
  assert.equal(done.msg.kind, 'upload-done');
  const file = expectedFile(s, done.msg);
  assert.equal(readFileSync(file, 'latin1'), 'hello world');
  await s.handler.reply(done.msg.connId, 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
  assert.equal((await c.response()).status, 200);

  const chunk = Buffer.alloc(16 * 1024, 1);
  c.write('POST /handler/chunked-big HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n');
  const bigStart = await s.handler.next('upload-start of a big chunked body');
  const bigFile = expectedFile(s, bigStart.msg);
  for (let i = 0; i < 5; i++) c.write(Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]));
  const r = await c.response();
  assert.equal(r.status, 413);
  const notice = await s.handler.notice('the disconnect notice');
  assert.equal(notice.msg.kind, 'disconnect');
  assert.equal(notice.msg.connId, bigStart.msg.connId);
  assert.equal(existsSync(bigFile), false);
  c.destroy();
});

test('a handler that answers before the body is complete ends the upload: its answer, a close, no file', async () => {
  const s = sides.json;
  const c = await s.rig.client();
  c.write('POST /handler/early HTTP/1.1\r\nHost: localhost\r\nContent-Length: 40000\r\n\r\n');
  c.write(Buffer.alloc(1000));
  const start = await s.handler.next('upload-start');
  const file = expectedFile(s, start.msg);
  await s.handler.reply(start.msg.connId, 'HTTP/1.1 413 Request Entity Too Large\r\nContent-Length: 4\r\n\r\nno!\n');
  await s.handler.close(start.msg.connId);
  const r = await c.response();
  assert.equal(r.status, 413);
  assert.equal(r.body.toString(), 'no!\n');
  assert.equal(r.headers.connection, 'close');
  await gone(file);
  await c.end();
  assert.equal(basename(file).startsWith('upload.'), true);
});

test("a client's own x-mongrel2-upload-* headers never reach the handler; the gateway's do", async () => {
  const s = sides.json;
  const c = await s.rig.client();
  c.write(`POST /handler/forged HTTP/1.1\r\nHost: localhost\r\nX-Mongrel2-Upload-Start: /etc/passwd\r\nX-Mongrel2-Upload-Done: /etc/passwd\r\nContent-Length: 2000\r\n\r\n`);
  c.write(Buffer.alloc(2000, 9));
  const start = await s.handler.next('upload-start');
  const done = await s.handler.next('upload-done');
  for (const m of [start.msg, done.msg]) {
    assert.match(m.headers['x-mongrel2-upload-start'] as string, /^tmp\/upload\.[A-Za-z0-9]{6}$/);
  }
  assert.equal(done.msg.headers['x-mongrel2-upload-done'], done.msg.headers['x-mongrel2-upload-start']);
  assert.equal(start.msg.headers['x-mongrel2-upload-done'], undefined);
  await s.handler.reply(done.msg.connId, 'HTTP/1.1 204 No Content\r\n\r\n');
  assert.equal((await c.response()).status, 204);
  c.destroy();
});

test('the handler timeout starts at upload-done: a slow body is not cut, a silent handler after it gets 504 and a disconnect', async () => {
  const h = handlerConf('/handler', SENDERS.json, 'json');
  const rig = await startGateway({ handlers: [h], settings: { 'limits.content_length': 1024, 'upload.temp_store': 'tmp/upload.XXXXXX' } }, { handlerTimeoutMs: 300 });
  const handler = await fakeHandler(h, rig.pool('/handler'));
  cleanups.push(async () => {
    handler.stop();
    await rig.close();
  });
  const c = await rig.client();
  c.write('POST /handler/slow HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2000\r\n\r\n');
  const start = await handler.next('upload-start');
  // Three handler timeouts pass while the body trickles in.
  for (let i = 0; i < 3; i++) {
    c.write(Buffer.alloc(500, i));
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
  assert.equal(handler.queued, 0, 'no 504 or disconnect while the body arrives');
  c.write(Buffer.alloc(500, 3));
  const done = await handler.next('upload-done');
  assert.equal(done.msg.connId, start.msg.connId);
  const r = await c.response();
  assert.equal(r.status, 504);
  const notice = await handler.notice('the disconnect notice');
  assert.equal(notice.msg.kind, 'disconnect');
  assert.equal(notice.msg.connId, done.msg.connId);
  c.destroy();
});

test('a store whose folder cannot be made is a warning at start; bodies over the limit then get 413', async () => {
  const h = handlerConf('/handler', SENDERS.json, 'json');
  const log = logCapture();
  // A file where the folder should be: mkdir fails even for root.
  const dir = tempTree({ notadir: 'a file' });
  const rig = await startGateway({ handlers: [h], settings: { 'limits.content_length': 1024, 'upload.temp_store': 'notadir/upload.XXXXXX' } }, { dir, logger: log.logger });
  cleanups.push(async () => {
    await rig.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const warning = await log.waitFor((l) => typeof l.msg === 'string' && l.msg.startsWith('upload.temp_store: cannot make its folder'), 'the warning');
  assert.equal(warning.dir, join(dir, 'notadir'));
  const handler = await fakeHandler(h, rig.pool('/handler'));
  cleanups.push(() => handler.stop());
  const c = await rig.client();
  c.write('POST /handler/x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2000\r\n\r\n');
  assert.equal((await c.response()).status, 413);
  assert.equal(handler.queued, 0);
  c.destroy();
});
