// `m2gate gateway --mongrel2 SEND,RECV` (the built CLI: run `npm run build`
// first) as a handler of the real Mongrel2: the flag wiring, an app module
// given with --app (the demo app), a Dir route, the close after HTTP/1.0, a
// 503 at once when the app's service call finds no handler, and SIGTERM.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdirSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'undici';
import { confText, handlerConf, spawnM2gate, tempTree, RawClient } from './helpers/gateway.js';
import { ipcEndpoint, startMongrel2 } from './helpers/mongrel2.js';
import { ROOT } from './helpers/service.js';

const m2Send = ipcEndpoint('m2-send');
const m2Recv = ipcEndpoint('m2-recv');
const m2 = await startMongrel2({ handlers: [{ route: '/', sendSpec: m2Send, sendIdent: '0a1b2c3d-0000-4000-8000-0000behindcli', recvSpec: m2Recv }] });
const SVC = handlerConf('/svc/', '0a1b2c3d-0000-4000-8000-0000clisvc001');
const dir = tempTree({ 'mongrel2.conf': confText({ handlers: [SVC], routes: [`'/static/': Dir(base='static/', index_file='index.html', default_ctype='text/plain')`] }) });
mkdirSync(join(dir, 'static'));
writeFileSync(join(dir, 'static', 'index.html'), 'static page\n');

const gw = spawnM2gate(['gateway', '--config', join(dir, 'mongrel2.conf'), '--mongrel2', `${m2Send},${m2Recv}`, '--app', join(ROOT, 'dist', 'gateway', 'demo-app.js')]);
const agent = new Agent({ keepAliveTimeout: 500, keepAliveMaxTimeout: 500 });

after(async () => {
  gw.kill();
  try {
    await agent.close();
  } finally {
    // A Mongrel2 left running would keep the test process alive.
    await m2.stop();
    m2.cleanup();
  }
});

test('m2gate gateway --mongrel2 serves the app and the Dir through Mongrel2, then drains on SIGTERM', async () => {
  const serving = await gw.waitFor((l) => l.msg === 'serving as a Mongrel2 handler', 'serving as a Mongrel2 handler');
  assert.equal(serving.send, m2Send);
  assert.equal(serving.recv, m2Recv);
  const base = `http://127.0.0.1:${m2.port}`;

  const hello = await request(`${base}/app/hello`, { dispatcher: agent });
  assert.equal(hello.statusCode, 200);
  assert.equal(await hello.body.text(), 'hello from the gateway\n');

  const page = await request(`${base}/static/index.html`, { dispatcher: agent });
  assert.equal(page.statusCode, 200);
  assert.equal(await page.body.text(), 'static page\n');

  // No service is connected to the gateway's /svc/ Handler: the demo app's
  // ctx.call fails at once with M2G_ERR_NO_HANDLER, which it leaves unhandled → 503.
  const sync = await request(`${base}/service/sync?ms=0`, { dispatcher: agent });
  assert.equal(sync.statusCode, 503);
  assert.match(await sync.body.text(), /^no handler is connected for \/svc\/slow\?ms=0&data=hello\+from\+the\+slow\+service \(error id /);

  // HTTP/1.0: the response, then the connection ends.
  const c = await RawClient.open(m2.port);
  c.write('GET /app/hello HTTP/1.0\r\n\r\n');
  const res = await c.response();
  assert.equal(res.status, 200);
  assert.equal(res.body.toString(), 'hello from the gateway\n');
  assert.equal((await c.end()).length, 0);
  c.destroy();

  // Idle keep-alive connections (undici's, through Mongrel2) do not hold the drain up.
  gw.child.kill('SIGTERM');
  const exit = await gw.exited;
  assert.deepEqual(exit, { code: 0, signal: null });
  const stopped = gw.lines.find((l) => l.msg === 'gateway stopped');
  assert.equal(stopped?.drained, true);
});
