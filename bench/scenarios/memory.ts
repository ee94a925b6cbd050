/**
 * Scenario `memory` (issue #7, 6): the gateway's resident set (VmRSS from
 * /proc/<pid>/status) and V8 heap at three points, in one run:
 *
 *   1. started, after the readiness request
 *   2. holding 1,000 idle keep-alive connections: opened with node:net, one
 *      GET /svc/hello answered on each, all still open at the reading
 *   3. after `memoryRequests` more requests to /svc/hello (wrk; 1,000,000 in a
 *      full run), the idle connections closed before
 *
 * The gateway runs `m2gate gateway --app bench/memory-app.mjs` under node
 * --expose-gc: the app's /app/memory collects garbage and returns
 * process.memoryUsage(), since the gateway exposes no heap figure of its own.
 * Behind it one m2gate service --workers 1 (PUSH/SUB). Unpinned; one run
 * whatever --rounds says. The gateway closes keep-alive connections idle for
 * 5 s (its keepAliveTimeout), so the reading of point 2 follows the last
 * answer at once and says how many were still open.
 */
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import type { BenchConfig } from '../lib/config.js';
import { BENCH_DIR } from '../lib/config.js';
import { startGateway, startService } from '../lib/launch.js';
import type { Spawned } from '../lib/proc.js';
import { httpGet } from '../lib/ready.js';
import { num, table, type ScenarioResult } from '../lib/report.js';
import { missing, withProcesses } from '../lib/variant.js';
import { runWrk, socketErrorCount } from '../lib/wrk.js';
import { procMemory } from '../lib/memory.js';

const IDLE_CONNECTIONS = 1000;
/** Connections opened at once while building the idle set (under the listen backlog). */
const OPEN_BATCH = 100;

export interface MemoryReading {
  point: string;
  /** Client connections open at the reading. */
  open: number;
  rss: number;
  hwm: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
  /** Whether a full GC ran just before the heap figures. */
  gc: boolean;
}

interface MemoryUsage {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
  gc: boolean;
}

/** One keep-alive connection with one answered GET on it. @throws Error on a socket error, a non-200 answer or after 10 s. */
function openOne(port: number, path: string, onClose: () => void): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let text = '';
    socket.setEncoding('latin1');
    socket.setTimeout(10_000, () => socket.destroy(new Error('no answer within 10 s')));
    socket.on('error', reject);
    socket.once('close', onClose);
    socket.on('data', (d: string) => {
      text += d;
      const end = text.indexOf('\r\n\r\n');
      if (end < 0) return;
      const length = /\r\ncontent-length:\s*(\d+)/i.exec(text.slice(0, end));
      if (!text.startsWith('HTTP/1.1 200')) {
        socket.destroy(new Error(`answered ${text.split('\r\n')[0]}`));
        return;
      }
      if (length && text.length - end - 4 >= Number(length[1])) {
        socket.setTimeout(0);
        socket.removeAllListeners('data');
        resolve(socket);
      }
    });
    socket.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
  });
}

