// WebSocket routes of `m2gate service` ('WS /path': open, message, close on worker threads),
// end to end: the standalone gateway in this process, a Service connected to its Handler over
// PUSH/SUB, and undici's WebSocket as the client (a real client nobody here wrote). The demo
// routes are the built ones (dist/: run `npm run build` first), as `m2gate service` runs them.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { WebSocket } from 'undici';
import { pino } from 'pino';
import { Service } from '../workers/service.js';
import { handlerConf, startGateway, type GatewayRig } from './helpers/gateway.js';
import { fixtureRoutes, ROOT } from './helpers/service.js';
import { handshakeBytes, withDeadline, WsTestClient } from './helpers/ws-client.js';

const cleanups: Array<() => Promise<unknown> | void> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function stack(routesModule: string, link = false): Promise<{ gw: GatewayRig; svc: Service; url: string }> {
  const h = { ...handlerConf(routesModule.includes('demo-routes') ? '/svc/' : '/t/', 'f00d0000-1111-4000-8000-00000000ws01', 'tnetstring'), ...(link ? { transport: 'link' as const } : {}) };
  const gw = await startGateway({ handlers: [h] });
  const front = link ? { connect: h.sendSpec, credit: 4 } : { send: [h.sendSpec], recv: [h.recvSpec] };
  const svc = new Service({ ...front, workers: 2, logger: pino({ level: 'silent' }), routesModule });
  await svc.start();
  await gw.pool(h.route).whenPeer();
  cleanups.push(async () => {
    await gw.close();
    await svc.close();
  });
  return { gw, svc, url: `ws://127.0.0.1:${gw.port}` };
}

const DEMO = pathToFileURL(join(ROOT, 'dist', 'workers', 'demo-routes.js')).href;
const PROBES = pathToFileURL(fixtureRoutes('ws-probes.mjs')).href;
const demo = await stack(DEMO);
const probes = await stack(PROBES);
const linked = await stack(PROBES, true);

/** A client whose messages and close are awaitable in order. */
class Client {
  readonly ws: WebSocket;
  readonly #got: Array<string | Buffer> = [];
  readonly #waiters: Array<() => void> = [];
  readonly opened: Promise<void>;
  readonly closed: Promise<{ code: number; reason: string }>;

