// `m2gate service` and async uploads, driven by a fake front (mongrel2-protocol.md §3.4): a
// route with `uploads: true` gets `req.upload` (absolute path and size) and an empty body; when
// the client goes away while it runs, the service aborts it and still removes the file; a
// service without --upload-store answers an upload 413, logs why and leaves the file.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fakeFront, fixtureRoutes, parseHttp, startService, stopAll, tempDir } from './helpers/service.js';
import { gone } from './helpers/uploads.js';

after(stopAll);

const upload = (file: string): Record<string, string> => ({ 'content-length': '5000', 'x-mongrel2-upload-start': file, 'x-mongrel2-upload-done': file });

test('a route with uploads: true gets req.upload; the client leaving aborts it and the file is removed all the same', async () => {
  const store = join(tempDir('m2gate-upload-store-'), 'tmp');
  mkdirSync(store);
  const file = join(store, 'upload.Qw3rTy');
  writeFileSync(file, Buffer.alloc(5000, 1));
  const front = await fakeFront();
  const svc = await startService([fixtureRoutes('uploads.mjs'), '--send', front.send, '--recv', front.recv, '--workers', '1', '--upload-store', join(store, 'upload.XXXXXX')]);
  await front.request(7, '/u/hold', { method: 'POST', headers: upload('tmp/upload.Qw3rTy') });
  const seen = await svc.waitFor((l) => l.probe === 'upload');
  assert.deepEqual(seen.upload, { path: file, size: 5000 });
  assert.equal(seen.bodyLength, 0);
  assert.ok(existsSync(file), 'kept while the route runs');
  await front.disconnect(7);
  await gone(file);
});

test('without --upload-store an upload gets 413, the reason is logged and the file is left', async () => {
  const dir = tempDir('m2gate-upload-nostore-');
  const file = join(dir, 'upload.AbCdEf');
  writeFileSync(file, 'x');
  const front = await fakeFront();
  const svc = await startService([fixtureRoutes('uploads.mjs'), '--send', front.send, '--recv', front.recv, '--workers', '1']);
  await front.request(8, '/u/hold', { method: 'POST', headers: upload(file) });
  const reply = await front.next();
  assert.equal(parseHttp(reply.body).status, 413);
  const line = await svc.waitFor((l) => typeof l.msg === 'string' && l.msg.startsWith('an upload arrived but no upload store is set'));
  assert.equal(line.path, file);
  assert.ok(existsSync(file));
});
