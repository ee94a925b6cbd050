// Issue #13: the pool dashboard in a real browser. `m2gate start --services 2 --workers 1` from
// dist/ on a temp mongrel2.conf (one link Handler on ipc://), its admin listener on a free port,
// the page opened in headless Debian Chromium (/usr/bin/chromium, driven by playwright-core).
//
// Proves, reading the page as an operator would:
// - under bounded load on /svc/fib/25, the handler card's req/s goes above 0 and the header's
//   request count reaches what the load sent; the figures the page shows match /status.json
//   fetched right after that draw (services, threads, requests exactly; req/s within 25 %);
// - a service SIGKILLed shows as a `down` row, the supervisor's replacement as a second `up`
//   row, and the Restarts list names the kill; a second load is then served by both;
// - only the gateway opens an admin listener (its services do not inherit M2GATE_ADMIN).
//
// Screenshots go to test-output/ (git-ignored). M2GATE_SCREENSHOT=PATH also writes the one taken
// under the second load, 1280x800, to PATH: that is how docs/dashboard.png is made
// (README "Operating m2gate").
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'undici';
import { chromium, type Browser, type Page } from 'playwright-core';
import { isMsg, killAll, linkConfText, spawnCli, type Cli } from './helpers/link.js';
import { ROOT } from './helpers/service.js';
import type { GatewayStatus } from '../admin/status.js';

const CHROMIUM = '/usr/bin/chromium';
const OUT_DIR = join(ROOT, 'test-output');
const WAIT_MS = 15_000;
/** Each load phase: at most this many requests, for at most this long. */
const LOAD_REQUESTS = 3000;
const LOAD_MS = 3000;
const CONNECTIONS = 4;
const PATH = '/svc/fib/25';

const dir = mkdtempSync(join(tmpdir(), 'm2gate-dash-'));
const conf = join(dir, 'mongrel2.conf');
writeFileSync(conf, linkConfText({ sendSpec: `ipc://${join(dir, 'link')}` }));
mkdirSync(OUT_DIR, { recursive: true });

let cli: Cli | undefined;
let browser: Browser | undefined;
let http: Pool | undefined;
after(async () => {
  await browser?.close();
  await http?.close();
  const exit = await cli?.stop('SIGTERM');
  await killAll();
  rmSync(dir, { recursive: true, force: true });
  if (exit) assert.equal(exit.code, 0, `m2gate start exited ${JSON.stringify(exit)}`);
});

interface LoadResult {
  sent: number;
  statuses: Record<number, number>;
  errors: string[];
  ms: number;
}

/** CONNECTIONS closed loops on PATH until LOAD_REQUESTS are sent or LOAD_MS has passed. */
function load(pool: Pool): { done: Promise<LoadResult>; sent(): number } {
  const r: LoadResult = { sent: 0, statuses: {}, errors: [], ms: 0 };
  const t0 = performance.now();
  const loops = Array.from({ length: CONNECTIONS }, async () => {
    while (r.sent < LOAD_REQUESTS && performance.now() - t0 < LOAD_MS) {
      r.sent++;
      try {
        const res = await pool.request({ path: PATH, method: 'GET', headersTimeout: 10_000, bodyTimeout: 10_000 });
        const body = await res.body.text();
        r.statuses[res.statusCode] = (r.statuses[res.statusCode] ?? 0) + 1;
        if (res.statusCode === 200) assert.match(body, /"fib":75025/);
      } catch (err) {
        r.errors.push(String(err));
      }
    }
  });
  return {
    done: Promise.all(loops).then(() => ({ ...r, ms: performance.now() - t0 })),
    sent: () => r.sent,
  };
}

/** What the page shows, read in one go right after a redraw, and /status.json fetched at once after. */
interface Seen {
  page: { requests: number; handlerRps: number; connected: number; threads: number; upRows: number; downRows: number; ready: string };
  status: GatewayStatus;
}

// Runs in the page (a string: the tests are type-checked without DOM types).
const READ_AFTER_REDRAW = `(async () => {
  const footer = document.getElementById('updated');
  await new Promise((resolve) => {
    const o = new MutationObserver(() => { o.disconnect(); resolve(); });
    o.observe(footer, { childList: true, characterData: true, subtree: true });
  });
  const text = (sel) => document.querySelector(sel)?.textContent ?? '';
  const num = (sel) => Number(text(sel).replace(/,/g, ''));
  const page = {
    requests: num('header [data-field="requests"]'),
    handlerRps: num('article.handler [data-field="rps"]'),
    connected: num('article.handler [data-field="connected"]'),
    threads: num('article.handler [data-field="threads"]'),
    upRows: document.querySelectorAll('article.handler table.services tr.up').length,
    downRows: document.querySelectorAll('article.handler table.services tr.down').length,
    ready: text('#ready'),
  };
  const status = await (await fetch('/status.json', { cache: 'no-store' })).json();
  return { page, status };
})()`;

async function shoot(page: Page, name: string): Promise<string> {
  const file = join(OUT_DIR, name);
  await page.screenshot({ path: file });
  return file;
}

const rowsOf = (state: string): string => `document.querySelectorAll('article.handler table.services tr.${state}').length`;

