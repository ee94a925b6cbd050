/**
 * Instruction counts of running processes with valgrind's callgrind: each
 * server process starts under `valgrind --tool=callgrind`, and
 * `callgrind_control -d PID` dumps what it has counted since the previous
 * dump (a dump also zeroes the counters). With --separate-threads=yes a dump
 * is one file per thread, `<out>.<dump number>-<thread number>`, each with a
 * `totals:` line (instructions executed, event Ir).
 */
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { hasProgram } from './proc.js';

/** What a thread does, read from the functions its dumps name. */
export type ThreadClass = 'main' | 'worker' | 'zmq' | 'other';

export interface ThreadCount {
  /** Valgrind's thread number (1 is the main thread). */
  thread: number;
  cls: ThreadClass;
  instructions: number;
  /** Of these, V8's background (TurboFan) compiling: a warm-up left-over, not a steady per-request cost. */
  compile: number;
}

/**
 * Where V8 compiles optimised code off the main thread (TurboFan jobs, and
 * off-thread parsing). It runs on the platform's worker threads; a run whose
 * warm-up left functions still to optimise pays it in the measured window.
 */
const BACKGROUND_COMPILE = /OptimizingCompileDispatcher::CompileTask::RunInternal\(|BackgroundCompileTask::Run\(/;

/**
 * The inclusive cost of the functions whose names match `pattern`, from one
 * dump's text: the sum of the cost lines of every call into them (`cfn=`,
 * `calls=`, then `<position> <Ir>`). Names are compressed: `(id) name` the
 * first time, `(id)` after, one table for fn= and cfn=. Right for functions
 * that do not call each other (the background compile entries do not).
 */
export function inclusiveCost(text: string, pattern: RegExp): number {
  const names = new Map<string, string>();
  let target = false;
  let costNext = false;
  let sum = 0;
  for (const line of text.split('\n')) {
    if (costNext) {
      costNext = false;
      if (target) sum += Number(line.split(' ')[1] ?? 0);
      continue;
    }
    const m = /^c?fn=\((\d+)\)(?: (.*))?$/.exec(line);
    if (m) {
      if (m[2] !== undefined) names.set(m[1]!, m[2]);
      if (line.startsWith('cfn=')) target = pattern.test(names.get(m[1]!) ?? '');
    } else if (line.startsWith('calls=')) costNext = true;
  }
  return sum;
}

/** What is missing to count instructions here, in words that say how to get it (empty: nothing). */
export function callgrindMissing(): string[] {
  return hasProgram('valgrind') && hasProgram('callgrind_control') ? [] : ['valgrind with callgrind_control (apt-get install -y valgrind)'];
}

/**
 * The command line a server process runs under. V8 writes machine code into
 * anonymous memory and patches it, so valgrind must re-check such code
 * (--smc-check=all-non-file) or it runs stale translations and crashes.
 */
export function callgrindWrap(outDir: string): string[] {
  return ['valgrind', '--tool=callgrind', '--smc-check=all-non-file', '--separate-threads=yes', `--callgrind-out-file=${join(outDir, 'cg.%p')}`];
}

/**
 * `callgrind_control -d PID`: dumps every thread's counts since the previous
 * dump and zeroes them. callgrind_control reaches the process through vgdb,
 * which interrupts even a process blocked in epoll_wait, and returns when the
 * dump is written.
 *
 * @throws Error when callgrind_control fails or takes longer than `timeoutMs`.
 */
export async function callgrindDump(pid: number, timeoutMs = 120_000): Promise<void> {
  const child = spawn('callgrind_control', ['-d', String(pid)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
  child.stderr.on('data', (c: Buffer) => (out += c.toString('utf8')));
  const code = await new Promise<number | null>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`callgrind_control -d ${pid} gave no answer within ${timeoutMs} ms: ${out}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('exit', (c) => {
      clearTimeout(timer);
      resolve(c);
    });
  });
  if (code !== 0 || /error|not found|no active/i.test(out)) throw new Error(`callgrind_control -d ${pid} failed (exit ${code}): ${out.trim()}`);
}

/** The dump files of `pid` in `dir` by dump number: `cg.PID.N-TT` (N from 1). */
function dumpFiles(dir: string, pid: number): Map<number, Map<number, string>> {
  const byDump = new Map<number, Map<number, string>>();
  const re = new RegExp(`^cg\\.${pid}\\.(\\d+)-(\\d+)$`);
  for (const name of readdirSync(dir)) {
    const m = re.exec(name);
    if (!m) continue;
    const dump = Number(m[1]);
    if (!byDump.has(dump)) byDump.set(dump, new Map());
    byDump.get(dump)!.set(Number(m[2]), join(dir, name));
  }
  return byDump;
}

/** The `totals:` (or, lacking it, `summary:`) figure of one dump file. @throws Error when it has neither. */
export function parseTotals(text: string): number {
  const m = /^totals:\s+(\d+)/m.exec(text) ?? /^summary:\s+(\d+)/m.exec(text);
  if (!m) throw new Error('callgrind dump without a totals: or summary: line');
  return Number(m[1]);
}

/**
 * A thread's class from the text of its dumps. Thread 1 runs the event loop.
 * A Node worker thread runs node::worker::Worker::Run: piscina's, and under
 * tsx its module-loader thread; libzmq's I/O and reaper threads run zmq:: code only. Every other thread (V8's
 * platform workers and GC, libuv's pool) is `other`. The main thread is
 * decided first because it also calls zmq:: (sends) and node::worker:: (it
 * starts the workers).
 */
export function classifyThread(thread: number, texts: string[]): ThreadClass {
  if (thread === 1) return 'main';
  if (texts.some((t) => t.includes('node::worker::Worker::Run'))) return 'worker';
  // Debian's libzmq has no symbols behind Mongrel2 (its functions are bare
  // addresses), so the object name (`ob=` lines) counts too.
  if (texts.some((t) => /\bzmq::|^c?ob=.*libzmq/m.test(t))) return 'zmq';
  return 'other';
}

/**
 * Reads dump number `dump` of `pid` (waiting up to `timeoutMs` for its files,
 * in case vgdb returned before the last was closed), classifying each thread
 * with the text of every dump up to it: a thread's start-up (in dump 1)
 * names what it is even when the measured window only shows its loop.
 *
 * @throws Error when no file of that dump appears in time.
 */
export async function readDump(dir: string, pid: number, dump: number, timeoutMs = 10_000): Promise<ThreadCount[]> {
  const deadline = Date.now() + timeoutMs;
  let files = dumpFiles(dir, pid);
  while (!files.has(dump) && Date.now() < deadline) {
    await delay(100);
    files = dumpFiles(dir, pid);
  }
  const these = files.get(dump);
  if (these === undefined) throw new Error(`no callgrind dump ${dump} of pid ${pid} in ${dir}`);
  const out: ThreadCount[] = [];
  for (const [thread, file] of [...these].sort((a, b) => a[0] - b[0])) {
    const text = readFileSync(file, 'utf8');
    const earlier: string[] = [];
    for (let d = 1; d < dump; d++) {
      const f = files.get(d)?.get(thread);
      if (f !== undefined) earlier.push(readFileSync(f, 'utf8'));
    }
    out.push({ thread, cls: classifyThread(thread, [text, ...earlier]), instructions: parseTotals(text), compile: inclusiveCost(text, BACKGROUND_COMPILE) });
  }
  return out;
}

/** valgrind's version line, for the report header. */
export function valgrindVersion(): string {
  const out = spawnSync('valgrind', ['--version'], { encoding: 'utf8' });
  return out.status === 0 ? out.stdout.trim() : 'valgrind NOT INSTALLED (apt-get install -y valgrind)';
}
