/**
 * The transport floor for the `call` scenario: a raw zeromq.js DEALER/ROUTER
 * echo between two processes, with nothing of m2gate but a payload the size of
 * a ctx.call request. The client times each message from just before send()
 * to the moment its echo is read, in its own event loop: the same two points
 * bench/call-app.ts times `await ctx.call()` at.
 *
 *   node --import tsx bench/echo-dealer-router.ts                    # both sides, a short report
 *   node --import tsx bench/echo-dealer-router.ts server --bind tcp://127.0.0.1:5555
 *   node --import tsx bench/echo-dealer-router.ts client --connect tcp://127.0.0.1:5555 \
 *        [--seconds 5] [--warmup 1] [--window 1] [--size 250] [--server-pid PID]
 *
 * The client prints one JSON line: messages, msgsPerS, p50Us, p90Us, p99Us,
 * maxUs, cpuSeconds (its own user+system time in the measured window) and,
 * given --server-pid, serverCpuSeconds (the server's, from /proc, same window).
 */
import { spawn } from 'node:child_process';
import { createHistogram } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Dealer, Router } from 'zeromq';
import { procCpuSeconds } from './lib/proc.js';

/** Client and server stop after this many messages whatever the duration: bounded loops only. */
const MAX_MESSAGES = 20_000_000;

export interface EchoResult {
  window: number;
  size: number;
  messages: number;
  seconds: number;
  msgsPerS: number;
  p50Us: number;
  p90Us: number;
  p99Us: number;
  maxUs: number;
  cpuSeconds: number;
  serverCpuSeconds?: number;
}

/** CPU seconds of another process so far, or NaN when it cannot be read. */
function otherCpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  try {
    return procCpuSeconds(pid);
  } catch {
    return Number.NaN;
  }
}

async function server(bind: string): Promise<void> {
  const router = new Router();
  await router.bind(bind);
  process.stdout.write(`echo server bound to ${bind}\n`);
  const stop = (): void => router.close();
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  let n = 0;
  try {
    for await (const frames of router) {
      // [identity, payload] back to the sender as it came.
      await router.send(frames);
      if (++n >= MAX_MESSAGES) break;
    }
  } catch (err) {
    if (!router.closed) throw err;
  }
  router.close();
}

/**
 * Keeps `window` messages in flight for `seconds`, timing each round trip.
 * Order is kept on one DEALER connection, so start times form a FIFO.
 */
async function phase(dealer: Dealer, payload: Buffer, window: number, seconds: number, serverPid?: number): Promise<EchoResult> {
  const hist = createHistogram();
  const starts: bigint[] = new Array<bigint>(window).fill(0n);
  let head = 0;
  let tail = 0;
  const cpu0 = process.cpuUsage();
  const server0 = otherCpuSeconds(serverPid);
  const t0 = process.hrtime.bigint();
  const end = t0 + BigInt(Math.round(seconds * 1e9));
  for (let i = 0; i < window; i++) {
    starts[tail++ % window] = process.hrtime.bigint();
    await dealer.send(payload);
  }
  let received = 0;
  let last = t0;
  while (received < MAX_MESSAGES) {
    await dealer.receive();
    last = process.hrtime.bigint();
    hist.record(last - starts[head++ % window]!);
    received++;
    if (last >= end) break;
    starts[tail++ % window] = process.hrtime.bigint();
    await dealer.send(payload);
  }
  // Collect what is still in flight so the next phase starts clean.
  for (let pending = tail - head; pending > 0; pending--) await dealer.receive();
  const cpu = process.cpuUsage(cpu0);
  const serverCpu = otherCpuSeconds(serverPid) - server0;
  const secondsTaken = Number(last - t0) / 1e9;
  const us = (ns: number): number => Math.round(ns / 10) / 100;
  return {
    window,
    size: payload.length,
    messages: received,
    seconds: secondsTaken,
    msgsPerS: received / secondsTaken,
    p50Us: us(hist.percentile(50)),
    p90Us: us(hist.percentile(90)),
    p99Us: us(hist.percentile(99)),
    maxUs: us(hist.max),
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    ...(serverPid === undefined ? {} : { serverCpuSeconds: serverCpu }),
  };
}

async function client(connect: string, seconds: number, warmup: number, window: number, size: number, serverPid?: number): Promise<EchoResult> {
  const dealer = new Dealer();
  dealer.connect(connect);
  const payload = Buffer.alloc(size, 0x61);
  if (warmup > 0) await phase(dealer, payload, window, warmup);
  const result = await phase(dealer, payload, window, seconds, serverPid);
  dealer.close();
  return result;
}

/** Standalone use: both sides as child processes, window 1 then window 50. */
async function both(): Promise<void> {
  const self = fileURLToPath(import.meta.url);
  const bind = 'tcp://127.0.0.1:45671';
  const srv = spawn(process.execPath, ['--import', 'tsx', self, 'server', '--bind', bind], { stdio: ['ignore', 'inherit', 'inherit'] });
  try {
    for (const window of [1, 50]) {
      const out = await new Promise<string>((resolve, reject) => {
        const c = spawn(process.execPath, ['--import', 'tsx', self, 'client', '--connect', bind, '--seconds', '3', '--window', String(window)], { stdio: ['ignore', 'pipe', 'inherit'] });
        let text = '';
        c.stdout.setEncoding('utf8').on('data', (d: string) => (text += d));
        c.on('close', (code) => (code === 0 ? resolve(text) : reject(new Error(`client exited with ${String(code)}`))));
      });
      process.stdout.write(out);
    }
  } finally {
    srv.kill('SIGTERM');
  }
}

const [mode, ...rest] = process.argv.slice(2);
const { values } = parseArgs({
  args: rest,
  options: {
    bind: { type: 'string' },
    connect: { type: 'string' },
    seconds: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '1' },
    window: { type: 'string', default: '1' },
    size: { type: 'string', default: '250' },
    'server-pid': { type: 'string' },
  },
});
if (mode === 'server' && values.bind !== undefined) {
  await server(values.bind);
} else if (mode === 'client' && values.connect !== undefined) {
  const result = await client(values.connect, Number(values.seconds), Number(values.warmup), Number(values.window), Number(values.size), values['server-pid'] === undefined ? undefined : Number(values['server-pid']));
  process.stdout.write(`${JSON.stringify(result)}\n`);
} else if (mode === undefined) {
  await both();
} else {
  process.stderr.write('usage: echo-dealer-router.ts [server --bind SPEC | client --connect SPEC [--seconds S] [--warmup S] [--window N] [--size BYTES]]\n');
  process.exitCode = 2;
}