test('the dashboard shows load, a killed service and its restart, matching /status.json', { timeout: 90_000 }, async (t) => {
  cli = spawnCli(['start', '--config', conf, '--services', '2', '--workers', '1', '--port', '0', '--admin', '127.0.0.1:0']);
  const adminLine = await cli.waitFor(isMsg('admin listening'), "'admin listening'", 0, WAIT_MS);
  assert.equal(adminLine.component, 'gateway');
  const admin = String(adminLine.admin);
  const serving = await cli.waitFor((l) => typeof l.msg === 'string' && l.msg.startsWith('m2gate is serving'), "'m2gate is serving'", 0, WAIT_MS);
  http = new Pool(`http://127.0.0.1:${Number(serving.port)}`, { connections: CONNECTIONS, keepAliveTimeout: 1000 });

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
  });
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const pageErrors: string[] = [];
  page.on('pageerror', (err) => pageErrors.push(String(err)));
  await page.goto(admin);
  await page.waitForFunction(`${rowsOf('up')} === 2 && document.querySelector('#ready').textContent === 'ready'`, undefined, { timeout: WAIT_MS });

  // ---- load: the numbers move and match /status.json ----
  const first = load(http);
  await page.waitForFunction(`Number(document.querySelector('article.handler [data-field="rps"]').textContent.replace(/,/g, '')) > 0`, undefined, { timeout: WAIT_MS });
  const underLoad = await shoot(page, 'dashboard-load.png');
  const r1 = await first.done;
  t.diagnostic(`load 1: ${r1.sent} requests in ${Math.round(r1.ms)} ms, ${JSON.stringify(r1.statuses)}, ${r1.errors.length} errors; screenshot ${underLoad}`);
  assert.deepEqual(r1.errors, []);
  assert.deepEqual(r1.statuses, { 200: r1.sent });
  await page.waitForFunction(`Number(document.querySelector('header [data-field="requests"]').textContent.replace(/,/g, '')) >= ${r1.sent}`, undefined, { timeout: WAIT_MS });
  const seen = await page.evaluate<Seen>(READ_AFTER_REDRAW);
  const h = seen.status.handlers[0]!;
  t.diagnostic(`page: ${JSON.stringify(seen.page)}; status.json: requests ${seen.status.requests}, rps ${h.window.rps.toFixed(1)}, p50 ${h.window.p50Ms} ms, p99 ${h.window.p99Ms} ms, connected ${h.connected}, threads ${h.threads}`);
  // No request reaches the public port but the load's, so once it is over these hold still.
  assert.equal(seen.status.requests, r1.sent);
  assert.equal(seen.page.requests, seen.status.requests);
  assert.equal(seen.page.connected, 2);
  assert.equal(seen.page.connected, h.connected);
  assert.equal(seen.page.threads, h.threads);
  assert.equal(seen.page.upRows, 2);
  assert.equal(seen.page.ready, 'ready');
  assert.ok(seen.page.handlerRps > 0);
  // The same requests seen by kind and by Handler: the same rate.
  assert.ok(Math.abs(seen.status.byKind.handler.rps - h.window.rps) <= 0.01 * h.window.rps, `by kind ${seen.status.byKind.handler.rps} vs Handler ${h.window.rps}`);
  // The window's rate falls as seconds pass without requests; the fetch follows the draw by ms.
  assert.ok(Math.abs(seen.page.handlerRps - h.window.rps) <= 0.25 * h.window.rps + 0.1, `page ${seen.page.handlerRps} req/s vs status.json ${h.window.rps}`);

  // ---- SIGKILL one service: down, replaced, listed under Restarts ----
  const victim = h.services.find((s) => s.up)!;
  const pid = Number(victim.name.split('/').pop());
  assert.ok(cli.log.items.some((l) => l.msg === 'service started' && l.pid === pid), `service ${victim.name} is one of start's own`);
  const killedAt = Date.now();
  process.kill(pid, 'SIGKILL');
  await page.waitForFunction(
    `[...document.querySelectorAll('article.handler table.services tr.down')].some((tr) => tr.dataset.service === ${JSON.stringify(victim.name)} && tr.querySelector('[data-field="state"]').textContent === 'down')`,
    undefined,
    { timeout: WAIT_MS },
  );
  const downMs = Date.now() - killedAt;
  await page.waitForFunction(`${rowsOf('up')} === 2`, undefined, { timeout: WAIT_MS });
  const upMs = Date.now() - killedAt;
  await page.waitForFunction(`[...document.querySelectorAll('#restarts li')].some((li) => li.textContent.includes('pid ${pid} killed by SIGKILL'))`, undefined, { timeout: WAIT_MS });
  const later = await page.evaluate<Seen>(READ_AFTER_REDRAW);
  t.diagnostic(`killed ${victim.name}: down on the page after ${downMs} ms, 2 up again after ${upMs} ms; restarts ${JSON.stringify(later.status.restarts)}`);
  assert.equal(later.page.upRows, 2);
  assert.equal(later.page.downRows, 1);
  assert.equal(later.page.connected, 2);
  assert.ok(!later.status.handlers[0]!.services.some((s) => s.up && s.name === victim.name));
  assert.equal(later.status.restarts[0]?.pid, pid);
  assert.equal(later.status.restarts[0]?.signal, 'SIGKILL');

  // ---- a second load, served by the survivor and the replacement ----
  const second = load(http);
  await page.waitForFunction(`Number(document.querySelector('header [data-field="requests"]').textContent.replace(/,/g, '')) > ${r1.sent}`, undefined, { timeout: WAIT_MS });
  const final = await shoot(page, 'dashboard-restart.png');
  if (process.env.M2GATE_SCREENSHOT) await page.screenshot({ path: process.env.M2GATE_SCREENSHOT });
  const r2 = await second.done;
  t.diagnostic(`load 2: ${r2.sent} requests in ${Math.round(r2.ms)} ms, ${JSON.stringify(r2.statuses)}; screenshot ${final}`);
  assert.deepEqual(r2.errors, []);
  assert.deepEqual(r2.statuses, { 200: r2.sent });

  assert.deepEqual(pageErrors, []);
  // M2GATE_ADMIN (the test runner sets 127.0.0.1:0) is the gateway's alone.
  assert.equal(cli.log.count(isMsg('admin listening')), 1);
});
