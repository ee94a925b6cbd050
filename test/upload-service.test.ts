// `m2gate service --upload-store` behind the real Mongrel2 1.12.2 with upload.temp_store set
// (mongrel2-protocol.md §3.4): the service reads Mongrel2's own temp file for a route with
// `uploads: true` (the demo's POST /svc/upload), answers, and removes the file; a route
// without it answers 413 and the file goes too; a path outside the store (here forged by the
// client: Mongrel2 forwards a client's x-mongrel2-upload-* headers) is refused with 400 and
// logged, and nothing is read. Then UploadStoreReader's rules one by one.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { Agent, request } from 'undici';
import { join } from 'node:path';
import { ipcEndpoint, startMongrel2 } from './helpers/mongrel2.js';
import { startService, stopAll } from './helpers/service.js';
import { UploadStoreReader } from '../workers/upload-body.js';
import type { M2Request } from '../protocol/m2-request.js';
import { emptied } from './helpers/uploads.js';

const send = ipcEndpoint('send');
const recv = ipcEndpoint('recv');
const m2 = await startMongrel2({
  handlers: [{ route: '/svc/', sendSpec: send, sendIdent: '0b1c2d3e-0000-4000-8000-00upload0svc', recvSpec: recv, protocol: 'tnetstring' }],
  // Not below limits.buffer_size (4096): Mongrel2 1.12.2 then corrupts the body bytes that came
  // with the head past limits.content_length (mongrel2-protocol.md §3.4, measured).
  settings: { 'limits.content_length': 4096, 'upload.temp_store': 'tmp/upload.XXXXXX' },
});
const store = join(m2.dir, 'tmp');
const svc = await startService(['--send', send, '--recv', recv, '--workers', '1', '--upload-store', join(store, 'upload.XXXXXX')]);
after(async () => {
  await stopAll();
  await m2.stop();
  m2.cleanup();
});

const base = `http://127.0.0.1:${m2.port}`;

/**
 * A POST on a connection of its own. After an upload answered at its start the service sends
 * Mongrel2 the close message (the body was never read), and a pooled client could send its
 * next request on that connection while it closes: a "fetch failed" that is not the test's.
 */
async function post(path: string, body: Buffer | string, headers: Record<string, string> = {}): Promise<{ status: number; body: Buffer }> {
  const agent = new Agent({ pipelining: 0 });
  try {
    const r = await request(`${base}${path}`, { method: 'POST', body, headers, dispatcher: agent });
    return { status: r.statusCode, body: Buffer.from(await r.body.arrayBuffer()) };
  } finally {
    await agent.close();
  }
}

test("a route with uploads: true reads Mongrel2's temp file and answers; the service then removes the file", async () => {
  const body = randomBytes(300 * 1024);
  const r = await post('/svc/upload', body, { 'content-type': 'application/octet-stream' });
  assert.equal(r.status, 200);
  assert.deepEqual(JSON.parse(r.body.toString()), { bytes: body.length, sha256: createHash('sha256').update(body).digest('hex'), spooled: true });
  await emptied(store);
  // Under limits.content_length the same route gets the body inline.
  const small = randomBytes(500);
  const r2 = await post('/svc/upload', small);
  assert.deepEqual(JSON.parse(r2.body.toString()), { bytes: 500, sha256: createHash('sha256').update(small).digest('hex'), spooled: false });
});

test('a route without uploads: true answers an upload 413; its temp file is removed all the same', async () => {
  const r = await post('/svc/hash', randomBytes(9000));
  assert.equal(r.status, 413);
  await emptied(store);
});

test('an upload path outside the store is refused with 400 and logged; nothing is read', async () => {
  for (const forged of ['/etc/passwd', 'tmp/../../../../etc/passwd', `${store}/../upload.abcdef`]) {
    const from = svc.lines.length;
    const r = await post('/svc/upload', 'x', { 'x-mongrel2-upload-start': forged, 'x-mongrel2-upload-done': forged });
    assert.equal(r.status, 400, forged);
    const line = await svc.waitFor((l) => l.msg === 'upload refused', { from });
    assert.equal(line.code, 'M2G_ERR_UPLOAD');
    assert.equal(line.path, forged);
  }
});

// ---- the rules alone ---------------------------------------------------------------------------

test('UploadStoreReader accepts only regular files of its template in its folder', () => {
  const root = mkdtempSync(join(tmpdir(), 'm2gate-upload-rules-'));
  try {
    const dir = join(root, 'srv', 'tmp');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'upload.Ab3dE9'), 'data');
    writeFileSync(join(root, 'secret'), 'secret');
    symlinkSync(join(root, 'secret'), join(dir, 'upload.LINKED'));
    mkdirSync(join(dir, 'upload.FOLDER'));
    const reader = new UploadStoreReader(join(dir, 'upload.XXXXXX'));
    const msg = (start: string | string[], done: string | string[] = start): M2Request =>
      ({ sender: 's', connId: 1, path: '/', headers: { 'x-mongrel2-upload-start': start, 'x-mongrel2-upload-done': done }, body: Buffer.alloc(0), kind: 'upload-done', encoding: 'json' });
    const ok = (v: ReturnType<UploadStoreReader['check']>): string => (v.ok ? `ok ${v.file.path} ${v.file.size}` : `refused: ${v.reason}`);
    assert.equal(ok(reader.check(msg('tmp/upload.Ab3dE9'))), `ok ${join(dir, 'upload.Ab3dE9')} 4`, "the front's relative view");
    assert.equal(ok(reader.check(msg('srv/tmp/upload.Ab3dE9'))), `ok ${join(dir, 'upload.Ab3dE9')} 4`);
    assert.equal(ok(reader.check(msg(join(dir, 'upload.Ab3dE9')))), `ok ${join(dir, 'upload.Ab3dE9')} 4`, 'absolute, in the store');
    const refused: Array<[string | string[], (string | string[])?]> = [
      ['tmp/upload.Ab3dE9', 'tmp/upload.Zz9zZ9'],
      [['tmp/upload.Ab3dE9', 'tmp/upload.Ab3dE9']],
      ['other/upload.Ab3dE9'],
      ['tmp/../tmp/upload.Ab3dE9'],
      [join(root, 'upload.Ab3dE9')],
      ['tmp/upload.Ab3dE'],
      ['tmp/download.Ab3dE9'],
      ['tmp/upload.Ab3dE9/'],
      ['tmp/upload.LINKED'],
      ['tmp/upload.FOLDER'],
      ['tmp/upload.NoSuch'],
    ];
    for (const [start, done] of refused) assert.match(ok(reader.check(msg(start, done))), /^refused: /, JSON.stringify([start, done]));
    assert.throws(() => new UploadStoreReader(join(dir, 'upload.XXXX')), { code: 'M2G_ERR_OPTION' });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
