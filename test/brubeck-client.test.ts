// App routes call a Brubeck service (gateway/brubeck-client.ts): HTTP client → app route →
// ctx.call / ctx.send('brubeck://NAME/path') → PUSH/DEALER → a brubeck-service service written
// in Python from docs/brubeck-service-wire.md (test/fixtures/python/brubeck_peer.py) → the
// response, correlated by conn_id, back to the route or its response handler.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { Gateway } from '../gateway/gateway.js';
import type { BrubeckReply } from '../gateway/brubeck-client.js';
import { defineApp, type OnReply } from '../gateway/app.js';
import type { M2gateError } from '../protocol/errors.js';
import { findServer, parseConfig } from '../protocol/mongrel2-conf.js';
import { BrubeckPassphrase } from '../protocol/brubeck-passphrase.js';
import { confText, logCapture, tempTree, type LogLine } from './helpers/gateway.js';
import { ipcEndpoint } from './helpers/mongrel2.js';
import { passphraseFile, requirePythonZmq, spawnPeer } from './helpers/brubeck.js';

requirePythonZmq();
const SECRET = 'my_shared_secret-7f3a9c';

const capture = logCapture();
const logger = capture.logger;
const logLines = capture.lines;
const logLine = (pred: (line: LogLine) => boolean, what: string): Promise<LogLine> => capture.waitFor(pred, what);

// ---- the app: its response handler reports here ----------------------------------------------

const handled = new EventEmitter();
const onReply = (tag: string): OnReply => (err, reply) => handled.emit(tag, { err, reply });
const app = defineApp({
  'GET /b/sync': async (_req, ctx) => {
    const reply = (await ctx.call('brubeck://py/service/echo?data=hello', { body: '{"x": 1}', headers: { 'X-Tag': 'sync' } })) as BrubeckReply;
    return { status: reply.status, reason: reply.reason, path: reply.path, method: reply.method, body: reply.json(), headers: reply.headers };
  },
  'GET /b/echo/:n': async (req, ctx) => {
    const reply = await ctx.call(`brubeck://py/service/echo?data=${req.params.n}`, { arguments: { n: Number(req.params.n) } });
    return reply.json();
  },
  'GET /b/v010': async (_req, ctx) => (await ctx.call('brubeck://py010/service/echo?data=old')).json(),
  'GET /b/async/:tag': (req, ctx) => {
    ctx.send(`brubeck://py/service/slow?ms=50&data=${req.params.tag}`, {}, onReply(req.params.tag!));
    return { status: 202, body: { queued: true } };
  },
  'GET /b/slow': async (_req, ctx) => ctx.call('brubeck://py/service/slow?ms=600&data=late', { timeoutMs: 150 }),
  'GET /b/path/*': async (req, ctx) => (await ctx.call(`brubeck://py/${req.params['*']!}`, { arguments: req.query })).json(),
  'GET /b/badpass': async (_req, ctx) => ctx.call('brubeck://bad/service/echo?data=x', { timeoutMs: 300 }),
  'GET /b/none': async (_req, ctx) => ctx.call('brubeck://nobody/service/echo'),
  'GET /b/unknown': async (_req, ctx) => ctx.call('brubeck://nosuch/service/echo'),
  'GET /b/space': async (_req, ctx) => ctx.call('brubeck://py/service/a b'),
});

// ---- the rig --------------------------------------------------------------------------------

const pairs = Object.fromEntries(['py', 'py010', 'bad', 'nobody'].map((n) => [n, { serviceAddr: ipcEndpoint(`${n}`), responseAddr: ipcEndpoint(`${n}_response`) }]));
const passphrase = new BrubeckPassphrase(SECRET);
const dir = tempTree();
const config = parseConfig(confText({}), join(dir, 'mongrel2.conf'));
const gateway = new Gateway({
  config,
  server: findServer(config),
  cwd: dir,
  port: 0,
  host: '127.0.0.1',
  logger,
  app,
  brubeck: [
    { name: 'py', ...pairs.py!, passphrase },
    { name: 'py010', ...pairs.py010!, passphrase, version: '0.1.0' },
    { name: 'bad', ...pairs.bad!, passphrase: new BrubeckPassphrase('not-the-secret') },
    { name: 'nobody', ...pairs.nobody!, passphrase },
  ],
});
const port = await gateway.start();
const base = `http://127.0.0.1:${port}`;
const agent = new Agent({ keepAliveTimeout: 1000, connections: 128 });

const peer = spawnPeer(['service', passphraseFile(SECRET), ...['py', 'py010', 'bad'].map((n) => `${pairs[n]!.serviceAddr},${pairs[n]!.responseAddr}`)]);
await peer.waitFor((l) => l.event === 'ready', 'ready');
await Promise.all(['py', 'py010', 'bad'].map((n) => logLine((l) => l.brubeck === n && l.msg === 'brubeck service connected', `${n} connected`)));

after(async () => {
  await peer.stop();
  await agent.close();
  await gateway.close();
});

async function get(path: string): Promise<{ status: number; body: string }> {
  const res = await request(`${base}${path}`, { dispatcher: agent });
  return { status: res.statusCode, body: await res.body.text() };
}
const client = (name: string) => gateway.brubeck.get(name)!;

// ---- tests ----------------------------------------------------------------------------------

