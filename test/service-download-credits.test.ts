// The service paces large replies on download credits (§3.7;
// workers/paced-reply.ts), against the real Mongrel2 1.12.2 with
// download.flow_control=1 (which kills a connection as soon as one reply
// message would pass its 102,400-byte allowance) and behind the standalone
// gateway with the same setting, over PUSH/SUB and over the link. Uses the
// built CLI: run `npm run build` first.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { rmSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { pino } from 'pino';
import { Gateway } from '../gateway/gateway.js';
import { findServer, parseConfig } from '../protocol/mongrel2-conf.js';
import { RawClient, tempTree, type RawResponse } from './helpers/gateway.js';
import { ipcEndpoint, startMongrel2 } from './helpers/mongrel2.js';
import { linkEndpoint } from './helpers/link.js';
import { fixtureRoutes, spawnService, stopAll } from './helpers/service.js';

const { pattern } = (await import(pathToFileURL(fixtureRoutes('downloads.mjs')).href)) as { pattern: (kib: number) => Buffer };
const ROUTES = fixtureRoutes('downloads.mjs');

// ---- the real Mongrel2 in front of a service ---------------------------------------------

const m2Send = ipcEndpoint('m2-send');
const m2Recv = ipcEndpoint('m2-recv');
const m2 = await startMongrel2({
  handlers: [{ route: '/dl/', sendSpec: m2Send, sendIdent: '0a1b2c3d-0000-4000-8000-000000m2down', recvSpec: m2Recv }],
  settings: { 'download.flow_control': 1 },
});
// The chain: Mongrel2 (flow control) → the gateway --mongrel2 (flow control in its own config) → a service.
const chainSend = ipcEndpoint('chain-send');
const chainRecv = ipcEndpoint('chain-recv');
const m2Chain = await startMongrel2({
  handlers: [{ route: '/', sendSpec: chainSend, sendIdent: '0a1b2c3d-0000-4000-8000-00000m2chain', recvSpec: chainRecv }],
  settings: { 'download.flow_control': 1 },
});
// Registered before anything else can fail, so no Mongrel2 outlives a failed start.
const started: { gateways: Gateway[] } = { gateways: [] };
const dir = tempTree();
after(async () => {
  await stopAll();
  for (const g of started.gateways) await g.close();
  for (const m of [m2, m2Chain]) {
    await m.stop();
    m.cleanup();
  }
  rmSync(dir, { recursive: true, force: true });
});
const behindM2 = spawnService([ROUTES, '--send', m2Send, '--recv', m2Recv, '--workers', '1']);

// ---- the standalone gateway with flow control: one PUSH/SUB Handler, one link Handler ----

const psSend = ipcEndpoint('ps-send');
const psRecv = ipcEndpoint('ps-recv');
const linkSpec = await linkEndpoint();
const confText = `ps = Handler(send_spec='${psSend}', send_ident='0a1b2c3d-0000-4000-8000-000000psdown', recv_spec='${psRecv}', recv_ident='', protocol='tnetstring')
ln = Handler(send_spec='${linkSpec}', send_ident='0a1b2c3d-0000-4000-8000-000000lndown', recv_spec='tcp://127.0.0.1:1', recv_ident='', protocol='json', transport='link')
main = Server(uuid="0a1b2c3d-0000-4000-8000-0000000server", name="dl", port=6767, bind_addr="127.0.0.1",
  access_log="logs/access.log", error_log="logs/error.log", pid_file="run/mongrel2.pid",
  default_host="localhost", hosts=[Host(name="localhost", routes={ '/ps/': ps, '/ln/': ln })])
settings = { "server.daemonize": 0, "download.flow_control": 1 }
servers = [main]
`;
writeFileSync(join(dir, 'mongrel2.conf'), confText);
const config = parseConfig(confText, join(dir, 'mongrel2.conf'));
const gateway = new Gateway({ config, server: findServer(config), cwd: dir, port: 0, host: '127.0.0.1', logger: pino({ level: 'silent' }) });
started.gateways.push(gateway);
const gwPort = await gateway.start();