  constructor(url: string) {
    this.ws = new WebSocket(url);
    this.ws.binaryType = 'arraybuffer';
    this.opened = withDeadline(new Promise((resolve, reject) => {
      this.ws.addEventListener('open', () => resolve());
      this.ws.addEventListener('error', () => reject(new Error(`WebSocket ${url} failed`)));
    }), `open ${url}`);
    this.closed = new Promise((resolve) => this.ws.addEventListener('close', (e) => resolve({ code: e.code, reason: e.reason })));
    this.ws.addEventListener('message', (e) => {
      this.#got.push(typeof e.data === 'string' ? e.data : Buffer.from(e.data as ArrayBuffer));
      for (const w of this.#waiters.splice(0)) w();
    });
  }

  /** The next message. */
  next(): Promise<string | Buffer> {
    return withDeadline(
      new Promise((resolve) => {
        const take = (): void => {
          if (this.#got.length > 0) resolve(this.#got.shift()!);
          else this.#waiters.push(take);
        };
        take();
      }),
      'a WebSocket message',
    );
  }
}

async function open(url: string): Promise<Client> {
  const c = new Client(url);
  await c.opened;
  return c;
}

test('the demo chat: welcome, joins, one broadcast reaches everyone, binary echo, leaves', async () => {
  const a = await open(`${demo.url}/svc/chat`);
  const welcomeA = (await a.next()) as string;
  const idA = /^welcome #(\d+)$/.exec(welcomeA)![1];
  assert.equal(await a.next(), `#${idA} joined`);
  const b = await open(`${demo.url}/svc/chat`);
  const idB = /^welcome #(\d+)$/.exec((await b.next()) as string)![1];
  assert.equal(await b.next(), `#${idB} joined`);
  assert.equal(await a.next(), `#${idB} joined`);
  a.ws.send('hello, room');
  assert.equal(await a.next(), `#${idA}: hello, room`);
  assert.equal(await b.next(), `#${idA}: hello, room`);
  b.ws.send(new Uint8Array([1, 2, 3]));
  assert.deepEqual([...((await b.next()) as Buffer)], [1, 2, 3]);
  b.ws.close(1000, 'done');
  assert.deepEqual(await b.closed, { code: 1000, reason: '' });
  assert.equal(await a.next(), `#${idB} left`);
  a.ws.close();
  await a.closed;
});

test('a message sent from the worker thread after open returned (webSocketSend) arrives', async () => {
  const c = await open(`${probes.url}/t/later`);
  assert.match((await c.next()) as string, /^still here, #\d+$/);
  c.ws.send('then');
  assert.equal(await c.next(), 'then');
  c.ws.close();
  await c.closed;
});

test('one connection, 300 messages on two threads with random delays: replies in order', async () => {
  const c = await open(`${probes.url}/t/order`);
  const sent = Array.from({ length: 300 }, (_, i) => `m${i}`);
  for (const m of sent) c.ws.send(m);
  const got: Array<string | Buffer> = [];
  for (let i = 0; i < sent.length; i++) got.push(await c.next());
  assert.deepEqual(got, sent);
  c.ws.close();
  await c.closed;
});

test('open refuses with a response or false; a handler that throws or passes its deadline closes with 1011; ws.close', async () => {
  const raw = await WsTestClient.open(probes.gw.port);
  raw.write(handshakeBytes('/t/refuse'));
  assert.match(await raw.head(), /^HTTP\/1\.1 401 Unauthorized\r\n/);
  assert.equal((await raw.end()).toString(), 'who are you?\n');
  const no = await WsTestClient.open(probes.gw.port);
  no.write(handshakeBytes('/t/no'));
  assert.match(await no.head(), /^HTTP\/1\.1 403 /);
  const friend = await open(`${probes.url}/t/refuse?who=friend`);
  friend.ws.close();
  await friend.closed;

  const t = await open(`${probes.url}/t/throw`);
  t.ws.send('a');
  assert.equal(await t.next(), 'ok a');
  t.ws.send('boom');
  assert.deepEqual(await t.closed, { code: 1011, reason: 'internal error' });

  const slow = await open(`${probes.url}/t/slow`);
  slow.ws.send('10');
  assert.equal(await slow.next(), 'slept 10');
  slow.ws.send('1000');
  assert.deepEqual(await slow.closed, { code: 1011, reason: 'internal error' });

  const bye = await open(`${probes.url}/t/bye`);
  bye.ws.send('now');
  assert.deepEqual(await bye.closed, { code: 4000, reason: 'bye now' });
});

test('no WS route for the path: 404; plain HTTP to a WS route: 426; HTTP routes still answer', async () => {
  const raw = await WsTestClient.open(probes.gw.port);
  raw.write(handshakeBytes('/t/none'));
  assert.match(await raw.head(), /^HTTP\/1\.1 404 /);
  const res = await fetch(`http://127.0.0.1:${probes.gw.port}/t/order`);
  assert.equal(res.status, 426);
  assert.equal(res.headers.get('upgrade'), 'websocket');
  assert.equal(await (await fetch(`http://127.0.0.1:${probes.gw.port}/t/plain`)).text(), 'plain');
});

test('over the m2gate link: a connection stays on its service, frames use no credit, 10 connections with credit 4', async () => {
  const pool = linked.gw.pool('/t/') as unknown as { stats: { malformedLink: number }; view(): { creditFree: number } };
  // More open connections than the service has credit: only each handshake holds one, until its 101.
  const clients = await Promise.all(Array.from({ length: 10 }, () => open(`${linked.url}/t/order`)));
  for (const [i, c] of clients.entries()) for (let n = 0; n < 20; n++) c.ws.send(`${i}.${n}`);
  for (const [i, c] of clients.entries()) {
    for (let n = 0; n < 20; n++) assert.equal(await c.next(), `${i}.${n}`);
  }
  const later = await open(`${linked.url}/t/later`);
  assert.match((await later.next()) as string, /^still here, #\d+$/);
  for (const c of [...clients, later]) {
    c.ws.close();
    await c.closed;
  }
  assert.equal(pool.stats.malformedLink, 0, 'every credit came back once');
  assert.equal(pool.view().creditFree, 4);
});