test('sync: ctx.call reaches the Python service and resolves with its response', async () => {
  const r = await get('/b/sync');
  assert.equal(r.status, 200);
  const body = JSON.parse(r.body) as Record<string, unknown>;
  assert.equal(body.status, 200);
  assert.equal(body.reason, 'OK');
  assert.equal(body.path, '/service/echo');
  assert.equal(body.method, 'response');
  assert.deepEqual(body.headers, { 'x-served-by': 'python' });
  assert.deepEqual(body.body, { RETURN_DATA: 'hello', arguments: { data: 'hello' }, body: { x: 1 }, headers: { 'X-Tag': 'sync' } });
  const req = await peer.waitFor((l) => l.event === 'request' && (l.arguments as { data?: string }).data === 'hello', 'the request');
  assert.equal(req.method, 'request');
  assert.equal(req.version, '0.1.3');
  assert.equal(req.handle_response, '0');
});

test('0.1.0 framing: a service configured as 0.1.0 gets requests without handle_response', async () => {
  const r = await get('/b/v010');
  assert.equal(r.status, 200);
  assert.equal((JSON.parse(r.body) as { RETURN_DATA: string }).RETURN_DATA, 'old');
  const req = await peer.waitFor((l) => l.event === 'request' && (l.arguments as { data?: string }).data === 'old', 'the 0.1.0 request');
  assert.equal(req.version, '0.1.0');
});

test('async: ctx.send answers at once; the response reaches the response handler exactly once', async () => {
  const got: Array<{ err: M2gateError | null; reply?: BrubeckReply }> = [];
  const first = new Promise<void>((resolve) => handled.on('a1', (e: { err: M2gateError | null; reply?: BrubeckReply }) => (got.push(e), resolve())));
  const r = await get('/b/async/a1');
  assert.equal(r.status, 202);
  await first;
  assert.equal(got[0]!.err, null);
  assert.equal(got[0]!.reply!.path, '/service/slow');
  assert.equal(got[0]!.reply!.reason, 'Took a while, but I am back.');
  assert.equal((got[0]!.reply!.json() as { RETURN_DATA: string }).RETURN_DATA, 'a1');
  const req = await peer.waitFor((l) => l.event === 'request' && (l.arguments as { data?: string }).data === 'a1', 'the async request');
  assert.equal(req.handle_response, '1');
  // Barrier: a later call on the same sockets is answered, so a second delivery would have come.
  assert.equal((await get('/b/echo/0')).status, 200);
  assert.equal(got.length, 1);
});

test('past the deadline: 504 to the client; the late response is dropped and counted', async () => {
  const late = client('py').stats.late;
  const r = await get('/b/slow');
  assert.equal(r.status, 504);
  assert.match(r.body, /no response from brubeck:\/\/py\/service\/slow/);
  await logLine((l) => l.msg === 'brubeck response dropped: no call waits for it (late)' && l.brubeck === 'py', 'late response');
  assert.equal(client('py').stats.late, late + 1);
  assert.equal(client('py').pending, 0);
});

test('a response with a wrong passphrase is refused and logged; the loop goes on and the right one is delivered', async () => {
  const refused = client('py').stats.refused;
  const r = await get('/b/path/service/wrongpass?data=wp');
  assert.equal(r.status, 200);
  assert.equal(client('py').stats.refused, refused + 1);
  await logLine((l) => l.msg === 'brubeck response refused: wrong passphrase', 'refused');
});

test('a wrong passphrase of ours: the service refuses the request and the call gets 504', async () => {
  const r = await get('/b/badpass');
  assert.equal(r.status, 504);
  await peer.waitFor((l) => l.event === 'refused', 'the peer refused');
});

test('malformed responses are dropped and counted; the right response still arrives', async () => {
  const malformed = client('py').stats.malformed;
  const r = await get('/b/path/service/malformed?data=m');
  assert.equal(r.status, 200);
  assert.equal((JSON.parse(r.body) as { RETURN_DATA: string }).RETURN_DATA, 'm');
  assert.equal(client('py').stats.malformed, malformed + 2);
});

test('100 concurrent calls are each answered once with their own data', async () => {
  const answered = client('py').stats.answered;
  const results = await Promise.all(Array.from({ length: 100 }, (_, i) => get(`/b/echo/${i + 1000}`)));
  results.forEach((r, i) => {
    assert.equal(r.status, 200);
    const body = JSON.parse(r.body) as { RETURN_DATA: string; arguments: { n: number } };
    assert.equal(body.RETURN_DATA, String(i + 1000));
    assert.equal(body.arguments.n, i + 1000);
  });
  assert.equal(client('py').stats.answered, answered + 100);
  assert.equal(client('py').pending, 0);
});

test('no service connected → 503; an unknown name → 404; a space in the path → 400 before anything is sent', async () => {
  assert.equal((await get('/b/none')).status, 503);
  assert.equal((await get('/b/unknown')).status, 404);
  const sent = client('py').stats.sent;
  const r = await get('/b/space');
  assert.equal(r.status, 400);
  assert.match(r.body, /path contains a space/);
  assert.equal(client('py').stats.sent, sent);
});

test('the passphrase appears in no log line', () => {
  assert.ok(logLines.length > 10);
  for (const line of logLines) assert.ok(!JSON.stringify(line).includes(SECRET), JSON.stringify(line));
  assert.ok(!JSON.stringify(passphrase).includes(SECRET));
});
