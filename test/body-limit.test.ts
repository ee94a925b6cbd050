// Bodies over a Handler route's limits.content_length (issue #18 item 5): the client always reads
// a complete 413 and a clean close, never a connection reset, and a client that sends
// `Expect: 100-continue` with a Content-Length over the limit gets the 413 instead of
// `100 Continue`.
//
// The reset came from closing the socket while the client was still sending: bytes arriving at
// a closed socket make the kernel answer RST, and a client still writing then fails with EPIPE
// or ECONNRESET, often before it has read the 413. The clients below (test/fixtures/flood-client.mjs)
// write the whole body as fast as they can and only then read, from their own thread.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Worker } from 'node:worker_threads';
import { defineApp } from '../gateway/app.js';
import { fakeHandler, handlerConf, startGateway, type RawClient } from './helpers/gateway.js';

const H = handlerConf('/h/', '1a2b3c4d-0000-4000-8000-0000bodylimit');
const MiB = 1024 * 1024;
const LIMIT = MiB;
const TRIES = 60;
const WAIT_MS = 10_000;

/** What test/fixtures/flood-client.mjs takes and posts back (one outcome per try). */
interface FloodJob {
  port: number;
  request: Uint8Array;
  tries: number;
  /** A try whose connection is still open after this many ms counts as stuck. */
  waitMs: number;
}
interface FloodOutcome {
  /** Everything read before the connection closed, latin1. */
  text: string;
  /** The first socket error (ECONNRESET, EPIPE), if any. */
  error: string | undefined;
  stuck: boolean;
}

// A Proxy route's upstream: answers with the body length it read.
const upstream = createServer((req, res) => {
  let size = 0;
  req.on('data', (chunk: Buffer) => (size += chunk.length));
  req.on('end', () => res.end(`upstream read ${size}`));
});
upstream.listen(0, '127.0.0.1');
await once(upstream, 'listening');
const upPort = (upstream.address() as AddressInfo).port;
// App routes have their own limit, MAX_APP_BODY (1 MiB) in gateway/app.ts.
const app = defineApp({ 'POST /app/echo': (req) => `app read ${req.body.length}` });

const rig = await startGateway(
  { handlers: [H], routes: [`'/p/': Proxy(addr='127.0.0.1', port=${upPort})`], settings: { 'limits.content_length': LIMIT } },
  { app },
);
const handler = await fakeHandler(H, rig.pool('/h/'));
after(async () => {
  handler.stop();
  await rig.close();
  upstream.close();
});

/** `body` as chunks of 64 KiB and the last chunk (RFC 9112 §7.1). */
function chunked(body: Buffer): Buffer {
  const parts: Buffer[] = [];
  for (let at = 0; at < body.length; at += 65_536) {
    const piece = body.subarray(at, at + 65_536);
    parts.push(Buffer.from(`${piece.length.toString(16)}\r\n`, 'latin1'), piece, Buffer.from('\r\n', 'latin1'));
  }
  parts.push(Buffer.from('0\r\n\r\n', 'latin1'));
  return Buffer.concat(parts);
}

/** `tries` connections, each sending `request`, from a client on its own thread. */
async function flood(request: Buffer, tries: number): Promise<FloodOutcome[]> {
  const job: FloodJob = { port: rig.port, request, tries, waitMs: WAIT_MS };
  const worker = new Worker(new URL('./fixtures/flood-client.mjs', import.meta.url), { workerData: job });
  const exited = once(worker, 'exit');
  const gone = exited.then(([code]: unknown[]) => Promise.reject(new Error(`the flood client exited (${String(code)}) without its outcomes`)));
  const [outcomes] = (await Promise.race([once(worker, 'message'), gone])) as [FloodOutcome[]];
  await exited;
  return outcomes;
}

/** True if `text` is one complete 413 (head and its Content-Length of body) and nothing after. */
function only413(text: string): boolean {
  const headEnd = text.indexOf('\r\n\r\n');
  if (headEnd < 0 || !text.startsWith('HTTP/1.1 413 ')) return false;
  const length = /\r\ncontent-length: *(\d+)/i.exec(text.slice(0, headEnd));
  return length !== null && text.length === headEnd + 4 + Number(length[1]);
}

