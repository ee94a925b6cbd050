// A 1 GiB upload end to end from the CLI: `m2gate start` (the gateway plus one local service
// over the m2gate link, given --upload-store by start itself) with upload.temp_store set; the
// client streams the body from a generator (never held whole) to the demo's POST /svc/upload,
// which hashes it from the temp file. Both processes must stay within a bounded memory growth
// (VmRSS sampled every 50 ms, and the VmHWM peak, from /proc/PID/status), the answer must be
// the body's exact size and SHA-256, and the temp file must be gone afterwards.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { performance } from 'node:perf_hooks';
import { spawnM2gate } from './helpers/gateway.js';
import { ipcEndpoint } from './helpers/mongrel2.js';
import { gone } from './helpers/uploads.js';

const MiB = 1024 * 1024;
const SIZE = 1024 * MiB;
const CHUNK = MiB;
const BOUND = 200 * MiB;

const dir = mkdtempSync(join(tmpdir(), 'm2gate-1gib-'));
const spec = ipcEndpoint('link');
writeFileSync(
  join(dir, 'mongrel2.conf'),
  `svc = Handler(send_spec='${spec}', send_ident='1a1b0000-0000-4000-8000-000000abcdef', recv_spec='${spec}-r', recv_ident='', transport='link')
main = Server(uuid="1a1b0000-0000-4000-8000-0000000fedcb", name="big", port=6767, bind_addr="127.0.0.1",
  access_log="logs/access.log", error_log="logs/error.log", pid_file="run/mongrel2.pid",
  default_host="localhost", hosts=[Host(name="localhost", routes={ '/svc/': svc })])
settings = { "limits.content_length": ${MiB}, "upload.temp_store": "tmp/upload.XXXXXX", "limits.upload_max": ${2 * SIZE} }
servers = [main]
`,
);
const start = spawnM2gate(['start', '--config', join(dir, 'mongrel2.conf'), '--port', '0', '--workers', '1', '--services', '1', '--admin', 'off'], { cwd: dir });
after(async () => {
  start.child.kill('SIGTERM');
  await start.exited;
  rmSync(dir, { recursive: true, force: true });
});
const serving = await start.waitFor((l) => l.msg?.toString().startsWith('m2gate is serving') === true, 'serving');
const service = await start.waitFor((l) => l.component === 'service' && l.msg === 'connected to the gateway', "the service's pid");
const pids = { gateway: start.child.pid!, service: Number(service.pid) };
const port = Number(serving.port);

function status(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  assert.ok(m, `${field} of ${pid}`);
  return Number(m[1]) * 1024;
}

/** The body: chunk i is a fixed random pattern with i in its first 4 bytes, made as it is sent. */
const pattern = Buffer.alloc(CHUNK, 0x5a);
function* body(hash: ReturnType<typeof createHash>): Generator<Buffer> {
  for (let i = 0; i < SIZE / CHUNK; i++) {
    const chunk = Buffer.from(pattern);
    chunk.writeUInt32BE(i, 0);
    hash.update(chunk);
    yield chunk;
  }
}

test('a 1 GiB upload through gateway and service: exact size and SHA-256, bounded RSS in both, no temp file left', async (t) => {
  const before = { gateway: status(pids.gateway, 'VmRSS'), service: status(pids.service, 'VmRSS') };
  const peak = { ...before };
  const sampler = setInterval(() => {
    for (const k of ['gateway', 'service'] as const) peak[k] = Math.max(peak[k], status(pids[k], 'VmRSS'));
  }, 50);
  const hash = createHash('sha256');
  const t0 = performance.now();
  try {
    const answer = new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = request({ port, host: '127.0.0.1', method: 'POST', path: '/svc/upload', headers: { 'content-length': SIZE, 'content-type': 'application/octet-stream' } }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        res.on('error', reject);
      });
      req.on('error', reject);
      pipeline(Readable.from(body(hash)), req).catch(reject);
    });
    const res = await answer;
    const ms = performance.now() - t0;
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(JSON.parse(res.text), { bytes: SIZE, sha256: hash.digest('hex'), spooled: true });
    const hwm = { gateway: status(pids.gateway, 'VmHWM'), service: status(pids.service, 'VmHWM') };
    const mib = (n: number): number => Math.round(n / MiB);
    t.diagnostic(`1 GiB in ${Math.round(ms)} ms (${Math.round(SIZE / MiB / (ms / 1000))} MiB/s); RSS before/peak/VmHWM MiB: gateway ${mib(before.gateway)}/${mib(peak.gateway)}/${mib(hwm.gateway)}, service ${mib(before.service)}/${mib(peak.service)}/${mib(hwm.service)}`);
    for (const k of ['gateway', 'service'] as const) {
      assert.ok(peak[k] - before[k] < BOUND, `${k} RSS grew ${mib(peak[k] - before[k])} MiB`);
      assert.ok(hwm[k] - before[k] < BOUND, `${k} VmHWM is ${mib(hwm[k] - before[k])} MiB over its RSS before`);
    }
  } finally {
    clearInterval(sampler);
  }
  // The service removes the file after its reply: the store is empty once it has.
  const store = join(dir, 'tmp');
  const left = readdirSync(store);
  for (const f of left) await gone(join(store, f));
});