const chainPs = { send: ipcEndpoint('cps-send'), recv: ipcEndpoint('cps-recv') };
const chainText = `ps = Handler(send_spec='${chainPs.send}', send_ident='0a1b2c3d-0000-4000-8000-00000chainps', recv_spec='${chainPs.recv}', recv_ident='', protocol='json')
main = Server(uuid="0a1b2c3d-0000-4000-8000-000000chain0", name="chain", port=6767, bind_addr="127.0.0.1",
  access_log="logs/access.log", error_log="logs/error.log", pid_file="run/mongrel2.pid",
  default_host="localhost", hosts=[Host(name="localhost", routes={ '/ps/': ps })])
settings = { "server.daemonize": 0, "download.flow_control": 1 }
servers = [main]
`;
const chainConfig = parseConfig(chainText, join(dir, 'chain.conf'));
const chainGateway = new Gateway({ config: chainConfig, server: findServer(chainConfig), cwd: dir, logger: pino({ level: 'silent' }), mongrel2: { sendSpec: chainSend, recvSpec: chainRecv } });
started.gateways.push(chainGateway);
await chainGateway.start();
const [psPool, lnPool] = [psSend, linkSpec].map((spec) => gateway.pools.find((p) => p.config.sendSpec === spec)!);
// The routes answer /dl/:kib; the gateway's routes are /ps/ and /ln/, so those serve the same handler under their prefix.
const aliasRoutes = join(dir, 'aliases.mjs');
writeFileSync(
  aliasRoutes,
  `import routes from ${JSON.stringify(pathToFileURL(ROUTES).href)};\nexport default { 'GET /ps/:kib': (req) => routes['GET /dl/:kib'](req), 'GET /ln/:kib': (req) => routes['GET /dl/:kib'](req) };\n`,
);
const psService = spawnService([aliasRoutes, '--send', psSend, '--recv', psRecv, '--workers', '1']);
const lnService = spawnService([aliasRoutes, '--connect', linkSpec, '--workers', '1']);
const chainService = spawnService([aliasRoutes, '--send', chainPs.send, '--recv', chainPs.recv, '--workers', '1']);
await Promise.all([behindM2.ready(), psService.ready(), chainService.ready(), chainGateway.pools[0]!.whenPeer(), lnService.waitFor((l) => l.msg === 'connected to the gateway'), psPool!.whenPeer(), lnPool!.whenPeer()]);


function assertWhole(res: RawResponse, kib: number): void {
  assert.equal(res.status, 200);
  assert.equal(res.body.length, kib * 1024);
  // Buffer equality: a single byte out of place fails.
  assert.ok(res.body.equals(pattern(kib)), `the ${kib} KiB body differs from what the route returned`);
}

test('through Mongrel2 with download.flow_control=1: 4 MiB replies arrive whole, on later keep-alive requests (no DOWNLOAD_CREDITS) too, and the close after HTTP/1.0 waits its turn', async () => {
  const c = await RawClient.open(m2.port);
  c.write('GET /dl/4096 HTTP/1.1\r\nHost: localhost\r\n\r\n');
  assertWhole(await c.response(), 4096);
  c.write('GET /dl/1500 HTTP/1.1\r\nHost: localhost\r\n\r\n');
  assertWhole(await c.response(), 1500);
  c.destroy();

  const old = await RawClient.open(m2.port);
  old.write('GET /dl/2048 HTTP/1.0\r\n\r\n');
  assertWhole(await old.response(), 2048);
  assert.equal((await old.end()).length, 0);
  old.destroy();
});

for (const [name, prefix, pool] of [
  ['PUSH/SUB', '/ps/', () => psPool!],
  ['the link', '/ln/', () => lnPool!],
] as const) {
  test(`behind the gateway with download.flow_control=1 over ${name}: a 4 MiB reply is paced in credit-sized messages and arrives whole`, async () => {
    const before = pool().stats.replies;
    const c = await RawClient.open(gwPort);
    c.write(`GET ${prefix}4096 HTTP/1.1\r\nHost: localhost\r\n\r\n`);
    assertWhole(await c.response(), 4096);
    c.destroy();
    // At most 100 KiB per message: a 4 MiB reply takes at least 41 of them.
    const messages = pool().stats.replies - before;
    assert.ok(messages >= 41, `only ${messages} reply messages`);
  });
}

test('Mongrel2 → gateway --mongrel2 → service, flow control on both fronts: a 4 MiB reply is paced twice and arrives whole', async () => {
  const pool = chainGateway.pools[0]!;
  const before = pool.stats.replies;
  const c = await RawClient.open(m2Chain.port);
  c.write('GET /ps/4096 HTTP/1.1\r\nHost: localhost\r\n\r\n');
  assertWhole(await c.response(), 4096);
  c.write('GET /ps/300 HTTP/1.1\r\nHost: localhost\r\n\r\n');
  assertWhole(await c.response(), 300);
  c.destroy();
  // The service paced on the gateway's credits: at most 100 KiB per message.
  const messages = pool.stats.replies - before;
  assert.ok(messages >= 41 + 3, `only ${messages} reply messages`);
});
