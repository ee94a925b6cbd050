/**
 * Child processes for the benchmarks: spawned pinned to a CPU set with
 * `taskset` (so the server side and the load generator do not steal each
 * other's core), their output kept in a log file, their CPU time read from
 * /proc, and stopped by their own pid only.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { once } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';

/** Clock ticks per second for /proc/<pid>/stat (USER_HZ; 100 on Linux unless told otherwise). */
export const CLOCK_TICKS = (() => {
  const out = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const n = Number(out.stdout?.trim());
  return Number.isInteger(n) && n > 0 ? n : 100;
})();

/** True when `command -v name` finds the program. */
export function hasProgram(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;
}

/** Whether `taskset` exists and the machine has at least two CPUs to split between sides. */
export function canPin(cpuCount: number): boolean {
  return cpuCount >= 2 && hasProgram('taskset');
}

export interface SpawnedOptions {
  /** A taskset CPU list such as '0' or '0,1'; undefined runs unpinned. */
  cpus?: string | undefined;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** stdout and stderr go to this file (append). Defaults to /dev/null. */
  logFile?: string;
  /** A command line the command runs under, e.g. valgrind and its flags (after taskset, so the pid is still the command's). */
  wrap?: string[];
}

/** A process this suite started; stop() signals its pid only. */
export interface Spawned {
  readonly name: string;
  readonly pid: number;
  readonly child: ChildProcess;
  readonly logFile: string | undefined;
  /** True once it has exited. */
  exited(): boolean;
  /** User + system CPU seconds so far (all threads), from /proc/<pid>/stat. */
  cpuSeconds(): number;
  /** SIGTERM, then SIGKILL after `graceMs` (default 5000); resolves when it has exited. */
  stop(graceMs?: number): Promise<void>;
  /** The last `bytes` of its log file, for error messages. */
  logTail(bytes?: number): string;
}

/**
 * Reads utime + stime (fields 14 and 15 of /proc/<pid>/stat) in seconds.
 * The command name (field 2) may contain spaces, so fields are counted after its ')'.
 *
 * @throws Error when the process does not exist (any more).
 */
export function procCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return parseProcStatCpu(stat) / CLOCK_TICKS;
}

/** utime + stime in clock ticks from the text of /proc/<pid>/stat. @throws Error on malformed text. */
export function parseProcStatCpu(stat: string): number {
  const close = stat.lastIndexOf(')');
  if (close < 0) throw new Error('malformed /proc/<pid>/stat: no ")"');
  // After ')' come field 3 (state) onwards: utime is field 14, stime field 15.
  const fields = stat.slice(close + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) throw new Error('malformed /proc/<pid>/stat: no utime/stime');
  return utime + stime;
}

/** Spawns `command args` (under `taskset -c cpus` when given). `name` labels it in messages. */
export function spawnPinned(name: string, command: string, args: string[], options: SpawnedOptions = {}): Spawned {
  const wrapped = [...(options.wrap ?? []), command, ...args];
  const argv = options.cpus === undefined ? wrapped : ['taskset', '-c', options.cpus, ...wrapped];
  const fd = options.logFile === undefined ? 'ignore' : openSync(options.logFile, 'a');
  // taskset (and valgrind) exec the command, so the pid is the command's own.
  const child = spawn(argv[0]!, argv.slice(1), {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ['ignore', fd, fd],
  });
  if (typeof fd === 'number') closeSync(fd);
  if (child.pid === undefined) throw new Error(`${name}: could not spawn ${argv.join(' ')}`);
  const pid = child.pid;
  let done = false;
  const exit = once(child, 'exit').then(() => {
    done = true;
  });
  // A spawn error (ENOENT, ...) also ends the child; 'exit' may not follow it.
  child.on('error', () => {
    done = true;
  });
  return {
    name,
    pid,
    child,
    logFile: options.logFile,
    exited: () => done,
    cpuSeconds: () => procCpuSeconds(pid),
    async stop(graceMs = 5000) {
      if (done) return;
      child.kill('SIGTERM');
      const killed = await Promise.race([exit.then(() => true), delay(graceMs).then(() => false)]);
      if (!killed && !done) {
        child.kill('SIGKILL');
        await exit;
      }
    },
    logTail(bytes = 2000) {
      if (options.logFile === undefined) return '';
      try {
        const text = readFileSync(options.logFile, 'utf8');
        return text.slice(-bytes);
      } catch {
        return '';
      }
    },
  };
}

/**
 * Stops every process given, in order of start: fronts before their handlers,
 * so no load is left in flight. (A gateway stopped after its service can hang
 * in its handler pool's close while disconnect notices wait for a peer that is
 * gone; see bench/README.md.)
 */
export async function stopAll(procs: Array<Spawned | undefined>): Promise<void> {
  for (const p of procs) await p?.stop();
}

/**
 * CPU seconds per thread group of a process, from /proc/<pid>/task/<tid>/stat:
 * `main` (tid = pid, the event loop), `zmq` (ZeroMQ's ZMQbg/* I/O threads) and
 * `other` (every other thread; in a Node process mostly worker threads, then
 * V8's and libuv's helpers, which all share the comm name "node").
 * Threads that exited before the read are missing from the sum.
 */
export function threadCpuSeconds(pid: number): { main: number; zmq: number; other: number } {
  const out = { main: 0, zmq: 0, other: 0 };
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    } catch {
      continue; // the thread ended meanwhile
    }
    const seconds = parseProcStatCpu(stat) / CLOCK_TICKS;
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    if (Number(tid) === pid) out.main += seconds;
    else if (comm.startsWith('ZMQbg')) out.zmq += seconds;
    else out.other += seconds;
  }
  return out;
}

/**
 * Busy CPU seconds so far of the CPUs in `cpuList` (a taskset list of single
 * CPUs and ranges, e.g. '0' or '0,2-3'), from /proc/stat: user, nice, system,
 * irq, softirq and steal time. Compared with the CPU time of the processes a
 * variant pinned there, it shows how much other work (other processes,
 * interrupts) ran on those CPUs during a window.
 */
export function cpuBusySeconds(cpuList: string): number {
  const wanted = new Set<number>();
  for (const part of cpuList.split(',')) {
    const [a, b] = part.split('-').map(Number);
    for (let c = a!; c <= (b ?? a!); c++) wanted.add(c);
  }
  let ticks = 0;
  for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
    const m = /^cpu(\d+) (.*)$/.exec(line);
    if (!m || !wanted.has(Number(m[1]))) continue;
    const f = m[2]!.trim().split(/\s+/).map(Number);
    ticks += (f[0] ?? 0) + (f[1] ?? 0) + (f[2] ?? 0) + (f[5] ?? 0) + (f[6] ?? 0) + (f[7] ?? 0);
  }
  return ticks / CLOCK_TICKS;
}
