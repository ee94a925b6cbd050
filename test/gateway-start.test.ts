// `npm start` as a new user runs it: `m2gate start` with the shipped mongrel2.conf (its port
// overridden with 0), one local service with one worker thread, and the demo app. The page,
// a service route, a CPU route, an upload over limits.content_length (spooled by the gateway,
// read from its temp file by the service), an app route and a ctx.call route answer; SIGTERM exits 0.
// Runs the built CLI (`npm run build` first). The shipped config binds the handler endpoints
// tcp://127.0.0.1:9997 and :9996, so nothing else may hold those ports while this runs.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { exchange, get, spawnM2gate, type LoggedProcess } from './helpers/gateway.js';
import { WebSocket } from 'undici';
import { pythonSession } from './helpers/ws-session.js';
import { withDeadline } from './helpers/ws-client.js';

let m2gate: LoggedProcess | undefined;
after(async () => {
  m2gate?.kill();
  await m2gate?.exited;
});

test('m2gate start: the page, /svc/hello, /svc/fib/20, /app/hello, /service/sync, the WebSocket echo and chat, then SIGTERM → exit 0', async () => {
  const p = spawnM2gate(['start', '--port', '0', '--workers', '1']);
  m2gate = p;
  const serving = await p.waitFor((l) => typeof l.msg === 'string' && l.msg.startsWith('m2gate is serving'), 'm2gate is serving');
  const port = serving.port as number;
  assert.ok(port > 0);
  assert.equal(serving.msg, `m2gate is serving http://127.0.0.1:${port}/`);
  // No retries: wait until the service has connected (its own line) and the gateway's pool has
  // accepted it (the gateway's line); both processes write to the same stdout.
  await Promise.all([
    p.waitFor((l) => l.msg === 'connected to the gateway', 'service connected to the gateway over the link'),
    p.waitFor((l) => l.msg === 'handler connected', 'gateway saw the service'),
  ]);

  const page = await get(port, '/');
  assert.equal(page.status, 200);
  assert.match(page.headers['content-type'] ?? '', /^text\/html/);
  assert.match(page.body.toString(), /m2gate/);

  const hello = await get(port, '/svc/hello');
  assert.equal(hello.status, 200);
  assert.equal(hello.body.toString(), 'hello');

  const fib = await get(port, '/svc/fib/20');
  assert.equal(fib.status, 200);
  assert.equal((JSON.parse(fib.body.toString()) as { fib: number }).fib, 6765);

  // The shipped config's limits.content_length is 1 MiB: this body goes through upload.temp_store.
  const upload = Buffer.alloc(2 * 1024 * 1024, 'upload');
  const up = await exchange(port, Buffer.concat([Buffer.from(`POST /svc/upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${upload.length}\r\nConnection: close\r\n\r\n`), upload]));
  assert.equal(up.status, 200);
  assert.deepEqual(JSON.parse(up.body.toString()), { bytes: upload.length, sha256: createHash('sha256').update(upload).digest('hex'), spooled: true });

  const app = await get(port, '/app/hello');
  assert.equal(app.status, 200);
  assert.equal(app.body.toString(), 'hello from the gateway\n');

  const sync = await get(port, '/service/sync?ms=50&data=x');
  assert.equal(sync.status, 200);
  assert.deepEqual(JSON.parse(sync.body.toString()), { data: 'x', via: 'ctx.call' });

  // The demo's WebSocket routes over the m2gate link: python3-websockets on the echo, undici on the chat.
  assert.deepEqual(await pythonSession(`ws://127.0.0.1:${port}/svc/echo`), { got: ['hello', [0, 1, 2, 254, 255], 'frag-ment', 'pong'], close_code: 1000, close_reason: '' });
  const chat = new WebSocket(`ws://127.0.0.1:${port}/svc/chat`);
  const heard: string[] = [];
  const done = new Promise<void>((resolve) => {
    chat.addEventListener('message', (e) => {
      heard.push(String(e.data));
      if (heard.length === 2) chat.send('hi');
      if (heard.length === 3) chat.close();
    });
    chat.addEventListener('close', () => resolve());
  });
  await withDeadline(done, 'the chat session');
  const id = /^welcome #(\d+)$/.exec(heard[0]!)?.[1];
  assert.deepEqual(heard, [`welcome #${id}`, `#${id} joined`, `#${id}: hi`]);

  p.child.kill('SIGTERM');
  const exit = await p.exited;
  assert.deepEqual(exit, { code: 0, signal: null }, p.stderr());
});

test('Ctrl-C (SIGINT to the whole process group) drains the gateway, then the services, once: exit 0, no restart', async () => {
  const p = spawnM2gate(['start', '--port', '0', '--workers', '1'], { detached: true });
  m2gate = p;
  await Promise.all([
    p.waitFor((l) => l.msg === 'connected to the gateway', 'service connected to the gateway over the link'),
    p.waitFor((l) => l.msg === 'handler connected', 'gateway saw the service'),
  ]);
  // A terminal sends SIGINT to every process of the foreground group, services included.
  process.kill(-p.child.pid!, 'SIGINT');
  const exit = await p.exited;
  assert.deepEqual(exit, { code: 0, signal: null }, p.stderr());
  const lines = p.lines;
  const stopped = lines.find((l) => l.msg === 'service stopped');
  assert.ok(stopped, 'the service logged its stop');
  assert.equal(stopped.drained, true);
  assert.equal(lines.filter((l) => l.msg === 'second signal: exiting now').length, 0);
  assert.equal(lines.filter((l) => l.msg === 'service process died; restarting').length, 0);
});
