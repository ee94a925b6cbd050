// A Brubeck service client calls an m2gate service (workers/brubeck-front.ts): the Python
// client written from docs/brubeck-service-wire.md (test/fixtures/python/brubeck_peer.py)
// binds PUSH and DEALER; `m2gate service --brubeck ADDR,RESP_ADDR --passphrase-file F`
// connects, runs each request on its worker threads by METHOD and path
// (test/fixtures/routes/brubeck-routes.mjs) and answers the client that asked.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { fixtureRoutes, isMsg, spawnService, stopAll, type LogLine } from './helpers/service.js';
import { ipcEndpoint } from './helpers/mongrel2.js';
import { passphraseFile, requirePythonZmq, spawnPeer } from './helpers/brubeck.js';

requirePythonZmq();
const SECRET = 'shared-secret-for-the-service-9d1e';
const ADDR = ipcEndpoint('slow');
const RESP = ipcEndpoint('slow_response');
const file = passphraseFile(SECRET);

const client = spawnPeer(['client', file, ADDR, RESP]);
await client.waitFor((l) => l.event === 'ready', 'ready');
const service = spawnService([fixtureRoutes('brubeck-routes.mjs'), '--brubeck', `brubeck+${ADDR},${RESP}`, '--passphrase-file', file, '--workers', '2']);
await service.ready();

after(async () => {
  await client.stop();
  await stopAll();
});

let tags = 0;
/** Sends one call; resolves with the conn_id the client gave it. */
async function call(cmd: Record<string, unknown>): Promise<string> {
  const tag = `t${++tags}`;
  client.command({ op: 'call', tag, ...cmd });
  return (await client.waitFor((l) => l.event === 'sent' && l.tag === tag, `sent ${tag}`)).conn_id as string;
}
const answer = (connId: string, event = 'response'): Promise<LogLine> => client.waitFor((l) => l.event === event && l.conn_id === connId, `${event} to ${connId}`);
const answersTo = (connId: string): LogLine[] => client.lines.filter((l) => (l.event === 'response' || l.event === 'handled') && l.conn_id === connId);

test('sync: a request runs on a worker thread by METHOD and path; the response goes back to its client', async () => {
  const id = await call({ path: '/service/echo', args: { data: 'hello' }, body: { x: [1, 2] }, headers: { 'X-Tag': 'sync' } });
  const r = await answer(id);
  assert.equal(r.status_code, 200);
  assert.equal(r.status_msg, 'OK');
  assert.equal(r.method, 'response');
  assert.equal(r.path, '/service/echo');
  assert.equal(r.version, '0.1.3');
  assert.deepEqual(r.arguments, { data: 'hello' });
  const body = r.body as Record<string, unknown>;
  assert.deepEqual({ ...body, thread: undefined }, { RETURN_DATA: 'hello', arguments: { data: 'hello' }, body: { x: [1, 2] }, tag: 'sync', method: 'REQUEST', thread: undefined });
  assert.notEqual(body.thread, 0, 'ran on a worker thread, not the main one');
  assert.equal((r.headers as Record<string, string>)['Content-Type'], 'application/json');
});

test('async: handle_response 1 is echoed, so the client routes the response to its handler by path', async () => {
  const id = await call({ path: '/service/echo', args: { data: 'later' }, handle: 1 });
  const r = await answer(id, 'handled');
  assert.equal(r.handler, 'EchoResponseHandler');
  assert.equal((r.body as { RETURN_DATA: string }).RETURN_DATA, 'later');
});

test('0.1.0 framing: answered in 0.1.0', async () => {
  const r = await answer(await call({ path: '/service/echo', args: { data: 'old' }, version: '0.1.0' }));
  assert.equal(r.version, '0.1.0');
  assert.equal((r.body as { RETURN_DATA: string }).RETURN_DATA, 'old');
});

test('routing: a body that is not JSON is wrapped as RETURN_DATA; unknown path → 404; another method → 405', async () => {
  const text = await answer(await call({ path: '/service/text' }));
  assert.deepEqual(text.body, { RETURN_DATA: 'plain text, not JSON' });
  const missing = await answer(await call({ path: '/service/none' }));
  assert.equal(missing.status_code, 404);
  const wrong = await answer(await call({ path: '/service/slow', method: 'post' }));
  assert.equal(wrong.status_code, 405);
  assert.equal((wrong.headers as Record<string, string>).Allow, 'REQUEST');
});

test('past the route deadline: the client gets 504; the late result is dropped and counted', async () => {
  const r = await answer(await call({ path: '/service/slow', args: { ms: 2000, data: 'late' } }));
  assert.equal(r.status_code, 504);
  assert.equal(r.status_msg, 'Gateway Timeout');
  const fast = await answer(await call({ path: '/service/slow', args: { ms: 10, data: 'quick' } }));
  assert.equal(fast.status_code, 200);
  assert.equal((fast.body as { RETURN_DATA: string }).RETURN_DATA, 'quick');
});

test('a wrong passphrase is refused and logged without its value; the service keeps serving', async () => {
  const bad = await call({ path: '/service/echo', args: { data: 'intruder' }, passphrase: 'guess' });
  const line = await service.waitFor(isMsg('brubeck request refused: wrong passphrase'));
  assert.equal(line.connId, bad);
  const ok = await answer(await call({ path: '/service/echo', args: { data: 'after' } }));
  assert.equal(ok.status_code, 200);
  assert.deepEqual(answersTo(bad), []);
});

test('a malformed message is skipped and logged; the service keeps serving', async () => {
  client.command({ op: 'raw', data: 'deadbeef 3:abc this is not a brubeck request' });
  await service.waitFor(isMsg('malformed brubeck request skipped'));
  const ok = await answer(await call({ path: '/service/echo', args: { data: 'still here' } }));
  assert.equal(ok.status_code, 200);
});

test('100 concurrent calls are each answered once with their own data', async () => {
  const ids = await Promise.all(Array.from({ length: 100 }, (_, i) => call({ path: '/service/echo', args: { data: `d${i}`, i } })));
  const replies = await Promise.all(ids.map((id) => answer(id)));
  replies.forEach((r, i) => {
    assert.equal(r.status_code, 200);
    assert.equal((r.body as { RETURN_DATA: string }).RETURN_DATA, `d${i}`);
    assert.deepEqual(r.arguments, { data: `d${i}`, i });
  });
  // Barrier: one more call answered after them, then each of the 100 was answered once.
  await answer(await call({ path: '/service/echo', args: { data: 'barrier' } }));
  for (const id of ids) assert.equal(answersTo(id).length, 1);
});

test('SIGTERM: the service stops cleanly; its stats count the timeout and the late result; no log line holds the passphrase', async () => {
  const exit = await service.stop();
  assert.equal(exit.code, 0);
  const stopped = await service.waitFor(isMsg('service stopped'));
  const stats = stopped.stats as { timedOut: number; lateResults: number; replied: number };
  assert.equal(stats.timedOut, 1);
  assert.equal(stats.lateResults, 1);
  for (const l of service.lines) assert.ok(!JSON.stringify(l).includes(SECRET), JSON.stringify(l));
  assert.ok(!service.stderr().includes(SECRET));
});
