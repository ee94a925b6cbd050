/**
 * The baselines for the gateway's Dir: bare node:http answering every request
 * with the bytes of one file and the Content-Type the gateway's Dir sends for
 * .txt (mime-types' lookup: `text/plain`).
 *
 *   --mode memory    the bytes are read once at start (the baseline: nothing cheaper serves them)
 *   --mode readfile  fs.promises.readFile per request (what reading from disk alone costs)
 *
 *   node --import tsx bench/static-server.ts --port 8080 --file static/small.txt [--mode memory]
 */
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { port: { type: 'string' }, file: { type: 'string' }, mode: { type: 'string', default: 'memory' } } });
const file = values.file;
const port = Number(values.port);
if (file === undefined || !Number.isInteger(port) || (values.mode !== 'memory' && values.mode !== 'readfile')) {
  process.stderr.write('usage: static-server.ts --port N --file PATH [--mode memory|readfile]\n');
  process.exit(2);
}
const bytes = readFileSync(file);
const headers = { 'Content-Type': 'text/plain', 'Content-Length': String(bytes.length) };

const server =
  values.mode === 'memory'
    ? createServer((_req, res) => {
        res.writeHead(200, headers).end(bytes);
      })
    : createServer((_req, res) => {
        readFile(file).then(
          (data) => res.writeHead(200, { 'Content-Type': headers['Content-Type'], 'Content-Length': String(data.length) }).end(data),
          () => res.writeHead(500).end(),
        );
      });
server.keepAliveTimeout = 5000;
server.listen(port, '127.0.0.1', () => process.stdout.write(`static server (${values.mode}) on ${port}\n`));
const stop = (): void => void server.close();
process.once('SIGTERM', () => {
  stop();
  server.closeAllConnections();
});
