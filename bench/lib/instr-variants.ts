/**
 * The variants of bench:instructions and the life of one run: every server
 * process under callgrind, a warm-up, a dump (which zeroes the counters),
 * exactly N requests, a second dump, and the per-thread counts of that second
 * dump divided by N. Start-up and warm-up are in the first dump only; an
 * optional idle period with its own dump measures what the processes do
 * without load (timers), to say how much of the figure that is.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { BenchConfig } from './config.js';
import { startMongrel2, writeBenchConf, type BenchConf, type BenchConfOptions } from './front.js';
import { demoApp, startGateway, startHelloServer, startMinimalHandler, startService } from './launch.js';
import { stopAll, type Spawned } from './proc.js';
import { waitHttp200 } from './ready.js';
import { callgrindDump, callgrindWrap, readDump, type ThreadCount } from './callgrind.js';
import { fixedLoad, loadAgent } from './fixed-load.js';

/** Start-up under callgrind is slow (a bare `node -e` takes about 13 s): the deadline for the first 200. */
const READY_DEADLINE_MS = 240_000;

export interface InstrVariant {
  key: string;
  label: string;
  path: string;
  needs: Array<'mongrel2' | 'link'>;
  conf?: BenchConfOptions;
  /** Starts the processes (front first), pushing each on `started` as soon as it runs. */
  start(cfg: BenchConfig, conf: BenchConf, started: Array<{ label: string; proc: Spawned }>): Promise<void>;
}

type Started = Array<{ label: string; proc: Spawned }>;

const mongrel2 = async (cfg: BenchConfig, conf: BenchConf, started: Started): Promise<void> => {
  started.push({ label: 'Mongrel2', proc: await startMongrel2(conf, cfg.serverCpus, { wrap: cfg.wrap, deadlineMs: READY_DEADLINE_MS }) });
};
const service = (cfg: BenchConfig, conf: BenchConf, started: Started, link: boolean): void => {
  started.push({ label: 'm2gate service', proc: startService(cfg, conf, 1, undefined, [], { link }) });
};

export const INSTR_VARIANTS: InstrVariant[] = [
  {
    key: 'm2-minimal',
    label: 'Mongrel2 → minimal handler',
    path: '/svc/hello',
    needs: ['mongrel2'],
    async start(cfg, conf, started) {
      await mongrel2(cfg, conf, started);
      started.push({ label: 'minimal handler', proc: startMinimalHandler(cfg, conf) });
    },
  },
  {
    key: 'm2-service',
    label: 'Mongrel2 → m2gate service --workers 1',
    path: '/svc/hello',
    needs: ['mongrel2'],
    async start(cfg, conf, started) {
      await mongrel2(cfg, conf, started);
      service(cfg, conf, started, false);
    },
  },
  {
    key: 'gw-pushsub',
    label: 'm2gate gateway → service, PUSH/SUB',
    path: '/svc/hello',
    needs: [],
    start(cfg, conf, started) {
      started.push({ label: 'm2gate gateway', proc: startGateway(cfg, conf, undefined) });
      service(cfg, conf, started, false);
      return Promise.resolve();
    },
  },
  {
    key: 'gw-link',
    label: 'm2gate gateway → service, link',
    path: '/svc/hello',
    needs: ['link'],
    conf: { link: true },
    start(cfg, conf, started) {
      started.push({ label: 'm2gate gateway', proc: startGateway(cfg, conf, undefined) });
      service(cfg, conf, started, true);
      return Promise.resolve();
    },
  },
  {
    key: 'node',
    label: 'bare node:http (GET /hello)',
    path: '/hello',
    needs: [],
    start(cfg, conf, started) {
      started.push({ label: 'node:http', proc: startHelloServer(cfg, conf, 'node') });
      return Promise.resolve();
    },
  },
  {
    key: 'app',
    label: 'm2gate app route (/app/hello)',
    path: '/app/hello',
    needs: [],
    start(cfg, conf, started) {
      started.push({ label: 'm2gate gateway', proc: startGateway(cfg, conf, undefined, demoApp(cfg)) });
      return Promise.resolve();
    },
  },
];

export interface ProcessCount {
  label: string;
  threads: ThreadCount[];
  /** Instructions per second with no load after the measured window (timers, heartbeats, metrics): NaN when not measured. */
  idlePerSecond: number;
}

export interface InstrRun {
  key: string;
  label: string;
  run: number;
  requests: number;
  warmup: number;
  concurrency: number;
  /** Wall seconds of the measured requests (under callgrind: for scale only). */
  seconds: number;
  processes: ProcessCount[];
}

export interface InstrOptions {
  requests: number;
  warmup: number;
  concurrency: number;
  /** Seconds without load after the measured window, counted apart (0: not measured). */
  idleS: number;
}

/**
 * One run of `v`: fresh conf and processes under callgrind (dumps in
 * `<conf dir>/callgrind`), ready check, warm-up, dump 1, the measured
 * requests, dump 2. Always stops the processes; the conf directory (logs and
 * dumps) is removed unless the run failed or `cfg.keepLogs`.
 */
export async function runInstrVariant(cfg: BenchConfig, v: InstrVariant, run: number, o: InstrOptions): Promise<InstrRun> {
  const conf = await writeBenchConf(v.conf ?? {});
  const outDir = join(conf.dir, 'callgrind');
  mkdirSync(outDir);
  const vcfg: BenchConfig = { ...cfg, wrap: callgrindWrap(outDir) };
  const started: Started = [];
  const agent = loadAgent(o.concurrency);
  let ok = false;
  try {
    await v.start(vcfg, conf, started);
    const url = `http://127.0.0.1:${conf.httpPort}${v.path}`;
    const procs = started.map((s) => s.proc);
    await waitHttp200(url, procs, READY_DEADLINE_MS);
    if (o.warmup > 0) await fixedLoad(agent, url, o.warmup, o.concurrency);
    const dumpAll = async (): Promise<void> => {
      await Promise.all(procs.map((p) => callgrindDump(p.pid)));
      const dead = procs.find((p) => p.exited());
      if (dead) throw new Error(`${dead.name} exited during the run\n${dead.logTail()}`);
    };
    await dumpAll();
    const load = await fixedLoad(agent, url, o.requests, o.concurrency);
    await dumpAll();
    const processes: ProcessCount[] = [];
    for (const s of started) processes.push({ label: s.label, threads: await readDump(outDir, s.proc.pid, 2), idlePerSecond: Number.NaN });
    if (o.idleS > 0) {
      // What the processes execute with no request at all, per second: the
      // part of the measured figure that grows with the window's length.
      const t0 = process.hrtime.bigint();
      await delay(o.idleS * 1000);
      await dumpAll();
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      for (const [i, s] of started.entries()) {
        const idle = await readDump(outDir, s.proc.pid, 3);
        processes[i]!.idlePerSecond = idle.reduce((sum, t) => sum + t.instructions - t.compile, 0) / seconds;
      }
    }
    ok = true;
    return { key: v.key, label: v.label, run, requests: o.requests, warmup: o.warmup, concurrency: o.concurrency, seconds: load.seconds, processes };
  } finally {
    agent.destroy();
    await stopAll(started.map((s) => s.proc));
    if (ok && !cfg.keepLogs) conf.cleanup();
    else cfg.log(`  (logs and callgrind dumps kept in ${conf.dir})`);
  }
}
