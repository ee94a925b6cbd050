// The demo service behind the real Mongrel2 under load: 200 concurrent
// CPU-heavy requests on two worker threads, all answered, two threads at once,
// and a cheap route still answered while the heavy one is saturated.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request } from 'undici';
import { mongrel2Front, startService, stopAll, isRequestLog } from './helpers/service.js';

const FIB_27 = 196418;
const FIB_REQUESTS = 200;
// A hello after every 30th fib request, up to the 120th: each has many fib
// requests behind it, so "before the fib load finished" is not a close call.
const HELLO_EVERY = 30;
const HELLO_UNTIL = 120;

const agent = new Agent({ connections: FIB_REQUESTS + 10, keepAliveTimeout: 100, keepAliveMaxTimeout: 100 });
after(async () => {
  await stopAll();
  await agent.close();
});

interface FibReply {
  n: number;
  fib: number;
  thread: number;
  started: number;
  finished: number;
}

test('200 concurrent /svc/fib/27 on --workers 2 behind Mongrel2: all correct, two threads at once, /svc/hello still answered', async () => {
  const front = await mongrel2Front({ route: '/svc/' });
  // The default queue (64 per thread, so 128 here) is smaller than this burst:
  // when all 200 arrive before two threads drain them, the excess gets 503 by
  // design (see service-queue.test.ts), so the queue is sized for the burst.
  const svc = await startService(['--send', front.send, '--recv', front.recv, '--workers', '2', '--max-queue', String(FIB_REQUESTS + 16)]);
  const base = front.base;

  let fibDone = 0;
  const fibs: Array<Promise<{ status: number; body: FibReply }>> = [];
  const hellos: Array<Promise<{ status: number; body: string; fibDoneBefore: number }>> = [];
  for (let i = 0; i < FIB_REQUESTS; i++) {
    fibs.push(
      request(`${base}/svc/fib/27`, { dispatcher: agent }).then(async (res) => {
        const text = await res.body.text();
        fibDone++;
        return { status: res.statusCode, body: (res.statusCode === 200 ? JSON.parse(text) : text) as FibReply };
      }),
    );
    // Hello requests are issued while fib requests are in flight, between them.
    if ((i + 1) % HELLO_EVERY === 0 && i + 1 <= HELLO_UNTIL) {
      hellos.push(
        request(`${base}/svc/hello`, { dispatcher: agent }).then(async (res) => ({
          status: res.statusCode,
          body: await res.body.text(),
          fibDoneBefore: fibDone,
        })),
      );
    }
  }
  const helloResults = await Promise.all(hellos);
  const answers = await Promise.all(fibs);
  assert.deepEqual(answers.filter((a) => a.status !== 200).length, 0, 'every fib request answered 200');
  const replies = answers.map((a) => a.body);

  assert.equal(replies.length, FIB_REQUESTS);
  for (const r of replies) assert.deepEqual([r.n, r.fib], [27, FIB_27]);

  // Every hello answered before the fib load finished.
  assert.equal(helloResults.length, HELLO_UNTIL / HELLO_EVERY);
  for (const h of helloResults) assert.deepEqual([h.status, h.body], [200, 'hello']);
  for (const h of helloResults) assert.ok(h.fibDoneBefore < FIB_REQUESTS, `a hello waited for all ${FIB_REQUESTS} fib requests`);

  // Two distinct threads, and some two requests on different threads overlapped in time.
  const threads = new Set(replies.map((r) => r.thread));
  assert.equal(threads.size, 2, `threads seen: ${[...threads].join(', ')}`);
  const [a, b] = [...threads];
  const onA = replies.filter((r) => r.thread === a);
  const onB = replies.filter((r) => r.thread === b);
  const overlapping = onA.some((x) => onB.some((y) => x.started < y.finished && y.started < x.finished));
  assert.ok(overlapping, 'no two fib spans on different threads overlapped');

  // The service logged one line per request with status 200.
  const logged = await svc.waitForCount(isRequestLog(), FIB_REQUESTS + hellos.length);
  assert.ok(logged.every((l) => l.status === 200));
  const fibLogs = logged.filter((l) => l.route === 'GET /svc/fib/:n');
  assert.equal(fibLogs.length, FIB_REQUESTS);
  // Saturated: some requests waited for a thread.
  assert.ok(fibLogs.some((l) => (l.waitMs as number) > 10), 'no fib request ever waited for a thread');
});
