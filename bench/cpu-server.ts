/**
 * The CPU-route baselines: one node:http process serving `GET /svc/fib/:n`
 * (the demo service's naive Fibonacci, bench/fib.ts) and a trivial
 * `GET /app/hello` / `GET /svc/hello` (`hello`).
 *
 *   --mode piscina --threads N   fib in a piscina pool of N threads in this
 *                                process: the ceiling of worker scaling (no
 *                                front, no ZeroMQ hop)
 *   --mode inline                fib on the event loop: the isolation
 *                                baseline, where a trivial request waits
 *                                behind every queued fib
 *
 *   node --import tsx bench/cpu-server.ts --port 8080 --mode piscina --threads 2
 */
import { createServer, type ServerResponse } from 'node:http';
import { parseArgs } from 'node:util';
import { Piscina } from 'piscina';
import { fib } from './fib.js';

const { values } = parseArgs({ options: { port: { type: 'string' }, mode: { type: 'string', default: 'piscina' }, threads: { type: 'string', default: '1' } } });
const port = Number(values.port);
const threads = Number(values.threads);
if (!Number.isInteger(port) || !(Number.isInteger(threads) && threads >= 1) || (values.mode !== 'piscina' && values.mode !== 'inline')) {
  process.stderr.write('usage: cpu-server.ts --port N [--mode piscina|inline] [--threads N]\n');
  process.exit(2);
}

// Worker threads inherit --import tsx, so the .ts worker module loads as this file does.
const pool = values.mode === 'piscina' ? new Piscina({ filename: new URL('./fib.js', import.meta.url).href.replace(/\.js$/, '.ts'), minThreads: threads, maxThreads: threads }) : undefined;

const HELLO = Buffer.from('hello');
const FIB = /^\/svc\/fib\/(\d{1,2})$/;

function send(res: ServerResponse, status: number, body: string | Buffer, type: string): void {
  const bytes = typeof body === 'string' ? Buffer.from(body) : body;
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': String(bytes.length) }).end(bytes);
}

const server = createServer((req, res) => {
  const url = req.url ?? '/';
  if (url === '/app/hello' || url === '/svc/hello') return send(res, 200, HELLO, 'text/plain');
  const m = FIB.exec(url);
  if (!m) return send(res, 404, 'not found\n', 'text/plain');
  const n = Number(m[1]);
  if (pool === undefined) return send(res, 200, JSON.stringify({ n, fib: fib(n) }), 'application/json');
  pool.run({ n }).then(
    (result: unknown) => send(res, 200, JSON.stringify(result), 'application/json'),
    (err: unknown) => send(res, 500, `${String(err)}\n`, 'text/plain'),
  );
});
server.keepAliveTimeout = 5000;
server.listen(port, '127.0.0.1', () => process.stdout.write(`cpu server (${values.mode}, ${threads} threads) on ${port}\n`));
process.once('SIGTERM', () => {
  server.close();
  server.closeAllConnections();
  void pool?.destroy();
});
