// Issue #8, Faults: slow clients against the standalone gateway (in-process, GatewayOptions
// headersTimeoutMs 500 and requestTimeoutMs 1000 — the CLI's --headers-timeout and
// --request-timeout; the last test runs the CLI itself):
// - slowloris: the head trickled a byte at a time, never finished → 408 (or a close) once the
//   headers timeout has passed, and the handler never hears of it;
// - slow body: the head complete, the body trickled → 408 (or a close) once the request timeout
//   has passed; nothing reaches the handler;
// - meanwhile another client is served normally.
// The trickle is the subject of the test (a client that sends slowly), not a way to wait; every
// verdict is awaited as an event (the 408 bytes, the socket closing). Elapsed times are checked
// against the configured timeout from below (never cut early) and printed; the upper guard is
// loose (the check runs on node's connectionsCheckingInterval).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { confText, fakeHandler, handlerConf, spawnM2gate, startGateway, tempTree, RawClient, type RawResponse } from './helpers/gateway.js';

const HEADERS_MS = 500;
const REQUEST_MS = 1000;
const H = handlerConf('/h/', '510c11e7-0000-4000-8000-0000000slow0');
const rig = await startGateway({ handlers: [H] }, { headersTimeoutMs: HEADERS_MS, requestTimeoutMs: REQUEST_MS });
const handler = await fakeHandler(H, rig.pool('/h/'));
after(async () => {
  handler.stop();
  await rig.close();
});

const ok = (body: string): string => `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
const figures: Record<string, number> = {};

/**
 * Writes `bytes` one at a time every `everyMs` until the connection ends or they run out.
 * Resolves with the time from the first byte to the end of the connection, and what came back.
 */
async function trickle(c: RawClient, bytes: string, everyMs: number): Promise<{ ms: number; answer: Buffer }> {
  const t0 = performance.now();
  const ended = c.end().then((rest) => ({ ms: performance.now() - t0, answer: rest }));
  for (const ch of bytes) {
    if (c.ended) break;
    c.write(ch);
    await Promise.race([delay(everyMs), c.closed]);
  }
  return ended;
}

/** A request served normally while a slow client is being timed out. */
async function servedMeanwhile(tag: string): Promise<void> {
  const c = await rig.client();
  c.write(`GET /h/meanwhile/${tag} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
  const { msg } = await handler.next(`request meanwhile ${tag}`);
  assert.equal(msg.headers.PATH, `/h/meanwhile/${tag}`);
  await handler.reply(msg.connId, ok(`served ${tag}`));
  const r: RawResponse = await c.response();
  assert.equal(r.status, 200);
  assert.equal(r.body.toString(), `served ${tag}`);
  c.destroy();
}

/** 408 with Connection: close, or a plain close; never another status. */
function assertTimedOut(answer: Buffer): '408' | 'close' {
  const text = answer.toString('latin1');
  if (text.length === 0) return 'close';
  assert.match(text, /^HTTP\/1\.1 408 /, text);
  assert.match(text, /\r\nConnection: close\r\n/i);
  assert.equal(text.match(/HTTP\/1\.1 /g)?.length, 1, 'one answer only');
  return '408';
}
const verdicts: Record<string, string> = {};

/** The handler got nothing for the slow request: the next message it receives is this probe. */
async function handlerSawNothing(tag: string): Promise<void> {
  const c = await rig.client();
  c.write(`GET /h/probe/${tag} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
  const { msg } = await handler.next('probe');
  assert.equal(msg.headers.PATH, `/h/probe/${tag}`, 'the slow request reached the handler');
  await handler.reply(msg.connId, ok('probe'));
  assert.equal((await c.response()).status, 200);
  c.destroy();
}

test('slowloris: a head trickled and never finished → 408 or close after the headers timeout; others served meanwhile', async () => {
  const sentBefore = rig.pool('/h/').stats.sent;
  const slow = await rig.client();
  // A head that never ends: header lines forever, one byte every 50 ms.
  const head = `GET /h/loris HTTP/1.1\r\nHost: localhost\r\n${Array.from({ length: 200 }, (_, i) => `X-Pad-${i}: ${i}\r\n`).join('')}`;
  const verdict = trickle(slow, head, 50);
  await servedMeanwhile('loris');
  const { ms, answer } = await verdict;
  figures.slowlorisMs = ms;
  verdicts.slowloris = assertTimedOut(answer);
  assert.ok(ms >= HEADERS_MS - 20, `cut after ${ms} ms, before the ${HEADERS_MS} ms headers timeout`);
  assert.ok(ms < HEADERS_MS + 3000, `still open ${ms} ms after the first byte`);
  assert.equal(rig.pool('/h/').stats.sent - sentBefore, 1, 'only the request served meanwhile was sent');
  await handlerSawNothing('loris');
  assert.equal(rig.pool('/h/').pending, 0);
  assert.equal(rig.gateway.inFlight, 0);
});

test('slow body: head complete, body trickled → 408 or close after the request timeout; nothing reaches the handler', async () => {
  const sentBefore = rig.pool('/h/').stats.sent;
  const slow = await rig.client();
  const body = 'b'.repeat(200);
  slow.write(`POST /h/slow-body HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n\r\n`);
  const verdict = trickle(slow, body, 50);
  await servedMeanwhile('body');
  const { ms, answer } = await verdict;
  figures.slowBodyMs = ms;
  verdicts.slowBody = assertTimedOut(answer);
  // Timed from the first body byte; the head went out just before it.
  assert.ok(ms >= REQUEST_MS - 100, `cut after ${ms} ms, before the ${REQUEST_MS} ms request timeout`);
  assert.ok(ms < REQUEST_MS + 3000, `still open ${ms} ms after the first body byte`);
  assert.equal(rig.pool('/h/').stats.sent - sentBefore, 1, 'only the request served meanwhile was sent');
  await handlerSawNothing('body');
  assert.equal(rig.pool('/h/').pending, 0);
  assert.equal(rig.gateway.inFlight, 0);
});

test('the CLI: m2gate gateway --headers-timeout 500 --request-timeout 1000 cuts a slowloris head', async () => {
  const dir = tempTree();
  const conf = join(dir, 'mongrel2.conf');
  writeFileSync(conf, confText({ handlers: [handlerConf('/h/', '510c11e7-0000-4000-8000-00000000cli0')] }));
  const gw = spawnM2gate(['gateway', '--config', conf, '--port', '0', '--headers-timeout', String(HEADERS_MS), '--request-timeout', String(REQUEST_MS)], { cwd: dir });
  try {
    const listening = await gw.waitFor((l) => l.msg === 'gateway listening', 'gateway listening');
    const c = await RawClient.open(listening.port as number);
    const { ms, answer } = await trickle(c, `GET /h/cli HTTP/1.1\r\nHost: localhost\r\n${'X-Pad: 1\r\n'.repeat(200)}`, 50);
    figures.cliSlowlorisMs = ms;
    verdicts.cliSlowloris = assertTimedOut(answer);
    assert.ok(ms >= HEADERS_MS - 20 && ms < HEADERS_MS + 3000, `${ms} ms`);
  } finally {
    gw.kill();
    await gw.exited;
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(`faults-slow-client: time to the cut (ms): ${JSON.stringify(Object.fromEntries(Object.entries(figures).map(([k, v]) => [k, Math.round(v)])))}, answers: ${JSON.stringify(verdicts)}`);
});
