/**
 * One measured HTTP window: a warm-up run of wrk (fresh processes need their
 * JIT warm), then CPU time of every server process read from /proc just before
 * and just after the measured wrk run, turned into CPU seconds per 1,000
 * requests.
 */
import { cpuBusySeconds, procCpuSeconds, threadCpuSeconds, type Spawned } from './proc.js';
import { runWrk, socketErrorCount, type WrkResult } from './wrk.js';

export interface Role {
  /** What the process is in this variant: 'front', 'handler', ... */
  role: string;
  proc: Spawned;
  /** Also split its CPU into main / ZeroMQ / other threads (Node processes). */
  threads?: boolean;
}

export interface LoadOptions {
  warmupS: number;
  durationS: number;
  connections: number;
  /** taskset CPU list for wrk. */
  cpus: string | undefined;
  /** The CPUs the measured processes are pinned to, to measure other work there; undefined when not pinned. */
  serverCpus?: string | undefined;
}

export interface ThreadSplit {
  main: number;
  zmq: number;
  other: number;
}

export interface HttpSample {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  requests: number;
  /** Non-2xx answers plus socket errors (connect, read, write, timeout) in the measured run. */
  errors: number;
  /** CPU seconds per 1,000 requests, per role. */
  cpuPer1k: Record<string, number>;
  /** CPU seconds per 1,000 requests by thread group, for roles with `threads`. */
  threadsPer1k: Record<string, ThreadSplit>;
  /**
   * Share of the server CPUs (0..1 per CPU) used by anything but the measured
   * processes during the window: other processes, interrupts. NaN when not pinned.
   */
  otherLoad: number;
  wrk: WrkResult;
}

/**
 * Warms up, then measures `url` under wrk.
 *
 * @throws Error when wrk fails or a process exits during the run.
 */
export async function measureHttp(url: string, roles: Role[], load: LoadOptions): Promise<HttpSample> {
  if (load.warmupS > 0) await runWrk({ url, durationS: load.warmupS, connections: load.connections, cpus: load.cpus });
  const before = roles.map((r) => ({ cpu: procCpuSeconds(r.proc.pid), threads: r.threads ? threadCpuSeconds(r.proc.pid) : undefined }));
  const busy0 = load.serverCpus === undefined ? Number.NaN : cpuBusySeconds(load.serverCpus);
  const wrk = await runWrk({ url, durationS: load.durationS, connections: load.connections, cpus: load.cpus });
  const busy = load.serverCpus === undefined ? Number.NaN : cpuBusySeconds(load.serverCpus) - busy0;
  const dead = roles.find((r) => r.proc.exited());
  if (dead) throw new Error(`${dead.role} (${dead.proc.name}) exited during the run\n${dead.proc.logTail()}`);
  const cpuPer1k: Record<string, number> = {};
  const threadsPer1k: Record<string, ThreadSplit> = {};
  const per1k = (seconds: number): number => (wrk.requests > 0 ? (seconds / wrk.requests) * 1000 : Number.NaN);
  let ours = 0;
  roles.forEach((r, i) => {
    const used = procCpuSeconds(r.proc.pid) - before[i]!.cpu;
    ours += used;
    cpuPer1k[r.role] = per1k(used);
    const t0 = before[i]!.threads;
    if (t0) {
      const t1 = threadCpuSeconds(r.proc.pid);
      threadsPer1k[r.role] = { main: per1k(t1.main - t0.main), zmq: per1k(t1.zmq - t0.zmq), other: per1k(t1.other - t0.other) };
    }
  });
  return {
    rps: wrk.rps,
    p50Ms: wrk.p50Ms,
    p99Ms: wrk.p99Ms,
    requests: wrk.requests,
    errors: wrk.non2xx + socketErrorCount(wrk),
    cpuPer1k,
    threadsPer1k,
    otherLoad: Math.max(0, (busy - ours) / wrk.seconds),
    wrk,
  };
}