export async function memoryScenario(cfg: BenchConfig): Promise<ScenarioResult> {
  const needs = missing(cfg, ['wrk', 'm2gate']);
  if (needs.length > 0) return { name: 'memory', status: 'skipped', missing: needs, text: `SKIPPED: missing ${needs.join('; ')}`, goals: [], data: {} };
  let gateway: Spawned | undefined;
  let readings: MemoryReading[] = [];
  let sent = 0;
  let errors = 0;
  let idleMs = 0;
  try {
    readings = await withProcesses(
      cfg,
      (conf, started) => {
        gateway = startGateway(cfg, conf, undefined, join(BENCH_DIR, 'memory-app.mjs'), { cpus: null, nodeFlags: ['--expose-gc'] });
        started.push(gateway);
        const service = startService(cfg, conf, 1, undefined, [], { cpus: null });
        started.push(service);
        return Promise.resolve([
          { role: 'gateway', proc: gateway },
          { role: 'service', proc: service },
        ]);
      },
      '/svc/hello',
      async (base, _roles, conf) => {
        const pid = gateway!.pid;
        const out: MemoryReading[] = [];
        const read = async (point: string, open: number): Promise<void> => {
          const answer = await httpGet(`${base}/app/memory`);
          if (answer.status !== 200) throw new Error(`/app/memory answered ${answer.status}`);
          const usage = JSON.parse(answer.body.toString('utf8')) as MemoryUsage;
          // RSS read after the GC the request ran, so both describe the same moment.
          const mem = procMemory(pid);
          out.push({ point, open, rss: mem.rss, hwm: mem.hwm, heapUsed: usage.heapUsed, heapTotal: usage.heapTotal, external: usage.external, arrayBuffers: usage.arrayBuffers, gc: usage.gc });
          cfg.log(`[memory] ${point}: RSS ${(mem.rss / 2 ** 20).toFixed(1)} MiB, heap used ${(usage.heapUsed / 2 ** 20).toFixed(1)} MiB, ${open} connections open`);
        };
        await read('started (after 1 request)', 0);

        let closed = 0;
        const sockets: Socket[] = [];
        const t0 = Date.now();
        try {
          for (let i = 0; i < IDLE_CONNECTIONS; i += OPEN_BATCH) {
            const batch = Math.min(OPEN_BATCH, IDLE_CONNECTIONS - i);
            sockets.push(...(await Promise.all(Array.from({ length: batch }, () => openOne(conf.httpPort, '/svc/hello', () => closed++)))));
          }
          idleMs = Date.now() - t0;
          await read(`${num(IDLE_CONNECTIONS)} idle keep-alive connections`, sockets.length - closed);
        } finally {
          for (const s of sockets) s.destroy();
        }

        let sentSeconds = 0;
        while (sent < cfg.memoryRequests) {
          // Chunks of at most 60 s, sized from the rate so far; the first is short.
          const rate = sent === 0 ? 0 : sent / sentSeconds;
          const durationS = rate === 0 ? Math.min(5, Math.max(1, cfg.durationS)) : Math.min(60, Math.max(1, Math.ceil((cfg.memoryRequests - sent) / rate)));
          const w = await runWrk({ url: `${base}/svc/hello`, durationS, connections: cfg.connections });
          sent += w.requests;
          sentSeconds += w.seconds;
          errors += w.non2xx + socketErrorCount(w);
          if (gateway!.exited()) throw new Error(`the gateway exited:\n${gateway!.logTail()}`);
        }
        await read(`after ${num(sent)} requests (wrk, ${cfg.connections} connections, /svc/hello)`, 0);
        return out;
      },
    );
  } catch (err) {
    return { name: 'memory', status: 'partial', missing: [], text: `FAILED: ${(err as Error).message}`, goals: [], data: { readings } };
  }
  const mib = (b: number): string => num(b / 2 ** 20, 1);
  const rows = readings.map((r) => [r.point, num(r.open), mib(r.rss), mib(r.hwm), mib(r.heapUsed), mib(r.heapTotal), mib(r.external)]);
  const text = [
    `The gateway process (m2gate gateway + bench/memory-app.mjs, node --expose-gc) with one m2gate service --workers 1 behind it; one run, unpinned.`,
    `RSS from /proc/<pid>/status; heap from process.memoryUsage() right after a full GC${readings.every((r) => r.gc) ? '' : ' (NO GC: --expose-gc did not take)'}. MiB.`,
    `The ${num(IDLE_CONNECTIONS)} connections took ${num(idleMs)} ms to open and answer (node:net, ${OPEN_BATCH} at a time).`,
    '',
    table(['point', 'connections open', 'RSS MiB', 'peak RSS MiB', 'heap used MiB', 'heap total MiB', 'external MiB'], rows),
    '',
    `- per idle connection: ${readings.length >= 2 ? `${num((readings[1]!.rss - readings[0]!.rss) / Math.max(1, readings[1]!.open) / 1024, 1)} KiB RSS, ${num((readings[1]!.heapUsed - readings[0]!.heapUsed) / Math.max(1, readings[1]!.open) / 1024, 1)} KiB heap` : 'n/a'}`,
    `- after the requests vs started: RSS ${readings.length >= 3 ? `${mib(readings[2]!.rss - readings[0]!.rss)} MiB more, heap used ${mib(readings[2]!.heapUsed - readings[0]!.heapUsed)} MiB more` : 'n/a'}; errors during the requests: ${num(errors)}`,
  ].join('\n');
  return { name: 'memory', status: errors > 0 ? 'partial' : 'ok', missing: [], text, goals: [], data: { readings, requests: sent, errors, idleOpenMs: idleMs } };
}
