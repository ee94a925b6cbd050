// The gateway behind the real Mongrel2 1.12.2 (--mongrel2) with Mongrel2's upload.temp_store
// set (mongrel2-protocol.md §3.4): with the store given (--mongrel2-upload-store), Mongrel2's
// temp file becomes the body of the request the gateway serves with its own routes (here a
// Handler route to a test handler, which gets it inline), the file is removed once read, and
// the connection goes on serving; a forged upload path is refused with 400; without the store
// an upload gets 413 and Mongrel2 removes its file itself. Then the same from the CLI, through
// `m2gate start` and its demo service.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { Gateway } from '../gateway/gateway.js';
import { findServer, parseConfig } from '../protocol/mongrel2-conf.js';
import { confText, fakeHandler, handlerConf, spawnM2gate, tempTree, RawClient, type FakeHandler } from './helpers/gateway.js';
import { ipcEndpoint, startMongrel2, type Mongrel2 } from './helpers/mongrel2.js';
import { emptied } from './helpers/uploads.js';

const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

interface Rig {
  m2: Mongrel2;
  gateway: Gateway;
  handler: FakeHandler;
  store: string;
}

async function rig(withStore: boolean): Promise<Rig> {
  const send = ipcEndpoint('m2-send');
  const recv = ipcEndpoint('m2-recv');
  const m2 = await startMongrel2({
    handlers: [{ route: '/', sendSpec: send, sendIdent: '0a1b2c3d-0000-4000-8000-00upbehindm2', recvSpec: recv }],
    // Not below limits.buffer_size: §3.4's corruption.
    settings: { 'limits.content_length': 4096, 'upload.temp_store': 'tmp/upload.XXXXXX' },
  });
  const store = join(m2.dir, 'tmp');
  const H = handlerConf('/svc/', '0a1b2c3d-0000-4000-8000-00upbehindsv');
  const dir = tempTree();
  const config = parseConfig(confText({ handlers: [H], settings: { 'limits.content_length': 1024 * 1024 } }), join(dir, 'mongrel2.conf'));
  const gateway = new Gateway({
    config,
    server: findServer(config),
    cwd: dir,
    logger: pino({ level: 'silent' }),
    mongrel2: { sendSpec: send, recvSpec: recv, uploadStore: withStore ? join(store, 'upload.XXXXXX') : undefined },
  });
  await gateway.start();
  const handler = await fakeHandler(H, gateway.pools[0]!);
  cleanups.push(async () => {
    handler.stop();
    await gateway.close();
    await m2.stop();
    m2.cleanup();
  });
  return { m2, gateway, handler, store };
}

const withStore = await rig(true);
const without = await rig(false);

