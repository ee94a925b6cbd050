/**
 * The front-overhead baselines: the least an HTTP server in Node does for a
 * trivial route. Answers GET /hello with `hello` (text/plain, 5 bytes).
 *
 *   --kind node     bare node:http (the baseline of the `front` scenario)
 *   --kind fastify  Fastify 5, no logger, one route
 *
 *   node --import tsx bench/hello-server.ts --port 8080 --kind node
 */
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

/** The little of Fastify used here, so that the type check needs no bench/node_modules (CI has none). */
interface FastifyReply {
  type(contentType: string): FastifyReply;
  send(body: string): unknown;
}
interface FastifyApp {
  get(path: string, handler: (req: unknown, reply: FastifyReply) => void): void;
  listen(options: { port: number; host: string }): Promise<string>;
  close(): Promise<void>;
}
type FastifyFactory = (options: { logger: boolean }) => FastifyApp;

const { values } = parseArgs({ options: { port: { type: 'string' }, kind: { type: 'string', default: 'node' } } });
const port = Number(values.port);
if (!Number.isInteger(port) || (values.kind !== 'node' && values.kind !== 'fastify')) {
  process.stderr.write('usage: hello-server.ts --port N [--kind node|fastify]\n');
  process.exit(2);
}

const HELLO = Buffer.from('hello');

if (values.kind === 'node') {
  const headers = { 'Content-Type': 'text/plain', 'Content-Length': String(HELLO.length) };
  const server = createServer((_req, res) => {
    res.writeHead(200, headers).end(HELLO);
  });
  server.keepAliveTimeout = 5000;
  server.listen(port, '127.0.0.1', () => process.stdout.write(`node:http hello on ${port}\n`));
  process.once('SIGTERM', () => {
    server.close();
    server.closeAllConnections();
  });
} else {
  // A variable specifier: fastify is a comparison-only dependency of bench/package.json.
  const specifier = 'fastify';
  const Fastify = ((await import(specifier)) as { default: FastifyFactory }).default;
  const app = Fastify({ logger: false });
  app.get('/hello', (_req, reply) => {
    void reply.type('text/plain').send('hello');
  });
  await app.listen({ port, host: '127.0.0.1' });
  process.stdout.write(`fastify hello on ${port}\n`);
  process.once('SIGTERM', () => void app.close());
}
