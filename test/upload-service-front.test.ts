// `m2gate service` and async uploads, driven by a fake front (mongrel2-protocol.md §3.4): a
// route with `uploads: true` gets `req.upload` (absolute path and size) and an empty body; when
// the client goes away while it runs, the service aborts it and still removes the file; an
// upload-start whose upload would be refused is answered at once with the close (so the front
// stops writing, §3.4); a service without --upload-store answers uploads 413.
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

test('an upload-start is answered at once, with the close, when its upload would be refused; else only its upload-done is', async () => {
  const store = join(tempDir('m2gate-upload-early-'), 'tmp');
  mkdirSync(store);
  writeFileSync(join(store, 'upload.Zx81Ok'), Buffer.alloc(5000));
  const front = await fakeFront();
  await startService([fixtureRoutes('uploads.mjs'), '--send', front.send, '--recv', front.recv, '--workers', '1', '--upload-store', join(store, 'upload.XXXXXX')]);
  const start = (file: string): Record<string, string> => ({ 'content-length': '5000', 'x-mongrel2-upload-start': file });
  // Taken: nothing for the start; the first reply is the upload-done's.
  await front.request(20, '/u/size', { method: 'POST', headers: start('tmp/upload.Zx81Ok') });
  await front.request(20, '/u/size', { method: 'POST', headers: upload('tmp/upload.Zx81Ok') });
  const sized = await front.next();
  assert.deepEqual([sized.ids, parseHttp(sized.body).status, parseHttp(sized.body).body], [[20], 200, '{"size":5000}']);
  // Refused: a route without uploads (413), no route (404), a method it lacks (405); each with the close.
  for (const [connId, path, method, status] of [[21, '/u/plain', 'POST', 413], [22, '/u/none', 'POST', 404], [23, '/u/size', 'PUT', 405]] as const) {
    await front.request(connId, path, { method, headers: start('tmp/upload.AAAAAA') });
    const answer = await front.next();
    assert.deepEqual([answer.ids, parseHttp(answer.body).status], [[connId], status], path);
    const close = await front.next();
    assert.deepEqual([close.ids, close.body.length], [[connId], 0], `${path}: the close`);
  }
});

test('without --upload-store an upload-start gets 413 and the close; a forged upload-done gets 413, the reason logged, its file left', async () => {
  const dir = tempDir('m2gate-upload-nostore-');
  const file = join(dir, 'upload.AbCdEf');
  writeFileSync(file, 'x');
  const front = await fakeFront();
  const svc = await startService([fixtureRoutes('uploads.mjs'), '--send', front.send, '--recv', front.recv, '--workers', '1']);
  await front.request(9, '/u/size', { method: 'POST', headers: { 'content-length': '5000', 'x-mongrel2-upload-start': file } });
  assert.equal(parseHttp((await front.next()).body).status, 413);
  assert.equal((await front.next()).body.length, 0, 'the close');
  await front.request(8, '/u/hold', { method: 'POST', headers: upload(file) });
  const reply = await front.next();
  assert.equal(parseHttp(reply.body).status, 413);
  const line = await svc.waitFor((l) => typeof l.msg === 'string' && l.msg.startsWith('an upload arrived but no upload store is set'));
  assert.equal(line.path, file);
  assert.ok(existsSync(file));
});
