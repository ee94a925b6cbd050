// Malformed messages on the PULL socket are skipped with a warning that carries
// a running count, and the service keeps serving. Garbage cannot be sent
// through Mongrel2, so the test is the front: it binds the PUSH and SUB.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { encodeRequest } from '../protocol/m2-request.js';
import { fakeFront, FRONT_SENDER, isMsg, parseHttp, startService, stopAll } from './helpers/service.js';

after(stopAll);

const valid = encodeRequest({ sender: FRONT_SENDER, connId: 5, path: '/svc/hello', headers: { PATH: '/svc/hello', METHOD: 'GET', VERSION: 'HTTP/1.1' } }, 'json');

const GARBAGE: Array<[string, Buffer]> = [
  ['plain text', Buffer.from('hello there')],
  ['an empty message', Buffer.alloc(0)],
  ['a truncated request', valid.subarray(0, valid.length - 5)],
  ['trailing bytes', Buffer.concat([valid, Buffer.from('xx')])],
  ['a header length past the end', Buffer.from(`${FRONT_SENDER} 1 /svc/hello 999999:{},0:,`)],
  ['headers that are not JSON', Buffer.from(`${FRONT_SENDER} 1 /svc/hello 5:{oops,0:,`)],
  ['a connection id that is not a number', Buffer.from(`${FRONT_SENDER} x1 /svc/hello 2:{},0:,`)],
  ['a tnetstring dict with a bad value tag', Buffer.from(`${FRONT_SENDER} 1 /svc/hello 13:6:METHOD,3:GET?}0:,`)],
  ['random bytes', Buffer.from([0xff, 0x00, 0x20, 0x3a, 0x2c, 0x7d, 0x5d, 0x20, 0x20])],
];

test('malformed messages are logged with a count and skipped; the next valid request is answered', async () => {
  const front = await fakeFront();
  const svc = await startService(['--send', front.send, '--recv', front.recv, '--workers', '1']);
  for (const [, bytes] of GARBAGE) await front.push(bytes);
  await front.push(valid);

  const reply = await front.next();
  assert.deepEqual(reply.ids, [5]);
  const res = parseHttp(reply.body);
  assert.deepEqual([res.status, res.body], [200, 'hello']);

  const warnings = await svc.waitForCount(isMsg('malformed message skipped'), GARBAGE.length);
  assert.deepEqual(
    warnings.map((w) => w.malformed),
    GARBAGE.map((_, i) => i + 1),
  );
  for (const [i, w] of warnings.entries()) {
    assert.equal(w.level, 40, GARBAGE[i]![0]);
    assert.equal(w.bytes, GARBAGE[i]![1].length, GARBAGE[i]![0]);
    assert.equal(typeof w.err, 'string', GARBAGE[i]![0]);
  }
  // Nothing else was sent, and the count is in the final stats.
  assert.equal(front.pending, 0);
  const stopping = svc.stop();
  const stopped = await svc.waitFor(isMsg('service stopped'));
  assert.equal((await stopping).code, 0);
  assert.deepEqual(stopped.stats, { ...(stopped.stats as object), malformed: GARBAGE.length, received: 1, replied: 1 });
});

test('a malformed message between two requests does not disturb either', async () => {
  const front = await fakeFront();
  await startService(['--send', front.send, '--recv', front.recv, '--workers', '2']);
  await front.request(1, '/svc/hello');
  await front.push(Buffer.from('not a request'));
  await front.request(2, '/svc/fib/20');
  const replies = [await front.next(), await front.next()].sort((a, b) => a.ids[0]! - b.ids[0]!);
  assert.equal(parseHttp(replies[0]!.body).body, 'hello');
  assert.equal((JSON.parse(parseHttp(replies[1]!.body).body) as { fib: number }).fib, 6765);
});
