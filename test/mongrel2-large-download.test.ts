// A 1 GiB Dir file through the real Mongrel2 (download.flow_control=1) →
// `m2gate gateway --mongrel2` (the built CLI: run `npm run build` first): the
// client gets every byte in order (length and sha256), the gateway paces on
// Mongrel2's credits so its RSS stays bounded, and Mongrel2 never cuts the
// connection (its writer queue would overflow otherwise, §4.5).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync, ftruncateSync } from 'node:fs';
import { get } from 'node:http';
import { join } from 'node:path';
import { confText, spawnM2gate, tempTree } from './helpers/gateway.js';
import { ipcEndpoint, startMongrel2 } from './helpers/mongrel2.js';

const SIZE = 1024 * 1024 * 1024;
const MARK_EVERY = 1024 * 1024;

const m2Send = ipcEndpoint('m2-send');
const m2Recv = ipcEndpoint('m2-recv');
const m2 = await startMongrel2({
  handlers: [{ route: '/', sendSpec: m2Send, sendIdent: '0a1b2c3d-0000-4000-8000-00000download', recvSpec: m2Recv }],
  settings: { 'download.flow_control': 1 },
});
const started: { gateway?: ReturnType<typeof spawnM2gate>; dir?: string } = {};
// Registered before anything else can fail, so no Mongrel2 outlives a failed start.
after(async () => {
  started.gateway?.kill();
  await m2.stop();
  m2.cleanup();
  if (started.dir) rmSync(started.dir, { recursive: true, force: true });
});
const dir = (started.dir = tempTree({ 'mongrel2.conf': confText({ handlers: [], routes: [`'/files/': Dir(base='files/', index_file='index.html', default_ctype='application/octet-stream')`] }) }));
mkdirSync(join(dir, 'files'));

// Sparse, with a marker naming its offset every MiB: a lost, repeated or
// reordered piece changes the hash (an all-zero file would not show it).
function marker(offset: number): Buffer {
  return Buffer.from(`@${offset.toString(16).padStart(12, '0')}\n`);
}
const fd = openSync(join(dir, 'files', 'big.bin'), 'w');
ftruncateSync(fd, SIZE);
for (let off = 0; off < SIZE; off += MARK_EVERY) writeSync(fd, marker(off), 0, undefined, off);
closeSync(fd);
const expected = (() => {
  const hash = createHash('sha256');
  const block = Buffer.alloc(MARK_EVERY);
  for (let off = 0; off < SIZE; off += MARK_EVERY) {
    block.fill(0);
    marker(off).copy(block);
    hash.update(block);
  }
  return hash.digest('hex');
})();

const gateway = spawnM2gate(['gateway', '--config', join(dir, 'mongrel2.conf'), '--mongrel2', `${m2Send},${m2Recv}`]);
started.gateway = gateway;

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) * 1024;
}

test('a 1 GiB Dir file through Mongrel2 with download credits arrives whole; the gateway RSS stays bounded', { timeout: 90_000 }, async () => {
  await gateway.waitFor((l) => l.msg === 'serving as a Mongrel2 handler', 'serving as a Mongrel2 handler');
  const pid = gateway.child.pid!;
  const before = rssBytes(pid);
  let peak = before;
  const sampler = setInterval(() => (peak = Math.max(peak, rssBytes(pid))), 50);
  const started = performance.now();
  try {
    const got = await new Promise<{ status: number; length: number; bytes: number; sha256: string }>((resolve, reject) => {
      const req = get({ host: '127.0.0.1', port: m2.port, path: '/files/big.bin', agent: false }, (res) => {
        const hash = createHash('sha256');
        let bytes = 0;
        res.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
          hash.update(chunk);
        });
        res.on('end', () => resolve({ status: res.statusCode!, length: Number(res.headers['content-length']), bytes, sha256: hash.digest('hex') }));
        res.on('error', reject);
        // Mongrel2 cutting the connection shows as 'aborted' before 'end'.
        res.on('aborted', () => reject(new Error(`connection cut after ${bytes} bytes`)));
      });
      req.on('error', reject);
    });
    const seconds = (performance.now() - started) / 1000;
    assert.equal(got.status, 200);
    assert.equal(got.length, SIZE);
    assert.equal(got.bytes, SIZE);
    assert.equal(got.sha256, expected);
    const growth = peak - before;
    console.log(`# 1 GiB in ${seconds.toFixed(1)} s (${(SIZE / 2 ** 20 / seconds).toFixed(0)} MiB/s); gateway RSS ${(before / 2 ** 20).toFixed(0)} → peak ${(peak / 2 ** 20).toFixed(0)} MiB`);
    // Unpaced, the gateway reads the file as fast as the disk allows and holds what Mongrel2 has not taken.
    assert.ok(growth < 64 * 2 ** 20, `gateway RSS grew by ${(growth / 2 ** 20).toFixed(0)} MiB`);
  } finally {
    clearInterval(sampler);
  }
});