async function every413(request: Buffer): Promise<void> {
  const outcomes = await flood(request, TRIES);
  const failures = outcomes.flatMap(({ text, error, stuck }, i) =>
    only413(text) && error === undefined && !stuck ? [] : [`try ${i}: ${error ?? (stuck ? 'still open' : 'closed')} after ${JSON.stringify(text.slice(0, 40))}`],
  );
  assert.deepEqual(failures, [], `${failures.length} of ${outcomes.length} tries did not read a complete 413 and a clean close`);
  assert.equal(outcomes.length, TRIES);
  assert.equal(handler.queued, 0);
}

const withLength = (body: Buffer): Buffer => Buffer.concat([Buffer.from(`POST /h/big HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${body.length}\r\n\r\n`, 'latin1'), body]);
const withChunks = (body: Buffer): Buffer => Buffer.concat([Buffer.from('POST /h/big HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n', 'latin1'), chunked(body)]);

// 2 MiB is the case; 4 MiB makes the race lost nearly every time. Failed tries of 60
// before the lingering close, 7 runs on 2 shared cores: 2 MiB with Content-Length 2-15,
// chunked 0 (libuv reads up to 32 × 64 KiB per poll, so 2 MiB on loopback is mostly read before
// the close); 4 MiB with Content-Length 58-60, chunked 2-28. Mostly EPIPE with no 413 read.
for (const size of [2 * MiB, 4 * MiB]) {
  const body = Buffer.alloc(size, 0x78);
  test(`a ${size / MiB} MiB POST with Content-Length to a 1 MiB limit: a complete 413 and a clean close, ${TRIES} of ${TRIES}`, () => every413(withLength(body)));
  test(`a ${size / MiB} MiB chunked POST to a 1 MiB limit: a complete 413 and a clean close, ${TRIES} of ${TRIES}`, () => every413(withChunks(body)));
}

/** Sends a head with `Expect: 100-continue` and expects the first response to be a 413 (no 100 before it). */
async function refusedWithout100(c: RawClient, path: string): Promise<void> {
  c.write(`POST ${path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${2 * MiB}\r\nExpect: 100-continue\r\n\r\n`);
  const r = await c.response();
  assert.equal(r.status, 413);
  assert.equal(r.headers.connection, 'close');
  assert.equal(c.rest().length, 0);
}

test('Expect: 100-continue with a Content-Length over the limit → 413, no 100 Continue (Handler and app routes)', async () => {
  await refusedWithout100(await rig.client(), '/h/big');
  assert.equal(handler.queued, 0);
  await refusedWithout100(await rig.client(), '/app/echo');
});

/** Sends a 5-byte body after the `100 Continue` it waits for; resolves with all bytes after the 100. */
async function continued(c: RawClient, path: string, last: string): Promise<string> {
  c.write(`POST ${path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n`);
  await c.seen('\r\n\r\n');
  assert.equal(c.rest().toString('latin1'), 'HTTP/1.1 100 Continue\r\n\r\n');
  c.write('hello');
  await c.seen(last);
  return c.rest().toString('latin1').slice('HTTP/1.1 100 Continue\r\n\r\n'.length);
}

test('Expect: 100-continue to app and Proxy routes within their limits → 100 Continue, then the answer', async () => {
  const fromApp = await continued(await rig.client(), '/app/echo', 'app read 5');
  assert.ok(fromApp.startsWith('HTTP/1.1 200 OK\r\n'), fromApp);
  const fromProxy = await continued(await rig.client(), '/p/x', 'upstream read 5');
  assert.ok(fromProxy.startsWith('HTTP/1.1 200 OK\r\n'), fromProxy);
});

test('Expect: 100-continue with a Content-Length within the limit → 100 Continue, then the handler answers', async () => {
  const c = await rig.client();
  c.write('POST /h/small HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n');
  await c.seen('\r\n\r\n');
  assert.equal(c.rest().toString('latin1'), 'HTTP/1.1 100 Continue\r\n\r\n');
  c.write('hello');
  const { msg } = await handler.next('the small body');
  assert.equal(msg.headers.PATH, '/h/small');
  assert.equal(msg.body.toString(), 'hello');
  await handler.reply(msg.connId, 'HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ntook');
  await c.seen('took');
  const text = c.rest().toString('latin1');
  assert.ok(text.startsWith('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n'), text);
  assert.ok(text.endsWith('\r\n\r\ntook'), text);
});