test("with --mongrel2-upload-store, Mongrel2's temp file is the body the gateway's route gets; then it is removed and the connection serves on", async () => {
  const { m2, handler, store } = withStore;
  const body = randomBytes(200 * 1024);
  const c = await RawClient.open(m2.port);
  cleanups.push(() => c.destroy());
  c.write(Buffer.concat([Buffer.from(`POST /svc/up HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${body.length}\r\n\r\n`), body]));
  const got = await handler.next('the request with the uploaded body');
  assert.equal(got.msg.kind, 'http', 'inline: under the gateway route’s own limit');
  assert.equal(got.msg.headers['content-length'], String(body.length));
  assert.equal(got.msg.headers['x-mongrel2-upload-start'], undefined);
  assert.ok(got.msg.body.equals(body));
  await handler.reply(got.msg.connId, 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nyes');
  const r = await c.response();
  assert.equal(r.status, 200);
  assert.equal(r.body.toString(), 'yes');
  await emptied(store);
  // Keep-alive: the next request on the same connection.
  c.write('GET /svc/next HTTP/1.1\r\nHost: localhost\r\n\r\n');
  const next = await handler.next('the next request');
  assert.equal(next.msg.path, '/svc/next');
  await handler.reply(next.msg.connId, 'HTTP/1.1 204 No Content\r\n\r\n');
  assert.equal((await c.response()).status, 204);
  assert.equal(withStore.gateway.adapter!.stats.uploads, 1);
});

test('a forged upload path through Mongrel2 is refused with 400 and the connection closed', async () => {
  const { m2, gateway } = withStore;
  const c = await RawClient.open(m2.port);
  cleanups.push(() => c.destroy());
  c.write('POST /svc/x HTTP/1.1\r\nHost: localhost\r\nX-Mongrel2-Upload-Start: /etc/passwd\r\nX-Mongrel2-Upload-Done: /etc/passwd\r\nContent-Length: 1\r\n\r\nx');
  const r = await c.response();
  assert.equal(r.status, 400);
  await c.end();
  assert.equal(gateway.adapter!.stats.uploadsRefused, 1);
});

test('without the store, an upload gets 413 and Mongrel2 removes its temp file', async () => {
  const { m2, store, gateway } = without;
  const c = await RawClient.open(m2.port);
  cleanups.push(() => c.destroy());
  c.write(`POST /svc/up HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\n`);
  c.write(Buffer.alloc(5000));
  const r = await c.response();
  assert.equal(r.status, 413);
  await c.end();
  await emptied(store);
  assert.equal(gateway.adapter!.stats.uploads, 0);
});

test('from the CLI: m2gate start --mongrel2 --mongrel2-upload-store; the upload is spooled twice (Mongrel2, then the gateway) and the demo service reads the second', async () => {
  const send = ipcEndpoint('m2-send');
  const recv = ipcEndpoint('m2-recv');
  const m2 = await startMongrel2({
    handlers: [{ route: '/', sendSpec: send, sendIdent: '0a1b2c3d-0000-4000-8000-00upbehindcl', recvSpec: recv }],
    settings: { 'limits.content_length': 4096, 'upload.temp_store': 'tmp/upload.XXXXXX' },
  });
  cleanups.push(async () => {
    await m2.stop();
    m2.cleanup();
  });
  const dir = tempTree();
  const link = ipcEndpoint('link');
  writeFileSync(
    join(dir, 'mongrel2.conf'),
    `svc = Handler(send_spec='${link}', send_ident='0a1b2c3d-0000-4000-8000-00upbehindlk', recv_spec='tcp://127.0.0.1:1', recv_ident='', transport='link')
main = Server(uuid="0a1b2c3d-0000-4000-8000-00upbehindsr", name="gw", port=6767, bind_addr="127.0.0.1",
  access_log="logs/access.log", error_log="logs/error.log", pid_file="run/mongrel2.pid",
  default_host="localhost", hosts=[Host(name="localhost", routes={ '/svc/': svc })])
settings = { "limits.content_length": 65536, "upload.temp_store": "tmp/upload.XXXXXX" }
servers = [main]
`,
  );
  const m2Store = join(m2.dir, 'tmp');
  const start = spawnM2gate(['start', '--config', join(dir, 'mongrel2.conf'), '--workers', '1', '--admin', 'off', '--mongrel2', `${send},${recv}`, '--mongrel2-upload-store', join(m2Store, 'upload.XXXXXX')], { cwd: dir });
  cleanups.push(async () => {
    start.kill();
    await start.exited;
    rmSync(dir, { recursive: true, force: true });
  });
  await start.waitFor((l) => l.msg === 'm2gate is serving as a Mongrel2 handler', 'serving as a Mongrel2 handler');
  const body = randomBytes(1024 * 1024);
  const r = await fetch(`http://127.0.0.1:${m2.port}/svc/upload`, { method: 'POST', body });
  assert.equal(r.status, 200);
  assert.deepEqual(await r.json(), { bytes: body.length, sha256: createHash('sha256').update(body).digest('hex'), spooled: true });
  await emptied(m2Store);
  await emptied(join(dir, 'tmp'));
});

test('without the store, a client forging both upload headers gets 413 and a close, not silence', async () => {
  const { m2 } = without;
  const c = await RawClient.open(m2.port);
  cleanups.push(() => c.destroy());
  c.write('POST /svc/x HTTP/1.1\r\nHost: localhost\r\nX-Mongrel2-Upload-Start: /etc/passwd\r\nX-Mongrel2-Upload-Done: /etc/passwd\r\nContent-Length: 1\r\n\r\nx');
  assert.equal((await c.response()).status, 413);
  await c.end();
});
