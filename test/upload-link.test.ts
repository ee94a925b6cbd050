// Async uploads over the m2gate link (protocol/m2gate-link.md): the upload-start is a REQUEST
// whose credit the service returns at once (a CREDIT, as workers/service.ts does) and which
// holds no thread, so the upload-done that follows finds the credit back even on a service
// that announced only one, the pool counts no excess credit, and a reply to either is relayed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { tempTree } from './helpers/gateway.js';
import { FakeService, startLinkGateway } from './helpers/link.js';

test('over the link, an upload costs one credit held from upload-done to the reply; start and done go out in order', async (t) => {
  const dir = tempTree({}, 'm2gate-upload-link-');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const r = await startLinkGateway({ cwd: dir, settings: { 'limits.content_length': 1024, 'upload.temp_store': 'tmp/upload.XXXXXX' }, link: { heartbeatMs: 100, liveness: 1000 } });
  t.after(() => r.close());
  const svc = await FakeService.connect(r.spec);
  t.after(() => svc.close());
  await svc.register(1, 1, 'one-credit');

  for (let round = 0; round < 3; round++) {
    const c = await r.client();
    c.write('POST /svc/up HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3000\r\n\r\n');
    const start = await svc.request('upload-start');
    assert.equal(start.kind, 'upload-start');
    await svc.send({ command: 'CREDIT', credit: 1 });
    c.write(Buffer.alloc(3000, round));
    const done = await svc.request('upload-done');
    assert.equal(done.kind, 'upload-done');
    assert.equal(done.connId, start.connId);
    assert.equal(r.pool.view().creditFree, 0, 'the upload-done holds the one credit');
    await svc.reply(done.connId, 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
    assert.equal((await c.response()).status, 200);
    c.destroy();
    assert.equal(r.pool.stats.malformedLink, 0, 'no excess credit');
  }
  assert.equal(r.pool.pending, 0);
});
